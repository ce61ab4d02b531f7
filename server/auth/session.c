/*
 * Console sessions in the shared metadata (storage/meta/meta_session.h):
 * the cookie's token is hashed (SHA-256) before it reaches the database,
 * and every check reads the row on the calling thread's connection, so
 * what one replica starts or ends holds on all of them at once.
 */
#include "server/auth/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/rand.h"
#include "common/str.h"
#include "storage/meta/meta_session.h"
#include "storage/spec/digest.h"
#include "storage/store/store.h"

_Static_assert(AUTH_SESSION_TOKEN_LEN <= META_SESSION_CSRF_MAX,
               "the CSRF token fits the metadata's column");

struct auth_sessions {
    struct store *store;
};

static void wipe(void *p, size_t n)
{
    memset(p, 0, n);
    __asm__ __volatile__("" : : "r"(p) : "memory");
}

struct auth_sessions *auth_sessions_new(struct store *st)
{
    struct auth_sessions *s = calloc(1, sizeof(*s));
    if (s != NULL) {
        s->store = st;
    }
    return s;
}

void auth_sessions_free(struct auth_sessions *s)
{
    free(s);
}

static void hex_of(const unsigned char *raw, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * n] = '\0';
}

static enum berth_err random_hex(char out[AUTH_SESSION_TOKEN_LEN + 1])
{
    unsigned char raw[AUTH_SESSION_TOKEN_LEN / 2];
    if (rand_bytes(raw, sizeof(raw)) != BERTH_OK) {
        return BERTH_EIO;
    }
    hex_of(raw, sizeof(raw), out);
    wipe(raw, sizeof(raw));
    return BERTH_OK;
}

/* The row's key for a token: the hex SHA-256 of its text. The token is 32
 * random bytes, so a plain hash cannot be reversed or guessed. */
static enum berth_err token_hash(const char *token, char out[META_SESSION_HASH_LEN + 1])
{
    uint8_t raw[32];
    enum berth_err rc = digest_sha256_raw(token, strlen(token), raw);
    if (rc == BERTH_OK) {
        hex_of(raw, sizeof(raw), out);
    }
    return rc;
}

static struct meta *session_meta(struct auth_sessions *s)
{
    struct meta *m = NULL;
    return store_meta_get(s->store, &m) == BERTH_OK ? m : NULL;
}

enum berth_err auth_session_create(struct auth_sessions *s, const char *akid, int64_t now,
                                   int64_t ttl, char token[AUTH_SESSION_TOKEN_LEN + 1],
                                   struct auth_session *out)
{
    struct meta_session row;
    memset(&row, 0, sizeof(row));
    if (str_copy(row.access_key_id, sizeof(row.access_key_id), akid) != BERTH_OK || ttl < 1) {
        return BERTH_EINVAL;
    }
    char fresh[AUTH_SESSION_TOKEN_LEN + 1], hash[META_SESSION_HASH_LEN + 1];
    enum berth_err rc = random_hex(fresh);
    if (rc == BERTH_OK) {
        rc = random_hex(row.csrf);
    }
    if (rc == BERTH_OK) {
        rc = token_hash(fresh, hash);
    }
    if (rc != BERTH_OK) {
        wipe(fresh, sizeof(fresh));
        wipe(&row, sizeof(row));
        return BERTH_EIO;
    }
    row.created_at = now;
    row.expires_at = now + ttl;
    struct meta *m = session_meta(s);
    rc = m == NULL ? BERTH_EUNAVAILABLE
                   : meta_session_create(m, hash, &row, now,
                                         row.access_key_id[0] == '\0' ? AUTH_SESSIONS_ANONYMOUS_MAX
                                                                      : AUTH_SESSIONS_PER_KEY);
    if (rc == BERTH_OK) {
        memcpy(token, fresh, sizeof(fresh));
        memset(out, 0, sizeof(*out));
        memcpy(out->access_key_id, row.access_key_id, sizeof(out->access_key_id));
        memcpy(out->csrf, row.csrf, sizeof(out->csrf));
        out->expires = row.expires_at;
    } else {
        log_error("event=console_session_error op=create err=%s", berth_strerror(rc));
    }
    wipe(fresh, sizeof(fresh));
    wipe(&row, sizeof(row));
    return rc;
}

bool auth_session_named(const char *cookie_header)
{
    return cookie_header != NULL && strstr(cookie_header, AUTH_SESSION_COOKIE "=") != NULL;
}

bool auth_session_cookie(const char *cookie_header, char out[AUTH_SESSION_TOKEN_LEN + 1])
{
    static const char name[] = AUTH_SESSION_COOKIE "=";
    const char *p = cookie_header;
    while (p != NULL && *p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ';') {
            p++;
        }
        const char *end = strchr(p, ';');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
            len--;
        }
        if (len == sizeof(name) - 1 + AUTH_SESSION_TOKEN_LEN &&
            strncmp(p, name, sizeof(name) - 1) == 0) {
            const char *v = p + sizeof(name) - 1;
            bool ok = true;
            for (size_t i = 0; i < AUTH_SESSION_TOKEN_LEN; i++) {
                ok = ok && ((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f'));
            }
            if (ok) {
                memcpy(out, v, AUTH_SESSION_TOKEN_LEN);
                out[AUTH_SESSION_TOKEN_LEN] = '\0';
                return true;
            }
        }
        p = end;
    }
    return false;
}

enum auth_session_state auth_session_check(struct auth_sessions *s, const char *cookie_header,
                                           bool csrf_required, const char *csrf, int64_t now,
                                           struct auth_session *out)
{
    char token[AUTH_SESSION_TOKEN_LEN + 1], hash[META_SESSION_HASH_LEN + 1];
    if (!auth_session_named(cookie_header)) {
        return AUTH_SESSION_NONE;
    }
    if (!auth_session_cookie(cookie_header, token)) {
        return AUTH_SESSION_INVALID;
    }
    enum berth_err rc = token_hash(token, hash);
    wipe(token, sizeof(token));
    struct meta *m = rc == BERTH_OK ? session_meta(s) : NULL;
    struct meta_session row;
    rc = m == NULL ? BERTH_EUNAVAILABLE : meta_session_get(m, hash, now, &row);
    if (rc == BERTH_ENOTFOUND) {
        return AUTH_SESSION_INVALID;
    }
    if (rc != BERTH_OK) {
        log_error("event=console_session_error op=check err=%s", berth_strerror(rc));
        return AUTH_SESSION_UNAVAILABLE;
    }
    memset(out, 0, sizeof(*out));
    str_copy(out->access_key_id, sizeof(out->access_key_id), row.access_key_id);
    str_copy(out->csrf, sizeof(out->csrf), row.csrf);
    out->expires = row.expires_at;
    wipe(&row, sizeof(row));
    if (csrf_required &&
        (csrf == NULL || !str_ct_equal(csrf, strlen(csrf), out->csrf, strlen(out->csrf)))) {
        return AUTH_SESSION_CSRF;
    }
    return AUTH_SESSION_OK;
}

enum berth_err auth_session_end(struct auth_sessions *s, const char *cookie_header)
{
    char token[AUTH_SESSION_TOKEN_LEN + 1], hash[META_SESSION_HASH_LEN + 1];
    if (!auth_session_cookie(cookie_header, token)) {
        return BERTH_OK;
    }
    enum berth_err rc = token_hash(token, hash);
    wipe(token, sizeof(token));
    struct meta *m = rc == BERTH_OK ? session_meta(s) : NULL;
    rc = m == NULL ? BERTH_EUNAVAILABLE : meta_session_delete(m, hash);
    if (rc != BERTH_OK) {
        log_error("event=console_session_error op=end err=%s", berth_strerror(rc));
    }
    return rc;
}
