/*
 * Unit tests for scan/findings/findings.c: copying and bounding findings,
 * duplicate removal, the deterministic order, and ECR's ImageScanFinding
 * JSON shape (compared with the shape of reference/ecr-api.md 4.3).
 */
#include "unit.h"

#include "scan/findings/scan_findings.h"

static struct scan_finding mk(const char *name, const char *pkg, const char *ver,
                              enum scan_severity sev, const char *id)
{
    return (struct scan_finding){
        .name = name,
        .description = "d",
        .uri = NULL,
        .severity = sev,
        .package_name = pkg,
        .package_version = ver,
        .cvss3_tenths = -1,
        .cvss3_vector = NULL,
        .source_id = id,
    };
}

static void add_all(struct scan_findings *f, const struct scan_finding *xs, size_t n,
                    const size_t *order)
{
    for (size_t i = 0; i < n; i++) {
        CHECK_INT(scan_findings_add(f, &xs[order[i]]), BERTH_OK);
    }
}

static void test_order_and_dedupe(void)
{
    struct scan_finding xs[] = {
        mk("CVE-2024-2", "zlib", "1.0", SCAN_SEVERITY_LOW, "Z-1"),
        mk("CVE-2024-1", "openssl", "3.0", SCAN_SEVERITY_HIGH, "DSA-1"),
        mk("CVE-2024-1", "openssl", "3.0", SCAN_SEVERITY_UNDEFINED, "DEBIAN-CVE-2024-1"),
        mk("CVE-2024-1", "openssl", "3.0", SCAN_SEVERITY_HIGH, "ALSA-9"),
        mk("CVE-2024-1", "openssl", "3.1", SCAN_SEVERITY_HIGH, "DSA-1"),
        mk("CVE-2024-3", "bash", "5.2", SCAN_SEVERITY_CRITICAL, "B-1"),
        mk("CVE-2024-0", "zlib", "1.0", SCAN_SEVERITY_LOW, "Z-2"),
        mk("GHSA-x", "curl", "8", SCAN_SEVERITY_UNDEFINED, "GHSA-x"),
        mk("CVE-2024-5", "curl", "8", SCAN_SEVERITY_INFORMATIONAL, "C-5"),
    };
    static const size_t orders[3][9] = {
        {0, 1, 2, 3, 4, 5, 6, 7, 8},
        {8, 7, 6, 5, 4, 3, 2, 1, 0},
        {4, 2, 8, 0, 6, 3, 1, 7, 5},
    };
    for (int o = 0; o < 3; o++) {
        struct scan_findings f;
        scan_findings_init(&f);
        add_all(&f, xs, 9, orders[o]);
        scan_findings_finish(&f);
        CHECK_INT(f.count, 7);
        if (f.count == 7) {
            CHECK_STR(f.items[0].name, "CVE-2024-3");
            CHECK_STR(f.items[1].name, "CVE-2024-1");
            CHECK_STR(f.items[1].package_version, "3.0");
            /* of the duplicates, the most severe with the smallest id */
            CHECK_STR(f.items[1].source_id, "ALSA-9");
            CHECK_STR(f.items[2].package_version, "3.1");
            CHECK_STR(f.items[3].name, "CVE-2024-0");
            CHECK_STR(f.items[4].name, "CVE-2024-2");
            CHECK_STR(f.items[5].name, "CVE-2024-5");
            CHECK_STR(f.items[6].name, "GHSA-x");
            CHECK_INT(f.items[1].severity, SCAN_SEVERITY_HIGH);
            CHECK_INT(f.items[6].severity, SCAN_SEVERITY_UNDEFINED);
        }
        scan_findings_fini(&f);
    }
}

static void test_bounds(void)
{
    struct scan_findings f;
    scan_findings_init(&f);
    /* the description and uri are kept as given (the import bounds them);
     * a vector needs a score */
    struct scan_finding x = mk("CVE-1", "p", "1", SCAN_SEVERITY_LOW, "CVE-1");
    x.description = NULL;
    x.uri = "https://example.com/CVE-1";
    x.cvss3_vector = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H";
    x.cvss3_tenths = -1;
    CHECK_INT(scan_findings_add(&f, &x), BERTH_OK);
    CHECK_STR(f.items[0].uri, "https://example.com/CVE-1");
    CHECK_STR(f.items[0].description, "");
    CHECK(f.items[0].cvss3_vector == NULL);
    x.uri = "";
    CHECK_INT(scan_findings_add(&f, &x), BERTH_OK);
    CHECK(f.items[1].uri == NULL);

    /* required fields, and attribute values over ECR's 256 bytes */
    char big[300];
    memset(big, 'v', sizeof(big));
    big[sizeof(big) - 1] = '\0';
    struct scan_finding y = mk("CVE-1", "p", big, SCAN_SEVERITY_LOW, "CVE-1");
    CHECK_INT(scan_findings_add(&f, &y), BERTH_EINVAL);
    y = mk("", "p", "1", SCAN_SEVERITY_LOW, "CVE-1");
    CHECK_INT(scan_findings_add(&f, &y), BERTH_EINVAL);
    y = mk("CVE-1", NULL, "1", SCAN_SEVERITY_LOW, "CVE-1");
    CHECK_INT(scan_findings_add(&f, &y), BERTH_EINVAL);
    CHECK_INT(f.count, 2);
    scan_findings_fini(&f);
    CHECK_INT(f.count, 0);
}

static void test_json(void)
{
    struct scan_findings f;
    scan_findings_init(&f);
    struct scan_finding a = mk("CVE-2019-5188", "e2fsprogs", "1.44.1-1ubuntu1.1",
                               SCAN_SEVERITY_MEDIUM, "UBUNTU-CVE-2019-5188");
    a.description = "A code execution vulnerability exists in e2fsck 1.45.4";
    a.uri = "http://people.ubuntu.com/~ubuntu-security/cve/CVE-2019-5188";
    a.cvss3_tenths = 67;
    a.cvss3_vector = "CVSS:3.1/AV:L/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H";
    a.fixed_version = "1.44.1-1ubuntu1.2";
    a.package_manager = "dpkg";
    a.package_arch = "amd64";
    a.platform = "UBUNTU_18_04";
    struct scan_finding b = mk("CVE-2024-1", "zlib", "1", SCAN_SEVERITY_UNDEFINED, "CVE-2024-1");
    CHECK_INT(scan_findings_add(&f, &b), BERTH_OK);
    CHECK_INT(scan_findings_add(&f, &a), BERTH_OK);
    scan_findings_finish(&f);

    json_t *one = scan_finding_to_json(&f.items[0]);
    char *text = json_dumps(one, JSON_COMPACT);
    CHECK_STR(text, "{\"name\":\"CVE-2019-5188\",\"description\":\"A code execution vulnerability "
                    "exists in e2fsck 1.45.4\",\"severity\":\"MEDIUM\",\"uri\":\"http://"
                    "people.ubuntu.com/~ubuntu-security/cve/CVE-2019-5188\",\"attributes\":["
                    "{\"key\":\"package_version\",\"value\":\"1.44.1-1ubuntu1.1\"},"
                    "{\"key\":\"package_name\",\"value\":\"e2fsprogs\"},"
                    "{\"key\":\"fixed_in_version\",\"value\":\"1.44.1-1ubuntu1.2\"},"
                    "{\"key\":\"CVSS3_VECTOR\",\"value\":\"CVSS:3.1/AV:L/AC:L/PR:H/UI:N/S:U/C:H/"
                    "I:H/A:H\"},{\"key\":\"CVSS3_SCORE\",\"value\":\"6.7\"},"
                    "{\"key\":\"package_manager\",\"value\":\"dpkg\"},"
                    "{\"key\":\"package_arch\",\"value\":\"amd64\"},"
                    "{\"key\":\"platform\",\"value\":\"UBUNTU_18_04\"}]}");
    free(text);
    /* the basic shape drops what only the enhanced one reports */
    scan_finding_strip_enhanced(one);
    text = json_dumps(json_object_get(one, "attributes"), JSON_COMPACT);
    CHECK_STR(text, "[{\"key\":\"package_version\",\"value\":\"1.44.1-1ubuntu1.1\"},"
                    "{\"key\":\"package_name\",\"value\":\"e2fsprogs\"},"
                    "{\"key\":\"fixed_in_version\",\"value\":\"1.44.1-1ubuntu1.2\"},"
                    "{\"key\":\"CVSS3_VECTOR\",\"value\":\"CVSS:3.1/AV:L/AC:L/PR:H/UI:N/S:U/"
                    "C:H/I:H/A:H\"},{\"key\":\"CVSS3_SCORE\",\"value\":\"6.7\"}]");
    free(text);
    json_decref(one);

    /* no uri, no CVSS: neither key appears */
    json_t *second = scan_finding_to_json(&f.items[1]);
    text = json_dumps(second, JSON_COMPACT);
    CHECK_STR(text, "{\"name\":\"CVE-2024-1\",\"description\":\"d\",\"severity\":\"UNDEFINED\","
                    "\"attributes\":[{\"key\":\"package_version\",\"value\":\"1\"},"
                    "{\"key\":\"package_name\",\"value\":\"zlib\"}]}");
    free(text);
    json_decref(second);
    scan_findings_fini(&f);
}

int main(void)
{
    RUN(test_order_and_dedupe);
    RUN(test_bounds);
    RUN(test_json);
    return unit_report("test_scan_findings");
}
