/*
 * Private to storage/blob/: the backend interface. A backend allocates a
 * structure that begins with struct blob_store (ops set) and implements
 * every operation with the contract of the public function of the same
 * name in blob.h; blob.c dispatches and adds what every backend shares.
 * A new backend is one new file here plus its case in blob_store_open.
 */
#ifndef BERTH_BLOB_INT_H
#define BERTH_BLOB_INT_H

#include "storage/blob/blob.h"

struct blob_backend {
    const char *name;
    void (*close)(struct blob_store *bs);
    /* may be NULL: always ready */
    enum berth_err (*ping)(struct blob_store *bs);
    /* may be NULL: no identity kept (blob_store_id_supported) */
    enum berth_err (*id_get)(struct blob_store *bs, char *out);
    enum berth_err (*id_put)(struct blob_store *bs, const char *id);

    enum berth_err (*open)(struct blob_store *bs, const struct digest *d, int *fd, uint64_t *size);
    enum berth_err (*stat)(struct blob_store *bs, const struct digest *d, uint64_t *size);
    enum berth_err (*local_path)(struct blob_store *bs, const struct digest *d, char *out,
                                 size_t cap);
    /* may be NULL: blob_read_range hands over the file open gives; fills
     * out->fd or out->reader (both cleared by the caller) */
    enum berth_err (*read_range)(struct blob_store *bs, const struct digest *d, uint64_t size,
                                 uint64_t offset, uint64_t len, struct blob_read *out);
    /* may be NULL: no URL (blob_url is BERTH_EUNSUPPORTED) */
    enum berth_err (*url)(struct blob_store *bs, const struct digest *d, int64_t expires_seconds,
                          char *out, size_t cap);
    long long (*reader_read)(struct blob_reader *r, char *buf, size_t max, blob_wake_fn wake,
                             void *wake_arg);
    void (*reader_close)(struct blob_reader *r);

    enum berth_err (*stage_create)(struct blob_store *bs, const char *name);
    enum berth_err (*stage_open)(struct blob_store *bs, const char *name, struct blob_stage **out,
                                 uint64_t *size);
    enum berth_err (*stage_write)(struct blob_stage *s, uint64_t offset, const void *p, size_t n);
    enum berth_err (*stage_truncate)(struct blob_stage *s, uint64_t size);
    /* may be NULL: the backend cannot read a stage back (blob_stage_read) */
    enum berth_err (*stage_read)(struct blob_stage *s, uint64_t offset, void *p, size_t n,
                                 size_t *got);
    enum berth_err (*stage_hash)(struct blob_stage *s, struct digest_ctx *ctx, uint64_t len);
    enum berth_err (*stage_sync)(struct blob_stage *s);
    void (*stage_close)(struct blob_stage *s);
    enum berth_err (*stage_stat)(struct blob_store *bs, const char *name, uint64_t *size,
                                 int64_t *mtime_ms);
    enum berth_err (*stage_remove)(struct blob_store *bs, const char *name);
    enum berth_err (*stage_publish)(struct blob_store *bs, const char *name,
                                    const struct digest *d);
    /* may be NULL: nothing to do ahead of stage_publish */
    enum berth_err (*stage_prepublish)(struct blob_store *bs, const char *name,
                                       const struct digest *d);
    enum berth_err (*stage_list)(struct blob_store *bs, blob_stage_fn fn, void *arg);

    /* all NULL: no shared stages (blob_shared_supported is false) */
    enum berth_err (*shared_open)(struct blob_store *bs, const char *name, const char *upload_id,
                                  const char *state, blob_part_fn part_fn, void *arg,
                                  struct blob_shared **out);
    uint64_t (*shared_size)(const struct blob_shared *sh);
    enum berth_err (*shared_write)(struct blob_shared *sh, const void *p, size_t n);
    enum berth_err (*shared_save)(struct blob_shared *sh, char **state);
    void (*shared_saved)(struct blob_shared *sh, enum blob_saved how);
    enum berth_err (*shared_publish)(struct blob_shared *sh, const struct digest *d);
    enum berth_err (*shared_rehash)(struct blob_shared *sh, enum digest_alg alg,
                                    struct digest *out);
    void (*shared_close)(struct blob_shared *sh);
    enum berth_err (*shared_remove)(struct blob_store *bs, const char *name, const char *upload_id);
    enum berth_err (*shared_sweep)(struct blob_store *bs, int64_t before_ms, blob_live_fn live,
                                   void *arg, bool dry_run, int64_t *removed);

    enum berth_err (*remove)(struct blob_store *bs, const struct digest *d,
                             struct blob_removal *out);
    enum berth_err (*removal_finish)(struct blob_store *bs, const struct blob_removal *r);
    enum berth_err (*recover)(struct blob_store *bs, blob_wanted_fn wanted, void *arg,
                              int64_t *restored, int64_t *deleted);
    enum berth_err (*walk)(struct blob_store *bs, blob_walk_fn fn, void *arg);
    enum berth_err (*delete)(struct blob_store *bs, const struct digest *d);
};

struct blob_store {
    const struct blob_backend *ops;
};

/* A reader begins with this. */
struct blob_reader {
    const struct blob_backend *ops;
};

/* A stage handle begins with this. */
struct blob_stage {
    const struct blob_backend *ops;
};

/* A shared stage handle begins with this. */
struct blob_shared {
    const struct blob_backend *ops;
};

/* The filesystem backend (fs.c). */
enum berth_err blob_fs_open(const struct blob_store_options *opt, struct blob_store **out);

/* The S3 backend (s3.c). */
enum berth_err blob_s3_open(const struct blob_store_options *opt, struct blob_store **out);

/* How many multipart parts an S3 stage handle has sent (tests). */
int blob_s3_stage_parts_sent(const struct blob_stage *s);

/* The file holding a filesystem stage's bytes (the S3 backend keeps its
 * stages in a filesystem store and publishes from the file).
 * BERTH_ETOOBIG. */
enum berth_err blob_fs_stage_path(struct blob_store *bs, const char *name, char *out, size_t cap);

/* How far (bytes from the start) a filesystem stage handle has started
 * the writeback of what was written through it (tests). */
uint64_t blob_fs_stage_writeback_started(const struct blob_stage *s);

/* How many directory fsyncs a filesystem store made (tests). */
uint64_t blob_fs_dir_fsyncs(struct blob_store *bs);

#endif
