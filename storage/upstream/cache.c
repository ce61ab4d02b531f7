/* The pull-through cache; see cache.h. */
#include "storage/upstream/cache.h"

#include <pthread.h>
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

/* An index's children are fetched with it; an index of indexes this deep
 * is refused. */
#define MAX_DEPTH 4

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

static int rule_row(void *arg, const struct meta_ptc_rule *r)
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
    char *user = NULL;
    char *pass = NULL;
    if (rule->secret[0] != '\0') {
        if (!g_opt.has_key) {
            snprintf(err, cap, "no key to open the secret %s", rule->secret);
            return BERTH_EINVAL;
        }
        enum berth_err rc = upstream_secret_get(m, g_opt.key, rule->secret, &user, &pass);
        if (rc != BERTH_OK) {
            snprintf(err, cap, "the secret %s %s", rule->secret,
                     rc == BERTH_ENOTFOUND ? "does not exist"
                     : rc == BERTH_EINVAL  ? "cannot be opened with berth's key"
                                           : "cannot be read");
            return rc;
        }
    }
    *out = upstream_client_new(rule->url, user, pass, g_opt.timeout_ms);
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

/* A blob arriving into a stage while it is hashed. */
struct landing {
    struct blob_stage *stage;
    struct digest_ctx *hash;
    uint64_t offset;
    int64_t limit; /* the size the manifest gave, -1 when unknown */
};

static enum berth_err land(void *arg, const void *p, size_t n)
{
    struct landing *l = arg;
    if (l->limit >= 0 && l->offset + n > (uint64_t)l->limit) {
        return BERTH_EDIGEST; /* longer than its descriptor says */
    }
    enum berth_err rc = blob_stage_write(l->stage, l->offset, p, n);
    if (rc == BERTH_OK) {
        rc = digest_ctx_update(l->hash, p, n);
    }
    l->offset += n;
    return rc;
}

/* Fetch blob d of the upstream repository into a stage, verify it and
 * publish it linked to the local repository. Nothing is published unless
 * every byte checked out; the stage is always removed. */
static enum berth_err fetch_blob(struct fetch *f, const struct digest *d, int64_t size)
{
    struct blob_store *bs = store_blobs(f->st);
    char uuid[40];
    char name[BLOB_STAGE_NAME_MAX + 1];
    enum berth_err rc = rand_uuid(uuid);
    if (rc != BERTH_OK) {
        return rc;
    }
    snprintf(name, sizeof(name), "tmp-%s", uuid);
    rc = blob_stage_create(bs, name);
    if (rc != BERTH_OK) {
        snprintf(f->err, f->cap, "cannot stage a blob (%s)", berth_strerror(rc));
        return rc;
    }
    struct landing l = {NULL, digest_ctx_new(d->alg), 0, size};
    uint64_t have = 0;
    rc = l.hash == NULL ? BERTH_ENOMEM : blob_stage_open(bs, name, &l.stage, &have);
    int64_t started = time_now_ms();
    if (rc == BERTH_OK) {
        rc = upstream_get_blob(f->client, f->upstream, d->str, land, &l, f->err, f->cap);
    }
    struct digest got;
    if (rc == BERTH_OK) {
        rc = digest_ctx_final(l.hash, &got);
    }
    if (rc == BERTH_OK &&
        (strcmp(got.str, d->str) != 0 || (size >= 0 && l.offset != (uint64_t)size))) {
        snprintf(f->err, f->cap, "the upstream's blob %s does not match its digest", d->str);
        rc = BERTH_EDIGEST;
    } else if (rc == BERTH_EDIGEST) {
        snprintf(f->err, f->cap, "the upstream's blob %s is longer than its descriptor", d->str);
    }
    if (rc == BERTH_OK) {
        rc = blob_stage_sync(l.stage);
    }
    blob_stage_close(l.stage);
    digest_ctx_free(l.hash);
    struct meta_blob b;
    struct registry_status s;
    if (rc == BERTH_OK) {
        rc = registry_blob_publish(f->st, f->repo, name, d, (int64_t)l.offset, &b, &s);
        if (rc != BERTH_OK) {
            snprintf(f->err, f->cap, "%s", s.message);
        }
    }
    if (rc != BERTH_OK) {
        blob_stage_remove(bs, name); /* gone already when published */
        return rc;
    }
    log_info("event=pull_through_blob repo=%s upstream=%s/%s digest=%s bytes=%llu ms=%lld", f->repo,
             f->url, f->upstream, d->str, (unsigned long long)l.offset,
             (long long)(time_now_ms() - started));
    return BERTH_OK;
}

/* Blob d linked to the local repository: there already, mounted from
 * another repository, or fetched (once in the process at a time). */
static enum berth_err ensure_blob(struct fetch *f, const struct digest *d, int64_t size)
{
    struct meta_blob b;
    struct registry_status s;
    if (registry_blob_stat(f->st, f->repo, d, &b, &s) == BERTH_OK) {
        return BERTH_OK;
    }
    char key[DIGEST_STR_MAX + 8];
    snprintf(key, sizeof(key), "blob:%s", d->str);
    for (;;) {
        bool mine = claim(key);
        /* another repository (or the fetch we waited for) may have it */
        if (registry_blob_mount(f->st, f->repo, d, NULL, &b, &s) == BERTH_OK) {
            if (mine) {
                release(key);
            }
            return BERTH_OK;
        }
        if (!mine) {
            continue; /* that fetch failed: try it ourselves */
        }
        enum berth_err rc = fetch_blob(f, d, size);
        release(key);
        return rc;
    }
}

static bool is_digest_ref(const char *reference)
{
    return strchr(reference, ':') != NULL;
}

static enum berth_err fetch_manifest(struct fetch *f, const char *reference, int depth);

/* What a manifest references, each in the local repository before it. */
static enum berth_err fetch_references(struct fetch *f, const struct manifest_info *info, int depth)
{
    enum berth_err rc = BERTH_OK;
    if (info->is_index) {
        for (size_t i = 0; rc == BERTH_OK && i < info->ref_count; i++) {
            struct meta_manifest mf;
            struct registry_status s;
            if (registry_manifest_get(f->st, f->repo, info->refs[i].digest.str, &mf, &s) ==
                BERTH_OK) {
                continue;
            }
            rc = fetch_manifest(f, info->refs[i].digest.str, depth + 1);
        }
        return rc;
    }
    if (info->has_config) {
        rc = ensure_blob(f, &info->config.digest, info->config.size);
    }
    for (size_t i = 0; rc == BERTH_OK && i < info->ref_count; i++) {
        if (!info->refs[i].non_distributable) {
            rc = ensure_blob(f, &info->refs[i].digest, info->refs[i].size);
        }
    }
    return rc;
}

/* Fetch a manifest by tag or digest with everything it references, and
 * store it (a tag pointed at it). */
static enum berth_err fetch_manifest(struct fetch *f, const char *reference, int depth)
{
    if (depth > MAX_DEPTH) {
        snprintf(f->err, f->cap, "the upstream's index nests more than %d deep", MAX_DEPTH);
        return BERTH_EINVAL;
    }
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
        rc = fetch_references(f, info, depth);
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
        rc = fetch_manifest(f, tag, 0);
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
        return BERTH_EDB;
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
    struct meta *m = store_meta(f->st);
    if (m == NULL) {
        return BERTH_EDB;
    }
    return upstream_rule_client(m, rule, &f->client, f->err, f->cap);
}

enum berth_err upstream_cache_manifest(struct store *st, const char *repo, const char *reference,
                                       char *err, size_t cap)
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
    if (!by_digest && !names_tag_valid(reference)) {
        return BERTH_ENOTFOUND;
    }
    struct meta_manifest mf;
    struct registry_status s;
    if (registry_manifest_get(st, repo, reference, &mf, &s) == BERTH_OK) {
        if (by_digest) {
            return BERTH_OK; /* content never changes: never upstream again */
        }
        rc = fetch_client(&f, &rule);
        if (rc == BERTH_OK) {
            rc = revalidate_tag(&f, &mf, reference);
        } else {
            log_warn("event=pull_through_stale repo=%s tag=%s reason=\"%s\" serving=cached", repo,
                     reference, err);
            rc = BERTH_OK;
        }
        upstream_client_free(f.client);
        return rc;
    }
    char key[1400];
    snprintf(key, sizeof(key), "manifest:%s:%s", repo, reference);
    for (;;) {
        bool mine = claim(key);
        /* another request may have fetched it meanwhile */
        if (registry_manifest_get(st, repo, reference, &mf, &s) == BERTH_OK) {
            if (mine) {
                release(key);
            }
            return BERTH_OK;
        }
        if (mine) {
            break;
        }
    }
    rc = fetch_client(&f, &rule);
    if (rc == BERTH_OK) {
        rc = fetch_manifest(&f, reference, 0);
    }
    release(key);
    upstream_client_free(f.client);
    if (rc != BERTH_OK && rc != BERTH_ENOTFOUND) {
        log_warn("event=pull_through_failed repo=%s reference=%s upstream=%s/%s reason=\"%s\"",
                 repo, reference, rule.url, upstream, err);
    }
    return rc;
}

enum berth_err upstream_cache_blob(struct store *st, const char *repo, const struct digest *d,
                                   char *err, size_t cap)
{
    struct fetch f;
    struct upstream_rule rule;
    char upstream[1024];
    err[0] = '\0';
    enum berth_err rc = fetch_open(st, repo, &f, &rule, upstream, sizeof(upstream), err, cap);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct meta_repo r;
    struct registry_status s;
    rc = registry_repo_for_cache(st, repo, &r, &s);
    if (rc == BERTH_OK) {
        rc = fetch_client(&f, &rule);
    }
    if (rc == BERTH_OK) {
        rc = ensure_blob(&f, d, -1);
    }
    upstream_client_free(f.client);
    if (rc != BERTH_OK && rc != BERTH_ENOTFOUND) {
        log_warn("event=pull_through_failed repo=%s digest=%s upstream=%s/%s reason=\"%s\"", repo,
                 d->str, rule.url, upstream, err);
    }
    return rc;
}
