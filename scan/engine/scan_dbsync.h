/*
 * One vulnerability database for replicas that share a metadata database
 * (PostgreSQL) and a blob store. `berth vulndb import` builds the database
 * file from the current shared generation plus what it imports, and
 * publishes it (scan_dbsync_publish): the file becomes a content-addressed
 * blob of the blob store and the new generation of the vulndb_shared row
 * (storage/meta/meta_vulndb.h). Every replica brings its local copy,
 * <root>/vulndb-shared.db (VULNDB_SHARED_FILE, which the built-in scanner
 * then reads), up to the current generation (scan_dbsync_update): before
 * each scan and every scan.vulndb_poll_seconds. The new file is downloaded
 * beside the old one, its digest checked, and renamed over it: a scan
 * opens the file once, so the scans in flight finish on the old
 * generation and the next ones open the new. A download whose digest does
 * not match is removed and the old copy kept.
 *
 * The generation installed in a root is written in
 * <root>/vulndb-shared.digest after the rename. Thread-safe: one process
 * installs one generation at a time. Every call blocks on the database and
 * the blob store.
 */
#ifndef BERTH_SCAN_DBSYNC_H
#define BERTH_SCAN_DBSYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "storage/meta/meta_vulndb.h"

struct store;

/* The file naming the generation a root holds (its digest). */
#define SCAN_DBSYNC_DIGEST_FILE "vulndb-shared.digest"
/* After a refused download (digest mismatch, unreadable file), the same
 * generation is tried again after this long. */
#define SCAN_DBSYNC_RETRY_MS 60000

/*
 * Publish the sealed database file at path (vulndb_seal) as the next
 * generation after expect_generation (0: the first): the file is staged
 * in the blob store while hashed, published under its digest, and its
 * blob row and the generation row (with records and imported_at_ms) are
 * written in one transaction. *out gets the new row. BERTH_ECONFLICT when
 * another import published a generation meanwhile (nothing changed: build
 * again from the new one); BERTH_EIO, BERTH_EDB, BERTH_EUNAVAILABLE,
 * BERTH_ENOMEM. err (cap bytes) gets a reason.
 */
enum berth_err scan_dbsync_publish(struct store *st, const char *path, int64_t expect_generation,
                                   int64_t records, int64_t imported_at_ms, struct meta_vulndb *out,
                                   char *err, size_t cap);

/*
 * Download generation gen's blob into a new file beside path, check its
 * size and digest and that it is a vulnerability database this build
 * reads, then rename it over path (the directory synced). On any failure
 * the new file is removed and path is untouched: BERTH_EDIGEST (the bytes
 * do not match gen's digest), BERTH_ENOTFOUND (the blob store does not
 * hold it, or holds another size), BERTH_EUNSUPPORTED (a newer schema),
 * BERTH_EDB (not a database), BERTH_EIO, BERTH_ENOMEM. err gets a reason.
 */
enum berth_err scan_dbsync_fetch(struct store *st, const struct meta_vulndb *gen, const char *path,
                                 char *err, size_t cap);

/* The digest of the generation installed in root into out (at least
 * DIGEST_STR_MAX bytes). BERTH_ENOTFOUND when none is. */
enum berth_err scan_dbsync_installed(const char *root, char *out, size_t cap);

/*
 * Bring root's copy of the shared database to the current generation:
 * nothing when none was published or the current one is installed; else
 * scan_dbsync_fetch into <root>/vulndb-shared.db and record its digest
 * (logged: event=vulndb_installed). *installed (may be NULL) tells whether
 * a generation was installed now. A generation whose download was refused
 * is not tried again for SCAN_DBSYNC_RETRY_MS (BERTH_EDIGEST meanwhile).
 * Errors as scan_dbsync_fetch, and the database's; the old copy stays
 * usable whatever happens.
 */
enum berth_err scan_dbsync_update(struct store *st, const char *root, bool *installed);

/*
 * Remove what a process killed in the middle left under root: downloads
 * (<root>/vulndb-shared.db.tmp-*) and the work directories of imports and
 * migrations (<root>/vulndb-import-*, <root>/vulndb-migrate-*) last
 * changed before before_ms (ms since the epoch; a running one keeps
 * writing). *removed (may be NULL) counts them. Logged.
 */
void scan_dbsync_cleanup(const char *root, int64_t before_ms, int64_t *removed);

#endif
