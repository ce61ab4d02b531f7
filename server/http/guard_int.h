/*
 * The connection guard: deadlines libmicrohttpd does not keep. A request
 * head (line and headers) must arrive within http.head_timeout_seconds of
 * the connection opening or of the previous request ending, and a request
 * body must keep an average of http.min_body_rate_bytes per second once
 * that long has passed; libmicrohttpd's own timeout is reset by every
 * byte, so a client trickling one byte at a time would hold its slot
 * forever. A watcher thread shuts down the socket of a connection past
 * its deadline; libmicrohttpd then sees the close and cleans up as for
 * any client that left. Private to server/http.
 *
 * Threading: guard_notify runs on libmicrohttpd's threads (it is the
 * daemon's connection-notify callback); the guard_* phase calls on the
 * connection's pool thread; the watcher on its own thread. A slot lives
 * from the connection's start to its close notification, which comes
 * before libmicrohttpd closes the socket, so the watcher never shuts
 * down a reused descriptor.
 */
#ifndef BERTH_SERVER_HTTP_GUARD_INT_H
#define BERTH_SERVER_HTTP_GUARD_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <microhttpd.h>

#include "common/config.h"
#include "common/err.h"

struct guard;
struct guard_slot;

/* Start the watcher. BERTH_OK, BERTH_ENOMEM or BERTH_EIO. */
enum berth_err guard_start(const struct berth_config *cfg, struct guard **out);

/* Stop the watcher and free the guard: after MHD_stop_daemon, when every
 * connection has been notified closed. NULL is ignored. */
void guard_stop(struct guard *g);

/* Called from the server's connection-notify callback (cls: the guard):
 * on start it stores the connection's slot in *socket_context (NULL when
 * out of memory), on close it frees it. */
void guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                  enum MHD_ConnectionNotificationCode code);

/* The connection's request head is complete; with has_body its body is
 * now awaited (the rate clock starts). NULL slots are ignored by all. */
void guard_head_done(struct guard_slot *s, bool has_body);
/* n more bytes of body arrived. */
void guard_body_bytes(struct guard_slot *s, size_t n);
/* The body is complete: the request is the server's to answer. */
void guard_handling(struct guard_slot *s);
/* The request ended: the head clock of the next one starts. */
void guard_idle(struct guard_slot *s);

#endif
