/*
 * Authorization: policy parsing and validation, the allow/deny decision,
 * the ECR action catalogue and permission specs (see server/auth/authz.h).
 * A parsed policy keeps its jansson document alive and points into its
 * strings; nothing touches the document after parsing, so decisions are
 * thread-safe.
 */
#include "server/auth/authz.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/str.h"

/* ---- ECR actions ---- */

static bool ieq(const char *a, const char *b);

static const char *const actions[] = {
    /* The 58 operations of the ECR API model (botocore 1.43.11). */
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchDeleteImage",
    "ecr:BatchGetImage",
    "ecr:BatchGetRepositoryScanningConfiguration",
    "ecr:CompleteLayerUpload",
    "ecr:CreatePullThroughCacheRule",
    "ecr:CreateRepository",
    "ecr:CreateRepositoryCreationTemplate",
    "ecr:DeleteLifecyclePolicy",
    "ecr:DeletePullThroughCacheRule",
    "ecr:DeleteRegistryPolicy",
    "ecr:DeleteRepository",
    "ecr:DeleteRepositoryCreationTemplate",
    "ecr:DeleteRepositoryPolicy",
    "ecr:DeleteSigningConfiguration",
    "ecr:DeregisterPullTimeUpdateExclusion",
    "ecr:DescribeImageReplicationStatus",
    "ecr:DescribeImageScanFindings",
    "ecr:DescribeImageSigningStatus",
    "ecr:DescribeImages",
    "ecr:DescribePullThroughCacheRules",
    "ecr:DescribeRegistry",
    "ecr:DescribeRepositories",
    "ecr:DescribeRepositoryCreationTemplates",
    "ecr:GetAccountSetting",
    "ecr:GetAuthorizationToken",
    "ecr:GetDownloadUrlForLayer",
    "ecr:GetLifecyclePolicy",
    "ecr:GetLifecyclePolicyPreview",
    "ecr:GetRegistryPolicy",
    "ecr:GetRegistryScanningConfiguration",
    "ecr:GetRepositoryPolicy",
    "ecr:GetSigningConfiguration",
    "ecr:InitiateLayerUpload",
    "ecr:ListImageReferrers",
    "ecr:ListImages",
    "ecr:ListPullTimeUpdateExclusions",
    "ecr:ListTagsForResource",
    "ecr:PutAccountSetting",
    "ecr:PutImage",
    "ecr:PutImageScanningConfiguration",
    "ecr:PutImageTagMutability",
    "ecr:PutLifecyclePolicy",
    "ecr:PutRegistryPolicy",
    "ecr:PutRegistryScanningConfiguration",
    "ecr:PutReplicationConfiguration",
    "ecr:PutSigningConfiguration",
    "ecr:RegisterPullTimeUpdateExclusion",
    "ecr:SetRepositoryPolicy",
    "ecr:StartImageScan",
    "ecr:StartLifecyclePolicyPreview",
    "ecr:TagResource",
    "ecr:UntagResource",
    "ecr:UpdateImageStorageClass",
    "ecr:UpdatePullThroughCacheRule",
    "ecr:UpdateRepositoryCreationTemplate",
    "ecr:UploadLayerPart",
    "ecr:ValidatePullThroughCacheRule",
    /* Permission-only actions (no API operation), seen in registry and
     * repository policies for replication and pull-through cache. */
    "ecr:BatchImportUpstreamImage",
    "ecr:ReplicateImage",
};

#define ACTION_COUNT (sizeof(actions) / sizeof(actions[0]))

/* What a registry policy can grant (REGISTRY_POLICY_SCOPE V2): replication,
 * pull-through cache imports, repository creation, and every action on a
 * repository, registry-wide. */
static const char *const registry_actions[] = {
    "ecr:ReplicateImage",
    "ecr:BatchImportUpstreamImage",
    "ecr:CreateRepository",
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchDeleteImage",
    "ecr:BatchGetImage",
    "ecr:BatchGetRepositoryScanningConfiguration",
    "ecr:CompleteLayerUpload",
    "ecr:DeleteLifecyclePolicy",
    "ecr:DeleteRepository",
    "ecr:DeleteRepositoryPolicy",
    "ecr:DescribeImageReplicationStatus",
    "ecr:DescribeImageScanFindings",
    "ecr:DescribeImageSigningStatus",
    "ecr:DescribeImages",
    "ecr:DescribeRepositories",
    "ecr:GetDownloadUrlForLayer",
    "ecr:GetLifecyclePolicy",
    "ecr:GetLifecyclePolicyPreview",
    "ecr:GetRepositoryPolicy",
    "ecr:InitiateLayerUpload",
    "ecr:ListImageReferrers",
    "ecr:ListImages",
    "ecr:ListTagsForResource",
    "ecr:PutImage",
    "ecr:PutImageScanningConfiguration",
    "ecr:PutImageTagMutability",
    "ecr:PutLifecyclePolicy",
    "ecr:SetRepositoryPolicy",
    "ecr:StartImageScan",
    "ecr:StartLifecyclePolicyPreview",
    "ecr:TagResource",
    "ecr:UntagResource",
    "ecr:UpdateImageStorageClass",
    "ecr:UploadLayerPart",
};

#define REGISTRY_ACTION_COUNT (sizeof(registry_actions) / sizeof(registry_actions[0]))

bool authz_registry_grantable(const char *action)
{
    for (size_t i = 0; i < REGISTRY_ACTION_COUNT; i++) {
        if (ieq(registry_actions[i], action)) {
            return true;
        }
    }
    return false;
}

/* pull and push include ecr:BatchImportUpstreamImage, so that a key that
 * may pull a pull-through cache's repository fills it; keys stored before
 * it was added gain it by migration 26 (storage/meta/meta.c). */
static const char *const set_pull[] = {
    "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage",      "ecr:GetDownloadUrlForLayer",
    "ecr:BatchImportUpstreamImage",    "ecr:DescribeImages",     "ecr:DescribeImageScanFindings",
    "ecr:DescribeRepositories",        "ecr:GetLifecyclePolicy", "ecr:GetLifecyclePolicyPreview",
    "ecr:GetRepositoryPolicy",         "ecr:ListImages",         "ecr:ListTagsForResource",
};

static const char *const set_push[] = {
    "ecr:BatchCheckLayerAvailability",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchImportUpstreamImage",
    "ecr:DescribeImages",
    "ecr:DescribeImageScanFindings",
    "ecr:DescribeRepositories",
    "ecr:GetLifecyclePolicy",
    "ecr:GetLifecyclePolicyPreview",
    "ecr:GetRepositoryPolicy",
    "ecr:ListImages",
    "ecr:ListTagsForResource",
    "ecr:CompleteLayerUpload",
    "ecr:InitiateLayerUpload",
    "ecr:PutImage",
    "ecr:UploadLayerPart",
};

static const char *const set_delete[] = {"ecr:BatchDeleteImage"};
static const char *const set_admin[] = {"ecr:*"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

size_t authz_action_count(void)
{
    return ACTION_COUNT;
}

const char *authz_action_name(size_t i)
{
    return i < ACTION_COUNT ? actions[i] : NULL;
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool ieq(const char *a, const char *b)
{
    while (*a && *b && lower(*a) == lower(*b)) {
        a++;
        b++;
    }
    return *a == '\0' && *b == '\0';
}

const char *authz_action_lookup(const char *action)
{
    if (action == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < ACTION_COUNT; i++) {
        if (ieq(actions[i], action)) {
            return actions[i];
        }
    }
    return NULL;
}

const char *const *authz_action_set(enum authz_action_set set, size_t *count)
{
    switch (set) {
    case AUTHZ_SET_PULL:
        *count = COUNT(set_pull);
        return set_pull;
    case AUTHZ_SET_PUSH:
        *count = COUNT(set_push);
        return set_push;
    case AUTHZ_SET_DELETE:
        *count = COUNT(set_delete);
        return set_delete;
    case AUTHZ_SET_ADMIN:
        break;
    }
    *count = COUNT(set_admin);
    return set_admin;
}

/* ---- matching ---- */

/* Policy patterns are globs with '*' (any run, also across '/') and '?'
 * (one character); actions also match in either case, as IAM's do. */
#define RESOURCE_GLOB STR_GLOB_QUESTION
#define ACTION_GLOB (STR_GLOB_QUESTION | STR_GLOB_ICASE)

static bool has_wildcard(const char *s)
{
    return strchr(s, '*') != NULL || strchr(s, '?') != NULL;
}

/* ---- parsed policies ---- */

struct stmt {
    bool is_deny;
    bool is_not_action;
    bool has_resource; /* Resource or NotResource given */
    bool is_not_resource;
    bool any_principal; /* "*" or {"AWS": "*"} */
    const char **actions;
    size_t action_count;
    const char **resources;
    size_t resource_count;
    const char **principals; /* AWS ARNs and account ids, not "*" */
    size_t principal_count;
};

struct authz_policy {
    enum authz_policy_kind kind;
    json_t *doc; /* owns every string the statements point to */
    struct stmt *stmts;
    size_t count;
};

void authz_policy_free(struct authz_policy *p)
{
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; i < p->count; i++) {
        free(p->stmts[i].actions);
        free(p->stmts[i].resources);
        free(p->stmts[i].principals);
    }
    free(p->stmts);
    json_decref(p->doc);
    free(p);
}

static enum berth_err fail(enum berth_err rc, char *detail, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum berth_err fail(enum berth_err rc, char *detail, size_t cap, const char *fmt, ...)
{
    if (detail != NULL && cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, cap, fmt, ap);
        va_end(ap);
    }
    return rc;
}

struct parse_ctx {
    enum authz_policy_kind kind;
    size_t index; /* 1-based statement number, for messages */
    char *detail;
    size_t cap;
};

#define FAIL(ctx, rc, ...) fail((rc), (ctx)->detail, (ctx)->cap, __VA_ARGS__)

static bool printable(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s > 0x7e) {
            return false;
        }
    }
    return true;
}

/* Input echoed into a detail message: at most 64 printable ASCII
 * characters ('?' for anything else), so the message is always valid
 * UTF-8 and short. */
struct echo {
    char s[65];
};

static struct echo echo(const char *in)
{
    struct echo e;
    size_t i;
    for (i = 0; in[i] != '\0' && i < sizeof(e.s) - 1; i++) {
        unsigned char c = (unsigned char)in[i];
        e.s[i] = (c >= 0x20 && c <= 0x7e) ? (char)c : '?';
    }
    e.s[i] = '\0';
    return e;
}

static bool is_account_id(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        if (s[n] < '0' || s[n] > '9') {
            return false;
        }
    }
    return n == 12;
}

/* Field i (0-based) of a ':'-separated ARN, copied into out; false when
 * the ARN has fewer fields or the field does not fit. */
static bool arn_field(const char *arn, size_t i, char *out, size_t cap)
{
    const char *p = arn;
    for (size_t k = 0; k < i; k++) {
        p = strchr(p, ':');
        if (p == NULL) {
            return false;
        }
        p++;
    }
    const char *end = strchr(p, ':');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n >= cap) {
        return false;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

/* A registry policy's action pattern must name at least one action a
 * registry policy can grant. */
static bool registry_pattern_ok(const char *pattern)
{
    for (size_t i = 0; i < REGISTRY_ACTION_COUNT; i++) {
        if (str_glob_match_flags(pattern, registry_actions[i], ACTION_GLOB)) {
            return true;
        }
    }
    return false;
}

static bool valid_action(const char *a, struct parse_ctx *ctx, enum berth_err *rc)
{
    if (strcmp(a, "*") == 0) {
        return true;
    }
    const char *colon = strchr(a, ':');
    if (colon == NULL || colon == a) {
        *rc = FAIL(ctx, BERTH_EINVAL, "statement %zu: invalid action '%s'", ctx->index, echo(a).s);
        return false;
    }
    if ((size_t)(colon - a) != 3 || lower(a[0]) != 'e' || lower(a[1]) != 'c' ||
        lower(a[2]) != 'r') {
        *rc = FAIL(ctx, BERTH_EINVAL, "statement %zu: action '%s' is not an ECR action", ctx->index,
                   echo(a).s);
        return false;
    }
    const char *name = colon + 1;
    if (*name == '\0') {
        *rc = FAIL(ctx, BERTH_EINVAL, "statement %zu: invalid action '%s'", ctx->index, echo(a).s);
        return false;
    }
    for (const char *p = name; *p; p++) {
        bool ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                  (*p >= '0' && *p <= '9') || *p == '*' || *p == '?';
        if (!ok) {
            *rc = FAIL(ctx, BERTH_EINVAL, "statement %zu: invalid action '%s'", ctx->index,
                       echo(a).s);
            return false;
        }
    }
    if (!has_wildcard(name) && authz_action_lookup(a) == NULL) {
        *rc = FAIL(ctx, BERTH_EINVAL, "statement %zu: unknown action '%s'", ctx->index, echo(a).s);
        return false;
    }
    if (ctx->kind == AUTHZ_REGISTRY_POLICY && !registry_pattern_ok(a)) {
        *rc = FAIL(ctx, BERTH_EINVAL,
                   "statement %zu: action '%s' cannot be granted by a registry policy", ctx->index,
                   echo(a).s);
        return false;
    }
    return true;
}

/* "*", an ARN pattern, or a repository name pattern. */
static bool valid_resource(const char *r)
{
    if (str_has_prefix(r, "arn:")) {
        return printable(r);
    }
    for (const char *p = r; *p; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' ||
                  *p == '-' || *p == '/' || *p == '*' || *p == '?';
        if (!ok) {
            return false;
        }
    }
    return *r != '\0';
}

/* "*", a 12-digit account id, or arn:<partition>:iam|sts::<account>:<name>. */
static bool valid_aws_principal(const char *p)
{
    if (strcmp(p, "*") == 0 || is_account_id(p)) {
        return true;
    }
    char field[AUTHZ_PATTERN_MAX + 1];
    if (!str_has_prefix(p, "arn:") || has_wildcard(p) || !printable(p)) {
        return false;
    }
    if (!arn_field(p, 2, field, sizeof(field)) ||
        (strcmp(field, "iam") != 0 && strcmp(field, "sts") != 0)) {
        return false;
    }
    if (!arn_field(p, 3, field, sizeof(field)) || field[0] != '\0') {
        return false;
    }
    if (!arn_field(p, 4, field, sizeof(field)) || !is_account_id(field)) {
        return false;
    }
    return arn_field(p, 5, field, sizeof(field)) && field[0] != '\0';
}

/* A string or non-empty list of strings into a new array of borrowed
 * pointers. */
static enum berth_err string_list(json_t *v, const char *what, struct parse_ctx *ctx,
                                  const char ***out, size_t *count)
{
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    if (!json_is_string(v) && !json_is_array(v)) {
        return FAIL(ctx, BERTH_EINVAL, "statement %zu: %s must be a string or a list of strings",
                    ctx->index, what);
    }
    if (n == 0) {
        return FAIL(ctx, BERTH_EINVAL, "statement %zu: %s is an empty list", ctx->index, what);
    }
    if (n > AUTHZ_LIST_MAX) {
        return FAIL(ctx, BERTH_ETOOBIG, "statement %zu: %s has more than %d entries", ctx->index,
                    what, AUTHZ_LIST_MAX);
    }
    const char **list = calloc(n, sizeof(*list));
    if (list == NULL) {
        return BERTH_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
        if (!json_is_string(e) || json_string_length(e) == 0) {
            free(list);
            return FAIL(ctx, BERTH_EINVAL,
                        "statement %zu: %s must be a string or a list of non-empty strings",
                        ctx->index, what);
        }
        if (json_string_length(e) > AUTHZ_PATTERN_MAX) {
            free(list);
            return FAIL(ctx, BERTH_ETOOBIG, "statement %zu: an entry of %s is longer than %d",
                        ctx->index, what, AUTHZ_PATTERN_MAX);
        }
        list[i] = json_string_value(e);
    }
    *out = list;
    *count = n;
    return BERTH_OK;
}

static enum berth_err parse_principal(json_t *v, struct stmt *st, struct parse_ctx *ctx)
{
    if (json_is_string(v)) {
        if (strcmp(json_string_value(v), "*") != 0) {
            return FAIL(ctx, BERTH_EINVAL,
                        "statement %zu: Principal must be \"*\" or an object such as "
                        "{\"AWS\": \"<arn>\"}",
                        ctx->index);
        }
        st->any_principal = true;
        return BERTH_OK;
    }
    if (!json_is_object(v) || json_object_size(v) == 0) {
        return FAIL(ctx, BERTH_EINVAL,
                    "statement %zu: Principal must be \"*\" or an object such as "
                    "{\"AWS\": \"<arn>\"}",
                    ctx->index);
    }
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val)
    {
        const char **list = NULL;
        size_t n = 0;
        bool is_aws = strcmp(key, "AWS") == 0;
        if (!is_aws && strcmp(key, "Service") != 0 && strcmp(key, "Federated") != 0 &&
            strcmp(key, "CanonicalUser") != 0) {
            return FAIL(ctx, BERTH_EINVAL, "statement %zu: unknown principal type '%s'", ctx->index,
                        echo(key).s);
        }
        enum berth_err rc = string_list(val, "Principal", ctx, &list, &n);
        if (rc != BERTH_OK) {
            return rc;
        }
        if (!is_aws) {
            /* Service, Federated and CanonicalUser principals are valid but
             * never match a berth caller. */
            free(list);
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            if (!valid_aws_principal(list[i])) {
                rc = FAIL(ctx, BERTH_EINVAL, "statement %zu: invalid principal '%s'", ctx->index,
                          echo(list[i]).s);
                free(list);
                return rc;
            }
        }
        size_t kept = 0;
        for (size_t i = 0; i < n; i++) {
            if (strcmp(list[i], "*") == 0) {
                st->any_principal = true;
            } else {
                list[kept++] = list[i];
            }
        }
        if (st->principals == NULL) {
            st->principals = list;
            st->principal_count = kept;
        } else {
            /* "AWS" appears once per object, so only one list is kept. */
            free(list);
        }
    }
    return BERTH_OK;
}

static enum berth_err parse_statement(json_t *s, struct stmt *st, struct parse_ctx *ctx)
{
    if (!json_is_object(s)) {
        return FAIL(ctx, BERTH_EINVAL, "statement %zu: must be an object", ctx->index);
    }
    const char *key;
    json_t *val;
    json_object_foreach(s, key, val)
    {
        if (strcmp(key, "Condition") == 0 || strcmp(key, "NotPrincipal") == 0) {
            return FAIL(ctx, BERTH_EINVAL, "statement %zu: %s is not supported by berth",
                        ctx->index, key);
        }
        if (strcmp(key, "Sid") != 0 && strcmp(key, "Effect") != 0 && strcmp(key, "Action") != 0 &&
            strcmp(key, "NotAction") != 0 && strcmp(key, "Resource") != 0 &&
            strcmp(key, "NotResource") != 0 && strcmp(key, "Principal") != 0) {
            return FAIL(ctx, BERTH_EINVAL, "statement %zu: unknown element '%s'", ctx->index,
                        echo(key).s);
        }
    }
    json_t *sid = json_object_get(s, "Sid");
    if (sid != NULL && !json_is_string(sid)) {
        return FAIL(ctx, BERTH_EINVAL, "statement %zu: Sid must be a string", ctx->index);
    }
    json_t *effect = json_object_get(s, "Effect");
    const char *e = json_is_string(effect) ? json_string_value(effect) : "";
    if (strcmp(e, "Allow") != 0 && strcmp(e, "Deny") != 0) {
        return FAIL(ctx, BERTH_EINVAL, "statement %zu: Effect must be \"Allow\" or \"Deny\"",
                    ctx->index);
    }
    st->is_deny = strcmp(e, "Deny") == 0;

    json_t *action = json_object_get(s, "Action");
    json_t *not_action = json_object_get(s, "NotAction");
    if ((action == NULL) == (not_action == NULL)) {
        return FAIL(ctx, BERTH_EINVAL, "statement %zu: needs exactly one of Action and NotAction",
                    ctx->index);
    }
    st->is_not_action = not_action != NULL;
    enum berth_err rc = string_list(action ? action : not_action, action ? "Action" : "NotAction",
                                    ctx, &st->actions, &st->action_count);
    if (rc != BERTH_OK) {
        return rc;
    }
    for (size_t i = 0; i < st->action_count; i++) {
        if (!valid_action(st->actions[i], ctx, &rc)) {
            return rc;
        }
    }

    json_t *resource = json_object_get(s, "Resource");
    json_t *not_resource = json_object_get(s, "NotResource");
    if (resource != NULL && not_resource != NULL) {
        return FAIL(ctx, BERTH_EINVAL, "statement %zu: has both Resource and NotResource",
                    ctx->index);
    }
    if (resource != NULL || not_resource != NULL) {
        st->has_resource = true;
        st->is_not_resource = not_resource != NULL;
        rc = string_list(resource ? resource : not_resource, resource ? "Resource" : "NotResource",
                         ctx, &st->resources, &st->resource_count);
        if (rc != BERTH_OK) {
            return rc;
        }
        for (size_t i = 0; i < st->resource_count; i++) {
            if (!valid_resource(st->resources[i])) {
                return FAIL(ctx, BERTH_EINVAL, "statement %zu: invalid resource '%s'", ctx->index,
                            echo(st->resources[i]).s);
            }
        }
    } else if (ctx->kind == AUTHZ_IDENTITY_POLICY) {
        return FAIL(ctx, BERTH_EINVAL,
                    "statement %zu: an identity policy statement needs Resource or NotResource",
                    ctx->index);
    } else if (ctx->kind == AUTHZ_REGISTRY_POLICY) {
        return FAIL(ctx, BERTH_EINVAL,
                    "statement %zu: a registry policy statement needs Resource or NotResource",
                    ctx->index);
    }

    json_t *principal = json_object_get(s, "Principal");
    if (ctx->kind == AUTHZ_IDENTITY_POLICY) {
        if (principal != NULL) {
            return FAIL(ctx, BERTH_EINVAL,
                        "statement %zu: Principal is not allowed in an identity policy",
                        ctx->index);
        }
        return BERTH_OK;
    }
    if (principal == NULL) {
        return FAIL(ctx, BERTH_EINVAL, "statement %zu: a %s policy statement needs a Principal",
                    ctx->index, ctx->kind == AUTHZ_REGISTRY_POLICY ? "registry" : "repository");
    }
    return parse_principal(principal, st, ctx);
}

enum berth_err authz_policy_parse(const char *text, size_t len, enum authz_policy_kind kind,
                                  struct authz_policy **out, char *detail, size_t detail_cap)
{
    struct parse_ctx ctx = {kind, 0, detail, detail_cap};
    size_t max = kind == AUTHZ_REPOSITORY_POLICY ? AUTHZ_REPOSITORY_POLICY_MAX_LEN
                 : kind == AUTHZ_REGISTRY_POLICY ? AUTHZ_REGISTRY_POLICY_MAX_LEN
                                                 : AUTHZ_IDENTITY_POLICY_MAX_LEN;
    if (text == NULL) {
        return FAIL(&ctx, BERTH_EINVAL, "no policy text");
    }
    if (len > max) {
        return FAIL(&ctx, BERTH_ETOOBIG, "the policy is longer than %zu bytes", max);
    }
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        return FAIL(&ctx, BERTH_EINVAL, "not valid JSON: %s (line %d, column %d)",
                    echo(jerr.text).s, jerr.line, jerr.column);
    }
    enum berth_err rc = BERTH_OK;
    struct authz_policy *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        json_decref(doc);
        return BERTH_ENOMEM;
    }
    p->kind = kind;
    p->doc = doc;
    if (!json_is_object(doc)) {
        rc = FAIL(&ctx, BERTH_EINVAL, "the policy must be a JSON object");
        goto out;
    }
    const char *key;
    json_t *val;
    json_object_foreach(doc, key, val)
    {
        if (strcmp(key, "Version") != 0 && strcmp(key, "Id") != 0 &&
            strcmp(key, "Statement") != 0) {
            rc = FAIL(&ctx, BERTH_EINVAL, "unknown top-level element '%s'", echo(key).s);
            goto out;
        }
    }
    json_t *version = json_object_get(doc, "Version");
    if (version != NULL &&
        (!json_is_string(version) || (strcmp(json_string_value(version), "2012-10-17") != 0 &&
                                      strcmp(json_string_value(version), "2008-10-17") != 0))) {
        rc = FAIL(&ctx, BERTH_EINVAL, "Version must be \"2012-10-17\" or \"2008-10-17\"");
        goto out;
    }
    json_t *id = json_object_get(doc, "Id");
    if (id != NULL && !json_is_string(id)) {
        rc = FAIL(&ctx, BERTH_EINVAL, "Id must be a string");
        goto out;
    }
    json_t *statements = json_object_get(doc, "Statement");
    if (statements == NULL || (!json_is_object(statements) && !json_is_array(statements)) ||
        (json_is_array(statements) && json_array_size(statements) == 0)) {
        rc = FAIL(&ctx, BERTH_EINVAL,
                  "Statement must be a statement object or a non-empty list of them");
        goto out;
    }
    size_t n = json_is_array(statements) ? json_array_size(statements) : 1;
    if (n > AUTHZ_STATEMENTS_MAX) {
        rc = FAIL(&ctx, BERTH_ETOOBIG, "more than %d statements", AUTHZ_STATEMENTS_MAX);
        goto out;
    }
    p->stmts = calloc(n, sizeof(*p->stmts));
    if (p->stmts == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        ctx.index = i + 1;
        /* Counted before parsing so that free releases partial lists. */
        p->count = i + 1;
        json_t *s = json_is_array(statements) ? json_array_get(statements, i) : statements;
        rc = parse_statement(s, &p->stmts[i], &ctx);
        if (rc != BERTH_OK) {
            goto out;
        }
    }
    *out = p;
    p = NULL;
out:
    authz_policy_free(p);
    return rc;
}

/* ---- decisions ---- */

static bool action_applies(const struct stmt *st, const char *action)
{
    bool match = false;
    for (size_t i = 0; i < st->action_count && !match; i++) {
        match = str_glob_match_flags(st->actions[i], action, ACTION_GLOB);
    }
    return match != st->is_not_action;
}

static bool resource_matches(const char *pattern, const char *repository,
                             const char *repository_arn)
{
    if (repository == NULL) {
        return str_glob_match_flags(pattern, "*", RESOURCE_GLOB);
    }
    if (str_has_prefix(pattern, "arn:")) {
        return repository_arn != NULL &&
               str_glob_match_flags(pattern, repository_arn, RESOURCE_GLOB);
    }
    return str_glob_match_flags(pattern, repository, RESOURCE_GLOB);
}

static bool resource_applies(const struct stmt *st, const char *repository,
                             const char *repository_arn)
{
    if (!st->has_resource) {
        /* Repository policies only: the repository it is attached to. */
        return true;
    }
    bool match = false;
    for (size_t i = 0; i < st->resource_count && !match; i++) {
        match = resource_matches(st->resources[i], repository, repository_arn);
    }
    return match != st->is_not_resource;
}

/* The account a principal ARN or account-wide principal value names, or
 * false. "123456789012" and "arn:aws:iam::123456789012:root" are
 * account-wide; an ARN's account is its fifth field. */
static bool principal_account(const char *p, char out[13])
{
    char field[AUTHZ_PATTERN_MAX + 1];
    if (is_account_id(p)) {
        memcpy(out, p, 13);
        return true;
    }
    if (!str_has_prefix(p, "arn:") || !arn_field(p, 4, field, sizeof(field)) ||
        !is_account_id(field)) {
        return false;
    }
    memcpy(out, field, 13);
    return true;
}

static bool is_account_wide(const char *p)
{
    char field[16];
    return is_account_id(p) ||
           (arn_field(p, 2, field, sizeof(field)) && strcmp(field, "iam") == 0 &&
            arn_field(p, 5, field, sizeof(field)) && strcmp(field, "root") == 0);
}

static bool principal_applies(const struct stmt *st, const char *principal_arn)
{
    if (st->any_principal) {
        return true;
    }
    if (principal_arn == NULL) {
        return false;
    }
    char caller_account[13];
    bool has_account = principal_account(principal_arn, caller_account);
    for (size_t i = 0; i < st->principal_count; i++) {
        const char *p = st->principals[i];
        if (strcmp(p, principal_arn) == 0) {
            return true;
        }
        char account[13];
        if (has_account && is_account_wide(p) && principal_account(p, account) &&
            strcmp(account, caller_account) == 0) {
            return true;
        }
    }
    return false;
}

/* Scan a policy; set *deny / *allow when a matching statement has that
 * effect. */
static void evaluate(const struct authz_policy *p, const struct authz_request *req, bool *deny,
                     bool *allow)
{
    for (size_t i = 0; i < p->count; i++) {
        const struct stmt *st = &p->stmts[i];
        if (p->kind != AUTHZ_IDENTITY_POLICY && !principal_applies(st, req->principal_arn)) {
            continue;
        }
        if (!action_applies(st, req->action) ||
            !resource_applies(st, req->repository, req->repository_arn)) {
            continue;
        }
        if (st->is_deny) {
            *deny = true;
        } else {
            *allow = true;
        }
    }
}

enum authz_decision authz_decide(const struct authz_request *req, enum authz_reason *reason)
{
    bool id_deny = false, id_allow = false, repo_deny = false, repo_allow = false;
    bool reg_deny = false, reg_allow = false;
    enum authz_reason why = AUTHZ_REASON_NO_ALLOW;
    enum authz_decision d = AUTHZ_DENY;
    if (req->action == NULL || req->action[0] == '\0') {
        goto out;
    }
    if (req->principal_arn != NULL && req->identity != NULL &&
        req->identity->kind == AUTHZ_IDENTITY_POLICY) {
        evaluate(req->identity, req, &id_deny, &id_allow);
    }
    if (req->repository != NULL && req->repository_policy != NULL &&
        req->repository_policy->kind == AUTHZ_REPOSITORY_POLICY) {
        evaluate(req->repository_policy, req, &repo_deny, &repo_allow);
    }
    /* The registry policy speaks only of what it can grant: its
     * statements are read for those actions alone. */
    if (req->registry_policy != NULL && req->registry_policy->kind == AUTHZ_REGISTRY_POLICY &&
        authz_registry_grantable(req->action)) {
        evaluate(req->registry_policy, req, &reg_deny, &reg_allow);
    }
    if (id_deny) {
        why = AUTHZ_REASON_IDENTITY_DENY;
    } else if (repo_deny) {
        why = AUTHZ_REASON_REPOSITORY_DENY;
    } else if (reg_deny) {
        why = AUTHZ_REASON_REGISTRY_DENY;
    } else if (id_allow) {
        why = AUTHZ_REASON_IDENTITY_ALLOW;
        d = AUTHZ_ALLOW;
    } else if (repo_allow) {
        why = AUTHZ_REASON_REPOSITORY_ALLOW;
        d = AUTHZ_ALLOW;
    } else if (reg_allow) {
        why = AUTHZ_REASON_REGISTRY_ALLOW;
        d = AUTHZ_ALLOW;
    }
out:
    if (reason != NULL) {
        *reason = why;
    }
    return d;
}

/* Append at most max bytes of s at out[*o], keeping room for the NUL. */
static void append_bounded(char *out, size_t cap, size_t *o, const char *s, size_t max)
{
    for (size_t i = 0; s[i] != '\0' && i < max && *o + 1 < cap; i++) {
        out[(*o)++] = s[i];
    }
    out[*o] = '\0';
}

void authz_denied_message(const char *principal_arn, const char *action, const char *resource,
                          char *out, size_t cap)
{
    size_t o = 0;
    if (cap == 0) {
        return;
    }
    out[0] = '\0';
    append_bounded(out, cap, &o, "User: ", SIZE_MAX);
    append_bounded(out, cap, &o, principal_arn != NULL ? principal_arn : "anonymous", 1024);
    append_bounded(out, cap, &o, " is not authorized to perform: ", SIZE_MAX);
    append_bounded(out, cap, &o, action != NULL ? action : "", 128);
    append_bounded(out, cap, &o, " on resource: ", SIZE_MAX);
    append_bounded(out, cap, &o, resource != NULL ? resource : "*", 1024);
}

/* ---- permission specs ---- */

static enum berth_err spec_fail(enum berth_err rc, char *err, size_t cap, const char *spec,
                                const char *why)
{
    return fail(rc, err, cap, "permission '%s': %s", echo(spec).s, why);
}

/* Append {"Effect":"Allow","Action":[...],"Resource":resource} to stmts. */
static enum berth_err add_statement(json_t *stmts, const char *const *acts, size_t n,
                                    const char *resource)
{
    json_t *list = json_array();
    if (list == NULL) {
        return BERTH_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        /* append_new steals its argument, also on failure */
        if (json_array_append_new(list, json_string(acts[i])) != 0) {
            json_decref(list);
            return BERTH_ENOMEM;
        }
    }
    /* "O" takes a new reference, so list is released here either way. */
    json_t *st =
        json_pack("{s:s, s:O, s:s}", "Effect", "Allow", "Action", list, "Resource", resource);
    json_decref(list);
    if (st == NULL || json_array_append_new(stmts, st) != 0) {
        return BERTH_ENOMEM;
    }
    return BERTH_OK;
}

static bool action_pattern_matches_any(const char *pattern)
{
    for (size_t i = 0; i < ACTION_COUNT; i++) {
        if (str_glob_match_flags(pattern, actions[i], ACTION_GLOB)) {
            return true;
        }
    }
    return false;
}

/* One spec -> one statement. */
static enum berth_err convert_spec(const char *spec, json_t *stmts, char *err, size_t cap)
{
    size_t len = strnlen(spec, AUTHZ_SPEC_MAX_LEN + 1);
    if (len > AUTHZ_SPEC_MAX_LEN) {
        return spec_fail(BERTH_ETOOBIG, err, cap, spec, "longer than 512 characters");
    }
    char buf[AUTHZ_SPEC_MAX_LEN + 1];
    memcpy(buf, spec, len + 1);
    const char *resource = "*";
    const char *const *acts;
    size_t n;
    const char *one[1];

    if (len >= 4 && lower(buf[0]) == 'e' && lower(buf[1]) == 'c' && lower(buf[2]) == 'r' &&
        buf[3] == ':') {
        /* ecr:ACTION[=PATTERN] */
        char *eq = strchr(buf, '=');
        if (eq != NULL) {
            *eq = '\0';
            resource = eq + 1;
        }
        const char *name = buf + 4;
        if (*name == '\0') {
            return spec_fail(BERTH_EINVAL, err, cap, spec, "no action after 'ecr:'");
        }
        for (const char *p = name; *p; p++) {
            bool ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                      (*p >= '0' && *p <= '9') || *p == '*' || *p == '?';
            if (!ok) {
                return spec_fail(BERTH_EINVAL, err, cap, spec, "invalid character in the action");
            }
        }
        if (has_wildcard(name)) {
            if (!action_pattern_matches_any(buf)) {
                return spec_fail(BERTH_EINVAL, err, cap, spec,
                                 "the action pattern matches no ECR action");
            }
            one[0] = buf;
        } else {
            one[0] = authz_action_lookup(buf);
            if (one[0] == NULL) {
                return spec_fail(BERTH_EINVAL, err, cap, spec, "unknown ECR action");
            }
        }
        acts = one;
        n = 1;
    } else {
        /* VERB[:PATTERN] */
        char *colon = strchr(buf, ':');
        if (colon != NULL) {
            *colon = '\0';
            resource = colon + 1;
        }
        if (strcmp(buf, "pull") == 0) {
            acts = authz_action_set(AUTHZ_SET_PULL, &n);
        } else if (strcmp(buf, "push") == 0) {
            acts = authz_action_set(AUTHZ_SET_PUSH, &n);
        } else if (strcmp(buf, "delete") == 0) {
            acts = authz_action_set(AUTHZ_SET_DELETE, &n);
        } else if (strcmp(buf, "admin") == 0) {
            acts = authz_action_set(AUTHZ_SET_ADMIN, &n);
        } else {
            return spec_fail(BERTH_EINVAL, err, cap, spec,
                             "expected pull, push, delete or admin, optionally followed by "
                             ":PATTERN, or ecr:ACTION[=PATTERN]");
        }
    }
    if (strlen(resource) > AUTHZ_PATTERN_MAX || !valid_resource(resource)) {
        return spec_fail(BERTH_EINVAL, err, cap, spec,
                         "the repository pattern must be '*', a lower-case repository name "
                         "pattern (a-z 0-9 . _ - / * ?) or a repository ARN pattern");
    }
    return add_statement(stmts, acts, n, resource);
}

enum berth_err authz_spec_to_policy(const char *const *specs, size_t count, char **json, char *err,
                                    size_t err_cap)
{
    if (count > AUTHZ_SPECS_MAX) {
        return fail(BERTH_ETOOBIG, err, err_cap, "more than %d permissions", AUTHZ_SPECS_MAX);
    }
    enum berth_err rc = BERTH_OK;
    json_t *doc = json_object();
    json_t *stmts = json_array();
    if (doc == NULL || stmts == NULL ||
        json_object_set_new(doc, "Version", json_string("2012-10-17"))) {
        json_decref(stmts);
        rc = BERTH_ENOMEM;
        goto out;
    }
    if (json_object_set_new(doc, "Statement", stmts) != 0) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        if (specs[i] == NULL) {
            rc = fail(BERTH_EINVAL, err, err_cap, "permission %zu is missing", i + 1);
            goto out;
        }
        rc = convert_spec(specs[i], stmts, err, err_cap);
        if (rc != BERTH_OK) {
            goto out;
        }
    }
    if (count == 0) {
        size_t n;
        const char *const *acts = authz_action_set(AUTHZ_SET_ADMIN, &n);
        rc = add_statement(stmts, acts, n, "*");
        if (rc != BERTH_OK) {
            goto out;
        }
    }
    const char *login[] = {"ecr:GetAuthorizationToken"};
    rc = add_statement(stmts, login, 1, "*");
    if (rc != BERTH_OK) {
        goto out;
    }
    char *text = json_dumps(doc, JSON_COMPACT);
    if (text == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    *json = text;
out:
    json_decref(doc);
    return rc;
}
