/*
 * Unit tests for scan/engine/dbsync.c over a real store (filesystem blobs,
 * SQLite): an import's database sealed into one file and published as a
 * generation; two "replica" roots installing it; a reader opened before a
 * new generation is swapped in still reading the old one; a blob whose
 * bytes do not match the generation's digest, and a blob that is not a
 * database, refused with the old copy kept and nothing left behind; a
 * second publication from a stale generation refused.
 */
#include "unit.h"
#include "unit_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/timeutil.h"
#include "scan/engine/scan_dbsync.h"
#include "scan/vulndb/vulndb.h"
#include "storage/blob/blob.h"
#include "storage/meta/meta_vulndb.h"

static char root[UNIT_ROOT_MAX];

static const char *path_in(const char *dir, const char *name)
{
    static char paths[16][1200];
    static int next;
    char *p = paths[next++ % 16];
    snprintf(p, sizeof(paths[0]), "%s/%s", dir, name);
    return p;
}

static void put(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK_INT(file_write_all(fd, text, strlen(text)), BERTH_OK);
    close(fd);
}

static bool exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* An OSV record of Debian 12's package, below a fix. */
static void write_record(const char *dir, const char *id, const char *package)
{
    char json[1024];
    snprintf(json, sizeof(json),
             "{\"id\":\"%s\",\"summary\":\"%s\",\"affected\":[{\"package\":{\"ecosystem\":"
             "\"Debian:12\",\"name\":\"%s\"},\"ranges\":[{\"type\":\"ECOSYSTEM\",\"events\":"
             "[{\"introduced\":\"0\"},{\"fixed\":\"99-1\"}]}]}]}",
             id, id, package);
    char name[300];
    snprintf(name, sizeof(name), "%s.json", id);
    CHECK_INT(file_mkdir_p(dir, 0755), BERTH_OK);
    put(path_in(dir, name), json);
}

/* (path_in's results last for the next 15 calls only.) */

/* Import dir's records into work/vulndb.db, seal it, and publish it from
 * generation expect. */
static enum berth_err build_and_publish(struct store *st, const char *work, const char *dir,
                                        int64_t expect, struct meta_vulndb *out, int64_t *records)
{
    struct vulndb_import_stats stats;
    char err[512];
    CHECK_INT(vulndb_import(work, dir, &stats, err, sizeof(err)), BERTH_OK);
    int64_t at = 0;
    CHECK_INT(vulndb_seal(work, records, &at, err, sizeof(err)), BERTH_OK);
    CHECK(at > 0);
    /* one self-contained file: no log beside it */
    CHECK(!exists(path_in(work, "vulndb.db-wal")));
    CHECK(!exists(path_in(work, "vulndb.db-shm")));
    CHECK_INT(vulndb_check_file(path_in(work, VULNDB_FILE), &at, err, sizeof(err)), BERTH_OK);
    return scan_dbsync_publish(st, path_in(work, VULNDB_FILE), expect, *records, at, out, err,
                               sizeof(err));
}

/* The number of findings for an image with openssl and bash. */
static size_t findings(struct vulndb *db)
{
    struct scan_os os;
    struct scan_pkgs pkgs;
    struct scan_findings f;
    CHECK_INT(scan_os_parse("ID=debian\nVERSION_ID=12\n", 23, &os), BERTH_OK);
    scan_pkgs_init(&pkgs);
    CHECK_INT(scan_pkgs_add(&pkgs, "openssl", "3.0.11-1", "amd64", NULL, NULL), BERTH_OK);
    CHECK_INT(scan_pkgs_add(&pkgs, "bash", "5.2.15-2", "amd64", NULL, NULL), BERTH_OK);
    scan_findings_init(&f);
    CHECK_INT(vulndb_match(db, &os, &pkgs, &f), BERTH_OK);
    size_t n = f.count;
    scan_findings_fini(&f);
    scan_pkgs_fini(&pkgs);
    return n;
}

static size_t leftovers(const char *dir)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        n += strstr(e->d_name, ".tmp-") != NULL;
    }
    if (d != NULL) {
        closedir(d);
    }
    return n;
}

static void installed_is(const char *replica, const char *digest)
{
    char have[DIGEST_STR_MAX] = "";
    CHECK_INT(scan_dbsync_installed(replica, have, sizeof(have)), BERTH_OK);
    CHECK_STR(have, digest);
}

/* Overwrite the blob's file with as many other bytes. */
static void damage(struct store *st, const char *digest)
{
    struct digest d;
    CHECK_INT(digest_parse(digest, &d), BERTH_OK);
    char path[1200];
    CHECK_INT(blob_local_path(store_blobs(st), &d, path, sizeof(path)), BERTH_OK);
    chmod(path, 0644);
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    char b[16] = "damaged damaged";
    CHECK_INT(file_pwrite_all(fd, b, sizeof(b), 100), BERTH_OK);
    close(fd);
}

static void test_publish_and_install(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    char work1[1200], work2[1200], osv[1200], a[1200], b[1200];
    snprintf(work1, sizeof(work1), "%s/work1", root);
    snprintf(work2, sizeof(work2), "%s/work2", root);
    snprintf(osv, sizeof(osv), "%s/osv", root);
    snprintf(a, sizeof(a), "%s/replica-a", root);
    snprintf(b, sizeof(b), "%s/replica-b", root);
    CHECK_INT(file_mkdir_p(a, 0755), BERTH_OK);
    CHECK_INT(file_mkdir_p(b, 0755), BERTH_OK);

    /* nothing published: nothing to do */
    bool got = true;
    CHECK_INT(scan_dbsync_update(st, a, &got), BERTH_OK);
    CHECK(!got);
    CHECK(!exists(path_in(a, VULNDB_SHARED_FILE)));
    char have[DIGEST_STR_MAX];
    CHECK_INT(scan_dbsync_installed(a, have, sizeof(have)), BERTH_ENOTFOUND);

    /* generation 1: openssl's record */
    write_record(osv, "DEBIAN-CVE-2000-0001", "openssl");
    struct meta_vulndb g1, g2, g3, stale;
    int64_t records = 0;
    CHECK_INT(build_and_publish(st, work1, osv, 0, &g1, &records), BERTH_OK);
    CHECK_INT(g1.generation, 1);
    CHECK_INT(records, 1);
    CHECK_INT(g1.records, 1);
    struct meta *m = store_meta(st);
    struct meta_vulndb row;
    CHECK_INT(meta_vulndb_get(m, &row), BERTH_OK);
    CHECK_STR(row.digest, g1.digest);
    struct meta_blob blob;
    CHECK_INT(meta_blob_get(m, g1.digest, &blob), BERTH_OK);
    CHECK_INT(blob.size, g1.size);

    CHECK_INT(scan_dbsync_update(st, a, &got), BERTH_OK);
    CHECK(got);
    installed_is(a, g1.digest);
    CHECK_INT(scan_dbsync_update(st, a, &got), BERTH_OK);
    CHECK(!got); /* already there */
    CHECK_INT(scan_dbsync_update(st, b, &got), BERTH_OK);
    CHECK(got);
    struct vulndb *old = NULL;
    CHECK_INT(vulndb_open(a, &old), BERTH_OK);
    CHECK_INT(vulndb_source_updated_at_ms(old), g1.imported_at_ms);
    CHECK_INT(findings(old), 1);

    /* generation 2 adds bash's record, built from generation 1's file */
    write_record(path_in(root, "osv2"), "DEBIAN-CVE-2000-0002", "bash");
    CHECK_INT(build_and_publish(st, work1, path_in(root, "osv2"), 1, &g2, &records), BERTH_OK);
    CHECK_INT(g2.generation, 2);
    CHECK_INT(records, 2);
    /* another import that started from generation 1 cannot publish over it */
    write_record(path_in(root, "osv3"), "DEBIAN-CVE-2000-0003", "bash");
    CHECK_INT(build_and_publish(st, work2, path_in(root, "osv3"), 1, &stale, &records),
              BERTH_ECONFLICT);
    CHECK_INT(meta_vulndb_get(m, &row), BERTH_OK);
    CHECK_STR(row.digest, g2.digest);

    CHECK_INT(scan_dbsync_update(st, a, &got), BERTH_OK);
    CHECK(got);
    installed_is(a, g2.digest);
    /* the reader opened before the swap still reads generation 1 */
    CHECK_INT(vulndb_source_updated_at_ms(old), g1.imported_at_ms);
    CHECK_INT(findings(old), 1);
    vulndb_close(old);
    struct vulndb *now = NULL;
    CHECK_INT(vulndb_open(a, &now), BERTH_OK);
    CHECK_INT(vulndb_source_updated_at_ms(now), g2.imported_at_ms);
    CHECK_INT(findings(now), 2);
    vulndb_close(now);
    /* the shared copy is read before a local vulndb.db */
    struct vulndb_summary sum;
    CHECK_INT(vulndb_summary(a, &sum), BERTH_OK);
    CHECK_INT(sum.records, 2);

    /* generation 3, damaged in the blob store: refused, generation 2 kept */
    write_record(path_in(root, "osv4"), "DEBIAN-CVE-2000-0004", "bash");
    CHECK_INT(build_and_publish(st, work1, path_in(root, "osv4"), 2, &g3, &records), BERTH_OK);
    damage(st, g3.digest);
    CHECK_INT(scan_dbsync_update(st, b, &got), BERTH_EDIGEST);
    CHECK(!got);
    installed_is(b, g1.digest);
    CHECK_INT(leftovers(b), 0);
    CHECK_INT(vulndb_open(b, &now), BERTH_OK);
    CHECK_INT(vulndb_source_updated_at_ms(now), g1.imported_at_ms);
    vulndb_close(now);
    /* not tried again at once */
    CHECK_INT(scan_dbsync_update(st, b, &got), BERTH_EDIGEST);
    /* a fetch of it elsewhere is refused and leaves nothing */
    char err[512] = "";
    char elsewhere[1200];
    snprintf(elsewhere, sizeof(elsewhere), "%s/elsewhere.db", root);
    CHECK_INT(scan_dbsync_fetch(st, &g3, elsewhere, err, sizeof(err)), BERTH_EDIGEST);
    CHECK(strstr(err, "refused") != NULL);
    CHECK(!exists(elsewhere));
    CHECK_INT(leftovers(root), 0);

    /* generation 4: bytes that match their digest but are not a database */
    char junk[1200];
    snprintf(junk, sizeof(junk), "%s/junk.db", root);
    put(junk, "this is not an SQLite database, whatever its digest says");
    struct meta_vulndb g4;
    CHECK_INT(scan_dbsync_publish(st, junk, 3, 1, 1, &g4, err, sizeof(err)), BERTH_OK);
    CHECK_INT(g4.generation, 4);
    CHECK_INT(scan_dbsync_update(st, a, &got), BERTH_EDB);
    installed_is(a, g2.digest);
    CHECK_INT(leftovers(a), 0);
    CHECK_INT(vulndb_open(a, &now), BERTH_OK);
    CHECK_INT(findings(now), 2);
    vulndb_close(now);
    unit_store_remove(st, root);
}

static void test_cleanup(void)
{
    char dir[UNIT_ROOT_MAX];
    snprintf(dir, sizeof(dir), "%s", unit_tmpdir());
    put(path_in(dir, "vulndb-shared.db.tmp-1-aa"), "old download");
    put(path_in(dir, "vulndb-shared.db.tmp-2-bb"), "a download under way");
    CHECK_INT(file_mkdir_p(path_in(dir, "vulndb-import-3/x"), 0755), BERTH_OK);
    CHECK_INT(file_mkdir_p(path_in(dir, "vulndb-migrate-4"), 0755), BERTH_OK);
    put(path_in(dir, "vulndb-shared.db"), "the copy in use");
    put(path_in(dir, "vulndb.db"), "a single node's");
    const char *old[] = {"vulndb-shared.db.tmp-1-aa", "vulndb-import-3", "vulndb-migrate-4",
                         "vulndb-shared.db", "vulndb.db"};
    for (size_t i = 0; i < sizeof(old) / sizeof(old[0]); i++) {
        struct timespec ts[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
        CHECK_INT(utimensat(AT_FDCWD, path_in(dir, old[i]), ts, 0), 0);
    }
    int64_t removed = -1;
    scan_dbsync_cleanup(dir, time_now_ms() - 3600000, &removed); /* older than an hour */
    CHECK_INT(removed, 3);
    CHECK(!exists(path_in(dir, "vulndb-shared.db.tmp-1-aa")));
    CHECK(!exists(path_in(dir, "vulndb-import-3")));
    CHECK(!exists(path_in(dir, "vulndb-migrate-4")));
    CHECK(exists(path_in(dir, "vulndb-shared.db")));
    CHECK(exists(path_in(dir, "vulndb.db")));
    /* a recent one is left to the process writing it */
    CHECK(exists(path_in(dir, "vulndb-shared.db.tmp-2-bb")));
    CHECK_INT(file_remove_tree(dir), BERTH_OK);
}

int main(void)
{
    RUN(test_publish_and_install);
    RUN(test_cleanup);
    return unit_report("test_dbsync");
}
