/*
 * The web console's HTTP side: static files from the embedded table with
 * a strict Content-Security-Policy, and the session endpoints under
 * /ui/api/ (JSON). Pool threads; the session table is server/auth's.
 *
 *   GET  /                      (Accept: text/html) 303 to /ui/
 *   GET  /ui/, /ui/<file>       the application
 *   GET  /ui/api/session        the session's state and CSRF token
 *   POST /ui/api/session        sign in: {"accessKeyId", "secretAccessKey"}
 *   DELETE /ui/api/session      sign out (X-CSRF-Token)
 *   GET  /ui/api/permissions?repository=NAME   what the key may do there
 *                               (without repository: at the registry level)
 *   GET  /ui/api/repositories?q=&sort=&order=&offset=&limit=
 *                               one page of the repositories the key may
 *                               describe, searched and sorted here
 *   GET  /ui/api/registry       the registry page: storage by repository;
 *                               for a registry reader (ecr:DescribeRegistry)
 *                               also the registry's totals, the archive tier,
 *                               garbage collection, the vulnerability
 *                               database and scan queue, jobs, activity,
 *                               version and configuration
 *   POST /ui/api/gc             start a garbage collection pass (a key
 *                               allowed every ECR action; X-CSRF-Token)
 */
#include "server/console/console.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "server/console/assets.h"
#include "common/log.h"
#include "scan/vulndb/vulndb.h"
#include "scan/engine/scan_dbsync.h"
#include "storage/meta/meta_vulndb.h"
#include "server/jobs/jobs.h"
#include "server/metrics/metrics.h"
#include "storage/meta/meta_activity.h"
#include "storage/meta/meta_gc.h"
#include "storage/meta/meta_scan.h"
#include "storage/spec/names.h"
#include "storage/store/store.h"
#include "storage/store/tier.h"
#include "common/str.h"
#include "common/timeutil.h"

#define CONSOLE_BODY_MAX 4096

/* No inline script or style, nothing from another origin, never framed. */
static const char CSP[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
                          "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                          "form-action 'self'; frame-ancestors 'none'";

/* The actions whose buttons the console shows or hides per repository. */
static const char *const REPO_ACTIONS[] = {
    "ecr:BatchDeleteImage",       "ecr:PutImage",
    "ecr:DeleteRepository",       "ecr:SetRepositoryPolicy",
    "ecr:DeleteRepositoryPolicy", "ecr:PutLifecyclePolicy",
    "ecr:DeleteLifecyclePolicy",  "ecr:StartLifecyclePolicyPreview",
    "ecr:PutImageTagMutability",  "ecr:PutImageScanningConfiguration",
    "ecr:StartImageScan",         "ecr:TagResource",
    "ecr:UntagResource",
};

/* ... and at the registry level (no repository named). */
static const char *const REGISTRY_ACTIONS[] = {"ecr:CreateRepository"};

/* The repository list's page size bounds. */
#define LIST_LIMIT_DEFAULT 25
#define LIST_LIMIT_MAX 100

/* The list's sort keys, in enum meta_repo_sort's order. */
static const char *const SORT_KEYS[META_REPO_SORT_COUNT] = {"name", "images", "tags",
                                                            "size", "pushed", "pulled"};

static void add_security(struct http_response *resp)
{
    http_add(resp, "Content-Security-Policy", CSP);
    http_add(resp, "X-Frame-Options", "DENY");
    http_add(resp, "X-Content-Type-Options", "nosniff");
    http_add(resp, "Referrer-Policy", "no-referrer");
    http_add(resp, "Cross-Origin-Opener-Policy", "same-origin");
    http_add(resp, "Cross-Origin-Resource-Policy", "same-origin");
}

/* Send doc (taken) as JSON that is never cached, with an optional header
 * (value NULL: none). */
static void send_doc_with(struct request *req, unsigned status, json_t *doc, const char *header,
                          const char *value)
{
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (text == NULL) {
        http_send(req, 500, NULL, 0);
        return;
    }
    struct http_response *resp = http_resp_bytes(text, strlen(text));
    add_security(resp);
    http_add(resp, "Cache-Control", "no-store");
    http_add(resp, header, value);
    http_send_json(req, status, "application/json", text, resp);
    free(text);
}

/* Send doc (taken) as JSON that is never cached, with an optional
 * Set-Cookie. */
static void send_doc(struct request *req, unsigned status, json_t *doc, const char *cookie)
{
    send_doc_with(req, status, doc, "Set-Cookie", cookie);
}

static void fail(struct request *req, unsigned status, const char *code, const char *message)
{
    send_doc(req, status, json_pack("{s:s, s:s}", "error", code, "message", message), NULL);
}

/* A check or read that could not run (what: "auth" for a key or policy
 * lookup): the server's failure, never a 401/403 or a shorter list. One
 * the client may retry (no descriptor or memory left, the database busy or
 * unreachable) is 503 with Retry-After, as /v2 answers; anything else 500. */
static void server_failed(struct request *req, enum berth_err rc, const char *what,
                          const char *message)
{
    log_error("event=console_%s_failed err=%s", what, berth_strerror(rc));
    bool transient =
        rc == BERTH_ENOFD || rc == BERTH_ENOMEM || rc == BERTH_EBUSY || rc == BERTH_EUNAVAILABLE;
    char text[256];
    snprintf(text, sizeof(text), "%s%s", message, transient ? "; retry later" : "");
    send_doc_with(req, transient ? 503 : 500,
                  json_pack("{s:s, s:s}", "error", "ServerError", "message", text),
                  transient ? "Retry-After" : NULL, transient ? "1" : NULL);
}

static void console_error(struct request *req, unsigned status, const char *code,
                          const char *message)
{
    fail(req, status, code, message);
}

static void redirect(struct request *req, unsigned status, const char *location)
{
    struct http_response *resp = http_resp_empty();
    add_security(resp);
    http_add(resp, "Location", location);
    http_add(resp, "Cache-Control", "no-store");
    http_send(req, status, resp, 0);
}

static const char *content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".json", "application/json"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot != NULL && i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcmp(dot, types[i].ext) == 0) {
            return types[i].type;
        }
    }
    return "application/octet-stream";
}

/* An embedded file: revalidated on every use (the names carry no
 * version), answered 304 when the browser's copy is current. */
static void serve_asset(struct request *req, const char *name)
{
    const struct console_asset *a = NULL;
    for (size_t i = 0; i < console_asset_count; i++) {
        if (strcmp(console_assets[i].name, name) == 0) {
            a = &console_assets[i];
        }
    }
    if (a == NULL) {
        fail(req, 404, "NotFound", "no such page");
        return;
    }
    if (strcmp(req->method, "GET") != 0 && !req->is_head) {
        fail(req, 405, "MethodNotAllowed", "the console's files are read with GET");
        return;
    }
    const char *inm = http_header(req, "If-None-Match");
    bool fresh = inm != NULL && strstr(inm, a->etag) != NULL;
    struct http_response *resp =
        fresh ? http_resp_empty()
              : (req->is_head ? http_resp_head(a->len) : http_resp_bytes(a->data, a->len));
    add_security(resp);
    http_add(resp, "Content-Type", content_type(a->name));
    http_add(resp, "Cache-Control", "no-cache");
    http_add(resp, "ETag", a->etag);
    http_send(req, fresh ? 304 : 200, resp, fresh ? 0 : a->len);
}

/* ---- sessions ---- */

static struct meta *meta_or_fail(struct request *req)
{
    struct meta *m = store_meta(req->srv->store);
    if (m == NULL) {
        /* no connection (no descriptor left, PostgreSQL down) */
        server_failed(req, BERTH_EUNAVAILABLE, "db", "database unavailable");
    }
    return m;
}

static void session_cookie(struct request *req, const char *token, int64_t max_age, char *out,
                           size_t cap)
{
    /* served over TLS, here or by a proxy in front (public_url https) */
    bool tls = req->srv->tls != NULL || strncasecmp(req->srv->public_url, "https://", 8) == 0;
    snprintf(out, cap, "%s=%s; Path=/; Max-Age=%lld; HttpOnly; SameSite=Strict%s",
             AUTH_SESSION_COOKIE, token, (long long)max_age, tls ? "; Secure" : "");
}

/* The key a live session stands for, or NULL: none, or anonymous (""). */
static const char *session_key(enum auth_session_state state, const struct auth_session *s)
{
    return state == AUTH_SESSION_OK && s->access_key_id[0] != '\0' ? s->access_key_id : NULL;
}

/* Whether anonymous callers may browse the console once keys exist. */
static bool anonymous_allowed(const struct request *req, bool enforced)
{
    return enforced && req->srv->cfg->anonymous;
}

static void csrf_refused(struct request *req)
{
    fail(req, 403, "InvalidCsrfToken",
         "The request carries no valid " AUTH_SESSION_CSRF_HEADER " header");
}

/* The caller's session, from the request's Cookie (its CSRF token checked
 * when csrf is set), and the lookup of the key it stands for with repo's
 * policy (NULL: none). On true, *s, *state and *lk are filled (wipe *s
 * with auth_wipe, release *lk with auth_lookup_fini); on false nothing is
 * left to wipe or release and the request was answered: 403 for a wrong
 * CSRF token, 503 when the sessions cannot be read, 5xx when the lookup
 * failed. */
static bool session_lookup(struct request *req, struct meta *m, bool csrf, const char *repo,
                           struct auth_session *s, enum auth_session_state *state,
                           struct auth_lookup *lk)
{
    struct auth *a = req->srv->auth;
    *state =
        auth_session_check(auth_sessions(a), http_header(req, "Cookie"), csrf,
                           http_header(req, AUTH_SESSION_CSRF_HEADER), time_now_ms() / 1000, s);
    if (*state == AUTH_SESSION_CSRF) {
        auth_wipe(s, sizeof(*s));
        csrf_refused(req);
        return false;
    }
    if (*state == AUTH_SESSION_UNAVAILABLE) {
        server_failed(req, BERTH_EUNAVAILABLE, "db", "database unavailable");
        return false;
    }
    enum berth_err rc = auth_lookup(a, m, session_key(*state, s), repo, lk);
    if (rc != BERTH_OK) {
        auth_wipe(s, sizeof(*s));
        server_failed(req, rc, "auth", "authorization could not be checked");
        return false;
    }
    return true;
}

/* The identity a lookup gives a caller: its key's, or anonymous (release
 * it with auth_identity_clear). */
static void lookup_identity(struct auth_lookup *lk, struct auth_identity *id)
{
    memset(id, 0, sizeof(*id));
    id->anonymous = true;
    if (lk->key_found) {
        auth_lookup_take_identity(lk, id);
    }
    id->enforced = lk->enforced;
}

/* The session document: signed in or not (or browsing anonymously, as
 * "anonymous": true allows), and whether the server needs a sign-in. */
static json_t *session_doc(bool enforced, bool anonymous_ok, const struct auth_session *s,
                           const char *principal)
{
    bool anonymous = s != NULL && s->access_key_id[0] == '\0';
    json_t *doc =
        json_pack("{s:b, s:b, s:b, s:b}", "signedIn", s != NULL && !anonymous, "authEnforced",
                  enforced, "anonymousAllowed", anonymous_ok, "anonymous", anonymous);
    if (doc != NULL && s != NULL) {
        if (!anonymous) {
            json_object_set_new(doc, "accessKeyId", json_string(s->access_key_id));
            json_object_set_new(doc, "principal", json_string(principal));
        }
        json_object_set_new(doc, "csrfToken", json_string(s->csrf));
        json_object_set_new(doc, "expiresAt", json_integer(s->expires));
    }
    return doc;
}

static void session_get(struct request *req)
{
    struct auth *a = req->srv->auth;
    struct meta *m = meta_or_fail(req);
    if (m == NULL) {
        return;
    }
    struct auth_session s;
    enum auth_session_state state;
    struct auth_lookup lk;
    if (!session_lookup(req, m, false, NULL, &s, &state, &lk)) {
        return;
    }
    bool anonymous_ok = anonymous_allowed(req, lk.enforced);
    bool live =
        state == AUTH_SESSION_OK && (lk.key_found || (s.access_key_id[0] == '\0' && anonymous_ok));
    send_doc(req, 200,
             session_doc(lk.enforced, anonymous_ok, live ? &s : NULL, lk.id.principal_arn), NULL);
    auth_lookup_fini(a, &lk);
    auth_wipe(&s, sizeof(s));
}

/* POST /ui/api/session {"anonymous": true}: a session with no key, to
 * browse what the policies grant everyone; only with "anonymous": true. */
static void session_create_anonymous(struct request *req, bool enforced)
{
    if (!anonymous_allowed(req, enforced)) {
        fail(req, 403, "AnonymousNotAllowed",
             "This server does not allow anonymous browsing: sign in with an access key.");
        return;
    }
    int64_t now = time_now_ms() / 1000;
    char token[AUTH_SESSION_TOKEN_LEN + 1], cookie[256];
    struct auth_session s;
    enum berth_err rc = auth_session_create(auth_sessions(req->srv->auth), "", now,
                                            req->srv->cfg->console_session_ttl_seconds, token, &s);
    if (rc == BERTH_EIO || rc == BERTH_EINVAL) {
        fail(req, 500, "ServerError", "cannot start a session");
    } else if (rc != BERTH_OK) {
        server_failed(req, rc, "db", "cannot start a session");
    } else {
        session_cookie(req, token, req->srv->cfg->console_session_ttl_seconds, cookie,
                       sizeof(cookie));
        send_doc(req, 200, session_doc(true, true, &s, NULL), cookie);
        auth_wipe(cookie, sizeof(cookie));
    }
    auth_wipe(token, sizeof(token));
    auth_wipe(&s, sizeof(s));
}

static void session_create(struct request *req)
{
    struct auth *a = req->srv->auth;
    const char *ctype = http_header(req, "Content-Type");
    /* application/json cannot be sent cross-site without a CORS preflight,
     * which berth never grants: no sign-in from another origin's page */
    if (ctype == NULL || strncasecmp(ctype, "application/json", 16) != 0) {
        fail(req, 415, "UnsupportedMediaType", "sign in with a JSON body");
        return;
    }
    const char *site = http_header(req, "Sec-Fetch-Site");
    if (site != NULL && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0) {
        fail(req, 403, "Forbidden", "sign in from the console's own page");
        return;
    }
    json_error_t jerr;
    json_t *in = json_loadb(buf_cstr(&req->body), req->body.len, JSON_REJECT_DUPLICATES, &jerr);
    const char *akid = NULL, *secret = NULL;
    if (in != NULL && json_is_true(json_object_get(in, "anonymous"))) {
        json_decref(in);
        struct meta *m = meta_or_fail(req);
        struct auth_lookup lk;
        if (m == NULL) {
            return;
        }
        enum berth_err rc = auth_lookup(a, m, NULL, NULL, &lk);
        if (rc != BERTH_OK) {
            server_failed(req, rc, "auth", "authorization could not be checked");
            return;
        }
        bool enforced = lk.enforced;
        auth_lookup_fini(a, &lk);
        if (!enforced) {
            fail(req, 409, "NotRequired",
                 "no access key exists on this server: the console is open without signing in");
            return;
        }
        session_create_anonymous(req, enforced);
        return;
    }
    if (in == NULL ||
        json_unpack(in, "{s:s, s:s}", "accessKeyId", &akid, "secretAccessKey", &secret) != 0) {
        json_decref(in);
        fail(req, 400, "BadRequest", "accessKeyId and secretAccessKey are required");
        return;
    }
    struct meta *m = meta_or_fail(req);
    if (m == NULL) {
        json_decref(in);
        return;
    }
    struct auth_lookup lk;
    bool valid = auth_akid_valid(akid);
    enum berth_err rc = auth_lookup(a, m, valid ? akid : NULL, NULL, &lk);
    if (rc != BERTH_OK) {
        json_decref(in);
        server_failed(req, rc, "auth", "authorization could not be checked");
        return;
    }
    char shown[AUTH_AKID_MAX + 8];
    if (!lk.enforced) {
        fail(req, 409, "NotRequired",
             "no access key exists on this server: the console is open without signing in");
    } else if (!valid || !lk.key_found ||
               !str_ct_equal(secret, strlen(secret), lk.secret, lk.secret_len)) {
        log_info("event=console_signin_refused key=%s",
                 log_value(valid ? akid : "-", shown, sizeof(shown)));
        fail(req, 401, "InvalidCredentials", "The access key id or the secret is wrong.");
    } else {
        int64_t now = time_now_ms() / 1000;
        char token[AUTH_SESSION_TOKEN_LEN + 1], cookie[256];
        struct auth_session s;
        rc = auth_session_create(auth_sessions(a), akid, now,
                                 req->srv->cfg->console_session_ttl_seconds, token, &s);
        if (rc == BERTH_EIO || rc == BERTH_EINVAL) {
            fail(req, 500, "ServerError", "cannot start a session");
        } else if (rc != BERTH_OK) {
            server_failed(req, rc, "db", "cannot start a session");
        } else {
            log_info("event=console_signin key=%s", log_value(akid, shown, sizeof(shown)));
            session_cookie(req, token, req->srv->cfg->console_session_ttl_seconds, cookie,
                           sizeof(cookie));
            send_doc(req, 200,
                     session_doc(true, anonymous_allowed(req, true), &s, lk.id.principal_arn),
                     cookie);
            auth_wipe(cookie, sizeof(cookie));
        }
        auth_wipe(token, sizeof(token));
        auth_wipe(&s, sizeof(s));
    }
    auth_lookup_fini(a, &lk);
    json_decref(in);
}

static void session_delete(struct request *req)
{
    struct auth *a = req->srv->auth;
    const char *cookie = http_header(req, "Cookie");
    struct auth_session s;
    enum auth_session_state state =
        auth_session_check(auth_sessions(a), cookie, true,
                           http_header(req, AUTH_SESSION_CSRF_HEADER), time_now_ms() / 1000, &s);
    auth_wipe(&s, sizeof(s));
    if (state == AUTH_SESSION_CSRF) {
        fail(req, 403, "InvalidCsrfToken",
             "The request carries no valid " AUTH_SESSION_CSRF_HEADER " header");
        return;
    }
    if (state == AUTH_SESSION_UNAVAILABLE) {
        server_failed(req, BERTH_EUNAVAILABLE, "db", "database unavailable");
        return;
    }
    if (state == AUTH_SESSION_OK) {
        /* ended on every replica: the row is gone */
        enum berth_err rc = auth_session_end(auth_sessions(a), cookie);
        if (rc != BERTH_OK) {
            server_failed(req, rc, "db", "the session could not be ended");
            return;
        }
    }
    char clear[256];
    session_cookie(req, "", 0, clear, sizeof(clear));
    send_doc(req, 200, json_pack("{s:b}", "signedIn", false), clear);
}

static void session_body_done(struct request *req)
{
    session_create(req);
}

/* ---- the caller ---- */

/* Who calls a console endpoint: the session's key (its CSRF token checked
 * when csrf is set), or anonymous. Once keys exist, an anonymous caller
 * (no session, or an anonymous one) is answered 401 unless anonymous_ok
 * and the server allows anonymous browsing ("anonymous": true). repo, when
 * not NULL, is the repository whose policy *lk carries. On true, *lk and
 * *id are filled (release both: auth_identity_clear, auth_lookup_fini); on
 * false the request was answered. */
static bool caller_begin(struct request *req, struct meta *m, bool csrf, bool anonymous_ok,
                         const char *repo, struct auth_lookup *lk, struct auth_identity *id)
{
    struct auth *a = req->srv->auth;
    struct auth_session s;
    enum auth_session_state state;
    if (!session_lookup(req, m, csrf, repo, &s, &state, lk)) {
        return false;
    }
    bool anonymous_session = state == AUTH_SESSION_OK && s.access_key_id[0] == '\0';
    auth_wipe(&s, sizeof(s));
    if (!lk->enforced && !http_host_open_ok(req)) {
        auth_lookup_fini(a, lk);
        log_info("event=auth_refused reason=open_mode_host");
        fail(req, 403, "AccessDenied", HTTP_OPEN_HOST_MESSAGE);
        return false;
    }
    bool allowed = anonymous_allowed(req, lk->enforced);
    if (lk->enforced && (state == AUTH_SESSION_INVALID || (anonymous_session && !allowed))) {
        auth_lookup_fini(a, lk);
        fail(req, 401, "SessionEnded", "The session has ended. Sign in again.");
        return false;
    }
    if (lk->enforced && !lk->key_found && !(anonymous_ok && allowed)) {
        auth_lookup_fini(a, lk);
        fail(req, 401, "SignInRequired", "Sign in with an access key to see this.");
        return false;
    }
    lookup_identity(lk, id);
    return true;
}

/* What the session's key (or an anonymous caller, where anonymous browsing
 * is allowed) may do on a repository, by its identity policy and the
 * repository's policy as they are now. */
static void permissions(struct request *req)
{
    struct auth *a = req->srv->auth;
    const char *repo = http_query(req, "repository");
    if (repo != NULL && !names_repo_valid(repo)) {
        fail(req, 400, "BadRequest", "repository must name a repository");
        return;
    }
    struct meta *m = meta_or_fail(req);
    if (m == NULL) {
        return;
    }
    struct auth_lookup lk;
    struct auth_identity id;
    if (!caller_begin(req, m, false, true, repo, &lk, &id)) {
        return;
    }
    json_t *actions = json_object();
    const char *const *list = repo != NULL ? REPO_ACTIONS : REGISTRY_ACTIONS;
    size_t n = repo != NULL ? sizeof(REPO_ACTIONS) / sizeof(REPO_ACTIONS[0])
                            : sizeof(REGISTRY_ACTIONS) / sizeof(REGISTRY_ACTIONS[0]);
    for (size_t i = 0; i < n; i++) {
        bool ok = auth_decide(a, &id, lk.repo_policy, lk.registry_policy, list[i], repo, NULL, 0);
        json_object_set_new(actions, list[i], json_boolean(ok));
    }
    auth_identity_clear(a, &id);
    auth_lookup_fini(a, &lk);
    send_doc(
        req, 200,
        json_pack("{s:o?, s:o}", "repository", repo ? json_string(repo) : NULL, "actions", actions),
        NULL);
}

/* What an anonymous caller must be allowed for a repository to be listed:
 * pulling it (its manifests and its blobs, as /v2 asks for them). */
static const char *const PULL_ACTIONS[] = {"ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"};

/* Whether the caller may do action on the repository r: its own policy read
 * (as the API does) only when it has one. */
static enum berth_err repo_may(struct auth *a, struct meta *m, const struct auth_identity *id,
                               const struct auth_lookup *lk, const struct meta_repo_summary *r,
                               const char *action, bool *ok)
{
    if (r->has_policy) {
        return auth_allowed(a, m, id, action, r->repo.name, ok, NULL, 0);
    }
    *ok = auth_decide(a, id, NULL, lk->registry_policy, action, r->repo.name, NULL, 0);
    return BERTH_OK;
}

/* Whether the caller may see a repository in lists. A key: the decision
 * DescribeRepositories makes. An anonymous caller (once keys exist): the
 * repositories it may pull, those whose policy allows everyone
 * ("Principal": "*") ecr:BatchGetImage and ecr:GetDownloadUrlForLayer,
 * ECR's public repository (a policy granting everyone
 * DescribeRepositories alone lists nothing it could pull). */
static enum berth_err repo_visible(struct auth *a, struct meta *m, const struct auth_identity *id,
                                   const struct auth_lookup *lk, const struct meta_repo_summary *r,
                                   bool *ok)
{
    *ok = true;
    if (!id->enforced) {
        return BERTH_OK;
    }
    if (!id->anonymous) {
        return repo_may(a, m, id, lk, r, "ecr:DescribeRepositories", ok);
    }
    enum berth_err rc = BERTH_OK;
    for (size_t i = 0; rc == BERTH_OK && *ok && i < sizeof(PULL_ACTIONS) / sizeof(PULL_ACTIONS[0]);
         i++) {
        rc = repo_may(a, m, id, lk, r, PULL_ACTIONS[i], ok);
    }
    return rc;
}

/* An administrator of the registry: allowed every ECR action at the
 * registry level (what `berth keys create NAME` with no permission, or
 * "admin", gives), as the registry-wide operations need. */
static bool registry_admin(struct auth *a, const struct auth_identity *id,
                           const struct auth_policy *registry_policy)
{
    if (!id->enforced) {
        return true;
    }
    if (id->anonymous) {
        return false;
    }
    for (size_t i = 0; i < authz_action_count(); i++) {
        if (!auth_decide(a, id, NULL, registry_policy, authz_action_name(i), NULL, NULL, 0)) {
            return false;
        }
    }
    return true;
}

/* Whether the caller may see the registry-wide figures (every blob, the
 * archive tier, garbage collection, jobs, activity, the configuration):
 * a key allowed ecr:DescribeRegistry at the registry level (Resource "*":
 * an administrator's key, or a policy that grants it), as the ECR action
 * that describes the registry itself. Others see their repositories. */
static bool registry_reader(struct auth *a, const struct auth_identity *id,
                            const struct auth_policy *registry_policy)
{
    if (!id->enforced) {
        return true;
    }
    return !id->anonymous &&
           auth_decide(a, id, NULL, registry_policy, "ecr:DescribeRegistry", NULL, NULL, 0);
}

/* ---- the repository list ---- */

struct summary_rows {
    struct meta_repo_summary *rows;
    size_t count, cap;
    bool oom;
};

static int keep_summary(void *arg, const struct meta_repo_summary *s)
{
    struct summary_rows *r = arg;
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256;
        struct meta_repo_summary *grown = realloc(r->rows, cap * sizeof(*grown));
        if (grown == NULL) {
            r->oom = true;
            return 1;
        }
        r->rows = grown;
        r->cap = cap;
    }
    r->rows[r->count++] = *s;
    return 0;
}

static bool query_int(struct request *req, const char *name, int64_t lo, int64_t hi, int64_t dflt,
                      int64_t *out)
{
    const char *v = http_query(req, name);
    *out = dflt;
    if (v == NULL || *v == '\0') {
        return true;
    }
    char *end;
    long long n = strtoll(v, &end, 10);
    if (*end != '\0' || n < lo || n > hi) {
        return false;
    }
    *out = n;
    return true;
}

static json_t *summary_json(const struct meta_repo_summary *s)
{
    json_t *o = json_pack("{s:s, s:f, s:s, s:b, s:I, s:I, s:I}", "repositoryName", s->repo.name,
                          "createdAt", (double)s->repo.created_at / 1000.0, "imageTagMutability",
                          meta_mutability_name(s->repo.mutability), "scanOnPush",
                          s->repo.scan_on_push, "imageCount", (json_int_t)s->images, "tagCount",
                          (json_int_t)s->tags, "sizeInBytes", (json_int_t)s->size);
    if (o != NULL && s->pushed_at > 0) {
        json_object_set_new(o, "lastPushedAt", json_real((double)s->pushed_at / 1000.0));
    }
    if (o != NULL && s->pulled_at > 0) {
        json_object_set_new(o, "lastPulledAt", json_real((double)s->pulled_at / 1000.0));
    }
    return o;
}

/* One page of the repositories the caller may describe (the decision
 * DescribeRepositories makes, per repository), matching q, in the order
 * asked. The database sorts and filters; only the page is sent. A signed-in
 * session must send its CSRF token, as on the ECR API. */
static void repositories(struct request *req)
{
    struct auth *a = req->srv->auth;
    const char *q = http_query(req, "q");
    const char *sort = http_query(req, "sort");
    const char *order = http_query(req, "order");
    int64_t offset, limit;
    int key = 0;
    if (sort != NULL && *sort != '\0') {
        for (key = 0; key < META_REPO_SORT_COUNT && strcmp(sort, SORT_KEYS[key]) != 0; key++) {
        }
    }
    char needle[NAMES_REPO_MAX + 1];
    size_t qlen = q != NULL ? strlen(q) : 0;
    if (key == META_REPO_SORT_COUNT || qlen > NAMES_REPO_MAX ||
        (order != NULL && *order != '\0' && strcmp(order, "asc") != 0 &&
         strcmp(order, "desc") != 0) ||
        !query_int(req, "offset", 0, INT32_MAX, 0, &offset) ||
        !query_int(req, "limit", 1, LIST_LIMIT_MAX, LIST_LIMIT_DEFAULT, &limit)) {
        fail(req, 400, "BadRequest",
             "sort is name, images, tags, size, pushed or pulled; order asc or desc; "
             "offset from 0; limit 1 to 100; q at most 256 characters");
        return;
    }
    for (size_t i = 0; i < qlen; i++) {
        needle[i] = (char)tolower((unsigned char)q[i]);
    }
    needle[qlen] = '\0';
    bool desc = order != NULL && strcmp(order, "desc") == 0;
    struct meta *m = meta_or_fail(req);
    if (m == NULL) {
        return;
    }
    struct auth_lookup lk;
    struct auth_identity id;
    if (!caller_begin(req, m, true, true, NULL, &lk, &id)) {
        return;
    }

    struct summary_rows rows = {0};
    enum berth_err rc =
        meta_repo_summaries(m, needle, (enum meta_repo_sort)key, desc, keep_summary, &rows);
    if (rc == BERTH_OK && rows.oom) {
        rc = BERTH_ENOMEM;
    }
    json_t *page = json_array();
    int64_t total = 0;
    for (size_t i = 0; rc == BERTH_OK && page != NULL && i < rows.count; i++) {
        const struct meta_repo_summary *r = &rows.rows[i];
        bool ok = true;
        rc = repo_visible(a, m, &id, &lk, r, &ok);
        if (rc == BERTH_OK && ok) {
            if (total >= offset && total < offset + limit) {
                json_array_append_new(page, summary_json(r));
            }
            total++;
        }
    }
    free(rows.rows);
    bool may_create =
        auth_decide(a, &id, NULL, lk.registry_policy, "ecr:CreateRepository", NULL, NULL, 0);
    auth_identity_clear(a, &id);
    auth_lookup_fini(a, &lk);
    if (rc != BERTH_OK || page == NULL) {
        json_decref(page);
        server_failed(req, rc != BERTH_OK ? rc : BERTH_ENOMEM, "list",
                      "the repositories could not be listed");
        return;
    }
    send_doc(req, 200,
             json_pack("{s:I, s:I, s:I, s:s, s:s, s:o, s:b}", "total", (json_int_t)total, "offset",
                       (json_int_t)offset, "limit", (json_int_t)limit, "sort", SORT_KEYS[key],
                       "order", desc ? "desc" : "asc", "repositories", page, "mayCreate",
                       may_create),
             NULL);
}

/* ---- the registry page ---- */

/* Repositories listed by size on the registry page; the rest are summed. */
#define REGISTRY_TOP_REPOS 20

static json_t *ms_or_null(int64_t ms)
{
    return ms > 0 ? json_real((double)ms / 1000.0) : json_null();
}

static json_t *job_json(const char *name, const struct jobs_job_status *j)
{
    return json_pack("{s:s, s:b, s:I, s:b, s:o, s:o, s:o, s:b}", "name", name, "enabled",
                     j->enabled, "intervalSeconds", (json_int_t)(j->interval_ms / 1000), "running",
                     j->running, "lastStartedAt", ms_or_null(j->last_started_at_ms),
                     "lastFinishedAt", ms_or_null(j->last_finished_at_ms), "nextRunAt",
                     ms_or_null(j->next_at_ms), "requested", j->requested);
}

/* The garbage collection passes the registry page lists (the newest). */
#define REGISTRY_GC_RUNS 20

static int gc_run_json(void *arg, const struct meta_gc_run *r)
{
    json_array_append_new(
        arg, json_pack("{s:o, s:o, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "startedAt",
                       ms_or_null(r->started_at), "finishedAt", ms_or_null(r->finished_at),
                       "result", r->result, "error", r->error, "trigger", r->reason, "node",
                       r->node, "blobsDeleted", (json_int_t)r->blobs_deleted, "bytesFreed",
                       (json_int_t)r->bytes_freed, "orphansDeleted", (json_int_t)r->orphans_deleted,
                       "uploadsRemoved", (json_int_t)r->uploads_removed));
    return 0;
}

/* The GC job's state, and the last passes from the history every replica
 * and `berth gc` record (NULL when it cannot be read). */
static json_t *gc_json(struct meta *m, const struct jobs_status *js, bool attached)
{
    json_t *runs = json_array();
    if (runs == NULL || meta_gc_runs_list(m, REGISTRY_GC_RUNS, gc_run_json, runs) != BERTH_OK) {
        json_decref(runs);
        return NULL;
    }
    json_t *o = job_json("gc", &js->gc);
    if (o != NULL) {
        json_object_set_new(o, "graceSeconds", json_integer(js->gc_grace_ms / 1000));
        json_object_set_new(o, "runs", runs);
        json_object_set_new(o, "attached", json_boolean(attached));
    } else {
        json_decref(runs);
    }
    return o;
}

/* The local database's summary (o gets its facts), or NULL with the
 * reason for a database that cannot be read. */
static json_t *vulndb_local_json(const char *root, bool *present)
{
    struct vulndb_summary *sum = malloc(sizeof(*sum));
    if (sum == NULL) {
        return NULL;
    }
    enum berth_err rc = vulndb_summary(root, sum);
    json_t *o;
    *present = rc == BERTH_OK;
    if (rc == BERTH_ENOTFOUND) {
        o = json_pack("{s:b, s:s}", "present", false, "hint", "berth vulndb import PATH");
    } else if (rc != BERTH_OK) {
        o = json_pack("{s:b, s:s}", "present", false, "error", berth_strerror(rc));
    } else {
        json_t *ecos = json_array();
        for (size_t i = 0;
             ecos != NULL && i < sum->ecosystem_count && i < VULNDB_SUMMARY_ECOSYSTEMS; i++) {
            json_array_append_new(ecos,
                                  json_pack("{s:s, s:I}", "name", sum->ecosystems[i].name,
                                            "records", (json_int_t)sum->ecosystems[i].records));
        }
        o = json_pack("{s:b, s:s, s:I, s:o, s:I, s:i, s:I, s:o}", "present", true, "source",
                      "OSV records imported with berth vulndb import", "records",
                      (json_int_t)sum->records, "updatedAt", ms_or_null(sum->updated_at_ms),
                      "fileBytes", (json_int_t)sum->file_bytes, "schemaVersion",
                      sum->schema_version, "ecosystemCount", (json_int_t)sum->ecosystem_count,
                      "ecosystems", ecos);
    }
    free(sum);
    return o;
}

/* The scanner's database. Replicas sharing the database: the shared
 * generation's records and import time (the same on every replica),
 * whether this replica runs with it yet, and the ecosystems of the copy
 * it has; else the local file's summary. */
static json_t *vulndb_json(struct meta *m, const char *root)
{
    struct meta_vulndb cur;
    enum berth_err rc = meta_vulndb_get(m, &cur);
    bool present = false;
    json_t *local = vulndb_local_json(root, &present);
    if (rc != BERTH_OK || local == NULL) {
        return local; /* none shared (single node), or no memory */
    }
    char have[DIGEST_STR_MAX];
    bool installed = present && scan_dbsync_installed(root, have, sizeof(have)) == BERTH_OK &&
                     strcmp(have, cur.digest) == 0;
    json_t *shared = json_pack("{s:I, s:s, s:o, s:b}", "generation", (json_int_t)cur.generation,
                               "digest", cur.digest, "publishedAt", ms_or_null(cur.published_at_ms),
                               "installedHere", installed);
    if (!installed) {
        /* this replica has not downloaded it yet: what is known of it */
        json_decref(local);
        local = json_pack("{s:b, s:I, s:i, s:I, s:o}", "present", true, "fileBytes",
                          (json_int_t)cur.size, "schemaVersion", VULNDB_SCHEMA_VERSION,
                          "ecosystemCount", (json_int_t)0, "ecosystems", json_array());
    }
    if (local == NULL || shared == NULL) {
        json_decref(local);
        json_decref(shared);
        return NULL;
    }
    json_object_set_new(local, "source",
                        json_string("OSV records imported with berth vulndb import, shared "
                                    "by the replicas"));
    json_object_set_new(local, "records", json_integer((json_int_t)cur.records));
    json_object_set_new(local, "updatedAt", ms_or_null(cur.imported_at_ms));
    json_object_set_new(local, "shared", shared);
    return local;
}

/* What the server runs with, never a secret: no key, DSN, password or
 * credential file's content. */
static json_t *config_json(const struct server *srv)
{
    const struct berth_config *cfg = srv->cfg;
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:b, s:s, s:b, s:b, s:s, s:s, s:s, s:s, s:b, s:b, s:I, s:b, s:I, s:I, "
        "s:b, s:I, s:I, s:b, s:b, s:I}",
        "listen", cfg->listen, "publicUrl", srv->public_url, "root", cfg->root, "tls",
        srv->tls != NULL, "authScheme", cfg->auth_scheme, "authRequired", cfg->auth_required,
        "anonymous", cfg->anonymous, "storageBackend", cfg->storage_backend, "metadataBackend",
        cfg->meta_backend, "registryId", cfg->registry_id, "region", cfg->registry_region,
        "metricsEnabled", cfg->metrics_enabled, "deleteEnabled", cfg->storage_delete_enabled,
        "uploadExpirySeconds", (json_int_t)cfg->storage_upload_expiry_seconds, "gcEnabled",
        cfg->gc_enabled, "gcIntervalSeconds", (json_int_t)cfg->gc_interval_seconds,
        "gcGraceSeconds", (json_int_t)cfg->gc_grace_seconds, "lifecycleEnabled",
        cfg->lifecycle_enabled, "lifecycleIntervalSeconds",
        (json_int_t)cfg->lifecycle_interval_seconds, "scanWorkers", (json_int_t)cfg->scan_workers,
        "scanHook", cfg->scan_hook != NULL && cfg->scan_hook[0] != '\0', "autoCreate",
        cfg->storage_auto_create, "consoleSessionTtlSeconds",
        (json_int_t)cfg->console_session_ttl_seconds);
    if (o != NULL && strcmp(cfg->storage_backend, "s3") == 0) {
        json_object_set_new(o, "s3Endpoint", json_string(cfg->storage_s3_endpoint));
        json_object_set_new(o, "s3Bucket", json_string(cfg->storage_s3_bucket));
    }
    char replica[64];
    jobs_replica_name(cfg, replica, sizeof(replica));
    if (o != NULL) {
        json_object_set_new(o, "replicaName", json_string(replica));
    }
    if (o != NULL && cfg->config_path != NULL) {
        json_object_set_new(o, "configFile", json_string(cfg->config_path));
    }
    return o;
}

/* The counters since the process started (server/metrics), folded. */
static json_t *activity_json(void)
{
    struct metrics_summary *ms = malloc(sizeof(*ms));
    if (ms == NULL) {
        return NULL;
    }
    metrics_summary_get(ms);
    json_t *apis = json_array();
    for (size_t i = 0; apis != NULL && i < ms->api_count; i++) {
        const uint64_t *c = ms->apis[i].by_class;
        json_array_append_new(apis, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "api",
                                              ms->apis[i].api, "2xx", (json_int_t)c[2], "3xx",
                                              (json_int_t)c[3], "4xx", (json_int_t)c[4], "5xx",
                                              (json_int_t)c[5], "other", (json_int_t)(c[0] + c[1]),
                                              "bytesIn", (json_int_t)ms->apis[i].bytes_in,
                                              "bytesOut", (json_int_t)ms->apis[i].bytes_out));
    }
    json_t *o = json_pack(
        "{s:o, s:o, s:I, s:I, s:{s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I}, s:{s:I, s:I}}", "since",
        ms_or_null(ms->started_at_ms), "requests", apis, "authFailures",
        (json_int_t)ms->auth_failures, "openConnections", (json_int_t)ms->open_connections, "gc",
        "passesOk", (json_int_t)ms->gc_passes_ok, "passesFailed", (json_int_t)ms->gc_passes_failed,
        "bytesFreed", (json_int_t)ms->gc_bytes_freed, "blobsDeleted",
        (json_int_t)ms->gc_blobs_deleted, "lifecycle", "runs", (json_int_t)ms->lifecycle_runs,
        "imagesEvaluated", (json_int_t)ms->lifecycle_images, "imagesExpired",
        (json_int_t)ms->lifecycle_expired, "scans", "complete", (json_int_t)ms->scans_complete,
        "failed", (json_int_t)ms->scans_failed);
    free(ms);
    return o;
}

static int activity_bucket(void *arg, const struct meta_activity *b)
{
    json_array_append_new(arg, json_pack("[f, I, I, I, I, I, I, I, I]", (double)b->at / 1000.0,
                                         (json_int_t)b->requests[0], (json_int_t)b->requests[1],
                                         (json_int_t)b->requests[2], (json_int_t)b->requests[3],
                                         (json_int_t)b->requests[4], (json_int_t)b->bytes_in,
                                         (json_int_t)b->bytes_out, (json_int_t)b->auth_failures));
    return 0;
}

static int activity_api_json(void *arg, const struct meta_activity_api *a)
{
    json_array_append_new(
        arg, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "api", a->api, "2xx",
                       (json_int_t)a->requests[0], "3xx", (json_int_t)a->requests[1], "4xx",
                       (json_int_t)a->requests[2], "5xx", (json_int_t)a->requests[3], "other",
                       (json_int_t)a->requests[4], "bytesIn", (json_int_t)a->bytes_in, "bytesOut",
                       (json_int_t)a->bytes_out));
    return 0;
}

/* An API's bucket, appended to its series (the last of the array, or a new
 * one: the rows come by API, then oldest first). */
static int activity_api_bucket(void *arg, const struct meta_activity_api *a)
{
    json_t *series = arg;
    json_t *last = json_array_get(series, json_array_size(series) - 1);
    const char *name = json_string_value(json_object_get(last, "api"));
    if (name == NULL || strcmp(name, a->api) != 0) {
        last = json_pack("{s:s, s:[]}", "api", a->api, "buckets");
        if (last == NULL || json_array_append_new(series, last) != 0) {
            return 1;
        }
    }
    json_t *b = json_pack(
        "[f, I, I, I, I, I, I, I]", (double)a->at / 1000.0, (json_int_t)a->requests[0],
        (json_int_t)a->requests[1], (json_int_t)a->requests[2], (json_int_t)a->requests[3],
        (json_int_t)a->requests[4], (json_int_t)a->bytes_in, (json_int_t)a->bytes_out);
    return b == NULL || json_array_append_new(json_object_get(last, "buckets"), b) != 0;
}

/* The activity history (meta_activity.h): the minutes of the last day and
 * the hours of the last 30 days, every replica's requests summed, each
 * bucket [start, 2xx, 3xx, 4xx, 5xx, other, bytes in, bytes out, refused
 * authentications], and each API's requests and bytes over the view
 * ("apis", by name, the same objects as activity.requests), and each API's
 * buckets ("apiBuckets": [{api, buckets}] by name, each bucket the first
 * eight columns, only those in which the API had requests). NULL when it
 * cannot be read. */
static json_t *history_json(struct meta *m, const struct berth_config *cfg)
{
    int64_t now = time_now_ms();
    static const struct {
        const char *name;
        int64_t step, span_ms;
    } views[] = {{"minutes", META_ACTIVITY_MINUTE, META_ACTIVITY_MINUTES_KEPT_MS},
                 {"hours", META_ACTIVITY_HOUR, META_ACTIVITY_HOURS_KEPT_MS}};
    json_t *o = json_pack("{s:I, s:[s, s, s, s, s, s, s, s, s]}", "sampleSeconds",
                          (json_int_t)cfg->metrics_activity_sample_seconds, "columns", "at", "2xx",
                          "3xx", "4xx", "5xx", "other", "bytesIn", "bytesOut", "authFailures");
    for (size_t i = 0; o != NULL && i < sizeof(views) / sizeof(views[0]); i++) {
        int64_t step_ms = views[i].step * 1000;
        /* whole buckets: the first starts a span before the current one */
        int64_t from = now - now % step_ms - views[i].span_ms + step_ms;
        json_t *buckets = json_array();
        json_t *apis = json_array();
        json_t *series = json_array();
        if (buckets == NULL || apis == NULL || series == NULL ||
            meta_activity_list(m, views[i].step, from, activity_bucket, buckets) != BERTH_OK ||
            meta_activity_apis(m, views[i].step, from, activity_api_json, apis) != BERTH_OK ||
            meta_activity_api_list(m, views[i].step, from, activity_api_bucket, series) !=
                BERTH_OK) {
            json_decref(buckets);
            json_decref(apis);
            json_decref(series);
            json_decref(o);
            return NULL;
        }
        json_object_set_new(o, views[i].name,
                            json_pack("{s:I, s:f, s:f, s:o, s:o, s:o}", "step",
                                      (json_int_t)views[i].step, "from", (double)from / 1000.0,
                                      "to", (double)(now - now % step_ms + step_ms) / 1000.0,
                                      "buckets", buckets, "apis", apis, "apiBuckets", series));
    }
    return o;
}

struct storage_rows {
    struct auth *a;
    struct meta *m;
    const struct auth_identity *id;
    const struct auth_lookup *lk;
    json_t *top;
    int64_t visible, other_count, other_bytes, visible_bytes;
    enum berth_err rc;
};

static int storage_row(void *arg, const struct meta_repo_summary *r)
{
    struct storage_rows *sr = arg;
    bool ok = true;
    sr->rc = repo_visible(sr->a, sr->m, sr->id, sr->lk, r, &ok);
    if (sr->rc != BERTH_OK) {
        return 1;
    }
    if (!ok) {
        return 0;
    }
    sr->visible++;
    sr->visible_bytes += r->size;
    if (json_array_size(sr->top) < REGISTRY_TOP_REPOS) {
        json_array_append_new(sr->top, summary_json(r));
    } else {
        sr->other_count++;
        sr->other_bytes += r->size;
    }
    return 0;
}

/* The archive tier's figures: archived and ACTIVATING images, the blobs
 * whose bytes are in the tier, what they take there. */
static json_t *archive_json(struct store *st, struct meta *m, const struct meta_totals *t)
{
    int64_t archived = 0, activating = 0;
    if (meta_image_class_counts(m, time_now_ms(), &archived, &activating) != BERTH_OK) {
        return NULL;
    }
    return json_pack("{s:b, s:I, s:I, s:I, s:I, s:I}", "tier", store_tier_enabled(st),
                     "archivedImages", (json_int_t)archived, "activatingImages",
                     (json_int_t)activating, "blobs", (json_int_t)t->archived_blobs, "bytes",
                     (json_int_t)t->archived_bytes, "storedBytes", (json_int_t)t->archived_stored);
}

/* The registry page's data. Repositories by size are those the caller may
 * describe; the registry-wide figures only for a registry reader
 * (registry_reader): "scope" says which the answer holds. */
static void registry(struct request *req)
{
    struct server *srv = req->srv;
    struct auth *a = srv->auth;
    struct meta *m = meta_or_fail(req);
    if (m == NULL) {
        return;
    }
    struct auth_lookup lk;
    struct auth_identity id;
    if (!caller_begin(req, m, true, false, NULL, &lk, &id)) {
        return;
    }
    bool wide = registry_reader(a, &id, lk.registry_policy);
    struct meta_totals t = {-1, -1, -1, -1, -1, -1};
    enum berth_err rc = wide ? meta_totals_get(m, &t) : BERTH_OK;
    struct storage_rows sr = {.a = a, .m = m, .id = &id, .lk = &lk, .top = json_array()};
    if (rc == BERTH_OK && sr.top != NULL) {
        rc = meta_repo_summaries(m, NULL, META_REPO_SORT_SIZE, true, storage_row, &sr);
        if (rc == BERTH_OK) {
            rc = sr.rc;
        }
    }
    int64_t waiting = 0, total = 0;
    if (rc == BERTH_OK && wide) {
        rc = meta_scan_jobs_count(m, &waiting, &total);
    }
    json_t *archive = NULL;
    if (rc == BERTH_OK && wide && (archive = archive_json(srv->store, m, &t)) == NULL) {
        rc = BERTH_EDB;
    }
    bool admin = registry_admin(a, &id, lk.registry_policy);
    auth_identity_clear(a, &id);
    auth_lookup_fini(a, &lk);
    if (rc != BERTH_OK || sr.top == NULL) {
        json_decref(sr.top);
        json_decref(archive);
        server_failed(req, rc != BERTH_OK ? rc : BERTH_ENOMEM, "registry",
                      "the registry's state could not be read");
        return;
    }
    json_t *storage =
        json_pack("{s:I, s:I, s:o, s:{s:I, s:I}}", "repositoryCount", (json_int_t)sr.visible,
                  "repositoryBytes", (json_int_t)sr.visible_bytes, "largest", sr.top, "others",
                  "count", (json_int_t)sr.other_count, "bytes", (json_int_t)sr.other_bytes);
    if (!wide) {
        send_doc(req, 200,
                 json_pack("{s:s, s:s, s:o, s:b}", "scope", "repositories", "version",
                           BERTH_VERSION, "storage", storage, "mayStartGc", false),
                 NULL);
        return;
    }
    json_object_set_new(storage, "blobs", json_integer(t.blobs));
    json_object_set_new(storage, "blobBytes", json_integer(t.blob_bytes));
    json_object_set_new(storage, "uploadSessions", json_integer(t.upload_sessions));
    struct jobs *j = atomic_load(&srv->jobs);
    struct jobs_status js;
    jobs_status_get(j, &js);
    json_t *gc = gc_json(m, &js, j != NULL);
    json_t *history = history_json(m, srv->cfg);
    if (gc == NULL || history == NULL) {
        json_decref(storage);
        json_decref(archive);
        json_decref(gc);
        json_decref(history);
        fail(req, 500, "ServerError", "the registry's history could not be read");
        return;
    }
    json_t *jobs = json_array();
    json_array_append_new(jobs, job_json("gc", &js.gc));
    json_array_append_new(jobs, job_json("lifecycle", &js.lifecycle));
    json_array_append_new(jobs, job_json("lifecycle-preview", &js.preview));
    json_t *scan = json_pack("{s:I, s:I, s:I, s:o}", "workers", (json_int_t)srv->cfg->scan_workers,
                             "waiting", (json_int_t)waiting, "running",
                             (json_int_t)(total >= waiting ? total - waiting : 0), "database",
                             vulndb_json(m, srv->cfg->root));
    send_doc(req, 200,
             json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b}", "scope",
                       "registry", "version", BERTH_VERSION, "startedAt",
                       ms_or_null(js.started_at_ms), "storage", storage, "archive", archive, "gc",
                       gc, "scan", scan, "jobs", jobs, "activity", activity_json(), "history",
                       history, "config", config_json(srv), "mayStartGc", admin && js.gc.enabled),
             NULL);
}

/* Start a garbage collection pass now: an administrator's key (every ECR
 * action allowed at the registry level), with the session's CSRF token. */
static void gc_start(struct request *req)
{
    struct server *srv = req->srv;
    struct auth *a = srv->auth;
    struct meta *m = meta_or_fail(req);
    if (m == NULL) {
        return;
    }
    struct auth_lookup lk;
    struct auth_identity id;
    if (!caller_begin(req, m, true, false, NULL, &lk, &id)) {
        return;
    }
    bool admin = registry_admin(a, &id, lk.registry_policy);
    char shown[AUTH_AKID_MAX + 8];
    const char *who = id.anonymous ? "-" : id.access_key_id;
    log_value(who, shown, sizeof(shown));
    auth_identity_clear(a, &id);
    auth_lookup_fini(a, &lk);
    if (!admin) {
        metrics_auth_failure("denied");
        log_info("event=access_denied op=console_gc key=%s", shown);
        fail(req, 403, "AccessDeniedException",
             "Starting garbage collection needs a key allowed every ECR action (an "
             "administrator's key)");
        return;
    }
    if (!jobs_gc_soon(atomic_load(&srv->jobs))) {
        fail(req, 409, "GarbageCollectionDisabled",
             "Garbage collection is not running in this server (gc.enabled is false)");
        return;
    }
    log_info("event=gc_requested key=%s", shown);
    send_doc(req, 202, json_pack("{s:b}", "requested", true), NULL);
}

/* ---- routing ---- */

static bool accepts_html(struct request *req)
{
    const char *accept = http_header(req, "Accept");
    return accept != NULL && strstr(accept, "text/html") != NULL;
}

static bool console_accepts(struct request *req)
{
    const char *p = req->path;
    if (strcmp(p, "/") == 0) {
        return (strcmp(req->method, "GET") == 0 || req->is_head) && accepts_html(req) &&
               http_header(req, "Authorization") == NULL;
    }
    return strcmp(p, "/ui") == 0 || str_has_prefix(p, "/ui/");
}

static void console_dispatch(struct request *req)
{
    const char *p = req->path;
    bool get = strcmp(req->method, "GET") == 0 || req->is_head;
    /* the metrics label: a fixed template per endpoint, files as one */
    static const char *const routes[] = {"/",
                                         "/ui",
                                         "/ui/api/session",
                                         "/ui/api/permissions",
                                         "/ui/api/repositories",
                                         "/ui/api/registry",
                                         "/ui/api/gc"};
    req->route = str_has_prefix(p, "/ui/api/") ? "/ui/api/*" : "/ui/*";
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(p, routes[i]) == 0) {
            req->route = routes[i];
        }
    }
    if (strcmp(p, "/") == 0) {
        redirect(req, 303, "/ui/");
    } else if (strcmp(p, "/ui") == 0) {
        redirect(req, 301, "/ui/");
    } else if (strcmp(p, "/ui/api/session") == 0) {
        if (get) {
            session_get(req);
        } else if (strcmp(req->method, "DELETE") == 0) {
            session_delete(req);
        } else if (strcmp(req->method, "POST") == 0) {
            uint64_t cl;
            if (http_content_length(req, &cl) && cl > CONSOLE_BODY_MAX) {
                fail(req, 413, "TooLarge", "the sign-in body is too large");
                return;
            }
            buf_init(&req->body, CONSOLE_BODY_MAX);
            req->body_mode = BODY_BUFFER;
            req->on_done = session_body_done;
            if (!http_has_body(req)) {
                session_create(req);
            }
        } else {
            fail(req, 405, "MethodNotAllowed", "GET, POST or DELETE");
        }
    } else if (strcmp(p, "/ui/api/permissions") == 0) {
        if (get) {
            permissions(req);
        } else {
            fail(req, 405, "MethodNotAllowed", "GET");
        }
    } else if (strcmp(p, "/ui/api/repositories") == 0) {
        if (get) {
            repositories(req);
        } else {
            fail(req, 405, "MethodNotAllowed", "GET");
        }
    } else if (strcmp(p, "/ui/api/registry") == 0) {
        if (get) {
            registry(req);
        } else {
            fail(req, 405, "MethodNotAllowed", "GET");
        }
    } else if (strcmp(p, "/ui/api/gc") == 0) {
        if (strcmp(req->method, "POST") == 0) {
            gc_start(req);
        } else {
            fail(req, 405, "MethodNotAllowed", "POST");
        }
    } else if (str_has_prefix(p, "/ui/api/")) {
        fail(req, 404, "NotFound", "no such console endpoint");
    } else {
        const char *name = p + strlen("/ui/");
        serve_asset(req, *name == '\0' ? "index.html" : name);
    }
}

const struct http_api console_api = {
    .name = "console",
    .accepts = console_accepts,
    .dispatch = console_dispatch,
    .error = console_error,
};
