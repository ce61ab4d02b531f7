/* Unit tests for storage/spec/seal.c: a round trip, fresh nonces, and any change or another
 * key refused. */
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "storage/spec/seal.h"

static void test_round_trip(void)
{
    uint8_t key[SEAL_KEY_LEN];
    memset(key, 7, sizeof(key));
    const char *clear = "{\"username\":\"robot\",\"accessToken\":\"hunter2\"}";
    char *a = NULL;
    char *b = NULL;
    CHECK_INT(seal_text(key, clear, strlen(clear), &a), BERTH_OK);
    CHECK_INT(seal_text(key, clear, strlen(clear), &b), BERTH_OK);
    CHECK(strcmp(a, b) != 0); /* a fresh nonce each time */
    CHECK(strstr(a, "hunter2") == NULL);
    char *out = NULL;
    size_t len = 0;
    CHECK_INT(seal_open(key, a, &out, &len), BERTH_OK);
    CHECK_STR(out, clear);
    CHECK_INT((int)len, (int)strlen(clear));
    free(out);
    /* another key */
    uint8_t other[SEAL_KEY_LEN];
    memset(other, 8, sizeof(other));
    CHECK_INT(seal_open(other, a, &out, &len), BERTH_EINVAL);
    /* one bit changed anywhere: refused */
    size_t n = strlen(a);
    uint8_t raw[256];
    size_t raw_len = 0;
    CHECK_INT(base64_decode(a, n, raw, &raw_len), BERTH_OK);
    for (size_t i = 0; i < raw_len; i++) {
        raw[i] ^= 1;
        char enc[400];
        base64_encode(raw, raw_len, enc);
        CHECK_INT(seal_open(key, enc, &out, &len), BERTH_EINVAL);
        raw[i] ^= 1;
    }
    CHECK_INT(seal_open(key, "not base64!", &out, &len), BERTH_EINVAL);
    CHECK_INT(seal_open(key, "", &out, &len), BERTH_EINVAL);
    /* empty values seal too */
    char *e = NULL;
    CHECK_INT(seal_text(key, "", 0, &e), BERTH_OK);
    CHECK_INT(seal_open(key, e, &out, &len), BERTH_OK);
    CHECK_STR(out, "");
    free(out);
    free(e);
    free(a);
    free(b);
    char *big = calloc(1, SEAL_PLAIN_MAX + 1);
    char *sealed = NULL;
    CHECK_INT(seal_text(key, big, SEAL_PLAIN_MAX + 1, &sealed), BERTH_ETOOBIG);
    free(big);
}

int main(void)
{
    RUN(test_round_trip);
    return unit_report("test_seal");
}
