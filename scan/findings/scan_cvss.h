/*
 * CVSS v3.0 / v3.1 vector strings and their base score, computed by the
 * FIRST specification's formula (scope-dependent Privileges Required
 * weights, the scope-changed impact formula, and the Roundup function of
 * the 3.1 specification's Appendix A, which for base scores gives the same
 * result as 3.0's rounding). Pure functions; thread-safe.
 */
#ifndef BERTH_SCAN_CVSS_H
#define BERTH_SCAN_CVSS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

/* Longest vector string accepted (bytes, excluding NUL); a complete 3.1
 * vector with every temporal and environmental metric is under 150. */
#define SCAN_CVSS_VECTOR_MAX 256

struct scan_cvss3 {
    int minor;       /* 0 for CVSS:3.0, 1 for CVSS:3.1 */
    int base_tenths; /* base score x 10: 0..100 (9.8 -> 98) */
    bool is_scope_changed;
};

/*
 * Parse a vector ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H") and
 * compute its base score. Metrics may come in any order; each of the eight
 * base metrics must appear exactly once; temporal and environmental
 * metrics are validated (name and value) but do not change the base score.
 * BERTH_EINVAL for anything malformed: another version, a missing,
 * repeated or unknown metric, an invalid value, empty components, trailing
 * '/', or a string over SCAN_CVSS_VECTOR_MAX. *out is written only on
 * success; there is never a guessed score.
 */
enum berth_err scan_cvss3_parse(const char *vector, struct scan_cvss3 *out);

/* Format a score in tenths as ECR shows it ("9.8", "10.0", "0.0") into out
 * (at least 5 bytes). */
void scan_cvss_format_score(int tenths, char *out, size_t cap);

#endif
