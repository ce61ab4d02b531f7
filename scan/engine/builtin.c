/*
 * The built-in scanner's single entry point: layers -> interesting files
 * -> OS and packages -> findings, with every image-caused problem turned
 * into a FAILED result that says why.
 */
#include "scan/engine/scan_builtin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/timeutil.h"

static void describe(struct scan_result *r, const char *prefix, const char *reason)
{
    r->status = SCAN_STATUS_FAILED;
    if (prefix == NULL) {
        snprintf(r->description, sizeof(r->description), "%s", reason);
    } else {
        snprintf(r->description, sizeof(r->description), "%s: %s", prefix, reason);
    }
}

enum berth_err scan_builtin_run(const struct scan_layer *layers, size_t count, struct vulndb *db,
                                const struct scan_limits *lim, struct scan_result **out)
{
    if ((layers == NULL && count > 0) || lim == NULL || out == NULL) {
        return BERTH_EINVAL;
    }
    int64_t start = time_mono_ns();
    struct scan_result *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return BERTH_ENOMEM;
    }
    scan_findings_init(&r->findings);
    r->vuln_source_updated_at_ms = -1;
    struct scan_fs *fs = NULL;
    struct scan_pkgs pkgs;
    scan_pkgs_init(&pkgs);
    char reason[400] = "";
    enum berth_err rc = scan_layers_read(layers, count, lim, &fs, reason, sizeof(reason));
    switch (rc) {
    case BERTH_OK:
        break;
    case BERTH_ETOOBIG:
        describe(r, "ImageTooLargeError", reason);
        goto done;
    case BERTH_EINVAL:
    case BERTH_EIO:
        describe(r, "LayerError", reason);
        goto done;
    default:
        goto out;
    }
    r->bytes_read = scan_fs_bytes_read(fs);
    rc = scan_inventory_collect(fs, &r->os, &pkgs, reason, sizeof(reason));
    r->package_count = pkgs.count;
    switch (rc) {
    case BERTH_OK:
        break;
    case BERTH_EUNSUPPORTED: {
        char rv[400];
        log_info("event=scan_unsupported reason=%s", log_value(reason, rv, sizeof(rv)));
        describe(r, NULL, SCAN_DESCRIPTION_UNSUPPORTED);
        goto done;
    }
    case BERTH_EINVAL:
    case BERTH_ETOOBIG:
        describe(r, "PackageDatabaseError", reason);
        goto done;
    default:
        goto out;
    }
    if (db == NULL) {
        describe(r, "VulnerabilityDatabaseError",
                 "no vulnerability database has been imported (berth vulndb import PATH)");
        goto done;
    }
    r->vuln_source_updated_at_ms = vulndb_source_updated_at_ms(db);
    rc = vulndb_match(db, &r->os, &pkgs, &r->findings);
    if (rc != BERTH_OK) {
        goto out;
    }
    scan_findings_finish(&r->findings);
    r->status = SCAN_STATUS_COMPLETE;
    snprintf(r->description, sizeof(r->description), "%s", SCAN_DESCRIPTION_COMPLETE);
done:
    rc = BERTH_OK;
    r->completed_at_ms = time_now_ms();
    if (r->status != SCAN_STATUS_COMPLETE) {
        /* a failed scan reports no findings */
        scan_findings_fini(&r->findings);
    }
    {
        char dv[600];
        log_info("event=scan_done status=%s ecosystem=%s packages=%zu findings=%zu bytes=%llu "
                 "ms=%lld description=%s",
                 r->status == SCAN_STATUS_COMPLETE ? "COMPLETE" : "FAILED",
                 r->os.ecosystem[0] ? r->os.ecosystem : "none", r->package_count, r->findings.count,
                 (unsigned long long)r->bytes_read, (long long)((time_mono_ns() - start) / 1000000),
                 log_value(r->description, dv, sizeof(dv)));
    }
out:
    scan_pkgs_fini(&pkgs);
    scan_fs_free(fs);
    if (rc != BERTH_OK) {
        scan_result_free(r);
        return rc;
    }
    *out = r;
    return BERTH_OK;
}

void scan_result_free(struct scan_result *r)
{
    if (r == NULL) {
        return;
    }
    scan_findings_fini(&r->findings);
    free(r);
}
