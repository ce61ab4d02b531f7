/*
 * Registry helpers for the unit tests of storage/registry and above: blobs
 * pushed through upload sessions as a client pushes them, and an OCI image
 * manifest. Single-threaded.
 */
#ifndef BERTH_UNIT_REGISTRY_H
#define BERTH_UNIT_REGISTRY_H

#include "unit_store.h"

#include "storage/registry/registry.h"
#include "storage/spec/manifest.h"

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
