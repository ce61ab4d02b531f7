/* Unit tests for server/http/range.c: the six conformance Range cases and more. */
#include "unit.h"

#include "server/http/range.h"

static void expect(const char *h, uint64_t size, enum range_result want, uint64_t first,
                   uint64_t last)
{
    struct byte_range r = {0, 0};
    enum range_result got = range_parse(h, size, &r);
    CHECK_INT(got, want);
    if (got == RANGE_PARTIAL && want == RANGE_PARTIAL) {
        CHECK_INT(r.first, first);
        CHECK_INT(r.last, last);
    }
}

static void test_conformance_cases(void)
{
    expect("bytes=500-1499", 2048, RANGE_PARTIAL, 500, 1499);
    expect("bytes=500-", 2048, RANGE_PARTIAL, 500, 2047);
    expect("bytes=-500", 2048, RANGE_PARTIAL, 1548, 2047);
    expect("bytes=2000-5000", 2048, RANGE_PARTIAL, 2000, 2047);
    expect("bytes=500-0", 2048, RANGE_UNSATISFIABLE, 0, 0);
    expect("bytes=5000-10000", 2048, RANGE_UNSATISFIABLE, 0, 0);
}

static void test_edges(void)
{
    expect(NULL, 10, RANGE_NONE, 0, 0);
    expect("bytes=0-0", 10, RANGE_PARTIAL, 0, 0);
    expect("bytes=9-9", 10, RANGE_PARTIAL, 9, 9);
    expect("bytes=10-", 10, RANGE_UNSATISFIABLE, 0, 0);
    expect("bytes=-20", 10, RANGE_PARTIAL, 0, 9);
    expect("bytes=-0", 10, RANGE_UNSATISFIABLE, 0, 0);
    expect("bytes=0-", 0, RANGE_UNSATISFIABLE, 0, 0);
    expect("bytes=0-1,4-5", 10, RANGE_NONE, 0, 0);
    expect("items=0-1", 10, RANGE_NONE, 0, 0);
    expect("bytes=abc", 10, RANGE_NONE, 0, 0);
    expect("bytes=-", 10, RANGE_NONE, 0, 0);
    expect("bytes=1-2x", 10, RANGE_NONE, 0, 0);
    expect("bytes=99999999999999999999999-", 10, RANGE_NONE, 0, 0);
    expect("bytes=0-18446744073709551615", 10, RANGE_PARTIAL, 0, 9);
}

static void test_content_range(void)
{
    struct byte_range r;
    CHECK_INT(range_parse_content_range("0-1023", &r), BERTH_OK);
    CHECK_INT(r.first, 0);
    CHECK_INT(r.last, 1023);
    CHECK_INT(range_parse_content_range("10-10", &r), BERTH_OK);
    CHECK_INT(r.first, 10);
    CHECK_INT(range_parse_content_range("bytes 10-20/100", &r), BERTH_EINVAL);
    CHECK_INT(range_parse_content_range("bytes=10-20", &r), BERTH_EINVAL);
    CHECK_INT(range_parse_content_range("10-20/*", &r), BERTH_EINVAL);
    CHECK_INT(range_parse_content_range(" 10-20", &r), BERTH_EINVAL);
    CHECK_INT(range_parse_content_range("20-10", &r), BERTH_EINVAL);
    CHECK_INT(range_parse_content_range("10-", &r), BERTH_EINVAL);
    CHECK_INT(range_parse_content_range("-10", &r), BERTH_EINVAL);
    CHECK_INT(range_parse_content_range("a-b", &r), BERTH_EINVAL);
    CHECK_INT(range_parse_content_range("", &r), BERTH_EINVAL);
    /* a length of 2^64 would wrap to 0 */
    CHECK_INT(range_parse_content_range("0-18446744073709551615", &r), BERTH_EINVAL);
    CHECK_INT(range_parse_content_range("1-18446744073709551615", &r), BERTH_OK);
    CHECK_INT(r.last - r.first + 1, UINT64_MAX);
    CHECK_INT(range_parse_content_range("0-18446744073709551616", &r), BERTH_EINVAL);
}

static void test_if_range(void)
{
    const char *etag = "\"sha256:abc\"";
    CHECK(range_if_range_holds(NULL, etag));
    CHECK(range_if_range_holds("\"sha256:abc\"", etag));
    CHECK(range_if_range_holds(" \"sha256:abc\"\t", etag));
    CHECK(!range_if_range_holds("\"nope\"", etag));
    CHECK(!range_if_range_holds("W/\"sha256:abc\"", etag)); /* weak never matches strongly */
    CHECK(!range_if_range_holds("sha256:abc", etag));
    CHECK(!range_if_range_holds("\"sha256:abc\"x", etag));
    CHECK(!range_if_range_holds("\"sha256:ab\"", etag));
    CHECK(!range_if_range_holds("", etag));
    CHECK(!range_if_range_holds("Sun, 06 Nov 1994 08:49:37 GMT", etag)); /* no Last-Modified */
    CHECK(!range_if_range_holds("W/\"x\"", "W/\"x\""));
}

int main(void)
{
    RUN(test_conformance_cases);
    RUN(test_edges);
    RUN(test_content_range);
    RUN(test_if_range);
    return unit_report("test_range");
}
