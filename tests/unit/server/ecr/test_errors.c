/* Unit tests for the ECR API's error mapping in server/ecr/ecr.c: every
 * registry reason becomes the exception and status ECR clients expect.
 * Includes the .c to call it on a call with no connection behind it. */
#include "unit.h"

#include "server/ecr/ecr.c"

struct fixture {
    struct berth_config cfg;
    struct server srv;
    struct request req;
    struct ecr_call call;
};

static void fixture_init(struct fixture *fx, const char *body)
{
    memset(fx, 0, sizeof(*fx));
    fx->cfg.registry_id = (char *)"123456789012";
    fx->cfg.registry_region = (char *)"us-east-1";
    fx->srv.cfg = &fx->cfg;
    fx->req.srv = &fx->srv;
    fx->call.req = &fx->req;
    fx->call.op = "Test";
    fx->call.in = json_loads(body, 0, NULL);
}

static void fixture_fini(struct fixture *fx)
{
    json_decref(fx->call.in);
    json_decref(fx->call.extra);
}

/* ecr_fail_registry for reason with message, checking the answer. */
static void expect_reason(enum registry_reason reason, unsigned status, const char *type,
                          const char *message)
{
    struct fixture fx;
    fixture_init(&fx, "{\"repositoryName\":\"team/app\"}");
    struct registry_status s = {.reason = reason};
    snprintf(s.message, sizeof(s.message), "the registry's message");
    ecr_fail_registry(&fx.call, &s);
    CHECK(fx.call.failed);
    CHECK_INT(fx.call.status, status);
    CHECK_STR(fx.call.type, type);
    if (message != NULL) {
        CHECK_STR(fx.call.message, message);
    }
    fixture_fini(&fx);
}

static void test_fail_registry(void)
{
    expect_reason(REG_REPO_UNKNOWN, 400, "RepositoryNotFoundException",
                  "The repository with name 'team/app' does not exist in the registry with id "
                  "'123456789012'");
    expect_reason(REG_MANIFEST_UNKNOWN, 400, "ImageNotFoundException", "the registry's message");
    expect_reason(REG_TAG_DIGEST_MISMATCH, 400, "ImageNotFoundException", NULL);
    expect_reason(REG_UPLOAD_UNKNOWN, 400, "UploadNotFoundException", NULL);
    /* client conditions are 400s, never a ServerException */
    expect_reason(REG_UPLOAD_BUSY, 400, "InvalidLayerPartException", "the registry's message");
    expect_reason(REG_REFERENCED_BY_INDEX, 400, "InvalidParameterException",
                  "the registry's message");
    expect_reason(REG_TAG_IMMUTABLE, 400, "ImageTagAlreadyExistsException", NULL);
    /* an internal failure: the message goes to the log, not to the client */
    expect_reason(REG_INTERNAL, 500, "ServerException",
                  "The server encountered an internal error.");
}

/* One spelling of RepositoryNotFoundException, for any repository named
 * (from repositoryName, a resource ARN or a list). */
static void test_repo_not_found(void)
{
    struct fixture fx;
    fixture_init(&fx, "{}");
    CHECK(!ecr_repo_not_found(&fx.call, "from/arn"));
    CHECK_INT(fx.call.status, 400);
    CHECK_STR(fx.call.type, "RepositoryNotFoundException");
    CHECK_STR(fx.call.message, "The repository with name 'from/arn' does not exist in the "
                               "registry with id '123456789012'");
    fixture_fini(&fx);
}

int main(void)
{
    RUN(test_fail_registry);
    RUN(test_repo_not_found);
    return unit_report("test_ecr_errors");
}
