/* Private to server/oci/: the handlers and shared helpers. */
#ifndef BERTH_OCI_INT_H
#define BERTH_OCI_INT_H

#include <jansson.h>

#include "server/oci/oci.h"

#include "server/oci/oci_route.h"
#include "storage/registry/registry.h"

/* OCI error response: {"errors":[{"code":..,"message":..,"detail":..}]}.
 * detail may be NULL (JSON text otherwise). */
void oci_error(struct request *req, unsigned status, const char *code, const char *message,
               const char *detail_json);

/* Send doc (consumed; NULL sends a 500) as application/json with status
 * and, when header is not NULL, that one header more. */
void oci_send_doc(struct request *req, unsigned status, json_t *doc, const char *header,
                  const char *value);

/* Answer with the OCI error the one reason table maps s to. */
void oci_fail(struct request *req, const struct registry_status *s);

/* Whether a failure on this side is for now (retry later, 503): a
 * resource ran out (BERTH_ENOFD, BERTH_ENOMEM, BERTH_EBUSY) or the storage
 * is unavailable (BERTH_EUNAVAILABLE: the database down or restarting).
 * In oci.c. */
bool oci_err_transient(enum berth_err rc);

/* Answer a request that could not be served because something failed on
 * this side (rc is not "not found" or "denied"): 503 UNAVAILABLE with
 * Retry-After when oci_err_transient(rc), else 500 UNKNOWN. Logs
 * event=<event> err=<rc>. In oci.c. */
void oci_server_error(struct request *req, enum berth_err rc, const char *event);

/* Answer a pull-through cache fetch that failed with rc (the reason in
 * err): 429 TOOMANYREQUESTS when the upstream said so, else 503
 * UNAVAILABLE naming the upstream's failure. In oci.c. */
void oci_upstream_failed(struct request *req, enum berth_err rc, const char *err);

/* A response carrying bytes [offset, offset + len) of the blob d, size
 * bytes as the metadata says: sent with sendfile from a local file, or
 * streamed from the blob store as it comes (never whole in memory or on
 * disk). BERTH_ENOTFOUND when the store lacks the blob (logged), else as
 * blob_read_range; *out NULL only when out of memory. In blobs.c. */
enum berth_err oci_blob_body(struct request *req, const struct digest *d, uint64_t size,
                             uint64_t offset, uint64_t len, struct http_response **out);

/* 405 UNSUPPORTED with an Allow header. */
void oci_method_not_allowed(struct request *req, const char *allow);

bool oci_method_is(struct request *req, const char *method);

void oci_manifest(struct request *req);
void oci_blob(struct request *req);
void oci_upload_start(struct request *req);
void oci_upload(struct request *req);

/* ---- authentication and authorization (oci_auth.c) ---- */

/* The ECR actions a /v2 request needs. */
struct oci_need {
    const char *actions[3];
    size_t count;
    bool any;       /* one of the actions suffices (otherwise all are needed) */
    bool login;     /* only an authenticated caller is needed (/v2/, _catalog, 405s) */
    bool none;      /* nothing to check (unroutable paths, answered 404/400) */
    unsigned scope; /* BEARER_* a bearer token must grant on the repository (catalog: registry) */
};

/* What a route needs, for method; is_monolithic: a POST upload with
 * ?digest= (initiate, upload and complete at once); has_body: the request
 * carries data. Pure. */
void oci_auth_need(enum oci_route route, const char *method, bool is_monolithic, bool has_body,
                   struct oci_need *out);

/* Authenticate and authorize a routed request before its handler runs,
 * leaving the caller in req->ident. True when the handler may run;
 * otherwise the answer (401 with the Basic challenge, 403 DENIED, 500) is
 * sent. */
bool oci_authorize(struct request *req, enum oci_route route);

/* 401 UNAUTHORIZED with the configured challenge: ECR's Basic one, or
 * (auth.scheme bearer) the token protocol's Bearer one; scope (NULL:
 * none) and error (NULL: none, else "invalid_token" or
 * "insufficient_scope") go into the Bearer challenge. */
void oci_auth_challenge(struct request *req, const char *message, const char *scope,
                        const char *error);

/* Whether /v2 speaks the token protocol (auth.scheme bearer). */
bool oci_auth_is_bearer(const struct request *req);

/* Where clients reach the token endpoint, without "/v2/token": public_url
 * when configured; otherwise the scheme and the request's Host header (when
 * it is a plain host[:port]), so that a server listening on 0.0.0.0 names
 * the address the client used; else the listen address. */
void oci_auth_token_base(struct request *req, char *out, size_t cap);

/* The WWW-Authenticate value of a Bearer challenge into out (cap bytes):
 * realm <token base>/v2/token, service, and scope and error when not NULL. */
void oci_auth_bearer_challenge(struct request *req, const char *scope, const char *error, char *out,
                               size_t cap);

/* The token service name (auth.service, or the token base's host[:port]). */
void oci_auth_service(struct request *req, char *out, size_t cap);

/* What oci_auth_login found. */
enum oci_login {
    OCI_LOGIN_OK,        /* a valid key or login token: *id is the key's identity */
    OCI_LOGIN_ANONYMOUS, /* no credentials: *id is anonymous */
    OCI_LOGIN_BAD,       /* malformed, unknown or wrong credentials */
    OCI_LOGIN_EXPIRED,   /* an authentic login token past its expiry */
    OCI_LOGIN_ERROR,     /* the database failed */
    OCI_LOGIN_RETRY,     /* the database unavailable, a resource out: for now */
};

/* Authenticate the token endpoint's caller: user and password from a
 * form (grant_type=password), or, with user NULL, the request's
 * Authorization: Basic header (absent: anonymous; user and password both
 * empty: anonymous). "AWS" + a login token, or an access key id and its
 * secret. *id must be empty (zeroed); on OCI_LOGIN_OK it holds the key's
 * identity (release with auth_identity_clear), otherwise it stays
 * anonymous with enforced set as auth_lookup found it, and *why names a
 * refusal for the log. */
enum oci_login oci_auth_login(struct request *req, struct meta *m, const char *user,
                              const char *password, struct auth_identity *id, const char **why);

/* GET or POST /v2/token: the token protocol's endpoint (token.c). */
void oci_token(struct request *req);

/* Where a cross-repository mount of d may take it from. With auth off,
 * *mountable and *source = from (NULL: any repository). With auth on, from
 * itself if the caller may pull there, or (no from) the first repository
 * holding the blob that the caller may pull from, copied into buf.
 * *mountable false: do not mount (open a normal upload session). An error
 * when a source's policy or the blob's repositories could not be read:
 * answer it (a refusal would hide the failure behind a normal upload). */
enum berth_err oci_auth_mount_source(struct request *req, const char *from, const struct digest *d,
                                     char *buf, size_t cap, bool *mountable, const char **source);

/* Whether the caller may see repo in the catalog (ecr:DescribeRepositories)
 * into *allowed. BERTH_OK, or why the policies could not be read (then the
 * catalog is a server error, not a shorter list). */
enum berth_err oci_auth_may_list(struct request *req, const char *repo, bool *allowed);

/* The pull-through cache's question before it asks the upstream for
 * req->repo (upstream_may_import_fn, arg the struct oci_import_check):
 * whether the caller may perform ecr:BatchImportUpstreamImage on it, as ECR
 * asks. Always true when the caller is not under enforced auth. On false,
 * err holds AWS's denial text (or why the policies could not be read) and
 * the check's refused is set. */
struct oci_import_check {
    struct request *req;
    bool refused;
};
bool oci_auth_may_import(void *arg, char *err, size_t cap);

/* The pull-through cache's caller for a request (arg the struct
 * oci_import_check): oci_auth_may_import, and its worker thread marked as
 * waiting (http_worker_waits) while the cache waits for an upstream. */
struct upstream_caller;
struct upstream_caller oci_upstream_caller(struct oci_import_check *check);

/* The header another berth's replication sends with its pushes, naming
 * its region and registry id (UPSTREAM_REPLICATION_HEADER). */
#define OCI_REPLICATION_HEADER "X-Berth-Replication-Source"

/* Before a push (upload start, manifest PUT) that carries
 * OCI_REPLICATION_HEADER from a caller allowed ecr:ReplicateImage on the
 * repository: create the repository when missing with the REPLICATION
 * creation template (registry_repo_for_replication), as ECR's replication
 * creates it. Otherwise nothing (the push creates it as any push would).
 * False after answering (a store failure). */
bool oci_replication_repo(struct request *req);

#endif
