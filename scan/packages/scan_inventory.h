/*
 * What an image is and what it has installed: os-release becomes an OSV
 * ecosystem name ("Debian:12", "Alpine:v3.19", "Ubuntu:22.04:LTS"), and the
 * package databases (dpkg status and status.d, apk installed, rpm's SQLite
 * database) become a package list with, for each package, the name and
 * version vulnerability records are keyed by. Parsers are strict and
 * bounded; all functions are thread-safe (no shared state).
 *
 * Supported OS families (os-release ID -> ecosystem, package manager):
 *   debian     -> Debian:<VERSION_ID major> (or from the codename), dpkg
 *   ubuntu     -> Ubuntu:<VERSION_ID>[:LTS], dpkg
 *   alpine     -> Alpine:v<major>.<minor>, apk
 *   wolfi      -> Wolfi, apk;           chainguard -> Chainguard, apk
 *   almalinux  -> AlmaLinux:<major>, rpm; rocky -> Rocky Linux:<major>, rpm
 *                 (rpm's SQLite database: EL9 and later; EL8's BerkeleyDB
 *                 rpmdb is not read)
 * Anything else is unsupported (BERTH_EUNSUPPORTED). One table in
 * scan_inventory.c holds them, for scan_os_parse and scan_ecosystem_scheme.
 */
#ifndef BERTH_SCAN_INVENTORY_H
#define BERTH_SCAN_INVENTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "scan/packages/scan_layers.h"
#include "scan/packages/scan_version.h"

/* Most packages one image may list. */
#define SCAN_MAX_PACKAGES 100000
/* Longest package (or source package) name accepted. */
#define SCAN_PKG_NAME_MAX 128
/* Longest os-release value kept. */
#define SCAN_OS_VALUE_MAX 128

enum scan_pkg_manager {
    SCAN_PKG_NONE = 0,
    SCAN_PKG_DPKG,
    SCAN_PKG_APK,
    SCAN_PKG_RPM,
};

struct scan_os {
    char id[SCAN_OS_VALUE_MAX];         /* os-release ID ("debian") */
    char version_id[SCAN_OS_VALUE_MAX]; /* VERSION_ID, may be "" */
    char codename[SCAN_OS_VALUE_MAX];   /* VERSION_CODENAME, may be "" */
    char ecosystem[SCAN_OS_VALUE_MAX];  /* OSV ecosystem ("Debian:12") */
    char family[SCAN_OS_VALUE_MAX]; /* release-less ecosystem records may use ("Debian"), or "" */
    /* Amazon Inspector's name for it ("DEBIAN_12", "UBUNTU_22_04",
     * "ALPINE_LINUX_3_19", "ALMA_LINUX_9", "ROCKY_LINUX_9", "WOLFI",
     * "CHAINGUARD"); "" when unsupported */
    char platform[SCAN_OS_VALUE_MAX];
    enum scan_pkg_manager manager;
    enum scan_version_scheme scheme;
};

/* One installed package. All strings are owned by the list. */
struct scan_pkg {
    char *name;    /* binary package name */
    char *version; /* installed version, as the package manager shows it */
    char *arch;    /* architecture, or NULL */
    /* What vulnerability records are keyed by: dpkg's Source (else the
     * name), apk's origin (else the name), rpm's source rpm name (else the
     * name); and the version to compare: the Source field's "(version)"
     * when given, else the installed version. */
    char *source;
    char *source_version;
};

struct scan_pkgs {
    struct scan_pkg *items;
    size_t count;
    size_t cap;
};

void scan_pkgs_init(struct scan_pkgs *pkgs);
void scan_pkgs_fini(struct scan_pkgs *pkgs);

/* Append a package (copies every string; arch, source and source_version
 * may be NULL, meaning none / the name / the version). Every string must be
 * printable ASCII without blanks: BERTH_EINVAL for an empty or too long
 * (SCAN_PKG_NAME_MAX, SCAN_VERSION_MAX) or otherwise invalid one;
 * BERTH_ETOOBIG past SCAN_MAX_PACKAGES; BERTH_ENOMEM. */
enum berth_err scan_pkgs_add(struct scan_pkgs *pkgs, const char *name, const char *version,
                             const char *arch, const char *source, const char *source_version);

/* "dpkg", "apk" or "rpm"; NULL for SCAN_PKG_NONE. Static string. */
const char *scan_pkg_manager_name(enum scan_pkg_manager manager);

/*
 * Parse os-release text (KEY=value lines, values optionally quoted) into
 * *out. BERTH_EUNSUPPORTED when the OS is not one of the supported
 * families above or lacks the release it needs; *out is written either
 * way (id and version fields filled) so callers can name what they saw.
 */
enum berth_err scan_os_parse(const char *text, size_t len, struct scan_os *out);

/* The version ordering of an OSV ecosystem ("Debian:12" -> dpkg,
 * "Alpine:v3.19" -> apk, "Rocky Linux:9" -> rpm; the part before the
 * first ':' names the family) when it is one of the supported families
 * above, else SCAN_VERSION_NONE: an import keeps exactly the records a
 * scan can match. */
enum scan_version_scheme scan_ecosystem_scheme(const char *ecosystem);

/*
 * Parse a dpkg status file (or one /var/lib/dpkg/status.d file) and append
 * the installed packages. A package is installed when its Status field's
 * flag is "ok" and its state is "installed" (so "install ok installed",
 * and also held or deinstall-selected packages that are still installed);
 * with status_optional, a paragraph without a Status field counts as
 * installed (distroless status.d files are plain control paragraphs). Uses
 * Package, Version, Architecture and Source ("name" or "name (version)").
 * BERTH_EINVAL with reason (cap bytes) for malformed input, naming the
 * line; BERTH_ETOOBIG, BERTH_ENOMEM.
 */
enum berth_err scan_dpkg_parse(const char *text, size_t len, bool status_optional,
                               struct scan_pkgs *pkgs, char *reason, size_t cap);

/* Parse apk's installed database ("P:", "V:", "A:", "o:" lines, blank-line
 * separated). Same returns as scan_dpkg_parse. */
enum berth_err scan_apk_parse(const char *text, size_t len, struct scan_pkgs *pkgs, char *reason,
                              size_t cap);

/*
 * Parse one rpm header blob as rpm's SQLite backend stores it (index count
 * and data length, big-endian index entries, data) and append the package:
 * NAME, EPOCH, VERSION, RELEASE, ARCH, SOURCERPM. The version is
 * "[epoch:]version-release" (epoch only when present and non-zero); the
 * source is the source rpm's name. gpg-pubkey pseudo-packages are skipped.
 * BERTH_EINVAL for a malformed header (bounds, types, missing tags).
 */
enum berth_err scan_rpm_header_parse(const void *blob, size_t len, struct scan_pkgs *pkgs);

/*
 * Parse rpm's rpmdb.sqlite (the bytes of the file) and append every
 * package. The database is opened in memory, read-only, with SQLite's
 * defensive settings and a bound on the work done. BERTH_EINVAL with a
 * reason when it is not an SQLite database, has no Packages table or holds
 * a malformed header; BERTH_ETOOBIG, BERTH_ENOMEM. (scan/packages/rpmdb.c)
 */
enum berth_err scan_rpmdb_parse(const void *db, size_t len, struct scan_pkgs *pkgs, char *reason,
                                size_t cap);

/*
 * From an image's files, find the OS and its packages: os-release
 * (/etc/os-release, else /usr/lib/os-release), then the database of the
 * OS's package manager (dpkg: status and status.d together; apk; rpm under
 * /var/lib/rpm or /usr/lib/sysimage/rpm). BERTH_EUNSUPPORTED when there is
 * no recognised OS or no package database for it (the caller reports
 * UnsupportedImageError); BERTH_EINVAL with a reason for a malformed
 * database; BERTH_ETOOBIG, BERTH_ENOMEM. pkgs must be initialised; on
 * error it may hold a partial list (free it with scan_pkgs_fini).
 */
enum berth_err scan_inventory_collect(const struct scan_fs *fs, struct scan_os *os,
                                      struct scan_pkgs *pkgs, char *reason, size_t cap);

#endif
