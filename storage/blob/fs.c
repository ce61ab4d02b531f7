/*
 * The filesystem blob backend: blobs are files blobs/<alg>/<2 hex>/<hex>
 * under the data root, stages are files uploads/<name>, and removal moves
 * a blob to trash/<alg>-<hex> until its transaction's outcome is known.
 * Publication is rename, with the file and its directories fsynced when
 * the store asks for durability. Thread-safe (no shared mutable state).
 *
 * With fsync on, a stage starts the writeback of what it received in
 * FS_WRITEBACK_CHUNK pieces while the rest still arrives
 * (sync_file_range(SYNC_FILE_RANGE_WRITE): start, do not wait), so the
 * fsync at the end of an upload has little left to write. It changes only
 * when the bytes go to the disk, never what is acknowledged: that still
 * waits for the final fsync.
 *
 * Publication in two steps (blob.h): before the metadata transaction,
 * fs_stage_prepublish links the stage's file in under the blob's name and
 * fsyncs its directory; inside it, publish_file finds the file there and
 * only drops the stage, so the database's write lock is never held across
 * a directory fsync on that path. Which prefix directories are known to
 * be durable in their parents is kept per store (dirs_durable): with fsync
 * on, the first publication of an algorithm in a process creates all 256
 * and fsyncs their parents once (ensure_all_dirs).
 */
#define _GNU_SOURCE /* sync_file_range */
#include "blob_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/str.h"

#define FS_PATH_MAX 4096

/* Writeback is started in pieces of this many bytes (8 MiB): large
 * enough for the disk to write in big requests, small enough that the
 * final fsync waits for little. */
#define FS_WRITEBACK_CHUNK ((uint64_t)8 << 20)

struct fs_store {
    struct blob_store base;
    bool fsync;
    /* per algorithm (sha256, sha512), one bit per <alg>/<xx> directory:
     * it exists, and so does its name in <alg>/ and <alg>'s in blobs/,
     * durably (fsynced in this process; never cleared: nothing removes
     * these directories) */
    atomic_uint_fast64_t dirs_durable[2][4];
    atomic_bool alg_durable[2]; /* <alg>'s name in blobs/, the same way */
    /* links made by fs_stage_prepublish whose directory fsync has not
     * returned yet (publish_file: a blob file that is not the caller's own
     * may still be on its way to the disk) */
    atomic_int links_pending;
    atomic_uint_fast64_t dir_fsyncs; /* for tests (blob_fs_dir_fsyncs) */
    char blobs_dir[FS_PATH_MAX];
    char uploads_dir[FS_PATH_MAX];
    char trash_dir[FS_PATH_MAX];
};

struct fs_stage {
    struct blob_stage base;
    struct fs_store *fs;
    int fd;
    uint64_t wb_started; /* writeback started for [0, wb_started) */
};

static struct fs_store *fs_of(struct blob_store *bs)
{
    return (struct fs_store *)(void *)bs;
}

/* fsync of a directory of the store, counted. */
static enum berth_err dir_fsync(struct fs_store *fs, const char *path)
{
    atomic_fetch_add(&fs->dir_fsyncs, 1);
    return file_fsync_dir(path);
}

uint64_t blob_fs_dir_fsyncs(struct blob_store *bs)
{
    return atomic_load(&fs_of(bs)->dir_fsyncs);
}

static struct fs_stage *stage_of(struct blob_stage *s)
{
    return (struct fs_stage *)(void *)s;
}

static enum berth_err join(char *out, size_t cap, const char *a, const char *b)
{
    int n = snprintf(out, cap, "%s/%s", a, b);
    return (n < 0 || (size_t)n >= cap) ? BERTH_ETOOBIG : BERTH_OK;
}

static int64_t mtime_ms(const struct stat *sb)
{
    return (int64_t)sb->st_mtim.tv_sec * 1000 + sb->st_mtim.tv_nsec / 1000000;
}

/* <blobs>/<alg>/<first 2 hex>/<hex> */
static enum berth_err blob_path(const struct fs_store *fs, const struct digest *d, char *out,
                                size_t cap)
{
    const char *hex = digest_hex(d);
    int n = snprintf(out, cap, "%s/%s/%.2s/%s", fs->blobs_dir, digest_alg_name(d->alg), hex, hex);
    return (n < 0 || (size_t)n >= cap) ? BERTH_ETOOBIG : BERTH_OK;
}

/* <trash>/<alg>-<hex>: recover parses the name back (trash_name_digest). */
static enum berth_err trash_path(const struct fs_store *fs, const struct digest *d, char *out,
                                 size_t cap)
{
    int n = snprintf(out, cap, "%s/%s-%s", fs->trash_dir, digest_alg_name(d->alg), digest_hex(d));
    return (n < 0 || (size_t)n >= cap) ? BERTH_ETOOBIG : BERTH_OK;
}

static bool trash_name_digest(const char *name, struct digest *d)
{
    const char *dash = strchr(name, '-');
    if (dash == NULL || (size_t)(dash - name) >= 16) {
        return false;
    }
    char text[DIGEST_STR_MAX];
    int n = snprintf(text, sizeof(text), "%.*s:%s", (int)(dash - name), name, dash + 1);
    return n > 0 && (size_t)n < sizeof(text) && digest_parse(text, d) == BERTH_OK;
}

static enum berth_err stage_path(const struct fs_store *fs, const char *name, char *out, size_t cap)
{
    return join(out, cap, fs->uploads_dir, name);
}

enum berth_err blob_fs_stage_path(struct blob_store *bs, const char *name, char *out, size_t cap)
{
    return stage_path(fs_of(bs), name, out, cap);
}

/* ---- the store ---- */

static const struct blob_backend fs_backend;

enum berth_err blob_fs_open(const struct blob_store_options *opt, struct blob_store **out)
{
    struct fs_store *fs = calloc(1, sizeof(*fs));
    if (fs == NULL) {
        return BERTH_ENOMEM;
    }
    fs->base.ops = &fs_backend;
    fs->fsync = opt->fsync;
    enum berth_err rc = BERTH_OK;
    if (join(fs->blobs_dir, FS_PATH_MAX, opt->root, "blobs") != BERTH_OK ||
        join(fs->uploads_dir, FS_PATH_MAX, opt->root, "uploads") != BERTH_OK ||
        join(fs->trash_dir, FS_PATH_MAX, opt->root, "trash") != BERTH_OK ||
        strlen(fs->blobs_dir) > FS_PATH_MAX - 300) {
        /* room for <alg>/<xx>/<hex> below blobs/ */
        rc = BERTH_ETOOBIG;
        goto out;
    }
    const char *dirs[] = {opt->root, fs->blobs_dir, fs->uploads_dir, fs->trash_dir};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        rc = file_mkdir_p(dirs[i], 0750);
        if (rc != BERTH_OK) {
            log_error("event=store_error op=mkdir path=%s errno=%d", dirs[i], errno);
            goto out;
        }
    }
out:
    if (rc != BERTH_OK) {
        free(fs);
        return rc;
    }
    *out = &fs->base;
    return BERTH_OK;
}

static void fs_close(struct blob_store *bs)
{
    free(fs_of(bs));
}

/* ---- reading ---- */

static enum berth_err fs_open(struct blob_store *bs, const struct digest *d, int *fd,
                              uint64_t *size)
{
    char path[FS_PATH_MAX];
    enum berth_err rc = blob_path(fs_of(bs), d, path, sizeof(path));
    if (rc != BERTH_OK) {
        return rc;
    }
    int f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0) {
        return berth_err_from_errno(errno);
    }
    struct stat sb;
    if (fstat(f, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        file_close(f);
        return BERTH_EIO;
    }
    *fd = f;
    *size = (uint64_t)sb.st_size;
    return BERTH_OK;
}

static enum berth_err fs_stat(struct blob_store *bs, const struct digest *d, uint64_t *size)
{
    char path[FS_PATH_MAX];
    enum berth_err rc = blob_path(fs_of(bs), d, path, sizeof(path));
    if (rc != BERTH_OK) {
        return rc;
    }
    struct stat sb;
    if (stat(path, &sb) != 0) {
        return berth_err_from_errno(errno);
    }
    if (!S_ISREG(sb.st_mode)) {
        return BERTH_EIO;
    }
    *size = (uint64_t)sb.st_size;
    return BERTH_OK;
}

static enum berth_err fs_local_path(struct blob_store *bs, const struct digest *d, char *out,
                                    size_t cap)
{
    return blob_path(fs_of(bs), d, out, cap);
}

/* ---- stages ---- */

static enum berth_err fs_stage_create(struct blob_store *bs, const char *name)
{
    char path[FS_PATH_MAX];
    enum berth_err rc = stage_path(fs_of(bs), name, path, sizeof(path));
    if (rc != BERTH_OK) {
        return rc;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) {
        if (errno == EEXIST) {
            return BERTH_EEXIST;
        }
        log_error("event=store_error op=create_stage path=%s errno=%d", path, errno);
        rc = berth_err_from_errno(errno);
        return rc == BERTH_ENOTFOUND ? BERTH_EIO : rc;
    }
    return file_close(fd);
}

static enum berth_err fs_stage_open(struct blob_store *bs, const char *name,
                                    struct blob_stage **out, uint64_t *size)
{
    char path[FS_PATH_MAX];
    enum berth_err rc = stage_path(fs_of(bs), name, path, sizeof(path));
    if (rc != BERTH_OK) {
        return rc;
    }
    struct fs_stage *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return BERTH_ENOMEM;
    }
    s->fd = open(path, O_RDWR | O_CLOEXEC);
    if (s->fd < 0) {
        rc = berth_err_from_errno(errno);
        free(s);
        return rc;
    }
    struct stat sb;
    if (fstat(s->fd, &sb) != 0) {
        file_close(s->fd);
        free(s);
        return BERTH_EIO;
    }
    s->base.ops = &fs_backend;
    s->fs = fs_of(bs);
    s->wb_started = (uint64_t)sb.st_size;
    *out = &s->base;
    *size = (uint64_t)sb.st_size;
    return BERTH_OK;
}

/* Start (not wait for) the writeback of whole FS_WRITEBACK_CHUNKs written
 * since the last start, up to end. Only a hint to the kernel: a failure
 * is ignored here, and a write error is reported by the final fsync
 * (SYNC_FILE_RANGE_WRITE alone never consumes the file's error state). */
static void start_writeback(struct fs_stage *s, uint64_t end)
{
#ifdef SYNC_FILE_RANGE_WRITE
    if (!s->fs->fsync || end < s->wb_started + FS_WRITEBACK_CHUNK) {
        return;
    }
    uint64_t len = (end - s->wb_started) / FS_WRITEBACK_CHUNK * FS_WRITEBACK_CHUNK;
    (void)sync_file_range(s->fd, (off64_t)s->wb_started, (off64_t)len, SYNC_FILE_RANGE_WRITE);
    s->wb_started += len;
#else
    (void)s;
    (void)end;
#endif
}

uint64_t blob_fs_stage_writeback_started(const struct blob_stage *bs)
{
    return ((const struct fs_stage *)(const void *)bs)->wb_started;
}

static enum berth_err fs_stage_write(struct blob_stage *bs, uint64_t offset, const void *p,
                                     size_t n)
{
    struct fs_stage *s = stage_of(bs);
    enum berth_err rc = file_pwrite_all(s->fd, p, n, (off_t)offset);
    if (rc == BERTH_OK) {
        start_writeback(s, offset + n);
    }
    return rc;
}

static enum berth_err fs_stage_read(struct blob_stage *bs, uint64_t offset, void *p, size_t n,
                                    size_t *got)
{
    struct fs_stage *s = stage_of(bs);
    for (;;) {
        ssize_t r = pread(s->fd, p, n, (off_t)offset);
        if (r >= 0) {
            *got = (size_t)r;
            return BERTH_OK;
        }
        if (errno != EINTR) {
            return BERTH_EIO;
        }
    }
}

static enum berth_err fs_stage_truncate(struct blob_stage *bs, uint64_t size)
{
    struct fs_stage *s = stage_of(bs);
    if (ftruncate(s->fd, (off_t)size) != 0) {
        return BERTH_EIO;
    }
    if (s->wb_started > size) {
        s->wb_started = size;
    }
    return BERTH_OK;
}

static enum berth_err fs_stage_hash(struct blob_stage *bs, struct digest_ctx *ctx, uint64_t len)
{
    return digest_ctx_update_fd(ctx, stage_of(bs)->fd, (off_t)len);
}

static enum berth_err fs_stage_sync(struct blob_stage *bs)
{
    struct fs_stage *s = stage_of(bs);
    return !s->fs->fsync || fsync(s->fd) == 0 ? BERTH_OK : BERTH_EIO;
}

static void fs_stage_close(struct blob_stage *bs)
{
    struct fs_stage *s = stage_of(bs);
    file_close(s->fd);
    free(s);
}

static enum berth_err fs_stage_stat(struct blob_store *bs, const char *name, uint64_t *size,
                                    int64_t *mtime)
{
    char path[FS_PATH_MAX];
    struct stat sb;
    enum berth_err rc = stage_path(fs_of(bs), name, path, sizeof(path));
    if (rc != BERTH_OK) {
        return rc;
    }
    if (stat(path, &sb) != 0) {
        return berth_err_from_errno(errno);
    }
    *size = (uint64_t)sb.st_size;
    *mtime = mtime_ms(&sb);
    return BERTH_OK;
}

static enum berth_err fs_stage_remove(struct blob_store *bs, const char *name)
{
    char path[FS_PATH_MAX];
    enum berth_err rc = stage_path(fs_of(bs), name, path, sizeof(path));
    if (rc != BERTH_OK) {
        return rc;
    }
    if (unlink(path) != 0) {
        return berth_err_from_errno(errno);
    }
    return BERTH_OK;
}

/* mkdir that reports whether it created the directory. */
static enum berth_err ensure_dir(const char *path, bool *created)
{
    if (mkdir(path, 0750) == 0) {
        *created = true;
        return BERTH_OK;
    }
    *created = false;
    return errno == EEXIST ? BERTH_OK : BERTH_EIO;
}

/* The paths of d's directories and file. */
struct blob_paths {
    char alg_dir[FS_PATH_MAX], pre_dir[FS_PATH_MAX], path[FS_PATH_MAX];
};

static enum berth_err paths_of(const struct fs_store *fs, const struct digest *d,
                               struct blob_paths *p)
{
    const char *hex = digest_hex(d);
    int n1 =
        snprintf(p->alg_dir, sizeof(p->alg_dir), "%s/%s", fs->blobs_dir, digest_alg_name(d->alg));
    int n2 = snprintf(p->pre_dir, sizeof(p->pre_dir), "%s/%.2s", p->alg_dir, hex);
    if (n1 < 0 || n1 >= (int)sizeof(p->alg_dir) || n2 < 0 || n2 >= (int)sizeof(p->pre_dir) ||
        blob_path(fs, d, p->path, sizeof(p->path)) != BERTH_OK) {
        return BERTH_ETOOBIG;
    }
    return BERTH_OK;
}

/* d's bit in dirs_durable, or NULL for an algorithm without one; *alg
 * (may be NULL then too) its algorithm's flag. */
static atomic_uint_fast64_t *dir_bit(struct fs_store *fs, const struct digest *d, uint64_t *mask,
                                     atomic_bool **alg)
{
    unsigned v = 0;
    const char *hex = digest_hex(d);
    for (int i = 0; i < 2; i++) {
        char c = hex[i];
        v = v * 16 + (unsigned)(c >= 'a' ? c - 'a' + 10 : c - '0');
    }
    int a = d->alg == DIGEST_SHA256 ? 0 : d->alg == DIGEST_SHA512 ? 1 : -1;
    *alg = a < 0 ? NULL : &fs->alg_durable[a];
    if (a < 0 || v > 255) {
        return NULL;
    }
    *mask = (uint64_t)1 << (v % 64);
    return &fs->dirs_durable[a][v / 64];
}

/* With fsync on, the first publication of an algorithm in a process
 * creates all 256 of its <xx> directories (those missing) and makes their
 * names durable with one fsync of <alg>/ (and one of blobs/), instead of
 * two fsyncs at the first use of each: 1 instead of up to 256 per process
 * and algorithm. words are the algorithm's dirs_durable. */
static enum berth_err ensure_all_dirs(struct fs_store *fs, const struct blob_paths *p,
                                      atomic_uint_fast64_t *words, atomic_bool *alg)
{
    bool created;
    enum berth_err rc = ensure_dir(p->alg_dir, &created);
    char dir[FS_PATH_MAX];
    for (unsigned v = 0; rc == BERTH_OK && v < 256; v++) {
        int n = snprintf(dir, sizeof(dir), "%s/%02x", p->alg_dir, v);
        rc = n < 0 || (size_t)n >= sizeof(dir) ? BERTH_ETOOBIG : ensure_dir(dir, &created);
    }
    if (rc != BERTH_OK) {
        log_error("event=store_error op=mkdir path=%s errno=%d", dir, errno);
        return rc;
    }
    rc = dir_fsync(fs, p->alg_dir);
    if (rc == BERTH_OK && !atomic_load(alg)) {
        rc = dir_fsync(fs, fs->blobs_dir);
        if (rc == BERTH_OK) {
            atomic_store(alg, true);
        }
    }
    for (int i = 0; rc == BERTH_OK && i < 4; i++) {
        atomic_store(&words[i], UINT64_MAX);
    }
    return rc;
}

/* Create d's directories when missing, and with fsync on make their names
 * durable in their parents (once per directory and process). */
static enum berth_err ensure_dirs(struct fs_store *fs, const struct digest *d,
                                  const struct blob_paths *p)
{
    uint64_t mask = 0;
    atomic_bool *alg = NULL;
    atomic_uint_fast64_t *bit = dir_bit(fs, d, &mask, &alg);
    if (bit != NULL && (atomic_load(bit) & mask) != 0) {
        return BERTH_OK;
    }
    if (fs->fsync && bit != NULL) {
        return ensure_all_dirs(fs, p, fs->dirs_durable[d->alg == DIGEST_SHA256 ? 0 : 1], alg);
    }
    bool created;
    enum berth_err rc = ensure_dir(p->alg_dir, &created);
    if (rc == BERTH_OK) {
        rc = ensure_dir(p->pre_dir, &created);
    }
    if (rc != BERTH_OK) {
        log_error("event=store_error op=mkdir path=%s errno=%d", p->pre_dir, errno);
        return rc;
    }
    if (!fs->fsync) {
        return BERTH_OK;
    }
    /* whether this call or another made them: their names may not be on
     * the disk yet */
    rc = dir_fsync(fs, p->alg_dir);
    if (rc == BERTH_OK && (alg == NULL || !atomic_load(alg))) {
        rc = dir_fsync(fs, fs->blobs_dir);
        if (rc == BERTH_OK && alg != NULL) {
            atomic_store(alg, true);
        }
    }
    if (rc == BERTH_OK && bit != NULL) {
        atomic_fetch_or(bit, mask);
    }
    return rc;
}

/* Move the file at from to be the blob d, durably when fsync is on. When
 * the blob file exists already, from is removed instead. */
static enum berth_err publish_file(struct fs_store *fs, const char *from, const struct digest *d)
{
    struct blob_paths p;
    if (paths_of(fs, d, &p) != BERTH_OK) {
        return BERTH_ETOOBIG;
    }
    enum berth_err rc = ensure_dirs(fs, d, &p);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct stat sb, own;
    if (stat(p.path, &sb) == 0 && S_ISREG(sb.st_mode)) {
        /* Already published (content-addressed: same bytes): by
         * fs_stage_prepublish of this stage (the same file, its name
         * durable already), or by another publication. That one's name is
         * durable unless a prepublish may still be syncing it. */
        bool ours = stat(from, &own) == 0 && own.st_dev == sb.st_dev && own.st_ino == sb.st_ino;
        unlink(from);
        if (fs->fsync && !ours && atomic_load(&fs->links_pending) > 0) {
            return dir_fsync(fs, p.pre_dir);
        }
        return BERTH_OK;
    }
    if (rename(from, p.path) != 0) {
        log_error("event=store_error op=rename from=%s to=%s errno=%d", from, p.path, errno);
        return BERTH_EIO;
    }
    /* The source's directory lost an entry; losing that on power failure
     * only leaves a stray file, which expiry or recovery removes. */
    return fs->fsync ? dir_fsync(fs, p.pre_dir) : BERTH_OK;
}

/* See blob_stage_prepublish (blob.h) and the top of this file. */
static enum berth_err fs_stage_prepublish(struct blob_store *bs, const char *name,
                                          const struct digest *d)
{
    struct fs_store *fs = fs_of(bs);
    if (!fs->fsync) {
        return BERTH_OK; /* publish_file has no fsync to move */
    }
    char from[FS_PATH_MAX];
    struct blob_paths p;
    if (stage_path(fs, name, from, sizeof(from)) != BERTH_OK || paths_of(fs, d, &p) != BERTH_OK) {
        return BERTH_ETOOBIG;
    }
    enum berth_err rc = ensure_dirs(fs, d, &p);
    if (rc != BERTH_OK) {
        return rc;
    }
    atomic_fetch_add(&fs->links_pending, 1);
    bool linked = link(from, p.path) == 0;
    if (!linked && errno != EEXIST) {
        /* publish_file does it all inside the transaction */
        log_warn("event=store_warning op=link from=%s to=%s errno=%d", from, p.path, errno);
        atomic_fetch_sub(&fs->links_pending, 1);
        return BERTH_OK;
    }
    /* Linked, or published already (perhaps by a publication whose sync
     * is still under way): either way its name must be durable before a
     * row can say the blob is there. */
    rc = dir_fsync(fs, p.pre_dir);
    if (rc != BERTH_OK && linked) {
        unlink(p.path); /* its name was never known durable: not ours */
    }
    atomic_fetch_sub(&fs->links_pending, 1);
    return rc;
}

static enum berth_err fs_stage_publish(struct blob_store *bs, const char *name,
                                       const struct digest *d)
{
    char path[FS_PATH_MAX];
    enum berth_err rc = stage_path(fs_of(bs), name, path, sizeof(path));
    return rc == BERTH_OK ? publish_file(fs_of(bs), path, d) : rc;
}

static enum berth_err fs_stage_list(struct blob_store *bs, blob_stage_fn fn, void *arg)
{
    struct fs_store *fs = fs_of(bs);
    DIR *dir = opendir(fs->uploads_dir);
    if (dir == NULL) {
        return BERTH_EIO;
    }
    enum berth_err rc = BERTH_OK;
    struct dirent *e;
    while (rc == BERTH_OK && (e = readdir(dir)) != NULL) {
        char path[FS_PATH_MAX];
        struct stat sb;
        if (e->d_name[0] == '.' || stage_path(fs, e->d_name, path, sizeof(path)) != BERTH_OK ||
            stat(path, &sb) != 0) {
            continue;
        }
        rc = fn(arg, e->d_name, mtime_ms(&sb));
    }
    closedir(dir);
    return rc;
}

/* ---- removal ---- */

static enum berth_err fs_remove(struct blob_store *bs, const struct digest *d,
                                struct blob_removal *out)
{
    struct fs_store *fs = fs_of(bs);
    char path[FS_PATH_MAX], trash[FS_PATH_MAX];
    memset(out, 0, sizeof(*out));
    out->d = *d;
    if (blob_path(fs, d, path, sizeof(path)) != BERTH_OK ||
        trash_path(fs, d, trash, sizeof(trash)) != BERTH_OK) {
        return BERTH_ETOOBIG;
    }
    if (rename(path, trash) != 0) {
        return errno == ENOENT ? BERTH_OK : BERTH_EIO;
    }
    struct stat sb;
    if (lstat(trash, &sb) == 0) {
        out->id[0] = (uint64_t)sb.st_dev;
        out->id[1] = (uint64_t)sb.st_ino;
    }
    return BERTH_OK;
}

static enum berth_err fs_removal_finish(struct blob_store *bs, const struct blob_removal *r)
{
    char trash[FS_PATH_MAX];
    struct stat sb;
    if (r->id[0] == 0 && r->id[1] == 0) {
        return BERTH_ENOTFOUND;
    }
    if (trash_path(fs_of(bs), &r->d, trash, sizeof(trash)) != BERTH_OK || lstat(trash, &sb) != 0 ||
        (uint64_t)sb.st_dev != r->id[0] || (uint64_t)sb.st_ino != r->id[1]) {
        return BERTH_ENOTFOUND;
    }
    if (unlink(trash) != 0) {
        if (errno == ENOENT) {
            return BERTH_ENOTFOUND;
        }
        log_error("event=gc_error op=unlink path=%s errno=%d", trash, errno);
        return BERTH_EIO;
    }
    return BERTH_OK;
}

static enum berth_err fs_recover(struct blob_store *bs, blob_wanted_fn wanted, void *arg,
                                 int64_t *restored, int64_t *deleted)
{
    struct fs_store *fs = fs_of(bs);
    DIR *dir = opendir(fs->trash_dir);
    if (dir == NULL) {
        return errno == ENOENT ? BERTH_OK : BERTH_EIO;
    }
    enum berth_err rc = BERTH_OK;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char path[FS_PATH_MAX], live[FS_PATH_MAX];
        if (join(path, sizeof(path), fs->trash_dir, e->d_name) != BERTH_OK) {
            continue;
        }
        struct digest d;
        struct stat sb;
        bool parsed = trash_name_digest(e->d_name, &d);
        bool live_exists =
            parsed && blob_path(fs, &d, live, sizeof(live)) == BERTH_OK && stat(live, &sb) == 0;
        if (parsed && !live_exists && wanted(arg, &d)) {
            /* The removal never committed: put the file back. (When the
             * blob file exists again, the removal did commit and the blob
             * was pushed anew since: the trash copy is just garbage.) */
            rc = publish_file(fs, path, &d);
            if (rc != BERTH_OK) {
                break;
            }
            (*restored)++;
            log_warn("event=trash_restored digest=%s", d.str);
        } else {
            if (unlink(path) != 0 && errno != ENOENT) {
                rc = BERTH_EIO;
                break;
            }
            (*deleted)++;
        }
    }
    closedir(dir);
    return rc;
}

static bool is_hex2(const char *s)
{
    for (int i = 0; i < 2; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return s[2] == '\0';
}

/* The blobs in one <alg>/<xx> directory. */
static enum berth_err walk_prefix(const char *alg, const char *prefix, const char *dir_path,
                                  blob_walk_fn fn, void *arg)
{
    DIR *sub = opendir(dir_path);
    if (sub == NULL) {
        return BERTH_OK;
    }
    enum berth_err rc = BERTH_OK;
    struct dirent *f;
    while (rc == BERTH_OK && (f = readdir(sub)) != NULL) {
        char text[DIGEST_STR_MAX + 8], path[FS_PATH_MAX];
        struct digest d;
        struct stat sb;
        int n = snprintf(text, sizeof(text), "%s:%s", alg, f->d_name);
        if (f->d_name[0] == '.' || n < 0 || (size_t)n >= sizeof(text) ||
            digest_parse(text, &d) != BERTH_OK || strncmp(f->d_name, prefix, 2) != 0 ||
            join(path, sizeof(path), dir_path, f->d_name) != BERTH_OK || lstat(path, &sb) != 0 ||
            !S_ISREG(sb.st_mode)) {
            continue; /* not a blob file: left alone */
        }
        rc = fn(arg, &d, (uint64_t)sb.st_size, mtime_ms(&sb));
    }
    closedir(sub);
    return rc;
}

static enum berth_err fs_walk(struct blob_store *bs, blob_walk_fn fn, void *arg)
{
    static const char *const algs[] = {"sha256", "sha512"};
    struct fs_store *fs = fs_of(bs);
    enum berth_err rc = BERTH_OK;
    for (size_t a = 0; rc == BERTH_OK && a < sizeof(algs) / sizeof(algs[0]); a++) {
        char alg_path[FS_PATH_MAX];
        if (join(alg_path, sizeof(alg_path), fs->blobs_dir, algs[a]) != BERTH_OK) {
            return BERTH_ETOOBIG;
        }
        DIR *top = opendir(alg_path);
        if (top == NULL) {
            if (errno == ENOENT) {
                continue;
            }
            log_error("event=store_error op=opendir path=%s errno=%d", alg_path, errno);
            return BERTH_EIO;
        }
        struct dirent *e;
        while (rc == BERTH_OK && (e = readdir(top)) != NULL) {
            char sub_path[FS_PATH_MAX];
            if (is_hex2(e->d_name) &&
                join(sub_path, sizeof(sub_path), alg_path, e->d_name) == BERTH_OK) {
                rc = walk_prefix(algs[a], e->d_name, sub_path, fn, arg);
            }
        }
        closedir(top);
    }
    return rc;
}

static enum berth_err fs_delete(struct blob_store *bs, const struct digest *d)
{
    char path[FS_PATH_MAX];
    enum berth_err rc = blob_path(fs_of(bs), d, path, sizeof(path));
    if (rc != BERTH_OK) {
        return rc;
    }
    if (unlink(path) != 0) {
        if (errno == ENOENT) {
            return BERTH_ENOTFOUND;
        }
        log_error("event=gc_error op=unlink path=%s errno=%d", path, errno);
        return BERTH_EIO;
    }
    return BERTH_OK;
}

/* The identity file blobs/berth-store-id (blob_store_id_get/put), beside
 * the algorithm directories (nothing walks blobs/ itself). */
#define FS_STORE_ID_NAME "berth-store-id"

static enum berth_err fs_id_get(struct blob_store *bs, char *out)
{
    char path[FS_PATH_MAX];
    enum berth_err rc = join(path, sizeof(path), fs_of(bs)->blobs_dir, FS_STORE_ID_NAME);
    char *text = NULL;
    size_t len = 0;
    if (rc == BERTH_OK) {
        rc = file_read_bounded(path, BLOB_STORE_ID_MAX, &text, &len);
    }
    if (rc == BERTH_ENOTFOUND) {
        return BERTH_OK;
    }
    size_t n = rc == BERTH_OK ? strspn(text, "0123456789abcdef") : 0;
    if (rc == BERTH_OK && (n == 0 || n >= BLOB_STORE_ID_MAX)) {
        log_error("event=store_error op=store_id path=%s msg=\"not an identity\"", path);
        rc = BERTH_EIO;
    } else if (rc == BERTH_OK) {
        memcpy(out, text, n);
        out[n] = '\0';
    }
    free(text);
    return rc == BERTH_OK || rc == BERTH_EIO ? rc : BERTH_EIO;
}

static enum berth_err fs_id_put(struct blob_store *bs, const char *id)
{
    struct fs_store *fs = fs_of(bs);
    char path[FS_PATH_MAX], text[BLOB_STORE_ID_MAX + 1];
    enum berth_err rc = join(path, sizeof(path), fs->blobs_dir, FS_STORE_ID_NAME);
    int n = snprintf(text, sizeof(text), "%s\n", id);
    return rc == BERTH_OK ? file_write_atomic(path, text, (size_t)n, 0644, fs->fsync) : rc;
}

static const struct blob_backend fs_backend = {
    .name = "filesystem",
    .close = fs_close,
    .open = fs_open,
    .stat = fs_stat,
    .local_path = fs_local_path,
    .stage_create = fs_stage_create,
    .stage_open = fs_stage_open,
    .stage_write = fs_stage_write,
    .stage_truncate = fs_stage_truncate,
    .stage_read = fs_stage_read,
    .stage_hash = fs_stage_hash,
    .stage_sync = fs_stage_sync,
    .stage_close = fs_stage_close,
    .stage_stat = fs_stage_stat,
    .stage_remove = fs_stage_remove,
    .stage_publish = fs_stage_publish,
    .stage_prepublish = fs_stage_prepublish,
    .stage_list = fs_stage_list,
    .remove = fs_remove,
    .removal_finish = fs_removal_finish,
    .recover = fs_recover,
    .walk = fs_walk,
    .delete = fs_delete,
    .id_get = fs_id_get,
    .id_put = fs_id_put,
};
