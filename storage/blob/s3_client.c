/*
 * The S3 backend's transport: one request to the bucket over libcurl,
 * signed with SigV4 (storage/spec/sigv4.h, the code the ECR verifier
 * uses), path-style or virtual-hosted, with the real payload SHA-256:
 * run on the calling thread (s3_do), or streamed by the store's transfer
 * thread into a bounded buffer that a reader drains (s3_stream_*, below).
 *
 * Thread-safe: every request has its own curl handle.
 */
#include "s3_int.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/str.h"

#define S3_SOCKET_RCVBUF (4 << 20)
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Percent-encode a key for the path (keeping '/'). */
enum berth_err s3_encode_key(struct buf *out, const char *key)
{
    static const char hex[] = "0123456789ABCDEF";
    enum berth_err rc = BERTH_OK;
    for (const unsigned char *p = (const unsigned char *)key; *p && rc == BERTH_OK; p++) {
        if (str_url_unreserved(*p) || *p == '/') {
            rc = buf_append(out, p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            rc = buf_append(out, e, 3);
        }
    }
    return rc;
}

/* Encode a query value (everything but unreserved bytes). */
void s3_encode_value(const char *v, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)v; *p && o + 4 < cap; p++) {
        if (str_url_unreserved(*p)) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct s3_resp *r = arg;
    size_t len = size * n;
    const char *colon = memchr(p, ':', len);
    if (colon == NULL) {
        return len;
    }
    size_t nlen = (size_t)(colon - p);
    const char *v = colon + 1;
    size_t vlen = len - nlen - 1;
    while (vlen > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' ')) {
        vlen--;
    }
    char *dst = NULL;
    size_t cap = 0;
    if (nlen == 4 && strncasecmp(p, "etag", 4) == 0) {
        dst = r->etag;
        cap = sizeof(r->etag);
    } else if (nlen == strlen(S3_META_REMOVAL) && strncasecmp(p, S3_META_REMOVAL, nlen) == 0) {
        dst = r->removal;
        cap = sizeof(r->removal);
    } else if (nlen == 13 && strncasecmp(p, "content-range", 13) == 0) {
        dst = r->content_range;
        cap = sizeof(r->content_range);
    } else if (nlen == 13 && strncasecmp(p, "last-modified", 13) == 0) {
        dst = r->last_modified;
        cap = sizeof(r->last_modified);
    } else if (nlen == 14 && strncasecmp(p, "content-length", 14) == 0) {
        char num[32];
        if (vlen < sizeof(num)) {
            memcpy(num, v, vlen);
            num[vlen] = '\0';
            uint64_t x;
            if (str_parse_u64(num, UINT64_MAX, &x) == BERTH_OK) {
                r->content_length = x;
                r->has_length = true;
            }
        }
    }
    if (dst != NULL && vlen < cap) {
        memcpy(dst, v, vlen);
        dst[vlen] = '\0';
    }
    return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct s3_resp *r = arg;
    size_t len = size * n;
    long status = 0;
    curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status > 299) {
        if (buf_append(&r->err, p, len) != BERTH_OK) {
            /* the rest of an error text is not needed */
        }
        return len;
    }
    if (r->req->out_fd >= 0) {
        if (file_write_all(r->req->out_fd, p, len) != BERTH_OK) {
            r->write_failed = true;
            return 0;
        }
    } else if (r->req->out != NULL) {
        if (buf_append(r->req->out, p, len) != BERTH_OK) {
            r->write_failed = true;
            return 0;
        }
    }
    return len;
}

static size_t on_upload(char *p, size_t size, size_t n, void *arg)
{
    struct s3_resp *r = arg;
    size_t len = size * n;
    if (len > r->up_left) {
        len = r->up_left;
    }
    memcpy(p, r->up, len);
    r->up += len;
    r->up_left -= len;
    return len;
}

/* Run one signed request. BERTH_OK with resp->status set whatever it is
 * (the caller judges); BERTH_EIO when no answer came (logged). */
/* A fixed receive buffer on every connection to the store: the kernel's
 * autotuning would otherwise let the socket of a paused stream (a client
 * that does not read) hold up to tcp_rmem's maximum (tens of MiB) besides
 * the stream's ring. S3_SOCKET_RCVBUF still carries 80 MB/s at 50 ms. */
static int on_socket(void *arg, curl_socket_t fd, curlsocktype purpose)
{
    (void)arg;
    if (purpose == CURLSOCKTYPE_IPCXN) {
        int size = S3_SOCKET_RCVBUF;
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)) != 0) {
            /* not fatal: the kernel's default */
        }
    }
    return CURL_SOCKOPT_OK;
}

static int on_seek(void *arg, curl_off_t offset, int origin)
{
    struct s3_resp *r = arg;
    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > r->req->body_len) {
        return CURL_SEEKFUNC_CANTSEEK;
    }
    r->up = (const char *)r->req->body + offset;
    r->up_left = r->req->body_len - (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

/* The path (encoded, as on the request line) and Host of a request for key
 * (NULL: the bucket). */
static enum berth_err target(const struct s3_store *s, const char *key, struct buf *path,
                             char host[S3_HOST_MAX])
{
    enum berth_err rc = BERTH_OK;
    if (s->path_style) {
        rc = buf_printf(path, "/%s", s->bucket);
        if (rc == BERTH_OK && key != NULL) {
            rc = buf_puts(path, "/");
        }
    } else {
        rc = buf_puts(path, "/"); /* the bucket itself is "/" */
    }
    if (rc == BERTH_OK && key != NULL) {
        rc = s3_encode_key(path, key);
    }
    if (s->path_style) {
        snprintf(host, S3_HOST_MAX, "%s", s->host);
    } else {
        snprintf(host, S3_HOST_MAX, "%s.%s", s->bucket, s->host);
    }
    return rc;
}

enum berth_err s3_presign_get(struct s3_store *s, const char *key, int64_t expires_seconds,
                              char *out, size_t cap)
{
    struct buf path;
    buf_init(&path, S3_URL_MAX);
    char host[S3_HOST_MAX];
    enum berth_err rc = target(s, key, &path, host);
    struct sigv4_credentials cred = {s->akid, s->secret, s->region, "s3", true};
    char query[2048];
    if (rc == BERTH_OK) {
        rc = sigv4_presign("GET", buf_cstr(&path), host, &cred, (int64_t)time(NULL),
                           expires_seconds, query, sizeof(query));
    }
    if (rc == BERTH_OK) {
        int n = snprintf(out, cap, "%s://%s%s?%s", s->scheme, host, buf_cstr(&path), query);
        rc = n < 0 || (size_t)n >= cap ? BERTH_ETOOBIG : BERTH_OK;
    }
    buf_fini(&path);
    return rc;
}

/* A curl handle for req, signed, with its header list (*hl, freed by the
 * caller after the transfer) and the plain callbacks into resp. */
static enum berth_err prepare(struct s3_store *s, const struct s3_req *req, struct s3_resp *resp,
                              CURL **out, struct curl_slist **out_hl)
{
    memset(resp, 0, sizeof(*resp));
    buf_init(&resp->err, S3_ERRBODY_MAX);
    resp->req = req;

    struct buf path;
    buf_init(&path, S3_URL_MAX);
    char host[S3_HOST_MAX];
    enum berth_err rc = target(s, req->key, &path, host);
    struct buf url;
    buf_init(&url, S3_URL_MAX + 1024);
    if (rc == BERTH_OK) {
        rc = buf_printf(&url, "%s://%s%s%s%s", s->scheme, host, buf_cstr(&path),
                        req->query != NULL ? "?" : "", req->query != NULL ? req->query : "");
    }

    /* The signed headers. */
    char amz_date[SIGV4_AMZ_DATE_LEN + 1];
    sigv4_format_amz_date((int64_t)time(NULL), amz_date);
    char payload[65];
    if (req->body_len > 0) {
        uint8_t h[32] = {0};
        if (rc == BERTH_OK) {
            rc = digest_sha256_raw(req->body, req->body_len, h); /* else nothing is sent */
        }
        str_hex_encode(h, 32, payload);
    } else {
        memcpy(payload, EMPTY_SHA256, sizeof(payload));
    }
    struct sigv4_header sh[8];
    size_t nh = 0;
    sh[nh++] = (struct sigv4_header){"Host", host};
    sh[nh++] = (struct sigv4_header){"X-Amz-Date", amz_date};
    sh[nh++] = (struct sigv4_header){"X-Amz-Content-SHA256", payload};
    for (size_t i = 0; i < req->header_count; i++) {
        sh[nh++] = (struct sigv4_header){req->headers[i].name, req->headers[i].value};
    }
    struct sigv4_request sr = {
        .method = req->method,
        .path = buf_cstr(&path),
        .query = req->query,
        .headers = sh,
        .header_count = nh,
        .body = req->body,
        .body_len = req->body_len,
        .body_sha256 = payload,
    };
    struct sigv4_credentials cred = {s->akid, s->secret, s->region, "s3", true};
    char auth[1024];
    if (rc == BERTH_OK) {
        rc = sigv4_sign(&sr, &cred, auth, sizeof(auth));
    }
    CURL *c = NULL;
    struct curl_slist *hl = NULL;
    if (rc == BERTH_OK && (c = curl_easy_init()) == NULL) {
        rc = BERTH_ENOMEM;
    }
    if (rc != BERTH_OK) {
        buf_fini(&path);
        buf_fini(&url);
        return rc;
    }
    char line[sizeof(host) + 1200];
    bool ok = true;
    for (size_t i = 0; i < nh && ok; i++) {
        snprintf(line, sizeof(line), "%s: %s", sh[i].name, sh[i].value);
        struct curl_slist *n = curl_slist_append(hl, line);
        ok = n != NULL;
        hl = ok ? n : hl;
    }
    snprintf(line, sizeof(line), "Authorization: %s", auth);
    struct curl_slist *n2 = ok ? curl_slist_append(hl, line) : NULL;
    hl = n2 != NULL ? n2 : hl;
    /* No 100-continue round trip, and no form content type on POST. */
    struct curl_slist *n3 = n2 != NULL ? curl_slist_append(hl, "Expect:") : NULL;
    hl = n3 != NULL ? n3 : hl;
    struct curl_slist *n4 = n3 != NULL ? curl_slist_append(hl, "Content-Type:") : NULL;
    hl = n4 != NULL ? n4 : hl;
    if (n4 == NULL) {
        curl_slist_free_all(hl);
        curl_easy_cleanup(c);
        buf_fini(&path);
        buf_fini(&url);
        return BERTH_ENOMEM;
    }

    resp->curl = c;
    resp->up = req->body;
    resp->up_left = req->body_len;
    curl_easy_setopt(c, CURLOPT_URL, buf_cstr(&url));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_SOCKOPTFUNCTION, on_socket);
    if (s->share != NULL) {
        curl_easy_setopt(c, CURLOPT_SHARE, (CURLSH *)s->share);
    }
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    /* a transfer slower than 1 KiB/s for a minute is given up */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    if (s->ca_file[0] != '\0') {
        curl_easy_setopt(c, CURLOPT_CAINFO, s->ca_file);
    }
    if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(req->method, "PUT") == 0) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_upload);
        curl_easy_setopt(c, CURLOPT_READDATA, resp);
        /* a kept-alive connection the store closed meanwhile: curl sends
         * the request again on a new one, from the start of the body */
        curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(c, CURLOPT_SEEKDATA, resp);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_len);
    } else if (strcmp(req->method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body != NULL ? req->body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    } else if (strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    }
    buf_fini(&path);
    buf_fini(&url);
    *out = c;
    *out_hl = hl;
    return BERTH_OK;
}

enum berth_err s3_do(struct s3_store *s, const struct s3_req *req, struct s3_resp *resp)
{
    CURL *c = NULL;
    struct curl_slist *hl = NULL;
    enum berth_err rc = prepare(s, req, resp, &c, &hl);
    if (rc != BERTH_OK) {
        log_error("event=s3_error op=%s key=%s error=\"request not sent: cannot prepare or sign "
                  "it\" err=%s",
                  req->method, req->key != NULL ? req->key : "", berth_strerror(rc));
        return rc;
    }
    CURLcode cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    resp->curl = NULL;
    if (cc != CURLE_OK || resp->write_failed) {
        log_error("event=s3_error op=%s key=%s curl=%d error=\"%s\"", req->method,
                  req->key != NULL ? req->key : "", (int)cc,
                  resp->write_failed ? "local write failed" : curl_easy_strerror(cc));
        /* no answer (or a cut one) from the store: down for now */
        rc = resp->write_failed ? BERTH_EIO : BERTH_EUNAVAILABLE;
    }
    return rc;
}

void s3_resp_fini(struct s3_resp *r)
{
    buf_fini(&r->err);
}

/* Map an answer that is not what was wanted to an error, logging it. */
enum berth_err s3_status_err(long status)
{
    /* 5xx: the store fails for now (S3's 500 InternalError, 503 SlowDown,
     * a proxy's 502/504); 429: it throttles. Both are retried later. */
    return status >= 500 || status == 429 ? BERTH_EUNAVAILABLE : BERTH_EIO;
}

enum berth_err s3_fail(const struct s3_req *req, const struct s3_resp *r)
{
    if (r->status == 404) {
        return BERTH_ENOTFOUND;
    }
    log_error("event=s3_error op=%s key=%s status=%ld body=\"%.300s\"", req->method,
              req->key != NULL ? req->key : "", r->status, buf_cstr(&r->err));
    return s3_status_err(r->status);
}

enum berth_err s3_client_init(void)
{
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        log_error("event=s3_error op=curl_global_init curl=%d", (int)curl_init_rc);
        return BERTH_EIO;
    }
    return BERTH_OK;
}

/* ---- streamed GETs ----
 *
 * One thread per store (the pump) drives every streamed GET through one
 * curl multi handle. A stream's bytes land in a ring of S3_STREAM_RING
 * bytes; when it is full the transfer is paused (curl stops reading the
 * socket) until the reader has made room, so memory stays the ring's
 * whatever the blob's size, and a slow client slows the GET instead of
 * filling memory. The reader (a pool thread answering the client) waits
 * nowhere: with a wake function it is told when bytes have come. Readers
 * ask the pump for what only the pump may do to a transfer (add it,
 * unpause it, drop it) through a queue and curl_multi_wakeup. */

#define S3_STREAM_RING ((size_t)256 << 10)
/* curl hands the body over in pieces of at most this; a paused transfer
 * is resumed once the ring has room for one. */
#define S3_STREAM_PIECE ((size_t)64 << 10)

struct s3_stream {
    struct blob_reader base;
    struct s3_pump *pump;
    CURL *curl;
    struct curl_slist *hl;
    char key[S3_KEY_MAX];
    struct s3_resp resp; /* the answer's head (and an error's body) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu */
    char *ring;
    size_t ring_cap, start, fill;
    uint64_t offset;    /* where the range starts */
    uint64_t skip;      /* bytes before the range, when the store ignored Range */
    uint64_t want;      /* bytes of the range */
    uint64_t delivered; /* bytes given to the reader */
    bool head_done;     /* the answer's head is in (resp.status) */
    bool finished;      /* the transfer ended (result) */
    CURLcode result;
    bool paused;      /* the transfer waits for room in the ring */
    bool resume_sent; /* ... and the pump was asked to resume it */
    bool closed;      /* the reader is gone: the pump frees it */
    void (*wake)(void *);
    void *wake_arg;
    /* under the pump's mu */
    bool queued;
    bool added;                    /* in the multi handle (the pump's thread only) */
    struct s3_stream *linger_next; /* closed, its transfer let end (the pump's only) */
    struct s3_stream *next;
};

struct s3_pump {
    CURLM *multi;
    pthread_t thread;
    pthread_mutex_t mu;
    struct s3_stream *queue;
    bool stop;
    struct s3_stream *lingering; /* closed streams whose transfer ends by itself */
    CURLSH *share;
    pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
};

static void share_lock(CURL *c, curl_lock_data data, curl_lock_access access, void *arg)
{
    (void)c;
    (void)access;
    struct s3_pump *p = arg;
    pthread_mutex_lock(&p->share_mu[data]);
}

static void share_unlock(CURL *c, curl_lock_data data, void *arg)
{
    (void)c;
    struct s3_pump *p = arg;
    pthread_mutex_unlock(&p->share_mu[data]);
}

/* Ask the pump to look at st (add, resume or drop it). */
static void pump_kick(struct s3_pump *p, struct s3_stream *st)
{
    pthread_mutex_lock(&p->mu);
    if (!st->queued) {
        st->queued = true;
        st->next = p->queue;
        p->queue = st;
    }
    pthread_mutex_unlock(&p->mu);
    curl_multi_wakeup(p->multi);
}

/* Tell a waiting reader there is news (under st->mu). */
static void stream_news(struct s3_stream *st)
{
    pthread_cond_broadcast(&st->cv);
    if (st->wake != NULL) {
        void (*wake)(void *) = st->wake;
        st->wake = NULL;
        wake(st->wake_arg);
    }
}

static void stream_free(struct s3_stream *st)
{
    if (st->curl != NULL) {
        curl_easy_cleanup(st->curl);
    }
    curl_slist_free_all(st->hl);
    s3_resp_fini(&st->resp);
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cv);
    free(st->ring);
    free(st);
}

static size_t on_stream_header(char *p, size_t size, size_t n, void *arg)
{
    struct s3_stream *st = arg;
    size_t len = size * n;
    if (len <= 2 && (len == 0 || p[0] == '\r' || p[0] == '\n')) {
        long status = 0;
        curl_easy_getinfo(st->curl, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200) { /* not an interim 1xx head */
            pthread_mutex_lock(&st->mu);
            st->resp.status = status;
            /* a store that ignored the Range sends the whole object: the
             * bytes before the range are dropped (set here, before the
             * body's first bytes come) */
            st->skip = status == 200 ? st->offset : 0;
            st->head_done = true;
            pthread_cond_broadcast(&st->cv);
            pthread_mutex_unlock(&st->mu);
        }
        return len;
    }
    if (len > 5 && strncasecmp(p, "HTTP/", 5) == 0) {
        /* a new head (after a 1xx): forget the last one's fields */
        st->resp.content_range[0] = '\0';
        st->resp.has_length = false;
        return len;
    }
    return on_header(p, size, n, &st->resp);
}

static size_t on_stream_body(char *p, size_t size, size_t n, void *arg)
{
    struct s3_stream *st = arg;
    size_t len = size * n;
    pthread_mutex_lock(&st->mu);
    if (st->closed) {
        pthread_mutex_unlock(&st->mu);
        return 0; /* ends the transfer */
    }
    if (st->resp.status < 200 || st->resp.status > 299) {
        if (buf_append(&st->resp.err, p, len) != BERTH_OK) {
            /* the rest of an error text is not needed */
        }
        pthread_mutex_unlock(&st->mu);
        return len;
    }
    size_t skip = st->skip < len ? (size_t)st->skip : len;
    size_t rest = len - skip;
    if (rest > st->want - st->delivered - st->fill) {
        rest = (size_t)(st->want - st->delivered - st->fill); /* past the range */
    }
    if (rest > st->ring_cap && st->fill == 0) {
        /* a piece larger than the ring (curl's are S3_STREAM_PIECE at most) */
        char *bigger = malloc(rest);
        if (bigger == NULL) {
            pthread_mutex_unlock(&st->mu);
            return 0;
        }
        free(st->ring);
        st->ring = bigger;
        st->ring_cap = rest;
        st->start = 0;
    }
    if (rest > st->ring_cap - st->fill) {
        st->paused = true;
        st->resume_sent = false;
        pthread_mutex_unlock(&st->mu);
        return CURL_WRITEFUNC_PAUSE; /* the same piece comes again on resume */
    }
    st->skip -= skip;
    const char *from = p + skip;
    size_t at = (st->start + st->fill) % st->ring_cap;
    size_t first = st->ring_cap - at < rest ? st->ring_cap - at : rest;
    memcpy(st->ring + at, from, first);
    memcpy(st->ring, from + first, rest - first);
    st->fill += rest;
    if (rest > 0) {
        stream_news(st);
    }
    pthread_mutex_unlock(&st->mu);
    return len;
}

/* The pump's work on one queued stream. */
static void pump_handle(struct s3_pump *p, struct s3_stream *st)
{
    pthread_mutex_lock(&st->mu);
    bool closed = st->closed;
    bool resume = st->paused && st->resume_sent;
    if (resume) {
        st->paused = false;
    }
    pthread_mutex_unlock(&st->mu);
    if (closed) {
        pthread_mutex_lock(&st->mu);
        bool received = st->delivered + st->fill == st->want && !st->paused;
        pthread_mutex_unlock(&st->mu);
        if (st->added && received) {
            /* every byte is in: let the transfer end by itself, so that
             * its connection goes back to the pool (removing it now would
             * close it); freed when it is done */
            st->linger_next = p->lingering;
            p->lingering = st;
            return;
        }
        if (st->added) {
            curl_multi_remove_handle(p->multi, st->curl);
        }
        stream_free(st);
        return;
    }
    if (!st->added) {
        st->added = true;
        if (curl_multi_add_handle(p->multi, st->curl) != CURLM_OK) {
            pthread_mutex_lock(&st->mu);
            st->added = false;
            st->finished = true;
            st->result = CURLE_OUT_OF_MEMORY;
            stream_news(st);
            pthread_mutex_unlock(&st->mu);
        }
        return;
    }
    if (resume) {
        /* may hand the held piece over at once (on_stream_body) */
        curl_easy_pause(st->curl, CURLPAUSE_CONT);
    }
}

/* Take st off the lingering list: true when it was there. */
static bool unlinger(struct s3_pump *p, struct s3_stream *st)
{
    for (struct s3_stream **at = &p->lingering; *at != NULL; at = &(*at)->linger_next) {
        if (*at == st) {
            *at = st->linger_next;
            return true;
        }
    }
    return false;
}

static void *pump_main(void *arg)
{
    struct s3_pump *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        struct s3_stream *q = p->queue;
        p->queue = NULL;
        for (struct s3_stream *st = q; st != NULL; st = st->next) {
            st->queued = false;
        }
        bool stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        while (q != NULL) {
            struct s3_stream *next = q->next;
            pump_handle(p, q);
            q = next;
        }
        if (stop) {
            while (p->lingering != NULL) {
                struct s3_stream *st = p->lingering;
                p->lingering = st->linger_next;
                curl_multi_remove_handle(p->multi, st->curl);
                stream_free(st);
            }
            break;
        }
        int running = 0;
        curl_multi_perform(p->multi, &running);
        CURLMsg *m;
        int left = 0;
        while ((m = curl_multi_info_read(p->multi, &left)) != NULL) {
            if (m->msg != CURLMSG_DONE) {
                continue;
            }
            char *priv = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
            struct s3_stream *st = (struct s3_stream *)(void *)priv;
            CURLcode cc = m->data.result;
            curl_multi_remove_handle(p->multi, m->easy_handle); /* its connection stays */
            st->added = false;
            if (unlinger(p, st)) {
                stream_free(st); /* its reader is gone */
                continue;
            }
            pthread_mutex_lock(&st->mu);
            st->finished = true;
            st->result = cc;
            st->head_done = true;
            stream_news(st);
            pthread_mutex_unlock(&st->mu);
        }
        curl_multi_poll(p->multi, NULL, 0, 1000, NULL);
    }
    return NULL;
}

enum berth_err s3_pump_start(struct s3_store *s)
{
    struct s3_pump *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return BERTH_ENOMEM;
    }
    p->multi = curl_multi_init();
    p->share = curl_share_init();
    if (p->multi == NULL || p->share == NULL) {
        curl_multi_cleanup(p->multi);
        curl_share_cleanup(p->share);
        free(p);
        return BERTH_ENOMEM;
    }
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) {
        pthread_mutex_init(&p->share_mu[i], NULL);
    }
    curl_share_setopt(p->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(p->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(p->share, CURLSHOPT_USERDATA, p);
    curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    pthread_mutex_init(&p->mu, NULL);
    if (pthread_create(&p->thread, NULL, pump_main, p) != 0) {
        pthread_mutex_destroy(&p->mu);
        for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) {
            pthread_mutex_destroy(&p->share_mu[i]);
        }
        curl_multi_cleanup(p->multi);
        curl_share_cleanup(p->share);
        free(p);
        return BERTH_ENOMEM;
    }
    s->pump = p;
    s->share = p->share;
    return BERTH_OK;
}

void s3_pump_stop(struct s3_store *s)
{
    struct s3_pump *p = s->pump;
    if (p == NULL) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_mutex_unlock(&p->mu);
    curl_multi_wakeup(p->multi);
    pthread_join(p->thread, NULL);
    curl_multi_cleanup(p->multi);
    /* every handle that used the share is gone (requests clean theirs up,
     * the pump freed the streams) */
    s->share = NULL;
    curl_share_cleanup(p->share);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) {
        pthread_mutex_destroy(&p->share_mu[i]);
    }
    pthread_mutex_destroy(&p->mu);
    free(p);
    s->pump = NULL;
}

/* "bytes <first>-<last>/<total>" */
static bool parse_content_range(const char *v, uint64_t *first, uint64_t *last, uint64_t *total)
{
    unsigned long long a, b, c;
    char end;
    if (sscanf(v, "bytes %llu-%llu/%llu%c", &a, &b, &c, &end) != 3) {
        return false;
    }
    *first = a;
    *last = b;
    *total = c;
    return true;
}

enum berth_err s3_stream_open(struct s3_store *s, const char *key, uint64_t size, uint64_t offset,
                              uint64_t len, struct s3_stream **out)
{
    if (offset > size || len > size - offset) {
        return BERTH_EINVAL;
    }
    struct s3_stream *st = calloc(1, sizeof(*st));
    char *ring = malloc(S3_STREAM_RING);
    if (st == NULL || ring == NULL) {
        free(st);
        free(ring);
        return BERTH_ENOMEM;
    }
    st->base.ops = s->base.ops;
    st->ring = ring;
    st->ring_cap = S3_STREAM_RING;
    st->pump = s->pump;
    st->want = len;
    st->offset = offset;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    snprintf(st->key, sizeof(st->key), "%s", key);
    bool ranged = len > 0 && len < size;
    char range[64];
    snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)offset,
             (unsigned long long)(offset + len - 1));
    struct s3_req req = {.method = "GET", .key = st->key, .out_fd = -1};
    if (ranged) {
        req.headers[req.header_count++] = (struct s3_header){"Range", range};
    }
    enum berth_err rc = prepare(s, &req, &st->resp, &st->curl, &st->hl);
    if (rc != BERTH_OK) {
        st->curl = NULL;
        st->hl = NULL;
        stream_free(st);
        return rc;
    }
    st->resp.req = NULL; /* req does not outlive this call */
    curl_easy_setopt(st->curl, CURLOPT_HEADERFUNCTION, on_stream_header);
    curl_easy_setopt(st->curl, CURLOPT_HEADERDATA, st);
    curl_easy_setopt(st->curl, CURLOPT_WRITEFUNCTION, on_stream_body);
    curl_easy_setopt(st->curl, CURLOPT_WRITEDATA, st);
    curl_easy_setopt(st->curl, CURLOPT_PRIVATE, (char *)st);
    curl_easy_setopt(st->curl, CURLOPT_BUFFERSIZE, (long)S3_STREAM_PIECE);
    pump_kick(st->pump, st);

    /* Wait for the head: the caller answers its client by it. */
    pthread_mutex_lock(&st->mu);
    while (!st->head_done) {
        pthread_cond_wait(&st->cv, &st->mu);
    }
    long status = st->resp.status;
    CURLcode cc = st->result;
    pthread_mutex_unlock(&st->mu);

    uint64_t first = 0, last = 0, total = 0;
    if (status == 206 && (!parse_content_range(st->resp.content_range, &first, &last, &total) ||
                          first != offset || last != offset + len - 1 || total != size)) {
        log_error(
            "event=s3_error op=GET key=%s status=206 content_range=\"%s\" want=%llu-%llu/%llu", key,
            st->resp.content_range, (unsigned long long)offset,
            (unsigned long long)(offset + len - 1), (unsigned long long)size);
        rc = BERTH_ENOTFOUND;
    } else if (status == 200 && st->resp.has_length && st->resp.content_length != size) {
        log_error("event=s3_error op=GET key=%s status=200 length=%llu want=%llu", key,
                  (unsigned long long)st->resp.content_length, (unsigned long long)size);
        rc = BERTH_ENOTFOUND; /* another object than the metadata's */
    } else if (status == 200 || status == 206) {
        /* the body comes */
    } else if (status == 404) {
        rc = BERTH_ENOTFOUND;
    } else if (status == 0) { /* no answer */
        log_error("event=s3_error op=GET key=%s curl=%d error=\"%s\"", key, (int)cc,
                  curl_easy_strerror(cc));
        rc = BERTH_EUNAVAILABLE;
    } else {
        /* wait for the error's body, for the log */
        pthread_mutex_lock(&st->mu);
        while (!st->finished) {
            pthread_cond_wait(&st->cv, &st->mu);
        }
        pthread_mutex_unlock(&st->mu);
        log_error("event=s3_error op=GET key=%s status=%ld body=\"%.300s\"", key, status,
                  buf_cstr(&st->resp.err));
        rc = s3_status_err(status);
    }
    if (rc != BERTH_OK) {
        s3_stream_close(st);
        return rc;
    }
    *out = st;
    return BERTH_OK;
}

long long s3_stream_read(struct s3_stream *st, char *buf, size_t max, void (*wake)(void *),
                         void *wake_arg)
{
    pthread_mutex_lock(&st->mu);
    for (;;) {
        if (st->fill > 0) {
            size_t n = st->fill < max ? st->fill : max;
            size_t first = st->ring_cap - st->start < n ? st->ring_cap - st->start : n;
            memcpy(buf, st->ring + st->start, first);
            memcpy(buf + first, st->ring, n - first);
            st->start = (st->start + n) % st->ring_cap;
            st->fill -= n;
            st->delivered += n;
            bool kick =
                st->paused && !st->resume_sent && st->ring_cap - st->fill >= S3_STREAM_PIECE;
            if (kick) {
                st->resume_sent = true;
            }
            pthread_mutex_unlock(&st->mu);
            if (kick) {
                pump_kick(st->pump, st);
            }
            return (long long)n;
        }
        if (st->delivered == st->want) {
            pthread_mutex_unlock(&st->mu);
            return 0;
        }
        if (st->finished) {
            /* ended before the range did */
            log_error("event=s3_error op=GET key=%s curl=%d error=\"%s\" got=%llu want=%llu",
                      st->key, (int)st->result,
                      st->result != CURLE_OK ? curl_easy_strerror(st->result) : "short body",
                      (unsigned long long)st->delivered, (unsigned long long)st->want);
            pthread_mutex_unlock(&st->mu);
            return -1;
        }
        if (wake != NULL) {
            st->wake = wake;
            st->wake_arg = wake_arg;
            pthread_mutex_unlock(&st->mu);
            return BLOB_READ_WAIT;
        }
        pthread_cond_wait(&st->cv, &st->mu);
    }
}

void s3_stream_close(struct s3_stream *st)
{
    if (st == NULL) {
        return;
    }
    pthread_mutex_lock(&st->mu);
    st->closed = true;
    st->wake = NULL;
    pthread_mutex_unlock(&st->mu);
    pump_kick(st->pump, st);
}
