/*
 * Unit tests for scan/packages/version.c. The cases are the package
 * managers' own documented examples:
 *  - dpkg: Debian Policy 5.6.12's ordering example, the comparison table of
 *    dpkg's scripts/t/Dpkg_Version.t and the parse cases of
 *    lib/dpkg/t/t-version.c;
 *  - apk: lines of apk-tools' test/version.data (one or more per rule);
 *  - rpm: rpm's tests/rpmvercmp.at, including the tilde and caret cases.
 */
#include "unit.h"

#include "scan/packages/scan_version.h"

struct vcase {
    const char *a;
    const char *b;
    int want; /* -1, 0, 1 */
};

static int norm(int c)
{
    return c < 0 ? -1 : c > 0 ? 1 : 0;
}

static void check_cases(enum scan_version_scheme scheme, const struct vcase *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int got = 42, rev = 42;
        enum berth_err rc = scan_version_compare(scheme, cases[i].a, cases[i].b, &got);
        enum berth_err rc2 = scan_version_compare(scheme, cases[i].b, cases[i].a, &rev);
        unit_checks++;
        if (rc != BERTH_OK || rc2 != BERTH_OK || norm(got) != cases[i].want ||
            norm(rev) != -cases[i].want) {
            unit_failures++;
            fprintf(stderr, "%s: scheme %d compare(%s, %s) = %d/%d (rc %d), expected %d\n",
                    unit_current, (int)scheme, cases[i].a, cases[i].b, norm(got), norm(rev),
                    (int)rc, cases[i].want);
        }
    }
}

/* dpkg's scripts/t/Dpkg_Version.t table, every row. */
static const struct vcase dpkg_table[] = {
    {"1.0-1", "2.0-2", -1},
    {"2.2~rc-4", "2.2-1", -1},
    {"2.2-1", "2.2~rc-4", 1},
    {"1.0000-1", "1.0-1", 0},
    {"1", "0:1", 0},
    {"0", "0:0-0", 0},
    {"2:2.5", "1:7.5", 1},
    {"1:foo", "foo", 1},
    {"0:foo", "foo", 0},
    {"foo", "foo", 0},
    {"foo-", "foo", 0},
    {"foo-", "foo-0", 0},
    {"foo", "fo", 1},
    {"foo-", "foo+", -1},
    {"foo~1", "foo", -1},
    {"foo~foo+Bar", "foo~foo+bar", -1},
    {"foo~~", "foo~", -1},
    {"1~", "1", -1},
    {"12345+that-really-is-some-ver-0", "12345+that-really-is-some-ver-10", -1},
    {"foo-0", "foo-01", -1},
    {"foo.bar", "foobar", 1},
    {"foo.bar", "foo1bar", 1},
    {"foo.bar", "foo0bar", 1},
    {"1foo-1", "foo-1", -1},
    {"foo2.0", "foo2", 1},
    {"foo2.0.0", "foo2.10.0", -1},
    {"foo2.0", "foo2.0.0", -1},
    {"foo2.0", "foo2.10", -1},
    {"foo2.1", "foo2.10", -1},
    {"1.09", "1.9", 0},
    {"1.0.8+nmu1", "1.0.8", 1},
    {"3.11", "3.10+nmu1", 1},
    {"0.9j-20080306-4", "0.9i-20070324-2", 1},
    {"1.2.0~b7-1", "1.2.0~b6-1", 1},
    {"1.011-1", "1.06-2", 1},
    {"0.0.9+dfsg1-1", "0.0.8+dfsg1-3", 1},
    {"4.6.99+svn6582-1", "4.6.99+svn6496-1", 1},
    {"53", "52", 1},
    {"0.9.9~pre122-1", "0.9.9~pre111-1", 1},
    {"2:2.3.2-2+lenny2", "2:2.3.2-2", 1},
    {"1:3.8.1-1", "3.8.GA-1", 1},
    {"1.0.1+gpl-1", "1.0.1-2", 1},
    {"1a", "1000a", -1},
};

static void test_dpkg_table(void)
{
    check_cases(SCAN_VERSION_DPKG, dpkg_table, sizeof(dpkg_table) / sizeof(dpkg_table[0]));
}

/* Debian Policy 5.6.12: "~~, ~~a, ~, the empty part, a" are in sorted
 * order; plus the usual security-update shapes the matcher depends on. */
static void test_dpkg_policy(void)
{
    static const char *const order[] = {"1.0~~", "1.0~~a", "1.0~", "1.0", "1.0a"};
    for (size_t i = 0; i + 1 < sizeof(order) / sizeof(order[0]); i++) {
        int c = 0;
        CHECK_INT(scan_version_dpkg_compare(order[i], order[i + 1], &c), BERTH_OK);
        CHECK(c < 0);
    }
    static const struct vcase more[] = {
        {"3.0.11-1~deb12u1", "3.0.11-1~deb12u2", -1},
        {"3.0.11-1~deb12u2", "3.0.11-1", -1},
        {"2.36-9+deb12u3", "2.36-9+deb12u4", -1},
        {"1:1.2.13.dfsg-1", "1.2.13.dfsg-2", 1},
        {"7.88.1-10+deb12u5", "7.88.1-10+deb12u12", -1},
        /* digit runs compare numerically however long they are */
        {"1.99999999999999999999999", "1.100000000000000000000000", -1},
        /* t-version.c: "0:0-0" equals "0", "0:09azAZ.-+~:-0" parses */
        {"0:0-0", "0", 0},
        {"0:0:0-0", "0:0:0-0", 0},
        {"0:0-0-0", "0:0-0-0", 0},
        {"0:09azAZ.-+~:-0", "0:09azAZ.-+~:-0", 0},
        {"  \t0:0-1", "0:0-1\t  ", 0},
        {"5:1", "1:0", 1},
    };
    check_cases(SCAN_VERSION_DPKG, more, sizeof(more) / sizeof(more[0]));
}

/* t-version.c's invalid versions: empty, blank, empty upstream after the
 * epoch, embedded spaces, negative/huge/non-numeric epochs. */
static void test_dpkg_invalid(void)
{
    static const char *const bad[] = {
        "",      "  ",    "0:", "0:0 0-1", "-1:0-1", "999999999999999999999999:0-1",
        "a:0-0", "A:0-0", "-0", "0:-0",    ":1.0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int c = 7;
        unit_checks++;
        if (scan_version_dpkg_compare(bad[i], "1.0", &c) != BERTH_EINVAL || c != 7) {
            unit_failures++;
            fprintf(stderr, "%s: dpkg version \"%s\" was accepted\n", unit_current, bad[i]);
        }
    }
    char longv[SCAN_VERSION_MAX + 2];
    memset(longv, '1', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    int c = 0;
    CHECK_INT(scan_version_dpkg_compare(longv, "1", &c), BERTH_EINVAL);
    longv[SCAN_VERSION_MAX] = '\0';
    CHECK_INT(scan_version_dpkg_compare(longv, "1", &c), BERTH_OK);
    CHECK(c > 0);
}

/* apk-tools test/version.data: a selection covering every rule. */
static const struct vcase apk_table[] = {
    {"2.34", "0.1.0_alpha", 1},
    {"23_foo", "4_beta", 1},
    {"1.0", "1.0bc", -1}, /* "invalid. do string sort" */
    {"0.1.0_alpha", "0.1.0_alpha", 0},
    {"0.1.0_alpha", "0.1.3_alpha", -1},
    {"0.1.0_alpha2", "0.1.0_alpha", 1},
    {"0.1.0_alpha", "2.2.39-r1", -1},
    {"1.0.4-r3", "1.0.4-r4", -1},
    {"1.1", "1.1_alpha1", 1},
    {"1.2.1", "1.2", 1},
    {"1.3_alpha", "1.3_alpha2", -1},
    {"0.8_beta1", "0.8_beta2", -1},
    {"2.3.0b-r1", "2.3.0b-r2", -1},
    {"3.10.18-r1", "2.3.0b-r1", 1},
    {"0.12.3", "0.12", 1},
    {"0.13_beta5", "0.9.12", 1},
    {"1.2.11", "1.2.12.1", -1},
    {"0.2.0-r1", "3.1_p16", -1},
    {"3.1_p16", "3.1_p17", -1},
    {"1.06-r6", "006", -1},
    {"006", "1.0.0", 1},
    {"1.2.2-r1", "1.2.2", 1},
    {"2.59", "20050718-r1", -1},
    {"3.9.8-r5", "2.01.01_alpha10", 1},
    {"0.99.3.20040818", "0.7", 1},
    {"2.8.9-r1", "2.8.9", 1},
    {"1.1.2.1-r1", "0.0.31", 1},
    {"0.0.31", "0.0.50", -1},
    {"22.7-r1", "22.7.3-r1", -1},
    {"2.10.1", "02.08.01b", 1},
    {"1.2.07.8", "1.2.12.04", -1},
    {"1.2.12.04", "1.2.12.05", -1},
    {"1.6d", "1.2.07.8", 1},
    {"0.1_pre20060810", "0.1_pre20060817", -1},
    {"20061003", "0.1_pre20060810", 1},
    {"0.59s-r11", "0.65", -1},
    {"0.20070118", "0.20070207_rc1", -1},
    {"0.20070207_rc1", "1.0", -1},
    {"4.5_p1-r1", "4.5_p1", 1},
    {"0.9.8c-r1", "0.9.8d", -1},
    {"1.8.5", "1.8.5_p2", -1},
    {"1.7", "1.7b", -1},
    {"2.5.1-r8", "2.5.1a-r1", -1},
    {"2.9.11_pre20051101-r2", "2.9.11_pre20051101-r3", -1},
    {"2.9.11_pre20051101-r3", "2.9.11_pre20051101", 1},
    {"1.6.8_p12-r1", "1.6.8_p9-r2", 1},
    {"0.9.28.1", "087-r1", -1},
    {"104-r11", "104-r9", 1},
    {"2.12r-r4", "2.12r-r5", -1},
    {"7.0.17", "7.0.174", -1},
    {"0.3.1_rc8", "22.2", -1},
    {"2.0.0_rc3-r1", "1.5", 1},
    {"1.3-r0", "1.3.1-r0", -1},
    {"1.3_pre1-r1", "1.3.2", -1},
    {"1.0_p10-r0", "1.0_p9-r0", 1},
    {"0.1.0_alpha_pre2", "0.1.0_alpha", -1},
    {"1.0.0_pre20191002222144-r0", "1.0.0_pre20210530193627-r0", -1},
};

static void test_apk_table(void)
{
    check_cases(SCAN_VERSION_APK, apk_table, sizeof(apk_table) / sizeof(apk_table[0]));
}

/* The suffix order of the apk-tools grammar, commit hashes, and numbers
 * longer than 64 bits (apk compares those by value, so do we). */
static void test_apk_rules(void)
{
    static const char *const order[] = {"1.0_alpha", "1.0_beta", "1.0_pre", "1.0_rc", "1.0",
                                        "1.0_cvs",   "1.0_svn",  "1.0_git", "1.0_hg", "1.0_p"};
    for (size_t i = 0; i + 1 < sizeof(order) / sizeof(order[0]); i++) {
        int c = 0;
        CHECK_INT(scan_version_apk_compare(order[i], order[i + 1], &c), BERTH_OK);
        CHECK(c < 0);
    }
    static const struct vcase more[] = {
        {"1.0~abc123", "1.0~abc124", -1},
        {"1.0-r1", "1.0_p", -1}, /* the revision applies last: 1.0_p is 1.0_p-r0 */
        {"1.0~abc123-r1", "1.0-r1", 1},
        {"3.1.4-r5", "3.1.4-r10", -1},
        {"99999999999999999999999", "100000000000000000000000", -1},
        {"1.2.3", "1.2.3_gamma", 1}, /* an unknown suffix is invalid and sorts below */
        {"", "", 0},
    };
    check_cases(SCAN_VERSION_APK, more, sizeof(more) / sizeof(more[0]));
}

/* rpm's tests/rpmvercmp.at. The strings hold no ':' and no '-', so the
 * full comparison is rpmvercmp itself (no epoch, no release). */
static const struct vcase rpm_table[] = {
    {"1.0", "1.0", 0},
    {"1.0", "2.0", -1},
    {"2.0.1", "2.0.1", 0},
    {"2.0", "2.0.1", -1},
    {"2.0.1a", "2.0.1a", 0},
    {"2.0.1a", "2.0.1", 1},
    {"5.5p1", "5.5p1", 0},
    {"5.5p1", "5.5p2", -1},
    {"5.5p10", "5.5p10", 0},
    {"5.5p1", "5.5p10", -1},
    {"10xyz", "10.1xyz", -1},
    {"xyz10", "xyz10", 0},
    {"xyz10", "xyz10.1", -1},
    {"xyz.4", "xyz.4", 0},
    {"xyz.4", "8", -1},
    {"xyz.4", "2", -1},
    {"5.5p2", "5.6p1", -1},
    {"5.6p1", "6.5p1", -1},
    {"6.0.rc1", "6.0", 1},
    {"10b2", "10a1", 1},
    {"10a2", "10b2", -1},
    {"1.0aa", "1.0aa", 0},
    {"1.0a", "1.0aa", -1},
    {"10.0001", "10.0001", 0},
    {"10.0001", "10.1", 0},
    {"10.0001", "10.0039", -1},
    {"4.999.9", "5.0", -1},
    {"20101121", "20101121", 0},
    {"20101121", "20101122", -1},
    {"2_0", "2_0", 0},
    {"2.0", "2_0", 0},
    {"a", "a", 0},
    {"a+", "a+", 0},
    {"a+", "a_", 0},
    {"+a", "+a", 0},
    {"+a", "_a", 0},
    {"+_", "+_", 0},
    {"_+", "+_", 0},
    {"+", "_", 0},
    {"1.0~rc1", "1.0~rc1", 0},
    {"1.0~rc1", "1.0", -1},
    {"1.0~rc1", "1.0~rc2", -1},
    {"1.0~rc1~git123", "1.0~rc1~git123", 0},
    {"1.0~rc1~git123", "1.0~rc1", -1},
    {"1.0^", "1.0^", 0},
    {"1.0^", "1.0", 1},
    {"1.0^git1", "1.0^git1", 0},
    {"1.0^git1", "1.0", 1},
    {"1.0^git1", "1.0^git2", -1},
    {"1.0^git1", "1.01", -1},
    {"1.0^20160101", "1.0^20160101", 0},
    {"1.0^20160101", "1.0.1", -1},
    {"1.0^20160101^git1", "1.0^20160101^git1", 0},
    {"1.0^20160102", "1.0^20160101^git1", 1},
    {"1.0~rc1^git1", "1.0~rc1^git1", 0},
    {"1.0~rc1^git1", "1.0~rc1", 1},
    {"1.0^git1~pre", "1.0^git1~pre", 0},
    {"1.0^git1", "1.0^git1~pre", 1},
};

static void test_rpmvercmp(void)
{
    check_cases(SCAN_VERSION_RPM, rpm_table, sizeof(rpm_table) / sizeof(rpm_table[0]));
}

/* Full [epoch:]version-release comparison as the matcher uses it. */
static void test_rpm_evr(void)
{
    static const struct vcase evr[] = {
        {"1:1.0-1", "2.0-1", 1},
        {"0:1.0-1", "1.0-1", 0},
        {"1.0-1.el9", "1.0-2.el9", -1},
        {"3.0.7-24.el9", "1:3.0.7-24.el9", -1},
        {"1:3.0.7-25.el9_3", "1:3.0.7-24.el9", 1},
        {"2.34-83.el9_3.7", "2.34-83.el9_3.12", -1},
        {"1.0", "1.0-5", 0}, /* a missing release matches any release */
        {"10:1.0-1", "9:2.0-1", 1},
        /* parseEVR: no epoch unless digits lead up to the ':' */
        {"a:1", "1:0", -1},
        {"a:1", "a:1", 0},
        {":1.0-1", "0:1.0-1", 0},
    };
    check_cases(SCAN_VERSION_RPM, evr, sizeof(evr) / sizeof(evr[0]));
    int c = 0;
    CHECK_INT(scan_version_rpm_compare("", "1", &c), BERTH_EINVAL);
    CHECK_INT(scan_version_compare(SCAN_VERSION_NONE, "1", "1", &c), BERTH_EUNSUPPORTED);
}

int main(void)
{
    RUN(test_dpkg_table);
    RUN(test_dpkg_policy);
    RUN(test_dpkg_invalid);
    RUN(test_apk_table);
    RUN(test_apk_rules);
    RUN(test_rpmvercmp);
    RUN(test_rpm_evr);
    return unit_report("test_scan_version");
}
