/*
 * Metadata database connection: opening, pragmas, numbered migrations,
 * the per-connection prepared-statement cache and transactions. One
 * struct meta per thread; see meta.h.
 */
#include "meta_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"

/* Schema migrations, applied in order; the index + 1 is the version. Never
 * edit a released entry: append a new one. */
static const char *const migrations[] = {
    /* 1: the registry core */
    "CREATE TABLE repositories ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  created_at INTEGER NOT NULL,"
    "  tag_mutability TEXT NOT NULL DEFAULT 'MUTABLE',"
    "  mutability_filters TEXT,"
    "  scan_on_push INTEGER NOT NULL DEFAULT 0,"
    "  encryption TEXT,"
    "  policy_text TEXT,"
    "  lifecycle_text TEXT,"
    "  lifecycle_evaluated_at INTEGER,"
    "  resource_tags TEXT"
    ");"
    "CREATE TABLE blobs ("
    "  id INTEGER PRIMARY KEY,"
    "  digest TEXT NOT NULL UNIQUE,"
    "  size INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  touched_at INTEGER NOT NULL"
    ");"
    "CREATE INDEX blobs_touched ON blobs(touched_at);"
    "CREATE TABLE repo_blobs ("
    "  repo_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,"
    "  blob_id INTEGER NOT NULL REFERENCES blobs(id) ON DELETE CASCADE,"
    "  PRIMARY KEY (repo_id, blob_id)"
    ") WITHOUT ROWID;"
    "CREATE INDEX repo_blobs_blob ON repo_blobs(blob_id);"
    "CREATE TABLE manifests ("
    "  id INTEGER PRIMARY KEY,"
    "  repo_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,"
    "  blob_id INTEGER NOT NULL REFERENCES blobs(id),"
    "  digest TEXT NOT NULL,"
    "  media_type TEXT NOT NULL,"
    "  is_index INTEGER NOT NULL,"
    "  artifact_type TEXT,"
    "  config_media_type TEXT,"
    "  subject TEXT,"
    "  annotations TEXT,"
    "  size INTEGER NOT NULL,"
    "  image_size INTEGER NOT NULL DEFAULT 0,"
    "  pushed_at INTEGER NOT NULL,"
    "  last_pulled_at INTEGER,"
    "  UNIQUE (repo_id, digest)"
    ");"
    "CREATE INDEX manifests_subject ON manifests(repo_id, subject) WHERE subject IS NOT NULL;"
    "CREATE INDEX manifests_blob ON manifests(blob_id);"
    "CREATE TABLE manifest_refs ("
    "  manifest_id INTEGER NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,"
    "  digest TEXT NOT NULL,"
    "  kind INTEGER NOT NULL,"
    "  PRIMARY KEY (manifest_id, digest, kind)"
    ") WITHOUT ROWID;"
    "CREATE INDEX manifest_refs_digest ON manifest_refs(digest, kind);"
    "CREATE TABLE tags ("
    "  repo_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL,"
    "  manifest_id INTEGER NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,"
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY (repo_id, name)"
    ") WITHOUT ROWID;"
    "CREATE INDEX tags_manifest ON tags(manifest_id);"
    "CREATE TABLE uploads ("
    "  uuid TEXT PRIMARY KEY,"
    "  repo_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,"
    "  algorithm TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX uploads_repo ON uploads(repo_id);",
    /* 2: the media type each manifest descriptor gives a blob (ECR
     * BatchCheckLayerAvailability reports it) */
    "ALTER TABLE manifest_refs ADD COLUMN media_type TEXT;",
    /* 3: principals, their access keys, and server secrets (the auth token
     * signing key). Secret access keys are kept as given: SigV4 needs them
     * to recompute HMACs. The database file is therefore private (0600). */
    "CREATE TABLE principals ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  policy TEXT NOT NULL,"
    "  permissions TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE access_keys ("
    "  access_key_id TEXT PRIMARY KEY,"
    "  principal_id INTEGER NOT NULL REFERENCES principals(id) ON DELETE CASCADE,"
    "  secret TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX access_keys_principal ON access_keys(principal_id);"
    "CREATE TABLE server_secrets ("
    "  name TEXT PRIMARY KEY,"
    "  value BLOB NOT NULL,"
    "  created_at INTEGER NOT NULL"
    ") WITHOUT ROWID;",
    /* 4: image scanning: the registry's settings (the registry scanning
     * configuration), the persistent scan queue, and per image the latest
     * scan with its findings (ECR's ImageScanFinding JSON, in order). All
     * of an image's scan rows go with its manifest row. */
    "CREATE TABLE registry_settings ("
    "  name TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL,"
    "  updated_at INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE scan_jobs ("
    "  id INTEGER PRIMARY KEY,"
    "  manifest_id INTEGER NOT NULL UNIQUE REFERENCES manifests(id) ON DELETE CASCADE,"
    "  queued_at INTEGER NOT NULL,"
    "  claimed_at INTEGER,"
    "  attempts INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX scan_jobs_pending ON scan_jobs(claimed_at, id);"
    "CREATE TABLE scans ("
    "  manifest_id INTEGER PRIMARY KEY REFERENCES manifests(id) ON DELETE CASCADE,"
    "  status TEXT NOT NULL,"
    "  description TEXT,"
    "  requested_at INTEGER,"
    "  completed_at INTEGER,"
    "  source_updated_at INTEGER,"
    "  finding_count INTEGER NOT NULL DEFAULT 0,"
    "  count_undefined INTEGER NOT NULL DEFAULT 0,"
    "  count_informational INTEGER NOT NULL DEFAULT 0,"
    "  count_low INTEGER NOT NULL DEFAULT 0,"
    "  count_medium INTEGER NOT NULL DEFAULT 0,"
    "  count_high INTEGER NOT NULL DEFAULT 0,"
    "  count_critical INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE TABLE scan_findings ("
    "  manifest_id INTEGER NOT NULL REFERENCES scans(manifest_id) ON DELETE CASCADE,"
    "  seq INTEGER NOT NULL,"
    "  severity INTEGER NOT NULL,"
    "  finding TEXT NOT NULL,"
    "  PRIMARY KEY (manifest_id, seq)"
    ") WITHOUT ROWID;",
    /* 5: lifecycle policy previews (StartLifecyclePolicyPreview): one row
     * per repository with the latest preview's state, and its results. */
    "CREATE TABLE lifecycle_previews ("
    "  repo_id INTEGER PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,"
    "  status TEXT NOT NULL,"
    "  policy_text TEXT NOT NULL,"
    "  started_at INTEGER NOT NULL,"
    "  finished_at INTEGER,"
    "  expiring_count INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX lifecycle_previews_status ON lifecycle_previews(status);"
    "CREATE TABLE lifecycle_preview_results ("
    "  repo_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,"
    "  seq INTEGER NOT NULL,"
    "  digest TEXT NOT NULL,"
    "  pushed_at INTEGER NOT NULL,"
    "  tags TEXT,"
    "  rule_priority INTEGER NOT NULL,"
    "  PRIMARY KEY (repo_id, seq)"
    ") WITHOUT ROWID;",
};

#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

enum berth_err meta_fail(struct meta *m, const char *what)
{
    int code = sqlite3_extended_errcode(m->db);
    log_error("event=db_error op=%s code=%d msg=\"%s\"", what, code, sqlite3_errmsg(m->db));
    if ((code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED) {
        return BERTH_EBUSY;
    }
    return BERTH_EDB;
}

sqlite3_stmt *meta_prepare(struct meta *m, const char *sql)
{
    uintptr_t h = ((uintptr_t)sql >> 3) % META_STMT_CACHE;
    for (size_t probe = 0; probe < META_STMT_CACHE; probe++) {
        struct meta_stmt_slot *slot = &m->cache[(h + probe) % META_STMT_CACHE];
        if (slot->sql == sql) {
            return slot->stmt;
        }
        if (slot->sql == NULL) {
            sqlite3_stmt *st = NULL;
            if (sqlite3_prepare_v3(m->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) !=
                SQLITE_OK) {
                meta_fail(m, "prepare");
                return NULL;
            }
            slot->sql = sql;
            slot->stmt = st;
            return st;
        }
    }
    /* The cache is sized well above the number of distinct statements;
     * reaching here is a programming error, but stay correct: the caller
     * gets an error rather than an uncached statement that would leak. */
    log_error("event=db_error op=prepare msg=\"statement cache full\"");
    return NULL;
}

void meta_done(sqlite3_stmt *st)
{
    if (st != NULL) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
}

enum berth_err meta_col_text(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    if (t == NULL) {
        dst[0] = '\0';
        return BERTH_OK;
    }
    size_t n = (size_t)sqlite3_column_bytes(st, i);
    if (n >= cap) {
        memcpy(dst, t, cap - 1);
        dst[cap - 1] = '\0';
        return BERTH_ETOOBIG;
    }
    memcpy(dst, t, n + 1);
    return BERTH_OK;
}

int meta_bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
    if (s == NULL || *s == '\0') {
        return sqlite3_bind_null(st, i);
    }
    return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

enum berth_err meta_step_done(struct meta *m, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    enum berth_err err = BERTH_OK;
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        if (sqlite3_extended_errcode(m->db) == SQLITE_CONSTRAINT_UNIQUE ||
            sqlite3_extended_errcode(m->db) == SQLITE_CONSTRAINT_PRIMARYKEY) {
            err = BERTH_EEXIST;
        } else {
            err = meta_fail(m, what);
        }
    }
    meta_done(st);
    return err;
}

enum berth_err meta_page(struct meta *m, sqlite3_stmt *st, int64_t limit, meta_row_fn row,
                         void *ctx, bool *has_more, const char *what)
{
    enum berth_err err = BERTH_OK;
    int64_t n = 0;
    bool more = false;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (limit >= 0 && n == limit) {
            more = true;
            break;
        }
        n++;
        if (row(st, ctx) != 0) {
            break;
        }
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        err = meta_fail(m, what);
    }
    meta_done(st);
    if (err == BERTH_OK && has_more != NULL) {
        *has_more = more;
    }
    return err;
}

enum berth_err meta_get_text(struct meta *m, sqlite3_stmt *st, char **out)
{
    int rc = sqlite3_step(st);
    enum berth_err err = BERTH_OK;
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        char *copy = NULL;
        if (t != NULL) {
            copy = strdup((const char *)t);
            if (copy == NULL) {
                err = BERTH_ENOMEM;
            }
        }
        if (err == BERTH_OK) {
            *out = copy;
        }
    } else if (rc == SQLITE_DONE) {
        err = BERTH_ENOTFOUND;
    } else {
        err = meta_fail(m, "get_text");
    }
    meta_done(st);
    return err;
}

static enum berth_err exec(struct meta *m, const char *sql, const char *what)
{
    char *msg = NULL;
    if (sqlite3_exec(m->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        log_error("event=db_error op=%s msg=\"%s\"", what, msg ? msg : "?");
        sqlite3_free(msg);
        int code = sqlite3_errcode(m->db);
        return (code == SQLITE_BUSY || code == SQLITE_LOCKED) ? BERTH_EBUSY : BERTH_EDB;
    }
    return BERTH_OK;
}

int meta_schema_version(struct meta *m)
{
    sqlite3_stmt *st = NULL;
    int version = -1;
    if (sqlite3_prepare_v2(m->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        version = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    return version;
}

/* Refuse a database that a newer berth has migrated past what this one
 * knows: its schema may not be what these statements expect. */
static enum berth_err check_not_newer(int version)
{
    if (version > NMIGRATIONS) {
        log_error("event=db_error op=migrate msg=\"database schema %d is newer than this berth "
                  "(%d)\"",
                  version, NMIGRATIONS);
        return BERTH_EDB;
    }
    return BERTH_OK;
}

static enum berth_err migrate(struct meta *m)
{
    int current = meta_schema_version(m);
    if (current >= NMIGRATIONS) {
        return check_not_newer(current);
    }
    /* Under the write lock, re-read the version: another process or
     * thread may have migrated meanwhile. */
    enum berth_err rc = meta_begin(m);
    if (rc != BERTH_OK) {
        return rc;
    }
    int version = meta_schema_version(m);
    if (version < 0) {
        meta_rollback(m);
        return BERTH_EDB;
    }
    rc = check_not_newer(version);
    if (rc != BERTH_OK) {
        meta_rollback(m);
        return rc;
    }
    for (int v = version; v < NMIGRATIONS; v++) {
        rc = exec(m, migrations[v], "migrate");
        if (rc != BERTH_OK) {
            meta_rollback(m);
            return rc;
        }
        char pragma[64];
        snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
        rc = exec(m, pragma, "migrate");
        if (rc != BERTH_OK) {
            meta_rollback(m);
            return rc;
        }
        log_info("event=db_migrated version=%d", v + 1);
    }
    return meta_commit(m);
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

enum berth_err meta_open(const char *path, bool sync_full, struct meta **out)
{
    struct meta *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return BERTH_ENOMEM;
    }
    enum berth_err rc = BERTH_OK;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &m->db, flags, NULL) != SQLITE_OK) {
        log_error("event=db_error op=open path=%s msg=\"%s\"", path,
                  m->db ? sqlite3_errmsg(m->db) : "out of memory");
        rc = BERTH_EDB;
        goto out;
    }
    protect_files(path);
    sqlite3_busy_timeout(m->db, 10000);
    sqlite3_extended_result_codes(m->db, 1);
    rc = exec(m, "PRAGMA journal_mode=WAL", "pragma");
    if (rc == BERTH_OK) {
        rc = exec(m, sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", "pragma");
    }
    if (rc == BERTH_OK) {
        rc = exec(m, "PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY", "pragma");
    }
    if (rc == BERTH_OK) {
        rc = migrate(m);
    }
out:
    if (rc != BERTH_OK) {
        meta_close(m);
        return rc;
    }
    *out = m;
    return BERTH_OK;
}

void meta_close(struct meta *m)
{
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < META_STMT_CACHE; i++) {
        sqlite3_finalize(m->cache[i].stmt);
    }
    sqlite3_close(m->db);
    free(m);
}

enum berth_err meta_begin(struct meta *m)
{
    enum berth_err rc = exec(m, "BEGIN IMMEDIATE", "begin");
    if (rc == BERTH_OK) {
        m->in_txn = 1;
    }
    return rc;
}

enum berth_err meta_begin_read(struct meta *m)
{
    enum berth_err rc = exec(m, "BEGIN", "begin");
    if (rc == BERTH_OK) {
        m->in_txn = 1;
    }
    return rc;
}

enum berth_err meta_commit(struct meta *m)
{
    enum berth_err rc = exec(m, "COMMIT", "commit");
    if (rc != BERTH_OK) {
        meta_rollback(m);
        return rc;
    }
    m->in_txn = 0;
    return BERTH_OK;
}

void meta_rollback(struct meta *m)
{
    if (!sqlite3_get_autocommit(m->db)) {
        sqlite3_exec(m->db, "ROLLBACK", NULL, NULL, NULL);
    }
    m->in_txn = 0;
}
