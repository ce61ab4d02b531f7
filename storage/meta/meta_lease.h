/*
 * Metadata: leases on background work (the leases table). Replicas of one
 * registry share its database; a job that must run once among them (a GC
 * pass, lifecycle enforcement, a scan job) is claimed by name for a holder
 * (an id that names one process) until an expiry time. The holder renews
 * its leases while it works; a holder that dies stops renewing, and once
 * the expiry passes anyone may claim the job again. A lease also records
 * when a holder last finished the job (done_at), so that replicas running
 * the same periodic job each interval run it once per interval between
 * them.
 *
 * Times are milliseconds since the Unix epoch from the callers' clocks:
 * replicas need clocks that agree to well within a lease's length (NTP).
 * Same rules as meta.h: one thread per struct meta, every call may block
 * on the database. Each call is its own write (do not call inside a
 * transaction unless said).
 */
#ifndef BERTH_META_LEASE_H
#define BERTH_META_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "storage/meta/meta.h"

/* Longest lease name and holder id, in bytes. */
#define META_LEASE_NAME_MAX 64
#define META_LEASE_HOLDER_MAX 64

struct meta_lease {
    char holder[META_LEASE_HOLDER_MAX + 1]; /* "" when nobody holds it */
    int64_t expires_at;                     /* 0 when released */
    int64_t done_at;                        /* last finish, 0 = never */
};

/*
 * Claim the lease name for holder until now + ttl_ms. It is granted when
 * nobody holds it (never claimed, released, or expired at now) or holder
 * holds it already (a renewal), and, when min_gap_ms > 0, the job was last
 * finished at least min_gap_ms before now. *claimed tells whether it was;
 * out (optional) receives the lease as it is after the call (who holds it
 * until when, when it was last done), so a caller that did not get it
 * knows when to try again. BERTH_EINVAL for an empty or too long name or
 * holder or ttl_ms < 1; BERTH_EDB.
 */
enum berth_err meta_lease_claim(struct meta *m, const char *name, const char *holder, int64_t now,
                                int64_t ttl_ms, int64_t min_gap_ms, bool *claimed,
                                struct meta_lease *out);

/* Extend every lease holder holds to now + ttl_ms (one statement; a lease
 * another holder took after it expired is no longer holder's and stays
 * as it is). *count (optional) receives how many. BERTH_EDB. */
enum berth_err meta_lease_renew_all(struct meta *m, const char *holder, int64_t now, int64_t ttl_ms,
                                    int64_t *count);

/* Give the lease back if holder still holds it; with done, record now as
 * the time the job was last finished. *released (optional) tells whether
 * holder held it. BERTH_EDB. */
enum berth_err meta_lease_release(struct meta *m, const char *name, const char *holder, bool done,
                                  int64_t now, bool *released);

/* Forget a lease whoever holds it (a scan job's, when the job ends). Also
 * inside a write transaction. BERTH_EDB. */
enum berth_err meta_lease_delete(struct meta *m, const char *name);

/* The lease name. BERTH_ENOTFOUND when it was never claimed. */
enum berth_err meta_lease_get(struct meta *m, const char *name, struct meta_lease *out);

#endif
