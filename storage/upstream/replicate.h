/*
 * Replication's copies: the images a push queued (storage/registry's
 * replication.h) copied to the registry each destination (region,
 * registry id) is mapped to by replication.peers, over /v2 with the
 * upstream client (storage/upstream/client.h; credentials from berth
 * secrets). Per image: its referenced blobs that the destination lacks
 * (HEAD) are mounted or uploaded, the children of an index and the
 * subject of a referrer go first, the manifest last (by each tag the
 * image has, or by digest), then the referrers of a newly copied image.
 * A failure the destination may get over (unreachable, 5xx, 429) is
 * tried again later, the wait doubling from retry_initial_ms up to
 * retry_max_ms; when the copy has been failing so for failed_after_ms
 * since it was queued, it shows FAILED (PEER_UNAVAILABLE) but is still
 * tried at that pace, so that the destination's return completes it. A
 * failure the destination will not get over (no peer configured,
 * credentials refused, repository missing, image refused) marks the copy
 * FAILED for good (until the image is pushed again).
 * Called from the replication job's threads (one per peer); blocks on the
 * network, the disk and the database.
 */
#ifndef BERTH_UPSTREAM_REPLICATE_H
#define BERTH_UPSTREAM_REPLICATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/err.h"
#include "storage/meta/meta.h"
#include "storage/upstream/client.h"

struct store;

/* A destination's registry (one row of replication.peers). */
struct upstream_peer {
    char region[META_REPL_REGION_MAX + 1];
    char registry_id[META_REPL_REGISTRY_ID_MAX + 1];
    char url[UPSTREAM_URL_MAX];            /* normalized base URL */
    char secret[META_SECRET_NAME_MAX + 1]; /* berth secret name, "" for anonymous */
};

/* Parse replication.peers (NULL: no peers): an array of {"region",
 * "registry_id", "url", "secret" (optional: a name or ARN of berth
 * secrets)}, each destination once. *out is a new array (free()) of
 * *count peers. BERTH_EINVAL with a reason in err, BERTH_ENOMEM. */
enum berth_err upstream_peers_parse(json_t *peers, struct upstream_peer **out, size_t *count,
                                    char *err, size_t cap);

struct upstream_repl_options {
    const struct upstream_peer *peers;
    size_t peer_count;
    int64_t retry_initial_ms;  /* > 0 */
    int64_t retry_max_ms;      /* >= retry_initial_ms */
    int64_t timeout_ms;        /* per request (a blob: while stalled) */
    int64_t failed_after_ms;   /* a copy failing this long after it was queued is FAILED
                                * (META_REPL_RETRIED_CODE, still tried); 0: never */
    const atomic_bool *cancel; /* stop between copies (may be NULL) */
    /* the destinations this run takes (one peer's, or the others) */
    const struct meta_repl_filter *filter;
    /* "region/registry id" of this registry, sent to the peers as
     * UPSTREAM_REPLICATION_HEADER (a berth peer then creates a missing
     * repository with its REPLICATION creation template) */
    const char *source;
    /* several runs on one destination at once: each copy is claimed in
     * the queue for holder (meta_repl_claim) for claim_ms, renewed by the
     * caller (meta_repl_renew) while it lasts, given back after; NULL: one
     * run per destination, no claims (meta_repl_next) */
    const char *holder;
    int64_t claim_ms;
};

#define UPSTREAM_REPLICATION_HEADER "X-Berth-Replication-Source"

/* What a run did. */
struct upstream_repl_totals {
    int64_t complete;
    int64_t retrying;
    int64_t failed;
};

/* The wait before try number attempts + 1 of a copy that failed
 * attempts times (>= 1): retry_initial_ms doubled per earlier failure,
 * at most retry_max_ms. Pure. */
int64_t upstream_repl_backoff_ms(const struct upstream_repl_options *opt, int64_t attempts);

/* Copy every queued image of the destinations opt->filter takes that is
 * due, one at a time, recording each outcome in the queue, until none is
 * due (with opt->holder: none can be claimed) or cancel is set. A copy to be tried again defers the
 * destination's other due copies to the same time (one failing request per wait, not one per
 * image). *next_at gets the wall-clock time (ms) the next queued copy is due (0: none queued). A
 * database error stops the run and is returned. Runs for different filters may run at once
 * (threads), and, with opt->holder, runs for the same one. */
enum berth_err upstream_repl_run(struct store *st, const struct upstream_repl_options *opt,
                                 int64_t *next_at, struct upstream_repl_totals *totals);

#endif
