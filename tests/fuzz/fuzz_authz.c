/* libFuzzer target: identity and repository policy validation. The first
 * byte picks the kind. */
#include <stdint.h>
#include <stdlib.h>

#include "server/auth/authz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    enum authz_policy_kind kind = (data[0] & 1) ? AUTHZ_REPOSITORY_POLICY : AUTHZ_IDENTITY_POLICY;
    struct authz_policy *p = NULL;
    char detail[256];
    authz_policy_parse((const char *)data + 1, size - 1, kind, &p, detail, sizeof(detail));
    authz_policy_free(p);
    return 0;
}
