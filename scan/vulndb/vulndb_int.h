/*
 * The SQLite side of the vulnerability database (scan/vulndb/sqlite.c),
 * used by scan/vulndb/vulndb.c. A vdb is one connection; not thread-safe.
 */
#ifndef BERTH_VULNDB_INT_H
#define BERTH_VULNDB_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct vdb;

/* One stored vulnerability and one of its affected packages. */
struct vdb_vuln {
    const char *osv_id;
    const char *name;
    const char *modified;
    const char *description;
    const char *uri; /* may be NULL */
};

struct vdb_affected {
    const char *ecosystem;
    const char *package;
    const char *ranges; /* osv_affected_dump() JSON */
    const char *severity;
    int cvss3_tenths;         /* -1 when none */
    const char *cvss3_vector; /* may be NULL */
};

/* A match candidate; strings valid until the callback returns. */
struct vdb_row {
    const char *osv_id;
    const char *name;
    const char *description;
    const char *uri;
    const char *ranges;
    const char *severity;
    int cvss3_tenths;
    const char *cvss3_vector;
};

/* Open (writable: create the file and schema when missing). err gets a
 * reason. BERTH_ENOTFOUND (read-only, no file or empty), BERTH_EUNSUPPORTED
 * (newer schema), BERTH_EDB, BERTH_ENOMEM. */
enum berth_err vdb_open(const char *path, bool writable, struct vdb **out, char *err, size_t cap);
void vdb_close(struct vdb *db);

/* Copy the database file from_path into to_path (created when missing;
 * its previous contents replaced whole, in one write transaction, so its
 * readers see the old or the new) with SQLite's online backup, which
 * reads from_path in one read transaction (a consistent snapshot while an
 * import writes it). err gets a reason. BERTH_EBUSY, BERTH_EDB,
 * BERTH_ENOMEM. */
enum berth_err vdb_backup(const char *from_path, const char *to_path, char *err, size_t cap);

/* Set the file's journal mode to rollback (DELETE), folding its
 * write-ahead log in; no other connection may have it open. err gets a
 * reason. BERTH_EBUSY, BERTH_EDB. */
enum berth_err vdb_seal(const char *path, char *err, size_t cap);

/* BEGIN IMMEDIATE (BERTH_EBUSY when another writer holds it), COMMIT,
 * ROLLBACK. */
enum berth_err vdb_begin(struct vdb *db);
enum berth_err vdb_commit(struct vdb *db);
void vdb_rollback(struct vdb *db);

/* Replace the record osv_id with vuln and its affected rows. */
enum berth_err vdb_put(struct vdb *db, const struct vdb_vuln *vuln, const struct vdb_affected *rows,
                       size_t count);
/* Remove a record and its affected rows (absent is fine). */
enum berth_err vdb_delete(struct vdb *db, const char *osv_id);

enum berth_err vdb_meta_set(struct vdb *db, const char *key, int64_t value);
/* BERTH_ENOTFOUND when the key is absent. */
enum berth_err vdb_meta_get(struct vdb *db, const char *key, int64_t *value);

/* The number of stored records, and for each ecosystem (in name order)
 * the number of records with an affected package in it: fn is called
 * once per ecosystem (fn NULL: records only); its non-OK result stops the
 * walk and is returned. */
enum berth_err vdb_counts(struct vdb *db, int64_t *records,
                          enum berth_err (*fn)(void *ctx, const char *ecosystem, int64_t records),
                          void *ctx);

/* Call fn for each affected row of package in either ecosystem (family
 * may be "" or NULL), in osv_id order. fn's non-OK result stops the walk
 * and is returned. */
enum berth_err vdb_query(struct vdb *db, const char *ecosystem, const char *family,
                         const char *package,
                         enum berth_err (*fn)(void *ctx, const struct vdb_row *row), void *ctx);

#endif
