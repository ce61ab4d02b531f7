/*
 * ECR repository creation templates: CreateRepositoryCreationTemplate,
 * DescribeRepositoryCreationTemplates, UpdateRepositoryCreationTemplate,
 * DeleteRepositoryCreationTemplate. Templates are validated here with
 * ECR's messages and stored as ECR's JSON (storage/meta); which template
 * applies and what it gives a repository is storage/registry/templates.c
 * (CREATE_ON_PUSH: a /v2 push to a missing repository). Pool threads; see
 * ecr_int.h.
 */
#include "ecr_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/str.h"
#include "common/timeutil.h"
#include "storage/lifecycle/lifecycle.h"
#include "storage/registry/templates.h"

/* Templates a registry may hold (berth's limit; LimitExceededException). */
#define TEMPLATES_MAX 50
#define DESCRIPTION_MAX 256
#define LIFECYCLE_MAX 30720
#define ROLE_ARN_MAX 2048
#define KMS_KEY_MAX 2048

static const char *const applied_for_values[] = {"REPLICATION", "PULL_THROUGH_CACHE",
                                                 "CREATE_ON_PUSH", NULL};
static const struct ecr_prefix_kind template_kind = {
    "TemplateAlreadyExistsException", "The repository creation template",
    "repository creation templates", TEMPLATES_MAX};

static const char *const enc_types[] = {"AES256", "KMS", "KMS_DSSE", NULL};

static bool is_alnum_lower(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* at *s, advancing it. */
static bool component(const char **s)
{
    const char *p = *s;
    if (!is_alnum_lower(*p)) {
        return false;
    }
    for (;;) {
        while (is_alnum_lower(*p)) {
            p++;
        }
        const char *sep = p;
        if (*p == '.') {
            p++;
        } else if (*p == '_') {
            p += p[1] == '_' ? 2 : 1;
        } else if (*p == '-') {
            while (*p == '-') {
                p++;
            }
        }
        if (p == sep) {
            break;
        }
        if (!is_alnum_lower(*p)) {
            return false;
        }
    }
    *s = p;
    return true;
}

bool ecr_prefix_pattern_ok(const char *s)
{
    if (strcmp(s, TEMPLATE_ROOT) == 0) {
        return true;
    }
    for (;;) {
        if (!component(&s)) {
            return false;
        }
        if (*s == '\0') {
            return true;
        }
        if (*s != '/') {
            return false;
        }
        s++;
        if (*s == '\0') {
            return true; /* one trailing '/' */
        }
    }
}

static bool prefix_value(struct ecr_call *call, json_t *v, const char *field)
{
    const char *s = json_string_value(v);
    if (s == NULL) {
        return ecr_fail(call, "SerializationException",
                        "Start of structure or map found where "
                        "not expected.");
    }
    size_t len = strlen(s);
    if (len < 1) {
        return ecr_invalid(call, field, "Member must have length greater than or equal to 1");
    }
    if (len > META_TEMPLATE_PREFIX_MAX) {
        return ecr_invalid(call, field, "Member must have length less than or equal to 256");
    }
    if (!ecr_prefix_pattern_ok(s)) {
        return ecr_invalid(call, field, "must satisfy regular expression '" ECR_PREFIX_PATTERN "'");
    }
    return true;
}

static bool prefix_member(struct ecr_call *call, const char **out)
{
    if (!ecr_string(call, call->in, "prefix", ECR_REQUIRED, 1, META_TEMPLATE_PREFIX_MAX, out)) {
        return false;
    }
    return prefix_value(call, json_object_get(call->in, "prefix"), "prefix");
}

static bool template_not_found(struct ecr_call *call, const char *prefix)
{
    return ecr_fail(call, "TemplateNotFoundException",
                    "The specified repository creation template with prefix '%s' does not exist "
                    "in the registry with id '%s'",
                    prefix, ecr_registry(call));
}

/* kmsKey: ^$|arn:aws[a-z0-9-]*:kms:[a-z0-9-]+:[0-9]{12}:key\/[a-z0-9-]+ */
static bool kms_key_ok(const char *s)
{
    if (*s == '\0') {
        return true;
    }
    if (!str_has_prefix(s, "arn:aws")) {
        return false;
    }
    s += strlen("arn:aws");
    while (is_alnum_lower(*s) || *s == '-') {
        s++;
    }
    if (!str_has_prefix(s, ":kms:")) {
        return false;
    }
    s += strlen(":kms:");
    const char *start = s;
    while (is_alnum_lower(*s) || *s == '-') {
        s++;
    }
    if (s == start || *s != ':') {
        return false;
    }
    s++;
    for (int i = 0; i < 12; i++, s++) {
        if (!(*s >= '0' && *s <= '9')) {
            return false;
        }
    }
    if (!str_has_prefix(s, ":key/")) {
        return false;
    }
    s += strlen(":key/");
    start = s;
    while (is_alnum_lower(*s) || *s == '-') {
        s++;
    }
    return s != start && *s == '\0';
}

/* Resource tags as CreateRepository checks them, but reported as
 * InvalidParameterException: the template operations have no
 * InvalidTagParameterException in ECR's model. */
static bool template_tags_ok(struct ecr_call *call, json_t *tags)
{
    if (ecr_validate_resource_tags(call, tags)) {
        return true;
    }
    if (strcmp(call->type, "InvalidTagParameterException") == 0 ||
        strcmp(call->type, "TooManyTagsException") == 0) {
        str_copy(call->type, sizeof(call->type), "InvalidParameterException");
    }
    return false;
}

/* The members a template may set, validated in ECR's order; each present
 * one is copied into doc. need_applied_for: Create requires appliedFor. */
static bool read_members(struct ecr_call *call, json_t *doc, bool need_applied_for,
                         const char *current_mutability)
{
    json_t *in = call->in;
    const char *description, *mutability, *repo_policy, *lifecycle, *role, *enc_type, *kms;
    json_t *enc, *tags, *filters, *applied;
    if (!ecr_string(call, in, "description", ECR_OPTIONAL, 0, DESCRIPTION_MAX, &description) ||
        !ecr_object(call, in, "encryptionConfiguration", ECR_OPTIONAL, &enc) ||
        (enc && !ecr_enum(call, enc, "encryptionType", ECR_REQUIRED, enc_types, &enc_type)) ||
        (enc && !ecr_string(call, enc, "kmsKey", ECR_OPTIONAL, 0, KMS_KEY_MAX, &kms)) ||
        !ecr_array(call, in, "resourceTags", ECR_OPTIONAL, 0, 1000, &tags) ||
        (tags && !template_tags_ok(call, tags)) ||
        !ecr_enum(call, in, "imageTagMutability", ECR_OPTIONAL, ecr_mutability_values,
                  &mutability) ||
        !ecr_array(call, in, "imageTagMutabilityExclusionFilters", ECR_OPTIONAL, 1, 5, &filters) ||
        !ecr_string(call, in, "repositoryPolicy", ECR_OPTIONAL, 0, AUTHZ_REPOSITORY_POLICY_MAX_LEN,
                    &repo_policy) ||
        !ecr_string(call, in, "lifecyclePolicy", ECR_OPTIONAL, 0, LIFECYCLE_MAX, &lifecycle) ||
        !ecr_array(call, in, "appliedFor", need_applied_for ? ECR_REQUIRED : ECR_OPTIONAL, 1, 3,
                   &applied) ||
        !ecr_string(call, in, "customRoleArn", ECR_OPTIONAL, 0, ROLE_ARN_MAX, &role)) {
        return false;
    }
    if (enc != NULL && kms != NULL && !kms_key_ok(kms)) {
        return ecr_invalid(call, "encryptionConfiguration.kmsKey",
                           "must satisfy regular expression '^$|arn:aws[a-z0-9-]*:kms:[a-z0-9-]+:"
                           "[0-9]{12}:key\\/[a-z0-9-]+'");
    }
    if (enc != NULL && kms != NULL && *kms != '\0' && strcmp(enc_type, "AES256") == 0) {
        return ecr_fail(call, "InvalidParameterException",
                        "Invalid parameter: kmsKey can only be specified when encryptionType is "
                        "KMS or KMS_DSSE");
    }
    /* Mutability and its filters are checked together, against the
     * template's current mutability when only filters are given. */
    const char *effective = mutability != NULL ? mutability : current_mutability;
    if ((mutability != NULL || filters != NULL) &&
        !ecr_validate_mutability(call, effective, filters)) {
        return false;
    }
    if (repo_policy != NULL && *repo_policy != '\0' &&
        !ecr_valid_policy(call, repo_policy, AUTHZ_REPOSITORY_POLICY)) {
        return false;
    }
    if (lifecycle != NULL && *lifecycle != '\0') {
        char msg[LIFECYCLE_MSG_CAP];
        enum berth_err rc =
            lifecycle_policy_parse(lifecycle, strlen(lifecycle), NULL, msg, sizeof(msg));
        if (rc == BERTH_EINVAL) {
            return ecr_fail(call, "InvalidParameterException", "%s", msg);
        }
        if (rc != BERTH_OK) {
            ecr_server_error(call, rc);
            return false;
        }
    }
    size_t i;
    json_t *v;
    json_array_foreach(applied, i, v)
    {
        const char *s = json_string_value(v);
        bool ok = false;
        for (const char *const *a = applied_for_values; s != NULL && *a != NULL; a++) {
            ok = ok || strcmp(*a, s) == 0;
        }
        if (!ok) {
            return ecr_invalid(call, "appliedFor",
                               "Member must satisfy enum value set: [REPLICATION, "
                               "PULL_THROUGH_CACHE, CREATE_ON_PUSH]");
        }
    }
    /* Copy what was given; a new mutability without filters drops the old
     * filters. */
    const char *keys[] = {"description",      "encryptionConfiguration", "resourceTags",
                          "repositoryPolicy", "lifecyclePolicy",         "appliedFor",
                          "customRoleArn"};
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        json_t *val = json_object_get(in, keys[k]);
        if (val != NULL && !json_is_null(val) && json_object_set(doc, keys[k], val) != 0) {
            ecr_server_error(call, BERTH_ENOMEM);
            return false;
        }
    }
    if (applied != NULL) {
        /* each use once, in ECR's order */
        json_t *uses = json_array();
        for (const char *const *a = applied_for_values; uses != NULL && *a != NULL; a++) {
            json_array_foreach(applied, i, v)
            {
                if (strcmp(json_string_value(v), *a) == 0) {
                    json_array_append_new(uses, json_string(*a));
                    break;
                }
            }
        }
        if (uses == NULL || json_object_set_new(doc, "appliedFor", uses) != 0) {
            ecr_server_error(call, BERTH_ENOMEM);
            return false;
        }
    }
    if (mutability != NULL) {
        json_object_set_new(doc, "imageTagMutability", json_string(mutability));
        json_object_del(doc, "imageTagMutabilityExclusionFilters");
    }
    if (filters != NULL) {
        json_object_set(doc, "imageTagMutabilityExclusionFilters", filters);
    }
    return true;
}

/* The RepositoryCreationTemplate structure for a stored template. */
static json_t *template_json(const struct meta_prefix_doc *t)
{
    return ecr_prefix_doc_json(t, "prefix", NULL);
}

struct one_ctx {
    json_t *json; /* the template's structure */
    char *body;   /* its stored body */
};

static int take_one(void *arg, const struct meta_prefix_doc *t)
{
    struct one_ctx *c = arg;
    c->json = template_json(t);
    c->body = strdup(t->body);
    return 0;
}

static void one_ctx_fini(struct one_ctx *c)
{
    json_decref(c->json);
    free(c->body);
}

/* Answer with registryId and the template of prefix as stored now. */
static void answer(struct ecr_call *call, struct meta *m, const char *prefix)
{
    struct one_ctx c = {NULL, NULL};
    enum berth_err rc = meta_template_get(m, prefix, take_one, &c);
    if (rc == BERTH_OK && (c.json == NULL || c.body == NULL)) {
        rc = BERTH_ENOMEM;
    }
    if (rc == BERTH_OK) {
        json_object_set_new(call->out, "registryId", json_string(ecr_registry(call)));
        json_object_set(call->out, "repositoryCreationTemplate", c.json);
    } else if (rc == BERTH_ENOTFOUND) {
        template_not_found(call, prefix);
    } else {
        ecr_server_error(call, rc);
    }
    one_ctx_fini(&c);
}

static void create_template(struct ecr_call *call)
{
    const char *prefix;
    if (!prefix_member(call, &prefix)) {
        return;
    }
    json_t *doc = json_pack("{s:s, s:{s:s}}", "imageTagMutability", "MUTABLE",
                            "encryptionConfiguration", "encryptionType", "AES256");
    if (doc == NULL) {
        ecr_server_error(call, BERTH_ENOMEM);
        return;
    }
    if (!read_members(call, doc, true, "MUTABLE")) {
        json_decref(doc);
        return;
    }
    char *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    struct meta *m = body != NULL ? ecr_meta(call) : NULL;
    if (body == NULL) {
        ecr_server_error(call, BERTH_ENOMEM);
        return;
    }
    if (m == NULL) {
        free(body);
        return;
    }
    enum berth_err rc = meta_template_create(m, prefix, body, time_now_ms(), TEMPLATES_MAX);
    free(body);
    if (!ecr_prefix_doc_created(call, rc, prefix, &template_kind)) {
        return;
    }
    log_info("event=creation_template_created prefix=%s", prefix);
    answer(call, m, prefix);
}

static void update_template(struct ecr_call *call)
{
    const char *prefix;
    if (!prefix_member(call, &prefix)) {
        return;
    }
    struct meta *m = ecr_meta(call);
    if (m == NULL) {
        return;
    }
    /* Read, merge and write in one transaction. */
    enum berth_err rc = meta_begin(m);
    if (rc != BERTH_OK) {
        ecr_server_error(call, rc);
        return;
    }
    struct one_ctx c = {NULL, NULL};
    rc = meta_template_get(m, prefix, take_one, &c);
    if (rc == BERTH_OK && c.body == NULL) {
        rc = BERTH_ENOMEM;
    }
    if (rc != BERTH_OK) {
        meta_rollback(m);
        one_ctx_fini(&c);
        if (rc == BERTH_ENOTFOUND) {
            /* as ECR: the members are validated before the template is
             * looked up */
            json_t *scratch = json_object();
            if (scratch != NULL && read_members(call, scratch, false, "MUTABLE")) {
                template_not_found(call, prefix);
            }
            json_decref(scratch);
        } else {
            ecr_server_error(call, rc);
        }
        return;
    }
    json_t *doc = json_loads(c.body, 0, NULL);
    one_ctx_fini(&c);
    const char *current = json_string_value(json_object_get(doc, "imageTagMutability"));
    char current_copy[64];
    str_copy(current_copy, sizeof(current_copy), current != NULL ? current : "MUTABLE");
    if (doc == NULL || !read_members(call, doc, false, current_copy)) {
        if (doc == NULL) {
            ecr_server_error(call, BERTH_ENOMEM);
        }
        json_decref(doc);
        meta_rollback(m);
        return;
    }
    char *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    rc = body != NULL ? meta_template_update(m, prefix, body, time_now_ms()) : BERTH_ENOMEM;
    free(body);
    if (rc == BERTH_OK) {
        rc = meta_commit(m);
    }
    meta_rollback(m);
    if (rc != BERTH_OK) {
        ecr_server_error(call, rc);
        return;
    }
    log_info("event=creation_template_updated prefix=%s", prefix);
    answer(call, m, prefix);
}

static void delete_template(struct ecr_call *call)
{
    const char *prefix;
    if (!prefix_member(call, &prefix)) {
        return;
    }
    struct meta *m = ecr_meta(call);
    if (m == NULL) {
        return;
    }
    enum berth_err rc = meta_begin(m);
    struct one_ctx c = {NULL, NULL};
    if (rc == BERTH_OK) {
        rc = meta_template_get(m, prefix, take_one, &c);
    }
    if (rc == BERTH_OK && c.json == NULL) {
        rc = BERTH_ENOMEM;
    }
    if (rc == BERTH_OK) {
        rc = meta_template_delete(m, prefix);
    }
    if (rc == BERTH_OK) {
        rc = meta_commit(m);
    }
    meta_rollback(m);
    if (rc == BERTH_ENOTFOUND) {
        template_not_found(call, prefix);
    } else if (rc != BERTH_OK) {
        ecr_server_error(call, rc);
    } else {
        log_info("event=creation_template_deleted prefix=%s", prefix);
        json_object_set_new(call->out, "registryId", json_string(ecr_registry(call)));
        json_object_set(call->out, "repositoryCreationTemplate", c.json);
    }
    one_ctx_fini(&c);
}

struct list_ctx {
    struct ecr_json_list templates;
    json_t *only; /* prefixes asked for, or NULL */
    char last[META_TEMPLATE_PREFIX_MAX + 1];
};

static int list_row(void *arg, const struct meta_prefix_doc *t)
{
    struct list_ctx *c = arg;
    if (c->only != NULL) {
        bool wanted = false;
        size_t i;
        json_t *v;
        json_array_foreach(c->only, i, v)
        {
            wanted = wanted || strcmp(json_string_value(v), t->prefix) == 0;
        }
        if (!wanted) {
            return 0;
        }
    }
    if (ecr_json_list_add(&c->templates, template_json(t)) != 0) {
        return 1;
    }
    str_copy(c->last, sizeof(c->last), t->prefix);
    return 0;
}

static void describe_templates(struct ecr_call *call)
{
    json_t *prefixes;
    int64_t limit;
    char after[META_TEMPLATE_PREFIX_MAX + 1];
    if (!ecr_array(call, call->in, "prefixes", ECR_OPTIONAL, 0, 100, &prefixes)) {
        return;
    }
    size_t i;
    json_t *v;
    json_array_foreach(prefixes, i, v)
    {
        if (!prefix_value(call, v, "prefixes")) {
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
    struct list_ctx c = {.templates = {json_array(), false},
                         .only =
                             prefixes != NULL && json_array_size(prefixes) > 0 ? prefixes : NULL,
                         .last = ""};
    if (c.templates.list == NULL) {
        ecr_server_error(call, BERTH_ENOMEM);
        return;
    }
    bool more = false;
    /* With prefixes, every one asked for fits one page (at most 100). */
    enum berth_err rc =
        meta_template_list(m, after, c.only != NULL ? -1 : limit, list_row, &c, &more);
    rc = ecr_json_list_rc(&c.templates, rc);
    if (rc != BERTH_OK) {
        json_decref(c.templates.list);
        ecr_server_error(call, rc);
        return;
    }
    json_object_set_new(call->out, "registryId", json_string(ecr_registry(call)));
    json_object_set_new(call->out, "repositoryCreationTemplates", c.templates.list);
    if (more) {
        json_object_set_new(call->out, "nextToken", ecr_next_token(c.last));
    }
}

const struct ecr_op ecr_template_ops[] = {
    {"CreateRepositoryCreationTemplate", create_template, ECR_SCOPE_REGISTRY},
    {"DescribeRepositoryCreationTemplates", describe_templates, ECR_SCOPE_REGISTRY},
    {"UpdateRepositoryCreationTemplate", update_template, ECR_SCOPE_REGISTRY},
    {"DeleteRepositoryCreationTemplate", delete_template, ECR_SCOPE_REGISTRY},
    {NULL, NULL, ECR_SCOPE_REGISTRY},
};
