/*
 * SigV4 parsing, canonicalisation, verification and signing (see
 * storage/spec/sigv4.h): the ECR JSON API's verifier and the S3 blob
 * backend's signer. Canonicalisation follows botocore's SigV4Auth for
 * non-S3 services: dot segments and empty path segments removed, the
 * received (already encoded) path encoded once more, sorted query, trimmed
 * header values; for S3 (S3SigV4Auth) the path is taken as sent. Pure
 * functions; thread-safe.
 */
#include "storage/spec/sigv4.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "storage/spec/digest.h"
#include "common/str.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define TERMINATOR "aws4_request"

#define MSG_MISSING "Missing Authentication Token"
#define MSG_MISMATCH                                                                               \
    "The request signature we calculated does not match the signature you provided. Check your "   \
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
#define MSG_UNRECOGNIZED "The security token included in the request is invalid."
#define MSG_REQUIRES_CREDENTIAL "Authorization header requires 'Credential' parameter."
#define MSG_REQUIRES_SIGNATURE "Authorization header requires 'Signature' parameter."
#define MSG_REQUIRES_SIGNED_HEADERS "Authorization header requires 'SignedHeaders' parameter."
#define MSG_REQUIRES_DATE                                                                          \
    "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
#define MSG_HOST_NOT_SIGNED                                                                        \
    "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
#define MSG_MUST_BE_SIGNED "'%s' must be a 'SignedHeader' in the AWS Authorization."
#define MSG_CONTENT_SHA256_MISMATCH                                                                \
    "The provided 'x-amz-content-sha256' header does not match what was computed."

/* Headers a JSON-protocol request must sign when it carries them (as AWS
 * requires): the operation and how the body is read. Unsigned, a captured
 * request's X-Amz-Target could be swapped while its signature still holds.
 * The name as AWS prints it in the refusal. */
static const char *const required_signed[] = {"Content-Type", "X-Amz-Target"};

/* Headers botocore never signs (auth.py SIGNED_HEADERS_BLACKLIST). */
static const char *const unsigned_headers[] = {
    "authorization",
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
};

/* ---- small helpers ---- */

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool ieq(const char *a, const char *b)
{
    while (*a && *b) {
        if (lower(*a) != lower(*b)) {
            return false;
        }
        a++;
        b++;
    }
    return *a == *b;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A character allowed in an HTTP header name (RFC 9110 tchar). */
static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!is_hex(s[i])) {
            return false;
        }
    }
    return s[n] == '\0';
}

/* First header named name (case-insensitive) and how many there are. */
static const char *find_header(const struct sigv4_request *req, const char *name, size_t *count)
{
    const char *first = NULL;
    size_t n = 0;
    for (size_t i = 0; i < req->header_count; i++) {
        if (req->headers[i].name != NULL && ieq(req->headers[i].name, name)) {
            if (first == NULL) {
                first = req->headers[i].value != NULL ? req->headers[i].value : "";
            }
            n++;
        }
    }
    if (count != NULL) {
        *count = n;
    }
    return first;
}

static enum berth_err refuse(struct sigv4_refusal *r, enum sigv4_error e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum berth_err refuse(struct sigv4_refusal *r, enum sigv4_error e, const char *fmt, ...)
{
    va_list ap;
    r->error = e;
    va_start(ap, fmt);
    /* Echoed inputs are bounded with %.Ns, so the text always fits. */
    vsnprintf(r->message, sizeof(r->message), fmt, ap);
    va_end(ap);
    return BERTH_EDENIED;
}

const char *sigv4_error_name(enum sigv4_error e)
{
    switch (e) {
    case SIGV4_ERR_MISSING_TOKEN:
        return "MissingAuthenticationTokenException";
    case SIGV4_ERR_INCOMPLETE:
        return "IncompleteSignatureException";
    case SIGV4_ERR_INVALID_SIGNATURE:
        return "InvalidSignatureException";
    case SIGV4_ERR_UNRECOGNIZED_CLIENT:
        return "UnrecognizedClientException";
    case SIGV4_ERR_NONE:
        break;
    }
    return "";
}

void sigv4_refuse(struct sigv4_refusal *r, enum sigv4_error e)
{
    switch (e) {
    case SIGV4_ERR_MISSING_TOKEN:
        refuse(r, e, "%s", MSG_MISSING);
        return;
    case SIGV4_ERR_INCOMPLETE:
        refuse(r, e, "%s %s %s", MSG_REQUIRES_CREDENTIAL, MSG_REQUIRES_SIGNATURE,
               MSG_REQUIRES_SIGNED_HEADERS);
        return;
    case SIGV4_ERR_INVALID_SIGNATURE:
        refuse(r, e, "%s", MSG_MISMATCH);
        return;
    case SIGV4_ERR_UNRECOGNIZED_CLIENT:
        refuse(r, e, "%s", MSG_UNRECOGNIZED);
        return;
    case SIGV4_ERR_NONE:
        break;
    }
    r->error = SIGV4_ERR_NONE;
    r->message[0] = '\0';
}

/* ---- time ---- */

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    /* Howard Hinnant's algorithm: days since 1970-01-01, proleptic Gregorian. */
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int64_t y, int64_t m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return (m == 2 && leap) ? 29 : dim[m - 1];
}

static bool digits(const char *s, size_t n, int64_t *out)
{
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static bool civil_to_time(int64_t y, int64_t mo, int64_t d, int64_t h, int64_t mi, int64_t s,
                          int64_t *out)
{
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
        mi > 59 || s > 59) {
        return false;
    }
    *out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
    return true;
}

/* "YYYYMMDDTHHMMSSZ" -> Unix seconds. */
static bool parse_amz_date(const char *s, int64_t *out)
{
    int64_t y, mo, d, h, mi, sec;
    if (strlen(s) != SIGV4_AMZ_DATE_LEN || s[8] != 'T' || s[15] != 'Z') {
        return false;
    }
    if (!digits(s, 4, &y) || !digits(s + 4, 2, &mo) || !digits(s + 6, 2, &d) ||
        !digits(s + 9, 2, &h) || !digits(s + 11, 2, &mi) || !digits(s + 13, 2, &sec)) {
        return false;
    }
    return civil_to_time(y, mo, d, h, mi, sec, out);
}

/* RFC 9110 IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT" -> Unix seconds. */
static bool parse_http_date(const char *s, int64_t *out)
{
    static const char *const days = "Mon,Tue,Wed,Thu,Fri,Sat,Sun,";
    static const char *const months = "JanFebMarAprMayJunJulAugSepOctNovDec";
    int64_t y, d, h, mi, sec;
    if (strlen(s) != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
        s[16] != ' ' || s[19] != ':' || s[22] != ':' || strcmp(s + 25, " GMT") != 0) {
        return false;
    }
    bool day_ok = false;
    for (size_t i = 0; i < 7; i++) {
        if (memcmp(days + 4 * i, s, 4) == 0) {
            day_ok = true;
        }
    }
    int64_t mo = 0;
    for (int64_t i = 0; i < 12; i++) {
        if (memcmp(months + 3 * i, s + 8, 3) == 0) {
            mo = i + 1;
        }
    }
    if (!day_ok || mo == 0 || !digits(s + 5, 2, &d) || !digits(s + 12, 4, &y) ||
        !digits(s + 17, 2, &h) || !digits(s + 20, 2, &mi) || !digits(s + 23, 2, &sec)) {
        return false;
    }
    return civil_to_time(y, mo, d, h, mi, sec, out);
}

static void put_digits(char *out, int64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

void sigv4_format_amz_date(int64_t t, char out[SIGV4_AMZ_DATE_LEN + 1])
{
    /* Clamp to what parse_amz_date accepts so the output is always 16
     * characters. */
    const int64_t max = days_from_civil(10000, 1, 1) * 86400 - 1;
    if (t < 0) {
        t = 0;
    } else if (t > max) {
        t = max;
    }
    /* Howard Hinnant's civil_from_days. */
    int64_t z = t / 86400 + 719468, secs = t % 86400;
    int64_t era = z / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    int64_t y = yoe + era * 400 + (m <= 2);
    put_digits(out, y, 4);
    put_digits(out + 4, m, 2);
    put_digits(out + 6, d, 2);
    out[8] = 'T';
    put_digits(out + 9, secs / 3600, 2);
    put_digits(out + 11, secs / 60 % 60, 2);
    put_digits(out + 13, secs % 60, 2);
    out[15] = 'Z';
    out[16] = '\0';
}

/* ---- canonical request ---- */

/* Percent-encode n bytes: unreserved bytes (and '/' when keep_slash) stay,
 * everything else becomes %XX with upper-case hex. */
static enum berth_err encode(struct buf *out, const char *s, size_t n, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    enum berth_err rc = BERTH_OK;
    for (size_t i = 0; i < n && rc == BERTH_OK; i++) {
        unsigned char c = (unsigned char)s[i];
        if (str_url_unreserved(c) || (keep_slash && c == '/')) {
            rc = buf_append(out, &s[i], 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            rc = buf_append(out, e, 3);
        }
    }
    return rc;
}

/* The canonical URI: remove "." / ".." and empty segments (botocore's
 * remove_dot_segments), then encode the still-encoded path once more. */
static enum berth_err canonical_uri(struct buf *out, const char *path)
{
    if (path == NULL || path[0] == '\0') {
        return buf_puts(out, "/");
    }
    size_t len = strlen(path);
    if (len > SIGV4_PATH_MAX) {
        return BERTH_ETOOBIG;
    }
    char *norm = malloc(len + 2);
    if (norm == NULL) {
        return BERTH_ENOMEM;
    }
    size_t n = 0; /* normalised segments joined by '/', without leading '/' */
    const char *p = path;
    while (*p) {
        const char *end = strchr(p, '/');
        size_t seg = end ? (size_t)(end - p) : strlen(p);
        if (seg == 0 || (seg == 1 && p[0] == '.')) {
            /* skip */
        } else if (seg == 2 && p[0] == '.' && p[1] == '.') {
            while (n > 0 && norm[n - 1] != '/') {
                n--;
            }
            if (n > 0) {
                n--; /* the '/' before the popped segment */
            }
        } else {
            if (n > 0) {
                norm[n++] = '/';
            }
            memcpy(norm + n, p, seg);
            n += seg;
        }
        p += seg;
        if (*p == '/') {
            p++;
        }
    }
    enum berth_err rc = BERTH_OK;
    if (path[0] == '/') {
        rc = buf_puts(out, "/");
    }
    if (rc == BERTH_OK) {
        rc = encode(out, norm, n, true);
    }
    if (rc == BERTH_OK && n > 0 && path[len - 1] == '/') {
        rc = buf_puts(out, "/");
    }
    free(norm);
    return rc;
}

/* S3's canonical URI: the path as it goes on the request line (encoded
 * once by the caller), neither normalised nor encoded again. */
static enum berth_err s3_canonical_uri(struct buf *out, const char *path)
{
    if (path == NULL || path[0] == '\0') {
        return buf_puts(out, "/");
    }
    if (strlen(path) > SIGV4_PATH_MAX) {
        return BERTH_ETOOBIG;
    }
    return buf_puts(out, path);
}

struct qparam {
    const char *key;
    const char *value;
};

static int qparam_cmp(const void *a, const void *b)
{
    const struct qparam *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c != 0 ? c : strcmp(x->value, y->value);
}

/* Decode %XX escapes of s[0..n) and re-encode strictly into dst, which has
 * room for 3n + 1 bytes. Returns the NUL-terminated result. */
static char *reencode(char *dst, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%' && i + 2 < n && is_hex(s[i + 1]) && is_hex(s[i + 2])) {
            c = (unsigned char)(str_hex_value(s[i + 1]) * 16 + str_hex_value(s[i + 2]));
            i += 2;
        }
        if (str_url_unreserved(c)) {
            dst[o++] = (char)c;
        } else {
            dst[o++] = '%';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        }
    }
    dst[o] = '\0';
    return dst;
}

/* The canonical query: parameters decoded, strictly re-encoded, sorted by
 * key then value, joined with '&'; "k" without '=' becomes "k=". */
static enum berth_err canonical_query(struct buf *out, const char *query)
{
    if (query == NULL || query[0] == '\0') {
        return BERTH_OK;
    }
    size_t len = strlen(query);
    if (len > SIGV4_QUERY_MAX) {
        return BERTH_ETOOBIG;
    }
    struct qparam params[SIGV4_QUERY_PARAMS_MAX];
    size_t count = 0;
    /* Each input byte becomes at most 3 output bytes, plus two NULs per
     * parameter. */
    char *scratch = malloc(3 * len + 2 * (len + 1) + 1);
    if (scratch == NULL) {
        return BERTH_ENOMEM;
    }
    char *w = scratch;
    enum berth_err rc = BERTH_OK;
    const char *p = query;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        if (n > 0) {
            if (count == SIGV4_QUERY_PARAMS_MAX) {
                rc = BERTH_ETOOBIG;
                goto out;
            }
            const char *eq = memchr(p, '=', n);
            size_t klen = eq ? (size_t)(eq - p) : n;
            params[count].key = reencode(w, p, klen);
            w += strlen(w) + 1;
            params[count].value = eq ? reencode(w, eq + 1, n - klen - 1) : reencode(w, "", 0);
            w += strlen(w) + 1;
            count++;
        }
        p += n;
        if (*p == '&') {
            p++;
        }
    }
    qsort(params, count, sizeof(params[0]), qparam_cmp);
    for (size_t i = 0; i < count && rc == BERTH_OK; i++) {
        rc = buf_printf(out, "%s%s=%s", i ? "&" : "", params[i].key, params[i].value);
    }
out:
    free(scratch);
    return rc;
}

/* Append value with leading/trailing whitespace removed and inner runs
 * collapsed to one space (botocore: ' '.join(value.split())). */
static enum berth_err append_trimmed(struct buf *out, const char *v)
{
    enum berth_err rc = BERTH_OK;
    bool pending_space = false, any = false;
    for (; *v && rc == BERTH_OK; v++) {
        if (is_space(*v)) {
            pending_space = any;
            continue;
        }
        if (pending_space) {
            rc = buf_append(out, " ", 1);
            pending_space = false;
        }
        if (rc == BERTH_OK) {
            rc = buf_append(out, v, 1);
        }
        any = true;
    }
    return rc;
}

/* "name:v1,v2\n" for one signed header name (values of repeated headers
 * joined with ',' in the order received; "name:\n" when absent). */
static enum berth_err canonical_header(struct buf *out, const struct sigv4_request *req,
                                       const char *name)
{
    enum berth_err rc = buf_printf(out, "%s:", name);
    bool first = true;
    for (size_t i = 0; i < req->header_count && rc == BERTH_OK; i++) {
        const struct sigv4_header *h = &req->headers[i];
        if (h->name == NULL || !ieq(h->name, name)) {
            continue;
        }
        if (!first) {
            rc = buf_append(out, ",", 1);
        }
        if (rc == BERTH_OK) {
            rc = append_trimmed(out, h->value != NULL ? h->value : "");
        }
        first = false;
    }
    if (rc == BERTH_OK) {
        rc = buf_append(out, "\n", 1);
    }
    return rc;
}

/* Build the canonical request into out. signed_headers is the sorted,
 * lower-case ';' list; payload_hash the last line. BERTH_ETOOBIG when the
 * request is over a limit, BERTH_ENOMEM. */
static enum berth_err canonical_request(struct buf *out, const struct sigv4_request *req,
                                        const char *signed_headers, const char *payload_hash,
                                        bool s3)
{
    enum berth_err rc = buf_printf(out, "%s\n", req->method != NULL ? req->method : "");
    if (rc == BERTH_OK) {
        rc = s3 ? s3_canonical_uri(out, req->path) : canonical_uri(out, req->path);
    }
    if (rc == BERTH_OK) {
        rc = buf_puts(out, "\n");
    }
    if (rc == BERTH_OK) {
        rc = canonical_query(out, req->query);
    }
    if (rc == BERTH_OK) {
        rc = buf_puts(out, "\n");
    }
    const char *p = signed_headers;
    while (rc == BERTH_OK && *p) {
        const char *semi = strchr(p, ';');
        size_t n = semi ? (size_t)(semi - p) : strlen(p);
        char name[SIGV4_SIGNED_HEADERS_MAX + 1];
        memcpy(name, p, n);
        name[n] = '\0';
        rc = canonical_header(out, req, name);
        p += n;
        if (*p == ';') {
            p++;
        }
    }
    if (rc == BERTH_OK) {
        rc = buf_printf(out, "\n%s\n%s", signed_headers, payload_hash);
    }
    return rc;
}

/* ---- signature ---- */

static enum berth_err hmac(const uint8_t key[32], const char *msg, uint8_t out[32])
{
    return digest_hmac_sha256(key, 32, msg, strlen(msg), out);
}

/* hex(HMAC(kSigning, StringToSign)) for a canonical request. BERTH_OK, or
 * BERTH_ENOMEM when a MAC or the canonical request's hash cannot be
 * computed. */
static enum berth_err signature_hex(const char *secret, size_t secret_len, const char *amz_date,
                                    const char *region, const char *service,
                                    const struct buf *canonical,
                                    char out[SIGV4_SIGNATURE_HEX_LEN + 1])
{
    uint8_t k[32], hash[32];
    char kdate_key[4 + SIGV4_SECRET_MAX];
    char date[9];
    memcpy(kdate_key, "AWS4", 4);
    memcpy(kdate_key + 4, secret, secret_len);
    memcpy(date, amz_date, 8);
    date[8] = '\0';
    enum berth_err rc = digest_hmac_sha256(kdate_key, 4 + secret_len, date, 8, k);
    if (rc == BERTH_OK) {
        rc = hmac(k, region, k);
    }
    if (rc == BERTH_OK) {
        rc = hmac(k, service, k);
    }
    if (rc == BERTH_OK) {
        rc = hmac(k, TERMINATOR, k);
    }

    char hash_hex[65] = "";
    if (rc == BERTH_OK) {
        rc =
            digest_sha256_raw(canonical->data != NULL ? canonical->data : "", canonical->len, hash);
    }
    if (rc == BERTH_OK) {
        str_hex_encode(hash, 32, hash_hex);
    }
    /* "AWS4-HMAC-SHA256\n" + date + "\n" + scope + "\n" + hash: bounded by
     * the parse limits, so a fixed buffer suffices. */
    char sts[32 + SIGV4_AMZ_DATE_LEN + 4 * (SIGV4_SCOPE_PART_MAX + 1) + 64 + 8];
    snprintf(sts, sizeof(sts), "%s\n%s\n%s/%s/%s/%s\n%s", SIGV4_ALGORITHM, amz_date, date, region,
             service, TERMINATOR, hash_hex);
    uint8_t sig[32];
    if (rc == BERTH_OK) {
        rc = hmac(k, sts, sig);
    }
    if (rc == BERTH_OK) {
        str_hex_encode(sig, 32, out);
    }
    /* The derived key is as good as the secret for a day: wipe it. */
    volatile uint8_t *vk = k;
    for (size_t i = 0; i < sizeof(k); i++) {
        vk[i] = 0;
    }
    volatile char *vs = kdate_key;
    for (size_t i = 0; i < sizeof(kdate_key); i++) {
        vs[i] = 0;
    }
    return rc;
}

/* The body's SHA-256 in hex. BERTH_OK, or BERTH_ENOMEM when it cannot be
 * computed (out is then unset). */
static enum berth_err body_hash_hex(const struct sigv4_request *req, char out[65])
{
    if (req->body_sha256 != NULL) {
        size_t i;
        for (i = 0; i < 64 && req->body_sha256[i]; i++) {
            out[i] = lower(req->body_sha256[i]);
        }
        out[i] = '\0';
        return BERTH_OK;
    }
    uint8_t h[32];
    enum berth_err rc = digest_sha256_raw(req->body != NULL ? req->body : "",
                                          req->body != NULL ? req->body_len : 0, h);
    if (rc == BERTH_OK) {
        str_hex_encode(h, 32, out);
    }
    return rc;
}

/* ---- parsing ---- */

struct name_ref {
    const char *p;
    size_t n;
};

static int name_ref_cmp(const void *a, const void *b)
{
    const struct name_ref *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->p, y->p, n);
    if (c != 0) {
        return c;
    }
    return x->n < y->n ? -1 : x->n > y->n;
}

/* Sort, lower-case and de-duplicate a list of names into out (cap bytes)
 * joined by ';'. Names must be non-empty tchar runs. false on a bad name,
 * too many names or no room. */
static bool normalise_names(struct name_ref *names, size_t count, char *out, size_t cap)
{
    qsort(names, count, sizeof(names[0]), name_ref_cmp);
    size_t o = 0;
    for (size_t i = 0; i < count; i++) {
        if (i > 0 && name_ref_cmp(&names[i - 1], &names[i]) == 0) {
            continue;
        }
        if (o + names[i].n + 2 > cap) {
            return false;
        }
        if (o > 0) {
            out[o++] = ';';
        }
        for (size_t k = 0; k < names[i].n; k++) {
            out[o++] = lower(names[i].p[k]);
        }
    }
    out[o] = '\0';
    return true;
}

/* Parse "a;b;c" into auth->signed_headers. */
static bool parse_signed_headers(const char *v, size_t n, struct sigv4_auth *auth)
{
    struct name_ref names[SIGV4_SIGNED_HEADER_COUNT_MAX];
    size_t count = 0;
    if (n == 0 || n > SIGV4_SIGNED_HEADERS_MAX) {
        return false;
    }
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        while (i < n && v[i] != ';') {
            if (!is_tchar(v[i])) {
                return false;
            }
            i++;
        }
        if (i == start || count == SIGV4_SIGNED_HEADER_COUNT_MAX) {
            return false;
        }
        names[count].p = v + start;
        names[count].n = i - start;
        count++;
        if (i < n) {
            i++;
            if (i == n) {
                return false; /* trailing ';' */
            }
        }
    }
    /* Point the names into a lower-cased copy so that sorting orders them
     * as the canonical request does. */
    char lowered[SIGV4_SIGNED_HEADERS_MAX + 1];
    for (size_t k = 0; k < n; k++) {
        lowered[k] = lower(v[k]);
    }
    for (size_t k = 0; k < count; k++) {
        names[k].p = lowered + (names[k].p - v);
    }
    return normalise_names(names, count, auth->signed_headers, sizeof(auth->signed_headers));
}

static bool list_has(const char *list, const char *name)
{
    size_t n = strlen(name);
    const char *p = list;
    while (*p) {
        const char *semi = strchr(p, ';');
        size_t len = semi ? (size_t)(semi - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0) {
            return true;
        }
        p += len;
        if (*p == ';') {
            p++;
        }
    }
    return false;
}

static bool copy_part(char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap) {
        return false;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
    return true;
}

/* Split "AKID/date/region/service/term" into auth. */
static enum berth_err parse_credential(const char *v, size_t n, struct sigv4_auth *auth,
                                       struct sigv4_refusal *r)
{
    const char *parts[5];
    size_t lens[5];
    size_t count = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || v[i] == '/') {
            if (count < 5) {
                parts[count] = v + start;
                lens[count] = i - start;
            }
            count++;
            start = i + 1;
        }
    }
    if (count != 5) {
        return refuse(r, SIGV4_ERR_INCOMPLETE,
                      "Credential must have exactly 5 slash-delimited elements, e.g. "
                      "keyid/date/region/service/term, got '%.*s'",
                      (int)(n < 200 ? n : 200), v);
    }
    if (!copy_part(auth->access_key_id, sizeof(auth->access_key_id), parts[0], lens[0]) ||
        !copy_part(auth->scope_date, sizeof(auth->scope_date), parts[1], lens[1]) ||
        !copy_part(auth->region, sizeof(auth->region), parts[2], lens[2]) ||
        !copy_part(auth->service, sizeof(auth->service), parts[3], lens[3]) ||
        !copy_part(auth->terminator, sizeof(auth->terminator), parts[4], lens[4])) {
        return refuse(r, SIGV4_ERR_INCOMPLETE,
                      "Credential is malformed: the access key id is limited to %d characters "
                      "and each scope element to %d",
                      SIGV4_AKID_MAX, SIGV4_SCOPE_PART_MAX);
    }
    return BERTH_OK;
}

/* The Authorization value, trimmed, into *value / *len; refuses a missing,
 * repeated, empty, oversized or non-ASCII header. */
static enum berth_err authorization_value(const struct sigv4_request *req, const char **value,
                                          size_t *len, struct sigv4_refusal *r)
{
    size_t count;
    const char *v = find_header(req, "authorization", &count);
    if (v == NULL) {
        return refuse(r, SIGV4_ERR_MISSING_TOKEN, "%s", MSG_MISSING);
    }
    if (count > 1) {
        return refuse(r, SIGV4_ERR_INCOMPLETE,
                      "The request must carry exactly one Authorization header.");
    }
    while (is_space(*v)) {
        v++;
    }
    size_t n = strlen(v);
    while (n > 0 && is_space(v[n - 1])) {
        n--;
    }
    if (n == 0) {
        return refuse(r, SIGV4_ERR_MISSING_TOKEN, "%s", MSG_MISSING);
    }
    if (n > SIGV4_AUTH_MAX_LEN) {
        return refuse(r, SIGV4_ERR_INCOMPLETE, "The Authorization header is longer than %d bytes.",
                      SIGV4_AUTH_MAX_LEN);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 && c != '\t') || c > 0x7e) {
            return refuse(r, SIGV4_ERR_INCOMPLETE,
                          "The Authorization header contains bytes that are not printable "
                          "ASCII.");
        }
    }
    *value = v;
    *len = n;
    return BERTH_OK;
}

/* Where the request time comes from: X-Amz-Date, else an IMF-fixdate Date
 * header. bad_amz_date: an X-Amz-Date was sent but is unusable. */
struct request_date {
    bool has_date;
    bool bad_amz_date;
    char echo[41]; /* the bad X-Amz-Date, printable, for the message */
};

static void request_date(const struct sigv4_request *req, struct sigv4_auth *a,
                         struct request_date *d)
{
    size_t count;
    memset(d, 0, sizeof(*d));
    const char *amz = find_header(req, "x-amz-date", &count);
    if (amz != NULL) {
        if (count == 1 && parse_amz_date(amz, &a->request_time)) {
            memcpy(a->amz_date, amz, SIGV4_AMZ_DATE_LEN + 1);
            d->has_date = true;
            return;
        }
        d->bad_amz_date = true;
        /* Echoed into a JSON message: printable ASCII only. */
        size_t i;
        for (i = 0; amz[i] != '\0' && i < sizeof(d->echo) - 1; i++) {
            unsigned char c = (unsigned char)amz[i];
            d->echo[i] = (c >= 0x20 && c <= 0x7e) ? (char)c : '?';
        }
        d->echo[i] = '\0';
        return;
    }
    const char *http_date = find_header(req, "date", &count);
    if (http_date != NULL && count == 1 && parse_http_date(http_date, &a->request_time)) {
        sigv4_format_amz_date(a->request_time, a->amz_date);
        d->has_date = true;
    }
}

/* The three parameters of a SigV4 Authorization header (pointers into it;
 * NULL when absent). */
struct auth_params {
    const char *cred, *signed_headers, *sig;
    size_t cred_len, signed_len, sig_len;
};

/* Split "Credential=..., SignedHeaders=..., Signature=..." (after the
 * scheme): parameters are separated by ',' and/or whitespace, as AWS
 * accepts; unknown parameters are ignored. */
static enum berth_err split_params(const char *v, size_t len, struct auth_params *p,
                                   struct sigv4_refusal *r)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (v[i] == ',' || is_space(v[i]))) {
            i++;
        }
        size_t start = i;
        while (i < len && v[i] != ',' && !is_space(v[i])) {
            i++;
        }
        if (i == start) {
            break;
        }
        const char *piece = v + start;
        size_t n = i - start;
        const char *eq = memchr(piece, '=', n);
        if (eq == NULL) {
            return refuse(r, SIGV4_ERR_INCOMPLETE,
                          "'%.*s' not a valid key=value pair (missing equal-sign) in "
                          "Authorization header.",
                          (int)(n < 128 ? n : 128), piece);
        }
        size_t klen = (size_t)(eq - piece);
        const char **slot = NULL;
        size_t *slot_len = NULL;
        if (klen == 10 && memcmp(piece, "Credential", 10) == 0) {
            slot = &p->cred;
            slot_len = &p->cred_len;
        } else if (klen == 13 && memcmp(piece, "SignedHeaders", 13) == 0) {
            slot = &p->signed_headers;
            slot_len = &p->signed_len;
        } else if (klen == 9 && memcmp(piece, "Signature", 9) == 0) {
            slot = &p->sig;
            slot_len = &p->sig_len;
        }
        if (slot == NULL) {
            continue;
        }
        if (*slot != NULL) {
            return refuse(r, SIGV4_ERR_INCOMPLETE,
                          "Authorization header has more than one '%.*s' parameter.", (int)klen,
                          piece);
        }
        *slot = eq + 1;
        *slot_len = n - klen - 1;
    }
    return BERTH_OK;
}

/* Refuse a header that lacks parameters or a date: AWS lists every
 * missing piece in one message. */
static enum berth_err refuse_incomplete(const struct auth_params *p, const struct request_date *d,
                                        struct sigv4_refusal *r)
{
    if (d->bad_amz_date && p->cred != NULL && p->signed_headers != NULL && p->sig != NULL) {
        return refuse(r, SIGV4_ERR_INCOMPLETE,
                      "Date must be in ISO-8601 'basic format'. Got '%s'. See "
                      "http://en.wikipedia.org/wiki/ISO_8601",
                      d->echo);
    }
    const char *missing[4] = {
        p->cred == NULL ? MSG_REQUIRES_CREDENTIAL : NULL,
        p->sig == NULL ? MSG_REQUIRES_SIGNATURE : NULL,
        p->signed_headers == NULL ? MSG_REQUIRES_SIGNED_HEADERS : NULL,
        !d->has_date && !d->bad_amz_date ? MSG_REQUIRES_DATE : NULL,
    };
    char msg[SIGV4_MESSAGE_MAX];
    size_t o = 0;
    msg[0] = '\0';
    for (size_t k = 0; k < 4; k++) {
        if (missing[k] != NULL) {
            int w = snprintf(msg + o, sizeof(msg) - o, "%s%s", o ? " " : "", missing[k]);
            if (w > 0 && (size_t)w < sizeof(msg) - o) {
                o += (size_t)w;
            }
        }
    }
    return refuse(r, SIGV4_ERR_INCOMPLETE, "%s", msg);
}

enum berth_err sigv4_parse(const struct sigv4_request *req, struct sigv4_auth *auth,
                           struct sigv4_refusal *refusal)
{
    struct sigv4_auth a;
    memset(&a, 0, sizeof(a));
    const char *value = NULL;
    size_t len = 0;
    enum berth_err rc = authorization_value(req, &value, &len, refusal);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct request_date date;
    request_date(req, &a, &date);

    size_t scheme_len = 0;
    while (scheme_len < len && !is_space(value[scheme_len])) {
        scheme_len++;
    }
    bool is_sigv4 =
        scheme_len == strlen(SIGV4_ALGORITHM) && memcmp(value, SIGV4_ALGORITHM, scheme_len) == 0;
    if (!is_sigv4 && scheme_len > 5 && memcmp(value, "AWS4-", 5) == 0) {
        return refuse(refusal, SIGV4_ERR_INCOMPLETE, "Unsupported AWS 'algorithm': '%.*s'",
                      (int)(scheme_len < 64 ? scheme_len : 64), value);
    }
    /* Any other scheme (Basic, Bearer, ...) has none of the parameters. */
    struct auth_params p;
    memset(&p, 0, sizeof(p));
    if (is_sigv4) {
        rc = split_params(value + scheme_len, len - scheme_len, &p, refusal);
        if (rc != BERTH_OK) {
            return rc;
        }
    }
    if (p.cred == NULL || p.signed_headers == NULL || p.sig == NULL || !date.has_date) {
        return refuse_incomplete(&p, &date, refusal);
    }

    rc = parse_credential(p.cred, p.cred_len, &a, refusal);
    if (rc != BERTH_OK) {
        return rc;
    }
    if (!parse_signed_headers(p.signed_headers, p.signed_len, &a)) {
        return refuse(refusal, SIGV4_ERR_INCOMPLETE,
                      "SignedHeaders must be 1 to %d header names separated by ';' and at most "
                      "%d characters.",
                      SIGV4_SIGNED_HEADER_COUNT_MAX, SIGV4_SIGNED_HEADERS_MAX);
    }
    if (!list_has(a.signed_headers, "host")) {
        /* AWS's JSON services answer this one as a signature fault */
        return refuse(refusal, SIGV4_ERR_INVALID_SIGNATURE, "%s", MSG_HOST_NOT_SIGNED);
    }
    /* A Signature that is not 64 hex digits stays "" and never matches. */
    if (p.sig_len == SIGV4_SIGNATURE_HEX_LEN) {
        for (size_t k = 0; k < p.sig_len; k++) {
            a.signature[k] = lower(p.sig[k]);
        }
        a.signature[p.sig_len] = '\0';
        if (!all_hex(a.signature, p.sig_len)) {
            a.signature[0] = '\0';
        }
    }
    a.has_security_token = find_header(req, "x-amz-security-token", NULL) != NULL;
    *auth = a;
    return BERTH_OK;
}

/* ---- verification ---- */

static bool region_ok(const char *region, const struct sigv4_verify_opts *opts)
{
    if (region[0] == '\0') {
        return false;
    }
    for (const char *p = region; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) {
            return false;
        }
    }
    if (opts->regions == NULL || opts->region_count == 0) {
        return true;
    }
    for (size_t i = 0; i < opts->region_count; i++) {
        if (opts->regions[i] != NULL && strcmp(opts->regions[i], region) == 0) {
            return true;
        }
    }
    return false;
}

/* Scope errors are reported together, each followed by a space, in AWS's
 * order: region, service, terminator, date. */
static enum berth_err check_scope(const struct sigv4_auth *auth,
                                  const struct sigv4_verify_opts *opts, struct sigv4_refusal *r)
{
    const char *service = opts->service != NULL ? opts->service : SIGV4_SERVICE;
    char msg[SIGV4_MESSAGE_MAX];
    size_t o = 0;
    int w;
    msg[0] = '\0';
    if (!region_ok(auth->region, opts)) {
        w = snprintf(msg + o, sizeof(msg) - o,
                     "Credential should be scoped to a valid region, not '%s'. ", auth->region);
        o += (w > 0 && (size_t)w < sizeof(msg) - o) ? (size_t)w : 0;
    }
    if (strcmp(auth->service, service) != 0) {
        w = snprintf(msg + o, sizeof(msg) - o,
                     "Credential should be scoped to correct service: '%.32s'. ", service);
        o += (w > 0 && (size_t)w < sizeof(msg) - o) ? (size_t)w : 0;
    }
    if (strcmp(auth->terminator, TERMINATOR) != 0) {
        w = snprintf(msg + o, sizeof(msg) - o,
                     "Credential should be scoped with a valid terminator: 'aws4_request', not "
                     "'%s'. ",
                     auth->terminator);
        o += (w > 0 && (size_t)w < sizeof(msg) - o) ? (size_t)w : 0;
    }
    if (strlen(auth->scope_date) != 8 || memcmp(auth->scope_date, auth->amz_date, 8) != 0) {
        w = snprintf(msg + o, sizeof(msg) - o,
                     "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                     "date from HTTP: '%s' != '%.8s', from '%s'. ",
                     auth->scope_date, auth->amz_date, auth->amz_date);
        o += (w > 0 && (size_t)w < sizeof(msg) - o) ? (size_t)w : 0;
    }
    if (o == 0) {
        return BERTH_OK;
    }
    return refuse(r, SIGV4_ERR_INVALID_SIGNATURE, "%s", msg);
}

static enum berth_err check_time(const struct sigv4_auth *auth,
                                 const struct sigv4_verify_opts *opts, struct sigv4_refusal *r)
{
    char limit[SIGV4_AMZ_DATE_LEN + 1], now[SIGV4_AMZ_DATE_LEN + 1];
    if (auth->request_time < opts->now - SIGV4_MAX_SKEW_SECONDS) {
        sigv4_format_amz_date(opts->now - SIGV4_MAX_SKEW_SECONDS, limit);
        sigv4_format_amz_date(opts->now, now);
        return refuse(r, SIGV4_ERR_INVALID_SIGNATURE,
                      "Signature expired: %s is now earlier than %s (%s - %d min.)", auth->amz_date,
                      limit, now, SIGV4_MAX_SKEW_SECONDS / 60);
    }
    if (auth->request_time > opts->now + SIGV4_MAX_SKEW_SECONDS) {
        sigv4_format_amz_date(opts->now + SIGV4_MAX_SKEW_SECONDS, limit);
        sigv4_format_amz_date(opts->now, now);
        return refuse(r, SIGV4_ERR_INVALID_SIGNATURE,
                      "Signature not yet current: %s is still later than %s (%s + %d min.)",
                      auth->amz_date, limit, now, SIGV4_MAX_SKEW_SECONDS / 60);
    }
    return BERTH_OK;
}

/* The payload hash for the canonical request. A signed
 * x-amz-content-sha256 is used as sent but must match the body. */
static enum berth_err payload_hash(const struct sigv4_request *req, const struct sigv4_auth *auth,
                                   const struct sigv4_verify_opts *opts, char out[65],
                                   struct sigv4_refusal *r)
{
    char actual[65];
    enum berth_err rc = body_hash_hex(req, actual);
    if (rc != BERTH_OK) {
        return rc;
    }
    if (!list_has(auth->signed_headers, "x-amz-content-sha256")) {
        memcpy(out, actual, sizeof(actual));
        return BERTH_OK;
    }
    size_t count;
    const char *v = find_header(req, "x-amz-content-sha256", &count);
    if (v != NULL && count == 1 && opts->allow_unsigned_payload &&
        strcmp(v, UNSIGNED_PAYLOAD) == 0) {
        memcpy(out, UNSIGNED_PAYLOAD, sizeof(UNSIGNED_PAYLOAD));
        return BERTH_OK;
    }
    if (v == NULL || count != 1 || strlen(v) != 64 || !all_hex(v, 64)) {
        return refuse(r, SIGV4_ERR_INVALID_SIGNATURE, "%s", MSG_CONTENT_SHA256_MISMATCH);
    }
    char given[65];
    for (size_t i = 0; i < 64; i++) {
        given[i] = lower(v[i]);
    }
    given[64] = '\0';
    if (strcmp(given, actual) != 0) {
        return refuse(r, SIGV4_ERR_INVALID_SIGNATURE, "%s", MSG_CONTENT_SHA256_MISMATCH);
    }
    memcpy(out, v, 65); /* signed exactly as sent */
    return BERTH_OK;
}

/* Refuse a request that carries a header of required_signed without
 * signing it. */
static enum berth_err check_required_signed(const struct sigv4_request *req,
                                            const struct sigv4_auth *auth, struct sigv4_refusal *r)
{
    for (size_t i = 0; i < sizeof(required_signed) / sizeof(required_signed[0]); i++) {
        char name[32];
        size_t n = strlen(required_signed[i]);
        for (size_t k = 0; k <= n; k++) {
            name[k] = lower(required_signed[i][k]);
        }
        if (find_header(req, name, NULL) != NULL && !list_has(auth->signed_headers, name)) {
            return refuse(r, SIGV4_ERR_INVALID_SIGNATURE, MSG_MUST_BE_SIGNED, required_signed[i]);
        }
    }
    return BERTH_OK;
}

enum berth_err sigv4_verify(const struct sigv4_request *req, const struct sigv4_auth *auth,
                            const char *secret, size_t secret_len,
                            const struct sigv4_verify_opts *opts, struct sigv4_refusal *refusal)
{
    if (secret == NULL || secret_len > SIGV4_SECRET_MAX) {
        return BERTH_EINVAL;
    }
    enum berth_err rc = check_required_signed(req, auth, refusal);
    if (rc != BERTH_OK) {
        return rc;
    }
    rc = check_scope(auth, opts, refusal);
    if (rc != BERTH_OK) {
        return rc;
    }
    rc = check_time(auth, opts, refusal);
    if (rc != BERTH_OK) {
        return rc;
    }
    char hash[65];
    rc = payload_hash(req, auth, opts, hash, refusal);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct buf canonical;
    buf_init(&canonical, SIGV4_CANONICAL_MAX);
    rc = canonical_request(&canonical, req, auth->signed_headers, hash, false);
    if (rc == BERTH_ETOOBIG) {
        rc = refuse(refusal, SIGV4_ERR_INCOMPLETE,
                    "The request is too large to verify: path, query or signed headers exceed "
                    "berth's limits.");
        goto out;
    }
    if (rc != BERTH_OK) {
        goto out;
    }
    char computed[SIGV4_SIGNATURE_HEX_LEN + 1];
    rc = signature_hex(secret, secret_len, auth->amz_date, auth->region, auth->service, &canonical,
                       computed);
    if (rc != BERTH_OK) {
        goto out; /* a server error, not a bad signature */
    }
    /* An unusable Signature parameter is "" and compares unequal. */
    if (!str_ct_equal(computed, SIGV4_SIGNATURE_HEX_LEN, auth->signature,
                      strlen(auth->signature))) {
        rc = refuse(refusal, SIGV4_ERR_INVALID_SIGNATURE, "%s", MSG_MISMATCH);
        goto out;
    }
    rc = BERTH_OK;
out:
    buf_fini(&canonical);
    return rc;
}

/* ---- signing ---- */

static bool is_unsigned_header(const char *name)
{
    for (size_t i = 0; i < sizeof(unsigned_headers) / sizeof(unsigned_headers[0]); i++) {
        if (ieq(name, unsigned_headers[i])) {
            return true;
        }
    }
    return false;
}

enum berth_err sigv4_sign(const struct sigv4_request *req, const struct sigv4_credentials *cred,
                          char *out, size_t cap)
{
    if (cred == NULL || cred->access_key_id == NULL || cred->secret == NULL ||
        cred->region == NULL || strlen(cred->secret) > SIGV4_SECRET_MAX ||
        strlen(cred->access_key_id) > SIGV4_AKID_MAX ||
        strlen(cred->region) > SIGV4_SCOPE_PART_MAX) {
        return BERTH_EINVAL;
    }
    const char *service = cred->service != NULL ? cred->service : SIGV4_SERVICE;
    if (strlen(service) > SIGV4_SCOPE_PART_MAX) {
        return BERTH_EINVAL;
    }
    size_t count;
    const char *amz_date = find_header(req, "x-amz-date", &count);
    int64_t t;
    if (amz_date == NULL || count != 1 || !parse_amz_date(amz_date, &t) ||
        find_header(req, "host", NULL) == NULL) {
        return BERTH_EINVAL;
    }

    /* Lower-cased copies of the names, back to back, so that sorting
     * orders them as the canonical request does. */
    struct name_ref names[SIGV4_SIGNED_HEADER_COUNT_MAX];
    char lowered[SIGV4_SIGNED_HEADERS_MAX];
    size_t n = 0, used = 0;
    for (size_t i = 0; i < req->header_count; i++) {
        const char *name = req->headers[i].name;
        if (name == NULL || is_unsigned_header(name)) {
            continue;
        }
        size_t len = strlen(name);
        if (len == 0 || n == SIGV4_SIGNED_HEADER_COUNT_MAX || len > sizeof(lowered) - used) {
            return BERTH_EINVAL;
        }
        for (size_t k = 0; k < len; k++) {
            if (!is_tchar(name[k])) {
                return BERTH_EINVAL;
            }
            lowered[used + k] = lower(name[k]);
        }
        names[n].p = lowered + used;
        names[n].n = len;
        used += len;
        n++;
    }
    char signed_headers[SIGV4_SIGNED_HEADERS_MAX + 1];
    if (!normalise_names(names, n, signed_headers, sizeof(signed_headers))) {
        return BERTH_EINVAL;
    }

    char hash[65];
    const char *given = find_header(req, "x-amz-content-sha256", NULL);
    if (given != NULL) {
        if (strlen(given) > 64) {
            return BERTH_EINVAL;
        }
        memcpy(hash, given, strlen(given) + 1);
    } else if (body_hash_hex(req, hash) != BERTH_OK) {
        return BERTH_ENOMEM;
    }

    struct buf canonical;
    buf_init(&canonical, SIGV4_CANONICAL_MAX);
    enum berth_err rc = canonical_request(&canonical, req, signed_headers, hash, cred->s3);
    if (rc != BERTH_OK) {
        rc = rc == BERTH_ETOOBIG ? BERTH_EINVAL : rc;
        goto out;
    }
    char sig[SIGV4_SIGNATURE_HEX_LEN + 1];
    rc = signature_hex(cred->secret, strlen(cred->secret), amz_date, cred->region, service,
                       &canonical, sig);
    if (rc != BERTH_OK) {
        goto out;
    }
    int w = snprintf(out, cap, "%s Credential=%s/%.8s/%s/%s/%s, SignedHeaders=%s, Signature=%s",
                     SIGV4_ALGORITHM, cred->access_key_id, amz_date, cred->region, service,
                     TERMINATOR, signed_headers, sig);
    rc = (w < 0 || (size_t)w >= cap) ? BERTH_ETOOBIG : BERTH_OK;
out:
    buf_fini(&canonical);
    return rc;
}

enum berth_err sigv4_presign(const char *method, const char *path, const char *host,
                             const struct sigv4_credentials *cred, int64_t now,
                             int64_t expires_seconds, char *out, size_t cap)
{
    if (cred == NULL || cred->access_key_id == NULL || cred->secret == NULL ||
        cred->region == NULL || method == NULL || path == NULL || host == NULL ||
        strlen(cred->secret) > SIGV4_SECRET_MAX || strlen(cred->access_key_id) > SIGV4_AKID_MAX ||
        strlen(cred->region) > SIGV4_SCOPE_PART_MAX || expires_seconds < 1 ||
        expires_seconds > 604800) {
        return BERTH_EINVAL;
    }
    const char *service = cred->service != NULL ? cred->service : SIGV4_SERVICE;
    if (strlen(service) > SIGV4_SCOPE_PART_MAX) {
        return BERTH_EINVAL;
    }
    char amz_date[SIGV4_AMZ_DATE_LEN + 1];
    sigv4_format_amz_date(now, amz_date);
    char credential[SIGV4_AKID_MAX + 4 * (SIGV4_SCOPE_PART_MAX + 1) + 16];
    snprintf(credential, sizeof(credential), "%s/%.8s/%s/%s/%s", cred->access_key_id, amz_date,
             cred->region, service, TERMINATOR);
    struct buf query;
    buf_init(&query, SIGV4_QUERY_MAX);
    enum berth_err rc = buf_printf(&query, "X-Amz-Algorithm=%s&X-Amz-Credential=", SIGV4_ALGORITHM);
    if (rc == BERTH_OK) {
        rc = encode(&query, credential, strlen(credential), false);
    }
    if (rc == BERTH_OK) {
        rc = buf_printf(&query, "&X-Amz-Date=%s&X-Amz-Expires=%lld&X-Amz-SignedHeaders=host",
                        amz_date, (long long)expires_seconds);
    }
    struct sigv4_header h = {"host", host};
    struct sigv4_request req = {
        .method = method,
        .path = path,
        .query = buf_cstr(&query),
        .headers = &h,
        .header_count = 1,
    };
    struct buf canonical;
    buf_init(&canonical, SIGV4_CANONICAL_MAX);
    if (rc == BERTH_OK) {
        rc = canonical_request(&canonical, &req, "host", "UNSIGNED-PAYLOAD", cred->s3);
        rc = rc == BERTH_ETOOBIG ? BERTH_EINVAL : rc;
    }
    char sig[SIGV4_SIGNATURE_HEX_LEN + 1];
    if (rc == BERTH_OK) {
        rc = signature_hex(cred->secret, strlen(cred->secret), amz_date, cred->region, service,
                           &canonical, sig);
    }
    if (rc == BERTH_OK) {
        int w = snprintf(out, cap, "%s&X-Amz-Signature=%s", buf_cstr(&query), sig);
        rc = (w < 0 || (size_t)w >= cap) ? BERTH_ETOOBIG : BERTH_OK;
    }
    buf_fini(&canonical);
    buf_fini(&query);
    return rc;
}
