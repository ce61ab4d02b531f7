/*
 * ECR finding severities (FindingSeverity): the enum, its wire names, the
 * two ways a vulnerability record's severity becomes one (a CVSS base
 * score, or a severity word from the record), and ECR's
 * findingSeverityCounts object. Pure functions; thread-safe.
 */
#ifndef BERTH_SCAN_SEVERITY_H
#define BERTH_SCAN_SEVERITY_H

#include <stdint.h>

#include <jansson.h>

#include "common/err.h"

/* Ordered from least to most severe, so values compare meaningfully;
 * UNDEFINED (the source gave no usable priority) sorts lowest. */
enum scan_severity {
    SCAN_SEVERITY_UNDEFINED = 0,
    SCAN_SEVERITY_INFORMATIONAL,
    SCAN_SEVERITY_LOW,
    SCAN_SEVERITY_MEDIUM,
    SCAN_SEVERITY_HIGH,
    SCAN_SEVERITY_CRITICAL,
};

#define SCAN_SEVERITY_COUNT 6

/* ECR's name of a severity ("HIGH"); "UNDEFINED" for out-of-range values.
 * Never NULL; static storage. */
const char *scan_severity_name(enum scan_severity sev);

/* Parse an exact ECR name ("CRITICAL", ..., "UNDEFINED"). BERTH_EINVAL for
 * anything else (including other letter cases). */
enum berth_err scan_severity_parse(const char *name, enum scan_severity *out);

/*
 * Map a CVSS v3.x base score, in tenths (0..100), to ECR's levels:
 * 0.1-3.9 LOW, 4.0-6.9 MEDIUM, 7.0-8.9 HIGH, 9.0-10.0 CRITICAL. A score of
 * 0.0 (CVSS "None") becomes INFORMATIONAL, the ECR level that says "known,
 * no impact"; UNDEFINED is kept for "no usable score at all". Out-of-range
 * scores give UNDEFINED.
 */
enum scan_severity scan_severity_from_score(int tenths);

/*
 * Map a vulnerability record's own severity word, case-insensitively:
 * critical -> CRITICAL; high, important -> HIGH; medium, moderate ->
 * MEDIUM; low -> LOW; negligible, informational, info, none ->
 * INFORMATIONAL. Anything else (including "unknown", "untriaged", NULL)
 * returns BERTH_ENOTFOUND so the caller can fall back to another source.
 */
enum berth_err scan_severity_from_word(const char *word, enum scan_severity *out);

/* ECR's findingSeverityCounts for counts (indexed by enum scan_severity):
 * the non-zero severities, most severe first ({} when all are zero). New
 * reference; NULL when out of memory. */
json_t *scan_severity_counts_json(const int64_t counts[SCAN_SEVERITY_COUNT]);

#endif
