/* The PostgreSQL driver (storage/meta/postgres.c) where it must behave like
 * SQLite for the query files: ?N parameters (not inside quotes), blobs with
 * NUL bytes, a failed statement inside a transaction leaving it usable, one
 * writer at a time (a write outside a transaction waits for a write
 * transaction), a lock wait that times out reported as BERTH_EBUSY, a
 * dropped connection made again, and resources running out mapped as
 * SQLite's are (server out of memory ENOMEM, out of connection slots
 * EUNAVAILABLE, this process out of descriptors ENOFD), and a statement
 * the server does not answer within meta.postgres.query_timeout_ms given up
 * as EUNAVAILABLE.
 * Runs on the PostgreSQL pass (ctest label postgres, BERTH_TEST_PG_DSN);
 * the SQLite pass has nothing to test here and says so. */
#include "unit.h"
#include "unit_fds.h"
#include "unit_meta.h"

#include <pthread.h>

#include "common/timeutil.h"
#include "storage/meta/meta_int.h"

static char root[600];

static void test_parameters_and_columns(void)
{
    struct meta *m = unit_meta_new(root, sizeof(root));
    static const char sql[] = "SELECT '?1 and ?2', ?2, ?1, length(?1), ?3::bytea, ?4";
    struct meta_stmt *st = meta_prepare(m, sql);
    CHECK(st != NULL);
    const unsigned char blob[5] = {0, 1, 0xff, 0, 'x'};
    meta_bind_text(st, 1, "it's");
    meta_bind_int64(st, 2, -42);
    meta_bind_blob(st, 3, blob, sizeof(blob));
    meta_bind_null(st, 4);
    CHECK_INT(meta_step(st), META_STEP_ROW);
    CHECK_STR(meta_col_cstr(st, 0), "?1 and ?2");
    CHECK_INT(meta_col_int64(st, 1), -42);
    CHECK_STR(meta_col_cstr(st, 2), "it's");
    CHECK_INT(meta_col_int64(st, 3), 4);
    CHECK_INT(meta_col_bytes(st, 4), sizeof(blob));
    CHECK(memcmp(meta_col_blob(st, 4), blob, sizeof(blob)) == 0);
    CHECK(meta_col_is_null(st, 5));
    CHECK(meta_col_cstr(st, 5) == NULL);
    CHECK_INT(meta_step(st), META_STEP_DONE);
    meta_done(st);

    /* booleans read as 1 and 0, as SQLite's comparisons give */
    static const char cmp[] = "SELECT ?1 > 1, ?1 < 1";
    st = meta_prepare(m, cmp);
    meta_bind_int64(st, 1, 5);
    CHECK_INT(meta_step(st), META_STEP_ROW);
    CHECK_INT(meta_col_int(st, 0), 1);
    CHECK_INT(meta_col_int(st, 1), 0);
    meta_done(st);
    unit_meta_remove(m, root);
}

/* A uniqueness violation inside a write transaction is BERTH_EEXIST, and
 * the transaction goes on: what it wrote before and after commits. */
static void test_failure_inside_transaction(void)
{
    struct meta *m = unit_meta_new(root, sizeof(root));
    struct meta_repo r;
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_repo_create(m, "one", 1000, &r), BERTH_OK);
    CHECK_INT(meta_repo_create(m, "one", 1000, &r), BERTH_EEXIST);
    CHECK_INT(meta_repo_create(m, "two", 1000, &r), BERTH_OK);
    CHECK_INT(meta_commit(m), BERTH_OK);
    CHECK_INT(meta_repo_get(m, "one", &r), BERTH_OK);
    CHECK_INT(meta_repo_get(m, "two", &r), BERTH_OK);
    /* ids come back from RETURNING: a new row's id is the row's */
    int64_t id = r.id;
    CHECK_INT(meta_repo_create(m, "three", 1000, &r), BERTH_OK);
    CHECK(r.id > id);
    CHECK_STR(r.name, "three");
    unit_meta_remove(m, root);
}

struct writer {
    const char *root;
    enum berth_err rc;
    int done;
    pthread_mutex_t lock;
};

static void *write_outside_transaction(void *arg)
{
    struct writer *w = arg;
    struct meta *m = unit_meta_open(w->root);
    struct meta_repo r;
    enum berth_err rc = meta_repo_create(m, "later", 2000, &r);
    meta_close(m);
    pthread_mutex_lock(&w->lock);
    w->rc = rc;
    w->done = 1;
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* Waiters on an advisory lock, seen from another connection. */
static int64_t lock_waiters(struct meta *observer)
{
    static const char sql[] = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                              "AND NOT granted";
    struct meta_stmt *st = meta_prepare(observer, sql);
    int64_t n = -1;
    if (meta_step(st) == META_STEP_ROW) {
        n = meta_col_int64(st, 0);
    }
    meta_done(st);
    return n;
}

/* While a write transaction is open, a write on another connection outside
 * any transaction waits for it (SQLite's single writer), so what the
 * transaction checked stays true until it commits. */
static void test_single_writer(void)
{
    struct meta *m = unit_meta_new(root, sizeof(root));
    struct meta *observer = unit_meta_open(root);
    struct meta_repo r;
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_repo_get(m, "later", &r), BERTH_ENOTFOUND);

    struct writer w = {.root = root};
    pthread_mutex_init(&w.lock, NULL);
    pthread_t t;
    CHECK_INT(pthread_create(&t, NULL, write_outside_transaction, &w), 0);
    /* the event: the other connection waits on the lock (or finished,
     * which is the failure this test exists for) */
    for (;;) {
        pthread_mutex_lock(&w.lock);
        int done = w.done;
        pthread_mutex_unlock(&w.lock);
        if (done || lock_waiters(observer) >= 1) {
            break;
        }
        sched_yield();
    }
    pthread_mutex_lock(&w.lock);
    CHECK_INT(w.done, 0);
    pthread_mutex_unlock(&w.lock);
    /* still true inside the transaction */
    CHECK_INT(meta_repo_get(m, "later", &r), BERTH_ENOTFOUND);
    CHECK_INT(meta_commit(m), BERTH_OK);
    CHECK_INT(pthread_join(t, NULL), 0);
    CHECK_INT(w.done, 1);
    CHECK_INT(w.rc, BERTH_OK);
    CHECK_INT(meta_repo_get(m, "later", &r), BERTH_OK);
    pthread_mutex_destroy(&w.lock);
    meta_close(observer);
    unit_meta_remove(m, root);
}

/* A writer that cannot get the lock within lock_timeout gets BERTH_EBUSY
 * (SQLite's busy timeout), for a transaction and for a single write. */
static void test_busy(void)
{
    struct meta *m = unit_meta_new(root, sizeof(root));
    struct meta *other = unit_meta_open(root);
    CHECK_INT(other->drv->exec(other->conn, "SET lock_timeout = '50ms'", "test"), BERTH_OK);
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_begin(other), BERTH_EBUSY);
    struct meta_repo r;
    CHECK_INT(meta_repo_create(other, "blocked", 1000, &r), BERTH_EBUSY);
    /* reads do not wait */
    CHECK_INT(meta_repo_get(other, "blocked", &r), BERTH_ENOTFOUND);
    /* a write inside a read transaction needs the lock too */
    CHECK_INT(meta_begin_read(other), BERTH_OK);
    CHECK_INT(meta_repo_get(other, "blocked", &r), BERTH_ENOTFOUND);
    CHECK_INT(meta_repo_create(other, "blocked", 1000, &r), BERTH_EBUSY);
    meta_rollback(other);
    meta_rollback(m);
    CHECK_INT(meta_repo_create(other, "blocked", 1000, &r), BERTH_OK);
    meta_close(other);
    unit_meta_remove(m, root);
}

/* A connection the server dropped (a restart, a terminated backend) is made
 * again by the next statement or transaction, without an error. */
static void test_reconnect(void)
{
    struct meta *m = unit_meta_new(root, sizeof(root));
    struct meta *observer = unit_meta_open(root);
    static const char pid_sql[] = "SELECT pg_backend_pid()";
    static const char kill_sql[] = "SELECT pg_terminate_backend(?1::int)";
    struct meta_repo r;
    CHECK_INT(meta_repo_create(m, "before", 1000, &r), BERTH_OK);
    for (int round = 0; round < 3; round++) {
        struct meta_stmt *st = meta_prepare(m, pid_sql);
        CHECK_INT(meta_step(st), META_STEP_ROW);
        int64_t pid = meta_col_int64(st, 0);
        meta_done(st);
        st = meta_prepare(observer, kill_sql);
        meta_bind_int64(st, 1, pid);
        CHECK_INT(meta_step(st), META_STEP_ROW);
        CHECK_INT(meta_col_int(st, 0), 1);
        meta_done(st);
        /* each round, a different first use of the dropped connection */
        if (round == 0) {
            CHECK_INT(meta_repo_get(m, "before", &r), BERTH_OK);
        } else if (round == 1) {
            CHECK_INT(meta_repo_create(m, "after", 1000, &r), BERTH_OK);
        } else {
            CHECK_INT(meta_begin(m), BERTH_OK);
            CHECK_INT(meta_repo_create(m, "inside", 1000, &r), BERTH_OK);
            CHECK_INT(meta_commit(m), BERTH_OK);
        }
    }
    CHECK_INT(meta_repo_get(observer, "after", &r), BERTH_OK);
    CHECK_INT(meta_repo_get(observer, "inside", &r), BERTH_OK);
    meta_close(observer);
    unit_meta_remove(m, root);
}

/* A connection lost inside a write transaction: the statement that finds it
 * gone is BERTH_EUNAVAILABLE (answered 503), PostgreSQL has rolled back what
 * the transaction wrote, and the next statement connects again. */
static void test_lost_in_transaction(void)
{
    struct meta *m = unit_meta_new(root, sizeof(root));
    struct meta *observer = unit_meta_open(root);
    struct meta_repo r;
    struct meta_stmt *st = meta_prepare(m, "SELECT pg_backend_pid()");
    CHECK_INT(meta_step(st), META_STEP_ROW);
    int64_t pid = meta_col_int64(st, 0);
    meta_done(st);
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_repo_create(m, "half", 1000, &r), BERTH_OK);
    /* with a timeout, pg_terminate_backend waits until the backend is gone */
    st = meta_prepare(observer, "SELECT pg_terminate_backend(?1::int, 30000)");
    meta_bind_int64(st, 1, pid);
    CHECK_INT(meta_step(st), META_STEP_ROW);
    CHECK_INT(meta_col_int(st, 0), 1);
    meta_done(st);
    CHECK_INT(meta_repo_create(m, "second", 1000, &r), BERTH_EUNAVAILABLE);
    meta_rollback(m);
    CHECK_INT(meta_repo_get(observer, "half", &r), BERTH_ENOTFOUND);
    CHECK_INT(meta_repo_create(m, "after", 1000, &r), BERTH_OK);
    CHECK_INT(meta_repo_get(observer, "after", &r), BERTH_OK);
    meta_close(observer);
    unit_meta_remove(m, root);
}

/* A statement the server does not answer within the bound
 * (meta.postgres.query_timeout_ms) fails with BERTH_EUNAVAILABLE when the
 * bound has passed, not when the statement would end, alone or inside a
 * transaction; the connection is made again for the next statement. */
static void test_query_timeout(void)
{
    struct meta *m = unit_meta_new(root, sizeof(root));
    struct meta_repo r;
    CHECK_INT(meta_repo_create(m, "kept", 1000, &r), BERTH_OK);
    meta_postgres_query_timeout(300);
    int64_t t0 = time_mono_ns();
    CHECK_INT(m->drv->exec(m->conn, "SELECT pg_sleep(60)", "test"), BERTH_EUNAVAILABLE);
    /* far below the minute the statement sleeps, whatever the load */
    CHECK((time_mono_ns() - t0) / 1000000 < 30000);
    CHECK_INT(meta_repo_get(m, "kept", &r), BERTH_OK);

    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_repo_create(m, "half", 1000, &r), BERTH_OK);
    struct meta_stmt *st = meta_prepare(m, "SELECT pg_sleep(60)");
    t0 = time_mono_ns();
    CHECK_INT(meta_step(st), META_STEP_ERROR);
    CHECK_INT(meta_fail(m, "test"), BERTH_EUNAVAILABLE);
    CHECK((time_mono_ns() - t0) / 1000000 < 30000);
    meta_done(st);
    meta_rollback(m);
    meta_postgres_query_timeout(META_PG_QUERY_TIMEOUT_DEFAULT_MS);
    CHECK_INT(meta_repo_get(m, "half", &r), BERTH_ENOTFOUND);
    CHECK_INT(meta_repo_get(m, "kept", &r), BERTH_OK);
    unit_meta_remove(m, root);
}

/* The server running out, as a statement meets it: a plpgsql function
 * raises the SQLSTATE the server's own failure would carry (the real
 * server, the real error message), in a lone read, in a lone write, and
 * inside a transaction (which stays usable). */
static void test_server_out_of_resources(void)
{
    struct meta *m = unit_meta_new(root, sizeof(root));
    CHECK_INT(m->drv->exec(m->conn,
                           "CREATE FUNCTION raise_state(code text) RETURNS bigint "
                           "LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'injected %', code "
                           "USING ERRCODE = code; RETURN 0; END$$",
                           "test"),
              BERTH_OK);
    static const struct {
        const char *state;
        enum berth_err want;
    } cases[] = {
        {"53200", BERTH_ENOMEM},       /* out_of_memory (also "out of shared memory") */
        {"53300", BERTH_EUNAVAILABLE}, /* too_many_connections */
        {"53000", BERTH_EUNAVAILABLE}, /* insufficient_resources (the server's EMFILE) */
        {"53100", BERTH_EDB},          /* disk_full: as SQLITE_FULL */
        {"53400", BERTH_EDB},          /* configuration_limit_exceeded */
        {"40001", BERTH_EBUSY},        /* serialization_failure, as before */
        {"22012", BERTH_EDB},          /* division_by_zero: anything else */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct meta_stmt *st = meta_prepare(m, "SELECT raise_state(?1)");
        meta_bind_text(st, 1, cases[i].state);
        CHECK_INT(meta_step(st), META_STEP_ERROR);
        CHECK_INT(meta_fail(m, "test"), cases[i].want);
        meta_done(st);
    }
    /* a statement without parameters and a write inside a transaction meet
     * it the same way */
    CHECK_INT(m->drv->exec(m->conn, "DO $$BEGIN PERFORM raise_state('53200'); END$$", "test"),
              BERTH_ENOMEM);
    struct meta_repo r;
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_repo_create(m, "kept", 1000, &r), BERTH_OK);
    struct meta_stmt *st = meta_prepare(m, "UPDATE repositories SET name = name "
                                           "WHERE raise_state(?1) = 0");
    meta_bind_text(st, 1, "53200");
    CHECK_INT(meta_step(st), META_STEP_ERROR);
    CHECK_INT(meta_fail(m, "test"), BERTH_ENOMEM);
    meta_done(st);
    CHECK_INT(meta_commit(m), BERTH_OK);
    CHECK_INT(meta_repo_get(m, "kept", &r), BERTH_OK);
    unit_meta_remove(m, root);
}

/* A connection the server refuses for want of slots (a role's CONNECTION
 * LIMIT gives the real 53300 without using up the whole server) is
 * unavailable, retry later; this process out of descriptors when it
 * connects is BERTH_ENOFD (a real EMFILE under a lowered soft limit), and
 * both open once the resource is back. */
static void test_connect_out_of_resources(void)
{
    const char *dsn = unit_pg_dsn();
    PGconn *admin = PQconnectdb(dsn);
    CHECK(PQstatus(admin) == CONNECTION_OK);
    PQclear(PQexec(admin, "SET client_min_messages = warning; DROP ROLE IF EXISTS berth_limited"));
    PGresult *res = PQexec(admin, "CREATE ROLE berth_limited LOGIN CONNECTION LIMIT 1");
    CHECK(PQresultStatus(res) == PGRES_COMMAND_OK);
    PQclear(res);

    char limited[1200];
    snprintf(limited, sizeof(limited), "%s user=berth_limited", dsn);
    PGconn *holder = PQconnectdb(limited);
    CHECK(PQstatus(holder) == CONNECTION_OK);
    struct meta_conn *c = NULL;
    CHECK_INT(meta_postgres_driver.open(limited, false, &c), BERTH_EUNAVAILABLE);
    CHECK(c == NULL);
    PQfinish(holder);
    /* the slot is free once the holder's backend has gone */
    for (int i = 0; i < 600 && meta_postgres_driver.open(limited, false, &c) != BERTH_OK; i++) {
        usleep(50 * 1000);
    }
    CHECK(c != NULL);
    meta_postgres_driver.close(c);
    c = NULL;

    CHECK(unit_fds_take(0));
    enum berth_err rc = meta_postgres_driver.open(dsn, false, &c);
    unit_fds_give_back();
    CHECK_INT(rc, BERTH_ENOFD);
    CHECK(c == NULL);
    CHECK_INT(meta_postgres_driver.open(dsn, false, &c), BERTH_OK);
    meta_postgres_driver.close(c);

    res = PQexec(admin, "DROP ROLE berth_limited");
    CHECK(PQresultStatus(res) == PGRES_COMMAND_OK);
    PQclear(res);
    PQfinish(admin);
}

int main(void)
{
    if (unit_pg_dsn() == NULL) {
        printf("test_meta_postgres: SQLite pass, nothing to run (see ctest -L postgres)\n");
        return 0;
    }
    RUN(test_parameters_and_columns);
    RUN(test_failure_inside_transaction);
    RUN(test_single_writer);
    RUN(test_busy);
    RUN(test_reconnect);
    RUN(test_lost_in_transaction);
    RUN(test_server_out_of_resources);
    RUN(test_connect_out_of_resources);
    RUN(test_query_timeout);
    return unit_report("test_meta_postgres");
}
