/*
 * The scan worker pool `berth serve` runs: scan.workers threads that take
 * jobs from the persistent queue (scan_run_next) and sleep on the queue's
 * wake-up (pushes in this process wake them at once; jobs queued by other
 * processes are found within a second). Started and stopped by one thread.
 */
#ifndef BERTH_SCAN_WORKERS_H
#define BERTH_SCAN_WORKERS_H

#include "common/config.h"
#include "common/err.h"

struct leases;
struct store;
struct scan_workers;

/*
 * Prepare the queue (claims left by a previous process are released, so
 * its unfinished jobs run again; with leases, replicas share the queue:
 * a claim is released only when its holder's lease expires, and this
 * process claims jobs under its own (leases.h); stale hook directories under
 * <root>/scan-tmp are removed) and start cfg->scan_workers threads (none
 * when 0: jobs then wait in the queue). cfg and st are borrowed and must
 * outlive the pool. *out may be NULL afterwards only on error.
 * BERTH_EUNAVAILABLE when this thread has no metadata connection (none can
 * be opened: retry later), BERTH_EDB when the queue cannot be read; BERTH_ENOMEM; BERTH_EIO when a
 * thread cannot be started (the ones started are stopped again).
 */
enum berth_err scan_workers_start(const struct berth_config *cfg, struct store *st,
                                  struct leases *leases, struct scan_workers **out);

/* Stop: running scans are cancelled (a hook is killed, the built-in
 * scanner stops at its next read) and their jobs go back to the queue for
 * the next start; then the threads are joined and the pool freed. NULL is
 * fine. Blocks until every worker has returned (normally well under a
 * second). */
void scan_workers_stop(struct scan_workers *w);

#endif
