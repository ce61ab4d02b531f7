/*
 * The backend marker, <root>/berth.backend: which metadata backend and
 * blob backend a data root belongs to, so that the root is never opened
 * with another one (an empty SQLite database over a PostgreSQL root makes
 * every blob look orphaned to garbage collection). See store.h.
 */
#include "store_int.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/str.h"
#include "storage/blob/blob.h"
#include "storage/meta/meta_copy.h"

static const char *blob_name(const char *blob_backend)
{
    return blob_backend == NULL || blob_backend[0] == '\0' ? "filesystem" : blob_backend;
}

static const char *meta_name(const char *meta_backend)
{
    return meta_backend == NULL || meta_backend[0] == '\0' ? "sqlite" : meta_backend;
}

static void marker_path(char *out, size_t cap, const char *root)
{
    snprintf(out, cap, "%s/%s", root, STORE_MARKER_NAME);
}

/* The value of key= in text (one key=value a line) into out; false when
 * absent or too long. */
static bool marker_value(const char *text, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    const char *line = text;
    while (line != NULL && *line != '\0') {
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        if (len > klen && strncmp(line, key, klen) == 0 && line[klen] == '=') {
            size_t vlen = len - klen - 1;
            if (vlen == 0 || vlen >= cap) {
                return false;
            }
            memcpy(out, line + klen + 1, vlen);
            out[vlen] = '\0';
            return true;
        }
        line = end != NULL ? end + 1 : NULL;
    }
    return false;
}

enum berth_err store_marker_check(const char *root, const char *meta_backend,
                                  const char *blob_backend, char *why, size_t cap)
{
    char path[STORE_PATH_MAX + 32];
    marker_path(path, sizeof(path), root);
    char *text = NULL;
    size_t len = 0;
    enum berth_err rc = file_read_bounded(path, 4096, &text, &len);
    if (rc == BERTH_ENOTFOUND) {
        return BERTH_OK;
    }
    if (rc != BERTH_OK) {
        snprintf(why, cap, "cannot read %s (%s)", path, berth_strerror(rc));
        return rc == BERTH_ETOOBIG ? BERTH_ECONFLICT : rc;
    }
    char meta[64], blobs[64];
    bool ok = marker_value(text, "meta.backend", meta, sizeof(meta)) &&
              marker_value(text, "storage.backend", blobs, sizeof(blobs));
    free(text);
    if (!ok) {
        snprintf(why, cap, "%s is malformed (it needs meta.backend= and storage.backend= lines)",
                 path);
        return BERTH_ECONFLICT;
    }
    const char *want_meta = meta_name(meta_backend);
    const char *want_blobs = blob_name(blob_backend);
    if (strcmp(meta, want_meta) != 0) {
        snprintf(why, cap,
                 "the data directory %s belongs to meta.backend %s (%s) but this configuration "
                 "has meta.backend %s: give this command the configuration (file or BERTH_META_* "
                 "environment) the server uses",
                 root, meta, path, want_meta);
        return BERTH_ECONFLICT;
    }
    if (strcmp(blobs, want_blobs) != 0) {
        snprintf(why, cap,
                 "the data directory %s belongs to storage.backend %s (%s) but this "
                 "configuration has storage.backend %s: give this command the configuration "
                 "(file or BERTH_STORAGE_* environment) the server uses",
                 root, blobs, path, want_blobs);
        return BERTH_ECONFLICT;
    }
    return BERTH_OK;
}

enum berth_err store_marker_write(const char *root, const char *meta_backend,
                                  const char *blob_backend)
{
    char path[STORE_PATH_MAX + 32];
    marker_path(path, sizeof(path), root);
    struct stat sb;
    if (stat(path, &sb) == 0) {
        return BERTH_OK;
    }
    char text[256];
    int n = snprintf(text, sizeof(text),
                     "# the storage backends this berth data directory belongs to; berth "
                     "refuses to open it with others\nmeta.backend=%s\nstorage.backend=%s\n",
                     meta_name(meta_backend), blob_name(blob_backend));
    if (n < 0 || (size_t)n >= sizeof(text)) {
        return BERTH_ETOOBIG;
    }
    return file_write_atomic(path, text, (size_t)n, 0644, true);
}

bool store_root_has_blobs(const char *root)
{
    char blobs[STORE_PATH_MAX + 16];
    snprintf(blobs, sizeof(blobs), "%s/blobs", root);
    DIR *algs = opendir(blobs);
    if (algs == NULL) {
        return false;
    }
    bool found = false;
    struct dirent *a;
    while (!found && (a = readdir(algs)) != NULL) {
        if (a->d_name[0] == '.') {
            continue;
        }
        char alg[STORE_PATH_MAX + 300];
        snprintf(alg, sizeof(alg), "%s/%s", blobs, a->d_name);
        DIR *pres = opendir(alg);
        if (pres == NULL) {
            continue;
        }
        struct dirent *p;
        while (!found && (p = readdir(pres)) != NULL) {
            if (p->d_name[0] == '.') {
                continue;
            }
            char pre[STORE_PATH_MAX + 600];
            snprintf(pre, sizeof(pre), "%s/%s", alg, p->d_name);
            DIR *files = opendir(pre);
            if (files == NULL) {
                continue;
            }
            struct dirent *f;
            while ((f = readdir(files)) != NULL) {
                if (f->d_name[0] != '.') {
                    found = true;
                    break;
                }
            }
            closedir(files);
        }
        closedir(pres);
    }
    closedir(algs);
    return found;
}

bool store_marker_present(const char *root)
{
    char path[STORE_PATH_MAX + 32];
    marker_path(path, sizeof(path), root);
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Whether the directory path holds any entry. */
static bool dir_has_entries(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL) {
        return false;
    }
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        found = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    }
    closedir(d);
    return found;
}

bool store_root_has_s3_state(const char *root)
{
    static const char *const dirs[] = {"s3cache", "s3mpu"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        char path[STORE_PATH_MAX + 16];
        snprintf(path, sizeof(path), "%s/%s", root, dirs[i]);
        if (dir_has_entries(path)) {
            return true;
        }
    }
    return false;
}

/* Where the blobs are, for messages: s3://bucket/prefix or the directory. */
static void pairing_where(const struct store *st, const struct store_options *opt, bool s3,
                          char *out, size_t cap)
{
    if (s3) {
        snprintf(out, cap, "s3://%s/%s", opt->s3.bucket != NULL ? opt->s3.bucket : "",
                 opt->s3.prefix != NULL ? opt->s3.prefix : "");
    } else {
        snprintf(out, cap, "%s/blobs", st->root);
    }
}

/* Refuse: the blobs' identity in_blobs is not the database's in_db. */
static enum berth_err pairing_refused(const struct store *st, const struct store_options *opt,
                                      const char *in_blobs, const char *in_db)
{
    bool s3 = st->pair_s3;
    char where[STORE_PATH_MAX + 1100];
    pairing_where(st, opt, s3, where, sizeof(where));
    char id_at[STORE_PATH_MAX + 1200];
    snprintf(id_at, sizeof(id_at), "%s %s%s", s3 ? "the object" : "the file",
             s3 ? (opt->s3.prefix != NULL ? opt->s3.prefix : "") : where,
             s3 ? "berth-store-id" : "/berth-store-id");
    const char *cfg = s3 ? "meta.*, storage.s3.*" : "meta.*, root";
    if (in_db[0] != '\0') {
        log_error("event=store_refused blobs=%s msg=\"the blobs under %s belong to another "
                  "registry's database (their berth-store-id is %s, this database's %s is %s): "
                  "give this command the configuration the server uses (%s); nothing was "
                  "created, altered or deleted\"",
                  where, where, in_blobs, META_COPY_STORE_SETTING, in_db, cfg);
    } else {
        log_error("event=store_refused blobs=%s msg=\"the blobs under %s belong to a registry "
                  "whose database is not this one (their berth-store-id is %s; this database "
                  "has none: a new or another database, whose garbage collection would delete "
                  "those blobs): give this command the configuration the server uses (%s), or "
                  "use berth migrate to copy a registry; only if this database is meant to take "
                  "these blobs over, delete %s; nothing was created, altered or deleted\"",
                  where, where, in_blobs, cfg, id_at);
    }
    return BERTH_ECONFLICT;
}

enum berth_err store_pairing_check(struct store *st, const struct store_options *opt)
{
    st->pair_pending = false;
    st->pair_s3 = strcmp(blob_name(opt->blob_backend), "s3") == 0;
    /* the filesystem's blobs with SQLite: the database is a file of the
     * same root, which its marker covers */
    if (!blob_store_id_supported(st->blobs) ||
        (!st->pair_s3 && strcmp(st->meta_backend, "sqlite") == 0)) {
        return BERTH_OK;
    }
    char where[STORE_PATH_MAX + 1100];
    pairing_where(st, opt, st->pair_s3, where, sizeof(where));
    enum berth_err rc = blob_store_id_get(st->blobs, st->pair_blobs);
    if (rc != BERTH_OK) {
        log_warn("event=store_pairing_unchecked blobs=%s err=%s msg=\"the blob store's identity "
                 "cannot be read now; checked at the next start\"",
                 where, berth_strerror(rc));
        return BERTH_OK;
    }
    /* read without creating or migrating anything: a refused start leaves
     * the database as it was (a SQLite file yet to be made has none) */
    char in_db[33] = "";
    struct stat sb;
    if (strcmp(st->meta_backend, "sqlite") != 0 || stat(st->db_path, &sb) == 0) {
        rc = meta_copy_store_id_peek(st->meta_backend, st->meta_target, in_db);
        if (rc != BERTH_OK) {
            return rc;
        }
    }
    if (st->pair_blobs[0] != '\0' && strcmp(st->pair_blobs, in_db) != 0) {
        return pairing_refused(st, opt, st->pair_blobs, in_db);
    }
    st->pair_pending = true;
    return BERTH_OK;
}

enum berth_err store_pairing_record(struct store *st, const struct store_options *opt)
{
    if (!st->pair_pending) {
        return BERTH_OK;
    }
    st->pair_pending = false;
    struct meta *m;
    char in_db[33] = "";
    enum berth_err rc = store_meta_get(st, &m);
    if (rc == BERTH_OK) {
        rc = meta_copy_store_id(m, false, in_db);
    }
    if (rc == BERTH_OK && in_db[0] == '\0') {
        rc = meta_copy_store_id(m, true, in_db);
    }
    if (rc != BERTH_OK) {
        return rc;
    }
    /* another start may have paired this database meanwhile */
    if (st->pair_blobs[0] != '\0' && strcmp(st->pair_blobs, in_db) != 0) {
        return pairing_refused(st, opt, st->pair_blobs, in_db);
    }
    if (st->pair_blobs[0] == '\0') {
        char where[STORE_PATH_MAX + 1100];
        pairing_where(st, opt, st->pair_s3, where, sizeof(where));
        rc = blob_store_id_put(st->blobs, in_db);
        if (rc != BERTH_OK) {
            log_warn("event=store_pairing_unchecked blobs=%s err=%s msg=\"the blob store's "
                     "identity cannot be recorded now; recorded at the next start\"",
                     where, berth_strerror(rc));
        } else {
            log_info("event=store_paired blobs=%s store_id=%s", where, in_db);
        }
    }
    return BERTH_OK;
}
