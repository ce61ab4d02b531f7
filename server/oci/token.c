/*
 * The Docker registry token protocol's endpoint, /v2/token (auth.scheme
 * bearer): GET with Basic credentials (or none) and scope parameters, and
 * the OAuth2 form POST (grant_type password or refresh_token). The caller
 * gets a short-lived bearer token holding the requested actions that its
 * identity and the repository and registry policies allow; the rest are
 * dropped, never refused (distribution's docs/spec/auth/token.md,
 * oauth.md). Pool threads.
 */
#include "oci_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "common/log.h"
#include "common/str.h"
#include "common/timeutil.h"
#include "server/metrics/metrics.h"
#include "storage/store/store.h"

#define FORM_MAX 16384  /* POST body */
#define FIELD_MAX 8192  /* one form value, decoded */
#define SCOPE_IN_MAX 32 /* scope parameters read from a GET */

/* An error: the OCI error list for registry clients, and OAuth2's error
 * and error_description for OAuth2 clients, in one object. A 401 carries a
 * Basic challenge for the token endpoint itself. */
static void token_fail(struct request *req, unsigned status, const char *oauth_error,
                       const char *message)
{
    const char *code = status == 401   ? "UNAUTHORIZED"
                       : status == 400 ? "UNSUPPORTED"
                       : status == 503 ? "UNAVAILABLE"
                                       : "UNKNOWN";
    json_t *doc = json_pack("{s:[{s:s, s:s}], s:s, s:s}", "errors", "code", code, "message",
                            message, "error", oauth_error, "error_description", message);
    char challenge[sizeof(req->srv->public_url) + 600];
    if (status == 401) {
        char base[sizeof(req->srv->public_url) + 16], service[256];
        oci_auth_token_base(req, base, sizeof(base));
        oci_auth_service(req, service, sizeof(service));
        snprintf(challenge, sizeof(challenge), "Basic realm=\"%s/v2/token\",service=\"%s\"", base,
                 service);
    }
    oci_send_doc(req, status, doc,
                 status == 401   ? "WWW-Authenticate"
                 : status == 503 ? "Retry-After"
                                 : NULL,
                 status == 401   ? challenge
                 : status == 503 ? "1"
                                 : NULL);
}

/* Answer a token request that failed on this side with rc: 503 (retry
 * later) when it is for now (oci_err_transient: the database down or
 * restarting, a resource out), else 500. */
static void token_server_error(struct request *req, enum berth_err rc, const char *message)
{
    if (oci_err_transient(rc)) {
        token_fail(req, 503, "temporarily_unavailable", "database unavailable; retry later");
    } else {
        token_fail(req, 500, "server_error", message);
    }
}

/* The actions identity id may take on each requested resource, into
 * granted (zeroed by the caller). BERTH_OK or BERTH_EDB/BERTH_ENOMEM. */
static enum berth_err grant(struct request *req, struct meta *m, const struct auth_identity *id,
                            const struct bearer_scope *want, struct bearer_scope *granted)
{
    struct auth *a = req->srv->auth;
    static const unsigned repo_actions[] = {BEARER_PULL, BEARER_PUSH, BEARER_DELETE};
    for (size_t i = 0; i < want->count; i++) {
        const struct bearer_resource *r = &want->items[i];
        struct bearer_resource *g = &granted->items[granted->count];
        *g = *r;
        g->actions = 0;
        if (r->is_registry) {
            /* the catalog lists what each caller may describe; it needs a
             * caller, as on /v2 with Basic credentials */
            if (!id->enforced || !id->anonymous) {
                g->actions = r->actions & BEARER_CATALOG;
            }
            granted->count += g->actions != 0;
            continue;
        }
        struct auth_lookup rl;
        enum berth_err rc = auth_lookup(a, m, NULL, r->name, &rl);
        if (rc != BERTH_OK) {
            return rc;
        }
        for (size_t k = 0; k < sizeof(repo_actions) / sizeof(repo_actions[0]); k++) {
            unsigned act = repo_actions[k];
            if ((r->actions & act) == 0) {
                continue;
            }
            size_t n;
            const char *const *ecr = bearer_ecr_actions(act, &n);
            for (size_t e = 0; e < n; e++) {
                if (auth_decide(a, id, rl.repo_policy, rl.registry_policy, ecr[e], r->name, NULL,
                                0)) {
                    g->actions |= act;
                    break;
                }
            }
        }
        auth_lookup_fini(a, &rl);
        granted->count += g->actions != 0;
    }
    return BERTH_OK;
}

/* Issue the bearer token for id (akid "" when anonymous) with the access
 * granted out of want, and answer. refresh: a refresh token to return
 * (NULL: none); make_refresh: issue a new one (not for anonymous callers). */
static void issue(struct request *req, struct meta *m, const struct auth_identity *id,
                  const char *akid, const struct bearer_scope *want, const char *refresh,
                  bool make_refresh)
{
    struct auth *a = req->srv->auth;
    const struct berth_config *cfg = req->srv->cfg;
    struct bearer_scope *granted = calloc(1, sizeof(*granted));
    struct authtoken *tok = calloc(1, sizeof(*tok));
    char *token = malloc(AUTHTOKEN_BEARER_MAX_LEN + 1);
    char refresh_new[AUTHTOKEN_MAX_LEN + 1] = "";
    json_t *doc = NULL;
    if (granted == NULL || tok == NULL || token == NULL) {
        http_send(req, 500, NULL, 0);
        goto out;
    }
    enum berth_err rc = grant(req, m, id, want, granted);
    if (rc != BERTH_OK) {
        log_error("event=token_grant_failed err=%s", berth_strerror(rc));
        token_server_error(req, rc, "authorization failed");
        goto out;
    }
    int64_t now = time_now_ms() / 1000;
    tok->purpose = AUTHTOKEN_BEARER;
    str_copy(tok->principal, sizeof(tok->principal), akid[0] ? akid : AUTHTOKEN_ANONYMOUS);
    tok->issued = now;
    tok->expires = now + cfg->auth_bearer_ttl_seconds;
    bearer_scope_format(granted, tok->scope, sizeof(tok->scope));
    if (auth_token_sign(a, tok, token, AUTHTOKEN_BEARER_MAX_LEN + 1) != BERTH_OK) {
        token_fail(req, 500, "server_error", "cannot sign the token");
        goto out;
    }
    if (make_refresh && akid[0] != '\0') {
        struct authtoken rt;
        memset(&rt, 0, sizeof(rt));
        rt.purpose = AUTHTOKEN_REFRESH;
        str_copy(rt.principal, sizeof(rt.principal), akid);
        rt.issued = now;
        rt.expires = now + cfg->auth_refresh_token_ttl_seconds;
        if (auth_token_sign(a, &rt, refresh_new, sizeof(refresh_new)) != BERTH_OK) {
            token_fail(req, 500, "server_error", "cannot sign the refresh token");
            goto out;
        }
        refresh = refresh_new;
    }
    char issued[40];
    time_format_rfc3339(now * 1000, issued, sizeof(issued));
    doc = json_pack("{s:s, s:s, s:I, s:s, s:s}", "token", token, "access_token", token,
                    "expires_in", (json_int_t)cfg->auth_bearer_ttl_seconds, "issued_at", issued,
                    "scope", tok->scope);
    if (doc != NULL && refresh != NULL) {
        json_object_set_new(doc, "refresh_token", json_string(refresh));
    }
    char shown[AUTH_AKID_MAX + 8], scope_shown[512];
    log_info("event=token_issued key=%s scope=%s",
             log_value(akid[0] ? akid : "-", shown, sizeof(shown)),
             log_value(tok->scope, scope_shown, sizeof(scope_shown)));
    oci_send_doc(req, 200, doc, "Cache-Control", "no-store");
    doc = NULL;
out:
    json_decref(doc);
    if (token != NULL) {
        auth_wipe(token, AUTHTOKEN_BEARER_MAX_LEN + 1);
    }
    auth_wipe(refresh_new, sizeof(refresh_new));
    free(token);
    free(tok);
    free(granted);
}

/* The service parameter, when given, must name this registry. */
static bool service_ok(struct request *req, const char *service)
{
    char ours[256];
    oci_auth_service(req, ours, sizeof(ours));
    if (service == NULL || strcmp(service, ours) == 0) {
        return true;
    }
    token_fail(req, 400, "invalid_request", "the service parameter names another registry");
    return false;
}

/* Refuse a login the way the token endpoint does (401); akid is the key
 * it named ("" or NULL when none), logged as /v2 logs a refusal. */
static void login_refused(struct request *req, enum oci_login result, const char *why,
                          const char *akid)
{
    metrics_auth_failure(why != NULL ? why : "invalid_credentials");
    char shown[AUTH_AKID_MAX + 8];
    log_info("event=auth_refused reason=%s key=%s endpoint=token", why != NULL ? why : "-",
             log_value(akid != NULL && akid[0] != '\0' ? akid : "-", shown, sizeof(shown)));
    if (result == OCI_LOGIN_EXPIRED) {
        token_fail(req, 401, "invalid_grant", AUTHTOKEN_EXPIRED_MESSAGE);
    } else {
        token_fail(req, 401, "invalid_grant", "invalid username or password");
    }
}

static bool add_scope_param(void *arg, const char *key, const char *value)
{
    struct bearer_scope *want = arg;
    if (strcmp(key, "scope") == 0 && value != NULL) {
        /* a space-separated list may come in one parameter, its spaces
         * as '+' when a client form-encodes the query */
        char buf[FIELD_MAX];
        size_t n = strlen(value);
        if (n < sizeof(buf)) {
            memcpy(buf, value, n + 1);
            for (size_t i = 0; i < n; i++) {
                buf[i] = buf[i] == '+' ? ' ' : buf[i];
            }
            bearer_scope_add(want, buf, n);
        }
    }
    return true;
}

static void token_get(struct request *req, struct meta *m)
{
    if (!service_ok(req, http_query(req, "service"))) {
        return;
    }
    struct bearer_scope *want = calloc(1, sizeof(*want));
    if (want == NULL) {
        http_send(req, 500, NULL, 0);
        return;
    }
    http_query_each(req, add_scope_param, want);
    const char *offline = http_query(req, "offline_token");
    bool make_refresh = offline != NULL && strcmp(offline, "true") == 0;
    struct auth_identity *id = calloc(1, sizeof(*id));
    const char *why = NULL;
    enum oci_login result =
        id != NULL ? oci_auth_login(req, m, NULL, NULL, id, &why) : OCI_LOGIN_ERROR;
    if (result == OCI_LOGIN_ERROR || result == OCI_LOGIN_RETRY) {
        token_server_error(req, result == OCI_LOGIN_RETRY ? BERTH_EUNAVAILABLE : BERTH_EDB,
                           "authorization failed");
    } else if (result == OCI_LOGIN_BAD || result == OCI_LOGIN_EXPIRED) {
        login_refused(req, result, why, id->access_key_id);
    } else {
        issue(req, m, id, id->access_key_id, want, NULL, make_refresh);
    }
    if (id != NULL) {
        auth_identity_clear(req->srv->auth, id);
    }
    free(id);
    free(want);
}

/* The form fields the OAuth2 variant uses. */
struct form {
    char *grant_type, *service, *access_type, *scope, *username, *password, *refresh_token;
};

static void form_free(struct form *f)
{
    char **fields[] = {&f->grant_type, &f->service,  &f->access_type,  &f->scope,
                       &f->username,   &f->password, &f->refresh_token};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (*fields[i] != NULL) {
            auth_wipe(*fields[i], strlen(*fields[i]));
            free(*fields[i]);
        }
    }
}

/* Parse application/x-www-form-urlencoded text (len bytes) into f: '+' is
 * a space, %XX a byte; unknown fields are ignored, a repeated one keeps
 * its first value (scope: all, space-joined). False when out of memory or
 * a value is over FIELD_MAX. */
static bool form_parse(const char *text, size_t len, struct form *f)
{
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && text[j] != '&') {
            j++;
        }
        const char *eq = memchr(text + i, '=', j - i);
        if (eq != NULL) {
            size_t klen = (size_t)(eq - (text + i)), vlen = (size_t)(text + j - (eq + 1));
            if (vlen > FIELD_MAX) {
                return false;
            }
            char *v = malloc(vlen + 1);
            if (v == NULL) {
                return false;
            }
            memcpy(v, eq + 1, vlen);
            v[vlen] = '\0';
            for (size_t k = 0; k < vlen; k++) {
                v[k] = v[k] == '+' ? ' ' : v[k];
            }
            http_unescape(v, false);
            char **slot = NULL;
            static const char *const names[] = {"grant_type", "service",  "access_type",  "scope",
                                                "username",   "password", "refresh_token"};
            char **slots[] = {&f->grant_type, &f->service,  &f->access_type,  &f->scope,
                              &f->username,   &f->password, &f->refresh_token};
            for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
                if (klen == strlen(names[k]) && memcmp(text + i, names[k], klen) == 0) {
                    slot = slots[k];
                }
            }
            if (slot == &f->scope && f->scope != NULL) {
                size_t a = strlen(f->scope), b = strlen(v);
                char *joined = a + b + 1 <= FIELD_MAX ? realloc(f->scope, a + b + 2) : NULL;
                if (joined != NULL) {
                    joined[a] = ' ';
                    memcpy(joined + a + 1, v, b + 1);
                    f->scope = joined;
                }
                free(v);
            } else if (slot != NULL && *slot == NULL) {
                *slot = v;
            } else {
                auth_wipe(v, vlen);
                free(v);
            }
        }
        i = j + 1;
    }
    return true;
}

static void token_post_done(struct request *req)
{
    struct meta *m = store_meta(req->srv->store);
    if (m == NULL) {
        token_fail(req, 503, "temporarily_unavailable", "database unavailable; retry later");
        return;
    }
    struct form f;
    memset(&f, 0, sizeof(f));
    struct bearer_scope *want = calloc(1, sizeof(*want));
    struct auth_identity *id = calloc(1, sizeof(*id));
    if (want == NULL ||
        !form_parse(req->body.data != NULL ? req->body.data : "", req->body.len, &f)) {
        token_fail(req, 400, "invalid_request", "the form cannot be read");
        goto out;
    }
    if (!service_ok(req, f.service)) {
        goto out;
    }
    if (f.scope != NULL) {
        bearer_scope_add(want, f.scope, strlen(f.scope));
    }
    const char *why = NULL;
    if (id == NULL) {
        token_fail(req, 500, "server_error", "out of memory");
    } else if (f.grant_type == NULL) {
        token_fail(req, 400, "invalid_request", "grant_type is required");
    } else if (strcmp(f.grant_type, "password") == 0) {
        if (f.username == NULL || f.username[0] == '\0' || f.password == NULL) {
            token_fail(req, 400, "invalid_request",
                       "grant_type password needs username and password");
            goto out;
        }
        enum oci_login result = oci_auth_login(req, m, f.username, f.password, id, &why);
        if (result == OCI_LOGIN_ERROR || result == OCI_LOGIN_RETRY) {
            token_server_error(req, result == OCI_LOGIN_RETRY ? BERTH_EUNAVAILABLE : BERTH_EDB,
                               "authorization failed");
        } else if (result != OCI_LOGIN_OK) {
            login_refused(req, result, why, id->access_key_id);
        } else {
            bool offline = f.access_type != NULL && strcmp(f.access_type, "offline") == 0;
            issue(req, m, id, id->access_key_id, want, NULL, offline);
        }
    } else if (strcmp(f.grant_type, "refresh_token") == 0) {
        if (f.refresh_token == NULL) {
            token_fail(req, 400, "invalid_request", "grant_type refresh_token needs refresh_token");
            goto out;
        }
        struct authtoken rt;
        enum berth_err rc = auth_token_verify(req->srv->auth, f.refresh_token, AUTHTOKEN_REFRESH,
                                              NULL, NULL, time_now_ms() / 1000, &rt);
        if (rc != BERTH_OK && rc != BERTH_EDENIED && rc != BERTH_EINVAL) {
            log_error("event=token_check_failed err=%s endpoint=token", berth_strerror(rc));
            token_fail(req, 500, "server_error", "cannot check the refresh token");
            goto out;
        }
        if (rc != BERTH_OK) {
            metrics_auth_failure("bad_refresh_token");
            log_info("event=auth_refused reason=%s endpoint=token",
                     rc == BERTH_EDENIED ? "refresh_token_expired" : "bad_refresh_token");
            token_fail(req, 401, "invalid_grant",
                       rc == BERTH_EDENIED ? "the refresh token has expired: log in again"
                                           : "invalid refresh token");
            goto out;
        }
        struct auth_lookup lk;
        rc = auth_lookup(req->srv->auth, m, rt.principal, NULL, &lk);
        if (rc != BERTH_OK) {
            log_error("event=auth_lookup_failed err=%s endpoint=token", berth_strerror(rc));
            token_server_error(req, rc, "authorization failed");
        } else {
            if (!lk.key_found) {
                login_refused(req, OCI_LOGIN_BAD, "unknown_key", rt.principal);
            } else {
                auth_lookup_take_identity(&lk, id);
                issue(req, m, id, id->access_key_id, want, f.refresh_token, false);
            }
            auth_lookup_fini(req->srv->auth, &lk);
        }
        auth_wipe(&rt, sizeof(rt));
    } else {
        token_fail(req, 400, "unsupported_grant_type",
                   "grant_type must be password or refresh_token");
    }
out:
    if (id != NULL) {
        auth_identity_clear(req->srv->auth, id);
    }
    free(id);
    form_free(&f);
    free(want);
}

void oci_token(struct request *req)
{
    if (!oci_auth_is_bearer(req)) {
        oci_error(req, 404, "NOT_FOUND", "no such endpoint in the registry API", NULL);
        return;
    }
    if (oci_method_is(req, "GET") || req->is_head) {
        struct meta *m = store_meta(req->srv->store);
        if (m == NULL) {
            token_fail(req, 503, "temporarily_unavailable", "database unavailable; retry later");
            return;
        }
        token_get(req, m);
        return;
    }
    if (!oci_method_is(req, "POST")) {
        oci_method_not_allowed(req, "GET, HEAD, POST");
        return;
    }
    const char *ctype = http_header(req, "Content-Type");
    if (ctype == NULL || strncasecmp(ctype, "application/x-www-form-urlencoded", 33) != 0) {
        token_fail(req, 400, "invalid_request", "POST a form (application/x-www-form-urlencoded)");
        return;
    }
    if (!http_has_body(req)) {
        token_post_done(req);
        return;
    }
    if (http_buffer_body(req, FORM_MAX, true)) {
        req->on_done = token_post_done;
    }
}
