/* Metadata: the registry's activity over time (the activity table). See
 * meta_activity.h. */
#include "meta_int.h"

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

/* Delete the buckets of step seconds that start before before_ms. */
static enum berth_err trim(struct meta *m, int64_t step, int64_t before_ms)
{
    struct meta_stmt *st = meta_prepare(m, "DELETE FROM activity WHERE step = ?1 AND at < ?2");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, step);
    meta_bind_int64(st, 2, before_ms);
    return meta_step_done(m, st, "activity_trim");
}

enum berth_err meta_activity_add(struct meta *m, int64_t now_ms, const struct meta_activity *d)
{
    enum berth_err rc = meta_begin(m);
    if (rc != BERTH_OK) {
        return rc;
    }
    rc = add_to(m, META_ACTIVITY_MINUTE, now_ms, d);
    if (rc == BERTH_OK) {
        rc = add_to(m, META_ACTIVITY_HOUR, now_ms, d);
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
