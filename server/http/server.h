/*
 * The HTTP server: a libmicrohttpd daemon with an internal thread pool
 * (epoll) serving the OCI /v2 API (and, later, the ECR JSON API) over one
 * store. server_start and server_stop are called from one thread.
 */
#ifndef BERTH_SERVER_H
#define BERTH_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"
#include "common/err.h"

struct server;
struct store;

/* Start serving cfg->listen over the store. Both are borrowed and must
 * outlive the server. BERTH_EINVAL for an unusable listen address,
 * BERTH_EIO when the socket cannot be bound (reason logged). */
enum berth_err server_start(const struct berth_config *cfg, struct store *store,
                            struct server **out);

/* The bound TCP port (useful with port 0). */
uint16_t server_port(const struct server *srv);

/* Stop accepting, let in-flight requests finish for up to drain_ms, then
 * close every connection and free the server. */
void server_stop(struct server *srv, int64_t drain_ms);

/* True when every address the listen host resolves to is loopback. */
bool server_listen_is_loopback(const char *listen);

#endif
