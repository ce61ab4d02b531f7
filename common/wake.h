/*
 * A wake-up call for a background job (scans, replication, signing, the archive tier):
 * whoever queues work calls wake_notify, which moves a generation number on and wakes
 * every waiter; the job sleeps in wake_wait until the generation has moved past the one
 * it last saw, its stop flag is set, or the timeout passes. Nothing is lost between a
 * job's last look at its queue and its wait: the generation it saw before looking is what
 * it waits on. Thread-safe.
 */
#ifndef BERTH_WAKE_H
#define BERTH_WAKE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

struct wake {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t generation;
};

#define WAKE_INIT                                                                                  \
    {                                                                                              \
        PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0                                     \
    }

/* Move the generation on and wake every waiter. */
void wake_notify(struct wake *w);

/* The generation now: a job reads it before looking at its queue. */
uint64_t wake_generation(struct wake *w);

/* Sleep until the generation differs from *seen, *stop (when not NULL) is
 * set, or timeout_ms passes; *seen becomes the generation then. */
void wake_wait(struct wake *w, uint64_t *seen, int64_t timeout_ms, const atomic_bool *stop);

#endif
