/* Unit tests for server/oci/auth.c: the ECR actions each /v2 route needs
 * and the parsing of Basic credentials. Includes the .c to reach the
 * static parser. */
#include "unit.h"

#include "server/oci/auth.c"

#include "common/fileio.h"

static char root[600];

static void expect(enum oci_route route, const char *method, bool mono, bool body, const char *a0,
                   const char *a1, const char *a2, bool any)
{
    struct oci_need n;
    oci_auth_need(route, method, mono, body, &n);
    const char *want[3] = {a0, a1, a2};
    size_t count = (a0 != NULL) + (a1 != NULL) + (a2 != NULL);
    CHECK(!n.none && !n.login);
    CHECK_INT(n.count, count);
    for (size_t i = 0; i < count && i < n.count; i++) {
        CHECK_STR(n.actions[i], want[i]);
    }
    CHECK_INT(n.any, any);
}

static void test_need(void)
{
    expect(OCI_ROUTE_MANIFEST, "GET", false, false, "ecr:BatchGetImage", NULL, NULL, false);
    expect(OCI_ROUTE_MANIFEST, "HEAD", false, false, "ecr:BatchGetImage", NULL, NULL, false);
    expect(OCI_ROUTE_MANIFEST, "PUT", false, true, "ecr:PutImage", NULL, NULL, false);
    expect(OCI_ROUTE_MANIFEST, "DELETE", false, false, "ecr:BatchDeleteImage", NULL, NULL, false);
    expect(OCI_ROUTE_BLOB, "GET", false, false, "ecr:GetDownloadUrlForLayer", NULL, NULL, false);
    expect(OCI_ROUTE_BLOB, "HEAD", false, false, "ecr:BatchCheckLayerAvailability",
           "ecr:GetDownloadUrlForLayer", NULL, true);
    expect(OCI_ROUTE_BLOB, "DELETE", false, false, "ecr:BatchDeleteImage", NULL, NULL, false);
    expect(OCI_ROUTE_UPLOAD_START, "POST", false, false, "ecr:InitiateLayerUpload", NULL, NULL,
           false);
    expect(OCI_ROUTE_UPLOAD_START, "POST", true, true, "ecr:InitiateLayerUpload",
           "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", false);
    expect(OCI_ROUTE_UPLOAD, "PATCH", false, true, "ecr:UploadLayerPart", NULL, NULL, false);
    expect(OCI_ROUTE_UPLOAD, "GET", false, false, "ecr:UploadLayerPart", NULL, NULL, false);
    expect(OCI_ROUTE_UPLOAD, "DELETE", false, false, "ecr:UploadLayerPart", NULL, NULL, false);
    expect(OCI_ROUTE_UPLOAD, "PUT", false, false, "ecr:CompleteLayerUpload", NULL, NULL, false);
    expect(OCI_ROUTE_UPLOAD, "PUT", false, true, "ecr:CompleteLayerUpload", "ecr:UploadLayerPart",
           NULL, false);
    expect(OCI_ROUTE_TAGS, "GET", false, false, "ecr:ListImages", NULL, NULL, false);
    expect(OCI_ROUTE_REFERRERS, "GET", false, false, "ecr:BatchGetImage", NULL, NULL, false);

    struct oci_need n;
    oci_auth_need(OCI_ROUTE_BASE, "GET", false, false, &n);
    CHECK(n.login && n.count == 0);
    oci_auth_need(OCI_ROUTE_CATALOG, "GET", false, false, &n);
    CHECK(n.login && n.count == 0);
    oci_auth_need(OCI_ROUTE_MANIFEST, "POST", false, false, &n);
    CHECK(n.login && n.count == 0); /* answered 405, but only to a known caller */
    oci_auth_need(OCI_ROUTE_NONE, "GET", false, false, &n);
    CHECK(n.none);
    oci_auth_need(OCI_ROUTE_TOKEN, "POST", false, true, &n);
    CHECK(n.none); /* the token endpoint authenticates by itself */

    /* what a bearer token must grant */
    static const struct {
        enum oci_route route;
        const char *method;
        unsigned scope;
    } scopes[] = {
        {OCI_ROUTE_BASE, "GET", 0},
        {OCI_ROUTE_CATALOG, "GET", BEARER_CATALOG},
        {OCI_ROUTE_TAGS, "GET", BEARER_PULL},
        {OCI_ROUTE_REFERRERS, "GET", BEARER_PULL},
        {OCI_ROUTE_MANIFEST, "GET", BEARER_PULL},
        {OCI_ROUTE_MANIFEST, "HEAD", BEARER_PULL},
        {OCI_ROUTE_MANIFEST, "PUT", BEARER_PUSH},
        {OCI_ROUTE_MANIFEST, "DELETE", BEARER_DELETE},
        {OCI_ROUTE_BLOB, "GET", BEARER_PULL},
        {OCI_ROUTE_BLOB, "HEAD", BEARER_PULL},
        {OCI_ROUTE_BLOB, "DELETE", BEARER_DELETE},
        {OCI_ROUTE_UPLOAD_START, "POST", BEARER_PUSH},
        {OCI_ROUTE_UPLOAD, "PATCH", BEARER_PUSH},
        {OCI_ROUTE_UPLOAD, "PUT", BEARER_PUSH},
        {OCI_ROUTE_UPLOAD, "GET", BEARER_PUSH},
        {OCI_ROUTE_UPLOAD, "DELETE", BEARER_PUSH},
    };
    for (size_t i = 0; i < sizeof(scopes) / sizeof(scopes[0]); i++) {
        oci_auth_need(scopes[i].route, scopes[i].method, false, false, &n);
        CHECK_INT(n.scope, scopes[i].scope);
    }
    oci_auth_need(OCI_ROUTE_NAME_INVALID, "GET", false, false, &n);
    CHECK(n.none);
}

static void basic_of(const char *user_pass, char *out, size_t cap)
{
    CHECK(base64_encoded_size(strlen(user_pass)) <= cap);
    base64_encode((const uint8_t *)user_pass, strlen(user_pass), out);
}

static void test_basic(void)
{
    struct berth_config cfg;
    CHECK_INT(config_init(&cfg), BERTH_OK);
    struct store_options opt = {.root = root, .fsync = false, .manifest_max = 4 << 20};
    struct store *st = NULL;
    CHECK_INT(store_open(&opt, &st), BERTH_OK);
    struct auth *a = NULL;
    CHECK_INT(auth_new(&cfg, st, false, &a), BERTH_OK);
    if (a == NULL) {
        store_close(st);
        config_fini(&cfg);
        return;
    }
    char b64[AUTHTOKEN_BASIC_MAX_LEN + 64];
    struct cred c;

    /* key id and secret */
    memset(&c, 0, sizeof(c));
    basic_of("AKIAABCDEFGHIJKLMNOP:se:cret/with+colon", b64, sizeof(b64));
    parse_basic(a, b64, 1000, &c);
    CHECK_INT(c.kind, CRED_KEY);
    CHECK_STR(c.akid, "AKIAABCDEFGHIJKLMNOP");
    CHECK_STR(c.secret, "se:cret/with+colon");

    /* a login token, valid then expired */
    char token[AUTHTOKEN_MAX_LEN + 1], basic[AUTHTOKEN_BASIC_MAX_LEN + 1];
    CHECK_INT(auth_token_issue(a, AUTHTOKEN_LOGIN, "AKIAABCDEFGHIJKLMNOP", NULL, NULL, 1000, 100,
                               token, sizeof(token)),
              BERTH_OK);
    CHECK_INT(authtoken_basic_encode(token, basic, sizeof(basic)), BERTH_OK);
    memset(&c, 0, sizeof(c));
    parse_basic(a, basic, 1050, &c);
    CHECK_INT(c.kind, CRED_TOKEN);
    CHECK_STR(c.akid, "AKIAABCDEFGHIJKLMNOP");
    memset(&c, 0, sizeof(c));
    parse_basic(a, basic, 1100, &c);
    CHECK_INT(c.kind, CRED_EXPIRED);
    /* trailing blanks are tolerated */
    char padded[sizeof(basic) + 4];
    snprintf(padded, sizeof(padded), "%s  ", basic);
    memset(&c, 0, sizeof(c));
    parse_basic(a, padded, 1050, &c);
    CHECK_INT(c.kind, CRED_TOKEN);

    /* a download token is not a login */
    CHECK_INT(
        auth_token_issue(a, AUTHTOKEN_DOWNLOAD, "AKIAABCDEFGHIJKLMNOP", "team/app",
                         "sha256:0000000000000000000000000000000000000000000000000000000000000000",
                         1000, 100, token, sizeof(token)),
        BERTH_OK);
    CHECK_INT(authtoken_basic_encode(token, basic, sizeof(basic)), BERTH_OK);
    memset(&c, 0, sizeof(c));
    parse_basic(a, basic, 1050, &c);
    CHECK_INT(c.kind, CRED_INVALID);

    /* ":" is how containers/image says "no credentials" */
    memset(&c, 0, sizeof(c));
    basic_of(":", b64, sizeof(b64));
    parse_basic(a, b64, 1000, &c);
    CHECK_INT(c.kind, CRED_NONE);

    static const char *const bad[] = {
        "AWS:not-a-token", "no-colon-here", "short:secret", "AKIAABCDEFGHIJKLMNOP:", ":password",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&c, 0, sizeof(c));
        basic_of(bad[i], b64, sizeof(b64));
        parse_basic(a, b64, 1000, &c);
        if (i == 3) {
            CHECK_INT(c.kind, CRED_KEY); /* an empty secret is checked (and fails) later */
        } else {
            CHECK_INT(c.kind, CRED_INVALID);
        }
    }
    static const char *const malformed[] = {"", "!!!!", "abc", "YWJj\x01", "QUFBOkJCQg=x"};
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        memset(&c, 0, sizeof(c));
        parse_basic(a, malformed[i], 1000, &c);
        CHECK_INT(c.kind, CRED_INVALID);
    }
    /* over the limit */
    char big[BASIC_B64_MAX + 8];
    memset(big, 'A', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memset(&c, 0, sizeof(c));
    parse_basic(a, big, 1000, &c);
    CHECK_INT(c.kind, CRED_INVALID);
    /* a NUL inside the decoded credential */
    static const uint8_t with_nul[] = {'A', 'W', 'S', ':', 'x', 0, 'y'};
    base64_encode(with_nul, sizeof(with_nul), b64);
    memset(&c, 0, sizeof(c));
    parse_basic(a, b64, 1000, &c);
    CHECK_INT(c.kind, CRED_INVALID);

    auth_free(a);
    store_close(st);
    config_fini(&cfg);
}

int main(void)
{
    char parent[512];
    snprintf(parent, sizeof(parent), "%s", unit_tmpdir());
    snprintf(root, sizeof(root), "%s/data", parent);
    RUN(test_need);
    RUN(test_basic);
    file_remove_tree(parent);
    return unit_report("test_oci_auth");
}
