/*
 * Unit tests for storage/meta/gc.c's history of garbage collection passes:
 * passes are listed newest first with what they recorded, recording one
 * keeps only the newest few, and a second connection (another replica, on
 * the PostgreSQL pass) sees what the first recorded.
 */
#include "unit.h"
#include "unit_meta.h"

#include <stdio.h>
#include <string.h>

#include "storage/meta/meta_gc.h"

static char root[512];

struct seen {
    struct meta_gc_run runs[8];
    size_t count;
};

static int keep_run(void *arg, const struct meta_gc_run *r)
{
    struct seen *s = arg;
    if (s->count < sizeof(s->runs) / sizeof(s->runs[0])) {
        s->runs[s->count++] = *r;
    }
    return 0;
}

static struct meta_gc_run a_run(int64_t n, const char *reason, const char *result)
{
    struct meta_gc_run r;
    memset(&r, 0, sizeof(r));
    r.started_at = 1000 * n;
    r.finished_at = 1000 * n + 10;
    snprintf(r.reason, sizeof(r.reason), "%s", reason);
    snprintf(r.node, sizeof(r.node), "node-%lld", (long long)n);
    snprintf(r.result, sizeof(r.result), "%s", result);
    r.blobs_deleted = n;
    r.bytes_freed = 100 * n;
    r.orphans_deleted = n % 2;
    r.uploads_removed = n % 3;
    return r;
}

static void test_history(void)
{
    struct meta *a = unit_meta_open(root);
    struct meta *b = unit_meta_open(root); /* another replica's connection */
    struct seen s = {0};
    CHECK_INT(meta_gc_runs_list(a, 5, keep_run, &s), BERTH_OK);
    CHECK_INT(s.count, 0);
    struct meta_gc_run r = a_run(1, "periodic", "ok");
    CHECK_INT(meta_gc_run_record(a, &r, 0), BERTH_EINVAL);
    CHECK_INT(meta_gc_run_record(a, &r, 3), BERTH_OK);
    r = a_run(2, "command", "failed");
    snprintf(r.error, sizeof(r.error), "database error at scan");
    CHECK_INT(meta_gc_run_record(b, &r, 3), BERTH_OK);
    CHECK_INT(meta_gc_runs_list(a, 5, keep_run, &s), BERTH_OK);
    CHECK_INT(s.count, 2);
    CHECK_STR(s.runs[0].reason, "command");
    CHECK_STR(s.runs[0].result, "failed");
    CHECK_STR(s.runs[0].error, "database error at scan");
    CHECK_STR(s.runs[0].node, "node-2");
    CHECK_INT(s.runs[0].started_at, 2000);
    CHECK_INT(s.runs[0].finished_at, 2010);
    CHECK_INT(s.runs[0].blobs_deleted, 2);
    CHECK_INT(s.runs[0].bytes_freed, 200);
    CHECK_INT(s.runs[0].uploads_removed, 2);
    CHECK_STR(s.runs[1].reason, "periodic");
    CHECK_STR(s.runs[1].error, "");
    CHECK_INT(s.runs[1].orphans_deleted, 1);
    /* bounded: the newest 3 stay */
    for (int64_t n = 3; n <= 7; n++) {
        r = a_run(n, "requested", "ok");
        CHECK_INT(meta_gc_run_record(n % 2 ? a : b, &r, 3), BERTH_OK);
    }
    s.count = 0;
    CHECK_INT(meta_gc_runs_list(b, 8, keep_run, &s), BERTH_OK);
    CHECK_INT(s.count, 3);
    CHECK_INT(s.runs[0].started_at, 7000);
    CHECK_INT(s.runs[1].started_at, 6000);
    CHECK_INT(s.runs[2].started_at, 5000);
    /* a limit */
    s.count = 0;
    CHECK_INT(meta_gc_runs_list(a, 1, keep_run, &s), BERTH_OK);
    CHECK_INT(s.count, 1);
    CHECK_INT(s.runs[0].started_at, 7000);
    CHECK_INT(meta_gc_runs_list(a, 0, keep_run, &s), BERTH_EINVAL);
    meta_close(a);
    meta_close(b);
}

int main(void)
{
    snprintf(root, sizeof(root), "%s", unit_tmpdir());
    RUN(test_history);
    file_remove_tree(root);
    return unit_report("test_meta_gc");
}
