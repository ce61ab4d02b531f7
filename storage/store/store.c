/*
 * The store: the data root's blob store and metadata database, and the
 * per-thread metadata connections. Thread-safe; see store.h.
 */
#include "store_int.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "storage/blob/blob.h"
#include "common/log.h"
#include "storage/meta/meta.h"
#include "common/str.h"

struct conn_node {
    struct store *st;
    struct meta *m;
    struct conn_node *prev;
    struct conn_node *next;
};

static void unlink_node(struct store *st, struct conn_node *n)
{
    if (n->prev) {
        n->prev->next = n->next;
    } else {
        st->conns = n->next;
    }
    if (n->next) {
        n->next->prev = n->prev;
    }
}

/* pthread key destructor: a thread that used the store has exited. */
static void conn_destroy(void *p)
{
    struct conn_node *n = p;
    struct store *st = n->st;
    pthread_mutex_lock(&st->conns_lock);
    unlink_node(st, n);
    pthread_mutex_unlock(&st->conns_lock);
    meta_close(n->m);
    free(n);
}

struct meta *store_meta(struct store *st)
{
    struct conn_node *n = pthread_getspecific(st->meta_key);
    if (n != NULL) {
        return n->m;
    }
    n = calloc(1, sizeof(*n));
    if (n == NULL) {
        return NULL;
    }
    if (meta_open_backend(st->meta_backend, st->meta_target, st->opt.fsync, &n->m) != BERTH_OK) {
        free(n);
        return NULL;
    }
    n->st = st;
    pthread_mutex_lock(&st->conns_lock);
    n->next = st->conns;
    if (st->conns) {
        st->conns->prev = n;
    }
    st->conns = n;
    pthread_mutex_unlock(&st->conns_lock);
    if (pthread_setspecific(st->meta_key, n) != 0) {
        pthread_mutex_lock(&st->conns_lock);
        unlink_node(st, n);
        pthread_mutex_unlock(&st->conns_lock);
        meta_close(n->m);
        free(n);
        return NULL;
    }
    return n->m;
}

enum berth_err store_meta_get(struct store *st, struct meta **out)
{
    *out = store_meta(st);
    return *out != NULL ? BERTH_OK : BERTH_EUNAVAILABLE;
}

/* The archive tier's S3 blob store: the blob store's options in another
 * bucket or under another prefix (prefix: cap bytes for the default). */
static enum berth_err archive_s3_options(const struct store_options *opt,
                                         struct blob_store_options *aopt, char *prefix, size_t cap)
{
    aopt->backend = opt->blob_backend;
    aopt->s3 = opt->s3;
    /* small blobs of the archive are read once, by a restore */
    aopt->s3.cache_max_bytes = 0;
    aopt->s3.storage_class = opt->archive_s3_storage_class;
    if (opt->archive_s3_bucket != NULL && opt->archive_s3_bucket[0] != '\0') {
        aopt->s3.bucket = opt->archive_s3_bucket;
    }
    const char *main_prefix = opt->s3.prefix != NULL ? opt->s3.prefix : "";
    if (opt->archive_s3_prefix != NULL && opt->archive_s3_prefix[0] != '\0') {
        aopt->s3.prefix = opt->archive_s3_prefix;
    } else {
        int n = snprintf(prefix, cap, "%sarchive/", main_prefix);
        if (n < 0 || (size_t)n >= cap) {
            return BERTH_ETOOBIG;
        }
        aopt->s3.prefix = prefix;
    }
    const char *main_bucket = opt->s3.bucket != NULL ? opt->s3.bucket : "";
    if (strcmp(aopt->s3.bucket != NULL ? aopt->s3.bucket : "", main_bucket) == 0 &&
        strcmp(aopt->s3.prefix, main_prefix) == 0) {
        log_error("event=store_error msg=\"storage.archive.s3_prefix must differ from "
                  "storage.s3.prefix in the same bucket: the archive tier needs keys of its "
                  "own\"");
        return BERTH_EINVAL;
    }
    return BERTH_OK;
}

enum berth_err store_open(const struct store_options *opt, struct store **out)
{
    struct store *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return BERTH_ENOMEM;
    }
    enum berth_err rc = BERTH_OK;
    bool key_made = false;
    st->opt = *opt;
    if (strlen(opt->root) >= 3800) {
        log_error("event=store_error msg=\"root path too long\"");
        rc = BERTH_ETOOBIG;
        goto out;
    }
    str_copy(st->root, sizeof(st->root), opt->root);
    st->opt.root = st->root;
    snprintf(st->db_path, sizeof(st->db_path), "%s/berth.db", st->root);
    st->meta_backend = opt->meta_backend != NULL ? opt->meta_backend : "sqlite";
    if (!meta_backend_known(st->meta_backend)) {
        log_error("event=store_error msg=\"unknown metadata backend %s\"", st->meta_backend);
        rc = BERTH_EINVAL;
        goto out;
    }
    if (strcmp(st->meta_backend, "sqlite") == 0) {
        st->meta_backend = "sqlite";
        st->meta_target = strdup(st->db_path);
    } else {
        st->meta_backend = "postgres";
        st->meta_target = strdup(opt->meta_target != NULL ? opt->meta_target : "");
    }
    st->opt.meta_backend = st->meta_backend;
    st->opt.meta_target = NULL; /* the caller's string; see st->meta_target */
    if (st->meta_target == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    /* Before anything is created: the root must belong to these backends
     * (its marker), and garbage collection must not start over a new,
     * empty database when blobs are already published. */
    char why[1024];
    rc = store_marker_check(st->root, st->meta_backend, opt->blob_backend, why, sizeof(why));
    if (rc != BERTH_OK) {
        log_error("event=store_refused root=%s msg=\"%s\"", st->root, why);
        goto out;
    }
    bool fs_blobs = opt->blob_backend == NULL || opt->blob_backend[0] == '\0' ||
                    strcmp(opt->blob_backend, "filesystem") == 0;
    /* A root from before the marker says nothing of its backends: what it
     * holds must then match the configuration (a PostgreSQL root opened
     * without its configuration has published blobs or S3 state and no
     * berth.db). */
    bool marked = store_marker_present(st->root);
    bool s3_state = store_root_has_s3_state(st->root);
    struct stat db_sb;
    if ((opt->existing_meta_only || !marked) && strcmp(st->meta_backend, "sqlite") == 0 &&
        stat(st->db_path, &db_sb) != 0 &&
        ((fs_blobs && store_root_has_blobs(st->root)) || s3_state)) {
        log_error("event=store_refused root=%s msg=\"%s does not exist but the data directory "
                  "holds %s: the metadata is elsewhere (meta.backend postgres? give this "
                  "command the server's configuration) or lost; refusing to create an empty "
                  "database, nothing was created or deleted\"",
                  st->root, st->db_path,
                  s3_state ? "the S3 blob backend's state (s3cache, s3mpu)" : "published blobs");
        rc = BERTH_ECONFLICT;
        goto out;
    }
    if (!marked && fs_blobs && s3_state) {
        log_error("event=store_refused root=%s msg=\"the data directory holds the S3 blob "
                  "backend's state (s3cache, s3mpu) but this configuration has storage.backend "
                  "filesystem: give this command the server's configuration (file or "
                  "BERTH_STORAGE_* environment); nothing was created or deleted\"",
                  st->root);
        rc = BERTH_ECONFLICT;
        goto out;
    }
    struct blob_store_options bopt = {
        .root = st->root, .fsync = opt->fsync, .backend = opt->blob_backend, .s3 = opt->s3};
    rc = blob_store_open(&bopt, &st->blobs);
    if (rc != BERTH_OK) {
        goto out;
    }
    st->shared_uploads = blob_shared_supported(st->blobs);
    if (opt->archive_path != NULL && opt->archive_path[0] != '\0') {
        if (strlen(opt->archive_path) >= 3800) {
            log_error("event=store_error msg=\"archive path too long\"");
            rc = BERTH_ETOOBIG;
            goto out;
        }
        str_copy(st->archive_path, sizeof(st->archive_path), opt->archive_path);
        struct blob_store_options aopt = {
            .root = st->archive_path, .fsync = opt->fsync, .backend = "filesystem"};
        char prefix[1024];
        if (!fs_blobs) {
            rc = archive_s3_options(opt, &aopt, prefix, sizeof(prefix));
            if (rc != BERTH_OK) {
                goto out;
            }
        }
        rc = blob_store_open(&aopt, &st->archive);
        if (rc != BERTH_OK) {
            log_error("event=store_error op=open_archive path=%s", st->archive_path);
            goto out;
        }
    }
    st->opt.archive_path = st->archive != NULL ? st->archive_path : NULL;
    pthread_mutex_init(&st->conns_lock, NULL);
    pthread_mutex_init(&st->uploads_lock, NULL);
    if (pthread_key_create(&st->meta_key, conn_destroy) != 0) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    key_made = true;
    uint64_t avail = 0;
    if (store_disk_full(st, &avail) && store_reserve_release(st)) {
        /* the database cannot even open without room: the reserve gives
         * it, and garbage collection takes it again once it has freed
         * space */
        log_error("event=disk_full avail_bytes=%llu reserve_released=1 msg=\"the data disk is "
                  "full\"",
                  (unsigned long long)avail);
    } else if (!store_reserve_take(st)) {
        log_warn("event=disk_reserve_missing root=%s msg=\"no room to set space aside for "
                 "garbage collection on a full disk\"",
                 st->root);
    }
    /* Before the database is created or migrated: is it the blobs'? */
    rc = store_pairing_check(st, opt);
    if (rc != BERTH_OK) {
        goto out;
    }
    /* Open this thread's connection now: it creates and migrates the
     * database before any worker thread touches it. */
    if (store_meta(st) == NULL) {
        if (strcmp(st->meta_backend, "sqlite") == 0) {
            log_error("event=store_error op=open_db path=%s", st->db_path);
        } else {
            log_error("event=store_error op=open_db backend=%s", st->meta_backend);
        }
        rc = BERTH_EDB;
        goto out;
    }
    rc = store_pairing_record(st, opt);
    if (rc != BERTH_OK) {
        goto out;
    }
    rc = store_marker_write(st->root, st->meta_backend, opt->blob_backend);
    if (rc != BERTH_OK) {
        log_error("event=store_error op=write_marker root=%s err=%s", st->root, berth_strerror(rc));
        goto out;
    }
    *out = st;
    return BERTH_OK;
out:
    if (key_made) {
        store_close(st);
    } else {
        blob_store_close(st->blobs);
        blob_store_close(st->archive);
        free(st->meta_target);
        free(st);
    }
    return rc;
}

void store_close(struct store *st)
{
    if (st == NULL) {
        return;
    }
    /* The calling thread's own node is closed below with the others; clear
     * the slot so the key destructor does not run for it later. */
    pthread_setspecific(st->meta_key, NULL);
    pthread_key_delete(st->meta_key);
    pthread_mutex_lock(&st->conns_lock);
    struct conn_node *n = st->conns;
    st->conns = NULL;
    pthread_mutex_unlock(&st->conns_lock);
    while (n != NULL) {
        struct conn_node *next = n->next;
        meta_close(n->m);
        free(n);
        n = next;
    }
    upload_states_free(st);
    blob_store_close(st->blobs);
    blob_store_close(st->archive);
    pthread_mutex_destroy(&st->conns_lock);
    pthread_mutex_destroy(&st->uploads_lock);
    free(st->meta_target);
    free(st);
}

const struct store_options *store_options(const struct store *st)
{
    return &st->opt;
}

struct blob_store *store_blobs(struct store *st)
{
    return st->blobs;
}

struct blob_store *store_archive(struct store *st)
{
    return st->archive;
}

/* blob_recover's question for the blob store: does the blob still have
 * its row, with its bytes in the blob store? (A blob whose row says
 * archive tier was moved there: its old copy is not wanted.) */
static bool blob_wanted(void *arg, const struct digest *d)
{
    struct meta_blob row;
    return meta_blob_get(arg, d->str, &row) == BERTH_OK && row.tier == META_TIER_STANDARD;
}

/* ... and for the archive tier. */
static bool archive_wanted(void *arg, const struct digest *d)
{
    struct meta_blob row;
    return meta_blob_get(arg, d->str, &row) == BERTH_OK && row.tier == META_TIER_ARCHIVE;
}

enum berth_err store_recover_trash(struct store *st, int64_t *restored, int64_t *deleted)
{
    struct meta *m;
    enum berth_err got = store_meta_get(st, &m);
    if (got != BERTH_OK) {
        return got;
    }
    int64_t r = 0, d = 0;
    enum berth_err rc = blob_recover(st->blobs, blob_wanted, m, &r, &d);
    if (rc == BERTH_OK && st->archive != NULL) {
        int64_t ar = 0, ad = 0;
        rc = blob_recover(st->archive, archive_wanted, m, &ar, &ad);
        r += ar;
        d += ad;
    }
    if (restored != NULL) {
        *restored = r;
    }
    if (deleted != NULL) {
        *deleted = d;
    }
    return rc;
}

bool store_settle_trash(struct store *st)
{
    struct meta *m;
    if (store_meta_get(st, &m) != BERTH_OK || meta_begin(m) != BERTH_OK) {
        return false;
    }
    int64_t restored = 0, deleted = 0;
    if (store_recover_trash(st, &restored, &deleted) == BERTH_OK && meta_commit(m) == BERTH_OK) {
        if (restored > 0 || deleted > 0) {
            log_warn("event=trash_settled restored=%lld deleted=%lld msg=\"blobs a removal "
                     "that never committed had moved aside\"",
                     (long long)restored, (long long)deleted);
        }
        return restored > 0;
    }
    meta_rollback(m);
    log_error("event=store_error op=settle_trash msg=\"repaired at the next start-up or garbage "
              "collection\"");
    return false;
}

/* ---- the space reserve ---- */

bool store_reserve_take(struct store *st)
{
    char path[STORE_PATH_MAX + 16], tmp[STORE_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/reserve", st->root);
    snprintf(tmp, sizeof(tmp), "%s/reserve.tmp", st->root);
    struct stat sb;
    if (stat(path, &sb) == 0 && sb.st_size == STORE_RESERVE_BYTES) {
        return true;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return false;
    }
    /* blocks really allocated: a sparse file would free nothing */
    bool ok = posix_fallocate(fd, 0, STORE_RESERVE_BYTES) == 0 && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (ok && rename(tmp, path) == 0) {
        return true;
    }
    unlink(tmp);
    return false;
}

bool store_reserve_release(struct store *st)
{
    char path[STORE_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/reserve", st->root);
    return unlink(path) == 0;
}

bool store_reserve_held(struct store *st)
{
    char path[STORE_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/reserve", st->root);
    struct stat sb;
    return stat(path, &sb) == 0 && sb.st_size == STORE_RESERVE_BYTES;
}

bool store_disk_full(struct store *st, uint64_t *avail)
{
    struct statvfs vfs;
    if (statvfs(st->root, &vfs) != 0) {
        return false;
    }
    uint64_t bytes = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
    if (avail != NULL) {
        *avail = bytes;
    }
    return bytes < (1u << 20);
}

bool store_reserve_release_to_delete(struct store *st)
{
    uint64_t avail = 0;
    if (!store_disk_full(st, &avail) || !store_reserve_release(st)) {
        return false;
    }
    log_error("event=disk_full avail_bytes=%llu reserve_released=1 step=delete msg=\"the data "
              "disk is full: the space reserve is released so that deletes can be written\"",
              (unsigned long long)avail);
    return true;
}
