/* The part store of berth mirror (<out>.parts/: manifests and blobs kept
 * by digest, verified when read back); see parts_int.h. */
#include "storage/bundle/parts_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/str.h"

#define COPY_BUF (256 * 1024)

void bundle_parts_init(struct bundle_parts *p)
{
    memset(p, 0, sizeof(*p));
    p->lock_fd = -1;
}

enum berth_err bundle_parts_open(struct bundle_parts *p, const char *out, char *why, size_t why_cap)
{
    if ((size_t)snprintf(p->dir, sizeof(p->dir), "%s.parts", out) >= sizeof(p->dir)) {
        snprintf(why, why_cap, "%s: path too long", out);
        return BERTH_EINVAL;
    }
    if (mkdir(p->dir, 0755) != 0 && errno != EEXIST) {
        snprintf(why, why_cap, "%s: %s", p->dir, strerror(errno));
        return BERTH_EIO;
    }
    char lock[BUNDLE_PARTS_PATH_MAX];
    snprintf(lock, sizeof(lock), "%s/lock", p->dir);
    p->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (p->lock_fd < 0) {
        snprintf(why, why_cap, "%s: %s", lock, strerror(errno));
        return BERTH_EIO;
    }
    if (flock(p->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(why, why_cap, "%s: another berth mirror is writing %s", p->dir, out);
        return BERTH_EBUSY;
    }
    p->is_locked = true;
    DIR *dir = opendir(p->dir);
    struct dirent *e;
    while (dir != NULL && (e = readdir(dir)) != NULL) {
        p->manifests_found += str_has_suffix(e->d_name, ".manifest") ? 1 : 0;
    }
    if (dir != NULL) {
        closedir(dir);
    }
    return BERTH_OK;
}

void bundle_parts_remove(struct bundle_parts *p)
{
    DIR *dir = opendir(p->dir);
    struct dirent *e;
    while (dir != NULL && (e = readdir(dir)) != NULL) {
        char path[4400];
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            (size_t)snprintf(path, sizeof(path), "%s/%s", p->dir, e->d_name) < sizeof(path)) {
            unlink(path);
        }
    }
    if (dir != NULL) {
        closedir(dir);
    }
    rmdir(p->dir);
}

void bundle_parts_remove_if_empty(struct bundle_parts *p)
{
    if (!p->is_locked) {
        return;
    }
    DIR *dir = opendir(p->dir);
    struct dirent *e;
    bool empty = dir != NULL;
    while (dir != NULL && (e = readdir(dir)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            strcmp(e->d_name, "lock") != 0) {
            empty = false;
        }
    }
    if (dir != NULL) {
        closedir(dir);
    }
    if (empty) {
        bundle_parts_remove(p);
    }
}

void bundle_parts_close(struct bundle_parts *p)
{
    if (p->lock_fd >= 0) {
        close(p->lock_fd);
    }
    p->lock_fd = -1;
    p->is_locked = false;
}

/* ---- manifests ---- */

static void manifest_path(const struct bundle_parts *p, const struct digest *d, char *out,
                          size_t cap)
{
    snprintf(out, cap, "%s/%s-%s.manifest", p->dir, digest_alg_name(d->alg), digest_hex(d));
}

enum berth_err bundle_parts_manifest_get(const struct bundle_parts *p, const struct digest *d,
                                         size_t max, char *type, size_t type_cap, char **body,
                                         size_t *len)
{
    char path[BUNDLE_PARTS_PATH_MAX];
    manifest_path(p, d, path, sizeof(path));
    char *text = NULL;
    size_t text_len = 0;
    if (file_read_bounded(path, max + type_cap + 1, &text, &text_len) != BERTH_OK) {
        return BERTH_ENOTFOUND;
    }
    char *nl = memchr(text, '\n', text_len);
    size_t type_len = nl != NULL ? (size_t)(nl - text) : 0;
    struct digest got;
    bool matches = nl != NULL && type_len < type_cap &&
                   digest_buffer(d->alg, nl + 1, text_len - type_len - 1, &got) == BERTH_OK &&
                   strcmp(got.str, d->str) == 0;
    if (!matches) {
        log_warn("event=mirror_manifest_dropped path=%s reason=\"it does not match its digest\"",
                 path);
        unlink(path);
        free(text);
        return BERTH_EDIGEST;
    }
    size_t n = text_len - type_len - 1;
    char *bytes = malloc(n ? n : 1);
    if (bytes == NULL) {
        free(text);
        return BERTH_ENOMEM;
    }
    memcpy(bytes, nl + 1, n);
    memcpy(type, text, type_len);
    type[type_len] = '\0';
    free(text);
    *body = bytes;
    *len = n;
    return BERTH_OK;
}

void bundle_parts_manifest_put(const struct bundle_parts *p, const struct digest *d,
                               const char *type, const void *body, size_t len)
{
    char path[BUNDLE_PARTS_PATH_MAX];
    manifest_path(p, d, path, sizeof(path));
    size_t type_len = strlen(type);
    char *text = malloc(type_len + 1 + len);
    if (text == NULL) {
        return;
    }
    memcpy(text, type, type_len);
    text[type_len] = '\n';
    memcpy(text + type_len + 1, body, len);
    if (file_write_atomic(path, text, type_len + 1 + len, 0644, false) != BERTH_OK) {
        log_warn("event=mirror_manifest_not_kept path=%s", path);
    }
    free(text);
}

/* ---- blobs ---- */

void bundle_parts_blob_path(const struct bundle_parts *p, const struct digest *d, bool partial,
                            char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s-%s%s", p->dir, digest_alg_name(d->alg), digest_hex(d),
             partial ? ".partial" : "");
}

bool bundle_parts_blob_has(const struct bundle_parts *p, const struct digest *d, int64_t size)
{
    char path[BUNDLE_PARTS_PATH_MAX];
    bundle_parts_blob_path(p, d, false, path, sizeof(path));
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == size;
}

enum berth_err bundle_part_open(const struct bundle_parts *p, const struct digest *d, int64_t size,
                                struct bundle_part *bp, char *why, size_t why_cap)
{
    memset(bp, 0, sizeof(*bp));
    bp->parts = p;
    bp->d = *d;
    bp->size = size;
    char partial[BUNDLE_PARTS_PATH_MAX];
    bundle_parts_blob_path(p, d, true, partial, sizeof(partial));
    bp->fd = open(partial, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (bp->fd < 0) {
        snprintf(why, why_cap, "%s: %s", partial, strerror(errno));
        return BERTH_EIO;
    }
    bp->ctx = digest_ctx_new(d->alg);
    if (bp->ctx == NULL) {
        return BERTH_ENOMEM;
    }
    struct stat sb;
    if (fstat(bp->fd, &sb) != 0) {
        return BERTH_EIO;
    }
    if (sb.st_size > 0) {
        /* an interrupted run's bytes: hashed again, only the rest fetched */
        if (sb.st_size > size || digest_ctx_update_fd(bp->ctx, bp->fd, sb.st_size) != BERTH_OK) {
            return bundle_part_restart(bp);
        }
        bp->have = sb.st_size;
    }
    return BERTH_OK;
}

enum berth_err bundle_part_restart(struct bundle_part *bp)
{
    digest_ctx_free(bp->ctx);
    bp->ctx = digest_ctx_new(bp->d.alg);
    bp->have = 0;
    if (bp->ctx == NULL) {
        return BERTH_ENOMEM;
    }
    return ftruncate(bp->fd, 0) == 0 ? BERTH_OK : BERTH_EIO;
}

enum berth_err bundle_part_append(struct bundle_part *bp, const void *p, size_t n)
{
    enum berth_err rc = file_pwrite_all(bp->fd, p, n, (off_t)bp->have);
    if (rc == BERTH_OK) {
        rc = digest_ctx_update(bp->ctx, p, n);
    }
    if (rc == BERTH_OK) {
        bp->have += (int64_t)n;
    }
    return rc;
}

enum berth_err bundle_part_commit(struct bundle_part *bp, struct digest *got, char *why,
                                  size_t why_cap)
{
    char partial[BUNDLE_PARTS_PATH_MAX];
    char done[BUNDLE_PARTS_PATH_MAX];
    bundle_parts_blob_path(bp->parts, &bp->d, true, partial, sizeof(partial));
    bundle_parts_blob_path(bp->parts, &bp->d, false, done, sizeof(done));
    enum berth_err rc = digest_ctx_final(bp->ctx, got);
    if (rc != BERTH_OK) {
        return rc;
    }
    if (strcmp(got->str, bp->d.str) != 0) {
        unlink(partial); /* no use keeping it */
        return BERTH_EDIGEST;
    }
    if (fdatasync(bp->fd) != 0) {
        /* durable before it is named complete: a later run trusts the name */
        snprintf(why, why_cap, "%s: fsync: %s", partial, strerror(errno));
        return BERTH_EIO;
    }
    if (rename(partial, done) != 0) {
        snprintf(why, why_cap, "%s: %s", done, strerror(errno));
        return BERTH_EIO;
    }
    return BERTH_OK;
}

void bundle_part_close(struct bundle_part *bp)
{
    digest_ctx_free(bp->ctx);
    bp->ctx = NULL;
    if (bp->fd >= 0) {
        close(bp->fd);
    }
    bp->fd = -1;
}

enum berth_err bundle_parts_blob_read(const struct bundle_parts *p, const struct digest *d,
                                      enum berth_err (*fn)(void *arg, const void *bytes, size_t n),
                                      void *arg, struct digest *got, char *why, size_t why_cap)
{
    char path[BUNDLE_PARTS_PATH_MAX];
    bundle_parts_blob_path(p, d, false, path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, why_cap, "%s: %s", path, strerror(errno));
        return BERTH_EIO;
    }
    struct digest_ctx *ctx = digest_ctx_new(d->alg);
    char *buf = malloc(COPY_BUF);
    enum berth_err rc = ctx != NULL && buf != NULL ? BERTH_OK : BERTH_ENOMEM;
    while (rc == BERTH_OK) {
        ssize_t n = read(fd, buf, COPY_BUF);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            snprintf(why, why_cap, "%s: %s", path, strerror(errno));
            rc = BERTH_EIO;
        }
        if (n <= 0) {
            break;
        }
        rc = digest_ctx_update(ctx, buf, (size_t)n);
        if (rc == BERTH_OK) {
            rc = fn(arg, buf, (size_t)n);
        }
    }
    if (rc == BERTH_OK) {
        rc = digest_ctx_final(ctx, got);
    }
    if (rc == BERTH_OK && strcmp(got->str, d->str) != 0) {
        unlink(path);
        rc = BERTH_EDIGEST;
    }
    free(buf);
    digest_ctx_free(ctx);
    close(fd);
    return rc;
}
