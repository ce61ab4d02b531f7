/*
 * berth export: images of the store, with their index children and
 * referrers, written as an OCI image layout packed as tar or tar.zst
 * (libarchive). Blobs are streamed from the blob store, never held whole;
 * index.json goes last, when every manifest it lists has been written.
 */
#include "storage/bundle/bundle.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/fileio.h"
#include "common/str.h"
#include "common/timeutil.h"
#include "storage/blob/blob.h"
#include "storage/registry/registry.h"
#include "storage/spec/digest.h"
#include "storage/spec/manifest.h"
#include "storage/store/store.h"

/* Entries carry a fixed time so that the same images make the same bytes. */
#define ENTRY_MTIME 1
#define COPY_BUF (1024 * 1024)
#define PROGRESS_NS (250 * 1000 * 1000)

struct exporter {
    struct store *st;
    struct archive *a;
    char (*seen)[DIGEST_STR_MAX]; /* blobs and manifests already written */
    size_t seen_count;
    size_t seen_cap;
    json_t *index; /* the manifests array of index.json */
    char *buf;
    bundle_progress_fn progress;
    void *progress_arg;
    int64_t last_progress_ns;
    struct bundle_export_stats stats;
    char *why;
    size_t why_cap;
};

static enum berth_err fail(struct exporter *ex, enum berth_err rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum berth_err fail(struct exporter *ex, enum berth_err rc, const char *fmt, ...)
{
    if (ex->why[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ex->why, ex->why_cap, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static bool seen(const struct exporter *ex, const char *digest)
{
    for (size_t i = 0; i < ex->seen_count; i++) {
        if (strcmp(ex->seen[i], digest) == 0) {
            return true;
        }
    }
    return false;
}

static enum berth_err mark_seen(struct exporter *ex, const char *digest)
{
    if (ex->seen_count == ex->seen_cap) {
        size_t cap = ex->seen_cap ? ex->seen_cap * 2 : 64;
        void *p = realloc(ex->seen, cap * sizeof(*ex->seen));
        if (p == NULL) {
            return BERTH_ENOMEM;
        }
        ex->seen = p;
        ex->seen_cap = cap;
    }
    memcpy(ex->seen[ex->seen_count++], digest, DIGEST_STR_MAX);
    return BERTH_OK;
}

static void report(struct exporter *ex, bool done)
{
    if (ex->progress == NULL) {
        return;
    }
    int64_t now = time_mono_ns();
    if (!done && now - ex->last_progress_ns < PROGRESS_NS) {
        return;
    }
    ex->last_progress_ns = now;
    struct bundle_progress p = {
        .blobs = ex->stats.blobs, .bytes = ex->stats.bytes, .total = 0, .done = done};
    ex->progress(ex->progress_arg, &p);
}

static enum berth_err entry_header(struct exporter *ex, const char *name, int64_t size, bool is_dir)
{
    struct archive_entry *e = archive_entry_new();
    if (e == NULL) {
        return BERTH_ENOMEM;
    }
    archive_entry_set_pathname(e, name);
    archive_entry_set_filetype(e, is_dir ? AE_IFDIR : AE_IFREG);
    archive_entry_set_perm(e, is_dir ? 0755 : 0644);
    archive_entry_set_size(e, is_dir ? 0 : size);
    archive_entry_set_mtime(e, ENTRY_MTIME, 0);
    int ar = archive_write_header(ex->a, e);
    archive_entry_free(e);
    if (ar != ARCHIVE_OK) {
        return fail(ex, BERTH_EIO, "%s: %s", name, archive_error_string(ex->a));
    }
    return BERTH_OK;
}

static enum berth_err entry_data(struct exporter *ex, const char *name, const void *p, size_t n)
{
    if (n > 0 && archive_write_data(ex->a, p, n) != (la_ssize_t)n) {
        return fail(ex, BERTH_EIO, "%s: %s", name, archive_error_string(ex->a));
    }
    return BERTH_OK;
}

static enum berth_err put_small(struct exporter *ex, const char *name, const void *p, size_t n)
{
    enum berth_err rc = entry_header(ex, name, (int64_t)n, false);
    if (rc == BERTH_OK) {
        rc = entry_data(ex, name, p, n);
    }
    return rc;
}

static void blob_name(const struct digest *d, char *out, size_t cap)
{
    snprintf(out, cap, "blobs/%s/%s", digest_alg_name(d->alg), digest_hex(d));
}

/* A manifest's bytes, already in memory. */
static enum berth_err put_manifest_blob(struct exporter *ex, const struct digest *d,
                                        const char *body, size_t len)
{
    char name[DIGEST_STR_MAX + 16];
    blob_name(d, name, sizeof(name));
    enum berth_err rc = put_small(ex, name, body, len);
    if (rc == BERTH_OK) {
        rc = mark_seen(ex, d->str);
    }
    if (rc == BERTH_OK) {
        ex->stats.blobs++;
        ex->stats.bytes += (int64_t)len;
        report(ex, false);
    }
    return rc;
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

/* A blob streamed from the store. A missing non-distributable layer is
 * left out (it was never pushed). */
static enum berth_err put_blob(struct exporter *ex, const struct manifest_desc *desc,
                               const char *owner)
{
    if (seen(ex, desc->digest.str)) {
        return BERTH_OK;
    }
    int fd = -1;
    uint64_t size = 0;
    enum berth_err rc = blob_open(store_blobs(ex->st), &desc->digest, &fd, &size);
    if (rc == BERTH_ENOTFOUND &&
        (desc->non_distributable || store_options(ex->st)->sparse_manifests)) {
        return BERTH_OK; /* never pushed, or a sparse manifest's */
    }
    if (rc != BERTH_OK) {
        return fail(ex, rc, "blob %s of %s is not in the store (%s)", desc->digest.str, owner,
                    berth_strerror(rc));
    }
    char name[DIGEST_STR_MAX + 16];
    blob_name(&desc->digest, name, sizeof(name));
    rc = entry_header(ex, name, (int64_t)size, false);
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
        rc = entry_data(ex, name, ex->buf, (size_t)got);
        off += (uint64_t)got;
        ex->stats.bytes += got;
        report(ex, false);
    }
    file_close(fd);
    if (rc == BERTH_OK) {
        rc = mark_seen(ex, desc->digest.str);
    }
    if (rc == BERTH_OK) {
        ex->stats.blobs++;
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
    if (json_array_append_new(ex->index, desc) != 0) {
        return BERTH_ENOMEM;
    }
    ex->stats.images++;
    return BERTH_OK;
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
        rc = put_manifest_blob(ex, &d, body, len);
        if (rc == BERTH_OK) {
            ex->stats.manifests++;
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
    static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
    enum berth_err rc = entry_header(ex, "blobs/", 0, true);
    if (rc == BERTH_OK) {
        rc = entry_header(ex, "blobs/sha256/", 0, true);
    }
    if (rc == BERTH_OK) {
        rc = put_small(ex, "oci-layout", layout, sizeof(layout) - 1);
    }
    for (size_t i = 0; i < count && rc == BERTH_OK; i++) {
        struct meta_manifest mf;
        struct registry_status s;
        rc = registry_manifest_get(ex->st, refs[i].repo, refs[i].reference, &mf, &s);
        if (rc != BERTH_OK) {
            return fail(ex, rc, "%s%s%s: %s", refs[i].repo,
                        is_digest_ref(refs[i].reference) ? "@" : ":", refs[i].reference, s.message);
        }
        rc = add_entry(ex, &mf, refs[i].repo,
                       is_digest_ref(refs[i].reference) ? NULL : refs[i].reference);
        if (rc == BERTH_OK) {
            rc = put_manifest(ex, refs[i].repo, mf.digest, mf.media_type);
        }
    }
    if (rc != BERTH_OK) {
        return rc;
    }
    json_t *doc = json_pack("{s:i, s:s, s:O}", "schemaVersion", 2, "mediaType", MANIFEST_OCI_INDEX,
                            "manifests", ex->index);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (text == NULL) {
        return BERTH_ENOMEM;
    }
    rc = put_small(ex, "index.json", text, strlen(text));
    free(text);
    return rc;
}

enum berth_err bundle_export(struct store *st, const struct bundle_ref *refs, size_t count,
                             const char *path, bool zstd, bundle_progress_fn progress,
                             void *progress_arg, struct bundle_export_stats *stats, char *why,
                             size_t why_cap)
{
    struct exporter ex = {.st = st,
                          .progress = progress,
                          .progress_arg = progress_arg,
                          .why = why,
                          .why_cap = why_cap};
    why[0] = '\0';
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", path, (long)getpid()) >= sizeof(tmp)) {
        return fail(&ex, BERTH_EINVAL, "%s: path too long", path);
    }
    enum berth_err rc = BERTH_OK;
    ex.index = json_array();
    ex.buf = malloc(COPY_BUF);
    ex.a = archive_write_new();
    if (ex.index == NULL || ex.buf == NULL || ex.a == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    if (archive_write_set_format_pax_restricted(ex.a) != ARCHIVE_OK ||
        (zstd && archive_write_add_filter_zstd(ex.a) != ARCHIVE_OK)) {
        rc = fail(&ex, BERTH_EUNSUPPORTED, "libarchive: %s", archive_error_string(ex.a));
        goto out;
    }
    if (archive_write_open_filename(ex.a, tmp) != ARCHIVE_OK) {
        rc = fail(&ex, BERTH_EIO, "%s: %s", tmp, archive_error_string(ex.a));
        goto out;
    }
    rc = write_all(&ex, refs, count);
    if (archive_write_close(ex.a) != ARCHIVE_OK && rc == BERTH_OK) {
        rc = fail(&ex, BERTH_EIO, "%s: %s", tmp, archive_error_string(ex.a));
    }
    if (rc == BERTH_OK && rename(tmp, path) != 0) {
        rc = fail(&ex, BERTH_EIO, "%s: %s", path, strerror(errno));
    }
    if (rc == BERTH_OK) {
        report(&ex, true);
        *stats = ex.stats;
    }
out:
    if (rc != BERTH_OK) {
        unlink(tmp);
        if (why[0] == '\0') {
            snprintf(why, why_cap, "%s", berth_strerror(rc));
        }
    }
    if (ex.a != NULL) {
        archive_write_free(ex.a);
    }
    json_decref(ex.index);
    free(ex.buf);
    free(ex.seen);
    return rc;
}
