/*
 * ECR registry policy operations: PutRegistryPolicy (validated as a
 * registry policy by authz, stored as given in the registry settings),
 * GetRegistryPolicy, DeleteRegistryPolicy. The policy takes effect on the
 * next request: server/auth reads it with the key and repository policy
 * and combines the three (explicit Deny wins). Pool threads; see ecr_int.h.
 */
#include "ecr_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"

static bool policy_not_found(struct ecr_call *call)
{
    return ecr_fail(call, "RegistryPolicyNotFoundException",
                    "Registry policy does not exist in the registry with id '%s'",
                    ecr_registry(call));
}

static void echo(struct ecr_call *call, const char *text)
{
    if (json_object_set_new(call->out, "registryId", json_string(ecr_registry(call))) != 0 ||
        json_object_set_new(call->out, "policyText", json_string(text)) != 0) {
        ecr_server_error(call, BERTH_ENOMEM);
    }
}

static void put_registry_policy(struct ecr_call *call)
{
    const char *text;
    if (!ecr_string(call, call->in, "policyText", ECR_REQUIRED, 0, AUTHZ_REGISTRY_POLICY_MAX_LEN,
                    &text)) {
        return;
    }
    if (!ecr_valid_policy(call, text, AUTHZ_REGISTRY_POLICY)) {
        return;
    }
    if (!ecr_setting_write(call, META_REGISTRY_POLICY_SETTING, text)) {
        return;
    }
    log_info("event=registry_policy_set");
    echo(call, text);
}

static void get_registry_policy(struct ecr_call *call)
{
    char *text = NULL;
    if (!ecr_setting_read(call, META_REGISTRY_POLICY_SETTING, false, &text)) {
        return;
    }
    if (text == NULL) {
        policy_not_found(call);
    } else {
        echo(call, text);
    }
    free(text);
}

static void delete_registry_policy(struct ecr_call *call)
{
    char *text = NULL;
    if (!ecr_setting_read(call, META_REGISTRY_POLICY_SETTING, true, &text)) {
        return;
    }
    if (text == NULL) {
        policy_not_found(call);
    } else {
        log_info("event=registry_policy_deleted");
        echo(call, text);
    }
    free(text);
}

const struct ecr_op ecr_registry_policy_ops[] = {
    {"PutRegistryPolicy", put_registry_policy, ECR_SCOPE_REGISTRY},
    {"GetRegistryPolicy", get_registry_policy, ECR_SCOPE_REGISTRY},
    {"DeleteRegistryPolicy", delete_registry_policy, ECR_SCOPE_REGISTRY},
    {NULL, NULL, ECR_SCOPE_REGISTRY},
};
