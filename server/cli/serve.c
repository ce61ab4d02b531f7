/*
 * berth serve: open the store, start the scan workers, the background jobs
 * (garbage collection, lifecycle) and the HTTP server (console, /v2, ECR), wait for SIGTERM or
 * SIGINT (SIGHUP reloads the TLS certificate, key, client CA and tls.client_principals, and
 * managed signing's profile keys), drain
 * in-flight requests, stop the scans and jobs and exit cleanly. Under systemd (Type=notify) it
 * reports READY=1 once it serves, RELOADING=1 around a reload, STOPPING=1 when it drains and,
 * when the unit sets WatchdogSec, WATCHDOG=1 every half interval while the server answers.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/auth/auth.h"
#include "cli_int.h"

#include "server/jobs/jobs.h"
#include "server/jobs/leases.h"
#include "common/fault.h"
#include "common/log.h"
#include "common/notify.h"
#include "common/timeutil.h"
#include "server/jobs/replication.h"
#include "server/jobs/scan_workers.h"
#include "server/console/console.h"
#include "server/ecr/ecr.h"
#include "server/http/server.h"
#include "server/oci/oci.h"
#include "server/ops/ops.h"
#include "server/metrics/metrics.h"
#include "storage/meta/meta.h"
#include "storage/meta/meta_copy.h"
#include "storage/spec/digest.h"
#include "storage/store/store.h"
#include "storage/registry/signing.h"
#include "storage/store/tier.h"
#include "storage/upstream/cache.h"

/* Tell systemd (when it started us with $NOTIFY_SOCKET) what state berth is in. */
static void notify(const char *state)
{
    enum berth_err rc = notify_send(state);
    if (rc != BERTH_OK) {
        log_warn("event=sd_notify_failed error=%s", berth_strerror(rc));
    }
}

static void notify_reloading(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    char state[96];
    /* MONOTONIC_USEC: systemd 253's Type=notify-reload wants it with RELOADING=1 */
    snprintf(state, sizeof(state), "RELOADING=1\nMONOTONIC_USEC=%lld",
             (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000);
    notify(state);
}

static void note_has_keys(void *arg, const struct meta_auth_row *row)
{
    *(bool *)arg = row->has_keys;
}

/* Whether credentials are configured (auth required, keys in the config
 * file or in the database), which makes a non-loopback address acceptable. */
static bool auth_configured(const struct berth_config *cfg, size_t config_keys, struct store *st)
{
    bool db_keys = false;
    struct meta *m = store_meta(st);
    if (m != NULL && meta_auth_lookup(m, NULL, NULL, note_has_keys, &db_keys) != BERTH_OK) {
        db_keys = false;
    }
    return cfg->auth_required || config_keys > 0 || db_keys;
}

/* systemd's watchdog (WatchdogSec in the unit): every half interval a
 * thread asks the server for GET /healthz as a client would
 * (server_probe) and sends WATCHDOG=1 only when it answered, so a server
 * whose listener or pool threads are stuck is restarted. */
struct watchdog {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stop;
    struct server *srv;
    int64_t period_ms;
};

static void *watchdog_run(void *arg)
{
    struct watchdog *w = arg;
    bool failing = false;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        pthread_mutex_unlock(&w->mu);
        const char *why = "";
        /* a probe may take half the period: a ping still comes in time */
        int timeout_ms = (int)(w->period_ms / 2 > 0 ? w->period_ms / 2 : 1);
        if (server_probe(w->srv, timeout_ms, &why) == BERTH_OK) {
            notify("WATCHDOG=1");
            if (failing) {
                log_info("event=watchdog_probe_ok");
            }
            failing = false;
        } else {
            log_warn("event=watchdog_probe_failed reason=%s timeout_ms=%d", why, timeout_ms);
            failing = true;
        }
        pthread_mutex_lock(&w->mu);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = ts.tv_nsec + (w->period_ms % 1000) * 1000000;
        ts.tv_sec += (time_t)(w->period_ms / 1000 + ns / 1000000000);
        ts.tv_nsec = (long)(ns % 1000000000);
        while (!w->stop && pthread_cond_timedwait(&w->cond, &w->mu, &ts) == 0) {
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Start the watchdog thread when systemd asks for pings; NULL otherwise
 * (or when it cannot start: logged). */
static struct watchdog *watchdog_start(struct server *srv)
{
    uint64_t usec;
    if (!notify_watchdog_usec(&usec)) {
        return NULL;
    }
    struct watchdog *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        log_error("event=watchdog_failed msg=\"out of memory\"");
        return NULL;
    }
    w->srv = srv;
    w->period_ms = (int64_t)(usec / 2000);
    if (w->period_ms < 1) {
        w->period_ms = 1;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&w->mu, NULL);
    if (pthread_create(&w->thread, NULL, watchdog_run, w) != 0) {
        log_error("event=watchdog_failed msg=\"cannot start its thread\"");
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL;
    }
    log_info("event=watchdog_started interval_ms=%llu ping_every_ms=%lld",
             (unsigned long long)(usec / 1000), (long long)w->period_ms);
    return w;
}

static void watchdog_stop(struct watchdog *w)
{
    if (w == NULL) {
        return;
    }
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

/* SIGHUP: the TLS files again, tls.client_principals from the
 * configuration as it reads now (the other keys take a restart), and the
 * signing profiles' key files. */
static void reload(const struct cli *cli, struct server *srv)
{
    /* managed signing's profiles: their key files are read again before
     * the next signature */
    signing_reload();
    log_info("event=signing_reload msg=\"signing profiles' keys are read again\"");
    struct berth_config fresh;
    char err[512];
    if (!cli_read_config(cli, &fresh, err, sizeof(err))) {
        char v[600];
        log_error("event=tls_reload_failed msg=%s", log_value(err, v, sizeof(v)));
    } else if (server_reload_tls(srv, &fresh) == BERTH_ENOTFOUND) {
        log_info("event=sighup_ignored msg=\"no TLS certificate to reload\"");
    }
    config_fini(&fresh);
}

/* A stage of the stop that may wait on the database: the HTTP server's
 * (requests in a statement: it waits http.drain_seconds for them, then
 * joins their threads) and the background threads' (jobs, scan workers,
 * leases) once the HTTP server has stopped. When it has not ended
 * STOP_GRACE_MS after its own deadline, a thread waits on a database that
 * does not answer, and meta_stopping cuts the database connections so
 * that it ends (with an error: a request gets its 503) and the process
 * exits rather than wait for SIGKILL. */
#define STOP_GRACE_MS 2000

struct stop_watch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    bool running;
    int64_t wait_ms; /* the stage's own deadline plus STOP_GRACE_MS */
    const char *stage;
    pthread_t thread;
};

static void *stop_watch_main(void *arg)
{
    struct stop_watch *sw = arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(sw->wait_ms / 1000);
    until.tv_nsec += (long)(sw->wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&sw->mu);
    int rc = 0;
    while (!sw->done && rc != ETIMEDOUT) {
        rc = pthread_cond_timedwait(&sw->cv, &sw->mu, &until);
    }
    bool late = !sw->done;
    pthread_mutex_unlock(&sw->mu);
    if (late) {
        log_warn("event=stop_slow stage=%s waited_ms=%lld action=cut_db_connections", sw->stage,
                 (long long)sw->wait_ms);
        meta_stopping();
    }
    return NULL;
}

static void stop_watch_start(struct stop_watch *sw, const char *stage, int64_t deadline_ms)
{
    pthread_mutex_init(&sw->mu, NULL);
    pthread_cond_init(&sw->cv, NULL);
    sw->done = false;
    sw->stage = stage;
    sw->wait_ms = deadline_ms + STOP_GRACE_MS;
    sw->running = pthread_create(&sw->thread, NULL, stop_watch_main, sw) == 0;
}

static void stop_watch_end(struct stop_watch *sw)
{
    pthread_mutex_lock(&sw->mu);
    sw->done = true;
    pthread_cond_signal(&sw->cv);
    pthread_mutex_unlock(&sw->mu);
    if (sw->running) {
        pthread_join(sw->thread, NULL);
    }
    pthread_cond_destroy(&sw->cv);
    pthread_mutex_destroy(&sw->mu);
}

int cmd_serve(struct cli *cli)
{
    if (cli->argc > 0) {
        fprintf(stderr, "berth serve: unexpected argument '%s'\n", cli->argv[0]);
        return 2;
    }
    if (!cli_load_config(cli)) {
        return 2;
    }
    const struct berth_config *cfg = &cli->cfg;
    char err[512];
    struct auth_config_key *keys = NULL;
    size_t key_count = 0;
    if (auth_config_keys(cfg, &keys, &key_count, err, sizeof(err)) != BERTH_OK) {
        fprintf(stderr, "berth: %s\n", err);
        return 2;
    }
    auth_config_keys_free(keys, key_count);

    /* Signals are taken by sigwait below; block them before any thread
     * starts so every thread inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    metrics_init();
    metrics_repository_series((unsigned)cfg->metrics_repository_series);
    /* Fault injection for the test suite: BERTH_TEST_FAULTS lists faults
     * (comma-separated, common/fault.h). "hmac" makes every HMAC fail as an
     * OpenSSL failure would (tests/integration/auth/test_mac_failure.py),
     * "digest" every hash (tests/integration/auth/test_digest_failure.py);
     * "auth_lookup" and "auth_policy" are asked where they fail
     * (server/auth, tests/integration/auth/test_auth_failure.py). */
    const char *faults = getenv("BERTH_TEST_FAULTS");
    if (faults != NULL && faults[0] != '\0') {
        char shown[256];
        log_warn("event=test_faults_injected faults=%s", log_value(faults, shown, sizeof(shown)));
    }
    if (fault_injected("hmac")) {
        log_warn("event=test_fault_injected fault=hmac");
        digest_fault_hmac(true);
    }
    if (fault_injected("digest")) {
        log_warn("event=test_fault_injected fault=digest");
        digest_fault_hash(true);
    }
    struct store *st = cli_open_store(cli);
    if (st == NULL) {
        return cli_open_store_status();
    }
    if (!server_listen_is_loopback(cfg->listen) && !cfg->anonymous &&
        !auth_configured(cfg, key_count, st)) {
        fprintf(stderr,
                "berth: refusing to serve %s without authentication: anyone who can reach it "
                "could push and delete images.\n"
                "berth: create an access key (berth keys create NAME, or auth.keys in the config "
                "file), or set \"anonymous\": true to allow anonymous access on purpose, or "
                "listen on a loopback address such as 127.0.0.1.\n",
                cfg->listen);
        store_close(st);
        return 2;
    }
    /* a database berth migrate wrote is served from now on: a re-run of
     * that migration would discard what this server writes, and refuses */
    struct meta *m = store_meta(st);
    if (m == NULL || meta_copy_note_served(m, time_now_ms()) != BERTH_OK) {
        log_warn("event=migration_mark_failed");
    }
    int64_t restored = 0, deleted = 0;
    if (store_recover_trash(st, &restored, &deleted) != BERTH_OK) {
        log_warn("event=trash_recovery_failed");
    } else if (restored || deleted) {
        log_info("event=trash_recovered restored=%lld deleted=%lld", (long long)restored,
                 (long long)deleted);
    }
    /* copies a crash left between the blob store and the archive tier */
    if (store_tier_recover(st, true, NULL) != BERTH_OK) {
        log_warn("event=archive_recovery_failed");
    }
    /* The pull-through cache: its options, and the key that opens the
     * upstream credentials (created on first start). */
    /* half of the regular workers may wait for upstreams at once */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long workers = cfg->http_threads > 0 ? (long)cfg->http_threads : 4 * (cpus > 0 ? cpus : 1);
    struct upstream_options uopt = {
        .tag_ttl_ms = cfg->pull_through_tag_ttl_seconds * 1000,
        .timeout_ms = cfg->pull_through_timeout_seconds * 1000,
        .max_waiting = (int)(workers / 2 > 0 ? workers / 2 : 1),
    };
    if (!cli_upstream_key(cli, true, uopt.key, &uopt.has_key)) {
        fprintf(stderr, "berth: cannot set up the pull-through cache\n");
        store_close(st);
        return 1;
    }
    upstream_configure(&uopt);
    memset(uopt.key, 0, sizeof(uopt.key));
    /* Replicas share a PostgreSQL database: background work is claimed
     * under leases there, so that it runs once among them. */
    struct leases *leases = NULL;
    enum berth_err rc = BERTH_OK;
    if (strcmp(cfg->meta_backend, "postgres") == 0) {
        rc = leases_start(st, cfg->meta_lease_seconds * 1000, &leases);
        if (rc != BERTH_OK) {
            fprintf(stderr, "berth: cannot start the lease keeper (%s)\n", berth_strerror(rc));
            store_close(st);
            return 1;
        }
    }
    struct scan_workers *scans = NULL;
    rc = scan_workers_start(cfg, st, leases, &scans);
    if (rc != BERTH_OK) {
        fprintf(stderr, "berth: cannot start the scan workers (%s)\n", berth_strerror(rc));
        leases_stop(leases);
        store_close(st);
        return 1;
    }
    struct jobs_options jopt;
    jobs_options_from_config(cfg, &jopt);
    jopt.leases = leases;
    struct jobs *jobs = NULL;
    if (jobs_start(st, &jopt, &jobs) != BERTH_OK) {
        fprintf(stderr, "berth: cannot start the background jobs (see the log above)\n");
        scan_workers_stop(scans);
        leases_stop(leases);
        store_close(st);
        return 1;
    }
    struct replication_job *repl = NULL;
    char rerr[512];
    if (replication_job_start(cfg, st, leases, &repl, rerr, sizeof(rerr)) != BERTH_OK) {
        fprintf(stderr, "berth: config: %s\n", rerr);
        jobs_stop(jobs);
        scan_workers_stop(scans);
        leases_stop(leases);
        store_close(st);
        return 2;
    }
    /* /v2 first: it answers what no API takes (404 in its format); the
     * probes, metrics and the console (/ui/ and a browser's GET /) before
     * ECR, which takes any POST */
    static const struct http_api *const apis[] = {&oci_api, &ops_api, &console_api, &ecr_api};
    struct server *srv = NULL;
    if (server_start(cfg, st, apis, sizeof(apis) / sizeof(apis[0]), &srv) != BERTH_OK) {
        fprintf(stderr, "berth: cannot serve on %s (see the log above)\n", cfg->listen);
        replication_job_stop(repl);
        jobs_stop(jobs);
        scan_workers_stop(scans);
        leases_stop(leases);
        store_close(st);
        return 1;
    }
    /* BERTH_TEST_FAULTS=wal_sync (tests/integration/ops/test_ops.py): every
     * sync of the database's log fails from here on, once start-up
     * is done. */
    if (faults != NULL && strstr(faults, "wal_sync") != NULL) {
        log_warn("event=test_fault_injected fault=wal_sync");
        meta_fault_wal_sync(true);
    }
    /* BERTH_TEST_FAULTS=sqlite_emfile or sqlite_nomem
     * (tests/integration/http/test_db_exhaustion.py): while the file
     * BERTH_TEST_FAULT_FILE exists, every SQLite statement fails as it
     * does without a descriptor or memory left. */
    const char *fault_file = getenv("BERTH_TEST_FAULT_FILE");
    enum meta_fault_kind db_fault = fault_injected("sqlite_emfile")  ? META_FAULT_EMFILE
                                    : fault_injected("sqlite_nomem") ? META_FAULT_NOMEM
                                                                     : META_FAULT_NONE;
    if (db_fault != META_FAULT_NONE && fault_file != NULL && fault_file[0] != '\0') {
        log_warn("event=test_fault_injected fault=%s while=%s",
                 db_fault == META_FAULT_EMFILE ? "sqlite_emfile" : "sqlite_nomem", fault_file);
        meta_fault_exhausted(db_fault, fault_file);
    }
    server_attach_jobs(srv, jobs);
    log_info("event=server_start version=%s listen=%s port=%u root=%s", BERTH_VERSION, cfg->listen,
             server_port(srv), cfg->root);
    char ready[256];
    snprintf(ready, sizeof(ready), "READY=1\nSTATUS=serving on %s", cfg->listen);
    notify(ready);
    struct watchdog *wd = watchdog_start(srv);

    int sig = 0;
    /* SIGHUP reloads the TLS certificate and key; the others stop */
    while (sigwait(&set, &sig) == 0 && sig == SIGHUP) {
        notify_reloading();
        reload(cli, srv);
        notify(ready);
    }
    watchdog_stop(wd); /* systemd stops watching once told STOPPING=1 */
    notify("STOPPING=1");
    log_info("event=server_stopping signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
    struct stop_watch http_sw;
    stop_watch_start(&http_sw, "http", cfg->http_drain_seconds * 1000);
    server_stop(srv, cfg->http_drain_seconds * 1000);
    stop_watch_end(&http_sw);
    upstream_stop(cfg->http_drain_seconds * 1000);
    struct stop_watch sw;
    stop_watch_start(&sw, "jobs", 0);
    /* after the server: no request can queue a scan or wake a job any more */
    replication_job_stop(repl);
    jobs_stop(jobs);
    scan_workers_stop(scans);
    leases_stop(leases);
    stop_watch_end(&sw);
    store_close(st);
    log_info("event=server_stopped");
    return 0;
}
