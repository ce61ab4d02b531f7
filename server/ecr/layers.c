/*
 * ECR layer operations: BatchCheckLayerAvailability, InitiateLayerUpload,
 * UploadLayerPart and CompleteLayerUpload. Uploads are the same sessions
 * the OCI /v2 upload protocol uses (storage/store/upload.h), so a session
 * begun on one API can be continued on the other and a layer pushed by
 * either is visible to both. Pool threads; see ecr_int.h.
 *
 * Part sizes are not tracked, so LayerPartTooSmallException is never
 * raised: parts of any size are accepted, in order, up to ECR's quota of
 * PARTS_MAX parts per upload (LimitExceededException).
 */
#include "ecr_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "common/log.h"
#include "common/rand.h"
#include "storage/store/store.h"
#include "common/str.h"
#include "storage/store/upload.h"

/* Largest layer part (the model's maximum for layerPartBlob). */
#define PART_MAX ECR_PART_MAX
/* Characters of base64 that encode PART_MAX bytes. */
#define PART_MAX_BASE64 ((PART_MAX + 2) / 3 * 4)
/* ECR's quota of layer parts per upload. */
#define PARTS_MAX 1000
/* The part size InitiateLayerUpload advises (AWS answers 10 MiB). */
#define PART_SIZE_ADVICE 10485760

#define UUID_REGEX "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

/* ---- BatchCheckLayerAvailability ---- */

static bool add_layer_failure(json_t *failures, const char *digest, const char *code,
                              const char *reason)
{
    json_t *f = json_pack("{s:s, s:s, s:s}", "layerDigest", digest, "failureCode", code,
                          "failureReason", reason);
    return f != NULL && json_array_append_new(failures, f) == 0;
}

static void batch_check_layer_availability(struct ecr_call *call)
{
    const char *name;
    json_t *digests;
    if (!ecr_repo_name(call, &name) ||
        !ecr_array(call, call->in, "layerDigests", ECR_REQUIRED, 1, 100, &digests)) {
        return;
    }
    size_t i;
    json_t *v;
    json_array_foreach(digests, i, v)
    {
        if (!json_is_string(v)) {
            ecr_fail(call, "SerializationException", "Each layer digest must be a string.");
            return;
        }
        if (json_string_length(v) > 1000) {
            ecr_invalid(call, "layerDigests", "Member must have length less than or equal to 1000");
            return;
        }
    }
    struct meta_repo repo;
    if (!ecr_find_repo(call, name, &repo)) {
        return;
    }
    struct meta *m = store_meta(call->req->srv->store);
    json_t *layers = json_array(), *failures = json_array();
    enum berth_err rc = (m == NULL) ? BERTH_EUNAVAILABLE : BERTH_OK;
    if (rc == BERTH_OK && (layers == NULL || failures == NULL)) {
        rc = BERTH_ENOMEM;
    }
    json_array_foreach(digests, i, v)
    {
        if (rc != BERTH_OK) {
            break;
        }
        const char *text = json_string_value(v);
        struct digest d;
        if (!ecr_digest_syntax_ok(text) || digest_parse(text, &d) != BERTH_OK) {
            if (!add_layer_failure(failures, text, "InvalidLayerDigest",
                                   "Invalid layer digest: it must satisfy the regular expression "
                                   "'[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+' and name a sha256 or "
                                   "sha512 digest")) {
                rc = BERTH_ENOMEM;
            }
            continue;
        }
        struct meta_blob blob;
        rc = meta_blob_get_linked(m, repo.id, d.str, &blob);
        if (rc == BERTH_ENOTFOUND) {
            rc = add_layer_failure(failures, text, "MissingLayerDigest",
                                   "Could not find the layer in the repository")
                     ? BERTH_OK
                     : BERTH_ENOMEM;
            continue;
        }
        char media_type[META_MEDIA_TYPE_MAX + 1] = "";
        bool referenced = false, archived = false;
        if (rc == BERTH_OK) {
            rc = meta_blob_media_type(m, repo.id, d.str, media_type, sizeof(media_type));
        }
        if (rc == BERTH_OK) {
            /* ARCHIVED: only archived images of the repository use it */
            rc = meta_blob_archive_state(m, repo.id, d.str, &referenced, &archived);
        }
        if (rc != BERTH_OK) {
            break;
        }
        json_t *layer =
            json_pack("{s:s, s:s, s:I}", "layerDigest", d.str, "layerAvailability",
                      archived ? "ARCHIVED" : "AVAILABLE", "layerSize", (json_int_t)blob.size);
        if (layer != NULL && media_type[0] != '\0' &&
            json_object_set_new(layer, "mediaType", json_string(media_type)) != 0) {
            json_decref(layer);
            layer = NULL;
        }
        if (layer == NULL || json_array_append_new(layers, layer) != 0) {
            rc = BERTH_ENOMEM;
        }
    }
    if (rc != BERTH_OK) {
        json_decref(layers);
        json_decref(failures);
        ecr_server_error(call, rc);
        return;
    }
    json_object_set_new(call->out, "layers", layers);
    json_object_set_new(call->out, "failures", failures);
}

/* ---- uploads ---- */

static void initiate_layer_upload(struct ecr_call *call)
{
    const char *name;
    if (!ecr_repo_name(call, &name)) {
        return;
    }
    struct meta_repo repo;
    if (!ecr_find_repo(call, name, &repo)) {
        return;
    }
    char uuid[RAND_UUID_LEN + 1];
    enum berth_err rc = upload_create(call->req->srv->store, repo.id, DIGEST_SHA256, uuid);
    if (rc != BERTH_OK) {
        struct registry_status s;
        registry_upload_status(rc, &s);
        ecr_fail_registry(call, &s);
        return;
    }
    log_info("event=layer_upload_started repo=%s upload=%s", name, uuid);
    json_object_set_new(call->out, "uploadId", json_string(uuid));
    json_object_set_new(call->out, "partSize", json_integer(PART_SIZE_ADVICE));
}

/* uploadId: required, a UUID. */
static bool upload_id(struct ecr_call *call, const char **out)
{
    if (!ecr_string(call, call->in, "uploadId", ECR_REQUIRED, 1, 64, out)) {
        return false;
    }
    if (!rand_is_uuid(*out)) {
        return ecr_invalid(call, "uploadId", "must satisfy regular expression '" UUID_REGEX "'");
    }
    return true;
}

/* InvalidLayerPartException with its extra members. offset is the number
 * of bytes the session holds; lastValidByteReceived is the index of the
 * last of them (-1 when there are none). */
static void invalid_part(struct ecr_call *call, const char *repo, const char *uuid, uint64_t offset,
                         const char *why)
{
    ecr_fail(call, "InvalidLayerPartException",
             "The layer part is not valid: %s. The upload holds %llu bytes; the next part must "
             "start at byte %llu.",
             why, (unsigned long long)offset, (unsigned long long)offset);
    json_decref(call->extra);
    call->extra =
        json_pack("{s:s, s:s, s:s, s:I}", "registryId", ecr_registry(call), "repositoryName", repo,
                  "uploadId", uuid, "lastValidByteReceived", (json_int_t)offset - 1);
}

/* Decode layerPartBlob into a new buffer (caller frees). */
static bool part_blob(struct ecr_call *call, uint8_t **out, size_t *len)
{
    json_t *v = json_object_get(call->in, "layerPartBlob");
    if (v == NULL || json_is_null(v)) {
        return ecr_invalid(call, "layerPartBlob", "Member must not be null");
    }
    if (!json_is_string(v)) {
        return ecr_fail(call, "SerializationException",
                        "Value of 'layerPartBlob' must be base64 text.");
    }
    size_t n = json_string_length(v);
    if (n > PART_MAX_BASE64) {
        return ecr_invalid(call, "layerPartBlob",
                           "Member must have length less than or equal to %d", PART_MAX);
    }
    uint8_t *buf = malloc(n / 4 * 3 + 1);
    if (buf == NULL) {
        ecr_server_error(call, BERTH_ENOMEM);
        return false;
    }
    size_t got = 0;
    if (base64_decode(json_string_value(v), n, buf, &got) != BERTH_OK) {
        free(buf);
        return ecr_fail(call, "SerializationException",
                        "Value of 'layerPartBlob' is not valid base64.");
    }
    if (got > PART_MAX) {
        free(buf);
        return ecr_invalid(call, "layerPartBlob",
                           "Member must have length less than or equal to %d", PART_MAX);
    }
    *out = buf;
    *len = got;
    return true;
}

/* Fail the call for a failed upload-session call (rc from upload.h): the
 * registry reason it stands for, as ECR's layer operations report it. */
static void fail_upload(struct ecr_call *call, const struct meta_repo *repo, const char *uuid,
                        enum berth_err rc)
{
    struct registry_status s;
    registry_upload_status(rc, &s);
    if (s.reason == REG_UPLOAD_BUSY) {
        /* with the members that say where the session stands */
        uint64_t offset = 0;
        upload_peek(call->req->srv->store, uuid, repo->id, &offset);
        invalid_part(call, repo->name, uuid, offset, "another request is writing to this upload");
        return;
    }
    if (s.reason == REG_DIGEST_INVALID) {
        /* of a layer (CompleteLayerUpload), not of an image as on PutImage */
        const char *digest =
            json_string_value(json_array_get(json_object_get(call->in, "layerDigests"), 0));
        ecr_fail(call, "InvalidLayerException",
                 "The content of the upload with id '%s' does not match the layer digest '%s'; "
                 "the upload was discarded.",
                 uuid, digest != NULL ? digest : "");
        return;
    }
    ecr_fail_registry(call, &s);
}

/* Hold the session for the call; false after failing it. */
static bool hold_upload(struct ecr_call *call, const struct meta_repo *repo, const char *uuid,
                        struct upload **out)
{
    enum berth_err rc = upload_acquire(call->req->srv->store, uuid, repo->id, out);
    if (rc != BERTH_OK) {
        fail_upload(call, repo, uuid, rc);
        return false;
    }
    return true;
}

static void upload_layer_part(struct ecr_call *call)
{
    const char *name, *uuid;
    int64_t first = 0, last = 0;
    if (!ecr_repo_name(call, &name) || !upload_id(call, &uuid) ||
        !ecr_int(call, call->in, "partFirstByte", ECR_REQUIRED, 0, INT64_MAX, &first, NULL) ||
        !ecr_int(call, call->in, "partLastByte", ECR_REQUIRED, 0, INT64_MAX, &last, NULL)) {
        return;
    }
    uint8_t *data = NULL;
    size_t len = 0;
    if (!part_blob(call, &data, &len)) {
        return;
    }
    struct meta_repo repo;
    struct upload *u = NULL;
    if (!ecr_find_repo(call, name, &repo) || !hold_upload(call, &repo, uuid, &u)) {
        free(data);
        return;
    }
    uint64_t offset = upload_offset(u);
    if (upload_parts(u) >= PARTS_MAX) {
        ecr_fail(call, "LimitExceededException",
                 "The upload with id '%s' already has %d layer parts, the most an upload may "
                 "have; complete it (CompleteLayerUpload) or send larger parts.",
                 uuid, PARTS_MAX);
    } else if ((uint64_t)first != offset) {
        invalid_part(call, name, uuid, offset, "partFirstByte is not the next byte of the upload");
    } else if (len == 0 || last < first || (uint64_t)(last - first) != (uint64_t)len - 1) {
        /* last - first cannot overflow once last >= first >= 0; last -
         * first + 1 could (partLastByte may be INT64_MAX) */
        invalid_part(call, name, uuid, offset,
                     "partLastByte - partFirstByte + 1 is not the length of layerPartBlob");
    } else {
        enum berth_err rc = upload_write(u, data, len);
        if (rc == BERTH_OK) {
            rc = upload_save(u); /* committed where every replica sees it */
        }
        if (rc != BERTH_OK) {
            fail_upload(call, &repo, uuid, rc);
        } else {
            upload_add_part(u);
        }
    }
    upload_release(u);
    free(data);
    if (call->failed) {
        return;
    }
    json_object_set_new(call->out, "registryId", json_string(ecr_registry(call)));
    json_object_set_new(call->out, "repositoryName", json_string(name));
    json_object_set_new(call->out, "uploadId", json_string(uuid));
    json_object_set_new(call->out, "lastByteReceived", json_integer(last));
}

static void complete_layer_upload(struct ecr_call *call)
{
    const char *name, *uuid;
    json_t *digests;
    if (!ecr_repo_name(call, &name) || !upload_id(call, &uuid) ||
        !ecr_array(call, call->in, "layerDigests", ECR_REQUIRED, 1, 100, &digests)) {
        return;
    }
    /* The content is checked against the first digest; berth hashes one
     * algorithm per upload, so any others must name the same digest. */
    struct digest d;
    size_t i;
    json_t *v;
    json_array_foreach(digests, i, v)
    {
        if (!json_is_string(v)) {
            ecr_fail(call, "SerializationException", "Each layer digest must be a string.");
            return;
        }
        struct digest other;
        const char *text = json_string_value(v);
        if (json_string_length(v) > 1000 || !ecr_digest_syntax_ok(text) ||
            digest_parse(text, i == 0 ? &d : &other) != BERTH_OK) {
            ecr_invalid(call, "layerDigests",
                        "Member must satisfy regular expression '[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+' "
                        "and name a sha256 or sha512 digest");
            return;
        }
        if (i > 0 && strcmp(other.str, d.str) != 0) {
            ecr_invalid(call, "layerDigests", "All layer digests must name the same layer");
            return;
        }
    }
    struct store *st = call->req->srv->store;
    struct meta_repo repo;
    struct upload *u = NULL;
    if (!ecr_find_repo(call, name, &repo) || !hold_upload(call, &repo, uuid, &u)) {
        return;
    }
    if (upload_offset(u) == 0) {
        upload_release(u);
        ecr_fail(call, "EmptyUploadException",
                 "The layer upload with id '%s' in the repository with name '%s' does not contain "
                 "any layer parts.",
                 uuid, name);
        return;
    }
    struct meta *m;
    struct meta_blob blob;
    enum berth_err rc = store_meta_get(st, &m);
    if (rc == BERTH_OK) {
        rc = meta_blob_get_linked(m, repo.id, d.str, &blob);
    }
    if (rc == BERTH_OK) {
        /* nothing to publish: the session's bytes are not needed */
        upload_release(u);
        upload_cancel(st, uuid, repo.id);
        ecr_fail(call, "LayerAlreadyExistsException",
                 "The layer with digest '%s' already exists in the repository with name '%s' in "
                 "the registry with id '%s'",
                 d.str, name, ecr_registry(call));
        return;
    }
    if (rc != BERTH_ENOTFOUND) {
        upload_release(u);
        ecr_server_error(call, rc);
        return;
    }
    rc = upload_complete(u, &d, &blob); /* consumes u */
    if (rc != BERTH_OK) {
        fail_upload(call, &repo, uuid, rc);
        return;
    }
    log_info("event=layer_upload_completed repo=%s upload=%s digest=%s size=%lld", name, uuid,
             blob.digest, (long long)blob.size);
    json_object_set_new(call->out, "registryId", json_string(ecr_registry(call)));
    json_object_set_new(call->out, "repositoryName", json_string(name));
    json_object_set_new(call->out, "uploadId", json_string(uuid));
    json_object_set_new(call->out, "layerDigest", json_string(blob.digest));
}

const struct ecr_op ecr_layer_ops[] = {
    {"BatchCheckLayerAvailability", batch_check_layer_availability, ECR_SCOPE_REPOSITORY_NAME},
    {"InitiateLayerUpload", initiate_layer_upload, ECR_SCOPE_REPOSITORY_NAME},
    {"UploadLayerPart", upload_layer_part, ECR_SCOPE_REPOSITORY_NAME},
    {"CompleteLayerUpload", complete_layer_upload, ECR_SCOPE_REPOSITORY_NAME},
    {NULL, NULL, ECR_SCOPE_REGISTRY},
};
