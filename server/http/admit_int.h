/*
 * Admission of large response bodies (server/http/admit.c): at most a
 * fixed number of them are being sent at once; requests beyond that wait,
 * their connections suspended, in arrival order, and are resumed one by
 * one as bodies finish. Each worker thread then has only so many writable
 * connections per poll turn, so small requests (HEAD, manifests, tokens)
 * are answered within a turn even under a pull storm. A watcher thread
 * takes the slot back from a body that makes little progress (a slow
 * reader), so slow clients cannot hold the queue. Thread-safe.
 */
#ifndef BERTH_SERVER_HTTP_ADMIT_INT_H
#define BERTH_SERVER_HTTP_ADMIT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct MHD_Connection;
struct admit;

/* Bodies smaller than this are sent at once, whatever the count. */
#define ADMIT_MIN_BYTES (256 * 1024)
/* A body holding a slot longer than ADMIT_GRACE_MS whose connection
 * acknowledged fewer than min_rate bytes per second (admit_start) over the
 * last ADMIT_WINDOW_MS gives its slot up (it goes on sending, uncounted). */
#define ADMIT_GRACE_MS 1000
#define ADMIT_WINDOW_MS 1000

enum admit_state {
    ADMIT_IDLE,    /* not counted: never entered, left, or its slot taken back */
    ADMIT_WAITING, /* queued, its connection suspended */
    ADMIT_HOLDING, /* holds a slot: send the body */
    ADMIT_REFUSED, /* was waiting when the server stopped: answer 503 */
};

/* One request's place (embedded or allocated by the caller, zeroed; the
 * fields are admit.c's). */
struct admit_entry {
    struct admit_entry *prev, *next;
    struct MHD_Connection *conn;
    int fd;
    enum admit_state state;
    int64_t since_ms;
    int64_t mark_ms;
    uint64_t mark_acked;
};

enum admit_result {
    ADMIT_GO,     /* a slot is held: send now */
    ADMIT_QUEUED, /* the connection is suspended; it is resumed once the
                   * entry is ADMIT_HOLDING or ADMIT_REFUSED */
    ADMIT_CLOSED, /* the server is stopping: answer 503 */
};

/* Start the admission of cap bodies at once (cap > 0) and its watcher
 * thread; min_rate is the slow-reader floor in bytes per second (0: slots
 * are never taken back). BERTH_ENOMEM, BERTH_EIO (no thread). */
enum berth_err admit_start(unsigned cap, uint64_t min_rate, struct admit **out);

/* Ask for a slot for the body conn (socket fd) is about to send. Must run
 * in libmicrohttpd's access callback for that connection (it may suspend
 * it). e must stay valid until admit_leave. */
enum admit_result admit_enter(struct admit *a, struct admit_entry *e, struct MHD_Connection *conn,
                              int fd);

/* e's state now. */
enum admit_state admit_state(struct admit *a, const struct admit_entry *e);

/* The request is done (completed or closed): its slot, if any, goes to the
 * next in line. Safe for an entry that never entered. */
void admit_leave(struct admit *a, struct admit_entry *e);

/* Refuse every waiting entry (ADMIT_REFUSED) and resume its connection, and
 * refuse every later admit_enter: before MHD_stop_daemon, which aborts the
 * process if a connection is still suspended. Returns how many were
 * waiting. */
size_t admit_close(struct admit *a);

/* Stop the watcher and free a (NULL is fine). After MHD_stop_daemon: no
 * entry may be left. */
void admit_stop(struct admit *a);

#endif
