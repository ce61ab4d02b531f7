/*
 * Image inventory for the built-in scanner: os-release to an OSV ecosystem,
 * and dpkg / apk / rpm-header package databases to a package list. The
 * SQLite side of rpm's database lives in rpmdb.c (the one file of scan/
 * packages that may include sqlite3.h). Pure parsing, no I/O; thread-safe.
 */
#include "scan/packages/scan_inventory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/str.h"

/* rpm header tags and types (rpm's rpmtag.h). */
#define RPMTAG_NAME 1000
#define RPMTAG_VERSION 1001
#define RPMTAG_RELEASE 1002
#define RPMTAG_EPOCH 1003
#define RPMTAG_ARCH 1022
#define RPMTAG_SOURCERPM 1044
#define RPM_INT32_TYPE 4
#define RPM_STRING_TYPE 6
#define RPM_I18NSTRING_TYPE 9
/* rpm's own sanity limits on a header (hdrchkTags, hdrchkData). */
#define RPM_MAX_INDEX 0xffffu
#define RPM_MAX_DATA 0x0fffffffu

struct span {
    const char *p;
    size_t n;
};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static struct span trim(struct span s)
{
    while (s.n > 0 && is_blank(s.p[0])) {
        s.p++;
        s.n--;
    }
    while (s.n > 0 && is_blank(s.p[s.n - 1])) {
        s.n--;
    }
    return s;
}

static bool span_eq(struct span s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n == n && memcmp(s.p, lit, n) == 0;
}

static bool span_ieq(struct span s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n == n && strncasecmp(s.p, lit, n) == 0;
}

/* Next line of text (without its '\n' and a trailing '\r'); false at end. */
static bool next_line(const char *text, size_t len, size_t *pos, struct span *line)
{
    if (*pos >= len) {
        return false;
    }
    const char *start = text + *pos;
    const char *nl = memchr(start, '\n', len - *pos);
    size_t n = nl ? (size_t)(nl - start) : len - *pos;
    *pos += n + (nl ? 1 : 0);
    if (n > 0 && start[n - 1] == '\r') {
        n--;
    }
    *line = (struct span){start, n};
    return true;
}

/* ---- the package list ---------------------------------------------------- */

void scan_pkgs_init(struct scan_pkgs *pkgs)
{
    pkgs->items = NULL;
    pkgs->count = 0;
    pkgs->cap = 0;
}

static void pkg_free(struct scan_pkg *p)
{
    free(p->name);
    free(p->version);
    free(p->arch);
    free(p->source);
    free(p->source_version);
}

void scan_pkgs_fini(struct scan_pkgs *pkgs)
{
    for (size_t i = 0; i < pkgs->count; i++) {
        pkg_free(&pkgs->items[i]);
    }
    free(pkgs->items);
    scan_pkgs_init(pkgs);
}

/* Printable ASCII without blanks, 1..max bytes. */
static bool token_ok(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        unsigned char c = (unsigned char)s[n];
        if (n >= max || c <= 0x20 || c >= 0x7f) {
            return false;
        }
    }
    return n > 0;
}

enum berth_err scan_pkgs_add(struct scan_pkgs *pkgs, const char *name, const char *version,
                             const char *arch, const char *source, const char *source_version)
{
    if (name == NULL || version == NULL || !token_ok(name, SCAN_PKG_NAME_MAX) ||
        !token_ok(version, SCAN_VERSION_MAX) || (arch && !token_ok(arch, SCAN_PKG_NAME_MAX)) ||
        (source && !token_ok(source, SCAN_PKG_NAME_MAX)) ||
        (source_version && !token_ok(source_version, SCAN_VERSION_MAX))) {
        return BERTH_EINVAL;
    }
    if (pkgs->count >= SCAN_MAX_PACKAGES) {
        return BERTH_ETOOBIG;
    }
    if (pkgs->count == pkgs->cap) {
        size_t cap = pkgs->cap ? pkgs->cap * 2 : 64;
        struct scan_pkg *items = realloc(pkgs->items, cap * sizeof(*items));
        if (items == NULL) {
            return BERTH_ENOMEM;
        }
        pkgs->items = items;
        pkgs->cap = cap;
    }
    struct scan_pkg p = {
        .name = strdup(name),
        .version = strdup(version),
        .arch = arch ? strdup(arch) : NULL,
        .source = strdup(source ? source : name),
        .source_version = strdup(source_version ? source_version : version),
    };
    if (p.name == NULL || p.version == NULL || (arch && p.arch == NULL) || p.source == NULL ||
        p.source_version == NULL) {
        pkg_free(&p);
        return BERTH_ENOMEM;
    }
    pkgs->items[pkgs->count++] = p;
    return BERTH_OK;
}

/* ---- os-release ---------------------------------------------------------- */

/* An os-release value: bare, "double-quoted" with backslash escapes, or
 * 'single-quoted'. Anything after a closing quote is ignored. */
static void os_value(struct span v, char *out, size_t cap)
{
    size_t o = 0;
    v = trim(v);
    if (v.n > 0 && (v.p[0] == '"' || v.p[0] == '\'')) {
        char q = v.p[0];
        for (size_t i = 1; i < v.n && v.p[i] != q; i++) {
            char c = v.p[i];
            if (q == '"' && c == '\\' && i + 1 < v.n && strchr("\\\"$`", v.p[i + 1]) != NULL) {
                c = v.p[++i];
            }
            if (o + 1 < cap) {
                out[o++] = c;
            }
        }
    } else {
        for (size_t i = 0; i < v.n && o + 1 < cap; i++) {
            out[o++] = v.p[i];
        }
    }
    out[o] = '\0';
}

/* The leading run of digits of s, as a number below 100000; -1 if none. */
static long leading_number(const char *s, const char **rest)
{
    long v = 0;
    size_t i = 0;
    while (s[i] >= '0' && s[i] <= '9' && i < 5) {
        v = v * 10 + (s[i] - '0');
        i++;
    }
    if (rest) {
        *rest = s + i;
    }
    return i == 0 || (s[i] >= '0' && s[i] <= '9') ? -1 : v;
}

static const struct {
    const char *codename;
    int release;
} debian_codenames[] = {
    {"buster", 10}, {"bullseye", 11}, {"bookworm", 12}, {"trixie", 13}, {"forky", 14},
};

/* How a family's ecosystem names its release. */
enum os_release {
    REL_MAJOR,  /* "<name>:<VERSION_ID major>" */
    REL_DEBIAN, /* REL_MAJOR, or the major release of a known codename */
    REL_UBUNTU, /* "<name>:<major>.<minor>[:LTS]" */
    REL_ALPINE, /* "<name>:v<major>.<minor>" */
    REL_NONE,   /* "<name>": a rolling distribution */
};

/* The supported OS families: one table for recognising an image's OS
 * (scan_os_parse) and for which vulnerability records an import keeps
 * (scan_ecosystem_scheme), so the two can never disagree. */
static const struct os_family {
    const char *id;        /* os-release ID */
    const char *ecosystem; /* OSV ecosystem name, before any ":<release>" */
    const char *platform;  /* Amazon Inspector's platform name, before any "_<release>" */
    enum os_release release;
    bool family_records; /* records may name the family without a release */
    enum scan_pkg_manager manager;
    enum scan_version_scheme scheme;
} os_families[] = {
    {"debian", "Debian", "DEBIAN", REL_DEBIAN, true, SCAN_PKG_DPKG, SCAN_VERSION_DPKG},
    {"ubuntu", "Ubuntu", "UBUNTU", REL_UBUNTU, false, SCAN_PKG_DPKG, SCAN_VERSION_DPKG},
    {"alpine", "Alpine", "ALPINE_LINUX", REL_ALPINE, false, SCAN_PKG_APK, SCAN_VERSION_APK},
    {"wolfi", "Wolfi", "WOLFI", REL_NONE, false, SCAN_PKG_APK, SCAN_VERSION_APK},
    {"chainguard", "Chainguard", "CHAINGUARD", REL_NONE, false, SCAN_PKG_APK, SCAN_VERSION_APK},
    {"almalinux", "AlmaLinux", "ALMA_LINUX", REL_MAJOR, true, SCAN_PKG_RPM, SCAN_VERSION_RPM},
    {"rocky", "Rocky Linux", "ROCKY_LINUX", REL_MAJOR, true, SCAN_PKG_RPM, SCAN_VERSION_RPM},
};

#define OS_FAMILY_COUNT (sizeof(os_families) / sizeof(os_families[0]))

enum scan_version_scheme scan_ecosystem_scheme(const char *ecosystem)
{
    if (ecosystem == NULL) {
        return SCAN_VERSION_NONE;
    }
    size_t n = strcspn(ecosystem, ":");
    for (size_t i = 0; i < OS_FAMILY_COUNT; i++) {
        const char *name = os_families[i].ecosystem;
        if (strlen(name) == n && strncmp(ecosystem, name, n) == 0) {
            return os_families[i].scheme;
        }
    }
    return SCAN_VERSION_NONE;
}

const char *scan_pkg_manager_name(enum scan_pkg_manager manager)
{
    switch (manager) {
    case SCAN_PKG_DPKG:
        return "dpkg";
    case SCAN_PKG_APK:
        return "apk";
    case SCAN_PKG_RPM:
        return "rpm";
    case SCAN_PKG_NONE:
        break;
    }
    return NULL;
}

enum berth_err scan_os_parse(const char *text, size_t len, struct scan_os *out)
{
    char version[SCAN_OS_VALUE_MAX] = "";
    char pretty[SCAN_OS_VALUE_MAX] = "";
    memset(out, 0, sizeof(*out));
    size_t pos = 0;
    struct span line;
    while (next_line(text, len, &pos, &line)) {
        line = trim(line);
        if (line.n == 0 || line.p[0] == '#') {
            continue;
        }
        const char *eq = memchr(line.p, '=', line.n);
        if (eq == NULL) {
            continue;
        }
        struct span key = {line.p, (size_t)(eq - line.p)};
        struct span val = {eq + 1, line.n - key.n - 1};
        if (span_eq(key, "ID")) {
            os_value(val, out->id, sizeof(out->id));
        } else if (span_eq(key, "VERSION_ID")) {
            os_value(val, out->version_id, sizeof(out->version_id));
        } else if (span_eq(key, "VERSION_CODENAME")) {
            os_value(val, out->codename, sizeof(out->codename));
        } else if (span_eq(key, "VERSION")) {
            os_value(val, version, sizeof(version));
        } else if (span_eq(key, "PRETTY_NAME")) {
            os_value(val, pretty, sizeof(pretty));
        }
    }
    const struct os_family *fam = NULL;
    for (size_t i = 0; i < OS_FAMILY_COUNT && fam == NULL; i++) {
        if (strcmp(out->id, os_families[i].id) == 0) {
            fam = &os_families[i];
        }
    }
    const char *rest = NULL;
    long major = leading_number(out->version_id, &rest);
    int n = -1;
    switch (fam != NULL ? fam->release : REL_NONE) {
    case REL_DEBIAN:
        for (size_t i = 0; major < 0 && i < sizeof(debian_codenames) / sizeof(debian_codenames[0]);
             i++) {
            if (strcmp(out->codename, debian_codenames[i].codename) == 0) {
                major = debian_codenames[i].release;
            }
        }
        /* fall through */
    case REL_MAJOR:
        if (major >= 0) {
            n = snprintf(out->ecosystem, sizeof(out->ecosystem), "%s:%ld", fam->ecosystem, major);
            snprintf(out->platform, sizeof(out->platform), "%s_%ld", fam->platform, major);
        }
        break;
    case REL_UBUNTU: {
        const char *minor_rest = NULL;
        long minor = *rest == '.' ? leading_number(rest + 1, &minor_rest) : -1;
        if (major >= 0 && minor >= 0 && *minor_rest == '\0') {
            bool lts = strstr(version, "LTS") != NULL || strstr(pretty, " LTS") != NULL;
            n = snprintf(out->ecosystem, sizeof(out->ecosystem), "%s:%s%s", fam->ecosystem,
                         out->version_id, lts ? ":LTS" : "");
            snprintf(out->platform, sizeof(out->platform), "%s_%ld_%.*s", fam->platform, major,
                     (int)(minor_rest - rest - 1), rest + 1);
        }
        break;
    }
    case REL_ALPINE: {
        long minor = *rest == '.' ? leading_number(rest + 1, NULL) : -1;
        if (major >= 0 && minor >= 0) {
            n = snprintf(out->ecosystem, sizeof(out->ecosystem), "%s:v%ld.%ld", fam->ecosystem,
                         major, minor);
            snprintf(out->platform, sizeof(out->platform), "%s_%ld_%ld", fam->platform, major,
                     minor);
        }
        break;
    }
    case REL_NONE:
        if (fam != NULL) {
            n = snprintf(out->ecosystem, sizeof(out->ecosystem), "%s", fam->ecosystem);
            snprintf(out->platform, sizeof(out->platform), "%s", fam->platform);
        }
        break;
    }
    if (n < 0 || (size_t)n >= sizeof(out->ecosystem)) {
        out->ecosystem[0] = '\0';
        out->platform[0] = '\0';
        out->family[0] = '\0';
        out->manager = SCAN_PKG_NONE;
        out->scheme = SCAN_VERSION_NONE;
        return BERTH_EUNSUPPORTED;
    }
    if (fam->family_records) {
        snprintf(out->family, sizeof(out->family), "%s", fam->ecosystem);
    }
    out->manager = fam->manager;
    out->scheme = fam->scheme;
    return BERTH_OK;
}

/* ---- dpkg ---------------------------------------------------------------- */

struct dpkg_para {
    struct span package, version, arch, source, status;
    bool has_package, has_version, has_arch, has_source, has_status;
    size_t first_line;
    bool open;
};

static char *span_dup(struct span s)
{
    return str_ndup(s.p, s.n);
}

/* "name" or "name (version)". */
static bool parse_source(struct span s, struct span *name, struct span *version)
{
    s = trim(s);
    size_t i = 0;
    while (i < s.n && s.p[i] != ' ' && s.p[i] != '(') {
        i++;
    }
    *name = (struct span){s.p, i};
    *version = (struct span){NULL, 0};
    struct span rest = trim((struct span){s.p + i, s.n - i});
    if (rest.n == 0) {
        return name->n > 0;
    }
    if (rest.n < 3 || rest.p[0] != '(' || rest.p[rest.n - 1] != ')') {
        return false;
    }
    *version = trim((struct span){rest.p + 1, rest.n - 2});
    return name->n > 0 && version->n > 0;
}

static enum berth_err dpkg_flush(struct dpkg_para *p, bool status_optional, struct scan_pkgs *pkgs,
                                 char *reason, size_t cap)
{
    enum berth_err rc = BERTH_OK;
    char *name = NULL, *version = NULL, *arch = NULL, *src = NULL, *srcver = NULL;
    if (!p->open) {
        return BERTH_OK;
    }
    p->open = false;
    if (!p->has_package) {
        str_say(reason, cap, "line %zu: paragraph has no Package field", p->first_line);
        return BERTH_EINVAL;
    }
    if (p->has_status) {
        /* "want flag state", e.g. "install ok installed" */
        struct span w[3];
        size_t nw = 0, i = 0;
        struct span s = p->status;
        while (i < s.n && nw < 4) {
            while (i < s.n && is_blank(s.p[i])) {
                i++;
            }
            size_t start = i;
            while (i < s.n && !is_blank(s.p[i])) {
                i++;
            }
            if (i > start) {
                if (nw == 3) {
                    nw = 4;
                    break;
                }
                w[nw++] = (struct span){s.p + start, i - start};
            }
        }
        if (nw != 3) {
            str_say(reason, cap, "line %zu: Status is not \"want flag state\"", p->first_line);
            return BERTH_EINVAL;
        }
        if (!span_eq(w[1], "ok") || !span_eq(w[2], "installed")) {
            return BERTH_OK;
        }
    } else if (!status_optional) {
        str_say(reason, cap, "line %zu: paragraph has no Status field", p->first_line);
        return BERTH_EINVAL;
    }
    if (!p->has_version) {
        str_say(reason, cap, "line %zu: installed package has no Version field", p->first_line);
        return BERTH_EINVAL;
    }
    struct span sname = {NULL, 0}, sver = {NULL, 0};
    if (p->has_source && !parse_source(p->source, &sname, &sver)) {
        str_say(reason, cap, "line %zu: Source is not \"name\" or \"name (version)\"",
                p->first_line);
        return BERTH_EINVAL;
    }
    name = span_dup(p->package);
    version = span_dup(p->version);
    arch = p->has_arch ? span_dup(p->arch) : NULL;
    src = sname.n ? span_dup(sname) : NULL;
    srcver = sver.n ? span_dup(sver) : NULL;
    if (name == NULL || version == NULL || (p->has_arch && arch == NULL) ||
        (sname.n && src == NULL) || (sver.n && srcver == NULL)) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    rc = scan_pkgs_add(pkgs, name, version, arch, src, srcver);
    if (rc == BERTH_EINVAL) {
        str_say(reason, cap, "line %zu: invalid package name, version or source", p->first_line);
    } else if (rc == BERTH_ETOOBIG) {
        str_say(reason, cap, "more than %d packages", SCAN_MAX_PACKAGES);
    }
out:
    free(name);
    free(version);
    free(arch);
    free(src);
    free(srcver);
    return rc;
}

enum berth_err scan_dpkg_parse(const char *text, size_t len, bool status_optional,
                               struct scan_pkgs *pkgs, char *reason, size_t cap)
{
    struct dpkg_para p = {0};
    size_t pos = 0, lineno = 0;
    struct span line;
    enum berth_err rc;
    while (next_line(text, len, &pos, &line)) {
        lineno++;
        if (trim(line).n == 0) {
            rc = dpkg_flush(&p, status_optional, pkgs, reason, cap);
            if (rc != BERTH_OK) {
                return rc;
            }
            continue;
        }
        if (line.p[0] == ' ' || line.p[0] == '\t') {
            /* continuation of a multi-line field we do not use */
            if (!p.open) {
                str_say(reason, cap, "line %zu: continuation line outside a paragraph", lineno);
                return BERTH_EINVAL;
            }
            continue;
        }
        if (line.p[0] == '#') {
            continue;
        }
        const char *colon = memchr(line.p, ':', line.n);
        struct span name = {line.p, colon ? (size_t)(colon - line.p) : 0};
        if (colon == NULL || name.n == 0 || memchr(name.p, ' ', name.n) != NULL ||
            memchr(name.p, '\t', name.n) != NULL || memchr(line.p, '\0', line.n) != NULL) {
            str_say(reason, cap, "line %zu: expected \"Field: value\"", lineno);
            return BERTH_EINVAL;
        }
        if (!p.open) {
            p = (struct dpkg_para){.open = true, .first_line = lineno};
        }
        struct span value = trim((struct span){colon + 1, line.n - name.n - 1});
        struct span *slot = NULL;
        bool *has = NULL;
        if (span_ieq(name, "Package")) {
            slot = &p.package;
            has = &p.has_package;
        } else if (span_ieq(name, "Version")) {
            slot = &p.version;
            has = &p.has_version;
        } else if (span_ieq(name, "Architecture")) {
            slot = &p.arch;
            has = &p.has_arch;
        } else if (span_ieq(name, "Source")) {
            slot = &p.source;
            has = &p.has_source;
        } else if (span_ieq(name, "Status")) {
            slot = &p.status;
            has = &p.has_status;
        }
        if (slot != NULL) {
            if (*has) {
                str_say(reason, cap, "line %zu: repeated %.*s field", lineno, (int)name.n, name.p);
                return BERTH_EINVAL;
            }
            *slot = value;
            *has = true;
        }
    }
    return dpkg_flush(&p, status_optional, pkgs, reason, cap);
}

/* ---- apk ----------------------------------------------------------------- */

struct apk_para {
    struct span name, version, arch, origin;
    bool has_name, has_version, has_arch, has_origin;
    size_t first_line;
    bool open;
};

static enum berth_err apk_flush(struct apk_para *p, struct scan_pkgs *pkgs, char *reason,
                                size_t cap)
{
    if (!p->open) {
        return BERTH_OK;
    }
    p->open = false;
    if (!p->has_name || !p->has_version) {
        str_say(reason, cap, "line %zu: package without P: or V:", p->first_line);
        return BERTH_EINVAL;
    }
    char *name = span_dup(p->name);
    char *version = span_dup(p->version);
    char *arch = p->has_arch ? span_dup(p->arch) : NULL;
    char *origin = p->has_origin ? span_dup(p->origin) : NULL;
    enum berth_err rc = BERTH_ENOMEM;
    if (name && version && (!p->has_arch || arch) && (!p->has_origin || origin)) {
        rc = scan_pkgs_add(pkgs, name, version, arch, origin, NULL);
        if (rc == BERTH_EINVAL) {
            str_say(reason, cap, "line %zu: invalid package name, version or origin",
                    p->first_line);
        } else if (rc == BERTH_ETOOBIG) {
            str_say(reason, cap, "more than %d packages", SCAN_MAX_PACKAGES);
        }
    }
    free(name);
    free(version);
    free(arch);
    free(origin);
    return rc;
}

enum berth_err scan_apk_parse(const char *text, size_t len, struct scan_pkgs *pkgs, char *reason,
                              size_t cap)
{
    struct apk_para p = {0};
    size_t pos = 0, lineno = 0;
    struct span line;
    enum berth_err rc;
    while (next_line(text, len, &pos, &line)) {
        lineno++;
        if (line.n == 0) {
            rc = apk_flush(&p, pkgs, reason, cap);
            if (rc != BERTH_OK) {
                return rc;
            }
            continue;
        }
        if (line.n < 2 || line.p[1] != ':' || memchr(line.p, '\0', line.n) != NULL) {
            str_say(reason, cap, "line %zu: expected \"X:value\"", lineno);
            return BERTH_EINVAL;
        }
        if (!p.open) {
            p = (struct apk_para){.open = true, .first_line = lineno};
        }
        struct span value = {line.p + 2, line.n - 2};
        struct span *slot = NULL;
        bool *has = NULL;
        switch (line.p[0]) {
        case 'P':
            slot = &p.name;
            has = &p.has_name;
            break;
        case 'V':
            slot = &p.version;
            has = &p.has_version;
            break;
        case 'A':
            slot = &p.arch;
            has = &p.has_arch;
            break;
        case 'o':
            slot = &p.origin;
            has = &p.has_origin;
            break;
        default:
            break;
        }
        if (slot != NULL) {
            if (*has) {
                str_say(reason, cap, "line %zu: repeated %c: line", lineno, line.p[0]);
                return BERTH_EINVAL;
            }
            *slot = value;
            *has = true;
        }
    }
    return apk_flush(&p, pkgs, reason, cap);
}

/* ---- rpm headers ---------------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* "name-version-release.src.rpm" -> "name"; NULL when not of that shape. */
static char *srpm_name(const char *srpm)
{
    size_t n = strlen(srpm);
    if (str_has_suffix(srpm, ".src.rpm")) {
        n -= strlen(".src.rpm");
    } else if (str_has_suffix(srpm, ".nosrc.rpm")) {
        n -= strlen(".nosrc.rpm");
    } else {
        return NULL;
    }
    for (int cut = 0; cut < 2; cut++) {
        while (n > 0 && srpm[n - 1] != '-') {
            n--;
        }
        if (n == 0) {
            return NULL;
        }
        n--;
    }
    return n > 0 ? str_ndup(srpm, n) : NULL;
}

enum berth_err scan_rpm_header_parse(const void *blob, size_t len, struct scan_pkgs *pkgs)
{
    const unsigned char *b = blob;
    if (b == NULL || len < 8) {
        return BERTH_EINVAL;
    }
    uint32_t il = be32(b), dl = be32(b + 4);
    if (il == 0 || il > RPM_MAX_INDEX || dl > RPM_MAX_DATA ||
        (uint64_t)8 + (uint64_t)il * 16 + dl > len) {
        return BERTH_EINVAL;
    }
    const unsigned char *index = b + 8;
    const char *data = (const char *)(index + (size_t)il * 16);
    const char *name = NULL, *version = NULL, *release = NULL, *arch = NULL, *srpm = NULL;
    uint32_t epoch = 0;
    bool has_epoch = false;
    for (uint32_t i = 0; i < il; i++) {
        const unsigned char *e = index + (size_t)i * 16;
        uint32_t tag = be32(e), type = be32(e + 4), off = be32(e + 8), count = be32(e + 12);
        const char **str = NULL;
        switch (tag) {
        case RPMTAG_NAME:
            str = &name;
            break;
        case RPMTAG_VERSION:
            str = &version;
            break;
        case RPMTAG_RELEASE:
            str = &release;
            break;
        case RPMTAG_ARCH:
            str = &arch;
            break;
        case RPMTAG_SOURCERPM:
            str = &srpm;
            break;
        case RPMTAG_EPOCH:
            if (type != RPM_INT32_TYPE || count < 1 || off > dl || dl - off < 4) {
                return BERTH_EINVAL;
            }
            epoch = be32((const unsigned char *)data + off);
            has_epoch = true;
            continue;
        default:
            continue;
        }
        if ((type != RPM_STRING_TYPE && type != RPM_I18NSTRING_TYPE) || count < 1 || off >= dl ||
            memchr(data + off, '\0', dl - off) == NULL || *str != NULL) {
            return BERTH_EINVAL;
        }
        *str = data + off;
    }
    if (name == NULL || version == NULL || release == NULL) {
        return BERTH_EINVAL;
    }
    if (strcmp(name, "gpg-pubkey") == 0) {
        return BERTH_OK;
    }
    char evr[SCAN_VERSION_MAX + 1];
    int n = has_epoch && epoch > 0
                ? snprintf(evr, sizeof(evr), "%u:%s-%s", (unsigned)epoch, version, release)
                : snprintf(evr, sizeof(evr), "%s-%s", version, release);
    if (n < 0 || (size_t)n >= sizeof(evr)) {
        return BERTH_EINVAL;
    }
    char *source = srpm ? srpm_name(srpm) : NULL;
    enum berth_err rc = scan_pkgs_add(pkgs, name, evr, arch, source, NULL);
    free(source);
    return rc;
}

/* ---- collecting ---------------------------------------------------------- */

enum berth_err scan_inventory_collect(const struct scan_fs *fs, struct scan_os *os,
                                      struct scan_pkgs *pkgs, char *reason, size_t cap)
{
    char why[256] = "";
    const struct scan_file *f = scan_fs_get(fs, "etc/os-release");
    if (f == NULL) {
        f = scan_fs_get(fs, "usr/lib/os-release");
    }
    if (f == NULL) {
        memset(os, 0, sizeof(*os));
        str_say(reason, cap, "no /etc/os-release or /usr/lib/os-release");
        return BERTH_EUNSUPPORTED;
    }
    if (scan_os_parse(f->data, f->len, os) != BERTH_OK) {
        str_say(reason, cap, "unsupported OS (ID=%s VERSION_ID=%s)", os->id[0] ? os->id : "(none)",
                os->version_id[0] ? os->version_id : "(none)");
        return BERTH_EUNSUPPORTED;
    }
    enum berth_err rc = BERTH_OK;
    bool found = false;
    switch (os->manager) {
    case SCAN_PKG_DPKG: {
        f = scan_fs_get(fs, "var/lib/dpkg/status");
        if (f != NULL) {
            found = true;
            rc = scan_dpkg_parse(f->data, f->len, false, pkgs, why, sizeof(why));
            if (rc != BERTH_OK) {
                str_say(reason, cap, "/var/lib/dpkg/status: %s", why);
                return rc;
            }
        }
        for (size_t i = 0; i < scan_fs_count(fs); i++) {
            f = scan_fs_at(fs, i);
            if (!str_has_prefix(f->path, "var/lib/dpkg/status.d/")) {
                continue;
            }
            found = true;
            rc = scan_dpkg_parse(f->data, f->len, true, pkgs, why, sizeof(why));
            if (rc != BERTH_OK) {
                str_say(reason, cap, "/%s: %s", f->path, why);
                return rc;
            }
        }
        break;
    }
    case SCAN_PKG_APK:
        f = scan_fs_get(fs, "lib/apk/db/installed");
        if (f != NULL) {
            found = true;
            rc = scan_apk_parse(f->data, f->len, pkgs, why, sizeof(why));
            if (rc != BERTH_OK) {
                str_say(reason, cap, "/lib/apk/db/installed: %s", why);
                return rc;
            }
        }
        break;
    case SCAN_PKG_RPM: {
        const char *path = "var/lib/rpm/rpmdb.sqlite";
        f = scan_fs_get(fs, path);
        if (f == NULL) {
            path = "usr/lib/sysimage/rpm/rpmdb.sqlite";
            f = scan_fs_get(fs, path);
        }
        if (f != NULL) {
            found = true;
            rc = scan_rpmdb_parse(f->data, f->len, pkgs, why, sizeof(why));
            if (rc != BERTH_OK) {
                str_say(reason, cap, "/%s: %s", path, why);
                return rc;
            }
        }
        break;
    }
    case SCAN_PKG_NONE:
        break;
    }
    if (!found) {
        str_say(reason, cap, "%s image without a package database", os->ecosystem);
        return BERTH_EUNSUPPORTED;
    }
    return BERTH_OK;
}
