/*
 * Scan findings as ECR reports them (name, description, uri, severity and
 * attributes), a list type with a deterministic order, and one finding in
 * ECR's ImageScanFinding JSON shape. Not thread-safe per list; a list has
 * one owner.
 */
#ifndef BERTH_SCAN_FINDINGS_H
#define BERTH_SCAN_FINDINGS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/err.h"
#include "storage/spec/scan_severity.h"

/* ECR's limits on a finding's description (cut at a UTF-8 character
 * boundary) and uri (dropped when longer), applied where findings enter
 * berth: the vulnerability database import and the hook's output. */
#define SCAN_DESCRIPTION_MAX 2048
#define SCAN_URI_MAX 2048
/* ECR's limits on attribute values. */
#define SCAN_ATTRIBUTE_VALUE_MAX 256

/* In a list the strings are owned by the list; passed to scan_findings_add
 * they are borrowed and copied. */
struct scan_finding {
    const char *name;        /* CVE id, or the record id when it names no CVE */
    const char *description; /* "" when the record has none */
    const char *uri;         /* NULL when the record has no reference */
    enum scan_severity severity;
    const char *package_name;    /* the package the record names (source package) */
    const char *package_version; /* the installed version that was compared */
    const char *fixed_version;   /* the version that fixes it; NULL when none is known */
    int cvss3_tenths;            /* base score x 10, or -1 */
    const char *cvss3_vector;    /* NULL when cvss3_tenths is -1 */
    const char *source_id;       /* the vulnerability record's id (OSV id) */
    /* What the scanner knew about the installed package and the image,
     * each NULL when unknown: the package manager ("dpkg", "apk", "rpm"),
     * the package's architecture as its database names it, and the
     * image's OS in Amazon Inspector's form ("DEBIAN_12"). */
    const char *package_manager;
    const char *package_arch;
    const char *platform;
};

struct scan_findings {
    struct scan_finding *items;
    size_t count;
    size_t cap;
};

void scan_findings_init(struct scan_findings *f);
void scan_findings_fini(struct scan_findings *f);

/*
 * Append a copy of *src (strings copied as they are: the description and
 * uri come from the vulnerability database, which keeps them within
 * SCAN_DESCRIPTION_MAX and SCAN_URI_MAX; a CVSS vector or package field
 * over SCAN_ATTRIBUTE_VALUE_MAX is refused; so is a package_manager,
 * package_arch or platform over it). BERTH_EINVAL when name,
 * package_name, package_version or source_id is missing or too long;
 * BERTH_ENOMEM.
 */
enum berth_err scan_findings_add(struct scan_findings *f, const struct scan_finding *src);

/*
 * Remove duplicates (same name, package_name and package_version: one
 * vulnerability reported by two records, e.g. a DSA and a per-CVE record;
 * the most severe is kept, then the smallest source_id) and sort: severity
 * from CRITICAL down to UNDEFINED, then name, package_name,
 * package_version. The result is the same for any input order.
 */
void scan_findings_finish(struct scan_findings *f);

/*
 * One finding in ECR's shape: {"name", "description", "uri", "severity",
 * "attributes": [{"key": "package_version", ...}, {"key":
 * "package_name", ...}, and when known "fixed_in_version", "CVSS3_VECTOR",
 * "CVSS3_SCORE", "package_manager", "package_arch", "platform"]}.
 * New reference (json_decref it); NULL when out of memory.
 */
json_t *scan_finding_to_json(const struct scan_finding *f);

/* Remove from a finding in that shape the attributes only ECR's enhanced
 * shape reports (package_manager, package_arch, platform: its
 * packageManager, arch and platform), for ECR's basic shape, which has
 * no such members. Out of memory leaves them. */
void scan_finding_strip_enhanced(json_t *finding);

#endif
