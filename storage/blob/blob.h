/*
 * The blob store: content-addressed blob bytes (layers, configs and
 * manifests alike) and the staged objects they are written through, behind
 * one backend interface (blob_int.h). The filesystem backend (fs.c) is the
 * one there is; a backend keeps bytes and nothing else: which blobs exist
 * for the registry is the metadata's business (storage/meta), and the store
 * (storage/store) ties the two together.
 *
 * Writing goes through a stage, an object under construction named by the
 * caller (an upload session's id, or a temporary name): created, written
 * at offsets, hashed, synced, then published under its digest or removed.
 * Publishing and removing blobs happen inside a metadata write transaction
 * (the store's rule, so that garbage collection, which removes inside its
 * own, cannot interleave with a publication); removal moves a blob aside
 * until the transaction's outcome is known.
 *
 * Thread-safe: a blob_store may be used by every thread at once; one stage
 * handle is used by one thread at a time. Every call may block on I/O.
 */
#ifndef BERTH_BLOB_H
#define BERTH_BLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "storage/spec/digest.h"

struct blob_store;
struct blob_stage;

/* Longest stage name (the names are upload ids and "tmp-" + a uuid). */
#define BLOB_STAGE_NAME_MAX 64

/* Where the S3 backend keeps blobs (storage.backend s3). All borrowed. */
struct blob_s3_options {
    const char *endpoint; /* http(s)://host[:port]; NULL or "" is AWS's for region */
    const char *region;   /* the SigV4 scope's region */
    const char *bucket;
    const char *prefix;            /* put before every key ("" or NULL: none) */
    const char *access_key_id;     /* SigV4 credentials */
    const char *secret_access_key; /* SigV4 credentials */
    bool path_style;               /* http://host/bucket/key, not http://bucket.host/key */
    const char *tls_ca_file;       /* PEM CAs for an https endpoint ("" or NULL: the system's) */
    uint64_t cache_max_bytes;      /* bound of <root>/s3cache, the local copies */
    /* sent as x-amz-storage-class when a blob object (<prefix>blobs/...) is
     * written; "" or NULL: none (the bucket's default). Staging objects
     * and the store's own objects never carry it. */
    const char *storage_class;
};

struct blob_store_options {
    const char *root; /* the data root: the filesystem backend keeps blobs/, uploads/, trash/ */
    bool fsync;       /* make published blobs and synced stages durable */
    /* "filesystem" (or NULL) or "s3": blobs in an S3 bucket (s3 below),
     * stages still files under root/uploads until they are published. */
    const char *backend;
    struct blob_s3_options s3;
};

/* Open the store's backend (creating its directories). BERTH_ETOOBIG for a
 * root path too long, BERTH_EINVAL for an unknown backend or incomplete S3
 * options, BERTH_EIO (logged), BERTH_ENOMEM. */
enum berth_err blob_store_open(const struct blob_store_options *opt, struct blob_store **out);

/* Close (NULL is fine). No call may be in progress. */
void blob_store_close(struct blob_store *bs);

/* Whether the backend can serve now, for readiness probes: the S3 backend
 * HEADs the bucket, and reuses the answer for BLOB_PING_CACHE_MS (so a
 * probe every second costs one request every few). BERTH_OK,
 * BERTH_EUNAVAILABLE (the store cannot be reached or fails), BERTH_EIO
 * (it refuses: credentials, bucket). Always BERTH_OK on the filesystem. */
#define BLOB_PING_CACHE_MS 3000
enum berth_err blob_ping(struct blob_store *bs);

/* The identity of the registry whose blobs these are, kept beside them,
 * so that a database and a blob store of different registries are never
 * paired (storage/store/mark.c). The S3 backend keeps it in the object
 * <prefix>berth-store-id, the filesystem backend in the file
 * <root>/blobs/berth-store-id (paired by the store only with PostgreSQL).
 * Whether the backend keeps one. */
#define BLOB_STORE_ID_MAX 64
bool blob_store_id_supported(struct blob_store *bs);

/* The identity into out (BLOB_STORE_ID_MAX bytes; "" when none was
 * recorded). BERTH_EUNSUPPORTED (none kept), BERTH_EUNAVAILABLE, BERTH_EIO. */
enum berth_err blob_store_id_get(struct blob_store *bs, char *out);

/* Record the identity (1..BLOB_STORE_ID_MAX-1 of [0-9a-f]).
 * BERTH_EUNSUPPORTED, BERTH_EINVAL, BERTH_EUNAVAILABLE, BERTH_EIO. */
enum berth_err blob_store_id_put(struct blob_store *bs, const char *id);

/* ---- reading ---- */

/* Open a published blob for reading. *fd (owned by the caller, read with
 * pread or sendfile from offset 0) and *size. BERTH_ENOTFOUND when the
 * backend does not hold it, BERTH_EIO. */
enum berth_err blob_open(struct blob_store *bs, const struct digest *d, int *fd, uint64_t *size);

/* Whether the backend holds the blob, and its size, without reading it
 * (the S3 backend: one HEAD). BERTH_ENOTFOUND, BERTH_EIO. */
enum berth_err blob_stat(struct blob_store *bs, const struct digest *d, uint64_t *size);

/* A URL from which a client may GET the blob itself for expires_seconds
 * (the S3 backend: a presigned URL of the object, SigV4 query signing),
 * into out (cap bytes). BERTH_EUNSUPPORTED when the backend has none,
 * BERTH_EINVAL (expires_seconds), BERTH_ETOOBIG. Nothing is checked with
 * the backend. */
enum berth_err blob_url(struct blob_store *bs, const struct digest *d, int64_t expires_seconds,
                        char *out, size_t cap);

/* ---- streaming reads ---- */

/* A published blob's bytes as they come from a backend that keeps them
 * elsewhere (the S3 backend: one GET, ranged for a part), in constant
 * memory whatever the blob's size. One thread at a time. */
struct blob_reader;

/* What blob_read_range opened: a local file, or a reader. */
struct blob_read {
    int fd;                     /* >= 0: a file holding the whole blob from offset 0, owned by
                                 * the caller (send the range from it with sendfile) */
    struct blob_reader *reader; /* else: the range's bytes, in order */
};

/* Open bytes [offset, offset + len) of the blob d, whose size the caller
 * knows (the metadata's), for reading. Waits for the backend to start
 * answering, not for the bytes. BERTH_EINVAL for a range past size,
 * BERTH_ENOTFOUND when the backend does not hold the blob or holds
 * another size (logged), BERTH_EIO. */
enum berth_err blob_read_range(struct blob_store *bs, const struct digest *d, uint64_t size,
                               uint64_t offset, uint64_t len, struct blob_read *out);

/* Up to max bytes of the range into buf: how many, 0 at its end, -1 when
 * the transfer failed (logged). When nothing has come yet: with wake NULL
 * it waits; else it returns BLOB_READ_WAIT and calls wake(wake_arg) once,
 * from any thread, when there may be more (never after
 * blob_reader_close). */
#define BLOB_READ_WAIT (-2)
typedef void (*blob_wake_fn)(void *wake_arg);
long long blob_reader_read(struct blob_reader *r, char *buf, size_t max, blob_wake_fn wake,
                           void *wake_arg);

/* Close a reader (NULL is fine), whether or not it reached its end. */
void blob_reader_close(struct blob_reader *r);

/* The whole blob into a new NUL-terminated buffer (caller frees *out), for
 * manifests: BERTH_ETOOBIG past max bytes, BERTH_ENOTFOUND, BERTH_EIO. */
enum berth_err blob_read_all(struct blob_store *bs, const struct digest *d, size_t max, char **out,
                             size_t *len);

/* A path of a local file holding the blob's bytes, for programs that need
 * one (the scanners and the scan hook read layers by path). The file must
 * not be changed. The filesystem backend names its own file without
 * looking (it may not exist); a backend keeping blobs elsewhere makes a
 * local copy. BERTH_ETOOBIG when out (cap bytes) is too small. */
enum berth_err blob_local_path(struct blob_store *bs, const struct digest *d, char *out,
                               size_t cap);

/* ---- stages ---- */

/* Create an empty stage called name (1..BLOB_STAGE_NAME_MAX of
 * [A-Za-z0-9-]). BERTH_EEXIST, BERTH_EINVAL (the name), BERTH_EIO. */
enum berth_err blob_stage_create(struct blob_store *bs, const char *name);

/* Open a stage for writing; *size is what it holds. Close it with
 * blob_stage_close. BERTH_ENOTFOUND, BERTH_EINVAL, BERTH_EIO. */
enum berth_err blob_stage_open(struct blob_store *bs, const char *name, struct blob_stage **out,
                               uint64_t *size);

/* Write n bytes at offset (at most the stage's size: stages have no
 * holes). On BERTH_EIO part of it may have landed: truncate back. */
enum berth_err blob_stage_write(struct blob_stage *s, uint64_t offset, const void *p, size_t n);

/* Read up to n bytes at offset of what was written to the stage (through
 * any handle) into p; *got is how many (0 at its end). Safe on a handle
 * another thread writes through. BERTH_EUNSUPPORTED when the backend
 * cannot, BERTH_EIO. */
enum berth_err blob_stage_read(struct blob_stage *s, uint64_t offset, void *p, size_t n,
                               size_t *got);

/* Cut the stage to size bytes (not more than it holds). BERTH_EIO. */
enum berth_err blob_stage_truncate(struct blob_stage *s, uint64_t size);

/* Feed the stage's first len bytes into ctx. BERTH_EIO. */
enum berth_err blob_stage_hash(struct blob_stage *s, struct digest_ctx *ctx, uint64_t len);

/* Make what was written durable (a no-op when the store's fsync is off). */
enum berth_err blob_stage_sync(struct blob_stage *s);

/* Close a stage handle (NULL is fine); the stage itself remains. */
void blob_stage_close(struct blob_stage *s);

/* Size and last modification (ms since the epoch) of a stage, without
 * opening it. BERTH_ENOTFOUND, BERTH_EINVAL, BERTH_EIO. */
enum berth_err blob_stage_stat(struct blob_store *bs, const char *name, uint64_t *size,
                               int64_t *mtime_ms);

/* Remove a stage (no handle may be open on it). BERTH_ENOTFOUND,
 * BERTH_EINVAL, BERTH_EIO. */
enum berth_err blob_stage_remove(struct blob_store *bs, const char *name);

/* Publish a closed stage as the blob d (its bytes must hash to d: the
 * caller checked), durably when fsync is on; the stage is gone afterwards.
 * When the blob exists already the stage is dropped (same digest, same
 * bytes). Inside a metadata write transaction (see above). BERTH_EIO. */
enum berth_err blob_stage_publish(struct blob_store *bs, const char *name, const struct digest *d);

/* The slow part of blob_stage_publish, done before the write transaction
 * so that the database's write lock is not held across it: with fsync on,
 * the filesystem backend links the closed stage's file in under the
 * blob's name and fsyncs that directory (and, once per directory and
 * process, its parents), so that blob_stage_publish inside the
 * transaction only checks the file is there and drops the stage. A file
 * visible in the blob store without its row is harmless (the garbage
 * collector removes it after its grace), and when it vanished before the
 * transaction (that collector), blob_stage_publish publishes the stage
 * again: the order "the file's name durable, then the row" holds either
 * way. A no-op (BERTH_OK) for a backend without such a step and with fsync
 * off. BERTH_EIO: nothing may be acknowledged (the directory's sync failed). */
enum berth_err blob_stage_prepublish(struct blob_store *bs, const char *name,
                                     const struct digest *d);

/* Call fn for every stage with its last modification time. A non-OK
 * result of fn stops the walk and is returned. BERTH_EIO. */
typedef enum berth_err (*blob_stage_fn)(void *arg, const char *name, int64_t mtime_ms);
enum berth_err blob_stage_list(struct blob_store *bs, blob_stage_fn fn, void *arg);

/* Stage bytes under a fresh temporary name (written into name, which
 * needs BLOB_STAGE_NAME_MAX + 1 bytes) and sync them, ready for
 * blob_stage_publish; on failure nothing is left behind. */
enum berth_err blob_stage_put(struct blob_store *bs, const void *p, size_t len, char *name);

/* ---- shared stages ---- */

/* A stage whose state the caller keeps (an upload session's row in the
 * shared metadata) instead of the backend keeping it on a local disk, so
 * that any process using the same backend continues it: the S3 backend
 * sends every whole part of a multipart upload to the staging key as the
 * bytes come, and saves the unsent tail (less than a part) as an object
 * of its own. Only appended to; one thread at a time per handle. Two
 * handles on one stage (two processes) never overwrite each other: part
 * numbers come from the caller and are never handed out twice, and each
 * save writes a tail object of its own; whichever state the caller
 * records is the stage. */
struct blob_shared;

/* Whether the backend has shared stages (the S3 backend). */
bool blob_shared_supported(struct blob_store *bs);

/* The S3 backend's upload tail cache (requests that took a session's tail
 * from this process's memory, and those that read it from the bucket)
 * since the store opened: false, nothing set, for another backend. */
bool blob_tail_cache_stats(struct blob_store *bs, uint64_t *hits, uint64_t *misses);

#define BLOB_UPLOAD_ID_MAX 256

/* The caller's numbering: a part number (1...) never handed out before
 * for the stage, into *number, and the multipart upload recorded for the
 * stage: upload_id unless another was recorded first, copied into
 * recorded (BLOB_UPLOAD_ID_MAX bytes). */
typedef enum berth_err (*blob_part_fn)(void *arg, const char *upload_id, int64_t *number,
                                       char *recorded);

/* Continue the shared stage name from state (NULL or "": empty) and the
 * multipart upload upload_id ("" or NULL: none) recorded with it,
 * reading its saved tail back; part_fn(arg) numbers the parts it sends.
 * BERTH_EINVAL (the name or a state that is not one), BERTH_ENOTFOUND
 * (the tail object is gone: a state a newer save replaced), BERTH_EIO,
 * BERTH_EUNAVAILABLE, BERTH_EUNSUPPORTED (no shared stages). */
enum berth_err blob_shared_open(struct blob_store *bs, const char *name, const char *upload_id,
                                const char *state, blob_part_fn part_fn, void *arg,
                                struct blob_shared **out);

/* Bytes the stage holds (saved or not). */
uint64_t blob_shared_size(const struct blob_shared *sh);

/* Append n bytes. After a failure only close is left (what was saved
 * stands). */
enum berth_err blob_shared_write(struct blob_shared *sh, const void *p, size_t n);

/* Save: the unsent tail becomes an object of its own, and *state (the
 * caller frees it) the text that blob_shared_open continues from. The
 * tail the handle was opened with stays until blob_shared_saved. */
enum berth_err blob_shared_save(struct blob_shared *sh, char **state);

/* What became of a saved state: the caller recorded it (KEPT), another
 * writer's state was recorded first (REFUSED), or the caller cannot tell
 * (UNKNOWN: the database's answer to the commit was lost and its row
 * could not be read again, or it has moved on since). */
enum blob_saved { BLOB_SAVED_REFUSED, BLOB_SAVED_KEPT, BLOB_SAVED_UNKNOWN };

/* Settle the last save: KEPT is done with the tail object the handle was
 * opened with (deleted, or listed as dead in the saved state for a later
 * commit to delete with others: the S3 backend), REFUSED deletes the one
 * just saved; UNKNOWN deletes neither, since
 * the recorded state may name either (both stay for blob_shared_remove,
 * which deletes every tail of the stage). */
void blob_shared_saved(struct blob_shared *sh, enum blob_saved how);

/* Publish the stage's bytes as the blob d (the caller checked the
 * digest): the tail goes as the last part, the multipart upload is
 * completed at the staging key and copied to the content key; a stage
 * that never sent a part is one PUT. Nothing is done when the blob
 * exists; so call it before the metadata write transaction that records
 * the blob (the slow part), and again inside it (one HEAD), which makes
 * sure the garbage collector did not take it in between. The staging
 * objects stay for blob_shared_remove. BERTH_EIO, BERTH_EUNAVAILABLE. */
enum berth_err blob_shared_publish(struct blob_shared *sh, const struct digest *d);

/* The digest with another algorithm than the session hashes with (a PUT
 * naming sha512 for a session started without saying so): the stage's
 * bytes read back and hashed again. A stage that sent parts completes its
 * multipart upload at the staging key first (blob_shared_publish then
 * only copies it) and is downloaded to a temporary file under the
 * root (s3tmp/, unlinked at once): a read of the whole blob, the cost of not naming the
 * algorithm at the POST. BERTH_EIO, BERTH_EUNAVAILABLE, BERTH_ENOMEM. */
enum berth_err blob_shared_rehash(struct blob_shared *sh, enum digest_alg alg, struct digest *out);

/* Close a handle (NULL is fine); the stage is what was saved. */
void blob_shared_close(struct blob_shared *sh);

/* Remove what the shared stage name left in the backend: abort the
 * multipart upload upload_id ("" or NULL: none), delete the staging and
 * tail objects. BERTH_EIO, BERTH_EUNAVAILABLE. */
enum berth_err blob_shared_remove(struct blob_store *bs, const char *name, const char *upload_id);

/* Whether the stage called name is still wanted (an upload session's row
 * names it), into *live. A non-OK result stops the sweep and is returned. */
typedef enum berth_err (*blob_live_fn)(void *arg, const char *name, bool *live);

/* Remove what shared stages left in the backend with nothing left to
 * remove it: a process killed between starting a multipart upload and
 * the caller recording it, or between saving a tail and the caller
 * recording it after the session ended. The S3 backend aborts the
 * multipart uploads in progress under its uploads/ keys that were
 * initiated before before_ms and whose stage is neither live(arg) nor a
 * stage of this process, and those under its blob keys initiated before
 * before_ms (a publication's copy or put cut short); and deletes the
 * objects under uploads/ last modified before before_ms whose stage is
 * neither. So before_ms must be older than any transfer still running
 * anywhere (stages that are not shared are known only to the process
 * writing them). Logged one by one; *removed (optional) counts them, or
 * with dry_run counts what would go and changes nothing. BERTH_OK at once
 * (nothing to do) for a backend without shared stages; BERTH_EIO,
 * BERTH_EUNAVAILABLE, or live's error. */
enum berth_err blob_shared_sweep(struct blob_store *bs, int64_t before_ms, blob_live_fn live,
                                 void *arg, bool dry_run, int64_t *removed);

/* ---- removal (garbage collection) ---- */

/* What blob_remove moved aside, for blob_removal_finish. */
struct blob_removal {
    struct digest d;
    uint64_t id[2]; /* which object was moved (the filesystem: device and inode) */
};

/* Inside a write transaction that deletes the blob's row: move the blob
 * aside, where a rollback can still bring it back (blob_recover). *out
 * says what was moved; *out->d is set even when there was nothing to move
 * (BERTH_OK with id {0, 0}). BERTH_EIO. */
enum berth_err blob_remove(struct blob_store *bs, const struct digest *d, struct blob_removal *out);

/* After that transaction committed: delete what r moved aside, if it is
 * still that very object (another removal of the same digest may have
 * moved a newer copy there since). BERTH_ENOTFOUND when it is not there,
 * BERTH_EIO. */
enum berth_err blob_removal_finish(struct blob_store *bs, const struct blob_removal *r);

/* Whether a blob moved aside is still wanted (its row exists): restore it
 * unless a live copy exists again. */
typedef bool (*blob_wanted_fn)(void *arg, const struct digest *d);

/* Settle every blob moved aside: restore those wanted (a removal that
 * never committed) that have no live copy, delete the rest. Inside a write
 * transaction, so that no removal is half done. *restored and *deleted
 * (optional) count them. BERTH_EIO. */
enum berth_err blob_recover(struct blob_store *bs, blob_wanted_fn wanted, void *arg,
                            int64_t *restored, int64_t *deleted);

/* Call fn for every published blob with its size and last modification
 * time; names that are not digests are skipped. A non-OK result of fn
 * stops the walk and is returned. BERTH_EIO. */
typedef enum berth_err (*blob_walk_fn)(void *arg, const struct digest *d, uint64_t size,
                                       int64_t mtime_ms);
enum berth_err blob_walk(struct blob_store *bs, blob_walk_fn fn, void *arg);

/* Delete a published blob at once (a file without a row, inside a write
 * transaction that saw none). BERTH_ENOTFOUND, BERTH_EIO. */
enum berth_err blob_delete(struct blob_store *bs, const struct digest *d);

#endif
