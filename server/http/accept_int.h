/*
 * The listener: berth accepts connections itself and looks at the first
 * bytes of each before libmicrohttpd sees it (MHD_add_connection), because
 * libmicrohttpd closes a connection whose request line it cannot parse
 * without a word, and waits in silence on a TLS ClientHello. A TLS record
 * (0x16 0x03) is answered "HTTP/1.0 400 Bad Request" and "Client sent an
 * HTTP request to an HTTPS server.", as Go's net/http does, so Go clients
 * that probe HTTPS first learn that the server speaks plain HTTP; any
 * other request line that cannot be HTTP is answered 400. On a TLS port
 * (tls.cert_file) it is the reverse: a TLS record goes to libmicrohttpd,
 * anything else gets a 400 in plain HTTP that says the port speaks HTTPS.
 * Each such answer has a request id and an access-log line. The first
 * request's head, as far as it is in, is also checked for what
 * libmicrohttpd would answer with a page of its own (accept_head_check):
 * those are answered here in the API's format (OCI error JSON on /v2, an
 * ECR `__type` error with X-Amz-Target). Private to server/http.
 *
 * Threading: one thread accepts and screens; a connection whose first
 * bytes are still to come waits in its poll set (at most
 * http.head_timeout_seconds).
 */
#ifndef BERTH_SERVER_HTTP_ACCEPT_INT_H
#define BERTH_SERVER_HTTP_ACCEPT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/err.h"

struct server;
struct acceptor;

/* Bind and listen on addr. BERTH_EIO (logged, with the reason) or
 * BERTH_ENOMEM. */
enum berth_err acceptor_listen(const struct sockaddr *addr, socklen_t len, struct acceptor **out);

/* The bound port. */
uint16_t acceptor_port(const struct acceptor *a);

/* Start accepting for srv (whose daemon is running). BERTH_OK or BERTH_EIO. */
enum berth_err acceptor_run(struct acceptor *a, struct server *srv);

/* Stop accepting: close the listening socket and the connections not yet
 * handed over, join the thread, free a. NULL is ignored. */
void acceptor_stop(struct acceptor *a);

/* What the first bytes of a connection say (pure; for tests). */
enum accept_verdict {
    ACCEPT_HTTP,    /* an HTTP request line, or a prefix of one */
    ACCEPT_TLS,     /* a TLS record */
    ACCEPT_GARBAGE, /* cannot be an HTTP request line */
};
enum accept_verdict accept_screen(const unsigned char *p, size_t n);

/* Whether the first request line of a connection (an ACCEPT_HTTP prefix)
 * belongs to a blob push, so the connection goes to the upload lane
 * (pool_lane): POST, PUT or PATCH of /v2/.../blobs/uploads/..., or a HEAD
 * of /v2/.../blobs/... (a client asking whether a layer is there before
 * pushing it). libmicrohttpd 0.9.75's per-connection buffer is one size
 * per daemon and fixed at the connection's start; pushes read their
 * bodies in pieces of half of it. Pure; for tests. */
bool accept_upload(const unsigned char *p, size_t n);

/* What the listener can tell from the part of a request head it has
 * (p[0..n), an ACCEPT_HTTP prefix) before libmicrohttpd 0.9.75 sees it,
 * whose own answers to these are HTML pages (a Content-Length it cannot
 * read: its header block twice; a head that fills the connection's
 * buffer: 431, or nothing at all when the head fits but the answer does
 * not): 0 when nothing is wrong (or not yet known), 400 with *message
 * for a Content-Length header that is not a number of at most 18 digits,
 * 431 for a head (whole, or the part seen) longer than limit bytes. Pure;
 * for tests. */
unsigned accept_head_check(const unsigned char *p, size_t n, size_t limit, const char **message);

#endif
