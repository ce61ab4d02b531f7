/* Metadata: the web console's sessions (console_sessions). See meta_session.h. */
#include "meta_int.h"

#include <string.h>

#include "storage/meta/meta_session.h"

static bool hash_valid(const char *h)
{
    if (h == NULL || strlen(h) != META_SESSION_HASH_LEN) {
        return false;
    }
    for (const char *p = h; *p; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) {
            return false;
        }
    }
    return true;
}

enum berth_err meta_session_create(struct meta *m, const char *token_hash,
                                   const struct meta_session *s, int64_t now, int64_t cap)
{
    if (!hash_valid(token_hash) || s == NULL || cap < 1 ||
        strnlen(s->access_key_id, sizeof(s->access_key_id)) > META_ACCESS_KEY_MAX ||
        s->csrf[0] == '\0' || strnlen(s->csrf, sizeof(s->csrf)) > META_SESSION_CSRF_MAX ||
        s->expires_at <= now) {
        return BERTH_EINVAL;
    }
    enum berth_err rc = meta_begin(m);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct meta_stmt *st = meta_prepare(m, "INSERT INTO console_sessions (token_hash, "
                                           "access_key_id, csrf, created_at, expires_at) "
                                           "VALUES (?1, ?2, ?3, ?4, ?5)");
    if (st == NULL) {
        rc = BERTH_EDB;
        goto out;
    }
    meta_bind_text(st, 1, token_hash);
    meta_bind_text(st, 2, s->access_key_id);
    meta_bind_text(st, 3, s->csrf);
    meta_bind_int64(st, 4, s->created_at);
    meta_bind_int64(st, 5, s->expires_at);
    rc = meta_step_done(m, st, "session_insert");
    if (rc != BERTH_OK) {
        goto out;
    }
    /* expired rows of every key (the expiry index) */
    st = meta_prepare(m, "DELETE FROM console_sessions WHERE expires_at <= ?1");
    if (st == NULL) {
        rc = BERTH_EDB;
        goto out;
    }
    meta_bind_int64(st, 1, now);
    rc = meta_step_done(m, st, "session_sweep");
    if (rc != BERTH_OK) {
        goto out;
    }
    /* the key's sessions past the cap, those that expire first (the
     * key's index) */
    st = meta_prepare(m, meta_sql(m,
                                  "DELETE FROM console_sessions WHERE token_hash IN "
                                  "(SELECT token_hash FROM console_sessions WHERE "
                                  "access_key_id = ?1 ORDER BY expires_at DESC, token_hash "
                                  "LIMIT -1 OFFSET ?2)",
                                  "DELETE FROM console_sessions WHERE token_hash IN "
                                  "(SELECT token_hash FROM console_sessions WHERE "
                                  "access_key_id = ?1 ORDER BY expires_at DESC, token_hash "
                                  "OFFSET ?2)"));
    if (st == NULL) {
        rc = BERTH_EDB;
        goto out;
    }
    meta_bind_text(st, 1, s->access_key_id);
    meta_bind_int64(st, 2, cap);
    rc = meta_step_done(m, st, "session_cap");
    if (rc == BERTH_OK) {
        rc = meta_commit(m);
    }
out:
    if (rc != BERTH_OK) {
        meta_rollback(m);
    }
    return rc;
}

enum berth_err meta_session_get(struct meta *m, const char *token_hash, int64_t now,
                                struct meta_session *out)
{
    if (!hash_valid(token_hash)) {
        return BERTH_ENOTFOUND;
    }
    struct meta_stmt *st = meta_prepare(m, "SELECT access_key_id, csrf, created_at, expires_at "
                                           "FROM console_sessions WHERE token_hash = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, token_hash);
    enum berth_err rc = BERTH_OK;
    int step = meta_step(st);
    if (step == META_STEP_ROW) {
        struct meta_session s;
        memset(&s, 0, sizeof(s));
        if (meta_col_text(st, 0, s.access_key_id, sizeof(s.access_key_id)) != BERTH_OK ||
            meta_col_text(st, 1, s.csrf, sizeof(s.csrf)) != BERTH_OK) {
            rc = BERTH_EDB; /* longer than any row this module writes */
        }
        s.created_at = meta_col_int64(st, 2);
        s.expires_at = meta_col_int64(st, 3);
        if (rc == BERTH_OK && s.expires_at <= now) {
            rc = BERTH_ENOTFOUND;
        }
        if (rc == BERTH_OK) {
            *out = s;
        }
        memset(&s, 0, sizeof(s));
    } else if (step == META_STEP_DONE) {
        rc = BERTH_ENOTFOUND;
    } else {
        rc = meta_fail(m, "session_get");
    }
    meta_done(st);
    return rc;
}

enum berth_err meta_session_delete(struct meta *m, const char *token_hash)
{
    if (!hash_valid(token_hash)) {
        return BERTH_OK;
    }
    struct meta_stmt *st = meta_prepare(m, "DELETE FROM console_sessions WHERE token_hash = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, token_hash);
    return meta_step_done(m, st, "session_delete");
}

enum berth_err meta_session_delete_key(struct meta *m, const char *access_key_id, int64_t *count)
{
    if (access_key_id == NULL) {
        return BERTH_EINVAL;
    }
    struct meta_stmt *st = meta_prepare(m, "DELETE FROM console_sessions WHERE access_key_id = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, access_key_id);
    enum berth_err rc = meta_step_done(m, st, "session_delete_key");
    if (rc == BERTH_OK && count != NULL) {
        *count = meta_changes(m);
    }
    return rc;
}

enum berth_err meta_session_count(struct meta *m, int64_t *count)
{
    struct meta_stmt *st = meta_prepare(m, "SELECT COUNT(*) FROM console_sessions");
    if (st == NULL) {
        return BERTH_EDB;
    }
    enum berth_err rc = BERTH_OK;
    if (meta_step(st) == META_STEP_ROW) {
        *count = meta_col_int64(st, 0);
    } else {
        rc = meta_fail(m, "session_count");
    }
    meta_done(st);
    return rc;
}
