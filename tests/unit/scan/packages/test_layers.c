/*
 * Unit tests for scan/packages/layers.c: layers written here with
 * libarchive's writer (uncompressed, gzip, zstd), OCI whiteouts, opaque
 * directories, symlinks, name normalization, and every bad input the
 * reader must refuse with a reason: corrupt, truncated and non-tar blobs,
 * a tar bomb, an oversized package database, too many entries.
 */
#include "unit.h"

#include "common/fileio.h"
#include "scan/packages/scan_layers.h"
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

static struct scan_limits small_limits(void)
{
    struct scan_limits lim;
    scan_limits_default(&lim);
    return lim;
}

/* Read the given layers; returns the rc and leaves *fs set on success. */
static enum berth_err read_layers(const struct scan_layer *layers, size_t n,
                                  const struct scan_limits *lim, struct scan_fs **fs, char *reason,
                                  size_t cap)
{
    *fs = NULL;
    return scan_layers_read(layers, n, lim, fs, reason, cap);
}

static const char *content(const struct scan_fs *fs, const char *path)
{
    const struct scan_file *f = scan_fs_get(fs, path);
    return f ? f->data : NULL;
}

static void test_normalize(void)
{
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        {"etc/os-release", "etc/os-release"},
        {"./etc/os-release", "etc/os-release"},
        {"/etc/os-release", "etc/os-release"},
        {"//etc///os-release/", "etc/os-release"},
        {"etc/./os-release", "etc/os-release"},
        {"../../etc/os-release", "etc/os-release"},
        {"usr/../etc/os-release", "etc/os-release"},
        {"/../../..", ""},
        {"./", ""},
        {"a/b/../../../c", "c"},
        {"..hidden/x", "..hidden/x"},
    };
    char out[64];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CHECK_INT(scan_path_normalize(cases[i].in, out, sizeof(out)), BERTH_OK);
        CHECK_STR(out, cases[i].out);
    }
    CHECK_INT(scan_path_normalize("a/very/long/name/that/does/not/fit", out, 8), BERTH_ETOOBIG);
    CHECK(scan_path_is_interesting("etc/os-release"));
    CHECK(scan_path_is_interesting("var/lib/dpkg/status"));
    CHECK(scan_path_is_interesting("var/lib/dpkg/status.d/libc6"));
    CHECK(!scan_path_is_interesting("var/lib/dpkg/status.d/libc6.md5sums"));
    CHECK(!scan_path_is_interesting("var/lib/dpkg/status.d/a/b"));
    CHECK(!scan_path_is_interesting("var/lib/dpkg/status-old"));
    CHECK(scan_path_is_interesting("lib/apk/db/installed"));
    CHECK(scan_path_is_interesting("var/lib/rpm/rpmdb.sqlite"));
    CHECK(!scan_path_is_interesting("etc/passwd"));
}

/* The same image in each compression: files are found, names normalized,
 * uninteresting files not kept. */
static void test_compressions(void)
{
    static const struct tl_entry base[] = {
        TL_D("./"),
        TL_D("./etc/"),
        TL_F("./etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n"),
        TL_F("./etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
        TL_D("./var/lib/dpkg/"),
        TL_F("/var/lib/dpkg/status", "Package: libc6\n"),
        TL_F("../../lib/apk/db/installed", "P:musl\n"),
        TL_F("usr/bin/../lib/os-release", "ID=other\n"),
    };
    enum tl_comp comps[] = {TL_NONE, TL_GZIP, TL_ZSTD};
    for (size_t c = 0; c < 3; c++) {
        const char *path = tmp("layer.tar");
        tl_write(path, comps[c], base, sizeof(base) / sizeof(base[0]));
        struct scan_layer layer = {path, tl_media_type(comps[c])};
        struct scan_limits lim = small_limits();
        struct scan_fs *fs;
        char reason[256];
        CHECK_INT(read_layers(&layer, 1, &lim, &fs, reason, sizeof(reason)), BERTH_OK);
        CHECK_STR(content(fs, "etc/os-release"), "ID=debian\nVERSION_ID=\"12\"\n");
        CHECK_STR(content(fs, "/var/lib/dpkg/status"), "Package: libc6\n");
        CHECK_STR(content(fs, "lib/apk/db/installed"), "P:musl\n");
        CHECK_STR(content(fs, "usr/lib/os-release"), "ID=other\n");
        CHECK(scan_fs_get(fs, "etc/passwd") == NULL);
        CHECK_INT(scan_fs_count(fs), 4);
        /* kept files come back in path order */
        CHECK_STR(scan_fs_at(fs, 0)->path, "etc/os-release");
        CHECK_STR(scan_fs_at(fs, 3)->path, "var/lib/dpkg/status");
        CHECK(scan_fs_at(fs, 4) == NULL);
        CHECK_INT(scan_fs_at(fs, 0)->len, strlen("ID=debian\nVERSION_ID=\"12\"\n"));
        /* the decompressed tar is counted, whatever the compression */
        CHECK(scan_fs_bytes_read(fs) >= 8 * 512);
        CHECK(scan_fs_bytes_read(fs) < 64 * 1024);
        scan_fs_free(fs);
    }
}

/* Whiteouts and opaque directories apply to lower layers only. */
static void test_whiteouts(void)
{
    static const struct tl_entry l0[] = {
        TL_F("etc/os-release", "ID=debian\n"),
        TL_F("var/lib/dpkg/status", "Package: old\n"),
        TL_F("var/lib/dpkg/status.d/a", "Package: a\n"),
        TL_F("var/lib/dpkg/status.d/b", "Package: b\n"),
        TL_F("lib/apk/db/installed", "P:x\n"),
        TL_F("var/lib/rpm/rpmdb.sqlite", "not really sqlite"),
    };
    static const struct tl_entry l1[] = {
        /* delete the dpkg status */
        TL_F("var/lib/dpkg/.wh.status", ""),
        /* make status.d opaque, with a new file in the same layer */
        TL_F("var/lib/dpkg/status.d/c", "Package: c\n"),
        TL_F("var/lib/dpkg/status.d/.wh..wh..opq", ""),
        /* delete a whole directory above a kept file */
        TL_F("lib/apk/.wh.db", ""),
        /* replace a kept file with a directory */
        TL_D("var/lib/rpm/rpmdb.sqlite"),
        /* AUFS bookkeeping names are ignored */
        TL_F(".wh..wh.plnk", ""),
    };
    const char *p0 = tmp("l0.tar"), *p1 = tmp("l1.tar.gz");
    tl_write(p0, TL_NONE, l0, sizeof(l0) / sizeof(l0[0]));
    tl_write(p1, TL_GZIP, l1, sizeof(l1) / sizeof(l1[0]));
    struct scan_layer layers[] = {{p0, tl_media_type(TL_NONE)}, {p1, tl_media_type(TL_GZIP)}};
    struct scan_limits lim = small_limits();
    struct scan_fs *fs;
    char reason[256];
    CHECK_INT(read_layers(layers, 2, &lim, &fs, reason, sizeof(reason)), BERTH_OK);
    CHECK_STR(content(fs, "etc/os-release"), "ID=debian\n");
    CHECK(scan_fs_get(fs, "var/lib/dpkg/status") == NULL);
    CHECK(scan_fs_get(fs, "var/lib/dpkg/status.d/a") == NULL);
    CHECK(scan_fs_get(fs, "var/lib/dpkg/status.d/b") == NULL);
    CHECK_STR(content(fs, "var/lib/dpkg/status.d/c"), "Package: c\n");
    CHECK_INT(scan_fs_get(fs, "var/lib/dpkg/status.d/c")->layer, 1);
    CHECK(scan_fs_get(fs, "lib/apk/db/installed") == NULL);
    CHECK(scan_fs_get(fs, "var/lib/rpm/rpmdb.sqlite") == NULL);
    CHECK_INT(scan_fs_count(fs), 2);
    scan_fs_free(fs);

    /* the reverse order: a later layer adds the file back */
    static const struct tl_entry l2[] = {TL_F("var/lib/dpkg/status", "Package: new\n")};
    const char *p2 = tmp("l2.tar.zst");
    tl_write(p2, TL_ZSTD, l2, 1);
    struct scan_layer three[] = {layers[0], layers[1], {p2, tl_media_type(TL_ZSTD)}};
    CHECK_INT(read_layers(three, 3, &lim, &fs, reason, sizeof(reason)), BERTH_OK);
    CHECK_STR(content(fs, "var/lib/dpkg/status"), "Package: new\n");
    scan_fs_free(fs);

    /* an opaque root removes everything below from lower layers */
    static const struct tl_entry lr[] = {TL_F(".wh..wh..opq", "")};
    const char *pr = tmp("lr.tar");
    tl_write(pr, TL_NONE, lr, 1);
    struct scan_layer root_opq[] = {layers[0], {pr, tl_media_type(TL_NONE)}};
    CHECK_INT(read_layers(root_opq, 2, &lim, &fs, reason, sizeof(reason)), BERTH_OK);
    CHECK_INT(scan_fs_count(fs), 0);
    scan_fs_free(fs);

    /* a layer that both deletes and adds a file keeps its own file, in
     * either order: its whiteouts hide only what lower layers had */
    static const struct tl_entry both[] = {
        TL_F("var/lib/dpkg/status", "Package: mine\n"),
        TL_F("var/lib/dpkg/.wh.status", ""),
        TL_F("lib/apk/.wh.db", ""),
        TL_F("lib/apk/db/installed", "P:mine\n"),
        TL_F("var/lib/dpkg/status.d/d", "Package: d\n"),
        TL_F("var/lib/dpkg/.wh.status.d", ""),
    };
    const char *pb = tmp("both.tar");
    tl_write(pb, TL_NONE, both, sizeof(both) / sizeof(both[0]));
    struct scan_layer same[] = {layers[0], {pb, tl_media_type(TL_NONE)}};
    CHECK_INT(read_layers(same, 2, &lim, &fs, reason, sizeof(reason)), BERTH_OK);
    CHECK_STR(content(fs, "var/lib/dpkg/status"), "Package: mine\n");
    CHECK_STR(content(fs, "lib/apk/db/installed"), "P:mine\n");
    CHECK_STR(content(fs, "var/lib/dpkg/status.d/d"), "Package: d\n");
    CHECK(scan_fs_get(fs, "var/lib/dpkg/status.d/a") == NULL);
    CHECK_INT(scan_fs_count(fs), 5); /* with os-release and the rpm database */
    scan_fs_free(fs);
    /* alone, the same layer keeps them too */
    CHECK_INT(read_layers(same + 1, 1, &lim, &fs, reason, sizeof(reason)), BERTH_OK);
    CHECK_STR(content(fs, "var/lib/dpkg/status"), "Package: mine\n");
    CHECK_INT(scan_fs_count(fs), 3);
    scan_fs_free(fs);
}

/* An upper layer's file replaces a lower one; a later entry in the same
 * layer replaces an earlier one; a file replacing a directory hides all
 * below it. */
static void test_replacement(void)
{
    static const struct tl_entry l0[] = {
        TL_F("var/lib/dpkg/status", "first\n"),
        TL_F("var/lib/dpkg/status", "second\n"),
        TL_F("var/lib/dpkg/status.d/x", "x\n"),
    };
    static const struct tl_entry l1[] = {
        TL_F("var/lib/dpkg/status.d", "now a file\n"),
    };
    const char *p0 = tmp("r0.tar"), *p1 = tmp("r1.tar");
    tl_write(p0, TL_NONE, l0, 3);
    tl_write(p1, TL_NONE, l1, 1);
    struct scan_layer layers[] = {{p0, tl_media_type(TL_NONE)}, {p1, tl_media_type(TL_NONE)}};
    struct scan_limits lim = small_limits();
    struct scan_fs *fs;
    char reason[256];
    CHECK_INT(read_layers(layers, 2, &lim, &fs, reason, sizeof(reason)), BERTH_OK);
    CHECK_STR(content(fs, "var/lib/dpkg/status"), "second\n");
    CHECK(scan_fs_get(fs, "var/lib/dpkg/status.d/x") == NULL);
    CHECK_INT(scan_fs_count(fs), 1);
    scan_fs_free(fs);
}

/* /etc/os-release as a relative or absolute symlink to /usr/lib/os-release,
 * a hard link, and links that lead nowhere or loop. */
static void test_links(void)
{
    static const struct tl_entry rel[] = {
        TL_F("usr/lib/os-release", "ID=alpine\n"),
        TL_L("etc/os-release", "../usr/lib/os-release"),
    };
    static const struct tl_entry abs[] = {
        TL_L("etc/os-release", "/usr/lib/os-release"),
        TL_F("usr/lib/os-release", "ID=ubuntu\n"),
    };
    static const struct tl_entry escape[] = {
        TL_F("usr/lib/os-release", "ID=inside\n"),
        TL_L("etc/os-release", "../../../../../usr/lib/os-release"),
    };
    static const struct tl_entry loop[] = {
        TL_L("etc/os-release", "../usr/lib/os-release"),
        TL_L("usr/lib/os-release", "/etc/os-release"),
    };
    static const struct tl_entry dangling[] = {
        TL_L("etc/os-release", "/nowhere/os-release"),
        TL_F("etc/issue", "x"),
    };
    static const struct tl_entry hard[] = {
        TL_F("usr/lib/os-release", "ID=hard\n"),
        TL_H("etc/os-release", "usr/lib/os-release"),
    };
    struct {
        const struct tl_entry *e;
        size_t n;
        const char *want;
    } cases[] = {
        {rel, 2, "ID=alpine\n"}, {abs, 2, "ID=ubuntu\n"}, {escape, 2, "ID=inside\n"},
        {loop, 2, NULL},         {dangling, 2, NULL},     {hard, 2, "ID=hard\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *p = tmp("links.tar");
        tl_write(p, TL_NONE, cases[i].e, cases[i].n);
        struct scan_layer layer = {p, tl_media_type(TL_NONE)};
        struct scan_limits lim = small_limits();
        struct scan_fs *fs;
        char reason[256];
        CHECK_INT(read_layers(&layer, 1, &lim, &fs, reason, sizeof(reason)), BERTH_OK);
        const char *got = content(fs, "etc/os-release");
        if (cases[i].want == NULL) {
            CHECK(got == NULL);
        } else {
            CHECK_STR(got, cases[i].want);
        }
        scan_fs_free(fs);
    }
}

/* No layers at all (FROM scratch with nothing added) and a layer with no
 * interesting files both read fine and keep nothing. */
static void test_scratch(void)
{
    struct scan_limits lim = small_limits();
    struct scan_fs *fs;
    char reason[256];
    CHECK_INT(read_layers(NULL, 0, &lim, &fs, reason, sizeof(reason)), BERTH_OK);
    CHECK_INT(scan_fs_count(fs), 0);
    CHECK(scan_fs_get(fs, "etc/os-release") == NULL);
    scan_fs_free(fs);

    static const struct tl_entry only[] = {TL_F("app", "\x7f"
                                                       "ELF...")};
    const char *p = tmp("scratch.tar.gz");
    tl_write(p, TL_GZIP, only, 1);
    struct scan_layer layer = {p, tl_media_type(TL_GZIP)};
    CHECK_INT(read_layers(&layer, 1, &lim, &fs, reason, sizeof(reason)), BERTH_OK);
    CHECK_INT(scan_fs_count(fs), 0);
    scan_fs_free(fs);

    /* an empty tar (just the end-of-archive blocks) is a valid layer */
    const char *pe = tmp("empty.tar");
    tl_write(pe, TL_NONE, NULL, 0);
    struct scan_layer empty = {pe, tl_media_type(TL_NONE)};
    CHECK_INT(read_layers(&empty, 1, &lim, &fs, reason, sizeof(reason)), BERTH_OK);
    scan_fs_free(fs);
}

/* Blobs that are not layers, or broken ones: each fails with a reason. */
static void test_bad_layers(void)
{
    struct scan_limits lim = small_limits();
    struct scan_fs *fs;
    char reason[256];

    /* random bytes */
    char junk[4096];
    for (size_t i = 0; i < sizeof(junk); i++) {
        junk[i] = (char)((i * 7919 + 13) % 251);
    }
    const char *pj = tmp("junk");
    tl_write_bytes(pj, junk, sizeof(junk));
    struct scan_layer layer = {pj, tl_media_type(TL_GZIP)};
    CHECK_INT(read_layers(&layer, 1, &lim, &fs, reason, sizeof(reason)), BERTH_EINVAL);
    CHECK(fs == NULL);
    CHECK(strstr(reason, "layer 1 of 1: ") == reason);
    CHECK(strlen(reason) > strlen("layer 1 of 1: "));

    /* JSON is not a layer */
    const char *pt = tmp("text");
    const char *json = "{\"schemaVersion\": 2}\n";
    tl_write_bytes(pt, json, strlen(json));
    layer.path = pt;
    CHECK_INT(read_layers(&layer, 1, &lim, &fs, reason, sizeof(reason)), BERTH_EINVAL);

    /* a truncated gzip layer, and a truncated plain tar in the middle of
     * the file that was kept */
    static const struct tl_entry e[] = {
        TL_F("etc/os-release", "ID=debian\n"),
        TL_BIGF("var/lib/dpkg/status", 200000),
        TL_BIGF("usr/share/big", 300000),
    };
    enum tl_comp comps[] = {TL_GZIP, TL_ZSTD, TL_NONE};
    for (size_t c = 0; c < 3; c++) {
        const char *full = tmp("full.tar");
        tl_write(full, comps[c], e, 3);
        long long size = tl_file_size(full);
        char *buf = NULL;
        size_t len = 0;
        CHECK_INT(file_read_bounded(full, 1 << 24, &buf, &len), BERTH_OK);
        const char *cut = tmp("cut.tar");
        /* the zero-padded end of a plain tar is harmless to lose: cut into
         * the file data instead */
        size_t keep = comps[c] == TL_NONE ? 100000 : (size_t)(size / 2);
        tl_write_bytes(cut, buf, keep);
        free(buf);
        layer = (struct scan_layer){cut, tl_media_type(comps[c])};
        enum berth_err rc = read_layers(&layer, 1, &lim, &fs, reason, sizeof(reason));
        CHECK_INT(rc, BERTH_EINVAL);
        CHECK(strstr(reason, "layer 1 of 1: ") == reason);
    }

    /* corrupted compressed data in the middle */
    const char *full = tmp("full.tar.gz");
    tl_write(full, TL_GZIP, e, 3);
    char *buf = NULL;
    size_t len = 0;
    CHECK_INT(file_read_bounded(full, 1 << 24, &buf, &len), BERTH_OK);
    for (size_t i = len / 3; i < len / 3 + 64 && i < len; i++) {
        buf[i] = (char)~buf[i];
    }
    const char *bad = tmp("bad.tar.gz");
    tl_write_bytes(bad, buf, len);
    free(buf);
    layer = (struct scan_layer){bad, tl_media_type(TL_GZIP)};
    CHECK_INT(read_layers(&layer, 1, &lim, &fs, reason, sizeof(reason)), BERTH_EINVAL);

    /* a media type that is not a layer; a missing blob */
    layer = (struct scan_layer){full, "application/vnd.oci.image.config.v1+json"};
    CHECK_INT(read_layers(&layer, 1, &lim, &fs, reason, sizeof(reason)), BERTH_EINVAL);
    CHECK(strstr(reason, "unsupported layer media type") != NULL);
    layer = (struct scan_layer){tmp("missing"), tl_media_type(TL_GZIP)};
    CHECK_INT(read_layers(&layer, 1, &lim, &fs, reason, sizeof(reason)), BERTH_EIO);
    CHECK(strstr(reason, "cannot open") != NULL);

    /* the second layer is the bad one, and the reason says so */
    struct scan_layer two[] = {{full, tl_media_type(TL_GZIP)}, {pj, tl_media_type(TL_GZIP)}};
    CHECK_INT(read_layers(two, 2, &lim, &fs, reason, sizeof(reason)), BERTH_EINVAL);
    CHECK(strstr(reason, "layer 2 of 2: ") == reason);

    /* a zero-byte blob is not a tar either */
    const char *zero = tmp("zero");
    tl_write_bytes(zero, "", 0);
    layer = (struct scan_layer){zero, tl_media_type(TL_NONE)};
    CHECK_INT(read_layers(&layer, 1, &lim, &fs, reason, sizeof(reason)), BERTH_EINVAL);
    CHECK(strstr(reason, "not a tar, tar+gzip or tar+zstd layer") != NULL);
}

/* A tar bomb: a small gzip layer that expands past max_image_bytes stops
 * there, whether the big file is interesting or not. */
static void test_tar_bomb(void)
{
    static const struct tl_entry bomb[] = {TL_BIGF("zeros", 64LL << 20)};
    const char *p = tmp("bomb.tar.gz");
    tl_write(p, TL_GZIP, bomb, 1);
    CHECK(tl_file_size(p) < (1 << 20));
    struct scan_layer layer = {p, tl_media_type(TL_GZIP)};
    struct scan_limits lim = small_limits();
    lim.max_image_bytes = 8 << 20;
    struct scan_fs *fs;
    char reason[256];
    CHECK_INT(read_layers(&layer, 1, &lim, &fs, reason, sizeof(reason)), BERTH_ETOOBIG);
    CHECK(strstr(reason, "scan.max_image_bytes") != NULL);

    /* the limit counts all layers together */
    static const struct tl_entry half[] = {TL_BIGF("half", 5 << 20)};
    const char *ph = tmp("half.tar.zst");
    tl_write(ph, TL_ZSTD, half, 1);
    struct scan_layer two[] = {{ph, tl_media_type(TL_ZSTD)}, {ph, tl_media_type(TL_ZSTD)}};
    CHECK_INT(read_layers(two, 1, &lim, &fs, reason, sizeof(reason)), BERTH_OK);
    scan_fs_free(fs);
    CHECK_INT(read_layers(two, 2, &lim, &fs, reason, sizeof(reason)), BERTH_ETOOBIG);
    CHECK(strstr(reason, "layer 2 of 2: ") == reason);
}

/* A set cancel flag stops the read at once with BERTH_EBUSY; unset, it
 * changes nothing. */
static void test_cancel(void)
{
    static const struct tl_entry big[] = {TL_F("etc/os-release", "ID=debian\n"),
                                          TL_BIGF("data", 4 << 20)};
    const char *p = tmp("cancel.tar.gz");
    tl_write(p, TL_GZIP, big, 2);
    struct scan_layer layer = {p, tl_media_type(TL_GZIP)};
    struct scan_limits lim = small_limits();
    CHECK(lim.cancel == NULL);
    atomic_bool cancel;
    atomic_init(&cancel, false);
    lim.cancel = &cancel;
    struct scan_fs *fs;
    char reason[256];
    CHECK_INT(read_layers(&layer, 1, &lim, &fs, reason, sizeof(reason)), BERTH_OK);
    CHECK(scan_fs_get(fs, "etc/os-release") != NULL);
    scan_fs_free(fs);
    atomic_store(&cancel, true);
    CHECK_INT(read_layers(&layer, 1, &lim, &fs, reason, sizeof(reason)), BERTH_EBUSY);
    CHECK(fs == NULL);
    CHECK_STR(reason, "layer 1 of 1: the scan was cancelled");
}

/* An oversized package database fails the read, unless a later layer
 * removed it; too many entries fail too. */
static void test_limits(void)
{
    static const struct tl_entry big[] = {
        TL_F("etc/os-release", "ID=debian\n"),
        TL_BIGF("var/lib/dpkg/status", 2 << 20),
    };
    const char *p = tmp("bigdb.tar.gz");
    tl_write(p, TL_GZIP, big, 2);
    struct scan_layer layer = {p, tl_media_type(TL_GZIP)};
    struct scan_limits lim = small_limits();
    lim.max_file_bytes = 1 << 20;
    struct scan_fs *fs;
    char reason[256];
    CHECK_INT(read_layers(&layer, 1, &lim, &fs, reason, sizeof(reason)), BERTH_ETOOBIG);
    CHECK(strstr(reason, "/var/lib/dpkg/status is 2097152 bytes") != NULL);

    static const struct tl_entry del[] = {TL_F("var/lib/dpkg/.wh.status", "")};
    const char *pd = tmp("del.tar");
    tl_write(pd, TL_NONE, del, 1);
    struct scan_layer two[] = {layer, {pd, tl_media_type(TL_NONE)}};
    CHECK_INT(read_layers(two, 2, &lim, &fs, reason, sizeof(reason)), BERTH_OK);
    CHECK(scan_fs_get(fs, "var/lib/dpkg/status") == NULL);
    CHECK_STR(content(fs, "etc/os-release"), "ID=debian\n");
    scan_fs_free(fs);

    /* exactly at the limit is fine */
    static const struct tl_entry exact[] = {TL_BIGF("var/lib/dpkg/status", 1 << 20)};
    const char *pe = tmp("exact.tar");
    tl_write(pe, TL_NONE, exact, 1);
    layer = (struct scan_layer){pe, tl_media_type(TL_NONE)};
    CHECK_INT(read_layers(&layer, 1, &lim, &fs, reason, sizeof(reason)), BERTH_OK);
    CHECK_INT(scan_fs_get(fs, "var/lib/dpkg/status")->len, 1 << 20);
    scan_fs_free(fs);

    struct tl_entry many[100];
    char names[100][16];
    for (int i = 0; i < 100; i++) {
        snprintf(names[i], sizeof(names[i]), "f%d", i);
        many[i] = (struct tl_entry)TL_F(names[i], "x");
    }
    const char *pm = tmp("many.tar");
    tl_write(pm, TL_NONE, many, 100);
    layer = (struct scan_layer){pm, tl_media_type(TL_NONE)};
    lim = small_limits();
    lim.max_entries = 50;
    CHECK_INT(read_layers(&layer, 1, &lim, &fs, reason, sizeof(reason)), BERTH_ETOOBIG);
    CHECK(strstr(reason, "more than 50 entries") != NULL);
    lim.max_entries = 100;
    CHECK_INT(read_layers(&layer, 1, &lim, &fs, reason, sizeof(reason)), BERTH_OK);
    scan_fs_free(fs);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "%s", unit_tmpdir());
    RUN(test_normalize);
    RUN(test_compressions);
    RUN(test_whiteouts);
    RUN(test_replacement);
    RUN(test_links);
    RUN(test_scratch);
    RUN(test_bad_layers);
    RUN(test_tar_bomb);
    RUN(test_limits);
    RUN(test_cancel);
    file_remove_tree(dir);
    return unit_report("test_scan_layers");
}
