/*
 * The registry's activity over time (table activity), for the console's
 * charts: what the request counters grew by, summed over the replicas, in
 * buckets of a minute (the last day kept) and of an hour (the last 30 days
 * kept). Each replica adds its own growth now and then (one small write
 * transaction: the two buckets it falls in, and the deletion of buckets
 * past what is kept). Same rules as meta.h: a struct meta is used by one
 * thread at a time and every call may block on the database.
 */
#ifndef BERTH_META_ACTIVITY_H
#define BERTH_META_ACTIVITY_H

#include <stdint.h>

#include "common/err.h"
#include "storage/meta/meta.h"

#define META_ACTIVITY_MINUTE 60 /* bucket steps, seconds */
#define META_ACTIVITY_HOUR 3600
#define META_ACTIVITY_MINUTES_KEPT_MS (24LL * 3600 * 1000)
#define META_ACTIVITY_HOURS_KEPT_MS (30LL * 24 * 3600 * 1000)

/* APIs one growth tells apart (server/metrics' summary has as many). */
#define META_ACTIVITY_APIS 8
#define META_ACTIVITY_API_MAX 16 /* an API's name, with its NUL */

/* Counts of one API in a bucket (or over a span, or the growth added). */
struct meta_activity_api {
    int64_t at;                      /* the bucket's start, epoch ms (0 over a span; ignored
                                        when adding) */
    char api[META_ACTIVITY_API_MAX]; /* "oci", "ecr", "console", ... */
    int64_t requests[5];             /* by status class: 2xx, 3xx, 4xx, 5xx, other */
    int64_t bytes_in, bytes_out;
};

/* Counts of one bucket (or the growth added to one). */
struct meta_activity {
    int64_t at;          /* the bucket's start, epoch ms (ignored when adding) */
    int64_t requests[5]; /* by status class: 2xx, 3xx, 4xx, 5xx, other */
    int64_t bytes_in, bytes_out;
    int64_t auth_failures;
    /* when adding: the same growth by API (table activity_apis); an API
     * whose counts are all 0 is skipped. Not filled by meta_activity_list. */
    size_t api_count;
    struct meta_activity_api apis[META_ACTIVITY_APIS];
};

/* Add d (its totals and its APIs') to the minute and the hour buckets
 * now_ms falls in, and delete the buckets older than what is kept; one
 * write transaction of its own.
 * BERTH_EDB, BERTH_EUNAVAILABLE. */
enum berth_err meta_activity_add(struct meta *m, int64_t now_ms, const struct meta_activity *d);

/* Called with each bucket, oldest first; non-zero stops. */
typedef int (*meta_activity_cb)(void *arg, const struct meta_activity *a);

/* The buckets of step seconds (META_ACTIVITY_MINUTE or _HOUR) that start
 * at or after since_ms, oldest first. Reads only. BERTH_EINVAL (another
 * step), BERTH_EDB. */
enum berth_err meta_activity_list(struct meta *m, int64_t step, int64_t since_ms,
                                  meta_activity_cb cb, void *arg);

/* Called with each API's sums, by name; non-zero stops. */
typedef int (*meta_activity_api_cb)(void *arg, const struct meta_activity_api *a);

/* Each API's counts summed over the buckets of step seconds that start at
 * or after since_ms (every replica's), by API name. Reads only.
 * BERTH_EINVAL (another step), BERTH_EDB. */
enum berth_err meta_activity_apis(struct meta *m, int64_t step, int64_t since_ms,
                                  meta_activity_api_cb cb, void *arg);

/* Each API's buckets of step seconds that start at or after since_ms
 * (every replica's summed, as the table holds them), by API name, then
 * oldest first; a bucket in which an API had nothing is not there. Reads
 * only. BERTH_EINVAL (another step), BERTH_EDB. */
enum berth_err meta_activity_api_list(struct meta *m, int64_t step, int64_t since_ms,
                                      meta_activity_api_cb cb, void *arg);

#endif
