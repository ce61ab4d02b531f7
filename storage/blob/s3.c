/*
 * The S3 blob backend (storage.backend s3): published blobs are objects of
 * one bucket, <prefix>blobs/<alg>/<2 hex>/<hex>; removal copies a blob to
 * <prefix>trash/<alg>-<hex> (tagged with a random removal id in its
 * metadata) before deleting it, so a rollback can bring it back. Requests
 * go through libcurl, signed with SigV4 (storage/spec/sigv4.h, the code the
 * ECR verifier uses), path-style or virtual-hosted.
 *
 * Stages are files of a filesystem store under the data root (uploads/),
 * exactly as the filesystem backend keeps them: written at offsets, cut
 * back, hashed. As a stage's bytes arrive, every whole S3_PART_BYTES piece
 * is also sent as a part of a multipart upload to the staging key
 * <prefix>uploads/<name> (its upload id and the parts' ETags are kept in
 * <root>/s3mpu/<name>, so a reopened stage goes on); a write or a cut
 * below what was sent drops the parts from there, to be sent again.
 * Publishing a stage (its digest already checked by the caller) sends the
 * parts still missing, completes the multipart upload at the staging key
 * and copies it server-side to the content key, then deletes the staging
 * object; a stage that never reached a part is one PUT to the content key.
 * S3 makes an object appear whole or not at all (a multipart upload exists
 * under its key only once completed), and nothing is written under a
 * content key before the digest matched, so a crash never leaves a
 * half-published blob there. Removing a stage (a cancelled or expired
 * upload) aborts its multipart upload and deletes its staging object.
 * Blobs over S3_COPY_MAX (S3's largest single copy) are uploaded again
 * from the local file as a multipart upload to the content key instead.
 *
 * Reads: blob_open downloads the object into an unlinked file under
 * <root>/s3tmp and hands that over (the interface is a file descriptor);
 * blob_local_path keeps a copy in <root>/s3cache until the blob is
 * removed. blob_stat is one HEAD.
 *
 * Thread-safe: every request has its own curl handle; nothing shared is
 * mutable after open.
 */
#define _GNU_SOURCE /* O_TMPFILE, timegm */
#include "blob_int.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/rand.h"
#include "common/str.h"
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
#define S3_ERRBODY_MAX 4096
#define S3_XML_MAX ((size_t)16 << 20)
#define S3_META_REMOVAL "x-amz-meta-berth-removal"
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

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
    char tmp_dir[S3_PATH_MAX];
    char cache_dir[S3_PATH_MAX];
    char mpu_dir[S3_PATH_MAX];
};

/* A stage's multipart upload: its id ("" when none was started) and the
 * ETags of parts 1..parts, each S3_PART_BYTES of the stage in order. */
struct mpu {
    char upload_id[256];
    int parts;
    int cap;
    char (*etags)[S3_ETAG_MAX];
};

/* A stage handle: the local file's handle, and the parts sent. */
struct s3_stage {
    struct blob_stage base;
    struct s3_store *s;
    struct blob_stage *local;
    int fd; /* the local file, for reading parts */
    char name[BLOB_STAGE_NAME_MAX + 1];
    uint64_t size;
    struct mpu mpu;
    char *part; /* S3_PART_BYTES, allocated when the first part is sent */
};

static struct s3_store *s3_of(struct blob_store *bs)
{
    return (struct s3_store *)(void *)bs;
}

static struct s3_stage *stage_of(struct blob_stage *s)
{
    return (struct s3_stage *)(void *)s;
}

/* ---- requests ---- */

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
    struct buf err; /* the body of a non-2xx answer (bounded) */
    /* request-time state */
    const struct s3_req *req;
    CURL *curl;
    const char *up;
    size_t up_left;
    bool write_failed;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static bool is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

/* Percent-encode a key for the path (keeping '/'). */
static enum berth_err encode_key(struct buf *out, const char *key)
{
    static const char hex[] = "0123456789ABCDEF";
    enum berth_err rc = BERTH_OK;
    for (const unsigned char *p = (const unsigned char *)key; *p && rc == BERTH_OK; p++) {
        if (is_unreserved(*p) || *p == '/') {
            rc = buf_append(out, p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            rc = buf_append(out, e, 3);
        }
    }
    return rc;
}

/* Encode a query value (everything but unreserved bytes). */
static void encode_value(const char *v, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)v; *p && o + 4 < cap; p++) {
        if (is_unreserved(*p)) {
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
static enum berth_err s3_do(struct s3_store *s, const struct s3_req *req, struct s3_resp *resp)
{
    memset(resp, 0, sizeof(*resp));
    buf_init(&resp->err, S3_ERRBODY_MAX);
    resp->req = req;

    struct buf path;
    buf_init(&path, S3_URL_MAX);
    enum berth_err rc = BERTH_OK;
    if (s->path_style) {
        rc = buf_printf(&path, "/%s", s->bucket);
        if (rc == BERTH_OK && req->key != NULL) {
            rc = buf_puts(&path, "/");
        }
    } else {
        rc = buf_puts(&path, "/");
    }
    if (rc == BERTH_OK && req->key != NULL) {
        rc = encode_key(&path, req->key);
    }
    if (rc == BERTH_OK && !s->path_style && req->key == NULL) {
        /* the bucket itself: "/" */
    }
    char host[sizeof(s->host) + sizeof(s->bucket) + 2];
    if (s->path_style) {
        snprintf(host, sizeof(host), "%s", s->host);
    } else {
        snprintf(host, sizeof(host), "%s.%s", s->bucket, s->host);
    }
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
        uint8_t h[32];
        digest_sha256_raw(req->body, req->body_len, h);
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
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_len);
    } else if (strcmp(req->method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body != NULL ? req->body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    } else if (strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
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
        rc = BERTH_EIO;
    }
    buf_fini(&path);
    buf_fini(&url);
    return rc;
}

static void resp_fini(struct s3_resp *r)
{
    buf_fini(&r->err);
}

/* A 200 whose body is an <Error> (CopyObject, CompleteMultipartUpload). */
static bool body_is_error(const struct buf *b)
{
    return b != NULL && strstr(buf_cstr(b), "<Error>") != NULL;
}

/* Map an answer that is not what was wanted to an error, logging it. */
static enum berth_err s3_fail(const struct s3_req *req, const struct s3_resp *r)
{
    if (r->status == 404) {
        return BERTH_ENOTFOUND;
    }
    log_error("event=s3_error op=%s key=%s status=%ld body=\"%.300s\"", req->method,
              req->key != NULL ? req->key : "", r->status, buf_cstr(&r->err));
    return BERTH_EIO;
}

/* ---- keys ---- */

static enum berth_err blob_key(const struct s3_store *s, const struct digest *d, char *out,
                               size_t cap)
{
    const char *hex = digest_hex(d);
    int n = snprintf(out, cap, "%sblobs/%s/%.2s/%s", s->prefix, digest_alg_name(d->alg), hex, hex);
    return (n < 0 || (size_t)n >= cap) ? BERTH_ETOOBIG : BERTH_OK;
}

static enum berth_err trash_key(const struct s3_store *s, const struct digest *d, char *out,
                                size_t cap)
{
    int n = snprintf(out, cap, "%strash/%s-%s", s->prefix, digest_alg_name(d->alg), digest_hex(d));
    return (n < 0 || (size_t)n >= cap) ? BERTH_ETOOBIG : BERTH_OK;
}

static enum berth_err cache_path(const struct s3_store *s, const struct digest *d, char *out,
                                 size_t cap)
{
    int n = snprintf(out, cap, "%s/%s-%s", s->cache_dir, digest_alg_name(d->alg), digest_hex(d));
    return (n < 0 || (size_t)n >= cap) ? BERTH_ETOOBIG : BERTH_OK;
}

/* ---- object operations ---- */

static enum berth_err head_object(struct s3_store *s, const char *key, struct s3_resp *out)
{
    struct s3_req req = {.method = "HEAD", .key = key, .out_fd = -1};
    enum berth_err rc = s3_do(s, &req, out);
    if (rc == BERTH_OK && out->status != 200) {
        rc = s3_fail(&req, out);
    }
    return rc;
}

static enum berth_err delete_object(struct s3_store *s, const char *key)
{
    struct s3_req req = {.method = "DELETE", .key = key, .out_fd = -1};
    struct s3_resp r;
    enum berth_err rc = s3_do(s, &req, &r);
    if (rc == BERTH_OK && r.status != 204 && r.status != 200 && r.status != 404) {
        rc = s3_fail(&req, &r);
    }
    resp_fini(&r);
    return rc;
}

static enum berth_err put_object(struct s3_store *s, const char *key, const void *p, size_t n)
{
    struct s3_req req = {.method = "PUT", .key = key, .body = p, .body_len = n, .out_fd = -1};
    struct s3_resp r;
    enum berth_err rc = s3_do(s, &req, &r);
    if (rc == BERTH_OK && r.status != 200) {
        rc = s3_fail(&req, &r);
    }
    resp_fini(&r);
    return rc;
}

/* Server-side copy from one key of the bucket to another, setting the
 * removal id metadata when removal is not NULL. */
static enum berth_err copy_object(struct s3_store *s, const char *from, const char *to,
                                  const char *removal)
{
    struct buf src;
    buf_init(&src, S3_URL_MAX);
    enum berth_err rc = buf_printf(&src, "/%s/", s->bucket);
    if (rc == BERTH_OK) {
        rc = encode_key(&src, from);
    }
    if (rc != BERTH_OK) {
        buf_fini(&src);
        return rc;
    }
    struct buf body;
    buf_init(&body, S3_ERRBODY_MAX);
    struct s3_req req = {.method = "PUT", .key = to, .out_fd = -1, .out = &body};
    req.headers[req.header_count++] = (struct s3_header){"x-amz-copy-source", buf_cstr(&src)};
    if (removal != NULL) {
        req.headers[req.header_count++] = (struct s3_header){"x-amz-metadata-directive", "REPLACE"};
        req.headers[req.header_count++] = (struct s3_header){S3_META_REMOVAL, removal};
    }
    struct s3_resp r;
    rc = s3_do(s, &req, &r);
    if (rc == BERTH_OK && (r.status != 200 || body_is_error(&body))) {
        if (r.status == 200) {
            log_error("event=s3_error op=copy from=%s to=%s body=\"%.300s\"", from, to,
                      buf_cstr(&body));
            rc = BERTH_EIO;
        } else {
            rc = s3_fail(&req, &r);
        }
    }
    resp_fini(&r);
    buf_fini(&body);
    buf_fini(&src);
    return rc;
}

/* GET key into fd (from its current offset). */
static enum berth_err get_object(struct s3_store *s, const char *key, int fd)
{
    struct s3_req req = {.method = "GET", .key = key, .out_fd = fd};
    struct s3_resp r;
    enum berth_err rc = s3_do(s, &req, &r);
    if (rc == BERTH_OK && r.status != 200) {
        rc = s3_fail(&req, &r);
    }
    resp_fini(&r);
    return rc;
}

/* n bytes at off of fd into p (fewer only at the end of the file). */
static enum berth_err pread_full(int fd, void *p, size_t n, off_t off, size_t *got)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, (char *)p + done, n - done, off + (off_t)done);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return BERTH_EIO;
        }
        if (r == 0) {
            break;
        }
        done += (size_t)r;
    }
    *got = done;
    return BERTH_OK;
}

/* ---- the store ---- */

static const struct blob_backend s3_backend;

static bool copy_opt(char *dst, size_t cap, const char *v)
{
    v = v != NULL ? v : "";
    if (strlen(v) >= cap) {
        return false;
    }
    memcpy(dst, v, strlen(v) + 1);
    return true;
}

static enum berth_err parse_endpoint(struct s3_store *s, const char *endpoint, const char *region)
{
    char def[256];
    if (endpoint == NULL || endpoint[0] == '\0') {
        snprintf(def, sizeof(def), "https://s3.%s.amazonaws.com", region);
        endpoint = def;
    }
    const char *rest;
    if (strncmp(endpoint, "http://", 7) == 0) {
        memcpy(s->scheme, "http", 5);
        rest = endpoint + 7;
    } else if (strncmp(endpoint, "https://", 8) == 0) {
        memcpy(s->scheme, "https", 6);
        rest = endpoint + 8;
    } else {
        return BERTH_EINVAL;
    }
    size_t n = strcspn(rest, "/");
    if (n == 0 || n >= sizeof(s->host) || (rest[n] == '/' && rest[n + 1] != '\0')) {
        return BERTH_EINVAL; /* a path after the host is not supported */
    }
    memcpy(s->host, rest, n);
    s->host[n] = '\0';
    return BERTH_OK;
}

enum berth_err blob_s3_open(const struct blob_store_options *opt, struct blob_store **out)
{
    const struct blob_s3_options *o = &opt->s3;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        log_error("event=s3_error op=curl_global_init curl=%d", (int)curl_init_rc);
        return BERTH_EIO;
    }
    struct s3_store *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return BERTH_ENOMEM;
    }
    s->base.ops = &s3_backend;
    s->path_style = o->path_style;
    enum berth_err rc = BERTH_OK;
    if (o->bucket == NULL || o->bucket[0] == '\0' || o->region == NULL || o->region[0] == '\0' ||
        o->access_key_id == NULL || o->access_key_id[0] == '\0' || o->secret_access_key == NULL ||
        o->secret_access_key[0] == '\0' || !copy_opt(s->bucket, sizeof(s->bucket), o->bucket) ||
        !copy_opt(s->prefix, sizeof(s->prefix), o->prefix) ||
        !copy_opt(s->region, sizeof(s->region), o->region) ||
        !copy_opt(s->akid, sizeof(s->akid), o->access_key_id) ||
        !copy_opt(s->secret, sizeof(s->secret), o->secret_access_key) ||
        !copy_opt(s->ca_file, sizeof(s->ca_file), o->tls_ca_file) ||
        parse_endpoint(s, o->endpoint, s->region) != BERTH_OK) {
        log_error("event=s3_error op=open error=\"storage.s3 needs a bucket, a region, an "
                  "http(s) endpoint without a path, and credentials (storage.s3.access_key_id "
                  "and secret_access_key, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)\"");
        rc = BERTH_EINVAL;
        goto out;
    }
    int n1 = snprintf(s->tmp_dir, sizeof(s->tmp_dir), "%s/s3tmp", opt->root);
    int n2 = snprintf(s->cache_dir, sizeof(s->cache_dir), "%s/s3cache", opt->root);
    int n3 = snprintf(s->mpu_dir, sizeof(s->mpu_dir), "%s/s3mpu", opt->root);
    if (n1 < 0 || (size_t)n1 >= sizeof(s->tmp_dir) - 200 || n2 < 0 ||
        (size_t)n2 >= sizeof(s->cache_dir) - 200 || n3 < 0 ||
        (size_t)n3 >= sizeof(s->mpu_dir) - 200) {
        rc = BERTH_ETOOBIG;
        goto out;
    }
    struct blob_store_options local = {.root = opt->root, .fsync = opt->fsync};
    rc = blob_fs_open(&local, &s->local);
    if (rc != BERTH_OK) {
        goto out;
    }
    const char *dirs[] = {s->tmp_dir, s->cache_dir, s->mpu_dir};
    for (size_t i = 0; i < 3 && rc == BERTH_OK; i++) {
        rc = file_mkdir_p(dirs[i], 0750);
        if (rc != BERTH_OK) {
            log_error("event=store_error op=mkdir path=%s errno=%d", dirs[i], errno);
        }
    }
    if (rc == BERTH_OK) {
        /* The bucket must answer (and the credentials be good) before
         * anything is served. */
        struct s3_req req = {.method = "HEAD", .key = NULL, .out_fd = -1};
        struct s3_resp r;
        rc = s3_do(s, &req, &r);
        if (rc == BERTH_OK && r.status != 200) {
            log_error("event=s3_error op=head_bucket bucket=%s status=%ld", s->bucket, r.status);
            rc = BERTH_EIO;
        }
        resp_fini(&r);
    }
out:
    if (rc != BERTH_OK) {
        blob_store_close(s->local);
        free(s);
        return rc;
    }
    log_info("event=blob_store backend=s3 endpoint=%s://%s bucket=%s prefix=%s", s->scheme, s->host,
             s->bucket, s->prefix);
    *out = &s->base;
    return BERTH_OK;
}

static void s3_close(struct blob_store *bs)
{
    struct s3_store *s = s3_of(bs);
    blob_store_close(s->local);
    volatile char *v = s->secret;
    for (size_t i = 0; i < sizeof(s->secret); i++) {
        v[i] = 0;
    }
    free(s);
}

/* ---- reading ---- */

static enum berth_err s3_stat(struct blob_store *bs, const struct digest *d, uint64_t *size)
{
    struct s3_store *s = s3_of(bs);
    char key[S3_KEY_MAX];
    enum berth_err rc = blob_key(s, d, key, sizeof(key));
    if (rc != BERTH_OK) {
        return rc;
    }
    struct s3_resp r;
    rc = head_object(s, key, &r);
    if (rc == BERTH_OK) {
        *size = r.content_length;
    }
    resp_fini(&r);
    return rc;
}

/* An unlinked file in dir, for reading and writing. */
static int anon_file(const char *dir)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) {
        return fd;
    }
    char path[S3_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/get-XXXXXX", dir);
    fd = mkostemp(path, O_CLOEXEC);
    if (fd >= 0) {
        unlink(path);
    }
    return fd;
}

static enum berth_err s3_open(struct blob_store *bs, const struct digest *d, int *fd,
                              uint64_t *size)
{
    struct s3_store *s = s3_of(bs);
    char key[S3_KEY_MAX];
    enum berth_err rc = blob_key(s, d, key, sizeof(key));
    if (rc != BERTH_OK) {
        return rc;
    }
    int f = anon_file(s->tmp_dir);
    if (f < 0) {
        log_error("event=store_error op=tmpfile path=%s errno=%d", s->tmp_dir, errno);
        return BERTH_EIO;
    }
    rc = get_object(s, key, f);
    struct stat sb;
    if (rc == BERTH_OK && (fstat(f, &sb) != 0 || lseek(f, 0, SEEK_SET) != 0)) {
        rc = BERTH_EIO;
    }
    if (rc != BERTH_OK) {
        file_close(f);
        return rc;
    }
    *fd = f;
    *size = (uint64_t)sb.st_size;
    return BERTH_OK;
}

static enum berth_err s3_local_path(struct blob_store *bs, const struct digest *d, char *out,
                                    size_t cap)
{
    struct s3_store *s = s3_of(bs);
    enum berth_err rc = cache_path(s, d, out, cap);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct stat sb;
    if (stat(out, &sb) == 0) {
        return BERTH_OK;
    }
    char key[S3_KEY_MAX], tmp[S3_PATH_MAX + 16];
    rc = blob_key(s, d, key, sizeof(key));
    if (rc != BERTH_OK) {
        return rc;
    }
    snprintf(tmp, sizeof(tmp), "%s/cache-XXXXXX", s->tmp_dir);
    int f = mkostemp(tmp, O_CLOEXEC);
    if (f < 0) {
        return BERTH_EIO;
    }
    rc = get_object(s, key, f);
    file_close(f);
    if (rc == BERTH_OK && rename(tmp, out) != 0) {
        rc = BERTH_EIO;
    }
    if (rc != BERTH_OK) {
        unlink(tmp);
    }
    return rc;
}

static void drop_cache(struct s3_store *s, const struct digest *d)
{
    char path[S3_PATH_MAX];
    if (cache_path(s, d, path, sizeof(path)) == BERTH_OK) {
        unlink(path);
    }
}

/* Text between <tag> and </tag> after *from (moved past it), unescaping
 * the XML entities S3 uses. False when there is none. */
static bool xml_next(const char **from, const char *tag, char *out, size_t cap)
{
    char open[64], close[64];
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    const char *a = strstr(*from, open);
    if (a == NULL) {
        return false;
    }
    a += strlen(open);
    const char *b = strstr(a, close);
    if (b == NULL) {
        return false;
    }
    size_t o = 0;
    for (const char *p = a; p < b && o + 1 < cap;) {
        static const struct {
            const char *ent;
            char c;
        } ents[] = {
            {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
        bool done = false;
        for (size_t i = 0; i < sizeof(ents) / sizeof(ents[0]) && !done; i++) {
            size_t n = strlen(ents[i].ent);
            if ((size_t)(b - p) >= n && strncmp(p, ents[i].ent, n) == 0) {
                out[o++] = ents[i].c;
                p += n;
                done = true;
            }
        }
        if (!done) {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    *from = b + strlen(close);
    return true;
}

static enum berth_err abort_multipart(struct s3_store *s, const char *key, const char *upload_id)
{
    char enc[512], query[600];
    encode_value(upload_id, enc, sizeof(enc));
    snprintf(query, sizeof(query), "uploadId=%s", enc);
    struct s3_req req = {.method = "DELETE", .key = key, .query = query, .out_fd = -1};
    struct s3_resp r;
    enum berth_err rc = s3_do(s, &req, &r);
    if (rc == BERTH_OK && r.status != 204 && r.status != 200 && r.status != 404) {
        rc = s3_fail(&req, &r);
    }
    resp_fini(&r);
    return rc;
}

static enum berth_err create_multipart(struct s3_store *s, const char *key, char *upload_id,
                                       size_t cap)
{
    struct buf xml;
    buf_init(&xml, S3_XML_MAX);
    struct s3_req req = {
        .method = "POST", .key = key, .query = "uploads", .out_fd = -1, .out = &xml};
    struct s3_resp r;
    enum berth_err rc = s3_do(s, &req, &r);
    const char *at = buf_cstr(&xml);
    if (rc == BERTH_OK &&
        (r.status != 200 || !xml_next(&at, "UploadId", upload_id, cap) || upload_id[0] == '\0')) {
        rc = r.status == 200 ? BERTH_EIO : s3_fail(&req, &r);
    }
    resp_fini(&r);
    buf_fini(&xml);
    return rc;
}

static enum berth_err upload_part(struct s3_store *s, const char *key, const char *upload_id,
                                  int number, const void *p, size_t n, char etag[S3_ETAG_MAX])
{
    char enc_id[512], query[700];
    encode_value(upload_id, enc_id, sizeof(enc_id));
    snprintf(query, sizeof(query), "partNumber=%d&uploadId=%s", number, enc_id);
    struct s3_req req = {
        .method = "PUT", .key = key, .query = query, .body = p, .body_len = n, .out_fd = -1};
    struct s3_resp r;
    enum berth_err rc = s3_do(s, &req, &r);
    if (rc == BERTH_OK && (r.status != 200 || r.etag[0] == '\0')) {
        rc = s3_fail(&req, &r);
    }
    if (rc == BERTH_OK) {
        snprintf(etag, S3_ETAG_MAX, "%s", r.etag);
    }
    resp_fini(&r);
    return rc;
}

static enum berth_err complete_multipart(struct s3_store *s, const char *key, const struct mpu *m)
{
    struct buf done, xml;
    buf_init(&done, S3_XML_MAX);
    buf_init(&xml, S3_XML_MAX);
    enum berth_err rc = buf_puts(&done, "<CompleteMultipartUpload>");
    for (int i = 0; i < m->parts && rc == BERTH_OK; i++) {
        rc = buf_printf(&done, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>", i + 1,
                        m->etags[i]);
    }
    if (rc == BERTH_OK) {
        rc = buf_puts(&done, "</CompleteMultipartUpload>");
    }
    char enc_id[512], query[600];
    encode_value(m->upload_id, enc_id, sizeof(enc_id));
    snprintf(query, sizeof(query), "uploadId=%s", enc_id);
    if (rc == BERTH_OK) {
        struct s3_req req = {.method = "POST",
                             .key = key,
                             .query = query,
                             .body = done.data,
                             .body_len = done.len,
                             .out_fd = -1,
                             .out = &xml};
        struct s3_resp r;
        rc = s3_do(s, &req, &r);
        if (rc == BERTH_OK && (r.status != 200 || body_is_error(&xml))) {
            if (r.status == 200) {
                log_error("event=s3_error op=complete_multipart key=%s body=\"%.300s\"", key,
                          buf_cstr(&xml));
                rc = BERTH_EIO;
            } else {
                rc = s3_fail(&req, &r);
            }
        }
        resp_fini(&r);
    }
    buf_fini(&done);
    buf_fini(&xml);
    return rc;
}

static void mpu_free(struct mpu *m)
{
    free(m->etags);
    memset(m, 0, sizeof(*m));
}

static enum berth_err mpu_add(struct mpu *m, int number, const char *etag)
{
    if (number > m->cap) {
        int cap = m->cap > 0 ? m->cap * 2 : 16;
        while (cap < number) {
            cap *= 2;
        }
        char(*e)[S3_ETAG_MAX] = realloc(m->etags, (size_t)cap * S3_ETAG_MAX);
        if (e == NULL) {
            return BERTH_ENOMEM;
        }
        m->etags = e;
        m->cap = cap;
    }
    snprintf(m->etags[number - 1], S3_ETAG_MAX, "%s", etag);
    if (number > m->parts) {
        m->parts = number;
    }
    return BERTH_OK;
}

/* Upload the file fd (size bytes) to key as a multipart upload of
 * S3_PART_BYTES parts; the object appears only when it completes. */
static enum berth_err put_multipart(struct s3_store *s, const char *key, int fd, uint64_t size)
{
    struct mpu m = {0};
    enum berth_err rc = create_multipart(s, key, m.upload_id, sizeof(m.upload_id));
    char *part = rc == BERTH_OK ? malloc(S3_PART_BYTES) : NULL;
    if (rc == BERTH_OK && part == NULL) {
        rc = BERTH_ENOMEM;
    }
    int number = 1;
    for (uint64_t off = 0; rc == BERTH_OK && off < size; off += S3_PART_BYTES, number++) {
        size_t n = size - off < S3_PART_BYTES ? (size_t)(size - off) : S3_PART_BYTES;
        size_t got = 0;
        char etag[S3_ETAG_MAX];
        rc = pread_full(fd, part, n, (off_t)off, &got);
        if (rc == BERTH_OK && got != n) {
            rc = BERTH_EIO;
        }
        if (rc == BERTH_OK) {
            rc = upload_part(s, key, m.upload_id, number, part, n, etag);
        }
        if (rc == BERTH_OK) {
            rc = mpu_add(&m, number, etag);
        }
    }
    free(part);
    if (rc == BERTH_OK) {
        rc = complete_multipart(s, key, &m);
    }
    if (rc != BERTH_OK && m.upload_id[0] != '\0') {
        abort_multipart(s, key, m.upload_id);
    }
    mpu_free(&m);
    return rc;
}

/* ---- stages ---- */

static enum berth_err staging_key(const struct s3_store *s, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%suploads/%s", s->prefix, name);
    return (n < 0 || (size_t)n >= cap) ? BERTH_ETOOBIG : BERTH_OK;
}

static enum berth_err mpu_path(const struct s3_store *s, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", s->mpu_dir, name);
    return (n < 0 || (size_t)n >= cap) ? BERTH_ETOOBIG : BERTH_OK;
}

/* The state file: the upload id, then one ETag a line, part 1 first. */
static enum berth_err mpu_load(const struct s3_store *s, const char *name, struct mpu *m)
{
    memset(m, 0, sizeof(*m));
    char path[S3_PATH_MAX + 80];
    enum berth_err rc = mpu_path(s, name, path, sizeof(path));
    char *text = NULL;
    size_t len = 0;
    if (rc == BERTH_OK) {
        rc = file_read_bounded(path, S3_MPU_STATE_MAX, &text, &len);
    }
    if (rc != BERTH_OK) {
        return rc;
    }
    char *save = NULL;
    int number = 0;
    for (char *line = strtok_r(text, "\n", &save); line != NULL && rc == BERTH_OK;
         line = strtok_r(NULL, "\n", &save), number++) {
        if (number == 0) {
            snprintf(m->upload_id, sizeof(m->upload_id), "%s", line);
        } else {
            rc = mpu_add(m, number, line);
        }
    }
    free(text);
    if (rc != BERTH_OK) {
        mpu_free(m);
    }
    return rc;
}

static enum berth_err mpu_save(const struct s3_store *s, const char *name, const struct mpu *m)
{
    char path[S3_PATH_MAX + 80];
    enum berth_err rc = mpu_path(s, name, path, sizeof(path));
    struct buf text;
    buf_init(&text, S3_MPU_STATE_MAX);
    if (rc == BERTH_OK) {
        rc = buf_printf(&text, "%s\n", m->upload_id);
    }
    for (int i = 0; i < m->parts && rc == BERTH_OK; i++) {
        rc = buf_printf(&text, "%s\n", m->etags[i]);
    }
    if (rc == BERTH_OK) {
        rc = file_write_atomic(path, text.data, text.len, 0640, false);
    }
    buf_fini(&text);
    return rc;
}

static void mpu_forget(const struct s3_store *s, const char *name)
{
    char path[S3_PATH_MAX + 80];
    if (mpu_path(s, name, path, sizeof(path)) == BERTH_OK) {
        unlink(path);
    }
}

/* Send part number (1-based) of the stage, n bytes, from its local file. */
static enum berth_err send_part(struct s3_stage *st, const char *key, int number, size_t n)
{
    if (st->part == NULL && (st->part = malloc(S3_PART_BYTES)) == NULL) {
        return BERTH_ENOMEM;
    }
    size_t got = 0;
    enum berth_err rc =
        pread_full(st->fd, st->part, n, (off_t)((uint64_t)(number - 1) * S3_PART_BYTES), &got);
    if (rc == BERTH_OK && got != n) {
        rc = BERTH_EIO;
    }
    char etag[S3_ETAG_MAX];
    if (rc == BERTH_OK) {
        rc = upload_part(st->s, key, st->mpu.upload_id, number, st->part, n, etag);
    }
    if (rc == BERTH_OK) {
        st->mpu.parts = number - 1;
        rc = mpu_add(&st->mpu, number, etag);
    }
    if (rc == BERTH_OK) {
        rc = mpu_save(st->s, st->name, &st->mpu);
    }
    return rc;
}

/* Send every whole part the stage holds that was not sent yet (parts
 * gather the writes, whatever their sizes). A failure is logged and left
 * for publication to retry: the local file has the bytes. */
static void send_whole_parts(struct s3_stage *st)
{
    char key[S3_KEY_MAX];
    if (staging_key(st->s, st->name, key, sizeof(key)) != BERTH_OK) {
        return;
    }
    while (st->size >= (uint64_t)(st->mpu.parts + 1) * S3_PART_BYTES) {
        enum berth_err rc = BERTH_OK;
        if (st->mpu.upload_id[0] == '\0') {
            rc = create_multipart(st->s, key, st->mpu.upload_id, sizeof(st->mpu.upload_id));
            if (rc == BERTH_OK) {
                rc = mpu_save(st->s, st->name, &st->mpu);
            }
        }
        if (rc == BERTH_OK) {
            rc = send_part(st, key, st->mpu.parts + 1, S3_PART_BYTES);
        }
        if (rc != BERTH_OK) {
            log_warn("event=s3_part_deferred stage=%s part=%d err=%s", st->name, st->mpu.parts + 1,
                     berth_strerror(rc));
            return;
        }
    }
}

/* Parts from the one holding byte offset on are no longer the stage's. */
static void drop_parts_from(struct s3_stage *st, uint64_t offset)
{
    int keep = (int)(offset / S3_PART_BYTES);
    if (keep < st->mpu.parts) {
        st->mpu.parts = keep;
        if (st->mpu.upload_id[0] != '\0' && mpu_save(st->s, st->name, &st->mpu) != BERTH_OK) {
            log_warn("event=s3_state_error stage=%s", st->name);
        }
    }
}

int blob_s3_stage_parts_sent(const struct blob_stage *bs)
{
    return ((const struct s3_stage *)(const void *)bs)->mpu.parts;
}

static enum berth_err s3_stage_create(struct blob_store *bs, const char *name)
{
    return blob_stage_create(s3_of(bs)->local, name);
}

static enum berth_err s3_stage_open(struct blob_store *bs, const char *name,
                                    struct blob_stage **out, uint64_t *size)
{
    struct s3_store *s = s3_of(bs);
    struct s3_stage *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return BERTH_ENOMEM;
    }
    st->fd = -1;
    char path[S3_PATH_MAX];
    enum berth_err rc = blob_stage_open(s->local, name, &st->local, &st->size);
    if (rc == BERTH_OK) {
        rc = blob_fs_stage_path(s->local, name, path, sizeof(path));
    }
    if (rc == BERTH_OK && (st->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        rc = BERTH_EIO;
    }
    if (rc == BERTH_OK) {
        rc = mpu_load(s, name, &st->mpu);
        if (rc == BERTH_ENOTFOUND) {
            rc = BERTH_OK;
        }
    }
    if (rc != BERTH_OK) {
        if (st->fd >= 0) {
            file_close(st->fd);
        }
        blob_stage_close(st->local);
        free(st);
        return rc;
    }
    st->base.ops = s->base.ops;
    st->s = s;
    snprintf(st->name, sizeof(st->name), "%s", name);
    /* parts beyond what the file holds (cut while closed) are not its */
    drop_parts_from(st, st->size);
    *size = st->size;
    *out = &st->base;
    return BERTH_OK;
}

static enum berth_err s3_stage_write(struct blob_stage *bs, uint64_t offset, const void *p,
                                     size_t n)
{
    struct s3_stage *st = stage_of(bs);
    if (offset < (uint64_t)st->mpu.parts * S3_PART_BYTES) {
        drop_parts_from(st, offset); /* rewriting bytes already sent */
    }
    enum berth_err rc = blob_stage_write(st->local, offset, p, n);
    if (rc != BERTH_OK) {
        return rc;
    }
    if (offset + n > st->size) {
        st->size = offset + n;
    }
    send_whole_parts(st);
    return BERTH_OK;
}

static enum berth_err s3_stage_read(struct blob_stage *bs, uint64_t offset, void *p, size_t n,
                                    size_t *got)
{
    return blob_stage_read(stage_of(bs)->local, offset, p, n, got);
}

static enum berth_err s3_stage_truncate(struct blob_stage *bs, uint64_t size)
{
    struct s3_stage *st = stage_of(bs);
    enum berth_err rc = blob_stage_truncate(st->local, size);
    if (rc == BERTH_OK) {
        st->size = size;
        drop_parts_from(st, size);
    }
    return rc;
}

static enum berth_err s3_stage_hash(struct blob_stage *bs, struct digest_ctx *ctx, uint64_t len)
{
    return blob_stage_hash(stage_of(bs)->local, ctx, len);
}

static enum berth_err s3_stage_sync(struct blob_stage *bs)
{
    return blob_stage_sync(stage_of(bs)->local);
}

static void s3_stage_close(struct blob_stage *bs)
{
    struct s3_stage *st = stage_of(bs);
    blob_stage_close(st->local);
    if (st->fd >= 0) {
        file_close(st->fd);
    }
    mpu_free(&st->mpu);
    free(st->part);
    free(st);
}

static enum berth_err s3_stage_stat(struct blob_store *bs, const char *name, uint64_t *size,
                                    int64_t *mtime)
{
    return blob_stage_stat(s3_of(bs)->local, name, size, mtime);
}

/* Abort the stage's multipart upload and delete its staging object, if
 * it has them. */
static enum berth_err drop_staged(struct s3_store *s, const char *name)
{
    struct mpu m;
    enum berth_err rc = mpu_load(s, name, &m);
    if (rc == BERTH_ENOTFOUND) {
        return BERTH_OK;
    }
    char key[S3_KEY_MAX];
    if (rc == BERTH_OK) {
        rc = staging_key(s, name, key, sizeof(key));
    }
    if (rc == BERTH_OK && m.upload_id[0] != '\0') {
        rc = abort_multipart(s, key, m.upload_id);
    }
    if (rc == BERTH_OK) {
        rc = delete_object(s, key);
    }
    mpu_free(&m);
    if (rc == BERTH_OK) {
        mpu_forget(s, name);
    }
    return rc;
}

static enum berth_err s3_stage_remove(struct blob_store *bs, const char *name)
{
    struct s3_store *s = s3_of(bs);
    enum berth_err rc = drop_staged(s, name);
    if (rc != BERTH_OK) {
        /* The local stage stays, so that upload expiry, which finds it
         * without a session, tries again later. */
        log_warn("event=s3_abort_failed stage=%s err=%s", name, berth_strerror(rc));
        return rc;
    }
    return blob_stage_remove(s->local, name);
}

static enum berth_err s3_stage_list(struct blob_store *bs, blob_stage_fn fn, void *arg)
{
    return blob_stage_list(s3_of(bs)->local, fn, arg);
}

/* Publish through the staged multipart upload: the parts still missing,
 * complete at the staging key, copy to the content key. */
static enum berth_err publish_staged(struct s3_store *s, const char *name, const char *key)
{
    struct blob_stage *h = NULL;
    uint64_t size = 0;
    enum berth_err rc = s3_stage_open(&s->base, name, &h, &size);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct s3_stage *st = stage_of(h);
    char staging[S3_KEY_MAX];
    rc = staging_key(s, name, staging, sizeof(staging));
    send_whole_parts(st);
    int total = (int)((size + S3_PART_BYTES - 1) / S3_PART_BYTES);
    for (int number = st->mpu.parts + 1; rc == BERTH_OK && number <= total; number++) {
        uint64_t off = (uint64_t)(number - 1) * S3_PART_BYTES;
        size_t n = size - off < S3_PART_BYTES ? (size_t)(size - off) : S3_PART_BYTES;
        rc = send_part(st, staging, number, n);
    }
    if (rc == BERTH_OK) {
        rc = complete_multipart(s, staging, &st->mpu);
    }
    if (rc == BERTH_OK) {
        /* the upload is no more: what is left is the staging object */
        st->mpu.upload_id[0] = '\0';
        st->mpu.parts = 0;
        rc = mpu_save(s, name, &st->mpu);
    }
    if (rc == BERTH_OK) {
        rc = copy_object(s, staging, key, NULL);
    }
    s3_stage_close(h);
    return rc;
}

static enum berth_err s3_stage_publish(struct blob_store *bs, const char *name,
                                       const struct digest *d)
{
    struct s3_store *s = s3_of(bs);
    char key[S3_KEY_MAX], path[S3_PATH_MAX];
    enum berth_err rc = blob_key(s, d, key, sizeof(key));
    if (rc == BERTH_OK) {
        rc = blob_fs_stage_path(s->local, name, path, sizeof(path));
    }
    if (rc != BERTH_OK) {
        return rc;
    }
    struct s3_resp r;
    rc = head_object(s, key, &r);
    resp_fini(&r);
    if (rc == BERTH_OK) {
        /* Already published (content-addressed: same bytes); a stage
         * left behind is expired later. */
        if (s3_stage_remove(bs, name) != BERTH_OK) {
            log_warn("event=s3_stage_cleanup_failed stage=%s", name);
        }
        return BERTH_OK;
    }
    if (rc != BERTH_ENOTFOUND) {
        return rc;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return berth_err_from_errno(errno);
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        file_close(fd);
        return BERTH_EIO;
    }
    uint64_t size = (uint64_t)sb.st_size;
    struct mpu m;
    bool staged = mpu_load(s, name, &m) == BERTH_OK && m.upload_id[0] != '\0';
    mpu_free(&m);
    if (size > S3_PART_BYTES && size <= S3_COPY_MAX && staged) {
        rc = publish_staged(s, name, key);
    } else if (size <= S3_PART_BYTES) {
        char *p = malloc(size > 0 ? (size_t)size : 1);
        size_t got = 0;
        rc = p == NULL ? BERTH_ENOMEM : pread_full(fd, p, (size_t)size, 0, &got);
        if (rc == BERTH_OK && got != size) {
            rc = BERTH_EIO;
        }
        if (rc == BERTH_OK) {
            rc = put_object(s, key, p, (size_t)size);
        }
        free(p);
    } else {
        rc = put_multipart(s, key, fd, size);
    }
    file_close(fd);
    if (rc == BERTH_OK) {
        /* the staging object and state, then the local file */
        rc = s3_stage_remove(bs, name);
        if (rc != BERTH_OK) {
            log_warn("event=s3_stage_cleanup_failed stage=%s err=%s", name, berth_strerror(rc));
            rc = BERTH_OK; /* the blob is published; the stage is expired later */
        }
    }
    return rc;
}

/* ---- removal ---- */

static void removal_text(const struct blob_removal *r, char out[33])
{
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)r->id[0], (unsigned long long)r->id[1]);
}

static enum berth_err s3_remove(struct blob_store *bs, const struct digest *d,
                                struct blob_removal *out)
{
    struct s3_store *s = s3_of(bs);
    char key[S3_KEY_MAX], trash[S3_KEY_MAX];
    memset(out, 0, sizeof(*out));
    out->d = *d;
    if (blob_key(s, d, key, sizeof(key)) != BERTH_OK ||
        trash_key(s, d, trash, sizeof(trash)) != BERTH_OK) {
        return BERTH_ETOOBIG;
    }
    struct blob_removal mine = *out;
    enum berth_err rc = rand_bytes(mine.id, sizeof(mine.id));
    if (rc != BERTH_OK) {
        return rc;
    }
    mine.id[0] |= 1; /* never {0, 0} */
    char id[33];
    removal_text(&mine, id);
    rc = copy_object(s, key, trash, id);
    if (rc == BERTH_ENOTFOUND) {
        return BERTH_OK; /* nothing to move */
    }
    if (rc == BERTH_OK) {
        rc = delete_object(s, key);
    }
    if (rc != BERTH_OK) {
        return rc;
    }
    drop_cache(s, d);
    *out = mine;
    return BERTH_OK;
}

static enum berth_err s3_removal_finish(struct blob_store *bs, const struct blob_removal *r)
{
    struct s3_store *s = s3_of(bs);
    if (r->id[0] == 0 && r->id[1] == 0) {
        return BERTH_ENOTFOUND;
    }
    char trash[S3_KEY_MAX], id[33];
    if (trash_key(s, &r->d, trash, sizeof(trash)) != BERTH_OK) {
        return BERTH_ENOTFOUND;
    }
    removal_text(r, id);
    struct s3_resp h;
    enum berth_err rc = head_object(s, trash, &h);
    bool same = rc == BERTH_OK && strcmp(h.removal, id) == 0;
    resp_fini(&h);
    if (rc != BERTH_OK) {
        return rc;
    }
    if (!same) {
        return BERTH_ENOTFOUND;
    }
    return delete_object(s, trash);
}

/* ms since the epoch of an ISO 8601 UTC time ("2026-12-06T10:20:00.000Z"). */
static int64_t iso_ms(const char *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    int ms = 0;
    if (sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d.%3d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &ms) < 6) {
        return 0;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* Call fn for every object under prefix (key relative to the store's
 * prefix, size, mtime). */
typedef enum berth_err (*list_fn)(struct s3_store *s, void *arg, const char *rel, uint64_t size,
                                  int64_t mtime_ms);

static enum berth_err list_objects(struct s3_store *s, const char *under, list_fn fn, void *arg)
{
    char token[1024] = "";
    struct buf xml;
    buf_init(&xml, S3_XML_MAX);
    enum berth_err rc = BERTH_OK;
    char enc_prefix[1024];
    char full[600];
    snprintf(full, sizeof(full), "%s%s", s->prefix, under);
    encode_value(full, enc_prefix, sizeof(enc_prefix));
    for (;;) {
        char query[3200], enc_token[2048];
        encode_value(token, enc_token, sizeof(enc_token));
        if (token[0] != '\0') {
            snprintf(query, sizeof(query), "continuation-token=%s&list-type=2&prefix=%s", enc_token,
                     enc_prefix);
        } else {
            snprintf(query, sizeof(query), "list-type=2&prefix=%s", enc_prefix);
        }
        buf_reset(&xml);
        struct s3_req req = {
            .method = "GET", .key = NULL, .query = query, .out_fd = -1, .out = &xml};
        struct s3_resp r;
        rc = s3_do(s, &req, &r);
        if (rc == BERTH_OK && r.status != 200) {
            rc = s3_fail(&req, &r);
        }
        resp_fini(&r);
        if (rc != BERTH_OK) {
            break;
        }
        const char *at = buf_cstr(&xml);
        const char *c;
        while (rc == BERTH_OK && (c = strstr(at, "<Contents>")) != NULL) {
            const char *end = strstr(c, "</Contents>");
            if (end == NULL) {
                break;
            }
            char one[4096];
            size_t n = (size_t)(end - c);
            if (n >= sizeof(one)) {
                at = end + 1;
                continue;
            }
            memcpy(one, c, n);
            one[n] = '\0';
            char key[S3_KEY_MAX], size_text[32], mod[64] = "";
            const char *p = one;
            uint64_t size = 0;
            if (xml_next(&p, "Key", key, sizeof(key))) {
                p = one;
                if (xml_next(&p, "Size", size_text, sizeof(size_text))) {
                    str_parse_u64(size_text, UINT64_MAX, &size);
                }
                p = one;
                xml_next(&p, "LastModified", mod, sizeof(mod));
                size_t plen = strlen(s->prefix);
                if (strncmp(key, s->prefix, plen) == 0) {
                    rc = fn(s, arg, key + plen, size, iso_ms(mod));
                }
            }
            at = end + 1;
        }
        char truncated[16] = "";
        const char *p = buf_cstr(&xml);
        xml_next(&p, "IsTruncated", truncated, sizeof(truncated));
        p = buf_cstr(&xml);
        if (rc != BERTH_OK || strcmp(truncated, "true") != 0 ||
            !xml_next(&p, "NextContinuationToken", token, sizeof(token))) {
            break;
        }
    }
    buf_fini(&xml);
    return rc;
}

struct recover_ctx {
    blob_wanted_fn wanted;
    void *arg;
    int64_t *restored;
    int64_t *deleted;
};

static enum berth_err recover_one(struct s3_store *s, void *arg, const char *rel, uint64_t size,
                                  int64_t mtime)
{
    struct recover_ctx *rc_ = arg;
    (void)size;
    (void)mtime;
    const char *name = rel + strlen("trash/");
    const char *dash = strchr(name, '-');
    struct digest d;
    char text[DIGEST_STR_MAX], trash[S3_KEY_MAX], key[S3_KEY_MAX];
    snprintf(trash, sizeof(trash), "%s%s", s->prefix, rel);
    bool parsed = dash != NULL && (size_t)(dash - name) < 16 &&
                  snprintf(text, sizeof(text), "%.*s:%s", (int)(dash - name), name, dash + 1) > 0 &&
                  digest_parse(text, &d) == BERTH_OK &&
                  blob_key(s, &d, key, sizeof(key)) == BERTH_OK;
    bool live = false;
    if (parsed) {
        struct s3_resp h;
        enum berth_err rc = head_object(s, key, &h);
        resp_fini(&h);
        if (rc != BERTH_OK && rc != BERTH_ENOTFOUND) {
            return rc;
        }
        live = rc == BERTH_OK;
    }
    if (parsed && !live && rc_->wanted(rc_->arg, &d)) {
        /* The removal never committed: put the blob back. */
        enum berth_err rc = copy_object(s, trash, key, NULL);
        if (rc == BERTH_OK) {
            rc = delete_object(s, trash);
        }
        if (rc != BERTH_OK) {
            return rc;
        }
        (*rc_->restored)++;
        log_warn("event=trash_restored digest=%s", d.str);
        return BERTH_OK;
    }
    enum berth_err rc = delete_object(s, trash);
    if (rc == BERTH_OK) {
        (*rc_->deleted)++;
    }
    return rc;
}

static enum berth_err s3_recover(struct blob_store *bs, blob_wanted_fn wanted, void *arg,
                                 int64_t *restored, int64_t *deleted)
{
    struct recover_ctx c = {wanted, arg, restored, deleted};
    return list_objects(s3_of(bs), "trash/", recover_one, &c);
}

struct walk_ctx {
    blob_walk_fn fn;
    void *arg;
};

static enum berth_err walk_one(struct s3_store *s, void *arg, const char *rel, uint64_t size,
                               int64_t mtime)
{
    struct walk_ctx *w = arg;
    (void)s;
    /* blobs/<alg>/<xx>/<hex> */
    const char *alg = rel + strlen("blobs/");
    const char *slash = strchr(alg, '/');
    if (slash == NULL || (size_t)(slash - alg) >= 16 || strlen(slash) < 4 || slash[3] != '/') {
        return BERTH_OK;
    }
    const char *hex = slash + 4;
    char text[DIGEST_STR_MAX + 8];
    struct digest d;
    int n = snprintf(text, sizeof(text), "%.*s:%s", (int)(slash - alg), alg, hex);
    if (n < 0 || (size_t)n >= sizeof(text) || digest_parse(text, &d) != BERTH_OK ||
        strncmp(slash + 1, hex, 2) != 0) {
        return BERTH_OK; /* not a blob: left alone */
    }
    return w->fn(w->arg, &d, size, mtime);
}

static enum berth_err s3_walk(struct blob_store *bs, blob_walk_fn fn, void *arg)
{
    struct walk_ctx w = {fn, arg};
    return list_objects(s3_of(bs), "blobs/", walk_one, &w);
}

static enum berth_err s3_delete(struct blob_store *bs, const struct digest *d)
{
    struct s3_store *s = s3_of(bs);
    char key[S3_KEY_MAX];
    enum berth_err rc = blob_key(s, d, key, sizeof(key));
    if (rc != BERTH_OK) {
        return rc;
    }
    struct s3_resp h;
    rc = head_object(s, key, &h);
    resp_fini(&h);
    if (rc == BERTH_OK) {
        rc = delete_object(s, key);
    }
    if (rc == BERTH_OK) {
        drop_cache(s, d);
    }
    return rc;
}

static const struct blob_backend s3_backend = {
    .name = "s3",
    .close = s3_close,
    .open = s3_open,
    .stat = s3_stat,
    .local_path = s3_local_path,
    .stage_create = s3_stage_create,
    .stage_open = s3_stage_open,
    .stage_write = s3_stage_write,
    .stage_read = s3_stage_read,
    .stage_truncate = s3_stage_truncate,
    .stage_hash = s3_stage_hash,
    .stage_sync = s3_stage_sync,
    .stage_close = s3_stage_close,
    .stage_stat = s3_stage_stat,
    .stage_remove = s3_stage_remove,
    .stage_publish = s3_stage_publish,
    .stage_list = s3_stage_list,
    .remove = s3_remove,
    .removal_finish = s3_removal_finish,
    .recover = s3_recover,
    .walk = s3_walk,
    .delete = s3_delete,
};
