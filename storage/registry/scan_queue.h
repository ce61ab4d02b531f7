/*
 * When scans are queued: the registry rules behind scan-on-push (called by
 * registry_manifest_put inside its transaction, so a stored image and its
 * queued scan commit together), StartImageScan (image type and the
 * one-scan-per-quota rule), and the rescans a vulnerability database
 * import calls for. Also the in-process wake-up that tells scan workers a
 * job is waiting (workers poll as well, for jobs queued by other
 * processes). Thread-safe; every call may block on the database.
 */
#ifndef BERTH_SCAN_QUEUE_H
#define BERTH_SCAN_QUEUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "storage/meta/meta.h"

struct store;

/*
 * Inside the caller's write transaction, right after a manifest row was
 * created in repo: queue a scan when it is a container image (see
 * meta_scan_is_image) and scan-on-push applies to the repository (its own
 * flag, or the registry scanning configuration: SCAN_ON_PUSH or
 * CONTINUOUS_SCAN). The scan counts against the quota. *queued tells
 * whether a job was added; after the commit, call scan_queue_notify().
 */
enum berth_err scan_queue_on_push(struct meta *m, const struct meta_repo *repo,
                                  const struct meta_manifest *mf, int64_t now, bool *queued);

/*
 * Inside the caller's write transaction, before an archived image's
 * storage class goes back to standard (UpdateImageStorageClass STANDARD,
 * or a push of the archived image): the images it restores lose their
 * scan from before the archive, and when scan-on-push applies to the
 * repository (as scan_queue_on_push decides) they are scanned again,
 * counting against the quota, or marked LIMIT_EXCEEDED when scanned less
 * than quota_ms ago (0: no quota); see meta_scan_on_restore. *queued
 * tells whether a job was added; after the commit, call
 * scan_queue_notify().
 */
enum berth_err scan_queue_on_restore(struct meta *m, const struct meta_repo *repo,
                                     int64_t manifest_id, int64_t now, int64_t quota_ms,
                                     bool *queued);

enum scan_request_reason {
    SCAN_REQ_OK = 0,
    SCAN_REQ_REPO_UNKNOWN,     /* no such repository */
    SCAN_REQ_IMAGE_UNKNOWN,    /* no such tag or digest, or they disagree */
    SCAN_REQ_UNSUPPORTED_TYPE, /* an index or a non-image artifact */
    SCAN_REQ_QUOTA,            /* scanned less than quota_ms ago */
    SCAN_REQ_INTERNAL,         /* database failure */
};

/*
 * StartImageScan: in one write transaction, find the image of repo by tag
 * and/or digest (both given: they must name the same image), check that
 * it is a container image and that no scan was requested for it within
 * quota_ms (0: no quota; an image whose last scan failed with
 * SCAN_QUEUE_UPSTREAM_PREFIX is not held to it), and queue a scan. *mf receives the image.
 * Returns BERTH_OK, or the error with *why saying which rule failed
 * (BERTH_ENOTFOUND, BERTH_EUNSUPPORTED, BERTH_EBUSY for the quota, or the
 * database error with SCAN_REQ_INTERNAL). Notifies workers itself.
 */
enum berth_err scan_queue_request(struct store *st, const char *repo, const char *tag,
                                  const char *digest, int64_t quota_ms, struct meta_manifest *mf,
                                  enum scan_request_reason *why);

/* A scan that failed with a description starting with this never looked
 * at the image: blobs of an image a pull-through cache stored could not be
 * fetched from its upstream (scan/engine). StartImageScan of such an image
 * is not held to the quota (scan_queue_request), so that it can be scanned
 * again once the upstream is back. */
#define SCAN_QUEUE_UPSTREAM_PREFIX "UpstreamError:"

/* Scans that failed with a description starting with this are retried
 * after an import: they found no usable vulnerability database. */
#define SCAN_QUEUE_RETRY_PREFIX "VulnerabilityDatabaseError:"

/*
 * After a vulnerability database import, in one write transaction: queue
 * a rescan of every image of every repository whose effective frequency
 * is CONTINUOUS_SCAN (*rescans new jobs), and a new scan of every image
 * whose last scan failed for want of a vulnerability database (*retries
 * new jobs). Neither counts against the quota.
 */
enum berth_err scan_queue_after_import(struct store *st, int64_t *rescans, int64_t *retries);

/* Wake every thread waiting in scan_queue_wait (a job was queued). */
void scan_queue_notify(void);

/*
 * Wait until scan_queue_notify is called after *seen was read, *stop is
 * set (scan_queue_notify must follow setting it), or timeout_ms passes.
 * *seen is updated to the current notification count. Start with *seen =
 * scan_queue_generation() taken before looking for work, so no wake-up is
 * lost.
 */
void scan_queue_wait(uint64_t *seen, int64_t timeout_ms, const atomic_bool *stop);

/* The notification count, for scan_queue_wait. */
uint64_t scan_queue_generation(void);

#endif
