/*
 * Unit tests for scan/engine/run.c over a real store: how recording an
 * outcome finishes its job, in particular when a new scan was asked for
 * while the job ran (it must run again, not be dropped), and what
 * scan_run_image makes of a hook's result (severities counted once,
 * descriptions made printable).
 */
#include "unit.h"

#include "common/fileio.h"
#include "common/log.h"
#include "storage/spec/manifest.h"
#include "storage/meta/meta_scan.h"
#include "common/rand.h"
#include "storage/registry/registry.h"
#include "scan/engine/scan_run.h"
#include "storage/store/store.h"
#include "storage/store/upload.h"

static char root[600];

static struct store *open_store(void)
{
    struct store_options opt = {.root = root,
                                .fsync = false,
                                .auto_create = true,
                                .upload_expiry_ms = 86400000,
                                .manifest_max = 4 << 20};
    struct store *st = NULL;
    CHECK_INT(store_open(&opt, &st), BERTH_OK);
    return st;
}

/* An image manifest row (no blob file: recording does not read it). */
static int64_t add_image(struct meta *m, const char *repo, const char *digest)
{
    struct meta_repo r;
    CHECK_INT(meta_repo_create(m, repo, 1000, &r), BERTH_OK);
    int64_t blob_id = 0;
    CHECK_INT(meta_blob_upsert(m, digest, 100, 1000, &blob_id), BERTH_OK);
    struct meta_manifest mf;
    memset(&mf, 0, sizeof(mf));
    mf.repo_id = r.id;
    mf.blob_id = blob_id;
    snprintf(mf.digest, sizeof(mf.digest), "%s", digest);
    snprintf(mf.media_type, sizeof(mf.media_type), "application/vnd.oci.image.manifest.v1+json");
    snprintf(mf.config_media_type, sizeof(mf.config_media_type), META_SCAN_CONFIG_OCI);
    mf.size = 100;
    mf.pushed_at = 1000;
    int64_t id = 0;
    CHECK_INT(meta_manifest_insert(m, &mf, NULL, &id), BERTH_OK);
    return id;
}

static void enqueue(struct meta *m, int64_t manifest_id, int64_t now, bool want_queued)
{
    bool queued = !want_queued;
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_scan_enqueue(m, manifest_id, now, true, &queued), BERTH_OK);
    CHECK_INT(meta_commit(m), BERTH_OK);
    CHECK(queued == want_queued);
}

static int64_t waiting_jobs(struct meta *m, int64_t *total)
{
    int64_t waiting = -1;
    CHECK_INT(meta_scan_jobs_count(m, &waiting, total), BERTH_OK);
    return waiting;
}

static void outcome_init(struct scan_outcome *o, const char *description)
{
    memset(o, 0, sizeof(*o));
    o->complete = true;
    snprintf(o->description, sizeof(o->description), "%s", description);
    o->completed_at_ms = 5000;
    o->source_updated_at_ms = -1;
    o->findings = json_pack("[{s:s, s:s}]", "name", "CVE-1", "severity", "HIGH");
    o->severities = calloc(1, sizeof(*o->severities));
    if (o->severities != NULL) {
        o->severities[0] = SCAN_SEVERITY_HIGH;
    }
    o->counts[SCAN_SEVERITY_HIGH] = 1;
}

static void test_request_during_scan(void)
{
    struct store *st = open_store();
    struct meta *m = st ? store_meta(st) : NULL;
    CHECK(m != NULL);
    if (m == NULL) {
        store_close(st);
        return;
    }
    int64_t id = add_image(m, "run/app",
                           "sha256:" /* 64 hex */
                           "1111111111111111111111111111111111111111111111111111111111111111");
    enqueue(m, id, 2000, true);
    struct meta_scan_job job;
    CHECK_INT(meta_scan_job_claim(m, 2100, &job), BERTH_OK);
    /* StartImageScan while the job runs: it must run again afterwards */
    enqueue(m, id, 2200, true);
    int64_t total = -1;
    CHECK_INT(waiting_jobs(m, &total), 0);
    CHECK_INT(total, 1);

    struct scan_outcome o;
    outcome_init(&o, "first");
    CHECK_INT(scan_run_record(st, id, job.id, &o), BERTH_OK);
    scan_outcome_fini(&o);
    CHECK_INT(waiting_jobs(m, &total), 1);
    CHECK_INT(total, 1);
    /* the request is still pending: the image shows IN_PROGRESS */
    struct meta_scan scan;
    CHECK_INT(meta_scan_get(m, id, &scan), BERTH_OK);
    CHECK_INT(scan.status, META_SCAN_IN_PROGRESS);
    CHECK_INT(scan.requested_at, 2200);

    /* the second run is a fresh job (attempts start again) and then it is done */
    struct meta_scan_job again;
    memset(&again, 0, sizeof(again));
    CHECK_INT(meta_scan_job_claim(m, 3000, &again), BERTH_OK);
    CHECK_INT(again.id, job.id);
    CHECK_INT(again.attempts, 1);
    outcome_init(&o, "second");
    CHECK_INT(scan_run_record(st, id, again.id, &o), BERTH_OK);
    scan_outcome_fini(&o);
    CHECK_INT(waiting_jobs(m, &total), 0);
    CHECK_INT(total, 0);
    CHECK_INT(meta_scan_get(m, id, &scan), BERTH_OK);
    CHECK_INT(scan.status, META_SCAN_COMPLETE);
    CHECK_STR(scan.description, "second");
    CHECK_INT(scan.counts[SCAN_SEVERITY_HIGH], 1);

    /* a request while the job waits adds nothing; the one run covers it */
    enqueue(m, id, 4000, true);
    enqueue(m, id, 4100, false);
    CHECK_INT(meta_scan_job_claim(m, 4200, &job), BERTH_OK);
    outcome_init(&o, "third");
    CHECK_INT(scan_run_record(st, id, job.id, &o), BERTH_OK);
    scan_outcome_fini(&o);
    CHECK_INT(waiting_jobs(m, &total), 0);
    CHECK_INT(total, 0);

    /* the wall clock going back does not lose a request made during the run */
    enqueue(m, id, 9000, true);
    CHECK_INT(meta_scan_job_claim(m, 9000, &job), BERTH_OK);
    enqueue(m, id, 8000, true);
    outcome_init(&o, "fourth");
    CHECK_INT(scan_run_record(st, id, job.id, &o), BERTH_OK);
    scan_outcome_fini(&o);
    CHECK_INT(waiting_jobs(m, &total), 1);
    /* and a job claimed before the time it was queued at finishes once */
    CHECK_INT(meta_scan_job_claim(m, 7000, &job), BERTH_OK);
    outcome_init(&o, "fifth");
    CHECK_INT(scan_run_record(st, id, job.id, &o), BERTH_OK);
    scan_outcome_fini(&o);
    CHECK_INT(waiting_jobs(m, &total), 0);
    CHECK_INT(total, 0);
    store_close(st);
}

static struct digest push_blob(struct store *st, const char *repo, const char *data)
{
    struct meta_repo r;
    struct registry_status s;
    CHECK_INT(registry_repo(st, repo, true, &r, &s), BERTH_OK);
    char uuid[RAND_UUID_LEN + 1];
    CHECK_INT(upload_create(st, r.id, DIGEST_SHA256, uuid), BERTH_OK);
    struct upload *u = NULL;
    CHECK_INT(upload_acquire(st, uuid, r.id, &u), BERTH_OK);
    CHECK_INT(upload_write(u, data, strlen(data)), BERTH_OK);
    struct digest d;
    digest_buffer(DIGEST_SHA256, data, strlen(data), &d);
    struct meta_blob b;
    CHECK_INT(upload_complete(u, &d, &b), BERTH_OK);
    return d;
}

/* An image whose layer is not read (the hook decides the outcome). */
static bool push_image(struct store *st, const char *repo, struct meta_manifest *mf)
{
    static const char cfg_text[] = "{\"architecture\":\"amd64\",\"os\":\"linux\"}";
    struct digest cfg = push_blob(st, repo, cfg_text);
    struct digest layer = push_blob(st, repo, "a layer");
    char man[1024];
    snprintf(man, sizeof(man),
             "{\"schemaVersion\":2,\"mediaType\":\"" MANIFEST_OCI "\","
             "\"config\":{\"mediaType\":\"" META_SCAN_CONFIG_OCI "\","
             "\"digest\":\"%s\",\"size\":%zu},"
             "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\","
             "\"digest\":\"%s\",\"size\":7}]}",
             cfg.str, strlen(cfg_text), layer.str);
    const char *tags[] = {"v"};
    struct registry_put in = {
        .repo = repo, .body = man, .len = strlen(man), .tags = tags, .tag_count = 1};
    struct registry_put_result res;
    struct registry_status s;
    CHECK_INT(registry_manifest_put(st, &in, &res, &s), BERTH_OK);
    enum berth_err rc = registry_manifest_get(st, repo, "v", mf, &s);
    CHECK_INT(rc, BERTH_OK);
    return rc == BERTH_OK;
}

static void run_hook(struct store *st, const struct meta_manifest *mf, const char *hook,
                     struct scan_outcome *o)
{
    struct scan_engine eng = {
        .root = root,
        .hook = hook,
        .hook_timeout_ms = 20000,
        .hook_max_output = 65536,
        .max_image_bytes = 1 << 20,
    };
    CHECK_INT(scan_run_image(st, &eng, "run/hook", mf, o), BERTH_OK);
}

static void test_hook_outcome(void)
{
    struct store *st = open_store();
    struct meta_manifest mf;
    if (st == NULL || !push_image(st, "run/hook", &mf)) {
        store_close(st);
        return;
    }
    /* severities and counts, computed once for the store, the CLI and the API */
    struct scan_outcome o;
    run_hook(st, &mf,
             "/bin/sh -c 'echo \"[{\\\"name\\\":\\\"CVE-1\\\",\\\"severity\\\":\\\"HIGH\\\"},"
             "{\\\"name\\\":\\\"CVE-2\\\",\\\"severity\\\":\\\"LOW\\\"},"
             "{\\\"name\\\":\\\"CVE-3\\\",\\\"severity\\\":\\\"HIGH\\\"}]\"'",
             &o);
    CHECK(o.complete);
    CHECK_INT(json_array_size(o.findings), 3);
    CHECK(o.severities != NULL);
    if (o.severities != NULL) {
        CHECK_INT(o.severities[0], SCAN_SEVERITY_HIGH);
        CHECK_INT(o.severities[1], SCAN_SEVERITY_LOW);
        CHECK_INT(o.severities[2], SCAN_SEVERITY_HIGH);
    }
    CHECK_INT(o.counts[SCAN_SEVERITY_HIGH], 2);
    CHECK_INT(o.counts[SCAN_SEVERITY_LOW], 1);
    CHECK_INT(o.counts[SCAN_SEVERITY_CRITICAL], 0);
    CHECK_INT(scan_run_record(st, mf.id, 0, &o), BERTH_OK);
    scan_outcome_fini(&o);
    struct meta_scan scan;
    struct meta *m = store_meta(st);
    CHECK_INT(meta_scan_get(m, mf.id, &scan), BERTH_OK);
    CHECK_INT(scan.finding_count, 3);
    CHECK_INT(scan.counts[SCAN_SEVERITY_HIGH], 2);
    CHECK_INT(scan.counts[SCAN_SEVERITY_LOW], 1);

    /* the hook's stderr in the description: control characters and
     * malformed UTF-8 become '?', other characters stay */
    run_hook(st, &mf, "/bin/sh -c 'printf \"bad\\033[0m\\001 \\303\\251 \\377\\n\" >&2; exit 1'",
             &o);
    CHECK(!o.complete);
    CHECK_STR(o.description, "HookError: the scan hook exited with status 1: bad?[0m? \xc3\xa9 ?");
    CHECK_INT(json_array_size(o.findings), 0);
    CHECK(o.severities == NULL);
    CHECK_INT(o.counts[SCAN_SEVERITY_HIGH], 0);
    CHECK_INT(scan_run_record(st, mf.id, 0, &o), BERTH_OK);
    scan_outcome_fini(&o);
    CHECK_INT(meta_scan_get(m, mf.id, &scan), BERTH_OK);
    CHECK_INT(scan.status, META_SCAN_FAILED);
    CHECK_STR(scan.description,
              "HookError: the scan hook exited with status 1: bad?[0m? \xc3\xa9 ?");
    CHECK_INT(scan.finding_count, 0);
    store_close(st);
}

int main(void)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s", unit_tmpdir());
    snprintf(root, sizeof(root), "%s/root", dir);
    log_set_level(LOG_WARN);
    RUN(test_request_during_scan);
    RUN(test_hook_outcome);
    file_remove_tree(dir);
    return unit_report("test_scan_run");
}
