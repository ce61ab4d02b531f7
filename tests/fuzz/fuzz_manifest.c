/* libFuzzer target: manifest parsing and reference extraction. The first
 * byte picks the Content-Type the parser is given. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/spec/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const types[] = {NULL,
                                        MANIFEST_OCI,
                                        MANIFEST_OCI_INDEX,
                                        MANIFEST_DOCKER,
                                        MANIFEST_DOCKER_LIST,
                                        "application/json"};
    if (size == 0) {
        return 0;
    }
    const char *ct = types[data[0] % (sizeof(types) / sizeof(types[0]))];
    struct manifest_info *info = NULL;
    char why[256];
    if (manifest_parse((const char *)data + 1, size - 1, ct, &info, why, sizeof(why)) == BERTH_OK) {
        if (info->ref_count > MANIFEST_MAX_REFS || (info->is_index && info->has_config)) {
            abort();
        }
        (void)manifest_effective_artifact_type(info);
    }
    manifest_info_free(info);
    return 0;
}
