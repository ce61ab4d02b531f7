/* Unit tests for storage/upstream/cache.c: which repositories a rule covers and the
 * upstream repository each stands for. */
#include "unit.h"

#include "storage/upstream/cache.h"

static void test_covers(void)
{
    char up[256];
    CHECK(upstream_rule_covers("hub", NULL, "hub/library/alpine", up, sizeof(up)));
    CHECK_STR(up, "library/alpine");
    CHECK(upstream_rule_covers("hub/", "", "hub/x", up, sizeof(up)));
    CHECK_STR(up, "x");
    CHECK(upstream_rule_covers("dmz/team", "mirror/", "dmz/team/tool", up, sizeof(up)));
    CHECK_STR(up, "mirror/tool");
    CHECK(upstream_rule_covers("ROOT", NULL, "any/name", up, sizeof(up)));
    CHECK_STR(up, "any/name");
    CHECK(upstream_rule_covers("ROOT", "ROOT", "any", up, sizeof(up)));
    CHECK_STR(up, "any");
    /* a namespace, not a string prefix */
    CHECK(!upstream_rule_covers("hub", NULL, "hub", up, sizeof(up)));
    CHECK(!upstream_rule_covers("hub", NULL, "hub/", up, sizeof(up)));
    CHECK(!upstream_rule_covers("hub", NULL, "hubble/x", up, sizeof(up)));
    CHECK(!upstream_rule_covers("hub", NULL, "other/hub/x", up, sizeof(up)));
    CHECK(!upstream_rule_covers("hub", NULL, "hub/long-name", up, 5)); /* does not fit */
}

int main(void)
{
    RUN(test_covers);
    return unit_report("test_cache");
}
