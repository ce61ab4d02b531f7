/* ECR finding severities: names, CVSS score bands, record severity words,
 * findingSeverityCounts. */
#include "storage/spec/scan_severity.h"

#include <stddef.h>
#include <strings.h>
#include <string.h>

static const char *const names[SCAN_SEVERITY_COUNT] = {
    [SCAN_SEVERITY_UNDEFINED] = "UNDEFINED",
    [SCAN_SEVERITY_INFORMATIONAL] = "INFORMATIONAL",
    [SCAN_SEVERITY_LOW] = "LOW",
    [SCAN_SEVERITY_MEDIUM] = "MEDIUM",
    [SCAN_SEVERITY_HIGH] = "HIGH",
    [SCAN_SEVERITY_CRITICAL] = "CRITICAL",
};

const char *scan_severity_name(enum scan_severity sev)
{
    if ((int)sev < 0 || (int)sev >= SCAN_SEVERITY_COUNT) {
        return names[SCAN_SEVERITY_UNDEFINED];
    }
    return names[sev];
}

enum berth_err scan_severity_parse(const char *name, enum scan_severity *out)
{
    if (name == NULL) {
        return BERTH_EINVAL;
    }
    for (int i = 0; i < SCAN_SEVERITY_COUNT; i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (enum scan_severity)i;
            return BERTH_OK;
        }
    }
    return BERTH_EINVAL;
}

enum scan_severity scan_severity_from_score(int tenths)
{
    if (tenths < 0 || tenths > 100) {
        return SCAN_SEVERITY_UNDEFINED;
    }
    if (tenths == 0) {
        return SCAN_SEVERITY_INFORMATIONAL;
    }
    if (tenths < 40) {
        return SCAN_SEVERITY_LOW;
    }
    if (tenths < 70) {
        return SCAN_SEVERITY_MEDIUM;
    }
    if (tenths < 90) {
        return SCAN_SEVERITY_HIGH;
    }
    return SCAN_SEVERITY_CRITICAL;
}

static const struct {
    const char *word;
    enum scan_severity sev;
} words[] = {
    {"critical", SCAN_SEVERITY_CRITICAL},        {"high", SCAN_SEVERITY_HIGH},
    {"important", SCAN_SEVERITY_HIGH},           {"medium", SCAN_SEVERITY_MEDIUM},
    {"moderate", SCAN_SEVERITY_MEDIUM},          {"low", SCAN_SEVERITY_LOW},
    {"negligible", SCAN_SEVERITY_INFORMATIONAL}, {"informational", SCAN_SEVERITY_INFORMATIONAL},
    {"info", SCAN_SEVERITY_INFORMATIONAL},       {"none", SCAN_SEVERITY_INFORMATIONAL},
};

enum berth_err scan_severity_from_word(const char *word, enum scan_severity *out)
{
    if (word == NULL) {
        return BERTH_ENOTFOUND;
    }
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (strcasecmp(word, words[i].word) == 0) {
            *out = words[i].sev;
            return BERTH_OK;
        }
    }
    return BERTH_ENOTFOUND;
}

json_t *scan_severity_counts_json(const int64_t counts[SCAN_SEVERITY_COUNT])
{
    json_t *obj = json_object();
    for (int s = SCAN_SEVERITY_COUNT - 1; obj != NULL && s >= 0; s--) {
        if (counts[s] > 0 && json_object_set_new(obj, names[s], json_integer(counts[s])) != 0) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}
