/*
 * ECR operations on repositories: CreateRepository, DescribeRepositories,
 * DeleteRepository. Pool threads; see ecr_int.h.
 */
#include "ecr_int.h"

#include "storage/registry/repo_list.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "storage/store/store.h"
#include "common/str.h"
#include "common/timeutil.h"

const char *const ecr_mutability_values[] = {"MUTABLE", "IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION",
                                             "MUTABLE_WITH_EXCLUSION", NULL};

json_t *ecr_tags_collapse(json_t *tags)
{
    json_t *map = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(tags, i, t)
    {
        const char *key = json_string_value(json_object_get(t, "Key"));
        json_t *value = json_object_get(t, "Value");
        if (map == NULL || key == NULL || !json_is_string(value)) {
            continue;
        }
        size_t j;
        json_t *seen, *at = NULL;
        json_array_foreach(map, j, seen)
        {
            if (strcmp(json_string_value(json_object_get(seen, "Key")), key) == 0) {
                at = seen;
                break;
            }
        }
        int failed =
            at != NULL
                ? json_object_set(at, "Value", value)
                : json_array_append_new(map, json_pack("{s:s, s:O}", "Key", key, "Value", value));
        if (failed) {
            json_decref(map);
            map = NULL;
        }
    }
    return map;
}

bool ecr_validate_resource_tags(struct ecr_call *call, json_t *tags)
{
    size_t i;
    json_t *t;
    json_array_foreach(tags, i, t)
    {
        const char *key, *value;
        if (!json_is_object(t)) {
            return ecr_fail(call, "SerializationException", "Each tag must be a structure.");
        }
        if (!ecr_string(call, t, "Key", ECR_REQUIRED, 1, 128, &key) ||
            !ecr_string(call, t, "Value", ECR_REQUIRED, 0, 256, &value)) {
            if (strcmp(call->type, "InvalidParameterException") == 0) {
                str_copy(call->type, sizeof(call->type), "InvalidTagParameterException");
            }
            return false;
        }
        if (str_has_prefix(key, "aws:")) {
            return ecr_fail(call, "InvalidTagParameterException",
                            "Tag keys starting with 'aws:' are reserved for AWS use.");
        }
    }
    /* a key given twice is one tag (the last value), as TagResource
     * merges by key: never two rows that UntagResource would half remove */
    json_t *map = ecr_tags_collapse(tags);
    if (map == NULL || json_array_clear(tags) != 0 || json_array_extend(tags, map) != 0) {
        json_decref(map);
        ecr_server_error(call, BERTH_ENOMEM);
        return false;
    }
    json_decref(map);
    if (json_array_size(tags) > 50) {
        return ecr_fail(call, "TooManyTagsException",
                        "A repository can have at most 50 tags; the request would make it %zu.",
                        json_array_size(tags));
    }
    return true;
}

bool ecr_validate_mutability(struct ecr_call *call, const char *mutability, json_t *filters)
{
    bool with_exclusion = mutability != NULL && strstr(mutability, "_WITH_EXCLUSION") != NULL;
    if (with_exclusion && filters == NULL) {
        return ecr_invalid(call, "imageTagMutabilityExclusionFilters",
                           "ImageTagMutabilityExclusionFilters can't be null when "
                           "imageTagMutability is set as %s",
                           mutability);
    }
    if (!with_exclusion && filters != NULL) {
        return ecr_invalid(call, "imageTagMutabilityExclusionFilters",
                           "ImageTagMutabilityExclusionFilters can only be set when "
                           "imageTagMutability is IMMUTABLE_WITH_EXCLUSION or "
                           "MUTABLE_WITH_EXCLUSION");
    }
    static const char *const types[] = {"WILDCARD", NULL};
    size_t i;
    json_t *f;
    json_array_foreach(filters, i, f)
    {
        const char *type, *pattern;
        if (!json_is_object(f)) {
            return ecr_fail(call, "SerializationException",
                            "Each exclusion filter must be a structure.");
        }
        if (!ecr_enum(call, f, "filterType", ECR_REQUIRED, types, &type) ||
            !ecr_string(call, f, "filter", ECR_REQUIRED, 1, 128, &pattern)) {
            return false;
        }
        for (const char *p = pattern; *p; p++) {
            char c = *p;
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '*' || c == '-')) {
                return ecr_invalid(call, "filter",
                                   "must satisfy regular expression '^[0-9a-zA-Z._*-]{1,128}$'");
            }
        }
    }
    return true;
}

/* Store a JSON value as a repository text attribute (NULL clears). */
static enum berth_err set_json(struct meta *m, int64_t id, enum meta_repo_text which, json_t *value)
{
    char *text = NULL;
    if (value != NULL) {
        text = json_dumps(value, JSON_COMPACT);
        if (text == NULL) {
            return BERTH_ENOMEM;
        }
    }
    enum berth_err rc = meta_repo_set_text(m, id, which, text);
    free(text);
    return rc;
}

static void create_repository(struct ecr_call *call)
{
    json_t *in = call->in;
    const char *name, *mutability, *enc_type, *kms_key;
    json_t *tags, *filters, *scan, *enc;
    bool scan_on_push = false;
    static const char *const enc_types[] = {"AES256", "KMS", "KMS_DSSE", NULL};
    if (!ecr_repo_name(call, &name) || !ecr_array(call, in, "tags", ECR_OPTIONAL, 0, 1000, &tags) ||
        (tags && !ecr_validate_resource_tags(call, tags)) ||
        !ecr_enum(call, in, "imageTagMutability", ECR_OPTIONAL, ecr_mutability_values,
                  &mutability) ||
        !ecr_array(call, in, "imageTagMutabilityExclusionFilters", ECR_OPTIONAL, 1, 5, &filters) ||
        !ecr_validate_mutability(call, mutability, filters) ||
        !ecr_object(call, in, "imageScanningConfiguration", ECR_OPTIONAL, &scan) ||
        (scan && !ecr_bool(call, scan, "scanOnPush", ECR_OPTIONAL, &scan_on_push, NULL)) ||
        !ecr_object(call, in, "encryptionConfiguration", ECR_OPTIONAL, &enc) ||
        (enc && !ecr_enum(call, enc, "encryptionType", ECR_REQUIRED, enc_types, &enc_type)) ||
        (enc && !ecr_string(call, enc, "kmsKey", ECR_OPTIONAL, 1, 2048, &kms_key))) {
        return;
    }
    if (enc != NULL && kms_key != NULL && strcmp(enc_type, "AES256") == 0) {
        /* as creation templates answer it: a key AES256 would never use */
        ecr_fail(call, "InvalidParameterException",
                 "Invalid parameter: kmsKey can only be specified when encryptionType is KMS or "
                 "KMS_DSSE");
        return;
    }
    struct meta *m = ecr_meta(call);
    if (m == NULL) {
        return;
    }
    struct meta_repo repo;
    enum berth_err rc = meta_begin(m);
    if (rc == BERTH_OK) {
        rc = meta_repo_create(m, name, time_now_ms(), &repo);
    }
    if (rc == BERTH_EEXIST) {
        meta_rollback(m);
        ecr_fail(call, "RepositoryAlreadyExistsException",
                 "The repository with name '%s' already exists in the registry with id '%s'", name,
                 ecr_registry(call));
        return;
    }
    if (rc == BERTH_OK && mutability != NULL) {
        int mu = meta_mutability_parse(mutability);
        rc = meta_repo_set_mutability(m, repo.id, (enum meta_mutability)mu);
        repo.mutability = (enum meta_mutability)mu;
    }
    if (rc == BERTH_OK && filters != NULL) {
        rc = set_json(m, repo.id, META_REPO_MUTABILITY_FILTERS, filters);
    }
    if (rc == BERTH_OK && scan_on_push) {
        rc = meta_repo_set_scan_on_push(m, repo.id, true);
        repo.scan_on_push = true;
    }
    if (rc == BERTH_OK && enc != NULL) {
        rc = set_json(m, repo.id, META_REPO_ENCRYPTION, enc);
    }
    if (rc == BERTH_OK && tags != NULL && json_array_size(tags) > 0) {
        rc = set_json(m, repo.id, META_REPO_RESOURCE_TAGS, tags);
    }
    if (rc == BERTH_OK) {
        rc = meta_commit(m);
    }
    if (rc != BERTH_OK) {
        meta_rollback(m);
        ecr_server_error(call, rc);
        return;
    }
    log_info("event=repository_created repo=%s", name);
    json_t *r = ecr_repo_json(call, &repo);
    if (r == NULL) {
        ecr_server_error(call, BERTH_ENOMEM);
        return;
    }
    json_object_set_new(call->out, "repository", r);
}

struct describe_ctx {
    struct ecr_call *call;
    json_t *list;
};

static bool describe_allow(void *arg, const char *name)
{
    struct describe_ctx *c = arg;
    return ecr_may(c->call, "ecr:DescribeRepositories", name);
}

static enum berth_err describe_take(void *arg, const struct meta_repo *repo)
{
    struct describe_ctx *c = arg;
    json_t *r = ecr_repo_json(c->call, repo);
    return r != NULL && json_array_append_new(c->list, r) == 0 ? BERTH_OK : BERTH_ENOMEM;
}

static void describe_repositories(struct ecr_call *call)
{
    json_t *names;
    int64_t limit;
    char after[NAMES_REPO_MAX + 1];
    if (!ecr_registry_id(call) ||
        !ecr_array(call, call->in, "repositoryNames", ECR_OPTIONAL, 1, 100, &names) ||
        !ecr_pagination(call, 1000, &limit, after, sizeof(after))) {
        return;
    }
    if (names != NULL && (json_object_get(call->in, "maxResults") != NULL ||
                          json_object_get(call->in, "nextToken") != NULL)) {
        ecr_invalid(call, "repositoryNames",
                    "maxResults and nextToken cannot be used together with repositoryNames");
        return;
    }
    json_t *list = json_array();
    if (list == NULL) {
        ecr_server_error(call, BERTH_ENOMEM);
        return;
    }
    json_object_set_new(call->out, "repositories", list);
    if (names != NULL) {
        size_t i;
        json_t *n;
        json_array_foreach(names, i, n)
        {
            if (!json_is_string(n) || json_string_length(n) < 2 || json_string_length(n) > 256 ||
                !names_repo_valid(json_string_value(n))) {
                ecr_invalid(call, "repositoryNames",
                            "Member must satisfy regular expression '" ECR_REPO_NAME_PATTERN "'");
                return;
            }
            if (!ecr_authorize(call, "ecr:DescribeRepositories", json_string_value(n))) {
                return;
            }
            struct meta_repo repo;
            struct registry_status s;
            if (registry_repo(call->req->srv->store, json_string_value(n), false, &repo, &s) !=
                BERTH_OK) {
                if (s.reason == REG_REPO_UNKNOWN) {
                    ecr_repo_not_found(call, json_string_value(n));
                } else {
                    ecr_fail_registry(call, &s);
                }
                return;
            }
            json_t *r = ecr_repo_json(call, &repo);
            if (r == NULL) {
                ecr_server_error(call, BERTH_ENOMEM);
                return;
            }
            json_array_append_new(list, r);
        }
        return;
    }
    /* Without names, the listing holds the repositories the caller may
     * describe (every page full but the last, so tokens always advance). */
    struct describe_ctx c = {.call = call, .list = list};
    char last[NAMES_REPO_MAX + 1];
    bool more = false;
    struct registry_status s;
    if (repo_list_page(call->req->srv->store, after, limit, describe_allow, describe_take, &c, last,
                       sizeof(last), &more, &s) != BERTH_OK) {
        ecr_fail_registry(call, &s);
        return;
    }
    if (more) {
        json_object_set_new(call->out, "nextToken", ecr_next_token(last));
    }
}

/* One try at deleting a repository's row (and with it, by cascade, its
 * images and tags). *not_empty is set, and nothing deleted, when it holds
 * images and force is not set. Nothing changes on failure. */
static enum berth_err repo_delete(struct meta *m, int64_t repo_id, bool force, int64_t *images,
                                  bool *not_empty)
{
    *not_empty = false;
    enum berth_err rc = meta_begin(m);
    if (rc == BERTH_OK) {
        rc = meta_repo_image_count(m, repo_id, images);
    }
    if (rc == BERTH_OK && *images > 0 && !force) {
        *not_empty = true;
        meta_rollback(m);
        return BERTH_OK;
    }
    if (rc == BERTH_OK) {
        rc = meta_repo_delete(m, repo_id);
    }
    if (rc == BERTH_OK) {
        rc = meta_commit(m);
    }
    if (rc != BERTH_OK) {
        meta_rollback(m);
    }
    return rc;
}

static void delete_repository(struct ecr_call *call)
{
    const char *name;
    bool force = false;
    if (!ecr_repo_name(call, &name) ||
        !ecr_bool(call, call->in, "force", ECR_OPTIONAL, &force, NULL)) {
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
    json_t *r = ecr_repo_json(call, &repo);
    if (r == NULL) {
        ecr_server_error(call, BERTH_ENOMEM);
        return;
    }
    int64_t images = 0;
    bool not_empty;
    enum berth_err rc = repo_delete(m, repo.id, force, &images, &not_empty);
    if (rc == BERTH_EDB && store_reserve_release_to_delete(call->req->srv->store)) {
        /* a full disk: deleting a repository is how space is made */
        rc = repo_delete(m, repo.id, force, &images, &not_empty);
    }
    if (rc == BERTH_OK && not_empty) {
        json_decref(r);
        ecr_fail(call, "RepositoryNotEmptyException",
                 "The repository with name '%s' in registry with id '%s' cannot be deleted "
                 "because it still contains images",
                 name, ecr_registry(call));
        return;
    }
    if (rc != BERTH_OK) {
        json_decref(r);
        ecr_fail_repo_step(call, name, rc);
        return;
    }
    log_info("event=repository_deleted repo=%s images=%lld", name, (long long)images);
    json_object_set_new(call->out, "repository", r);
}

const struct ecr_op ecr_repo_ops[] = {
    {"CreateRepository", create_repository, ECR_SCOPE_REPOSITORY_NAME},
    {"DescribeRepositories", describe_repositories, ECR_SCOPE_SELF},
    {"DeleteRepository", delete_repository, ECR_SCOPE_REPOSITORY_NAME},
    {NULL, NULL, ECR_SCOPE_REGISTRY},
};
