/* The replication job's threads; see replication.h. */
#include "server/jobs/replication.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/fault.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "server/jobs/leases.h"
#include "server/jobs/listen.h"
#include "server/metrics/metrics.h"
#include "storage/meta/meta_lease.h"
#include "storage/registry/replication.h"
#include "storage/store/store.h"
#include "storage/upstream/replicate.h"

/* One thread: the copies to one peer, or (filter.region NULL) to every
 * destination no peer is configured for. */
struct repl_thread {
    struct replication_job *j;
    struct meta_repl_filter filter;
    struct upstream_repl_options opt;
    /* the lease on this queue among replicas ("replication:region/id",
     * "replication:*" for the unmapped destinations) */
    char lease[META_LEASE_NAME_MAX + 1];
    /* the copies' cancel flag: set when the job stops or the lease is lost */
    atomic_bool cancel;
    pthread_t thread;
    bool started;
    /* the workers copying at once during a pass (each claims its copies in
     * the queue), handed runs by this thread */
    pthread_t *workers;
    size_t nworkers; /* replication.concurrency_per_peer; 1 for the unmapped */
    size_t workers_started;
    pthread_mutex_t lock;
    pthread_cond_t cond;                /* runs handed out, runs finished, stop */
    size_t runs;                        /* under lock: runs handed out, not yet taken */
    size_t busy;                        /* under lock: workers in a run */
    int64_t next_at;                    /* under lock: earliest next_at runs reported (0: none) */
    enum berth_err rc;                  /* under lock: a run's database error */
    struct upstream_repl_totals totals; /* under lock: what the runs did */
};

struct replication_job {
    struct store *st;
    struct upstream_peer *peers;
    size_t peer_count;
    char source[64]; /* registry.region/registry.id */
    char *except;    /* ",region/id,...," of every peer */
    struct leases *leases;
    int64_t poll_ms;  /* replication.poll_seconds */
    size_t workers;   /* replication.concurrency_per_peer */
    int64_t claim_ms; /* a copy's claim in the queue: the lease length, renewed */
    char holder[128]; /* whose claims: the lease holder id (or this process's) */
    atomic_bool stop;
    struct repl_thread *threads; /* peer_count + 1 */
    /* on PostgreSQL: the thread listening for the other replicas' pushes */
    pthread_t listener;
    bool listening;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool listen_tried; /* under lock: the listener's first LISTEN was made */
};

/* Claim the thread's queue among the replicas; refused, *wait_ms says how
 * long to wait before trying again (the holder's expiry, at most the
 * poll). The cancel flag is cleared first, unless the job is stopping. */
static bool claim_queue(struct repl_thread *t, int64_t *wait_ms)
{
    atomic_store(&t->cancel, false);
    if (atomic_load(&t->j->stop)) {
        /* replication_job_stop sets stop before the cancel flags */
        atomic_store(&t->cancel, true);
    }
    int64_t retry = 0;
    if (leases_claim(t->j->leases, t->lease, 0, &t->cancel, &retry)) {
        return true;
    }
    int64_t until = retry - time_now_ms();
    int64_t poll = t->j->poll_ms;
    *wait_ms = until < 100 ? 100 : until < poll ? until : poll;
    return false;
}

/* A worker: a run over the thread's queue whenever one is handed out. */
static void *worker_main(void *arg)
{
    struct repl_thread *t = arg;
    struct replication_job *j = t->j;
    pthread_mutex_lock(&t->lock);
    for (;;) {
        while (t->runs == 0 && !atomic_load(&j->stop)) {
            pthread_cond_wait(&t->cond, &t->lock);
        }
        if (atomic_load(&j->stop)) {
            break;
        }
        t->runs--;
        t->busy++;
        pthread_mutex_unlock(&t->lock);
        int64_t next_at = 0;
        struct upstream_repl_totals tot = {0, 0, 0};
        enum berth_err rc = upstream_repl_run(j->st, &t->opt, &next_at, &tot);
        pthread_mutex_lock(&t->lock);
        t->busy--;
        t->totals.complete += tot.complete;
        t->totals.retrying += tot.retrying;
        t->totals.failed += tot.failed;
        if (rc != BERTH_OK) {
            t->rc = rc;
        }
        if (next_at > 0 && (t->next_at == 0 || next_at < t->next_at)) {
            t->next_at = next_at;
        }
        pthread_cond_broadcast(&t->cond);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

/* Under t->lock: hand a run to every idle worker. */
static void hand_out(struct repl_thread *t)
{
    t->runs = t->nworkers - t->busy;
    t->next_at = 0;
    pthread_cond_broadcast(&t->cond);
}

/* One pass over the queue, the lease held: the workers copy at once (each
 * claims its copies), and idle ones get another run when a push queues a
 * copy (*seen: the wake-up count the caller waits on) or a retry is due,
 * until none has anything left. Claims are renewed meanwhile. */
static enum berth_err run_pass(struct repl_thread *t, uint64_t *seen, int64_t *next_at,
                               struct upstream_repl_totals *tot)
{
    struct replication_job *j = t->j;
    int64_t renew_at = time_mono_ns() / 1000000 + j->claim_ms / 3;
    pthread_mutex_lock(&t->lock);
    t->rc = BERTH_OK;
    t->totals = (struct upstream_repl_totals){0, 0, 0};
    hand_out(t);
    while (t->runs > 0 || t->busy > 0) {
        if (atomic_load(&t->cancel)) {
            t->runs = 0; /* stopping, or the lease was lost */
        }
        struct timespec ts;
        int64_t at = time_mono_ns() + 200 * 1000000LL;
        ts.tv_sec = (time_t)(at / 1000000000);
        ts.tv_nsec = (long)(at % 1000000000);
        pthread_cond_timedwait(&t->cond, &t->lock, &ts);
        if (t->runs == 0 && t->busy == 0) {
            break;
        }
        int64_t due = t->next_at;
        pthread_mutex_unlock(&t->lock);
        int64_t mono = time_mono_ns() / 1000000;
        if (mono >= renew_at) {
            struct meta *m;
            enum berth_err rc = store_meta_get(j->st, &m);
            if (rc == BERTH_OK) {
                rc = meta_repl_renew(m, j->holder, time_now_ms() + j->claim_ms, NULL);
            }
            if (rc != BERTH_OK) {
                log_error("event=replication_error op=renew_claims err=%s", berth_strerror(rc));
            }
            renew_at = mono + j->claim_ms / 3;
        }
        uint64_t gen = registry_repl_generation();
        bool more = gen != *seen || (due > 0 && time_now_ms() >= due);
        pthread_mutex_lock(&t->lock);
        if (more && !atomic_load(&t->cancel) && t->busy < t->nworkers) {
            *seen = gen;
            hand_out(t);
        }
    }
    *next_at = t->next_at;
    *tot = t->totals;
    enum berth_err rc = t->rc;
    pthread_mutex_unlock(&t->lock);
    return rc;
}

static void *thread_main(void *arg)
{
    struct repl_thread *t = arg;
    struct replication_job *j = t->j;
    while (!atomic_load(&j->stop)) {
        /* read before looking, so a push queued meanwhile wakes the wait */
        uint64_t seen = registry_repl_generation();
        int64_t wait = j->poll_ms;
        /* one replica copies a peer's queue at a time: in order, and never
         * the same copy twice at once */
        if (!claim_queue(t, &wait)) {
            registry_repl_wait(&seen, wait, &j->stop);
            continue;
        }
        int64_t next_at = 0;
        struct upstream_repl_totals tot = {0, 0, 0};
        enum berth_err rc = run_pass(t, &seen, &next_at, &tot);
        /* for tests: the queue looked at for the last time, still held */
        fault_hold("replication_release");
        leases_release(j->leases, t->lease, false);
        if (rc != BERTH_OK) {
            log_error("event=replication_error err=%s", berth_strerror(rc));
        }
        metrics_replication_copies((uint64_t)tot.complete, (uint64_t)tot.retrying,
                                   (uint64_t)tot.failed);
        if (atomic_load(&j->stop)) {
            break;
        }
        if (rc != BERTH_OK) {
            wait = t->opt.retry_initial_ms;
        } else if (next_at > 0) {
            int64_t until = next_at - time_now_ms();
            wait = until < 1 ? 1 : until < wait ? until : wait;
        }
        registry_repl_wait(&seen, wait, &j->stop);
    }
    return NULL;
}

static void repl_wake(void *arg)
{
    (void)arg;
    registry_repl_notify();
}

/* a second, or a stop (or a push of this process: tried again sooner) */
static void repl_pause(void *arg)
{
    struct replication_job *j = arg;
    uint64_t seen = registry_repl_generation();
    registry_repl_wait(&seen, 1000, &j->stop);
}

static void repl_first_tried(void *arg)
{
    struct replication_job *j = arg;
    pthread_mutex_lock(&j->lock);
    j->listen_tried = true;
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->lock);
}

/* On PostgreSQL: a push through another replica queued a copy; its
 * announcement (registry_repl_on_push) wakes this process's threads as a
 * push of its own would: the one holding a peer's queue looks at it again
 * before it lets it go, a refused one tries again. The connection is this
 * thread's alone. The first LISTEN is made before the peer threads start
 * (replication_job_start waits for the first attempt), so nothing queued
 * after their first look goes unheard while the database answers. */
static void *listener_main(void *arg)
{
    struct replication_job *j = arg;
    jobs_listen(&(struct jobs_listener){.st = j->st,
                                        .channel = META_CHANNEL_REPLICATION,
                                        .what = "replication",
                                        .stop = &j->stop,
                                        .arg = j,
                                        .wake = repl_wake,
                                        .pause = repl_pause,
                                        .first_tried = repl_first_tried});
    return NULL;
}

/* Start the listener (PostgreSQL) and wait for its first LISTEN. */
static enum berth_err start_listener(struct replication_job *j)
{
    if (pthread_create(&j->listener, NULL, listener_main, j) != 0) {
        return BERTH_EIO;
    }
    j->listening = true;
    pthread_mutex_lock(&j->lock);
    while (!j->listen_tried) {
        pthread_cond_wait(&j->cond, &j->lock);
    }
    pthread_mutex_unlock(&j->lock);
    return BERTH_OK;
}

static void job_free(struct replication_job *j)
{
    pthread_cond_destroy(&j->cond);
    pthread_mutex_destroy(&j->lock);
    for (size_t i = 0; j->threads != NULL && i <= j->peer_count; i++) {
        pthread_cond_destroy(&j->threads[i].cond);
        pthread_mutex_destroy(&j->threads[i].lock);
        free(j->threads[i].workers);
    }
    free(j->threads);
    free(j->peers);
    free(j->except);
    free(j);
}

enum berth_err replication_job_start(const struct berth_config *cfg, struct store *st,
                                     struct leases *leases, struct replication_job **out, char *err,
                                     size_t cap)
{
    struct replication_job *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        return BERTH_ENOMEM;
    }
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->cond, NULL);
    enum berth_err rc =
        upstream_peers_parse(cfg->replication_peers, &j->peers, &j->peer_count, err, cap);
    if (rc != BERTH_OK) {
        job_free(j);
        return rc;
    }
    if (cfg->replication_retry_max_ms < cfg->replication_retry_initial_ms) {
        snprintf(err, cap,
                 "replication.retry_max_ms must be at least replication.retry_initial_ms");
        job_free(j);
        return BERTH_EINVAL;
    }
    if (leases != NULL && j->peer_count + 1 > REPLICATION_LEASED_MAX) {
        snprintf(err, cap,
                 "replication.peers: at most %d peers with meta.backend postgres (each "
                 "peer's queue is claimed under a lease)",
                 REPLICATION_LEASED_MAX - 1);
        job_free(j);
        return BERTH_EINVAL;
    }
    j->st = st;
    j->leases = leases;
    j->poll_ms = cfg->replication_poll_seconds * 1000;
    j->workers = (size_t)cfg->replication_concurrency_per_peer;
    j->claim_ms = leases != NULL ? leases_ttl_ms(leases) : REPLICATION_CLAIM_MS;
    if (leases != NULL) {
        snprintf(j->holder, sizeof(j->holder), "%s", leases_holder(leases));
    } else {
        snprintf(j->holder, sizeof(j->holder), "local/%ld", (long)getpid());
    }
    snprintf(j->source, sizeof(j->source), "%s/%s", cfg->registry_region, cfg->registry_id);
    atomic_init(&j->stop, false);
    size_t except_cap = 2 + j->peer_count * (META_REPL_REGION_MAX + META_REPL_REGISTRY_ID_MAX + 2);
    j->except = malloc(except_cap);
    j->threads = calloc(j->peer_count + 1, sizeof(*j->threads));
    if (j->except == NULL || j->threads == NULL) {
        job_free(j);
        return BERTH_ENOMEM;
    }
    for (size_t i = 0; i <= j->peer_count; i++) {
        pthread_mutex_init(&j->threads[i].lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&j->threads[i].cond, &ca);
        pthread_condattr_destroy(&ca);
        /* the destinations with no peer fail at once: one worker */
        j->threads[i].nworkers = i < j->peer_count ? j->workers : 1;
        j->threads[i].workers = calloc(j->threads[i].nworkers, sizeof(pthread_t));
        if (j->threads[i].workers == NULL) {
            job_free(j);
            return BERTH_ENOMEM;
        }
    }
    size_t used = (size_t)snprintf(j->except, except_cap, ",");
    for (size_t i = 0; i < j->peer_count; i++) {
        used += (size_t)snprintf(j->except + used, except_cap - used, "%s/%s,", j->peers[i].region,
                                 j->peers[i].registry_id);
    }
    struct meta *m = store_meta(st);
    /* one node: the claims left are of a process gone (killed mid-copy) */
    rc = leases == NULL && m != NULL ? meta_repl_unclaim_all(m) : BERTH_OK;
    if (rc != BERTH_OK) {
        snprintf(err, cap, "cannot read the replication queue: %s", berth_strerror(rc));
        job_free(j);
        return rc;
    }
    if (leases != NULL && m != NULL && meta_can_listen(m) && start_listener(j) != BERTH_OK) {
        snprintf(err, cap, "cannot start the replication threads");
        replication_job_stop(j);
        return BERTH_EIO;
    }
    for (size_t i = 0; i <= j->peer_count; i++) {
        struct repl_thread *t = &j->threads[i];
        t->j = j;
        atomic_init(&t->cancel, false);
        if (i < j->peer_count) {
            t->filter.region = j->peers[i].region;
            t->filter.registry_id = j->peers[i].registry_id;
            snprintf(t->lease, sizeof(t->lease), "replication:%s/%s", j->peers[i].region,
                     j->peers[i].registry_id);
        } else {
            t->filter.except = j->except;
            snprintf(t->lease, sizeof(t->lease), "replication:*");
        }
        t->opt = (struct upstream_repl_options){
            .peers = j->peers,
            .peer_count = j->peer_count,
            .retry_initial_ms = cfg->replication_retry_initial_ms,
            .retry_max_ms = cfg->replication_retry_max_ms,
            .timeout_ms = cfg->replication_timeout_seconds * 1000,
            .failed_after_ms = cfg->replication_failed_after_seconds * 1000,
            .cancel = &t->cancel,
            .filter = &t->filter,
            .source = j->source,
            .holder = j->holder,
            .claim_ms = j->claim_ms,
        };
        for (size_t w = 0; w < t->nworkers; w++) {
            if (pthread_create(&t->workers[w], NULL, worker_main, t) != 0) {
                snprintf(err, cap, "cannot start the replication threads");
                replication_job_stop(j);
                return BERTH_EIO;
            }
            t->workers_started++;
        }
        if (pthread_create(&t->thread, NULL, thread_main, t) != 0) {
            snprintf(err, cap, "cannot start the replication threads");
            replication_job_stop(j);
            return BERTH_EIO;
        }
        t->started = true;
    }
    log_info("event=job_started job=replication peers=%zu threads=%zu workers_per_peer=%zu "
             "retry_initial_ms=%lld retry_max_ms=%lld",
             j->peer_count, j->peer_count + 1, j->workers,
             (long long)cfg->replication_retry_initial_ms,
             (long long)cfg->replication_retry_max_ms);
    *out = j;
    return BERTH_OK;
}

void replication_job_stop(struct replication_job *j)
{
    if (j == NULL) {
        return;
    }
    atomic_store(&j->stop, true);
    for (size_t i = 0; i <= j->peer_count; i++) {
        atomic_store(&j->threads[i].cancel, true);
    }
    registry_repl_notify();
    for (size_t i = 0; i <= j->peer_count; i++) {
        if (j->threads[i].started) {
            pthread_join(j->threads[i].thread, NULL);
        }
    }
    for (size_t i = 0; i <= j->peer_count; i++) {
        struct repl_thread *t = &j->threads[i];
        pthread_mutex_lock(&t->lock);
        pthread_cond_broadcast(&t->cond);
        pthread_mutex_unlock(&t->lock);
        for (size_t w = 0; w < t->workers_started; w++) {
            pthread_join(t->workers[w], NULL);
        }
    }
    if (j->listening) {
        pthread_join(j->listener, NULL);
    }
    job_free(j);
}
