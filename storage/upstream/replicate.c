/* Replication's copies to peer registries; see replicate.h. */
#include "storage/upstream/replicate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/str.h"
#include "common/timeutil.h"
#include "storage/blob/blob.h"
#include "storage/registry/registry.h"
#include "storage/spec/digest.h"
#include "storage/spec/manifest.h"
#include "storage/store/store.h"
#include "storage/upstream/cache.h"
#include "storage/upstream/secrets.h"

/* How deep subjects, children and referrers may nest in one copy. */
#define COPY_DEPTH_MAX 8
/* Referrers of a newly copied image copied with it, and tags put. */
#define REFERRERS_MAX 100
#define TAGS_MAX 1000

/* failureCode of a FAILED copy (berth's own: ECR does not document its
 * values). */
#define FAIL_NO_PEER "PEER_NOT_CONFIGURED"
#define FAIL_DENIED "ACCESS_DENIED"
#define FAIL_NO_REPO "REPOSITORY_NOT_FOUND"
#define FAIL_REFUSED "IMAGE_REFUSED"
#define FAIL_SOURCE "SOURCE_IMAGE_INCOMPLETE"
#define FAIL_SECRET "CREDENTIALS_UNAVAILABLE"
/* recorded on a copy that will be tried again (also once it shows FAILED
 * for failing too long) */
#define RETRY_UNREACHABLE META_REPL_RETRIED_CODE

enum berth_err upstream_peers_parse(json_t *peers, struct upstream_peer **out, size_t *count,
                                    char *err, size_t cap)
{
    *out = NULL;
    *count = 0;
    if (peers == NULL || json_is_null(peers)) {
        return BERTH_OK;
    }
    if (!json_is_array(peers)) {
        snprintf(err, cap, "replication.peers must be an array");
        return BERTH_EINVAL;
    }
    size_t n = json_array_size(peers);
    struct upstream_peer *list = n > 0 ? calloc(n, sizeof(*list)) : NULL;
    if (n > 0 && list == NULL) {
        return BERTH_ENOMEM;
    }
    size_t i;
    json_t *p;
    json_array_foreach(peers, i, p)
    {
        const char *region = json_string_value(json_object_get(p, "region"));
        const char *id = json_string_value(json_object_get(p, "registry_id"));
        const char *url = json_string_value(json_object_get(p, "url"));
        json_t *secret = json_object_get(p, "secret");
        struct upstream_peer *pe = &list[i];
        if (!json_is_object(p) || region == NULL || id == NULL || url == NULL ||
            (secret != NULL && !json_is_string(secret) && !json_is_null(secret))) {
            snprintf(err, cap,
                     "replication.peers[%zu] must be {\"region\", \"registry_id\", \"url\", "
                     "\"secret\" (optional)} with string values",
                     i);
            free(list);
            return BERTH_EINVAL;
        }
        bool id_ok = strlen(id) == META_REPL_REGISTRY_ID_MAX;
        for (const char *c = id; id_ok && *c != '\0'; c++) {
            id_ok = *c >= '0' && *c <= '9';
        }
        bool region_ok = strlen(region) >= 2 && strlen(region) <= META_REPL_REGION_MAX;
        for (const char *c = region; region_ok && *c != '\0'; c++) {
            region_ok = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-';
        }
        if (!id_ok || !region_ok) {
            snprintf(err, cap,
                     "replication.peers[%zu]: region must be [0-9a-z-]{2,25} and registry_id "
                     "12 digits",
                     i);
            free(list);
            return BERTH_EINVAL;
        }
        if (!upstream_url_normalize(url, pe->url, sizeof(pe->url))) {
            snprintf(err, cap,
                     "replication.peers[%zu]: url must be http(s)://host[:port] or host[:port]", i);
            free(list);
            return BERTH_EINVAL;
        }
        const char *sv = json_string_value(secret);
        if (sv != NULL && sv[0] != '\0' &&
            !upstream_secret_name(sv, pe->secret, sizeof(pe->secret))) {
            snprintf(err, cap, "replication.peers[%zu]: secret is not a valid secret name or ARN",
                     i);
            free(list);
            return BERTH_EINVAL;
        }
        str_copy(pe->region, sizeof(pe->region), region);
        str_copy(pe->registry_id, sizeof(pe->registry_id), id);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(list[j].region, region) == 0 && strcmp(list[j].registry_id, id) == 0) {
                snprintf(err, cap, "replication.peers[%zu]: %s/%s is listed twice", i, region, id);
                free(list);
                return BERTH_EINVAL;
            }
        }
    }
    *out = list;
    *count = n;
    return BERTH_OK;
}

int64_t upstream_repl_backoff_ms(const struct upstream_repl_options *opt, int64_t attempts)
{
    int64_t wait = opt->retry_initial_ms;
    for (int64_t i = 1; i < attempts && wait < opt->retry_max_ms; i++) {
        wait *= 2;
    }
    return wait < opt->retry_max_ms ? wait : opt->retry_max_ms;
}

/* ---- one copy ---- */

struct copy {
    struct store *st;
    struct meta *m;
    struct upstream_client *c;
    const char *repo;
    int64_t repo_id;
    const atomic_bool *cancel;
    /* why the copy failed, and whether trying again may help */
    const char *code;
    char err[512];
    int64_t blobs_sent;
    int64_t blobs_mounted;
    int64_t blobs_skipped;
    int64_t manifests_put;
};

/* A failure of the destination, classified: FAILED (code) or tried again. */
static enum berth_err dest_failed(struct copy *cp, enum berth_err rc)
{
    switch (rc) {
    case BERTH_EDENIED:
        cp->code = FAIL_DENIED;
        break;
    case BERTH_ENOTFOUND:
        cp->code = FAIL_NO_REPO;
        break;
    case BERTH_EINVAL:
    case BERTH_ETOOBIG:
        cp->code = FAIL_REFUSED;
        break;
    default:
        cp->code = NULL; /* unreachable, 5xx, 429: again later */
        break;
    }
    return rc;
}

/* A problem on berth's side: a source that lacks what it references is
 * FAILED; anything else is tried again. */
static enum berth_err source_failed(struct copy *cp, enum berth_err rc, const char *what,
                                    const char *digest)
{
    snprintf(cp->err, sizeof(cp->err), "%s %s: %s", what, digest, berth_strerror(rc));
    cp->code = rc == BERTH_ENOTFOUND ? FAIL_SOURCE : NULL;
    return rc;
}

struct names {
    char **v;
    size_t count;
    size_t max;
    bool out_of_memory;
};

static int add_name(void *arg, const char *name)
{
    struct names *n = arg;
    if (n->count >= n->max) {
        return 1;
    }
    char **grown = realloc(n->v, (n->count + 1) * sizeof(*grown));
    char *copy = grown != NULL ? strdup(name) : NULL;
    if (grown != NULL) {
        n->v = grown;
    }
    if (copy == NULL) {
        n->out_of_memory = true;
        return 1;
    }
    n->v[n->count++] = copy;
    return 0;
}

static void names_free(struct names *n)
{
    for (size_t i = 0; i < n->count; i++) {
        free(n->v[i]);
    }
    free(n->v);
}

static int add_referrer(void *arg, const struct meta_manifest *mf, const char *annotations)
{
    (void)annotations;
    return add_name(arg, mf->digest);
}

/* A blob the destination lacks: mounted from another repository when it
 * can, else uploaded from the store. */
static enum berth_err copy_blob(struct copy *cp, const struct digest *d)
{
    bool exists = false;
    enum berth_err rc =
        upstream_blob_exists(cp->c, cp->repo, d->str, &exists, cp->err, sizeof(cp->err));
    if (rc != BERTH_OK) {
        return dest_failed(cp, rc);
    }
    if (exists) {
        cp->blobs_skipped++;
        return BERTH_OK;
    }
    /* another repository of this registry with the blob: the destination
     * may hold it there too, if it is replicated */
    struct names other = {.max = 2};
    (void)meta_blob_repos(cp->m, d->str, 2, add_name, &other);
    const char *from = NULL;
    for (size_t i = 0; i < other.count && from == NULL; i++) {
        if (strcmp(other.v[i], cp->repo) != 0) {
            from = other.v[i];
        }
    }
    int fd = -1;
    uint64_t size = 0;
    rc = blob_open(store_blobs(cp->st), d, &fd, &size);
    if (rc != BERTH_OK) {
        names_free(&other);
        return source_failed(cp, rc, "blob", d->str);
    }
    bool mounted = false;
    rc = upstream_blob_push(cp->c, cp->repo, d->str, from, fd, size, &mounted, cp->err,
                            sizeof(cp->err));
    close(fd);
    names_free(&other);
    if (rc != BERTH_OK) {
        return dest_failed(cp, rc);
    }
    if (mounted) {
        cp->blobs_mounted++;
    } else {
        cp->blobs_sent++;
    }
    return BERTH_OK;
}

static enum berth_err copy_manifest(struct copy *cp, const char *digest, const struct names *tags,
                                    int depth);

/* What the manifest references, before it: blobs, children, subject. */
static enum berth_err copy_references(struct copy *cp, const struct manifest_info *info, int depth)
{
    enum berth_err rc = BERTH_OK;
    if (info->has_subject) {
        rc = copy_manifest(cp, info->subject.digest.str, NULL, depth + 1);
    }
    if (rc == BERTH_OK && info->has_config && !info->is_index) {
        rc = copy_blob(cp, &info->config.digest);
    }
    for (size_t i = 0; rc == BERTH_OK && i < info->ref_count; i++) {
        const struct manifest_desc *ref = &info->refs[i];
        if (info->is_index) {
            rc = copy_manifest(cp, ref->digest.str, NULL, depth + 1);
        } else if (!ref->non_distributable) {
            rc = copy_blob(cp, &ref->digest);
        }
    }
    return rc;
}

/* Copy manifest digest of the repository (with what it references) unless
 * the destination has it, then point each of tags (NULL: none) at it. A
 * newly copied manifest's referrers follow it. */
static enum berth_err copy_manifest(struct copy *cp, const char *digest, const struct names *tags,
                                    int depth)
{
    if (depth > COPY_DEPTH_MAX) {
        snprintf(cp->err, sizeof(cp->err), "subjects, children and referrers nest too deeply");
        cp->code = FAIL_REFUSED;
        return BERTH_EINVAL;
    }
    if (cp->cancel != NULL && atomic_load(cp->cancel)) {
        snprintf(cp->err, sizeof(cp->err), "stopping");
        cp->code = NULL;
        return BERTH_EIO;
    }
    struct meta_manifest mf;
    struct registry_status s;
    enum berth_err rc = registry_manifest_get(cp->st, cp->repo, digest, &mf, &s);
    if (rc != BERTH_OK) {
        return source_failed(cp, rc, "manifest", digest);
    }
    struct upstream_manifest have;
    memset(&have, 0, sizeof(have));
    rc = upstream_get_manifest(cp->c, cp->repo, digest, true, 0, &have, cp->err, sizeof(cp->err));
    upstream_manifest_fini(&have);
    bool exists = rc == BERTH_OK;
    if (rc != BERTH_OK && rc != BERTH_ENOTFOUND) {
        return dest_failed(cp, rc);
    }
    size_t tag_count = tags != NULL ? tags->count : 0;
    if (exists && tag_count == 0) {
        return BERTH_OK;
    }
    struct digest d;
    char *body = NULL;
    size_t len = 0;
    struct manifest_info *info = NULL;
    rc = digest_parse(digest, &d);
    if (rc == BERTH_OK) {
        rc = blob_read_all(store_blobs(cp->st), &d, store_options(cp->st)->manifest_max, &body,
                           &len);
    }
    if (rc != BERTH_OK) {
        return source_failed(cp, rc, "manifest", digest);
    }
    char why[256];
    rc = manifest_parse(body, len, mf.media_type, &info, why, sizeof(why));
    if (rc != BERTH_OK) {
        free(body);
        snprintf(cp->err, sizeof(cp->err), "manifest %s: %s", digest, why);
        cp->code = FAIL_REFUSED;
        return rc;
    }
    if (!exists) {
        rc = copy_references(cp, info, depth);
    }
    /* by digest when untagged, else by each tag (the first PUT stores it) */
    for (size_t i = 0; rc == BERTH_OK && i < (tag_count > 0 ? tag_count : 1); i++) {
        rc = upstream_put_manifest(cp->c, cp->repo, tag_count > 0 ? tags->v[i] : digest,
                                   mf.media_type, body, len, cp->err, sizeof(cp->err));
        if (rc != BERTH_OK) {
            dest_failed(cp, rc);
        } else {
            cp->manifests_put++;
        }
    }
    manifest_info_free(info);
    free(body);
    if (rc != BERTH_OK || exists) {
        return rc;
    }
    /* referrers (signatures, SBOMs) go with their subject */
    struct names refs = {.max = REFERRERS_MAX};
    rc = meta_referrers(cp->m, cp->repo_id, digest, NULL, add_referrer, &refs);
    if (rc != BERTH_OK || refs.out_of_memory) {
        names_free(&refs);
        return source_failed(cp, rc != BERTH_OK ? rc : BERTH_ENOMEM, "referrers of", digest);
    }
    for (size_t i = 0; rc == BERTH_OK && i < refs.count; i++) {
        rc = copy_manifest(cp, refs.v[i], NULL, depth + 1);
    }
    names_free(&refs);
    return rc;
}

static const struct upstream_peer *find_peer(const struct upstream_repl_options *opt,
                                             const struct meta_repl_item *it)
{
    for (size_t i = 0; i < opt->peer_count; i++) {
        if (strcmp(opt->peers[i].region, it->region) == 0 &&
            strcmp(opt->peers[i].registry_id, it->registry_id) == 0) {
            return &opt->peers[i];
        }
    }
    return NULL;
}

/* Copy one queued image; cp->code/err say why not. */
static enum berth_err copy_item(struct copy *cp, const struct upstream_repl_options *opt,
                                const struct meta_repl_item *it)
{
    const struct upstream_peer *peer = find_peer(opt, it);
    if (peer == NULL) {
        snprintf(cp->err, sizeof(cp->err), "replication.peers maps no registry to %s/%s",
                 it->region, it->registry_id);
        cp->code = FAIL_NO_PEER;
        return BERTH_ENOTFOUND;
    }
    enum berth_err rc = upstream_secret_client(cp->m, peer->url, peer->secret, opt->timeout_ms,
                                               &cp->c, cp->err, sizeof(cp->err));
    if (rc != BERTH_OK) {
        cp->code = rc == BERTH_ENOMEM ? NULL : FAIL_SECRET;
        return rc;
    }
    upstream_client_set_role(cp->c, "replication");
    if (opt->source != NULL) {
        (void)upstream_client_set_header(cp->c, UPSTREAM_REPLICATION_HEADER, opt->source);
    }
    if (opt->cancel != NULL) {
        upstream_client_set_cancel(cp->c, opt->cancel);
    }
    struct names tags = {.max = TAGS_MAX};
    rc = meta_manifest_tags(cp->m, it->manifest_id, add_name, &tags);
    if (rc == BERTH_OK && tags.out_of_memory) {
        rc = BERTH_ENOMEM;
    }
    if (rc != BERTH_OK) {
        names_free(&tags);
        return source_failed(cp, rc, "tags of", it->digest);
    }
    rc = copy_manifest(cp, it->digest, &tags, 0);
    names_free(&tags);
    return rc;
}

static enum berth_err record(struct meta *m, const struct upstream_repl_options *opt,
                             const struct meta_repl_item *it, struct copy *cp, enum berth_err rc,
                             struct upstream_repl_totals *t)
{
    int64_t now = time_now_ms();
    const char *status = "COMPLETE";
    const char *code = NULL;
    int64_t next_at = now;
    bool gave_up = false; /* failing too long: FAILED, still tried */
    char reason[sizeof(cp->err) + 160];
    str_copy(reason, sizeof(reason), cp->err);
    if (rc != BERTH_OK && cp->code != NULL) {
        status = "FAILED";
        code = cp->code;
    } else if (rc != BERTH_OK) {
        status = "IN_PROGRESS";
        code = RETRY_UNREACHABLE;
        next_at = now + upstream_repl_backoff_ms(opt, it->attempts + 1);
        int64_t failing = now - it->queued_at;
        if (opt->failed_after_ms > 0 && failing >= opt->failed_after_ms) {
            gave_up = true;
            status = "FAILED";
            snprintf(reason, sizeof(reason),
                     "the destination has been unreachable for %lld s (%lld tries; tried again "
                     "every %lld ms): %s",
                     (long long)(failing / 1000), (long long)it->attempts + 1,
                     (long long)opt->retry_max_ms, cp->err);
        }
    }
    bool applied = false;
    enum berth_err db = meta_repl_finish(m, it, status, code, rc != BERTH_OK ? reason : NULL,
                                         next_at, now, &applied);
    if (db == BERTH_OK && rc != BERTH_OK && cp->code == NULL) {
        /* the destination is down for now: its other copies wait as long */
        db = meta_repl_defer(m, it->region, it->registry_id, next_at, now);
    }
    char v[600];
    if (rc == BERTH_OK) {
        t->complete++;
        log_info("event=replication_copied repo=%s digest=%s destination=%s/%s manifests=%lld "
                 "blobs_sent=%lld blobs_mounted=%lld blobs_present=%lld requeued=%d",
                 it->repo, it->digest, it->region, it->registry_id, (long long)cp->manifests_put,
                 (long long)cp->blobs_sent, (long long)cp->blobs_mounted,
                 (long long)cp->blobs_skipped, !applied);
    } else if (cp->code != NULL || gave_up) {
        t->failed++;
        log_warn("event=replication_failed repo=%s digest=%s destination=%s/%s code=%s "
                 "retried=%s msg=%s",
                 it->repo, it->digest, it->region, it->registry_id, code, gave_up ? "yes" : "no",
                 log_value(reason, v, sizeof(v)));
    } else {
        t->retrying++;
        log_warn("event=replication_retry repo=%s digest=%s destination=%s/%s attempts=%lld "
                 "retry_in_ms=%lld msg=%s",
                 it->repo, it->digest, it->region, it->registry_id, (long long)it->attempts + 1,
                 (long long)(next_at - now), log_value(cp->err, v, sizeof(v)));
    }
    return db;
}

enum berth_err upstream_repl_run(struct store *st, const struct upstream_repl_options *opt,
                                 int64_t *next_at, struct upstream_repl_totals *totals)
{
    *next_at = 0;
    struct meta *m;
    enum berth_err got = store_meta_get(st, &m);
    if (got != BERTH_OK) {
        return got;
    }
    for (;;) {
        if (opt->cancel != NULL && atomic_load(opt->cancel)) {
            return BERTH_OK;
        }
        struct meta_repl_item it;
        bool found = false;
        int64_t later = 0;
        int64_t now = time_now_ms();
        enum berth_err rc = opt->holder != NULL
                                ? meta_repl_claim(m, now, opt->filter, opt->holder,
                                                  now + opt->claim_ms, &it, &found, &later)
                                : meta_repl_next(m, now, opt->filter, &it, &found, &later);
        if (rc != BERTH_OK) {
            return rc;
        }
        if (!found) {
            *next_at = later;
            return BERTH_OK;
        }
        struct meta_repo repo;
        rc = meta_repo_get(m, it.repo, &repo);
        if (rc != BERTH_OK && rc != BERTH_ENOTFOUND) {
            return rc;
        }
        struct copy cp = {
            .st = st, .m = m, .repo = it.repo, .repo_id = repo.id, .cancel = opt->cancel};
        rc = rc == BERTH_OK ? copy_item(&cp, opt, &it)
                            : source_failed(&cp, rc, "repository of", it.digest);
        upstream_client_free(cp.c);
        if (opt->cancel != NULL && atomic_load(opt->cancel) && rc != BERTH_OK) {
            /* stopping: the copy stays due as it was */
            if (opt->holder != NULL) {
                (void)meta_repl_unclaim(m, &it, opt->holder);
            }
            return BERTH_OK;
        }
        rc = record(m, opt, &it, &cp, rc, totals);
        if (rc == BERTH_OK && opt->holder != NULL) {
            rc = meta_repl_unclaim(m, &it, opt->holder);
        }
        if (rc != BERTH_OK) {
            return rc; /* a claim left expires */
        }
    }
}
