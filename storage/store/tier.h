/*
 * The archive tier: the bytes of blobs that only archived images use move
 * out of the blob store into a blob store of their own (store_archive,
 * storage.archive.path: a directory, possibly on other media; with the S3
 * backend an S3 blob store under another prefix or bucket), recompressed
 * with zstd where that shrinks them, and come back byte-exact (the digest
 * is checked) when an image that uses them becomes standard again. Which
 * blobs may move is the rule of storage/meta/meta_tier.h; the blob row says
 * where the bytes are (meta_blob.tier) and how the archive copy is coded.
 *
 * Each move is crash-safe at every point, in this order:
 *   archive: write the copy into a stage of the archive store and sync it;
 *     then in one write transaction, with the rule checked again: publish
 *     the copy, record the tier, move the blob store's copy aside
 *     (blob_remove); after the commit delete what was moved aside.
 *   restore: decode the copy into a stage of the blob store, check digest
 *     and size, sync; then in one write transaction (the row still says
 *     archive): publish it and record the tier; after the commit, in a
 *     transaction that sees the row not in the archive tier, delete the
 *     archive copy.
 * Inside a write transaction there is never a live copy the row does not
 * name except a crash's leftover, so store_tier_recover (start-up, and
 * every garbage collection pass) may remove those: archive copies whose row
 * is gone or standard (when the blob store holds the bytes), blob store
 * copies whose row says archive (when the archive copy exists); trash is
 * settled by store_recover_trash.
 *
 * Every way a blob can be wanted again restores it or refuses cleanly: an
 * upload (or pull-through fetch, or import) of the same digest publishes it
 * in the blob store and its row becomes standard; a mount answers as for a
 * blob the registry does not have (the client uploads); a /v2 pull of it is
 * 404 BLOB_UNKNOWN; a manifest that uses it (a push, a restore) marks the
 * image restoring, ACTIVATING until the job has brought its blobs back.
 *
 * Thread-safe; every call blocks on the disk and the database.
 */
#ifndef BERTH_TIER_H
#define BERTH_TIER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

struct store;

/* How an archive copy is coded (meta_blob.archive_codec). */
#define TIER_CODEC_RAW 0  /* the blob's bytes as they are */
#define TIER_CODEC_ZSTD 1 /* one zstd frame of them */

struct tier_stats {
    int64_t archived;        /* blobs moved to the archive tier */
    int64_t archived_bytes;  /* their sizes */
    int64_t stored_bytes;    /* what their archive copies take */
    int64_t restored;        /* blobs brought back */
    int64_t restored_bytes;  /* their sizes */
    int64_t images_restored; /* manifests whose blobs are all back */
    int64_t failed;          /* moves that failed (logged; tried again next pass) */
    int64_t repaired;        /* recovery: leftovers removed, rows corrected */
};

/* Whether the store has an archive tier. */
bool store_tier_enabled(struct store *st);

/* Ask the job to run a pass soon (after a commit that archived or restored
 * an image). */
void store_tier_notify(void);

/* Wait until store_tier_notify is called after *seen was read, *stop is
 * set (store_tier_notify must follow setting it), or timeout_ms passes. */
void store_tier_wait(uint64_t *seen, int64_t timeout_ms, const atomic_bool *stop);

/* One pass: bring back the blobs of manifests marked restoring and finish
 * their restores, then move every blob the rule allows to the archive tier.
 * Stops early when *cancel (optional) becomes true. *out (optional) adds
 * what was done. BERTH_OK (failed moves are counted and logged),
 * BERTH_EDB. A store without a tier does nothing. */
enum berth_err store_tier_pass(struct store *st, const atomic_bool *cancel, struct tier_stats *out);

/* Repair what a crash left between the tiers (see above). With startup
 * (no mover runs yet) every stage of the archive store is removed too.
 * *out (optional) adds what was repaired. BERTH_EDB, BERTH_EIO. */
enum berth_err store_tier_recover(struct store *st, bool startup, struct tier_stats *out);

#endif
