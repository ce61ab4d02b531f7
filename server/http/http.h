/*
 * Private to server/: the running server, the per-request context, and the
 * response helpers every handler uses. A request lives from libmicrohttpd's
 * first access callback to its completion callback; all its callbacks run
 * on the one pool thread that owns the connection.
 */
#ifndef BERTH_SERVER_HTTP_H
#define BERTH_SERVER_HTTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <microhttpd.h>

#include "server/auth/auth.h"

#include "common/buf.h"
#include "common/config.h"
#include "storage/spec/digest.h"
#include "storage/spec/names.h"
#include "server/http/range.h"
#include "server/http/server.h"

struct jobs;
struct meta_repo;
struct registry_status;
struct store;
struct upload;
struct request;

struct server {
    const struct berth_config *cfg;
    struct store *store;
    struct auth *auth; /* authentication and authorization (owned) */
    struct MHD_Daemon *daemon;
    uint16_t port;
    unsigned threads;
    char public_url[512];
    uint32_t id_prefix;
    atomic_uint_fast64_t id_counter;
    atomic_int inflight;
    atomic_bool draining;
    _Atomic(struct jobs *) jobs; /* background jobs, NULL when none (jobs_attach) */
};

enum body_mode {
    BODY_NONE,    /* no body expected: any body is discarded */
    BODY_BUFFER,  /* collect into req->body (bounded) */
    BODY_UPLOAD,  /* append to req->upload, hashing as it arrives */
    BODY_DISCARD, /* an answer is decided: read and drop the rest */
};

/* Called on the final access callback when the body is complete. */
typedef void (*body_done_fn)(struct request *req);

struct request {
    struct server *srv;
    struct MHD_Connection *conn;
    const char *method; /* borrowed from libmicrohttpd for the request's life */
    const char *path;   /* decoded path, borrowed likewise */
    char *raw_uri;      /* request target as received, for SigV4 (owned; NULL if over limit) */
    bool started;       /* the first access callback has run */
    char id[24];
    int64_t start_ns;
    bool is_head;
    bool dispatch_later; /* no body: route on the final callback */
    bool is_ecr;         /* an ECR JSON API call: errors in AWS's format */
    const char *ecr_op;  /* the ECR operation (a static name), for the access log */
    char amzn_id[40];    /* the x-amzn-RequestId the ECR response carried */
    char ecr_error[64];  /* its __type when it failed, else empty */

    /* response bookkeeping for the access log */
    bool responded;
    unsigned status;
    uint64_t bytes_out;
    uint64_t bytes_in;

    /* routing results */
    char repo[NAMES_REPO_MAX + 1];
    char ref[256];

    /* body handling */
    enum body_mode body_mode;
    struct buf body;
    struct upload *upload;
    uint64_t upload_base;     /* session offset when this request began writing */
    bool has_content_range;   /* request carried Content-Range */
    struct byte_range crange; /* its value */
    bool body_failed;         /* a write failed mid-body */
    unsigned deferred_status; /* with BODY_DISCARD: the answer to send */
    const char *deferred_code;
    char deferred_message[256];
    body_done_fn on_done;
    struct digest digest; /* a digest the handler parsed early */
    bool has_digest;

    /* the caller, once authenticated (server/oci/auth.c) */
    struct auth_identity ident;
};

/* ---- request inputs ---- */

/* Percent-decode s in place and return its new length. With is_path, an
 * encoded '/' or NUL stays encoded. */
size_t http_unescape(char *s, bool is_path);

/* A request header or query argument (NULL when absent). Borrowed. */
const char *http_header(struct request *req, const char *name);
const char *http_query(struct request *req, const char *name);

/* Content-Length as a number; false when absent or malformed. */
bool http_content_length(struct request *req, uint64_t *out);

/* True when the request announces a body (Content-Length > 0 or chunked). */
bool http_has_body(struct request *req);

/* ---- responses ---- */

/* A response with a copy of len bytes. NULL when out of memory. */
struct MHD_Response *http_resp_bytes(const void *data, size_t len);
/* An empty response. */
struct MHD_Response *http_resp_empty(void);
/* A response whose Content-Length is len but whose body is never produced:
 * for HEAD. */
struct MHD_Response *http_resp_head(uint64_t len);
/* len bytes of the file fd from offset, sent with sendfile. Takes the fd
 * on success; on failure (NULL) the caller still owns it. */
struct MHD_Response *http_resp_fd(int fd, uint64_t offset, uint64_t len);

/* Add a header to a response (ignored when resp is NULL). */
void http_add(struct MHD_Response *resp, const char *name, const char *value);

/* Queue resp with status, adding the headers every response carries, and
 * release it. body_len is what the access log reports. A NULL resp sends
 * a 500. Only the first response of a request counts. */
void http_send(struct request *req, unsigned status, struct MHD_Response *resp, uint64_t body_len);

/* Send a JSON text body with the given content type. */
void http_send_json(struct request *req, unsigned status, const char *content_type,
                    const char *json, struct MHD_Response *prepared);

/* ---- body handling ---- */

/* Switch to discarding the body and answer with an OCI error at the end. */
void http_defer_error(struct request *req, unsigned status, const char *code, const char *message);

/* ---- repository listings (repo_list.c) ---- */

/* Whether the caller may see repository name in a listing. */
typedef bool (*repo_list_allow_fn)(void *arg, const char *name);

/* Take one listed repository (borrowed for the call); anything but
 * BERTH_OK stops the listing with that error. */
typedef enum berth_err (*repo_list_take_fn)(void *arg, const struct meta_repo *repo);

/* A page of at most limit repositories with names after `after` (NULL or
 * "": from the start), in byte order, of those allow accepts (allow NULL:
 * all): further names are read until the page is full or they run out, so
 * only the last page is short. take gets each in turn; last (last_cap
 * bytes) the name of the last taken ("" when none); *more whether the page
 * is full and names follow (they may all be hidden: the next page can be
 * empty). limit <= 0 is an empty page. On failure (the database, or take's
 * error) s says REG_INTERNAL with the error. Runs on this thread's
 * metadata connection; blocks. */
enum berth_err repo_list_page(struct store *st, const char *after, int64_t limit,
                              repo_list_allow_fn allow, repo_list_take_fn take, void *arg,
                              char *last, size_t last_cap, bool *more, struct registry_status *s);

/* ---- the ECR JSON API ---- */

/* Route an ECR API request (a POST with X-Amz-Target). */
void ecr_dispatch(struct request *req);

/* An AWS-shaped error response {"__type":..,"message":..}. */
void ecr_send_error(struct request *req, unsigned status, const char *type, const char *message);

/* ---- the OCI API ---- */

/* Route and handle a request under /v2 (first access callback). */
void oci_dispatch(struct request *req);

/* The registry reason a failed upload-session call (storage/store/upload.h)
 * stands for, into *s: BERTH_ENOTFOUND is REG_UPLOAD_UNKNOWN, BERTH_EBUSY
 * REG_UPLOAD_BUSY, BERTH_EDIGEST REG_DIGEST_INVALID, anything else
 * REG_INTERNAL. The sessions are shared by both APIs; each maps *s with
 * its one table (oci_fail, ecr_fail_registry). In oci_blobs.c. */
void oci_upload_status(enum berth_err rc, struct registry_status *s);

/* OCI error response: {"errors":[{"code":..,"message":..,"detail":..}]}. detail may be
 * NULL (JSON text otherwise). */
void oci_error(struct request *req, unsigned status, const char *code, const char *message,
               const char *detail_json);

#endif
