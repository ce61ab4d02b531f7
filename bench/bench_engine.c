/*
 * The berth-bench request engine: one libcurl multi handle drives up to c
 * clients, each running registry operations (a push, a pull, a HEAD, ...)
 * as a fixed sequence of HTTP requests whose responses are checked before
 * the next one goes out. Upload bodies are generated while curl reads them;
 * download bodies are counted, not kept, so memory stays bounded whatever
 * the blob size. Single-threaded.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <strings.h>

#include <sys/resource.h>

#include <curl/curl.h>

#include "bench.h"
#include "common/str.h"
#include "common/timeutil.h"

/* Response bytes kept per request: enough for the 1,000-tag list and a
 * 100-entry catalog page; larger bodies are counted only. */
#define KEEP_MAX (64 * 1024)
#define ERRORS_SHOWN_MAX 10
#define MANIFEST_TYPE "application/vnd.oci.image.manifest.v1+json"

enum step {
    ST_LAYER_POST,
    ST_LAYER_PUT,
    ST_LAYER_PATCH,
    ST_LAYER_PUT_EMPTY,
    ST_CONFIG_POST,
    ST_CONFIG_PUT,
    ST_MANIFEST_PUT,
    ST_MANIFEST_HEAD,
    ST_MANIFEST_GET,
    ST_CONFIG_GET,
    ST_LAYER_GET,
    ST_TAGS_GET,
    ST_CATALOG_GET,
    ST_END,
};

static const enum step push_mono_steps[] = {ST_LAYER_POST, ST_LAYER_PUT,    ST_CONFIG_POST,
                                            ST_CONFIG_PUT, ST_MANIFEST_PUT, ST_END};
static const enum step push_streamed_steps[] = {ST_LAYER_POST,  ST_LAYER_PATCH, ST_LAYER_PUT_EMPTY,
                                                ST_CONFIG_POST, ST_CONFIG_PUT,  ST_MANIFEST_PUT,
                                                ST_END};
static const enum step pull_steps[] = {ST_MANIFEST_HEAD, ST_MANIFEST_GET, ST_CONFIG_GET,
                                       ST_LAYER_GET, ST_END};
static const enum step head_steps[] = {ST_MANIFEST_HEAD, ST_END};
static const enum step tags_steps[] = {ST_TAGS_GET, ST_END};
static const enum step catalog_steps[] = {ST_CATALOG_GET, ST_END};
static const enum step tag_put_steps[] = {ST_MANIFEST_PUT, ST_END};

enum body_kind { BODY_NONE, BODY_MEM, BODY_STREAM };

struct request {
    const char *method;
    char url[BENCH_REQ_URL_MAX];
    const char *content_type; /* NULL: none (and none invented by curl) */
    const char *accept;
    enum body_kind body;
    const char *mem; /* BODY_MEM: borrowed from the client's image */
    uint64_t seed;   /* BODY_STREAM */
    uint64_t len;    /* body length */
    uint64_t offset; /* next byte curl reads */
    bool chunked;
    size_t keep; /* response body bytes to keep */
    bool follow;
};

struct response {
    long status;
    CURLcode result;
    char errbuf[CURL_ERROR_SIZE];
    char location[BENCH_LOCATION_MAX];
    bool has_location;
    bool location_too_long;
    char digest[DIGEST_STR_MAX];
    bool has_digest;
    char range[64];
    bool has_range;
    curl_off_t content_length; /* from the header; -1 when absent */
    uint64_t body_len;
    size_t kept;
    char body[KEEP_MAX];
};

struct client {
    struct bench_engine *e;
    CURL *easy;
    struct curl_slist *headers;
    bool busy;
    /* the current op */
    size_t index;
    const enum step *steps;
    size_t step_i;
    int64_t op_start_ns;
    struct bench_image own;        /* pushed images are built here */
    const struct bench_image *img; /* the image this op works on */
    char tag[32];                  /* tag used by ST_MANIFEST_PUT */
    char upload_url[BENCH_REQ_URL_MAX];
    struct request req;
    struct response resp;
};

struct bench_engine {
    const struct bench_options *opts;
    CURLM *multi;
    struct client *clients;
    size_t client_count;
    struct bench_phase *ph; /* the phase being run */
    size_t next;            /* next op index to start */
    size_t active;          /* clients with an op in flight */
};

/* ---- small helpers ---- */

static void vfail(struct client *cl, enum bench_fail kind, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void vfail(struct client *cl, enum bench_fail kind, const char *fmt, va_list ap)
{
    struct bench_phase *ph = cl->e->ph;
    bench_stats_fail(ph->stats, kind, cl->resp.status);
    if (ph->errors_shown < ERRORS_SHOWN_MAX) {
        char msg[512];
        vsnprintf(msg, sizeof(msg), fmt, ap);
        fprintf(stderr, "berth-bench: %s: %s %s: %s", ph->label, cl->req.method, cl->req.url, msg);
        if (kind == BENCH_FAIL_STATUS && cl->resp.kept > 0) {
            /* the start of the error body, printable bytes only */
            size_t n = cl->resp.kept < 300 ? cl->resp.kept : 300;
            fputs(": ", stderr);
            for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)cl->resp.body[i];
                fputc(c >= 0x20 && c < 0x7f ? c : '.', stderr);
            }
        }
        fputc('\n', stderr);
    } else if (ph->errors_shown == ERRORS_SHOWN_MAX) {
        fprintf(stderr, "berth-bench: %s: further errors are counted, not shown\n", ph->label);
    }
    ph->errors_shown++;
}

static bool fail(struct client *cl, enum bench_fail kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool fail(struct client *cl, enum bench_fail kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(cl, kind, fmt, ap);
    va_end(ap);
    return false;
}

/* printf into a fixed buffer; false when it did not fit. */
static bool fmt_into(char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool fmt_into(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < cap;
}

static void trim_value(const char **p, size_t *len)
{
    while (*len > 0 && (**p == ' ' || **p == '\t')) {
        (*p)++;
        (*len)--;
    }
    while (*len > 0 && ((*p)[*len - 1] == '\r' || (*p)[*len - 1] == '\n' || (*p)[*len - 1] == ' ' ||
                        (*p)[*len - 1] == '\t')) {
        (*len)--;
    }
}

static bool header_is(const char *line, size_t name_len, const char *name)
{
    return strlen(name) == name_len && strncasecmp(line, name, name_len) == 0;
}

static bool copy_value(char *dst, size_t cap, const char *v, size_t len)
{
    if (len >= cap) {
        return false;
    }
    memcpy(dst, v, len);
    dst[len] = '\0';
    return true;
}

/* ---- libcurl callbacks ---- */

static size_t on_header(char *p, size_t size, size_t nitems, void *ud)
{
    struct client *cl = ud;
    struct response *r = &cl->resp;
    size_t n = size * nitems;

    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        /* A new response (after 100 Continue or a redirect): only the
         * final one's headers count. */
        r->has_location = r->location_too_long = r->has_digest = r->has_range = false;
        r->content_length = -1;
        return n;
    }
    const char *colon = memchr(p, ':', n);
    if (colon == NULL) {
        return n;
    }
    size_t name_len = (size_t)(colon - p);
    const char *v = colon + 1;
    size_t vlen = n - name_len - 1;
    trim_value(&v, &vlen);

    if (header_is(p, name_len, "location")) {
        r->has_location = copy_value(r->location, sizeof(r->location), v, vlen);
        r->location_too_long = !r->has_location;
    } else if (header_is(p, name_len, "docker-content-digest")) {
        r->has_digest = copy_value(r->digest, sizeof(r->digest), v, vlen);
    } else if (header_is(p, name_len, "range")) {
        r->has_range = copy_value(r->range, sizeof(r->range), v, vlen);
    } else if (header_is(p, name_len, "content-length")) {
        char tmp[32];
        uint64_t len;
        if (copy_value(tmp, sizeof(tmp), v, vlen) &&
            str_parse_u64(tmp, (uint64_t)INT64_MAX, &len) == BERTH_OK) {
            r->content_length = (curl_off_t)len;
        }
    }
    return n;
}

void bench_sock_buffers(int fd)
{
    int size = BENCH_SOCK_BUFFER;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
}

static int on_sockopt(void *ud, curl_socket_t fd, curlsocktype purpose)
{
    (void)ud;
    if (purpose == CURLSOCKTYPE_IPCXN) {
        bench_sock_buffers(fd);
    }
    return CURL_SOCKOPT_OK;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud)
{
    struct client *cl = ud;
    struct response *r = &cl->resp;
    size_t n = size * nmemb;

    r->body_len += n;
    size_t keep = cl->req.keep > BENCH_ERROR_BODY_MAX ? cl->req.keep : BENCH_ERROR_BODY_MAX;
    if (keep > sizeof(r->body)) {
        keep = sizeof(r->body);
    }
    if (r->kept < keep) {
        size_t take = keep - r->kept < n ? keep - r->kept : n;
        memcpy(r->body + r->kept, p, take);
        r->kept += take;
    }
    return n;
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *ud)
{
    struct client *cl = ud;
    struct request *q = &cl->req;
    size_t cap = size * nitems;
    uint64_t left = q->len - q->offset;
    size_t n = left < cap ? (size_t)left : cap;

    if (n == 0) {
        return 0;
    }
    if (q->body == BODY_MEM) {
        memcpy(buf, q->mem + q->offset, n);
    } else {
        bench_data_fill(q->seed, q->offset, buf, n);
    }
    q->offset += n;
    return n;
}

/* curl rewinds an upload when it must resend it (a redirect, a reused
 * connection that turned out dead); the stream can restart anywhere. */
static int on_seek(void *ud, curl_off_t offset, int origin)
{
    struct client *cl = ud;
    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > cl->req.len) {
        return CURL_SEEKFUNC_CANTSEEK;
    }
    cl->req.offset = (uint64_t)offset;
    return CURL_SEEKFUNC_OK;
}

/* ---- requests ---- */

static bool add_header(struct client *cl, const char *h)
{
    struct curl_slist *n = curl_slist_append(cl->headers, h);
    if (n == NULL) {
        return false;
    }
    cl->headers = n;
    return true;
}

#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        if (curl_easy_setopt(h, opt, val) != CURLE_OK) {                                           \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* Configure the easy handle from cl->req and hand it to the multi handle. */
static enum berth_err submit(struct client *cl)
{
    const struct bench_options *o = cl->e->opts;
    struct request *q = &cl->req;
    CURL *h = cl->easy;
    enum berth_err rc = BERTH_ENOMEM;
    char ct[128];

    curl_easy_reset(h); /* keeps the connection cache */
    curl_slist_free_all(cl->headers);
    cl->headers = NULL;
    cl->resp.status = 0;
    cl->resp.result = CURLE_OK;
    cl->resp.errbuf[0] = '\0';
    cl->resp.has_location = cl->resp.location_too_long = false;
    cl->resp.has_digest = cl->resp.has_range = false;
    cl->resp.content_length = -1;
    cl->resp.body_len = 0;
    cl->resp.kept = 0;
    q->offset = 0;

    SETOPT(CURLOPT_URL, q->url);
    SETOPT(CURLOPT_PRIVATE, cl);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SETOPT(CURLOPT_TIMEOUT, o->timeout_s);
    SETOPT(CURLOPT_CONNECTTIMEOUT, 10L);
    SETOPT(CURLOPT_ERRORBUFFER, cl->resp.errbuf);
    SETOPT(CURLOPT_USERAGENT, "berth-bench/" BERTH_VERSION);
    SETOPT(CURLOPT_BUFFERSIZE, (long)BENCH_RECV_BUFFER);
    SETOPT(CURLOPT_UPLOAD_BUFFERSIZE, (long)BENCH_IO_BUFFER);
    SETOPT(CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(CURLOPT_HEADERDATA, cl);
    SETOPT(CURLOPT_WRITEFUNCTION, on_write);
    SETOPT(CURLOPT_WRITEDATA, cl);
    SETOPT(CURLOPT_SOCKOPTFUNCTION, on_sockopt);

    /* No "Expect: 100-continue" round trip: registry clients do not wait
     * for one either. An empty Content-Type suppresses curl's default. */
    if (!add_header(cl, "Expect:")) {
        goto out;
    }
    if (q->content_type != NULL) {
        if (!fmt_into(ct, sizeof(ct), "Content-Type: %s", q->content_type) || !add_header(cl, ct)) {
            goto out;
        }
    } else if (!add_header(cl, "Content-Type:")) {
        goto out;
    }
    if (q->accept != NULL) {
        if (!fmt_into(ct, sizeof(ct), "Accept: %s", q->accept) || !add_header(cl, ct)) {
            goto out;
        }
    }
    if (o->authorization[0] != '\0' && !add_header(cl, o->authorization)) {
        goto out;
    }

    if (strcmp(q->method, "HEAD") == 0) {
        SETOPT(CURLOPT_NOBODY, 1L);
    } else if (strcmp(q->method, "POST") == 0) {
        SETOPT(CURLOPT_POST, 1L);
        SETOPT(CURLOPT_POSTFIELDSIZE, 0L);
        SETOPT(CURLOPT_POSTFIELDS, "");
    } else if (strcmp(q->method, "PUT") == 0 || strcmp(q->method, "PATCH") == 0) {
        SETOPT(CURLOPT_UPLOAD, 1L);
        if (strcmp(q->method, "PATCH") == 0) {
            SETOPT(CURLOPT_CUSTOMREQUEST, "PATCH");
        }
        SETOPT(CURLOPT_READFUNCTION, on_read);
        SETOPT(CURLOPT_READDATA, cl);
        SETOPT(CURLOPT_SEEKFUNCTION, on_seek);
        SETOPT(CURLOPT_SEEKDATA, cl);
        if (q->chunked) {
            /* unknown size: curl sends Transfer-Encoding: chunked */
            SETOPT(CURLOPT_INFILESIZE_LARGE, (curl_off_t)-1);
        } else {
            SETOPT(CURLOPT_INFILESIZE_LARGE, (curl_off_t)q->len);
        }
    } else {
        SETOPT(CURLOPT_HTTPGET, 1L);
    }
    if (q->follow) {
        SETOPT(CURLOPT_FOLLOWLOCATION, 1L);
        SETOPT(CURLOPT_MAXREDIRS, 5L);
    }
    SETOPT(CURLOPT_HTTPHEADER, cl->headers);

    if (curl_multi_add_handle(cl->e->multi, h) != CURLM_OK) {
        rc = BERTH_EIO;
        goto out;
    }
    rc = BERTH_OK;
out:
    return rc;
}

#undef SETOPT

static void req_init(struct request *q, const char *method)
{
    q->method = method;
    q->url[0] = '\0';
    q->content_type = NULL;
    q->accept = NULL;
    q->body = BODY_NONE;
    q->mem = NULL;
    q->seed = 0;
    q->len = 0;
    q->offset = 0;
    q->chunked = false;
    q->keep = 0;
    q->follow = false;
}

/* Build the request for the client's current step. */
static enum berth_err prepare(struct client *cl)
{
    const struct bench_options *o = cl->e->opts;
    const struct bench_image *im = cl->img;
    struct request *q = &cl->req;
    const char *sep = strchr(cl->upload_url, '?') ? "&" : "?";
    bool ok = false;

    switch (cl->steps[cl->step_i]) {
    case ST_LAYER_POST:
    case ST_CONFIG_POST:
        req_init(q, "POST");
        ok = fmt_into(q->url, sizeof(q->url), "%s/v2/%s/blobs/uploads/", o->url, im->repo);
        break;
    case ST_LAYER_PUT:
        req_init(q, "PUT");
        q->content_type = "application/octet-stream";
        q->body = BODY_STREAM;
        q->seed = im->layer_seed;
        q->len = im->layer_size;
        ok = fmt_into(q->url, sizeof(q->url), "%s%sdigest=%s", cl->upload_url, sep, im->layer.str);
        break;
    case ST_LAYER_PATCH:
        req_init(q, "PATCH");
        q->content_type = "application/octet-stream";
        q->body = BODY_STREAM;
        q->seed = im->layer_seed;
        q->len = im->layer_size;
        q->chunked = !o->patch_content_length;
        ok = fmt_into(q->url, sizeof(q->url), "%s", cl->upload_url);
        break;
    case ST_LAYER_PUT_EMPTY:
        req_init(q, "PUT");
        ok = fmt_into(q->url, sizeof(q->url), "%s%sdigest=%s", cl->upload_url, sep, im->layer.str);
        break;
    case ST_CONFIG_PUT:
        req_init(q, "PUT");
        q->content_type = "application/octet-stream";
        q->body = BODY_MEM;
        q->mem = im->config;
        q->len = im->config_len;
        ok = fmt_into(q->url, sizeof(q->url), "%s%sdigest=%s", cl->upload_url, sep,
                      im->config_digest.str);
        break;
    case ST_MANIFEST_PUT:
        req_init(q, "PUT");
        q->content_type = MANIFEST_TYPE;
        q->body = BODY_MEM;
        q->mem = im->manifest;
        q->len = im->manifest_len;
        ok = fmt_into(q->url, sizeof(q->url), "%s/v2/%s/manifests/%s", o->url, im->repo, cl->tag);
        break;
    case ST_MANIFEST_HEAD:
    case ST_MANIFEST_GET:
        req_init(q, cl->steps[cl->step_i] == ST_MANIFEST_HEAD ? "HEAD" : "GET");
        q->accept = MANIFEST_TYPE;
        q->keep = im->manifest_len;
        q->follow = true;
        ok = fmt_into(q->url, sizeof(q->url), "%s/v2/%s/manifests/%s", o->url, im->repo, cl->tag);
        break;
    case ST_CONFIG_GET:
        req_init(q, "GET");
        q->keep = im->config_len;
        q->follow = true;
        ok = fmt_into(q->url, sizeof(q->url), "%s/v2/%s/blobs/%s", o->url, im->repo,
                      im->config_digest.str);
        break;
    case ST_LAYER_GET:
        req_init(q, "GET");
        q->keep = BENCH_ERROR_BODY_MAX;
        q->follow = true;
        ok = fmt_into(q->url, sizeof(q->url), "%s/v2/%s/blobs/%s", o->url, im->repo, im->layer.str);
        break;
    case ST_TAGS_GET:
        req_init(q, "GET");
        q->keep = KEEP_MAX;
        q->follow = true;
        ok = fmt_into(q->url, sizeof(q->url), "%s/v2/%s/tags/list?n=%d", o->url, im->repo,
                      BENCH_TAG_COUNT);
        break;
    case ST_CATALOG_GET:
        req_init(q, "GET");
        q->keep = KEEP_MAX;
        q->follow = true;
        ok = fmt_into(q->url, sizeof(q->url), "%s/v2/_catalog?n=100", o->url);
        break;
    case ST_END:
        break;
    }
    return ok ? BERTH_OK : BERTH_ETOOBIG;
}

/* ---- response checks ---- */

static bool want_status(struct client *cl, long want)
{
    if (cl->resp.status != want) {
        return fail(cl, BENCH_FAIL_STATUS, "HTTP %ld, expected %ld", cl->resp.status, want);
    }
    return true;
}

static bool want_digest(struct client *cl, const struct digest *d)
{
    if (!cl->resp.has_digest) {
        return fail(cl, BENCH_FAIL_CHECK, "no Docker-Content-Digest header");
    }
    if (strcmp(cl->resp.digest, d->str) != 0) {
        return fail(cl, BENCH_FAIL_CHECK, "Docker-Content-Digest %s, expected %s", cl->resp.digest,
                    d->str);
    }
    return true;
}

static bool want_body(struct client *cl, const char *expect, size_t len)
{
    if (cl->resp.body_len != len || cl->resp.kept != len || memcmp(cl->resp.body, expect, len)) {
        return fail(cl, BENCH_FAIL_CHECK, "body of %llu bytes differs from the %zu pushed",
                    (unsigned long long)cl->resp.body_len, len);
    }
    return true;
}

static bool take_location(struct client *cl)
{
    const struct bench_options *o = cl->e->opts;
    if (!cl->resp.has_location) {
        return fail(cl, BENCH_FAIL_CHECK, "%s",
                    cl->resp.location_too_long ? "Location header too long" : "no Location header");
    }
    if (bench_resolve_location(cl->req.url, o->origin, cl->resp.location, cl->upload_url,
                               sizeof(cl->upload_url)) != BERTH_OK) {
        return fail(cl, BENCH_FAIL_CHECK, "cannot use Location '%s'", cl->resp.location);
    }
    return true;
}

static bool contains(const char *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; n <= len && i <= len - n; i++) {
        if (memcmp(hay + i, needle, n) == 0) {
            return true;
        }
    }
    return false;
}

/* Check the response to the client's current step. */
static bool check(struct client *cl)
{
    const struct bench_image *im = cl->img;
    struct response *r = &cl->resp;

    switch (cl->steps[cl->step_i]) {
    case ST_LAYER_POST:
    case ST_CONFIG_POST:
        return want_status(cl, 202) && take_location(cl);
    case ST_LAYER_PUT:
    case ST_LAYER_PUT_EMPTY:
        return want_status(cl, 201) && want_digest(cl, &im->layer);
    case ST_LAYER_PATCH: {
        char range[64];
        if (!want_status(cl, 202)) {
            return false;
        }
        snprintf(range, sizeof(range), "0-%llu", (unsigned long long)(im->layer_size - 1));
        if (!r->has_range || strcmp(r->range, range) != 0) {
            return fail(cl, BENCH_FAIL_CHECK, "Range '%s', expected '%s'",
                        r->has_range ? r->range : "", range);
        }
        return take_location(cl);
    }
    case ST_CONFIG_PUT:
        return want_status(cl, 201) && want_digest(cl, &im->config_digest);
    case ST_MANIFEST_PUT:
        return want_status(cl, 201) && want_digest(cl, &im->manifest_digest);
    case ST_MANIFEST_HEAD:
        if (!want_status(cl, 200) || !want_digest(cl, &im->manifest_digest)) {
            return false;
        }
        if (r->content_length != (curl_off_t)im->manifest_len) {
            return fail(cl, BENCH_FAIL_CHECK, "Content-Length %lld, expected %zu",
                        (long long)r->content_length, im->manifest_len);
        }
        return true;
    case ST_MANIFEST_GET:
        return want_status(cl, 200) && want_body(cl, im->manifest, im->manifest_len);
    case ST_CONFIG_GET:
        return want_status(cl, 200) && want_body(cl, im->config, im->config_len);
    case ST_LAYER_GET: {
        if (!want_status(cl, 200)) {
            return false;
        }
        if (r->body_len != im->layer_size) {
            return fail(cl, BENCH_FAIL_CHECK, "%llu bytes, expected %llu",
                        (unsigned long long)r->body_len, (unsigned long long)im->layer_size);
        }
        /* The size proves the transfer; the first bytes prove it is our
         * blob, without hashing on the client. */
        char head[BENCH_ERROR_BODY_MAX];
        size_t n = r->kept < sizeof(head) ? r->kept : sizeof(head);
        bench_data_fill(im->layer_seed, 0, head, n);
        if (memcmp(head, r->body, n) != 0) {
            return fail(cl, BENCH_FAIL_CHECK, "layer bytes differ from the pushed layer");
        }
        return true;
    }
    case ST_TAGS_GET: {
        char last[16];
        if (!want_status(cl, 200)) {
            return false;
        }
        snprintf(last, sizeof(last), "\"t%04d\"", BENCH_TAG_COUNT - 1);
        if (r->body_len != r->kept || !contains(r->body, r->kept, "\"t0000\"") ||
            !contains(r->body, r->kept, last)) {
            return fail(cl, BENCH_FAIL_CHECK, "tag list (%llu bytes) lacks t0000 or %s",
                        (unsigned long long)r->body_len, last);
        }
        return true;
    }
    case ST_CATALOG_GET:
        if (!want_status(cl, 200)) {
            return false;
        }
        if (r->kept == 0 || r->body[0] != '{' || !contains(r->body, r->kept, "\"repositories\"")) {
            return fail(cl, BENCH_FAIL_CHECK, "not a catalog document");
        }
        return true;
    case ST_END:
        break;
    }
    return false;
}

/* ---- ops ---- */

/* Set up op `index` of the phase on cl. false (and the op counted as
 * failed) when it cannot even be described. */
static bool op_begin(struct client *cl, size_t index)
{
    struct bench_phase *ph = cl->e->ph;
    enum bench_kind kind = ph->kind;

    cl->index = index;
    cl->step_i = 0;
    cl->upload_url[0] = '\0';
    cl->op_start_ns = time_mono_ns();
    if (kind == BENCH_KIND_MIX) {
        kind = ph->is_push[index] ? BENCH_KIND_PUSH_MONO : BENCH_KIND_PULL;
    }
    switch (kind) {
    case BENCH_KIND_PUSH_MONO:
    case BENCH_KIND_PUSH_STREAMED:
        cl->steps = kind == BENCH_KIND_PUSH_MONO ? push_mono_steps : push_streamed_steps;
        if (bench_phase_image(ph, index, &cl->own) != BERTH_OK) {
            fprintf(stderr, "berth-bench: %s: cannot build image %zu\n", ph->label, index);
            return false;
        }
        cl->img = &cl->own;
        break;
    case BENCH_KIND_PULL:
        cl->steps = pull_steps;
        cl->img = ph->image;
        break;
    case BENCH_KIND_HEAD:
        cl->steps = head_steps;
        cl->img = ph->image;
        break;
    case BENCH_KIND_TAGS:
        cl->steps = tags_steps;
        cl->img = ph->image;
        break;
    case BENCH_KIND_CATALOG:
        cl->steps = catalog_steps;
        cl->img = ph->image;
        break;
    case BENCH_KIND_TAG_PUT:
        cl->steps = tag_put_steps;
        cl->img = ph->image;
        snprintf(cl->tag, sizeof(cl->tag), "t%04zu", index + 1);
        return true;
    case BENCH_KIND_MIX:
        return false;
    }
    snprintf(cl->tag, sizeof(cl->tag), "%s", cl->img ? cl->img->tag : "");
    return cl->img != NULL || kind == BENCH_KIND_CATALOG;
}

/* Start the client's current step; false when the op failed. */
static bool step_start(struct client *cl)
{
    enum berth_err rc = prepare(cl);
    if (rc == BERTH_OK) {
        rc = submit(cl);
    }
    if (rc != BERTH_OK) {
        fprintf(stderr, "berth-bench: %s: cannot start a request: %s\n", cl->e->ph->label,
                berth_strerror(rc));
        return false;
    }
    cl->busy = true;
    return true;
}

/* Give the client its next op, or leave it idle when none is left. */
static void client_next_op(struct client *cl)
{
    struct bench_engine *e = cl->e;
    while (e->next < e->ph->count) {
        size_t index = e->next++;
        if (op_begin(cl, index) && step_start(cl)) {
            return;
        }
        bench_stats_op(e->ph->stats, false, 0);
    }
    cl->busy = false;
    e->active--;
}

static void on_done(struct bench_engine *e, struct client *cl, CURLcode result)
{
    struct bench_stats *st = e->ph->stats;
    struct response *r = &cl->resp;
    curl_off_t up = 0, down = 0;
    long status = 0;

    curl_easy_getinfo(cl->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(cl->easy, CURLINFO_SIZE_UPLOAD_T, &up);
    curl_easy_getinfo(cl->easy, CURLINFO_SIZE_DOWNLOAD_T, &down);
    curl_multi_remove_handle(e->multi, cl->easy);
    r->status = status;
    r->result = result;
    st->http_requests++;
    st->bytes_up += up > 0 ? (uint64_t)up : 0;
    st->bytes_down += down > 0 ? (uint64_t)down : 0;
    if (status >= 0 && status < BENCH_STATUS_SLOTS) {
        st->status[status]++;
    }

    bool ok;
    if (result != CURLE_OK) {
        ok = fail(cl, BENCH_FAIL_TRANSPORT, "%s",
                  r->errbuf[0] ? r->errbuf : curl_easy_strerror(result));
    } else {
        ok = check(cl);
    }
    if (ok && cl->steps[cl->step_i + 1] != ST_END) {
        cl->step_i++;
        if (step_start(cl)) {
            return;
        }
        ok = false;
    }
    /* The op is over: record it and move on to the next one. */
    bench_stats_op(st, ok, ok ? time_mono_ns() - cl->op_start_ns : 0);
    client_next_op(cl);
}

/* ---- engine ---- */

struct bench_engine *bench_engine_new(const struct bench_options *opts)
{
    struct bench_engine *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        return NULL;
    }
    e->opts = opts;
    e->client_count = opts->concurrency;
    e->clients = calloc(e->client_count, sizeof(*e->clients));
    e->multi = curl_multi_init();
    if (e->clients == NULL || e->multi == NULL) {
        goto fail;
    }
    /* Keep every client's connection alive between requests. */
    if (curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, (long)e->client_count + 4) != CURLM_OK) {
        goto fail;
    }
    for (size_t i = 0; i < e->client_count; i++) {
        e->clients[i].e = e;
        e->clients[i].easy = curl_easy_init();
        if (e->clients[i].easy == NULL) {
            goto fail;
        }
    }
    return e;
fail:
    bench_engine_free(e);
    return NULL;
}

void bench_engine_free(struct bench_engine *e)
{
    if (e == NULL) {
        return;
    }
    for (size_t i = 0; e->clients != NULL && i < e->client_count; i++) {
        struct client *cl = &e->clients[i];
        if (cl->easy != NULL) {
            if (cl->busy) {
                curl_multi_remove_handle(e->multi, cl->easy);
            }
            curl_easy_cleanup(cl->easy);
        }
        curl_slist_free_all(cl->headers);
    }
    if (e->multi != NULL) {
        curl_multi_cleanup(e->multi);
    }
    free(e->clients);
    free(e);
}

static int64_t cpu_ns(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) {
        return 0;
    }
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
}

enum berth_err bench_engine_run(struct bench_engine *e, struct bench_phase *ph)
{
    size_t conc = ph->concurrency < e->client_count ? ph->concurrency : e->client_count;
    int64_t t0 = time_mono_ns();
    int64_t cpu0 = cpu_ns();

    e->ph = ph;
    e->next = 0;
    e->active = 0;
    for (size_t i = 0; i < conc && e->next < ph->count; i++) {
        e->active++;
        client_next_op(&e->clients[i]);
    }
    while (e->active > 0) {
        int running = 0;
        if (curl_multi_perform(e->multi, &running) != CURLM_OK) {
            return BERTH_EIO;
        }
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(e->multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE) {
                continue;
            }
            struct client *cl = NULL;
            CURL *easy = msg->easy_handle;
            CURLcode result = msg->data.result;
            curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&cl);
            if (cl == NULL) {
                return BERTH_EIO;
            }
            on_done(e, cl, result);
        }
        if (e->active == 0) {
            break;
        }
        if (curl_multi_poll(e->multi, NULL, 0, 100, NULL) != CURLM_OK) {
            return BERTH_EIO;
        }
    }
    ph->stats->elapsed_ns = time_mono_ns() - t0;
    ph->stats->client_cpu_ns = cpu_ns() - cpu0;
    return BERTH_OK;
}

/* ---- helpers for the command line ---- */

/* "scheme://" at the start (RFC 3986 scheme characters). */
static bool has_scheme(const char *s)
{
    size_t i = 0;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) {
        return false;
    }
    while (s[i] != '\0' && s[i] != ':') {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '-' || c == '.')) {
            return false;
        }
        i++;
    }
    return strncmp(s + i, "://", 3) == 0;
}

enum berth_err bench_resolve_location(const char *request_url, const char *origin,
                                      const char *location, char *out, size_t cap)
{
    enum berth_err rc = BERTH_EINVAL;
    CURLU *u = NULL;
    char *full = NULL;

    if (location[0] == '\0') {
        goto out;
    }
    if (has_scheme(location)) {
        /* absolute: verbatim, query and all */
        rc = str_copy(out, cap, location);
        goto out;
    }
    if (location[0] == '/' && location[1] != '/') {
        rc = fmt_into(out, cap, "%s%s", origin, location) ? BERTH_OK : BERTH_ETOOBIG;
        goto out;
    }
    u = curl_url();
    if (u == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    if (curl_url_set(u, CURLUPART_URL, request_url, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_URL, location, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &full, 0) != CURLUE_OK) {
        goto out;
    }
    rc = str_copy(out, cap, full);
out:
    curl_free(full);
    curl_url_cleanup(u);
    return rc;
}

static size_t discard(char *p, size_t size, size_t nmemb, void *ud)
{
    (void)p;
    (void)ud;
    return size * nmemb;
}

enum berth_err bench_wait_ready(const struct bench_options *opts, long seconds)
{
    enum berth_err rc = BERTH_EBUSY;
    char url[BENCH_URL_MAX + 8];
    CURL *h = curl_easy_init();
    int64_t deadline = time_mono_ns() + (int64_t)seconds * 1000000000LL;

    if (h == NULL) {
        return BERTH_ENOMEM;
    }
    snprintf(url, sizeof(url), "%s/v2/", opts->url);
    struct curl_slist *headers = NULL;
    if (opts->authorization[0] != '\0') {
        headers = curl_slist_append(NULL, opts->authorization);
        if (headers == NULL) {
            curl_easy_cleanup(h);
            return BERTH_ENOMEM;
        }
    }
    for (;;) {
        long status = 0;
        curl_easy_reset(h);
        if (curl_easy_setopt(h, CURLOPT_URL, url) == CURLE_OK &&
            curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers) == CURLE_OK &&
            curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
            curl_easy_setopt(h, CURLOPT_TIMEOUT, 2L) == CURLE_OK &&
            curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard) == CURLE_OK &&
            curl_easy_perform(h) == CURLE_OK) {
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        }
        if (status == 200) {
            rc = BERTH_OK;
            break;
        }
        if (time_mono_ns() >= deadline) {
            break;
        }
        time_sleep_ms(50);
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return rc;
}
