/*
 * The operations API: GET /healthz (the process answers), GET /readyz
 * (the store, the database and the disk are usable and the server is not
 * draining) and GET /metrics (Prometheus text format, see
 * server/metrics/metrics.h). The probes need no credentials; /metrics asks
 * for an access key when metrics.require_auth is set. Their access lines
 * are debug-level unless they fail. Handlers run on the request's pool
 * thread.
 */
#ifndef BERTH_OPS_H
#define BERTH_OPS_H

#include "server/http/http.h"

extern const struct http_api ops_api;

#endif
