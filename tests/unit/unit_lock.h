/*
 * A thread that holds a store's metadata write lock (an open write
 * transaction) until the test lets it go: for tests that show what a
 * writer does before it waits for the lock.
 *
 *     struct unit_lock_holder h;
 *     unit_lock_hold(&h, st);      // returns once the lock is held
 *     ... start the writer, look at what it did before the lock ...
 *     unit_lock_release(&h);       // rolls back, joins the thread
 */
#ifndef BERTH_UNIT_LOCK_H
#define BERTH_UNIT_LOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <unistd.h>

#include "unit.h"

#include "storage/meta/meta.h"
#include "storage/store/store.h"

struct unit_lock_holder {
    struct store *st;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int phase; /* 1: the lock is held; 2: let it go */
};

static inline void unit_lock_set_phase(struct unit_lock_holder *h, int phase)
{
    pthread_mutex_lock(&h->mu);
    h->phase = phase;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

static inline void unit_lock_wait_phase(struct unit_lock_holder *h, int phase)
{
    pthread_mutex_lock(&h->mu);
    while (h->phase != phase) {
        pthread_cond_wait(&h->cv, &h->mu);
    }
    pthread_mutex_unlock(&h->mu);
}

static inline void *unit_lock_holder_main(void *arg)
{
    struct unit_lock_holder *h = arg;
    struct meta *m = store_meta(h->st);
    CHECK_INT(meta_begin(m), BERTH_OK);
    unit_lock_set_phase(h, 1);
    unit_lock_wait_phase(h, 2);
    meta_rollback(m);
    return NULL;
}

/* Start a thread that takes st's write lock; returns once it holds it. */
static inline void unit_lock_hold(struct unit_lock_holder *h, struct store *st)
{
    *h = (struct unit_lock_holder){.st = st};
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    CHECK_INT(pthread_create(&h->thread, NULL, unit_lock_holder_main, h), 0);
    unit_lock_wait_phase(h, 1);
}

/* Let the lock go (the holder rolls back) and join the thread. */
static inline void unit_lock_release(struct unit_lock_holder *h)
{
    unit_lock_set_phase(h, 2);
    pthread_join(h->thread, NULL);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
}

/* Whether the file at path appears within about 10 s (polled; the
 * callers' writers show it within milliseconds when they are right, never
 * when they wait for the lock). */
static inline bool unit_file_appears(const char *path)
{
    for (int i = 0; i < 1000; i++) {
        if (access(path, F_OK) == 0) {
            return true;
        }
        usleep(10000);
    }
    return false;
}

#endif
