/* The tail cache of shared S3 stages (storage/blob/s3_tails.c): a hit only
 * for the key and length the row names, a stale entry dropped, one entry
 * per stage, and the byte and slot bounds. */
#include "unit.h"

#include <stdint.h>

#include "storage/blob/s3_int.h"

static void fill(char *p, size_t n, char c)
{
    memset(p, c, n);
}

static void test_hit_only_for_the_named_key(void)
{
    struct s3_tails *t = s3_tails_new(1 << 20);
    CHECK(t != NULL);
    char in[100], out[100];
    fill(in, sizeof(in), 'a');
    s3_tails_put(t, "u1", "p/uploads/u1/tail-1", in, sizeof(in));
    fill(out, sizeof(out), 0);
    CHECK(s3_tails_get(t, "u1", "p/uploads/u1/tail-1", out, sizeof(out)));
    CHECK(memcmp(in, out, sizeof(out)) == 0);
    /* a hit is not consumed: a request that fails to commit leaves the row as it was */
    CHECK(s3_tails_get(t, "u1", "p/uploads/u1/tail-1", out, sizeof(out)));
    /* the same key at another length, another stage: nothing */
    CHECK(!s3_tails_get(t, "u1", "p/uploads/u1/tail-1", out, 99));
    CHECK(!s3_tails_get(t, "u2", "p/uploads/u1/tail-1", out, sizeof(out)));
    /* the wrong length dropped the entry: the row names another state for good */
    CHECK(!s3_tails_get(t, "u1", "p/uploads/u1/tail-1", out, sizeof(out)));
    s3_tails_put(t, "u1", "p/uploads/u1/tail-1", in, sizeof(in));
    /* another replica committed tail-2: the row names it, the entry is stale */
    CHECK(!s3_tails_get(t, "u1", "p/uploads/u1/tail-2", out, sizeof(out)));
    CHECK(!s3_tails_get(t, "u1", "p/uploads/u1/tail-1", out, sizeof(out)));
    struct s3_tails_stats st = s3_tails_stats(t);
    CHECK_INT(st.hits, 2);
    CHECK_INT(st.misses, 5);
    CHECK_INT(st.entries, 0);
    CHECK_INT(st.bytes, 0);
    s3_tails_free(t);
}

static void test_one_entry_per_stage(void)
{
    struct s3_tails *t = s3_tails_new(1 << 20);
    char a[10], b[20], out[20];
    fill(a, sizeof(a), 'a');
    fill(b, sizeof(b), 'b');
    s3_tails_put(t, "u1", "k1", a, sizeof(a));
    s3_tails_put(t, "u1", "k2", b, sizeof(b));
    struct s3_tails_stats st = s3_tails_stats(t);
    CHECK_INT(st.entries, 1);
    CHECK_INT(st.bytes, 20);
    CHECK(!s3_tails_get(t, "u1", "k1", out, sizeof(a)));
    s3_tails_put(t, "u1", "k2", b, sizeof(b));
    CHECK(s3_tails_get(t, "u1", "k2", out, sizeof(b)));
    CHECK(memcmp(out, b, sizeof(b)) == 0);
    s3_tails_drop(t, "u1");
    CHECK(!s3_tails_get(t, "u1", "k2", out, sizeof(b)));
    CHECK_INT(s3_tails_stats(t).bytes, 0);
    s3_tails_free(t);
}

static void test_bounds(void)
{
    /* bytes: 3 tails of 400 in 1000, the least recently used goes */
    struct s3_tails *t = s3_tails_new(1000);
    char p[400], out[400];
    fill(p, sizeof(p), 'x');
    s3_tails_put(t, "u1", "k1", p, sizeof(p));
    s3_tails_put(t, "u2", "k2", p, sizeof(p));
    CHECK(s3_tails_get(t, "u1", "k1", out, sizeof(out))); /* u2 is now the oldest */
    s3_tails_put(t, "u3", "k3", p, sizeof(p));
    struct s3_tails_stats st = s3_tails_stats(t);
    CHECK_INT(st.entries, 2);
    CHECK_INT(st.bytes, 800);
    CHECK_INT(st.evicted, 1);
    CHECK(!s3_tails_get(t, "u2", "k2", out, sizeof(out)));
    CHECK(s3_tails_get(t, "u1", "k1", out, sizeof(out)));
    CHECK(s3_tails_get(t, "u3", "k3", out, sizeof(out)));
    /* larger than the whole cache: not kept, and nothing evicted for it */
    char big[1001];
    fill(big, sizeof(big), 'y');
    s3_tails_put(t, "u4", "k4", big, sizeof(big));
    CHECK_INT(s3_tails_stats(t).entries, 2);
    CHECK(!s3_tails_get(t, "u4", "k4", big, sizeof(big)));
    s3_tails_free(t);

    /* slots: more stages than slots, every held byte accounted for */
    t = s3_tails_new(1 << 20);
    char key[32], name[32];
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof(name), "u%d", i);
        snprintf(key, sizeof(key), "k%d", i);
        s3_tails_put(t, name, key, p, 10);
    }
    st = s3_tails_stats(t);
    CHECK(st.entries > 0 && st.entries < 40);
    CHECK_INT(st.bytes, (size_t)st.entries * 10);
    CHECK(s3_tails_get(t, "u39", "k39", out, 10));
    CHECK(!s3_tails_get(t, "u0", "k0", out, 10));
    s3_tails_free(t);

    /* a cache of 0 bytes keeps nothing */
    t = s3_tails_new(0);
    s3_tails_put(t, "u1", "k1", p, 1);
    CHECK(!s3_tails_get(t, "u1", "k1", out, 1));
    s3_tails_free(t);
    /* NULL (no memory for the cache) does nothing */
    s3_tails_put(NULL, "u1", "k1", p, 1);
    CHECK(!s3_tails_get(NULL, "u1", "k1", out, 1));
    s3_tails_drop(NULL, "u1");
    s3_tails_free(NULL);
}

int main(void)
{
    RUN(test_hit_only_for_the_named_key);
    RUN(test_one_entry_per_stage);
    RUN(test_bounds);
    return unit_report("test_s3_tails");
}
