/* Range and Content-Range parsing; see range.h. */
#include "server/http/range.h"

#include <string.h>

#include "common/str.h"

/* Parse digits at *p up to a byte not in [0-9]; advances *p. */
static int take_number(const char **p, uint64_t *out)
{
    const char *s = *p;
    size_t n = 0;
    while (s[n] >= '0' && s[n] <= '9') {
        n++;
    }
    if (n == 0 || str_parse_u64_n(s, n, UINT64_MAX, out) != BERTH_OK) {
        return -1;
    }
    *p = s + n;
    return 0;
}

enum range_result range_parse(const char *header, uint64_t size, struct byte_range *out)
{
    if (header == NULL) {
        return RANGE_NONE;
    }
    const char *p = header;
    while (*p == ' ') {
        p++;
    }
    if (strncmp(p, "bytes=", 6) != 0) {
        return RANGE_NONE;
    }
    p += 6;
    while (*p == ' ') {
        p++;
    }
    if (strchr(p, ',') != NULL) {
        return RANGE_NONE;
    }
    uint64_t first = 0, last = 0;
    int has_first = 0, has_last = 0;
    if (*p != '-') {
        if (take_number(&p, &first) != 0) {
            return RANGE_NONE;
        }
        has_first = 1;
    }
    if (*p != '-') {
        return RANGE_NONE;
    }
    p++;
    if (*p >= '0' && *p <= '9') {
        if (take_number(&p, &last) != 0) {
            return RANGE_NONE;
        }
        has_last = 1;
    }
    while (*p == ' ') {
        p++;
    }
    if (*p != '\0' || (!has_first && !has_last)) {
        return RANGE_NONE;
    }
    if (!has_first) {
        /* suffix range: the final `last` bytes */
        if (last == 0 || size == 0) {
            return RANGE_UNSATISFIABLE;
        }
        out->first = last >= size ? 0 : size - last;
        out->last = size - 1;
        return RANGE_PARTIAL;
    }
    if (has_last && last < first) {
        return RANGE_UNSATISFIABLE;
    }
    if (first >= size) {
        return RANGE_UNSATISFIABLE;
    }
    out->first = first;
    out->last = (!has_last || last >= size) ? size - 1 : last;
    return RANGE_PARTIAL;
}

bool range_if_range_holds(const char *if_range, const char *etag)
{
    if (if_range == NULL) {
        return true;
    }
    while (*if_range == ' ' || *if_range == '\t') {
        if_range++;
    }
    size_t n = strlen(if_range);
    while (n > 0 && (if_range[n - 1] == ' ' || if_range[n - 1] == '\t')) {
        n--;
    }
    /* etag is a quoted strong tag, so equal bytes mean a strong match;
     * a weak tag or a date can never be equal */
    return etag[0] == '"' && strlen(etag) == n && memcmp(if_range, etag, n) == 0;
}

enum berth_err range_parse_content_range(const char *value, struct byte_range *out)
{
    const char *p = value;
    uint64_t first, last;
    if (take_number(&p, &first) != 0 || *p != '-') {
        return BERTH_EINVAL;
    }
    p++;
    if (take_number(&p, &last) != 0 || *p != '\0' || last < first) {
        return BERTH_EINVAL;
    }
    if (first == 0 && last == UINT64_MAX) {
        /* 2^64 bytes: last - first + 1, the length every caller checks the
         * body against, would wrap to 0 and pass an empty body */
        return BERTH_EINVAL;
    }
    out->first = first;
    out->last = last;
    return BERTH_OK;
}
