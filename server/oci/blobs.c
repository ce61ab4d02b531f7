/*
 * OCI blob endpoints: GET/HEAD (sendfile from a local file or streamed
 * from the blob store, Range) and DELETE of blobs, and
 * the upload protocol (POST, chunked and streamed PATCH, PUT with or
 * without a last chunk, status GET, cancel DELETE, cross-repository
 * mount, single-POST monolithic uploads). Bodies are hashed and written as
 * they arrive, never buffered whole. Pool threads.
 */
#include "oci_int.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"
#include "storage/blob/blob.h"
#include "common/log.h"
#include "storage/meta/meta.h"
#include "common/rand.h"
#include "storage/store/store.h"
#include "common/str.h"
#include "storage/store/upload.h"
#include "storage/upstream/cache.h"

/* How long the presigned URL of a redirected blob GET is valid. */
#define BLOB_REDIRECT_SECONDS 300

#define EMPTY_SHA256 "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static void blob_location(struct request *req, const char *digest, char *out, size_t cap)
{
    snprintf(out, cap, "/v2/%s/blobs/%s", req->repo, digest);
}

static void upload_location(struct request *req, const char *uuid, char *out, size_t cap)
{
    snprintf(out, cap, "/v2/%s/blobs/uploads/%s", req->repo, uuid);
}

/* "0-<last byte>"; "0-0" for an empty session, as clients expect. */
static void range_value(uint64_t offset, char *out, size_t cap)
{
    snprintf(out, cap, "0-%llu", (unsigned long long)(offset > 0 ? offset - 1 : 0));
}

/* 202/204/416 answers about a session carry where it is and how far. */
static void send_session(struct request *req, unsigned status, const char *uuid, uint64_t offset)
{
    char loc[NAMES_REPO_MAX + 128], range[48];
    upload_location(req, uuid, loc, sizeof(loc));
    range_value(offset, range, sizeof(range));
    struct http_response *resp;
    uint64_t len = 0;
    if (status == 416) {
        static const char body[] = "{\"errors\":[{\"code\":\"BLOB_UPLOAD_INVALID\",\"message\":"
                                   "\"chunk out of order: resume from the Range given\"}]}";
        len = sizeof(body) - 1;
        resp = http_resp_bytes(body, len);
        http_add(resp, "Content-Type", "application/json");
    } else {
        resp = http_resp_empty();
    }
    http_add(resp, "Location", loc);
    http_add(resp, "Range", range);
    http_add(resp, "Docker-Upload-UUID", uuid);
    http_send(req, status, resp, len);
}

static void send_created_blob(struct request *req, const char *digest)
{
    char loc[NAMES_REPO_MAX + DIGEST_STR_MAX + 32];
    blob_location(req, digest, loc, sizeof(loc));
    struct http_response *resp = http_resp_empty();
    http_add(resp, "Location", loc);
    http_add(resp, "Docker-Content-Digest", digest);
    http_send(req, 201, resp, 0);
}

/* Answer a failed upload-session call through the one reason table. */
static void upload_fail(struct request *req, enum berth_err rc)
{
    struct registry_status s;
    registry_upload_status(rc, &s);
    oci_fail(req, &s);
}

/* ---- blobs ---- */

static long long stream_read(void *arg, uint64_t pos, char *buf, size_t max, http_wake_fn wake,
                             void *wake_arg)
{
    long long n = upstream_stream_read(arg, pos, buf, max, wake, wake_arg);
    return n == UPSTREAM_READ_WAIT ? HTTP_READ_WAIT : n;
}

static void stream_done(void *arg)
{
    upstream_stream_release(arg);
}

/* A pull-through cache blob, sent while it lands from the upstream (the
 * whole of it: a Range is not honoured until it is stored). Takes us. */
static void blob_stream(struct request *req, const struct digest *d, struct upstream_stream *us,
                        int64_t len)
{
    struct http_response *resp = http_resp_stream(req, len >= 0 ? (uint64_t)len : HTTP_LEN_UNKNOWN,
                                                  stream_read, stream_done, us);
    if (resp == NULL) {
        upstream_stream_release(us);
    }
    http_add(resp, "Content-Type", "application/octet-stream");
    http_add(resp, "Docker-Content-Digest", d->str);
    char etag[DIGEST_STR_MAX + 2];
    snprintf(etag, sizeof(etag), "\"%s\"", d->str);
    http_add(resp, "ETag", etag);
    http_send(req, 200, resp, len >= 0 ? (uint64_t)len : 0);
}

static long long reader_read(void *arg, uint64_t pos, char *buf, size_t max, http_wake_fn wake,
                             void *wake_arg)
{
    (void)pos; /* the body is read in order */
    long long n = blob_reader_read(arg, buf, max, wake, wake_arg);
    return n == BLOB_READ_WAIT ? HTTP_READ_WAIT : n;
}

static void reader_done(void *arg)
{
    blob_reader_close(arg);
}

enum berth_err oci_blob_body(struct request *req, const struct digest *d, uint64_t size,
                             uint64_t offset, uint64_t len, struct http_response **out)
{
    struct blob_read br;
    struct store *st = req->srv->store;
    enum berth_err rc = blob_read_range(store_blobs(st), d, size, offset, len, &br);
    if (rc == BERTH_ENOTFOUND && store_settle_trash(st)) {
        /* moved aside by a removal that never committed (a killed pass) */
        rc = blob_read_range(store_blobs(st), d, size, offset, len, &br);
    }
    if (rc != BERTH_OK) {
        if (rc == BERTH_ENOTFOUND) {
            log_error("event=blob_file_missing digest=%s", d->str);
        }
        return rc;
    }
    if (br.fd >= 0) {
        *out = http_resp_fd(br.fd, offset, len);
        if (*out == NULL) {
            file_close(br.fd);
        }
        return BERTH_OK;
    }
    *out = http_resp_stream(req, len, reader_read, reader_done, br.reader);
    if (*out == NULL) {
        blob_reader_close(br.reader);
    }
    return BERTH_OK;
}

/* storage.s3.redirect: a 307 to a presigned URL of the object, which the
 * client GETs itself (with its Range, if any). False when the store has no
 * URL to give: the blob is then sent as usual. */
static bool blob_redirect(struct request *req, const struct digest *d)
{
    char url[4096];
    enum berth_err rc =
        blob_url(store_blobs(req->srv->store), d, BLOB_REDIRECT_SECONDS, url, sizeof(url));
    if (rc != BERTH_OK) {
        if (rc != BERTH_EUNSUPPORTED) {
            log_warn("event=blob_url_failed digest=%s err=%s", d->str, berth_strerror(rc));
        }
        return false;
    }
    struct http_response *resp = http_resp_empty();
    http_add(resp, "Location", url);
    http_add(resp, "Docker-Content-Digest", d->str);
    http_send(req, 307, resp, 0);
    return true;
}

static void blob_get(struct request *req, const struct digest *d)
{
    struct store *st = req->srv->store;
    struct meta_blob blob;
    struct registry_status s;
    if (registry_blob_pull_stat(st, req->repo, d, &blob, &s) != BERTH_OK) {
        if (s.reason == REG_LAYER_ARCHIVED) {
            /* ECR: a pull of an archived image is a 404; never refetched */
            oci_fail(req, &s);
            return;
        }
        /* a repository under a pull-through cache rule fetches it, and a
         * GET is answered while it lands */
        char err[AUTHZ_DENIED_MESSAGE_MAX];
        enum berth_err prc = BERTH_ENOTFOUND;
        struct upstream_stream *us = NULL;
        int64_t len = -1;
        struct oci_import_check import = {req, false};
        struct upstream_caller caller = oci_upstream_caller(&import);
        if (s.reason == REG_REPO_UNKNOWN || s.reason == REG_BLOB_UNKNOWN) {
            prc = upstream_stream_blob(st, req->repo, d, &caller, &us, &len, err, sizeof(err));
        }
        if (prc != BERTH_OK && import.refused) {
            oci_error(req, 403, "DENIED", err, NULL);
            return;
        }
        if (prc == BERTH_OK && us != NULL && !req->is_head) {
            blob_stream(req, d, us, len);
            return;
        }
        if (prc == BERTH_OK && us != NULL) {
            prc = upstream_stream_wait(us, &caller, err, sizeof(err));
            upstream_stream_release(us);
        }
        if (prc != BERTH_OK && prc != BERTH_ENOTFOUND) {
            oci_upstream_failed(req, prc, err);
            return;
        }
        if (prc != BERTH_OK || registry_blob_stat(st, req->repo, d, &blob, &s) != BERTH_OK) {
            oci_fail(req, &s);
            return;
        }
    }
    if (!req->is_head && req->srv->cfg->storage_s3_redirect && blob_redirect(req, d)) {
        return;
    }
    uint64_t size = (uint64_t)blob.size;
    struct byte_range r = {0, size ? size - 1 : 0};
    enum range_result rr = RANGE_NONE;
    char etag[DIGEST_STR_MAX + 2];
    snprintf(etag, sizeof(etag), "\"%s\"", d->str);
    /* a client resuming with If-Range for a representation other than this
     * one gets all of this one, not a piece of it spliced onto its own */
    if (!req->is_head && range_if_range_holds(http_header(req, "If-Range"), etag)) {
        rr = range_parse(http_header(req, "Range"), size, &r);
    }
    char cr[96];
    if (rr == RANGE_UNSATISFIABLE) {
        snprintf(cr, sizeof(cr), "bytes */%llu", (unsigned long long)size);
        static const char body[] = "{\"errors\":[{\"code\":\"RANGE_INVALID\",\"message\":"
                                   "\"requested range not satisfiable\"}]}";
        struct http_response *resp = http_resp_bytes(body, sizeof(body) - 1);
        http_add(resp, "Content-Range", cr);
        http_send_json(req, 416, "application/json", body, resp);
        return;
    }
    struct http_response *resp;
    uint64_t len = size;
    if (req->is_head) {
        resp = http_resp_head(size);
    } else {
        len = rr == RANGE_PARTIAL ? r.last - r.first + 1 : size;
        enum berth_err rc =
            oci_blob_body(req, d, size, rr == RANGE_PARTIAL ? r.first : 0, len, &resp);
        if (rc == BERTH_ENOTFOUND) {
            oci_error(req, 404, "BLOB_UNKNOWN", "blob unknown to registry", NULL);
            return;
        }
        if (rc != BERTH_OK) {
            /* could not look: not the same as "not there" */
            oci_server_error(req, rc, "blob_open_failed");
            return;
        }
    }
    http_add(resp, "Content-Type", "application/octet-stream");
    http_add(resp, "Docker-Content-Digest", d->str);
    http_add(resp, "Accept-Ranges", "bytes");
    http_add(resp, "ETag", etag);
    if (rr == RANGE_PARTIAL) {
        snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", (unsigned long long)r.first,
                 (unsigned long long)r.last, (unsigned long long)size);
        http_add(resp, "Content-Range", cr);
        http_send(req, 206, resp, len);
        return;
    }
    http_send(req, 200, resp, len);
}

void oci_blob(struct request *req)
{
    struct digest d;
    enum berth_err rc = digest_parse(req->ref, &d);
    bool get = oci_method_is(req, "GET") || req->is_head;
    bool del = oci_method_is(req, "DELETE");
    if (!get && !del) {
        oci_method_not_allowed(req, "GET, HEAD, DELETE");
        return;
    }
    if (rc != BERTH_OK) {
        oci_error(req, 400, "DIGEST_INVALID", "invalid or unsupported digest", NULL);
        return;
    }
    if (get) {
        blob_get(req, &d);
        return;
    }
    if (!req->srv->cfg->storage_delete_enabled) {
        oci_error(req, 405, "UNSUPPORTED", "deletes are disabled on this registry", NULL);
        return;
    }
    struct registry_status s;
    if (registry_blob_delete(req->srv->store, req->repo, &d, &s) != BERTH_OK) {
        oci_fail(req, &s);
        return;
    }
    struct http_response *resp = http_resp_empty();
    http_add(resp, "Docker-Content-Digest", d.str);
    http_send(req, 202, resp, 0);
}

/* ---- uploads ---- */

/* End of a PATCH body: check that a Content-Range was honoured exactly. */
static bool content_range_honoured(struct request *req)
{
    if (!req->has_content_range) {
        return true;
    }
    uint64_t got = upload_offset(req->upload) - req->upload_base;
    uint64_t want = req->crange.last - req->crange.first + 1;
    if (got == want) {
        return true;
    }
    upload_truncate(req->upload, req->upload_base);
    oci_error(req, 400, "SIZE_INVALID", "body length does not match Content-Range", NULL);
    return false;
}

static void patch_done(struct request *req)
{
    if (!content_range_honoured(req)) {
        return;
    }
    char uuid[RAND_UUID_LEN + 1];
    str_copy(uuid, sizeof(uuid), req->ref);
    /* committed where every replica sees it (shared sessions) */
    enum berth_err rc = upload_save(req->upload);
    uint64_t offset = upload_offset(req->upload);
    upload_release(req->upload);
    req->upload = NULL;
    if (rc == BERTH_ERANGE) {
        /* another request committed to the session first: this chunk is
         * dropped; resume from where the session stands */
        send_session(req, 416, uuid, offset);
        return;
    }
    if (rc != BERTH_OK) {
        upload_fail(req, rc);
        return;
    }
    send_session(req, 202, uuid, offset);
}

static void finish_done(struct request *req)
{
    if (!content_range_honoured(req)) {
        return;
    }
    struct meta_blob blob;
    enum berth_err rc = upload_complete(req->upload, &req->digest, &blob);
    req->upload = NULL; /* consumed either way */
    if (rc != BERTH_OK) {
        upload_fail(req, rc);
        return;
    }
    send_created_blob(req, blob.digest);
}

/* Hold the session named in the URL; answer and return false on failure. */
static bool hold_session(struct request *req)
{
    struct meta_repo repo;
    struct registry_status s;
    if (registry_repo(req->srv->store, req->repo, false, &repo, &s) != BERTH_OK) {
        if (s.reason == REG_REPO_UNKNOWN) {
            upload_fail(req, BERTH_ENOTFOUND);
        } else {
            oci_fail(req, &s);
        }
        return false;
    }
    enum berth_err rc = upload_acquire(req->srv->store, req->ref, repo.id, &req->upload);
    if (rc != BERTH_OK) {
        upload_fail(req, rc);
        return false;
    }
    return true;
}

/* Answer early (before the body is read) and let the session go at once:
 * libmicrohttpd frees the request only when it gets round to closing the
 * connection, and the client's retry must not find the session held. */
static void refuse_append(struct request *req)
{
    upload_release(req->upload);
    req->upload = NULL;
}

/* Validate a Content-Range against the session and prepare to append.
 * Returns false after answering. */
static bool start_append(struct request *req, body_done_fn done)
{
    uint64_t offset = upload_offset(req->upload);
    const char *cr = http_header(req, "Content-Range");
    if (cr != NULL) {
        if (range_parse_content_range(cr, &req->crange) != BERTH_OK) {
            refuse_append(req);
            oci_error(req, 400, "BLOB_UPLOAD_INVALID", "malformed Content-Range", NULL);
            return false;
        }
        if (req->crange.first != offset) {
            refuse_append(req);
            send_session(req, 416, req->ref, offset);
            return false;
        }
        uint64_t cl;
        if (http_content_length(req, &cl) && cl != req->crange.last - req->crange.first + 1) {
            refuse_append(req);
            oci_error(req, 400, "SIZE_INVALID", "Content-Length does not match Content-Range",
                      NULL);
            return false;
        }
        req->has_content_range = true;
    }
    req->upload_base = offset;
    req->on_done = done;
    if (http_has_body(req)) {
        req->body_mode = BODY_UPLOAD;
    } else {
        done(req);
    }
    return true;
}

static void upload_patch(struct request *req)
{
    if (!hold_session(req)) {
        return;
    }
    start_append(req, patch_done);
}

static void upload_put(struct request *req)
{
    const char *dq = http_query(req, "digest");
    if (dq == NULL || digest_parse(dq, &req->digest) != BERTH_OK) {
        oci_error(req, 400, "DIGEST_INVALID",
                  dq ? "invalid or unsupported digest" : "the digest parameter is required", NULL);
        return;
    }
    req->has_digest = true;
    if (!hold_session(req)) {
        return;
    }
    start_append(req, finish_done);
}

static void upload_status(struct request *req)
{
    struct meta_repo repo;
    struct registry_status s;
    uint64_t offset = 0;
    enum berth_err rc = registry_repo(req->srv->store, req->repo, false, &repo, &s);
    if (rc == BERTH_OK) {
        rc = upload_peek(req->srv->store, req->ref, repo.id, &offset);
    } else if (s.reason == REG_REPO_UNKNOWN) {
        rc = BERTH_ENOTFOUND;
    }
    if (rc != BERTH_OK) {
        upload_fail(req, rc);
        return;
    }
    send_session(req, 204, req->ref, offset);
}

static void upload_delete(struct request *req)
{
    struct meta_repo repo;
    struct registry_status s;
    enum berth_err rc = registry_repo(req->srv->store, req->repo, false, &repo, &s);
    if (rc == BERTH_OK) {
        rc = upload_cancel(req->srv->store, req->ref, repo.id);
    } else if (s.reason == REG_REPO_UNKNOWN) {
        rc = BERTH_ENOTFOUND;
    }
    if (rc != BERTH_OK) {
        upload_fail(req, rc);
        return;
    }
    http_send(req, 204, http_resp_empty(), 0);
}

void oci_upload(struct request *req)
{
    if (oci_method_is(req, "PATCH")) {
        upload_patch(req);
    } else if (oci_method_is(req, "PUT")) {
        upload_put(req);
    } else if (oci_method_is(req, "GET") || req->is_head) {
        upload_status(req);
    } else if (oci_method_is(req, "DELETE")) {
        upload_delete(req);
    } else {
        oci_method_not_allowed(req, "GET, HEAD, PATCH, PUT, DELETE");
    }
}

/* Create a session in the repository (made when missing and allowed):
 * uuid receives its id, *repo_id (optional) the repository's. False after
 * answering. */
static bool open_session(struct request *req, enum digest_alg alg, char *uuid, int64_t *repo_id)
{
    struct meta_repo repo;
    struct registry_status s;
    if (registry_repo(req->srv->store, req->repo, true, &repo, &s) != BERTH_OK) {
        oci_fail(req, &s);
        return false;
    }
    enum berth_err rc = upload_create(req->srv->store, repo.id, alg, uuid);
    if (rc != BERTH_OK) {
        upload_fail(req, rc);
        return false;
    }
    if (repo_id != NULL) {
        *repo_id = repo.id;
    }
    return true;
}

void oci_upload_start(struct request *req)
{
    if (!oci_method_is(req, "POST")) {
        oci_method_not_allowed(req, "POST");
        return;
    }
    if (!oci_replication_repo(req)) {
        return;
    }
    struct store *st = req->srv->store;
    const char *mount = http_query(req, "mount");
    if (mount != NULL) {
        struct digest d;
        const char *from = http_query(req, "from");
        if (digest_parse(mount, &d) != BERTH_OK) {
            oci_error(req, 400, "DIGEST_INVALID", "invalid or unsupported digest", NULL);
            return;
        }
        if (from != NULL && !names_repo_valid(from)) {
            oci_error(req, 400, "NAME_INVALID", "invalid repository name in from", NULL);
            return;
        }
        struct meta_blob blob;
        struct registry_status s;
        char found[NAMES_REPO_MAX + 1];
        const char *source = NULL;
        bool mountable = false;
        /* Only from a repository the caller may pull from. */
        enum berth_err rc =
            oci_auth_mount_source(req, from, &d, found, sizeof(found), &mountable, &source);
        if (rc != BERTH_OK) {
            /* whether the caller may pull the source is unknown: not a
             * refusal (a normal upload would hide the failure) */
            oci_server_error(req, rc, "mount_source_check_failed");
            return;
        }
        if (mountable) {
            if (registry_blob_mount(st, req->repo, &d, source, &blob, &s) == BERTH_OK) {
                send_created_blob(req, d.str);
                return;
            }
            if (s.reason != REG_BLOB_UNKNOWN) {
                oci_fail(req, &s);
                return;
            }
        }
        /* not mountable: fall back to a normal session */
    }

    enum digest_alg alg = DIGEST_SHA256;
    const char *alg_name = http_query(req, "digest-algorithm");
    if (alg_name != NULL) {
        alg = digest_alg_from_name(alg_name);
        if (alg == DIGEST_NONE) {
            oci_error(req, 400, "DIGEST_INVALID", "unsupported digest algorithm", NULL);
            return;
        }
    }
    const char *dq = http_query(req, "digest");
    char uuid[RAND_UUID_LEN + 1];
    if (dq != NULL && mount == NULL) {
        if (digest_parse(dq, &req->digest) != BERTH_OK) {
            oci_error(req, 400, "DIGEST_INVALID", "invalid or unsupported digest", NULL);
            return;
        }
        req->has_digest = true;
        if (http_has_body(req) || strcmp(req->digest.str, EMPTY_SHA256) == 0) {
            /* single-POST monolithic upload */
            int64_t repo_id;
            if (!open_session(req, req->digest.alg, uuid, &repo_id)) {
                return;
            }
            enum berth_err rc = upload_acquire(st, uuid, repo_id, &req->upload);
            if (rc != BERTH_OK) {
                upload_fail(req, rc);
                return;
            }
            str_copy(req->ref, sizeof(req->ref), uuid);
            start_append(req, finish_done);
            return;
        }
        alg = req->digest.alg;
    }
    if (!open_session(req, alg, uuid, NULL)) {
        return;
    }
    send_session(req, 202, uuid, 0);
}
