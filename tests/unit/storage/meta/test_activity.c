/*
 * Unit tests for storage/meta/activity.c: growth added by several
 * connections (replicas, on the PostgreSQL pass) sums into minute and hour
 * buckets, listings start where asked, and buckets past what is kept are
 * deleted as new ones come; the same by API, summed over a span.
 */
#include "unit.h"
#include "unit_meta.h"

#include <stdio.h>
#include <string.h>

#include "storage/meta/meta_activity.h"

static char root[512];

#define MIN_MS 60000LL
#define HOUR_MS 3600000LL
#define T0 (1000LL * HOUR_MS) /* an hour's start */

struct seen {
    struct meta_activity b[16];
    size_t count;
};

static int keep(void *arg, const struct meta_activity *a)
{
    struct seen *s = arg;
    if (s->count < sizeof(s->b) / sizeof(s->b[0])) {
        s->b[s->count++] = *a;
    }
    return 0;
}

static struct seen list(struct meta *m, int64_t step, int64_t since)
{
    struct seen s;
    memset(&s, 0, sizeof(s));
    CHECK_INT(meta_activity_list(m, step, since, keep, &s), BERTH_OK);
    return s;
}

static struct meta_activity growth(int64_t n)
{
    struct meta_activity d;
    memset(&d, 0, sizeof(d));
    for (int i = 0; i < 5; i++) {
        d.requests[i] = n * (i + 1);
    }
    d.bytes_in = 1000 * n;
    d.bytes_out = 2000 * n;
    d.auth_failures = n;
    return d;
}

static void test_buckets(void)
{
    struct meta *a = unit_meta_open(root);
    struct meta *b = unit_meta_open(root); /* another replica's connection */
    struct meta_activity d = growth(1);
    CHECK_INT(meta_activity_add(a, T0 + 5000, &d), BERTH_OK);
    d = growth(2);
    CHECK_INT(meta_activity_add(b, T0 + 59999, &d), BERTH_OK); /* the same minute */
    d = growth(4);
    CHECK_INT(meta_activity_add(a, T0 + 2 * MIN_MS + 1, &d), BERTH_OK);
    struct seen s = list(b, META_ACTIVITY_MINUTE, 0);
    CHECK_INT(s.count, 2);
    CHECK_INT(s.b[0].at, T0);
    CHECK_INT(s.b[0].requests[0], 3);
    CHECK_INT(s.b[0].requests[4], 15);
    CHECK_INT(s.b[0].bytes_in, 3000);
    CHECK_INT(s.b[0].bytes_out, 6000);
    CHECK_INT(s.b[0].auth_failures, 3);
    CHECK_INT(s.b[1].at, T0 + 2 * MIN_MS);
    CHECK_INT(s.b[1].requests[2], 12);
    s = list(a, META_ACTIVITY_HOUR, 0);
    CHECK_INT(s.count, 1);
    CHECK_INT(s.b[0].at, T0);
    CHECK_INT(s.b[0].requests[0], 7);
    CHECK_INT(s.b[0].bytes_out, 14000);
    /* since: from the bucket asked for */
    s = list(a, META_ACTIVITY_MINUTE, T0 + 1);
    CHECK_INT(s.count, 1);
    CHECK_INT(s.b[0].at, T0 + 2 * MIN_MS);
    CHECK_INT(meta_activity_list(a, 61, 0, keep, &s), BERTH_EINVAL);
    meta_close(a);
    meta_close(b);
}

static void test_kept(void)
{
    struct meta *m = unit_meta_open(root);
    /* a day and a minute later: the minutes of test_buckets go, their hour stays */
    int64_t later = T0 + META_ACTIVITY_MINUTES_KEPT_MS + 3 * MIN_MS;
    struct meta_activity d = growth(1);
    CHECK_INT(meta_activity_add(m, later, &d), BERTH_OK);
    struct seen s = list(m, META_ACTIVITY_MINUTE, 0);
    CHECK_INT(s.count, 1);
    CHECK_INT(s.b[0].at, later - later % MIN_MS);
    s = list(m, META_ACTIVITY_HOUR, 0);
    CHECK_INT(s.count, 2);
    CHECK_INT(s.b[0].at, T0);
    /* 30 days later the first hour goes too */
    int64_t much_later = T0 + META_ACTIVITY_HOURS_KEPT_MS + HOUR_MS;
    CHECK_INT(meta_activity_add(m, much_later, &d), BERTH_OK);
    s = list(m, META_ACTIVITY_HOUR, 0);
    CHECK_INT(s.count, 2);
    CHECK(s.b[0].at > T0);
    CHECK_INT(s.b[1].at, much_later - much_later % HOUR_MS);
    meta_close(m);
}

struct api_seen {
    struct meta_activity_api a[8];
    size_t count;
};

static int keep_api(void *arg, const struct meta_activity_api *a)
{
    struct api_seen *s = arg;
    if (s->count < sizeof(s->a) / sizeof(s->a[0])) {
        s->a[s->count++] = *a;
    }
    return 0;
}

static struct api_seen list_apis(struct meta *m, int64_t step, int64_t since)
{
    struct api_seen s;
    memset(&s, 0, sizeof(s));
    CHECK_INT(meta_activity_apis(m, step, since, keep_api, &s), BERTH_OK);
    return s;
}

static struct meta_activity_api api_growth(const char *name, int64_t n)
{
    struct meta_activity_api a;
    memset(&a, 0, sizeof(a));
    snprintf(a.api, sizeof(a.api), "%s", name);
    for (int i = 0; i < 5; i++) {
        a.requests[i] = n * (i + 1);
    }
    a.bytes_in = 10 * n;
    a.bytes_out = 20 * n;
    return a;
}

/* Growth by API, added by two connections (replicas) in several minutes of
 * one hour, summed by API over a span; an idle API writes no row. */
static void test_apis(void)
{
    struct meta *a = unit_meta_open(root);
    struct meta *b = unit_meta_open(root);
    int64_t t = T0 + 100 * HOUR_MS; /* past the buckets of the other tests */
    struct meta_activity d = growth(0);
    d.api_count = 3;
    d.apis[0] = api_growth("oci", 1);
    d.apis[1] = api_growth("ecr", 2);
    d.apis[2] = api_growth("idle", 0);
    CHECK_INT(meta_activity_add(a, t + 1000, &d), BERTH_OK);
    d.api_count = 2;
    d.apis[0] = api_growth("oci", 4);
    d.apis[1] = api_growth("console", 8);
    CHECK_INT(meta_activity_add(b, t + 1000, &d), BERTH_OK); /* the same minute */
    d.api_count = 1;
    d.apis[0] = api_growth("oci", 16);
    CHECK_INT(meta_activity_add(a, t + 5 * MIN_MS, &d), BERTH_OK);
    struct api_seen s = list_apis(b, META_ACTIVITY_MINUTE, t);
    CHECK_INT(s.count, 3); /* by name: console, ecr, oci; no row for idle */
    CHECK_STR(s.a[0].api, "console");
    CHECK_INT(s.a[0].requests[0], 8);
    CHECK_STR(s.a[1].api, "ecr");
    CHECK_INT(s.a[1].requests[1], 4);
    CHECK_STR(s.a[2].api, "oci");
    CHECK_INT(s.a[2].requests[0], 21);
    CHECK_INT(s.a[2].requests[4], 105);
    CHECK_INT(s.a[2].bytes_in, 210);
    CHECK_INT(s.a[2].bytes_out, 420);
    /* the hour holds the same sums */
    s = list_apis(a, META_ACTIVITY_HOUR, t);
    CHECK_INT(s.count, 3);
    CHECK_INT(s.a[2].requests[0], 21);
    CHECK_INT(s.a[2].bytes_out, 420);
    /* a span from the later minute: only its growth */
    s = list_apis(a, META_ACTIVITY_MINUTE, t + MIN_MS);
    CHECK_INT(s.count, 1);
    CHECK_STR(s.a[0].api, "oci");
    CHECK_INT(s.a[0].requests[0], 16);
    struct api_seen none;
    CHECK_INT(meta_activity_apis(a, 61, 0, keep_api, &none), BERTH_EINVAL);
    /* kept like the totals: a day later the minutes go, the hour stays */
    d = growth(1);
    CHECK_INT(meta_activity_add(a, t + META_ACTIVITY_MINUTES_KEPT_MS + HOUR_MS, &d), BERTH_OK);
    CHECK_INT(list_apis(a, META_ACTIVITY_MINUTE, t).count, 0);
    CHECK_INT(list_apis(a, META_ACTIVITY_HOUR, t).count, 3);
    meta_close(a);
    meta_close(b);
}

/* Each API's buckets: by API name, then oldest first, each at its
 * bucket's start, two connections' growth in one bucket summed; a minute
 * in which an API had nothing has no row for it; the hour holds one row
 * per API with the whole hour's growth. */
static void test_api_buckets(void)
{
    struct meta *a = unit_meta_open(root);
    struct meta *b = unit_meta_open(root);
    int64_t t = T0 + 200 * HOUR_MS; /* past the buckets of the other tests */
    struct meta_activity d = growth(0);
    d.api_count = 2;
    d.apis[0] = api_growth("oci", 1);
    d.apis[1] = api_growth("ecr", 2);
    CHECK_INT(meta_activity_add(a, t + 1000, &d), BERTH_OK);
    d.api_count = 1;
    d.apis[0] = api_growth("oci", 4);
    CHECK_INT(meta_activity_add(b, t + 2000, &d), BERTH_OK); /* the same minute */
    d.apis[0] = api_growth("oci", 16);
    CHECK_INT(meta_activity_add(a, t + 3 * MIN_MS + 5, &d), BERTH_OK);
    struct api_seen s;
    memset(&s, 0, sizeof(s));
    CHECK_INT(meta_activity_api_list(b, META_ACTIVITY_MINUTE, t, keep_api, &s), BERTH_OK);
    CHECK_INT(s.count, 3);
    CHECK_STR(s.a[0].api, "ecr");
    CHECK_INT(s.a[0].at, t);
    CHECK_INT(s.a[0].requests[0], 2);
    CHECK_STR(s.a[1].api, "oci");
    CHECK_INT(s.a[1].at, t);
    CHECK_INT(s.a[1].requests[0], 5);
    CHECK_INT(s.a[1].bytes_in, 50);
    CHECK_STR(s.a[2].api, "oci");
    CHECK_INT(s.a[2].at, t + 3 * MIN_MS);
    CHECK_INT(s.a[2].requests[4], 80);
    CHECK_INT(s.a[2].bytes_out, 320);
    /* from the later minute on: only its row */
    memset(&s, 0, sizeof(s));
    CHECK_INT(meta_activity_api_list(a, META_ACTIVITY_MINUTE, t + MIN_MS, keep_api, &s), BERTH_OK);
    CHECK_INT(s.count, 1);
    CHECK_INT(s.a[0].at, t + 3 * MIN_MS);
    /* the hour: one row per API, the sums of its minutes */
    memset(&s, 0, sizeof(s));
    CHECK_INT(meta_activity_api_list(a, META_ACTIVITY_HOUR, t, keep_api, &s), BERTH_OK);
    CHECK_INT(s.count, 2);
    CHECK_STR(s.a[1].api, "oci");
    CHECK_INT(s.a[1].at, t - t % HOUR_MS);
    CHECK_INT(s.a[1].requests[0], 21);
    CHECK_INT(meta_activity_api_list(a, 61, 0, keep_api, &s), BERTH_EINVAL);
    meta_close(a);
    meta_close(b);
}

int main(void)
{
    snprintf(root, sizeof(root), "%s", unit_tmpdir());
    RUN(test_buckets);
    RUN(test_kept);
    RUN(test_apis);
    RUN(test_api_buckets);
    file_remove_tree(root);
    return unit_report("test_meta_activity");
}
