/*
 * The blob store's public calls: argument checks, dispatch to the backend,
 * and what every backend shares (whole-blob reads, staging a buffer). See
 * blob.h.
 */
#include "blob_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/rand.h"

enum berth_err blob_store_open(const struct blob_store_options *opt, struct blob_store **out)
{
    if (opt->backend == NULL || strcmp(opt->backend, "filesystem") == 0) {
        return blob_fs_open(opt, out);
    }
    if (strcmp(opt->backend, "s3") == 0) {
        return blob_s3_open(opt, out);
    }
    return BERTH_EINVAL;
}

void blob_store_close(struct blob_store *bs)
{
    if (bs != NULL) {
        bs->ops->close(bs);
    }
}

enum berth_err blob_ping(struct blob_store *bs)
{
    return bs->ops->ping != NULL ? bs->ops->ping(bs) : BERTH_OK;
}

enum berth_err blob_open(struct blob_store *bs, const struct digest *d, int *fd, uint64_t *size)
{
    return bs->ops->open(bs, d, fd, size);
}

enum berth_err blob_stat(struct blob_store *bs, const struct digest *d, uint64_t *size)
{
    return bs->ops->stat(bs, d, size);
}

enum berth_err blob_read_range(struct blob_store *bs, const struct digest *d, uint64_t size,
                               uint64_t offset, uint64_t len, struct blob_read *out)
{
    if (offset > size || len > size - offset) {
        return BERTH_EINVAL;
    }
    out->fd = -1;
    out->reader = NULL;
    if (bs->ops->read_range != NULL) {
        return bs->ops->read_range(bs, d, size, offset, len, out);
    }
    int fd = -1;
    uint64_t got = 0;
    enum berth_err rc = blob_open(bs, d, &fd, &got);
    if (rc == BERTH_OK && got != size) {
        log_error("event=blob_size_mismatch digest=%s size=%llu want=%llu", d->str,
                  (unsigned long long)got, (unsigned long long)size);
        file_close(fd);
        rc = BERTH_ENOTFOUND;
    }
    if (rc == BERTH_OK) {
        out->fd = fd;
    }
    return rc;
}

enum berth_err blob_url(struct blob_store *bs, const struct digest *d, int64_t expires_seconds,
                        char *out, size_t cap)
{
    if (bs->ops->url == NULL) {
        return BERTH_EUNSUPPORTED;
    }
    return bs->ops->url(bs, d, expires_seconds, out, cap);
}

long long blob_reader_read(struct blob_reader *r, char *buf, size_t max, blob_wake_fn wake,
                           void *wake_arg)
{
    return r->ops->reader_read(r, buf, max, wake, wake_arg);
}

void blob_reader_close(struct blob_reader *r)
{
    if (r != NULL) {
        r->ops->reader_close(r);
    }
}

enum berth_err blob_read_all(struct blob_store *bs, const struct digest *d, size_t max, char **out,
                             size_t *len)
{
    int fd = -1;
    uint64_t size = 0;
    enum berth_err rc = blob_open(bs, d, &fd, &size);
    if (rc != BERTH_OK) {
        return rc;
    }
    char *buf = NULL;
    size_t got = 0;
    if (size > max) {
        rc = BERTH_ETOOBIG;
    } else if ((buf = malloc((size_t)size + 1)) == NULL) {
        rc = BERTH_ENOMEM;
    } else {
        rc = file_read_full(fd, buf, (size_t)size, &got);
        if (rc == BERTH_OK && got != size) {
            rc = BERTH_EIO; /* the blob is shorter than it said */
        }
    }
    file_close(fd);
    if (rc != BERTH_OK) {
        free(buf);
        return rc;
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return BERTH_OK;
}

enum berth_err blob_local_path(struct blob_store *bs, const struct digest *d, char *out, size_t cap)
{
    return bs->ops->local_path(bs, d, out, cap);
}

/* 1..BLOB_STAGE_NAME_MAX of [A-Za-z0-9-]: safe as a file or object name. */
static bool stage_name_ok(const char *name)
{
    size_t n = 0;
    for (const char *p = name; *p; p++, n++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-')) {
            return false;
        }
    }
    return n > 0 && n <= BLOB_STAGE_NAME_MAX;
}

enum berth_err blob_stage_create(struct blob_store *bs, const char *name)
{
    return stage_name_ok(name) ? bs->ops->stage_create(bs, name) : BERTH_EINVAL;
}

enum berth_err blob_stage_open(struct blob_store *bs, const char *name, struct blob_stage **out,
                               uint64_t *size)
{
    return stage_name_ok(name) ? bs->ops->stage_open(bs, name, out, size) : BERTH_EINVAL;
}

enum berth_err blob_stage_write(struct blob_stage *s, uint64_t offset, const void *p, size_t n)
{
    return n == 0 ? BERTH_OK : s->ops->stage_write(s, offset, p, n);
}

enum berth_err blob_stage_read(struct blob_stage *s, uint64_t offset, void *p, size_t n,
                               size_t *got)
{
    if (s->ops->stage_read == NULL) {
        return BERTH_EUNSUPPORTED;
    }
    return s->ops->stage_read(s, offset, p, n, got);
}

enum berth_err blob_stage_truncate(struct blob_stage *s, uint64_t size)
{
    return s->ops->stage_truncate(s, size);
}

enum berth_err blob_stage_hash(struct blob_stage *s, struct digest_ctx *ctx, uint64_t len)
{
    return s->ops->stage_hash(s, ctx, len);
}

enum berth_err blob_stage_sync(struct blob_stage *s)
{
    return s->ops->stage_sync(s);
}

void blob_stage_close(struct blob_stage *s)
{
    if (s != NULL) {
        s->ops->stage_close(s);
    }
}

enum berth_err blob_stage_stat(struct blob_store *bs, const char *name, uint64_t *size,
                               int64_t *mtime_ms)
{
    return stage_name_ok(name) ? bs->ops->stage_stat(bs, name, size, mtime_ms) : BERTH_EINVAL;
}

enum berth_err blob_stage_remove(struct blob_store *bs, const char *name)
{
    return stage_name_ok(name) ? bs->ops->stage_remove(bs, name) : BERTH_EINVAL;
}

enum berth_err blob_stage_publish(struct blob_store *bs, const char *name, const struct digest *d)
{
    return stage_name_ok(name) ? bs->ops->stage_publish(bs, name, d) : BERTH_EINVAL;
}

enum berth_err blob_stage_prepublish(struct blob_store *bs, const char *name,
                                     const struct digest *d)
{
    if (!stage_name_ok(name)) {
        return BERTH_EINVAL;
    }
    return bs->ops->stage_prepublish != NULL ? bs->ops->stage_prepublish(bs, name, d) : BERTH_OK;
}

enum berth_err blob_stage_list(struct blob_store *bs, blob_stage_fn fn, void *arg)
{
    return bs->ops->stage_list(bs, fn, arg);
}

bool blob_store_id_supported(struct blob_store *bs)
{
    return bs->ops->id_get != NULL;
}

enum berth_err blob_store_id_get(struct blob_store *bs, char *out)
{
    out[0] = '\0';
    return bs->ops->id_get != NULL ? bs->ops->id_get(bs, out) : BERTH_EUNSUPPORTED;
}

enum berth_err blob_store_id_put(struct blob_store *bs, const char *id)
{
    if (bs->ops->id_put == NULL) {
        return BERTH_EUNSUPPORTED;
    }
    size_t n = strlen(id);
    if (n == 0 || n >= BLOB_STORE_ID_MAX || strspn(id, "0123456789abcdef") != n) {
        return BERTH_EINVAL;
    }
    return bs->ops->id_put(bs, id);
}

bool blob_shared_supported(struct blob_store *bs)
{
    return bs->ops->shared_open != NULL;
}

enum berth_err blob_shared_open(struct blob_store *bs, const char *name, const char *upload_id,
                                const char *state, blob_part_fn part_fn, void *arg,
                                struct blob_shared **out)
{
    if (bs->ops->shared_open == NULL) {
        return BERTH_EUNSUPPORTED;
    }
    if (!stage_name_ok(name)) {
        return BERTH_EINVAL;
    }
    return bs->ops->shared_open(bs, name, upload_id != NULL ? upload_id : "",
                                state != NULL ? state : "", part_fn, arg, out);
}

uint64_t blob_shared_size(const struct blob_shared *sh)
{
    return sh->ops->shared_size(sh);
}

enum berth_err blob_shared_write(struct blob_shared *sh, const void *p, size_t n)
{
    return n == 0 ? BERTH_OK : sh->ops->shared_write(sh, p, n);
}

enum berth_err blob_shared_save(struct blob_shared *sh, char **state)
{
    return sh->ops->shared_save(sh, state);
}

void blob_shared_saved(struct blob_shared *sh, enum blob_saved how)
{
    sh->ops->shared_saved(sh, how);
}

enum berth_err blob_shared_publish(struct blob_shared *sh, const struct digest *d)
{
    return sh->ops->shared_publish(sh, d);
}

enum berth_err blob_shared_rehash(struct blob_shared *sh, enum digest_alg alg, struct digest *out)
{
    return sh->ops->shared_rehash(sh, alg, out);
}

void blob_shared_close(struct blob_shared *sh)
{
    if (sh != NULL) {
        sh->ops->shared_close(sh);
    }
}

enum berth_err blob_shared_remove(struct blob_store *bs, const char *name, const char *upload_id)
{
    if (bs->ops->shared_remove == NULL) {
        return BERTH_EUNSUPPORTED;
    }
    if (!stage_name_ok(name)) {
        return BERTH_EINVAL;
    }
    return bs->ops->shared_remove(bs, name, upload_id != NULL ? upload_id : "");
}

enum berth_err blob_shared_sweep(struct blob_store *bs, int64_t before_ms, blob_live_fn live,
                                 void *arg, bool dry_run, int64_t *removed)
{
    if (removed != NULL) {
        *removed = 0;
    }
    if (bs->ops->shared_sweep == NULL) {
        return BERTH_OK;
    }
    return bs->ops->shared_sweep(bs, before_ms, live, arg, dry_run, removed);
}

enum berth_err blob_stage_put(struct blob_store *bs, const void *p, size_t len, char *name)
{
    char uuid[RAND_UUID_LEN + 1];
    enum berth_err rc = rand_uuid(uuid);
    if (rc != BERTH_OK) {
        return rc;
    }
    memcpy(name, "tmp-", 4);
    memcpy(name + 4, uuid, sizeof(uuid));
    rc = blob_stage_create(bs, name);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct blob_stage *s = NULL;
    uint64_t size = 0;
    rc = blob_stage_open(bs, name, &s, &size);
    if (rc == BERTH_OK) {
        rc = blob_stage_write(s, 0, p, len);
    }
    if (rc == BERTH_OK) {
        rc = blob_stage_sync(s);
    }
    blob_stage_close(s);
    if (rc != BERTH_OK) {
        blob_stage_remove(bs, name);
        name[0] = '\0';
    }
    return rc;
}

enum berth_err blob_remove(struct blob_store *bs, const struct digest *d, struct blob_removal *out)
{
    return bs->ops->remove(bs, d, out);
}

enum berth_err blob_removal_finish(struct blob_store *bs, const struct blob_removal *r)
{
    return bs->ops->removal_finish(bs, r);
}

enum berth_err blob_recover(struct blob_store *bs, blob_wanted_fn wanted, void *arg,
                            int64_t *restored, int64_t *deleted)
{
    int64_t r = 0, x = 0;
    enum berth_err rc = bs->ops->recover(bs, wanted, arg, &r, &x);
    if (restored != NULL) {
        *restored = r;
    }
    if (deleted != NULL) {
        *deleted = x;
    }
    return rc;
}

enum berth_err blob_walk(struct blob_store *bs, blob_walk_fn fn, void *arg)
{
    return bs->ops->walk(bs, fn, arg);
}

enum berth_err blob_delete(struct blob_store *bs, const struct digest *d)
{
    return bs->ops->delete (bs, d);
}
