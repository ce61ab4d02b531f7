/* Unit tests for storage/upstream/client.c: upstream URLs and WWW-Authenticate challenges. */
#include "unit.h"

#include <string.h>

#include "storage/upstream/client.h"

static void test_url(void)
{
    char out[UPSTREAM_URL_MAX];
    CHECK(upstream_url_normalize("registry.example", out, sizeof(out)));
    CHECK_STR(out, "https://registry.example");
    CHECK(upstream_url_normalize("registry.example:5000/", out, sizeof(out)));
    CHECK_STR(out, "https://registry.example:5000");
    CHECK(upstream_url_normalize("http://127.0.0.1:8080", out, sizeof(out)));
    CHECK_STR(out, "http://127.0.0.1:8080");
    CHECK(upstream_url_normalize("https://[::1]:443/", out, sizeof(out)));
    CHECK_STR(out, "https://[::1]:443");
    CHECK(upstream_url_normalize("registry.example:65535", out, sizeof(out)));
    const char *bad[] = {
        "",         "http://",     "ftp://x", "https://x/path",   "host name",      "x:",
        "x:123456", "https://x?q", "[::1",    "http://user@host", "https://x:80/a", "x:99999",
        "x:65536",  "x:0"}; /* a port is 1 to 65535 */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(!upstream_url_normalize(bad[i], out, sizeof(out)));
    }
    CHECK(!upstream_url_normalize("https://registry.example", out, 10)); /* does not fit */
}

static void test_challenge(void)
{
    struct upstream_challenge ch;
    CHECK(upstream_challenge_parse("Basic realm=\"registry\"", &ch));
    CHECK_STR(ch.scheme, "Basic");
    CHECK(upstream_challenge_parse(
        "Bearer realm=\"https://auth.example/token\",service=\"registry.example\","
        "scope=\"repository:library/alpine:pull\"",
        &ch));
    CHECK_STR(ch.scheme, "Bearer");
    CHECK_STR(ch.realm, "https://auth.example/token");
    CHECK_STR(ch.service, "registry.example");
    CHECK_STR(ch.scope, "repository:library/alpine:pull");
    /* case, spaces, no scope, an unknown parameter, an escaped quote */
    CHECK(upstream_challenge_parse("bearer  Realm=\"http://127.0.0.1:9/t\", error=\"x\\\"y\", "
                                   "service=reg",
                                   &ch));
    CHECK_STR(ch.realm, "http://127.0.0.1:9/t");
    CHECK_STR(ch.service, "reg");
    CHECK_STR(ch.scope, "");
    /* what berth cannot answer */
    CHECK(!upstream_challenge_parse("Bearer service=\"x\"", &ch));           /* no realm */
    CHECK(!upstream_challenge_parse("Bearer realm=\"file:///etc/x\"", &ch)); /* not http(s) */
    CHECK(!upstream_challenge_parse("Negotiate abc", &ch));
    CHECK(!upstream_challenge_parse("", &ch));
}

int main(void)
{
    RUN(test_url);
    RUN(test_challenge);
    return unit_report("test_client");
}
