/* Metadata: the registry's activity over time (the activity table). See
 * meta_activity.h. */
#include "meta_int.h"

#include <stdbool.h>
#include <string.h>

#include "storage/meta/meta_activity.h"

/* Add d to the bucket of step seconds that now_ms falls in. */
static enum berth_err add_to(struct meta *m, int64_t step, int64_t now_ms,
                             const struct meta_activity *d)
{
    struct meta_stmt *st =
        meta_prepare(m, "INSERT INTO activity (step, at, requests_2xx, requests_3xx, requests_4xx, "
                        "requests_5xx, requests_other, bytes_in, bytes_out, auth_failures) "
                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
                        "ON CONFLICT (step, at) DO UPDATE SET "
                        "requests_2xx = activity.requests_2xx + excluded.requests_2xx, "
                        "requests_3xx = activity.requests_3xx + excluded.requests_3xx, "
                        "requests_4xx = activity.requests_4xx + excluded.requests_4xx, "
                        "requests_5xx = activity.requests_5xx + excluded.requests_5xx, "
                        "requests_other = activity.requests_other + excluded.requests_other, "
                        "bytes_in = activity.bytes_in + excluded.bytes_in, "
                        "bytes_out = activity.bytes_out + excluded.bytes_out, "
                        "auth_failures = activity.auth_failures + excluded.auth_failures");
    if (st == NULL) {
        return BERTH_EDB;
    }
    int64_t step_ms = step * 1000;
    meta_bind_int64(st, 1, step);
    meta_bind_int64(st, 2, now_ms - now_ms % step_ms);
    for (int i = 0; i < 5; i++) {
        meta_bind_int64(st, 3 + i, d->requests[i]);
    }
    meta_bind_int64(st, 8, d->bytes_in);
    meta_bind_int64(st, 9, d->bytes_out);
    meta_bind_int64(st, 10, d->auth_failures);
    return meta_step_done(m, st, "activity_add");
}

/* Add one API's growth to the bucket of step seconds that now_ms falls in. */
static enum berth_err add_api_to(struct meta *m, int64_t step, int64_t now_ms,
                                 const struct meta_activity_api *d)
{
    struct meta_stmt *st = meta_prepare(
        m, "INSERT INTO activity_apis (step, at, api, requests_2xx, requests_3xx, requests_4xx, "
           "requests_5xx, requests_other, bytes_in, bytes_out) "
           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
           "ON CONFLICT (step, at, api) DO UPDATE SET "
           "requests_2xx = activity_apis.requests_2xx + excluded.requests_2xx, "
           "requests_3xx = activity_apis.requests_3xx + excluded.requests_3xx, "
           "requests_4xx = activity_apis.requests_4xx + excluded.requests_4xx, "
           "requests_5xx = activity_apis.requests_5xx + excluded.requests_5xx, "
           "requests_other = activity_apis.requests_other + excluded.requests_other, "
           "bytes_in = activity_apis.bytes_in + excluded.bytes_in, "
           "bytes_out = activity_apis.bytes_out + excluded.bytes_out");
    if (st == NULL) {
        return BERTH_EDB;
    }
    int64_t step_ms = step * 1000;
    meta_bind_int64(st, 1, step);
    meta_bind_int64(st, 2, now_ms - now_ms % step_ms);
    meta_bind_text(st, 3, d->api);
    for (int i = 0; i < 5; i++) {
        meta_bind_int64(st, 4 + i, d->requests[i]);
    }
    meta_bind_int64(st, 9, d->bytes_in);
    meta_bind_int64(st, 10, d->bytes_out);
    return meta_step_done(m, st, "activity_api_add");
}

static bool api_idle(const struct meta_activity_api *a)
{
    for (int i = 0; i < 5; i++) {
        if (a->requests[i] != 0) {
            return false;
        }
    }
    return a->bytes_in == 0 && a->bytes_out == 0;
}

/* Add d and its APIs' growth to the bucket of step seconds now_ms is in. */
static enum berth_err add_all(struct meta *m, int64_t step, int64_t now_ms,
                              const struct meta_activity *d)
{
    enum berth_err rc = add_to(m, step, now_ms, d);
    for (size_t i = 0; rc == BERTH_OK && i < d->api_count && i < META_ACTIVITY_APIS; i++) {
        if (!api_idle(&d->apis[i])) {
            rc = add_api_to(m, step, now_ms, &d->apis[i]);
        }
    }
    return rc;
}

/* Delete the buckets of step seconds that start before before_ms. */
static enum berth_err trim(struct meta *m, int64_t step, int64_t before_ms)
{
    struct meta_stmt *st = meta_prepare(m, "DELETE FROM activity WHERE step = ?1 AND at < ?2");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, step);
    meta_bind_int64(st, 2, before_ms);
    enum berth_err rc = meta_step_done(m, st, "activity_trim");
    if (rc != BERTH_OK) {
        return rc;
    }
    st = meta_prepare(m, "DELETE FROM activity_apis WHERE step = ?1 AND at < ?2");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, step);
    meta_bind_int64(st, 2, before_ms);
    return meta_step_done(m, st, "activity_api_trim");
}

enum berth_err meta_activity_add(struct meta *m, int64_t now_ms, const struct meta_activity *d)
{
    enum berth_err rc = meta_begin(m);
    if (rc != BERTH_OK) {
        return rc;
    }
    rc = add_all(m, META_ACTIVITY_MINUTE, now_ms, d);
    if (rc == BERTH_OK) {
        rc = add_all(m, META_ACTIVITY_HOUR, now_ms, d);
    }
    if (rc == BERTH_OK) {
        rc = trim(m, META_ACTIVITY_MINUTE, now_ms - META_ACTIVITY_MINUTES_KEPT_MS);
    }
    if (rc == BERTH_OK) {
        rc = trim(m, META_ACTIVITY_HOUR, now_ms - META_ACTIVITY_HOURS_KEPT_MS);
    }
    if (rc == BERTH_OK) {
        rc = meta_commit(m);
    }
    if (rc != BERTH_OK) {
        meta_rollback(m);
    }
    return rc;
}

struct list_ctx {
    meta_activity_cb cb;
    void *arg;
};

static int activity_row(struct meta_stmt *st, void *ctx)
{
    struct list_ctx *c = ctx;
    struct meta_activity a;
    memset(&a, 0, sizeof(a));
    a.at = meta_col_int64(st, 0);
    for (int i = 0; i < 5; i++) {
        a.requests[i] = meta_col_int64(st, 1 + i);
    }
    a.bytes_in = meta_col_int64(st, 6);
    a.bytes_out = meta_col_int64(st, 7);
    a.auth_failures = meta_col_int64(st, 8);
    return c->cb(c->arg, &a);
}

enum berth_err meta_activity_list(struct meta *m, int64_t step, int64_t since_ms,
                                  meta_activity_cb cb, void *arg)
{
    if (step != META_ACTIVITY_MINUTE && step != META_ACTIVITY_HOUR) {
        return BERTH_EINVAL;
    }
    struct meta_stmt *st = meta_prepare(
        m, "SELECT at, requests_2xx, requests_3xx, requests_4xx, requests_5xx, requests_other, "
           "bytes_in, bytes_out, auth_failures FROM activity WHERE step = ?1 AND at >= ?2 "
           "ORDER BY at");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, step);
    meta_bind_int64(st, 2, since_ms);
    struct list_ctx c = {cb, arg};
    return meta_page(m, st, -1, activity_row, &c, NULL, "activity_list");
}

struct api_ctx {
    meta_activity_api_cb cb;
    void *arg;
};

static int api_row(struct meta_stmt *st, void *ctx)
{
    struct api_ctx *c = ctx;
    struct meta_activity_api a;
    memset(&a, 0, sizeof(a));
    a.at = meta_col_int64(st, 0);
    (void)meta_col_text(st, 1, a.api, sizeof(a.api)); /* names are short; a long one is cut */
    for (int i = 0; i < 5; i++) {
        a.requests[i] = meta_col_int64(st, 2 + i);
    }
    a.bytes_in = meta_col_int64(st, 7);
    a.bytes_out = meta_col_int64(st, 8);
    return c->cb(c->arg, &a);
}

/* Run sql (columns: at, api, the five request counts, bytes in and out;
 * ?1 the step, ?2 the start) with api_row. */
static enum berth_err api_query(struct meta *m, const char *sql, const char *what, int64_t step,
                                int64_t since_ms, meta_activity_api_cb cb, void *arg)
{
    if (step != META_ACTIVITY_MINUTE && step != META_ACTIVITY_HOUR) {
        return BERTH_EINVAL;
    }
    struct meta_stmt *st = meta_prepare(m, sql);
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, step);
    meta_bind_int64(st, 2, since_ms);
    struct api_ctx c = {cb, arg};
    return meta_page(m, st, -1, api_row, &c, NULL, what);
}

enum berth_err meta_activity_apis(struct meta *m, int64_t step, int64_t since_ms,
                                  meta_activity_api_cb cb, void *arg)
{
    return api_query(m,
                     "SELECT 0, api, SUM(requests_2xx), SUM(requests_3xx), SUM(requests_4xx), "
                     "SUM(requests_5xx), SUM(requests_other), SUM(bytes_in), SUM(bytes_out) "
                     "FROM activity_apis WHERE step = ?1 AND at >= ?2 GROUP BY api ORDER BY api",
                     "activity_apis", step, since_ms, cb, arg);
}

enum berth_err meta_activity_api_list(struct meta *m, int64_t step, int64_t since_ms,
                                      meta_activity_api_cb cb, void *arg)
{
    return api_query(m,
                     "SELECT at, api, requests_2xx, requests_3xx, requests_4xx, requests_5xx, "
                     "requests_other, bytes_in, bytes_out FROM activity_apis "
                     "WHERE step = ?1 AND at >= ?2 ORDER BY api, at",
                     "activity_api_list", step, since_ms, cb, arg);
}
