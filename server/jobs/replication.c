/* The replication job's thread; see replication.h. */
#include "server/jobs/replication.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "server/metrics/metrics.h"
#include "storage/registry/replication.h"
#include "storage/upstream/replicate.h"

struct replication_job {
    struct store *st;
    struct upstream_peer *peers;
    struct upstream_repl_options opt;
    char source[64]; /* registry.region/registry.id */
    atomic_bool stop;
    pthread_t thread;
};

static void *job_main(void *arg)
{
    struct replication_job *j = arg;
    while (!atomic_load(&j->stop)) {
        /* read before looking, so a push queued meanwhile wakes the wait */
        uint64_t seen = registry_repl_generation();
        int64_t next_at = 0;
        struct upstream_repl_totals t = {0, 0, 0};
        enum berth_err rc = upstream_repl_run(j->st, &j->opt, &next_at, &t);
        if (rc != BERTH_OK) {
            log_error("event=replication_error err=%s", berth_strerror(rc));
        }
        metrics_replication_copies((uint64_t)t.complete, (uint64_t)t.retrying, (uint64_t)t.failed);
        if (atomic_load(&j->stop)) {
            break;
        }
        int64_t wait = REPLICATION_POLL_MS;
        if (rc != BERTH_OK) {
            wait = j->opt.retry_initial_ms;
        } else if (next_at > 0) {
            int64_t until = next_at - time_now_ms();
            wait = until < 1 ? 1 : until < wait ? until : wait;
        }
        registry_repl_wait(&seen, wait, &j->stop);
    }
    return NULL;
}

enum berth_err replication_job_start(const struct berth_config *cfg, struct store *st,
                                     struct replication_job **out, char *err, size_t cap)
{
    struct replication_job *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        return BERTH_ENOMEM;
    }
    size_t count = 0;
    enum berth_err rc = upstream_peers_parse(cfg->replication_peers, &j->peers, &count, err, cap);
    if (rc != BERTH_OK) {
        free(j);
        return rc;
    }
    if (cfg->replication_retry_max_ms < cfg->replication_retry_initial_ms) {
        snprintf(err, cap,
                 "replication.retry_max_ms must be at least replication.retry_initial_ms");
        free(j->peers);
        free(j);
        return BERTH_EINVAL;
    }
    j->st = st;
    snprintf(j->source, sizeof(j->source), "%s/%s", cfg->registry_region, cfg->registry_id);
    atomic_init(&j->stop, false);
    j->opt = (struct upstream_repl_options){
        .peers = j->peers,
        .peer_count = count,
        .retry_initial_ms = cfg->replication_retry_initial_ms,
        .retry_max_ms = cfg->replication_retry_max_ms,
        .timeout_ms = cfg->replication_timeout_seconds * 1000,
        .cancel = &j->stop,
        .source = j->source,
    };
    if (pthread_create(&j->thread, NULL, job_main, j) != 0) {
        free(j->peers);
        free(j);
        snprintf(err, cap, "cannot start the replication thread");
        return BERTH_EIO;
    }
    log_info("event=job_started job=replication peers=%zu retry_initial_ms=%lld "
             "retry_max_ms=%lld",
             count, (long long)j->opt.retry_initial_ms, (long long)j->opt.retry_max_ms);
    *out = j;
    return BERTH_OK;
}

void replication_job_stop(struct replication_job *j)
{
    if (j == NULL) {
        return;
    }
    atomic_store(&j->stop, true);
    registry_repl_notify();
    pthread_join(j->thread, NULL);
    free(j->peers);
    free(j);
}
