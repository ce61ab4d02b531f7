/*
 * Metadata: the replication queue (replication_queue, by manifest and
 * destination), filled by a push's transaction and worked through by the
 * replication job. See meta.h.
 */
#include "meta_int.h"

#include <string.h>

enum berth_err meta_repl_enqueue(struct meta *m, int64_t manifest_id, const char *region,
                                 const char *registry_id, int64_t now)
{
    struct meta_stmt *st = meta_prepare(
        m, "INSERT INTO replication_queue (manifest_id, region, registry_id, status, attempts, "
           "next_at, seq, queued_at, updated_at) VALUES (?1, ?2, ?3, 'IN_PROGRESS', 0, ?4, 1, ?4, "
           "?4) ON CONFLICT (manifest_id, region, registry_id) DO UPDATE SET "
           "status = 'IN_PROGRESS', failure_code = NULL, failure_reason = NULL, attempts = 0, "
           "next_at = excluded.next_at, seq = replication_queue.seq + 1, "
           "queued_at = excluded.queued_at, updated_at = excluded.updated_at");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, manifest_id);
    meta_bind_text(st, 2, region);
    meta_bind_text(st, 3, registry_id);
    meta_bind_int64(st, 4, now);
    return meta_step_done(m, st, "repl_enqueue");
}

#define REPL_PEER " AND q.region = ?2 AND q.registry_id = ?3"
#define REPL_OTHERS_SQLITE " AND instr(?2, ',' || q.region || '/' || q.registry_id || ',') = 0"
#define REPL_OTHERS_PG " AND strpos(?2::text, ',' || q.region || '/' || q.registry_id || ',') = 0"

/* Bind f's destination (?2, ?3) or exception list (?2). */
static void bind_filter(struct meta_stmt *st, const struct meta_repl_filter *f)
{
    if (f->region != NULL) {
        meta_bind_text(st, 2, f->region);
        meta_bind_text(st, 3, f->registry_id);
    } else {
        meta_bind_text(st, 2, f->except != NULL ? f->except : "");
    }
}

/* The rows still tried: queued or being retried, and those FAILED for an
 * unreachable destination (the partial index replication_queue_open
 * covers both: status <> 'COMPLETE'). */
#define TRIED                                                                                      \
    "q.status <> 'COMPLETE' AND (q.status = 'IN_PROGRESS' OR q.failure_code = "                    \
    "'" META_REPL_RETRIED_CODE "')"

/* The one time (a MIN(...)) a prepared query of f's rows answers, 0 when
 * it is NULL or there is no row; what names it in a failure's log line. */
static enum berth_err first_time(struct meta *m, struct meta_stmt *st,
                                 const struct meta_repl_filter *f, const char *what, int64_t *out)
{
    if (st == NULL) {
        return BERTH_EDB;
    }
    bind_filter(st, f);
    enum berth_err err = BERTH_OK;
    int rc = meta_step(st);
    if (rc == META_STEP_ROW) {
        *out = meta_col_is_null(st, 0) ? 0 : meta_col_int64(st, 0);
    } else if (rc == META_STEP_DONE) {
        *out = 0;
    } else {
        err = meta_fail(m, what);
    }
    meta_done(st);
    return err;
}

#define EARLIEST "SELECT MIN(q.next_at) FROM replication_queue q WHERE " TRIED

/* The earliest next_at of f's rows still tried (0 when none). */
static enum berth_err earliest(struct meta *m, const struct meta_repl_filter *f, int64_t *out)
{
    struct meta_stmt *st =
        f->region != NULL
            ? meta_prepare(m, EARLIEST REPL_PEER)
            : meta_prepare(m, meta_sql(m, EARLIEST REPL_OTHERS_SQLITE, EARLIEST REPL_OTHERS_PG));
    return first_time(m, st, f, "repl_earliest", out);
}

#define NEXT_HEAD                                                                                  \
    "SELECT q.manifest_id, q.region, q.registry_id, q.attempts, q.seq, r.name, "                   \
    "mf.digest, q.queued_at FROM replication_queue q JOIN manifests mf ON mf.id = q.manifest_id "  \
    "JOIN repositories r ON r.id = mf.repo_id WHERE " TRIED " AND q.next_at <= ?1"
#define NEXT_TAIL " ORDER BY q.next_at, q.manifest_id LIMIT 1"

/* The first row of an item query (NEXT_HEAD's columns) for f, due at now;
 * what names the query in a failure's log line. */
static enum berth_err first_item(struct meta *m, struct meta_stmt *st, int64_t now,
                                 const struct meta_repl_filter *f, const char *what,
                                 struct meta_repl_item *out, bool *found)
{
    *found = false;
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, now);
    bind_filter(st, f);
    enum berth_err err = BERTH_OK;
    int rc = meta_step(st);
    if (rc == META_STEP_ROW) {
        memset(out, 0, sizeof(*out));
        out->manifest_id = meta_col_int64(st, 0);
        err = meta_col_text(st, 1, out->region, sizeof(out->region));
        if (err == BERTH_OK) {
            err = meta_col_text(st, 2, out->registry_id, sizeof(out->registry_id));
        }
        out->attempts = meta_col_int64(st, 3);
        out->seq = meta_col_int64(st, 4);
        if (err == BERTH_OK) {
            err = meta_col_text(st, 5, out->repo, sizeof(out->repo));
        }
        if (err == BERTH_OK) {
            err = meta_col_text(st, 6, out->digest, sizeof(out->digest));
        }
        out->queued_at = meta_col_int64(st, 7);
        *found = err == BERTH_OK;
    } else if (rc != META_STEP_DONE) {
        err = meta_fail(m, what);
    }
    meta_done(st);
    return err;
}

enum berth_err meta_repl_next(struct meta *m, int64_t now, const struct meta_repl_filter *f,
                              struct meta_repl_item *out, bool *found, int64_t *next_at)
{
    struct meta_stmt *st = f->region != NULL
                               ? meta_prepare(m, NEXT_HEAD REPL_PEER NEXT_TAIL)
                               : meta_prepare(m, meta_sql(m, NEXT_HEAD REPL_OTHERS_SQLITE NEXT_TAIL,
                                                          NEXT_HEAD REPL_OTHERS_PG NEXT_TAIL));
    enum berth_err err = first_item(m, st, now, f, "repl_next", out, found);
    if (err == BERTH_OK && !*found) {
        err = earliest(m, f, next_at);
    }
    return err;
}

/* ---- claims (several workers on one destination) ---- */

/* Another row of q's destination and repository claimed now (?1): q waits,
 * so that a repository's images go to a destination one at a time, in
 * order (a tag moved between two pushes ends where the source has it). The
 * terms match the partial index replication_queue_claimed. */
#define SIBLING_CLAIMED                                                                            \
    "SELECT 1 FROM replication_queue c JOIN manifests cm ON cm.id = c.manifest_id "                \
    "WHERE c.claimed_until > 0 AND c.claimed_until > ?1 AND c.region = q.region AND "              \
    "c.registry_id = q.registry_id AND cm.repo_id = mf.repo_id AND c.manifest_id <> q.manifest_id"

#define CLAIM_HEAD NEXT_HEAD " AND q.claimed_until <= ?1 AND NOT EXISTS (" SIBLING_CLAIMED ")"

/* When the earliest of f's rows still tried may be claimed: its next_at,
 * or later its claim's or its repository's other claims' expiry. */
#define SIBLING_UNTIL                                                                              \
    "COALESCE((SELECT MAX(c.claimed_until) FROM replication_queue c JOIN manifests cm ON "         \
    "cm.id = c.manifest_id WHERE c.claimed_until > 0 AND c.region = q.region AND "                 \
    "c.registry_id = q.registry_id AND cm.repo_id = mf.repo_id AND c.manifest_id <> "              \
    "q.manifest_id), 0)"
#define CLAIMABLE_FROM                                                                             \
    " FROM replication_queue q JOIN manifests mf ON mf.id = q.manifest_id WHERE " TRIED
#define CLAIMABLE_SQLITE                                                                           \
    "SELECT MIN(MAX(q.next_at, q.claimed_until, " SIBLING_UNTIL "))" CLAIMABLE_FROM
#define CLAIMABLE_PG                                                                               \
    "SELECT MIN(GREATEST(q.next_at, q.claimed_until, " SIBLING_UNTIL "))" CLAIMABLE_FROM

static enum berth_err claimable_at(struct meta *m, const struct meta_repl_filter *f, int64_t *out)
{
    struct meta_stmt *st =
        f->region != NULL
            ? meta_prepare(m, meta_sql(m, CLAIMABLE_SQLITE REPL_PEER, CLAIMABLE_PG REPL_PEER))
            : meta_prepare(
                  m, meta_sql(m, CLAIMABLE_SQLITE REPL_OTHERS_SQLITE, CLAIMABLE_PG REPL_OTHERS_PG));
    return first_time(m, st, f, "repl_claimable_at", out);
}

/* The first claimable row of f (read inside the claim's transaction). */
static enum berth_err claim_pick(struct meta *m, int64_t now, const struct meta_repl_filter *f,
                                 struct meta_repl_item *out, bool *found)
{
    struct meta_stmt *st =
        f->region != NULL ? meta_prepare(m, CLAIM_HEAD REPL_PEER NEXT_TAIL)
                          : meta_prepare(m, meta_sql(m, CLAIM_HEAD REPL_OTHERS_SQLITE NEXT_TAIL,
                                                     CLAIM_HEAD REPL_OTHERS_PG NEXT_TAIL));
    return first_item(m, st, now, f, "repl_claim", out, found);
}

enum berth_err meta_repl_claim(struct meta *m, int64_t now, const struct meta_repl_filter *f,
                               const char *holder, int64_t until, struct meta_repl_item *out,
                               bool *found, int64_t *next_at)
{
    *found = false;
    if (holder == NULL || holder[0] == '\0' || until <= now) {
        return BERTH_EINVAL;
    }
    enum berth_err err = meta_begin(m);
    if (err != BERTH_OK) {
        return err;
    }
    err = claim_pick(m, now, f, out, found);
    if (err == BERTH_OK && *found) {
        struct meta_stmt *st = meta_prepare(
            m, "UPDATE replication_queue SET claimed_by = ?1, claimed_until = ?2 WHERE "
               "manifest_id = ?3 AND region = ?4 AND registry_id = ?5");
        if (st == NULL) {
            err = BERTH_EDB;
        } else {
            meta_bind_text(st, 1, holder);
            meta_bind_int64(st, 2, until);
            meta_bind_int64(st, 3, out->manifest_id);
            meta_bind_text(st, 4, out->region);
            meta_bind_text(st, 5, out->registry_id);
            err = meta_step_done(m, st, "repl_claim");
        }
    }
    if (err == BERTH_OK) {
        err = meta_commit(m);
    } else {
        meta_rollback(m);
    }
    if (err != BERTH_OK) {
        *found = false;
        return err;
    }
    if (!*found) {
        err = claimable_at(m, f, next_at);
    }
    return err;
}

enum berth_err meta_repl_renew(struct meta *m, const char *holder, int64_t until, int64_t *renewed)
{
    struct meta_stmt *st =
        meta_prepare(m, "UPDATE replication_queue SET claimed_until = ?2 WHERE claimed_until > 0 "
                        "AND claimed_by = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, holder);
    meta_bind_int64(st, 2, until);
    enum berth_err err = meta_step_done(m, st, "repl_renew");
    if (err == BERTH_OK && renewed != NULL) {
        *renewed = meta_changes(m);
    }
    return err;
}

enum berth_err meta_repl_unclaim(struct meta *m, const struct meta_repl_item *it,
                                 const char *holder)
{
    struct meta_stmt *st = meta_prepare(
        m, "UPDATE replication_queue SET claimed_by = NULL, claimed_until = 0 WHERE "
           "manifest_id = ?1 AND region = ?2 AND registry_id = ?3 AND claimed_by = ?4");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, it->manifest_id);
    meta_bind_text(st, 2, it->region);
    meta_bind_text(st, 3, it->registry_id);
    meta_bind_text(st, 4, holder);
    return meta_step_done(m, st, "repl_unclaim");
}

enum berth_err meta_repl_unclaim_all(struct meta *m)
{
    struct meta_stmt *st =
        meta_prepare(m, "UPDATE replication_queue SET claimed_by = NULL, claimed_until = 0 "
                        "WHERE claimed_until > 0");
    if (st == NULL) {
        return BERTH_EDB;
    }
    return meta_step_done(m, st, "repl_unclaim_all");
}

enum berth_err meta_repl_defer(struct meta *m, const char *region, const char *registry_id,
                               int64_t next_at, int64_t now)
{
    struct meta_stmt *st = meta_prepare(
        m, "UPDATE replication_queue AS q SET next_at = ?1, updated_at = ?2 WHERE " TRIED
           " AND region = ?3 AND registry_id = ?4 AND next_at < ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, next_at);
    meta_bind_int64(st, 2, now);
    meta_bind_text(st, 3, region);
    meta_bind_text(st, 4, registry_id);
    return meta_step_done(m, st, "repl_defer");
}

enum berth_err meta_repl_finish(struct meta *m, const struct meta_repl_item *it, const char *status,
                                const char *failure_code, const char *failure_reason,
                                int64_t next_at, int64_t now, bool *applied)
{
    struct meta_stmt *st = meta_prepare(
        m, "UPDATE replication_queue SET status = ?1, failure_code = ?2, failure_reason = ?3, "
           "attempts = attempts + 1, next_at = ?4, updated_at = ?5 WHERE manifest_id = ?6 AND "
           "region = ?7 AND registry_id = ?8 AND seq = ?9");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, status);
    meta_bind_text_or_null(st, 2, failure_code);
    meta_bind_text_or_null(st, 3, failure_reason);
    meta_bind_int64(st, 4, next_at);
    meta_bind_int64(st, 5, now);
    meta_bind_int64(st, 6, it->manifest_id);
    meta_bind_text(st, 7, it->region);
    meta_bind_text(st, 8, it->registry_id);
    meta_bind_int64(st, 9, it->seq);
    enum berth_err err = meta_step_done(m, st, "repl_finish");
    if (err == BERTH_OK) {
        *applied = meta_changes(m) > 0;
    }
    return err;
}

enum berth_err meta_repl_status_list(struct meta *m, int64_t manifest_id, meta_repl_status_cb cb,
                                     void *arg)
{
    struct meta_stmt *st = meta_prepare(
        m, "SELECT region, registry_id, status, failure_code, failure_reason, attempts FROM "
           "replication_queue WHERE manifest_id = ?1 ORDER BY region, registry_id");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, manifest_id);
    enum berth_err err = BERTH_OK;
    int rc;
    while ((rc = meta_step(st)) == META_STEP_ROW) {
        struct meta_repl_status s = {
            .region = meta_col_cstr(st, 0),
            .registry_id = meta_col_cstr(st, 1),
            .status = meta_col_cstr(st, 2),
            .failure_code = meta_col_cstr(st, 3),
            .failure_reason = meta_col_cstr(st, 4),
            .attempts = meta_col_int64(st, 5),
        };
        if (s.region == NULL || s.registry_id == NULL || s.status == NULL) {
            continue;
        }
        if (cb(arg, &s) != 0) {
            break;
        }
    }
    if (rc != META_STEP_ROW && rc != META_STEP_DONE) {
        err = meta_fail(m, "repl_status_list");
    }
    meta_done(st);
    return err;
}

enum berth_err meta_repl_count(struct meta *m, int64_t *in_progress, int64_t *failed)
{
    struct meta_stmt *st = meta_prepare(
        m, "SELECT COALESCE(SUM(CASE WHEN status = 'IN_PROGRESS' THEN 1 ELSE 0 END), 0), "
           "COALESCE(SUM(CASE WHEN status = 'FAILED' THEN 1 ELSE 0 END), 0) FROM "
           "replication_queue");
    if (st == NULL) {
        return BERTH_EDB;
    }
    enum berth_err err = BERTH_OK;
    if (meta_step(st) == META_STEP_ROW) {
        *in_progress = meta_col_int64(st, 0);
        *failed = meta_col_int64(st, 1);
    } else {
        err = meta_fail(m, "repl_count");
    }
    meta_done(st);
    return err;
}
