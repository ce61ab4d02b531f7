/*
 * OSV vulnerability records (https://ossf.github.io/osv-schema/): parsing
 * a record's JSON into a C structure, the schema's evaluation algorithm
 * ("is version v of this package affected?") with each ecosystem's own
 * version ordering, and the choices berth makes when turning a record into
 * an ECR finding (its name, URI and severity). Pure functions on their
 * arguments; thread-safe; a parsed record has one owner.
 */
#ifndef BERTH_OSV_H
#define BERTH_OSV_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "storage/spec/scan_severity.h"
#include "scan/packages/scan_version.h"

/* Bounds on one record; a record over any of them is refused. */
#define OSV_RECORD_MAX (4 << 20) /* bytes of JSON */
#define OSV_ID_MAX 128
#define OSV_NAME_MAX 256 /* ecosystem and package names */
#define OSV_MAX_AFFECTED 4096
#define OSV_MAX_RANGES 256
#define OSV_MAX_EVENTS 4096
#define OSV_MAX_VERSIONS 100000
#define OSV_MAX_LIST 4096 /* aliases, upstream, references, severity entries */

enum osv_event_kind {
    OSV_EVENT_INTRODUCED,
    OSV_EVENT_FIXED,
    OSV_EVENT_LAST_AFFECTED,
    OSV_EVENT_LIMIT,
};

/* All strings below are borrowed from the parsed JSON the record owns. */
struct osv_event {
    enum osv_event_kind kind;
    const char *version;
};

struct osv_range {
    const char *type; /* "ECOSYSTEM", "SEMVER", "GIT" */
    struct osv_event *events;
    size_t event_count;
};

struct osv_severity {
    const char *type; /* "CVSS_V3", "CVSS_V4", "Ubuntu", ... */
    const char *score;
};

struct osv_affected {
    const char *ecosystem; /* "Debian:12"; NULL when the entry has no package */
    const char *name;      /* package name in that ecosystem */
    struct osv_range *ranges;
    size_t range_count;
    const char **versions;
    size_t version_count;
    struct osv_severity *severity;
    size_t severity_count;
    const char *severity_word; /* ecosystem_specific.severity or database_specific.severity */
    void *owner;               /* private: set when parsed on its own (osv_affected_parse) */
};

struct osv_reference {
    const char *type; /* "ADVISORY", "WEB", ... */
    const char *url;
};

struct osv_record {
    const char *id;
    const char *modified; /* "" when absent */
    const char *summary;  /* NULL when absent */
    const char *details;  /* NULL when absent */
    const char **aliases;
    size_t alias_count;
    const char **upstream;
    size_t upstream_count;
    struct osv_severity *severity;
    size_t severity_count;
    struct osv_affected *affected;
    size_t affected_count;
    struct osv_reference *references;
    size_t reference_count;
    const char *severity_word; /* database_specific.severity, or NULL */
    bool is_withdrawn;
    void *owner; /* private: the parsed JSON */
};

/*
 * Parse one OSV record. Unknown fields are ignored, as the schema asks;
 * known fields must have the schema's types. BERTH_EINVAL with a one-line
 * reason in err (cap bytes) when the JSON is malformed, the id is missing
 * or a field has the wrong type or too many elements; BERTH_ETOOBIG over
 * OSV_RECORD_MAX; BERTH_ENOMEM. Free with osv_record_free.
 */
enum berth_err osv_record_parse(const char *json, size_t len, struct osv_record **out, char *err,
                                size_t cap);
void osv_record_free(struct osv_record *rec);

/*
 * The name of a finding for this record: the id when it is a CVE id, else
 * the first CVE among aliases, else the first CVE among upstream ids
 * (Debian's and Ubuntu's per-CVE records), else the id itself. ECR's basic
 * scan names findings by CVE, so this keeps names comparable. Borrowed.
 */
const char *osv_record_finding_name(const struct osv_record *rec);

/* The finding's uri: the first ADVISORY reference, else the first WEB
 * one, else the first reference of any type; NULL when there is none. */
const char *osv_record_uri(const struct osv_record *rec);

/* Severity of a finding for one affected package. */
struct osv_severity_result {
    enum scan_severity severity;
    int cvss3_tenths;         /* -1 when no CVSS v3 vector was used */
    const char *cvss3_vector; /* borrowed from the record; NULL with -1 */
};

/*
 * Resolve the severity for aff (an element of rec->affected, or NULL for
 * the record as a whole): the first valid CVSS_V3 vector of the affected
 * entry, then of the record, turned into its base score and ECR level;
 * else the first severity word that maps (the entry's "Ubuntu" severity,
 * its ecosystem_specific / database_specific severity, then the record's
 * database_specific.severity); else UNDEFINED. Malformed vectors are
 * skipped, never guessed at.
 */
void osv_resolve_severity(const struct osv_record *rec, const struct osv_affected *aff,
                          struct osv_severity_result *out);

/*
 * The schema's evaluation for one affected entry: the version is affected
 * when it is in versions[] (by the scheme's equality) or inside an
 * ECOSYSTEM range (events sorted by version, "0" before everything;
 * introduced opens, fixed closes at that version, last_affected closes
 * after it; limit events bound the range). Ranges of other types, and
 * ranges whose events cannot be compared, are skipped. BERTH_EINVAL when
 * version itself cannot be compared under scheme; BERTH_EUNSUPPORTED for
 * SCAN_VERSION_NONE.
 */
enum berth_err osv_affected_includes(const struct osv_affected *aff,
                                     enum scan_version_scheme scheme, const char *version,
                                     bool *out);

/* The version that fixes version: the first fixed event above it in an
 * ECOSYSTEM range that includes it. NULL when no range that includes it has
 * one (no fix yet, only last_affected, or it is listed in versions[] only).
 * Borrowed from aff. */
const char *osv_affected_fixed(const struct osv_affected *aff, enum scan_version_scheme scheme,
                               const char *version);

/*
 * Compact JSON holding only what matching needs from rec->affected[i]:
 * {"ranges":[ECOSYSTEM ranges],"versions":[...]}. Caller frees. NULL when
 * out of memory.
 */
char *osv_affected_dump(const struct osv_affected *aff);

/* Parse a dump back (package fields are NULL). Free with
 * osv_affected_free. BERTH_EINVAL, BERTH_ENOMEM. */
enum berth_err osv_affected_parse(const char *json, size_t len, struct osv_affected **out);
void osv_affected_free(struct osv_affected *aff);

#endif
