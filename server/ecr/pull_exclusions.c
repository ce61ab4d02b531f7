/*
 * ECR pull-time update exclusions: RegisterPullTimeUpdateExclusion,
 * DeregisterPullTimeUpdateExclusion, ListPullTimeUpdateExclusions. The
 * principals listed (security scanners, cache warmers) pull without moving
 * an image's lastRecordedPullTime (registry_manifest_note_pull reads the
 * list). Pool threads; see ecr_int.h.
 */
#include "ecr_int.h"

#include <string.h>

#include "common/log.h"
#include "common/str.h"
#include "common/timeutil.h"

/* Exclusions a registry may hold (berth's limit; LimitExceededException). */
#define EXCLUSIONS_MAX 100
/* One ListPullTimeUpdateExclusions page at most (the list's model maximum). */
#define PAGE_MAX 100

#define PRINCIPAL_ARN_PATTERN                                                                      \
    "^arn:aws(-[a-z]+)*:iam::[0-9]{12}:(role|user)/[\\w+=,.@-]+(/[\\w+=,.@-]+)*$"

static bool is_word_or(char c, const char *extra)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           (c != '\0' && strchr(extra, c) != NULL);
}

/* PRINCIPAL_ARN_PATTERN, by hand. Pure. */
static bool principal_arn_ok(const char *s)
{
    if (!str_has_prefix(s, "arn:aws")) {
        return false;
    }
    s += strlen("arn:aws");
    while (*s == '-') { /* (-[a-z]+)* */
        s++;
        if (!(*s >= 'a' && *s <= 'z')) {
            return false;
        }
        while (*s >= 'a' && *s <= 'z') {
            s++;
        }
    }
    if (!str_has_prefix(s, ":iam::")) {
        return false;
    }
    s += strlen(":iam::");
    for (int i = 0; i < 12; i++, s++) {
        if (!(*s >= '0' && *s <= '9')) {
            return false;
        }
    }
    if (str_has_prefix(s, ":role/")) {
        s += strlen(":role/");
    } else if (str_has_prefix(s, ":user/")) {
        s += strlen(":user/");
    } else {
        return false;
    }
    /* one or more path segments of [\w+=,.@-]+ separated by '/' */
    for (;;) {
        if (!is_word_or(*s, "+=,.@-")) {
            return false;
        }
        while (is_word_or(*s, "+=,.@-")) {
            s++;
        }
        if (*s == '\0') {
            return true;
        }
        if (*s != '/') {
            return false;
        }
        s++;
    }
}

static bool principal_arn(struct ecr_call *call, const char **out)
{
    if (!ecr_string(call, call->in, "principalArn", ECR_REQUIRED, 0, META_PRINCIPAL_ARN_MAX, out)) {
        return false;
    }
    if (!principal_arn_ok(*out)) {
        return ecr_invalid(call, "principalArn",
                           "must satisfy regular expression '" PRINCIPAL_ARN_PATTERN "'");
    }
    return true;
}

static void register_exclusion(struct ecr_call *call)
{
    const char *arn;
    if (!principal_arn(call, &arn)) {
        return;
    }
    struct meta *m = ecr_meta(call);
    if (m == NULL) {
        return;
    }
    int64_t now = time_now_ms();
    enum berth_err rc = meta_pull_exclusion_add(m, arn, now, EXCLUSIONS_MAX);
    if (rc == BERTH_EEXIST) {
        ecr_fail(call, "ExclusionAlreadyExistsException",
                 "The pull time update exclusion for principal '%s' already exists in the "
                 "registry with id '%s'",
                 arn, ecr_registry(call));
        return;
    }
    if (rc == BERTH_ETOOBIG) {
        ecr_fail(call, "LimitExceededException",
                 "The registry with id '%s' already has the maximum of %d pull time update "
                 "exclusions",
                 ecr_registry(call), EXCLUSIONS_MAX);
        return;
    }
    if (rc != BERTH_OK) {
        ecr_server_error(call, rc);
        return;
    }
    log_info("event=pull_time_exclusion_registered principal=%s", arn);
    if (json_object_set_new(call->out, "principalArn", json_string(arn)) != 0 ||
        json_object_set_new(call->out, "createdAt", ecr_time(now)) != 0) {
        ecr_server_error(call, BERTH_ENOMEM);
    }
}

static void deregister_exclusion(struct ecr_call *call)
{
    const char *arn;
    if (!principal_arn(call, &arn)) {
        return;
    }
    struct meta *m = ecr_meta(call);
    if (m == NULL) {
        return;
    }
    enum berth_err rc = meta_pull_exclusion_remove(m, arn);
    if (rc == BERTH_ENOTFOUND) {
        ecr_fail(call, "ExclusionNotFoundException",
                 "The pull time update exclusion for principal '%s' does not exist in the "
                 "registry with id '%s'",
                 arn, ecr_registry(call));
        return;
    }
    if (rc != BERTH_OK) {
        ecr_server_error(call, rc);
        return;
    }
    log_info("event=pull_time_exclusion_deregistered principal=%s", arn);
    if (json_object_set_new(call->out, "principalArn", json_string(arn)) != 0) {
        ecr_server_error(call, BERTH_ENOMEM);
    }
}

struct list_ctx {
    struct ecr_json_list arns;
    char last[META_PRINCIPAL_ARN_MAX + 1];
};

static int list_row(void *arg, const char *arn, int64_t created_at)
{
    (void)created_at;
    struct list_ctx *c = arg;
    if (ecr_json_list_add(&c->arns, json_string(arn)) != 0) {
        return 1;
    }
    str_copy(c->last, sizeof(c->last), arn);
    return 0;
}

static void list_exclusions(struct ecr_call *call)
{
    int64_t limit;
    char after[META_PRINCIPAL_ARN_MAX + 1];
    if (!ecr_pagination(call, 1000, &limit, after, sizeof(after))) {
        return;
    }
    if (limit > PAGE_MAX) {
        limit = PAGE_MAX;
    }
    struct meta *m = ecr_meta(call);
    if (m == NULL) {
        return;
    }
    struct list_ctx c = {.arns = {json_array(), false}, .last = ""};
    if (c.arns.list == NULL) {
        ecr_server_error(call, BERTH_ENOMEM);
        return;
    }
    bool more = false;
    enum berth_err rc = meta_pull_exclusion_list(m, after, limit, list_row, &c, &more);
    rc = ecr_json_list_rc(&c.arns, rc);
    if (rc != BERTH_OK) {
        json_decref(c.arns.list);
        ecr_server_error(call, rc);
        return;
    }
    json_object_set_new(call->out, "pullTimeUpdateExclusions", c.arns.list);
    if (more) {
        json_object_set_new(call->out, "nextToken", ecr_next_token(c.last));
    }
}

const struct ecr_op ecr_pull_exclusion_ops[] = {
    {"RegisterPullTimeUpdateExclusion", register_exclusion, ECR_SCOPE_REGISTRY},
    {"DeregisterPullTimeUpdateExclusion", deregister_exclusion, ECR_SCOPE_REGISTRY},
    {"ListPullTimeUpdateExclusions", list_exclusions, ECR_SCOPE_REGISTRY},
    {NULL, NULL, ECR_SCOPE_REGISTRY},
};
