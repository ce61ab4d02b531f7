/* String helpers with explicit limits. */
#include "common/str.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool str_has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool str_has_suffix(const char *s, const char *suffix)
{
    size_t sl = strlen(s), xl = strlen(suffix);
    return sl >= xl && memcmp(s + sl - xl, suffix, xl) == 0;
}

enum berth_err str_copy(char *dst, size_t cap, const char *src)
{
    if (cap == 0) {
        return BERTH_ETOOBIG;
    }
    size_t n = strlen(src);
    if (n >= cap) {
        memcpy(dst, src, cap - 1);
        dst[cap - 1] = '\0';
        return BERTH_ETOOBIG;
    }
    memcpy(dst, src, n + 1);
    return BERTH_OK;
}

char *str_ndup(const char *src, size_t n)
{
    char *p = malloc(n + 1);
    if (p == NULL) {
        return NULL;
    }
    memcpy(p, src, n);
    p[n] = '\0';
    return p;
}

enum berth_err str_parse_u64_n(const char *s, size_t len, uint64_t max, uint64_t *out)
{
    if (len == 0 || len > 20) {
        return len == 0 ? BERTH_EINVAL : BERTH_ERANGE;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return BERTH_EINVAL;
        }
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return BERTH_ERANGE;
        }
        v = v * 10 + d;
    }
    if (v > max) {
        return BERTH_ERANGE;
    }
    *out = v;
    return BERTH_OK;
}

enum berth_err str_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    return str_parse_u64_n(s, strlen(s), max, out);
}

int str_hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

void str_hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 0xf];
    }
    out[2 * n] = '\0';
}

bool str_url_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

enum berth_err str_pct_encode(char *dst, size_t cap, const char *src)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    if (cap == 0) {
        return BERTH_ETOOBIG;
    }
    for (const unsigned char *p = (const unsigned char *)src; *p != '\0'; p++) {
        unsigned char c = *p;
        bool unreserved = str_url_unreserved(c);
        size_t need = unreserved ? 1 : 3;
        if (cap - o <= need) {
            dst[0] = '\0';
            return BERTH_ETOOBIG;
        }
        if (unreserved) {
            dst[o++] = (char)c;
        } else {
            dst[o++] = '%';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 0xf];
        }
    }
    dst[o] = '\0';
    return BERTH_OK;
}

bool str_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    if (alen != blen) {
        return false;
    }
    const volatile unsigned char *x = a;
    const volatile unsigned char *y = b;
    unsigned char acc = 0;
    for (size_t i = 0; i < alen; i++) {
        acc |= (unsigned char)(x[i] ^ y[i]);
    }
    return acc == 0;
}

static char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

bool str_glob_match(const char *pattern, const char *s)
{
    return str_glob_match_flags(pattern, s, 0);
}

bool str_glob_match_flags(const char *pattern, const char *s, unsigned flags)
{
    /* Iterative matcher with one backtrack point: linear in practice. */
    const bool any_one = (flags & STR_GLOB_QUESTION) != 0;
    const bool icase = (flags & STR_GLOB_ICASE) != 0;
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*pattern == '*') {
            star = pattern++;
            resume = s;
        } else if (*pattern == *s || (any_one && *pattern == '?') ||
                   (icase && *pattern != '\0' && ascii_lower(*pattern) == ascii_lower(*s))) {
            pattern++;
            s++;
        } else if (star) {
            pattern = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*pattern == '*') {
        pattern++;
    }
    return *pattern == '\0';
}

/* Length of the well-formed UTF-8 sequence at p, or 0. */
static size_t utf8_sequence(const unsigned char *p)
{
    unsigned char c = p[0];
    if (c < 0x80) {
        return 1;
    }
    /* allowed range of the second byte per lead byte (RFC 3629 table) */
    unsigned char lo = 0x80, hi = 0xbf;
    size_t n;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 0;
    }
    if (p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return 0;
        }
    }
    return n;
}

size_t str_utf8_scrub(char *s)
{
    size_t replaced = 0;
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        size_t n = utf8_sequence(p);
        if (n == 0) {
            *p++ = '?';
            replaced++;
        } else {
            p += n;
        }
    }
    return replaced;
}

size_t str_utf8_cut(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n <= max) {
        return n;
    }
    /* s[max] is the first byte left out: back up while it continues a
     * sequence that started inside the prefix */
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) {
        n--;
    }
    return n;
}

void str_say(char *dst, size_t cap, const char *fmt, ...)
{
    if (dst == NULL || cap == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
}
