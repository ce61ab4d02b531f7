/*
 * The SQLite driver of the metadata module: one sqlite3 connection in WAL
 * mode per struct meta_conn, busy_timeout 10 s, foreign keys on, the
 * schema version in PRAGMA user_version. The only file of storage/meta
 * that includes <sqlite3.h>. A connection is used by one thread at a time.
 *
 * The writers of one database file in this process queue for SQLite's
 * single write lock in the order they came (struct sq_writers), each
 * woken the moment the one before it is done. SQLite's own busy handler
 * would have them sleep and poll instead (1, 2, 5, ... 100 ms apart), so
 * that under many concurrent pushes a writer could wait a second while
 * the lock sat free most of that time, and a late writer could overtake
 * one that had waited long. The queue only orders this process's
 * writers: SQLite's lock is still what excludes, and the busy handler
 * still waits for other processes (berth gc beside berth serve).
 *
 * Group commit. With every commit durable (sync_full), SQLite's own
 * synchronous=FULL would fsync the write-ahead log inside the write lock,
 * so that each writer waited for the disk once and every other writer
 * waited for all of them. Instead the connection runs with
 * synchronous=NORMAL (the log is still synced before each checkpoint and
 * whenever its header is rewritten, so it stays consistent) and the
 * driver syncs the log itself after COMMIT, once the next writer is in:
 * each commit is numbered (in log order, since a number is taken after the
 * commit's frames are written), one writer at a time syncs the log up to
 * the highest number taken so far, and every commit at or below it
 * returns. A commit returns only when its frames, and all frames before
 * them, are on disk, as with FULL; but one fsync serves all the writers
 * that committed while the previous one ran. A failed sync is final for
 * the process (the kernel may have dropped the pages it could not write,
 * so a later sync could succeed over a hole in the log): every commit
 * after it fails. What is committed but not yet synced is visible to
 * other connections; every write of theirs syncs through it before it
 * returns, so nothing acknowledged can depend on a commit that is lost.
 */
#include "meta_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/log.h"
#include "common/str.h"

/* How long a writer waits in the queue before it stops queueing and
 * leaves the wait to SQLite's busy handler (which then gives up after its
 * own 10 s): the queue can never turn a lock SQLite would have granted
 * into a deadlock, say a thread that opens a second write transaction on
 * another connection while its first is open. */
#define SQ_QUEUE_WAIT_MS 10000

struct sq_waiter {
    pthread_cond_t cv;
    bool granted;
    struct sq_waiter *next;
};

/* The queue of one database file's writers in this process, shared by
 * every connection to that file (found by device and inode), and its
 * group commit. */
struct sq_writers {
    dev_t dev;
    ino_t ino;
    int refs; /* connections using it; under writers_mu */
    pthread_mutex_t mu;
    bool held;                     /* a writer is between acquire and release */
    struct sq_waiter *head, *tail; /* waiting, first come first */
    int64_t waiting;               /* how many are queued (tests watch it) */
    /* group commit, under mu */
    pthread_cond_t synced_cv; /* a sync ended */
    uint64_t committed;       /* commits numbered so far */
    uint64_t synced;          /* every commit up to this number is on disk */
    bool syncing;             /* a writer is syncing the log */
    bool sync_failed;         /* a sync failed: no commit is durable any more */
    uint64_t syncs;           /* syncs done (tests watch it) */
    struct sq_writers *next;
};

int (*meta_sqlite_sync_hook)(void);

/* meta_fault_wal_sync: every log sync fails while set. */
static atomic_bool fault_wal_sync;

void meta_fault_wal_sync(bool on)
{
    atomic_store(&fault_wal_sync, on);
}

/* meta_fault_exhausted: the failure every statement and transaction
 * command meets while the file at fault_exhausted_path exists (0: none). */
static atomic_int fault_exhausted;
static char fault_exhausted_path[4096];

void meta_fault_exhausted(enum meta_fault_kind kind, const char *while_exists)
{
    if (kind == META_FAULT_NONE || while_exists == NULL ||
        str_copy(fault_exhausted_path, sizeof(fault_exhausted_path), while_exists) != BERTH_OK) {
        atomic_store(&fault_exhausted, 0);
        return;
    }
    atomic_store(&fault_exhausted, (int)kind);
}

static pthread_mutex_t writers_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sq_writers *writers_list;

struct meta_conn {
    sqlite3 *db;
    struct sq_writers *writers; /* NULL: not queued (the file could not be stat'ed) */
    bool queued_txn;            /* holds the queue for a write transaction */
    bool queued_auto;           /* holds it for one autocommit write statement */
    bool group_sync;            /* commits are synced by wait_durable, not SQLite */
    bool sync_error;            /* the last failure was wait_durable's */
    bool lazy;                  /* the next autocommit write does not wait for its sync */
    int fault_code;             /* an injected failure's SQLite code, read by sq_error */
    int fault_errno;            /* and its system errno */
};

struct sqlite_stmt {
    struct meta_stmt base;
    sqlite3_stmt *st;
    struct meta_conn *conn;
};

/* ---- the writer queue ---- */

static struct sq_writers *writers_get(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        return NULL;
    }
    pthread_mutex_lock(&writers_mu);
    struct sq_writers *w = writers_list;
    while (w != NULL && (w->dev != sb.st_dev || w->ino != sb.st_ino)) {
        w = w->next;
    }
    if (w == NULL) {
        w = calloc(1, sizeof(*w));
        if (w != NULL) {
            w->dev = sb.st_dev;
            w->ino = sb.st_ino;
            pthread_mutex_init(&w->mu, NULL);
            pthread_cond_init(&w->synced_cv, NULL);
            w->next = writers_list;
            writers_list = w;
        }
    }
    if (w != NULL) {
        w->refs++;
    }
    pthread_mutex_unlock(&writers_mu);
    return w;
}

static void writers_put(struct sq_writers *w)
{
    if (w == NULL) {
        return;
    }
    pthread_mutex_lock(&writers_mu);
    if (--w->refs == 0) {
        struct sq_writers **pp = &writers_list;
        while (*pp != w) {
            pp = &(*pp)->next;
        }
        *pp = w->next;
        pthread_cond_destroy(&w->synced_cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
    }
    pthread_mutex_unlock(&writers_mu);
}

/* Take the queue: at once when nobody holds it or waits, else after every
 * writer that came earlier. false when SQ_QUEUE_WAIT_MS passed first (the
 * caller goes on without the queue). */
static bool writers_acquire(struct sq_writers *w)
{
    pthread_mutex_lock(&w->mu);
    if (!w->held && w->head == NULL) {
        w->held = true;
        pthread_mutex_unlock(&w->mu);
        return true;
    }
    struct sq_waiter me = {.granted = false, .next = NULL};
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&me.cv, &attr);
    pthread_condattr_destroy(&attr);
    if (w->tail != NULL) {
        w->tail->next = &me;
    } else {
        w->head = &me;
    }
    w->tail = &me;
    w->waiting++;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += SQ_QUEUE_WAIT_MS / 1000;
    int err = 0;
    while (!me.granted && err != ETIMEDOUT) {
        err = pthread_cond_timedwait(&me.cv, &w->mu, &deadline);
    }
    if (!me.granted) {
        /* give up our place: unlink us from the queue */
        struct sq_waiter **pp = &w->head, *prev = NULL;
        while (*pp != &me) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        *pp = me.next;
        if (w->tail == &me) {
            w->tail = prev;
        }
        w->waiting--;
    }
    pthread_mutex_unlock(&w->mu);
    pthread_cond_destroy(&me.cv);
    return me.granted;
}

/* Hand the queue to the next writer, or leave it free. */
static void writers_release(struct sq_writers *w)
{
    pthread_mutex_lock(&w->mu);
    struct sq_waiter *next = w->head;
    if (next != NULL) {
        w->head = next->next;
        if (w->head == NULL) {
            w->tail = NULL;
        }
        w->waiting--;
        next->granted = true; /* held stays true: handed over */
        pthread_cond_signal(&next->cv);
    } else {
        w->held = false;
    }
    pthread_mutex_unlock(&w->mu);
}

int64_t meta_sqlite_writers_waiting(struct meta *m, bool *held)
{
    struct sq_writers *w = m->drv == &meta_sqlite_driver ? m->conn->writers : NULL;
    if (w == NULL) {
        return -1;
    }
    pthread_mutex_lock(&w->mu);
    int64_t n = w->waiting;
    if (held != NULL) {
        *held = w->held;
    }
    pthread_mutex_unlock(&w->mu);
    return n;
}

void meta_sqlite_group_stats(struct meta *m, uint64_t *commits, uint64_t *syncs)
{
    struct sq_writers *w = m->drv == &meta_sqlite_driver ? m->conn->writers : NULL;
    *commits = 0;
    *syncs = 0;
    if (w != NULL) {
        pthread_mutex_lock(&w->mu);
        *commits = w->committed;
        *syncs = w->syncs;
        pthread_mutex_unlock(&w->mu);
    }
}

/* Number a commit whose frames are in the log (before leaving the queue,
 * though the order only needs the frames written first). */
static uint64_t commit_number(struct sq_writers *w)
{
    pthread_mutex_lock(&w->mu);
    uint64_t n = ++w->committed;
    pthread_mutex_unlock(&w->mu);
    return n;
}

/* fsync the write-ahead log through c's own handle of it, as SQLite's
 * synchronous=FULL would (the VFS's xSync: fdatasync, and the directory
 * once after the log was created). */
static bool sync_log(struct meta_conn *c)
{
    if (meta_sqlite_sync_hook != NULL && meta_sqlite_sync_hook() != 0) {
        return false;
    }
    if (atomic_load(&fault_wal_sync)) {
        log_error("event=db_error op=sync msg=\"write-ahead log sync failed (injected fault)\"");
        return false;
    }
    sqlite3_file *f = NULL;
    if (sqlite3_file_control(c->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f) != SQLITE_OK ||
        f == NULL || f->pMethods == NULL) {
        log_error("event=db_error op=sync msg=\"no write-ahead log to sync\"");
        return false;
    }
    int rc = f->pMethods->xSync(f, SQLITE_SYNC_NORMAL);
    if (rc != SQLITE_OK) {
        log_error("event=db_error op=sync code=%d msg=\"write-ahead log sync failed\"", rc);
        return false;
    }
    return true;
}

/* Return once commit n is on disk: wait for the sync under way, or be the
 * one that syncs everything committed so far. BERTH_EIO (logged) when a
 * sync failed, this one or any before. */
static enum berth_err wait_durable(struct meta_conn *c, uint64_t n)
{
    struct sq_writers *w = c->writers;
    pthread_mutex_lock(&w->mu);
    while (w->synced < n && !w->sync_failed) {
        if (w->syncing) {
            pthread_cond_wait(&w->synced_cv, &w->mu);
            continue;
        }
        w->syncing = true;
        uint64_t upto = w->committed;
        pthread_mutex_unlock(&w->mu);
        bool ok = sync_log(c);
        pthread_mutex_lock(&w->mu);
        w->syncing = false;
        w->syncs++;
        if (!ok) {
            w->sync_failed = true;
        } else if (upto > w->synced) {
            w->synced = upto;
        }
        pthread_cond_broadcast(&w->synced_cv);
    }
    bool durable = w->synced >= n;
    pthread_mutex_unlock(&w->mu);
    c->sync_error = !durable;
    if (!durable) {
        log_error("event=db_error op=commit msg=\"the commit is not durable: a write-ahead log "
                  "sync failed\"");
        return BERTH_EIO;
    }
    return BERTH_OK;
}

/* Whether a sync of the log failed in this process (wait_durable: then
 * every later commit fails too). */
static bool sq_durability_lost(struct meta_conn *c)
{
    struct sq_writers *w = c->writers;
    if (w == NULL) {
        return false;
    }
    pthread_mutex_lock(&w->mu);
    bool lost = w->sync_failed;
    pthread_mutex_unlock(&w->mu);
    return lost;
}

static void sq_write_lazily(struct meta_conn *c)
{
    c->lazy = true;
}

/* Leave the queue if this connection holds it. */
static void conn_release(struct meta_conn *c)
{
    if (c->queued_txn || c->queued_auto) {
        c->queued_txn = false;
        c->queued_auto = false;
        writers_release(c->writers);
    }
}

static sqlite3_stmt *raw(struct meta_stmt *st)
{
    return ((struct sqlite_stmt *)(void *)st)->st;
}

/* BERTH_EBUSY while another connection holds the lock; BERTH_ENOMEM when
 * SQLite ran out of memory; BERTH_ENOFD when it could not open or use a
 * file because the process has no descriptor left (a connection's files
 * are opened lazily: the write-ahead log and shared memory at the first
 * transaction); else BERTH_EDB. sys_errno: sqlite3_system_errno. */
static enum berth_err code_err(int code, int sys_errno)
{
    switch (code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return BERTH_EBUSY;
    case SQLITE_NOMEM:
        return BERTH_ENOMEM;
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
        if (code == SQLITE_IOERR_NOMEM) {
            return BERTH_ENOMEM;
        }
        return sys_errno == EMFILE || sys_errno == ENFILE ? BERTH_ENOFD : BERTH_EDB;
    default:
        return BERTH_EDB;
    }
}

/* A failure injected by meta_fault_exhausted: true (and the connection's
 * error set as SQLite would set it) while the fault's file exists. */
static bool injected(struct meta_conn *c)
{
    int kind = atomic_load(&fault_exhausted);
    if (kind == META_FAULT_NONE || access(fault_exhausted_path, F_OK) != 0) {
        return false;
    }
    c->fault_code = kind == META_FAULT_NOMEM ? SQLITE_NOMEM : SQLITE_CANTOPEN;
    c->fault_errno = kind == META_FAULT_NOMEM ? 0 : EMFILE;
    return true;
}

static enum berth_err sq_error(struct meta_conn *c, const char *what)
{
    if (c->sync_error) {
        /* logged by wait_durable */
        return BERTH_EIO;
    }
    if (c->fault_code != 0) {
        int code = c->fault_code;
        int sys = c->fault_errno;
        c->fault_code = 0;
        log_error("event=db_error op=%s code=%d errno=%d msg=\"%s (injected)\"", what, code, sys,
                  sqlite3_errstr(code));
        return code_err(code, sys);
    }
    int code = sqlite3_extended_errcode(c->db);
    int sys = sqlite3_system_errno(c->db);
    log_error("event=db_error op=%s code=%d errno=%d msg=\"%s\"", what, code, sys,
              sqlite3_errmsg(c->db));
    return code_err(code, sys);
}

static bool sq_is_unique_violation(struct meta_conn *c)
{
    int code = sqlite3_extended_errcode(c->db);
    return code == SQLITE_CONSTRAINT_UNIQUE || code == SQLITE_CONSTRAINT_PRIMARYKEY;
}

static enum berth_err sq_exec(struct meta_conn *c, const char *sql, const char *what)
{
    if (injected(c)) {
        return sq_error(c, what);
    }
    char *msg = NULL;
    if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int code = sqlite3_extended_errcode(c->db);
        int sys = sqlite3_system_errno(c->db);
        log_error("event=db_error op=%s code=%d errno=%d msg=\"%s\"", what, code, sys,
                  msg ? msg : "?");
        sqlite3_free(msg);
        return code_err(code, sys);
    }
    return BERTH_OK;
}

/* The database holds secret access keys in the form SigV4 needs, so it and
 * its WAL and shared-memory files are readable by their owner only. SQLite
 * gives new -wal and -shm files the database file's mode, so tightening the
 * database right after it is opened (before journal_mode=WAL) covers new
 * stores; files of older stores are tightened too. Only stat and chmod:
 * opening and closing the file here would drop the POSIX locks that other
 * connections of this process hold on it. A failure (say, files owned by
 * another user) is logged, not fatal. */
static void protect_files(const char *path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        char p[4096];
        struct stat sb;
        int n = snprintf(p, sizeof(p), "%s%s", path, suffixes[i]);
        if (n < 0 || (size_t)n >= sizeof(p) || stat(p, &sb) != 0 || (sb.st_mode & 077) == 0) {
            continue;
        }
        if (chmod(p, sb.st_mode & 0700) != 0) {
            log_warn("event=db_chmod_failed path=%s mode=0600", p);
        }
    }
}

static bool in_wal_mode(struct meta_conn *c)
{
    sqlite3_stmt *st = NULL;
    bool wal = false;
    if (sqlite3_prepare_v2(c->db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(st, 0);
        wal = mode != NULL && strcmp(mode, "wal") == 0;
    }
    sqlite3_finalize(st);
    return wal;
}

static void sq_close(struct meta_conn *c)
{
    if (c != NULL) {
        sqlite3_close(c->db);
        conn_release(c);
        writers_put(c->writers);
        free(c);
    }
}

static enum berth_err sq_open(const char *path, bool sync_full, struct meta_conn **out)
{
    struct meta_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return BERTH_ENOMEM;
    }
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &c->db, flags, NULL) != SQLITE_OK) {
        int code = c->db ? sqlite3_extended_errcode(c->db) : SQLITE_NOMEM;
        int sys = c->db ? sqlite3_system_errno(c->db) : 0;
        log_error("event=db_error op=open path=%s code=%d errno=%d msg=\"%s\"", path, code, sys,
                  c->db ? sqlite3_errmsg(c->db) : "out of memory");
        sq_close(c);
        return code_err(code, sys);
    }
    protect_files(path);
    sqlite3_busy_timeout(c->db, 10000);
    sqlite3_extended_result_codes(c->db, 1);
    enum berth_err rc = sq_exec(c, "PRAGMA journal_mode=WAL", "pragma");
    if (rc == BERTH_OK) {
        c->writers = writers_get(path);
        /* group commit needs the log; without it (a file system that
         * cannot map SQLite's shared memory) SQLite syncs each commit */
        c->group_sync = sync_full && c->writers != NULL && in_wal_mode(c);
        rc = sq_exec(c,
                     sync_full && !c->group_sync ? "PRAGMA synchronous=FULL"
                                                 : "PRAGMA synchronous=NORMAL",
                     "pragma");
    }
    if (rc == BERTH_OK) {
        rc = sq_exec(c, "PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY", "pragma");
    }
    if (rc != BERTH_OK) {
        sq_close(c);
        return rc;
    }
    *out = c;
    return BERTH_OK;
}

static enum berth_err sq_begin_write(struct meta_conn *c)
{
    c->sync_error = false;
    if (c->writers != NULL && !c->queued_txn && !c->queued_auto) {
        c->queued_txn = writers_acquire(c->writers);
    }
    enum berth_err rc = sq_exec(c, "BEGIN IMMEDIATE", "begin");
    if (rc != BERTH_OK) {
        conn_release(c);
    }
    return rc;
}

static enum berth_err sq_begin_read(struct meta_conn *c)
{
    return sq_exec(c, "BEGIN", "begin");
}

static enum berth_err sq_commit(struct meta_conn *c)
{
    c->sync_error = false;
    bool wrote = sqlite3_txn_state(c->db, NULL) == SQLITE_TXN_WRITE;
    enum berth_err rc = sq_exec(c, "COMMIT", "commit");
    uint64_t n = rc == BERTH_OK && wrote && c->group_sync ? commit_number(c->writers) : 0;
    if (rc == BERTH_OK || sqlite3_get_autocommit(c->db)) {
        conn_release(c); /* the next writer goes on while this one syncs */
    }
    if (n != 0) {
        rc = wait_durable(c, n);
    }
    return rc;
}

static void sq_rollback(struct meta_conn *c)
{
    if (!sqlite3_get_autocommit(c->db)) {
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    }
    conn_release(c);
}

static int sq_schema_version(struct meta_conn *c)
{
    sqlite3_stmt *st = NULL;
    int version = -1;
    if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        version = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    return version;
}

static enum berth_err sq_set_schema_version(struct meta_conn *c, int version)
{
    char pragma[64];
    snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", version);
    return sq_exec(c, pragma, "migrate");
}

static enum berth_err sq_checkpoint(struct meta_conn *c)
{
    int rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY && rc != SQLITE_LOCKED) {
        return sq_error(c, "checkpoint");
    }
    return BERTH_OK;
}

static int64_t sq_changes(struct meta_conn *c)
{
    return sqlite3_changes(c->db);
}

static int64_t sq_last_id(struct meta_conn *c)
{
    return sqlite3_last_insert_rowid(c->db);
}

static struct meta_stmt *sq_prepare(struct meta_conn *c, const char *sql)
{
    struct sqlite_stmt *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->st, NULL) != SQLITE_OK) {
        sq_error(c, "prepare");
        free(s);
        return NULL;
    }
    s->base.drv = &meta_sqlite_driver;
    s->conn = c;
    return &s->base;
}

static void sq_finalize(struct meta_stmt *st)
{
    if (st != NULL) {
        sqlite3_finalize(raw(st));
        free(st);
    }
}

static struct meta_conn *conn_of(struct meta_stmt *st)
{
    return ((struct sqlite_stmt *)(void *)st)->conn;
}

static void sq_reset(struct meta_stmt *st)
{
    struct meta_conn *c = conn_of(st);
    /* a write statement outside a transaction that stopped at a row
     * commits here (none does today: no SQLite text uses RETURNING) */
    bool commits = c->group_sync && sqlite3_stmt_busy(raw(st)) && !sqlite3_stmt_readonly(raw(st)) &&
                   sqlite3_get_autocommit(c->db);
    int rc = sqlite3_reset(raw(st));
    sqlite3_clear_bindings(raw(st));
    uint64_t n = commits && rc == SQLITE_OK ? commit_number(c->writers) : 0;
    if (c->queued_auto) {
        conn_release(c); /* the statement's own transaction ended */
    }
    if (n != 0) {
        (void)wait_durable(c, n); /* a failure is logged and fails every later commit */
    }
}

static enum meta_step sq_step(struct meta_stmt *st)
{
    struct meta_conn *c = conn_of(st);
    c->sync_error = false;
    /* A write outside a transaction is a transaction of its own: it
     * queues like one, until the statement is done, and is synced like
     * one. */
    bool own_txn = sqlite3_get_autocommit(c->db) && !sqlite3_stmt_readonly(raw(st)) &&
                   !sqlite3_stmt_busy(raw(st));
    if (own_txn && c->writers != NULL && !c->queued_txn && !c->queued_auto) {
        c->queued_auto = writers_acquire(c->writers);
    }
    int rc = injected(c) ? c->fault_code : sqlite3_step(raw(st));
    /* a lazy write's frames reach the disk with the next sync of the log
     * (it syncs everything written before it) */
    bool wait = own_txn && c->group_sync && rc == SQLITE_DONE &&
                (!c->lazy || sq_durability_lost(c)); /* then it fails like any */
    c->lazy = false;
    uint64_t n = wait ? commit_number(c->writers) : 0;
    if (c->queued_auto && rc != SQLITE_ROW) {
        conn_release(c);
    }
    if (n != 0 && wait_durable(c, n) != BERTH_OK) {
        return META_STEP_ERROR;
    }
    return rc == SQLITE_ROW ? META_STEP_ROW : rc == SQLITE_DONE ? META_STEP_DONE : META_STEP_ERROR;
}

static void sq_bind_int64(struct meta_stmt *st, int i, int64_t v)
{
    sqlite3_bind_int64(raw(st), i, v);
}

static void sq_bind_text(struct meta_stmt *st, int i, const char *s)
{
    sqlite3_bind_text(raw(st), i, s, -1, SQLITE_STATIC);
}

static void sq_bind_blob(struct meta_stmt *st, int i, const void *p, size_t n)
{
    sqlite3_bind_blob64(raw(st), i, p, n, SQLITE_STATIC);
}

static void sq_bind_null(struct meta_stmt *st, int i)
{
    sqlite3_bind_null(raw(st), i);
}

static bool sq_col_is_null(struct meta_stmt *st, int i)
{
    return sqlite3_column_type(raw(st), i) == SQLITE_NULL;
}

static int64_t sq_col_int64(struct meta_stmt *st, int i)
{
    return sqlite3_column_int64(raw(st), i);
}

static const char *sq_col_text(struct meta_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(raw(st), i);
}

static const void *sq_col_blob(struct meta_stmt *st, int i)
{
    return sqlite3_column_blob(raw(st), i);
}

static size_t sq_col_bytes(struct meta_stmt *st, int i)
{
    return (size_t)sqlite3_column_bytes(raw(st), i);
}

const struct meta_driver meta_sqlite_driver = {
    .name = "sqlite",
    .dialect = META_DIALECT_SQLITE,
    .open = sq_open,
    .close = sq_close,
    .exec = sq_exec,
    .error = sq_error,
    .is_unique_violation = sq_is_unique_violation,
    .begin_write = sq_begin_write,
    .begin_read = sq_begin_read,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .schema_version = sq_schema_version,
    .set_schema_version = sq_set_schema_version,
    .checkpoint = sq_checkpoint,
    .durability_lost = sq_durability_lost,
    .write_lazily = sq_write_lazily,
    .changes = sq_changes,
    .last_id = sq_last_id,
    .prepare = sq_prepare,
    .finalize = sq_finalize,
    .reset = sq_reset,
    .step = sq_step,
    .bind_int64 = sq_bind_int64,
    .bind_text = sq_bind_text,
    .bind_blob = sq_bind_blob,
    .bind_null = sq_bind_null,
    .col_is_null = sq_col_is_null,
    .col_int64 = sq_col_int64,
    .col_text = sq_col_text,
    .col_blob = sq_col_blob,
    .col_bytes = sq_col_bytes,
};
