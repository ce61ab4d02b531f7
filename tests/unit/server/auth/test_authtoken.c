/* Unit tests for server/auth/authtoken.c: round trips, tampering, expiry, Basic. */
#include "storage/spec/digest.h"
#include "unit.h"

#include "server/auth/authtoken.c"

#define NOW 1795686637
#define DIGEST_A "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define DIGEST_B "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

#define URL_ALPHABET "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

static const uint8_t key[32] = "0123456789abcdef0123456789abcdef";
static const uint8_t other_key[32] = "0123456789abcdef0123456789abcdeF";

static struct authtoken login_token(void)
{
    struct authtoken t;
    memset(&t, 0, sizeof(t));
    t.purpose = AUTHTOKEN_LOGIN;
    snprintf(t.principal, sizeof(t.principal), "AKIDEXAMPLE");
    t.issued = NOW;
    t.expires = NOW + 43200;
    return t;
}

static struct authtoken download_token(void)
{
    struct authtoken t = login_token();
    t.purpose = AUTHTOKEN_DOWNLOAD;
    snprintf(t.repository, sizeof(t.repository), "team/app");
    snprintf(t.digest, sizeof(t.digest), "%s", DIGEST_A);
    t.expires = NOW + 600;
    return t;
}

static enum berth_err verify_login(const char *tok, int64_t now)
{
    return authtoken_verify(key, sizeof(key), tok, AUTHTOKEN_LOGIN, NULL, NULL, now, NULL);
}

static enum berth_err verify_download(const char *tok, int64_t now)
{
    return authtoken_verify(key, sizeof(key), tok, AUTHTOKEN_DOWNLOAD, "team/app", DIGEST_A, now,
                            NULL);
}

static void test_login_round_trip(void)
{
    struct authtoken in = login_token(), out;
    char tok[AUTHTOKEN_MAX_LEN + 1];
    CHECK_INT(authtoken_issue(key, sizeof(key), &in, tok, sizeof(tok)), BERTH_OK);
    for (const char *p = tok; *p; p++) {
        CHECK(strchr(URL_ALPHABET, *p) != NULL);
    }
    CHECK(strchr(tok, ':') == NULL);
    memset(&out, 0x55, sizeof(out));
    CHECK_INT(authtoken_verify(key, sizeof(key), tok, AUTHTOKEN_LOGIN, NULL, NULL, NOW, &out),
              BERTH_OK);
    CHECK_INT(out.purpose, AUTHTOKEN_LOGIN);
    CHECK_STR(out.principal, "AKIDEXAMPLE");
    CHECK_STR(out.repository, "");
    CHECK_STR(out.digest, "");
    CHECK_INT(out.issued, NOW);
    CHECK_INT(out.expires, NOW + 43200);

    /* Deterministic: the same fields and key give the same token. */
    char again[AUTHTOKEN_MAX_LEN + 1];
    CHECK_INT(authtoken_issue(key, sizeof(key), &in, again, sizeof(again)), BERTH_OK);
    CHECK_STR(again, tok);
    CHECK_INT(authtoken_issue(key, sizeof(key), &in, again, strlen(tok)), BERTH_ETOOBIG);
    CHECK_INT(authtoken_issue(key, sizeof(key), &in, again, strlen(tok) + 1), BERTH_OK);

    /* Not usable for another purpose, or with a scope. */
    CHECK_INT(authtoken_verify(key, sizeof(key), tok, AUTHTOKEN_DOWNLOAD, "team/app", DIGEST_A, NOW,
                               NULL),
              BERTH_EINVAL);
    CHECK_INT(authtoken_verify(key, sizeof(key), tok, AUTHTOKEN_LOGIN, "team/app", NULL, NOW, NULL),
              BERTH_EINVAL);
    /* Wrong key, bad key lengths. */
    CHECK_INT(
        authtoken_verify(other_key, sizeof(other_key), tok, AUTHTOKEN_LOGIN, NULL, NULL, NOW, NULL),
        BERTH_EINVAL);
    CHECK_INT(authtoken_verify(key, 16, tok, AUTHTOKEN_LOGIN, NULL, NULL, NOW, NULL), BERTH_EINVAL);
    CHECK_INT(authtoken_verify(key, sizeof(key), NULL, AUTHTOKEN_LOGIN, NULL, NULL, NOW, NULL),
              BERTH_EINVAL);
}

static void test_download_scope(void)
{
    struct authtoken in = download_token(), out;
    char tok[AUTHTOKEN_MAX_LEN + 1];
    CHECK_INT(authtoken_issue(key, sizeof(key), &in, tok, sizeof(tok)), BERTH_OK);
    CHECK_INT(authtoken_verify(key, sizeof(key), tok, AUTHTOKEN_DOWNLOAD, "team/app", DIGEST_A, NOW,
                               &out),
              BERTH_OK);
    CHECK_STR(out.repository, "team/app");
    CHECK_STR(out.digest, DIGEST_A);
    CHECK_INT(out.purpose, AUTHTOKEN_DOWNLOAD);
    CHECK_INT(authtoken_verify(key, sizeof(key), tok, AUTHTOKEN_DOWNLOAD, "team/other", DIGEST_A,
                               NOW, NULL),
              BERTH_EINVAL);
    CHECK_INT(authtoken_verify(key, sizeof(key), tok, AUTHTOKEN_DOWNLOAD, "team/app", DIGEST_B, NOW,
                               NULL),
              BERTH_EINVAL);
    CHECK_INT(
        authtoken_verify(key, sizeof(key), tok, AUTHTOKEN_DOWNLOAD, "team/ap", DIGEST_A, NOW, NULL),
        BERTH_EINVAL);
    CHECK_INT(authtoken_verify(key, sizeof(key), tok, AUTHTOKEN_DOWNLOAD, NULL, NULL, NOW, NULL),
              BERTH_EINVAL);
    CHECK_INT(verify_login(tok, NOW), BERTH_EINVAL);

    /* The largest token fits the stated limit. */
    struct authtoken big = download_token();
    memset(big.principal, 'P', AUTHTOKEN_PRINCIPAL_MAX);
    big.principal[AUTHTOKEN_PRINCIPAL_MAX] = '\0';
    memset(big.repository, 'r', AUTHTOKEN_REPOSITORY_MAX);
    big.repository[AUTHTOKEN_REPOSITORY_MAX] = '\0';
    snprintf(big.digest, sizeof(big.digest), "sha512:%0128d", 0);
    char bigtok[AUTHTOKEN_MAX_LEN + 1];
    CHECK_INT(authtoken_issue(key, sizeof(key), &big, bigtok, sizeof(bigtok)), BERTH_OK);
    CHECK(strlen(bigtok) <= AUTHTOKEN_MAX_LEN);
    CHECK_INT(authtoken_verify(key, sizeof(key), bigtok, AUTHTOKEN_DOWNLOAD, big.repository,
                               big.digest, NOW, &out),
              BERTH_OK);
    CHECK_STR(out.principal, big.principal);
}

static void test_expiry(void)
{
    struct authtoken in = login_token();
    char tok[AUTHTOKEN_MAX_LEN + 1];
    CHECK_INT(authtoken_issue(key, sizeof(key), &in, tok, sizeof(tok)), BERTH_OK);
    CHECK_INT(verify_login(tok, NOW + 43199), BERTH_OK);
    CHECK_INT(verify_login(tok, NOW + 43200), BERTH_EDENIED);
    CHECK_INT(verify_login(tok, INT64_MAX), BERTH_EDENIED);
    /* Issued a little in the future (clock steps) is fine, far is not. */
    CHECK_INT(verify_login(tok, NOW - AUTHTOKEN_MAX_CLOCK_SKEW), BERTH_OK);
    CHECK_INT(verify_login(tok, NOW - AUTHTOKEN_MAX_CLOCK_SKEW - 1), BERTH_EINVAL);
    /* Expired but forged or for another scope is invalid, not expired. */
    CHECK_INT(authtoken_verify(other_key, sizeof(other_key), tok, AUTHTOKEN_LOGIN, NULL, NULL,
                               NOW + 50000, NULL),
              BERTH_EINVAL);
    struct authtoken d = download_token();
    CHECK_INT(authtoken_issue(key, sizeof(key), &d, tok, sizeof(tok)), BERTH_OK);
    CHECK_INT(verify_download(tok, NOW + 599), BERTH_OK);
    CHECK_INT(verify_download(tok, NOW + 600), BERTH_EDENIED);
    CHECK_INT(authtoken_verify(key, sizeof(key), tok, AUTHTOKEN_DOWNLOAD, "team/app", DIGEST_B,
                               NOW + 600, NULL),
              BERTH_EINVAL);
}

/* Decode a token into its record (test helper). */
static size_t decode(const char *tok, uint8_t *rec)
{
    size_t n = 0;
    CHECK(base64url_decode(tok, strlen(tok), rec, &n) == BERTH_OK);
    return n;
}

/* Re-encode a record, re-computing the MAC with key when remac is set. */
static void encode_record(uint8_t *rec, size_t n, bool remac, char *out)
{
    if (remac) {
        mac_of(key, sizeof(key), rec, n - MAC_LEN, rec + n - MAC_LEN);
    }
    base64url_encode(rec, n, out);
}

static void test_tampering(void)
{
    struct authtoken in = download_token();
    char tok[AUTHTOKEN_MAX_LEN + 1], bad[AUTHTOKEN_MAX_LEN + 8];
    uint8_t rec[RECORD_MAX], copy[RECORD_MAX];
    CHECK_INT(authtoken_issue(key, sizeof(key), &in, tok, sizeof(tok)), BERTH_OK);
    size_t n = decode(tok, rec);
    CHECK_INT(n, HEADER_LEN + 1 + 11 + 2 + 8 + 1 + 71 + MAC_LEN);

    /* Flipping any bit of any byte (version, purpose, times, lengths,
     * principal, repository, digest, MAC) is detected. */
    int accepted = 0;
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, rec, n);
            copy[i] ^= (uint8_t)(1u << bit);
            encode_record(copy, n, false, bad);
            if (verify_download(bad, NOW) != BERTH_EINVAL) {
                accepted++;
            }
        }
    }
    CHECK_INT(accepted, 0);

    /* Extending the expiry is forgery. */
    memcpy(copy, rec, n);
    put_u64(copy + 10, (uint64_t)NOW + 999999);
    encode_record(copy, n, false, bad);
    CHECK_INT(verify_download(bad, NOW + 700), BERTH_EINVAL);

    /* Every truncation, an extra character, a non-canonical last
     * character, characters outside the alphabet. */
    size_t len = strlen(tok);
    for (size_t k = 0; k < len; k++) {
        memcpy(bad, tok, k);
        bad[k] = '\0';
        if (verify_download(bad, NOW) != BERTH_EINVAL) {
            accepted++;
        }
    }
    CHECK_INT(accepted, 0);
    snprintf(bad, sizeof(bad), "%sA", tok);
    CHECK_INT(verify_download(bad, NOW), BERTH_EINVAL);
    snprintf(bad, sizeof(bad), "%s=", tok);
    CHECK_INT(verify_download(bad, NOW), BERTH_EINVAL);
    /* A login record is 65 bytes: its last character carries 2 unused
     * bits, which must be zero. */
    struct authtoken l = login_token();
    char ltok[AUTHTOKEN_MAX_LEN + 1];
    CHECK_INT(authtoken_issue(key, sizeof(key), &l, ltok, sizeof(ltok)), BERTH_OK);
    CHECK_INT(decode(ltok, copy), 65);
    size_t llen = strlen(ltok);
    ltok[llen - 1] = URL_ALPHABET[(strchr(URL_ALPHABET, ltok[llen - 1]) - URL_ALPHABET) | 1];
    CHECK_INT(verify_login(ltok, NOW), BERTH_EINVAL);
    snprintf(bad, sizeof(bad), "%s", tok);
    bad[3] = '+';
    CHECK_INT(verify_download(bad, NOW), BERTH_EINVAL);
    bad[3] = ' ';
    CHECK_INT(verify_download(bad, NOW), BERTH_EINVAL);
    CHECK_INT(verify_download("", NOW), BERTH_EINVAL);
    char huge[AUTHTOKEN_MAX_LEN + 2];
    memset(huge, 'A', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    CHECK_INT(verify_download(huge, NOW), BERTH_EINVAL);

    /* Records with a valid MAC but invalid content (only a key holder could
     * make these) are still refused. */
    struct {
        size_t at;
        uint8_t value;
    } edits[] = {
        {0, 2},                    /* version */
        {1, 0},                    /* purpose */
        {1, 3},                    /* purpose */
        {18, 0},                   /* principal length 0 */
        {18, 200},                 /* principal length past the end */
        {18 + 1 + 11, 1},          /* repository length high byte */
        {18 + 1 + 11 + 1, 0},      /* repository length 0 */
        {18 + 1 + 11 + 1, 99},     /* repository length past the end */
        {18 + 1 + 11 + 2 + 8, 70}, /* digest length short by one */
        {18 + 1 + 11 + 2 + 8, 72}, /* digest length long by one */
        {19, ' '},                 /* principal with a space */
        {19, 0x7f},                /* principal with DEL */
    };
    for (size_t k = 0; k < sizeof(edits) / sizeof(edits[0]); k++) {
        memcpy(copy, rec, n);
        copy[edits[k].at] = edits[k].value;
        encode_record(copy, n, true, bad);
        CHECK_INT(verify_download(bad, NOW), BERTH_EINVAL);
    }
    /* expires <= issued, and times above INT64_MAX. */
    memcpy(copy, rec, n);
    put_u64(copy + 10, (uint64_t)NOW);
    encode_record(copy, n, true, bad);
    CHECK_INT(verify_download(bad, NOW - 10), BERTH_EINVAL);
    memcpy(copy, rec, n);
    put_u64(copy + 10, UINT64_MAX);
    encode_record(copy, n, true, bad);
    CHECK_INT(verify_download(bad, NOW), BERTH_EINVAL);
    /* The helper really produces acceptable tokens when nothing changes. */
    memcpy(copy, rec, n);
    encode_record(copy, n, true, bad);
    CHECK_INT(verify_download(bad, NOW), BERTH_OK);
}

static void test_issue_errors(void)
{
    char tok[AUTHTOKEN_MAX_LEN + 1];
    struct authtoken t = login_token();
    uint8_t long_key[AUTHTOKEN_KEY_MAX + 1] = {0};
    CHECK_INT(authtoken_issue(key, 31, &t, tok, sizeof(tok)), BERTH_EINVAL);
    CHECK_INT(authtoken_issue(long_key, sizeof(long_key), &t, tok, sizeof(tok)), BERTH_EINVAL);
    CHECK_INT(authtoken_issue(long_key, AUTHTOKEN_KEY_MAX, &t, tok, sizeof(tok)), BERTH_OK);
    CHECK_INT(authtoken_issue(NULL, 32, &t, tok, sizeof(tok)), BERTH_EINVAL);

    t.principal[0] = '\0';
    CHECK_INT(authtoken_issue(key, sizeof(key), &t, tok, sizeof(tok)), BERTH_EINVAL);
    snprintf(t.principal, sizeof(t.principal), "has space");
    CHECK_INT(authtoken_issue(key, sizeof(key), &t, tok, sizeof(tok)), BERTH_EINVAL);
    memset(t.principal, 'P', sizeof(t.principal)); /* no NUL: over the limit */
    CHECK_INT(authtoken_issue(key, sizeof(key), &t, tok, sizeof(tok)), BERTH_EINVAL);

    t = login_token();
    snprintf(t.repository, sizeof(t.repository), "team/app");
    CHECK_INT(authtoken_issue(key, sizeof(key), &t, tok, sizeof(tok)), BERTH_EINVAL);
    t = download_token();
    t.digest[0] = '\0';
    CHECK_INT(authtoken_issue(key, sizeof(key), &t, tok, sizeof(tok)), BERTH_EINVAL);
    t = download_token();
    t.repository[0] = '\0';
    CHECK_INT(authtoken_issue(key, sizeof(key), &t, tok, sizeof(tok)), BERTH_EINVAL);
    t = login_token();
    t.expires = t.issued;
    CHECK_INT(authtoken_issue(key, sizeof(key), &t, tok, sizeof(tok)), BERTH_EINVAL);
    t = login_token();
    t.issued = -1;
    CHECK_INT(authtoken_issue(key, sizeof(key), &t, tok, sizeof(tok)), BERTH_EINVAL);
    t = login_token();
    t.purpose = (enum authtoken_purpose)7;
    CHECK_INT(authtoken_issue(key, sizeof(key), &t, tok, sizeof(tok)), BERTH_EINVAL);

    uint8_t k1[AUTHTOKEN_KEY_LEN], k2[AUTHTOKEN_KEY_LEN];
    CHECK_INT(authtoken_key_generate(k1), BERTH_OK);
    CHECK_INT(authtoken_key_generate(k2), BERTH_OK);
    CHECK(memcmp(k1, k2, sizeof(k1)) != 0);
}

static void test_basic(void)
{
    char out[AUTHTOKEN_BASIC_MAX_LEN + 1], pw[AUTHTOKEN_MAX_LEN + 1];
    CHECK_INT(authtoken_basic_encode("abc", out, sizeof(out)), BERTH_OK);
    CHECK_STR(out, "QVdTOmFiYw==");
    CHECK_INT(authtoken_basic_encode("abc", out, 12), BERTH_ETOOBIG);
    CHECK_INT(authtoken_basic_encode("a:c", out, sizeof(out)), BERTH_EINVAL);
    CHECK_INT(authtoken_basic_encode("a c", out, sizeof(out)), BERTH_EINVAL);
    CHECK_INT(authtoken_basic_encode("a\nc", out, sizeof(out)), BERTH_EINVAL);

    /* A real token survives the ECR round trip: base64 -> "AWS:" split. */
    struct authtoken t = login_token();
    char tok[AUTHTOKEN_MAX_LEN + 1];
    CHECK_INT(authtoken_issue(key, sizeof(key), &t, tok, sizeof(tok)), BERTH_OK);
    CHECK_INT(authtoken_basic_encode(tok, out, sizeof(out)), BERTH_OK);
    CHECK_INT(strlen(out) % 4, 0);
    CHECK_INT(authtoken_basic_decode(out, strlen(out), pw, sizeof(pw)), BERTH_OK);
    CHECK_STR(pw, tok);
    CHECK_INT(verify_login(pw, NOW), BERTH_OK);
    CHECK_INT(authtoken_basic_decode(out, strlen(out), pw, strlen(tok)), BERTH_ETOOBIG);

    /* base64 of "AWS:a:b", "aws:pw", "AWSX:pw", "nocolon", "AWS:", "AWS:a\0b" */
    CHECK_INT(authtoken_basic_decode("QVdTOmE6Yg==", 12, pw, sizeof(pw)), BERTH_OK);
    CHECK_STR(pw, "a:b");
    CHECK_INT(authtoken_basic_decode("YXdzOnB3", 8, pw, sizeof(pw)), BERTH_EINVAL);
    CHECK_INT(authtoken_basic_decode("QVdTWDpwdw==", 12, pw, sizeof(pw)), BERTH_EINVAL);
    CHECK_INT(authtoken_basic_decode("bm9jb2xvbg==", 12, pw, sizeof(pw)), BERTH_EINVAL);
    CHECK_INT(authtoken_basic_decode("QVdTOg==", 8, pw, sizeof(pw)), BERTH_OK);
    CHECK_STR(pw, "");
    CHECK_INT(verify_login(pw, NOW), BERTH_EINVAL);
    CHECK_INT(authtoken_basic_decode("QVdTOmEAYg==", 12, pw, sizeof(pw)), BERTH_EINVAL);
    CHECK_INT(authtoken_basic_decode("QVdTOmFiYw", 10, pw, sizeof(pw)), BERTH_EINVAL);
    CHECK_INT(authtoken_basic_decode("QVdT*mFiYw==", 12, pw, sizeof(pw)), BERTH_EINVAL);
    CHECK_INT(authtoken_basic_decode("", 0, pw, sizeof(pw)), BERTH_EINVAL);
    char huge[AUTHTOKEN_BASIC_MAX_LEN + 8];
    memset(huge, 'A', sizeof(huge));
    CHECK_INT(authtoken_basic_decode(huge, sizeof(huge), pw, sizeof(pw)), BERTH_EINVAL);
}

static void test_bearer_and_refresh(void)
{
    struct authtoken in = login_token(), out;
    in.purpose = AUTHTOKEN_BEARER;
    in.expires = NOW + 300;
    snprintf(in.scope, sizeof(in.scope), "repository:team/app:pull,push registry:catalog:*");
    char tok[AUTHTOKEN_BEARER_MAX_LEN + 1];
    CHECK_INT(authtoken_issue(key, sizeof(key), &in, tok, sizeof(tok)), BERTH_OK);
    memset(&out, 0x55, sizeof(out));
    CHECK_INT(authtoken_verify(key, sizeof(key), tok, AUTHTOKEN_BEARER, NULL, NULL, NOW, &out),
              BERTH_OK);
    CHECK_INT(out.purpose, AUTHTOKEN_BEARER);
    CHECK_STR(out.scope, "repository:team/app:pull,push registry:catalog:*");
    CHECK_STR(out.repository, "");
    CHECK_STR(out.principal, "AKIDEXAMPLE");
    /* not a login or refresh token, expired at its end, not with another key */
    CHECK_INT(verify_login(tok, NOW), BERTH_EINVAL);
    CHECK_INT(authtoken_verify(key, sizeof(key), tok, AUTHTOKEN_REFRESH, NULL, NULL, NOW, NULL),
              BERTH_EINVAL);
    CHECK_INT(
        authtoken_verify(key, sizeof(key), tok, AUTHTOKEN_BEARER, NULL, NULL, NOW + 300, NULL),
        BERTH_EDENIED);
    CHECK_INT(authtoken_verify(other_key, sizeof(other_key), tok, AUTHTOKEN_BEARER, NULL, NULL, NOW,
                               NULL),
              BERTH_EINVAL);

    /* an empty scope is a token that grants nothing; an anonymous principal */
    in.scope[0] = '\0';
    snprintf(in.principal, sizeof(in.principal), AUTHTOKEN_ANONYMOUS);
    CHECK_INT(authtoken_issue(key, sizeof(key), &in, tok, sizeof(tok)), BERTH_OK);
    CHECK_INT(authtoken_verify(key, sizeof(key), tok, AUTHTOKEN_BEARER, NULL, NULL, NOW, &out),
              BERTH_OK);
    CHECK_STR(out.scope, "");
    CHECK_STR(out.principal, "-");

    /* the largest scope fits AUTHTOKEN_BEARER_MAX_LEN */
    memset(in.scope, 's', AUTHTOKEN_SCOPE_MAX);
    in.scope[AUTHTOKEN_SCOPE_MAX] = '\0';
    memset(in.principal, 'P', AUTHTOKEN_PRINCIPAL_MAX);
    in.principal[AUTHTOKEN_PRINCIPAL_MAX] = '\0';
    CHECK_INT(authtoken_issue(key, sizeof(key), &in, tok, sizeof(tok)), BERTH_OK);
    CHECK(strlen(tok) <= AUTHTOKEN_BEARER_MAX_LEN);
    CHECK_INT(authtoken_verify(key, sizeof(key), tok, AUTHTOKEN_BEARER, NULL, NULL, NOW, NULL),
              BERTH_OK);
    /* a scope with a control character, a bearer token with a repository */
    in = login_token();
    in.purpose = AUTHTOKEN_BEARER;
    snprintf(in.scope, sizeof(in.scope), "repository:a:pull\n");
    CHECK_INT(authtoken_issue(key, sizeof(key), &in, tok, sizeof(tok)), BERTH_EINVAL);
    in.scope[0] = '\0';
    snprintf(in.repository, sizeof(in.repository), "team/app");
    CHECK_INT(authtoken_issue(key, sizeof(key), &in, tok, sizeof(tok)), BERTH_EINVAL);

    /* refresh: no scope, its own purpose */
    struct authtoken rt = login_token();
    rt.purpose = AUTHTOKEN_REFRESH;
    char rtok[AUTHTOKEN_MAX_LEN + 1];
    CHECK_INT(authtoken_issue(key, sizeof(key), &rt, rtok, sizeof(rtok)), BERTH_OK);
    CHECK_INT(authtoken_verify(key, sizeof(key), rtok, AUTHTOKEN_REFRESH, NULL, NULL, NOW, &out),
              BERTH_OK);
    CHECK_INT(out.purpose, AUTHTOKEN_REFRESH);
    CHECK_INT(authtoken_verify(key, sizeof(key), rtok, AUTHTOKEN_BEARER, NULL, NULL, NOW, NULL),
              BERTH_EINVAL);
    CHECK_INT(verify_login(rtok, NOW), BERTH_EINVAL);
    snprintf(rt.scope, sizeof(rt.scope), "repository:a:pull");
    CHECK_INT(authtoken_issue(key, sizeof(key), &rt, rtok, sizeof(rtok)), BERTH_EINVAL);
    /* and a login token with a scope is refused too */
    struct authtoken lt = login_token();
    snprintf(lt.scope, sizeof(lt.scope), "x");
    CHECK_INT(authtoken_issue(key, sizeof(key), &lt, rtok, sizeof(rtok)), BERTH_EINVAL);
}

/* When the MAC cannot be computed, a good token is neither issued nor
 * called bad: the caller gets the error and answers a server error. */
static void test_mac_failure(void)
{
    struct authtoken in = login_token();
    char tok[AUTHTOKEN_MAX_LEN + 1];
    CHECK_INT(authtoken_issue(key, sizeof(key), &in, tok, sizeof(tok)), BERTH_OK);
    digest_fault_hmac(true);
    CHECK_INT(authtoken_verify(key, sizeof(key), tok, AUTHTOKEN_LOGIN, NULL, NULL, NOW, NULL),
              BERTH_ENOMEM);
    char again[AUTHTOKEN_MAX_LEN + 1];
    CHECK_INT(authtoken_issue(key, sizeof(key), &in, again, sizeof(again)), BERTH_ENOMEM);
    digest_fault_hmac(false);
    CHECK_INT(authtoken_verify(key, sizeof(key), tok, AUTHTOKEN_LOGIN, NULL, NULL, NOW, NULL),
              BERTH_OK);
}

int main(void)
{
    RUN(test_login_round_trip);
    RUN(test_download_scope);
    RUN(test_expiry);
    RUN(test_tampering);
    RUN(test_issue_errors);
    RUN(test_basic);
    RUN(test_bearer_and_refresh);
    RUN(test_mac_failure);
    return unit_report("test_authtoken");
}
