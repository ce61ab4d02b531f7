/* Metadata: leases on background work (the leases table). See meta_lease.h. */
#include "meta_int.h"

#include <stdio.h>
#include <string.h>

#include "storage/meta/meta_lease.h"

static bool valid_id(const char *s, size_t max)
{
    return s != NULL && s[0] != '\0' && strlen(s) <= max;
}

enum berth_err meta_lease_get(struct meta *m, const char *name, struct meta_lease *out)
{
    struct meta_stmt *st =
        meta_prepare(m, "SELECT holder, expires_at, done_at FROM leases WHERE name = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, name);
    enum berth_err rc = BERTH_OK;
    int step = meta_step(st);
    if (step == META_STEP_ROW) {
        struct meta_lease l;
        memset(&l, 0, sizeof(l));
        const char *h = meta_col_cstr(st, 0);
        snprintf(l.holder, sizeof(l.holder), "%s", h != NULL ? h : "");
        l.expires_at = meta_col_int64(st, 1);
        l.done_at = meta_col_int64(st, 2);
        *out = l;
    } else if (step == META_STEP_DONE) {
        rc = BERTH_ENOTFOUND;
    } else {
        rc = meta_fail(m, "lease_get");
    }
    meta_done(st);
    return rc;
}

enum berth_err meta_lease_claim(struct meta *m, const char *name, const char *holder, int64_t now,
                                int64_t ttl_ms, int64_t min_gap_ms, bool *claimed,
                                struct meta_lease *out)
{
    if (!valid_id(name, META_LEASE_NAME_MAX) || !valid_id(holder, META_LEASE_HOLDER_MAX) ||
        ttl_ms < 1 || min_gap_ms < 0) {
        return BERTH_EINVAL;
    }
    /* One statement: the row is created, or taken over only when the
     * condition holds, under the single writer's lock either way. */
    struct meta_stmt *st = meta_prepare(
        m, "INSERT INTO leases (name, holder, expires_at, done_at) VALUES (?1, ?2, ?3, 0) "
           "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
           "expires_at = excluded.expires_at "
           "WHERE (leases.holder = excluded.holder OR leases.holder = '' OR "
           "leases.expires_at <= ?4) AND (?5 = 0 OR leases.done_at <= ?4 - ?5)");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, name);
    meta_bind_text(st, 2, holder);
    meta_bind_int64(st, 3, now + ttl_ms);
    meta_bind_int64(st, 4, now);
    meta_bind_int64(st, 5, min_gap_ms);
    enum berth_err rc = meta_step_done(m, st, "lease_claim");
    if (rc != BERTH_OK) {
        return rc;
    }
    bool got = meta_changes(m) > 0;
    if (out != NULL) {
        rc = meta_lease_get(m, name, out);
        if (rc != BERTH_OK) {
            return rc == BERTH_ENOTFOUND ? BERTH_EDB : rc;
        }
    }
    *claimed = got;
    return BERTH_OK;
}

enum berth_err meta_lease_renew_all(struct meta *m, const char *holder, int64_t now, int64_t ttl_ms,
                                    int64_t *count)
{
    if (!valid_id(holder, META_LEASE_HOLDER_MAX) || ttl_ms < 1) {
        return BERTH_EINVAL;
    }
    struct meta_stmt *st = meta_prepare(m, "UPDATE leases SET expires_at = ?2 WHERE holder = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, holder);
    meta_bind_int64(st, 2, now + ttl_ms);
    enum berth_err rc = meta_step_done(m, st, "lease_renew");
    if (rc == BERTH_OK && count != NULL) {
        *count = meta_changes(m);
    }
    return rc;
}

enum berth_err meta_lease_release(struct meta *m, const char *name, const char *holder, bool done,
                                  int64_t now, bool *released)
{
    struct meta_stmt *st = meta_prepare(
        m, "UPDATE leases SET holder = '', expires_at = 0, "
           "done_at = CASE WHEN ?3 = 1 THEN ?4 ELSE done_at END WHERE name = ?1 AND holder = ?2");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, name);
    meta_bind_text(st, 2, holder);
    meta_bind_int64(st, 3, done ? 1 : 0);
    meta_bind_int64(st, 4, now);
    enum berth_err rc = meta_step_done(m, st, "lease_release");
    if (rc == BERTH_OK && released != NULL) {
        *released = meta_changes(m) > 0;
    }
    return rc;
}

enum berth_err meta_lease_delete(struct meta *m, const char *name)
{
    struct meta_stmt *st = meta_prepare(m, "DELETE FROM leases WHERE name = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, name);
    return meta_step_done(m, st, "lease_delete");
}
