/*
 * Metadata queries of the garbage collector (storage/gc/gc.c): a bounded,
 * keyset-paged scan of the blob table that says which blobs are garbage,
 * and the re-check-and-delete of one blob row inside a write transaction.
 * Same rules as meta.h: a struct meta is used by one thread at a time and
 * every call may block on the database.
 *
 * A blob is garbage under a cutoff time when its touched_at is before the
 * cutoff, no manifest row has it as its own content (manifests.blob_id),
 * no manifest reference of any kind names its digest
 * (manifest_refs.digest), and it is not the current shared vulnerability
 * database (vulndb_shared.digest, meta_vulndb.h). Links to repositories (repo_blobs) do not keep a
 * blob: they are removed with it.
 */
#ifndef BERTH_META_GC_H
#define BERTH_META_GC_H

#include <stdbool.h>
#include <stdint.h>

#include "storage/spec/digest.h"
#include "common/err.h"
#include "storage/meta/meta.h"

/* Largest page meta_gc_blob_scan reads in one call. */
#define META_GC_SCAN_MAX 10000

struct meta_gc_blob {
    int64_t id;
    char digest[DIGEST_STR_MAX];
    int64_t size;
    int64_t touched_at;
};

/* Called for each garbage blob; return 0 to continue, non-zero to stop. */
typedef int (*meta_gc_blob_cb)(void *arg, const struct meta_gc_blob *b);

/*
 * Read the blob rows with id > after in id order, at most limit of them
 * (1..META_GC_SCAN_MAX), and call cb for each one that is garbage under
 * cutoff (ms). *last receives the id of the last row read (after itself
 * when none was), *scanned the number of rows read; both optional. Reads
 * only: a snapshot per call, no write lock. BERTH_EINVAL for a bad limit,
 * BERTH_EDB.
 */
enum berth_err meta_gc_blob_scan(struct meta *m, int64_t after, int64_t limit, int64_t cutoff,
                                 meta_gc_blob_cb cb, void *arg, int64_t *last, int64_t *scanned);

/*
 * Delete the blob row id (and, by cascade, its repository links) if it is
 * still garbage under cutoff. *deleted tells whether a row went. Call it
 * inside a write transaction (meta_begin), so that the answer holds until
 * commit: a manifest push that would reference the blob checks it in its
 * own write transaction, before or after this one. BERTH_EDB.
 */
enum berth_err meta_gc_blob_delete_if_garbage(struct meta *m, int64_t id, int64_t cutoff,
                                              bool *deleted);

/* Copy committed pages from the WAL into the database file (a PASSIVE
 * checkpoint: it never blocks or waits for writers or readers). A
 * collector that writes many small transactions calls it now and then so
 * that the pushes' commits do not pay for SQLite's automatic checkpoint.
 * Call outside a transaction. BERTH_EDB. */
enum berth_err meta_gc_checkpoint(struct meta *m);

/* Number of blob rows and the sum of their sizes. BERTH_EDB. */
enum berth_err meta_gc_blob_totals(struct meta *m, int64_t *count, int64_t *bytes);

/* ---- the history of garbage collection passes (table gc_runs) ---- */

/* Passes kept: recording one deletes those older than the newest this many. */
#define META_GC_RUNS_KEEP 100

#define META_GC_RUN_REASON_MAX 16
#define META_GC_RUN_NODE_MAX 64
#define META_GC_RUN_RESULT_MAX 16
#define META_GC_RUN_ERROR_MAX 128

/* One pass; times are wall clock (epoch ms). */
struct meta_gc_run {
    int64_t id; /* set by meta_gc_runs_list */
    int64_t started_at, finished_at;
    char reason[META_GC_RUN_REASON_MAX]; /* "periodic", "requested", "command" */
    char node[META_GC_RUN_NODE_MAX];     /* who ran it: a replica's host:port, a host */
    char result[META_GC_RUN_RESULT_MAX]; /* "ok", "failed", "cancelled" */
    char error[META_GC_RUN_ERROR_MAX];   /* what failed ("" when nothing) */
    int64_t blobs_deleted;
    int64_t bytes_freed; /* blobs and orphan files */
    int64_t orphans_deleted;
    int64_t uploads_removed;
};

/* Record a finished pass and delete the passes older than the newest keep
 * (>= 1), in one write transaction of its own (not inside another).
 * BERTH_EINVAL (keep < 1), BERTH_EDB, BERTH_EUNAVAILABLE. */
enum berth_err meta_gc_run_record(struct meta *m, const struct meta_gc_run *r, int64_t keep);

/* Called with each pass, newest first; non-zero stops. */
typedef int (*meta_gc_run_cb)(void *arg, const struct meta_gc_run *r);

/* The newest limit (>= 1) passes, newest first. Reads only. BERTH_EINVAL,
 * BERTH_EDB. */
enum berth_err meta_gc_runs_list(struct meta *m, int64_t limit, meta_gc_run_cb cb, void *arg);

#endif
