/*
 * The S3 blob backend (storage.backend s3): published blobs are objects of
 * one bucket, <prefix>blobs/<alg>/<2 hex>/<hex>; removal copies a blob to
 * <prefix>trash/<alg>-<hex> (tagged with a random removal id in its
 * metadata) before deleting it, so a rollback can bring it back. Requests
 * go through libcurl, signed with SigV4 (s3_client.c); stages and
 * publication are in s3_upload.c; s3_int.h lists the files.
 *
 * Reads: blob_read_range streams one GET (ranged for a part) through the
 * store's transfer thread (s3_client.c), in a bounded buffer; blobs up to
 * S3_CACHE_SMALL (manifests, configs) come from a local copy in
 * <root>/s3cache instead, which also holds the copies blob_local_path
 * makes for scanners, within cache_max bytes (see "the local cache");
 * blob_open of a larger blob downloads it into an unlinked file under
 * <root>/s3tmp. blob_stat is one HEAD; blob_ping a HEAD of the bucket,
 * reused for BLOB_PING_CACHE_MS.
 *
 * The store failing or unreachable (no answer, 5xx, 429) is
 * BERTH_EUNAVAILABLE throughout, which the APIs answer with 503.
 *
 * Thread-safe: every request has its own curl handle; the transfer
 * thread's queue, the cache's count and the last ping are locked; nothing
 * else shared is mutable after open.
 */
#define _GNU_SOURCE /* O_TMPFILE */
#include "s3_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/rand.h"
#include "common/str.h"
#include "common/timeutil.h"

static const struct blob_backend s3_backend;
static void cache_scan(struct s3_store *s);

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

/* Tries of the bucket check at open, and the wait before the second. */
#define OPEN_CHECK_TRIES 3
#define OPEN_CHECK_WAIT_MS 250

/*
 * The bucket must answer (and the credentials be good) before anything is
 * served. A store failing for now (no answer, 5xx, 429) is asked again a
 * couple of times, and so is a 400: the answer to a HEAD has no body to
 * say why, and Swift's s3api was seen answering one 400 among thousands
 * of 200s on a busy machine. 403 and 404 (wrong credentials, no such
 * bucket) are final at once.
 */
static enum berth_err bucket_check(struct s3_store *s)
{
    int64_t wait_ms = OPEN_CHECK_WAIT_MS;
    for (int attempt = 1;; attempt++) {
        long status;
        enum berth_err rc = s3_head_bucket(s, &status);
        bool again = rc == BERTH_EUNAVAILABLE || status == 0 || status == 400;
        if (rc == BERTH_OK || !again || attempt == OPEN_CHECK_TRIES) {
            return rc;
        }
        log_warn("event=s3_retry op=head_bucket bucket=%s status=%ld attempt=%d wait_ms=%lld",
                 s->bucket, status, attempt, (long long)wait_ms);
        time_sleep_ms(wait_ms);
        wait_ms *= 2;
    }
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
    pthread_mutex_init(&s->ping_mu, NULL);
    pthread_mutex_init(&s->cache_mu, NULL);
    s->cache_max = o->cache_max_bytes;
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
        !copy_opt(s->storage_class, sizeof(s->storage_class), o->storage_class) ||
        parse_endpoint(s, o->endpoint, s->region) != BERTH_OK) {
        log_error("event=s3_error op=open error=\"storage.s3 needs a bucket, a region, an "
                  "http(s) endpoint without a path, and credentials (storage.s3.access_key_id "
                  "and secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)\"");
        rc = BERTH_EINVAL;
        goto out;
    }
    /* Tests lower the largest single copy to reach the ranged copy of
     * larger blobs with small ones. */
    s->copy_max = S3_COPY_MAX;
    const char *copy_max = getenv("BERTH_TEST_S3_COPY_MAX");
    uint64_t v = 0;
    if (copy_max != NULL && str_parse_u64(copy_max, S3_COPY_MAX, &v) == BERTH_OK && v > 0) {
        s->copy_max = v;
    }
    size_t tails_max = S3_TAILS_BYTES;
    const char *tails_env = getenv("BERTH_TEST_S3_TAIL_CACHE_BYTES");
    if (tails_env != NULL && str_parse_u64(tails_env, UINT32_MAX, &v) == BERTH_OK) {
        tails_max = (size_t)v;
    }
    s->tails = s3_tails_new(tails_max);
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
        cache_scan(s);
        rc = s3_pump_start(s);
    }
    if (rc == BERTH_OK) {
        rc = bucket_check(s);
    }
out:
    if (rc != BERTH_OK) {
        s3_pump_stop(s);
        blob_store_close(s->local);
        pthread_mutex_destroy(&s->ping_mu);
        pthread_mutex_destroy(&s->cache_mu);
        s3_tails_free(s->tails);
        free(s);
        return rc;
    }
    log_info("event=blob_store backend=s3 endpoint=%s://%s bucket=%s prefix=%s", s->scheme, s->host,
             s->bucket, s->prefix);
    *out = &s->base;
    return BERTH_OK;
}

static enum berth_err s3_ping(struct blob_store *bs)
{
    struct s3_store *s = s3_of(bs);
    long status;
    /* one probe at a time; the others wait for it and share its answer */
    pthread_mutex_lock(&s->ping_mu);
    int64_t now = time_mono_ns();
    if (s->ping_at_ns == 0 || now - s->ping_at_ns > (int64_t)BLOB_PING_CACHE_MS * 1000000) {
        s->ping_rc = s3_head_bucket(s, &status);
        s->ping_at_ns = time_mono_ns();
    }
    enum berth_err rc = s->ping_rc;
    pthread_mutex_unlock(&s->ping_mu);
    return rc;
}

bool blob_tail_cache_stats(struct blob_store *bs, uint64_t *hits, uint64_t *misses)
{
    if (bs == NULL || bs->ops != &s3_backend) {
        return false;
    }
    struct s3_tails_stats st = s3_tails_stats(s3_of(bs)->tails);
    *hits = st.hits;
    *misses = st.misses;
    return true;
}

static void s3_close(struct blob_store *bs)
{
    struct s3_store *s = s3_of(bs);
    s3_pump_stop(s);
    pthread_mutex_destroy(&s->ping_mu);
    s3_tails_free(s->tails);
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

/* ---- the local cache (<root>/s3cache) ----
 *
 * Whole copies of blobs, named <alg>-<hex>: the small ones (up to
 * S3_CACHE_SMALL: manifests, configs), kept when they are published here
 * or first read, so that they are read from the local disk (and still
 * answer while the store is unreachable), and the ones scanners asked for
 * a path (blob_local_path). Files appear complete (renamed into place).
 * Content-addressed, so a copy is never stale. At most cache_max bytes:
 * past it the least recently used copies go (a hit touches its mtime). */

static void cache_evict(struct s3_store *s, const char *keep);

/* Count bytes in or out of the cache (under cache_mu), evicting when it
 * is over its bound; keep names the file just added (never evicted). */
static void cache_account(struct s3_store *s, int64_t delta, const char *keep)
{
    pthread_mutex_lock(&s->cache_mu);
    s->cache_bytes += delta;
    if (s->cache_bytes < 0) {
        s->cache_bytes = 0;
    }
    if (delta > 0 && (uint64_t)s->cache_bytes > s->cache_max) {
        cache_evict(s, keep);
    }
    pthread_mutex_unlock(&s->cache_mu);
}

struct cache_entry {
    int64_t mtime_ns;
    uint64_t size;
    char name[DIGEST_STR_MAX + 16];
};

static int entry_cmp(const void *a, const void *b)
{
    int64_t x = ((const struct cache_entry *)a)->mtime_ns;
    int64_t y = ((const struct cache_entry *)b)->mtime_ns;
    return x < y ? -1 : x > y;
}

/* Under cache_mu: delete the least recently used copies until the cache
 * is under 90% of its bound (a copy being read stays readable: unlinking
 * an open file keeps its bytes until it is closed). */
static void cache_evict(struct s3_store *s, const char *keep)
{
    DIR *dir = opendir(s->cache_dir);
    if (dir == NULL) {
        return;
    }
    struct cache_entry *v = NULL;
    size_t n = 0, cap = 0;
    int64_t total = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        struct stat sb;
        if (e->d_name[0] == '.' || strlen(e->d_name) >= sizeof(v->name) ||
            fstatat(dirfd(dir), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode)) {
            continue;
        }
        total += (int64_t)sb.st_size;
        if (keep != NULL && strcmp(e->d_name, keep) == 0) {
            continue;
        }
        if (n == cap) {
            size_t c = cap > 0 ? cap * 2 : 256;
            struct cache_entry *nv = realloc(v, c * sizeof(*v));
            if (nv == NULL) {
                break;
            }
            v = nv;
            cap = c;
        }
        v[n].mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
        v[n].size = (uint64_t)sb.st_size;
        snprintf(v[n].name, sizeof(v[n].name), "%s", e->d_name);
        n++;
    }
    if (v != NULL) {
        qsort(v, n, sizeof(*v), entry_cmp);
    }
    uint64_t target = s->cache_max / 10 * 9;
    int evicted = 0;
    for (size_t i = 0; i < n && (uint64_t)total > target; i++) {
        if (unlinkat(dirfd(dir), v[i].name, 0) == 0) {
            total -= (int64_t)v[i].size;
            evicted++;
        }
    }
    closedir(dir);
    free(v);
    s->cache_bytes = total;
    if (evicted > 0) {
        log_info("event=s3_cache_evicted files=%d bytes_left=%lld max=%llu", evicted,
                 (long long)total, (unsigned long long)s->cache_max);
    }
}

/* The cache's size at open; temporary files of downloads that died with
 * their process (older than an hour: another process may be using the
 * root right now) are removed. */
static void cache_scan(struct s3_store *s)
{
    DIR *dir = opendir(s->tmp_dir);
    time_t now = time(NULL);
    struct dirent *e;
    while (dir != NULL && (e = readdir(dir)) != NULL) {
        struct stat sb;
        if (e->d_name[0] != '.' && fstatat(dirfd(dir), e->d_name, &sb, 0) == 0 &&
            S_ISREG(sb.st_mode) && now - sb.st_mtime > 3600) {
            unlinkat(dirfd(dir), e->d_name, 0);
        }
    }
    if (dir != NULL) {
        closedir(dir);
    }
    pthread_mutex_lock(&s->cache_mu);
    s->cache_bytes = 0;
    dir = opendir(s->cache_dir);
    while (dir != NULL && (e = readdir(dir)) != NULL) {
        struct stat sb;
        if (e->d_name[0] != '.' && fstatat(dirfd(dir), e->d_name, &sb, 0) == 0 &&
            S_ISREG(sb.st_mode)) {
            s->cache_bytes += (int64_t)sb.st_size;
        }
    }
    if (dir != NULL) {
        closedir(dir);
    }
    if ((uint64_t)s->cache_bytes > s->cache_max) {
        cache_evict(s, NULL);
    }
    pthread_mutex_unlock(&s->cache_mu);
}

/* The cached copy of d, opened for reading (its use touched): a file
 * descriptor and *size, or -1 when there is none. */
static int cache_open(struct s3_store *s, const struct digest *d, uint64_t *size)
{
    char path[S3_PATH_MAX];
    if (cache_path(s, d, path, sizeof(path)) != BERTH_OK) {
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd >= 0 && fstat(fd, &sb) != 0) {
        file_close(fd);
        fd = -1;
    }
    if (fd >= 0) {
        *size = (uint64_t)sb.st_size;
        utimensat(AT_FDCWD, path, NULL, 0); /* recently used */
    }
    return fd;
}

/* GET d into a new file: kept in the cache when keep is set or it is
 * small, else unlinked at once (the caller has it open). want is the size
 * the caller knows, or UINT64_MAX: another size is BERTH_ENOTFOUND
 * (logged). *fd (at offset 0) and *size. */
static enum berth_err cache_fetch(struct s3_store *s, const struct digest *d, bool keep,
                                  uint64_t want, int *fd, uint64_t *size)
{
    char key[S3_KEY_MAX], tmp[S3_PATH_MAX + 16], path[S3_PATH_MAX];
    enum berth_err rc = s3_blob_key(s, d, key, sizeof(key));
    if (rc == BERTH_OK) {
        rc = cache_path(s, d, path, sizeof(path));
    }
    if (rc != BERTH_OK) {
        return rc;
    }
    snprintf(tmp, sizeof(tmp), "%s/get-XXXXXX", s->tmp_dir);
    int f = mkostemp(tmp, O_CLOEXEC);
    if (f < 0) {
        log_error("event=store_error op=tmpfile path=%s errno=%d", s->tmp_dir, errno);
        return berth_err_from_errno(errno);
    }
    rc = s3_get_object(s, key, f);
    struct stat sb;
    if (rc == BERTH_OK && (fstat(f, &sb) != 0 || lseek(f, 0, SEEK_SET) != 0)) {
        rc = BERTH_EIO;
    }
    if (rc == BERTH_OK && want != UINT64_MAX && (uint64_t)sb.st_size != want) {
        log_error("event=s3_error op=GET key=%s length=%lld want=%llu", key, (long long)sb.st_size,
                  (unsigned long long)want);
        rc = BERTH_ENOTFOUND; /* another object than the metadata's */
    }
    if (rc == BERTH_OK && (keep || (uint64_t)sb.st_size <= S3_CACHE_SMALL) &&
        rename(tmp, path) == 0) {
        cache_account(s, (int64_t)sb.st_size, path + strlen(s->cache_dir) + 1);
    } else {
        unlink(tmp);
    }
    if (rc != BERTH_OK) {
        file_close(f);
        return rc;
    }
    *fd = f;
    *size = (uint64_t)sb.st_size;
    return BERTH_OK;
}

void s3_cache_put(struct s3_store *s, const struct digest *d, const void *p, size_t n)
{
    char path[S3_PATH_MAX];
    struct stat sb;
    if (n > S3_CACHE_SMALL || cache_path(s, d, path, sizeof(path)) != BERTH_OK ||
        stat(path, &sb) == 0) {
        return;
    }
    if (file_write_atomic(path, p, n, 0640, false) == BERTH_OK) {
        cache_account(s, (int64_t)n, path + strlen(s->cache_dir) + 1);
    }
}

static void drop_cache(struct s3_store *s, const struct digest *d)
{
    char path[S3_PATH_MAX];
    struct stat sb;
    if (cache_path(s, d, path, sizeof(path)) == BERTH_OK && stat(path, &sb) == 0 &&
        unlink(path) == 0) {
        cache_account(s, -(int64_t)sb.st_size, NULL);
    }
}

static enum berth_err s3_open(struct blob_store *bs, const struct digest *d, int *fd,
                              uint64_t *size)
{
    struct s3_store *s = s3_of(bs);
    int f = cache_open(s, d, size);
    if (f >= 0) {
        *fd = f;
        return BERTH_OK;
    }
    return cache_fetch(s, d, false, UINT64_MAX, fd, size);
}

static enum berth_err s3_local_path(struct blob_store *bs, const struct digest *d, char *out,
                                    size_t cap)
{
    struct s3_store *s = s3_of(bs);
    enum berth_err rc = cache_path(s, d, out, cap);
    if (rc != BERTH_OK) {
        return rc;
    }
    uint64_t size;
    int f = cache_open(s, d, &size);
    if (f < 0) {
        rc = cache_fetch(s, d, true, UINT64_MAX, &f, &size);
    }
    if (rc == BERTH_OK) {
        file_close(f);
    }
    return rc;
}

/* Publish, and keep a copy of a small blob (a manifest, a config) in the
 * cache: a hard link to the stage's file, taken before it goes. */
static enum berth_err s3_publish(struct blob_store *bs, const char *name, const struct digest *d)
{
    struct s3_store *s = s3_of(bs);
    char stage[S3_PATH_MAX], tmp[S3_PATH_MAX + 16], path[S3_PATH_MAX];
    struct stat sb;
    bool linked = false;
    if (blob_fs_stage_path(s->local, name, stage, sizeof(stage)) == BERTH_OK &&
        cache_path(s, d, path, sizeof(path)) == BERTH_OK && stat(stage, &sb) == 0 &&
        (uint64_t)sb.st_size <= S3_CACHE_SMALL) {
        snprintf(tmp, sizeof(tmp), "%s/pub-%s", s->tmp_dir, name);
        linked = link(stage, tmp) == 0;
    }
    enum berth_err rc = s3_stage_publish(bs, name, d);
    if (linked && (rc != BERTH_OK || rename(tmp, path) != 0)) {
        unlink(tmp);
        linked = false;
    }
    if (linked) {
        cache_account(s, (int64_t)sb.st_size, path + strlen(s->cache_dir) + 1);
    }
    return rc;
}

static enum berth_err s3_read_range(struct blob_store *bs, const struct digest *d, uint64_t size,
                                    uint64_t offset, uint64_t len, struct blob_read *out)
{
    struct s3_store *s = s3_of(bs);
    if (size <= S3_CACHE_SMALL) {
        /* small (manifests, configs): from the local cache, filled now if
         * need be */
        uint64_t got = 0;
        int fd = cache_open(s, d, &got);
        enum berth_err rc = BERTH_OK;
        if (fd >= 0 && got != size) {
            file_close(fd);
            drop_cache(s, d);
            fd = -1;
        }
        if (fd < 0) {
            rc = cache_fetch(s, d, false, size, &fd, &got);
        }
        if (rc == BERTH_OK) {
            out->fd = fd;
        }
        return rc;
    }
    char key[S3_KEY_MAX];
    enum berth_err rc = s3_blob_key(s, d, key, sizeof(key));
    struct s3_stream *st = NULL;
    if (rc == BERTH_OK) {
        rc = s3_stream_open(s, key, size, offset, len, &st);
    }
    if (rc == BERTH_OK) {
        out->reader = (struct blob_reader *)(void *)st;
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
    .ping = s3_ping,
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
    .stage_publish = s3_publish,
    .stage_list = s3_stage_list,
    .shared_open = s3_shared_open,
    .shared_size = s3_shared_size,
    .shared_write = s3_shared_write,
    .shared_save = s3_shared_save,
    .shared_saved = s3_shared_saved,
    .shared_publish = s3_shared_publish,
    .shared_rehash = s3_shared_rehash,
    .shared_close = s3_shared_close,
    .shared_remove = s3_shared_remove,
    .id_get = s3_store_id_get,
    .id_put = s3_store_id_put,
    .shared_sweep = s3_shared_sweep,
    .remove = s3_remove,
    .removal_finish = s3_removal_finish,
    .recover = s3_recover,
    .walk = s3_walk,
    .delete = s3_delete,
};
