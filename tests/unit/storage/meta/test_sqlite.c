/* Unit tests for storage/meta/sqlite.c: the writer queue (this process's
 * writers of one database take SQLite's write lock in the order they came,
 * each woken as the one before it finishes). Always on SQLite, also in the
 * PostgreSQL pass. Worker threads record what they saw; only the main
 * thread checks. */
#include "unit.h"

#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "storage/meta/meta.h"
#include "storage/meta/meta_int.h"

static char root[512];
static char db_path[600];

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
    snprintf(root, sizeof(root), "%s", unit_tmpdir());
    snprintf(db_path, sizeof(db_path), "%s/berth.db", root);
    struct meta *holder = NULL;
    CHECK_INT(meta_open(db_path, true, &holder), BERTH_OK);
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
    snprintf(root, sizeof(root), "%s", unit_tmpdir());
    snprintf(db_path, sizeof(db_path), "%s/berth.db", root);
    struct meta *a = NULL, *b = NULL;
    CHECK_INT(meta_open(db_path, true, &a), BERTH_OK);
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

int main(void)
{
    RUN(test_writers_queue_in_order);
    RUN(test_queue_released_on_every_end);
    return unit_report("test_sqlite");
}
