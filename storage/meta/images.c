/*
 * Metadata: the image listings the ECR API needs (tags with their digests,
 * manifests filtered by tag status, index sizes, layer media types). Every
 * query walks an index: tags by (repo_id, name), manifests by (repo_id,
 * digest), tags by manifest_id, manifest_refs by (manifest_id, ...) or
 * (digest, kind). See meta.h.
 */
#include "meta_int.h"

#include <string.h>

struct tag_digest_ctx {
    meta_tag_digest_cb cb;
    void *arg;
};

static int tag_digest_row(struct meta_stmt *st, void *ctx)
{
    struct tag_digest_ctx *c = ctx;
    const char *tag = meta_col_cstr(st, 0);
    const char *digest = meta_col_cstr(st, 1);
    return c->cb(c->arg, tag ? tag : "", digest ? digest : "");
}

/* The image status restriction of a listing (parameters ?4, the status,
 * and ?5, the time), one static text for every status. */
#define STATUS_COND                                                                                \
    " AND (?4 = 3 OR "                                                                             \
    "(?4 = 0 AND m.storage_class = 0 AND m.active_from <= ?5 AND m.restoring = 0) OR "             \
    "(?4 = 1 AND m.storage_class = 1) OR "                                                         \
    "(?4 = 2 AND m.storage_class = 0 AND (m.active_from > ?5 OR m.restoring = 1))) "

static void bind_filter(struct meta_stmt *st, const struct meta_status_filter *filter)
{
    meta_bind_int64(st, 4, filter ? (int64_t)filter->status : (int64_t)META_IMAGES_ANY);
    meta_bind_int64(st, 5, filter ? filter->now_ms : 0);
}

enum berth_err meta_tag_list_digests(struct meta *m, int64_t repo_id, const char *after,
                                     int64_t limit, const struct meta_status_filter *filter,
                                     meta_tag_digest_cb cb, void *arg, bool *has_more)
{
    struct meta_stmt *st = meta_prepare(m, "SELECT t.name, m.digest FROM tags t "
                                           "JOIN manifests m ON m.id = t.manifest_id "
                                           "WHERE t.repo_id = ?1 AND t.name > ?2" STATUS_COND
                                           "ORDER BY t.name LIMIT ?3");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, repo_id);
    meta_bind_text(st, 2, after ? after : "");
    meta_bind_int64(st, 3, limit + 1);
    bind_filter(st, filter);
    struct tag_digest_ctx c = {cb, arg};
    return meta_page(m, st, limit, tag_digest_row, &c, has_more, "tag_list_digests");
}

/* One statement per tag status, so each stays a static string for the
 * statement cache and SQLite plans each with the (repo_id, digest) index. */
static const char *const list_sql[] = {
    [META_TAGS_ANY] =
        "SELECT " META_MANIFEST_COLS " FROM manifests m "
        "WHERE m.repo_id = ?1 AND m.digest > ?2" STATUS_COND "ORDER BY m.digest LIMIT ?3",
    [META_TAGS_TAGGED] = "SELECT " META_MANIFEST_COLS " FROM manifests m "
                         "WHERE m.repo_id = ?1 AND m.digest > ?2 AND EXISTS "
                         "(SELECT 1 FROM tags t WHERE t.manifest_id = m.id)" STATUS_COND
                         "ORDER BY m.digest LIMIT ?3",
    [META_TAGS_UNTAGGED] = "SELECT " META_MANIFEST_COLS " FROM manifests m "
                           "WHERE m.repo_id = ?1 AND m.digest > ?2 AND NOT EXISTS "
                           "(SELECT 1 FROM tags t WHERE t.manifest_id = m.id)" STATUS_COND
                           "ORDER BY m.digest LIMIT ?3",
};

struct manifest_ctx {
    meta_manifest_cb cb;
    void *arg;
};

static int manifest_row(struct meta_stmt *st, void *ctx)
{
    struct manifest_ctx *c = ctx;
    struct meta_manifest mf;
    meta_manifest_row(st, &mf);
    return c->cb(c->arg, &mf);
}

enum berth_err meta_manifest_list(struct meta *m, int64_t repo_id, enum meta_tag_status status,
                                  const struct meta_status_filter *filter, const char *after,
                                  int64_t limit, meta_manifest_cb cb, void *arg, bool *has_more)
{
    if ((size_t)status >= sizeof(list_sql) / sizeof(list_sql[0]) || limit < 0) {
        return BERTH_EINVAL;
    }
    struct meta_stmt *st = meta_prepare(m, list_sql[status]);
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, repo_id);
    meta_bind_text(st, 2, after ? after : "");
    meta_bind_int64(st, 3, limit + 1);
    bind_filter(st, filter);
    struct manifest_ctx c = {cb, arg};
    return meta_page(m, st, limit, manifest_row, &c, has_more, "manifest_list");
}

/* Run a statement that yields one integer (NULL counts as 0). */
static enum berth_err single_int(struct meta *m, struct meta_stmt *st, int64_t *out,
                                 const char *what)
{
    enum berth_err err = BERTH_OK;
    if (meta_step(st) == META_STEP_ROW) {
        *out = meta_col_int64(st, 0);
    } else {
        err = meta_fail(m, what);
    }
    meta_done(st);
    return err;
}

enum berth_err meta_manifest_tag_count(struct meta *m, int64_t manifest_id, int64_t *out)
{
    struct meta_stmt *st = meta_prepare(m, "SELECT count(*) FROM tags WHERE manifest_id = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, manifest_id);
    return single_int(m, st, out, "manifest_tag_count");
}

enum berth_err meta_manifest_children_max_size(struct meta *m, int64_t repo_id, int64_t manifest_id,
                                               int64_t *out)
{
    struct meta_stmt *st = meta_prepare(m, "SELECT coalesce(max(c.image_size), 0) "
                                           "FROM manifest_refs r JOIN manifests c "
                                           "ON c.repo_id = ?1 AND c.digest = r.digest "
                                           "WHERE r.manifest_id = ?2 AND r.kind = 1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, repo_id);
    meta_bind_int64(st, 2, manifest_id);
    return single_int(m, st, out, "manifest_children_size");
}

enum berth_err meta_blob_media_type(struct meta *m, int64_t repo_id, const char *digest, char *out,
                                    size_t cap)
{
    struct meta_stmt *st = meta_prepare(m, "SELECT r.media_type FROM manifest_refs r "
                                           "JOIN manifests m ON m.id = r.manifest_id "
                                           "WHERE r.digest = ?1 AND r.kind = 0 AND m.repo_id = ?2 "
                                           "AND r.media_type IS NOT NULL LIMIT 1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, digest);
    meta_bind_int64(st, 2, repo_id);
    enum berth_err err = BERTH_OK;
    int rc = meta_step(st);
    if (rc == META_STEP_ROW) {
        err = meta_col_text(st, 0, out, cap);
    } else if (rc == META_STEP_DONE) {
        out[0] = '\0';
    } else {
        err = meta_fail(m, "blob_media_type");
    }
    meta_done(st);
    return err;
}

enum berth_err meta_manifest_set_storage_class(struct meta *m, int64_t repo_id, int64_t manifest_id,
                                               enum meta_storage_class cls, int64_t now_ms,
                                               int64_t active_from)
{
    /* the manifest itself and, for an index, the manifests it lists */
#define STORAGE_TARGETS                                                                            \
    " WHERE repo_id = ?1 AND (id = ?2 OR (storage_class <> ?5 AND digest IN "                      \
    "(SELECT r.digest FROM manifest_refs r WHERE r.manifest_id = ?2 AND r.kind = 1)))"
    struct meta_stmt *st =
        meta_prepare(m, cls == META_STORAGE_ARCHIVE
                            ? "UPDATE manifests SET storage_class = ?5, archived_at = ?3, "
                              "active_from = ?4" STORAGE_TARGETS
                            : "UPDATE manifests SET storage_class = ?5, activated_at = ?3, "
                              "active_from = ?4" STORAGE_TARGETS);
#undef STORAGE_TARGETS
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, repo_id);
    meta_bind_int64(st, 2, manifest_id);
    meta_bind_int64(st, 3, now_ms);
    meta_bind_int64(st, 4, active_from);
    meta_bind_int64(st, 5, (int64_t)cls);
    return meta_step_done(m, st, "manifest_set_storage_class");
}

enum berth_err meta_blob_archive_state(struct meta *m, int64_t repo_id, const char *digest,
                                       bool *any_ref, bool *all_archived)
{
    struct meta_stmt *st = meta_prepare(m, "SELECT count(*), coalesce(min(m.storage_class), 0) "
                                           "FROM manifest_refs r JOIN manifests m "
                                           "ON m.id = r.manifest_id "
                                           "WHERE r.digest = ?1 AND r.kind = 0 AND m.repo_id = ?2");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, digest);
    meta_bind_int64(st, 2, repo_id);
    enum berth_err err = BERTH_OK;
    if (meta_step(st) == META_STEP_ROW) {
        int64_t n = meta_col_int64(st, 0);
        *any_ref = n > 0;
        *all_archived = n > 0 && meta_col_int64(st, 1) == META_STORAGE_ARCHIVE;
    } else {
        err = meta_fail(m, "blob_archive_state");
    }
    meta_done(st);
    return err;
}

enum berth_err meta_blob_archived_only(struct meta *m, int64_t repo_id, const char *digest,
                                       bool *out)
{
    *out = false;
    /* the literal class lets both databases use the partial index
     * manifests_archived: a repository without archived images costs one
     * probe of an index that holds none of its rows */
    struct meta_stmt *st = meta_prepare(m, "SELECT 1 FROM manifests "
                                           "WHERE repo_id = ?1 AND storage_class = 1 LIMIT 1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, repo_id);
    enum meta_step r = meta_step(st);
    meta_done(st);
    if (r == META_STEP_DONE) {
        return BERTH_OK;
    }
    if (r != META_STEP_ROW) {
        return meta_fail(m, "blob_archived_only");
    }
    bool any_ref = false;
    return meta_blob_archive_state(m, repo_id, digest, &any_ref, out);
}

enum berth_err meta_image_class_counts(struct meta *m, int64_t now_ms, int64_t *archived,
                                       int64_t *activating)
{
    struct meta_stmt *st =
        meta_prepare(m, "SELECT (SELECT count(*) FROM manifests WHERE storage_class = 1),"
                        " (SELECT count(*) FROM manifests WHERE storage_class = 0"
                        " AND (active_from > ?1 OR restoring = 1))");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, now_ms);
    enum berth_err rc = BERTH_OK;
    if (meta_step(st) == META_STEP_ROW) {
        *archived = meta_col_int64(st, 0);
        *activating = meta_col_int64(st, 1);
    } else {
        rc = meta_fail(m, "image_class_counts");
    }
    meta_done(st);
    return rc;
}
