/*
 * Console sessions: an access key, once its secret is checked, exchanged
 * for a random session token that the browser holds in an HttpOnly cookie,
 * and a second random token the console sends in a header with every
 * state-changing call (CSRF). Kept in the shared metadata
 * (storage/meta/meta_session.h: only the token's SHA-256 is stored, never
 * the token), so that every replica of a registry knows a session any of
 * them started, a sign-out or a key's deletion ends it on all of them at
 * once, and a restart keeps it; every check is one read by the primary key
 * on the calling thread's connection, without a cache. The token is never
 * logged. The session carries only the access key id: every request is
 * authorized with that key's policy as it is at that moment, so a key
 * deleted or narrowed takes effect at once. Thread-safe.
 */
#ifndef BERTH_SERVER_AUTH_SESSION_H
#define BERTH_SERVER_AUTH_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "storage/meta/meta.h"

#define AUTH_SESSION_COOKIE "berth_session" /* the cookie's name */
#define AUTH_SESSION_CSRF_HEADER "X-CSRF-Token"
#define AUTH_SESSION_TOKEN_LEN 64        /* hex of 32 random bytes, both tokens */
#define AUTH_SESSIONS_PER_KEY 256        /* live sessions of one key; the first to expire goes */
#define AUTH_SESSIONS_ANONYMOUS_MAX 4096 /* live anonymous sessions, the same way */

struct auth_sessions;
struct store;

struct auth_session {
    char access_key_id[META_ACCESS_KEY_MAX + 1];
    char csrf[AUTH_SESSION_TOKEN_LEN + 1];
    int64_t expires; /* unix seconds */
};

enum auth_session_state {
    AUTH_SESSION_NONE,        /* no session cookie in the request */
    AUTH_SESSION_OK,          /* a live session (and its CSRF token, when asked) */
    AUTH_SESSION_INVALID,     /* a session cookie that is unknown, ended or expired */
    AUTH_SESSION_CSRF,        /* a live session, but the CSRF token is missing or wrong */
    AUTH_SESSION_UNAVAILABLE, /* the session could not be read (database unavailable) */
};

/* Sessions kept in st's metadata (borrowed: st outlives them), or NULL
 * when out of memory. */
struct auth_sessions *auth_sessions_new(struct store *st);
void auth_sessions_free(struct auth_sessions *s);

/* Start a session for akid valid from now for ttl seconds: its token into
 * token, its CSRF token and expiry into *out. akid "" is an anonymous
 * session (the console's browsing of public repositories). Starting one
 * ends, on every replica, the sessions of the same key (or the anonymous
 * ones) past AUTH_SESSIONS_PER_KEY (AUTH_SESSIONS_ANONYMOUS_MAX), those
 * that expire first, and deletes expired ones: the table stays bounded.
 * BERTH_OK, BERTH_EIO (no randomness), BERTH_EINVAL (akid too long), or
 * the metadata's error (BERTH_EUNAVAILABLE, BERTH_EDB, BERTH_EBUSY). */
enum berth_err auth_session_create(struct auth_sessions *s, const char *akid, int64_t now,
                                   int64_t ttl, char token[AUTH_SESSION_TOKEN_LEN + 1],
                                   struct auth_session *out);

/* The session named by the cookie header (NULL: none). With csrf_required,
 * csrf (the header's value, NULL when absent) must be the session's CSRF
 * token. On AUTH_SESSION_OK (and AUTH_SESSION_CSRF) *out is filled.
 * AUTH_SESSION_UNAVAILABLE when the metadata cannot be read (callers
 * answer 503: a database blip does not sign anyone out). */
enum auth_session_state auth_session_check(struct auth_sessions *s, const char *cookie_header,
                                           bool csrf_required, const char *csrf, int64_t now,
                                           struct auth_session *out);

/* End the session named by the cookie header, if any, on every replica.
 * BERTH_OK (also when there was none), or the metadata's error. */
enum berth_err auth_session_end(struct auth_sessions *s, const char *cookie_header);

/* Whether a Cookie header names a session at all (a berth_session cookie,
 * well-formed or not): when false, auth_session_check answers
 * AUTH_SESSION_NONE. Pure: no lookup. */
bool auth_session_named(const char *cookie_header);

/* The session token in a Cookie header: true and the token in out when the
 * header holds a well-formed berth_session cookie. Pure. */
bool auth_session_cookie(const char *cookie_header, char out[AUTH_SESSION_TOKEN_LEN + 1]);

#endif
