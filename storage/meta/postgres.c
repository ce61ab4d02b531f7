/*
 * The PostgreSQL driver of the metadata module (libpq): one server
 * connection per struct meta_conn, the only file of storage/meta that
 * includes <libpq-fe.h>. A connection is used by one thread at a time.
 *
 * How it keeps SQLite's rules, which the query files rely on:
 * - One writer at a time. begin_write takes a transaction-scoped advisory
 *   lock (BEGIN IMMEDIATE's write lock), a write statement run outside
 *   a transaction runs in a transaction of its own that takes it too, and
 *   a write inside a read transaction takes it first, so
 *   everything a write transaction checks stays true until it commits.
 *   Waiting for it is bounded by lock_timeout (SQLite's busy timeout), and
 *   a wait that times out is BERTH_EBUSY.
 * - A lost server (a restart, a dropped link, a server still starting or
 *   shutting down) is BERTH_EUNAVAILABLE, which the APIs answer with 503:
 *   the transaction it interrupted is rolled back by PostgreSQL, and the
 *   next BEGIN or lone read on the connection connects again (PQreset).
 * - Resources running out map as SQLite's do (state_err, connect_err): the
 *   server out of memory (SQLSTATE 53200) or libpq out of memory is
 *   BERTH_ENOMEM, this process out of descriptors when it connects
 *   BERTH_ENOFD, the server out of connection slots (53300) or of other
 *   resources (53000, its own EMFILE/ENFILE) BERTH_EUNAVAILABLE: all
 *   answered 503 with Retry-After on /v2. A refused connection's SQLSTATE
 *   is read from its message, made verbose while connecting.
 * - A server that does not answer (hung, SIGSTOPped, its network
 *   black-holed) cannot hold a request: every statement's wait for its
 *   answer is bounded by meta.postgres.query_timeout_ms (the connection is
 *   then dropped, so the server ends the statement when it notices, and
 *   the request gets BERTH_EUNAVAILABLE), a connection attempt by the
 *   connection string's connect_timeout or else that bound, and berth's
 *   connections have TCP keepalives unless the connection string says
 *   otherwise. Sockets are non-blocking; the waits poll in 100 ms slices
 *   so that a stop (meta_stopping) ends them too.
 * - A failed statement leaves its transaction usable: writes inside a
 *   transaction run under a savepoint that a failure rolls back to.
 * - Statements use ?N parameters, rewritten to $N; parameters are typed by
 *   what was bound (int8, text, bytea; NULL untyped), results are read in
 *   text form (bytea decoded, booleans as 1/0).
 * - The schema version is the one row of the table berth_schema.
 */
#include "meta_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "common/log.h"
#include "common/timeutil.h"

/* The advisory lock key of the single writer ("berth" in ASCII). */
#define PG_WRITE_LOCK "SELECT pg_advisory_xact_lock(435778860136)"

/* The most parameters a statement has (the query files use at most 16). */
#define PG_MAX_PARAMS 64

#define OID_BYTEA 17
#define OID_INT8 20
#define OID_TEXT 25

struct meta_conn {
    PGconn *pg;
    bool sync_full;
    bool in_txn;
    bool write_locked; /* this transaction holds the write lock */
    int64_t changes;
    int64_t last_id;
    bool lost;   /* the last failure was the server connection's */
    bool broken; /* the link failed (lost) since it was made: make it again
                  * before the next BEGIN or lone statement (reconnected) */
    bool oom;    /* the last failure was libpq (this process) out of memory */
    /* how the last statement's wait ended when it returned no result */
    enum { EXEC_DONE, EXEC_TIMED_OUT, EXEC_LINK_FAILED } exec_end;
    bool unbounded; /* a migration's statement: no deadline */
    char sqlstate[6];
    char msg[512];
    /* Guarded by live_mu: on the live list, and cut_fd, a duplicate of the
     * connection's socket that this struct owns (-1: none), made when the
     * connection is made and closed before it is finished or reset: what
     * meta_stopping shuts down. Never libpq's own descriptor, which libpq
     * closes by itself when it sees the link fail; its number may then be
     * another thread's file or socket. */
    bool live;
    int cut_fd;
    struct meta_conn *live_prev, *live_next;
};

/* The open connections, for meta_stopping; and when it ran (monotonic ms,
 * 0 before): from then on a connection attempt gives up after
 * STOPPING_CONNECT_MS, so that a stop never waits on a server that does not
 * answer. */
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static struct meta_conn *live_head;
static _Atomic int64_t stopping_at;
#define STOPPING_CONNECT_MS 1000

/* meta.postgres.query_timeout_ms: the longest a statement waits for the
 * server's answer, and a connection attempt when the connection string
 * gives no connect_timeout; 0: no bound. */
static _Atomic int64_t query_timeout_ms = META_PG_QUERY_TIMEOUT_DEFAULT_MS;

void meta_postgres_query_timeout(int64_t ms)
{
    atomic_store(&query_timeout_ms, ms < 0 ? 0 : ms);
}

static int64_t mono_ms(void)
{
    return time_mono_ns() / 1000000;
}

/* Close c's cut_fd; live_mu held. */
static void drop_cut_fd(struct meta_conn *c)
{
    if (c->cut_fd >= 0) {
        close(c->cut_fd);
        c->cut_fd = -1;
    }
}

/* Put a connection just made (or made again) on the live list with a
 * duplicate of its socket. Without a descriptor left for the duplicate it
 * stays usable but cannot be cut at a stop (the statement deadline still
 * bounds its waits). */
static void live_add(struct meta_conn *c)
{
    int fd = PQsocket(c->pg);
    int dup = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    pthread_mutex_lock(&live_mu);
    drop_cut_fd(c);
    c->cut_fd = dup;
    if (!c->live) {
        c->live_prev = NULL;
        c->live_next = live_head;
        if (live_head != NULL) {
            live_head->live_prev = c;
        }
        live_head = c;
        c->live = true;
    }
    pthread_mutex_unlock(&live_mu);
}

/* Before the connection's socket is closed (PQresetStart): nothing of it
 * may be cut from now on. */
static void live_forget_socket(struct meta_conn *c)
{
    pthread_mutex_lock(&live_mu);
    drop_cut_fd(c);
    pthread_mutex_unlock(&live_mu);
}

static void live_remove(struct meta_conn *c)
{
    pthread_mutex_lock(&live_mu);
    drop_cut_fd(c);
    if (c->live) {
        if (c->live_prev != NULL) {
            c->live_prev->live_next = c->live_next;
        } else {
            live_head = c->live_next;
        }
        if (c->live_next != NULL) {
            c->live_next->live_prev = c->live_prev;
        }
        c->live = false;
    }
    pthread_mutex_unlock(&live_mu);
}

void meta_stopping(void)
{
    int64_t zero = 0;
    atomic_compare_exchange_strong(&stopping_at, &zero, mono_ms());
    pthread_mutex_lock(&live_mu);
    int cut = 0;
    for (struct meta_conn *c = live_head; c != NULL; c = c->live_next) {
        /* the duplicate shares the socket: shutting it down ends the
         * link under libpq's descriptor too, whatever the owner does */
        if (c->cut_fd >= 0 && shutdown(c->cut_fd, SHUT_RDWR) == 0) {
            cut++;
        }
    }
    pthread_mutex_unlock(&live_mu);
    if (cut > 0) {
        log_warn("event=db_connections_cut backend=postgres connections=%d", cut);
    }
}

/* Whether a connection attempt begun now must give up: the process is
 * stopping and has waited STOPPING_CONNECT_MS since. */
static bool stopping_expired(void)
{
    int64_t at = atomic_load(&stopping_at);
    return at != 0 && mono_ms() - at >= STOPPING_CONNECT_MS;
}

struct pg_param {
    bool set;
    bool is_null;
    Oid type;
    int format;        /* 0 text, 1 binary */
    const char *value; /* borrowed, or num below */
    int length;
    char num[24];
};

struct pg_stmt {
    struct meta_stmt base;
    struct meta_conn *c;
    char *sql;      /* with $N parameters */
    bool is_write;  /* not a SELECT */
    bool is_insert; /* sets last_id */
    int nparams;
    struct pg_param *params;
    bool unused[PG_MAX_PARAMS + 1]; /* numbers below nparams the text skips */
    PGresult *res;                  /* after the first step */
    int row;                        /* current row; -1 before the first */
    unsigned char **blobs;          /* decoded bytea of the current row, per column */
    size_t *blob_len;
    int ncols;
};

static struct pg_stmt *ps(struct meta_stmt *st)
{
    return (struct pg_stmt *)(void *)st;
}

static void set_error(struct meta_conn *c, const PGresult *res)
{
    if (res == NULL && c->exec_end != EXEC_DONE) {
        /* exec_bounded gave up: no answer within the bound, or the link
         * failed while it waited */
        c->sqlstate[0] = '\0';
        if (c->exec_end == EXEC_TIMED_OUT) {
            snprintf(c->msg, sizeof(c->msg),
                     "no answer from the server within %" PRId64
                     " ms (meta.postgres.query_timeout_ms), or the process is stopping",
                     atomic_load(&query_timeout_ms));
        } else {
            const char *m = PQerrorMessage(c->pg);
            snprintf(c->msg, sizeof(c->msg), "%s",
                     m != NULL && *m != '\0' ? m : "the connection failed");
            for (char *p = c->msg; *p; p++) {
                if (*p == '\n' || *p == '"') {
                    *p = *p == '"' ? '\'' : ' ';
                }
            }
        }
        c->lost = c->broken = true;
        c->oom = false;
        return;
    }
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    snprintf(c->sqlstate, sizeof(c->sqlstate), "%s", state ? state : "");
    const char *msg = res ? PQresultErrorMessage(res) : NULL;
    if (msg == NULL || *msg == '\0') {
        msg = PQerrorMessage(c->pg);
    }
    snprintf(c->msg, sizeof(c->msg), "%s", msg ? msg : "?");
    bool says_oom = strncmp(c->msg, "out of memory", 13) == 0;
    /* The server's errors carry a SQLSTATE: class 08 is a connection
     * exception; 57P01-57P03 an administrator's shutdown, a crash shutdown,
     * a server not accepting connections yet. A failure libpq itself
     * reports carries none: a result without one that is not libpq out of
     * memory is the link failing ("server closed the connection
     * unexpectedly", "could not send data", a protocol out of step). The
     * connection's status does not say so at once: a query whose send
     * failed (EPIPE, ECONNRESET: the server's end was gone, as after
     * pg_ctl stop -m immediate) comes back with such a result while the
     * status stays CONNECTION_OK until a later call reads the end of the
     * stream; that query failed as a database error (a 500) before. */
    c->lost = PQstatus(c->pg) != CONNECTION_OK || strncmp(c->sqlstate, "08", 2) == 0 ||
              strcmp(c->sqlstate, "57P01") == 0 || strcmp(c->sqlstate, "57P02") == 0 ||
              strcmp(c->sqlstate, "57P03") == 0 ||
              (res != NULL && c->sqlstate[0] == '\0' && !says_oom);
    /* no result at all is PQexec's out-of-memory answer, on a connection
     * that is still up */
    c->oom = !c->lost && c->sqlstate[0] == '\0' && (res == NULL || says_oom);
    if (c->lost) {
        c->broken = true;
    }
    /* One line in the log. */
    for (char *p = c->msg; *p; p++) {
        if (*p == '\n' || *p == '"') {
            *p = *p == '"' ? '\'' : ' ';
        }
    }
}

/* Record that the connection is gone, with its own error message (none
 * of a statement's). */
static void set_lost(struct meta_conn *c)
{
    set_error(c, NULL);
    c->lost = c->broken = true;
    c->oom = false;
}

/* What a statement's SQLSTATE means. Serialization failures, deadlocks and
 * lock waits that timed out are another connection holding what this one
 * needs; class 53 (insufficient resources) is the server running out:
 * memory (53200, also "out of shared memory") as SQLite's SQLITE_NOMEM,
 * connection slots (53300) and other resources (53000, which is how the
 * server reports its own EMFILE/ENFILE) for now, retry later. A full disk
 * (53100) and a configured limit exceeded (53400) stay database errors, as
 * SQLite's SQLITE_FULL does. */
static enum berth_err state_err(const char *state)
{
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0) {
        return BERTH_EBUSY;
    }
    if (strcmp(state, "53200") == 0) {
        return BERTH_ENOMEM;
    }
    if (strcmp(state, "53300") == 0 || strcmp(state, "53000") == 0) {
        return BERTH_EUNAVAILABLE;
    }
    return BERTH_EDB;
}

static enum berth_err pg_error(struct meta_conn *c, const char *what)
{
    enum berth_err rc = c->lost  ? BERTH_EUNAVAILABLE
                        : c->oom ? BERTH_ENOMEM
                                 : state_err(c->sqlstate);
    log_error("event=db_error op=%s code=%s lost=%d err=%s msg=\"%s\"", what, c->sqlstate,
              c->lost ? 1 : 0, berth_strerror(rc), c->msg);
    return rc;
}

static bool pg_is_unique_violation(struct meta_conn *c)
{
    return strcmp(c->sqlstate, "23505") == 0;
}

/* Whether a wait must end: past deadline (monotonic ms; -1: none), or
 * the process stopping (meta_stopping, STOPPING_CONNECT_MS ago). */
static bool wait_over(int64_t deadline)
{
    return stopping_expired() || (deadline >= 0 && mono_ms() >= deadline);
}

/* Poll the connection's socket for events for at most 100 ms (less when
 * the deadline is nearer): >0 ready, 0 not yet, <0 failed. */
static int poll_slice(PGconn *pg, short events, int64_t deadline)
{
    int slice = 100; /* short: the stop is checked between slices */
    if (deadline >= 0) {
        int64_t left = deadline - mono_ms();
        slice = left < 0 ? 0 : left < slice ? (int)left : slice;
    }
    struct pollfd pfd = {.fd = PQsocket(pg), .events = events};
    if (pfd.fd < 0) {
        return -1;
    }
    int r = poll(&pfd, 1, slice);
    return r < 0 && errno == EINTR ? 0 : r;
}

/* Send what libpq holds and read until a result can be taken without
 * blocking (PQisBusy false). */
static int await_result(struct meta_conn *c, int64_t deadline)
{
    for (;;) {
        int f = PQflush(c->pg);
        if (f < 0) {
            return EXEC_LINK_FAILED;
        }
        if (f == 0 && !PQisBusy(c->pg)) {
            return EXEC_DONE;
        }
        if (wait_over(deadline)) {
            return EXEC_TIMED_OUT;
        }
        int r = poll_slice(c->pg, (short)(POLLIN | (f == 1 ? POLLOUT : 0)), deadline);
        if (r < 0 || (r > 0 && PQconsumeInput(c->pg) == 0)) {
            return EXEC_LINK_FAILED;
        }
    }
}

/* PQexec (nparams < 0) or PQexecParams with the wait for the answer
 * bounded by meta.postgres.query_timeout_ms (none for a migration's
 * statement) and by a stop: the result as PQexec gives it (the last, or
 * the first error), or NULL with c->exec_end saying why (set_error reads
 * it). A statement that timed out leaves its connection dropped (its
 * socket shut down: the server ends the statement when it notices, the
 * caller's transaction is rolled back) and broken, to be made again. */
static PGresult *exec_bounded(struct meta_conn *c, const char *sql, int nparams, const Oid *types,
                              const char *const *values, const int *lengths, const int *formats)
{
    c->exec_end = EXEC_DONE;
    int sent = nparams < 0
                   ? PQsendQuery(c->pg, sql)
                   : PQsendQueryParams(c->pg, sql, nparams, types, values, lengths, formats, 0);
    if (!sent) {
        if (PQstatus(c->pg) != CONNECTION_OK) {
            c->exec_end = EXEC_LINK_FAILED;
        }
        return NULL; /* else libpq out of memory */
    }
    int64_t t = atomic_load(&query_timeout_ms);
    int64_t deadline = t > 0 && !c->unbounded ? mono_ms() + t : -1;
    PGresult *last = NULL;
    for (;;) {
        int end = await_result(c, deadline);
        if (end != EXEC_DONE) {
            PQclear(last);
            c->exec_end = end;
            if (end == EXEC_TIMED_OUT) {
                log_warn("event=db_query_timeout backend=postgres timeout_ms=%" PRId64
                         " stopping=%d",
                         t, stopping_expired() ? 1 : 0);
                live_forget_socket(c);
                shutdown(PQsocket(c->pg), SHUT_RDWR);
            }
            c->broken = true;
            return NULL;
        }
        PGresult *r = PQgetResult(c->pg);
        if (r == NULL) {
            return last;
        }
        if (last != NULL && PQresultStatus(last) == PGRES_FATAL_ERROR) {
            PQclear(r); /* PQexec's answer is the error */
        } else {
            PQclear(last);
            last = r;
        }
        if (PQstatus(c->pg) == CONNECTION_BAD) {
            return last;
        }
    }
}

/* Run a statement without parameters; on failure the reason is kept. */
static bool run(struct meta_conn *c, const char *sql)
{
    PGresult *res = exec_bounded(c, sql, -1, NULL, NULL, NULL, NULL);
    ExecStatusType s = PQresultStatus(res);
    bool ok = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
    if (!ok) {
        set_error(c, res);
    }
    PQclear(res);
    return ok;
}

static enum berth_err pg_exec(struct meta_conn *c, const char *sql, const char *what)
{
    /* a migration may rewrite a large table: it is not bounded */
    c->unbounded = strcmp(what, "migrate") == 0;
    bool ok = run(c, sql);
    c->unbounded = false;
    if (!ok) {
        return pg_error(c, what);
    }
    return BERTH_OK;
}

static void quiet_notices(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static void pg_close(struct meta_conn *c)
{
    if (c != NULL) {
        live_remove(c);
        PQfinish(c->pg);
        free(c);
    }
}

/* The session settings every connection runs with. */
static enum berth_err set_up_session(struct meta_conn *c)
{
    PQsetNoticeProcessor(c->pg, quiet_notices, NULL);
    enum berth_err rc = pg_exec(
        c, c->sync_full ? "SET synchronous_commit = on" : "SET synchronous_commit = off", "open");
    if (rc == BERTH_OK) {
        rc = pg_exec(c, "SET lock_timeout = '10s'; SET client_min_messages = warning", "open");
    }
    if (rc == BERTH_OK && PQserverVersion(c->pg) >= 140000) {
        /* a statement whose connection berth dropped (query_timeout_ms)
         * ends within seconds, not when it would next send */
        rc = pg_exec(c, "SET client_connection_check_interval = '5s'", "open");
    }
    return rc;
}

static bool poll_connect(PGconn *pg, bool reset);

/* After a failure outside a transaction: when it was the connection that
 * failed (a server restart, a dropped link: c->broken), connect again, so
 * that the caller can run what failed once more: nothing of it ran. When
 * the connection cannot be made again, false with the reason recorded
 * (lost, for pg_error). */
static bool reconnected(struct meta_conn *c)
{
    if (PQstatus(c->pg) == CONNECTION_OK && !c->broken) {
        return false;
    }
    /* PQreset's, bounded as a connection attempt is (poll_connect); the
     * old socket is closed by PQresetStart */
    live_forget_socket(c);
    if (stopping_expired() || !PQresetStart(c->pg) || !poll_connect(c->pg, true) ||
        PQstatus(c->pg) != CONNECTION_OK) {
        set_lost(c);
        return false;
    }
    live_add(c);
    c->broken = false;
    if (PQsetnonblocking(c->pg, 1) != 0 || set_up_session(c) != BERTH_OK) {
        c->broken = true;
        return false;
    }
    log_warn("event=db_reconnected backend=postgres");
    return true;
}

/* BEGIN, on a new connection if the old one was lost (at once when that
 * is known: nothing can run on it). */
static bool begin(struct meta_conn *c, const char *sql)
{
    if (c->broken) {
        return reconnected(c) && run(c, sql);
    }
    /* not again after a timeout: the server does not answer */
    return run(c, sql) ||
           (c->lost && c->exec_end != EXEC_TIMED_OUT && reconnected(c) && run(c, sql));
}

/* The connect_timeout of the connection string in milliseconds (libpq
 * waits at least 2 s), or -1 when it has none: wait as long as libpq would. */
static int connect_timeout_ms(PGconn *pg)
{
    PQconninfoOption *opts = PQconninfo(pg);
    int ms = -1;
    for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++) {
        if (strcmp(o->keyword, "connect_timeout") == 0 && o->val != NULL && *o->val != '\0') {
            long s = strtol(o->val, NULL, 10);
            if (s > 0) {
                ms = (int)((s < 2 ? 2 : s > 3600 ? 3600 : s) * 1000);
            }
        }
    }
    PQconninfoFree(opts);
    return ms;
}

/* Drive a connection attempt (PQconnectStart's, or PQresetStart's when
 * reset) to its end: true when it connected. It gives up after the
 * connection string's connect_timeout, and once the process is stopping
 * (meta_stopping) after STOPPING_CONNECT_MS, so that a server that does not
 * answer (a host gone, a hung server) cannot hold a stop. */
static bool poll_connect(PGconn *pg, bool reset)
{
    int64_t timeout = connect_timeout_ms(pg);
    if (timeout < 0 && atomic_load(&query_timeout_ms) > 0) {
        timeout = atomic_load(&query_timeout_ms);
    }
    int64_t deadline = timeout < 0 ? -1 : mono_ms() + timeout;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
        if (wait_over(deadline)) {
            return false; /* the caller sees no CONNECTION_OK */
        }
        int r = poll_slice(pg, st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline);
        if (r < 0) {
            return false;
        }
        if (r == 0) {
            continue;
        }
        st = reset ? PQresetPoll(pg) : PQconnectPoll(pg);
    }
    return st == PGRES_POLLING_OK;
}

/* TCP keepalives on berth's connections unless the connection string sets
 * them: a peer gone (a host down, a network black-holed) is found on an
 * idle connection too, and data unacknowledged for a minute ends the link
 * (tcp_user_timeout). Nothing on a Unix socket. */
static const char *const keepalive_keys[] = {"keepalives", "keepalives_idle", "keepalives_interval",
                                             "keepalives_count", "tcp_user_timeout"};
static const char *const keepalive_values[] = {"1", "30", "10", "3", "60000"};
#define NKEEPALIVE (sizeof(keepalive_keys) / sizeof(keepalive_keys[0]))

/* PQconnectStart(dsn) with the keepalive settings dsn does not give. */
static PGconn *connect_start(const char *dsn)
{
    const char *keys[NKEEPALIVE + 2], *values[NKEEPALIVE + 2];
    size_t n = 0;
    keys[n] = "dbname"; /* expanded: dsn as a connection string or URI */
    values[n++] = dsn;
    PQconninfoOption *opts = PQconninfoParse(dsn, NULL);
    for (size_t i = 0; opts != NULL && i < NKEEPALIVE; i++) {
        bool given = false;
        for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
            given = given || (strcmp(o->keyword, keepalive_keys[i]) == 0 && o->val != NULL &&
                              *o->val != '\0');
        }
        if (!given) {
            keys[n] = keepalive_keys[i];
            values[n++] = keepalive_values[i];
        }
    }
    keys[n] = NULL;
    values[n] = NULL;
    PGconn *pg = PQconnectStartParams(keys, values, 1);
    PQconninfoFree(opts);
    return pg;
}

/* Connect as PQconnectdb does, with the connection's error messages
 * verbose while it is made, so that a server's refusal says its SQLSTATE
 * ("FATAL:  53300: sorry, too many clients already"); NULL when libpq is
 * out of memory. The caller checks PQstatus. */
static PGconn *connect_verbose(const char *dsn)
{
    PGconn *pg = connect_start(dsn);
    if (pg == NULL || PQstatus(pg) == CONNECTION_BAD) {
        return pg;
    }
    PQsetErrorVerbosity(pg, PQERRORS_VERBOSE);
    poll_connect(pg, false);
    PQsetErrorVerbosity(pg, PQERRORS_DEFAULT);
    return pg;
}

/* The SQLSTATE a verbose connection error names after its severity
 * ("...: FATAL:  53300: sorry, ..."), copied to state (6 bytes); "" when it
 * names none (a failure on this side: no server answered). */
static void connect_state(const char *msg, char *state)
{
    state[0] = '\0';
    for (const char *p = strstr(msg, ":  "); p != NULL; p = strstr(p + 1, ":  ")) {
        const char *code = p + 3;
        bool ok = true;
        for (int i = 0; i < 5 && ok; i++) {
            ok = isdigit((unsigned char)code[i]) || isupper((unsigned char)code[i]);
        }
        if (ok && code[5] == ':') {
            memcpy(state, code, 5);
            state[5] = '\0';
            return;
        }
    }
}

/* Whether msg says what strerror says of err (libpq's socket errors are
 * "could not create socket: <strerror>"). */
static bool says_errno(const char *msg, int err)
{
    char text[128];
    return strerror_r(err, text, sizeof(text)) == 0 && text[0] != '\0' && strstr(msg, text) != NULL;
}

/* What a failed connection means: the server's refusal by its SQLSTATE
 * (state_err: 53300 too many connections and 53000 are unavailable, 53200
 * out of memory), this process out of descriptors (EMFILE, ENFILE) or
 * memory, and anything else (the server down, restarting, unreachable)
 * unavailable: retry later. */
static enum berth_err connect_err(const char *msg, const char *state)
{
    if (state[0] != '\0') {
        enum berth_err rc = state_err(state);
        return rc == BERTH_EDB || rc == BERTH_EBUSY ? BERTH_EUNAVAILABLE : rc;
    }
    if (says_errno(msg, EMFILE) || says_errno(msg, ENFILE)) {
        return BERTH_ENOFD;
    }
    if (strstr(msg, "out of memory") != NULL || says_errno(msg, ENOMEM)) {
        return BERTH_ENOMEM;
    }
    return BERTH_EUNAVAILABLE;
}

static enum berth_err pg_open(const char *dsn, bool sync_full, struct meta_conn **out)
{
    struct meta_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return BERTH_ENOMEM;
    }
    c->cut_fd = -1;
    c->pg = connect_verbose(dsn);
    if (c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK) {
        const char *why = c->pg ? PQerrorMessage(c->pg) : "out of memory";
        snprintf(c->msg, sizeof(c->msg), "%s",
                 *why != '\0' ? why : "no answer from the server within the connection's bound");
        connect_state(c->msg, c->sqlstate);
        enum berth_err rc = c->pg == NULL ? BERTH_ENOMEM : connect_err(c->msg, c->sqlstate);
        for (char *p = c->msg; *p; p++) {
            if (*p == '\n' || *p == '"') {
                *p = ' ';
            }
        }
        log_error("event=db_error op=open backend=postgres code=%s err=%s msg=\"%s\"", c->sqlstate,
                  berth_strerror(rc), c->msg);
        pg_close(c);
        return rc;
    }
    c->sync_full = sync_full;
    live_add(c);
    if (PQsetnonblocking(c->pg, 1) != 0) {
        pg_close(c);
        return BERTH_ENOMEM;
    }
    enum berth_err rc = set_up_session(c);
    if (rc != BERTH_OK) {
        pg_close(c);
        return rc;
    }
    *out = c;
    return BERTH_OK;
}

static enum berth_err pg_begin_write(struct meta_conn *c)
{
    if (!begin(c, "BEGIN")) {
        return pg_error(c, "begin");
    }
    if (!run(c, PG_WRITE_LOCK)) {
        enum berth_err rc = pg_error(c, "begin");
        run(c, "ROLLBACK");
        return rc;
    }
    c->in_txn = true;
    c->write_locked = true;
    return BERTH_OK;
}

static enum berth_err pg_begin_read(struct meta_conn *c)
{
    if (!begin(c, "BEGIN ISOLATION LEVEL REPEATABLE READ")) {
        return pg_error(c, "begin");
    }
    c->in_txn = true;
    return BERTH_OK;
}

static enum berth_err pg_commit(struct meta_conn *c)
{
    bool ok = run(c, "COMMIT");
    c->in_txn = false;
    c->write_locked = false;
    return ok ? BERTH_OK : pg_error(c, "commit");
}

static void pg_rollback(struct meta_conn *c)
{
    /* a broken connection's transaction ended with it */
    if (!c->broken && PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        PQclear(exec_bounded(c, "ROLLBACK", -1, NULL, NULL, NULL, NULL));
    }
    c->in_txn = false;
    c->write_locked = false;
}

/* The single-column, single-row integer answer of sql; -1 on error. */
static int64_t query_int(struct meta_conn *c, const char *sql)
{
    PGresult *res = exec_bounded(c, sql, -1, NULL, NULL, NULL, NULL);
    int64_t v = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQnfields(res) == 1) {
        v = PQgetisnull(res, 0, 0) ? 0 : strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    } else {
        set_error(c, res);
    }
    PQclear(res);
    return v;
}

static int pg_schema_version(struct meta_conn *c)
{
    int64_t exists = query_int(c, "SELECT count(*) FROM pg_catalog.pg_class "
                                  "WHERE oid = to_regclass('berth_schema')");
    if (exists <= 0) {
        return exists == 0 ? 0 : -1;
    }
    return (int)query_int(c, "SELECT coalesce(max(version), 0) FROM berth_schema");
}

static enum berth_err pg_set_schema_version(struct meta_conn *c, int version)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "CREATE TABLE IF NOT EXISTS berth_schema (version BIGINT NOT NULL); "
             "DELETE FROM berth_schema; INSERT INTO berth_schema (version) VALUES (%d)",
             version);
    return pg_exec(c, sql, "migrate");
}

/* LISTEN channel (an identifier meta.c checked), on a new connection if
 * the old one was lost. */
static enum berth_err pg_listen(struct meta_conn *c, const char *channel)
{
    char sql[96];
    snprintf(sql, sizeof(sql), "LISTEN %s", channel);
    if ((PQstatus(c->pg) != CONNECTION_OK || c->broken) && !reconnected(c)) {
        return pg_error(c, "listen");
    }
    if (!run(c, sql) && !(reconnected(c) && run(c, sql))) {
        return pg_error(c, "listen");
    }
    return BERTH_OK;
}

/* Take the notifications libpq has read; whether there were any. */
static bool take_notifies(struct meta_conn *c)
{
    bool any = false;
    PGnotify *n;
    while ((n = PQnotifies(c->pg)) != NULL) {
        any = true;
        PQfreemem(n);
    }
    return any;
}

static enum berth_err pg_wait_notify(struct meta_conn *c, int64_t timeout_ms, bool *notified)
{
    *notified = false;
    if (PQconsumeInput(c->pg) == 0) {
        set_lost(c);
        return pg_error(c, "wait_notify");
    }
    if (take_notifies(c)) {
        *notified = true;
        return BERTH_OK;
    }
    int fd = PQsocket(c->pg);
    if (fd < 0) {
        set_lost(c);
        return pg_error(c, "wait_notify");
    }
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int r = poll(&pfd, 1, timeout_ms < 0 ? 0 : timeout_ms > 60000 ? 60000 : (int)timeout_ms);
    if (r < 0 && errno != EINTR) {
        return BERTH_EIO;
    }
    if (r > 0) {
        if (PQconsumeInput(c->pg) == 0) {
            set_lost(c);
            return pg_error(c, "wait_notify");
        }
        *notified = take_notifies(c);
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        set_lost(c);
        return pg_error(c, "wait_notify");
    }
    return BERTH_OK;
}

static enum berth_err pg_checkpoint(struct meta_conn *c)
{
    (void)c; /* the server manages its write-ahead log */
    return BERTH_OK;
}

static int64_t pg_changes(struct meta_conn *c)
{
    return c->changes;
}

static int64_t pg_last_id(struct meta_conn *c)
{
    return c->last_id;
}

/* Whether sql starts with keyword (case-insensitive, after blanks). */
static bool starts_with(const char *sql, const char *keyword)
{
    while (isspace((unsigned char)*sql)) {
        sql++;
    }
    size_t n = strlen(keyword);
    return strncasecmp(sql, keyword, n) == 0 && !isalnum((unsigned char)sql[n]);
}

/* sql with ?N (and bare ?) rewritten to $N outside quotes; *nparams is the
 * highest number, and used[N] tells whether $N appears (room for
 * PG_MAX_PARAMS + 1 entries). */
static char *rewrite(const char *sql, int *nparams, bool *used)
{
    size_t len = strlen(sql);
    size_t cap = len * 2 + 16;
    char *out = malloc(cap);
    if (out == NULL) {
        return NULL;
    }
    size_t o = 0;
    int next = 1;
    int max = 0;
    char quote = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = sql[i];
        if (quote) {
            if (ch == quote) {
                quote = 0;
            }
            out[o++] = ch;
            continue;
        }
        if (ch == '\'' || ch == '"') {
            quote = ch;
            out[o++] = ch;
            continue;
        }
        if (ch != '?') {
            out[o++] = ch;
            continue;
        }
        int n = 0;
        size_t j = i + 1;
        while (j < len && isdigit((unsigned char)sql[j])) {
            n = n * 10 + (sql[j] - '0');
            j++;
        }
        if (j == i + 1) {
            n = next;
        }
        next = n + 1;
        if (n <= PG_MAX_PARAMS) {
            used[n] = true;
        }
        if (n > max) {
            max = n;
        }
        int w = snprintf(out + o, cap - o, "$%d", n);
        if (w < 0 || (size_t)w >= cap - o) {
            free(out); /* cannot happen for the static texts this rewrites */
            return NULL;
        }
        o += (size_t)w;
        i = j - 1;
    }
    out[o] = '\0';
    *nparams = max;
    return out;
}

static void clear_row(struct pg_stmt *s)
{
    for (int i = 0; i < s->ncols; i++) {
        PQfreemem(s->blobs[i]);
        s->blobs[i] = NULL;
    }
}

static struct meta_stmt *pg_prepare(struct meta_conn *c, const char *sql)
{
    struct pg_stmt *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->base.drv = &meta_postgres_driver;
    s->c = c;
    s->row = -1;
    bool used[PG_MAX_PARAMS + 1] = {false};
    s->sql = rewrite(sql, &s->nparams, used);
    s->params = calloc((size_t)s->nparams + 1, sizeof(*s->params));
    if (s->sql != NULL && s->params != NULL) {
        for (int i = 1; i <= s->nparams && i <= PG_MAX_PARAMS; i++) {
            s->unused[i] = !used[i];
        }
    }
    if (s->sql == NULL || s->params == NULL || s->nparams > PG_MAX_PARAMS) {
        log_error("event=db_error op=prepare backend=postgres msg=\"%s\"",
                  s->sql == NULL || s->params == NULL ? "out of memory" : "too many parameters");
        free(s->sql);
        free(s->params);
        free(s);
        return NULL;
    }
    s->is_write = !starts_with(sql, "SELECT");
    s->is_insert = starts_with(sql, "INSERT");
    if (s->is_insert && strstr(s->sql, "RETURNING") == NULL) {
        /* Every table rows are inserted into by a query file either has an
         * identity column id or is not asked for its last id. */
        s->is_insert = false;
    }
    return &s->base;
}

static void pg_reset(struct meta_stmt *st)
{
    struct pg_stmt *s = ps(st);
    clear_row(s);
    PQclear(s->res);
    s->res = NULL;
    s->row = -1;
    memset(s->params, 0, sizeof(*s->params) * ((size_t)s->nparams + 1));
}

static void pg_finalize(struct meta_stmt *st)
{
    if (st == NULL) {
        return;
    }
    struct pg_stmt *s = ps(st);
    pg_reset(st);
    free(s->blobs);
    free(s->blob_len);
    free(s->params);
    free(s->sql);
    free(s);
}

/* Execute the statement with its bindings; false on error (kept). */
static bool execute(struct pg_stmt *s)
{
    struct meta_conn *c = s->c;
    int n = s->nparams;
    const char *values[PG_MAX_PARAMS];
    int lengths[PG_MAX_PARAMS];
    int formats[PG_MAX_PARAMS];
    Oid types[PG_MAX_PARAMS];
    for (int i = 0; i < n; i++) {
        struct pg_param *p = &s->params[i + 1];
        bool null = !p->set || p->is_null;
        values[i] = null ? NULL : p->value;
        lengths[i] = p->length;
        formats[i] = null ? 0 : p->format;
        /* an unused number still needs a type: any will do */
        types[i] = s->unused[i + 1] ? OID_TEXT : null ? 0 : p->type;
    }
    /* A write outside a transaction runs in one of its own under the write
     * lock; inside one, under a savepoint a failure rolls back to. */
    bool own_txn = s->is_write && !c->in_txn;
    bool savepoint = s->is_write && c->in_txn;
    if (own_txn) {
        if (!begin(c, "BEGIN")) {
            return false;
        }
        if (!run(c, PG_WRITE_LOCK)) {
            PQclear(exec_bounded(c, "ROLLBACK", -1, NULL, NULL, NULL, NULL));
            return false;
        }
    } else if (savepoint) {
        /* a write in a read transaction takes the lock first, as SQLite
         * upgrades a deferred transaction to the writer */
        if (!c->write_locked) {
            if (!run(c, PG_WRITE_LOCK)) {
                return false;
            }
            c->write_locked = true;
        }
        if (!run(c, "SAVEPOINT berth_stmt")) {
            return false;
        }
    }
    /* A lone read runs on a new connection if the old one was lost: at
     * once when that is known, else after it failed there. */
    bool lone_read = !s->is_write && !c->in_txn;
    if (lone_read && c->broken && !reconnected(c)) {
        return false;
    }
    PGresult *res = exec_bounded(c, s->sql, n, types, values, lengths, formats);
    ExecStatusType status = PQresultStatus(res);
    bool ok = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
    if (!ok) {
        set_error(c, res);
        /* again on a new connection, unless the server did not answer */
        if (lone_read && c->lost && c->exec_end != EXEC_TIMED_OUT && reconnected(c)) {
            PQclear(res);
            res = exec_bounded(c, s->sql, n, types, values, lengths, formats);
            status = PQresultStatus(res);
            ok = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
            if (!ok) {
                set_error(c, res);
            }
        }
    }
    if (!ok) {
        PQclear(res);
        if (c->broken) {
            /* nothing to roll back on: the transaction ended with the link */
        } else if (own_txn) {
            PQclear(exec_bounded(c, "ROLLBACK", -1, NULL, NULL, NULL, NULL));
        } else if (savepoint) {
            PQclear(
                exec_bounded(c, "ROLLBACK TO SAVEPOINT berth_stmt", -1, NULL, NULL, NULL, NULL));
            PQclear(exec_bounded(c, "RELEASE SAVEPOINT berth_stmt", -1, NULL, NULL, NULL, NULL));
        }
        return false;
    }
    if (own_txn && !run(c, "COMMIT")) {
        PQclear(res);
        return false;
    }
    if (savepoint && !run(c, "RELEASE SAVEPOINT berth_stmt")) {
        PQclear(res);
        return false;
    }
    const char *cmd = PQcmdStatus(res);
    if (strncmp(cmd, "INSERT", 6) == 0 || strncmp(cmd, "UPDATE", 6) == 0 ||
        strncmp(cmd, "DELETE", 6) == 0) {
        c->changes = strtoll(PQcmdTuples(res), NULL, 10);
    }
    if (s->is_insert && PQntuples(res) > 0 && PQnfields(res) > 0) {
        c->last_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    }
    s->res = res;
    s->ncols = PQnfields(res);
    return true;
}

static enum meta_step pg_step(struct meta_stmt *st)
{
    struct pg_stmt *s = ps(st);
    if (s->res == NULL) {
        if (!execute(s)) {
            return META_STEP_ERROR;
        }
        if (s->ncols > 0) {
            s->blobs = realloc(s->blobs, sizeof(*s->blobs) * (size_t)s->ncols);
            s->blob_len = realloc(s->blob_len, sizeof(*s->blob_len) * (size_t)s->ncols);
            if (s->blobs == NULL || s->blob_len == NULL) {
                snprintf(s->c->msg, sizeof(s->c->msg), "out of memory");
                s->c->sqlstate[0] = '\0';
                s->c->lost = false;
                s->c->oom = true;
                return META_STEP_ERROR;
            }
            memset(s->blobs, 0, sizeof(*s->blobs) * (size_t)s->ncols);
        }
    } else {
        clear_row(s);
    }
    /* A write with RETURNING has rows too, but steps like SQLite's. */
    if (s->row + 1 < PQntuples(s->res)) {
        s->row++;
        return META_STEP_ROW;
    }
    s->row = PQntuples(s->res);
    return META_STEP_DONE;
}

static struct pg_param *param(struct meta_stmt *st, int i)
{
    struct pg_stmt *s = ps(st);
    if (i < 1 || i > s->nparams) {
        return NULL;
    }
    struct pg_param *p = &s->params[i];
    memset(p, 0, sizeof(*p));
    p->set = true;
    return p;
}

static void pg_bind_int64(struct meta_stmt *st, int i, int64_t v)
{
    struct pg_param *p = param(st, i);
    if (p != NULL) {
        snprintf(p->num, sizeof(p->num), "%" PRId64, v);
        p->value = p->num;
        p->type = OID_INT8;
    }
}

static void pg_bind_text(struct meta_stmt *st, int i, const char *str)
{
    struct pg_param *p = param(st, i);
    if (p != NULL) {
        p->value = str;
        p->type = OID_TEXT;
        p->is_null = str == NULL;
    }
}

static void pg_bind_blob(struct meta_stmt *st, int i, const void *ptr, size_t n)
{
    struct pg_param *p = param(st, i);
    if (p != NULL) {
        p->value = ptr != NULL ? ptr : "";
        p->length = (int)n;
        p->format = 1;
        p->type = OID_BYTEA;
    }
}

static void pg_bind_null(struct meta_stmt *st, int i)
{
    struct pg_param *p = param(st, i);
    if (p != NULL) {
        p->is_null = true;
    }
}

static bool valid_cell(struct pg_stmt *s, int i)
{
    return s->res != NULL && s->row >= 0 && s->row < PQntuples(s->res) && i >= 0 && i < s->ncols;
}

static bool pg_col_is_null(struct meta_stmt *st, int i)
{
    struct pg_stmt *s = ps(st);
    return !valid_cell(s, i) || PQgetisnull(s->res, s->row, i);
}

static int64_t pg_col_int64(struct meta_stmt *st, int i)
{
    struct pg_stmt *s = ps(st);
    if (pg_col_is_null(st, i)) {
        return 0;
    }
    const char *v = PQgetvalue(s->res, s->row, i);
    if (v[0] == 't' && v[1] == '\0') {
        return 1;
    }
    return strtoll(v, NULL, 10); /* 'f' and non-numbers read as 0 */
}

/* Column i of a bytea column, decoded for this row. */
static bool decode_blob(struct pg_stmt *s, int i)
{
    if (s->blobs[i] != NULL) {
        return true;
    }
    size_t n = 0;
    s->blobs[i] = PQunescapeBytea((const unsigned char *)PQgetvalue(s->res, s->row, i), &n);
    s->blob_len[i] = n;
    return s->blobs[i] != NULL;
}

static const char *pg_col_text(struct meta_stmt *st, int i)
{
    struct pg_stmt *s = ps(st);
    if (pg_col_is_null(st, i)) {
        return NULL;
    }
    return PQgetvalue(s->res, s->row, i);
}

static const void *pg_col_blob(struct meta_stmt *st, int i)
{
    struct pg_stmt *s = ps(st);
    if (pg_col_is_null(st, i)) {
        return NULL;
    }
    if (PQftype(s->res, i) != OID_BYTEA) {
        return PQgetvalue(s->res, s->row, i);
    }
    return decode_blob(s, i) ? s->blobs[i] : NULL;
}

static size_t pg_col_bytes(struct meta_stmt *st, int i)
{
    struct pg_stmt *s = ps(st);
    if (pg_col_is_null(st, i)) {
        return 0;
    }
    if (PQftype(s->res, i) != OID_BYTEA) {
        return (size_t)PQgetlength(s->res, s->row, i);
    }
    return decode_blob(s, i) ? s->blob_len[i] : 0;
}

const struct meta_driver meta_postgres_driver = {
    .name = "postgres",
    .dialect = META_DIALECT_POSTGRES,
    .open = pg_open,
    .close = pg_close,
    .exec = pg_exec,
    .error = pg_error,
    .is_unique_violation = pg_is_unique_violation,
    .begin_write = pg_begin_write,
    .begin_read = pg_begin_read,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .schema_version = pg_schema_version,
    .set_schema_version = pg_set_schema_version,
    .checkpoint = pg_checkpoint,
    .listen = pg_listen,
    .wait_notify = pg_wait_notify,
    .changes = pg_changes,
    .last_id = pg_last_id,
    .prepare = pg_prepare,
    .finalize = pg_finalize,
    .reset = pg_reset,
    .step = pg_step,
    .bind_int64 = pg_bind_int64,
    .bind_text = pg_bind_text,
    .bind_blob = pg_bind_blob,
    .bind_null = pg_bind_null,
    .col_is_null = pg_col_is_null,
    .col_int64 = pg_col_int64,
    .col_text = pg_col_text,
    .col_blob = pg_col_blob,
    .col_bytes = pg_col_bytes,
};
