/* Unit tests for storage/upstream/authfile.c: credentials from a docker config.json. */
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#include "storage/upstream/authfile.h"

static enum berth_err find(const char *text, const char *host, char **user, char **password)
{
    char why[256];
    return upstream_authfile_find(text, strlen(text), host, user, password, why, sizeof(why));
}

static void test_entries(void)
{
    /* "alice:s3:cret" and "bob:pw" */
    const char *text = "{\"auths\": {"
                       "\"registry.example:5000\": {\"auth\": \"YWxpY2U6czM6Y3JldA==\"},"
                       "\"https://index.docker.io/v1/\": {\"auth\": \"Ym9iOnB3\"},"
                       "\"http://127.0.0.1:8080/v2/\": {\"username\": \"u\", \"password\": \"p\"},"
                       "\"helped.example\": {},"
                       "\"bad.example\": {\"auth\": \"no base64!\"}},"
                       "\"credsStore\": \"desktop\"}";
    char *user = NULL;
    char *password = NULL;
    CHECK_INT(find(text, "registry.example:5000", &user, &password), BERTH_OK);
    CHECK_STR(user, "alice");
    CHECK_STR(password, "s3:cret"); /* the first colon splits */
    free(user);
    free(password);
    CHECK_INT(find(text, "docker.io", &user, &password), BERTH_OK);
    CHECK_STR(user, "bob");
    free(user);
    free(password);
    CHECK_INT(find(text, "127.0.0.1:8080", &user, &password), BERTH_OK);
    CHECK_STR(user, "u");
    CHECK_STR(password, "p");
    free(user);
    free(password);
    CHECK_INT(find(text, "registry.example", &user, &password), BERTH_ENOTFOUND); /* port */
    CHECK_INT(find(text, "helped.example", &user, &password), BERTH_ENOTFOUND);
    CHECK_INT(find(text, "bad.example", &user, &password), BERTH_EINVAL);
    CHECK(user == NULL && password == NULL);
    CHECK_INT(find("{}", "docker.io", &user, &password), BERTH_ENOTFOUND);
    CHECK_INT(find("[1, 2]", "docker.io", &user, &password), BERTH_EINVAL);
    CHECK_INT(find("{\"auths\": ", "docker.io", &user, &password), BERTH_EINVAL);
}

static void test_helpers(void)
{
    const char *text = "{\"auths\": {\"registry.example:5000\": {}},"
                       "\"credsStore\": \"desktop\","
                       "\"credHelpers\": {\"https://own.example\": \"ecr-login\","
                       "\"index.docker.io\": \"hub\", \"bad.example\": \"../evil\"}}";
    char helper[128];
    char server[512];
    char why[256];
#define HELPER(t, host)                                                                            \
    upstream_authfile_helper(t, strlen(t), host, helper, sizeof(helper), server, sizeof(server),   \
                             why, sizeof(why))
    /* credHelpers by registry first, then credsStore */
    CHECK_INT(HELPER(text, "own.example"), BERTH_OK);
    CHECK_STR(helper, "ecr-login");
    CHECK_STR(server, "own.example");
    CHECK_INT(HELPER(text, "registry.example:5000"), BERTH_OK);
    CHECK_STR(helper, "desktop");
    CHECK_STR(server, "registry.example:5000");
    /* Docker Hub's helper gets Hub's legacy URL, as docker gives it */
    CHECK_INT(HELPER(text, "docker.io"), BERTH_OK);
    CHECK_STR(helper, "hub");
    CHECK_STR(server, "https://index.docker.io/v1/");
    CHECK_INT(HELPER(text, "bad.example"), BERTH_EINVAL); /* never a path */
    CHECK_INT(HELPER("{\"auths\": {}}", "own.example"), BERTH_ENOTFOUND);
    CHECK_INT(HELPER("{\"credsStore\": \"\"}", "own.example"), BERTH_ENOTFOUND);
    CHECK_INT(HELPER("[", "own.example"), BERTH_EINVAL);
#undef HELPER
    char *user = NULL;
    char *password = NULL;
    const char *out = "{\"ServerURL\":\"own.example\",\"Username\":\"AWS\",\"Secret\":\"s3\"}";
    CHECK_INT(upstream_authfile_helper_output(out, strlen(out), &user, &password, why, sizeof(why)),
              BERTH_OK);
    CHECK_STR(user, "AWS");
    CHECK_STR(password, "s3");
    free(user);
    free(password);
    out = "{\"Username\":\"<token>\",\"Secret\":\"refresh\"}";
    CHECK_INT(upstream_authfile_helper_output(out, strlen(out), &user, &password, why, sizeof(why)),
              BERTH_EINVAL);
    CHECK(strstr(why, "identity token") != NULL);
    out = "credentials not found in native keychain";
    CHECK_INT(upstream_authfile_helper_output(out, strlen(out), &user, &password, why, sizeof(why)),
              BERTH_EINVAL);
    CHECK(user == NULL && password == NULL);
}

int main(void)
{
    RUN(test_helpers);
    RUN(test_entries);
    return unit_report("test_authfile");
}
