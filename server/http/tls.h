/*
 * Native TLS for the HTTP server, through libmicrohttpd's GnuTLS: the
 * certificate chain and key (reloadable), the client CA for mutual TLS,
 * the priority string (TLS 1.2 and 1.3, AEAD ciphers only), and the
 * per-connection transport the handshake callbacks use. Only server/http uses
 * it; GnuTLS is included by tls.c alone. The certificate callback and the
 * transport run on pool threads; tls_reload may run on any thread.
 */
#ifndef BERTH_HTTP_TLS_H
#define BERTH_HTTP_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/err.h"

struct tls;
struct tls_conn;

/* Longest access key id a client certificate maps to (AUTH_AKID_MAX), and
 * longest name a row of tls.client_principals matches. */
#define TLS_PRINCIPAL_MAX 128
#define TLS_NAME_MAX 255

/* The GnuTLS priority string: TLS 1.2 and 1.3, ECDHE key exchange, AEAD
 * ciphers (AES-GCM, ChaCha20-Poly1305), X25519 the first group, the
 * server's order. */
extern const char TLS_PRIORITIES[];

/* Whether cfg asks for TLS (tls.cert_file set). */
bool tls_configured(const struct berth_config *cfg);

/* Load tls.cert_file (PEM: the certificate, then any intermediates),
 * tls.key_file (PEM), tls.client_ca_file (PEM, optional) and
 * tls.client_principals (client certificate names to access key ids;
 * needs the client CA). On error a
 * one-line reason goes to err (cap bytes) and BERTH_EINVAL (unreadable or
 * invalid files, a key that does not match the certificate) or
 * BERTH_ENOMEM is returned. Free with tls_free. */
enum berth_err tls_new(const struct berth_config *cfg, struct tls **out, char *err, size_t cap);

/* Read the certificate and key files, and the client CA file, again, and
 * take principals (tls.client_principals as the configuration now says,
 * borrowed; NULL: none) as the new mapping; new handshakes use them, the
 * ones in progress finish with the old ones (kept until tls_free). All or
 * nothing: on failure what is in use stays and err says why (BERTH_EINVAL,
 * BERTH_ENOMEM). Thread-safe. */
enum berth_err tls_reload(struct tls *t, const json_t *principals, char *err, size_t cap);

/* What a probe of berth's own port saw (server/http/probe.c). */
enum tls_probe_result {
    TLS_PROBE_ANSWERED, /* an HTTP status line, or a TLS alert: the server is there */
    TLS_PROBE_CLOSED,   /* the connection was closed before any answer */
    TLS_PROBE_TIMEOUT,  /* nothing before the deadline */
    TLS_PROBE_ERROR,    /* a local failure (memory, GnuTLS) */
};

/* As a client on the connected, non-blocking socket fd (borrowed): a TLS
 * handshake (the server's certificate is not checked: the peer is this
 * process) and request, the text of an HTTP request, until deadline_ns
 * (monotonic). With mutual (the server requires client certificates,
 * which the probe has none of) it stops at the server's ServerHello, which
 * counts as an answer: a pool thread took the handshake. A fatal alert
 * from the server counts likewise. Thread-safe. */
enum tls_probe_result tls_probe(int fd, bool mutual, const char *request, int64_t deadline_ns);

/* Whether clients must present a certificate a client CA issued. */
bool tls_mutual(const struct tls *t);

/* The certificate callback to give libmicrohttpd
 * (MHD_OPTION_HTTPS_CERT_CALLBACK), as an untyped pointer. */
void *tls_cert_callback(void);

/* A connection was accepted: set up its transport, stored in *out, and turn
 * Nagle's algorithm off on fd (TCP_NODELAY). session is the connection's
 * gnutls_session_t, fd its socket. Returns false when out of memory: the caller must then refuse
 * the connection (the certificate callback needs the transport). */
bool tls_connection_start(struct tls *t, void *session, int fd, struct tls_conn **out);

/* A connection closed (its session may already be gone): free what
 * tls_connection_start set up and clear *c. NULL is fine. */
void tls_connection_end(struct tls_conn **c);

/* The access key id the connection's verified client certificate maps to
 * (tls.client_principals), or NULL (no mapping, no certificate, NULL c).
 * Set during the handshake, before any request. Borrowed for the
 * connection's life. */
const char *tls_connection_principal(const struct tls_conn *c);

void tls_free(struct tls *t);

#endif
