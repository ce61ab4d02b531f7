/* Unit tests for storage/registry/scan_config.c: ECR's scanning filter pattern,
 * wildcard matching and the effective setting per repository. */
#include "unit.h"

#include "storage/registry/scan_config.h"

static void test_filter_valid(void)
{
    static const char *const good[] = {"*",     "prod", "prod-*", "team/app", "a.b_c-d/e*",
                                       "*/app", "a*b",  "x1",     "9"};
    static const char *const bad[] = {"",      "Prod",  "-prod", "prod-", "a//b", "a.-b",
                                      "team/", "/team", "a b",   "a:b",   "a__b", "é"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        CHECK(scan_filter_valid(good[i]));
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (scan_filter_valid(bad[i])) {
            fprintf(stderr, "accepted: %s\n", bad[i]);
        }
        CHECK(!scan_filter_valid(bad[i]));
    }
    char longest[SCAN_FILTER_MAX + 2];
    memset(longest, 'a', sizeof(longest));
    longest[SCAN_FILTER_MAX] = '\0';
    CHECK(scan_filter_valid(longest));
    longest[SCAN_FILTER_MAX] = 'a';
    longest[SCAN_FILTER_MAX + 1] = '\0';
    CHECK(!scan_filter_valid(longest));
}

static void test_filter_match(void)
{
    CHECK(scan_filter_match("*", "team/app"));
    CHECK(scan_filter_match("team/*", "team/app"));
    CHECK(scan_filter_match("team/*", "team/sub/app"));
    CHECK(!scan_filter_match("team/*", "other/app"));
    CHECK(scan_filter_match("*-prod", "web-prod"));
    CHECK(!scan_filter_match("*-prod", "web-prod2"));
    CHECK(scan_filter_match("exact", "exact"));
    CHECK(!scan_filter_match("exact", "exactly"));
}

/* The same answer from the text and from a configuration parsed once. */
static void effective(const char *cfg, const char *repo, bool flag, enum scan_frequency want,
                      const char *filter)
{
    struct scan_effective e;
    scan_config_effective(cfg, repo, flag, &e);
    CHECK_INT(e.frequency, want);
    CHECK_STR(e.filter, filter);
    struct scan_config parsed;
    scan_config_init(&parsed, cfg);
    memset(&e, 0x55, sizeof(e));
    scan_config_eval(&parsed, repo, flag, &e);
    scan_config_eval(&parsed, repo, flag, &e); /* evaluating leaves it as it was */
    scan_config_fini(&parsed);
    CHECK_INT(e.frequency, want);
    CHECK_STR(e.filter, filter);
}

static bool has_continuous(const char *text)
{
    struct scan_config cfg;
    scan_config_init(&cfg, text);
    bool found = scan_config_has_continuous(&cfg);
    scan_config_fini(&cfg);
    return found;
}

static void test_effective(void)
{
    /* nothing configured: the repository's own flag */
    effective(NULL, "a/b", false, SCAN_FREQ_MANUAL, "");
    effective(NULL, "a/b", true, SCAN_FREQ_SCAN_ON_PUSH, "");
    effective(SCAN_CONFIG_DEFAULT, "a/b", false, SCAN_FREQ_MANUAL, "");
    /* malformed stored text counts as the default */
    effective("{not json", "a/b", true, SCAN_FREQ_SCAN_ON_PUSH, "");
    effective("[]", "a/b", false, SCAN_FREQ_MANUAL, "");

    const char *push = "{\"scanType\":\"BASIC\",\"rules\":[{\"scanFrequency\":\"SCAN_ON_PUSH\","
                       "\"repositoryFilters\":[{\"filter\":\"web-*\",\"filterType\":\"WILDCARD\"},"
                       "{\"filter\":\"api/*\",\"filterType\":\"WILDCARD\"}]}]}";
    effective(push, "web-1", false, SCAN_FREQ_SCAN_ON_PUSH, "web-*");
    effective(push, "api/x", false, SCAN_FREQ_SCAN_ON_PUSH, "api/*");
    effective(push, "db", false, SCAN_FREQ_MANUAL, "");
    effective(push, "db", true, SCAN_FREQ_SCAN_ON_PUSH, "");
    /* the registry filter is reported even when the flag is on too */
    effective(push, "web-1", true, SCAN_FREQ_SCAN_ON_PUSH, "web-*");

    const char *both = "{\"scanType\":\"ENHANCED\",\"rules\":["
                       "{\"scanFrequency\":\"SCAN_ON_PUSH\",\"repositoryFilters\":"
                       "[{\"filter\":\"*\",\"filterType\":\"WILDCARD\"}]},"
                       "{\"scanFrequency\":\"CONTINUOUS_SCAN\",\"repositoryFilters\":"
                       "[{\"filter\":\"prod/*\",\"filterType\":\"WILDCARD\"}]}]}";
    /* continuous wins where both match */
    effective(both, "prod/app", false, SCAN_FREQ_CONTINUOUS, "prod/*");
    effective(both, "dev/app", false, SCAN_FREQ_SCAN_ON_PUSH, "*");
    CHECK(has_continuous(both));

    /* CONTINUOUS_SCAN only counts with ENHANCED */
    const char *basic_cont = "{\"scanType\":\"BASIC\",\"rules\":[{\"scanFrequency\":"
                             "\"CONTINUOUS_SCAN\",\"repositoryFilters\":[{\"filter\":\"*\"}]}]}";
    effective(basic_cont, "x", false, SCAN_FREQ_MANUAL, "");
    CHECK(!has_continuous(basic_cont));
    const char *no_filters = "{\"scanType\":\"ENHANCED\",\"rules\":[{\"scanFrequency\":"
                             "\"CONTINUOUS_SCAN\",\"repositoryFilters\":[]}]}";
    CHECK(!has_continuous(no_filters));
    CHECK(!has_continuous(NULL));
    CHECK(!has_continuous("{oops"));

    /* MANUAL rules never turn scanning on */
    const char *manual =
        "{\"scanType\":\"BASIC\",\"rules\":[{\"scanFrequency\":\"MANUAL\","
        "\"repositoryFilters\":[{\"filter\":\"*\",\"filterType\":\"WILDCARD\"}]}]}";
    effective(manual, "x", false, SCAN_FREQ_MANUAL, "");
    effective(manual, "x", true, SCAN_FREQ_SCAN_ON_PUSH, "");

    CHECK_STR(scan_frequency_name(SCAN_FREQ_CONTINUOUS), "CONTINUOUS_SCAN");
    CHECK_STR(scan_frequency_name(SCAN_FREQ_SCAN_ON_PUSH), "SCAN_ON_PUSH");
    CHECK_STR(scan_frequency_name(SCAN_FREQ_MANUAL), "MANUAL");
    CHECK_STR(scan_frequency_name((enum scan_frequency)42), "MANUAL");
}

int main(void)
{
    RUN(test_filter_valid);
    RUN(test_filter_match);
    RUN(test_effective);
    return unit_report("test_scan_config");
}
