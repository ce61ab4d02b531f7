/* Unit tests for storage/meta/sqlite.c: the writer queue (this process's
 * writers of one database take SQLite's write lock in the order they came,
 * each woken as the one before it finishes) and group commit (one sync of
 * the log makes every commit made while the previous sync ran durable).
 * Always on SQLite, also in the PostgreSQL pass. Worker threads record
 * what they saw; only the main thread checks. */
#include "unit.h"
#include "unit_fds.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "storage/meta/meta.h"
#include "storage/meta/meta_int.h"

static char root[512];
static char db_path[600];

/* A new database: root a new temporary directory, db_path its berth.db,
 * opened with sync_full. NULL after a failed check when it cannot be. */
static struct meta *open_new(bool sync_full)
{
    snprintf(root, sizeof(root), "%s", unit_tmpdir());
    snprintf(db_path, sizeof(db_path), "%s/berth.db", root);
    struct meta *m = NULL;
    CHECK_INT(meta_open(db_path, sync_full, &m), BERTH_OK);
    return m;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Wait (up to a minute: the machine may be busy) until n writers queue on
 * m's database; false if they never did. */
static bool wait_queued(struct meta *m, int64_t n)
{
    for (int i = 0; i < 60000; i++) {
        if (meta_sqlite_writers_waiting(m, NULL) == n) {
            return true;
        }
        sleep_ms(1);
    }
    return false;
}

struct writer {
    int id;
    bool autocommit; /* one write statement outside a transaction */
    int64_t repo_id; /* of the row it wrote: rowids grow in write order */
    enum berth_err rc;
};

/* Open a connection of its own and write one repository row. */
static void *write_once(void *arg)
{
    struct writer *w = arg;
    struct meta *m = NULL;
    w->rc = meta_open(db_path, true, &m);
    if (w->rc != BERTH_OK) {
        return NULL;
    }
    char name[32];
    snprintf(name, sizeof(name), "writer-%d", w->id);
    struct meta_repo r;
    if (w->autocommit) {
        w->rc = meta_repo_create(m, name, 1000, &r);
    } else {
        w->rc = meta_begin(m);
        if (w->rc == BERTH_OK) {
            w->rc = meta_repo_create(m, name, 1000, &r);
        }
    }
    w->repo_id = r.id;
    if (!w->autocommit && w->rc == BERTH_OK) {
        w->rc = meta_commit(m);
    }
    meta_close(m);
    return NULL;
}

/* Writers that find the lock held queue in arrival order: transactions
 * and single write statements alike, and all get in once it is free. */
static void test_writers_queue_in_order(void)
{
    struct meta *holder = open_new(true);
    if (holder == NULL) {
        return;
    }
    CHECK_INT(meta_sqlite_writers_waiting(holder, NULL), 0);
    CHECK_INT(meta_begin(holder), BERTH_OK);
    struct writer w[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct writer){.id = i + 1, .autocommit = i % 2 == 1};
        CHECK_INT(pthread_create(&th[i], NULL, write_once, &w[i]), 0);
        CHECK(wait_queued(holder, i + 1));
    }
    /* the holder writes last, and still first: nobody got in meanwhile */
    struct meta_repo r;
    CHECK_INT(meta_repo_create(holder, "holder", 1000, &r), BERTH_OK);
    CHECK_INT(meta_commit(holder), BERTH_OK);
    int64_t last = r.id;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(w[i].rc, BERTH_OK);
        CHECK(w[i].repo_id > last); /* in the order they queued */
        last = w[i].repo_id;
    }
    CHECK_INT(meta_sqlite_writers_waiting(holder, NULL), 0);
    int64_t count = 0;
    CHECK_INT(meta_repo_count(holder, &count), BERTH_OK);
    CHECK_INT(count, 5);
    meta_close(holder);
    file_remove_tree(root);
}

/* A rolled-back transaction, a failed write statement and a closed
 * connection each let the next writer in. */
static void test_queue_released_on_every_end(void)
{
    struct meta *a = open_new(true), *b = NULL;
    CHECK_INT(meta_open(db_path, true, &b), BERTH_OK);
    if (a == NULL || b == NULL) {
        return;
    }
    struct meta_repo r;
    bool held = true;
    CHECK_INT(meta_begin(a), BERTH_OK);
    CHECK_INT(meta_sqlite_writers_waiting(b, &held), 0);
    CHECK(held);
    meta_rollback(a);
    CHECK_INT(meta_sqlite_writers_waiting(b, &held), 0);
    CHECK(!held);
    CHECK_INT(meta_repo_create(a, "one", 1000, &r), BERTH_OK);
    CHECK_INT(meta_sqlite_writers_waiting(b, &held), 0);
    CHECK(!held);
    CHECK_INT(meta_repo_create(a, "one", 1000, &r), BERTH_EEXIST); /* a failed write */
    CHECK_INT(meta_sqlite_writers_waiting(b, &held), 0);
    CHECK(!held);
    CHECK_INT(meta_begin(b), BERTH_OK);
    CHECK_INT(meta_repo_create(b, "two", 1000, &r), BERTH_OK);
    CHECK_INT(meta_commit(b), BERTH_OK);
    CHECK_INT(meta_sqlite_writers_waiting(b, &held), 0);
    CHECK(!held);
    CHECK_INT(meta_begin(a), BERTH_OK);
    meta_close(a); /* closed inside its transaction */
    CHECK_INT(meta_sqlite_writers_waiting(b, &held), 0);
    CHECK(!held);
    /* reads never queue */
    CHECK_INT(meta_begin_read(b), BERTH_OK);
    CHECK_INT(meta_sqlite_writers_waiting(b, &held), 0);
    CHECK(!held);
    CHECK_INT(meta_commit(b), BERTH_OK);
    meta_close(b);
    file_remove_tree(root);
}

/* ---- group commit ---- */

#define GROUP_WRITERS 6

static struct meta *group_watch; /* the main thread's connection */
static _Atomic int group_hook_calls;
static uint64_t group_base; /* commits before the test's */

static uint64_t commits_now(void)
{
    uint64_t commits, syncs;
    meta_sqlite_group_stats(group_watch, &commits, &syncs);
    return commits;
}

/* The first sync waits until every other writer has committed (and is
 * waiting to be durable) before it goes to the disk. */
static int hold_first_sync(void)
{
    if (++group_hook_calls == 1) {
        for (int i = 0; i < 60000 && commits_now() < group_base + 1 + GROUP_WRITERS; i++) {
            sleep_ms(1);
        }
    }
    return 0;
}

struct committer {
    int id;
    bool autocommit;
    enum berth_err rc;
    uint64_t syncs_after; /* syncs done when its commit returned */
};

static void *commit_once(void *arg)
{
    struct committer *w = arg;
    struct meta *m = NULL;
    w->rc = meta_open(db_path, true, &m);
    if (w->rc != BERTH_OK) {
        return NULL;
    }
    char name[32];
    snprintf(name, sizeof(name), "committer-%d", w->id);
    struct meta_repo r;
    if (w->autocommit) {
        w->rc = meta_repo_create(m, name, 1000, &r);
    } else {
        w->rc = meta_begin(m);
        if (w->rc == BERTH_OK) {
            w->rc = meta_repo_create(m, name, 1000, &r);
        }
        if (w->rc == BERTH_OK) {
            w->rc = meta_commit(m);
        }
    }
    uint64_t commits;
    meta_sqlite_group_stats(m, &commits, &w->syncs_after);
    meta_close(m);
    return NULL;
}

/* Writers that commit while a sync is under way are made durable by one
 * more sync between them, and none returns before it. */
static void test_group_commit_one_sync_for_those_waiting(void)
{
    group_watch = open_new(true);
    if (group_watch == NULL) {
        return;
    }
    uint64_t commits0, syncs0, commits, syncs;
    meta_sqlite_group_stats(group_watch, &commits0, &syncs0);
    CHECK(commits0 > 0); /* the migrations' commit */
    CHECK_INT(syncs0, commits0);
    group_hook_calls = 0;
    group_base = commits0;
    meta_sqlite_sync_hook = hold_first_sync;
    /* the first commit, whose sync waits for the others */
    struct committer first = {.id = 0};
    pthread_t first_th;
    CHECK_INT(pthread_create(&first_th, NULL, commit_once, &first), 0);
    for (int i = 0; i < 60000 && group_hook_calls == 0; i++) {
        sleep_ms(1);
    }
    CHECK_INT(group_hook_calls, 1);
    struct committer w[GROUP_WRITERS];
    pthread_t th[GROUP_WRITERS];
    for (int i = 0; i < GROUP_WRITERS; i++) {
        w[i] = (struct committer){.id = i + 1, .autocommit = i % 2 == 1};
        CHECK_INT(pthread_create(&th[i], NULL, commit_once, &w[i]), 0);
    }
    pthread_join(first_th, NULL);
    CHECK_INT(first.rc, BERTH_OK);
    for (int i = 0; i < GROUP_WRITERS; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(w[i].rc, BERTH_OK);
        /* returned only after the sync that covered it */
        CHECK_INT(w[i].syncs_after, syncs0 + 2);
    }
    meta_sqlite_sync_hook = NULL;
    meta_sqlite_group_stats(group_watch, &commits, &syncs);
    CHECK_INT(commits, commits0 + 1 + GROUP_WRITERS);
    CHECK_INT(syncs, syncs0 + 2); /* not 1 + GROUP_WRITERS */
    CHECK_INT(group_hook_calls, 2);
    int64_t count = 0;
    CHECK_INT(meta_repo_count(group_watch, &count), BERTH_OK);
    CHECK_INT(count, 1 + GROUP_WRITERS);
    meta_close(group_watch);
    group_watch = NULL;
    file_remove_tree(root);
}

static int fail_sync(void)
{
    return -1;
}

/* A failed sync fails its commit and every later one (the kernel may have
 * dropped what it could not write); reads go on. */
static void test_failed_sync_is_final(void)
{
    struct meta *m = open_new(true);
    if (m == NULL) {
        return;
    }
    struct meta_repo r;
    CHECK_INT(meta_repo_create(m, "before", 1000, &r), BERTH_OK);
    CHECK(!meta_durability_lost(m));
    meta_sqlite_sync_hook = fail_sync;
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_repo_create(m, "failed", 1000, &r), BERTH_OK);
    CHECK_INT(meta_commit(m), BERTH_EIO);
    CHECK(!meta_in_transaction(m));
    CHECK(meta_durability_lost(m)); /* what /readyz reports */
    meta_sqlite_sync_hook = NULL;
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_repo_create(m, "after", 1000, &r), BERTH_OK);
    CHECK_INT(meta_commit(m), BERTH_EIO);
    CHECK_INT(meta_repo_create(m, "after-autocommit", 1000, &r), BERTH_EIO);
    CHECK_INT(meta_repo_get(m, "before", &r), BERTH_OK);
    CHECK(meta_durability_lost(m));
    meta_close(m);
    file_remove_tree(root);
}

/* The injected fault (BERTH_TEST_FAULTS=wal_sync) fails syncs like the
 * hook; without sync_full there is no sync to fail. */
static void test_wal_sync_fault(void)
{
    struct meta *m = open_new(true);
    if (m == NULL) {
        return;
    }
    struct meta_repo r;
    meta_fault_wal_sync(true);
    CHECK_INT(meta_repo_create(m, "failed", 1000, &r), BERTH_EIO);
    meta_fault_wal_sync(false);
    CHECK(meta_durability_lost(m));
    meta_close(m);
    file_remove_tree(root);

    m = open_new(false);
    if (m == NULL) {
        return;
    }
    meta_fault_wal_sync(true);
    CHECK_INT(meta_repo_create(m, "fine", 1000, &r), BERTH_OK);
    meta_fault_wal_sync(false);
    CHECK(!meta_durability_lost(m));
    meta_close(m);
    file_remove_tree(root);
}

/* An upload session's row is written without waiting for a sync of its
 * own (meta_upload_insert); the next write that waits syncs it too. After
 * a failed sync it fails like every write. */
static void test_upload_insert_does_not_wait(void)
{
    struct meta *m = open_new(true);
    if (m == NULL) {
        return;
    }
    struct meta_repo r;
    CHECK_INT(meta_repo_create(m, "up", 1000, &r), BERTH_OK);
    uint64_t commits0, syncs0, commits, syncs;
    meta_sqlite_group_stats(m, &commits0, &syncs0);
    struct meta_upload u = {.repo_id = r.id, .alg = DIGEST_SHA256, .created_at = 1000};
    snprintf(u.uuid, sizeof(u.uuid), "%s", "00000000-0000-4000-8000-000000000001");
    CHECK_INT(meta_upload_insert(m, &u), BERTH_OK);
    meta_sqlite_group_stats(m, &commits, &syncs);
    CHECK_INT(syncs, syncs0); /* no sync waited for */
    struct meta_upload got;
    CHECK_INT(meta_upload_get(m, u.uuid, &got), BERTH_OK);
    /* only that one statement: the next write waits again */
    CHECK_INT(meta_repo_create(m, "after", 1000, &r), BERTH_OK);
    meta_sqlite_group_stats(m, &commits, &syncs);
    CHECK_INT(syncs, syncs0 + 1);
    CHECK_INT(commits, commits0 + 1);
    /* after a failed sync, a session insert fails too */
    meta_fault_wal_sync(true);
    CHECK_INT(meta_repo_create(m, "failed", 1000, &r), BERTH_EIO);
    meta_fault_wal_sync(false);
    snprintf(u.uuid, sizeof(u.uuid), "%s", "00000000-0000-4000-8000-000000000002");
    CHECK(meta_upload_insert(m, &u) != BERTH_OK);
    meta_close(m);
    file_remove_tree(root);
}

/* A repository made by meta_repo_ensure (first push) does not wait for a
 * sync of its own either; meta_repo_create (an explicit creation) does,
 * and so does the next write after it. In a transaction the commit syncs. */
static void test_repo_ensure_does_not_wait(void)
{
    struct meta *m = open_new(true);
    if (m == NULL) {
        return;
    }
    struct meta_repo r, again;
    uint64_t commits0, syncs0, commits, syncs;
    meta_sqlite_group_stats(m, &commits0, &syncs0);
    CHECK_INT(meta_repo_ensure(m, "pushed/first", 1000, &r), BERTH_OK);
    meta_sqlite_group_stats(m, &commits, &syncs);
    CHECK_INT(syncs, syncs0); /* no sync waited for */
    CHECK_INT(meta_repo_get(m, "pushed/first", &again), BERTH_OK);
    CHECK_INT(again.id, r.id);
    /* there already: nothing written */
    CHECK_INT(meta_repo_ensure(m, "pushed/first", 1000, &again), BERTH_OK);
    CHECK_INT(again.id, r.id);
    /* the next write waits, and its sync covers the repository's row */
    CHECK_INT(meta_repo_create(m, "explicit", 1000, &r), BERTH_OK);
    meta_sqlite_group_stats(m, &commits, &syncs);
    CHECK_INT(syncs, syncs0 + 1);
    /* inside a transaction: the commit's sync */
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_repo_ensure(m, "pushed/in-txn", 1000, &r), BERTH_OK);
    CHECK_INT(meta_commit(m), BERTH_OK);
    meta_sqlite_group_stats(m, &commits, &syncs);
    CHECK_INT(syncs, syncs0 + 2);
    /* after a failed sync it fails like any write */
    meta_fault_wal_sync(true);
    CHECK_INT(meta_repo_create(m, "failed", 1000, &r), BERTH_EIO);
    meta_fault_wal_sync(false);
    CHECK(meta_repo_ensure(m, "pushed/after-failure", 1000, &r) != BERTH_OK);
    meta_close(m);
    file_remove_tree(root);
}

/* Without sync_full nothing is synced per commit. */
static void test_no_group_sync_without_sync_full(void)
{
    struct meta *m = open_new(false);
    if (m == NULL) {
        return;
    }
    struct meta_repo r;
    CHECK_INT(meta_repo_create(m, "x", 1000, &r), BERTH_OK);
    uint64_t commits, syncs;
    meta_sqlite_group_stats(m, &commits, &syncs);
    CHECK_INT(commits, 0);
    CHECK_INT(syncs, 0);
    meta_close(m);
    file_remove_tree(root);
}

/* Without a descriptor for the database, its log or its shared memory
 * (EMFILE), a connection fails with BERTH_ENOFD, the transient failure
 * the APIs answer 503, not BERTH_EDB; once descriptors are free it opens.
 * The fault hook (meta_fault_exhausted) fails an open connection's
 * statements the same way, or as out of memory, while its file exists. */
static void test_no_descriptor_is_enofd(void)
{
    struct meta *m = open_new(true);
    struct meta_repo r;
    if (m == NULL) {
        return;
    }
    CHECK_INT(meta_repo_create(m, "team/app", 1000, &r), BERTH_OK);
    /* none free: the database file itself; one: its write-ahead log (the
     * shared memory's descriptor is shared with m) */
    for (int spare = 0; spare <= 1; spare++) {
        struct meta *other = NULL;
        enum berth_err rc = BERTH_OK;
        if (!unit_fds_take(spare)) {
            unit_fds_give_back();
            CHECK(!"cannot take the descriptors");
            break;
        }
        rc = meta_open(db_path, true, &other);
        if (rc == BERTH_OK) {
            rc = meta_repo_get(other, "team/app", &r);
        }
        unit_fds_give_back();
        if (rc != BERTH_ENOFD) {
            fprintf(stderr, "with %d descriptors spare:\n", spare);
        }
        CHECK_INT(rc, BERTH_ENOFD);
        meta_close(other);
    }
    /* the connection opened before still works without a new descriptor */
    CHECK(unit_fds_take(0));
    CHECK_INT(meta_repo_get(m, "team/app", &r), BERTH_OK);
    unit_fds_give_back();

    char flag[700];
    snprintf(flag, sizeof(flag), "%s/exhausted", root);
    meta_fault_exhausted(META_FAULT_EMFILE, flag);
    CHECK_INT(meta_repo_get(m, "team/app", &r), BERTH_OK); /* no file: no fault */
    FILE *f = fopen(flag, "w");
    CHECK(f != NULL);
    if (f != NULL) {
        fclose(f);
    }
    CHECK_INT(meta_repo_get(m, "team/app", &r), BERTH_ENOFD);
    CHECK_INT(meta_repo_create(m, "team/b", 1000, &r), BERTH_ENOFD);
    meta_fault_exhausted(META_FAULT_NOMEM, flag);
    CHECK_INT(meta_repo_get(m, "team/app", &r), BERTH_ENOMEM);
    unlink(flag);
    CHECK_INT(meta_repo_get(m, "team/app", &r), BERTH_OK);
    CHECK_INT(meta_repo_create(m, "team/b", 1000, &r), BERTH_OK);
    meta_fault_exhausted(META_FAULT_NONE, NULL);
    meta_close(m);
    file_remove_tree(root);
}

int main(void)
{
    RUN(test_writers_queue_in_order);
    RUN(test_queue_released_on_every_end);
    RUN(test_group_commit_one_sync_for_those_waiting);
    RUN(test_failed_sync_is_final);
    RUN(test_wal_sync_fault);
    RUN(test_upload_insert_does_not_wait);
    RUN(test_repo_ensure_does_not_wait);
    RUN(test_no_group_sync_without_sync_full);
    RUN(test_no_descriptor_is_enofd);
    return unit_report("test_sqlite");
}
