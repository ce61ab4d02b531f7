/* Unit tests for storage/spec/severity.c: ECR's severity names, the
 * mappings from CVSS scores and from vulnerability records' words, and
 * findingSeverityCounts. */
#include "unit.h"

#include <jansson.h>

#include "storage/spec/scan_severity.h"

static void test_severity(void)
{
    CHECK_INT(scan_severity_from_score(0), SCAN_SEVERITY_INFORMATIONAL);
    CHECK_INT(scan_severity_from_score(1), SCAN_SEVERITY_LOW);
    CHECK_INT(scan_severity_from_score(39), SCAN_SEVERITY_LOW);
    CHECK_INT(scan_severity_from_score(40), SCAN_SEVERITY_MEDIUM);
    CHECK_INT(scan_severity_from_score(69), SCAN_SEVERITY_MEDIUM);
    CHECK_INT(scan_severity_from_score(70), SCAN_SEVERITY_HIGH);
    CHECK_INT(scan_severity_from_score(89), SCAN_SEVERITY_HIGH);
    CHECK_INT(scan_severity_from_score(90), SCAN_SEVERITY_CRITICAL);
    CHECK_INT(scan_severity_from_score(100), SCAN_SEVERITY_CRITICAL);
    CHECK_INT(scan_severity_from_score(101), SCAN_SEVERITY_UNDEFINED);
    CHECK_INT(scan_severity_from_score(-1), SCAN_SEVERITY_UNDEFINED);

    enum scan_severity s = SCAN_SEVERITY_UNDEFINED;
    CHECK_INT(scan_severity_from_word("MODERATE", &s), BERTH_OK);
    CHECK_INT(s, SCAN_SEVERITY_MEDIUM);
    CHECK_INT(scan_severity_from_word("important", &s), BERTH_OK);
    CHECK_INT(s, SCAN_SEVERITY_HIGH);
    CHECK_INT(scan_severity_from_word("Critical", &s), BERTH_OK);
    CHECK_INT(s, SCAN_SEVERITY_CRITICAL);
    CHECK_INT(scan_severity_from_word("negligible", &s), BERTH_OK);
    CHECK_INT(s, SCAN_SEVERITY_INFORMATIONAL);
    CHECK_INT(scan_severity_from_word("low", &s), BERTH_OK);
    CHECK_INT(s, SCAN_SEVERITY_LOW);
    CHECK_INT(scan_severity_from_word("untriaged", &s), BERTH_ENOTFOUND);
    CHECK_INT(scan_severity_from_word("", &s), BERTH_ENOTFOUND);
    CHECK_INT(scan_severity_from_word(NULL, &s), BERTH_ENOTFOUND);
    CHECK_INT(s, SCAN_SEVERITY_LOW);

    CHECK_STR(scan_severity_name(SCAN_SEVERITY_CRITICAL), "CRITICAL");
    CHECK_STR(scan_severity_name(SCAN_SEVERITY_UNDEFINED), "UNDEFINED");
    CHECK_STR(scan_severity_name((enum scan_severity)99), "UNDEFINED");
    CHECK_INT(scan_severity_parse("INFORMATIONAL", &s), BERTH_OK);
    CHECK_INT(s, SCAN_SEVERITY_INFORMATIONAL);
    CHECK_INT(scan_severity_parse("high", &s), BERTH_EINVAL);
}

static void test_counts_json(void)
{
    int64_t counts[SCAN_SEVERITY_COUNT] = {0};
    json_t *obj = scan_severity_counts_json(counts);
    char *text = json_dumps(obj, JSON_COMPACT);
    CHECK_STR(text, "{}");
    free(text);
    json_decref(obj);
    counts[SCAN_SEVERITY_UNDEFINED] = 1;
    counts[SCAN_SEVERITY_MEDIUM] = 12;
    counts[SCAN_SEVERITY_CRITICAL] = 3;
    obj = scan_severity_counts_json(counts);
    text = json_dumps(obj, JSON_COMPACT);
    /* the non-zero ones, most severe first */
    CHECK_STR(text, "{\"CRITICAL\":3,\"MEDIUM\":12,\"UNDEFINED\":1}");
    free(text);
    json_decref(obj);
}

int main(void)
{
    RUN(test_severity);
    RUN(test_counts_json);
    return unit_report("test_severity");
}
