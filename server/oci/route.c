/* OCI path routing; see oci_route.h. */
#include "server/oci/oci_route.h"

#include <string.h>

#include "storage/spec/names.h"

struct keyword {
    const char *text;
    enum oci_route route;
    int exact_end; /* nothing may follow the keyword */
};

/* Longer keywords first where one is a prefix of another. */
static const struct keyword keywords[] = {
    {"/blobs/uploads/", OCI_ROUTE_UPLOAD, 0}, {"/blobs/uploads", OCI_ROUTE_UPLOAD_START, 1},
    {"/blobs/", OCI_ROUTE_BLOB, 0},           {"/manifests/", OCI_ROUTE_MANIFEST, 0},
    {"/referrers/", OCI_ROUTE_REFERRERS, 0},  {"/tags/list", OCI_ROUTE_TAGS, 1},
};

enum oci_route oci_route_parse(const char *path, char *name, size_t name_cap, char *ref,
                               size_t ref_cap)
{
    if (strncmp(path, "/v2", 3) != 0) {
        return OCI_ROUTE_NONE;
    }
    if (strcmp(path, "/v2") == 0 || strcmp(path, "/v2/") == 0) {
        return OCI_ROUTE_BASE;
    }
    if (path[3] != '/') {
        return OCI_ROUTE_NONE;
    }
    const char *rest = path + 4;
    if (strcmp(rest, "_catalog") == 0) {
        return OCI_ROUTE_CATALOG;
    }
    if (strcmp(rest, "token") == 0) {
        return OCI_ROUTE_TOKEN;
    }
    size_t len = strlen(rest);
    /* Scan slashes from the right; the first keyword that fits wins. */
    for (size_t i = len; i-- > 0;) {
        if (rest[i] != '/') {
            continue;
        }
        for (size_t k = 0; k < sizeof(keywords) / sizeof(keywords[0]); k++) {
            const struct keyword *kw = &keywords[k];
            size_t klen = strlen(kw->text);
            if (strncmp(rest + i, kw->text, klen) != 0) {
                continue;
            }
            const char *tail = rest + i + klen;
            if (kw->exact_end && *tail != '\0') {
                continue;
            }
            if (strchr(tail, '/') != NULL) {
                continue;
            }
            enum oci_route route = kw->route;
            if (route == OCI_ROUTE_UPLOAD && *tail == '\0') {
                route = OCI_ROUTE_UPLOAD_START;
            } else if (!kw->exact_end && *tail == '\0') {
                continue; /* a reference is required */
            }
            size_t tail_len = strlen(tail);
            if (tail_len >= ref_cap) {
                return OCI_ROUTE_NONE;
            }
            memcpy(ref, tail, tail_len + 1);
            if (i == 0 || i >= name_cap || !names_repo_valid_n(rest, i)) {
                return OCI_ROUTE_NAME_INVALID;
            }
            memcpy(name, rest, i);
            name[i] = '\0';
            return route;
        }
    }
    return OCI_ROUTE_NONE;
}
