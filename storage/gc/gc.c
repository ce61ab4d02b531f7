/*
 * Online garbage collection (see gc.h). A pass: finish what an earlier
 * pass or a crash left in trash/, expire upload sessions, sweep the blob
 * table in id order (read pages without a lock, delete in short write
 * transactions that re-check each blob), then walk blobs/ for files
 * without a row. Runs on the calling thread with its metadata connection.
 */
#include "storage/gc/gc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/blob/blob.h"
#include "storage/meta/pace.h"
#include "storage/store/store.h"
#include "storage/store/tier.h"
#include "common/log.h"
#include "common/str.h"
#include "storage/meta/meta.h"
#include "storage/meta/meta_gc.h"
#include "common/timeutil.h"
#include "storage/store/upload.h"

/* Blob rows read per scan page (no lock is held while reading). */
#define GC_SCAN_PAGE 1000
/* Most blobs deleted in one write transaction. */
#define GC_BATCH_MAX 256
/* A batch stops taking more blobs once it has held the write lock this
 * long, so that pushes wait at most a few milliseconds for it. */
#define GC_BATCH_BUDGET_US 2000
/* Tests raise the budget (BERTH_TEST_GC_BATCH_BUDGET_US) to see batches of
 * several blobs whatever the machine's load. */
#define GC_BATCH_BUDGET_ENV "BERTH_TEST_GC_BATCH_BUDGET_US"
/* Orphan files checked and removed per write transaction. */
#define GC_ORPHAN_BATCH 256

struct cand_list {
    struct meta_gc_blob *v;
    size_t n;
    size_t cap;
    bool oom;
};

struct orphan {
    struct digest d;
    int64_t size;
};

struct gc {
    struct store *st;
    struct blob_store *blobs;
    struct meta *m;
    const struct gc_options *opt;
    int64_t cutoff;    /* ms: blobs touched and files modified before this may go */
    int64_t budget_us; /* GC_BATCH_BUDGET_US unless a test raised it */
    struct gc_stats stats;
    struct write_pace pace;
    int64_t last_hold_us; /* of the last write transaction */
    struct orphan orphans[GC_ORPHAN_BATCH];
    size_t orphan_count;
    struct blob_removal moved[GC_BATCH_MAX]; /* what the current batch moved aside */
    size_t moved_count;
    struct blob_store *archive;                      /* the archive tier, or NULL */
    struct blob_removal moved_archive[GC_BATCH_MAX]; /* ... from the archive tier */
    size_t moved_archive_count;
};

static bool cancelled(struct gc *g)
{
    if (g->opt->cancel != NULL && atomic_load(g->opt->cancel)) {
        g->stats.cancelled = true;
        return true;
    }
    return false;
}

static enum berth_err txn_begin(struct gc *g)
{
    enum berth_err rc = meta_begin(g->m);
    if (rc == BERTH_OK) {
        write_pace_start(&g->pace);
    }
    return rc;
}

static int64_t txn_elapsed_us(const struct gc *g)
{
    return write_pace_elapsed_us(&g->pace);
}

/* Commit (or, on rc != OK, roll back), account for the lock hold, then
 * give waiting pushes the lock (write_pace_end). */
static enum berth_err txn_end(struct gc *g, enum berth_err rc)
{
    if (rc == BERTH_OK) {
        rc = meta_commit(g->m);
    } else {
        meta_rollback(g->m);
    }
    int64_t held = write_pace_end(&g->pace, g->m);
    g->last_hold_us = held;
    g->stats.batches++;
    if (held > g->stats.max_lock_us) {
        g->stats.max_lock_us = held;
    }
    return rc;
}

/* Inside a write transaction: unlink trash files whose row is gone and put
 * back those whose row exists. Under the lock no removal is half done, so
 * every trash file is either committed garbage (of this or another pass)
 * or a crash leftover; a row that exists again (the blob was pushed anew
 * after the removal committed) keeps the newly published file and the old
 * copy is dropped. */
static enum berth_err finish_trash(struct gc *g)
{
    int64_t restored = 0, deleted = 0;
    enum berth_err rc = store_recover_trash(g->st, &restored, &deleted);
    g->stats.trash_restored += restored;
    g->stats.trash_deleted += deleted;
    return rc;
}

/* finish_trash in a transaction of its own. */
static enum berth_err finish_trash_txn(struct gc *g)
{
    enum berth_err rc = txn_begin(g);
    if (rc != BERTH_OK) {
        return rc;
    }
    return txn_end(g, finish_trash(g));
}

/* ---- the blob table ---- */

static int collect(void *arg, const struct meta_gc_blob *b)
{
    struct cand_list *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        void *p = realloc(l->v, cap * sizeof(*l->v));
        if (p == NULL) {
            l->oom = true;
            return 1;
        }
        l->v = p;
        l->cap = cap;
    }
    l->v[l->n++] = *b;
    return 0;
}

/*
 * After the batch committed, outside the lock: delete what it moved aside.
 * A blob is deleted only while it still has no row (a blob pushed again
 * since then keeps its new copy, and its old one waits for the next
 * recovery) and while the aside copy is still the very object this batch
 * moved (blob_removal_finish checks), so a removal by another collector
 * that has not committed yet is never touched. Leftovers are finished by
 * the recovery at the start and end of every pass, under the lock.
 */
static void finish_moved(struct gc *g)
{
    for (size_t k = 0; k < g->moved_count; k++) {
        const struct blob_removal *mv = &g->moved[k];
        struct meta_blob row;
        if (meta_blob_get(g->m, mv->d.str, &row) == BERTH_ENOTFOUND &&
            blob_removal_finish(g->blobs, mv) == BERTH_OK) {
            g->stats.trash_deleted++;
        }
    }
    g->moved_count = 0;
    for (size_t k = 0; k < g->moved_archive_count; k++) {
        const struct blob_removal *mv = &g->moved_archive[k];
        struct meta_blob row;
        if (meta_blob_get(g->m, mv->d.str, &row) == BERTH_ENOTFOUND &&
            blob_removal_finish(g->archive, mv) == BERTH_OK) {
            g->stats.trash_deleted++;
        }
    }
    g->moved_archive_count = 0;
}

/*
 * One write transaction: for candidates c[0..n), while the time budget
 * lasts, delete the row if the blob is still garbage and move its file to
 * trash. *used receives how many candidates were considered. After the
 * commit the trash files are unlinked; on failure everything is rolled
 * back and the files moved by this batch are put back.
 */
static enum berth_err delete_batch(struct gc *g, const struct meta_gc_blob *c, size_t n,
                                   size_t *used)
{
    g->moved_count = 0;
    g->moved_archive_count = 0;
    enum berth_err rc = txn_begin(g);
    if (rc != BERTH_OK) {
        *used = 0;
        return rc;
    }
    int64_t blobs = 0, bytes = 0;
    size_t i = 0;
    for (; rc == BERTH_OK && i < n && i < GC_BATCH_MAX; i++) {
        if (i > 0 && txn_elapsed_us(g) > g->budget_us) {
            break;
        }
        bool deleted = false;
        rc = meta_gc_blob_delete_if_garbage(g->m, c[i].id, g->cutoff, &deleted);
        if (rc != BERTH_OK || !deleted) {
            continue;
        }
        struct digest d;
        if (digest_parse(c[i].digest, &d) == BERTH_OK) {
            rc = blob_remove(g->blobs, &d, &g->moved[g->moved_count]);
            if (rc != BERTH_OK) {
                log_error("event=gc_error op=trash digest=%s errno=%d", d.str, errno);
                continue;
            }
            g->moved_count++;
            if (g->archive != NULL) {
                /* its bytes may be in the archive tier instead */
                rc = blob_remove(g->archive, &d, &g->moved_archive[g->moved_archive_count]);
                if (rc != BERTH_OK) {
                    log_error("event=gc_error op=trash_archive digest=%s errno=%d", d.str, errno);
                    continue;
                }
                g->moved_archive_count++;
            }
        }
        blobs++;
        bytes += c[i].size;
        log_debug("event=gc_blob_deleted digest=%s size=%lld", c[i].digest, (long long)c[i].size);
    }
    *used = i;
    rc = txn_end(g, rc);
    if (rc != BERTH_OK) {
        /* The rows are back; so must the files be. */
        g->moved_count = 0;
        g->moved_archive_count = 0;
        log_error("event=gc_error op=batch err=%s", berth_strerror(rc));
        if (finish_trash_txn(g) != BERTH_OK) {
            log_error("event=gc_error op=restore msg=\"trash is repaired at the next pass or "
                      "start-up\"");
        }
        return rc;
    }
    g->stats.blobs_deleted += blobs;
    g->stats.bytes_deleted += bytes;
    log_debug("event=gc_batch blobs=%lld bytes=%lld lock_us=%lld", (long long)blobs,
              (long long)bytes, (long long)g->last_hold_us);
    finish_moved(g);
    return BERTH_OK;
}

static enum berth_err sweep_blobs(struct gc *g)
{
    struct cand_list cands = {0};
    enum berth_err rc = BERTH_OK;
    int64_t after = 0;
    while (!cancelled(g)) {
        cands.n = 0;
        int64_t last = after, scanned = 0;
        rc = meta_gc_blob_scan(g->m, after, GC_SCAN_PAGE, g->cutoff, collect, &cands, &last,
                               &scanned);
        if (rc == BERTH_OK && cands.oom) {
            rc = BERTH_ENOMEM;
        }
        if (rc != BERTH_OK || scanned == 0) {
            break;
        }
        g->stats.blobs_scanned += scanned;
        after = last;
        if (g->opt->dry_run) {
            for (size_t i = 0; i < cands.n; i++) {
                g->stats.blobs_deleted++;
                g->stats.bytes_deleted += cands.v[i].size;
                log_debug("event=gc_blob_garbage digest=%s size=%lld", cands.v[i].digest,
                          (long long)cands.v[i].size);
            }
            continue;
        }
        size_t done = 0;
        while (rc == BERTH_OK && done < cands.n && !cancelled(g)) {
            size_t used = 0;
            rc = delete_batch(g, cands.v + done, cands.n - done, &used);
            done += used;
        }
        if (rc != BERTH_OK) {
            break;
        }
    }
    free(cands.v);
    return rc;
}

/* ---- blobs without a row ---- */

/* Remove the noted blobs in write transactions of about GC_BATCH_BUDGET_US
 * each: under the lock, a file whose row still does not exist cannot be in
 * the middle of a publication (that renames it and inserts the row in one
 * write transaction), so it is removed. */
static enum berth_err flush_orphans(struct gc *g)
{
    enum berth_err rc = BERTH_OK;
    size_t i = 0;
    while (rc == BERTH_OK && i < g->orphan_count) {
        rc = txn_begin(g);
        if (rc != BERTH_OK) {
            break;
        }
        for (size_t first = i; rc == BERTH_OK && i < g->orphan_count; i++) {
            if (i > first && txn_elapsed_us(g) > g->budget_us) {
                break;
            }
            struct orphan *o = &g->orphans[i];
            struct meta_blob row;
            enum berth_err got = meta_blob_get(g->m, o->d.str, &row);
            if (got == BERTH_OK) {
                continue;
            }
            if (got != BERTH_ENOTFOUND) {
                rc = got;
                break;
            }
            if (blob_delete(g->blobs, &o->d) != BERTH_OK) {
                continue; /* gone already, or logged */
            }
            g->stats.orphans_deleted++;
            g->stats.orphan_bytes += o->size;
            log_info("event=gc_orphan_removed digest=%s size=%lld", o->d.str, (long long)o->size);
        }
        rc = txn_end(g, rc);
    }
    g->orphan_count = 0;
    return rc;
}

/* A published blob: note it when it has no row and is older than the
 * cutoff. */
static enum berth_err check_blob(void *arg, const struct digest *d, uint64_t size, int64_t mtime_ms)
{
    struct gc *g = arg;
    if (cancelled(g)) {
        return BERTH_OK;
    }
    struct meta_blob row;
    enum berth_err rc = meta_blob_get(g->m, d->str, &row);
    if (rc == BERTH_OK) {
        return BERTH_OK;
    }
    if (rc != BERTH_ENOTFOUND) {
        return rc;
    }
    if (mtime_ms >= g->cutoff) {
        return BERTH_OK;
    }
    if (g->opt->dry_run) {
        g->stats.orphans_deleted++;
        g->stats.orphan_bytes += (int64_t)size;
        return BERTH_OK;
    }
    g->orphans[g->orphan_count].d = *d;
    g->orphans[g->orphan_count].size = (int64_t)size;
    g->orphan_count++;
    return g->orphan_count == GC_ORPHAN_BATCH ? flush_orphans(g) : BERTH_OK;
}

static enum berth_err sweep_orphans(struct gc *g)
{
    enum berth_err rc = blob_walk(g->blobs, check_blob, g);
    if (rc == BERTH_OK) {
        rc = flush_orphans(g);
    }
    g->orphan_count = 0;
    return rc;
}

/* ---- uploads ---- */

static enum berth_err sweep_uploads(struct gc *g, int64_t now)
{
    if (g->opt->upload_expiry_ms <= 0) {
        return BERTH_OK;
    }
    int64_t removed = 0;
    enum berth_err rc =
        upload_expire(g->st, now - g->opt->upload_expiry_ms, g->opt->dry_run, &removed);
    g->stats.uploads_removed = removed;
    return rc;
}

/* What sessions on S3 left in the bucket that nothing else removes
 * (upload_sweep_shared), counted with the uploads. */
static enum berth_err sweep_shared(struct gc *g, int64_t now)
{
    if (g->opt->orphan_upload_grace_ms <= 0) {
        return BERTH_OK;
    }
    int64_t removed = 0;
    enum berth_err rc =
        upload_sweep_shared(g->st, now - g->opt->orphan_upload_grace_ms, g->opt->dry_run, &removed);
    g->stats.uploads_removed += removed;
    return rc;
}

/* ---- the pass ---- */

/* Take the space reserve again (after a full disk gave it up) only when
 * that leaves as much room free: a delete running beside this pass, which
 * gave the reserve up to be written, must not find the disk full again
 * under it, with no reserve left to give. */
static bool reserve_retake(struct store *st)
{
    uint64_t avail = 0;
    if (store_reserve_held(st)) {
        return true;
    }
    store_disk_full(st, &avail);
    return avail >= 2 * (uint64_t)STORE_RESERVE_BYTES && store_reserve_take(st);
}

/* The steps of a pass; *step names the one that failed. */
static enum berth_err pass(struct gc *g, int64_t now, const char **step)
{
    const struct gc_options *opt = g->opt;
    enum berth_err rc = BERTH_OK;
    if (!opt->dry_run) {
        *step = "trash";
        rc = finish_trash_txn(g);
    }
    if (rc == BERTH_OK && !cancelled(g)) {
        *step = "uploads";
        rc = sweep_uploads(g, now);
    }
    if (rc == BERTH_OK && !cancelled(g)) {
        *step = "s3_leftovers";
        rc = sweep_shared(g, now);
    }
    if (rc == BERTH_OK && !cancelled(g)) {
        *step = "blobs";
        rc = sweep_blobs(g);
    }
    if (rc == BERTH_OK && !opt->dry_run) {
        /* Unlink the last batch's trash files now rather than next pass. */
        *step = "trash";
        rc = finish_trash_txn(g);
    }
    if (rc == BERTH_OK && !cancelled(g)) {
        *step = "orphans";
        rc = sweep_orphans(g);
    }
    if (rc == BERTH_OK && !opt->dry_run && !cancelled(g)) {
        /* copies left between the blob store and the archive tier */
        *step = "archive";
        rc = store_tier_recover(g->st, false, NULL);
    }
    return rc;
}

/* Record a finished pass in the history (meta_gc.h). */
static void record(struct meta *m, const char *reason, const char *node, int64_t started_ms,
                   enum berth_err rc, const char *step, const struct gc_stats *s)
{
    struct meta_gc_run r;
    memset(&r, 0, sizeof(r));
    r.started_at = started_ms;
    r.finished_at = time_now_ms();
    snprintf(r.reason, sizeof(r.reason), "%s", reason);
    if (node != NULL && node[0] != '\0') {
        snprintf(r.node, sizeof(r.node), "%s", node);
    } else if (gethostname(r.node, sizeof(r.node)) != 0) {
        snprintf(r.node, sizeof(r.node), "-");
    }
    r.node[sizeof(r.node) - 1] = '\0';
    snprintf(r.result, sizeof(r.result), "%s",
             rc != BERTH_OK ? "failed"
             : s->cancelled ? "cancelled"
                            : "ok");
    if (rc != BERTH_OK) {
        snprintf(r.error, sizeof(r.error), "%s at %s", berth_strerror(rc), step);
    }
    r.blobs_deleted = s->blobs_deleted;
    r.bytes_freed = s->bytes_deleted + s->orphan_bytes;
    r.orphans_deleted = s->orphans_deleted;
    r.uploads_removed = s->uploads_removed;
    if (meta_in_transaction(m)) {
        meta_rollback(m); /* a failed step may have left one open */
    }
    enum berth_err wrc = meta_gc_run_record(m, &r, META_GC_RUNS_KEEP);
    if (wrc != BERTH_OK) {
        log_warn("event=gc_history_error err=%s", berth_strerror(wrc));
    }
}

enum berth_err gc_run(struct store *st, const struct gc_options *opt, struct gc_stats *out)
{
    if (opt->grace_ms < 0 || opt->upload_expiry_ms < 0 || opt->orphan_upload_grace_ms < 0) {
        return BERTH_EINVAL;
    }
    struct gc *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        return BERTH_ENOMEM;
    }
    g->st = st;
    g->blobs = store_blobs(st);
    g->archive = store_archive(st);
    g->opt = opt;
    g->m = store_meta(st);
    int64_t started = time_mono_ns();
    int64_t now = time_now_ms();
    g->cutoff = now - opt->grace_ms;
    g->budget_us = GC_BATCH_BUDGET_US;
    const char *budget = getenv(GC_BATCH_BUDGET_ENV);
    uint64_t v = 0;
    if (budget != NULL && str_parse_u64(budget, INT64_MAX, &v) == BERTH_OK) {
        g->budget_us = (int64_t)v;
    }
    enum berth_err rc = g->m == NULL ? BERTH_EUNAVAILABLE : BERTH_OK;
    const char *step = "open";
    if (rc == BERTH_OK) {
        rc = pass(g, now, &step);
    }
    uint64_t avail = 0;
    if (rc != BERTH_OK && g->m != NULL && !opt->dry_run && !g->stats.cancelled &&
        store_disk_full(st, &avail)) {
        /* The deletions are database writes, which need room: the
         * reserve gives it, and is taken again once space is freed. */
        bool released = store_reserve_release(st);
        log_error("event=disk_full avail_bytes=%llu step=%s err=%s reserve_released=%d "
                  "msg=\"the data disk is full\"",
                  (unsigned long long)avail, step, berth_strerror(rc), released ? 1 : 0);
        if (released) {
            rc = pass(g, now, &step);
        }
    }
    if (!opt->dry_run && g->m != NULL && !reserve_retake(st)) {
        log_warn("event=disk_reserve_missing msg=\"no room to set space aside for garbage "
                 "collection on a full disk\"");
    }
    g->stats.duration_ms = (time_mono_ns() - started) / 1000000;
    const struct gc_stats *s = &g->stats;
    if (rc != BERTH_OK) {
        log_error("event=gc_error step=%s err=%s", step, berth_strerror(rc));
    }
    log_info("event=gc_pass dry_run=%d ok=%d cancelled=%d scanned=%lld blobs=%lld bytes=%lld "
             "orphans=%lld orphan_bytes=%lld uploads=%lld trash_restored=%lld batches=%lld "
             "max_lock_us=%lld duration_ms=%lld",
             opt->dry_run ? 1 : 0, rc == BERTH_OK ? 1 : 0, s->cancelled ? 1 : 0,
             (long long)s->blobs_scanned, (long long)s->blobs_deleted, (long long)s->bytes_deleted,
             (long long)s->orphans_deleted, (long long)s->orphan_bytes,
             (long long)s->uploads_removed, (long long)s->trash_restored, (long long)s->batches,
             (long long)s->max_lock_us, (long long)s->duration_ms);
    if (opt->reason != NULL && !opt->dry_run && g->m != NULL) {
        record(g->m, opt->reason, opt->node, now, rc, step, s);
    }
    if (rc == BERTH_OK && out != NULL) {
        *out = g->stats;
    }
    free(g);
    return rc;
}
