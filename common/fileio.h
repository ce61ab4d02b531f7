/*
 * Robust file I/O: loops over EINTR and short transfers, checked close,
 * durable publication (temp file, fsync, rename, fsync directory).
 * Thread-safe (no shared state); every call may block on the disk.
 */
#ifndef BERTH_FILEIO_H
#define BERTH_FILEIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"

/* Write all n bytes to fd. BERTH_EIO (errno kept) on failure. */
enum berth_err file_write_all(int fd, const void *p, size_t n);

/* Write all n bytes at offset. BERTH_EIO on failure. */
enum berth_err file_pwrite_all(int fd, const void *p, size_t n, off_t offset);

/* Read up to n bytes, stopping early only at end of file; *got is the
 * count read. BERTH_EIO on failure. */
enum berth_err file_read_full(int fd, void *p, size_t n, size_t *got);

/* close() that reports failure (BERTH_EIO); a negative fd is a no-op. */
enum berth_err file_close(int fd);

/* fsync the directory at path so a rename or unlink in it is durable. */
enum berth_err file_fsync_dir(const char *path);

/* fsync the directory that contains the file at path. */
enum berth_err file_fsync_parent(const char *path);

/* mkdir -p with the given mode; existing directories are fine. */
enum berth_err file_mkdir_p(const char *path, mode_t mode);

/* Read a whole regular file of at most max bytes into a new NUL-terminated
 * buffer (caller frees *out). BERTH_ENOTFOUND, BERTH_ETOOBIG, BERTH_EIO. */
enum berth_err file_read_bounded(const char *path, size_t max, char **out, size_t *len);

/* Replace the file at path with the given bytes durably: write a temp file
 * in the same directory, fsync it (when sync), rename over path, fsync the
 * directory (when sync). Readers see the old or the new file, never part. */
enum berth_err file_write_atomic(const char *path, const void *p, size_t n, mode_t mode, bool sync);

/* Remove path and everything under it; a missing path is fine. */
enum berth_err file_remove_tree(const char *path);

#endif
