/*
 * The shared vulnerability database: publication by an import, and each
 * replica's local copy kept at the current generation. See scan_dbsync.h.
 */
#include "scan/engine/scan_dbsync.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/rand.h"
#include "common/str.h"
#include "common/timeutil.h"
#include "scan/vulndb/vulndb.h"
#include "storage/blob/blob.h"
#include "storage/meta/meta.h"
#include "storage/spec/digest.h"
#include "storage/store/store.h"

/* Bytes read or written at a time. */
#define CHUNK (1u << 20)

/* ---- publishing ---- */

/* Copy the file at fd into the stage name while hashing it. */
static enum berth_err stage_file(struct blob_store *bs, const char *name, int fd, struct digest *d,
                                 int64_t *size)
{
    struct blob_stage *stage = NULL;
    uint64_t have = 0;
    enum berth_err rc = blob_stage_open(bs, name, &stage, &have);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct digest_ctx *ctx = digest_ctx_new(DIGEST_SHA256);
    char *buf = malloc(CHUNK);
    if (ctx == NULL || buf == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    uint64_t off = 0;
    for (;;) {
        size_t got = 0;
        rc = file_read_full(fd, buf, CHUNK, &got);
        if (rc != BERTH_OK || got == 0) {
            break;
        }
        rc = digest_ctx_update(ctx, buf, got);
        if (rc == BERTH_OK) {
            rc = blob_stage_write(stage, off, buf, got);
        }
        if (rc != BERTH_OK) {
            break;
        }
        off += got;
        if (got < CHUNK) {
            break;
        }
    }
    if (rc == BERTH_OK) {
        rc = blob_stage_sync(stage);
    }
    if (rc == BERTH_OK) {
        rc = digest_ctx_final(ctx, d);
    }
    *size = (int64_t)off;
out:
    free(buf);
    digest_ctx_free(ctx);
    blob_stage_close(stage);
    return rc;
}

enum berth_err scan_dbsync_publish(struct store *st, const char *path, int64_t expect_generation,
                                   int64_t records, int64_t imported_at_ms, struct meta_vulndb *out,
                                   char *err, size_t cap)
{
    struct blob_store *bs = store_blobs(st);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        str_say(err, cap, "cannot open %s: %s", path, strerror(errno));
        return berth_err_from_errno(errno);
    }
    uint8_t rnd[8];
    char hex[17];
    char name[BLOB_STAGE_NAME_MAX + 1];
    enum berth_err rc = rand_bytes(rnd, sizeof(rnd));
    if (rc != BERTH_OK) {
        close(fd);
        return rc;
    }
    str_hex_encode(rnd, sizeof(rnd), hex);
    snprintf(name, sizeof(name), "vulndb-%s", hex);
    rc = blob_stage_create(bs, name);
    if (rc != BERTH_OK) {
        close(fd);
        str_say(err, cap, "cannot stage the database in the blob store (%s)", berth_strerror(rc));
        return rc;
    }
    struct digest d;
    int64_t size = 0;
    rc = stage_file(bs, name, fd, &d, &size);
    close(fd);
    if (rc == BERTH_OK) {
        rc = blob_stage_prepublish(bs, name, &d);
    }
    if (rc != BERTH_OK) {
        str_say(err, cap, "cannot stage the database in the blob store (%s)", berth_strerror(rc));
        (void)blob_stage_remove(bs, name);
        return rc;
    }
    struct meta *m;
    rc = store_meta_get(st, &m);
    if (rc == BERTH_OK) {
        rc = meta_begin(m);
    }
    if (rc != BERTH_OK) {
        str_say(err, cap, "cannot write to the metadata database (%s)", berth_strerror(rc));
        (void)blob_stage_remove(bs, name);
        return rc;
    }
    struct meta_vulndb v;
    memset(&v, 0, sizeof(v));
    memcpy(v.digest, d.str, sizeof(v.digest));
    v.size = size;
    v.records = records;
    v.imported_at_ms = imported_at_ms;
    v.published_at_ms = time_now_ms();
    int64_t blob_id = 0;
    bool published = false;
    rc = blob_stage_publish(bs, name, &d);
    if (rc == BERTH_OK) {
        published = true;
        rc = meta_blob_upsert(m, d.str, size, v.published_at_ms, &blob_id);
    }
    if (rc == BERTH_OK) {
        rc = meta_vulndb_publish(m, &v, expect_generation, &v.generation);
    }
    if (rc == BERTH_OK) {
        rc = meta_commit(m);
    }
    if (rc != BERTH_OK) {
        meta_rollback(m);
        if (!published) {
            (void)blob_stage_remove(bs, name);
        }
        /* a published blob without its row is the collector's to remove */
        if (rc == BERTH_ECONFLICT) {
            str_say(err, cap, "another import published a new generation meanwhile");
        } else {
            str_say(err, cap, "publishing the database failed (%s)", berth_strerror(rc));
        }
        return rc;
    }
    log_info("event=vulndb_published generation=%lld digest=%s size=%lld records=%lld "
             "imported_at=%lld",
             (long long)v.generation, v.digest, (long long)v.size, (long long)v.records,
             (long long)v.imported_at_ms);
    *out = v;
    return BERTH_OK;
}

/* ---- fetching ---- */

/* Write the blob's bytes into fd while hashing them; *got counts them. */
static enum berth_err download(struct blob_store *bs, const struct digest *d, uint64_t size, int fd,
                               struct digest_ctx *ctx, uint64_t *got)
{
    struct blob_read rd = {.fd = -1, .reader = NULL};
    enum berth_err rc = blob_read_range(bs, d, size, 0, size, &rd);
    if (rc != BERTH_OK) {
        return rc;
    }
    char *buf = malloc(CHUNK);
    if (buf == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    *got = 0;
    while (*got < size) {
        size_t want = size - *got < CHUNK ? (size_t)(size - *got) : CHUNK;
        size_t n = 0;
        if (rd.fd >= 0) {
            ssize_t r = pread(rd.fd, buf, want, (off_t)*got);
            if (r < 0 && errno == EINTR) {
                continue;
            }
            if (r < 0) {
                rc = BERTH_EIO;
                break;
            }
            n = (size_t)r;
        } else {
            long long r = blob_reader_read(rd.reader, buf, want, NULL, NULL);
            if (r < 0) {
                rc = BERTH_EIO;
                break;
            }
            n = (size_t)r;
        }
        if (n == 0) {
            break; /* short: the size check says so */
        }
        rc = digest_ctx_update(ctx, buf, n);
        if (rc == BERTH_OK) {
            rc = file_write_all(fd, buf, n);
        }
        if (rc != BERTH_OK) {
            break;
        }
        *got += n;
    }
out:
    free(buf);
    if (rd.fd >= 0) {
        close(rd.fd);
    }
    blob_reader_close(rd.reader);
    return rc;
}

enum berth_err scan_dbsync_fetch(struct store *st, const struct meta_vulndb *gen, const char *path,
                                 char *err, size_t cap)
{
    struct digest want;
    if (digest_parse(gen->digest, &want) != BERTH_OK || gen->size < 0) {
        str_say(err, cap, "the shared database's digest %s is not valid", gen->digest);
        return BERTH_EINVAL;
    }
    uint8_t rnd[8];
    char hex[17];
    enum berth_err rc = rand_bytes(rnd, sizeof(rnd));
    if (rc != BERTH_OK) {
        return rc;
    }
    str_hex_encode(rnd, sizeof(rnd), hex);
    size_t tlen = strlen(path) + 64;
    char *tmp = malloc(tlen);
    if (tmp == NULL) {
        return BERTH_ENOMEM;
    }
    snprintf(tmp, tlen, "%s.tmp-%ld-%s", path, (long)getpid(), hex);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) {
        rc = berth_err_from_errno(errno);
        str_say(err, cap, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    struct digest_ctx *ctx = digest_ctx_new(want.alg);
    uint64_t got = 0;
    rc = ctx == NULL ? BERTH_ENOMEM
                     : download(store_blobs(st), &want, (uint64_t)gen->size, fd, ctx, &got);
    struct digest have;
    if (rc == BERTH_OK && got != (uint64_t)gen->size) {
        str_say(err, cap, "the blob store gave %llu bytes of %s, not %lld", (unsigned long long)got,
                want.str, (long long)gen->size);
        rc = BERTH_EIO;
    } else if (rc != BERTH_OK) {
        str_say(err, cap, "cannot read %s from the blob store (%s)", want.str, berth_strerror(rc));
    }
    if (rc == BERTH_OK) {
        rc = digest_ctx_final(ctx, &have);
    }
    if (rc == BERTH_OK && strcmp(have.str, want.str) != 0) {
        str_say(err, cap, "the downloaded database has digest %s, not %s: refused", have.str,
                want.str);
        rc = BERTH_EDIGEST;
    }
    digest_ctx_free(ctx);
    if (rc == BERTH_OK && fsync(fd) != 0) {
        str_say(err, cap, "cannot sync %s: %s", tmp, strerror(errno));
        rc = BERTH_EIO;
    }
    if (close(fd) != 0 && rc == BERTH_OK) {
        str_say(err, cap, "cannot write %s: %s", tmp, strerror(errno));
        rc = BERTH_EIO;
    }
    int64_t imported_at = -1;
    if (rc == BERTH_OK) {
        rc = vulndb_check_file(tmp, &imported_at, err, cap);
    }
    if (rc == BERTH_OK && rename(tmp, path) != 0) {
        str_say(err, cap, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        rc = BERTH_EIO;
    }
    if (rc == BERTH_OK) {
        rc = file_fsync_parent(path);
    } else {
        (void)unlink(tmp);
    }
    free(tmp);
    return rc;
}

/* ---- the local copy ---- */

enum berth_err scan_dbsync_installed(const char *root, char *out, size_t cap)
{
    char path[4200];
    if (snprintf(path, sizeof(path), "%s/%s", root, SCAN_DBSYNC_DIGEST_FILE) >= (int)sizeof(path)) {
        return BERTH_ETOOBIG;
    }
    char *text = NULL;
    size_t len = 0;
    enum berth_err rc = file_read_bounded(path, DIGEST_STR_MAX, &text, &len);
    if (rc != BERTH_OK) {
        return rc;
    }
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' ')) {
        text[--len] = '\0';
    }
    struct digest d;
    rc = digest_parse(text, &d) == BERTH_OK ? str_copy(out, cap, d.str) : BERTH_ENOTFOUND;
    free(text);
    return rc;
}

/* One installation at a time in this process; the refused generation. */
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static char refused_digest[DIGEST_STR_MAX];
static int64_t refused_at_ms;

static bool installed_is(const char *root, const char *digest)
{
    char have[DIGEST_STR_MAX];
    char path[4200];
    struct stat sb;
    return scan_dbsync_installed(root, have, sizeof(have)) == BERTH_OK &&
           strcmp(have, digest) == 0 &&
           snprintf(path, sizeof(path), "%s/%s", root, VULNDB_SHARED_FILE) < (int)sizeof(path) &&
           stat(path, &sb) == 0;
}

enum berth_err scan_dbsync_update(struct store *st, const char *root, bool *installed)
{
    if (installed != NULL) {
        *installed = false;
    }
    struct meta *m;
    enum berth_err rc = store_meta_get(st, &m);
    struct meta_vulndb cur;
    if (rc == BERTH_OK) {
        rc = meta_vulndb_get(m, &cur);
    }
    if (rc == BERTH_ENOTFOUND) {
        return BERTH_OK; /* nothing published: the local database, if any */
    }
    if (rc != BERTH_OK || installed_is(root, cur.digest)) {
        return rc;
    }
    pthread_mutex_lock(&install_lock);
    if (installed_is(root, cur.digest)) {
        pthread_mutex_unlock(&install_lock);
        return BERTH_OK;
    }
    int64_t now = time_now_ms();
    if (strcmp(refused_digest, cur.digest) == 0 && now - refused_at_ms < SCAN_DBSYNC_RETRY_MS) {
        pthread_mutex_unlock(&install_lock);
        return BERTH_EDIGEST;
    }
    char path[4200], err[512] = "";
    if (snprintf(path, sizeof(path), "%s/%s", root, VULNDB_SHARED_FILE) >= (int)sizeof(path)) {
        pthread_mutex_unlock(&install_lock);
        return BERTH_ETOOBIG;
    }
    int64_t started = time_now_ms();
    rc = scan_dbsync_fetch(st, &cur, path, err, sizeof(err));
    if (rc == BERTH_OK) {
        char dpath[4200];
        char line[DIGEST_STR_MAX + 1];
        int n = snprintf(line, sizeof(line), "%s\n", cur.digest);
        snprintf(dpath, sizeof(dpath), "%s/%s", root, SCAN_DBSYNC_DIGEST_FILE);
        rc = file_write_atomic(dpath, line, (size_t)n, 0640, true);
        if (rc != BERTH_OK) {
            str_say(err, sizeof(err), "cannot write %.400s", dpath);
        }
    }
    if (rc == BERTH_OK) {
        refused_digest[0] = '\0';
        log_info("event=vulndb_installed generation=%lld digest=%s size=%lld records=%lld "
                 "imported_at=%lld duration_ms=%lld",
                 (long long)cur.generation, cur.digest, (long long)cur.size, (long long)cur.records,
                 (long long)cur.imported_at_ms, (long long)(time_now_ms() - started));
        if (installed != NULL) {
            *installed = true;
        }
    } else {
        char ev[600];
        if (rc == BERTH_EDIGEST || rc == BERTH_EDB || rc == BERTH_EUNSUPPORTED ||
            rc == BERTH_ENOTFOUND) {
            str_copy(refused_digest, sizeof(refused_digest), cur.digest);
            refused_at_ms = now;
        }
        log_warn("event=vulndb_install_failed generation=%lld digest=%s err=%s reason=%s",
                 (long long)cur.generation, cur.digest, berth_strerror(rc),
                 log_value(err, ev, sizeof(ev)));
    }
    pthread_mutex_unlock(&install_lock);
    return rc;
}

void scan_dbsync_cleanup(const char *root, int64_t before_ms, int64_t *removed)
{
    int64_t n = 0;
    DIR *d = opendir(root);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char path[4400];
        struct stat sb;
        if (!(str_has_prefix(e->d_name, VULNDB_SHARED_FILE ".tmp-") ||
              str_has_prefix(e->d_name, "vulndb-import-") ||
              str_has_prefix(e->d_name, "vulndb-migrate-")) ||
            snprintf(path, sizeof(path), "%s/%s", root, e->d_name) >= (int)sizeof(path) ||
            lstat(path, &sb) != 0 || (int64_t)sb.st_mtime * 1000 >= before_ms) {
            continue;
        }
        if (file_remove_tree(path) == BERTH_OK) {
            char pv[600];
            log_info("event=vulndb_leftover_removed path=%s", log_value(path, pv, sizeof(pv)));
            n++;
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    if (removed != NULL) {
        *removed = n;
    }
}
