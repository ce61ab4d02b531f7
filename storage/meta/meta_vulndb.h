/*
 * Metadata: the shared vulnerability database (table vulndb_shared).
 * Replicas sharing one metadata database and one blob store scan with one
 * vulnerability database: `berth vulndb import` on any of them builds the
 * database file, publishes it as a content-addressed blob of the blob
 * store, and records that blob here as the current generation (one row).
 * Every replica compares the row with its local copy and, when they
 * differ, downloads the blob, checks its digest and swaps it in
 * (scan/engine/scan_dbsync.h). The garbage collector keeps the current
 * generation's blob (meta_gc.h). Same rules as meta.h: one thread per
 * struct meta; every call may block on the database.
 */
#ifndef BERTH_META_VULNDB_H
#define BERTH_META_VULNDB_H

#include <stdint.h>

#include "common/err.h"
#include "storage/meta/meta.h"
#include "storage/spec/digest.h"

/* One generation of the shared database. */
struct meta_vulndb {
    int64_t generation;          /* 1, 2, ...: each publication adds one */
    char digest[DIGEST_STR_MAX]; /* the blob holding the database file */
    int64_t size;                /* its bytes */
    int64_t records;             /* OSV records it holds */
    int64_t imported_at_ms;      /* the import that made it (vulnerabilitySourceUpdatedAt) */
    int64_t published_at_ms;     /* when this row was written */
};

/* The current generation into *out. BERTH_ENOTFOUND when none was ever
 * published (single node, or no import yet); BERTH_EDB. */
enum berth_err meta_vulndb_get(struct meta *m, struct meta_vulndb *out);

/*
 * Make in (digest, size, records, imported_at_ms, published_at_ms) the
 * current generation, provided the current one is still expect_generation
 * (0: none was published), so that of two imports started from the same
 * generation only one publishes (the other would drop the first one's
 * records). *generation gets the new number. Call inside a write
 * transaction (meta_begin), with the blob's row (meta_blob_upsert) in the
 * same one; its commit announces the generation on META_CHANNEL_VULNDB
 * (PostgreSQL NOTIFY). BERTH_ECONFLICT when another generation was published
 * meanwhile; BERTH_EINVAL for a malformed digest or a negative size;
 * BERTH_EDB.
 */
enum berth_err meta_vulndb_publish(struct meta *m, const struct meta_vulndb *in,
                                   int64_t expect_generation, int64_t *generation);

#endif
