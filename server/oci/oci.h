/*
 * The OCI distribution API (/v2/...), as the HTTP layer serves it: every
 * request whose path is /v2 or below and that is not an ECR call.
 */
#ifndef BERTH_OCI_H
#define BERTH_OCI_H

#include "server/http/http.h"

extern const struct http_api oci_api;

#endif
