/*
 * ECR operations on images: ListImages, DescribeImages, BatchGetImage,
 * BatchDeleteImage, PutImage and ListImageReferrers. They read and write
 * the same manifests and tags as the OCI /v2 API, through the registry
 * rules in storage/registry/registry.c. Pool threads; see ecr_int.h.
 */
#include "ecr_int.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "storage/blob/blob.h"
#include "common/log.h"
#include "storage/spec/manifest.h"
#include "storage/spec/names.h"
#include "server/metrics/metrics.h"
#include "storage/registry/archive.h"
#include "storage/store/store.h"
#include "common/str.h"
#include "common/timeutil.h"

/* The longest imageDigest string looked at (the model gives none; the
 * longest digest berth stores is 135 characters). */
#define IMAGE_DIGEST_MAX 1000
/* Manifest bytes one BatchGetImage answer may carry (at least one
 * manifest of the configured maximum always fits). */
#define BATCH_GET_MAX_BYTES (32u << 20)

#define DIGEST_REGEX "[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+"

static const char *const tag_status_values[] = {"TAGGED", "UNTAGGED", "ANY", NULL};
static const char *const image_status_values[] = {"ACTIVE", "ARCHIVED", "ACTIVATING", "ANY", NULL};

bool ecr_digest_syntax_ok(const char *s)
{
    const char *colon = strchr(s, ':');
    if (colon == NULL || colon == s || colon[1] == '\0') {
        return false;
    }
    for (const char *p = s; p < colon; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '+' || c == '.')) {
            return false;
        }
    }
    for (const char *p = colon + 1; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9'))) {
            return false;
        }
    }
    return true;
}

/* Add a member, noting an allocation failure in *ok. Steals value. */
static void put(json_t *obj, const char *key, json_t *value, bool *ok)
{
    if (value == NULL || json_object_set_new(obj, key, value) != 0) {
        *ok = false;
    }
}

/* ---- image identifiers ---- */

/* One ImageIdentifier of a request. A per-item problem (the batch
 * operations report it as a failure entry) leaves failure_code set. */
struct image_id {
    json_t *given; /* the request's object (borrowed) */
    const char *tag;
    const char *digest_text;
    struct digest digest;
    bool has_digest;
    const char *failure_code;
    char failure_reason[300];
};

/* Validate one ImageIdentifier. False when the whole call failed (wrong
 * types, lengths outside the model). */
static bool parse_image_id(struct ecr_call *call, json_t *item, struct image_id *out)
{
    memset(out, 0, sizeof(*out));
    out->given = item;
    if (!json_is_object(item)) {
        return ecr_fail(call, "SerializationException", "Each image id must be a structure.");
    }
    if (!ecr_string(call, item, "imageDigest", ECR_OPTIONAL, 0, IMAGE_DIGEST_MAX,
                    &out->digest_text) ||
        !ecr_string(call, item, "imageTag", ECR_OPTIONAL, 1, 300, &out->tag)) {
        return false;
    }
    if (out->digest_text == NULL && out->tag == NULL) {
        out->failure_code = "MissingDigestAndTag";
        str_copy(out->failure_reason, sizeof(out->failure_reason),
                 "Invalid request parameters: both tag and digest cannot be null");
        return true;
    }
    if (out->digest_text != NULL) {
        if (!ecr_digest_syntax_ok(out->digest_text) ||
            digest_parse(out->digest_text, &out->digest) != BERTH_OK) {
            out->failure_code = "InvalidImageDigest";
            str_copy(
                out->failure_reason, sizeof(out->failure_reason),
                "Invalid request parameters: image digest should satisfy the regex '" DIGEST_REGEX
                "' and name a sha256 or sha512 digest");
            return true;
        }
        out->has_digest = true;
    }
    if (out->tag != NULL && !names_tag_valid(out->tag)) {
        out->failure_code = "InvalidImageTag";
        str_copy(out->failure_reason, sizeof(out->failure_reason),
                 "Invalid request parameters: image tag should satisfy the regex "
                 "'" NAMES_TAG_REGEX "'");
    }
    return true;
}

/* Every ImageIdentifier of ids (an array of at least one), parsed into a
 * new array the caller frees; NULL after failing the call (out of memory,
 * or as parse_image_id). */
static struct image_id *parse_image_ids(struct ecr_call *call, json_t *ids)
{
    struct image_id *parsed = calloc(json_array_size(ids), sizeof(*parsed));
    if (parsed == NULL) {
        ecr_server_error(call, BERTH_ENOMEM);
        return NULL;
    }
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        if (!parse_image_id(call, v, &parsed[i])) {
            free(parsed);
            return NULL;
        }
    }
    return parsed;
}

/* A copy of the members the caller gave, for echoing (NULL: no memory). */
static json_t *echo_id(const struct image_id *id)
{
    json_t *o = json_object();
    bool ok = o != NULL;
    if (ok && id->digest_text != NULL) {
        put(o, "imageDigest", json_string(id->digest_text), &ok);
    }
    if (ok && id->tag != NULL) {
        put(o, "imageTag", json_string(id->tag), &ok);
    }
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* {imageId, failureCode, failureReason} appended to list. */
static bool add_failure(struct ecr_call *call, json_t *list, const struct image_id *id,
                        const char *code, const char *reason)
{
    json_t *f = json_object();
    bool ok = f != NULL;
    if (ok) {
        put(f, "imageId", echo_id(id), &ok);
        put(f, "failureCode", json_string(code), &ok);
        put(f, "failureReason", json_string(reason), &ok);
        if (!ok) {
            json_decref(f);
        }
    }
    /* json_array_append_new takes f even when it fails */
    if (!ok || json_array_append_new(list, f) != 0) {
        ecr_server_error(call, BERTH_ENOMEM);
        return false;
    }
    return true;
}

/* The manifest a (valid) image id names: registry_image_find. */
static enum berth_err find_image(struct ecr_call *call, const struct meta_repo *repo,
                                 const struct image_id *id, struct meta_manifest *out,
                                 struct registry_status *s)
{
    return registry_image_find(call->req->srv->store, repo, id->tag,
                               id->has_digest ? &id->digest : NULL, out, s);
}

/* The batch operations' failure entry for an image id that failed for a
 * reason about that image. False after failing the whole call: another
 * reason (ecr_fail_registry), or out of memory. */
static bool add_image_failure(struct ecr_call *call, json_t *failures, const struct image_id *id,
                              const struct registry_status *s)
{
    char reason[DIGEST_STR_MAX + 128];
    switch (s->reason) {
    case REG_MANIFEST_UNKNOWN:
        return add_failure(call, failures, id, "ImageNotFound", "Requested image not found");
    case REG_IMAGE_ARCHIVED:
        /* an archived (or activating) image exists but cannot be got: the
         * model's code for that (ImageNotFound is for an image that is not
         * there; /v2 answers 404 as ECR's pull does) */
        return add_failure(call, failures, id, "ImageInaccessible", s->message);
    case REG_TAG_DIGEST_MISMATCH:
        return add_failure(call, failures, id, "ImageTagDoesNotMatchDigest",
                           "Invalid request parameters: the image tag does not point at the "
                           "image digest given");
    case REG_REFERENCED_BY_INDEX:
        snprintf(reason, sizeof(reason), "Requested image referenced by manifest list: [%s]",
                 s->digest);
        return add_failure(call, failures, id, "ImageReferencedByManifestList", reason);
    default:
        ecr_fail_registry(call, s);
        return false;
    }
}

/* ---- ImageDetail ---- */

static int append_tag(void *arg, const char *name)
{
    return ecr_json_list_add(arg, json_string(name));
}

/* The ImageDetail of a manifest of the repository. */
static enum berth_err image_detail(struct ecr_call *call, struct meta *m, const char *repo,
                                   const struct meta_manifest *mf, json_t **out)
{
    json_t *d = json_object();
    struct ecr_json_list tags = {.list = json_array()};
    if (d == NULL || tags.list == NULL) {
        json_decref(d);
        json_decref(tags.list);
        return BERTH_ENOMEM;
    }
    bool ok = true;
    put(d, "registryId", json_string(ecr_registry(call)), &ok);
    put(d, "repositoryName", json_string(repo), &ok);
    put(d, "imageDigest", json_string(mf->digest), &ok);
    enum berth_err rc = meta_manifest_tags(m, mf->id, append_tag, &tags);
    rc = ecr_json_list_rc(&tags, rc);
    if (json_array_size(tags.list) > 0) {
        put(d, "imageTags", tags.list, &ok);
    } else {
        json_decref(tags.list); /* AWS omits the member for untagged images */
    }
    int64_t size = mf->image_size;
    if (rc == BERTH_OK && mf->is_index) {
        rc = meta_manifest_children_max_size(m, mf->repo_id, mf->id, &size);
    }
    put(d, "imageSizeInBytes", json_integer(size), &ok);
    put(d, "imagePushedAt", ecr_time(mf->pushed_at), &ok);
    put(d, "imageManifestMediaType", json_string(mf->media_type), &ok);
    if (!mf->is_index && mf->config_media_type[0] != '\0') {
        put(d, "artifactMediaType", json_string(mf->config_media_type), &ok);
    }
    if (mf->last_pulled_at > 0) {
        put(d, "lastRecordedPullTime", ecr_time(mf->last_pulled_at), &ok);
    }
    if (mf->subject[0] != '\0') {
        put(d, "subjectManifestDigest", json_string(mf->subject), &ok);
    }
    put(d, "imageStatus",
        json_string(registry_image_status_name(registry_image_status(mf, time_now_ms()))), &ok);
    if (mf->archived_at > 0) {
        put(d, "lastArchivedAt", ecr_time(mf->archived_at), &ok);
    }
    if (mf->activated_at > 0) {
        put(d, "lastActivatedAt", ecr_time(mf->activated_at), &ok);
    }
    if (rc == BERTH_OK && !ok) {
        rc = BERTH_ENOMEM;
    }
    if (rc == BERTH_OK) {
        /* imageScanStatus and imageScanFindingsSummary, once scanned */
        rc = ecr_scan_decorate_image(call, mf, d);
    }
    if (rc != BERTH_OK) {
        json_decref(d);
        return rc;
    }
    *out = d;
    return BERTH_OK;
}

/* filter.tagStatus and filter.imageStatus (ECR: ACTIVE when not given). */
static bool parse_filter(struct ecr_call *call, enum meta_tag_status *status,
                         struct meta_status_filter *images)
{
    json_t *filter;
    const char *tag_status = NULL, *image_status = NULL;
    *status = META_TAGS_ANY;
    images->status = META_IMAGES_ACTIVE;
    images->now_ms = time_now_ms();
    if (!ecr_object(call, call->in, "filter", ECR_OPTIONAL, &filter)) {
        return false;
    }
    if (filter == NULL) {
        return true;
    }
    if (!ecr_enum(call, filter, "tagStatus", ECR_OPTIONAL, tag_status_values, &tag_status) ||
        !ecr_enum(call, filter, "imageStatus", ECR_OPTIONAL, image_status_values, &image_status)) {
        return false;
    }
    if (tag_status != NULL && strcmp(tag_status, "TAGGED") == 0) {
        *status = META_TAGS_TAGGED;
    } else if (tag_status != NULL && strcmp(tag_status, "UNTAGGED") == 0) {
        *status = META_TAGS_UNTAGGED;
    }
    if (image_status == NULL) {
        return true;
    }
    if (strcmp(image_status, "ARCHIVED") == 0) {
        images->status = META_IMAGES_ARCHIVED;
    } else if (strcmp(image_status, "ACTIVATING") == 0) {
        images->status = META_IMAGES_ACTIVATING;
    } else if (strcmp(image_status, "ANY") == 0) {
        images->status = META_IMAGES_ANY;
    }
    return true;
}

/* The repository, with a read transaction open on the thread's connection
 * so a listing sees one snapshot. The caller ends it with meta_rollback. */
static struct meta *begin_listing(struct ecr_call *call, const char *name, struct meta_repo *repo)
{
    struct meta *m = ecr_meta(call);
    if (m == NULL) {
        return NULL;
    }
    enum berth_err rc = meta_begin_read(m);
    if (rc != BERTH_OK) {
        ecr_server_error(call, rc);
        return NULL;
    }
    if (!ecr_find_repo(call, name, repo)) {
        meta_rollback(m);
        return NULL;
    }
    return m;
}

/* Append {imageDigest, imageTag (when tag is not NULL)} to list; false when
 * out of memory. */
static bool append_image_id(json_t *list, const char *digest, const char *tag)
{
    json_t *o = json_object();
    bool ok = o != NULL;
    if (ok) {
        put(o, "imageDigest", json_string(digest), &ok);
        if (tag != NULL) {
            put(o, "imageTag", json_string(tag), &ok);
        }
    }
    if (!ok) {
        json_decref(o);
        return false;
    }
    return json_array_append_new(list, o) == 0; /* frees o on failure */
}

/* ---- ListImages ---- */

/* Pages list the tags in byte order, then the untagged images by digest;
 * the token says which part and where ("t:<tag>" or "u:<digest>"). */
struct list_ctx {
    struct ecr_call *call;
    json_t *list;
    char last[DIGEST_STR_MAX + 512];
    bool out_of_memory;
};

static bool append_id(struct list_ctx *c, const char *digest, const char *tag)
{
    if (!append_image_id(c->list, digest, tag)) {
        c->out_of_memory = true;
        return false;
    }
    return true;
}

static int list_tag_row(void *arg, const char *tag, const char *digest)
{
    struct list_ctx *c = arg;
    snprintf(c->last, sizeof(c->last), "t:%s", tag);
    return append_id(c, digest, tag) ? 0 : 1;
}

static int list_untagged_row(void *arg, const struct meta_manifest *mf)
{
    struct list_ctx *c = arg;
    snprintf(c->last, sizeof(c->last), "u:%s", mf->digest);
    return append_id(c, mf->digest, NULL) ? 0 : 1;
}

static void list_images(struct ecr_call *call)
{
    const char *name;
    int64_t limit;
    char after[DIGEST_STR_MAX + 512];
    enum meta_tag_status status;
    struct meta_status_filter images;
    if (!ecr_repo_name(call, &name) || !ecr_pagination(call, 1000, &limit, after, sizeof(after)) ||
        !parse_filter(call, &status, &images)) {
        return;
    }
    bool in_tags = status != META_TAGS_UNTAGGED;
    const char *position = "";
    if (after[0] != '\0') {
        bool tag_token = str_has_prefix(after, "t:");
        bool untagged_token = str_has_prefix(after, "u:");
        if (!(tag_token || untagged_token) || (tag_token && !in_tags) ||
            (untagged_token && status == META_TAGS_TAGGED)) {
            ecr_invalid(call, "nextToken", "Invalid NextToken");
            return;
        }
        in_tags = tag_token;
        position = after + 2;
    }
    struct meta_repo repo;
    struct meta *m = begin_listing(call, name, &repo);
    if (m == NULL) {
        return;
    }
    struct list_ctx c = {.call = call, .list = json_array()};
    enum berth_err rc = c.list ? BERTH_OK : BERTH_ENOMEM;
    bool more = false;
    int64_t left = limit;
    if (rc == BERTH_OK && in_tags) {
        size_t before = json_array_size(c.list);
        rc = meta_tag_list_digests(m, repo.id, position, left, &images, list_tag_row, &c, &more);
        left -= (int64_t)(json_array_size(c.list) - before);
        position = "";
    }
    if (rc == BERTH_OK && !more && status != META_TAGS_TAGGED) {
        /* with left == 0 this only asks whether untagged images follow */
        const char *from = in_tags ? "" : position;
        bool untagged_more = false;
        rc = meta_manifest_list(m, repo.id, META_TAGS_UNTAGGED, &images, from, left,
                                list_untagged_row, &c, &untagged_more);
        if (rc == BERTH_OK && untagged_more && left == 0 && in_tags) {
            str_copy(c.last, sizeof(c.last), "u:");
        }
        more = untagged_more;
    }
    meta_rollback(m);
    if (rc == BERTH_OK && c.out_of_memory) {
        rc = BERTH_ENOMEM;
    }
    if (rc != BERTH_OK) {
        json_decref(c.list);
        ecr_server_error(call, rc);
        return;
    }
    json_object_set_new(call->out, "imageIds", c.list);
    if (more) {
        json_object_set_new(call->out, "nextToken", ecr_next_token(c.last));
    }
}

/* ---- DescribeImages ---- */

struct describe_ctx {
    struct ecr_call *call;
    struct meta *m;
    const char *repo;
    json_t *list;
    char last[DIGEST_STR_MAX + 2];
    enum berth_err rc;
};

static int describe_row(void *arg, const struct meta_manifest *mf)
{
    struct describe_ctx *c = arg;
    json_t *d = NULL;
    c->rc = image_detail(c->call, c->m, c->repo, mf, &d);
    if (c->rc == BERTH_OK && json_array_append_new(c->list, d) != 0) {
        c->rc = BERTH_ENOMEM;
    }
    snprintf(c->last, sizeof(c->last), "d:%s", mf->digest);
    return c->rc != BERTH_OK;
}

/* DescribeImages with imageIds: every id must name an image. */
static enum berth_err describe_ids(struct ecr_call *call, struct meta *m,
                                   const struct meta_repo *repo, json_t *ids, json_t *list)
{
    size_t i;
    json_t *item;
    json_array_foreach(ids, i, item)
    {
        struct image_id id;
        if (!parse_image_id(call, item, &id)) {
            return BERTH_EINVAL;
        }
        if (id.failure_code != NULL) {
            ecr_invalid(call, "imageIds", "%s", id.failure_reason);
            return BERTH_EINVAL;
        }
        struct meta_manifest mf;
        struct registry_status s;
        enum berth_err found = find_image(call, repo, &id, &mf, &s);
        if (found != BERTH_OK) {
            ecr_fail_image(call, repo->name, id.tag, id.digest_text, &s);
            return found;
        }
        /* one ImageDetail per image, however many ids name it */
        bool seen = false;
        size_t j;
        json_t *prev;
        json_array_foreach(list, j, prev)
        {
            const char *d = json_string_value(json_object_get(prev, "imageDigest"));
            if (d != NULL && strcmp(d, mf.digest) == 0) {
                seen = true;
                break;
            }
        }
        if (seen) {
            continue;
        }
        json_t *d = NULL;
        enum berth_err rc = image_detail(call, m, repo->name, &mf, &d);
        if (rc == BERTH_OK && json_array_append_new(list, d) != 0) {
            rc = BERTH_ENOMEM;
        }
        if (rc != BERTH_OK) {
            ecr_server_error(call, rc);
            return rc;
        }
    }
    return BERTH_OK;
}

static void describe_images(struct ecr_call *call)
{
    const char *name;
    int64_t limit;
    char after[DIGEST_STR_MAX + 512];
    enum meta_tag_status status;
    struct meta_status_filter images;
    json_t *ids;
    if (!ecr_repo_name(call, &name) ||
        !ecr_array(call, call->in, "imageIds", ECR_OPTIONAL, 1, 100, &ids) ||
        !ecr_pagination(call, 1000, &limit, after, sizeof(after)) ||
        !parse_filter(call, &status, &images)) {
        return;
    }
    if (ids != NULL && (json_object_get(call->in, "maxResults") != NULL ||
                        json_object_get(call->in, "nextToken") != NULL ||
                        json_object_get(call->in, "filter") != NULL)) {
        ecr_invalid(call, "imageIds",
                    "imageIds cannot be used together with maxResults, nextToken or filter");
        return;
    }
    if (after[0] != '\0' && !str_has_prefix(after, "d:")) {
        ecr_invalid(call, "nextToken", "Invalid NextToken");
        return;
    }
    struct meta_repo repo;
    struct meta *m = begin_listing(call, name, &repo);
    if (m == NULL) {
        return;
    }
    json_t *list = json_array();
    if (list == NULL) {
        meta_rollback(m);
        ecr_server_error(call, BERTH_ENOMEM);
        return;
    }
    bool more = false;
    struct describe_ctx c = {.call = call, .m = m, .repo = repo.name, .list = list};
    if (ids != NULL) {
        c.rc = describe_ids(call, m, &repo, ids, list);
    } else {
        enum berth_err rc = meta_manifest_list(
            m, repo.id, status, &images, after[0] ? after + 2 : "", limit, describe_row, &c, &more);
        if (c.rc == BERTH_OK) {
            c.rc = rc;
        }
        if (c.rc != BERTH_OK) {
            ecr_server_error(call, c.rc);
        }
    }
    meta_rollback(m);
    if (c.rc != BERTH_OK) {
        json_decref(list);
        return;
    }
    json_object_set_new(call->out, "imageDetails", list);
    if (more) {
        json_object_set_new(call->out, "nextToken", ecr_next_token(c.last));
    }
}

/* ---- BatchGetImage ---- */

/* The stored bytes of a manifest into a new NUL-terminated buffer (caller
 * frees). BERTH_ENOTFOUND when the blob is gone; BERTH_EIO when it is not
 * the size recorded. */
static enum berth_err read_manifest(struct store *st, const struct meta_manifest *mf, char **out)
{
    struct digest d;
    char *buf = NULL;
    size_t len = 0;
    enum berth_err rc = digest_parse(mf->digest, &d);
    if (rc == BERTH_OK) {
        rc = blob_read_all(store_blobs(st), &d, (size_t)mf->size, &buf, &len);
        if (rc == BERTH_ENOTFOUND && store_settle_trash(st)) {
            /* moved aside by a removal that never committed */
            rc = blob_read_all(store_blobs(st), &d, (size_t)mf->size, &buf, &len);
        }
    }
    if (rc == BERTH_ETOOBIG || (rc == BERTH_OK && len != (size_t)mf->size)) {
        rc = BERTH_EIO;
    }
    if (rc != BERTH_OK) {
        free(buf);
        return rc;
    }
    *out = buf;
    return BERTH_OK;
}

/* The Image structure for an answer. */
static json_t *image_json(struct ecr_call *call, const char *repo, const char *digest,
                          const char *tag, const char *manifest, size_t len, const char *media_type)
{
    json_t *img = json_object();
    json_t *id = json_object();
    bool ok = img != NULL && id != NULL;
    if (ok) {
        put(id, "imageDigest", json_string(digest), &ok);
        if (tag != NULL) {
            put(id, "imageTag", json_string(tag), &ok);
        }
        put(img, "registryId", json_string(ecr_registry(call)), &ok);
        put(img, "repositoryName", json_string(repo), &ok);
        put(img, "imageId", id, &ok);
        id = NULL;
        put(img, "imageManifest", json_stringn(manifest, len), &ok);
        put(img, "imageManifestMediaType", json_string(media_type), &ok);
    }
    json_decref(id);
    if (!ok) {
        json_decref(img);
        return NULL;
    }
    return img;
}

static bool media_type_accepted(json_t *accepted, const char *media_type)
{
    if (accepted == NULL) {
        return true;
    }
    size_t i;
    json_t *v;
    json_array_foreach(accepted, i, v)
    {
        if (strcmp(json_string_value(v), media_type) == 0) {
            return true;
        }
    }
    return false;
}

static void batch_get_image(struct ecr_call *call)
{
    const char *name;
    json_t *ids, *accepted;
    if (!ecr_repo_name(call, &name) ||
        !ecr_array(call, call->in, "imageIds", ECR_REQUIRED, 1, 100, &ids) ||
        !ecr_array(call, call->in, "acceptedMediaTypes", ECR_OPTIONAL, 1, 100, &accepted)) {
        return;
    }
    size_t i;
    json_t *v;
    json_array_foreach(accepted, i, v)
    {
        if (!json_is_string(v)) {
            ecr_fail(call, "SerializationException", "Each accepted media type must be a string.");
            return;
        }
        if (json_string_length(v) > META_MEDIA_TYPE_MAX) {
            ecr_invalid(call, "acceptedMediaTypes",
                        "Member must have length less than or equal to %d", META_MEDIA_TYPE_MAX);
            return;
        }
    }
    struct image_id *parsed = parse_image_ids(call, ids);
    if (parsed == NULL) {
        return;
    }
    struct store *st = call->req->srv->store;
    const size_t limit = store_options(st)->manifest_max > BATCH_GET_MAX_BYTES
                             ? store_options(st)->manifest_max
                             : BATCH_GET_MAX_BYTES;
    size_t budget = limit;
    struct meta_repo repo;
    json_t *images = json_array(), *failures = json_array();
    if (images == NULL || failures == NULL) {
        ecr_server_error(call, BERTH_ENOMEM);
        goto out;
    }
    if (!ecr_find_repo(call, name, &repo)) {
        goto out;
    }
    for (i = 0; i < json_array_size(ids); i++) {
        const struct image_id *id = &parsed[i];
        if (id->failure_code != NULL) {
            if (!add_failure(call, failures, id, id->failure_code, id->failure_reason)) {
                goto out;
            }
            continue;
        }
        struct meta_manifest mf;
        struct registry_status s;
        if (find_image(call, &repo, id, &mf, &s) != BERTH_OK ||
            registry_image_check_active(&mf, time_now_ms(), &s) != BERTH_OK) {
            if (!add_image_failure(call, failures, id, &s)) {
                goto out;
            }
            continue;
        }
        if (!media_type_accepted(accepted, mf.media_type)) {
            char reason[META_MEDIA_TYPE_MAX + 128];
            snprintf(reason, sizeof(reason),
                     "Requested image not found in an accepted media type (it is stored as %s)",
                     mf.media_type);
            if (!add_failure(call, failures, id, "ImageNotFound", reason)) {
                goto out;
            }
            continue;
        }
        if ((uint64_t)mf.size > budget) {
            ecr_fail(call, "LimitExceededException",
                     "The manifests requested add up to more than %zu bytes; request fewer "
                     "images per call.",
                     limit);
            goto out;
        }
        budget -= (size_t)mf.size;
        char *bytes = NULL;
        enum berth_err rc = read_manifest(st, &mf, &bytes);
        if (rc == BERTH_ENOTFOUND) {
            /* removed between the lookup and the read */
            if (!add_failure(call, failures, id, "ImageNotFound", "Requested image not found")) {
                goto out;
            }
            continue;
        }
        if (rc != BERTH_OK) {
            ecr_server_error(call, rc);
            goto out;
        }
        json_t *img =
            image_json(call, name, mf.digest, id->tag, bytes, (size_t)mf.size, mf.media_type);
        free(bytes);
        if (img == NULL || json_array_append_new(images, img) != 0) {
            ecr_server_error(call, BERTH_ENOMEM);
            goto out;
        }
        registry_manifest_note_pull(st, &mf,
                                    call->ident.anonymous ? NULL : call->ident.principal_arn);
        metrics_repository_pull(name);
    }
    json_object_set_new(call->out, "images", images);
    json_object_set_new(call->out, "failures", failures);
    images = failures = NULL;
out:
    json_decref(images);
    json_decref(failures);
    free(parsed);
}

/* ---- BatchDeleteImage ---- */

struct removed_ctx {
    json_t *list;
    bool out_of_memory;
};

static int removed_row(void *arg, const char *digest, const char *tag)
{
    struct removed_ctx *c = arg;
    if (!append_image_id(c->list, digest, tag)) {
        c->out_of_memory = true;
    }
    return 0;
}

static void batch_delete_image(struct ecr_call *call)
{
    const char *name;
    json_t *ids;
    if (!ecr_repo_name(call, &name) ||
        !ecr_array(call, call->in, "imageIds", ECR_REQUIRED, 1, 100, &ids)) {
        return;
    }
    struct image_id *parsed = parse_image_ids(call, ids);
    if (parsed == NULL) {
        return;
    }
    size_t i;
    struct store *st = call->req->srv->store;
    struct meta_repo repo;
    struct removed_ctx removed = {.list = json_array()};
    json_t *failures = json_array();
    if (removed.list == NULL || failures == NULL) {
        ecr_server_error(call, BERTH_ENOMEM);
        goto out;
    }
    if (!ecr_find_repo(call, name, &repo)) {
        goto out;
    }
    if (!call->req->srv->cfg->storage_delete_enabled) {
        ecr_fail(call, "ValidationException",
                 "Image deletion is disabled on this registry (storage.delete_enabled is false).");
        goto out;
    }
    for (i = 0; i < json_array_size(ids); i++) {
        const struct image_id *id = &parsed[i];
        if (id->failure_code != NULL) {
            if (!add_failure(call, failures, id, id->failure_code, id->failure_reason)) {
                goto out;
            }
            continue;
        }
        struct registry_status s;
        if (registry_image_delete(st, name, id->tag, id->has_digest ? &id->digest : NULL,
                                  removed_row, &removed, &s) == BERTH_OK) {
            continue;
        }
        if (!add_image_failure(call, failures, id, &s)) {
            goto out;
        }
    }
    if (removed.out_of_memory) {
        ecr_server_error(call, BERTH_ENOMEM);
        goto out;
    }
    json_object_set_new(call->out, "imageIds", removed.list);
    json_object_set_new(call->out, "failures", failures);
    removed.list = failures = NULL;
out:
    json_decref(removed.list);
    json_decref(failures);
    free(parsed);
}

/* ---- PutImage ---- */

/* The manifest must be JSON, and its media type must come from its
 * mediaType member or from imageManifestMediaType. */
static bool check_media_type(struct ecr_call *call, const char *manifest, const char *param)
{
    json_t *doc = json_loads(manifest, JSON_REJECT_DUPLICATES, NULL);
    if (doc == NULL || !json_is_object(doc)) {
        json_decref(doc);
        return ecr_invalid(call, "ImageManifest", "Invalid JSON syntax");
    }
    json_t *mt = json_object_get(doc, "mediaType");
    bool has_own = json_is_string(mt);
    json_decref(doc);
    if (param == NULL && !has_own) {
        return ecr_invalid(call, "imageManifestMediaType",
                           "image manifest mediatype not provided in manifest or parameter");
    }
    if (param != NULL && !manifest_is_known_type(param)) {
        return ecr_invalid(call, "imageManifestMediaType", "Member must be one of [%s, %s, %s, %s]",
                           MANIFEST_OCI, MANIFEST_OCI_INDEX, MANIFEST_DOCKER, MANIFEST_DOCKER_LIST);
    }
    return true;
}

static void put_image(struct ecr_call *call)
{
    const char *name, *manifest, *media_type, *tag, *digest_text;
    if (!ecr_repo_name(call, &name) ||
        !ecr_string(call, call->in, "imageManifest", ECR_REQUIRED, 1, 4194304, &manifest) ||
        !ecr_string(call, call->in, "imageManifestMediaType", ECR_OPTIONAL, 1, META_MEDIA_TYPE_MAX,
                    &media_type) ||
        !ecr_string(call, call->in, "imageTag", ECR_OPTIONAL, 1, 300, &tag) ||
        !ecr_string(call, call->in, "imageDigest", ECR_OPTIONAL, 1, IMAGE_DIGEST_MAX,
                    &digest_text)) {
        return;
    }
    struct digest expected;
    if (digest_text != NULL &&
        (!ecr_digest_syntax_ok(digest_text) || digest_parse(digest_text, &expected) != BERTH_OK)) {
        ecr_invalid(call, "imageDigest",
                    "must satisfy regular expression '" DIGEST_REGEX
                    "' and name a sha256 or sha512 digest");
        return;
    }
    struct meta_repo repo;
    if (!ecr_find_repo(call, name, &repo) || !check_media_type(call, manifest, media_type)) {
        return;
    }
    size_t len = json_string_length(json_object_get(call->in, "imageManifest"));
    const char *tags[1] = {tag};
    struct registry_put in = {
        .repo = name,
        .body = manifest,
        .len = len,
        .content_type = media_type,
        .expected = digest_text ? &expected : NULL,
        .tags = tags,
        .tag_count = tag ? 1 : 0,
        .create_repo = false,
        .fail_if_same = true,
        .scan_quota_ms = call->req->srv->cfg->scan_quota_seconds * 1000,
    };
    struct registry_put_result res;
    struct registry_status s;
    if (registry_manifest_put(call->req->srv->store, &in, &res, &s) != BERTH_OK) {
        if (s.reason == REG_IMAGE_EXISTS && tag == NULL) {
            ecr_fail(call, "ImageAlreadyExistsException",
                     "Image with digest '%s' already exists in the repository with name '%s' "
                     "in registry with id '%s'",
                     s.digest, name, ecr_registry(call));
        } else if (s.reason == REG_DIGEST_INVALID) {
            ecr_fail(call, "ImageDigestDoesNotMatchException",
                     "Manifest digest '%s' does not match the digest '%s' specified", s.digest,
                     digest_text);
        } else {
            ecr_fail_registry(call, &s);
        }
        return;
    }
    log_info("event=image_put repo=%s digest=%s created=%d", name, res.digest.str, res.created);
    metrics_repository_push(name);
    json_t *img = image_json(call, name, res.digest.str, tag, manifest, len, res.media_type);
    if (img == NULL) {
        ecr_server_error(call, BERTH_ENOMEM);
        return;
    }
    json_object_set_new(call->out, "image", img);
}

/* ---- ListImageReferrers ---- */

struct referrer_ctx {
    json_t *list;
    json_t *types; /* filter.artifactTypes, or NULL */
    const char *after;
    int64_t limit;
    bool more;
    char last[DIGEST_STR_MAX];
    bool out_of_memory;
};

static int referrer_row(void *arg, const struct meta_manifest *mf, const char *annotations)
{
    struct referrer_ctx *c = arg;
    if (strcmp(mf->digest, c->after) <= 0) {
        return 0;
    }
    if (c->types != NULL && json_array_size(c->types) > 0) {
        bool match = false;
        size_t i;
        json_t *t;
        json_array_foreach(c->types, i, t)
        {
            if (strcmp(json_string_value(t), mf->artifact_type) == 0) {
                match = true;
                break;
            }
        }
        if (!match) {
            return 0;
        }
    }
    if ((int64_t)json_array_size(c->list) == c->limit) {
        c->more = true;
        return 1;
    }
    json_t *r = json_object();
    bool ok = r != NULL;
    if (ok) {
        put(r, "digest", json_string(mf->digest), &ok);
        put(r, "mediaType", json_string(mf->media_type), &ok);
        if (mf->artifact_type[0] != '\0') {
            put(r, "artifactType", json_string(mf->artifact_type), &ok);
        }
        put(r, "size", json_integer(mf->size), &ok);
        if (annotations != NULL) {
            json_t *ann = json_loads(annotations, 0, NULL);
            if (json_is_object(ann) && json_object_size(ann) > 0) {
                put(r, "annotations", ann, &ok);
            } else {
                json_decref(ann);
            }
        }
        put(r, "artifactStatus", json_string("ACTIVE"), &ok);
    }
    if (!ok || json_array_append_new(c->list, r) != 0) {
        if (!ok) {
            json_decref(r);
        }
        c->out_of_memory = true;
        return 1;
    }
    str_copy(c->last, sizeof(c->last), mf->digest);
    return 0;
}

static void list_image_referrers(struct ecr_call *call)
{
    static const char *const status_values[] = {"ACTIVE", "ARCHIVED", "ACTIVATING", "ANY", NULL};
    const char *name, *subject_text, *artifact_status = NULL;
    json_t *subject, *filter, *types = NULL;
    int64_t limit;
    char after[DIGEST_STR_MAX + 512];
    if (!ecr_repo_name(call, &name) ||
        !ecr_object(call, call->in, "subjectId", ECR_REQUIRED, &subject) ||
        !ecr_string(call, subject, "imageDigest", ECR_REQUIRED, 1, IMAGE_DIGEST_MAX,
                    &subject_text) ||
        !ecr_object(call, call->in, "filter", ECR_OPTIONAL, &filter) ||
        (filter && !ecr_array(call, filter, "artifactTypes", ECR_OPTIONAL, 0, 5, &types)) ||
        (filter && !ecr_enum(call, filter, "artifactStatus", ECR_OPTIONAL, status_values,
                             &artifact_status)) ||
        !ecr_pagination(call, 50, &limit, after, sizeof(after))) {
        return;
    }
    size_t i;
    json_t *t;
    json_array_foreach(types, i, t)
    {
        if (!json_is_string(t)) {
            ecr_fail(call, "SerializationException", "Each artifact type must be a string.");
            return;
        }
        size_t n = json_string_length(t);
        if (n < 1 || n > 255) {
            ecr_invalid(call, "artifactTypes",
                        "Member must have length between 1 and 255 characters");
            return;
        }
    }
    struct digest d;
    if (!ecr_digest_syntax_ok(subject_text) || digest_parse(subject_text, &d) != BERTH_OK) {
        ecr_invalid(call, "subjectId.imageDigest",
                    "must satisfy regular expression '" DIGEST_REGEX
                    "' and name a sha256 or sha512 digest");
        return;
    }
    if (after[0] != '\0' && digest_parse(after, &(struct digest){0}) != BERTH_OK) {
        ecr_invalid(call, "nextToken", "Invalid NextToken");
        return;
    }
    struct meta_repo repo;
    if (!ecr_find_repo(call, name, &repo)) {
        return;
    }
    struct referrer_ctx c = {.list = json_array(), .types = types, .after = after, .limit = limit};
    if (c.list == NULL) {
        ecr_server_error(call, BERTH_ENOMEM);
        return;
    }
    bool none = artifact_status != NULL && strcmp(artifact_status, "ACTIVE") != 0 &&
                strcmp(artifact_status, "ANY") != 0;
    if (!none) {
        struct registry_status s;
        if (registry_referrers(call->req->srv->store, name, &d, NULL, referrer_row, &c, &s) !=
            BERTH_OK) {
            json_decref(c.list);
            ecr_fail_registry(call, &s);
            return;
        }
    }
    if (c.out_of_memory) {
        json_decref(c.list);
        ecr_server_error(call, BERTH_ENOMEM);
        return;
    }
    json_object_set_new(call->out, "referrers", c.list);
    if (c.more) {
        json_object_set_new(call->out, "nextToken", ecr_next_token(c.last));
    }
}

const struct ecr_op ecr_image_ops[] = {
    {"ListImages", list_images, ECR_SCOPE_REPOSITORY_NAME},
    {"DescribeImages", describe_images, ECR_SCOPE_REPOSITORY_NAME},
    {"BatchGetImage", batch_get_image, ECR_SCOPE_REPOSITORY_NAME},
    {"BatchDeleteImage", batch_delete_image, ECR_SCOPE_REPOSITORY_NAME},
    {"PutImage", put_image, ECR_SCOPE_REPOSITORY_NAME},
    {"ListImageReferrers", list_image_referrers, ECR_SCOPE_REPOSITORY_NAME},
    {NULL, NULL, ECR_SCOPE_REGISTRY},
};
