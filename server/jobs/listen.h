/*
 * A thread listening on a PostgreSQL notification channel for a job
 * (replication copies, the shared vulnerability database): another
 * replica's announcement wakes this process's threads at once instead of
 * at their next poll. The loop owns its thread's connection; a lost one is
 * listened on again once it is back, and the job woken then for what was
 * announced meanwhile. Used only where meta_can_listen() is true.
 */
#ifndef BERTH_JOBS_LISTEN_H
#define BERTH_JOBS_LISTEN_H

#include <stdatomic.h>

struct store;

struct jobs_listener {
    struct store *st;
    const char *channel; /* META_CHANNEL_* */
    const char *what;    /* logs event=<what>_listening and <what>_listen_failed */
    const atomic_bool *stop;
    void *arg;
    /* a notification came, or a LISTEN took (what was announced before) */
    void (*wake)(void *arg);
    /* while not listening: about a second, or less when woken or stopped */
    void (*pause)(void *arg);
    /* optional: after the first attempt, whether it took or not */
    void (*first_tried)(void *arg);
};

/* Run until *stop is set (the caller then wakes pause's wait). */
void jobs_listen(const struct jobs_listener *l);

#endif
