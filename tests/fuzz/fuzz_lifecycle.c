/* libFuzzer target: lifecycle policy validation and evaluation over a
 * fixed set of images. */
#include <stdint.h>
#include <stdlib.h>

#include "storage/lifecycle/lifecycle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lifecycle_policy *p = NULL;
    char msg[1024];
    if (lifecycle_policy_parse((const char *)data, size, &p, msg, sizeof(msg)) != BERTH_OK) {
        return 0;
    }
    static const char *const t1[] = {"prod-1", "latest"};
    static const char *const t2[] = {"beta-2"};
    static const size_t parents[] = {0};
    const struct lifecycle_image images[] = {
        {"sha256:a", 1000, t1, 2, NULL, 0, 1500, 0, false, false, 0},
        {"sha256:b", 2000, t2, 1, parents, 1, 0, 0, false, false, 0},
        {"sha256:c", 3000, NULL, 0, NULL, 0, 0, 2500, true, true, 0},
    };
    struct lifecycle_expiration *out = NULL;
    size_t n = 0;
    if (lifecycle_evaluate(p, images, 3, 90ll * 86400 * 1000, &out, &n) == BERTH_OK && n > 3) {
        abort();
    }
    free(out);
    lifecycle_policy_free(p);
    return 0;
}
