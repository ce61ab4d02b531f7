/* Unit tests for storage/bundle/writer.c: the digest set a bundle writer
 * keeps of what it handled and of what a previous bundle holds. */
#include "unit.h"

#include <stdio.h>
#include <string.h>

#include "storage/bundle/bundle_int.h"

static void make(int i, char *out, size_t cap)
{
    snprintf(out, cap, "sha256:%064x", (unsigned)i * 2654435761u);
}

static void test_digest_set(void)
{
    struct digest_set s = {0};
    char d[DIGEST_STR_MAX];
    make(1, d, sizeof(d));
    CHECK(!digest_set_has(&s, d));   /* empty */
    for (int i = 0; i < 5000; i++) { /* grows well past its first size */
        make(i, d, sizeof(d));
        CHECK_INT(digest_set_add(&s, d), BERTH_OK);
        CHECK_INT(digest_set_add(&s, d), BERTH_OK); /* a second add changes nothing */
    }
    CHECK_INT((long long)s.count, 5000);
    for (int i = 0; i < 5000; i++) {
        make(i, d, sizeof(d));
        CHECK(digest_set_has(&s, d));
        make(i + 5000, d, sizeof(d));
        CHECK(!digest_set_has(&s, d));
    }
    CHECK_INT(digest_set_add(&s, ""), BERTH_EINVAL);
    digest_set_fini(&s);
    CHECK_INT((long long)s.count, 0);
    make(1, d, sizeof(d));
    CHECK(!digest_set_has(&s, d));
}

int main(void)
{
    RUN(test_digest_set);
    return unit_report("test_writer");
}
