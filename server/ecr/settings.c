/*
 * ECR repository and registry settings: PutImageTagMutability,
 * PutImageScanningConfiguration, TagResource, UntagResource
 * and ListTagsForResource (DescribeRegistry is replication.c). Pool threads; see ecr_int.h.
 */
#include "ecr_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "storage/spec/names.h"
#include "storage/store/store.h"
#include "common/str.h"

/* Longest resourceArn looked at ("arn:aws:ecr:" + region + 12 digits +
 * ":repository/" + a 256-character name fits easily). */
#define ARN_MAX 1024
/* Most keys one UntagResource call may name. */
#define UNTAG_KEYS_MAX 200
/* Tags a repository may carry. */
#define RESOURCE_TAGS_MAX 50

/* Partition, region and account fields: [a-z0-9-], at most 64. */
static bool arn_field_ok(struct ecr_span f)
{
    if (f.len == 0 || f.len > 64) {
        return false;
    }
    for (size_t i = 0; i < f.len; i++) {
        char c = f.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
            return false;
        }
    }
    return true;
}

/* resourceArn: required; names one of our repositories. */
static bool arn_repo(struct ecr_call *call, struct meta_repo *out)
{
    const char *arn;
    if (!ecr_string(call, call->in, "resourceArn", ECR_REQUIRED, 1, ARN_MAX, &arn)) {
        return false;
    }
    struct ecr_arn parts;
    if (!ecr_repo_arn_parse(arn, &parts)) {
        return ecr_invalid(call, "resourceArn", "Invalid ARN");
    }
    if (!names_repo_valid(parts.name) || strlen(parts.name) < 2 || !arn_field_ok(parts.partition) ||
        !arn_field_ok(parts.region) || !arn_field_ok(parts.account)) {
        return ecr_invalid(call, "resourceArn", "Invalid ARN");
    }
    /* berth is one registry in one region of the aws partition: an ARN for
     * anything else names a repository that does not exist here */
    if (!ecr_span_is(parts.partition, "aws") || !ecr_span_is(parts.region, ecr_region(call)) ||
        !ecr_span_is(parts.account, ecr_registry(call))) {
        return ecr_fail(call, "RepositoryNotFoundException",
                        "The repository with name '%s' does not exist in the registry with id "
                        "'%.*s' in region '%.*s'",
                        parts.name, (int)parts.account.len, parts.account.p, (int)parts.region.len,
                        parts.region.p);
    }
    struct registry_status s;
    if (registry_repo(call->req->srv->store, parts.name, false, out, &s) != BERTH_OK) {
        if (s.reason == REG_REPO_UNKNOWN) {
            return ecr_repo_not_found(call, parts.name);
        }
        ecr_fail_registry(call, &s);
        return false;
    }
    return true;
}

/* The repository's resource tags as a JSON array (never NULL on success),
 * one per key also where an earlier berth stored a key twice. */
static enum berth_err load_tags(struct meta *m, int64_t repo_id, json_t **out)
{
    char *text = NULL;
    enum berth_err rc = meta_repo_get_text(m, repo_id, META_REPO_RESOURCE_TAGS, &text);
    if (rc != BERTH_OK) {
        return rc;
    }
    json_t *stored = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    json_t *tags = ecr_tags_collapse(stored); /* not an array: none */
    json_decref(stored);
    if (tags == NULL) {
        return BERTH_ENOMEM;
    }
    *out = tags;
    return BERTH_OK;
}

/* Store the tags (an empty list clears the column). */
static enum berth_err store_tags(struct meta *m, int64_t repo_id, json_t *tags)
{
    char *text = NULL;
    if (json_array_size(tags) > 0) {
        text = json_dumps(tags, JSON_COMPACT);
        if (text == NULL) {
            return BERTH_ENOMEM;
        }
    }
    enum berth_err rc = meta_repo_set_text(m, repo_id, META_REPO_RESOURCE_TAGS, text);
    free(text);
    return rc;
}

/* Index of the tag with this key in tags, or -1. */
static long find_key(json_t *tags, const char *key)
{
    size_t i;
    json_t *t;
    json_array_foreach(tags, i, t)
    {
        const char *k = json_string_value(json_object_get(t, "Key"));
        if (k != NULL && strcmp(k, key) == 0) {
            return (long)i;
        }
    }
    return -1;
}

/* Read, change and write the repository's tags in one write transaction.
 * change returns false after failing the call. */
typedef bool (*tags_change_fn)(struct ecr_call *call, json_t *tags);

static void update_tags(struct ecr_call *call, const struct meta_repo *repo, tags_change_fn change)
{
    struct meta *m = ecr_meta(call);
    if (m == NULL) {
        return;
    }
    json_t *tags = NULL;
    enum berth_err rc = meta_begin(m);
    if (rc == BERTH_OK) {
        rc = load_tags(m, repo->id, &tags);
    }
    if (rc == BERTH_OK && !change(call, tags)) {
        meta_rollback(m);
        json_decref(tags);
        return;
    }
    if (rc == BERTH_OK) {
        rc = store_tags(m, repo->id, tags);
    }
    if (rc == BERTH_OK) {
        rc = meta_commit(m);
    }
    json_decref(tags);
    if (rc != BERTH_OK) {
        meta_rollback(m);
        ecr_fail_repo_step(call, repo->name, rc);
    }
}

static bool merge_tags(struct ecr_call *call, json_t *tags)
{
    json_t *add = json_object_get(call->in, "tags");
    size_t i;
    json_t *t;
    json_array_foreach(add, i, t)
    {
        const char *key = json_string_value(json_object_get(t, "Key"));
        json_t *pair = json_pack("{s:s, s:s}", "Key", key, "Value",
                                 json_string_value(json_object_get(t, "Value")));
        long at = find_key(tags, key);
        int failed = pair == NULL ? -1
                     : at >= 0    ? json_array_set_new(tags, (size_t)at, pair)
                                  : json_array_append_new(tags, pair);
        if (failed) {
            ecr_server_error(call, BERTH_ENOMEM);
            return false;
        }
    }
    if (json_array_size(tags) > RESOURCE_TAGS_MAX) {
        return ecr_fail(call, "TooManyTagsException",
                        "A repository can have at most %d tags; the request would make it %zu.",
                        RESOURCE_TAGS_MAX, json_array_size(tags));
    }
    return true;
}

static void tag_resource(struct ecr_call *call)
{
    json_t *tags;
    struct meta_repo repo;
    if (!arn_repo(call, &repo) ||
        !ecr_array(call, call->in, "tags", ECR_REQUIRED, 0, 1000, &tags) ||
        !ecr_validate_resource_tags(call, tags)) {
        return;
    }
    update_tags(call, &repo, merge_tags);
    if (!call->failed) {
        log_info("event=repository_tagged repo=%s count=%zu", repo.name, json_array_size(tags));
    }
}

static bool remove_keys(struct ecr_call *call, json_t *tags)
{
    json_t *keys = json_object_get(call->in, "tagKeys");
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k)
    {
        long at = find_key(tags, json_string_value(k));
        if (at >= 0) {
            json_array_remove(tags, (size_t)at);
        }
    }
    return true;
}

static void untag_resource(struct ecr_call *call)
{
    json_t *keys;
    struct meta_repo repo;
    if (!arn_repo(call, &repo) ||
        !ecr_array(call, call->in, "tagKeys", ECR_REQUIRED, 0, UNTAG_KEYS_MAX, &keys)) {
        return;
    }
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k)
    {
        if (!json_is_string(k)) {
            ecr_fail(call, "SerializationException", "Each tag key must be a string.");
            return;
        }
        const char *key = json_string_value(k);
        size_t len = json_string_length(k);
        if (len < 1 || len > 128 || strlen(key) != len) {
            ecr_fail(call, "InvalidTagParameterException",
                     "Invalid parameter at 'tagKeys' failed to satisfy constraint: 'Member must "
                     "have length between 1 and 128'");
            return;
        }
        if (str_has_prefix(key, "aws:")) {
            ecr_fail(call, "InvalidTagParameterException",
                     "Tag keys starting with 'aws:' are reserved for AWS use.");
            return;
        }
    }
    update_tags(call, &repo, remove_keys);
    if (!call->failed) {
        log_info("event=repository_untagged repo=%s count=%zu", repo.name, json_array_size(keys));
    }
}

static void list_tags_for_resource(struct ecr_call *call)
{
    struct meta_repo repo;
    if (!arn_repo(call, &repo)) {
        return;
    }
    struct meta *m = store_meta(call->req->srv->store);
    json_t *tags = NULL;
    enum berth_err rc = m ? load_tags(m, repo.id, &tags) : BERTH_EUNAVAILABLE;
    if (rc != BERTH_OK) {
        ecr_server_error(call, rc);
        return;
    }
    json_object_set_new(call->out, "tags", tags);
}

/* ---- repository settings ---- */

static void put_image_tag_mutability(struct ecr_call *call)
{
    const char *name, *mutability;
    json_t *filters;
    if (!ecr_repo_name(call, &name) ||
        !ecr_enum(call, call->in, "imageTagMutability", ECR_REQUIRED, ecr_mutability_values,
                  &mutability) ||
        !ecr_array(call, call->in, "imageTagMutabilityExclusionFilters", ECR_OPTIONAL, 1, 5,
                   &filters) ||
        !ecr_validate_mutability(call, mutability, filters)) {
        return;
    }
    struct meta *m = ecr_meta(call);
    if (m == NULL) {
        return;
    }
    struct meta_repo repo;
    if (!ecr_find_repo(call, name, &repo)) {
        return;
    }
    char *text = NULL;
    if (filters != NULL && (text = json_dumps(filters, JSON_COMPACT)) == NULL) {
        ecr_server_error(call, BERTH_ENOMEM);
        return;
    }
    enum berth_err rc = meta_begin(m);
    if (rc == BERTH_OK) {
        rc = meta_repo_set_mutability(m, repo.id,
                                      (enum meta_mutability)meta_mutability_parse(mutability));
    }
    if (rc == BERTH_OK) {
        rc = meta_repo_set_text(m, repo.id, META_REPO_MUTABILITY_FILTERS, text);
    }
    if (rc == BERTH_OK) {
        rc = meta_commit(m);
    }
    free(text);
    if (rc != BERTH_OK) {
        meta_rollback(m);
        ecr_fail_repo_step(call, name, rc);
        return;
    }
    log_info("event=repository_mutability repo=%s mutability=%s", name, mutability);
    json_object_set_new(call->out, "registryId", json_string(ecr_registry(call)));
    json_object_set_new(call->out, "repositoryName", json_string(name));
    json_object_set_new(call->out, "imageTagMutability", json_string(mutability));
    if (filters != NULL) {
        json_object_set_new(call->out, "imageTagMutabilityExclusionFilters",
                            json_deep_copy(filters));
    }
}

static void put_image_scanning_configuration(struct ecr_call *call)
{
    const char *name;
    json_t *scan;
    bool scan_on_push = false;
    if (!ecr_repo_name(call, &name) ||
        !ecr_object(call, call->in, "imageScanningConfiguration", ECR_REQUIRED, &scan) ||
        !ecr_bool(call, scan, "scanOnPush", ECR_OPTIONAL, &scan_on_push, NULL)) {
        return;
    }
    struct meta *m = ecr_meta(call);
    if (m == NULL) {
        return;
    }
    struct meta_repo repo;
    if (!ecr_find_repo(call, name, &repo)) {
        return;
    }
    enum berth_err rc = meta_repo_set_scan_on_push(m, repo.id, scan_on_push);
    if (rc != BERTH_OK) {
        ecr_fail_repo_step(call, name, rc);
        return;
    }
    log_info("event=repository_scan_on_push repo=%s scan_on_push=%d", name, scan_on_push);
    json_object_set_new(call->out, "registryId", json_string(ecr_registry(call)));
    json_object_set_new(call->out, "repositoryName", json_string(name));
    json_object_set_new(call->out, "imageScanningConfiguration",
                        json_pack("{s:b}", "scanOnPush", scan_on_push));
}

/* ---- the registry ---- */

const struct ecr_op ecr_settings_ops[] = {
    {"PutImageTagMutability", put_image_tag_mutability, ECR_SCOPE_REPOSITORY_NAME},
    {"PutImageScanningConfiguration", put_image_scanning_configuration, ECR_SCOPE_REPOSITORY_NAME},
    /* repo-scoped through the repository ARN in resourceArn */
    {"TagResource", tag_resource, ECR_SCOPE_RESOURCE_ARN},
    {"UntagResource", untag_resource, ECR_SCOPE_RESOURCE_ARN},
    {"ListTagsForResource", list_tags_for_resource, ECR_SCOPE_RESOURCE_ARN},
    {NULL, NULL, ECR_SCOPE_REGISTRY},
};
