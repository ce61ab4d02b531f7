/*
 * The S3 backend's object and bucket operations, each one request of
 * s3_client.c judged by its status (and, for the operations that answer
 * 200 with an <Error> body, by the body): HEAD, GET, PUT, server-side
 * copy, DELETE, the multipart upload primitives, ListObjectsV2 and
 * ListMultipartUploads.
 */
#define _GNU_SOURCE /* timegm */
#include "s3_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/base64.h"
#include "common/log.h"
#include "common/str.h"
#include "common/timeutil.h"
#include "storage/spec/digest.h"

static bool xml_next(const char **from, const char *tag, char *out, size_t cap);

/* Tries of a request answered 200 with an <Error> that AWS says to retry,
 * and the wait before the first retry (doubled each time). */
#define S3_EMBEDDED_TRIES 4
#define S3_EMBEDDED_BACKOFF_MS 100

/*
 * CopyObject and CompleteMultipartUpload may answer 200 and then fail: the
 * body is an <Error> document instead of the result (AWS documents it; the
 * status was sent before the work was done). Judge such a body by its
 * code: nothing when the body is not an error (BERTH_OK); a retryable code
 * (*retry set: the store failing for now, as a 500 or 503 would say) or
 * an error of the request (BERTH_EIO). Logged either way.
 */
static enum berth_err embedded_error(const char *op, const char *key, const struct buf *body,
                                     bool *retry)
{
    *retry = false;
    const char *at = body != NULL ? buf_cstr(body) : NULL;
    if (at == NULL || strstr(at, "<Error>") == NULL) {
        return BERTH_OK;
    }
    char code[64] = "";
    at = strstr(at, "<Error>");
    (void)xml_next(&at, "Code", code, sizeof(code));
    /* what AWS answers with 500/503 and asks clients to retry */
    static const char *const retryable[] = {"InternalError", "SlowDown", "ServiceUnavailable",
                                            "RequestTimeout", "OperationAborted"};
    for (size_t i = 0; i < sizeof(retryable) / sizeof(retryable[0]); i++) {
        if (strcmp(code, retryable[i]) == 0) {
            *retry = true;
        }
    }
    log_error("event=s3_error op=%s key=%s status=200 code=%s retry=%s body=\"%.300s\"", op, key,
              code[0] != '\0' ? code : "-", *retry ? "yes" : "no", buf_cstr(body));
    return BERTH_EIO;
}

/*
 * Send req, whose answer is 200 with the result or with an <Error> in the
 * body (into req->out): a retryable <Error> (or a 5xx, 429) is retried (a
 * few times, with backoff) and is BERTH_EUNAVAILABLE (503: the store is at
 * fault) when it persists; another <Error> is BERTH_EIO, as the 4xx status
 * it stands for would be; another status as s3_fail says.
 */
static enum berth_err do_judged(struct s3_store *s, const struct s3_req *req, const char *op)
{
    enum berth_err rc = BERTH_OK;
    int64_t wait_ms = S3_EMBEDDED_BACKOFF_MS;
    for (int attempt = 1;; attempt++) {
        buf_reset(req->out);
        struct s3_resp r;
        rc = s3_do(s, req, &r);
        bool retry = false;
        if (rc == BERTH_OK && r.status != 200) {
            /* AWS asks for retries of these after a 500 too */
            rc = s3_fail(req, &r);
            retry = rc == BERTH_EUNAVAILABLE;
        } else if (rc == BERTH_OK) {
            rc = embedded_error(op, req->key, req->out, &retry);
        }
        s3_resp_fini(&r);
        if (!retry) {
            return rc;
        }
        if (attempt == S3_EMBEDDED_TRIES) {
            return BERTH_EUNAVAILABLE;
        }
        time_sleep_ms(wait_ms);
        wait_ms *= 2;
    }
}

enum berth_err s3_blob_key(const struct s3_store *s, const struct digest *d, char *out, size_t cap)
{
    const char *hex = digest_hex(d);
    int n = snprintf(out, cap, "%sblobs/%s/%.2s/%s", s->prefix, digest_alg_name(d->alg), hex, hex);
    return (n < 0 || (size_t)n >= cap) ? BERTH_ETOOBIG : BERTH_OK;
}

/* A write of a blob object carries the store's storage class (the
 * archive tier's, storage.archive.s3_storage_class). */
static void add_storage_class(const struct s3_store *s, struct s3_req *req, const char *key)
{
    size_t n = strlen(s->prefix);
    if (s->storage_class[0] != '\0' && strncmp(key, s->prefix, n) == 0 &&
        strncmp(key + n, "blobs/", 6) == 0) {
        req->headers[req->header_count++] =
            (struct s3_header){"x-amz-storage-class", s->storage_class};
    }
}

enum berth_err s3_head_object(struct s3_store *s, const char *key, struct s3_resp *out)
{
    struct s3_req req = {.method = "HEAD", .key = key, .out_fd = -1};
    enum berth_err rc = s3_do(s, &req, out);
    if (rc == BERTH_OK && out->status != 200) {
        rc = s3_fail(&req, out);
    }
    return rc;
}

enum berth_err s3_delete_object(struct s3_store *s, const char *key)
{
    struct s3_req req = {.method = "DELETE", .key = key, .out_fd = -1};
    struct s3_resp r;
    enum berth_err rc = s3_do(s, &req, &r);
    if (rc == BERTH_OK && r.status != 204 && r.status != 200 && r.status != 404) {
        rc = s3_fail(&req, &r);
    }
    s3_resp_fini(&r);
    return rc;
}

/* XML's five special characters and their entities: escaped in what berth
 * sends, unescaped in what S3 answers. */
static const struct {
    const char *ent;
    char c;
} xml_entities[] = {
    {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
#define XML_ENTITY_COUNT (sizeof(xml_entities) / sizeof(xml_entities[0]))

/* Append text to b with XML's five special characters escaped. */
static enum berth_err xml_escaped(struct buf *b, const char *text)
{
    enum berth_err rc = BERTH_OK;
    for (const char *p = text; *p != '\0' && rc == BERTH_OK; p++) {
        const char *ent = NULL;
        for (size_t i = 0; i < XML_ENTITY_COUNT && ent == NULL; i++) {
            ent = xml_entities[i].c == *p ? xml_entities[i].ent : NULL;
        }
        rc = ent != NULL ? buf_printf(b, "%s", ent) : buf_printf(b, "%c", *p);
    }
    return rc;
}

enum berth_err s3_delete_objects(struct s3_store *s, const char *const *keys, size_t n)
{
    if (n == 0 || n > S3_DELETE_MAX) {
        return n == 0 ? BERTH_OK : BERTH_EINVAL;
    }
    struct buf body;
    buf_init(&body, n * (S3_KEY_MAX * 6 + 32) + 128);
    enum berth_err rc =
        buf_printf(&body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Delete><Quiet>true</Quiet>");
    for (size_t i = 0; i < n && rc == BERTH_OK; i++) {
        rc = buf_printf(&body, "<Object><Key>");
        if (rc == BERTH_OK) {
            rc = xml_escaped(&body, keys[i]);
        }
        if (rc == BERTH_OK) {
            rc = buf_printf(&body, "</Key></Object>");
        }
    }
    if (rc == BERTH_OK) {
        rc = buf_printf(&body, "</Delete>");
    }
    uint8_t md5[16];
    char md5_b64[32];
    if (rc == BERTH_OK) {
        rc = digest_md5_raw(body.data, body.len, md5);
    }
    if (rc != BERTH_OK) {
        buf_fini(&body);
        return rc;
    }
    base64_encode(md5, sizeof(md5), md5_b64);
    struct buf xml;
    buf_init(&xml, S3_XML_MAX);
    struct s3_req req = {.method = "POST",
                         .key = NULL,
                         .query = "delete",
                         .headers = {{"Content-MD5", md5_b64}, {"Content-Type", "application/xml"}},
                         .header_count = 2,
                         .body = body.data,
                         .body_len = body.len,
                         .out_fd = -1,
                         .out = &xml};
    struct s3_resp r;
    rc = s3_do(s, &req, &r);
    if (rc == BERTH_OK && r.status != 200) {
        rc = s3_fail(&req, &r);
    }
    /* quiet: only the keys that could not be deleted are listed */
    const char *at = rc == BERTH_OK ? buf_cstr(&xml) : NULL;
    while (at != NULL && (at = strstr(at, "<Error>")) != NULL) {
        at += strlen("<Error>");
        const char *from = at;
        char key[S3_KEY_MAX] = "", code[64] = "";
        (void)xml_next(&from, "Key", key, sizeof(key));
        from = at;
        (void)xml_next(&from, "Code", code, sizeof(code));
        log_warn("event=s3_delete_failed key=%s code=%s", key, code);
        rc = BERTH_EIO;
    }
    s3_resp_fini(&r);
    buf_fini(&xml);
    buf_fini(&body);
    return rc;
}

enum berth_err s3_put_object(struct s3_store *s, const char *key, const void *p, size_t n)
{
    struct s3_req req = {.method = "PUT", .key = key, .body = p, .body_len = n, .out_fd = -1};
    add_storage_class(s, &req, key);
    struct s3_resp r;
    enum berth_err rc = s3_do(s, &req, &r);
    if (rc == BERTH_OK && r.status != 200) {
        rc = s3_fail(&req, &r);
    }
    s3_resp_fini(&r);
    return rc;
}

/* Server-side copy from one key of the bucket to another, setting the
 * removal id metadata when removal is not NULL. */
enum berth_err s3_copy_object(struct s3_store *s, const char *from, const char *to,
                              const char *removal)
{
    struct buf src;
    buf_init(&src, S3_URL_MAX);
    enum berth_err rc = buf_printf(&src, "/%s/", s->bucket);
    if (rc == BERTH_OK) {
        rc = s3_encode_key(&src, from);
    }
    if (rc != BERTH_OK) {
        buf_fini(&src);
        return rc;
    }
    struct buf body;
    buf_init(&body, S3_ERRBODY_MAX);
    struct s3_req req = {.method = "PUT", .key = to, .out_fd = -1, .out = &body};
    req.headers[req.header_count++] = (struct s3_header){"x-amz-copy-source", buf_cstr(&src)};
    add_storage_class(s, &req, to);
    if (removal != NULL) {
        req.headers[req.header_count++] = (struct s3_header){"x-amz-metadata-directive", "REPLACE"};
        req.headers[req.header_count++] = (struct s3_header){S3_META_REMOVAL, removal};
    }
    rc = do_judged(s, &req, "copy");
    buf_fini(&body);
    buf_fini(&src);
    return rc;
}

/* GET key into fd (from its current offset). */
enum berth_err s3_get_object(struct s3_store *s, const char *key, int fd)
{
    struct s3_req req = {.method = "GET", .key = key, .out_fd = fd};
    struct s3_resp r;
    enum berth_err rc = s3_do(s, &req, &r);
    if (rc == BERTH_OK && r.status != 200) {
        rc = s3_fail(&req, &r);
    }
    s3_resp_fini(&r);
    return rc;
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
        bool done = false;
        for (size_t i = 0; i < XML_ENTITY_COUNT && !done; i++) {
            size_t n = strlen(xml_entities[i].ent);
            if ((size_t)(b - p) >= n && strncmp(p, xml_entities[i].ent, n) == 0) {
                out[o++] = xml_entities[i].c;
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

enum berth_err s3_mpu_abort(struct s3_store *s, const char *key, const char *upload_id)
{
    char enc[512], query[600];
    s3_encode_value(upload_id, enc, sizeof(enc));
    snprintf(query, sizeof(query), "uploadId=%s", enc);
    struct s3_req req = {.method = "DELETE", .key = key, .query = query, .out_fd = -1};
    struct s3_resp r;
    enum berth_err rc = s3_do(s, &req, &r);
    if (rc == BERTH_OK && r.status != 204 && r.status != 200 && r.status != 404) {
        rc = s3_fail(&req, &r);
    }
    s3_resp_fini(&r);
    return rc;
}

enum berth_err s3_mpu_create(struct s3_store *s, const char *key, char *upload_id, size_t cap)
{
    struct buf xml;
    buf_init(&xml, S3_XML_MAX);
    struct s3_req req = {
        .method = "POST", .key = key, .query = "uploads", .out_fd = -1, .out = &xml};
    add_storage_class(s, &req, key);
    struct s3_resp r;
    enum berth_err rc = s3_do(s, &req, &r);
    const char *at = buf_cstr(&xml);
    if (rc == BERTH_OK &&
        (r.status != 200 || !xml_next(&at, "UploadId", upload_id, cap) || upload_id[0] == '\0')) {
        rc = r.status == 200 ? BERTH_EIO : s3_fail(&req, &r);
    }
    s3_resp_fini(&r);
    buf_fini(&xml);
    return rc;
}

enum berth_err s3_mpu_upload_part(struct s3_store *s, const char *key, const char *upload_id,
                                  int number, const void *p, size_t n, char etag[S3_ETAG_MAX])
{
    char enc_id[512], query[700];
    s3_encode_value(upload_id, enc_id, sizeof(enc_id));
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
    s3_resp_fini(&r);
    return rc;
}

enum berth_err s3_mpu_copy_part(struct s3_store *s, const char *key, const char *upload_id,
                                int number, const char *from, uint64_t first, uint64_t last,
                                char etag[S3_ETAG_MAX])
{
    struct buf src, body;
    buf_init(&src, S3_URL_MAX);
    buf_init(&body, S3_ERRBODY_MAX);
    enum berth_err rc = buf_printf(&src, "/%s/", s->bucket);
    if (rc == BERTH_OK) {
        rc = s3_encode_key(&src, from);
    }
    char enc_id[512], query[700], range[80];
    s3_encode_value(upload_id, enc_id, sizeof(enc_id));
    snprintf(query, sizeof(query), "partNumber=%d&uploadId=%s", number, enc_id);
    snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)first,
             (unsigned long long)last);
    if (rc == BERTH_OK) {
        struct s3_req req = {
            .method = "PUT", .key = key, .query = query, .out_fd = -1, .out = &body};
        req.headers[req.header_count++] = (struct s3_header){"x-amz-copy-source", buf_cstr(&src)};
        req.headers[req.header_count++] = (struct s3_header){"x-amz-copy-source-range", range};
        rc = do_judged(s, &req, "copy_part");
        const char *at = buf_cstr(&body);
        if (rc == BERTH_OK && !xml_next(&at, "ETag", etag, S3_ETAG_MAX)) {
            log_error("event=s3_error op=copy_part from=%s to=%s body=\"%.300s\"", from, key,
                      buf_cstr(&body));
            rc = BERTH_EIO;
        }
    }
    buf_fini(&src);
    buf_fini(&body);
    return rc;
}

enum berth_err s3_mpu_complete(struct s3_store *s, const char *key, const struct s3_mpu *m)
{
    struct buf done, xml;
    buf_init(&done, S3_XML_MAX);
    buf_init(&xml, S3_XML_MAX);
    enum berth_err rc = buf_puts(&done, "<CompleteMultipartUpload>");
    for (int i = 0; i < m->parts && rc == BERTH_OK; i++) {
        rc = buf_printf(&done, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>",
                        m->numbers != NULL ? m->numbers[i] : i + 1, m->etags[i]);
    }
    if (rc == BERTH_OK) {
        rc = buf_puts(&done, "</CompleteMultipartUpload>");
    }
    char enc_id[512], query[600];
    s3_encode_value(m->upload_id, enc_id, sizeof(enc_id));
    snprintf(query, sizeof(query), "uploadId=%s", enc_id);
    if (rc == BERTH_OK) {
        struct s3_req req = {.method = "POST",
                             .key = key,
                             .query = query,
                             .body = done.data,
                             .body_len = done.len,
                             .out_fd = -1,
                             .out = &xml};
        rc = do_judged(s, &req, "complete_multipart");
    }
    buf_fini(&done);
    buf_fini(&xml);
    return rc;
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

/* GETs one page of a bucket listing (query says which) into xml. */
static enum berth_err list_page(struct s3_store *s, const char *query, struct buf *xml)
{
    buf_reset(xml);
    struct s3_req req = {.method = "GET", .key = NULL, .query = query, .out_fd = -1, .out = xml};
    struct s3_resp r;
    enum berth_err rc = s3_do(s, &req, &r);
    if (rc == BERTH_OK && r.status != 200) {
        rc = s3_fail(&req, &r);
    }
    s3_resp_fini(&r);
    return rc;
}

/* One listing: the caller's callback and argument. */
struct lister {
    struct s3_store *s;
    s3_list_fn objects;
    s3_upload_fn uploads;
    void *arg;
};

typedef enum berth_err (*entry_fn)(const struct lister *l, const char *one);

/* Calls entry with the text of each <tag> element of a listing page, in
 * order, until one fails; an element of 4 KiB or more (no key is that long)
 * is passed over. */
static enum berth_err each_entry(const struct lister *l, const struct buf *xml, const char *tag,
                                 entry_fn entry)
{
    char open[32], close[32];
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    enum berth_err rc = BERTH_OK;
    const char *at = buf_cstr(xml);
    const char *c;
    while (rc == BERTH_OK && (c = strstr(at, open)) != NULL) {
        const char *end = strstr(c, close);
        if (end == NULL) {
            break;
        }
        char one[4096];
        size_t n = (size_t)(end - c);
        if (n < sizeof(one)) {
            memcpy(one, c, n);
            one[n] = '\0';
            rc = entry(l, one);
        }
        at = end + 1;
    }
    return rc;
}

/* The text of the first <name> element of a page ("" if none). */
static void page_value(const struct buf *xml, const char *name, char *out, size_t cap)
{
    const char *p = buf_cstr(xml);
    out[0] = '\0';
    xml_next(&p, name, out, cap);
}

/* One <Contents> of a ListObjectsV2 page: the callback with its key
 * (relative to the store's prefix; others skipped), size and time. */
static enum berth_err object_entry(const struct lister *l, const char *one)
{
    char key[S3_KEY_MAX], size_text[32] = "", mod[64] = "";
    const char *p = one;
    if (!xml_next(&p, "Key", key, sizeof(key))) {
        return BERTH_OK;
    }
    p = one;
    uint64_t size = 0;
    if (xml_next(&p, "Size", size_text, sizeof(size_text))) {
        str_parse_u64(size_text, UINT64_MAX, &size);
    }
    p = one;
    xml_next(&p, "LastModified", mod, sizeof(mod));
    size_t plen = strlen(l->s->prefix);
    if (strncmp(key, l->s->prefix, plen) != 0) {
        return BERTH_OK;
    }
    return l->objects(l->s, l->arg, key + plen, size, iso_ms(mod));
}

enum berth_err s3_list_objects(struct s3_store *s, const char *under, s3_list_fn fn, void *arg)
{
    const struct lister l = {.s = s, .objects = fn, .arg = arg};
    char token[1024] = "";
    struct buf xml;
    buf_init(&xml, S3_XML_MAX);
    char enc_prefix[1024], full[600];
    snprintf(full, sizeof(full), "%s%s", s->prefix, under);
    s3_encode_value(full, enc_prefix, sizeof(enc_prefix));
    enum berth_err rc;
    for (;;) {
        char query[3200], enc_token[2048];
        s3_encode_value(token, enc_token, sizeof(enc_token));
        if (token[0] != '\0') {
            snprintf(query, sizeof(query), "continuation-token=%s&list-type=2&prefix=%s", enc_token,
                     enc_prefix);
        } else {
            snprintf(query, sizeof(query), "list-type=2&prefix=%s", enc_prefix);
        }
        rc = list_page(s, query, &xml);
        if (rc == BERTH_OK) {
            rc = each_entry(&l, &xml, "Contents", object_entry);
        }
        char truncated[16];
        page_value(&xml, "IsTruncated", truncated, sizeof(truncated));
        if (rc != BERTH_OK || strcmp(truncated, "true") != 0) {
            break;
        }
        page_value(&xml, "NextContinuationToken", token, sizeof(token));
        if (token[0] == '\0') {
            break;
        }
    }
    buf_fini(&xml);
    return rc;
}

/* One <Upload> of a ListMultipartUploads page: the callback with its key
 * (relative to the store's prefix; others skipped), id and initiation time. */
static enum berth_err upload_entry(const struct lister *l, const char *one)
{
    char key[S3_KEY_MAX], id[256], initiated[64] = "";
    const char *p = one;
    if (!xml_next(&p, "Key", key, sizeof(key))) {
        return BERTH_OK;
    }
    p = one;
    if (!xml_next(&p, "UploadId", id, sizeof(id)) || id[0] == '\0') {
        return BERTH_OK;
    }
    p = one;
    xml_next(&p, "Initiated", initiated, sizeof(initiated));
    size_t plen = strlen(l->s->prefix);
    if (strncmp(key, l->s->prefix, plen) != 0) {
        return BERTH_OK;
    }
    return l->uploads(l->s, l->arg, key + plen, id, iso_ms(initiated));
}

enum berth_err s3_list_uploads(struct s3_store *s, const char *under, s3_upload_fn fn, void *arg)
{
    const struct lister l = {.s = s, .uploads = fn, .arg = arg};
    char key_marker[S3_KEY_MAX] = "", id_marker[256] = "";
    struct buf xml;
    buf_init(&xml, S3_XML_MAX);
    char enc_prefix[1024], full[600];
    snprintf(full, sizeof(full), "%s%s", s->prefix, under);
    s3_encode_value(full, enc_prefix, sizeof(enc_prefix));
    enum berth_err rc;
    for (;;) {
        char query[4096], enc_key[1200], enc_id[600];
        if (key_marker[0] != '\0') {
            s3_encode_value(key_marker, enc_key, sizeof(enc_key));
            s3_encode_value(id_marker, enc_id, sizeof(enc_id));
            snprintf(query, sizeof(query), "key-marker=%s&prefix=%s&upload-id-marker=%s&uploads",
                     enc_key, enc_prefix, enc_id);
        } else {
            snprintf(query, sizeof(query), "prefix=%s&uploads", enc_prefix);
        }
        rc = list_page(s, query, &xml);
        if (rc == BERTH_OK) {
            rc = each_entry(&l, &xml, "Upload", upload_entry);
        }
        char truncated[16], next_key[S3_KEY_MAX], next_id[256];
        page_value(&xml, "IsTruncated", truncated, sizeof(truncated));
        page_value(&xml, "NextKeyMarker", next_key, sizeof(next_key));
        page_value(&xml, "NextUploadIdMarker", next_id, sizeof(next_id));
        /* a page that names no next position, or the same one again, ends
         * the listing (Swift names none after a page of one upload) */
        if (rc != BERTH_OK || strcmp(truncated, "true") != 0 || next_key[0] == '\0' ||
            (strcmp(next_key, key_marker) == 0 && strcmp(next_id, id_marker) == 0)) {
            break;
        }
        memcpy(key_marker, next_key, sizeof(key_marker));
        memcpy(id_marker, next_id, sizeof(id_marker));
    }
    buf_fini(&xml);
    return rc;
}

#define S3_STORE_ID_KEY "berth-store-id"

enum berth_err s3_store_id_get(struct blob_store *bs, char *out)
{
    struct s3_store *s = s3_of(bs);
    char key[S3_KEY_MAX];
    snprintf(key, sizeof(key), "%s%s", s->prefix, S3_STORE_ID_KEY);
    struct buf body;
    buf_init(&body, BLOB_STORE_ID_MAX);
    struct s3_req req = {.method = "GET", .key = key, .out_fd = -1, .out = &body};
    struct s3_resp r;
    enum berth_err rc = s3_do(s, &req, &r);
    out[0] = '\0';
    if (rc == BERTH_OK && r.status == 200) {
        const char *text = buf_cstr(&body);
        size_t n = strspn(text, "0123456789abcdef");
        if (n == 0 || n >= BLOB_STORE_ID_MAX) {
            log_error("event=s3_error op=store_id key=%s msg=\"not an identity\"", key);
            rc = BERTH_EIO;
        } else {
            memcpy(out, text, n);
            out[n] = '\0';
        }
    } else if (rc == BERTH_OK && r.status != 404) {
        rc = s3_fail(&req, &r);
    }
    s3_resp_fini(&r);
    buf_fini(&body);
    return rc;
}

enum berth_err s3_store_id_put(struct blob_store *bs, const char *id)
{
    struct s3_store *s = s3_of(bs);
    char key[S3_KEY_MAX], text[BLOB_STORE_ID_MAX + 1];
    snprintf(key, sizeof(key), "%s%s", s->prefix, S3_STORE_ID_KEY);
    int n = snprintf(text, sizeof(text), "%s\n", id);
    return s3_put_object(s, key, text, (size_t)n);
}

enum berth_err s3_head_bucket(struct s3_store *s, long *status)
{
    struct s3_req req = {.method = "HEAD", .key = NULL, .out_fd = -1};
    struct s3_resp r;
    enum berth_err rc = s3_do(s, &req, &r);
    *status = rc == BERTH_OK ? r.status : 0;
    if (rc == BERTH_OK && r.status != 200) {
        log_error("event=s3_error op=head_bucket bucket=%s status=%ld", s->bucket, r.status);
        rc = s3_status_err(r.status);
    }
    s3_resp_fini(&r);
    return rc;
}
