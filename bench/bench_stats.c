/* Per-phase counters and latency percentiles for berth-bench. One owner. */
#include <stdlib.h>
#include <string.h>

#include "bench.h"

enum berth_err bench_stats_init(struct bench_stats *s, size_t cap)
{
    memset(s, 0, sizeof(*s));
    if (cap > 0) {
        s->lat_ns = calloc(cap, sizeof(*s->lat_ns));
        if (s->lat_ns == NULL) {
            return BERTH_ENOMEM;
        }
    }
    s->lat_cap = cap;
    return BERTH_OK;
}

void bench_stats_fini(struct bench_stats *s)
{
    free(s->lat_ns);
    s->lat_ns = NULL;
    s->lat_cap = 0;
    s->lat_count = 0;
}

void bench_stats_op(struct bench_stats *s, bool ok, int64_t latency_ns)
{
    if (!ok) {
        s->ops_failed++;
        return;
    }
    s->ops_ok++;
    if (s->lat_count < s->lat_cap) {
        s->lat_ns[s->lat_count++] = latency_ns > 0 ? (uint64_t)latency_ns : 0;
    }
}

void bench_stats_fail(struct bench_stats *s, enum bench_fail kind, long status)
{
    switch (kind) {
    case BENCH_FAIL_STATUS:
        if (status >= 0 && status < BENCH_STATUS_SLOTS) {
            s->fail_status[status]++;
        } else {
            s->fail_status[0]++;
        }
        break;
    case BENCH_FAIL_TRANSPORT:
        s->fail_transport++;
        break;
    case BENCH_FAIL_CHECK:
        s->fail_check++;
        break;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

void bench_stats_finish(struct bench_stats *s)
{
    if (s->lat_count > 1) {
        qsort(s->lat_ns, s->lat_count, sizeof(*s->lat_ns), cmp_u64);
    }
}

uint64_t bench_stats_percentile(const struct bench_stats *s, double p)
{
    if (s->lat_count == 0 || p <= 0) {
        return 0;
    }
    if (p >= 100) {
        return s->lat_ns[s->lat_count - 1];
    }
    /* nearest rank: the smallest value with at least p% of samples <= it */
    double rank = p / 100.0 * (double)s->lat_count;
    size_t r = (size_t)rank;
    if ((double)r < rank) {
        r++;
    }
    if (r == 0) {
        r = 1;
    }
    return s->lat_ns[r - 1];
}

uint64_t bench_stats_errors(const struct bench_stats *s)
{
    uint64_t total = s->fail_transport + s->fail_check;
    for (size_t i = 0; i < BENCH_STATUS_SLOTS; i++) {
        total += s->fail_status[i];
    }
    return total;
}
