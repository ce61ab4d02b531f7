/*
 * ECR pull-through cache rules: CreatePullThroughCacheRule,
 * DescribePullThroughCacheRules, UpdatePullThroughCacheRule,
 * DeletePullThroughCacheRule and ValidatePullThroughCacheRule. A rule is
 * validated here with ECR's messages and stored as JSON (storage/meta);
 * the cache itself (what /v2 fetches through a rule) is
 * storage/upstream/cache.c. The upstream is any OCI registry URL;
 * credentialArn names a secret of `berth secrets`. Pool threads; see
 * ecr_int.h.
 */
#include "ecr_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/str.h"
#include "common/timeutil.h"
#include "storage/upstream/cache.h"
#include "storage/upstream/client.h"
#include "storage/upstream/secrets.h"

/* Rules a registry may hold (ECR's quota: 50). */
#define RULES_MAX 50
#define ROLE_ARN_MAX 2048
#define CREDENTIAL_MIN 50
#define CREDENTIAL_MAX 612

#define CREDENTIAL_PATTERN                                                                         \
    "^arn:aws(-\\w+)*:secretsmanager:[a-zA-Z0-9-:]+:secret:ecr\\-pullthroughcache\\/"              \
    "[a-zA-Z0-9\\/_+=.@-]+$"

static const struct ecr_prefix_kind rule_kind = {"PullThroughCacheRuleAlreadyExistsException",
                                                 "A pull through cache rule",
                                                 "pull through cache rules", RULES_MAX};

static const char *const upstream_registries[] = {"ecr",
                                                  "ecr-public",
                                                  "quay",
                                                  "k8s",
                                                  "docker-hub",
                                                  "github-container-registry",
                                                  "azure-container-registry",
                                                  "gitlab-container-registry",
                                                  "chainguard",
                                                  NULL};

static bool word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* CREDENTIAL_PATTERN, by hand. Pure. */
static bool credential_ok(const char *s)
{
    if (!str_has_prefix(s, "arn:aws")) {
        return false;
    }
    s += strlen("arn:aws");
    while (*s == '-') { /* (-\w+)* */
        const char *start = ++s;
        while (word_char(*s)) {
            s++;
        }
        if (s == start) {
            return false;
        }
    }
    if (!str_has_prefix(s, ":secretsmanager:")) {
        return false;
    }
    s += strlen(":secretsmanager:");
    /* [a-zA-Z0-9-:]+ then ":secret:" (the class holds ':', so the last
     * ":secret:" that leaves a valid rest decides) */
    const char *sec = strstr(s, ":secret:ecr-pullthroughcache/");
    if (sec == NULL || sec == s) {
        return false;
    }
    for (const char *p = s; p < sec; p++) {
        if (!word_char(*p) && *p != '-' && *p != ':') {
            return false;
        }
        if (*p == '_') {
            return false;
        }
    }
    const char *rest = sec + strlen(":secret:ecr-pullthroughcache/");
    if (*rest == '\0') {
        return false;
    }
    for (; *rest != '\0'; rest++) {
        if (!word_char(*rest) && strchr("/+=.@-", *rest) == NULL) {
            return false;
        }
    }
    return true;
}

static bool prefix_member(struct ecr_call *call, json_t *obj, const char *key, enum ecr_need need,
                          const char **out)
{
    if (!ecr_string(call, obj, key, need, 2, META_PTC_PREFIX_MAX, out)) {
        return false;
    }
    if (*out != NULL && !ecr_prefix_pattern_ok(*out)) {
        return ecr_invalid(call, key, "must satisfy regular expression '" ECR_PREFIX_PATTERN "'");
    }
    return true;
}

static bool credential_member(struct ecr_call *call, const char **out)
{
    if (!ecr_string(call, call->in, "credentialArn", ECR_OPTIONAL, CREDENTIAL_MIN, CREDENTIAL_MAX,
                    out)) {
        return false;
    }
    if (*out != NULL && !credential_ok(*out)) {
        return ecr_invalid(call, "credentialArn",
                           "must satisfy regular expression '" CREDENTIAL_PATTERN "'");
    }
    return true;
}

/* The secret credentialArn names must exist in berth (berth secrets). */
static bool secret_exists(struct ecr_call *call, struct meta *m, const char *arn)
{
    char name[META_SECRET_NAME_MAX + 64];
    char *sealed = NULL;
    enum berth_err rc = upstream_secret_name(arn, name, sizeof(name))
                            ? meta_upstream_secret_get(m, name, &sealed)
                            : BERTH_ENOTFOUND;
    free(sealed);
    if (rc == BERTH_ENOTFOUND) {
        return ecr_fail(call, "UnableToAccessSecretException",
                        "The secret '%s' could not be accessed: berth holds no secret of that "
                        "name (berth secrets put)",
                        arn);
    }
    if (rc != BERTH_OK) {
        ecr_server_error(call, rc);
        return false;
    }
    return true;
}

static bool rule_not_found(struct ecr_call *call, const char *prefix)
{
    return ecr_fail(call, "PullThroughCacheRuleNotFoundException",
                    "The pull through cache rule with prefix '%s' does not exist in the registry "
                    "with id '%s'",
                    prefix, ecr_registry(call));
}

/* The PullThroughCacheRule structure for a stored rule. */
static json_t *rule_json(struct ecr_call *call, const struct meta_prefix_doc *r)
{
    return ecr_prefix_doc_json(r, "ecrRepositoryPrefix", ecr_registry(call));
}

struct one_ctx {
    struct ecr_call *call;
    json_t *json;
};

static int take_one(void *arg, const struct meta_prefix_doc *r)
{
    struct one_ctx *c = arg;
    c->json = rule_json(c->call, r);
    return 0;
}

/* The stored rule of prefix as JSON: *out, or the call failed. */
static bool load_rule(struct ecr_call *call, struct meta *m, const char *prefix, json_t **out)
{
    struct one_ctx c = {call, NULL};
    enum berth_err rc = meta_ptc_rule_get(m, prefix, take_one, &c);
    if (rc == BERTH_OK && c.json == NULL) {
        rc = BERTH_ENOMEM;
    }
    if (rc == BERTH_ENOTFOUND) {
        return rule_not_found(call, prefix);
    }
    if (rc != BERTH_OK) {
        ecr_server_error(call, rc);
        return false;
    }
    *out = c.json;
    return true;
}

/* Copy the members of rule named in keys (those present) into call->out. */
static void echo(struct ecr_call *call, json_t *rule, const char *const *keys)
{
    for (const char *const *k = keys; *k != NULL; k++) {
        json_t *v = json_object_get(rule, *k);
        if (v != NULL) {
            json_object_set(call->out, *k, v);
        }
    }
}

static void create_rule(struct ecr_call *call)
{
    const char *prefix, *url, *registry, *cred, *role, *up_prefix;
    if (!ecr_registry_id(call) ||
        !prefix_member(call, call->in, "ecrRepositoryPrefix", ECR_REQUIRED, &prefix) ||
        !ecr_string(call, call->in, "upstreamRegistryUrl", ECR_REQUIRED, 1, UPSTREAM_URL_MAX - 1,
                    &url) ||
        !ecr_enum(call, call->in, "upstreamRegistry", ECR_OPTIONAL, upstream_registries,
                  &registry) ||
        !credential_member(call, &cred) ||
        !ecr_string(call, call->in, "customRoleArn", ECR_OPTIONAL, 0, ROLE_ARN_MAX, &role) ||
        !prefix_member(call, call->in, "upstreamRepositoryPrefix", ECR_OPTIONAL, &up_prefix)) {
        return;
    }
    char base[UPSTREAM_URL_MAX];
    if (!upstream_url_normalize(url, base, sizeof(base))) {
        ecr_invalid(call, "upstreamRegistryUrl",
                    "must be a registry host name with an optional port, or an http:// or "
                    "https:// URL of one with no path");
        return;
    }
    struct meta *m = ecr_meta(call);
    if (m == NULL || (cred != NULL && !secret_exists(call, m, cred))) {
        return;
    }
    json_t *doc = json_pack("{s:s}", "upstreamRegistryUrl", url);
    if (doc != NULL && registry != NULL) {
        json_object_set_new(doc, "upstreamRegistry", json_string(registry));
    }
    if (doc != NULL && cred != NULL) {
        json_object_set_new(doc, "credentialArn", json_string(cred));
    }
    if (doc != NULL && role != NULL && *role != '\0') {
        json_object_set_new(doc, "customRoleArn", json_string(role));
    }
    if (doc != NULL && up_prefix != NULL) {
        json_object_set_new(doc, "upstreamRepositoryPrefix", json_string(up_prefix));
    }
    char *body = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (body == NULL) {
        ecr_server_error(call, BERTH_ENOMEM);
        return;
    }
    enum berth_err rc = meta_ptc_rule_create(m, prefix, body, time_now_ms(), RULES_MAX);
    free(body);
    if (!ecr_prefix_doc_created(call, rc, prefix, &rule_kind)) {
        return;
    }
    log_info("event=pull_through_rule_created prefix=%s upstream=%s", prefix, base);
    json_t *rule = NULL;
    if (load_rule(call, m, prefix, &rule)) {
        static const char *const keys[] = {
            "ecrRepositoryPrefix", "upstreamRegistryUrl",      "createdAt",
            "registryId",          "upstreamRegistry",         "credentialArn",
            "customRoleArn",       "upstreamRepositoryPrefix", NULL};
        echo(call, rule, keys);
    }
    json_decref(rule);
}

static void update_rule(struct ecr_call *call)
{
    const char *prefix, *cred, *role;
    if (!ecr_registry_id(call) ||
        !prefix_member(call, call->in, "ecrRepositoryPrefix", ECR_REQUIRED, &prefix) ||
        !credential_member(call, &cred) ||
        !ecr_string(call, call->in, "customRoleArn", ECR_OPTIONAL, 0, ROLE_ARN_MAX, &role)) {
        return;
    }
    struct meta *m = ecr_meta(call);
    if (m == NULL) {
        return;
    }
    json_t *rule = NULL;
    if (!load_rule(call, m, prefix, &rule) || (cred != NULL && !secret_exists(call, m, cred))) {
        json_decref(rule);
        return;
    }
    /* the stored body: the rule's members less what rule_json added */
    json_t *doc = json_deep_copy(rule);
    json_decref(rule);
    rule = NULL;
    if (doc == NULL) {
        ecr_server_error(call, BERTH_ENOMEM);
        return;
    }
    static const char *const derived[] = {"ecrRepositoryPrefix", "registryId", "createdAt",
                                          "updatedAt", NULL};
    for (const char *const *k = derived; *k != NULL; k++) {
        json_object_del(doc, *k);
    }
    if (cred != NULL) {
        json_object_set_new(doc, "credentialArn", json_string(cred));
    }
    if (role != NULL) {
        if (*role == '\0') {
            json_object_del(doc, "customRoleArn");
        } else {
            json_object_set_new(doc, "customRoleArn", json_string(role));
        }
    }
    char *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    enum berth_err rc =
        body != NULL ? meta_ptc_rule_update(m, prefix, body, time_now_ms()) : BERTH_ENOMEM;
    free(body);
    if (rc == BERTH_ENOTFOUND) {
        rule_not_found(call, prefix);
        return;
    }
    if (rc != BERTH_OK) {
        ecr_server_error(call, rc);
        return;
    }
    log_info("event=pull_through_rule_updated prefix=%s", prefix);
    if (load_rule(call, m, prefix, &rule)) {
        static const char *const keys[] = {
            "ecrRepositoryPrefix",      "registryId", "updatedAt", "credentialArn", "customRoleArn",
            "upstreamRepositoryPrefix", NULL};
        echo(call, rule, keys);
    }
    json_decref(rule);
}

static void delete_rule(struct ecr_call *call)
{
    const char *prefix;
    if (!prefix_member(call, call->in, "ecrRepositoryPrefix", ECR_REQUIRED, &prefix) ||
        !ecr_registry_id(call)) {
        return;
    }
    struct meta *m = ecr_meta(call);
    json_t *rule = NULL;
    if (m == NULL || !load_rule(call, m, prefix, &rule)) {
        return;
    }
    enum berth_err rc = meta_ptc_rule_delete(m, prefix);
    if (rc == BERTH_ENOTFOUND) {
        rule_not_found(call, prefix);
    } else if (rc != BERTH_OK) {
        ecr_server_error(call, rc);
    } else {
        log_info("event=pull_through_rule_deleted prefix=%s", prefix);
        static const char *const keys[] = {"ecrRepositoryPrefix",
                                           "upstreamRegistryUrl",
                                           "createdAt",
                                           "registryId",
                                           "credentialArn",
                                           "customRoleArn",
                                           "upstreamRepositoryPrefix",
                                           NULL};
        echo(call, rule, keys);
    }
    json_decref(rule);
}

static void validate_rule(struct ecr_call *call)
{
    const char *prefix;
    if (!prefix_member(call, call->in, "ecrRepositoryPrefix", ECR_REQUIRED, &prefix) ||
        !ecr_registry_id(call)) {
        return;
    }
    struct meta *m = ecr_meta(call);
    json_t *rule = NULL;
    if (m == NULL || !load_rule(call, m, prefix, &rule)) {
        return;
    }
    struct upstream_rule ur;
    memset(&ur, 0, sizeof(ur));
    str_copy(ur.prefix, sizeof(ur.prefix), prefix);
    const char *url = json_string_value(json_object_get(rule, "upstreamRegistryUrl"));
    const char *cred = json_string_value(json_object_get(rule, "credentialArn"));
    char err[512] = "";
    enum berth_err rc = BERTH_OK;
    if (url == NULL || !upstream_url_normalize(url, ur.url, sizeof(ur.url))) {
        snprintf(err, sizeof(err), "the upstream registry URL is not usable");
        rc = BERTH_EINVAL;
    }
    if (rc == BERTH_OK && cred != NULL &&
        !upstream_secret_name(cred, ur.secret, sizeof(ur.secret))) {
        snprintf(err, sizeof(err), "the credential ARN names no secret berth can hold");
        rc = BERTH_EINVAL;
    }
    struct upstream_client *client = NULL;
    if (rc == BERTH_OK) {
        rc = upstream_rule_client(m, &ur, &client, err, sizeof(err));
    }
    if (rc == BERTH_OK) {
        rc = upstream_ping(client, NULL, err, sizeof(err));
    }
    upstream_client_free(client);
    if (rc == BERTH_ENOMEM) {
        ecr_server_error(call, rc);
        json_decref(rule);
        return;
    }
    static const char *const keys[] = {"ecrRepositoryPrefix",
                                       "registryId",
                                       "upstreamRegistryUrl",
                                       "credentialArn",
                                       "customRoleArn",
                                       "upstreamRepositoryPrefix",
                                       NULL};
    echo(call, rule, keys);
    json_object_set_new(call->out, "isValid", json_boolean(rc == BERTH_OK));
    if (rc != BERTH_OK) {
        json_object_set_new(call->out, "failure", json_string(err));
    }
    json_decref(rule);
}

struct list_ctx {
    struct ecr_call *call;
    struct ecr_json_list rules;
    char last[META_PTC_PREFIX_MAX + 1];
};

static int list_row(void *arg, const struct meta_prefix_doc *r)
{
    struct list_ctx *c = arg;
    if (ecr_json_list_add(&c->rules, rule_json(c->call, r)) != 0) {
        return 1;
    }
    str_copy(c->last, sizeof(c->last), r->prefix);
    return 0;
}

static void describe_rules(struct ecr_call *call)
{
    json_t *prefixes;
    int64_t limit;
    char after[META_PTC_PREFIX_MAX + 1];
    if (!ecr_registry_id(call) ||
        !ecr_array(call, call->in, "ecrRepositoryPrefixes", ECR_OPTIONAL, 1, 100, &prefixes)) {
        return;
    }
    size_t i;
    json_t *v;
    json_array_foreach(prefixes, i, v)
    {
        const char *p = json_string_value(v);
        if (p == NULL) {
            ecr_fail(call, "SerializationException",
                     "Start of structure or map found where not expected.");
            return;
        }
        size_t len = strlen(p);
        if (len < 2 || len > META_PTC_PREFIX_MAX || !ecr_prefix_pattern_ok(p)) {
            ecr_invalid(call, "ecrRepositoryPrefixes",
                        "each must be 2 to 30 characters and satisfy regular expression "
                        "'" ECR_PREFIX_PATTERN "'");
            return;
        }
    }
    if (!ecr_pagination(call, 1000, &limit, after, sizeof(after))) {
        return;
    }
    struct meta *m = ecr_meta(call);
    if (m == NULL) {
        return;
    }
    struct list_ctx c = {.call = call, .rules = {json_array(), false}, .last = ""};
    if (c.rules.list == NULL) {
        ecr_server_error(call, BERTH_ENOMEM);
        return;
    }
    bool more = false;
    enum berth_err rc = BERTH_OK;
    if (prefixes != NULL) {
        /* the rules asked for, each of which must exist, in one page */
        json_array_foreach(prefixes, i, v)
        {
            struct one_ctx one = {call, NULL};
            rc = meta_ptc_rule_get(m, json_string_value(v), take_one, &one);
            if (rc == BERTH_OK && one.json == NULL) {
                rc = BERTH_ENOMEM;
            }
            if (rc != BERTH_OK) {
                if (rc == BERTH_ENOTFOUND) {
                    rule_not_found(call, json_string_value(v));
                }
                break;
            }
            json_array_append_new(c.rules.list, one.json);
        }
    } else {
        rc = meta_ptc_rule_list(m, after, limit, list_row, &c, &more);
        rc = ecr_json_list_rc(&c.rules, rc);
    }
    if (rc != BERTH_OK) {
        json_decref(c.rules.list);
        if (rc != BERTH_ENOTFOUND) {
            ecr_server_error(call, rc);
        }
        return;
    }
    json_object_set_new(call->out, "pullThroughCacheRules", c.rules.list);
    if (more) {
        json_object_set_new(call->out, "nextToken", ecr_next_token(c.last));
    }
}

const struct ecr_op ecr_pull_through_ops[] = {
    {"CreatePullThroughCacheRule", create_rule, ECR_SCOPE_REGISTRY},
    {"DescribePullThroughCacheRules", describe_rules, ECR_SCOPE_REGISTRY},
    {"UpdatePullThroughCacheRule", update_rule, ECR_SCOPE_REGISTRY},
    {"DeletePullThroughCacheRule", delete_rule, ECR_SCOPE_REGISTRY},
    {"ValidatePullThroughCacheRule", validate_rule, ECR_SCOPE_REGISTRY},
    {NULL, NULL, ECR_SCOPE_REGISTRY},
};
