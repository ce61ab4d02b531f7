/*
 * Store helpers for the unit tests of storage/store and above: a store in
 * a fresh temporary directory and its removal, and where the filesystem
 * backend keeps a stage. Failures are reported through unit.h's CHECK
 * macros. Single-threaded.
 */
#ifndef BERTH_UNIT_STORE_H
#define BERTH_UNIT_STORE_H

#include "unit.h"
#include "unit_pg.h"

#include "storage/blob/blob.h"
#include "storage/spec/digest.h"
#include "common/fileio.h"
#include "storage/meta/meta.h"
#include "storage/store/store.h"
#include "storage/store/upload.h"

/* Room for a root path from unit_store_new. */
#define UNIT_ROOT_MAX 512

/* Open, creating it when new, the store at root: fsync as asked,
 * repositories created on first push, 4 MiB manifests, metadata on the
 * run's backend (unit_pg.h). NULL (a failed check) on error. */
static inline struct store *unit_store_open_fsync(const char *root, bool fsync)
{
    char target[1200];
    const char *backend = unit_meta_target(root, target, sizeof(target));
    struct store_options opt = {.root = root,
                                .fsync = fsync,
                                .auto_create = true,
                                .upload_expiry_ms = 86400000,
                                .manifest_max = 4 << 20,
                                .meta_backend = backend,
                                .meta_target = strcmp(backend, "sqlite") == 0 ? NULL : target};
    struct store *st = NULL;
    CHECK_INT(store_open(&opt, &st), BERTH_OK);
    return st;
}

/* unit_store_open_fsync without fsync. */
static inline struct store *unit_store_open(const char *root)
{
    return unit_store_open_fsync(root, false);
}

/* A store in a fresh temporary directory, whose path is written to root
 * (cap: UNIT_ROOT_MAX). The test removes it with unit_store_remove. */
static inline struct store *unit_store_new(char *root, size_t cap)
{
    snprintf(root, cap, "%s", unit_tmpdir());
    return unit_store_open(root);
}

/* Close st (NULL: already closed) and remove root with all it holds. */
static inline void unit_store_remove(struct store *st, const char *root)
{
    store_close(st);
    CHECK_INT(file_remove_tree(root), BERTH_OK);
}

/* The file of a stage (an upload session's data, a staged manifest) in
 * the filesystem backend's layout under root, into out. */
static inline void unit_stage_path(const char *root, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/uploads/%s", root, name);
}

#endif
