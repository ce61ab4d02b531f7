/*
 * berth mirror: images of other registries written straight into a bundle
 * (the bundle writer, writer.c), with no store. Three steps:
 * 1. the manifests, walked ahead from each reference by opt->parallel
 *    threads (a reference and the children of its indexes each), then
 *    walked in order; fetched whole (bounded) and verified; what the bundle will hold is recorded
 * in order (the manifests' bytes, the blobs' descriptors). Each is kept in <out>.parts/
 * (<alg>-<hex>.manifest): a later run reads one it needs by digest from there (verified again) and
 * asks the registry only where each tag points now (HEAD);
 * 2. the blobs, fetched by opt->parallel threads (each with its own
 *    registry clients) into <out>.parts/: <alg>-<hex>.partial while it
 *    comes, synced and renamed <alg>-<hex> once it matched its digest
 *    and size. A run that finds a part file from an earlier, interrupted
 *    run keeps it: a complete one is not fetched again; a partial one is
 *    hashed again and only the rest asked for (Range: bytes=N-; an
 *    upstream that answers with the whole blob instead starts it again).
 *    A connection broken mid-blob is resumed the same way within the run;
 * 3. the bundle, written in the recorded order from memory and the part
 *    files (each hashed again as it is copied), then made durable and
 *    renamed into place; <out>.parts/ is removed.
 * <out>.parts/ itself (its files, its lock, what is verified when read
 * back) is the part store, parts.c.
 * A failure leaves no bundle (the temporary file is removed) and keeps
 * <out>.parts/ for the next run, except a part whose bytes do not match
 * its digest.
 */
#include "storage/bundle/bundle.h"
#include "storage/bundle/bundle_int.h"
#include "storage/bundle/parts_int.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/fault.h"
#include "common/log.h"
#include "common/str.h"
#include "common/timeutil.h"
#include "storage/spec/digest.h"
#include "storage/spec/manifest.h"
#include "storage/spec/names.h"
#include "storage/upstream/client.h"

#define CLIENTS_MAX 32
/* Indexes within indexes and referrers of referrers, at most. */
#define NEST_MAX 8
/* Tries of a request that fails before any byte of it is written (the
 * network, 5xx, 429), the waits between them doubling from RETRY_MS. */
#define ATTEMPTS 4
#define RETRY_MS 1000

/* Blobs fetched at once when the options do not say, and at most. */
#define PARALLEL_DEFAULT 4
#define PARALLEL_MAX 64

struct remote {
    char host[256];
    char base[UPSTREAM_URL_MAX];
    char *user; /* copies, for the fetching threads' clients; or NULL */
    char *password;
    struct upstream_client *c; /* the walking thread's */
};

/* One entry of the bundle, in the order it is written. */
struct planned {
    struct digest d;
    int64_t size;
    char *body;    /* a manifest's bytes (owned), or NULL: a blob */
    size_t remote; /* a blob's registry, repository and the manifest naming it */
    char repo[256];
    char owner[DIGEST_STR_MAX];
};

struct mirror {
    const struct bundle_mirror_options *opt;
    struct bundle_writer w;
    struct remote remotes[CLIENTS_MAX];
    size_t remote_count;
    int64_t sparse;
    struct planned *plan;
    size_t plan_count;
    size_t plan_cap;
    size_t blob_count;
    struct bundle_parts parts; /* <out>.parts */
    /* Below: shared by the threads walking ahead (mu). */
    pthread_mutex_t mu;
    size_t manifests_kept; /* of an earlier run, read from <out>.parts/ by this one */
    size_t manifests_fetched;
    struct digest_set seen;    /* manifests this run fetched or read back */
    struct digest_set claimed; /* manifests by digest a thread walking ahead took */
};

#define fail(m, ...) bundle_writer_fail(&(m)->w, __VA_ARGS__)

/* ---- references ---- */

bool bundle_remote_ref_parse(const char *text, struct bundle_remote_ref *out, char *why,
                             size_t why_cap)
{
    memset(out, 0, sizeof(*out));
    char name[512];
    const char *at = strchr(text, '@');
    size_t name_len = at ? (size_t)(at - text) : strlen(text);
    if (name_len == 0 || name_len >= sizeof(name)) {
        snprintf(why, why_cap, "'%.80s' is not an image reference", text);
        return false;
    }
    memcpy(name, text, name_len);
    name[name_len] = '\0';
    char *rest = name;
    char *slash = strchr(name, '/');
    if (slash != NULL && (memchr(name, '.', (size_t)(slash - name)) != NULL ||
                          memchr(name, ':', (size_t)(slash - name)) != NULL ||
                          (slash - name == 9 && strncmp(name, "localhost", 9) == 0))) {
        *slash = '\0';
        str_copy(out->host, sizeof(out->host), name);
        rest = slash + 1;
    } else {
        str_copy(out->host, sizeof(out->host), "docker.io");
    }
    char *last = strrchr(rest, '/');
    char *colon = strrchr(last ? last : rest, ':');
    const char *tag = "latest";
    if (colon != NULL) {
        *colon = '\0';
        tag = colon + 1;
    }
    if (at != NULL) {
        struct digest d;
        if (digest_parse(at + 1, &d) != BERTH_OK) {
            snprintf(why, why_cap, "'%.80s': '%.80s' is not a digest", text, at + 1);
            return false;
        }
        str_copy(out->reference, sizeof(out->reference), d.str);
        out->by_digest = true;
    } else if (!names_tag_valid(tag)) {
        snprintf(why, why_cap, "'%.80s': '%.80s' is not a tag", text, tag);
        return false;
    } else {
        str_copy(out->reference, sizeof(out->reference), tag);
    }
    int n = snprintf(
        out->repo, sizeof(out->repo), "%s%s",
        strcmp(out->host, "docker.io") == 0 && strchr(rest, '/') == NULL ? "library/" : "", rest);
    if (n < 0 || (size_t)n >= sizeof(out->repo) || !names_repo_valid(out->repo)) {
        snprintf(why, why_cap, "'%.80s': '%.80s' is not a repository name", text, rest);
        return false;
    }
    return true;
}

/* ---- registries ---- */

static void wipe_free(char *s)
{
    if (s != NULL) {
        memset(s, 0, strlen(s));
        free(s);
    }
}

static void remote_fini(struct remote *r)
{
    upstream_client_free(r->c);
    wipe_free(r->user);
    wipe_free(r->password);
    memset(r, 0, sizeof(*r));
}

/* The CA file trusted for registry host: its own, else the one for every
 * registry, else NULL (the system's). */
static const char *ca_file_for(const struct mirror *m, const char *host)
{
    for (size_t i = 0; i < m->opt->registry_ca_count; i++) {
        if (strcmp(m->opt->registry_cas[i].registry, host) == 0) {
            return m->opt->registry_cas[i].file;
        }
    }
    return m->opt->ca_file;
}

/* A new client of r's registry with its credentials (NULL: out of memory). */
static struct upstream_client *remote_client(const struct mirror *m, const struct remote *r)
{
    struct upstream_client *c =
        upstream_client_new(r->base, r->user, r->password, m->opt->timeout_ms);
    const char *ca_file = ca_file_for(m, r->host);
    if (c != NULL && ca_file != NULL && upstream_client_set_ca_file(c, ca_file) != BERTH_OK) {
        upstream_client_free(c);
        return NULL;
    }
    if (c != NULL) {
        upstream_client_set_role(c, "mirror");
    }
    return c;
}

static size_t remote_index(const struct mirror *m, const char *host)
{
    for (size_t i = 0; i < m->remote_count; i++) {
        if (strcmp(m->remotes[i].host, host) == 0) {
            return i;
        }
    }
    return 0;
}

static enum berth_err client_for(struct mirror *m, const char *host, struct upstream_client **out)
{
    for (size_t i = 0; i < m->remote_count; i++) {
        if (strcmp(m->remotes[i].host, host) == 0) {
            *out = m->remotes[i].c;
            return BERTH_OK;
        }
    }
    if (m->remote_count == CLIENTS_MAX) {
        return fail(m, BERTH_EINVAL, "more than %d registries", CLIENTS_MAX);
    }
    char url[UPSTREAM_URL_MAX];
    char base[UPSTREAM_URL_MAX];
    snprintf(url, sizeof(url), "%s%s", m->opt->plain_http ? "http://" : "https://",
             strcmp(host, "docker.io") == 0 ? "registry-1.docker.io" : host);
    if (!upstream_url_normalize(url, base, sizeof(base))) {
        return fail(m, BERTH_EINVAL, "'%s' is not a registry host", host);
    }
    const char *user = NULL;
    const char *password = NULL;
    if (m->opt->creds != NULL && !m->opt->creds(m->opt->creds_arg, host, &user, &password)) {
        user = password = NULL;
    }
    struct remote *r = &m->remotes[m->remote_count];
    memset(r, 0, sizeof(*r));
    str_copy(r->host, sizeof(r->host), host);
    str_copy(r->base, sizeof(r->base), base);
    if (user != NULL && password != NULL) {
        r->user = strdup(user);
        r->password = strdup(password);
    }
    r->c = remote_client(m, r);
    if (r->c == NULL || (user != NULL && password != NULL && r->password == NULL)) {
        remote_fini(r);
        return BERTH_ENOMEM;
    }
    m->remote_count++;
    *out = r->c;
    return BERTH_OK;
}

/* Whether a failure may pass when the request is tried again. */
static bool transient(enum berth_err rc)
{
    return rc == BERTH_EIO || rc == BERTH_EBUSY;
}

/* Before try attempt + 1 of what: a warning and the wait. */
static void retry_wait(int attempt, const char *what, const char *err)
{
    int64_t ms = (int64_t)RETRY_MS << attempt;
    log_warn("event=mirror_retry what=%s reason=\"%s\" attempt=%d wait_ms=%lld", what, err,
             attempt + 2, (long long)ms);
    time_sleep_ms(ms);
}

/* ---- manifests ---- */

struct fetched {
    char *body;
    size_t len;
    struct digest d;
    struct manifest_info *info;
};

static void fetched_fini(struct fetched *f)
{
    free(f->body);
    manifest_info_free(f->info);
    memset(f, 0, sizeof(*f));
}

/* ---- manifests kept in <out>.parts/ ---- */

/* The manifest d kept by an earlier run in <out>.parts/, read back into
 * um and verified: false when there is none, or when it does not match d
 * (then removed, to be fetched again). */
static bool manifest_part_load(struct mirror *m, const struct digest *d,
                               struct upstream_manifest *um)
{
    memset(um, 0, sizeof(*um));
    if (bundle_parts_manifest_get(&m->parts, d, m->opt->manifest_max, um->content_type,
                                  sizeof(um->content_type), &um->body, &um->len) != BERTH_OK) {
        return false;
    }
    str_copy(um->digest, sizeof(um->digest), d->str);
    pthread_mutex_lock(&m->mu);
    if (!digest_set_has(&m->seen, d->str) && digest_set_add(&m->seen, d->str) == BERTH_OK) {
        m->manifests_kept++;
    }
    pthread_mutex_unlock(&m->mu);
    return true;
}

/* A manifest just fetched and verified, kept in <out>.parts/ for a later
 * run. */
static void manifest_part_store(struct mirror *m, const struct digest *d,
                                const struct upstream_manifest *um, const char *type)
{
    bundle_parts_manifest_put(&m->parts, d, type, um->body, um->len);
    pthread_mutex_lock(&m->mu);
    (void)digest_set_add(&m->seen, d->str); /* out of memory: it may count as kept */
    pthread_mutex_unlock(&m->mu);
}

/* GET (or HEAD) of a manifest, tried again on transient failures. */
static enum berth_err get_manifest(struct mirror *m, struct upstream_client *c, const char *what,
                                   const char *repo, const char *reference, bool head,
                                   struct upstream_manifest *um, char *err, size_t cap)
{
    enum berth_err rc = BERTH_OK;
    for (int attempt = 0;; attempt++) {
        rc = upstream_get_manifest(c, repo, reference, head, m->opt->manifest_max, um, err, cap);
        if (rc == BERTH_OK || !transient(rc) || attempt + 1 == ATTEMPTS) {
            return rc;
        }
        retry_wait(attempt, what, err);
    }
}

/* A manifest of repo by tag or digest, verified (the digest asked for, or
 * the registry's Docker-Content-Digest) and parsed. One by digest that
 * <out>.parts/ holds is read from there; so is a tag whose digest the walk
 * ahead found (resolved, or NULL); another tag is asked of the registry
 * (HEAD: where it points now) when <out>.parts/ holds manifests of an
 * earlier run, and read from there when it holds that digest. A manifest
 * fetched is kept there. Safe in several threads (each with its own
 * client); on failure why says what failed. */
static enum berth_err load_manifest(struct mirror *m, struct upstream_client *c, const char *host,
                                    const char *repo, const char *reference,
                                    const struct digest *expected, const struct digest *resolved,
                                    struct fetched *out, char *why, size_t why_cap)
{
    memset(out, 0, sizeof(*out));
    char err[512];
    char what[1024];
    snprintf(what, sizeof(what), "%s/%s%s%s", host, repo, expected ? "@" : ":", reference);
    struct upstream_manifest um;
    enum berth_err rc = BERTH_OK;
    bool kept = expected != NULL   ? manifest_part_load(m, expected, &um)
                : resolved != NULL ? manifest_part_load(m, resolved, &um)
                                   : false;
    if (!kept && expected == NULL && resolved == NULL && m->parts.manifests_found > 0) {
        struct digest now;
        rc = get_manifest(m, c, what, repo, reference, true, &um, err, sizeof(err));
        if (rc == BERTH_OK && um.digest[0] != '\0' && digest_parse(um.digest, &now) == BERTH_OK) {
            upstream_manifest_fini(&um);
            kept = manifest_part_load(m, &now, &um);
        } else if (rc == BERTH_OK) {
            upstream_manifest_fini(&um);
        } else if (rc != BERTH_ENOTFOUND && rc != BERTH_EDENIED) {
            rc = BERTH_OK; /* the GET says what is wrong, or passes */
        }
        if (rc != BERTH_OK) {
            snprintf(why, why_cap, "%.480s: %s", what, err);
            return rc;
        }
    }
    if (!kept) {
        rc = get_manifest(m, c, what, repo, reference, false, &um, err, sizeof(err));
        if (rc != BERTH_OK) {
            snprintf(why, why_cap, "%.480s: %s", what, err);
            return rc;
        }
        pthread_mutex_lock(&m->mu);
        m->manifests_fetched++;
        pthread_mutex_unlock(&m->mu);
    }
    struct digest told;
    bool has_told = um.digest[0] != '\0' && digest_parse(um.digest, &told) == BERTH_OK;
    enum digest_alg alg = expected ? expected->alg : has_told ? told.alg : DIGEST_SHA256;
    rc = digest_buffer(alg, um.body, um.len, &out->d);
    if (rc == BERTH_OK && expected != NULL && strcmp(out->d.str, expected->str) != 0) {
        rc = BERTH_EDIGEST;
        snprintf(why, why_cap, "%.480s: the manifest does not match its digest (it is %s)", what,
                 out->d.str);
    } else if (rc == BERTH_OK && expected == NULL && has_told &&
               strcmp(out->d.str, told.str) != 0) {
        rc = BERTH_EDIGEST;
        snprintf(why, why_cap,
                 "%.480s: the manifest (%s) does not match the registry's Docker-Content-Digest %s",
                 what, out->d.str, told.str);
    } else if (rc != BERTH_OK) {
        snprintf(why, why_cap, "%.480s: %s", what, berth_strerror(rc));
    }
    char mt[MANIFEST_MEDIA_TYPE_MAX + 1];
    str_copy(mt, sizeof(mt), um.content_type);
    mt[strcspn(mt, "; ")] = '\0';
    char reason[256];
    if (rc == BERTH_OK) {
        rc = manifest_parse(um.body, um.len, manifest_is_known_type(mt) ? mt : NULL, &out->info,
                            reason, sizeof(reason));
        if (rc != BERTH_OK) {
            rc = BERTH_EINVAL;
            snprintf(why, why_cap, "%.480s: not a manifest berth stores: %s", what, reason);
        }
    }
    if (rc != BERTH_OK) {
        upstream_manifest_fini(&um);
        fetched_fini(out);
        return rc;
    }
    if (!kept) {
        manifest_part_store(m, &out->d, &um, mt);
    }
    out->body = um.body;
    out->len = um.len;
    return BERTH_OK;
}

/* load_manifest on the walking thread, its failure the run's. */
static enum berth_err fetch_manifest(struct mirror *m, struct upstream_client *c, const char *host,
                                     const char *repo, const char *reference,
                                     const struct digest *expected, const struct digest *resolved,
                                     struct fetched *out)
{
    char why[1024];
    enum berth_err rc =
        load_manifest(m, c, host, repo, reference, expected, resolved, out, why, sizeof(why));
    return rc == BERTH_OK ? BERTH_OK : fail(m, rc, "%s", why);
}

/* Whether an index's descriptor is of a platform asked for ("os/arch" or
 * "os/arch/variant"); nested indexes are kept, to be filtered in turn. */
static bool platform_wanted(const struct mirror *m, json_t *desc)
{
    if (m->opt->platform_count == 0) {
        return true;
    }
    const char *mt = json_string_value(json_object_get(desc, "mediaType"));
    if (mt != NULL &&
        (strcmp(mt, MANIFEST_OCI_INDEX) == 0 || strcmp(mt, MANIFEST_DOCKER_LIST) == 0)) {
        return true;
    }
    json_t *p = json_object_get(desc, "platform");
    const char *os = json_string_value(json_object_get(p, "os"));
    const char *arch = json_string_value(json_object_get(p, "architecture"));
    const char *variant = json_string_value(json_object_get(p, "variant"));
    if (os == NULL || arch == NULL) {
        return false;
    }
    for (size_t i = 0; i < m->opt->platform_count; i++) {
        char want[128];
        str_copy(want, sizeof(want), m->opt->platforms[i]);
        char *a = strchr(want, '/');
        if (a == NULL) {
            continue;
        }
        *a++ = '\0';
        char *v = strchr(a, '/');
        if (v != NULL) {
            *v++ = '\0';
        }
        if (strcmp(want, os) == 0 && strcmp(a, arch) == 0 &&
            (v == NULL || (variant != NULL && strcmp(v, variant) == 0))) {
            return true;
        }
    }
    return false;
}

static enum berth_err put_tree(struct mirror *m, struct upstream_client *c, const char *host,
                               const char *repo, struct fetched *f, int depth);

/* ---- what the bundle holds, in order ---- */

static enum berth_err plan_add(struct mirror *m, struct planned **out)
{
    if (m->plan_count == m->plan_cap) {
        size_t cap = m->plan_cap ? m->plan_cap * 2 : 64;
        struct planned *p = realloc(m->plan, cap * sizeof(*p));
        if (p == NULL) {
            return BERTH_ENOMEM;
        }
        m->plan = p;
        m->plan_cap = cap;
    }
    *out = &m->plan[m->plan_count++];
    memset(*out, 0, sizeof(**out));
    return BERTH_OK;
}

/* A blob of a manifest, unless never to be carried or handled already. */
static enum berth_err plan_blob(struct mirror *m, const char *host, const char *repo,
                                const struct manifest_desc *desc, const char *owner)
{
    if (desc->non_distributable || !bundle_writer_wants(&m->w, &desc->digest, desc->size)) {
        return BERTH_OK; /* never pushed anywhere, or written already */
    }
    if (desc->size < 0) {
        return fail(m, BERTH_EINVAL, "blob %s of %s/%s@%s: a negative size", desc->digest.str, host,
                    repo, owner);
    }
    struct planned *p = NULL;
    enum berth_err rc = plan_add(m, &p);
    if (rc == BERTH_OK) {
        p->d = desc->digest;
        p->size = desc->size;
        p->remote = remote_index(m, host);
        str_copy(p->repo, sizeof(p->repo), repo);
        str_copy(p->owner, sizeof(p->owner), owner);
        m->blob_count++;
        rc = digest_set_add(&m->w.done, desc->digest.str);
    }
    return rc;
}

/* A manifest's bytes (copied), unless handled already. */
static enum berth_err plan_manifest(struct mirror *m, const struct fetched *f)
{
    if (!bundle_writer_wants(&m->w, &f->d, (int64_t)f->len)) {
        return BERTH_OK;
    }
    struct planned *p = NULL;
    enum berth_err rc = plan_add(m, &p);
    if (rc != BERTH_OK) {
        return rc;
    }
    p->d = f->d;
    p->size = (int64_t)f->len;
    p->body = malloc(f->len ? f->len : 1);
    if (p->body == NULL) {
        m->plan_count--;
        return BERTH_ENOMEM;
    }
    memcpy(p->body, f->body, f->len);
    m->w.stats.manifests++;
    return digest_set_add(&m->w.done, f->d.str);
}

/* ---- blobs: fetched into <out>.parts/ ---- */

struct pool {
    struct mirror *m;
    pthread_mutex_t mu;
    size_t next;      /* the plan entry a thread looks at next */
    atomic_bool stop; /* a blob failed: the others give up */
    enum berth_err rc;
    int64_t blobs; /* fetched (or found complete), bytes of them */
    int64_t bytes;
};

/* Record a failure (the first one's reason wins) and stop every thread. */
__attribute__((format(printf, 3, 4))) static enum berth_err
pool_fail(struct pool *p, enum berth_err rc, const char *fmt, ...)
{
    char why[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&p->mu);
    if (p->rc == BERTH_OK) {
        p->rc = rc;
        bundle_writer_fail(&p->m->w, rc, "%s", why);
    }
    atomic_store(&p->stop, true);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static void pool_progress(struct pool *p, int64_t blobs, int64_t bytes)
{
    pthread_mutex_lock(&p->mu);
    p->blobs += blobs;
    p->bytes += bytes;
    p->m->w.stats.blobs = p->blobs;
    p->m->w.stats.bytes = p->bytes;
    bundle_writer_report(&p->m->w, false);
    pthread_mutex_unlock(&p->mu);
}

/* A blob arriving into its .partial file. */
struct sink {
    struct pool *pool;
    const struct planned *b;
    struct bundle_part part;
    int64_t from;  /* where this answer starts: part.have when honoured, 0 when whole */
    int64_t told;  /* the answer's Content-Length */
    bool came;     /* a byte came in this attempt */
    char why[512]; /* what was wrong with the answer, or "" */
};

static void on_range(void *arg, int64_t from, int64_t length)
{
    struct sink *s = arg;
    s->from = from;
    s->told = length;
}

static enum berth_err on_write(void *arg, const void *p, size_t n)
{
    struct sink *s = arg;
    int64_t have = s->part.have;
    if (!s->came) {
        s->came = true;
        if (s->from != have && s->from != 0) {
            snprintf(s->why, sizeof(s->why),
                     "the registry answered a request from byte %lld with bytes from %lld",
                     (long long)have, (long long)s->from);
            return BERTH_EINVAL;
        }
        if (s->from == 0 && have > 0) {
            /* the registry ignored the Range: the whole blob comes again */
            log_info("event=mirror_restart digest=%s had=%lld reason=\"a whole answer to a "
                     "range request\"",
                     s->b->d.str, (long long)have);
            pool_progress(s->pool, 0, -have);
            enum berth_err rc = bundle_part_restart(&s->part);
            if (rc != BERTH_OK) {
                return rc;
            }
            have = 0;
        }
        if (s->told >= 0 && s->from + s->told != s->b->size) {
            snprintf(s->why, sizeof(s->why),
                     "the registry sends %lld bytes where its descriptor says %lld",
                     (long long)(s->from + s->told), (long long)s->b->size);
            return BERTH_EDIGEST;
        }
        fault_hold("mirror_blob");
    }
    if (have + (int64_t)n > s->b->size) {
        snprintf(s->why, sizeof(s->why), "more bytes than its size %lld", (long long)s->b->size);
        return BERTH_EDIGEST;
    }
    enum berth_err rc = bundle_part_append(&s->part, p, n);
    if (rc != BERTH_OK) {
        return rc;
    }
    if (have * 2 < s->b->size && s->part.have * 2 >= s->b->size && s->part.have < s->b->size) {
        fault_point("mirror-blob-half");
    }
    pool_progress(s->pool, 0, (int64_t)n);
    return atomic_load(&s->pool->stop) ? BERTH_EIO : BERTH_OK;
}

/* The part file of blob b: found complete, or fetched (the rest of a
 * partial one, or all of it), verified and renamed complete. */
static enum berth_err fetch_blob(struct pool *pool, struct upstream_client *c,
                                 const struct planned *b)
{
    struct mirror *m = pool->m;
    const char *host = m->remotes[b->remote].host;
    if (bundle_parts_blob_has(&m->parts, &b->d, b->size)) {
        pool_progress(pool, 1, b->size); /* complete in an earlier run (hashed when written) */
        return BERTH_OK;
    }
    struct sink s = {.pool = pool, .b = b, .told = -1};
    char err[512] = "";
    enum berth_err rc = bundle_part_open(&m->parts, &b->d, b->size, &s.part, err, sizeof(err));
    if (rc != BERTH_OK && err[0] != '\0') {
        bundle_part_close(&s.part);
        return pool_fail(pool, rc, "%s", err);
    }
    if (rc == BERTH_OK && s.part.have > 0) {
        pool_progress(pool, 0, s.part.have);
    }
    char what[1024];
    snprintf(what, sizeof(what), "%s/%s@%s", host, b->repo, b->d.str);
    /* an empty blob needs no request; one found whole is only checked */
    for (int attempt = 0; rc == BERTH_OK && s.part.have < b->size;) {
        s.came = false;
        s.told = -1;
        s.from = s.part.have;
        s.why[0] = '\0';
        int64_t before = s.part.have;
        if (s.part.have > 0) {
            log_info("event=mirror_resume digest=%s from=%lld size=%lld", b->d.str,
                     (long long)s.part.have, (long long)b->size);
        }
        rc = upstream_get_blob_from(c, b->repo, b->d.str, s.part.have, on_range, on_write, &s, err,
                                    sizeof(err));
        if (s.why[0] != '\0') {
            str_copy(err, sizeof(err), s.why);
        }
        if (rc == BERTH_OK && s.part.have < b->size) {
            snprintf(err, sizeof(err), "%lld bytes where its size is %lld", (long long)s.part.have,
                     (long long)b->size);
            rc = BERTH_EIO; /* cut short: the rest is asked for again */
        }
        if (rc == BERTH_OK || !transient(rc) || s.why[0] != '\0' || atomic_load(&pool->stop)) {
            break;
        }
        bool progress = s.part.have > before;
        attempt = progress ? 0 : attempt + 1; /* bytes came: the tries start again */
        if (attempt == ATTEMPTS) {
            break;
        }
        retry_wait(progress ? 0 : attempt - 1, what, err);
        rc = BERTH_OK;
    }
    struct digest got;
    char why[1024] = "";
    bool reported = false;
    if (rc == BERTH_OK) {
        rc = bundle_part_commit(&s.part, &got, why, sizeof(why));
        if (rc == BERTH_EDIGEST) {
            reported = true;
            pool_fail(pool, rc,
                      "blob %s of %s/%s@%s: the content does not match its digest (it is %s)",
                      b->d.str, host, b->repo, b->owner, got.str);
        } else if (rc != BERTH_OK && why[0] != '\0') {
            reported = true;
            pool_fail(pool, rc, "%s", why);
        }
    }
    if (rc == BERTH_OK) {
        pool_progress(pool, 1, 0);
    } else if (!reported) {
        if (err[0] == '\0') {
            str_copy(err, sizeof(err), berth_strerror(rc));
        }
        pool_fail(pool, rc, "blob %s of %s/%s@%s: %s", b->d.str, host, b->repo, b->owner, err);
    }
    bundle_part_close(&s.part);
    return rc;
}

static void *fetch_thread(void *arg)
{
    struct pool *pool = arg;
    struct mirror *m = pool->m;
    struct upstream_client *clients[CLIENTS_MAX] = {0};
    for (;;) {
        pthread_mutex_lock(&pool->mu);
        while (pool->next < m->plan_count && m->plan[pool->next].body != NULL) {
            pool->next++;
        }
        const struct planned *b = pool->next < m->plan_count ? &m->plan[pool->next++] : NULL;
        pthread_mutex_unlock(&pool->mu);
        if (b == NULL || atomic_load(&pool->stop)) {
            break;
        }
        if (clients[b->remote] == NULL) {
            clients[b->remote] = remote_client(m, &m->remotes[b->remote]);
            if (clients[b->remote] == NULL) {
                pool_fail(pool, BERTH_ENOMEM, "out of memory");
                break;
            }
            upstream_client_set_cancel(clients[b->remote], &pool->stop);
        }
        if (fetch_blob(pool, clients[b->remote], b) != BERTH_OK) {
            break;
        }
    }
    for (size_t i = 0; i < CLIENTS_MAX; i++) {
        upstream_client_free(clients[i]);
    }
    return NULL;
}

/* Step 2: every blob of the plan into its part file, parallel at once. */
static enum berth_err fetch_blobs(struct mirror *m, int parallel)
{
    struct pool pool = {.m = m};
    pthread_mutex_init(&pool.mu, NULL);
    atomic_init(&pool.stop, false);
    size_t threads = (size_t)parallel;
    if (threads > m->blob_count) {
        threads = m->blob_count;
    }
    char item[128];
    snprintf(item, sizeof(item), "fetching %zu blobs, %zu at a time", m->blob_count, threads);
    m->w.item = item;
    m->w.last_progress_ns = 0;
    m->w.blobs_total = (int64_t)m->blob_count;
    m->w.bytes_total = 0;
    for (size_t i = 0; i < m->plan_count; i++) {
        m->w.bytes_total += m->plan[i].body == NULL ? m->plan[i].size : 0;
    }
    bundle_writer_report(&m->w, false);
    pthread_t tids[PARALLEL_MAX];
    size_t started = 0;
    for (; started < threads; started++) {
        if (pthread_create(&tids[started], NULL, fetch_thread, &pool) != 0) {
            break;
        }
    }
    if (started == 0 && threads > 0) {
        fetch_thread(&pool); /* no thread to be had: this one */
    }
    for (size_t i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
    }
    pthread_mutex_destroy(&pool.mu);
    m->w.item = NULL;
    m->w.blobs_total = m->w.bytes_total = 0;
    return pool.rc;
}

static enum berth_err write_data(void *arg, const void *p, size_t n)
{
    return bundle_writer_data(arg, p, n);
}

/* Step 3: the bundle, in the recorded order; every part hashed again as
 * it is copied. */
static enum berth_err write_bundle(struct mirror *m, bool zstd)
{
    m->w.stats.blobs = 0;
    m->w.stats.bytes = 0;
    enum berth_err rc = bundle_writer_start(&m->w, zstd);
    for (size_t i = 0; i < m->plan_count && rc == BERTH_OK; i++) {
        const struct planned *p = &m->plan[i];
        if (p->body != NULL) {
            rc = bundle_writer_put_entry(&m->w, &p->d, p->body, (size_t)p->size);
            continue;
        }
        rc = bundle_writer_begin(&m->w, &p->d, p->size);
        struct digest got;
        char why[1024] = "";
        if (rc == BERTH_OK) {
            rc =
                bundle_parts_blob_read(&m->parts, &p->d, write_data, &m->w, &got, why, sizeof(why));
        }
        if (rc == BERTH_EDIGEST) {
            char path[BUNDLE_PARTS_PATH_MAX];
            bundle_parts_blob_path(&m->parts, &p->d, false, path, sizeof(path));
            rc = fail(m, BERTH_EDIGEST,
                      "blob %s of %s/%s@%s: %s changed since it was fetched (it is %s)", p->d.str,
                      m->remotes[p->remote].host, p->repo, p->owner, path, got.str);
        } else if (rc != BERTH_OK && why[0] != '\0') {
            rc = fail(m, rc, "%s", why);
        }
        if (rc == BERTH_OK) {
            rc = bundle_writer_end(&m->w, &p->d);
            fault_point("mirror-bundle-started");
        }
    }
    return rc;
}

/* ---- referrers ---- */

static json_t *entry_desc(const struct fetched *f, const char *repo, const char *tag)
{
    json_t *desc = json_pack("{s:s, s:s, s:I}", "mediaType", f->info->media_type, "digest",
                             f->d.str, "size", (json_int_t)f->len);
    json_t *ann = json_object();
    if (desc == NULL || ann == NULL) {
        json_decref(desc);
        json_decref(ann);
        return NULL;
    }
    if (f->info->artifact_type[0] != '\0' && f->info->has_subject) {
        json_object_set_new(desc, "artifactType", json_string(f->info->artifact_type));
    }
    if (tag != NULL) {
        char ref[1024];
        snprintf(ref, sizeof(ref), "%s:%s", repo, tag);
        json_object_set_new(ann, BUNDLE_REF_NAME, json_string(ref));
    }
    json_object_set_new(ann, BUNDLE_REPOSITORY, json_string(repo));
    json_object_set_new(desc, "annotations", ann);
    return desc;
}

/* The referrers of d: the referrers API, else the tag <alg>-<hex>. */
static enum berth_err put_referrers(struct mirror *m, struct upstream_client *c, const char *host,
                                    const char *repo, const struct digest *d, int depth)
{
    char err[512];
    struct upstream_manifest um;
    char what[1024];
    snprintf(what, sizeof(what), "%s/%s/referrers/%s", host, repo, d->str);
    enum berth_err rc = BERTH_OK;
    for (int attempt = 0;; attempt++) {
        rc = upstream_get_referrers(c, repo, d->str, m->opt->manifest_max, &um, err, sizeof(err));
        if (rc == BERTH_OK || !transient(rc) || attempt + 1 == ATTEMPTS) {
            break;
        }
        retry_wait(attempt, what, err);
    }
    if (rc == BERTH_ENOTFOUND) {
        char tag[DIGEST_STR_MAX + 8];
        snprintf(tag, sizeof(tag), "%s-%.64s", digest_alg_name(d->alg), digest_hex(d));
        rc =
            upstream_get_manifest(c, repo, tag, false, m->opt->manifest_max, &um, err, sizeof(err));
        if (rc == BERTH_ENOTFOUND) {
            return BERTH_OK; /* none */
        }
    }
    if (rc != BERTH_OK) {
        return fail(m, rc, "referrers of %s/%s@%s: %s", host, repo, d->str, err);
    }
    json_t *doc = json_loadb(um.body, um.len, 0, NULL);
    upstream_manifest_fini(&um);
    json_t *list = json_object_get(doc, "manifests");
    if (!json_is_array(list)) {
        json_decref(doc);
        return fail(m, BERTH_EINVAL, "referrers of %s/%s@%s: not an image index", host, repo,
                    d->str);
    }
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item)
    {
        const char *text = json_string_value(json_object_get(item, "digest"));
        struct digest rd;
        if (text == NULL || digest_parse(text, &rd) != BERTH_OK) {
            rc = fail(m, BERTH_EINVAL, "referrers of %s/%s@%s: manifests[%zu] has no digest", host,
                      repo, d->str, i);
            break;
        }
        if (bundle_writer_done(&m->w, rd.str)) {
            continue;
        }
        struct fetched f;
        rc = fetch_manifest(m, c, host, repo, rd.str, &rd, NULL, &f);
        if (rc == BERTH_OK &&
            (!f.info->has_subject || strcmp(f.info->subject.digest.str, d->str) != 0)) {
            fetched_fini(&f);
            continue; /* the tag schema's list is maintained by clients: trust only the subject */
        }
        if (rc == BERTH_OK) {
            rc = bundle_writer_entry(&m->w, entry_desc(&f, repo, NULL));
        }
        if (rc == BERTH_OK) {
            rc = put_tree(m, c, host, repo, &f, depth + 1);
        }
        fetched_fini(&f);
        if (rc != BERTH_OK) {
            break;
        }
    }
    json_decref(doc);
    return rc;
}

/* ---- images ---- */

/* A manifest after everything it references (the children of an index, of
 * the platforms asked for; an image's config and layers), then its
 * referrers. */
static enum berth_err put_tree(struct mirror *m, struct upstream_client *c, const char *host,
                               const char *repo, struct fetched *f, int depth)
{
    if (bundle_writer_done(&m->w, f->d.str)) {
        return BERTH_OK;
    }
    if (depth > NEST_MAX) {
        return fail(m, BERTH_EINVAL, "%s/%s@%s: nested more than %d deep", host, repo, f->d.str,
                    NEST_MAX);
    }
    enum berth_err rc = BERTH_OK;
    if (f->info->is_index) {
        json_t *doc = json_loadb(f->body, f->len, 0, NULL);
        json_t *list = json_object_get(doc, "manifests");
        size_t kept = 0;
        for (size_t i = 0; i < f->info->ref_count && rc == BERTH_OK; i++) {
            const struct manifest_desc *child = &f->info->refs[i];
            if (!platform_wanted(m, json_array_get(list, i))) {
                continue;
            }
            kept++;
            if (bundle_writer_done(&m->w, child->digest.str)) {
                continue;
            }
            struct fetched cf;
            rc = fetch_manifest(m, c, host, repo, child->digest.str, &child->digest, NULL, &cf);
            if (rc == BERTH_OK) {
                rc = put_tree(m, c, host, repo, &cf, depth + 1);
            }
            fetched_fini(&cf);
        }
        json_decref(doc);
        if (rc == BERTH_OK && kept == 0 && f->info->ref_count > 0) {
            return fail(m, BERTH_ENOTFOUND, "%s/%s@%s: no manifest for the platforms asked for",
                        host, repo, f->d.str);
        }
        if (kept < f->info->ref_count) {
            m->sparse++;
        }
    } else {
        if (f->info->has_config) {
            rc = plan_blob(m, host, repo, &f->info->config, f->d.str);
        }
        for (size_t i = 0; i < f->info->ref_count && rc == BERTH_OK; i++) {
            rc = plan_blob(m, host, repo, &f->info->refs[i], f->d.str);
        }
    }
    if (rc == BERTH_OK && !bundle_writer_done(&m->w, f->d.str)) {
        rc = plan_manifest(m, f);
    }
    if (rc == BERTH_OK) {
        rc = put_referrers(m, c, host, repo, &f->d, depth);
    }
    return rc;
}

/* ---- the manifests walked ahead, in parallel ---- */

/* What the walk ahead found of one reference. */
struct ahead_ref {
    struct digest d; /* where its tag pointed (the manifest is in <out>.parts/) */
    bool resolved;
    enum berth_err rc; /* its own manifest's failure, or BERTH_OK */
    char why[1024];
};

struct ahead {
    struct mirror *m;
    const char *const *refs;
    size_t count;
    struct ahead_ref *out;
    size_t next; /* the reference a thread takes next (m->mu) */
};

/* Whether this thread is the first to take manifest d. */
static bool claim(struct mirror *m, const struct digest *d)
{
    pthread_mutex_lock(&m->mu);
    bool mine =
        !digest_set_has(&m->claimed, d->str) && digest_set_add(&m->claimed, d->str) == BERTH_OK;
    pthread_mutex_unlock(&m->mu);
    return mine;
}

/* The children of an index (of the platforms asked for), and theirs,
 * fetched into <out>.parts/; a failure is left for the walk proper. */
static void ahead_tree(struct mirror *m, struct upstream_client *c, const char *host,
                       const char *repo, const struct fetched *f, int depth)
{
    if (!f->info->is_index || depth >= NEST_MAX) {
        return;
    }
    json_t *doc = json_loadb(f->body, f->len, 0, NULL);
    json_t *list = json_object_get(doc, "manifests");
    for (size_t i = 0; i < f->info->ref_count; i++) {
        const struct manifest_desc *child = &f->info->refs[i];
        if (!platform_wanted(m, json_array_get(list, i)) || !claim(m, &child->digest)) {
            continue;
        }
        struct fetched cf;
        char why[1024];
        if (load_manifest(m, c, host, repo, child->digest.str, &child->digest, NULL, &cf, why,
                          sizeof(why)) == BERTH_OK) {
            ahead_tree(m, c, host, repo, &cf, depth + 1);
            fetched_fini(&cf);
        }
    }
    json_decref(doc);
}

static bool remote_find(const struct mirror *m, const char *host, size_t *out)
{
    for (size_t i = 0; i < m->remote_count; i++) {
        if (strcmp(m->remotes[i].host, host) == 0) {
            *out = i;
            return true;
        }
    }
    return false;
}

/* A thread walking ahead: the references one after the other (the next
 * not taken), each with the children of its indexes. */
static void *ahead_thread(void *arg)
{
    struct ahead *a = arg;
    struct mirror *m = a->m;
    struct upstream_client *clients[CLIENTS_MAX] = {0};
    for (;;) {
        pthread_mutex_lock(&m->mu);
        size_t i = a->next < a->count ? a->next++ : a->count;
        pthread_mutex_unlock(&m->mu);
        if (i == a->count) {
            break;
        }
        struct bundle_remote_ref r;
        char why[512];
        size_t ri = 0;
        if (!bundle_remote_ref_parse(a->refs[i], &r, why, sizeof(why)) ||
            !remote_find(m, r.host, &ri)) {
            continue; /* the walk proper says what is wrong */
        }
        if (clients[ri] == NULL && (clients[ri] = remote_client(m, &m->remotes[ri])) == NULL) {
            continue;
        }
        struct digest want;
        if (r.by_digest && (digest_parse(r.reference, &want) != BERTH_OK || !claim(m, &want))) {
            continue;
        }
        struct ahead_ref *out = &a->out[i];
        struct fetched f;
        out->rc = load_manifest(m, clients[ri], r.host, r.repo, r.reference,
                                r.by_digest ? &want : NULL, NULL, &f, out->why, sizeof(out->why));
        if (out->rc == BERTH_OK) {
            out->d = f.d;
            out->resolved = !r.by_digest;
            ahead_tree(m, clients[ri], r.host, r.repo, &f, 0);
            fetched_fini(&f);
        }
    }
    for (size_t i = 0; i < CLIENTS_MAX; i++) {
        upstream_client_free(clients[i]);
    }
    return NULL;
}

/* Step 1a: the manifests of every reference, and of the children of their
 * indexes, fetched into <out>.parts/ by up to parallel threads (each with
 * its own clients; the registries' credentials taken on this thread
 * first), so that the walk proper (in order, on this thread) reads them
 * from there. Each tag's digest and each reference's own failure into out
 * (count of them). */
static void walk_ahead(struct mirror *m, const char *const *refs, size_t count, int parallel,
                       struct ahead_ref *out)
{
    for (size_t i = 0; i < count; i++) {
        struct bundle_remote_ref r;
        char why[512];
        struct upstream_client *c;
        if (bundle_remote_ref_parse(refs[i], &r, why, sizeof(why)) &&
            client_for(m, r.host, &c) != BERTH_OK) {
            m->w.why[0] = '\0'; /* the walk proper says it again, in order */
        }
    }
    struct ahead a = {.m = m, .refs = refs, .count = count, .out = out};
    size_t threads = (size_t)parallel < count ? (size_t)parallel : count;
    char item[128];
    snprintf(item, sizeof(item), "walking %zu images, %zu at a time", count, threads);
    m->w.item = item;
    m->w.last_progress_ns = 0;
    bundle_writer_report(&m->w, false);
    pthread_t tids[PARALLEL_MAX];
    size_t started = 0;
    for (; started < threads; started++) {
        if (pthread_create(&tids[started], NULL, ahead_thread, &a) != 0) {
            break;
        }
    }
    for (size_t i = 0; i < started; i++) {
        pthread_join(tids[i], NULL);
    }
    m->w.item = NULL;
}

static enum berth_err mirror_one(struct mirror *m, const char *text, const struct ahead_ref *pre)
{
    struct bundle_remote_ref r;
    char why[512];
    if (!bundle_remote_ref_parse(text, &r, why, sizeof(why))) {
        return fail(m, BERTH_EINVAL, "%s", why);
    }
    struct upstream_client *c = NULL;
    enum berth_err rc = client_for(m, r.host, &c);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct digest want;
    if (r.by_digest) {
        digest_parse(r.reference, &want);
    }
    if (pre->rc != BERTH_OK) {
        return fail(m, pre->rc, "%s", pre->why); /* tried (and tried again) already */
    }
    struct fetched f;
    rc = fetch_manifest(m, c, r.host, r.repo, r.reference, r.by_digest ? &want : NULL,
                        pre->resolved ? &pre->d : NULL, &f);
    if (rc != BERTH_OK) {
        return rc;
    }
    rc = bundle_writer_entry(&m->w, entry_desc(&f, r.repo, r.by_digest ? NULL : r.reference));
    if (rc == BERTH_OK) {
        rc = put_tree(m, c, r.host, r.repo, &f, 0);
    }
    fetched_fini(&f);
    return rc;
}

enum berth_err bundle_mirror(const char *const *refs, size_t count, const char *path, bool zstd,
                             const struct bundle_mirror_options *opt,
                             struct bundle_mirror_stats *stats, char *why, size_t why_cap)
{
    for (size_t i = 0; i < opt->platform_count; i++) {
        const char *p = opt->platforms[i];
        const char *slash = strchr(p, '/');
        if (slash == NULL || slash == p || slash[1] == '\0' || slash[1] == '/' ||
            strlen(p) >= 128) {
            snprintf(why, why_cap, "--platform '%.80s' is not OS/ARCH[/VARIANT]", p);
            return BERTH_EINVAL;
        }
    }
    int parallel = opt->parallel > 0 ? opt->parallel : PARALLEL_DEFAULT;
    if (parallel > PARALLEL_MAX) {
        snprintf(why, why_cap, "--parallel %d: at most %d", parallel, PARALLEL_MAX);
        return BERTH_EINVAL;
    }
    struct mirror m = {.opt = opt};
    bundle_parts_init(&m.parts);
    enum berth_err rc = bundle_writer_prepare(&m.w, path, opt->since, opt->progress,
                                              opt->progress_arg, why, why_cap);
    if (rc != BERTH_OK) {
        return rc;
    }
    /* 1: the manifests (kept in <path>.parts): walked ahead in parallel,
     * then in order (from the parts) into what the bundle holds */
    pthread_mutex_init(&m.mu, NULL);
    char parts_why[1024];
    rc = bundle_parts_open(&m.parts, path, parts_why, sizeof(parts_why));
    if (rc != BERTH_OK) {
        fail(&m, rc, "%s", parts_why);
    }
    m.w.items_total = (int64_t)count;
    struct ahead_ref *pre = rc == BERTH_OK ? calloc(count ? count : 1, sizeof(*pre)) : NULL;
    if (rc == BERTH_OK && pre == NULL) {
        rc = BERTH_ENOMEM;
    }
    if (rc == BERTH_OK) {
        walk_ahead(&m, refs, count, parallel, pre);
    }
    for (size_t i = 0; i < count && rc == BERTH_OK; i++) {
        m.w.item = refs[i];
        m.w.items_done = (int64_t)i;
        m.w.last_progress_ns = 0; /* a new image: always shown */
        bundle_writer_report(&m.w, false);
        rc = mirror_one(&m, refs[i], &pre[i]);
    }
    free(pre);
    if (rc == BERTH_OK) {
        log_info("event=mirror_manifests fetched=%zu kept=%zu", m.manifests_fetched,
                 m.manifests_kept);
    }
    /* 2: the blobs, into <path>.parts */
    if (rc == BERTH_OK) {
        m.w.items_done = count > 0 ? (int64_t)count - 1 : 0;
    }
    if (rc == BERTH_OK) {
        rc = fetch_blobs(&m, parallel);
    }
    /* 3: the bundle */
    if (rc == BERTH_OK) {
        m.w.item = "writing the bundle";
        rc = write_bundle(&m, zstd);
    }
    for (size_t i = 0; i < m.remote_count; i++) {
        remote_fini(&m.remotes[i]);
    }
    for (size_t i = 0; i < m.plan_count; i++) {
        free(m.plan[i].body);
    }
    free(m.plan);
    if (rc == BERTH_OK) {
        m.w.items_done = (int64_t)count;
        m.w.item = NULL;
        struct bundle_export_stats done = m.w.stats;
        rc = bundle_writer_finish(&m.w);
        if (rc == BERTH_OK) {
            stats->written = done;
            stats->sparse_indexes = m.sparse;
            bundle_parts_remove(&m.parts);
        }
    } else {
        if (why[0] == '\0') {
            snprintf(why, why_cap, "%s", berth_strerror(rc));
        }
        bundle_writer_abort(&m.w);
        bundle_parts_remove_if_empty(&m.parts);
    }
    bundle_parts_close(&m.parts);
    digest_set_fini(&m.seen);
    digest_set_fini(&m.claimed);
    pthread_mutex_destroy(&m.mu);
    return rc;
}
