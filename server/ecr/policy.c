/*
 * ECR repository policy operations: SetRepositoryPolicy (validated with
 * authz, stored as given), GetRepositoryPolicy, DeleteRepositoryPolicy.
 * The policies take effect on the next request (server/auth/auth.c reads them
 * per request). Pool threads; see ecr_int.h.
 */
#include "ecr_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "storage/store/store.h"

static bool policy_not_found(struct ecr_call *call, const char *name)
{
    return ecr_fail(call, "RepositoryPolicyNotFoundException",
                    "Repository policy does not exist for the repository with name '%s' in the "
                    "registry with id '%s'",
                    name, ecr_registry(call));
}

static bool echo(struct ecr_call *call, const char *name, const char *text)
{
    json_t *out = call->out;
    if (json_object_set_new(out, "registryId", json_string(ecr_registry(call))) != 0 ||
        json_object_set_new(out, "repositoryName", json_string(name)) != 0 ||
        json_object_set_new(out, "policyText", json_string(text)) != 0) {
        ecr_server_error(call, BERTH_ENOMEM);
        return false;
    }
    return true;
}

static void set_repository_policy(struct ecr_call *call)
{
    const char *name, *text;
    bool force = false;
    if (!ecr_repo_name(call, &name) ||
        !ecr_string(call, call->in, "policyText", ECR_REQUIRED, 0, AUTHZ_REPOSITORY_POLICY_MAX_LEN,
                    &text) ||
        !ecr_bool(call, call->in, "force", ECR_OPTIONAL, &force, NULL)) {
        return;
    }
    /* force only skips AWS's lock-out check, which berth does not make:
     * an administrator key can always replace the policy. */
    if (!ecr_valid_policy(call, text, AUTHZ_REPOSITORY_POLICY)) {
        return;
    }
    struct meta_repo repo;
    if (!ecr_find_repo(call, name, &repo)) {
        return;
    }
    struct meta *m = store_meta(call->req->srv->store);
    enum berth_err rc =
        m != NULL ? meta_repo_set_text(m, repo.id, META_REPO_POLICY, text) : BERTH_EUNAVAILABLE;
    if (rc != BERTH_OK) {
        ecr_fail_repo_step(call, name, rc);
        return;
    }
    log_info("event=repository_policy_set repo=%s", name);
    echo(call, name, text);
}

static void get_repository_policy(struct ecr_call *call)
{
    const char *name;
    if (!ecr_repo_name(call, &name)) {
        return;
    }
    struct meta_repo repo;
    if (!ecr_find_repo(call, name, &repo)) {
        return;
    }
    struct meta *m = store_meta(call->req->srv->store);
    char *text = NULL;
    enum berth_err rc =
        m != NULL ? meta_repo_get_text(m, repo.id, META_REPO_POLICY, &text) : BERTH_EUNAVAILABLE;
    if (rc == BERTH_ENOTFOUND || (rc == BERTH_OK && text == NULL)) {
        policy_not_found(call, name);
    } else if (rc != BERTH_OK) {
        ecr_server_error(call, rc);
    } else {
        echo(call, name, text);
    }
    free(text);
}

static void delete_repository_policy(struct ecr_call *call)
{
    const char *name;
    if (!ecr_repo_name(call, &name)) {
        return;
    }
    struct meta_repo repo;
    if (!ecr_find_repo(call, name, &repo)) {
        return;
    }
    struct meta *m = ecr_meta(call);
    if (m == NULL) {
        return;
    }
    /* Read and clear in one transaction, so the text returned is the one
     * deleted. */
    char *text = NULL;
    enum berth_err rc = meta_begin(m);
    if (rc == BERTH_OK) {
        rc = meta_repo_get_text(m, repo.id, META_REPO_POLICY, &text);
    }
    if (rc == BERTH_OK && text != NULL) {
        rc = meta_repo_set_text(m, repo.id, META_REPO_POLICY, NULL);
    }
    if (rc == BERTH_OK && text != NULL) {
        rc = meta_commit(m);
    }
    meta_rollback(m);
    if (rc == BERTH_ENOTFOUND || (rc == BERTH_OK && text == NULL)) {
        policy_not_found(call, name);
    } else if (rc != BERTH_OK) {
        ecr_server_error(call, rc);
    } else {
        log_info("event=repository_policy_deleted repo=%s", name);
        echo(call, name, text);
    }
    free(text);
}

const struct ecr_op ecr_policy_ops[] = {
    {"SetRepositoryPolicy", set_repository_policy, ECR_SCOPE_REPOSITORY_NAME},
    {"GetRepositoryPolicy", get_repository_policy, ECR_SCOPE_REPOSITORY_NAME},
    {"DeleteRepositoryPolicy", delete_repository_policy, ECR_SCOPE_REPOSITORY_NAME},
    {NULL, NULL, ECR_SCOPE_REGISTRY},
};
