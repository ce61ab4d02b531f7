/*
 * The liveness probe behind systemd's watchdog (server_probe in server.h):
 * one GET /healthz to the server's own listening address, as any client
 * would send it (through the listener, a pool thread, the ops API; over
 * TLS when the port is TLS). Runs on the caller's thread; blocks up to its
 * timeout.
 */
#include "server/http/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "common/timeutil.h"
#include "server/http/tls.h"

#include "pool_int.h"

static const char PROBE_REQUEST[] = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n"
                                    "User-Agent: berth-watchdog\r\nConnection: close\r\n\r\n";

/* Wait for events on fd until the deadline; false on timeout. */
static bool wait_fd(int fd, short events, int64_t deadline_ns)
{
    int64_t left_ms = (deadline_ns - time_mono_ns()) / 1000000;
    if (left_ms <= 0) {
        return false;
    }
    struct pollfd p = {.fd = fd, .events = events};
    int n;
    do {
        n = poll(&p, 1, (int)left_ms);
    } while (n < 0 && errno == EINTR);
    return n > 0;
}

/* The plain-HTTP exchange on a connected non-blocking socket. */
static enum tls_probe_result plain_probe(int fd, int64_t deadline_ns)
{
    size_t len = sizeof(PROBE_REQUEST) - 1, sent = 0;
    while (sent < len) {
        ssize_t n = send(fd, PROBE_REQUEST + sent, len - sent, MSG_NOSIGNAL);
        if (n >= 0) {
            sent += (size_t)n;
        } else if (errno != EAGAIN && errno != EINTR) {
            return TLS_PROBE_CLOSED;
        } else if (!wait_fd(fd, POLLOUT, deadline_ns)) {
            return TLS_PROBE_TIMEOUT;
        }
    }
    char head[12];
    size_t got = 0;
    while (got < sizeof(head)) { /* "HTTP/1.1 200" */
        ssize_t n = recv(fd, head + got, sizeof(head) - got, 0);
        if (n > 0) {
            got += (size_t)n;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            return TLS_PROBE_CLOSED;
        } else if (!wait_fd(fd, POLLIN, deadline_ns)) {
            return TLS_PROBE_TIMEOUT;
        }
    }
    return memcmp(head, "HTTP/1.", 7) == 0 ? TLS_PROBE_ANSWERED : TLS_PROBE_CLOSED;
}

/* The address to reach the server at: the listening one, or loopback for
 * a wildcard. */
static socklen_t probe_address(const struct server *srv, struct sockaddr_storage *out)
{
    *out = srv->probe_addr;
    if (out->ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)(void *)out;
        if (in->sin_addr.s_addr == htonl(INADDR_ANY)) {
            in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        }
        in->sin_port = htons(srv->port);
        return sizeof(*in);
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)out;
    if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr)) {
        in6->sin6_addr = in6addr_loopback;
    }
    in6->sin6_port = htons(srv->port);
    return sizeof(*in6);
}

/* Whether the workers hold as many connections as they may: then the
 * listener closes a new one at once, which is an answer of sorts. */
static bool at_connection_limit(const struct server *srv)
{
    return (int64_t)pool_connections(srv->pool) >= srv->cfg->http_connection_limit;
}

enum berth_err server_probe(struct server *srv, int timeout_ms, const char **why)
{
    int64_t deadline_ns = time_mono_ns() + (int64_t)timeout_ms * 1000000;
    struct sockaddr_storage addr;
    socklen_t addr_len = probe_address(srv, &addr);
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        *why = "socket";
        return BERTH_EIO;
    }
    enum tls_probe_result r = TLS_PROBE_CLOSED;
    if (connect(fd, (const struct sockaddr *)&addr, addr_len) != 0 && errno != EINPROGRESS) {
        r = TLS_PROBE_CLOSED;
    } else if (!wait_fd(fd, POLLOUT, deadline_ns)) {
        r = TLS_PROBE_TIMEOUT;
    } else {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
            r = TLS_PROBE_CLOSED;
        } else if (srv->tls != NULL) {
            r = tls_probe(fd, tls_mutual(srv->tls), PROBE_REQUEST, deadline_ns);
        } else {
            r = plain_probe(fd, deadline_ns);
        }
    }
    close(fd);
    switch (r) {
    case TLS_PROBE_ANSWERED:
        return BERTH_OK;
    case TLS_PROBE_CLOSED:
        if (at_connection_limit(srv)) {
            return BERTH_OK; /* busy, and it said so by closing at once */
        }
        *why = "closed";
        return BERTH_EIO;
    case TLS_PROBE_TIMEOUT:
        *why = "timeout";
        return BERTH_EIO;
    case TLS_PROBE_ERROR:
        break;
    }
    *why = "local_error";
    return BERTH_EIO;
}
