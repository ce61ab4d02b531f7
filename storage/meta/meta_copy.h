/*
 * Copying a whole registry's metadata from one database to another (berth
 * migrate): every table row for row, between any two drivers.
 */
#ifndef BERTH_META_COPY_H
#define BERTH_META_COPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/meta/meta.h"

/* The registry setting naming the registry a database was migrated from
 * (its META_COPY_ID_SETTING value). */
#define META_COPY_ID_SETTING "berth.registry_id"
#define META_COPY_FROM_SETTING "berth.migrated_from"
/* Set (to the time, ms) by the first `berth serve` on a database a
 * migration wrote: the registry may have changed since, and a re-run of
 * the same migration would discard that (meta_copy_check refuses). */
#define META_COPY_SERVED_SETTING "berth.served_since_migration"

/* The identity of the pairing of this database with its blob store
 * (made at the first open of a store over both, recorded in the database
 * and beside the blobs: storage/store/mark.c). A database and a blob store
 * whose identities differ belong to different registries. Never copied by
 * meta_copy_all: the destination keeps its own, as its blob store does. */
#define META_COPY_STORE_SETTING "berth.blob_store_id"

/* The database's META_COPY_STORE_SETTING into out (33 bytes; "" when it
 * has none), made (32 hex digits) and stored first when create is set
 * and it has none. BERTH_EDB. */
enum berth_err meta_copy_store_id(struct meta *m, bool create, char *out);

/* The same, read from the database backend/target names without creating
 * or migrating anything in it (a database that is not berth's, or an
 * older schema, has none), so that a start can be refused before it
 * alters the database. BERTH_EDB, BERTH_EUNAVAILABLE. */
enum berth_err meta_copy_store_id_peek(const char *backend, const char *target, char *out);

/* The registry's identity: its META_COPY_ID_SETTING, made (32 hex digits)
 * and stored when it has none. out needs 33 bytes. */
enum berth_err meta_copy_registry_id(struct meta *m, char *out);

struct meta_copy_stats {
    int64_t tables;
    int64_t rows;
    int64_t archived_blobs; /* blob rows in the archive tier (refused) */
};

/* Copy every table of src (a snapshot) into dst in one write transaction.
 * dst must be empty (nothing but what opening a store makes), or a copy of
 * the same registry (its META_COPY_FROM_SETTING is src_id): then its rows
 * are replaced. Not copied: upload sessions (their bytes are local to the
 * server that received them). Refused (BERTH_EEXIST, why says so): dst
 * holds another registry; BERTH_EUNSUPPORTED: blobs in the archive tier
 * or different schema versions. */
enum berth_err meta_copy_all(struct meta *src, struct meta *dst, const char *src_id,
                             struct meta_copy_stats *stats, char *why, size_t why_cap);

/* Refuse early (BERTH_EEXIST, why) when dst holds another registry's
 * data (what meta_copy_all would refuse), or when dst is a copy of src_id
 * that a server has served since (META_COPY_SERVED_SETTING: it may hold
 * writes that copying again would discard) unless force. */
enum berth_err meta_copy_check(struct meta *dst, const char *src_id, bool force, char *why,
                               size_t why_cap);

/* Record that a server serves m (META_COPY_SERVED_SETTING), when m was
 * written by a migration and this is not recorded yet; nothing otherwise.
 * Its own write transaction. BERTH_EDB. */
enum berth_err meta_copy_note_served(struct meta *m, int64_t now_ms);

/* Compare every copied table's row count in a and b; BERTH_EINVAL and
 * why names the first table that differs. */
enum berth_err meta_copy_compare(struct meta *a, struct meta *b, char *why, size_t why_cap);

/* Call fn for every blob row (digest text and size), in a read
 * transaction the caller holds. */
typedef enum berth_err (*meta_copy_blob_fn)(void *arg, const char *digest, int64_t size);
enum berth_err meta_copy_blob_rows(struct meta *m, meta_copy_blob_fn fn, void *arg);

#endif
