/*
 * Online garbage collection: one pass removes blobs nothing references any
 * more (files and rows), blob files left without a row by a crash, expired
 * upload sessions and stray temporary files (and, on S3, the multipart
 * uploads and upload objects sessions left behind), while pushes and pulls go on.
 *
 * A blob is garbage when no manifest uses it as its content, no manifest
 * reference names its digest, and it was last touched (pushed, mounted,
 * unlinked, or released by a manifest delete) before now - grace. Each
 * batch of deletions is one short write transaction in which the
 * "still garbage?" check, the row delete and the move of the blob aside
 * (blob_remove: into <root>/trash with the filesystem backend) happen
 * together (a batch stops after about 2 ms); after the commit what the
 * batch moved aside is deleted. A manifest push checks its
 * blobs inside its own write transaction and an upload re-publishes its
 * blob inside its own, so no image can lose a layer; a crash at any point
 * is repaired by store_recover_trash (start-up, and the start and end of
 * every pass). After each write transaction the pass keeps off the lock
 * for a few times as long, so waiting pushes get it.
 *
 * Thread-safe (the calling thread's metadata connection is used); several
 * passes, in this process or others, may run at once. Blocks on disk and
 * database; a pass over a large store takes a while (docs/lifecycle-gc.md).
 */
#ifndef BERTH_GC_H
#define BERTH_GC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

struct store;

struct gc_options {
    int64_t grace_ms;         /* >= 0: blobs and orphan files younger than this stay */
    int64_t upload_expiry_ms; /* > 0: remove sessions and upload files older than this;
                                 0: leave uploads alone */
    /* > 0: abort the multipart uploads and delete the upload objects that
     * sessions on S3 left in the bucket older than this with no session row
     * (upload_sweep_shared); 0: leave them */
    int64_t orphan_upload_grace_ms;
    bool dry_run;              /* count what would go; change nothing */
    const atomic_bool *cancel; /* optional: when it becomes true the pass stops at the
                                  next batch boundary (stats say cancelled) */
    /* why the pass runs ("periodic", "requested", "command"), recorded with
     * its outcome in the history of passes (meta_gc.h, the newest
     * META_GC_RUNS_KEEP kept); NULL: not recorded. Dry runs never are. */
    const char *reason;
    /* who runs it, recorded with it: a server's replica name
     * (jobs_options.node), `berth gc`'s replica_name; NULL or "": this
     * host's name */
    const char *node;
};

struct gc_stats {
    int64_t blobs_scanned;   /* blob rows examined */
    int64_t blobs_deleted;   /* garbage blobs removed (or, dry run, found) */
    int64_t bytes_deleted;   /* their sizes */
    int64_t orphans_deleted; /* blob files without a row removed (or found) */
    int64_t orphan_bytes;
    int64_t uploads_removed; /* expired sessions, stray upload/temp files and S3 upload
                                leftovers (or found) */
    int64_t trash_restored;  /* crash leftovers put back (their row existed) */
    int64_t trash_deleted;   /* trash files unlinked */
    int64_t batches;         /* write transactions used */
    int64_t max_lock_us;     /* longest of them, from BEGIN IMMEDIATE to COMMIT */
    int64_t duration_ms;
    bool cancelled;
};

/*
 * Run one pass over the store. On BERTH_OK *out (optional) holds what was
 * done; on failure the pass stopped at the failing step (logged), with
 * nothing half-done: every batch either committed whole or was rolled back
 * and its files put back. One summary line (event=gc_pass) is logged, and
 * with opt->reason the pass is recorded in the history (a failure to
 * record is logged, not returned).
 * Returns BERTH_OK, BERTH_EINVAL (negative grace or expiry), BERTH_EDB,
 * BERTH_EIO, BERTH_ENOMEM.
 */
enum berth_err gc_run(struct store *st, const struct gc_options *opt, struct gc_stats *out);

#endif
