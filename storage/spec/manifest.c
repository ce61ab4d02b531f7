/* Manifest parsing and reference extraction; see manifest.h. */
#include "storage/spec/manifest.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/str.h"

static const char *const known_types[] = {MANIFEST_OCI, MANIFEST_OCI_INDEX, MANIFEST_DOCKER,
                                          MANIFEST_DOCKER_LIST};

bool manifest_is_known_type(const char *media_type)
{
    for (size_t i = 0; i < sizeof(known_types) / sizeof(known_types[0]); i++) {
        if (strcmp(media_type, known_types[i]) == 0) {
            return true;
        }
    }
    return false;
}

static bool is_index_type(const char *t)
{
    return strcmp(t, MANIFEST_OCI_INDEX) == 0 || strcmp(t, MANIFEST_DOCKER_LIST) == 0;
}

static enum berth_err fail(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum berth_err fail(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return BERTH_EINVAL;
}

/* A media type: non-empty, printable, no spaces, bounded. */
static bool media_type_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MANIFEST_MEDIA_TYPE_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f) {
            return false;
        }
    }
    return true;
}

/* The Content-Type without parameters, lower-cased, into out. */
static void bare_type(const char *ct, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = ct; *p && *p != ';' && o + 1 < cap; p++) {
        if (*p == ' ' || *p == '\t') {
            continue;
        }
        char c = *p;
        out[o++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    out[o] = '\0';
}

static bool non_distributable(const char *media_type)
{
    return strstr(media_type, ".nondistributable.") != NULL ||
           strstr(media_type, ".foreign.") != NULL;
}

static enum berth_err parse_desc(json_t *obj, const char *where, struct manifest_desc *out,
                                 char *why, size_t cap)
{
    if (!json_is_object(obj)) {
        return fail(why, cap, "%s must be a descriptor object", where);
    }
    json_t *mt = json_object_get(obj, "mediaType");
    json_t *dg = json_object_get(obj, "digest");
    json_t *sz = json_object_get(obj, "size");
    if (!json_is_string(mt) || !media_type_ok(json_string_value(mt))) {
        return fail(why, cap, "%s.mediaType must be a media type string", where);
    }
    if (!json_is_string(dg)) {
        return fail(why, cap, "%s.digest must be a string", where);
    }
    if (digest_parse(json_string_value(dg), &out->digest) != BERTH_OK) {
        return fail(why, cap, "%s.digest is not a valid or supported digest", where);
    }
    if (!json_is_integer(sz) || json_integer_value(sz) < 0) {
        return fail(why, cap, "%s.size must be a non-negative integer", where);
    }
    str_copy(out->media_type, sizeof(out->media_type), json_string_value(mt));
    out->size = (int64_t)json_integer_value(sz);
    out->non_distributable = non_distributable(out->media_type);
    return BERTH_OK;
}

void manifest_info_free(struct manifest_info *info)
{
    if (info == NULL) {
        return;
    }
    free(info->refs);
    free(info->annotations);
    free(info);
}

const char *manifest_effective_artifact_type(const struct manifest_info *info)
{
    if (info->artifact_type[0]) {
        return info->artifact_type;
    }
    if (info->has_config) {
        return info->config.media_type;
    }
    return "";
}

enum berth_err manifest_parse(const char *bytes, size_t len, const char *content_type,
                              struct manifest_info **out, char *why, size_t why_cap)
{
    enum berth_err rc = BERTH_OK;
    json_error_t jerr;
    json_t *doc = json_loadb(bytes, len, JSON_REJECT_DUPLICATES, &jerr);
    struct manifest_info *info = NULL;
    if (doc == NULL) {
        return fail(why, why_cap, "manifest is not valid JSON: %s", jerr.text);
    }
    if (!json_is_object(doc)) {
        rc = fail(why, why_cap, "manifest must be a JSON object");
        goto out;
    }
    info = calloc(1, sizeof(*info));
    if (info == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    json_t *sv = json_object_get(doc, "schemaVersion");
    if (!json_is_integer(sv) || json_integer_value(sv) != 2) {
        rc = fail(why, why_cap, "schemaVersion must be 2 (schema 1 manifests are not supported)");
        goto out;
    }

    char ct[MANIFEST_MEDIA_TYPE_MAX + 1] = "";
    if (content_type != NULL) {
        bare_type(content_type, ct, sizeof(ct));
    }
    json_t *mt = json_object_get(doc, "mediaType");
    if (mt != NULL) {
        if (!json_is_string(mt)) {
            rc = fail(why, why_cap, "mediaType must be a string");
            goto out;
        }
        const char *body_type = json_string_value(mt);
        if (!manifest_is_known_type(body_type)) {
            rc = fail(why, why_cap, "unsupported manifest mediaType %.200s", body_type);
            goto out;
        }
        if (manifest_is_known_type(ct) && strcmp(ct, body_type) != 0) {
            rc =
                fail(why, why_cap, "Content-Type %.200s does not match the manifest mediaType", ct);
            goto out;
        }
        str_copy(info->media_type, sizeof(info->media_type), body_type);
    } else if (manifest_is_known_type(ct)) {
        str_copy(info->media_type, sizeof(info->media_type), ct);
    } else if (json_object_get(doc, "manifests") != NULL) {
        str_copy(info->media_type, sizeof(info->media_type), MANIFEST_OCI_INDEX);
    } else if (json_object_get(doc, "config") != NULL) {
        str_copy(info->media_type, sizeof(info->media_type), MANIFEST_OCI);
    } else {
        rc = fail(why, why_cap, "cannot tell the manifest type: no mediaType, config or manifests");
        goto out;
    }
    info->is_index = is_index_type(info->media_type);

    json_t *at = json_object_get(doc, "artifactType");
    if (at != NULL) {
        if (!json_is_string(at) || !media_type_ok(json_string_value(at))) {
            rc = fail(why, why_cap, "artifactType must be a media type string");
            goto out;
        }
        str_copy(info->artifact_type, sizeof(info->artifact_type), json_string_value(at));
    }

    const char *list_key = info->is_index ? "manifests" : "layers";
    json_t *list = json_object_get(doc, list_key);
    if (!info->is_index) {
        rc = parse_desc(json_object_get(doc, "config"), "config", &info->config, why, why_cap);
        if (rc != BERTH_OK) {
            goto out;
        }
        info->has_config = true;
    }
    if (list == NULL && info->is_index) {
        rc = fail(why, why_cap, "an index must have a manifests array");
        goto out;
    }
    if (list != NULL && !json_is_array(list)) {
        rc = fail(why, why_cap, "%s must be an array", list_key);
        goto out;
    }
    size_t n = list ? json_array_size(list) : 0;
    if (n > MANIFEST_MAX_REFS) {
        rc = fail(why, why_cap, "too many %s (at most %d)", list_key, MANIFEST_MAX_REFS);
        goto out;
    }
    if (n > 0) {
        info->refs = calloc(n, sizeof(*info->refs));
        if (info->refs == NULL) {
            rc = BERTH_ENOMEM;
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++) {
        char where[48];
        snprintf(where, sizeof(where), "%s[%zu]", list_key, i);
        rc = parse_desc(json_array_get(list, i), where, &info->refs[i], why, why_cap);
        if (rc != BERTH_OK) {
            goto out;
        }
        info->ref_count++;
        if (!info->is_index) {
            if (info->refs[i].size > INT64_MAX - info->layers_size) {
                rc = fail(why, why_cap, "layer sizes overflow");
                goto out;
            }
            info->layers_size += info->refs[i].size;
        } else {
            info->refs[i].non_distributable = false;
        }
    }

    json_t *subject = json_object_get(doc, "subject");
    if (subject != NULL) {
        rc = parse_desc(subject, "subject", &info->subject, why, why_cap);
        if (rc != BERTH_OK) {
            goto out;
        }
        info->has_subject = true;
    }
    json_t *ann = json_object_get(doc, "annotations");
    if (ann != NULL) {
        if (!json_is_object(ann)) {
            rc = fail(why, why_cap, "annotations must be an object");
            goto out;
        }
        const char *k;
        json_t *v;
        json_object_foreach(ann, k, v)
        {
            if (!json_is_string(v)) {
                rc = fail(why, why_cap, "annotation values must be strings");
                goto out;
            }
        }
        info->annotations = json_dumps(ann, JSON_COMPACT | JSON_SORT_KEYS);
        if (info->annotations == NULL) {
            rc = BERTH_ENOMEM;
            goto out;
        }
    }
out:
    json_decref(doc);
    if (rc != BERTH_OK) {
        manifest_info_free(info);
        return rc;
    }
    *out = info;
    return BERTH_OK;
}
