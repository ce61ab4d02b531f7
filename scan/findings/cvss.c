/*
 * CVSS v3.x vector parsing and base score (FIRST CVSS v3.1 specification,
 * sections 6 and 7). The arithmetic is done in the
 * order the specification's reference calculators use, in IEEE doubles,
 * so that scores match the published ones.
 */
#include "scan/findings/scan_cvss.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct metric_def {
    const char *name;
    const char *values; /* allowed one-letter values */
};

/* The eight base metrics come first; their index is used below. */
enum { M_AV, M_AC, M_PR, M_UI, M_S, M_C, M_I, M_A, M_BASE_COUNT };

static const struct metric_def metrics[] = {
    {"AV", "NALP"}, {"AC", "LH"},    {"PR", "NLH"},  {"UI", "NR"},   {"S", "UC"},
    {"C", "HLN"},   {"I", "HLN"},    {"A", "HLN"},   {"E", "XUPFH"}, {"RL", "XOTWU"},
    {"RC", "XURC"}, {"CR", "XLMH"},  {"IR", "XLMH"}, {"AR", "XLMH"}, {"MAV", "XNALP"},
    {"MAC", "XLH"}, {"MPR", "XNLH"}, {"MUI", "XNR"}, {"MS", "XUC"},  {"MC", "XNLH"},
    {"MI", "XNLH"}, {"MA", "XNLH"},
};

#define METRIC_COUNT (sizeof(metrics) / sizeof(metrics[0]))

static double weight_av(char v)
{
    switch (v) {
    case 'N':
        return 0.85;
    case 'A':
        return 0.62;
    case 'L':
        return 0.55;
    default:
        return 0.2; /* P */
    }
}

static double weight_pr(char v, int scope_changed)
{
    switch (v) {
    case 'N':
        return 0.85;
    case 'L':
        return scope_changed ? 0.68 : 0.62;
    default:
        return scope_changed ? 0.5 : 0.27; /* H */
    }
}

static double weight_cia(char v)
{
    switch (v) {
    case 'H':
        return 0.56;
    case 'L':
        return 0.22;
    default:
        return 0; /* N */
    }
}

/* CVSS v3.1 Appendix A: round to 5 decimals as an integer first, so that
 * floating-point noise (4.000000001) does not push a score up. For base
 * scores it agrees with v3.0's plain "round up to one decimal" on every one
 * of the 2,592 possible base vectors (the unit test checks this), so the
 * same function serves both versions. */
static int roundup(double x)
{
    int64_t i = llround(x * 100000.0);
    if (i % 10000 == 0) {
        return (int)(i / 10000);
    }
    return (int)(i / 10000) + 1;
}

static int base_score(const char v[M_BASE_COUNT])
{
    int changed = v[M_S] == 'C';
    double iss =
        1 - ((1 - weight_cia(v[M_C])) * (1 - weight_cia(v[M_I])) * (1 - weight_cia(v[M_A])));
    double impact;
    if (changed) {
        impact = 7.52 * (iss - 0.029) - 3.25 * pow(iss - 0.02, 15);
    } else {
        impact = 6.42 * iss;
    }
    double exploitability = 8.22 * weight_av(v[M_AV]) * (v[M_AC] == 'L' ? 0.77 : 0.44) *
                            weight_pr(v[M_PR], changed) * (v[M_UI] == 'N' ? 0.85 : 0.62);
    if (impact <= 0) {
        return 0;
    }
    double raw =
        changed ? fmin(1.08 * (impact + exploitability), 10) : fmin(impact + exploitability, 10);
    return roundup(raw);
}

enum berth_err scan_cvss3_parse(const char *vector, struct scan_cvss3 *out)
{
    if (vector == NULL) {
        return BERTH_EINVAL;
    }
    size_t len = strnlen(vector, SCAN_CVSS_VECTOR_MAX + 1);
    if (len > SCAN_CVSS_VECTOR_MAX) {
        return BERTH_EINVAL;
    }
    int minor;
    if (strncmp(vector, "CVSS:3.0/", 9) == 0) {
        minor = 0;
    } else if (strncmp(vector, "CVSS:3.1/", 9) == 0) {
        minor = 1;
    } else {
        return BERTH_EINVAL;
    }
    char values[METRIC_COUNT] = {0};
    const char *p = vector + 9;
    const char *end = vector + len;
    for (;;) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *stop = slash ? slash : end;
        const char *colon = memchr(p, ':', (size_t)(stop - p));
        /* "Name:V" with a non-empty name and exactly one value letter */
        if (colon == NULL || colon == p || stop - colon != 2) {
            return BERTH_EINVAL;
        }
        size_t nlen = (size_t)(colon - p);
        char value = colon[1];
        size_t m = 0;
        while (m < METRIC_COUNT &&
               !(strlen(metrics[m].name) == nlen && memcmp(metrics[m].name, p, nlen) == 0)) {
            m++;
        }
        if (m == METRIC_COUNT || values[m] != 0 || value == '\0' ||
            strchr(metrics[m].values, value) == NULL) {
            return BERTH_EINVAL;
        }
        values[m] = value;
        if (slash == NULL) {
            break;
        }
        p = slash + 1;
    }
    for (int m = 0; m < M_BASE_COUNT; m++) {
        if (values[m] == 0) {
            return BERTH_EINVAL;
        }
    }
    out->minor = minor;
    out->base_tenths = base_score(values);
    out->is_scope_changed = values[M_S] == 'C';
    return BERTH_OK;
}

void scan_cvss_format_score(int tenths, char *out, size_t cap)
{
    if (cap == 0) {
        return;
    }
    if (tenths < 0 || tenths > 100) {
        tenths = 0;
    }
    snprintf(out, cap, "%d.%d", tenths / 10, tenths % 10);
}
