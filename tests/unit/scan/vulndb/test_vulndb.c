/*
 * Unit tests for scan/vulndb/vulndb.c and scan/vulndb/sqlite.c: OSV records
 * written here are imported from a directory and from .tar.gz, .tgz,
 * .tar.zst, .tzst, .tar and .zip archives, then matched against package lists: source-package
 * matching, release-less ecosystems, other releases and ecosystems that
 * must not match, fixed vs last_affected, versions lists, withdrawn and
 * invalid records, re-imports, the description and uri limits, and
 * failed imports that change nothing.
 */
#include "unit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/str.h"
#include "common/timeutil.h"
#include "scan/vulndb/vulndb.h"
#include "unit_scan.h"

static char dir[512];

static const char *tmp(const char *name)
{
    static char paths[64][600];
    static int next;
    char *p = paths[next++ % 64];
    snprintf(p, sizeof(paths[0]), "%s/%s", dir, name);
    return p;
}

static void put(const char *path, const char *text)
{
    tl_write_bytes(path, text, strlen(text));
}

#define V3_HIGH "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N" /* 7.5 */
#define V3_CRIT "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H" /* 9.8 */

static const struct {
    const char *file;
    const char *json;
} records[] = {
    /* openssl in Debian 12: fixed in 3.0.11-1~deb12u2 */
    {"DSA-5532-1.json",
     "{\"id\":\"DSA-5532-1\",\"modified\":\"2023-11-05T12:00:00Z\",\"aliases\":[\"CVE-2023-5363\"],"
     "\"summary\":\"openssl - security "
     "update\",\"severity\":[{\"type\":\"CVSS_V3\",\"score\":\"" V3_HIGH
     "\"}],\"affected\":[{\"package\":{\"ecosystem\":\"Debian:12\",\"name\":\"openssl\"},"
     "\"ranges\":[{\"type\":\"ECOSYSTEM\",\"events\":[{\"introduced\":\"0\"},"
     "{\"fixed\":\"3.0.11-1~deb12u2\"}]}]}],\"references\":[{\"type\":\"ADVISORY\",\"url\":"
     "\"https://www.debian.org/security/2023/dsa-5532\"}]}"},
    /* the same CVE again as a per-CVE record: reported once */
    {"DEBIAN-CVE-2023-5363.json",
     "{\"id\":\"DEBIAN-CVE-2023-5363\",\"upstream\":[\"CVE-2023-5363\"],\"details\":\"Key and IV "
     "length issue\",\"affected\":[{\"package\":{\"ecosystem\":\"Debian:12\",\"name\":\"openssl\"},"
     "\"ranges\":[{\"type\":\"ECOSYSTEM\",\"events\":[{\"introduced\":\"0\"},"
     "{\"fixed\":\"3.0.11-1~deb12u2\"}]}]}]}"},
    /* glibc, unfixed, no severity: UNDEFINED */
    {"DEBIAN-CVE-2024-0001.json",
     "{\"id\":\"DEBIAN-CVE-2024-0001\",\"upstream\":[\"CVE-2024-0001\"],\"summary\":\"glibc bug\","
     "\"affected\":[{\"package\":{\"ecosystem\":\"Debian:12\",\"name\":\"glibc\"},\"ranges\":[{"
     "\"type\":\"ECOSYSTEM\",\"events\":[{\"introduced\":\"0\"}]}]}]}"},
    /* the binary name is not the key: libc6 must not match */
    {"TEST-BINARY-NAME.json",
     "{\"id\":\"CVE-2024-0002\",\"affected\":[{\"package\":{\"ecosystem\":\"Debian:12\","
     "\"name\":\"libc6\"},\"ranges\":[{\"type\":\"ECOSYSTEM\",\"events\":[{\"introduced\":\"0\"}]"
     "}]}]}"},
    /* zlib in every Debian release; compared with the Source version */
    {"sub/dir/DLA-9999-1.json",
     "{\"id\":\"DLA-9999-1\",\"aliases\":[\"CVE-2022-37434\"],\"summary\":\"zlib heap overflow\","
     "\"affected\":[{\"package\":{\"ecosystem\":\"Debian\",\"name\":\"zlib\"},\"severity\":[{"
     "\"type\":\"CVSS_V3\",\"score\":\"" V3_CRIT
     "\"}],\"ranges\":[{\"type\":\"ECOSYSTEM\",\"events\":"
     "[{\"introduced\":\"0\"},{\"fixed\":\"1:1.2.13.dfsg-2\"}]}]}]}"},
    /* other releases and ecosystems must not match a Debian 12 image */
    {"DSA-OLD.json",
     "{\"id\":\"DSA-4000-1\",\"aliases\":[\"CVE-2017-0001\"],\"affected\":[{\"package\":{"
     "\"ecosystem\":\"Debian:11\",\"name\":\"openssl\"},\"ranges\":[{\"type\":\"ECOSYSTEM\","
     "\"events\":[{\"introduced\":\"0\"}]}]}]}"},
    {"ALPINE-1.json",
     "{\"id\":\"ALPINE-CVE-2023-5363\",\"upstream\":[\"CVE-2023-5363\"],\"affected\":[{"
     "\"package\":{\"ecosystem\":\"Alpine:v3.19\",\"name\":\"openssl\"},\"ranges\":[{\"type\":"
     "\"ECOSYSTEM\",\"events\":[{\"introduced\":\"0\"},{\"fixed\":\"3.1.4-r1\"}]}]}]}"},
    {"GHSA-npm.json",
     "{\"id\":\"GHSA-aaaa-bbbb-cccc\",\"aliases\":[\"CVE-2024-9999\"],\"affected\":[{\"package\":"
     "{\"ecosystem\":\"npm\",\"name\":\"openssl\"},\"ranges\":[{\"type\":\"SEMVER\",\"events\":["
     "{\"introduced\":\"0\"}]}]}]}"},
    /* curl: last_affected includes the version itself */
    {"CURL-1.json",
     "{\"id\":\"CVE-2024-1111\",\"database_specific\":{\"severity\":\"MODERATE\"},\"affected\":[{"
     "\"package\":{\"ecosystem\":\"Debian:12\",\"name\":\"curl\"},\"ranges\":[{\"type\":"
     "\"ECOSYSTEM\",\"events\":[{\"introduced\":\"7.50.0-1\"},"
     "{\"last_affected\":\"7.88.1-10+deb12u5\"}]}]}]}"},
    /* curl: fixed excludes the version itself */
    {"CURL-2.json",
     "{\"id\":\"CVE-2024-2222\",\"affected\":[{\"package\":{\"ecosystem\":\"Debian:12\",\"name\":"
     "\"curl\"},\"ranges\":[{\"type\":\"ECOSYSTEM\",\"events\":[{\"introduced\":\"0\"},"
     "{\"fixed\":\"7.88.1-10+deb12u5\"}]}]}]}"},
    /* a versions list only */
    {"TAR-1.json",
     "{\"id\":\"CVE-2024-3333\",\"summary\":\"tar\",\"affected\":[{\"package\":{\"ecosystem\":"
     "\"Debian:12\",\"name\":\"tar\"},\"versions\":[\"1.34+dfsg-1.1\",\"1.34+dfsg-1.2\"]}]}"},
    /* withdrawn: never stored */
    {"WITHDRAWN.json",
     "{\"id\":\"CVE-2024-4444\",\"withdrawn\":\"2024-02-01T00:00:00Z\",\"affected\":[{\"package\":"
     "{\"ecosystem\":\"Debian:12\",\"name\":\"tar\"},\"ranges\":[{\"type\":\"ECOSYSTEM\","
     "\"events\":[{\"introduced\":\"0\"}]}]}]}"},
    /* not OSV at all */
    {"broken.json", "{\"id\": \"X\", "},
    /* not a .json file: ignored */
    {"README.txt", "these are test records"},
};

#define RECORD_COUNT (sizeof(records) / sizeof(records[0]))

static void write_records(const char *root)
{
    char path[700];
    snprintf(path, sizeof(path), "%s/sub/dir", root);
    CHECK_INT(file_mkdir_p(path, 0755), BERTH_OK);
    for (size_t i = 0; i < RECORD_COUNT; i++) {
        snprintf(path, sizeof(path), "%s/%s", root, records[i].file);
        put(path, records[i].json);
    }
}

static void debian_image(struct scan_os *os, struct scan_pkgs *pkgs)
{
    CHECK_INT(scan_os_parse("ID=debian\nVERSION_ID=12\n", 23, os), BERTH_OK);
    scan_pkgs_init(pkgs);
    CHECK_INT(scan_pkgs_add(pkgs, "libssl3", "3.0.11-1~deb12u1", "amd64", "openssl", NULL),
              BERTH_OK);
    CHECK_INT(scan_pkgs_add(pkgs, "openssl", "3.0.11-1~deb12u1", "amd64", NULL, NULL), BERTH_OK);
    CHECK_INT(scan_pkgs_add(pkgs, "libc6", "2.36-9+deb12u3", "amd64", "glibc", NULL), BERTH_OK);
    CHECK_INT(
        scan_pkgs_add(pkgs, "zlib1g", "1:1.2.13.dfsg-1+b1", "amd64", "zlib", "1:1.2.13.dfsg-1"),
        BERTH_OK);
    CHECK_INT(scan_pkgs_add(pkgs, "curl", "7.88.1-10+deb12u5", "amd64", NULL, NULL), BERTH_OK);
    CHECK_INT(scan_pkgs_add(pkgs, "tar", "1.34+dfsg-1.2", "amd64", NULL, NULL), BERTH_OK);
    CHECK_INT(scan_pkgs_add(pkgs, "bash", "5.2.15-2+b2", "amd64", "bash", "5.2.15-2"), BERTH_OK);
}

/* The expected findings for debian_image, in their final order. */
static const struct {
    const char *name;
    const char *pkg;
    const char *ver;
    const char *sev;
    const char *source_id;
} expected[] = {
    {"CVE-2022-37434", "zlib", "1:1.2.13.dfsg-1", "CRITICAL", "DLA-9999-1"},
    {"CVE-2023-5363", "openssl", "3.0.11-1~deb12u1", "HIGH", "DSA-5532-1"},
    {"CVE-2024-1111", "curl", "7.88.1-10+deb12u5", "MEDIUM", "CVE-2024-1111"},
    {"CVE-2024-0001", "glibc", "2.36-9+deb12u3", "UNDEFINED", "DEBIAN-CVE-2024-0001"},
    {"CVE-2024-3333", "tar", "1.34+dfsg-1.2", "UNDEFINED", "CVE-2024-3333"},
};

#define EXPECTED_COUNT (sizeof(expected) / sizeof(expected[0]))

static void check_findings(struct vulndb *db)
{
    struct scan_os os;
    struct scan_pkgs pkgs;
    struct scan_findings f;
    debian_image(&os, &pkgs);
    scan_findings_init(&f);
    CHECK_INT(vulndb_match(db, &os, &pkgs, &f), BERTH_OK);
    scan_findings_finish(&f);
    CHECK_INT(f.count, EXPECTED_COUNT);
    for (size_t i = 0; i < f.count && i < EXPECTED_COUNT; i++) {
        CHECK_STR(f.items[i].name, expected[i].name);
        CHECK_STR(f.items[i].package_name, expected[i].pkg);
        CHECK_STR(f.items[i].package_version, expected[i].ver);
        CHECK_STR(scan_severity_name(f.items[i].severity), expected[i].sev);
        CHECK_STR(f.items[i].source_id, expected[i].source_id);
        /* what the scanner knew besides: the manager, the arch, the OS */
        CHECK_STR(f.items[i].package_manager, "dpkg");
        CHECK_STR(f.items[i].package_arch, "amd64");
        CHECK_STR(f.items[i].platform, "DEBIAN_12");
    }
    if (f.count == EXPECTED_COUNT) {
        CHECK_INT(f.items[0].cvss3_tenths, 98);
        CHECK_STR(f.items[0].cvss3_vector, V3_CRIT);
        CHECK_STR(f.items[0].description, "zlib heap overflow");
        CHECK(f.items[0].uri == NULL);
        CHECK_INT(f.items[1].cvss3_tenths, 75);
        CHECK_STR(f.items[1].uri, "https://www.debian.org/security/2023/dsa-5532");
        CHECK_STR(f.items[1].description, "openssl - security update");
        CHECK_INT(f.items[2].cvss3_tenths, -1);
        CHECK(f.items[2].cvss3_vector == NULL);
    }
    scan_findings_fini(&f);
    scan_pkgs_fini(&pkgs);
}

static void test_import_dir_and_match(void)
{
    const char *src = tmp("records");
    const char *root = tmp("root");
    CHECK_INT(file_mkdir_p(src, 0755), BERTH_OK);
    write_records(src);

    struct vulndb *db = NULL;
    CHECK_INT(vulndb_open(root, &db), BERTH_ENOTFOUND);
    struct vulndb_summary sum;
    CHECK_INT(vulndb_summary(root, &sum), BERTH_ENOTFOUND);

    struct vulndb_import_stats st;
    char err[256] = "";
    int64_t before = time_now_ms();
    CHECK_INT(vulndb_import(root, src, &st, err, sizeof(err)), BERTH_OK);
    CHECK_STR(err, "");
    CHECK_INT(st.files, RECORD_COUNT - 1); /* README.txt is not read */
    CHECK_INT(st.records, 10);
    CHECK_INT(st.withdrawn, 1);
    CHECK_INT(st.not_os, 1);
    CHECK_INT(st.invalid, 1);
    CHECK(strstr(st.first_invalid, "broken.json: invalid JSON") != NULL);
    CHECK(st.imported_at_ms >= before && st.imported_at_ms <= time_now_ms());

    CHECK_INT(vulndb_open(root, &db), BERTH_OK);
    CHECK(db != NULL);
    if (db == NULL) {
        return;
    }
    CHECK_INT(vulndb_source_updated_at_ms(db), st.imported_at_ms);
    check_findings(db);

    /* the summary a status page shows */
    CHECK_INT(vulndb_summary(root, &sum), BERTH_OK);
    CHECK_INT(sum.records, 10);
    CHECK_INT(sum.updated_at_ms, st.imported_at_ms);
    CHECK(sum.file_bytes > 0);
    CHECK_INT(sum.schema_version, VULNDB_SCHEMA_VERSION);
    CHECK_INT(sum.ecosystem_count, 4); /* in name order, records per ecosystem */
    CHECK_STR(sum.ecosystems[0].name, "Alpine:v3.19");
    CHECK_INT(sum.ecosystems[0].records, 1);
    CHECK_STR(sum.ecosystems[1].name, "Debian");
    CHECK_STR(sum.ecosystems[2].name, "Debian:11");
    CHECK_STR(sum.ecosystems[3].name, "Debian:12");
    CHECK_INT(sum.ecosystems[3].records, 7);

    /* the same packages on Alpine match only the Alpine record, by origin */
    struct scan_os os;
    struct scan_pkgs pkgs;
    struct scan_findings f;
    CHECK_INT(scan_os_parse("ID=alpine\nVERSION_ID=3.19.0\n", 27, &os), BERTH_OK);
    scan_pkgs_init(&pkgs);
    scan_findings_init(&f);
    CHECK_INT(scan_pkgs_add(&pkgs, "libcrypto3", "3.1.4-r0", NULL, "openssl", NULL), BERTH_OK);
    CHECK_INT(scan_pkgs_add(&pkgs, "libssl3", "3.1.4-r0", NULL, "openssl", NULL), BERTH_OK);
    CHECK_INT(scan_pkgs_add(&pkgs, "zlib", "1.3-r0", NULL, NULL, NULL), BERTH_OK);
    CHECK_INT(vulndb_match(db, &os, &pkgs, &f), BERTH_OK);
    scan_findings_finish(&f);
    CHECK_INT(f.count, 1);
    if (f.count == 1) {
        CHECK_STR(f.items[0].name, "CVE-2023-5363");
        CHECK_STR(f.items[0].package_name, "openssl");
        CHECK_STR(f.items[0].package_version, "3.1.4-r0");
        CHECK_STR(f.items[0].source_id, "ALPINE-CVE-2023-5363");
    }
    scan_findings_fini(&f);
    scan_pkgs_fini(&pkgs);

    /* an image with no packages has no findings */
    scan_pkgs_init(&pkgs);
    CHECK_INT(vulndb_match(db, &os, &pkgs, &f), BERTH_OK);
    CHECK_INT(f.count, 0);
    vulndb_close(db);

    /* Re-import: a newer openssl record that no longer matches, a record
     * withdrawn since, and a new one; everything else stays. */
    const char *upd = tmp("update");
    CHECK_INT(file_mkdir_p(upd, 0755), BERTH_OK);
    char path[700];
    snprintf(path, sizeof(path), "%s/DSA-5532-1.json", upd);
    put(path, "{\"id\":\"DSA-5532-1\",\"aliases\":[\"CVE-2023-5363\"],\"affected\":[{\"package\":"
              "{\"ecosystem\":\"Debian:12\",\"name\":\"openssl\"},\"ranges\":[{\"type\":"
              "\"ECOSYSTEM\",\"events\":[{\"introduced\":\"0\"},{\"fixed\":\"3.0.9-1\"}]}]}]}");
    snprintf(path, sizeof(path), "%s/DEBIAN-CVE-2023-5363.json", upd);
    put(path, "{\"id\":\"DEBIAN-CVE-2023-5363\",\"withdrawn\":\"2024-01-01T00:00:00Z\"}");
    snprintf(path, sizeof(path), "%s/BASH.json", upd);
    put(path, "{\"id\":\"CVE-2024-5555\",\"affected\":[{\"package\":{\"ecosystem\":\"Debian:12\","
              "\"name\":\"bash\"},\"ranges\":[{\"type\":\"ECOSYSTEM\",\"events\":[{\"introduced\":"
              "\"0\"},{\"fixed\":\"5.2.15-2+deb12u1\"}]}]}]}");
    CHECK_INT(vulndb_import(root, upd, &st, err, sizeof(err)), BERTH_OK);
    CHECK_INT(st.files, 3);
    CHECK_INT(st.records, 2);
    CHECK_INT(st.withdrawn, 1);
    CHECK_INT(vulndb_open(root, &db), BERTH_OK);
    struct scan_pkgs deb;
    debian_image(&os, &deb);
    scan_findings_init(&f);
    CHECK_INT(vulndb_match(db, &os, &deb, &f), BERTH_OK);
    scan_findings_finish(&f);
    CHECK_INT(f.count, 5);
    bool has_openssl = false, has_bash = false;
    for (size_t i = 0; i < f.count; i++) {
        has_openssl |= strcmp(f.items[i].package_name, "openssl") == 0;
        if (strcmp(f.items[i].name, "CVE-2024-5555") == 0) {
            has_bash = true;
            /* compared with the Source version, not the binNMU's */
            CHECK_STR(f.items[i].package_version, "5.2.15-2");
        }
    }
    CHECK(!has_openssl);
    CHECK(has_bash);
    scan_findings_fini(&f);
    scan_pkgs_fini(&deb);
    vulndb_close(db);
}

/* ECR's limits on a finding's description and uri are applied at import:
 * the description cut without splitting a UTF-8 character, a long uri
 * dropped. */
static void test_import_limits(void)
{
    /* the cut itself (common/str.c) */
    CHECK_INT(str_utf8_cut("abc", 3), 3);
    CHECK_INT(str_utf8_cut("abc", 10), 3);
    CHECK_INT(str_utf8_cut("ab\xc3\xa9", 3), 2);        /* é would be split */
    CHECK_INT(str_utf8_cut("ab\xc3\xa9", 4), 4);        /* é ends at the limit */
    CHECK_INT(str_utf8_cut("a\xe2\x82\xac!", 2), 1);    /* € would be split after 1 byte */
    CHECK_INT(str_utf8_cut("a\xe2\x82\xac!", 3), 1);    /* ... or after 2 */
    CHECK_INT(str_utf8_cut("\xf0\x9f\x98\x80x", 3), 0); /* nothing fits */
    CHECK_INT(str_utf8_cut("", 0), 0);

    const char *src = tmp("limits");
    const char *root = tmp("root-limits");
    CHECK_INT(file_mkdir_p(src, 0755), BERTH_OK);
    static char json[8000];
    char summary[3001], uri[SCAN_URI_MAX + 2];
    memset(summary, 'a', sizeof(summary) - 1);
    summary[sizeof(summary) - 1] = '\0';
    memset(uri, 'u', sizeof(uri) - 1);
    uri[sizeof(uri) - 1] = '\0';
    memcpy(uri, "https://x/", 10);
    const char *const pkgs[2] = {"straddle", "exact"};
    for (int i = 0; i < 2; i++) {
        if (i == 0) {
            memcpy(summary + 2047, "\xe2\x82\xac", 3); /* € straddles 2048 */
        } else {
            memset(summary + 2040, 'a', 10);
            memcpy(summary + 2046, "\xc3\xa9", 2); /* é ends exactly at 2048 */
        }
        snprintf(json, sizeof(json),
                 "{\"id\":\"CVE-2024-900%d\",\"summary\":\"%s\",\"references\":[{\"type\":"
                 "\"ADVISORY\",\"url\":\"%s\"}],\"affected\":[{\"package\":{\"ecosystem\":"
                 "\"Debian:12\",\"name\":\"%s\"},\"ranges\":[{\"type\":\"ECOSYSTEM\","
                 "\"events\":[{\"introduced\":\"0\"}]}]}]}",
                 i, summary, i == 0 ? uri : "https://x/short", pkgs[i]);
        char path[700];
        snprintf(path, sizeof(path), "%s/r%d.json", src, i);
        put(path, json);
    }
    struct vulndb_import_stats st;
    char err[256] = "";
    CHECK_INT(vulndb_import(root, src, &st, err, sizeof(err)), BERTH_OK);
    CHECK_INT(st.records, 2);
    struct vulndb *db = NULL;
    CHECK_INT(vulndb_open(root, &db), BERTH_OK);
    if (db == NULL) {
        return;
    }
    struct scan_os os;
    struct scan_pkgs list;
    struct scan_findings f;
    CHECK_INT(scan_os_parse("ID=debian\nVERSION_ID=12\n", 23, &os), BERTH_OK);
    scan_pkgs_init(&list);
    scan_findings_init(&f);
    CHECK_INT(scan_pkgs_add(&list, "straddle", "1.0", NULL, NULL, NULL), BERTH_OK);
    CHECK_INT(scan_pkgs_add(&list, "exact", "1.0", NULL, NULL, NULL), BERTH_OK);
    CHECK_INT(vulndb_match(db, &os, &list, &f), BERTH_OK);
    scan_findings_finish(&f);
    CHECK_INT(f.count, 2);
    if (f.count == 2) {
        CHECK_STR(f.items[0].name, "CVE-2024-9000");
        CHECK_INT(strlen(f.items[0].description), 2047);
        CHECK(f.items[0].uri == NULL);
        CHECK_STR(f.items[1].name, "CVE-2024-9001");
        CHECK_INT(strlen(f.items[1].description), 2048);
        CHECK_STR(f.items[1].description + 2046, "\xc3\xa9");
        CHECK_STR(f.items[1].uri, "https://x/short");
    }
    scan_findings_fini(&f);
    scan_pkgs_fini(&list);
    vulndb_close(db);
}

/* A failed import leaves the previous database exactly as it was. */
static void test_failed_import_keeps_data(void)
{
    const char *src = tmp("records2");
    const char *root = tmp("root2");
    CHECK_INT(file_mkdir_p(src, 0755), BERTH_OK);
    write_records(src);
    struct vulndb_import_stats st;
    char err[256];
    CHECK_INT(vulndb_import(root, src, &st, err, sizeof(err)), BERTH_OK);
    int64_t first = st.imported_at_ms;

    /* an archive that breaks halfway, after some good records */
    static const struct tl_entry many[] = {
        TL_F("a/CVE-1.json", "{\"id\":\"CVE-2030-1\",\"affected\":[{\"package\":{\"ecosystem\":"
                             "\"Debian:12\",\"name\":\"bash\"},\"versions\":[\"5.2.15-2\"]}]}"),
        TL_BIGF("filler.bin", 300000),
        TL_F("a/CVE-2.json", "{\"id\":\"CVE-2030-2\"}"),
    };
    const char *full = tmp("good.tar.gz");
    tl_write(full, TL_GZIP, many, 3);
    char *buf = NULL;
    size_t len = 0;
    CHECK_INT(file_read_bounded(full, 1 << 24, &buf, &len), BERTH_OK);
    const char *cut = tmp("cut.tar.gz");
    tl_write_bytes(cut, buf, len / 2);
    free(buf);
    time_sleep_ms(5);
    CHECK_INT(vulndb_import(root, cut, &st, err, sizeof(err)), BERTH_EINVAL);
    CHECK(strstr(err, "cut.tar.gz") != NULL);

    struct vulndb *db = NULL;
    CHECK_INT(vulndb_open(root, &db), BERTH_OK);
    if (db != NULL) {
        CHECK_INT(vulndb_source_updated_at_ms(db), first);
        check_findings(db); /* CVE-2030-1 was rolled back */
        vulndb_close(db);
    }

    /* paths that are not importable */
    CHECK_INT(vulndb_import(root, tmp("does-not-exist"), &st, err, sizeof(err)), BERTH_ENOTFOUND);
    const char *empty = tmp("empty-dir");
    CHECK_INT(file_mkdir_p(empty, 0755), BERTH_OK);
    CHECK_INT(vulndb_import(root, empty, &st, err, sizeof(err)), BERTH_ENOTFOUND);
    CHECK(strstr(err, "no .json files") != NULL);
    const char *txt = tmp("notes.txt");
    put(txt, "hello");
    CHECK_INT(vulndb_import(root, txt, &st, err, sizeof(err)), BERTH_EINVAL);
    const char *junk = tmp("junk.tar.gz");
    put(junk, "this is not gzip");
    CHECK_INT(vulndb_import(root, junk, &st, err, sizeof(err)), BERTH_EINVAL);
    CHECK_INT(vulndb_open(root, &db), BERTH_OK);
    if (db != NULL) {
        CHECK_INT(vulndb_source_updated_at_ms(db), first);
        vulndb_close(db);
    }
}

/* OSV publishes archives per ecosystem; each supported kind imports. */
static void test_archives(void)
{
    struct tl_entry entries[RECORD_COUNT];
    for (size_t i = 0; i < RECORD_COUNT; i++) {
        entries[i] = (struct tl_entry)TL_F(records[i].file, records[i].json);
    }
    static const char *const names[] = {"osv.tar.gz", "osv.tar.zst", "osv.zip",
                                        "osv.tgz",    "osv.tzst",    "osv.tar"};
    static const enum tl_comp comps[] = {TL_GZIP, TL_ZSTD, TL_NONE, TL_GZIP, TL_ZSTD, TL_NONE};
    for (int k = 0; k < 6; k++) {
        char rootname[32];
        snprintf(rootname, sizeof(rootname), "root-%s", names[k]);
        const char *root = tmp(rootname);
        const char *path = tmp(names[k]);
        if (k != 2) {
            tl_write(path, comps[k], entries, RECORD_COUNT);
        } else {
            struct archive *a = archive_write_new();
            archive_write_set_format_zip(a);
            CHECK_INT(archive_write_open_filename(a, path), ARCHIVE_OK);
            for (size_t i = 0; i < RECORD_COUNT; i++) {
                struct archive_entry *e = archive_entry_new();
                archive_entry_set_pathname(e, records[i].file);
                archive_entry_set_filetype(e, AE_IFREG);
                archive_entry_set_perm(e, 0644);
                archive_entry_set_size(e, (la_int64_t)strlen(records[i].json));
                archive_write_header(a, e);
                archive_write_data(a, records[i].json, strlen(records[i].json));
                archive_entry_free(e);
            }
            archive_write_close(a);
            archive_write_free(a);
        }
        struct vulndb_import_stats st;
        char err[256] = "";
        CHECK_INT(vulndb_import(root, path, &st, err, sizeof(err)), BERTH_OK);
        CHECK_INT(st.files, RECORD_COUNT - 1);
        CHECK_INT(st.records, 10);
        struct vulndb *db = NULL;
        CHECK_INT(vulndb_open(root, &db), BERTH_OK);
        if (db != NULL) {
            check_findings(db);
            vulndb_close(db);
        }
    }
    /* a single .json file is an import too */
    const char *one = tmp("one.json");
    put(one, records[0].json);
    struct vulndb_import_stats st;
    char err[256];
    CHECK_INT(vulndb_import(tmp("root-one"), one, &st, err, sizeof(err)), BERTH_OK);
    CHECK_INT(st.records, 1);
}

/* A database written by a newer berth is refused, not misread. */
static void test_schema_version(void)
{
    const char *root = tmp("root-schema");
    const char *one = tmp("schema.json");
    put(one, records[0].json);
    struct vulndb_import_stats st;
    char err[256];
    CHECK_INT(vulndb_import(root, one, &st, err, sizeof(err)), BERTH_OK);
    char dbfile[700];
    snprintf(dbfile, sizeof(dbfile), "%s/%s", root, VULNDB_FILE);
    /* PRAGMA user_version is the big-endian integer at offset 60: the
     * import wrote this build's version */
    int fd = open(dbfile, O_RDWR | O_CLOEXEC);
    CHECK(fd >= 0);
    unsigned char v[4] = {0xff, 0xff, 0xff, 0xff};
    CHECK_INT(pread(fd, v, 4, 60), 4);
    CHECK_INT(((long)v[0] << 24) | (v[1] << 16) | (v[2] << 8) | v[3], VULNDB_SCHEMA_VERSION);
    /* a newer one is refused */
    v[0] = v[1] = v[2] = 0;
    v[3] = VULNDB_SCHEMA_VERSION + 1;
    CHECK_INT(pwrite(fd, v, 4, 60), 4);
    close(fd);
    struct vulndb *db = NULL;
    CHECK_INT(vulndb_open(root, &db), BERTH_EUNSUPPORTED);
    CHECK_INT(vulndb_import(root, one, &st, err, sizeof(err)), BERTH_EUNSUPPORTED);
    char want[64];
    snprintf(want, sizeof(want), "schema version %d", VULNDB_SCHEMA_VERSION + 1);
    CHECK(strstr(err, want) != NULL);

    /* a file that is not SQLite */
    const char *root2 = tmp("root-garbage");
    CHECK_INT(file_mkdir_p(root2, 0755), BERTH_OK);
    snprintf(dbfile, sizeof(dbfile), "%s/%s", root2, VULNDB_FILE);
    put(dbfile, "definitely not an sqlite database, but long enough to look at........");
    CHECK_INT(vulndb_open(root2, &db), BERTH_EDB);
}

/* berth migrate's copy: into a root without a database, kept while the
 * destination's is as new, replacing an older one whole (a reader open on
 * it goes on with what it had). */
static void test_copy(void)
{
    const char *recs = tmp("records-copy");
    CHECK_INT(file_mkdir_p(recs, 0755), BERTH_OK);
    write_records(recs);
    const char *older = tmp("root-copy-older");
    const char *from = tmp("root-copy-from");
    const char *to = tmp("root-copy-to");
    const char *none = tmp("root-copy-none");
    CHECK_INT(file_mkdir_p(to, 0755), BERTH_OK);
    CHECK_INT(file_mkdir_p(none, 0755), BERTH_OK);
    struct vulndb_import_stats st;
    char err[512] = "";
    CHECK_INT(vulndb_import(older, recs, &st, err, sizeof(err)), BERTH_OK);
    int64_t old_at = st.imported_at_ms;
    time_sleep_ms(5);
    CHECK_INT(vulndb_import(from, recs, &st, err, sizeof(err)), BERTH_OK);
    int64_t new_at = st.imported_at_ms;
    CHECK(new_at > old_at);

    enum vulndb_copied what = VULNDB_COPY_DONE;
    CHECK_INT(vulndb_copy(none, to, &what, err, sizeof(err)), BERTH_OK);
    CHECK_INT(what, VULNDB_COPY_NONE);
    struct vulndb *db = NULL;
    CHECK_INT(vulndb_open(to, &db), BERTH_ENOTFOUND);

    CHECK_INT(vulndb_copy(from, to, &what, err, sizeof(err)), BERTH_OK);
    CHECK_INT(what, VULNDB_COPY_DONE);
    CHECK_INT(vulndb_open(to, &db), BERTH_OK);
    if (db != NULL) {
        CHECK_INT(vulndb_source_updated_at_ms(db), new_at);
        check_findings(db);
        vulndb_close(db);
    }
    CHECK_INT(vulndb_copy(from, to, &what, err, sizeof(err)), BERTH_OK);
    CHECK_INT(what, VULNDB_COPY_KEPT);
    /* the destination newer than the source: kept */
    CHECK_INT(vulndb_copy(older, to, &what, err, sizeof(err)), BERTH_OK);
    CHECK_INT(what, VULNDB_COPY_KEPT);

    /* an older database (written by an import, in WAL mode) replaced whole
     * while a reader holds it */
    struct vulndb *reader = NULL;
    CHECK_INT(vulndb_open(older, &reader), BERTH_OK);
    CHECK_INT(vulndb_copy(from, older, &what, err, sizeof(err)), BERTH_OK);
    CHECK_INT(what, VULNDB_COPY_DONE);
    if (reader != NULL) {
        check_findings(reader);
        vulndb_close(reader);
    }
    CHECK_INT(vulndb_open(older, &db), BERTH_OK);
    if (db != NULL) {
        CHECK_INT(vulndb_source_updated_at_ms(db), new_at);
        check_findings(db);
        vulndb_close(db);
    }
}

int main(void)
{
    snprintf(dir, sizeof(dir), "%s", unit_tmpdir());
    log_set_level(LOG_ERROR);
    RUN(test_import_dir_and_match);
    RUN(test_import_limits);
    RUN(test_failed_import_keeps_data);
    RUN(test_archives);
    RUN(test_schema_version);
    RUN(test_copy);
    file_remove_tree(dir);
    return unit_report("test_vulndb");
}
