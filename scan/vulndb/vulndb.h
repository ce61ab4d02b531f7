/*
 * The offline vulnerability database: OSV records imported by `berth
 * vulndb import PATH` into <root>/vulndb.db (a separate SQLite file), and
 * the matcher that turns an image's package list into findings. Importing
 * is one write transaction; a reader (struct vulndb) is one read-only
 * connection, to be used by one thread at a time (open one per worker).
 */
#ifndef BERTH_VULNDB_H
#define BERTH_VULNDB_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "scan/findings/scan_findings.h"
#include "scan/packages/scan_inventory.h"

/* The file inside the data root. */
#define VULNDB_FILE "vulndb.db"
/* The local copy of the shared database (replicas sharing PostgreSQL and a
 * blob store: scan/engine/scan_dbsync.h), inside the data root. When it
 * exists, vulndb_open and vulndb_summary read it instead of VULNDB_FILE.
 * It is never written in place: a new generation is renamed over it, and
 * it is kept in SQLite's rollback journal mode (no -wal file that could
 * outlive the file it belonged to). */
#define VULNDB_SHARED_FILE "vulndb-shared.db"
/* The schema version (PRAGMA user_version) this build reads and writes. */
#define VULNDB_SCHEMA_VERSION 1
/* Most .json files one import reads. */
#define VULNDB_MAX_FILES 4000000
/* Most decompressed bytes read from one archive. */
#define VULNDB_MAX_ARCHIVE_BYTES (64ULL << 30)

struct vulndb_import_stats {
    size_t files;            /* .json files read */
    size_t records;          /* records stored (added or replaced) */
    size_t withdrawn;        /* withdrawn records (removed if present) */
    size_t not_os;           /* records with no affected OS package */
    size_t invalid;          /* files that are not valid OSV records */
    char first_invalid[256]; /* "<file>: <reason>" of the first invalid one */
    int64_t imported_at_ms;  /* recorded as vulnerabilitySourceUpdatedAt */
};

/*
 * Import OSV records from path: a directory of .json files (searched
 * recursively, in name order, skipping names that start with '.'), a
 * single .json file, or an archive of them, by name: .tar.gz or .tgz,
 * .tar.zst or .tzst, .tar, or .zip (as OSV publishes them per ecosystem).
 * Each record replaces any stored record with the same id; withdrawn
 * records are removed; only affected entries of the OS families berth
 * recognises in images are kept (scan_ecosystem_scheme: Debian, Ubuntu,
 * Alpine, Wolfi, Chainguard, AlmaLinux, Rocky Linux). Files that are not valid OSV records are
 * skipped and counted. Everything is written in one transaction, with the
 * import time stored as vulnerabilitySourceUpdatedAt; on any error nothing
 * changes. Creates root_dir and the database when missing.
 * Returns BERTH_OK with *stats filled; BERTH_ENOTFOUND when path is
 * missing or holds no .json file; BERTH_EINVAL for an unreadable archive;
 * BERTH_ETOOBIG over VULNDB_MAX_FILES or VULNDB_MAX_ARCHIVE_BYTES;
 * BERTH_EUNSUPPORTED when the database has a newer schema; BERTH_EDB,
 * BERTH_EIO, BERTH_EBUSY (another import holds the lock), BERTH_ENOMEM.
 * err (cap bytes) gets a one-line reason on failure. Blocks; safe to run
 * while scans read the database.
 */
enum berth_err vulndb_import(const char *root_dir, const char *path,
                             struct vulndb_import_stats *stats, char *err, size_t cap);

/* What vulndb_copy did. */
enum vulndb_copied {
    VULNDB_COPY_NONE, /* the source has no database: nothing to do */
    VULNDB_COPY_DONE, /* copied (the destination had none, or an older one) */
    VULNDB_COPY_KEPT, /* the destination's was imported as late or later: kept */
};

/*
 * Copy <from_root>/vulndb.db into <to_root>/vulndb.db (berth migrate)
 * unless the destination holds one imported at the same time or later
 * (vulnerabilitySourceUpdatedAt); *what says which. The source is read in
 * one snapshot (it may be serving, or importing); the destination's file
 * is replaced whole in one transaction. BERTH_EUNSUPPORTED when either has
 * a newer schema; BERTH_EBUSY, BERTH_EDB, BERTH_ENOMEM; err (cap bytes)
 * gets a reason.
 */
enum berth_err vulndb_copy(const char *from_root, const char *to_root, enum vulndb_copied *what,
                           char *err, size_t cap);

/*
 * Make <root_dir>/vulndb.db (as vulndb_import left it) one self-contained
 * file to publish: its write-ahead log folded in and the journal mode set
 * to rollback (DELETE), so that a reader needs no -wal or -shm file beside
 * it. *records and *imported_at_ms (-1 when unknown) say what it holds.
 * No other connection may have it open. BERTH_ENOTFOUND, BERTH_EBUSY,
 * BERTH_EDB, BERTH_ENOMEM; err (cap bytes) gets a reason.
 */
enum berth_err vulndb_seal(const char *root_dir, int64_t *records, int64_t *imported_at_ms,
                           char *err, size_t cap);

/* Check that the file at path is a vulnerability database this build
 * reads (opened read-only, then closed); *imported_at_ms gets its import
 * time (-1 when unknown). BERTH_ENOTFOUND (no data), BERTH_EUNSUPPORTED
 * (a newer schema), BERTH_EDB (not a database); err gets a reason. */
enum berth_err vulndb_check_file(const char *path, int64_t *imported_at_ms, char *err, size_t cap);

struct vulndb;

/* Open <root_dir>/vulndb-shared.db, or when there is none
 * <root_dir>/vulndb.db, read-only. BERTH_ENOTFOUND when nothing was
 * ever imported; BERTH_EUNSUPPORTED for a newer schema; BERTH_EDB. */
enum berth_err vulndb_open(const char *root_dir, struct vulndb **out);
void vulndb_close(struct vulndb *db);

/* When the data was last imported (ms since the epoch), as read at open. */
int64_t vulndb_source_updated_at_ms(const struct vulndb *db);

/* What the database holds, for status pages: the records, when they were
 * last imported, the file's size, and the records per ecosystem (the
 * first VULNDB_SUMMARY_ECOSYSTEMS by name; ecosystem_count says how many
 * there are in all). */
#define VULNDB_SUMMARY_ECOSYSTEMS 32
struct vulndb_summary {
    int64_t records;
    int64_t updated_at_ms; /* -1 when unknown */
    int64_t file_bytes;
    int schema_version;
    size_t ecosystem_count;
    struct {
        char name[64];
        int64_t records;
    } ecosystems[VULNDB_SUMMARY_ECOSYSTEMS];
};

/* Read the summary of the database vulndb_open opens (a read-only connection of its
 * own, closed again). BERTH_ENOTFOUND when nothing was ever imported;
 * BERTH_EUNSUPPORTED for a newer schema; BERTH_EDB, BERTH_ENOMEM.
 * Blocks for one scan of the affected rows; any thread. */
enum berth_err vulndb_summary(const char *root_dir, struct vulndb_summary *out);

/*
 * Append the findings for an image's packages: for each distinct (source
 * name, source version) pair, the records whose affected entries name that
 * package in os->ecosystem (or in os->family, for records that apply to
 * every release) and include that version, compared with os->scheme.
 * Findings carry the source package name and the compared version as
 * package_name / package_version. Call scan_findings_finish afterwards for
 * the final order. BERTH_EINVAL for NULL arguments; BERTH_EDB, BERTH_EBUSY,
 * BERTH_ENOMEM (out may then hold some findings).
 */
enum berth_err vulndb_match(struct vulndb *db, const struct scan_os *os,
                            const struct scan_pkgs *pkgs, struct scan_findings *out);

#endif
