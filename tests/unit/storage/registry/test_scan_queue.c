/*
 * Unit tests for storage/registry/scan_queue.c: which manifests the
 * scan-on-push rule queues (a repository's own flag, the registry's
 * SCAN_ON_PUSH filters; images only), inside the pushing transaction and
 * counted against the quota.
 */
#include "unit.h"
#include "unit_meta.h"

#include "storage/meta/meta_scan.h"
#include "storage/registry/scan_config.h"
#include "storage/registry/scan_queue.h"

#define add_manifest(...) unit_meta_add_manifest(__VA_ARGS__)
#define digest(n) unit_meta_digest(n)

static char root[512];

static void test_on_push(void)
{
    struct meta *m = unit_meta_new(root, sizeof(root));
    struct meta_repo flagged = unit_meta_repo(m, "on/flagged", true);
    struct meta_repo plain = unit_meta_repo(m, "on/plain", false);
    struct meta_repo filtered = unit_meta_repo(m, "web-1", false);

    struct meta_manifest img, idx, helm;
    memset(&img, 0, sizeof(img));
    img.id = add_manifest(m, flagged.id, digest(11), false, META_SCAN_CONFIG_OCI);
    snprintf(img.config_media_type, sizeof(img.config_media_type), META_SCAN_CONFIG_OCI);
    idx = img;
    idx.id = add_manifest(m, flagged.id, digest(12), true, "");
    idx.is_index = true;
    idx.config_media_type[0] = '\0';
    helm = img;
    helm.id =
        add_manifest(m, flagged.id, digest(13), false, "application/vnd.cncf.helm.config.v1+json");
    snprintf(helm.config_media_type, sizeof(helm.config_media_type),
             "application/vnd.cncf.helm.config.v1+json");

    bool queued = true;
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(scan_queue_on_push(m, &flagged, &img, 100, &queued), BERTH_OK);
    CHECK(queued);
    CHECK_INT(scan_queue_on_push(m, &flagged, &idx, 100, &queued), BERTH_OK);
    CHECK(!queued);
    CHECK_INT(scan_queue_on_push(m, &flagged, &helm, 100, &queued), BERTH_OK);
    CHECK(!queued);
    struct meta_manifest p_img = img;
    p_img.id = add_manifest(m, plain.id, digest(14), false, META_SCAN_CONFIG_DOCKER);
    CHECK_INT(scan_queue_on_push(m, &plain, &p_img, 100, &queued), BERTH_OK);
    CHECK(!queued);
    struct meta_manifest f_img = img;
    f_img.id = add_manifest(m, filtered.id, digest(15), false, META_SCAN_CONFIG_OCI);
    CHECK_INT(scan_queue_on_push(m, &filtered, &f_img, 100, &queued), BERTH_OK);
    CHECK(!queued);
    /* a registry SCAN_ON_PUSH filter turns it on */
    CHECK_INT(meta_setting_set(m, SCAN_CONFIG_SETTING,
                               "{\"scanType\":\"BASIC\",\"rules\":[{\"scanFrequency\":"
                               "\"SCAN_ON_PUSH\",\"repositoryFilters\":[{\"filter\":\"web-*\","
                               "\"filterType\":\"WILDCARD\"}]}]}",
                               100),
              BERTH_OK);
    CHECK_INT(scan_queue_on_push(m, &filtered, &f_img, 100, &queued), BERTH_OK);
    CHECK(queued);
    CHECK_INT(scan_queue_on_push(m, &plain, &p_img, 100, &queued), BERTH_OK);
    CHECK(!queued);
    CHECK_INT(meta_commit(m), BERTH_OK);
    struct meta_scan scan;
    CHECK_INT(meta_scan_get(m, f_img.id, &scan), BERTH_OK);
    CHECK_INT(scan.requested_at, 100); /* scan-on-push counts against the quota */
    CHECK_INT(meta_scan_get(m, idx.id, &scan), BERTH_ENOTFOUND);

    unit_meta_remove(m, root);
}

int main(void)
{
    RUN(test_on_push);
    return unit_report("test_scan_queue");
}
