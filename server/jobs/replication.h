/*
 * The replication job of `berth serve`: one thread that copies the images
 * pushes queued for replication (storage/upstream/replicate.h) to the
 * peers of replication.peers, woken by each push that queues a copy
 * (registry_repl_notify) and when a retry is due, and at least every
 * REPLICATION_POLL_MS for copies queued by another process on the same
 * database. Copies left queued by a stop or a crash are picked up at
 * start.
 */
#ifndef BERTH_JOBS_REPLICATION_H
#define BERTH_JOBS_REPLICATION_H

#include "common/config.h"
#include "common/err.h"

struct replication_job;
struct store;

#define REPLICATION_POLL_MS 30000

/* Read replication.* from cfg and start the thread over st (borrowed; it
 * must outlive the job). BERTH_EINVAL with a reason in err (cap bytes) for
 * malformed peers, BERTH_ENOMEM, BERTH_EIO when the thread cannot start. */
enum berth_err replication_job_start(const struct berth_config *cfg, struct store *st,
                                     struct replication_job **out, char *err, size_t cap);

/* Stop and join the thread, then free (NULL is fine). A copy under way
 * gives up at its next manifest or blob and stays queued. */
void replication_job_stop(struct replication_job *j);

#endif
