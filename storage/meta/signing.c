/*
 * Metadata: managed signing's per-image statuses (signing_statuses, by
 * manifest and profile). See meta.h.
 */
#include "meta_int.h"

enum berth_err meta_signing_status_put(struct meta *m, int64_t manifest_id,
                                       const struct meta_signing_status *in, int64_t now)
{
    struct meta_stmt *st = meta_prepare(
        m, "INSERT INTO signing_statuses (manifest_id, profile_arn, status, failure_code, "
           "failure_reason, signature_digest, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
           "ON CONFLICT (manifest_id, profile_arn) DO UPDATE SET status = excluded.status, "
           "failure_code = excluded.failure_code, failure_reason = excluded.failure_reason, "
           "signature_digest = excluded.signature_digest, updated_at = excluded.updated_at");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, manifest_id);
    meta_bind_text(st, 2, in->profile_arn);
    meta_bind_text(st, 3, in->status);
    meta_bind_text(st, 4, in->failure_code);
    meta_bind_text(st, 5, in->failure_reason);
    meta_bind_text(st, 6, in->signature_digest);
    meta_bind_int64(st, 7, now);
    return meta_step_done(m, st, "signing_status_put");
}

enum berth_err meta_signing_status_list(struct meta *m, int64_t manifest_id,
                                        meta_signing_status_cb cb, void *arg)
{
    struct meta_stmt *st =
        meta_prepare(m, "SELECT profile_arn, status, failure_code, failure_reason, "
                        "signature_digest FROM signing_statuses WHERE manifest_id = ?1 "
                        "ORDER BY profile_arn");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, manifest_id);
    enum berth_err err = BERTH_OK;
    int rc;
    while ((rc = meta_step(st)) == META_STEP_ROW) {
        struct meta_signing_status s = {
            .profile_arn = meta_col_cstr(st, 0),
            .status = meta_col_cstr(st, 1),
            .failure_code = meta_col_cstr(st, 2),
            .failure_reason = meta_col_cstr(st, 3),
            .signature_digest = meta_col_cstr(st, 4),
        };
        if (s.profile_arn == NULL || s.status == NULL) {
            continue;
        }
        if (cb(arg, &s) != 0) {
            break;
        }
    }
    if (rc != META_STEP_ROW && rc != META_STEP_DONE) {
        err = meta_fail(m, "signing_status_list");
    }
    meta_done(st);
    return err;
}

enum berth_err meta_signing_queue(struct meta *m, int64_t manifest_id, const char *profile_arn,
                                  int64_t now, bool *queued)
{
    struct meta_stmt *st = meta_prepare(
        m, "INSERT INTO signing_statuses (manifest_id, profile_arn, status, updated_at) "
           "VALUES (?1, ?2, 'IN_PROGRESS', ?3) ON CONFLICT (manifest_id, profile_arn) DO UPDATE "
           "SET status = 'IN_PROGRESS', failure_code = NULL, failure_reason = NULL, "
           "signature_digest = NULL, updated_at = excluded.updated_at "
           "WHERE signing_statuses.status = 'FAILED'");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, manifest_id);
    meta_bind_text(st, 2, profile_arn);
    meta_bind_int64(st, 3, now);
    enum berth_err rc = meta_step_done(m, st, "signing_queue");
    if (rc == BERTH_OK) {
        *queued = meta_changes(m) > 0;
    }
    return rc;
}

struct job_ctx {
    meta_signing_job_cb cb;
    void *arg;
};

static int job_row(struct meta_stmt *st, void *ctx)
{
    struct job_ctx *c = ctx;
    struct meta_signing_job job = {
        .manifest_id = meta_col_int64(st, 0),
        .profile_arn = meta_col_cstr(st, 1),
        .repo = meta_col_cstr(st, 2),
        .digest = meta_col_cstr(st, 3),
        .media_type = meta_col_cstr(st, 4),
        .size = meta_col_int64(st, 5),
    };
    if (job.profile_arn == NULL || job.repo == NULL || job.digest == NULL ||
        job.media_type == NULL) {
        return 0;
    }
    return c->cb(c->arg, &job);
}

enum berth_err meta_signing_pending(struct meta *m, int64_t limit, meta_signing_job_cb cb,
                                    void *arg)
{
    struct meta_stmt *st =
        meta_prepare(m, "SELECT s.manifest_id, s.profile_arn, r.name, mf.digest, mf.media_type, "
                        "mf.size FROM signing_statuses s "
                        "JOIN manifests mf ON mf.id = s.manifest_id "
                        "JOIN repositories r ON r.id = mf.repo_id "
                        "WHERE s.status = 'IN_PROGRESS' "
                        "ORDER BY s.updated_at, s.manifest_id, s.profile_arn LIMIT ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, limit + 1);
    struct job_ctx c = {cb, arg};
    return meta_page(m, st, limit, job_row, &c, NULL, "signing_pending");
}
