/* When scans are queued, and the workers' wake-up. See scan_queue.h. */
#include "storage/registry/scan_queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/spec/digest.h"
#include "common/log.h"
#include "storage/meta/meta_scan.h"
#include "storage/registry/registry.h"
#include "storage/registry/scan_config.h"
#include "storage/store/store.h"
#include "common/timeutil.h"
#include "common/wake.h"

/* ---- wake-up ---- */

static struct wake wake = WAKE_INIT;

void scan_queue_notify(void)
{
    wake_notify(&wake);
}

uint64_t scan_queue_generation(void)
{
    return wake_generation(&wake);
}

void scan_queue_wait(uint64_t *seen, int64_t timeout_ms, const atomic_bool *stop)
{
    wake_wait(&wake, seen, timeout_ms, stop);
}

/* ---- rules ---- */

/* Whether scan-on-push applies to the repository. The repository's own
 * flag decides alone (any registry rule that also matches scans on push
 * too): no registry setting to read and parse inside the push's
 * transaction. */
static enum berth_err push_scans(struct meta *m, const struct meta_repo *repo, bool *applies)
{
    *applies = true;
    if (repo->scan_on_push) {
        return BERTH_OK;
    }
    char *text = NULL;
    enum berth_err rc = meta_setting_get(m, SCAN_CONFIG_SETTING, &text);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct scan_config cfg;
    struct scan_effective eff;
    scan_config_init(&cfg, text);
    scan_config_eval(&cfg, repo->name, false, &eff);
    scan_config_fini(&cfg);
    free(text);
    *applies = eff.frequency != SCAN_FREQ_MANUAL;
    return BERTH_OK;
}

enum berth_err scan_queue_on_push(struct meta *m, const struct meta_repo *repo,
                                  const struct meta_manifest *mf, int64_t now, bool *queued)
{
    *queued = false;
    if (!meta_scan_is_image(mf->is_index, mf->config_media_type)) {
        return BERTH_OK;
    }
    bool applies = false;
    enum berth_err rc = push_scans(m, repo, &applies);
    if (rc != BERTH_OK || !applies) {
        return rc;
    }
    rc = meta_scan_enqueue(m, mf->id, now, true, queued);
    if (rc == BERTH_OK) {
        log_debug("event=scan_queued repo=%s digest=%s reason=push", repo->name, mf->digest);
    }
    return rc;
}

enum berth_err scan_queue_on_restore(struct meta *m, const struct meta_repo *repo,
                                     int64_t manifest_id, int64_t now, int64_t quota_ms,
                                     bool *queued)
{
    *queued = false;
    bool applies = false;
    enum berth_err rc = push_scans(m, repo, &applies);
    int64_t added = 0, limited = 0;
    if (rc == BERTH_OK) {
        rc = meta_scan_on_restore(m, repo->id, manifest_id, applies, quota_ms, now, &added,
                                  &limited);
    }
    if (rc == BERTH_OK) {
        *queued = added > 0;
        log_debug("event=scan_restore repo=%s manifest_id=%lld rescan=%d queued=%lld "
                  "limit_exceeded=%lld",
                  repo->name, (long long)manifest_id, applies, (long long)added,
                  (long long)limited);
    }
    return rc;
}

static enum berth_err refuse(enum scan_request_reason *why, enum scan_request_reason reason,
                             enum berth_err rc)
{
    *why = reason;
    return rc;
}

/* Inside the transaction: the image a tag and/or digest names
 * (registry_image_find). A digest that does not parse, or a tag that
 * names another image, is no such image (BERTH_ENOTFOUND). */
static enum berth_err find_image(struct store *st, const struct meta_repo *repo, const char *tag,
                                 const char *digest, struct meta_manifest *out)
{
    struct digest d;
    if ((tag == NULL && digest == NULL) ||
        (digest != NULL && digest_parse(digest, &d) != BERTH_OK)) {
        return BERTH_ENOTFOUND;
    }
    struct registry_status s;
    enum berth_err rc = registry_image_find(st, repo, tag, digest != NULL ? &d : NULL, out, &s);
    return s.reason == REG_TAG_DIGEST_MISMATCH ? BERTH_ENOTFOUND : rc;
}

enum berth_err scan_queue_request(struct store *st, const char *repo, const char *tag,
                                  const char *digest, int64_t quota_ms, struct meta_manifest *mf,
                                  enum scan_request_reason *why)
{
    *why = SCAN_REQ_OK;
    struct meta *m;
    enum berth_err got = store_meta_get(st, &m);
    if (got != BERTH_OK) {
        return refuse(why, SCAN_REQ_INTERNAL, got);
    }
    enum berth_err rc = meta_begin(m);
    if (rc != BERTH_OK) {
        return refuse(why, SCAN_REQ_INTERNAL, rc);
    }
    struct meta_repo r;
    struct meta_scan scan;
    int64_t now = time_now_ms();
    rc = meta_repo_get(m, repo, &r);
    if (rc != BERTH_OK) {
        refuse(why, rc == BERTH_ENOTFOUND ? SCAN_REQ_REPO_UNKNOWN : SCAN_REQ_INTERNAL, rc);
        goto out;
    }
    rc = find_image(st, &r, tag, digest, mf);
    if (rc != BERTH_OK) {
        refuse(why, rc == BERTH_ENOTFOUND ? SCAN_REQ_IMAGE_UNKNOWN : SCAN_REQ_INTERNAL, rc);
        goto out;
    }
    if (!meta_scan_is_image(mf->is_index, mf->config_media_type)) {
        rc = refuse(why, SCAN_REQ_UNSUPPORTED_TYPE, BERTH_EUNSUPPORTED);
        goto out;
    }
    rc = meta_scan_get(m, mf->id, &scan);
    /* a scan that could not fetch the image's blobs did not scan it */
    bool unscanned = rc == BERTH_OK && scan.status == META_SCAN_FAILED &&
                     strncmp(scan.description, SCAN_QUEUE_UPSTREAM_PREFIX,
                             strlen(SCAN_QUEUE_UPSTREAM_PREFIX)) == 0;
    if (rc == BERTH_OK && !unscanned && quota_ms > 0 && scan.requested_at > 0 &&
        now - scan.requested_at < quota_ms) {
        rc = refuse(why, SCAN_REQ_QUOTA, BERTH_EBUSY);
        goto out;
    }
    if (rc != BERTH_OK && rc != BERTH_ENOTFOUND) {
        refuse(why, SCAN_REQ_INTERNAL, rc);
        goto out;
    }
    rc = meta_scan_enqueue(m, mf->id, now, true, NULL);
    if (rc == BERTH_OK) {
        rc = meta_commit(m);
    }
    if (rc != BERTH_OK) {
        refuse(why, SCAN_REQ_INTERNAL, rc);
    }
out:
    if (rc != BERTH_OK) {
        meta_rollback(m);
        return rc;
    }
    log_info("event=scan_queued repo=%s digest=%s reason=request", repo, mf->digest);
    scan_queue_notify();
    return BERTH_OK;
}

/* Repository ids whose effective frequency is CONTINUOUS_SCAN. */
struct continuous_ctx {
    const struct scan_config *config;
    int64_t *ids;
    size_t count;
    size_t cap;
    bool out_of_memory;
    char last[NAMES_REPO_MAX + 1]; /* the last repository seen */
};

static int collect_continuous(void *arg, const struct meta_repo *repo)
{
    struct continuous_ctx *c = arg;
    memcpy(c->last, repo->name, sizeof(c->last));
    struct scan_effective eff;
    scan_config_eval(c->config, repo->name, repo->scan_on_push, &eff);
    if (eff.frequency != SCAN_FREQ_CONTINUOUS) {
        return 0;
    }
    if (c->count == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        int64_t *ids = realloc(c->ids, cap * sizeof(*ids));
        if (ids == NULL) {
            c->out_of_memory = true;
            return 1;
        }
        c->ids = ids;
        c->cap = cap;
    }
    c->ids[c->count++] = repo->id;
    return 0;
}

enum berth_err scan_queue_after_import(struct store *st, int64_t *rescans, int64_t *retries)
{
    *rescans = 0;
    *retries = 0;
    struct meta *m;
    enum berth_err got = store_meta_get(st, &m);
    if (got != BERTH_OK) {
        return got;
    }
    char *text = NULL;
    enum berth_err rc = meta_setting_get(m, SCAN_CONFIG_SETTING, &text);
    if (rc != BERTH_OK) {
        return rc;
    }
    /* parsed once for every repository */
    struct scan_config config;
    scan_config_init(&config, text);
    free(text);
    struct continuous_ctx c = {.config = &config};
    bool more = scan_config_has_continuous(&config);
    /* One write transaction for the listing and the jobs, so the set of
     * repositories cannot change in between. */
    rc = meta_begin(m);
    while (rc == BERTH_OK && more) {
        char after[NAMES_REPO_MAX + 1];
        memcpy(after, c.last, sizeof(after));
        rc = meta_repo_list(m, after[0] ? after : NULL, 1000, collect_continuous, &c, &more);
        if (rc == BERTH_OK && c.out_of_memory) {
            rc = BERTH_ENOMEM;
        }
    }
    int64_t rescanned = 0, retried = 0, now = time_now_ms();
    for (size_t i = 0; rc == BERTH_OK && i < c.count; i++) {
        int64_t n = 0;
        rc = meta_scan_enqueue_repo(m, c.ids[i], now, &n);
        rescanned += n;
    }
    if (rc == BERTH_OK) {
        rc = meta_scan_enqueue_failed(m, SCAN_QUEUE_RETRY_PREFIX, now, &retried);
    }
    if (rc == BERTH_OK) {
        rc = meta_commit(m);
    } else {
        meta_rollback(m);
    }
    free(c.ids);
    scan_config_fini(&config);
    if (rc != BERTH_OK) {
        return rc;
    }
    *rescans = rescanned;
    *retries = retried;
    if (rescanned + retried > 0) {
        log_info("event=scan_import_queued rescans=%lld retries=%lld", (long long)rescanned,
                 (long long)retried);
        scan_queue_notify();
    }
    return BERTH_OK;
}
