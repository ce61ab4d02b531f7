/*
 * Unit tests for the wake-ups among replicas (meta_notify, meta_listen,
 * meta_wait_notify in storage/meta/meta.c): on PostgreSQL (label
 * postgres) a notification sent inside a transaction reaches a listening
 * connection when the transaction commits, not before and not after a
 * rollback; on SQLite notifying is a no-op and nothing listens.
 */
#include "unit.h"
#include "unit_meta.h"

static char root[512];

/* Whether l gets a notification within ms. */
static bool heard(struct meta *l, int64_t ms)
{
    bool got = false;
    CHECK_INT(meta_wait_notify(l, ms, &got), BERTH_OK);
    return got;
}

static void test_notify(void)
{
    struct meta *a = unit_meta_open(root); /* the listening replica */
    struct meta *b = unit_meta_open(root); /* the replica a push goes through */
    CHECK_INT(meta_notify(b, "Bad channel"), BERTH_EINVAL);
    CHECK_INT(meta_listen(a, "bad;"), BERTH_EINVAL);
    if (!meta_can_listen(a)) {
        /* SQLite: one process, nothing to tell */
        CHECK_INT(meta_begin(b), BERTH_OK);
        CHECK_INT(meta_notify(b, META_CHANNEL_REPLICATION), BERTH_OK);
        CHECK_INT(meta_commit(b), BERTH_OK);
        CHECK_INT(meta_listen(a, META_CHANNEL_REPLICATION), BERTH_EUNSUPPORTED);
        bool got = true;
        CHECK_INT(meta_wait_notify(a, 10, &got), BERTH_EUNSUPPORTED);
        CHECK(!got);
        meta_close(a);
        meta_close(b);
        return;
    }
    CHECK_INT(meta_listen(a, META_CHANNEL_REPLICATION), BERTH_OK);
    CHECK(!heard(a, 50));
    /* inside a write transaction: heard at commit */
    CHECK_INT(meta_begin(b), BERTH_OK);
    CHECK_INT(meta_notify(b, META_CHANNEL_REPLICATION), BERTH_OK);
    CHECK(!heard(a, 200));
    CHECK_INT(meta_commit(b), BERTH_OK);
    CHECK(heard(a, 5000));
    CHECK(!heard(a, 50)); /* taken */
    /* rolled back: never heard */
    CHECK_INT(meta_begin(b), BERTH_OK);
    CHECK_INT(meta_notify(b, META_CHANNEL_REPLICATION), BERTH_OK);
    meta_rollback(b);
    CHECK(!heard(a, 300));
    /* another channel is not heard; outside a transaction, at once */
    CHECK_INT(meta_notify(b, "berth_other"), BERTH_OK);
    CHECK(!heard(a, 200));
    CHECK_INT(meta_notify(b, META_CHANNEL_REPLICATION), BERTH_OK);
    CHECK_INT(meta_notify(b, META_CHANNEL_REPLICATION), BERTH_OK);
    CHECK(heard(a, 5000));
    /* a connection of its own hears its own notifications too */
    CHECK_INT(meta_listen(b, META_CHANNEL_REPLICATION), BERTH_OK);
    CHECK_INT(meta_notify(b, META_CHANNEL_REPLICATION), BERTH_OK);
    CHECK(heard(b, 5000));
    CHECK(heard(a, 5000));
    meta_close(a);
    meta_close(b);
}

int main(void)
{
    snprintf(root, sizeof(root), "%s", unit_tmpdir());
    RUN(test_notify);
    file_remove_tree(root);
    return unit_report("test_meta_notify");
}
