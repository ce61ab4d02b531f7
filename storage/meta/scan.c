/* Metadata: registry settings, the scan queue, scans and findings. See
 * meta_scan.h. */
#include "meta_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/meta/meta_scan.h"
#include "common/str.h"

/* ---- registry settings ---- */

enum berth_err meta_setting_get(struct meta *m, const char *name, char **out)
{
    struct meta_stmt *st = meta_prepare(m, "SELECT value FROM registry_settings WHERE name = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, name);
    char *value = NULL;
    enum berth_err rc = meta_get_text(m, st, &value);
    if (rc == BERTH_ENOTFOUND) {
        rc = BERTH_OK;
        value = NULL;
    }
    if (rc == BERTH_OK) {
        *out = value;
    }
    return rc;
}

enum berth_err meta_setting_set(struct meta *m, const char *name, const char *value, int64_t now)
{
    if (strlen(value) > META_SETTING_MAX) {
        return BERTH_ETOOBIG;
    }
    struct meta_stmt *st =
        meta_prepare(m, "INSERT INTO registry_settings (name, value, updated_at) "
                        "VALUES (?1, ?2, ?3) ON CONFLICT(name) DO UPDATE SET "
                        "value = excluded.value, updated_at = excluded.updated_at");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, name);
    meta_bind_text(st, 2, value);
    meta_bind_int64(st, 3, now);
    return meta_step_done(m, st, "setting_set");
}

enum berth_err meta_setting_delete(struct meta *m, const char *name)
{
    struct meta_stmt *st = meta_prepare(m, "DELETE FROM registry_settings WHERE name = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_text(st, 1, name);
    enum berth_err rc = meta_step_done(m, st, "setting_delete");
    if (rc == BERTH_OK && meta_changes(m) == 0) {
        rc = BERTH_ENOTFOUND;
    }
    return rc;
}

enum berth_err meta_setting_take(struct meta *m, const char *name, char **out)
{
    *out = NULL;
    bool own = !meta_in_transaction(m);
    enum berth_err rc = own ? meta_begin(m) : BERTH_OK;
    char *text = NULL;
    if (rc == BERTH_OK) {
        rc = meta_setting_get(m, name, &text);
    }
    if (rc == BERTH_OK && text != NULL) {
        rc = meta_setting_delete(m, name);
        if (rc == BERTH_ENOTFOUND) { /* removed by another writer first */
            free(text);
            text = NULL;
            rc = BERTH_OK;
        }
    }
    if (rc == BERTH_OK && text != NULL && own) {
        rc = meta_commit(m);
    }
    if (own) {
        meta_rollback(m);
    }
    if (rc == BERTH_OK) {
        *out = text;
    } else {
        free(text);
    }
    return rc;
}

/* ---- scans ---- */

static const char *const status_names[] = {"IN_PROGRESS", "COMPLETE", "FAILED", "LIMIT_EXCEEDED"};

const char *meta_scan_status_name(enum meta_scan_status s)
{
    if ((size_t)s < sizeof(status_names) / sizeof(status_names[0])) {
        return status_names[s];
    }
    return "FAILED";
}

static enum meta_scan_status status_parse(const char *s)
{
    for (size_t i = 0; s != NULL && i < sizeof(status_names) / sizeof(status_names[0]); i++) {
        if (strcmp(s, status_names[i]) == 0) {
            return (enum meta_scan_status)i;
        }
    }
    return META_SCAN_FAILED;
}

bool meta_scan_is_image(bool is_index, const char *config_media_type)
{
    return !is_index && config_media_type != NULL &&
           (strcmp(config_media_type, META_SCAN_CONFIG_OCI) == 0 ||
            strcmp(config_media_type, META_SCAN_CONFIG_DOCKER) == 0);
}

enum berth_err meta_scan_get(struct meta *m, int64_t manifest_id, struct meta_scan *out)
{
    struct meta_stmt *st = meta_prepare(
        m, "SELECT status, description, requested_at, completed_at, source_updated_at, "
           "finding_count, count_undefined, count_informational, count_low, count_medium, "
           "count_high, count_critical FROM scans WHERE manifest_id = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, manifest_id);
    int rc = meta_step(st);
    enum berth_err err = BERTH_OK;
    if (rc == META_STEP_ROW) {
        out->manifest_id = manifest_id;
        out->status = status_parse(meta_col_cstr(st, 0));
        /* descriptions are cut when stored; a longer one is cut here too */
        meta_col_text(st, 1, out->description, sizeof(out->description));
        out->requested_at = meta_col_int64(st, 2);
        out->completed_at = meta_col_int64(st, 3);
        out->source_updated_at = meta_col_is_null(st, 4) ? -1 : meta_col_int64(st, 4);
        out->finding_count = meta_col_int64(st, 5);
        for (int i = 0; i < SCAN_SEVERITY_COUNT; i++) {
            out->counts[i] = meta_col_int64(st, 6 + i);
        }
    } else if (rc == META_STEP_DONE) {
        err = BERTH_ENOTFOUND;
    } else {
        err = meta_fail(m, "scan_get");
    }
    meta_done(st);
    return err;
}

/* Mark the scan IN_PROGRESS, creating the row. */
static enum berth_err mark_in_progress(struct meta *m, int64_t manifest_id, int64_t now,
                                       bool count_quota)
{
    struct meta_stmt *st = meta_prepare(
        m, meta_sql(m,
                    "INSERT INTO scans (manifest_id, status, requested_at) "
                    "VALUES (?1, 'IN_PROGRESS', ?2) ON CONFLICT(manifest_id) DO UPDATE SET "
                    "status = 'IN_PROGRESS', description = NULL, "
                    "requested_at = coalesce(excluded.requested_at, requested_at)",
                    "INSERT INTO scans (manifest_id, status, requested_at) "
                    "VALUES (?1, 'IN_PROGRESS', ?2::bigint) ON CONFLICT(manifest_id) DO UPDATE SET "
                    "status = 'IN_PROGRESS', description = NULL, "
                    "requested_at = coalesce(excluded.requested_at, scans.requested_at)"));
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, manifest_id);
    if (count_quota) {
        meta_bind_int64(st, 2, now);
    } else {
        meta_bind_null(st, 2);
    }
    return meta_step_done(m, st, "scan_mark");
}

enum berth_err meta_scan_enqueue(struct meta *m, int64_t manifest_id, int64_t now, bool count_quota,
                                 bool *queued)
{
    /* A waiting job covers the request. A running one was claimed before
     * it, so it is marked to run again when it ends: queued_at after
     * claimed_at, whatever the clock did (see meta_scan_job_finish). */
    struct meta_stmt *st = meta_prepare(
        m, meta_sql(m,
                    "INSERT INTO scan_jobs (manifest_id, queued_at) VALUES (?1, ?2) "
                    "ON CONFLICT(manifest_id) DO UPDATE SET queued_at = max(?2, claimed_at + 1) "
                    "WHERE claimed_at IS NOT NULL",
                    "INSERT INTO scan_jobs (manifest_id, queued_at) VALUES (?1, ?2) "
                    "ON CONFLICT(manifest_id) DO UPDATE SET "
                    "queued_at = greatest(?2, scan_jobs.claimed_at + 1) "
                    "WHERE scan_jobs.claimed_at IS NOT NULL"));
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, manifest_id);
    meta_bind_int64(st, 2, now);
    enum berth_err rc = meta_step_done(m, st, "scan_enqueue");
    bool added = rc == BERTH_OK && meta_changes(m) > 0;
    if (rc == BERTH_OK) {
        rc = mark_in_progress(m, manifest_id, now, count_quota);
    }
    if (rc == BERTH_OK && queued != NULL) {
        *queued = added;
    }
    return rc;
}

/* Queue a scan of each id (from a batch). */
static enum berth_err enqueue_ids(struct meta *m, const int64_t *ids, size_t n, int64_t now,
                                  int64_t *count)
{
    enum berth_err rc = BERTH_OK;
    for (size_t i = 0; rc == BERTH_OK && i < n; i++) {
        bool added = false;
        rc = meta_scan_enqueue(m, ids[i], now, false, &added);
        *count += added ? 1 : 0;
    }
    return rc;
}

/* Run a batch query (?1 = a text or integer parameter, ?2 = the last id
 * seen; selects ids in order, at most 256) until it returns a short batch,
 * queueing a scan of every id. The statement is reset before the inserts,
 * so no read cursor stays open across the writes. */
static enum berth_err enqueue_batches(struct meta *m, const char *sql, int64_t int_param,
                                      const char *text_param, int64_t now, int64_t *queued)
{
    int64_t after = 0, count = 0;
    enum berth_err rc = BERTH_OK;
    for (;;) {
        int64_t ids[256];
        size_t n = 0;
        struct meta_stmt *st = meta_prepare(m, sql);
        if (st == NULL) {
            return BERTH_EDB;
        }
        if (text_param != NULL) {
            meta_bind_text(st, 1, text_param);
        } else {
            meta_bind_int64(st, 1, int_param);
        }
        meta_bind_int64(st, 2, after);
        int step = META_STEP_DONE;
        while (n < 256 && (step = meta_step(st)) == META_STEP_ROW) {
            ids[n++] = meta_col_int64(st, 0);
        }
        if (n < 256 && step != META_STEP_DONE) {
            rc = meta_fail(m, "scan_enqueue_batch");
        }
        meta_done(st);
        if (rc == BERTH_OK) {
            rc = enqueue_ids(m, ids, n, now, &count);
        }
        if (rc != BERTH_OK || n < 256) {
            break;
        }
        after = ids[n - 1];
    }
    if (rc == BERTH_OK) {
        *queued = count;
    }
    return rc;
}

/* Image manifests of a repository after an id, in id order (a batch).
 * Archived ones (storage_class 1) are left out: an archived image cannot be
 * scanned until it is restored, and its restore decides its scan
 * (meta_scan_on_restore). */
static const char enqueue_repo_sql[] =
    "SELECT id FROM manifests WHERE repo_id = ?1 AND is_index = 0 AND storage_class = 0 AND "
    "config_media_type IN ('" META_SCAN_CONFIG_OCI "', '" META_SCAN_CONFIG_DOCKER "') "
    "AND id > ?2 ORDER BY id LIMIT 256";

enum berth_err meta_scan_enqueue_repo(struct meta *m, int64_t repo_id, int64_t now, int64_t *queued)
{
    return enqueue_batches(m, enqueue_repo_sql, repo_id, NULL, now, queued);
}

/* Images whose last scan failed with a description starting with ?1, but
 * not archived ones (as above). */
static const char enqueue_failed_sql[] =
    "SELECT s.manifest_id FROM scans s JOIN manifests m ON m.id = s.manifest_id "
    "WHERE s.status = 'FAILED' AND m.storage_class = 0 AND "
    "substr(s.description, 1, length(?1)) = ?1 AND s.manifest_id > ?2 "
    "ORDER BY s.manifest_id LIMIT 256";

enum berth_err meta_scan_enqueue_failed(struct meta *m, const char *prefix, int64_t now,
                                        int64_t *queued)
{
    return enqueue_batches(m, enqueue_failed_sql, 0, prefix, now, queued);
}

static enum berth_err delete_findings(struct meta *m, int64_t manifest_id)
{
    struct meta_stmt *st = meta_prepare(m, "DELETE FROM scan_findings WHERE manifest_id = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, manifest_id);
    return meta_step_done(m, st, "scan_findings_delete");
}

static enum berth_err insert_finding(struct meta *m, int64_t manifest_id, int64_t seq,
                                     const struct meta_scan_finding *f)
{
    struct meta_stmt *st = meta_prepare(m, "INSERT INTO scan_findings (manifest_id, seq, severity, "
                                           "finding) VALUES (?1, ?2, ?3, ?4)");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, manifest_id);
    meta_bind_int64(st, 2, seq);
    meta_bind_int64(st, 3, (int)f->severity);
    meta_bind_text(st, 4, f->json);
    return meta_step_done(m, st, "scan_finding_insert");
}

static bool manifest_exists(struct meta *m, int64_t manifest_id, enum berth_err *rc)
{
    struct meta_stmt *st = meta_prepare(m, "SELECT 1 FROM manifests WHERE id = ?1");
    if (st == NULL) {
        *rc = BERTH_EDB;
        return false;
    }
    meta_bind_int64(st, 1, manifest_id);
    int step = meta_step(st);
    *rc = (step == META_STEP_ROW || step == META_STEP_DONE) ? BERTH_OK
                                                            : meta_fail(m, "manifest_exists");
    meta_done(st);
    return step == META_STEP_ROW;
}

enum berth_err meta_scan_store(struct meta *m, int64_t manifest_id,
                               const struct meta_scan_outcome *o)
{
    if (o->status != META_SCAN_COMPLETE && o->status != META_SCAN_FAILED) {
        return BERTH_EINVAL;
    }
    enum berth_err rc;
    if (!manifest_exists(m, manifest_id, &rc)) {
        return rc == BERTH_OK ? BERTH_ENOTFOUND : rc;
    }
    char description[META_SCAN_DESCRIPTION_MAX + 1];
    const char *text = o->description ? o->description : "";
    size_t len = str_utf8_cut(text, META_SCAN_DESCRIPTION_MAX);
    memcpy(description, text, len);
    description[len] = '\0';
    struct meta_stmt *st = meta_prepare(
        m, "INSERT INTO scans (manifest_id, status, description, requested_at, completed_at, "
           "source_updated_at, finding_count, count_undefined, count_informational, count_low, "
           "count_medium, count_high, count_critical) "
           "VALUES (?1, ?2, ?3, NULL, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) "
           "ON CONFLICT(manifest_id) DO UPDATE SET status = excluded.status, "
           "description = excluded.description, completed_at = excluded.completed_at, "
           "source_updated_at = excluded.source_updated_at, "
           "finding_count = excluded.finding_count, count_undefined = excluded.count_undefined, "
           "count_informational = excluded.count_informational, count_low = excluded.count_low, "
           "count_medium = excluded.count_medium, count_high = excluded.count_high, "
           "count_critical = excluded.count_critical");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, manifest_id);
    meta_bind_text(st, 2, meta_scan_status_name(o->status));
    meta_bind_text_or_null(st, 3, description);
    meta_bind_int64(st, 4, o->completed_at);
    if (o->source_updated_at >= 0) {
        meta_bind_int64(st, 5, o->source_updated_at);
    } else {
        meta_bind_null(st, 5);
    }
    meta_bind_int64(st, 6, (int64_t)o->finding_count);
    for (int i = 0; i < SCAN_SEVERITY_COUNT; i++) {
        meta_bind_int64(st, 7 + i, o->counts[i]);
    }
    rc = meta_step_done(m, st, "scan_store");
    if (rc == BERTH_OK) {
        rc = delete_findings(m, manifest_id);
    }
    for (size_t i = 0; rc == BERTH_OK && i < o->finding_count; i++) {
        rc = insert_finding(m, manifest_id, (int64_t)i, &o->findings[i]);
    }
    return rc;
}

struct finding_ctx {
    meta_scan_finding_cb cb;
    void *arg;
};

static int finding_row(struct meta_stmt *st, void *ctx)
{
    struct finding_ctx *c = ctx;
    const char *json = meta_col_cstr(st, 1);
    return c->cb(c->arg, meta_col_int64(st, 0), json ? json : "{}");
}

enum berth_err meta_scan_findings(struct meta *m, int64_t manifest_id, int64_t after, int64_t limit,
                                  meta_scan_finding_cb cb, void *arg, bool *has_more)
{
    struct meta_stmt *st =
        meta_prepare(m, "SELECT seq, finding FROM scan_findings "
                        "WHERE manifest_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, manifest_id);
    meta_bind_int64(st, 2, after);
    /* one more than asked for tells whether more follow */
    meta_bind_int64(st, 3, limit < INT64_MAX ? limit + 1 : limit);
    struct finding_ctx c = {cb, arg};
    return meta_page(m, st, limit, finding_row, &c, has_more, "scan_findings");
}

/* ---- restore ---- */

/* The archived images a restore of ?2 in repository ?1 brings back (the
 * manifest, and an index's children), after id ?3, a batch. */
static const char restored_images_sql[] =
    "SELECT id FROM manifests WHERE repo_id = ?1 AND storage_class = 1 AND is_index = 0 AND "
    "config_media_type IN ('" META_SCAN_CONFIG_OCI "', '" META_SCAN_CONFIG_DOCKER "') AND "
    "(id = ?2 OR digest IN (SELECT r.digest FROM manifest_refs r WHERE r.manifest_id = ?2 "
    "AND r.kind = 1)) AND id > ?3 ORDER BY id LIMIT 256";

/* Run one statement with the manifest id as ?1 (and the text ?2 when
 * given). */
static enum berth_err exec_id(struct meta *m, const char *sql, int64_t manifest_id,
                              const char *text, const char *what)
{
    struct meta_stmt *st = meta_prepare(m, sql);
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, manifest_id);
    if (text != NULL) {
        meta_bind_text(st, 2, text);
    }
    return meta_step_done(m, st, what);
}

#define SCAN_ZERO_COUNTS                                                                           \
    "finding_count = 0, count_undefined = 0, count_informational = 0, count_low = 0, "             \
    "count_medium = 0, count_high = 0, count_critical = 0"

/* One restored image: its scan reset as meta_scan_on_restore says. */
static enum berth_err restore_one(struct meta *m, int64_t id, bool rescan, int64_t quota_ms,
                                  int64_t now, int64_t *queued, int64_t *limited)
{
    enum berth_err rc = delete_findings(m, id);
    if (rc != BERTH_OK) {
        return rc;
    }
    if (!rescan) {
        return exec_id(m, "DELETE FROM scans WHERE manifest_id = ?1", id, NULL, "scan_restore");
    }
    struct meta_scan scan;
    rc = meta_scan_get(m, id, &scan);
    if (rc != BERTH_OK && rc != BERTH_ENOTFOUND) {
        return rc;
    }
    if (rc == BERTH_OK && quota_ms > 0 && scan.requested_at > 0 &&
        now - scan.requested_at < quota_ms) {
        (*limited)++;
        return exec_id(m,
                       "UPDATE scans SET status = 'LIMIT_EXCEEDED', description = ?2, "
                       "completed_at = NULL, source_updated_at = NULL, " SCAN_ZERO_COUNTS
                       " WHERE manifest_id = ?1",
                       id, META_SCAN_LIMIT_DESCRIPTION, "scan_restore_limit");
    }
    if (rc == BERTH_OK) {
        rc = exec_id(
            m,
            "UPDATE scans SET completed_at = NULL, source_updated_at = NULL, " SCAN_ZERO_COUNTS
            " WHERE manifest_id = ?1",
            id, NULL, "scan_restore_reset");
    } else {
        rc = BERTH_OK;
    }
    bool added = false;
    if (rc == BERTH_OK) {
        rc = meta_scan_enqueue(m, id, now, true, &added);
    }
    *queued += added ? 1 : 0;
    return rc;
}

enum berth_err meta_scan_on_restore(struct meta *m, int64_t repo_id, int64_t manifest_id,
                                    bool rescan, int64_t quota_ms, int64_t now, int64_t *queued,
                                    int64_t *limited)
{
    int64_t after = 0, nq = 0, nl = 0;
    enum berth_err rc = BERTH_OK;
    for (;;) {
        int64_t ids[256];
        size_t n = 0;
        struct meta_stmt *st = meta_prepare(m, restored_images_sql);
        if (st == NULL) {
            return BERTH_EDB;
        }
        meta_bind_int64(st, 1, repo_id);
        meta_bind_int64(st, 2, manifest_id);
        meta_bind_int64(st, 3, after);
        int step = META_STEP_DONE;
        while (n < 256 && (step = meta_step(st)) == META_STEP_ROW) {
            ids[n++] = meta_col_int64(st, 0);
        }
        if (n < 256 && step != META_STEP_DONE) {
            rc = meta_fail(m, "scan_restored_images");
        }
        /* reset before the writes: no read cursor stays open across them */
        meta_done(st);
        for (size_t i = 0; rc == BERTH_OK && i < n; i++) {
            rc = restore_one(m, ids[i], rescan, quota_ms, now, &nq, &nl);
        }
        if (rc != BERTH_OK || n < 256) {
            break;
        }
        after = ids[n - 1];
    }
    if (rc == BERTH_OK) {
        if (queued != NULL) {
            *queued = nq;
        }
        if (limited != NULL) {
            *limited = nl;
        }
    }
    return rc;
}

/* ---- the queue ---- */

/* A job's lease name (meta_lease.h) when replicas claim jobs with leases. */
static void job_lease_name(int64_t job_id, char *out, size_t cap)
{
    snprintf(out, cap, "scan-job:%lld", (long long)job_id);
}

/* The claimable jobs: unclaimed, or (leased) claimed by a holder whose
 * lease on the job expired before ?1 (the holder died); and not of an
 * image whose blobs are coming back from the archive tier (restoring:
 * ACTIVATING), which waits until they are back (a push over archived
 * blobs queues its scan-on-push at once). */
#define JOB_NOT_RESTORING                                                                          \
    "NOT EXISTS (SELECT 1 FROM manifests w WHERE w.id = j.manifest_id AND w.restoring = 1)"
#define JOB_FREE "(j.claimed_at IS NULL AND " JOB_NOT_RESTORING ")"
#define JOB_FREE_LEASED                                                                            \
    "((j.claimed_at IS NULL OR NOT EXISTS (SELECT 1 FROM leases l WHERE "                          \
    "l.name = 'scan-job:' || j.id AND l.expires_at > ?1)) AND " JOB_NOT_RESTORING ")"

/* Whether a job waits, by a plain read (no write lock). */
static enum berth_err job_waiting(struct meta *m, bool leased, int64_t now, bool *waiting)
{
    struct meta_stmt *st = meta_prepare(
        m, leased ? "SELECT EXISTS (SELECT 1 FROM scan_jobs j WHERE " JOB_FREE_LEASED ")"
                  : "SELECT EXISTS (SELECT 1 FROM scan_jobs j WHERE " JOB_FREE ")");
    if (st == NULL) {
        return BERTH_EDB;
    }
    if (leased) {
        meta_bind_int64(st, 1, now);
    }
    enum berth_err rc = BERTH_OK;
    if (meta_step(st) == META_STEP_ROW) {
        *waiting = meta_col_int(st, 0) != 0;
    } else {
        rc = meta_fail(m, "scan_job_waiting");
    }
    meta_done(st);
    return rc;
}

static enum berth_err job_claim(struct meta *m, int64_t now, const char *holder, int64_t ttl_ms,
                                struct meta_scan_job *out)
{
    bool leased = holder != NULL;
    /* Idle workers look every second: an empty queue must not cost them
     * (and every writer) the write lock. */
    bool waiting = false;
    enum berth_err rc = job_waiting(m, leased, now, &waiting);
    if (rc != BERTH_OK || !waiting) {
        return rc != BERTH_OK ? rc : BERTH_ENOTFOUND;
    }
    rc = meta_begin(m);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct meta_stmt *st = meta_prepare(
        m, leased ? "SELECT j.id, j.manifest_id, j.attempts, r.name, mf.digest FROM scan_jobs j "
                    "JOIN manifests mf ON mf.id = j.manifest_id "
                    "JOIN repositories r ON r.id = mf.repo_id "
                    "WHERE " JOB_FREE_LEASED " ORDER BY j.id LIMIT 1"
                  : "SELECT j.id, j.manifest_id, j.attempts, r.name, mf.digest FROM scan_jobs j "
                    "JOIN manifests mf ON mf.id = j.manifest_id "
                    "JOIN repositories r ON r.id = mf.repo_id "
                    "WHERE " JOB_FREE " ORDER BY j.id LIMIT 1");
    if (st == NULL) {
        meta_rollback(m);
        return BERTH_EDB;
    }
    if (leased) {
        meta_bind_int64(st, 1, now);
    }
    struct meta_scan_job job;
    int step = meta_step(st);
    if (step == META_STEP_ROW) {
        job.id = meta_col_int64(st, 0);
        job.manifest_id = meta_col_int64(st, 1);
        job.attempts = meta_col_int64(st, 2) + 1;
        meta_col_text(st, 3, job.repo, sizeof(job.repo));
        meta_col_text(st, 4, job.digest, sizeof(job.digest));
        rc = BERTH_OK;
    } else if (step == META_STEP_DONE) {
        rc = BERTH_ENOTFOUND;
    } else {
        rc = meta_fail(m, "scan_job_claim");
    }
    meta_done(st);
    if (rc == BERTH_OK) {
        /* never before queued_at: a clock that went back must not make the
         * request look newer than this run (a job taken over from a holder
         * that died is claimed anew: this run starts after any request
         * made while that one ran, so it covers them) */
        st = meta_prepare(m, meta_sql(m,
                                      "UPDATE scan_jobs SET claimed_at = max(?2, queued_at), "
                                      "attempts = attempts + 1 WHERE id = ?1",
                                      "UPDATE scan_jobs SET claimed_at = greatest(?2, queued_at), "
                                      "attempts = attempts + 1 WHERE id = ?1"));
        if (st == NULL) {
            rc = BERTH_EDB;
        } else {
            meta_bind_int64(st, 1, job.id);
            meta_bind_int64(st, 2, now);
            rc = meta_step_done(m, st, "scan_job_claim");
        }
    }
    if (rc == BERTH_OK && leased) {
        char name[64];
        job_lease_name(job.id, name, sizeof(name));
        st = meta_prepare(m, "INSERT INTO leases (name, holder, expires_at, done_at) "
                             "VALUES (?1, ?2, ?3, 0) ON CONFLICT (name) DO UPDATE SET "
                             "holder = excluded.holder, expires_at = excluded.expires_at");
        if (st == NULL) {
            rc = BERTH_EDB;
        } else {
            meta_bind_text(st, 1, name);
            meta_bind_text(st, 2, holder);
            meta_bind_int64(st, 3, now + ttl_ms);
            rc = meta_step_done(m, st, "scan_job_lease");
        }
    }
    if (rc == BERTH_OK) {
        rc = meta_commit(m);
    } else {
        meta_rollback(m);
    }
    if (rc == BERTH_OK) {
        *out = job;
    }
    return rc;
}

enum berth_err meta_scan_job_claim(struct meta *m, int64_t now, struct meta_scan_job *out)
{
    return job_claim(m, now, NULL, 0, out);
}

enum berth_err meta_scan_job_claim_leased(struct meta *m, int64_t now, const char *holder,
                                          int64_t ttl_ms, struct meta_scan_job *out)
{
    if (holder == NULL || holder[0] == '\0' || ttl_ms < 1) {
        return BERTH_EINVAL;
    }
    return job_claim(m, now, holder, ttl_ms, out);
}

/* Forget the lease of a job that ended or went back to the queue. */
static enum berth_err job_lease_drop(struct meta *m, int64_t job_id)
{
    struct meta_stmt *st = meta_prepare(m, "DELETE FROM leases WHERE name = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    char name[64];
    job_lease_name(job_id, name, sizeof(name));
    meta_bind_text(st, 1, name);
    return meta_step_done(m, st, "scan_job_lease_drop");
}

enum berth_err meta_scan_job_release(struct meta *m, int64_t job_id)
{
    struct meta_stmt *st =
        meta_prepare(m, meta_sql(m,
                                 "UPDATE scan_jobs SET claimed_at = NULL, "
                                 "attempts = max(attempts - 1, 0) WHERE id = ?1",
                                 "UPDATE scan_jobs SET claimed_at = NULL, "
                                 "attempts = greatest(attempts - 1, 0) WHERE id = ?1"));
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, job_id);
    enum berth_err rc = meta_step_done(m, st, "scan_job_release");
    if (rc == BERTH_OK && meta_changes(m) == 0) {
        rc = BERTH_ENOTFOUND;
    }
    if (rc == BERTH_OK) {
        rc = job_lease_drop(m, job_id);
    }
    return rc;
}

enum berth_err meta_scan_job_delete(struct meta *m, int64_t job_id)
{
    struct meta_stmt *st = meta_prepare(m, "DELETE FROM scan_jobs WHERE id = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, job_id);
    enum berth_err rc = meta_step_done(m, st, "scan_job_delete");
    if (rc == BERTH_OK && meta_changes(m) == 0) {
        rc = BERTH_ENOTFOUND;
    }
    if (rc == BERTH_OK) {
        rc = job_lease_drop(m, job_id);
    }
    return rc;
}

enum berth_err meta_scan_job_finish(struct meta *m, int64_t job_id, bool *requeued)
{
    *requeued = false;
    struct meta_stmt *st = meta_prepare(m, "DELETE FROM scan_jobs WHERE id = ?1 AND "
                                           "(claimed_at IS NULL OR queued_at <= claimed_at)");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, job_id);
    enum berth_err rc = meta_step_done(m, st, "scan_job_finish");
    if (rc == BERTH_OK) {
        bool gone = meta_changes(m) > 0;
        rc = job_lease_drop(m, job_id);
        if (rc != BERTH_OK || gone) {
            return rc;
        }
    } else {
        return rc;
    }
    /* requested while it ran: the image's scan is pending again */
    st = meta_prepare(m, "UPDATE scans SET status = 'IN_PROGRESS', description = NULL "
                         "WHERE manifest_id = (SELECT manifest_id FROM scan_jobs WHERE id = ?1)");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, job_id);
    rc = meta_step_done(m, st, "scan_job_requeue");
    if (rc != BERTH_OK) {
        return rc;
    }
    st = meta_prepare(m, "UPDATE scan_jobs SET claimed_at = NULL, attempts = 0 WHERE id = ?1");
    if (st == NULL) {
        return BERTH_EDB;
    }
    meta_bind_int64(st, 1, job_id);
    rc = meta_step_done(m, st, "scan_job_requeue");
    if (rc == BERTH_OK) {
        if (meta_changes(m) == 0) {
            return BERTH_ENOTFOUND;
        }
        *requeued = true;
    }
    return rc;
}

enum berth_err meta_scan_jobs_reset(struct meta *m, int64_t *count)
{
    struct meta_stmt *st =
        meta_prepare(m, "UPDATE scan_jobs SET claimed_at = NULL WHERE claimed_at IS NOT NULL");
    if (st == NULL) {
        return BERTH_EDB;
    }
    enum berth_err rc = meta_step_done(m, st, "scan_jobs_reset");
    if (rc == BERTH_OK && count != NULL) {
        *count = meta_changes(m);
    }
    return rc;
}

enum berth_err meta_scan_jobs_count(struct meta *m, int64_t *waiting, int64_t *total)
{
    struct meta_stmt *st = meta_prepare(
        m, "SELECT count(*) FILTER (WHERE claimed_at IS NULL), count(*) FROM scan_jobs");
    if (st == NULL) {
        return BERTH_EDB;
    }
    enum berth_err rc = BERTH_OK;
    if (meta_step(st) == META_STEP_ROW) {
        if (waiting != NULL) {
            *waiting = meta_col_int64(st, 0);
        }
        if (total != NULL) {
            *total = meta_col_int64(st, 1);
        }
    } else {
        rc = meta_fail(m, "scan_jobs_count");
    }
    meta_done(st);
    return rc;
}
