/*
 * Auth tokens (see server/auth/authtoken.h). The token is base64url (no
 * padding) of a small binary record followed by its HMAC-SHA256:
 *
 *   version(1)=1 purpose(1) issued(8, big-endian) expires(8)
 *   principal_len(1) principal  repository_len(2) repository
 *   digest_len(1) digest  mac(32)
 *
 * A BEARER token carries its scope text in the repository field.
 *
 * mac = HMAC-SHA256(key, "berth-authtoken-v1" NUL || record). The MAC is
 * checked before any field is read. Pure functions; thread-safe.
 */
#include "server/auth/authtoken.h"

#include <string.h>

#include "common/base64.h"
#include "common/rand.h"
#include "common/str.h"

#define VERSION 1
#define MAC_LEN 32
#define CONTEXT "berth-authtoken-v1"
#define HEADER_LEN 18 /* version, purpose, issued, expires */
/* Largest record: header, three length-prefixed fields, MAC. The second
 * field holds a repository or (BEARER) a scope, the larger. */
#define FIELD2_MAX                                                                                 \
    (AUTHTOKEN_SCOPE_MAX > AUTHTOKEN_REPOSITORY_MAX ? AUTHTOKEN_SCOPE_MAX                          \
                                                    : AUTHTOKEN_REPOSITORY_MAX)
#define RECORD_MAX                                                                                 \
    (HEADER_LEN + 1 + AUTHTOKEN_PRINCIPAL_MAX + 2 + FIELD2_MAX + 1 + AUTHTOKEN_DIGEST_MAX + MAC_LEN)
_Static_assert((RECORD_MAX + 2) / 3 * 4 <= AUTHTOKEN_BEARER_MAX_LEN, "bearer tokens fit");
_Static_assert((HEADER_LEN + 1 + AUTHTOKEN_PRINCIPAL_MAX + 2 + AUTHTOKEN_REPOSITORY_MAX + 1 +
                AUTHTOKEN_DIGEST_MAX + MAC_LEN + 2) /
                       3 * 4 <=
                   AUTHTOKEN_MAX_LEN,
               "other tokens fit");
#define RECORD_MIN (HEADER_LEN + 1 + 1 + 2 + 1 + MAC_LEN)

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* 1..max printable ASCII bytes (no space: tokens and scopes never need one). */
static bool field_ok(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] <= 0x20 || s[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

/* 0..max bytes of printable ASCII or spaces (scope text). */
static bool scope_ok(const char *s, size_t len, size_t max)
{
    if (len > max) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x20 || s[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

static bool key_ok(const uint8_t *key, size_t key_len)
{
    return key != NULL && key_len >= AUTHTOKEN_KEY_MIN && key_len <= AUTHTOKEN_KEY_MAX;
}

static enum berth_err mac_of(const uint8_t *key, size_t key_len, const uint8_t *record, size_t len,
                             uint8_t out[MAC_LEN])
{
    uint8_t msg[sizeof(CONTEXT) + RECORD_MAX];
    memcpy(msg, CONTEXT, sizeof(CONTEXT)); /* includes the NUL separator */
    memcpy(msg + sizeof(CONTEXT), record, len);
    return digest_hmac_sha256(key, key_len, msg, sizeof(CONTEXT) + len, out);
}

enum berth_err authtoken_key_generate(uint8_t key[AUTHTOKEN_KEY_LEN])
{
    return rand_bytes(key, AUTHTOKEN_KEY_LEN);
}

enum berth_err authtoken_issue(const uint8_t *key, size_t key_len, const struct authtoken *tok,
                               char *out, size_t cap)
{
    if (!key_ok(key, key_len) || tok == NULL || tok->issued < 0 || tok->expires <= tok->issued) {
        return BERTH_EINVAL;
    }
    size_t plen = strnlen(tok->principal, sizeof(tok->principal));
    size_t rlen = strnlen(tok->repository, sizeof(tok->repository));
    size_t dlen = strnlen(tok->digest, sizeof(tok->digest));
    size_t slen = strnlen(tok->scope, sizeof(tok->scope));
    if (!field_ok(tok->principal, plen, AUTHTOKEN_PRINCIPAL_MAX)) {
        return BERTH_EINVAL;
    }
    const char *field2 = tok->repository;
    if (tok->purpose == AUTHTOKEN_LOGIN || tok->purpose == AUTHTOKEN_REFRESH) {
        if (rlen != 0 || dlen != 0 || slen != 0) {
            return BERTH_EINVAL;
        }
    } else if (tok->purpose == AUTHTOKEN_DOWNLOAD) {
        if (!field_ok(tok->repository, rlen, AUTHTOKEN_REPOSITORY_MAX) ||
            !field_ok(tok->digest, dlen, AUTHTOKEN_DIGEST_MAX) || slen != 0) {
            return BERTH_EINVAL;
        }
    } else if (tok->purpose == AUTHTOKEN_BEARER) {
        if (rlen != 0 || dlen != 0 || !scope_ok(tok->scope, slen, AUTHTOKEN_SCOPE_MAX)) {
            return BERTH_EINVAL;
        }
        field2 = tok->scope;
        rlen = slen;
    } else {
        return BERTH_EINVAL;
    }

    uint8_t rec[RECORD_MAX];
    size_t n = 0;
    rec[n++] = VERSION;
    rec[n++] = (uint8_t)tok->purpose;
    put_u64(rec + n, (uint64_t)tok->issued);
    n += 8;
    put_u64(rec + n, (uint64_t)tok->expires);
    n += 8;
    rec[n++] = (uint8_t)plen;
    memcpy(rec + n, tok->principal, plen);
    n += plen;
    rec[n++] = (uint8_t)(rlen >> 8);
    rec[n++] = (uint8_t)rlen;
    memcpy(rec + n, field2, rlen);
    n += rlen;
    rec[n++] = (uint8_t)dlen;
    memcpy(rec + n, tok->digest, dlen);
    n += dlen;
    enum berth_err rc = mac_of(key, key_len, rec, n, rec + n);
    if (rc != BERTH_OK) {
        return rc;
    }
    n += MAC_LEN;

    char enc[AUTHTOKEN_BEARER_MAX_LEN + 4];
    size_t elen = base64url_encode(rec, n, enc);
    if (elen + 1 > cap) {
        return BERTH_ETOOBIG;
    }
    memcpy(out, enc, elen + 1);
    return BERTH_OK;
}

/* Read the fields of an authenticated record. false if it is not a
 * well-formed version-1 record. */
static bool parse_record(const uint8_t *rec, size_t len, struct authtoken *t)
{
    size_t n = 0;
    if (len < RECORD_MIN - MAC_LEN || rec[0] != VERSION) {
        return false;
    }
    int purpose = rec[1];
    if (purpose != AUTHTOKEN_LOGIN && purpose != AUTHTOKEN_DOWNLOAD &&
        purpose != AUTHTOKEN_BEARER && purpose != AUTHTOKEN_REFRESH) {
        return false;
    }
    t->purpose = (enum authtoken_purpose)purpose;
    uint64_t issued = get_u64(rec + 2), expires = get_u64(rec + 10);
    if (issued > INT64_MAX || expires > INT64_MAX) {
        return false;
    }
    t->issued = (int64_t)issued;
    t->expires = (int64_t)expires;
    n = HEADER_LEN;
    size_t plen = rec[n++];
    if (n + plen + 2 > len) {
        return false;
    }
    const char *principal = (const char *)rec + n;
    n += plen;
    size_t rlen = ((size_t)rec[n] << 8) | rec[n + 1];
    n += 2;
    if (n + rlen + 1 > len) {
        return false;
    }
    const char *repository = (const char *)rec + n;
    n += rlen;
    size_t dlen = rec[n++];
    if (n + dlen != len) {
        return false;
    }
    const char *digest = (const char *)rec + n;
    if (!field_ok(principal, plen, AUTHTOKEN_PRINCIPAL_MAX) || t->expires <= t->issued) {
        return false;
    }
    if (t->purpose == AUTHTOKEN_LOGIN || t->purpose == AUTHTOKEN_REFRESH) {
        if (rlen != 0 || dlen != 0) {
            return false;
        }
    } else if (t->purpose == AUTHTOKEN_BEARER) {
        if (dlen != 0 || !scope_ok(repository, rlen, AUTHTOKEN_SCOPE_MAX)) {
            return false;
        }
    } else if (!field_ok(repository, rlen, AUTHTOKEN_REPOSITORY_MAX) ||
               !field_ok(digest, dlen, AUTHTOKEN_DIGEST_MAX)) {
        return false;
    }
    memcpy(t->principal, principal, plen);
    t->principal[plen] = '\0';
    if (t->purpose == AUTHTOKEN_BEARER) {
        memcpy(t->scope, repository, rlen);
        t->scope[rlen] = '\0';
    } else {
        memcpy(t->repository, repository, rlen);
        t->repository[rlen] = '\0';
    }
    memcpy(t->digest, digest, dlen);
    t->digest[dlen] = '\0';
    return true;
}

enum berth_err authtoken_verify(const uint8_t *key, size_t key_len, const char *token,
                                enum authtoken_purpose purpose, const char *repository,
                                const char *digest, int64_t now, struct authtoken *out)
{
    if (!key_ok(key, key_len) || token == NULL) {
        return BERTH_EINVAL;
    }
    size_t max = purpose == AUTHTOKEN_BEARER ? AUTHTOKEN_BEARER_MAX_LEN : AUTHTOKEN_MAX_LEN;
    size_t len = strnlen(token, max + 1);
    if (len > max) {
        return BERTH_EINVAL;
    }
    uint8_t rec[AUTHTOKEN_BEARER_MAX_LEN * 3 / 4 + 3];
    size_t n;
    if (base64url_decode(token, len, rec, &n) != BERTH_OK || n < RECORD_MIN || n > RECORD_MAX) {
        return BERTH_EINVAL;
    }
    uint8_t mac[MAC_LEN];
    enum berth_err rc = mac_of(key, key_len, rec, n - MAC_LEN, mac);
    if (rc != BERTH_OK) {
        return rc; /* no MAC to compare: not the token's fault */
    }
    if (!str_ct_equal(mac, MAC_LEN, rec + n - MAC_LEN, MAC_LEN)) {
        return BERTH_EINVAL;
    }
    struct authtoken t;
    memset(&t, 0, sizeof(t));
    if (!parse_record(rec, n - MAC_LEN, &t) || t.purpose != purpose) {
        return BERTH_EINVAL;
    }
    if (purpose == AUTHTOKEN_DOWNLOAD) {
        if (repository == NULL || digest == NULL || strcmp(repository, t.repository) != 0 ||
            strcmp(digest, t.digest) != 0) {
            return BERTH_EINVAL;
        }
    } else if (repository != NULL || digest != NULL) {
        return BERTH_EINVAL;
    }
    if (t.issued > now && t.issued - now > AUTHTOKEN_MAX_CLOCK_SKEW) {
        return BERTH_EINVAL;
    }
    if (now >= t.expires) {
        return BERTH_EDENIED;
    }
    if (out != NULL) {
        *out = t;
    }
    return BERTH_OK;
}

enum berth_err authtoken_basic_encode(const char *token, char *out, size_t cap)
{
    size_t len = strnlen(token, AUTHTOKEN_MAX_LEN + 1);
    if (len > AUTHTOKEN_MAX_LEN) {
        return BERTH_EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        if (token[i] == ':' || token[i] <= 0x20 || token[i] > 0x7e) {
            return BERTH_EINVAL;
        }
    }
    uint8_t plain[4 + AUTHTOKEN_MAX_LEN];
    memcpy(plain, AUTHTOKEN_BASIC_USER ":", 4);
    memcpy(plain + 4, token, len);
    if (base64_encoded_size(4 + len) > cap) {
        return BERTH_ETOOBIG;
    }
    base64_encode(plain, 4 + len, out);
    return BERTH_OK;
}

enum berth_err authtoken_basic_decode(const char *b64, size_t b64_len, char *password, size_t cap)
{
    if (b64_len > AUTHTOKEN_BASIC_MAX_LEN) {
        return BERTH_EINVAL;
    }
    uint8_t plain[AUTHTOKEN_BASIC_MAX_LEN / 4 * 3];
    size_t n;
    if (base64_decode(b64, b64_len, plain, &n) != BERTH_OK) {
        return BERTH_EINVAL;
    }
    /* RFC 7617: the user-id ends at the first ':'. */
    const uint8_t *colon = memchr(plain, ':', n);
    if (colon == NULL || (size_t)(colon - plain) != strlen(AUTHTOKEN_BASIC_USER) ||
        memcmp(plain, AUTHTOKEN_BASIC_USER, strlen(AUTHTOKEN_BASIC_USER)) != 0) {
        return BERTH_EINVAL;
    }
    size_t plen = n - (size_t)(colon + 1 - plain);
    if (memchr(colon + 1, '\0', plen) != NULL) {
        return BERTH_EINVAL;
    }
    if (plen + 1 > cap) {
        return BERTH_ETOOBIG;
    }
    memcpy(password, colon + 1, plen);
    password[plen] = '\0';
    return BERTH_OK;
}
