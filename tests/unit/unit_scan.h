/*
 * Helpers shared by the scanner's unit tests: write layer blobs (tar,
 * tar+gzip, tar+zstd) with libarchive's writer, and small file helpers.
 * Header-only; include once per test binary after unit.h.
 */
#ifndef BERTH_TEST_SCAN_H
#define BERTH_TEST_SCAN_H

#include <fcntl.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

enum tl_kind { TL_FILE, TL_DIR, TL_SYMLINK, TL_HARDLINK, TL_BIG };
enum tl_comp { TL_NONE, TL_GZIP, TL_ZSTD };

/* One tar entry. For TL_FILE data is the contents (strlen(data) bytes, or
 * size bytes when size >= 0); for links the target; TL_BIG writes size
 * bytes of a repeating pattern without holding them. */
struct tl_entry {
    enum tl_kind kind;
    const char *name;
    const char *data;
    long long size;
};

#define TL_F(n, d)                                                                                 \
    {                                                                                              \
        TL_FILE, (n), (d), -1                                                                      \
    }
#define TL_FN(n, d, s)                                                                             \
    {                                                                                              \
        TL_FILE, (n), (d), (s)                                                                     \
    }
#define TL_D(n)                                                                                    \
    {                                                                                              \
        TL_DIR, (n), NULL, 0                                                                       \
    }
#define TL_L(n, t)                                                                                 \
    {                                                                                              \
        TL_SYMLINK, (n), (t), 0                                                                    \
    }
#define TL_H(n, t)                                                                                 \
    {                                                                                              \
        TL_HARDLINK, (n), (t), 0                                                                   \
    }
#define TL_BIGF(n, s)                                                                              \
    {                                                                                              \
        TL_BIG, (n), NULL, (s)                                                                     \
    }

static inline const char *tl_media_type(enum tl_comp c)
{
    return c == TL_GZIP   ? "application/vnd.oci.image.layer.v1.tar+gzip"
           : c == TL_ZSTD ? "application/vnd.oci.image.layer.v1.tar+zstd"
                          : "application/vnd.oci.image.layer.v1.tar";
}

/* Write a layer blob at path; aborts the test binary on writer errors,
 * which are bugs in the test itself. */
static inline void tl_write(const char *path, enum tl_comp comp, const struct tl_entry *entries,
                            size_t n)
{
    struct archive *a = archive_write_new();
    if (comp == TL_GZIP) {
        archive_write_add_filter_gzip(a);
    } else if (comp == TL_ZSTD) {
        archive_write_add_filter_zstd(a);
    } else {
        archive_write_add_filter_none(a);
    }
    archive_write_set_format_pax_restricted(a);
    if (archive_write_open_filename(a, path) != ARCHIVE_OK) {
        fprintf(stderr, "tl_write %s: %s\n", path, archive_error_string(a));
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        const struct tl_entry *t = &entries[i];
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, t->name);
        archive_entry_set_mtime(e, 1700000000, 0);
        if (t->kind == TL_DIR) {
            archive_entry_set_filetype(e, AE_IFDIR);
            archive_entry_set_perm(e, 0755);
        } else if (t->kind == TL_SYMLINK) {
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_perm(e, 0777);
            archive_entry_set_symlink(e, t->data);
        } else if (t->kind == TL_HARDLINK) {
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_perm(e, 0644);
            archive_entry_set_hardlink(e, t->data);
            archive_entry_set_size(e, 0);
        } else {
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_perm(e, 0644);
            archive_entry_set_size(e, t->size >= 0 ? t->size : (long long)strlen(t->data));
        }
        if (archive_write_header(a, e) != ARCHIVE_OK) {
            fprintf(stderr, "tl_write header %s: %s\n", t->name, archive_error_string(a));
            abort();
        }
        if (t->kind == TL_FILE) {
            archive_write_data(a, t->data, t->size >= 0 ? (size_t)t->size : strlen(t->data));
        } else if (t->kind == TL_BIG) {
            static char block[65536];
            for (size_t j = 0; j < sizeof(block); j++) {
                block[j] = (char)('a' + j % 26);
            }
            long long left = t->size;
            while (left > 0) {
                size_t chunk = left > (long long)sizeof(block) ? sizeof(block) : (size_t)left;
                archive_write_data(a, block, chunk);
                left -= (long long)chunk;
            }
        }
        archive_entry_free(e);
    }
    if (archive_write_close(a) != ARCHIVE_OK) {
        fprintf(stderr, "tl_write close %s: %s\n", path, archive_error_string(a));
        abort();
    }
    archive_write_free(a);
}

/* Write bytes to a file (aborts on failure). */
static inline void tl_write_bytes(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || (n > 0 && write(fd, p, n) != (ssize_t)n) || close(fd) != 0) {
        perror(path);
        abort();
    }
}

/* Size of a file, or -1. */
static inline long long tl_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

#endif
