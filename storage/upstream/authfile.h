/*
 * Registry credentials from a docker client configuration (config.json,
 * as `docker login`, podman's auth.json and skopeo write it): the
 * "auths" object, keyed by registry ("host[:port]", or a URL such as
 * "https://index.docker.io/v1/"), each entry an "auth" of
 * base64("user:password") or "username" and "password". Credential
 * helpers (credsStore, credHelpers) are not run. Pure.
 */
#ifndef BERTH_UPSTREAM_AUTHFILE_H
#define BERTH_UPSTREAM_AUTHFILE_H

#include <stddef.h>

#include "common/err.h"

/* The credentials the config text (len bytes) holds for host ("host" or
 * "host:port"; docker.io, index.docker.io and registry-1.docker.io are one
 * registry), as new strings into *user and *password (the caller wipes and
 * frees them). BERTH_ENOTFOUND when there are none, BERTH_EINVAL when the
 * text is not such a config or the entry is malformed (why says which),
 * BERTH_ENOMEM. */
enum berth_err upstream_authfile_find(const char *text, size_t len, const char *host, char **user,
                                      char **password, char *why, size_t why_cap);

#endif
