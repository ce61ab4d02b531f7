/* Metadata: pull-through cache rules, upstream secrets (sealed) and the
 * times cached tags were checked upstream. See meta.h. */
#include "meta_int.h"

#include <stdlib.h>
#include <string.h>

static const struct meta_prefixed_sql rules = {
    .count = "SELECT count(*), EXISTS (SELECT 1 FROM ptc_rules WHERE prefix = ?1) FROM ptc_rules",
    .insert = "INSERT INTO ptc_rules (prefix, body, created_at, updated_at) "
              "VALUES (?1, ?2, ?3, ?3)",
    .update = "UPDATE ptc_rules SET body = ?2, updated_at = ?3 WHERE prefix = ?1",
    .get = "SELECT prefix, body, created_at, updated_at FROM ptc_rules WHERE prefix = ?1",
    .remove = "DELETE FROM ptc_rules WHERE prefix = ?1",
    .list = "SELECT prefix, body, created_at, updated_at FROM ptc_rules "
            "WHERE prefix > ?1 ORDER BY prefix",
    .op_count = "ptc_rule_count",
    .op_create = "ptc_rule_create",
    .op_update = "ptc_rule_update",
    .op_get = "ptc_rule_get",
    .op_delete = "ptc_rule_delete",
    .op_list = "ptc_rule_list",
};

enum berth_err meta_ptc_rule_create(struct meta *m, const char *prefix, const char *body,
                                    int64_t now, size_t max)
{
    return meta_prefixed_create(m, &rules, prefix, body, now, max);
}

enum berth_err meta_ptc_rule_update(struct meta *m, const char *prefix, const char *body,
                                    int64_t now)
{
    return meta_prefixed_update(m, &rules, prefix, body, now);
}

enum berth_err meta_ptc_rule_get(struct meta *m, const char *prefix, meta_prefix_doc_cb cb,
                                 void *ctx)
{
    return meta_prefixed_get(m, &rules, prefix, cb, ctx);
}

enum berth_err meta_ptc_rule_delete(struct meta *m, const char *prefix)
{
    return meta_prefixed_delete(m, &rules, prefix);
}

enum berth_err meta_ptc_rule_list(struct meta *m, const char *after, int64_t limit,
                                  meta_prefix_doc_cb cb, void *ctx, bool *has_more)
{
    return meta_prefixed_list(m, &rules, after, limit, cb, ctx, has_more);
}

enum berth_err meta_upstream_secret_put(struct meta *m, const char *name, const char *sealed,
                                        int64_t now)
{
    struct meta_stmt *st = meta_prepare(
        m, "INSERT INTO upstream_secrets (name, sealed, created_at, updated_at) "
           "VALUES (?1, ?2, ?3, ?3) ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed, "
           "updated_at = excluded.updated_at");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, name);
    meta_bind_text(st, 2, sealed);
    meta_bind_int64(st, 3, now);
    return meta_step_done(m, st, "upstream_secret_put");
}

enum berth_err meta_upstream_secret_get(struct meta *m, const char *name, char **sealed)
{
    struct meta_stmt *st = meta_prepare(m, "SELECT sealed FROM upstream_secrets WHERE name = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, name);
    char *text = NULL;
    enum berth_err rc = meta_get_text(m, st, &text);
    if (rc == BERTH_OK && text == NULL) {
        rc = BERTH_ENOTFOUND;
    }
    if (rc == BERTH_OK) {
        *sealed = text;
    }
    return rc;
}

enum berth_err meta_upstream_secret_delete(struct meta *m, const char *name)
{
    struct meta_stmt *st = meta_prepare(m, "DELETE FROM upstream_secrets WHERE name = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, name);
    enum berth_err rc = meta_step_done(m, st, "upstream_secret_delete");
    if (rc == BERTH_OK && meta_changes(m) == 0) {
        rc = BERTH_ENOTFOUND;
    }
    return rc;
}

struct secret_ctx {
    meta_secret_cb cb;
    void *ctx;
};

static int secret_row(struct meta_stmt *st, void *arg)
{
    struct secret_ctx *c = arg;
    const char *name = meta_col_cstr(st, 0);
    if (name == NULL) {
        return 1;
    }
    return c->cb(c->ctx, name, meta_col_int64(st, 1), meta_col_int64(st, 2));
}

enum berth_err meta_upstream_secret_list(struct meta *m, meta_secret_cb cb, void *ctx)
{
    struct meta_stmt *st =
        meta_prepare(m, "SELECT name, created_at, updated_at FROM upstream_secrets ORDER BY name");
    if (st == NULL) {
        return BERTH_EDB;
    }
    struct secret_ctx c = {cb, ctx};
    return meta_page(m, st, -1, secret_row, &c, NULL, "upstream_secret_list");
}

enum berth_err meta_ptc_tag_checked(struct meta *m, int64_t repo_id, const char *tag, int64_t *at)
{
    struct meta_stmt *st =
        meta_prepare(m, "SELECT checked_at FROM ptc_tag_checks WHERE repo_id = ?1 AND tag = ?2");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, repo_id);
    meta_bind_text(st, 2, tag);
    enum meta_step r = meta_step(st);
    enum berth_err rc = BERTH_OK;
    if (r == META_STEP_ROW) {
        *at = meta_col_int64(st, 0);
    } else if (r == META_STEP_DONE) {
        rc = BERTH_ENOTFOUND;
    } else {
        rc = meta_fail(m, "ptc_tag_checked");
    }
    meta_done(st);
    return rc;
}

enum berth_err meta_ptc_tag_check_set(struct meta *m, int64_t repo_id, const char *tag, int64_t now)
{
    struct meta_stmt *st = meta_prepare(
        m, "INSERT INTO ptc_tag_checks (repo_id, tag, checked_at) VALUES (?1, ?2, ?3) "
           "ON CONFLICT (repo_id, tag) DO UPDATE SET checked_at = excluded.checked_at");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, repo_id);
    meta_bind_text(st, 2, tag);
    meta_bind_int64(st, 3, now);
    return meta_step_done(m, st, "ptc_tag_check_set");
}
