/*
 * Metadata database connections over the SQL driver (meta_int.h): opening,
 * numbered migrations, the per-connection prepared-statement cache and
 * transactions. One struct meta per thread; see meta.h.
 */
#include "meta_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

/* Migration 26, the same text for both dialects. */
#define MIGRATION_26                                                                               \
    "UPDATE principals SET policy = replace(policy, "                                              \
    "'\"ecr:GetDownloadUrlForLayer\",\"ecr:DescribeImages\"', "                                    \
    "'\"ecr:GetDownloadUrlForLayer\",\"ecr:BatchImportUpstreamImage\",\"ecr:DescribeImages\"');"

/* Schema migrations, applied in order; the index + 1 is the version. Never
 * edit a released entry: append a new one. */
static const char *const migrations[] = {
    /* 1: the registry core */
    "CREATE TABLE repositories ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  created_at INTEGER NOT NULL,"
    "  tag_mutability TEXT NOT NULL DEFAULT 'MUTABLE',"
    "  mutability_filters TEXT,"
    "  scan_on_push INTEGER NOT NULL DEFAULT 0,"
    "  encryption TEXT,"
    "  policy_text TEXT,"
    "  lifecycle_text TEXT,"
    "  lifecycle_evaluated_at INTEGER,"
    "  resource_tags TEXT"
    ");"
    "CREATE TABLE blobs ("
    "  id INTEGER PRIMARY KEY,"
    "  digest TEXT NOT NULL UNIQUE,"
    "  size INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  touched_at INTEGER NOT NULL"
    ");"
    "CREATE INDEX blobs_touched ON blobs(touched_at);"
    "CREATE TABLE repo_blobs ("
    "  repo_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,"
    "  blob_id INTEGER NOT NULL REFERENCES blobs(id) ON DELETE CASCADE,"
    "  PRIMARY KEY (repo_id, blob_id)"
    ") WITHOUT ROWID;"
    "CREATE INDEX repo_blobs_blob ON repo_blobs(blob_id);"
    "CREATE TABLE manifests ("
    "  id INTEGER PRIMARY KEY,"
    "  repo_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,"
    "  blob_id INTEGER NOT NULL REFERENCES blobs(id),"
    "  digest TEXT NOT NULL,"
    "  media_type TEXT NOT NULL,"
    "  is_index INTEGER NOT NULL,"
    "  artifact_type TEXT,"
    "  config_media_type TEXT,"
    "  subject TEXT,"
    "  annotations TEXT,"
    "  size INTEGER NOT NULL,"
    "  image_size INTEGER NOT NULL DEFAULT 0,"
    "  pushed_at INTEGER NOT NULL,"
    "  last_pulled_at INTEGER,"
    "  UNIQUE (repo_id, digest)"
    ");"
    "CREATE INDEX manifests_subject ON manifests(repo_id, subject) WHERE subject IS NOT NULL;"
    "CREATE INDEX manifests_blob ON manifests(blob_id);"
    "CREATE TABLE manifest_refs ("
    "  manifest_id INTEGER NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,"
    "  digest TEXT NOT NULL,"
    "  kind INTEGER NOT NULL,"
    "  PRIMARY KEY (manifest_id, digest, kind)"
    ") WITHOUT ROWID;"
    "CREATE INDEX manifest_refs_digest ON manifest_refs(digest, kind);"
    "CREATE TABLE tags ("
    "  repo_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL,"
    "  manifest_id INTEGER NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,"
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY (repo_id, name)"
    ") WITHOUT ROWID;"
    "CREATE INDEX tags_manifest ON tags(manifest_id);"
    "CREATE TABLE uploads ("
    "  uuid TEXT PRIMARY KEY,"
    "  repo_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,"
    "  algorithm TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX uploads_repo ON uploads(repo_id);",
    /* 2: the media type each manifest descriptor gives a blob (ECR
     * BatchCheckLayerAvailability reports it) */
    "ALTER TABLE manifest_refs ADD COLUMN media_type TEXT;",
    /* 3: principals, their access keys, and server secrets (the auth token
     * signing key). Secret access keys are kept as given: SigV4 needs them
     * to recompute HMACs. The database file is therefore private (0600). */
    "CREATE TABLE principals ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  policy TEXT NOT NULL,"
    "  permissions TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE access_keys ("
    "  access_key_id TEXT PRIMARY KEY,"
    "  principal_id INTEGER NOT NULL REFERENCES principals(id) ON DELETE CASCADE,"
    "  secret TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX access_keys_principal ON access_keys(principal_id);"
    "CREATE TABLE server_secrets ("
    "  name TEXT PRIMARY KEY,"
    "  value BLOB NOT NULL,"
    "  created_at INTEGER NOT NULL"
    ") WITHOUT ROWID;",
    /* 4 (META_SETTINGS_VERSION): image scanning: the registry's settings (the registry scanning
     * configuration), the persistent scan queue, and per image the latest
     * scan with its findings (ECR's ImageScanFinding JSON, in order). All
     * of an image's scan rows go with its manifest row. */
    "CREATE TABLE registry_settings ("
    "  name TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL,"
    "  updated_at INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE scan_jobs ("
    "  id INTEGER PRIMARY KEY,"
    "  manifest_id INTEGER NOT NULL UNIQUE REFERENCES manifests(id) ON DELETE CASCADE,"
    "  queued_at INTEGER NOT NULL,"
    "  claimed_at INTEGER,"
    "  attempts INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX scan_jobs_pending ON scan_jobs(claimed_at, id);"
    "CREATE TABLE scans ("
    "  manifest_id INTEGER PRIMARY KEY REFERENCES manifests(id) ON DELETE CASCADE,"
    "  status TEXT NOT NULL,"
    "  description TEXT,"
    "  requested_at INTEGER,"
    "  completed_at INTEGER,"
    "  source_updated_at INTEGER,"
    "  finding_count INTEGER NOT NULL DEFAULT 0,"
    "  count_undefined INTEGER NOT NULL DEFAULT 0,"
    "  count_informational INTEGER NOT NULL DEFAULT 0,"
    "  count_low INTEGER NOT NULL DEFAULT 0,"
    "  count_medium INTEGER NOT NULL DEFAULT 0,"
    "  count_high INTEGER NOT NULL DEFAULT 0,"
    "  count_critical INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE TABLE scan_findings ("
    "  manifest_id INTEGER NOT NULL REFERENCES scans(manifest_id) ON DELETE CASCADE,"
    "  seq INTEGER NOT NULL,"
    "  severity INTEGER NOT NULL,"
    "  finding TEXT NOT NULL,"
    "  PRIMARY KEY (manifest_id, seq)"
    ") WITHOUT ROWID;",
    /* 5: lifecycle policy previews (StartLifecyclePolicyPreview): one row
     * per repository with the latest preview's state, and its results. */
    "CREATE TABLE lifecycle_previews ("
    "  repo_id INTEGER PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,"
    "  status TEXT NOT NULL,"
    "  policy_text TEXT NOT NULL,"
    "  started_at INTEGER NOT NULL,"
    "  finished_at INTEGER,"
    "  expiring_count INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX lifecycle_previews_status ON lifecycle_previews(status);"
    "CREATE TABLE lifecycle_preview_results ("
    "  repo_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,"
    "  seq INTEGER NOT NULL,"
    "  digest TEXT NOT NULL,"
    "  pushed_at INTEGER NOT NULL,"
    "  tags TEXT,"
    "  rule_priority INTEGER NOT NULL,"
    "  PRIMARY KEY (repo_id, seq)"
    ") WITHOUT ROWID;",
    /* 6: pull-time update exclusions (RegisterPullTimeUpdateExclusion):
     * principals whose pulls leave last_pulled_at as it is. */
    "CREATE TABLE pull_time_exclusions ("
    "  principal_arn TEXT PRIMARY KEY,"
    "  created_at INTEGER NOT NULL"
    ") WITHOUT ROWID;",
    /* 7: repository creation templates (CreateRepositoryCreationTemplate):
     * the prefix ("ROOT" or a namespace) and the template's settings as
     * ECR's JSON, validated by the API. */
    "CREATE TABLE creation_templates ("
    "  prefix TEXT PRIMARY KEY,"
    "  body TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL"
    ") WITHOUT ROWID;",
    /* 8: when each repository's lifecycle policy was last set or changed,
     * so that scheduled enforcement can wait lifecycle.new_policy_delay_seconds
     * (0: set before berth recorded it, enforced as before). */
    "ALTER TABLE repositories ADD COLUMN lifecycle_set_at INTEGER NOT NULL DEFAULT 0;",
    /* 9: ECR's archive storage class (UpdateImageStorageClass): each
     * manifest's class (0 standard, 1 archive), when it was last archived
     * and last restored, and when a restore completes (the image is
     * ACTIVATING until then, 0: never restored). */
    "ALTER TABLE manifests ADD COLUMN storage_class INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE manifests ADD COLUMN archived_at INTEGER;"
    "ALTER TABLE manifests ADD COLUMN activated_at INTEGER;"
    "ALTER TABLE manifests ADD COLUMN active_from INTEGER NOT NULL DEFAULT 0;",
    /* 10: the pull-through cache: rules (CreatePullThroughCacheRule) keyed
     * by ecrRepositoryPrefix with their settings as ECR's JSON; upstream
     * credentials (berth secrets), sealed with AES-256-GCM as base64 text;
     * and when each cached tag was last checked against its upstream. */
    "CREATE TABLE ptc_rules ("
    "  prefix TEXT PRIMARY KEY,"
    "  body TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE upstream_secrets ("
    "  name TEXT PRIMARY KEY,"
    "  sealed TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE ptc_tag_checks ("
    "  repo_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,"
    "  tag TEXT NOT NULL,"
    "  checked_at INTEGER NOT NULL,"
    "  PRIMARY KEY (repo_id, tag)"
    ") WITHOUT ROWID;",
    /* 11: managed signing (PutSigningConfiguration): per image and signing
     * profile, how signing went and the signature it stored. */
    "CREATE TABLE signing_statuses ("
    "  manifest_id INTEGER NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,"
    "  profile_arn TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  failure_code TEXT,"
    "  failure_reason TEXT,"
    "  signature_digest TEXT,"
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY (manifest_id, profile_arn)"
    ") WITHOUT ROWID;",
    /* 12: lifecycle transitions to the archive class: each preview result's
     * action (0 expire, 1 transition) and the image's storage class, and the
     * number of transitions a preview found. */
    "ALTER TABLE lifecycle_preview_results ADD COLUMN action INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE lifecycle_preview_results ADD COLUMN storage_class INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE lifecycle_previews ADD COLUMN transitioning_count INTEGER NOT NULL DEFAULT 0;",
    /* 13: the archived manifests of a repository, so that a /v2 blob pull
     * learns at the cost of one empty index probe that a repository
     * without archived images has nothing to refuse. */
    "CREATE INDEX manifests_archived ON manifests(repo_id) WHERE storage_class = 1;",
    /* 14: the replication queue: per image and destination (region,
     * registry id) of the replication configuration, how its copy goes
     * (IN_PROGRESS, COMPLETE, FAILED), the last failure, the attempts and
     * when the next is due; seq grows each time a push queues it again, so
     * that a copy finishing meanwhile does not mark the newer push done. */
    "CREATE TABLE replication_queue ("
    "  manifest_id INTEGER NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,"
    "  region TEXT NOT NULL,"
    "  registry_id TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  failure_code TEXT,"
    "  failure_reason TEXT,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_at INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL DEFAULT 1,"
    "  queued_at INTEGER NOT NULL,"
    "  updated_at INTEGER NOT NULL,"
    "  PRIMARY KEY (manifest_id, region, registry_id)"
    ") WITHOUT ROWID;"
    "CREATE INDEX replication_queue_due ON replication_queue(next_at) "
    "WHERE status = 'IN_PROGRESS';",
    /* 15: the archive tier: where each blob's bytes are (0 the blob store,
     * 1 the archive tier), how many bytes its archive copy takes and how it
     * is coded (0 as is, 1 zstd); each manifest whose blobs are on their
     * way back from the archive tier (ACTIVATING until they are). */
    "ALTER TABLE blobs ADD COLUMN tier INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE blobs ADD COLUMN archived_size INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE blobs ADD COLUMN archive_codec INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX blobs_archived ON blobs(id) WHERE tier = 1;"
    "ALTER TABLE manifests ADD COLUMN restoring INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX manifests_restoring ON manifests(id) WHERE restoring = 1;",
    /* 16: managed signing is a job: the signatures still to make
     * (status IN_PROGRESS), oldest first. */
    "CREATE INDEX signing_pending "
    "ON signing_statuses(updated_at) "
    "WHERE status = 'IN_PROGRESS';",
    /* 17: leases on background work, so that replicas sharing one database
     * run each job once: who holds a job (its replica's holder id, '' when
     * nobody), until when (a holder that dies stops renewing, and the job
     * is free again after this), and when a holder last finished it. */
    "CREATE TABLE leases ("
    "  name TEXT PRIMARY KEY,"
    "  holder TEXT NOT NULL,"
    "  expires_at INTEGER NOT NULL,"
    "  done_at INTEGER NOT NULL DEFAULT 0"
    ") WITHOUT ROWID;"
    "CREATE INDEX leases_holder ON leases(holder);",
    /* 18: the garbage collection passes that ran (the newest kept:
     * meta_gc_run_record bounds the table), from every replica and from
     * `berth gc`: when, why (periodic, requested, command), on which node,
     * the result and its error, and what was collected. */
    "CREATE TABLE gc_runs ("
    "  id INTEGER PRIMARY KEY,"
    "  started_at INTEGER NOT NULL,"
    "  finished_at INTEGER NOT NULL,"
    "  reason TEXT NOT NULL,"
    "  node TEXT NOT NULL,"
    "  result TEXT NOT NULL,"
    "  error TEXT NOT NULL DEFAULT '',"
    "  blobs_deleted INTEGER NOT NULL DEFAULT 0,"
    "  bytes_freed INTEGER NOT NULL DEFAULT 0,"
    "  orphans_deleted INTEGER NOT NULL DEFAULT 0,"
    "  uploads_removed INTEGER NOT NULL DEFAULT 0"
    ");",
    /* 19: the registry's activity over time, for the console's charts:
     * requests by status class, bytes received and sent, refused
     * authentications, summed over the replicas, per minute (step 60) and
     * per hour (step 3600) from the bucket's start (at, epoch ms); each
     * replica adds what its counters grew by (meta_activity.h), and old
     * buckets are deleted as new ones come. */
    "CREATE TABLE activity ("
    "  step INTEGER NOT NULL,"
    "  at INTEGER NOT NULL,"
    "  requests_2xx INTEGER NOT NULL DEFAULT 0,"
    "  requests_3xx INTEGER NOT NULL DEFAULT 0,"
    "  requests_4xx INTEGER NOT NULL DEFAULT 0,"
    "  requests_5xx INTEGER NOT NULL DEFAULT 0,"
    "  requests_other INTEGER NOT NULL DEFAULT 0,"
    "  bytes_in INTEGER NOT NULL DEFAULT 0,"
    "  bytes_out INTEGER NOT NULL DEFAULT 0,"
    "  auth_failures INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (step, at)"
    ") WITHOUT ROWID;",
    /* 20: upload sessions whose state is shared (the S3 backend), so that
     * one started on a replica continues on another: the bytes committed
     * (size), a generation each commit bumps (a commit from a state
     * another request has moved on from is refused), the part numbers
     * handed out and the multipart upload they belong to, the hash state
     * after the committed bytes, the blob store's own state (parts, the
     * unsent tail's object), and the last commit's time (upload expiry). */
    "ALTER TABLE uploads ADD COLUMN size INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE uploads ADD COLUMN gen INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE uploads ADD COLUMN part_seq INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE uploads ADD COLUMN mpu TEXT;"
    "ALTER TABLE uploads ADD COLUMN hash_state TEXT;"
    "ALTER TABLE uploads ADD COLUMN stage_state TEXT;"
    "ALTER TABLE uploads ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;",
    /* 21: replication copies FAILED because the destination stayed
     * unreachable are still tried: the due index covers every row not
     * COMPLETE. */
    "DROP INDEX replication_queue_due;"
    "CREATE INDEX replication_queue_open ON replication_queue(next_at) "
    "WHERE status <> 'COMPLETE';",
    /* 22: the activity history by API (the console's per-API breakdown
     * over a day or 30 days): the same buckets as activity (migration 19),
     * a row per API that had requests in it ("oci", "ecr", "console",
     * "ops", "none" for requests no API took), requests by status class and
     * bytes; each replica adds its growth in the transaction that adds to
     * activity, so the rows of a bucket sum to its activity row. */
    "CREATE TABLE activity_apis ("
    "  step INTEGER NOT NULL,"
    "  at INTEGER NOT NULL,"
    "  api TEXT NOT NULL,"
    "  requests_2xx INTEGER NOT NULL DEFAULT 0,"
    "  requests_3xx INTEGER NOT NULL DEFAULT 0,"
    "  requests_4xx INTEGER NOT NULL DEFAULT 0,"
    "  requests_5xx INTEGER NOT NULL DEFAULT 0,"
    "  requests_other INTEGER NOT NULL DEFAULT 0,"
    "  bytes_in INTEGER NOT NULL DEFAULT 0,"
    "  bytes_out INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (step, at, api)"
    ") WITHOUT ROWID;",
    /* 23: claims of replication copies, so that several copies to one
     * peer run at once (replication.concurrency_per_peer), never the same
     * one twice: the worker (claimed_by, a lease holder id) and until when
     * (ms; 0 when not claimed); a claim its worker stopped renewing (a
     * replica killed) expires. The index holds the claimed rows only. */
    "ALTER TABLE replication_queue ADD COLUMN claimed_by TEXT;"
    "ALTER TABLE replication_queue ADD COLUMN claimed_until INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX replication_queue_claimed ON replication_queue(region, registry_id) "
    "WHERE claimed_until > 0;",
    /* 24: the shared vulnerability database (meta_vulndb.h): its current
     * generation, one row, naming the blob that holds the database file
     * (kept by the garbage collector while it is current), with what it
     * holds and when it was imported and published. */
    "CREATE TABLE vulndb_shared ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  generation INTEGER NOT NULL,"
    "  digest TEXT NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  records INTEGER NOT NULL,"
    "  imported_at INTEGER NOT NULL,"
    "  published_at INTEGER NOT NULL"
    ");",
    /* 25: the web console's sessions, shared by every replica and kept
     * across restarts (storage/meta/meta_session.h): the SHA-256 (hex) of
     * the session token, never the token; the access key it stands for
     * ("" an anonymous session); its CSRF token; when it started and
     * expires (unix seconds). Expired rows are deleted as sessions start;
     * a key's rows go with the key. */
    "CREATE TABLE console_sessions ("
    "  token_hash TEXT PRIMARY KEY,"
    "  access_key_id TEXT NOT NULL,"
    "  csrf TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX console_sessions_key ON console_sessions(access_key_id, expires_at);"
    "CREATE INDEX console_sessions_expiry ON console_sessions(expires_at);",
    /* 26: the pull and push permission sets gained
     * ecr:BatchImportUpstreamImage (a pull through the cache asks for it):
     * the identity policies `berth keys create` stored from them gain it
     * too. Those policies are compact JSON in which only the two sets write
     * this pair of actions side by side. */
    MIGRATION_26,
};

/* The same migrations in PostgreSQL's dialect, entry for entry: rowid
 * keys are identity columns, integers 64-bit, blobs bytea, and text
 * compares bytewise (COLLATE "C") as in SQLite, so that pages ordered by
 * name or digest come out the same. */
static const char *const pg_migrations[] = {
    /* 1 */
    "CREATE TABLE repositories ("
    "  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    "  name TEXT COLLATE \"C\" NOT NULL UNIQUE,"
    "  created_at BIGINT NOT NULL,"
    "  tag_mutability TEXT NOT NULL DEFAULT 'MUTABLE',"
    "  mutability_filters TEXT,"
    "  scan_on_push BIGINT NOT NULL DEFAULT 0,"
    "  encryption TEXT,"
    "  policy_text TEXT,"
    "  lifecycle_text TEXT,"
    "  lifecycle_evaluated_at BIGINT,"
    "  resource_tags TEXT"
    ");"
    "CREATE TABLE blobs ("
    "  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    "  digest TEXT COLLATE \"C\" NOT NULL UNIQUE,"
    "  size BIGINT NOT NULL,"
    "  created_at BIGINT NOT NULL,"
    "  touched_at BIGINT NOT NULL"
    ");"
    "CREATE INDEX blobs_touched ON blobs(touched_at);"
    "CREATE TABLE repo_blobs ("
    "  repo_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,"
    "  blob_id BIGINT NOT NULL REFERENCES blobs(id) ON DELETE CASCADE,"
    "  PRIMARY KEY (repo_id, blob_id)"
    ");"
    "CREATE INDEX repo_blobs_blob ON repo_blobs(blob_id);"
    "CREATE TABLE manifests ("
    "  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    "  repo_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,"
    "  blob_id BIGINT NOT NULL REFERENCES blobs(id),"
    "  digest TEXT COLLATE \"C\" NOT NULL,"
    "  media_type TEXT NOT NULL,"
    "  is_index BIGINT NOT NULL,"
    "  artifact_type TEXT,"
    "  config_media_type TEXT,"
    "  subject TEXT COLLATE \"C\","
    "  annotations TEXT,"
    "  size BIGINT NOT NULL,"
    "  image_size BIGINT NOT NULL DEFAULT 0,"
    "  pushed_at BIGINT NOT NULL,"
    "  last_pulled_at BIGINT,"
    "  UNIQUE (repo_id, digest)"
    ");"
    "CREATE INDEX manifests_subject ON manifests(repo_id, subject) WHERE subject IS NOT NULL;"
    "CREATE INDEX manifests_blob ON manifests(blob_id);"
    "CREATE TABLE manifest_refs ("
    "  manifest_id BIGINT NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,"
    "  digest TEXT COLLATE \"C\" NOT NULL,"
    "  kind BIGINT NOT NULL,"
    "  PRIMARY KEY (manifest_id, digest, kind)"
    ");"
    "CREATE INDEX manifest_refs_digest ON manifest_refs(digest, kind);"
    "CREATE TABLE tags ("
    "  repo_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,"
    "  name TEXT COLLATE \"C\" NOT NULL,"
    "  manifest_id BIGINT NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,"
    "  updated_at BIGINT NOT NULL,"
    "  PRIMARY KEY (repo_id, name)"
    ");"
    "CREATE INDEX tags_manifest ON tags(manifest_id);"
    "CREATE TABLE uploads ("
    "  uuid TEXT COLLATE \"C\" PRIMARY KEY,"
    "  repo_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,"
    "  algorithm TEXT NOT NULL,"
    "  created_at BIGINT NOT NULL"
    ");"
    "CREATE INDEX uploads_repo ON uploads(repo_id);",
    /* 2 */
    "ALTER TABLE manifest_refs ADD COLUMN media_type TEXT;",
    /* 3 */
    "CREATE TABLE principals ("
    "  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    "  name TEXT COLLATE \"C\" NOT NULL UNIQUE,"
    "  policy TEXT NOT NULL,"
    "  permissions TEXT NOT NULL,"
    "  created_at BIGINT NOT NULL"
    ");"
    "CREATE TABLE access_keys ("
    "  access_key_id TEXT COLLATE \"C\" PRIMARY KEY,"
    "  principal_id BIGINT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,"
    "  secret TEXT NOT NULL,"
    "  created_at BIGINT NOT NULL"
    ");"
    "CREATE INDEX access_keys_principal ON access_keys(principal_id);"
    "CREATE TABLE server_secrets ("
    "  name TEXT COLLATE \"C\" PRIMARY KEY,"
    "  value BYTEA NOT NULL,"
    "  created_at BIGINT NOT NULL"
    ");",
    /* 4 */
    "CREATE TABLE registry_settings ("
    "  name TEXT COLLATE \"C\" PRIMARY KEY,"
    "  value TEXT NOT NULL,"
    "  updated_at BIGINT NOT NULL"
    ");"
    "CREATE TABLE scan_jobs ("
    "  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    "  manifest_id BIGINT NOT NULL UNIQUE REFERENCES manifests(id) ON DELETE CASCADE,"
    "  queued_at BIGINT NOT NULL,"
    "  claimed_at BIGINT,"
    "  attempts BIGINT NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX scan_jobs_pending ON scan_jobs(claimed_at, id);"
    "CREATE TABLE scans ("
    "  manifest_id BIGINT PRIMARY KEY REFERENCES manifests(id) ON DELETE CASCADE,"
    "  status TEXT NOT NULL,"
    "  description TEXT,"
    "  requested_at BIGINT,"
    "  completed_at BIGINT,"
    "  source_updated_at BIGINT,"
    "  finding_count BIGINT NOT NULL DEFAULT 0,"
    "  count_undefined BIGINT NOT NULL DEFAULT 0,"
    "  count_informational BIGINT NOT NULL DEFAULT 0,"
    "  count_low BIGINT NOT NULL DEFAULT 0,"
    "  count_medium BIGINT NOT NULL DEFAULT 0,"
    "  count_high BIGINT NOT NULL DEFAULT 0,"
    "  count_critical BIGINT NOT NULL DEFAULT 0"
    ");"
    "CREATE TABLE scan_findings ("
    "  manifest_id BIGINT NOT NULL REFERENCES scans(manifest_id) ON DELETE CASCADE,"
    "  seq BIGINT NOT NULL,"
    "  severity BIGINT NOT NULL,"
    "  finding TEXT NOT NULL,"
    "  PRIMARY KEY (manifest_id, seq)"
    ");",
    /* 5 */
    "CREATE TABLE lifecycle_previews ("
    "  repo_id BIGINT PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,"
    "  status TEXT NOT NULL,"
    "  policy_text TEXT NOT NULL,"
    "  started_at BIGINT NOT NULL,"
    "  finished_at BIGINT,"
    "  expiring_count BIGINT NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX lifecycle_previews_status ON lifecycle_previews(status);"
    "CREATE TABLE lifecycle_preview_results ("
    "  repo_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,"
    "  seq BIGINT NOT NULL,"
    "  digest TEXT COLLATE \"C\" NOT NULL,"
    "  pushed_at BIGINT NOT NULL,"
    "  tags TEXT,"
    "  rule_priority BIGINT NOT NULL,"
    "  PRIMARY KEY (repo_id, seq)"
    ");",
    /* 6 */
    "CREATE TABLE pull_time_exclusions ("
    "  principal_arn TEXT COLLATE \"C\" PRIMARY KEY,"
    "  created_at BIGINT NOT NULL"
    ");",
    /* 7 */
    "CREATE TABLE creation_templates ("
    "  prefix TEXT COLLATE \"C\" PRIMARY KEY,"
    "  body TEXT NOT NULL,"
    "  created_at BIGINT NOT NULL,"
    "  updated_at BIGINT NOT NULL"
    ");",
    /* 8 */
    "ALTER TABLE repositories ADD COLUMN lifecycle_set_at BIGINT NOT NULL DEFAULT 0;",
    /* 9 */
    "ALTER TABLE manifests ADD COLUMN storage_class BIGINT NOT NULL DEFAULT 0;"
    "ALTER TABLE manifests ADD COLUMN archived_at BIGINT;"
    "ALTER TABLE manifests ADD COLUMN activated_at BIGINT;"
    "ALTER TABLE manifests ADD COLUMN active_from BIGINT NOT NULL DEFAULT 0;",
    /* 10 */
    "CREATE TABLE ptc_rules ("
    "  prefix TEXT COLLATE \"C\" PRIMARY KEY,"
    "  body TEXT NOT NULL,"
    "  created_at BIGINT NOT NULL,"
    "  updated_at BIGINT NOT NULL"
    ");"
    "CREATE TABLE upstream_secrets ("
    "  name TEXT COLLATE \"C\" PRIMARY KEY,"
    "  sealed TEXT NOT NULL,"
    "  created_at BIGINT NOT NULL,"
    "  updated_at BIGINT NOT NULL"
    ");"
    "CREATE TABLE ptc_tag_checks ("
    "  repo_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,"
    "  tag TEXT COLLATE \"C\" NOT NULL,"
    "  checked_at BIGINT NOT NULL,"
    "  PRIMARY KEY (repo_id, tag)"
    ");",
    /* 11 */
    "CREATE TABLE signing_statuses ("
    "  manifest_id BIGINT NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,"
    "  profile_arn TEXT COLLATE \"C\" NOT NULL,"
    "  status TEXT NOT NULL,"
    "  failure_code TEXT,"
    "  failure_reason TEXT,"
    "  signature_digest TEXT,"
    "  updated_at BIGINT NOT NULL,"
    "  PRIMARY KEY (manifest_id, profile_arn)"
    ");",
    /* 12 */
    "ALTER TABLE lifecycle_preview_results ADD COLUMN action BIGINT NOT NULL DEFAULT 0;"
    "ALTER TABLE lifecycle_preview_results ADD COLUMN storage_class BIGINT NOT NULL DEFAULT 0;"
    "ALTER TABLE lifecycle_previews ADD COLUMN transitioning_count BIGINT NOT NULL DEFAULT 0;",
    /* 13 */
    "CREATE INDEX manifests_archived ON manifests(repo_id) WHERE storage_class = 1;",
    /* 14 */
    "CREATE TABLE replication_queue ("
    "  manifest_id BIGINT NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,"
    "  region TEXT COLLATE \"C\" NOT NULL,"
    "  registry_id TEXT COLLATE \"C\" NOT NULL,"
    "  status TEXT NOT NULL,"
    "  failure_code TEXT,"
    "  failure_reason TEXT,"
    "  attempts BIGINT NOT NULL DEFAULT 0,"
    "  next_at BIGINT NOT NULL,"
    "  seq BIGINT NOT NULL DEFAULT 1,"
    "  queued_at BIGINT NOT NULL,"
    "  updated_at BIGINT NOT NULL,"
    "  PRIMARY KEY (manifest_id, region, registry_id)"
    ");"
    "CREATE INDEX replication_queue_due ON replication_queue(next_at) "
    "WHERE status = 'IN_PROGRESS';",
    /* 15 */
    "ALTER TABLE blobs ADD COLUMN tier BIGINT NOT NULL DEFAULT 0;"
    "ALTER TABLE blobs ADD COLUMN archived_size BIGINT NOT NULL DEFAULT 0;"
    "ALTER TABLE blobs ADD COLUMN archive_codec BIGINT NOT NULL DEFAULT 0;"
    "CREATE INDEX blobs_archived ON blobs(id) WHERE tier = 1;"
    "ALTER TABLE manifests ADD COLUMN restoring BIGINT NOT NULL DEFAULT 0;"
    "CREATE INDEX manifests_restoring ON manifests(id) WHERE restoring = 1;",
    /* 16 */
    "CREATE INDEX signing_pending "
    "ON signing_statuses(updated_at) "
    "WHERE status = 'IN_PROGRESS';",
    /* 17 */
    "CREATE TABLE leases ("
    "  name TEXT COLLATE \"C\" PRIMARY KEY,"
    "  holder TEXT COLLATE \"C\" NOT NULL,"
    "  expires_at BIGINT NOT NULL,"
    "  done_at BIGINT NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX leases_holder ON leases(holder);",
    /* 18 */
    "CREATE TABLE gc_runs ("
    "  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    "  started_at BIGINT NOT NULL,"
    "  finished_at BIGINT NOT NULL,"
    "  reason TEXT NOT NULL,"
    "  node TEXT NOT NULL,"
    "  result TEXT NOT NULL,"
    "  error TEXT NOT NULL DEFAULT '',"
    "  blobs_deleted BIGINT NOT NULL DEFAULT 0,"
    "  bytes_freed BIGINT NOT NULL DEFAULT 0,"
    "  orphans_deleted BIGINT NOT NULL DEFAULT 0,"
    "  uploads_removed BIGINT NOT NULL DEFAULT 0"
    ");",
    /* 19 */
    "CREATE TABLE activity ("
    "  step BIGINT NOT NULL,"
    "  at BIGINT NOT NULL,"
    "  requests_2xx BIGINT NOT NULL DEFAULT 0,"
    "  requests_3xx BIGINT NOT NULL DEFAULT 0,"
    "  requests_4xx BIGINT NOT NULL DEFAULT 0,"
    "  requests_5xx BIGINT NOT NULL DEFAULT 0,"
    "  requests_other BIGINT NOT NULL DEFAULT 0,"
    "  bytes_in BIGINT NOT NULL DEFAULT 0,"
    "  bytes_out BIGINT NOT NULL DEFAULT 0,"
    "  auth_failures BIGINT NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (step, at)"
    ");",
    /* 20 */
    "ALTER TABLE uploads ADD COLUMN size BIGINT NOT NULL DEFAULT 0;"
    "ALTER TABLE uploads ADD COLUMN gen BIGINT NOT NULL DEFAULT 0;"
    "ALTER TABLE uploads ADD COLUMN part_seq BIGINT NOT NULL DEFAULT 0;"
    "ALTER TABLE uploads ADD COLUMN mpu TEXT;"
    "ALTER TABLE uploads ADD COLUMN hash_state TEXT;"
    "ALTER TABLE uploads ADD COLUMN stage_state TEXT;"
    "ALTER TABLE uploads ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;",
    /* 21 */
    "DROP INDEX replication_queue_due;"
    "CREATE INDEX replication_queue_open ON replication_queue(next_at) "
    "WHERE status <> 'COMPLETE';",
    /* 22 */
    "CREATE TABLE activity_apis ("
    "  step BIGINT NOT NULL,"
    "  at BIGINT NOT NULL,"
    "  api TEXT COLLATE \"C\" NOT NULL,"
    "  requests_2xx BIGINT NOT NULL DEFAULT 0,"
    "  requests_3xx BIGINT NOT NULL DEFAULT 0,"
    "  requests_4xx BIGINT NOT NULL DEFAULT 0,"
    "  requests_5xx BIGINT NOT NULL DEFAULT 0,"
    "  requests_other BIGINT NOT NULL DEFAULT 0,"
    "  bytes_in BIGINT NOT NULL DEFAULT 0,"
    "  bytes_out BIGINT NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (step, at, api)"
    ");",
    /* 23 */
    "ALTER TABLE replication_queue ADD COLUMN claimed_by TEXT COLLATE \"C\";"
    "ALTER TABLE replication_queue ADD COLUMN claimed_until BIGINT NOT NULL DEFAULT 0;"
    "CREATE INDEX replication_queue_claimed ON replication_queue(region, registry_id) "
    "WHERE claimed_until > 0;",
    /* 24 */
    "CREATE TABLE vulndb_shared ("
    "  id BIGINT PRIMARY KEY CHECK (id = 1),"
    "  generation BIGINT NOT NULL,"
    "  digest TEXT COLLATE \"C\" NOT NULL,"
    "  size BIGINT NOT NULL,"
    "  records BIGINT NOT NULL,"
    "  imported_at BIGINT NOT NULL,"
    "  published_at BIGINT NOT NULL"
    ");",
    /* 25 */
    "CREATE TABLE console_sessions ("
    "  token_hash TEXT COLLATE \"C\" PRIMARY KEY,"
    "  access_key_id TEXT COLLATE \"C\" NOT NULL,"
    "  csrf TEXT NOT NULL,"
    "  created_at BIGINT NOT NULL,"
    "  expires_at BIGINT NOT NULL"
    ");"
    "CREATE INDEX console_sessions_key ON console_sessions(access_key_id, expires_at);"
    "CREATE INDEX console_sessions_expiry ON console_sessions(expires_at);",
    /* 26 */
    MIGRATION_26,
};

#define NMIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

_Static_assert(sizeof(migrations) / sizeof(migrations[0]) ==
                   sizeof(pg_migrations) / sizeof(pg_migrations[0]),
               "every migration needs its PostgreSQL text in pg_migrations");

enum berth_err meta_fail(struct meta *m, const char *what)
{
    return m->drv->error(m->conn, what);
}

int64_t meta_changes(struct meta *m)
{
    return m->drv->changes(m->conn);
}

int64_t meta_last_id(struct meta *m)
{
    return m->drv->last_id(m->conn);
}

struct meta_stmt *meta_prepare(struct meta *m, const char *sql)
{
    uintptr_t h = ((uintptr_t)sql >> 3) % META_STMT_CACHE;
    for (size_t probe = 0; probe < META_STMT_CACHE; probe++) {
        struct meta_stmt_slot *slot = &m->cache[(h + probe) % META_STMT_CACHE];
        if (slot->sql == sql) {
            return slot->stmt;
        }
        if (slot->sql == NULL) {
            struct meta_stmt *st = m->drv->prepare(m->conn, sql);
            if (st == NULL) {
                return NULL; /* logged */
            }
            slot->sql = sql;
            slot->stmt = st;
            return st;
        }
    }
    /* The cache is sized well above the number of distinct statements;
     * reaching here is a programming error, but stay correct: the caller
     * gets an error rather than an uncached statement that would leak. */
    log_error("event=db_error op=prepare msg=\"statement cache full\"");
    return NULL;
}

void meta_done(struct meta_stmt *st)
{
    if (st != NULL) {
        st->drv->reset(st);
    }
}

enum berth_err meta_col_text(struct meta_stmt *st, int i, char *dst, size_t cap)
{
    const char *t = meta_col_cstr(st, i);
    if (t == NULL) {
        dst[0] = '\0';
        return BERTH_OK;
    }
    size_t n = meta_col_bytes(st, i);
    if (n >= cap) {
        memcpy(dst, t, cap - 1);
        dst[cap - 1] = '\0';
        return BERTH_ETOOBIG;
    }
    memcpy(dst, t, n + 1);
    return BERTH_OK;
}

void meta_bind_text_or_null(struct meta_stmt *st, int i, const char *s)
{
    if (s == NULL || *s == '\0') {
        meta_bind_null(st, i);
    } else {
        meta_bind_text(st, i, s);
    }
}

enum berth_err meta_step_done(struct meta *m, struct meta_stmt *st, const char *what)
{
    enum berth_err err = BERTH_OK;
    if (meta_step(st) == META_STEP_ERROR) {
        err = m->drv->is_unique_violation(m->conn) ? BERTH_EEXIST : meta_fail(m, what);
    }
    meta_done(st);
    return err;
}

enum berth_err meta_page(struct meta *m, struct meta_stmt *st, int64_t limit, meta_row_fn row,
                         void *ctx, bool *has_more, const char *what)
{
    enum berth_err err = BERTH_OK;
    int64_t n = 0;
    bool more = false;
    enum meta_step rc;
    while ((rc = meta_step(st)) == META_STEP_ROW) {
        if (limit >= 0 && n == limit) {
            more = true;
            break;
        }
        n++;
        if (row(st, ctx) != 0) {
            break;
        }
    }
    if (rc == META_STEP_ERROR) {
        err = meta_fail(m, what);
    }
    meta_done(st);
    if (err == BERTH_OK && has_more != NULL) {
        *has_more = more;
    }
    return err;
}

enum berth_err meta_check_room(struct meta *m, struct meta_stmt *st, const char *key, size_t max,
                               const char *what)
{
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, key);
    if (meta_step(st) != META_STEP_ROW) {
        enum berth_err rc = meta_fail(m, what);
        meta_done(st);
        return rc;
    }
    int64_t count = meta_col_int64(st, 0);
    bool exists = meta_col_int(st, 1) != 0;
    meta_done(st);
    if (exists) {
        return BERTH_EEXIST;
    }
    return count >= 0 && (size_t)count >= max ? BERTH_ETOOBIG : BERTH_OK;
}

enum berth_err meta_get_text(struct meta *m, struct meta_stmt *st, char **out)
{
    enum meta_step rc = meta_step(st);
    enum berth_err err = BERTH_OK;
    if (rc == META_STEP_ROW) {
        const char *t = meta_col_cstr(st, 0);
        char *copy = NULL;
        if (t != NULL) {
            copy = strdup(t);
            if (copy == NULL) {
                err = BERTH_ENOMEM;
            }
        }
        if (err == BERTH_OK) {
            *out = copy;
        }
    } else if (rc == META_STEP_DONE) {
        err = BERTH_ENOTFOUND;
    } else {
        err = meta_fail(m, "get_text");
    }
    meta_done(st);
    return err;
}

int meta_schema_version(struct meta *m)
{
    return m->drv->schema_version(m->conn);
}

/* Refuse a database that a newer berth has migrated past what this one
 * knows: its schema may not be what these statements expect. */
static enum berth_err check_not_newer(int version)
{
    if (version > NMIGRATIONS) {
        log_error("event=db_error op=migrate msg=\"database schema %d is newer than this berth "
                  "(%d)\"",
                  version, NMIGRATIONS);
        return BERTH_EDB;
    }
    return BERTH_OK;
}

static enum berth_err migrate(struct meta *m)
{
    int current = meta_schema_version(m);
    if (current >= NMIGRATIONS) {
        return check_not_newer(current);
    }
    /* Under the write lock, re-read the version: another process or
     * thread may have migrated meanwhile. */
    enum berth_err rc = meta_begin(m);
    if (rc != BERTH_OK) {
        return rc;
    }
    int version = meta_schema_version(m);
    if (version < 0) {
        meta_rollback(m);
        return BERTH_EDB;
    }
    rc = check_not_newer(version);
    if (rc != BERTH_OK) {
        meta_rollback(m);
        return rc;
    }
    for (int v = version; v < NMIGRATIONS; v++) {
        rc = m->drv->exec(m->conn, meta_sql(m, migrations[v], pg_migrations[v]), "migrate");
        if (rc != BERTH_OK) {
            meta_rollback(m);
            return rc;
        }
        rc = m->drv->set_schema_version(m->conn, v + 1);
        if (rc != BERTH_OK) {
            meta_rollback(m);
            return rc;
        }
        log_info("event=db_migrated version=%d", v + 1);
    }
    return meta_commit(m);
}

static const struct meta_driver *find_driver(const char *backend)
{
    if (backend == NULL || strcmp(backend, "sqlite") == 0) {
        return &meta_sqlite_driver;
    }
    if (strcmp(backend, "postgres") == 0) {
        return &meta_postgres_driver;
    }
    return NULL;
}

bool meta_backend_known(const char *backend)
{
    return find_driver(backend) != NULL;
}

enum berth_err meta_open(const char *path, bool sync_full, struct meta **out)
{
    return meta_open_backend("sqlite", path, sync_full, out);
}

static enum berth_err open_conn(const char *backend, const char *target, bool sync_full,
                                bool migrated, struct meta **out)
{
    const struct meta_driver *drv = find_driver(backend);
    if (drv == NULL) {
        log_error("event=db_error op=open msg=\"unknown metadata backend %s\"", backend);
        return BERTH_EINVAL;
    }
    struct meta *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return BERTH_ENOMEM;
    }
    m->drv = drv;
    enum berth_err rc = m->drv->open(target, sync_full, &m->conn);
    if (rc == BERTH_OK && migrated) {
        rc = migrate(m);
    }
    if (rc != BERTH_OK) {
        meta_close(m);
        return rc;
    }
    *out = m;
    return BERTH_OK;
}

enum berth_err meta_open_backend(const char *backend, const char *target, bool sync_full,
                                 struct meta **out)
{
    return open_conn(backend, target, sync_full, true, out);
}

enum berth_err meta_open_unmigrated(const char *backend, const char *target, struct meta **out)
{
    return open_conn(backend, target, false, false, out);
}

void meta_close(struct meta *m)
{
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < META_STMT_CACHE; i++) {
        if (m->cache[i].stmt != NULL) {
            m->drv->finalize(m->cache[i].stmt);
        }
    }
    if (m->conn != NULL) {
        m->drv->close(m->conn);
    }
    free(m);
}

enum berth_err meta_begin(struct meta *m)
{
    enum berth_err rc = m->drv->begin_write(m->conn);
    if (rc == BERTH_OK) {
        m->in_txn = 1;
    }
    return rc;
}

enum berth_err meta_begin_read(struct meta *m)
{
    enum berth_err rc = m->drv->begin_read(m->conn);
    if (rc == BERTH_OK) {
        m->in_txn = 1;
    }
    return rc;
}

enum berth_err meta_commit(struct meta *m)
{
    enum berth_err rc = m->drv->commit(m->conn);
    if (rc != BERTH_OK) {
        meta_rollback(m);
        return rc;
    }
    m->in_txn = 0;
    return BERTH_OK;
}

bool meta_in_transaction(const struct meta *m)
{
    return m->in_txn != 0;
}

void meta_rollback(struct meta *m)
{
    m->drv->rollback(m->conn);
    m->in_txn = 0;
}

/* ---- wake-ups among replicas ---- */

/* A channel name is a plain identifier: it goes into LISTEN's text. */
static bool channel_ok(const char *channel)
{
    if (channel == NULL || *channel == '\0' || strlen(channel) > 63) {
        return false;
    }
    for (const char *p = channel; *p != '\0'; p++) {
        if (!((*p >= 'a' && *p <= 'z') || *p == '_')) {
            return false;
        }
    }
    return true;
}

bool meta_can_listen(const struct meta *m)
{
    return m->drv->listen != NULL && m->drv->wait_notify != NULL;
}

enum berth_err meta_notify(struct meta *m, const char *channel)
{
    if (!channel_ok(channel)) {
        return BERTH_EINVAL;
    }
    if (!meta_can_listen(m)) {
        return BERTH_OK;
    }
    struct meta_stmt *st = meta_prepare(m, "SELECT pg_notify(?1, '')");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, channel);
    enum berth_err err = meta_step(st) == META_STEP_ROW ? BERTH_OK : meta_fail(m, "notify");
    meta_done(st);
    return err;
}

enum berth_err meta_listen(struct meta *m, const char *channel)
{
    if (!channel_ok(channel)) {
        return BERTH_EINVAL;
    }
    if (!meta_can_listen(m)) {
        return BERTH_EUNSUPPORTED;
    }
    return m->drv->listen(m->conn, channel);
}

enum berth_err meta_wait_notify(struct meta *m, int64_t timeout_ms, bool *notified)
{
    *notified = false;
    if (!meta_can_listen(m)) {
        return BERTH_EUNSUPPORTED;
    }
    return m->drv->wait_notify(m->conn, timeout_ms, notified);
}
