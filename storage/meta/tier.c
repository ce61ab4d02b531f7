/* Metadata: the archive tier's queries. See meta_tier.h. */
#include "meta_int.h"

#include "storage/meta/meta_tier.h"

/* The rule of meta_tier.h for the blob row b (kind 0 is META_REF_BLOB,
 * storage class 1 the archive class). */
#define ARCHIVABLE_EXPR(quiet)                                                                     \
    "b.tier = 0 "                                                                                  \
    "AND (b.touched_at < " quiet " OR b.touched_at <= (SELECT max(am.archived_at) "                \
    "FROM manifest_refs r JOIN manifests am ON am.id = r.manifest_id "                             \
    "WHERE r.digest = b.digest AND am.storage_class = 1)) "                                        \
    "AND EXISTS (SELECT 1 FROM manifest_refs r JOIN manifests am ON am.id = r.manifest_id "        \
    "WHERE r.digest = b.digest AND r.kind = 0 AND am.storage_class = 1) "                          \
    "AND NOT EXISTS (SELECT 1 FROM manifest_refs r JOIN manifests sm ON sm.id = r.manifest_id "    \
    "WHERE r.digest = b.digest AND sm.storage_class = 0) "                                         \
    "AND NOT EXISTS (SELECT 1 FROM manifests cm WHERE cm.blob_id = b.id) "                         \
    "AND NOT EXISTS (SELECT 1 FROM repo_blobs rb WHERE rb.blob_id = b.id AND NOT EXISTS "          \
    "(SELECT 1 FROM manifest_refs r JOIN manifests lm ON lm.id = r.manifest_id "                   \
    "WHERE r.digest = b.digest AND lm.repo_id = rb.repo_id)) "

#define BLOB_COLS                                                                                  \
    "b.id, b.digest, b.size, b.created_at, b.touched_at, b.tier, b.archived_size, "                \
    "b.archive_codec "

struct blob_ctx {
    meta_tier_blob_cb cb;
    void *arg;
};

static int blob_row(struct meta_stmt *st, void *ctx)
{
    struct blob_ctx *c = ctx;
    struct meta_blob b;
    b.id = meta_col_int64(st, 0);
    if (meta_col_text(st, 1, b.digest, sizeof(b.digest)) != BERTH_OK) {
        return 0; /* not a digest berth wrote: left alone */
    }
    b.size = meta_col_int64(st, 2);
    b.created_at = meta_col_int64(st, 3);
    b.touched_at = meta_col_int64(st, 4);
    b.tier = meta_col_int64(st, 5) == META_TIER_ARCHIVE ? META_TIER_ARCHIVE : META_TIER_STANDARD;
    b.archived_size = meta_col_int64(st, 6);
    b.archive_codec = (int)meta_col_int64(st, 7);
    return c->cb(c->arg, &b);
}

enum berth_err meta_tier_candidates(struct meta *m, int64_t after_id, int64_t limit,
                                    int64_t quiet_before, meta_tier_blob_cb cb, void *arg)
{
    /* from the archived manifests (the partial index manifests_archived)
     * to the blobs they use */
    struct meta_stmt *st = meta_prepare(
        m, "SELECT " BLOB_COLS "FROM blobs b WHERE b.id > ?1 AND b.id IN "
           "(SELECT b2.id FROM manifests am JOIN manifest_refs r ON r.manifest_id = am.id "
           "AND r.kind = 0 JOIN blobs b2 ON b2.digest = r.digest "
           "WHERE am.storage_class = 1 AND b2.tier = 0) "
           "AND " ARCHIVABLE_EXPR("?3") "ORDER BY b.id LIMIT ?2");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, after_id);
    meta_bind_int64(st, 2, limit + 1);
    meta_bind_int64(st, 3, quiet_before);
    struct blob_ctx c = {cb, arg};
    return meta_page(m, st, limit, blob_row, &c, NULL, "tier_candidates");
}

enum berth_err meta_tier_archivable(struct meta *m, int64_t blob_id, int64_t quiet_before,
                                    bool *out)
{
    struct meta_stmt *st =
        meta_prepare(m, "SELECT count(*) FROM blobs b WHERE b.id = ?1 AND " ARCHIVABLE_EXPR("?2"));
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, blob_id);
    meta_bind_int64(st, 2, quiet_before);
    enum berth_err err = BERTH_OK;
    if (meta_step(st) == META_STEP_ROW) {
        *out = meta_col_int64(st, 0) > 0;
    } else {
        err = meta_fail(m, "tier_archivable");
    }
    meta_done(st);
    return err;
}

enum berth_err meta_tier_archived(struct meta *m, int64_t after_id, int64_t limit,
                                  meta_tier_blob_cb cb, void *arg)
{
    struct meta_stmt *st =
        meta_prepare(m, "SELECT " BLOB_COLS
                        "FROM blobs b WHERE b.tier = 1 AND b.id > ?1 ORDER BY b.id LIMIT ?2");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, after_id);
    meta_bind_int64(st, 2, limit + 1);
    struct blob_ctx c = {cb, arg};
    return meta_page(m, st, limit, blob_row, &c, NULL, "tier_archived");
}

/* manifest id ?3 uses a blob of the archive tier */
#define USES_ARCHIVED(alias)                                                                       \
    "EXISTS (SELECT 1 FROM manifest_refs r JOIN blobs b ON b.digest = r.digest "                   \
    "WHERE r.manifest_id = " alias ".id AND r.kind = 0 AND b.tier = 1)"

/* manifest alias is an index of which a child (a manifest of the same
 * repository) uses a blob of the archive tier */
#define CHILD_USES_ARCHIVED(alias)                                                                 \
    "EXISTS (SELECT 1 FROM manifest_refs c JOIN manifests k ON k.digest = c.digest "               \
    "AND k.repo_id = " alias ".repo_id WHERE c.manifest_id = " alias ".id AND c.kind = 1 AND "     \
    "EXISTS (SELECT 1 FROM manifest_refs r JOIN blobs b ON b.digest = r.digest "                   \
    "WHERE r.manifest_id = k.id AND r.kind = 0 AND b.tier = 1))"

/* manifest alias is an index of which a child is still restoring */
#define CHILD_RESTORING(alias)                                                                     \
    "EXISTS (SELECT 1 FROM manifest_refs c JOIN manifests k ON k.digest = c.digest "               \
    "AND k.repo_id = " alias ".repo_id WHERE c.manifest_id = " alias ".id AND c.kind = 1 AND "     \
    "k.restoring = 1)"

enum berth_err meta_tier_mark_restoring(struct meta *m, int64_t repo_id, int64_t manifest_id,
                                        int64_t *marked)
{
    struct meta_stmt *st = meta_prepare(
        m, "UPDATE manifests SET restoring = 1 WHERE repo_id = ?1 AND storage_class = 0 "
           "AND restoring = 0 AND (id = ?2 OR digest IN (SELECT r.digest FROM manifest_refs r "
           "WHERE r.manifest_id = ?2 AND r.kind = 1)) AND (" USES_ARCHIVED(
               "manifests") " OR " CHILD_USES_ARCHIVED("manifests") ")");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, repo_id);
    meta_bind_int64(st, 2, manifest_id);
    enum berth_err rc = meta_step_done(m, st, "tier_mark_restoring");
    if (rc == BERTH_OK && marked != NULL) {
        *marked = meta_changes(m);
    }
    return rc;
}

struct id_ctx {
    meta_tier_id_cb cb;
    void *arg;
};

static int id_row(struct meta_stmt *st, void *ctx)
{
    struct id_ctx *c = ctx;
    return c->cb(c->arg, meta_col_int64(st, 0));
}

enum berth_err meta_tier_restoring(struct meta *m, int64_t after_id, int64_t limit,
                                   meta_tier_id_cb cb, void *arg)
{
    struct meta_stmt *st = meta_prepare(m, "SELECT id FROM manifests WHERE restoring = 1 AND "
                                           "id > ?1 ORDER BY id LIMIT ?2");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, after_id);
    meta_bind_int64(st, 2, limit + 1);
    struct id_ctx c = {cb, arg};
    return meta_page(m, st, limit, id_row, &c, NULL, "tier_restoring");
}

enum berth_err meta_tier_manifest_archived(struct meta *m, int64_t manifest_id,
                                           meta_tier_blob_cb cb, void *arg)
{
    struct meta_stmt *st =
        meta_prepare(m, "SELECT DISTINCT " BLOB_COLS "FROM manifest_refs r "
                        "JOIN blobs b ON b.digest = r.digest "
                        "WHERE r.manifest_id = ?1 AND r.kind = 0 AND b.tier = 1 ORDER BY b.id");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, manifest_id);
    struct blob_ctx c = {cb, arg};
    return meta_page(m, st, -1, blob_row, &c, NULL, "tier_manifest_archived");
}

enum berth_err meta_tier_finish_restoring(struct meta *m, int64_t manifest_id, bool *done)
{
    struct meta_stmt *st = meta_prepare(
        m, "UPDATE manifests SET restoring = 0 WHERE id = ?1 AND restoring = 1 "
           "AND NOT " USES_ARCHIVED("manifests") " AND NOT " CHILD_RESTORING("manifests"));
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, manifest_id);
    enum berth_err rc = meta_step_done(m, st, "tier_finish_restoring");
    if (rc == BERTH_OK) {
        *done = meta_changes(m) > 0;
    }
    return rc;
}
