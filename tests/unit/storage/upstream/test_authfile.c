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

int main(void)
{
    RUN(test_entries);
    return unit_report("test_authfile");
}
