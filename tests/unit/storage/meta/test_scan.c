/*
 * Unit tests for storage/meta/scan.c: settings, queueing (once per image),
 * claims, releases and resets, stored outcomes with counts and findings
 * pages, deletion cascades, whole-repository rescans and retries.
 */
#include "unit.h"
#include "unit_meta.h"

#include "storage/meta/meta_lease.h"
#include "storage/meta/meta_scan.h"
#include "common/timeutil.h"

static char path[600];

#define add_manifest(...) unit_meta_add_manifest(__VA_ARGS__)
#define digest(n) unit_meta_digest(n)

static int64_t count(struct meta *m, const char *what)
{
    int64_t waiting = -1, total = -1;
    CHECK_INT(meta_scan_jobs_count(m, &waiting, &total), BERTH_OK);
    return strcmp(what, "waiting") == 0 ? waiting : total;
}

static void test_settings(void)
{
    struct meta *m = NULL;
    CHECK_INT(unit_meta_open_db(path, &m), BERTH_OK);
    char *v = (char *)"x";
    CHECK_INT(meta_setting_get(m, "nothing", &v), BERTH_OK);
    CHECK(v == NULL);
    CHECK_INT(meta_setting_set(m, "scanning_configuration", "{\"a\":1}", 5), BERTH_OK);
    CHECK_INT(meta_setting_set(m, "scanning_configuration", "{\"a\":2}", 6), BERTH_OK);
    CHECK_INT(meta_setting_get(m, "scanning_configuration", &v), BERTH_OK);
    CHECK_STR(v, "{\"a\":2}");
    free(v);
    /* take: the value back and the setting gone; then nothing to take */
    CHECK_INT(meta_setting_take(m, "scanning_configuration", &v), BERTH_OK);
    CHECK_STR(v, "{\"a\":2}");
    free(v);
    CHECK_INT(meta_setting_get(m, "scanning_configuration", &v), BERTH_OK);
    CHECK(v == NULL);
    v = (char *)"x";
    CHECK_INT(meta_setting_take(m, "scanning_configuration", &v), BERTH_OK);
    CHECK(v == NULL);
    /* inside an open transaction it leaves the commit to its caller */
    CHECK_INT(meta_setting_set(m, "k", "v", 7), BERTH_OK);
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_setting_take(m, "k", &v), BERTH_OK);
    CHECK_STR(v, "v");
    free(v);
    meta_rollback(m);
    CHECK_INT(meta_setting_get(m, "k", &v), BERTH_OK);
    CHECK_STR(v, "v");
    free(v);
    meta_close(m);
}

static void test_is_image(void)
{
    CHECK(meta_scan_is_image(false, META_SCAN_CONFIG_OCI));
    CHECK(meta_scan_is_image(false, META_SCAN_CONFIG_DOCKER));
    CHECK(!meta_scan_is_image(true, META_SCAN_CONFIG_OCI));
    CHECK(!meta_scan_is_image(false, "application/vnd.cncf.helm.config.v1+json"));
    CHECK(!meta_scan_is_image(false, ""));
    CHECK(!meta_scan_is_image(false, NULL));
}

/* A page of findings as meta_scan_findings reports them. */
struct page {
    char names[8][64];
    int64_t seqs[8];
    int n;
};

static int collect(void *arg, int64_t seq, const char *json)
{
    struct page *p = arg;
    if (p->n < 8) {
        snprintf(p->names[p->n], sizeof(p->names[0]), "%s", json);
        p->seqs[p->n++] = seq;
    }
    return 0;
}

static void test_queue(void)
{
    struct meta *m = NULL;
    CHECK_INT(unit_meta_open_db(path, &m), BERTH_OK);
    struct meta_repo r;
    CHECK_INT(meta_repo_create(m, "q/app", 1000, &r), BERTH_OK);
    int64_t a = add_manifest(m, r.id, digest(1), false, META_SCAN_CONFIG_OCI);
    int64_t b = add_manifest(m, r.id, digest(2), false, META_SCAN_CONFIG_DOCKER);

    struct meta_scan scan;
    CHECK_INT(meta_scan_get(m, a, &scan), BERTH_ENOTFOUND);
    bool queued = false;
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_scan_enqueue(m, a, 2000, true, &queued), BERTH_OK);
    CHECK(queued);
    /* a second request while one waits adds nothing */
    CHECK_INT(meta_scan_enqueue(m, a, 2500, true, &queued), BERTH_OK);
    CHECK(!queued);
    CHECK_INT(meta_scan_enqueue(m, b, 2600, false, &queued), BERTH_OK);
    CHECK(queued);
    CHECK_INT(meta_commit(m), BERTH_OK);
    CHECK_INT(count(m, "total"), 2);
    CHECK_INT(meta_scan_get(m, a, &scan), BERTH_OK);
    CHECK_INT(scan.status, META_SCAN_IN_PROGRESS);
    CHECK_INT(scan.requested_at, 2500);
    CHECK_INT(scan.completed_at, 0);
    CHECK_INT(scan.source_updated_at, -1);
    CHECK_INT(meta_scan_get(m, b, &scan), BERTH_OK);
    CHECK_INT(scan.requested_at, 0); /* not counted against the quota */

    /* claims go oldest first, once each */
    struct meta_scan_job j1, j2, j3;
    CHECK_INT(meta_scan_job_claim(m, 3000, &j1), BERTH_OK);
    CHECK_INT(j1.manifest_id, a);
    CHECK_STR(j1.repo, "q/app");
    CHECK_STR(j1.digest, digest(1));
    CHECK_INT(j1.attempts, 1);
    CHECK_INT(meta_scan_job_claim(m, 3000, &j2), BERTH_OK);
    CHECK_INT(j2.manifest_id, b);
    CHECK_INT(meta_scan_job_claim(m, 3000, &j3), BERTH_ENOTFOUND);
    CHECK_INT(count(m, "waiting"), 0);
    /* released (cancelled): claimable again, the attempt not counted */
    CHECK_INT(meta_scan_job_release(m, j2.id), BERTH_OK);
    CHECK_INT(meta_scan_job_claim(m, 3100, &j3), BERTH_OK);
    CHECK_INT(j3.id, j2.id);
    CHECK_INT(j3.attempts, 1);
    /* a restart unclaims what a dead process held; attempts stay counted */
    int64_t reset = 0;
    CHECK_INT(meta_scan_jobs_reset(m, &reset), BERTH_OK);
    CHECK_INT(reset, 2);
    CHECK_INT(meta_scan_job_claim(m, 3200, &j1), BERTH_OK);
    CHECK_INT(j1.attempts, 2);

    /* record the outcome: COMPLETE with findings in order */
    static const struct meta_scan_finding f[] = {
        {SCAN_SEVERITY_CRITICAL, "{\"name\":\"CVE-3\",\"severity\":\"CRITICAL\"}"},
        {SCAN_SEVERITY_HIGH, "{\"name\":\"CVE-1\",\"severity\":\"HIGH\"}"},
        {SCAN_SEVERITY_HIGH, "{\"name\":\"CVE-2\",\"severity\":\"HIGH\"}"},
        {SCAN_SEVERITY_UNDEFINED, "{\"name\":\"CVE-4\",\"severity\":\"UNDEFINED\"}"},
    };
    struct meta_scan_outcome o = {META_SCAN_COMPLETE, "done", 4000, 3500, f, 4, {0}};
    o.counts[SCAN_SEVERITY_CRITICAL] = 1;
    o.counts[SCAN_SEVERITY_HIGH] = 2;
    o.counts[SCAN_SEVERITY_UNDEFINED] = 1;
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_scan_job_delete(m, j1.id), BERTH_OK);
    CHECK_INT(meta_scan_store(m, a, &o), BERTH_OK);
    CHECK_INT(meta_commit(m), BERTH_OK);
    CHECK_INT(meta_scan_job_delete(m, j1.id), BERTH_ENOTFOUND);
    CHECK_INT(meta_scan_get(m, a, &scan), BERTH_OK);
    CHECK_INT(scan.status, META_SCAN_COMPLETE);
    CHECK_STR(scan.description, "done");
    CHECK_INT(scan.requested_at, 2500);
    CHECK_INT(scan.completed_at, 4000);
    CHECK_INT(scan.source_updated_at, 3500);
    CHECK_INT(scan.finding_count, 4);
    CHECK_INT(scan.counts[SCAN_SEVERITY_CRITICAL], 1);
    CHECK_INT(scan.counts[SCAN_SEVERITY_HIGH], 2);
    CHECK_INT(scan.counts[SCAN_SEVERITY_UNDEFINED], 1);
    CHECK_INT(scan.counts[SCAN_SEVERITY_LOW], 0);
    CHECK_STR(meta_scan_status_name(scan.status), "COMPLETE");

    /* pages */
    struct page p;
    memset(&p, 0, sizeof(p));
    bool more = false;
    CHECK_INT(meta_scan_findings(m, a, -1, 3, collect, &p, &more), BERTH_OK);
    CHECK_INT(p.n, 3);
    CHECK(more);
    CHECK_INT(p.seqs[0], 0);
    CHECK_STR(p.names[0], "{\"name\":\"CVE-3\",\"severity\":\"CRITICAL\"}");
    CHECK_INT(p.seqs[2], 2);
    memset(&p, 0, sizeof(p));
    CHECK_INT(meta_scan_findings(m, a, 2, 3, collect, &p, &more), BERTH_OK);
    CHECK_INT(p.n, 1);
    CHECK(!more);
    CHECK_STR(p.names[0], "{\"name\":\"CVE-4\",\"severity\":\"UNDEFINED\"}");

    /* a rescan replaces status, counts and findings; FAILED has none */
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_scan_enqueue(m, a, 5000, false, &queued), BERTH_OK);
    CHECK_INT(meta_commit(m), BERTH_OK);
    CHECK_INT(meta_scan_get(m, a, &scan), BERTH_OK);
    CHECK_INT(scan.status, META_SCAN_IN_PROGRESS);
    CHECK_STR(scan.description, "");
    CHECK_INT(scan.requested_at, 2500); /* a rescan that does not count */
    struct meta_scan_outcome failed = {META_SCAN_FAILED, "LayerError: x", 6000, -1, NULL, 0, {0}};
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_scan_store(m, a, &failed), BERTH_OK);
    CHECK_INT(meta_commit(m), BERTH_OK);
    CHECK_INT(meta_scan_get(m, a, &scan), BERTH_OK);
    CHECK_INT(scan.status, META_SCAN_FAILED);
    CHECK_INT(scan.finding_count, 0);
    CHECK_INT(scan.counts[SCAN_SEVERITY_HIGH], 0);
    CHECK_INT(scan.source_updated_at, -1);
    memset(&p, 0, sizeof(p));
    CHECK_INT(meta_scan_findings(m, a, -1, 10, collect, &p, &more), BERTH_OK);
    CHECK_INT(p.n, 0);
    struct meta_scan_outcome weird = {META_SCAN_IN_PROGRESS, "", 1, -1, NULL, 0, {0}};
    CHECK_INT(meta_scan_store(m, a, &weird), BERTH_EINVAL);

    /* a scan of a manifest that is gone is not recorded */
    CHECK_INT(meta_scan_store(m, 999999, &failed), BERTH_ENOTFOUND);

    /* deleting the image takes its job, scan and findings with it */
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_scan_store(m, a, &o), BERTH_OK);
    CHECK_INT(meta_scan_enqueue(m, a, 7000, true, &queued), BERTH_OK);
    CHECK_INT(meta_commit(m), BERTH_OK);
    CHECK_INT(count(m, "total"), 2);
    CHECK_INT(meta_manifest_delete(m, a), BERTH_OK);
    CHECK_INT(meta_scan_get(m, a, &scan), BERTH_ENOTFOUND);
    CHECK_INT(count(m, "total"), 1);
    memset(&p, 0, sizeof(p));
    CHECK_INT(meta_scan_findings(m, a, -1, 10, collect, &p, &more), BERTH_OK);
    CHECK_INT(p.n, 0);
    /* and the repository's deletion the rest */
    CHECK_INT(meta_repo_delete(m, r.id), BERTH_OK);
    CHECK_INT(count(m, "total"), 0);
    CHECK_INT(meta_scan_get(m, b, &scan), BERTH_ENOTFOUND);
    meta_close(m);
}

/* An idle worker's look at an empty queue is a plain read: it neither
 * waits for nor takes the write lock another connection holds. */
static void test_claim_idle_reads_only(void)
{
    struct meta *m = NULL, *writer = NULL;
    CHECK_INT(unit_meta_open_db(path, &m), BERTH_OK);
    CHECK_INT(unit_meta_open_db(path, &writer), BERTH_OK);
    struct meta_scan_job job;
    while (meta_scan_job_claim(m, 1, &job) == BERTH_OK) {
        CHECK_INT(meta_scan_job_delete(m, job.id), BERTH_OK);
    }
    CHECK_INT(count(m, "waiting"), 0);
    CHECK_INT(meta_begin(writer), BERTH_OK);
    int64_t start = time_mono_ns();
    CHECK_INT(meta_scan_job_claim(m, 1, &job), BERTH_ENOTFOUND);
    CHECK((time_mono_ns() - start) / 1000000 < 2000);
    meta_rollback(writer);
    meta_close(writer);
    meta_close(m);
}

static void test_enqueue_repo_and_failed(void)
{
    struct meta *m = NULL;
    CHECK_INT(unit_meta_open_db(path, &m), BERTH_OK);
    struct meta_repo flagged = unit_meta_repo(m, "on/flagged", true);
    struct meta_repo plain = unit_meta_repo(m, "on/plain", false);
    struct meta_repo filtered = unit_meta_repo(m, "web-1", false);

    struct meta_manifest img, helm;
    memset(&img, 0, sizeof(img));
    img.id = add_manifest(m, flagged.id, digest(11), false, META_SCAN_CONFIG_OCI);
    snprintf(img.config_media_type, sizeof(img.config_media_type), META_SCAN_CONFIG_OCI);
    add_manifest(m, flagged.id, digest(12), true, ""); /* an index: never rescanned */
    helm = img;
    helm.id =
        add_manifest(m, flagged.id, digest(13), false, "application/vnd.cncf.helm.config.v1+json");
    snprintf(helm.config_media_type, sizeof(helm.config_media_type),
             "application/vnd.cncf.helm.config.v1+json");

    /* the scan-on-push rule's own cases are in
     * tests/unit/storage/registry/test_scan_queue.c; here, the images it
     * queued are made by hand */
    struct meta_manifest p_img = img, f_img = img;
    p_img.id = add_manifest(m, plain.id, digest(14), false, META_SCAN_CONFIG_DOCKER);
    f_img.id = add_manifest(m, filtered.id, digest(15), false, META_SCAN_CONFIG_OCI);
    bool added = false;
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_scan_enqueue(m, img.id, 100, true, &added), BERTH_OK);
    CHECK(added);
    CHECK_INT(meta_commit(m), BERTH_OK);
    struct meta_scan scan;

    /* rescans of a whole repository: images only, not counted, not doubled */
    int64_t n = -1;
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_scan_enqueue_repo(m, flagged.id, 200, &n), BERTH_OK);
    CHECK_INT(n, 0); /* its one image already has a job waiting */
    CHECK_INT(meta_scan_enqueue_repo(m, plain.id, 200, &n), BERTH_OK);
    CHECK_INT(n, 1);
    CHECK_INT(meta_commit(m), BERTH_OK);
    CHECK_INT(meta_scan_get(m, p_img.id, &scan), BERTH_OK);
    CHECK_INT(scan.status, META_SCAN_IN_PROGRESS);
    CHECK_INT(scan.requested_at, 0);
    CHECK_INT(meta_scan_get(m, helm.id, &scan), BERTH_ENOTFOUND);

    /* retries of scans that failed for a given reason */
    struct meta_scan_outcome nodb = {
        META_SCAN_FAILED, "VulnerabilityDatabaseError: none", 300, -1, NULL, 0, {0}};
    struct meta_scan_outcome other = {META_SCAN_FAILED, "LayerError: x", 300, -1, NULL, 0, {0}};
    struct meta_scan_job job;
    while (meta_scan_job_claim(m, 250, &job) == BERTH_OK) {
        CHECK_INT(meta_scan_job_delete(m, job.id), BERTH_OK);
    }
    CHECK_INT(count(m, "total"), 0);
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_scan_store(m, img.id, &nodb), BERTH_OK);
    CHECK_INT(meta_scan_store(m, p_img.id, &other), BERTH_OK);
    CHECK_INT(meta_scan_store(m, f_img.id, &nodb), BERTH_OK);
    CHECK_INT(meta_scan_enqueue_failed(m, "VulnerabilityDatabaseError:", 400, &n), BERTH_OK);
    CHECK_INT(meta_commit(m), BERTH_OK);
    CHECK_INT(n, 2);
    CHECK_INT(meta_scan_get(m, img.id, &scan), BERTH_OK);
    CHECK_INT(scan.status, META_SCAN_IN_PROGRESS);
    CHECK_INT(meta_scan_get(m, p_img.id, &scan), BERTH_OK);
    CHECK_INT(scan.status, META_SCAN_FAILED);
    CHECK_INT(count(m, "waiting"), 2);

    /* more than one batch */
    struct meta_repo big;
    CHECK_INT(meta_repo_create(m, "on/big", 1000, &big), BERTH_OK);
    CHECK_INT(meta_begin(m), BERTH_OK);
    for (int i = 0; i < 600; i++) {
        char d[80];
        snprintf(d, sizeof(d), "sha256:%064d", 1000 + i);
        add_manifest(m, big.id, d, false, META_SCAN_CONFIG_OCI);
    }
    CHECK_INT(meta_scan_enqueue_repo(m, big.id, 300, &n), BERTH_OK);
    CHECK_INT(meta_commit(m), BERTH_OK);
    CHECK_INT(n, 600);

    /* archived images are neither rescanned nor retried (they cannot be
     * scanned until restored); a restored one is again */
    struct meta_repo cold;
    CHECK_INT(meta_repo_create(m, "on/cold", 1000, &cold), BERTH_OK);
    int64_t a_id = add_manifest(m, cold.id, digest(16), false, META_SCAN_CONFIG_OCI);
    int64_t b_id = add_manifest(m, cold.id, digest(17), false, META_SCAN_CONFIG_DOCKER);
    while (meta_scan_job_claim(m, 450, &job) == BERTH_OK) {
        CHECK_INT(meta_scan_job_delete(m, job.id), BERTH_OK);
    }
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_scan_store(m, a_id, &nodb), BERTH_OK);
    CHECK_INT(meta_scan_store(m, b_id, &nodb), BERTH_OK);
    CHECK_INT(meta_manifest_set_storage_class(m, cold.id, a_id, META_STORAGE_ARCHIVE, 500, 0),
              BERTH_OK);
    CHECK_INT(meta_scan_enqueue_repo(m, cold.id, 600, &n), BERTH_OK);
    CHECK_INT(n, 1);
    CHECK_INT(meta_scan_enqueue_failed(m, "VulnerabilityDatabaseError:", 600, &n), BERTH_OK);
    CHECK_INT(n, 0); /* b's job waits already; a is archived */
    CHECK_INT(meta_commit(m), BERTH_OK);
    CHECK_INT(meta_scan_get(m, a_id, &scan), BERTH_OK);
    CHECK_INT(scan.status, META_SCAN_FAILED);
    CHECK_INT(meta_scan_get(m, b_id, &scan), BERTH_OK);
    CHECK_INT(scan.status, META_SCAN_IN_PROGRESS);
    while (meta_scan_job_claim(m, 650, &job) == BERTH_OK) {
        CHECK_INT(job.manifest_id, b_id);
        CHECK_INT(meta_scan_job_delete(m, job.id), BERTH_OK);
    }
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_scan_enqueue_failed(m, "VulnerabilityDatabaseError:", 700, &n), BERTH_OK);
    CHECK_INT(n, 0);
    CHECK_INT(meta_manifest_set_storage_class(m, cold.id, a_id, META_STORAGE_STANDARD, 800, 800),
              BERTH_OK);
    CHECK_INT(meta_scan_enqueue_failed(m, "VulnerabilityDatabaseError:", 900, &n), BERTH_OK);
    CHECK_INT(n, 1);
    CHECK_INT(meta_commit(m), BERTH_OK);
    meta_close(m);
}

/* Replicas: a job claimed under a lease is not claimable while the
 * lease lasts, by the other replica or a reset-free restart; once it
 * expires (the holder died) the other replica takes it over, the attempt
 * counted; ending the job drops its lease. */
static void test_leased_claims(void)
{
    char root[512];
    struct meta *a = unit_meta_new(root, sizeof(root));
    struct meta *b = unit_meta_open(root);
    struct meta_repo r = unit_meta_repo(a, "lease/app", false);
    int64_t x = add_manifest(a, r.id, digest(1), false, META_SCAN_CONFIG_OCI);
    int64_t y = add_manifest(a, r.id, digest(2), false, META_SCAN_CONFIG_OCI);
    bool queued = false;
    CHECK_INT(meta_begin(a), BERTH_OK);
    CHECK_INT(meta_scan_enqueue(a, x, 1000, false, &queued), BERTH_OK);
    CHECK_INT(meta_scan_enqueue(a, y, 1000, false, &queued), BERTH_OK);
    CHECK_INT(meta_commit(a), BERTH_OK);
    struct meta_scan_job ja, jb, jc;
    CHECK_INT(meta_scan_job_claim_leased(a, 2000, "replica-a", 500, &ja), BERTH_OK);
    CHECK_INT(ja.manifest_id, x);
    CHECK_INT(meta_scan_job_claim_leased(b, 2100, "replica-b", 500, &jb), BERTH_OK);
    CHECK_INT(jb.manifest_id, y);
    /* both held: nothing for either */
    CHECK_INT(meta_scan_job_claim_leased(b, 2400, "replica-b", 500, &jc), BERTH_ENOTFOUND);
    /* a renews (its keeper does), b dies: at 2700 b's job is free, a's not */
    int64_t n = 0;
    CHECK_INT(meta_lease_renew_all(a, "replica-a", 2400, 500, &n), BERTH_OK);
    CHECK_INT(n, 1);
    CHECK_INT(meta_scan_job_claim_leased(a, 2700, "replica-a", 500, &jc), BERTH_OK);
    CHECK_INT(jc.id, jb.id);
    CHECK_INT(jc.attempts, 2);
    struct meta_lease l;
    char name[64];
    snprintf(name, sizeof(name), "scan-job:%lld", (long long)jc.id);
    CHECK_INT(meta_lease_get(a, name, &l), BERTH_OK);
    CHECK_STR(l.holder, "replica-a");
    CHECK_INT(l.expires_at, 3200);
    /* the plain (one node) claim never takes a claimed job */
    CHECK_INT(meta_scan_job_claim(b, 9000, &jc), BERTH_ENOTFOUND);
    /* ending a job drops its lease; a released one is claimable at once */
    bool requeued = true;
    CHECK_INT(meta_begin(a), BERTH_OK);
    CHECK_INT(meta_scan_job_finish(a, jb.id, &requeued), BERTH_OK);
    CHECK_INT(meta_commit(a), BERTH_OK);
    CHECK(!requeued);
    CHECK_INT(meta_lease_get(a, name, &l), BERTH_ENOTFOUND);
    CHECK_INT(meta_scan_job_release(a, ja.id), BERTH_OK);
    snprintf(name, sizeof(name), "scan-job:%lld", (long long)ja.id);
    CHECK_INT(meta_lease_get(a, name, &l), BERTH_ENOTFOUND);
    CHECK_INT(meta_scan_job_claim_leased(b, 2800, "replica-b", 500, &jc), BERTH_OK);
    CHECK_INT(jc.id, ja.id);
    CHECK_INT(meta_scan_job_claim_leased(b, 2800, "", 500, &jc), BERTH_EINVAL);
    meta_close(b);
    unit_meta_remove(a, root);
}

/* A restore: the archived images it brings back lose their old scan; with
 * rescan each is queued again, or LIMIT_EXCEEDED inside the quota; without,
 * the scan goes. Images not archived, or not restored, keep theirs. */
static void test_on_restore(void)
{
    char root[512];
    struct meta *m = unit_meta_new(root, sizeof(root));
    struct meta_repo r = unit_meta_repo(m, "restore/app", false);
    int64_t a = add_manifest(m, r.id, digest(41), false, META_SCAN_CONFIG_OCI);
    int64_t b = add_manifest(m, r.id, digest(42), false, META_SCAN_CONFIG_DOCKER);
    int64_t idx = add_manifest(m, r.id, digest(43), true, "");
    int64_t c = add_manifest(m, r.id, digest(44), false, META_SCAN_CONFIG_OCI);
    int64_t d = add_manifest(m, r.id, digest(45), false, META_SCAN_CONFIG_OCI);
    CHECK_INT(meta_manifest_ref_add(m, idx, digest(41), META_REF_MANIFEST,
                                    "application/vnd.oci.image.manifest.v1+json"),
              BERTH_OK);
    CHECK_INT(meta_manifest_ref_add(m, idx, digest(42), META_REF_MANIFEST,
                                    "application/vnd.oci.image.manifest.v1+json"),
              BERTH_OK);
    struct meta_scan_finding f[1] = {{SCAN_SEVERITY_HIGH, "{\"name\":\"CVE-1\"}"}};
    struct meta_scan_outcome done = {META_SCAN_COMPLETE, "ok", 2100, 1500, f, 1, {0}};
    done.counts[SCAN_SEVERITY_HIGH] = 1;
    CHECK_INT(meta_begin(m), BERTH_OK);
    /* a: scanned on push at 2000 (counts); b, c and d: scanned by `berth scan` (not) */
    CHECK_INT(meta_scan_enqueue(m, a, 2000, true, NULL), BERTH_OK);
    int64_t ids[4] = {a, b, c, d};
    for (int i = 0; i < 4; i++) {
        CHECK_INT(meta_scan_store(m, ids[i], &done), BERTH_OK);
    }
    CHECK_INT(meta_commit(m), BERTH_OK);
    struct meta_scan_job job;
    CHECK_INT(meta_scan_job_claim(m, 2050, &job), BERTH_OK);
    CHECK_INT(meta_begin(m), BERTH_OK);
    bool requeued = true;
    CHECK_INT(meta_scan_job_finish(m, job.id, &requeued), BERTH_OK);
    CHECK_INT(meta_manifest_set_storage_class(m, r.id, idx, META_STORAGE_ARCHIVE, 2200, 0),
              BERTH_OK);
    CHECK_INT(meta_manifest_set_storage_class(m, r.id, c, META_STORAGE_ARCHIVE, 2200, 0), BERTH_OK);
    CHECK_INT(meta_commit(m), BERTH_OK);

    /* restoring the index: a inside the quota, b queued; c and d untouched */
    int64_t queued = -1, limited = -1;
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_scan_on_restore(m, r.id, idx, true, 1000, 2500, &queued, &limited), BERTH_OK);
    CHECK_INT(meta_commit(m), BERTH_OK);
    CHECK_INT(queued, 1);
    CHECK_INT(limited, 1);
    struct meta_scan scan;
    CHECK_INT(meta_scan_get(m, a, &scan), BERTH_OK);
    CHECK_INT(scan.status, META_SCAN_LIMIT_EXCEEDED);
    CHECK_STR(meta_scan_status_name(scan.status), "LIMIT_EXCEEDED");
    CHECK_STR(scan.description, META_SCAN_LIMIT_DESCRIPTION);
    CHECK_INT(scan.requested_at, 2000); /* StartImageScan once the quota allows */
    CHECK_INT(scan.finding_count, 0);
    CHECK_INT(scan.counts[SCAN_SEVERITY_HIGH], 0);
    struct page p = {.n = 0};
    bool more = true;
    CHECK_INT(meta_scan_findings(m, a, -1, 10, collect, &p, &more), BERTH_OK);
    CHECK_INT(p.n, 0);
    CHECK_INT(meta_scan_get(m, b, &scan), BERTH_OK);
    CHECK_INT(scan.status, META_SCAN_IN_PROGRESS);
    CHECK_INT(scan.requested_at, 2500); /* the rescan counts */
    CHECK_INT(scan.finding_count, 0);
    CHECK_INT(meta_scan_findings(m, b, -1, 10, collect, &p, &more), BERTH_OK);
    CHECK_INT(p.n, 0);
    CHECK_INT(count(m, "waiting"), 1);
    CHECK_INT(meta_scan_job_claim(m, 2600, &job), BERTH_OK);
    CHECK_INT(job.manifest_id, b);
    for (int i = 2; i < 4; i++) {
        CHECK_INT(meta_scan_get(m, ids[i], &scan), BERTH_OK);
        CHECK_INT(scan.status, META_SCAN_COMPLETE);
        CHECK_INT(scan.finding_count, 1);
    }
    /* no quota: a is queued too once the index's images are archived again */
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_manifest_set_storage_class(m, r.id, idx, META_STORAGE_ARCHIVE, 2700, 0),
              BERTH_OK);
    CHECK_INT(meta_scan_on_restore(m, r.id, a, true, 0, 2800, &queued, &limited), BERTH_OK);
    CHECK_INT(meta_commit(m), BERTH_OK);
    CHECK_INT(queued, 1);
    CHECK_INT(limited, 0);
    CHECK_INT(meta_scan_get(m, a, &scan), BERTH_OK);
    CHECK_INT(scan.status, META_SCAN_IN_PROGRESS);

    /* without rescan the scan goes; d, not archived, keeps its own */
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_scan_on_restore(m, r.id, c, false, 1000, 2900, &queued, &limited), BERTH_OK);
    CHECK_INT(meta_scan_on_restore(m, r.id, d, true, 1000, 2900, NULL, NULL), BERTH_OK);
    CHECK_INT(meta_commit(m), BERTH_OK);
    CHECK_INT(queued, 0);
    CHECK_INT(meta_scan_get(m, c, &scan), BERTH_ENOTFOUND);
    CHECK_INT(meta_scan_findings(m, c, -1, 10, collect, &p, &more), BERTH_OK);
    CHECK_INT(p.n, 0);
    CHECK_INT(meta_scan_get(m, d, &scan), BERTH_OK);
    CHECK_INT(scan.status, META_SCAN_COMPLETE);
    unit_meta_remove(m, root);
}

int main(void)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s", unit_tmpdir());
    snprintf(path, sizeof(path), "%s/berth.db", dir);
    RUN(test_settings);
    RUN(test_is_image);
    RUN(test_queue);
    RUN(test_claim_idle_reads_only);
    RUN(test_enqueue_repo_and_failed);
    RUN(test_leased_claims);
    RUN(test_on_restore);
    file_remove_tree(dir);
    return unit_report("test_meta_scan");
}
