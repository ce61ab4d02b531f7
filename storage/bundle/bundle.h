/*
 * Bundles: images carried across an air gap as an OCI image layout
 * (oci-layout, index.json, blobs/<alg>/<hex>), packed as a tar (plain,
 * gzip or zstd) or kept as a directory. bundle_export writes one from the
 * store; bundle_import (import.c) reads one into it, through the registry's
 * rules so that both APIs see the images. Single-threaded per call; both
 * block on disk and database and are safe while `berth serve` runs on the
 * same root (the store is multi-process safe).
 */
#ifndef BERTH_BUNDLE_H
#define BERTH_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct store;

/* The annotation of index.json naming a tag ("repo:tag" in berth's own
 * bundles, a bare tag in skopeo's), and berth's naming the repository of an
 * untagged image or referrer. */
#define BUNDLE_REF_NAME "org.opencontainers.image.ref.name"
#define BUNDLE_REPOSITORY "io.berth.repository"

/* Where a long run is, for a progress line (called at most a few times a
 * second, and once at the end with done set). */
struct bundle_progress {
    int64_t blobs;       /* blobs written (export) or entries read (import) */
    int64_t bytes;       /* bytes of them */
    int64_t total;       /* blobs to fetch (mirror), 0 when not known */
    int64_t bytes_total; /* bytes of them, 0 when not known */
    bool done;
    const char *item;   /* the image being written (mirror), or NULL */
    int64_t items_done; /* images written (mirror) */
    int64_t items_total;
};
typedef void (*bundle_progress_fn)(void *arg, const struct bundle_progress *p);

/* One image to export: a repository and a tag or digest in it. */
struct bundle_ref {
    const char *repo;
    const char *reference;
};

struct bundle_export_stats {
    int64_t images;    /* manifests listed in index.json (the images asked for and referrers) */
    int64_t manifests; /* manifests written (children of indexes included) */
    int64_t blobs;     /* blobs written, manifests included */
    int64_t bytes;     /* bytes of them */
    int64_t
        blobs_skipped; /* blobs and manifests left out: the previous bundle (--since) has them */
    int64_t bytes_skipped;
};

/* Write the images refs name (count of them), every child of an index, and
 * the referrers (signatures, SBOMs, ...) of each manifest written, with
 * their blobs, as an OCI image layout packed as tar into path (zstd
 * compressed when zstd is set). Tags become index.json entries annotated
 * BUNDLE_REF_NAME "repo:tag"; digests and referrers entries annotated
 * BUNDLE_REPOSITORY. The file is written under a temporary name and renamed
 * into place when complete: a failed export leaves nothing at path.
 * since, when not NULL, is a previous bundle (a tar, tar.gz, tar.zst or
 * directory OCI layout): blobs and manifests it holds are left out, while
 * index.json still lists every image, so that importing this delta into a
 * store that holds the previous bundle gives every image (the importer
 * finds what the delta lacks in the store, or refuses the delta naming
 * the missing blob). progress (may be NULL) sees the run. On failure a one-line reason is in
 * why. BERTH_ENOTFOUND (an image or blob missing), BERTH_EINVAL, BERTH_EIO,
 * BERTH_EDB, BERTH_ENOMEM. */
enum berth_err bundle_export(struct store *st, const struct bundle_ref *refs, size_t count,
                             const char *path, bool zstd, const char *since,
                             bundle_progress_fn progress, void *progress_arg,
                             struct bundle_export_stats *stats, char *why, size_t why_cap);

/* An image reference of another registry, as docker reads one:
 * "[host[:port]/]repo[:tag|@digest]". A first component with a '.' or ':'
 * or "localhost" is the registry, else it is Docker Hub (docker.io; a
 * one-component repository gets "library/"); no tag or digest means
 * "latest". */
struct bundle_remote_ref {
    char host[256];      /* "docker.io", "registry.example:5000" */
    char repo[256];      /* "library/alpine", "team/app" */
    char reference[160]; /* the tag, or the digest */
    bool by_digest;
};

/* Parse text into out; false (why says what is wrong) when it is not a
 * reference. Pure. */
bool bundle_remote_ref_parse(const char *text, struct bundle_remote_ref *out, char *why,
                             size_t why_cap);

/* Credentials for a registry host, or false for none. user and password
 * are copied by the caller at once. */
typedef bool (*bundle_creds_fn)(void *arg, const char *host, const char **user,
                                const char **password);

/* The CA certificates (a PEM file) trusted for one registry of a mirror:
 * registry is its host as the references name it ("host[:port]",
 * "docker.io"). */
struct bundle_registry_ca {
    const char *registry;
    const char *file;
};

/* What a mirror is asked to do. */
struct bundle_mirror_options {
    const char *const *platforms; /* "os/arch[/variant]" filters of indexes, or NULL: all */
    size_t platform_count;
    bool plain_http;     /* http:// to every registry (else https://) */
    const char *ca_file; /* PEM CA certificates trusted instead of the system's, or NULL */
    const struct bundle_registry_ca *registry_cas; /* per registry: instead of ca_file */
    size_t registry_ca_count;
    int64_t timeout_ms;
    size_t manifest_max;
    bundle_creds_fn creds; /* may be NULL: anonymous */
    void *creds_arg;
    const char *since; /* a previous bundle (as bundle_export), or NULL */
    int parallel;      /* blobs fetched at once (1-64); 0: 4 */
    bundle_progress_fn progress;
    void *progress_arg;
};

struct bundle_mirror_stats {
    struct bundle_export_stats written;
    int64_t sparse_indexes; /* indexes written with only the platforms asked for */
};

/* Pull the images refs name (count of them) straight from their
 * registries (anonymous, Basic or the Docker token flow with the
 * credentials opt->creds gives) into a bundle at path in the same format
 * as bundle_export: every child of an index (those of the platforms asked
 * for, when opt->platforms is set: the index itself is kept byte for byte,
 * so a berth importing it needs storage.sparse_manifests), config and
 * layers, and the referrers of every manifest (the OCI referrers API, or
 * the referrers tag schema where the registry has no such API). Every
 * manifest and blob is verified against its digest (and size) as it
 * comes; a manifest pulled by tag against the registry's
 * Docker-Content-Digest. index.json names each image as berth export
 * does ("repo:tag", the registry host left out). The manifests are
 * walked first (opt->parallel references at a time, each with the
 * children of its indexes; then in order), each kept in "<path>.parts/"
 * (a later run reads one it needs by digest from there, verified, and
 * asks the registry only where each tag points now); then the blobs are fetched, opt->parallel at a
 * time, into
 * "<path>.parts/" (a part file left there by an interrupted run is
 * resumed: a complete one kept, a partial one hashed again and only the
 * rest asked for with a Range); then the bundle is written from them and
 * the directory removed. On any failure nothing is left at path (the
 * part files are kept for the next run) and why says what failed. BERTH_EINVAL, BERTH_ENOTFOUND,
 * BERTH_EDENIED, BERTH_EDIGEST, BERTH_EIO, BERTH_ENOMEM. */
enum berth_err bundle_mirror(const char *const *refs, size_t count, const char *path, bool zstd,
                             const struct bundle_mirror_options *opt,
                             struct bundle_mirror_stats *stats, char *why, size_t why_cap);

/* What an import is asked to do. */
struct bundle_import_options {
    const char *repo;            /* NULL, or the repository every image of the bundle goes to */
    bundle_progress_fn progress; /* may be NULL */
    void *progress_arg;
};

struct bundle_import_stats {
    int64_t images;        /* index.json entries imported */
    int64_t repos;         /* repositories they went to */
    int64_t blobs_read;    /* blobs in the bundle (each verified) */
    int64_t manifests_new; /* manifests new in their repository */
    int64_t blobs_new;     /* blobs new in the store (manifests not counted) */
    int64_t bytes_new;     /* bytes of them */
    int64_t blobs_linked;  /* blobs the store had, newly linked to a repository */
    int64_t tags_set;      /* tags created or moved */
};

/* Load the bundle at path (an OCI image layout directory, or one packed as
 * tar, tar.gz or tar.zst: berth export's and skopeo's oci-archive: output;
 * or a docker save tar, each image of its manifest.json becoming an OCI
 * manifest over its config and layer tars, tagged with its RepoTags) into
 * the store. Every blob entry is streamed into a stage while its
 * digest is checked, and every manifest index.json reaches is parsed and
 * its references found in the bundle or the store, before anything is
 * published: a corrupt, truncated or incomplete bundle is refused with
 * nothing published, why naming the bad entry. Then, through the
 * registry's rules, children before indexes and blobs before manifests,
 * blobs are published and linked and manifests put with their tags.
 * Repositories come from the ref.name annotation ("repo:tag"; a bare tag
 * needs opt->repo), else BUNDLE_REPOSITORY, else opt->repo, which wins
 * when given. Importing what the store holds already publishes nothing
 * (stats say so). BERTH_EINVAL (a bad bundle), BERTH_EDIGEST, BERTH_ENOTFOUND
 * (a missing blob or repository), BERTH_EDENIED (an immutable tag),
 * BERTH_EIO, BERTH_EDB, BERTH_ENOMEM. */
enum berth_err bundle_import(struct store *st, const char *path,
                             const struct bundle_import_options *opt,
                             struct bundle_import_stats *stats, char *why, size_t why_cap);

#endif
