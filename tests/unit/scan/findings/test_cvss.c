/*
 * Unit tests for scan/findings/cvss.c. The scores are published ones: the worked
 * examples of FIRST's "CVSS v3.1: Examples" document (named by CVE below;
 * the same vectors and scores appear in NVD), plus the spec's own rules
 * for malformed vectors.
 */
#include "unit.h"

#include "scan/findings/cvss.c"

static const struct {
    const char *vector;
    int tenths;
} published[] = {
    {"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 61}, /* CVE-2013-1937 phpMyAdmin XSS */
    {"CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N", 64}, /* CVE-2013-0375 MySQL SQLi */
    {"CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N", 31}, /* CVE-2014-3566 POODLE */
    {"CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H", 99}, /* CVE-2012-1516 VMware escape */
    {"CVSS:3.1/AV:L/AC:L/PR:H/UI:N/S:U/C:L/I:L/A:L", 42}, /* CVE-2009-0783 Tomcat */
    {"CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 88}, /* CVE-2012-0384 Cisco IOS */
    {"CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H", 78}, /* CVE-2015-1098 iWork */
    {"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", 75}, /* CVE-2014-0160 Heartbleed */
    {"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 98}, /* CVE-2014-6271 Shellshock */
    {"CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:C/C:N/I:H/A:N", 68}, /* CVE-2008-1447 DNS */
    {"CVSS:3.1/AV:P/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 68}, /* CVE-2014-2005 Sophos */
    {"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:L/I:N/A:N", 58}, /* CVE-2010-0467 Joomla */
    {"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:N/I:L/A:N", 58}, /* CVE-2012-1342 Cisco ACL */
    {"CVSS:3.1/AV:A/AC:L/PR:N/UI:N/S:C/C:H/I:N/A:H", 93}, /* CVE-2013-6014 Juniper */
    {"CVSS:3.1/AV:N/AC:L/PR:L/UI:R/S:C/C:L/I:L/A:N", 54}, /* CVE-2014-9253 DokuWiki */
    {"CVSS:3.1/AV:A/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 88}, /* CVE-2011-1265 Bluetooth */
    {"CVSS:3.1/AV:P/AC:L/PR:N/UI:N/S:U/C:N/I:H/A:N", 46}, /* CVE-2014-2019 iOS */
    {"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:U/C:H/I:H/A:H", 88}, /* CVE-2015-0970 SearchBlox */
    {"CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:N", 74}, /* CVE-2014-0224 OpenSSL CCS */
    {"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:H/I:H/A:H", 96}, /* CVE-2012-5376 Chrome */
    {"CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:H/I:H/A:H", 75}, /* CVE-2016-2118 Badlock */
    {"CVSS:3.1/AV:L/AC:L/PR:H/UI:N/S:C/C:H/I:H/A:H", 82}, /* CVE-2016-5729 Lenovo BIOS */
    {"CVSS:3.1/AV:P/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 76}, /* CVE-2018-3652 Intel DCI */
    /* the same vectors with a 3.0 prefix score the same */
    {"CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 98},
    {"CVSS:3.0/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 61},
    /* no impact at all is 0.0 */
    {"CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:N/I:N/A:N", 0},
    {"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:N/I:N/A:N", 0},
    /* the maximum is capped at 10.0 */
    {"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 100},
    /* any order, temporal and environmental metrics accepted, not scored */
    {"CVSS:3.1/A:H/I:H/C:H/S:U/UI:N/PR:N/AC:L/AV:N", 98},
    {"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N/E:P/RL:W/RC:C", 61},
    {"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:X/RL:X/RC:X/CR:H/IR:M/AR:L/MAV:A/MAC:H/"
     "MPR:L/MUI:R/MS:C/MC:L/MI:N/MA:X",
     98},
};

static void test_published_scores(void)
{
    for (size_t i = 0; i < sizeof(published) / sizeof(published[0]); i++) {
        struct scan_cvss3 c = {.base_tenths = -1};
        enum berth_err rc = scan_cvss3_parse(published[i].vector, &c);
        unit_checks++;
        if (rc != BERTH_OK || c.base_tenths != published[i].tenths) {
            unit_failures++;
            fprintf(stderr, "%s: %s -> rc %d score %d, expected %d\n", unit_current,
                    published[i].vector, (int)rc, c.base_tenths, published[i].tenths);
        }
    }
    struct scan_cvss3 c;
    CHECK_INT(scan_cvss3_parse("CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", &c), BERTH_OK);
    CHECK_INT(c.minor, 0);
    CHECK(c.is_scope_changed);
    CHECK_INT(scan_cvss3_parse("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", &c), BERTH_OK);
    CHECK_INT(c.minor, 1);
    CHECK(!c.is_scope_changed);
}

static void test_malformed(void)
{
    static const char *const bad[] = {
        "",
        "CVSS:3.1/",
        "CVSS:3.1",
        "AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",          /* no prefix (v2 style) */
        "CVSS:2.0/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", /* wrong version */
        "CVSS:3.2/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", /* unknown minor */
        "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
        "cvss:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",       /* case matters */
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H",           /* A missing */
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/",      /* trailing slash */
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/A:H",   /* repeated */
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:Q",       /* bad value */
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:HH",      /* two letters */
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:",        /* empty value */
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/XX:Y",  /* unknown metric */
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H//E:X",  /* empty component */
        "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",       /* X only for optional */
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:Z",   /* bad temporal value */
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/MPR:U", /* bad environmental */
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H ",      /* trailing blank */
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/:H",        /* empty name */
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/AH",        /* no colon */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct scan_cvss3 c = {.base_tenths = -7};
        unit_checks++;
        if (scan_cvss3_parse(bad[i], &c) != BERTH_EINVAL || c.base_tenths != -7) {
            unit_failures++;
            fprintf(stderr, "%s: accepted \"%s\"\n", unit_current, bad[i]);
        }
    }
    CHECK_INT(scan_cvss3_parse(NULL, NULL), BERTH_EINVAL);
    char longv[SCAN_CVSS_VECTOR_MAX + 64];
    int n = snprintf(longv, sizeof(longv), "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H");
    while (n + 4 < (int)sizeof(longv) - 1) {
        n += snprintf(longv + n, sizeof(longv) - (size_t)n, "/E:X");
    }
    struct scan_cvss3 c;
    CHECK_INT(scan_cvss3_parse(longv, &c), BERTH_EINVAL);
}

/* The v3.0 rounding (ceil to one decimal) and v3.1's Roundup agree on the
 * base score of every possible base vector, which is why one function
 * serves both; and every computed score stays within 0..100 tenths. */
static void test_every_base_vector(void)
{
    static const char *const sets[M_BASE_COUNT] = {"NALP", "LH",  "NLH", "NR",
                                                   "UC",   "HLN", "HLN", "HLN"};
    size_t idx[M_BASE_COUNT] = {0};
    int vectors = 0, mismatches = 0, out_of_range = 0;
    for (;;) {
        char v[M_BASE_COUNT];
        for (int m = 0; m < M_BASE_COUNT; m++) {
            v[m] = sets[m][idx[m]];
        }
        int changed = v[M_S] == 'C';
        double iss =
            1 - ((1 - weight_cia(v[M_C])) * (1 - weight_cia(v[M_I])) * (1 - weight_cia(v[M_A])));
        double impact = changed ? 7.52 * (iss - 0.029) - 3.25 * pow(iss - 0.02, 15) : 6.42 * iss;
        double expl = 8.22 * weight_av(v[M_AV]) * (v[M_AC] == 'L' ? 0.77 : 0.44) *
                      weight_pr(v[M_PR], changed) * (v[M_UI] == 'N' ? 0.85 : 0.62);
        int score = base_score(v);
        if (impact > 0) {
            double raw = changed ? fmin(1.08 * (impact + expl), 10) : fmin(impact + expl, 10);
            if ((int)ceil(raw * 10.0) != score) {
                mismatches++;
            }
        }
        if (score < 0 || score > 100) {
            out_of_range++;
        }
        vectors++;
        int m = M_BASE_COUNT - 1;
        while (m >= 0 && ++idx[m] == strlen(sets[m])) {
            idx[m] = 0;
            m--;
        }
        if (m < 0) {
            break;
        }
    }
    CHECK_INT(vectors, 2592);
    CHECK_INT(mismatches, 0);
    CHECK_INT(out_of_range, 0);
}

static void test_format_score(void)
{
    char buf[8];
    scan_cvss_format_score(98, buf, sizeof(buf));
    CHECK_STR(buf, "9.8");
    scan_cvss_format_score(100, buf, sizeof(buf));
    CHECK_STR(buf, "10.0");
    scan_cvss_format_score(0, buf, sizeof(buf));
    CHECK_STR(buf, "0.0");
}

int main(void)
{
    RUN(test_published_scores);
    RUN(test_malformed);
    RUN(test_every_base_vector);
    RUN(test_format_score);
    return unit_report("test_scan_cvss");
}
