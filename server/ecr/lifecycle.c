/*
 * ECR operations on lifecycle policies: PutLifecyclePolicy,
 * GetLifecyclePolicy, DeleteLifecyclePolicy, StartLifecyclePolicyPreview,
 * GetLifecyclePolicyPreview. The policy text is validated by the lifecycle
 * module (ECR's messages) and stored verbatim; previews are computed by the
 * background jobs (or, without them, on the request thread) and stored.
 * Pool threads; see ecr_int.h.
 */
#include "ecr_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/jobs/jobs.h"
#include "storage/lifecycle/lifecycle.h"
#include "storage/lifecycle/lifecycle_run.h"
#include "common/log.h"
#include "storage/meta/meta_lifecycle.h"
#include "storage/store/store.h"
#include "common/str.h"
#include "common/timeutil.h"

/* Largest preview page (ECR's maxResults bound for this operation). */
#define PREVIEW_PAGE_MAX 100

static struct jobs *call_jobs(struct ecr_call *call)
{
    return atomic_load(&call->req->srv->jobs);
}

/* lifecyclePolicyText: a string that parses as a valid policy. The
 * lifecycle module bounds the length (100..30720 characters) and phrases
 * every failure as ECR does. */
static bool policy_text(struct ecr_call *call, enum ecr_need need, const char **out)
{
    if (!ecr_string(call, call->in, "lifecyclePolicyText", need, 0, SIZE_MAX, out)) {
        return false;
    }
    if (*out == NULL) {
        return true;
    }
    char msg[LIFECYCLE_MSG_CAP];
    enum berth_err rc = lifecycle_policy_parse(*out, strlen(*out), NULL, msg, sizeof(msg));
    if (rc == BERTH_EINVAL) {
        return ecr_fail(call, "InvalidParameterException", "%s", msg);
    }
    if (rc != BERTH_OK) {
        ecr_server_error(call, rc);
        return false;
    }
    return true;
}

static bool policy_not_found(struct ecr_call *call, const char *name)
{
    return ecr_fail(call, "LifecyclePolicyNotFoundException",
                    "Lifecycle policy does not exist for the repository with name '%s' in the "
                    "registry with id '%s'",
                    name, ecr_registry(call));
}

/* The members every lifecycle response starts with. */
static void echo_repo(struct ecr_call *call, const char *name)
{
    json_object_set_new(call->out, "registryId", json_string(ecr_registry(call)));
    json_object_set_new(call->out, "repositoryName", json_string(name));
}

static void put_lifecycle_policy(struct ecr_call *call)
{
    const char *name, *text;
    struct meta_repo repo;
    if (!ecr_repo_name(call, &name) || !policy_text(call, ECR_REQUIRED, &text) ||
        !ecr_find_repo(call, name, &repo)) {
        return;
    }
    struct meta *m = ecr_meta(call);
    if (m == NULL) {
        return;
    }
    /* a new or changed policy waits lifecycle.new_policy_delay_seconds
     * before the background job first enforces it; putting the same text
     * again does not restart the wait */
    char *old = NULL;
    enum berth_err rc = meta_begin(m);
    if (rc == BERTH_OK) {
        rc = meta_repo_get_text(m, repo.id, META_REPO_LIFECYCLE, &old);
    }
    bool changed = old == NULL || strcmp(old, text) != 0;
    free(old);
    if (rc == BERTH_OK && changed) {
        rc = meta_repo_set_text(m, repo.id, META_REPO_LIFECYCLE, text);
    }
    if (rc == BERTH_OK && changed) {
        rc = meta_repo_set_lifecycle_set_at(m, repo.id, time_now_ms());
    }
    if (rc == BERTH_OK) {
        rc = meta_commit(m);
    }
    if (rc != BERTH_OK) {
        meta_rollback(m);
    }
    if (rc != BERTH_OK) {
        ecr_fail_repo_step(call, name, rc);
        return;
    }
    log_info("event=lifecycle_policy_put repo=%s chars=%zu changed=%d", name, strlen(text),
             changed ? 1 : 0);
    echo_repo(call, name);
    json_object_set_new(call->out, "lifecyclePolicyText", json_string(text));
    jobs_lifecycle_soon(call_jobs(call), repo.id);
}

/* Get (and with delete, remove) the repository's policy and answer with it. */
static void get_or_delete(struct ecr_call *call, bool delete)
{
    const char *name;
    struct meta_repo repo;
    if (!ecr_repo_name(call, &name) || !ecr_find_repo(call, name, &repo)) {
        return;
    }
    struct meta *m = ecr_meta(call);
    if (m == NULL) {
        return;
    }
    char *text = NULL;
    enum berth_err rc = delete ? meta_begin(m) : BERTH_OK;
    if (rc == BERTH_OK) {
        rc = meta_repo_get_text(m, repo.id, META_REPO_LIFECYCLE, &text);
    }
    if (rc == BERTH_OK && delete &&text != NULL) {
        rc = meta_repo_set_text(m, repo.id, META_REPO_LIFECYCLE, NULL);
        /* a later policy starts without an evaluation time */
        if (rc == BERTH_OK) {
            rc = meta_repo_set_lifecycle_evaluated(m, repo.id, 0);
        }
    }
    if (rc == BERTH_OK && delete) {
        rc = meta_commit(m);
    }
    if (rc != BERTH_OK) {
        meta_rollback(m);
        free(text);
        ecr_fail_repo_step(call, name, rc);
        return;
    }
    if (text == NULL) {
        policy_not_found(call, name);
        return;
    }
    if (delete) {
        log_info("event=lifecycle_policy_deleted repo=%s", name);
    }
    echo_repo(call, name);
    json_object_set_new(call->out, "lifecyclePolicyText", json_string(text));
    if (repo.lifecycle_evaluated_at > 0) {
        json_object_set_new(call->out, "lastEvaluatedAt", ecr_time(repo.lifecycle_evaluated_at));
    }
    free(text);
}

static void get_lifecycle_policy(struct ecr_call *call)
{
    get_or_delete(call, false);
}

static void delete_lifecycle_policy(struct ecr_call *call)
{
    get_or_delete(call, true);
}

static void start_lifecycle_policy_preview(struct ecr_call *call)
{
    const char *name, *given;
    struct meta_repo repo;
    if (!ecr_repo_name(call, &name) || !policy_text(call, ECR_OPTIONAL, &given) ||
        !ecr_find_repo(call, name, &repo)) {
        return;
    }
    struct meta *m = ecr_meta(call);
    if (m == NULL) {
        return;
    }
    char *stored = NULL;
    enum berth_err rc = meta_begin(m);
    if (rc == BERTH_OK && given == NULL) {
        rc = meta_repo_get_text(m, repo.id, META_REPO_LIFECYCLE, &stored);
        if (rc == BERTH_OK && stored == NULL) {
            meta_rollback(m);
            policy_not_found(call, name);
            return;
        }
    }
    struct meta_preview pv;
    enum berth_err got = rc == BERTH_OK ? meta_preview_get(m, repo.id, &pv, NULL) : rc;
    if (got == BERTH_OK && pv.status == META_PREVIEW_IN_PROGRESS) {
        meta_rollback(m);
        free(stored);
        ecr_fail(call, "LifecyclePolicyPreviewInProgressException",
                 "The previous lifecycle policy preview request has not completed for the "
                 "repository with name '%s' in the registry with id '%s'. Wait and try again.",
                 name, ecr_registry(call));
        return;
    }
    const char *text = given ? given : stored;
    rc = got == BERTH_OK || got == BERTH_ENOTFOUND ? BERTH_OK : got;
    if (rc == BERTH_OK) {
        rc = meta_preview_start(m, repo.id, text, time_now_ms());
    }
    if (rc == BERTH_OK) {
        rc = meta_commit(m);
    }
    if (rc != BERTH_OK) {
        meta_rollback(m);
        free(stored);
        ecr_server_error(call, rc);
        return;
    }
    log_info("event=lifecycle_preview_started repo=%s", name);
    echo_repo(call, name);
    json_object_set_new(call->out, "lifecyclePolicyText", json_string(text));
    json_object_set_new(call->out, "status",
                        json_string(meta_preview_status_name(META_PREVIEW_IN_PROGRESS)));
    free(stored);
    struct jobs *jobs = call_jobs(call);
    if (jobs != NULL) {
        jobs_preview_soon(jobs);
    } else {
        /* No background runner (a server embedded without one): compute it
         * now; the next Get sees the result. */
        (void)lifecycle_preview_process(call->req->srv->store, repo.id, NULL);
    }
}

/* ---- GetLifecyclePolicyPreview ---- */

struct wanted_id {
    const char *digest; /* NULL: any */
    const char *tag;    /* NULL: any */
};

struct preview_page {
    struct ecr_call *call;
    json_t *list;
    int64_t limit;
    int tag_status; /* 0 any, 1 tagged, 2 untagged */
    const struct wanted_id *ids;
    size_t id_count;
    int64_t last_seq;
    bool more;
    bool oom;
};

static bool has_tag(json_t *tags, const char *tag)
{
    size_t i;
    json_t *t;
    json_array_foreach(tags, i, t)
    {
        if (json_is_string(t) && strcmp(json_string_value(t), tag) == 0) {
            return true;
        }
    }
    return false;
}

static bool wanted(const struct preview_page *p, const struct meta_preview_result *r, json_t *tags)
{
    bool tagged = json_array_size(tags) > 0;
    if ((p->tag_status == 1 && !tagged) || (p->tag_status == 2 && tagged)) {
        return false;
    }
    if (p->ids == NULL) {
        return true;
    }
    for (size_t i = 0; i < p->id_count; i++) {
        const struct wanted_id *w = &p->ids[i];
        if ((w->digest == NULL || strcmp(w->digest, r->digest) == 0) &&
            (w->tag == NULL || has_tag(tags, w->tag))) {
            return true;
        }
    }
    return false;
}

static int preview_row(void *arg, const struct meta_preview_result *r)
{
    struct preview_page *p = arg;
    json_t *tags = r->tags_json ? json_loads(r->tags_json, 0, NULL) : NULL;
    if (!wanted(p, r, tags)) {
        json_decref(tags);
        return 0;
    }
    if ((int64_t)json_array_size(p->list) == p->limit) {
        json_decref(tags);
        p->more = true;
        return 1;
    }
    json_t *item = json_object();
    if (item == NULL) {
        json_decref(tags);
        p->oom = true;
        return 1;
    }
    if (json_array_size(tags) > 0) {
        json_object_set(item, "imageTags", tags);
    }
    json_decref(tags);
    json_object_set_new(item, "imageDigest", json_string(r->digest));
    json_object_set_new(item, "imagePushedAt", ecr_time(r->pushed_at));
    json_object_set_new(item, "action",
                        r->transition ? json_pack("{s:s, s:s}", "type", "TRANSITION",
                                                  "targetStorageClass", "ARCHIVE")
                                      : json_pack("{s:s}", "type", "EXPIRE"));
    json_object_set_new(item, "appliedRulePriority", json_integer(r->rule_priority));
    json_object_set_new(item, "storageClass", json_string(r->is_archived ? "ARCHIVE" : "STANDARD"));
    json_array_append_new(p->list, item);
    p->last_seq = r->seq;
    return 0;
}

/* imageIds: 1..100 ImageIdentifiers, each with a digest or a tag. */
static bool parse_image_ids(struct ecr_call *call, json_t *ids, struct wanted_id *out)
{
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id)
    {
        if (!json_is_object(id)) {
            return ecr_fail(call, "SerializationException", "Each imageId must be a structure.");
        }
        if (!ecr_string(call, id, "imageDigest", ECR_OPTIONAL, 0, 256, &out[i].digest) ||
            !ecr_string(call, id, "imageTag", ECR_OPTIONAL, 1, 300, &out[i].tag)) {
            return false;
        }
        if (out[i].digest == NULL && out[i].tag == NULL) {
            return ecr_invalid(call, "imageIds",
                               "Invalid request parameters: both tag and digest cannot be null");
        }
    }
    return true;
}

static void get_lifecycle_policy_preview(struct ecr_call *call)
{
    static const char *const statuses[] = {"ANY", "TAGGED", "UNTAGGED", NULL};
    const char *name, *tag_status = NULL;
    json_t *ids, *filter;
    int64_t limit;
    char after[32];
    struct wanted_id wanted_ids[100];
    if (!ecr_repo_name(call, &name) ||
        !ecr_array(call, call->in, "imageIds", ECR_OPTIONAL, 1, 100, &ids) ||
        (ids && !parse_image_ids(call, ids, wanted_ids)) ||
        !ecr_pagination(call, PREVIEW_PAGE_MAX, &limit, after, sizeof(after)) ||
        !ecr_object(call, call->in, "filter", ECR_OPTIONAL, &filter) ||
        (filter && !ecr_enum(call, filter, "tagStatus", ECR_OPTIONAL, statuses, &tag_status))) {
        return;
    }
    if (ids != NULL && (json_object_get(call->in, "maxResults") != NULL ||
                        json_object_get(call->in, "nextToken") != NULL)) {
        ecr_invalid(call, "imageIds",
                    "maxResults and nextToken cannot be used together with imageIds");
        return;
    }
    int64_t after_seq = -1;
    if (after[0] != '\0') {
        uint64_t v;
        if (str_parse_u64(after, (uint64_t)INT64_MAX, &v) != BERTH_OK) {
            ecr_invalid(call, "nextToken", "Invalid NextToken");
            return;
        }
        after_seq = (int64_t)v;
    }
    struct meta_repo repo;
    if (!ecr_find_repo(call, name, &repo)) {
        return;
    }
    struct meta *m = ecr_meta(call);
    if (m == NULL) {
        return;
    }
    /* One read transaction: the state and the results belong together. */
    enum berth_err rc = meta_begin_read(m);
    struct meta_preview pv;
    char *text = NULL;
    if (rc == BERTH_OK) {
        rc = meta_preview_get(m, repo.id, &pv, &text);
    }
    if (rc == BERTH_ENOTFOUND) {
        meta_rollback(m);
        ecr_fail(call, "LifecyclePolicyPreviewNotFoundException",
                 "There is no dry run for the repository with name '%s' in the registry with id "
                 "'%s'",
                 name, ecr_registry(call));
        return;
    }
    struct preview_page page = {.call = call,
                                .limit = limit,
                                .tag_status = tag_status == NULL                    ? 0
                                              : strcmp(tag_status, "TAGGED") == 0   ? 1
                                              : strcmp(tag_status, "UNTAGGED") == 0 ? 2
                                                                                    : 0,
                                .ids = ids ? wanted_ids : NULL,
                                .id_count = ids ? json_array_size(ids) : 0,
                                .last_seq = -1};
    if (ids != NULL) {
        page.limit = PREVIEW_PAGE_MAX;
    }
    bool complete = rc == BERTH_OK && pv.status == META_PREVIEW_COMPLETE;
    if (complete) {
        page.list = json_array();
        rc = page.list ? meta_preview_results(m, repo.id, after_seq, preview_row, &page)
                       : BERTH_ENOMEM;
        if (rc == BERTH_OK && page.oom) {
            rc = BERTH_ENOMEM;
        }
    }
    meta_rollback(m);
    if (rc != BERTH_OK) {
        json_decref(page.list);
        free(text);
        ecr_server_error(call, rc);
        return;
    }
    echo_repo(call, name);
    json_object_set_new(call->out, "lifecyclePolicyText", json_string(text));
    json_object_set_new(call->out, "status", json_string(meta_preview_status_name(pv.status)));
    free(text);
    if (complete) {
        json_object_set_new(call->out, "previewResults", page.list);
        if (page.more) {
            char seq[32];
            snprintf(seq, sizeof(seq), "%" PRId64, page.last_seq);
            json_object_set_new(call->out, "nextToken", ecr_next_token(seq));
        }
        json_t *summary =
            json_pack("{s:I}", "expiringImageTotalCount", (json_int_t)pv.expiring_count);
        if (summary != NULL && pv.transitioning_count > 0) {
            /* present only when something transitions, as the model says */
            json_object_set_new(summary, "transitioningImageTotalCounts",
                                json_pack("[{s:s, s:I}]", "targetStorageClass", "ARCHIVE",
                                          "imageTotalCount", (json_int_t)pv.transitioning_count));
        }
        json_object_set_new(call->out, "summary", summary);
    }
}

const struct ecr_op ecr_lifecycle_ops[] = {
    {"PutLifecyclePolicy", put_lifecycle_policy, ECR_SCOPE_REPOSITORY_NAME},
    {"GetLifecyclePolicy", get_lifecycle_policy, ECR_SCOPE_REPOSITORY_NAME},
    {"DeleteLifecyclePolicy", delete_lifecycle_policy, ECR_SCOPE_REPOSITORY_NAME},
    {"StartLifecyclePolicyPreview", start_lifecycle_policy_preview, ECR_SCOPE_REPOSITORY_NAME},
    {"GetLifecyclePolicyPreview", get_lifecycle_policy_preview, ECR_SCOPE_REPOSITORY_NAME},
    {NULL, NULL, ECR_SCOPE_REGISTRY},
};
