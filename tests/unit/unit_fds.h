/*
 * Descriptor exhaustion for unit tests: take every file descriptor the
 * process may open but `spare`, under a lowered soft RLIMIT_NOFILE (the
 * hard limit is left alone), so the next open fails with EMFILE as in a
 * server whose descriptor table is full; unit_fds_give_back closes them and
 * puts the limit back. Call both from one thread, the other threads idle
 * or knowing (the limit is the process's).
 */
#ifndef BERTH_UNIT_FDS_H
#define BERTH_UNIT_FDS_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <unistd.h>

static int unit_fds_taken[256];
static size_t unit_fds_count;
static struct rlimit unit_fds_saved;

static inline bool unit_fds_take(int spare)
{
    if (getrlimit(RLIMIT_NOFILE, &unit_fds_saved) != 0) {
        return false;
    }
    int probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (probe < 0) {
        return false;
    }
    struct rlimit low = unit_fds_saved;
    low.rlim_cur = (rlim_t)probe + 64; /* at most 64 more to take (and any holes below) */
    close(probe);
    if (low.rlim_cur > unit_fds_saved.rlim_cur || setrlimit(RLIMIT_NOFILE, &low) != 0) {
        return false;
    }
    unit_fds_count = 0;
    int fd;
    while (unit_fds_count < sizeof(unit_fds_taken) / sizeof(unit_fds_taken[0]) &&
           (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0) {
        unit_fds_taken[unit_fds_count++] = fd;
    }
    if (errno != EMFILE) {
        return false;
    }
    for (int i = 0; i < spare && unit_fds_count > 0; i++) {
        close(unit_fds_taken[--unit_fds_count]);
    }
    return true;
}

static inline void unit_fds_give_back(void)
{
    while (unit_fds_count > 0) {
        close(unit_fds_taken[--unit_fds_count]);
    }
    setrlimit(RLIMIT_NOFILE, &unit_fds_saved);
}

/* Run fn(arg) on a new thread while every descriptor is taken: the thread's
 * metadata connection (not open yet) cannot open, as a background job's in
 * a server out of descriptors. false when that could not be arranged. */
static inline bool unit_fds_run_starved(void *(*fn)(void *), void *arg)
{
    if (!unit_fds_take(0)) {
        unit_fds_give_back();
        return false;
    }
    pthread_t t;
    int started = pthread_create(&t, NULL, fn, arg);
    if (started == 0) {
        pthread_join(t, NULL);
    }
    unit_fds_give_back();
    return started == 0;
}

#endif
