/*
 * Leases on background work for replicas that share one metadata database
 * (meta.backend postgres): a job that must run once among them is claimed
 * by name (storage/meta/meta_lease.h) for this process's holder id, and a
 * keeper thread renews every lease the process holds a third of a lease's
 * length apart. A process that dies stops renewing, so its jobs are free
 * again one lease length later; a job whose lease another replica took
 * (this one stalled past the expiry) is told through its lost flag.
 *
 * Without a struct leases (NULL: one node on SQLite) every claim is
 * granted at once and nothing is written, as before leases existed.
 * Thread-safe: any thread may claim and release.
 */
#ifndef BERTH_JOBS_LEASES_H
#define BERTH_JOBS_LEASES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

struct leases;
struct store;

/* Jobs a process holds at once under leases_claim: GC, lifecycle and its
 * previews, the archive tier, signing, and a replication queue per peer
 * (at most REPLICATION_LEASED_MAX); scan jobs are claimed by the scan
 * queue itself and renewed with the rest. */
#define LEASES_HELD_MAX 64

/*
 * Start the keeper over the store (borrowed; it must outlive the leases)
 * with leases of ttl_ms (>= 1000). The holder id names this process
 * (host, pid and a random part). BERTH_EINVAL, BERTH_ENOMEM, BERTH_EIO
 * (no thread).
 */
enum berth_err leases_start(struct store *st, int64_t ttl_ms, struct leases **out);

/* Release what is held, stop and join the keeper, free (NULL is fine). */
void leases_stop(struct leases *l);

/* This process's holder id, and the lease length (for the scan queue);
 * NULL and 0 for l NULL. */
const char *leases_holder(const struct leases *l);
int64_t leases_ttl_ms(const struct leases *l);

/*
 * Claim the job name (<= 64 bytes) for this process: granted when nobody
 * holds it and, with min_gap_ms > 0, it was last finished at least that
 * long ago (by any replica). Granted, the keeper renews it until
 * leases_release and sets *lost (optional, must stay valid until then)
 * if another holder takes it. Refused, *retry_at_ms (wall clock) says when
 * it may be granted: the holder's expiry, or the last finish plus the
 * gap. A database failure is a refusal with a retry a second later. l
 * NULL: always granted.
 */
bool leases_claim(struct leases *l, const char *name, int64_t min_gap_ms, atomic_bool *lost,
                  int64_t *retry_at_ms);

/* Give a claimed job back; done records that it was finished now. */
void leases_release(struct leases *l, const char *name, bool done);

#endif
