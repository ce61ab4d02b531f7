/*
 * ECR account settings: GetAccountSetting and PutAccountSetting for
 * BASIC_SCAN_TYPE_VERSION, REGISTRY_POLICY_SCOPE and BLOB_MOUNTING (the
 * catalogue, defaults and storage are storage/registry/account.c). Pool
 * threads; see ecr_int.h.
 */
#include "ecr_int.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "storage/registry/account.h"

/* name: required, 1..64, one of the settings. */
static bool setting_name(struct ecr_call *call, const char **out)
{
    return ecr_string(call, call->in, "name", ECR_REQUIRED, 1, 64, out) &&
           ecr_enum(call, call->in, "name", ECR_REQUIRED, account_setting_names, out);
}

static void answer(struct ecr_call *call, const char *name, const char *value)
{
    if (json_object_set_new(call->out, "name", json_string(name)) != 0 ||
        json_object_set_new(call->out, "value", json_string(value)) != 0) {
        ecr_server_error(call, BERTH_ENOMEM);
    }
}

static void get_account_setting(struct ecr_call *call)
{
    const char *name;
    if (!setting_name(call, &name)) {
        return;
    }
    char value[ACCOUNT_VALUE_MAX + 1];
    enum berth_err rc = account_setting_get(call->req->srv->store, name, value, sizeof(value));
    if (rc != BERTH_OK) {
        ecr_server_error(call, rc);
        return;
    }
    answer(call, name, value);
}

static void put_account_setting(struct ecr_call *call)
{
    const char *name, *value;
    if (!setting_name(call, &name) ||
        !ecr_string(call, call->in, "value", ECR_REQUIRED, 0, 4096, &value)) {
        return;
    }
    const char *const *values = account_setting_values(name);
    bool ok = false;
    for (const char *const *v = values; *v != NULL; v++) {
        ok = ok || strcmp(*v, value) == 0;
    }
    if (!ok) {
        char set[256] = "";
        size_t o = 0;
        for (const char *const *v = values; *v != NULL && o < sizeof(set); v++) {
            int n = snprintf(set + o, sizeof(set) - o, "%s%s", o ? ", " : "", *v);
            if (n < 0) {
                break;
            }
            o += (size_t)n;
        }
        ecr_invalid(call, "value", "Value for account setting %s must be one of [%s]", name, set);
        return;
    }
    enum berth_err rc = account_setting_put(call->req->srv->store, name, value);
    if (rc != BERTH_OK) {
        ecr_server_error(call, rc);
        return;
    }
    log_info("event=account_setting_put name=%s value=%s", name, value);
    answer(call, name, value);
}

const struct ecr_op ecr_account_ops[] = {
    {"GetAccountSetting", get_account_setting, ECR_SCOPE_REGISTRY},
    {"PutAccountSetting", put_account_setting, ECR_SCOPE_REGISTRY},
    {NULL, NULL, ECR_SCOPE_REGISTRY},
};
