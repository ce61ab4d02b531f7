/*
 * ECR's EnhancedImageScanFinding (the Amazon Inspector shape that
 * DescribeImageScanFindings returns under scanType ENHANCED) rendered from
 * one finding berth stored in the basic ImageScanFinding shape: the
 * package, its installed and fixed versions and the CVSS score come from
 * its attributes. Pure functions; thread-safe.
 */
#include "ecr_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/spec/digest.h"

/* Longest package architecture rendered. */
#define SCAN_ARCH_TEXT_MAX 257

/* The value of the attribute key of a basic finding, or NULL. Borrowed. */
static const char *attribute(const json_t *basic, const char *key)
{
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(basic, "attributes"), i, a)
    {
        const char *k = json_string_value(json_object_get(a, "key"));
        if (k != NULL && strcmp(k, key) == 0) {
            return json_string_value(json_object_get(a, "value"));
        }
    }
    return NULL;
}

static const char *member(const json_t *basic, const char *key)
{
    const char *s = json_string_value(json_object_get(basic, key));
    return s != NULL && s[0] != '\0' ? s : NULL;
}

/* Set key to value (stolen); a NULL value (nothing to say, or out of
 * memory: the caller checks *ok) sets nothing. */
static void set(json_t *obj, const char *key, json_t *value, bool *ok)
{
    if (value == NULL) {
        return;
    }
    if (json_object_set_new(obj, key, value) != 0) {
        *ok = false;
    }
}

static json_t *string_or_null(const char *s)
{
    return s != NULL ? json_string(s) : NULL;
}

/* The CVSS version a vector names ("CVSS:3.1/AV:N/..." is "3.1"), or
 * the fallback when it names none (CVSS v2 vectors do not). */
static void cvss_version(const char *vector, const char *fallback, char *out, size_t cap)
{
    const char *slash = strchr(vector, '/');
    if (strncmp(vector, "CVSS:", 5) == 0 && slash != NULL && (size_t)(slash - vector - 5) < cap) {
        snprintf(out, cap, "%.*s", (int)(slash - vector - 5), vector + 5);
        return;
    }
    snprintf(out, cap, "%s", fallback);
}

/* A CVSS score from an attribute's text, when it is a number 0-10. */
static bool parse_score(const char *text, double *out)
{
    if (text == NULL || text[0] == '\0') {
        return false;
    }
    char *end = NULL;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || !(v >= 0.0 && v <= 10.0)) {
        return false;
    }
    *out = v;
    return true;
}

/* Inspector's finding id: 32 hex digits, stable for the same image,
 * vulnerability and package. */
static void finding_arn(const struct ecr_enhanced_image *img, const char *id, const char *package,
                        const char *version, char *out, size_t cap)
{
    char key[2048];
    snprintf(key, sizeof(key), "%s\n%s\n%s\n%s\n%s", img->repo, img->digest, id,
             package ? package : "", version ? version : "");
    uint8_t raw[32] = {0};
    char hex[33];
    if (digest_sha256_raw(key, strlen(key), raw) != BERTH_OK) {
        memset(raw, 0, sizeof(raw));
    }
    for (int i = 0; i < 16; i++) {
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    }
    snprintf(out, cap, "arn:aws:inspector2:%s:%s:finding/%s", img->region, img->account, hex);
}

/* resources: the image the finding is in (platform: the OS the scanner
 * found, Inspector's name for it, or NULL). */
static json_t *resources(const struct ecr_enhanced_image *img, const char *platform, bool *ok)
{
    json_t *details = json_pack("{s:s, s:s, s:s}", "registry", img->account, "repositoryName",
                                img->repo, "imageHash", img->digest);
    if (details == NULL) {
        *ok = false;
        return NULL;
    }
    if (img->tags != NULL && json_array_size(img->tags) > 0) {
        set(details, "imageTags", json_deep_copy(img->tags), ok);
    }
    if (img->pushed_at_ms > 0) {
        set(details, "pushedAt", ecr_time(img->pushed_at_ms), ok);
    }
    set(details, "architecture", string_or_null(img->architecture), ok);
    set(details, "author", string_or_null(img->author), ok);
    set(details, "platform", string_or_null(platform), ok);
    char id[1200];
    snprintf(id, sizeof(id), "%s/%s", img->repo_arn, img->digest);
    json_t *list = json_pack("[{s:s, s:s, s:{s:o}}]", "type", "AWS_ECR_CONTAINER_IMAGE", "id", id,
                             "details", "awsEcrContainerImage", details);
    if (list == NULL) {
        *ok = false;
    }
    return list;
}

/* An OS package's version as its manager writes it, "[epoch:]version
 * [-release]" (dpkg's upstream version and Debian revision, rpm's version
 * and release, apk's version and "-r<N>"), split as Inspector reports it:
 * epoch 0 when none. The parts go into pkg. */
static void split_version(json_t *pkg, const char *full, bool *ok)
{
    long long epoch = 0;
    const char *colon = strchr(full, ':');
    if (colon != NULL && colon > full && strspn(full, "0123456789") == (size_t)(colon - full) &&
        colon - full < 10) {
        epoch = strtoll(full, NULL, 10);
        full = colon + 1;
    }
    const char *dash = strrchr(full, '-');
    size_t n =
        dash != NULL && dash > full && dash[1] != '\0' ? (size_t)(dash - full) : strlen(full);
    set(pkg, "epoch", json_integer(epoch), ok);
    set(pkg, "version", json_stringn(full, n), ok);
    if (n < strlen(full)) {
        set(pkg, "release", json_string(full + n + 1), ok);
    }
}

/* A package architecture in Inspector's upper case ("amd64" -> "AMD64"). */
static json_t *upper(const char *s)
{
    if (s == NULL) {
        return NULL;
    }
    char buf[SCAN_ARCH_TEXT_MAX];
    size_t n = 0;
    for (; s[n] != '\0' && n + 1 < sizeof(buf); n++) {
        buf[n] = (char)toupper((unsigned char)s[n]);
    }
    return json_stringn(buf, n);
}

json_t *ecr_enhanced_finding(const json_t *basic, const struct ecr_enhanced_image *img)
{
    const char *id = member(basic, "name");
    const char *severity = member(basic, "severity");
    if (id == NULL || severity == NULL) {
        return NULL;
    }
    const char *package = attribute(basic, "package_name");
    const char *version = attribute(basic, "package_version");
    const char *fixed = attribute(basic, "fixed_in_version");
    const char *uri = member(basic, "uri");
    const char *manager = attribute(basic, "package_manager");
    bool is_os = manager != NULL && (strcmp(manager, "dpkg") == 0 || strcmp(manager, "apk") == 0 ||
                                     strcmp(manager, "rpm") == 0);
    bool ok = true;
    json_t *out = json_object();
    json_t *details = json_object();
    json_t *pkgs = json_array();
    if (out == NULL || details == NULL || pkgs == NULL) {
        json_decref(out);
        json_decref(details);
        json_decref(pkgs);
        return NULL;
    }

    /* the vulnerable package: one per basic finding */
    json_t *pkg = json_object();
    if (pkg == NULL || json_array_append_new(pkgs, pkg) != 0) {
        ok = false;
    } else {
        set(pkg, "name", string_or_null(package), &ok);
        if (is_os && version != NULL) {
            split_version(pkg, version, &ok);
        } else {
            set(pkg, "version", string_or_null(version), &ok);
        }
        set(pkg, "fixedInVersion", string_or_null(fixed), &ok);
        /* Inspector's word for a distribution's package manager */
        set(pkg, "packageManager", is_os ? json_string("OS") : string_or_null(manager), &ok);
        set(pkg, "arch", upper(attribute(basic, "package_arch")), &ok);
    }

    /* CVSS: v3 as berth's scanner reports it, v2 as a hook may */
    json_t *cvss = json_array();
    double score = 0.0;
    const char *score_vector = NULL;
    char score_version[16] = "";
    static const struct {
        const char *vector, *score, *version;
    } kinds[] = {{"CVSS3_VECTOR", "CVSS3_SCORE", "3.1"}, {"CVSS2_VECTOR", "CVSS2_SCORE", "2.0"}};
    for (size_t k = 0; cvss != NULL && k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        const char *vector = attribute(basic, kinds[k].vector);
        double v;
        if (vector == NULL || !parse_score(attribute(basic, kinds[k].score), &v)) {
            continue;
        }
        char ver[16];
        cvss_version(vector, kinds[k].version, ver, sizeof(ver));
        json_t *c =
            json_pack("{s:f, s:s, s:s}", "baseScore", v, "scoringVector", vector, "version", ver);
        if (c == NULL || json_array_append_new(cvss, c) != 0) {
            ok = false;
        }
        if (score_vector == NULL) {
            score = v;
            score_vector = vector;
            snprintf(score_version, sizeof(score_version), "%s", ver);
        }
    }
    if (cvss == NULL) {
        ok = false;
    } else if (json_array_size(cvss) > 0) {
        set(details, "cvss", cvss, &ok);
    } else {
        json_decref(cvss);
    }
    if (uri != NULL) {
        set(details, "referenceUrls", json_pack("[s]", uri), &ok);
        set(details, "sourceUrl", json_string(uri), &ok);
    }
    set(details, "vendorSeverity", json_string(severity), &ok);
    set(details, "vulnerabilityId", json_string(id), &ok);
    set(details, "vulnerablePackages", pkgs, &ok);

    char arn[256];
    finding_arn(img, id, package, version, arn, sizeof(arn));
    char title[1024];
    if (package != NULL) {
        snprintf(title, sizeof(title), "%s - %s", id, package);
    } else {
        snprintf(title, sizeof(title), "%s", id);
    }
    set(out, "awsAccountId", json_string(img->account), &ok);
    set(out, "description", string_or_null(member(basic, "description")), &ok);
    set(out, "findingArn", json_string(arn), &ok);
    set(out, "firstObservedAt", ecr_time(img->observed_at_ms), &ok);
    set(out, "lastObservedAt", ecr_time(img->observed_at_ms), &ok);
    set(out, "updatedAt", ecr_time(img->observed_at_ms), &ok);
    set(out, "packageVulnerabilityDetails", details, &ok);
    if (fixed != NULL) {
        char text[1024];
        snprintf(text, sizeof(text), "Upgrade %s to version %s or later.",
                 package != NULL ? package : "the package", fixed);
        set(out, "remediation", json_pack("{s:{s:s}}", "recommendation", "text", text), &ok);
    }
    set(out, "resources", resources(img, attribute(basic, "platform"), &ok), &ok);
    if (score_vector != NULL) {
        set(out, "score", json_real(score), &ok);
        set(out, "scoreDetails",
            json_pack("{s:{s:f, s:s, s:s, s:[]}}", "cvss", "score", score, "scoringVector",
                      score_vector, "version", score_version, "adjustments"),
            &ok);
    }
    /* Inspector's word for a severity the source did not give */
    set(out, "severity", json_string(strcmp(severity, "UNDEFINED") == 0 ? "UNTRIAGED" : severity),
        &ok);
    set(out, "status", json_string("ACTIVE"), &ok);
    set(out, "title", json_string(title), &ok);
    set(out, "type", json_string("PACKAGE_VULNERABILITY"), &ok);
    set(out, "fixAvailable", json_string(fixed != NULL ? "YES" : "NO"), &ok);
    if (!ok) {
        json_decref(out);
        return NULL;
    }
    return out;
}
