/*
 * The replication job of `berth serve`: one thread per peer of
 * replication.peers that copies the images pushes queued for it
 * (storage/upstream/replicate.h), so that a peer that is down or slow
 * holds up only its own copies, and one more thread for the destinations
 * no peer is configured for (they fail at once). Each is woken by every
 * push that queues a copy (registry_repl_notify), when a retry of its own
 * is due, by a push through another replica on the same PostgreSQL
 * database (LISTEN/NOTIFY on META_CHANNEL_REPLICATION: a thread of the
 * job listens on a connection of its own), and at least every
 * replication.poll_seconds in case a wake-up was missed (the listening
 * connection lost). Copies left queued by a stop or a crash are picked up
 * at start.
 *
 * A pass over a peer's queue hands runs to replication.concurrency_per_peer
 * workers (one for the unmapped destinations), each claiming its copies
 * in the queue (meta_repl_claim: never one copy twice, a repository's
 * images one at a time so that a tag moved between two pushes ends where
 * the source has it); idle workers get another run when a push queues a
 * copy or a retry is due during the pass, and the pass renews its workers'
 * claims (the lease length on PostgreSQL, REPLICATION_CLAIM_MS on one
 * node, where the claims a killed process left are given back at start).
 *
 * Replicas on one database (leases, server/jobs/leases.h) claim each queue
 * under a lease, "replication:<region>/<registry id>" ("replication:*"
 * for the unmapped destinations), held while a pass copies: one replica
 * copies a peer's queue at a time, and a replica that dies mid-copy leaves
 * the queue to the others once its lease expires, its copies once their
 * claims expire (a copy it was making is made again: a destination takes
 * the same blobs and manifest twice without harm).
 */
#ifndef BERTH_JOBS_REPLICATION_H
#define BERTH_JOBS_REPLICATION_H

#include "common/config.h"
#include "common/err.h"

struct leases;
struct replication_job;
struct store;

/* A copy's claim in the queue on one node (SQLite; renewed while the copy
 * lasts); on PostgreSQL it is the lease length. */
#define REPLICATION_CLAIM_MS 60000

/* Queues (peers + 1) at most under leases: the keeper's table also holds
 * the other jobs' leases. */
#define REPLICATION_LEASED_MAX 48

/* Read replication.* from cfg and start the thread over st (borrowed; it
 * must outlive the job), claiming queues under leases (borrowed; NULL: one
 * node, no claims). BERTH_EINVAL with a reason in err (cap bytes) for
 * malformed peers or too many of them, BERTH_ENOMEM, BERTH_EIO when the
 * thread cannot start. */
enum berth_err replication_job_start(const struct berth_config *cfg, struct store *st,
                                     struct leases *leases, struct replication_job **out, char *err,
                                     size_t cap);

/* Stop and join the threads, then free (NULL is fine). A copy under way
 * gives up at its next manifest or blob and stays queued. */
void replication_job_stop(struct replication_job *j);

#endif
