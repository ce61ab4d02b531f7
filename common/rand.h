/* Cryptographically secure random bytes and UUIDs (getrandom). Thread-safe. */
#ifndef BERTH_RAND_H
#define BERTH_RAND_H

#include <stddef.h>

#include "common/err.h"

#define RAND_UUID_LEN 36

/* Fill p with n random bytes. BERTH_EIO if the kernel cannot supply them. */
enum berth_err rand_bytes(void *p, size_t n);

/* A random (version 4) UUID, lower-case, into out (RAND_UUID_LEN + 1). */
enum berth_err rand_uuid(char *out);

/* True when s is a canonical lower- or upper-case UUID (8-4-4-4-12 hex). */
int rand_is_uuid(const char *s);

#endif
