/*
 * Unit tests for scan/vulndb/osv.c with small OSV records written here: ranges
 * with several events, fixed vs last_affected, limit events, versions
 * lists, unsorted events, other range types, the finding name, uri and
 * severity choices, and malformed records.
 */
#include "unit.h"

#include "scan/vulndb/osv.h"

static struct osv_record *parse_ok(const char *json)
{
    struct osv_record *rec = NULL;
    char err[200] = "";
    enum berth_err rc = osv_record_parse(json, strlen(json), &rec, err, sizeof(err));
    unit_checks++;
    if (rc != BERTH_OK) {
        unit_failures++;
        fprintf(stderr, "%s: parse failed (%d): %s\n", unit_current, (int)rc, err);
    }
    return rec;
}

static int affected(const struct osv_affected *a, enum scan_version_scheme scheme, const char *v)
{
    bool out = false;
    enum berth_err rc = osv_affected_includes(a, scheme, v, &out);
    return rc != BERTH_OK ? -1 : out ? 1 : 0;
}

static const char dsa[] =
    "{\"schema_version\":\"1.6.0\",\"id\":\"DSA-5532-1\",\"modified\":\"2023-11-05T12:00:00Z\","
    "\"published\":\"2023-10-24T00:00:00Z\",\"aliases\":[\"CVE-2023-5363\",\"CVE-2023-5678\"],"
    "\"summary\":\"openssl - security update\","
    "\"details\":\"Multiple vulnerabilities were found in OpenSSL.\","
    "\"affected\":[{\"package\":{\"ecosystem\":\"Debian:12\",\"name\":\"openssl\","
    "\"purl\":\"pkg:deb/debian/openssl?arch=source\"},\"ranges\":[{\"type\":\"ECOSYSTEM\","
    "\"events\":[{\"introduced\":\"0\"},{\"fixed\":\"3.0.11-1~deb12u2\"}]}],"
    "\"versions\":[\"3.0.9-1\",\"3.0.11-1~deb12u1\"],\"ecosystem_specific\":{\"urgency\":\"high\"}}"
    ","
    "{\"package\":{\"ecosystem\":\"Debian:11\",\"name\":\"openssl\"},\"ranges\":[{\"type\":"
    "\"ECOSYSTEM\",\"events\":[{\"introduced\":\"0\"},{\"fixed\":\"1.1.1w-0+deb11u1\"}]}]}],"
    "\"references\":[{\"type\":\"WEB\",\"url\":\"https://security-tracker.debian.org/tracker/"
    "CVE-2023-5363\"},{\"type\":\"ADVISORY\",\"url\":\"https://www.debian.org/security/2023/"
    "dsa-5532\"}],\"database_specific\":{\"unknown\":[1,2,3]},\"extra_future_field\":{}}";

static void test_debian_record(void)
{
    struct osv_record *rec = parse_ok(dsa);
    if (rec == NULL) {
        return;
    }
    CHECK_STR(rec->id, "DSA-5532-1");
    CHECK_STR(rec->modified, "2023-11-05T12:00:00Z");
    CHECK_INT(rec->alias_count, 2);
    CHECK_INT(rec->affected_count, 2);
    CHECK(!rec->is_withdrawn);
    CHECK_STR(osv_record_finding_name(rec), "CVE-2023-5363");
    CHECK_STR(osv_record_uri(rec), "https://www.debian.org/security/2023/dsa-5532");
    const struct osv_affected *a = &rec->affected[0];
    CHECK_STR(a->ecosystem, "Debian:12");
    CHECK_STR(a->name, "openssl");
    CHECK_INT(affected(a, SCAN_VERSION_DPKG, "3.0.11-1~deb12u1"), 1);
    CHECK_INT(affected(a, SCAN_VERSION_DPKG, "3.0.11-1~deb12u2"), 0);
    CHECK_INT(affected(a, SCAN_VERSION_DPKG, "3.0.11-1"), 0);
    CHECK_INT(affected(a, SCAN_VERSION_DPKG, "1:0.1"), 0);
    CHECK_INT(affected(a, SCAN_VERSION_DPKG, "0.9.8-1"), 1);
    /* an installed version that is not a dpkg version cannot be judged */
    CHECK_INT(affected(a, SCAN_VERSION_DPKG, "x:1"), -1);
    CHECK_INT(affected(a, SCAN_VERSION_NONE, "1.0"), -1);
    struct osv_severity_result sev;
    osv_resolve_severity(rec, a, &sev);
    CHECK_INT(sev.severity, SCAN_SEVERITY_UNDEFINED);
    CHECK_INT(sev.cvss3_tenths, -1);
    CHECK(sev.cvss3_vector == NULL);
    osv_record_free(rec);
}

/* Debian's per-CVE records name the CVE in "upstream", not "aliases". */
static void test_names_and_uris(void)
{
    struct osv_record *rec =
        parse_ok("{\"id\":\"DEBIAN-CVE-2024-0727\",\"upstream\":[\"GHSA-xxxx\",\"CVE-2024-0727\"],"
                 "\"references\":[{\"type\":\"REPORT\",\"url\":\"https://example.org/report\"},"
                 "{\"type\":\"WEB\",\"url\":\"https://example.org/web\"}]}");
    if (rec) {
        CHECK_STR(osv_record_finding_name(rec), "CVE-2024-0727");
        CHECK_STR(osv_record_uri(rec), "https://example.org/web");
        osv_record_free(rec);
    }
    rec = parse_ok("{\"id\":\"CVE-2021-44228\",\"aliases\":[\"GHSA-jfh8-c2jp-5v3q\"],"
                   "\"references\":[{\"type\":\"FIX\",\"url\":\"https://example.org/fix\"}]}");
    if (rec) {
        CHECK_STR(osv_record_finding_name(rec), "CVE-2021-44228");
        CHECK_STR(osv_record_uri(rec), "https://example.org/fix");
        osv_record_free(rec);
    }
    rec = parse_ok("{\"id\":\"ALPINE-12345\",\"aliases\":[\"CVE-XYZ\"]}");
    if (rec) {
        /* no real CVE id anywhere: the record's own id */
        CHECK_STR(osv_record_finding_name(rec), "ALPINE-12345");
        CHECK(osv_record_uri(rec) == NULL);
        osv_record_free(rec);
    }
}

/* Two introduced/fixed pairs, given out of order. */
static void test_multiple_events(void)
{
    struct osv_record *rec =
        parse_ok("{\"id\":\"TEST-1\",\"affected\":[{\"package\":{\"ecosystem\":\"Alpine:v3.19\","
                 "\"name\":\"busybox\"},\"ranges\":[{\"type\":\"ECOSYSTEM\",\"events\":["
                 "{\"fixed\":\"1.36.1-r10\"},{\"introduced\":\"1.36.0-r0\"},"
                 "{\"introduced\":\"1.34.0-r0\"},{\"fixed\":\"1.35.0-r2\"}]}]}]}");
    if (rec == NULL) {
        return;
    }
    const struct osv_affected *a = &rec->affected[0];
    CHECK_INT(affected(a, SCAN_VERSION_APK, "1.33.9-r0"), 0);
    CHECK_INT(affected(a, SCAN_VERSION_APK, "1.34.0-r0"), 1);
    CHECK_INT(affected(a, SCAN_VERSION_APK, "1.35.0-r1"), 1);
    CHECK_INT(affected(a, SCAN_VERSION_APK, "1.35.0-r2"), 0);
    CHECK_INT(affected(a, SCAN_VERSION_APK, "1.35.9-r0"), 0);
    CHECK_INT(affected(a, SCAN_VERSION_APK, "1.36.0-r0"), 1);
    CHECK_INT(affected(a, SCAN_VERSION_APK, "1.36.1-r9"), 1);
    CHECK_INT(affected(a, SCAN_VERSION_APK, "1.36.1-r10"), 0);
    CHECK_INT(affected(a, SCAN_VERSION_APK, "1.37.0-r0"), 0);
    /* the fix of each affected version is the fixed event that closes its
     * own interval; none for a version that is not affected */
    CHECK_STR(osv_affected_fixed(a, SCAN_VERSION_APK, "1.34.0-r0"), "1.35.0-r2");
    CHECK_STR(osv_affected_fixed(a, SCAN_VERSION_APK, "1.36.1-r9"), "1.36.1-r10");
    CHECK(osv_affected_fixed(a, SCAN_VERSION_APK, "1.35.9-r0") == NULL);
    CHECK(osv_affected_fixed(a, SCAN_VERSION_APK, "1.37.0-r0") == NULL);
    osv_record_free(rec);
}

/* last_affected includes its own version; fixed excludes it. */
static void test_last_affected(void)
{
    struct osv_record *rec =
        parse_ok("{\"id\":\"TEST-2\",\"affected\":[{\"package\":{\"ecosystem\":\"Debian:12\","
                 "\"name\":\"curl\"},\"ranges\":[{\"type\":\"ECOSYSTEM\",\"events\":["
                 "{\"introduced\":\"7.50.0-1\"},{\"last_affected\":\"7.88.1-10+deb12u5\"}]}]}]}");
    if (rec == NULL) {
        return;
    }
    const struct osv_affected *a = &rec->affected[0];
    CHECK_INT(affected(a, SCAN_VERSION_DPKG, "7.49.0-1"), 0);
    CHECK_INT(affected(a, SCAN_VERSION_DPKG, "7.50.0-1"), 1);
    CHECK_INT(affected(a, SCAN_VERSION_DPKG, "7.88.1-10+deb12u5"), 1);
    CHECK_INT(affected(a, SCAN_VERSION_DPKG, "7.88.1-10+deb12u6"), 0);
    CHECK(osv_affected_fixed(a, SCAN_VERSION_DPKG, "7.50.0-1") == NULL); /* no fix known */
    osv_record_free(rec);
}

/* versions[] alone; limits; ranges of other types are not evaluated. */
static void test_versions_limits_types(void)
{
    struct osv_record *rec = parse_ok(
        "{\"id\":\"TEST-3\",\"affected\":["
        "{\"package\":{\"ecosystem\":\"Debian:12\",\"name\":\"a\"},"
        "\"versions\":[\"1.0-1\",\"1.00-2\"]},"
        "{\"package\":{\"ecosystem\":\"Debian:12\",\"name\":\"b\"},\"ranges\":[{\"type\":"
        "\"ECOSYSTEM\",\"events\":[{\"introduced\":\"0\"},{\"limit\":\"2.0\"}]}]},"
        "{\"package\":{\"ecosystem\":\"Debian:12\",\"name\":\"c\"},\"ranges\":[{\"type\":"
        "\"ECOSYSTEM\",\"events\":[{\"introduced\":\"1.0\"},{\"limit\":\"*\"}]}]},"
        "{\"package\":{\"ecosystem\":\"Debian:12\",\"name\":\"d\"},\"ranges\":[{\"type\":\"GIT\","
        "\"repo\":\"https://example.org/d.git\",\"events\":[{\"introduced\":\"0\"}]},"
        "{\"type\":\"SEMVER\",\"events\":[{\"introduced\":\"0\"}]}]},"
        "{\"package\":{\"ecosystem\":\"Debian:12\",\"name\":\"e\"},\"ranges\":[{\"type\":"
        "\"ECOSYSTEM\",\"events\":[{\"introduced\":\"0\"},{\"fixed\":\"not a version:x\"}]}]}"
        "]}");
    if (rec == NULL) {
        return;
    }
    CHECK_INT(affected(&rec->affected[0], SCAN_VERSION_DPKG, "1.0-1"), 1);
    CHECK_INT(affected(&rec->affected[0], SCAN_VERSION_DPKG, "1.0-2"), 1); /* == "1.00-2" */
    CHECK_INT(affected(&rec->affected[0], SCAN_VERSION_DPKG, "1.0-3"), 0);
    CHECK_INT(affected(&rec->affected[1], SCAN_VERSION_DPKG, "1.9"), 1);
    CHECK_INT(affected(&rec->affected[1], SCAN_VERSION_DPKG, "2.0"), 0);
    CHECK_INT(affected(&rec->affected[2], SCAN_VERSION_DPKG, "0.9"), 0);
    CHECK_INT(affected(&rec->affected[2], SCAN_VERSION_DPKG, "99"), 1);
    CHECK_INT(affected(&rec->affected[3], SCAN_VERSION_DPKG, "1.0"), 0);
    /* a range whose events cannot be ordered is skipped, not guessed */
    CHECK_INT(affected(&rec->affected[4], SCAN_VERSION_DPKG, "1.0"), 0);
    osv_record_free(rec);
}

static void test_rpm_record(void)
{
    struct osv_record *rec = parse_ok(
        "{\"id\":\"ALSA-2024:0627\",\"aliases\":[\"CVE-2023-5981\"],\"affected\":[{\"package\":"
        "{\"ecosystem\":\"AlmaLinux:9\",\"name\":\"gnutls\"},\"ranges\":[{\"type\":\"ECOSYSTEM\","
        "\"events\":[{\"introduced\":\"0\"},{\"fixed\":\"3.7.6-23.el9_3.3\"}]}]}]}");
    if (rec == NULL) {
        return;
    }
    CHECK_INT(affected(&rec->affected[0], SCAN_VERSION_RPM, "3.7.6-21.el9_2"), 1);
    CHECK_INT(affected(&rec->affected[0], SCAN_VERSION_RPM, "3.7.6-23.el9_3.3"), 0);
    CHECK_INT(affected(&rec->affected[0], SCAN_VERSION_RPM, "1:3.7.6-21.el9_2"), 0);
    osv_record_free(rec);
}

static void test_severity(void)
{
    /* the affected entry's vector wins over the record's */
    struct osv_record *rec =
        parse_ok("{\"id\":\"CVE-1\",\"severity\":[{\"type\":\"CVSS_V3\",\"score\":"
                 "\"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H\"}],\"affected\":["
                 "{\"package\":{\"ecosystem\":\"Ubuntu:22.04:LTS\",\"name\":\"x\"},\"severity\":["
                 "{\"type\":\"Ubuntu\",\"score\":\"medium\"},{\"type\":\"CVSS_V3\",\"score\":"
                 "\"CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N\"}]},"
                 "{\"package\":{\"ecosystem\":\"Ubuntu:22.04:LTS\",\"name\":\"y\"}}]}");
    if (rec) {
        struct osv_severity_result r;
        osv_resolve_severity(rec, &rec->affected[0], &r);
        CHECK_INT(r.severity, SCAN_SEVERITY_LOW);
        CHECK_INT(r.cvss3_tenths, 31);
        CHECK_STR(r.cvss3_vector, "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N");
        osv_resolve_severity(rec, &rec->affected[1], &r);
        CHECK_INT(r.severity, SCAN_SEVERITY_CRITICAL);
        CHECK_INT(r.cvss3_tenths, 98);
        osv_resolve_severity(rec, NULL, &r);
        CHECK_INT(r.cvss3_tenths, 98);
        osv_record_free(rec);
    }
    /* a malformed vector is skipped; the Ubuntu priority word is used */
    rec =
        parse_ok("{\"id\":\"UBUNTU-CVE-2\",\"affected\":[{\"package\":{\"ecosystem\":"
                 "\"Ubuntu:22.04:LTS\",\"name\":\"x\"},\"severity\":[{\"type\":\"CVSS_V3\","
                 "\"score\":\"CVSS:3.1/AV:N\"},{\"type\":\"Ubuntu\",\"score\":\"negligible\"}]}]}");
    if (rec) {
        struct osv_severity_result r;
        osv_resolve_severity(rec, &rec->affected[0], &r);
        CHECK_INT(r.severity, SCAN_SEVERITY_INFORMATIONAL);
        CHECK_INT(r.cvss3_tenths, -1);
        osv_record_free(rec);
    }
    /* GHSA-style database_specific.severity; an entry-level word first */
    rec = parse_ok("{\"id\":\"GHSA-1\",\"database_specific\":{\"severity\":\"MODERATE\"},"
                   "\"affected\":[{\"package\":{\"ecosystem\":\"Debian:12\",\"name\":\"x\"}},"
                   "{\"package\":{\"ecosystem\":\"Debian:12\",\"name\":\"y\"},"
                   "\"ecosystem_specific\":{\"severity\":\"HIGH\"}}]}");
    if (rec) {
        struct osv_severity_result r;
        osv_resolve_severity(rec, &rec->affected[0], &r);
        CHECK_INT(r.severity, SCAN_SEVERITY_MEDIUM);
        osv_resolve_severity(rec, &rec->affected[1], &r);
        CHECK_INT(r.severity, SCAN_SEVERITY_HIGH);
        osv_record_free(rec);
    }
    /* only a CVSS v4 vector and an unknown word: UNDEFINED */
    rec = parse_ok("{\"id\":\"X-1\",\"severity\":[{\"type\":\"CVSS_V4\",\"score\":"
                   "\"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N\"}],"
                   "\"database_specific\":{\"severity\":\"unknown\"}}");
    if (rec) {
        struct osv_severity_result r;
        osv_resolve_severity(rec, NULL, &r);
        CHECK_INT(r.severity, SCAN_SEVERITY_UNDEFINED);
        osv_record_free(rec);
    }
}

static void test_malformed(void)
{
    static const struct {
        const char *json;
        const char *why;
    } bad[] = {
        {"", "invalid JSON"},
        {"{\"id\":\"A\"", "invalid JSON"},
        {"[]", "must be a JSON object"},
        {"{}", "id:"},
        {"{\"id\":5}", "id:"},
        {"{\"id\":\"\"}", "id:"},
        {"{\"id\":\"has space\"}", "id:"},
        {"{\"id\":\"A\",\"id\":\"B\"}", "invalid JSON"},
        {"{\"id\":\"A\",\"aliases\":\"CVE-1\"}", "aliases"},
        {"{\"id\":\"A\",\"aliases\":[1]}", "aliases[0]"},
        {"{\"id\":\"A\",\"summary\":[]}", "summary"},
        {"{\"id\":\"A\",\"affected\":{}}", "affected"},
        {"{\"id\":\"A\",\"affected\":[5]}", "affected"},
        {"{\"id\":\"A\",\"affected\":[{\"package\":{\"name\":\"x\"}}]}", "ecosystem and name"},
        {"{\"id\":\"A\",\"affected\":[{\"ranges\":[{\"events\":[]}]}]}", "type and an events"},
        {"{\"id\":\"A\",\"affected\":[{\"ranges\":[{\"type\":\"ECOSYSTEM\",\"events\":"
         "[{\"introduced\":\"0\",\"fixed\":\"1\"}]}]}]}",
         "exactly one"},
        {"{\"id\":\"A\",\"affected\":[{\"ranges\":[{\"type\":\"ECOSYSTEM\",\"events\":"
         "[{\"other\":\"0\"}]}]}]}",
         "exactly one"},
        {"{\"id\":\"A\",\"affected\":[{\"ranges\":[{\"type\":\"ECOSYSTEM\",\"events\":"
         "[{\"fixed\":\"\"}]}]}]}",
         "expected a version"},
        {"{\"id\":\"A\",\"affected\":[{\"versions\":[1.5]}]}", "versions[0]"},
        {"{\"id\":\"A\",\"severity\":[{\"type\":\"CVSS_V3\"}]}", "type and score"},
        {"{\"id\":\"A\",\"references\":[{\"type\":\"WEB\"}]}", "url is required"},
        {"{\"id\":\"A\",\"modified\":\"a\\u0000b\"}", "invalid JSON"}, /* jansson refuses NUL */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct osv_record *rec = (struct osv_record *)&rec;
        char err[200] = "";
        enum berth_err rc =
            osv_record_parse(bad[i].json, strlen(bad[i].json), &rec, err, sizeof(err));
        unit_checks++;
        if (rc != BERTH_EINVAL || strstr(err, bad[i].why) == NULL ||
            rec != (struct osv_record *)&rec) {
            unit_failures++;
            fprintf(stderr, "%s: case %zu: rc %d err \"%s\", expected \"%s\"\n", unit_current, i,
                    (int)rc, err, bad[i].why);
        }
    }
    char err[100];
    struct osv_record *rec = NULL;
    CHECK_INT(osv_record_parse("{}", OSV_RECORD_MAX + 1, &rec, err, sizeof(err)), BERTH_ETOOBIG);
    CHECK(rec == NULL);

    /* withdrawn records parse and say so; unknown fields are ignored */
    rec = parse_ok("{\"id\":\"A\",\"withdrawn\":\"2024-01-01T00:00:00Z\",\"new\":{\"x\":[]}}");
    if (rec) {
        CHECK(rec->is_withdrawn);
        CHECK_STR(rec->modified, "");
        CHECK(rec->summary == NULL);
        osv_record_free(rec);
    }
    osv_record_free(NULL);
}

/* What vulndb stores: only ECOSYSTEM ranges and versions, same verdicts. */
static void test_dump_roundtrip(void)
{
    struct osv_record *rec = parse_ok(
        "{\"id\":\"T\",\"affected\":[{\"package\":{\"ecosystem\":\"Debian:12\",\"name\":\"p\"},"
        "\"ranges\":[{\"type\":\"GIT\",\"repo\":\"r\",\"events\":[{\"introduced\":\"abc\"}]},"
        "{\"type\":\"ECOSYSTEM\",\"events\":[{\"introduced\":\"1.0\"},{\"last_affected\":\"1.5\"},"
        "{\"introduced\":\"2.0\"},{\"fixed\":\"2.2\"},{\"limit\":\"*\"}]}],"
        "\"versions\":[\"0.5\"]}]}");
    if (rec == NULL) {
        return;
    }
    char *dump = osv_affected_dump(&rec->affected[0]);
    CHECK(dump != NULL);
    CHECK_STR(dump, "{\"ranges\":[{\"type\":\"ECOSYSTEM\",\"events\":[{\"introduced\":\"1.0\"},"
                    "{\"last_affected\":\"1.5\"},{\"introduced\":\"2.0\"},{\"fixed\":\"2.2\"},"
                    "{\"limit\":\"*\"}]}],\"versions\":[\"0.5\"]}");
    struct osv_affected *a = NULL;
    CHECK_INT(osv_affected_parse(dump, strlen(dump), &a), BERTH_OK);
    static const char *const probes[] = {"0.4", "0.5", "0.9", "1.0", "1.5",
                                         "1.6", "2.0", "2.1", "2.2", "3"};
    for (size_t i = 0; a && i < sizeof(probes) / sizeof(probes[0]); i++) {
        CHECK_INT(affected(a, SCAN_VERSION_DPKG, probes[i]),
                  affected(&rec->affected[0], SCAN_VERSION_DPKG, probes[i]));
    }
    if (a) {
        CHECK(a->ecosystem == NULL);
        CHECK_INT(affected(a, SCAN_VERSION_DPKG, "1.2"), 1);
        CHECK_INT(affected(a, SCAN_VERSION_DPKG, "1.7"), 0);
    }
    osv_affected_free(a);
    free(dump);
    CHECK_INT(osv_affected_parse("nope", 4, &a), BERTH_EINVAL);
    osv_record_free(rec);
}

int main(void)
{
    RUN(test_debian_record);
    RUN(test_names_and_uris);
    RUN(test_multiple_events);
    RUN(test_last_affected);
    RUN(test_versions_limits_types);
    RUN(test_rpm_record);
    RUN(test_severity);
    RUN(test_malformed);
    RUN(test_dump_roundtrip);
    return unit_report("test_osv");
}
