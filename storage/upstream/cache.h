/*
 * The pull-through cache: a repository under a pull-through cache rule's
 * ecrRepositoryPrefix (ECR's CreatePullThroughCacheRule; "ROOT" covers
 * every name) is a cache of the upstream repository named by the rest of
 * its name (after upstreamRepositoryPrefix, when the rule has one). A pull
 * of a manifest the store lacks fetches it from the upstream, verifies its
 * digest, creates the repository (with the creation template that applies
 * for PULL_THROUGH_CACHE) and stores it through the registry's rules
 * (what it references need not be there yet); a pull of a blob the store
 * lacks fetches it in a thread of its own into a stage while the request,
 * and any other that wants the same blob, reads it from the stage as it
 * lands; it is published once its digest matched. A cached tag is checked
 * again with the upstream (HEAD, comparing digests) once it is older than
 * the configured TTL; a digest once stored never goes upstream again. When
 * the upstream fails, what is stored is served and a line is logged. One
 * fetch per blob and per manifest runs at a time in the process; others
 * wanting the same wait for it, or read the same landing blob.
 *
 * upstream_configure runs once before any other call; the rest is
 * thread-safe and blocks on the network, disk and database.
 */
#ifndef BERTH_UPSTREAM_CACHE_H
#define BERTH_UPSTREAM_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "storage/meta/meta.h"
#include "storage/registry/registry.h"
#include "storage/spec/seal.h"
#include "storage/upstream/client.h"

struct store;

struct upstream_options {
    bool has_key; /* key opens the upstream secrets (else credentials fail) */
    uint8_t key[SEAL_KEY_LEN];
    int64_t tag_ttl_ms; /* a cached tag is checked upstream when older */
    int64_t timeout_ms; /* per upstream request (blobs: while stalled) */
    /* At most this many requests wait for an upstream at once (a worker
     * thread each: a manifest fetch, a blob's first answer, a HEAD of a
     * blob still landing); the others get BERTH_EBUSY (429) at once, and
     * a cached tag is served without asking again. 0: no bound. */
    int max_waiting;
};

/* Set the process's options (copied). Call before serving. */
void upstream_configure(const struct upstream_options *opt);

/* A rule as the cache uses it. */
struct upstream_rule {
    char prefix[META_PTC_PREFIX_MAX + 1];
    char url[UPSTREAM_URL_MAX];                    /* normalized base URL */
    char upstream_prefix[META_PTC_PREFIX_MAX + 1]; /* "" when none */
    char secret[META_SECRET_NAME_MAX + 1];         /* secret name, "" when none */
};

/* Whether the rule of ecrRepositoryPrefix prefix covers repository repo,
 * and if so the upstream repository into upstream (cap bytes). Pure. */
bool upstream_rule_covers(const char *prefix, const char *upstream_prefix, const char *repo,
                          char *upstream, size_t cap);

/* The rule whose prefix covers repo (the longest; ROOT last), with the
 * upstream repository name. *found false when none. A database error or
 * BERTH_ENOMEM. */
enum berth_err upstream_rule_for(struct meta *m, const char *repo, struct upstream_rule *rule,
                                 char *upstream, size_t cap, bool *found);

/* A client for rule's upstream with its credentials (opened with the
 * configured key). BERTH_ENOTFOUND when the secret is gone, BERTH_EINVAL
 * when it cannot be opened, BERTH_ENOMEM; err says why. */
enum berth_err upstream_rule_client(struct meta *m, const struct upstream_rule *rule,
                                    struct upstream_client **out, char *err, size_t cap);

/* A client for the registry at url (normalized) with the credentials of
 * berth secret secret ("" for none), opened with the configured key, each
 * request taking at most timeout_ms. Same returns as
 * upstream_rule_client. */
enum berth_err upstream_secret_client(struct meta *m, const char *url, const char *secret,
                                      int64_t timeout_ms, struct upstream_client **out, char *err,
                                      size_t cap);

/* Whether the caller may have the cache go to the upstream for it (ECR's
 * ecr:BatchImportUpstreamImage); on false it writes why into err. Called
 * only when a rule covers the repository and the upstream would be asked. */
typedef bool (*upstream_may_import_fn)(void *arg, char *err, size_t cap);

/* Who asks the cache (NULL: a background job, which may always import and
 * waits unbounded on a thread of its own). */
struct upstream_caller {
    upstream_may_import_fn may_import; /* NULL: always */
    /* A request on an HTTP worker thread: told when the thread starts
     * (true) and stops (false) waiting for an upstream. Such waits are
     * bounded (upstream_options.max_waiting); NULL: not one. */
    void (*waits)(void *arg, bool waiting);
    void *arg;
};

/* Make sure the manifest reference (tag or digest) of repo is in the store
 * as the cache rules want it (see above). BERTH_OK when the store has it
 * now, or still has it while the upstream failed; BERTH_ENOTFOUND when no
 * rule covers repo or neither the store nor the upstream has it;
 * otherwise the upstream's failure (BERTH_EIO, BERTH_EDENIED, BERTH_EBUSY,
 * BERTH_EDIGEST for content that does not match its digest) or a store
 * error, with a reason in err. caller's may_import is asked before
 * the upstream is: refused, a stored tag is served without revalidation
 * and a reference the store lacks is BERTH_EDENIED (its reason in err),
 * the upstream never asked. */
enum berth_err upstream_cache_manifest(struct store *st, const char *repo, const char *reference,
                                       const struct upstream_caller *caller, char *err, size_t cap);

/* A blob landing from the upstream, read while it lands. */
struct upstream_stream;

/* Blob d of repo, which the store lacks, when a rule covers repo: linked
 * from another repository when the store has it there (BERTH_OK with *out
 * NULL: serve it from the store), else fetched from the upstream in a
 * thread of its own, or joined when a fetch of it runs already: BERTH_OK
 * with *out once the upstream answered, *size its Content-Length (-1 when
 * unknown). BERTH_ENOTFOUND when no rule covers repo or the upstream has
 * no such blob; BERTH_EDENIED (nothing linked or fetched, the reason in
 * err) when caller's may_import refuses; the upstream's failure
 * otherwise (err says why). Release *out with upstream_stream_release. */
enum berth_err upstream_stream_blob(struct store *st, const char *repo, const struct digest *d,
                                    const struct upstream_caller *caller,
                                    struct upstream_stream **out, int64_t *size, char *err,
                                    size_t cap);

/* Called (from the fetch's thread) when a reader that was told to wait
 * may read again. It must not call back into the stream. */
typedef void (*upstream_wake_fn)(void *wake_arg);

#define UPSTREAM_READ_WAIT (-2)

/* Up to max bytes at pos once they have landed: how many, 0 at the end
 * (the whole blob landed and matched its digest), -1 when the fetch
 * failed. The last byte is given only once the blob is verified. With
 * wake NULL the call blocks until there are bytes; with wake, it returns
 * UPSTREAM_READ_WAIT instead and calls wake(wake_arg) once on the next
 * progress (or at the end). */
long long upstream_stream_read(struct upstream_stream *s, uint64_t pos, char *buf, size_t max,
                               upstream_wake_fn wake, void *wake_arg);

/* Wait until the fetch ended: BERTH_OK when the blob is published, or why
 * not (err). */
enum berth_err upstream_stream_wait(struct upstream_stream *s, const struct upstream_caller *caller,
                                    char *err, size_t cap);

/* At shutdown, before the store closes: fetches under way give up (their
 * stages removed, nothing published), waiting up to timeout_ms for them. */
void upstream_stop(int64_t timeout_ms);

/* Whether upstream_stop was called (fetches failing now are the stop's
 * doing, not the upstream's). */
bool upstream_stopping(void);

/* Drop a reference from upstream_stream_blob (NULL is fine). */
void upstream_stream_release(struct upstream_stream *s);

#endif
