/*
 * berth export: images of the store, with their index children and
 * referrers, written as an OCI image layout packed as tar or tar.zst
 * (the bundle writer, writer.c). Blobs are streamed from the blob store, never held whole;
 * index.json goes last, when every manifest it lists has been written.
 */
#include "storage/bundle/bundle.h"
#include "storage/bundle/bundle_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/fileio.h"
#include "common/str.h"
#include "common/timeutil.h"
#include "storage/blob/blob.h"
#include "storage/meta/meta.h"
#include "storage/registry/archive.h"
#include "storage/registry/registry.h"
#include "storage/spec/digest.h"
#include "storage/spec/manifest.h"
#include "storage/store/store.h"

#define COPY_BUF (1024 * 1024)

struct exporter {
    struct store *st;
    struct bundle_writer w;
    char *buf;
};

#define fail(ex, ...) bundle_writer_fail(&(ex)->w, __VA_ARGS__)

static bool seen(const struct exporter *ex, const char *digest)
{
    return bundle_writer_done(&ex->w, digest);
}

/* Whether the store holds the bytes of d. */
static bool stored(struct exporter *ex, const struct digest *d)
{
    int fd = -1;
    uint64_t size = 0;
    if (blob_open(store_blobs(ex->st), d, &fd, &size) != BERTH_OK) {
        return false;
    }
    file_close(fd);
    return true;
}

/* Whether d's bytes were moved to the archive tier (storage/store/tier.h). */
static bool in_archive_tier(struct exporter *ex, const struct digest *d)
{
    struct meta *m = store_meta(ex->st);
    struct meta_blob row;
    return m != NULL && meta_blob_get(m, d->str, &row) == BERTH_OK && row.tier == META_TIER_ARCHIVE;
}

/* A blob streamed from the store. A missing non-distributable layer is
 * left out (it was never pushed). */
static enum berth_err put_blob(struct exporter *ex, const struct manifest_desc *desc,
                               const char *owner)
{
    if (!bundle_writer_wants(&ex->w, &desc->digest, desc->size)) {
        return BERTH_OK;
    }
    int fd = -1;
    uint64_t size = 0;
    enum berth_err rc = blob_open(store_blobs(ex->st), &desc->digest, &fd, &size);
    if (rc == BERTH_ENOTFOUND &&
        (desc->non_distributable || store_options(ex->st)->sparse_manifests)) {
        return BERTH_OK; /* never pushed, or a sparse manifest's */
    }
    if (rc == BERTH_ENOTFOUND && in_archive_tier(ex, &desc->digest)) {
        return fail(ex, rc,
                    "blob %s of %s is in the archive tier (only archived images use it): restore "
                    "the image first (UpdateImageStorageClass STANDARD), wait until it is "
                    "ACTIVE, then export",
                    desc->digest.str, owner);
    }
    if (rc != BERTH_OK) {
        return fail(ex, rc, "blob %s of %s is not in the store (%s)", desc->digest.str, owner,
                    berth_strerror(rc));
    }
    rc = bundle_writer_begin(&ex->w, &desc->digest, (int64_t)size);
    uint64_t off = 0;
    while (rc == BERTH_OK && off < size) {
        size_t want = size - off < COPY_BUF ? (size_t)(size - off) : COPY_BUF;
        ssize_t got = pread(fd, ex->buf, want, (off_t)off);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            rc = fail(ex, BERTH_EIO, "reading blob %s: %s", desc->digest.str,
                      got < 0 ? strerror(errno) : "shorter than its size");
            break;
        }
        rc = bundle_writer_data(&ex->w, ex->buf, (size_t)got);
        off += (uint64_t)got;
    }
    file_close(fd);
    if (rc == BERTH_OK) {
        rc = bundle_writer_end(&ex->w, &desc->digest);
    }
    return rc;
}

/* The index.json entry of a manifest. */
static enum berth_err add_entry(struct exporter *ex, const struct meta_manifest *mf,
                                const char *repo, const char *tag)
{
    json_t *desc = json_pack("{s:s, s:s, s:I}", "mediaType", mf->media_type, "digest", mf->digest,
                             "size", (json_int_t)mf->size);
    json_t *ann = json_object();
    if (desc == NULL || ann == NULL) {
        json_decref(desc);
        json_decref(ann);
        return BERTH_ENOMEM;
    }
    if (mf->artifact_type[0] != '\0' && mf->subject[0] != '\0') {
        json_object_set_new(desc, "artifactType", json_string(mf->artifact_type));
    }
    if (tag != NULL) {
        char ref[1024];
        snprintf(ref, sizeof(ref), "%s:%s", repo, tag);
        json_object_set_new(ann, BUNDLE_REF_NAME, json_string(ref));
    }
    json_object_set_new(ann, BUNDLE_REPOSITORY, json_string(repo));
    json_object_set_new(desc, "annotations", ann);
    return bundle_writer_entry(&ex->w, desc);
}

struct referrer_list {
    struct meta_manifest *items;
    size_t count;
    size_t cap;
    bool oom;
};

static int collect_referrer(void *arg, const struct meta_manifest *mf, const char *annotations)
{
    (void)annotations;
    struct referrer_list *l = arg;
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        void *p = realloc(l->items, cap * sizeof(*l->items));
        if (p == NULL) {
            l->oom = true;
            return 1;
        }
        l->items = p;
        l->cap = cap;
    }
    l->items[l->count++] = *mf;
    return 0;
}

static enum berth_err put_manifest(struct exporter *ex, const char *repo, const char *digest,
                                   const char *media_type);

/* Referrers of d in repo: each written, and listed in index.json so that an
 * import finds it. */
static enum berth_err put_referrers(struct exporter *ex, const char *repo, const struct digest *d)
{
    struct referrer_list l = {0};
    struct registry_status s;
    enum berth_err rc = registry_referrers(ex->st, repo, d, NULL, collect_referrer, &l, &s);
    if (rc == BERTH_OK && l.oom) {
        rc = BERTH_ENOMEM;
    }
    if (rc != BERTH_OK) {
        free(l.items);
        return fail(ex, rc, "referrers of %s@%s: %s", repo, d->str, s.message);
    }
    for (size_t i = 0; i < l.count && rc == BERTH_OK; i++) {
        if (seen(ex, l.items[i].digest)) {
            continue;
        }
        rc = add_entry(ex, &l.items[i], repo, NULL);
        if (rc == BERTH_OK) {
            rc = put_manifest(ex, repo, l.items[i].digest, l.items[i].media_type);
        }
    }
    free(l.items);
    return rc;
}

/* A manifest, after everything it references (children, config, layers),
 * then its referrers. */
static enum berth_err put_manifest(struct exporter *ex, const char *repo, const char *digest,
                                   const char *media_type)
{
    if (seen(ex, digest)) {
        return BERTH_OK;
    }
    struct digest d;
    enum berth_err rc = digest_parse(digest, &d);
    if (rc != BERTH_OK) {
        return fail(ex, rc, "%s@%s: not a digest", repo, digest);
    }
    char *body = NULL;
    size_t len = 0;
    struct manifest_info *info = NULL;
    char owner[1024];
    snprintf(owner, sizeof(owner), "%s@%s", repo, digest);
    rc = blob_read_all(store_blobs(ex->st), &d, store_options(ex->st)->manifest_max, &body, &len);
    if (rc != BERTH_OK) {
        return fail(ex, rc, "manifest %s cannot be read (%s)", owner, berth_strerror(rc));
    }
    char why[256];
    rc = manifest_parse(body, len, media_type, &info, why, sizeof(why));
    if (rc != BERTH_OK) {
        rc = fail(ex, rc, "manifest %s: %s", owner, why);
        goto out;
    }
    if (info->is_index) {
        for (size_t i = 0; i < info->ref_count && rc == BERTH_OK; i++) {
            if (store_options(ex->st)->sparse_manifests && !stored(ex, &info->refs[i].digest)) {
                continue; /* a child a sparse index goes without */
            }
            rc = put_manifest(ex, repo, info->refs[i].digest.str, info->refs[i].media_type);
        }
    } else {
        if (info->has_config) {
            rc = put_blob(ex, &info->config, owner);
        }
        for (size_t i = 0; i < info->ref_count && rc == BERTH_OK; i++) {
            rc = put_blob(ex, &info->refs[i], owner);
        }
    }
    if (rc == BERTH_OK && !seen(ex, digest)) {
        bool wanted = bundle_writer_wants(&ex->w, &d, (int64_t)len);
        rc = wanted ? bundle_writer_put(&ex->w, &d, body, len) : BERTH_OK;
        if (rc == BERTH_OK && wanted) {
            ex->w.stats.manifests++;
        }
    }
    if (rc == BERTH_OK) {
        rc = put_referrers(ex, repo, &d);
    }
out:
    manifest_info_free(info);
    free(body);
    return rc;
}

static bool is_digest_ref(const char *reference)
{
    return strchr(reference, ':') != NULL;
}

static enum berth_err write_all(struct exporter *ex, const struct bundle_ref *refs, size_t count)
{
    enum berth_err rc = BERTH_OK;
    for (size_t i = 0; i < count && rc == BERTH_OK; i++) {
        struct meta_manifest mf;
        struct registry_status s;
        rc = registry_manifest_get(ex->st, refs[i].repo, refs[i].reference, &mf, &s);
        if (rc != BERTH_OK) {
            return fail(ex, rc, "%s%s%s: %s", refs[i].repo,
                        is_digest_ref(refs[i].reference) ? "@" : ":", refs[i].reference, s.message);
        }
        /* an archived image's blobs may be in the archive tier: not exported
         * (a pull of it is refused too) */
        rc = registry_image_check_active(&mf, time_now_ms(), &s);
        if (rc != BERTH_OK) {
            return fail(ex, rc,
                        "%s%s%s: %s; export it once it is ACTIVE (restore it first: "
                        "UpdateImageStorageClass STANDARD)",
                        refs[i].repo, is_digest_ref(refs[i].reference) ? "@" : ":",
                        refs[i].reference, s.message);
        }
        rc = add_entry(ex, &mf, refs[i].repo,
                       is_digest_ref(refs[i].reference) ? NULL : refs[i].reference);
        if (rc == BERTH_OK) {
            rc = put_manifest(ex, refs[i].repo, mf.digest, mf.media_type);
        }
    }
    return rc;
}

enum berth_err bundle_export(struct store *st, const struct bundle_ref *refs, size_t count,
                             const char *path, bool zstd, const char *since,
                             bundle_progress_fn progress, void *progress_arg,
                             struct bundle_export_stats *stats, char *why, size_t why_cap)
{
    struct exporter ex = {.st = st};
    enum berth_err rc =
        bundle_writer_open(&ex.w, path, zstd, since, progress, progress_arg, why, why_cap);
    if (rc != BERTH_OK) {
        return rc;
    }
    ex.buf = malloc(COPY_BUF);
    rc = ex.buf == NULL ? BERTH_ENOMEM : write_all(&ex, refs, count);
    free(ex.buf);
    if (rc != BERTH_OK) {
        if (why[0] == '\0') {
            snprintf(why, why_cap, "%s", berth_strerror(rc));
        }
        bundle_writer_abort(&ex.w);
        return rc;
    }
    struct bundle_export_stats done = ex.w.stats;
    rc = bundle_writer_finish(&ex.w);
    if (rc == BERTH_OK) {
        *stats = done;
    }
    return rc;
}
