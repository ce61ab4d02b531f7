/* libFuzzer target: SigV4 Authorization header parsing and verification.
 * The input is "<authorization>\n<x-amz-date>\n<body>". */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/spec/sigv4.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL) {
        return 0;
    }
    memcpy(s, data, size);
    s[size] = '\0';
    char *date = strchr(s, '\n');
    char *body = NULL;
    if (date != NULL) {
        *date++ = '\0';
        body = strchr(date, '\n');
        if (body != NULL) {
            *body++ = '\0';
        }
    }
    struct sigv4_header headers[] = {
        {"Authorization", s},
        {"X-Amz-Date", date ? date : "20261126T095037Z"},
        {"Host", "127.0.0.1:5000"},
        {"Content-Type", "application/x-amz-json-1.1"},
    };
    struct sigv4_request req = {"POST", "/", NULL, headers, 4, body, body ? strlen(body) : 0, NULL};
    struct sigv4_auth auth;
    struct sigv4_refusal refusal;
    if (sigv4_parse(&req, &auth, &refusal) == BERTH_OK) {
        struct sigv4_verify_opts opts = {.now = auth.request_time};
        sigv4_verify(&req, &auth, "secret", 6, &opts, &refusal);
    }
    free(s);
    return 0;
}
