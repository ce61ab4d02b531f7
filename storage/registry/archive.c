/*
 * The archive storage class: image status and UpdateImageStorageClass's
 * rule; see archive.h. Runs on the calling thread's metadata connection.
 */
#include "storage/registry/archive.h"
#include "storage/registry/registry_int.h"

#include <stdio.h>
#include <string.h>

#include "common/timeutil.h"
#include "storage/meta/meta_tier.h"
#include "storage/registry/scan_queue.h"
#include "storage/store/store.h"
#include "storage/store/tier.h"

enum registry_image_status registry_image_status(const struct meta_manifest *mf, int64_t now_ms)
{
    if (mf->storage_class == META_STORAGE_ARCHIVE) {
        return REGISTRY_IMAGE_ARCHIVED;
    }
    return mf->active_from > now_ms || mf->restoring ? REGISTRY_IMAGE_ACTIVATING
                                                     : REGISTRY_IMAGE_ACTIVE;
}

const char *registry_image_status_name(enum registry_image_status status)
{
    switch (status) {
    case REGISTRY_IMAGE_ARCHIVED:
        return "ARCHIVED";
    case REGISTRY_IMAGE_ACTIVATING:
        return "ACTIVATING";
    case REGISTRY_IMAGE_ACTIVE:
        break;
    }
    return "ACTIVE";
}

enum berth_err registry_image_check_active(const struct meta_manifest *mf, int64_t now_ms,
                                           struct registry_status *s)
{
    enum registry_image_status status = registry_image_status(mf, now_ms);
    if (status == REGISTRY_IMAGE_ACTIVE) {
        return BERTH_OK;
    }
    snprintf(s->digest, sizeof(s->digest), "%s", mf->digest);
    return registry_fail(s, REG_IMAGE_ARCHIVED, BERTH_ENOTFOUND,
                         status == REGISTRY_IMAGE_ARCHIVED
                             ? "The image with digest '%s' is archived; restore it to pull it"
                             : "The image with digest '%s' is being restored from the archive",
                         mf->digest);
}

static enum berth_err internal(struct registry_status *s, enum berth_err rc)
{
    return registry_fail(s, REG_INTERNAL, rc, "internal error (%s)", berth_strerror(rc));
}

/* Inside the write transaction: the checks, then the move. */
static enum berth_err move(struct store *st, struct meta *m, const char *repo, const char *tag,
                           const struct digest *digest, enum meta_storage_class target, int64_t now,
                           int64_t restore_ms, int64_t scan_quota_ms, struct meta_manifest *out,
                           bool *scan_queued, struct registry_status *s)
{
    struct meta_repo r;
    enum berth_err rc = registry_repo(st, repo, false, &r, s);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct meta_manifest mf;
    rc = registry_image_find(st, &r, tag, digest, &mf, s);
    if (rc != BERTH_OK) {
        return rc;
    }
    if (mf.storage_class == target) {
        *out = mf;
        return BERTH_OK;
    }
    if (target == META_STORAGE_ARCHIVE) {
        if (registry_image_status(&mf, now) == REGISTRY_IMAGE_ACTIVATING) {
            return registry_fail(
                s, REG_STORAGE_CLASS_UNSUPPORTED, BERTH_ECONFLICT,
                "The image with digest '%s' is being restored from the archive and "
                "cannot be archived until the restore completes",
                mf.digest);
        }
        int64_t parents = 0;
        rc = meta_manifest_parent_count(m, r.id, mf.digest, &parents);
        if (rc != BERTH_OK) {
            return internal(s, rc);
        }
        if (parents > 0) {
            return registry_fail(
                s, REG_STORAGE_CLASS_UNSUPPORTED, BERTH_ECONFLICT,
                "The image with digest '%s' is referenced by a manifest list; archive "
                "the manifest list instead",
                mf.digest);
        }
    }
    if (target == META_STORAGE_STANDARD) {
        /* before the class changes: the scans of the images it restores */
        rc = scan_queue_on_restore(m, &r, mf.id, now, scan_quota_ms, scan_queued);
        if (rc != BERTH_OK) {
            return internal(s, rc);
        }
    }
    int64_t active_from = target == META_STORAGE_STANDARD ? now + restore_ms : 0;
    rc = meta_manifest_set_storage_class(m, r.id, mf.id, target, now, active_from);
    if (rc == BERTH_OK && target == META_STORAGE_STANDARD && store_tier_enabled(st)) {
        /* its blobs in the archive tier come back first (ACTIVATING) */
        rc = meta_tier_mark_restoring(m, r.id, mf.id, NULL);
    }
    if (rc == BERTH_OK) {
        rc = meta_manifest_get(m, r.id, mf.digest, out);
    }
    return rc == BERTH_OK ? rc : internal(s, rc);
}

enum berth_err registry_image_set_storage_class(struct store *st, const char *repo, const char *tag,
                                                const struct digest *digest,
                                                enum meta_storage_class target, int64_t restore_ms,
                                                int64_t scan_quota_ms, struct meta_manifest *out,
                                                struct registry_status *s)
{
    s->reason = REG_OK;
    s->message[0] = '\0';
    s->digest[0] = '\0';
    s->err = BERTH_OK;
    struct meta *m = store_meta(st);
    if (m == NULL) {
        return internal(s, BERTH_EUNAVAILABLE);
    }
    enum berth_err rc = meta_begin(m);
    if (rc != BERTH_OK) {
        return internal(s, rc);
    }
    struct meta_manifest after;
    bool scan_queued = false;
    rc = move(st, m, repo, tag, digest, target, time_now_ms(), restore_ms < 0 ? 0 : restore_ms,
              scan_quota_ms, &after, &scan_queued, s);
    if (rc == BERTH_OK) {
        rc = meta_commit(m);
        if (rc != BERTH_OK) {
            internal(s, rc);
        }
    }
    if (rc != BERTH_OK) {
        meta_rollback(m);
        return rc;
    }
    if (store_tier_enabled(st)) {
        /* archived: its blobs may move to the archive tier; restored: they
         * come back */
        store_tier_notify();
    }
    if (scan_queued) {
        scan_queue_notify();
    }
    *out = after;
    return BERTH_OK;
}
