/* Metadata: upload sessions, and the totals metrics report. See meta.h. */
#include "meta_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/fault.h"
#include "common/log.h"

enum berth_err meta_upload_insert(struct meta *m, const struct meta_upload *u)
{
    struct meta_stmt *st = meta_prepare(
        m, "INSERT INTO uploads (uuid, repo_id, algorithm, created_at) VALUES (?1, ?2, ?3, ?4)");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, u->uuid);
    meta_bind_int64(st, 2, u->repo_id);
    meta_bind_text(st, 3, digest_alg_name(u->alg));
    meta_bind_int64(st, 4, u->created_at);
    if (m->drv->write_lazily != NULL && !meta_in_transaction(m)) {
        m->drv->write_lazily(m->conn); /* for this statement only */
    }
    return meta_step_done(m, st, "upload_insert");
}

static void read_upload(struct meta_stmt *st, struct meta_upload *out)
{
    meta_col_text(st, 0, out->uuid, sizeof(out->uuid));
    out->repo_id = meta_col_int64(st, 1);
    const char *alg = meta_col_cstr(st, 2);
    out->alg = alg ? digest_alg_from_name(alg) : DIGEST_NONE;
    out->created_at = meta_col_int64(st, 3);
    out->size = meta_col_int64(st, 4);
    out->updated_at = meta_col_int64(st, 5);
    out->gen = 0;
}

enum berth_err meta_upload_get(struct meta *m, const char *uuid, struct meta_upload *out)
{
    struct meta_stmt *st = meta_prepare(
        m, "SELECT uuid, repo_id, algorithm, created_at, size, updated_at, gen FROM uploads "
           "WHERE uuid = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, uuid);
    int rc = meta_step(st);
    enum berth_err err = BERTH_OK;
    if (rc == META_STEP_ROW) {
        read_upload(st, out);
        out->gen = meta_col_int64(st, 6);
    } else if (rc == META_STEP_DONE) {
        err = BERTH_ENOTFOUND;
    } else {
        err = meta_fail(m, "upload_get");
    }
    meta_done(st);
    return err;
}

enum berth_err meta_upload_delete(struct meta *m, const char *uuid)
{
    struct meta_stmt *st = meta_prepare(m, "DELETE FROM uploads WHERE uuid = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, uuid);
    enum berth_err rc = meta_step_done(m, st, "upload_delete");
    if (rc == BERTH_OK && meta_changes(m) == 0) {
        rc = BERTH_ENOTFOUND;
    }
    return rc;
}

static char *dup_col(struct meta_stmt *st, int i, enum berth_err *rc)
{
    const char *v = meta_col_cstr(st, i);
    if (v == NULL || *rc != BERTH_OK) {
        return NULL;
    }
    char *copy = strdup(v);
    if (copy == NULL) {
        *rc = BERTH_ENOMEM;
    }
    return copy;
}

enum berth_err meta_upload_state_get(struct meta *m, const char *uuid, struct meta_upload *row,
                                     struct meta_upload_state *out)
{
    memset(out, 0, sizeof(*out));
    struct meta_stmt *st =
        meta_prepare(m, "SELECT uuid, repo_id, algorithm, created_at, size, updated_at, gen, mpu,"
                        " hash_state, stage_state FROM uploads WHERE uuid = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, uuid);
    int step = meta_step(st);
    enum berth_err rc = BERTH_OK;
    if (step == META_STEP_ROW) {
        read_upload(st, row);
        out->gen = meta_col_int64(st, 6);
        meta_col_text(st, 7, out->mpu, sizeof(out->mpu));
        out->hash_state = dup_col(st, 8, &rc);
        out->stage_state = dup_col(st, 9, &rc);
    } else if (step == META_STEP_DONE) {
        rc = BERTH_ENOTFOUND;
    } else {
        rc = meta_fail(m, "upload_state_get");
    }
    meta_done(st);
    if (rc != BERTH_OK) {
        meta_upload_state_fini(out);
    }
    return rc;
}

void meta_upload_state_fini(struct meta_upload_state *s)
{
    free(s->hash_state);
    free(s->stage_state);
    s->hash_state = NULL;
    s->stage_state = NULL;
}

/* Whether the session exists: after an update that changed nothing,
 * tells a moved-on generation (BERTH_ERANGE) from a gone session. */
static enum berth_err moved_or_gone(struct meta *m, const char *uuid)
{
    struct meta_upload row;
    enum berth_err rc = meta_upload_get(m, uuid, &row);
    return rc == BERTH_OK ? BERTH_ERANGE : rc;
}

enum berth_err meta_upload_state_save(struct meta *m, const char *uuid, int64_t gen, int64_t size,
                                      const char *hash_state, const char *stage_state, int64_t now)
{
    struct meta_stmt *st =
        meta_prepare(m, "UPDATE uploads SET size = ?3, hash_state = ?4, stage_state = ?5,"
                        " updated_at = ?6, gen = gen + 1 WHERE uuid = ?1 AND gen = ?2");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, uuid);
    meta_bind_int64(st, 2, gen);
    meta_bind_int64(st, 3, size);
    meta_bind_text_or_null(st, 4, hash_state);
    meta_bind_text_or_null(st, 5, stage_state);
    meta_bind_int64(st, 6, now);
    enum berth_err rc = meta_step_done(m, st, "upload_state_save");
    if (rc == BERTH_OK && meta_changes(m) == 0) {
        rc = moved_or_gone(m, uuid);
    }
    if (rc == BERTH_OK && fault_injected("upload_commit_lost")) {
        /* a test's lost answer to a commit that was made (a connection cut
         * after the server's COMMIT): the caller cannot tell */
        log_warn("event=test_fault_injected fault=upload_commit_lost uuid=%s", uuid);
        rc = BERTH_EUNAVAILABLE;
    }
    return rc;
}

enum berth_err meta_upload_count_part(struct meta *m, const char *uuid, int64_t *parts)
{
    struct meta_stmt *st = meta_prepare(m, "UPDATE uploads SET gen = gen + 1 WHERE uuid = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, uuid);
    enum berth_err rc = meta_step_done(m, st, "upload_count_part");
    if (rc == BERTH_OK && meta_changes(m) == 0) {
        rc = BERTH_ENOTFOUND;
    }
    struct meta_upload row;
    if (rc == BERTH_OK) {
        rc = meta_upload_get(m, uuid, &row);
    }
    if (rc == BERTH_OK) {
        *parts = row.gen;
    }
    return rc;
}

enum berth_err meta_upload_next_part(struct meta *m, const char *uuid, const char *mpu,
                                     int64_t *number, char *mpu_out)
{
    bool own = !meta_in_transaction(m);
    enum berth_err rc = own ? meta_begin(m) : BERTH_OK;
    if (rc != BERTH_OK) {
        return rc;
    }
    struct meta_stmt *st =
        meta_prepare(m, "UPDATE uploads SET part_seq = part_seq + 1, mpu = coalesce(mpu, ?2)"
                        " WHERE uuid = ?1");
    if (st == NULL) {
        rc = BERTH_EDB;
    } else {
        meta_bind_text(st, 1, uuid);
        meta_bind_text_or_null(st, 2, mpu);
        rc = meta_step_done(m, st, "upload_next_part");
        if (rc == BERTH_OK && meta_changes(m) == 0) {
            rc = BERTH_ENOTFOUND;
        }
    }
    if (rc == BERTH_OK) {
        st = meta_prepare(m, "SELECT part_seq, mpu FROM uploads WHERE uuid = ?1");
        if (st == NULL) {
            rc = BERTH_EDB;
        } else {
            meta_bind_text(st, 1, uuid);
            if (meta_step(st) == META_STEP_ROW) {
                *number = meta_col_int64(st, 0);
                meta_col_text(st, 1, mpu_out, META_MPU_MAX);
            } else {
                rc = meta_fail(m, "upload_next_part");
            }
            meta_done(st);
        }
    }
    if (own) {
        if (rc == BERTH_OK) {
            rc = meta_commit(m);
        }
        if (rc != BERTH_OK) {
            meta_rollback(m);
        }
    }
    return rc;
}

enum berth_err meta_upload_delete_at(struct meta *m, const char *uuid, int64_t gen)
{
    struct meta_stmt *st = meta_prepare(m, "DELETE FROM uploads WHERE uuid = ?1 AND gen = ?2");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, uuid);
    meta_bind_int64(st, 2, gen);
    enum berth_err rc = meta_step_done(m, st, "upload_delete_at");
    if (rc == BERTH_OK && meta_changes(m) == 0) {
        rc = moved_or_gone(m, uuid);
    }
    return rc;
}

struct upload_ctx {
    meta_upload_cb cb;
    void *arg;
};

static int upload_row(struct meta_stmt *st, void *ctx)
{
    struct upload_ctx *c = ctx;
    struct meta_upload u;
    read_upload(st, &u);
    return c->cb(c->arg, &u);
}

enum berth_err meta_upload_list_older(struct meta *m, int64_t before, meta_upload_cb cb, void *arg)
{
    struct meta_stmt *st =
        meta_prepare(m, "SELECT uuid, repo_id, algorithm, created_at, size, updated_at "
                        "FROM uploads WHERE created_at < ?1 ORDER BY created_at");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, before);
    struct upload_ctx c = {cb, arg};
    return meta_page(m, st, -1, upload_row, &c, NULL, "upload_list");
}

enum berth_err meta_totals_get(struct meta *m, struct meta_totals *out)
{
    struct meta_stmt *st = meta_prepare(m, "SELECT (SELECT count(*) FROM blobs),"
                                           " (SELECT coalesce(sum(size), 0) FROM blobs),"
                                           " (SELECT count(*) FROM uploads),"
                                           " (SELECT count(*) FROM blobs WHERE tier = 1),"
                                           " (SELECT coalesce(sum(size), 0) FROM blobs"
                                           " WHERE tier = 1),"
                                           " (SELECT coalesce(sum(archived_size), 0) FROM blobs"
                                           " WHERE tier = 1)");
    if (st == NULL) {
        return BERTH_EDB;
    }
    enum berth_err rc = BERTH_OK;
    if (meta_step(st) == META_STEP_ROW) {
        out->blobs = meta_col_int64(st, 0);
        out->blob_bytes = meta_col_int64(st, 1);
        out->upload_sessions = meta_col_int64(st, 2);
        out->archived_blobs = meta_col_int64(st, 3);
        out->archived_bytes = meta_col_int64(st, 4);
        out->archived_stored = meta_col_int64(st, 5);
    } else {
        rc = meta_fail(m, "totals_get");
    }
    meta_done(st);
    return rc;
}

enum berth_err meta_ping(struct meta *m)
{
    struct meta_stmt *st = meta_prepare(m, "SELECT 1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    enum berth_err rc = BERTH_OK;
    if (meta_step(st) != META_STEP_ROW) {
        rc = meta_fail(m, "ping");
    }
    meta_done(st);
    return rc;
}

bool meta_durability_lost(struct meta *m)
{
    return m->drv->durability_lost != NULL && m->drv->durability_lost(m->conn);
}
