/*
 * Running scans over the store: one image through the configured engine
 * (the external hook when scan.hook is set, else the built-in scanner with
 * <root>/vulndb.db), recording the outcome as the image's scan, and
 * working off the persistent queue one job at a time. Used by the scan
 * workers and by `berth scan`. Thread-safe (each thread uses its own
 * metadata connection); every call blocks for as long as a scan takes.
 */
#ifndef BERTH_SCAN_RUN_H
#define BERTH_SCAN_RUN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/err.h"
#include "storage/meta/meta.h"
#include "storage/spec/digest.h"
#include "scan/engine/scan_hook.h"
#include "storage/spec/scan_severity.h"

struct store;

/* Directory under the data root where hook layouts are made. */
#define SCAN_WORK_DIR "scan-tmp"
/* A job claimed this many times without finishing (the process died while
 * it ran) ends FAILED instead of being tried again. */
#define SCAN_RUN_MAX_ATTEMPTS 3

/* The engine settings (from the scan.* configuration keys). */
struct scan_engine {
    const char *root;          /* the data root */
    const char *hook;          /* scan.hook; NULL or "" selects the built-in scanner */
    int64_t hook_timeout_ms;   /* scan.hook_timeout_seconds */
    size_t hook_max_output;    /* scan.hook_max_output_bytes */
    uint64_t max_image_bytes;  /* scan.max_image_bytes (built-in) */
    const atomic_bool *cancel; /* set to stop a running scan; may be NULL */
    /* Told of each scan scan_run_next records (complete or failed, and
     * how long the image took), on the scanning thread; may be NULL. */
    void (*on_recorded)(void *arg, bool complete, int64_t duration_ms);
    void *on_recorded_arg;
    /* Replicas sharing the database: scan_run_next claims jobs under a
     * lease of lease_ttl_ms for this holder (meta_scan_job_claim_leased),
     * which the caller renews; NULL claims them for this node alone. */
    const char *lease_holder;
    int64_t lease_ttl_ms;
    /* Replicas sharing the database and blob store: before the built-in
     * scanner opens the vulnerability database, the local copy is brought
     * to the shared generation (scan_dbsync_update). */
    bool vulndb_shared;
    /* Blobs of the image the store lacks (the config and the layers of an
     * image a pull-through cache stored before its client pulled them):
     * before either engine looks at the image, each missing one is handed
     * to fetch_blob, which makes it present (the job runner fetches it
     * through the cache: storage/upstream, which this folder cannot
     * include). It returns BERTH_OK once the blob is stored,
     * BERTH_ENOTFOUND when it cannot have it from anywhere (no cache rule
     * covers repo, or the upstream has no such blob: the scan then reports
     * the missing blob as it would without this), BERTH_EBUSY when
     * cancelled, else a failure with a reason in err: the scan is then
     * FAILED with "UpstreamError: ...". NULL: blobs are not fetched. */
    enum berth_err (*fetch_blob)(void *arg, struct store *st, const char *repo,
                                 const struct digest *d, char *err, size_t cap);
    void *fetch_blob_arg;
};

/* How a scan ended. */
struct scan_outcome {
    bool complete; /* COMPLETE, else FAILED */
    /* ECR's status description: valid UTF-8 without control characters */
    char description[SCAN_HOOK_DESCRIPTION_MAX];
    int64_t completed_at_ms;
    int64_t source_updated_at_ms; /* vulnerabilitySourceUpdatedAt, -1 when unknown */
    json_t *findings;             /* ECR ImageScanFinding objects in order (owned), never NULL
                                     after success */
    /* severities[i] is the severity of findings[i] (owned; NULL without
     * findings), counts[] the findings per severity: computed once, for
     * the stored scan, `berth scan` and the API alike */
    enum scan_severity *severities;
    int64_t counts[SCAN_SEVERITY_COUNT];
};

void scan_outcome_fini(struct scan_outcome *o);

/*
 * Scan the image mf of the repository repo with the engine. Everything
 * the image (or the hook) can cause is a FAILED outcome with a reason.
 * Returns BERTH_OK with *out (release with scan_outcome_fini);
 * BERTH_ENOTFOUND when the manifest blob is gone (the image was deleted);
 * BERTH_EBUSY when eng->cancel was set; BERTH_ENOMEM; BERTH_EIO/BERTH_EDB.
 */
enum berth_err scan_run_image(struct store *st, const struct scan_engine *eng, const char *repo,
                              const struct meta_manifest *mf, struct scan_outcome *out);

/*
 * Record an outcome as the manifest's scan, in one write transaction that
 * also finishes the job job_id (0: no job, e.g. `berth scan`): it is
 * removed, or queued again when a scan was requested while it ran
 * (meta_scan_job_finish). BERTH_ENOTFOUND (nothing recorded) when the
 * manifest or the job is gone.
 */
enum berth_err scan_run_record(struct store *st, int64_t manifest_id, int64_t job_id,
                               const struct scan_outcome *o);

/*
 * Claim the oldest waiting job, scan its image and record the outcome.
 * *ran is false when nothing was waiting. A job whose image was deleted
 * meanwhile ends quietly; a cancelled scan puts its job back. Returns
 * BERTH_OK, or a database error (the job is then left for a retry).
 */
enum berth_err scan_run_next(struct store *st, const struct scan_engine *eng, bool *ran);

#endif
