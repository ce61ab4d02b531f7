/* Metadata: repository creation templates. See meta.h. */
#include "meta_int.h"

#include <string.h>

enum berth_err meta_template_create(struct meta *m, const char *prefix, const char *body,
                                    int64_t now, size_t max)
{
    bool own = !meta_in_transaction(m);
    enum berth_err rc = own ? meta_begin(m) : BERTH_OK;
    if (rc != BERTH_OK) {
        return rc;
    }
    rc = meta_check_room(m,
                         meta_prepare(m, "SELECT count(*), EXISTS (SELECT 1 FROM "
                                         "creation_templates WHERE prefix = ?1) "
                                         "FROM creation_templates"),
                         prefix, max, "template_count");
    if (rc != BERTH_OK) {
        goto out;
    }
    struct meta_stmt *st =
        meta_prepare(m, "INSERT INTO creation_templates (prefix, body, created_at, updated_at) "
                        "VALUES (?1, ?2, ?3, ?3)");
    if (st == NULL) {
        rc = BERTH_EDB;
        goto out;
    }
    meta_bind_text(st, 1, prefix);
    meta_bind_text(st, 2, body);
    meta_bind_int64(st, 3, now);
    rc = meta_step_done(m, st, "template_create");
    if (rc == BERTH_OK && own) {
        rc = meta_commit(m);
    }
out:
    if (own) {
        meta_rollback(m);
    }
    return rc;
}

enum berth_err meta_template_update(struct meta *m, const char *prefix, const char *body,
                                    int64_t now)
{
    struct meta_stmt *st = meta_prepare(m, "UPDATE creation_templates SET body = ?2, "
                                           "updated_at = ?3 WHERE prefix = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, prefix);
    meta_bind_text(st, 2, body);
    meta_bind_int64(st, 3, now);
    enum berth_err rc = meta_step_done(m, st, "template_update");
    if (rc == BERTH_OK && meta_changes(m) == 0) {
        rc = BERTH_ENOTFOUND;
    }
    return rc;
}

struct row_ctx {
    meta_template_cb cb;
    void *ctx;
    bool seen;
};

static int template_row(struct meta_stmt *st, void *arg)
{
    struct row_ctx *c = arg;
    struct meta_template t = {
        .prefix = meta_col_cstr(st, 0),
        .body = meta_col_cstr(st, 1),
        .created_at = meta_col_int64(st, 2),
        .updated_at = meta_col_int64(st, 3),
    };
    if (t.prefix == NULL || t.body == NULL) {
        return 1;
    }
    c->seen = true;
    return c->cb(c->ctx, &t);
}

enum berth_err meta_template_get(struct meta *m, const char *prefix, meta_template_cb cb, void *ctx)
{
    struct meta_stmt *st = meta_prepare(m, "SELECT prefix, body, created_at, updated_at FROM "
                                           "creation_templates WHERE prefix = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, prefix);
    struct row_ctx c = {cb, ctx, false};
    enum berth_err rc = meta_page(m, st, 1, template_row, &c, NULL, "template_get");
    if (rc == BERTH_OK && !c.seen) {
        rc = BERTH_ENOTFOUND;
    }
    return rc;
}

enum berth_err meta_template_delete(struct meta *m, const char *prefix)
{
    struct meta_stmt *st = meta_prepare(m, "DELETE FROM creation_templates WHERE prefix = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, prefix);
    enum berth_err rc = meta_step_done(m, st, "template_delete");
    if (rc == BERTH_OK && meta_changes(m) == 0) {
        rc = BERTH_ENOTFOUND;
    }
    return rc;
}

enum berth_err meta_template_list(struct meta *m, const char *after, int64_t limit,
                                  meta_template_cb cb, void *ctx, bool *has_more)
{
    struct meta_stmt *st =
        meta_prepare(m, "SELECT prefix, body, created_at, updated_at FROM creation_templates "
                        "WHERE prefix > ?1 ORDER BY prefix");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, after != NULL ? after : "");
    struct row_ctx c = {cb, ctx, false};
    return meta_page(m, st, limit, template_row, &c, has_more, "template_list");
}
