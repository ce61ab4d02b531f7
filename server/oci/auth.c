/*
 * Authentication and authorization on the OCI API (/v2): the credentials a
 * request may carry (Basic AWS:<login token> as `docker login` sends it,
 * Basic <access key id>:<secret>, a download token in ?token= on a blob
 * GET, with auth.scheme bearer a token from /v2/token, and with none of
 * these a verified client certificate tls.client_principals maps to a key), the Basic or
 * Bearer challenge, and the ECR actions and token scope each route needs.
 * One indexed query per request (auth_lookup). Pool threads.
 */
#include "oci_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "common/base64.h"
#include "common/log.h"
#include "storage/store/store.h"
#include "common/str.h"
#include "common/timeutil.h"
#include "server/metrics/metrics.h"
#include "storage/upstream/cache.h"

/* Longest Basic credential: "AWS:" + a token, or a key id and a secret. */
#define BASIC_B64_MAX AUTHTOKEN_BASIC_MAX_LEN
/* Repositories examined for an anonymous mount (no `from`). */
#define MOUNT_CANDIDATES_MAX 64

void oci_auth_need(enum oci_route route, const char *method, bool is_monolithic, bool has_body,
                   struct oci_need *out)
{
    memset(out, 0, sizeof(*out));
    bool get = strcmp(method, "GET") == 0;
    bool head = strcmp(method, "HEAD") == 0;
    bool put = strcmp(method, "PUT") == 0;
    bool del = strcmp(method, "DELETE") == 0;
    bool patch = strcmp(method, "PATCH") == 0;
    bool post = strcmp(method, "POST") == 0;
    const char **a = out->actions;
    switch (route) {
    case OCI_ROUTE_NONE:
    case OCI_ROUTE_NAME_INVALID:
        out->none = true; /* the handler answers 404 / 400; nothing is revealed */
        return;
    case OCI_ROUTE_TOKEN:
        out->none = true; /* the token endpoint authenticates its callers itself */
        return;
    case OCI_ROUTE_BASE:
        out->login = true;
        return;
    case OCI_ROUTE_CATALOG: /* filtered per repository by the handler */
        out->login = true;
        out->scope = BEARER_CATALOG;
        return;
    case OCI_ROUTE_TAGS:
        a[out->count++] = "ecr:ListImages";
        out->scope = BEARER_PULL;
        break;
    case OCI_ROUTE_REFERRERS:
        a[out->count++] = "ecr:BatchGetImage";
        out->scope = BEARER_PULL;
        break;
    case OCI_ROUTE_MANIFEST:
        if (get || head) {
            a[out->count++] = "ecr:BatchGetImage";
            out->scope = BEARER_PULL;
        } else if (put) {
            a[out->count++] = "ecr:PutImage";
            out->scope = BEARER_PUSH;
        } else if (del) {
            a[out->count++] = "ecr:BatchDeleteImage";
            out->scope = BEARER_DELETE;
        } else {
            out->login = true; /* the handler answers 405 */
        }
        break;
    case OCI_ROUTE_BLOB:
        if (get) {
            a[out->count++] = "ecr:GetDownloadUrlForLayer";
            out->scope = BEARER_PULL;
        } else if (head) {
            /* whoever may check a layer or download it may see it exists */
            a[out->count++] = "ecr:BatchCheckLayerAvailability";
            a[out->count++] = "ecr:GetDownloadUrlForLayer";
            out->any = true;
            out->scope = BEARER_PULL;
        } else if (del) {
            a[out->count++] = "ecr:BatchDeleteImage";
            out->scope = BEARER_DELETE;
        } else {
            out->login = true;
        }
        break;
    case OCI_ROUTE_UPLOAD_START:
        if (post) {
            a[out->count++] = "ecr:InitiateLayerUpload";
            out->scope = BEARER_PUSH;
            if (is_monolithic) {
                a[out->count++] = "ecr:UploadLayerPart";
                a[out->count++] = "ecr:CompleteLayerUpload";
            }
        } else {
            out->login = true;
        }
        break;
    case OCI_ROUTE_UPLOAD:
        if (put) {
            a[out->count++] = "ecr:CompleteLayerUpload";
            out->scope = BEARER_PUSH;
            if (has_body) {
                a[out->count++] = "ecr:UploadLayerPart";
            }
        } else if (patch || get || del) {
            a[out->count++] = "ecr:UploadLayerPart";
            out->scope = BEARER_PUSH;
        } else {
            out->login = true;
        }
        break;
    }
}

enum cred_kind {
    CRED_NONE,          /* nothing presented */
    CRED_TOKEN,         /* a valid login or download token; akid is its principal */
    CRED_KEY,           /* Basic <access key id>:<secret>, to be checked */
    CRED_EXPIRED,       /* an authentic token past its expiry */
    CRED_INVALID,       /* something malformed, forged or unsupported */
    CRED_SESSION,       /* a live console session (GET and HEAD only); akid is its key */
    CRED_SESSION_ENDED, /* a console session cookie that is no longer valid */
    CRED_BEARER,        /* a valid bearer token; akid is its principal, "" when anonymous */
    CRED_BEARER_BAD,    /* a bearer token that is malformed, forged or expired */
    CRED_CERT,          /* nothing presented, over a connection whose verified client
                           certificate maps to akid (tls.client_principals) */
    CRED_ERROR,         /* a token that could not be checked (err): a server error */
};

struct cred {
    enum cred_kind kind;
    char akid[AUTH_AKID_MAX + 1];
    char secret[AUTH_SECRET_MAX + 1];
    const char *why;                     /* for the log when invalid */
    enum berth_err err;                  /* CRED_ERROR: why the check failed */
    char scope[AUTHTOKEN_SCOPE_MAX + 1]; /* CRED_BEARER: what the token grants */
    bool browser; /* CRED_NONE from an anonymous console session: a browser, which a
                     Basic challenge would make prompt for a password */
};

bool oci_auth_is_bearer(const struct request *req)
{
    return strcmp(req->srv->cfg->auth_scheme, "bearer") == 0;
}

/* public_url without a trailing '/'. */
static void base_url(const struct request *req, char *out, size_t cap)
{
    str_copy(out, cap, req->srv->public_url);
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '/') {
        out[--n] = '\0';
    }
}

/* A Host header fit to name this registry in a challenge: 1..255 of
 * [A-Za-z0-9.-:[]] (a name or address and a port). */
static bool host_ok(const char *host)
{
    size_t n = 0;
    for (const char *p = host; *p; p++, n++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr(".-:[]", c) != NULL) ||
            n >= 255) {
            return false;
        }
    }
    return n > 0;
}

void oci_auth_token_base(struct request *req, char *out, size_t cap)
{
    const char *host = http_header(req, "Host");
    if (req->srv->cfg->public_url[0] == '\0' && host != NULL && host_ok(host)) {
        snprintf(out, cap, "%s://%s", req->srv->tls != NULL ? "https" : "http", host);
        return;
    }
    base_url(req, out, cap);
}

void oci_auth_service(struct request *req, char *out, size_t cap)
{
    if (req->srv->cfg->auth_service[0] != '\0') {
        str_copy(out, cap, req->srv->cfg->auth_service);
        return;
    }
    char url[sizeof(req->srv->public_url) + 16];
    oci_auth_token_base(req, url, sizeof(url));
    const char *host = strstr(url, "://");
    host = host != NULL ? host + 3 : url;
    size_t n = strcspn(host, "/");
    if (n + 1 > cap) {
        n = cap - 1;
    }
    memcpy(out, host, n);
    out[n] = '\0';
}

void oci_auth_bearer_challenge(struct request *req, const char *scope, const char *error, char *out,
                               size_t cap)
{
    char url[sizeof(req->srv->public_url) + 16], service[256];
    oci_auth_token_base(req, url, sizeof(url));
    oci_auth_service(req, service, sizeof(service));
    int n = snprintf(out, cap, "Bearer realm=\"%s/v2/token\",service=\"%s\"", url, service);
    if (n > 0 && (size_t)n < cap && scope != NULL) {
        n += snprintf(out + n, cap - (size_t)n, ",scope=\"%s\"", scope);
    }
    if (n > 0 && (size_t)n < cap && error != NULL) {
        snprintf(out + n, cap - (size_t)n, ",error=\"%s\"", error);
    }
}

/* Whether a token check failed on the server's side (the MAC could not be
 * computed), not because of the token: then no verdict on it is known. */
static bool token_check_failed(enum berth_err rc, struct cred *c)
{
    if (rc == BERTH_OK || rc == BERTH_EDENIED || rc == BERTH_EINVAL) {
        return false;
    }
    c->kind = CRED_ERROR;
    c->err = rc;
    c->why = NULL;
    return true;
}

/* A user name and password: "AWS" and a login token, an access key id and
 * its secret, or both empty (anonymous). */
static void password_cred(struct auth *a, const char *user, const char *password, int64_t now,
                          struct cred *c)
{
    c->kind = CRED_INVALID;
    if (*user == '\0' && *password == '\0') {
        /* containers/image answers a Basic challenge with ":" when it
         * has no credentials: that is an anonymous request */
        c->kind = CRED_NONE;
        return;
    }
    if (strcmp(user, AUTHTOKEN_BASIC_USER) == 0) {
        struct authtoken tok;
        enum berth_err rc = auth_token_verify(a, password, AUTHTOKEN_LOGIN, NULL, NULL, now, &tok);
        if (token_check_failed(rc, c)) {
            return;
        }
        if (rc == BERTH_OK && str_copy(c->akid, sizeof(c->akid), tok.principal) == BERTH_OK) {
            c->kind = CRED_TOKEN;
        } else if (rc == BERTH_EDENIED) {
            c->kind = CRED_EXPIRED;
        } else {
            c->why = "bad_token";
        }
        return;
    }
    if (!auth_akid_valid(user) || strlen(password) > AUTH_SECRET_MAX) {
        c->why = "bad_key_credential";
        return;
    }
    str_copy(c->akid, sizeof(c->akid), user);
    str_copy(c->secret, sizeof(c->secret), password);
    c->kind = CRED_KEY;
}

/* Decode "Basic <b64>" into user and password (NUL-terminated, in raw of
 * BASIC_B64_MAX / 4 * 3 + 1 bytes). False when malformed. */
static bool basic_split(const char *b64, uint8_t *raw, const char **user, const char **password)
{
    size_t len = strlen(b64);
    while (len > 0 && (b64[len - 1] == ' ' || b64[len - 1] == '\t')) {
        len--;
    }
    size_t raw_len = 0;
    if (len == 0 || len > BASIC_B64_MAX || base64_decode(b64, len, raw, &raw_len) != BERTH_OK ||
        memchr(raw, '\0', raw_len) != NULL) {
        return false;
    }
    raw[raw_len] = '\0';
    char *colon = strchr((char *)raw, ':');
    if (colon == NULL) {
        return false;
    }
    *colon = '\0';
    *user = (const char *)raw;
    *password = colon + 1;
    return true;
}

/* "Basic <b64>" of "AWS:<token>" or "<akid>:<secret>". */
static void parse_basic(struct auth *a, const char *b64, int64_t now, struct cred *c)
{
    uint8_t raw[BASIC_B64_MAX / 4 * 3 + 1];
    const char *user, *password;
    if (basic_split(b64, raw, &user, &password)) {
        password_cred(a, user, password, now, c);
    } else {
        c->kind = CRED_INVALID;
        c->why = "malformed_basic";
    }
    auth_wipe(raw, sizeof(raw));
}

enum oci_login oci_auth_login(struct request *req, struct meta *m, const char *user,
                              const char *password, struct auth_identity *id, const char **why)
{
    struct auth *a = req->srv->auth;
    struct cred c;
    memset(&c, 0, sizeof(c));
    enum oci_login out = OCI_LOGIN_BAD;
    *why = NULL;
    if (user == NULL) {
        const char *h = http_header(req, "Authorization");
        while (h != NULL && *h == ' ') {
            h++;
        }
        if (h == NULL) {
            c.kind = CRED_NONE;
        } else if (strncasecmp(h, "Basic ", 6) != 0) {
            c.kind = CRED_INVALID;
            c.why = "unsupported_scheme";
        } else {
            parse_basic(a, h + 6 + strspn(h + 6, " "), time_now_ms() / 1000, &c);
        }
    } else {
        password_cred(a, user, password, time_now_ms() / 1000, &c);
    }
    bool named = c.kind == CRED_TOKEN || c.kind == CRED_KEY;
    if (c.kind == CRED_ERROR) {
        log_error("event=token_check_failed err=%s", berth_strerror(c.err));
        enum berth_err err = c.err;
        auth_wipe(&c, sizeof(c));
        return oci_err_transient(err) ? OCI_LOGIN_RETRY : OCI_LOGIN_ERROR;
    }
    if (c.kind == CRED_EXPIRED) {
        *why = "token_expired";
        auth_wipe(&c, sizeof(c));
        return OCI_LOGIN_EXPIRED;
    }
    if (c.kind != CRED_NONE && !named) {
        *why = c.why != NULL ? c.why : "invalid_credentials";
        auth_wipe(&c, sizeof(c));
        return OCI_LOGIN_BAD;
    }
    struct auth_lookup lk;
    enum berth_err rc = auth_lookup(a, m, named ? c.akid : NULL, NULL, &lk);
    if (rc != BERTH_OK) {
        log_error("event=auth_lookup_failed err=%s endpoint=token", berth_strerror(rc));
        auth_wipe(&c, sizeof(c));
        return oci_err_transient(rc) ? OCI_LOGIN_RETRY : OCI_LOGIN_ERROR;
    }
    if (!named) {
        out = OCI_LOGIN_ANONYMOUS;
    } else if (!lk.key_found) {
        *why = "unknown_key";
    } else if (c.kind == CRED_KEY &&
               !str_ct_equal(c.secret, strlen(c.secret), lk.secret, lk.secret_len)) {
        *why = "bad_secret";
    } else {
        out = OCI_LOGIN_OK;
    }
    id->enforced = lk.enforced;
    id->anonymous = true;
    if (out == OCI_LOGIN_OK) {
        auth_lookup_take_identity(&lk, id);
    } else if (named) {
        /* the key a refused login named, for the log (as on /v2) */
        str_copy(id->access_key_id, sizeof(id->access_key_id), c.akid);
    }
    auth_lookup_fini(a, &lk);
    auth_wipe(&c, sizeof(c));
    return out;
}

/* "Bearer <token>" (auth.scheme bearer only). */
static void parse_bearer(struct auth *a, const char *token, int64_t now, struct cred *c)
{
    size_t len = strcspn(token, " \t");
    struct authtoken tok;
    char copy[AUTHTOKEN_BEARER_MAX_LEN + 1];
    c->kind = CRED_BEARER_BAD;
    c->why = "bad_bearer_token";
    if (len == 0 || len > AUTHTOKEN_BEARER_MAX_LEN || token[len + strspn(token + len, " \t")]) {
        return;
    }
    memcpy(copy, token, len);
    copy[len] = '\0';
    enum berth_err rc = auth_token_verify(a, copy, AUTHTOKEN_BEARER, NULL, NULL, now, &tok);
    if (token_check_failed(rc, c)) {
        /* nothing more */
    } else if (rc == BERTH_EDENIED) {
        c->why = "bearer_token_expired";
    } else if (rc == BERTH_OK) {
        bool anonymous = strcmp(tok.principal, AUTHTOKEN_ANONYMOUS) == 0;
        if (anonymous || str_copy(c->akid, sizeof(c->akid), tok.principal) == BERTH_OK) {
            c->kind = CRED_BEARER;
            c->why = NULL;
            str_copy(c->scope, sizeof(c->scope), tok.scope);
        }
    }
    auth_wipe(copy, sizeof(copy));
    auth_wipe(&tok, sizeof(tok));
}

static void parse_credentials(struct request *req, enum oci_route route, struct cred *c)
{
    struct auth *a = req->srv->auth;
    int64_t now = time_now_ms() / 1000;
    memset(c, 0, sizeof(*c));
    const char *token = http_query(req, "token");
    if (route == OCI_ROUTE_BLOB && token != NULL && (oci_method_is(req, "GET") || req->is_head)) {
        struct authtoken tok;
        enum berth_err rc =
            auth_token_verify(a, token, AUTHTOKEN_DOWNLOAD, req->repo, req->ref, now, &tok);
        if (token_check_failed(rc, c)) {
            return;
        }
        if (rc == BERTH_OK && str_copy(c->akid, sizeof(c->akid), tok.principal) == BERTH_OK) {
            c->kind = CRED_TOKEN;
        } else if (rc == BERTH_EDENIED) {
            c->kind = CRED_EXPIRED;
        } else {
            c->kind = CRED_INVALID;
            c->why = "bad_download_token";
        }
        return;
    }
    const char *h = http_header(req, "Authorization");
    if (h == NULL) {
        /* The web console reads manifests and blobs with its session
         * cookie; a cookie never authorizes a change on /v2 (no CSRF
         * token here), so other methods stay anonymous. */
        if (oci_method_is(req, "GET") || req->is_head) {
            struct auth_session s;
            enum auth_session_state state = auth_session_check(
                auth_sessions(a), http_header(req, "Cookie"), false, NULL, now, &s);
            if (state == AUTH_SESSION_OK && s.access_key_id[0] == '\0') {
                /* an anonymous console session ("anonymous": true): the
                 * anonymous caller, as without a cookie */
                if (!req->srv->cfg->anonymous) {
                    c->kind = CRED_SESSION_ENDED;
                } else {
                    c->browser = true;
                }
            } else if (state == AUTH_SESSION_OK) {
                c->kind = CRED_SESSION;
                str_copy(c->akid, sizeof(c->akid), s.access_key_id);
            } else if (state == AUTH_SESSION_UNAVAILABLE) {
                /* the session could not be read: a server error, never
                 * a sign-out */
                c->kind = CRED_ERROR;
                c->err = BERTH_EUNAVAILABLE;
            } else if (state != AUTH_SESSION_NONE) {
                c->kind = CRED_SESSION_ENDED;
            }
            auth_wipe(&s, sizeof(s));
        }
        /* no credential: a client certificate mapped to a key speaks for
         * the connection (checked inside the TLS handshake) */
        if (c->kind == CRED_NONE && req->cert_principal[0] != '\0') {
            c->kind = CRED_CERT;
            str_copy(c->akid, sizeof(c->akid), req->cert_principal);
        }
        return;
    }
    while (*h == ' ') {
        h++;
    }
    if (strncasecmp(h, "Bearer ", 7) == 0 && oci_auth_is_bearer(req)) {
        h += 7;
        while (*h == ' ') {
            h++;
        }
        parse_bearer(a, h, now, c);
        return;
    }
    if (strncasecmp(h, "Basic ", 6) != 0) {
        c->kind = CRED_INVALID;
        c->why = "unsupported_scheme";
        return;
    }
    h += 6;
    while (*h == ' ') {
        h++;
    }
    parse_basic(a, h, now, c);
}

void oci_auth_challenge(struct request *req, const char *message, const char *scope,
                        const char *error)
{
    char value[sizeof(req->srv->public_url) + NAMES_REPO_MAX + 384];
    if (oci_auth_is_bearer(req)) {
        oci_auth_bearer_challenge(req, scope, error, value, sizeof(value));
    } else {
        char realm[sizeof(req->srv->public_url)];
        base_url(req, realm, sizeof(realm));
        snprintf(value, sizeof(value), "Basic realm=\"%s/\",service=\"ecr.amazonaws.com\"", realm);
    }
    json_t *doc =
        json_pack("{s:[{s:s, s:s}]}", "errors", "code", "UNAUTHORIZED", "message", message);
    oci_send_doc(req, 401, doc, "WWW-Authenticate", value);
}

static void log_refusal(struct request *req, const char *why)
{
    metrics_auth_failure(why);
    char shown[AUTH_AKID_MAX + 8];
    log_info("event=auth_refused reason=%s key=%s", why,
             log_value(req->ident.access_key_id[0] ? req->ident.access_key_id : "-", shown,
                       sizeof(shown)));
}

/* The scope a Bearer challenge asks for on this request (as distribution
 * does, a write asks for pull and push). */
static const char *challenge_scope(const struct oci_need *need, const char *repo, char *out,
                                   size_t cap)
{
    if (need->scope == 0) {
        return NULL;
    }
    if (need->scope == BEARER_CATALOG) {
        bearer_scope_text(NULL, BEARER_CATALOG, out, cap);
        return out;
    }
    if (repo == NULL) {
        return NULL;
    }
    unsigned acts = need->scope & BEARER_PUSH ? (BEARER_PULL | BEARER_PUSH) : need->scope;
    bearer_scope_text(repo, acts, out, cap);
    return out;
}

bool oci_authorize(struct request *req, enum oci_route route)
{
    struct oci_need need;
    bool monolithic = route == OCI_ROUTE_UPLOAD_START && http_query(req, "digest") != NULL &&
                      http_query(req, "mount") == NULL;
    oci_auth_need(route, req->method, monolithic, http_has_body(req), &need);
    if (need.none) {
        return true;
    }
    struct auth *a = req->srv->auth;
    struct meta *m = store_meta(req->srv->store);
    if (m == NULL) {
        /* no database connection (PostgreSQL down, no descriptor): retry */
        oci_server_error(req, BERTH_EUNAVAILABLE, "db_connection_unavailable");
        return false;
    }
    struct cred c;
    parse_credentials(req, route, &c);
    if (c.kind == CRED_ERROR) {
        /* a 401 would tell a client with good credentials that they are bad */
        enum berth_err err = c.err;
        auth_wipe(&c, sizeof(c));
        oci_server_error(req, err, "token_check_failed");
        return false;
    }
    const char *repo = req->repo[0] != '\0' && route != OCI_ROUTE_BASE && route != OCI_ROUTE_CATALOG
                           ? req->repo
                           : NULL;
    char scope_buf[NAMES_REPO_MAX + 64];
    const char *scope = challenge_scope(&need, repo, scope_buf, sizeof(scope_buf));
    bool named = c.kind == CRED_TOKEN || c.kind == CRED_KEY || c.kind == CRED_SESSION ||
                 c.kind == CRED_CERT || (c.kind == CRED_BEARER && c.akid[0] != '\0');
    struct auth_lookup lk;
    enum berth_err rc = auth_lookup(a, m, named ? c.akid : NULL, repo, &lk);
    if (rc != BERTH_OK) {
        auth_wipe(&c, sizeof(c));
        oci_server_error(req, rc, "auth_lookup_failed");
        return false;
    }
    bool ok = false;
    req->ident.enforced = lk.enforced;
    if (!lk.enforced) {
        /* no credentials configured: the loopback-only anonymous mode */
        ok = http_host_open_ok(req);
        if (!ok) {
            log_refusal(req, "open_mode_host");
            oci_error(req, 403, "DENIED", HTTP_OPEN_HOST_MESSAGE, NULL);
        }
        goto out;
    }
    switch (c.kind) {
    case CRED_NONE:
    case CRED_ERROR: /* answered above */
        break;
    case CRED_EXPIRED:
        log_refusal(req, "token_expired");
        oci_error(req, 403, "DENIED", AUTHTOKEN_EXPIRED_MESSAGE, NULL);
        goto out;
    case CRED_INVALID:
        log_refusal(req, c.why);
        oci_auth_challenge(req, "invalid credentials", scope, NULL);
        goto out;
    case CRED_BEARER_BAD:
        log_refusal(req, c.why);
        oci_auth_challenge(req,
                           strcmp(c.why, "bearer_token_expired") == 0
                               ? "the bearer token has expired"
                               : "invalid bearer token",
                           scope, "invalid_token");
        goto out;
    case CRED_SESSION_ENDED:
        /* a 403, not a Basic challenge the browser would prompt for */
        log_refusal(req, "session_invalid");
        oci_error(req, 403, "DENIED", "the console session has expired or was signed out", NULL);
        goto out;
    case CRED_BEARER:
        if (c.akid[0] == '\0') {
            /* an anonymous token: what repository policies grant everyone */
            req->ident.bearer = true;
            str_copy(req->ident.bearer_scope, sizeof(req->ident.bearer_scope), c.scope);
            break;
        }
        /* fall through */
    case CRED_SESSION:
    case CRED_TOKEN:
    case CRED_KEY:
    case CRED_CERT:
        str_copy(req->ident.access_key_id, sizeof(req->ident.access_key_id), c.akid);
        if (!lk.key_found) {
            log_refusal(req, "unknown_key");
            if (c.kind == CRED_BEARER) {
                oci_auth_challenge(req, "invalid bearer token", scope, "invalid_token");
            } else {
                oci_auth_challenge(req, "invalid credentials", scope, NULL);
            }
            goto out;
        }
        if (c.kind == CRED_KEY &&
            !str_ct_equal(c.secret, strlen(c.secret), lk.secret, lk.secret_len)) {
            log_refusal(req, "bad_secret");
            oci_auth_challenge(req, "invalid credentials", scope, NULL);
            goto out;
        }
        req->ident.access_key_id[0] = '\0';
        auth_lookup_take_identity(&lk, &req->ident);
        req->ident.console = c.kind == CRED_SESSION;
        if (c.kind == CRED_BEARER) {
            req->ident.bearer = true;
            str_copy(req->ident.bearer_scope, sizeof(req->ident.bearer_scope), c.scope);
        }
        break;
    }
    /* A bearer token is good only for what it grants, whatever else the
     * caller may do: a 401 tells the client to fetch a token for more. */
    if (req->ident.bearer &&
        !bearer_scope_allows(req->ident.bearer_scope, need.scope == BEARER_CATALOG ? NULL : repo,
                             need.scope)) {
        metrics_auth_failure("insufficient_scope");
        oci_auth_challenge(req, "the bearer token does not grant this access", scope,
                           "insufficient_scope");
        goto out;
    }
    if (need.login) {
        ok = !req->ident.anonymous || req->ident.bearer;
        if (!ok) {
            oci_auth_challenge(req, "authentication required", scope, NULL);
        }
        goto out;
    }
    char denied[AUTHZ_DENIED_MESSAGE_MAX] = "";
    bool any_allowed = false, all_allowed = true;
    for (size_t i = 0; i < need.count; i++) {
        char *msg = denied[0] == '\0' ? denied : NULL;
        bool allowed = auth_decide(a, &req->ident, lk.repo_policy, lk.registry_policy,
                                   need.actions[i], repo, msg, msg != NULL ? sizeof(denied) : 0);
        any_allowed = any_allowed || allowed;
        all_allowed = all_allowed && allowed;
    }
    ok = need.any ? any_allowed : all_allowed;
    if (ok) {
        goto out;
    }
    if (req->ident.anonymous && !req->ident.bearer && c.browser) {
        /* the console's anonymous visitor: a 403, as for a signed-in
         * one, never a challenge the browser would prompt for */
        metrics_auth_failure("denied");
        oci_error(req, 403, "DENIED", denied, NULL);
    } else if (req->ident.anonymous && !req->ident.bearer) {
        metrics_auth_failure("missing_credentials");
        oci_auth_challenge(req, "authentication required", scope, NULL);
    } else {
        char shown[AUTHZ_DENIED_MESSAGE_MAX + 16];
        metrics_auth_failure("denied");
        log_info("event=access_denied msg=%s", log_value(denied, shown, sizeof(shown)));
        if (oci_auth_is_bearer(req)) {
            char value[sizeof(req->srv->public_url) + NAMES_REPO_MAX + 384];
            oci_auth_bearer_challenge(req, scope, "insufficient_scope", value, sizeof(value));
            json_t *doc =
                json_pack("{s:[{s:s, s:s}]}", "errors", "code", "DENIED", "message", denied);
            oci_send_doc(req, 403, doc, "WWW-Authenticate", value);
        } else {
            oci_error(req, 403, "DENIED", denied, NULL);
        }
    }
out:
    auth_lookup_fini(a, &lk);
    auth_wipe(&c, sizeof(c));
    return ok;
}

/* Pull, as a mount source needs it: read the blob and the images. *ok
 * says whether the caller may; an error when a policy could not be read. */
static enum berth_err may_pull(struct request *req, struct meta *m, const char *repo, bool *ok)
{
    static const char *const pull[] = {"ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"};
    *ok = false;
    /* a bearer token must grant pull on the source too (the client asks
     * for it with the mount's scopes) */
    if (req->ident.bearer && !bearer_scope_allows(req->ident.bearer_scope, repo, BEARER_PULL)) {
        return BERTH_OK;
    }
    for (size_t i = 0; i < sizeof(pull) / sizeof(pull[0]); i++) {
        bool allowed = false;
        enum berth_err rc =
            auth_allowed(req->srv->auth, m, &req->ident, pull[i], repo, &allowed, NULL, 0);
        if (rc != BERTH_OK || !allowed) {
            return rc;
        }
    }
    *ok = true;
    return BERTH_OK;
}

struct mount_ctx {
    struct request *req;
    struct meta *m;
    char *out;
    size_t cap;
    bool found;
    enum berth_err rc;
};

static int mount_candidate(void *arg, const char *name)
{
    struct mount_ctx *c = arg;
    bool ok = false;
    if (strcmp(name, c->req->repo) == 0) {
        return 0;
    }
    c->rc = may_pull(c->req, c->m, name, &ok);
    if (c->rc != BERTH_OK) {
        return 1;
    }
    if (!ok) {
        return 0;
    }
    c->found = str_copy(c->out, c->cap, name) == BERTH_OK;
    return c->found ? 1 : 0;
}

enum berth_err oci_auth_mount_source(struct request *req, const char *from, const struct digest *d,
                                     char *buf, size_t cap, bool *mountable, const char **source)
{
    *mountable = false;
    *source = NULL;
    if (!req->ident.enforced) {
        *mountable = true;
        *source = from; /* NULL: any repository */
        return BERTH_OK;
    }
    struct meta *m = store_meta(req->srv->store);
    if (m == NULL) {
        return BERTH_EUNAVAILABLE;
    }
    if (from != NULL) {
        enum berth_err rc = may_pull(req, m, from, mountable);
        *source = *mountable ? from : NULL;
        return rc;
    }
    struct mount_ctx c = {.req = req, .m = m, .out = buf, .cap = cap, .found = false};
    enum berth_err rc = meta_blob_repos(m, d->str, MOUNT_CANDIDATES_MAX, mount_candidate, &c);
    if (rc == BERTH_OK) {
        rc = c.rc;
    }
    if (rc != BERTH_OK || !c.found) {
        return rc;
    }
    *mountable = true;
    *source = buf;
    return BERTH_OK;
}

enum berth_err oci_auth_may_list(struct request *req, const char *repo, bool *allowed)
{
    *allowed = false;
    if (!req->ident.enforced) {
        *allowed = true;
        return BERTH_OK;
    }
    struct meta *m = store_meta(req->srv->store);
    if (m == NULL) {
        return BERTH_EUNAVAILABLE;
    }
    return auth_allowed(req->srv->auth, m, &req->ident, "ecr:DescribeRepositories", repo, allowed,
                        NULL, 0);
}

bool oci_auth_may_import(void *arg, char *err, size_t cap)
{
    struct oci_import_check *c = arg;
    struct request *req = c->req;
    if (!req->ident.enforced) {
        return true;
    }
    struct meta *m = store_meta(req->srv->store);
    bool allowed = false;
    char denied[AUTHZ_DENIED_MESSAGE_MAX] = "";
    enum berth_err rc =
        m == NULL ? BERTH_EUNAVAILABLE
                  : auth_allowed(req->srv->auth, m, &req->ident, "ecr:BatchImportUpstreamImage",
                                 req->repo, &allowed, denied, sizeof(denied));
    if (rc != BERTH_OK) {
        snprintf(err, cap, "the policies could not be read (%s)", berth_strerror(rc));
    } else if (!allowed) {
        snprintf(err, cap, "%s", denied);
    }
    c->refused = rc != BERTH_OK || !allowed;
    return !c->refused;
}

static void worker_waits(void *arg, bool waiting)
{
    struct oci_import_check *c = arg;
    http_worker_waits(c->req, waiting);
}

struct upstream_caller oci_upstream_caller(struct oci_import_check *check)
{
    return (struct upstream_caller){oci_auth_may_import, worker_waits, check};
}

bool oci_replication_repo(struct request *req)
{
    const char *source = http_header(req, OCI_REPLICATION_HEADER);
    if (source == NULL) {
        return true;
    }
    struct meta *m = store_meta(req->srv->store);
    bool allowed = !req->ident.enforced;
    enum berth_err rc = m == NULL ? BERTH_EUNAVAILABLE : BERTH_OK;
    if (m != NULL && req->ident.enforced) {
        rc = auth_allowed(req->srv->auth, m, &req->ident, "ecr:ReplicateImage", req->repo, &allowed,
                          NULL, 0);
    }
    if (rc != BERTH_OK) {
        /* not known whether this is a replica's push: no answer yet */
        oci_server_error(req, rc, "auth_policy_failed");
        return false;
    }
    if (!allowed) {
        return true; /* an ordinary push, then */
    }
    struct meta_repo repo;
    struct registry_status s;
    if (registry_repo_for_replication(req->srv->store, req->repo, &repo, &s) != BERTH_OK) {
        oci_fail(req, &s);
        return false;
    }
    return true;
}
