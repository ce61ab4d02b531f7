/*
 * HTTP byte ranges: the Range request header on blob GET (RFC 9110 section
 * 14) with its If-Range condition, and the Content-Range of OCI chunked uploads ("<start>-<end>",
 * inclusive). Pure functions; thread-safe.
 */
#ifndef BERTH_RANGE_H
#define BERTH_RANGE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

/* An inclusive byte range. */
struct byte_range {
    uint64_t first;
    uint64_t last;
};

enum range_result {
    RANGE_NONE,          /* no usable single range: answer 200 with everything */
    RANGE_PARTIAL,       /* answer 206 with *out */
    RANGE_UNSATISFIABLE, /* answer 416 with Content-Range: bytes * / size */
};

/* Interpret a Range header value (NULL = absent) against a resource of
 * size bytes. Supports "bytes=a-b", "bytes=a-" and "bytes=-n"; a last byte
 * past the end is clamped. A first byte at or past the end, or a last byte
 * before the first, is unsatisfiable. Other units, multiple ranges and
 * garbage are ignored (RANGE_NONE), as RFC 9110 allows. */
enum range_result range_parse(const char *header, uint64_t size, struct byte_range *out);

/* Whether a Range may be honoured given the request's If-Range (RFC 9110
 * section 13.1.5; if_range NULL when absent) and etag, the quoted strong
 * ETag the response carries. True when absent or when it is that same
 * entity-tag, compared strongly (octet for octet, never a W/ one); false
 * for another tag, a date (berth sends no Last-Modified for one to match)
 * or anything else: the caller then ignores the Range and sends all. */
bool range_if_range_holds(const char *if_range, const char *etag);

/* Parse an upload Content-Range "<start>-<end>" (inclusive), exactly the
 * spec's ^[0-9]+-[0-9]+$. BERTH_EINVAL when malformed, end < start, or
 * the length (end - start + 1) does not fit in 64 bits; on success
 * out->last - out->first + 1 is the range's length, never 0. */
enum berth_err range_parse_content_range(const char *value, struct byte_range *out);

#endif
