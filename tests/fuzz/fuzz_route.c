/* libFuzzer target: /v2 path routing and percent-decoding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/http/http.h"

#include "storage/spec/names.h"
#include "server/oci/oci_route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL) {
        return 0;
    }
    memcpy(s, data, size);
    s[size] = '\0';
    size_t len = http_unescape(s, s[0] == '/');
    if (len > size) {
        abort();
    }
    char name[NAMES_REPO_MAX + 1], ref[256];
    enum oci_route r = oci_route_parse(s, name, sizeof(name), ref, sizeof(ref));
    if (r >= OCI_ROUTE_TAGS && !names_repo_valid(name)) {
        abort(); /* every routed name satisfies the grammar */
    }
    free(s);
    return 0;
}
