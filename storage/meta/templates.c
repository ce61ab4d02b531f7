/* Metadata: repository creation templates. See meta.h. */
#include "meta_int.h"

static const struct meta_prefixed_sql templates = {
    .count = "SELECT count(*), EXISTS (SELECT 1 FROM creation_templates WHERE prefix = ?1) "
             "FROM creation_templates",
    .insert = "INSERT INTO creation_templates (prefix, body, created_at, updated_at) "
              "VALUES (?1, ?2, ?3, ?3)",
    .update = "UPDATE creation_templates SET body = ?2, updated_at = ?3 WHERE prefix = ?1",
    .get = "SELECT prefix, body, created_at, updated_at FROM creation_templates "
           "WHERE prefix = ?1",
    .remove = "DELETE FROM creation_templates WHERE prefix = ?1",
    .list = "SELECT prefix, body, created_at, updated_at FROM creation_templates "
            "WHERE prefix > ?1 ORDER BY prefix",
    .op_count = "template_count",
    .op_create = "template_create",
    .op_update = "template_update",
    .op_get = "template_get",
    .op_delete = "template_delete",
    .op_list = "template_list",
};

enum berth_err meta_template_create(struct meta *m, const char *prefix, const char *body,
                                    int64_t now, size_t max)
{
    return meta_prefixed_create(m, &templates, prefix, body, now, max);
}

enum berth_err meta_template_update(struct meta *m, const char *prefix, const char *body,
                                    int64_t now)
{
    return meta_prefixed_update(m, &templates, prefix, body, now);
}

enum berth_err meta_template_get(struct meta *m, const char *prefix, meta_prefix_doc_cb cb,
                                 void *ctx)
{
    return meta_prefixed_get(m, &templates, prefix, cb, ctx);
}

enum berth_err meta_template_delete(struct meta *m, const char *prefix)
{
    return meta_prefixed_delete(m, &templates, prefix);
}

enum berth_err meta_template_list(struct meta *m, const char *after, int64_t limit,
                                  meta_prefix_doc_cb cb, void *ctx, bool *has_more)
{
    return meta_prefixed_list(m, &templates, after, limit, cb, ctx, has_more);
}
