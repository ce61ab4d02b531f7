/*
 * The part store of berth mirror: what a run fetched, kept by digest in
 * <out>.parts/ so that a later run (after a cut or an interrupted run) need
 * not fetch it again. A manifest is <alg>-<hex>.manifest (the media type
 * the registry served it as, a newline, then its bytes); a blob is
 * <alg>-<hex>.partial while it comes, synced and renamed <alg>-<hex> once
 * it matched its digest. What is read back is verified again: an entry
 * that does not match its digest is removed. <out>.parts/lock is held by
 * the one run writing <out>. Private to storage/bundle.
 *
 * Threading: after bundle_parts_open, the manifest and blob calls may run
 * in several threads at once, each blob part written by one of them.
 */
#ifndef BERTH_BUNDLE_PARTS_INT_H
#define BERTH_BUNDLE_PARTS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "storage/spec/digest.h"

#define BUNDLE_PARTS_PATH_MAX 4200

struct bundle_parts {
    char dir[4096];         /* <out>.parts */
    int lock_fd;            /* or -1 */
    bool is_locked;         /* this run holds <out>.parts/lock */
    size_t manifests_found; /* manifests an earlier run left */
};

/* Before open: nothing held (so that bundle_parts_close is safe). */
void bundle_parts_init(struct bundle_parts *p);

/* <out>.parts/ made (or found) and locked against another run writing
 * out; the temporary bundles (<out>.tmp-<pid>) of runs that died while
 * writing one removed (a run writes one only while holding this lock).
 * BERTH_EINVAL (path too long), BERTH_EIO, BERTH_EBUSY (another run holds
 * the lock), each with why. Blocks on the file system. */
enum berth_err bundle_parts_open(struct bundle_parts *p, const char *out, char *why,
                                 size_t why_cap);

/* Every file of <out>.parts/ and the directory removed (the bundle is
 * written: nothing in it is needed again). */
void bundle_parts_remove(struct bundle_parts *p);

/* After a failure: <out>.parts/ removed when it holds nothing for the
 * next run. Only when locked. */
void bundle_parts_remove_if_empty(struct bundle_parts *p);

/* The lock released. */
void bundle_parts_close(struct bundle_parts *p);

/* ---- manifests ---- */

/* The manifest d kept by an earlier run: its media type into type
 * (type_cap bytes), its bytes into *body (malloc'd; the caller frees) and
 * *len. BERTH_ENOTFOUND when there is none (or it is longer than max
 * bytes); BERTH_EDIGEST when it does not match d: then it is removed (and
 * logged), to be fetched again; BERTH_ENOMEM. */
enum berth_err bundle_parts_manifest_get(const struct bundle_parts *p, const struct digest *d,
                                         size_t max, char *type, size_t type_cap, char **body,
                                         size_t *len);

/* A manifest just fetched and verified (d is its digest), kept for a later
 * run: written whole under a temporary name, then renamed (a run reads it
 * only verified, so it is not synced). A failure is logged and costs only
 * a fetch again. */
void bundle_parts_manifest_put(const struct bundle_parts *p, const struct digest *d,
                               const char *type, const void *body, size_t len);

/* ---- blobs ---- */

/* <dir>/<alg>-<hex>[.partial] into out. */
void bundle_parts_blob_path(const struct bundle_parts *p, const struct digest *d, bool partial,
                            char *out, size_t cap);

/* Whether blob d is complete in the store with size bytes (it was hashed
 * when it was written). */
bool bundle_parts_blob_has(const struct bundle_parts *p, const struct digest *d, int64_t size);

/* A blob's part being written (one thread at a time). */
struct bundle_part {
    const struct bundle_parts *parts;
    struct digest d;
    int64_t size;
    int fd; /* the .partial file, or -1 */
    struct digest_ctx *ctx;
    int64_t have; /* bytes in the file, every one hashed */
};

/* Blob d's .partial opened to write it (size bytes in all): what an
 * earlier run left there kept and hashed again (have says how much), or
 * started empty when it is longer than size or cannot be read.
 * BERTH_EIO with why when the file cannot be opened; BERTH_EIO,
 * BERTH_ENOMEM without. Call bundle_part_close whatever it returns. */
enum berth_err bundle_part_open(const struct bundle_parts *p, const struct digest *d, int64_t size,
                                struct bundle_part *bp, char *why, size_t why_cap);

/* Back to nothing: the file emptied, the hash started again. */
enum berth_err bundle_part_restart(struct bundle_part *bp);

/* n more bytes written at have and hashed. BERTH_EIO, BERTH_ENOMEM. */
enum berth_err bundle_part_append(struct bundle_part *bp, const void *p, size_t n);

/* The part complete: verified against its digest, synced, renamed
 * <alg>-<hex>. BERTH_EDIGEST when it does not match (got says what it is;
 * the .partial is removed); BERTH_EIO with why (fsync or rename);
 * BERTH_ENOMEM. */
enum berth_err bundle_part_commit(struct bundle_part *bp, struct digest *got, char *why,
                                  size_t why_cap);

/* The file closed, the hash freed (the part stays for a later run). */
void bundle_part_close(struct bundle_part *bp);

/* Complete blob d read back: fn(arg, bytes, n) on its bytes in order,
 * hashed as they go. BERTH_EDIGEST when they do not match d (the part is
 * removed; got says what they are), BERTH_EIO with why, BERTH_ENOMEM, or
 * what fn returned. */
enum berth_err bundle_parts_blob_read(const struct bundle_parts *p, const struct digest *d,
                                      enum berth_err (*fn)(void *arg, const void *bytes, size_t n),
                                      void *arg, struct digest *got, char *why, size_t why_cap);

#endif
