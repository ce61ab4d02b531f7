/*
 * The background job runner of `berth serve` (see jobs.h): one thread per
 * job, all sleeping on one condition variable (CLOCK_MONOTONIC) guarded by
 * one mutex, which also guards the wake flags and the list of repositories
 * to run soon. Each thread uses its own metadata connection, closed when
 * the thread exits.
 */
#include "server/jobs/jobs.h"

#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/jobs/activity.h"
#include "server/jobs/leases.h"
#include "storage/gc/gc.h"
#include "storage/lifecycle/lifecycle.h"
#include "storage/lifecycle/lifecycle_run.h"
#include "storage/registry/signing.h"
#include "storage/store/tier.h"
#include "common/fault.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "server/metrics/metrics.h"

/* The first periodic run comes after the interval or this, if shorter, so
 * that a server restarted often still collects. */
#define JOBS_FIRST_RUN_MAX_MS 60000

struct jobs;

struct job {
    struct jobs *js;
    const char *name;
    int64_t interval_ms; /* 0: runs only when woken */
    int64_t next_ns;     /* monotonic time of the next periodic run */
    void (*fn)(struct job *jb, bool periodic);
    bool wake;          /* under js->lock */
    int64_t wake_at_ns; /* under js->lock: also run at this monotonic time (0: no) */
    bool started;
    pthread_t thread;
    /* under js->lock, for jobs_status_get (wall clock ms) */
    bool running;
    bool requested; /* woken by jobs_gc_soon: the next run is an operator's */
    int64_t last_started_ms, last_finished_ms;
    /* the cancel flag of this job's passes: set when the jobs stop or its
     * lease is lost */
    atomic_bool cancel;
};

struct jobs {
    struct store *st;
    struct jobs_options opt;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    atomic_bool stop; /* also the cancel flag of the passes */
    /* repositories to run soon, each at its due time (monotonic ns): at
     * once after PutLifecyclePolicy, or when a policy too new to enforce
     * becomes due */
    struct soon_repo {
        int64_t repo_id;
        int64_t due_ns;
    } soon[JOBS_SOON_MAX];
    size_t soon_count;
    bool soon_overflow; /* more were asked for: run every repository */
    bool full_owed;     /* a periodic lifecycle pass is due but has not run */
    struct job gc;
    struct job lifecycle;
    struct job preview;
    int64_t started_at_ms;
    /* the archive tier's mover: its own thread, woken by store_tier_notify */
    bool tier_started;
    pthread_t tier_thread;
    atomic_bool tier_cancel; /* set when the jobs stop or its lease is lost */
    /* managed signing: its own thread, woken by signing_notify */
    bool signing_started;
    pthread_t signing_thread;
    atomic_bool signing_cancel; /* likewise */
    /* the activity history's sampler (NULL: none) */
    struct activity_sampler *activity;
};

void jobs_options_from_config(const struct berth_config *cfg, struct jobs_options *out)
{
    memset(out, 0, sizeof(*out));
    out->gc_enabled = cfg->gc_enabled;
    out->gc_interval_ms = cfg->gc_interval_seconds * 1000;
    out->gc_grace_ms = cfg->gc_grace_seconds * 1000;
    out->upload_expiry_ms = cfg->storage_upload_expiry_seconds * 1000;
    out->orphan_upload_grace_ms = cfg->storage_s3_orphan_upload_grace * 1000;
    out->lifecycle_enabled = cfg->lifecycle_enabled;
    out->lifecycle_interval_ms = cfg->lifecycle_interval_seconds * 1000;
    out->lifecycle_new_policy_delay_ms = cfg->lifecycle_new_policy_delay_seconds * 1000;
    out->activity_sample_ms = cfg->metrics_activity_sample_seconds * 1000;
    jobs_replica_name(cfg, out->node, sizeof(out->node));
}

void jobs_replica_name(const struct berth_config *cfg, char *out, size_t cap)
{
    if (cfg->replica_name[0] != '\0') {
        snprintf(out, cap, "%s", cfg->replica_name);
        return;
    }
    char host[65] = "";
    if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
        snprintf(host, sizeof(host), "host");
    }
    host[sizeof(host) - 1] = '\0';
    char addr[256];
    uint16_t port = 0;
    if (config_listen_parts(cfg->listen, addr, sizeof(addr), &port) == BERTH_OK && port != 0) {
        snprintf(out, cap, "%.40s:%u", host, (unsigned)port);
    } else {
        snprintf(out, cap, "%.40s/%ld", host, (long)getpid());
    }
}

/* ---- the jobs ---- */

/* Retry a job refused its lease at retry_ms (wall clock), no sooner than
 * 100 ms and no later than max_ms from now. */
static void retry_at(struct job *jb, int64_t retry_ms, int64_t max_ms)
{
    int64_t in_ms = retry_ms - time_now_ms();
    if (in_ms < 100) {
        in_ms = 100;
    }
    if (max_ms > 0 && in_ms > max_ms) {
        in_ms = max_ms;
    }
    int64_t at = time_mono_ns() + in_ms * 1000000;
    pthread_mutex_lock(&jb->js->lock);
    if (jb->wake_at_ns == 0 || at < jb->wake_at_ns) {
        jb->wake_at_ns = at;
    }
    pthread_cond_broadcast(&jb->js->cond);
    pthread_mutex_unlock(&jb->js->lock);
}

/* Claim the job's lease; refused, the job is woken again when it may be
 * granted (at most max_retry_ms later, 0: no bound). The job's cancel flag
 * is cleared first, unless the jobs are stopping. */
static bool claim(struct job *jb, const char *name, int64_t min_gap_ms, int64_t max_retry_ms)
{
    struct jobs *js = jb->js;
    atomic_store(&jb->cancel, false);
    if (atomic_load(&js->stop)) {
        /* jobs_stop sets stop before the cancel flags: seen here, or its
         * store to the flag comes after ours */
        atomic_store(&jb->cancel, true);
    }
    int64_t retry = 0;
    if (leases_claim(js->opt.leases, name, min_gap_ms, &jb->cancel, &retry)) {
        return true;
    }
    retry_at(jb, retry, max_retry_ms);
    return false;
}

static void run_gc(struct job *jb, bool periodic)
{
    (void)periodic;
    struct jobs *js = jb->js;
    pthread_mutex_lock(&js->lock);
    bool requested = jb->requested;
    jb->requested = false;
    jb->wake_at_ns = 0;
    pthread_mutex_unlock(&js->lock);
    /* once per interval among the replicas, whichever runs it (a woken
     * retry too: it comes when the last pass is an interval old); an
     * operator's run only waits for a pass in progress elsewhere */
    if (!claim(jb, "gc", requested ? 0 : js->opt.gc_interval_ms, 0)) {
        if (requested) {
            pthread_mutex_lock(&js->lock);
            jb->requested = true;
            pthread_mutex_unlock(&js->lock);
        }
        return;
    }
    struct gc_options opt = {.grace_ms = js->opt.gc_grace_ms,
                             .upload_expiry_ms = js->opt.upload_expiry_ms,
                             .orphan_upload_grace_ms = js->opt.orphan_upload_grace_ms,
                             .cancel = &jb->cancel,
                             .reason = requested ? "requested" : "periodic",
                             .node = js->opt.node};
    /* gc_run logs its own summary and errors, and records the pass in the
     * history the registry page shows. */
    struct gc_stats stats;
    memset(&stats, 0, sizeof(stats));
    fault_hold("gc"); /* tests: the pass shows as running while held */
    int64_t t0 = time_mono_ns();
    enum berth_err rc = gc_run(js->st, &opt, &stats);
    metrics_gc_pass((double)(time_mono_ns() - t0) / 1e9,
                    (uint64_t)(stats.bytes_deleted + stats.orphan_bytes),
                    (uint64_t)stats.blobs_deleted, rc != BERTH_OK);
    leases_release(js->opt.leases, "gc", rc == BERTH_OK && !stats.cancelled);
}

/* Under js->lock: remember repo_id to run at due_ns (an earlier time
 * wins), or run every repository when the list is full; wake the job. */
static void soon_add(struct jobs *js, int64_t repo_id, int64_t due_ns)
{
    size_t i = 0;
    while (i < js->soon_count && js->soon[i].repo_id != repo_id) {
        i++;
    }
    if (i < js->soon_count) {
        if (due_ns < js->soon[i].due_ns) {
            js->soon[i].due_ns = due_ns;
        }
    } else if (js->soon_count < JOBS_SOON_MAX) {
        js->soon[js->soon_count++] = (struct soon_repo){repo_id, due_ns};
    } else {
        js->soon_overflow = true;
        js->lifecycle.wake = true;
    }
    if (js->lifecycle.wake_at_ns == 0 || due_ns < js->lifecycle.wake_at_ns) {
        js->lifecycle.wake_at_ns = due_ns;
    }
    pthread_cond_broadcast(&js->cond);
}

/* Under js->lock: the earliest due time left, or 0. */
static int64_t soon_next(const struct jobs *js)
{
    int64_t next = 0;
    for (size_t i = 0; i < js->soon_count; i++) {
        if (next == 0 || js->soon[i].due_ns < next) {
            next = js->soon[i].due_ns;
        }
    }
    return next;
}

/* A policy too new to enforce: run it again when it is due. (Also the
 * callback of a full pass, which sees every result.) */
static void requeue_deferred(void *arg, const struct lifecycle_run_result *r)
{
    struct jobs *js = arg;
    if (r->deferred_ms <= 0) {
        return;
    }
    pthread_mutex_lock(&js->lock);
    soon_add(js, r->repo_id, time_mono_ns() + r->deferred_ms * 1000000);
    pthread_mutex_unlock(&js->lock);
}

static void run_lifecycle(struct job *jb, bool periodic)
{
    struct jobs *js = jb->js;
    int64_t repos[JOBS_SOON_MAX];
    size_t n = 0;
    /* take the repositories that are due; the others wait for their time */
    pthread_mutex_lock(&js->lock);
    int64_t now = time_mono_ns();
    if (periodic) {
        js->full_owed = true;
    }
    bool all = js->full_owed || js->soon_overflow;
    bool overflow = js->soon_overflow;
    size_t kept = 0;
    for (size_t i = 0; i < js->soon_count; i++) {
        if (js->soon[i].due_ns <= now) {
            repos[n++] = js->soon[i].repo_id;
        } else {
            js->soon[kept++] = js->soon[i];
        }
    }
    js->soon_count = kept;
    js->soon_overflow = false;
    jb->wake_at_ns = soon_next(js);
    pthread_mutex_unlock(&js->lock);
    if (!all && n == 0) {
        return;
    }

    /* The periodic pass runs once per interval among the replicas; a run
     * asked for now (a new policy) only waits for the lease. */
    int64_t gap = all && !overflow ? js->opt.lifecycle_interval_ms : 0;
    if (!claim(jb, "lifecycle", gap, all && !overflow ? 0 : 1000)) {
        pthread_mutex_lock(&js->lock);
        js->soon_overflow = js->soon_overflow || overflow;
        int64_t due = time_mono_ns() + 1000000000LL;
        for (size_t i = 0; i < n; i++) {
            soon_add(js, repos[i], due);
        }
        pthread_mutex_unlock(&js->lock);
        return;
    }
    fault_hold("lifecycle"); /* tests: the run waits (a full disk made under it) */
    struct lifecycle_run_options opt = {.dry_run = false,
                                        .cancel = &jb->cancel,
                                        .new_policy_delay_ms =
                                            js->opt.lifecycle_new_policy_delay_ms};
    if (all) {
        struct lifecycle_run_totals t;
        memset(&t, 0, sizeof(t));
        enum berth_err rc = lifecycle_run_all(js->st, &opt, requeue_deferred, js, &t);
        metrics_lifecycle_run((uint64_t)t.repositories, (uint64_t)t.images, (uint64_t)t.expired);
        bool done = rc == BERTH_OK && !atomic_load(&jb->cancel);
        if (done) {
            pthread_mutex_lock(&js->lock);
            js->full_owed = false;
            pthread_mutex_unlock(&js->lock);
        }
        leases_release(js->opt.leases, "lifecycle", done && !overflow);
        return;
    }
    uint64_t evaluated = 0, images = 0, expired = 0;
    for (size_t i = 0; i < n && !atomic_load(&jb->cancel); i++) {
        struct lifecycle_run_result *r = NULL;
        char msg[LIFECYCLE_MSG_CAP];
        enum berth_err rc = lifecycle_run_repo(js->st, repos[i], &opt, &r, msg, sizeof(msg));
        if (rc != BERTH_OK && rc != BERTH_ENOTFOUND) {
            char v[LIFECYCLE_MSG_CAP + 8];
            log_error("event=lifecycle_error repo_id=%lld err=%s msg=%s", (long long)repos[i],
                      berth_strerror(rc), log_value(msg, v, sizeof(v)));
        }
        if (rc == BERTH_OK && r != NULL && r->deferred_ms > 0) {
            requeue_deferred(js, r);
        } else if (rc == BERTH_OK && r != NULL) {
            evaluated++;
            images += r->image_count;
            expired += r->expired;
        }
        lifecycle_run_result_free(r);
    }
    leases_release(js->opt.leases, "lifecycle", false);
    if (evaluated > 0) {
        metrics_lifecycle_run(evaluated, images, expired);
    }
}

static void run_previews(struct job *jb, bool periodic)
{
    (void)periodic;
    struct jobs *js = jb->js;
    pthread_mutex_lock(&js->lock);
    jb->wake_at_ns = 0;
    pthread_mutex_unlock(&js->lock);
    if (!claim(jb, "lifecycle-preview", 0, 1000)) {
        return;
    }
    fault_hold("lifecycle_preview"); /* tests: previews stay IN_PROGRESS while held */
    (void)lifecycle_preview_process_pending(js->st, &jb->cancel, NULL);
    leases_release(js->opt.leases, "lifecycle-preview", false);
}

/* The archive tier: a pass at start (moves a restart interrupted), then
 * whenever an image is archived or restored, and every JOBS_TIER_RETRY_MS
 * (moves that failed are tried again). */
#define JOBS_TIER_RETRY_MS 60000

/* Claim a thread job's lease (the archive tier's, signing's: one replica
 * runs them at a time); refused, *wait_ms says how long to wait before
 * trying again (the holder's expiry, at most max_ms). The cancel flag is
 * cleared first, unless the jobs are stopping. */
static bool claim_thread_job(struct jobs *js, const char *name, atomic_bool *cancel, int64_t max_ms,
                             int64_t *wait_ms)
{
    atomic_store(cancel, false);
    if (atomic_load(&js->stop)) {
        atomic_store(cancel, true); /* jobs_stop sets stop before the flags */
    }
    int64_t retry = 0;
    if (leases_claim(js->opt.leases, name, 0, cancel, &retry)) {
        return true;
    }
    int64_t in_ms = retry - time_now_ms();
    *wait_ms = in_ms < 100 ? 100 : in_ms < max_ms ? in_ms : max_ms;
    return false;
}

static void *tier_main(void *arg)
{
    struct jobs *js = arg;
    uint64_t seen = 0;
    while (!atomic_load(&js->stop)) {
        int64_t wait = JOBS_TIER_RETRY_MS;
        if (claim_thread_job(js, "archive", &js->tier_cancel, JOBS_TIER_RETRY_MS, &wait)) {
            struct tier_stats stats;
            memset(&stats, 0, sizeof(stats));
            /* logs its own summary */
            (void)store_tier_pass(js->st, &js->tier_cancel, &stats);
            leases_release(js->opt.leases, "archive", false);
        }
        store_tier_wait(&seen, wait, &js->stop);
    }
    return NULL;
}

/* Managed signing: what a restart left queued at start, then whenever a
 * push queues a signature (and every minute, in case a wake-up was
 * missed). */
static void *signing_main(void *arg)
{
    struct jobs *js = arg;
    uint64_t seen = 0;
    while (!atomic_load(&js->stop)) {
        int64_t wait = JOBS_TIER_RETRY_MS;
        if (claim_thread_job(js, "signing", &js->signing_cancel, JOBS_TIER_RETRY_MS, &wait)) {
            enum berth_err rc = signing_run_pending(js->st, &js->signing_cancel, NULL);
            leases_release(js->opt.leases, "signing", false);
            if (rc != BERTH_OK) {
                log_error("event=signing_error err=%s", berth_strerror(rc));
            }
        }
        signing_wait(&seen, wait, &js->stop);
    }
    return NULL;
}

/* ---- the runner ---- */

static void deadline(struct timespec *ts, int64_t mono_ns)
{
    ts->tv_sec = (time_t)(mono_ns / 1000000000);
    ts->tv_nsec = (long)(mono_ns % 1000000000);
}

static void *job_main(void *arg)
{
    struct job *jb = arg;
    struct jobs *js = jb->js;
    pthread_mutex_lock(&js->lock);
    while (!atomic_load(&js->stop)) {
        int64_t now = time_mono_ns();
        bool due = jb->interval_ms > 0 && now >= jb->next_ns;
        bool timed = jb->wake_at_ns > 0 && now >= jb->wake_at_ns;
        if (!due && !jb->wake && !timed) {
            int64_t until = jb->interval_ms > 0 ? jb->next_ns : 0;
            if (jb->wake_at_ns > 0 && (until == 0 || jb->wake_at_ns < until)) {
                until = jb->wake_at_ns;
            }
            if (until > 0) {
                struct timespec ts;
                deadline(&ts, until);
                pthread_cond_timedwait(&js->cond, &js->lock, &ts);
            } else {
                pthread_cond_wait(&js->cond, &js->lock);
            }
            continue;
        }
        jb->wake = false;
        jb->running = true;
        jb->last_started_ms = time_now_ms();
        pthread_mutex_unlock(&js->lock);
        jb->fn(jb, due);
        pthread_mutex_lock(&js->lock);
        jb->running = false;
        jb->last_finished_ms = time_now_ms();
        if (due) {
            jb->next_ns = time_mono_ns() + jb->interval_ms * 1000000;
        }
    }
    pthread_mutex_unlock(&js->lock);
    return NULL;
}

static enum berth_err start_job(struct jobs *js, struct job *jb, const char *name,
                                int64_t interval_ms, void (*fn)(struct job *, bool))
{
    jb->js = js;
    jb->name = name;
    jb->interval_ms = interval_ms;
    jb->fn = fn;
    atomic_init(&jb->cancel, false);
    int64_t first = interval_ms < JOBS_FIRST_RUN_MAX_MS ? interval_ms : JOBS_FIRST_RUN_MAX_MS;
    jb->next_ns = time_mono_ns() + first * 1000000;
    if (pthread_create(&jb->thread, NULL, job_main, jb) != 0) {
        log_error("event=jobs_error op=thread job=%s", name);
        return BERTH_EIO;
    }
    jb->started = true;
    log_info("event=job_started job=%s interval_ms=%lld", name, (long long)interval_ms);
    return BERTH_OK;
}

enum berth_err jobs_start(struct store *st, const struct jobs_options *opt, struct jobs **out)
{
    if ((opt->gc_enabled && opt->gc_interval_ms < 1000) ||
        (opt->lifecycle_enabled && opt->lifecycle_interval_ms < 1000) || opt->gc_grace_ms < 0 ||
        (opt->activity_sample_ms != 0 && opt->activity_sample_ms < 1000) ||
        opt->lifecycle_new_policy_delay_ms < 0 || opt->upload_expiry_ms <= 0 ||
        opt->orphan_upload_grace_ms < 0) {
        return BERTH_EINVAL;
    }
    struct jobs *js = calloc(1, sizeof(*js));
    if (js == NULL) {
        return BERTH_ENOMEM;
    }
    js->st = st;
    js->opt = *opt;
    js->started_at_ms = time_now_ms();
    atomic_init(&js->stop, false);
    atomic_init(&js->tier_cancel, false);
    atomic_init(&js->signing_cancel, false);
    pthread_mutex_init(&js->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&js->cond, &ca);
    pthread_condattr_destroy(&ca);

    /* previews left IN_PROGRESS by a restart are picked up at once */
    js->preview.wake = true;
    enum berth_err rc = start_job(js, &js->preview, "lifecycle-preview", 0, run_previews);
    if (rc == BERTH_OK && opt->gc_enabled) {
        rc = start_job(js, &js->gc, "gc", opt->gc_interval_ms, run_gc);
    }
    if (rc == BERTH_OK && opt->lifecycle_enabled) {
        rc = start_job(js, &js->lifecycle, "lifecycle", opt->lifecycle_interval_ms, run_lifecycle);
    }
    if (rc == BERTH_OK && store_tier_enabled(st)) {
        if (pthread_create(&js->tier_thread, NULL, tier_main, js) != 0) {
            log_error("event=jobs_error op=thread job=archive");
            rc = BERTH_EIO;
        } else {
            js->tier_started = true;
            log_info("event=job_started job=archive interval_ms=%d", JOBS_TIER_RETRY_MS);
        }
    }
    if (rc == BERTH_OK) {
        if (pthread_create(&js->signing_thread, NULL, signing_main, js) != 0) {
            log_error("event=jobs_error op=thread job=signing");
            rc = BERTH_EIO;
        } else {
            js->signing_started = true;
        }
    }
    if (rc == BERTH_OK && opt->activity_sample_ms > 0) {
        rc = activity_sampler_start(st, opt->activity_sample_ms, &js->activity);
    }
    if (rc != BERTH_OK) {
        jobs_stop(js);
        return rc;
    }
    *out = js;
    return BERTH_OK;
}

void jobs_stop(struct jobs *js)
{
    if (js == NULL) {
        return;
    }
    activity_sampler_stop(js->activity); /* its last sample first */
    pthread_mutex_lock(&js->lock);
    atomic_store(&js->stop, true);
    pthread_cond_broadcast(&js->cond);
    pthread_mutex_unlock(&js->lock);
    atomic_store(&js->tier_cancel, true);
    atomic_store(&js->signing_cancel, true);
    if (js->tier_started) {
        store_tier_notify();
        pthread_join(js->tier_thread, NULL);
    }
    if (js->signing_started) {
        signing_notify();
        pthread_join(js->signing_thread, NULL);
    }
    struct job *all[] = {&js->gc, &js->lifecycle, &js->preview};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        atomic_store(&all[i]->cancel, true);
    }
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        if (all[i]->started) {
            pthread_join(all[i]->thread, NULL);
        }
    }
    pthread_cond_destroy(&js->cond);
    pthread_mutex_destroy(&js->lock);
    log_info("event=jobs_stopped");
    free(js);
}

void jobs_lifecycle_soon(struct jobs *js, int64_t repo_id)
{
    if (js == NULL || !js->lifecycle.started) {
        return;
    }
    pthread_mutex_lock(&js->lock);
    /* due now: a policy too new to enforce is deferred by that run, which
     * schedules it for when it is due */
    soon_add(js, repo_id, time_mono_ns());
    pthread_mutex_unlock(&js->lock);
}

void jobs_preview_soon(struct jobs *js)
{
    if (js == NULL) {
        return;
    }
    pthread_mutex_lock(&js->lock);
    js->preview.wake = true;
    pthread_cond_broadcast(&js->cond);
    pthread_mutex_unlock(&js->lock);
}

bool jobs_gc_soon(struct jobs *js)
{
    if (js == NULL || !js->gc.started) {
        return false;
    }
    pthread_mutex_lock(&js->lock);
    js->gc.wake = true;
    js->gc.requested = true;
    pthread_cond_broadcast(&js->cond);
    pthread_mutex_unlock(&js->lock);
    return true;
}

/* Under js->lock. */
static void job_status(const struct job *jb, int64_t now_ms, int64_t now_ns,
                       struct jobs_job_status *out)
{
    out->enabled = jb->started;
    out->interval_ms = jb->interval_ms;
    out->running = jb->running;
    out->last_started_at_ms = jb->last_started_ms;
    out->last_finished_at_ms = jb->last_finished_ms;
    out->requested = jb->requested;
    out->next_at_ms = 0;
    if (jb->started && jb->interval_ms > 0) {
        int64_t left_ms = (jb->next_ns - now_ns) / 1000000;
        out->next_at_ms = now_ms + (left_ms > 0 ? left_ms : 0);
    }
}

void jobs_status_get(struct jobs *js, struct jobs_status *out)
{
    memset(out, 0, sizeof(*out));
    if (js == NULL) {
        return;
    }
    pthread_mutex_lock(&js->lock);
    int64_t now_ms = time_now_ms(), now_ns = time_mono_ns();
    out->started_at_ms = js->started_at_ms;
    out->gc_grace_ms = js->opt.gc_grace_ms;
    job_status(&js->gc, now_ms, now_ns, &out->gc);
    job_status(&js->lifecycle, now_ms, now_ns, &out->lifecycle);
    job_status(&js->preview, now_ms, now_ns, &out->preview);
    pthread_mutex_unlock(&js->lock);
}
