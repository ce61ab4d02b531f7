/*
 * berth scan REPOSITORY:TAG|REPOSITORY@DIGEST [--json]: scan one image now
 * with the configured engine (the hook, or the built-in scanner), record
 * the result as the image's scan (DescribeImageScanFindings shows it; the
 * quota is not charged), and print the findings as a table or as ECR's
 * JSON. Exit status 0 when the scan completed, 1 when it failed or the
 * image cannot be scanned, 2 for usage errors. SIGINT/SIGTERM stop a
 * running hook.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_int.h"

#include "storage/meta/meta_scan.h"
#include "storage/registry/registry.h"
#include "scan/engine/scan_run.h"
#include "scan/findings/scan_findings.h"
#include "storage/spec/scan_severity.h"
#include "common/str.h"

/* Widest column in the table (longer values are cut). */
#define COLUMN_MAX 48

static atomic_bool interrupted;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&interrupted, true);
}

static int usage(void)
{
    fprintf(stderr, "usage: berth scan REPOSITORY:TAG|REPOSITORY@DIGEST [--json] "
                    "[--config FILE] [--root DIR]\n");
    return 2;
}

/* Split "repo:tag" or "repo@digest" into repo and reference. */
static bool split_ref(const char *arg, char *repo, size_t repo_cap, char *ref, size_t ref_cap)
{
    const char *at = strchr(arg, '@');
    const char *sep = at;
    if (sep == NULL) {
        const char *slash = strrchr(arg, '/');
        sep = strrchr(slash ? slash : arg, ':');
    }
    if (sep == NULL || sep == arg || sep[1] == '\0' || (size_t)(sep - arg) >= repo_cap) {
        return false;
    }
    memcpy(repo, arg, (size_t)(sep - arg));
    repo[sep - arg] = '\0';
    return str_copy(ref, ref_cap, sep + 1) == BERTH_OK;
}

/* The value of a finding attribute, or "". */
static const char *attribute(json_t *finding, const char *key)
{
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(finding, "attributes"), i, a)
    {
        const char *k = json_string_value(json_object_get(a, "key"));
        const char *v = json_string_value(json_object_get(a, "value"));
        if (k != NULL && v != NULL && strcmp(k, key) == 0) {
            return v;
        }
    }
    return "";
}

static int width(const char *s, int w)
{
    int n = (int)strlen(s);
    n = n > COLUMN_MAX ? COLUMN_MAX : n;
    return n > w ? n : w;
}

static void print_table(const char *repo, const struct meta_manifest *mf,
                        const struct scan_outcome *o)
{
    printf("repository  %s\ndigest      %s\nstatus      %s\ndescription %s\n", repo, mf->digest,
           o->complete ? "COMPLETE" : "FAILED", o->description);
    if (!o->complete) {
        return;
    }
    const char *head[5] = {"SEVERITY", "NAME", "PACKAGE", "VERSION", "CVSS3"};
    int w[5];
    for (int c = 0; c < 5; c++) {
        w[c] = (int)strlen(head[c]);
    }
    size_t i;
    json_t *f;
    json_array_foreach(o->findings, i, f)
    {
        const char *cols[5] = {json_string_value(json_object_get(f, "severity")),
                               json_string_value(json_object_get(f, "name")),
                               attribute(f, "package_name"), attribute(f, "package_version"),
                               attribute(f, "CVSS3_SCORE")};
        for (int c = 0; c < 5; c++) {
            w[c] = width(cols[c] ? cols[c] : "", w[c]);
        }
    }
    if (json_array_size(o->findings) > 0) {
        printf("\n%-*s  %-*s  %-*s  %-*s  %s\n", w[0], head[0], w[1], head[1], w[2], head[2], w[3],
               head[3], head[4]);
    }
    json_array_foreach(o->findings, i, f)
    {
        const char *sev = json_string_value(json_object_get(f, "severity"));
        const char *name = json_string_value(json_object_get(f, "name"));
        printf("%-*.*s  %-*.*s  %-*.*s  %-*.*s  %.*s\n", w[0], COLUMN_MAX, sev ? sev : "", w[1],
               COLUMN_MAX, name ? name : "", w[2], COLUMN_MAX, attribute(f, "package_name"), w[3],
               COLUMN_MAX, attribute(f, "package_version"), COLUMN_MAX,
               attribute(f, "CVSS3_SCORE"));
    }
    printf("\n%zu finding%s", json_array_size(o->findings),
           json_array_size(o->findings) == 1 ? "" : "s");
    const char *sep = ": ";
    for (int s = SCAN_SEVERITY_COUNT - 1; s >= 0; s--) {
        if (o->counts[s] > 0) {
            printf("%s%lld %s", sep, (long long)o->counts[s],
                   scan_severity_name((enum scan_severity)s));
            sep = ", ";
        }
    }
    printf("\n");
}

/* ECR's DescribeImageScanFindings shape, with every finding. */
static int print_json(const char *repo, const char *tag, const struct meta_manifest *mf,
                      const struct scan_outcome *o)
{
    json_t *doc = json_pack("{s:s, s:{s:s}, s:{s:s, s:s}}", "repositoryName", repo, "imageId",
                            "imageDigest", mf->digest, "imageScanStatus", "status",
                            o->complete ? "COMPLETE" : "FAILED", "description", o->description);
    if (doc != NULL && tag != NULL) {
        json_object_set_new(json_object_get(doc, "imageId"), "imageTag", json_string(tag));
    }
    if (doc != NULL && o->complete) {
        size_t i;
        json_t *f;
        json_array_foreach(o->findings, i, f)
        {
            scan_finding_strip_enhanced(f); /* the basic shape */
        }
        json_t *findings = json_pack("{s:f, s:o, s:O}", "imageScanCompletedAt",
                                     (double)o->completed_at_ms / 1000.0, "findingSeverityCounts",
                                     scan_severity_counts_json(o->counts), "findings", o->findings);
        if (findings != NULL && o->source_updated_at_ms >= 0) {
            json_object_set_new(findings, "vulnerabilitySourceUpdatedAt",
                                json_real((double)o->source_updated_at_ms / 1000.0));
        }
        json_object_set_new(doc, "imageScanFindings", findings);
    }
    char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_REAL_PRECISION(13)) : NULL;
    json_decref(doc);
    if (text == NULL) {
        fprintf(stderr, "berth scan: out of memory\n");
        return 1;
    }
    printf("%s\n", text);
    free(text);
    return 0;
}

int cmd_scan(struct cli *cli)
{
    const char *arg = NULL;
    bool as_json = false;
    for (int i = 0; i < cli->argc; i++) {
        if (strcmp(cli->argv[i], "--json") == 0) {
            as_json = true;
        } else if (arg == NULL && cli->argv[i][0] != '-') {
            arg = cli->argv[i];
        } else {
            return usage();
        }
    }
    char repo[NAMES_REPO_MAX + 1], ref[DIGEST_STR_MAX + NAMES_TAG_MAX];
    if (arg == NULL || !split_ref(arg, repo, sizeof(repo), ref, sizeof(ref))) {
        return usage();
    }
    if (!cli_load_config(cli)) {
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct store *st = cli_open_store(cli);
    if (st == NULL) {
        return cli_open_store_status();
    }
    int status = 1;
    struct registry_status rs;
    struct meta_manifest mf;
    struct scan_outcome o;
    memset(&o, 0, sizeof(o));
    enum berth_err rc = registry_manifest_get(st, repo, ref, &mf, &rs);
    if (rc != BERTH_OK) {
        fprintf(stderr, "berth scan: %s: %s\n", arg,
                rs.reason == REG_REPO_UNKNOWN       ? "no such repository"
                : rs.reason == REG_MANIFEST_UNKNOWN ? "no such image"
                                                    : rs.message);
        goto out;
    }
    if (!meta_scan_is_image(mf.is_index, mf.config_media_type)) {
        fprintf(stderr, "berth scan: %s is %s, not a container image; scan the images it lists\n",
                arg, mf.is_index ? "an index (manifest list)" : "an artifact");
        goto out;
    }
    const struct berth_config *cfg = &cli->cfg;
    struct scan_engine eng = {
        .root = cfg->root,
        .hook = cfg->scan_hook,
        .hook_timeout_ms = cfg->scan_hook_timeout_seconds * 1000,
        .hook_max_output = (size_t)cfg->scan_hook_max_output_bytes,
        .max_image_bytes = (uint64_t)cfg->scan_max_image_bytes,
        .cancel = &interrupted,
        .vulndb_shared = strcmp(cfg->meta_backend, "postgres") == 0,
    };
    rc = scan_run_image(st, &eng, repo, &mf, &o);
    if (rc == BERTH_EBUSY && atomic_load(&interrupted)) {
        fprintf(stderr, "berth scan: interrupted\n");
        goto out;
    }
    if (rc != BERTH_OK) {
        fprintf(stderr, "berth scan: %s: the scan could not run (%s)\n", arg,
                rc == BERTH_ENOTFOUND ? "the image was deleted" : berth_strerror(rc));
        goto out;
    }
    rc = scan_run_record(st, mf.id, 0, &o);
    if (rc != BERTH_OK) {
        fprintf(stderr, "berth scan: warning: the result was not recorded (%s)\n",
                berth_strerror(rc));
    }
    const char *tag = strchr(ref, ':') == NULL ? ref : NULL;
    if (as_json) {
        status = print_json(repo, tag, &mf, &o);
    } else {
        print_table(repo, &mf, &o);
        status = 0;
    }
    if (status == 0 && !o.complete) {
        status = 1;
    }
out:
    scan_outcome_fini(&o);
    store_close(st);
    return status;
}
