/* Unit tests for storage/bundle/mirror.c: image references as docker reads them. */
#include "unit.h"

#include <stdio.h>
#include <string.h>

#include "storage/bundle/bundle.h"

static void test_refs(void)
{
    struct bundle_remote_ref r;
    char why[256];
    CHECK(bundle_remote_ref_parse("alpine", &r, why, sizeof(why)));
    CHECK_STR(r.host, "docker.io");
    CHECK_STR(r.repo, "library/alpine");
    CHECK_STR(r.reference, "latest");
    CHECK(!r.by_digest);
    CHECK(bundle_remote_ref_parse("team/app:1.4", &r, why, sizeof(why)));
    CHECK_STR(r.host, "docker.io");
    CHECK_STR(r.repo, "team/app");
    CHECK_STR(r.reference, "1.4");
    CHECK(bundle_remote_ref_parse("localhost:5000/a/b/c:v1", &r, why, sizeof(why)));
    CHECK_STR(r.host, "localhost:5000");
    CHECK_STR(r.repo, "a/b/c");
    CHECK_STR(r.reference, "v1");
    CHECK(bundle_remote_ref_parse("localhost/app", &r, why, sizeof(why)));
    CHECK_STR(r.host, "localhost");
    CHECK_STR(r.repo, "app");
    const char *d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    char text[256];
    snprintf(text, sizeof(text), "registry.example.com/team/app:1.4@%s", d);
    CHECK(bundle_remote_ref_parse(text, &r, why, sizeof(why)));
    CHECK_STR(r.host, "registry.example.com");
    CHECK_STR(r.repo, "team/app");
    CHECK_STR(r.reference, d); /* the digest wins over the tag */
    CHECK(r.by_digest);
    CHECK(!bundle_remote_ref_parse("", &r, why, sizeof(why)));
    CHECK(!bundle_remote_ref_parse("Team/App", &r, why, sizeof(why)));
    CHECK(strstr(why, "not a repository name") != NULL);
    CHECK(!bundle_remote_ref_parse("example.com/app@sha256:12", &r, why, sizeof(why)));
    CHECK(strstr(why, "not a digest") != NULL);
    CHECK(!bundle_remote_ref_parse("example.com/app:", &r, why, sizeof(why)));
    CHECK(!bundle_remote_ref_parse("example.com/", &r, why, sizeof(why)));
}

int main(void)
{
    RUN(test_refs);
    return unit_report("test_mirror");
}
