/*
 * Unit tests for storage/meta/copy.c's guard against a re-run after the
 * cut-over: a destination a migration wrote is marked once served
 * (meta_copy_note_served), and a later copy of the same source is refused
 * unless forced; a copy clears the mark; a database no migration wrote is
 * never marked. Two roots stand for the source and the destination. The
 * pairing of a database with its blob store is never copied.
 */
#include "unit.h"
#include "unit_meta.h"

#include <sqlite3.h>
#include <string.h>

#include "storage/meta/meta_copy.h"

static char src_root[512], dst_root[512];

static void test_rerun_after_serve(void)
{
    struct meta *src = unit_meta_open(src_root);
    struct meta *dst = unit_meta_open(dst_root);
    char id[33], why[512];
    CHECK_INT(meta_copy_registry_id(src, id), BERTH_OK);
    /* a source no migration wrote is never marked: its copy is not refused
     * below for the source's own serving */
    CHECK_INT(meta_copy_note_served(src, 1000), BERTH_OK);
    /* an empty destination, then the copy */
    CHECK_INT(meta_copy_check(dst, id, false, why, sizeof(why)), BERTH_OK);
    struct meta_copy_stats stats;
    CHECK_INT(meta_copy_all(src, dst, id, &stats, why, sizeof(why)), BERTH_OK);
    /* copied again before any server ran: allowed */
    CHECK_INT(meta_copy_check(dst, id, false, why, sizeof(why)), BERTH_OK);
    /* served: marked once (the first time is kept); a re-run is refused,
     * saying when it was first served; forced, allowed */
    CHECK_INT(meta_copy_note_served(dst, 1700000000000LL), BERTH_OK);
    CHECK_INT(meta_copy_note_served(dst, 1800000000000LL), BERTH_OK);
    CHECK_INT(meta_copy_check(dst, id, false, why, sizeof(why)), BERTH_EEXIST);
    CHECK(strstr(why, "2023-11-14T22:13:20Z") != NULL);
    CHECK(strstr(why, "--force") != NULL);
    CHECK_INT(meta_copy_check(dst, id, true, why, sizeof(why)), BERTH_OK);
    CHECK_INT(meta_copy_all(src, dst, id, &stats, why, sizeof(why)), BERTH_OK);
    /* the copy cleared the mark */
    CHECK_INT(meta_copy_check(dst, id, false, why, sizeof(why)), BERTH_OK);
    meta_close(dst);
    meta_close(src);
}

/* The pairing of a database with its blob store (META_COPY_STORE_SETTING)
 * is each database's own: made once and stable, not data that makes a
 * destination "hold another registry", never copied over the
 * destination's, and left out of the row comparison. */
static void test_store_id_kept(void)
{
    char a[512], b[512], c[512];
    snprintf(a, sizeof(a), "%s", unit_tmpdir());
    snprintf(b, sizeof(b), "%s", unit_tmpdir());
    snprintf(c, sizeof(c), "%s", unit_tmpdir());
    struct meta *src = unit_meta_open(a);
    struct meta *dst = unit_meta_open(b);
    struct meta *bare = unit_meta_open(c);
    char sid[33], did[33], got[33], id[33], why[512];
    CHECK_INT(meta_copy_store_id(src, false, sid), BERTH_OK);
    CHECK_STR(sid, "");
    CHECK_INT(meta_copy_store_id(src, true, sid), BERTH_OK);
    CHECK_INT((int)strlen(sid), 32);
    CHECK_INT(meta_copy_store_id(src, true, got), BERTH_OK);
    CHECK_STR(got, sid);
    CHECK_INT(meta_copy_store_id(src, false, got), BERTH_OK);
    CHECK_STR(got, sid);
    CHECK_INT(meta_copy_store_id(dst, true, did), BERTH_OK);
    CHECK(strcmp(did, sid) != 0);

    CHECK_INT(meta_copy_registry_id(src, id), BERTH_OK);
    CHECK_INT(meta_copy_check(dst, id, false, why, sizeof(why)), BERTH_OK);
    struct meta_copy_stats stats;
    CHECK_INT(meta_copy_all(src, dst, id, &stats, why, sizeof(why)), BERTH_OK);
    CHECK_INT(meta_copy_store_id(dst, false, got), BERTH_OK);
    CHECK_STR(got, did);
    CHECK_INT(meta_copy_store_id(src, false, got), BERTH_OK);
    CHECK_STR(got, sid);
    CHECK_INT(meta_copy_compare(src, dst, why, sizeof(why)), BERTH_OK);
    /* a destination without one gets none */
    CHECK_INT(meta_copy_all(src, bare, id, &stats, why, sizeof(why)), BERTH_OK);
    CHECK_INT(meta_copy_store_id(bare, false, got), BERTH_OK);
    CHECK_STR(got, "");
    CHECK_INT(meta_copy_compare(src, bare, why, sizeof(why)), BERTH_OK);
    meta_close(bare);
    meta_close(dst);
    meta_close(src);
    file_remove_tree(a);
    file_remove_tree(b);
    file_remove_tree(c);
}

/* The single integer answer of sql on the SQLite file path (-1 on error). */
static int sqlite_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int v = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* The pairing is read before a start may be refused: without creating or
 * migrating anything in the database. */
static void test_store_id_peek(void)
{
    char dir[512], path[600], got[33], id[33];
    snprintf(dir, sizeof(dir), "%s", unit_tmpdir());
    /* another application's database: none, and left as it was */
    snprintf(path, sizeof(path), "%s/other.db", dir);
    sqlite3 *db = NULL;
    CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_INT(sqlite3_exec(db, "CREATE TABLE app (x INT)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    snprintf(got, sizeof(got), "junk");
    CHECK_INT(meta_copy_store_id_peek("sqlite", path, got), BERTH_OK);
    CHECK_STR(got, "");
    CHECK_INT(sqlite_int(path, "PRAGMA user_version"), 0);
    CHECK_INT(sqlite_int(path, "SELECT count(*) FROM sqlite_master"), 1);
    /* berth's (SQLite in either pass), without and with one */
    struct meta *m = NULL;
    snprintf(path, sizeof(path), "%s/berth.db", dir);
    CHECK_INT(meta_open(path, false, &m), BERTH_OK);
    CHECK_INT(meta_copy_store_id_peek("sqlite", path, got), BERTH_OK);
    CHECK_STR(got, "");
    CHECK_INT(meta_copy_store_id(m, true, id), BERTH_OK);
    CHECK_INT(meta_copy_store_id_peek("sqlite", path, got), BERTH_OK);
    CHECK_STR(got, id);
    meta_close(m);
    file_remove_tree(dir);
}

int main(void)
{
    snprintf(src_root, sizeof(src_root), "%s", unit_tmpdir());
    snprintf(dst_root, sizeof(dst_root), "%s", unit_tmpdir());
    RUN(test_rerun_after_serve);
    RUN(test_store_id_kept);
    RUN(test_store_id_peek);
    file_remove_tree(src_root);
    file_remove_tree(dst_root);
    return unit_report("test_meta_copy");
}
