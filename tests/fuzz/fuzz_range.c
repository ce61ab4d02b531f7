/* libFuzzer target: Range and upload Content-Range parsing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/http/range.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8) {
        return 0;
    }
    uint64_t resource = 0;
    memcpy(&resource, data, 8);
    resource %= (1ull << 40);
    char *s = malloc(size - 8 + 1);
    if (s == NULL) {
        return 0;
    }
    memcpy(s, data + 8, size - 8);
    s[size - 8] = '\0';
    struct byte_range r;
    if (range_parse(s, resource, &r) == RANGE_PARTIAL) {
        /* a satisfiable range lies inside the resource */
        if (r.first > r.last || r.last >= resource) {
            abort();
        }
    }
    if (range_parse_content_range(s, &r) == BERTH_OK &&
        (r.first > r.last || r.last - r.first + 1 == 0)) {
        abort();
    }
    free(s);
    return 0;
}
