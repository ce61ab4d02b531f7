/*
 * End-to-end tests of scan/engine/builtin.c: images built here from
 * layers in every compression, a vulnerability database imported from
 * OSV records written here, and the ECR outcome of each: exact findings
 * for Debian and Alpine images, UnsupportedImageError for FROM scratch and
 * for an image whose package database a later layer deleted, and FAILED
 * with a reason for corrupt layers, a tar bomb and a broken database.
 *
 * test_big_image scans a 40 MiB synthetic image (gzip layers of barely
 * compressible data) and checks that the peak RSS grows by less than a
 * bound while it does; BERTH_SCAN_BIG_MB=N scans N MiB instead (measure
 * it with /usr/bin/time -v as well).
 */
#include "unit.h"

#include <fcntl.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "scan/engine/scan_builtin.h"
#include "common/str.h"
#include "common/timeutil.h"
#include "unit_scan.h"

static char dir[512];
static char root[600];

static const char *tmp(const char *name)
{
    static char paths[64][1024];
    static int next;
    char *p = paths[next++ % 64];
    snprintf(p, sizeof(paths[0]), "%s/%s", dir, name);
    return p;
}

#define V3_HIGH "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"

static const char *const osv_records[] = {
    "{\"id\":\"DSA-5532-1\",\"aliases\":[\"CVE-2023-5363\"],\"summary\":\"openssl - security "
    "update\",\"severity\":[{\"type\":\"CVSS_V3\",\"score\":\"" V3_HIGH "\"}],\"affected\":[{"
    "\"package\":{\"ecosystem\":\"Debian:12\",\"name\":\"openssl\"},\"ranges\":[{\"type\":"
    "\"ECOSYSTEM\",\"events\":[{\"introduced\":\"0\"},{\"fixed\":\"3.0.11-1~deb12u2\"}]}]}],"
    "\"references\":[{\"type\":\"ADVISORY\",\"url\":\"https://www.debian.org/security/2023/"
    "dsa-5532\"}]}",
    "{\"id\":\"DEBIAN-CVE-2023-4911\",\"upstream\":[\"CVE-2023-4911\"],\"summary\":\"Looney "
    "Tunables\",\"database_specific\":{\"severity\":\"high\"},\"affected\":[{\"package\":{"
    "\"ecosystem\":\"Debian:12\",\"name\":\"glibc\"},\"ranges\":[{\"type\":\"ECOSYSTEM\","
    "\"events\":[{\"introduced\":\"0\"},{\"fixed\":\"2.36-9+deb12u3\"}]}]}]}",
    "{\"id\":\"DEBIAN-CVE-2023-45853\",\"upstream\":[\"CVE-2023-45853\"],\"summary\":\"zlib "
    "MiniZip overflow\",\"affected\":[{\"package\":{\"ecosystem\":\"Debian:12\",\"name\":"
    "\"zlib\"},\"ranges\":[{\"type\":\"ECOSYSTEM\",\"events\":[{\"introduced\":\"0\"}]}]}]}",
    "{\"id\":\"ALPINE-CVE-2023-5363\",\"upstream\":[\"CVE-2023-5363\"],\"affected\":[{\"package\":"
    "{\"ecosystem\":\"Alpine:v3.19\",\"name\":\"openssl\"},\"severity\":[{\"type\":\"CVSS_V3\","
    "\"score\":\"" V3_HIGH "\"}],\"ranges\":[{\"type\":\"ECOSYSTEM\",\"events\":[{\"introduced\":"
    "\"0\"},{\"fixed\":\"3.1.4-r1\"}]}]}]}",
    "{\"id\":\"ALPINE-CVE-2023-42363\",\"upstream\":[\"CVE-2023-42363\"],\"affected\":[{"
    "\"package\":{\"ecosystem\":\"Alpine:v3.19\",\"name\":\"busybox\"},\"ranges\":[{\"type\":"
    "\"ECOSYSTEM\",\"events\":[{\"introduced\":\"0\"},{\"fixed\":\"1.36.1-r16\"}]}]}]}",
};

static const char status_old[] = "Package: libssl3\nStatus: install ok installed\n"
                                 "Architecture: amd64\nSource: openssl\n"
                                 "Version: 3.0.11-1~deb12u1\n\n"
                                 "Package: libc6\nStatus: install ok installed\n"
                                 "Architecture: amd64\nSource: glibc\nVersion: 2.36-9+deb12u1\n\n"
                                 "Package: zlib1g\nStatus: install ok installed\n"
                                 "Source: zlib (1:1.2.13.dfsg-1)\nVersion: 1:1.2.13.dfsg-1+b1\n";

/* A later layer upgraded glibc. */
static const char status_new[] = "Package: libssl3\nStatus: install ok installed\n"
                                 "Architecture: amd64\nSource: openssl\n"
                                 "Version: 3.0.11-1~deb12u1\n\n"
                                 "Package: libc6\nStatus: install ok installed\n"
                                 "Architecture: amd64\nSource: glibc\nVersion: 2.36-9+deb12u3\n\n"
                                 "Package: zlib1g\nStatus: install ok installed\n"
                                 "Source: zlib (1:1.2.13.dfsg-1)\nVersion: 1:1.2.13.dfsg-1+b1\n";

static struct vulndb *open_db(void)
{
    struct vulndb *db = NULL;
    CHECK_INT(vulndb_open(root, &db), BERTH_OK);
    return db;
}

static struct scan_result *scan(const struct scan_layer *layers, size_t n, struct vulndb *db,
                                const struct scan_limits *lim)
{
    struct scan_limits def;
    scan_limits_default(&def);
    struct scan_result *r = NULL;
    CHECK_INT(scan_builtin_run(layers, n, db, lim ? lim : &def, &r), BERTH_OK);
    return r;
}

static void test_debian_image(void)
{
    static const struct tl_entry base[] = {
        TL_D("etc/"),
        TL_F("usr/lib/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n"
                                   "VERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n"),
        TL_L("etc/os-release", "../usr/lib/os-release"),
        TL_D("var/lib/dpkg/"),
        TL_F("var/lib/dpkg/status", status_old),
    };
    static const struct tl_entry app[] = {TL_F("usr/local/bin/app", "#!/bin/sh\n")};
    static const struct tl_entry upgrade[] = {TL_F("var/lib/dpkg/status", status_new)};
    const char *p0 = tmp("deb0.tar.gz"), *p1 = tmp("deb1.tar"), *p2 = tmp("deb2.tar.zst");
    tl_write(p0, TL_GZIP, base, 5);
    tl_write(p1, TL_NONE, app, 1);
    tl_write(p2, TL_ZSTD, upgrade, 1);
    struct scan_layer layers[] = {
        {p0, "application/vnd.docker.image.rootfs.diff.tar.gzip"},
        {p1, tl_media_type(TL_NONE)},
        {p2, tl_media_type(TL_ZSTD)},
    };
    struct vulndb *db = open_db();
    struct scan_result *r = scan(layers, 3, db, NULL);
    if (r == NULL) {
        vulndb_close(db);
        return;
    }
    CHECK_INT(r->status, SCAN_STATUS_COMPLETE);
    CHECK_STR(r->description, SCAN_DESCRIPTION_COMPLETE);
    CHECK_STR(r->os.ecosystem, "Debian:12");
    CHECK_INT(r->package_count, 3);
    CHECK_INT(r->vuln_source_updated_at_ms, vulndb_source_updated_at_ms(db));
    CHECK(r->completed_at_ms > 0);
    /* glibc was upgraded past the fix by the last layer */
    CHECK_INT(r->findings.count, 2);
    if (r->findings.count == 2) {
        CHECK_STR(r->findings.items[0].name, "CVE-2023-5363");
        CHECK_STR(r->findings.items[0].package_name, "openssl");
        CHECK_STR(r->findings.items[0].package_version, "3.0.11-1~deb12u1");
        CHECK_INT(r->findings.items[0].severity, SCAN_SEVERITY_HIGH);
        CHECK_STR(r->findings.items[1].name, "CVE-2023-45853");
        CHECK_STR(r->findings.items[1].package_name, "zlib");
        CHECK_STR(r->findings.items[1].package_version, "1:1.2.13.dfsg-1");
        CHECK_INT(r->findings.items[1].severity, SCAN_SEVERITY_UNDEFINED);
    }
    if (r->findings.count == 2) {
        CHECK_STR(r->findings.items[0].uri, "https://www.debian.org/security/2023/dsa-5532");
        CHECK(r->findings.items[1].uri == NULL);
    }
    scan_result_free(r);

    /* without the upgrade layer, glibc is vulnerable too (severity word) */
    r = scan(layers, 2, db, NULL);
    if (r != NULL) {
        CHECK_INT(r->findings.count, 3);
        if (r->findings.count == 3) {
            /* two HIGH findings: ordered by name */
            CHECK_STR(r->findings.items[0].name, "CVE-2023-4911");
            CHECK_INT(r->findings.items[0].severity, SCAN_SEVERITY_HIGH);
            CHECK_STR(r->findings.items[0].package_version, "2.36-9+deb12u1");
            CHECK_STR(r->findings.items[1].name, "CVE-2023-5363");
        }
        scan_result_free(r);
    }
    vulndb_close(db);
}

static void test_alpine_image(void)
{
    static const struct tl_entry l[] = {
        TL_F("etc/os-release", "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\n"),
        TL_F("lib/apk/db/installed", "P:busybox\nV:1.36.1-r15\nA:x86_64\no:busybox\n\n"
                                     "P:busybox-binsh\nV:1.36.1-r15\nA:x86_64\no:busybox\n\n"
                                     "P:libcrypto3\nV:3.1.4-r1\nA:x86_64\no:openssl\n\n"
                                     "P:musl\nV:1.2.4_git20230717-r4\nA:x86_64\no:musl\n"),
    };
    const char *p = tmp("alpine.tar.gz");
    tl_write(p, TL_GZIP, l, 2);
    struct scan_layer layer = {p, tl_media_type(TL_GZIP)};
    struct vulndb *db = open_db();
    struct scan_result *r = scan(&layer, 1, db, NULL);
    if (r != NULL) {
        CHECK_INT(r->status, SCAN_STATUS_COMPLETE);
        CHECK_STR(r->os.ecosystem, "Alpine:v3.19");
        CHECK_INT(r->package_count, 4);
        /* openssl 3.1.4-r1 is the fixed version; busybox is reported once */
        CHECK_INT(r->findings.count, 1);
        if (r->findings.count == 1) {
            CHECK_STR(r->findings.items[0].name, "CVE-2023-42363");
            CHECK_STR(r->findings.items[0].package_name, "busybox");
            CHECK_STR(r->findings.items[0].package_version, "1.36.1-r15");
        }
        scan_result_free(r);
    }
    vulndb_close(db);
}

static void check_unsupported(const struct scan_layer *layers, size_t n)
{
    struct vulndb *db = open_db();
    struct scan_result *r = scan(layers, n, db, NULL);
    if (r != NULL) {
        CHECK_INT(r->status, SCAN_STATUS_FAILED);
        CHECK_STR(r->description, "UnsupportedImageError: The operating system and/or package "
                                  "manager are not supported.");
        CHECK_INT(r->findings.count, 0);
        scan_result_free(r);
    }
    vulndb_close(db);
}

static void test_unsupported(void)
{
    /* FROM scratch with nothing, and with a static binary */
    check_unsupported(NULL, 0);
    static const struct tl_entry bin[] = {TL_F("app", "\x7f"
                                                      "ELF")};
    const char *pb = tmp("scratch.tar.gz");
    tl_write(pb, TL_GZIP, bin, 1);
    struct scan_layer one = {pb, tl_media_type(TL_GZIP)};
    check_unsupported(&one, 1);

    /* a Debian image whose later layer deletes the dpkg status */
    static const struct tl_entry base[] = {
        TL_F("etc/os-release", "ID=debian\nVERSION_ID=12\n"),
        TL_F("var/lib/dpkg/status", status_old),
    };
    static const struct tl_entry wipe[] = {TL_F("var/lib/dpkg/.wh.status", "")};
    const char *p0 = tmp("wipe0.tar"), *p1 = tmp("wipe1.tar.gz");
    tl_write(p0, TL_NONE, base, 2);
    tl_write(p1, TL_GZIP, wipe, 1);
    struct scan_layer two[] = {{p0, tl_media_type(TL_NONE)}, {p1, tl_media_type(TL_GZIP)}};
    check_unsupported(two, 2);

    /* an OS berth does not know */
    static const struct tl_entry fed[] = {TL_F("etc/os-release", "ID=fedora\nVERSION_ID=40\n")};
    const char *pf = tmp("fedora.tar");
    tl_write(pf, TL_NONE, fed, 1);
    struct scan_layer f = {pf, tl_media_type(TL_NONE)};
    check_unsupported(&f, 1);
}

static void check_failed(const struct scan_layer *layers, size_t n, const struct scan_limits *lim,
                         const char *prefix)
{
    struct vulndb *db = open_db();
    struct scan_result *r = scan(layers, n, db, lim);
    if (r != NULL) {
        CHECK_INT(r->status, SCAN_STATUS_FAILED);
        unit_checks++;
        if (strncmp(r->description, prefix, strlen(prefix)) != 0) {
            unit_failures++;
            fprintf(stderr, "%s: description \"%s\", expected prefix \"%s\"\n", unit_current,
                    r->description, prefix);
        }
        CHECK_INT(r->findings.count, 0);
        scan_result_free(r);
    }
    vulndb_close(db);
}

static void test_failures(void)
{
    static const struct tl_entry base[] = {
        TL_F("etc/os-release", "ID=debian\nVERSION_ID=12\n"),
        TL_F("var/lib/dpkg/status", status_old),
    };
    const char *good = tmp("good.tar.gz");
    tl_write(good, TL_GZIP, base, 2);

    /* a corrupt layer on top of a good one */
    const char *junk = tmp("junk.tar.gz");
    static const char garbage[] = "\x1f\x8b\x08\x00garbage garbage garbage";
    tl_write_bytes(junk, garbage, sizeof(garbage) - 1);
    struct scan_layer corrupt[] = {{good, tl_media_type(TL_GZIP)}, {junk, tl_media_type(TL_GZIP)}};
    check_failed(corrupt, 2, NULL, "LayerError: layer 2 of 2: ");

    /* a missing blob */
    struct scan_layer missing = {tmp("nope"), tl_media_type(TL_GZIP)};
    check_failed(&missing, 1, NULL, "LayerError: layer 1 of 1: cannot open");

    /* a tar bomb */
    static const struct tl_entry bomb[] = {TL_BIGF("zero", 32 << 20)};
    const char *pb = tmp("bomb.tar.zst");
    tl_write(pb, TL_ZSTD, bomb, 1);
    struct scan_layer b[] = {{good, tl_media_type(TL_GZIP)}, {pb, tl_media_type(TL_ZSTD)}};
    struct scan_limits lim;
    scan_limits_default(&lim);
    lim.max_image_bytes = 4 << 20;
    check_failed(b, 2, &lim, "ImageTooLargeError: layer 2 of 2: image expands to more than");

    /* an oversized package database */
    static const struct tl_entry big[] = {
        TL_F("etc/os-release", "ID=debian\nVERSION_ID=12\n"),
        TL_BIGF("var/lib/dpkg/status", 3 << 20),
    };
    const char *pg = tmp("bigdb.tar.gz");
    tl_write(pg, TL_GZIP, big, 2);
    struct scan_layer g = {pg, tl_media_type(TL_GZIP)};
    scan_limits_default(&lim);
    lim.max_file_bytes = 1 << 20;
    check_failed(&g, 1, &lim, "ImageTooLargeError: layer 1 of 1: /var/lib/dpkg/status is");

    /* a malformed package database */
    static const struct tl_entry bad[] = {
        TL_F("etc/os-release", "ID=debian\nVERSION_ID=12\n"),
        TL_F("var/lib/dpkg/status", "Package: x\nStatus: install ok installed\nno colon here\n"),
    };
    const char *pd = tmp("baddb.tar");
    tl_write(pd, TL_NONE, bad, 2);
    struct scan_layer d = {pd, tl_media_type(TL_NONE)};
    check_failed(&d, 1, NULL, "PackageDatabaseError: /var/lib/dpkg/status: line 3");

    /* no vulnerability database: the image is read, then the scan fails */
    struct scan_layer ok = {good, tl_media_type(TL_GZIP)};
    struct scan_result *r = NULL;
    scan_limits_default(&lim);
    CHECK_INT(scan_builtin_run(&ok, 1, NULL, &lim, &r), BERTH_OK);
    if (r != NULL) {
        CHECK_INT(r->status, SCAN_STATUS_FAILED);
        CHECK(strncmp(r->description, "VulnerabilityDatabaseError: ", 28) == 0);
        CHECK_STR(r->os.ecosystem, "Debian:12");
        scan_result_free(r);
    }
    CHECK_INT(scan_builtin_run(NULL, 1, NULL, &lim, &r), BERTH_EINVAL);

    /* an image with zero installed packages is a complete scan */
    static const struct tl_entry none[] = {
        TL_F("etc/os-release", "ID=debian\nVERSION_ID=12\n"),
        TL_F("var/lib/dpkg/status", ""),
    };
    const char *pn = tmp("nopkgs.tar");
    tl_write(pn, TL_NONE, none, 2);
    struct scan_layer z = {pn, tl_media_type(TL_NONE)};
    struct vulndb *db = open_db();
    r = scan(&z, 1, db, NULL);
    if (r != NULL) {
        CHECK_INT(r->status, SCAN_STATUS_COMPLETE);
        CHECK_INT(r->findings.count, 0);
        scan_result_free(r);
    }
    vulndb_close(db);
}

/* A line of /proc/self/status ("VmRSS", "VmHWM") in KiB; -1 if absent. */
static long status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, key, n) == 0 && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return v;
}

/* Make the peak RSS (VmHWM) start again from the current RSS (Linux 4.0+). */
static bool reset_peak_rss(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    bool ok = fd >= 0 && write(fd, "5", 1) == 1;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

/* Most the peak RSS may grow by while the big image is scanned: a few
 * libarchive buffers and the kept files. Holding one whole layer (8 MiB
 * of file data) would already exceed it. */
#define BIG_IMAGE_RSS_BOUND_KIB (6 * 1024)

/* A synthetic image of barely compressible files (BERTH_SCAN_BIG_MB MiB,
 * default 40): memory stays bounded whatever the image's size. */
static void test_big_image(void)
{
    uint64_t mb = 40;
    const char *env = getenv("BERTH_SCAN_BIG_MB");
    if (env != NULL && (str_parse_u64(env, 4096, &mb) != BERTH_OK || mb < 5)) {
        fprintf(stderr, "BERTH_SCAN_BIG_MB must be 5..4096\n");
        CHECK(false);
        return;
    }
    /* the OS layer, then five layers of random-ish 4 MiB files */
    static unsigned char block[1 << 20];
    uint64_t x = 88172645463325252ULL;
    for (size_t i = 0; i < sizeof(block); i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        block[i] = (unsigned char)x;
    }
    struct scan_layer layers[6];
    char names[6][32];
    uint64_t files_per_layer = mb / 5 / 4 ? mb / 5 / 4 : 1;
    for (int l = 0; l < 6; l++) {
        snprintf(names[l], sizeof(names[l]), "big%d.tar.gz", l);
        const char *path = tmp(names[l]);
        struct archive *a = archive_write_new();
        archive_write_add_filter_gzip(a);
        archive_write_set_filter_option(a, "gzip", "compression-level", "1");
        archive_write_set_format_pax_restricted(a);
        archive_write_open_filename(a, path);
        if (l == 0) {
            const char *osr = "ID=debian\nVERSION_ID=12\n";
            struct archive_entry *e = archive_entry_new();
            archive_entry_set_pathname(e, "etc/os-release");
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_perm(e, 0644);
            archive_entry_set_size(e, (la_int64_t)strlen(osr));
            archive_write_header(a, e);
            archive_write_data(a, osr, strlen(osr));
            archive_entry_set_pathname(e, "var/lib/dpkg/status");
            archive_entry_set_size(e, (la_int64_t)strlen(status_old));
            archive_write_header(a, e);
            archive_write_data(a, status_old, strlen(status_old));
            archive_entry_free(e);
        } else {
            for (uint64_t f = 0; f < files_per_layer; f++) {
                char name[64];
                snprintf(name, sizeof(name), "data/layer%d/file%llu.bin", l, (unsigned long long)f);
                struct archive_entry *e = archive_entry_new();
                archive_entry_set_pathname(e, name);
                archive_entry_set_filetype(e, AE_IFREG);
                archive_entry_set_perm(e, 0644);
                archive_entry_set_size(e, 4 << 20);
                archive_write_header(a, e);
                for (int k = 0; k < 4; k++) {
                    block[(size_t)(f * 4 + (uint64_t)k + (uint64_t)l) % sizeof(block)] ^= 0x5a;
                    archive_write_data(a, block, sizeof(block));
                }
                archive_entry_free(e);
            }
        }
        archive_write_close(a);
        archive_write_free(a);
        layers[l] = (struct scan_layer){path, tl_media_type(TL_GZIP)};
    }
    struct vulndb *db = open_db();
    CHECK(reset_peak_rss());
    long before = status_kib("VmRSS");
    int64_t t0 = time_mono_ns();
    struct scan_result *r = scan(layers, 6, db, NULL);
    int64_t ms = (time_mono_ns() - t0) / 1000000;
    long peak = status_kib("VmHWM");
    CHECK(before > 0 && peak > 0);
    if (r != NULL) {
        CHECK_INT(r->status, SCAN_STATUS_COMPLETE);
        CHECK_INT(r->package_count, 3);
        CHECK(r->bytes_read >= files_per_layer * 5 * (4 << 20));
        fprintf(stderr,
                "big image: %llu decompressed bytes in %lld ms; RSS %ld KiB before the scan, "
                "peak %ld KiB during it (bound: +%d KiB)\n",
                (unsigned long long)r->bytes_read, (long long)ms, before, peak,
                BIG_IMAGE_RSS_BOUND_KIB);
        scan_result_free(r);
    }
    CHECK(peak - before < BIG_IMAGE_RSS_BOUND_KIB);
    vulndb_close(db);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "%s", unit_tmpdir());
    snprintf(root, sizeof(root), "%s/root", dir);
    log_set_level(LOG_WARN);
    char src[700];
    snprintf(src, sizeof(src), "%s/osv", dir);
    file_mkdir_p(src, 0755);
    for (size_t i = 0; i < sizeof(osv_records) / sizeof(osv_records[0]); i++) {
        char path[800];
        snprintf(path, sizeof(path), "%s/r%zu.json", src, i);
        tl_write_bytes(path, osv_records[i], strlen(osv_records[i]));
    }
    struct vulndb_import_stats st;
    char err[256];
    CHECK_INT(vulndb_import(root, src, &st, err, sizeof(err)), BERTH_OK);
    CHECK_INT(st.records, sizeof(osv_records) / sizeof(osv_records[0]));
    RUN(test_debian_image);
    RUN(test_alpine_image);
    RUN(test_unsupported);
    RUN(test_failures);
    RUN(test_big_image);
    file_remove_tree(dir);
    return unit_report("test_scan_builtin");
}
