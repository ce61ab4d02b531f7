/*
 * The metrics registry: fixed tables of labelled series behind one mutex,
 * rendered in the Prometheus text format. Thread-safe.
 */
#include "server/metrics/metrics.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/timeutil.h"

/* ---- histograms ---- */

#define HIST_MAX_BUCKETS 16

static const double http_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                      1,     2.5,  5,     10,   30,  60,   300};
static const double job_buckets[] = {0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600};

struct hist {
    uint64_t counts[HIST_MAX_BUCKETS]; /* per bucket, not cumulative */
    uint64_t count;
    double sum;
};

#define NBUCKETS(a) (sizeof(a) / sizeof((a)[0]))

static void hist_observe(struct hist *h, const double *bounds, size_t n, double v)
{
    size_t i = 0;
    while (i < n && v > bounds[i]) {
        i++;
    }
    if (i < n) {
        h->counts[i]++;
    }
    h->count++;
    h->sum += v;
}

/* ---- labelled series ---- */

enum method_label { M_GET, M_HEAD, M_POST, M_PUT, M_PATCH, M_DELETE, M_OPTIONS, M_OTHER };
static const char *const method_names[] = {"GET",   "HEAD",   "POST",    "PUT",
                                           "PATCH", "DELETE", "OPTIONS", "OTHER"};

/* berth_http_requests_total{api,route,method,status} */
struct req_series {
    const char *api;
    const char *route;
    int method;
    unsigned status;
    uint64_t count;
};

/* duration histogram and bytes by {api,route} */
struct route_series {
    const char *api;
    const char *route;
    struct hist dur;
    uint64_t bytes_in;
    uint64_t bytes_out;
};

/* Room beyond METRICS_SERIES_MAX for the folded route="other" series. */
#define SERIES_CAP (METRICS_SERIES_MAX + 64)
#define REASONS_MAX 32

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct req_series reqs[SERIES_CAP];
static size_t req_count;
static struct route_series routes[SERIES_CAP];
static size_t route_count;

static struct {
    const char *reason;
    uint64_t count;
} auth_fail[REASONS_MAX + 1];
static size_t auth_fail_count;

static struct {
    uint64_t passes_ok;
    uint64_t passes_failed;
    struct hist dur;
    uint64_t bytes_freed;
    uint64_t blobs_deleted;
} gc;

static struct {
    uint64_t runs;
    uint64_t repositories;
    uint64_t images;
    uint64_t expired;
} lifecycle;

static struct {
    uint64_t complete;
    uint64_t failed;
    struct hist dur;
} scans;

static struct {
    uint64_t complete;
    uint64_t retrying;
    uint64_t failed;
} repl;

/* berth_repository_{pushes,pulls}_total{repository}: repo_limit named rows
 * in the order first seen, then the "_other" row (repo_other). */
struct repo_series {
    char *name;
    uint64_t pushes;
    uint64_t pulls;
};
static const char *const OTHER_REPOSITORY = "_other";
static struct repo_series *repos;
static size_t repo_count;
static atomic_size_t repo_limit; /* written under mu, read without it */
static struct repo_series repo_other;

static atomic_llong open_connections;
static atomic_llong bodies_sending;
static atomic_llong bodies_waiting;
static atomic_llong bodies_queued_total;
static atomic_llong body_slots_revoked_total;
static atomic_llong start_time_ms;

static const char *OTHER_ROUTE = "other";

void metrics_init(void)
{
    long long expected = 0;
    atomic_compare_exchange_strong(&start_time_ms, &expected, (long long)time_now_ms());
}

static int method_label(const char *m)
{
    if (m == NULL) {
        return M_OTHER;
    }
    for (int i = 0; i < M_OTHER; i++) {
        if (strcmp(m, method_names[i]) == 0) {
            return i;
        }
    }
    return M_OTHER;
}

static bool same(const char *a, const char *b)
{
    return a == b || strcmp(a, b) == 0;
}

static struct req_series *req_find(const char *api, const char *route, int method, unsigned status)
{
    for (size_t i = 0; i < req_count; i++) {
        struct req_series *s = &reqs[i];
        if (s->method == method && s->status == status && same(s->route, route) &&
            same(s->api, api)) {
            return s;
        }
    }
    return NULL;
}

static struct route_series *route_find(const char *api, const char *route)
{
    for (size_t i = 0; i < route_count; i++) {
        if (same(routes[i].route, route) && same(routes[i].api, api)) {
            return &routes[i];
        }
    }
    return NULL;
}

/* Find or add a series; past METRICS_SERIES_MAX a new label set is folded
 * into route="other" (and dropped only if even that cannot be added). */
static struct req_series *req_get(const char *api, const char *route, int method, unsigned status)
{
    struct req_series *s = req_find(api, route, method, status);
    if (s != NULL) {
        return s;
    }
    if (req_count >= METRICS_SERIES_MAX) {
        route = OTHER_ROUTE;
        s = req_find(api, route, method, status);
        if (s != NULL || req_count >= SERIES_CAP) {
            return s;
        }
    }
    s = &reqs[req_count++];
    *s = (struct req_series){.api = api, .route = route, .method = method, .status = status};
    return s;
}

static struct route_series *route_get(const char *api, const char *route)
{
    struct route_series *s = route_find(api, route);
    if (s != NULL) {
        return s;
    }
    if (route_count >= METRICS_SERIES_MAX) {
        route = OTHER_ROUTE;
        s = route_find(api, route);
        if (s != NULL || route_count >= SERIES_CAP) {
            return s;
        }
    }
    s = &routes[route_count++];
    memset(s, 0, sizeof(*s));
    s->api = api;
    s->route = route;
    return s;
}

void metrics_http_request(const char *api, const char *route, const char *method, unsigned status,
                          double seconds, uint64_t bytes_in, uint64_t bytes_out)
{
    api = api ? api : "none";
    route = route ? route : "none";
    int m = method_label(method);
    if (status < 100 || status > 599) {
        status = 0;
    }
    if (seconds < 0) {
        seconds = 0;
    }
    pthread_mutex_lock(&mu);
    struct req_series *s = req_get(api, route, m, status);
    if (s != NULL) {
        s->count++;
    }
    struct route_series *r = route_get(api, route);
    if (r != NULL) {
        hist_observe(&r->dur, http_buckets, NBUCKETS(http_buckets), seconds);
        r->bytes_in += bytes_in;
        r->bytes_out += bytes_out;
    }
    pthread_mutex_unlock(&mu);
}

void metrics_connection_delta(int delta)
{
    atomic_fetch_add(&open_connections, delta);
}

void metrics_body_queue(unsigned sending, unsigned waiting, uint64_t queued_total,
                        uint64_t revoked_total)
{
    atomic_store(&bodies_sending, (long long)sending);
    atomic_store(&bodies_waiting, (long long)waiting);
    atomic_store(&bodies_queued_total, (long long)queued_total);
    atomic_store(&body_slots_revoked_total, (long long)revoked_total);
}

void metrics_auth_failure(const char *reason)
{
    reason = reason ? reason : "other";
    pthread_mutex_lock(&mu);
    size_t i = 0;
    while (i < auth_fail_count && !same(auth_fail[i].reason, reason)) {
        i++;
    }
    if (i == auth_fail_count) {
        if (auth_fail_count >= REASONS_MAX) {
            reason = "other";
            i = 0;
            while (i < auth_fail_count && !same(auth_fail[i].reason, reason)) {
                i++;
            }
        }
        if (i == auth_fail_count) {
            auth_fail[auth_fail_count].reason = reason;
            auth_fail[auth_fail_count++].count = 0;
        }
    }
    auth_fail[i].count++;
    pthread_mutex_unlock(&mu);
}

void metrics_gc_pass(double seconds, uint64_t bytes_freed, uint64_t blobs_deleted, bool failed)
{
    pthread_mutex_lock(&mu);
    if (failed) {
        gc.passes_failed++;
    } else {
        gc.passes_ok++;
    }
    hist_observe(&gc.dur, job_buckets, NBUCKETS(job_buckets), seconds < 0 ? 0 : seconds);
    gc.bytes_freed += bytes_freed;
    gc.blobs_deleted += blobs_deleted;
    pthread_mutex_unlock(&mu);
}

void metrics_lifecycle_run(uint64_t repositories, uint64_t images_evaluated,
                           uint64_t images_expired)
{
    pthread_mutex_lock(&mu);
    lifecycle.runs++;
    lifecycle.repositories += repositories;
    lifecycle.images += images_evaluated;
    lifecycle.expired += images_expired;
    pthread_mutex_unlock(&mu);
}

/* Under mu: the summary row of api (the last row once they are all taken). */
static size_t summary_api(struct metrics_summary *out, const char *api)
{
    for (size_t i = 0; i < out->api_count; i++) {
        if (same(out->apis[i].api, api)) {
            return i;
        }
    }
    if (out->api_count < METRICS_SUMMARY_APIS) {
        out->apis[out->api_count].api = api;
        return out->api_count++;
    }
    out->apis[METRICS_SUMMARY_APIS - 1].api = OTHER_ROUTE;
    return METRICS_SUMMARY_APIS - 1;
}

void metrics_summary_get(struct metrics_summary *out)
{
    memset(out, 0, sizeof(*out));
    out->started_at_ms = (int64_t)atomic_load(&start_time_ms);
    out->open_connections = (int64_t)atomic_load(&open_connections);
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < req_count; i++) {
        size_t a = summary_api(out, reqs[i].api);
        unsigned cls = reqs[i].status / 100;
        out->apis[a].by_class[cls <= 5 ? cls : 0] += reqs[i].count;
    }
    for (size_t i = 0; i < route_count; i++) {
        size_t a = summary_api(out, routes[i].api);
        out->apis[a].bytes_in += routes[i].bytes_in;
        out->apis[a].bytes_out += routes[i].bytes_out;
    }
    for (size_t i = 0; i < auth_fail_count; i++) {
        out->auth_failures += auth_fail[i].count;
    }
    out->gc_passes_ok = gc.passes_ok;
    out->gc_passes_failed = gc.passes_failed;
    out->gc_bytes_freed = gc.bytes_freed;
    out->gc_blobs_deleted = gc.blobs_deleted;
    out->lifecycle_runs = lifecycle.runs;
    out->lifecycle_images = lifecycle.images;
    out->lifecycle_expired = lifecycle.expired;
    out->scans_complete = scans.complete;
    out->scans_failed = scans.failed;
    pthread_mutex_unlock(&mu);
}

void metrics_scan_result(bool complete, double seconds)
{
    pthread_mutex_lock(&mu);
    if (complete) {
        scans.complete++;
    } else {
        scans.failed++;
    }
    hist_observe(&scans.dur, job_buckets, NBUCKETS(job_buckets), seconds < 0 ? 0 : seconds);
    pthread_mutex_unlock(&mu);
}

void metrics_replication_copies(uint64_t complete, uint64_t retrying, uint64_t failed)
{
    pthread_mutex_lock(&mu);
    repl.complete += complete;
    repl.retrying += retrying;
    repl.failed += failed;
    pthread_mutex_unlock(&mu);
}

void metrics_repository_series(unsigned n)
{
    if (n > METRICS_REPOSITORIES_MAX) {
        n = METRICS_REPOSITORIES_MAX;
    }
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < repo_count; i++) {
        free(repos[i].name);
    }
    free(repos);
    repos = n > 0 ? calloc(n, sizeof(*repos)) : NULL;
    atomic_store(&repo_limit, repos != NULL ? n : 0);
    repo_count = 0;
    memset(&repo_other, 0, sizeof(repo_other));
    pthread_mutex_unlock(&mu);
}

/* Under mu: repo's row, added while there is room; "_other" past the
 * limit (or when its name cannot be copied); NULL when off. */
static struct repo_series *repo_get(const char *repo)
{
    if (repo_limit == 0 || repo == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < repo_count; i++) {
        if (strcmp(repos[i].name, repo) == 0) {
            return &repos[i];
        }
    }
    if (repo_count < repo_limit) {
        char *name = strdup(repo);
        if (name != NULL) {
            repos[repo_count] = (struct repo_series){.name = name};
            return &repos[repo_count++];
        }
    }
    return &repo_other;
}

/* Off (the default) costs one atomic load: no lock on every manifest. */
static void repository_count(const char *repo, bool push)
{
    if (atomic_load_explicit(&repo_limit, memory_order_relaxed) == 0) {
        return;
    }
    pthread_mutex_lock(&mu);
    struct repo_series *r = repo_get(repo);
    if (r != NULL) {
        *(push ? &r->pushes : &r->pulls) += 1;
    }
    pthread_mutex_unlock(&mu);
}

void metrics_repository_push(const char *repo)
{
    repository_count(repo, true);
}

void metrics_repository_pull(const char *repo)
{
    repository_count(repo, false);
}

void metrics_reset(void)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < repo_count; i++) {
        repos[i].pushes = repos[i].pulls = 0;
    }
    memset(&repo_other, 0, sizeof(repo_other));
    req_count = 0;
    route_count = 0;
    auth_fail_count = 0;
    memset(&gc, 0, sizeof(gc));
    memset(&lifecycle, 0, sizeof(lifecycle));
    memset(&scans, 0, sizeof(scans));
    memset(&repl, 0, sizeof(repl));
    pthread_mutex_unlock(&mu);
    atomic_store(&open_connections, 0);
    metrics_body_queue(0, 0, 0, 0);
}

/* ---- rendering ---- */

/* A label value with \, " and newline escaped, as the format requires. */
static enum berth_err put_label(struct buf *out, const char *v)
{
    enum berth_err rc = BERTH_OK;
    for (const char *p = v; *p && rc == BERTH_OK; p++) {
        if (*p == '\\' || *p == '"') {
            char esc[2] = {'\\', *p};
            rc = buf_append(out, esc, 2);
        } else if (*p == '\n') {
            rc = buf_append(out, "\\n", 2);
        } else {
            rc = buf_append(out, p, 1);
        }
    }
    return rc;
}

static enum berth_err header(struct buf *out, const char *name, const char *type, const char *help)
{
    return buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{api="..",route=".."<extra>} with extra already formatted. */
static enum berth_err series_name(struct buf *out, const char *name, const char *api,
                                  const char *route, const char *extra)
{
    enum berth_err rc = buf_printf(out, "%s{api=\"", name);
    if (rc == BERTH_OK) {
        rc = put_label(out, api);
    }
    if (rc == BERTH_OK) {
        rc = buf_puts(out, "\",route=\"");
    }
    if (rc == BERTH_OK) {
        rc = put_label(out, route);
    }
    if (rc == BERTH_OK) {
        rc = buf_printf(out, "\"%s}", extra);
    }
    return rc;
}

/* The _bucket, _sum and _count lines of one histogram series whose other
 * labels (formatted, with a trailing comma, or "") are labels. */
static enum berth_err put_hist(struct buf *out, const char *name, const char *labels,
                               const struct hist *h, const double *bounds, size_t n)
{
    enum berth_err rc = BERTH_OK;
    uint64_t cum = 0;
    for (size_t i = 0; i < n && rc == BERTH_OK; i++) {
        cum += h->counts[i];
        rc = buf_printf(out, "%s_bucket{%sle=\"%g\"} %llu\n", name, labels, bounds[i],
                        (unsigned long long)cum);
    }
    if (rc == BERTH_OK) {
        rc = buf_printf(out, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels,
                        (unsigned long long)h->count);
    }
    size_t llen = strlen(labels);
    char trimmed[512];
    /* _sum and _count take the labels without the trailing comma */
    snprintf(trimmed, sizeof(trimmed), "%.*s", llen > 0 ? (int)llen - 1 : 0, labels);
    if (rc == BERTH_OK) {
        rc = buf_printf(out, "%s_sum%s%s%s %.9g\n", name, llen ? "{" : "", trimmed, llen ? "}" : "",
                        h->sum);
    }
    if (rc == BERTH_OK) {
        rc = buf_printf(out, "%s_count%s%s%s %llu\n", name, llen ? "{" : "", trimmed,
                        llen ? "}" : "", (unsigned long long)h->count);
    }
    return rc;
}

/* Format api="..",route="..", for a histogram's labels. */
static void route_labels(char *dst, size_t cap, const char *api, const char *route)
{
    struct buf b;
    buf_init(&b, cap - 1);
    buf_puts(&b, "api=\"");
    put_label(&b, api);
    buf_puts(&b, "\",route=\"");
    put_label(&b, route);
    buf_puts(&b, "\",");
    snprintf(dst, cap, "%s", buf_cstr(&b));
    buf_fini(&b);
}

static enum berth_err render_http(struct buf *out)
{
    enum berth_err rc = header(out, "berth_http_requests_total", "counter",
                               "HTTP requests answered, by API, route template, method and status");
    for (size_t i = 0; i < req_count && rc == BERTH_OK; i++) {
        const struct req_series *s = &reqs[i];
        char extra[64];
        snprintf(extra, sizeof(extra), ",method=\"%s\",status=\"%u\"", method_names[s->method],
                 s->status);
        rc = series_name(out, "berth_http_requests_total", s->api, s->route, extra);
        if (rc == BERTH_OK) {
            rc = buf_printf(out, " %llu\n", (unsigned long long)s->count);
        }
    }
    if (rc == BERTH_OK) {
        rc = header(out, "berth_http_request_duration_seconds", "histogram",
                    "Time from a request's first byte to its completion");
    }
    for (size_t i = 0; i < route_count && rc == BERTH_OK; i++) {
        char labels[512];
        route_labels(labels, sizeof(labels), routes[i].api, routes[i].route);
        rc = put_hist(out, "berth_http_request_duration_seconds", labels, &routes[i].dur,
                      http_buckets, NBUCKETS(http_buckets));
    }
    static const struct {
        const char *name;
        const char *help;
        bool in;
    } bytes[] = {
        {"berth_http_received_bytes_total", "Request body bytes received", true},
        {"berth_http_sent_bytes_total", "Response body bytes sent", false},
    };
    for (size_t b = 0; b < 2 && rc == BERTH_OK; b++) {
        rc = header(out, bytes[b].name, "counter", bytes[b].help);
        for (size_t i = 0; i < route_count && rc == BERTH_OK; i++) {
            rc = series_name(out, bytes[b].name, routes[i].api, routes[i].route, "");
            if (rc == BERTH_OK) {
                rc = buf_printf(
                    out, " %llu\n",
                    (unsigned long long)(bytes[b].in ? routes[i].bytes_in : routes[i].bytes_out));
            }
        }
    }
    if (rc == BERTH_OK) {
        rc = header(out, "berth_http_open_connections", "gauge", "HTTP connections open now");
    }
    if (rc == BERTH_OK) {
        long long c = atomic_load(&open_connections);
        rc = buf_printf(out, "berth_http_open_connections %lld\n", c < 0 ? 0 : c);
    }
    static const struct {
        const char *name, *type, *help;
        atomic_llong *value;
    } queue[] = {
        {"berth_http_bodies_sending", "gauge",
         "Large response bodies being sent now (at most http.concurrent_bodies, besides slow "
         "readers whose slot was taken back)",
         &bodies_sending},
        {"berth_http_bodies_waiting", "gauge",
         "Large response bodies waiting for a slot (http.concurrent_bodies)", &bodies_waiting},
        {"berth_http_bodies_queued_total", "counter",
         "Large response bodies that had to wait for a slot", &bodies_queued_total},
        {"berth_http_body_slots_revoked_total", "counter",
         "Slots taken back from bodies whose client read too slowly", &body_slots_revoked_total},
    };
    for (size_t i = 0; i < sizeof(queue) / sizeof(queue[0]) && rc == BERTH_OK; i++) {
        rc = header(out, queue[i].name, queue[i].type, queue[i].help);
        if (rc == BERTH_OK) {
            rc = buf_printf(out, "%s %lld\n", queue[i].name, atomic_load(queue[i].value));
        }
    }
    return rc;
}

static enum berth_err render_auth_jobs(struct buf *out)
{
    enum berth_err rc = header(out, "berth_auth_failures_total", "counter",
                               "Requests refused for their credentials or permissions, by reason");
    for (size_t i = 0; i < auth_fail_count && rc == BERTH_OK; i++) {
        rc = buf_puts(out, "berth_auth_failures_total{reason=\"");
        if (rc == BERTH_OK) {
            rc = put_label(out, auth_fail[i].reason);
        }
        if (rc == BERTH_OK) {
            rc = buf_printf(out, "\"} %llu\n", (unsigned long long)auth_fail[i].count);
        }
    }
    if (rc == BERTH_OK) {
        rc =
            header(out, "berth_gc_passes_total", "counter", "Garbage collection passes, by result");
    }
    if (rc == BERTH_OK) {
        rc = buf_printf(out,
                        "berth_gc_passes_total{result=\"ok\"} %llu\n"
                        "berth_gc_passes_total{result=\"error\"} %llu\n",
                        (unsigned long long)gc.passes_ok, (unsigned long long)gc.passes_failed);
    }
    if (rc == BERTH_OK) {
        rc = header(out, "berth_gc_duration_seconds", "histogram",
                    "Duration of garbage collection passes");
    }
    if (rc == BERTH_OK) {
        rc = put_hist(out, "berth_gc_duration_seconds", "", &gc.dur, job_buckets,
                      NBUCKETS(job_buckets));
    }
    if (rc == BERTH_OK) {
        rc = header(out, "berth_gc_freed_bytes_total", "counter",
                    "Bytes of blobs and orphan files garbage collection removed");
    }
    if (rc == BERTH_OK) {
        rc = buf_printf(out, "berth_gc_freed_bytes_total %llu\n",
                        (unsigned long long)gc.bytes_freed);
    }
    if (rc == BERTH_OK) {
        rc = header(out, "berth_gc_deleted_blobs_total", "counter",
                    "Unreferenced blobs garbage collection deleted");
    }
    if (rc == BERTH_OK) {
        rc = buf_printf(out, "berth_gc_deleted_blobs_total %llu\n",
                        (unsigned long long)gc.blobs_deleted);
    }
    static const struct {
        const char *name;
        const char *help;
        size_t offset;
    } lc[] = {
        {"berth_lifecycle_runs_total", "Lifecycle policy runs", 0},
        {"berth_lifecycle_evaluated_repositories_total",
         "Repositories whose lifecycle policy was evaluated", 1},
        {"berth_lifecycle_evaluated_images_total", "Images lifecycle policies evaluated", 2},
        {"berth_lifecycle_expired_images_total", "Images lifecycle policies deleted", 3},
    };
    const uint64_t lc_values[] = {lifecycle.runs, lifecycle.repositories, lifecycle.images,
                                  lifecycle.expired};
    for (size_t i = 0; i < 4 && rc == BERTH_OK; i++) {
        rc = header(out, lc[i].name, "counter", lc[i].help);
        if (rc == BERTH_OK) {
            rc = buf_printf(out, "%s %llu\n", lc[i].name,
                            (unsigned long long)lc_values[lc[i].offset]);
        }
    }
    if (rc == BERTH_OK) {
        rc = header(out, "berth_scans_total", "counter", "Image scans recorded, by result");
    }
    if (rc == BERTH_OK) {
        rc = buf_printf(out,
                        "berth_scans_total{result=\"complete\"} %llu\n"
                        "berth_scans_total{result=\"failed\"} %llu\n",
                        (unsigned long long)scans.complete, (unsigned long long)scans.failed);
    }
    if (rc == BERTH_OK) {
        rc = header(out, "berth_scan_duration_seconds", "histogram", "Duration of image scans");
    }
    if (rc == BERTH_OK) {
        rc = put_hist(out, "berth_scan_duration_seconds", "", &scans.dur, job_buckets,
                      NBUCKETS(job_buckets));
    }
    if (rc == BERTH_OK) {
        rc = header(out, "berth_replication_copies_total", "counter",
                    "Replication copies to peer registries, by outcome (retry: to be tried "
                    "again)");
    }
    if (rc == BERTH_OK) {
        rc = buf_printf(out,
                        "berth_replication_copies_total{result=\"complete\"} %llu\n"
                        "berth_replication_copies_total{result=\"retry\"} %llu\n"
                        "berth_replication_copies_total{result=\"failed\"} %llu\n",
                        (unsigned long long)repl.complete, (unsigned long long)repl.retrying,
                        (unsigned long long)repl.failed);
    }
    return rc;
}

static enum berth_err gauge(struct buf *out, const char *name, const char *help, int64_t v)
{
    if (v < 0) {
        return BERTH_OK;
    }
    enum berth_err rc = header(out, name, "gauge", help);
    if (rc == BERTH_OK) {
        rc = buf_printf(out, "%s %lld\n", name, (long long)v);
    }
    return rc;
}

static enum berth_err render_store(struct buf *out, const struct metrics_gauges *g)
{
    enum berth_err rc = gauge(out, "berth_storage_blobs", "Blobs stored", g->blobs);
    if (rc == BERTH_OK) {
        rc = gauge(out, "berth_storage_blob_bytes", "Bytes of the blobs stored", g->blob_bytes);
    }
    if (rc == BERTH_OK) {
        rc = gauge(out, "berth_upload_sessions", "Blob upload sessions open", g->upload_sessions);
    }
    if (rc == BERTH_OK) {
        rc = gauge(out, "berth_archive_blobs", "Blobs whose bytes are in the archive tier",
                   g->archived_blobs);
    }
    if (rc == BERTH_OK) {
        rc = gauge(out, "berth_archive_blob_bytes",
                   "Bytes of the blobs in the archive tier (their size as pushed)",
                   g->archived_bytes);
    }
    if (rc == BERTH_OK) {
        rc = gauge(out, "berth_archive_stored_bytes",
                   "Bytes the archive tier's copies take (zstd where it shrinks them)",
                   g->archived_stored);
    }
    if (rc == BERTH_OK && g->tail_hits >= 0 && g->tail_misses >= 0) {
        rc = header(out, "berth_s3_upload_tail_reads_total", "counter",
                    "Upload requests that needed their session's tail, by where it came from "
                    "(memory: this replica committed it last; bucket: a GET)");
        if (rc == BERTH_OK) {
            rc = buf_printf(out,
                            "berth_s3_upload_tail_reads_total{source=\"memory\"} %lld\n"
                            "berth_s3_upload_tail_reads_total{source=\"bucket\"} %lld\n",
                            (long long)g->tail_hits, (long long)g->tail_misses);
        }
    }
    if (rc == BERTH_OK && (g->scan_waiting >= 0 || g->scan_running >= 0)) {
        rc = header(out, "berth_scan_queue_jobs", "gauge", "Scan jobs queued, by state");
        if (rc == BERTH_OK && g->scan_waiting >= 0) {
            rc = buf_printf(out, "berth_scan_queue_jobs{state=\"waiting\"} %lld\n",
                            (long long)g->scan_waiting);
        }
        if (rc == BERTH_OK && g->scan_running >= 0) {
            rc = buf_printf(out, "berth_scan_queue_jobs{state=\"running\"} %lld\n",
                            (long long)g->scan_running);
        }
    }
    if (rc == BERTH_OK && g->repl_in_progress >= 0 && g->repl_failed >= 0) {
        rc = header(out, "berth_replication_queue_copies", "gauge",
                    "Replication copies in the queue, by status");
        if (rc == BERTH_OK) {
            rc = buf_printf(out,
                            "berth_replication_queue_copies{status=\"in_progress\"} %lld\n"
                            "berth_replication_queue_copies{status=\"failed\"} %lld\n",
                            (long long)g->repl_in_progress, (long long)g->repl_failed);
        }
    }
    return rc;
}

static int64_t count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) {
        return -1;
    }
    int64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            n++;
        }
    }
    closedir(d);
    return n - 1; /* the directory's own fd */
}

/* utime, stime (ticks), vsize (bytes) and rss (pages) from /proc/self/stat. */
static bool read_stat(unsigned long long *ticks, unsigned long long *vsize, long long *rss_pages)
{
    char text[1024];
    FILE *f = fopen("/proc/self/stat", "re");
    if (f == NULL) {
        return false;
    }
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    /* the command name may hold spaces: fields start after the last ')' */
    const char *p = strrchr(text, ')');
    if (p == NULL) {
        return false;
    }
    unsigned long long ut, st;
    /* fields 3.. : state ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime stime cutime cstime priority nice threads
     * itrealvalue starttime vsize rss */
    if (sscanf(p + 2,
               "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
               "%*u %llu %lld",
               &ut, &st, vsize, rss_pages) != 4) {
        return false;
    }
    *ticks = ut + st;
    return true;
}

static enum berth_err render_process(struct buf *out)
{
    enum berth_err rc = BERTH_OK;
    unsigned long long ticks = 0, vsize = 0;
    long long rss = 0;
    if (read_stat(&ticks, &vsize, &rss)) {
        long hz = sysconf(_SC_CLK_TCK);
        long page = sysconf(_SC_PAGESIZE);
        rc = header(out, "process_cpu_seconds_total", "counter",
                    "Total user and system CPU time spent in seconds");
        if (rc == BERTH_OK) {
            rc = buf_printf(out, "process_cpu_seconds_total %.2f\n",
                            hz > 0 ? (double)ticks / (double)hz : 0.0);
        }
        if (rc == BERTH_OK) {
            rc = gauge(out, "process_resident_memory_bytes", "Resident memory size in bytes",
                       (int64_t)rss * (page > 0 ? page : 4096));
        }
        if (rc == BERTH_OK) {
            rc = gauge(out, "process_virtual_memory_bytes", "Virtual memory size in bytes",
                       (int64_t)vsize);
        }
    }
    if (rc == BERTH_OK) {
        rc = gauge(out, "process_open_fds", "Number of open file descriptors", count_fds());
    }
    struct rlimit rl;
    if (rc == BERTH_OK && getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        rc = gauge(out, "process_max_fds", "Maximum number of open file descriptors",
                   (int64_t)rl.rlim_cur);
    }
    long long start = atomic_load(&start_time_ms);
    if (rc == BERTH_OK && start > 0) {
        rc = header(out, "process_start_time_seconds", "gauge",
                    "Start time of the process since unix epoch in seconds");
        if (rc == BERTH_OK) {
            rc = buf_printf(out, "process_start_time_seconds %.3f\n", (double)start / 1000.0);
        }
    }
    return rc;
}

/* Under mu: one family of the per-repository counters (pushes when push). */
static enum berth_err render_repo_family(struct buf *out, bool push)
{
    const char *name = push ? "berth_repository_pushes_total" : "berth_repository_pulls_total";
    enum berth_err rc = header(out, name, "counter",
                               push ? "Images pushed (manifests stored by clients), by repository"
                                    : "Images pulled (manifests read by clients), by repository");
    for (size_t i = 0; i <= repo_count && rc == BERTH_OK; i++) {
        const struct repo_series *r = i < repo_count ? &repos[i] : &repo_other;
        rc = buf_printf(out, "%s{repository=\"", name);
        if (rc == BERTH_OK) {
            rc = put_label(out, i < repo_count ? r->name : OTHER_REPOSITORY);
        }
        if (rc == BERTH_OK) {
            rc = buf_printf(out, "\"} %llu\n", (unsigned long long)(push ? r->pushes : r->pulls));
        }
    }
    return rc;
}

static enum berth_err render_repositories(struct buf *out)
{
    if (repo_limit == 0) {
        return BERTH_OK;
    }
    enum berth_err rc = render_repo_family(out, true);
    if (rc == BERTH_OK) {
        rc = render_repo_family(out, false);
    }
    return rc;
}

enum berth_err metrics_render(struct buf *out, const struct metrics_gauges *g)
{
    pthread_mutex_lock(&mu);
    enum berth_err rc = render_http(out);
    if (rc == BERTH_OK) {
        rc = render_auth_jobs(out);
    }
    if (rc == BERTH_OK) {
        rc = render_repositories(out);
    }
    pthread_mutex_unlock(&mu);
    if (rc == BERTH_OK && g != NULL) {
        rc = render_store(out, g);
    }
    if (rc == BERTH_OK) {
        rc = render_process(out);
    }
    return rc;
}
