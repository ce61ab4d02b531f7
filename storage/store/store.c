/*
 * The store: data root layout, per-thread metadata connections, blob file
 * publication and removal. Thread-safe; see store.h.
 */
#include "store_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "storage/meta/meta.h"
#include "common/rand.h"
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
    if (meta_open(st->db_path, st->opt.fsync, &n->m) != BERTH_OK) {
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

static enum berth_err join(char *out, const char *a, const char *b)
{
    int n = snprintf(out, STORE_PATH_MAX, "%s/%s", a, b);
    return (n < 0 || n >= STORE_PATH_MAX) ? BERTH_ETOOBIG : BERTH_OK;
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
    if (join(st->blobs_dir, st->root, "blobs") != BERTH_OK ||
        join(st->uploads_dir, st->root, "uploads") != BERTH_OK ||
        join(st->trash_dir, st->root, "trash") != BERTH_OK ||
        join(st->db_path, st->root, "berth.db") != BERTH_OK) {
        rc = BERTH_ETOOBIG;
        goto out;
    }
    const char *dirs[] = {st->root, st->blobs_dir, st->uploads_dir, st->trash_dir};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        rc = file_mkdir_p(dirs[i], 0750);
        if (rc != BERTH_OK) {
            log_error("event=store_error op=mkdir path=%s errno=%d", dirs[i], errno);
            goto out;
        }
    }
    pthread_mutex_init(&st->conns_lock, NULL);
    pthread_mutex_init(&st->uploads_lock, NULL);
    if (pthread_key_create(&st->meta_key, conn_destroy) != 0) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    key_made = true;
    /* Open this thread's connection now: it creates and migrates the
     * database before any worker thread touches it. */
    if (store_meta(st) == NULL) {
        log_error("event=store_error op=open_db path=%s", st->db_path);
        rc = BERTH_EDB;
        goto out;
    }
    *out = st;
    return BERTH_OK;
out:
    if (key_made) {
        store_close(st);
    } else {
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
    pthread_mutex_destroy(&st->conns_lock);
    pthread_mutex_destroy(&st->uploads_lock);
    free(st);
}

const struct store_options *store_options(const struct store *st)
{
    return &st->opt;
}

enum berth_err store_blob_path(const struct store *st, const struct digest *d, char *out,
                               size_t cap)
{
    const char *hex = digest_hex(d);
    int n = snprintf(out, cap, "%s/%s/%.2s/%s", st->blobs_dir, digest_alg_name(d->alg), hex, hex);
    return (n < 0 || (size_t)n >= cap) ? BERTH_ETOOBIG : BERTH_OK;
}

enum berth_err store_blob_open(const struct store *st, const struct digest *d, int *fd,
                               uint64_t *size)
{
    char path[STORE_PATH_MAX];
    enum berth_err rc = store_blob_path(st, d, path, sizeof(path));
    if (rc != BERTH_OK) {
        return rc;
    }
    int f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0) {
        return errno == ENOENT ? BERTH_ENOTFOUND : BERTH_EIO;
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

enum berth_err store_tmp_create(const struct store *st, char *out, size_t cap, int *fd)
{
    char uuid[RAND_UUID_LEN + 1];
    enum berth_err rc = rand_uuid(uuid);
    if (rc != BERTH_OK) {
        return rc;
    }
    int n = snprintf(out, cap, "%s/tmp-%s", st->uploads_dir, uuid);
    if (n < 0 || (size_t)n >= cap) {
        return BERTH_ETOOBIG;
    }
    int f = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (f < 0) {
        return BERTH_EIO;
    }
    *fd = f;
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

enum berth_err store_blob_publish(const struct store *st, const char *tmp_path,
                                  const struct digest *d)
{
    char alg_dir[STORE_PATH_MAX], pre_dir[STORE_PATH_MAX], path[STORE_PATH_MAX];
    const char *hex = digest_hex(d);
    int n1 = snprintf(alg_dir, sizeof(alg_dir), "%s/%s", st->blobs_dir, digest_alg_name(d->alg));
    int n2 = snprintf(pre_dir, sizeof(pre_dir), "%s/%.2s", alg_dir, hex);
    if (n1 < 0 || n1 >= (int)sizeof(alg_dir) || n2 < 0 || n2 >= (int)sizeof(pre_dir) ||
        store_blob_path(st, d, path, sizeof(path)) != BERTH_OK) {
        return BERTH_ETOOBIG;
    }
    bool alg_new = false, pre_new = false;
    enum berth_err rc = ensure_dir(alg_dir, &alg_new);
    if (rc == BERTH_OK) {
        rc = ensure_dir(pre_dir, &pre_new);
    }
    if (rc != BERTH_OK) {
        log_error("event=store_error op=mkdir path=%s errno=%d", pre_dir, errno);
        return rc;
    }
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
        /* Already published (content-addressed: same bytes). */
        unlink(tmp_path);
        return BERTH_OK;
    }
    if (rename(tmp_path, path) != 0) {
        log_error("event=store_error op=rename from=%s to=%s errno=%d", tmp_path, path, errno);
        return BERTH_EIO;
    }
    if (!st->opt.fsync) {
        return BERTH_OK;
    }
    rc = file_fsync_dir(pre_dir);
    if (rc == BERTH_OK && pre_new) {
        rc = file_fsync_dir(alg_dir);
    }
    if (rc == BERTH_OK && alg_new) {
        rc = file_fsync_dir(st->blobs_dir);
    }
    /* The temp file's directory lost an entry; losing that on power
     * failure only leaves a stray temp file, which expiry removes. */
    return rc;
}

enum berth_err store_trash_path(const struct store *st, const struct digest *d, char *out,
                                size_t cap)
{
    int n = snprintf(out, cap, "%s/%s-%s", st->trash_dir, digest_alg_name(d->alg), digest_hex(d));
    return (n < 0 || (size_t)n >= cap) ? BERTH_ETOOBIG : BERTH_OK;
}

/* The digest a trash file name (store_trash_path's <alg>-<hex>) stands for;
 * false for any other name. */
static bool parse_trash_name(const char *name, struct digest *d)
{
    const char *dash = strchr(name, '-');
    if (dash == NULL || (size_t)(dash - name) >= 16) {
        return false;
    }
    char text[DIGEST_STR_MAX];
    int n = snprintf(text, sizeof(text), "%.*s:%s", (int)(dash - name), name, dash + 1);
    return n > 0 && (size_t)n < sizeof(text) && digest_parse(text, d) == BERTH_OK;
}

enum berth_err store_blob_remove(const struct store *st, const struct digest *d)
{
    char path[STORE_PATH_MAX], trash[STORE_PATH_MAX];
    if (store_blob_path(st, d, path, sizeof(path)) != BERTH_OK ||
        store_trash_path(st, d, trash, sizeof(trash)) != BERTH_OK) {
        return BERTH_ETOOBIG;
    }
    if (rename(path, trash) != 0) {
        return errno == ENOENT ? BERTH_OK : BERTH_EIO;
    }
    return BERTH_OK;
}

enum berth_err store_recover_trash(struct store *st, int64_t *restored, int64_t *deleted)
{
    struct meta *m = store_meta(st);
    if (m == NULL) {
        return BERTH_EDB;
    }
    DIR *dir = opendir(st->trash_dir);
    if (dir == NULL) {
        return errno == ENOENT ? BERTH_OK : BERTH_EIO;
    }
    int64_t n_restored = 0, n_deleted = 0;
    enum berth_err rc = BERTH_OK;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char path[STORE_PATH_MAX];
        if (join(path, st->trash_dir, e->d_name) != BERTH_OK) {
            continue;
        }
        struct digest d;
        bool parsed = parse_trash_name(e->d_name, &d);
        struct meta_blob blob;
        char live[STORE_PATH_MAX];
        struct stat sb;
        bool live_exists = parsed && store_blob_path(st, &d, live, sizeof(live)) == BERTH_OK &&
                           stat(live, &sb) == 0;
        if (parsed && !live_exists && meta_blob_get(m, d.str, &blob) == BERTH_OK) {
            /* The removal never committed: put the file back. (When the
             * blob file exists again, the removal did commit and the blob
             * was pushed anew since: the trash copy is just garbage.) */
            rc = store_blob_publish(st, path, &d);
            if (rc != BERTH_OK) {
                break;
            }
            n_restored++;
            log_warn("event=trash_restored digest=%s", d.str);
        } else {
            if (unlink(path) != 0 && errno != ENOENT) {
                rc = BERTH_EIO;
                break;
            }
            n_deleted++;
        }
    }
    closedir(dir);
    if (restored) {
        *restored = n_restored;
    }
    if (deleted) {
        *deleted = n_deleted;
    }
    return rc;
}

enum berth_err store_upload_path(const struct store *st, const char *uuid, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", st->uploads_dir, uuid);
    return (n < 0 || (size_t)n >= cap) ? BERTH_ETOOBIG : BERTH_OK;
}
