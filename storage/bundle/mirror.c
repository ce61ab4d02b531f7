/*
 * berth mirror: images of other registries written straight into a bundle
 * (the bundle writer, writer.c), with no store. Manifests are fetched
 * whole (bounded) and verified before anything of them is written; blobs
 * are streamed from the registry into the archive entry while hashed, and
 * a blob whose bytes do not match its descriptor fails the whole bundle
 * (the temporary file is removed). One registry client per registry host.
 */
#include "storage/bundle/bundle.h"
#include "storage/bundle/bundle_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

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

struct remote {
    char host[256];
    struct upstream_client *c;
};

struct mirror {
    const struct bundle_mirror_options *opt;
    struct bundle_writer w;
    struct remote remotes[CLIENTS_MAX];
    size_t remote_count;
    int64_t sparse;
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
    struct upstream_client *c = upstream_client_new(base, user, password, m->opt->timeout_ms);
    if (c == NULL ||
        (m->opt->ca_file != NULL && upstream_client_set_ca_file(c, m->opt->ca_file) != BERTH_OK)) {
        upstream_client_free(c);
        return BERTH_ENOMEM;
    }
    upstream_client_set_role(c, "mirror");
    struct remote *r = &m->remotes[m->remote_count++];
    str_copy(r->host, sizeof(r->host), host);
    r->c = c;
    *out = c;
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

/* A manifest of repo by tag or digest, verified (the digest asked for, or
 * the registry's Docker-Content-Digest) and parsed. */
static enum berth_err fetch_manifest(struct mirror *m, struct upstream_client *c, const char *host,
                                     const char *repo, const char *reference,
                                     const struct digest *expected, struct fetched *out)
{
    memset(out, 0, sizeof(*out));
    char err[512];
    char what[1024];
    snprintf(what, sizeof(what), "%s/%s%s%s", host, repo, expected ? "@" : ":", reference);
    struct upstream_manifest um;
    enum berth_err rc = BERTH_OK;
    for (int attempt = 0;; attempt++) {
        rc = upstream_get_manifest(c, repo, reference, false, m->opt->manifest_max, &um, err,
                                   sizeof(err));
        if (rc == BERTH_OK || !transient(rc) || attempt + 1 == ATTEMPTS) {
            break;
        }
        retry_wait(attempt, what, err);
    }
    if (rc != BERTH_OK) {
        return fail(m, rc, "%s: %s", what, err);
    }
    struct digest told;
    bool has_told = um.digest[0] != '\0' && digest_parse(um.digest, &told) == BERTH_OK;
    enum digest_alg alg = expected ? expected->alg : has_told ? told.alg : DIGEST_SHA256;
    rc = digest_buffer(alg, um.body, um.len, &out->d);
    if (rc == BERTH_OK && expected != NULL && strcmp(out->d.str, expected->str) != 0) {
        rc = fail(m, BERTH_EDIGEST, "%s: the manifest does not match its digest (it is %s)", what,
                  out->d.str);
    } else if (rc == BERTH_OK && expected == NULL && has_told &&
               strcmp(out->d.str, told.str) != 0) {
        rc = fail(m, BERTH_EDIGEST,
                  "%s: the manifest (%s) does not match the registry's Docker-Content-Digest %s",
                  what, out->d.str, told.str);
    }
    char mt[MANIFEST_MEDIA_TYPE_MAX + 1];
    str_copy(mt, sizeof(mt), um.content_type);
    mt[strcspn(mt, "; ")] = '\0';
    char why[256];
    if (rc == BERTH_OK) {
        rc = manifest_parse(um.body, um.len, manifest_is_known_type(mt) ? mt : NULL, &out->info,
                            why, sizeof(why));
        if (rc != BERTH_OK) {
            rc = fail(m, BERTH_EINVAL, "%s: not a manifest berth stores: %s", what, why);
        }
    }
    if (rc != BERTH_OK) {
        upstream_manifest_fini(&um);
        fetched_fini(out);
        return rc;
    }
    out->body = um.body;
    out->len = um.len;
    return BERTH_OK;
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

/* ---- blobs ---- */

struct sink {
    struct mirror *m;
    const struct digest *d;
    struct digest_ctx *ctx;
    int64_t size;
    int64_t told; /* the registry's Content-Length */
    bool begun;   /* the tar entry is started: no second try */
};

static void on_length(void *arg, int64_t length)
{
    struct sink *s = arg;
    s->told = length;
}

static enum berth_err on_write(void *arg, const void *p, size_t n)
{
    struct sink *s = arg;
    if (s->told >= 0 && s->told != s->size) {
        return bundle_writer_fail(
            &s->m->w, BERTH_EDIGEST,
            "%s: the registry sends %lld bytes where its descriptor says %lld", s->m->w.entry,
            (long long)s->told, (long long)s->size);
    }
    enum berth_err rc = BERTH_OK;
    if (!s->begun) {
        /* the entry starts with the first byte, so that a request failing
         * before it can be tried again */
        rc = bundle_writer_begin(&s->m->w, s->d, s->size);
        s->begun = true;
    }
    if (rc == BERTH_OK) {
        rc = digest_ctx_update(s->ctx, p, n);
    }
    return rc == BERTH_OK ? bundle_writer_data(&s->m->w, p, n) : rc;
}

static enum berth_err put_blob(struct mirror *m, struct upstream_client *c, const char *host,
                               const char *repo, const struct manifest_desc *desc,
                               const char *owner)
{
    if (desc->non_distributable || !bundle_writer_wants(&m->w, &desc->digest, desc->size)) {
        return BERTH_OK; /* never pushed anywhere, or written already */
    }
    struct sink s = {.m = m,
                     .d = &desc->digest,
                     .ctx = digest_ctx_new(desc->digest.alg),
                     .size = desc->size,
                     .told = -1};
    if (s.ctx == NULL) {
        return BERTH_ENOMEM;
    }
    char what[1024];
    snprintf(what, sizeof(what), "%s/%s@%s", host, repo, desc->digest.str);
    char err[512] = "";
    enum berth_err rc = BERTH_OK;
    for (int attempt = 0;; attempt++) {
        s.told = -1;
        rc =
            upstream_get_blob(c, repo, desc->digest.str, on_length, on_write, &s, err, sizeof(err));
        if (rc == BERTH_OK || s.begun || !transient(rc) || attempt + 1 == ATTEMPTS) {
            break;
        }
        retry_wait(attempt, what, err);
    }
    if (rc == BERTH_OK && !s.begun) {
        rc = bundle_writer_begin(&m->w, &desc->digest, desc->size); /* no byte came */
        s.begun = true;
    }
    if (rc != BERTH_OK) {
        fail(m, rc, "blob %s of %s/%s@%s: %s", desc->digest.str, host, repo, owner, err);
    }
    struct digest got;
    if (rc == BERTH_OK) {
        rc = digest_ctx_final(s.ctx, &got);
    }
    digest_ctx_free(s.ctx);
    if (rc == BERTH_OK && m->w.entry_written == desc->size &&
        strcmp(got.str, desc->digest.str) != 0) {
        rc = fail(m, BERTH_EDIGEST,
                  "blob %s of %s/%s@%s: the content does not match its digest (it is %s)",
                  desc->digest.str, host, repo, owner, got.str);
    }
    if (rc == BERTH_OK) {
        rc = bundle_writer_end(&m->w, &desc->digest);
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
        rc = fetch_manifest(m, c, host, repo, rd.str, &rd, &f);
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
            rc = fetch_manifest(m, c, host, repo, child->digest.str, &child->digest, &cf);
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
            rc = put_blob(m, c, host, repo, &f->info->config, f->d.str);
        }
        for (size_t i = 0; i < f->info->ref_count && rc == BERTH_OK; i++) {
            rc = put_blob(m, c, host, repo, &f->info->refs[i], f->d.str);
        }
    }
    if (rc == BERTH_OK && !bundle_writer_done(&m->w, f->d.str)) {
        bool wanted = bundle_writer_wants(&m->w, &f->d, (int64_t)f->len);
        rc = wanted ? bundle_writer_put(&m->w, &f->d, f->body, f->len) : BERTH_OK;
        if (rc == BERTH_OK && wanted) {
            m->w.stats.manifests++;
        }
    }
    if (rc == BERTH_OK) {
        rc = put_referrers(m, c, host, repo, &f->d, depth);
    }
    return rc;
}

static enum berth_err mirror_one(struct mirror *m, const char *text)
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
    struct fetched f;
    rc = fetch_manifest(m, c, r.host, r.repo, r.reference, r.by_digest ? &want : NULL, &f);
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
    struct mirror m = {.opt = opt};
    enum berth_err rc = bundle_writer_open(&m.w, path, zstd, opt->since, opt->progress,
                                           opt->progress_arg, why, why_cap);
    if (rc != BERTH_OK) {
        return rc;
    }
    m.w.items_total = (int64_t)count;
    for (size_t i = 0; i < count && rc == BERTH_OK; i++) {
        m.w.item = refs[i];
        m.w.items_done = (int64_t)i;
        m.w.last_progress_ns = 0; /* a new image: always shown */
        bundle_writer_report(&m.w, false);
        rc = mirror_one(&m, refs[i]);
    }
    for (size_t i = 0; i < m.remote_count; i++) {
        upstream_client_free(m.remotes[i].c);
    }
    if (rc != BERTH_OK) {
        if (why[0] == '\0') {
            snprintf(why, why_cap, "%s", berth_strerror(rc));
        }
        bundle_writer_abort(&m.w);
        return rc;
    }
    m.w.items_done = (int64_t)count;
    m.w.item = NULL;
    struct bundle_export_stats done = m.w.stats;
    rc = bundle_writer_finish(&m.w);
    if (rc == BERTH_OK) {
        stats->written = done;
        stats->sparse_indexes = m.sparse;
    }
    return rc;
}
