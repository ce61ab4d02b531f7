/*
 * Unit tests for storage/spec/sigv4.c. The reference vector is from
 * reference/ecr-api.md section 1.5 (aws-cli 1.45.11). The other expected
 * signatures were produced independently with botocore 1.43.11's
 * SigV4Auth (service "ecr", region eu-west-1, the reference key pair,
 * timestamp 20261126T095037Z) for the request described in each test.
 */
#include "storage/spec/digest.h"
#include "unit.h"

#include "storage/spec/sigv4.c"

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define T0 1795686637 /* 20261126T095037Z */
#define BODY                                                                                       \
    "{\"repositoryName\": \"foo/bar\", \"imageScanningConfiguration\": {\"scanOnPush\": true}}"
#define TARGET "AmazonEC2ContainerRegistry_V20150921.CreateRepository"
#define SCOPE AKID "/20261126/eu-west-1/ecr/aws4_request"
#define VECTOR_SIG "a2e3f5ac0596b389be343a7df8aa0d8e735f27c0884e8835062cce23e1a055c0"
#define VECTOR_AUTH                                                                                \
    "AWS4-HMAC-SHA256 Credential=" SCOPE                                                           \
    ", SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" VECTOR_SIG

/* A request with up to 16 headers, built per test. */
struct treq {
    struct sigv4_header h[16];
    struct sigv4_request r;
};

static void treq_init(struct treq *t, const char *path, const char *query, const char *body)
{
    memset(t, 0, sizeof(*t));
    t->r.method = "POST";
    t->r.path = path;
    t->r.query = query;
    t->r.headers = t->h;
    t->r.body = body;
    t->r.body_len = strlen(body);
}

static void add(struct treq *t, const char *name, const char *value)
{
    t->h[t->r.header_count].name = name;
    t->h[t->r.header_count].value = value;
    t->r.header_count++;
}

/* The headers the captured ECR calls below sign, in this order (h[0..3]):
 * Content-Type, X-Amz-Target, Host, X-Amz-Date. */
static void add_json_headers(struct treq *t)
{
    add(t, "Content-Type", "application/x-amz-json-1.1");
    add(t, "X-Amz-Target", TARGET);
    add(t, "Host", "127.0.0.1:18765");
    add(t, "X-Amz-Date", "20261126T095037Z");
}

/* The captured CreateRepository request of the reference, minus auth. */
static void vector_request(struct treq *t)
{
    treq_init(t, "/", NULL, BODY);
    add(t, "Host", "127.0.0.1:18765");
    add(t, "Accept-Encoding", "identity");
    add(t, "X-Amz-Target", TARGET);
    add(t, "Content-Type", "application/x-amz-json-1.1");
    add(t, "User-Agent", "aws-cli/1.45.11 md/Botocore#1.43.11 botocore/1.43.11");
    add(t, "X-Amz-Date", "20261126T095037Z");
    add(t, "amz-sdk-invocation-id", "11d7f6fa-0000-0000-0000-000000000000");
    add(t, "amz-sdk-request", "attempt=1");
    add(t, "Content-Length", "81");
}

static struct sigv4_verify_opts opts_at(int64_t now)
{
    struct sigv4_verify_opts o;
    memset(&o, 0, sizeof(o));
    o.now = now;
    return o;
}

/* parse + verify with the reference secret; returns the refusal error. */
static enum sigv4_error check(const struct treq *t, const struct sigv4_verify_opts *o,
                              struct sigv4_refusal *r)
{
    struct sigv4_auth a;
    memset(r, 0, sizeof(*r));
    enum berth_err rc = sigv4_parse(&t->r, &a, r);
    if (rc != BERTH_OK) {
        CHECK_INT(rc, BERTH_EDENIED);
        return r->error;
    }
    rc = sigv4_verify(&t->r, &a, SECRET, strlen(SECRET), o, r);
    if (rc != BERTH_OK) {
        CHECK_INT(rc, BERTH_EDENIED);
        return r->error;
    }
    return SIGV4_ERR_NONE;
}

static void test_vector_canonical(void)
{
    struct treq t;
    vector_request(&t);
    struct buf b;
    buf_init(&b, SIGV4_CANONICAL_MAX);
    char hash[65];
    body_hash_hex(&t.r, hash);
    CHECK_STR(hash, "027957ea81870c9c6d223f387e5e49f8112a1aaebef3b5cc1bb597164905f73f");
    CHECK_INT(canonical_request(&b, &t.r, "content-type;host;x-amz-date;x-amz-target", hash, false),
              BERTH_OK);
    CHECK_STR(buf_cstr(&b), "POST\n"
                            "/\n"
                            "\n"
                            "content-type:application/x-amz-json-1.1\n"
                            "host:127.0.0.1:18765\n"
                            "x-amz-date:20261126T095037Z\n"
                            "x-amz-target:" TARGET "\n"
                            "\n"
                            "content-type;host;x-amz-date;x-amz-target\n"
                            "027957ea81870c9c6d223f387e5e49f8112a1aaebef3b5cc1bb597164905f73f");
    /* The StringToSign's last line is the hash of that text. */
    uint8_t h[32];
    char hex[65];
    CHECK_INT(digest_sha256_raw(b.data, b.len, h), BERTH_OK);
    str_hex_encode(h, 32, hex);
    CHECK_STR(hex, "a3102689de5c3f82b68da87c0a4e81982da558cc894855a5c7625d389285644f");
    char sig[65];
    CHECK_INT(
        signature_hex(SECRET, strlen(SECRET), "20261126T095037Z", "eu-west-1", "ecr", &b, sig),
        BERTH_OK);
    CHECK_STR(sig, VECTOR_SIG);
    /* the canonical request's hash failing is an error, not a signature */
    digest_fault_hash(true);
    CHECK_INT(
        signature_hex(SECRET, strlen(SECRET), "20261126T095037Z", "eu-west-1", "ecr", &b, sig),
        BERTH_ENOMEM);
    digest_fault_hash(false);
    buf_fini(&b);
}

static void test_vector_verify(void)
{
    struct treq t;
    vector_request(&t);
    add(&t, "Authorization", VECTOR_AUTH);
    struct sigv4_auth a;
    struct sigv4_refusal r;
    CHECK_INT(sigv4_parse(&t.r, &a, &r), BERTH_OK);
    CHECK_STR(a.access_key_id, AKID);
    CHECK_STR(a.scope_date, "20261126");
    CHECK_STR(a.region, "eu-west-1");
    CHECK_STR(a.service, "ecr");
    CHECK_STR(a.terminator, "aws4_request");
    CHECK_STR(a.signed_headers, "content-type;host;x-amz-date;x-amz-target");
    CHECK_STR(a.signature, VECTOR_SIG);
    CHECK_STR(a.amz_date, "20261126T095037Z");
    CHECK_INT(a.request_time, T0);
    CHECK(!a.has_security_token);
    struct sigv4_verify_opts o = opts_at(T0);
    CHECK_INT(sigv4_verify(&t.r, &a, SECRET, strlen(SECRET), &o, &r), BERTH_OK);
    /* a MAC that cannot be computed is a server error, not a bad signature */
    digest_fault_hmac(true);
    CHECK_INT(sigv4_verify(&t.r, &a, SECRET, strlen(SECRET), &o, &r), BERTH_ENOMEM);
    digest_fault_hmac(false);
    CHECK_INT(sigv4_verify(&t.r, &a, SECRET, strlen(SECRET), &o, &r), BERTH_OK);
    /* and so is a hash (the body's, the canonical request's) that cannot be */
    digest_fault_hash(true);
    CHECK_INT(sigv4_verify(&t.r, &a, SECRET, strlen(SECRET), &o, &r), BERTH_ENOMEM);
    digest_fault_hash(false);
    CHECK_INT(sigv4_verify(&t.r, &a, SECRET, strlen(SECRET), &o, &r), BERTH_OK);

    /* The body hash may be supplied precomputed instead. */
    t.r.body = NULL;
    t.r.body_len = 0;
    t.r.body_sha256 = "027957EA81870C9C6D223F387E5E49F8112A1AAEBEF3B5CC1BB597164905F73F";
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_NONE);
    digest_fault_hash(true); /* no body to hash: the canonical request's hash fails */
    CHECK_INT(sigv4_verify(&t.r, &a, SECRET, strlen(SECRET), &o, &r), BERTH_ENOMEM);
    digest_fault_hash(false);
}

static void test_vector_sign(void)
{
    struct treq t;
    vector_request(&t);
    /* Sign only what botocore signed: the others are added after signing. */
    t.r.header_count = 0;
    add(&t, "X-Amz-Target", TARGET);
    add(&t, "Host", "127.0.0.1:18765");
    add(&t, "User-Agent", "aws-cli/1.45.11"); /* never signed */
    add(&t, "Content-Type", "application/x-amz-json-1.1");
    add(&t, "X-Amz-Date", "20261126T095037Z");
    struct sigv4_credentials c = {AKID, SECRET, "eu-west-1", NULL, false};
    char out[512];
    CHECK_INT(sigv4_sign(&t.r, &c, out, sizeof(out)), BERTH_OK);
    CHECK_STR(out, VECTOR_AUTH);
    CHECK_INT(sigv4_sign(&t.r, &c, out, 40), BERTH_ETOOBIG);
    digest_fault_hmac(true);
    CHECK_INT(sigv4_sign(&t.r, &c, out, sizeof(out)), BERTH_ENOMEM);
    digest_fault_hmac(false);
    digest_fault_hash(true);
    CHECK_INT(sigv4_sign(&t.r, &c, out, sizeof(out)), BERTH_ENOMEM);
    digest_fault_hash(false);
    CHECK_INT(sigv4_sign(&t.r, &c, out, sizeof(out)), BERTH_OK);
    CHECK_STR(out, VECTOR_AUTH);

    /* Missing Host or X-Amz-Date, or a bad date, cannot be signed. */
    t.r.header_count = 4;
    CHECK_INT(sigv4_sign(&t.r, &c, out, sizeof(out)), BERTH_EINVAL);
    t.h[1].name = "X-Host";
    t.r.header_count = 5;
    CHECK_INT(sigv4_sign(&t.r, &c, out, sizeof(out)), BERTH_EINVAL);
    t.h[1].name = "Host";
    t.h[4].value = "2026-11-26T09:50:37Z";
    CHECK_INT(sigv4_sign(&t.r, &c, out, sizeof(out)), BERTH_EINVAL);

    char d[SIGV4_AMZ_DATE_LEN + 1];
    sigv4_format_amz_date(T0, d);
    CHECK_STR(d, "20261126T095037Z");
    sigv4_format_amz_date(0, d);
    CHECK_STR(d, "19700101T000000Z");
    sigv4_format_amz_date(-5, d);
    CHECK_STR(d, "19700101T000000Z");
    sigv4_format_amz_date(951782400, d); /* 2000 is a leap year */
    CHECK_STR(d, "20000229T000000Z");
    sigv4_format_amz_date(INT64_MAX, d);
    CHECK_STR(d, "99991231T235959Z");
    /* format and parse agree everywhere in range */
    int mismatches = 0;
    for (int64_t s = 0; s < 253402300800; s += 86400 * 7 + 3671) {
        int64_t back = -1;
        sigv4_format_amz_date(s, d);
        if (!parse_amz_date(d, &back) || back != s) {
            mismatches++;
        }
    }
    CHECK_INT(mismatches, 0);
}

/* Requests signed by botocore: each must verify. */
/* S3 signing (the blob backend's requests), against AWS's published
 * example (GET /test.txt with a Range) and botocore's S3SigV4Auth for the
 * rest: the path is signed as sent (not normalised, not encoded again),
 * the query canonicalised as for every service. */
#define S3_AKID "AKIAIOSFODNN7EXAMPLE"
#define S3_SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define S3_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define S3_PREFIX                                                                                  \
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "

static void s3_sign_check(const char *method, const char *host, const char *path, const char *query,
                          const char *range, const char *want)
{
    struct treq t;
    treq_init(&t, path, query, "");
    t.r.method = method;
    add(&t, "Host", host);
    if (range != NULL) {
        add(&t, "Range", range);
    }
    add(&t, "X-Amz-Date", "20130524T000000Z");
    add(&t, "X-Amz-Content-SHA256", S3_EMPTY);
    struct sigv4_credentials c = {S3_AKID, S3_SECRET, "us-east-1", "s3", true};
    char out[512];
    CHECK_INT(sigv4_sign(&t.r, &c, out, sizeof(out)), BERTH_OK);
    CHECK_STR(out, want);
}

static void test_s3_sign(void)
{
    s3_sign_check("GET", "examplebucket.s3.amazonaws.com", "/test.txt", NULL, "bytes=0-9",
                  S3_PREFIX
                  "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
                  "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    s3_sign_check("PUT", "127.0.0.1:8080", "/bkt/pre%20fix/a%2Bb//./x", NULL, NULL,
                  S3_PREFIX
                  "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
                  "Signature=d8c5eb5b85c8afa6372263552e07a455b7d7fa0b02335ca1bd9b09c6c6201097");
    s3_sign_check("POST", "127.0.0.1:8080", "/bkt/k", "uploads", NULL,
                  S3_PREFIX
                  "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
                  "Signature=af0d343062ea10b95328870bf150b51f24e40c63bf7d8b581ef7b9ebbbe966e7");
    s3_sign_check("PUT", "127.0.0.1:8080", "/bkt/k", "partNumber=2&uploadId=a%2Fb", NULL,
                  S3_PREFIX
                  "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
                  "Signature=9c86f309411074c878c89b7bbeff38123bc309b625bf930318bfa107a8e2c81e");

    /* The same odd path signed for another service is normalised and
     * encoded again: a different signature. */
    struct treq t;
    treq_init(&t, "/bkt/pre%20fix/a%2Bb//./x", NULL, "");
    t.r.method = "PUT";
    add(&t, "Host", "127.0.0.1:8080");
    add(&t, "X-Amz-Date", "20130524T000000Z");
    add(&t, "X-Amz-Content-SHA256", S3_EMPTY);
    struct sigv4_credentials c = {S3_AKID, S3_SECRET, "us-east-1", "s3", false};
    char out[512];
    CHECK_INT(sigv4_sign(&t.r, &c, out, sizeof(out)), BERTH_OK);
    CHECK(strstr(out, "d8c5eb5b85c8afa6372263552e07a455b7d7fa0b02335ca1bd9b09c6c6201097") == NULL);
}

/* Presigned URLs: AWS's published example ("Authenticating Requests:
 * Using Query Parameters") and botocore's S3SigV4QueryAuth for a path-style
 * key with encoded bytes. */
static void test_s3_presign(void)
{
    struct sigv4_credentials c = {S3_AKID, S3_SECRET, "us-east-1", "s3", true};
    int64_t t = 1369353600; /* 20130524T000000Z */
    char out[1024];
    CHECK_INT(sigv4_presign("GET", "/test.txt", "examplebucket.s3.amazonaws.com", &c, t, 86400, out,
                            sizeof(out)),
              BERTH_OK);
    CHECK_STR(out, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F"
                   "20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&"
                   "X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature="
                   "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
    CHECK_INT(sigv4_presign("GET", "/bkt/pre%20fix/a%2Bb", "127.0.0.1:8080", &c, t, 86400, out,
                            sizeof(out)),
              BERTH_OK);
    CHECK(strstr(out, "X-Amz-Signature="
                      "530c3cb3b56786fa79495baba87b0e55dc777f9753037172eeac6941198f4e3b") != NULL);
    CHECK_INT(sigv4_presign("GET", "/test.txt", "h", &c, t, 0, out, sizeof(out)), BERTH_EINVAL);
    CHECK_INT(sigv4_presign("GET", "/test.txt", "h", &c, t, 604801, out, sizeof(out)),
              BERTH_EINVAL);
    CHECK_INT(sigv4_presign("GET", "/test.txt", "h", &c, t, 60, out, 100), BERTH_ETOOBIG);
    /* no URL when the canonical request cannot be hashed */
    digest_fault_hash(true);
    CHECK_INT(sigv4_presign("GET", "/test.txt", "h", &c, t, 60, out, sizeof(out)), BERTH_ENOMEM);
    digest_fault_hash(false);
}

static void test_botocore_cases(void)
{
    struct treq t;
    struct sigv4_refusal r;
    struct sigv4_verify_opts o = opts_at(T0);

    /* Session credentials: the token header is signed and reported. */
    treq_init(&t, "/", NULL, BODY);
    add_json_headers(&t);
    add(&t, "X-Amz-Security-Token", "FQoGZXIvYXdzEXAMPLETOKEN+/=");
    add(&t, "Authorization",
        "AWS4-HMAC-SHA256 Credential=" SCOPE
        ", SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, "
        "Signature=6d51b62c85a6ed1d78cdd5375f2fe64e77c5fd9a3d764d3d8343b15d71c30e31");
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_NONE);
    struct sigv4_auth a;
    CHECK_INT(sigv4_parse(&t.r, &a, &r), BERTH_OK);
    CHECK(a.has_security_token);
    /* A different token no longer matches the signature. */
    t.h[4].value = "FQoGZXIvYXdzEXAMPLETOKEN+/X";
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_INVALID_SIGNATURE);

    /* --endpoint-url http://h:8080/some/prefix: signed over that path and
     * the host with its port. */
    treq_init(&t, "/some/prefix", NULL, BODY);
    add(&t, "X-Amz-Date", "20261126T095037Z");
    add(&t, "Host", "h:8080");
    add(&t, "X-Amz-Target", TARGET);
    add(&t, "Content-Type", "application/x-amz-json-1.1");
    add(&t, "Authorization",
        "AWS4-HMAC-SHA256 Credential=" SCOPE
        ", SignedHeaders=content-type;host;x-amz-date;x-amz-target, "
        "Signature=60bc206b88f50b603b8d35b69860f36a9b734c285fa3f7f9c1af5a1ecd90de25");
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_NONE);
    t.r.path = "/";
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_INVALID_SIGNATURE);
    t.r.path = "/some/prefix";
    t.h[1].value = "h";
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_INVALID_SIGNATURE);

    /* A query string, sorted by key then value. */
    treq_init(&t, "/", "b=x%2Fy&a=1&c=&a=0", "{}");
    add_json_headers(&t);
    add(&t, "Authorization",
        "AWS4-HMAC-SHA256 Credential=" SCOPE
        ", SignedHeaders=content-type;host;x-amz-date;x-amz-target, "
        "Signature=adef09658e7ebcc8177b9e4c3374462226ee1b5be0a1fbea83676206ab8977df");
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_NONE);
    t.r.query = "a=0&a=1&b=x%2fy&c"; /* same canonical form */
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_NONE);
    t.r.query = "a=0&a=1&b=x%2Fy&c=d";
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_INVALID_SIGNATURE);
    t.r.query = NULL;
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_INVALID_SIGNATURE);

    /* Header values are trimmed and inner whitespace runs collapsed. */
    treq_init(&t, "/", NULL, "");
    add_json_headers(&t);
    add(&t, "X-Custom", "  a   b \t c  ");
    add(&t, "Authorization",
        "AWS4-HMAC-SHA256 Credential=" SCOPE
        ", SignedHeaders=content-type;host;x-amz-date;x-amz-target;x-custom, "
        "Signature=a63dee44b6c1efffbdeadec8a5f2e97bcb870519b144843545decf9dc27b712d");
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_NONE);
    t.h[4].value = "a b c";
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_NONE);
    t.h[4].value = "a b  c\t";
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_NONE);
    t.h[4].value = "a bc";
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_INVALID_SIGNATURE);
    /* Header names are case-insensitive; the order in the request does not
     * matter. */
    t.h[4].value = "a b c";
    struct sigv4_header rev[6];
    for (size_t i = 0; i < 6; i++) {
        rev[i] = t.h[5 - i];
    }
    rev[4].name = "X-AMZ-TARGET";
    rev[2].name = "x-AMZ-date";
    rev[5].name = "content-TYPE";
    memcpy(t.h, rev, sizeof(rev));
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_NONE);

    /* Dot segments and empty segments removed, the encoded path encoded
     * again ("/a/./b/../c//d%20e/" -> "/a/c/d%2520e/"). */
    treq_init(&t, "/a/./b/../c//d%20e/", NULL, "{}");
    add_json_headers(&t);
    add(&t, "Authorization",
        "AWS4-HMAC-SHA256 Credential=" SCOPE
        ", SignedHeaders=content-type;host;x-amz-date;x-amz-target, "
        "Signature=dcc664dce0d63e28008f7a619004a766373b720ea667fb97beef764ab3320f65");
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_NONE);
    t.r.path = "/a/c/d%20e/";
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_NONE);
    t.r.path = "/a/c/d e/"; /* decoded: not what was signed */
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_INVALID_SIGNATURE);
}

static void test_canonical_parts(void)
{
    static const struct {
        const char *in, *out;
    } uris[] = {
        {"", "/"},
        {NULL, "/"},
        {"/", "/"},
        {"//", "/"},
        {"/./", "/"},
        {"/a/../..", "/"},
        {"/a/b/", "/a/b/"},
        {"/a//b", "/a/b"},
        {"/./a/", "/a/"},
        {"/a/b/../../c", "/c"},
        {"/%7e~", "/%257e~"},
        {"/a b:c", "/a%20b%3Ac"},
        {"/-._~AZaz09", "/-._~AZaz09"},
    };
    for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
        struct buf b;
        buf_init(&b, 0);
        CHECK_INT(canonical_uri(&b, uris[i].in), BERTH_OK);
        CHECK_STR(buf_cstr(&b), uris[i].out);
        buf_fini(&b);
    }
    static const struct {
        const char *in, *out;
    } queries[] = {
        {"", ""},
        {"b=2&a=1", "a=1&b=2"},
        {"a", "a="},
        {"a=%7E", "a=~"},
        {"x=a+b", "x=a%2Bb"},
        {"&&", ""},
        {"%zz=1", "%25zz=1"},
        {"k=%2", "k=%252"},
        {"a=2&a=10&A=1", "A=1&a=10&a=2"},
        {"x=%e1%88%b4", "x=%E1%88%B4"},
        {"a=b=c", "a=b%3Dc"},
    };
    for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
        struct buf b;
        buf_init(&b, 0);
        CHECK_INT(canonical_query(&b, queries[i].in), BERTH_OK);
        CHECK_STR(buf_cstr(&b), queries[i].out);
        buf_fini(&b);
    }
    /* Limits. */
    char big[SIGV4_PATH_MAX + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[0] = '/';
    big[sizeof(big) - 1] = '\0';
    struct buf b;
    buf_init(&b, 0);
    CHECK_INT(canonical_uri(&b, big), BERTH_ETOOBIG);
    CHECK_INT(canonical_query(&b, big), BERTH_ETOOBIG);
    char many[SIGV4_QUERY_PARAMS_MAX * 2 + 4];
    size_t o = 0;
    for (size_t i = 0; i <= SIGV4_QUERY_PARAMS_MAX; i++) {
        many[o++] = 'a';
        many[o++] = '&';
    }
    many[o] = '\0';
    CHECK_INT(canonical_query(&b, many), BERTH_ETOOBIG);
    buf_fini(&b);

    /* Repeated headers are joined with ',' in order; absent ones are empty. */
    struct treq t;
    treq_init(&t, "/", NULL, "");
    add(&t, "X-Dup", "a");
    add(&t, "Other", "z");
    add(&t, "x-dup", "  b   c ");
    buf_init(&b, 0);
    CHECK_INT(canonical_header(&b, &t.r, "x-dup"), BERTH_OK);
    CHECK_INT(canonical_header(&b, &t.r, "absent"), BERTH_OK);
    CHECK_STR(buf_cstr(&b), "x-dup:a,b c\nabsent:\n");
    buf_fini(&b);
}

static void test_security(void)
{
    struct treq t;
    struct sigv4_refusal r;
    struct sigv4_verify_opts o = opts_at(T0);
    vector_request(&t);
    add(&t, "Authorization", VECTOR_AUTH);
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_NONE);

    /* Wrong secret. */
    struct sigv4_auth a;
    CHECK_INT(sigv4_parse(&t.r, &a, &r), BERTH_OK);
    CHECK_INT(sigv4_verify(&t.r, &a, "wrong", 5, &o, &r), BERTH_EDENIED);
    CHECK_INT(r.error, SIGV4_ERR_INVALID_SIGNATURE);
    CHECK_STR(r.message, MSG_MISMATCH);
    CHECK_STR(sigv4_error_name(r.error), "InvalidSignatureException");
    char long_secret[SIGV4_SECRET_MAX + 2];
    memset(long_secret, 'k', sizeof(long_secret));
    CHECK_INT(sigv4_verify(&t.r, &a, long_secret, sizeof(long_secret), &o, &r), BERTH_EINVAL);

    /* Tampered body, tampered signed header; unsigned headers may change. */
    t.r.body = "{\"repositoryName\": \"foo/baz\", \"imageScanningConfiguration\": "
               "{\"scanOnPush\": true}}";
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_INVALID_SIGNATURE);
    t.r.body = BODY;
    t.h[2].value = "AmazonEC2ContainerRegistry_V20150921.DeleteRepository";
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_INVALID_SIGNATURE);
    t.h[2].value = TARGET;
    t.h[4].value = "curl/8";
    t.h[8].value = "999";
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_NONE);
    t.r.method = "PUT";
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_INVALID_SIGNATURE);
    t.r.method = "POST";

    /* A signature of the right shape but wrong, non-hex, or short. */
    static const char *const bad_sigs[] = {
        "b2e3f5ac0596b389be343a7df8aa0d8e735f27c0884e8835062cce23e1a055c0",
        "g2e3f5ac0596b389be343a7df8aa0d8e735f27c0884e8835062cce23e1a055c0",
        "a2e3f5ac0596b389be343a7df8aa0d8e735f27c0884e8835062cce23e1a055c",
        "a2e3f5ac0596b389be343a7df8aa0d8e735f27c0884e8835062cce23e1a055c00",
        "",
    };
    char auth[512];
    for (size_t i = 0; i < sizeof(bad_sigs) / sizeof(bad_sigs[0]); i++) {
        snprintf(auth, sizeof(auth),
                 "AWS4-HMAC-SHA256 Credential=" SCOPE
                 ", SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=%s",
                 bad_sigs[i]);
        t.h[9].value = auth;
        CHECK_INT(check(&t, &o, &r), SIGV4_ERR_INVALID_SIGNATURE);
        CHECK_STR(r.message, MSG_MISMATCH);
    }
    /* Upper-case hex is the same signature. */
    snprintf(auth, sizeof(auth),
             "AWS4-HMAC-SHA256 Credential=" SCOPE
             ", SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=%s",
             "A2E3F5AC0596B389BE343A7DF8AA0D8E735F27C0884E8835062CCE23E1A055C0");
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_NONE);

    /* Signing fewer headers than the request has still verifies (unsigned
     * headers are not covered), but claiming a different list does not. */
    snprintf(auth, sizeof(auth),
             "AWS4-HMAC-SHA256 Credential=" SCOPE
             ", SignedHeaders=content-type;host;x-amz-date, Signature=%s",
             VECTOR_SIG);
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_INVALID_SIGNATURE);
}

static void test_skew(void)
{
    struct treq t;
    struct sigv4_refusal r;
    vector_request(&t);
    add(&t, "Authorization", VECTOR_AUTH);
    struct sigv4_verify_opts o = opts_at(T0 + 300);
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_NONE);
    o.now = T0 - 300;
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_NONE);
    o.now = T0 + 301;
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_INVALID_SIGNATURE);
    CHECK_STR(r.message, "Signature expired: 20261126T095037Z is now earlier than "
                         "20261126T095038Z (20261126T095538Z - 5 min.)");
    o.now = T0 - 301;
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_INVALID_SIGNATURE);
    CHECK_STR(r.message, "Signature not yet current: 20261126T095037Z is still later than "
                         "20261126T095036Z (20261126T094536Z + 5 min.)");
    o.now = T0 + 86400 * 400;
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_INVALID_SIGNATURE);
    CHECK(str_has_prefix(r.message, "Signature expired: 20261126T095037Z is now earlier than "
                                    "20271231T094537Z"));
}

static void test_scope(void)
{
    struct treq t;
    struct sigv4_refusal r;
    struct sigv4_verify_opts o = opts_at(T0);
    vector_request(&t);
    char auth[512];
    add(&t, "Authorization", auth);

    /* Wrong service, terminator and date: reported together, AWS order. */
    snprintf(auth, sizeof(auth),
             "AWS4-HMAC-SHA256 Credential=" AKID "/20261125/eu-west-1/s3/aws5_request, "
             "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" VECTOR_SIG);
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_INVALID_SIGNATURE);
    CHECK_STR(r.message,
              "Credential should be scoped to correct service: 'ecr'. Credential should be "
              "scoped with a valid terminator: 'aws4_request', not 'aws5_request'. Date in "
              "Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
              "'20261125' != '20261126', from '20261126T095037Z'. ");
    snprintf(auth, sizeof(auth),
             "AWS4-HMAC-SHA256 Credential=" AKID "/20261126/eu-west-1/ecr-public/aws4_request, "
             "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" VECTOR_SIG);
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_INVALID_SIGNATURE);
    CHECK_STR(r.message, "Credential should be scoped to correct service: 'ecr'. ");

    /* Regions: any by default, or only a configured set. */
    snprintf(auth, sizeof(auth), "%s", VECTOR_AUTH);
    const char *const only_us[] = {"us-east-1"};
    const char *const both[] = {"us-east-1", "eu-west-1"};
    o.regions = only_us;
    o.region_count = 1;
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_INVALID_SIGNATURE);
    CHECK_STR(r.message, "Credential should be scoped to a valid region, not 'eu-west-1'. ");
    o.regions = both;
    o.region_count = 2;
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_NONE);
    o.regions = NULL;
    o.region_count = 0;
    snprintf(auth, sizeof(auth),
             "AWS4-HMAC-SHA256 Credential=" AKID "/20261126//ecr/aws4_request, "
             "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" VECTOR_SIG);
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_INVALID_SIGNATURE);
    CHECK_STR(r.message, "Credential should be scoped to a valid region, not ''. ");

    /* Another service name can be required (not used by berth). */
    snprintf(auth, sizeof(auth), "%s", VECTOR_AUTH);
    o.service = "s3";
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_INVALID_SIGNATURE);
    CHECK_STR(r.message, "Credential should be scoped to correct service: 's3'. ");
}

static void test_payload_header(void)
{
    struct sigv4_credentials c = {AKID, SECRET, "eu-west-1", NULL, false};
    struct sigv4_refusal r;
    struct sigv4_verify_opts o = opts_at(T0);
    struct treq t;
    char auth[512];

    /* A signed x-amz-content-sha256 that matches the body. */
    treq_init(&t, "/", NULL, BODY);
    add(&t, "Host", "127.0.0.1:18765");
    add(&t, "X-Amz-Date", "20261126T095037Z");
    add(&t, "X-Amz-Content-Sha256",
        "027957ea81870c9c6d223f387e5e49f8112a1aaebef3b5cc1bb597164905f73f");
    CHECK_INT(sigv4_sign(&t.r, &c, auth, sizeof(auth)), BERTH_OK);
    add(&t, "Authorization", auth);
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_NONE);
    /* The body changed: the header no longer matches it. */
    t.r.body = "{}";
    t.r.body_len = 2;
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_INVALID_SIGNATURE);
    CHECK_STR(r.message, MSG_CONTENT_SHA256_MISMATCH);

    /* UNSIGNED-PAYLOAD only when allowed. */
    treq_init(&t, "/", NULL, BODY);
    add(&t, "Host", "127.0.0.1:18765");
    add(&t, "X-Amz-Date", "20261126T095037Z");
    add(&t, "X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD");
    CHECK_INT(sigv4_sign(&t.r, &c, auth, sizeof(auth)), BERTH_OK);
    add(&t, "Authorization", auth);
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_INVALID_SIGNATURE);
    CHECK_STR(r.message, MSG_CONTENT_SHA256_MISMATCH);
    o.allow_unsigned_payload = true;
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_NONE);
    t.r.body = "anything";
    t.r.body_len = 8;
    CHECK_INT(check(&t, &o, &r), SIGV4_ERR_NONE);
}

/* What parse says about an Authorization header value. */
static enum sigv4_error parse_only(const char *authz, struct sigv4_refusal *r)
{
    struct treq t;
    vector_request(&t);
    if (authz != NULL) {
        add(&t, "Authorization", authz);
    }
    struct sigv4_auth a;
    memset(r, 0, sizeof(*r));
    enum berth_err rc = sigv4_parse(&t.r, &a, r);
    if (rc != BERTH_OK) {
        CHECK_INT(rc, BERTH_EDENIED);
        CHECK(r->message[0] != '\0');
        return r->error;
    }
    return SIGV4_ERR_NONE;
}

static void test_parse_tolerant(void)
{
    struct sigv4_refusal r;
    struct sigv4_verify_opts o = opts_at(T0);
    static const char *const forms[] = {
        /* commas without spaces, extra spaces, parameters reordered,
         * unknown parameters, upper-case SignedHeaders, duplicate names */
        "AWS4-HMAC-SHA256 Credential=" SCOPE
        ",SignedHeaders=content-type;host;x-amz-date;x-amz-target,Signature=" VECTOR_SIG,
        "  AWS4-HMAC-SHA256   Credential=" SCOPE " ,  SignedHeaders=content-type;host;"
        "x-amz-date;x-amz-target ,Signature=" VECTOR_SIG "  ",
        "AWS4-HMAC-SHA256 Signature=" VECTOR_SIG ", Credential=" SCOPE
        ", SignedHeaders=content-type;host;x-amz-date;x-amz-target",
        "AWS4-HMAC-SHA256 Credential=" SCOPE
        ", SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" VECTOR_SIG
        ", Foo=bar",
        "AWS4-HMAC-SHA256 Credential=" SCOPE
        ", SignedHeaders=Content-Type;HOST;x-amz-date;X-Amz-Target, Signature=" VECTOR_SIG,
        "AWS4-HMAC-SHA256 Credential=" SCOPE
        ", SignedHeaders=x-amz-target;host;content-type;x-amz-date;host, Signature=" VECTOR_SIG,
    };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        struct treq t;
        vector_request(&t);
        add(&t, "Authorization", forms[i]);
        CHECK_INT(check(&t, &o, &r), SIGV4_ERR_NONE);
    }

    /* Date header instead of X-Amz-Date. */
    struct treq t;
    struct sigv4_auth a;
    vector_request(&t);
    t.h[5].name = "Date";
    t.h[5].value = "Thu, 26 Nov 2026 09:50:37 GMT";
    add(&t, "Authorization", VECTOR_AUTH);
    CHECK_INT(sigv4_parse(&t.r, &a, &r), BERTH_OK);
    CHECK_STR(a.amz_date, "20261126T095037Z");
    CHECK_INT(a.request_time, T0);
    t.h[5].value = "Thu, 31 Nov 2026 09:50:37 GMT";
    CHECK_INT(sigv4_parse(&t.r, &a, &r), BERTH_EDENIED);
    CHECK_STR(r.message, MSG_REQUIRES_DATE);
}

static void test_parse_refusals(void)
{
    struct sigv4_refusal r;

    CHECK_INT(parse_only(NULL, &r), SIGV4_ERR_MISSING_TOKEN);
    CHECK_STR(r.message, "Missing Authentication Token");
    CHECK_STR(sigv4_error_name(r.error), "MissingAuthenticationTokenException");
    CHECK_INT(parse_only("   ", &r), SIGV4_ERR_MISSING_TOKEN);

    CHECK_INT(parse_only("Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.e30.x", &r),
              SIGV4_ERR_INCOMPLETE);
    CHECK_STR(r.message,
              MSG_REQUIRES_CREDENTIAL " " MSG_REQUIRES_SIGNATURE " " MSG_REQUIRES_SIGNED_HEADERS);
    CHECK_STR(sigv4_error_name(r.error), "IncompleteSignatureException");
    CHECK_INT(parse_only("AWS4-HMAC-SHA256", &r), SIGV4_ERR_INCOMPLETE);
    CHECK_INT(parse_only("AWS4-HMAC-SHA256 Credential=" SCOPE, &r), SIGV4_ERR_INCOMPLETE);
    CHECK_STR(r.message, MSG_REQUIRES_SIGNATURE " " MSG_REQUIRES_SIGNED_HEADERS);
    CHECK_INT(parse_only("AWS4-HMAC-SHA256 Credential=AKID /20261126/eu-west-1/ecr/aws4_request,"
                         " SignedHeaders=host, Signature=" VECTOR_SIG,
                         &r),
              SIGV4_ERR_INCOMPLETE);
    CHECK_STR(r.message, "'/20261126/eu-west-1/ecr/aws4_request' not a valid key=value pair "
                         "(missing equal-sign) in Authorization header.");
    CHECK_INT(parse_only("AWS4-HMAC-SHA256 Credential=" AKID "/20261126/eu-west-1/ecr, "
                         "SignedHeaders=host, Signature=" VECTOR_SIG,
                         &r),
              SIGV4_ERR_INCOMPLETE);
    CHECK_STR(r.message, "Credential must have exactly 5 slash-delimited elements, e.g. "
                         "keyid/date/region/service/term, got '" AKID "/20261126/eu-west-1/ecr'");
    CHECK_INT(parse_only("AWS4-HMAC-SHA256 Credential=a/b/c/d/e/f, SignedHeaders=host, "
                         "Signature=" VECTOR_SIG,
                         &r),
              SIGV4_ERR_INCOMPLETE);
    CHECK_INT(parse_only("AWS4-HMAC-SHA256 Credential=" SCOPE ", Credential=" SCOPE
                         ", SignedHeaders=host, Signature=" VECTOR_SIG,
                         &r),
              SIGV4_ERR_INCOMPLETE);
    CHECK_INT(parse_only("AWS4-HMAC-SHA256 Credential=" SCOPE
                         ", SignedHeaders=content-type;x-amz-date, Signature=" VECTOR_SIG,
                         &r),
              SIGV4_ERR_INVALID_SIGNATURE);
    CHECK_STR(r.message, MSG_HOST_NOT_SIGNED);
    static const char *const bad_lists[] = {"",        "host;",    ";host",
                                            "host;;x", "host;a b", "host;a\"b"};
    for (size_t i = 0; i < sizeof(bad_lists) / sizeof(bad_lists[0]); i++) {
        char v[512];
        snprintf(v, sizeof(v),
                 "AWS4-HMAC-SHA256 Credential=" SCOPE ", SignedHeaders=%s, Signature=" VECTOR_SIG,
                 bad_lists[i]);
        CHECK_INT(parse_only(v, &r), SIGV4_ERR_INCOMPLETE);
    }
    CHECK_INT(parse_only("AWS4-ECDSA-P256-SHA256 Credential=" SCOPE
                         ", SignedHeaders=host, Signature=" VECTOR_SIG,
                         &r),
              SIGV4_ERR_INCOMPLETE);
    CHECK_STR(r.message, "Unsupported AWS 'algorithm': 'AWS4-ECDSA-P256-SHA256'");
    CHECK_INT(parse_only("AWS4-HMAC-SHA256 Credential=" SCOPE
                         ", SignedHeaders=host, Signature=\x01" VECTOR_SIG,
                         &r),
              SIGV4_ERR_INCOMPLETE);
    CHECK_INT(parse_only("AWS4-HMAC-SHA256 Credential=" SCOPE
                         ", SignedHeaders=host, Signature=\xc3\xa9" VECTOR_SIG,
                         &r),
              SIGV4_ERR_INCOMPLETE);

    /* Over the limits. */
    char big[SIGV4_AUTH_MAX_LEN + 256];
    snprintf(big, sizeof(big), "AWS4-HMAC-SHA256 Credential=" SCOPE ", Foo=%0*d", 4100, 0);
    CHECK_INT(parse_only(big, &r), SIGV4_ERR_INCOMPLETE);
    char akid[SIGV4_AKID_MAX + 2];
    memset(akid, 'A', sizeof(akid) - 1);
    akid[sizeof(akid) - 1] = '\0';
    snprintf(big, sizeof(big),
             "AWS4-HMAC-SHA256 Credential=%s/20261126/eu-west-1/ecr/aws4_request, "
             "SignedHeaders=host, Signature=" VECTOR_SIG,
             akid);
    CHECK_INT(parse_only(big, &r), SIGV4_ERR_INCOMPLETE);
    akid[SIGV4_AKID_MAX] = '\0'; /* exactly at the limit is fine */
    snprintf(big, sizeof(big),
             "AWS4-HMAC-SHA256 Credential=%s/20261126/eu-west-1/ecr/aws4_request, "
             "SignedHeaders=host, Signature=" VECTOR_SIG,
             akid);
    CHECK_INT(parse_only(big, &r), SIGV4_ERR_NONE);
    char list[SIGV4_SIGNED_HEADERS_MAX + 64];
    size_t o = 0;
    for (int i = 0; i <= SIGV4_SIGNED_HEADER_COUNT_MAX; i++) {
        o += (size_t)snprintf(list + o, sizeof(list) - o, "h%d;", i);
    }
    snprintf(list + o, sizeof(list) - o, "host");
    snprintf(big, sizeof(big),
             "AWS4-HMAC-SHA256 Credential=" SCOPE ", SignedHeaders=%s, Signature=" VECTOR_SIG,
             list);
    CHECK_INT(parse_only(big, &r), SIGV4_ERR_INCOMPLETE);

    /* Two Authorization headers. */
    struct treq t;
    struct sigv4_auth a;
    vector_request(&t);
    add(&t, "Authorization", VECTOR_AUTH);
    add(&t, "authorization", VECTOR_AUTH);
    CHECK_INT(sigv4_parse(&t.r, &a, &r), BERTH_EDENIED);
    CHECK_INT(r.error, SIGV4_ERR_INCOMPLETE);

    /* Dates: missing, malformed, impossible, repeated. */
    vector_request(&t);
    t.h[5].name = "X-Not-Date";
    add(&t, "Authorization", VECTOR_AUTH);
    CHECK_INT(sigv4_parse(&t.r, &a, &r), BERTH_EDENIED);
    CHECK_STR(r.message, MSG_REQUIRES_DATE);
    static const char *const bad_dates[] = {
        "2026-11-26T09:50:37Z", "20261126T095037",  "20261131T095037Z", "20261126T245037Z",
        "20261126t095037z",     "19691231T235959Z", "2026112aT095037Z", ""};
    t.h[5].name = "X-Amz-Date";
    for (size_t i = 0; i < sizeof(bad_dates) / sizeof(bad_dates[0]); i++) {
        t.h[5].value = bad_dates[i];
        CHECK_INT(sigv4_parse(&t.r, &a, &r), BERTH_EDENIED);
        CHECK_INT(r.error, SIGV4_ERR_INCOMPLETE);
        CHECK(str_has_prefix(r.message, "Date must be in ISO-8601 'basic format'."));
    }
    t.h[5].value = "2026\x01\xff"; /* echoed only as printable ASCII */
    CHECK_INT(sigv4_parse(&t.r, &a, &r), BERTH_EDENIED);
    CHECK_STR(r.message, "Date must be in ISO-8601 'basic format'. Got '2026?\?'. See "
                         "http://en.wikipedia.org/wiki/ISO_8601");
    t.h[5].value = "20240229T000000Z"; /* leap day parses */
    CHECK_INT(sigv4_parse(&t.r, &a, &r), BERTH_OK);
    CHECK_INT(a.request_time, 1709164800);
    t.h[5].value = "20261126T095037Z";
    add(&t, "X-Amz-Date", "20261126T095037Z");
    CHECK_INT(sigv4_parse(&t.r, &a, &r), BERTH_EDENIED);

    /* The standard refusals. */
    sigv4_refuse(&r, SIGV4_ERR_UNRECOGNIZED_CLIENT);
    CHECK_INT(r.error, SIGV4_ERR_UNRECOGNIZED_CLIENT);
    CHECK_STR(r.message, "The security token included in the request is invalid.");
    CHECK_STR(sigv4_error_name(r.error), "UnrecognizedClientException");
    sigv4_refuse(&r, SIGV4_ERR_INVALID_SIGNATURE);
    CHECK_STR(r.message, MSG_MISMATCH);
    sigv4_refuse(&r, SIGV4_ERR_NONE);
    CHECK_STR(r.message, "");
    CHECK_STR(sigv4_error_name(SIGV4_ERR_NONE), "");
}

/* Requests signed here verify here, for many shapes. */
static void test_round_trip(void)
{
    struct sigv4_credentials c = {"BERTHKEY0001", "s3cr3t/with+chars", "us-west-2", NULL, false};
    struct sigv4_refusal r;
    struct sigv4_verify_opts o = opts_at(T0 + 17);
    static const char *const paths[] = {"/", "/x/y/", "/a%2Fb", "/v2/../x"};
    static const char *const queries[] = {NULL, "", "z=1&y=%20", "flag"};
    for (size_t p = 0; p < 4; p++) {
        for (size_t q = 0; q < 4; q++) {
            struct treq t;
            char auth[512];
            treq_init(&t, paths[p], queries[q], "payload bytes");
            add(&t, "host", "registry.example:5000");
            add(&t, "x-amz-date", "20261126T095054Z");
            add(&t, "Content-Type", "application/x-amz-json-1.1");
            add(&t, "X-Amz-Target", "AmazonEC2ContainerRegistry_V20150921.ListImages");
            add(&t, "X-Multi", "one");
            add(&t, "X-Multi", "two");
            add(&t, "Connection", "keep-alive");
            CHECK_INT(sigv4_sign(&t.r, &c, auth, sizeof(auth)), BERTH_OK);
            CHECK(strstr(auth, "SignedHeaders=content-type;host;x-amz-date;x-amz-target;"
                               "x-multi,") != NULL);
            add(&t, "Authorization", auth);
            struct sigv4_auth a;
            CHECK_INT(sigv4_parse(&t.r, &a, &r), BERTH_OK);
            CHECK_STR(a.access_key_id, "BERTHKEY0001");
            CHECK_INT(sigv4_verify(&t.r, &a, c.secret, strlen(c.secret), &o, &r), BERTH_OK);
            /* Swapping the repeated header's values changes the signature. */
            t.h[4].value = "two";
            t.h[5].value = "one";
            CHECK_INT(sigv4_verify(&t.r, &a, c.secret, strlen(c.secret), &o, &r), BERTH_EDENIED);
        }
    }
}

/* A request that carries X-Amz-Target or Content-Type must sign them (a
 * captured request's target could otherwise be swapped); one that does
 * not carry them need not. */
static void test_required_signed_headers(void)
{
    struct sigv4_credentials c = {"BERTHKEY0001", "s3cr3t", "us-west-2", NULL, false};
    struct sigv4_verify_opts o = opts_at(T0 + 17);
    static const struct {
        bool has_type, has_target; /* carried, and added after signing */
        bool signs_type;           /* Content-Type carried and signed */
        const char *refused;       /* the header named in the refusal, or NULL */
    } cases[] = {
        {false, false, false, NULL},
        {false, true, false, "'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization."},
        {true, false, false, "'Content-Type' must be a 'SignedHeader' in the AWS Authorization."},
        {true, true, false, "'Content-Type' must be a 'SignedHeader' in the AWS Authorization."},
        {false, true, true, "'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization."},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct treq t;
        char auth[512];
        treq_init(&t, "/", NULL, "{}");
        add(&t, "host", "registry.example:5000");
        add(&t, "x-amz-date", "20261126T095054Z");
        if (cases[i].signs_type) {
            add(&t, "Content-Type", "application/x-amz-json-1.1");
        }
        CHECK_INT(sigv4_sign(&t.r, &c, auth, sizeof(auth)), BERTH_OK);
        if (cases[i].has_type) {
            add(&t, "content-type", "application/x-amz-json-1.1");
        }
        if (cases[i].has_target) {
            add(&t, "x-amz-target", "AmazonEC2ContainerRegistry_V20150921.DeleteRepository");
        }
        add(&t, "Authorization", auth);
        struct sigv4_auth a;
        struct sigv4_refusal r;
        memset(&r, 0, sizeof(r));
        CHECK_INT(sigv4_parse(&t.r, &a, &r), BERTH_OK);
        enum berth_err rc = sigv4_verify(&t.r, &a, c.secret, strlen(c.secret), &o, &r);
        if (cases[i].refused == NULL) {
            CHECK_INT(rc, BERTH_OK);
        } else {
            CHECK_INT(rc, BERTH_EDENIED);
            CHECK_INT(r.error, SIGV4_ERR_INVALID_SIGNATURE);
            CHECK_STR(r.message, cases[i].refused);
        }
    }
}

int main(void)
{
    RUN(test_vector_canonical);
    RUN(test_vector_verify);
    RUN(test_vector_sign);
    RUN(test_s3_sign);
    RUN(test_s3_presign);
    RUN(test_botocore_cases);
    RUN(test_canonical_parts);
    RUN(test_security);
    RUN(test_skew);
    RUN(test_scope);
    RUN(test_payload_header);
    RUN(test_parse_tolerant);
    RUN(test_parse_refusals);
    RUN(test_round_trip);
    RUN(test_required_signed_headers);
    return unit_report("test_sigv4");
}
