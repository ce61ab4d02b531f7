/* Metadata: pull-time update exclusions (the principals whose pulls leave
 * an image's last pull time as it is). See meta.h. */
#include "meta_int.h"

#include <string.h>

enum berth_err meta_pull_exclusion_add(struct meta *m, const char *principal_arn, int64_t now,
                                       size_t max)
{
    enum berth_err rc = meta_begin(m);
    if (rc != BERTH_OK) {
        return rc;
    }
    rc = meta_check_room(m,
                         meta_prepare(m, "SELECT count(*), EXISTS (SELECT 1 FROM "
                                         "pull_time_exclusions WHERE principal_arn = ?1) "
                                         "FROM pull_time_exclusions"),
                         principal_arn, max, "pull_exclusion_count");
    if (rc != BERTH_OK) {
        goto out;
    }
    struct meta_stmt *st =
        meta_prepare(m, "INSERT INTO pull_time_exclusions (principal_arn, created_at) "
                        "VALUES (?1, ?2)");
    if (st == NULL) {
        rc = BERTH_EDB;
        goto out;
    }
    meta_bind_text(st, 1, principal_arn);
    meta_bind_int64(st, 2, now);
    rc = meta_step_done(m, st, "pull_exclusion_add");
    if (rc == BERTH_OK) {
        rc = meta_commit(m);
    }
out:
    meta_rollback(m);
    return rc;
}

enum berth_err meta_pull_exclusion_remove(struct meta *m, const char *principal_arn)
{
    struct meta_stmt *st =
        meta_prepare(m, "DELETE FROM pull_time_exclusions WHERE principal_arn = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, principal_arn);
    enum berth_err rc = meta_step_done(m, st, "pull_exclusion_remove");
    if (rc == BERTH_OK && meta_changes(m) == 0) {
        rc = BERTH_ENOTFOUND;
    }
    return rc;
}

enum berth_err meta_pull_exclusion_has(struct meta *m, const char *principal_arn, bool *out)
{
    struct meta_stmt *st =
        meta_prepare(m, "SELECT 1 FROM pull_time_exclusions WHERE principal_arn = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, principal_arn);
    enum meta_step step = meta_step(st);
    enum berth_err rc = BERTH_OK;
    if (step == META_STEP_ERROR) {
        rc = meta_fail(m, "pull_exclusion_has");
    } else {
        *out = step == META_STEP_ROW;
    }
    meta_done(st);
    return rc;
}

struct list_ctx {
    meta_exclusion_cb cb;
    void *ctx;
};

static int list_row(struct meta_stmt *st, void *arg)
{
    struct list_ctx *c = arg;
    const char *arn = meta_col_cstr(st, 0);
    return arn != NULL ? c->cb(c->ctx, arn, meta_col_int64(st, 1)) : 1;
}

enum berth_err meta_pull_exclusion_list(struct meta *m, const char *after, int64_t limit,
                                        meta_exclusion_cb cb, void *ctx, bool *has_more)
{
    struct meta_stmt *st = meta_prepare(m, "SELECT principal_arn, created_at FROM "
                                           "pull_time_exclusions WHERE principal_arn > ?1 "
                                           "ORDER BY principal_arn");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, after != NULL ? after : "");
    struct list_ctx c = {cb, ctx};
    return meta_page(m, st, limit, list_row, &c, has_more, "pull_exclusion_list");
}
