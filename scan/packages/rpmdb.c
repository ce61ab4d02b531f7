/*
 * rpm's SQLite package database (rpmdb.sqlite), read from memory for the
 * scanner: the image's file bytes are deserialized into a read-only
 * in-memory SQLite database and the header blobs of the Packages table are
 * handed to scan_rpm_header_parse. The file is untrusted, so the
 * connection runs with SQLite's defensive settings and a cap on the work a
 * query may do. Thread-safe: one private connection per call.
 */
#include "scan/packages/scan_inventory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/str.h"

/* Progress-handler calls (every 1000 VM steps) before a query is stopped. */
#define RPMDB_MAX_PROGRESS 200000

static int progress(void *arg)
{
    int *calls = arg;
    return ++*calls > RPMDB_MAX_PROGRESS;
}

enum berth_err scan_rpmdb_parse(const void *db, size_t len, struct scan_pkgs *pkgs, char *reason,
                                size_t cap)
{
    static const char magic[16] = "SQLite format 3";
    enum berth_err rc = BERTH_OK;
    sqlite3 *conn = NULL;
    sqlite3_stmt *st = NULL;
    unsigned char *copy = NULL;
    int calls = 0;
    if (len < 512 || memcmp(db, magic, sizeof(magic)) != 0) {
        str_say(reason, cap, "not an SQLite database");
        return BERTH_EINVAL;
    }
    if (len > (size_t)INT32_MAX) {
        str_say(reason, cap, "database too large");
        return BERTH_ETOOBIG;
    }
    copy = malloc(len);
    if (copy == NULL) {
        return BERTH_ENOMEM;
    }
    memcpy(copy, db, len);
    /* rpm leaves its database in WAL mode; an in-memory copy has no WAL
     * file, so read it as a rollback-journal database instead */
    if (copy[18] == 2) {
        copy[18] = 1;
    }
    if (copy[19] == 2) {
        copy[19] = 1;
    }
    if (sqlite3_open_v2(":memory:", &conn, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        rc = conn ? BERTH_EDB : BERTH_ENOMEM;
        goto out;
    }
    sqlite3_db_config(conn, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    sqlite3_db_config(conn, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
    sqlite3_db_config(conn, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, NULL);
    sqlite3_db_config(conn, SQLITE_DBCONFIG_ENABLE_VIEW, 0, NULL);
    sqlite3_limit(conn, SQLITE_LIMIT_LENGTH, 16 << 20);
    sqlite3_limit(conn, SQLITE_LIMIT_SQL_LENGTH, 4096);
    sqlite3_limit(conn, SQLITE_LIMIT_ATTACHED, 0);
    sqlite3_progress_handler(conn, 1000, progress, &calls);
    if (sqlite3_deserialize(conn, "main", copy, (sqlite3_int64)len, (sqlite3_int64)len,
                            SQLITE_DESERIALIZE_READONLY) != SQLITE_OK) {
        str_say(reason, cap, "cannot open the database: %s", sqlite3_errmsg(conn));
        rc = BERTH_EINVAL;
        goto out;
    }
    sqlite3_exec(conn, "PRAGMA cell_size_check=ON", NULL, NULL, NULL);
    if (sqlite3_prepare_v2(conn, "SELECT blob FROM Packages ORDER BY hnum", -1, &st, NULL) !=
        SQLITE_OK) {
        str_say(reason, cap, "no rpm Packages table: %s", sqlite3_errmsg(conn));
        rc = BERTH_EINVAL;
        goto out;
    }
    int step;
    size_t row = 0;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        row++;
        const void *blob = sqlite3_column_blob(st, 0);
        int n = sqlite3_column_bytes(st, 0);
        if (blob == NULL || n <= 0) {
            str_say(reason, cap, "package %zu: empty header", row);
            rc = BERTH_EINVAL;
            goto out;
        }
        rc = scan_rpm_header_parse(blob, (size_t)n, pkgs);
        if (rc == BERTH_EINVAL) {
            str_say(reason, cap, "package %zu: malformed rpm header", row);
        } else if (rc == BERTH_ETOOBIG) {
            str_say(reason, cap, "more than %d packages", SCAN_MAX_PACKAGES);
        }
        if (rc != BERTH_OK) {
            goto out;
        }
    }
    if (step != SQLITE_DONE) {
        str_say(reason, cap, "reading the database: %s",
                calls > RPMDB_MAX_PROGRESS ? "too much work" : sqlite3_errmsg(conn));
        rc = BERTH_EINVAL;
        goto out;
    }
out:
    sqlite3_finalize(st);
    sqlite3_close(conn);
    free(copy);
    return rc;
}
