/* Metadata: the repositories table. See meta.h. */
#include "meta_int.h"

#include <stdlib.h>
#include <string.h>

static const char *const mutability_names[] = {"MUTABLE", "IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION",
                                               "MUTABLE_WITH_EXCLUSION"};

const char *meta_mutability_name(enum meta_mutability m)
{
    if ((size_t)m < sizeof(mutability_names) / sizeof(mutability_names[0])) {
        return mutability_names[m];
    }
    return "MUTABLE";
}

int meta_mutability_parse(const char *s)
{
    for (size_t i = 0; i < sizeof(mutability_names) / sizeof(mutability_names[0]); i++) {
        if (strcmp(s, mutability_names[i]) == 0) {
            return (int)i;
        }
    }
    return -1;
}

#define REPO_COLS                                                                                  \
    "id, name, created_at, tag_mutability, scan_on_push, lifecycle_evaluated_at, lifecycle_set_at"

static void read_repo(struct meta_stmt *st, struct meta_repo *out)
{
    out->id = meta_col_int64(st, 0);
    meta_col_text(st, 1, out->name, sizeof(out->name));
    out->created_at = meta_col_int64(st, 2);
    const char *mu = meta_col_cstr(st, 3);
    int parsed = mu ? meta_mutability_parse(mu) : 0;
    out->mutability = parsed < 0 ? META_MUTABLE : (enum meta_mutability)parsed;
    out->scan_on_push = meta_col_int(st, 4) != 0;
    out->lifecycle_evaluated_at = meta_col_int64(st, 5);
    out->lifecycle_set_at = meta_col_int64(st, 6);
}

static enum berth_err fetch_one(struct meta *m, struct meta_stmt *st, struct meta_repo *out)
{
    int rc = meta_step(st);
    enum berth_err err = BERTH_OK;
    if (rc == META_STEP_ROW) {
        read_repo(st, out);
    } else if (rc == META_STEP_DONE) {
        err = BERTH_ENOTFOUND;
    } else {
        err = meta_fail(m, "repo_get");
    }
    meta_done(st);
    return err;
}

enum berth_err meta_repo_get(struct meta *m, const char *name, struct meta_repo *out)
{
    struct meta_stmt *st =
        meta_prepare(m, "SELECT " REPO_COLS " FROM repositories WHERE name = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, name);
    return fetch_one(m, st, out);
}

enum berth_err meta_repo_get_by_id(struct meta *m, int64_t id, struct meta_repo *out)
{
    struct meta_stmt *st = meta_prepare(m, "SELECT " REPO_COLS " FROM repositories WHERE id = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, id);
    return fetch_one(m, st, out);
}

/* The insert of meta_repo_create; lazily: without waiting for a log sync
 * of its own (outside a transaction, on a driver that can). */
static enum berth_err repo_create(struct meta *m, const char *name, int64_t now, bool lazily,
                                  struct meta_repo *out)
{
    struct meta_stmt *st =
        meta_prepare(m, meta_sql(m, "INSERT INTO repositories (name, created_at) VALUES (?1, ?2)",
                                 "INSERT INTO repositories (name, created_at) VALUES (?1, ?2) "
                                 "RETURNING id"));
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, name);
    meta_bind_int64(st, 2, now);
    if (lazily && m->drv->write_lazily != NULL && !meta_in_transaction(m)) {
        m->drv->write_lazily(m->conn); /* for this statement only */
    }
    enum berth_err rc = meta_step_done(m, st, "repo_create");
    if (rc != BERTH_OK) {
        return rc;
    }
    return meta_repo_get_by_id(m, meta_last_id(m), out);
}

enum berth_err meta_repo_create(struct meta *m, const char *name, int64_t now,
                                struct meta_repo *out)
{
    return repo_create(m, name, now, false, out);
}

enum berth_err meta_repo_ensure(struct meta *m, const char *name, int64_t now,
                                struct meta_repo *out)
{
    enum berth_err rc = meta_repo_get(m, name, out);
    if (rc != BERTH_ENOTFOUND) {
        return rc;
    }
    /* A repository made on first push need not survive power loss by
     * itself: the push's first acknowledged write (a blob's publication)
     * commits after it, and that commit's log sync makes it durable too.
     * One log sync fewer per push to a new repository. */
    rc = repo_create(m, name, now, true, out);
    if (rc == BERTH_EEXIST) {
        /* created by someone else between the two statements */
        rc = meta_repo_get(m, name, out);
    }
    return rc;
}

enum berth_err meta_repo_delete(struct meta *m, int64_t id)
{
    struct meta_stmt *st = meta_prepare(m, "DELETE FROM repositories WHERE id = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, id);
    enum berth_err rc = meta_step_done(m, st, "repo_delete");
    if (rc == BERTH_OK && meta_changes(m) == 0) {
        rc = BERTH_ENOTFOUND;
    }
    return rc;
}

static enum berth_err update_int(struct meta *m, const char *sql, int64_t id, int64_t value)
{
    struct meta_stmt *st = meta_prepare(m, sql);
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, value);
    meta_bind_int64(st, 2, id);
    enum berth_err rc = meta_step_done(m, st, "repo_update");
    if (rc == BERTH_OK && meta_changes(m) == 0) {
        rc = BERTH_ENOTFOUND;
    }
    return rc;
}

enum berth_err meta_repo_set_mutability(struct meta *m, int64_t id, enum meta_mutability mu)
{
    struct meta_stmt *st =
        meta_prepare(m, "UPDATE repositories SET tag_mutability = ?1 WHERE id = ?2");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, meta_mutability_name(mu));
    meta_bind_int64(st, 2, id);
    enum berth_err rc = meta_step_done(m, st, "repo_update");
    if (rc == BERTH_OK && meta_changes(m) == 0) {
        rc = BERTH_ENOTFOUND;
    }
    return rc;
}

enum berth_err meta_repo_set_scan_on_push(struct meta *m, int64_t id, bool on)
{
    return update_int(m, "UPDATE repositories SET scan_on_push = ?1 WHERE id = ?2", id, on);
}

enum berth_err meta_repo_set_lifecycle_evaluated(struct meta *m, int64_t id, int64_t when)
{
    return update_int(m, "UPDATE repositories SET lifecycle_evaluated_at = ?1 WHERE id = ?2", id,
                      when);
}

enum berth_err meta_repo_set_lifecycle_set_at(struct meta *m, int64_t id, int64_t when)
{
    return update_int(m, "UPDATE repositories SET lifecycle_set_at = ?1 WHERE id = ?2", id, when);
}

/* One SELECT and one UPDATE per text column: SQLite cannot bind a column
 * name, and the statements stay static strings for the cache. */
static const char *const text_get_sql[] = {
    [META_REPO_MUTABILITY_FILTERS] = "SELECT mutability_filters FROM repositories WHERE id = ?1",
    [META_REPO_ENCRYPTION] = "SELECT encryption FROM repositories WHERE id = ?1",
    [META_REPO_POLICY] = "SELECT policy_text FROM repositories WHERE id = ?1",
    [META_REPO_LIFECYCLE] = "SELECT lifecycle_text FROM repositories WHERE id = ?1",
    [META_REPO_RESOURCE_TAGS] = "SELECT resource_tags FROM repositories WHERE id = ?1",
};
static const char *const text_set_sql[] = {
    [META_REPO_MUTABILITY_FILTERS] =
        "UPDATE repositories SET mutability_filters = ?1 WHERE id = ?2",
    [META_REPO_ENCRYPTION] = "UPDATE repositories SET encryption = ?1 WHERE id = ?2",
    [META_REPO_POLICY] = "UPDATE repositories SET policy_text = ?1 WHERE id = ?2",
    [META_REPO_LIFECYCLE] = "UPDATE repositories SET lifecycle_text = ?1 WHERE id = ?2",
    [META_REPO_RESOURCE_TAGS] = "UPDATE repositories SET resource_tags = ?1 WHERE id = ?2",
};

enum berth_err meta_repo_get_text(struct meta *m, int64_t id, enum meta_repo_text which, char **out)
{
    if ((size_t)which >= sizeof(text_get_sql) / sizeof(text_get_sql[0])) {
        return BERTH_EINVAL;
    }
    struct meta_stmt *st = meta_prepare(m, text_get_sql[which]);
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, id);
    return meta_get_text(m, st, out);
}

enum berth_err meta_repo_set_text(struct meta *m, int64_t id, enum meta_repo_text which,
                                  const char *value)
{
    if ((size_t)which >= sizeof(text_set_sql) / sizeof(text_set_sql[0])) {
        return BERTH_EINVAL;
    }
    struct meta_stmt *st = meta_prepare(m, text_set_sql[which]);
    if (st == NULL) {
        return BERTH_EDB;
    }
    if (value == NULL) {
        meta_bind_null(st, 1);
    } else {
        meta_bind_text(st, 1, value);
    }
    meta_bind_int64(st, 2, id);
    enum berth_err rc = meta_step_done(m, st, "repo_set_text");
    if (rc == BERTH_OK && meta_changes(m) == 0) {
        rc = BERTH_ENOTFOUND;
    }
    return rc;
}

struct repo_ctx {
    meta_repo_cb cb;
    void *arg;
};

static int repo_row(struct meta_stmt *st, void *ctx)
{
    struct repo_ctx *c = ctx;
    struct meta_repo repo;
    read_repo(st, &repo);
    return c->cb(c->arg, &repo);
}

enum berth_err meta_repo_list(struct meta *m, const char *after, int64_t limit, meta_repo_cb cb,
                              void *arg, bool *has_more)
{
    struct meta_stmt *st = meta_prepare(m, "SELECT " REPO_COLS " FROM repositories WHERE name > ?1 "
                                           "ORDER BY name LIMIT ?2");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, after ? after : "");
    meta_bind_int64(st, 2, limit + 1);
    struct repo_ctx c = {cb, arg};
    return meta_page(m, st, limit, repo_row, &c, has_more, "repo_list");
}

enum berth_err meta_repo_count(struct meta *m, int64_t *out)
{
    struct meta_stmt *st = meta_prepare(m, "SELECT count(*) FROM repositories");
    if (st == NULL) {
        return BERTH_EDB;
    }
    enum berth_err err = BERTH_OK;
    if (meta_step(st) == META_STEP_ROW) {
        *out = meta_col_int64(st, 0);
    } else {
        err = meta_fail(m, "repo_count");
    }
    meta_done(st);
    return err;
}

enum berth_err meta_repo_image_count(struct meta *m, int64_t repo_id, int64_t *out)
{
    struct meta_stmt *st = meta_prepare(m, "SELECT count(*) FROM manifests WHERE repo_id = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, repo_id);
    enum berth_err err = BERTH_OK;
    if (meta_step(st) == META_STEP_ROW) {
        *out = meta_col_int64(st, 0);
    } else {
        err = meta_fail(m, "repo_image_count");
    }
    meta_done(st);
    return err;
}

/* The summaries' query: one statement per order (the statement cache is
 * keyed by the text's address). The figures come from the indexes that
 * start with repo_id on manifests, tags and repo_blobs; NULLs become 0 so
 * both drivers order them alike. */
#define SUMMARY_SQL(order)                                                                         \
    "SELECT r.id, r.name, r.created_at, r.tag_mutability, r.scan_on_push, "                        \
    "r.lifecycle_evaluated_at, r.lifecycle_set_at, "                                               \
    "CASE WHEN r.policy_text IS NULL THEN 0 ELSE 1 END, "                                          \
    "(SELECT count(*) FROM manifests m WHERE m.repo_id = r.id) AS n_images, "                      \
    "(SELECT count(*) FROM tags t WHERE t.repo_id = r.id) AS n_tags, "                             \
    "(SELECT coalesce(sum(b.size), 0) FROM repo_blobs rb JOIN blobs b ON b.id = rb.blob_id "       \
    "WHERE rb.repo_id = r.id) AS n_bytes, "                                                        \
    "(SELECT coalesce(max(m.pushed_at), 0) FROM manifests m WHERE m.repo_id = r.id) AS t_pushed, " \
    "(SELECT coalesce(max(m.last_pulled_at), 0) FROM manifests m WHERE m.repo_id = r.id) "         \
    "AS t_pulled FROM repositories r WHERE r.name LIKE ?1 ESCAPE '!' ORDER BY " order

#define SUMMARY_BY(col)                                                                            \
    {                                                                                              \
        SUMMARY_SQL(col " ASC, r.name ASC"), SUMMARY_SQL(col " DESC, r.name ASC")                  \
    }

static const char *const summary_sql[META_REPO_SORT_COUNT][2] = {
    [META_REPO_SORT_NAME] = {SUMMARY_SQL("r.name ASC"), SUMMARY_SQL("r.name DESC")},
    [META_REPO_SORT_IMAGES] = SUMMARY_BY("n_images"),
    [META_REPO_SORT_TAGS] = SUMMARY_BY("n_tags"),
    [META_REPO_SORT_SIZE] = SUMMARY_BY("n_bytes"),
    [META_REPO_SORT_PUSHED] = SUMMARY_BY("t_pushed"),
    [META_REPO_SORT_PULLED] = SUMMARY_BY("t_pulled"),
};

struct summary_ctx {
    meta_repo_summary_cb cb;
    void *arg;
};

static int summary_row(struct meta_stmt *st, void *ctx)
{
    struct summary_ctx *c = ctx;
    struct meta_repo_summary s;
    memset(&s, 0, sizeof(s));
    read_repo(st, &s.repo);
    s.has_policy = meta_col_int(st, 7) != 0;
    s.images = meta_col_int64(st, 8);
    s.tags = meta_col_int64(st, 9);
    s.size = meta_col_int64(st, 10);
    s.pushed_at = meta_col_int64(st, 11);
    s.pulled_at = meta_col_int64(st, 12);
    return c->cb(c->arg, &s);
}

enum berth_err meta_repo_summaries(struct meta *m, const char *contains, enum meta_repo_sort sort,
                                   bool desc, meta_repo_summary_cb cb, void *arg)
{
    if ((unsigned)sort >= META_REPO_SORT_COUNT) {
        return BERTH_EINVAL;
    }
    /* %contains% with LIKE's own characters escaped by '!' */
    size_t len = contains != NULL ? strlen(contains) : 0;
    char *pattern = malloc(2 * len + 3);
    if (pattern == NULL) {
        return BERTH_ENOMEM;
    }
    size_t o = 0;
    pattern[o++] = '%';
    for (size_t i = 0; i < len; i++) {
        if (contains[i] == '%' || contains[i] == '_' || contains[i] == '!') {
            pattern[o++] = '!';
        }
        pattern[o++] = contains[i];
    }
    pattern[o++] = '%';
    pattern[o] = '\0';
    struct meta_stmt *st = meta_prepare(m, summary_sql[sort][desc ? 1 : 0]);
    if (st == NULL) {
        free(pattern);
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, pattern);
    struct summary_ctx c = {cb, arg};
    enum berth_err rc = meta_page(m, st, -1, summary_row, &c, NULL, "repo_summaries");
    free(pattern);
    return rc;
}
