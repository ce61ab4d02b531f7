/*
 * Package version ordering for the three OS package formats the scanner
 * reads: dpkg (Debian, Ubuntu), apk (Alpine, Wolfi) and rpm. Each follows
 * its package manager's own rules, so that "is 1.2-3 before the fixed
 * 1.2-3+deb12u1?" is answered as the distribution answers it. Pure
 * functions; thread-safe; no allocation.
 */
#ifndef BERTH_SCAN_VERSION_H
#define BERTH_SCAN_VERSION_H

#include <stddef.h>

#include "common/err.h"

enum scan_version_scheme {
    SCAN_VERSION_NONE = 0, /* unknown: nothing can be compared */
    SCAN_VERSION_DPKG,
    SCAN_VERSION_APK,
    SCAN_VERSION_RPM,
};

/* Longest version string any comparison accepts (bytes, excluding NUL). */
#define SCAN_VERSION_MAX 256

/*
 * dpkg: [epoch:]upstream[-revision] compared as dpkg does (Debian Policy
 * 5.6.12): epochs numerically; upstream and revision by alternating
 * non-digit runs (where '~' sorts before everything, even the end, and
 * letters sort before non-letters) and digit runs compared numerically.
 * Leading and trailing blanks are ignored, as dpkg does.
 * *out is <0, 0, >0. BERTH_EINVAL when either string is empty, longer than
 * SCAN_VERSION_MAX, has a non-numeric or too large epoch, an empty upstream
 * part, or embedded whitespace.
 */
enum berth_err scan_version_dpkg_compare(const char *a, const char *b, int *out);

/*
 * apk: apk-tools' ordering (digit{.digit}...{letter}{_suffix{N}}...
 * {~hash}{-rN}): numbers numerically (a dotted component with a leading
 * zero compares as a string), one letter, suffixes _alpha < _beta < _pre <
 * _rc < (none) < _cvs < _svn < _git < _hg < _p, then -rN revisions. Like
 * apk, malformed strings still get an order (the valid prefix decides, an
 * invalid tail sorts lowest). Numbers of any length compare exactly.
 * BERTH_EINVAL only for a string longer than SCAN_VERSION_MAX.
 */
enum berth_err scan_version_apk_compare(const char *a, const char *b, int *out);

/*
 * rpm: [epoch:]version[-release] compared as rpm does: epochs numerically
 * (missing = 0), then version and release with rpmvercmp (alphanumeric
 * segments, digits beat letters, numbers without leading zeros compare by
 * length then value, '~' sorts before everything, '^' after the end but
 * before any further segment). As in rpm's parseEVR, only a leading run of
 * digits followed by ':' is an epoch: "a:1" has none (the whole string is
 * the version) and ":1" has an empty one (0). BERTH_EINVAL when a string
 * is empty or longer than SCAN_VERSION_MAX.
 */
enum berth_err scan_version_rpm_compare(const char *a, const char *b, int *out);

/* Dispatch on scheme. BERTH_EUNSUPPORTED for SCAN_VERSION_NONE. */
enum berth_err scan_version_compare(enum scan_version_scheme scheme, const char *a, const char *b,
                                    int *out);

#endif
