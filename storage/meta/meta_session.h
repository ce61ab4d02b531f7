/*
 * Metadata: the web console's sessions (the console_sessions table), so
 * that every replica of a registry knows a session one of them started,
 * and a restart keeps it. A row holds the SHA-256 of the session token
 * (hex; the token itself is never stored: reading the database does not
 * give a usable cookie), the access key the session stands for ("" for an
 * anonymous session), its CSRF token and its expiry.
 *
 * Rows cannot grow without bound: starting a session deletes every
 * expired row and keeps at most cap live sessions of its access key
 * (those that expire first go); meta_key_delete deletes its key's rows.
 * Times are unix seconds from the callers' clocks (replicas need clocks
 * that agree, as for leases). Same rules as meta.h: one thread per struct
 * meta; each call is its own write (not inside a transaction).
 */
#ifndef BERTH_META_SESSION_H
#define BERTH_META_SESSION_H

#include <stdint.h>

#include "common/err.h"
#include "storage/meta/meta.h"

#define META_SESSION_HASH_LEN 64 /* hex SHA-256 of the token */
#define META_SESSION_CSRF_MAX 64 /* longest CSRF token */

struct meta_session {
    char access_key_id[META_ACCESS_KEY_MAX + 1]; /* "" anonymous */
    char csrf[META_SESSION_CSRF_MAX + 1];
    int64_t created_at;
    int64_t expires_at;
};

/* Add the session whose token hashes to token_hash (META_SESSION_HASH_LEN
 * lowercase hex), then, in the same transaction, delete every row expired
 * at now and all but the cap (>= 1) live sessions of its access key that
 * expire last. BERTH_OK, BERTH_EINVAL (bad arguments), BERTH_EEXIST (that
 * hash is taken), or a database error. */
enum berth_err meta_session_create(struct meta *m, const char *token_hash,
                                   const struct meta_session *s, int64_t now, int64_t cap);

/* The live session (expires_at > now) of token_hash into *out;
 * BERTH_ENOTFOUND when there is none (never started, ended, expired). One
 * read by the primary key. */
enum berth_err meta_session_get(struct meta *m, const char *token_hash, int64_t now,
                                struct meta_session *out);

/* End a session: its row is deleted (BERTH_OK whether or not it existed). */
enum berth_err meta_session_delete(struct meta *m, const char *token_hash);

/* Delete every session of access_key_id; *count (may be NULL) gets how
 * many went. */
enum berth_err meta_session_delete_key(struct meta *m, const char *access_key_id, int64_t *count);

/* How many rows the table holds (expired ones included), for tests and
 * the operator. */
enum berth_err meta_session_count(struct meta *m, int64_t *count);

#endif
