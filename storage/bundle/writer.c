/* The bundle writer (export and mirror) and the previous bundle of a
 * delta; see bundle_int.h. */
#define _GNU_SOURCE /* mkostemp */
#include "storage/bundle/bundle_int.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/str.h"
#include "common/timeutil.h"
#include "storage/spec/manifest.h"

/* Entries carry a fixed time so that the same images make the same bytes. */
#define ENTRY_MTIME 1
#define PROGRESS_NS (250 * 1000 * 1000)

int (*bundle_writer_fsync)(int fd) = fsync;

/* ---- digest sets ---- */

static size_t slot_of(const char *digest, size_t mask)
{
    /* FNV-1a over the text: digests are already uniform, but the prefix is not */
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = digest; *p != '\0'; p++) {
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    }
    return (size_t)h & mask;
}

bool digest_set_has(const struct digest_set *s, const char *digest)
{
    if (s->cap == 0) {
        return false;
    }
    for (size_t i = slot_of(digest, s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (s->slots[i][0] == '\0') {
            return false;
        }
        if (strcmp(s->slots[i], digest) == 0) {
            return true;
        }
    }
}

enum berth_err digest_set_add(struct digest_set *s, const char *digest)
{
    if (strlen(digest) >= DIGEST_STR_MAX || digest[0] == '\0') {
        return BERTH_EINVAL;
    }
    if (digest_set_has(s, digest)) {
        return BERTH_OK;
    }
    if ((s->count + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        char(*slots)[DIGEST_STR_MAX] = calloc(cap, sizeof(*slots));
        if (slots == NULL) {
            return BERTH_ENOMEM;
        }
        for (size_t i = 0; i < s->cap; i++) {
            if (s->slots[i][0] != '\0') {
                size_t j = slot_of(s->slots[i], cap - 1);
                while (slots[j][0] != '\0') {
                    j = (j + 1) & (cap - 1);
                }
                memcpy(slots[j], s->slots[i], DIGEST_STR_MAX);
            }
        }
        free(s->slots);
        s->slots = slots;
        s->cap = cap;
    }
    size_t i = slot_of(digest, s->cap - 1);
    while (s->slots[i][0] != '\0') {
        i = (i + 1) & (s->cap - 1);
    }
    str_copy(s->slots[i], DIGEST_STR_MAX, digest);
    s->count++;
    return BERTH_OK;
}

void digest_set_fini(struct digest_set *s)
{
    free(s->slots);
    memset(s, 0, sizeof(*s));
}

/* ---- the previous bundle ---- */

/* "blobs/<alg>/<hex>" as a digest into the set; other names are ignored. */
static enum berth_err since_name(struct bundle_writer *w, const char *name)
{
    while (name[0] == '.' && name[1] == '/') {
        name += 2;
    }
    if (!str_has_prefix(name, "blobs/")) {
        return BERTH_OK;
    }
    const char *rest = name + strlen("blobs/");
    const char *slash = strchr(rest, '/');
    char text[DIGEST_STR_MAX + 1];
    struct digest d;
    if (slash == NULL || (size_t)(slash - rest) + strlen(slash) >= sizeof(text)) {
        return BERTH_OK;
    }
    snprintf(text, sizeof(text), "%.*s:%s", (int)(slash - rest), rest, slash + 1);
    if (digest_parse(text, &d) != BERTH_OK) {
        return BERTH_OK;
    }
    return digest_set_add(&w->since, d.str);
}

static enum berth_err since_directory(struct bundle_writer *w, const char *path, bool *layout)
{
    char dir[4096];
    struct stat sb;
    snprintf(dir, sizeof(dir), "%s/index.json", path);
    *layout = stat(dir, &sb) == 0;
    if ((size_t)snprintf(dir, sizeof(dir), "%s/blobs", path) >= sizeof(dir)) {
        return bundle_writer_fail(w, BERTH_EINVAL, "%s: path too long", path);
    }
    DIR *algs = opendir(dir);
    if (algs == NULL) {
        return BERTH_OK;
    }
    enum berth_err rc = BERTH_OK;
    struct dirent *ae;
    while (rc == BERTH_OK && (ae = readdir(algs)) != NULL) {
        char sub[4096];
        if (ae->d_name[0] == '.' ||
            (size_t)snprintf(sub, sizeof(sub), "%s/%s", dir, ae->d_name) >= sizeof(sub)) {
            continue;
        }
        DIR *blobs = opendir(sub);
        struct dirent *be;
        while (rc == BERTH_OK && blobs != NULL && (be = readdir(blobs)) != NULL) {
            char rel[1024];
            if (be->d_name[0] != '.' && (size_t)snprintf(rel, sizeof(rel), "blobs/%s/%s",
                                                         ae->d_name, be->d_name) < sizeof(rel)) {
                rc = since_name(w, rel);
            }
        }
        if (blobs != NULL) {
            closedir(blobs);
        }
    }
    closedir(algs);
    return rc;
}

static enum berth_err since_archive(struct bundle_writer *w, const char *path, bool *layout)
{
    struct archive *a = archive_read_new();
    if (a == NULL) {
        return BERTH_ENOMEM;
    }
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_zstd(a);
    archive_read_support_format_tar(a);
    enum berth_err rc = BERTH_OK;
    if (archive_read_open_filename(a, path, 128 * 1024) != ARCHIVE_OK) {
        rc = bundle_writer_fail(w, BERTH_EINVAL, "--since %s: %s", path, archive_error_string(a));
    }
    while (rc == BERTH_OK) {
        struct archive_entry *e;
        int ar = archive_read_next_header(a, &e);
        if (ar == ARCHIVE_EOF) {
            break;
        }
        if (ar != ARCHIVE_OK && ar != ARCHIVE_WARN) {
            rc = bundle_writer_fail(w, BERTH_EINVAL,
                                    "--since %s: %s (a truncated or corrupt bundle)", path,
                                    archive_error_string(a));
            break;
        }
        const char *name = archive_entry_pathname(e);
        if (name != NULL && archive_entry_filetype(e) == AE_IFREG) {
            if (strcmp(name, "index.json") == 0 || strcmp(name, "./index.json") == 0) {
                *layout = true;
            }
            rc = since_name(w, name);
        }
    }
    archive_read_free(a);
    return rc;
}

static enum berth_err read_since(struct bundle_writer *w, const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        return bundle_writer_fail(w, BERTH_ENOTFOUND, "--since %s: %s", path, strerror(errno));
    }
    bool layout = false;
    enum berth_err rc =
        S_ISDIR(sb.st_mode) ? since_directory(w, path, &layout) : since_archive(w, path, &layout);
    if (rc == BERTH_OK && !layout) {
        rc = bundle_writer_fail(w, BERTH_EINVAL,
                                "--since %s: not a bundle (an OCI image layout with index.json)",
                                path);
    }
    return rc;
}

/* ---- writing ---- */

enum berth_err bundle_writer_fail(struct bundle_writer *w, enum berth_err rc, const char *fmt, ...)
{
    if (w->why[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->why, w->why_cap, fmt, ap);
        va_end(ap);
    }
    return rc;
}

void bundle_writer_report(struct bundle_writer *w, bool done)
{
    if (w->progress == NULL) {
        return;
    }
    int64_t now = time_mono_ns();
    if (!done && now - w->last_progress_ns < PROGRESS_NS) {
        return;
    }
    w->last_progress_ns = now;
    struct bundle_progress p = {.blobs = w->stats.blobs,
                                .bytes = w->stats.bytes,
                                .total = w->blobs_total,
                                .bytes_total = w->bytes_total,
                                .done = done,
                                .item = w->item,
                                .items_done = w->items_done,
                                .items_total = w->items_total};
    w->progress(w->progress_arg, &p);
}

static enum berth_err entry_header(struct bundle_writer *w, const char *name, int64_t size,
                                   bool is_dir)
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
    int ar = archive_write_header(w->a, e);
    archive_entry_free(e);
    if (ar != ARCHIVE_OK) {
        return bundle_writer_fail(w, BERTH_EIO, "%s: %s", name, archive_error_string(w->a));
    }
    return BERTH_OK;
}

static enum berth_err entry_data(struct bundle_writer *w, const char *name, const void *p, size_t n)
{
    if (n > 0 && archive_write_data(w->a, p, n) != (la_ssize_t)n) {
        return bundle_writer_fail(w, BERTH_EIO, "%s: %s", name, archive_error_string(w->a));
    }
    return BERTH_OK;
}

static enum berth_err put_small(struct bundle_writer *w, const char *name, const void *p, size_t n)
{
    enum berth_err rc = entry_header(w, name, (int64_t)n, false);
    if (rc == BERTH_OK) {
        rc = entry_data(w, name, p, n);
    }
    return rc;
}

static void free_all(struct bundle_writer *w)
{
    if (w->a != NULL) {
        archive_write_free(w->a);
        w->a = NULL;
    }
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
    }
    json_decref(w->index);
    w->index = NULL;
    digest_set_fini(&w->done);
    digest_set_fini(&w->since);
}

/* Where the bundle goes. A regular file (or none yet) is replaced whole: the
 * bundle is written to a temporary file beside it, made with O_EXCL under a
 * name with a random part (a name known in advance could be a planted
 * symbolic link), and renamed over it when complete. Through a symbolic
 * link, the file it names is replaced and the link kept. A FIFO, a pipe
 * (/dev/stdout) or a device is written as it is: renaming over one would
 * remove it. */
static enum berth_err choose_target(struct bundle_writer *w)
{
    struct stat st, lst;
    bool exists = stat(w->path, &st) == 0;
    if (exists && S_ISDIR(st.st_mode)) {
        return bundle_writer_fail(w, BERTH_EINVAL, "%s: is a directory", w->path);
    }
    if (exists && !S_ISREG(st.st_mode)) {
        w->stream = true;
        return str_copy(w->target, sizeof(w->target), w->path) == BERTH_OK
                   ? BERTH_OK
                   : bundle_writer_fail(w, BERTH_EINVAL, "%s: path too long", w->path);
    }
    if (lstat(w->path, &lst) == 0 && S_ISLNK(lst.st_mode)) {
        char *real = exists ? realpath(w->path, NULL) : NULL;
        if (real == NULL) {
            return bundle_writer_fail(w, BERTH_EINVAL, "%s: a symbolic link to no file", w->path);
        }
        enum berth_err rc = str_copy(w->target, sizeof(w->target), real);
        free(real);
        if (rc != BERTH_OK) {
            return bundle_writer_fail(w, BERTH_EINVAL, "%s: path too long", w->path);
        }
    } else if (str_copy(w->target, sizeof(w->target), w->path) != BERTH_OK) {
        return bundle_writer_fail(w, BERTH_EINVAL, "%s: path too long", w->path);
    }
    /* <target>.tmp-<pid>-<random>: the pid lets a later run (berth mirror's
     * resume) tell a dead run's file from a live one's */
    if ((size_t)snprintf(w->tmp, sizeof(w->tmp), "%s.tmp-%ld-XXXXXX", w->target, (long)getpid()) >=
        sizeof(w->tmp)) {
        return bundle_writer_fail(w, BERTH_EINVAL, "%s: path too long", w->path);
    }
    return BERTH_OK;
}

/* The process's umask, read without changing it (umask(2) sets it, and
 * other threads create files meanwhile); 022 when it cannot be read. */
static mode_t current_umask(void)
{
    mode_t mask = 022;
    FILE *f = fopen("/proc/self/status", "re");
    char line[128];
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "Umask:", 6) == 0) {
            mask = (mode_t)strtoul(line + 6, NULL, 8) & 0777;
            break;
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return mask;
}

/* The temporary files of runs killed while writing w's target
 * (<target>.tmp-<pid>-<random>, or <target>.tmp-<pid> from an earlier
 * berth) removed: a file whose process is gone is nobody's. A live run's
 * file (another export to the same path) is left alone. */
static void remove_stale_tmp(const struct bundle_writer *w)
{
    const char *target = w->target;
    char dir[sizeof(w->target)];
    str_copy(dir, sizeof(dir), target);
    char *slash = strrchr(dir, '/');
    const char *base = target;
    if (slash == NULL) {
        str_copy(dir, sizeof(dir), ".");
    } else {
        base = target + (slash - dir) + 1;
        slash[slash == dir ? 1 : 0] = '\0';
    }
    char prefix[1024];
    if ((size_t)snprintf(prefix, sizeof(prefix), "%s.tmp-", base) >= sizeof(prefix)) {
        return;
    }
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (!str_has_prefix(e->d_name, prefix)) {
            continue;
        }
        const char *digits = e->d_name + strlen(prefix);
        char *end = NULL;
        long pid = strtol(digits, &end, 10);
        bool suffix_ok = *end == '\0' || (*end == '-' && strlen(end + 1) == 6);
        if (end == digits || !suffix_ok || pid <= 0 || pid == (long)getpid()) {
            continue;
        }
        bool gone = kill((pid_t)pid, 0) != 0 && errno == ESRCH;
        char path[sizeof(dir) + 256];
        if (!gone ||
            (size_t)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= sizeof(path)) {
            continue;
        }
        if (unlink(path) == 0) {
            log_info("event=bundle_stale_removed path=%s", path);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
}

/* Open the temporary file (or the stream) the archive is written to. */
static enum berth_err open_output(struct bundle_writer *w)
{
    if (w->stream) {
        w->fd = open(w->target, O_WRONLY | O_CLOEXEC);
        return w->fd >= 0 ? BERTH_OK
                          : bundle_writer_fail(w, BERTH_EIO, "%s: %s", w->path, strerror(errno));
    }
    remove_stale_tmp(w);
    w->fd = mkostemp(w->tmp, O_CLOEXEC);
    if (w->fd < 0) {
        return bundle_writer_fail(w, BERTH_EIO, "%s: %s", w->tmp, strerror(errno));
    }
    w->tmp_made = true;
    /* as open(2) with 0644 would have made it; mkostemp makes 0600 */
    if (fchmod(w->fd, 0644 & ~current_umask()) != 0) {
        return bundle_writer_fail(w, BERTH_EIO, "%s: %s", w->tmp, strerror(errno));
    }
    return BERTH_OK;
}

enum berth_err bundle_writer_prepare(struct bundle_writer *w, const char *path, const char *since,
                                     bundle_progress_fn progress, void *progress_arg, char *why,
                                     size_t why_cap)
{
    memset(w, 0, sizeof(*w));
    w->fd = -1;
    w->path = path;
    w->progress = progress;
    w->progress_arg = progress_arg;
    w->why = why;
    w->why_cap = why_cap;
    why[0] = '\0';
    enum berth_err rc = choose_target(w);
    if (rc != BERTH_OK) {
        return rc;
    }
    rc = since != NULL ? read_since(w, since) : BERTH_OK;
    if (rc != BERTH_OK) {
        free_all(w);
        return rc;
    }
    w->index = json_array();
    if (w->index == NULL) {
        free_all(w);
        return BERTH_ENOMEM;
    }
    return BERTH_OK;
}

enum berth_err bundle_writer_start(struct bundle_writer *w, bool zstd)
{
    enum berth_err rc = BERTH_OK;
    w->a = archive_write_new();
    if (w->a == NULL) {
        rc = BERTH_ENOMEM;
    } else if (archive_write_set_format_pax_restricted(w->a) != ARCHIVE_OK ||
               (zstd && archive_write_add_filter_zstd(w->a) != ARCHIVE_OK)) {
        rc =
            bundle_writer_fail(w, BERTH_EUNSUPPORTED, "libarchive: %s", archive_error_string(w->a));
    } else if ((rc = open_output(w)) != BERTH_OK) {
        /* (named by open_output) */
    } else if (archive_write_open_fd(w->a, w->fd) != ARCHIVE_OK) {
        rc = bundle_writer_fail(w, BERTH_EIO, "%s: %s", w->tmp, archive_error_string(w->a));
    }
    static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
    if (rc == BERTH_OK) {
        rc = entry_header(w, "blobs/", 0, true);
    }
    if (rc == BERTH_OK) {
        rc = entry_header(w, "blobs/sha256/", 0, true);
    }
    if (rc == BERTH_OK) {
        rc = put_small(w, "oci-layout", layout, sizeof(layout) - 1);
    }
    return rc;
}

enum berth_err bundle_writer_open(struct bundle_writer *w, const char *path, bool zstd,
                                  const char *since, bundle_progress_fn progress,
                                  void *progress_arg, char *why, size_t why_cap)
{
    enum berth_err rc = bundle_writer_prepare(w, path, since, progress, progress_arg, why, why_cap);
    if (rc != BERTH_OK) {
        return rc;
    }
    rc = bundle_writer_start(w, zstd);
    if (rc != BERTH_OK) {
        bundle_writer_abort(w);
    }
    return rc;
}

bool bundle_writer_done(const struct bundle_writer *w, const char *digest)
{
    return digest_set_has(&w->done, digest);
}

bool bundle_writer_wants(struct bundle_writer *w, const struct digest *d, int64_t size)
{
    if (digest_set_has(&w->done, d->str)) {
        return false;
    }
    if (digest_set_has(&w->since, d->str)) {
        if (digest_set_add(&w->done, d->str) == BERTH_OK) {
            w->stats.blobs_skipped++;
            w->stats.bytes_skipped += size;
        }
        return false;
    }
    return true;
}

static void blob_name(const struct digest *d, char *out, size_t cap)
{
    snprintf(out, cap, "blobs/%s/%s", digest_alg_name(d->alg), digest_hex(d));
}

enum berth_err bundle_writer_put(struct bundle_writer *w, const struct digest *d, const void *p,
                                 size_t n)
{
    if (!bundle_writer_wants(w, d, (int64_t)n)) {
        return BERTH_OK;
    }
    return bundle_writer_put_entry(w, d, p, n);
}

enum berth_err bundle_writer_put_entry(struct bundle_writer *w, const struct digest *d,
                                       const void *p, size_t n)
{
    char name[DIGEST_STR_MAX + 16];
    blob_name(d, name, sizeof(name));
    enum berth_err rc = put_small(w, name, p, n);
    if (rc == BERTH_OK) {
        rc = digest_set_add(&w->done, d->str);
    }
    if (rc == BERTH_OK) {
        w->stats.blobs++;
        w->stats.bytes += (int64_t)n;
        bundle_writer_report(w, false);
    }
    return rc;
}

enum berth_err bundle_writer_begin(struct bundle_writer *w, const struct digest *d, int64_t size)
{
    blob_name(d, w->entry, sizeof(w->entry));
    w->entry_size = size;
    w->entry_written = 0;
    return entry_header(w, w->entry, size, false);
}

enum berth_err bundle_writer_data(struct bundle_writer *w, const void *p, size_t n)
{
    if (w->entry_written + (int64_t)n > w->entry_size) {
        return bundle_writer_fail(w, BERTH_EDIGEST, "%s: more bytes than its size %lld", w->entry,
                                  (long long)w->entry_size);
    }
    enum berth_err rc = entry_data(w, w->entry, p, n);
    if (rc == BERTH_OK) {
        w->entry_written += (int64_t)n;
        w->stats.bytes += (int64_t)n;
        bundle_writer_report(w, false);
    }
    return rc;
}

enum berth_err bundle_writer_end(struct bundle_writer *w, const struct digest *d)
{
    if (w->entry_written != w->entry_size) {
        return bundle_writer_fail(w, BERTH_EDIGEST, "%s: %lld bytes where its size is %lld",
                                  w->entry, (long long)w->entry_written, (long long)w->entry_size);
    }
    enum berth_err rc = digest_set_add(&w->done, d->str);
    if (rc == BERTH_OK) {
        w->stats.blobs++;
    }
    return rc;
}

enum berth_err bundle_writer_entry(struct bundle_writer *w, json_t *desc)
{
    if (desc == NULL || json_array_append_new(w->index, desc) != 0) {
        return BERTH_ENOMEM;
    }
    w->stats.images++;
    return BERTH_OK;
}

/* fsync the directory holding w->target, so that the rename is durable; on
 * failure the bundle is removed again (it was reported as not written). */
static enum berth_err sync_parent(struct bundle_writer *w)
{
    char dir[sizeof(w->tmp)];
    str_copy(dir, sizeof(dir), w->target);
    char *slash = strrchr(dir, '/');
    if (slash == NULL) {
        str_copy(dir, sizeof(dir), ".");
    } else {
        slash[slash == dir ? 1 : 0] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bool ok = fd >= 0 && bundle_writer_fsync(fd) == 0;
    int saved = errno;
    if (fd >= 0) {
        close(fd);
    }
    if (!ok) {
        unlink(w->target);
        return bundle_writer_fail(w, BERTH_EIO, "%s: fsync: %s", dir, strerror(saved));
    }
    return BERTH_OK;
}

enum berth_err bundle_writer_finish(struct bundle_writer *w)
{
    json_t *doc = json_pack("{s:i, s:s, s:O}", "schemaVersion", 2, "mediaType", MANIFEST_OCI_INDEX,
                            "manifests", w->index);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    enum berth_err rc =
        text != NULL ? put_small(w, "index.json", text, strlen(text)) : BERTH_ENOMEM;
    free(text);
    if (archive_write_close(w->a) != ARCHIVE_OK && rc == BERTH_OK) {
        rc = bundle_writer_fail(w, BERTH_EIO, "%s: %s", w->tmp, archive_error_string(w->a));
    }
    /* durable before it is reported: the file's bytes, then its name (a
     * stream has neither to make durable) */
    if (rc == BERTH_OK && !w->stream && bundle_writer_fsync(w->fd) != 0) {
        rc = bundle_writer_fail(w, BERTH_EIO, "%s: fsync: %s", w->tmp, strerror(errno));
    }
    if (rc == BERTH_OK) {
        int fd = w->fd;
        w->fd = -1;
        if (file_close(fd) != BERTH_OK) {
            rc = bundle_writer_fail(w, BERTH_EIO, "%s: %s", w->tmp, strerror(errno));
        }
    }
    if (rc == BERTH_OK && !w->stream) {
        if (rename(w->tmp, w->target) != 0) {
            rc = bundle_writer_fail(w, BERTH_EIO, "%s: %s", w->path, strerror(errno));
        } else {
            w->tmp_made = false;
            rc = sync_parent(w);
        }
    }
    if (rc != BERTH_OK) {
        bundle_writer_abort(w);
        return rc;
    }
    bundle_writer_report(w, true);
    free_all(w);
    return BERTH_OK;
}

void bundle_writer_abort(struct bundle_writer *w)
{
    free_all(w);
    if (w->tmp_made) {
        unlink(w->tmp);
        w->tmp_made = false;
    }
    if (w->why[0] == '\0') {
        snprintf(w->why, w->why_cap, "the bundle could not be written");
    }
}
