/* Repository creation templates as a registry rule: which prefix covers a
 * name, the longest one for a use, and the settings a template gives. */
#include "unit.h"
#include "unit_registry.h"

#include <stdlib.h>
#include <string.h>

#include "storage/registry/templates.h"
#include "storage/store/store.h"

static char root[UNIT_ROOT_MAX];

static void test_covers(void)
{
    CHECK(registry_template_covers("ROOT", "anything"));
    CHECK(registry_template_covers("ROOT", "a/b/c"));
    CHECK(registry_template_covers("prod", "prod/app"));
    CHECK(registry_template_covers("prod/", "prod/app"));
    CHECK(registry_template_covers("prod", "prod/team/app"));
    CHECK(!registry_template_covers("prod", "prod"));
    CHECK(!registry_template_covers("prod", "production/app"));
    CHECK(!registry_template_covers("prod/team", "prod/app"));
    CHECK(!registry_template_covers("/", "a"));
}

static void test_find_and_apply(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    struct meta *m = store_meta(st);
    CHECK_INT(
        meta_template_create(m, "ROOT", "{\"appliedFor\":[\"CREATE_ON_PUSH\"],\"x\":0}", 1, 50),
        BERTH_OK);
    CHECK_INT(
        meta_template_create(m, "prod", "{\"appliedFor\":[\"CREATE_ON_PUSH\"],\"x\":1}", 1, 50),
        BERTH_OK);
    CHECK_INT(
        meta_template_create(m, "prod/team", "{\"appliedFor\":[\"REPLICATION\"],\"x\":2}", 1, 50),
        BERTH_OK);
    CHECK_INT(meta_template_create(m, "prod/team/a",
                                   "{\"appliedFor\":[\"CREATE_ON_PUSH\"],"
                                   "\"imageTagMutability\":\"IMMUTABLE\","
                                   "\"repositoryPolicy\":\"{}\",\"resourceTags\":"
                                   "[{\"Key\":\"k\",\"Value\":\"v\"}],\"lifecyclePolicy\":\"\"}",
                                   1, 50),
              BERTH_OK);
    CHECK_INT(meta_template_create(m, "prod", "{}", 1, 50), BERTH_EEXIST);
    CHECK_INT(meta_template_create(m, "full", "{}", 1, 4), BERTH_ETOOBIG);

    char *body = NULL;
    /* the longest prefix listing the use wins; ROOT is the fallback */
    CHECK_INT(registry_template_find(m, "prod/team/a/x", "CREATE_ON_PUSH", &body), BERTH_OK);
    CHECK(body != NULL && strstr(body, "IMMUTABLE") != NULL);
    free(body);
    CHECK_INT(registry_template_find(m, "prod/team/b", "CREATE_ON_PUSH", &body), BERTH_OK);
    CHECK(body != NULL && strstr(body, "\"x\":1") != NULL);
    free(body);
    CHECK_INT(registry_template_find(m, "prod/team/b", "REPLICATION", &body), BERTH_OK);
    CHECK(body != NULL && strstr(body, "\"x\":2") != NULL);
    free(body);
    CHECK_INT(registry_template_find(m, "other", "CREATE_ON_PUSH", &body), BERTH_OK);
    CHECK(body != NULL && strstr(body, "\"x\":0") != NULL);
    free(body);
    CHECK_INT(registry_template_find(m, "other", "PULL_THROUGH_CACHE", &body), BERTH_OK);
    CHECK(body == NULL);

    /* applied to a new repository */
    struct meta_repo r;
    CHECK_INT(meta_repo_create(m, "prod/team/a/x", 1, &r), BERTH_OK);
    CHECK_INT(registry_template_find(m, "prod/team/a/x", "CREATE_ON_PUSH", &body), BERTH_OK);
    CHECK_INT(registry_template_apply(m, r.id, body), BERTH_OK);
    free(body);
    CHECK_INT(meta_repo_get(m, "prod/team/a/x", &r), BERTH_OK);
    CHECK_INT(r.mutability, META_IMMUTABLE);
    char *text = NULL;
    CHECK_INT(meta_repo_get_text(m, r.id, META_REPO_POLICY, &text), BERTH_OK);
    CHECK(text != NULL && strcmp(text, "{}") == 0);
    free(text);
    CHECK_INT(meta_repo_get_text(m, r.id, META_REPO_RESOURCE_TAGS, &text), BERTH_OK);
    CHECK(text != NULL && strcmp(text, "[{\"Key\":\"k\",\"Value\":\"v\"}]") == 0);
    free(text);
    /* an empty lifecycle policy sets none */
    CHECK_INT(meta_repo_get_text(m, r.id, META_REPO_LIFECYCLE, &text), BERTH_OK);
    CHECK(text == NULL);
    CHECK_INT(registry_template_apply(m, r.id, "not json"), BERTH_EINVAL);
    unit_store_remove(st, root);
}

int main(void)
{
    RUN(test_covers);
    RUN(test_find_and_apply);
    return unit_report("test_templates");
}
