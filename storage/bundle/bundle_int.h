/*
 * The bundle writer shared by export (images of the store) and mirror
 * (images of other registries): an OCI image layout packed as tar or
 * tar.zst under a temporary name, renamed into place when complete. With
 * a previous bundle given (--since), blobs and manifests that bundle holds
 * are left out while index.json still lists every image: a delta bundle.
 * Private to storage/bundle.
 */
#ifndef BERTH_BUNDLE_INT_H
#define BERTH_BUNDLE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "storage/bundle/bundle.h"
#include "storage/spec/digest.h"

struct archive;

/* A set of digests (open addressing on the hex's first bytes). */
struct digest_set {
    char (*slots)[DIGEST_STR_MAX];
    size_t cap; /* a power of two, or 0 */
    size_t count;
};

bool digest_set_has(const struct digest_set *s, const char *digest);
enum berth_err digest_set_add(struct digest_set *s, const char *digest);
void digest_set_fini(struct digest_set *s);

struct bundle_writer {
    struct archive *a;
    int fd;            /* the temporary file (or the stream), or -1 */
    char tmp[4096];    /* the temporary file's name, made unique when created */
    bool tmp_made;     /* it exists: removed unless renamed */
    char target[4096]; /* the file the bundle replaces: path, or a symbolic link's file */
    bool stream;       /* path is a FIFO, a pipe or a device: written as it is */
    const char *path;
    struct digest_set done;  /* blobs and manifests handled (written or left out) */
    struct digest_set since; /* what the previous bundle holds */
    json_t *index;           /* the manifests array of index.json */
    bundle_progress_fn progress;
    void *progress_arg;
    int64_t last_progress_ns;
    const char *item; /* the image being written, for progress */
    int64_t items_done;
    int64_t items_total;
    int64_t blobs_total; /* for progress: what is to come, 0 when not known */
    int64_t bytes_total;
    struct bundle_export_stats stats;
    /* the blob being streamed */
    char entry[DIGEST_STR_MAX + 16];
    int64_t entry_size;
    int64_t entry_written;
    char *why;
    size_t why_cap;
};

/* Start a bundle at path (zstd-compressed when zstd). since, when not
 * NULL, is a previous bundle (a file berth export or mirror wrote, or any
 * OCI layout tar or directory) whose blobs are left out. */
enum berth_err bundle_writer_open(struct bundle_writer *w, const char *path, bool zstd,
                                  const char *since, bundle_progress_fn progress,
                                  void *progress_arg, char *why, size_t why_cap);

/* Record a failure reason (the first one wins) and return rc. */
enum berth_err bundle_writer_fail(struct bundle_writer *w, enum berth_err rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* bundle_writer_open in two steps, for a caller that decides what goes
 * in before it writes any of it (mirror fetches the blobs first):
 * prepare (the sets, the previous bundle, index.json's list; no file yet)
 * and start (the temporary file and the layout's first entries). After a
 * failed start, bundle_writer_abort. */
enum berth_err bundle_writer_prepare(struct bundle_writer *w, const char *path, const char *since,
                                     bundle_progress_fn progress, void *progress_arg, char *why,
                                     size_t why_cap);
enum berth_err bundle_writer_start(struct bundle_writer *w, bool zstd);

/* Whether digest was handled already in this bundle. */
bool bundle_writer_done(const struct bundle_writer *w, const char *digest);

/* Whether blob d needs its bytes written: false when handled already or
 * held by the previous bundle (then it is marked handled and counted as
 * left out). */
bool bundle_writer_wants(struct bundle_writer *w, const struct digest *d, int64_t size);

/* A blob whose bytes are in memory (a manifest), unless not wanted. */
enum berth_err bundle_writer_put(struct bundle_writer *w, const struct digest *d, const void *p,
                                 size_t n);

/* The same whatever was decided before: the entry is written (a caller
 * that marked d handled itself). */
enum berth_err bundle_writer_put_entry(struct bundle_writer *w, const struct digest *d,
                                       const void *p, size_t n);

/* A blob streamed: begin with its size (the tar entry's), data until size
 * bytes came, end (which checks the count). Call only when wanted. */
enum berth_err bundle_writer_begin(struct bundle_writer *w, const struct digest *d, int64_t size);
enum berth_err bundle_writer_data(struct bundle_writer *w, const void *p, size_t n);
enum berth_err bundle_writer_end(struct bundle_writer *w, const struct digest *d);

/* An index.json entry (stolen). */
enum berth_err bundle_writer_entry(struct bundle_writer *w, json_t *desc);

/* Progress, at most a few times a second (always when done). */
void bundle_writer_report(struct bundle_writer *w, bool done);

/* fsync(2) as the writer calls it (a test replaces it to see the order of
 * what finish makes durable). */
extern int (*bundle_writer_fsync)(int fd);

/* index.json written, the archive closed, the file fsynced, renamed into
 * place and its directory fsynced, in that order, before it returns. Frees
 * everything; on failure nothing is left at path. */
enum berth_err bundle_writer_finish(struct bundle_writer *w);

/* Give up: the temporary file removed, everything freed. */
void bundle_writer_abort(struct bundle_writer *w);

#endif
