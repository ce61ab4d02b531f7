/*
 * Which destinations a push is replicated to, and the queue's wake-up.
 * The replication configuration (PutReplicationConfiguration, stored as
 * validated) has rules; a rule with no repositoryFilters covers every
 * repository, else those whose name starts with one of its PREFIX_MATCH
 * filters; a push to a covered repository is queued for each destination
 * of each covering rule, once per destination, in the push's own write
 * transaction (registry_manifest_put), so a stored image never misses its
 * copies. Deletions are not replicated. Thread-safe; calls block on the
 * database.
 */
#ifndef BERTH_REGISTRY_REPLICATION_H
#define BERTH_REGISTRY_REPLICATION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "storage/meta/meta.h"

/* Called once per destination (region, registry id) covering repo, in
 * the order of the rules; non-zero stops. */
typedef int (*registry_repl_dest_fn)(void *arg, const char *region, const char *registry_id);

/* The destinations of the configuration text config (the stored JSON;
 * NULL or unparsable: none) for repository repo, each once. Pure.
 * Returns how many were reported. */
size_t registry_repl_destinations(const char *config, const char *repo, registry_repl_dest_fn fn,
                                  void *arg);

/* Inside the caller's write transaction, after a push stored or re-tagged
 * manifest_id in repo: queue it for every destination that covers repo
 * (meta_repl_enqueue) and, when any was, announce it to the other
 * replicas at commit (meta_notify on META_CHANNEL_REPLICATION; their
 * workers listen, see server/jobs/replication.h). *queued tells whether
 * any was; after the commit, call registry_repl_notify() (this
 * process's workers). */
enum berth_err registry_repl_on_push(struct meta *m, const char *repo, int64_t manifest_id,
                                     int64_t now, bool *queued);

/* Wake the thread waiting in registry_repl_wait (a copy was queued). */
void registry_repl_notify(void);

/* The notification count, for registry_repl_wait; read it before looking
 * for work so that no wake-up is lost. */
uint64_t registry_repl_generation(void);

/* Wait until registry_repl_notify is called after *seen was read, *stop is
 * set (registry_repl_notify must follow setting it), or timeout_ms passes;
 * *seen gets the current count. */
void registry_repl_wait(uint64_t *seen, int64_t timeout_ms, const atomic_bool *stop);

#endif
