/* Metadata: the garbage collector's blob queries and the history of its
 * passes. See meta_gc.h. */
#include "meta_int.h"

#include <stdio.h>
#include <string.h>

#include "storage/meta/meta_gc.h"

/* The garbage predicate, shared by the scan and the delete so the two can
 * never disagree. CASE evaluates in order and stops at the first match, so
 * young blobs cost no index lookups. ?3 is the cutoff. */
#define GARBAGE_EXPR                                                                               \
    "CASE WHEN b.touched_at >= ?3 THEN 0 "                                                         \
    "WHEN EXISTS (SELECT 1 FROM manifests m WHERE m.blob_id = b.id) THEN 0 "                       \
    "WHEN EXISTS (SELECT 1 FROM manifest_refs r WHERE r.digest = b.digest) THEN 0 "                \
    "WHEN EXISTS (SELECT 1 FROM vulndb_shared v WHERE v.digest = b.digest) THEN 0 "                \
    "ELSE 1 END"

enum berth_err meta_gc_blob_scan(struct meta *m, int64_t after, int64_t limit, int64_t cutoff,
                                 meta_gc_blob_cb cb, void *arg, int64_t *last, int64_t *scanned)
{
    if (limit < 1 || limit > META_GC_SCAN_MAX) {
        return BERTH_EINVAL;
    }
    struct meta_stmt *st =
        meta_prepare(m, "SELECT b.id, b.digest, b.size, b.touched_at, " GARBAGE_EXPR
                        " FROM blobs b WHERE b.id > ?1 ORDER BY b.id LIMIT ?2");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, after);
    meta_bind_int64(st, 2, limit);
    meta_bind_int64(st, 3, cutoff);
    enum berth_err err = BERTH_OK;
    int64_t n = 0, last_id = after;
    int rc;
    while ((rc = meta_step(st)) == META_STEP_ROW) {
        n++;
        last_id = meta_col_int64(st, 0);
        if (meta_col_int(st, 4) == 0) {
            continue;
        }
        struct meta_gc_blob b;
        b.id = last_id;
        if (meta_col_text(st, 1, b.digest, sizeof(b.digest)) != BERTH_OK) {
            continue; /* not a digest berth wrote: leave it alone */
        }
        b.size = meta_col_int64(st, 2);
        b.touched_at = meta_col_int64(st, 3);
        if (cb(arg, &b) != 0) {
            break;
        }
    }
    if (rc != META_STEP_ROW && rc != META_STEP_DONE) {
        err = meta_fail(m, "gc_blob_scan");
    }
    meta_done(st);
    if (err == BERTH_OK) {
        if (last != NULL) {
            *last = last_id;
        }
        if (scanned != NULL) {
            *scanned = n;
        }
    }
    return err;
}

enum berth_err meta_gc_blob_delete_if_garbage(struct meta *m, int64_t id, int64_t cutoff,
                                              bool *deleted)
{
    struct meta_stmt *st =
        meta_prepare(m, "DELETE FROM blobs WHERE id = ?1 AND id IN "
                        "(SELECT b.id FROM blobs b WHERE b.id = ?1 AND " GARBAGE_EXPR " = 1)");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, id);
    meta_bind_int64(st, 3, cutoff);
    enum berth_err rc = meta_step_done(m, st, "gc_blob_delete");
    if (rc == BERTH_OK) {
        *deleted = meta_changes(m) > 0;
    }
    return rc;
}

enum berth_err meta_gc_blob_totals(struct meta *m, int64_t *count, int64_t *bytes)
{
    struct meta_stmt *st = meta_prepare(m, "SELECT count(*), coalesce(sum(size), 0) FROM blobs");
    if (st == NULL) {
        return BERTH_EDB;
    }
    enum berth_err err = BERTH_OK;
    if (meta_step(st) == META_STEP_ROW) {
        *count = meta_col_int64(st, 0);
        *bytes = meta_col_int64(st, 1);
    } else {
        err = meta_fail(m, "gc_blob_totals");
    }
    meta_done(st);
    return err;
}

enum berth_err meta_gc_checkpoint(struct meta *m)
{
    return m->drv->checkpoint(m->conn);
}

/* ---- the history of passes ---- */

enum berth_err meta_gc_run_record(struct meta *m, const struct meta_gc_run *r, int64_t keep)
{
    if (keep < 1) {
        return BERTH_EINVAL;
    }
    enum berth_err rc = meta_begin(m);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct meta_stmt *st = meta_prepare(
        m, "INSERT INTO gc_runs (started_at, finished_at, reason, node, result, error, "
           "blobs_deleted, bytes_freed, orphans_deleted, uploads_removed) "
           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
    if (st == NULL) {
        meta_rollback(m);
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, r->started_at);
    meta_bind_int64(st, 2, r->finished_at);
    meta_bind_text(st, 3, r->reason);
    meta_bind_text(st, 4, r->node);
    meta_bind_text(st, 5, r->result);
    meta_bind_text(st, 6, r->error);
    meta_bind_int64(st, 7, r->blobs_deleted);
    meta_bind_int64(st, 8, r->bytes_freed);
    meta_bind_int64(st, 9, r->orphans_deleted);
    meta_bind_int64(st, 10, r->uploads_removed);
    rc = meta_step_done(m, st, "gc_run_record");
    if (rc == BERTH_OK) {
        /* the newest keep stay: at most one row goes each time, after the
         * first keep passes */
        st = meta_prepare(m, "DELETE FROM gc_runs WHERE id <= "
                             "(SELECT id FROM gc_runs ORDER BY id DESC LIMIT 1 OFFSET ?1)");
        if (st == NULL) {
            rc = BERTH_EDB;
        } else {
            meta_bind_int64(st, 1, keep);
            rc = meta_step_done(m, st, "gc_run_trim");
        }
    }
    if (rc == BERTH_OK) {
        rc = meta_commit(m);
    }
    if (rc != BERTH_OK) {
        meta_rollback(m);
    }
    return rc;
}

static void copy_col(struct meta_stmt *st, int i, char *out, size_t cap)
{
    const char *s = meta_col_cstr(st, i);
    snprintf(out, cap, "%s", s != NULL ? s : "");
}

struct gc_runs_ctx {
    meta_gc_run_cb cb;
    void *arg;
};

static int gc_run_row(struct meta_stmt *st, void *ctx)
{
    struct gc_runs_ctx *c = ctx;
    struct meta_gc_run r;
    memset(&r, 0, sizeof(r));
    r.id = meta_col_int64(st, 0);
    r.started_at = meta_col_int64(st, 1);
    r.finished_at = meta_col_int64(st, 2);
    copy_col(st, 3, r.reason, sizeof(r.reason));
    copy_col(st, 4, r.node, sizeof(r.node));
    copy_col(st, 5, r.result, sizeof(r.result));
    copy_col(st, 6, r.error, sizeof(r.error));
    r.blobs_deleted = meta_col_int64(st, 7);
    r.bytes_freed = meta_col_int64(st, 8);
    r.orphans_deleted = meta_col_int64(st, 9);
    r.uploads_removed = meta_col_int64(st, 10);
    return c->cb(c->arg, &r);
}

enum berth_err meta_gc_runs_list(struct meta *m, int64_t limit, meta_gc_run_cb cb, void *arg)
{
    if (limit < 1) {
        return BERTH_EINVAL;
    }
    struct meta_stmt *st = meta_prepare(
        m, "SELECT id, started_at, finished_at, reason, node, result, error, blobs_deleted, "
           "bytes_freed, orphans_deleted, uploads_removed FROM gc_runs ORDER BY id DESC LIMIT ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, limit + 1);
    struct gc_runs_ctx c = {cb, arg};
    return meta_page(m, st, limit, gc_run_row, &c, NULL, "gc_runs_list");
}
