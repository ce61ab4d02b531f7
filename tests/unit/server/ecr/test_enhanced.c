/* Unit tests for server/ecr/enhanced.c: a stored basic finding rendered
 * as ECR's EnhancedImageScanFinding (fixAvailable, fixedInVersion, the
 * CVSS scores, severity, title, the image resource). */
#include "unit.h"

#include "server/ecr/enhanced.c"

static const struct ecr_enhanced_image image = {
    .account = "000000000000",
    .region = "us-east-1",
    .repo = "team/app",
    .repo_arn = "arn:aws:ecr:us-east-1:000000000000:repository/team/app",
    .digest = "sha256:00000000000000000000000000000000000000000000000000000000000000aa",
    .tags = NULL,
    .pushed_at_ms = 1700000000000,
    .observed_at_ms = 1700000100500,
};

static json_t *render(const char *basic_text, const struct ecr_enhanced_image *img)
{
    json_t *basic = json_loads(basic_text, 0, NULL);
    CHECK(basic != NULL);
    json_t *out = ecr_enhanced_finding(basic, img);
    json_decref(basic);
    return out;
}

static const char *str(json_t *obj, const char *path)
{
    /* "a.b.c", with digits for array indexes */
    json_t *cur = obj;
    const char *p = path;
    while (cur != NULL && *p != '\0') {
        const char *dot = strchr(p, '.');
        size_t len = dot != NULL ? (size_t)(dot - p) : strlen(p);
        char part[64];
        snprintf(part, sizeof(part), "%.*s", (int)len, p);
        cur = json_is_array(cur) ? json_array_get(cur, (size_t)strtoul(part, NULL, 10))
                                 : json_object_get(cur, part);
        p += len + (dot != NULL ? 1 : 0);
    }
    return json_string_value(cur);
}

static double num(json_t *obj, const char *key)
{
    return json_number_value(json_object_get(obj, key));
}

static void test_fixed(void)
{
    json_t *tags = json_pack("[s, s]", "v1", "latest");
    struct ecr_enhanced_image img = image;
    img.tags = tags;
    json_t *e = render(
        "{\"name\": \"CVE-2023-5363\", \"description\": \"openssl - security update\", "
        "\"uri\": \"https://www.debian.org/security/2023/dsa-5532\", \"severity\": \"HIGH\", "
        "\"attributes\": [{\"key\": \"package_version\", \"value\": \"3.0.11-1~deb12u1\"}, "
        "{\"key\": \"package_name\", \"value\": \"openssl\"}, "
        "{\"key\": \"fixed_in_version\", \"value\": \"3.0.11-1~deb12u2\"}, "
        "{\"key\": \"CVSS3_VECTOR\", \"value\": \"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H\"}, "
        "{\"key\": \"CVSS3_SCORE\", \"value\": \"7.5\"}]}",
        &img);
    CHECK(e != NULL);
    CHECK_STR(str(e, "fixAvailable"), "YES");
    CHECK(json_object_get(e, "exploitAvailable") == NULL); /* berth has no exploit data */
    CHECK_STR(str(e, "packageVulnerabilityDetails.vulnerablePackages.0.fixedInVersion"),
              "3.0.11-1~deb12u2");
    CHECK_STR(str(e, "packageVulnerabilityDetails.vulnerablePackages.0.name"), "openssl");
    CHECK_STR(str(e, "packageVulnerabilityDetails.vulnerablePackages.0.version"),
              "3.0.11-1~deb12u1");
    CHECK_STR(str(e, "packageVulnerabilityDetails.vulnerabilityId"), "CVE-2023-5363");
    CHECK_STR(str(e, "packageVulnerabilityDetails.vendorSeverity"), "HIGH");
    CHECK_STR(str(e, "packageVulnerabilityDetails.sourceUrl"),
              "https://www.debian.org/security/2023/dsa-5532");
    CHECK_STR(str(e, "packageVulnerabilityDetails.cvss.0.version"), "3.1");
    CHECK(num(json_array_get(
                  json_object_get(json_object_get(e, "packageVulnerabilityDetails"), "cvss"), 0),
              "baseScore") == 7.5);
    CHECK(num(e, "score") == 7.5);
    CHECK_STR(str(e, "scoreDetails.cvss.scoringVector"),
              "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H");
    CHECK_STR(str(e, "severity"), "HIGH");
    CHECK_STR(str(e, "status"), "ACTIVE");
    CHECK_STR(str(e, "type"), "PACKAGE_VULNERABILITY");
    CHECK_STR(str(e, "title"), "CVE-2023-5363 - openssl");
    CHECK_STR(str(e, "description"), "openssl - security update");
    CHECK_STR(str(e, "awsAccountId"), "000000000000");
    CHECK_STR(str(e, "remediation.recommendation.text"),
              "Upgrade openssl to version 3.0.11-1~deb12u2 or later.");
    CHECK_STR(str(e, "resources.0.type"), "AWS_ECR_CONTAINER_IMAGE");
    CHECK_STR(str(e, "resources.0.id"), "arn:aws:ecr:us-east-1:000000000000:repository/team/app/"
                                        "sha256:00000000000000000000000000000000000000000000000000"
                                        "000000000000aa");
    CHECK_STR(str(e, "resources.0.details.awsEcrContainerImage.imageTags.1"), "latest");
    CHECK_STR(str(e, "resources.0.details.awsEcrContainerImage.repositoryName"), "team/app");
    CHECK(num(e, "lastObservedAt") == 1700000100.5);
    /* the finding's id is stable and Inspector's shape */
    const char *arn = str(e, "findingArn");
    CHECK(arn != NULL &&
          strncmp(arn, "arn:aws:inspector2:us-east-1:000000000000:finding/", 50) == 0);
    CHECK(arn != NULL && strlen(arn) == 50 + 32);
    json_t *again = render("{\"name\": \"CVE-2023-5363\", \"severity\": \"HIGH\", \"attributes\": "
                           "[{\"key\": \"package_version\", \"value\": \"3.0.11-1~deb12u1\"}, "
                           "{\"key\": \"package_name\", \"value\": \"openssl\"}]}",
                           &img);
    CHECK_STR(str(again, "findingArn"), arn);
    json_decref(again);
    json_decref(e);
    json_decref(tags);
}

static void test_no_fix(void)
{
    json_t *e = render("{\"name\": \"CVE-2023-45853\", \"description\": \"\", \"severity\": "
                       "\"UNDEFINED\", \"attributes\": [{\"key\": \"package_version\", \"value\": "
                       "\"1:1.2.13.dfsg-1\"}, {\"key\": \"package_name\", \"value\": \"zlib\"}]}",
                       &image);
    CHECK(e != NULL);
    CHECK_STR(str(e, "fixAvailable"), "NO");
    json_t *pkg = json_array_get(
        json_object_get(json_object_get(e, "packageVulnerabilityDetails"), "vulnerablePackages"),
        0);
    CHECK(json_object_get(pkg, "fixedInVersion") == NULL);
    CHECK(json_object_get(e, "remediation") == NULL);
    CHECK(json_object_get(e, "score") == NULL);
    CHECK(json_object_get(e, "description") == NULL);
    CHECK(json_object_get(json_object_get(e, "packageVulnerabilityDetails"), "cvss") == NULL);
    CHECK_STR(str(e, "severity"), "UNTRIAGED");
    CHECK(json_object_get(
              json_object_get(
                  json_object_get(json_array_get(json_object_get(e, "resources"), 0), "details"),
                  "awsEcrContainerImage"),
              "imageTags") == NULL);
    json_decref(e);
}

static void test_cvss2_and_bad_input(void)
{
    /* a hook's CVSS v2 score; a v3 score that is not a number is left out */
    json_t *e = render("{\"name\": \"CVE-1\", \"severity\": \"MEDIUM\", \"attributes\": ["
                       "{\"key\": \"CVSS3_VECTOR\", \"value\": \"CVSS:3.0/AV:L\"}, "
                       "{\"key\": \"CVSS3_SCORE\", \"value\": \"high\"}, "
                       "{\"key\": \"CVSS2_VECTOR\", \"value\": \"AV:L/AC:L/Au:N/C:P/I:P/A:P\"}, "
                       "{\"key\": \"CVSS2_SCORE\", \"value\": \"4.6\"}]}",
                       &image);
    CHECK(e != NULL);
    CHECK_STR(str(e, "packageVulnerabilityDetails.cvss.0.version"), "2.0");
    CHECK(json_array_size(
              json_object_get(json_object_get(e, "packageVulnerabilityDetails"), "cvss")) == 1);
    CHECK(num(e, "score") == 4.6);
    CHECK_STR(str(e, "title"), "CVE-1");
    json_decref(e);
    /* no name or severity: nothing to render */
    CHECK(render("{\"severity\": \"LOW\"}", &image) == NULL);
    CHECK(render("{\"name\": \"CVE-2\"}", &image) == NULL);
}

static json_int_t integer(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    CHECK(json_is_integer(v));
    return json_integer_value(v);
}

/* What berth's scanner knew about the package and the image: Inspector's
 * packageManager, epoch, version, release and arch; the image's
 * architecture, author and platform. */
static void test_package_and_image_details(void)
{
    struct ecr_enhanced_image img = image;
    img.architecture = "amd64";
    img.author = "team@example.com";
    static const char *const dpkg =
        "{\"name\": \"CVE-2022-49043\", \"severity\": \"HIGH\", \"attributes\": ["
        "{\"key\": \"package_version\", \"value\": \"1:2.9.14+dfsg-1.3~deb12u1\"}, "
        "{\"key\": \"package_name\", \"value\": \"libxml2\"}, "
        "{\"key\": \"package_manager\", \"value\": \"dpkg\"}, "
        "{\"key\": \"package_arch\", \"value\": \"amd64\"}, "
        "{\"key\": \"platform\", \"value\": \"DEBIAN_12\"}]}";
    json_t *e = render(dpkg, &img);
    CHECK(e != NULL);
    json_t *pkg = json_array_get(
        json_object_get(json_object_get(e, "packageVulnerabilityDetails"), "vulnerablePackages"),
        0);
    CHECK_STR(str(pkg, "packageManager"), "OS");
    CHECK(integer(pkg, "epoch") == 1);
    CHECK_STR(str(pkg, "version"), "2.9.14+dfsg");
    CHECK_STR(str(pkg, "release"), "1.3~deb12u1");
    CHECK_STR(str(pkg, "arch"), "AMD64");
    CHECK_STR(str(e, "resources.0.details.awsEcrContainerImage.architecture"), "amd64");
    CHECK_STR(str(e, "resources.0.details.awsEcrContainerImage.author"), "team@example.com");
    CHECK_STR(str(e, "resources.0.details.awsEcrContainerImage.platform"), "DEBIAN_12");
    /* the title and id still name the whole version */
    CHECK_STR(str(e, "title"), "CVE-2022-49043 - libxml2");
    json_decref(e);

    /* rpm without an epoch: 0; apk's -r<N> is the release; a version
     * without a release has none */
    static const struct {
        const char *manager, *full, *version, *release;
    } cases[] = {
        {"rpm", "3.0.7-27.el9", "3.0.7", "27.el9"},
        {"apk", "3.1.4-r5", "3.1.4", "r5"},
        {"dpkg", "2.36", "2.36", NULL},
        {"dpkg", "1:2.36", "2.36", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text),
                 "{\"name\": \"CVE-3\", \"severity\": \"LOW\", \"attributes\": ["
                 "{\"key\": \"package_version\", \"value\": \"%s\"}, "
                 "{\"key\": \"package_name\", \"value\": \"p\"}, "
                 "{\"key\": \"package_manager\", \"value\": \"%s\"}]}",
                 cases[i].full, cases[i].manager);
        e = render(text, &image);
        CHECK(e != NULL);
        pkg = json_array_get(json_object_get(json_object_get(e, "packageVulnerabilityDetails"),
                                             "vulnerablePackages"),
                             0);
        CHECK_STR(str(pkg, "packageManager"), "OS");
        CHECK(integer(pkg, "epoch") == (strchr(cases[i].full, ':') != NULL ? 1 : 0));
        CHECK_STR(str(pkg, "version"), cases[i].version);
        if (cases[i].release != NULL) {
            CHECK_STR(str(pkg, "release"), cases[i].release);
        } else {
            CHECK(json_object_get(pkg, "release") == NULL);
        }
        CHECK(json_object_get(pkg, "arch") == NULL);
        /* no config read: no architecture; no platform attribute: none */
        CHECK(str(e, "resources.0.details.awsEcrContainerImage.architecture") == NULL);
        CHECK(str(e, "resources.0.details.awsEcrContainerImage.platform") == NULL);
        json_decref(e);
    }

    /* a hook's finding names no package manager: the version as it is */
    e = render("{\"name\": \"CVE-4\", \"severity\": \"LOW\", \"attributes\": ["
               "{\"key\": \"package_version\", \"value\": \"1:2.0-3\"}, "
               "{\"key\": \"package_name\", \"value\": \"q\"}]}",
               &image);
    pkg = json_array_get(
        json_object_get(json_object_get(e, "packageVulnerabilityDetails"), "vulnerablePackages"),
        0);
    CHECK_STR(str(pkg, "version"), "1:2.0-3");
    CHECK(json_object_get(pkg, "epoch") == NULL);
    CHECK(json_object_get(pkg, "packageManager") == NULL);
    json_decref(e);
}

int main(void)
{
    RUN(test_fixed);
    RUN(test_package_and_image_details);
    RUN(test_no_fix);
    RUN(test_cvss2_and_bad_input);
    return unit_report("test_ecr_enhanced");
}
