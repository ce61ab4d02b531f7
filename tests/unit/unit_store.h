/*
 * Store helpers for the storage unit tests: a store in a fresh temporary
 * directory and its removal, blobs pushed through upload sessions as a
 * client pushes them, and an OCI image manifest. Failures are reported
 * through unit.h's CHECK macros. Single-threaded.
 */
#ifndef BERTH_UNIT_STORE_H
#define BERTH_UNIT_STORE_H

#include "unit.h"

#include "storage/blob/blob.h"
#include "storage/spec/digest.h"
#include "common/fileio.h"
#include "storage/spec/manifest.h"
#include "storage/meta/meta.h"
#include "storage/registry/registry.h"
#include "storage/store/store.h"
#include "storage/store/upload.h"

/* Room for a root path from unit_store_new. */
#define UNIT_ROOT_MAX 512

/* Open, creating it when new, the store at root: no fsync, repositories
 * created on first push, 4 MiB manifests. NULL (a failed check) on error. */
static inline struct store *unit_store_open(const char *root)
{
    struct store_options opt = {.root = root,
                                .fsync = false,
                                .auto_create = true,
                                .upload_expiry_ms = 86400000,
                                .manifest_max = 4 << 20};
    struct store *st = NULL;
    CHECK_INT(store_open(&opt, &st), BERTH_OK);
    return st;
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

/* Push data into repo (created when missing) through an upload session,
 * as a client does; returns its sha256 digest. */
static inline struct digest unit_push_blob(struct store *st, const char *repo, const char *data)
{
    struct meta_repo r;
    struct registry_status s;
    struct digest d;
    digest_buffer(DIGEST_SHA256, data, strlen(data), &d);
    CHECK_INT(registry_repo(st, repo, true, &r, &s), BERTH_OK);
    char uuid[RAND_UUID_LEN + 1];
    CHECK_INT(upload_create(st, r.id, DIGEST_SHA256, uuid), BERTH_OK);
    struct upload *u = NULL;
    CHECK_INT(upload_acquire(st, uuid, r.id, &u), BERTH_OK);
    if (u == NULL) {
        return d;
    }
    CHECK_INT(upload_write(u, data, strlen(data)), BERTH_OK);
    struct meta_blob b = {0};
    CHECK_INT(upload_complete(u, &d, &b), BERTH_OK);
    CHECK_INT(b.size, (long long)strlen(data));
    return d;
}

/* An OCI image manifest over a config and one layer, written to out;
 * returns out. */
static inline const char *unit_image_manifest(char *out, size_t cap, const struct digest *config,
                                              size_t config_len, const struct digest *layer,
                                              size_t layer_len)
{
    snprintf(out, cap,
             "{\"schemaVersion\":2,\"mediaType\":\"" MANIFEST_OCI "\","
             "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
             "\"digest\":\"%s\",\"size\":%zu},"
             "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\","
             "\"digest\":\"%s\",\"size\":%zu}]}",
             config->str, config_len, layer->str, layer_len);
    return out;
}

#endif
