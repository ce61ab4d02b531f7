/*
 * Metadata queries of the archive tier (storage/store/tier.c): which blobs
 * may move to the archive tier, which images wait for blobs to come back,
 * and the rows a recovery checks. Same rules as meta.h: a struct meta is
 * used by one thread at a time and every call may block on the database.
 *
 * A blob may move to the archive tier when its bytes are in the blob store
 * (tier standard), archived manifests use it (as a layer or config), no
 * manifest of the standard class refers to it in any way, no manifest is
 * stored in it, and every repository it is linked to has a manifest that
 * uses it (a blob linked on its own, an upload or mount nothing uses yet,
 * would be pulled from that repository), and it was not touched (uploaded
 * again, mounted) since the last of those manifests was archived, unless
 * that was before quiet_before (a push of the same bytes, likely followed
 * by its manifest, is left alone for a while). Blobs are shared by every
 * repository, so the rule is global.
 */
#ifndef BERTH_META_TIER_H
#define BERTH_META_TIER_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "storage/meta/meta.h"

/* Called with each blob; non-zero stops. */
typedef int (*meta_tier_blob_cb)(void *arg, const struct meta_blob *b);

/* Up to limit blobs that may move to the archive tier (the rule above),
 * in id order after after_id. Reads only. BERTH_EDB. */
enum berth_err meta_tier_candidates(struct meta *m, int64_t after_id, int64_t limit,
                                    int64_t quiet_before, meta_tier_blob_cb cb, void *arg);

/* Whether the blob id may move to the archive tier now (the same rule).
 * Inside the write transaction that moves it. BERTH_EDB. */
enum berth_err meta_tier_archivable(struct meta *m, int64_t blob_id, int64_t quiet_before,
                                    bool *out);

/* Up to limit blob rows of the archive tier, in id order after after_id
 * (recovery). BERTH_EDB. */
enum berth_err meta_tier_archived(struct meta *m, int64_t after_id, int64_t limit,
                                  meta_tier_blob_cb cb, void *arg);

/* Mark restoring the manifest (and, for an index, the standard-class
 * manifests of the repository it lists) when it uses blobs of the archive
 * tier, an index also when one of those it lists does (so that it is
 * ACTIVATING while a child is); *marked (optional) counts the rows marked. Inside the write
 * transaction that makes it standard. BERTH_EDB. */
enum berth_err meta_tier_mark_restoring(struct meta *m, int64_t repo_id, int64_t manifest_id,
                                        int64_t *marked);

/* Called with each manifest id; non-zero stops. */
typedef int (*meta_tier_id_cb)(void *arg, int64_t id);

/* Up to limit manifests marked restoring, in id order after after_id. */
enum berth_err meta_tier_restoring(struct meta *m, int64_t after_id, int64_t limit,
                                   meta_tier_id_cb cb, void *arg);

/* The blobs of the archive tier the manifest uses (as layers or config). */
enum berth_err meta_tier_manifest_archived(struct meta *m, int64_t manifest_id,
                                           meta_tier_blob_cb cb, void *arg);

/* Clear restoring on the manifest when none of its blobs is left in the
 * archive tier and, for an index, none of the manifests it lists is still
 * restoring; *done tells whether it
 * was cleared. Inside a write transaction. BERTH_EDB. */
enum berth_err meta_tier_finish_restoring(struct meta *m, int64_t manifest_id, bool *done);

#endif
