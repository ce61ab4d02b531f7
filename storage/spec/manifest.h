/*
 * Manifest parsing: Docker schema 2 manifests and manifest lists, OCI image
 * manifests and indexes, artifacts. Validates the structure a registry
 * relies on and extracts references (config, layers, child manifests,
 * subject). Unknown media types of configs, layers and artifacts are
 * accepted, as the image spec requires. Pure; thread-safe.
 */
#ifndef BERTH_MANIFEST_H
#define BERTH_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/spec/digest.h"
#include "common/err.h"

#define MANIFEST_OCI "application/vnd.oci.image.manifest.v1+json"
#define MANIFEST_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MANIFEST_DOCKER "application/vnd.docker.distribution.manifest.v2+json"
#define MANIFEST_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"

/* Media types longer than this are refused (RFC 6838 allows 127/127). */
#define MANIFEST_MEDIA_TYPE_MAX 255

/* Most descriptors (layers or children) accepted in one manifest. */
#define MANIFEST_MAX_REFS 10000

struct manifest_desc {
    struct digest digest;
    char media_type[MANIFEST_MEDIA_TYPE_MAX + 1];
    int64_t size;
    bool non_distributable; /* foreign/non-distributable layer: never pushed */
};

struct manifest_info {
    bool is_index;
    char media_type[MANIFEST_MEDIA_TYPE_MAX + 1];    /* effective manifest media type */
    char artifact_type[MANIFEST_MEDIA_TYPE_MAX + 1]; /* the artifactType field, or "" */
    bool has_config;
    struct manifest_desc config;
    struct manifest_desc *refs; /* layers (images) or manifests (indexes) */
    size_t ref_count;
    bool has_subject;
    struct manifest_desc subject;
    char *annotations; /* compact JSON of the annotations object, or NULL */
    int64_t layers_size;
};

/* True for the four manifest media types berth stores. */
bool manifest_is_known_type(const char *media_type);

/* Parse len bytes of a manifest. content_type is the request's
 * Content-Type (parameters ignored; NULL when absent): it supplies the media
 * type when the body has no mediaType field, and must agree with it when
 * both name a manifest type. On BERTH_EINVAL a one-line reason is written to
 * why. *out is owned by the caller (manifest_info_free). */
enum berth_err manifest_parse(const char *bytes, size_t len, const char *content_type,
                              struct manifest_info **out, char *why, size_t why_cap);

void manifest_info_free(struct manifest_info *info);

/* The artifact type a referrers response reports for this manifest: the
 * artifactType field, else the config media type (images), else "". */
const char *manifest_effective_artifact_type(const struct manifest_info *info);

#endif
