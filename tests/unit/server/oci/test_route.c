/* Unit tests for server/oci/route.c. */
#include "unit.h"

#include "server/oci/oci_route.h"

static void expect(const char *path, enum oci_route want, const char *name, const char *ref)
{
    char n[300] = "", r[300] = "";
    enum oci_route got = oci_route_parse(path, n, sizeof(n), r, sizeof(r));
    CHECK_INT(got, want);
    if (got == want && name != NULL) {
        CHECK_STR(n, name);
    }
    if (got == want && ref != NULL) {
        CHECK_STR(r, ref);
    }
}

static void test_routes(void)
{
    expect("/v2/", OCI_ROUTE_BASE, NULL, NULL);
    expect("/v2", OCI_ROUTE_BASE, NULL, NULL);
    expect("/v2/_catalog", OCI_ROUTE_CATALOG, NULL, NULL);
    expect("/v2/token", OCI_ROUTE_TOKEN, NULL, NULL);
    expect("/v2/token/", OCI_ROUTE_NONE, NULL, NULL);
    expect("/v2/token/manifests/v1", OCI_ROUTE_MANIFEST, "token", "v1");
    expect("/v2/foo/tags/list", OCI_ROUTE_TAGS, "foo", "");
    expect("/v2/a/b/c/tags/list", OCI_ROUTE_TAGS, "a/b/c", "");
    expect("/v2/foo/manifests/latest", OCI_ROUTE_MANIFEST, "foo", "latest");
    expect("/v2/foo/manifests/sha256:abc", OCI_ROUTE_MANIFEST, "foo", "sha256:abc");
    expect("/v2/foo/blobs/sha256:abc", OCI_ROUTE_BLOB, "foo", "sha256:abc");
    expect("/v2/foo/blobs/uploads/", OCI_ROUTE_UPLOAD_START, "foo", "");
    expect("/v2/foo/blobs/uploads", OCI_ROUTE_UPLOAD_START, "foo", "");
    expect("/v2/foo/blobs/uploads/1234", OCI_ROUTE_UPLOAD, "foo", "1234");
    expect("/v2/foo/referrers/sha256:abc", OCI_ROUTE_REFERRERS, "foo", "sha256:abc");
    /* names containing keyword-like segments */
    expect("/v2/blobs/blobs/sha256:x", OCI_ROUTE_BLOB, "blobs", "sha256:x");
    expect("/v2/a/manifests/b/manifests/t", OCI_ROUTE_MANIFEST, "a/manifests/b", "t");
    expect("/v2/a/tags/list/tags/list", OCI_ROUTE_TAGS, "a/tags/list", "");
}

static void test_invalid(void)
{
    expect("/v3/foo/tags/list", OCI_ROUTE_NONE, NULL, NULL);
    expect("/v2foo", OCI_ROUTE_NONE, NULL, NULL);
    expect("/v2/foo", OCI_ROUTE_NONE, NULL, NULL);
    expect("/v2/foo/manifests/", OCI_ROUTE_NONE, NULL, NULL);
    expect("/v2/foo/blobs/", OCI_ROUTE_NONE, NULL, NULL);
    expect("/v2/Foo/tags/list", OCI_ROUTE_NAME_INVALID, NULL, NULL);
    expect("/v2/foo/../bar/tags/list", OCI_ROUTE_NAME_INVALID, NULL, NULL);
    expect("/v2/foo//bar/tags/list", OCI_ROUTE_NAME_INVALID, NULL, NULL);
    expect("/v2//tags/list", OCI_ROUTE_NAME_INVALID, NULL, NULL);
    expect("/v2/tags/list", OCI_ROUTE_NONE, NULL, NULL);
    char longpath[400];
    memset(longpath, 'a', sizeof(longpath));
    memcpy(longpath, "/v2/", 4);
    memcpy(longpath + 304, "/tags/list", 11);
    expect(longpath, OCI_ROUTE_NAME_INVALID, NULL, NULL);
}

int main(void)
{
    RUN(test_routes);
    RUN(test_invalid);
    return unit_report("test_oci_route");
}
