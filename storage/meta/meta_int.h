/*
 * Private to storage/meta/: the connection structure and statement cache.
 * Nothing outside storage/meta/ includes this or <sqlite3.h>.
 */
#ifndef BERTH_META_INT_H
#define BERTH_META_INT_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "storage/meta/meta.h"

#define META_STMT_CACHE 256

struct meta_stmt_slot {
    const char *sql; /* static string: the cache key is its address */
    sqlite3_stmt *stmt;
};

struct meta {
    sqlite3 *db;
    int in_txn;
    struct meta_stmt_slot cache[META_STMT_CACHE];
};

/* Prepared statement for a static SQL string, cached per connection and
 * reset + unbound, ready for binding. NULL on error (logged). Never
 * finalize it; call meta_done() after the last step. */
sqlite3_stmt *meta_prepare(struct meta *m, const char *sql);

/* Reset a statement from meta_prepare so it releases its read locks. */
void meta_done(sqlite3_stmt *st);

/* Log a failed SQLite call and return BERTH_EDB (BERTH_EBUSY when locked). */
enum berth_err meta_fail(struct meta *m, const char *what);

/* Copy column i as text into dst (cap bytes, "" for NULL); truncation is
 * reported as BERTH_ETOOBIG. */
enum berth_err meta_col_text(sqlite3_stmt *st, int i, char *dst, size_t cap);

/* Bind text or NULL when s is NULL or "". */
int meta_bind_text_or_null(sqlite3_stmt *st, int i, const char *s);

/* Step a write statement expecting SQLITE_DONE; BERTH_EEXIST on a
 * uniqueness violation. */
enum berth_err meta_step_done(struct meta *m, sqlite3_stmt *st, const char *what);

/* Decode the current row and hand it on; non-zero stops the page early. */
typedef int (*meta_row_fn)(sqlite3_stmt *st, void *ctx);

/* Step a statement prepared with "LIMIT limit + 1" (or unlimited when
 * limit < 0), calling row for each of the first limit rows; *has_more
 * (optional, written on success) tells whether one more row followed.
 * Resets the statement. BERTH_EDB (logged as `what`) on a step error. */
enum berth_err meta_page(struct meta *m, sqlite3_stmt *st, int64_t limit, meta_row_fn row,
                         void *ctx, bool *has_more, const char *what);

/* Run one statement returning a single text column into a new string
 * (*out NULL when the value is NULL). */
enum berth_err meta_get_text(struct meta *m, sqlite3_stmt *st, char **out);

/* The manifest columns every manifest query selects (table alias m), in
 * the order meta_manifest_row reads them; column 13 is the annotations
 * text. */
#define META_MANIFEST_COLS                                                                         \
    "m.id, m.repo_id, m.blob_id, m.digest, m.media_type, m.artifact_type, "                        \
    "m.config_media_type, m.subject, m.is_index, m.size, m.image_size, m.pushed_at, "              \
    "m.last_pulled_at, m.annotations"

/* Read a row selected with META_MANIFEST_COLS. */
void meta_manifest_row(sqlite3_stmt *st, struct meta_manifest *out);

#endif
