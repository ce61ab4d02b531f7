/* Repository creation templates as a registry rule; see templates.h. */
#include "storage/registry/templates.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/timeutil.h"
#include "storage/meta/meta.h"

bool registry_template_covers(const char *prefix, const char *name)
{
    if (strcmp(prefix, TEMPLATE_ROOT) == 0) {
        return true;
    }
    size_t len = strlen(prefix);
    if (len > 0 && prefix[len - 1] == '/') {
        len--;
    }
    return len > 0 && strncmp(prefix, name, len) == 0 && name[len] == '/';
}

static bool lists_use(json_t *doc, const char *use)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(doc, "appliedFor"), i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), use) == 0) {
            return true;
        }
    }
    return false;
}

struct find_ctx {
    const char *name;
    const char *use;
    size_t best_len; /* prefix length of the best so far; ROOT counts as 0 */
    char *best;      /* its body */
    bool failed;
};

static int consider(void *arg, const struct meta_prefix_doc *t)
{
    struct find_ctx *c = arg;
    if (!registry_template_covers(t->prefix, c->name)) {
        return 0;
    }
    size_t len = strcmp(t->prefix, TEMPLATE_ROOT) == 0 ? 0 : strlen(t->prefix);
    if (c->best != NULL && len <= c->best_len) {
        return 0;
    }
    json_t *doc = json_loads(t->body, 0, NULL);
    bool applies = doc != NULL && lists_use(doc, c->use);
    json_decref(doc);
    if (!applies) {
        return 0;
    }
    char *copy = strdup(t->body);
    if (copy == NULL) {
        c->failed = true;
        return 1;
    }
    free(c->best);
    c->best = copy;
    c->best_len = len;
    return 0;
}

enum berth_err registry_template_find(struct meta *m, const char *name, const char *use,
                                      char **body)
{
    struct find_ctx c = {.name = name, .use = use, .best_len = 0, .best = NULL, .failed = false};
    enum berth_err rc = meta_template_list(m, "", -1, consider, &c, NULL);
    if (rc == BERTH_OK && c.failed) {
        rc = BERTH_ENOMEM;
    }
    if (rc != BERTH_OK) {
        free(c.best);
        return rc;
    }
    *body = c.best;
    return BERTH_OK;
}

/* Store member key of doc as text attribute which: a string as it is,
 * anything else as compact JSON; absent, null or an empty array: nothing. */
static enum berth_err set_member(struct meta *m, int64_t repo_id, json_t *doc, const char *key,
                                 enum meta_repo_text which)
{
    json_t *v = json_object_get(doc, key);
    if (v == NULL || json_is_null(v) || (json_is_array(v) && json_array_size(v) == 0) ||
        (json_is_string(v) && json_string_length(v) == 0)) {
        return BERTH_OK;
    }
    if (json_is_string(v)) {
        return meta_repo_set_text(m, repo_id, which, json_string_value(v));
    }
    char *text = json_dumps(v, JSON_COMPACT);
    if (text == NULL) {
        return BERTH_ENOMEM;
    }
    enum berth_err rc = meta_repo_set_text(m, repo_id, which, text);
    free(text);
    return rc;
}

enum berth_err registry_template_apply(struct meta *m, int64_t repo_id, const char *body)
{
    json_t *doc = json_loads(body, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return BERTH_EINVAL;
    }
    enum berth_err rc = BERTH_OK;
    const char *mu_name = json_string_value(json_object_get(doc, "imageTagMutability"));
    int mu = mu_name != NULL ? meta_mutability_parse(mu_name) : -1;
    if (mu > 0) {
        rc = meta_repo_set_mutability(m, repo_id, (enum meta_mutability)mu);
    }
    if (rc == BERTH_OK) {
        rc = set_member(m, repo_id, doc, "imageTagMutabilityExclusionFilters",
                        META_REPO_MUTABILITY_FILTERS);
    }
    if (rc == BERTH_OK) {
        rc = set_member(m, repo_id, doc, "repositoryPolicy", META_REPO_POLICY);
    }
    if (rc == BERTH_OK) {
        rc = set_member(m, repo_id, doc, "lifecyclePolicy", META_REPO_LIFECYCLE);
    }
    if (rc == BERTH_OK && json_object_get(doc, "lifecyclePolicy") != NULL) {
        /* a new policy: it waits lifecycle.new_policy_delay_seconds as a put one does */
        rc = meta_repo_set_lifecycle_set_at(m, repo_id, time_now_ms());
    }
    if (rc == BERTH_OK) {
        rc = set_member(m, repo_id, doc, "resourceTags", META_REPO_RESOURCE_TAGS);
    }
    if (rc == BERTH_OK) {
        rc = set_member(m, repo_id, doc, "encryptionConfiguration", META_REPO_ENCRYPTION);
    }
    json_decref(doc);
    return rc;
}
