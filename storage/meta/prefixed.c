/* Metadata: tables of JSON documents keyed by a prefix (creation
 * templates, pull-through cache rules). See meta_int.h. */
#include "meta_int.h"

enum berth_err meta_prefixed_create(struct meta *m, const struct meta_prefixed_sql *t,
                                    const char *prefix, const char *body, int64_t now, size_t max)
{
    bool own = !meta_in_transaction(m);
    enum berth_err rc = own ? meta_begin(m) : BERTH_OK;
    if (rc != BERTH_OK) {
        return rc;
    }
    rc = meta_check_room(m, meta_prepare(m, t->count), prefix, max, t->op_count);
    if (rc != BERTH_OK) {
        goto out;
    }
    struct meta_stmt *st = meta_prepare(m, t->insert);
    if (st == NULL) {
        rc = BERTH_EDB;
        goto out;
    }
    meta_bind_text(st, 1, prefix);
    meta_bind_text(st, 2, body);
    meta_bind_int64(st, 3, now);
    rc = meta_step_done(m, st, t->op_create);
    if (rc == BERTH_OK && own) {
        rc = meta_commit(m);
    }
out:
    if (own) {
        meta_rollback(m);
    }
    return rc;
}

enum berth_err meta_prefixed_update(struct meta *m, const struct meta_prefixed_sql *t,
                                    const char *prefix, const char *body, int64_t now)
{
    struct meta_stmt *st = meta_prepare(m, t->update);
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, prefix);
    meta_bind_text(st, 2, body);
    meta_bind_int64(st, 3, now);
    enum berth_err rc = meta_step_done(m, st, t->op_update);
    if (rc == BERTH_OK && meta_changes(m) == 0) {
        rc = BERTH_ENOTFOUND;
    }
    return rc;
}

struct row_ctx {
    meta_prefix_doc_cb cb;
    void *ctx;
    bool seen;
};

static int doc_row(struct meta_stmt *st, void *arg)
{
    struct row_ctx *c = arg;
    struct meta_prefix_doc d = {
        .prefix = meta_col_cstr(st, 0),
        .body = meta_col_cstr(st, 1),
        .created_at = meta_col_int64(st, 2),
        .updated_at = meta_col_int64(st, 3),
    };
    if (d.prefix == NULL || d.body == NULL) {
        return 1;
    }
    c->seen = true;
    return c->cb(c->ctx, &d);
}

enum berth_err meta_prefixed_get(struct meta *m, const struct meta_prefixed_sql *t,
                                 const char *prefix, meta_prefix_doc_cb cb, void *ctx)
{
    struct meta_stmt *st = meta_prepare(m, t->get);
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, prefix);
    struct row_ctx c = {cb, ctx, false};
    enum berth_err rc = meta_page(m, st, 1, doc_row, &c, NULL, t->op_get);
    if (rc == BERTH_OK && !c.seen) {
        rc = BERTH_ENOTFOUND;
    }
    return rc;
}

enum berth_err meta_prefixed_delete(struct meta *m, const struct meta_prefixed_sql *t,
                                    const char *prefix)
{
    struct meta_stmt *st = meta_prepare(m, t->remove);
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, prefix);
    enum berth_err rc = meta_step_done(m, st, t->op_delete);
    if (rc == BERTH_OK && meta_changes(m) == 0) {
        rc = BERTH_ENOTFOUND;
    }
    return rc;
}

enum berth_err meta_prefixed_list(struct meta *m, const struct meta_prefixed_sql *t,
                                  const char *after, int64_t limit, meta_prefix_doc_cb cb,
                                  void *ctx, bool *has_more)
{
    struct meta_stmt *st = meta_prepare(m, t->list);
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, after != NULL ? after : "");
    struct row_ctx c = {cb, ctx, false};
    return meta_page(m, st, limit, doc_row, &c, has_more, t->op_list);
}
