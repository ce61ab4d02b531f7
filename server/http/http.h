/*
 * The HTTP layer's contract with the APIs it serves (server/oci, server/ecr):
 * the running server, the per-request context, the response helpers every
 * handler uses, and struct http_api, through which an API is plugged in.
 * This layer knows no API: server_start is handed the list. A request
 * lives from libmicrohttpd's first access callback to its completion
 * callback; all its callbacks run on the one pool thread that owns the
 * connection.
 */
#ifndef BERTH_SERVER_HTTP_H
#define BERTH_SERVER_HTTP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "server/auth/auth.h"

#include "common/buf.h"
#include "common/config.h"
#include "storage/spec/digest.h"
#include "storage/spec/names.h"
#include "server/http/range.h"
#include "server/http/server.h"

struct MHD_Connection;
struct MHD_Daemon;
struct acceptor;
struct admit;
struct admit_entry;
struct stream_ctx;
struct guard;
struct guard_slot;
struct jobs;
struct pool;
struct store;
struct upload;
struct request;
struct tls;

/* A response being built (libmicrohttpd's, which only this layer sees). */
struct http_response;

/* An API served over HTTP. The server offers each request to its APIs in
 * order (on the first access callback, when the method, path and headers
 * are known); the first that accepts it owns it. Functions run on the
 * request's pool thread. */
struct http_api {
    const char *name;
    /* Whether the request belongs to this API. Pure: no response. */
    bool (*accepts)(struct request *req);
    /* Route and handle the request: answer now, or set up its body mode
     * (a request with a body) to answer on the final callback. */
    void (*dispatch)(struct request *req);
    /* Answer with an error in this API's format. code is a /v2 error code
     * (the HTTP layer's deferred errors use SIZE_INVALID and UNKNOWN); an
     * API with codes of its own picks one for status instead. */
    void (*error)(struct request *req, unsigned status, const char *code, const char *message);
};

/* One of the server's single-threaded libmicrohttpd daemons: a worker
 * thread with the connections the listener gave it (pool.c chose it). */
struct http_worker {
    struct server *srv;
    struct MHD_Daemon *daemon;
    size_t index;
};

struct server {
    const struct berth_config *cfg;
    struct store *store;
    struct auth *auth;                  /* authentication and authorization (owned) */
    struct tls *tls;                    /* TLS state (owned), NULL for plain HTTP */
    const struct http_api *const *apis; /* borrowed from server_start */
    size_t api_count;
    struct http_worker *workers; /* threads of them; daemon NULL once stopped */
    struct pool *pool;           /* which worker takes a connection; the caps (pool.c) */
    struct guard *guard;         /* head deadline and body rate (server/http/guard.c) */
    struct acceptor *acceptor;   /* the listening socket (server/http/accept.c) */
    struct admit *admit;         /* large bodies sent at once (server/http/admit.c); NULL: no cap */
    atomic_int refused_left;     /* waiting bodies refused at stop, not yet answered */
    pthread_mutex_t streams_mu;  /* guards the two below */
    struct stream_ctx *streams;  /* streamed bodies alive (httpd.c) */
    bool streams_closed;         /* server_stop has ended them */
    uint16_t port;
    struct sockaddr_storage probe_addr; /* the listening address (server_probe) */
    unsigned threads;                   /* workers[] in all, the upload lane's included */
    unsigned lane_first;                /* workers [lane_first, threads) are the upload lane */
    char public_url[512];
    uint32_t id_prefix;
    atomic_uint_fast64_t id_counter;
    atomic_int inflight;
    atomic_bool draining;
    /* bytes of request body buffered for callers not yet authenticated
     * (http_buffer_body), against cfg->http_unauthenticated_body_max_mib */
    atomic_int_fast64_t unverified_bytes;
    _Atomic(struct jobs *) jobs; /* background jobs, NULL when none (server_attach_jobs) */
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
    struct guard_slot *slot; /* the connection's deadlines; NULL when unguarded */
    const char *method;      /* borrowed from libmicrohttpd for the request's life */
    const char *path;        /* decoded path, borrowed likewise */
    char *raw_uri;           /* request target as received, for SigV4 (owned; NULL if over limit) */
    bool started;            /* the first access callback has run */
    char id[24];
    int64_t start_ns;
    bool is_head;
    bool dispatch_later;         /* no body: route on the final callback */
    const struct http_api *api;  /* the API that took the request; NULL before routing */
    const char *route;           /* route template for metrics (static string); NULL = none */
    bool quiet;                  /* a probe: its access line is at debug level unless it failed */
    char log_extra[200];         /* " key=value..." the API adds to the access line */
    bool header_nul;             /* a header value held a NUL byte: refused with 400 */
    char nul_header[64];         /* that header's name (cut) */
    const char *bad_framing;     /* why the body's length is in doubt (refused with 400,
                                    the connection closed after it), or NULL */
    unsigned bad_framing_status; /* 400, or 501 for a transfer coding not supported */

    /* response bookkeeping for the access log */
    bool responded;
    unsigned status;
    uint64_t bytes_out;
    uint64_t bytes_in;
    uint64_t body_reads;    /* pieces libmicrohttpd handed the body over in */
    uint64_t body_read_max; /* the largest */

    /* routing results */
    char repo[NAMES_REPO_MAX + 1];
    char ref[256];

    /* body handling */
    enum body_mode body_mode;
    struct buf body;
    bool body_unverified; /* BODY_BUFFER for a caller not yet authenticated */
    uint64_t body_charge; /* bytes of it charged to srv->unverified_bytes */
    struct upload *upload;
    uint64_t upload_base;     /* session offset when this request began writing */
    bool has_content_range;   /* request carried Content-Range */
    struct byte_range crange; /* its value */
    bool body_failed;         /* a write failed mid-body */
    unsigned deferred_status; /* with BODY_DISCARD: the answer to send */
    char deferred_code[64];
    char deferred_message[256];
    bool body_expected;         /* the head announced a body */
    bool in_head;               /* dispatching on the first access callback */
    bool body_done;             /* the final access callback has come */
    int64_t discard_ns;         /* when BODY_DISCARD began (monotonic) */
    struct http_response *held; /* an answer given before the body was read */
    unsigned held_status;       /* its status and */
    uint64_t held_len;          /* body length, for http_send once the body is read */
    body_done_fn on_done;
    struct admit_entry *admit;    /* its place among large bodies (owned); NULL when none */
    size_t worker;                /* index of the worker serving the connection */
    bool body_counted;            /* a large body counted on that worker (pool_body) */
    struct http_response *parked; /* a large body's answer waiting for a slot */
    unsigned parked_status;
    uint64_t parked_len;
    struct digest digest; /* a digest the handler parsed early */
    bool has_digest;

    /* the access key id the connection's verified client certificate maps
     * to (tls.client_principals), "" when none: /v2 acts as it when the
     * request carries no other credential */
    char cert_principal[AUTH_AKID_MAX + 1];

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

/* Whether the request's Host may be served while no access key exists
 * (the loopback-only open mode): an IP address, a name of one label
 * (localhost, the machine's name), a name under .localhost, or
 * public_url's host; no Host at all. A domain name other than
 * those is how a web page rebinds its own name to 127.0.0.1 to reach a
 * local registry (DNS rebinding), so the open mode refuses it. */
bool http_host_open_ok(struct request *req);
#define HTTP_OPEN_HOST_MESSAGE                                                                     \
    "no access key exists yet, and then berth answers only requests addressed to localhost, an "   \
    "IP address or public_url's host (a page on another domain could otherwise reach it "          \
    "through DNS rebinding): create a key (berth keys create) or set public_url"

/* Call fn for each request header / query argument in the order received
 * (key and value borrowed for the request's life; value may be NULL for a
 * query key without '='), until fn returns false. */
typedef bool (*http_value_fn)(void *arg, const char *key, const char *value);
void http_headers_each(struct request *req, http_value_fn fn, void *arg);
void http_query_each(struct request *req, http_value_fn fn, void *arg);

/* Content-Length as a number; false when absent or malformed. */
bool http_content_length(struct request *req, uint64_t *out);

/* True when the request announces a body (Content-Length > 0 or chunked). */
bool http_has_body(struct request *req);

/* ---- responses ---- */

/* A response with a copy of len bytes. NULL when out of memory. */
struct http_response *http_resp_bytes(const void *data, size_t len);
/* An empty response. */
struct http_response *http_resp_empty(void);
/* A response whose Content-Length is len but whose body is never produced:
 * for HEAD. */
struct http_response *http_resp_head(uint64_t len);
/* len bytes of the file fd from offset, sent with sendfile. Takes the fd
 * on success; on failure (NULL) the caller still owns it. */
struct http_response *http_resp_fd(int fd, uint64_t offset, uint64_t len);

/* A body produced while it is sent (the blob a pull-through cache fetch
 * is landing): read(arg, pos, buf, max, wake, wake_arg) gives the bytes at
 * pos, returning how many, 0 at the end, -1 to abort the connection (the
 * client sees a cut body), or HTTP_READ_WAIT when it has none yet: then it
 * must call wake(wake_arg) once, from any thread, when it may have some,
 * and the connection sleeps until then (no pool thread waits). len is the
 * Content-Length, or HTTP_LEN_UNKNOWN (chunked). done(arg) runs once when
 * the response is freed; after it no wake may come. On failure (NULL) done
 * is not called. */
#define HTTP_LEN_UNKNOWN UINT64_MAX
#define HTTP_READ_WAIT (-2)
typedef void (*http_wake_fn)(void *wake_arg);
typedef long long (*http_read_fn)(void *arg, uint64_t pos, char *buf, size_t max, http_wake_fn wake,
                                  void *wake_arg);
struct http_response *http_resp_stream(struct request *req, uint64_t len, http_read_fn read,
                                       void (*done)(void *arg), void *arg);

/* Add a header to a response (ignored when resp is NULL). */
void http_add(struct http_response *resp, const char *name, const char *value);

/* Queue resp with status, adding the headers every response carries, and
 * release it. body_len is what the access log reports. A NULL resp sends
 * a 500. Only the first response of a request counts. An answer given
 * while the request's body is still to come is held, the body read and
 * dropped, and the answer sent after it (as http_defer_error), so that the
 * client, which sends its whole body before it reads, sees it. */
void http_send(struct request *req, unsigned status, struct http_response *resp, uint64_t body_len);

/* Send a JSON text body with the given content type. */
void http_send_json(struct request *req, unsigned status, const char *content_type,
                    const char *json, struct http_response *prepared);

/* ---- body handling ---- */

/* The most body read and dropped after an answer is decided, and the
 * longest time spent on it; past either the connection is closed instead.
 * A body announced (Content-Length) over HTTP_DISCARD_MAX, or one the
 * client waits to be told to send (Expect: 100-continue), is answered at
 * once and the connection closes after the answer. */
#define HTTP_DISCARD_MAX (64ull << 20)
#define HTTP_DISCARD_SECONDS 60

/* Switch to discarding the body and answer with an error in the API's
 * format (struct http_api.error) once it has been read, so that the client,
 * which sends its whole body before it reads, sees the answer (see
 * HTTP_DISCARD_MAX for the bounds). */
void http_defer_error(struct request *req, unsigned status, const char *code, const char *message);

/* The request's worker thread is about to wait (true) for something
 * outside berth (an upstream registry), or is done waiting (false): while
 * it waits, the listener gives new connections to other workers as it
 * does while one sends a large body. Calls pair up. */
void http_worker_waits(struct request *req, bool waiting);

/* Buffer the request body into req->body, at most max bytes (413
 * SIZE_INVALID above). With unverified (the caller is not authenticated
 * yet: a SigV4 signature covers the body, or the caller is anonymous), the
 * bytes count against the budget all such bodies share
 * (http.unauthenticated_body_max_mib) while the request lives; a body that
 * would pass it is not buffered but discarded and answered 429
 * TOOMANYREQUESTS. Returns false when that answer is already decided (from
 * Content-Length). */
bool http_buffer_body(struct request *req, size_t max, bool unverified);

#endif
