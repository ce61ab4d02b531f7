/* Scan findings: the list, its deterministic order, ECR's JSON shape of one. */
#include "scan/findings/scan_findings.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "scan/findings/scan_cvss.h"
#include "common/str.h"

void scan_findings_init(struct scan_findings *f)
{
    f->items = NULL;
    f->count = 0;
    f->cap = 0;
}

/* The list's own copies: const only to callers. */
static void finding_free(struct scan_finding *x)
{
    free((char *)x->name);
    free((char *)x->description);
    free((char *)x->uri);
    free((char *)x->package_name);
    free((char *)x->package_version);
    free((char *)x->fixed_version);
    free((char *)x->cvss3_vector);
    free((char *)x->source_id);
    free((char *)x->package_manager);
    free((char *)x->package_arch);
    free((char *)x->platform);
}

void scan_findings_fini(struct scan_findings *f)
{
    for (size_t i = 0; i < f->count; i++) {
        finding_free(&f->items[i]);
    }
    free(f->items);
    scan_findings_init(f);
}

static bool field_ok(const char *s, size_t max)
{
    return s != NULL && s[0] != '\0' && strnlen(s, max + 1) <= max;
}

static bool optional_ok(const char *s)
{
    return s == NULL || s[0] == '\0' || field_ok(s, SCAN_ATTRIBUTE_VALUE_MAX);
}

/* A copy of an optional field ("" is none): *ok turns false when out of
 * memory. */
static const char *optional_dup(const char *s, bool *ok)
{
    if (s == NULL || s[0] == '\0') {
        return NULL;
    }
    char *d = strdup(s);
    if (d == NULL) {
        *ok = false;
    }
    return d;
}

enum berth_err scan_findings_add(struct scan_findings *f, const struct scan_finding *src)
{
    if (!field_ok(src->name, SCAN_ATTRIBUTE_VALUE_MAX) ||
        !field_ok(src->package_name, SCAN_ATTRIBUTE_VALUE_MAX) ||
        !field_ok(src->package_version, SCAN_ATTRIBUTE_VALUE_MAX) ||
        !field_ok(src->source_id, SCAN_ATTRIBUTE_VALUE_MAX) ||
        (src->fixed_version != NULL &&
         strnlen(src->fixed_version, SCAN_ATTRIBUTE_VALUE_MAX + 1) > SCAN_ATTRIBUTE_VALUE_MAX) ||
        (src->cvss3_vector != NULL && !field_ok(src->cvss3_vector, SCAN_ATTRIBUTE_VALUE_MAX)) ||
        !optional_ok(src->package_manager) || !optional_ok(src->package_arch) ||
        !optional_ok(src->platform)) {
        return BERTH_EINVAL;
    }
    if (f->count == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        struct scan_finding *items = realloc(f->items, cap * sizeof(*items));
        if (items == NULL) {
            return BERTH_ENOMEM;
        }
        f->items = items;
        f->cap = cap;
    }
    bool keep_uri = src->uri != NULL && src->uri[0] != '\0';
    bool has_cvss = src->cvss3_vector != NULL && src->cvss3_tenths >= 0 && src->cvss3_tenths <= 100;
    bool has_fix = src->fixed_version != NULL && src->fixed_version[0] != '\0';
    struct scan_finding x = {
        .name = strdup(src->name),
        .description = strdup(src->description ? src->description : ""),
        .uri = keep_uri ? strdup(src->uri) : NULL,
        .severity = src->severity,
        .package_name = strdup(src->package_name),
        .package_version = strdup(src->package_version),
        .fixed_version = has_fix ? strdup(src->fixed_version) : NULL,
        .cvss3_tenths = has_cvss ? src->cvss3_tenths : -1,
        .cvss3_vector = has_cvss ? strdup(src->cvss3_vector) : NULL,
        .source_id = strdup(src->source_id),
    };
    bool ok = true;
    x.package_manager = optional_dup(src->package_manager, &ok);
    x.package_arch = optional_dup(src->package_arch, &ok);
    x.platform = optional_dup(src->platform, &ok);
    if (!ok || x.name == NULL || x.description == NULL || (keep_uri && x.uri == NULL) ||
        x.package_name == NULL || x.package_version == NULL ||
        (has_fix && x.fixed_version == NULL) || (has_cvss && x.cvss3_vector == NULL) ||
        x.source_id == NULL) {
        finding_free(&x);
        return BERTH_ENOMEM;
    }
    f->items[f->count++] = x;
    return BERTH_OK;
}

static int key_cmp(const struct scan_finding *a, const struct scan_finding *b)
{
    int c = strcmp(a->name, b->name);
    if (c == 0) {
        c = strcmp(a->package_name, b->package_name);
    }
    if (c == 0) {
        c = strcmp(a->package_version, b->package_version);
    }
    return c;
}

/* Group duplicates together, best first: most severe, then smallest id. */
static int dedupe_cmp(const void *pa, const void *pb)
{
    const struct scan_finding *a = pa, *b = pb;
    int c = key_cmp(a, b);
    if (c == 0 && a->severity != b->severity) {
        c = a->severity > b->severity ? -1 : 1;
    }
    if (c == 0) {
        c = strcmp(a->source_id, b->source_id);
    }
    return c;
}

static int order_cmp(const void *pa, const void *pb)
{
    const struct scan_finding *a = pa, *b = pb;
    if (a->severity != b->severity) {
        return a->severity > b->severity ? -1 : 1;
    }
    return key_cmp(a, b);
}

void scan_findings_finish(struct scan_findings *f)
{
    if (f->count < 2) {
        return;
    }
    qsort(f->items, f->count, sizeof(f->items[0]), dedupe_cmp);
    size_t out = 1;
    for (size_t i = 1; i < f->count; i++) {
        if (key_cmp(&f->items[i], &f->items[out - 1]) == 0) {
            finding_free(&f->items[i]);
        } else {
            f->items[out++] = f->items[i];
        }
    }
    f->count = out;
    qsort(f->items, f->count, sizeof(f->items[0]), order_cmp);
}

/* The attributes only the enhanced shape reports (scan_finding_to_json
 * adds them in this order). */
static const char *const enhanced_keys[] = {"package_manager", "package_arch", "platform"};

void scan_finding_strip_enhanced(json_t *finding)
{
    json_t *attrs = json_object_get(finding, "attributes");
    size_t i = 0;
    while (i < json_array_size(attrs)) {
        const char *k = json_string_value(json_object_get(json_array_get(attrs, i), "key"));
        bool drop = false;
        for (size_t j = 0; k != NULL && j < sizeof(enhanced_keys) / sizeof(enhanced_keys[0]); j++) {
            drop = drop || strcmp(k, enhanced_keys[j]) == 0;
        }
        if (drop && json_array_remove(attrs, i) == 0) {
            continue;
        }
        i++;
    }
}

static int add_attr(json_t *attrs, const char *key, const char *value)
{
    json_t *a = json_pack("{s:s, s:s}", "key", key, "value", value);
    return a == NULL ? -1 : json_array_append_new(attrs, a);
}

json_t *scan_finding_to_json(const struct scan_finding *f)
{
    json_t *attrs = json_array();
    json_t *obj = NULL;
    if (attrs == NULL || add_attr(attrs, "package_version", f->package_version) != 0 ||
        add_attr(attrs, "package_name", f->package_name) != 0) {
        goto fail;
    }
    /* not one of ECR basic scanning's keys: the fix that enhanced scanning
     * reports as fixedInVersion, for the console and other readers */
    if (f->fixed_version != NULL && add_attr(attrs, "fixed_in_version", f->fixed_version) != 0) {
        goto fail;
    }
    if (f->cvss3_vector != NULL) {
        char score[8];
        scan_cvss_format_score(f->cvss3_tenths, score, sizeof(score));
        if (add_attr(attrs, "CVSS3_VECTOR", f->cvss3_vector) != 0 ||
            add_attr(attrs, "CVSS3_SCORE", score) != 0) {
            goto fail;
        }
    }
    /* berth's too: what enhanced scanning reports as the package's
     * packageManager, arch, epoch and release and the image's platform */
    const char *values[] = {f->package_manager, f->package_arch, f->platform};
    for (size_t i = 0; i < sizeof(enhanced_keys) / sizeof(enhanced_keys[0]); i++) {
        if (values[i] != NULL && add_attr(attrs, enhanced_keys[i], values[i]) != 0) {
            goto fail;
        }
    }
    obj = json_pack("{s:s, s:s, s:s}", "name", f->name, "description", f->description, "severity",
                    scan_severity_name(f->severity));
    if (obj == NULL ||
        (f->uri != NULL && json_object_set_new(obj, "uri", json_string(f->uri)) != 0)) {
        goto fail;
    }
    if (json_object_set_new(obj, "attributes", attrs) != 0) {
        attrs = NULL; /* json_object_set_new consumes it, even on failure */
        goto fail;
    }
    return obj;
fail:
    json_decref(attrs);
    json_decref(obj);
    return NULL;
}
