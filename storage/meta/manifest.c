/* Metadata: manifests, their references, tags and referrers. See meta.h. */
#include "meta_int.h"

#include <string.h>

void meta_manifest_row(struct meta_stmt *st, struct meta_manifest *out)
{
    out->id = meta_col_int64(st, 0);
    out->repo_id = meta_col_int64(st, 1);
    out->blob_id = meta_col_int64(st, 2);
    meta_col_text(st, 3, out->digest, sizeof(out->digest));
    meta_col_text(st, 4, out->media_type, sizeof(out->media_type));
    meta_col_text(st, 5, out->artifact_type, sizeof(out->artifact_type));
    meta_col_text(st, 6, out->config_media_type, sizeof(out->config_media_type));
    meta_col_text(st, 7, out->subject, sizeof(out->subject));
    out->is_index = meta_col_int(st, 8) != 0;
    out->size = meta_col_int64(st, 9);
    out->image_size = meta_col_int64(st, 10);
    out->pushed_at = meta_col_int64(st, 11);
    out->last_pulled_at = meta_col_int64(st, 12);
    out->storage_class = meta_col_int64(st, 14) == META_STORAGE_ARCHIVE ? META_STORAGE_ARCHIVE
                                                                        : META_STORAGE_STANDARD;
    out->archived_at = meta_col_int64(st, 15);
    out->activated_at = meta_col_int64(st, 16);
    out->active_from = meta_col_int64(st, 17);
    out->restoring = meta_col_int64(st, 18) != 0;
}

static enum berth_err fetch_manifest(struct meta *m, struct meta_stmt *st,
                                     struct meta_manifest *out)
{
    int rc = meta_step(st);
    enum berth_err err = BERTH_OK;
    if (rc == META_STEP_ROW) {
        meta_manifest_row(st, out);
    } else if (rc == META_STEP_DONE) {
        err = BERTH_ENOTFOUND;
    } else {
        err = meta_fail(m, "manifest_get");
    }
    meta_done(st);
    return err;
}

enum berth_err meta_manifest_get(struct meta *m, int64_t repo_id, const char *digest,
                                 struct meta_manifest *out)
{
    struct meta_stmt *st = meta_prepare(m, "SELECT " META_MANIFEST_COLS " FROM manifests m "
                                           "WHERE m.repo_id = ?1 AND m.digest = ?2");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, repo_id);
    meta_bind_text(st, 2, digest);
    return fetch_manifest(m, st, out);
}

enum berth_err meta_manifest_get_by_tag(struct meta *m, int64_t repo_id, const char *tag,
                                        struct meta_manifest *out)
{
    struct meta_stmt *st = meta_prepare(m, "SELECT " META_MANIFEST_COLS " FROM tags t "
                                           "JOIN manifests m ON m.id = t.manifest_id "
                                           "WHERE t.repo_id = ?1 AND t.name = ?2");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, repo_id);
    meta_bind_text(st, 2, tag);
    return fetch_manifest(m, st, out);
}

enum berth_err meta_manifest_insert(struct meta *m, const struct meta_manifest *in,
                                    const char *annotations, int64_t *id)
{
#define MANIFEST_INSERT                                                                            \
    "INSERT INTO manifests (repo_id, blob_id, digest, media_type, artifact_type, "                 \
    "config_media_type, subject, is_index, size, image_size, pushed_at, annotations) "             \
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    struct meta_stmt *st =
        meta_prepare(m, meta_sql(m, MANIFEST_INSERT, MANIFEST_INSERT " RETURNING id"));
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, in->repo_id);
    meta_bind_int64(st, 2, in->blob_id);
    meta_bind_text(st, 3, in->digest);
    meta_bind_text(st, 4, in->media_type);
    meta_bind_text_or_null(st, 5, in->artifact_type);
    meta_bind_text_or_null(st, 6, in->config_media_type);
    meta_bind_text_or_null(st, 7, in->subject);
    meta_bind_int64(st, 8, in->is_index ? 1 : 0);
    meta_bind_int64(st, 9, in->size);
    meta_bind_int64(st, 10, in->image_size);
    meta_bind_int64(st, 11, in->pushed_at);
    meta_bind_text_or_null(st, 12, annotations);
    enum berth_err rc = meta_step_done(m, st, "manifest_insert");
    if (rc == BERTH_OK) {
        *id = meta_last_id(m);
    }
    return rc;
}

enum berth_err meta_manifest_ref_add(struct meta *m, int64_t manifest_id, const char *digest,
                                     enum meta_ref_kind kind, const char *media_type)
{
    struct meta_stmt *st =
        meta_prepare(m, meta_sql(m,
                                 "INSERT OR IGNORE INTO manifest_refs (manifest_id, digest, kind, "
                                 "media_type) VALUES (?1, ?2, ?3, ?4)",
                                 "INSERT INTO manifest_refs (manifest_id, digest, kind, "
                                 "media_type) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING"));
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, manifest_id);
    meta_bind_text(st, 2, digest);
    meta_bind_int64(st, 3, (int)kind);
    meta_bind_text_or_null(st, 4, media_type);
    return meta_step_done(m, st, "manifest_ref_add");
}

enum berth_err meta_manifest_delete(struct meta *m, int64_t manifest_id)
{
    struct meta_stmt *st = meta_prepare(m, "DELETE FROM manifests WHERE id = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, manifest_id);
    enum berth_err rc = meta_step_done(m, st, "manifest_delete");
    if (rc == BERTH_OK && meta_changes(m) == 0) {
        rc = BERTH_ENOTFOUND;
    }
    return rc;
}

enum berth_err meta_manifest_parent_count(struct meta *m, int64_t repo_id, const char *digest,
                                          int64_t *out)
{
    struct meta_stmt *st = meta_prepare(m, "SELECT count(*) FROM manifest_refs r "
                                           "JOIN manifests m ON m.id = r.manifest_id "
                                           "WHERE r.digest = ?1 AND r.kind = 1 AND m.repo_id = ?2");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, digest);
    meta_bind_int64(st, 2, repo_id);
    enum berth_err err = BERTH_OK;
    if (meta_step(st) == META_STEP_ROW) {
        *out = meta_col_int64(st, 0);
    } else {
        err = meta_fail(m, "manifest_parents");
    }
    meta_done(st);
    return err;
}

enum berth_err meta_manifest_touch_refs(struct meta *m, int64_t manifest_id, int64_t now)
{
    struct meta_stmt *st = meta_prepare(
        m, "UPDATE blobs SET touched_at = ?1 WHERE touched_at < ?1 AND ("
           "digest IN (SELECT digest FROM manifest_refs WHERE manifest_id = ?2 AND kind = 0) OR "
           "id = (SELECT blob_id FROM manifests WHERE id = ?2))");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, now);
    meta_bind_int64(st, 2, manifest_id);
    return meta_step_done(m, st, "manifest_touch_refs");
}

enum berth_err meta_manifest_note_pull(struct meta *m, int64_t manifest_id, int64_t now,
                                       int64_t min_interval_ms)
{
    struct meta_stmt *st = meta_prepare(m, "UPDATE manifests SET last_pulled_at = ?1 WHERE id = ?2 "
                                           "AND (last_pulled_at IS NULL OR last_pulled_at < ?3)");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, now);
    meta_bind_int64(st, 2, manifest_id);
    meta_bind_int64(st, 3, now - min_interval_ms);
    return meta_step_done(m, st, "manifest_note_pull");
}

enum berth_err meta_tag_set(struct meta *m, int64_t repo_id, const char *tag, int64_t manifest_id,
                            int64_t now, int64_t *previous)
{
    int64_t prev = 0;
    struct meta_stmt *st =
        meta_prepare(m, "SELECT manifest_id FROM tags WHERE repo_id = ?1 AND name = ?2");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, repo_id);
    meta_bind_text(st, 2, tag);
    int rc = meta_step(st);
    if (rc == META_STEP_ROW) {
        prev = meta_col_int64(st, 0);
    } else if (rc != META_STEP_DONE) {
        enum berth_err err = meta_fail(m, "tag_get");
        meta_done(st);
        return err;
    }
    meta_done(st);
    if (prev != manifest_id) {
        st = meta_prepare(m, "INSERT INTO tags (repo_id, name, manifest_id, updated_at) "
                             "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (repo_id, name) DO UPDATE "
                             "SET manifest_id = excluded.manifest_id, "
                             "updated_at = excluded.updated_at");
        if (st == NULL) {
            return BERTH_EDB;
        }
        meta_bind_int64(st, 1, repo_id);
        meta_bind_text(st, 2, tag);
        meta_bind_int64(st, 3, manifest_id);
        meta_bind_int64(st, 4, now);
        enum berth_err err = meta_step_done(m, st, "tag_set");
        if (err != BERTH_OK) {
            return err;
        }
    }
    if (previous != NULL) {
        *previous = prev;
    }
    return BERTH_OK;
}

enum berth_err meta_tag_delete(struct meta *m, int64_t repo_id, const char *tag)
{
    struct meta_stmt *st = meta_prepare(m, "DELETE FROM tags WHERE repo_id = ?1 AND name = ?2");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, repo_id);
    meta_bind_text(st, 2, tag);
    enum berth_err rc = meta_step_done(m, st, "tag_delete");
    if (rc == BERTH_OK && meta_changes(m) == 0) {
        rc = BERTH_ENOTFOUND;
    }
    return rc;
}

struct name_ctx {
    meta_name_cb cb;
    void *arg;
};

static int name_row(struct meta_stmt *st, void *ctx)
{
    struct name_ctx *c = ctx;
    const char *name = meta_col_cstr(st, 0);
    return c->cb(c->arg, name ? name : "");
}

/* Feed cb the first column of each row (a name); see meta_page. */
static enum berth_err list_names(struct meta *m, struct meta_stmt *st, int64_t limit,
                                 meta_name_cb cb, void *arg, bool *has_more, const char *what)
{
    struct name_ctx c = {cb, arg};
    return meta_page(m, st, limit, name_row, &c, has_more, what);
}

enum berth_err meta_tag_list(struct meta *m, int64_t repo_id, const char *after, int64_t limit,
                             meta_name_cb cb, void *arg, bool *has_more)
{
    struct meta_stmt *st = meta_prepare(m, "SELECT name FROM tags WHERE repo_id = ?1 AND name > ?2 "
                                           "ORDER BY name LIMIT ?3");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, repo_id);
    meta_bind_text(st, 2, after ? after : "");
    meta_bind_int64(st, 3, limit + 1);
    return list_names(m, st, limit, cb, arg, has_more, "tag_list");
}

enum berth_err meta_manifest_tags(struct meta *m, int64_t manifest_id, meta_name_cb cb, void *arg)
{
    struct meta_stmt *st =
        meta_prepare(m, "SELECT name FROM tags WHERE manifest_id = ?1 ORDER BY name");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, manifest_id);
    return list_names(m, st, -1, cb, arg, NULL, "manifest_tags");
}

struct referrer_ctx {
    meta_referrer_cb cb;
    void *arg;
};

static int referrer_row(struct meta_stmt *st, void *ctx)
{
    struct referrer_ctx *c = ctx;
    struct meta_manifest mf;
    meta_manifest_row(st, &mf);
    const char *ann = meta_col_cstr(st, 13);
    return c->cb(c->arg, &mf, ann ? ann : NULL);
}

enum berth_err meta_referrers(struct meta *m, int64_t repo_id, const char *subject,
                              const char *artifact_type, meta_referrer_cb cb, void *arg)
{
#define REFERRERS_SELECT(type)                                                                     \
    "SELECT " META_MANIFEST_COLS " FROM manifests m WHERE m.repo_id = ?1 AND m.subject = ?2 "      \
    "AND (" type " IS NULL OR m.artifact_type = ?3) ORDER BY m.digest"
    /* PostgreSQL cannot tell the type of a NULL ?3 by itself */
    struct meta_stmt *st =
        meta_prepare(m, meta_sql(m, REFERRERS_SELECT("?3"), REFERRERS_SELECT("?3::text")));
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, repo_id);
    meta_bind_text(st, 2, subject);
    meta_bind_text_or_null(st, 3, artifact_type);
    struct referrer_ctx c = {cb, arg};
    return meta_page(m, st, -1, referrer_row, &c, NULL, "referrers");
}
