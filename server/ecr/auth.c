/*
 * ECR operations that hand out credentials: GetAuthorizationToken (the
 * `docker login` password, a berth-signed login token) and
 * GetDownloadUrlForLayer (a /v2 blob URL carrying a short-lived download
 * token that plain HTTP clients can fetch). Pool threads; see ecr_int.h.
 */
#include "ecr_int.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "storage/blob/blob.h"
#include "storage/store/store.h"
#include "common/str.h"
#include "common/timeutil.h"

/* The registry's base URL without a trailing '/', as proxyEndpoint. */
static void base_url(struct ecr_call *call, char *out, size_t cap)
{
    str_copy(out, cap, call->req->srv->public_url);
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '/') {
        out[--n] = '\0';
    }
}

/* Who a token is issued to: the caller's verified access key id. While
 * auth is off nobody is verified: "anonymous", which names no key, so such
 * a token is refused once auth is on. */
static const char *token_principal(struct ecr_call *call)
{
    const struct auth_identity *id = &call->ident;
    return !id->anonymous && id->access_key_id[0] != '\0' ? id->access_key_id : "anonymous";
}

static bool is_registry_id(json_t *v)
{
    if (!json_is_string(v) || json_string_length(v) != 12) {
        return false;
    }
    for (const char *p = json_string_value(v); *p; p++) {
        if (*p < '0' || *p > '9') {
            return false;
        }
    }
    return true;
}

static void get_authorization_token(struct ecr_call *call)
{
    json_t *ids;
    if (!ecr_array(call, call->in, "registryIds", ECR_OPTIONAL, 1, 10, &ids)) {
        return;
    }
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        if (!is_registry_id(v)) {
            ecr_invalid(call, "registryIds", "Member must satisfy regular expression '[0-9]{12}'");
            return;
        }
    }
    struct server *srv = call->req->srv;
    int64_t now = time_now_ms() / 1000;
    int64_t ttl = srv->cfg->auth_token_ttl_seconds;
    char token[AUTHTOKEN_MAX_LEN + 1], basic[AUTHTOKEN_BASIC_MAX_LEN + 1];
    const char *principal = token_principal(call);
    enum berth_err rc = auth_token_issue(srv->auth, AUTHTOKEN_LOGIN, principal, NULL, NULL, now,
                                         ttl, token, sizeof(token));
    if (rc == BERTH_OK) {
        rc = authtoken_basic_encode(token, basic, sizeof(basic));
    }
    auth_wipe(token, sizeof(token));
    if (rc != BERTH_OK) {
        auth_wipe(basic, sizeof(basic));
        ecr_server_error(call, rc);
        return;
    }
    char endpoint[sizeof(srv->public_url)];
    base_url(call, endpoint, sizeof(endpoint));
    json_t *list = json_array();
    size_t count = ids != NULL ? json_array_size(ids) : 1;
    for (size_t k = 0; list != NULL && k < count; k++) {
        json_t *entry = json_pack("{s:s, s:o, s:s}", "authorizationToken", basic, "expiresAt",
                                  ecr_time((now + ttl) * 1000), "proxyEndpoint", endpoint);
        if (entry == NULL || json_array_append_new(list, entry) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    auth_wipe(basic, sizeof(basic));
    if (list == NULL) {
        ecr_server_error(call, BERTH_ENOMEM);
        return;
    }
    json_object_set_new(call->out, "authorizationData", list);
    char shown[AUTH_AKID_MAX + 8];
    log_info("event=login_token_issued key=%s ttl=%lld", log_value(principal, shown, sizeof(shown)),
             (long long)ttl);
}

static void get_download_url_for_layer(struct ecr_call *call)
{
    const char *name, *layer;
    if (!ecr_repo_name(call, &name) ||
        !ecr_string(call, call->in, "layerDigest", ECR_REQUIRED, 1, 1000, &layer)) {
        return;
    }
    struct digest d;
    if (digest_parse(layer, &d) != BERTH_OK) {
        ecr_invalid(call, "layerDigest",
                    "must satisfy regular expression '[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+'");
        return;
    }
    struct meta_repo repo;
    if (!ecr_find_repo(call, name, &repo)) {
        return;
    }
    struct server *srv = call->req->srv;
    struct meta *m = store_meta(srv->store);
    if (m == NULL) {
        ecr_server_error(call, BERTH_EUNAVAILABLE);
        return;
    }
    struct meta_blob blob;
    enum berth_err rc = meta_blob_get_linked(m, repo.id, d.str, &blob);
    if (rc == BERTH_ENOTFOUND) {
        ecr_fail(call, "LayersNotFoundException",
                 "The layer with digest '%s' does not exist in the repository with name '%s' in "
                 "the registry with id '%s'",
                 d.str, name, ecr_registry(call));
        return;
    }
    bool in_image = false, referenced = false, archived = false;
    if (rc == BERTH_OK) {
        rc = meta_blob_in_image(m, repo.id, d.str, &in_image);
    }
    if (rc == BERTH_OK) {
        rc = meta_blob_archive_state(m, repo.id, d.str, &referenced, &archived);
    }
    if (rc != BERTH_OK) {
        ecr_server_error(call, rc);
        return;
    }
    if (archived) {
        /* only archived images use it: not pulled until one is restored */
        ecr_fail(call, "LayerInaccessibleException",
                 "The layer with digest '%s' in the repository with name '%s' in the registry "
                 "with id '%s' belongs only to archived images",
                 d.str, name, ecr_registry(call));
        return;
    }
    if (!in_image) {
        ecr_fail(call, "LayerInaccessibleException",
                 "The layer with digest '%s' in the repository with name '%s' in the registry "
                 "with id '%s' is not part of any image",
                 d.str, name, ecr_registry(call));
        return;
    }
    if (srv->cfg->storage_s3_redirect) {
        /* as ECR does: a presigned URL of the object in the store */
        char presigned[4096];
        rc = blob_url(store_blobs(srv->store), &d, AUTH_DOWNLOAD_TTL_SECONDS, presigned,
                      sizeof(presigned));
        if (rc == BERTH_OK) {
            json_object_set_new(call->out, "downloadUrl", json_string(presigned));
            json_object_set_new(call->out, "layerDigest", json_string(d.str));
            return;
        }
        if (rc != BERTH_EUNSUPPORTED) {
            log_warn("event=blob_url_failed digest=%s err=%s", d.str, berth_strerror(rc));
        }
    }
    char token[AUTHTOKEN_MAX_LEN + 1];
    int64_t now = time_now_ms() / 1000;
    rc = auth_token_issue(srv->auth, AUTHTOKEN_DOWNLOAD, token_principal(call), name, d.str, now,
                          AUTH_DOWNLOAD_TTL_SECONDS, token, sizeof(token));
    if (rc != BERTH_OK) {
        ecr_server_error(call, rc);
        return;
    }
    char endpoint[sizeof(srv->public_url)];
    char url[sizeof(endpoint) + NAMES_REPO_MAX + DIGEST_STR_MAX + AUTHTOKEN_MAX_LEN + 32];
    base_url(call, endpoint, sizeof(endpoint));
    /* The token is base64url: nothing in it needs escaping in a query. */
    snprintf(url, sizeof(url), "%s/v2/%s/blobs/%s?token=%s", endpoint, name, d.str, token);
    auth_wipe(token, sizeof(token));
    json_object_set_new(call->out, "downloadUrl", json_string(url));
    json_object_set_new(call->out, "layerDigest", json_string(d.str));
    auth_wipe(url, sizeof(url));
}

const struct ecr_op ecr_auth_ops[] = {
    {"GetAuthorizationToken", get_authorization_token, ECR_SCOPE_REGISTRY},
    {"GetDownloadUrlForLayer", get_download_url_for_layer, ECR_SCOPE_REPOSITORY_NAME},
    {NULL, NULL, ECR_SCOPE_REGISTRY},
};
