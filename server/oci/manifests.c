/*
 * OCI manifest endpoints: GET/HEAD by tag or digest (stored bytes, stored
 * Content-Type, lenient about Accept), PUT (bounded body, then the shared
 * registry rules), DELETE of tags and manifests. Pool threads.
 */
#include "oci_int.h"

#include <stdio.h>
#include <string.h>

#include "common/fileio.h"
#include "storage/blob/blob.h"
#include "common/log.h"
#include "storage/store/store.h"
#include "common/str.h"
#include "common/timeutil.h"
#include "storage/registry/archive.h"
#include "server/metrics/metrics.h"
#include "storage/upstream/cache.h"

/* Most ?tag= parameters accepted on one PUT. */
#define MAX_TAG_PARAMS 100

static void manifest_get(struct request *req)
{
    struct store *st = req->srv->store;
    struct meta_manifest mf;
    struct registry_status s;
    /* a repository under a pull-through cache rule: fetched or revalidated
     * first (nothing happens for other repositories) */
    char err[AUTHZ_DENIED_MESSAGE_MAX];
    struct oci_import_check import = {req, false};
    struct upstream_caller caller = oci_upstream_caller(&import);
    enum berth_err prc =
        upstream_cache_manifest(st, req->repo, req->ref, &caller, err, sizeof(err));
    if (prc != BERTH_OK && import.refused) {
        /* ECR: a pull that would import needs ecr:BatchImportUpstreamImage */
        oci_error(req, 403, "DENIED", err, NULL);
        return;
    }
    if (prc != BERTH_OK && prc != BERTH_ENOTFOUND) {
        oci_upstream_failed(req, prc, err);
        return;
    }
    if (registry_manifest_get(st, req->repo, req->ref, &mf, &s) != BERTH_OK ||
        registry_image_check_active(&mf, time_now_ms(), &s) != BERTH_OK) {
        oci_fail(req, &s);
        return;
    }
    struct http_response *resp;
    if (req->is_head) {
        resp = http_resp_head((uint64_t)mf.size);
    } else {
        struct digest d;
        enum berth_err rc = digest_parse(mf.digest, &d);
        if (rc == BERTH_OK) {
            rc = oci_blob_body(req, &d, (uint64_t)mf.size, 0, (uint64_t)mf.size, &resp);
        }
        if (rc != BERTH_OK && rc != BERTH_ENOTFOUND && rc != BERTH_EINVAL) {
            /* could not look: not the same as "not there" */
            oci_server_error(req, rc, "manifest_open_failed");
            return;
        }
        if (rc != BERTH_OK) {
            log_error("event=manifest_file_missing digest=%s err=%s", mf.digest,
                      berth_strerror(rc));
            oci_error(req, 404, "MANIFEST_UNKNOWN", "manifest unknown to registry", NULL);
            return;
        }
        if (!req->ident.console) { /* looking at an image in the console is no pull */
            registry_manifest_note_pull(st, &mf,
                                        req->ident.anonymous ? NULL : req->ident.principal_arn);
            metrics_repository_pull(req->repo);
        }
    }
    http_add(resp, "Content-Type", mf.media_type);
    http_add(resp, "Docker-Content-Digest", mf.digest);
    char etag[DIGEST_STR_MAX + 2];
    snprintf(etag, sizeof(etag), "\"%s\"", mf.digest);
    http_add(resp, "ETag", etag);
    http_send(req, 200, resp, (uint64_t)mf.size);
}

struct tag_params {
    const char *tags[MAX_TAG_PARAMS + 1];
    size_t count;
    bool overflow;
};

static bool collect_tag(void *arg, const char *key, const char *value)
{
    struct tag_params *tp = arg;
    if (strcmp(key, "tag") != 0 || value == NULL) {
        return true;
    }
    if (tp->count == MAX_TAG_PARAMS) {
        tp->overflow = true;
        return false;
    }
    tp->tags[tp->count++] = value;
    return true;
}

static void manifest_put_done(struct request *req)
{
    struct tag_params tp = {.count = 0};
    bool by_digest = req->has_digest;
    if (!by_digest) {
        tp.tags[tp.count++] = req->ref;
    }
    http_query_each(req, collect_tag, &tp);
    if (tp.overflow) {
        oci_error(req, 414, "TAG_INVALID", "too many tag parameters", NULL);
        return;
    }
    if (!oci_replication_repo(req)) {
        return;
    }
    struct registry_put in = {
        .repo = req->repo,
        .body = buf_cstr(&req->body),
        .len = req->body.len,
        .content_type = http_header(req, "Content-Type"),
        .expected = by_digest ? &req->digest : NULL,
        .tags = tp.tags,
        .tag_count = tp.count,
        .create_repo = true,
        .scan_quota_ms = req->srv->cfg->scan_quota_seconds * 1000,
    };
    struct registry_put_result out;
    struct registry_status s;
    if (registry_manifest_put(req->srv->store, &in, &out, &s) != BERTH_OK) {
        oci_fail(req, &s);
        return;
    }
    char loc[NAMES_REPO_MAX + DIGEST_STR_MAX + 32];
    snprintf(loc, sizeof(loc), "/v2/%s/manifests/%s", req->repo, out.digest.str);
    struct http_response *resp = http_resp_empty();
    http_add(resp, "Location", loc);
    http_add(resp, "Docker-Content-Digest", out.digest.str);
    if (out.has_subject) {
        http_add(resp, "OCI-Subject", out.subject);
    }
    if (by_digest) {
        for (size_t i = 0; i < tp.count; i++) {
            http_add(resp, "OCI-Tag", tp.tags[i]);
        }
    }
    metrics_repository_push(req->repo);
    http_send(req, 201, resp, 0);
}

static void manifest_put(struct request *req)
{
    size_t max = (size_t)req->srv->cfg->storage_manifest_max_bytes;
    if (strchr(req->ref, ':') != NULL) {
        if (digest_parse(req->ref, &req->digest) != BERTH_OK) {
            oci_error(req, 400, "DIGEST_INVALID", "invalid or unsupported digest", NULL);
            return;
        }
        req->has_digest = true;
    } else if (!names_tag_valid(req->ref)) {
        oci_error(req, 400, "TAG_INVALID", "invalid tag", NULL);
        return;
    }
    uint64_t cl;
    if (http_content_length(req, &cl) && cl > max) {
        oci_error(req, 413, "SIZE_INVALID", "manifest is larger than the limit", NULL);
        return;
    }
    if (!http_has_body(req)) {
        manifest_put_done(req);
        return;
    }
    /* an anonymous caller's body counts against the budget of
     * unauthenticated bodies */
    if (http_buffer_body(req, max, req->ident.anonymous)) {
        req->on_done = manifest_put_done;
    }
}

static void manifest_delete(struct request *req)
{
    if (!req->srv->cfg->storage_delete_enabled) {
        oci_error(req, 405, "UNSUPPORTED", "deletes are disabled on this registry", NULL);
        return;
    }
    struct registry_status s;
    /* deleting what an index lists would leave the index dangling: refused
     * as ECR's BatchDeleteImage does, unless configured as the spec allows */
    bool refuse = !req->srv->cfg->storage_delete_referenced;
    if (registry_manifest_delete(req->srv->store, req->repo, req->ref, refuse, &s) != BERTH_OK) {
        oci_fail(req, &s);
        return;
    }
    http_send(req, 202, http_resp_empty(), 0);
}

void oci_manifest(struct request *req)
{
    if (oci_method_is(req, "GET") || req->is_head) {
        manifest_get(req);
    } else if (oci_method_is(req, "PUT")) {
        manifest_put(req);
    } else if (oci_method_is(req, "DELETE")) {
        manifest_delete(req);
    } else {
        oci_method_not_allowed(req, "GET, HEAD, PUT, DELETE");
    }
}
