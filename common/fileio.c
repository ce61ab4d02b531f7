/* Robust file I/O helpers; see fileio.h. */
#include "common/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/str.h"

enum berth_err file_write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return BERTH_EIO;
        }
        c += w;
        n -= (size_t)w;
    }
    return BERTH_OK;
}

enum berth_err file_pwrite_all(int fd, const void *p, size_t n, off_t offset)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = pwrite(fd, c, n, offset);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return BERTH_EIO;
        }
        c += w;
        n -= (size_t)w;
        offset += w;
    }
    return BERTH_OK;
}

enum berth_err file_read_full(int fd, void *p, size_t n, size_t *got)
{
    char *c = p;
    size_t total = 0;
    while (total < n) {
        ssize_t r = read(fd, c + total, n - total);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return BERTH_EIO;
        }
        if (r == 0) {
            break;
        }
        total += (size_t)r;
    }
    *got = total;
    return BERTH_OK;
}

enum berth_err file_close(int fd)
{
    if (fd < 0) {
        return BERTH_OK;
    }
    /* On Linux the descriptor is released even when close fails with
     * EINTR, so never retry; report the failure. */
    return close(fd) == 0 ? BERTH_OK : BERTH_EIO;
}

enum berth_err file_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return berth_err_from_errno(errno);
    }
    enum berth_err rc = BERTH_OK;
    if (fsync(fd) != 0) {
        rc = BERTH_EIO;
    }
    if (file_close(fd) != BERTH_OK && rc == BERTH_OK) {
        rc = BERTH_EIO;
    }
    return rc;
}

enum berth_err file_fsync_parent(const char *path)
{
    char dir[4096];
    if (str_copy(dir, sizeof(dir), path) != BERTH_OK) {
        return BERTH_ETOOBIG;
    }
    char *slash = strrchr(dir, '/');
    if (slash == NULL) {
        return file_fsync_dir(".");
    }
    if (slash == dir) {
        slash[1] = '\0';
    } else {
        *slash = '\0';
    }
    return file_fsync_dir(dir);
}

enum berth_err file_mkdir_p(const char *path, mode_t mode)
{
    char tmp[4096];
    if (str_copy(tmp, sizeof(tmp), path) != BERTH_OK) {
        return BERTH_ETOOBIG;
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, mode) != 0 && errno != EEXIST) {
                return BERTH_EIO;
            }
            *p = '/';
        }
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST) {
        return BERTH_EIO;
    }
    return BERTH_OK;
}

enum berth_err file_read_bounded(const char *path, size_t max, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return berth_err_from_errno(errno);
    }
    enum berth_err rc = BERTH_OK;
    char *data = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = BERTH_EIO;
        goto out;
    }
    if ((uint64_t)st.st_size > max) {
        rc = BERTH_ETOOBIG;
        goto out;
    }
    data = malloc((size_t)st.st_size + 1);
    if (data == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    size_t got = 0;
    rc = file_read_full(fd, data, (size_t)st.st_size, &got);
    if (rc != BERTH_OK) {
        goto out;
    }
    data[got] = '\0';
    *out = data;
    *len = got;
    data = NULL;
out:
    free(data);
    file_close(fd);
    return rc;
}

enum berth_err file_write_atomic(const char *path, const void *p, size_t n, mode_t mode, bool sync)
{
    char tmp[4096];
    int len = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    if (len < 0 || (size_t)len >= sizeof(tmp)) {
        return BERTH_ETOOBIG;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        return BERTH_EIO;
    }
    enum berth_err rc = file_write_all(fd, p, n);
    if (rc == BERTH_OK && sync && fsync(fd) != 0) {
        rc = BERTH_EIO;
    }
    if (file_close(fd) != BERTH_OK && rc == BERTH_OK) {
        rc = BERTH_EIO;
    }
    if (rc == BERTH_OK && rename(tmp, path) != 0) {
        rc = BERTH_EIO;
    }
    if (rc != BERTH_OK) {
        unlink(tmp);
        return rc;
    }
    return sync ? file_fsync_parent(path) : BERTH_OK;
}

/* Remove everything inside the directory open at dirfd, then close it. */
static enum berth_err remove_contents(int dirfd)
{
    DIR *d = fdopendir(dirfd);
    if (d == NULL) {
        file_close(dirfd);
        return BERTH_EIO;
    }
    enum berth_err rc = BERTH_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        if (unlinkat(dirfd, e->d_name, 0) == 0 || errno == ENOENT) {
            continue;
        }
        if (errno != EISDIR && errno != EPERM) {
            rc = BERTH_EIO;
            continue;
        }
        int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0 || remove_contents(sub) != BERTH_OK ||
            (unlinkat(dirfd, e->d_name, AT_REMOVEDIR) != 0 && errno != ENOENT)) {
            rc = BERTH_EIO;
        }
    }
    closedir(d);
    return rc;
}

enum berth_err file_remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        return errno == ENOENT ? BERTH_OK : BERTH_EIO;
    }
    if (!S_ISDIR(st.st_mode)) {
        return unlink(path) == 0 || errno == ENOENT ? BERTH_OK : BERTH_EIO;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return BERTH_EIO;
    }
    enum berth_err rc = remove_contents(fd);
    if (rmdir(path) != 0 && errno != ENOENT) {
        rc = BERTH_EIO;
    }
    return rc;
}
