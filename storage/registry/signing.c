/*
 * Managed signing: which profiles sign a pushed image, their keys, and the
 * signature pushed as a referrer; see signing.h. Loaded signers are kept
 * for the life of the process, behind a mutex.
 */
#include "storage/registry/signing.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/fault.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/str.h"
#include "common/timeutil.h"
#include "common/wake.h"
#include "storage/blob/blob.h"
#include "storage/meta/meta.h"
#include "storage/meta/meta_scan.h"
#include "storage/registry/registry.h"
#include "storage/spec/notation.h"
#include "storage/store/store.h"

#define PROFILE_PREFIX "/signing-profiles/"
#define PEM_MAX (64 * 1024)
#define EMPTY_CONFIG "{}"
#define EMPTY_CONFIG_TYPE "application/vnd.oci.empty.v1+json"
#define OCI_MANIFEST_TYPE "application/vnd.oci.image.manifest.v1+json"
/* Pending signatures read per query. */
#define SIGNING_BATCH 32

bool signing_filter_match(const char *filter, const char *repo)
{
    return str_glob_match(filter, repo);
}

const char *signing_profile_name(const char *arn)
{
    const char *p = strstr(arn, PROFILE_PREFIX);
    if (p == NULL || p[sizeof(PROFILE_PREFIX) - 1] == '\0') {
        return NULL;
    }
    return p + sizeof(PROFILE_PREFIX) - 1;
}

/* ---- signers ---- */

struct cached_signer {
    struct cached_signer *next;
    char name[256];
    struct notation_signer *signer;
    uint64_t generation; /* of signing_reload when it was loaded */
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cached_signer *cache;
/* Signers of older generations: a signature in progress may still use
 * one, so they are kept (a few per SIGHUP) until the process ends. */
static struct cached_signer *retired;
static uint64_t generation;

void signing_reload(void)
{
    pthread_mutex_lock(&cache_lock);
    generation++;
    pthread_mutex_unlock(&cache_lock);
}

/* The PEM text of a profile: its file, or the generated one in the
 * metadata (generated now when there is none yet). */
static enum berth_err profile_pem(struct store *st, const char *name, char **pem, size_t *len,
                                  char *why, size_t why_cap)
{
    const char *dir = store_options(st)->signing_profiles_dir;
    if (dir != NULL && dir[0] != '\0') {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s.pem", dir, name);
        enum berth_err rc = file_read_bounded(path, PEM_MAX, pem, len);
        if (rc != BERTH_ENOTFOUND) {
            if (rc != BERTH_OK) {
                snprintf(why, why_cap, "cannot read %.300s: %s", path, berth_strerror(rc));
            }
            return rc;
        }
    }
    struct meta *m;
    enum berth_err got = store_meta_get(st, &m);
    if (got != BERTH_OK) {
        snprintf(why, why_cap, "no metadata connection");
        return got;
    }
    char secret[64 + 256];
    snprintf(secret, sizeof(secret), "signing.profile.%s", name);
    char *buf = malloc(META_SERVER_SECRET_MAX + 1);
    if (buf == NULL) {
        return BERTH_ENOMEM;
    }
    size_t n = 0;
    enum berth_err rc = meta_server_secret_get(m, secret, buf, META_SERVER_SECRET_MAX, &n);
    if (rc == BERTH_ENOTFOUND) {
        char *fresh = NULL;
        rc = notation_generate(name, time_now_ms(), &fresh);
        if (rc == BERTH_OK) {
            /* the first writer wins: every replica then reads the same */
            rc = meta_server_secret_add(m, secret, fresh, strlen(fresh), time_now_ms());
            if (rc == BERTH_OK) {
                log_info("event=signing_profile_generated profile=%s", name);
                rc = meta_server_secret_get(m, secret, buf, META_SERVER_SECRET_MAX, &n);
            }
        }
        free(fresh);
    }
    if (rc != BERTH_OK) {
        free(buf);
        snprintf(why, why_cap, "cannot load or create the key of profile %s: %s", name,
                 berth_strerror(rc));
        return rc;
    }
    buf[n] = '\0';
    *pem = buf;
    *len = n;
    return BERTH_OK;
}

/* The signer of a profile (borrowed: kept until the process ends). */
static enum berth_err get_signer(struct store *st, const char *name,
                                 const struct notation_signer **out, char *why, size_t why_cap)
{
    pthread_mutex_lock(&cache_lock);
    enum berth_err rc = BERTH_OK;
    struct cached_signer *c, **link = &cache;
    while ((c = *link) != NULL) {
        if (c->generation != generation) {
            /* loaded before the last reload: read the key again */
            *link = c->next;
            c->next = retired;
            retired = c;
            continue;
        }
        if (strcmp(c->name, name) == 0) {
            break;
        }
        link = &c->next;
    }
    if (c == NULL) {
        char *pem = NULL;
        size_t len = 0;
        struct notation_signer *signer = NULL;
        rc = profile_pem(st, name, &pem, &len, why, why_cap);
        if (rc == BERTH_OK) {
            char msg[256];
            rc = notation_signer_load(pem, len, &signer, msg, sizeof(msg));
            if (rc != BERTH_OK) {
                snprintf(why, why_cap, "the key of profile %s is unusable: %s", name, msg);
            }
        }
        free(pem);
        c = rc == BERTH_OK ? calloc(1, sizeof(*c)) : NULL;
        if (rc == BERTH_OK && c == NULL) {
            rc = BERTH_ENOMEM;
        }
        if (rc == BERTH_OK) {
            str_copy(c->name, sizeof(c->name), name);
            c->signer = signer;
            c->generation = generation;
            c->next = cache;
            cache = c;
        } else {
            notation_signer_free(signer);
        }
    }
    if (rc == BERTH_OK) {
        *out = c->signer;
    }
    pthread_mutex_unlock(&cache_lock);
    return rc;
}

/* ---- one signature ---- */

/* Stage bytes and publish them as a blob linked to repo. */
static enum berth_err put_blob(struct store *st, const char *repo, const char *bytes, size_t len,
                               struct digest *d)
{
    enum berth_err rc = digest_buffer(DIGEST_SHA256, bytes, len, d);
    if (rc != BERTH_OK) {
        return rc;
    }
    char stage[BLOB_STAGE_NAME_MAX + 1];
    rc = blob_stage_put(store_blobs(st), bytes, len, stage);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct meta_blob blob;
    struct registry_status s;
    rc = registry_blob_publish(st, repo, stage, d, (int64_t)len, &blob, &s);
    if (rc != BERTH_OK) {
        blob_stage_remove(store_blobs(st), stage);
    }
    return rc;
}

/* Sign, push the signature manifest; *sig_digest its digest. */
static enum berth_err sign_one(struct store *st, const struct notation_signer *signer,
                               const char *repo, const struct digest *d, const char *media_type,
                               int64_t size, struct digest *sig_digest, char *why, size_t why_cap)
{
    int64_t now = time_now_ms();
    char *envelope = NULL, *thumbprints = NULL, *manifest = NULL;
    size_t envelope_len = 0;
    json_t *obj = NULL;
    struct digest env_digest, config_digest;
    enum berth_err rc =
        notation_sign(signer, media_type, d->str, size, now, &envelope, &envelope_len);
    if (rc == BERTH_OK) {
        rc = notation_thumbprints(signer, &thumbprints);
    }
    if (rc != BERTH_OK) {
        snprintf(why, why_cap, "signing failed: %s", berth_strerror(rc));
        goto out;
    }
    rc = put_blob(st, repo, envelope, envelope_len, &env_digest);
    if (rc == BERTH_OK) {
        rc = put_blob(st, repo, EMPTY_CONFIG, strlen(EMPTY_CONFIG), &config_digest);
    }
    if (rc != BERTH_OK) {
        snprintf(why, why_cap, "storing the signature failed: %s", berth_strerror(rc));
        goto out;
    }
    char created[32];
    time_format_rfc3339(now - now % 1000, created, sizeof(created));
    char *dot = strchr(created, '.');
    if (dot != NULL) {
        dot[0] = 'Z';
        dot[1] = '\0';
    }
    obj = json_pack("{s:i, s:s, s:s, s:{s:s, s:s, s:i, s:s}, s:[{s:s, s:s, s:I}], "
                    "s:{s:s, s:s, s:I}, s:{s:s, s:s}}",
                    "schemaVersion", 2, "mediaType", OCI_MANIFEST_TYPE, "artifactType",
                    NOTATION_ARTIFACT_TYPE, "config", "mediaType", EMPTY_CONFIG_TYPE, "digest",
                    config_digest.str, "size", 2, "data", "e30=", "layers", "mediaType",
                    NOTATION_ENVELOPE_TYPE, "digest", env_digest.str, "size",
                    (json_int_t)envelope_len, "subject", "mediaType", media_type, "digest", d->str,
                    "size", (json_int_t)size, "annotations", NOTATION_THUMBPRINT_ANNOTATION,
                    thumbprints, "org.opencontainers.image.created", created);
    manifest = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    if (manifest == NULL) {
        rc = BERTH_ENOMEM;
        snprintf(why, why_cap, "out of memory");
        goto out;
    }
    struct registry_put put = {
        .repo = repo,
        .body = manifest,
        .len = strlen(manifest),
        .content_type = OCI_MANIFEST_TYPE,
    };
    struct registry_put_result res;
    struct registry_status s;
    rc = registry_manifest_put(st, &put, &res, &s);
    if (rc != BERTH_OK) {
        snprintf(why, why_cap, "storing the signature failed: %.400s", s.message);
        goto out;
    }
    *sig_digest = res.digest;
out:
    json_decref(obj);
    free(manifest);
    free(envelope);
    free(thumbprints);
    return rc;
}

/* Record one outcome; failures to record are logged. */
static void record(struct store *st, int64_t manifest_id, const char *arn, const char *status,
                   const char *code, const char *reason, const char *sig_digest)
{
    struct meta *m;
    struct meta_signing_status row = {arn, status, code, reason, sig_digest};
    enum berth_err rc = store_meta_get(st, &m);
    if (rc == BERTH_OK) {
        rc = meta_signing_status_put(m, manifest_id, &row, time_now_ms());
    }
    if (rc != BERTH_OK) {
        log_error("event=signing_status_failed manifest=%lld err=%s", (long long)manifest_id,
                  berth_strerror(rc));
    }
}

/* Whether a rule (an object validated by the API) picks repo. */
static bool rule_matches(const json_t *rule, const char *repo)
{
    const json_t *filters = json_object_get(rule, "repositoryFilters");
    if (json_array_size(filters) == 0) {
        return true; /* no filters: every repository */
    }
    size_t i;
    const json_t *f;
    json_array_foreach(filters, i, f)
    {
        const char *pattern = json_string_value(json_object_get(f, "filter"));
        if (pattern != NULL && signing_filter_match(pattern, repo)) {
            return true;
        }
    }
    return false;
}

/* ---- the queue ---- */

static struct wake wake = WAKE_INIT;

void signing_notify(void)
{
    wake_notify(&wake);
}

void signing_wait(uint64_t *seen, int64_t timeout_ms, const atomic_bool *stop)
{
    wake_wait(&wake, seen, timeout_ms, stop);
}

void signing_queue_pushed(struct store *st, const char *repo, int64_t manifest_id)
{
    struct meta *m = store_meta(st);
    char *text = NULL;
    if (m == NULL || meta_setting_get(m, META_SIGNING_CONFIG_SETTING, &text) != BERTH_OK ||
        text == NULL) {
        return;
    }
    json_t *config = json_loads(text, 0, NULL);
    free(text);
    const json_t *rules = json_object_get(config, "rules");
    bool any = false;
    size_t i;
    const json_t *rule;
    json_array_foreach(rules, i, rule)
    {
        const char *arn = json_string_value(json_object_get(rule, "signingProfileArn"));
        if (arn == NULL || !rule_matches(rule, repo)) {
            continue;
        }
        /* a profile two rules pick is queued once (the row is per profile) */
        bool queued = false;
        enum berth_err rc = meta_signing_queue(m, manifest_id, arn, time_now_ms(), &queued);
        if (rc != BERTH_OK) {
            log_error("event=signing_queue_failed repo=%s manifest=%lld profile=%s err=%s", repo,
                      (long long)manifest_id, arn, berth_strerror(rc));
        }
        any = any || queued;
    }
    json_decref(config);
    if (any) {
        signing_notify();
    }
}

/* A pending signature, copied out of the query. */
struct job_copy {
    int64_t manifest_id;
    char arn[1024];
    char repo[256];
    char digest[DIGEST_STR_MAX];
    char media_type[256];
    int64_t size;
};

struct job_list {
    struct job_copy v[SIGNING_BATCH];
    size_t n;
};

static int collect_job(void *arg, const struct meta_signing_job *job)
{
    struct job_list *l = arg;
    if (l->n < SIGNING_BATCH) {
        struct job_copy *c = &l->v[l->n++];
        c->manifest_id = job->manifest_id;
        str_copy(c->arn, sizeof(c->arn), job->profile_arn);
        str_copy(c->repo, sizeof(c->repo), job->repo);
        str_copy(c->digest, sizeof(c->digest), job->digest);
        str_copy(c->media_type, sizeof(c->media_type), job->media_type);
        c->size = job->size;
    }
    return 0;
}

/* Make one pending signature and record how it went. */
static void run_job(struct store *st, const struct job_copy *job)
{
    char why[512] = "";
    struct digest d;
    if (digest_parse(job->digest, &d) != BERTH_OK) {
        record(st, job->manifest_id, job->arn, "FAILED", "SIGNATURE_NOT_STORED",
               "the image's digest is not one berth can sign", NULL);
        return;
    }
    const char *name = signing_profile_name(job->arn);
    const struct notation_signer *signer = NULL;
    enum berth_err rc =
        name != NULL ? get_signer(st, name, &signer, why, sizeof(why)) : BERTH_EINVAL;
    if (rc != BERTH_OK) {
        log_warn("event=signing_failed repo=%s digest=%s profile=%s why=\"%s\"", job->repo, d.str,
                 job->arn, why);
        record(st, job->manifest_id, job->arn, "FAILED", "SIGNING_PROFILE_UNAVAILABLE", why, NULL);
        return;
    }
    struct digest sig;
    rc = sign_one(st, signer, job->repo, &d, job->media_type, job->size, &sig, why, sizeof(why));
    if (rc != BERTH_OK) {
        log_warn("event=signing_failed repo=%s digest=%s profile=%s why=\"%s\"", job->repo, d.str,
                 job->arn, why);
        record(st, job->manifest_id, job->arn, "FAILED", "SIGNATURE_NOT_STORED", why, NULL);
        return;
    }
    log_info("event=image_signed repo=%s digest=%s profile=%s signature=%s", job->repo, d.str,
             job->arn, sig.str);
    record(st, job->manifest_id, job->arn, "COMPLETE", NULL, NULL, sig.str);
}

enum berth_err signing_run_pending(struct store *st, const atomic_bool *cancel, int64_t *done)
{
    struct meta *m;
    enum berth_err got = store_meta_get(st, &m);
    if (got != BERTH_OK) {
        return got;
    }
    struct job_list *jobs = malloc(sizeof(*jobs));
    if (jobs == NULL) {
        return BERTH_ENOMEM;
    }
    enum berth_err rc = BERTH_OK;
    int64_t count = 0;
    while (!(cancel != NULL && atomic_load(cancel))) {
        jobs->n = 0;
        rc = meta_signing_pending(m, SIGNING_BATCH, collect_job, jobs);
        if (rc != BERTH_OK || jobs->n == 0) {
            break;
        }
        for (size_t i = 0; i < jobs->n && !(cancel != NULL && atomic_load(cancel)); i++) {
            fault_hold("signing");
            run_job(st, &jobs->v[i]);
            count++;
        }
    }
    free(jobs);
    if (done != NULL) {
        *done = count;
    }
    return rc;
}
