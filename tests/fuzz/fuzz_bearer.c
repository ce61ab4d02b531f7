/* libFuzzer target: the token protocol's scopes (what /v2/token is asked for) and the
 * bearer tokens /v2 is handed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/auth/authtoken.h"
#include "server/auth/bearer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t key[AUTHTOKEN_KEY_LEN] = "fuzz-key-fuzz-key-fuzz-key-fuzz!";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    struct bearer_scope *sc = calloc(1, sizeof(*sc)), *again = calloc(1, sizeof(*again));
    char *text = malloc(AUTHTOKEN_SCOPE_MAX + 1), *text2 = malloc(AUTHTOKEN_SCOPE_MAX + 1);
    if (s == NULL || sc == NULL || again == NULL || text == NULL || text2 == NULL) {
        goto out;
    }
    memcpy(s, data, size);
    s[size] = '\0';
    bearer_scope_add(sc, s, size);
    if (sc->count > BEARER_RESOURCES_MAX) {
        abort();
    }
    size_t n = bearer_scope_format(sc, text, AUTHTOKEN_SCOPE_MAX + 1);
    if (n != strlen(text) || n > AUTHTOKEN_SCOPE_MAX) {
        abort();
    }
    /* the canonical text parses to itself, and grants what each resource asked for
     * (when its entry fitted) */
    bearer_scope_add(again, text, n);
    bearer_scope_format(again, text2, AUTHTOKEN_SCOPE_MAX + 1);
    if (strcmp(text, text2) != 0) {
        abort();
    }
    for (size_t i = 0; i < sc->count; i++) {
        const struct bearer_resource *r = &sc->items[i];
        const char *repo = r->is_registry ? NULL : r->name;
        if (n < AUTHTOKEN_SCOPE_MAX / 2 && !bearer_scope_allows(text, repo, r->actions)) {
            abort();
        }
    }
    /* any string as a bearer token: refused without a crash (a forgery cannot pass) */
    struct authtoken tok;
    if (authtoken_verify(key, sizeof(key), s, AUTHTOKEN_BEARER, NULL, NULL, 0, &tok) == BERTH_OK) {
        abort();
    }
out:
    free(text2);
    free(text);
    free(again);
    free(sc);
    free(s);
    return 0;
}
