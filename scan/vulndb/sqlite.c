/*
 * SQLite storage of the vulnerability database (<root>/vulndb.db), kept
 * apart from the registry's metadata database: its own schema, versioned
 * with PRAGMA user_version, WAL mode so scans read while an import writes.
 * One connection per struct vdb; not thread-safe.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/log.h"
#include "common/str.h"
#include "scan/vulndb/vulndb.h"
#include "vulndb_int.h"

struct vdb {
    sqlite3 *conn;
    sqlite3_stmt *put_vuln;
    sqlite3_stmt *put_affected;
    sqlite3_stmt *del_affected;
    sqlite3_stmt *del_vuln;
    sqlite3_stmt *query;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS vulns ("
    " osv_id TEXT PRIMARY KEY,"
    " name TEXT NOT NULL,"
    " modified TEXT NOT NULL,"
    " description TEXT NOT NULL,"
    " uri TEXT);"
    "CREATE TABLE IF NOT EXISTS affected ("
    " osv_id TEXT NOT NULL,"
    " ecosystem TEXT NOT NULL,"
    " package TEXT NOT NULL,"
    " ranges TEXT NOT NULL,"
    " severity TEXT NOT NULL,"
    " cvss3_score INTEGER,"
    " cvss3_vector TEXT);"
    "CREATE INDEX IF NOT EXISTS affected_by_package ON affected(package, ecosystem);"
    "CREATE INDEX IF NOT EXISTS affected_by_vuln ON affected(osv_id);"
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);";

static enum berth_err db_error(struct vdb *db, const char *what)
{
    int code = sqlite3_extended_errcode(db->conn);
    char msg[256];
    log_error("event=vulndb_error op=%s code=%d msg=%s", what, code,
              log_value(sqlite3_errmsg(db->conn), msg, sizeof(msg)));
    if ((code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED) {
        return BERTH_EBUSY;
    }
    return (code & 0xff) == SQLITE_NOMEM ? BERTH_ENOMEM : BERTH_EDB;
}

static int user_version(sqlite3 *conn)
{
    sqlite3_stmt *st = NULL;
    int v = -1;
    if (sqlite3_prepare_v2(conn, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}

void vdb_close(struct vdb *db)
{
    if (db == NULL) {
        return;
    }
    sqlite3_finalize(db->put_vuln);
    sqlite3_finalize(db->put_affected);
    sqlite3_finalize(db->del_affected);
    sqlite3_finalize(db->del_vuln);
    sqlite3_finalize(db->query);
    sqlite3_close(db->conn);
    free(db);
}

static int prepare(struct vdb *db, const char *sql, sqlite3_stmt **st)
{
    return sqlite3_prepare_v3(db->conn, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
}

enum berth_err vdb_open(const char *path, bool writable, struct vdb **out, char *err, size_t cap)
{
    enum berth_err rc = BERTH_EDB;
    struct vdb *db = calloc(1, sizeof(*db));
    if (db == NULL) {
        return BERTH_ENOMEM;
    }
    int flags = writable ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
    int src = sqlite3_open_v2(path, &db->conn, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK) {
        if (!writable && db->conn != NULL &&
            (sqlite3_errcode(db->conn) & 0xff) == SQLITE_CANTOPEN) {
            rc = BERTH_ENOTFOUND;
            str_say(err, cap, "no vulnerability database at %s", path);
        } else {
            str_say(err, cap, "cannot open %s: %s", path,
                    db->conn ? sqlite3_errmsg(db->conn) : "out of memory");
            rc = db->conn ? BERTH_EDB : BERTH_ENOMEM;
        }
        goto fail;
    }
    sqlite3_busy_timeout(db->conn, 5000);
    sqlite3_extended_result_codes(db->conn, 1);
    int version = user_version(db->conn);
    if (version < 0) {
        str_say(err, cap, "%s is not a vulnerability database: %s", path, sqlite3_errmsg(db->conn));
        goto fail;
    }
    if (version > VULNDB_SCHEMA_VERSION) {
        str_say(err, cap, "%s has schema version %d; this berth reads version %d", path, version,
                VULNDB_SCHEMA_VERSION);
        rc = BERTH_EUNSUPPORTED;
        goto fail;
    }
    if (writable) {
        char set_version[64];
        snprintf(set_version, sizeof(set_version), "PRAGMA user_version=%d", VULNDB_SCHEMA_VERSION);
        if (sqlite3_exec(db->conn, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL,
                         NULL) != SQLITE_OK ||
            sqlite3_exec(db->conn, schema, NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(db->conn, set_version, NULL, NULL, NULL) != SQLITE_OK) {
            str_say(err, cap, "cannot set up %s: %s", path, sqlite3_errmsg(db->conn));
            goto fail;
        }
        if (prepare(db,
                    "INSERT OR REPLACE INTO vulns (osv_id, name, modified, description, uri)"
                    " VALUES (?1, ?2, ?3, ?4, ?5)",
                    &db->put_vuln) != SQLITE_OK ||
            prepare(db,
                    "INSERT INTO affected (osv_id, ecosystem, package, ranges, severity,"
                    " cvss3_score, cvss3_vector) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    &db->put_affected) != SQLITE_OK ||
            prepare(db, "DELETE FROM affected WHERE osv_id = ?1", &db->del_affected) != SQLITE_OK ||
            prepare(db, "DELETE FROM vulns WHERE osv_id = ?1", &db->del_vuln) != SQLITE_OK) {
            str_say(err, cap, "cannot prepare statements: %s", sqlite3_errmsg(db->conn));
            goto fail;
        }
    } else if (version == 0) {
        str_say(err, cap, "no vulnerability data has been imported into %s", path);
        rc = BERTH_ENOTFOUND;
        goto fail;
    }
    if (prepare(db,
                "SELECT a.osv_id, v.name, v.description, v.uri, a.ranges, a.severity,"
                " a.cvss3_score, a.cvss3_vector FROM affected a JOIN vulns v"
                " ON v.osv_id = a.osv_id WHERE a.package = ?1 AND a.ecosystem IN (?2, ?3)"
                " ORDER BY a.osv_id, a.rowid",
                &db->query) != SQLITE_OK) {
        str_say(err, cap, "cannot prepare the query: %s", sqlite3_errmsg(db->conn));
        goto fail;
    }
    *out = db;
    return BERTH_OK;
fail:
    vdb_close(db);
    return rc;
}

enum berth_err vdb_seal(const char *path, char *err, size_t cap)
{
    sqlite3 *conn = NULL;
    sqlite3_stmt *st = NULL;
    enum berth_err rc = BERTH_EDB;
    if (sqlite3_open_v2(path, &conn, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        str_say(err, cap, "cannot open %s: %s", path, conn ? sqlite3_errmsg(conn) : "no memory");
        goto out;
    }
    sqlite3_busy_timeout(conn, 5000);
    if (sqlite3_prepare_v2(conn, "PRAGMA journal_mode=DELETE", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        int code = sqlite3_errcode(conn) & 0xff;
        rc = code == SQLITE_BUSY || code == SQLITE_LOCKED ? BERTH_EBUSY : BERTH_EDB;
        str_say(err, cap, "cannot seal %s: %s", path, sqlite3_errmsg(conn));
        goto out;
    }
    const char *mode = (const char *)sqlite3_column_text(st, 0);
    if (mode == NULL || strcmp(mode, "delete") != 0) {
        /* SQLite answers the mode it kept when it could not change it */
        rc = BERTH_EBUSY;
        str_say(err, cap, "cannot seal %s: it stayed in journal mode %s", path, mode ? mode : "?");
        goto out;
    }
    rc = BERTH_OK;
out:
    sqlite3_finalize(st);
    sqlite3_close(conn);
    return rc;
}

enum berth_err vdb_backup(const char *from_path, const char *to_path, char *err, size_t cap)
{
    sqlite3 *from = NULL, *to = NULL;
    enum berth_err rc = BERTH_EDB;
    if (sqlite3_open_v2(from_path, &from, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        str_say(err, cap, "cannot open %s: %s", from_path,
                from ? sqlite3_errmsg(from) : "no memory");
        goto out;
    }
    if (sqlite3_open_v2(to_path, &to,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        str_say(err, cap, "cannot open %s: %s", to_path, to ? sqlite3_errmsg(to) : "no memory");
        goto out;
    }
    sqlite3_busy_timeout(from, 5000);
    sqlite3_busy_timeout(to, 5000);
    sqlite3_backup *b = sqlite3_backup_init(to, "main", from, "main");
    if (b == NULL) {
        str_say(err, cap, "cannot copy %s into %s: %s", from_path, to_path, sqlite3_errmsg(to));
        goto out;
    }
    int step = sqlite3_backup_step(b, -1);
    int fin = sqlite3_backup_finish(b);
    if (step != SQLITE_DONE || fin != SQLITE_OK) {
        int code = step != SQLITE_DONE ? step : fin;
        str_say(err, cap, "cannot copy %s into %s: %s", from_path, to_path, sqlite3_errstr(code));
        rc = (code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED ? BERTH_EBUSY
             : (code & 0xff) == SQLITE_NOMEM                                ? BERTH_ENOMEM
                                                                            : BERTH_EDB;
        goto out;
    }
    rc = BERTH_OK;
out:
    sqlite3_close(from);
    sqlite3_close(to);
    return rc;
}

enum berth_err vdb_begin(struct vdb *db)
{
    if (sqlite3_exec(db->conn, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        return db_error(db, "begin");
    }
    return BERTH_OK;
}

enum berth_err vdb_commit(struct vdb *db)
{
    if (sqlite3_exec(db->conn, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        return db_error(db, "commit");
    }
    return BERTH_OK;
}

void vdb_rollback(struct vdb *db)
{
    if (!sqlite3_get_autocommit(db->conn)) {
        sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
    }
}

static enum berth_err run(struct vdb *db, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) {
        return db_error(db, what);
    }
    return BERTH_OK;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s == NULL) {
        sqlite3_bind_null(st, i);
    } else {
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    }
}

enum berth_err vdb_delete(struct vdb *db, const char *osv_id)
{
    bind_text(db->del_affected, 1, osv_id);
    enum berth_err rc = run(db, db->del_affected, "delete_affected");
    if (rc != BERTH_OK) {
        return rc;
    }
    bind_text(db->del_vuln, 1, osv_id);
    return run(db, db->del_vuln, "delete_vuln");
}

enum berth_err vdb_put(struct vdb *db, const struct vdb_vuln *vuln, const struct vdb_affected *rows,
                       size_t count)
{
    enum berth_err rc = vdb_delete(db, vuln->osv_id);
    if (rc != BERTH_OK) {
        return rc;
    }
    bind_text(db->put_vuln, 1, vuln->osv_id);
    bind_text(db->put_vuln, 2, vuln->name);
    bind_text(db->put_vuln, 3, vuln->modified);
    bind_text(db->put_vuln, 4, vuln->description);
    bind_text(db->put_vuln, 5, vuln->uri);
    rc = run(db, db->put_vuln, "put_vuln");
    for (size_t i = 0; rc == BERTH_OK && i < count; i++) {
        sqlite3_stmt *st = db->put_affected;
        bind_text(st, 1, vuln->osv_id);
        bind_text(st, 2, rows[i].ecosystem);
        bind_text(st, 3, rows[i].package);
        bind_text(st, 4, rows[i].ranges);
        bind_text(st, 5, rows[i].severity);
        if (rows[i].cvss3_tenths >= 0) {
            sqlite3_bind_int(st, 6, rows[i].cvss3_tenths);
        } else {
            sqlite3_bind_null(st, 6);
        }
        bind_text(st, 7, rows[i].cvss3_vector);
        rc = run(db, st, "put_affected");
    }
    return rc;
}

enum berth_err vdb_meta_set(struct vdb *db, const char *key, int64_t value)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db->conn, "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", -1,
                           &st, NULL) != SQLITE_OK) {
        return db_error(db, "meta_set");
    }
    bind_text(st, 1, key);
    sqlite3_bind_int64(st, 2, value);
    enum berth_err rc = run(db, st, "meta_set");
    sqlite3_finalize(st);
    return rc;
}

enum berth_err vdb_meta_get(struct vdb *db, const char *key, int64_t *value)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db->conn, "SELECT value FROM meta WHERE key = ?1", -1, &st, NULL) !=
        SQLITE_OK) {
        return db_error(db, "meta_get");
    }
    bind_text(st, 1, key);
    enum berth_err rc;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        *value = sqlite3_column_int64(st, 0);
        rc = BERTH_OK;
    } else if (step == SQLITE_DONE) {
        rc = BERTH_ENOTFOUND;
    } else {
        rc = db_error(db, "meta_get");
    }
    sqlite3_finalize(st);
    return rc;
}

enum berth_err vdb_counts(struct vdb *db, int64_t *records,
                          enum berth_err (*fn)(void *ctx, const char *ecosystem, int64_t records),
                          void *ctx)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db->conn, "SELECT count(*) FROM vulns", -1, &st, NULL) != SQLITE_OK) {
        return db_error(db, "counts");
    }
    enum berth_err rc = BERTH_OK;
    if (sqlite3_step(st) == SQLITE_ROW) {
        *records = sqlite3_column_int64(st, 0);
    } else {
        rc = db_error(db, "counts");
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc != BERTH_OK || fn == NULL) {
        return rc;
    }
    if (sqlite3_prepare_v2(db->conn,
                           "SELECT ecosystem, count(DISTINCT osv_id) FROM affected "
                           "GROUP BY ecosystem ORDER BY ecosystem",
                           -1, &st, NULL) != SQLITE_OK) {
        return db_error(db, "counts");
    }
    int step;
    while (rc == BERTH_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *eco = (const char *)sqlite3_column_text(st, 0);
        rc = fn(ctx, eco != NULL ? eco : "", sqlite3_column_int64(st, 1));
    }
    if (rc == BERTH_OK && step != SQLITE_DONE) {
        rc = db_error(db, "counts");
    }
    sqlite3_finalize(st);
    return rc;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

enum berth_err vdb_query(struct vdb *db, const char *ecosystem, const char *family,
                         const char *package,
                         enum berth_err (*fn)(void *ctx, const struct vdb_row *row), void *ctx)
{
    sqlite3_stmt *st = db->query;
    enum berth_err rc = BERTH_OK;
    bind_text(st, 1, package);
    bind_text(st, 2, ecosystem);
    /* no family: repeat the ecosystem so the IN list stays well-formed */
    bind_text(st, 3, family && family[0] ? family : ecosystem);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        struct vdb_row row = {
            .osv_id = col_text(st, 0),
            .name = col_text(st, 1),
            .description = col_text(st, 2),
            .uri = col_text(st, 3),
            .ranges = col_text(st, 4),
            .severity = col_text(st, 5),
            .cvss3_tenths =
                sqlite3_column_type(st, 6) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 6),
            .cvss3_vector = col_text(st, 7),
        };
        if (row.osv_id == NULL || row.name == NULL || row.ranges == NULL || row.severity == NULL) {
            rc = BERTH_EDB;
            break;
        }
        rc = fn(ctx, &row);
        if (rc != BERTH_OK) {
            break;
        }
    }
    if (rc == BERTH_OK && step != SQLITE_DONE) {
        rc = db_error(db, "query");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}
