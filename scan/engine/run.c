/* Running scans over the store and recording them. See scan_run.h. */
#include "scan/engine/scan_run.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/blob/blob.h"
#include "storage/spec/digest.h"
#include "common/fault.h"
#include "common/fileio.h"
#include "common/log.h"
#include "storage/spec/manifest.h"
#include "storage/meta/meta_scan.h"
#include "storage/registry/scan_queue.h"
#include "scan/engine/scan_builtin.h"
#include "scan/engine/scan_dbsync.h"
#include "storage/store/store.h"
#include "common/str.h"
#include "common/timeutil.h"

void scan_outcome_fini(struct scan_outcome *o)
{
    json_decref(o->findings);
    o->findings = NULL;
    free(o->severities);
    o->severities = NULL;
}

/* The severity of every finding and the counts per severity, once for
 * everything that reports them. Both engines give ECR's exact names. */
static enum berth_err classify(struct scan_outcome *o)
{
    size_t n = json_array_size(o->findings);
    memset(o->counts, 0, sizeof(o->counts));
    if (n == 0) {
        return BERTH_OK;
    }
    o->severities = calloc(n, sizeof(*o->severities));
    if (o->severities == NULL) {
        return BERTH_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const char *name =
            json_string_value(json_object_get(json_array_get(o->findings, i), "severity"));
        enum scan_severity sev;
        if (scan_severity_parse(name, &sev) != BERTH_OK) {
            sev = SCAN_SEVERITY_UNDEFINED;
        }
        o->severities[i] = sev;
        o->counts[sev]++;
    }
    return BERTH_OK;
}

static void outcome_fail(struct scan_outcome *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void outcome_fail(struct scan_outcome *o, const char *fmt, ...)
{
    o->complete = false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->description, sizeof(o->description), fmt, ap);
    va_end(ap);
}

/* The one pass over every description, whichever engine wrote it: reasons
 * quote names from the image and the hook's stderr, and a bounded
 * snprintf can cut a character. Control characters become '?' (the text
 * reaches logs and the terminal of `berth scan`), and so does anything
 * that is not well-formed UTF-8 (it reaches JSON). */
static void printable(char *s)
{
    for (char *p = s; *p; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f) {
            *p = '?';
        }
    }
    str_utf8_scrub(s);
}

/* Blob paths of the image: layers[i] for info->refs[i]; "" for a
 * non-distributable layer the store does not have. */
struct image_files {
    char manifest[4096];
    char config[4096];
    char (*layers)[4096];
    size_t layer_count;
};

/* The config and layer paths (f->manifest is already set). */
static enum berth_err locate(struct store *st, const struct manifest_info *info,
                             struct image_files *f)
{
    enum berth_err rc = BERTH_OK;
    f->config[0] = '\0';
    if (info->has_config) {
        rc = blob_local_path(store_blobs(st), &info->config.digest, f->config, sizeof(f->config));
    }
    if (rc != BERTH_OK) {
        return rc;
    }
    f->layers = calloc(info->ref_count ? info->ref_count : 1, sizeof(*f->layers));
    if (f->layers == NULL) {
        return BERTH_ENOMEM;
    }
    f->layer_count = info->ref_count;
    for (size_t i = 0; rc == BERTH_OK && i < info->ref_count; i++) {
        rc = blob_local_path(store_blobs(st), &info->refs[i].digest, f->layers[i],
                             sizeof(f->layers[i]));
        if (rc == BERTH_OK && info->refs[i].non_distributable && access(f->layers[i], F_OK) != 0) {
            f->layers[i][0] = '\0';
        }
    }
    return rc;
}

/* One blob of the image, fetched through eng->fetch_blob when the store
 * lacks it. *failed (and the outcome FAILED) when the fetch failed. */
static enum berth_err fetch_one(struct store *st, const struct scan_engine *eng, const char *repo,
                                const struct digest *d, const char *what, struct scan_outcome *out,
                                bool *failed)
{
    uint64_t size = 0;
    enum berth_err rc = blob_stat(store_blobs(st), d, &size);
    if (rc != BERTH_ENOTFOUND) {
        return rc;
    }
    char why[256] = "";
    rc = eng->fetch_blob(eng->fetch_blob_arg, st, repo, d, why, sizeof(why));
    if (rc == BERTH_OK) {
        log_info("event=scan_blob_fetched repo=%s digest=%s", repo, d->str);
        return BERTH_OK;
    }
    if (rc == BERTH_ENOTFOUND) {
        return BERTH_OK; /* the engine reports the missing blob */
    }
    if (rc == BERTH_EBUSY && eng->cancel != NULL && atomic_load(eng->cancel)) {
        return BERTH_EBUSY;
    }
    if (rc == BERTH_ENOMEM) {
        return rc;
    }
    char wv[600];
    log_warn("event=scan_blob_fetch_failed repo=%s digest=%s err=%s reason=%s", repo, d->str,
             berth_strerror(rc), log_value(why, wv, sizeof(wv)));
    outcome_fail(out,
                 SCAN_QUEUE_UPSTREAM_PREFIX " %s is not cached yet and cannot be fetched from the "
                                            "pull-through cache's upstream (%s)",
                 what, why[0] ? why : berth_strerror(rc));
    *failed = true;
    return BERTH_OK;
}

/* Make the config and layer blobs present before an engine reads them
 * (see fetch_blob in scan_run.h). *failed when one cannot be had. */
static enum berth_err fetch_missing(struct store *st, const struct scan_engine *eng,
                                    const char *repo, const struct manifest_info *info,
                                    struct scan_outcome *out, bool *failed)
{
    *failed = false;
    enum berth_err rc = BERTH_OK;
    if (info->has_config) {
        rc = fetch_one(st, eng, repo, &info->config.digest, "the config blob", out, failed);
    }
    for (size_t i = 0; rc == BERTH_OK && !*failed && i < info->ref_count; i++) {
        if (info->refs[i].non_distributable) {
            continue; /* never pushed, never fetched */
        }
        char what[64];
        snprintf(what, sizeof(what), "layer %zu of %zu", i + 1, info->ref_count);
        rc = fetch_one(st, eng, repo, &info->refs[i].digest, what, out, failed);
    }
    return rc;
}

static int first_tag(void *arg, const char *name)
{
    str_copy(arg, NAMES_TAG_MAX + 1, name);
    return 1;
}

static enum berth_err run_hook(struct store *st, const struct scan_engine *eng, const char *repo,
                               const struct meta_manifest *mf, const struct manifest_info *info,
                               const struct image_files *files, size_t manifest_len,
                               struct scan_outcome *out)
{
    char tag[NAMES_TAG_MAX + 1] = "";
    struct meta *m;
    enum berth_err got = store_meta_get(st, &m);
    if (got != BERTH_OK) {
        return got;
    }
    enum berth_err rc = meta_manifest_tags(m, mf->id, first_tag, tag);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct scan_hook_blob *blobs = calloc(files->layer_count + 2, sizeof(*blobs));
    if (blobs == NULL) {
        return BERTH_ENOMEM;
    }
    size_t n = 0;
    blobs[n++] = (struct scan_hook_blob){mf->digest, files->manifest};
    if (info->has_config) {
        blobs[n++] = (struct scan_hook_blob){info->config.digest.str, files->config};
    }
    for (size_t i = 0; i < files->layer_count; i++) {
        if (files->layers[i][0] != '\0') {
            blobs[n++] = (struct scan_hook_blob){info->refs[i].digest.str, files->layers[i]};
        }
    }
    char work[4096];
    snprintf(work, sizeof(work), "%s/%s", eng->root, SCAN_WORK_DIR);
    struct scan_hook_options opt = {
        .command = eng->hook,
        .work_dir = work,
        .timeout_ms = eng->hook_timeout_ms,
        .max_output = eng->hook_max_output,
        .cancel = eng->cancel,
    };
    struct scan_hook_image img = {
        .repo = repo,
        .digest = mf->digest,
        .media_type = mf->media_type,
        .tag = tag[0] ? tag : NULL,
        .manifest_size = (int64_t)manifest_len,
        .blobs = blobs,
        .blob_count = n,
    };
    struct scan_hook_result r;
    rc = scan_hook_run(&opt, &img, &r);
    free(blobs);
    if (rc != BERTH_OK) {
        return rc;
    }
    out->complete = r.complete;
    str_copy(out->description, sizeof(out->description), r.description);
    out->source_updated_at_ms = r.source_updated_at_ms;
    if (r.findings != NULL) {
        /* the hook's list replaces the empty one scan_run_image made */
        json_decref(out->findings);
        out->findings = r.findings;
    }
    return BERTH_OK;
}

static enum berth_err run_builtin(struct store *st, const struct scan_engine *eng,
                                  const struct manifest_info *info, const struct image_files *files,
                                  struct scan_outcome *out)
{
    if (eng->vulndb_shared) {
        /* a failure keeps the copy there is (logged by scan_dbsync_update) */
        (void)scan_dbsync_update(st, eng->root, NULL);
    }
    struct scan_layer *layers =
        calloc(files->layer_count ? files->layer_count : 1, sizeof(*layers));
    if (layers == NULL) {
        return BERTH_ENOMEM;
    }
    size_t n = 0;
    for (size_t i = 0; i < files->layer_count; i++) {
        if (files->layers[i][0] != '\0') {
            layers[n++] = (struct scan_layer){files->layers[i], info->refs[i].media_type};
        }
    }
    struct vulndb *db = NULL;
    struct scan_result *res = NULL;
    enum berth_err rc = vulndb_open(eng->root, &db);
    if (rc != BERTH_OK && rc != BERTH_ENOTFOUND) {
        outcome_fail(out, "VulnerabilityDatabaseError: cannot open %s/%s (%s)", eng->root,
                     VULNDB_FILE, berth_strerror(rc));
        rc = BERTH_OK;
        goto out;
    }
    struct scan_limits lim;
    scan_limits_default(&lim);
    lim.max_image_bytes = eng->max_image_bytes;
    lim.cancel = eng->cancel;
    rc = scan_builtin_run(layers, n, db, &lim, &res);
    if (rc == BERTH_EDB || rc == BERTH_EBUSY) {
        if (rc == BERTH_EDB || !(eng->cancel && atomic_load(eng->cancel))) {
            /* the database failed while matching (EBUSY: locked) */
            outcome_fail(out, "VulnerabilityDatabaseError: reading %s failed (%s)", VULNDB_FILE,
                         berth_strerror(rc));
            rc = BERTH_OK;
        }
        goto out;
    }
    if (rc != BERTH_OK) {
        goto out;
    }
    out->complete = res->status == SCAN_STATUS_COMPLETE;
    str_copy(out->description, sizeof(out->description), res->description);
    out->completed_at_ms = res->completed_at_ms;
    out->source_updated_at_ms = res->vuln_source_updated_at_ms;
    for (size_t i = 0; i < res->findings.count; i++) {
        if (json_array_append_new(out->findings, scan_finding_to_json(&res->findings.items[i])) !=
            0) {
            rc = BERTH_ENOMEM;
            break;
        }
    }
out:
    scan_result_free(res);
    vulndb_close(db);
    free(layers);
    return rc;
}

enum berth_err scan_run_image(struct store *st, const struct scan_engine *eng, const char *repo,
                              const struct meta_manifest *mf, struct scan_outcome *out)
{
    memset(out, 0, sizeof(*out));
    out->source_updated_at_ms = -1;
    out->findings = json_array();
    if (out->findings == NULL) {
        return BERTH_ENOMEM;
    }
    struct digest d;
    char *bytes = NULL;
    size_t len = 0;
    struct manifest_info *info = NULL;
    struct image_files files;
    memset(&files, 0, sizeof(files));
    char why[256];
    enum berth_err rc = digest_parse(mf->digest, &d);
    if (rc == BERTH_OK) {
        rc = blob_local_path(store_blobs(st), &d, files.manifest, sizeof(files.manifest));
    }
    if (rc == BERTH_OK) {
        rc = blob_read_all(store_blobs(st), &d, store_options(st)->manifest_max, &bytes, &len);
    }
    if (rc == BERTH_ETOOBIG || rc == BERTH_EINVAL || rc == BERTH_EUNSUPPORTED) {
        outcome_fail(out, "ManifestError: the manifest cannot be read (%s)", berth_strerror(rc));
        rc = BERTH_OK;
        goto done;
    }
    if (rc != BERTH_OK) {
        goto out;
    }
    rc = manifest_parse(bytes, len, mf->media_type, &info, why, sizeof(why));
    if (rc == BERTH_EINVAL) {
        outcome_fail(out, "ManifestError: %s", why);
        rc = BERTH_OK;
        goto done;
    }
    if (rc == BERTH_OK && (info->is_index || !info->has_config)) {
        outcome_fail(out, "UnsupportedImageError: not a container image manifest");
        goto done;
    }
    if (rc == BERTH_OK && eng->fetch_blob != NULL) {
        bool failed = false;
        rc = fetch_missing(st, eng, repo, info, out, &failed);
        if (rc == BERTH_OK && failed) {
            goto done;
        }
    }
    if (rc == BERTH_OK) {
        rc = locate(st, info, &files);
    }
    if (rc != BERTH_OK) {
        goto out;
    }
    if (eng->hook != NULL && eng->hook[0] != '\0') {
        rc = run_hook(st, eng, repo, mf, info, &files, len, out);
    } else {
        rc = run_builtin(st, eng, info, &files, out);
    }
done:
    if (rc == BERTH_OK && out->completed_at_ms == 0) {
        out->completed_at_ms = time_now_ms();
    }
    if (rc == BERTH_OK && !out->complete) {
        json_array_clear(out->findings); /* a failed scan reports no findings */
    }
    if (rc == BERTH_OK) {
        printable(out->description);
    }
    if (rc == BERTH_OK) {
        rc = classify(out);
    }
out:
    free(files.layers);
    manifest_info_free(info);
    free(bytes);
    if (rc != BERTH_OK) {
        scan_outcome_fini(out);
    }
    return rc;
}

enum berth_err scan_run_record(struct store *st, int64_t manifest_id, int64_t job_id,
                               const struct scan_outcome *o)
{
    struct meta *m;
    enum berth_err got = store_meta_get(st, &m);
    if (got != BERTH_OK) {
        return got;
    }
    size_t count = json_array_size(o->findings);
    struct meta_scan_finding *rows = calloc(count ? count : 1, sizeof(*rows));
    enum berth_err rc = rows ? BERTH_OK : BERTH_ENOMEM;
    if (count > 0 && o->severities == NULL) {
        rc = BERTH_EINVAL; /* not an outcome of scan_run_image */
    }
    /* serialise before taking the write lock */
    for (size_t i = 0; rc == BERTH_OK && i < count; i++) {
        rows[i].severity = o->severities[i];
        rows[i].json = json_dumps(json_array_get(o->findings, i), JSON_COMPACT);
        if (rows[i].json == NULL) {
            rc = BERTH_ENOMEM;
        }
    }
    struct meta_scan_outcome rec = {
        .status = o->complete ? META_SCAN_COMPLETE : META_SCAN_FAILED,
        .description = o->description,
        .completed_at = o->completed_at_ms,
        .source_updated_at = o->source_updated_at_ms,
        .findings = rows,
        .finding_count = count,
    };
    memcpy(rec.counts, o->counts, sizeof(rec.counts));
    bool requeued = false;
    if (rc == BERTH_OK) {
        rc = meta_begin(m);
        if (rc == BERTH_OK) {
            rc = meta_scan_store(m, manifest_id, &rec);
        }
        if (rc == BERTH_OK && job_id > 0) {
            rc = meta_scan_job_finish(m, job_id, &requeued);
        }
        if (rc == BERTH_OK) {
            rc = meta_commit(m);
        } else {
            meta_rollback(m);
        }
    }
    if (rc == BERTH_OK && requeued) {
        log_info("event=scan_requeued manifest_id=%lld reason=requested_while_running",
                 (long long)manifest_id);
    }
    for (size_t i = 0; rows != NULL && i < count; i++) {
        free((char *)rows[i].json);
    }
    free(rows);
    return rc;
}

/* The manifest row a job names, if it still exists. */
static enum berth_err job_manifest(struct meta *m, const struct meta_scan_job *job,
                                   struct meta_manifest *mf)
{
    struct meta_repo repo;
    enum berth_err rc = meta_repo_get(m, job->repo, &repo);
    if (rc == BERTH_OK) {
        rc = meta_manifest_get(m, repo.id, job->digest, mf);
    }
    if (rc == BERTH_OK && mf->id != job->manifest_id) {
        rc = BERTH_ENOTFOUND;
    }
    return rc;
}

enum berth_err scan_run_next(struct store *st, const struct scan_engine *eng, bool *ran)
{
    *ran = false;
    struct meta *m;
    enum berth_err got = store_meta_get(st, &m);
    if (got != BERTH_OK) {
        return got;
    }
    struct meta_scan_job job;
    enum berth_err rc = eng->lease_holder != NULL
                            ? meta_scan_job_claim_leased(m, time_now_ms(), eng->lease_holder,
                                                         eng->lease_ttl_ms, &job)
                            : meta_scan_job_claim(m, time_now_ms(), &job);
    if (rc == BERTH_ENOTFOUND) {
        return BERTH_OK;
    }
    if (rc != BERTH_OK) {
        return rc;
    }
    *ran = true;
    struct meta_manifest mf;
    rc = job_manifest(m, &job, &mf);
    if (rc == BERTH_ENOTFOUND) {
        /* deleted between the claim and now: its job went with it */
        meta_scan_job_delete(m, job.id);
        return BERTH_OK;
    }
    if (rc != BERTH_OK) {
        meta_scan_job_release(m, job.id);
        return rc;
    }
    struct scan_outcome o;
    int64_t started_ms = time_now_ms();
    if (job.attempts > SCAN_RUN_MAX_ATTEMPTS) {
        memset(&o, 0, sizeof(o));
        o.source_updated_at_ms = -1;
        o.completed_at_ms = time_now_ms();
        o.findings = json_array();
        outcome_fail(&o,
                     "ScanError: the scan was interrupted %lld times (the server stopped "
                     "while it ran); start a new scan to try again",
                     (long long)(job.attempts - 1));
        rc = o.findings ? BERTH_OK : BERTH_ENOMEM;
    } else {
        fault_hold("scan"); /* tests: the scan stays IN_PROGRESS while held */
        rc = scan_run_image(st, eng, job.repo, &mf, &o);
    }
    if (rc == BERTH_EBUSY && eng->cancel != NULL && atomic_load(eng->cancel)) {
        log_info("event=scan_cancelled repo=%s digest=%s", job.repo, job.digest);
        meta_scan_job_release(m, job.id);
        return BERTH_OK;
    }
    if (rc == BERTH_ENOTFOUND) {
        log_info("event=scan_skipped repo=%s digest=%s reason=image_deleted", job.repo, job.digest);
        meta_scan_job_delete(m, job.id);
        return BERTH_OK;
    }
    if (rc != BERTH_OK) {
        /* an internal failure is reported as the scan's outcome, so a job
         * can never be retried forever */
        memset(&o, 0, sizeof(o));
        o.source_updated_at_ms = -1;
        o.completed_at_ms = time_now_ms();
        o.findings = json_array();
        outcome_fail(&o, "ScanError: internal error (%s)", berth_strerror(rc));
        log_error("event=scan_error repo=%s digest=%s err=%s", job.repo, job.digest,
                  berth_strerror(rc));
        if (o.findings == NULL) {
            meta_scan_job_release(m, job.id);
            return BERTH_ENOMEM;
        }
    }
    rc = scan_run_record(st, mf.id, job.id, &o);
    if (rc == BERTH_ENOTFOUND) {
        log_info("event=scan_skipped repo=%s digest=%s reason=image_deleted", job.repo, job.digest);
        rc = BERTH_OK;
    } else if (rc == BERTH_OK) {
        char dv[600];
        log_info("event=scan_recorded repo=%s digest=%s status=%s findings=%zu description=%s",
                 job.repo, job.digest, o.complete ? "COMPLETE" : "FAILED",
                 json_array_size(o.findings), log_value(o.description, dv, sizeof(dv)));
        if (eng->on_recorded != NULL) {
            eng->on_recorded(eng->on_recorded_arg, o.complete, time_now_ms() - started_ms);
        }
    } else {
        meta_scan_job_release(m, job.id);
    }
    scan_outcome_fini(&o);
    return rc;
}
