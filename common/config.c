/*
 * Configuration loading: one table of keys, applied from defaults, a JSON
 * file, BERTH_* environment variables and flags. Single-threaded.
 */
#include "common/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/str.h"

enum config_type { CONFIG_STRING, CONFIG_BOOL, CONFIG_INT, CONFIG_JSON };

struct config_key {
    const char *path;
    enum config_type type;
    size_t offset;
    const char *def;
    int64_t min;
    int64_t max;
    const char *help;
};

#define OFF(field) offsetof(struct berth_config, field)
#define DAY 86400

static const struct config_key keys[] = {
    {"listen", CONFIG_STRING, OFF(listen), "127.0.0.1:5000", 0, 0, "address and port to serve on"},
    {"root", CONFIG_STRING, OFF(root), "./berth-data", 0, 0, "data directory"},
    {"public_url", CONFIG_STRING, OFF(public_url), "", 0, 0,
     "URL clients use to reach berth (default http://<listen>)"},
    {"replica_name", CONFIG_STRING, OFF(replica_name), "", 0, 0,
     "this server's name where the console and the GC history name a replica (printable "
     "ASCII, at most 63 bytes; empty: <host name>:<listen port>)"},
    {"anonymous", CONFIG_BOOL, OFF(anonymous), "false", 0, 0,
     "allow unauthenticated access on a non-loopback address"},
    {"log.level", CONFIG_STRING, OFF(log_level), "info", 0, 0, "error, warn, info or debug"},
    {"log.access", CONFIG_BOOL, OFF(log_access), "true", 0, 0, "one access-log line per request"},
    {"log.format", CONFIG_STRING, OFF(log_format), "text", 0, 0,
     "text (key=value lines) or json (one JSON object per line)"},
    {"tls.cert_file", CONFIG_STRING, OFF(tls_cert_file), "", 0, 0,
     "serve HTTPS with this PEM certificate (then its intermediates); empty: plain HTTP"},
    {"tls.key_file", CONFIG_STRING, OFF(tls_key_file), "", 0, 0,
     "PEM private key of tls.cert_file (both are read again on SIGHUP)"},
    {"tls.client_ca_file", CONFIG_STRING, OFF(tls_client_ca_file), "", 0, 0,
     "PEM CA certificates: require client certificates they issued (mutual TLS; read again on "
     "SIGHUP)"},
    {"tls.client_principals", CONFIG_JSON, OFF(tls_client_principals), NULL, 0, 0,
     "client certificates that act as an access key on /v2: [{\"common_name\" or \"dns_name\": "
     "name, \"access_key_id\": id}]"},
    {"metrics.enabled", CONFIG_BOOL, OFF(metrics_enabled), "true", 0, 0,
     "serve Prometheus metrics on GET /metrics"},
    {"metrics.require_auth", CONFIG_BOOL, OFF(metrics_require_auth), "false", 0, 0,
     "GET /metrics needs an access key (HTTP Basic, as docker login)"},
    {"metrics.activity_sample_seconds", CONFIG_INT, OFF(metrics_activity_sample_seconds), "60", 0,
     3600,
     "add the request counters' growth to the database's activity history this often "
     "(the console's charts; 0: never)"},
    {"metrics.repository_series", CONFIG_INT, OFF(metrics_repository_series), "0", 0, 1000,
     "count pushes and pulls by repository for the first this many repositories (later ones "
     "under repository=\"_other\"; 0: no per-repository series)"},
    {"http.threads", CONFIG_INT, OFF(http_threads), "0", 0, 1024, "worker threads (0 = 4 per CPU)"},
    {"http.connection_limit", CONFIG_INT, OFF(http_connection_limit), "1024", 1, 1000000,
     "maximum concurrent connections"},
    {"http.timeout_seconds", CONFIG_INT, OFF(http_timeout_seconds), "300", 1, DAY,
     "close a connection idle this long"},
    {"http.head_timeout_seconds", CONFIG_INT, OFF(http_head_timeout_seconds), "30", 1, DAY,
     "close a connection whose request head has not arrived this long after it opened or "
     "after its previous request (idle keep-alive included)"},
    {"http.min_body_rate_bytes", CONFIG_INT, OFF(http_min_body_rate_bytes), "1024", 0,
     INT64_C(1) << 40,
     "close a connection whose request body averages fewer bytes per second, once "
     "http.head_timeout_seconds have passed (0: no minimum)"},
    {"http.per_client_connection_limit", CONFIG_INT, OFF(http_per_client_connection_limit), "256",
     0, 1000000, "maximum concurrent connections from one client address (0: none)"},
    {"http.concurrent_bodies", CONFIG_INT, OFF(http_concurrent_bodies), "64", 0, 1000000,
     "response bodies of 256 KiB or more sent at once; more wait their turn in arrival "
     "order, so small requests stay fast under a pull storm (0: no limit)"},
    {"http.body_slot_min_rate_bytes", CONFIG_INT, OFF(http_body_slot_min_rate_bytes), "1048576", 0,
     INT64_C(1) << 40,
     "a body holding one of http.concurrent_bodies' slots whose client acknowledges fewer bytes "
     "per second (over a second, after its first) gives the slot to the next in line and goes "
     "on uncounted (0: never)"},
    {"http.drain_seconds", CONFIG_INT, OFF(http_drain_seconds), "30", 1, 3600,
     "on SIGTERM, how long requests in flight may take to finish before the rest are cut "
     "(bodies still waiting for a slot are answered 503)"},
    {"http.memory_limit_kib", CONFIG_INT, OFF(http_memory_limit_kib), "32", 32, 65536,
     "per-connection buffer for headers and body reads"},
    {"http.upload_memory_limit_kib", CONFIG_INT, OFF(http_upload_memory_limit_kib), "256", 0, 65536,
     "per-connection buffer of the upload lane (connections whose first request is a blob "
     "push), which reads bodies in pieces of half of it (0: no lane)"},
    {"http.upload_connection_limit", CONFIG_INT, OFF(http_upload_connection_limit), "32", 0,
     1000000, "connections the upload lane holds at once; more go to the other workers"},
    {"http.unauthenticated_body_max_mib", CONFIG_INT, OFF(http_unauthenticated_body_max_mib), "256",
     1, 1 << 20,
     "memory all request bodies of callers not yet authenticated may hold at once (429 above)"},
    {"http.turbo", CONFIG_BOOL, OFF(http_turbo), "true", 0, 0,
     "libmicrohttpd's opportunistic reads and writes (MHD_USE_TURBO)"},
    {"http.epoll", CONFIG_BOOL, OFF(http_epoll), "false", 0, 0,
     "use epoll instead of poll (libmicrohttpd 0.9.75's epoll can miss a client's close)"},
    {"storage.fsync", CONFIG_BOOL, OFF(storage_fsync), "true", 0, 0,
     "fsync blobs and directories before acknowledging a push"},
    {"storage.delete_enabled", CONFIG_BOOL, OFF(storage_delete_enabled), "true", 0, 0,
     "allow DELETE of manifests, tags and blobs (405 UNSUPPORTED when off)"},
    {"storage.delete_referenced_manifests", CONFIG_BOOL, OFF(storage_delete_referenced), "false", 0,
     0,
     "allow DELETE by digest of a manifest an index of the repository lists (off: 409 DENIED, "
     "as ECR)"},
    {"storage.sparse_manifests", CONFIG_BOOL, OFF(storage_sparse_manifests), "false", 0, 0,
     "accept a manifest whose config or layers, or an index whose children, are not in the "
     "repository (off: refused, as ECR)"},
    {"storage.auto_create_repositories", CONFIG_BOOL, OFF(storage_auto_create), "true", 0, 0,
     "create a repository on its first push (off: 404 NAME_UNKNOWN, as ECR)"},
    {"storage.manifest_max_bytes", CONFIG_INT, OFF(storage_manifest_max_bytes), "4194304", 1024,
     64 * 1024 * 1024, "largest manifest accepted (413 above)"},
    {"storage.upload_expiry_seconds", CONFIG_INT, OFF(storage_upload_expiry_seconds), "86400", 1,
     365 * DAY, "abandoned upload sessions are removed after this long"},
    {"storage.catalog_max_entries", CONFIG_INT, OFF(storage_catalog_max_entries), "1000", 1, 100000,
     "largest n accepted by /v2/_catalog"},
    {"storage.tags_max_entries", CONFIG_INT, OFF(storage_tags_max_entries), "10000", 1, 1000000,
     "largest page of /v2/<name>/tags/list (larger n is clamped, with a Link)"},
    {"storage.min_free_bytes", CONFIG_INT, OFF(storage_min_free_bytes), "104857600", 0, INT64_MAX,
     "GET /readyz fails while the data directory's file system has less free space"},
    {"storage.archive.restore_seconds", CONFIG_INT, OFF(storage_archive_restore_seconds), "0", 0,
     30 * DAY,
     "a restored archived image (UpdateImageStorageClass STANDARD) is ACTIVATING at least this "
     "long, and until its blobs are back from the archive tier (ECR takes up to 20 minutes)"},
    {"storage.archive.path", CONFIG_STRING, OFF(storage_archive_path), "", 0, 0,
     "the archive tier: where the bytes of blobs only archived images use are moved (empty: "
     "<root>/archive; \"off\": archiving is a status only); with storage.backend s3 the "
     "local directory of the archive copies being written (they go to "
     "storage.archive.s3_bucket/s3_prefix)"},
    {"storage.archive.s3_bucket", CONFIG_STRING, OFF(storage_archive_s3_bucket), "", 0, 0,
     "with storage.backend s3: the bucket of the archive tier (empty: storage.s3.bucket)"},
    {"storage.archive.s3_prefix", CONFIG_STRING, OFF(storage_archive_s3_prefix), "", 0, 0,
     "with storage.backend s3: put before the archive tier's object keys (empty: "
     "<storage.s3.prefix>archive/)"},
    {"storage.archive.s3_storage_class", CONFIG_STRING, OFF(storage_archive_s3_storage_class), "",
     0, 0,
     "with storage.backend s3: the storage class the archive tier's blob objects are written "
     "with (x-amz-storage-class: STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING or "
     "GLACIER_IR, the classes a GET reads at once; empty: none sent, the bucket's default)"},
    {"storage.archive.zstd_level", CONFIG_INT, OFF(storage_archive_zstd_level), "6", 0, 19,
     "zstd level of archive copies, kept only when it shrinks them (0: copies as they are)"},
    {"storage.backend", CONFIG_STRING, OFF(storage_backend), "filesystem", 0, 0,
     "where blobs are kept: filesystem (<root>/blobs) or s3 (storage.s3.*)"},
    {"storage.s3.endpoint", CONFIG_STRING, OFF(storage_s3_endpoint), "", 0, 0,
     "S3 endpoint URL, http(s)://host[:port] (empty: AWS's for storage.s3.region)"},
    {"storage.s3.region", CONFIG_STRING, OFF(storage_s3_region), "us-east-1", 0, 0,
     "region the S3 requests are signed for"},
    {"storage.s3.bucket", CONFIG_STRING, OFF(storage_s3_bucket), "", 0, 0,
     "bucket holding the blobs (it must exist)"},
    {"storage.s3.prefix", CONFIG_STRING, OFF(storage_s3_prefix), "", 0, 0,
     "put before every object key (e.g. berth/)"},
    {"storage.s3.access_key_id", CONFIG_STRING, OFF(storage_s3_access_key_id), "", 0, 0,
     "S3 access key id (empty: the environment's AWS_ACCESS_KEY_ID)"},
    {"storage.s3.secret_access_key", CONFIG_STRING, OFF(storage_s3_secret_access_key), "", 0, 0,
     "S3 secret access key (empty: the environment's AWS_SECRET_ACCESS_KEY)"},
    {"storage.s3.path_style", CONFIG_BOOL, OFF(storage_s3_path_style), "false", 0, 0,
     "path-style requests (host/bucket/key: MinIO, Swift, Ceph) instead of bucket.host/key"},
    {"storage.s3.tls_ca_file", CONFIG_STRING, OFF(storage_s3_tls_ca_file), "", 0, 0,
     "PEM CA certificates to verify an https endpoint with (empty: the system's)"},
    {"storage.s3.redirect", CONFIG_BOOL, OFF(storage_s3_redirect), "false", 0, 0,
     "answer blob GETs with 307 to a presigned URL of the object (valid 5 minutes)"},
    {"storage.s3.cache_max_bytes", CONFIG_INT, OFF(storage_s3_cache_max_bytes), "1073741824", 0,
     INT64_MAX,
     "bound of <root>/s3cache: local copies of small blobs (manifests, configs) and of the "
     "layers scanners read; the least recently used go first"},
    {"storage.s3.orphan_upload_grace_seconds", CONFIG_INT, OFF(storage_s3_orphan_upload_grace),
     "86400", 0, 365 * DAY,
     "garbage collection aborts the multipart uploads and deletes the upload objects under the "
     "prefix that no upload session owns once they are this old (a replica killed mid-upload; "
     "keep it above the longest transfer); 0: never"},
    {"meta.backend", CONFIG_STRING, OFF(meta_backend), "sqlite", 0, 0,
     "metadata database: sqlite (<root>/berth.db) or postgres"},
    {"meta.postgres.dsn", CONFIG_STRING, OFF(meta_postgres_dsn), "", 0, 0,
     "libpq connection string of the postgres backend (e.g. host=... dbname=...)"},
    {"meta.postgres.query_timeout_ms", CONFIG_INT, OFF(meta_postgres_query_timeout_ms), "30000", 0,
     3600000,
     "the longest a PostgreSQL statement (and a connection attempt without connect_timeout) "
     "waits for the server: then the request gets 503 and the connection is made again; "
     "keep it above lock_timeout (10 s); 0: no bound"},
    {"meta.lease_seconds", CONFIG_INT, OFF(meta_lease_seconds), "30", 2, 3600,
     "with meta.backend postgres (replicas), background jobs are claimed under leases this long: "
     "the jobs of a replica that dies are taken over this long after"},
    {"registry.id", CONFIG_STRING, OFF(registry_id), "000000000000", 0, 0,
     "12-digit registry (account) id used by the ECR API"},
    {"registry.region", CONFIG_STRING, OFF(registry_region), "us-east-1", 0, 0,
     "region named in ARNs"},
    {"auth.required", CONFIG_BOOL, OFF(auth_required), "false", 0, 0,
     "require credentials even before any access key exists"},
    {"auth.token_ttl_seconds", CONFIG_INT, OFF(auth_token_ttl_seconds), "43200", 1, 7 * DAY,
     "lifetime of GetAuthorizationToken passwords"},
    {"auth.scheme", CONFIG_STRING, OFF(auth_scheme), "basic", 0, 0,
     "/v2 challenge: basic (ECR's) or bearer (Docker's token protocol, token endpoint /v2/token)"},
    {"auth.service", CONFIG_STRING, OFF(auth_service), "", 0, 0,
     "service name of bearer challenges and tokens (default: public_url's host[:port])"},
    {"auth.bearer_ttl_seconds", CONFIG_INT, OFF(auth_bearer_ttl_seconds), "300", 60, DAY,
     "lifetime of bearer tokens from /v2/token"},
    {"auth.refresh_token_ttl_seconds", CONFIG_INT, OFF(auth_refresh_token_ttl_seconds), "43200", 60,
     30 * DAY, "lifetime of refresh tokens from /v2/token (offline_token, docker login)"},
    {"auth.keys", CONFIG_JSON, OFF(auth_keys), NULL, 0, 0, "access keys defined in the file"},
    {"auth.regions", CONFIG_JSON, OFF(auth_regions), NULL, 0, 0,
     "regions accepted in SigV4 scopes (default: any)"},
    {"console.session_ttl_seconds", CONFIG_INT, OFF(console_session_ttl_seconds), "3600", 1, DAY,
     "lifetime of a web console sign-in"},
    {"gc.enabled", CONFIG_BOOL, OFF(gc_enabled), "true", 0, 0, "run garbage collection"},
    {"gc.interval_seconds", CONFIG_INT, OFF(gc_interval_seconds), "3600", 1, 30 * DAY,
     "time between garbage collection passes"},
    {"gc.grace_seconds", CONFIG_INT, OFF(gc_grace_seconds), "3600", 0, 30 * DAY,
     "unreferenced blobs younger than this are kept"},
    {"lifecycle.enabled", CONFIG_BOOL, OFF(lifecycle_enabled), "true", 0, 0,
     "enforce lifecycle policies"},
    {"lifecycle.interval_seconds", CONFIG_INT, OFF(lifecycle_interval_seconds), "3600", 1, 30 * DAY,
     "time between lifecycle policy runs"},
    {"lifecycle.new_policy_delay_seconds", CONFIG_INT, OFF(lifecycle_new_policy_delay_seconds),
     "3600", 0, 30 * DAY,
     "a new or changed lifecycle policy is first enforced by the background job this long after "
     "it is put (berth lifecycle run: at once)"},
    {"signing.profiles_dir", CONFIG_STRING, OFF(signing_profiles_dir), "", 0, 0,
     "managed signing: <profile>.pem here (a private key and its certificate chain, leaf first) "
     "signs for the AWS Signer profile of that name; a profile without one gets a key and "
     "self-signed certificate berth generates and keeps in the metadata"},
    {"scan.workers", CONFIG_INT, OFF(scan_workers), "2", 0, 64, "scan worker threads"},
    {"scan.hook", CONFIG_STRING, OFF(scan_hook), "", 0, 0,
     "external scanner command (empty: built-in scanner)"},
    {"scan.hook_timeout_seconds", CONFIG_INT, OFF(scan_hook_timeout_seconds), "300", 1, DAY,
     "kill the hook after this long"},
    {"scan.hook_max_output_bytes", CONFIG_INT, OFF(scan_hook_max_output_bytes), "16777216", 1024,
     1024 * 1024 * 1024, "largest findings document read from the hook"},
    {"scan.max_image_bytes", CONFIG_INT, OFF(scan_max_image_bytes), "17179869184", 1024, INT64_MAX,
     "decompressed bytes read per image before a scan fails"},
    {"scan.quota_seconds", CONFIG_INT, OFF(scan_quota_seconds), "86400", 0, 365 * DAY,
     "one scan per image per this many seconds"},
    {"scan.vulndb_poll_seconds", CONFIG_INT, OFF(scan_vulndb_poll_seconds), "10", 1, DAY,
     "replicas sharing PostgreSQL: how often each looks for a new shared vulnerability "
     "database, in case an import's announcement was missed (scans look before they start "
     "too)"},
    {"pull_through.secrets_key", CONFIG_STRING, OFF(pull_through_secrets_key), "", 0, 0,
     "key sealing the upstream credentials of berth secrets (64 hex digits; empty: the key "
     "file)"},
    {"pull_through.secrets_key_file", CONFIG_STRING, OFF(pull_through_secrets_key_file), "", 0, 0,
     "file holding that key, created 0600 when missing (empty: <root>/secrets.key)"},
    {"pull_through.tag_ttl_seconds", CONFIG_INT, OFF(pull_through_tag_ttl_seconds), "3600", 0,
     30 * DAY, "a tag cached from an upstream is checked with it again when older than this"},
    {"pull_through.timeout_seconds", CONFIG_INT, OFF(pull_through_timeout_seconds), "30", 1, 3600,
     "an upstream request fails after this long (a blob: after this long without data)"},
    {"replication.peers", CONFIG_JSON, OFF(replication_peers), NULL, 0, 0,
     "the registries replication destinations are: [{\"region\": r, \"registry_id\": id, "
     "\"url\": \"http(s)://host[:port]\", \"secret\": name of a berth secret (optional)}]"},
    {"replication.retry_initial_ms", CONFIG_INT, OFF(replication_retry_initial_ms), "2000", 10,
     3600 * 1000, "a failed copy is tried again after this long, doubling each time"},
    {"replication.retry_max_ms", CONFIG_INT, OFF(replication_retry_max_ms), "60000", 10, DAY * 1000,
     "longest wait between two tries of a copy (a destination back after an outage catches up "
     "within this long)"},
    {"replication.timeout_seconds", CONFIG_INT, OFF(replication_timeout_seconds), "60", 1, 3600,
     "a request to a destination fails after this long (a blob: after this long without progress)"},
    {"replication.failed_after_seconds", CONFIG_INT, OFF(replication_failed_after_seconds), "3600",
     0, 30 * DAY,
     "a copy a destination keeps failing for this long after it was queued shows FAILED "
     "(failureCode PEER_UNAVAILABLE) and is still tried every replication.retry_max_ms, so the "
     "destination's return clears it (0: it stays IN_PROGRESS)"},
    {"replication.poll_seconds", CONFIG_INT, OFF(replication_poll_seconds), "30", 1, DAY,
     "the replication workers look at their queues at least this often (a push wakes them at "
     "once: on PostgreSQL through LISTEN/NOTIFY)"},
    {"replication.concurrency_per_peer", CONFIG_INT, OFF(replication_concurrency_per_peer), "4", 1,
     64, "how many images are copied to one peer at once (a repository's one at a time, in order)"},
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const struct config_key *find_key(const char *path)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (strcmp(keys[i].path, path) == 0) {
            return &keys[i];
        }
    }
    return NULL;
}

static void *field(struct berth_config *cfg, const struct config_key *k)
{
    return (char *)cfg + k->offset;
}

static enum berth_err set_value(struct berth_config *cfg, const struct config_key *k,
                                const char *value, char *err, size_t cap)
{
    switch (k->type) {
    case CONFIG_STRING: {
        char *dup = strdup(value);
        if (dup == NULL) {
            return BERTH_ENOMEM;
        }
        char **slot = field(cfg, k);
        free(*slot);
        *slot = dup;
        return BERTH_OK;
    }
    case CONFIG_BOOL: {
        bool *slot = field(cfg, k);
        if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0) {
            *slot = true;
        } else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0) {
            *slot = false;
        } else {
            snprintf(err, cap, "config: %s must be true or false, not '%s'", k->path, value);
            return BERTH_EINVAL;
        }
        return BERTH_OK;
    }
    case CONFIG_INT: {
        uint64_t v;
        if (str_parse_u64(value, (uint64_t)INT64_MAX, &v) != BERTH_OK || (int64_t)v < k->min ||
            (int64_t)v > k->max) {
            snprintf(err, cap, "config: %s must be an integer from %lld to %lld, not '%s'", k->path,
                     (long long)k->min, (long long)k->max, value);
            return BERTH_EINVAL;
        }
        *(int64_t *)field(cfg, k) = (int64_t)v;
        return BERTH_OK;
    }
    case CONFIG_JSON:
        snprintf(err, cap, "config: %s can only be set in the config file", k->path);
        return BERTH_EINVAL;
    }
    return BERTH_EINVAL;
}

enum berth_err config_init(struct berth_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    char err[256];
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].def == NULL) {
            continue;
        }
        enum berth_err rc = set_value(cfg, &keys[i], keys[i].def, err, sizeof(err));
        if (rc != BERTH_OK) {
            return rc;
        }
    }
    return BERTH_OK;
}

void config_fini(struct berth_config *cfg)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].type == CONFIG_STRING) {
            char **slot = field(cfg, &keys[i]);
            free(*slot);
            *slot = NULL;
        }
    }
    free(cfg->config_path);
    cfg->config_path = NULL;
    json_decref(cfg->doc);
    cfg->doc = NULL;
}

enum berth_err config_set(struct berth_config *cfg, const char *path, const char *value, char *err,
                          size_t cap)
{
    const struct config_key *k = find_key(path);
    if (k == NULL) {
        snprintf(err, cap, "config: unknown key '%s'", path);
        return BERTH_ENOTFOUND;
    }
    return set_value(cfg, k, value, err, cap);
}

/* Walk one JSON object, applying leaves whose dotted path is a key. */
static enum berth_err apply_object(struct berth_config *cfg, json_t *obj, const char *prefix,
                                   const char *file, char *err, size_t cap)
{
    const char *name;
    json_t *val;
    json_object_foreach(obj, name, val)
    {
        char path[256];
        int n = snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", name);
        if (n < 0 || (size_t)n >= sizeof(path)) {
            snprintf(err, cap, "config: %s: key path too long", file);
            return BERTH_EINVAL;
        }
        const struct config_key *k = find_key(path);
        /* a section: any key lives under it */
        size_t plen = strlen(path);
        bool is_section = false;
        for (size_t i = 0; k == NULL && i < NKEYS && !is_section; i++) {
            is_section = strncmp(keys[i].path, path, plen) == 0 && keys[i].path[plen] == '.';
        }
        if (is_section && !json_is_object(val)) {
            snprintf(err, cap, "config: %s: %s must be an object (a section of keys)", file, path);
            return BERTH_EINVAL;
        }
        if (k == NULL && json_is_object(val)) {
            if (is_section) {
                enum berth_err rc = apply_object(cfg, val, path, file, err, cap);
                if (rc != BERTH_OK) {
                    return rc;
                }
                continue;
            }
        }
        if (k == NULL) {
            snprintf(err, cap, "config: %s: unknown key '%s'", file, path);
            return BERTH_EINVAL;
        }
        char text[64];
        const char *value = NULL;
        switch (k->type) {
        case CONFIG_STRING:
            if (!json_is_string(val)) {
                snprintf(err, cap, "config: %s: %s must be a string", file, path);
                return BERTH_EINVAL;
            }
            value = json_string_value(val);
            break;
        case CONFIG_BOOL:
            if (!json_is_boolean(val)) {
                snprintf(err, cap, "config: %s: %s must be true or false", file, path);
                return BERTH_EINVAL;
            }
            value = json_is_true(val) ? "true" : "false";
            break;
        case CONFIG_INT:
            if (!json_is_integer(val)) {
                snprintf(err, cap, "config: %s: %s must be an integer", file, path);
                return BERTH_EINVAL;
            }
            snprintf(text, sizeof(text), "%lld", (long long)json_integer_value(val));
            value = text;
            break;
        case CONFIG_JSON:
            *(json_t **)field(cfg, k) = val; /* borrowed from cfg->doc */
            continue;
        }
        enum berth_err rc = set_value(cfg, k, value, err, cap);
        if (rc != BERTH_OK) {
            return rc;
        }
    }
    return BERTH_OK;
}

enum berth_err config_load_file(struct berth_config *cfg, const char *path, char *err, size_t cap)
{
    json_error_t jerr;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            snprintf(err, cap, "config: cannot open %s: %s", path, strerror(errno));
            return BERTH_ENOTFOUND;
        }
        fclose(f);
        snprintf(err, cap, "config: %s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
        return BERTH_EINVAL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        snprintf(err, cap, "config: %s: the top level must be a JSON object", path);
        return BERTH_EINVAL;
    }
    json_decref(cfg->doc);
    cfg->doc = doc;
    free(cfg->config_path);
    cfg->config_path = strdup(path);
    if (cfg->config_path == NULL) {
        return BERTH_ENOMEM;
    }
    return apply_object(cfg, doc, "", path, err, cap);
}

enum berth_err config_load_env(struct berth_config *cfg, char *err, size_t cap)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].type == CONFIG_JSON) {
            continue;
        }
        char env[128] = "BERTH_";
        size_t o = strlen(env);
        for (const char *p = keys[i].path; *p && o < sizeof(env) - 1; p++) {
            env[o++] = (*p == '.') ? '_' : (char)toupper((unsigned char)*p);
        }
        env[o] = '\0';
        const char *value = getenv(env);
        if (value == NULL) {
            continue;
        }
        char sub[256];
        enum berth_err rc = set_value(cfg, &keys[i], value, sub, sizeof(sub));
        if (rc != BERTH_OK) {
            snprintf(err, cap, "%s (from %s)", sub, env);
            return rc;
        }
    }
    return BERTH_OK;
}

enum berth_err config_listen_parts(const char *listen, char *host, size_t host_cap, uint16_t *port)
{
    const char *colon = strrchr(listen, ':');
    if (colon == NULL || colon == listen) {
        return BERTH_EINVAL;
    }
    const char *h = listen;
    size_t hlen = (size_t)(colon - listen);
    if (h[0] == '[') {
        if (hlen < 2 || h[hlen - 1] != ']') {
            return BERTH_EINVAL;
        }
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= host_cap) {
        return BERTH_EINVAL;
    }
    uint64_t p;
    if (str_parse_u64(colon + 1, 65535, &p) != BERTH_OK) {
        return BERTH_EINVAL;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (uint16_t)p;
    return BERTH_OK;
}

enum berth_err config_validate(const struct berth_config *cfg, char *err, size_t cap)
{
    char host[256];
    uint16_t port;
    if (config_listen_parts(cfg->listen, host, sizeof(host), &port) != BERTH_OK) {
        snprintf(err, cap, "config: listen must be ADDR:PORT (e.g. 127.0.0.1:5000), not '%s'",
                 cfg->listen);
        return BERTH_EINVAL;
    }
    size_t idlen = strlen(cfg->registry_id);
    bool digits = idlen == 12;
    for (size_t i = 0; digits && i < idlen; i++) {
        digits = isdigit((unsigned char)cfg->registry_id[i]) != 0;
    }
    if (!digits) {
        snprintf(err, cap, "config: registry.id must be 12 digits, not '%s'", cfg->registry_id);
        return BERTH_EINVAL;
    }
    if (strcmp(cfg->log_format, "text") != 0 && strcmp(cfg->log_format, "json") != 0) {
        snprintf(err, cap, "config: log.format must be text or json, not '%s'", cfg->log_format);
        return BERTH_EINVAL;
    }
    bool has_cert = cfg->tls_cert_file[0] != '\0', has_key = cfg->tls_key_file[0] != '\0';
    if (has_cert != has_key) {
        snprintf(err, cap, "config: tls.cert_file and tls.key_file go together");
        return BERTH_EINVAL;
    }
    if (cfg->tls_client_ca_file[0] != '\0' && !has_cert) {
        snprintf(err, cap, "config: tls.client_ca_file needs tls.cert_file and tls.key_file");
        return BERTH_EINVAL;
    }
    if (cfg->tls_client_principals != NULL && !json_is_array(cfg->tls_client_principals)) {
        snprintf(err, cap, "config: tls.client_principals must be an array");
        return BERTH_EINVAL;
    }
    if (cfg->tls_client_principals != NULL && json_array_size(cfg->tls_client_principals) > 0 &&
        cfg->tls_client_ca_file[0] == '\0') {
        snprintf(err, cap, "config: tls.client_principals needs tls.client_ca_file");
        return BERTH_EINVAL;
    }
    if (strlen(cfg->replica_name) > 63) {
        snprintf(err, cap, "config: replica_name must be at most 63 bytes");
        return BERTH_EINVAL;
    }
    for (const char *c = cfg->replica_name; *c != '\0'; c++) {
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e) {
            snprintf(err, cap, "config: replica_name must be printable ASCII");
            return BERTH_EINVAL;
        }
    }
    if (cfg->root[0] == '\0') {
        snprintf(err, cap, "config: root must not be empty");
        return BERTH_EINVAL;
    }
    if (strcmp(cfg->storage_backend, "filesystem") != 0 &&
        strcmp(cfg->storage_backend, "s3") != 0) {
        snprintf(err, cap, "config: storage.backend must be filesystem or s3, not '%s'",
                 cfg->storage_backend);
        return BERTH_EINVAL;
    }
    if (strcmp(cfg->storage_backend, "s3") == 0 && cfg->storage_s3_bucket[0] == '\0') {
        snprintf(err, cap, "config: storage.backend s3 needs storage.s3.bucket");
        return BERTH_EINVAL;
    }
    static const char *const archive_classes[] = {
        "", "STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR"};
    bool class_ok = false;
    for (size_t i = 0; i < sizeof(archive_classes) / sizeof(archive_classes[0]); i++) {
        class_ok =
            class_ok || strcmp(cfg->storage_archive_s3_storage_class, archive_classes[i]) == 0;
    }
    if (!class_ok) {
        snprintf(err, cap,
                 "config: storage.archive.s3_storage_class must be STANDARD, STANDARD_IA, "
                 "ONEZONE_IA, INTELLIGENT_TIERING or GLACIER_IR (a restore reads the objects "
                 "with a GET; GLACIER and DEEP_ARCHIVE need a RestoreObject first), not '%s'",
                 cfg->storage_archive_s3_storage_class);
        return BERTH_EINVAL;
    }
    const char *ep = cfg->storage_s3_endpoint;
    if (ep[0] != '\0' && strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0) {
        snprintf(err, cap,
                 "config: storage.s3.endpoint must be an http:// or https:// URL, not '%s'", ep);
        return BERTH_EINVAL;
    }
    if (strcmp(cfg->meta_backend, "sqlite") != 0 && strcmp(cfg->meta_backend, "postgres") != 0) {
        snprintf(err, cap, "config: meta.backend must be sqlite or postgres, not '%s'",
                 cfg->meta_backend);
        return BERTH_EINVAL;
    }
    if (strcmp(cfg->meta_backend, "postgres") == 0 && cfg->meta_postgres_dsn[0] == '\0') {
        snprintf(err, cap, "config: meta.backend postgres needs meta.postgres.dsn");
        return BERTH_EINVAL;
    }
    if (strcmp(cfg->auth_scheme, "basic") != 0 && strcmp(cfg->auth_scheme, "bearer") != 0) {
        snprintf(err, cap, "config: auth.scheme must be basic or bearer, not '%s'",
                 cfg->auth_scheme);
        return BERTH_EINVAL;
    }
    for (const char *p = cfg->auth_service; *p; p++) {
        if (*p <= ' ' || *p > '~' || *p == '"' || *p == '\\' || p - cfg->auth_service >= 255) {
            snprintf(err, cap,
                     "config: auth.service must be at most 255 printable characters without "
                     "spaces, quotes or backslashes");
            return BERTH_EINVAL;
        }
    }
    if (cfg->auth_keys != NULL && !json_is_array(cfg->auth_keys)) {
        snprintf(err, cap, "config: auth.keys must be an array");
        return BERTH_EINVAL;
    }
    if (cfg->auth_regions != NULL && !json_is_array(cfg->auth_regions)) {
        snprintf(err, cap, "config: auth.regions must be an array of strings");
        return BERTH_EINVAL;
    }
    return BERTH_OK;
}

bool config_key_doc(size_t i, struct config_key_doc *out)
{
    if (i >= NKEYS) {
        return false;
    }
    const struct config_key *k = &keys[i];
    out->path = k->path;
    out->def = k->def ? k->def : "";
    out->help = k->help;
    out->env[0] = '\0';
    if (k->type != CONFIG_JSON) {
        size_t o = (size_t)snprintf(out->env, sizeof(out->env), "BERTH_");
        for (const char *p = k->path; *p && o < sizeof(out->env) - 1; p++) {
            out->env[o++] = (*p == '.') ? '_' : (char)toupper((unsigned char)*p);
        }
        out->env[o] = '\0';
    }
    return true;
}

void config_print_keys(void *file)
{
    FILE *f = file;
    struct config_key_doc d;
    for (size_t i = 0; config_key_doc(i, &d); i++) {
        fprintf(f, "  %-34s %-40s %s%s%s\n", d.path, d.env[0] ? d.env : "(file only)", d.help,
                *d.def ? "; default " : "", d.def);
    }
}
