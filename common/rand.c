/* Random bytes from the kernel; version 4 UUIDs. */
#include "common/rand.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

enum berth_err rand_bytes(void *p, size_t n)
{
    char *c = p;
    while (n > 0) {
        ssize_t r = getrandom(c, n, 0);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return BERTH_EIO;
        }
        c += r;
        n -= (size_t)r;
    }
    return BERTH_OK;
}

enum berth_err rand_uuid(char *out)
{
    uint8_t b[16];
    enum berth_err rc = rand_bytes(b, sizeof(b));
    if (rc != BERTH_OK) {
        return rc;
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, RAND_UUID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
    return BERTH_OK;
}

int rand_is_uuid(const char *s)
{
    if (strlen(s) != RAND_UUID_LEN) {
        return 0;
    }
    for (int i = 0; i < RAND_UUID_LEN; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') {
                return 0;
            }
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return 0;
        }
    }
    return 1;
}
