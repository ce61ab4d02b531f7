/* Unit tests for server/http/accept.c's pure parts: what the first bytes
 * of a connection say, and which connections go to the upload lane. */
#include "unit.h"

#include <string.h>

#include "server/http/accept_int.h"

static bool upload(const char *s)
{
    return accept_upload((const unsigned char *)s, strlen(s));
}

static void test_screen(void)
{
    const char *get = "GET /v2/ HTTP/1.1\r\n";
    CHECK_INT(accept_screen((const unsigned char *)get, strlen(get)), ACCEPT_HTTP);
    const unsigned char hello[] = {0x16, 0x03, 0x01};
    CHECK_INT(accept_screen(hello, sizeof(hello)), ACCEPT_TLS);
    const char *junk = "\x01\x02 nonsense";
    CHECK_INT(accept_screen((const unsigned char *)junk, strlen(junk)), ACCEPT_GARBAGE);
}

static void test_upload(void)
{
    CHECK(upload("POST /v2/library/busybox/blobs/uploads/ HTTP/1.1\r\n"));
    CHECK(upload("POST /v2/a/blobs/uploads/?digest=sha256:00 HTTP/1.1\r\n"));
    CHECK(upload("PATCH /v2/a/b/blobs/uploads/0f2c HTTP/1.1\r\n"));
    CHECK(upload("PUT /v2/a/blobs/uploads/0f2c?digest=sha256:00 HTTP/1.1\r\n"));
    CHECK(upload("\r\nPUT /v2/a/blobs/uploads/0f2c HTTP/1.1\r\n")); /* an empty line first */
    CHECK(upload("HEAD /v2/a/blobs/sha256:00 HTTP/1.1\r\n"));
    CHECK(upload("POST /v2/a/blobs/uploads/")); /* the line's end not here yet */

    CHECK(!upload("GET /v2/a/blobs/sha256:00 HTTP/1.1\r\n")); /* a pull */
    CHECK(!upload("HEAD /v2/a/manifests/latest HTTP/1.1\r\n"));
    CHECK(!upload("PUT /v2/a/manifests/latest HTTP/1.1\r\n"));
    CHECK(!upload("GET /v2/ HTTP/1.1\r\n"));
    CHECK(!upload("POST / HTTP/1.1\r\n")); /* ECR's API */
    CHECK(!upload("POST /other/blobs/uploads/ HTTP/1.1\r\n"));
    CHECK(!upload("DELETE /v2/a/blobs/uploads/0f2c HTTP/1.1\r\n"));
    CHECK(!upload("POST /v2/a HTTP/1.1\r\nX: /blobs/uploads/\r\n")); /* only the target */
    CHECK(!upload("POST /v2/a/blobs/up"));                           /* not enough to tell */
    CHECK(!upload(""));
}

int main(void)
{
    RUN(test_screen);
    RUN(test_upload);
    return unit_report("test_accept");
}
