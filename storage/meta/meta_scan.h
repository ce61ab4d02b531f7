/*
 * Metadata for image scanning (storage/meta/scan.c): registry-wide
 * settings, the persistent scan queue (scan_jobs), and per image the latest
 * scan (scans) with its findings (scan_findings). A scan belongs to a
 * manifest row: deleting the manifest deletes its job, scan and findings.
 * Same rules as meta.h: one connection per thread, every call may block on
 * the database, transactions are the caller's (meta_begin / meta_commit),
 * timestamps are milliseconds since the epoch.
 */
#ifndef BERTH_META_SCAN_H
#define BERTH_META_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/spec/digest.h"
#include "common/err.h"
#include "storage/meta/meta.h"
#include "storage/spec/names.h"
#include "storage/spec/scan_severity.h"

/* Longest stored scan description (longer ones are cut). */
#define META_SCAN_DESCRIPTION_MAX 1023
/* Longest registry setting value. */
#define META_SETTING_MAX (1u << 20)
/* The config media types of the manifests berth scans: container images. */
#define META_SCAN_CONFIG_OCI "application/vnd.oci.image.config.v1+json"
#define META_SCAN_CONFIG_DOCKER "application/vnd.docker.container.image.v1+json"

/* ---- registry settings ---- */

/* The value of a setting into a new string (caller frees); *out is NULL
 * when it was never set. */
enum berth_err meta_setting_get(struct meta *m, const char *name, char **out);

/* Set a setting (insert or replace). BERTH_ETOOBIG over META_SETTING_MAX. */
enum berth_err meta_setting_set(struct meta *m, const char *name, const char *value, int64_t now);

/* Remove a setting. BERTH_ENOTFOUND when it was not set. */
enum berth_err meta_setting_delete(struct meta *m, const char *name);

/* Remove a setting and hand back the value it had (a new string, caller
 * frees; *out NULL, and nothing removed, when it was not set), read and
 * removed in one write transaction (its own unless one is open), so the
 * value returned is the one removed. */
enum berth_err meta_setting_take(struct meta *m, const char *name, char **out);

/* ---- scans ---- */

enum meta_scan_status {
    META_SCAN_IN_PROGRESS = 0, /* queued or running */
    META_SCAN_COMPLETE,
    META_SCAN_FAILED,
    /* a restored image's rescan was over the quota (meta_scan_on_restore) */
    META_SCAN_LIMIT_EXCEEDED,
};

/* "IN_PROGRESS", "COMPLETE", "FAILED", "LIMIT_EXCEEDED" (ECR's names). */
const char *meta_scan_status_name(enum meta_scan_status s);

/* Whether a manifest is a container image berth scans: not an index, and
 * a config of one of the two media types above. */
bool meta_scan_is_image(bool is_index, const char *config_media_type);

struct meta_scan {
    int64_t manifest_id;
    enum meta_scan_status status;
    char description[META_SCAN_DESCRIPTION_MAX + 1]; /* "" when none */
    int64_t requested_at;      /* last scan that counts against the quota, 0 = none */
    int64_t completed_at;      /* when the last scan ended, 0 = never */
    int64_t source_updated_at; /* vulnerabilitySourceUpdatedAt, -1 = unknown */
    int64_t finding_count;
    int64_t counts[SCAN_SEVERITY_COUNT]; /* per severity, indexed by enum scan_severity */
};

/* The scan of a manifest. BERTH_ENOTFOUND when it was never scanned. */
enum berth_err meta_scan_get(struct meta *m, int64_t manifest_id, struct meta_scan *out);

/*
 * Queue a scan of a manifest: add a job unless one is already waiting for
 * it (a job that is running was claimed before this request, so it is
 * marked to run again once it ends: see meta_scan_job_finish), and mark
 * its scan IN_PROGRESS (creating the row). With count_quota the request
 * time is recorded as requested_at (scan-on-push and StartImageScan count;
 * continuous rescans do not). Call inside a write transaction. *queued
 * (optional) tells whether a job was added or a running one will run
 * again (false when a waiting job already covers the request).
 */
enum berth_err meta_scan_enqueue(struct meta *m, int64_t manifest_id, int64_t now, bool count_quota,
                                 bool *queued);

/* Queue a rescan (count_quota false) of every image manifest of a
 * repository (those meta_scan_is_image accepts) that is not archived (an
 * archived image cannot be scanned; an activating one is, once its blobs are
 * back). *queued receives the number of new jobs. Call inside a write
 * transaction. */
enum berth_err meta_scan_enqueue_repo(struct meta *m, int64_t repo_id, int64_t now,
                                      int64_t *queued);

/* Queue a new scan (count_quota false) of every image, not archived, whose
 * last scan FAILED with a description starting with prefix. *queued
 * receives the number of new jobs. Call inside a write transaction. */
enum berth_err meta_scan_enqueue_failed(struct meta *m, const char *prefix, int64_t now,
                                        int64_t *queued);

/* The description of a LIMIT_EXCEEDED scan. */
#define META_SCAN_LIMIT_DESCRIPTION                                                                \
    "The scan quota per image has been exceeded: the image was scanned less than "                 \
    "scan.quota_seconds before it was restored. Start a scan once the quota allows."

/*
 * An archived image is being restored (call inside the write transaction,
 * before its storage class changes): the image manifest_id names and, for
 * an index, the images of the repository it lists, those still in the
 * archive class and scannable (meta_scan_is_image), lose their scan from
 * before the archive (ECR: "scan results from before the image was
 * archived will not be available"). With rescan (scan-on-push applies to
 * the repository: a restored image is scanned as a pushed one is), each
 * gets a new scan counting against the quota (meta_scan_enqueue), unless
 * one was requested less than quota_ms before now (0: no quota): then its
 * scan is LIMIT_EXCEEDED (requested_at kept, so StartImageScan is allowed
 * once the quota allows). Without rescan the scan row goes, as if the
 * image had never been scanned. *queued and *limited (optional) receive
 * how many were queued and how many were over the quota.
 */
enum berth_err meta_scan_on_restore(struct meta *m, int64_t repo_id, int64_t manifest_id,
                                    bool rescan, int64_t quota_ms, int64_t now, int64_t *queued,
                                    int64_t *limited);

/* One finding to store: ECR's ImageScanFinding as compact JSON text. */
struct meta_scan_finding {
    enum scan_severity severity;
    const char *json;
};

/* A finished scan, as meta_scan_store records it. */
struct meta_scan_outcome {
    enum meta_scan_status status; /* META_SCAN_COMPLETE or META_SCAN_FAILED */
    const char *description;
    int64_t completed_at;
    int64_t source_updated_at; /* -1 when unknown */
    const struct meta_scan_finding *findings;
    size_t finding_count;
    int64_t counts[SCAN_SEVERITY_COUNT]; /* the findings per severity */
};

/*
 * Replace the manifest's scan with a finished one: status, description,
 * times, the counts per severity (as given), and the findings in the given
 * order (seq 0, 1, ...). requested_at is kept (none when the row is new: a scan that
 * was not queued, such as `berth scan`, does not count against the quota).
 * Call inside a write transaction. BERTH_ENOTFOUND when the manifest no
 * longer exists; BERTH_EINVAL for a status other than COMPLETE / FAILED.
 */
enum berth_err meta_scan_store(struct meta *m, int64_t manifest_id,
                               const struct meta_scan_outcome *o);

/* Findings of a manifest's scan with seq > after (-1: from the start), in
 * seq order, at most limit; *has_more tells whether more follow. The JSON
 * text passed to cb is borrowed for the call; cb returns 0 to continue. */
typedef int (*meta_scan_finding_cb)(void *arg, int64_t seq, const char *json);
enum berth_err meta_scan_findings(struct meta *m, int64_t manifest_id, int64_t after, int64_t limit,
                                  meta_scan_finding_cb cb, void *arg, bool *has_more);

/* ---- the queue ---- */

struct meta_scan_job {
    int64_t id;
    int64_t manifest_id;
    int64_t attempts; /* including this one */
    char repo[NAMES_REPO_MAX + 1];
    char digest[DIGEST_STR_MAX];
};

/* Claim the oldest unclaimed job (its own short write transaction; do not
 * call inside one): it is marked claimed (claimed_at is now, never before
 * the job's queued_at) and its attempts counted. BERTH_ENOTFOUND when
 * nothing is waiting, found by a plain read first: an empty queue never
 * takes the write lock. */
enum berth_err meta_scan_job_claim(struct meta *m, int64_t now, struct meta_scan_job *out);

/* The same for replicas sharing the database: a job is claimable when
 * unclaimed, or claimed by a holder whose lease on it (meta_lease.h, name
 * "scan-job:<id>") expired before now, i.e. the replica running it died;
 * the claim takes that lease for holder until now + ttl_ms (renewed with
 * the holder's other leases). Releasing, deleting or finishing the job
 * drops its lease. BERTH_EINVAL for an empty holder or ttl_ms < 1. */
enum berth_err meta_scan_job_claim_leased(struct meta *m, int64_t now, const char *holder,
                                          int64_t ttl_ms, struct meta_scan_job *out);

/* Put a claimed job back in the queue, not counting the attempt (the
 * scan was cancelled). BERTH_ENOTFOUND when it is gone. */
enum berth_err meta_scan_job_release(struct meta *m, int64_t job_id);

/* Remove a job (inside the caller's transaction). BERTH_ENOTFOUND when it
 * is gone already (its image was deleted). */
enum berth_err meta_scan_job_delete(struct meta *m, int64_t job_id);

/*
 * A claimed job ended and its outcome was stored (inside the caller's
 * transaction, after meta_scan_store): remove it, unless a scan was
 * requested after it was claimed (meta_scan_enqueue while it ran). Then it
 * goes back in the queue as a new job (attempts 0) and the image's scan is
 * IN_PROGRESS again; *requeued is set. BERTH_ENOTFOUND when the job is
 * gone (its image was deleted).
 */
enum berth_err meta_scan_job_finish(struct meta *m, int64_t job_id, bool *requeued);

/* Unclaim every job: claims left by a process that is gone (one node
 * only: replicas leave claims to their leases' expiry). *count (optional)
 * receives how many. */
enum berth_err meta_scan_jobs_reset(struct meta *m, int64_t *count);

/* Jobs in the queue: waiting (unclaimed) and all. */
enum berth_err meta_scan_jobs_count(struct meta *m, int64_t *waiting, int64_t *total);

#endif
