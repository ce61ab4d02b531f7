/*
 * ECR lifecycle policies: the validating parser, which answers with ECR's
 * InvalidParameterException messages; see lifecycle.h. Thread-safe.
 */
#include "storage/lifecycle/lifecycle.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/str.h"
#include "lifecycle_int.h"

/* Bytes of a user-supplied string quoted in a message, and the buffer that
 * holds such a clip plus "..." and the NUL. */
#define CLIP_MAX 128
#define CLIP_BUF (CLIP_MAX + 4)

/* ---- messages ---------------------------------------------------------- */

/* Where a validation message goes: msg_cap bytes at buf (cap may be 0). */
struct vmsg {
    char *buf;
    size_t cap;
};

/* Drop a UTF-8 sequence cut short at the end of s (len bytes), so a
 * truncated message is still valid UTF-8. */
static void trim_partial_utf8(char *s, size_t len)
{
    size_t i = len;
    size_t back = 0;
    while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) {
        i--;
        back++;
    }
    if (i == 0) {
        return;
    }
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = 1;
    if ((lead & 0xE0) == 0xC0) {
        need = 2;
    } else if ((lead & 0xF0) == 0xE0) {
        need = 3;
    } else if ((lead & 0xF8) == 0xF0) {
        need = 4;
    }
    if (len - (i - 1) < need) {
        s[i - 1] = '\0';
    }
}

/* Write head + formatted text + tail into m, cut to fit. */
static void vput(struct vmsg *m, const char *head, const char *tail, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static void vput(struct vmsg *m, const char *head, const char *tail, const char *fmt, va_list ap)
{
    if (m->buf == NULL || m->cap == 0) {
        return;
    }
    m->buf[0] = '\0';
    size_t used = 0;
    int n = snprintf(m->buf, m->cap, "%s", head);
    if (n > 0) {
        used = (size_t)n < m->cap ? (size_t)n : m->cap - 1;
    }
    if (used + 1 < m->cap) {
        (void)vsnprintf(m->buf + used, m->cap - used, fmt, ap);
        used += strlen(m->buf + used);
    }
    if (used + 1 < m->cap) {
        (void)snprintf(m->buf + used, m->cap - used, "%s", tail);
        used += strlen(m->buf + used);
    }
    trim_partial_utf8(m->buf, used);
}

/* An ECR validation failure: prefix, quoted "Lifecycle policy validation
 * failure: <detail>". Always returns BERTH_EINVAL. */
static enum berth_err fail(struct vmsg *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static enum berth_err fail(struct vmsg *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vput(m, LIFECYCLE_MSG_PREFIX "'Lifecycle policy validation failure: ", "'", fmt, ap);
    va_end(ap);
    return BERTH_EINVAL;
}

/* The oneOf failure of the count/action sub-schemas. Real AWS answers
 * (cloudposse/terraform-aws-ecr#132 and #158) and moto end this message
 * without the closing quote that every other detail has; we do the same. */
static enum berth_err fail_one_of(struct vmsg *m)
{
    if (m->buf != NULL && m->cap > 0) {
        (void)snprintf(m->buf, m->cap, "%s",
                       LIFECYCLE_MSG_PREFIX "'Lifecycle policy validation failure: instance "
                                            "failed to match exactly one schema (matched 0 out "
                                            "of 2)");
        trim_partial_utf8(m->buf, strlen(m->buf));
    }
    return BERTH_EINVAL;
}

/* A model constraint (length) failure: prefix, quoted detail. */
static enum berth_err fail_model(struct vmsg *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static enum berth_err fail_model(struct vmsg *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vput(m, LIFECYCLE_MSG_PREFIX "'", "'", fmt, ap);
    va_end(ap);
    return BERTH_EINVAL;
}

static enum berth_err fail_oom(struct vmsg *m)
{
    if (m->buf != NULL && m->cap > 0) {
        (void)snprintf(m->buf, m->cap, "out of memory");
    }
    return BERTH_ENOMEM;
}

/* Up to CLIP_MAX bytes of s, cut at a character boundary, "..." if cut.
 * Returns out. */
static const char *clip(const char *s, char out[CLIP_BUF])
{
    size_t n = strlen(s);
    if (n <= CLIP_MAX) {
        memcpy(out, s, n + 1);
        return out;
    }
    n = CLIP_MAX;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) {
        n--;
    }
    memcpy(out, s, n);
    memcpy(out + n, "...", 4);
    return out;
}

/* Characters (code points) in len bytes of UTF-8. */
static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80) {
            n++;
        }
    }
    return n;
}

/* ---- JSON schema checks, in the words of ECR's validator ----------------- */

static const char *type_word(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        break;
    }
    return "null";
}

static enum berth_err fail_type(struct vmsg *m, const json_t *j, const char *allowed)
{
    return fail(m,
                "instance type (%s) does not match any allowed primitive type (allowed: [\"%s\"])",
                type_word(j), allowed);
}

/* The enum failure; possible is the JSON list of allowed values. */
static enum berth_err fail_enum(struct vmsg *m, const char *value, const char *possible)
{
    char c[CLIP_BUF];
    return fail(m, "instance value (%s) not found in enum :(possible values: %s)", clip(value, c),
                possible);
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Render names (n of them, clipped) as a compact JSON array of strings into
 * a new string (free() it); NULL when out of memory. */
static char *json_name_list(const char *const *names, size_t n)
{
    char *s = NULL;
    json_t *arr = json_array();
    if (arr == NULL) {
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        char c[CLIP_BUF];
        if (json_array_append_new(arr, json_string(clip(names[i], c))) != 0) {
            goto out;
        }
    }
    s = json_dumps(arr, JSON_COMPACT);
out:
    json_decref(arr);
    return s;
}

static bool in_list(const char *key, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(key, list[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* Required members first (required[] is sorted), then members the schema
 * does not allow, each reported as the whole sorted list. */
static enum berth_err check_members(struct vmsg *m, json_t *obj, const char *const *required,
                                    size_t required_count, const char *const *allowed,
                                    size_t allowed_count)
{
    enum berth_err rc = BERTH_OK;
    const char **names = NULL;
    char *list = NULL;
    size_t n = 0;

    size_t cap = json_object_size(obj);
    if (cap < required_count) {
        cap = required_count;
    }
    names = malloc((cap ? cap : 1) * sizeof(*names));
    if (names == NULL) {
        rc = fail_oom(m);
        goto out;
    }
    for (size_t i = 0; i < required_count; i++) {
        if (json_object_get(obj, required[i]) == NULL) {
            names[n++] = required[i];
        }
    }
    if (n > 0) {
        list = json_name_list(names, n);
        rc = list ? fail(m, "object has missing required properties (%s)", list) : fail_oom(m);
        goto out;
    }
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value)
    {
        if (!in_list(key, allowed, allowed_count)) {
            names[n++] = key;
        }
    }
    if (n > 0) {
        qsort(names, n, sizeof(*names), cmp_cstr);
        list = json_name_list(names, n);
        rc = list ? fail(m,
                         "object instance has properties which are not allowed by the schema: (%s)",
                         list)
                  : fail_oom(m);
        goto out;
    }
out:
    free(list);
    free(names);
    return rc;
}

/* An integer member in 1..INT32_MAX. */
static enum berth_err check_count(struct vmsg *m, const json_t *j, int64_t *out)
{
    if (!json_is_integer(j)) {
        return fail_type(m, j, "integer");
    }
    json_int_t v = json_integer_value(j);
    if (v < 1) {
        return fail(m,
                    "numeric instance is lower than the required minimum (minimum: 1, found: %lld)",
                    (long long)v);
    }
    if (v > INT32_MAX) {
        return fail(m,
                    "numeric instance is greater than the required maximum (maximum: %d, found: "
                    "%lld)",
                    INT32_MAX, (long long)v);
    }
    *out = (int64_t)v;
    return BERTH_OK;
}

/* tagPrefixList / tagPatternList: a non-empty array of strings; patterns
 * carry at most LIFECYCLE_PATTERN_STARS_MAX wildcards. */
static enum berth_err check_tag_list(struct vmsg *m, const json_t *j, bool is_pattern)
{
    if (!json_is_array(j)) {
        return fail_type(m, j, "array");
    }
    if (json_array_size(j) == 0) {
        return fail(m, "array is too short: must have at least 1 elements but instance has 0 "
                       "elements");
    }
    size_t i;
    const json_t *item;
    json_array_foreach(j, i, item)
    {
        if (!json_is_string(item)) {
            return fail_type(m, item, "string");
        }
        if (!is_pattern) {
            continue;
        }
        const char *s = json_string_value(item);
        size_t stars = 0;
        for (const char *p = s; *p; p++) {
            stars += *p == '*';
        }
        if (stars > LIFECYCLE_PATTERN_STARS_MAX) {
            char c[CLIP_BUF];
            return fail(m, "tagPatternList value (%s) contains more than %d wildcards (*).",
                        clip(s, c), LIFECYCLE_PATTERN_STARS_MAX);
        }
    }
    return BERTH_OK;
}

/* Copy a validated tag list into the rule. */
static enum berth_err copy_tag_list(struct vmsg *m, const json_t *j, bool is_pattern,
                                    struct lc_rule *r)
{
    size_t n = json_array_size(j);
    r->list = calloc(n, sizeof(*r->list));
    r->list_len = calloc(n, sizeof(*r->list_len));
    if (r->list == NULL || r->list_len == NULL) {
        return fail_oom(m);
    }
    r->list_count = n;
    r->is_pattern = is_pattern;
    for (size_t i = 0; i < n; i++) {
        const json_t *item = json_array_get(j, i);
        r->list_len[i] = json_string_length(item);
        r->list[i] = str_ndup(json_string_value(item), r->list_len[i]);
        if (r->list[i] == NULL) {
            return fail_oom(m);
        }
    }
    return BERTH_OK;
}

static enum berth_err parse_action(struct vmsg *m, json_t *a, struct lc_rule *r)
{
    static const char *const required[] = {"type"};
    static const char *const allowed[] = {"targetStorageClass", "type"};

    if (!json_is_object(a)) {
        return fail_type(m, a, "object");
    }
    enum berth_err rc = check_members(m, a, required, 1, allowed, 2);
    if (rc != BERTH_OK) {
        return rc;
    }
    const json_t *type = json_object_get(a, "type");
    if (!json_is_string(type)) {
        return fail_type(m, type, "string");
    }
    const char *t = json_string_value(type);
    const json_t *target = json_object_get(a, "targetStorageClass");
    if (strcmp(t, "transition") == 0) {
        /* ECR's transition schema: targetStorageClass "archive", required */
        if (target == NULL || !json_is_string(target)) {
            return fail_one_of(m);
        }
        if (strcmp(json_string_value(target), "archive") != 0) {
            return fail_enum(m, json_string_value(target), "[\"archive\"]");
        }
        r->transition = true;
        return BERTH_OK;
    }
    if (strcmp(t, "expire") != 0) {
        return fail_enum(m, t, "[\"expire\",\"transition\"]");
    }
    /* An expire action with a targetStorageClass (even null) matches
     * neither of ECR's two action schemas. */
    if (target != NULL) {
        return fail_one_of(m);
    }
    return BERTH_OK;
}

static enum berth_err parse_selection(struct vmsg *m, json_t *s, struct lc_rule *r)
{
    static const char *const required[] = {"countNumber", "countType", "tagStatus"};
    static const char *const allowed[] = {"countNumber",  "countType",      "countUnit",
                                          "storageClass", "tagPatternList", "tagPrefixList",
                                          "tagStatus"};

    if (!json_is_object(s)) {
        return fail_type(m, s, "object");
    }
    enum berth_err rc = check_members(m, s, required, 3, allowed, 7);
    if (rc != BERTH_OK) {
        return rc;
    }

    /* Members one by one, in name order. countType and countUnit sit in
     * ECR's oneOf (count schema vs age schema): any problem there, null
     * included, is the oneOf failure. */
    rc = check_count(m, json_object_get(s, "countNumber"), &r->count_number);
    if (rc != BERTH_OK) {
        return rc;
    }
    const json_t *count_type = json_object_get(s, "countType");
    if (!json_is_string(count_type)) {
        return fail_one_of(m);
    }
    const char *ct = json_string_value(count_type);
    if (strcmp(ct, "imageCountMoreThan") == 0) {
        r->count_type = LC_COUNT_MORE_THAN;
    } else if (strcmp(ct, "sinceImagePushed") == 0) {
        r->count_type = LC_SINCE_PUSHED;
    } else if (strcmp(ct, "sinceImagePulled") == 0) {
        r->count_type = LC_SINCE_PULLED;
    } else if (strcmp(ct, "sinceImageTransitioned") == 0) {
        r->count_type = LC_SINCE_TRANSITIONED;
    } else {
        return fail_one_of(m);
    }
    const json_t *count_unit = json_object_get(s, "countUnit");
    if (count_unit != NULL && !json_is_string(count_unit)) {
        return fail_one_of(m);
    }
    const json_t *storage = json_object_get(s, "storageClass");
    if (storage != NULL) {
        if (!json_is_string(storage)) {
            return fail_type(m, storage, "string");
        }
        const char *sc = json_string_value(storage);
        r->archive_class = strcmp(sc, "archive") == 0;
        if (!r->archive_class && strcmp(sc, "standard") != 0) {
            return fail_enum(m, sc, "[\"archive\",\"standard\"]");
        }
    }
    const json_t *patterns = json_object_get(s, "tagPatternList");
    if (patterns != NULL && (rc = check_tag_list(m, patterns, true)) != BERTH_OK) {
        return rc;
    }
    const json_t *prefixes = json_object_get(s, "tagPrefixList");
    if (prefixes != NULL && (rc = check_tag_list(m, prefixes, false)) != BERTH_OK) {
        return rc;
    }
    const json_t *tag_status = json_object_get(s, "tagStatus");
    if (!json_is_string(tag_status)) {
        return fail_type(m, tag_status, "string");
    }
    const char *ts = json_string_value(tag_status);
    if (strcmp(ts, "tagged") == 0) {
        r->status = LC_TAGGED;
    } else if (strcmp(ts, "untagged") == 0) {
        r->status = LC_UNTAGGED;
    } else if (strcmp(ts, "any") == 0) {
        r->status = LC_ANY;
    } else {
        return fail_enum(m, ts, "[\"any\",\"tagged\",\"untagged\"]");
    }

    /* Then the combinations. */
    if (r->count_type == LC_COUNT_MORE_THAN && count_unit != NULL) {
        return fail_one_of(m);
    }
    if (r->count_type != LC_COUNT_MORE_THAN) {
        if (count_unit == NULL) {
            return fail_one_of(m);
        }
        if (strcmp(json_string_value(count_unit), "days") != 0) {
            return fail_enum(m, json_string_value(count_unit), "[\"days\"]");
        }
    }
    /* the archive class is selected by time in the archive, and only by it */
    if (r->archive_class != (r->count_type == LC_SINCE_TRANSITIONED)) {
        return fail(m, "countType sinceImageTransitioned must be used with storageClass=archive, "
                       "and storageClass=archive only with countType sinceImageTransitioned.");
    }
    if (r->archive_class && r->count_number < LIFECYCLE_ARCHIVE_MIN_DAYS) {
        return fail(m,
                    "Images must stay in the archive storage class for at least %d days: "
                    "countNumber for sinceImageTransitioned must be at least %d.",
                    LIFECYCLE_ARCHIVE_MIN_DAYS, LIFECYCLE_ARCHIVE_MIN_DAYS);
    }
    if (r->status != LC_TAGGED && (patterns != NULL || prefixes != NULL)) {
        return fail(m, "Cannot specify tagPrefixList or tagPatternList when tagStatus=%s.",
                    r->status == LC_ANY ? "ANY" : "UNTAGGED");
    }
    if (r->status == LC_TAGGED && patterns == NULL && prefixes == NULL) {
        return fail(m, "Must specify tagPrefixList or tagPatternList when tagStatus=TAGGED.");
    }
    if (patterns != NULL && prefixes != NULL) {
        return fail(m, "Cannot specify both tagPrefixList and tagPatternList in one rule.");
    }
    if (patterns != NULL) {
        return copy_tag_list(m, patterns, true, r);
    }
    if (prefixes != NULL) {
        return copy_tag_list(m, prefixes, false, r);
    }
    return BERTH_OK;
}

static enum berth_err parse_rule(struct vmsg *m, json_t *jr, struct lc_rule *r)
{
    static const char *const required[] = {"action", "rulePriority", "selection"};
    static const char *const allowed[] = {"action", "description", "rulePriority", "selection"};

    if (!json_is_object(jr)) {
        return fail_type(m, jr, "object");
    }
    enum berth_err rc = check_members(m, jr, required, 3, allowed, 4);
    if (rc != BERTH_OK) {
        return rc;
    }
    rc = parse_action(m, json_object_get(jr, "action"), r);
    if (rc != BERTH_OK) {
        return rc;
    }
    const json_t *desc = json_object_get(jr, "description");
    if (desc != NULL) {
        if (!json_is_string(desc)) {
            return fail_type(m, desc, "string");
        }
        size_t chars = utf8_chars(json_string_value(desc), json_string_length(desc));
        if (chars > LIFECYCLE_DESCRIPTION_MAX) {
            return fail(m, "description is too long (length: %zu, maximum allowed: %d)", chars,
                        LIFECYCLE_DESCRIPTION_MAX);
        }
    }
    int64_t priority;
    rc = check_count(m, json_object_get(jr, "rulePriority"), &priority);
    if (rc != BERTH_OK) {
        return rc;
    }
    r->priority = (int)priority;
    rc = parse_selection(m, json_object_get(jr, "selection"), r);
    if (rc == BERTH_OK && r->transition && r->archive_class) {
        return fail(m, "A rule with action type transition must select images in "
                       "storageClass=standard.");
    }
    return rc;
}

static int cmp_rule_priority(const void *a, const void *b)
{
    const struct lc_rule *x = a, *y = b;
    return (x->priority > y->priority) - (x->priority < y->priority);
}

/* The checks across rules, on rules sorted by priority. */
static enum berth_err check_rule_set(struct vmsg *m, const struct lifecycle_policy *p)
{
    for (size_t i = 1; i < p->rule_count; i++) {
        if (p->rules[i].priority == p->rules[i - 1].priority) {
            return fail(m,
                        "Duplicate rulePriority (%d): each rule must have a unique rulePriority.",
                        p->rules[i].priority);
        }
    }
    /* per storage class: one untagged rule, "any" last */
    for (int archive = 0; archive <= 1; archive++) {
        size_t untagged = 0, last = SIZE_MAX;
        for (size_t i = 0; i < p->rule_count; i++) {
            if (p->rules[i].archive_class == (archive == 1)) {
                untagged += p->rules[i].status == LC_UNTAGGED;
                last = i;
            }
        }
        if (untagged > 1) {
            return fail(m, "Only one rule can select Untagged images per storage class.");
        }
        for (size_t i = 0; last != SIZE_MAX && i < last; i++) {
            if (p->rules[i].archive_class == (archive == 1) && p->rules[i].status == LC_ANY) {
                return fail(m, "Rule for tagStatus=ANY must have the lowest priority per "
                               "storage class.");
            }
        }
    }
    return BERTH_OK;
}

enum berth_err lifecycle_policy_parse(const char *text, size_t len, struct lifecycle_policy **out,
                                      char *msg, size_t msg_cap)
{
    static const char *const top[] = {"rules"};
    struct vmsg m = {msg, msg_cap};
    struct lifecycle_policy *p = NULL;
    json_t *root = NULL;
    enum berth_err rc = BERTH_OK;

    if (msg != NULL && msg_cap > 0) {
        msg[0] = '\0';
    }
    if (text == NULL && len > 0) {
        rc = fail(&m, "Could not map policyString into LifecyclePolicy.");
        goto out;
    }
    size_t chars = text ? utf8_chars(text, len) : 0;
    if (chars < LIFECYCLE_TEXT_MIN) {
        rc = fail_model(&m, "Member must have length greater than or equal to %d",
                        LIFECYCLE_TEXT_MIN);
        goto out;
    }
    if (chars > LIFECYCLE_TEXT_MAX) {
        rc = fail_model(&m, "Member must have length less than or equal to %d", LIFECYCLE_TEXT_MAX);
        goto out;
    }

    json_error_t jerr;
    root = json_loadb(text, len, 0, &jerr);
    if (root == NULL || !json_is_object(root)) {
        rc = fail(&m, "Could not map policyString into LifecyclePolicy.");
        goto out;
    }
    rc = check_members(&m, root, top, 1, top, 1);
    if (rc != BERTH_OK) {
        goto out;
    }
    json_t *rules = json_object_get(root, "rules");
    if (!json_is_array(rules)) {
        rc = fail_type(&m, rules, "array");
        goto out;
    }
    size_t n = json_array_size(rules);
    if (n == 0) {
        rc = fail(&m, "array is too short: must have at least 1 elements but instance has 0 "
                      "elements");
        goto out;
    }
    if (n > LIFECYCLE_RULES_MAX) {
        rc = fail(&m,
                  "array is too long: must have at most %d elements but instance has %zu elements",
                  LIFECYCLE_RULES_MAX, n);
        goto out;
    }

    p = calloc(1, sizeof(*p));
    if (p == NULL || (p->rules = calloc(n, sizeof(*p->rules))) == NULL) {
        rc = fail_oom(&m);
        goto out;
    }
    p->rule_count = n;
    for (size_t i = 0; i < n; i++) {
        rc = parse_rule(&m, json_array_get(rules, i), &p->rules[i]);
        if (rc != BERTH_OK) {
            goto out;
        }
    }
    qsort(p->rules, n, sizeof(*p->rules), cmp_rule_priority);
    rc = check_rule_set(&m, p);
    if (rc != BERTH_OK) {
        goto out;
    }
    if (out != NULL) {
        *out = p;
        p = NULL;
    }
out:
    lifecycle_policy_free(p);
    json_decref(root);
    return rc;
}

void lifecycle_policy_free(struct lifecycle_policy *p)
{
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; p->rules != NULL && i < p->rule_count; i++) {
        struct lc_rule *r = &p->rules[i];
        for (size_t j = 0; r->list != NULL && j < r->list_count; j++) {
            free(r->list[j]);
        }
        free(r->list);
        free(r->list_len);
    }
    free(p->rules);
    free(p);
}

size_t lifecycle_policy_rule_count(const struct lifecycle_policy *p)
{
    return p->rule_count;
}
