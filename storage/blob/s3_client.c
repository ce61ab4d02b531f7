/*
 * The S3 backend's transport: one request to the bucket over libcurl,
 * signed with SigV4 (storage/spec/sigv4.h, the code the ECR verifier
 * uses), path-style or virtual-hosted, with the real payload SHA-256.
 *
 * Thread-safe: every request has its own curl handle.
 */
#include "s3_int.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/str.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

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
enum berth_err s3_encode_key(struct buf *out, const char *key)
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
void s3_encode_value(const char *v, char *out, size_t cap)
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
enum berth_err s3_do(struct s3_store *s, const struct s3_req *req, struct s3_resp *resp)
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
        rc = s3_encode_key(&path, req->key);
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

void s3_resp_fini(struct s3_resp *r)
{
    buf_fini(&r->err);
}

/* Map an answer that is not what was wanted to an error, logging it. */
enum berth_err s3_fail(const struct s3_req *req, const struct s3_resp *r)
{
    if (r->status == 404) {
        return BERTH_ENOTFOUND;
    }
    log_error("event=s3_error op=%s key=%s status=%ld body=\"%.300s\"", req->method,
              req->key != NULL ? req->key : "", r->status, buf_cstr(&r->err));
    return BERTH_EIO;
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
