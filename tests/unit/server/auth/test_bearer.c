/* Unit tests for server/auth/bearer.c: scope parsing, canonical text, checks. */
#include "unit.h"

#include "server/auth/bearer.c"

static void format(const char *requested, char *out, size_t cap)
{
    struct bearer_scope s;
    memset(&s, 0, sizeof(s));
    bearer_scope_add(&s, requested, strlen(requested));
    bearer_scope_format(&s, out, cap);
}

static void test_parse_and_format(void)
{
    char out[1024];
    format("repository:team/app:pull,push", out, sizeof(out));
    CHECK_STR(out, "repository:team/app:pull,push");
    /* order of actions and repeats do not matter; a resource named twice merges */
    format("repository:aa:push,pull,pull repository:bb:delete repository:aa:delete", out,
           sizeof(out));
    CHECK_STR(out, "repository:aa:pull,push,delete repository:bb:delete");
    format("repository:aa:*", out, sizeof(out));
    CHECK_STR(out, "repository:aa:pull,push,delete");
    format("registry:catalog:*", out, sizeof(out));
    CHECK_STR(out, "registry:catalog:*");
    /* the deprecated class is ignored */
    format("repository(plugin):aa:pull", out, sizeof(out));
    CHECK_STR(out, "repository:aa:pull");
    /* dropped: unknown types, actions and registry names, bad names, a host name in
     * front, empty parts, a malformed class */
    format("bogus:aa:pull repository:aa:frob registry:other:* registry:catalog:pull "
           "repository:Upper:pull repository:host:5000/a:pull repository::pull "
           "repository:aa: repository:aa repository(x:aa:pull   ",
           out, sizeof(out));
    CHECK_STR(out, "");
    /* spaces around and between */
    format("  repository:aa:pull    repository:bb:pull ", out, sizeof(out));
    CHECK_STR(out, "repository:aa:pull repository:bb:pull");
    /* an entry that does not fit is left out, later ones still come */
    format("repository:aaaaaaaaaaaaaaaaaaaaaaaaa:pull repository:bb:pull", out, 30);
    CHECK_STR(out, "repository:bb:pull");
}

static void test_resource_limit(void)
{
    struct bearer_scope s;
    memset(&s, 0, sizeof(s));
    char one[64];
    for (int i = 0; i < BEARER_RESOURCES_MAX + 5; i++) {
        snprintf(one, sizeof(one), "repository:r%d:pull", i);
        bearer_scope_add(&s, one, strlen(one));
    }
    CHECK_INT(s.count, BEARER_RESOURCES_MAX);
    /* merging into a known resource still works at the limit */
    bearer_scope_add(&s, "repository:r0:push", strlen("repository:r0:push"));
    CHECK_INT(s.items[0].actions, BEARER_PULL | BEARER_PUSH);
}

static void test_allows(void)
{
    const char *g = "repository:team/a:pull,push repository:team/b:delete registry:catalog:*";
    CHECK(bearer_scope_allows(g, "team/a", BEARER_PULL));
    CHECK(bearer_scope_allows(g, "team/a", BEARER_PULL | BEARER_PUSH));
    CHECK(!bearer_scope_allows(g, "team/a", BEARER_DELETE));
    CHECK(bearer_scope_allows(g, "team/b", BEARER_DELETE));
    CHECK(!bearer_scope_allows(g, "team/b", BEARER_PULL));
    CHECK(!bearer_scope_allows(g, "team/c", BEARER_PULL));
    CHECK(!bearer_scope_allows(g, "team", BEARER_PULL));
    CHECK(bearer_scope_allows(g, NULL, BEARER_CATALOG));
    CHECK(!bearer_scope_allows("repository:aa:pull", NULL, BEARER_CATALOG));
    CHECK(bearer_scope_allows("", "team/a", 0));
    CHECK(!bearer_scope_allows("", "team/a", BEARER_PULL));
    /* entries for one repository add up */
    CHECK(bearer_scope_allows("repository:aa:pull repository:aa:push", "aa",
                              BEARER_PULL | BEARER_PUSH));
}

static void test_challenge_text_and_actions(void)
{
    char out[128];
    bearer_scope_text("team/a", BEARER_PULL | BEARER_PUSH, out, sizeof(out));
    CHECK_STR(out, "repository:team/a:pull,push");
    bearer_scope_text("team/a", BEARER_DELETE, out, sizeof(out));
    CHECK_STR(out, "repository:team/a:delete");
    bearer_scope_text("team/a", BEARER_PULL | BEARER_DELETE, out, sizeof(out));
    CHECK_STR(out, "repository:team/a:pull,delete");
    bearer_scope_text(NULL, BEARER_CATALOG, out, sizeof(out));
    CHECK_STR(out, "registry:catalog:*");
    size_t n;
    CHECK(bearer_ecr_actions(BEARER_PULL, &n) != NULL && n == 4);
    CHECK(bearer_ecr_actions(BEARER_PUSH, &n) != NULL && n == 4);
    CHECK(bearer_ecr_actions(BEARER_DELETE, &n) != NULL && n == 1);
    CHECK(bearer_ecr_actions(BEARER_CATALOG, &n) == NULL && n == 0);
}

int main(void)
{
    RUN(test_parse_and_format);
    RUN(test_resource_limit);
    RUN(test_allows);
    RUN(test_challenge_text_and_actions);
    return unit_report("test_bearer");
}
