/* The registry scanning configuration: evaluation per repository. See
 * scan_config.h. */
#include "storage/registry/scan_config.h"

#include <string.h>

#include <jansson.h>

#include "common/str.h"

static const char *const frequency_names[] = {"MANUAL", "SCAN_ON_PUSH", "CONTINUOUS_SCAN"};

const char *scan_frequency_name(enum scan_frequency f)
{
    if ((size_t)f < sizeof(frequency_names) / sizeof(frequency_names[0])) {
        return frequency_names[f];
    }
    return "MANUAL";
}

static bool is_word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '*';
}

static bool is_separator(char c)
{
    return c == '.' || c == '_' || c == '-' || c == '/';
}

bool scan_filter_valid(const char *filter)
{
    /* The pattern reads: a word character, then groups of an optional
     * separator followed by word characters. So: only those characters,
     * a word character first and last, and never two separators in a
     * row. */
    size_t n = strnlen(filter, SCAN_FILTER_MAX + 1);
    if (n == 0 || n > SCAN_FILTER_MAX || !is_word_char(filter[0]) || !is_word_char(filter[n - 1])) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_word_char(filter[i]) && !is_separator(filter[i])) {
            return false;
        }
        if (i > 0 && is_separator(filter[i]) && is_separator(filter[i - 1])) {
            return false;
        }
    }
    return true;
}

bool scan_filter_match(const char *filter, const char *repo)
{
    return str_glob_match(filter, repo);
}

/* The first filter of rule that matches repo, or NULL. */
static const char *rule_match(json_t *rule, const char *repo)
{
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(rule, "repositoryFilters"), i, f)
    {
        const char *pattern = json_string_value(json_object_get(f, "filter"));
        if (pattern != NULL && scan_filter_match(pattern, repo)) {
            return pattern;
        }
    }
    return NULL;
}

static bool is_enhanced(json_t *cfg)
{
    const char *type = json_string_value(json_object_get(cfg, "scanType"));
    return type != NULL && strcmp(type, "ENHANCED") == 0;
}

void scan_config_init(struct scan_config *cfg, const char *config_json)
{
    cfg->doc = config_json ? json_loads(config_json, 0, NULL) : NULL;
}

void scan_config_fini(struct scan_config *cfg)
{
    json_decref(cfg->doc);
    cfg->doc = NULL;
}

void scan_config_eval(const struct scan_config *config, const char *repo, bool repo_scan_on_push,
                      struct scan_effective *out)
{
    out->frequency = repo_scan_on_push ? SCAN_FREQ_SCAN_ON_PUSH : SCAN_FREQ_MANUAL;
    out->filter[0] = '\0';
    json_t *cfg = config->doc;
    if (cfg == NULL) {
        return;
    }
    const char *on_push = NULL, *continuous = NULL;
    size_t i;
    json_t *rule;
    json_array_foreach(json_object_get(cfg, "rules"), i, rule)
    {
        const char *freq = json_string_value(json_object_get(rule, "scanFrequency"));
        if (freq == NULL) {
            continue;
        }
        if (strcmp(freq, "CONTINUOUS_SCAN") == 0 && is_enhanced(cfg) && continuous == NULL) {
            continuous = rule_match(rule, repo);
        } else if (strcmp(freq, "SCAN_ON_PUSH") == 0 && on_push == NULL) {
            on_push = rule_match(rule, repo);
        }
    }
    if (continuous != NULL) {
        out->frequency = SCAN_FREQ_CONTINUOUS;
        str_copy(out->filter, sizeof(out->filter), continuous);
    } else if (on_push != NULL) {
        out->frequency = SCAN_FREQ_SCAN_ON_PUSH;
        str_copy(out->filter, sizeof(out->filter), on_push);
    }
}

void scan_config_effective(const char *config_json, const char *repo, bool repo_scan_on_push,
                           struct scan_effective *out)
{
    struct scan_config cfg;
    scan_config_init(&cfg, config_json);
    scan_config_eval(&cfg, repo, repo_scan_on_push, out);
    scan_config_fini(&cfg);
}

bool scan_config_has_continuous(const struct scan_config *config)
{
    json_t *cfg = config->doc;
    bool found = false;
    size_t i;
    json_t *rule;
    json_array_foreach(is_enhanced(cfg) ? json_object_get(cfg, "rules") : NULL, i, rule)
    {
        const char *freq = json_string_value(json_object_get(rule, "scanFrequency"));
        if (freq != NULL && strcmp(freq, "CONTINUOUS_SCAN") == 0 &&
            json_array_size(json_object_get(rule, "repositoryFilters")) > 0) {
            found = true;
        }
    }
    return found;
}
