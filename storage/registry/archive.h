/*
 * ECR's archive storage class (UpdateImageStorageClass): an image's status
 * (ACTIVE, ARCHIVED, ACTIVATING) from its manifest row, and moving an
 * image between the standard and archive classes. Both APIs ask
 * registry_image_status before serving an image: an archived or
 * activating image is not pulled. With an archive tier
 * (storage/store/tier.h) the bytes of blobs only archived images use move
 * there; a restore marks the images restoring until the tier's job has
 * brought them back, and is complete no earlier than the delay the caller
 * gives (storage.archive.restore_seconds).
 * Thread-safe; the calls that take a store block on the database.
 */
#ifndef BERTH_ARCHIVE_H
#define BERTH_ARCHIVE_H

#include <stdint.h>

#include "common/err.h"
#include "storage/meta/meta.h"
#include "storage/registry/registry.h"

struct store;

enum registry_image_status {
    REGISTRY_IMAGE_ACTIVE = 0,
    REGISTRY_IMAGE_ARCHIVED,
    REGISTRY_IMAGE_ACTIVATING,
};

/* An image's status at now_ms. Pure. */
enum registry_image_status registry_image_status(const struct meta_manifest *mf, int64_t now_ms);

/* Whether the image may be pulled at now_ms: BERTH_OK when ACTIVE, else
 * BERTH_ENOTFOUND with REG_IMAGE_ARCHIVED in *s (s->digest the image's). */
enum berth_err registry_image_check_active(const struct meta_manifest *mf, int64_t now_ms,
                                           struct registry_status *s);

/* ECR's name of a status ("ACTIVE", "ARCHIVED", "ACTIVATING"). Pure. */
const char *registry_image_status_name(enum registry_image_status status);

/*
 * Move the image repo names by tag and/or digest (as registry_image_find)
 * to the class target, in one write transaction; an index takes the
 * manifests of the repository it lists along. Archiving sets
 * lastArchivedAt; restoring sets lastActivatedAt and makes the image
 * ACTIVATING for restore_ms (0: ACTIVE at once). A restore resets the
 * scans of the images it brings back, in the same transaction: rescanned
 * when scan-on-push applies, unless scanned less than scan_quota_ms ago
 * (LIMIT_EXCEEDED; 0: no quota), see scan_queue_on_restore. An image
 * already in the class is left as it is. *out (written on success) is the image as it is
 * afterwards. Reasons: REG_REPO_UNKNOWN, REG_MANIFEST_UNKNOWN,
 * REG_TAG_DIGEST_MISMATCH, REG_STORAGE_CLASS_UNSUPPORTED (archiving an
 * image that is being restored, or a manifest that an index of the
 * repository lists: archive the index), REG_INTERNAL.
 */
enum berth_err registry_image_set_storage_class(struct store *st, const char *repo, const char *tag,
                                                const struct digest *digest,
                                                enum meta_storage_class target, int64_t restore_ms,
                                                int64_t scan_quota_ms, struct meta_manifest *out,
                                                struct registry_status *s);

#endif
