/*
 * The store: one data root holding content-addressed blob files
 * (blobs/<alg>/<2 hex>/<hex>), upload session files (uploads/<uuid>) and
 * the metadata database (berth.db). It hands each thread its own metadata
 * connection and owns the in-memory upload hash states. Thread-safe; all
 * calls may block on the disk or the database.
 */
#ifndef BERTH_STORE_H
#define BERTH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/spec/digest.h"
#include "common/err.h"

struct meta;
struct store;

struct store_options {
    const char *root;
    bool fsync;               /* fsync blobs, directories and commits */
    bool auto_create;         /* create repositories on first push */
    int64_t upload_expiry_ms; /* sessions idle longer than this may be removed */
    size_t manifest_max;      /* bytes */
};

/* Open (creating directories and database as needed) the store at
 * opt->root. Publishes nothing. BERTH_EIO/BERTH_EDB with a logged reason. */
enum berth_err store_open(const struct store_options *opt, struct store **out);

/* Close: every thread that used the store must have stopped using it. */
void store_close(struct store *st);

/* Options the store was opened with (borrowed). */
const struct store_options *store_options(const struct store *st);

/* The calling thread's metadata connection, opened on first use and
 * closed when the thread exits or the store closes. NULL on failure. */
struct meta *store_meta(struct store *st);

/* Path of a blob file: <root>/blobs/<alg>/<first 2 hex>/<hex>. */
enum berth_err store_blob_path(const struct store *st, const struct digest *d, char *out,
                               size_t cap);

/* Open a published blob for reading. *fd is owned by the caller;
 * *size is the file's size. BERTH_ENOTFOUND when the file is missing. */
enum berth_err store_blob_open(const struct store *st, const struct digest *d, int *fd,
                               uint64_t *size);

/* Create a fresh temporary file under <root>/uploads for a blob being
 * written (path into out, open fd for writing into *fd, owned by caller). */
enum berth_err store_tmp_create(const struct store *st, char *out, size_t cap, int *fd);

/* Move the finished file at tmp_path into the blob store under d, durably
 * (rename, then fsync the directory, when fsync is on). If the blob file
 * already exists the temp file is removed instead. Must be called inside a
 * metadata write transaction so the garbage collector, which deletes blob
 * files inside its own write transactions, cannot interleave. */
enum berth_err store_blob_publish(const struct store *st, const char *tmp_path,
                                  const struct digest *d);

/* Remove a blob file (inside a write transaction, see above). Files are
 * first renamed into <root>/trash so a crash before commit can be undone by
 * store_recover(). */
enum berth_err store_blob_remove(const struct store *st, const struct digest *d);

/* Finish removals: delete files in <root>/trash whose blob row is gone and
 * move back those whose row still exists (a crash between the rename and
 * the commit). Called at start-up, before any request is served.
 * *restored and *deleted (optional) receive the counts. */
enum berth_err store_recover_trash(struct store *st, int64_t *restored, int64_t *deleted);

/* Path of an upload session's data file. */
enum berth_err store_upload_path(const struct store *st, const char *uuid, char *out, size_t cap);

#endif
