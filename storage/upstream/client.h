/*
 * A client of an upstream OCI registry (the pull-through cache's source,
 * and replication's destination), over libcurl: manifests and blobs by GET
 * or HEAD, blob uploads and manifest PUTs, with the registry's
 * authentication done as docker does it. Anonymous first; on a 401 with a
 * Basic challenge the request is repeated with the credentials, and on a
 * Bearer challenge (WWW-Authenticate: Bearer realm=...,service=...,scope=...)
 * a token is asked of the realm (with the credentials as Basic, when there
 * are any) and the request repeated with it; the token is kept for the
 * client's later requests. Credentials are never logged. A client has one
 * owner at a time; every call blocks on the network, at most the timeout.
 */
#ifndef BERTH_UPSTREAM_CLIENT_H
#define BERTH_UPSTREAM_CLIENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct upstream_client;

/* Longest upstream URL berth accepts. */
#define UPSTREAM_URL_MAX 512

/* Initialise libcurl, once per process: upstream_client_new does, so a
 * server that never fetches from an upstream never loads libcurl's TLS
 * stack (about 2 MiB of resident library pages). Thread-safe (libcurl
 * 7.84+ built thread-safe, as Debian 12's 7.88 is). BERTH_EIO when it
 * cannot. */
enum berth_err upstream_client_global_init(void);

/* The base URL of an upstream given as "host[:port]" (https),
 * "https://host[:port]" or "http://host[:port]", with an optional trailing
 * "/": the scheme, host and port into out (no trailing '/'). False when url
 * is none of these. Pure. */
bool upstream_url_normalize(const char *url, char *out, size_t cap);

/* A client of the registry at base_url (from upstream_url_normalize) with
 * optional credentials (both NULL: anonymous; copied), each request taking
 * at most timeout_ms. NULL when out of memory. */
struct upstream_client *upstream_client_new(const char *base_url, const char *username,
                                            const char *password, int64_t timeout_ms);

/* Send the header name: value with every later request of c (one such
 * header; a later call replaces it). False when it does not fit or holds
 * a line break or (in name) a colon. */
bool upstream_client_set_header(struct upstream_client *c, const char *name, const char *value);

/* The User-Agent of c's requests becomes "berth-<role>/<version>" (role:
 * "pull-through", the default; "mirror"; "replication"), so that an
 * upstream's access log tells berth's uses apart. */
void upstream_client_set_role(struct upstream_client *c, const char *role);

/* Trust the CA certificates of the PEM file at path (copied) instead of
 * the system's for this client's HTTPS requests (the token service's
 * included). BERTH_ENOMEM. */
enum berth_err upstream_client_set_ca_file(struct upstream_client *c, const char *path);

/* Make every later transfer of c give up (BERTH_EIO) within about a
 * second of *cancel being set (borrowed; it must outlive c). */
void upstream_client_set_cancel(struct upstream_client *c, const atomic_bool *cancel);

/* Free a client (NULL is fine), wiping its credentials and token. */
void upstream_client_free(struct upstream_client *c);

/* A manifest as the upstream served it. */
struct upstream_manifest {
    char *body; /* owned; NULL after a HEAD */
    size_t len; /* body bytes (GET), or Content-Length (HEAD) */
    char content_type[256];
    char digest[160]; /* Docker-Content-Digest, or "" */
};

void upstream_manifest_fini(struct upstream_manifest *m);

/* GET (or HEAD, with head) /v2/<repo>/manifests/<reference>, accepting
 * every manifest type berth stores; a body over max bytes fails.
 * BERTH_ENOTFOUND (404), BERTH_EDENIED (401/403 after authenticating),
 * BERTH_EBUSY (429), BERTH_ETOOBIG, BERTH_EIO (network, 5xx, anything
 * else), BERTH_ENOMEM; err gets a one-line reason on failure. */
enum berth_err upstream_get_manifest(struct upstream_client *c, const char *repo,
                                     const char *reference, bool head, size_t max,
                                     struct upstream_manifest *out, char *err, size_t cap);

/* GET /v2/<repo>/referrers/<digest> (the OCI 1.1 referrers API): the
 * image index listing the manifests whose subject is digest, in out->body.
 * BERTH_ENOTFOUND when the upstream has no referrers API (404: fall back
 * to the referrers tag schema, a manifest tagged <alg>-<hex>); other
 * returns as upstream_get_manifest. */
enum berth_err upstream_get_referrers(struct upstream_client *c, const char *repo,
                                      const char *digest, size_t max, struct upstream_manifest *out,
                                      char *err, size_t cap);

/* Called with each piece of a blob as it arrives; non-OK stops the
 * transfer and is returned. */
typedef enum berth_err (*upstream_write_fn)(void *arg, const void *p, size_t n);

/* Called once, before the first piece of a blob, with its Content-Length
 * (-1 when the upstream gave none). */
typedef void (*upstream_length_fn)(void *arg, int64_t length);

/* Called once, before the first piece of a blob asked for from a byte on,
 * with the byte the answer starts at (0: the upstream sent the whole blob,
 * a 200; the byte asked for: it honoured the Range, a 206; -1: a 206 whose
 * Content-Range berth cannot read) and its Content-Length (-1 when none). */
typedef void (*upstream_range_fn)(void *arg, int64_t from, int64_t length);

/* GET /v2/<repo>/blobs/<digest>, following redirects (credentials are not
 * sent to another host), handing the bytes to write (and the length to
 * on_length first, when not NULL). Same returns as upstream_get_manifest,
 * or write's. */
enum berth_err upstream_get_blob(struct upstream_client *c, const char *repo, const char *digest,
                                 upstream_length_fn on_length, upstream_write_fn write, void *arg,
                                 char *err, size_t cap);

/* upstream_get_blob from byte from on (from > 0: with "Range: bytes=<from>-",
 * a 206 answer accepted; on_range says where the bytes handed to write
 * start, which is 0 when the upstream ignored the Range and sent the whole
 * blob). Same returns as upstream_get_blob. */
enum berth_err upstream_get_blob_from(struct upstream_client *c, const char *repo,
                                      const char *digest, int64_t from, upstream_range_fn on_range,
                                      upstream_write_fn write, void *arg, char *err, size_t cap);

/* GET /v2/ with authentication (a token scoped to repo's pull when the
 * upstream asks for one; repo may be NULL): whether berth can reach the
 * upstream with these credentials. Same returns as upstream_get_manifest. */
enum berth_err upstream_ping(struct upstream_client *c, const char *repo, char *err, size_t cap);

/* ---- pushing (replication copies to a destination registry) ---- */

/* HEAD /v2/<repo>/blobs/<digest>: *exists when 200, false when 404. Same
 * returns as upstream_get_manifest otherwise. */
enum berth_err upstream_blob_exists(struct upstream_client *c, const char *repo, const char *digest,
                                    bool *exists, char *err, size_t cap);

/* Push a blob to repo: first as a cross-repository mount (POST
 * .../blobs/uploads/?mount=<digest>[&from=<from_repo>]: *mounted on 201;
 * without from_repo a berth destination mounts from any repository the
 * caller may pull), and when the destination starts an upload instead
 * (202), the size bytes read from fd (pread, from offset 0; borrowed) in
 * one PUT to the session's Location with ?digest=. Credentials are sent
 * to the destination's host only. Same returns as upstream_get_manifest. */
enum berth_err upstream_blob_push(struct upstream_client *c, const char *repo, const char *digest,
                                  const char *from_repo, int fd, uint64_t size, bool *mounted,
                                  char *err, size_t cap);

/* PUT /v2/<repo>/manifests/<reference> with body (len bytes) as
 * content_type; 201 is success. BERTH_EINVAL when the destination refused
 * it with another 4xx (err has the start of its answer); otherwise the
 * returns of upstream_get_manifest. */
enum berth_err upstream_put_manifest(struct upstream_client *c, const char *repo,
                                     const char *reference, const char *content_type,
                                     const char *body, size_t len, char *err, size_t cap);

/* The parameters of a WWW-Authenticate challenge: scheme ("Basic",
 * "Bearer") and, for Bearer, realm, service and scope ("" when absent).
 * False when header is not a challenge berth can answer. Pure. */
struct upstream_challenge {
    char scheme[16];
    char realm[UPSTREAM_URL_MAX];
    char service[256];
    char scope[512];
};
bool upstream_challenge_parse(const char *header, struct upstream_challenge *out);

#endif
