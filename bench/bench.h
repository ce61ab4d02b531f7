/*
 * berth-bench internals: the workload table, the per-run context, the
 * random blob stream, statistics and the libcurl request engine. The tool
 * is single-threaded (one curl multi handle drives every client); only the
 * loopback measurement starts a second thread.
 */
#ifndef BERTH_BENCH_H
#define BERTH_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "storage/spec/digest.h"
#include "common/err.h"

#define BENCH_MIB (1024ULL * 1024ULL)

/* Limits on what the command line accepts. */
#define BENCH_MAX_CONCURRENCY 1024
#define BENCH_MAX_REQUESTS 1000000
#define BENCH_URL_MAX 1024      /* registry base URL */
#define BENCH_REQ_URL_MAX 8192  /* one request URL (Location + query) */
#define BENCH_LOCATION_MAX 6144 /* a Location header value */
#define BENCH_REPO_MAX 200      /* repository names we generate */
#define BENCH_PREFIX_MAX 64     /* --repo-prefix */
#define BENCH_AUTH_MAX 512      /* an Authorization header line */
#define BENCH_TIMEOUT_MAX 3600  /* --timeout seconds */
#define BENCH_CATALOG_REPOS_MAX 10000

/* Bytes of a response body kept for checks and error messages. */
#define BENCH_ERROR_BODY_MAX 512
/* Receive and send buffer given to libcurl (and used by --loopback). */
#define BENCH_IO_BUFFER (256 * 1024)
/* libcurl's receive buffer. Reading a large blob 256 KiB at a time costs
 * a wake-up per piece and capped one loopback stream near 2 GB/s for any
 * server; 4 MiB pieces let the client keep up with the servers (libcurl
 * 7.88 allows up to 10 MiB). Memory: c x 4 MiB. */
#define BENCH_RECV_BUFFER (4 * 1024 * 1024)
/* Socket buffers the client asks for (SO_RCVBUF/SO_SNDBUF; the kernel caps
 * them at net.core.[rw]mem_max). With the kernel's autotuned receive
 * buffer a single loopback stream stalls at ~1.6 GB/s whatever the
 * server does, which would hide the servers' difference on large pulls;
 * the loopback limit is measured with the same setting. */
#define BENCH_SOCK_BUFFER (4 * 1024 * 1024)

/* Apply BENCH_SOCK_BUFFER to a TCP socket (best effort). */
void bench_sock_buffers(int fd);

/* Number of tags the tags-list workload lists (and pushes in setup). */
#define BENCH_TAG_COUNT 1000
/* Layer size of the small images pushed by setups. */
#define BENCH_SMALL_LAYER 1024

enum bench_kind {
    BENCH_KIND_PUSH_MONO,     /* POST + PUT with body, config, manifest */
    BENCH_KIND_PUSH_STREAMED, /* POST + PATCH (no Content-Range) + PUT, config, manifest */
    BENCH_KIND_PULL,          /* HEAD + GET manifest, GET config, GET layer */
    BENCH_KIND_MIX,           /* 75% pull, 25% monolithic push */
    BENCH_KIND_HEAD,          /* HEAD manifest */
    BENCH_KIND_TAGS,          /* GET tags/list of a repository with 1,000 tags */
    BENCH_KIND_CATALOG,       /* GET /v2/_catalog */
    BENCH_KIND_TAG_PUT,       /* setup only: PUT an existing manifest under another tag */
};

struct bench_workload {
    const char *name; /* stable: the scripts and the JSON use it */
    enum bench_kind kind;
    uint64_t layer_size; /* bytes; 0 where no layer is involved */
    const char *summary;
};

/* The workload table, in the order `-w all` runs them. */
extern const struct bench_workload bench_workloads[];
extern const size_t bench_workload_count;

/* Look a workload up by name; NULL if unknown. */
const struct bench_workload *bench_workload_find(const char *name);

/* Whether operation `index` of mix-10m is a push (else a pull): one in
 * every four consecutive operations, the same on every run. Pure. */
bool bench_mix_is_push(size_t index);

/* ---- random blob contents (bench_data.c) ---- */

/* Fill buf with len bytes of the stream identified by seed, starting at
 * byte offset. The stream is counter-based (splitmix64 of the word index),
 * so any offset can be produced directly: uploads can be rewound, and the
 * same bytes come out however the stream is cut into pieces. Incompressible
 * and distinct for distinct seeds. Pure; thread-safe. */
void bench_data_fill(uint64_t seed, uint64_t offset, void *buf, size_t len);

/* SHA-256 of the first size bytes of stream seed into out. BERTH_ENOMEM. */
enum berth_err bench_data_digest(uint64_t seed, uint64_t size, struct digest *out);

/* A well-mixed 64-bit value of x (splitmix64 finaliser). */
uint64_t bench_mix64(uint64_t x);

/* ---- statistics (bench_stats.c) ---- */

enum bench_fail {
    BENCH_FAIL_STATUS,    /* unexpected HTTP status: counted under its code */
    BENCH_FAIL_TRANSPORT, /* connection or timeout: no HTTP status */
    BENCH_FAIL_CHECK,     /* right status, wrong size, digest or header */
};

#define BENCH_STATUS_SLOTS 600

struct bench_stats {
    uint64_t ops_ok;
    uint64_t ops_failed;
    uint64_t http_requests;
    uint64_t bytes_up;                   /* request body bytes sent */
    uint64_t bytes_down;                 /* response body bytes received */
    int64_t elapsed_ns;                  /* wall time of the timed phase */
    int64_t client_cpu_ns;               /* this process's user + system CPU in that time */
    uint64_t status[BENCH_STATUS_SLOTS]; /* every response by status code */
    uint64_t fail_status[BENCH_STATUS_SLOTS];
    uint64_t fail_transport;
    uint64_t fail_check;
    uint64_t *lat_ns; /* latency of each successful op (owned) */
    size_t lat_count;
    size_t lat_cap;
};

/* Prepare stats for up to cap successful ops. BERTH_ENOMEM. */
enum berth_err bench_stats_init(struct bench_stats *s, size_t cap);
void bench_stats_fini(struct bench_stats *s);
/* Record one op's outcome; latencies beyond cap are dropped (never happens
 * when cap is the op count). */
void bench_stats_op(struct bench_stats *s, bool ok, int64_t latency_ns);
/* Count one failed HTTP exchange by kind (status is used for STATUS). */
void bench_stats_fail(struct bench_stats *s, enum bench_fail kind, long status);
/* Sort the latencies (call once, after the phase). */
void bench_stats_finish(struct bench_stats *s);
/* Nearest-rank percentile (0 < p <= 100) of the sorted latencies, in
 * nanoseconds; 0 when there are none. */
uint64_t bench_stats_percentile(const struct bench_stats *s, double p);
/* Total failed HTTP exchanges. */
uint64_t bench_stats_errors(const struct bench_stats *s);

/* ---- the run (berth-bench.c, bench_engine.c, bench_image.c) ---- */

struct bench_options {
    char url[BENCH_URL_MAX];    /* base, without a trailing '/' */
    char origin[BENCH_URL_MAX]; /* scheme://authority of url */
    char prefix[BENCH_PREFIX_MAX];
    size_t concurrency;
    size_t requests;
    long timeout_s;
    size_t catalog_repos;
    bool patch_content_length; /* streamed PATCH with Content-Length, not chunked */
    bool verbose;
    /* a header line sent with every request ("Authorization: Basic ..."),
     * or "" */
    char authorization[BENCH_AUTH_MAX];
};

/* An image as the tool pushes and pulls it: one layer of random bytes, a
 * config that names that layer, an OCI manifest. */
struct bench_image {
    char repo[BENCH_REPO_MAX];
    char tag[32];
    uint64_t layer_seed;
    uint64_t layer_size;
    struct digest layer;
    char config[512];
    size_t config_len;
    struct digest config_digest;
    char manifest[1024];
    size_t manifest_len;
    struct digest manifest_digest;
};

/* Fill img->config, img->manifest and their digests from the layer fields
 * (repo, tag, layer_seed, layer_size and layer must be set). BERTH_ETOOBIG
 * if a document does not fit (never with the names this tool makes). */
enum berth_err bench_image_finish(struct bench_image *img);

/* One phase: count ops of a workload, each planned by index. */
struct bench_phase {
    const char *label; /* "setup" or the workload name, for messages */
    enum bench_kind kind;
    size_t count;
    size_t concurrency;
    uint64_t layer_size;
    uint64_t seed_base;              /* layer seed of op i: bench_mix64(seed_base + i) */
    const char *repo_base;           /* op i pushes to "<repo_base>-<i>" */
    const char *tag;                 /* tag of pushed images; NULL: "v1" */
    const struct digest *digests;    /* precomputed layer digests by index, or NULL */
    const bool *is_push;             /* mix: which indexes push (NULL otherwise) */
    const struct bench_image *image; /* the image pulled, headed, tagged or listed */
    struct bench_stats *stats;
    size_t errors_shown;
};

/* The image op `index` of a push phase pushes (also used to describe the
 * image a setup phase pushed). Hashes the layer when ph->digests is NULL.
 * BERTH_ETOOBIG, BERTH_ENOMEM. */
enum berth_err bench_phase_image(const struct bench_phase *ph, size_t index,
                                 struct bench_image *img);

struct bench_engine;

/* Create the engine: one curl multi handle and concurrency easy handles.
 * NULL on allocation failure or when libcurl cannot initialise. The engine
 * borrows opts for its whole life. */
struct bench_engine *bench_engine_new(const struct bench_options *opts);
void bench_engine_free(struct bench_engine *e);

/* Run every op of ph to completion, at ph->concurrency ops in flight.
 * Results go into ph->stats (elapsed_ns is the phase's wall time,
 * client_cpu_ns the CPU this tool used meanwhile).
 * BERTH_OK when the phase ran, whatever the ops' outcomes (failures are
 * in the stats); BERTH_ENOMEM or BERTH_EIO when the engine itself broke. */
enum berth_err bench_engine_run(struct bench_engine *e, struct bench_phase *ph);

/* GET <url>/v2/ until it answers 200 or seconds pass. BERTH_OK when ready,
 * BERTH_EBUSY on time-out. Blocks. */
enum berth_err bench_wait_ready(const struct bench_options *opts, long seconds);

/* Resolve a Location header value against the URL of the request that
 * returned it: absolute URLs are kept verbatim, "/path?q" gets the origin,
 * anything else is resolved by libcurl's URL parser. BERTH_ETOOBIG when the
 * result does not fit cap, BERTH_EINVAL when it cannot be resolved. */
enum berth_err bench_resolve_location(const char *request_url, const char *origin,
                                      const char *location, char *out, size_t cap);

/* ---- loopback (bench_loopback.c) ---- */

struct bench_loopback_result {
    uint64_t bytes;
    double seconds;
};

/* Stream total bytes over one TCP connection on 127.0.0.1 (a sender thread
 * writing 1 MiB buffers, this thread reading BENCH_IO_BUFFER at a time).
 * BERTH_EIO on socket errors. Blocks. */
enum berth_err bench_loopback_run(uint64_t total, struct bench_loopback_result *out);

/* Bind 127.0.0.1:0, report the port the kernel chose and close it again.
 * BERTH_EIO. */
enum berth_err bench_free_port(unsigned *port);

#endif
