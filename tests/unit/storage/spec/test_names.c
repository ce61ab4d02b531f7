/* Unit tests for storage/spec/names.c: repository and tag grammars. */
#include "unit.h"

#include "storage/spec/names.h"

static void test_repo_names(void)
{
    const char *good[] = {"ab",         "library/ubuntu", "a0/b1/c2",  "foo.bar",    "foo_bar",
                          "foo__bar",   "foo-bar",        "foo---bar", "x/y.z-w__q", "123",
                          "team/app/v2"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        CHECK(names_repo_valid(good[i]));
    }
    const char *bad[] = {"",          "a",        "Foo",      "foo/",      "/foo", "foo//bar",
                         "..",        "foo/../x", "foo/./x",  "foo___bar", "-foo", "foo-",
                         "foo.",      ".foo",     "foo..bar", "foo._bar",  "a b",  "foo:bar",
                         "foo%2fbar", "_foo",     "foo/_x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(!names_repo_valid(bad[i]));
    }
    char longname[300];
    memset(longname, 'a', sizeof(longname));
    longname[256] = '\0'; /* ECR's longest */
    CHECK(names_repo_valid(longname));
    longname[256] = 'a';
    longname[257] = '\0';
    CHECK(!names_repo_valid(longname));
    CHECK(names_repo_valid_n("foo/barXX", 7));
}

static void test_tags(void)
{
    CHECK(names_tag_valid("latest"));
    CHECK(names_tag_valid("v1.0.0-rc1"));
    CHECK(names_tag_valid("_x"));
    CHECK(names_tag_valid("A.b_C-d"));
    CHECK(!names_tag_valid(""));
    CHECK(!names_tag_valid(".x"));
    CHECK(!names_tag_valid("-x"));
    CHECK(!names_tag_valid("a:b"));
    CHECK(!names_tag_valid("a/b"));
    CHECK(!names_tag_valid("sha256:abc"));
    char tag[200];
    memset(tag, 'a', sizeof(tag));
    tag[128] = '\0';
    CHECK(names_tag_valid(tag));
    tag[128] = 'a';
    tag[129] = '\0';
    CHECK(!names_tag_valid(tag));
}

int main(void)
{
    RUN(test_repo_names);
    RUN(test_tags);
    return unit_report("test_names");
}
