/*
 * The metadata database (SQLite in WAL mode): repositories, blobs, links of
 * blobs to repositories, manifests and their references, tags, upload
 * sessions. A struct meta is one connection; it must be used by one thread
 * at a time (the store hands each thread its own). Every function may block
 * on the database (busy_timeout 10 s). Strings in result structs are copied
 * into fixed buffers; callbacks receive borrowed strings valid only during
 * the call. Timestamps are milliseconds since the Unix epoch.
 */
#ifndef BERTH_META_H
#define BERTH_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/spec/digest.h"
#include "storage/spec/manifest.h"
#include "common/err.h"
#include "storage/spec/names.h"
#include "common/rand.h"

/* Media types longer than this are refused (the manifest parser's limit). */
#define META_MEDIA_TYPE_MAX MANIFEST_MEDIA_TYPE_MAX

struct meta;

/* Open (creating if needed) the database at path and apply pending
 * migrations. sync_full selects synchronous=FULL (each commit durable)
 * rather than NORMAL. BERTH_EDB on failure. */
enum berth_err meta_open(const char *path, bool sync_full, struct meta **out);

/* The same on the backend named backend: "sqlite" (target: the database
 * file) or "postgres" (target: a libpq connection string). BERTH_EINVAL
 * for another name. */
enum berth_err meta_open_backend(const char *backend, const char *target, bool sync_full,
                                 struct meta **out);

/* Whether backend names a metadata backend meta_open_backend knows. */
bool meta_backend_known(const char *backend);

/* Close a connection (NULL is fine). */
void meta_close(struct meta *m);

/* The schema version after migrations (SQLite's PRAGMA user_version,
 * PostgreSQL's table berth_schema). */
int meta_schema_version(struct meta *m);

/* Write transaction (BEGIN IMMEDIATE; on PostgreSQL an advisory lock every
 * write takes): one writer at a time, so everything checked inside it
 * stays true until commit. */
enum berth_err meta_begin(struct meta *m);
/* Read transaction (BEGIN DEFERRED): a consistent snapshot for reads. */
enum berth_err meta_begin_read(struct meta *m);
enum berth_err meta_commit(struct meta *m);
/* Roll back if a transaction is open; always safe to call. */
void meta_rollback(struct meta *m);
/* Whether a transaction begun with meta_begin/meta_begin_read is open. */
bool meta_in_transaction(const struct meta *m);

/* ---- wake-ups among replicas (PostgreSQL LISTEN/NOTIFY) ---- */

/* The channel a queued replication copy is announced on. */
#define META_CHANNEL_REPLICATION "berth_replication"
/* The channel a new generation of the shared vulnerability database is
 * announced on (meta_vulndb.h). */
#define META_CHANNEL_VULNDB "berth_vulndb"

/* Announce on channel (a plain identifier: [a-z_]) to every connection
 * listening on it, in any process: inside a transaction, when it commits
 * (and not if it rolls back). Nothing on SQLite (one process; its
 * threads wake each other in memory). */
enum berth_err meta_notify(struct meta *m, const char *channel);

/* Whether m's backend carries notifications among processes. */
bool meta_can_listen(const struct meta *m);

/* Listen on channel on m's connection, which is then given to
 * meta_wait_notify alone (no other statements). Connects again first when
 * the connection was lost (the listening is then new: notifications sent
 * meanwhile were missed). BERTH_EUNSUPPORTED without meta_can_listen,
 * BERTH_EUNAVAILABLE when the server cannot be reached. */
enum berth_err meta_listen(struct meta *m, const char *channel);

/* Wait up to timeout_ms for a notification on what m listens to;
 * *notified tells whether one (or several) came. BERTH_EUNAVAILABLE when
 * the connection is lost (meta_listen again). */
enum berth_err meta_wait_notify(struct meta *m, int64_t timeout_ms, bool *notified);

/* ---- repositories ---- */

enum meta_mutability {
    META_MUTABLE = 0,
    META_IMMUTABLE,
    META_IMMUTABLE_WITH_EXCLUSION,
    META_MUTABLE_WITH_EXCLUSION,
};

/* "MUTABLE", ... ; and back (-1 when unknown). */
const char *meta_mutability_name(enum meta_mutability m);
int meta_mutability_parse(const char *s);

struct meta_repo {
    int64_t id;
    char name[NAMES_REPO_MAX + 1];
    int64_t created_at;
    enum meta_mutability mutability;
    bool scan_on_push;
    int64_t lifecycle_evaluated_at; /* 0 = never */
    /* when the lifecycle policy was last set or changed (epoch ms); 0 =
     * before berth recorded it */
    int64_t lifecycle_set_at;
};

/* Text attributes of a repository, stored as given (JSON or plain). */
enum meta_repo_text {
    META_REPO_MUTABILITY_FILTERS, /* JSON array of {filterType, filter} */
    META_REPO_ENCRYPTION,         /* JSON object encryptionConfiguration */
    META_REPO_POLICY,             /* repository policy text */
    META_REPO_LIFECYCLE,          /* lifecycle policy text */
    META_REPO_RESOURCE_TAGS,      /* JSON array of {Key, Value} */
};

/* BERTH_ENOTFOUND when there is no such repository. */
enum berth_err meta_repo_get(struct meta *m, const char *name, struct meta_repo *out);
enum berth_err meta_repo_get_by_id(struct meta *m, int64_t id, struct meta_repo *out);

/* Create a repository; BERTH_EEXIST if the name is taken. */
enum berth_err meta_repo_create(struct meta *m, const char *name, int64_t now,
                                struct meta_repo *out);

/* Get the repository, creating it when missing. Outside a transaction a
 * new repository's row does not wait for a log sync of its own (the next
 * synced commit covers it: a push's first blob). */
enum berth_err meta_repo_ensure(struct meta *m, const char *name, int64_t now,
                                struct meta_repo *out);

/* Delete a repository and everything that hangs off it (tags, manifests,
 * links, uploads rows). Blob rows stay for the garbage collector. */
enum berth_err meta_repo_delete(struct meta *m, int64_t id);

/* Set mutability / scan-on-push / lifecycle evaluation time. */
enum berth_err meta_repo_set_mutability(struct meta *m, int64_t id, enum meta_mutability mu);
enum berth_err meta_repo_set_scan_on_push(struct meta *m, int64_t id, bool on);
enum berth_err meta_repo_set_lifecycle_evaluated(struct meta *m, int64_t id, int64_t when);
/* Record when the repository's lifecycle policy was set or changed. */
enum berth_err meta_repo_set_lifecycle_set_at(struct meta *m, int64_t id, int64_t when);

/* Read a text attribute into a new string (caller frees; *out is NULL when
 * unset). Set it (NULL clears). */
enum berth_err meta_repo_get_text(struct meta *m, int64_t id, enum meta_repo_text which,
                                  char **out);
enum berth_err meta_repo_set_text(struct meta *m, int64_t id, enum meta_repo_text which,
                                  const char *value);

/* Callback for listings: return 0 to continue, non-zero to stop early. */
typedef int (*meta_repo_cb)(void *arg, const struct meta_repo *repo);

/* Repositories with name > after (NULL = from the start) in byte order, at
 * most limit of them; *has_more tells whether more follow. */
enum berth_err meta_repo_list(struct meta *m, const char *after, int64_t limit, meta_repo_cb cb,
                              void *arg, bool *has_more);

/* Number of repositories. */
enum berth_err meta_repo_count(struct meta *m, int64_t *out);

/* Number of manifests (images) in a repository. */
enum berth_err meta_repo_image_count(struct meta *m, int64_t repo_id, int64_t *out);

/* A repository with the figures the console's list shows and sorts by. */
struct meta_repo_summary {
    struct meta_repo repo;
    bool has_policy; /* a repository policy is set */
    int64_t images;  /* manifests */
    int64_t tags;
    int64_t size;      /* bytes of the distinct blobs linked to it */
    int64_t pushed_at; /* newest manifest's push (epoch ms); 0 = none */
    int64_t pulled_at; /* latest recorded pull (epoch ms); 0 = never */
};

enum meta_repo_sort {
    META_REPO_SORT_NAME,
    META_REPO_SORT_IMAGES,
    META_REPO_SORT_TAGS,
    META_REPO_SORT_SIZE,
    META_REPO_SORT_PUSHED,
    META_REPO_SORT_PULLED,
    META_REPO_SORT_COUNT
};

typedef int (*meta_repo_summary_cb)(void *arg, const struct meta_repo_summary *s);

/* Every repository whose name contains contains (NULL or "": all; matched
 * byte for byte, names are lower case) with its figures, ordered by sort
 * (descending when desc; ties by name), one query. cb's non-zero return
 * stops the listing (BERTH_OK). */
enum berth_err meta_repo_summaries(struct meta *m, const char *contains, enum meta_repo_sort sort,
                                   bool desc, meta_repo_summary_cb cb, void *arg);

/* ---- blobs ---- */

/* Where a blob's bytes are: the blob store, or the archive tier (the
 * bytes of blobs only archived images use, storage/store/tier.h). */
enum meta_blob_tier { META_TIER_STANDARD = 0, META_TIER_ARCHIVE = 1 };

struct meta_blob {
    int64_t id;
    char digest[DIGEST_STR_MAX];
    int64_t size;
    int64_t created_at;
    int64_t touched_at;
    enum meta_blob_tier tier;
    int64_t archived_size; /* bytes of the archive copy (tier archive) */
    int archive_codec;     /* how the archive copy is coded (storage/store/tier.h) */
};

/* A blob by digest, anywhere in the store. BERTH_ENOTFOUND. */
enum berth_err meta_blob_get(struct meta *m, const char *digest, struct meta_blob *out);

/* A blob by digest that is linked to the repository. BERTH_ENOTFOUND. */
enum berth_err meta_blob_get_linked(struct meta *m, int64_t repo_id, const char *digest,
                                    struct meta_blob *out);

/* Insert a blob row, or refresh touched_at of an existing one (the size
 * must match: BERTH_ECONFLICT otherwise). *id receives its id. */
enum berth_err meta_blob_upsert(struct meta *m, const char *digest, int64_t size, int64_t now,
                                int64_t *id);

/* Record where the blob's bytes are (archived_size and archive_codec are
 * kept only for the archive tier). Inside the write transaction that moves
 * them. BERTH_EDB. */
enum berth_err meta_blob_set_tier(struct meta *m, int64_t blob_id, enum meta_blob_tier tier,
                                  int64_t archived_size, int archive_codec);

/* Refresh touched_at, restarting the blob's garbage-collection grace. */
enum berth_err meta_blob_touch(struct meta *m, int64_t blob_id, int64_t now);

/* A blob by digest that is linked to at least one repository (a blob
 * unlinked everywhere is deleted as far as clients are concerned, even
 * before the garbage collector removes it). BERTH_ENOTFOUND. */
enum berth_err meta_blob_get_visible(struct meta *m, const char *digest, struct meta_blob *out);

/* Link a blob to a repository (idempotent) / unlink it (BERTH_ENOTFOUND
 * when it was not linked). */
enum berth_err meta_blob_link(struct meta *m, int64_t repo_id, int64_t blob_id);
enum berth_err meta_blob_unlink(struct meta *m, int64_t repo_id, int64_t blob_id);

/* ---- manifests and tags ---- */

enum meta_ref_kind { META_REF_BLOB = 0, META_REF_MANIFEST = 1 };

/* ECR's storage classes (UpdateImageStorageClass). */
enum meta_storage_class { META_STORAGE_STANDARD = 0, META_STORAGE_ARCHIVE = 1 };

struct meta_manifest {
    int64_t id;
    int64_t repo_id;
    int64_t blob_id;
    char digest[DIGEST_STR_MAX];
    char media_type[META_MEDIA_TYPE_MAX + 1];
    char artifact_type[META_MEDIA_TYPE_MAX + 1];     /* effective: artifactType or config type */
    char config_media_type[META_MEDIA_TYPE_MAX + 1]; /* "" for indexes */
    char subject[DIGEST_STR_MAX];                    /* "" when none */
    bool is_index;
    int64_t size;       /* bytes of the manifest itself */
    int64_t image_size; /* sum of layer sizes (0 for indexes) */
    int64_t pushed_at;
    int64_t last_pulled_at; /* 0 = never */
    enum meta_storage_class storage_class;
    int64_t archived_at;  /* last moved to the archive class, 0 = never */
    int64_t activated_at; /* last restore asked for, 0 = never */
    int64_t active_from;  /* a restore completes at this time (ACTIVATING until then) */
    bool restoring;       /* blobs it uses are on their way back from the archive tier */
};

/* A manifest of the repository by digest / by tag. BERTH_ENOTFOUND. */
enum berth_err meta_manifest_get(struct meta *m, int64_t repo_id, const char *digest,
                                 struct meta_manifest *out);
enum berth_err meta_manifest_get_by_tag(struct meta *m, int64_t repo_id, const char *tag,
                                        struct meta_manifest *out);

/* Insert a manifest row (in->id ignored); annotations is the manifest's
 * annotations object as JSON text or NULL. BERTH_EEXIST when the repository
 * already has that digest. */
enum berth_err meta_manifest_insert(struct meta *m, const struct meta_manifest *in,
                                    const char *annotations, int64_t *id);

/* Record that a manifest references a blob or a child manifest, with the
 * media type its descriptor gives (NULL or "" when unknown). */
enum berth_err meta_manifest_ref_add(struct meta *m, int64_t manifest_id, const char *digest,
                                     enum meta_ref_kind kind, const char *media_type);

/* Delete a manifest row with its tags and references. */
enum berth_err meta_manifest_delete(struct meta *m, int64_t manifest_id);

/* Number of index manifests in the repository that list digest as a
 * child. */
enum berth_err meta_manifest_parent_count(struct meta *m, int64_t repo_id, const char *digest,
                                          int64_t *out);

/* Touch every blob a manifest references (and its own content blob), so
 * they keep the grace window after the manifest goes. */
enum berth_err meta_manifest_touch_refs(struct meta *m, int64_t manifest_id, int64_t now);

/* Record a pull (only written when the stored value is older than
 * min_interval_ms, to keep pulls read-only in the common case). */
enum berth_err meta_manifest_note_pull(struct meta *m, int64_t manifest_id, int64_t now,
                                       int64_t min_interval_ms);

/* Point tag at manifest_id (insert or move). *previous receives the id it
 * pointed at before, or 0. */
enum berth_err meta_tag_set(struct meta *m, int64_t repo_id, const char *tag, int64_t manifest_id,
                            int64_t now, int64_t *previous);

/* Remove a tag; BERTH_ENOTFOUND if absent. */
enum berth_err meta_tag_delete(struct meta *m, int64_t repo_id, const char *tag);

typedef int (*meta_name_cb)(void *arg, const char *name);

/* Tags of the repository with name > after in byte order, at most limit;
 * *has_more tells whether more follow. */
enum berth_err meta_tag_list(struct meta *m, int64_t repo_id, const char *after, int64_t limit,
                             meta_name_cb cb, void *arg, bool *has_more);

/* Tags pointing at a manifest, in byte order. */
enum berth_err meta_manifest_tags(struct meta *m, int64_t manifest_id, meta_name_cb cb, void *arg);

/* Referrers of subject in the repository, optionally only those whose
 * artifact type equals artifact_type; ordered by digest. annotations is
 * JSON text or NULL (borrowed for the call). */
typedef int (*meta_referrer_cb)(void *arg, const struct meta_manifest *mf, const char *annotations);
enum berth_err meta_referrers(struct meta *m, int64_t repo_id, const char *subject,
                              const char *artifact_type, meta_referrer_cb cb, void *arg);

/* ---- upload sessions ---- */

struct meta_upload {
    char uuid[RAND_UUID_LEN + 1];
    int64_t repo_id;
    enum digest_alg alg;
    int64_t created_at;
    int64_t size;       /* bytes committed (a shared session; 0 otherwise) */
    int64_t updated_at; /* its last commit (0: none) */
    /* meta_upload_get only (0 elsewhere): a shared session's generation
     * (its commits), a filesystem session's ECR layer parts
     * (meta_upload_count_part) */
    int64_t gen;
};

/* Insert a session row. Outside a transaction it returns without waiting
 * for the sync of the log that makes it durable (SQLite with
 * storage.fsync on): a session need not survive power loss (the client
 * starts the upload again; its data is not synced either), and the row
 * becomes durable with the next sync of the log anyway, which covers
 * everything written before it (the publication's commit, at the latest). */
enum berth_err meta_upload_insert(struct meta *m, const struct meta_upload *u);
enum berth_err meta_upload_get(struct meta *m, const char *uuid, struct meta_upload *out);
enum berth_err meta_upload_delete(struct meta *m, const char *uuid);

/* The shared state of a session (one whose bytes the blob store keeps
 * where every replica reaches them: storage/store/upload.c). */
#define META_MPU_MAX 256
struct meta_upload_state {
    int64_t gen;            /* bumped by every commit */
    char mpu[META_MPU_MAX]; /* the multipart upload ("" none yet) */
    char *hash_state;       /* digest_ctx_export's text; NULL: nothing hashed */
    char *stage_state;      /* the blob store's stage state; NULL: empty */
};

/* The session's row and its shared state (free with
 * meta_upload_state_fini). BERTH_ENOTFOUND. */
enum berth_err meta_upload_state_get(struct meta *m, const char *uuid, struct meta_upload *row,
                                     struct meta_upload_state *out);
void meta_upload_state_fini(struct meta_upload_state *s);

/* Commit a session's new state (size bytes, the hash and stage state
 * texts) if it is still at generation gen, bumping it. BERTH_ERANGE when
 * another request committed since (its commit stands), BERTH_ENOTFOUND
 * when the session is gone. Any other failure may come after the commit
 * was made (a connection lost before its answer): read the row again to
 * know. */
enum berth_err meta_upload_state_save(struct meta *m, const char *uuid, int64_t gen, int64_t size,
                                      const char *hash_state, const char *stage_state, int64_t now);

/* Hand out the session's next part number (1, 2, ...: never the same
 * twice, so concurrent writers never overwrite each other's parts) and
 * record mpu as its multipart upload unless one was recorded first: the
 * recorded one is copied to mpu_out (META_MPU_MAX bytes). Its own write
 * transaction unless in one. BERTH_ENOTFOUND. */
enum berth_err meta_upload_next_part(struct meta *m, const char *uuid, const char *mpu,
                                     int64_t *number, char *mpu_out);

/* Count one more ECR layer part of a filesystem session (whose row has
 * no other use for gen): bump gen and read it into *parts, so the count
 * outlives a restart. Its own statements unless in a transaction (the
 * caller holds the session). BERTH_ENOTFOUND. */
enum berth_err meta_upload_count_part(struct meta *m, const char *uuid, int64_t *parts);

/* Delete the session's row if it is still at generation gen:
 * BERTH_ERANGE when it moved on, BERTH_ENOTFOUND. */
enum berth_err meta_upload_delete_at(struct meta *m, const char *uuid, int64_t gen);

typedef int (*meta_upload_cb)(void *arg, const struct meta_upload *u);
/* Sessions created before `before`. */
enum berth_err meta_upload_list_older(struct meta *m, int64_t before, meta_upload_cb cb, void *arg);

/* ---- totals (metrics, readiness) ---- */

struct meta_totals {
    int64_t blobs;           /* blob rows */
    int64_t blob_bytes;      /* the sum of their sizes */
    int64_t upload_sessions; /* upload session rows */
    int64_t archived_blobs;  /* blob rows whose bytes are in the archive tier */
    int64_t archived_bytes;  /* the sum of their sizes */
    int64_t archived_stored; /* what their archive copies take */
};

/* Count what is stored. Reads every blob row's size (no write lock).
 * BERTH_OK or BERTH_EDB. */
enum berth_err meta_totals_get(struct meta *m, struct meta_totals *out);

/* Whether the database answers a trivial query. BERTH_OK or BERTH_EDB. */
enum berth_err meta_ping(struct meta *m);

/* Whether this process can no longer make a commit durable: with SQLite
 * and storage.fsync on, a sync of the database's write-ahead log failed,
 * and every later commit fails (BERTH_EIO) until a restart, since what the
 * failed sync should have written may never reach the disk. false for
 * PostgreSQL (the server decides). */
bool meta_durability_lost(struct meta *m);

/* The process is stopping and its stop takes too long (a database that
 * does not answer): every open PostgreSQL connection's socket is shut down,
 * so that a thread waiting on it gets an error at once, and from now on a
 * connection attempt gives up after a second. Nothing for SQLite.
 * Thread-safe; `berth serve` calls it when jobs and leases have not stopped
 * a few seconds after the HTTP server. */
void meta_stopping(void);

/* meta.postgres.query_timeout_ms's default. */
#define META_PG_QUERY_TIMEOUT_DEFAULT_MS 30000

/* Bound every PostgreSQL statement's wait for the server's answer to ms
 * (0: no bound; a migration's statements never are), and a connection
 * attempt whose connection string gives no connect_timeout: a statement
 * that waits longer fails with BERTH_EUNAVAILABLE (event=db_query_timeout)
 * and its connection is dropped, so that a server that does not answer
 * (hung, its network black-holed) costs a request a 503, not its thread.
 * Process-wide; call before connections are opened (cli_open_store does).
 * Nothing for SQLite. */
void meta_postgres_query_timeout(int64_t ms);

/* Fault injection for tests: while on, every sync of a SQLite write-ahead
 * log fails as a disk error would. `berth serve` turns it on, once the
 * store is open, when the variable BERTH_TEST_FAULTS names "wal_sync".
 * Thread-safe. */
void meta_fault_wal_sync(bool on);

/* Fault injection for tests: while the file while_exists exists, every
 * SQLite statement and transaction command of this process fails as
 * SQLite fails when the process has no file descriptor left
 * (META_FAULT_EMFILE: SQLITE_CANTOPEN, errno EMFILE -> BERTH_ENOFD) or no
 * memory (META_FAULT_NOMEM: SQLITE_NOMEM -> BERTH_ENOMEM). `berth serve`
 * turns it on once start-up is done when BERTH_TEST_FAULTS names
 * "sqlite_emfile" or "sqlite_nomem", with the file named by
 * BERTH_TEST_FAULT_FILE. META_FAULT_NONE (or a NULL path) turns it off.
 * Not for PostgreSQL. Thread-safe. */
enum meta_fault_kind { META_FAULT_NONE = 0, META_FAULT_EMFILE, META_FAULT_NOMEM };
void meta_fault_exhausted(enum meta_fault_kind kind, const char *while_exists);

/* ---- image listings (ECR ListImages, DescribeImages, layer checks) ---- */

/* Which manifests a listing includes, by whether any tag points at them. */
enum meta_tag_status { META_TAGS_ANY = 0, META_TAGS_TAGGED, META_TAGS_UNTAGGED };

/* Which manifests a listing includes by ECR image status at a time now:
 * ACTIVE (standard class, any restore complete), ARCHIVED (archive class),
 * ACTIVATING (standard class, a restore still running), or all. */
enum meta_image_status {
    META_IMAGES_ACTIVE = 0,
    META_IMAGES_ARCHIVED,
    META_IMAGES_ACTIVATING,
    META_IMAGES_ANY
};

/* A listing's image status restriction and the time it is judged at. */
struct meta_status_filter {
    enum meta_image_status status;
    int64_t now_ms;
};

/* How many images (manifest rows, every repository) are ARCHIVED and how
 * many ACTIVATING at now_ms (the statuses above). Reads only. BERTH_EDB. */
enum berth_err meta_image_class_counts(struct meta *m, int64_t now_ms, int64_t *archived,
                                       int64_t *activating);

/* Tags of the repository with name > after (NULL = from the start) in byte
 * order, each with the digest of its manifest; at most limit of them
 * (limit >= 0); *has_more tells whether more follow. With filter (NULL:
 * every tag), only tags of manifests with that image status. */
typedef int (*meta_tag_digest_cb)(void *arg, const char *tag, const char *digest);
enum berth_err meta_tag_list_digests(struct meta *m, int64_t repo_id, const char *after,
                                     int64_t limit, const struct meta_status_filter *filter,
                                     meta_tag_digest_cb cb, void *arg, bool *has_more);

/* Manifests of the repository with digest > after (NULL = from the start)
 * in byte order of digest, restricted by status and by filter (NULL:
 * every image status); at most limit of them (limit >= 0, so limit 0 only
 * reports *has_more). */
typedef int (*meta_manifest_cb)(void *arg, const struct meta_manifest *mf);
enum berth_err meta_manifest_list(struct meta *m, int64_t repo_id, enum meta_tag_status status,
                                  const struct meta_status_filter *filter, const char *after,
                                  int64_t limit, meta_manifest_cb cb, void *arg, bool *has_more);

/* Move a manifest of the repository, and the manifests of the repository
 * an index lists (kind META_REF_MANIFEST), to a storage class at now_ms:
 * archive sets archived_at to now_ms; standard sets activated_at to now_ms;
 * both set active_from (when a restore completes; pass 0 to archive). The
 * manifest itself is always written; listed manifests already in the class
 * are left as they are. BERTH_OK (also when nothing changed). */
enum berth_err meta_manifest_set_storage_class(struct meta *m, int64_t repo_id, int64_t manifest_id,
                                               enum meta_storage_class cls, int64_t now_ms,
                                               int64_t active_from);

/* Whether a blob is referenced (as a layer or config) by manifests of the
 * repository, and whether every such manifest is in the archive class:
 * *any_ref and *all_archived. */
enum berth_err meta_blob_archive_state(struct meta *m, int64_t repo_id, const char *digest,
                                       bool *any_ref, bool *all_archived);

/* Whether manifests of the repository use the blob (as a layer or config)
 * and all of them are archived (*out). Probes the partial index of archived
 * manifests first, so a repository without any answers at once. */
enum berth_err meta_blob_archived_only(struct meta *m, int64_t repo_id, const char *digest,
                                       bool *out);

/* Number of tags pointing at a manifest. */
enum berth_err meta_manifest_tag_count(struct meta *m, int64_t manifest_id, int64_t *out);

/* The largest image_size among the child manifests an index lists that are
 * manifests of the repository (0 when none are). */
enum berth_err meta_manifest_children_max_size(struct meta *m, int64_t repo_id, int64_t manifest_id,
                                               int64_t *out);

/* The media type that a manifest of the repository gives the blob digest
 * in its config or layer descriptors, into out (cap bytes); "" when no
 * manifest of the repository references it (or only manifests stored
 * before media types were recorded). */
enum berth_err meta_blob_media_type(struct meta *m, int64_t repo_id, const char *digest, char *out,
                                    size_t cap);
/* ---- pull-time update exclusions (storage/meta/exclusions.c) ---- */

/* Longest principal ARN (ECR's PrincipalArn: 200). */
#define META_PRINCIPAL_ARN_MAX 200

/* Add principal_arn, created now, unless max exclusions exist already
 * (one write transaction). BERTH_EEXIST when it is listed, BERTH_ETOOBIG at
 * the limit, or a database error. */
enum berth_err meta_pull_exclusion_add(struct meta *m, const char *principal_arn, int64_t now,
                                       size_t max);

/* Remove principal_arn. BERTH_ENOTFOUND when it is not listed. */
enum berth_err meta_pull_exclusion_remove(struct meta *m, const char *principal_arn);

/* Whether principal_arn is listed, into *out. */
enum berth_err meta_pull_exclusion_has(struct meta *m, const char *principal_arn, bool *out);

typedef int (*meta_exclusion_cb)(void *ctx, const char *principal_arn, int64_t created_at);

/* The exclusions in byte order of their ARN, after `after` ("" from the
 * start), at most limit; *has_more when more follow. cb returns non-zero
 * to stop. */
enum berth_err meta_pull_exclusion_list(struct meta *m, const char *after, int64_t limit,
                                        meta_exclusion_cb cb, void *ctx, bool *has_more);

/* ---- repository creation templates (storage/meta/templates.c) ---- */

/* Longest prefix (ECR's Prefix: 256). */
#define META_TEMPLATE_PREFIX_MAX 256

/* A document keyed by a prefix (a template, a pull-through cache rule):
 * the prefix, its settings as JSON text (borrowed in callbacks), and its
 * times. */
struct meta_prefix_doc {
    const char *prefix;
    const char *body;
    int64_t created_at;
    int64_t updated_at;
};

typedef int (*meta_prefix_doc_cb)(void *ctx, const struct meta_prefix_doc *d);

/* Create a template unless max exist already. BERTH_EEXIST when the prefix
 * has one, BERTH_ETOOBIG at the limit, or a database error. Opens its own
 * write transaction unless one is open. */
enum berth_err meta_template_create(struct meta *m, const char *prefix, const char *body,
                                    int64_t now, size_t max);

/* Replace a template's body (updated_at = now). BERTH_ENOTFOUND. */
enum berth_err meta_template_update(struct meta *m, const char *prefix, const char *body,
                                    int64_t now);

/* Call cb with the template of prefix. BERTH_ENOTFOUND when none. */
enum berth_err meta_template_get(struct meta *m, const char *prefix, meta_prefix_doc_cb cb,
                                 void *ctx);

/* Delete the template of prefix. BERTH_ENOTFOUND when none. */
enum berth_err meta_template_delete(struct meta *m, const char *prefix);

/* Templates with prefix > after ("" from the start) in byte order, at most
 * limit (-1: all); *has_more (may be NULL) when more follow. cb returns
 * non-zero to stop. */
enum berth_err meta_template_list(struct meta *m, const char *after, int64_t limit,
                                  meta_prefix_doc_cb cb, void *ctx, bool *has_more);

/* ---- pull-through cache (storage/meta/pullthrough.c) ---- */

/* Longest ecrRepositoryPrefix (ECR: 30). */
#define META_PTC_PREFIX_MAX 30
/* Longest upstream secret name (the part of a Secrets Manager ARN after
 * "secret:"). */
#define META_SECRET_NAME_MAX 512

/* Rules are struct meta_prefix_doc (the prefix is the ecrRepositoryPrefix). */

/* Create a rule unless max exist already. BERTH_EEXIST when the prefix has
 * one, BERTH_ETOOBIG at the limit, or a database error. Opens its own
 * write transaction unless one is open. */
enum berth_err meta_ptc_rule_create(struct meta *m, const char *prefix, const char *body,
                                    int64_t now, size_t max);

/* Replace a rule's body (updated_at = now). BERTH_ENOTFOUND. */
enum berth_err meta_ptc_rule_update(struct meta *m, const char *prefix, const char *body,
                                    int64_t now);

/* Call cb with the rule of prefix. BERTH_ENOTFOUND when none. */
enum berth_err meta_ptc_rule_get(struct meta *m, const char *prefix, meta_prefix_doc_cb cb,
                                 void *ctx);

/* Delete the rule of prefix. BERTH_ENOTFOUND when none. */
enum berth_err meta_ptc_rule_delete(struct meta *m, const char *prefix);

/* Rules with prefix > after ("" from the start) in byte order, at most
 * limit (-1: all); *has_more (may be NULL) when more follow. cb returns
 * non-zero to stop. */
enum berth_err meta_ptc_rule_list(struct meta *m, const char *after, int64_t limit,
                                  meta_prefix_doc_cb cb, void *ctx, bool *has_more);

/* Store (or replace) an upstream secret: sealed is its sealed value as
 * text (never the clear value). */
enum berth_err meta_upstream_secret_put(struct meta *m, const char *name, const char *sealed,
                                        int64_t now);

/* The sealed value of secret name as a new string in *sealed (caller
 * frees). BERTH_ENOTFOUND when none. */
enum berth_err meta_upstream_secret_get(struct meta *m, const char *name, char **sealed);

/* Delete secret name. BERTH_ENOTFOUND when none. */
enum berth_err meta_upstream_secret_delete(struct meta *m, const char *name);

/* Every secret's name and times, in byte order of name. cb returns
 * non-zero to stop. */
typedef int (*meta_secret_cb)(void *ctx, const char *name, int64_t created_at, int64_t updated_at);
enum berth_err meta_upstream_secret_list(struct meta *m, meta_secret_cb cb, void *ctx);

/* When the cached tag of repository repo_id was last checked against its
 * upstream: *at, or BERTH_ENOTFOUND. */
enum berth_err meta_ptc_tag_checked(struct meta *m, int64_t repo_id, const char *tag, int64_t *at);

/* Record that the cached tag was checked at now. */
enum berth_err meta_ptc_tag_check_set(struct meta *m, int64_t repo_id, const char *tag,
                                      int64_t now);

/* ---- principals, access keys, server secrets (storage/meta/auth.c) ---- */

#define META_PRINCIPAL_MAX 64       /* principal (IAM user) name */
#define META_ACCESS_KEY_MAX 128     /* access key id */
#define META_KEY_SECRET_MAX 128     /* secret access key */
#define META_SERVER_SECRET_MAX 4096 /* a server secret's bytes */

/* One access key as listed; strings borrowed for the callback's duration.
 * The secret is never part of a listing. */
struct meta_key_info {
    const char *access_key_id;
    const char *principal;
    const char *permissions; /* the permission specs as given ("" = admin) */
    int64_t created_at;
};
typedef int (*meta_key_cb)(void *arg, const struct meta_key_info *key);

/* Add access key access_key_id with secret to the principal called name.
 * When the principal does not exist it is created with the identity
 * policy `policy` (JSON text) and the display text `permissions`; when it
 * exists, the key shares its policy, unless require_new, which makes that
 * BERTH_ECONFLICT. One write transaction (do not call inside another).
 * Returns BERTH_OK, BERTH_ECONFLICT, BERTH_EEXIST (the access key id is
 * taken), BERTH_EINVAL (a string over its limit), BERTH_EDB/BERTH_EBUSY. */
enum berth_err meta_key_create(struct meta *m, const char *name, const char *policy,
                               const char *permissions, bool require_new, const char *access_key_id,
                               const char *secret, int64_t now);

/* Delete an access key and its console sessions (meta_session.h); a
 * principal left without keys is deleted too. One write transaction. BERTH_ENOTFOUND when there is
 * no such key. */
enum berth_err meta_key_delete(struct meta *m, const char *access_key_id);

/* Every access key, ordered by principal name then creation time. cb
 * returns non-zero to stop. */
enum berth_err meta_key_list(struct meta *m, meta_key_cb cb, void *arg);

/* What the request path needs to authenticate and authorize one request,
 * read with one query. Strings are borrowed for the callback's duration. */
struct meta_auth_row {
    bool has_keys;      /* at least one access key exists in the database */
    const char *secret; /* the access key's secret; NULL when no such key */
    size_t secret_len;
    const char *principal; /* its principal's name */
    const char *policy;    /* its principal's identity policy (JSON) */
    size_t policy_len;
    bool repo_found;         /* the repository exists */
    const char *repo_policy; /* its repository policy; NULL when none */
    size_t repo_policy_len;
    const char *registry_policy; /* the registry policy; NULL when none */
    size_t registry_policy_len;
};
typedef void (*meta_auth_cb)(void *arg, const struct meta_auth_row *row);

/* The registry_settings row that holds the registry policy
 * (PutRegistryPolicy). */
#define META_REGISTRY_POLICY_SETTING "registry_policy"

/* Look up access key access_key_id (NULL: none), repository repo
 * (NULL: none) and the registry policy, and call cb once with the row. BERTH_OK or BERTH_EDB. */
enum berth_err meta_auth_lookup(struct meta *m, const char *access_key_id, const char *repo,
                                meta_auth_cb cb, void *arg);

/* Names of up to limit repositories the blob is linked to, in name order. */
enum berth_err meta_blob_repos(struct meta *m, const char *digest, int64_t limit, meta_name_cb cb,
                               void *arg);

/* Whether a manifest of the repository references the blob. */
enum berth_err meta_blob_in_image(struct meta *m, int64_t repo_id, const char *digest, bool *out);

/* A named server secret: copy it into buf (cap bytes) and its length into
 * *len. BERTH_ENOTFOUND when unset, BERTH_ETOOBIG when over cap. */
enum berth_err meta_server_secret_get(struct meta *m, const char *name, void *buf, size_t cap,
                                      size_t *len);

/* Store a server secret unless one of that name exists (the first writer
 * wins; read it back with meta_server_secret_get). */
enum berth_err meta_server_secret_add(struct meta *m, const char *name, const void *value,
                                      size_t len, int64_t now);

/* The registry_settings row that holds the replication configuration
 * (PutReplicationConfiguration), ECR's JSON as validated by the API. */
#define META_REPLICATION_CONFIG_SETTING "replication_configuration"

/* ---- the replication queue (storage/meta/replication.c) ---- */

#define META_REPL_REGION_MAX 25
#define META_REPL_REGISTRY_ID_MAX 12
#define META_REPL_FAILURE_MAX 512

/* Inside the caller's write transaction: queue manifest_id for the
 * destination (region, registry_id), due now: a new row, or the existing
 * one set back to IN_PROGRESS with no attempts and its seq increased (a
 * copy under way then does not mark it done). */
enum berth_err meta_repl_enqueue(struct meta *m, int64_t manifest_id, const char *region,
                                 const char *registry_id, int64_t now);

/* The failureCode of a copy that shows FAILED because its destination
 * has been unreachable too long: unlike other FAILED copies, it is still
 * tried (meta_repl_next takes it when due). */
#define META_REPL_RETRIED_CODE "PEER_UNAVAILABLE"

/* A queued copy as the worker sees it. */
struct meta_repl_item {
    int64_t manifest_id;
    int64_t queued_at; /* when the push queued it (ms) */
    char region[META_REPL_REGION_MAX + 1];
    char registry_id[META_REPL_REGISTRY_ID_MAX + 1];
    int64_t attempts;
    int64_t seq;
    char repo[NAMES_REPO_MAX + 1];
    char digest[DIGEST_STR_MAX];
};

/* Which destinations a worker takes: the one (region, registry_id), or,
 * with both NULL, every destination except those listed in except
 * (",region/id,region/id," or ""). All borrowed. */
struct meta_repl_filter {
    const char *region;
    const char *registry_id;
    const char *except;
};

/* The IN_PROGRESS (or FAILED with META_REPL_RETRIED_CODE) row of a
 * destination f takes that is due first (next_at
 * <= now; earliest next_at, then manifest id), with its repository and
 * digest. *found false when none is due; *next_at then gets the earliest
 * next_at of f's rows not yet due (0 when there are none). */
enum berth_err meta_repl_next(struct meta *m, int64_t now, const struct meta_repl_filter *f,
                              struct meta_repl_item *out, bool *found, int64_t *next_at);

/* Claim for holder (a worker's id, non-empty) until (> now) the row of a
 * destination f takes that meta_repl_next would give, among those not
 * claimed (claimed_until <= now) whose repository has no other row of the
 * same destination claimed (a repository's images go to a destination one
 * at a time), in a write transaction of its own (two workers never claim
 * one row). *found false when none can be: *next_at then gets the
 * earliest time one of f's rows still tried may be (its next_at, or the
 * expiry of its claim or of its repository's other claims; 0 when there
 * are none). Give the claim back with meta_repl_unclaim after
 * meta_repl_finish. */
enum berth_err meta_repl_claim(struct meta *m, int64_t now, const struct meta_repl_filter *f,
                               const char *holder, int64_t until, struct meta_repl_item *out,
                               bool *found, int64_t *next_at);

/* Extend every claim of holder to until; *renewed (optional) counts them. */
enum berth_err meta_repl_renew(struct meta *m, const char *holder, int64_t until, int64_t *renewed);

/* Give back holder's claim of it (nothing when another holds it now). */
enum berth_err meta_repl_unclaim(struct meta *m, const struct meta_repl_item *it,
                                 const char *holder);

/* Give back every claim (one process on SQLite, at start: whoever held
 * them is gone). */
enum berth_err meta_repl_unclaim_all(struct meta *m);

/* A destination failed for now: its other rows still tried (IN_PROGRESS,
 * FAILED with META_REPL_RETRIED_CODE) due before
 * next_at wait until then too (their attempts unchanged). */
enum berth_err meta_repl_defer(struct meta *m, const char *region, const char *registry_id,
                               int64_t next_at, int64_t now);

/* Record how a copy went, only when the row is still at seq (a push may
 * have queued it again meanwhile: then nothing changes and *applied is
 * false). status is IN_PROGRESS (a retry due at next_at), COMPLETE or
 * FAILED; failure_code/reason may be NULL. */
enum berth_err meta_repl_finish(struct meta *m, const struct meta_repl_item *it, const char *status,
                                const char *failure_code, const char *failure_reason,
                                int64_t next_at, int64_t now, bool *applied);

/* One destination's status of an image; strings borrowed. */
struct meta_repl_status {
    const char *region;
    const char *registry_id;
    const char *status;
    const char *failure_code;   /* NULL when none */
    const char *failure_reason; /* NULL when none */
    int64_t attempts;
};
typedef int (*meta_repl_status_cb)(void *arg, const struct meta_repl_status *st);

/* How many copies are IN_PROGRESS and how many FAILED. */
enum berth_err meta_repl_count(struct meta *m, int64_t *in_progress, int64_t *failed);

/* The destinations of manifest_id, by region then registry id. */
enum berth_err meta_repl_status_list(struct meta *m, int64_t manifest_id, meta_repl_status_cb cb,
                                     void *arg);

/* ---- managed signing (storage/meta/signing.c) ---- */

/* The registry_settings row that holds the signing configuration
 * (PutSigningConfiguration), ECR's JSON as validated by the API. */
#define META_SIGNING_CONFIG_SETTING "signing_configuration"

/* One image's signing outcome for one profile; strings borrowed. */
struct meta_signing_status {
    const char *profile_arn;
    const char *status;           /* IN_PROGRESS, COMPLETE, FAILED */
    const char *failure_code;     /* NULL unless FAILED */
    const char *failure_reason;   /* NULL unless FAILED */
    const char *signature_digest; /* the signature manifest (COMPLETE), else NULL */
};
typedef int (*meta_signing_status_cb)(void *arg, const struct meta_signing_status *st);

/* Insert or replace the status of manifest_id for in->profile_arn. */
enum berth_err meta_signing_status_put(struct meta *m, int64_t manifest_id,
                                       const struct meta_signing_status *in, int64_t now);

/* The statuses of a manifest, in byte order of the profile ARN. */
enum berth_err meta_signing_status_list(struct meta *m, int64_t manifest_id,
                                        meta_signing_status_cb cb, void *arg);

/* Queue the signature of manifest_id by profile_arn: its status becomes
 * IN_PROGRESS unless it is COMPLETE already. *queued tells whether it was
 * queued. BERTH_EDB. */
enum berth_err meta_signing_queue(struct meta *m, int64_t manifest_id, const char *profile_arn,
                                  int64_t now, bool *queued);

/* A signature still to make: the image and the profile; strings borrowed. */
struct meta_signing_job {
    int64_t manifest_id;
    const char *profile_arn;
    const char *repo;       /* the repository's name */
    const char *digest;     /* the image's */
    const char *media_type; /* the image's */
    int64_t size;           /* the image manifest's bytes */
};
typedef int (*meta_signing_job_cb)(void *arg, const struct meta_signing_job *job);

/* Up to limit signatures still to make (IN_PROGRESS), oldest first. */
enum berth_err meta_signing_pending(struct meta *m, int64_t limit, meta_signing_job_cb cb,
                                    void *arg);

#endif
