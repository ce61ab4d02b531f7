/*
 * String helpers with explicit limits: bounded copies, strict number
 * parsing, hex, constant-time comparison. Pure functions; thread-safe.
 */
#ifndef BERTH_STR_H
#define BERTH_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

bool str_has_prefix(const char *s, const char *prefix);
bool str_has_suffix(const char *s, const char *suffix);

/* Copy src into dst (cap bytes, always NUL-terminated). BERTH_ETOOBIG if
 * it did not fit (dst then holds a truncated copy). */
enum berth_err str_copy(char *dst, size_t cap, const char *src);

/* Copy at most n bytes of src into a new NUL-terminated string; NULL when
 * out of memory. Caller frees. */
char *str_ndup(const char *src, size_t n);

/* Parse a non-negative decimal integer with no sign, spaces or leading '+'.
 * BERTH_EINVAL on anything else, BERTH_ERANGE above max. */
enum berth_err str_parse_u64(const char *s, uint64_t max, uint64_t *out);

/* The same over exactly len bytes of s (not NUL-terminated). */
enum berth_err str_parse_u64_n(const char *s, size_t len, uint64_t max, uint64_t *out);

/* The value of one hex digit (either case), or -1 for any other character. */
int str_hex_value(char c);

/* Lower-case hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void str_hex_encode(const uint8_t *in, size_t n, char *out);

/* RFC 3986's unreserved bytes (A-Z a-z 0-9 - . _ ~): what percent-encoding
 * leaves as it is. */
bool str_url_unreserved(unsigned char c);

/* Percent-encode src as one URL query value (RFC 3986 section 2.1) into dst
 * (cap bytes, NUL-terminated): every byte but the unreserved ones
 * (A-Z a-z 0-9 - . _ ~) becomes %XX, so '+', '&', '=', '/', '#' and '>'
 * read back as themselves. BERTH_ETOOBIG when it does not fit; dst is then
 * "" (never half an escape). */
enum berth_err str_pct_encode(char *dst, size_t cap, const char *src);

/* Constant-time equality of two byte strings of the given lengths. */
bool str_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

/* Glob match where '*' matches any run (including empty) and every other
 * byte matches itself; the whole string must match. */
bool str_glob_match(const char *pattern, const char *s);

/* Flags of str_glob_match_flags. */
#define STR_GLOB_QUESTION 1u /* '?' matches any one byte */
#define STR_GLOB_ICASE 2u    /* ASCII letters match either case */

/* str_glob_match with the flags above (0: exactly str_glob_match). One
 * backtrack point: linear in practice. */
bool str_glob_match_flags(const char *pattern, const char *s, unsigned flags);

/* Replace in place every byte of s that is not part of a well-formed UTF-8
 * sequence (RFC 3629: no overlong forms, surrogates or code points above
 * U+10FFFF) with '?', so that the text can go into a JSON string; a
 * sequence cut short by a bounded snprintf is the usual culprit. Returns
 * the number of bytes replaced. */
size_t str_utf8_scrub(char *s);

/* The length of the longest prefix of s of at most max bytes that does not
 * end inside a UTF-8 sequence: strlen(s) when that is at most max, else
 * max moved back to the start of the character it would split. Reads at
 * most max + 1 bytes of s. */
size_t str_utf8_cut(const char *s, size_t max);

/* Format into an optional message buffer of cap bytes (always
 * NUL-terminated, truncated if long): nothing when dst is NULL or cap is 0.
 * For the "why it failed" text a caller may or may not ask for. */
void str_say(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
