/*
 * Unit tests for storage/meta/lease.c: a lease is granted to one holder at
 * a time, renewed by its holder, free again once released or expired, and
 * kept from a new holder within the minimum gap after it was last done.
 * Runs on SQLite and (label postgres) on PostgreSQL, where two connections
 * stand for two replicas.
 */
#include "unit.h"
#include "unit_meta.h"

#include "storage/meta/meta_lease.h"

static char root[512];

static bool claim(struct meta *m, const char *name, const char *holder, int64_t now, int64_t ttl,
                  int64_t gap, struct meta_lease *l)
{
    bool got = false;
    CHECK_INT(meta_lease_claim(m, name, holder, now, ttl, gap, &got, l), BERTH_OK);
    return got;
}

static void test_one_holder(void)
{
    struct meta *a = unit_meta_open(root);
    struct meta *b = unit_meta_open(root); /* another replica's connection */
    struct meta_lease l;
    CHECK_INT(meta_lease_get(a, "gc", &l), BERTH_ENOTFOUND);
    CHECK(claim(a, "gc", "replica-a", 1000, 500, 0, &l));
    CHECK_STR(l.holder, "replica-a");
    CHECK_INT(l.expires_at, 1500);
    CHECK_INT(l.done_at, 0);
    /* held: the other replica is told who holds it until when */
    CHECK(!claim(b, "gc", "replica-b", 1200, 500, 0, &l));
    CHECK_STR(l.holder, "replica-a");
    CHECK_INT(l.expires_at, 1500);
    /* its holder claims it again (a renewal) */
    CHECK(claim(a, "gc", "replica-a", 1300, 500, 0, &l));
    CHECK_INT(l.expires_at, 1800);
    /* another name is another lease */
    CHECK(claim(b, "lifecycle", "replica-b", 1300, 500, 0, NULL));
    /* renewing extends only the holder's own */
    int64_t n = -1;
    CHECK_INT(meta_lease_renew_all(a, "replica-a", 1700, 500, &n), BERTH_OK);
    CHECK_INT(n, 1);
    CHECK(!claim(b, "gc", "replica-b", 1900, 500, 0, NULL));
    /* the holder stops renewing (it died): after the expiry it is free */
    CHECK(!claim(b, "gc", "replica-b", 2199, 500, 0, NULL));
    CHECK(claim(b, "gc", "replica-b", 2200, 500, 0, &l));
    CHECK_STR(l.holder, "replica-b");
    /* the old holder's renewal and release no longer touch it */
    CHECK_INT(meta_lease_renew_all(a, "replica-a", 2300, 500, &n), BERTH_OK);
    CHECK_INT(n, 0);
    bool released = true;
    CHECK_INT(meta_lease_release(a, "gc", "replica-a", true, 2300, &released), BERTH_OK);
    CHECK(!released);
    CHECK_INT(meta_lease_get(a, "gc", &l), BERTH_OK);
    CHECK_STR(l.holder, "replica-b");
    CHECK_INT(l.done_at, 0);
    meta_close(a);
    meta_close(b);
}

static void test_release_and_gap(void)
{
    struct meta *a = unit_meta_open(root);
    struct meta *b = unit_meta_open(root);
    struct meta_lease l;
    CHECK(claim(a, "pass", "replica-a", 10000, 30000, 1000, &l));
    bool released = false;
    CHECK_INT(meta_lease_release(a, "pass", "replica-a", true, 10400, &released), BERTH_OK);
    CHECK(released);
    CHECK_INT(meta_lease_get(b, "pass", &l), BERTH_OK);
    CHECK_STR(l.holder, "");
    CHECK_INT(l.done_at, 10400);
    /* done 400 ms ago: a periodic job of interval 1000 is not due anywhere */
    CHECK(!claim(b, "pass", "replica-b", 10800, 30000, 1000, &l));
    CHECK_INT(l.done_at, 10400);
    /* without a gap (a run asked for now) it is free at once */
    CHECK(claim(b, "pass", "replica-b", 10800, 30000, 0, NULL));
    CHECK_INT(meta_lease_release(b, "pass", "replica-b", false, 10900, &released), BERTH_OK);
    CHECK(released);
    CHECK_INT(meta_lease_get(b, "pass", &l), BERTH_OK);
    CHECK_INT(l.done_at, 10400); /* released without finishing: not done */
    CHECK(claim(a, "pass", "replica-a", 11400, 30000, 1000, NULL));
    /* delete forgets it whoever holds it */
    CHECK_INT(meta_lease_delete(b, "pass"), BERTH_OK);
    CHECK_INT(meta_lease_get(b, "pass", &l), BERTH_ENOTFOUND);
    /* bad input */
    bool got = false;
    CHECK_INT(meta_lease_claim(a, "", "replica-a", 1, 1, 0, &got, NULL), BERTH_EINVAL);
    CHECK_INT(meta_lease_claim(a, "x", "", 1, 1, 0, &got, NULL), BERTH_EINVAL);
    CHECK_INT(meta_lease_claim(a, "x", "replica-a", 1, 0, 0, &got, NULL), BERTH_EINVAL);
    meta_close(a);
    meta_close(b);
}

int main(void)
{
    snprintf(root, sizeof(root), "%s", unit_tmpdir());
    RUN(test_one_holder);
    RUN(test_release_and_gap);
    file_remove_tree(root);
    return unit_report("test_meta_lease");
}
