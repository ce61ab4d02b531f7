/*
 * Metadata helpers for the unit tests of storage/meta: a database in a fresh
 * temporary directory, and manifest rows made without the registry's
 * rules. Single-threaded.
 */
#ifndef BERTH_UNIT_META_H
#define BERTH_UNIT_META_H

#include "unit.h"
#include "unit_pg.h"

#include "common/fileio.h"
#include "storage/meta/meta.h"

/* Open the database of the data root whose SQLite file would be db_path
 * (<root>/berth.db), on the run's backend (unit_pg.h). */
static inline enum berth_err unit_meta_open_db(const char *db_path, struct meta **out)
{
    char root[1024];
    snprintf(root, sizeof(root), "%s", db_path);
    char *slash = strrchr(root, '/');
    if (slash != NULL) {
        *slash = '\0';
    }
    char target[1200];
    const char *backend = unit_meta_target(root, target, sizeof(target));
    return meta_open_backend(backend, target, false, out);
}

/* Open (creating it when new) the database of root: <root>/berth.db, or
 * root's schema on a PostgreSQL run. */
static inline struct meta *unit_meta_open(const char *root)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/berth.db", root);
    struct meta *m = NULL;
    CHECK_INT(unit_meta_open_db(path, &m), BERTH_OK);
    return m;
}

/* A database in a fresh temporary directory, whose path is written to
 * root (cap bytes). The test removes it with unit_meta_remove. */
static inline struct meta *unit_meta_new(char *root, size_t cap)
{
    snprintf(root, cap, "%s", unit_tmpdir());
    return unit_meta_open(root);
}

/* Close m (NULL: already closed) and remove root with all it holds. */
static inline void unit_meta_remove(struct meta *m, const char *root)
{
    meta_close(m);
    CHECK_INT(file_remove_tree(root), BERTH_OK);
}

/* A new repository called name, with scan-on-push on or off. */
static inline struct meta_repo unit_meta_repo(struct meta *m, const char *name, bool scan_on_push)
{
    struct meta_repo r;
    memset(&r, 0, sizeof(r));
    CHECK_INT(meta_repo_create(m, name, 1000, &r), BERTH_OK);
    if (scan_on_push) {
        CHECK_INT(meta_repo_set_scan_on_push(m, r.id, true), BERTH_OK);
        CHECK_INT(meta_repo_get(m, name, &r), BERTH_OK);
    }
    return r;
}

/* A manifest row (and its content blob's row) in repository repo_id:
 * an image with a config of config_type, or an index. Returns its id. */
static inline int64_t unit_meta_add_manifest(struct meta *m, int64_t repo_id, const char *digest,
                                             bool is_index, const char *config_type)
{
    int64_t blob_id = 0;
    CHECK_INT(meta_blob_upsert(m, digest, 100, 1000, &blob_id), BERTH_OK);
    struct meta_manifest mf;
    memset(&mf, 0, sizeof(mf));
    mf.repo_id = repo_id;
    mf.blob_id = blob_id;
    snprintf(mf.digest, sizeof(mf.digest), "%s", digest);
    snprintf(mf.media_type, sizeof(mf.media_type), "%s",
             is_index ? "application/vnd.oci.image.index.v1+json"
                      : "application/vnd.oci.image.manifest.v1+json");
    snprintf(mf.config_media_type, sizeof(mf.config_media_type), "%s", config_type);
    mf.is_index = is_index;
    mf.size = 100;
    mf.pushed_at = 1000;
    int64_t id = 0;
    CHECK_INT(meta_manifest_insert(m, &mf, NULL, &id), BERTH_OK);
    return id;
}

/* A distinct well-formed digest for n (eight rotating buffers). */
static inline const char *unit_meta_digest(int n)
{
    static char buf[8][80];
    char *d = buf[n % 8];
    snprintf(d, sizeof(buf[0]), "sha256:%064d", n);
    return d;
}

#endif
