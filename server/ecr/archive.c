/*
 * ECR's archive storage class: UpdateImageStorageClass (the rule is
 * storage/registry/archive.c; DescribeImages, ListImages, BatchGetImage,
 * the layer checks and scanning read the image status there too). Pool
 * threads; see ecr_int.h.
 */
#include "ecr_int.h"

#include <string.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "storage/registry/archive.h"

static const char *const target_classes[] = {"STANDARD", "ARCHIVE", NULL};

static void update_image_storage_class(struct ecr_call *call)
{
    const char *repo, *target;
    struct ecr_image_id id;
    if (!ecr_repo_name(call, &repo) || !ecr_image_id_parse(call, &id) ||
        !ecr_enum(call, call->in, "targetStorageClass", ECR_REQUIRED, target_classes, &target)) {
        return;
    }
    enum meta_storage_class cls =
        strcmp(target, "ARCHIVE") == 0 ? META_STORAGE_ARCHIVE : META_STORAGE_STANDARD;
    int64_t restore_ms = call->req->srv->cfg->storage_archive_restore_seconds * 1000;
    int64_t scan_quota_ms = call->req->srv->cfg->scan_quota_seconds * 1000;
    struct meta_manifest mf;
    struct registry_status s;
    if (registry_image_set_storage_class(call->req->srv->store, repo, id.tag,
                                         id.digest_text != NULL ? &id.digest : NULL, cls,
                                         restore_ms, scan_quota_ms, &mf, &s) != BERTH_OK) {
        ecr_fail_image(call, repo, id.tag, id.digest_text, &s);
        return;
    }
    const char *status = registry_image_status_name(registry_image_status(&mf, time_now_ms()));
    log_info("event=image_storage_class repo=%s digest=%s target=%s status=%s", repo, mf.digest,
             target, status);
    json_t *image_id = ecr_image_id_json(mf.digest, id.tag);
    if (image_id == NULL ||
        json_object_set_new(call->out, "registryId", json_string(ecr_registry(call))) != 0 ||
        json_object_set_new(call->out, "repositoryName", json_string(repo)) != 0 ||
        json_object_set_new(call->out, "imageId", image_id) != 0 ||
        json_object_set_new(call->out, "imageStatus", json_string(status)) != 0) {
        ecr_server_error(call, BERTH_ENOMEM);
    }
}

const struct ecr_op ecr_archive_ops[] = {
    {"UpdateImageStorageClass", update_image_storage_class, ECR_SCOPE_REPOSITORY_NAME},
    {NULL, NULL, ECR_SCOPE_REGISTRY},
};
