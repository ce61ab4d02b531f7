/*
 * ECR managed signing: PutSigningConfiguration, GetSigningConfiguration,
 * DeleteSigningConfiguration and DescribeImageSigningStatus. The
 * configuration is stored as validated here (registry_settings); the
 * signing of pushed images is storage/registry/signing.c. Pool threads;
 * see ecr_int.h.
 */
#include "ecr_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/str.h"

#define RULES_MAX 10
#define FILTERS_MAX 100
#define PROFILE_ARN_MAX 200
#define FILTER_MAX 256

#define PROFILE_ARN_PATTERN                                                                        \
    "^arn:aws(-[a-z]+)*:signer:[a-z0-9-]+:[0-9]{12}:\\/signing-profiles\\/[a-zA-Z0-9_]{2,}$"
#define FILTER_PATTERN "^(?:[a-z0-9*]+(?:[._-][a-z0-9*]+)*/)*[a-z0-9*]+(?:[._-][a-z0-9*]+)*$"

static const char *const filter_types[] = {"WILDCARD_MATCH", NULL};

static bool lower_digit(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* PROFILE_ARN_PATTERN, by hand. */
static bool profile_arn_ok(const char *s)
{
    if (!str_has_prefix(s, "arn:aws")) {
        return false;
    }
    s += 7;
    while (*s == '-') { /* (-[a-z]+)* */
        s++;
        if (!(*s >= 'a' && *s <= 'z')) {
            return false;
        }
        while (*s >= 'a' && *s <= 'z') {
            s++;
        }
    }
    if (!str_has_prefix(s, ":signer:")) {
        return false;
    }
    s += 8;
    const char *region = s;
    while (lower_digit(*s) || *s == '-') {
        s++;
    }
    if (s == region || *s++ != ':') {
        return false;
    }
    for (int i = 0; i < 12; i++, s++) {
        if (!(*s >= '0' && *s <= '9')) {
            return false;
        }
    }
    if (!str_has_prefix(s, ":/signing-profiles/")) {
        return false;
    }
    s += 19;
    size_t n = 0;
    for (; *s != '\0'; s++, n++) {
        if (!(lower_digit(*s) || (*s >= 'A' && *s <= 'Z') || *s == '_')) {
            return false;
        }
    }
    return n >= 2;
}

/* FILTER_PATTERN: '/'-separated components, each runs of [a-z0-9*]
 * joined by single '.', '_' or '-'. */
static bool filter_ok(const char *s)
{
    bool need_run = true;
    for (; *s != '\0'; s++) {
        if (lower_digit(*s) || *s == '*') {
            need_run = false;
        } else if (need_run) {
            return false;
        } else if (*s == '.' || *s == '_' || *s == '-' || *s == '/') {
            need_run = true;
        } else {
            return false;
        }
    }
    return !need_run;
}

/* One rule, validated, into its normalized copy; false after failing. */
static bool parse_rule(struct ecr_call *call, json_t *rule, json_t **out)
{
    const char *arn;
    json_t *filters;
    if (!json_is_object(rule)) {
        return ecr_fail(call, "SerializationException",
                        "Start of structure or map found where not expected.");
    }
    if (!ecr_string(call, rule, "signingProfileArn", ECR_REQUIRED, 0, PROFILE_ARN_MAX, &arn) ||
        !ecr_array(call, rule, "repositoryFilters", ECR_OPTIONAL, 1, FILTERS_MAX, &filters)) {
        return false;
    }
    if (!profile_arn_ok(arn)) {
        return ecr_invalid(call, "signingProfileArn",
                           "must satisfy regular expression '" PROFILE_ARN_PATTERN "'");
    }
    json_t *copy = json_pack("{s:s}", "signingProfileArn", arn);
    json_t *list = filters != NULL ? json_array() : NULL;
    if (copy == NULL || (filters != NULL && list == NULL)) {
        json_decref(copy);
        json_decref(list);
        ecr_server_error(call, BERTH_ENOMEM);
        return false;
    }
    size_t i;
    json_t *f;
    json_array_foreach(filters, i, f)
    {
        const char *value, *type;
        if (!json_is_object(f)) {
            ecr_fail(call, "SerializationException",
                     "Start of structure or map found where not expected.");
            goto fail;
        }
        if (!ecr_string(call, f, "filter", ECR_REQUIRED, 1, FILTER_MAX, &value) ||
            !ecr_enum(call, f, "filterType", ECR_REQUIRED, filter_types, &type)) {
            goto fail;
        }
        if (!filter_ok(value)) {
            ecr_invalid(call, "filter", "must satisfy regular expression '" FILTER_PATTERN "'");
            goto fail;
        }
        if (json_array_append_new(
                list, json_pack("{s:s, s:s}", "filter", value, "filterType", type)) != 0) {
            ecr_server_error(call, BERTH_ENOMEM);
            goto fail;
        }
    }
    if (list != NULL && json_object_set_new(copy, "repositoryFilters", list) != 0) {
        list = NULL;
        ecr_server_error(call, BERTH_ENOMEM);
        goto fail;
    }
    *out = copy;
    return true;
fail:
    json_decref(copy);
    json_decref(list);
    return false;
}

static void not_found(struct ecr_call *call)
{
    ecr_fail(call, "SigningConfigurationNotFoundException",
             "The signing configuration for the registry with id '%s' does not exist",
             ecr_registry(call));
}

/* Answer {registryId?, signingConfiguration} from the stored text. */
static void answer(struct ecr_call *call, const char *text, bool with_registry)
{
    json_t *config = json_loads(text, 0, NULL);
    if (config == NULL ||
        (with_registry &&
         json_object_set_new(call->out, "registryId", json_string(ecr_registry(call))) != 0) ||
        json_object_set_new(call->out, "signingConfiguration", config) != 0) {
        ecr_server_error(call, BERTH_ENOMEM);
    }
}

static void put_signing_configuration(struct ecr_call *call)
{
    json_t *config, *rules;
    if (!ecr_object(call, call->in, "signingConfiguration", ECR_REQUIRED, &config) ||
        !ecr_array(call, config, "rules", ECR_REQUIRED, 0, RULES_MAX, &rules)) {
        return;
    }
    json_t *copy = json_array();
    if (copy == NULL) {
        ecr_server_error(call, BERTH_ENOMEM);
        return;
    }
    size_t i;
    json_t *rule;
    json_array_foreach(rules, i, rule)
    {
        json_t *normalized = NULL;
        if (!parse_rule(call, rule, &normalized)) {
            json_decref(copy);
            return;
        }
        if (json_array_append_new(copy, normalized) != 0) {
            json_decref(copy);
            ecr_server_error(call, BERTH_ENOMEM);
            return;
        }
    }
    char *text = ecr_setting_write_rules(call, META_SIGNING_CONFIG_SETTING, copy);
    if (text == NULL) {
        return;
    }
    log_info("event=signing_configuration_set rules=%zu", json_array_size(rules));
    answer(call, text, false);
    free(text);
}

static void get_signing_configuration(struct ecr_call *call)
{
    char *text = NULL;
    if (!ecr_setting_read(call, META_SIGNING_CONFIG_SETTING, false, &text)) {
        return;
    }
    if (text == NULL) {
        not_found(call);
    } else {
        answer(call, text, true);
    }
    free(text);
}

static void delete_signing_configuration(struct ecr_call *call)
{
    char *text = NULL;
    if (!ecr_setting_read(call, META_SIGNING_CONFIG_SETTING, true, &text)) {
        return;
    }
    if (text == NULL) {
        not_found(call);
    } else {
        log_info("event=signing_configuration_deleted");
        answer(call, text, true);
    }
    free(text);
}

static int add_status(void *arg, const struct meta_signing_status *st)
{
    json_t *o = json_pack("{s:s, s:s}", "signingProfileArn", st->profile_arn, "status", st->status);
    if (o != NULL && st->failure_code != NULL &&
        json_object_set_new(o, "failureCode", json_string(st->failure_code)) != 0) {
        json_decref(o);
        o = NULL;
    }
    if (o != NULL && st->failure_reason != NULL &&
        json_object_set_new(o, "failureReason", json_string(st->failure_reason)) != 0) {
        json_decref(o);
        o = NULL;
    }
    return ecr_json_list_add(arg, o);
}

static enum berth_err read_statuses(struct meta *m, int64_t manifest_id, json_t *list)
{
    struct ecr_json_list l = {.list = list};
    enum berth_err rc = meta_signing_status_list(m, manifest_id, add_status, &l);
    return ecr_json_list_rc(&l, rc);
}

static void describe_image_signing_status(struct ecr_call *call)
{
    ecr_image_statuses(call, "signingStatuses", true, read_statuses);
}

const struct ecr_op ecr_signing_ops[] = {
    {"PutSigningConfiguration", put_signing_configuration, ECR_SCOPE_REGISTRY},
    {"GetSigningConfiguration", get_signing_configuration, ECR_SCOPE_REGISTRY},
    {"DeleteSigningConfiguration", delete_signing_configuration, ECR_SCOPE_REGISTRY},
    {"DescribeImageSigningStatus", describe_image_signing_status, ECR_SCOPE_REPOSITORY_NAME},
    {NULL, NULL, ECR_SCOPE_REGISTRY},
};
