/*
 * The S3 blob backend (storage.backend s3): published blobs are objects of
 * one bucket, <prefix>blobs/<alg>/<2 hex>/<hex>; removal copies a blob to
 * <prefix>trash/<alg>-<hex> (tagged with a random removal id in its
 * metadata) before deleting it, so a rollback can bring it back. Requests
 * go through libcurl, signed with SigV4 (s3_client.c); stages and
 * publication are in s3_upload.c; s3_int.h lists the files.
 *
 * Reads: blob_read_range streams one GET (ranged for a part) through the
 * store's transfer thread (s3_client.c), in a bounded buffer; blob_open
 * (exports, whole-blob reads) downloads the object into an unlinked file
 * under <root>/s3tmp and hands that over; blob_local_path keeps a copy in
 * <root>/s3cache until the blob is removed. blob_stat is one HEAD.
 *
 * Thread-safe: every request has its own curl handle; the transfer
 * thread's queue is locked; nothing else shared is mutable after open.
 */
#define _GNU_SOURCE /* O_TMPFILE */
#include "s3_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/rand.h"

static const struct blob_backend s3_backend;

static enum berth_err trash_key(const struct s3_store *s, const struct digest *d, char *out,
                                size_t cap)
{
    int n = snprintf(out, cap, "%strash/%s-%s", s->prefix, digest_alg_name(d->alg), digest_hex(d));
    return (n < 0 || (size_t)n >= cap) ? BERTH_ETOOBIG : BERTH_OK;
}

static enum berth_err cache_path(const struct s3_store *s, const struct digest *d, char *out,
                                 size_t cap)
{
    int n = snprintf(out, cap, "%s/%s-%s", s->cache_dir, digest_alg_name(d->alg), digest_hex(d));
    return (n < 0 || (size_t)n >= cap) ? BERTH_ETOOBIG : BERTH_OK;
}

static bool copy_opt(char *dst, size_t cap, const char *v)
{
    v = v != NULL ? v : "";
    if (strlen(v) >= cap) {
        return false;
    }
    memcpy(dst, v, strlen(v) + 1);
    return true;
}

static enum berth_err parse_endpoint(struct s3_store *s, const char *endpoint, const char *region)
{
    char def[256];
    if (endpoint == NULL || endpoint[0] == '\0') {
        snprintf(def, sizeof(def), "https://s3.%s.amazonaws.com", region);
        endpoint = def;
    }
    const char *rest;
    if (strncmp(endpoint, "http://", 7) == 0) {
        memcpy(s->scheme, "http", 5);
        rest = endpoint + 7;
    } else if (strncmp(endpoint, "https://", 8) == 0) {
        memcpy(s->scheme, "https", 6);
        rest = endpoint + 8;
    } else {
        return BERTH_EINVAL;
    }
    size_t n = strcspn(rest, "/");
    if (n == 0 || n >= sizeof(s->host) || (rest[n] == '/' && rest[n + 1] != '\0')) {
        return BERTH_EINVAL; /* a path after the host is not supported */
    }
    memcpy(s->host, rest, n);
    s->host[n] = '\0';
    return BERTH_OK;
}

enum berth_err blob_s3_open(const struct blob_store_options *opt, struct blob_store **out)
{
    const struct blob_s3_options *o = &opt->s3;
    if (s3_client_init() != BERTH_OK) {
        return BERTH_EIO;
    }
    struct s3_store *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return BERTH_ENOMEM;
    }
    s->base.ops = &s3_backend;
    s->path_style = o->path_style;
    enum berth_err rc = BERTH_OK;
    if (o->bucket == NULL || o->bucket[0] == '\0' || o->region == NULL || o->region[0] == '\0' ||
        o->access_key_id == NULL || o->access_key_id[0] == '\0' || o->secret_access_key == NULL ||
        o->secret_access_key[0] == '\0' || !copy_opt(s->bucket, sizeof(s->bucket), o->bucket) ||
        !copy_opt(s->prefix, sizeof(s->prefix), o->prefix) ||
        !copy_opt(s->region, sizeof(s->region), o->region) ||
        !copy_opt(s->akid, sizeof(s->akid), o->access_key_id) ||
        !copy_opt(s->secret, sizeof(s->secret), o->secret_access_key) ||
        !copy_opt(s->ca_file, sizeof(s->ca_file), o->tls_ca_file) ||
        parse_endpoint(s, o->endpoint, s->region) != BERTH_OK) {
        log_error("event=s3_error op=open error=\"storage.s3 needs a bucket, a region, an "
                  "http(s) endpoint without a path, and credentials (storage.s3.access_key_id "
                  "and secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)\"");
        rc = BERTH_EINVAL;
        goto out;
    }
    int n1 = snprintf(s->tmp_dir, sizeof(s->tmp_dir), "%s/s3tmp", opt->root);
    int n2 = snprintf(s->cache_dir, sizeof(s->cache_dir), "%s/s3cache", opt->root);
    int n3 = snprintf(s->mpu_dir, sizeof(s->mpu_dir), "%s/s3mpu", opt->root);
    if (n1 < 0 || (size_t)n1 >= sizeof(s->tmp_dir) - 200 || n2 < 0 ||
        (size_t)n2 >= sizeof(s->cache_dir) - 200 || n3 < 0 ||
        (size_t)n3 >= sizeof(s->mpu_dir) - 200) {
        rc = BERTH_ETOOBIG;
        goto out;
    }
    struct blob_store_options local = {.root = opt->root, .fsync = opt->fsync};
    rc = blob_fs_open(&local, &s->local);
    if (rc != BERTH_OK) {
        goto out;
    }
    const char *dirs[] = {s->tmp_dir, s->cache_dir, s->mpu_dir};
    for (size_t i = 0; i < 3 && rc == BERTH_OK; i++) {
        rc = file_mkdir_p(dirs[i], 0750);
        if (rc != BERTH_OK) {
            log_error("event=store_error op=mkdir path=%s errno=%d", dirs[i], errno);
        }
    }
    if (rc == BERTH_OK) {
        /* The bucket must answer (and the credentials be good) before
         * anything is served. */
        rc = s3_head_bucket(s);
    }
    if (rc == BERTH_OK) {
        rc = s3_pump_start(s);
    }
out:
    if (rc != BERTH_OK) {
        blob_store_close(s->local);
        free(s);
        return rc;
    }
    log_info("event=blob_store backend=s3 endpoint=%s://%s bucket=%s prefix=%s", s->scheme, s->host,
             s->bucket, s->prefix);
    *out = &s->base;
    return BERTH_OK;
}

static void s3_close(struct blob_store *bs)
{
    struct s3_store *s = s3_of(bs);
    s3_pump_stop(s);
    blob_store_close(s->local);
    volatile char *v = s->secret;
    for (size_t i = 0; i < sizeof(s->secret); i++) {
        v[i] = 0;
    }
    free(s);
}

static enum berth_err s3_stat(struct blob_store *bs, const struct digest *d, uint64_t *size)
{
    struct s3_store *s = s3_of(bs);
    char key[S3_KEY_MAX];
    enum berth_err rc = s3_blob_key(s, d, key, sizeof(key));
    if (rc != BERTH_OK) {
        return rc;
    }
    struct s3_resp r;
    rc = s3_head_object(s, key, &r);
    if (rc == BERTH_OK) {
        *size = r.content_length;
    }
    s3_resp_fini(&r);
    return rc;
}

/* An unlinked file in dir, for reading and writing. */
static int anon_file(const char *dir)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) {
        return fd;
    }
    char path[S3_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/get-XXXXXX", dir);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0) {
        unlink(path);
    }
    return fd;
}

static enum berth_err s3_open(struct blob_store *bs, const struct digest *d, int *fd,
                              uint64_t *size)
{
    struct s3_store *s = s3_of(bs);
    char key[S3_KEY_MAX];
    enum berth_err rc = s3_blob_key(s, d, key, sizeof(key));
    if (rc != BERTH_OK) {
        return rc;
    }
    int f = anon_file(s->tmp_dir);
    if (f < 0) {
        log_error("event=store_error op=tmpfile path=%s errno=%d", s->tmp_dir, errno);
        return BERTH_EIO;
    }
    rc = s3_get_object(s, key, f);
    struct stat sb;
    if (rc == BERTH_OK && (fstat(f, &sb) != 0 || lseek(f, 0, SEEK_SET) != 0)) {
        rc = BERTH_EIO;
    }
    if (rc != BERTH_OK) {
        file_close(f);
        return rc;
    }
    *fd = f;
    *size = (uint64_t)sb.st_size;
    return BERTH_OK;
}

static enum berth_err s3_local_path(struct blob_store *bs, const struct digest *d, char *out,
                                    size_t cap)
{
    struct s3_store *s = s3_of(bs);
    enum berth_err rc = cache_path(s, d, out, cap);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct stat sb;
    if (stat(out, &sb) == 0) {
        return BERTH_OK;
    }
    char key[S3_KEY_MAX], tmp[S3_PATH_MAX + 16];
    rc = s3_blob_key(s, d, key, sizeof(key));
    if (rc != BERTH_OK) {
        return rc;
    }
    snprintf(tmp, sizeof(tmp), "%s/cache-XXXXXX", s->tmp_dir);
    int f = mkostemp(tmp, O_CLOEXEC);
    if (f < 0) {
        return BERTH_EIO;
    }
    rc = s3_get_object(s, key, f);
    file_close(f);
    if (rc == BERTH_OK && rename(tmp, out) != 0) {
        rc = BERTH_EIO;
    }
    if (rc != BERTH_OK) {
        unlink(tmp);
    }
    return rc;
}

static enum berth_err s3_read_range(struct blob_store *bs, const struct digest *d, uint64_t size,
                                    uint64_t offset, uint64_t len, struct blob_reader **out)
{
    struct s3_store *s = s3_of(bs);
    char key[S3_KEY_MAX];
    enum berth_err rc = s3_blob_key(s, d, key, sizeof(key));
    struct s3_stream *st = NULL;
    if (rc == BERTH_OK) {
        rc = s3_stream_open(s, key, size, offset, len, &st);
    }
    if (rc == BERTH_OK) {
        *out = (struct blob_reader *)(void *)st;
    }
    return rc;
}

static enum berth_err s3_url(struct blob_store *bs, const struct digest *d, int64_t expires_seconds,
                             char *out, size_t cap)
{
    struct s3_store *s = s3_of(bs);
    char key[S3_KEY_MAX];
    enum berth_err rc = s3_blob_key(s, d, key, sizeof(key));
    if (rc == BERTH_OK) {
        rc = s3_presign_get(s, key, expires_seconds, out, cap);
    }
    return rc;
}

static long long s3_reader_read(struct blob_reader *r, char *buf, size_t max, blob_wake_fn wake,
                                void *wake_arg)
{
    return s3_stream_read((struct s3_stream *)(void *)r, buf, max, wake, wake_arg);
}

static void s3_reader_close(struct blob_reader *r)
{
    s3_stream_close((struct s3_stream *)(void *)r);
}

static void drop_cache(struct s3_store *s, const struct digest *d)
{
    char path[S3_PATH_MAX];
    if (cache_path(s, d, path, sizeof(path)) == BERTH_OK) {
        unlink(path);
    }
}

static void removal_text(const struct blob_removal *r, char out[33])
{
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)r->id[0], (unsigned long long)r->id[1]);
}

static enum berth_err s3_remove(struct blob_store *bs, const struct digest *d,
                                struct blob_removal *out)
{
    struct s3_store *s = s3_of(bs);
    char key[S3_KEY_MAX], trash[S3_KEY_MAX];
    memset(out, 0, sizeof(*out));
    out->d = *d;
    if (s3_blob_key(s, d, key, sizeof(key)) != BERTH_OK ||
        trash_key(s, d, trash, sizeof(trash)) != BERTH_OK) {
        return BERTH_ETOOBIG;
    }
    struct blob_removal mine = *out;
    enum berth_err rc = rand_bytes(mine.id, sizeof(mine.id));
    if (rc != BERTH_OK) {
        return rc;
    }
    mine.id[0] |= 1; /* never {0, 0} */
    char id[33];
    removal_text(&mine, id);
    rc = s3_copy_object(s, key, trash, id);
    if (rc == BERTH_ENOTFOUND) {
        return BERTH_OK; /* nothing to move */
    }
    if (rc == BERTH_OK) {
        rc = s3_delete_object(s, key);
    }
    if (rc != BERTH_OK) {
        return rc;
    }
    drop_cache(s, d);
    *out = mine;
    return BERTH_OK;
}

static enum berth_err s3_removal_finish(struct blob_store *bs, const struct blob_removal *r)
{
    struct s3_store *s = s3_of(bs);
    if (r->id[0] == 0 && r->id[1] == 0) {
        return BERTH_ENOTFOUND;
    }
    char trash[S3_KEY_MAX], id[33];
    if (trash_key(s, &r->d, trash, sizeof(trash)) != BERTH_OK) {
        return BERTH_ENOTFOUND;
    }
    removal_text(r, id);
    struct s3_resp h;
    enum berth_err rc = s3_head_object(s, trash, &h);
    bool same = rc == BERTH_OK && strcmp(h.removal, id) == 0;
    s3_resp_fini(&h);
    if (rc != BERTH_OK) {
        return rc;
    }
    if (!same) {
        return BERTH_ENOTFOUND;
    }
    return s3_delete_object(s, trash);
}

struct recover_ctx {
    blob_wanted_fn wanted;
    void *arg;
    int64_t *restored;
    int64_t *deleted;
};

static enum berth_err recover_one(struct s3_store *s, void *arg, const char *rel, uint64_t size,
                                  int64_t mtime)
{
    struct recover_ctx *rc_ = arg;
    (void)size;
    (void)mtime;
    const char *name = rel + strlen("trash/");
    const char *dash = strchr(name, '-');
    struct digest d;
    char text[DIGEST_STR_MAX], trash[S3_KEY_MAX], key[S3_KEY_MAX];
    snprintf(trash, sizeof(trash), "%s%s", s->prefix, rel);
    bool parsed = dash != NULL && (size_t)(dash - name) < 16 &&
                  snprintf(text, sizeof(text), "%.*s:%s", (int)(dash - name), name, dash + 1) > 0 &&
                  digest_parse(text, &d) == BERTH_OK &&
                  s3_blob_key(s, &d, key, sizeof(key)) == BERTH_OK;
    bool live = false;
    if (parsed) {
        struct s3_resp h;
        enum berth_err rc = s3_head_object(s, key, &h);
        s3_resp_fini(&h);
        if (rc != BERTH_OK && rc != BERTH_ENOTFOUND) {
            return rc;
        }
        live = rc == BERTH_OK;
    }
    if (parsed && !live && rc_->wanted(rc_->arg, &d)) {
        /* The removal never committed: put the blob back. */
        enum berth_err rc = s3_copy_object(s, trash, key, NULL);
        if (rc == BERTH_OK) {
            rc = s3_delete_object(s, trash);
        }
        if (rc != BERTH_OK) {
            return rc;
        }
        (*rc_->restored)++;
        log_warn("event=trash_restored digest=%s", d.str);
        return BERTH_OK;
    }
    enum berth_err rc = s3_delete_object(s, trash);
    if (rc == BERTH_OK) {
        (*rc_->deleted)++;
    }
    return rc;
}

static enum berth_err s3_recover(struct blob_store *bs, blob_wanted_fn wanted, void *arg,
                                 int64_t *restored, int64_t *deleted)
{
    struct recover_ctx c = {wanted, arg, restored, deleted};
    return s3_list_objects(s3_of(bs), "trash/", recover_one, &c);
}

struct walk_ctx {
    blob_walk_fn fn;
    void *arg;
};

static enum berth_err walk_one(struct s3_store *s, void *arg, const char *rel, uint64_t size,
                               int64_t mtime)
{
    struct walk_ctx *w = arg;
    (void)s;
    /* blobs/<alg>/<xx>/<hex> */
    const char *alg = rel + strlen("blobs/");
    const char *slash = strchr(alg, '/');
    if (slash == NULL || (size_t)(slash - alg) >= 16 || strlen(slash) < 4 || slash[3] != '/') {
        return BERTH_OK;
    }
    const char *hex = slash + 4;
    char text[DIGEST_STR_MAX + 8];
    struct digest d;
    int n = snprintf(text, sizeof(text), "%.*s:%s", (int)(slash - alg), alg, hex);
    if (n < 0 || (size_t)n >= sizeof(text) || digest_parse(text, &d) != BERTH_OK ||
        strncmp(slash + 1, hex, 2) != 0) {
        return BERTH_OK; /* not a blob: left alone */
    }
    return w->fn(w->arg, &d, size, mtime);
}

static enum berth_err s3_walk(struct blob_store *bs, blob_walk_fn fn, void *arg)
{
    struct walk_ctx w = {fn, arg};
    return s3_list_objects(s3_of(bs), "blobs/", walk_one, &w);
}

static enum berth_err s3_delete(struct blob_store *bs, const struct digest *d)
{
    struct s3_store *s = s3_of(bs);
    char key[S3_KEY_MAX];
    enum berth_err rc = s3_blob_key(s, d, key, sizeof(key));
    if (rc != BERTH_OK) {
        return rc;
    }
    struct s3_resp h;
    rc = s3_head_object(s, key, &h);
    s3_resp_fini(&h);
    if (rc == BERTH_OK) {
        rc = s3_delete_object(s, key);
    }
    if (rc == BERTH_OK) {
        drop_cache(s, d);
    }
    return rc;
}

static const struct blob_backend s3_backend = {
    .name = "s3",
    .close = s3_close,
    .open = s3_open,
    .stat = s3_stat,
    .local_path = s3_local_path,
    .read_range = s3_read_range,
    .url = s3_url,
    .reader_read = s3_reader_read,
    .reader_close = s3_reader_close,
    .stage_create = s3_stage_create,
    .stage_open = s3_stage_open,
    .stage_write = s3_stage_write,
    .stage_read = s3_stage_read,
    .stage_truncate = s3_stage_truncate,
    .stage_hash = s3_stage_hash,
    .stage_sync = s3_stage_sync,
    .stage_close = s3_stage_close,
    .stage_stat = s3_stage_stat,
    .stage_remove = s3_stage_remove,
    .stage_publish = s3_stage_publish,
    .stage_list = s3_stage_list,
    .remove = s3_remove,
    .removal_finish = s3_removal_finish,
    .recover = s3_recover,
    .walk = s3_walk,
    .delete = s3_delete,
};
