/* Unit tests for server/http/accept.c's pure parts: what the first bytes
 * of a connection say, which connections go to the upload lane, and what
 * the listener answers itself in a first request's head. */
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

static unsigned head(const char *s, size_t limit)
{
    const char *message = NULL;
    unsigned status = accept_head_check((const unsigned char *)s, strlen(s), limit, &message);
    CHECK(status == 0 || (message != NULL && message[0] != '\0'));
    return status;
}

static void test_head_content_length(void)
{
    CHECK_INT(head("PUT /v2/a/manifests/x HTTP/1.1\r\nContent-Length: 13\r\n\r\n{", 1024), 0);
    CHECK_INT(head("PUT /x HTTP/1.1\r\ncontent-length:13\r\n\r\n", 1024), 0);
    CHECK_INT(head("PUT /x HTTP/1.1\r\nContent-Length: \t 013\r\n\r\n", 1024), 0);
    CHECK_INT(head("PUT /x HTTP/1.1\r\nContent-Length: 999999999999999999\r\n\r\n", 1024), 0);
    CHECK_INT(head("PUT /x HTTP/1.1\nContent-Length: 0\n\n", 1024), 0); /* bare LF */
    /* what libmicrohttpd 0.9.75 answers with its header block twice */
    CHECK_INT(head("PUT /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 1024), 400);
    CHECK_INT(head("PUT /x HTTP/1.1\r\nCONTENT-LENGTH: 1x\r\n\r\n", 1024), 400);
    CHECK_INT(head("PUT /x HTTP/1.1\r\nContent-Length: 13 \r\n\r\n", 1024), 400);
    CHECK_INT(head("PUT /x HTTP/1.1\r\nContent-Length:\r\n\r\n", 1024), 400);
    CHECK_INT(head("PUT /x HTTP/1.1\r\nContent-Length: +5\r\n\r\n", 1024), 400);
    CHECK_INT(head("PUT /x HTTP/1.1\r\nContent-Length: 9999999999999999999\r\n\r\n", 1024), 400);
    /* a line not complete yet is not judged; other names are not looked at */
    CHECK_INT(head("PUT /x HTTP/1.1\r\nContent-Length: 1", 1024), 0);
    CHECK_INT(head("PUT /x HTTP/1.1\r\nX-Content-Length: -1\r\n\r\n", 1024), 0);
    CHECK_INT(head("PUT /x HTTP/1.1\r\nContent-Length : 5\r\n\r\n", 1024), 0);
    /* the body is not the head */
    CHECK_INT(head("PUT /x HTTP/1.1\r\nContent-Length: 20\r\n\r\nContent-Length: -1\r\n", 1024), 0);
    /* the request line is not a header */
    CHECK_INT(head("GET /content-length:x HTTP/1.1\r\n\r\n", 1024), 0);
}

static void test_head_size(void)
{
    char big[200];
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /v2/ HTTP/1.1\r\nX: ", 22);
    big[sizeof(big) - 1] = '\0';
    /* the part seen is already over the limit, its end still to come */
    CHECK_INT(head(big, 100), 431);
    CHECK_INT(head(big, 300), 0);
    /* a whole head over the limit, and one at it */
    const char *whole = "GET /v2/ HTTP/1.1\r\nX: aaaaaaaaaa\r\n\r\n"; /* 36 bytes */
    CHECK_INT(head(whole, 35), 431);
    CHECK_INT(head(whole, 36), 0);
    /* a request line alone past it */
    CHECK_INT(head("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 20), 431);
    /* empty lines before the request do not count */
    CHECK_INT(head("\r\n\r\nGET / HTTP/1.1\r\n\r\n", 20), 0);
}

int main(void)
{
    RUN(test_screen);
    RUN(test_upload);
    RUN(test_head_content_length);
    RUN(test_head_size);
    return unit_report("test_accept");
}
