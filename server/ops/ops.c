/*
 * Health, readiness and metrics over HTTP (see ops.h). Each answer is
 * computed on the request's thread from a few cheap reads.
 */
#include "server/ops/ops.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/statvfs.h>

#include "common/base64.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/str.h"
#include "server/metrics/metrics.h"
#include "storage/blob/blob.h"
#include "storage/meta/meta_scan.h"
#include "storage/store/store.h"

/* The longest Basic credential accepted (base64 of "<akid>:<secret>"). */
#define OPS_BASIC_B64_MAX 512
/* A scrape's body is bounded: series tables are bounded too. */
#define OPS_METRICS_MAX (8u << 20)

static const char PATH_HEALTH[] = "/healthz";
static const char PATH_READY[] = "/readyz";
static const char PATH_METRICS[] = "/metrics";

static void send_text(struct request *req, unsigned status, const char *text,
                      const char *content_type)
{
    size_t len = strlen(text);
    struct http_response *resp = http_resp_bytes(text, len);
    http_add(resp, "Content-Type", content_type ? content_type : "text/plain; charset=utf-8");
    http_add(resp, "Cache-Control", "no-store");
    http_send(req, status, resp, len);
}

static void ops_error(struct request *req, unsigned status, const char *code, const char *message)
{
    (void)code;
    char text[320];
    snprintf(text, sizeof(text), "%s\n", message);
    send_text(req, status, text, NULL);
}

/* The data disk's state for /readyz: "full" (under the 1 MiB the store
 * counts as full, whatever storage.min_free_bytes says), "low" (under
 * storage.min_free_bytes) or "ok"; "unknown" when it cannot be read. */
static const char *disk_state(struct server *srv, unsigned long long *free_bytes)
{
    struct statvfs vfs;
    *free_bytes = 0;
    if (statvfs(srv->cfg->root, &vfs) != 0) {
        return "unknown";
    }
    *free_bytes = (unsigned long long)vfs.f_bavail * (unsigned long long)vfs.f_frsize;
    uint64_t avail = 0;
    if (srv->store != NULL && store_disk_full(srv->store, &avail)) {
        *free_bytes = avail;
        return "full";
    }
    if (*free_bytes < (unsigned long long)srv->cfg->storage_min_free_bytes) {
        return "low";
    }
    return "ok";
}

static void handle_ready(struct request *req)
{
    struct server *srv = req->srv;
    char text[640];
    bool ok = true;
    struct meta *m = srv->store ? store_meta(srv->store) : NULL;
    bool store_ok = m != NULL;
    bool db_answers = store_ok && meta_ping(m) == BERTH_OK;
    /* a failed sync of the database's log: every commit fails until a
     * restart (storage/meta), so nothing can be pushed */
    bool db_durable = !store_ok || !meta_durability_lost(m);
    bool db_ok = db_answers && db_durable;
    const char *db = db_ok         ? "ok"
                     : !db_durable ? "write-ahead log sync failed (commits refused until restart)"
                                   : "not answering";
    unsigned long long free_bytes;
    const char *disk = disk_state(srv, &free_bytes);
    bool disk_ok = strcmp(disk, "ok") == 0;
    /* the space garbage collection needs on a full disk (storage/store) */
    bool reserve = srv->store != NULL && store_reserve_held(srv->store);
    bool draining = atomic_load(&srv->draining);
    /* the blob backend (S3: a HEAD of the bucket, reused a few seconds) */
    enum berth_err blobs_rc = store_ok ? blob_ping(store_blobs(srv->store)) : BERTH_EIO;
    bool blobs_ok = blobs_rc == BERTH_OK;
    const char *blobs = blobs_ok                         ? "ok"
                        : blobs_rc == BERTH_EUNAVAILABLE ? "unreachable"
                                                         : "refusing";
    ok = store_ok && db_ok && disk_ok && blobs_ok && !draining;
    snprintf(text, sizeof(text),
             "%s\nstore: %s\ndatabase: %s\nblob storage: %s\n"
             "disk: %s (%llu bytes free, %lld required)\n"
             "disk reserve: %s\ndraining: %s\n",
             ok ? "ready" : "not ready", store_ok ? "ok" : "unavailable", db, blobs, disk,
             free_bytes, (long long)srv->cfg->storage_min_free_bytes,
             reserve ? "held" : "missing (no room to set it aside, or given to garbage collection)",
             draining ? "yes" : "no");
    if (!ok) {
        log_warn("event=not_ready store=%s database=%s blobs=%s disk=%s free_bytes=%llu "
                 "reserve=%s draining=%s",
                 store_ok ? "ok" : "unavailable",
                 db_ok         ? "ok"
                 : !db_durable ? "sync_failed"
                               : "down",
                 blobs, disk, free_bytes, reserve ? "held" : "missing", draining ? "yes" : "no");
    }
    send_text(req, ok ? 200 : 503, text, NULL);
}

/* With metrics.require_auth: an access key in HTTP Basic. Answers and
 * returns false when it is missing or wrong. */
static bool metrics_authorized(struct request *req, struct meta *m)
{
    if (!req->srv->cfg->metrics_require_auth) {
        return true;
    }
    const char *why = "missing_credentials";
    const char *h = http_header(req, "Authorization");
    uint8_t raw[OPS_BASIC_B64_MAX / 4 * 3 + 1];
    size_t raw_len = 0;
    bool ok = false;
    enum berth_err rc = BERTH_OK;
    if (h != NULL) {
        while (*h == ' ') {
            h++;
        }
        why = "malformed_basic";
        if (strncasecmp(h, "Basic ", 6) == 0) {
            const char *b64 = h + 6;
            size_t len = strlen(b64);
            if (len > 0 && len <= OPS_BASIC_B64_MAX &&
                base64_decode(b64, len, raw, &raw_len) == BERTH_OK &&
                memchr(raw, '\0', raw_len) == NULL) {
                raw[raw_len] = '\0';
                char *colon = strchr((char *)raw, ':');
                if (colon != NULL) {
                    *colon = '\0';
                    const char *akid = (const char *)raw, *secret = colon + 1;
                    struct auth_lookup lk;
                    why = "unknown_key";
                    if (auth_akid_valid(akid) &&
                        (rc = auth_lookup(req->srv->auth, m, akid, NULL, &lk)) == BERTH_OK) {
                        if (lk.key_found) {
                            ok = str_ct_equal(secret, strlen(secret), lk.secret, lk.secret_len);
                            why = "bad_secret";
                        }
                        auth_lookup_fini(req->srv->auth, &lk);
                    }
                }
            }
        }
    }
    auth_wipe(raw, sizeof(raw));
    if (ok) {
        return true;
    }
    if (rc != BERTH_OK) {
        /* the key could not be looked up: no verdict on the credentials */
        log_error("event=auth_lookup_failed err=%s path=/metrics", berth_strerror(rc));
        static const char text[] = "cannot check the credentials now; retry later\n";
        struct http_response *resp = http_resp_bytes(text, sizeof(text) - 1);
        http_add(resp, "Content-Type", "text/plain; charset=utf-8");
        http_add(resp, "Retry-After", "1");
        http_send(req, 503, resp, sizeof(text) - 1);
        return false;
    }
    metrics_auth_failure(why);
    log_info("event=auth_refused reason=%s path=/metrics", why);
    struct http_response *resp = http_resp_bytes("authentication required\n", 24);
    http_add(resp, "Content-Type", "text/plain; charset=utf-8");
    http_add(resp, "WWW-Authenticate", "Basic realm=\"berth metrics\"");
    http_send(req, 401, resp, 24);
    return false;
}

static void handle_metrics(struct request *req)
{
    struct meta *m = store_meta(req->srv->store);
    if (m == NULL) {
        ops_error(req, 503, "UNAVAILABLE", "database unavailable");
        return;
    }
    if (!metrics_authorized(req, m)) {
        return;
    }
    struct metrics_gauges g = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
    uint64_t tail_hits = 0, tail_misses = 0;
    if (blob_tail_cache_stats(store_blobs(req->srv->store), &tail_hits, &tail_misses)) {
        g.tail_hits = (int64_t)tail_hits;
        g.tail_misses = (int64_t)tail_misses;
    }
    struct meta_totals t;
    if (meta_totals_get(m, &t) == BERTH_OK) {
        g.blobs = t.blobs;
        g.blob_bytes = t.blob_bytes;
        g.upload_sessions = t.upload_sessions;
        g.archived_blobs = t.archived_blobs;
        g.archived_bytes = t.archived_bytes;
        g.archived_stored = t.archived_stored;
    }
    int64_t waiting = 0, total = 0;
    if (meta_scan_jobs_count(m, &waiting, &total) == BERTH_OK) {
        g.scan_waiting = waiting;
        g.scan_running = total >= waiting ? total - waiting : 0;
    }
    int64_t in_progress = 0, failed = 0;
    if (meta_repl_count(m, &in_progress, &failed) == BERTH_OK) {
        g.repl_in_progress = in_progress;
        g.repl_failed = failed;
    }
    struct buf out;
    buf_init(&out, OPS_METRICS_MAX);
    enum berth_err rc = metrics_render(&out, &g);
    if (rc != BERTH_OK) {
        buf_fini(&out);
        ops_error(req, 500, "UNKNOWN", "cannot render the metrics");
        return;
    }
    send_text(req, 200, buf_cstr(&out), "text/plain; version=0.0.4; charset=utf-8");
    buf_fini(&out);
}

/* The path this API serves, as a static string (the route label), or NULL. */
static const char *ops_path(struct request *req)
{
    if (strcmp(req->path, PATH_HEALTH) == 0) {
        return PATH_HEALTH;
    }
    if (strcmp(req->path, PATH_READY) == 0) {
        return PATH_READY;
    }
    if (req->srv->cfg->metrics_enabled && strcmp(req->path, PATH_METRICS) == 0) {
        return PATH_METRICS;
    }
    return NULL;
}

static bool ops_accepts(struct request *req)
{
    /* its paths are its own, as /v2 is the OCI API's: an X-Amz-Target
     * header does not make them the ECR API's */
    return ops_path(req) != NULL;
}

static void ops_dispatch(struct request *req)
{
    const char *path = ops_path(req);
    req->route = path;
    req->quiet = true;
    if (strcmp(req->method, "GET") != 0 && !req->is_head) {
        if (http_has_body(req)) {
            /* answered once the body is read */
            http_defer_error(req, 405, "UNSUPPORTED", "method not allowed");
            return;
        }
        struct http_response *resp = http_resp_bytes("method not allowed\n", 19);
        http_add(resp, "Content-Type", "text/plain; charset=utf-8");
        http_add(resp, "Allow", "GET, HEAD");
        http_send(req, 405, resp, 19);
        return;
    }
    if (path == PATH_HEALTH) {
        send_text(req, 200, "ok\n", NULL);
    } else if (path == PATH_READY) {
        handle_ready(req);
    } else {
        handle_metrics(req);
    }
}

const struct http_api ops_api = {
    .name = "ops",
    .accepts = ops_accepts,
    .dispatch = ops_dispatch,
    .error = ops_error,
};
