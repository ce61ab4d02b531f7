/*
 * The scan worker pool. Each worker loops: claim and run one job, or wait
 * for a wake-up (at most POLL_MS). The stop flag doubles as the engine's
 * cancel flag, so stopping also ends the scans in flight. See
 * scan_workers.h.
 */
#include "server/jobs/scan_workers.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/fileio.h"
#include "common/log.h"
#include "storage/meta/meta_scan.h"
#include "storage/registry/scan_queue.h"
#include "scan/engine/scan_run.h"
#include "scan/engine/scan_dbsync.h"
#include "server/jobs/leases.h"
#include "server/jobs/listen.h"
#include "server/metrics/metrics.h"
#include "storage/store/store.h"
#include "storage/upstream/cache.h"
#include "common/str.h"
#include "common/timeutil.h"
#include "common/wake.h"

/* Longest sleep between looks at the queue. */
#define POLL_MS 1000
/* Pause after a database error before trying again. */
#define ERROR_PAUSE_MS 1000

struct scan_workers {
    struct store *st;
    struct scan_engine engine;
    atomic_bool stop;
    pthread_t *threads;
    size_t count;
    /* replicas: the thread keeping the shared vulnerability database's
     * local copy current (scan_dbsync.h) */
    pthread_t syncer;
    bool syncing;
    int64_t sync_interval_ms;
    /* PostgreSQL: the thread listening for new generations (on a
     * connection of its own), which wakes the syncer */
    pthread_t listener;
    bool listening;
    struct wake sync_wake;
};

static void note_scan(void *arg, bool complete, int64_t duration_ms)
{
    (void)arg;
    metrics_scan_result(complete, (double)duration_ms / 1e3);
}

/* The engine's fetch_blob: a blob of an image in a pull-through cache
 * repository that the store lacks (the cache stored the manifest before
 * its client pulled the blobs) is fetched through the cache, as a client's
 * pull would: from the upstream, its digest verified, published. One fetch
 * per blob runs in the process: a client pulling the same blob meanwhile
 * joins it. A shutdown makes the fetch give up (upstream_stop). */
static enum berth_err fetch_through_cache(void *arg, struct store *st, const char *repo,
                                          const struct digest *d, char *err, size_t cap)
{
    struct scan_workers *w = arg;
    struct upstream_stream *s = NULL;
    int64_t size = -1;
    enum berth_err rc = upstream_stream_blob(st, repo, d, NULL, &s, &size, err, cap);
    if (rc == BERTH_OK && s != NULL) {
        rc = upstream_stream_wait(s, NULL, err, cap);
    }
    upstream_stream_release(s);
    if (rc != BERTH_OK && upstream_stopping()) {
        /* the process is stopping (the cache's fetches stop first): not
         * the upstream's failure; once the workers are told to stop too,
         * the job goes back to the queue */
        while (!atomic_load(&w->stop)) {
            time_sleep_ms(50);
        }
    }
    if (rc != BERTH_OK && atomic_load(&w->stop)) {
        return BERTH_EBUSY;
    }
    return rc;
}

static void *worker_main(void *arg)
{
    struct scan_workers *w = arg;
    while (!atomic_load(&w->stop)) {
        uint64_t seen = scan_queue_generation();
        bool ran = false;
        enum berth_err rc = scan_run_next(w->st, &w->engine, &ran);
        if (rc != BERTH_OK) {
            log_error("event=scan_worker_error err=%s", berth_strerror(rc));
            scan_queue_wait(&seen, ERROR_PAUSE_MS, &w->stop);
        } else if (!ran) {
            scan_queue_wait(&seen, POLL_MS, &w->stop);
        }
    }
    return NULL;
}

/* Look for a new generation of the shared vulnerability database at start
 * and every scan.vulndb_poll_seconds, so that it is downloaded before the
 * scans that need it (they look too, and wait for a download under way). */
static void *syncer_main(void *arg)
{
    struct scan_workers *w = arg;
    while (!atomic_load(&w->stop)) {
        uint64_t seen = wake_generation(&w->sync_wake);
        (void)scan_dbsync_update(w->st, w->engine.root, NULL); /* logs its failures */
        wake_wait(&w->sync_wake, &seen, w->sync_interval_ms, &w->stop);
    }
    return NULL;
}

/* An import on any replica announces its generation (META_CHANNEL_VULNDB):
 * the syncer looks at once instead of at its next poll. */
static void sync_wake(void *arg)
{
    struct scan_workers *w = arg;
    wake_notify(&w->sync_wake);
}

static void sync_pause(void *arg)
{
    struct scan_workers *w = arg;
    uint64_t seen = wake_generation(&w->sync_wake);
    wake_wait(&w->sync_wake, &seen, 1000, &w->stop);
}

static void *listener_main(void *arg)
{
    struct scan_workers *w = arg;
    jobs_listen(&(struct jobs_listener){.st = w->st,
                                        .channel = META_CHANNEL_VULNDB,
                                        .what = "vulndb",
                                        .stop = &w->stop,
                                        .arg = w,
                                        .wake = sync_wake,
                                        .pause = sync_pause});
    return NULL;
}

/* Remove hook layout directories left by a process that died while a hook
 * ran: any older than the longest a hook may run, with a margin (a
 * `berth scan` running beside the server keeps its own). */
static void remove_stale_layouts(const struct berth_config *cfg)
{
    char dir[4096];
    if (snprintf(dir, sizeof(dir), "%s/%s", cfg->root, SCAN_WORK_DIR) >= (int)sizeof(dir)) {
        return;
    }
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    time_t limit = time(NULL) - (time_t)cfg->scan_hook_timeout_seconds - 60;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[4400];
        struct stat sb;
        if (!str_has_prefix(e->d_name, "scan-") ||
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path) ||
            lstat(path, &sb) != 0 || sb.st_mtime > limit) {
            continue;
        }
        if (file_remove_tree(path) == BERTH_OK) {
            log_info("event=scan_stale_layout_removed path=%s", path);
        }
    }
    closedir(d);
}

enum berth_err scan_workers_start(const struct berth_config *cfg, struct store *st,
                                  struct leases *leases, struct scan_workers **out)
{
    struct meta *m;
    enum berth_err got = store_meta_get(st, &m);
    if (got != BERTH_OK) {
        return got;
    }
    int64_t released = 0, waiting = 0;
    /* the claims of a process that died: one node's are all its own; a
     * replica's are freed by their lease's expiry */
    enum berth_err rc = leases == NULL ? meta_scan_jobs_reset(m, &released) : BERTH_OK;
    if (rc == BERTH_OK) {
        rc = meta_scan_jobs_count(m, &waiting, NULL);
    }
    if (rc != BERTH_OK) {
        return rc;
    }
    remove_stale_layouts(cfg);
    /* what a killed download, import or migration left (a day: any running one
     * keeps writing) */
    scan_dbsync_cleanup(cfg->root, time_now_ms() - 86400000, NULL);
    struct scan_workers *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return BERTH_ENOMEM;
    }
    w->st = st;
    atomic_init(&w->stop, false);
    pthread_mutex_init(&w->sync_wake.lock, NULL);
    pthread_cond_init(&w->sync_wake.cond, NULL);
    w->engine = (struct scan_engine){
        .root = cfg->root,
        .hook = cfg->scan_hook,
        .hook_timeout_ms = cfg->scan_hook_timeout_seconds * 1000,
        .hook_max_output = (size_t)cfg->scan_hook_max_output_bytes,
        .max_image_bytes = (uint64_t)cfg->scan_max_image_bytes,
        .cancel = &w->stop,
        .on_recorded = note_scan,
        .lease_holder = leases_holder(leases),
        .lease_ttl_ms = leases_ttl_ms(leases),
        .vulndb_shared = leases != NULL,
        .fetch_blob = fetch_through_cache,
        .fetch_blob_arg = w,
    };
    w->sync_interval_ms = cfg->scan_vulndb_poll_seconds * 1000;
    size_t want = (size_t)cfg->scan_workers;
    w->threads = calloc(want ? want : 1, sizeof(*w->threads));
    if (w->threads == NULL) {
        free(w);
        return BERTH_ENOMEM;
    }
    for (size_t i = 0; i < want; i++) {
        if (pthread_create(&w->threads[i], NULL, worker_main, w) != 0) {
            log_error("event=scan_worker_start_failed started=%zu", i);
            scan_workers_stop(w);
            return BERTH_EIO;
        }
        w->count++;
    }
    bool builtin = cfg->scan_hook == NULL || cfg->scan_hook[0] == '\0';
    if (w->engine.vulndb_shared && builtin && want > 0) {
        if (pthread_create(&w->syncer, NULL, syncer_main, w) != 0) {
            log_error("event=vulndb_syncer_start_failed");
            scan_workers_stop(w);
            return BERTH_EIO;
        }
        w->syncing = true;
        if (meta_can_listen(m)) {
            if (pthread_create(&w->listener, NULL, listener_main, w) != 0) {
                log_error("event=vulndb_listener_start_failed");
                scan_workers_stop(w);
                return BERTH_EIO;
            }
            w->listening = true;
        }
    }
    log_info("event=scan_workers_started workers=%zu engine=%s waiting_jobs=%lld "
             "released_jobs=%lld",
             w->count, cfg->scan_hook && cfg->scan_hook[0] ? "hook" : "builtin", (long long)waiting,
             (long long)released);
    *out = w;
    return BERTH_OK;
}

void scan_workers_stop(struct scan_workers *w)
{
    if (w == NULL) {
        return;
    }
    atomic_store(&w->stop, true);
    scan_queue_notify();
    wake_notify(&w->sync_wake);
    for (size_t i = 0; i < w->count; i++) {
        pthread_join(w->threads[i], NULL);
    }
    if (w->syncing) {
        pthread_join(w->syncer, NULL);
    }
    if (w->listening) {
        pthread_join(w->listener, NULL);
    }
    if (w->count > 0) {
        log_info("event=scan_workers_stopped workers=%zu", w->count);
    }
    free(w->threads);
    pthread_cond_destroy(&w->sync_wake.cond);
    pthread_mutex_destroy(&w->sync_wake.lock);
    free(w);
}
