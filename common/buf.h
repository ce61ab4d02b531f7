/*
 * Bounded growable byte buffers. The data is always NUL-terminated after a
 * successful append, so text can be read with buf_cstr(). Not thread-safe;
 * a buffer has one owner.
 */
#ifndef BERTH_BUF_H
#define BERTH_BUF_H

#include <stddef.h>

#include "common/err.h"

struct buf {
    char *data;
    size_t len; /* bytes used, excluding the terminating NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* hard limit on len; 0 means SIZE_MAX/2 */
};

/* Initialise an empty buffer that will refuse to grow past max bytes. */
void buf_init(struct buf *b, size_t max);

/* Release the memory; the buffer may be reused after buf_init. */
void buf_fini(struct buf *b);

/* Empty the buffer, keeping its memory. */
void buf_reset(struct buf *b);

/* Append n bytes. BERTH_ETOOBIG past max (nothing appended), BERTH_ENOMEM. */
enum berth_err buf_append(struct buf *b, const void *p, size_t n);

/* Append a NUL-terminated string. Same returns as buf_append. */
enum berth_err buf_puts(struct buf *b, const char *s);

/* Append formatted text. Same returns as buf_append. */
enum berth_err buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The contents as a NUL-terminated string ("" when empty). Borrowed. */
const char *buf_cstr(const struct buf *b);

/* Take ownership of the contents (free() it; never NULL unless out of
 * memory); the buffer is left empty. */
char *buf_steal(struct buf *b);

#endif
