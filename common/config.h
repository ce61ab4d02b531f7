/*
 * Configuration: built-in defaults, then the JSON config file, then BERTH_*
 * environment variables, then command-line flags, each overriding the last.
 * Every key is one row in the table in common/config.c; its environment
 * variable is BERTH_ + the dotted path upper-cased with '.' as '_'
 * (http.threads -> BERTH_HTTP_THREADS). Loading is single-threaded; a
 * loaded config is read-only and may be shared by all threads.
 */
#ifndef BERTH_CONFIG_H
#define BERTH_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/err.h"

struct berth_config {
    char *config_path; /* the file that was loaded, or NULL */

    char *listen;       /* ADDR:PORT */
    char *root;         /* data directory */
    char *public_url;   /* how clients reach us; "" = http://<listen> */
    char *replica_name; /* this server's name in the GC history; "" = <host>:<port> */
    bool anonymous;     /* allow anonymous access on a non-loopback address */

    char *log_level;
    bool log_access;
    char *log_format; /* "text" (key=value) or "json" */

    char *tls_cert_file;           /* PEM chain; "" = plain HTTP */
    char *tls_key_file;            /* PEM key */
    char *tls_client_ca_file;      /* PEM CAs for mutual TLS; "" = none */
    json_t *tls_client_principals; /* borrowed from doc: client certificate names to key ids */

    bool metrics_enabled;                    /* serve GET /metrics */
    bool metrics_require_auth;               /* /metrics asks for an access key */
    int64_t metrics_activity_sample_seconds; /* activity history samples; 0: none */
    int64_t metrics_repository_series;       /* repositories with push/pull series; 0: none */

    int64_t http_threads;
    int64_t http_connection_limit;
    int64_t http_timeout_seconds;
    int64_t http_memory_limit_kib;
    int64_t http_upload_memory_limit_kib;
    int64_t http_upload_connection_limit;
    int64_t http_unauthenticated_body_max_mib;
    int64_t http_head_timeout_seconds;
    int64_t http_min_body_rate_bytes;
    int64_t http_per_client_connection_limit;
    int64_t http_concurrent_bodies;
    int64_t http_drain_seconds;
    int64_t http_body_slot_min_rate_bytes;
    bool http_epoll;
    bool http_turbo;

    bool storage_fsync;
    bool storage_delete_enabled;
    bool storage_delete_referenced;
    bool storage_sparse_manifests;
    bool storage_auto_create;
    int64_t storage_manifest_max_bytes;
    int64_t storage_upload_expiry_seconds;
    int64_t storage_catalog_max_entries;
    int64_t storage_tags_max_entries;
    int64_t storage_min_free_bytes;          /* /readyz fails below this much free disk */
    int64_t storage_archive_restore_seconds; /* an archived image is ACTIVATING this long */
    char *storage_archive_path;              /* the archive tier ("" <root>/archive, "off") */
    int64_t storage_archive_zstd_level;      /* 0: archive copies as they are */
    char *storage_archive_s3_bucket;         /* "": storage.s3.bucket */
    char *storage_archive_s3_prefix;         /* "": <storage.s3.prefix>archive/ */
    char *storage_archive_s3_storage_class;  /* "": none sent (the bucket's default) */

    char *storage_backend; /* "filesystem" or "s3" */
    char *storage_s3_endpoint;
    char *storage_s3_region;
    char *storage_s3_bucket;
    char *storage_s3_prefix;
    char *storage_s3_access_key_id;
    char *storage_s3_secret_access_key;
    bool storage_s3_path_style;
    char *storage_s3_tls_ca_file;
    bool storage_s3_redirect;
    int64_t storage_s3_cache_max_bytes;
    int64_t storage_s3_orphan_upload_grace;

    char *meta_backend;      /* "sqlite" or "postgres" */
    char *meta_postgres_dsn; /* libpq connection string when postgres */
    int64_t meta_postgres_query_timeout_ms;
    int64_t meta_lease_seconds;

    char *registry_id;     /* 12 digits, the ECR account id */
    char *registry_region; /* used in ARNs */

    bool auth_required;
    int64_t auth_token_ttl_seconds;
    char *auth_scheme;               /* "basic" (ECR's challenge) or "bearer" (token protocol) */
    char *auth_service;              /* bearer service name; "" = public_url's host[:port] */
    int64_t auth_bearer_ttl_seconds; /* lifetime of bearer access tokens */
    int64_t auth_refresh_token_ttl_seconds; /* lifetime of refresh tokens (offline_token) */
    json_t *auth_keys;                      /* borrowed from doc: array of key objects, or NULL */
    json_t *auth_regions; /* borrowed from doc: array of accepted regions, or NULL */

    int64_t console_session_ttl_seconds;

    bool gc_enabled;
    int64_t gc_interval_seconds;
    int64_t gc_grace_seconds;

    bool lifecycle_enabled;
    int64_t lifecycle_interval_seconds;
    int64_t lifecycle_new_policy_delay_seconds;

    int64_t scan_workers;
    char *scan_hook;

    char *signing_profiles_dir; /* <profile>.pem files: a key and its certificate chain */
    int64_t scan_hook_timeout_seconds;
    int64_t scan_hook_max_output_bytes;
    int64_t scan_max_image_bytes;
    int64_t scan_quota_seconds;
    int64_t scan_vulndb_poll_seconds;

    char *pull_through_secrets_key;      /* 64 hex digits, or "" for the key file */
    char *pull_through_secrets_key_file; /* "" = <root>/secrets.key */
    int64_t pull_through_tag_ttl_seconds;
    int64_t pull_through_timeout_seconds;
    json_t *replication_peers; /* borrowed from doc: destinations to peer registries */
    int64_t replication_retry_initial_ms;
    int64_t replication_retry_max_ms;
    int64_t replication_timeout_seconds;
    int64_t replication_failed_after_seconds;
    int64_t replication_poll_seconds;
    int64_t replication_concurrency_per_peer;
    json_t *doc; /* the parsed config file (owned), or NULL */
};

/* Fill cfg with the built-in defaults. Returns BERTH_ENOMEM only. */
enum berth_err config_init(struct berth_config *cfg);

/* Release everything config_init and the loaders allocated. */
void config_fini(struct berth_config *cfg);

/* Apply the JSON file at path. On error writes a one-line reason into
 * err (cap bytes) and returns BERTH_ENOTFOUND, BERTH_EINVAL or BERTH_EIO. */
enum berth_err config_load_file(struct berth_config *cfg, const char *path, char *err, size_t cap);

/* Apply every BERTH_* environment variable that names a key. Same error
 * reporting as config_load_file. */
enum berth_err config_load_env(struct berth_config *cfg, char *err, size_t cap);

/* Set one key by dotted path from text ("true", "8", "127.0.0.1:5000").
 * BERTH_ENOTFOUND for an unknown key, BERTH_EINVAL for a bad value. */
enum berth_err config_set(struct berth_config *cfg, const char *path, const char *value, char *err,
                          size_t cap);

/* Check cross-key rules (listen syntax, registry id shape). */
enum berth_err config_validate(const struct berth_config *cfg, char *err, size_t cap);

/* Split cfg->listen into host and port. host gets the address without
 * brackets. BERTH_EINVAL when malformed. */
enum berth_err config_listen_parts(const char *listen, char *host, size_t host_cap, uint16_t *port);

/* Print every key, its environment variable, default and help to f. */
void config_print_keys(void *file);

/* One key of the configuration table, as --help and the man page show it. */
struct config_key_doc {
    const char *path; /* "http.threads" */
    char env[128];    /* "BERTH_HTTP_THREADS"; "" when the key is read from the file only */
    const char *def;  /* the default as text; "" when none */
    const char *help; /* one sentence */
};

/* Fill *out with the i-th key of the table (0-based); false (out untouched) past the last.
 * The strings are static. Thread-safe. */
bool config_key_doc(size_t i, struct config_key_doc *out);

#endif
