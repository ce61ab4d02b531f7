/*
 * Private to storage/meta/: the SQL driver seam, the connection structure
 * and the statement helpers every query file uses.
 *
 * The metadata module is SQL written once (meta.c: connections, migrations,
 * transactions; one file per area for the queries) over a small driver
 * interface, struct meta_driver. sqlite.c (the default; it alone includes
 * <sqlite3.h>) and postgres.c (libpq) are the drivers. A driver for another
 * engine is one new file here: it implements the operations below, and the
 * queries it cannot run as written get a dialect of their own where they
 * are (meta_sql() picks it; the migrations in meta.c have one text per
 * dialect).
 */
#ifndef BERTH_META_INT_H
#define BERTH_META_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/meta/meta.h"

#define META_STMT_CACHE 256

/* A prepared statement of a connection's driver; drivers embed this first. */
struct meta_stmt {
    const struct meta_driver *drv;
};

/* The SQL a driver speaks: SQLite's, or PostgreSQL's where it differs. */
enum meta_dialect { META_DIALECT_SQLITE, META_DIALECT_POSTGRES };

/* What stepping a statement gave. */
enum meta_step { META_STEP_ROW, META_STEP_DONE, META_STEP_ERROR };

/* One database connection of a driver (opaque to the query files). */
struct meta_conn;

/*
 * A driver. Parameters are numbered from 1 and columns from 0; SQL text
 * uses ?N parameters. Text and blobs bound are borrowed until the
 * statement is reset; column values are valid until the next step or
 * reset. Errors: a call that fails leaves the reason in the connection,
 * and error() logs it (as `what`) and maps it to BERTH_EBUSY (another
 * connection holds a lock) or BERTH_EDB.
 */
struct meta_driver {
    const char *name;
    enum meta_dialect dialect;
    /* Open the database at target (a file path for SQLite, created when
     * missing; a connection string for PostgreSQL), with every commit
     * durable when sync_full. */
    enum berth_err (*open)(const char *target, bool sync_full, struct meta_conn **out);
    void (*close)(struct meta_conn *c);
    /* Run SQL text of one or more statements without results. */
    enum berth_err (*exec)(struct meta_conn *c, const char *sql, const char *what);
    enum berth_err (*error)(struct meta_conn *c, const char *what);
    /* Whether the last failure was a uniqueness violation. */
    bool (*is_unique_violation)(struct meta_conn *c);

    /* Transactions: begin_write takes the database's write lock at once
     * (everything checked inside stays true until commit). */
    enum berth_err (*begin_write)(struct meta_conn *c);
    enum berth_err (*begin_read)(struct meta_conn *c);
    enum berth_err (*commit)(struct meta_conn *c);
    void (*rollback)(struct meta_conn *c); /* no-op outside a transaction */

    /* The schema version the migrations reached (0: none), and setting it
     * inside the migrating transaction. */
    int (*schema_version)(struct meta_conn *c);
    enum berth_err (*set_schema_version)(struct meta_conn *c, int version);

    /* Fold the write-ahead log back when that is cheap, never waiting for
     * other connections (nothing to do for a driver without one). */
    enum berth_err (*checkpoint)(struct meta_conn *c);

    /* Whether commits can no longer be made durable in this process (a
     * sync of the log failed; every later commit fails). Optional: NULL
     * for a driver that has no such state. */
    bool (*durability_lost)(struct meta_conn *c);

    /* The next statement stepped, when it is a write outside a
     * transaction, returns without waiting for its own sync
     * (meta_upload_insert). Optional. */
    void (*write_lazily)(struct meta_conn *c);

    /* Wake-ups among processes on one database (meta_listen): start
     * listening on channel (a plain identifier) on this connection, and
     * wait for a notification. Optional: NULL for a driver whose database
     * one process holds (SQLite). */
    enum berth_err (*listen)(struct meta_conn *c, const char *channel);
    enum berth_err (*wait_notify)(struct meta_conn *c, int64_t timeout_ms, bool *notified);

    /* Rows changed by the last write, and the id the last insert made. */
    int64_t (*changes)(struct meta_conn *c);
    int64_t (*last_id)(struct meta_conn *c);

    /* Statements (kept for the connection's life: see meta_prepare). */
    struct meta_stmt *(*prepare)(struct meta_conn *c, const char *sql);
    void (*finalize)(struct meta_stmt *st);
    void (*reset)(struct meta_stmt *st); /* also clears the bindings */
    enum meta_step (*step)(struct meta_stmt *st);
    void (*bind_int64)(struct meta_stmt *st, int i, int64_t v);
    void (*bind_text)(struct meta_stmt *st, int i, const char *s);
    void (*bind_blob)(struct meta_stmt *st, int i, const void *p, size_t n);
    void (*bind_null)(struct meta_stmt *st, int i);
    bool (*col_is_null)(struct meta_stmt *st, int i);
    int64_t (*col_int64)(struct meta_stmt *st, int i);
    const char *(*col_text)(struct meta_stmt *st, int i); /* NULL for NULL */
    const void *(*col_blob)(struct meta_stmt *st, int i);
    size_t (*col_bytes)(struct meta_stmt *st, int i); /* of the text or blob */
};

/* The SQLite driver (sqlite.c) and the PostgreSQL driver (postgres.c). */
extern const struct meta_driver meta_sqlite_driver;
extern const struct meta_driver meta_postgres_driver;

/* For tests: how many of this process's writers are queued for m's
 * SQLite database file (sqlite.c's writer queue), -1 when m has no queue
 * (another driver); *held (optional) tells whether a writer holds it. */
int64_t meta_sqlite_writers_waiting(struct meta *m, bool *held);

/* For tests: how many write commits m's SQLite database has had in this
 * process and how many syncs of its log made them durable (group commit,
 * sqlite.c); zeros for another driver. */
void meta_sqlite_group_stats(struct meta *m, uint64_t *commits, uint64_t *syncs);

/* For tests: when set, called before each sync of a SQLite log; a
 * non-zero return makes that sync fail. Set it only while no connection
 * commits. */
extern int (*meta_sqlite_sync_hook)(void);

struct meta_stmt_slot {
    const char *sql; /* static string: the cache key is its address */
    struct meta_stmt *stmt;
};

struct meta {
    const struct meta_driver *drv;
    struct meta_conn *conn;
    int in_txn;
    struct meta_stmt_slot cache[META_STMT_CACHE];
};

/* Open a connection without creating or migrating the schema (meta_open_backend
 * does both): for a look at a database a start may yet refuse. */
enum berth_err meta_open_unmigrated(const char *backend, const char *target, struct meta **out);

/* The schema version from which registry_settings exists (migration 4). */
#define META_SETTINGS_VERSION 4

/* ---- statements ---- */

/* Prepared statement for a static SQL string, cached per connection and
 * reset + unbound, ready for binding. NULL on error (logged). Never
 * finalize it; call meta_done() after the last step. */
struct meta_stmt *meta_prepare(struct meta *m, const char *sql);

/* The text of a statement in m's dialect: sqlite as written, or pg where
 * PostgreSQL needs its own (both static strings). */
static inline const char *meta_sql(const struct meta *m, const char *sqlite, const char *pg)
{
    return m->drv->dialect == META_DIALECT_POSTGRES ? pg : sqlite;
}

/* Reset a statement from meta_prepare so it releases its read locks. */
void meta_done(struct meta_stmt *st);

static inline enum meta_step meta_step(struct meta_stmt *st)
{
    return st->drv->step(st);
}

static inline void meta_bind_int64(struct meta_stmt *st, int i, int64_t v)
{
    st->drv->bind_int64(st, i, v);
}

/* s is borrowed until the statement is reset. */
static inline void meta_bind_text(struct meta_stmt *st, int i, const char *s)
{
    st->drv->bind_text(st, i, s);
}

static inline void meta_bind_blob(struct meta_stmt *st, int i, const void *p, size_t n)
{
    st->drv->bind_blob(st, i, p, n);
}

static inline void meta_bind_null(struct meta_stmt *st, int i)
{
    st->drv->bind_null(st, i);
}

/* Bind text or NULL when s is NULL or "". */
void meta_bind_text_or_null(struct meta_stmt *st, int i, const char *s);

static inline bool meta_col_is_null(struct meta_stmt *st, int i)
{
    return st->drv->col_is_null(st, i);
}

static inline int64_t meta_col_int64(struct meta_stmt *st, int i)
{
    return st->drv->col_int64(st, i);
}

static inline int meta_col_int(struct meta_stmt *st, int i)
{
    return (int)st->drv->col_int64(st, i);
}

/* Column i as text (NULL when the value is NULL), valid until the next
 * step or reset. */
static inline const char *meta_col_cstr(struct meta_stmt *st, int i)
{
    return st->drv->col_text(st, i);
}

static inline const void *meta_col_blob(struct meta_stmt *st, int i)
{
    return st->drv->col_blob(st, i);
}

static inline size_t meta_col_bytes(struct meta_stmt *st, int i)
{
    return st->drv->col_bytes(st, i);
}

/* Copy column i as text into dst (cap bytes, "" for NULL); truncation is
 * reported as BERTH_ETOOBIG. */
enum berth_err meta_col_text(struct meta_stmt *st, int i, char *dst, size_t cap);

/* ---- connection helpers ---- */

/* Log a failed call on m's connection and return BERTH_EDB (BERTH_EBUSY
 * when locked). */
enum berth_err meta_fail(struct meta *m, const char *what);

/* Rows changed by the last write on m, and the id its last insert made. */
int64_t meta_changes(struct meta *m);
int64_t meta_last_id(struct meta *m);

/* Step a write statement expecting no rows (or one, ignored); BERTH_EEXIST
 * on a uniqueness violation. Resets the statement. */
enum berth_err meta_step_done(struct meta *m, struct meta_stmt *st, const char *what);

/* Decode the current row and hand it on; non-zero stops the page early. */
typedef int (*meta_row_fn)(struct meta_stmt *st, void *ctx);

/* Step a statement prepared with "LIMIT limit + 1" (or unlimited when
 * limit < 0), calling row for each of the first limit rows; *has_more
 * (optional, written on success) tells whether one more row followed.
 * Resets the statement. BERTH_EDB (logged as `what`) on a step error. */
enum berth_err meta_page(struct meta *m, struct meta_stmt *st, int64_t limit, meta_row_fn row,
                         void *ctx, bool *has_more, const char *what);

/* The check before inserting a uniquely keyed row into a table with a
 * limit: st (from meta_prepare, or NULL: its preparation failed) selects
 * (the table's row count, whether key's row exists) with key bound as ?1.
 * BERTH_EEXIST when the row exists, BERTH_ETOOBIG when the count reached
 * max, BERTH_OK when there is room, BERTH_EDB (logged as what). Resets st. */
enum berth_err meta_check_room(struct meta *m, struct meta_stmt *st, const char *key, size_t max,
                               const char *what);

/* A table of JSON documents keyed by a prefix (columns prefix, body,
 * created_at, updated_at): creation templates, pull-through cache rules.
 * Each table gives its statements (static strings: meta_prepare caches by
 * address) and the names its operations are logged as. */
struct meta_prefixed_sql {
    const char *count;  /* (count, exists) of ?1, as meta_check_room wants */
    const char *insert; /* ?1 prefix, ?2 body, ?3 now */
    const char *update; /* ?1 prefix, ?2 body, ?3 now */
    const char *get;    /* prefix, body, created_at, updated_at of ?1 */
    const char *remove; /* ?1 prefix */
    const char *list;   /* the get columns where prefix > ?1, by prefix */
    const char *op_count, *op_create, *op_update, *op_get, *op_delete, *op_list;
};

/* The operations meta.h documents for templates and rules, on one table. */
enum berth_err meta_prefixed_create(struct meta *m, const struct meta_prefixed_sql *t,
                                    const char *prefix, const char *body, int64_t now, size_t max);
enum berth_err meta_prefixed_update(struct meta *m, const struct meta_prefixed_sql *t,
                                    const char *prefix, const char *body, int64_t now);
enum berth_err meta_prefixed_get(struct meta *m, const struct meta_prefixed_sql *t,
                                 const char *prefix, meta_prefix_doc_cb cb, void *ctx);
enum berth_err meta_prefixed_delete(struct meta *m, const struct meta_prefixed_sql *t,
                                    const char *prefix);
enum berth_err meta_prefixed_list(struct meta *m, const struct meta_prefixed_sql *t,
                                  const char *after, int64_t limit, meta_prefix_doc_cb cb,
                                  void *ctx, bool *has_more);

/* Run one statement returning a single text column into a new string
 * (*out NULL when the value is NULL). */
enum berth_err meta_get_text(struct meta *m, struct meta_stmt *st, char **out);

/* The manifest columns every manifest query selects (table alias m), in
 * the order meta_manifest_row reads them; column 13 is the annotations
 * text. */
#define META_MANIFEST_COLS                                                                         \
    "m.id, m.repo_id, m.blob_id, m.digest, m.media_type, m.artifact_type, "                        \
    "m.config_media_type, m.subject, m.is_index, m.size, m.image_size, m.pushed_at, "              \
    "m.last_pulled_at, m.annotations, m.storage_class, m.archived_at, m.activated_at, "            \
    "m.active_from, m.restoring"

/* Read a row selected with META_MANIFEST_COLS. */
void meta_manifest_row(struct meta_stmt *st, struct meta_manifest *out);

#endif
