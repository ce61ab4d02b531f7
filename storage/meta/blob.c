/* Metadata: blobs and their links to repositories. See meta.h. */
#include "meta_int.h"

#include <string.h>

static enum berth_err fetch_blob(struct meta *m, struct meta_stmt *st, struct meta_blob *out)
{
    int rc = meta_step(st);
    enum berth_err err = BERTH_OK;
    if (rc == META_STEP_ROW) {
        out->id = meta_col_int64(st, 0);
        meta_col_text(st, 1, out->digest, sizeof(out->digest));
        out->size = meta_col_int64(st, 2);
        out->created_at = meta_col_int64(st, 3);
        out->touched_at = meta_col_int64(st, 4);
        out->tier =
            meta_col_int64(st, 5) == META_TIER_ARCHIVE ? META_TIER_ARCHIVE : META_TIER_STANDARD;
        out->archived_size = meta_col_int64(st, 6);
        out->archive_codec = (int)meta_col_int64(st, 7);
    } else if (rc == META_STEP_DONE) {
        err = BERTH_ENOTFOUND;
    } else {
        err = meta_fail(m, "blob_get");
    }
    meta_done(st);
    return err;
}

enum berth_err meta_blob_get(struct meta *m, const char *digest, struct meta_blob *out)
{
    struct meta_stmt *st =
        meta_prepare(m, "SELECT id, digest, size, created_at, touched_at, tier, archived_size, "
                        "archive_codec FROM blobs WHERE digest = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, digest);
    return fetch_blob(m, st, out);
}

enum berth_err meta_blob_get_linked(struct meta *m, int64_t repo_id, const char *digest,
                                    struct meta_blob *out)
{
    struct meta_stmt *st =
        meta_prepare(m, "SELECT b.id, b.digest, b.size, b.created_at, b.touched_at, b.tier, "
                        "b.archived_size, b.archive_codec "
                        "FROM blobs b JOIN repo_blobs rb ON rb.blob_id = b.id "
                        "WHERE b.digest = ?1 AND rb.repo_id = ?2");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, digest);
    meta_bind_int64(st, 2, repo_id);
    return fetch_blob(m, st, out);
}

enum berth_err meta_blob_get_visible(struct meta *m, const char *digest, struct meta_blob *out)
{
    struct meta_stmt *st =
        meta_prepare(m, "SELECT b.id, b.digest, b.size, b.created_at, b.touched_at, b.tier, "
                        "b.archived_size, b.archive_codec "
                        "FROM blobs b WHERE b.digest = ?1 AND EXISTS "
                        "(SELECT 1 FROM repo_blobs rb WHERE rb.blob_id = b.id)");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, digest);
    return fetch_blob(m, st, out);
}

enum berth_err meta_blob_upsert(struct meta *m, const char *digest, int64_t size, int64_t now,
                                int64_t *id)
{
    struct meta_blob existing;
    enum berth_err rc = meta_blob_get(m, digest, &existing);
    if (rc == BERTH_OK) {
        if (existing.size != size) {
            return BERTH_ECONFLICT;
        }
        rc = meta_blob_touch(m, existing.id, now);
        if (rc == BERTH_OK) {
            *id = existing.id;
        }
        return rc;
    }
    if (rc != BERTH_ENOTFOUND) {
        return rc;
    }
    struct meta_stmt *st =
        meta_prepare(m, meta_sql(m,
                                 "INSERT INTO blobs (digest, size, created_at, touched_at) "
                                 "VALUES (?1, ?2, ?3, ?3)",
                                 "INSERT INTO blobs (digest, size, created_at, touched_at) "
                                 "VALUES (?1, ?2, ?3, ?3) RETURNING id"));
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, digest);
    meta_bind_int64(st, 2, size);
    meta_bind_int64(st, 3, now);
    rc = meta_step_done(m, st, "blob_insert");
    if (rc == BERTH_OK) {
        *id = meta_last_id(m);
    }
    return rc;
}

enum berth_err meta_blob_touch(struct meta *m, int64_t blob_id, int64_t now)
{
    struct meta_stmt *st =
        meta_prepare(m, "UPDATE blobs SET touched_at = ?1 WHERE id = ?2 AND touched_at < ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, now);
    meta_bind_int64(st, 2, blob_id);
    return meta_step_done(m, st, "blob_touch");
}

enum berth_err meta_blob_link(struct meta *m, int64_t repo_id, int64_t blob_id)
{
    struct meta_stmt *st =
        meta_prepare(m, meta_sql(m,
                                 "INSERT OR IGNORE INTO repo_blobs (repo_id, blob_id) "
                                 "VALUES (?1, ?2)",
                                 "INSERT INTO repo_blobs (repo_id, blob_id) VALUES (?1, ?2) "
                                 "ON CONFLICT DO NOTHING"));
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, repo_id);
    meta_bind_int64(st, 2, blob_id);
    return meta_step_done(m, st, "blob_link");
}

enum berth_err meta_blob_unlink(struct meta *m, int64_t repo_id, int64_t blob_id)
{
    struct meta_stmt *st =
        meta_prepare(m, "DELETE FROM repo_blobs WHERE repo_id = ?1 AND blob_id = ?2");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, repo_id);
    meta_bind_int64(st, 2, blob_id);
    enum berth_err rc = meta_step_done(m, st, "blob_unlink");
    if (rc == BERTH_OK && meta_changes(m) == 0) {
        rc = BERTH_ENOTFOUND;
    }
    return rc;
}

enum berth_err meta_blob_set_tier(struct meta *m, int64_t blob_id, enum meta_blob_tier tier,
                                  int64_t archived_size, int archive_codec)
{
    struct meta_stmt *st = meta_prepare(m, "UPDATE blobs SET tier = ?2, archived_size = ?3, "
                                           "archive_codec = ?4 WHERE id = ?1 AND "
                                           "(tier <> ?2 OR archived_size <> ?3 OR "
                                           "archive_codec <> ?4)");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, blob_id);
    meta_bind_int64(st, 2, (int64_t)tier);
    meta_bind_int64(st, 3, tier == META_TIER_ARCHIVE ? archived_size : 0);
    meta_bind_int64(st, 4, tier == META_TIER_ARCHIVE ? archive_codec : 0);
    return meta_step_done(m, st, "blob_set_tier");
}
