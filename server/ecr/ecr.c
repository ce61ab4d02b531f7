/*
 * The ECR JSON API framework: routing on X-Amz-Target, the bounded body,
 * AWS error responses, validation helpers that phrase errors as ECR does,
 * pagination tokens and shared response structures. Operations are in
 * server/ecr/<area>.c. Pool threads; see ecr_int.h.
 */
#include "ecr_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "common/log.h"
#include "storage/spec/names.h"
#include "common/rand.h"
#include "storage/store/store.h"
#include "common/str.h"
#include "common/timeutil.h"
#include "server/metrics/metrics.h"

/* Every table of operations; add a file's table here. */
static const struct ecr_op *const op_tables[] = {
    ecr_repo_ops,    ecr_image_ops,           ecr_layer_ops,          ecr_settings_ops,
    ecr_auth_ops,    ecr_policy_ops,          ecr_scan_ops,           ecr_lifecycle_ops,
    ecr_account_ops, ecr_registry_policy_ops, ecr_pull_exclusion_ops, ecr_template_ops,
    ecr_archive_ops, ecr_pull_through_ops,    ecr_signing_ops,        ecr_replication_ops,
};

static const struct ecr_op *find_op(const char *name)
{
    for (size_t t = 0; t < sizeof(op_tables) / sizeof(op_tables[0]); t++) {
        for (const struct ecr_op *op = op_tables[t]; op->name != NULL; op++) {
            if (strcmp(op->name, name) == 0) {
                return op;
            }
        }
    }
    return NULL;
}

bool ecr_fail(struct ecr_call *call, const char *type, const char *fmt, ...)
{
    if (call->failed) {
        return false;
    }
    call->failed = true;
    call->status = strcmp(type, "ServerException") == 0 ? 500 : 400;
    str_copy(call->type, sizeof(call->type), type);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(call->message, sizeof(call->message), fmt, ap);
    va_end(ap);
    /* echoed input cut by a bound may end mid-character: the JSON error
     * body needs valid UTF-8 */
    str_utf8_scrub(call->message);
    return false;
}

bool ecr_invalid(struct ecr_call *call, const char *field, const char *fmt, ...)
{
    char detail[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    return ecr_fail(call, "InvalidParameterException",
                    "Invalid parameter at '%s' failed to satisfy constraint: '%s'", field, detail);
}

void ecr_fail_repo_step(struct ecr_call *call, const char *name, enum berth_err rc)
{
    if (rc == BERTH_ENOTFOUND) {
        ecr_repo_not_found(call, name);
    } else {
        ecr_server_error(call, rc);
    }
}

void ecr_server_error(struct ecr_call *call, enum berth_err rc)
{
    log_error("event=ecr_server_error op=%s err=%s", call->op, berth_strerror(rc));
    if (rc == BERTH_EUNAVAILABLE) {
        /* the object store or the metadata database is down: a ServerException the SDKs retry, with
         * 503 as a service unavailable for now answers */
        if (!call->failed) {
            ecr_fail(call, "ServerException",
                     "The service is unavailable: storage cannot be reached. Retry later.");
            call->status = 503;
        }
        return;
    }
    ecr_fail(call, "ServerException", "The server encountered an internal error (%s).",
             berth_strerror(rc));
}

bool ecr_valid_policy(struct ecr_call *call, const char *text, enum authz_policy_kind kind)
{
    struct authz_policy *parsed = NULL;
    char detail[AUTHZ_DETAIL_MAX] = "";
    enum berth_err rc =
        authz_policy_parse(text, strlen(text), kind, &parsed, detail, sizeof(detail));
    authz_policy_free(parsed);
    if (rc == BERTH_ENOMEM) {
        ecr_server_error(call, rc);
        return false;
    }
    if (rc != BERTH_OK) {
        return ecr_fail(call, "InvalidParameterException", "%s (%s)",
                        kind == AUTHZ_REGISTRY_POLICY ? AUTHZ_INVALID_REGISTRY_POLICY_MESSAGE
                                                      : AUTHZ_INVALID_POLICY_MESSAGE,
                        detail);
    }
    return true;
}

struct meta *ecr_meta(struct ecr_call *call)
{
    struct meta *m = store_meta(call->req->srv->store);
    if (m == NULL) {
        ecr_server_error(call, BERTH_EUNAVAILABLE);
    }
    return m;
}

const char *ecr_registry(struct ecr_call *call)
{
    return call->req->srv->cfg->registry_id;
}

const char *ecr_region(struct ecr_call *call)
{
    return call->req->srv->cfg->registry_region;
}

bool ecr_repo_not_found(struct ecr_call *call, const char *name)
{
    return ecr_fail(call, "RepositoryNotFoundException",
                    "The repository with name '%s' does not exist in the registry with id '%s'",
                    name, ecr_registry(call));
}

void ecr_fail_registry(struct ecr_call *call, const struct registry_status *s)
{
    const char *repo = json_string_value(json_object_get(call->in, "repositoryName"));
    if (repo == NULL) {
        repo = "";
    }
    switch (s->reason) {
    case REG_REPO_UNKNOWN:
        ecr_repo_not_found(call, repo);
        return;
    case REG_LAYERS_MISSING:
    case REG_BLOB_UNKNOWN:
        ecr_fail(call, "LayersNotFoundException",
                 "Layers with digests '[%s]' required for pushing image into repository with "
                 "name '%s' in registry with id '%s' do not exist",
                 s->digest, repo, ecr_registry(call));
        return;
    case REG_CHILDREN_MISSING:
        ecr_fail(call, "ReferencedImagesNotFoundException",
                 "Manifest references images with digests '[%s]' that do not exist in the "
                 "repository with name '%s'",
                 s->digest, repo);
        return;
    case REG_DIGEST_INVALID:
        ecr_fail(call, "ImageDigestDoesNotMatchException", "%s", s->message);
        return;
    case REG_TAG_IMMUTABLE:
        ecr_fail(call, "ImageTagAlreadyExistsException", "%s", s->message);
        return;
    case REG_TAG_LIMIT:
        ecr_fail(call, "LimitExceededException", "%s", s->message);
        return;
    case REG_IMAGE_EXISTS:
        ecr_fail(call, "ImageAlreadyExistsException", "%s in registry with id '%s'", s->message,
                 ecr_registry(call));
        return;
    case REG_MANIFEST_UNKNOWN:
    case REG_TAG_DIGEST_MISMATCH:
        ecr_fail(call, "ImageNotFoundException", "%s", s->message);
        return;
    case REG_UPLOAD_UNKNOWN: {
        const char *upload = json_string_value(json_object_get(call->in, "uploadId"));
        ecr_fail(call, "UploadNotFoundException",
                 "The upload with id '%s' does not exist in the repository with name '%s' in the "
                 "registry with id '%s'",
                 upload != NULL ? upload : "", repo, ecr_registry(call));
        return;
    }
    case REG_UPLOAD_BUSY:
        /* another request is writing the session: this part is refused and
         * can be sent again */
        ecr_fail(call, "InvalidLayerPartException", "%s", s->message);
        return;
    case REG_REFERENCED_BY_INDEX:
        ecr_fail(call, "InvalidParameterException", "%s", s->message);
        return;
    case REG_STORAGE_CLASS_UNSUPPORTED:
        ecr_fail(call, "ImageStorageClassUpdateNotSupportedException", "%s", s->message);
        return;
    case REG_IMAGE_ARCHIVED:
        ecr_fail(call, "ImageArchivedException", "%s", s->message);
        return;
    case REG_LAYER_ARCHIVED:
        ecr_fail(call, "LayerInaccessibleException", "%s", s->message);
        return;
    case REG_MANIFEST_INVALID:
    case REG_MANIFEST_TOO_BIG:
        ecr_invalid(call, "imageManifest", "%s", s->message);
        return;
    case REG_TAG_INVALID:
        ecr_invalid(call, "imageTag", "%s", s->message);
        return;
    case REG_UNAVAILABLE:
        ecr_server_error(call, BERTH_EUNAVAILABLE);
        return;
    case REG_OK:
    case REG_INTERNAL:
        break;
    }
    /* the registry's message says what failed (a database or I/O error):
     * for the log, not the client */
    char shown[sizeof(s->message) + 16];
    log_error("event=ecr_server_error op=%s reason=%d msg=%s", call->op, (int)s->reason,
              log_value(s->message[0] ? s->message : "-", shown, sizeof(shown)));
    ecr_fail(call, "ServerException", "The server encountered an internal error.");
}

/* "{imageDigest:'…', imageTag:'…'}" as AWS prints an image id. */
static void image_id_text(const char *tag, const char *digest, char *out, size_t cap)
{
    snprintf(out, cap, "{imageDigest:'%.200s', imageTag:'%.300s'}",
             digest != NULL ? digest : "null", tag != NULL ? tag : "null");
}

void ecr_image_not_found(struct ecr_call *call, const char *repo, const char *tag,
                         const char *digest)
{
    char id[600];
    image_id_text(tag, digest, id, sizeof(id));
    ecr_fail(call, "ImageNotFoundException",
             "The image with imageId %s does not exist within the repository with name '%s' in "
             "the registry with id '%s'",
             id, repo, ecr_registry(call));
}

void ecr_fail_image(struct ecr_call *call, const char *repo, const char *tag, const char *digest,
                    const struct registry_status *s)
{
    char id[600];
    image_id_text(tag, digest, id, sizeof(id));
    switch (s->reason) {
    case REG_MANIFEST_UNKNOWN:
        ecr_image_not_found(call, repo, tag, digest);
        return;
    case REG_TAG_DIGEST_MISMATCH:
        /* what BatchGetImage reports as ImageTagDoesNotMatchDigest */
        ecr_fail(call, "ImageNotFoundException",
                 "The image with imageId %s does not exist within the repository with name '%s' "
                 "in the registry with id '%s': the image tag does not point at the image digest "
                 "given (it points at %s)",
                 id, repo, ecr_registry(call), s->digest);
        return;
    default:
        ecr_fail_registry(call, s);
        return;
    }
}

/* Length in characters (UTF-8 code points), as AWS counts. */
static size_t utf8_length(const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        if (((unsigned char)*s & 0xc0) != 0x80) {
            n++;
        }
    }
    return n;
}

static bool type_error(struct ecr_call *call, const char *key, const char *want)
{
    return ecr_fail(call, "SerializationException", "Value of '%s' must be %s.", key, want);
}

static bool missing(struct ecr_call *call, const char *key)
{
    return ecr_invalid(call, key, "Member must not be null");
}

bool ecr_string(struct ecr_call *call, json_t *obj, const char *key, enum ecr_need need, size_t min,
                size_t max, const char **out)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        return need == ECR_REQUIRED ? missing(call, key) : true;
    }
    if (!json_is_string(v)) {
        return type_error(call, key, "a string");
    }
    const char *s = json_string_value(v);
    size_t len = utf8_length(s);
    if (strlen(s) != json_string_length(v)) {
        return ecr_invalid(call, key, "Member must not contain NUL characters");
    }
    if (len < min) {
        return ecr_invalid(call, key, "Member must have length greater than or equal to %zu", min);
    }
    if (len > max) {
        return ecr_invalid(call, key, "Member must have length less than or equal to %zu", max);
    }
    *out = s;
    return true;
}

bool ecr_enum(struct ecr_call *call, json_t *obj, const char *key, enum ecr_need need,
              const char *const *values, const char **out)
{
    if (!ecr_string(call, obj, key, need, 0, 4096, out)) {
        return false;
    }
    if (*out == NULL) {
        return true;
    }
    for (const char *const *v = values; *v; v++) {
        if (strcmp(*v, *out) == 0) {
            return true;
        }
    }
    char set[512] = "";
    size_t o = 0;
    for (const char *const *v = values; *v && o < sizeof(set); v++) {
        int n = snprintf(set + o, sizeof(set) - o, "%s%s", o ? ", " : "", *v);
        if (n < 0) {
            break;
        }
        o += (size_t)n;
    }
    *out = NULL;
    return ecr_invalid(call, key, "Member must satisfy enum value set: [%s]", set);
}

bool ecr_int(struct ecr_call *call, json_t *obj, const char *key, enum ecr_need need, int64_t min,
             int64_t max, int64_t *out, bool *present)
{
    json_t *v = json_object_get(obj, key);
    if (present) {
        *present = false;
    }
    if (v == NULL || json_is_null(v)) {
        return need == ECR_REQUIRED ? missing(call, key) : true;
    }
    if (!json_is_integer(v)) {
        return type_error(call, key, "an integer");
    }
    json_int_t i = json_integer_value(v);
    if (i < min) {
        return ecr_invalid(call, key, "Member must have value greater than or equal to %lld",
                           (long long)min);
    }
    if (i > max) {
        return ecr_invalid(call, key, "Member must have value less than or equal to %lld",
                           (long long)max);
    }
    *out = (int64_t)i;
    if (present) {
        *present = true;
    }
    return true;
}

bool ecr_bool(struct ecr_call *call, json_t *obj, const char *key, enum ecr_need need, bool *out,
              bool *present)
{
    json_t *v = json_object_get(obj, key);
    if (present) {
        *present = false;
    }
    if (v == NULL || json_is_null(v)) {
        return need == ECR_REQUIRED ? missing(call, key) : true;
    }
    if (!json_is_boolean(v)) {
        return type_error(call, key, "a boolean");
    }
    *out = json_is_true(v);
    if (present) {
        *present = true;
    }
    return true;
}

bool ecr_array(struct ecr_call *call, json_t *obj, const char *key, enum ecr_need need, size_t min,
               size_t max, json_t **out)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        return need == ECR_REQUIRED ? missing(call, key) : true;
    }
    if (!json_is_array(v)) {
        return type_error(call, key, "a list");
    }
    size_t n = json_array_size(v);
    if (n < min) {
        return ecr_invalid(call, key, "Member must have length greater than or equal to %zu", min);
    }
    if (n > max) {
        return ecr_invalid(call, key, "Member must have length less than or equal to %zu", max);
    }
    *out = v;
    return true;
}

bool ecr_object(struct ecr_call *call, json_t *obj, const char *key, enum ecr_need need,
                json_t **out)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        return need == ECR_REQUIRED ? missing(call, key) : true;
    }
    if (!json_is_object(v)) {
        return type_error(call, key, "a structure");
    }
    *out = v;
    return true;
}

bool ecr_repo_name(struct ecr_call *call, const char **out)
{
    if (!ecr_registry_id(call) ||
        !ecr_string(call, call->in, "repositoryName", ECR_REQUIRED, 2, 256, out)) {
        return false;
    }
    if (!names_repo_valid(*out)) {
        return ecr_invalid(call, "repositoryName",
                           "must satisfy regular expression '" ECR_REPO_NAME_PATTERN "'");
    }
    return true;
}

bool ecr_registry_id(struct ecr_call *call)
{
    const char *id;
    if (!ecr_string(call, call->in, "registryId", ECR_OPTIONAL, 0, 64, &id)) {
        return false;
    }
    if (id == NULL) {
        return true;
    }
    bool digits = strlen(id) == 12;
    for (const char *p = id; digits && *p; p++) {
        digits = *p >= '0' && *p <= '9';
    }
    if (!digits) {
        return ecr_invalid(call, "registryId", "must satisfy regular expression '[0-9]{12}'");
    }
    if (strcmp(id, ecr_registry(call)) != 0) {
        const char *repo = json_string_value(json_object_get(call->in, "repositoryName"));
        if (repo != NULL) {
            return ecr_fail(call, "RepositoryNotFoundException",
                            "The repository with name '%s' does not exist in the registry with "
                            "id '%s'",
                            repo, id);
        }
        return ecr_fail(call, "RegistryNotFoundException",
                        "The registry with id '%s' does not exist", id);
    }
    return true;
}

#define TOKEN_PREFIX "b1:"

json_t *ecr_next_token(const char *last)
{
    size_t n = strlen(TOKEN_PREFIX) + strlen(last);
    char *plain = malloc(n + 1);
    char *enc = malloc(base64_encoded_size(n));
    json_t *token = NULL;
    if (plain != NULL && enc != NULL) {
        snprintf(plain, n + 1, "%s%s", TOKEN_PREFIX, last);
        base64_encode((const uint8_t *)plain, n, enc);
        token = json_string(enc);
    }
    free(plain);
    free(enc);
    return token;
}

int ecr_json_list_add(struct ecr_json_list *l, json_t *item)
{
    if (item == NULL || json_array_append_new(l->list, item) != 0) {
        l->out_of_memory = true;
        return 1;
    }
    return 0;
}

enum berth_err ecr_json_list_rc(const struct ecr_json_list *l, enum berth_err rc)
{
    return rc == BERTH_OK && l->out_of_memory ? BERTH_ENOMEM : rc;
}

bool ecr_pagination(struct ecr_call *call, int64_t max, int64_t *limit, char *after,
                    size_t after_cap)
{
    bool present = false;
    int64_t n = 100 < max ? 100 : max;
    if (!ecr_int(call, call->in, "maxResults", ECR_OPTIONAL, 1, max, &n, &present)) {
        return false;
    }
    *limit = n;
    after[0] = '\0';
    const char *token;
    if (!ecr_string(call, call->in, "nextToken", ECR_OPTIONAL, 0, 4096, &token)) {
        return false;
    }
    if (token == NULL || *token == '\0') {
        return true;
    }
    size_t tlen = strlen(token);
    uint8_t *raw = malloc(tlen / 4 * 3 + 1);
    size_t rlen = 0;
    bool ok = raw != NULL && base64_decode(token, tlen, raw, &rlen) == BERTH_OK &&
              rlen >= strlen(TOKEN_PREFIX) &&
              memcmp(raw, TOKEN_PREFIX, strlen(TOKEN_PREFIX)) == 0 &&
              rlen - strlen(TOKEN_PREFIX) < after_cap && memchr(raw, '\0', rlen) == NULL;
    if (ok) {
        size_t alen = rlen - strlen(TOKEN_PREFIX);
        memcpy(after, raw + strlen(TOKEN_PREFIX), alen);
        after[alen] = '\0';
    }
    free(raw);
    if (!ok) {
        return ecr_invalid(call, "nextToken", "Invalid NextToken");
    }
    return true;
}

json_t *ecr_time(int64_t ms)
{
    return json_real((double)ms / 1000.0);
}

void ecr_repo_arn(struct ecr_call *call, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "arn:aws:ecr:%s:%s:repository/%s", ecr_region(call), ecr_registry(call),
             name);
}

bool ecr_repo_arn_parse(const char *arn, struct ecr_arn *out)
{
    struct ecr_span field[5];
    const char *p = arn;
    for (int i = 0; i < 5; i++) {
        const char *colon = strchr(p, ':');
        if (colon == NULL || colon == p) {
            return false;
        }
        field[i] = (struct ecr_span){p, (size_t)(colon - p)};
        p = colon + 1;
    }
    if (!ecr_span_is(field[0], "arn") || !ecr_span_is(field[2], "ecr") ||
        !str_has_prefix(p, "repository/") || p[strlen("repository/")] == '\0') {
        return false;
    }
    out->partition = field[1];
    out->region = field[3];
    out->account = field[4];
    out->name = p + strlen("repository/");
    return true;
}

bool ecr_span_is(struct ecr_span span, const char *s)
{
    return strlen(s) == span.len && memcmp(span.p, s, span.len) == 0;
}

/* The registry's host[:port] for repositoryUri (public_url without scheme
 * or path). */
static void public_host(struct ecr_call *call, char *out, size_t cap)
{
    const char *url = call->req->srv->public_url;
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t n = strcspn(p, "/");
    snprintf(out, cap, "%.*s", (int)n, p);
}

json_t *ecr_repo_json(struct ecr_call *call, const struct meta_repo *repo)
{
    char arn[512], host[300], uri[600];
    ecr_repo_arn(call, repo->name, arn, sizeof(arn));
    public_host(call, host, sizeof(host));
    snprintf(uri, sizeof(uri), "%s/%s", host, repo->name);
    json_t *r = json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:{s:b}}", "repositoryArn", arn,
                          "registryId", ecr_registry(call), "repositoryName", repo->name,
                          "repositoryUri", uri, "createdAt", ecr_time(repo->created_at),
                          "imageTagMutability", meta_mutability_name(repo->mutability),
                          "imageScanningConfiguration", "scanOnPush", repo->scan_on_push);
    if (r == NULL) {
        return NULL;
    }
    struct meta *m = store_meta(call->req->srv->store);
    char *text = NULL;
    json_t *enc = NULL;
    if (m != NULL && meta_repo_get_text(m, repo->id, META_REPO_ENCRYPTION, &text) == BERTH_OK &&
        text != NULL) {
        enc = json_loads(text, 0, NULL);
    }
    free(text);
    json_object_set_new(r, "encryptionConfiguration",
                        enc ? enc : json_pack("{s:s}", "encryptionType", "AES256"));
    text = NULL;
    if (m != NULL &&
        meta_repo_get_text(m, repo->id, META_REPO_MUTABILITY_FILTERS, &text) == BERTH_OK &&
        text != NULL) {
        json_t *filters = json_loads(text, 0, NULL);
        if (filters != NULL) {
            json_object_set_new(r, "imageTagMutabilityExclusionFilters", filters);
        }
    }
    free(text);
    return r;
}

bool ecr_find_repo(struct ecr_call *call, const char *name, struct meta_repo *out)
{
    struct registry_status s;
    if (registry_repo(call->req->srv->store, name, false, out, &s) != BERTH_OK) {
        ecr_fail_registry(call, &s);
        return false;
    }
    return true;
}

bool ecr_find_image(struct ecr_call *call, const char *name, const struct ecr_image_id *id,
                    struct meta_repo *repo, struct meta_manifest *out)
{
    if (!ecr_find_repo(call, name, repo)) {
        return false;
    }
    struct registry_status s;
    if (registry_image_find(call->req->srv->store, repo, id->tag,
                            id->digest_text != NULL ? &id->digest : NULL, out, &s) != BERTH_OK) {
        ecr_fail_image(call, name, id->tag, id->digest_text, &s);
        return false;
    }
    return true;
}

void ecr_image_statuses(struct ecr_call *call, const char *key, bool with_registry,
                        ecr_status_read_fn read)
{
    const char *repo;
    struct ecr_image_id id;
    struct meta_repo r;
    struct meta_manifest mf;
    if (!ecr_repo_name(call, &repo) || !ecr_image_id_parse(call, &id) ||
        !ecr_find_image(call, repo, &id, &r, &mf)) {
        return;
    }
    struct meta *m = ecr_meta(call);
    if (m == NULL) {
        return;
    }
    json_t *list = json_array();
    enum berth_err rc = list != NULL ? read(m, mf.id, list) : BERTH_ENOMEM;
    if (rc != BERTH_OK) {
        json_decref(list);
        ecr_server_error(call, rc);
        return;
    }
    json_t *image_id = ecr_image_id_json(mf.digest, id.tag);
    if (image_id == NULL || json_object_set_new(call->out, "repositoryName", json_string(repo)) ||
        json_object_set_new(call->out, "imageId", image_id) != 0 ||
        (with_registry &&
         json_object_set_new(call->out, "registryId", json_string(ecr_registry(call))) != 0) ||
        json_object_set_new(call->out, key, list) != 0) {
        ecr_server_error(call, BERTH_ENOMEM);
    }
}

/* ---- the request ---- */

static void send_result(struct ecr_call *call)
{
    struct request *req = call->req;
    char *text;
    if (call->failed) {
        json_t *err = json_pack("{s:s, s:s}", "__type", call->type, "message", call->message);
        if (err != NULL && call->extra != NULL) {
            json_object_update(err, call->extra);
        }
        text = err ? json_dumps(err, JSON_COMPACT) : NULL;
        json_decref(err);
    } else {
        text = json_dumps(call->out, JSON_COMPACT | JSON_REAL_PRECISION(13));
    }
    if (text == NULL) {
        http_send(req, 500, NULL, 0);
        return;
    }
    struct http_response *resp = http_resp_bytes(text, strlen(text));
    http_add(resp, "x-amzn-RequestId", call->request_id);
    /* the access log ties the two ids together (a client reports this one) */
    snprintf(req->log_extra, sizeof(req->log_extra), " op=%s amzn_id=%s%s%s",
             call->op ? call->op : "unknown", call->request_id, call->failed ? " error=" : "",
             call->failed ? call->type : "");
    if (call->failed) {
        http_add(resp, "x-amzn-ErrorType", call->type);
    }
    http_send_json(req, call->failed ? call->status : 200, "application/x-amz-json-1.1", text,
                   resp);
    free(text);
}

static const struct ecr_op *target_op(struct request *req)
{
    const char *target = http_header(req, "X-Amz-Target");
    if (target != NULL && str_has_prefix(target, ECR_TARGET_PREFIX)) {
        return find_op(target + strlen(ECR_TARGET_PREFIX));
    }
    return NULL;
}

/* The answer to a body over ECR_BODY_MAX: a 400 that botocore reports
 * rather than retries (it retries a connection reset, and a 413 sent
 * before the body is read closes the connection). A part is refused as
 * UploadLayerPart refuses an oversized part it has read. */
static void too_big(struct request *req, char *type, size_t type_cap, char *message,
                    size_t message_cap)
{
    const struct ecr_op *op = target_op(req);
    if (op != NULL && strcmp(op->name, "UploadLayerPart") == 0) {
        str_copy(type, type_cap, "InvalidParameterException");
        snprintf(message, message_cap,
                 "Invalid parameter at 'layerPartBlob' failed to satisfy constraint: 'Member "
                 "must have length less than or equal to %d'",
                 ECR_PART_MAX);
        return;
    }
    str_copy(type, type_cap, "SerializationException");
    snprintf(message, message_cap, "The request body is larger than the limit of %u bytes",
             ECR_BODY_MAX);
}

/* A failure decided before an operation ran, as an AWS error: the HTTP
 * layer's deferred errors (a body over the limit, a failed read, the
 * budget of unauthenticated bodies) and this API's checks before the body
 * (ecr_precheck, which passes its exception name as the code). */
static void ecr_api_error(struct request *req, unsigned status, const char *code,
                          const char *message)
{
    const char *type = status >= 500 ? "ServerException" : "SerializationException";
    size_t clen = code != NULL ? strlen(code) : 0;
    char big_type[64], big_message[256];
    if (clen > 9 && strcmp(code + clen - 9, "Exception") == 0) {
        type = code;
    } else if (status == 429) {
        /* an error botocore backs off from and retries */
        type = "ThrottlingException";
        status = 400;
    } else if (status == 413) {
        /* a chunked body that passed ECR_BODY_MAX */
        too_big(req, big_type, sizeof(big_type), big_message, sizeof(big_message));
        type = big_type;
        message = big_message;
        status = 400;
    }
    struct ecr_call call;
    memset(&call, 0, sizeof(call));
    call.req = req;
    rand_uuid(call.request_id);
    const struct ecr_op *op = target_op(req);
    call.op = op != NULL ? op->name : NULL;
    ecr_fail(&call, type, "%s", message);
    call.status = status;
    send_result(&call);
}

/* ---- authentication and authorization ---- */

/* Headers passed to SigV4; a request with more is refused. */
#define ECR_HEADERS_MAX 128

struct header_list {
    struct sigv4_header h[ECR_HEADERS_MAX];
    size_t count;
    bool overflow;
};

static bool collect_header(void *arg, const char *key, const char *value)
{
    struct header_list *l = arg;
    if (l->count == ECR_HEADERS_MAX) {
        l->overflow = true;
        return false;
    }
    l->h[l->count++] = (struct sigv4_header){key, value != NULL ? value : ""};
    return true;
}

/* The repository the member named by scope names (repositoryName, or the
 * repository of the ARN in resourceArn), when it is valid; NULL for other
 * scopes or when the member is absent or invalid. Any other member is
 * never looked at. Borrowed from in. */
static const char *scoped_repo(json_t *in, enum ecr_scope scope)
{
    if (in == NULL || !json_is_object(in)) {
        return NULL;
    }
    if (scope == ECR_SCOPE_REPOSITORY_NAME) {
        json_t *v = json_object_get(in, "repositoryName");
        if (!json_is_string(v)) {
            return NULL;
        }
        const char *name = json_string_value(v);
        return strlen(name) == json_string_length(v) && names_repo_valid(name) ? name : NULL;
    }
    if (scope != ECR_SCOPE_RESOURCE_ARN) {
        return NULL;
    }
    json_t *v = json_object_get(in, "resourceArn");
    struct ecr_arn arn;
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
        !ecr_repo_arn_parse(json_string_value(v), &arn)) {
        return NULL;
    }
    return names_repo_valid(arn.name) ? arn.name : NULL;
}

/* The open mode (no access key yet) serves only local-looking Hosts
 * (http_host_open_ok); false after failing the call. */
static bool open_host_ok(struct ecr_call *call)
{
    if (http_host_open_ok(call->req)) {
        return true;
    }
    log_info("event=auth_refused reason=open_mode_host");
    return ecr_fail(call, "AccessDeniedException", HTTP_OPEN_HOST_MESSAGE);
}

/* A call from the web console (server/console): no Authorization header
 * but a session cookie. The session stands for its access key, whose
 * policy applies as it is now (an anonymous session, allowed by
 * "anonymous": true, for the anonymous caller); every call must carry the session's CSRF
 * token (every ECR call is a POST, and reading calls are not told apart
 * from changing ones). Returns false after failing the call. */
static bool authenticate_session(struct ecr_call *call, const char *repo, struct auth_lookup *lk,
                                 enum auth_session_state state, const struct auth_session *s)
{
    struct request *req = call->req;
    struct auth *a = req->srv->auth;
    struct meta *m = store_meta(req->srv->store);
    /* "" is an anonymous session (server/console, with "anonymous": true) */
    bool anonymous = state == AUTH_SESSION_OK && s->access_key_id[0] == '\0';
    enum berth_err rc = auth_lookup(
        a, m, state == AUTH_SESSION_OK && !anonymous ? s->access_key_id : NULL, repo, lk);
    if (rc != BERTH_OK) {
        ecr_server_error(call, rc);
        return false;
    }
    call->ident.enforced = lk->enforced;
    if (!lk->enforced) {
        return open_host_ok(call);
    }
    if (state == AUTH_SESSION_CSRF) {
        log_info("event=auth_refused reason=csrf");
        return ecr_fail(call, "AccessDeniedException",
                        "The request carries no valid " AUTH_SESSION_CSRF_HEADER " header");
    }
    if (anonymous && req->srv->cfg->anonymous) {
        return true; /* anonymous: what the policies grant everyone */
    }
    if (state != AUTH_SESSION_OK || !lk->key_found) {
        log_info("event=auth_refused reason=%s",
                 state != AUTH_SESSION_OK ? "session_invalid" : "unknown_key");
        return ecr_fail(call, "UnrecognizedClientException",
                        "The console session has expired or was signed out");
    }
    auth_lookup_take_identity(lk, &call->ident);
    return true;
}

/* Verify the call's SigV4 signature against its access key, leaving the
 * caller in call->ident and the named repository's policy in lk. While no
 * key exists and auth is not required, every call is let through as
 * anonymous. Returns false after failing the call. */
static bool authenticate(struct ecr_call *call, const char *repo, struct auth_lookup *lk)
{
    struct request *req = call->req;
    struct auth *a = req->srv->auth;
    struct meta *m = store_meta(req->srv->store);
    if (m == NULL) {
        ecr_server_error(call, BERTH_EUNAVAILABLE);
        return false;
    }
    if (http_header(req, "Authorization") == NULL) {
        struct auth_session s;
        enum auth_session_state state = auth_session_check(
            auth_sessions(a), http_header(req, "Cookie"), true,
            http_header(req, AUTH_SESSION_CSRF_HEADER), time_now_ms() / 1000, &s);
        if (state == AUTH_SESSION_UNAVAILABLE) {
            ecr_server_error(call, BERTH_EUNAVAILABLE);
            return false;
        }
        if (state != AUTH_SESSION_NONE) {
            bool ok = authenticate_session(call, repo, lk, state, &s);
            auth_wipe(&s, sizeof(s));
            return ok;
        }
    }
    struct header_list headers = {.count = 0, .overflow = false};
    http_headers_each(req, collect_header, &headers);
    char *path = NULL;
    const char *query = NULL;
    if (req->raw_uri != NULL) {
        path = strdup(req->raw_uri);
        if (path == NULL) {
            ecr_server_error(call, BERTH_ENOMEM);
            return false;
        }
        char *q = strchr(path, '?');
        if (q != NULL) {
            *q = '\0';
            query = q + 1;
        }
    }
    struct sigv4_request sreq = {
        .method = req->method,
        .path = path,
        .query = query,
        .headers = headers.h,
        .header_count = headers.count,
        .body = req->body.len ? buf_cstr(&req->body) : NULL,
        .body_len = req->body.len,
        .body_sha256 = NULL,
    };
    struct sigv4_auth sauth;
    struct sigv4_refusal refusal;
    enum berth_err parsed = sigv4_parse(&sreq, &sauth, &refusal);
    bool ok = false;
    enum berth_err rc =
        auth_lookup(a, m, parsed == BERTH_OK ? sauth.access_key_id : NULL, repo, lk);
    if (rc != BERTH_OK) {
        ecr_server_error(call, rc);
        goto out;
    }
    call->ident.enforced = lk->enforced;
    if (!lk->enforced) {
        /* No credentials configured: the loopback-only anonymous mode. */
        ok = open_host_ok(call);
        goto out;
    }
    if (headers.overflow || path == NULL) {
        metrics_auth_failure("incomplete_signature");
        ecr_fail(call, "IncompleteSignatureException",
                 "The request has too many headers or too long a target to be verified");
        goto out;
    }
    if (parsed != BERTH_OK) {
        metrics_auth_failure(refusal.error == SIGV4_ERR_MISSING_TOKEN ? "missing_credentials"
                                                                      : "bad_signature_format");
        ecr_fail(call, sigv4_error_name(refusal.error), "%s", refusal.message);
        goto out;
    }
    if (sauth.has_security_token || !lk->key_found) {
        metrics_auth_failure(sauth.has_security_token ? "session_token" : "unknown_key");
        char shown[AUTH_AKID_MAX + 8];
        log_info("event=auth_refused reason=%s key=%s",
                 sauth.has_security_token ? "session_token" : "unknown_key",
                 log_value(sauth.access_key_id, shown, sizeof(shown)));
        sigv4_refuse(&refusal, SIGV4_ERR_UNRECOGNIZED_CLIENT);
        ecr_fail(call, sigv4_error_name(refusal.error), "%s", refusal.message);
        goto out;
    }
    size_t region_count = 0;
    const char *const *regions = auth_regions(a, &region_count);
    struct sigv4_verify_opts opts = {
        .now = time_now_ms() / 1000,
        .service = SIGV4_SERVICE,
        .regions = regions,
        .region_count = region_count,
        .allow_unsigned_payload = false,
    };
    rc = sigv4_verify(&sreq, &sauth, lk->secret, lk->secret_len, &opts, &refusal);
    if (rc == BERTH_EDENIED) {
        metrics_auth_failure("bad_signature");
        char shown[AUTH_AKID_MAX + 8];
        log_info("event=auth_refused reason=bad_signature key=%s",
                 log_value(sauth.access_key_id, shown, sizeof(shown)));
        ecr_fail(call, sigv4_error_name(refusal.error), "%s", refusal.message);
        goto out;
    }
    if (rc != BERTH_OK) {
        ecr_server_error(call, rc);
        goto out;
    }
    auth_lookup_take_identity(lk, &call->ident);
    ok = true;
out:
    free(path);
    return ok;
}

/* Authorize the operation itself (ecr:<Op> on its repository or on the
 * registry) before it runs. Returns false after failing the call. */
static bool authorize_op(struct ecr_call *call, const struct ecr_op *op, const char *repo,
                         const struct auth_lookup *lk)
{
    if (!call->ident.enforced || op->scope == ECR_SCOPE_SELF) {
        return true;
    }
    bool on_repo = op->scope == ECR_SCOPE_REPOSITORY_NAME || op->scope == ECR_SCOPE_RESOURCE_ARN;
    if (on_repo && repo == NULL) {
        /* Nothing valid to authorize against: fail as the operation's own
         * validation of that member would. */
        const char *s;
        if (op->scope == ECR_SCOPE_RESOURCE_ARN) {
            if (ecr_string(call, call->in, "resourceArn", ECR_REQUIRED, 1, 1024, &s)) {
                ecr_invalid(call, "resourceArn", "Invalid ARN");
            }
        } else if (ecr_repo_name(call, &s)) {
            /* scoped_repo accepts every name ecr_repo_name does; should
             * they ever differ, refuse (a 400, which clients do not retry) */
            ecr_invalid(call, "repositoryName", "Member could not be authorized");
        }
        return false;
    }
    char action[96], denied[AUTHZ_DENIED_MESSAGE_MAX];
    snprintf(action, sizeof(action), "ecr:%s", op->name);
    if (auth_decide(call->req->srv->auth, &call->ident, lk->repo_policy, lk->registry_policy,
                    action, on_repo ? repo : NULL, denied, sizeof(denied))) {
        return true;
    }
    char shown[AUTHZ_DENIED_MESSAGE_MAX + 16];
    metrics_auth_failure("denied");
    log_info("event=access_denied msg=%s", log_value(denied, shown, sizeof(shown)));
    return ecr_fail(call, "AccessDeniedException", "%s", denied);
}

bool ecr_may(struct ecr_call *call, const char *action, const char *repo)
{
    if (!call->ident.enforced) {
        return true;
    }
    struct meta *m = store_meta(call->req->srv->store);
    bool allowed = false;
    enum berth_err rc = m == NULL ? BERTH_EUNAVAILABLE
                                  : auth_allowed(call->req->srv->auth, m, &call->ident, action,
                                                 repo, &allowed, NULL, 0);
    if (rc != BERTH_OK) {
        /* not a refusal: the call fails (a list must not just leave it out) */
        ecr_server_error(call, rc);
        return false;
    }
    return allowed;
}

bool ecr_authorize(struct ecr_call *call, const char *action, const char *repo)
{
    if (!call->ident.enforced) {
        return true;
    }
    struct meta *m = ecr_meta(call);
    if (m == NULL) {
        return false;
    }
    bool allowed = false;
    char denied[AUTHZ_DENIED_MESSAGE_MAX];
    enum berth_err rc = auth_allowed(call->req->srv->auth, m, &call->ident, action, repo, &allowed,
                                     denied, sizeof(denied));
    if (rc != BERTH_OK) {
        ecr_server_error(call, rc);
        return false;
    }
    if (!allowed) {
        char shown[AUTHZ_DENIED_MESSAGE_MAX + 16];
        metrics_auth_failure("denied");
        log_info("event=access_denied msg=%s", log_value(denied, shown, sizeof(shown)));
        return ecr_fail(call, "AccessDeniedException", "%s", denied);
    }
    return true;
}

static void ecr_run(struct request *req)
{
    struct ecr_call call;
    memset(&call, 0, sizeof(call));
    call.req = req;
    call.ident.anonymous = true;
    if (rand_uuid(call.request_id) != BERTH_OK) {
        str_copy(call.request_id, sizeof(call.request_id), req->id);
    }
    const char *target = http_header(req, "X-Amz-Target");
    const struct ecr_op *op = NULL;
    if (target != NULL && str_has_prefix(target, ECR_TARGET_PREFIX)) {
        op = find_op(target + strlen(ECR_TARGET_PREFIX));
    }
    call.op = op ? op->name : "unknown";
    req->route = call.op; /* operation names are static: a bounded label */
    if (op == NULL) {
        ecr_fail(&call, "UnknownOperationException", "Unknown operation %s",
                 target ? target : "(no X-Amz-Target)");
        send_result(&call);
        return;
    }
    json_error_t jerr;
    if (req->body.len == 0) {
        call.in = json_object();
    } else {
        call.in = json_loadb(buf_cstr(&req->body), req->body.len, JSON_REJECT_DUPLICATES, &jerr);
    }
    /* Authentication comes before any complaint about the body. */
    const char *repo = scoped_repo(call.in, op->scope);
    struct auth_lookup lk;
    memset(&lk, 0, sizeof(lk));
    if (!authenticate(&call, repo, &lk)) {
        /* failed */
    } else if (call.in == NULL || !json_is_object(call.in)) {
        ecr_fail(&call, "SerializationException", "The request body must be a JSON object%s%s",
                 call.in ? "" : ": ", call.in ? "" : jerr.text);
    } else {
        call.out = json_object();
        if (call.out == NULL) {
            ecr_server_error(&call, BERTH_ENOMEM);
        } else if (authorize_op(&call, op, repo, &lk)) {
            op->fn(&call);
        }
    }
    auth_lookup_fini(req->srv->auth, &lk);
    send_result(&call);
    auth_identity_clear(req->srv->auth, &call.ident);
    json_decref(call.in);
    json_decref(call.out);
    json_decref(call.extra);
}

/* What can be refused before the body is read: an unknown target, and,
 * while auth is enforced, a missing or malformed signature or an unknown
 * access key. Fills type and message (an AWS exception) and returns false
 * to refuse. The signature itself covers the body and is verified in
 * ecr_run. */
static bool ecr_precheck(struct request *req, char *type, size_t type_cap, char *message,
                         size_t message_cap)
{
    const char *target = http_header(req, "X-Amz-Target");
    if (target == NULL || !str_has_prefix(target, ECR_TARGET_PREFIX) ||
        find_op(target + strlen(ECR_TARGET_PREFIX)) == NULL) {
        str_copy(type, type_cap, "UnknownOperationException");
        snprintf(message, message_cap, "Unknown operation %.200s",
                 target ? target : "(no X-Amz-Target)");
        return false;
    }
    struct meta *m = store_meta(req->srv->store);
    if (m == NULL) {
        return true; /* ecr_run reports it */
    }
    if (http_header(req, "Authorization") == NULL &&
        auth_session_named(http_header(req, "Cookie"))) {
        /* a console session (or what claims to be one): ecr_run checks it
         * (one read of the shared metadata, made once per call there) and
         * its CSRF token, and says what is wrong; until then the body
         * counts as unauthenticated */
        return true;
    }
    struct header_list headers = {.count = 0, .overflow = false};
    http_headers_each(req, collect_header, &headers);
    struct sigv4_request sreq = {
        .method = req->method,
        .path = "/",
        .headers = headers.h,
        .header_count = headers.count,
    };
    struct sigv4_auth sauth;
    struct sigv4_refusal refusal;
    enum berth_err parsed = sigv4_parse(&sreq, &sauth, &refusal);
    struct auth_lookup lk;
    memset(&lk, 0, sizeof(lk));
    enum berth_err rc =
        auth_lookup(req->srv->auth, m, parsed == BERTH_OK ? sauth.access_key_id : NULL, NULL, &lk);
    bool ok = true;
    if (rc != BERTH_OK || !lk.enforced) {
        ok = true; /* a lookup error is ecr_run's to report */
    } else if (headers.overflow) {
        str_copy(type, type_cap, "IncompleteSignatureException");
        str_copy(message, message_cap,
                 "The request has too many headers or too long a target to be verified");
        ok = false;
    } else if (parsed != BERTH_OK) {
        str_copy(type, type_cap, sigv4_error_name(refusal.error));
        str_copy(message, message_cap, refusal.message);
        ok = false;
    } else if (sauth.has_security_token || !lk.key_found) {
        char shown[AUTH_AKID_MAX + 8];
        log_info("event=auth_refused reason=%s key=%s",
                 sauth.has_security_token ? "session_token" : "unknown_key",
                 log_value(sauth.access_key_id, shown, sizeof(shown)));
        sigv4_refuse(&refusal, SIGV4_ERR_UNRECOGNIZED_CLIENT);
        str_copy(type, type_cap, sigv4_error_name(refusal.error));
        str_copy(message, message_cap, refusal.message);
        ok = false;
    }
    auth_lookup_fini(req->srv->auth, &lk);
    return ok;
}

static void ecr_dispatch(struct request *req)
{
    if (strcmp(req->method, "POST") != 0) {
        struct ecr_call call;
        memset(&call, 0, sizeof(call));
        call.req = req;
        rand_uuid(call.request_id);
        ecr_fail(&call, "UnknownOperationException", "The ECR API is called with POST, not %s",
                 strlen(req->method) < 16 ? req->method : "?");
        send_result(&call);
        return;
    }
    if (!http_has_body(req)) {
        ecr_run(req);
        return;
    }
    /* Refused before the body: it is read and dropped, never held, and
     * the answer follows it (a client reads only after sending). */
    char type[64], message[256];
    if (!ecr_precheck(req, type, sizeof(type), message, sizeof(message))) {
        http_defer_error(req, 400, type, message);
        return;
    }
    uint64_t cl;
    if (http_content_length(req, &cl) && cl > ECR_BODY_MAX) {
        /* read through and answered (or, past HTTP_DISCARD_MAX, answered
         * at once and closed) */
        too_big(req, type, sizeof(type), message, sizeof(message));
        http_defer_error(req, 400, type, message);
        return;
    }
    /* the signature covers the body: until it is verified, the body
     * counts against the budget of unauthenticated bodies */
    if (http_buffer_body(req, ECR_BODY_MAX, true)) {
        req->on_done = ecr_run;
    }
}

static bool ecr_accepts(struct request *req)
{
    /* a JSON API call without its target is still ECR's to refuse */
    return http_header(req, "X-Amz-Target") != NULL || strcmp(req->method, "POST") == 0;
}

const struct http_api ecr_api = {
    .name = "ecr",
    .accepts = ecr_accepts,
    .dispatch = ecr_dispatch,
    .error = ecr_api_error,
};

bool ecr_image_id_parse(struct ecr_call *call, struct ecr_image_id *out)
{
    json_t *id;
    if (!ecr_object(call, call->in, "imageId", ECR_REQUIRED, &id) ||
        !ecr_string(call, id, "imageTag", ECR_OPTIONAL, 1, 300, &out->tag) ||
        !ecr_string(call, id, "imageDigest", ECR_OPTIONAL, 0, 1000, &out->digest_text)) {
        return false;
    }
    if (out->digest_text != NULL && (!ecr_digest_syntax_ok(out->digest_text) ||
                                     digest_parse(out->digest_text, &out->digest) != BERTH_OK)) {
        return ecr_invalid(call, "imageDigest",
                           "must satisfy regular expression '[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+' "
                           "and name a sha256 or sha512 digest");
    }
    if (out->tag == NULL && out->digest_text == NULL) {
        return ecr_invalid(call, "imageId", "Either imageDigest or imageTag must be given");
    }
    if (out->tag != NULL && !names_tag_valid(out->tag)) {
        /* as DescribeImages answers the same tag */
        return ecr_invalid(call, "imageId.imageTag",
                           "must satisfy regular expression '" NAMES_TAG_REGEX "'");
    }
    return true;
}

/* The imageId echoed in responses: the digest, and the tag if asked by tag. */
json_t *ecr_image_id_json(const char *digest, const char *tag)
{
    json_t *id = json_pack("{s:s}", "imageDigest", digest);
    if (id != NULL && tag != NULL && json_object_set_new(id, "imageTag", json_string(tag)) != 0) {
        json_decref(id);
        return NULL;
    }
    return id;
}
