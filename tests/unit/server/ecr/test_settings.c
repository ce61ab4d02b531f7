/* Unit tests for the pure helpers of the ECR settings operations: the
 * repository ARN parser (ecr.c) and its field check. */
#include "unit.h"

#include "server/ecr/settings.c"

static bool parse(const char *arn, struct ecr_arn *out)
{
    return ecr_repo_arn_parse(arn, out);
}

static void test_repo_arn(void)
{
    struct ecr_arn a;
    const char *text = "arn:aws:ecr:us-east-1:123456789012:repository/team/app";
    CHECK(parse(text, &a));
    CHECK(ecr_span_is(a.partition, "aws"));
    CHECK(ecr_span_is(a.region, "us-east-1"));
    CHECK(ecr_span_is(a.account, "123456789012"));
    CHECK_STR(a.name, "team/app");
    CHECK(a.name == text + strlen(text) - strlen("team/app")); /* into the text, not a copy */
    /* the name is everything after repository/, colons included */
    CHECK(parse("arn:aws-cn:ecr:r:1:repository/a:b", &a));
    CHECK(ecr_span_is(a.partition, "aws-cn"));
    CHECK_STR(a.name, "a:b");
    CHECK(!parse("arn:aws:ecr:us-east-1:123456789012:repository/", &a));
    CHECK(!parse("arn:aws:ecr:us-east-1:123456789012:repo/x", &a));
    CHECK(!parse("arn:aws:s3:us-east-1:123456789012:repository/x", &a));
    CHECK(!parse("arn:aws:ecrx:us-east-1:123456789012:repository/x", &a));
    CHECK(!parse("arn:aws:ecr::123456789012:repository/x", &a));
    CHECK(!parse("arn:aws:ecr:us-east-1::repository/x", &a));
    CHECK(!parse("arn::ecr:us-east-1:1:repository/x", &a));
    CHECK(!parse("urn:aws:ecr:us-east-1:1:repository/x", &a));
    CHECK(!parse("arnx:aws:ecr:us-east-1:1:repository/x", &a));
    CHECK(!parse("arn:aws:ecr:us-east-1", &a));
    CHECK(!parse("", &a));
    CHECK(!parse("not an arn", &a));
}

static bool field_ok(const char *s)
{
    return arn_field_ok((struct ecr_span){s, strlen(s)});
}

static void test_arn_fields(void)
{
    CHECK(field_ok("aws"));
    CHECK(field_ok("us-east-1"));
    CHECK(field_ok("123456789012"));
    CHECK(!field_ok(""));
    CHECK(!field_ok("US-EAST-1"));
    CHECK(!field_ok("r\xc3\xa9gion"));
    CHECK(!field_ok("a b"));
    CHECK(ecr_span_is((struct ecr_span){"us-east-1x", 9}, "us-east-1"));
    CHECK(!ecr_span_is((struct ecr_span){"us-east-1", 9}, "us-east-10"));
}

int main(void)
{
    RUN(test_repo_arn);
    RUN(test_arn_fields);
    return unit_report("test_ecr_settings");
}
