/* The pull-through cache; see cache.h. */
#include "storage/upstream/cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/log.h"
#include "common/rand.h"
#include "common/str.h"
#include "common/timeutil.h"
#include "storage/blob/blob.h"
#include "storage/spec/digest.h"
#include "storage/spec/manifest.h"
#include "storage/spec/names.h"
#include "storage/store/store.h"
#include "storage/upstream/secrets.h"

static struct upstream_options g_opt = {.tag_ttl_ms = 3600 * 1000, .timeout_ms = 30000};

void upstream_configure(const struct upstream_options *opt)
{
    g_opt = *opt;
}

/* ---- one fetch per key at a time ---- */

struct claim {
    struct claim *next;
    char key[];
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static struct claim *g_claims;

static bool held(const char *key)
{
    for (struct claim *c = g_claims; c != NULL; c = c->next) {
        if (strcmp(c->key, key) == 0) {
            return true;
        }
    }
    return false;
}

/* Take key: true when the caller now holds it (release it when done);
 * false after waiting for another holder to finish (the caller looks
 * again at what that one stored). */
/* Requests waiting for an upstream on their worker thread now. */
static atomic_int g_waiting;

/* A worker thread's caller (upstream_caller.waits) takes a waiting place
 * (g_opt.max_waiting) and is told it waits; false, with err, when none is
 * left: a slow or silent upstream holds at most that many workers, and
 * the server keeps answering everyone else. Other callers always wait. */
static bool wait_enter(const struct upstream_caller *caller, char *err, size_t cap)
{
    if (caller == NULL || caller->waits == NULL) {
        return true;
    }
    int now = atomic_fetch_add(&g_waiting, 1);
    if (g_opt.max_waiting > 0 && now >= g_opt.max_waiting) {
        atomic_fetch_sub(&g_waiting, 1);
        snprintf(err, cap, "%d requests are waiting for upstream registries already; retry",
                 g_opt.max_waiting);
        log_warn("event=pull_through_busy waiting=%d", now);
        return false;
    }
    caller->waits(caller->arg, true);
    return true;
}

static void wait_leave(const struct upstream_caller *caller)
{
    if (caller != NULL && caller->waits != NULL) {
        caller->waits(caller->arg, false);
        atomic_fetch_sub(&g_waiting, 1);
    }
}

/* The caller's may_import (none: allowed). */
static bool may_import(const struct upstream_caller *caller, char *err, size_t cap)
{
    return caller == NULL || caller->may_import == NULL ||
           caller->may_import(caller->arg, err, cap);
}

static bool claim(const char *key)
{
    bool waited = false;
    pthread_mutex_lock(&g_mu);
    while (held(key)) {
        waited = true;
        pthread_cond_wait(&g_cv, &g_mu);
    }
    if (!waited) {
        size_t n = strlen(key) + 1;
        struct claim *c = malloc(sizeof(*c) + n);
        if (c != NULL) { /* out of memory: fetch unguarded rather than fail */
            memcpy(c->key, key, n);
            c->next = g_claims;
            g_claims = c;
        }
    }
    pthread_mutex_unlock(&g_mu);
    return !waited;
}

static void release(const char *key)
{
    pthread_mutex_lock(&g_mu);
    for (struct claim **p = &g_claims; *p != NULL; p = &(*p)->next) {
        if (strcmp((*p)->key, key) == 0) {
            struct claim *c = *p;
            *p = c->next;
            free(c);
            break;
        }
    }
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
}

/* ---- rules ---- */

/* prefix without one trailing '/'; its length. */
static size_t bare_len(const char *prefix)
{
    size_t n = strlen(prefix);
    return n > 0 && prefix[n - 1] == '/' ? n - 1 : n;
}

bool upstream_rule_covers(const char *prefix, const char *upstream_prefix, const char *repo,
                          char *upstream, size_t cap)
{
    const char *rest = repo;
    if (strcmp(prefix, "ROOT") != 0) {
        size_t n = bare_len(prefix);
        if (strncmp(repo, prefix, n) != 0 || repo[n] != '/' || repo[n + 1] == '\0') {
            return false;
        }
        rest = repo + n + 1;
    }
    int w;
    if (upstream_prefix != NULL && *upstream_prefix != '\0' &&
        strcmp(upstream_prefix, "ROOT") != 0) {
        w = snprintf(upstream, cap, "%.*s/%s", (int)bare_len(upstream_prefix), upstream_prefix,
                     rest);
    } else {
        w = snprintf(upstream, cap, "%s", rest);
    }
    return w > 0 && (size_t)w < cap;
}

struct rule_ctx {
    const char *repo;
    struct upstream_rule *rule;
    char *upstream;
    size_t cap;
    bool found;
    size_t best_len;
};

static int rule_row(void *arg, const struct meta_prefix_doc *r)
{
    struct rule_ctx *c = arg;
    json_t *doc = json_loads(r->body, 0, NULL);
    const char *url = json_string_value(json_object_get(doc, "upstreamRegistryUrl"));
    const char *up = json_string_value(json_object_get(doc, "upstreamRepositoryPrefix"));
    const char *cred = json_string_value(json_object_get(doc, "credentialArn"));
    size_t len = strcmp(r->prefix, "ROOT") == 0 ? 0 : bare_len(r->prefix);
    char upstream[1024];
    if (url != NULL && (!c->found || len > c->best_len) &&
        upstream_rule_covers(r->prefix, up, c->repo, upstream, sizeof(upstream)) &&
        str_copy(c->upstream, c->cap, upstream) == BERTH_OK) {
        struct upstream_rule *out = c->rule;
        memset(out, 0, sizeof(*out));
        str_copy(out->prefix, sizeof(out->prefix), r->prefix);
        if (!upstream_url_normalize(url, out->url, sizeof(out->url))) {
            out->url[0] = '\0';
        }
        str_copy(out->upstream_prefix, sizeof(out->upstream_prefix), up != NULL ? up : "");
        if (cred == NULL || !upstream_secret_name(cred, out->secret, sizeof(out->secret))) {
            out->secret[0] = '\0';
        }
        c->found = out->url[0] != '\0';
        c->best_len = len;
    }
    json_decref(doc);
    return 0;
}

enum berth_err upstream_rule_for(struct meta *m, const char *repo, struct upstream_rule *rule,
                                 char *upstream, size_t cap, bool *found)
{
    struct rule_ctx c = {repo, rule, upstream, cap, false, 0};
    enum berth_err rc = meta_ptc_rule_list(m, "", -1, rule_row, &c, NULL);
    if (rc == BERTH_OK) {
        *found = c.found;
    }
    return rc;
}

enum berth_err upstream_rule_client(struct meta *m, const struct upstream_rule *rule,
                                    struct upstream_client **out, char *err, size_t cap)
{
    return upstream_secret_client(m, rule->url, rule->secret, g_opt.timeout_ms, out, err, cap);
}

enum berth_err upstream_secret_client(struct meta *m, const char *url, const char *secret,
                                      int64_t timeout_ms, struct upstream_client **out, char *err,
                                      size_t cap)
{
    char *user = NULL;
    char *pass = NULL;
    if (secret[0] != '\0') {
        if (!g_opt.has_key) {
            snprintf(err, cap, "no key to open the secret %s", secret);
            return BERTH_EINVAL;
        }
        enum berth_err rc = upstream_secret_get(m, g_opt.key, secret, &user, &pass);
        if (rc != BERTH_OK) {
            snprintf(err, cap, "the secret %s %s", secret,
                     rc == BERTH_ENOTFOUND ? "does not exist"
                     : rc == BERTH_EINVAL  ? "cannot be opened with berth's key"
                                           : "cannot be read");
            return rc;
        }
    }
    *out = upstream_client_new(url, user, pass, timeout_ms);
    if (user != NULL) {
        memset(user, 0, strlen(user));
        memset(pass, 0, strlen(pass));
    }
    free(user);
    free(pass);
    return *out != NULL ? BERTH_OK : BERTH_ENOMEM;
}

/* ---- fetching ---- */

struct fetch {
    struct store *st;
    const char *repo;     /* the local repository */
    const char *upstream; /* the upstream repository */
    struct upstream_client *client;
    const char *url; /* for log lines */
    char *err;
    size_t cap;
};

static bool is_digest_ref(const char *reference)
{
    return strchr(reference, ':') != NULL;
}

/* Fetch a manifest by tag or digest and store it (a tag pointed at it);
 * what it references is fetched when it is pulled. */
static enum berth_err fetch_manifest(struct fetch *f, const char *reference)
{
    size_t max = store_options(f->st)->manifest_max;
    struct upstream_manifest um;
    memset(&um, 0, sizeof(um));
    enum berth_err rc =
        upstream_get_manifest(f->client, f->upstream, reference, false, max, &um, f->err, f->cap);
    if (rc != BERTH_OK) {
        return rc;
    }
    /* the digest: the one asked for, else sha256 (which the upstream's
     * Docker-Content-Digest must then agree with) */
    struct digest want = {.alg = DIGEST_SHA256};
    struct digest got;
    bool by_digest = is_digest_ref(reference);
    if (by_digest && digest_parse(reference, &want) != BERTH_OK) {
        snprintf(f->err, f->cap, "%s is not a digest berth can verify", reference);
        rc = BERTH_EINVAL;
    }
    if (rc == BERTH_OK) {
        rc = digest_buffer(want.alg, um.body, um.len, &got);
    }
    if (rc == BERTH_OK && by_digest && strcmp(got.str, want.str) != 0) {
        rc = BERTH_EDIGEST;
    }
    if (rc == BERTH_OK && !by_digest && str_has_prefix(um.digest, "sha256:") &&
        strcmp(um.digest, got.str) != 0) {
        rc = BERTH_EDIGEST;
    }
    if (rc == BERTH_EDIGEST) {
        snprintf(f->err, f->cap, "the upstream's manifest %s does not match its digest", reference);
    }
    struct manifest_info *info = NULL;
    char why[256];
    if (rc == BERTH_OK) {
        rc = manifest_parse(um.body, um.len, um.content_type[0] != '\0' ? um.content_type : NULL,
                            &info, why, sizeof(why));
        if (rc == BERTH_EINVAL) {
            snprintf(f->err, f->cap, "the upstream's manifest %s is not valid: %s", reference, why);
        }
    }
    struct meta_repo repo;
    struct registry_status s;
    if (rc == BERTH_OK) {
        rc = registry_repo_for_cache(f->st, f->repo, &repo, &s);
        if (rc != BERTH_OK) {
            snprintf(f->err, f->cap, "%s", s.message);
        }
    }
    if (rc == BERTH_OK) {
        const char *tags[1] = {reference};
        struct registry_put put = {
            .repo = f->repo,
            .body = um.body,
            .len = um.len,
            .content_type = um.content_type[0] != '\0' ? um.content_type : NULL,
            .expected = &got,
            .tags = tags,
            .tag_count = by_digest ? 0 : 1,
            .create_repo = false,
            .fail_if_same = false,
            .allow_missing = true,
        };
        struct registry_put_result res;
        rc = registry_manifest_put(f->st, &put, &res, &s);
        if (rc != BERTH_OK) {
            snprintf(f->err, f->cap, "%s", s.message);
        }
    }
    if (rc == BERTH_OK && !by_digest) {
        struct meta *m = store_meta(f->st);
        if (m != NULL) {
            meta_ptc_tag_check_set(m, repo.id, reference, time_now_ms());
        }
    }
    if (rc == BERTH_OK) {
        log_info("event=pull_through_manifest repo=%s upstream=%s/%s reference=%s digest=%s",
                 f->repo, f->url, f->upstream, reference, got.str);
    }
    manifest_info_free(info);
    upstream_manifest_fini(&um);
    return rc;
}

/* The tag is stored: is it still what the upstream's tag names? Checked
 * once per TTL; the upstream failing keeps the stored one (logged). */
static enum berth_err revalidate_tag(struct fetch *f, const struct meta_manifest *mf,
                                     const char *tag)
{
    struct meta *m = store_meta(f->st);
    if (m == NULL) {
        return BERTH_OK; /* serve what is stored */
    }
    int64_t at = 0;
    int64_t now = time_now_ms();
    enum berth_err rc = meta_ptc_tag_checked(m, mf->repo_id, tag, &at);
    if (rc == BERTH_OK && now - at < g_opt.tag_ttl_ms) {
        return BERTH_OK;
    }
    struct upstream_manifest um;
    memset(&um, 0, sizeof(um));
    rc = upstream_get_manifest(f->client, f->upstream, tag, true, 0, &um, f->err, f->cap);
    if (rc == BERTH_OK && strcmp(um.digest, mf->digest) == 0) {
        meta_ptc_tag_check_set(m, mf->repo_id, tag, now);
        return BERTH_OK;
    }
    if (rc == BERTH_OK) {
        rc = fetch_manifest(f, tag);
        if (rc == BERTH_OK) {
            log_info("event=pull_through_tag_refreshed repo=%s tag=%s old=%s", f->repo, tag,
                     mf->digest);
            return BERTH_OK;
        }
    }
    log_warn("event=pull_through_stale repo=%s tag=%s digest=%s upstream=%s/%s reason=\"%s\" "
             "serving=cached",
             f->repo, tag, mf->digest, f->url, f->upstream, f->err);
    return BERTH_OK;
}

/* Open a fetch for repo: BERTH_ENOTFOUND when no rule covers it. */
static enum berth_err fetch_open(struct store *st, const char *repo, struct fetch *f,
                                 struct upstream_rule *rule, char *upstream, size_t ucap, char *err,
                                 size_t cap)
{
    memset(f, 0, sizeof(*f));
    struct meta *m = store_meta(st);
    if (m == NULL) {
        snprintf(err, cap, "no database connection");
        return BERTH_EUNAVAILABLE;
    }
    bool found = false;
    enum berth_err rc = upstream_rule_for(m, repo, rule, upstream, ucap, &found);
    if (rc != BERTH_OK) {
        snprintf(err, cap, "cannot read the pull-through cache rules");
        return rc;
    }
    if (!found) {
        return BERTH_ENOTFOUND;
    }
    f->st = st;
    f->repo = repo;
    f->upstream = upstream;
    f->url = rule->url;
    f->err = err;
    f->cap = cap;
    return BERTH_OK;
}

/* A client for f's rule, made when first needed. */
static enum berth_err fetch_client(struct fetch *f, const struct upstream_rule *rule)
{
    if (f->client != NULL) {
        return BERTH_OK;
    }
    struct meta *m;
    enum berth_err got = store_meta_get(f->st, &m);
    if (got != BERTH_OK) {
        return got;
    }
    return upstream_rule_client(m, rule, &f->client, f->err, f->cap);
}

enum berth_err upstream_cache_manifest(struct store *st, const char *repo, const char *reference,
                                       const struct upstream_caller *caller, char *err, size_t cap)
{
    struct fetch f;
    struct upstream_rule rule;
    char upstream[1024];
    err[0] = '\0';
    enum berth_err rc = fetch_open(st, repo, &f, &rule, upstream, sizeof(upstream), err, cap);
    if (rc != BERTH_OK) {
        return rc;
    }
    bool by_digest = is_digest_ref(reference);
    struct digest want;
    if (by_digest ? digest_parse(reference, &want) != BERTH_OK : !names_tag_valid(reference)) {
        /* nothing berth could store under it: the upstream is not asked
         * (the reference goes into its URL) */
        return BERTH_ENOTFOUND;
    }
    struct meta_manifest mf;
    struct registry_status s;
    if (registry_manifest_get(st, repo, reference, &mf, &s) == BERTH_OK) {
        if (by_digest) {
            return BERTH_OK; /* content never changes: never upstream again */
        }
        if (!may_import(caller, err, cap)) {
            err[0] = '\0';
            return BERTH_OK; /* the stored tag, not revalidated for this caller */
        }
        if (!wait_enter(caller, err, cap)) {
            err[0] = '\0';
            return BERTH_OK; /* the stored tag, not asked again while upstreams are slow */
        }
        rc = fetch_client(&f, &rule);
        if (rc == BERTH_OK) {
            rc = revalidate_tag(&f, &mf, reference);
            wait_leave(caller);
        } else {
            wait_leave(caller);
            log_warn("event=pull_through_stale repo=%s tag=%s reason=\"%s\" serving=cached", repo,
                     reference, err);
            rc = BERTH_OK;
        }
        upstream_client_free(f.client);
        return rc;
    }
    if (!may_import(caller, err, cap)) {
        return BERTH_EDENIED; /* the upstream is not asked */
    }
    char key[1400];
    snprintf(key, sizeof(key), "manifest:%s:%s", repo, reference);
    if (!wait_enter(caller, err, cap)) {
        return BERTH_EBUSY;
    }
    for (;;) {
        bool mine = claim(key);
        /* another request may have fetched it meanwhile */
        if (registry_manifest_get(st, repo, reference, &mf, &s) == BERTH_OK) {
            if (mine) {
                release(key);
            }
            wait_leave(caller);
            return BERTH_OK;
        }
        if (mine) {
            break;
        }
    }
    rc = fetch_client(&f, &rule);
    if (rc == BERTH_OK) {
        rc = fetch_manifest(&f, reference);
    }
    release(key);
    wait_leave(caller);
    upstream_client_free(f.client);
    if (rc != BERTH_OK && rc != BERTH_ENOTFOUND) {
        log_warn("event=pull_through_failed repo=%s reference=%s upstream=%s/%s reason=\"%s\"",
                 repo, reference, rule.url, upstream, err);
    }
    return rc;
}

/* ---- blobs, streamed while they land ---- */

/* A blob landing from the upstream into a stage, hashed as it comes,
 * which any number of requests read while it lands. The fetch thread and
 * each reader hold a reference; g_mu guards the counters, g_cv signals
 * progress. */
struct landing {
    struct landing *next;            /* in g_landings while the fetch runs */
    struct upstream_stream *readers; /* the requests reading it */
    struct digest d;
    int refs;
    uint64_t written; /* bytes in the stage */
    int64_t size;     /* the upstream's Content-Length, -1 unknown */
    bool started;     /* the upstream answered (or the fetch ended) */
    bool done;
    enum berth_err result;
    struct blob_stage *reader;
    /* the fetch thread's own */
    struct store *st;
    char repo[512];
    char upstream[1024];
    char url[UPSTREAM_URL_MAX];
    struct upstream_client *client;
    char stage[BLOB_STAGE_NAME_MAX + 1];
    struct blob_stage *writer;
    struct digest_ctx *hash;
    char err[512];
    char stop[256]; /* why on_piece stopped the fetch, "" when it did not */
};

static struct landing *g_landings;

/* A fetch looks at the data disk's free space each time it has written
 * this much more. */
#define FREE_CHECK_BYTES ((uint64_t)8 << 20)

/* One request reading a landing blob, with how to wake it. */
struct upstream_stream {
    struct upstream_stream *next; /* in its landing's readers */
    struct landing *l;
    upstream_wake_fn wake; /* set while it waits for bytes, else NULL */
    void *wake_arg;
};

/* Wake every reader waiting for bytes (with g_mu held). */
static void wake_readers(struct landing *l)
{
    for (struct upstream_stream *r = l->readers; r != NULL; r = r->next) {
        if (r->wake != NULL) {
            upstream_wake_fn wake = r->wake;
            r->wake = NULL;
            wake(r->wake_arg);
        }
    }
}
static bool g_stopping; /* upstream_stop: fetches give up */

static void stream_put(struct landing *l)
{
    pthread_mutex_lock(&g_mu);
    bool last = --l->refs == 0;
    pthread_mutex_unlock(&g_mu);
    if (last) {
        blob_stage_close(l->reader);
        blob_stage_close(l->writer);
        digest_ctx_free(l->hash);
        upstream_client_free(l->client);
        free(l);
    }
}

static void on_length(void *arg, int64_t length)
{
    struct landing *l = arg;
    pthread_mutex_lock(&g_mu);
    l->size = length;
    l->started = true;
    pthread_cond_broadcast(&g_cv);
    wake_readers(l);
    pthread_mutex_unlock(&g_mu);
}

static enum berth_err on_piece(void *arg, const void *p, size_t n)
{
    struct landing *l = arg;
    pthread_mutex_lock(&g_mu);
    bool stopping = g_stopping;
    pthread_mutex_unlock(&g_mu);
    if (stopping) {
        return BERTH_EBUSY;
    }
    /* only this thread writes: written is read here without the lock */
    uint64_t at = l->written;
    if (l->size >= 0 && at + n > (uint64_t)l->size) {
        return BERTH_EDIGEST; /* longer than it said */
    }
    uint64_t avail = 0;
    if ((at + n) / FREE_CHECK_BYTES != at / FREE_CHECK_BYTES &&
        (store_disk_full(l->st, &avail) || avail < store_options(l->st)->min_free_bytes)) {
        /* an upstream's blob (or an endless body) does not take the
         * disk's last space from pushes and the database */
        snprintf(l->stop, sizeof(l->stop),
                 "the data disk has under storage.min_free_bytes free (%llu bytes) after %llu "
                 "bytes of the upstream's blob",
                 (unsigned long long)avail, (unsigned long long)(at + n));
        return BERTH_EUNAVAILABLE;
    }
    enum berth_err rc = blob_stage_write(l->writer, at, p, n);
    if (rc == BERTH_OK) {
        rc = digest_ctx_update(l->hash, p, n);
    }
    if (rc == BERTH_OK) {
        pthread_mutex_lock(&g_mu);
        l->written = at + n;
        pthread_cond_broadcast(&g_cv);
        wake_readers(l);
        pthread_mutex_unlock(&g_mu);
    }
    return rc;
}

/* The end of a fetch: its result for the readers, and no longer one to
 * join. */
static void landing_finish(struct landing *l, enum berth_err rc)
{
    pthread_mutex_lock(&g_mu);
    l->result = rc;
    l->done = true;
    l->started = true;
    for (struct landing **p = &g_landings; *p != NULL; p = &(*p)->next) {
        if (*p == l) {
            *p = l->next;
            break;
        }
    }
    pthread_cond_broadcast(&g_cv);
    wake_readers(l);
    pthread_mutex_unlock(&g_mu);
}

/* The fetch: into the stage, verified, then published linked to the
 * repository; on any failure the stage is removed and nothing published. */
static void *land_thread(void *arg)
{
    struct landing *l = arg;
    int64_t started = time_now_ms();
    enum berth_err rc = upstream_get_blob(l->client, l->upstream, l->d.str, on_length, on_piece, l,
                                          l->err, sizeof(l->err));
    if (rc != BERTH_OK && l->stop[0] != '\0') {
        str_copy(l->err, sizeof(l->err), l->stop);
    }
    struct digest got;
    if (rc == BERTH_OK) {
        rc = digest_ctx_final(l->hash, &got);
    }
    if (rc == BERTH_OK &&
        (strcmp(got.str, l->d.str) != 0 || (l->size >= 0 && l->written != (uint64_t)l->size))) {
        snprintf(l->err, sizeof(l->err), "the upstream's blob %s does not match its digest",
                 l->d.str);
        rc = BERTH_EDIGEST;
    } else if (rc == BERTH_EDIGEST) {
        snprintf(l->err, sizeof(l->err), "the upstream's blob %s is longer than it said", l->d.str);
    }
    if (rc == BERTH_OK) {
        rc = blob_stage_sync(l->writer);
    }
    blob_stage_close(l->writer);
    l->writer = NULL;
    struct meta_blob b;
    struct registry_status s;
    if (rc == BERTH_OK) {
        rc = registry_blob_publish(l->st, l->repo, l->stage, &l->d, (int64_t)l->written, &b, &s);
        if (rc != BERTH_OK) {
            snprintf(l->err, sizeof(l->err), "%s", s.message);
        }
    }
    if (rc != BERTH_OK) {
        blob_stage_remove(store_blobs(l->st), l->stage);
        log_warn("event=pull_through_failed repo=%s digest=%s upstream=%s/%s reason=\"%s\"",
                 l->repo, l->d.str, l->url, l->upstream, l->err);
    } else {
        log_info("event=pull_through_blob repo=%s upstream=%s/%s digest=%s bytes=%llu ms=%lld",
                 l->repo, l->url, l->upstream, l->d.str, (unsigned long long)l->written,
                 (long long)(time_now_ms() - started));
    }
    landing_finish(l, rc);
    stream_put(l);
    return NULL;
}

/* A new landing for blob d of f's repository (not yet started). */
static enum berth_err landing_new(struct fetch *f, const struct digest *d, struct landing **out)
{
    struct landing *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        return BERTH_ENOMEM;
    }
    l->d = *d;
    l->size = -1;
    l->st = f->st;
    str_copy(l->repo, sizeof(l->repo), f->repo);
    str_copy(l->upstream, sizeof(l->upstream), f->upstream);
    str_copy(l->url, sizeof(l->url), f->url);
    l->client = f->client;
    f->client = NULL;
    struct blob_store *bs = store_blobs(f->st);
    char uuid[40];
    uint64_t have = 0;
    l->hash = digest_ctx_new(d->alg);
    enum berth_err rc = l->hash == NULL ? BERTH_ENOMEM : rand_uuid(uuid);
    if (rc == BERTH_OK) {
        snprintf(l->stage, sizeof(l->stage), "tmp-%s", uuid);
        rc = blob_stage_create(bs, l->stage);
        if (rc == BERTH_OK) {
            rc = blob_stage_open(bs, l->stage, &l->writer, &have);
            if (rc == BERTH_OK) {
                rc = blob_stage_open(bs, l->stage, &l->reader, &have);
            }
            if (rc != BERTH_OK) {
                blob_stage_close(l->writer);
                l->writer = NULL;
                blob_stage_remove(bs, l->stage);
            }
        }
    }
    if (rc != BERTH_OK) {
        snprintf(f->err, f->cap, "cannot stage a blob (%s)", berth_strerror(rc));
        l->refs = 1;
        stream_put(l);
        return rc;
    }
    *out = l;
    return BERTH_OK;
}

/* Drop a landing never started (its stage removed). */
static void landing_discard(struct landing *l)
{
    blob_stage_close(l->writer);
    l->writer = NULL;
    blob_stage_close(l->reader);
    l->reader = NULL;
    blob_stage_remove(store_blobs(l->st), l->stage);
    l->refs = 1;
    stream_put(l);
}

/* Fetches under way at most, in all. */
#define LANDINGS_MAX 128

/* How many fetches are under way. Under g_mu. */
static int landing_count(void)
{
    int n = 0;
    for (const struct landing *l = g_landings; l != NULL; l = l->next) {
        n++;
    }
    return n;
}

/* The fetch of d from the upstream at url under way, or NULL. A fetch
 * from another upstream is not joined: its bytes are another registry's
 * word, and a slow or hostile one must not hold this rule's pulls. Under
 * g_mu. */
static struct landing *find_landing(const struct digest *d, const char *url)
{
    struct landing *l = g_landings;
    while (l != NULL && (strcmp(l->d.str, d->str) != 0 || strcmp(l->url, url) != 0)) {
        l = l->next;
    }
    return l;
}

/*
 * A blob the store holds for other repositories is linked into f's
 * repository only when the upstream has it too: a name under the rule's
 * prefix must not read a blob of a repository the caller may not pull
 * (the upstream is asked with a HEAD; its copy is the same bytes, by
 * digest). BERTH_OK when linked; BERTH_ENOTFOUND when it is to be
 * fetched (not stored, or the upstream did not say it has it); another
 * error from making the client. f->client may be set either way.
 */
static enum berth_err link_if_upstream_has(struct fetch *f, const struct upstream_rule *rule,
                                           const struct digest *d)
{
    struct meta *m = store_meta(f->st);
    struct meta_blob mb;
    if (m == NULL || meta_blob_get_visible(m, d->str, &mb) != BERTH_OK) {
        return BERTH_ENOTFOUND;
    }
    enum berth_err rc = fetch_client(f, rule);
    if (rc != BERTH_OK) {
        return rc;
    }
    bool exists = false;
    char why[256];
    if (upstream_blob_exists(f->client, f->upstream, d->str, &exists, why, sizeof(why)) !=
            BERTH_OK ||
        !exists) {
        return BERTH_ENOTFOUND; /* the fetch says what the upstream says */
    }
    struct meta_blob b;
    struct registry_status s;
    if (registry_blob_mount(f->st, f->repo, d, NULL, &b, &s) != BERTH_OK) {
        return BERTH_ENOTFOUND;
    }
    log_info("event=pull_through_linked repo=%s digest=%s upstream=%s", f->repo, d->str, f->url);
    return BERTH_OK;
}

enum berth_err upstream_stream_blob(struct store *st, const char *repo, const struct digest *d,
                                    const struct upstream_caller *caller,
                                    struct upstream_stream **out, int64_t *size, char *err,
                                    size_t cap)
{
    struct fetch f;
    struct upstream_rule rule;
    char upstream[1024];
    err[0] = '\0';
    *out = NULL;
    enum berth_err rc = fetch_open(st, repo, &f, &rule, upstream, sizeof(upstream), err, cap);
    if (rc != BERTH_OK) {
        return rc;
    }
    if (!may_import(caller, err, cap)) {
        return BERTH_EDENIED; /* neither linked nor fetched */
    }
    struct meta_repo repo_row;
    struct meta_blob b;
    struct registry_status s;
    rc = registry_repo_for_cache(st, repo, &repo_row, &s);
    if (rc != BERTH_OK) {
        snprintf(err, cap, "%s", s.message);
        return rc;
    }
    /* stored meanwhile: nothing fetched */
    if (registry_blob_stat(st, repo, d, &b, &s) == BERTH_OK) {
        return BERTH_OK;
    }
    /* until the upstream's first answer, this worker waits for it */
    if (!wait_enter(caller, err, cap)) {
        return BERTH_EBUSY;
    }
    rc = link_if_upstream_has(&f, &rule, d);
    if (rc != BERTH_ENOTFOUND) {
        wait_leave(caller);
        upstream_client_free(f.client);
        return rc;
    }
    rc = BERTH_OK;
    pthread_mutex_lock(&g_mu);
    struct landing *l = find_landing(d, f.url);
    if (l != NULL) {
        l->refs++; /* join the fetch under way */
    }
    pthread_mutex_unlock(&g_mu);
    if (l != NULL) {
        upstream_client_free(f.client);
    } else {
        rc = fetch_client(&f, &rule);
        if (rc == BERTH_OK) {
            rc = landing_new(&f, d, &l);
        }
        upstream_client_free(f.client);
        if (rc != BERTH_OK) {
            wait_leave(caller);
            return rc;
        }
        pthread_mutex_lock(&g_mu);
        struct landing *other = find_landing(d, f.url);
        if (other != NULL) { /* another request started it first: join that one */
            other->refs++;
            pthread_mutex_unlock(&g_mu);
            landing_discard(l);
            l = other;
        } else if (landing_count() >= LANDINGS_MAX) {
            /* each is a thread, a connection and a stage; a fetch goes on
             * after its clients leave, so clients cannot bound them */
            pthread_mutex_unlock(&g_mu);
            landing_discard(l);
            wait_leave(caller);
            snprintf(err, cap, "%d blobs are being fetched from upstreams already; retry",
                     LANDINGS_MAX);
            log_warn("event=pull_through_busy fetches=%d", LANDINGS_MAX);
            return BERTH_EBUSY;
        } else {
            l->refs = 2; /* the thread's and the caller's */
            l->next = g_landings;
            g_landings = l;
            pthread_mutex_unlock(&g_mu);
            pthread_t t;
            pthread_attr_t attr;
            pthread_attr_init(&attr);
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            if (pthread_create(&t, &attr, land_thread, l) != 0) {
                snprintf(l->err, sizeof(l->err), "cannot start a fetch");
                blob_stage_close(l->writer);
                l->writer = NULL;
                blob_stage_remove(store_blobs(st), l->stage);
                landing_finish(l, BERTH_ENOMEM);
                stream_put(l); /* the thread's */
            }
            pthread_attr_destroy(&attr);
        }
    }
    /* wait for the upstream's answer */
    pthread_mutex_lock(&g_mu);
    while (!l->started) {
        pthread_cond_wait(&g_cv, &g_mu);
    }
    bool failed = l->done && l->result != BERTH_OK;
    *size = l->size;
    if (failed) {
        str_copy(err, cap, l->err);
        rc = l->result;
    }
    pthread_mutex_unlock(&g_mu);
    wait_leave(caller);
    struct upstream_stream *r = failed ? NULL : calloc(1, sizeof(*r));
    if (!failed && r == NULL) {
        rc = BERTH_ENOMEM;
        failed = true;
    }
    if (failed) {
        stream_put(l);
        return rc;
    }
    r->l = l;
    pthread_mutex_lock(&g_mu);
    r->next = l->readers;
    l->readers = r;
    pthread_mutex_unlock(&g_mu);
    *out = r;
    return BERTH_OK;
}

long long upstream_stream_read(struct upstream_stream *r, uint64_t pos, char *buf, size_t max,
                               upstream_wake_fn wake, void *wake_arg)
{
    struct landing *l = r->l;
    pthread_mutex_lock(&g_mu);
    uint64_t avail;
    for (;;) {
        if (l->done && l->result != BERTH_OK) {
            pthread_mutex_unlock(&g_mu);
            return -1;
        }
        /* the last byte waits for the verification: a client never gets a
         * whole blob that does not match its digest */
        avail = l->done ? l->written : (l->written > 0 ? l->written - 1 : 0);
        if (pos < avail) {
            break;
        }
        if (l->done) {
            pthread_mutex_unlock(&g_mu);
            return 0;
        }
        if (wake != NULL) { /* the caller waits elsewhere: wake it on progress */
            r->wake = wake;
            r->wake_arg = wake_arg;
            pthread_mutex_unlock(&g_mu);
            return UPSTREAM_READ_WAIT;
        }
        pthread_cond_wait(&g_cv, &g_mu);
    }
    pthread_mutex_unlock(&g_mu);
    size_t n = avail - pos < max ? (size_t)(avail - pos) : max;
    size_t got = 0;
    if (blob_stage_read(l->reader, pos, buf, n, &got) != BERTH_OK || got == 0) {
        return -1;
    }
    return (long long)got;
}

enum berth_err upstream_stream_wait(struct upstream_stream *r, const struct upstream_caller *caller,
                                    char *err, size_t cap)
{
    struct landing *l = r->l;
    if (!wait_enter(caller, err, cap)) {
        return BERTH_EBUSY;
    }
    pthread_mutex_lock(&g_mu);
    while (!l->done) {
        pthread_cond_wait(&g_cv, &g_mu);
    }
    enum berth_err rc = l->result;
    if (rc != BERTH_OK) {
        str_copy(err, cap, l->err);
    }
    pthread_mutex_unlock(&g_mu);
    wait_leave(caller);
    return rc;
}

void upstream_stream_release(struct upstream_stream *r)
{
    if (r == NULL) {
        return;
    }
    struct landing *l = r->l;
    pthread_mutex_lock(&g_mu);
    for (struct upstream_stream **p = &l->readers; *p != NULL; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            break;
        }
    }
    pthread_mutex_unlock(&g_mu);
    free(r);
    stream_put(l);
}

bool upstream_stopping(void)
{
    pthread_mutex_lock(&g_mu);
    bool stopping = g_stopping;
    pthread_mutex_unlock(&g_mu);
    return stopping;
}

void upstream_stop(int64_t timeout_ms)
{
    int64_t deadline = time_now_ms() + timeout_ms;
    pthread_mutex_lock(&g_mu);
    g_stopping = true;
    while (g_landings != NULL && time_now_ms() < deadline) {
        pthread_mutex_unlock(&g_mu);
        time_sleep_ms(10);
        pthread_mutex_lock(&g_mu);
    }
    pthread_mutex_unlock(&g_mu);
}
