/*
 * The worker pool's bookkeeping (server/http/pool.c): berth runs
 * http.threads single-threaded libmicrohttpd daemons instead of one daemon
 * with an internal pool, because libmicrohttpd 0.9.75's pool puts a new
 * connection on the worker its socket's number picks (fd modulo the pool
 * size), however busy that worker is sending bodies; a HEAD landing there
 * waits for the worker's whole poll turn. Here the listener asks the pool
 * which worker takes each new connection: the one sending the fewest large
 * bodies, then the one with the fewest requests in progress (a worker
 * stuck in a slow step has one), then the fewest connections (idle
 * keep-alive ones cost a poll slot, little more). The pool also keeps
 * the limits libmicrohttpd kept across its pool and no longer can across
 * separate daemons: http.connection_limit in all and
 * http.per_client_connection_limit per client address.
 *
 * Threading: pool_take runs on the listener's thread; pool_release,
 * pool_request and pool_body on the workers' threads; the counts are atomic and the
 * per-address table has a mutex. Private to server/http.
 */
#ifndef BERTH_SERVER_HTTP_POOL_INT_H
#define BERTH_SERVER_HTTP_POOL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/err.h"

struct pool;

/* One worker's load, as pool_choose weighs it. */
struct pool_load {
    unsigned bodies;   /* large response bodies it is sending */
    unsigned requests; /* requests begun and not completed */
    unsigned conns;    /* connections it holds (handed over and not closed) */
};

/* What a worker's load weighs: each connection 1, each request in
 * progress POOL_REQUEST_WEIGHT more, each large body POOL_BODY_WEIGHT more
 * (a body is a request too). Connections count from the moment the
 * listener hands one over, so a burst of new connections spreads at
 * once; requests and bodies only once they run. Pure. */
#define POOL_REQUEST_WEIGHT 2
#define POOL_BODY_WEIGHT 8
uint64_t pool_score(const struct pool_load *l);

/* The worker a new connection should go to among count (> 0) loads: the
 * lowest pool_score; among equals the first at or after start (mod
 * count), so equal workers take turns. Pure. */
size_t pool_choose(const struct pool_load *loads, size_t count, size_t start);

/* A pool of count (> 0) workers; conn_limit connections in all (> 0),
 * per_addr_limit per client address (0: no cap). BERTH_ENOMEM. Free with
 * pool_free (NULL is fine). */
enum berth_err pool_new(size_t count, int64_t conn_limit, int64_t per_addr_limit,
                        struct pool **out);
void pool_free(struct pool *p);

enum pool_refusal {
    POOL_TAKEN,            /* *worker holds the connection's place */
    POOL_CONNECTION_LIMIT, /* conn_limit connections are open */
    POOL_CLIENT_LIMIT,     /* the address holds per_addr_limit */
};

/* Choose the worker for a new connection from addr and count it there
 * and against its address. Each POOL_TAKEN is paired with one
 * pool_release (addr of the same address): at the connection's close
 * notification, or at once when MHD_add_connection refuses it. (A
 * connection libmicrohttpd drops between the two, out of memory for its
 * pool, is never notified and stays counted.) Never blocks long (a
 * mutex). */
enum pool_refusal pool_take(struct pool *p, const struct sockaddr *addr, socklen_t addr_len,
                            size_t *worker);

/* The upload lane: workers [first, count) are daemons with a larger
 * per-connection buffer (http.upload_memory_limit_kib), for connections
 * whose first request starts or continues a blob upload, at most limit
 * of them at once. Called once, before any pool_take; without it (or
 * with first 0 or >= count, or limit <= 0) there is no lane and every
 * worker takes any connection. */
void pool_lane(struct pool *p, size_t first, int64_t limit);

/* pool_take, on the upload lane when upload is true and the lane has
 * room (else on the other workers), never on the lane when false. */
enum pool_refusal pool_take_for(struct pool *p, const struct sockaddr *addr, socklen_t addr_len,
                                bool upload, size_t *worker);

/* The connection pool_take placed on worker ended (or was never
 * started). */
void pool_release(struct pool *p, size_t worker, const struct sockaddr *addr, socklen_t addr_len);

/* A large body began (delta 1) or ended (-1) on worker. */
void pool_body(struct pool *p, size_t worker, int delta);

/* A request began (delta 1) or completed (-1) on worker. */
void pool_request(struct pool *p, size_t worker, int delta);

/* Connections counted in all. */
size_t pool_connections(const struct pool *p);

/* Connections on the upload lane. */
size_t pool_lane_connections(const struct pool *p);

/* Worker i's load now. */
struct pool_load pool_load_of(const struct pool *p, size_t i);

#endif
