/*
 * The replication job of `berth serve`: one thread per peer of
 * replication.peers that copies the images pushes queued for it
 * (storage/upstream/replicate.h), so that a peer that is down or slow
 * holds up only its own copies, and one more thread for the destinations
 * no peer is configured for (they fail at once). Each is woken by every
 * push that queues a copy (registry_repl_notify), when a retry of its own
 * is due, and at least every REPLICATION_POLL_MS for copies queued by
 * another process on the same database. Copies left queued by a stop or
 * a crash are picked up at start.
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

/* Stop and join the threads, then free (NULL is fine). A copy under way
 * gives up at its next manifest or blob and stays queued. */
void replication_job_stop(struct replication_job *j);

#endif
