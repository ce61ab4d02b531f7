/* common/wake.c: a notify before the wait is not lost, a waiter is woken by a notify from
 * another thread, by its stop flag, or by its timeout, and always learns the generation. */
#include "unit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/wake.h"

static struct wake w = WAKE_INIT;

static void test_notify_before_wait(void)
{
    uint64_t seen = wake_generation(&w);
    wake_notify(&w);
    /* a long timeout: returning at all shows the notify was not lost */
    wake_wait(&w, &seen, 600000, NULL);
    CHECK(seen == wake_generation(&w));
}

static void test_timeout(void)
{
    uint64_t seen = wake_generation(&w);
    uint64_t before = seen;
    wake_wait(&w, &seen, 20, NULL);
    CHECK(seen == before);
}

static void *notifier(void *arg)
{
    wake_notify(arg);
    return NULL;
}

static void test_notify_from_another_thread(void)
{
    uint64_t seen = wake_generation(&w);
    uint64_t before = seen;
    pthread_t t;
    CHECK_INT(pthread_create(&t, NULL, notifier, &w), 0);
    wake_wait(&w, &seen, 600000, NULL);
    pthread_join(t, NULL);
    CHECK(seen > before);
}

static atomic_bool stop_flag;

static void *stopper(void *arg)
{
    atomic_store(&stop_flag, true);
    wake_notify(arg); /* a stop is followed by a wake-up, as the jobs do */
    return NULL;
}

static void test_stop(void)
{
    atomic_store(&stop_flag, true);
    uint64_t seen = wake_generation(&w);
    uint64_t before = seen;
    wake_wait(&w, &seen, 600000, &stop_flag); /* set before: returns at once */
    CHECK(seen == before);
    atomic_store(&stop_flag, false);
    pthread_t t;
    CHECK_INT(pthread_create(&t, NULL, stopper, &w), 0);
    wake_wait(&w, &seen, 600000, &stop_flag);
    pthread_join(t, NULL);
    CHECK(atomic_load(&stop_flag));
}

int main(void)
{
    RUN(test_notify_before_wait);
    RUN(test_timeout);
    RUN(test_notify_from_another_thread);
    RUN(test_stop);
    return unit_report("test_wake");
}
