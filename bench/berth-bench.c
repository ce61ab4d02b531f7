/*
 * berth-bench: a load generator for OCI registries (berth, the CNCF
 * distribution registry, anything that speaks /v2/). Runs the workloads in
 * the table below at concurrency c for n operations each and reports
 * operations/s, MB/s, latency percentiles and errors as a table or JSON;
 * also measures the loopback TCP rate. Single-threaded except --loopback.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "bench.h"
#include "common/rand.h"
#include "common/str.h"

#define WORKLOAD_LIST_MAX 64
#define WORKLOAD_ARG_MAX 4096
#define LOOPBACK_ROUNDS 3

struct result {
    const struct bench_workload *wl;
    bool setup_ok;
    struct bench_stats stats;
};

enum out_format { OUT_TABLE, OUT_JSON };

static void usage(FILE *f)
{
    fprintf(f,
            "usage: berth-bench [options] URL\n"
            "       berth-bench --loopback [--loopback-bytes N] [-o table|json] [--json-file F]\n"
            "       berth-bench --free-port | --list\n"
            "\n"
            "  -c, --concurrency N      operations in flight (1-%d, default 1)\n"
            "  -n, --requests N         operations per workload (1-%d, default 10)\n"
            "  -w, --workloads LIST     comma-separated names or 'all' (default all)\n"
            "  -o, --output FORMAT      table (default) or json, on stdout\n"
            "      --json-file FILE     also write the JSON report to FILE\n"
            "      --timeout SECONDS    per HTTP request (1-%d, default 120)\n"
            "      --repo-prefix P      repository name prefix (default berth-bench)\n"
            "      --catalog-repos N    repositories the catalog setup pushes (1-%d, default 100)\n"
            "      --patch-content-length  streamed PATCH with Content-Length, not chunked\n"
            "      --wait SECONDS       first wait until GET URL/v2/ answers 200 (0-600)\n"
            "      --wait-only          only wait (--wait, default one try); exit 0 when ready\n"
            "      --loopback           measure one TCP stream over 127.0.0.1 and exit\n"
            "      --loopback-bytes N   bytes per loopback round (default 2 GiB)\n"
            "      --free-port          print a free TCP port on 127.0.0.1 and exit\n"
            "      --list               list the workloads and exit\n"
            "  -v, --verbose            progress messages on stderr\n"
            "\n"
            "Exit status: 0 when every request succeeded, 1 when any failed, 2 on usage errors.\n",
            BENCH_MAX_CONCURRENCY, BENCH_MAX_REQUESTS, BENCH_TIMEOUT_MAX, BENCH_CATALOG_REPOS_MAX);
}

static bool parse_num(const char *what, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v;
    if (str_parse_u64(s, max, &v) != BERTH_OK || v < min) {
        fprintf(stderr, "berth-bench: %s must be a number from %llu to %llu, not '%s'\n", what,
                (unsigned long long)min, (unsigned long long)max, s);
        return false;
    }
    *out = v;
    return true;
}

/* http(s)://authority[/path]: keeps url without trailing '/', and the
 * scheme://authority part as origin. */
static bool parse_url(const char *s, struct bench_options *o)
{
    const char *rest;
    if (strncmp(s, "http://", 7) == 0) {
        rest = s + 7;
    } else if (strncmp(s, "https://", 8) == 0) {
        rest = s + 8;
    } else {
        fprintf(stderr, "berth-bench: URL must start with http:// or https://\n");
        return false;
    }
    if (*rest == '\0' || *rest == '/' || strpbrk(s, " \t\r\n?#") != NULL) {
        fprintf(stderr, "berth-bench: '%s' is not a registry base URL\n", s);
        return false;
    }
    if (str_copy(o->url, sizeof(o->url), s) != BERTH_OK) {
        fprintf(stderr, "berth-bench: URL longer than %d bytes\n", BENCH_URL_MAX - 1);
        return false;
    }
    size_t len = strlen(o->url);
    while (len > 0 && o->url[len - 1] == '/') {
        o->url[--len] = '\0';
    }
    const char *slash = strchr(rest, '/');
    size_t origin_len = slash ? (size_t)(slash - s) : strlen(s);
    memcpy(o->origin, s, origin_len);
    o->origin[origin_len] = '\0';
    return true;
}

/* The prefix becomes the first components of repository names. */
static bool valid_prefix(const char *p)
{
    size_t len = strlen(p);
    if (len == 0 || len >= BENCH_PREFIX_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        bool sep = c == '.' || c == '_' || c == '-' || c == '/';
        if (!alnum && !(sep && i > 0 && i < len - 1 && !strchr("._-/", p[i - 1]))) {
            return false;
        }
    }
    return true;
}

static bool parse_workloads(const char *arg, const struct bench_workload **list, size_t *count)
{
    char buf[WORKLOAD_ARG_MAX];
    size_t n = 0;

    if (strcmp(arg, "all") == 0) {
        for (size_t i = 0; i < bench_workload_count; i++) {
            list[i] = &bench_workloads[i];
        }
        *count = bench_workload_count;
        return true;
    }
    if (str_copy(buf, sizeof(buf), arg) != BERTH_OK) {
        fprintf(stderr, "berth-bench: workload list too long\n");
        return false;
    }
    char *p = buf;
    while (p != NULL) {
        char *comma = strchr(p, ',');
        if (comma != NULL) {
            *comma = '\0';
        }
        if (*p != '\0') {
            const struct bench_workload *wl = bench_workload_find(p);
            if (wl == NULL) {
                fprintf(stderr, "berth-bench: unknown workload '%s' (see --list)\n", p);
                return false;
            }
            if (n == WORKLOAD_LIST_MAX) {
                fprintf(stderr, "berth-bench: more than %d workloads\n", WORKLOAD_LIST_MAX);
                return false;
            }
            list[n++] = wl;
        }
        p = comma ? comma + 1 : NULL;
    }
    if (n == 0) {
        fprintf(stderr, "berth-bench: no workloads named\n");
        return false;
    }
    *count = n;
    return true;
}

/* ---- running workloads ---- */

static void progress(const struct bench_options *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void progress(const struct bench_options *o, const char *fmt, ...)
{
    if (!o->verbose) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fputs("berth-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Hash the layers of the pushes ahead of the timed phase, so the client
 * spends no hashing time while the server is measured. */
static enum berth_err precompute_digests(const struct bench_options *o, struct bench_phase *ph,
                                         const bool *is_push, struct digest **out)
{
    struct digest *d = calloc(ph->count, sizeof(*d));
    size_t pushes = 0;
    if (d == NULL) {
        return BERTH_ENOMEM;
    }
    for (size_t i = 0; i < ph->count; i++) {
        pushes += is_push == NULL || is_push[i];
    }
    progress(o, "%s: hashing %zu x %llu MiB of test data (not timed)", ph->label, pushes,
             (unsigned long long)(ph->layer_size / BENCH_MIB));
    for (size_t i = 0; i < ph->count; i++) {
        if (is_push != NULL && !is_push[i]) {
            continue;
        }
        enum berth_err rc =
            bench_data_digest(bench_mix64(ph->seed_base + i), ph->layer_size, &d[i]);
        if (rc != BERTH_OK) {
            free(d);
            return rc;
        }
    }
    *out = d;
    return BERTH_OK;
}

/* Run an untimed phase; false (with a message) when any op failed. */
static bool run_setup(struct bench_engine *e, const struct bench_options *o, struct bench_phase *ph,
                      enum berth_err *rc)
{
    struct bench_stats st;
    *rc = bench_stats_init(&st, 0);
    if (*rc != BERTH_OK) {
        return false;
    }
    ph->stats = &st;
    progress(o, "%s: %zu operations", ph->label, ph->count);
    *rc = bench_engine_run(e, ph);
    bool ok = *rc == BERTH_OK && st.ops_failed == 0;
    if (*rc == BERTH_OK && !ok) {
        fprintf(stderr, "berth-bench: %s: %llu of %zu operations failed\n", ph->label,
                (unsigned long long)st.ops_failed, ph->count);
    }
    bench_stats_fini(&st);
    ph->stats = NULL;
    return ok;
}

static enum berth_err run_workload(struct bench_engine *e, const struct bench_options *o,
                                   const char *run_id, uint64_t seed, size_t wl_index,
                                   struct result *res)
{
    const struct bench_workload *wl = res->wl;
    enum berth_err rc;
    char base[BENCH_REPO_MAX - 16], setup_base[BENCH_REPO_MAX - 8], push_base[BENCH_REPO_MAX - 8];
    char setup_label[64], tag_label[64];
    struct bench_image image;
    struct digest *digests = NULL;
    bool *is_push = NULL;

    res->setup_ok = false;
    rc = bench_stats_init(&res->stats, o->requests);
    if (rc != BERTH_OK) {
        return rc;
    }
    if (snprintf(base, sizeof(base), "%s/%s/%s", o->prefix, run_id, wl->name) >=
        (int)sizeof(base)) {
        return BERTH_ETOOBIG;
    }
    snprintf(setup_base, sizeof(setup_base), "%s/image", base);
    snprintf(push_base, sizeof(push_base), "%s/push", base);
    snprintf(setup_label, sizeof(setup_label), "%s setup", wl->name);
    snprintf(tag_label, sizeof(tag_label), "%s setup tags", wl->name);

    /* Seeds differ per run (seed), per workload and per phase. */
    uint64_t seed_base = bench_mix64(seed + wl_index * 4);
    struct bench_phase setup = {
        .label = setup_label,
        .kind = BENCH_KIND_PUSH_MONO,
        .count = 1,
        .concurrency = o->concurrency,
        .layer_size = wl->kind == BENCH_KIND_PULL || wl->kind == BENCH_KIND_MIX ? wl->layer_size
                                                                                : BENCH_SMALL_LAYER,
        .seed_base = bench_mix64(seed + wl_index * 4 + 1),
        .repo_base = setup_base,
    };
    struct bench_phase ph = {
        .label = wl->name,
        .kind = wl->kind,
        .count = o->requests,
        .concurrency = o->concurrency,
        .layer_size = wl->layer_size,
        .seed_base = seed_base,
        .repo_base = base,
        .image = &image,
        .stats = &res->stats,
    };

    switch (wl->kind) {
    case BENCH_KIND_PUSH_MONO:
    case BENCH_KIND_PUSH_STREAMED:
        ph.image = NULL;
        rc = precompute_digests(o, &ph, NULL, &digests);
        if (rc != BERTH_OK) {
            goto out;
        }
        ph.digests = digests;
        break;
    case BENCH_KIND_MIX:
        is_push = calloc(ph.count, sizeof(*is_push));
        if (is_push == NULL) {
            rc = BERTH_ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < ph.count; i++) {
            is_push[i] = bench_mix_is_push(i);
        }
        ph.is_push = is_push;
        ph.repo_base = push_base;
        rc = precompute_digests(o, &ph, is_push, &digests);
        if (rc != BERTH_OK) {
            goto out;
        }
        ph.digests = digests;
        break;
    case BENCH_KIND_CATALOG:
        setup.count = o->catalog_repos;
        break;
    case BENCH_KIND_TAGS:
        setup.tag = "t0000";
        break;
    default:
        break;
    }

    /* Every workload starts with an untimed push (the image that pull,
     * head and tags work on; for push workloads a warm-up), so no timed
     * phase pays for a server's first-request costs. */
    if (!run_setup(e, o, &setup, &rc)) {
        goto out;
    }
    rc = bench_phase_image(&setup, 0, &image);
    if (rc != BERTH_OK) {
        goto out;
    }
    if (wl->kind == BENCH_KIND_TAGS) {
        struct bench_phase tags = {
            .label = tag_label,
            .kind = BENCH_KIND_TAG_PUT,
            .count = BENCH_TAG_COUNT - 1,
            .concurrency = o->concurrency,
            .image = &image,
        };
        if (!run_setup(e, o, &tags, &rc)) {
            goto out;
        }
    }
    res->setup_ok = true;

    progress(o, "%s: %zu operations at concurrency %zu", wl->name, ph.count, ph.concurrency);
    rc = bench_engine_run(e, &ph);
    if (rc != BERTH_OK) {
        goto out;
    }
    bench_stats_finish(&res->stats);
out:
    free(digests);
    free(is_push);
    return rc;
}

/* ---- reports ---- */

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static double seconds_of(const struct bench_stats *s)
{
    return s->elapsed_ns > 0 ? (double)s->elapsed_ns / 1e9 : 0;
}

static double per_sec(double v, const struct bench_stats *s)
{
    double sec = seconds_of(s);
    return sec > 0 ? v / sec : 0;
}

static bool result_failed(const struct result *r)
{
    return !r->setup_ok || r->stats.ops_failed > 0 || bench_stats_errors(&r->stats) > 0;
}

/* "500:2,transport:1" or "-" */
static void error_summary(const struct bench_stats *s, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < BENCH_STATUS_SLOTS; i++) {
        if (s->fail_status[i] > 0 && len < cap) {
            int n = snprintf(out + len, cap - len, "%s%zu:%llu", len ? "," : "", i,
                             (unsigned long long)s->fail_status[i]);
            len += n > 0 ? (size_t)n : 0;
        }
    }
    if (s->fail_transport > 0 && len < cap) {
        int n = snprintf(out + len, cap - len, "%stransport:%llu", len ? "," : "",
                         (unsigned long long)s->fail_transport);
        len += n > 0 ? (size_t)n : 0;
    }
    if (s->fail_check > 0 && len < cap) {
        snprintf(out + len, cap - len, "%scheck:%llu", len ? "," : "",
                 (unsigned long long)s->fail_check);
    }
    if (out[0] == '\0') {
        snprintf(out, cap, "-");
    }
}

static void print_table(FILE *f, const struct bench_options *o, const struct result *res,
                        size_t count)
{
    fprintf(f, "berth-bench %s  url=%s  c=%zu  n=%zu\n", BERTH_VERSION, o->url, o->concurrency,
            o->requests);
    fprintf(f, "%-22s %4s %7s %7s %5s %10s %9s %9s %9s %9s %6s  %s\n", "workload", "c", "n", "ok",
            "fail", "req/s", "MB/s", "p50 ms", "p90 ms", "p99 ms", "cpu%", "errors");
    for (size_t i = 0; i < count; i++) {
        const struct result *r = &res[i];
        const struct bench_stats *s = &r->stats;
        char errs[256];
        if (!r->setup_ok) {
            fprintf(f, "%-22s %4zu %7zu  setup failed\n", r->wl->name, o->concurrency, o->requests);
            continue;
        }
        error_summary(s, errs, sizeof(errs));
        fprintf(f, "%-22s %4zu %7zu %7llu %5llu %10.2f %9.1f %9.2f %9.2f %9.2f %6.0f  %s\n",
                r->wl->name, o->concurrency, o->requests, (unsigned long long)s->ops_ok,
                (unsigned long long)s->ops_failed, per_sec((double)s->ops_ok, s),
                per_sec((double)(s->bytes_up + s->bytes_down), s) / 1e6,
                ms(bench_stats_percentile(s, 50)), ms(bench_stats_percentile(s, 90)),
                ms(bench_stats_percentile(s, 99)), 100 * per_sec((double)s->client_cpu_ns / 1e9, s),
                errs);
    }
}

static int set_num(json_t *obj, const char *key, double v)
{
    return json_object_set_new(obj, key, json_real(v));
}

static int set_int(json_t *obj, const char *key, uint64_t v)
{
    return json_object_set_new(obj, key, json_integer((json_int_t)v));
}

static json_t *result_json(const struct bench_options *o, const struct result *r)
{
    const struct bench_stats *s = &r->stats;
    json_t *w = json_object();
    json_t *lat = json_object();
    json_t *statuses = json_object();
    json_t *errors = json_object();
    int bad = 0;
    char key[16];

    if (w == NULL || lat == NULL || statuses == NULL || errors == NULL) {
        json_decref(w);
        json_decref(lat);
        json_decref(statuses);
        json_decref(errors);
        return NULL;
    }
    bad |= json_object_set_new(w, "name", json_string(r->wl->name));
    bad |= set_int(w, "layer_bytes", r->wl->layer_size);
    bad |= set_int(w, "concurrency", o->concurrency);
    bad |= set_int(w, "requests", o->requests);
    bad |= json_object_set_new(w, "setup_ok", json_boolean(r->setup_ok));
    bad |= set_int(w, "ops_ok", s->ops_ok);
    bad |= set_int(w, "ops_failed", s->ops_failed);
    bad |= set_int(w, "http_requests", s->http_requests);
    bad |= set_num(w, "seconds", seconds_of(s));
    bad |= set_num(w, "requests_per_sec", per_sec((double)s->ops_ok, s));
    bad |= set_num(w, "http_requests_per_sec", per_sec((double)s->http_requests, s));
    bad |= set_int(w, "bytes_up", s->bytes_up);
    bad |= set_int(w, "bytes_down", s->bytes_down);
    bad |= set_num(w, "mb_per_sec", per_sec((double)(s->bytes_up + s->bytes_down), s) / 1e6);
    bad |= set_num(w, "client_cpu_seconds", (double)s->client_cpu_ns / 1e9);

    uint64_t sum = 0;
    for (size_t i = 0; i < s->lat_count; i++) {
        sum += s->lat_ns[i];
    }
    bad |= set_num(lat, "min", s->lat_count ? ms(s->lat_ns[0]) : 0);
    bad |= set_num(lat, "mean", s->lat_count ? ms(sum / s->lat_count) : 0);
    bad |= set_num(lat, "p50", ms(bench_stats_percentile(s, 50)));
    bad |= set_num(lat, "p90", ms(bench_stats_percentile(s, 90)));
    bad |= set_num(lat, "p99", ms(bench_stats_percentile(s, 99)));
    bad |= set_num(lat, "max", ms(bench_stats_percentile(s, 100)));
    bad |= json_object_set_new(w, "latency_ms", lat);

    for (size_t i = 0; i < BENCH_STATUS_SLOTS; i++) {
        if (s->status[i] > 0) {
            snprintf(key, sizeof(key), "%zu", i);
            bad |= set_int(statuses, key, s->status[i]);
        }
        if (s->fail_status[i] > 0) {
            snprintf(key, sizeof(key), "%zu", i);
            bad |= set_int(errors, key, s->fail_status[i]);
        }
    }
    if (s->fail_transport > 0) {
        bad |= set_int(errors, "transport", s->fail_transport);
    }
    if (s->fail_check > 0) {
        bad |= set_int(errors, "check", s->fail_check);
    }
    bad |= json_object_set_new(w, "statuses", statuses);
    bad |= json_object_set_new(w, "errors", errors);
    bad |= set_int(w, "errors_total", bench_stats_errors(s));
    bad |= json_object_set_new(w, "ok", json_boolean(!result_failed(r)));
    if (bad) {
        json_decref(w);
        return NULL;
    }
    return w;
}

static json_t *report_json(const struct bench_options *o, const struct result *res, size_t count,
                           bool failed)
{
    json_t *root = json_object();
    json_t *list = json_array();
    int bad = root == NULL || list == NULL;

    if (!bad) {
        bad |= json_object_set_new(root, "tool", json_string("berth-bench"));
        bad |= json_object_set_new(root, "version", json_string(BERTH_VERSION));
        bad |= json_object_set_new(root, "url", json_string(o->url));
        bad |= set_int(root, "concurrency", o->concurrency);
        bad |= set_int(root, "requests", o->requests);
        bad |= json_object_set_new(root, "ok", json_boolean(!failed));
        for (size_t i = 0; i < count && !bad; i++) {
            json_t *w = result_json(o, &res[i]);
            bad |= w == NULL || json_array_append_new(list, w) != 0;
        }
        bad |= json_object_set(root, "workloads", list);
    }
    json_decref(list);
    if (bad) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* Print doc on stdout (when asked) and into the JSON file (when named). */
static bool emit_json(json_t *doc, bool to_stdout, const char *file)
{
    bool ok = doc != NULL;
    if (ok && to_stdout) {
        ok = json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(9)) == 0 &&
             fputc('\n', stdout) != EOF;
    }
    if (ok && file != NULL) {
        ok = json_dump_file(doc, file, JSON_INDENT(2) | JSON_REAL_PRECISION(9)) == 0;
        if (!ok) {
            fprintf(stderr, "berth-bench: cannot write %s\n", file);
        }
    }
    return ok;
}

/* ---- modes ---- */

static int run_loopback(uint64_t bytes, enum out_format fmt, const char *json_file)
{
    struct bench_loopback_result rounds[LOOPBACK_ROUNDS];
    double best = 0;
    json_t *doc = json_object(), *lb = json_object(), *list = json_array();
    int bad = doc == NULL || lb == NULL || list == NULL;

    for (int i = 0; i < LOOPBACK_ROUNDS; i++) {
        enum berth_err rc = bench_loopback_run(bytes, &rounds[i]);
        if (rc != BERTH_OK) {
            fprintf(stderr, "berth-bench: loopback: %s\n", berth_strerror(rc));
            json_decref(doc);
            json_decref(lb);
            json_decref(list);
            return 1;
        }
        double rate = rounds[i].seconds > 0 ? (double)rounds[i].bytes / rounds[i].seconds : 0;
        best = rate > best ? rate : best;
        if (fmt == OUT_TABLE) {
            printf("loopback round %d: %.2f GiB in %.3f s = %.1f MB/s\n", i + 1,
                   (double)rounds[i].bytes / (1024.0 * BENCH_MIB), rounds[i].seconds, rate / 1e6);
        }
        json_t *r = json_object();
        bad |= r == NULL || set_int(r, "bytes", rounds[i].bytes) ||
               set_num(r, "seconds", rounds[i].seconds) || set_num(r, "mb_per_sec", rate / 1e6) ||
               json_array_append_new(list, r) != 0;
    }
    if (fmt == OUT_TABLE) {
        printf("loopback best: %.1f MB/s\n", best / 1e6);
    }
    if (!bad) {
        bad |= json_object_set_new(doc, "tool", json_string("berth-bench"));
        bad |= json_object_set_new(lb, "rounds", list);
        list = NULL;
        bad |= set_int(lb, "buffer_bytes", BENCH_IO_BUFFER);
        bad |= set_num(lb, "best_mb_per_sec", best / 1e6);
        bad |= json_object_set_new(doc, "loopback", lb);
        lb = NULL;
    }
    json_decref(list);
    json_decref(lb);
    int status = 0;
    if ((fmt == OUT_JSON || json_file != NULL) &&
        (bad || !emit_json(doc, fmt == OUT_JSON, json_file))) {
        status = 1;
    }
    json_decref(doc);
    return status;
}

static int run_bench(struct bench_options *o, const struct bench_workload **list, size_t count,
                     enum out_format fmt, const char *json_file, long wait_s)
{
    struct result *res = calloc(count, sizeof(*res));
    struct bench_engine *e = NULL;
    unsigned char rnd[12];
    char run_id[9];
    uint64_t seed = 0;
    size_t done = 0;
    bool failed = false;
    int status = 1;

    if (res == NULL) {
        fprintf(stderr, "berth-bench: out of memory\n");
        goto out;
    }
    if (rand_bytes(rnd, sizeof(rnd)) != BERTH_OK) {
        fprintf(stderr, "berth-bench: no random bytes\n");
        goto out;
    }
    str_hex_encode(rnd, 4, run_id);
    memcpy(&seed, rnd + 4, sizeof(seed));

    if (wait_s >= 0 && bench_wait_ready(o, wait_s) != BERTH_OK) {
        fprintf(stderr, "berth-bench: %s/v2/ did not answer 200 within %ld s\n", o->url, wait_s);
        goto out;
    }
    e = bench_engine_new(o);
    if (e == NULL) {
        fprintf(stderr, "berth-bench: cannot set up libcurl\n");
        goto out;
    }
    for (; done < count; done++) {
        res[done].wl = list[done];
        enum berth_err rc =
            run_workload(e, o, run_id, seed, (size_t)(list[done] - bench_workloads), &res[done]);
        if (rc != BERTH_OK) {
            fprintf(stderr, "berth-bench: %s: %s\n", list[done]->name, berth_strerror(rc));
            res[done].setup_ok = false;
        }
        failed |= result_failed(&res[done]);
        if (o->verbose && res[done].setup_ok) {
            const struct bench_stats *s = &res[done].stats;
            progress(o, "%s: %.2f req/s, %llu failed", list[done]->name,
                     per_sec((double)s->ops_ok, s), (unsigned long long)s->ops_failed);
        }
    }
    if (fmt == OUT_TABLE) {
        print_table(stdout, o, res, done);
    }
    if (fmt == OUT_JSON || json_file != NULL) {
        json_t *doc = report_json(o, res, done, failed);
        if (!emit_json(doc, fmt == OUT_JSON, json_file)) {
            failed = true;
        }
        json_decref(doc);
    }
    status = failed ? 1 : 0;
out:
    for (size_t i = 0; res != NULL && i < done; i++) {
        bench_stats_fini(&res[i].stats);
    }
    free(res);
    bench_engine_free(e);
    return status;
}

int main(int argc, char **argv)
{
    enum {
        OPT_JSON_FILE = 256,
        OPT_TIMEOUT,
        OPT_PREFIX,
        OPT_CATALOG,
        OPT_PATCH_CL,
        OPT_WAIT,
        OPT_LOOPBACK,
        OPT_LOOPBACK_BYTES,
        OPT_FREE_PORT,
        OPT_LIST,
        OPT_WAIT_ONLY,
    };
    static const struct option longopts[] = {
        {"concurrency", required_argument, NULL, 'c'},
        {"requests", required_argument, NULL, 'n'},
        {"workloads", required_argument, NULL, 'w'},
        {"output", required_argument, NULL, 'o'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"json-file", required_argument, NULL, OPT_JSON_FILE},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"repo-prefix", required_argument, NULL, OPT_PREFIX},
        {"catalog-repos", required_argument, NULL, OPT_CATALOG},
        {"patch-content-length", no_argument, NULL, OPT_PATCH_CL},
        {"wait", required_argument, NULL, OPT_WAIT},
        {"loopback", no_argument, NULL, OPT_LOOPBACK},
        {"loopback-bytes", required_argument, NULL, OPT_LOOPBACK_BYTES},
        {"free-port", no_argument, NULL, OPT_FREE_PORT},
        {"list", no_argument, NULL, OPT_LIST},
        {"wait-only", no_argument, NULL, OPT_WAIT_ONLY},
        {NULL, 0, NULL, 0},
    };
    static struct bench_options o;
    const struct bench_workload *list[WORKLOAD_LIST_MAX];
    size_t count = 0;
    enum out_format fmt = OUT_TABLE;
    const char *json_file = NULL;
    const char *workloads = "all";
    bool loopback = false;
    bool wait_only = false;
    uint64_t loopback_bytes = 2048 * BENCH_MIB;
    long wait_s = -1;
    uint64_t v;
    int opt;

    o.concurrency = 1;
    o.requests = 10;
    o.timeout_s = 120;
    o.catalog_repos = 100;
    snprintf(o.prefix, sizeof(o.prefix), "berth-bench");

    while ((opt = getopt_long(argc, argv, "c:n:w:o:vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            if (!parse_num("-c", optarg, 1, BENCH_MAX_CONCURRENCY, &v)) {
                return 2;
            }
            o.concurrency = (size_t)v;
            break;
        case 'n':
            if (!parse_num("-n", optarg, 1, BENCH_MAX_REQUESTS, &v)) {
                return 2;
            }
            o.requests = (size_t)v;
            break;
        case 'w':
            workloads = optarg;
            break;
        case 'o':
            if (strcmp(optarg, "table") == 0) {
                fmt = OUT_TABLE;
            } else if (strcmp(optarg, "json") == 0) {
                fmt = OUT_JSON;
            } else {
                fprintf(stderr, "berth-bench: -o takes table or json\n");
                return 2;
            }
            break;
        case 'v':
            o.verbose = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case OPT_JSON_FILE:
            json_file = optarg;
            break;
        case OPT_TIMEOUT:
            if (!parse_num("--timeout", optarg, 1, BENCH_TIMEOUT_MAX, &v)) {
                return 2;
            }
            o.timeout_s = (long)v;
            break;
        case OPT_PREFIX:
            if (!valid_prefix(optarg)) {
                fprintf(stderr,
                        "berth-bench: --repo-prefix must be a repository name path of "
                        "at most %d characters\n",
                        BENCH_PREFIX_MAX - 1);
                return 2;
            }
            snprintf(o.prefix, sizeof(o.prefix), "%s", optarg);
            break;
        case OPT_CATALOG:
            if (!parse_num("--catalog-repos", optarg, 1, BENCH_CATALOG_REPOS_MAX, &v)) {
                return 2;
            }
            o.catalog_repos = (size_t)v;
            break;
        case OPT_PATCH_CL:
            o.patch_content_length = true;
            break;
        case OPT_WAIT:
            if (!parse_num("--wait", optarg, 0, 600, &v)) {
                return 2;
            }
            wait_s = (long)v;
            break;
        case OPT_WAIT_ONLY:
            wait_only = true;
            break;
        case OPT_LOOPBACK:
            loopback = true;
            break;
        case OPT_LOOPBACK_BYTES:
            if (!parse_num("--loopback-bytes", optarg, BENCH_MIB, 64 * 1024 * BENCH_MIB, &v)) {
                return 2;
            }
            loopback_bytes = v;
            break;
        case OPT_FREE_PORT: {
            unsigned port;
            if (bench_free_port(&port) != BERTH_OK) {
                fprintf(stderr, "berth-bench: cannot bind 127.0.0.1:0\n");
                return 1;
            }
            printf("%u\n", port);
            return 0;
        }
        case OPT_LIST:
            for (size_t i = 0; i < bench_workload_count; i++) {
                printf("%-22s %s\n", bench_workloads[i].name, bench_workloads[i].summary);
            }
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (loopback) {
        if (optind != argc) {
            usage(stderr);
            return 2;
        }
        return run_loopback(loopback_bytes, fmt, json_file);
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    if (!parse_url(argv[optind], &o) || !parse_workloads(workloads, list, &count)) {
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "berth-bench: libcurl does not initialise\n");
        return 1;
    }
    int status;
    if (wait_only) {
        status = bench_wait_ready(&o, wait_s < 0 ? 0 : wait_s) == BERTH_OK ? 0 : 1;
    } else {
        status = run_bench(&o, list, count, fmt, json_file, wait_s);
    }
    curl_global_cleanup();
    return status;
}
