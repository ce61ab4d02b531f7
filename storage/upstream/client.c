/* The upstream registry client over libcurl; see client.h. */
#include "storage/upstream/client.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <pthread.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "common/base64.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/str.h"

/* Largest token response and error body read. */
#define TOKEN_MAX 65536
#define AUTH_HEADER_MAX 16384

static const char MANIFEST_ACCEPT[] = "Accept: application/vnd.oci.image.index.v1+json, "
                                      "application/vnd.oci.image.manifest.v1+json, "
                                      "application/vnd.docker.distribution.manifest.list.v2+json, "
                                      "application/vnd.docker.distribution.manifest.v2+json";

struct upstream_client {
    char base[UPSTREAM_URL_MAX];
    char *username;
    char *password;
    char *auth; /* "Authorization: ..." once the upstream asked for it, or NULL */
    int64_t timeout_ms;
    char extra[256];           /* a header line sent with every request, or "" */
    char *ca_file;             /* PEM CA certificates trusted instead of the system's, or NULL */
    char user_agent[64];       /* "berth-<role>/<version>" */
    const atomic_bool *cancel; /* a transfer under way stops when set, or NULL */
    int base_kind;             /* enum addr_kind of the upstream's own address, -1 unknown */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

enum berth_err upstream_client_global_init(void)
{
    pthread_once(&curl_once, curl_init);
    return curl_init_rc == CURLE_OK ? BERTH_OK : BERTH_EIO;
}

static bool host_char(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '-' || c == '_';
}

bool upstream_url_normalize(const char *url, char *out, size_t cap)
{
    const char *scheme = "https://";
    const char *p = url;
    if (str_has_prefix(p, "https://")) {
        p += strlen("https://");
    } else if (str_has_prefix(p, "http://")) {
        scheme = "http://";
        p += strlen("http://");
    }
    const char *host = p;
    if (*p == '[') { /* [v6]:port */
        p++;
        while (isxdigit((unsigned char)*p) || *p == ':' || *p == '.') {
            p++;
        }
        if (*p != ']') {
            return false;
        }
        p++;
    } else {
        while (host_char(*p)) {
            p++;
        }
    }
    if (p == host) {
        return false;
    }
    if (*p == ':') {
        const char *port = ++p;
        unsigned long n = 0;
        while (isdigit((unsigned char)*p) && n <= 65535) {
            n = n * 10 + (unsigned long)(*p - '0');
            p++;
        }
        if (p == port || n == 0 || n > 65535) {
            return false; /* a TCP port is 1 to 65535 */
        }
    }
    size_t host_len = (size_t)(p - host);
    if (*p == '/') {
        p++;
    }
    if (*p != '\0') {
        return false;
    }
    int n = snprintf(out, cap, "%s%.*s", scheme, (int)host_len, host);
    return n > 0 && (size_t)n < cap;
}

struct upstream_client *upstream_client_new(const char *base_url, const char *username,
                                            const char *password, int64_t timeout_ms)
{
    if (upstream_client_global_init() != BERTH_OK) {
        log_error("event=upstream_error msg=\"libcurl cannot be initialised\"");
        return NULL;
    }
    struct upstream_client *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    str_copy(c->base, sizeof(c->base), base_url);
    c->base_kind = -1;
    upstream_client_set_role(c, "pull-through");
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
    if (username != NULL && password != NULL) {
        c->username = strdup(username);
        c->password = strdup(password);
        if (c->username == NULL || c->password == NULL) {
            upstream_client_free(c);
            return NULL;
        }
    }
    return c;
}

void upstream_client_set_role(struct upstream_client *c, const char *role)
{
    snprintf(c->user_agent, sizeof(c->user_agent), "berth-%s/%s", role, BERTH_VERSION);
}

enum berth_err upstream_client_set_ca_file(struct upstream_client *c, const char *path)
{
    char *copy = strdup(path);
    if (copy == NULL) {
        return BERTH_ENOMEM;
    }
    free(c->ca_file);
    c->ca_file = copy;
    return BERTH_OK;
}

static void wipe_free(char *s)
{
    if (s != NULL) {
        memset(s, 0, strlen(s));
        free(s);
    }
}

bool upstream_client_set_header(struct upstream_client *c, const char *name, const char *value)
{
    if (strpbrk(name, "\r\n:") != NULL || strpbrk(value, "\r\n") != NULL) {
        return false;
    }
    int n = snprintf(c->extra, sizeof(c->extra), "%s: %s", name, value);
    if (n < 0 || (size_t)n >= sizeof(c->extra)) {
        c->extra[0] = '\0';
        return false;
    }
    return true;
}

void upstream_client_set_cancel(struct upstream_client *c, const atomic_bool *cancel)
{
    c->cancel = cancel;
}

/* libcurl's progress callback: non-zero aborts the transfer. */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    const atomic_bool *cancel = arg;
    return atomic_load(cancel) ? 1 : 0;
}

void upstream_client_free(struct upstream_client *c)
{
    if (c == NULL) {
        return;
    }
    wipe_free(c->username);
    wipe_free(c->password);
    wipe_free(c->auth);
    free(c->ca_file);
    free(c);
}

void upstream_manifest_fini(struct upstream_manifest *m)
{
    free(m->body);
    m->body = NULL;
}

/* ---- challenges ---- */

/* Copy a quoted or bare parameter value at *p into out, advancing *p. */
static void param_value(const char **p, char *out, size_t cap)
{
    const char *s = *p;
    size_t n = 0;
    if (*s == '"') {
        s++;
        while (*s != '\0' && *s != '"') {
            if (*s == '\\' && s[1] != '\0') {
                s++;
            }
            if (n + 1 < cap) {
                out[n++] = *s;
            }
            s++;
        }
        if (*s == '"') {
            s++;
        }
    } else {
        while (*s != '\0' && *s != ',' && !isspace((unsigned char)*s)) {
            if (n + 1 < cap) {
                out[n++] = *s;
            }
            s++;
        }
    }
    out[n] = '\0';
    *p = s;
}

bool upstream_challenge_parse(const char *header, struct upstream_challenge *out)
{
    memset(out, 0, sizeof(*out));
    const char *p = header;
    while (isspace((unsigned char)*p)) {
        p++;
    }
    if (strncasecmp(p, "Basic", 5) == 0 && (p[5] == '\0' || isspace((unsigned char)p[5]))) {
        str_copy(out->scheme, sizeof(out->scheme), "Basic");
        return true;
    }
    if (strncasecmp(p, "Bearer", 6) != 0 || !isspace((unsigned char)p[6])) {
        return false;
    }
    str_copy(out->scheme, sizeof(out->scheme), "Bearer");
    p += 6;
    while (*p != '\0') {
        while (isspace((unsigned char)*p) || *p == ',') {
            p++;
        }
        const char *key = p;
        while (*p != '\0' && *p != '=' && *p != ',') {
            p++;
        }
        if (*p != '=') {
            break;
        }
        size_t key_len = (size_t)(p - key);
        p++;
        char scratch[8];
        char *dst = scratch;
        size_t dst_cap = sizeof(scratch);
        if (key_len == 5 && strncasecmp(key, "realm", 5) == 0) {
            dst = out->realm;
            dst_cap = sizeof(out->realm);
        } else if (key_len == 7 && strncasecmp(key, "service", 7) == 0) {
            dst = out->service;
            dst_cap = sizeof(out->service);
        } else if (key_len == 5 && strncasecmp(key, "scope", 5) == 0) {
            dst = out->scope;
            dst_cap = sizeof(out->scope);
        }
        param_value(&p, dst, dst_cap);
    }
    return out->realm[0] != '\0' &&
           (str_has_prefix(out->realm, "https://") || str_has_prefix(out->realm, "http://"));
}

/* ---- one transfer ---- */

struct xfer {
    CURL *curl;
    struct buf body; /* the body when kept (manifests, tokens, errors) */
    upstream_write_fn write;
    upstream_length_fn on_length;
    upstream_range_fn on_range;
    int64_t range_from; /* > 0: the blob asked for from this byte on (a Range) */
    bool started;       /* on_length (or on_range) was called */
    void *arg;
    enum berth_err write_rc;
    bool too_big;
    char www_auth[1024];
    char content_type[256];
    char digest[160];
    char location[2048];
    char content_range[128];
    long long content_length;
    /* a request body (PUT): from mem, else from fd; body_pos is where the
     * next read starts (0 at each attempt) */
    const char *method; /* "POST", "PUT", or NULL for GET/HEAD */
    const char *mem;
    int fd;
    uint64_t body_len;
    uint64_t body_pos;
    struct upstream_client *client; /* for on_prereq */
    char refused[2200];             /* what on_prereq refused, "" when nothing */
};

/* "Name: value" into out when the header line is name (case-insensitive). */
static bool header_value(const char *line, size_t n, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    if (n <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':') {
        return false;
    }
    const char *v = line + nl + 1;
    const char *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t')) {
        v++;
    }
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) {
        end--;
    }
    size_t len = (size_t)(end - v);
    if (len >= cap) {
        len = cap - 1;
    }
    memcpy(out, v, len);
    out[len] = '\0';
    return true;
}

static size_t on_header(char *p, size_t size, size_t nitems, void *arg)
{
    struct xfer *x = arg;
    size_t n = size * nitems;
    if (n >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        /* a new response (after a redirect): forget the last one's */
        x->www_auth[0] = x->content_type[0] = x->digest[0] = x->location[0] = '\0';
        x->content_range[0] = '\0';
        x->content_length = -1;
        return n;
    }
    char len[32];
    if (header_value(p, n, "Content-Length", len, sizeof(len))) {
        x->content_length = strtoll(len, NULL, 10);
    }
    header_value(p, n, "WWW-Authenticate", x->www_auth, sizeof(x->www_auth));
    header_value(p, n, "Content-Type", x->content_type, sizeof(x->content_type));
    header_value(p, n, "Docker-Content-Digest", x->digest, sizeof(x->digest));
    header_value(p, n, "Location", x->location, sizeof(x->location));
    header_value(p, n, "Content-Range", x->content_range, sizeof(x->content_range));
    return n;
}

/* The request body, from memory or with pread from the blob's file. */
static size_t on_read(char *p, size_t size, size_t nitems, void *arg)
{
    struct xfer *x = arg;
    size_t want = size * nitems;
    uint64_t left = x->body_len - x->body_pos;
    if (want > left) {
        want = (size_t)left;
    }
    if (want == 0) {
        return 0;
    }
    if (x->mem != NULL) {
        memcpy(p, x->mem + x->body_pos, want);
        x->body_pos += want;
        return want;
    }
    ssize_t got;
    do {
        got = pread(x->fd, p, want, (off_t)x->body_pos);
    } while (got < 0 && errno == EINTR);
    if (got <= 0) {
        return CURL_READFUNC_ABORT;
    }
    x->body_pos += (uint64_t)got;
    return (size_t)got;
}

/* The first byte of a Content-Range ("bytes 100-199/200"), or -1. */
static int64_t range_start(const char *value)
{
    if (strncasecmp(value, "bytes ", 6) != 0 || !isdigit((unsigned char)value[6])) {
        return -1;
    }
    char *end = NULL;
    errno = 0;
    long long from = strtoll(value + 6, &end, 10);
    return errno == 0 && end != NULL && *end == '-' ? (int64_t)from : -1;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
    struct xfer *x = arg;
    size_t n = size * nmemb;
    long code = 0;
    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &code);
    if (x->write != NULL && (code == 200 || (code == 206 && x->range_from > 0))) {
        if (!x->started && (x->on_length != NULL || x->on_range != NULL)) {
            curl_off_t len = -1;
            if (curl_easy_getinfo(x->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len) != CURLE_OK) {
                len = -1;
            }
            if (x->on_length != NULL) {
                x->on_length(x->arg, (int64_t)len);
            } else {
                x->on_range(x->arg, code == 206 ? range_start(x->content_range) : 0, (int64_t)len);
            }
        }
        x->started = true;
        x->write_rc = x->write(x->arg, p, n);
        return x->write_rc == BERTH_OK ? n : 0;
    }
    enum berth_err rc = buf_append(&x->body, p, n);
    if (rc == BERTH_ETOOBIG && code != 200) {
        return n; /* an error body: what fits is enough */
    }
    if (rc != BERTH_OK) {
        x->too_big = rc == BERTH_ETOOBIG;
        return 0;
    }
    return n;
}

/* Where a connection goes, from the most open to the most inward. */
enum addr_kind { ADDR_PUBLIC, ADDR_PRIVATE, ADDR_LINK_LOCAL, ADDR_LOOPBACK };

static enum addr_kind v4_kind(const unsigned char *a)
{
    if (a[0] == 127 || a[0] == 0) {
        return ADDR_LOOPBACK;
    }
    if (a[0] == 169 && a[1] == 254) {
        return ADDR_LINK_LOCAL; /* cloud metadata services live here */
    }
    if (a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16) || (a[0] == 192 && a[1] == 168) ||
        (a[0] == 100 && (a[1] & 0xc0) == 64)) {
        return ADDR_PRIVATE;
    }
    return ADDR_PUBLIC;
}

/* The kind of a numeric address as libcurl reports it. */
static enum addr_kind addr_kind(const char *ip)
{
    unsigned char a[16];
    if (inet_pton(AF_INET, ip, a) == 1) {
        return v4_kind(a);
    }
    if (inet_pton(AF_INET6, ip, a) != 1) {
        return ADDR_LOOPBACK; /* unreadable: the strictest */
    }
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char zero[15] = {0};
    if (memcmp(a, mapped, 12) == 0) {
        return v4_kind(a + 12);
    }
    if (memcmp(a, zero, 15) == 0 && (a[15] == 0 || a[15] == 1)) {
        return ADDR_LOOPBACK; /* :: and ::1 */
    }
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) {
        return ADDR_LINK_LOCAL;
    }
    if ((a[0] & 0xfe) == 0xfc) {
        return ADDR_PRIVATE;
    }
    return ADDR_PUBLIC;
}

/* url is at the upstream's own origin (c->base). */
static bool same_origin(const struct upstream_client *c, const char *url)
{
    size_t n = strlen(c->base);
    return strncmp(url, c->base, n) == 0 && (url[n] == '\0' || url[n] == '/' || url[n] == '?');
}

/* Before each request is sent (redirects too): the upstream itself may be
 * anywhere its rule says; a redirect or a token realm elsewhere may not
 * lead further inward than the upstream is (an upstream on the internet
 * does not send berth to 127.0.0.1, a private network or the cloud's
 * metadata address: server-side request forgery). */
static int on_prereq(void *arg, char *ip, char *local_ip, int port, int local_port)
{
    (void)local_ip;
    (void)port;
    (void)local_port;
    struct xfer *x = arg;
    struct upstream_client *c = x->client;
    char *url = NULL;
    curl_easy_getinfo(x->curl, CURLINFO_EFFECTIVE_URL, &url);
    enum addr_kind kind = addr_kind(ip);
    if (url != NULL && same_origin(c, url)) {
        const char *test = getenv("BERTH_TEST_UPSTREAM_PUBLIC");
        c->base_kind = test != NULL && strcmp(test, "1") == 0 ? ADDR_PUBLIC : (int)kind;
        return CURL_PREREQFUNC_OK;
    }
    int allowed = c->base_kind < 0 ? ADDR_PUBLIC : c->base_kind;
    if (c->base_kind == ADDR_LINK_LOCAL) {
        allowed = ADDR_LINK_LOCAL;
    }
    if ((int)kind > allowed) {
        snprintf(x->refused, sizeof(x->refused), "%s (%s) is further inward than the upstream",
                 url != NULL ? url : "-", ip);
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

/* Run one request of url; *code is the final HTTP status. auth is a whole
 * header line or NULL; accept likewise. BERTH_EIO with err on a transport
 * failure. */
static enum berth_err perform(struct upstream_client *c, const char *url, bool head,
                              const char *auth, const char *accept, bool bounded, struct xfer *x,
                              long *code, char *err, size_t cap)
{
    CURL *curl = curl_easy_init();
    if (curl == NULL) {
        return BERTH_ENOMEM;
    }
    x->curl = curl;
    x->write_rc = BERTH_OK;
    x->too_big = false;
    x->content_length = -1;
    x->www_auth[0] = x->content_type[0] = x->digest[0] = x->location[0] = '\0';
    x->content_range[0] = '\0';
    x->body_pos = 0;
    buf_reset(&x->body);
    struct curl_slist *headers = NULL;
    struct curl_slist *h = NULL;
    if (accept != NULL && (h = curl_slist_append(headers, accept)) != NULL) {
        headers = h;
    }
    if (auth != NULL && (h = curl_slist_append(headers, auth)) != NULL) {
        headers = h;
    }
    if (c->extra[0] != '\0' && (h = curl_slist_append(headers, c->extra)) != NULL) {
        headers = h;
    }
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    if (x->method == NULL) {
        curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
    } else if (strcmp(x->method, "PUT") == 0) {
        curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->body_len);
        curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(curl, CURLOPT_READDATA, x);
    } else {
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, 0L);
    }
    curl_easy_setopt(curl, CURLOPT_USERAGENT, c->user_agent);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)c->timeout_ms);
    if (c->ca_file != NULL) {
        curl_easy_setopt(curl, CURLOPT_CAINFO, c->ca_file);
    }
    if (bounded) {
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    } else {
        /* a large blob may take long: give up only when it stalls (under
         * 1 KiB/s for the timeout: a trickle would hold a fetch for days) */
        long secs = (long)(c->timeout_ms / 1000 > 0 ? c->timeout_ms / 1000 : 1);
        curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
        curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, secs);
    }
    if (head) {
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    }
    char range[32];
    if (x->range_from > 0) {
        snprintf(range, sizeof(range), "%lld-", (long long)x->range_from);
        curl_easy_setopt(curl, CURLOPT_RANGE, range);
    }
    if (c->cancel != NULL) {
        curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(curl, CURLOPT_XFERINFODATA, (void *)c->cancel);
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, x);
    x->client = c;
    x->refused[0] = '\0';
    curl_easy_setopt(curl, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(curl, CURLOPT_PREREQDATA, x);
    CURLcode cc = curl_easy_perform(curl);
    *code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, code);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    x->curl = NULL;
    if (x->write_rc != BERTH_OK) {
        snprintf(err, cap, "storing what the upstream sent failed (%s)",
                 berth_strerror(x->write_rc));
        return x->write_rc;
    }
    if (x->too_big) {
        snprintf(err, cap, "the upstream's answer is too large");
        return BERTH_ETOOBIG;
    }
    if (x->refused[0] != '\0') {
        log_warn("event=upstream_refused reason=inward_address target=\"%s\"", x->refused);
        snprintf(err, cap, "the upstream sent berth to %s", x->refused);
        return BERTH_EDENIED;
    }
    if (cc != CURLE_OK) {
        snprintf(err, cap, "%s", curl_easy_strerror(cc));
        return BERTH_EIO;
    }
    return BERTH_OK;
}

/* Ask the realm of a Bearer challenge for a token (scope from the
 * challenge, else pull of repo) and keep it as c->auth. */
static enum berth_err fetch_token(struct upstream_client *c, const struct upstream_challenge *ch,
                                  const char *repo, char *err, size_t cap)
{
    if (strncmp(c->base, "https://", 8) == 0 && strncmp(ch->realm, "https://", 8) != 0) {
        /* the credentials would go in the clear where the upstream is TLS */
        snprintf(err, cap, "the upstream's token realm %.200s is not https, as the upstream is",
                 ch->realm);
        log_warn("event=upstream_refused reason=realm_not_https realm=\"%.200s\"", ch->realm);
        return BERTH_EDENIED;
    }
    struct buf url;
    buf_init(&url, 4096);
    struct xfer x;
    memset(&x, 0, sizeof(x));
    buf_init(&x.body, TOKEN_MAX);
    char *basic = NULL;
    CURL *esc = curl_easy_init();
    enum berth_err rc = esc == NULL ? BERTH_ENOMEM : buf_puts(&url, ch->realm);
    char sep = strchr(ch->realm, '?') != NULL ? '&' : '?';
    if (rc == BERTH_OK && ch->service[0] != '\0') {
        char *s = curl_easy_escape(esc, ch->service, 0);
        rc = s != NULL ? buf_printf(&url, "%cservice=%s", sep, s) : BERTH_ENOMEM;
        curl_free(s);
        sep = '&';
    }
    char scope[600];
    if (ch->scope[0] != '\0') {
        str_copy(scope, sizeof(scope), ch->scope);
    } else if (repo != NULL) {
        snprintf(scope, sizeof(scope), "repository:%s:pull", repo);
    } else {
        scope[0] = '\0';
    }
    if (rc == BERTH_OK && scope[0] != '\0') {
        char *s = curl_easy_escape(esc, scope, 0);
        rc = s != NULL ? buf_printf(&url, "%cscope=%s", sep, s) : BERTH_ENOMEM;
        curl_free(s);
    }
    if (rc == BERTH_OK && c->username != NULL) {
        size_t ulen = strlen(c->username) + 1 + strlen(c->password);
        char *pair = malloc(ulen + 1);
        basic = malloc(base64_encoded_size(ulen) + 32);
        if (pair == NULL || basic == NULL) {
            rc = BERTH_ENOMEM;
        } else {
            snprintf(pair, ulen + 1, "%s:%s", c->username, c->password);
            memcpy(basic, "Authorization: Basic ", 21);
            base64_encode((const uint8_t *)pair, ulen, basic + 21);
            memset(pair, 0, ulen);
        }
        free(pair);
    }
    long code = 0;
    if (rc == BERTH_OK) {
        rc = perform(c, buf_cstr(&url), false, basic, NULL, true, &x, &code, err, cap);
    }
    if (rc == BERTH_OK && code != 200) {
        snprintf(err, cap, "the upstream's token service answered %ld", code);
        rc = code == 401 || code == 403 ? BERTH_EDENIED : BERTH_EIO;
    }
    json_t *doc = rc == BERTH_OK ? json_loads(buf_cstr(&x.body), 0, NULL) : NULL;
    if (rc == BERTH_OK) {
        const char *tok = json_string_value(json_object_get(doc, "token"));
        if (tok == NULL || *tok == '\0') {
            tok = json_string_value(json_object_get(doc, "access_token"));
        }
        if (tok == NULL || *tok == '\0' || strlen(tok) > AUTH_HEADER_MAX ||
            strpbrk(tok, "\r\n") != NULL) {
            snprintf(err, cap, "the upstream's token service gave no token");
            rc = BERTH_EIO;
        } else {
            size_t n = strlen(tok) + 32;
            char *line = malloc(n);
            if (line == NULL) {
                rc = BERTH_ENOMEM;
            } else {
                snprintf(line, n, "Authorization: Bearer %s", tok);
                wipe_free(c->auth);
                c->auth = line;
            }
        }
    }
    json_decref(doc);
    if (basic != NULL) {
        wipe_free(basic);
    }
    curl_easy_cleanup(esc);
    buf_fini(&url);
    buf_fini(&x.body);
    return rc;
}

/* Basic credentials as c->auth; BERTH_EDENIED when there are none. */
static enum berth_err use_basic(struct upstream_client *c)
{
    if (c->username == NULL) {
        return BERTH_EDENIED;
    }
    size_t ulen = strlen(c->username) + 1 + strlen(c->password);
    char *pair = malloc(ulen + 1);
    char *line = malloc(base64_encoded_size(ulen) + 32);
    if (pair == NULL || line == NULL) {
        free(pair);
        free(line);
        return BERTH_ENOMEM;
    }
    snprintf(pair, ulen + 1, "%s:%s", c->username, c->password);
    memcpy(line, "Authorization: Basic ", 21);
    base64_encode((const uint8_t *)pair, ulen, line + 21);
    memset(pair, 0, ulen);
    free(pair);
    wipe_free(c->auth);
    c->auth = line;
    return BERTH_OK;
}

static enum berth_err status_rc(long code, const char *what, char *err, size_t cap)
{
    if (code >= 200 && code < 300) {
        return BERTH_OK;
    }
    snprintf(err, cap, "the upstream answered %ld to %s", code, what);
    switch (code) {
    case 404:
        return BERTH_ENOTFOUND;
    case 401:
    case 403:
        return BERTH_EDENIED;
    case 429:
        return BERTH_EBUSY;
    default:
        return BERTH_EIO;
    }
}

/* A request with authentication: as is (or with the kept token), then,
 * after a 401 that challenges, once more authenticated. */
static enum berth_err request(struct upstream_client *c, const char *path, bool head,
                              const char *accept, bool bounded, const char *repo, struct xfer *x,
                              long *code, char *err, size_t cap)
{
    char url[UPSTREAM_URL_MAX + 2048];
    bool absolute = str_has_prefix(path, "http://") || str_has_prefix(path, "https://");
    int n = snprintf(url, sizeof(url), "%s%s", absolute ? "" : c->base, path);
    if (n < 0 || (size_t)n >= sizeof(url)) {
        snprintf(err, cap, "upstream URL too long");
        return BERTH_EINVAL;
    }
    enum berth_err rc = perform(c, url, head, c->auth, accept, bounded, x, code, err, cap);
    if (rc != BERTH_OK || *code != 401) {
        return rc;
    }
    struct upstream_challenge ch;
    if (!upstream_challenge_parse(x->www_auth, &ch)) {
        return BERTH_OK; /* a 401 berth cannot answer: the caller reports it */
    }
    if (strcmp(ch.scheme, "Basic") == 0) {
        if (c->auth != NULL && str_has_prefix(c->auth, "Authorization: Basic")) {
            return BERTH_OK; /* the credentials were refused */
        }
        rc = use_basic(c);
        if (rc == BERTH_EDENIED) {
            return BERTH_OK;
        }
    } else {
        rc = fetch_token(c, &ch, repo, err, cap);
    }
    if (rc != BERTH_OK) {
        return rc;
    }
    return perform(c, url, head, c->auth, accept, bounded, x, code, err, cap);
}

/* path = "/v2/..." from fmt; false (with err) when it does not fit. */
__attribute__((format(printf, 5, 6))) static bool api_path(char *path, size_t size, char *err,
                                                           size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(path, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size) {
        snprintf(err, cap, "reference too long");
        return false;
    }
    return true;
}

/* A manifest or referrers document at path (at most max bytes; with head,
 * only its type, digest and length). */
static enum berth_err get_document(struct upstream_client *c, const char *repo, const char *path,
                                   const char *accept, const char *what, bool head, size_t max,
                                   struct upstream_manifest *out, char *err, size_t cap)
{
    struct xfer x;
    memset(&x, 0, sizeof(x));
    buf_init(&x.body, max);
    long code = 0;
    enum berth_err rc = request(c, path, head, accept, true, repo, &x, &code, err, cap);
    if (rc == BERTH_OK) {
        rc = status_rc(code, what, err, cap);
    }
    if (rc == BERTH_OK) {
        memset(out, 0, sizeof(*out));
        str_copy(out->content_type, sizeof(out->content_type), x.content_type);
        str_copy(out->digest, sizeof(out->digest), x.digest);
        if (head) {
            out->len = x.content_length > 0 ? (size_t)x.content_length : 0;
        } else {
            out->len = x.body.len;
            out->body = buf_steal(&x.body);
            if (out->body == NULL) {
                rc = BERTH_ENOMEM;
            }
        }
    }
    buf_fini(&x.body);
    return rc;
}

enum berth_err upstream_get_manifest(struct upstream_client *c, const char *repo,
                                     const char *reference, bool head, size_t max,
                                     struct upstream_manifest *out, char *err, size_t cap)
{
    char path[1024];
    if (!api_path(path, sizeof(path), err, cap, "/v2/%s/manifests/%s", repo, reference)) {
        return BERTH_EINVAL;
    }
    return get_document(c, repo, path, MANIFEST_ACCEPT, "a manifest request", head, max, out, err,
                        cap);
}

enum berth_err upstream_get_referrers(struct upstream_client *c, const char *repo,
                                      const char *digest, size_t max, struct upstream_manifest *out,
                                      char *err, size_t cap)
{
    char path[1024];
    if (!api_path(path, sizeof(path), err, cap, "/v2/%s/referrers/%s", repo, digest)) {
        return BERTH_EINVAL;
    }
    return get_document(c, repo, path, "Accept: application/vnd.oci.image.index.v1+json",
                        "a referrers request", false, max, out, err, cap);
}

static enum berth_err get_blob(struct upstream_client *c, const char *repo, const char *digest,
                               int64_t from, upstream_length_fn on_length,
                               upstream_range_fn on_range, upstream_write_fn write, void *arg,
                               char *err, size_t cap)
{
    char path[1024];
    if (!api_path(path, sizeof(path), err, cap, "/v2/%s/blobs/%s", repo, digest)) {
        return BERTH_EINVAL;
    }
    struct xfer x;
    memset(&x, 0, sizeof(x));
    buf_init(&x.body, TOKEN_MAX);
    x.write = write;
    x.on_length = on_length;
    x.on_range = on_range;
    x.range_from = from;
    x.arg = arg;
    long code = 0;
    enum berth_err rc = request(c, path, false, NULL, false, repo, &x, &code, err, cap);
    if (rc == BERTH_OK) {
        rc = status_rc(code, "a blob request", err, cap);
    }
    if (rc == BERTH_OK && !x.started && on_length != NULL) {
        on_length(arg, 0); /* an empty blob: no piece came */
    } else if (rc == BERTH_OK && !x.started && on_range != NULL) {
        on_range(arg, code == 206 ? from : 0, 0);
    }
    buf_fini(&x.body);
    return rc;
}

enum berth_err upstream_get_blob(struct upstream_client *c, const char *repo, const char *digest,
                                 upstream_length_fn on_length, upstream_write_fn write, void *arg,
                                 char *err, size_t cap)
{
    return get_blob(c, repo, digest, 0, on_length, NULL, write, arg, err, cap);
}

enum berth_err upstream_get_blob_from(struct upstream_client *c, const char *repo,
                                      const char *digest, int64_t from, upstream_range_fn on_range,
                                      upstream_write_fn write, void *arg, char *err, size_t cap)
{
    return get_blob(c, repo, digest, from, NULL, on_range, write, arg, err, cap);
}

enum berth_err upstream_ping(struct upstream_client *c, const char *repo, char *err, size_t cap)
{
    struct xfer x;
    memset(&x, 0, sizeof(x));
    buf_init(&x.body, TOKEN_MAX);
    long code = 0;
    enum berth_err rc = request(c, "/v2/", false, NULL, true, repo, &x, &code, err, cap);
    if (rc == BERTH_OK) {
        rc = status_rc(code, "GET /v2/", err, cap);
    }
    buf_fini(&x.body);
    return rc;
}

/* ---- pushing (replication) ---- */

enum berth_err upstream_blob_exists(struct upstream_client *c, const char *repo, const char *digest,
                                    bool *exists, char *err, size_t cap)
{
    char path[1024];
    if (!api_path(path, sizeof(path), err, cap, "/v2/%s/blobs/%s", repo, digest)) {
        return BERTH_EINVAL;
    }
    struct xfer x;
    memset(&x, 0, sizeof(x));
    buf_init(&x.body, TOKEN_MAX);
    long code = 0;
    enum berth_err rc = request(c, path, true, NULL, true, repo, &x, &code, err, cap);
    if (rc == BERTH_OK && code == 404) {
        *exists = false;
    } else if (rc == BERTH_OK) {
        rc = status_rc(code, "a blob HEAD", err, cap);
        *exists = rc == BERTH_OK;
    }
    buf_fini(&x.body);
    return rc;
}

/* The URL of an upload session's Location (absolute, or a path on the
 * destination) with digest added to its query. */
static enum berth_err upload_url(const struct upstream_client *c, const char *location,
                                 const char *digest, char *out, size_t cap)
{
    if (location[0] == '\0') {
        return BERTH_EIO;
    }
    bool absolute = str_has_prefix(location, "http://") || str_has_prefix(location, "https://");
    if (absolute && !str_has_prefix(location, c->base)) {
        return BERTH_EIO; /* credentials go to the destination only */
    }
    int n = snprintf(out, cap, "%s%s%s%cdigest=%s", absolute ? "" : c->base,
                     absolute || location[0] == '/' ? "" : "/", location,
                     strchr(location, '?') != NULL ? '&' : '?', digest);
    return n > 0 && (size_t)n < cap ? BERTH_OK : BERTH_ETOOBIG;
}

enum berth_err upstream_blob_push(struct upstream_client *c, const char *repo, const char *digest,
                                  const char *from_repo, int fd, uint64_t size, bool *mounted,
                                  char *err, size_t cap)
{
    *mounted = false;
    char path[1536];
    bool fits = from_repo != NULL
                    ? api_path(path, sizeof(path), err, cap,
                               "/v2/%s/blobs/uploads/?mount=%s&from=%s", repo, digest, from_repo)
                    : api_path(path, sizeof(path), err, cap, "/v2/%s/blobs/uploads/?mount=%s", repo,
                               digest);
    if (!fits) {
        return BERTH_EINVAL;
    }
    struct xfer x;
    memset(&x, 0, sizeof(x));
    buf_init(&x.body, TOKEN_MAX);
    x.method = "POST";
    long code = 0;
    enum berth_err rc = request(c, path, false, NULL, true, repo, &x, &code, err, cap);
    if (rc == BERTH_OK && code == 201) {
        *mounted = true;
        buf_fini(&x.body);
        return BERTH_OK;
    }
    if (rc == BERTH_OK && code != 202) {
        rc = status_rc(code == 201 ? 500 : code, "an upload start", err, cap);
    }
    char url[UPSTREAM_URL_MAX + 2048];
    if (rc == BERTH_OK && upload_url(c, x.location, digest, url, sizeof(url)) != BERTH_OK) {
        snprintf(err, cap, "the destination's upload location is unusable");
        rc = BERTH_EIO;
    }
    if (rc == BERTH_OK) {
        x.method = "PUT";
        x.mem = NULL;
        x.fd = fd;
        x.body_len = size;
        rc = request(c, url, false, NULL, false, repo, &x, &code, err, cap);
        if (rc == BERTH_OK && code != 201) {
            rc = status_rc(code == 202 || code == 200 ? 500 : code, "a blob upload", err, cap);
        }
    }
    buf_fini(&x.body);
    return rc;
}

enum berth_err upstream_put_manifest(struct upstream_client *c, const char *repo,
                                     const char *reference, const char *content_type,
                                     const char *body, size_t len, char *err, size_t cap)
{
    char path[1024];
    int n = snprintf(path, sizeof(path), "/v2/%s/manifests/%s", repo, reference);
    char ctype[300];
    int m = snprintf(ctype, sizeof(ctype), "Content-Type: %s", content_type);
    if (n < 0 || (size_t)n >= sizeof(path) || m < 0 || (size_t)m >= sizeof(ctype)) {
        snprintf(err, cap, "reference too long");
        return BERTH_EINVAL;
    }
    struct xfer x;
    memset(&x, 0, sizeof(x));
    buf_init(&x.body, TOKEN_MAX);
    x.method = "PUT";
    x.mem = body;
    x.body_len = len;
    long code = 0;
    enum berth_err rc = request(c, path, false, ctype, true, repo, &x, &code, err, cap);
    if (rc == BERTH_OK) {
        rc = status_rc(code, "a manifest upload", err, cap);
    }
    if (rc == BERTH_OK && code != 201) {
        snprintf(err, cap, "the destination answered %ld to a manifest upload", code);
        rc = BERTH_EIO;
    }
    if (rc != BERTH_OK && code >= 400 && code < 500 && code != 401 && code != 403 && code != 404 &&
        code != 429 && x.body.len > 0) {
        /* the destination refused the manifest: say what it said */
        size_t used = strlen(err);
        snprintf(err + used, cap - used, ": %.200s", buf_cstr(&x.body));
        rc = BERTH_EINVAL;
    }
    buf_fini(&x.body);
    return rc;
}
