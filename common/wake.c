#include "common/wake.h"

#include <errno.h>
#include <time.h>

void wake_notify(struct wake *w)
{
    pthread_mutex_lock(&w->lock);
    w->generation++;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

uint64_t wake_generation(struct wake *w)
{
    pthread_mutex_lock(&w->lock);
    uint64_t g = w->generation;
    pthread_mutex_unlock(&w->lock);
    return g;
}

void wake_wait(struct wake *w, uint64_t *seen, int64_t timeout_ms, const atomic_bool *stop)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t)(timeout_ms / 1000);
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->lock);
    while (w->generation == *seen && !(stop != NULL && atomic_load(stop))) {
        if (pthread_cond_timedwait(&w->cond, &w->lock, &deadline) == ETIMEDOUT) {
            break;
        }
    }
    *seen = w->generation;
    pthread_mutex_unlock(&w->lock);
}
