/*
 * The libmicrohttpd daemon: start-up and drain, the access-handler state
 * machine (first call, body calls, final call), the
 * completion callback that writes the access log and frees the request.
 * Handlers run on pool threads; see server/http/http.h.
 */
#include "server/http/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "common/fault.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/rand.h"
#include "storage/store/store.h"
#include "common/str.h"
#include "common/timeutil.h"
#include "server/metrics/metrics.h"
#include "server/http/tls.h"
#include "storage/store/upload.h"

#include "accept_int.h"
#include "admit_int.h"
#include "guard_int.h"
#include "pool_int.h"
#include "response_int.h"

const char *http_header(struct request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_query(struct request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* host[:port] (or [v6][:port]) without the port, lower case, into out:
 * false when it does not fit. */
static bool host_name(const char *host, char *out, size_t cap)
{
    size_t n = 0;
    const char *end = host[0] == '[' ? strchr(host, ']') : strchr(host, ':');
    size_t len = end == NULL ? strlen(host) : (size_t)(end - host) + (host[0] == '[' ? 1 : 0);
    if (len >= cap) {
        return false;
    }
    for (; n < len; n++) {
        out[n] = (char)(host[n] >= 'A' && host[n] <= 'Z' ? host[n] + 32 : host[n]);
    }
    out[n] = '\0';
    return true;
}

void http_worker_waits(struct request *req, bool waiting)
{
    pool_body(req->srv->pool, req->worker, waiting ? 1 : -1);
}

bool http_host_open_ok(struct request *req)
{
    const char *host = http_header(req, "Host");
    char name[256], own[256];
    if (host == NULL || host[0] == '\0' || host[0] == '[') {
        return true; /* none (HTTP/1.0), or an IPv6 address */
    }
    if (!host_name(host, name, sizeof(name))) {
        return false;
    }
    struct in_addr v4;
    if (strchr(name, '.') == NULL || inet_pton(AF_INET, name, &v4) == 1 ||
        str_has_suffix(name, ".localhost")) {
        return true;
    }
    const char *url = req->srv->public_url;
    const char *at = strstr(url, "://");
    at = at != NULL ? at + 3 : url;
    char authority[256];
    size_t alen = strcspn(at, "/");
    if (alen >= sizeof(authority)) {
        return false;
    }
    memcpy(authority, at, alen);
    authority[alen] = '\0';
    return host_name(authority, own, sizeof(own)) && strcmp(name, own) == 0;
}

bool http_content_length(struct request *req, uint64_t *out)
{
    const char *cl = http_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return cl != NULL && str_parse_u64(cl, UINT64_MAX, out) == BERTH_OK;
}

bool http_has_body(struct request *req)
{
    uint64_t len;
    if (http_content_length(req, &len)) {
        return len > 0;
    }
    const char *te = http_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    return te != NULL && strstr(te, "chunked") != NULL;
}

struct value_walk {
    http_value_fn fn;
    void *arg;
};

static enum MHD_Result each_value(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    (void)kind;
    struct value_walk *w = cls;
    return w->fn(w->arg, key, value) ? MHD_YES : MHD_NO;
}

void http_headers_each(struct request *req, http_value_fn fn, void *arg)
{
    struct value_walk w = {fn, arg};
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, each_value, &w);
}

void http_query_each(struct request *req, http_value_fn fn, void *arg)
{
    struct value_walk w = {fn, arg};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, each_value, &w);
}

static void body_release(struct request *req);

/* The client waits for "100 Continue" before it sends the body. */
static bool expects_continue(struct request *req)
{
    const char *ex = http_header(req, MHD_HTTP_HEADER_EXPECT);
    return ex != NULL && strcasecmp(ex, "100-continue") == 0;
}

/* Whether an answer decided now should wait for the body to be read and
 * dropped: the body is still to come, and it is small enough to read
 * through (a larger one, or one the client has not sent yet, is answered
 * at once, on the first call). libmicrohttpd takes a response only on the
 * first or the final call, so one decided mid-body always waits. */
static bool answer_after_body(struct request *req)
{
    uint64_t cl;
    if (!req->body_expected || req->body_done || req->bad_framing != NULL) {
        return false; /* (with its length in doubt, the body is not read) */
    }
    if (!req->in_head) {
        return true;
    }
    if (expects_continue(req)) {
        return false;
    }
    return !http_content_length(req, &cl) || cl <= HTTP_DISCARD_MAX;
}

static void start_discard(struct request *req)
{
    if (req->body_mode == BODY_BUFFER) {
        body_release(req);
        buf_fini(&req->body);
    }
    req->body_mode = BODY_DISCARD;
    req->discard_ns = time_mono_ns();
}

static void send_error(struct request *req, unsigned status, const char *code, const char *message);

/* Queue resp (not NULL) now, with the headers every response carries. */
static void queue_now(struct request *req, unsigned status, struct MHD_Response *resp,
                      uint64_t body_len)
{
    MHD_add_response_header(resp, "Docker-Distribution-API-Version", "registry/2.0");
    MHD_add_response_header(resp, "X-Request-Id", req->id);
    if (MHD_get_response_header(resp, "X-Content-Type-Options") == NULL) {
        /* a manifest or blob is never to be read as a page */
        MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    }
    if (req->ident.console && MHD_get_response_header(resp, "Cache-Control") == NULL) {
        /* read with the console's session: not kept by the browser after
         * it signs out */
        MHD_add_response_header(resp, "Cache-Control", "no-store");
    }
    if (atomic_load(&req->srv->draining) || req->bad_framing != NULL) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    }
    if (MHD_queue_response(req->conn, status, resp) != MHD_YES) {
        log_error("event=queue_failed status=%u", status);
    }
    MHD_destroy_response(resp);
    req->responded = true;
    req->status = status;
    req->bytes_out = req->is_head ? 0 : body_len;
    if (!req->is_head && status >= 200 && status < 300 && body_len >= ADMIT_MIN_BYTES &&
        body_len != HTTP_LEN_UNKNOWN) {
        /* the worker sends it from now until the request completes: new
         * connections go elsewhere meanwhile (pool.c) */
        req->body_counted = true;
        pool_body(req->srv->pool, req->worker, 1);
    }
}

static void refuse_stopping(struct request *req)
{
    send_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "UNAVAILABLE",
               "the server is shutting down; retry on another instance or later");
}

/* Whether the answer is a large body that needs one of the
 * http.concurrent_bodies slots. Only on the final access callback, where
 * the connection may be suspended until a slot frees. */
static bool needs_slot(const struct request *req, unsigned status, uint64_t body_len)
{
    return req->srv->admit != NULL && !req->is_head && !req->in_head && req->admit == NULL &&
           status >= 200 && status < 300 && body_len >= ADMIT_MIN_BYTES &&
           body_len != HTTP_LEN_UNKNOWN;
}

/* Take a slot for the answer, or park it (the connection sleeps until
 * admit.c resumes it; on_request then calls answer_parked). True when it
 * may be queued now. On false the response is taken care of. */
static bool take_slot(struct request *req, unsigned status, struct MHD_Response *resp,
                      uint64_t body_len)
{
    req->admit = calloc(1, sizeof(*req->admit));
    if (req->admit == NULL) {
        return true; /* out of memory: send uncounted rather than fail */
    }
    int fd = -1;
    const union MHD_ConnectionInfo *fi =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (fi != NULL) {
        fd = fi->connect_fd;
    }
    switch (admit_enter(req->srv->admit, req->admit, req->conn, fd)) {
    case ADMIT_GO:
        return true;
    case ADMIT_QUEUED:
        req->parked = http_wrap_response(resp);
        req->parked_status = status;
        req->parked_len = body_len;
        return false;
    case ADMIT_CLOSED:
        break;
    }
    MHD_destroy_response(resp);
    refuse_stopping(req);
    return false;
}

/* The connection of a parked answer was resumed: send it if it now holds
 * a slot, refuse it if the server is stopping. */
static void answer_parked(struct request *req)
{
    enum admit_state st = admit_state(req->srv->admit, req->admit);
    if (st == ADMIT_WAITING) {
        return; /* not its turn yet (a spurious call) */
    }
    struct MHD_Response *resp = http_mhd_response(req->parked);
    req->parked = NULL;
    if (st == ADMIT_REFUSED) {
        MHD_destroy_response(resp);
        refuse_stopping(req);
        atomic_fetch_sub(&req->srv->refused_left, 1);
        return;
    }
    queue_now(req, req->parked_status, resp, req->parked_len);
}

void http_send(struct request *req, unsigned status, struct http_response *response,
               uint64_t body_len)
{
    struct MHD_Response *resp = http_mhd_response(response);
    if (req->responded || req->held != NULL || req->parked != NULL) {
        if (resp) {
            MHD_destroy_response(resp);
        }
        return;
    }
    if (resp != NULL && answer_after_body(req)) {
        /* a response queued now would close the connection under a
         * client still sending: hold it until the body is read */
        start_discard(req);
        req->held = response;
        req->held_status = status;
        req->held_len = body_len;
        return;
    }
    if (resp == NULL) {
        static const char oom[] =
            "{\"errors\":[{\"code\":\"UNKNOWN\",\"message\":\"out of memory\"}]}";
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        resp =
            MHD_create_response_from_buffer(sizeof(oom) - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
        body_len = sizeof(oom) - 1;
        if (resp == NULL) {
            req->responded = true;
            req->status = status;
            return;
        }
    }
    if (needs_slot(req, status, body_len) && !take_slot(req, status, resp, body_len)) {
        return;
    }
    queue_now(req, status, resp, body_len);
}

void http_send_json(struct request *req, unsigned status, const char *content_type,
                    const char *json, struct http_response *prepared)
{
    size_t len = strlen(json);
    struct http_response *resp = prepared;
    if (resp == NULL) {
        resp = http_resp_bytes(json, len);
    }
    http_add(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    http_send(req, status, resp, len);
}

/* An error in the format of the API that took the request, or of the
 * first API when none did. */
static void send_error(struct request *req, unsigned status, const char *code, const char *message)
{
    const struct http_api *api = req->api ? req->api : req->srv->apis[0];
    api->error(req, status, code, message);
}

void http_defer_error(struct request *req, unsigned status, const char *code, const char *message)
{
    if (req->body_mode == BODY_DISCARD || req->held != NULL || req->responded) {
        return; /* the first error wins */
    }
    if (!answer_after_body(req)) {
        send_error(req, status, code, message);
        return;
    }
    start_discard(req);
    req->deferred_status = status;
    str_copy(req->deferred_code, sizeof(req->deferred_code), code);
    str_copy(req->deferred_message, sizeof(req->deferred_message), message);
}

static int64_t unverified_budget(const struct server *srv)
{
    return srv->cfg->http_unauthenticated_body_max_mib * (1 << 20);
}

static void body_release(struct request *req)
{
    if (req->body_charge > 0) {
        atomic_fetch_sub(&req->srv->unverified_bytes, (int_fast64_t)req->body_charge);
        req->body_charge = 0;
    }
}

static void budget_refuse(struct request *req)
{
    body_release(req);
    buf_fini(&req->body);
    log_warn("event=body_budget_full budget_mib=%lld",
             (long long)req->srv->cfg->http_unauthenticated_body_max_mib);
    http_defer_error(req, 429, "TOOMANYREQUESTS",
                     "too many unauthenticated request bodies are being received; retry later");
}

/* Charge len more bytes of an unverified body; false (nothing charged)
 * when the budget cannot hold them. */
static bool body_charge(struct request *req, uint64_t len)
{
    int_fast64_t total = atomic_fetch_add(&req->srv->unverified_bytes, (int_fast64_t)len);
    if (total + (int_fast64_t)len > unverified_budget(req->srv)) {
        atomic_fetch_sub(&req->srv->unverified_bytes, (int_fast64_t)len);
        return false;
    }
    req->body_charge += len;
    return true;
}

bool http_buffer_body(struct request *req, size_t max, bool unverified)
{
    uint64_t cl;
    bool has_cl = http_content_length(req, &cl);
    if (has_cl && cl > max) {
        http_defer_error(req, MHD_HTTP_CONTENT_TOO_LARGE, "SIZE_INVALID",
                         "request body is larger than the limit");
        return false;
    }
    buf_init(&req->body, max);
    req->body_mode = BODY_BUFFER;
    req->body_unverified = unverified;
    /* the whole announced body is reserved at once: a request that
     * cannot be held is refused before any of it is read */
    if (unverified && has_cl && cl > 0 && !body_charge(req, cl)) {
        budget_refuse(req);
        return false;
    }
    return true;
}

/* A request body that could not be kept (rc): out of memory or descriptors,
 * a hash OpenSSL could not compute, or the object store out of reach is
 * 503 (the client retries), anything else 500. */
static void body_store_failed(struct request *req, enum berth_err rc)
{
    log_error("event=body_store_failed err=%s", berth_strerror(rc));
    if (rc == BERTH_ENOMEM || rc == BERTH_ENOFD || rc == BERTH_EUNAVAILABLE) {
        http_defer_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "UNAVAILABLE",
                         "could not store the uploaded data now; retry later");
        return;
    }
    http_defer_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "UNKNOWN",
                     "could not store the uploaded data");
}

/* Consume one piece of request body according to the request's mode.
 * Returns false to drop the connection. */
static bool consume_body(struct request *req, const char *data, size_t len)
{
    req->bytes_in += len;
    guard_body_bytes(req->slot, len);
    switch (req->body_mode) {
    case BODY_BUFFER: {
        if (req->body_unverified && req->body.len + len > req->body_charge &&
            !body_charge(req, req->body.len + len - req->body_charge)) {
            budget_refuse(req); /* a chunked body, or more than announced */
            return true;
        }
        enum berth_err rc = buf_append(&req->body, data, len);
        if (rc == BERTH_ETOOBIG) {
            body_release(req);
            buf_fini(&req->body);
            http_defer_error(req, MHD_HTTP_CONTENT_TOO_LARGE, "SIZE_INVALID",
                             "request body is larger than the limit");
        } else if (rc != BERTH_OK) {
            body_store_failed(req, rc);
        }
        return true;
    }
    case BODY_UPLOAD: {
        if (req->bytes_in == len) {
            /* tests: a worker stuck in a write (a stalled disk); asked
             * once per request, not per piece */
            fault_hold("upload_write");
        }
        enum berth_err rc = upload_write(req->upload, data, len);
        if (rc == BERTH_EUNAVAILABLE) {
            /* the object store a shared session's bytes go to */
            req->body_failed = true;
            http_defer_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "UNAVAILABLE",
                             "storage unavailable; nothing was kept of this request, retry later");
        } else if (rc != BERTH_OK) {
            req->body_failed = true;
            body_store_failed(req, rc);
        }
        return true;
    }
    case BODY_DISCARD:
        /* bounded in bytes and time: then the connection closes */
        if (time_mono_ns() - req->discard_ns > (int64_t)HTTP_DISCARD_SECONDS * 1000000000) {
            log_warn("event=discard_timeout bytes_in=%llu", (unsigned long long)req->bytes_in);
            return false;
        }
        break;
    case BODY_NONE:
        break;
    }
    return req->bytes_in <= HTTP_DISCARD_MAX;
}

/* Longest request target kept verbatim for SigV4 (path + query limits). */
#define RAW_URI_MAX (SIGV4_PATH_MAX + SIGV4_QUERY_MAX)

/* What a connection carries from its start to its close (libmicrohttpd's
 * socket context): the guard's slot and the TLS transport. */
struct conn_ctx {
    struct guard_slot *slot;
    struct tls_conn *tls;
    /* the request libmicrohttpd has not yet reported complete, or NULL:
     * freed when the connection ends if it never will be (below) */
    struct request *req;
};

static struct conn_ctx *conn_context(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci != NULL ? ci->socket_context : NULL;
}

static struct request *request_alloc(struct server *srv, struct MHD_Connection *conn)
{
    struct request *req = calloc(1, sizeof(*req));
    if (req == NULL) {
        return NULL;
    }
    req->srv = srv;
    req->conn = conn;
    const union MHD_ConnectionInfo *di = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_DAEMON);
    for (size_t i = 0; di != NULL && i < srv->threads; i++) {
        if (srv->workers[i].daemon == di->daemon) {
            req->worker = i;
        }
    }
    pool_request(srv->pool, req->worker, 1);
    struct conn_ctx *c = conn_context(conn);
    req->slot = c != NULL ? c->slot : NULL;
    if (c != NULL) {
        c->req = req;
    }
    const char *principal = c != NULL ? tls_connection_principal(c->tls) : NULL;
    if (principal != NULL) {
        str_copy(req->cert_principal, sizeof(req->cert_principal), principal);
    }
    req->ident.anonymous = true;
    buf_init(&req->body, 0);
    return req;
}

/* libmicrohttpd's URI log hook runs before the target is unescaped and
 * split: the one place to see it as the client sent it, which SigV4
 * signs. Its result is the request's context from then on. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct request *req = request_alloc(cls, conn);
    if (req != NULL && uri != NULL) {
        size_t n = strnlen(uri, RAW_URI_MAX + 1);
        if (n <= RAW_URI_MAX) {
            req->raw_uri = str_ndup(uri, n);
        }
    }
    return req;
}

/* ---- NUL in header values ----
 * libmicrohttpd 0.9.75 hands header values over as C strings cut at the
 * first NUL, and its value_size is their strlen: the API cannot show the
 * NUL. It parses the head in place, though, in its read buffer, turning
 * each line end (CR and LF) into NUL bytes, and every value it gives
 * points into that buffer, in the order received. So a value's line ends
 * with at most two NUL bytes right after the string, then the next
 * header's name; anything else there (more NULs, or bytes) is what came
 * after a NUL inside the value. The head spans header_size bytes from the
 * method. A NUL that ends a value on a bare-LF line cannot be told from a
 * CRLF and goes unseen; the bytes after it would be cut, and there are
 * none. */
struct nul_scan {
    const char *head;     /* the head in libmicrohttpd's buffer */
    const char *head_end; /* one past it */
    const char *value_end;
    const char *name;
    const char *found; /* the name of the first header found with a NUL */
};

static bool in_head(const struct nul_scan *ns, const char *p)
{
    return p >= ns->head && p <= ns->head_end;
}

/* Whether [from, to) is what a line end leaves: at most max NUL bytes. */
static bool only_line_end(const char *from, const char *to, ptrdiff_t max)
{
    if (to - from > max) {
        return false;
    }
    for (const char *p = from; p < to; p++) {
        if (*p != '\0') {
            return false;
        }
    }
    return true;
}

static enum MHD_Result nul_each(void *cls, enum MHD_ValueKind kind, const char *key,
                                size_t key_size, const char *value, size_t value_size)
{
    (void)kind;
    (void)key_size;
    struct nul_scan *ns = cls;
    /* names that are not in the head (libmicrohttpd copies a folded
     * header's) say nothing of where the previous line ended */
    if (ns->value_end != NULL && in_head(ns, key) && key > ns->value_end &&
        !only_line_end(ns->value_end, key, 2)) {
        ns->found = ns->name;
        return MHD_NO;
    }
    ns->value_end = NULL;
    if (value != NULL && in_head(ns, value) && in_head(ns, value + value_size)) {
        ns->value_end = value + value_size;
        ns->name = key;
    }
    return MHD_YES;
}

/* The name of a request header whose value held a NUL byte, or NULL. */
static const char *header_with_nul(struct MHD_Connection *conn, const char *method)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    if (ci == NULL || ci->header_size == 0) {
        return NULL;
    }
    struct nul_scan ns = {.head = method, .head_end = method + ci->header_size};
    MHD_get_connection_values_n(conn, MHD_HEADER_KIND, nul_each, &ns);
    if (ns.found == NULL && ns.value_end != NULL) {
        /* the last line: its end and the empty line's, at most four NULs */
        const char *to = ns.value_end + 4 < ns.head_end ? ns.value_end + 4 : ns.head_end;
        for (const char *p = ns.value_end; p < to; p++) {
            if (*p != '\0') {
                ns.found = ns.name;
                break;
            }
        }
    }
    return ns.found;
}

struct framing {
    const char *length;   /* the first Content-Length value */
    bool lengths_differ;  /* a later Content-Length says otherwise */
    bool transfer_coding; /* Transfer-Encoding is there */
    bool not_chunked;     /* and its last coding is not chunked */
    bool other_coding;    /* or it has one more than chunked */
};

/* Whether a Transfer-Encoding value ends with the chunked coding. */
static bool ends_chunked(const char *te)
{
    const char *last = strrchr(te, ',');
    last = last != NULL ? last + 1 : te;
    last += strspn(last, " \t");
    size_t n = strcspn(last, " \t;");
    return n == 7 && strncasecmp(last, "chunked", 7) == 0 &&
           last[n + strspn(last + n, " \t")] == '\0';
}

static enum MHD_Result framing_each(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind;
    struct framing *f = cls;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        f->lengths_differ = f->lengths_differ ||
                            (f->length != NULL && value != NULL && strcmp(f->length, value) != 0);
        f->length = f->length != NULL ? f->length : value;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        f->transfer_coding = true;
        f->not_chunked = f->not_chunked || value == NULL || !ends_chunked(value);
        f->other_coding = f->other_coding || value == NULL || strcasecmp(value, "chunked") != 0;
    }
    return MHD_YES;
}

/* Why the request's body length is in doubt, or NULL. libmicrohttpd takes
 * the first Content-Length and reads what follows the body it gives as the
 * next request; a proxy in front that took the last one, or the
 * Transfer-Encoding, would have forwarded those bytes as this request's
 * body: one request smuggled inside another. A transfer coding that does
 * not end in chunked has no end but the connection's. RFC 9112 (6.1, 6.3)
 * has a server refuse such a request with 400 and close the connection;
 * chunked after another coding (which libmicrohttpd does not decode: it
 * waited for a body it never read) is 501, also closed. */
static const char *framing_doubt(struct MHD_Connection *conn, unsigned *status)
{
    *status = 400;
    struct framing f = {0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, framing_each, &f);
    if (f.lengths_differ) {
        return "the request's Content-Length headers disagree";
    }
    if (f.length != NULL && f.transfer_coding) {
        return "the request has both Content-Length and Transfer-Encoding";
    }
    if (f.not_chunked) {
        return "the request's Transfer-Encoding does not end in chunked";
    }
    if (f.other_coding) {
        *status = 501;
        return "the request's Transfer-Encoding is not supported: only chunked is";
    }
    return NULL;
}

static void request_start(struct request *req, const char *url, const char *method)
{
    struct server *srv = req->srv;
    req->started = true;
    req->method = method;
    req->path = url;
    req->start_ns = time_mono_ns();
    req->is_head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    const char *nul = header_with_nul(req->conn, method);
    if (nul != NULL) {
        str_copy(req->nul_header, sizeof(req->nul_header), nul);
        req->header_nul = true;
    }
    req->bad_framing = framing_doubt(req->conn, &req->bad_framing_status);
    uint64_t n = atomic_fetch_add(&srv->id_counter, 1);
    snprintf(req->id, sizeof(req->id), "%08x%08llx", srv->id_prefix, (unsigned long long)n);
}

static void request_free(struct request *req)
{
    if (req->upload != NULL) {
        upload_release(req->upload);
    }
    if (req->held != NULL) {
        MHD_destroy_response(http_mhd_response(req->held));
    }
    if (req->parked != NULL) {
        /* resumed, then closed (the server stopping) before it answered */
        MHD_destroy_response(http_mhd_response(req->parked));
        if (admit_state(req->srv->admit, req->admit) == ADMIT_REFUSED) {
            atomic_fetch_sub(&req->srv->refused_left, 1);
        }
    }
    if (req->admit != NULL) {
        admit_leave(req->srv->admit, req->admit);
        free(req->admit);
    }
    if (req->body_counted) {
        pool_body(req->srv->pool, req->worker, -1);
    }
    pool_request(req->srv->pool, req->worker, -1);
    auth_identity_clear(req->srv->auth, &req->ident);
    body_release(req);
    buf_fini(&req->body);
    free(req->raw_uri);
    free(req);
}

static void dispatch(struct request *req)
{
    if (strlen(req->path) > 2048) {
        send_error(req, MHD_HTTP_URI_TOO_LONG, "NAME_INVALID", "request URI too long");
        return;
    }
    for (size_t i = 0; i < req->srv->api_count; i++) {
        if (req->srv->apis[i]->accepts(req)) {
            req->api = req->srv->apis[i];
            if (req->header_nul) {
                /* a value cut at a NUL is not what the client sent */
                char message[160], name[80];
                snprintf(message, sizeof(message), "the value of header '%s' contains a NUL byte",
                         req->nul_header);
                log_info("event=bad_header reason=nul name=%s",
                         log_value(req->nul_header, name, sizeof(name)));
                send_error(req, 400, "BAD_REQUEST", message);
                return;
            }
            if (req->bad_framing != NULL) {
                log_info("event=bad_header reason=framing msg=\"%s\"", req->bad_framing);
                send_error(req, req->bad_framing_status,
                           req->bad_framing_status == 400 ? "BAD_REQUEST" : "UNSUPPORTED",
                           req->bad_framing);
                return;
            }
            req->api->dispatch(req);
            return;
        }
    }
    send_error(req, 404, "NOT_FOUND", "no such endpoint");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct server *srv = cls;
    struct request *req = *con_cls;
    if (req == NULL || !req->started) {
        if (req == NULL) {
            req = request_alloc(srv, conn); /* the URI hook ran out of memory */
            if (req == NULL) {
                return MHD_NO;
            }
            *con_cls = req;
        }
        request_start(req, url, method);
        atomic_fetch_add(&srv->inflight, 1);
        req->body_expected = http_has_body(req);
        guard_head_done(req->slot, req->body_expected);
        /* A response queued before the request is fully read makes
         * libmicrohttpd close the connection, so requests without a body
         * are handled on the final call, keeping keep-alive. Requests with
         * a body are routed now to set up streaming (or refuse early). */
        if (http_has_body(req) || req->bad_framing != NULL) {
            log_set_request_id(req->id);
            req->in_head = true;
            dispatch(req);
            req->in_head = false;
            log_set_request_id(NULL);
        } else {
            req->dispatch_later = true;
        }
        return MHD_YES;
    }
    log_set_request_id(req->id);
    enum MHD_Result result = MHD_YES;
    if (*upload_data_size > 0) {
        req->body_reads++;
        if (*upload_data_size > req->body_read_max) {
            req->body_read_max = *upload_data_size;
        }
        if (!consume_body(req, upload_data, *upload_data_size)) {
            result = MHD_NO;
        }
        *upload_data_size = 0;
    } else if (req->parked != NULL) {
        answer_parked(req);
    } else if (req->dispatch_later) {
        req->dispatch_later = false;
        guard_handling(req->slot);
        dispatch(req);
        if (!req->responded && req->parked == NULL) {
            log_error("event=handler_bug msg=\"no response queued\"");
            send_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "UNKNOWN", "no response");
        }
    } else if (!req->responded) {
        guard_handling(req->slot);
        req->body_done = true;
        if (req->held != NULL) {
            struct http_response *held = req->held;
            req->held = NULL;
            http_send(req, req->held_status, held, req->held_len);
        } else if (req->body_mode == BODY_DISCARD) {
            send_error(req, req->deferred_status, req->deferred_code, req->deferred_message);
        } else if (req->on_done != NULL) {
            req->on_done(req);
        }
        if (!req->responded && req->parked == NULL) {
            log_error("event=handler_bug msg=\"no response queued\"");
            send_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "UNKNOWN", "no response");
        }
    }
    log_set_request_id(NULL);
    return result;
}

static const char *termination_name(enum MHD_RequestTerminationCode toe)
{
    switch (toe) {
    case MHD_REQUEST_TERMINATED_COMPLETED_OK:
        return "ok";
    case MHD_REQUEST_TERMINATED_WITH_ERROR:
        return "error";
    case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED:
        return "timeout";
    case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN:
        return "shutdown";
    case MHD_REQUEST_TERMINATED_READ_ERROR:
        return "read_error";
    case MHD_REQUEST_TERMINATED_CLIENT_ABORT:
        return "client_abort";
    }
    return "unknown";
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct server *srv = cls;
    struct request *req = *con_cls;
    if (req == NULL) {
        return;
    }
    struct conn_ctx *c = conn_context(conn);
    if (c != NULL && c->req == req) {
        c->req = NULL;
    }
    guard_idle(req->slot);
    if (!req->started) {
        /* libmicrohttpd gave up on the request before handing it over */
        request_free(req);
        *con_cls = NULL;
        return;
    }
    double secs = (double)(time_mono_ns() - req->start_ns) / 1e9;
    metrics_http_request(req->api ? req->api->name : NULL, req->route, req->method, req->status,
                         secs, req->bytes_in, req->bytes_out);
    /* probes (health checks, scrapes) come every few seconds: their
     * access lines are debug unless they failed */
    enum log_level access_level = req->quiet && req->status < 400 ? LOG_DEBUG : LOG_INFO;
    if (srv->cfg->log_access && log_get_level() >= access_level) {
        char path[600], remote[64] = "-";
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci != NULL && ci->client_addr != NULL) {
            const struct sockaddr *sa = ci->client_addr;
            if (sa->sa_family == AF_INET) {
                inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
                          remote, sizeof(remote));
            } else if (sa->sa_family == AF_INET6) {
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
                          remote, sizeof(remote));
            }
        }
        double ms = secs * 1e3;
        /* how the body came: pieces and the largest (the read buffer's
         * size bounds it: server_start's upload lane) */
        char reads[64] = "";
        if (req->body_reads > 0) {
            snprintf(reads, sizeof(reads), " body_reads=%llu body_read_max=%llu",
                     (unsigned long long)req->body_reads, (unsigned long long)req->body_read_max);
        }
        log_set_request_id(req->id);
        log_msg(access_level,
                "event=access method=%s path=%s status=%u bytes=%llu bytes_in=%llu "
                "duration_ms=%.3f remote=%s term=%s%s%s",
                req->method, log_value(req->path, path, sizeof(path)), req->status,
                (unsigned long long)req->bytes_out, (unsigned long long)req->bytes_in, ms, remote,
                termination_name(toe), reads, req->log_extra);
        log_set_request_id(NULL);
    }
    request_free(req);
    *con_cls = NULL;
    atomic_fetch_sub(&srv->inflight, 1);
}

/* libmicrohttpd takes one connection-notify callback: it feeds the
 * connection guard, the open-connections gauge and the TLS transport. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct http_worker *w = cls;
    struct server *srv = w->srv;
    bool started = toe == MHD_CONNECTION_NOTIFY_STARTED;
    if (!started) {
        /* every connection came through the listener's pool_take */
        const union MHD_ConnectionInfo *ai =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        /* libmicrohttpd's copy is as long as its family needs */
        pool_release(srv->pool, w->index, ai != NULL ? ai->client_addr : NULL,
                     ai != NULL ? (socklen_t)sizeof(struct sockaddr_storage) : 0);
    }
    /* the guard keeps its slot here; TLS its transport */
    struct conn_ctx *c = started ? calloc(1, sizeof(*c)) : *socket_context;
    if (started) {
        *socket_context = c;
    }
    metrics_connection_delta(started ? 1 : -1);
    if (c == NULL) {
        if (started && srv->tls != NULL) {
            /* no transport for the plain-HTTP check: refuse the connection */
            const union MHD_ConnectionInfo *fi =
                MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
            if (fi != NULL) {
                shutdown(fi->connect_fd, SHUT_RDWR);
            }
        }
        return; /* unguarded: libmicrohttpd's idle timeout still applies */
    }
    if (!started && c->req != NULL) {
        /* libmicrohttpd 0.9.75 ends a connection without reporting its
         * request complete when it cannot even build its own error answer
         * (a request whose query parameters fill the connection's memory
         * pool): the request is freed here, or it would leak, and its
         * worker would count it forever */
        struct request *req = c->req;
        c->req = NULL;
        log_debug("event=request_abandoned started=%d", (int)req->started);
        if (req->started) {
            atomic_fetch_sub(&srv->inflight, 1);
        }
        request_free(req);
    }
    guard_notify(srv->guard, conn, (void **)&c->slot, toe);
    if (!started) {
        tls_connection_end(&c->tls);
        free(c);
        *socket_context = NULL;
        return;
    }
    if (srv->tls != NULL) {
        const union MHD_ConnectionInfo *si =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        const union MHD_ConnectionInfo *fi =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (si == NULL || fi == NULL ||
            !tls_connection_start(srv->tls, si->tls_session, fi->connect_fd, &c->tls)) {
            log_warn("event=tls_connection_setup_failed");
            if (fi != NULL) {
                shutdown(fi->connect_fd, SHUT_RDWR);
            }
        }
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) {
        msg[--n] = '\0';
    }
    char val[600];
    /* libmicrohttpd says this of every TLS handshake that does not finish:
     * a client that gave up, a scanner, the watchdog's probe of a mutual-TLS
     * port (probe.c); refusals of client certificates have their own line
     * (tls.c, event=tls_refused) */
    if (strstr(msg, "handshake message out of context") != NULL) {
        log_debug("event=httpd msg=%s", log_value(msg, val, sizeof(val)));
        return;
    }
    log_warn("event=httpd msg=%s", log_value(msg, val, sizeof(val)));
}

size_t http_unescape(char *s, bool is_path)
{
    char *out = s;
    for (const char *in = s; *in; in++) {
        int hi, lo;
        if (*in == '%' && (hi = str_hex_value(in[1])) >= 0 && (lo = str_hex_value(in[2])) >= 0) {
            char c = (char)(hi * 16 + lo);
            /* In the path an encoded '/' or NUL would change how the
             * path splits (or end it early): keep them encoded, so the
             * repository name grammar rejects them. */
            if (!(is_path && (c == '/' || c == '\0'))) {
                *out++ = c;
                in += 2;
                continue;
            }
        }
        *out++ = *in;
    }
    *out = '\0';
    return (size_t)(out - s);
}

/* libmicrohttpd's unescape hook: the request path is the one string that
 * starts with '/' (query keys and values do not, in practice). */
static size_t mhd_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    return http_unescape(s, s[0] == '/');
}

/* Resolve "host:port" into a socket address (numeric or a name). */
static enum berth_err resolve_listen(const char *listen, struct sockaddr_storage *out,
                                     socklen_t *len)
{
    char host[256];
    uint16_t port;
    if (config_listen_parts(listen, host, sizeof(host), &port) != BERTH_OK) {
        return BERTH_EINVAL;
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL) {
        return BERTH_EINVAL;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    if (out->ss_family == AF_INET) {
        ((struct sockaddr_in *)(void *)out)->sin_port = htons(port);
    } else {
        ((struct sockaddr_in6 *)(void *)out)->sin6_port = htons(port);
    }
    return BERTH_OK;
}

static bool addr_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr);
        return (a >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a6)) {
            return true;
        }
        return IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127;
    }
    return false;
}

bool server_listen_is_loopback(const char *listen)
{
    char host[256];
    uint16_t port;
    if (config_listen_parts(listen, host, sizeof(host), &port) != BERTH_OK) {
        return false;
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL) {
        return false;
    }
    bool all = true;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        all = all && addr_is_loopback(ai->ai_addr);
    }
    freeaddrinfo(res);
    return all;
}

/* Stop every started daemon, one after the other. */
static void stop_workers(struct server *srv)
{
    for (size_t i = 0; srv->workers != NULL && i < srv->threads; i++) {
        if (srv->workers[i].daemon != NULL) {
            MHD_stop_daemon(srv->workers[i].daemon);
            srv->workers[i].daemon = NULL;
        }
    }
}

/* server_start's failure path once the listener, guard and admission
 * exist: stop and free all it set up, srv too. */
static void start_undo(struct server *srv)
{
    acceptor_stop(srv->acceptor);
    stop_workers(srv);
    admit_stop(srv->admit);
    guard_stop(srv->guard);
    pool_free(srv->pool);
    free(srv->workers);
    auth_free(srv->auth);
    tls_free(srv->tls);
    free(srv);
}

static unsigned worker_count(const struct berth_config *cfg)
{
    if (cfg->http_threads > 0) {
        return (unsigned)cfg->http_threads;
    }
    /* Four per CPU: a worker's connections wait while it blocks (a
     * stage's fsync, a hasher's drain, a log sync) or waits for a CPU, so
     * with 16 large pushes on 2 CPUs four connections per worker left
     * some pushes far behind the others; 2 per CPU was 0.5x-0.96x of
     * this there, with 1 MiB pushes and peak RSS (+1.5 MiB) about the
     * same (docs/benchmarks.md, issue 16's third pass). */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return (unsigned)(cpus > 0 ? cpus * 4 : 8);
}

/* Descriptors the server may hold at its limits: one per connection
 * libmicrohttpd serves, one per blob being sent on it, up to twice the
 * connection limit (at least 256) of accepted sockets that have not sent
 * anything yet (accept.c), and a margin for the store, logs and jobs. */
static rlim_t fds_needed(const struct berth_config *cfg)
{
    rlim_t limit = (rlim_t)cfg->http_connection_limit;
    rlim_t silent = limit * 2 < 256 ? 256 : limit * 2;
    return limit * 2 + silent + 256;
}

/* The soft descriptor limit is often 1024 (systemd and most shells) while
 * the hard one is far higher: at the default connection limit a pull storm
 * would then fail with EMFILE (a socket or a blob that cannot be opened).
 * Raise the soft limit to what the limits above need, or to the hard limit
 * when that is lower (Go programs such as distribution raise it to the
 * hard limit at start). */
static void raise_fd_limit(const struct berth_config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) {
        return;
    }
    rlim_t want = fds_needed(cfg);
    if (rl.rlim_cur >= want) {
        return;
    }
    rlim_t cur = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
    if (rl.rlim_cur > cur && setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        rl.rlim_cur = cur;
    }
    if (rl.rlim_cur < want) {
        log_warn("event=fd_limit_low fds=%llu needed=%llu msg=\"raise the hard limit "
                 "(ulimit -Hn, LimitNOFILE=) or lower http.connection_limit\"",
                 (unsigned long long)rl.rlim_cur, (unsigned long long)want);
    } else {
        log_info("event=fd_limit_raised from=%llu to=%llu", (unsigned long long)cur,
                 (unsigned long long)rl.rlim_cur);
    }
}

enum berth_err server_start(const struct berth_config *cfg, struct store *store,
                            const struct http_api *const *apis, size_t api_count,
                            struct server **out)
{
    if (api_count == 0) {
        return BERTH_EINVAL;
    }
    struct server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        return BERTH_ENOMEM;
    }
    srv->cfg = cfg;
    srv->store = store;
    pthread_mutex_init(&srv->streams_mu, NULL);
    srv->apis = apis;
    srv->api_count = api_count;
    uint32_t prefix = 0;
    rand_bytes(&prefix, sizeof(prefix));
    srv->id_prefix = prefix;
    if (tls_configured(cfg)) {
        char err[512];
        http_resp_files_by_reader();
        enum berth_err trc = tls_new(cfg, &srv->tls, err, sizeof(err));
        if (trc != BERTH_OK) {
            char v[600];
            log_error("event=server_error msg=%s", log_value(err, v, sizeof(v)));
            free(srv);
            return trc;
        }
    }
    if (cfg->public_url[0] != '\0') {
        str_copy(srv->public_url, sizeof(srv->public_url), cfg->public_url);
    } else {
        snprintf(srv->public_url, sizeof(srv->public_url), "%s://%s", srv->tls ? "https" : "http",
                 cfg->listen);
    }
    /* Served beyond loopback without "anonymous": true, auth stays on even
     * if the last access key is deleted while running. */
    bool required =
        cfg->auth_required || (!cfg->anonymous && !server_listen_is_loopback(cfg->listen));
    enum berth_err arc = auth_new(cfg, store, required, &srv->auth);
    if (arc != BERTH_OK) {
        tls_free(srv->tls);
        free(srv);
        return arc;
    }

    raise_fd_limit(cfg);
    struct sockaddr_storage addr;
    socklen_t addr_len = 0;
    if (resolve_listen(cfg->listen, &addr, &addr_len) != BERTH_OK) {
        log_error("event=server_error msg=\"cannot resolve listen address\" listen=%s",
                  cfg->listen);
        auth_free(srv->auth);
        tls_free(srv->tls);
        free(srv);
        return BERTH_EINVAL;
    }
    srv->probe_addr = addr;
    /* poll(), not epoll: libmicrohttpd 0.9.75's edge-triggered epoll loop
     * can miss a client's FIN that arrives together with the last body
     * bytes, leaving the request (and a held upload session) alive until
     * the idle timeout. Level-triggered poll() sees it. */
    /* berth listens and accepts itself, to answer what libmicrohttpd
     * would drop in silence (server/http/accept.c) */
    unsigned flags =
        MHD_USE_ERROR_LOG | MHD_USE_ITC | MHD_USE_NO_LISTEN_SOCKET | MHD_ALLOW_SUSPEND_RESUME |
        (cfg->http_epoll ? MHD_USE_AUTO_INTERNAL_THREAD : MHD_USE_POLL_INTERNAL_THREAD);
    if (acceptor_listen((const struct sockaddr *)&addr, addr_len, &srv->acceptor) != BERTH_OK) {
        log_error("event=server_error msg=\"cannot listen\" listen=%s", cfg->listen);
        auth_free(srv->auth);
        tls_free(srv->tls);
        free(srv);
        return BERTH_EIO;
    }
    if (cfg->http_turbo) {
        flags |= MHD_USE_TURBO;
    }
    if (srv->tls != NULL) {
        flags |= MHD_USE_TLS;
    }
    /* The upload lane: as many daemons again, whose connections get
     * http.upload_memory_limit_kib each. libmicrohttpd 0.9.75 fixes a
     * connection's buffer at its start, per daemon, reads a body in pieces
     * of about half of it (16 KiB at the default 32 KiB: three syscalls per
     * 16 KiB of a 100 MiB push), and clears all of it between requests, so
     * every keep-alive connection keeps it resident: the pull storm's 1,000
     * connections must stay at 32 KiB. The listener sends a connection
     * whose first request is a blob push here while the lane holds fewer
     * than http.upload_connection_limit (accept.c): its memory is bounded
     * by their product whoever the clients are (docs/benchmarks.md). */
    unsigned normal = worker_count(cfg);
    bool lane = cfg->http_upload_memory_limit_kib > cfg->http_memory_limit_kib &&
                cfg->http_upload_connection_limit > 0;
    srv->lane_first = normal;
    srv->threads = lane ? 2 * normal : normal;
    if (guard_start(cfg, &srv->guard) != BERTH_OK) {
        log_error("event=server_error msg=\"cannot start the connection guard\"");
        acceptor_stop(srv->acceptor);
        auth_free(srv->auth);
        tls_free(srv->tls);
        free(srv);
        return BERTH_EIO;
    }
    if (cfg->http_concurrent_bodies > 0 &&
        admit_start((unsigned)cfg->http_concurrent_bodies,
                    (uint64_t)cfg->http_body_slot_min_rate_bytes, &srv->admit) != BERTH_OK) {
        log_error("event=server_error msg=\"cannot start the body admission\"");
        guard_stop(srv->guard);
        acceptor_stop(srv->acceptor);
        auth_free(srv->auth);
        tls_free(srv->tls);
        free(srv);
        return BERTH_EIO;
    }
    srv->workers = calloc(srv->threads, sizeof(*srv->workers));
    if (srv->workers == NULL ||
        pool_new(srv->threads, cfg->http_connection_limit, cfg->http_per_client_connection_limit,
                 &srv->pool) != BERTH_OK) {
        log_error("event=server_error msg=\"cannot start the HTTP daemon\"");
        start_undo(srv);
        return BERTH_ENOMEM;
    }
    pool_lane(srv->pool, srv->lane_first, cfg->http_upload_connection_limit);
    /* One single-threaded daemon per worker, not libmicrohttpd's pool: its
     * pool puts a connection on the worker the socket's number picks, so
     * a HEAD could wait behind a worker busy sending bodies while others
     * idle; berth's listener picks the least busy (pool.c). The caps over
     * all workers are pool.c's too: each daemon may hold twice the
     * connection limit (never reached: the listener refuses first, and a
     * closed connection leaves the pool's count before libmicrohttpd's)
     * and no per-address cap of its own. */
    struct MHD_OptionItem opts[20];
    size_t o = 0;
    opts[o++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, NULL};
    opts[o++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, srv};
    opts[o++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT,
                                        (intptr_t)(2 * cfg->http_connection_limit), NULL};
    opts[o++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT,
                                        (intptr_t)cfg->http_timeout_seconds, NULL};
    size_t memory_at = o; /* per worker, below */
    opts[o++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT, 0, NULL};
    opts[o++] = (struct MHD_OptionItem){MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)mhd_unescape, NULL};
    opts[o++] = (struct MHD_OptionItem){MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, srv};
    size_t notify_at = o;
    opts[o++] =
        (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, NULL};
    if (srv->tls != NULL) {
        opts[o++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES};
        opts[o++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_CERT_CALLBACK, 0, tls_cert_callback()};
        /* mutual TLS: no MHD_OPTION_HTTPS_MEM_TRUST; tls.c asks for the
         * client certificate and checks it against a bundle it can reload */
    }
    opts[o++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

    for (size_t i = 0; i < srv->threads; i++) {
        struct http_worker *w = &srv->workers[i];
        w->srv = srv;
        w->index = i;
        opts[notify_at].ptr_value = w;
        opts[memory_at].value =
            (intptr_t)((i < srv->lane_first ? cfg->http_memory_limit_kib
                                            : cfg->http_upload_memory_limit_kib) *
                       1024);
        w->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_ARRAY, opts,
                                     MHD_OPTION_END);
        if (w->daemon == NULL) {
            log_error("event=server_error msg=\"cannot start the HTTP daemon\" worker=%zu", i);
            start_undo(srv);
            return BERTH_EIO;
        }
    }
    if (acceptor_run(srv->acceptor, srv) != BERTH_OK) {
        log_error("event=server_error msg=\"cannot start the listener\"");
        start_undo(srv);
        return BERTH_EIO;
    }
    srv->port = acceptor_port(srv->acceptor);
    *out = srv;
    return BERTH_OK;
}

enum berth_err server_reload_tls(struct server *srv, const struct berth_config *fresh)
{
    if (srv->tls == NULL) {
        return BERTH_ENOTFOUND;
    }
    char err[512];
    enum berth_err rc = tls_reload(srv->tls, fresh->tls_client_principals, err, sizeof(err));
    if (rc != BERTH_OK) {
        char v[600];
        log_error("event=tls_reload_failed msg=%s", log_value(err, v, sizeof(v)));
    } else {
        log_info("event=tls_reloaded cert=%s client_principals=%zu", srv->cfg->tls_cert_file,
                 json_is_array(fresh->tls_client_principals)
                     ? json_array_size(fresh->tls_client_principals)
                     : (size_t)0);
    }
    return rc;
}

uint16_t server_port(const struct server *srv)
{
    return srv->port;
}

void server_attach_jobs(struct server *srv, struct jobs *jobs)
{
    atomic_store(&srv->jobs, jobs);
}

/* How long bodies refused at stop have to send their 503. */
#define STOP_REFUSE_MS 2000

void server_stop(struct server *srv, int64_t drain_ms)
{
    if (srv == NULL) {
        return;
    }
    /* Stop accepting; responses from now on carry "Connection: close", so
     * clients leave as their requests finish. */
    atomic_store(&srv->draining, true);
    acceptor_stop(srv->acceptor);
    srv->acceptor = NULL;
    int64_t deadline = time_mono_ns() + drain_ms * 1000000;
    while (atomic_load(&srv->inflight) > 0 && time_mono_ns() < deadline) {
        time_sleep_ms(20);
    }
    int left = atomic_load(&srv->inflight);
    if (left > 0) {
        log_warn("event=drain_timeout inflight=%d", left);
    }
    if (srv->admit != NULL) {
        /* Bodies still waiting for a slot sleep in suspended connections,
         * and libmicrohttpd 0.9.75 aborts the process when it is stopped
         * with one: wake each to answer 503, and give them a moment to
         * send it (MHD_stop_daemon closes whatever is left, suspended no
         * more). */
        /* added, not stored: the first may already have answered */
        int refused = (int)admit_close(srv->admit);
        atomic_fetch_add(&srv->refused_left, refused);
        if (refused > 0) {
            int64_t until = time_mono_ns() + (int64_t)STOP_REFUSE_MS * 1000000;
            while (atomic_load(&srv->refused_left) > 0 && time_mono_ns() < until) {
                time_sleep_ms(10);
            }
            log_warn("event=bodies_refused count=%d unanswered=%d", refused,
                     atomic_load(&srv->refused_left));
        }
    }
    int streams = http_streams_abort(srv);
    if (streams > 0) {
        log_warn("event=streams_cut count=%d msg=\"bodies still waiting for bytes at stop\"",
                 streams);
    }
    stop_workers(srv);
    admit_stop(srv->admit);
    guard_stop(srv->guard);
    pool_free(srv->pool);
    free(srv->workers);
    pthread_mutex_destroy(&srv->streams_mu);
    auth_free(srv->auth);
    tls_free(srv->tls);
    free(srv);
}
