/*
 * OSV records: strict-but-tolerant parsing with jansson (unknown fields are
 * ignored, known ones must have the schema's types), the schema's affected
 * evaluation, and berth's finding name / uri / severity choices. A parsed
 * record borrows its strings from the JSON it owns; every array is
 * allocated from a per-record pool freed in one go.
 */
#include "scan/vulndb/osv.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "scan/findings/scan_cvss.h"
#include "common/str.h"

/* Longest version string in a record (versions of non-OS ecosystems can be
 * long git tags; OS package versions are far shorter). */
#define OSV_VERSION_MAX 1024

struct holder {
    json_t *root;
    void **ptrs;
    size_t count;
    size_t cap;
};

struct ctx {
    struct holder *h;
    char *err;
    size_t cap;
};

static void holder_free(struct holder *h)
{
    if (h == NULL) {
        return;
    }
    for (size_t i = 0; i < h->count; i++) {
        free(h->ptrs[i]);
    }
    free(h->ptrs);
    json_decref(h->root);
    free(h);
}

/* Zeroed memory for n elements of size bytes, owned by the holder. */
static void *pool_alloc(struct holder *h, size_t n, size_t size)
{
    if (h->count == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        void **ptrs = realloc(h->ptrs, cap * sizeof(*ptrs));
        if (ptrs == NULL) {
            return NULL;
        }
        h->ptrs = ptrs;
        h->cap = cap;
    }
    void *p = calloc(n ? n : 1, size);
    if (p != NULL) {
        h->ptrs[h->count++] = p;
    }
    return p;
}

static enum berth_err bad(struct ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static enum berth_err bad(struct ctx *c, const char *fmt, ...)
{
    if (c->cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err, c->cap, fmt, ap);
        va_end(ap);
    }
    return BERTH_EINVAL;
}

/* A string value without embedded NULs and at most max bytes. */
static bool clean_string(json_t *v, size_t max)
{
    return json_is_string(v) && json_string_length(v) <= max &&
           strlen(json_string_value(v)) == json_string_length(v);
}

/* Optional string member; *out stays NULL when absent. */
static enum berth_err opt_string(struct ctx *c, json_t *obj, const char *key, size_t max,
                                 const char **out)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        return BERTH_OK;
    }
    if (!clean_string(v, max)) {
        return bad(c, "%s: expected a string of at most %zu bytes", key, max);
    }
    *out = json_string_value(v);
    return BERTH_OK;
}

static enum berth_err opt_string_array(struct ctx *c, json_t *obj, const char *key, size_t max_n,
                                       size_t max_len, const char ***out, size_t *count)
{
    json_t *arr = json_object_get(obj, key);
    *out = NULL;
    *count = 0;
    if (arr == NULL || json_is_null(arr)) {
        return BERTH_OK;
    }
    if (!json_is_array(arr) || json_array_size(arr) > max_n) {
        return bad(c, "%s: expected an array of at most %zu strings", key, max_n);
    }
    size_t n = json_array_size(arr);
    const char **items = pool_alloc(c->h, n, sizeof(*items));
    if (items == NULL) {
        return BERTH_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        if (!clean_string(v, max_len)) {
            return bad(c, "%s[%zu]: expected a string of at most %zu bytes", key, i, max_len);
        }
        items[i] = json_string_value(v);
    }
    *out = items;
    *count = n;
    return BERTH_OK;
}

static enum berth_err parse_severity(struct ctx *c, json_t *obj, struct osv_severity **out,
                                     size_t *count)
{
    json_t *arr = json_object_get(obj, "severity");
    *out = NULL;
    *count = 0;
    if (arr == NULL || json_is_null(arr)) {
        return BERTH_OK;
    }
    if (!json_is_array(arr) || json_array_size(arr) > OSV_MAX_LIST) {
        return bad(c, "severity: expected an array");
    }
    size_t n = json_array_size(arr);
    struct osv_severity *s = pool_alloc(c->h, n, sizeof(*s));
    if (s == NULL) {
        return BERTH_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(arr, i);
        enum berth_err rc;
        if (!json_is_object(e)) {
            return bad(c, "severity[%zu]: expected an object", i);
        }
        if ((rc = opt_string(c, e, "type", 64, &s[i].type)) != BERTH_OK ||
            (rc = opt_string(c, e, "score", 1024, &s[i].score)) != BERTH_OK) {
            return rc;
        }
        if (s[i].type == NULL || s[i].score == NULL) {
            return bad(c, "severity[%zu]: type and score are required", i);
        }
    }
    *out = s;
    *count = n;
    return BERTH_OK;
}

/* "severity" inside an optional ecosystem_specific / database_specific
 * object, when it is a string. */
static const char *specific_severity(json_t *obj, const char *key)
{
    json_t *spec = json_object_get(obj, key);
    json_t *sev = json_is_object(spec) ? json_object_get(spec, "severity") : NULL;
    return clean_string(sev, 64) ? json_string_value(sev) : NULL;
}

static enum berth_err parse_ranges(struct ctx *c, json_t *obj, struct osv_affected *a)
{
    json_t *arr = json_object_get(obj, "ranges");
    if (arr == NULL || json_is_null(arr)) {
        return BERTH_OK;
    }
    if (!json_is_array(arr) || json_array_size(arr) > OSV_MAX_RANGES) {
        return bad(c, "ranges: expected an array of at most %d ranges", OSV_MAX_RANGES);
    }
    size_t n = json_array_size(arr);
    a->ranges = pool_alloc(c->h, n, sizeof(*a->ranges));
    if (a->ranges == NULL) {
        return BERTH_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_array_get(arr, i);
        struct osv_range *range = &a->ranges[i];
        enum berth_err rc;
        if (!json_is_object(r)) {
            return bad(c, "ranges[%zu]: expected an object", i);
        }
        if ((rc = opt_string(c, r, "type", 64, &range->type)) != BERTH_OK) {
            return rc;
        }
        json_t *events = json_object_get(r, "events");
        if (range->type == NULL || !json_is_array(events) ||
            json_array_size(events) > OSV_MAX_EVENTS) {
            return bad(c, "ranges[%zu]: type and an events array are required", i);
        }
        size_t ne = json_array_size(events);
        range->events = pool_alloc(c->h, ne, sizeof(*range->events));
        if (range->events == NULL) {
            return BERTH_ENOMEM;
        }
        for (size_t j = 0; j < ne; j++) {
            static const char *const kinds[] = {"introduced", "fixed", "last_affected", "limit"};
            json_t *ev = json_array_get(events, j);
            int found = 0;
            if (!json_is_object(ev)) {
                return bad(c, "ranges[%zu].events[%zu]: expected an object", i, j);
            }
            for (int k = 0; k < 4; k++) {
                json_t *v = json_object_get(ev, kinds[k]);
                if (v == NULL) {
                    continue;
                }
                if (!clean_string(v, OSV_VERSION_MAX) || json_string_length(v) == 0) {
                    return bad(c, "ranges[%zu].events[%zu].%s: expected a version", i, j, kinds[k]);
                }
                range->events[j] = (struct osv_event){(enum osv_event_kind)k, json_string_value(v)};
                found++;
            }
            /* the schema allows exactly one kind per event */
            if (found != 1) {
                return bad(c,
                           "ranges[%zu].events[%zu]: expected exactly one of introduced, "
                           "fixed, last_affected, limit",
                           i, j);
            }
        }
        range->event_count = ne;
    }
    a->range_count = n;
    return BERTH_OK;
}

static enum berth_err parse_affected_entry(struct ctx *c, json_t *e, struct osv_affected *a)
{
    enum berth_err rc;
    if (!json_is_object(e)) {
        return bad(c, "affected: expected objects");
    }
    json_t *pkg = json_object_get(e, "package");
    if (pkg != NULL && !json_is_null(pkg)) {
        if (!json_is_object(pkg)) {
            return bad(c, "affected.package: expected an object");
        }
        if ((rc = opt_string(c, pkg, "ecosystem", OSV_NAME_MAX, &a->ecosystem)) != BERTH_OK ||
            (rc = opt_string(c, pkg, "name", OSV_NAME_MAX, &a->name)) != BERTH_OK) {
            return rc;
        }
        if (a->ecosystem == NULL || a->name == NULL) {
            return bad(c, "affected.package: ecosystem and name are required");
        }
    }
    if ((rc = parse_ranges(c, e, a)) != BERTH_OK ||
        (rc = opt_string_array(c, e, "versions", OSV_MAX_VERSIONS, OSV_VERSION_MAX, &a->versions,
                               &a->version_count)) != BERTH_OK ||
        (rc = parse_severity(c, e, &a->severity, &a->severity_count)) != BERTH_OK) {
        return rc;
    }
    a->severity_word = specific_severity(e, "ecosystem_specific");
    if (a->severity_word == NULL) {
        a->severity_word = specific_severity(e, "database_specific");
    }
    return BERTH_OK;
}

static bool id_ok(const char *s)
{
    if (s == NULL || s[0] == '\0') {
        return false;
    }
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            return false;
        }
    }
    return true;
}

static enum berth_err parse_record(struct ctx *c, json_t *root, struct osv_record *rec)
{
    enum berth_err rc;
    if (!json_is_object(root)) {
        return bad(c, "a record must be a JSON object");
    }
    if ((rc = opt_string(c, root, "id", OSV_ID_MAX, &rec->id)) != BERTH_OK) {
        return rc;
    }
    if (!id_ok(rec->id)) {
        return bad(c, "id: a non-empty id without blanks is required");
    }
    const char *withdrawn = NULL;
    if ((rc = opt_string(c, root, "modified", 64, &rec->modified)) != BERTH_OK ||
        (rc = opt_string(c, root, "withdrawn", 64, &withdrawn)) != BERTH_OK ||
        (rc = opt_string(c, root, "summary", OSV_RECORD_MAX, &rec->summary)) != BERTH_OK ||
        (rc = opt_string(c, root, "details", OSV_RECORD_MAX, &rec->details)) != BERTH_OK ||
        (rc = opt_string_array(c, root, "aliases", OSV_MAX_LIST, OSV_ID_MAX, &rec->aliases,
                               &rec->alias_count)) != BERTH_OK ||
        (rc = opt_string_array(c, root, "upstream", OSV_MAX_LIST, OSV_ID_MAX, &rec->upstream,
                               &rec->upstream_count)) != BERTH_OK ||
        (rc = parse_severity(c, root, &rec->severity, &rec->severity_count)) != BERTH_OK) {
        return rc;
    }
    if (rec->modified == NULL) {
        rec->modified = "";
    }
    rec->is_withdrawn = withdrawn != NULL;
    rec->severity_word = specific_severity(root, "database_specific");

    json_t *aff = json_object_get(root, "affected");
    if (aff != NULL && !json_is_null(aff)) {
        if (!json_is_array(aff) || json_array_size(aff) > OSV_MAX_AFFECTED) {
            return bad(c, "affected: expected an array of at most %d entries", OSV_MAX_AFFECTED);
        }
        size_t n = json_array_size(aff);
        rec->affected = pool_alloc(c->h, n, sizeof(*rec->affected));
        if (rec->affected == NULL) {
            return BERTH_ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
            rc = parse_affected_entry(c, json_array_get(aff, i), &rec->affected[i]);
            if (rc != BERTH_OK) {
                return rc;
            }
        }
        rec->affected_count = n;
    }

    json_t *refs = json_object_get(root, "references");
    if (refs != NULL && !json_is_null(refs)) {
        if (!json_is_array(refs) || json_array_size(refs) > OSV_MAX_LIST) {
            return bad(c, "references: expected an array");
        }
        size_t n = json_array_size(refs);
        rec->references = pool_alloc(c->h, n, sizeof(*rec->references));
        if (rec->references == NULL) {
            return BERTH_ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
            json_t *r = json_array_get(refs, i);
            if (!json_is_object(r)) {
                return bad(c, "references[%zu]: expected an object", i);
            }
            if ((rc = opt_string(c, r, "type", 64, &rec->references[i].type)) != BERTH_OK ||
                (rc = opt_string(c, r, "url", 8192, &rec->references[i].url)) != BERTH_OK) {
                return rc;
            }
            if (rec->references[i].url == NULL) {
                return bad(c, "references[%zu]: url is required", i);
            }
        }
        rec->reference_count = n;
    }
    return BERTH_OK;
}

static enum berth_err load(const char *json, size_t len, struct ctx *c, json_t **out)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return bad(c, "invalid JSON at line %d: %s", jerr.line, jerr.text);
    }
    *out = root;
    return BERTH_OK;
}

enum berth_err osv_record_parse(const char *json, size_t len, struct osv_record **out, char *err,
                                size_t cap)
{
    if (cap > 0) {
        err[0] = '\0';
    }
    if (len > OSV_RECORD_MAX) {
        if (cap > 0) {
            snprintf(err, cap, "record is larger than %d bytes", OSV_RECORD_MAX);
        }
        return BERTH_ETOOBIG;
    }
    struct holder *h = calloc(1, sizeof(*h));
    struct osv_record *rec = calloc(1, sizeof(*rec));
    struct ctx c = {h, err, cap};
    enum berth_err rc = BERTH_ENOMEM;
    if (h == NULL || rec == NULL) {
        goto out;
    }
    rc = load(json, len, &c, &h->root);
    if (rc != BERTH_OK) {
        goto out;
    }
    rc = parse_record(&c, h->root, rec);
    if (rc != BERTH_OK) {
        goto out;
    }
    rec->owner = h;
    *out = rec;
    return BERTH_OK;
out:
    holder_free(h);
    free(rec);
    return rc;
}

void osv_record_free(struct osv_record *rec)
{
    if (rec == NULL) {
        return;
    }
    holder_free(rec->owner);
    free(rec);
}

static bool is_cve(const char *s)
{
    return s != NULL && strncmp(s, "CVE-", 4) == 0 && s[4] >= '0' && s[4] <= '9';
}

const char *osv_record_finding_name(const struct osv_record *rec)
{
    if (is_cve(rec->id)) {
        return rec->id;
    }
    for (size_t i = 0; i < rec->alias_count; i++) {
        if (is_cve(rec->aliases[i])) {
            return rec->aliases[i];
        }
    }
    for (size_t i = 0; i < rec->upstream_count; i++) {
        if (is_cve(rec->upstream[i])) {
            return rec->upstream[i];
        }
    }
    return rec->id;
}

const char *osv_record_uri(const struct osv_record *rec)
{
    static const char *const order[] = {"ADVISORY", "WEB"};
    for (size_t k = 0; k < 2; k++) {
        for (size_t i = 0; i < rec->reference_count; i++) {
            const struct osv_reference *r = &rec->references[i];
            if (r->type != NULL && strcmp(r->type, order[k]) == 0) {
                return r->url;
            }
        }
    }
    return rec->reference_count > 0 ? rec->references[0].url : NULL;
}

static bool first_cvss3(const struct osv_severity *s, size_t n, struct osv_severity_result *out)
{
    for (size_t i = 0; i < n; i++) {
        struct scan_cvss3 cv;
        if (strcmp(s[i].type, "CVSS_V3") == 0 && scan_cvss3_parse(s[i].score, &cv) == BERTH_OK) {
            out->severity = scan_severity_from_score(cv.base_tenths);
            out->cvss3_tenths = cv.base_tenths;
            out->cvss3_vector = s[i].score;
            return true;
        }
    }
    return false;
}

static bool word(const char *w, struct osv_severity_result *out)
{
    enum scan_severity sev;
    if (scan_severity_from_word(w, &sev) == BERTH_OK) {
        out->severity = sev;
        return true;
    }
    return false;
}

void osv_resolve_severity(const struct osv_record *rec, const struct osv_affected *aff,
                          struct osv_severity_result *out)
{
    *out = (struct osv_severity_result){SCAN_SEVERITY_UNDEFINED, -1, NULL};
    if (aff != NULL && first_cvss3(aff->severity, aff->severity_count, out)) {
        return;
    }
    if (first_cvss3(rec->severity, rec->severity_count, out)) {
        return;
    }
    if (aff != NULL) {
        for (size_t i = 0; i < aff->severity_count; i++) {
            if (strcmp(aff->severity[i].type, "Ubuntu") == 0 && word(aff->severity[i].score, out)) {
                return;
            }
        }
        if (word(aff->severity_word, out)) {
            return;
        }
    }
    for (size_t i = 0; i < rec->severity_count; i++) {
        if (strcmp(rec->severity[i].type, "Ubuntu") == 0 && word(rec->severity[i].score, out)) {
            return;
        }
    }
    word(rec->severity_word, out);
}

/* Order two events by version; "0" as introduced sorts before all. */
static enum berth_err event_cmp(enum scan_version_scheme scheme, const struct osv_event *a,
                                const struct osv_event *b, int *out)
{
    bool az = a->kind == OSV_EVENT_INTRODUCED && strcmp(a->version, "0") == 0;
    bool bz = b->kind == OSV_EVENT_INTRODUCED && strcmp(b->version, "0") == 0;
    if (az || bz) {
        *out = az && bz ? 0 : az ? -1 : 1;
        return BERTH_OK;
    }
    return scan_version_compare(scheme, a->version, b->version, out);
}

/* Whether version is inside one ECOSYSTEM range; false when the range's
 * events cannot be ordered. When it is and fixed is not NULL, *fixed is
 * the first fixed event above version (NULL when none: no fix yet). */
static bool in_range(const struct osv_range *r, enum scan_version_scheme scheme,
                     const char *version, const char **fixed)
{
    const char *fix = NULL;
    size_t n = r->event_count;
    const struct osv_event **sorted = malloc((n ? n : 1) * sizeof(*sorted));
    bool vulnerable = false, has_limit = false, before_limit = false;
    if (sorted == NULL) {
        return false;
    }
    /* stable insertion sort: ranges have a handful of events */
    for (size_t i = 0; i < n; i++) {
        size_t j = i;
        while (j > 0) {
            int c;
            if (event_cmp(scheme, sorted[j - 1], &r->events[i], &c) != BERTH_OK) {
                goto out;
            }
            if (c <= 0) {
                break;
            }
            sorted[j] = sorted[j - 1];
            j--;
        }
        sorted[j] = &r->events[i];
    }
    for (size_t i = 0; i < n; i++) {
        const struct osv_event *e = sorted[i];
        int c = 0;
        if (e->kind == OSV_EVENT_LIMIT) {
            has_limit = true;
            if (strchr(e->version, '*') != NULL) {
                before_limit = true;
            } else if (scan_version_compare(scheme, version, e->version, &c) == BERTH_OK && c < 0) {
                before_limit = true;
            }
            continue;
        }
        if (e->kind == OSV_EVENT_INTRODUCED && strcmp(e->version, "0") == 0) {
            vulnerable = true;
            continue;
        }
        if (scan_version_compare(scheme, version, e->version, &c) != BERTH_OK) {
            vulnerable = false;
            goto out;
        }
        if (e->kind == OSV_EVENT_INTRODUCED && c >= 0) {
            vulnerable = true;
        } else if (e->kind == OSV_EVENT_FIXED && c >= 0) {
            vulnerable = false;
        } else if (e->kind == OSV_EVENT_LAST_AFFECTED && c > 0) {
            vulnerable = false;
        } else if (e->kind == OSV_EVENT_FIXED && fix == NULL) {
            fix = e->version; /* the first fix above version */
        }
    }
    if (has_limit && !before_limit) {
        vulnerable = false;
    }
out:
    free(sorted);
    if (fixed != NULL) {
        *fixed = vulnerable ? fix : NULL;
    }
    return vulnerable;
}

enum berth_err osv_affected_includes(const struct osv_affected *aff,
                                     enum scan_version_scheme scheme, const char *version,
                                     bool *out)
{
    int self;
    enum berth_err rc = scan_version_compare(scheme, version, version, &self);
    if (rc != BERTH_OK) {
        return rc;
    }
    for (size_t i = 0; i < aff->version_count; i++) {
        /* equal under the ecosystem's ordering ("1.0" and "1.00" for dpkg),
         * or byte for byte when the listed version cannot be compared */
        int c;
        bool equal = scan_version_compare(scheme, version, aff->versions[i], &c) == BERTH_OK
                         ? c == 0
                         : strcmp(version, aff->versions[i]) == 0;
        if (equal) {
            *out = true;
            return BERTH_OK;
        }
    }
    for (size_t i = 0; i < aff->range_count; i++) {
        const struct osv_range *r = &aff->ranges[i];
        if (strcmp(r->type, "ECOSYSTEM") == 0 && in_range(r, scheme, version, NULL)) {
            *out = true;
            return BERTH_OK;
        }
    }
    *out = false;
    return BERTH_OK;
}

const char *osv_affected_fixed(const struct osv_affected *aff, enum scan_version_scheme scheme,
                               const char *version)
{
    for (size_t i = 0; i < aff->range_count; i++) {
        const struct osv_range *r = &aff->ranges[i];
        const char *fix = NULL;
        if (strcmp(r->type, "ECOSYSTEM") == 0 && in_range(r, scheme, version, &fix) &&
            fix != NULL) {
            return fix;
        }
    }
    return NULL;
}

char *osv_affected_dump(const struct osv_affected *aff)
{
    static const char *const kinds[] = {"introduced", "fixed", "last_affected", "limit"};
    char *text = NULL;
    json_t *root = json_object();
    json_t *ranges = json_array();
    json_t *versions = json_array();
    if (root == NULL || ranges == NULL || versions == NULL) {
        json_decref(ranges);
        json_decref(versions);
        goto out;
    }
    if (json_object_set_new(root, "ranges", ranges) != 0) {
        json_decref(versions);
        goto out;
    }
    if (json_object_set_new(root, "versions", versions) != 0) {
        goto out;
    }
    for (size_t i = 0; i < aff->range_count; i++) {
        const struct osv_range *r = &aff->ranges[i];
        if (strcmp(r->type, "ECOSYSTEM") != 0) {
            continue;
        }
        json_t *events = json_array();
        json_t *range = json_pack("{s:s, s:o}", "type", "ECOSYSTEM", "events", events);
        if (range == NULL || json_array_append_new(ranges, range) != 0) {
            goto out;
        }
        for (size_t j = 0; j < r->event_count; j++) {
            json_t *ev = json_pack("{s:s}", kinds[r->events[j].kind], r->events[j].version);
            if (ev == NULL || json_array_append_new(events, ev) != 0) {
                goto out;
            }
        }
    }
    for (size_t i = 0; i < aff->version_count; i++) {
        if (json_array_append_new(versions, json_string(aff->versions[i])) != 0) {
            goto out;
        }
    }
    text = json_dumps(root, JSON_COMPACT);
out:
    json_decref(root);
    return text;
}

enum berth_err osv_affected_parse(const char *json, size_t len, struct osv_affected **out)
{
    struct holder *h = calloc(1, sizeof(*h));
    struct osv_affected *a = calloc(1, sizeof(*a));
    char err[160];
    struct ctx c = {h, err, sizeof(err)};
    enum berth_err rc = BERTH_ENOMEM;
    if (h == NULL || a == NULL) {
        goto fail;
    }
    rc = load(json, len, &c, &h->root);
    if (rc != BERTH_OK) {
        goto fail;
    }
    rc = parse_affected_entry(&c, h->root, a);
    if (rc != BERTH_OK) {
        goto fail;
    }
    a->owner = h;
    *out = a;
    return BERTH_OK;
fail:
    holder_free(h);
    free(a);
    return rc;
}

void osv_affected_free(struct osv_affected *aff)
{
    if (aff == NULL) {
        return;
    }
    holder_free(aff->owner);
    free(aff);
}
