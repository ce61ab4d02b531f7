/*
 * Unit tests for storage/meta/vulndb.c: the shared vulnerability
 * database's generation row is created by the first publication, replaced
 * only by a publication that started from the current generation (two
 * imports from the same generation: the second is refused), and its blob
 * is not garbage while it is current. Runs on SQLite and (label postgres)
 * on PostgreSQL, where two connections stand for two replicas.
 */
#include "unit.h"
#include "unit_meta.h"

#include "storage/meta/meta_gc.h"
#include "storage/meta/meta_vulndb.h"

static char root[512];

static const char *const D1 =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";
static const char *const D2 =
    "sha256:2222222222222222222222222222222222222222222222222222222222222222";
static const char *const D3 =
    "sha256:3333333333333333333333333333333333333333333333333333333333333333";

static struct meta_vulndb gen(const char *digest, int64_t size, int64_t records, int64_t at)
{
    struct meta_vulndb v;
    memset(&v, 0, sizeof(v));
    snprintf(v.digest, sizeof(v.digest), "%s", digest);
    v.size = size;
    v.records = records;
    v.imported_at_ms = at;
    v.published_at_ms = at + 1;
    return v;
}

static enum berth_err publish(struct meta *m, const struct meta_vulndb *v, int64_t expect,
                              int64_t *g)
{
    CHECK_INT(meta_begin(m), BERTH_OK);
    enum berth_err rc = meta_vulndb_publish(m, v, expect, g);
    if (rc == BERTH_OK) {
        CHECK_INT(meta_commit(m), BERTH_OK);
    } else {
        meta_rollback(m);
    }
    return rc;
}

static void test_generations(void)
{
    struct meta *a = unit_meta_open(root);
    struct meta *b = unit_meta_open(root); /* another replica's connection */
    struct meta_vulndb got;
    CHECK_INT(meta_vulndb_get(a, &got), BERTH_ENOTFOUND);

    int64_t g = -1;
    struct meta_vulndb v1 = gen(D1, 100, 7, 1000);
    CHECK_INT(publish(a, &v1, 0, &g), BERTH_OK);
    CHECK_INT(g, 1);
    /* every replica reads the same row */
    CHECK_INT(meta_vulndb_get(b, &got), BERTH_OK);
    CHECK_INT(got.generation, 1);
    CHECK_STR(got.digest, D1);
    CHECK_INT(got.size, 100);
    CHECK_INT(got.records, 7);
    CHECK_INT(got.imported_at_ms, 1000);
    CHECK_INT(got.published_at_ms, 1001);

    /* two imports both started from generation 1: the first one publishes,
     * the second is refused and changes nothing */
    struct meta_vulndb v2 = gen(D2, 200, 9, 2000);
    struct meta_vulndb v3 = gen(D3, 300, 8, 2100);
    CHECK_INT(publish(b, &v2, 1, &g), BERTH_OK);
    CHECK_INT(g, 2);
    g = -1;
    CHECK_INT(publish(a, &v3, 1, &g), BERTH_ECONFLICT);
    CHECK_INT(g, -1);
    /* a first publication when one exists is refused too */
    CHECK_INT(publish(a, &v3, 0, &g), BERTH_ECONFLICT);
    CHECK_INT(meta_vulndb_get(a, &got), BERTH_OK);
    CHECK_INT(got.generation, 2);
    CHECK_STR(got.digest, D2);
    CHECK_INT(got.records, 9);
    /* started from generation 2, it goes in */
    CHECK_INT(publish(a, &v3, 2, &g), BERTH_OK);
    CHECK_INT(g, 3);
    CHECK_INT(meta_vulndb_get(b, &got), BERTH_OK);
    CHECK_STR(got.digest, D3);

    /* malformed */
    struct meta_vulndb bad = gen("sha256:nothex", 1, 1, 1);
    CHECK_INT(publish(a, &bad, 3, &g), BERTH_EINVAL);
    struct meta_vulndb neg = gen(D1, -1, 1, 1);
    CHECK_INT(publish(a, &neg, 3, &g), BERTH_EINVAL);
    meta_close(a);
    meta_close(b);
}

struct seen {
    int count;
    char digests[4][DIGEST_STR_MAX];
};

static int note_garbage(void *arg, const struct meta_gc_blob *blob)
{
    struct seen *s = arg;
    if (s->count < 4) {
        snprintf(s->digests[s->count], DIGEST_STR_MAX, "%s", blob->digest);
    }
    s->count++;
    return 0;
}

static void test_current_blob_is_kept(void)
{
    struct meta *m = unit_meta_open(root);
    /* the rows of the three generations' blobs, old enough to collect */
    int64_t id = 0;
    CHECK_INT(meta_blob_upsert(m, D1, 100, 10, &id), BERTH_OK);
    CHECK_INT(meta_blob_upsert(m, D2, 200, 10, &id), BERTH_OK);
    CHECK_INT(meta_blob_upsert(m, D3, 300, 10, &id), BERTH_OK);
    struct seen s;
    memset(&s, 0, sizeof(s));
    CHECK_INT(meta_gc_blob_scan(m, 0, 100, 1000000, note_garbage, &s, NULL, NULL), BERTH_OK);
    /* D3 is current (test_generations): the older two are garbage */
    CHECK_INT(s.count, 2);
    CHECK_STR(s.digests[0], D1);
    CHECK_STR(s.digests[1], D2);
    bool deleted = true;
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_gc_blob_delete_if_garbage(m, id, 1000000, &deleted), BERTH_OK);
    CHECK_INT(meta_commit(m), BERTH_OK);
    CHECK(!deleted);
    meta_close(m);
}

int main(void)
{
    snprintf(root, sizeof(root), "%s", unit_tmpdir());
    RUN(test_generations);
    RUN(test_current_blob_is_kept);
    file_remove_tree(root);
    return unit_report("test_meta_vulndb");
}
