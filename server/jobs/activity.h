/*
 * The activity sampler of `berth serve`: a thread that, every interval,
 * adds what this process's request counters (server/metrics) grew by to
 * the activity table (storage/meta/meta_activity.h), so that the console
 * charts the registry's activity beyond the process's start, summed over
 * the replicas. One small write transaction per interval at most (none
 * when nothing happened), and a last one when it stops.
 */
#ifndef BERTH_JOBS_ACTIVITY_H
#define BERTH_JOBS_ACTIVITY_H

#include <stdint.h>

#include "common/err.h"

struct activity_sampler;
struct store;

/* Start sampling every interval_ms (>= 1000) into the store (borrowed; it
 * must outlive the sampler). BERTH_EINVAL, BERTH_ENOMEM, BERTH_EIO. */
enum berth_err activity_sampler_start(struct store *st, int64_t interval_ms,
                                      struct activity_sampler **out);

/* Write what is left, stop and join the thread, free (NULL is fine). */
void activity_sampler_stop(struct activity_sampler *s);

#endif
