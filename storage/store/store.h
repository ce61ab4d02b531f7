/*
 * The store: one data root, the blob store (storage/blob) and the metadata
 * database (storage/meta, berth.db) opened together. It hands each thread
 * its own metadata connection and owns the in-memory upload hash states
 * (upload.h). Thread-safe; all calls may block on the disk or the
 * database.
 */
#ifndef BERTH_STORE_H
#define BERTH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/blob/blob.h"
#include "storage/spec/digest.h"
#include "common/err.h"

struct blob_store;
struct meta;
struct store;

struct store_options {
    const char *root;
    bool fsync;               /* fsync blobs, directories and commits */
    bool auto_create;         /* create repositories on first push */
    int64_t upload_expiry_ms; /* sessions idle longer than this may be removed */
    size_t manifest_max;      /* bytes */
    /* storage.min_free_bytes: what a blob fetched from an upstream (the
     * pull-through cache) leaves free on the data disk at least */
    uint64_t min_free_bytes;
    /* accept manifests whose references are not in the repository
     * (storage.sparse_manifests) */
    bool sparse_manifests;
    /* The metadata backend: "sqlite" (or NULL: <root>/berth.db) or
     * "postgres", with meta_target its libpq connection string. */
    const char *meta_backend;
    const char *meta_target;
    /* managed signing's <profile>.pem files; NULL or "": none */
    const char *signing_profiles_dir;
    /* The blob backend: "filesystem" (or NULL) or "s3" with s3 set. */
    const char *blob_backend;
    struct blob_s3_options s3;
    /* The archive tier (storage/store/tier.h): a directory for the bytes
     * of blobs only archived images use (a filesystem blob store of its
     * own, possibly on other media); NULL or "": no tier, archiving is a
     * status only. With the S3 backend the tier is an S3 blob store of its
     * own (the options of s3 with archive_s3_bucket and archive_s3_prefix)
     * and archive_path the local directory of its stages and cache. */
    const char *archive_path;
    const char *archive_s3_bucket; /* NULL or "": s3.bucket */
    /* NULL or "": <s3.prefix>archive/. The tier's keys must not be the
     * blob store's: the same bucket and prefix is BERTH_EINVAL. */
    const char *archive_s3_prefix;
    /* NULL or "": none. The x-amz-storage-class of the tier's blob objects. */
    const char *archive_s3_storage_class;
    int archive_zstd_level; /* 0: archive copies as they are; 1..19: zstd where it shrinks */
    /* Refuse (BERTH_ECONFLICT) to create a new SQLite database in a root
     * that already holds published blobs even when the root's marker says
     * SQLite: the database is lost, and garbage collection must not run
     * over it (berth gc sets it). A root without a marker is refused so
     * whatever this says (see store_open). */
    bool existing_meta_only;
    /* scan.quota_seconds in ms (0: no quota): a manifest push that restores
     * an archived image and names no quota of its own (the pull-through
     * cache, bundle import, managed signing) rescans it under this one
     * (struct registry_put's scan_quota_ms) */
    int64_t scan_quota_ms;
};

/* Open (creating directories and database as needed) the store at
 * opt->root. Publishes nothing. BERTH_EIO/BERTH_EDB with a logged reason.
 * BERTH_ECONFLICT, before anything is created or deleted, when the root's
 * backend marker names other backends than opt (store_marker_check); when
 * a new SQLite database would be created beside published blobs or the S3
 * backend's local state (a root from before the marker, whose metadata is
 * in PostgreSQL; or, with opt->existing_meta_only, any root); or when a
 * root from before the marker with the S3 backend's state is opened with
 * the filesystem backend. A root without a marker gets one for opt's
 * backends once it is open. */
enum berth_err store_open(const struct store_options *opt, struct store **out);

/* Close: every thread that used the store must have stopped using it. */
void store_close(struct store *st);

/* Options the store was opened with (borrowed). */
const struct store_options *store_options(const struct store *st);

/* The calling thread's metadata connection, opened on first use and
 * closed when the thread exits or the store closes. NULL on failure. */
struct meta *store_meta(struct store *st);

/* store_meta as a result: BERTH_EUNAVAILABLE when the connection cannot be
 * opened (no descriptor or memory left, the PostgreSQL server down: the
 * driver logged why), which callers report and retry as "unavailable",
 * never as a database error. */
enum berth_err store_meta_get(struct store *st, struct meta **out);

/* The blob store (borrowed; valid until store_close). Publishing and
 * removing blobs happen inside a metadata write transaction. */
struct blob_store *store_blobs(struct store *st);

/* The archive tier's blob store (borrowed), or NULL when there is none.
 * Its blobs are archive copies: the bytes as they are or a zstd frame, as
 * the blob row's archive_codec says (tier.h); never served as they are. */
struct blob_store *store_archive(struct store *st);

/* Finish removals (blob_recover) in the blob store and the archive tier:
 * blobs moved aside whose row still exists and names that tier are put
 * back (a crash between the move and the commit), the rest are
 * deleted. Called inside a write transaction (garbage collection), or at
 * start-up before any request is served. *restored and *deleted
 * (optional) receive the counts. */
enum berth_err store_recover_trash(struct store *st, int64_t *restored, int64_t *deleted);

/* store_recover_trash in a write transaction of its own, for a reader that
 * found a blob file missing while its row exists: a `berth gc` killed
 * beside the server between moving garbage aside and its commit leaves
 * the rows and the files in trash/ (the server's own pass, or a restart,
 * would put them back later). True when a file was put back, so the read
 * is worth trying again; failures are logged. */
bool store_settle_trash(struct store *st);

/* ---- the backend marker ----
 * <root>/berth.backend records the metadata backend (meta.backend) and
 * the blob backend (storage.backend) the root belongs to, so that a
 * command run without the server's configuration cannot open it with the
 * default SQLite database (every blob would look orphaned). */
#define STORE_MARKER_NAME "berth.backend"

/* BERTH_OK when root has no marker or its marker names meta_backend and
 * blob_backend (NULL or "": sqlite, filesystem); BERTH_ECONFLICT when it
 * names others or is malformed, with a message naming both in why;
 * BERTH_EIO when it cannot be read. */
enum berth_err store_marker_check(const char *root, const char *meta_backend,
                                  const char *blob_backend, char *why, size_t cap);

/* Write root's marker durably (temp file, fsync, rename, directory fsync)
 * unless it has one. */
enum berth_err store_marker_write(const char *root, const char *meta_backend,
                                  const char *blob_backend);

/* Whether root's filesystem blob store (<root>/blobs) holds any blob. */
bool store_root_has_blobs(const char *root);

/* Whether root has a marker at all (roots from before it have none). */
bool store_marker_present(const char *root);

/* Whether root holds the S3 blob backend's local state (an entry in
 * <root>/s3cache or <root>/s3mpu): it was opened with storage.backend s3
 * and pushed to. */
bool store_root_has_s3_state(const char *root);

/* ---- the space reserve ----
 * <root>/reserve holds STORE_RESERVE_BYTES of the data disk aside, so that
 * garbage collection, whose deletions are database writes, can still run
 * when the disk is full: it releases the reserve, frees space, and takes
 * it again. */
#define STORE_RESERVE_BYTES (8 << 20)

/* Take the reserve if it is not held (store_open does). True when it is
 * held afterwards; false when there is no room for it (or no support). */
bool store_reserve_take(struct store *st);

/* Give the reserve back to the disk. True when there was one. */
bool store_reserve_release(struct store *st);

/* Whether the reserve is held now (a read: nothing is taken). */
bool store_reserve_held(struct store *st);

/* Whether the data disk is full (less than 1 MiB available to berth);
 * *avail (optional) receives the bytes available. */
bool store_disk_full(struct store *st, uint64_t *avail);

/* A delete failed in the database: when the disk is full, release the
 * reserve (and log it) so that the delete can be tried once more. True
 * when it was released. Deleting images and repositories is how an
 * operator makes garbage for a pass to free. */
bool store_reserve_release_to_delete(struct store *st);

#endif
