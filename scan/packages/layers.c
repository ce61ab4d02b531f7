/*
 * Streaming layer reader for the built-in scanner: libarchive decodes each
 * layer (tar, gzip, zstd), berth applies OCI whiteouts and keeps only the
 * interesting files, with every byte read counted against the limits.
 * Entry names only ever key the in-memory list; nothing touches the disk.
 */
#include "scan/packages/scan_layers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "common/fileio.h"
#include "common/str.h"

/* Symlink hops followed by scan_fs_get. */
#define SCAN_MAX_LINK_HOPS 8
/* Block size libarchive reads the blob file with. */
#define SCAN_READ_BLOCK (128 * 1024)

struct kept {
    struct scan_file pub;
    char *path;
    char *data; /* file contents or symlink target; NULL when oversized */
    size_t len;
    uint64_t real_size; /* the entry's size, also when not kept */
    unsigned layer;
    bool is_symlink;
    bool is_oversized;
};

struct scan_fs {
    struct kept *items;
    size_t count;
    size_t cap;
    uint64_t kept_bytes;
    uint64_t bytes_read;
    size_t *regular; /* indexes of regular files in path order */
    size_t regular_count;
};

/* State of one scan_layers_read call. */
struct reader {
    struct scan_fs *fs;
    const struct scan_limits *lim;
    uint64_t bytes_before; /* decompressed bytes of the layers already read */
    uint64_t entries;
    size_t layer;
    size_t layer_count;
    char *reason;
    size_t cap;
};

/* The files the scanner looks for, normalized. */
static const char *const interesting_paths[] = {
    "etc/os-release",       "usr/lib/os-release",       "var/lib/dpkg/status",
    "lib/apk/db/installed", "var/lib/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/rpmdb.sqlite",
};

#define STATUS_D "var/lib/dpkg/status.d/"

static const char *const layer_media_types[] = {
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
};

void scan_limits_default(struct scan_limits *lim)
{
    lim->max_image_bytes = SCAN_DEFAULT_MAX_IMAGE_BYTES;
    lim->max_file_bytes = SCAN_DEFAULT_MAX_FILE_BYTES;
    lim->max_entries = SCAN_DEFAULT_MAX_ENTRIES;
    lim->cancel = NULL;
}

enum berth_err scan_path_normalize(const char *in, char *out, size_t cap)
{
    if (cap == 0) {
        return BERTH_ETOOBIG;
    }
    size_t len = 0;
    const char *p = in;
    while (*p != '\0') {
        while (*p == '/') {
            p++;
        }
        const char *start = p;
        while (*p != '\0' && *p != '/') {
            p++;
        }
        size_t n = (size_t)(p - start);
        if (n == 0 || (n == 1 && start[0] == '.')) {
            continue;
        }
        if (n == 2 && start[0] == '.' && start[1] == '.') {
            /* drop the last component; at the root there is nothing to drop */
            while (len > 0 && out[len - 1] != '/') {
                len--;
            }
            if (len > 0) {
                len--;
            }
            continue;
        }
        size_t need = len + (len > 0 ? 1 : 0) + n;
        if (need + 1 > cap) {
            out[0] = '\0';
            return BERTH_ETOOBIG;
        }
        if (len > 0) {
            out[len++] = '/';
        }
        memcpy(out + len, start, n);
        len += n;
    }
    out[len] = '\0';
    return BERTH_OK;
}

static bool is_status_d_file(const char *path)
{
    if (!str_has_prefix(path, STATUS_D)) {
        return false;
    }
    const char *name = path + strlen(STATUS_D);
    /* distroless keeps "<package>" and "<package>.md5sums" side by side */
    return name[0] != '\0' && strchr(name, '/') == NULL && !str_has_suffix(name, ".md5sums");
}

bool scan_path_is_interesting(const char *path)
{
    for (size_t i = 0; i < sizeof(interesting_paths) / sizeof(interesting_paths[0]); i++) {
        if (strcmp(path, interesting_paths[i]) == 0) {
            return true;
        }
    }
    return is_status_d_file(path);
}

/* Whether p is x or a directory above x ("" is the root, above all). */
static bool is_ancestor_or_self(const char *p, const char *x)
{
    size_t n = strlen(p);
    return n == 0 || (strncmp(p, x, n) == 0 && (x[n] == '\0' || x[n] == '/'));
}

/* Whether a kept file could be at or below path: every kept path is one of
 * the interesting paths or inside status.d, so most entries are skipped
 * without looking at the list. */
static bool may_cover_kept(const char *path)
{
    for (size_t i = 0; i < sizeof(interesting_paths) / sizeof(interesting_paths[0]); i++) {
        if (is_ancestor_or_self(path, interesting_paths[i])) {
            return true;
        }
    }
    return is_ancestor_or_self(path, "var/lib/dpkg/status.d") || str_has_prefix(path, STATUS_D);
}

/* ---- the kept-file list -------------------------------------------------- */

static void kept_release(struct scan_fs *fs, struct kept *k)
{
    fs->kept_bytes -= k->len;
    free(k->path);
    free(k->data);
}

static void kept_remove_at(struct scan_fs *fs, size_t i)
{
    kept_release(fs, &fs->items[i]);
    fs->items[i] = fs->items[fs->count - 1];
    fs->count--;
}

/* What an entry at a path is, for what it hides. */
enum hide_kind {
    HIDE_FILE,     /* any non-directory entry */
    HIDE_DIR,      /* a directory entry */
    HIDE_WHITEOUT, /* ".wh.<name>": deletes <name> */
};

/* Remove what an entry at path in layer hides. A file or a directory
 * replaces anything kept at exactly path (a later entry of the same layer
 * wins too), and a file also hides what lower layers kept below path. A
 * whiteout hides path and everything below it, but only from lower layers:
 * OCI whiteouts never delete files of their own layer. */
static void hide_path(struct scan_fs *fs, const char *path, unsigned layer, enum hide_kind kind)
{
    if (fs->count == 0 || !may_cover_kept(path)) {
        return;
    }
    size_t n = strlen(path);
    for (size_t i = fs->count; i > 0; i--) {
        struct kept *k = &fs->items[i - 1];
        bool exact = strcmp(k->path, path) == 0 && (kind != HIDE_WHITEOUT || k->layer < layer);
        bool below = kind != HIDE_DIR && k->layer < layer &&
                     (n == 0 || (strncmp(k->path, path, n) == 0 && k->path[n] == '/'));
        if (exact || below) {
            kept_remove_at(fs, i - 1);
        }
    }
}

/* An opaque directory: everything below dir from lower layers goes. */
static void hide_below(struct scan_fs *fs, const char *dir, unsigned layer)
{
    if (fs->count == 0 || !may_cover_kept(dir)) {
        return;
    }
    size_t n = strlen(dir);
    for (size_t i = fs->count; i > 0; i--) {
        struct kept *k = &fs->items[i - 1];
        if (k->layer < layer && (n == 0 || (strncmp(k->path, dir, n) == 0 && k->path[n] == '/'))) {
            kept_remove_at(fs, i - 1);
        }
    }
}

static struct kept *kept_find(const struct scan_fs *fs, const char *path)
{
    for (size_t i = 0; i < fs->count; i++) {
        if (strcmp(fs->items[i].path, path) == 0) {
            return &fs->items[i];
        }
    }
    return NULL;
}

/* ---- reading ------------------------------------------------------------- */

static enum berth_err fail(struct reader *r, enum berth_err rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum berth_err fail(struct reader *r, enum berth_err rc, const char *fmt, ...)
{
    if (r->cap == 0) {
        return rc;
    }
    int n = snprintf(r->reason, r->cap, "layer %zu of %zu: ", r->layer + 1, r->layer_count);
    if (n >= 0 && (size_t)n < r->cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->reason + n, r->cap - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static enum berth_err archive_fail(struct reader *r, struct archive *a, const char *what)
{
    const char *msg = archive_error_string(a);
    if (msg == NULL) {
        msg = "unreadable archive";
    }
    /* libarchive's wording for "no decoder or format matched" */
    const char *hint = strcmp(msg, "Unrecognized archive format") == 0
                           ? " (not a tar, tar+gzip or tar+zstd layer)"
                           : "";
    return fail(r, BERTH_EINVAL, "%s: %s%s", what, msg, hint);
}

static enum berth_err check_bytes(struct reader *r, struct archive *a)
{
    if (r->lim->cancel != NULL && atomic_load(r->lim->cancel)) {
        return fail(r, BERTH_EBUSY, "the scan was cancelled");
    }
    la_int64_t n = archive_filter_bytes(a, 0);
    uint64_t total = r->bytes_before + (n > 0 ? (uint64_t)n : 0);
    if (total > r->lim->max_image_bytes) {
        return fail(r, BERTH_ETOOBIG,
                    "image expands to more than %llu bytes (scan.max_image_bytes); "
                    "refusing to read further",
                    (unsigned long long)r->lim->max_image_bytes);
    }
    return BERTH_OK;
}

/* Consume the rest of the current entry's data, counting every block. */
static enum berth_err drain(struct reader *r, struct archive *a)
{
    for (;;) {
        const void *buf;
        size_t size;
        la_int64_t offset;
        int rc = archive_read_data_block(a, &buf, &size, &offset);
        if (rc == ARCHIVE_EOF) {
            return BERTH_OK;
        }
        if (rc < ARCHIVE_WARN) {
            return archive_fail(r, a, "reading entry data");
        }
        enum berth_err e = check_bytes(r, a);
        if (e != BERTH_OK) {
            return e;
        }
    }
}

static enum berth_err kept_add(struct reader *r, struct kept *k)
{
    struct scan_fs *fs = r->fs;
    if (fs->count >= SCAN_MAX_KEPT_FILES) {
        return fail(r, BERTH_ETOOBIG, "more than %d package database files", SCAN_MAX_KEPT_FILES);
    }
    /* bytes kept at once stay under four package databases' worth */
    if (k->len > r->lim->max_file_bytes * 4 - fs->kept_bytes) {
        return fail(r, BERTH_ETOOBIG, "package database files total more than %llu bytes",
                    (unsigned long long)(r->lim->max_file_bytes * 4));
    }
    if (fs->count == fs->cap) {
        size_t cap = fs->cap ? fs->cap * 2 : 16;
        struct kept *items = realloc(fs->items, cap * sizeof(*items));
        if (items == NULL) {
            return BERTH_ENOMEM;
        }
        fs->items = items;
        fs->cap = cap;
    }
    fs->items[fs->count++] = *k;
    fs->kept_bytes += k->len;
    return BERTH_OK;
}

/* Read the current regular entry into memory, or note it as oversized. */
static enum berth_err keep_regular(struct reader *r, struct archive *a, struct archive_entry *e,
                                   const char *path)
{
    struct kept k = {.layer = (unsigned)r->layer};
    enum berth_err rc = BERTH_OK;
    uint64_t max = r->lim->max_file_bytes;
    la_int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : -1;
    k.path = strdup(path);
    if (k.path == NULL) {
        return BERTH_ENOMEM;
    }
    if (size > 0 && (uint64_t)size > max) {
        /* keep a marker: a later layer may still delete or replace it */
        k.is_oversized = true;
        k.real_size = (uint64_t)size;
        rc = drain(r, a);
        if (rc != BERTH_OK) {
            goto out;
        }
        rc = kept_add(r, &k);
        goto out;
    }
    /* a known size is exact; an unknown one may grow up to the limit */
    size_t cap = size >= 0 ? (size_t)size : (max < 65536 ? (size_t)max : 65536);
    k.data = malloc(cap + 1);
    if (k.data == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    for (;;) {
        if (k.len == cap) {
            if (size < 0 && cap < max) {
                size_t ncap = cap * 2 > max ? (size_t)max : cap * 2;
                char *p = realloc(k.data, ncap + 1);
                if (p == NULL) {
                    rc = BERTH_ENOMEM;
                    goto out;
                }
                k.data = p;
                cap = ncap;
            } else {
                char probe;
                la_ssize_t extra = archive_read_data(a, &probe, 1);
                if (extra == 0) {
                    break;
                }
                if (extra < 0) {
                    rc = archive_fail(r, a, "reading entry data");
                    goto out;
                }
                rc = fail(r, BERTH_ETOOBIG, "/%s is larger than %llu bytes", path,
                          (unsigned long long)max);
                goto out;
            }
        }
        la_ssize_t n = archive_read_data(a, k.data + k.len, cap - k.len);
        if (n < 0) {
            rc = archive_fail(r, a, "reading entry data");
            goto out;
        }
        if (n == 0) {
            break;
        }
        k.len += (size_t)n;
        rc = check_bytes(r, a);
        if (rc != BERTH_OK) {
            goto out;
        }
    }
    if (size >= 0 && k.len != (size_t)size) {
        rc = fail(r, BERTH_EINVAL, "/%s is truncated", path);
        goto out;
    }
    k.data[k.len] = '\0';
    k.real_size = k.len;
    rc = kept_add(r, &k);
out:
    if (rc != BERTH_OK) {
        free(k.path);
        free(k.data);
    }
    return rc;
}

static enum berth_err keep_copy(struct reader *r, const char *path, const char *data, size_t len,
                                bool is_symlink)
{
    struct kept k = {.layer = (unsigned)r->layer, .is_symlink = is_symlink, .len = len};
    k.path = strdup(path);
    k.data = malloc(len + 1);
    if (k.path == NULL || k.data == NULL) {
        free(k.path);
        free(k.data);
        return BERTH_ENOMEM;
    }
    memcpy(k.data, data, len);
    k.data[len] = '\0';
    k.real_size = len;
    enum berth_err rc = kept_add(r, &k);
    if (rc != BERTH_OK) {
        free(k.path);
        free(k.data);
    }
    return rc;
}

/* Apply one entry of the current layer to the kept list. */
static enum berth_err apply_entry(struct reader *r, struct archive *a, struct archive_entry *e)
{
    const char *name = archive_entry_pathname(e);
    char *path = NULL;
    enum berth_err rc = BERTH_OK;
    if (name == NULL) {
        name = archive_entry_pathname_utf8(e);
    }
    if (name == NULL) {
        /* a name libarchive cannot represent cannot be one we look for */
        return drain(r, a);
    }
    path = malloc(SCAN_PATH_MAX);
    if (path == NULL) {
        return BERTH_ENOMEM;
    }
    if (scan_path_normalize(name, path, SCAN_PATH_MAX) != BERTH_OK) {
        rc = drain(r, a);
        goto out;
    }
    unsigned layer = (unsigned)r->layer;
    char *slash = strrchr(path, '/');
    char *base = slash ? slash + 1 : path;
    if (strncmp(base, ".wh.", 4) == 0) {
        if (slash) {
            *slash = '\0';
        }
        const char *dir = slash ? path : "";
        if (strcmp(base, ".wh..wh..opq") == 0) {
            hide_below(r->fs, dir, layer);
        } else if (strncmp(base, ".wh..wh.", 8) != 0) {
            /* ".wh.<name>" deletes <name> and everything below it; other
             * ".wh..wh." names are AUFS bookkeeping and mean nothing here */
            memmove(base, base + 4, strlen(base + 4) + 1);
            if (slash) {
                *slash = '/';
            }
            hide_path(r->fs, path, layer, HIDE_WHITEOUT);
        }
        rc = drain(r, a);
        goto out;
    }
    const char *hardlink = archive_entry_hardlink(e);
    mode_t type = archive_entry_filetype(e);
    if (hardlink == NULL && type == AE_IFDIR) {
        hide_path(r->fs, path, layer, HIDE_DIR);
        rc = drain(r, a);
        goto out;
    }
    hide_path(r->fs, path, layer, HIDE_FILE);
    if (!scan_path_is_interesting(path)) {
        rc = drain(r, a);
        goto out;
    }
    if (hardlink != NULL) {
        char target[SCAN_PATH_MAX];
        const struct kept *t = NULL;
        if (scan_path_normalize(hardlink, target, sizeof(target)) == BERTH_OK) {
            t = kept_find(r->fs, target);
        }
        /* only a link to a file we kept can be followed */
        if (t != NULL && !t->is_oversized) {
            rc = keep_copy(r, path, t->data, t->len, t->is_symlink);
        }
        if (rc == BERTH_OK) {
            rc = drain(r, a);
        }
        goto out;
    }
    if (type == AE_IFLNK) {
        const char *target = archive_entry_symlink(e);
        if (target != NULL && strlen(target) < SCAN_PATH_MAX) {
            rc = keep_copy(r, path, target, strlen(target), true);
        }
        if (rc == BERTH_OK) {
            rc = drain(r, a);
        }
        goto out;
    }
    if (type == AE_IFREG) {
        rc = keep_regular(r, a, e, path);
        goto out;
    }
    rc = drain(r, a);
out:
    free(path);
    return rc;
}

static bool is_layer_media_type(const char *mt)
{
    for (size_t i = 0; i < sizeof(layer_media_types) / sizeof(layer_media_types[0]); i++) {
        if (strcmp(mt, layer_media_types[i]) == 0) {
            return true;
        }
    }
    return false;
}

static enum berth_err read_layer(struct reader *r, const struct scan_layer *layer)
{
    enum berth_err rc = BERTH_OK;
    struct archive *a = NULL;
    int fd = -1;
    if (layer->media_type == NULL || !is_layer_media_type(layer->media_type)) {
        return fail(r, BERTH_EINVAL, "unsupported layer media type %s",
                    layer->media_type ? layer->media_type : "(none)");
    }
    fd = open(layer->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return fail(r, BERTH_EIO, "cannot open the layer blob: %s", strerror(errno));
    }
    a = archive_read_new();
    if (a == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    /* Decoders are chosen by content; only gzip and zstd are enabled, and
     * only the tar family of formats (ustar, pax, GNU, v7). */
    if (archive_read_support_filter_gzip(a) != ARCHIVE_OK ||
        archive_read_support_filter_zstd(a) != ARCHIVE_OK ||
        archive_read_support_format_tar(a) != ARCHIVE_OK) {
        rc = archive_fail(r, a, "setting up the decoder");
        goto out;
    }
    if (archive_read_open_fd(a, fd, SCAN_READ_BLOCK) != ARCHIVE_OK) {
        rc = archive_fail(r, a, "opening the layer");
        goto out;
    }
    for (;;) {
        struct archive_entry *e;
        int ar = archive_read_next_header(a, &e);
        if (ar == ARCHIVE_EOF) {
            break;
        }
        if (ar < ARCHIVE_WARN) {
            rc = archive_fail(r, a, "reading the tar stream");
            goto out;
        }
        if (++r->entries > r->lim->max_entries) {
            rc = fail(r, BERTH_ETOOBIG, "more than %llu entries in the image",
                      (unsigned long long)r->lim->max_entries);
            goto out;
        }
        rc = check_bytes(r, a);
        if (rc != BERTH_OK) {
            goto out;
        }
        rc = apply_entry(r, a, e);
        if (rc != BERTH_OK) {
            goto out;
        }
    }
    la_int64_t n = archive_filter_bytes(a, 0);
    r->bytes_before += n > 0 ? (uint64_t)n : 0;
out:
    if (a != NULL) {
        archive_read_free(a);
    }
    file_close(fd);
    return rc;
}

static int kept_cmp(const void *a, const void *b)
{
    const struct kept *ka = a, *kb = b;
    return strcmp(ka->path, kb->path);
}

static enum berth_err finish(struct reader *r)
{
    struct scan_fs *fs = r->fs;
    if (fs->count > 1) {
        qsort(fs->items, fs->count, sizeof(fs->items[0]), kept_cmp);
    }
    for (size_t i = 0; i < fs->count; i++) {
        struct kept *k = &fs->items[i];
        if (k->is_oversized) {
            r->layer = k->layer;
            return fail(r, BERTH_ETOOBIG, "/%s is %llu bytes, over the %llu-byte limit", k->path,
                        (unsigned long long)k->real_size,
                        (unsigned long long)r->lim->max_file_bytes);
        }
    }
    fs->regular = calloc(fs->count ? fs->count : 1, sizeof(size_t));
    if (fs->regular == NULL) {
        return BERTH_ENOMEM;
    }
    for (size_t i = 0; i < fs->count; i++) {
        struct kept *k = &fs->items[i];
        k->pub =
            (struct scan_file){.path = k->path, .data = k->data, .len = k->len, .layer = k->layer};
        if (!k->is_symlink) {
            fs->regular[fs->regular_count++] = i;
        }
    }
    fs->bytes_read = r->bytes_before;
    return BERTH_OK;
}

enum berth_err scan_layers_read(const struct scan_layer *layers, size_t count,
                                const struct scan_limits *lim, struct scan_fs **out, char *reason,
                                size_t cap)
{
    if (cap > 0) {
        reason[0] = '\0';
    }
    if ((layers == NULL && count > 0) || lim == NULL || out == NULL || lim->max_file_bytes == 0 ||
        lim->max_file_bytes > SIZE_MAX / 8) {
        return BERTH_EINVAL;
    }
    struct scan_fs *fs = calloc(1, sizeof(*fs));
    if (fs == NULL) {
        return BERTH_ENOMEM;
    }
    struct reader r = {.fs = fs, .lim = lim, .layer_count = count, .reason = reason, .cap = cap};
    enum berth_err rc = BERTH_OK;
    for (size_t i = 0; i < count; i++) {
        r.layer = i;
        rc = read_layer(&r, &layers[i]);
        if (rc != BERTH_OK) {
            goto out;
        }
    }
    rc = finish(&r);
out:
    if (rc != BERTH_OK) {
        scan_fs_free(fs);
        return rc;
    }
    *out = fs;
    return BERTH_OK;
}

void scan_fs_free(struct scan_fs *fs)
{
    if (fs == NULL) {
        return;
    }
    for (size_t i = 0; i < fs->count; i++) {
        free(fs->items[i].path);
        free(fs->items[i].data);
    }
    free(fs->items);
    free(fs->regular);
    free(fs);
}

static const struct kept *kept_lookup(const struct scan_fs *fs, const char *path)
{
    /* items are sorted by path once reading has finished */
    size_t lo = 0, hi = fs->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(fs->items[mid].path, path);
        if (c == 0) {
            return &fs->items[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

const struct scan_file *scan_fs_get(const struct scan_fs *fs, const char *path)
{
    char cur[SCAN_PATH_MAX];
    char next[SCAN_PATH_MAX];
    if (fs == NULL || scan_path_normalize(path, cur, sizeof(cur)) != BERTH_OK) {
        return NULL;
    }
    for (int hop = 0; hop <= SCAN_MAX_LINK_HOPS; hop++) {
        const struct kept *k = kept_lookup(fs, cur);
        if (k == NULL) {
            return NULL;
        }
        if (!k->is_symlink) {
            return &k->pub;
        }
        /* relative targets start from the link's directory */
        char joined[2 * SCAN_PATH_MAX + 2];
        const char *slash = strrchr(cur, '/');
        int n;
        if (k->data[0] == '/' || slash == NULL) {
            n = snprintf(joined, sizeof(joined), "%s", k->data);
        } else {
            n = snprintf(joined, sizeof(joined), "%.*s/%s", (int)(slash - cur), cur, k->data);
        }
        if (n < 0 || (size_t)n >= sizeof(joined) ||
            scan_path_normalize(joined, next, sizeof(next)) != BERTH_OK) {
            return NULL;
        }
        memcpy(cur, next, sizeof(cur));
    }
    return NULL;
}

size_t scan_fs_count(const struct scan_fs *fs)
{
    return fs ? fs->regular_count : 0;
}

const struct scan_file *scan_fs_at(const struct scan_fs *fs, size_t i)
{
    if (fs == NULL || i >= fs->regular_count) {
        return NULL;
    }
    return &fs->items[fs->regular[i]].pub;
}

uint64_t scan_fs_bytes_read(const struct scan_fs *fs)
{
    return fs ? fs->bytes_read : 0;
}
