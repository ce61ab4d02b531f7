/*
 * The registry scanning configuration (ECR's RegistryScanningConfiguration:
 * scanType BASIC|ENHANCED and up to two rules, each a scanFrequency with
 * WILDCARD repository filters) and what it means for one repository. The
 * configuration is stored as JSON text in the registry_settings table
 * under SCAN_CONFIG_SETTING; validation with ECR's error messages is the
 * API's job (server/ecr/scan.c), this module only evaluates, and treats a
 * malformed stored value as the default. Pure functions; thread-safe (a
 * parsed struct scan_config is only read by the evaluations).
 *
 * What the settings mean in berth:
 *   SCAN_ON_PUSH     image manifests pushed to a matching repository are
 *                    queued for a scan (so is every repository whose own
 *                    imageScanningConfiguration.scanOnPush is true);
 *   CONTINUOUS_SCAN  (scanType ENHANCED only) as SCAN_ON_PUSH, and every
 *                    image of a matching repository is rescanned after each
 *                    `berth vulndb import`; takes precedence over
 *                    SCAN_ON_PUSH when both match;
 *   MANUAL           scans only when asked (StartImageScan, `berth scan`).
 * BASIC and ENHANCED use the same engine; ENHANCED enables CONTINUOUS_SCAN,
 * and DescribeImageScanFindings renders the findings in Inspector's
 * enhancedFindings shape then (server/ecr/enhanced.c).
 */
#ifndef BERTH_SCAN_CONFIG_H
#define BERTH_SCAN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* The registry_settings name the configuration is stored under. */
#define SCAN_CONFIG_SETTING "scanning_configuration"
/* What GetRegistryScanningConfiguration reports when nothing was set. */
#define SCAN_CONFIG_DEFAULT "{\"scanType\":\"BASIC\",\"rules\":[]}"
/* ECR's limits: rules per configuration, filters per rule, filter length. */
#define SCAN_CONFIG_MAX_RULES 2
#define SCAN_CONFIG_MAX_FILTERS 100
#define SCAN_FILTER_MAX 255

enum scan_frequency {
    SCAN_FREQ_MANUAL = 0,
    SCAN_FREQ_SCAN_ON_PUSH,
    SCAN_FREQ_CONTINUOUS,
};

/* "MANUAL", "SCAN_ON_PUSH", "CONTINUOUS_SCAN". Never NULL. */
const char *scan_frequency_name(enum scan_frequency f);

/* The setting in force for one repository. */
struct scan_effective {
    enum scan_frequency frequency;
    /* the registry filter that applied (appliedScanFilters), "" when the
     * repository's own flag or nothing applied */
    char filter[SCAN_FILTER_MAX + 1];
};

/* A configuration parsed once, for evaluating any number of repositories
 * (embedded: scan_config_init / scan_config_fini). */
struct scan_config {
    json_t *doc; /* NULL: the default (nothing stored, or a malformed value) */
};

/* Parse config_json (NULL, malformed, or out of memory: the default). */
void scan_config_init(struct scan_config *cfg, const char *config_json);
void scan_config_fini(struct scan_config *cfg);

/*
 * The setting in force for the repository named repo whose own scanOnPush
 * flag is repo_scan_on_push: a matching CONTINUOUS_SCAN filter (scanType
 * ENHANCED) gives CONTINUOUS_SCAN; else a matching SCAN_ON_PUSH filter or
 * the repository flag gives SCAN_ON_PUSH; else MANUAL.
 */
void scan_config_eval(const struct scan_config *cfg, const char *repo, bool repo_scan_on_push,
                      struct scan_effective *out);

/* scan_config_eval for one repository straight from the stored text
 * (parses it: use scan_config_init + scan_config_eval for several). */
void scan_config_effective(const char *config_json, const char *repo, bool repo_scan_on_push,
                           struct scan_effective *out);

/* Whether the configuration has a CONTINUOUS_SCAN rule in force (scanType
 * ENHANCED and at least one filter). */
bool scan_config_has_continuous(const struct scan_config *cfg);

/* Whether filter follows ECR's ScanningRepositoryFilter pattern
 * ^[a-z0-9*](?:[._\-/a-z0-9*]?[a-z0-9*]+)*$ and is 1..255 characters. */
bool scan_filter_valid(const char *filter);

/* Whether a WILDCARD filter matches a repository name ('*' matches any
 * run of characters, '/' included). */
bool scan_filter_match(const char *filter, const char *repo);

#endif
