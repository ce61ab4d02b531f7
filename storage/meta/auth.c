/*
 * Metadata: principals, their access keys and server secrets, and the one
 * query the request path uses to authenticate and authorize a request
 * (meta_auth_lookup). See meta.h; one connection per thread.
 */
#include "meta_int.h"

#include <string.h>

#include "storage/meta/meta_session.h"

/* Bound strings the callers hand in, so a row never holds more than the
 * readers' buffers accept. */
static bool within(const char *s, size_t max)
{
    return s != NULL && s[0] != '\0' && strlen(s) <= max;
}

enum berth_err meta_key_create(struct meta *m, const char *name, const char *policy,
                               const char *permissions, bool require_new, const char *access_key_id,
                               const char *secret, int64_t now)
{
    if (!within(name, META_PRINCIPAL_MAX) || !within(access_key_id, META_ACCESS_KEY_MAX) ||
        !within(secret, META_KEY_SECRET_MAX) || policy == NULL || permissions == NULL) {
        return BERTH_EINVAL;
    }
    enum berth_err rc = meta_begin(m);
    if (rc != BERTH_OK) {
        return rc;
    }
    int64_t principal_id = 0;
    struct meta_stmt *st = meta_prepare(m, "SELECT id FROM principals WHERE name = ?1");
    if (st == NULL) {
        rc = BERTH_EDB;
        goto out;
    }
    meta_bind_text(st, 1, name);
    int step = meta_step(st);
    if (step == META_STEP_ROW) {
        principal_id = meta_col_int64(st, 0);
    } else if (step != META_STEP_DONE) {
        rc = meta_fail(m, "principal_get");
    }
    meta_done(st);
    if (rc != BERTH_OK) {
        goto out;
    }
    if (principal_id != 0 && require_new) {
        rc = BERTH_ECONFLICT;
        goto out;
    }
    if (principal_id == 0) {
        st = meta_prepare(m, meta_sql(m,
                                      "INSERT INTO principals (name, policy, permissions, "
                                      "created_at) VALUES (?1, ?2, ?3, ?4)",
                                      "INSERT INTO principals (name, policy, permissions, "
                                      "created_at) VALUES (?1, ?2, ?3, ?4) RETURNING id"));
        if (st == NULL) {
            rc = BERTH_EDB;
            goto out;
        }
        meta_bind_text(st, 1, name);
        meta_bind_text(st, 2, policy);
        meta_bind_text(st, 3, permissions);
        meta_bind_int64(st, 4, now);
        rc = meta_step_done(m, st, "principal_insert");
        if (rc != BERTH_OK) {
            goto out;
        }
        principal_id = meta_last_id(m);
    }
    st = meta_prepare(m, "INSERT INTO access_keys (access_key_id, principal_id, secret, "
                         "created_at) VALUES (?1, ?2, ?3, ?4)");
    if (st == NULL) {
        rc = BERTH_EDB;
        goto out;
    }
    meta_bind_text(st, 1, access_key_id);
    meta_bind_int64(st, 2, principal_id);
    meta_bind_text(st, 3, secret);
    meta_bind_int64(st, 4, now);
    rc = meta_step_done(m, st, "key_insert");
    if (rc == BERTH_OK) {
        rc = meta_commit(m);
    }
out:
    if (rc != BERTH_OK) {
        meta_rollback(m);
    }
    return rc;
}

enum berth_err meta_key_delete(struct meta *m, const char *access_key_id)
{
    if (access_key_id == NULL) {
        return BERTH_EINVAL;
    }
    enum berth_err rc = meta_begin(m);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct meta_stmt *st = meta_prepare(m, "DELETE FROM access_keys WHERE access_key_id = ?1");
    if (st == NULL) {
        rc = BERTH_EDB;
        goto out;
    }
    meta_bind_text(st, 1, access_key_id);
    rc = meta_step_done(m, st, "key_delete");
    if (rc == BERTH_OK && meta_changes(m) == 0) {
        rc = BERTH_ENOTFOUND;
    }
    if (rc == BERTH_OK) {
        /* its console sessions end with it, on every replica */
        rc = meta_session_delete_key(m, access_key_id, NULL);
    }
    if (rc != BERTH_OK) {
        goto out;
    }
    st = meta_prepare(m, "DELETE FROM principals WHERE NOT EXISTS "
                         "(SELECT 1 FROM access_keys k WHERE k.principal_id = principals.id)");
    if (st == NULL) {
        rc = BERTH_EDB;
        goto out;
    }
    rc = meta_step_done(m, st, "principal_prune");
    if (rc == BERTH_OK) {
        rc = meta_commit(m);
    }
out:
    if (rc != BERTH_OK) {
        meta_rollback(m);
    }
    return rc;
}

enum berth_err meta_key_list(struct meta *m, meta_key_cb cb, void *arg)
{
    struct meta_stmt *st =
        meta_prepare(m, "SELECT k.access_key_id, p.name, p.permissions, "
                        "k.created_at FROM access_keys k JOIN principals p "
                        "ON p.id = k.principal_id ORDER BY p.name, k.created_at, "
                        "k.access_key_id");
    if (st == NULL) {
        return BERTH_EDB;
    }
    enum berth_err err = BERTH_OK;
    int rc;
    while ((rc = meta_step(st)) == META_STEP_ROW) {
        struct meta_key_info k = {
            .access_key_id = meta_col_cstr(st, 0),
            .principal = meta_col_cstr(st, 1),
            .permissions = meta_col_cstr(st, 2),
            .created_at = meta_col_int64(st, 3),
        };
        if (k.access_key_id == NULL || k.principal == NULL || k.permissions == NULL) {
            continue; /* NOT NULL columns: only out of memory gets here */
        }
        if (cb(arg, &k) != 0) {
            break;
        }
    }
    if (rc != META_STEP_ROW && rc != META_STEP_DONE) {
        err = meta_fail(m, "key_list");
    }
    meta_done(st);
    return err;
}

enum berth_err meta_auth_lookup(struct meta *m, const char *access_key_id, const char *repo,
                                meta_auth_cb cb, void *arg)
{
    /* One row whatever matches: the LEFT JOINs hang the key and the
     * repository off a constant row, each found through its unique
     * index. */
    struct meta_stmt *st = meta_prepare(
        m, "SELECT EXISTS (SELECT 1 FROM access_keys), k.secret, p.name, p.policy, "
           "r.id, r.policy_text, s.value FROM (SELECT 1) AS one "
           "LEFT JOIN access_keys k ON k.access_key_id = ?1 "
           "LEFT JOIN principals p ON p.id = k.principal_id "
           "LEFT JOIN repositories r ON r.name = ?2 "
           "LEFT JOIN registry_settings s ON s.name = '" META_REGISTRY_POLICY_SETTING "'");
    if (st == NULL) {
        return BERTH_EDB;
    }
    if (access_key_id != NULL) {
        meta_bind_text(st, 1, access_key_id);
    }
    if (repo != NULL) {
        meta_bind_text(st, 2, repo);
    }
    enum berth_err err = BERTH_OK;
    if (meta_step(st) == META_STEP_ROW) {
        struct meta_auth_row row;
        memset(&row, 0, sizeof(row));
        row.has_keys = meta_col_int(st, 0) != 0;
        if (!meta_col_is_null(st, 1) && !meta_col_is_null(st, 2) && !meta_col_is_null(st, 3)) {
            row.secret = meta_col_cstr(st, 1);
            row.secret_len = (size_t)meta_col_bytes(st, 1);
            row.principal = meta_col_cstr(st, 2);
            row.policy = meta_col_cstr(st, 3);
            row.policy_len = (size_t)meta_col_bytes(st, 3);
            if (row.secret == NULL || row.principal == NULL || row.policy == NULL) {
                err = BERTH_ENOMEM;
            }
        }
        row.repo_found = !meta_col_is_null(st, 4);
        if (row.repo_found && !meta_col_is_null(st, 5)) {
            row.repo_policy = meta_col_cstr(st, 5);
            row.repo_policy_len = (size_t)meta_col_bytes(st, 5);
            if (row.repo_policy == NULL) {
                err = BERTH_ENOMEM;
            }
        }
        if (!meta_col_is_null(st, 6)) {
            row.registry_policy = meta_col_cstr(st, 6);
            row.registry_policy_len = (size_t)meta_col_bytes(st, 6);
            if (row.registry_policy == NULL) {
                err = BERTH_ENOMEM;
            }
        }
        if (err == BERTH_OK) {
            cb(arg, &row);
        }
    } else {
        err = meta_fail(m, "auth_lookup");
    }
    meta_done(st);
    return err;
}

struct repo_name_ctx {
    meta_name_cb cb;
    void *arg;
};

static int repo_name_row(struct meta_stmt *st, void *ctx)
{
    struct repo_name_ctx *c = ctx;
    const char *name = meta_col_cstr(st, 0);
    return name != NULL ? c->cb(c->arg, name) : 0;
}

enum berth_err meta_blob_repos(struct meta *m, const char *digest, int64_t limit, meta_name_cb cb,
                               void *arg)
{
    struct meta_stmt *st = meta_prepare(m, "SELECT r.name FROM blobs b "
                                           "JOIN repo_blobs rb ON rb.blob_id = b.id "
                                           "JOIN repositories r ON r.id = rb.repo_id "
                                           "WHERE b.digest = ?1 ORDER BY r.name LIMIT ?2");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, digest);
    meta_bind_int64(st, 2, limit);
    struct repo_name_ctx c = {cb, arg};
    return meta_page(m, st, -1, repo_name_row, &c, NULL, "blob_repos");
}

enum berth_err meta_blob_in_image(struct meta *m, int64_t repo_id, const char *digest, bool *out)
{
    struct meta_stmt *st =
        meta_prepare(m, "SELECT EXISTS (SELECT 1 FROM manifest_refs r "
                        "JOIN manifests mf ON mf.id = r.manifest_id "
                        "WHERE r.digest = ?1 AND r.kind = 0 AND mf.repo_id = ?2)");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, digest);
    meta_bind_int64(st, 2, repo_id);
    enum berth_err err = BERTH_OK;
    if (meta_step(st) == META_STEP_ROW) {
        *out = meta_col_int(st, 0) != 0;
    } else {
        err = meta_fail(m, "blob_in_image");
    }
    meta_done(st);
    return err;
}

enum berth_err meta_server_secret_get(struct meta *m, const char *name, void *buf, size_t cap,
                                      size_t *len)
{
    struct meta_stmt *st = meta_prepare(m, "SELECT value FROM server_secrets WHERE name = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, name);
    enum berth_err err = BERTH_OK;
    int rc = meta_step(st);
    if (rc == META_STEP_ROW) {
        const void *v = meta_col_blob(st, 0);
        size_t n = (size_t)meta_col_bytes(st, 0);
        if (n > cap) {
            err = BERTH_ETOOBIG;
        } else if (v == NULL && n > 0) {
            err = BERTH_ENOMEM;
        } else {
            if (n > 0) {
                memcpy(buf, v, n);
            }
            *len = n;
        }
    } else if (rc == META_STEP_DONE) {
        err = BERTH_ENOTFOUND;
    } else {
        err = meta_fail(m, "secret_get");
    }
    meta_done(st);
    return err;
}

enum berth_err meta_server_secret_add(struct meta *m, const char *name, const void *value,
                                      size_t len, int64_t now)
{
    if (len == 0 || len > META_SERVER_SECRET_MAX) {
        return BERTH_EINVAL;
    }
    struct meta_stmt *st =
        meta_prepare(m, meta_sql(m,
                                 "INSERT OR IGNORE INTO server_secrets (name, value, "
                                 "created_at) VALUES (?1, ?2, ?3)",
                                 "INSERT INTO server_secrets (name, value, created_at) "
                                 "VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING"));
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, name);
    meta_bind_blob(st, 2, value, len);
    meta_bind_int64(st, 3, now);
    return meta_step_done(m, st, "secret_add");
}
