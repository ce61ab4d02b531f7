/*
 * ECR replication: PutReplicationConfiguration and DescribeRegistry, which
 * reports it (the configuration is validated as ECR does and stored as
 * validated in registry_settings), and DescribeImageReplicationStatus,
 * which reads the replication queue (a push queues its copies; the
 * replication job copies them to the peers of replication.peers). Pool
 * threads; see ecr_int.h.
 */
#include "ecr_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define RULES_MAX 10
#define DESTINATIONS_MAX 100
/* ECR's quota: unique destinations across all rules of a configuration. */
#define UNIQUE_DESTINATIONS_MAX 25
#define FILTERS_MAX 100
#define FILTER_MIN 2
#define FILTER_MAX 256
#define REGION_MIN 2
#define REGION_MAX 25
#define REGISTRY_ID_LEN 12

#define REGION_PATTERN "[0-9a-z-]{2,25}"
#define REGISTRY_ID_PATTERN "[0-9]{12}"
#define FILTER_PATTERN "^(?:[a-z0-9]+(?:[._-][a-z0-9]*)*/)*[a-z0-9]*(?:[._-][a-z0-9]*)*$"

static const char *const filter_types[] = {"PREFIX_MATCH", NULL};

static bool lower_digit(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool separator(char c)
{
    return c == '.' || c == '_' || c == '-';
}

/* REGION_PATTERN's characters (the length is checked by ecr_string). */
static bool region_ok(const char *s)
{
    for (; *s != '\0'; s++) {
        if (!lower_digit(*s) && *s != '-') {
            return false;
        }
    }
    return true;
}

static bool registry_id_ok(const char *s)
{
    for (; *s != '\0'; s++) {
        if (!(*s >= '0' && *s <= '9')) {
            return false;
        }
    }
    return true;
}

/* FILTER_PATTERN: every '/'-terminated component starts with [a-z0-9] and
 * goes on with [a-z0-9._-]; the last component is any run of [a-z0-9._-]
 * (possibly empty: "team/" is a prefix). */
static bool filter_ok(const char *s)
{
    bool component_start = true;
    for (; *s != '\0'; s++) {
        if (*s == '/') {
            if (component_start) {
                return false;
            }
            component_start = true;
        } else if (lower_digit(*s)) {
            component_start = false;
        } else if (separator(*s)) {
            /* a '/'-terminated component may not start with a separator;
             * the last may, and the check at the next '/' catches the rest */
            const char *slash = strchr(s, '/');
            if (component_start && slash != NULL) {
                return false;
            }
            component_start = false;
        } else {
            return false;
        }
    }
    return true;
}

static bool not_structure(struct ecr_call *call)
{
    return ecr_fail(call, "SerializationException",
                    "Start of structure or map found where not expected.");
}

static bool append(struct ecr_call *call, json_t *list, json_t *item)
{
    if (item == NULL || json_array_append_new(list, item) != 0) {
        ecr_server_error(call, BERTH_ENOMEM);
        return false;
    }
    return true;
}

/* The destinations of one rule into out; unique gathers "region/id" of
 * every rule's destinations. */
static bool parse_destinations(struct ecr_call *call, json_t *dests, json_t *out, json_t *unique)
{
    size_t i;
    json_t *d;
    json_array_foreach(dests, i, d)
    {
        const char *region, *id;
        if (!json_is_object(d)) {
            return not_structure(call);
        }
        if (!ecr_string(call, d, "region", ECR_REQUIRED, REGION_MIN, REGION_MAX, &region) ||
            !ecr_string(call, d, "registryId", ECR_REQUIRED, 0, SIZE_MAX, &id)) {
            return false;
        }
        if (!region_ok(region)) {
            return ecr_invalid(call, "region",
                               "must satisfy regular expression '" REGION_PATTERN "'");
        }
        if (strlen(id) != REGISTRY_ID_LEN || !registry_id_ok(id)) {
            return ecr_invalid(call, "registryId",
                               "must satisfy regular expression '" REGISTRY_ID_PATTERN "'");
        }
        if (strcmp(region, ecr_region(call)) == 0 && strcmp(id, ecr_registry(call)) == 0) {
            return ecr_invalid(call, "replicationConfiguration",
                               "Replication destination cannot be the same as the source "
                               "registry");
        }
        char key[64];
        snprintf(key, sizeof(key), "%s/%s", region, id);
        if (json_object_set_new(unique, key, json_true()) != 0) {
            ecr_server_error(call, BERTH_ENOMEM);
            return false;
        }
        if (!append(call, out, json_pack("{s:s, s:s}", "region", region, "registryId", id))) {
            return false;
        }
    }
    return true;
}

static bool parse_filters(struct ecr_call *call, json_t *filters, json_t *out)
{
    size_t i;
    json_t *f;
    json_array_foreach(filters, i, f)
    {
        const char *value, *type;
        if (!json_is_object(f)) {
            return not_structure(call);
        }
        if (!ecr_string(call, f, "filter", ECR_REQUIRED, FILTER_MIN, FILTER_MAX, &value) ||
            !ecr_enum(call, f, "filterType", ECR_REQUIRED, filter_types, &type)) {
            return false;
        }
        if (!filter_ok(value)) {
            return ecr_invalid(call, "filter",
                               "must satisfy regular expression '" FILTER_PATTERN "'");
        }
        if (!append(call, out, json_pack("{s:s, s:s}", "filter", value, "filterType", type))) {
            return false;
        }
    }
    return true;
}

/* One rule, validated, into its normalized copy *out; false after failing. */
static bool parse_rule(struct ecr_call *call, json_t *rule, json_t *unique, json_t **out)
{
    json_t *dests, *filters;
    if (!json_is_object(rule)) {
        return not_structure(call);
    }
    if (!ecr_array(call, rule, "destinations", ECR_REQUIRED, 0, DESTINATIONS_MAX, &dests) ||
        !ecr_array(call, rule, "repositoryFilters", ECR_OPTIONAL, 1, FILTERS_MAX, &filters)) {
        return false;
    }
    json_t *copy = json_object();
    json_t *dest_copy = json_array();
    json_t *filter_copy = filters != NULL ? json_array() : NULL;
    bool ok = copy != NULL && dest_copy != NULL && (filters == NULL || filter_copy != NULL);
    if (!ok) {
        ecr_server_error(call, BERTH_ENOMEM);
    }
    ok = ok && parse_destinations(call, dests, dest_copy, unique);
    ok = ok && (filters == NULL || parse_filters(call, filters, filter_copy));
    if (ok &&
        (json_object_set(copy, "destinations", dest_copy) != 0 ||
         (filter_copy != NULL && json_object_set(copy, "repositoryFilters", filter_copy) != 0))) {
        ecr_server_error(call, BERTH_ENOMEM);
        ok = false;
    }
    json_decref(dest_copy);
    json_decref(filter_copy);
    if (!ok) {
        json_decref(copy);
        return false;
    }
    *out = copy;
    return true;
}

/* Answer replicationConfiguration with the stored configuration text. */
static void answer(struct ecr_call *call, const char *text)
{
    json_t *config = json_loads(text, 0, NULL);
    if (config == NULL || json_object_set_new(call->out, "replicationConfiguration", config) != 0) {
        ecr_server_error(call, BERTH_ENOMEM);
    }
}

static void put_replication_configuration(struct ecr_call *call)
{
    json_t *config, *rules;
    if (!ecr_object(call, call->in, "replicationConfiguration", ECR_REQUIRED, &config) ||
        !ecr_array(call, config, "rules", ECR_REQUIRED, 0, RULES_MAX, &rules)) {
        return;
    }
    json_t *copy = json_array();
    json_t *unique = json_object();
    if (copy == NULL || unique == NULL) {
        json_decref(copy);
        json_decref(unique);
        ecr_server_error(call, BERTH_ENOMEM);
        return;
    }
    size_t i;
    json_t *rule;
    json_array_foreach(rules, i, rule)
    {
        json_t *normalized = NULL;
        if (!parse_rule(call, rule, unique, &normalized) || !append(call, copy, normalized)) {
            json_decref(copy);
            json_decref(unique);
            return;
        }
    }
    size_t destinations = json_object_size(unique);
    json_decref(unique);
    if (destinations > UNIQUE_DESTINATIONS_MAX) {
        json_decref(copy);
        ecr_invalid(call, "replicationConfiguration",
                    "A replication configuration can have at most %d unique destinations",
                    UNIQUE_DESTINATIONS_MAX);
        return;
    }
    char *text = ecr_setting_write_rules(call, META_REPLICATION_CONFIG_SETTING, copy);
    if (text == NULL) {
        return;
    }
    log_info("event=replication_configuration_set rules=%zu destinations=%zu",
             json_array_size(rules), destinations);
    answer(call, text);
    free(text);
}

static void describe_registry(struct ecr_call *call)
{
    char *text = NULL;
    if (!ecr_setting_read(call, META_REPLICATION_CONFIG_SETTING, false, &text)) {
        return;
    }
    if (json_object_set_new(call->out, "registryId", json_string(ecr_registry(call))) != 0) {
        ecr_server_error(call, BERTH_ENOMEM);
    } else if (text == NULL) {
        /* never configured: ECR answers an empty rule list */
        if (json_object_set_new(call->out, "replicationConfiguration",
                                json_pack("{s:[]}", "rules")) != 0) {
            ecr_server_error(call, BERTH_ENOMEM);
        }
    } else {
        answer(call, text);
    }
    free(text);
}

/* One destination's status as ECR's ImageReplicationStatus: failureCode
 * only when the copy failed for good. */
static int add_status(void *arg, const struct meta_repl_status *st)
{
    json_t *o = json_pack("{s:s, s:s, s:s}", "region", st->region, "registryId", st->registry_id,
                          "status", st->status);
    if (o != NULL && strcmp(st->status, "FAILED") == 0 && st->failure_code != NULL &&
        json_object_set_new(o, "failureCode", json_string(st->failure_code)) != 0) {
        json_decref(o);
        o = NULL;
    }
    return ecr_json_list_add(arg, o);
}

static enum berth_err read_statuses(struct meta *m, int64_t manifest_id, json_t *list)
{
    struct ecr_json_list l = {.list = list};
    enum berth_err rc = meta_repl_status_list(m, manifest_id, add_status, &l);
    return ecr_json_list_rc(&l, rc);
}

static void describe_image_replication_status(struct ecr_call *call)
{
    ecr_image_statuses(call, "replicationStatuses", false, read_statuses);
}

const struct ecr_op ecr_replication_ops[] = {
    {"PutReplicationConfiguration", put_replication_configuration, ECR_SCOPE_REGISTRY},
    {"DescribeRegistry", describe_registry, ECR_SCOPE_REGISTRY},
    {"DescribeImageReplicationStatus", describe_image_replication_status,
     ECR_SCOPE_REPOSITORY_NAME},
    {NULL, NULL, ECR_SCOPE_REGISTRY},
};
