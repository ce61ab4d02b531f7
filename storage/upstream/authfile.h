/*
 * Registry credentials from a docker client configuration (config.json,
 * as `docker login`, podman's auth.json and skopeo write it): the
 * "auths" object, keyed by registry ("host[:port]", or a URL such as
 * "https://index.docker.io/v1/"), each entry an "auth" of
 * base64("user:password") or "username" and "password"; and which
 * docker credential helper holds a registry's credentials ("credHelpers"
 * by registry, else "credsStore"), for the caller to run as docker does.
 * Pure.
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

/* The docker credential helper for host, as docker picks it: the
 * credHelpers entry of host's registry, else credsStore. Its name (the
 * part after "docker-credential-", letters, digits, '.', '_', '-') into
 * helper, and the server URL docker hands it ("https://index.docker.io/v1/"
 * for Docker Hub, else host) into server. BERTH_ENOTFOUND when the config
 * names none, BERTH_EINVAL when it is not a config or the name is not a
 * helper's (why says which). */
enum berth_err upstream_authfile_helper(const char *text, size_t len, const char *host,
                                        char *helper, size_t helper_cap, char *server,
                                        size_t server_cap, char *why, size_t why_cap);

/* The credentials a credential helper printed for `get` (JSON with
 * "Username" and "Secret"), as new strings. BERTH_EINVAL when out is not
 * such JSON or names an identity token ("<token>"), BERTH_ENOMEM. */
enum berth_err upstream_authfile_helper_output(const char *out, size_t len, char **user,
                                               char **password, char *why, size_t why_cap);

#endif
