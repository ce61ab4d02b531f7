/* The activity sampler (see activity.h): its own thread, sleeping on its
 * own condition variable (CLOCK_MONOTONIC) between samples. */
#include "server/jobs/activity.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "server/metrics/metrics.h"
#include "storage/meta/meta_activity.h"
#include "storage/store/store.h"

_Static_assert(META_ACTIVITY_APIS >= METRICS_SUMMARY_APIS,
               "the history tells apart every API the summary does");

struct activity_sampler {
    struct store *st;
    int64_t interval_ms;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop; /* under lock */
    pthread_t thread;
    struct meta_activity written; /* the counters as last written */
};

/* This process's request counters now, summed over the APIs and by API. */
static void counters_now(struct meta_activity *out)
{
    struct metrics_summary *ms = malloc(sizeof(*ms));
    memset(out, 0, sizeof(*out));
    if (ms == NULL) {
        return;
    }
    metrics_summary_get(ms);
    for (size_t i = 0; i < ms->api_count && i < META_ACTIVITY_APIS; i++) {
        const uint64_t *c = ms->apis[i].by_class;
        struct meta_activity_api *a = &out->apis[out->api_count++];
        snprintf(a->api, sizeof(a->api), "%s", ms->apis[i].api);
        for (int k = 0; k < 4; k++) {
            a->requests[k] = (int64_t)c[2 + k];
        }
        a->requests[4] = (int64_t)(c[0] + c[1]);
        a->bytes_in = (int64_t)ms->apis[i].bytes_in;
        a->bytes_out = (int64_t)ms->apis[i].bytes_out;
        for (int k = 0; k < 5; k++) {
            out->requests[k] += a->requests[k];
        }
        out->bytes_in += a->bytes_in;
        out->bytes_out += a->bytes_out;
    }
    out->auth_failures = (int64_t)ms->auth_failures;
    free(ms);
}

/* The counters of api as last written (NULL: none yet). */
static const struct meta_activity_api *written_api(const struct meta_activity *w, const char *api)
{
    for (size_t i = 0; i < w->api_count; i++) {
        if (strcmp(w->apis[i].api, api) == 0) {
            return &w->apis[i];
        }
    }
    return NULL;
}

/* Add what the counters grew by since the last write; kept for the next
 * sample when the write fails. */
static void sample(struct activity_sampler *s)
{
    struct meta_activity *now = malloc(sizeof(*now));
    struct meta_activity *d = malloc(sizeof(*d));
    if (now == NULL || d == NULL) {
        free(now);
        free(d);
        return;
    }
    counters_now(now);
    memset(d, 0, sizeof(*d));
    bool any = false;
    for (int k = 0; k < 5; k++) {
        d->requests[k] = now->requests[k] - s->written.requests[k];
        any = any || d->requests[k] != 0;
    }
    d->bytes_in = now->bytes_in - s->written.bytes_in;
    d->bytes_out = now->bytes_out - s->written.bytes_out;
    d->auth_failures = now->auth_failures - s->written.auth_failures;
    any = any || d->bytes_in != 0 || d->bytes_out != 0 || d->auth_failures != 0;
    /* by API: the counters only grow, and an API once seen stays */
    for (size_t i = 0; i < now->api_count; i++) {
        const struct meta_activity_api *was = written_api(&s->written, now->apis[i].api);
        struct meta_activity_api *a = &d->apis[d->api_count++];
        *a = now->apis[i];
        if (was != NULL) {
            for (int k = 0; k < 5; k++) {
                a->requests[k] -= was->requests[k];
            }
            a->bytes_in -= was->bytes_in;
            a->bytes_out -= was->bytes_out;
        }
    }
    if (any) {
        struct meta *m;
        enum berth_err rc = store_meta_get(s->st, &m);
        if (rc == BERTH_OK) {
            rc = meta_activity_add(m, time_now_ms(), d);
        }
        if (rc == BERTH_OK) {
            s->written = *now;
        } else {
            log_warn("event=activity_sample_error err=%s", berth_strerror(rc));
        }
    }
    free(now);
    free(d);
}

static void *sampler_main(void *arg)
{
    struct activity_sampler *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        int64_t at = time_mono_ns() + s->interval_ms * 1000000;
        struct timespec ts = {.tv_sec = (time_t)(at / 1000000000),
                              .tv_nsec = (long)(at % 1000000000)};
        while (!s->stop && time_mono_ns() < at) {
            pthread_cond_timedwait(&s->cond, &s->lock, &ts);
        }
        pthread_mutex_unlock(&s->lock);
        sample(s); /* the last one as it stops, too */
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

enum berth_err activity_sampler_start(struct store *st, int64_t interval_ms,
                                      struct activity_sampler **out)
{
    if (interval_ms < 1000) {
        return BERTH_EINVAL;
    }
    struct activity_sampler *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return BERTH_ENOMEM;
    }
    s->st = st;
    s->interval_ms = interval_ms;
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&s->thread, NULL, sampler_main, s) != 0) {
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return BERTH_EIO;
    }
    log_info("event=job_started job=activity interval_ms=%lld", (long long)interval_ms);
    *out = s;
    return BERTH_OK;
}

void activity_sampler_stop(struct activity_sampler *s)
{
    if (s == NULL) {
        return;
    }
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
