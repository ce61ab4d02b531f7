/*
 * The OCI distribution API: routing, the error format and the one table
 * that maps registry reasons to HTTP statuses and OCI error codes, and the
 * listing endpoints (/v2/, tags, catalog, referrers). Blob and manifest
 * handlers live in oci_blobs.c and oci_manifests.c. Pool threads.
 */
#include "oci_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/log.h"
#include "server/oci/oci_route.h"
#include "storage/registry/repo_list.h"
#include "common/str.h"

void oci_error(struct request *req, unsigned status, const char *code, const char *message,
               const char *detail_json)
{
    /* Messages can quote client input (a media type cut at a limit):
     * make them valid UTF-8 or jansson refuses the string. */
    char text_msg[1024];
    str_copy(text_msg, sizeof(text_msg), message ? message : "");
    str_utf8_scrub(text_msg);
    json_t *err = json_pack("{s:s, s:s}", "code", code, "message", text_msg);
    if (err != NULL && detail_json != NULL) {
        json_t *detail = json_loads(detail_json, 0, NULL);
        if (detail != NULL) {
            json_object_set_new(err, "detail", detail);
        }
    }
    json_t *doc = err ? json_pack("{s:[o]}", "errors", err) : NULL;
    /* a 503 is always one the client may retry */
    oci_send_doc(req, status, doc, status == 503 ? "Retry-After" : NULL, "1");
}

/* The one mapping from registry reasons to OCI status and code. */
static const struct {
    unsigned status;
    const char *code;
} reason_map[] = {
    [REG_OK] = {200, "UNKNOWN"},
    [REG_REPO_UNKNOWN] = {404, "NAME_UNKNOWN"},
    [REG_BLOB_UNKNOWN] = {404, "BLOB_UNKNOWN"},
    [REG_MANIFEST_UNKNOWN] = {404, "MANIFEST_UNKNOWN"},
    [REG_UPLOAD_UNKNOWN] = {404, "BLOB_UPLOAD_UNKNOWN"},
    /* another request is writing the session (PATCH, PUT or DELETE) */
    [REG_UPLOAD_BUSY] = {409, "BLOB_UPLOAD_INVALID"},
    [REG_DIGEST_INVALID] = {400, "DIGEST_INVALID"},
    [REG_MANIFEST_INVALID] = {400, "MANIFEST_INVALID"},
    [REG_MANIFEST_TOO_BIG] = {413, "SIZE_INVALID"},
    [REG_LAYERS_MISSING] = {400, "MANIFEST_BLOB_UNKNOWN"},
    [REG_CHILDREN_MISSING] = {400, "MANIFEST_BLOB_UNKNOWN"},
    [REG_TAG_INVALID] = {400, "TAG_INVALID"},
    [REG_TAG_IMMUTABLE] = {400, "TAG_INVALID"},
    [REG_IMAGE_EXISTS] = {400, "MANIFEST_INVALID"},
    [REG_REFERENCED_BY_INDEX] = {409, "DENIED"},
    [REG_INTERNAL] = {500, "UNKNOWN"},
    [REG_TAG_DIGEST_MISMATCH] = {404, "MANIFEST_UNKNOWN"},
    [REG_STORAGE_CLASS_UNSUPPORTED] = {400, "UNSUPPORTED"},
    /* ECR: pulling an archived image is a 404 */
    [REG_IMAGE_ARCHIVED] = {404, "MANIFEST_UNKNOWN"},
    /* and so is fetching a layer only archived images use */
    [REG_LAYER_ARCHIVED] = {404, "BLOB_UNKNOWN"},
    /* the object store or the database is down: retry (with Retry-After, in oci_fail) */
    [REG_UNAVAILABLE] = {503, "UNAVAILABLE"},
    /* ECR's quota of tags per image: a refusal, not a malformed request */
    [REG_TAG_LIMIT] = {403, "DENIED"},
};

bool oci_err_transient(enum berth_err rc)
{
    return rc == BERTH_ENOFD || rc == BERTH_ENOMEM || rc == BERTH_EBUSY || rc == BERTH_EUNAVAILABLE;
}

void oci_server_error(struct request *req, enum berth_err rc, const char *event)
{
    log_error("event=%s err=%s", event, berth_strerror(rc));
    if (!oci_err_transient(rc)) {
        oci_error(req, 500, "UNKNOWN", "internal error", NULL);
        return;
    }
    json_t *doc = json_pack("{s:[{s:s, s:s}]}", "errors", "code", "UNAVAILABLE", "message",
                            rc == BERTH_EUNAVAILABLE ? "storage unavailable; retry later"
                                                     : "server resources exhausted; retry later");
    oci_send_doc(req, 503, doc, "Retry-After", "1");
}

void oci_upstream_failed(struct request *req, enum berth_err rc, const char *err)
{
    char msg[768];
    if (rc == BERTH_EUNAVAILABLE) {
        /* not the upstream: this berth's own storage (the database) */
        oci_server_error(req, rc, "upstream_cache_local_failure");
        return;
    }
    snprintf(msg, sizeof(msg), "pull-through cache: %s", err[0] != '\0' ? err : berth_strerror(rc));
    if (rc == BERTH_EBUSY) {
        oci_error(req, 429, "TOOMANYREQUESTS", msg, NULL);
    } else {
        oci_error(req, 503, "UNAVAILABLE", msg, NULL);
    }
}

void oci_fail(struct request *req, const struct registry_status *s)
{
    enum registry_reason r = s->reason;
    if ((size_t)r >= sizeof(reason_map) / sizeof(reason_map[0]) || r == REG_OK) {
        r = REG_INTERNAL;
    }
    char detail[DIGEST_STR_MAX + 32];
    const char *detail_json = NULL;
    if (s->digest[0] != '\0') {
        snprintf(detail, sizeof(detail), "{\"digest\":\"%s\"}", s->digest);
        detail_json = detail;
    }
    const char *message = s->message[0] ? s->message : "error";
    if (s->reason == REG_INTERNAL && (s->err == BERTH_ENOMEM || s->err == BERTH_ENOFD)) {
        /* out of memory, descriptors, or a hash OpenSSL could not compute:
         * the client may retry */
        log_error("event=request_failed msg=\"%s\"", message);
        oci_server_error(req, s->err, "request_unavailable");
        return;
    }
    if (r == REG_INTERNAL) {
        log_error("event=request_failed msg=\"%s\"", message);
    }
    if (r == REG_UNAVAILABLE) {
        json_t *doc =
            json_pack("{s:[{s:s, s:s}]}", "errors", "code", "UNAVAILABLE", "message", message);
        oci_send_doc(req, 503, doc, "Retry-After", "1");
        return;
    }
    oci_error(req, reason_map[r].status, reason_map[r].code, message, detail_json);
}

void oci_method_not_allowed(struct request *req, const char *allow)
{
    char body[256];
    snprintf(body, sizeof(body),
             "{\"errors\":[{\"code\":\"UNSUPPORTED\",\"message\":\"method %s not allowed\"}]}",
             strlen(req->method) < 32 ? req->method : "?");
    struct http_response *resp = http_resp_bytes(body, strlen(body));
    http_add(resp, "Allow", allow);
    http_send_json(req, 405, "application/json", body, resp);
}

bool oci_method_is(struct request *req, const char *method)
{
    return strcmp(req->method, method) == 0;
}

/* Parse a pagination count: BERTH_EINVAL when present but not a number
 * from 0 to max. *out is -1 when absent. */
static enum berth_err parse_n(struct request *req, int64_t max, int64_t *out)
{
    const char *n = http_query(req, "n");
    if (n == NULL || *n == '\0') {
        *out = -1;
        return BERTH_OK;
    }
    uint64_t v;
    if (str_parse_u64(n, (uint64_t)max, &v) != BERTH_OK) {
        return BERTH_EINVAL;
    }
    *out = (int64_t)v;
    return BERTH_OK;
}

struct names_ctx {
    json_t *array;
    char last[NAMES_REPO_MAX + 1];
};

static int add_name(void *arg, const char *name)
{
    struct names_ctx *c = arg;
    json_array_append_new(c->array, json_string(name));
    str_copy(c->last, sizeof(c->last), name);
    return 0;
}

/* Room for one percent-encoded query value of a Link: a repository name,
 * a tag, a digest or a media type, each byte at most three. */
#define LINK_VALUE_MAX (3 * NAMES_REPO_MAX + 1)
_Static_assert(NAMES_REPO_MAX >= NAMES_TAG_MAX && NAMES_REPO_MAX >= DIGEST_STR_MAX &&
                   NAMES_REPO_MAX >= MANIFEST_MEDIA_TYPE_MAX,
               "LINK_VALUE_MAX holds every value a Link carries");

/* Percent-encode value for the query of a next-page Link into out
 * (LINK_VALUE_MAX bytes): libmicrohttpd decodes the next request's query,
 * '+' as a space, so a value sent as is (application/spdx+json) comes back
 * as another. False after answering 500 when it does not fit, which the
 * limits above rule out. */
static bool link_value_encode(struct request *req, char *out, const char *value)
{
    if (str_pct_encode(out, LINK_VALUE_MAX, value) != BERTH_OK) {
        oci_server_error(req, BERTH_ETOOBIG, "link_value_too_long");
        return false;
    }
    return true;
}

void oci_send_doc(struct request *req, unsigned status, json_t *doc, const char *header,
                  const char *value)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (text == NULL) {
        http_send(req, 500, NULL, 0);
        return;
    }
    struct http_response *resp = http_resp_bytes(text, strlen(text));
    if (header != NULL) {
        http_add(resp, header, value);
    }
    http_send_json(req, status, "application/json", text, resp);
    free(text);
}

static void handle_tags(struct request *req)
{
    const struct berth_config *cfg = req->srv->cfg;
    int64_t n;
    if (parse_n(req, INT64_MAX / 2, &n) != BERTH_OK) {
        oci_error(req, 400, "PAGINATION_NUMBER_INVALID", "n must be a non-negative integer", NULL);
        return;
    }
    const char *last = http_query(req, "last");
    int64_t page = (n < 0 || n > cfg->storage_tags_max_entries) ? cfg->storage_tags_max_entries : n;
    struct names_ctx c = {.array = json_array()};
    bool more = false;
    struct registry_status s;
    enum berth_err rc = BERTH_OK;
    if (c.array == NULL) {
        http_send(req, 500, NULL, 0);
        return;
    }
    if (page > 0) {
        rc = registry_tags(req->srv->store, req->repo, last, page, add_name, &c, &more, &s);
    } else {
        /* n=0: an empty page, but the repository must still exist */
        struct meta_repo r;
        rc = registry_repo(req->srv->store, req->repo, false, &r, &s);
    }
    if (rc != BERTH_OK) {
        json_decref(c.array);
        oci_fail(req, &s);
        return;
    }
    char link[NAMES_REPO_MAX + LINK_VALUE_MAX + 128];
    const char *link_value = NULL;
    if (more) {
        char at[LINK_VALUE_MAX];
        if (!link_value_encode(req, at, c.last)) {
            json_decref(c.array);
            return;
        }
        snprintf(link, sizeof(link), "</v2/%s/tags/list?last=%s&n=%lld>; rel=\"next\"", req->repo,
                 at, (long long)page);
        link_value = link;
    }
    json_t *doc = json_pack("{s:s, s:o}", "name", req->repo, "tags", c.array);
    oci_send_doc(req, 200, doc, "Link", link_value);
}

struct catalog_ctx {
    struct request *req;
    struct names_ctx *names;
    enum berth_err rc; /* a policy that could not be read: no listing */
};

static bool catalog_allow(void *arg, const char *name)
{
    struct catalog_ctx *c = arg;
    bool allowed = false;
    if (c->rc == BERTH_OK) {
        c->rc = oci_auth_may_list(c->req, name, &allowed);
    }
    return c->rc == BERTH_OK && allowed;
}

static enum berth_err catalog_take(void *arg, const struct meta_repo *repo)
{
    struct catalog_ctx *c = arg;
    return json_array_append_new(c->names->array, json_string(repo->name)) == 0 ? BERTH_OK
                                                                                : BERTH_ENOMEM;
}

static void handle_catalog(struct request *req)
{
    const struct berth_config *cfg = req->srv->cfg;
    int64_t n;
    if (parse_n(req, cfg->storage_catalog_max_entries, &n) != BERTH_OK) {
        oci_error(req, 400, "PAGINATION_NUMBER_INVALID",
                  "n must be an integer from 0 to the catalog limit", NULL);
        return;
    }
    if (n < 0) {
        n = 100 < cfg->storage_catalog_max_entries ? 100 : cfg->storage_catalog_max_entries;
    }
    struct names_ctx c = {.array = json_array()};
    struct catalog_ctx cc = {req, &c, BERTH_OK};
    bool more = false;
    struct registry_status s;
    if (c.array == NULL) {
        http_send(req, 500, NULL, 0);
        return;
    }
    /* with auth on, only the repositories the caller may describe */
    if (repo_list_page(req->srv->store, http_query(req, "last"), n,
                       req->ident.enforced ? catalog_allow : NULL, catalog_take, &cc, c.last,
                       sizeof(c.last), &more, &s) != BERTH_OK) {
        json_decref(c.array);
        oci_fail(req, &s);
        return;
    }
    if (cc.rc != BERTH_OK) {
        /* a repository left out for a failure, not a refusal */
        json_decref(c.array);
        oci_server_error(req, cc.rc, "auth_policy_failed");
        return;
    }
    char link[LINK_VALUE_MAX + 128];
    const char *link_value = NULL;
    if (more) {
        char at[LINK_VALUE_MAX];
        if (!link_value_encode(req, at, c.last)) {
            json_decref(c.array);
            return;
        }
        snprintf(link, sizeof(link), "</v2/_catalog?last=%s&n=%lld>; rel=\"next\"", at,
                 (long long)n);
        link_value = link;
    }
    json_t *doc = json_pack("{s:o}", "repositories", c.array);
    oci_send_doc(req, 200, doc, "Link", link_value);
}

#define REFERRERS_PAGE 1000

struct referrers_ctx {
    json_t *manifests;
    int64_t count;
    bool more;
    char last[DIGEST_STR_MAX];
    const char *after;
};

static int add_referrer(void *arg, const struct meta_manifest *mf, const char *annotations)
{
    struct referrers_ctx *c = arg;
    if (c->after != NULL && strcmp(mf->digest, c->after) <= 0) {
        return 0;
    }
    if (c->count == REFERRERS_PAGE) {
        c->more = true;
        return 1;
    }
    json_t *d = json_pack("{s:s, s:s, s:I}", "mediaType", mf->media_type, "digest", mf->digest,
                          "size", (json_int_t)mf->size);
    if (d == NULL) {
        return 1;
    }
    if (mf->artifact_type[0] != '\0') {
        json_object_set_new(d, "artifactType", json_string(mf->artifact_type));
    }
    if (annotations != NULL) {
        json_t *ann = json_loads(annotations, 0, NULL);
        if (ann != NULL) {
            json_object_set_new(d, "annotations", ann);
        }
    }
    json_array_append_new(c->manifests, d);
    c->count++;
    str_copy(c->last, sizeof(c->last), mf->digest);
    return 0;
}

static void handle_referrers(struct request *req)
{
    struct digest subject;
    if (digest_parse(req->ref, &subject) != BERTH_OK) {
        oci_error(req, 400, "DIGEST_INVALID", "invalid digest", NULL);
        return;
    }
    const char *artifact_type = http_query(req, "artifactType");
    if (artifact_type != NULL && *artifact_type == '\0') {
        artifact_type = NULL;
    }
    struct referrers_ctx c = {.manifests = json_array(), .after = http_query(req, "last")};
    struct registry_status s;
    if (c.manifests == NULL) {
        http_send(req, 500, NULL, 0);
        return;
    }
    if (registry_referrers(req->srv->store, req->repo, &subject, artifact_type, add_referrer, &c,
                           &s) != BERTH_OK) {
        json_decref(c.manifests);
        oci_fail(req, &s);
        return;
    }
    char link[NAMES_REPO_MAX + DIGEST_STR_MAX + 2 * LINK_VALUE_MAX + 64] = "";
    if (c.more) {
        /* a filter that matched is a stored artifact type, so it fits;
         * one cut or left out would change what the next page lists */
        char last[LINK_VALUE_MAX], at[LINK_VALUE_MAX] = "";
        if (!link_value_encode(req, last, c.last) ||
            (artifact_type != NULL && !link_value_encode(req, at, artifact_type))) {
            json_decref(c.manifests);
            return;
        }
        snprintf(link, sizeof(link), "</v2/%s/referrers/%s?last=%s%s%s>; rel=\"next\"", req->repo,
                 subject.str, last, artifact_type != NULL ? "&artifactType=" : "", at);
    }
    json_t *doc = json_pack("{s:i, s:s, s:o}", "schemaVersion", 2, "mediaType",
                            "application/vnd.oci.image.index.v1+json", "manifests", c.manifests);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (text == NULL) {
        http_send(req, 500, NULL, 0);
        return;
    }
    struct http_response *resp = http_resp_bytes(text, strlen(text));
    if (artifact_type != NULL) {
        http_add(resp, "OCI-Filters-Applied", "artifactType");
    }
    if (c.more) {
        http_add(resp, "Link", link);
    }
    http_send_json(req, 200, "application/vnd.oci.image.index.v1+json", text, resp);
    free(text);
}

static void handle_base(struct request *req)
{
    http_send_json(req, 200, "application/json", "{}", NULL);
}

/* The route template each route is counted under in the metrics. */
static const char *route_template(enum oci_route route)
{
    switch (route) {
    case OCI_ROUTE_NONE:
        return "unknown";
    case OCI_ROUTE_NAME_INVALID:
        return "name_invalid";
    case OCI_ROUTE_BASE:
        return "/v2/";
    case OCI_ROUTE_CATALOG:
        return "/v2/_catalog";
    case OCI_ROUTE_TAGS:
        return "/v2/{name}/tags/list";
    case OCI_ROUTE_MANIFEST:
        return "/v2/{name}/manifests/{reference}";
    case OCI_ROUTE_BLOB:
        return "/v2/{name}/blobs/{digest}";
    case OCI_ROUTE_UPLOAD_START:
        return "/v2/{name}/blobs/uploads/";
    case OCI_ROUTE_UPLOAD:
        return "/v2/{name}/blobs/uploads/{uuid}";
    case OCI_ROUTE_REFERRERS:
        return "/v2/{name}/referrers/{digest}";
    case OCI_ROUTE_TOKEN:
        return "/v2/token";
    }
    return "unknown";
}

static void oci_dispatch(struct request *req)
{
    enum oci_route route =
        oci_route_parse(req->path, req->repo, sizeof(req->repo), req->ref, sizeof(req->ref));
    req->route = route_template(route);
    bool get = oci_method_is(req, "GET") || req->is_head;
    if (!oci_authorize(req, route)) {
        return;
    }
    switch (route) {
    case OCI_ROUTE_NONE:
        oci_error(req, 404, "NOT_FOUND", "no such endpoint in the registry API", NULL);
        return;
    case OCI_ROUTE_NAME_INVALID:
        oci_error(req, 400, "NAME_INVALID", "invalid repository name", NULL);
        return;
    case OCI_ROUTE_BASE:
        get ? handle_base(req) : oci_method_not_allowed(req, "GET, HEAD");
        return;
    case OCI_ROUTE_CATALOG:
        get ? handle_catalog(req) : oci_method_not_allowed(req, "GET, HEAD");
        return;
    case OCI_ROUTE_TAGS:
        get ? handle_tags(req) : oci_method_not_allowed(req, "GET, HEAD");
        return;
    case OCI_ROUTE_REFERRERS:
        get ? handle_referrers(req) : oci_method_not_allowed(req, "GET, HEAD");
        return;
    case OCI_ROUTE_MANIFEST:
        oci_manifest(req);
        return;
    case OCI_ROUTE_BLOB:
        oci_blob(req);
        return;
    case OCI_ROUTE_UPLOAD_START:
        oci_upload_start(req);
        return;
    case OCI_ROUTE_UPLOAD:
        oci_upload(req);
        return;
    case OCI_ROUTE_TOKEN:
        oci_token(req);
        return;
    }
    oci_error(req, 404, "NOT_FOUND", "no such endpoint", NULL);
}

/* Every request under /v2, an X-Amz-Target header or not: the ECR API is
 * not reached through /v2 paths (a proxy that lets only /v2 through must
 * not pass management calls). */
static bool oci_accepts(struct request *req)
{
    return strncmp(req->path, "/v2", 3) == 0 && (req->path[3] == '\0' || req->path[3] == '/');
}

static void oci_api_error(struct request *req, unsigned status, const char *code,
                          const char *message)
{
    if (status == 503) {
        /* a store down while a body arrived: retry, like oci_fail's 503 */
        json_t *doc = json_pack("{s:[{s:s, s:s}]}", "errors", "code", code, "message", message);
        oci_send_doc(req, 503, doc, "Retry-After", "1");
        return;
    }
    oci_error(req, status, code, message, NULL);
}

const struct http_api oci_api = {
    .name = "oci",
    .accepts = oci_accepts,
    .dispatch = oci_dispatch,
    .error = oci_api_error,
};
