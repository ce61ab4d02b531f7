/*
 * berth import: an OCI image layout (a directory, or packed as tar, tar.gz,
 * tar.zst) loaded into the store in three passes. Reading streams every
 * blob entry into a blob stage while hashing it (manifests are also kept
 * in memory, bounded); planning parses index.json and every manifest it
 * reaches and finds each reference in the bundle or the store; only then
 * does publishing go through the registry's rules. Nothing is published
 * when reading or planning fails, and the stages are removed either way.
 * A docker save archive without index.json is planned from its
 * manifest.json instead: its files are staged by name and hash.
 */
#include "storage/bundle/bundle.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "common/fault.h"
#include "common/fileio.h"
#include "common/rand.h"
#include "common/str.h"
#include "common/timeutil.h"
#include "storage/blob/blob.h"
#include "storage/meta/meta.h"
#include "storage/registry/registry.h"
#include "storage/spec/digest.h"
#include "storage/spec/manifest.h"
#include "storage/spec/names.h"
#include "storage/store/store.h"

#define COPY_BUF (1024 * 1024)
#define PROGRESS_NS (250 * 1000 * 1000)
/* Small JSON blobs (manifests, configs) kept in memory for planning. */
#define KEPT_MAX ((size_t)256 * 1024 * 1024)
#define SMALL_FILE_MAX 4096
/* Indexes within indexes, at most (the recursion's bound). */
#define NEST_MAX 8
#define OCI_LAYER_TAR "application/vnd.oci.image.layer.v1.tar"

/* A blob entry of the bundle, verified. */
struct item {
    struct digest d;
    int64_t size;
    char stage[BLOB_STAGE_NAME_MAX + 1]; /* "" when the store had it, or once published */
    char *json;                          /* the bytes when they may be a manifest, else NULL */
    size_t json_len;
    bool over_budget; /* not kept: the import's KEPT_MAX was reached */
};

/* A file of a docker save archive: its name and what it hashes to. */
struct loose {
    char *name;
    struct digest d;
};

enum step_kind { STEP_BLOB, STEP_MANIFEST };

/* What publishing does, in order. */
struct step {
    enum step_kind kind;
    size_t repo; /* index into repos */
    struct digest d;
    const char *media_type; /* manifests: borrowed from the plan's strings */
    const char *tag;        /* manifests: NULL or the tag (borrowed from index.json) */
    const char *body;       /* manifests: borrowed from the item or owned_bodies */
    size_t len;
};

struct importer {
    struct store *st;
    const struct bundle_import_options *opt;
    const char *path;
    struct item *items;
    size_t item_count;
    size_t item_cap;
    size_t kept;
    char *index_json;
    size_t index_len;
    bool has_layout;
    char *docker_manifest; /* manifest.json of a docker save archive */
    size_t docker_manifest_len;
    struct loose *loose;
    size_t loose_count;
    char *buf;
    struct step *steps;
    size_t step_count;
    size_t step_cap;
    char **repos;
    size_t repo_count;
    char **owned; /* strings and bodies the plan owns */
    size_t owned_count;
    size_t owned_cap;
    int64_t entries;
    int64_t bytes;
    int64_t last_progress_ns;
    struct bundle_import_stats stats;
    char *why;
    size_t why_cap;
};

static enum berth_err fail(struct importer *im, enum berth_err rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum berth_err fail(struct importer *im, enum berth_err rc, const char *fmt, ...)
{
    if (im->why[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(im->why, im->why_cap, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static void report(struct importer *im, bool done)
{
    if (im->opt->progress == NULL) {
        return;
    }
    int64_t now = time_mono_ns();
    if (!done && now - im->last_progress_ns < PROGRESS_NS) {
        return;
    }
    im->last_progress_ns = now;
    struct bundle_progress p = {.blobs = im->entries, .bytes = im->bytes, .done = done};
    im->opt->progress(im->opt->progress_arg, &p);
}

static enum berth_err own(struct importer *im, char *p)
{
    if (p == NULL) {
        return BERTH_ENOMEM;
    }
    if (im->owned_count == im->owned_cap) {
        size_t cap = im->owned_cap ? im->owned_cap * 2 : 16;
        void *q = realloc(im->owned, cap * sizeof(*im->owned));
        if (q == NULL) {
            free(p);
            return BERTH_ENOMEM;
        }
        im->owned = q;
        im->owned_cap = cap;
    }
    im->owned[im->owned_count++] = p;
    return BERTH_OK;
}

static struct item *find_item(struct importer *im, const char *digest)
{
    for (size_t i = 0; i < im->item_count; i++) {
        if (strcmp(im->items[i].d.str, digest) == 0) {
            return &im->items[i];
        }
    }
    return NULL;
}

static enum berth_err add_loose(struct importer *im, const char *name, const struct digest *d)
{
    for (size_t i = 0; i < im->loose_count; i++) {
        /* which copy is meant is a guess (tar extraction keeps the last) */
        if (strcmp(im->loose[i].name, name) == 0 && strcmp(im->loose[i].d.str, d->str) != 0) {
            return fail(im, BERTH_EINVAL, "%s: more than one in the bundle, with other bytes",
                        name);
        }
    }
    void *p = realloc(im->loose, (im->loose_count + 1) * sizeof(*im->loose));
    if (p == NULL) {
        return BERTH_ENOMEM;
    }
    im->loose = p;
    im->loose[im->loose_count].name = strdup(name);
    if (im->loose[im->loose_count].name == NULL) {
        return BERTH_ENOMEM;
    }
    im->loose[im->loose_count++].d = *d;
    return BERTH_OK;
}

static void entry_name(const struct digest *d, char *out, size_t cap)
{
    snprintf(out, cap, "blobs/%s/%s", digest_alg_name(d->alg), digest_hex(d));
}

/* ---- reading ---- */

/* Where an entry's bytes come from: the archive or a file. */
struct reader {
    struct archive *a;
    int fd;
};

static la_ssize_t reader_read(struct reader *r, void *p, size_t n)
{
    if (r->a != NULL) {
        return archive_read_data(r->a, p, n);
    }
    for (;;) {
        ssize_t got = read(r->fd, p, n);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        return got;
    }
}

static const char *reader_error(struct reader *r)
{
    if (r->a != NULL) {
        const char *msg = archive_error_string(r->a);
        return msg ? msg : "read error";
    }
    return strerror(errno);
}

/* A small file entry (oci-layout, index.json) into a new buffer. */
static enum berth_err read_small(struct importer *im, const char *name, struct reader *r,
                                 size_t max, char **out, size_t *len)
{
    char *p = malloc(max + 1);
    if (p == NULL) {
        return BERTH_ENOMEM;
    }
    size_t n = 0;
    for (;;) {
        la_ssize_t got = reader_read(r, p + n, max + 1 - n);
        if (got < 0) {
            free(p);
            return fail(im, BERTH_EINVAL, "%s: %s (a truncated or corrupt bundle)", name,
                        reader_error(r));
        }
        if (got == 0) {
            break;
        }
        n += (size_t)got;
        if (n > max) {
            free(p);
            return fail(im, BERTH_EINVAL, "%s: larger than %zu bytes", name, max);
        }
    }
    p[n] = '\0';
    *out = p;
    *len = n;
    return BERTH_OK;
}

/* Whether the store has the blob, linked somewhere and backed by bytes. */
static bool store_has(struct importer *im, const struct digest *d)
{
    struct meta *m = store_meta(im->st);
    struct meta_blob b;
    if (m == NULL || meta_blob_get_visible(m, d->str, &b) != BERTH_OK) {
        return false;
    }
    int fd;
    uint64_t size;
    if (blob_open(store_blobs(im->st), d, &fd, &size) != BERTH_OK) {
        return false;
    }
    file_close(fd);
    return true;
}

static enum berth_err new_stage(struct importer *im, char *name)
{
    char uuid[RAND_UUID_LEN + 1];
    enum berth_err rc = rand_uuid(uuid);
    if (rc != BERTH_OK) {
        return rc;
    }
    snprintf(name, BLOB_STAGE_NAME_MAX + 1, "tmp-%s", uuid);
    return blob_stage_create(store_blobs(im->st), name);
}

/* A blob entry: hash it, stage it unless the store has it, keep it when it
 * may be a manifest. expected is the digest its name gives (blobs/), or
 * NULL for a file of a docker save archive, named by what it hashes to
 * (sha256) and recorded under its name. */
static enum berth_err read_item(struct importer *im, const char *name,
                                const struct digest *expected, int64_t size, struct reader *r)
{
    struct digest d = {.alg = DIGEST_SHA256};
    if (expected != NULL) {
        d = *expected;
    }
    if (im->item_count == im->item_cap) {
        size_t cap = im->item_cap ? im->item_cap * 2 : 64;
        void *p = realloc(im->items, cap * sizeof(*im->items));
        if (p == NULL) {
            return BERTH_ENOMEM;
        }
        im->items = p;
        im->item_cap = cap;
    }
    struct item *it = &im->items[im->item_count];
    memset(it, 0, sizeof(*it));
    it->d = d;
    it->size = size;
    im->item_count++; /* counted now so that its stage is removed on any failure */

    size_t manifest_max = store_options(im->st)->manifest_max;
    if (size >= 0 && (size_t)size <= manifest_max && im->kept + (size_t)size <= KEPT_MAX) {
        it->json = malloc((size_t)size + 1);
        if (it->json == NULL) {
            return BERTH_ENOMEM;
        }
    } else if (size >= 0 && (size_t)size <= manifest_max) {
        it->over_budget = true;
    }
    enum berth_err rc = BERTH_OK;
    struct blob_stage *stage = NULL;
    if (expected == NULL || !store_has(im, &d)) {
        rc = new_stage(im, it->stage);
        if (rc != BERTH_OK) {
            it->stage[0] = '\0';
            return fail(im, rc, "%s: cannot stage it in the store (%s)", name, berth_strerror(rc));
        }
        uint64_t ignored;
        rc = blob_stage_open(store_blobs(im->st), it->stage, &stage, &ignored);
        if (rc != BERTH_OK) {
            return fail(im, rc, "%s: cannot stage it in the store (%s)", name, berth_strerror(rc));
        }
    }
    struct digest_ctx *ctx = digest_ctx_new(d.alg);
    if (ctx == NULL) {
        blob_stage_close(stage);
        return BERTH_ENOMEM;
    }
    uint64_t off = 0;
    for (;;) {
        la_ssize_t got = reader_read(r, im->buf, COPY_BUF);
        if (got < 0) {
            rc = fail(im, BERTH_EINVAL, "%s: %s (a truncated or corrupt bundle)", name,
                      reader_error(r));
            break;
        }
        if (got == 0) {
            break;
        }
        if (size >= 0 && off + (uint64_t)got > (uint64_t)size) {
            rc = fail(im, BERTH_EINVAL, "%s: longer than its entry says", name);
            break;
        }
        rc = digest_ctx_update(ctx, im->buf, (size_t)got);
        if (rc == BERTH_OK && stage != NULL) {
            rc = blob_stage_write(stage, off, im->buf, (size_t)got);
        }
        if (rc != BERTH_OK) {
            uint64_t avail = 0;
            if (rc == BERTH_EIO && store_disk_full(im->st, &avail)) {
                /* the usual cause, named: EIO says nothing of it */
                fail(im, rc, "%s: staging failed: the data disk is full (%llu bytes free)", name,
                     (unsigned long long)avail);
            } else {
                fail(im, rc, "%s: staging failed (%s)", name, berth_strerror(rc));
            }
            break;
        }
        if (it->json != NULL) {
            memcpy(it->json + off, im->buf, (size_t)got);
        }
        off += (uint64_t)got;
        im->bytes += got;
        report(im, false);
    }
    struct digest got_d;
    if (rc == BERTH_OK && size >= 0 && off != (uint64_t)size) {
        rc = fail(im, BERTH_EINVAL, "%s: %llu bytes where its entry says %lld (truncated)", name,
                  (unsigned long long)off, (long long)size);
    }
    if (rc == BERTH_OK) {
        rc = digest_ctx_final(ctx, &got_d);
    }
    digest_ctx_free(ctx);
    if (rc == BERTH_OK && expected != NULL && strcmp(got_d.str, d.str) != 0) {
        rc = fail(im, BERTH_EDIGEST, "%s: the content does not match its digest (it is %s)", name,
                  got_d.str);
    }
    if (rc == BERTH_OK && stage != NULL) {
        rc = blob_stage_sync(stage);
    }
    blob_stage_close(stage);
    if (rc == BERTH_OK && expected == NULL) {
        rc = add_loose(im, name, &got_d);
        if (rc == BERTH_OK && find_item(im, got_d.str) != NULL) {
            /* the same bytes under another name: keep the first copy */
            blob_stage_remove(store_blobs(im->st), it->stage);
            free(it->json);
            im->item_count--;
            return BERTH_OK;
        }
        it->d = got_d;
    }
    if (rc != BERTH_OK) {
        return rc;
    }
    it->size = (int64_t)off;
    if (it->json != NULL && (off == 0 || it->json[0] != '{')) {
        free(it->json);
        it->json = NULL;
    }
    if (it->json != NULL) {
        it->json[off] = '\0';
        it->json_len = (size_t)off;
        im->kept += (size_t)off;
    }
    im->stats.blobs_read++;
    return BERTH_OK;
}

/* A blobs/<alg>/<hex> entry. */
static enum berth_err read_blob(struct importer *im, const char *name, const char *rest,
                                int64_t size, struct reader *r)
{
    char text[DIGEST_STR_MAX + 1];
    const char *slash = strchr(rest, '/');
    struct digest d;
    if (slash == NULL || (size_t)(slash - rest) + strlen(slash) >= sizeof(text)) {
        return fail(im, BERTH_EINVAL, "%s: not a blob name (blobs/<algorithm>/<hex>)", name);
    }
    snprintf(text, sizeof(text), "%.*s:%s", (int)(slash - rest), rest, slash + 1);
    if (digest_parse(text, &d) != BERTH_OK) {
        return fail(im, BERTH_EINVAL, "%s: not a blob name (blobs/<algorithm>/<hex>)", name);
    }
    if (find_item(im, d.str) != NULL) {
        return BERTH_OK; /* a second copy: the first was verified */
    }
    return read_item(im, name, &d, size, r);
}

static enum berth_err take_entry(struct importer *im, const char *name, int64_t size,
                                 struct reader *r)
{
    while (name[0] == '.' && name[1] == '/') {
        name += 2;
    }
    im->entries++;
    if (strcmp(name, "oci-layout") == 0) {
        char *text = NULL;
        size_t len = 0;
        enum berth_err rc = read_small(im, name, r, SMALL_FILE_MAX, &text, &len);
        if (rc != BERTH_OK) {
            return rc;
        }
        json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
        free(text);
        const char *version = json_string_value(json_object_get(doc, "imageLayoutVersion"));
        if (version == NULL) {
            rc = fail(im, BERTH_EINVAL, "oci-layout: no imageLayoutVersion");
        } else if (strcmp(version, "1") != 0 && !str_has_prefix(version, "1.")) {
            /* the spec's layout is 1.0.0; a later 1.x reads the same */
            rc = fail(im, BERTH_EUNSUPPORTED,
                      "oci-layout: imageLayoutVersion '%.40s' is not one this berth reads (1.0.0)",
                      version);
        } else if (im->has_layout) {
            rc = fail(im, BERTH_EINVAL, "oci-layout: more than one in the bundle");
        }
        json_decref(doc);
        im->has_layout = rc == BERTH_OK;
        return rc;
    }
    /* a second copy of index.json or manifest.json: which one is meant is
     * a guess (tar extraction keeps the last, a reader may take the first) */
    if (strcmp(name, "index.json") == 0) {
        if (im->index_json != NULL) {
            return fail(im, BERTH_EINVAL, "index.json: more than one in the bundle");
        }
        return read_small(im, name, r, store_options(im->st)->manifest_max, &im->index_json,
                          &im->index_len);
    }
    if (strcmp(name, "manifest.json") == 0) {
        if (im->docker_manifest != NULL) {
            return fail(im, BERTH_EINVAL, "manifest.json: more than one in the bundle");
        }
        return read_small(im, name, r, store_options(im->st)->manifest_max, &im->docker_manifest,
                          &im->docker_manifest_len);
    }
    if (str_has_prefix(name, "blobs/") && name[strlen(name) - 1] != '/') {
        return read_blob(im, name, name + strlen("blobs/"), size, r);
    }
    if (str_has_suffix(name, ".tar") || (str_has_suffix(name, ".json") && !strchr(name, '/'))) {
        /* a docker save archive's layer or config, named by a path */
        return read_item(im, name, NULL, size, r);
    }
    return BERTH_OK; /* directories and files a layout does not use */
}

static enum berth_err read_archive(struct importer *im)
{
    enum berth_err rc = BERTH_OK;
    struct archive *a = archive_read_new();
    if (a == NULL) {
        return BERTH_ENOMEM;
    }
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_zstd(a);
    archive_read_support_format_tar(a);
    if (archive_read_open_filename(a, im->path, 128 * 1024) != ARCHIVE_OK) {
        rc = fail(im, BERTH_EINVAL,
                  "%s: %s (not a tar, tar.gz or tar.zst bundle, or a "
                  "truncated or corrupt one)",
                  im->path, archive_error_string(a));
        goto out;
    }
    char last[1024] = "";
    for (;;) {
        struct archive_entry *e;
        int ar = archive_read_next_header(a, &e);
        if (ar == ARCHIVE_EOF) {
            break;
        }
        if (ar != ARCHIVE_OK && ar != ARCHIVE_WARN) {
            if (last[0] == '\0') {
                rc = fail(im, BERTH_EINVAL, "%s: not a tar, tar.gz or tar.zst bundle (%s)",
                          im->path, archive_error_string(a));
            } else {
                rc =
                    fail(im, BERTH_EINVAL, "the entry after %s: %s (a truncated or corrupt bundle)",
                         last, archive_error_string(a));
            }
            goto out;
        }
        const char *name = archive_entry_pathname(e);
        if (name == NULL || archive_entry_filetype(e) != AE_IFREG) {
            continue;
        }
        snprintf(last, sizeof(last), "%s", name);
        struct reader r = {.a = a, .fd = -1};
        rc = take_entry(im, name, archive_entry_size_is_set(e) ? archive_entry_size(e) : -1, &r);
        if (rc != BERTH_OK) {
            goto out;
        }
    }
out:
    archive_read_free(a);
    return rc;
}

static enum berth_err read_file_entry(struct importer *im, const char *rel)
{
    char full[4096];
    if ((size_t)snprintf(full, sizeof(full), "%s/%s", im->path, rel) >= sizeof(full)) {
        return fail(im, BERTH_EINVAL, "%s: path too long", rel);
    }
    /* O_NONBLOCK: a FIFO in the layout must not block the open (a
     * regular file's reads ignore the flag) */
    int fd = open(full, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (errno == ENOENT) {
            return BERTH_OK;
        }
        return fail(im, BERTH_EIO, "%s: %s", rel, strerror(errno));
    }
    struct stat sb;
    enum berth_err rc = BERTH_OK;
    if (fstat(fd, &sb) != 0) {
        rc = fail(im, BERTH_EIO, "%s: %s", rel, strerror(errno));
    } else if (S_ISREG(sb.st_mode)) {
        struct reader r = {.a = NULL, .fd = fd};
        rc = take_entry(im, rel, (int64_t)sb.st_size, &r);
    } else if (!S_ISDIR(sb.st_mode)) {
        rc = fail(im, BERTH_EINVAL, "%s: not a regular file", rel);
    }
    file_close(fd);
    return rc;
}

static enum berth_err read_directory(struct importer *im)
{
    enum berth_err rc = read_file_entry(im, "oci-layout");
    if (rc == BERTH_OK) {
        rc = read_file_entry(im, "index.json");
    }
    if (rc == BERTH_OK) {
        rc = read_file_entry(im, "manifest.json");
    }
    char dir[4096];
    if ((size_t)snprintf(dir, sizeof(dir), "%s/blobs", im->path) >= sizeof(dir)) {
        return fail(im, BERTH_EINVAL, "%s: path too long", im->path);
    }
    DIR *algs = rc == BERTH_OK ? opendir(dir) : NULL;
    if (algs == NULL) {
        return rc;
    }
    struct dirent *ae;
    while (rc == BERTH_OK && (ae = readdir(algs)) != NULL) {
        if (ae->d_name[0] == '.') {
            continue;
        }
        char sub[4096];
        if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", dir, ae->d_name) >= sizeof(sub)) {
            continue;
        }
        DIR *blobs = opendir(sub);
        if (blobs == NULL) {
            continue;
        }
        struct dirent *be;
        while (rc == BERTH_OK && (be = readdir(blobs)) != NULL) {
            if (be->d_name[0] == '.') {
                continue;
            }
            char rel[1024];
            if ((size_t)snprintf(rel, sizeof(rel), "blobs/%s/%s", ae->d_name, be->d_name) >=
                sizeof(rel)) {
                rc = fail(im, BERTH_EINVAL, "blobs/%s/%s: name too long", ae->d_name, be->d_name);
                break;
            }
            rc = read_file_entry(im, rel);
        }
        closedir(blobs);
    }
    closedir(algs);
    return rc;
}

/* ---- planning ---- */

static enum berth_err add_step(struct importer *im, const struct step *s)
{
    if (im->step_count == im->step_cap) {
        size_t cap = im->step_cap ? im->step_cap * 2 : 64;
        void *p = realloc(im->steps, cap * sizeof(*im->steps));
        if (p == NULL) {
            return BERTH_ENOMEM;
        }
        im->steps = p;
        im->step_cap = cap;
    }
    im->steps[im->step_count++] = *s;
    return BERTH_OK;
}

static bool planned(const struct importer *im, enum step_kind kind, size_t repo, const char *digest)
{
    for (size_t i = 0; i < im->step_count; i++) {
        const struct step *s = &im->steps[i];
        if (s->kind == kind && s->repo == repo && strcmp(s->d.str, digest) == 0) {
            return true;
        }
    }
    return false;
}

static enum berth_err repo_index(struct importer *im, const char *name, size_t *out)
{
    for (size_t i = 0; i < im->repo_count; i++) {
        if (strcmp(im->repos[i], name) == 0) {
            *out = i;
            return BERTH_OK;
        }
    }
    void *p = realloc(im->repos, (im->repo_count + 1) * sizeof(*im->repos));
    if (p == NULL) {
        return BERTH_ENOMEM;
    }
    im->repos = p;
    im->repos[im->repo_count] = strdup(name);
    if (im->repos[im->repo_count] == NULL) {
        return BERTH_ENOMEM;
    }
    *out = im->repo_count++;
    return BERTH_OK;
}

/* A config or layer of a manifest: in the bundle, or in the store. */
static enum berth_err plan_blob(struct importer *im, size_t repo, const struct manifest_desc *desc,
                                const char *owner)
{
    if (planned(im, STEP_BLOB, repo, desc->digest.str)) {
        return BERTH_OK;
    }
    if (find_item(im, desc->digest.str) == NULL && !store_has(im, &desc->digest)) {
        if (desc->non_distributable || store_options(im->st)->sparse_manifests) {
            return BERTH_OK; /* never pushed, or a sparse manifest's */
        }
        char name[DIGEST_STR_MAX + 16];
        entry_name(&desc->digest, name, sizeof(name));
        return fail(im, BERTH_ENOTFOUND, "%s: missing from the bundle (named by %s)", name, owner);
    }
    struct step s = {.kind = STEP_BLOB, .repo = repo, .d = desc->digest};
    return add_step(im, &s);
}

/* A manifest and, first, everything it references; depth counts the
 * indexes above it. */
static enum berth_err plan_manifest(struct importer *im, size_t repo, const struct digest *d,
                                    const char *media_type, const char *tag, const char *owner,
                                    int depth)
{
    char name[DIGEST_STR_MAX + 16];
    entry_name(d, name, sizeof(name));
    if (depth > NEST_MAX) {
        return fail(im, BERTH_EINVAL, "%s: indexes nested more than %d deep", name, NEST_MAX);
    }
    bool again = planned(im, STEP_MANIFEST, repo, d->str);
    const char *body = NULL;
    size_t len = 0;
    struct item *it = find_item(im, d->str);
    if (it != NULL && it->json != NULL) {
        body = it->json;
        len = it->json_len;
    } else if (it == NULL && store_has(im, d)) {
        char *copy = NULL;
        enum berth_err rc =
            blob_read_all(store_blobs(im->st), d, store_options(im->st)->manifest_max, &copy, &len);
        if (rc == BERTH_OK) {
            rc = own(im, copy);
        }
        if (rc != BERTH_OK) {
            return fail(im, rc, "%s: cannot be read from the store (%s)", name, berth_strerror(rc));
        }
        body = copy;
    } else if (it == NULL) {
        if (depth > 0 && store_options(im->st)->sparse_manifests) {
            return BERTH_OK; /* a child a sparse index goes without */
        }
        return fail(im, BERTH_ENOTFOUND, "%s: missing from the bundle (named by %s)", name, owner);
    } else if (it->size >= 0 && (size_t)it->size > store_options(im->st)->manifest_max) {
        /* (its bytes were not kept) */
        return fail(im, BERTH_ETOOBIG,
                    "%s: a manifest of %lld bytes, over storage.manifest_max_bytes (%zu) "
                    "(named by %s)",
                    name, (long long)it->size, store_options(im->st)->manifest_max, owner);
    } else if (it->over_budget) {
        return fail(im, BERTH_ETOOBIG,
                    "%s: the bundle's manifests and configs are over the %zu MiB an import "
                    "holds in memory; import it in parts (named by %s)",
                    name, KEPT_MAX >> 20, owner);
    } else {
        return fail(im, BERTH_EINVAL, "%s: not a manifest (named by %s)", name, owner);
    }
    char *mt = strdup(media_type);
    enum berth_err rc = own(im, mt);
    if (rc != BERTH_OK) {
        return rc;
    }
    if (!again) {
        struct manifest_info *info = NULL;
        char why[256];
        rc = manifest_parse(body, len, media_type[0] ? media_type : NULL, &info, why, sizeof(why));
        if (rc != BERTH_OK) {
            return fail(im, BERTH_EINVAL, "%s: not a valid manifest (named by %s): %s", name, owner,
                        why);
        }
        if (info->is_index) {
            for (size_t i = 0; i < info->ref_count && rc == BERTH_OK; i++) {
                rc = plan_manifest(im, repo, &info->refs[i].digest, info->refs[i].media_type, NULL,
                                   name, depth + 1);
            }
        } else {
            if (info->has_config) {
                rc = plan_blob(im, repo, &info->config, name);
            }
            for (size_t i = 0; i < info->ref_count && rc == BERTH_OK; i++) {
                rc = plan_blob(im, repo, &info->refs[i], name);
            }
        }
        manifest_info_free(info);
        if (rc != BERTH_OK) {
            return rc;
        }
    } else if (tag == NULL) {
        return BERTH_OK;
    }
    struct step s = {.kind = STEP_MANIFEST,
                     .repo = repo,
                     .d = *d,
                     .media_type = mt,
                     .tag = tag,
                     .body = body,
                     .len = len};
    return add_step(im, &s);
}

/* Split a reference name: "[registry/]repo:tag" into repo (the registry
 * host dropped) and *tag (borrowed from ref); a bare "tag" leaves repo
 * empty. False when the repository part does not fit in repo_cap. */
static bool split_ref_name(const char *ref, char *repo, size_t repo_cap, const char **tag)
{
    repo[0] = '\0';
    *tag = NULL;
    if (ref == NULL || ref[0] == '\0' || strchr(ref, '@') != NULL) {
        return true;
    }
    const char *slash = strrchr(ref, '/');
    const char *colon = strrchr(slash ? slash : ref, ':');
    if (colon == NULL) {
        *tag = ref;
        return true;
    }
    *tag = colon + 1;
    const char *start = ref;
    const char *first = strchr(ref, '/');
    size_t host_len = first ? (size_t)(first - ref) : 0;
    /* a registry host in front ("localhost:5000/", "example.com/") goes; a
     * host name never starts with a dot ("../team/app" is no host's) */
    if (first != NULL && first < colon && ref[0] != '.' &&
        (memchr(ref, '.', host_len) != NULL || memchr(ref, ':', host_len) != NULL ||
         (host_len == strlen("localhost") && strncmp(ref, "localhost", host_len) == 0))) {
        start = first + 1;
    }
    if ((size_t)(colon - start) >= repo_cap) {
        return false;
    }
    memcpy(repo, start, (size_t)(colon - start));
    repo[colon - start] = '\0';
    return true;
}

/* The repository (opt->repo wins, else the one named, else fallback) and
 * the tag are valid names. what says where they came from. */
static enum berth_err check_target(struct importer *im, const char *what, char *repo,
                                   size_t repo_cap, const char *fallback, const char *tag)
{
    if (repo[0] == '\0' && fallback != NULL) {
        snprintf(repo, repo_cap, "%s", fallback);
    }
    if (im->opt->repo != NULL) {
        snprintf(repo, repo_cap, "%s", im->opt->repo);
    }
    if (repo[0] == '\0') {
        return fail(im, BERTH_EINVAL, "%s names no repository: give --repo NAME", what);
    }
    if (!names_repo_valid(repo)) {
        return fail(im, BERTH_EINVAL, "%s: '%s' is not a repository name", what, repo);
    }
    if (tag != NULL && !names_tag_valid(tag)) {
        return fail(im, BERTH_EINVAL, "%s: '%s' is not a tag", what, tag);
    }
    return BERTH_OK;
}

/* Hauler's store (hauler.dev: `hauler store save` -> haul.tar.zst) marks
 * each index.json entry with a "kind"; signatures, attestations, SBOMs and
 * OCI referrers carry the ref.name of the image they belong to. */
#define HAULER_KIND "kind"
#define HAULER_COSIGN "dev.cosignproject.cosign/"

/* The digest of the image entry (kind image or imageIndex) of list whose
 * ref.name is ref; NULL when there is none. */
static const char *hauler_image_digest(json_t *list, const char *ref)
{
    size_t i;
    json_t *desc;
    json_array_foreach(list, i, desc)
    {
        json_t *ann = json_object_get(desc, "annotations");
        const char *kind = json_string_value(json_object_get(ann, HAULER_KIND));
        const char *name = json_string_value(json_object_get(ann, BUNDLE_REF_NAME));
        if (kind != NULL && name != NULL && strcmp(name, ref) == 0 &&
            (strcmp(kind, HAULER_COSIGN "image") == 0 ||
             strcmp(kind, HAULER_COSIGN "imageIndex") == 0)) {
            return json_string_value(json_object_get(desc, "digest"));
        }
    }
    return NULL;
}

/* The tag of a Hauler entry that is not an image: cosign's own tag
 * ("sha256-<hex>.sig", ".att", ".sbom" of the image's digest) for
 * signatures, attestations and SBOMs; none (kept by digest, found through
 * its subject) for referrers and any other kind. Images keep their tag. */
static enum berth_err hauler_tag(struct importer *im, json_t *list, json_t *desc, const char **tag)
{
    json_t *ann = json_object_get(desc, "annotations");
    const char *kind = json_string_value(json_object_get(ann, HAULER_KIND));
    const char *ref = json_string_value(json_object_get(ann, BUNDLE_REF_NAME));
    if (kind == NULL || strncmp(kind, HAULER_COSIGN, strlen(HAULER_COSIGN)) != 0 ||
        strcmp(kind, HAULER_COSIGN "image") == 0 || strcmp(kind, HAULER_COSIGN "imageIndex") == 0) {
        return BERTH_OK;
    }
    const char *what = kind + strlen(HAULER_COSIGN);
    const char *suffix = strcmp(what, "sigs") == 0    ? "sig"
                         : strcmp(what, "atts") == 0  ? "att"
                         : strcmp(what, "sboms") == 0 ? "sbom"
                                                      : NULL;
    const char *image = suffix && ref ? hauler_image_digest(list, ref) : NULL;
    const char *colon = image ? strchr(image, ':') : NULL;
    *tag = NULL;
    if (colon == NULL) {
        return BERTH_OK;
    }
    size_t len = strlen(image) + strlen(suffix) + 2;
    char *cosign = malloc(len);
    if (cosign != NULL) {
        snprintf(cosign, len, "%.*s-%s.%s", (int)(colon - image), image, colon + 1, suffix);
    }
    *tag = cosign;
    return own(im, cosign);
}

/* The repository and tag an index.json entry names. A ref.name is
 * "[registry/]repo:tag" (berth's bundles, skopeo's with a full name) or a
 * bare tag (skopeo's usual; containerd and Docker 25's docker save put the
 * full name in io.containerd.image.name beside it). */
static enum berth_err entry_target(struct importer *im, json_t *list, size_t i, json_t *desc,
                                   char *repo, size_t repo_cap, const char **tag)
{
    json_t *ann = json_object_get(desc, "annotations");
    const char *ref = json_string_value(json_object_get(ann, BUNDLE_REF_NAME));
    const char *named = json_string_value(json_object_get(ann, BUNDLE_REPOSITORY));
    const char *full = json_string_value(json_object_get(ann, "io.containerd.image.name"));
    char what[128];
    snprintf(what, sizeof(what), "index.json: manifests[%zu] (ref.name '%.40s')", i,
             ref ? ref : "");
    if (!split_ref_name(ref, repo, repo_cap, tag)) {
        return fail(im, BERTH_EINVAL, "%s: the name is too long", what);
    }
    if (repo[0] == '\0' && named == NULL && full != NULL) {
        const char *full_tag = NULL;
        if (!split_ref_name(full, repo, repo_cap, &full_tag)) {
            return fail(im, BERTH_EINVAL, "%s: the name is too long", what);
        }
        if (*tag == NULL) {
            *tag = full_tag;
        }
    }
    enum berth_err rc = hauler_tag(im, list, desc, tag);
    if (rc != BERTH_OK) {
        return rc;
    }
    return check_target(im, what, repo, repo_cap, named, *tag);
}

/* ---- docker save archives ---- */

/* The blob a manifest.json path names: a blobs/<alg>/<hex> entry, or a
 * file recorded under its name. */
static struct item *docker_file(struct importer *im, const char *name)
{
    if (name == NULL) {
        return NULL;
    }
    while (name[0] == '.' && name[1] == '/') {
        name += 2;
    }
    for (size_t i = 0; i < im->loose_count; i++) {
        if (strcmp(im->loose[i].name, name) == 0) {
            return find_item(im, im->loose[i].d.str);
        }
    }
    if (str_has_prefix(name, "blobs/")) {
        const char *rest = name + strlen("blobs/");
        const char *slash = strchr(rest, '/');
        char text[DIGEST_STR_MAX + 1];
        struct digest d;
        if (slash != NULL && (size_t)(slash - rest) + strlen(slash) < sizeof(text)) {
            snprintf(text, sizeof(text), "%.*s:%s", (int)(slash - rest), rest, slash + 1);
            if (digest_parse(text, &d) == BERTH_OK) {
                return find_item(im, d.str);
            }
        }
    }
    return NULL;
}

static json_t *docker_desc(const char *media_type, const struct item *it)
{
    return json_pack("{s:s, s:s, s:I}", "mediaType", media_type, "digest", it->d.str, "size",
                     (json_int_t)it->size);
}

/* One image of manifest.json: its config and layers checked (a config
 * named <hex>.json must hash to hex, each layer to the config's diff_id),
 * an OCI image manifest made over them (the same bytes every time), and
 * the steps to push it under each of its RepoTags. */
static enum berth_err plan_docker_image(struct importer *im, size_t i, json_t *entry)
{
    char what[64];
    snprintf(what, sizeof(what), "manifest.json[%zu]", i);
    const char *config_name = json_string_value(json_object_get(entry, "Config"));
    json_t *layers = json_object_get(entry, "Layers");
    json_t *repo_tags = json_object_get(entry, "RepoTags");
    if (config_name == NULL || !json_is_array(layers)) {
        return fail(im, BERTH_EINVAL, "%s: no Config or Layers", what);
    }
    struct item *config = docker_file(im, config_name);
    if (config == NULL) {
        return fail(im, BERTH_ENOTFOUND, "%s: missing from the bundle (named by %s)", config_name,
                    what);
    }
    const char *base = strrchr(config_name, '/') ? strrchr(config_name, '/') + 1 : config_name;
    size_t hex_len = strlen(digest_hex(&config->d));
    if (!str_has_prefix(config_name, "blobs/") && strlen(base) == hex_len + strlen(".json") &&
        strncmp(base, digest_hex(&config->d), hex_len) != 0) {
        return fail(im, BERTH_EDIGEST, "%s: the content does not match its digest (it is %s)",
                    config_name, config->d.str);
    }
    json_t *cfg = config->json ? json_loadb(config->json, config->json_len, 0, NULL) : NULL;
    json_t *diff_ids = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
    if (!json_is_array(diff_ids) || json_array_size(diff_ids) != json_array_size(layers)) {
        json_decref(cfg);
        return fail(im, BERTH_EINVAL, "%s: not an image config with one diff_id per layer",
                    config_name);
    }
    enum berth_err rc = BERTH_OK;
    json_t *descs = json_array();
    json_t *manifest = NULL;
    size_t j;
    json_t *layer;
    json_array_foreach(layers, j, layer)
    {
        const char *name = json_string_value(layer);
        struct item *it = docker_file(im, name);
        const char *diff_id = json_string_value(json_array_get(diff_ids, j));
        if (it == NULL) {
            rc = fail(im, BERTH_ENOTFOUND, "%s: missing from the bundle (named by %s)",
                      name ? name : "(a layer)", what);
        } else if (diff_id == NULL || strcmp(diff_id, it->d.str) != 0) {
            rc = fail(im, BERTH_EDIGEST,
                      "%s: the content does not match the config's diff_id (it is %s)", name,
                      it->d.str);
        } else if (json_array_append_new(descs, docker_desc(OCI_LAYER_TAR, it)) != 0) {
            rc = BERTH_ENOMEM;
        }
        if (rc != BERTH_OK) {
            break;
        }
    }
    char *body = NULL;
    if (rc == BERTH_OK) {
        manifest = json_pack(
            "{s:i, s:s, s:o, s:O}", "schemaVersion", 2, "mediaType", MANIFEST_OCI, "config",
            docker_desc("application/vnd.oci.image.config.v1+json", config), "layers", descs);
        body = manifest ? json_dumps(manifest, JSON_COMPACT) : NULL;
        rc = own(im, body);
    }
    json_decref(manifest);
    json_decref(descs);
    json_decref(cfg);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct digest d;
    rc = digest_buffer(DIGEST_SHA256, body, strlen(body), &d);
    if (rc != BERTH_OK) {
        return fail(im, rc, "%s: cannot compute the manifest's digest", what);
    }
    size_t tag_count = json_is_array(repo_tags) ? json_array_size(repo_tags) : 0;
    for (j = 0; j < (tag_count ? tag_count : 1) && rc == BERTH_OK; j++) {
        char repo[512];
        const char *tag = NULL;
        const char *ref = json_string_value(json_array_get(repo_tags, j));
        if (!split_ref_name(ref, repo, sizeof(repo), &tag)) {
            return fail(im, BERTH_EINVAL, "%s: RepoTags: a name too long", what);
        }
        rc = check_target(im, what, repo, sizeof(repo), NULL, tag);
        if (rc == BERTH_OK && tag != NULL) {
            /* manifest.json is gone before publishing: the plan keeps its own copy */
            char *copy = strdup(tag);
            rc = own(im, copy);
            tag = copy;
        }
        size_t r = 0;
        if (rc == BERTH_OK) {
            rc = repo_index(im, repo, &r);
        }
        struct manifest_desc desc = {.digest = config->d, .size = config->size};
        if (rc == BERTH_OK) {
            rc = plan_blob(im, r, &desc, what);
        }
        size_t k;
        json_array_foreach(layers, k, layer)
        {
            if (rc == BERTH_OK) {
                desc.digest = docker_file(im, json_string_value(layer))->d;
                rc = plan_blob(im, r, &desc, what);
            }
        }
        struct step s = {.kind = STEP_MANIFEST,
                         .repo = r,
                         .d = d,
                         .media_type = MANIFEST_OCI,
                         .tag = tag,
                         .body = body,
                         .len = strlen(body)};
        if (rc == BERTH_OK) {
            rc = add_step(im, &s);
        }
    }
    im->stats.images++;
    return rc;
}

static enum berth_err plan_docker(struct importer *im)
{
    json_error_t jerr;
    json_t *doc = json_loadb(im->docker_manifest, im->docker_manifest_len, 0, &jerr);
    if (!json_is_array(doc)) {
        json_decref(doc);
        return fail(im, BERTH_EINVAL, "manifest.json: not a docker save manifest (%s)", jerr.text);
    }
    enum berth_err rc = BERTH_OK;
    size_t i;
    json_t *entry;
    json_array_foreach(doc, i, entry)
    {
        rc = plan_docker_image(im, i, entry);
        if (rc != BERTH_OK) {
            break;
        }
    }
    json_decref(doc);
    im->stats.repos = (int64_t)im->repo_count;
    return rc;
}

static enum berth_err plan(struct importer *im, json_t *index)
{
    json_t *list = json_object_get(index, "manifests");
    if (!json_is_array(list)) {
        return fail(im, BERTH_EINVAL, "index.json: no manifests array");
    }
    size_t i;
    json_t *desc;
    json_array_foreach(list, i, desc)
    {
        const char *digest = json_string_value(json_object_get(desc, "digest"));
        const char *mt = json_string_value(json_object_get(desc, "mediaType"));
        struct digest d;
        if (digest == NULL || digest_parse(digest, &d) != BERTH_OK) {
            return fail(im, BERTH_EINVAL, "index.json: manifests[%zu]: no valid digest", i);
        }
        char repo[512];
        const char *tag = NULL;
        size_t r;
        enum berth_err rc = entry_target(im, list, i, desc, repo, sizeof(repo), &tag);
        if (rc == BERTH_OK) {
            rc = repo_index(im, repo, &r);
        }
        if (rc == BERTH_OK) {
            rc = plan_manifest(im, r, &d, mt ? mt : "", tag, "index.json", 0);
        }
        if (rc != BERTH_OK) {
            return rc;
        }
        im->stats.images++;
    }
    im->stats.repos = (int64_t)im->repo_count;
    return BERTH_OK;
}

/* ---- publishing ---- */

static enum berth_err publish_blob(struct importer *im, const struct step *s)
{
    const char *repo = im->repos[s->repo];
    struct registry_status st;
    struct meta_blob b;
    if (registry_blob_stat(im->st, repo, &s->d, &b, &st) == BERTH_OK) {
        return BERTH_OK;
    }
    struct item *it = find_item(im, s->d.str);
    enum berth_err rc;
    if (it != NULL && it->stage[0] != '\0' && !store_has(im, &s->d)) {
        rc = registry_blob_publish(im->st, repo, it->stage, &s->d, it->size, &b, &st);
        if (rc == BERTH_OK) {
            it->stage[0] = '\0';
            im->stats.blobs_new++;
            im->stats.bytes_new += it->size;
        }
    } else {
        rc = registry_blob_mount(im->st, repo, &s->d, NULL, &b, &st);
        if (rc == BERTH_OK) {
            im->stats.blobs_linked++;
        }
    }
    if (rc != BERTH_OK) {
        return fail(im, rc, "%s: blob %s: %s", repo, s->d.str, st.message);
    }
    return BERTH_OK;
}

static enum berth_err publish_manifest(struct importer *im, const struct step *s)
{
    const char *repo = im->repos[s->repo];
    struct registry_status st;
    struct meta_manifest before;
    bool existed = registry_manifest_get(im->st, repo, s->d.str, &before, &st) == BERTH_OK;
    bool tag_moves = false;
    if (s->tag != NULL) {
        tag_moves = registry_manifest_get(im->st, repo, s->tag, &before, &st) != BERTH_OK ||
                    strcmp(before.digest, s->d.str) != 0;
    }
    if (existed && s->tag == NULL) {
        return BERTH_OK;
    }
    if (existed && !tag_moves) {
        return BERTH_OK;
    }
    struct registry_put in = {.repo = repo,
                              .body = s->body,
                              .len = s->len,
                              .content_type = s->media_type[0] ? s->media_type : NULL,
                              .expected = &s->d,
                              .tags = s->tag ? &s->tag : NULL,
                              .tag_count = s->tag ? 1 : 0,
                              .create_repo = true};
    struct registry_put_result out;
    enum berth_err rc = registry_manifest_put(im->st, &in, &out, &st);
    if (rc != BERTH_OK) {
        return fail(im, rc, "%s%s%s: %s", repo, s->tag ? ":" : "@", s->tag ? s->tag : s->d.str,
                    st.message);
    }
    if (out.created) {
        im->stats.manifests_new++;
    }
    if (tag_moves) {
        im->stats.tags_set++;
    }
    return BERTH_OK;
}

/* Tags the bundle would move that the store keeps immutable: refused
 * before anything is published, so that a refused import changes nothing
 * (the publishing checks again, for a change made meanwhile). */
static enum berth_err check_tags(struct importer *im)
{
    for (size_t i = 0; i < im->step_count; i++) {
        const struct step *s = &im->steps[i];
        if (s->kind != STEP_MANIFEST || s->tag == NULL) {
            continue;
        }
        struct registry_status st;
        enum berth_err rc = registry_tag_check(im->st, im->repos[s->repo], s->tag, s->d.str, &st);
        if (rc != BERTH_OK) {
            return fail(im, rc, "%s:%s: %s Nothing was imported.", im->repos[s->repo], s->tag,
                        st.message);
        }
    }
    return BERTH_OK;
}

static enum berth_err publish(struct importer *im)
{
    enum berth_err rc = check_tags(im);
    size_t published = 0; /* manifests */
    for (size_t i = 0; i < im->step_count && rc == BERTH_OK; i++) {
        const struct step *s = &im->steps[i];
        rc = s->kind == STEP_BLOB ? publish_blob(im, s) : publish_manifest(im, s);
        if (rc == BERTH_OK) {
            published += s->kind == STEP_MANIFEST;
            fault_point("import-step-published");
        }
    }
    size_t len = strlen(im->why);
    if (rc != BERTH_OK && published > 0 && len < im->why_cap) {
        /* steps publish one by one: say what is in already */
        snprintf(im->why + len, im->why_cap - len,
                 " (%zu manifests of the bundle were imported before it; importing it again "
                 "once the cause is gone completes it)",
                 published);
    }
    return rc;
}

static enum berth_err run(struct importer *im)
{
    struct stat sb;
    if (stat(im->path, &sb) != 0) {
        return fail(im, BERTH_ENOTFOUND, "%s: %s", im->path, strerror(errno));
    }
    enum berth_err rc = S_ISDIR(sb.st_mode) ? read_directory(im) : read_archive(im);
    if (rc != BERTH_OK) {
        return rc;
    }
    report(im, true);
    if (im->index_json == NULL && im->docker_manifest != NULL) {
        rc = plan_docker(im);
        return rc == BERTH_OK ? publish(im) : rc;
    }
    if (im->index_json == NULL) {
        return fail(im, BERTH_EINVAL,
                    "%s: not an OCI image layout (no index.json) nor a docker save archive",
                    im->path);
    }
    if (!im->has_layout) {
        return fail(im, BERTH_EINVAL, "%s: not an OCI image layout (no oci-layout)", im->path);
    }
    json_error_t jerr;
    json_t *index = json_loadb(im->index_json, im->index_len, 0, &jerr);
    if (!json_is_object(index)) {
        json_decref(index);
        return fail(im, BERTH_EINVAL, "index.json: not a JSON object (%s)", jerr.text);
    }
    rc = plan(im, index);
    if (rc == BERTH_OK) {
        rc = publish(im);
    }
    json_decref(index);
    return rc;
}

enum berth_err bundle_import(struct store *st, const char *path,
                             const struct bundle_import_options *opt,
                             struct bundle_import_stats *stats, char *why, size_t why_cap)
{
    struct importer im = {.st = st, .opt = opt, .path = path, .why = why, .why_cap = why_cap};
    why[0] = '\0';
    enum berth_err rc = BERTH_ENOMEM;
    im.buf = malloc(COPY_BUF);
    if (im.buf != NULL) {
        rc = run(&im);
    }
    for (size_t i = 0; i < im.item_count; i++) {
        if (im.items[i].stage[0] != '\0') {
            blob_stage_remove(store_blobs(st), im.items[i].stage);
        }
        free(im.items[i].json);
    }
    if (rc == BERTH_OK) {
        *stats = im.stats;
    } else if (why[0] == '\0') {
        snprintf(why, why_cap, "%s", berth_strerror(rc));
    }
    for (size_t i = 0; i < im.owned_count; i++) {
        free(im.owned[i]);
    }
    for (size_t i = 0; i < im.repo_count; i++) {
        free(im.repos[i]);
    }
    free(im.owned);
    free(im.repos);
    free(im.steps);
    free(im.items);
    for (size_t i = 0; i < im.loose_count; i++) {
        free(im.loose[i].name);
    }
    free(im.loose);
    free(im.index_json);
    free(im.docker_manifest);
    free(im.buf);
    return rc;
}
