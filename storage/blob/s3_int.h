/*
 * Private to the S3 backend's files (storage/blob/s3*.c): the store, the
 * requests and the object operations they share.
 *
 *   s3.c         the store (open, close), reads, removal, recovery, walk;
 *                the backend table
 *   s3_upload.c  stages and their multipart uploads, publication
 *   s3_object.c  object and bucket operations (HEAD, GET, PUT, copy,
 *                DELETE, multipart primitives, listing)
 *   s3_client.c  the transport: one signed request over libcurl
 */
#ifndef BERTH_BLOB_S3_INT_H
#define BERTH_BLOB_S3_INT_H

#include "blob_int.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "storage/spec/sigv4.h"

/* Blobs up to this size are one PUT; larger ones a multipart upload of
 * parts this size (S3's minimum part is 5 MiB). */
#define S3_PART_BYTES ((size_t)8 << 20)
/* The largest object one server-side copy may make (S3's CopyObject). */
#define S3_COPY_MAX ((uint64_t)5 << 30)
#define S3_ETAG_MAX 128
#define S3_MPU_STATE_MAX ((size_t)4 << 20)
#define S3_PATH_MAX 4096
#define S3_KEY_MAX 1024
#define S3_URL_MAX 8192
#define S3_HOST_MAX (512 + 256 + 2) /* bucket.host */
#define S3_ERRBODY_MAX 4096
#define S3_XML_MAX ((size_t)16 << 20)
#define S3_META_REMOVAL "x-amz-meta-berth-removal"
/* Blobs up to this size (manifests, configs) are read from a local copy. */
#define S3_CACHE_SMALL ((uint64_t)4 << 20)

struct s3_store {
    struct blob_store base;
    struct blob_store *local; /* the stages: a filesystem store on root */
    char scheme[8];           /* "http" or "https" */
    char host[512];           /* host[:port] as in the Host header */
    char bucket[256];
    char prefix[256];
    char region[64];
    char akid[SIGV4_AKID_MAX + 1];
    char secret[SIGV4_SECRET_MAX + 1];
    char ca_file[S3_PATH_MAX];
    bool path_style;
    char storage_class[32]; /* of blob objects ("": none) */
    char tmp_dir[S3_PATH_MAX];
    char cache_dir[S3_PATH_MAX];
    char mpu_dir[S3_PATH_MAX];
    uint64_t copy_max;       /* the largest single copy: S3_COPY_MAX (lowered by tests) */
    struct s3_pump *pump;    /* the thread of streamed GETs (s3_client.c) */
    void *share;             /* CURLSH: connections, DNS and TLS sessions every request shares */
    pthread_mutex_t ping_mu; /* the last blob_ping's answer, reused a while */
    int64_t ping_at_ns;
    enum berth_err ping_rc;
    /* the local cache (s3.c) */
    pthread_mutex_t cache_mu;
    uint64_t cache_max;
    int64_t cache_bytes;
    struct s3_tails *tails; /* shared stages' tails this process committed (s3_tails.c) */
};

static inline struct s3_store *s3_of(struct blob_store *bs)
{
    return (struct s3_store *)(void *)bs;
}

static inline uint64_t s3_copy_max(const struct s3_store *s)
{
    return s->copy_max;
}

/* A stage's multipart upload: its id ("" when none was started) and the
 * ETags of parts 1..parts, each S3_PART_BYTES of the stage in order. */
struct s3_mpu {
    char upload_id[256];
    int parts;
    int cap;
    char (*etags)[S3_ETAG_MAX];
    int *numbers; /* the parts' numbers, ascending; NULL: 1..parts */
};

/* ---- requests (s3_client.c) ---- */

struct s3_header {
    const char *name;
    const char *value;
};

struct s3_req {
    const char *method;
    const char *key;   /* object key (prefix included), or NULL for the bucket */
    const char *query; /* encoded query string, or NULL */
    struct s3_header headers[4];
    size_t header_count;
    const void *body;
    size_t body_len;
    int out_fd;      /* a 2xx body goes here when >= 0 ... */
    struct buf *out; /* ... or here when set (else dropped) */
};

struct s3_resp {
    long status;
    uint64_t content_length;
    bool has_length;
    char etag[128];
    char removal[64];
    char last_modified[64];
    char content_range[96];
    struct buf err; /* the body of a non-2xx answer (bounded) */
    /* request-time state */
    const struct s3_req *req;
    void *curl;
    const char *up;
    size_t up_left;
    bool write_failed;
};

/* libcurl's global set-up, once per process. BERTH_EIO (logged). */
enum berth_err s3_client_init(void);

/* Run one signed request. BERTH_OK with resp->status set whatever it is
 * (the caller judges); BERTH_EIO when no answer came (logged). The
 * answer is released with s3_resp_fini in every case. */
enum berth_err s3_do(struct s3_store *s, const struct s3_req *req, struct s3_resp *resp);
void s3_resp_fini(struct s3_resp *r);

/* The error an unexpected HTTP status stands for: BERTH_EUNAVAILABLE for
 * 5xx and 429 (the store fails or throttles for now), else BERTH_EIO. */
enum berth_err s3_status_err(long status);

/* Map an answer that is not what was wanted to an error, logging it:
 * BERTH_ENOTFOUND for 404, else as s3_status_err. A request that got no
 * answer at all is BERTH_EUNAVAILABLE (s3_do). */
enum berth_err s3_fail(const struct s3_req *req, const struct s3_resp *r);

/* A presigned GET URL of key, valid expires_seconds from now. BERTH_EINVAL,
 * BERTH_ETOOBIG. */
enum berth_err s3_presign_get(struct s3_store *s, const char *key, int64_t expires_seconds,
                              char *out, size_t cap);

/* Percent-encode a key for the path (keeping '/'). */
enum berth_err s3_encode_key(struct buf *out, const char *key);

/* Encode a query value (everything but unreserved bytes). */
void s3_encode_value(const char *v, char *out, size_t cap);

/* The transport's shared state, started at open (before any request) and
 * stopped at close: the connection pool every request draws from (so
 * requests reuse kept-alive connections), and the thread of streamed GETs
 * (the pump). */
enum berth_err s3_pump_start(struct s3_store *s);
void s3_pump_stop(struct s3_store *s);

/* A streamed GET of bytes [offset, offset + len) of key, an object of
 * size bytes; it is a blob_reader (its first member) of the store's
 * backend. Returns once the answer's head is in: BERTH_ENOTFOUND for a
 * 404 or an object of another size (logged), BERTH_EIO. */
struct s3_stream;
enum berth_err s3_stream_open(struct s3_store *s, const char *key, uint64_t size, uint64_t offset,
                              uint64_t len, struct s3_stream **out);
/* As blob_reader_read. */
long long s3_stream_read(struct s3_stream *st, char *buf, size_t max, blob_wake_fn wake,
                         void *wake_arg);
/* As blob_reader_close. */
void s3_stream_close(struct s3_stream *st);

/* Keep a local copy of a small blob (up to S3_CACHE_SMALL) just published
 * from memory in <root>/s3cache (s3.c), as blobs published from a file
 * are. Best effort. */
void s3_cache_put(struct s3_store *s, const struct digest *d, const void *p, size_t n);

/* ---- objects (s3_object.c) ---- */

/* The key of a published blob. BERTH_ETOOBIG. */
enum berth_err s3_blob_key(const struct s3_store *s, const struct digest *d, char *out, size_t cap);

/* BERTH_ENOTFOUND when the object does not exist. */
enum berth_err s3_head_object(struct s3_store *s, const char *key, struct s3_resp *out);
enum berth_err s3_delete_object(struct s3_store *s, const char *key);

/* Delete n (1..S3_DELETE_MAX) objects in one request (DeleteObjects,
 * quiet): BERTH_OK when every key is gone (absent ones too), else the
 * first failure (each logged). */
#define S3_DELETE_MAX 1000
enum berth_err s3_delete_objects(struct s3_store *s, const char *const *keys, size_t n);
enum berth_err s3_put_object(struct s3_store *s, const char *key, const void *p, size_t n);
/* Server-side copy from one key of the bucket to another, setting the
 * removal id metadata when removal is not NULL. */
enum berth_err s3_copy_object(struct s3_store *s, const char *from, const char *to,
                              const char *removal);
/* GET key into fd (from its current offset). */
enum berth_err s3_get_object(struct s3_store *s, const char *key, int fd);
/* HEAD the bucket: BERTH_OK when it answers 200 (logged otherwise); *status
 * is the answer's status, 0 when none came. */
enum berth_err s3_head_bucket(struct s3_store *s, long *status);

enum berth_err s3_mpu_create(struct s3_store *s, const char *key, char *upload_id, size_t cap);
enum berth_err s3_mpu_upload_part(struct s3_store *s, const char *key, const char *upload_id,
                                  int number, const void *p, size_t n, char etag[S3_ETAG_MAX]);
enum berth_err s3_mpu_complete(struct s3_store *s, const char *key, const struct s3_mpu *m);
/* UploadPartCopy: bytes [first, last] of the object from as part number
 * of the upload at key. */
enum berth_err s3_mpu_copy_part(struct s3_store *s, const char *key, const char *upload_id,
                                int number, const char *from, uint64_t first, uint64_t last,
                                char etag[S3_ETAG_MAX]);
enum berth_err s3_mpu_abort(struct s3_store *s, const char *key, const char *upload_id);

/* Call fn for every object under prefix (key relative to the store's
 * prefix, size, mtime). */
typedef enum berth_err (*s3_list_fn)(struct s3_store *s, void *arg, const char *rel, uint64_t size,
                                     int64_t mtime_ms);
enum berth_err s3_list_objects(struct s3_store *s, const char *under, s3_list_fn fn, void *arg);

/* Call fn for every multipart upload in progress whose key is under
 * prefix (ListMultipartUploads): its key relative to the store's prefix,
 * its id and when it was initiated (ms since the epoch; 0 unknown). */
typedef enum berth_err (*s3_upload_fn)(struct s3_store *s, void *arg, const char *rel,
                                       const char *upload_id, int64_t initiated_ms);
enum berth_err s3_list_uploads(struct s3_store *s, const char *under, s3_upload_fn fn, void *arg);

/* The object <prefix>berth-store-id (blob_store_id_get/put): its text
 * (a hex identity) into out (BLOB_STORE_ID_MAX bytes; "" when absent). */
enum berth_err s3_store_id_get(struct blob_store *bs, char *out);
enum berth_err s3_store_id_put(struct blob_store *bs, const char *id);

/* ---- stages (s3_upload.c): the backend operations of the same names ---- */

enum berth_err s3_stage_create(struct blob_store *bs, const char *name);
enum berth_err s3_stage_open(struct blob_store *bs, const char *name, struct blob_stage **out,
                             uint64_t *size);
enum berth_err s3_stage_write(struct blob_stage *bs, uint64_t offset, const void *p, size_t n);
enum berth_err s3_stage_read(struct blob_stage *bs, uint64_t offset, void *p, size_t n,
                             size_t *got);
enum berth_err s3_stage_truncate(struct blob_stage *bs, uint64_t size);
enum berth_err s3_stage_hash(struct blob_stage *bs, struct digest_ctx *ctx, uint64_t len);
enum berth_err s3_stage_sync(struct blob_stage *bs);
void s3_stage_close(struct blob_stage *bs);
enum berth_err s3_stage_stat(struct blob_store *bs, const char *name, uint64_t *size,
                             int64_t *mtime_ms);
enum berth_err s3_stage_remove(struct blob_store *bs, const char *name);
enum berth_err s3_stage_list(struct blob_store *bs, blob_stage_fn fn, void *arg);
enum berth_err s3_stage_publish(struct blob_store *bs, const char *name, const struct digest *d);

/* ---- the tail cache (s3_tails.c) ---- */

/* The most bytes of tails kept in memory per store (BERTH_TEST_S3_TAIL_CACHE_BYTES
 * changes it; 0 keeps none). */
#define S3_TAILS_BYTES ((size_t)32 << 20)

struct s3_tails;

struct s3_tails_stats {
    uint64_t hits;    /* gets answered from memory */
    uint64_t misses;  /* gets that were not */
    uint64_t evicted; /* entries dropped for room */
    size_t bytes;     /* held now */
    int entries;      /* held now */
};

/* A cache of at most max_bytes (NULL when out of memory: every call below
 * takes NULL and does nothing). */
struct s3_tails *s3_tails_new(size_t max_bytes);
void s3_tails_free(struct s3_tails *t);
/* Keep a copy of the len bytes of stage name's committed tail object key,
 * in place of any tail of name held before; too large for the cache:
 * nothing kept. */
void s3_tails_put(struct s3_tails *t, const char *name, const char *key, const void *p, size_t len);
/* Copy stage name's tail into p (len bytes) if the one held is key at len
 * bytes: true. A tail of name held under another key is dropped. */
bool s3_tails_get(struct s3_tails *t, const char *name, const char *key, void *p, size_t len);
/* Forget stage name's tail. */
void s3_tails_drop(struct s3_tails *t, const char *name);
struct s3_tails_stats s3_tails_stats(struct s3_tails *t);

/* ---- shared stages (s3_upload.c): the backend operations of the same names ---- */

enum berth_err s3_shared_open(struct blob_store *bs, const char *name, const char *upload_id,
                              const char *state, blob_part_fn part_fn, void *arg,
                              struct blob_shared **out);
uint64_t s3_shared_size(const struct blob_shared *sh);
enum berth_err s3_shared_write(struct blob_shared *sh, const void *p, size_t n);
enum berth_err s3_shared_save(struct blob_shared *sh, char **state);
void s3_shared_saved(struct blob_shared *sh, enum blob_saved how);
enum berth_err s3_shared_publish(struct blob_shared *sh, const struct digest *d);
enum berth_err s3_shared_rehash(struct blob_shared *sh, enum digest_alg alg, struct digest *out);
void s3_shared_close(struct blob_shared *sh);
enum berth_err s3_shared_remove(struct blob_store *bs, const char *name, const char *upload_id);
enum berth_err s3_shared_sweep(struct blob_store *bs, int64_t before_ms, blob_live_fn live,
                               void *arg, bool dry_run, int64_t *removed);

#endif
