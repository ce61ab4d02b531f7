/*
 * Version ordering as dpkg, apk-tools and rpm define it. Everything works
 * on (pointer, length) spans of the caller's strings: nothing is copied or
 * allocated, and every loop is bounded by SCAN_VERSION_MAX.
 */
#include "scan/packages/scan_version.h"

#include <stdbool.h>
#include <string.h>

struct span {
    const char *p;
    size_t n;
};

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Compare two digit strings as unbounded non-negative integers. */
static int numcmp(struct span a, struct span b)
{
    while (a.n > 0 && a.p[0] == '0') {
        a.p++;
        a.n--;
    }
    while (b.n > 0 && b.p[0] == '0') {
        b.p++;
        b.n--;
    }
    if (a.n != b.n) {
        return a.n < b.n ? -1 : 1;
    }
    int c = a.n ? memcmp(a.p, b.p, a.n) : 0;
    return c < 0 ? -1 : c > 0 ? 1 : 0;
}

/* Byte-wise comparison where a shorter prefix sorts first. */
static int spancmp(struct span a, struct span b)
{
    size_t n = a.n < b.n ? a.n : b.n;
    int c = n ? memcmp(a.p, b.p, n) : 0;
    if (c != 0) {
        return c < 0 ? -1 : 1;
    }
    if (a.n != b.n) {
        return a.n < b.n ? -1 : 1;
    }
    return 0;
}

static int sign(int v)
{
    return v < 0 ? -1 : v > 0 ? 1 : 0;
}

/* ---- dpkg ---------------------------------------------------------------- */

struct dpkg_version {
    struct span epoch; /* digits; empty means 0 */
    struct span upstream;
    struct span revision; /* may be empty */
};

/* The weight of one byte in a non-digit run: '~' lowest (below the end of
 * the string), then the end and digits, then letters, then everything else. */
static int dpkg_order(struct span s, size_t i)
{
    if (i >= s.n) {
        return 0;
    }
    unsigned char c = (unsigned char)s.p[i];
    if (is_digit(c)) {
        return 0;
    }
    if (is_alpha(c)) {
        return c;
    }
    if (c == '~') {
        return -1;
    }
    return c + 256;
}

static int dpkg_verrevcmp(struct span a, struct span b)
{
    size_t i = 0, j = 0;
    while (i < a.n || j < b.n) {
        while ((i < a.n && !is_digit(a.p[i])) || (j < b.n && !is_digit(b.p[j]))) {
            int ac = dpkg_order(a, i);
            int bc = dpkg_order(b, j);
            if (ac != bc) {
                return sign(ac - bc);
            }
            /* equal weights here mean both are the same non-digit byte */
            i++;
            j++;
        }
        size_t ai = i, bj = j;
        while (i < a.n && is_digit(a.p[i])) {
            i++;
        }
        while (j < b.n && is_digit(b.p[j])) {
            j++;
        }
        int c = numcmp((struct span){a.p + ai, i - ai}, (struct span){b.p + bj, j - bj});
        if (c != 0) {
            return c;
        }
    }
    return 0;
}

static enum berth_err dpkg_parse(const char *s, struct dpkg_version *v)
{
    size_t len = strnlen(s, SCAN_VERSION_MAX + 1);
    if (len > SCAN_VERSION_MAX) {
        return BERTH_EINVAL;
    }
    size_t start = 0, end = len;
    while (start < end && is_space(s[start])) {
        start++;
    }
    while (end > start && is_space(s[end - 1])) {
        end--;
    }
    if (start == end) {
        return BERTH_EINVAL;
    }
    for (size_t i = start; i < end; i++) {
        if (is_space(s[i])) {
            return BERTH_EINVAL;
        }
    }
    struct span all = {s + start, end - start};
    const char *colon = memchr(all.p, ':', all.n);
    v->epoch = (struct span){all.p, 0};
    if (colon != NULL) {
        size_t elen = (size_t)(colon - all.p);
        /* dpkg refuses empty, non-numeric and larger-than-INT_MAX epochs */
        if (elen == 0 || elen > 10) {
            return BERTH_EINVAL;
        }
        for (size_t i = 0; i < elen; i++) {
            if (!is_digit(all.p[i])) {
                return BERTH_EINVAL;
            }
        }
        if (numcmp((struct span){all.p, elen}, (struct span){"2147483647", 10}) > 0) {
            return BERTH_EINVAL;
        }
        v->epoch.n = elen;
        all.p = colon + 1;
        all.n -= elen + 1;
    }
    /* the revision starts after the last hyphen */
    size_t hyphen = all.n;
    for (size_t i = all.n; i > 0; i--) {
        if (all.p[i - 1] == '-') {
            hyphen = i - 1;
            break;
        }
    }
    v->upstream = (struct span){all.p, hyphen};
    v->revision = hyphen < all.n ? (struct span){all.p + hyphen + 1, all.n - hyphen - 1}
                                 : (struct span){all.p + all.n, 0};
    if (v->upstream.n == 0) {
        return BERTH_EINVAL;
    }
    return BERTH_OK;
}

enum berth_err scan_version_dpkg_compare(const char *a, const char *b, int *out)
{
    struct dpkg_version va, vb;
    if (dpkg_parse(a, &va) != BERTH_OK || dpkg_parse(b, &vb) != BERTH_OK) {
        return BERTH_EINVAL;
    }
    int c = numcmp(va.epoch, vb.epoch);
    if (c == 0) {
        c = dpkg_verrevcmp(va.upstream, vb.upstream);
    }
    if (c == 0) {
        c = dpkg_verrevcmp(va.revision, vb.revision);
    }
    *out = c;
    return BERTH_OK;
}

/* ---- apk ----------------------------------------------------------------- */

/* Token kinds in the order apk-tools allows them to follow each other. */
enum apk_token {
    APK_T_INITIAL_DIGIT,
    APK_T_DIGIT,
    APK_T_LETTER,
    APK_T_SUFFIX,
    APK_T_SUFFIX_NO,
    APK_T_COMMIT_HASH,
    APK_T_REVISION_NO,
    APK_T_END,
    APK_T_INVALID,
};

/* Suffix ranks: pre-release suffixes sort below "no suffix" (NONE). */
enum apk_suffix {
    APK_S_INVALID,
    APK_S_ALPHA,
    APK_S_BETA,
    APK_S_PRE,
    APK_S_RC,
    APK_S_NONE,
    APK_S_CVS,
    APK_S_SVN,
    APK_S_GIT,
    APK_S_HG,
    APK_S_P,
};

struct apk_tok {
    enum apk_token token;
    enum apk_suffix suffix;
    struct span value; /* the digits, letter, suffix word or hash */
};

static enum apk_suffix apk_suffix_of(struct span w)
{
    static const struct {
        const char *word;
        enum apk_suffix suffix;
    } table[] = {
        {"alpha", APK_S_ALPHA}, {"beta", APK_S_BETA}, {"pre", APK_S_PRE},
        {"rc", APK_S_RC},       {"cvs", APK_S_CVS},   {"svn", APK_S_SVN},
        {"git", APK_S_GIT},     {"hg", APK_S_HG},     {"p", APK_S_P},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        size_t n = strlen(table[i].word);
        if (w.n == n && memcmp(w.p, table[i].word, n) == 0) {
            return table[i].suffix;
        }
    }
    return APK_S_INVALID;
}

static void apk_take(struct span *s, struct span *value, bool (*cls)(int))
{
    size_t i = 0;
    while (i < s->n && cls((unsigned char)s->p[i])) {
        i++;
    }
    *value = (struct span){s->p, i};
    s->p += i;
    s->n -= i;
}

static bool apk_is_lower(int c)
{
    return c >= 'a' && c <= 'z';
}

static bool apk_is_hex(int c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f');
}

static void apk_first(struct apk_tok *t, struct span *s)
{
    t->token = APK_T_INITIAL_DIGIT;
    apk_take(s, &t->value, is_digit);
    if (t->value.n == 0) {
        t->token = APK_T_INVALID;
    }
}

static void apk_next(struct apk_tok *t, struct span *s)
{
    if (s->n == 0) {
        t->token = APK_T_END;
        return;
    }
    char c = s->p[0];
    if (apk_is_lower(c)) {
        if (t->token > APK_T_DIGIT) {
            goto invalid;
        }
        t->value = (struct span){s->p, 1};
        t->token = APK_T_LETTER;
        s->p++;
        s->n--;
        return;
    }
    if (c == '.' || is_digit(c)) {
        if (c == '.') {
            if (t->token > APK_T_DIGIT) {
                goto invalid;
            }
            s->p++;
            s->n--;
        }
        if (t->token == APK_T_INITIAL_DIGIT || t->token == APK_T_DIGIT) {
            t->token = APK_T_DIGIT;
        } else if (t->token == APK_T_SUFFIX) {
            t->token = APK_T_SUFFIX_NO;
        } else {
            goto invalid;
        }
        apk_take(s, &t->value, is_digit);
        if (t->value.n == 0) {
            goto invalid;
        }
        return;
    }
    if (c == '_') {
        if (t->token > APK_T_SUFFIX_NO) {
            goto invalid;
        }
        s->p++;
        s->n--;
        apk_take(s, &t->value, apk_is_lower);
        t->suffix = apk_suffix_of(t->value);
        if (t->suffix == APK_S_INVALID) {
            goto invalid;
        }
        t->token = APK_T_SUFFIX;
        return;
    }
    if (c == '~') {
        if (t->token >= APK_T_COMMIT_HASH) {
            goto invalid;
        }
        s->p++;
        s->n--;
        apk_take(s, &t->value, apk_is_hex);
        if (t->value.n == 0) {
            goto invalid;
        }
        t->token = APK_T_COMMIT_HASH;
        return;
    }
    if (c == '-') {
        if (t->token >= APK_T_REVISION_NO || s->n < 2 || s->p[1] != 'r') {
            goto invalid;
        }
        s->p += 2;
        s->n -= 2;
        t->token = APK_T_REVISION_NO;
        apk_take(s, &t->value, is_digit);
        if (t->value.n == 0) {
            goto invalid;
        }
        return;
    }
invalid:
    t->token = APK_T_INVALID;
}

static int apk_token_cmp(const struct apk_tok *a, const struct apk_tok *b)
{
    switch (a->token) {
    case APK_T_DIGIT:
        /* a dotted component with a leading zero compares as a string */
        if (a->value.p[0] == '0' || b->value.p[0] == '0') {
            return spancmp(a->value, b->value);
        }
        return numcmp(a->value, b->value);
    case APK_T_INITIAL_DIGIT:
    case APK_T_SUFFIX_NO:
    case APK_T_REVISION_NO:
        return numcmp(a->value, b->value);
    case APK_T_LETTER:
        return sign((unsigned char)a->value.p[0] - (unsigned char)b->value.p[0]);
    case APK_T_SUFFIX:
        return sign((int)a->suffix - (int)b->suffix);
    default:
        return spancmp(a->value, b->value);
    }
}

enum berth_err scan_version_apk_compare(const char *a, const char *b, int *out)
{
    size_t alen = strnlen(a, SCAN_VERSION_MAX + 1);
    size_t blen = strnlen(b, SCAN_VERSION_MAX + 1);
    if (alen > SCAN_VERSION_MAX || blen > SCAN_VERSION_MAX) {
        return BERTH_EINVAL;
    }
    struct span sa = {a, alen}, sb = {b, blen};
    struct apk_tok ta = {0}, tb = {0};
    apk_first(&ta, &sa);
    apk_first(&tb, &sb);
    while (ta.token == tb.token && ta.token < APK_T_END) {
        int c = apk_token_cmp(&ta, &tb);
        if (c != 0) {
            *out = c;
            return BERTH_OK;
        }
        apk_next(&ta, &sa);
        apk_next(&tb, &sb);
    }
    int r;
    if (ta.token == tb.token) {
        r = 0;
    } else if (ta.token == APK_T_SUFFIX && ta.suffix < APK_S_NONE) {
        r = -1; /* a continues with a pre-release suffix */
    } else if (tb.token == APK_T_SUFFIX && tb.suffix < APK_S_NONE) {
        r = 1;
    } else {
        /* otherwise the longer version is newer (END and INVALID sort last) */
        r = ta.token > tb.token ? -1 : 1;
    }
    *out = r;
    return BERTH_OK;
}

/* ---- rpm ----------------------------------------------------------------- */

static bool is_alnum(int c)
{
    return is_digit(c) || is_alpha(c);
}

static int rpmvercmp_n(struct span a, struct span b)
{
    if (a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0)) {
        return 0;
    }
    size_t i = 0, j = 0;
    while (i < a.n || j < b.n) {
        while (i < a.n && !is_alnum(a.p[i]) && a.p[i] != '~' && a.p[i] != '^') {
            i++;
        }
        while (j < b.n && !is_alnum(b.p[j]) && b.p[j] != '~' && b.p[j] != '^') {
            j++;
        }
        bool a_end = i >= a.n, b_end = j >= b.n;
        char ca = a_end ? '\0' : a.p[i];
        char cb = b_end ? '\0' : b.p[j];
        /* '~' sorts before everything, even the end of the string */
        if (ca == '~' || cb == '~') {
            if (ca != '~') {
                return 1;
            }
            if (cb != '~') {
                return -1;
            }
            i++;
            j++;
            continue;
        }
        /* '^' sorts after the end of the string but before anything else */
        if (ca == '^' || cb == '^') {
            if (a_end) {
                return -1;
            }
            if (b_end) {
                return 1;
            }
            if (ca != '^') {
                return 1;
            }
            if (cb != '^') {
                return -1;
            }
            i++;
            j++;
            continue;
        }
        if (a_end || b_end) {
            break;
        }
        size_t si = i, sj = j;
        bool isnum = is_digit(ca);
        if (isnum) {
            while (i < a.n && is_digit(a.p[i])) {
                i++;
            }
            while (j < b.n && is_digit(b.p[j])) {
                j++;
            }
        } else {
            while (i < a.n && is_alpha(a.p[i])) {
                i++;
            }
            while (j < b.n && is_alpha(b.p[j])) {
                j++;
            }
        }
        /* segments of different kinds: numbers are newer than letters */
        if (j == sj) {
            return isnum ? 1 : -1;
        }
        struct span sa = {a.p + si, i - si}, sb = {b.p + sj, j - sj};
        int c = isnum ? numcmp(sa, sb) : spancmp(sa, sb);
        if (c != 0) {
            return c;
        }
    }
    bool a_end = i >= a.n, b_end = j >= b.n;
    if (a_end && b_end) {
        return 0;
    }
    return a_end ? -1 : 1;
}

struct rpm_evr {
    struct span epoch; /* digits, empty = 0 */
    struct span version;
    struct span release;
    bool has_release;
};

/* rpm's parseEVR: a leading run of digits followed by ':' is the epoch,
 * the part after the last '-' is the release. */
static enum berth_err rpm_parse(const char *s, struct rpm_evr *v)
{
    size_t len = strnlen(s, SCAN_VERSION_MAX + 1);
    if (len == 0 || len > SCAN_VERSION_MAX) {
        return BERTH_EINVAL;
    }
    size_t d = 0;
    while (d < len && is_digit(s[d])) {
        d++;
    }
    struct span rest = {s, len};
    v->epoch = (struct span){s, 0};
    if (d < len && s[d] == ':') {
        v->epoch.n = d;
        rest = (struct span){s + d + 1, len - d - 1};
    }
    v->has_release = false;
    v->version = rest;
    v->release = (struct span){rest.p + rest.n, 0};
    for (size_t i = rest.n; i > 0; i--) {
        if (rest.p[i - 1] == '-') {
            v->version.n = i - 1;
            v->release = (struct span){rest.p + i, rest.n - i};
            v->has_release = true;
            break;
        }
    }
    return BERTH_OK;
}

enum berth_err scan_version_rpm_compare(const char *a, const char *b, int *out)
{
    struct rpm_evr va, vb;
    if (rpm_parse(a, &va) != BERTH_OK || rpm_parse(b, &vb) != BERTH_OK) {
        return BERTH_EINVAL;
    }
    int c = numcmp(va.epoch, vb.epoch);
    if (c == 0) {
        c = rpmvercmp_n(va.version, vb.version);
    }
    /* like rpm's EVR comparison, a missing release matches any release */
    if (c == 0 && va.has_release && vb.has_release) {
        c = rpmvercmp_n(va.release, vb.release);
    }
    *out = c;
    return BERTH_OK;
}

enum berth_err scan_version_compare(enum scan_version_scheme scheme, const char *a, const char *b,
                                    int *out)
{
    switch (scheme) {
    case SCAN_VERSION_DPKG:
        return scan_version_dpkg_compare(a, b, out);
    case SCAN_VERSION_APK:
        return scan_version_apk_compare(a, b, out);
    case SCAN_VERSION_RPM:
        return scan_version_rpm_compare(a, b, out);
    case SCAN_VERSION_NONE:
        break;
    }
    return BERTH_EUNSUPPORTED;
}
