/*
 * ECR image scanning operations: PutRegistryScanningConfiguration,
 * GetRegistryScanningConfiguration, BatchGetRepositoryScanningConfiguration,
 * StartImageScan and DescribeImageScanFindings, plus the scan members of
 * DescribeImages' ImageDetail (ecr_scan_decorate_image). The rules (what
 * is scanned when, the quota) live in storage/registry/scan_queue.c and
 * storage/registry/scan_config.c. Pool threads; see ecr_int.h.
 */
#include "ecr_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "scan/findings/scan_findings.h"
#include "storage/blob/blob.h"
#include "storage/meta/meta_scan.h"
#include "storage/spec/digest.h"
#include "storage/spec/manifest.h"
#include "storage/spec/names.h"
#include "storage/registry/archive.h"
#include "storage/registry/scan_config.h"
#include "storage/registry/scan_queue.h"
#include "storage/store/store.h"
#include "common/str.h"
#include "common/timeutil.h"

/* Most repositories one BatchGetRepositoryScanningConfiguration names. */
#define BATCH_REPOS_MAX 25
/* Most findings one DescribeImageScanFindings page holds. */
#define FINDINGS_PAGE_MAX 1000

static const char *const scan_types[] = {"BASIC", "ENHANCED", NULL};
static const char *const frequencies[] = {"SCAN_ON_PUSH", "CONTINUOUS_SCAN", "MANUAL", NULL};
static const char *const filter_types[] = {"WILDCARD", NULL};

/* ---- shared pieces ---- */

/* findingSeverityCounts: the counts stored with the scan. */
static json_t *severity_counts(const struct meta_scan *scan)
{
    return scan_severity_counts_json(scan->counts);
}

/* An archived image, or one being restored: its scan status is
 * IMAGE_ARCHIVED. */
static bool is_archived(const struct meta_manifest *mf)
{
    return registry_image_status(mf, time_now_ms()) != REGISTRY_IMAGE_ACTIVE;
}

/* ImageScanStatus: the status, and the description once the scan ended;
 * IMAGE_ARCHIVED for an image that is archived or being restored (ECR's
 * user guide, "Restoring an image": during the restore the image remains
 * in the archival state until the restore completes). */
static json_t *status_json(const struct meta_scan *scan, const struct meta_manifest *mf)
{
    if (is_archived(mf)) {
        return json_pack("{s:s, s:s}", "status", "IMAGE_ARCHIVED", "description",
                         "The image is archived and cannot be scanned.");
    }
    json_t *st = json_pack("{s:s}", "status", meta_scan_status_name(scan->status));
    if (st != NULL && scan->status != META_SCAN_IN_PROGRESS && scan->description[0] != '\0' &&
        json_object_set_new(st, "description", json_string(scan->description)) != 0) {
        json_decref(st);
        return NULL;
    }
    return st;
}

/* The time members shared by ImageScanFindings and its summary. */
static bool add_times(json_t *obj, const struct meta_scan *scan)
{
    if (json_object_set_new(obj, "imageScanCompletedAt", ecr_time(scan->completed_at)) != 0) {
        return false;
    }
    return scan->source_updated_at < 0 ||
           json_object_set_new(obj, "vulnerabilitySourceUpdatedAt",
                               ecr_time(scan->source_updated_at)) == 0;
}

enum berth_err ecr_scan_decorate_image(struct ecr_call *call, const struct meta_manifest *mf,
                                       json_t *detail)
{
    struct meta *m = store_meta(call->req->srv->store);
    if (m == NULL) {
        return BERTH_EUNAVAILABLE;
    }
    struct meta_scan scan;
    enum berth_err rc = meta_scan_get(m, mf->id, &scan);
    if (rc == BERTH_ENOTFOUND) {
        return BERTH_OK; /* never scanned: AWS omits both members */
    }
    if (rc != BERTH_OK) {
        return rc;
    }
    if (json_object_set_new(detail, "imageScanStatus", status_json(&scan, mf)) != 0) {
        return BERTH_ENOMEM;
    }
    /* IMAGE_ARCHIVED, like IN_PROGRESS and FAILED, has no results (see
     * describe_image_scan_findings) */
    if (scan.status != META_SCAN_COMPLETE || is_archived(mf)) {
        return BERTH_OK;
    }
    json_t *summary = json_object();
    if (summary == NULL || !add_times(summary, &scan) ||
        json_object_set_new(summary, "findingSeverityCounts", severity_counts(&scan)) != 0) {
        json_decref(summary);
        return BERTH_ENOMEM;
    }
    return json_object_set_new(detail, "imageScanFindingsSummary", summary) == 0 ? BERTH_OK
                                                                                 : BERTH_ENOMEM;
}

static void put(struct ecr_call *call, json_t *obj, const char *key, json_t *value)
{
    if (value == NULL || json_object_set_new(obj, key, value) != 0) {
        ecr_server_error(call, BERTH_ENOMEM);
    }
}

/* ---- registry scanning configuration ---- */

/* Validate one rule and append its normalized copy to rules_out. *seen
 * collects the frequencies used (bit per enum value). */
static bool check_rule(struct ecr_call *call, json_t *rule, const char *scan_type, unsigned *seen,
                       json_t *rules_out)
{
    const char *freq;
    json_t *filters;
    if (!json_is_object(rule)) {
        return ecr_fail(call, "SerializationException", "Each rule must be a structure.");
    }
    if (!ecr_enum(call, rule, "scanFrequency", ECR_REQUIRED, frequencies, &freq) ||
        !ecr_array(call, rule, "repositoryFilters", ECR_REQUIRED, 0, SCAN_CONFIG_MAX_FILTERS,
                   &filters)) {
        return false;
    }
    if (strcmp(freq, "CONTINUOUS_SCAN") == 0 && strcmp(scan_type, "ENHANCED") != 0) {
        return ecr_invalid(call, "rules",
                           "scanFrequency CONTINUOUS_SCAN is only supported with scanType "
                           "ENHANCED; BASIC scanning supports SCAN_ON_PUSH and MANUAL");
    }
    unsigned bit = 1u << (freq[0] == 'S' ? 0 : freq[0] == 'C' ? 1 : 2);
    if (*seen & bit) {
        return ecr_invalid(call, "rules", "more than one rule with scanFrequency %s", freq);
    }
    *seen |= bit;
    json_t *list = json_array();
    json_t *copy = json_pack("{s:s, s:o}", "scanFrequency", freq, "repositoryFilters", list);
    if (copy == NULL || json_array_append_new(rules_out, copy) != 0) {
        ecr_server_error(call, BERTH_ENOMEM);
        return false;
    }
    size_t i;
    json_t *f;
    json_array_foreach(filters, i, f)
    {
        const char *pattern, *type;
        if (!json_is_object(f)) {
            return ecr_fail(call, "SerializationException",
                            "Each repository filter must be a structure.");
        }
        if (!ecr_string(call, f, "filter", ECR_REQUIRED, 1, SCAN_FILTER_MAX, &pattern) ||
            !ecr_enum(call, f, "filterType", ECR_REQUIRED, filter_types, &type)) {
            return false;
        }
        if (!scan_filter_valid(pattern)) {
            return ecr_invalid(call, "filter",
                               "must satisfy regular expression "
                               "'^[a-z0-9*](?:[._\\-/a-z0-9*]?[a-z0-9*]+)*$'");
        }
        json_t *fc = json_pack("{s:s, s:s}", "filter", pattern, "filterType", type);
        if (fc == NULL || json_array_append_new(list, fc) != 0) {
            ecr_server_error(call, BERTH_ENOMEM);
            return false;
        }
    }
    return true;
}

static void put_registry_scanning_configuration(struct ecr_call *call)
{
    const char *scan_type;
    json_t *rules;
    if (!ecr_enum(call, call->in, "scanType", ECR_OPTIONAL, scan_types, &scan_type) ||
        !ecr_array(call, call->in, "rules", ECR_OPTIONAL, 0, SCAN_CONFIG_MAX_RULES, &rules)) {
        return;
    }
    if (scan_type == NULL) {
        scan_type = "BASIC";
    }
    json_t *norm_rules = json_array();
    json_t *cfg = json_pack("{s:s, s:o}", "scanType", scan_type, "rules", norm_rules);
    if (cfg == NULL) {
        ecr_server_error(call, BERTH_ENOMEM);
        return;
    }
    unsigned seen = 0;
    size_t i;
    json_t *rule;
    json_array_foreach(rules, i, rule)
    {
        if (!check_rule(call, rule, scan_type, &seen, norm_rules)) {
            json_decref(cfg);
            return;
        }
    }
    char *text = json_dumps(cfg, JSON_COMPACT);
    struct meta *m = store_meta(call->req->srv->store);
    enum berth_err rc = text == NULL ? BERTH_ENOMEM
                        : m == NULL  ? BERTH_EUNAVAILABLE
                                     : meta_begin(m);
    if (rc == BERTH_OK) {
        rc = meta_setting_set(m, SCAN_CONFIG_SETTING, text, time_now_ms());
        if (rc == BERTH_OK) {
            rc = meta_commit(m);
        } else {
            meta_rollback(m);
        }
    }
    free(text);
    if (rc != BERTH_OK) {
        json_decref(cfg);
        ecr_server_error(call, rc);
        return;
    }
    log_info("event=scan_config_set scan_type=%s rules=%zu", scan_type, json_array_size(rules));
    put(call, call->out, "registryScanningConfiguration", cfg);
}

/* The stored configuration as JSON (the default when none). */
static json_t *load_config(struct ecr_call *call, char **text_out)
{
    struct meta *m = store_meta(call->req->srv->store);
    char *text = NULL;
    enum berth_err rc =
        m == NULL ? BERTH_EUNAVAILABLE : meta_setting_get(m, SCAN_CONFIG_SETTING, &text);
    if (rc != BERTH_OK) {
        ecr_server_error(call, rc);
        return NULL;
    }
    json_t *cfg = text ? json_loads(text, 0, NULL) : NULL;
    if (cfg == NULL) {
        cfg = json_loads(SCAN_CONFIG_DEFAULT, 0, NULL);
    }
    if (cfg == NULL) {
        ecr_server_error(call, BERTH_ENOMEM);
    }
    if (text_out != NULL) {
        *text_out = text;
    } else {
        free(text);
    }
    return cfg;
}

static void get_registry_scanning_configuration(struct ecr_call *call)
{
    json_t *cfg = load_config(call, NULL);
    if (cfg == NULL) {
        return;
    }
    put(call, call->out, "registryId", json_string(ecr_registry(call)));
    put(call, call->out, "scanningConfiguration", cfg);
}

static void batch_get_repository_scanning_configuration(struct ecr_call *call)
{
    json_t *names;
    if (!ecr_array(call, call->in, "repositoryNames", ECR_REQUIRED, 1, BATCH_REPOS_MAX, &names)) {
        return;
    }
    size_t i;
    json_t *n;
    json_array_foreach(names, i, n)
    {
        const char *name = json_string_value(n);
        if (!json_is_string(n)) {
            ecr_fail(call, "SerializationException", "Each repository name must be a string.");
            return;
        }
        size_t len = strlen(name);
        if (len < 2 || len > 256 || !names_repo_valid(name)) {
            ecr_invalid(call, "repositoryNames",
                        "must satisfy regular expression '" ECR_REPO_NAME_PATTERN "'");
            return;
        }
    }
    /* every repository named must be readable by the caller */
    json_array_foreach(names, i, n)
    {
        if (!ecr_authorize(call, "ecr:BatchGetRepositoryScanningConfiguration",
                           json_string_value(n))) {
            return;
        }
    }
    char *config = NULL;
    json_t *cfg = load_config(call, &config);
    if (cfg == NULL) {
        return;
    }
    json_decref(cfg);
    struct meta *m = store_meta(call->req->srv->store);
    json_t *configs = json_array();
    json_t *failures = json_array();
    put(call, call->out, "scanningConfigurations", configs);
    put(call, call->out, "failures", failures);
    json_array_foreach(names, i, n)
    {
        const char *name = json_string_value(n);
        struct meta_repo repo;
        enum berth_err rc = meta_repo_get(m, name, &repo);
        if (rc == BERTH_ENOTFOUND) {
            json_t *f = json_pack("{s:s, s:s, s:s}", "repositoryName", name, "failureCode",
                                  "REPOSITORY_NOT_FOUND", "failureReason", "REPOSITORY_NOT_FOUND");
            if (f == NULL || json_array_append_new(failures, f) != 0) {
                ecr_server_error(call, BERTH_ENOMEM);
                break;
            }
            continue;
        }
        if (rc != BERTH_OK) {
            ecr_server_error(call, rc);
            break;
        }
        struct scan_effective eff;
        scan_config_effective(config, repo.name, repo.scan_on_push, &eff);
        char arn[600];
        ecr_repo_arn(call, repo.name, arn, sizeof(arn));
        json_t *applied = json_array();
        if (applied != NULL && eff.filter[0] != '\0') {
            json_array_append_new(
                applied, json_pack("{s:s, s:s}", "filter", eff.filter, "filterType", "WILDCARD"));
        }
        json_t *c =
            json_pack("{s:s, s:s, s:b, s:s, s:o}", "repositoryArn", arn, "repositoryName",
                      repo.name, "scanOnPush", eff.frequency != SCAN_FREQ_MANUAL, "scanFrequency",
                      scan_frequency_name(eff.frequency), "appliedScanFilters", applied);
        if (c == NULL || json_array_append_new(configs, c) != 0) {
            ecr_server_error(call, BERTH_ENOMEM);
            break;
        }
    }
    free(config);
}

/* ---- scans of images ---- */

static void start_image_scan(struct ecr_call *call)
{
    const char *repo;
    struct ecr_image_id id;
    struct meta_repo r;
    struct meta_manifest mf;
    if (!ecr_repo_name(call, &repo) || !ecr_image_id_parse(call, &id) ||
        !ecr_find_image(call, repo, &id, &r, &mf)) {
        return;
    }
    struct registry_status archived;
    if (registry_image_check_active(&mf, time_now_ms(), &archived) != BERTH_OK) {
        ecr_fail(call, "ImageArchivedException",
                 "The image with imageId {imageDigest:'%s', imageTag:'%s'} in the repository "
                 "with name '%s' is archived and cannot be scanned.",
                 mf.digest, id.tag ? id.tag : "null", repo);
        return;
    }
    /* queued by the digest found, so a tag and digest that disagree are
     * reported as every other image lookup reports them */
    const struct berth_config *cfg = call->req->srv->cfg;
    enum scan_request_reason why;
    enum berth_err rc = scan_queue_request(call->req->srv->store, repo, NULL, mf.digest,
                                           cfg->scan_quota_seconds * 1000, &mf, &why);
    if (rc != BERTH_OK) {
        switch (why) {
        case SCAN_REQ_REPO_UNKNOWN:
            /* deleted since the image was found */
            ecr_repo_not_found(call, repo);
            return;
        case SCAN_REQ_IMAGE_UNKNOWN:
            /* deleted since it was found */
            ecr_image_not_found(call, repo, id.tag, id.digest_text);
            return;
        case SCAN_REQ_UNSUPPORTED_TYPE:
            ecr_fail(call, "UnsupportedImageTypeException",
                     "The image type is not supported: only container images can be scanned, "
                     "not manifest lists, image indexes or other artifacts.");
            return;
        case SCAN_REQ_QUOTA:
            ecr_fail(call, "LimitExceededException",
                     "The scan quota per image has been exceeded. Wait and try again.");
            return;
        case SCAN_REQ_OK:
        case SCAN_REQ_INTERNAL:
            break;
        }
        ecr_server_error(call, rc);
        return;
    }
    put(call, call->out, "registryId", json_string(ecr_registry(call)));
    put(call, call->out, "repositoryName", json_string(repo));
    put(call, call->out, "imageId", ecr_image_id_json(mf.digest, id.tag));
    put(call, call->out, "imageScanStatus", json_pack("{s:s}", "status", "IN_PROGRESS"));
}

struct findings_page {
    json_t *list;
    int64_t last;
    bool out_of_memory;
};

static int add_finding(void *arg, int64_t seq, const char *text)
{
    struct findings_page *p = arg;
    json_t *f = json_loads(text, 0, NULL);
    if (f == NULL || json_array_append_new(p->list, f) != 0) {
        p->out_of_memory = true;
        return 1;
    }
    p->last = seq;
    return 0;
}

static int add_tag(void *arg, const char *name)
{
    return json_array_append_new(arg, json_string(name)) == 0 ? 0 : 1;
}

/* Most bytes of an image config read for its architecture and author. */
#define CONFIG_READ_MAX (1u << 20)

/* The image config of an image manifest as a new JSON object, or NULL
 * when it cannot be read (a missing, archived or oversized blob, or
 * not JSON: the resource then names no architecture; not an error). */
static json_t *image_config(struct ecr_call *call, const struct meta_manifest *mf)
{
    struct blob_store *bs = store_blobs(call->req->srv->store);
    struct digest d;
    char *bytes = NULL;
    size_t len = 0;
    struct manifest_info *info = NULL;
    json_t *config = NULL;
    char why[200];
    if (mf->is_index || digest_parse(mf->digest, &d) != BERTH_OK || mf->size <= 0 ||
        blob_read_all(bs, &d, (size_t)mf->size, &bytes, &len) != BERTH_OK ||
        manifest_parse(bytes, len, mf->media_type, &info, why, sizeof(why)) != BERTH_OK ||
        !info->has_config) {
        goto out;
    }
    free(bytes);
    bytes = NULL;
    if (blob_read_all(bs, &info->config.digest, CONFIG_READ_MAX, &bytes, &len) == BERTH_OK) {
        config = json_loadb(bytes, len, JSON_REJECT_DUPLICATES, NULL);
    }
    if (!json_is_object(config)) {
        json_decref(config);
        config = NULL;
    }
out:
    manifest_info_free(info);
    free(bytes);
    return config;
}

static const char *config_string(const json_t *config, const char *key)
{
    const char *s = json_string_value(json_object_get(config, key));
    return s != NULL && s[0] != '\0' ? s : NULL;
}

/* Under scanType ENHANCED: the page of basic findings as ECR's
 * enhancedFindings (a new array; NULL when out of memory or a database
 * error, *rc saying which). */
static json_t *enhanced_findings(struct ecr_call *call, struct meta *m, const char *repo,
                                 const struct meta_manifest *mf, const struct meta_scan *scan,
                                 const json_t *basic, enum berth_err *rc)
{
    json_t *tags = json_array();
    json_t *out = json_array();
    *rc = tags != NULL && out != NULL ? meta_manifest_tags(m, mf->id, add_tag, tags) : BERTH_ENOMEM;
    char arn[600];
    ecr_repo_arn(call, repo, arn, sizeof(arn));
    json_t *config = image_config(call, mf);
    struct ecr_enhanced_image img = {
        .account = ecr_registry(call),
        .region = ecr_region(call),
        .repo = repo,
        .repo_arn = arn,
        .digest = mf->digest,
        .tags = tags,
        .pushed_at_ms = mf->pushed_at,
        .observed_at_ms = scan->completed_at,
        .architecture = config_string(config, "architecture"),
        .author = config_string(config, "author"),
    };
    size_t i;
    json_t *f;
    json_array_foreach(basic, i, f)
    {
        if (*rc != BERTH_OK) {
            break;
        }
        json_t *e = ecr_enhanced_finding(f, &img);
        if (e == NULL || json_array_append_new(out, e) != 0) {
            *rc = BERTH_ENOMEM;
        }
    }
    json_decref(tags);
    json_decref(config);
    if (*rc != BERTH_OK) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* Whether the registry scanning configuration's scanType is ENHANCED
 * (false, with the error answered, when it cannot be read: *failed). */
static bool scan_type_enhanced(struct ecr_call *call, bool *failed)
{
    json_t *cfg = load_config(call, NULL);
    *failed = cfg == NULL;
    const char *type = json_string_value(json_object_get(cfg, "scanType"));
    bool enhanced = type != NULL && strcmp(type, "ENHANCED") == 0;
    json_decref(cfg);
    return enhanced;
}

static void describe_image_scan_findings(struct ecr_call *call)
{
    const char *repo;
    struct ecr_image_id id;
    int64_t limit;
    char after[64];
    if (!ecr_repo_name(call, &repo) || !ecr_image_id_parse(call, &id) ||
        !ecr_pagination(call, FINDINGS_PAGE_MAX, &limit, after, sizeof(after))) {
        return;
    }
    uint64_t start = 0;
    bool has_start = after[0] != '\0';
    if (has_start && str_parse_u64(after, INT64_MAX, &start) != BERTH_OK) {
        ecr_invalid(call, "nextToken", "Invalid NextToken");
        return;
    }
    struct meta *m = ecr_meta(call);
    if (m == NULL) {
        return;
    }
    bool failed = false;
    bool enhanced = scan_type_enhanced(call, &failed);
    if (failed) {
        return;
    }
    /* one snapshot: the scan row and its findings agree */
    enum berth_err rc = meta_begin_read(m);
    if (rc != BERTH_OK) {
        ecr_server_error(call, rc);
        return;
    }
    struct meta_repo r;
    struct meta_manifest mf;
    struct meta_scan scan;
    struct findings_page page = {.list = NULL, .last = -1};
    bool more = false;
    if (!ecr_find_image(call, repo, &id, &r, &mf)) {
        goto out;
    }
    rc = meta_scan_get(m, mf.id, &scan);
    if (rc == BERTH_ENOTFOUND) {
        ecr_fail(call, "ScanNotFoundException",
                 "Image scan does not exist for the image with '{imageDigest:'%s', "
                 "imageTag:'%s'}' in the repository with name '%s' in the registry with id '%s'",
                 id.digest_text ? id.digest_text : "null", id.tag ? id.tag : "null", repo,
                 ecr_registry(call));
        goto out;
    }
    /* An archived (or activating) image's status is IMAGE_ARCHIVED, which
     * carries no findings: ECR cannot scan it, and its findings from
     * before archiving are gone once restored (docs/ecr.md). */
    if (rc == BERTH_OK && scan.status == META_SCAN_COMPLETE && !is_archived(&mf)) {
        page.list = json_array();
        rc = page.list ? meta_scan_findings(m, mf.id, has_start ? (int64_t)start : -1, limit,
                                            add_finding, &page, &more)
                       : BERTH_ENOMEM;
        if (rc == BERTH_OK && page.out_of_memory) {
            rc = BERTH_ENOMEM;
        }
    }
    if (rc != BERTH_OK) {
        ecr_server_error(call, rc);
        goto out;
    }
    put(call, call->out, "registryId", json_string(ecr_registry(call)));
    put(call, call->out, "repositoryName", json_string(r.name));
    put(call, call->out, "imageId", ecr_image_id_json(mf.digest, id.tag));
    put(call, call->out, "imageScanStatus", status_json(&scan, &mf));
    if (page.list != NULL) {
        json_t *list = page.list;
        if (enhanced) {
            list = enhanced_findings(call, m, r.name, &mf, &scan, page.list, &rc);
            if (list == NULL) {
                ecr_server_error(call, rc);
                goto out;
            }
        } else {
            /* ECR's basic shape: without what only the enhanced one reports */
            size_t i;
            json_t *f;
            json_array_foreach(list, i, f)
            {
                scan_finding_strip_enhanced(f);
            }
            json_incref(list);
        }
        json_t *findings = json_object();
        if (findings == NULL || !add_times(findings, &scan) ||
            json_object_set_new(findings, "findingSeverityCounts", severity_counts(&scan)) != 0) {
            json_decref(list);
            json_decref(findings);
            ecr_server_error(call, BERTH_ENOMEM);
            goto out;
        }
        /* ENHANCED: Inspector's shape, as ECR answers then (the paginator
         * follows either key) */
        if (json_object_set_new(findings, enhanced ? "enhancedFindings" : "findings", list) != 0) {
            json_decref(findings);
            ecr_server_error(call, BERTH_ENOMEM);
            goto out;
        }
        put(call, call->out, "imageScanFindings", findings);
        if (more) {
            char last[32];
            snprintf(last, sizeof(last), "%lld", (long long)page.last);
            put(call, call->out, "nextToken", ecr_next_token(last));
        }
    }
out:
    json_decref(page.list);
    meta_rollback(m);
}

const struct ecr_op ecr_scan_ops[] = {
    {"PutRegistryScanningConfiguration", put_registry_scanning_configuration, ECR_SCOPE_REGISTRY},
    {"GetRegistryScanningConfiguration", get_registry_scanning_configuration, ECR_SCOPE_REGISTRY},
    /* authorized per repository it names */
    {"BatchGetRepositoryScanningConfiguration", batch_get_repository_scanning_configuration,
     ECR_SCOPE_SELF},
    {"StartImageScan", start_image_scan, ECR_SCOPE_REPOSITORY_NAME},
    {"DescribeImageScanFindings", describe_image_scan_findings, ECR_SCOPE_REPOSITORY_NAME},
    {NULL, NULL, ECR_SCOPE_REGISTRY},
};
