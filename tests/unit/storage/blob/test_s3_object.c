/* The XML of storage/blob/s3_object.c: what berth sends escapes XML's five
 * special characters, what S3 answers is unescaped, from one table. */
#include "unit.h"

#include "storage/blob/s3_object.c"

static void test_escape_and_unescape(void)
{
    const char *key = "a&b<c>d\"e'f&amp;";
    struct buf b;
    buf_init(&b, 4096);
    CHECK_INT(buf_printf(&b, "<Key>"), BERTH_OK);
    CHECK_INT(xml_escaped(&b, key), BERTH_OK);
    CHECK_INT(buf_printf(&b, "</Key>"), BERTH_OK);
    CHECK_STR(b.data, "<Key>a&amp;b&lt;c&gt;d&quot;e&apos;f&amp;amp;</Key>");
    /* read back as S3 would send it: the key again */
    const char *from = b.data;
    char out[64];
    CHECK(xml_next(&from, "Key", out, sizeof(out)));
    CHECK_STR(out, key);
    CHECK_STR(from, "");
    CHECK(!xml_next(&from, "Key", out, sizeof(out)));
    /* an ampersand that starts no entity stays */
    from = "<Code>&amp &gt;</Code>";
    CHECK(xml_next(&from, "Code", out, sizeof(out)));
    CHECK_STR(out, "&amp >");
    buf_fini(&b);
}

int main(void)
{
    RUN(test_escape_and_unescape);
    return unit_report("test_s3_object");
}
