/*
 * Reading an image's layers for the scanner: each layer blob (tar, tar+gzip
 * or tar+zstd) is streamed through libarchive in order, nothing is written
 * to disk, OCI whiteouts are applied, and only a handful of interesting
 * files are kept in memory (os-release, the dpkg, apk and rpm databases).
 * The result is the final image's view of those files. Every read is
 * bounded (decompressed bytes, entries, bytes kept), so a tar bomb, a
 * truncated or corrupt layer or a non-tar blob ends with an error and a
 * readable reason. Thread-safe: no shared state; blocks on file reads.
 */
#ifndef BERTH_SCAN_LAYERS_H
#define BERTH_SCAN_LAYERS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* One layer blob, as the image manifest lists it (lowest layer first). */
struct scan_layer {
    const char *path;       /* the blob file */
    const char *media_type; /* an OCI or Docker layer media type */
};

struct scan_limits {
    uint64_t max_image_bytes; /* decompressed tar bytes over all layers (scan.max_image_bytes) */
    uint64_t max_file_bytes;  /* largest interesting file (package database) kept */
    uint64_t max_entries;     /* tar entries over all layers */
    /* When non-NULL and set (by another thread), reading stops at the next
     * tar entry or data block with BERTH_EBUSY: a scan cancelled because
     * the server is stopping. Borrowed; NULL in the defaults. */
    const atomic_bool *cancel;
};

#define SCAN_DEFAULT_MAX_IMAGE_BYTES (16ULL << 30)
#define SCAN_DEFAULT_MAX_FILE_BYTES (64ULL << 20)
#define SCAN_DEFAULT_MAX_ENTRIES 4000000ULL
/* Longest entry name considered (longer names are skipped, never kept). */
#define SCAN_PATH_MAX 4096
/* At most this many interesting files are kept at once. */
#define SCAN_MAX_KEPT_FILES 8192

/* Fill lim with the defaults above. */
void scan_limits_default(struct scan_limits *lim);

/* A kept file of the final image. */
struct scan_file {
    const char *path; /* normalized: no leading '/', no "." or ".." parts */
    const char *data; /* contents, NUL-terminated after len bytes */
    size_t len;
    unsigned layer; /* index of the layer it came from */
};

/* The interesting files of the final image (opaque). */
struct scan_fs;

/*
 * Read the layers in order and return the final view of the interesting
 * files in *out (free with scan_fs_free). On failure *out is untouched and
 * reason (cap bytes) holds one line saying what went wrong and in which
 * layer. Returns BERTH_OK; BERTH_EINVAL for a layer that is not a tar
 * archive, is corrupt or truncated, or has an unsupported media type;
 * BERTH_ETOOBIG when a limit is exceeded (decompressed bytes, entries, a
 * package database over max_file_bytes that is still present in the final
 * image, too many kept files); BERTH_EIO when a blob cannot be opened (a
 * read error later is reported by libarchive, so as BERTH_EINVAL);
 * BERTH_EBUSY when lim->cancel was set; BERTH_ENOMEM. Blocks while
 * reading; memory stays within libarchive's buffers plus the kept files.
 */
enum berth_err scan_layers_read(const struct scan_layer *layers, size_t count,
                                const struct scan_limits *lim, struct scan_fs **out, char *reason,
                                size_t cap);

void scan_fs_free(struct scan_fs *fs);

/* The regular file at a normalized path, following symlinks between kept
 * files (at most 8 hops; targets resolve relative to the link's directory
 * and can never leave the root). NULL when absent. Borrowed from fs. */
const struct scan_file *scan_fs_get(const struct scan_fs *fs, const char *path);

/* Number of kept regular files, and the i-th in path order. Borrowed. */
size_t scan_fs_count(const struct scan_fs *fs);
const struct scan_file *scan_fs_at(const struct scan_fs *fs, size_t i);

/* Total decompressed tar bytes that were read. */
uint64_t scan_fs_bytes_read(const struct scan_fs *fs);

/*
 * Normalize a tar entry name into out (cap bytes): drop leading '/' and
 * "./", empty and "." components; ".." removes the previous component and
 * is ignored at the root, so no name can point outside the image. The root
 * itself is "". BERTH_ETOOBIG when the result does not fit.
 */
enum berth_err scan_path_normalize(const char *in, char *out, size_t cap);

/* Whether a normalized path names a file the scanner keeps. */
bool scan_path_is_interesting(const char *path);

#endif
