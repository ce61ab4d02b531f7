/* Unit tests for server/http/tls.c: what each connection's handshake
 * costs (issue 11's TLS benchmark): no HelloRetryRequest round trip for
 * clients that offer an X25519 key share, and no Nagle stall. */
#include "unit.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "server/http/tls.h"

/* The priority string parses, and X25519 is the server's first group
 * (GnuTLS's own order puts P-256 first: every TLS 1.3 handshake from
 * curl, Python or Go then began with a HelloRetryRequest). */
static void test_priorities(void)
{
    gnutls_priority_t p;
    const char *where = NULL;
    CHECK_INT(gnutls_priority_init(&p, TLS_PRIORITIES, &where), 0);
    const unsigned int *groups = NULL;
    int n = gnutls_priority_group_list(p, &groups);
    CHECK(n >= 2);
    CHECK_INT((int)groups[0], GNUTLS_GROUP_X25519);
    CHECK_INT((int)groups[1], GNUTLS_GROUP_SECP256R1);
    const unsigned int *versions = NULL;
    n = gnutls_priority_protocol_list(p, &versions);
    CHECK_INT(n, 2); /* TLS 1.3 and 1.2 only */
    gnutls_priority_deinit(p);
}

/* A connection's socket has Nagle's algorithm off once its transport is
 * set up (the handshake flight went out 40 ms late otherwise). */
static void test_connection_nodelay(void)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(l >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    CHECK_INT(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    CHECK_INT(listen(l, 1), 0);
    CHECK_INT(getsockname(l, (struct sockaddr *)&a, &alen), 0);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_INT(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
    int fd = accept(l, NULL, NULL);
    CHECK(fd >= 0);
    int v = -1;
    socklen_t vlen = sizeof(v);
    CHECK_INT(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &vlen), 0);
    CHECK_INT(v, 0);

    gnutls_session_t s;
    CHECK_INT(gnutls_init(&s, GNUTLS_SERVER), 0);
    struct tls_conn *conn = NULL;
    CHECK(tls_connection_start(NULL, s, fd, &conn));
    CHECK(conn != NULL);
    vlen = sizeof(v);
    CHECK_INT(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &vlen), 0);
    CHECK(v != 0);
    tls_connection_end(&conn);
    CHECK(conn == NULL);
    gnutls_deinit(s);
    close(fd);
    close(c);
    close(l);
}

int main(void)
{
    RUN(test_priorities);
    RUN(test_connection_nodelay);
    return unit_report("test_tls");
}
