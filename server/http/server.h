/*
 * The HTTP server: http.threads single-threaded libmicrohttpd daemons, each
 * given new connections by berth's listener (the least busy first), serving the APIs it is given
 * (the OCI /v2 API and the ECR JSON API) over one store. server_start and server_stop are called
 * from one thread.
 */
#ifndef BERTH_SERVER_H
#define BERTH_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"
#include "common/err.h"

struct http_api;
struct jobs;
struct server;
struct store;

/* Start serving cfg->listen over the store. Each request goes to the first
 * of the api_count APIs whose accepts() takes it; requests none takes, and
 * failures before routing, are answered in the format of apis[0]. cfg,
 * store and the apis array are borrowed and must outlive the server.
 * BERTH_EINVAL for an unusable listen address or no API, BERTH_EIO when
 * the socket cannot be bound (reason logged). */
enum berth_err server_start(const struct berth_config *cfg, struct store *store,
                            const struct http_api *const *apis, size_t api_count,
                            struct server **out);

/* Let request handlers reach the background jobs (so PutLifecyclePolicy
 * can ask for a run soon); NULL detaches them. Call before serving starts
 * or while serving; the jobs must outlive the server or be detached
 * first. Thread-safe. */
void server_attach_jobs(struct server *srv, struct jobs *jobs);

/* Read the TLS certificate, key and client CA files again and take fresh
 * (the configuration as read again) for tls.client_principals (SIGHUP):
 * new handshakes use them, connections open stay as they are. Logs the
 * outcome. BERTH_OK; BERTH_ENOTFOUND without TLS; BERTH_EINVAL/BERTH_ENOMEM
 * when they cannot be used (all that is in use stays). Thread-safe. */
enum berth_err server_reload_tls(struct server *srv, const struct berth_config *fresh);

/* Whether the server answers, as a client sees it: one GET /healthz to
 * its own listening address (loopback for a wildcard), over TLS when it
 * serves TLS, within timeout_ms. BERTH_OK when an HTTP answer (or, under
 * mutual TLS, which the probe has no certificate for, the ServerHello)
 * came, or when libmicrohttpd closed the connection at once because it
 * holds http.connection_limit connections (busy, not stuck); BERTH_EIO
 * otherwise, with *why ("timeout", "closed", ...). Blocks up to
 * timeout_ms; thread-safe while the server runs (the systemd watchdog). */
enum berth_err server_probe(struct server *srv, int timeout_ms, const char **why);

/* The bound TCP port (useful with port 0). */
uint16_t server_port(const struct server *srv);

/* Stop accepting, let in-flight requests finish for up to drain_ms, then
 * close every connection and free the server. */
void server_stop(struct server *srv, int64_t drain_ms);

/* True when every address the listen host resolves to is loopback. */
bool server_listen_is_loopback(const char *listen);

#endif
