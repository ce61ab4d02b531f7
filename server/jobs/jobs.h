/*
 * Background jobs of `berth serve`: garbage collection and lifecycle
 * enforcement, each on its own thread that sleeps on a condition variable
 * until its interval passes (or it is woken), plus a thread that computes
 * lifecycle policy previews on demand. The first periodic run comes after
 * the interval or one minute, whichever is shorter. jobs_stop asks the
 * passes in progress to stop at their next batch boundary and joins the
 * threads; call it before the store closes. With leases (replicas on one
 * database), a job runs only while this process holds its lease: GC and the
 * periodic lifecycle pass run once per interval among the replicas, and a
 * job held elsewhere is tried again when its lease expires. Thread-safe: jobs_*_soon may be
 * called from any thread (request handlers) while the jobs run.
 */
#ifndef BERTH_JOBS_H
#define BERTH_JOBS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"
#include "common/err.h"

struct jobs;
struct store;

/* Repositories remembered for "run soon" before a full pass is done instead. */
#define JOBS_SOON_MAX 256

struct jobs_options {
    bool gc_enabled;
    int64_t gc_interval_ms;         /* >= 1000 */
    int64_t gc_grace_ms;            /* >= 0 */
    int64_t upload_expiry_ms;       /* > 0 */
    int64_t orphan_upload_grace_ms; /* >= 0: GC's sweep of S3 upload leftovers (0: none) */
    bool lifecycle_enabled;
    int64_t lifecycle_interval_ms; /* >= 1000 */
    /* a new or changed policy is first enforced this long after it was set
     * (>= 0); the job runs it then by itself */
    int64_t lifecycle_new_policy_delay_ms;
    /* add the request counters' growth to the activity history this often
     * (activity.h; >= 1000), 0: never */
    int64_t activity_sample_ms;
    /* this replica's name, recorded with the garbage collection passes it
     * runs (the console's history): jobs_replica_name() */
    char node[64];
    /* replicas sharing the database: each job runs under a lease
     * (leases.h), GC and full lifecycle passes once per interval among
     * them; NULL (one node) runs them all here, as without leases.
     * Borrowed: it must outlive the jobs. */
    struct leases *leases;
};

/* The options the configuration asks for (gc.*, lifecycle.*,
 * storage.upload_expiry_seconds, storage.s3.orphan_upload_grace_seconds,
 * metrics.activity_sample_seconds), and the replica's name
 * (jobs_replica_name). */
void jobs_options_from_config(const struct berth_config *cfg, struct jobs_options *out);

/* This replica's name into out (cap bytes, NUL-terminated): replica_name
 * when configured, else this host's name and the port of listen (two
 * replicas on one machine differ by port; on several, by host), or the
 * host's name and the process id when listen's port is 0. */
void jobs_replica_name(const struct berth_config *cfg, char *out, size_t cap);

/*
 * Start the threads over the store (borrowed; it must outlive the jobs).
 * Disabled jobs get no thread; the preview thread always runs and first
 * finishes previews left in progress by a restart. BERTH_EINVAL for an
 * interval under one second, BERTH_ENOMEM, BERTH_EIO when a thread cannot
 * be created (nothing is left running then).
 */
enum berth_err jobs_start(struct store *st, const struct jobs_options *opt, struct jobs **out);

/* Stop and join every thread, then free (NULL is fine). Blocks until the
 * current batch of each pass ends (milliseconds). */
void jobs_stop(struct jobs *j);

/* Run the lifecycle policy of this repository soon (after
 * PutLifecyclePolicy), or, while it is newer than
 * lifecycle_new_policy_delay_ms, as soon as it is due; ignored when
 * lifecycle enforcement is disabled. */
void jobs_lifecycle_soon(struct jobs *j, int64_t repo_id);

/* Compute the previews that are IN_PROGRESS soon. */
void jobs_preview_soon(struct jobs *j);

/* Run a garbage collection pass soon (an operator asked for one). false
 * when j is NULL or garbage collection is disabled (no GC thread). */
bool jobs_gc_soon(struct jobs *j);

/* One job's state; times are wall clock (epoch ms), 0 when none. */
struct jobs_job_status {
    bool enabled;
    int64_t interval_ms; /* 0: runs only when asked */
    bool running;
    int64_t last_started_at_ms;
    int64_t last_finished_at_ms;
    int64_t next_at_ms; /* the next periodic run; 0 when none */
    bool requested;     /* a run was asked for and has not started */
};

struct jobs_status {
    int64_t started_at_ms; /* when jobs_start ran */
    int64_t gc_grace_ms;
    struct jobs_job_status gc, lifecycle, preview;
};

/* A copy of the jobs' state as it is now (for status pages). j NULL: all
 * zero. Thread-safe; takes the jobs' lock briefly. */
void jobs_status_get(struct jobs *j, struct jobs_status *out);

#endif
