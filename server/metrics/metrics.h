/*
 * Process-wide metrics in the Prometheus text format: counters and
 * histograms the HTTP layer and the background jobs feed as things
 * happen, rendered on demand with the gauges the caller measures at
 * scrape time (what is stored, the scan queue). Every label has a bounded
 * set of values: APIs, route templates and reasons are static strings
 * from the code, methods and statuses are folded into fixed sets, a
 * series table that fills up folds new series into route="other", and
 * repository names appear only for the first metrics.repository_series
 * repositories (opt-in).
 * Thread-safe: any thread may record; recording never blocks for long
 * (one short mutex for labelled series, atomics elsewhere).
 */
#ifndef BERTH_METRICS_H
#define BERTH_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

/* Series kept per table before new label sets fold into route="other". */
#define METRICS_SERIES_MAX 512

/* Record the process start time (once; later calls do nothing). */
void metrics_init(void);

/* One finished HTTP request. api and route are static strings (borrowed
 * for the life of the process): the API's name and the route template
 * ("/v2/{name}/blobs/{digest}", an ECR operation name); NULL becomes
 * "none". method is folded into GET, HEAD, POST, PUT, PATCH, DELETE,
 * OPTIONS or OTHER; a status outside 100..599 counts as 0. */
void metrics_http_request(const char *api, const char *route, const char *method, unsigned status,
                          double seconds, uint64_t bytes_in, uint64_t bytes_out);

/* A connection was accepted (+1) or closed (-1). */
void metrics_connection_delta(int delta);

/* The admission of large response bodies (server/http/admit.c): bodies
 * sending and waiting now, bodies that ever waited, slots taken back from
 * slow readers. */
void metrics_body_queue(unsigned sending, unsigned waiting, uint64_t queued_total,
                        uint64_t revoked_total);

/* An authentication or authorization refusal. reason is a static string
 * of the code ("bad_secret", "unknown_key", "denied", ...); reasons beyond
 * the fixed table count as "other". */
void metrics_auth_failure(const char *reason);

/* One garbage collection pass: its duration, bytes freed (blobs and
 * orphan files), blobs deleted; failed when it ended in an error. */
void metrics_gc_pass(double seconds, uint64_t bytes_freed, uint64_t blobs_deleted, bool failed);

/* One lifecycle run over some repositories: images evaluated and deleted. */
void metrics_lifecycle_run(uint64_t repositories, uint64_t images_evaluated,
                           uint64_t images_expired);

/* One recorded scan: complete or failed, and how long it ran. */
void metrics_scan_result(bool complete, double seconds);

/* Replication copies recorded by one run: done, to be tried again, failed
 * for good. */
void metrics_replication_copies(uint64_t complete, uint64_t retrying, uint64_t failed);

/* Pushes and pulls by repository (berth_repository_pushes_total and
 * berth_repository_pulls_total, label repository), opt-in and bounded: the
 * first n repositories pushed or pulled since the start get series of
 * their own, every later one counts under repository="_other" (no
 * repository name starts with '_'). 0, the default, records and renders
 * none. n is capped at METRICS_REPOSITORIES_MAX. Call before serving. */
#define METRICS_REPOSITORIES_MAX 1000
void metrics_repository_series(unsigned n);

/* An image pushed to repo (a manifest stored by a client: /v2 manifest
 * PUT, ECR PutImage) or pulled from it (its manifest read by a client:
 * /v2 manifest GET, an image of ECR BatchGetImage). */
void metrics_repository_push(const char *repo);
void metrics_repository_pull(const char *repo);

/* What the caller measured at scrape time; a field below 0 is left out. */
struct metrics_gauges {
    int64_t blobs;            /* blob rows */
    int64_t blob_bytes;       /* their sizes */
    int64_t upload_sessions;  /* open upload sessions */
    int64_t scan_waiting;     /* scan jobs not yet claimed */
    int64_t scan_running;     /* scan jobs claimed by a worker */
    int64_t repl_in_progress; /* replication copies queued or being retried */
    int64_t repl_failed;      /* replication copies FAILED */
    int64_t archived_blobs;   /* blobs whose bytes are in the archive tier */
    int64_t archived_bytes;   /* their sizes */
    int64_t archived_stored;  /* what their archive copies take */
    int64_t tail_hits;        /* S3 upload tails taken from memory (-1: not S3) */
    int64_t tail_misses;      /* ... read from the bucket */
};

/* Append every metric in the Prometheus text exposition format (0.0.4)
 * to out. The process metrics (RSS, open fds, start time) are read from
 * /proc here. BERTH_OK, or BERTH_ENOMEM/BERTH_ETOOBIG from the buffer. */
enum berth_err metrics_render(struct buf *out, const struct metrics_gauges *g);

/* APIs a summary tells apart; past them the last row becomes "other" and
 * counts every API without a row of its own. */
#define METRICS_SUMMARY_APIS 8

/* The counters since the process started, folded for a status page (the
 * web console's registry page): requests and bytes by API and status
 * class, and the jobs' totals. */
struct metrics_summary {
    int64_t started_at_ms; /* metrics_init's time; 0 before it */
    size_t api_count;
    struct {
        const char *api;      /* static, as recorded ("oci", "ecr", ...) */
        uint64_t by_class[6]; /* [0] no status, [1] 1xx ... [5] 5xx */
        uint64_t bytes_in, bytes_out;
    } apis[METRICS_SUMMARY_APIS]; /* in the order first seen */
    uint64_t auth_failures;
    uint64_t gc_passes_ok, gc_passes_failed, gc_bytes_freed, gc_blobs_deleted;
    uint64_t lifecycle_runs, lifecycle_images, lifecycle_expired;
    uint64_t scans_complete, scans_failed;
    int64_t open_connections;
};

/* A copy of the summary as it is now. Thread-safe (the recorders' lock,
 * briefly). */
void metrics_summary_get(struct metrics_summary *out);

/* Forget every recorded value (for tests). Not thread-safe with
 * recorders. */
void metrics_reset(void);

#endif
