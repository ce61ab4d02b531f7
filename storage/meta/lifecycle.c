/* Metadata: lifecycle snapshots and stored previews. See meta_lifecycle.h. */
#include "meta_int.h"

#include <stdlib.h>
#include <string.h>

#include "storage/meta/meta_lifecycle.h"

static const char *col_str(struct meta_stmt *st, int i)
{
    const char *t = meta_col_cstr(st, i);
    return t ? t : "";
}

struct image_ctx {
    meta_lc_image_cb cb;
    void *arg;
};

static int image_row(struct meta_stmt *st, void *p)
{
    struct image_ctx *c = p;
    struct meta_lc_image img = {
        .id = meta_col_int64(st, 0),
        .digest = col_str(st, 1),
        .pushed_at = meta_col_int64(st, 2),
        .pulled_at = meta_col_int64(st, 3),
        .is_archived = meta_col_int64(st, 4) == META_STORAGE_ARCHIVE,
        .archived_at = meta_col_int64(st, 5),
    };
    return c->cb(c->arg, &img);
}

enum berth_err meta_lifecycle_images(struct meta *m, int64_t repo_id, meta_lc_image_cb cb,
                                     void *arg)
{
    struct meta_stmt *st =
        meta_prepare(m, "SELECT id, digest, pushed_at, last_pulled_at, storage_class, "
                        "archived_at FROM manifests WHERE repo_id = ?1 ORDER BY id");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, repo_id);
    struct image_ctx c = {cb, arg};
    return meta_page(m, st, -1, image_row, &c, NULL, "lifecycle_images");
}

struct tag_ctx {
    meta_lc_tag_cb cb;
    void *arg;
};

static int tag_row(struct meta_stmt *st, void *p)
{
    struct tag_ctx *c = p;
    return c->cb(c->arg, meta_col_int64(st, 0), col_str(st, 1));
}

enum berth_err meta_lifecycle_tags(struct meta *m, int64_t repo_id, meta_lc_tag_cb cb, void *arg)
{
    struct meta_stmt *st = meta_prepare(
        m, "SELECT manifest_id, name FROM tags WHERE repo_id = ?1 ORDER BY manifest_id, name");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, repo_id);
    struct tag_ctx c = {cb, arg};
    return meta_page(m, st, -1, tag_row, &c, NULL, "lifecycle_tags");
}

struct edge_ctx {
    meta_lc_edge_cb cb;
    void *arg;
};

static int edge_row(struct meta_stmt *st, void *p)
{
    struct edge_ctx *c = p;
    return c->cb(c->arg, meta_col_int64(st, 0), meta_col_int64(st, 1));
}

enum berth_err meta_lifecycle_children(struct meta *m, int64_t repo_id, meta_lc_edge_cb cb,
                                       void *arg)
{
    struct meta_stmt *st =
        meta_prepare(m, "SELECT p.id, c.id FROM manifests p "
                        "JOIN manifest_refs r ON r.manifest_id = p.id AND r.kind = 1 "
                        "JOIN manifests c ON c.repo_id = p.repo_id "
                        "AND c.digest = r.digest "
                        "WHERE p.repo_id = ?1 AND p.is_index = 1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, repo_id);
    struct edge_ctx c = {cb, arg};
    return meta_page(m, st, -1, edge_row, &c, NULL, "lifecycle_children");
}

enum berth_err meta_lifecycle_referrers(struct meta *m, int64_t repo_id, meta_lc_edge_cb cb,
                                        void *arg)
{
    struct meta_stmt *st =
        meta_prepare(m, "SELECT s.id, r.id FROM manifests r "
                        "JOIN manifests s ON s.repo_id = r.repo_id AND s.digest = r.subject "
                        "WHERE r.repo_id = ?1 AND r.subject IS NOT NULL");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, repo_id);
    struct edge_ctx c = {cb, arg};
    return meta_page(m, st, -1, edge_row, &c, NULL, "lifecycle_referrers");
}

struct repo_ctx {
    meta_lc_repo_cb cb;
    void *arg;
};

static int repo_row(struct meta_stmt *st, void *p)
{
    struct repo_ctx *c = p;
    return c->cb(c->arg, meta_col_int64(st, 0), col_str(st, 1));
}

enum berth_err meta_lifecycle_repos(struct meta *m, int64_t after, int64_t limit,
                                    meta_lc_repo_cb cb, void *arg)
{
    struct meta_stmt *st = meta_prepare(m, "SELECT id, name FROM repositories WHERE id > ?1 AND "
                                           "lifecycle_text IS NOT NULL ORDER BY id LIMIT ?2");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, after);
    meta_bind_int64(st, 2, limit);
    struct repo_ctx c = {cb, arg};
    return meta_page(m, st, -1, repo_row, &c, NULL, "lifecycle_repos");
}

/* ---- previews ---- */

static const char *const status_names[] = {
    [META_PREVIEW_IN_PROGRESS] = "IN_PROGRESS",
    [META_PREVIEW_COMPLETE] = "COMPLETE",
    [META_PREVIEW_FAILED] = "FAILED",
};

const char *meta_preview_status_name(enum meta_preview_status s)
{
    if ((size_t)s < sizeof(status_names) / sizeof(status_names[0])) {
        return status_names[s];
    }
    return "FAILED";
}

static enum meta_preview_status parse_status(const char *s)
{
    for (size_t i = 0; i < sizeof(status_names) / sizeof(status_names[0]); i++) {
        if (strcmp(s, status_names[i]) == 0) {
            return (enum meta_preview_status)i;
        }
    }
    return META_PREVIEW_FAILED;
}

enum berth_err meta_preview_get(struct meta *m, int64_t repo_id, struct meta_preview *out,
                                char **policy_text)
{
    struct meta_stmt *st =
        meta_prepare(m, "SELECT status, started_at, finished_at, expiring_count, policy_text, "
                        "transitioning_count FROM lifecycle_previews WHERE repo_id = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, repo_id);
    enum berth_err err = BERTH_OK;
    int rc = meta_step(st);
    if (rc == META_STEP_ROW) {
        char *text = NULL;
        if (policy_text != NULL) {
            text = strdup(col_str(st, 4));
            if (text == NULL) {
                err = BERTH_ENOMEM;
            }
        }
        if (err == BERTH_OK) {
            out->repo_id = repo_id;
            out->status = parse_status(col_str(st, 0));
            out->started_at = meta_col_int64(st, 1);
            out->finished_at = meta_col_int64(st, 2);
            out->expiring_count = meta_col_int64(st, 3);
            out->transitioning_count = meta_col_int64(st, 5);
            if (policy_text != NULL) {
                *policy_text = text;
            }
        }
    } else if (rc == META_STEP_DONE) {
        err = BERTH_ENOTFOUND;
    } else {
        err = meta_fail(m, "preview_get");
    }
    meta_done(st);
    return err;
}

enum berth_err meta_preview_start(struct meta *m, int64_t repo_id, const char *policy_text,
                                  int64_t now)
{
    struct meta_stmt *st =
        meta_prepare(m, "INSERT INTO lifecycle_previews (repo_id, status, policy_text, started_at, "
                        "finished_at, expiring_count, transitioning_count) "
                        "VALUES (?1, 'IN_PROGRESS', ?2, ?3, NULL, 0, 0) "
                        "ON CONFLICT (repo_id) DO UPDATE SET status = excluded.status, "
                        "policy_text = excluded.policy_text, started_at = excluded.started_at, "
                        "finished_at = NULL, expiring_count = 0, transitioning_count = 0");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, repo_id);
    meta_bind_text(st, 2, policy_text);
    meta_bind_int64(st, 3, now);
    return meta_step_done(m, st, "preview_start");
}

enum berth_err meta_preview_clear_results(struct meta *m, int64_t repo_id, int64_t limit,
                                          int64_t *deleted)
{
    struct meta_stmt *st = meta_prepare(
        m, "DELETE FROM lifecycle_preview_results WHERE repo_id = ?1 AND seq IN "
           "(SELECT seq FROM lifecycle_preview_results WHERE repo_id = ?1 ORDER BY seq LIMIT ?2)");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, repo_id);
    meta_bind_int64(st, 2, limit);
    enum berth_err rc = meta_step_done(m, st, "preview_clear");
    if (rc == BERTH_OK) {
        *deleted = meta_changes(m);
    }
    return rc;
}

enum berth_err meta_preview_add_result(struct meta *m, int64_t repo_id,
                                       const struct meta_preview_result *r)
{
    struct meta_stmt *st = meta_prepare(
        m, "INSERT INTO lifecycle_preview_results (repo_id, seq, digest, pushed_at, tags, "
           "rule_priority, action, storage_class) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, repo_id);
    meta_bind_int64(st, 2, r->seq);
    meta_bind_text(st, 3, r->digest);
    meta_bind_int64(st, 4, r->pushed_at);
    meta_bind_text_or_null(st, 5, r->tags_json);
    meta_bind_int64(st, 6, r->rule_priority);
    meta_bind_int64(st, 7, r->transition ? 1 : 0);
    meta_bind_int64(st, 8, r->is_archived ? META_STORAGE_ARCHIVE : META_STORAGE_STANDARD);
    return meta_step_done(m, st, "preview_add");
}

enum berth_err meta_preview_finish(struct meta *m, int64_t repo_id, enum meta_preview_status status,
                                   int64_t expiring_count, int64_t transitioning_count, int64_t now)
{
    struct meta_stmt *st = meta_prepare(m, "UPDATE lifecycle_previews SET status = ?2, "
                                           "expiring_count = ?3, finished_at = ?4, "
                                           "transitioning_count = ?5 WHERE repo_id = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, repo_id);
    meta_bind_text(st, 2, meta_preview_status_name(status));
    meta_bind_int64(st, 3, expiring_count);
    meta_bind_int64(st, 4, now);
    meta_bind_int64(st, 5, transitioning_count);
    enum berth_err rc = meta_step_done(m, st, "preview_finish");
    if (rc == BERTH_OK && meta_changes(m) == 0) {
        rc = BERTH_ENOTFOUND;
    }
    return rc;
}

struct result_ctx {
    meta_preview_result_cb cb;
    void *arg;
};

static int result_row(struct meta_stmt *st, void *p)
{
    struct result_ctx *c = p;
    struct meta_preview_result r;
    r.seq = meta_col_int64(st, 0);
    if (meta_col_text(st, 1, r.digest, sizeof(r.digest)) != BERTH_OK) {
        return 0;
    }
    r.pushed_at = meta_col_int64(st, 2);
    const char *tags = meta_col_cstr(st, 3);
    r.tags_json = tags;
    r.rule_priority = meta_col_int(st, 4);
    r.transition = meta_col_int64(st, 5) != 0;
    r.is_archived = meta_col_int64(st, 6) == META_STORAGE_ARCHIVE;
    return c->cb(c->arg, &r);
}

enum berth_err meta_preview_results(struct meta *m, int64_t repo_id, int64_t after,
                                    meta_preview_result_cb cb, void *arg)
{
    struct meta_stmt *st = meta_prepare(
        m, "SELECT seq, digest, pushed_at, tags, rule_priority, action, "
           "storage_class FROM lifecycle_preview_results WHERE repo_id = ?1 AND seq > ?2 "
           "ORDER BY seq");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, repo_id);
    meta_bind_int64(st, 2, after);
    struct result_ctx c = {cb, arg};
    return meta_page(m, st, -1, result_row, &c, NULL, "preview_results");
}

struct pending_ctx {
    meta_preview_repo_cb cb;
    void *arg;
};

static int pending_row(struct meta_stmt *st, void *p)
{
    struct pending_ctx *c = p;
    return c->cb(c->arg, meta_col_int64(st, 0));
}

enum berth_err meta_preview_pending(struct meta *m, int64_t after, int64_t limit,
                                    meta_preview_repo_cb cb, void *arg)
{
    struct meta_stmt *st =
        meta_prepare(m, "SELECT repo_id FROM lifecycle_previews WHERE status = 'IN_PROGRESS' "
                        "AND repo_id > ?1 ORDER BY repo_id LIMIT ?2");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, after);
    meta_bind_int64(st, 2, limit);
    struct pending_ctx c = {cb, arg};
    return meta_page(m, st, -1, pending_row, &c, NULL, "preview_pending");
}
