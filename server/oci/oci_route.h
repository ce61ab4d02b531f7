/*
 * Routing of OCI distribution paths (/v2/...), a pure function so it can
 * be tested alone. Repository names may contain path segments that look
 * like keywords ("a/blobs/b"), so the rightmost keyword whose remainder has
 * the right shape wins.
 */
#ifndef BERTH_OCI_ROUTE_H
#define BERTH_OCI_ROUTE_H

#include <stddef.h>

enum oci_route {
    OCI_ROUTE_NONE = 0,     /* not an API path */
    OCI_ROUTE_NAME_INVALID, /* an API path whose repository name is invalid */
    OCI_ROUTE_BASE,         /* /v2/ */
    OCI_ROUTE_CATALOG,      /* /v2/_catalog */
    OCI_ROUTE_TOKEN,        /* /v2/token (the token protocol's endpoint); no name */
    /* the routes from here on carry a repository name */
    OCI_ROUTE_TAGS,         /* /v2/<name>/tags/list */
    OCI_ROUTE_MANIFEST,     /* /v2/<name>/manifests/<reference> */
    OCI_ROUTE_BLOB,         /* /v2/<name>/blobs/<digest> */
    OCI_ROUTE_UPLOAD_START, /* /v2/<name>/blobs/uploads/ */
    OCI_ROUTE_UPLOAD,       /* /v2/<name>/blobs/uploads/<id> */
    OCI_ROUTE_REFERRERS,    /* /v2/<name>/referrers/<digest> */
};

/* Route a decoded path. name and ref receive the repository name and the
 * trailing reference (tag, digest or upload id) when the route has them;
 * a reference longer than ref_cap - 1 makes the route NONE. */
enum oci_route oci_route_parse(const char *path, char *name, size_t name_cap, char *ref,
                               size_t ref_cap);

#endif
