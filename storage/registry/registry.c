/*
 * Registry rules shared by both APIs; see registry.h. Each operation runs
 * on the calling thread's metadata connection; writes that must hold
 * together run in one BEGIN IMMEDIATE transaction.
 */
#include "storage/registry/registry.h"
#include "storage/registry/registry_int.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/fileio.h"
#include "common/log.h"
#include "storage/blob/blob.h"
#include "storage/registry/account.h"
#include "storage/spec/manifest.h"
#include "storage/spec/names.h"
#include "storage/registry/replication.h"
#include "storage/registry/scan_queue.h"
#include "storage/registry/signing.h"
#include "storage/registry/templates.h"
#include "storage/meta/meta_tier.h"
#include "storage/store/store.h"
#include "storage/store/tier.h"
#include "common/str.h"
#include "common/timeutil.h"

enum berth_err registry_fail(struct registry_status *s, enum registry_reason reason,
                             enum berth_err rc, const char *fmt, ...)
{
    s->reason = reason;
    s->err = rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->message, sizeof(s->message), fmt, ap);
    va_end(ap);
    return rc;
}

static void clear_status(struct registry_status *s)
{
    s->reason = REG_OK;
    s->message[0] = '\0';
    s->digest[0] = '\0';
    s->err = BERTH_OK;
}

void registry_upload_status(enum berth_err rc, struct registry_status *s)
{
    memset(s, 0, sizeof(*s));
    switch (rc) {
    case BERTH_ENOTFOUND:
        s->reason = REG_UPLOAD_UNKNOWN;
        str_copy(s->message, sizeof(s->message), "blob upload unknown to registry");
        return;
    case BERTH_EBUSY:
        s->reason = REG_UPLOAD_BUSY;
        str_copy(s->message, sizeof(s->message), "the upload is in use by another request");
        return;
    case BERTH_ERANGE:
        /* a shared session another request (on any replica) committed to
         * first */
        s->reason = REG_UPLOAD_BUSY;
        str_copy(s->message, sizeof(s->message),
                 "another request wrote to the upload first; get its status and resume");
        return;
    case BERTH_EDIGEST:
        s->reason = REG_DIGEST_INVALID;
        str_copy(s->message, sizeof(s->message), "provided digest did not match uploaded content");
        return;
    case BERTH_EUNAVAILABLE:
        s->reason = REG_UNAVAILABLE;
        str_copy(s->message, sizeof(s->message),
                 "storage unavailable; nothing was published, retry later");
        return;
    default:
        s->reason = REG_INTERNAL;
        s->err = rc;
        snprintf(s->message, sizeof(s->message), "upload failed (%s)", berth_strerror(rc));
        return;
    }
}

static enum berth_err internal(struct registry_status *s, enum berth_err rc)
{
    if (rc == BERTH_EUNAVAILABLE) {
        return registry_fail(s, REG_UNAVAILABLE, rc, "storage unavailable; retry later");
    }
    return registry_fail(s, REG_INTERNAL, rc, "internal error (%s)", berth_strerror(rc));
}

/* A push to a missing repository creates it when a CREATE_ON_PUSH
 * creation template covers the name, with the template's settings, in one
 * transaction (the caller's, or its own). BERTH_ENOTFOUND when no
 * template applies. */
static enum berth_err create_from_template(struct meta *m, const char *name, struct meta_repo *out)
{
    char *body = NULL;
    enum berth_err rc = registry_template_find(m, name, "CREATE_ON_PUSH", &body);
    if (rc != BERTH_OK) {
        return rc;
    }
    if (body == NULL) {
        return BERTH_ENOTFOUND;
    }
    bool own = !meta_in_transaction(m);
    rc = own ? meta_begin(m) : BERTH_OK;
    if (rc == BERTH_OK) {
        rc = meta_repo_create(m, name, time_now_ms(), out);
        if (rc == BERTH_EEXIST) {
            /* created meanwhile by another push: use it as it is */
            rc = meta_repo_get(m, name, out);
            free(body);
            body = NULL;
        }
    }
    if (rc == BERTH_OK && body != NULL) {
        rc = registry_template_apply(m, out->id, body);
        if (rc == BERTH_OK) {
            rc = meta_repo_get_by_id(m, out->id, out);
        }
        if (rc == BERTH_OK) {
            log_info("event=repository_created repo=%s from=creation_template", name);
        }
    }
    if (own) {
        if (rc == BERTH_OK) {
            rc = meta_commit(m);
        }
        meta_rollback(m);
    }
    free(body);
    return rc;
}

/* The repository name, created when missing with the settings of the
 * creation template that covers it for use (none: ECR's defaults),
 * whatever storage.auto_create says; from names the creation in the log. */
static enum berth_err repo_for_use(struct store *st, const char *name, const char *use,
                                   const char *from, struct meta_repo *out,
                                   struct registry_status *s)
{
    clear_status(s);
    struct meta *m = store_meta(st);
    if (m == NULL) {
        return internal(s, BERTH_EUNAVAILABLE);
    }
    enum berth_err rc = meta_repo_get(m, name, out);
    if (rc != BERTH_ENOTFOUND) {
        return rc == BERTH_OK ? rc : internal(s, rc);
    }
    char *body = NULL;
    rc = registry_template_find(m, name, use, &body);
    if (rc == BERTH_OK) {
        rc = meta_begin(m);
    }
    if (rc == BERTH_OK) {
        rc = meta_repo_create(m, name, time_now_ms(), out);
        if (rc == BERTH_EEXIST) {
            /* created meanwhile by another request: use it as it is */
            rc = meta_repo_get(m, name, out);
            free(body);
            body = NULL;
        } else if (rc == BERTH_OK) {
            if (body != NULL) {
                rc = registry_template_apply(m, out->id, body);
            }
            if (rc == BERTH_OK) {
                rc = meta_repo_get_by_id(m, out->id, out);
            }
            if (rc == BERTH_OK) {
                log_info("event=repository_created repo=%s from=%s%s", name, from,
                         body != NULL ? "_template" : "");
            }
        }
        if (rc == BERTH_OK) {
            rc = meta_commit(m);
        }
        meta_rollback(m);
    }
    free(body);
    return rc == BERTH_OK ? rc : internal(s, rc);
}

enum berth_err registry_repo_for_cache(struct store *st, const char *name, struct meta_repo *out,
                                       struct registry_status *s)
{
    return repo_for_use(st, name, "PULL_THROUGH_CACHE", "pull_through_cache", out, s);
}

enum berth_err registry_repo_for_replication(struct store *st, const char *name,
                                             struct meta_repo *out, struct registry_status *s)
{
    return repo_for_use(st, name, "REPLICATION", "replication", out, s);
}

/* Repository lookup on an open connection. */
static enum berth_err find_repo(struct store *st, struct meta *m, const char *name, bool create,
                                struct meta_repo *out, struct registry_status *s)
{
    enum berth_err rc = meta_repo_get(m, name, out);
    if (rc == BERTH_ENOTFOUND && create) {
        /* a template that covers the name is asked for, automatic
         * creation or not; without one, automatic creation decides */
        rc = create_from_template(m, name, out);
        if (rc == BERTH_ENOTFOUND && store_options(st)->auto_create) {
            rc = meta_repo_ensure(m, name, time_now_ms(), out);
        }
    }
    if (rc == BERTH_ENOTFOUND) {
        return registry_fail(s, REG_REPO_UNKNOWN, rc, "repository name not known to registry");
    }
    if (rc != BERTH_OK) {
        return internal(s, rc);
    }
    return BERTH_OK;
}

/* Clear s, take this thread's connection and open a write transaction
 * (BEGIN IMMEDIATE). On failure s says why and no transaction is open. */
static enum berth_err begin_write(struct store *st, struct meta **out, struct registry_status *s)
{
    clear_status(s);
    struct meta *m = store_meta(st);
    if (m == NULL) {
        return internal(s, BERTH_EUNAVAILABLE);
    }
    enum berth_err rc = meta_begin(m);
    if (rc != BERTH_OK) {
        return internal(s, rc);
    }
    *out = m;
    return BERTH_OK;
}

/* The end of a begin_write transaction: commit when rc is BERTH_OK, else
 * (or when the commit fails) roll back, with s saying why unless an
 * earlier step already did. */
static enum berth_err end_write(struct meta *m, enum berth_err rc, struct registry_status *s)
{
    if (rc == BERTH_OK) {
        rc = meta_commit(m);
    }
    if (rc != BERTH_OK) {
        if (s->reason == REG_OK) {
            internal(s, rc);
        }
        meta_rollback(m);
    }
    return rc;
}

/* Clear s, take this thread's connection and find an existing repository
 * (no transaction): the prologue of every read. */
static enum berth_err open_repo(struct store *st, const char *name, struct meta **m,
                                struct meta_repo *r, struct registry_status *s)
{
    clear_status(s);
    *m = store_meta(st);
    if (*m == NULL) {
        return internal(s, BERTH_EUNAVAILABLE);
    }
    return find_repo(st, *m, name, false, r, s);
}

enum berth_err registry_repo(struct store *st, const char *name, bool create, struct meta_repo *out,
                             struct registry_status *s)
{
    clear_status(s);
    struct meta *m = store_meta(st);
    if (m == NULL) {
        return internal(s, BERTH_EUNAVAILABLE);
    }
    return find_repo(st, m, name, create, out, s);
}

enum berth_err registry_blob_stat(struct store *st, const char *repo, const struct digest *d,
                                  struct meta_blob *out, struct registry_status *s)
{
    struct meta *m;
    struct meta_repo r;
    enum berth_err rc = open_repo(st, repo, &m, &r, s);
    if (rc != BERTH_OK) {
        return rc;
    }
    rc = meta_blob_get_linked(m, r.id, d->str, out);
    if (rc == BERTH_OK && out->tier == META_TIER_ARCHIVE) {
        /* its bytes are in the archive tier: as good as absent here (an
         * upload, fetch or import of them brings them back) */
        rc = BERTH_ENOTFOUND;
    }
    if (rc == BERTH_ENOTFOUND) {
        str_copy(s->digest, sizeof(s->digest), d->str);
        return registry_fail(s, REG_BLOB_UNKNOWN, rc, "blob unknown to registry");
    }
    return rc == BERTH_OK ? rc : internal(s, rc);
}

enum berth_err registry_blob_pull_stat(struct store *st, const char *repo, const struct digest *d,
                                       struct meta_blob *out, struct registry_status *s)
{
    struct meta *m;
    struct meta_repo r;
    enum berth_err rc = open_repo(st, repo, &m, &r, s);
    if (rc != BERTH_OK) {
        return rc;
    }
    rc = meta_blob_get_linked(m, r.id, d->str, out);
    if (rc == BERTH_ENOTFOUND) {
        str_copy(s->digest, sizeof(s->digest), d->str);
        return registry_fail(s, REG_BLOB_UNKNOWN, rc, "blob unknown to registry");
    }
    bool archived = rc == BERTH_OK && out->tier == META_TIER_ARCHIVE;
    if (rc == BERTH_OK && !archived) {
        rc = meta_blob_archived_only(m, r.id, d->str, &archived);
    }
    if (rc != BERTH_OK) {
        return internal(s, rc);
    }
    if (archived) {
        str_copy(s->digest, sizeof(s->digest), d->str);
        return registry_fail(s, REG_LAYER_ARCHIVED, BERTH_ENOTFOUND,
                             "blob unknown to registry: only archived images use it; restore one "
                             "of them to pull it");
    }
    return BERTH_OK;
}

enum berth_err registry_blob_delete(struct store *st, const char *repo, const struct digest *d,
                                    struct registry_status *s)
{
    struct meta *m;
    enum berth_err rc = begin_write(st, &m, s);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct meta_repo r;
    struct meta_blob b;
    rc = find_repo(st, m, repo, false, &r, s);
    if (rc != BERTH_OK) {
        goto out;
    }
    rc = meta_blob_get_linked(m, r.id, d->str, &b);
    if (rc == BERTH_ENOTFOUND) {
        str_copy(s->digest, sizeof(s->digest), d->str);
        rc = registry_fail(s, REG_BLOB_UNKNOWN, rc, "blob unknown to registry");
        goto out;
    }
    if (rc == BERTH_OK) {
        rc = meta_blob_unlink(m, r.id, b.id);
    }
    if (rc == BERTH_OK) {
        /* the garbage collector's grace window starts now */
        rc = meta_blob_touch(m, b.id, time_now_ms());
    }
out:
    return end_write(m, rc, s);
}

enum berth_err registry_blob_mount(struct store *st, const char *repo, const struct digest *d,
                                   const char *from_repo, struct meta_blob *out,
                                   struct registry_status *s)
{
    /* The row must be backed by bytes: verified before the write lock, which
     * on PostgreSQL every replica's writes share (a stat on S3 is a request
     * to the store, and a mount holding the lock across it stalled every
     * push of the cluster that long). Done only when a row names the blob
     * (one read, no lock): a mount of an unknown blob fails below without
     * asking the store. Checking before the lock is as safe as inside it: a
     * row seen in the transaction below has its bytes, since garbage
     * collection removes a blob's bytes in the transaction that deletes its
     * row (and puts them back if that transaction fails), and bytes lost to
     * anything else may be lost just after an in-lock check too. */
    struct meta *m = store_meta(st);
    if (m == NULL) {
        clear_status(s);
        return internal(s, BERTH_EUNAVAILABLE);
    }
    struct meta_blob known;
    enum berth_err rc = meta_blob_get(m, d->str, &known);
    if (rc == BERTH_OK && known.tier != META_TIER_ARCHIVE) {
        uint64_t size;
        rc = blob_stat(store_blobs(st), d, &size);
        if (rc == BERTH_ENOTFOUND) {
            clear_status(s);
            return registry_fail(s, REG_BLOB_UNKNOWN, BERTH_ENOTFOUND, "blob cannot be mounted");
        }
        if (rc != BERTH_OK) {
            clear_status(s);
            return internal(s, rc);
        }
    }
    bool stat_done = rc == BERTH_OK;
    rc = begin_write(st, &m, s);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct meta_repo target, source;
    rc = find_repo(st, m, repo, true, &target, s);
    if (rc != BERTH_OK) {
        goto out;
    }
    /* The BLOB_MOUNTING account setting, read in this transaction: with
     * mounting disabled nothing is mountable and the client uploads. */
    char mounting[ACCOUNT_VALUE_MAX + 1];
    rc = account_setting_get_on(m, ACCOUNT_BLOB_MOUNTING, mounting, sizeof(mounting));
    if (rc != BERTH_OK) {
        goto out;
    }
    if (strcmp(mounting, "DISABLED") == 0) {
        rc = registry_fail(s, REG_BLOB_UNKNOWN, BERTH_ENOTFOUND, "blob mounting is disabled");
        goto out;
    }
    if (from_repo != NULL) {
        struct registry_status ignored;
        rc = find_repo(st, m, from_repo, false, &source, &ignored);
        if (rc == BERTH_OK) {
            rc = meta_blob_get_linked(m, source.id, d->str, out);
        }
    } else {
        rc = meta_blob_get_visible(m, d->str, out);
    }
    if (rc == BERTH_OK && out->tier == META_TIER_ARCHIVE) {
        /* its bytes are in the archive tier: the client uploads them,
         * which brings them back */
        rc = BERTH_ENOTFOUND;
    }
    if (rc == BERTH_OK && !stat_done) {
        /* the row appeared since the look above (a publication on another
         * connection): its bytes are checked here, under the lock */
        uint64_t size;
        rc = blob_stat(store_blobs(st), d, &size);
    }
    if (rc == BERTH_ENOTFOUND) {
        rc = registry_fail(s, REG_BLOB_UNKNOWN, BERTH_ENOTFOUND, "blob cannot be mounted");
        goto out;
    }
    if (rc == BERTH_OK) {
        rc = meta_blob_link(m, target.id, out->id);
    }
    if (rc == BERTH_OK) {
        rc = meta_blob_touch(m, out->id, time_now_ms());
    }
out:
    return end_write(m, rc, s);
}

enum berth_err registry_blob_publish(struct store *st, const char *repo, const char *stage,
                                     const struct digest *d, int64_t size, struct meta_blob *out,
                                     struct registry_status *s)
{
    /* the name's directory fsync before the write lock, as an upload's
     * (blob.h); inside, the file is only checked */
    enum berth_err rc = blob_stage_prepublish(store_blobs(st), stage, d);
    if (rc != BERTH_OK) {
        return internal(s, rc);
    }
    struct meta *m;
    rc = begin_write(st, &m, s);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct meta_repo target;
    int64_t now = time_now_ms();
    int64_t blob_id = 0;
    rc = find_repo(st, m, repo, true, &target, s);
    if (rc == BERTH_OK) {
        rc = blob_stage_publish(store_blobs(st), stage, d);
    }
    if (rc == BERTH_OK) {
        rc = meta_blob_upsert(m, d->str, size, now, &blob_id);
    }
    if (rc == BERTH_OK) {
        /* the bytes are in the blob store now, whatever tier they were in */
        rc = meta_blob_set_tier(m, blob_id, META_TIER_STANDARD, 0, 0);
    }
    if (rc == BERTH_OK) {
        rc = meta_blob_link(m, target.id, blob_id);
    }
    rc = end_write(m, rc, s);
    if (rc == BERTH_OK) {
        memset(out, 0, sizeof(*out));
        out->id = blob_id;
        memcpy(out->digest, d->str, sizeof(out->digest));
        out->size = size;
        out->created_at = now;
        out->touched_at = now;
    }
    return rc;
}

/* registry_tag_is_immutable with the filter list already parsed (filters
 * may be NULL). */
static bool tag_immutable(enum meta_mutability mu, const json_t *filters, const char *tag)
{
    if (mu == META_MUTABLE) {
        return false;
    }
    if (mu == META_IMMUTABLE) {
        return true;
    }
    bool matched = false;
    size_t i;
    const json_t *f;
    json_array_foreach(filters, i, f)
    {
        const char *pattern = json_string_value(json_object_get(f, "filter"));
        if (pattern != NULL && str_glob_match(pattern, tag)) {
            matched = true;
            break;
        }
    }
    /* IMMUTABLE_WITH_EXCLUSION: matching tags are mutable;
     * MUTABLE_WITH_EXCLUSION: matching tags are immutable. */
    return mu == META_IMMUTABLE_WITH_EXCLUSION ? !matched : matched;
}

static bool has_filters(enum meta_mutability mu)
{
    return mu == META_IMMUTABLE_WITH_EXCLUSION || mu == META_MUTABLE_WITH_EXCLUSION;
}

bool registry_tag_is_immutable(enum meta_mutability mu, const char *filters_json, const char *tag)
{
    json_t *filters =
        has_filters(mu) && filters_json != NULL ? json_loads(filters_json, 0, NULL) : NULL;
    bool immutable = tag_immutable(mu, filters, tag);
    json_decref(filters);
    return immutable;
}

enum berth_err registry_tag_check(struct store *st, const char *repo, const char *tag,
                                  const char *digest, struct registry_status *s)
{
    clear_status(s);
    struct meta *m = store_meta(st);
    if (m == NULL) {
        return internal(s, BERTH_EUNAVAILABLE);
    }
    struct meta_repo r;
    enum berth_err rc = meta_repo_get(m, repo, &r);
    if (rc == BERTH_ENOTFOUND || (rc == BERTH_OK && r.mutability == META_MUTABLE)) {
        return BERTH_OK;
    }
    struct meta_manifest mf;
    if (rc == BERTH_OK) {
        rc = meta_manifest_get_by_tag(m, r.id, tag, &mf);
        if (rc == BERTH_ENOTFOUND || (rc == BERTH_OK && strcmp(mf.digest, digest) == 0)) {
            return BERTH_OK;
        }
    }
    char *filters = NULL;
    if (rc == BERTH_OK && has_filters(r.mutability)) {
        rc = meta_repo_get_text(m, r.id, META_REPO_MUTABILITY_FILTERS, &filters);
    }
    if (rc != BERTH_OK) {
        return internal(s, rc);
    }
    bool immutable = registry_tag_is_immutable(r.mutability, filters, tag);
    free(filters);
    if (immutable) {
        return registry_fail(s, REG_TAG_IMMUTABLE, BERTH_EDENIED,
                             "The image tag '%s' already exists in the '%s' repository and "
                             "cannot be overwritten because the tag is immutable.",
                             tag, repo);
    }
    return BERTH_OK;
}

/* Inside the write transaction: every reference must be present, unless
 * sparse manifests are allowed (storage.sparse_manifests): then nothing is
 * looked up, and what is missing may come later or never. */
static enum berth_err check_refs(struct store *st, struct meta *m, int64_t repo_id,
                                 const struct manifest_info *info, bool allow_missing,
                                 struct registry_status *s)
{
    if (store_options(st)->sparse_manifests || allow_missing) {
        return BERTH_OK;
    }
    enum berth_err rc;
    if (info->has_config) {
        struct meta_blob b;
        rc = meta_blob_get_linked(m, repo_id, info->config.digest.str, &b);
        if (rc == BERTH_ENOTFOUND) {
            str_copy(s->digest, sizeof(s->digest), info->config.digest.str);
            return registry_fail(s, REG_LAYERS_MISSING, rc, "blob unknown to registry: %s",
                                 info->config.digest.str);
        }
        if (rc != BERTH_OK) {
            return internal(s, rc);
        }
    }
    for (size_t i = 0; i < info->ref_count; i++) {
        const struct manifest_desc *ref = &info->refs[i];
        if (info->is_index) {
            struct meta_manifest child;
            rc = meta_manifest_get(m, repo_id, ref->digest.str, &child);
            if (rc == BERTH_ENOTFOUND) {
                str_copy(s->digest, sizeof(s->digest), ref->digest.str);
                return registry_fail(s, REG_CHILDREN_MISSING, rc,
                                     "manifest unknown to registry: %s", ref->digest.str);
            }
        } else {
            if (ref->non_distributable) {
                continue;
            }
            struct meta_blob b;
            rc = meta_blob_get_linked(m, repo_id, ref->digest.str, &b);
            if (rc == BERTH_ENOTFOUND) {
                str_copy(s->digest, sizeof(s->digest), ref->digest.str);
                return registry_fail(s, REG_LAYERS_MISSING, rc, "blob unknown to registry: %s",
                                     ref->digest.str);
            }
        }
        if (rc != BERTH_OK) {
            return internal(s, rc);
        }
    }
    return BERTH_OK;
}

static enum berth_err insert_manifest(struct meta *m, int64_t repo_id, int64_t blob_id,
                                      const struct digest *d, size_t len,
                                      const struct manifest_info *info, int64_t now, int64_t *id)
{
    struct meta_manifest row;
    memset(&row, 0, sizeof(row));
    row.repo_id = repo_id;
    row.blob_id = blob_id;
    str_copy(row.digest, sizeof(row.digest), d->str);
    str_copy(row.media_type, sizeof(row.media_type), info->media_type);
    str_copy(row.artifact_type, sizeof(row.artifact_type), manifest_effective_artifact_type(info));
    if (info->has_config) {
        str_copy(row.config_media_type, sizeof(row.config_media_type), info->config.media_type);
    }
    if (info->has_subject) {
        str_copy(row.subject, sizeof(row.subject), info->subject.digest.str);
    }
    row.is_index = info->is_index;
    row.size = (int64_t)len;
    row.image_size = info->is_index ? 0 : info->layers_size;
    row.pushed_at = now;
    enum berth_err rc = meta_manifest_insert(m, &row, info->annotations, id);
    if (rc == BERTH_OK && info->has_config) {
        rc = meta_manifest_ref_add(m, *id, info->config.digest.str, META_REF_BLOB,
                                   info->config.media_type);
    }
    for (size_t i = 0; rc == BERTH_OK && i < info->ref_count; i++) {
        rc = meta_manifest_ref_add(m, *id, info->refs[i].digest.str,
                                   info->is_index ? META_REF_MANIFEST : META_REF_BLOB,
                                   info->refs[i].media_type);
    }
    return rc;
}

/* Queue the scan that scan-on-push owes a newly stored manifest. */
static enum berth_err queue_scan(struct meta *m, const struct meta_repo *repo, int64_t manifest_id,
                                 const struct digest *d, const struct manifest_info *info,
                                 int64_t now, bool *queued)
{
    struct meta_manifest mf;
    memset(&mf, 0, sizeof(mf));
    mf.id = manifest_id;
    mf.repo_id = repo->id;
    mf.is_index = info->is_index;
    str_copy(mf.digest, sizeof(mf.digest), d->str);
    if (info->has_config) {
        str_copy(mf.config_media_type, sizeof(mf.config_media_type), info->config.media_type);
    }
    return scan_queue_on_push(m, repo, &mf, now, queued);
}

/* Point every requested tag at the manifest, honouring immutability. A
 * refused tag may already have moved: on failure the caller rolls the
 * transaction back. */
static enum berth_err apply_tags(struct meta *m, const struct meta_repo *repo,
                                 const struct registry_put *in, int64_t manifest_id, int64_t now,
                                 bool *changed, struct registry_status *s)
{
    json_t *filters = NULL;
    enum berth_err rc = BERTH_OK;
    bool added = false; /* a tag now points at the manifest that did not */
    if (has_filters(repo->mutability)) {
        char *text = NULL;
        rc = meta_repo_get_text(m, repo->id, META_REPO_MUTABILITY_FILTERS, &text);
        if (rc != BERTH_OK) {
            return internal(s, rc);
        }
        filters = text != NULL ? json_loads(text, 0, NULL) : NULL;
        free(text);
    }
    for (size_t i = 0; i < in->tag_count; i++) {
        bool immutable = tag_immutable(repo->mutability, filters, in->tags[i]);
        int64_t previous = 0;
        rc = meta_tag_set(m, repo->id, in->tags[i], manifest_id, now, &previous);
        if (rc != BERTH_OK) {
            internal(s, rc);
            break;
        }
        if (previous == manifest_id) {
            continue;
        }
        if (previous != 0 && immutable) {
            rc = registry_fail(s, REG_TAG_IMMUTABLE, BERTH_EDENIED,
                               "The image tag '%s' already exists in the '%s' repository and "
                               "cannot be overwritten because the tag is immutable.",
                               in->tags[i], repo->name);
            break;
        }
        *changed = true;
        added = true;
    }
    json_decref(filters);
    if (rc == BERTH_OK && added) {
        /* ECR's quota: at most REGISTRY_TAGS_PER_IMAGE_MAX tags per image */
        int64_t n = 0;
        rc = meta_manifest_tag_count(m, manifest_id, &n);
        if (rc != BERTH_OK) {
            return internal(s, rc);
        }
        if (n > REGISTRY_TAGS_PER_IMAGE_MAX) {
            rc = registry_fail(s, REG_TAG_LIMIT, BERTH_ETOOBIG,
                               "The image in the repository with name '%s' would have %lld tags; "
                               "an image can have at most %d tags",
                               repo->name, (long long)n, REGISTRY_TAGS_PER_IMAGE_MAX);
        }
    }
    return rc;
}

enum berth_err registry_manifest_put(struct store *st, const struct registry_put *in,
                                     struct registry_put_result *out, struct registry_status *s)
{
    clear_status(s);
    const struct store_options *opt = store_options(st);
    if (in->len > opt->manifest_max) {
        return registry_fail(s, REG_MANIFEST_TOO_BIG, BERTH_ETOOBIG,
                             "manifest is larger than the limit of %zu bytes", opt->manifest_max);
    }
    for (size_t i = 0; i < in->tag_count; i++) {
        if (!names_tag_valid(in->tags[i])) {
            return registry_fail(s, REG_TAG_INVALID, BERTH_EINVAL,
                                 "invalid tag: must satisfy regular expression '" NAMES_TAG_REGEX
                                 "'");
        }
    }
    struct digest d;
    enum berth_err rc =
        digest_buffer(in->expected ? in->expected->alg : DIGEST_SHA256, in->body, in->len, &d);
    if (rc != BERTH_OK) {
        return internal(s, rc);
    }
    if (in->expected != NULL && strcmp(in->expected->str, d.str) != 0) {
        str_copy(s->digest, sizeof(s->digest), d.str);
        return registry_fail(s, REG_DIGEST_INVALID, BERTH_EDIGEST,
                             "manifest digest %s does not match the digest given (%s)", d.str,
                             in->expected->str);
    }
    struct manifest_info *info = NULL;
    char why[256];
    rc = manifest_parse(in->body, in->len, in->content_type, &info, why, sizeof(why));
    if (rc == BERTH_EINVAL) {
        /* why alone: clients print the code's description ("manifest invalid")
         * before the message themselves */
        return registry_fail(s, REG_MANIFEST_INVALID, rc, "%s", why);
    }
    if (rc != BERTH_OK) {
        return internal(s, rc);
    }
    struct meta *m = store_meta(st);
    if (m == NULL) {
        manifest_info_free(info);
        return internal(s, BERTH_EUNAVAILABLE);
    }

    char tmp[BLOB_STAGE_NAME_MAX + 1] = ""; /* the manifest's bytes, staged */
    struct meta_blob existing_blob;
    /* (a blob whose bytes are in the archive tier is written again) */
    bool blob_known = meta_blob_get(m, d.str, &existing_blob) == BERTH_OK &&
                      existing_blob.tier == META_TIER_STANDARD;
    struct meta_repo repo;
    int64_t manifest_id = 0;
    bool created = false, changed = false, scan_queued = false, repl_queued = false;
    bool tier_wake = false;
    /* At most two rounds: a retry happens only when the content blob
     * vanished while its bytes were not in tmp, and the retry writes them
     * there first, so it never retries again. Every round ends in `goto out`
     * or that one `continue`. */
    for (;;) {
        if (!blob_known && tmp[0] == '\0') {
            rc = blob_stage_put(store_blobs(st), in->body, in->len, tmp);
            if (rc == BERTH_OK) {
                /* the directory's fsync before the write lock (blob.h) */
                rc = blob_stage_prepublish(store_blobs(st), tmp, &d);
            }
            if (rc != BERTH_OK) {
                internal(s, rc);
                goto out;
            }
        }
        int64_t now = time_now_ms();
        rc = meta_begin(m);
        if (rc != BERTH_OK) {
            internal(s, rc);
            goto out;
        }
        rc = find_repo(st, m, in->repo, in->create_repo, &repo, s);
        if (rc == BERTH_OK) {
            rc = check_refs(st, m, repo.id, info, in->allow_missing, s);
        }
        if (rc != BERTH_OK) {
            meta_rollback(m);
            goto out;
        }
        struct meta_manifest have;
        bool restored = false;
        rc = meta_manifest_get(m, repo.id, d.str, &have);
        if (rc == BERTH_OK) {
            manifest_id = have.id;
            created = false;
            if (have.storage_class == META_STORAGE_ARCHIVE || have.active_from > now ||
                have.restoring) {
                /* ECR: pushing an archived image again restores it, at once
                 * (the push brought its bytes); its scans as any restore's */
                bool rescan = false;
                int64_t quota =
                    in->scan_quota_ms > 0 ? in->scan_quota_ms : store_options(st)->scan_quota_ms;
                rc = scan_queue_on_restore(m, &repo, have.id, now, quota, &rescan);
                scan_queued = scan_queued || rescan;
                if (rc == BERTH_OK) {
                    rc = meta_manifest_set_storage_class(m, repo.id, have.id, META_STORAGE_STANDARD,
                                                         now, now);
                }
                restored = true;
            }
        } else if (rc == BERTH_ENOTFOUND) {
            struct meta_blob blob;
            rc = meta_blob_get(m, d.str, &blob);
            if (rc == BERTH_OK && blob.tier == META_TIER_ARCHIVE) {
                rc = BERTH_ENOTFOUND; /* its bytes must be written again */
            }
            if (rc == BERTH_ENOTFOUND && tmp[0] == '\0') {
                /* The content blob vanished since the optimistic check
                 * (garbage collection): write it and try again. */
                meta_rollback(m);
                blob_known = false;
                continue;
            }
            if (rc == BERTH_ENOTFOUND || rc == BERTH_OK) {
                rc = BERTH_OK;
                if (tmp[0] != '\0') {
                    /* publishes, or drops the stage if the blob exists */
                    rc = blob_stage_publish(store_blobs(st), tmp, &d);
                    if (rc == BERTH_OK) {
                        tmp[0] = '\0';
                    }
                }
            }
            int64_t blob_id = 0;
            if (rc == BERTH_OK) {
                rc = meta_blob_upsert(m, d.str, (int64_t)in->len, now, &blob_id);
            }
            if (rc == BERTH_OK) {
                rc = meta_blob_set_tier(m, blob_id, META_TIER_STANDARD, 0, 0);
            }
            if (rc == BERTH_OK) {
                rc = meta_blob_link(m, repo.id, blob_id);
            }
            if (rc == BERTH_OK) {
                rc = insert_manifest(m, repo.id, blob_id, &d, in->len, info, now, &manifest_id);
            }
            created = true;
        }
        if (rc != BERTH_OK) {
            internal(s, rc);
            meta_rollback(m);
            goto out;
        }
        if (rc == BERTH_OK && store_tier_enabled(st)) {
            /* blobs it uses whose bytes are in the archive tier come back
             * first: the image is ACTIVATING until they have */
            int64_t marked = 0;
            rc = meta_tier_mark_restoring(m, repo.id, manifest_id, &marked);
            tier_wake = marked > 0;
        }
        if (rc != BERTH_OK) {
            internal(s, rc);
            meta_rollback(m);
            goto out;
        }
        changed = created || restored;
        rc = apply_tags(m, &repo, in, manifest_id, now, &changed, s);
        if (rc == BERTH_OK && in->fail_if_same && !changed) {
            str_copy(s->digest, sizeof(s->digest), d.str);
            rc = registry_fail(s, REG_IMAGE_EXISTS, BERTH_EEXIST,
                               "Image with digest '%s' and tag '%s' already exists in the "
                               "repository with name '%s'",
                               d.str, in->tag_count ? in->tags[0] : "", in->repo);
        }
        if (rc == BERTH_OK && created) {
            /* in the same transaction, so a stored image never misses the
             * scan that scan-on-push owes it */
            rc = queue_scan(m, &repo, manifest_id, &d, info, now, &scan_queued);
            if (rc != BERTH_OK) {
                internal(s, rc);
            }
        }
        if (rc == BERTH_OK && changed && !in->allow_missing) {
            /* a new image or moved tags: queued for the replication
             * destinations in the same transaction (a cached pull's
             * manifest is not a push and may lack its blobs) */
            rc = registry_repl_on_push(m, repo.name, manifest_id, now, &repl_queued);
            if (rc != BERTH_OK) {
                internal(s, rc);
            }
        }
        if (rc == BERTH_OK) {
            rc = meta_commit(m);
            if (rc != BERTH_OK) {
                internal(s, rc);
            }
        }
        if (rc != BERTH_OK) {
            meta_rollback(m);
        }
        goto out;
    }
out:
    if (tmp[0] != '\0') {
        blob_stage_remove(store_blobs(st), tmp);
    }
    if (rc == BERTH_OK && scan_queued) {
        scan_queue_notify();
    }
    if (rc == BERTH_OK && repl_queued) {
        registry_repl_notify();
    }
    if (rc == BERTH_OK && tier_wake) {
        store_tier_notify();
    }
    if (rc == BERTH_OK && !info->has_subject) {
        /* managed signing, after the commit: the signing job signs it (a
         * signature has a subject, so it is never signed itself; an image
         * pushed again only for profiles that failed) */
        signing_queue_pushed(st, in->repo, manifest_id);
    }
    if (rc == BERTH_OK) {
        out->digest = d;
        out->has_subject = info->has_subject;
        str_copy(out->subject, sizeof(out->subject),
                 info->has_subject ? info->subject.digest.str : "");
        out->created = created;
        str_copy(out->media_type, sizeof(out->media_type), info->media_type);
        out->repo_id = repo.id;
        out->is_index = info->is_index;
        log_debug("event=manifest_put repo=%s digest=%s created=%d", in->repo, d.str, created);
    }
    manifest_info_free(info);
    return rc;
}

/* Resolve a reference on an open connection. */
static enum berth_err resolve(struct meta *m, int64_t repo_id, const char *reference,
                              struct meta_manifest *out, struct registry_status *s)
{
    enum berth_err rc;
    if (strchr(reference, ':') != NULL) {
        struct digest d;
        if (digest_parse(reference, &d) != BERTH_OK) {
            return registry_fail(s, REG_DIGEST_INVALID, BERTH_EINVAL, "invalid digest");
        }
        rc = meta_manifest_get(m, repo_id, d.str, out);
    } else {
        /* a reference that cannot be a tag names no manifest: unknown, as
         * distribution and the conformance suite have it (only a PUT
         * refuses the tag as invalid) */
        rc = names_tag_valid(reference) ? meta_manifest_get_by_tag(m, repo_id, reference, out)
                                        : BERTH_ENOTFOUND;
    }
    if (rc == BERTH_ENOTFOUND) {
        return registry_fail(s, REG_MANIFEST_UNKNOWN, rc, "manifest unknown to registry");
    }
    return rc == BERTH_OK ? rc : internal(s, rc);
}

enum berth_err registry_manifest_get(struct store *st, const char *repo, const char *reference,
                                     struct meta_manifest *out, struct registry_status *s)
{
    struct meta *m;
    struct meta_repo r;
    enum berth_err rc = open_repo(st, repo, &m, &r, s);
    if (rc != BERTH_OK) {
        return rc;
    }
    return resolve(m, r.id, reference, out, s);
}

/* How often a manifest's last_pulled_at is written at most. */
#define NOTE_PULL_INTERVAL_MS (60 * 1000)

void registry_manifest_note_pull(struct store *st, const struct meta_manifest *mf,
                                 const char *principal_arn)
{
    int64_t now = time_now_ms();
    /* The row just read says whether the write is due. An UPDATE that
     * matches no row still waits for SQLite's write lock, and a pull must
     * not queue behind pushes and collection for that. */
    if (mf->last_pulled_at != 0 && mf->last_pulled_at >= now - NOTE_PULL_INTERVAL_MS) {
        return;
    }
    struct meta *m = store_meta(st);
    if (m == NULL) {
        return;
    }
    /* Asked only when a write is due, so most pulls make no query. */
    bool excluded = false;
    if (principal_arn != NULL && *principal_arn != '\0' &&
        (meta_pull_exclusion_has(m, principal_arn, &excluded) != BERTH_OK || excluded)) {
        return;
    }
    meta_manifest_note_pull(m, mf->id, now, NOTE_PULL_INTERVAL_MS);
}

static enum berth_err manifest_delete(struct store *st, const char *repo, const char *reference,
                                      bool refuse_if_referenced, struct registry_status *s)
{
    struct meta *m;
    enum berth_err rc = begin_write(st, &m, s);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct meta_repo r;
    struct meta_manifest mf;
    rc = find_repo(st, m, repo, false, &r, s);
    if (rc == BERTH_OK) {
        rc = resolve(m, r.id, reference, &mf, s);
    }
    if (rc != BERTH_OK) {
        goto out;
    }
    if (strchr(reference, ':') == NULL) {
        rc = meta_tag_delete(m, r.id, reference);
    } else {
        if (refuse_if_referenced) {
            int64_t parents = 0;
            rc = meta_manifest_parent_count(m, r.id, mf.digest, &parents);
            if (rc == BERTH_OK && parents > 0) {
                str_copy(s->digest, sizeof(s->digest), mf.digest);
                rc = registry_fail(s, REG_REFERENCED_BY_INDEX, BERTH_ECONFLICT,
                                   "Requested image referenced by a manifest list: %s", mf.digest);
                goto out;
            }
        }
        if (rc == BERTH_OK) {
            rc = meta_manifest_touch_refs(m, mf.id, time_now_ms());
        }
        if (rc == BERTH_OK) {
            rc = meta_manifest_delete(m, mf.id);
        }
    }
out:
    return end_write(m, rc, s);
}

enum berth_err registry_manifest_delete(struct store *st, const char *repo, const char *reference,
                                        bool refuse_if_referenced, struct registry_status *s)
{
    enum berth_err rc = manifest_delete(st, repo, reference, refuse_if_referenced, s);
    if (rc == BERTH_EDB && store_reserve_release_to_delete(st)) {
        *s = (struct registry_status){0};
        rc = manifest_delete(st, repo, reference, refuse_if_referenced, s);
    }
    return rc;
}

/* Tag names collected inside a transaction, reported after it commits. */
struct tag_names {
    char **names;
    size_t count;
    size_t cap;
    bool out_of_memory;
};

static int collect_tag_name(void *arg, const char *name)
{
    struct tag_names *t = arg;
    if (t->count == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        char **p = realloc(t->names, cap * sizeof(*p));
        if (p == NULL) {
            t->out_of_memory = true;
            return 1;
        }
        t->names = p;
        t->cap = cap;
    }
    t->names[t->count] = strdup(name);
    if (t->names[t->count] == NULL) {
        t->out_of_memory = true;
        return 1;
    }
    t->count++;
    return 0;
}

static void tag_names_free(struct tag_names *t)
{
    for (size_t i = 0; i < t->count; i++) {
        free(t->names[i]);
    }
    free(t->names);
}

/* Inside the write transaction: remove a whole image unless an index of
 * the repository lists it. */
static enum berth_err remove_image(struct meta *m, int64_t repo_id, const struct meta_manifest *mf,
                                   struct registry_status *s)
{
    int64_t parents = 0;
    enum berth_err rc = meta_manifest_parent_count(m, repo_id, mf->digest, &parents);
    if (rc != BERTH_OK) {
        return internal(s, rc);
    }
    if (parents > 0) {
        str_copy(s->digest, sizeof(s->digest), mf->digest);
        return registry_fail(s, REG_REFERENCED_BY_INDEX, BERTH_ECONFLICT,
                             "Requested image referenced by a manifest list: %s", mf->digest);
    }
    rc = meta_manifest_touch_refs(m, mf->id, time_now_ms());
    if (rc == BERTH_OK) {
        rc = meta_manifest_delete(m, mf->id);
    }
    return rc == BERTH_OK ? rc : internal(s, rc);
}

/* Whether the image (manifest row mf with the tags collected in t, in byte
 * order) is the one the caller saw. */
static bool same_image(const struct meta_manifest *mf, const struct tag_names *t,
                       const struct registry_image_seen *seen)
{
    if (mf->id != seen->manifest_id || t->count != seen->tag_count) {
        return false;
    }
    for (size_t i = 0; i < t->count; i++) {
        if (strcmp(t->names[i], seen->tags[i]) != 0) {
            return false;
        }
    }
    return true;
}

/* registry_image_delete, and with seen (digest only) its precondition:
 * *changed says the image was not as seen and nothing changed. */
static enum berth_err image_delete_once(struct store *st, const char *repo, const char *tag,
                                        const struct digest *digest,
                                        const struct registry_image_seen *seen,
                                        registry_removed_cb cb, void *arg, bool *changed,
                                        struct registry_status *s)
{
    assert(tag != NULL || digest != NULL);
    assert(seen == NULL || (tag == NULL && changed != NULL));
    struct tag_names removed = {0};
    bool whole_image = true, is_changed = false;
    struct meta *m;
    enum berth_err rc = begin_write(st, &m, s);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct meta_repo r;
    struct meta_manifest mf;
    rc = find_repo(st, m, repo, false, &r, s);
    if (rc != BERTH_OK) {
        goto out;
    }
    rc = tag ? meta_manifest_get_by_tag(m, r.id, tag, &mf)
             : meta_manifest_get(m, r.id, digest->str, &mf);
    if (rc == BERTH_ENOTFOUND) {
        rc = registry_fail(s, REG_MANIFEST_UNKNOWN, rc, "Requested image not found");
        goto out;
    }
    if (rc != BERTH_OK) {
        internal(s, rc);
        goto out;
    }
    if (tag != NULL && digest != NULL && strcmp(mf.digest, digest->str) != 0) {
        str_copy(s->digest, sizeof(s->digest), mf.digest);
        rc = registry_fail(s, REG_TAG_DIGEST_MISMATCH, BERTH_ECONFLICT,
                           "The tag '%s' points at %s, not at %s", tag, mf.digest, digest->str);
        goto out;
    }
    if (tag != NULL) {
        int64_t tags = 0;
        rc = meta_manifest_tag_count(m, mf.id, &tags);
        whole_image = tags <= 1;
        if (rc == BERTH_OK) {
            collect_tag_name(&removed, tag);
            rc = whole_image ? remove_image(m, r.id, &mf, s) : meta_tag_delete(m, r.id, tag);
        }
    } else {
        rc = meta_manifest_tags(m, mf.id, collect_tag_name, &removed);
        if (rc == BERTH_OK && removed.out_of_memory) {
            rc = BERTH_ENOMEM;
        }
        if (rc == BERTH_OK && seen != NULL && !same_image(&mf, &removed, seen)) {
            /* Checked under the write lock: a push that re-tagged the
             * image since the caller looked keeps its tag. */
            is_changed = true;
            goto out;
        }
        if (rc == BERTH_OK) {
            rc = remove_image(m, r.id, &mf, s);
        }
    }
    if (rc == BERTH_OK && removed.out_of_memory) {
        rc = BERTH_ENOMEM;
    }
    if (rc == BERTH_OK) {
        rc = meta_commit(m);
    }
    if (rc != BERTH_OK && s->reason == REG_OK) {
        internal(s, rc);
    }
out:
    if (rc != BERTH_OK || is_changed) {
        meta_rollback(m);
    } else {
        char tag_value[160];
        log_info("event=%s repo=%s digest=%s tag=%s", whole_image ? "image_deleted" : "tag_deleted",
                 repo, mf.digest, log_value(tag ? tag : "-", tag_value, sizeof(tag_value)));
        if (cb != NULL && removed.count == 0) {
            cb(arg, mf.digest, NULL);
        }
        for (size_t i = 0; cb != NULL && i < removed.count; i++) {
            cb(arg, mf.digest, removed.names[i]);
        }
    }
    if (rc == BERTH_OK && changed != NULL) {
        *changed = is_changed;
    }
    tag_names_free(&removed);
    return rc;
}

/* image_delete_once, and on a full disk once more after the space reserve is
 * given up: deleting images (by hand, by BatchDeleteImage, by a lifecycle
 * policy) is how space is made. */
static enum berth_err image_delete(struct store *st, const char *repo, const char *tag,
                                   const struct digest *digest,
                                   const struct registry_image_seen *seen, registry_removed_cb cb,
                                   void *arg, bool *changed, struct registry_status *s)
{
    enum berth_err rc = image_delete_once(st, repo, tag, digest, seen, cb, arg, changed, s);
    if (rc == BERTH_EDB && store_reserve_release_to_delete(st)) {
        *s = (struct registry_status){0};
        rc = image_delete_once(st, repo, tag, digest, seen, cb, arg, changed, s);
    }
    return rc;
}

enum berth_err registry_image_delete(struct store *st, const char *repo, const char *tag,
                                     const struct digest *digest, registry_removed_cb cb, void *arg,
                                     struct registry_status *s)
{
    return image_delete(st, repo, tag, digest, NULL, cb, arg, NULL, s);
}

enum berth_err registry_image_delete_unchanged(struct store *st, const char *repo,
                                               const struct digest *digest,
                                               const struct registry_image_seen *seen,
                                               registry_removed_cb cb, void *arg, bool *changed,
                                               struct registry_status *s)
{
    return image_delete(st, repo, NULL, digest, seen, cb, arg, changed, s);
}

enum berth_err registry_tags(struct store *st, const char *repo, const char *last, int64_t n,
                             meta_name_cb cb, void *arg, bool *has_more, struct registry_status *s)
{
    struct meta *m;
    struct meta_repo r;
    enum berth_err rc = open_repo(st, repo, &m, &r, s);
    if (rc != BERTH_OK) {
        return rc;
    }
    rc = meta_tag_list(m, r.id, last, n < 0 ? INT64_MAX - 1 : n, cb, arg, has_more);
    return rc == BERTH_OK ? rc : internal(s, rc);
}

enum berth_err registry_referrers(struct store *st, const char *repo, const struct digest *subject,
                                  const char *artifact_type, meta_referrer_cb cb, void *arg,
                                  struct registry_status *s)
{
    struct meta *m;
    struct meta_repo r;
    enum berth_err rc = open_repo(st, repo, &m, &r, s);
    if (rc == BERTH_ENOTFOUND) {
        /* a repository that does not exist has no referrers */
        clear_status(s);
        return BERTH_OK;
    }
    if (rc != BERTH_OK) {
        return rc;
    }
    rc = meta_referrers(m, r.id, subject->str, artifact_type, cb, arg);
    return rc == BERTH_OK ? rc : internal(s, rc);
}
