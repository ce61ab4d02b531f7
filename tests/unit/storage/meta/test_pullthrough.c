/* Unit tests for storage/meta/pullthrough.c: pull-through cache rules (limit, duplicates,
 * pages), sealed upstream secrets (replaced in place), and the times cached tags were
 * checked (gone with their repository). Run on PostgreSQL too (label postgres). */
#include "unit.h"
#include "unit_meta.h"

#include <stdlib.h>
#include <string.h>

static char root[512];

static int count_rule(void *arg, const struct meta_prefix_doc *r)
{
    int *n = arg;
    (*n)++;
    CHECK(strstr(r->body, "upstreamRegistryUrl") != NULL);
    return 0;
}

static int count_secret(void *arg, const char *name, int64_t created_at, int64_t updated_at)
{
    int *n = arg;
    (*n)++;
    CHECK(strncmp(name, "ecr-pullthroughcache/", 21) == 0);
    CHECK(updated_at >= created_at);
    return 0;
}

static void test_rules(void)
{
    struct meta *m = unit_meta_new(root, sizeof(root));
    const char *body = "{\"upstreamRegistryUrl\":\"registry.example\"}";
    CHECK_INT(meta_ptc_rule_create(m, "hub", body, 1000, 2), BERTH_OK);
    CHECK_INT(meta_ptc_rule_create(m, "hub", body, 1000, 2), BERTH_EEXIST);
    CHECK_INT(meta_ptc_rule_create(m, "ROOT", body, 1000, 2), BERTH_OK);
    CHECK_INT(meta_ptc_rule_create(m, "third", body, 1000, 2), BERTH_ETOOBIG);
    int n = 0;
    bool more = false;
    CHECK_INT(meta_ptc_rule_list(m, "", 1, count_rule, &n, &more), BERTH_OK);
    CHECK_INT(n, 1);
    CHECK(more);
    n = 0;
    CHECK_INT(meta_ptc_rule_list(m, "ROOT", 10, count_rule, &n, &more), BERTH_OK);
    CHECK_INT(n, 1);
    CHECK(!more);
    CHECK_INT(meta_ptc_rule_update(m, "hub", "{\"upstreamRegistryUrl\":\"x\"}", 2000), BERTH_OK);
    CHECK_INT(meta_ptc_rule_update(m, "nope", body, 2000), BERTH_ENOTFOUND);
    n = 0;
    CHECK_INT(meta_ptc_rule_get(m, "hub", count_rule, &n), BERTH_OK);
    CHECK_INT(n, 1);
    CHECK_INT(meta_ptc_rule_delete(m, "hub"), BERTH_OK);
    CHECK_INT(meta_ptc_rule_delete(m, "hub"), BERTH_ENOTFOUND);
    CHECK_INT(meta_ptc_rule_get(m, "hub", count_rule, &n), BERTH_ENOTFOUND);
    unit_meta_remove(m, root);
}

static void test_secrets_and_checks(void)
{
    struct meta *m = unit_meta_new(root, sizeof(root));
    CHECK_INT(meta_upstream_secret_put(m, "ecr-pullthroughcache/a", "sealed-1", 1000), BERTH_OK);
    CHECK_INT(meta_upstream_secret_put(m, "ecr-pullthroughcache/a", "sealed-2", 2000), BERTH_OK);
    CHECK_INT(meta_upstream_secret_put(m, "ecr-pullthroughcache/b", "sealed-3", 2000), BERTH_OK);
    char *s = NULL;
    CHECK_INT(meta_upstream_secret_get(m, "ecr-pullthroughcache/a", &s), BERTH_OK);
    CHECK_STR(s, "sealed-2");
    free(s);
    CHECK_INT(meta_upstream_secret_get(m, "ecr-pullthroughcache/c", &s), BERTH_ENOTFOUND);
    int n = 0;
    CHECK_INT(meta_upstream_secret_list(m, count_secret, &n), BERTH_OK);
    CHECK_INT(n, 2);
    CHECK_INT(meta_upstream_secret_delete(m, "ecr-pullthroughcache/a"), BERTH_OK);
    CHECK_INT(meta_upstream_secret_delete(m, "ecr-pullthroughcache/a"), BERTH_ENOTFOUND);

    struct meta_repo r = unit_meta_repo(m, "hub/app", false);
    int64_t at = 0;
    CHECK_INT(meta_ptc_tag_checked(m, r.id, "v1", &at), BERTH_ENOTFOUND);
    CHECK_INT(meta_ptc_tag_check_set(m, r.id, "v1", 5000), BERTH_OK);
    CHECK_INT(meta_ptc_tag_check_set(m, r.id, "v1", 6000), BERTH_OK);
    CHECK_INT(meta_ptc_tag_checked(m, r.id, "v1", &at), BERTH_OK);
    CHECK_INT(at, 6000);
    CHECK_INT(meta_repo_delete(m, r.id), BERTH_OK);
    CHECK_INT(meta_ptc_tag_checked(m, r.id, "v1", &at), BERTH_ENOTFOUND);
    unit_meta_remove(m, root);
}

int main(void)
{
    RUN(test_rules);
    RUN(test_secrets_and_checks);
    return unit_report("test_pullthrough");
}
