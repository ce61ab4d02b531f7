/* Unit tests for the pure helpers of the ECR image operations: ECR's
 * digest pattern. */
#include "unit.h"

#include "server/ecr/images.c"

static void test_digest_syntax(void)
{
    CHECK(ecr_digest_syntax_ok("sha256:0123456789abcdef"));
    CHECK(ecr_digest_syntax_ok("sha256:ABCDEF"));
    CHECK(ecr_digest_syntax_ok("a-b_c+d.e:0"));
    CHECK(!ecr_digest_syntax_ok("sha256"));
    CHECK(!ecr_digest_syntax_ok(":abc"));
    CHECK(!ecr_digest_syntax_ok("sha256:"));
    CHECK(!ecr_digest_syntax_ok("sha256:xyz"));
    CHECK(!ecr_digest_syntax_ok("sha 256:abc"));
    CHECK(!ecr_digest_syntax_ok("sha256:ab:cd"));
    CHECK(!ecr_digest_syntax_ok("sha256/x:ab"));
    CHECK(!ecr_digest_syntax_ok(""));
}

int main(void)
{
    RUN(test_digest_syntax);
    return unit_report("test_ecr_images");
}
