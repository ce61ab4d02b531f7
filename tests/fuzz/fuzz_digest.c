/* libFuzzer target: OCI digest parsing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/spec/digest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL) {
        return 0;
    }
    memcpy(s, data, size);
    s[size] = '\0';
    struct digest d;
    if (digest_parse(s, &d) == BERTH_OK) {
        /* a parsed digest is canonical: it parses again to itself */
        struct digest again;
        if (digest_parse(d.str, &again) != BERTH_OK || strcmp(d.str, again.str) != 0) {
            abort();
        }
    }
    free(s);
    return 0;
}
