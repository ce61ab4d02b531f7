/* Unit tests for storage/blob/ through its public calls, on the filesystem
 * backend in a temporary directory: the contract every backend keeps
 * (stages, publication, reads, removal and recovery, walks).
 *
 * With BERTH_TEST_S3_ENDPOINT set (ctest label s3: the binary runs under
 * tests/integration/lib/swift_fixture.py, a real OpenStack Swift with
 * s3api), the same tests run on the S3 backend, each store under a key
 * prefix of its own in the fixture's bucket. */
#include "unit.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/rand.h"
#include "storage/blob/blob.h"
#include "storage/blob/blob_int.h"

static char root[512];

static char prefix[64];

/* The backend under test: the filesystem, or S3 when the fixture's
 * variables are set. */
static struct blob_store_options store_opts(bool fsync)
{
    struct blob_store_options opt = {.root = root, .fsync = fsync};
    const char *endpoint = getenv("BERTH_TEST_S3_ENDPOINT");
    if (endpoint != NULL && endpoint[0] != '\0') {
        char uuid[RAND_UUID_LEN + 1];
        CHECK_INT(rand_uuid(uuid), BERTH_OK);
        snprintf(prefix, sizeof(prefix), "t-%s/", uuid);
        opt.backend = "s3";
        opt.s3 = (struct blob_s3_options){
            .endpoint = endpoint,
            .region = getenv("BERTH_TEST_S3_REGION"),
            .bucket = getenv("BERTH_TEST_S3_BUCKET"),
            .prefix = prefix,
            .access_key_id = getenv("BERTH_TEST_S3_ACCESS_KEY"),
            .secret_access_key = getenv("BERTH_TEST_S3_SECRET_KEY"),
            .path_style = true,
        };
    }
    return opt;
}

static bool on_s3(void)
{
    const char *endpoint = getenv("BERTH_TEST_S3_ENDPOINT");
    return endpoint != NULL && endpoint[0] != '\0';
}

static struct blob_store *open_store(void)
{
    snprintf(root, sizeof(root), "%s", unit_tmpdir());
    struct blob_store_options opt = store_opts(true);
    struct blob_store *bs = NULL;
    CHECK_INT(blob_store_open(&opt, &bs), BERTH_OK);
    return bs;
}

static void close_store(struct blob_store *bs)
{
    blob_store_close(bs);
    CHECK_INT(file_remove_tree(root), BERTH_OK);
}

/* Stage bytes and publish them under their digest. */
static struct digest publish(struct blob_store *bs, const char *data)
{
    struct digest d;
    char name[BLOB_STAGE_NAME_MAX + 1];
    digest_buffer(DIGEST_SHA256, data, strlen(data), &d);
    CHECK_INT(blob_stage_put(bs, data, strlen(data), name), BERTH_OK);
    CHECK_INT(blob_stage_publish(bs, name, &d), BERTH_OK);
    return d;
}

static bool holds(struct blob_store *bs, const struct digest *d, const char *want)
{
    char *got = NULL;
    size_t len = 0;
    if (blob_read_all(bs, d, 1 << 20, &got, &len) != BERTH_OK) {
        return false;
    }
    bool same = len == strlen(want) && memcmp(got, want, len) == 0;
    free(got);
    return same;
}

static void test_stage_names(void)
{
    struct blob_store *bs = open_store();
    struct blob_stage *s = NULL;
    uint64_t size;
    int64_t mtime;
    const char *bad[] = {
        "",    "../x", "a/b",
        "a.b", "x y",  "0123456789012345678901234567890123456789012345678901234567890123456789"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_INT(blob_stage_create(bs, bad[i]), BERTH_EINVAL);
        CHECK_INT(blob_stage_open(bs, bad[i], &s, &size), BERTH_EINVAL);
        CHECK_INT(blob_stage_stat(bs, bad[i], &size, &mtime), BERTH_EINVAL);
        CHECK_INT(blob_stage_remove(bs, bad[i]), BERTH_EINVAL);
    }
    CHECK_INT(blob_stage_create(bs, "sess-1"), BERTH_OK);
    CHECK_INT(blob_stage_create(bs, "sess-1"), BERTH_EEXIST);
    CHECK_INT(blob_stage_open(bs, "nope", &s, &size), BERTH_ENOTFOUND);
    CHECK_INT(blob_stage_stat(bs, "nope", &size, &mtime), BERTH_ENOTFOUND);
    CHECK_INT(blob_stage_remove(bs, "nope"), BERTH_ENOTFOUND);
    close_store(bs);
}

static void test_stage_write_hash_truncate(void)
{
    struct blob_store *bs = open_store();
    CHECK_INT(blob_stage_create(bs, "s"), BERTH_OK);
    struct blob_stage *s = NULL;
    uint64_t size = 99;
    CHECK_INT(blob_stage_open(bs, "s", &s, &size), BERTH_OK);
    CHECK_INT(size, 0);
    CHECK_INT(blob_stage_write(s, 0, "hello ", 6), BERTH_OK);
    CHECK_INT(blob_stage_write(s, 6, "world", 5), BERTH_OK);
    CHECK_INT(blob_stage_sync(s), BERTH_OK);
    /* read back through a second handle, as the pull-through cache does while the
     * first still writes */
    struct blob_stage *r = NULL;
    CHECK_INT(blob_stage_open(bs, "s", &r, &size), BERTH_OK);
    char back[16] = "";
    size_t got_len = 0;
    CHECK_INT(blob_stage_read(r, 6, back, sizeof(back), &got_len), BERTH_OK);
    CHECK_INT(got_len, 5);
    CHECK(memcmp(back, "world", 5) == 0);
    CHECK_INT(blob_stage_write(s, 11, "!", 1), BERTH_OK);
    CHECK_INT(blob_stage_read(r, 11, back, sizeof(back), &got_len), BERTH_OK);
    CHECK_INT(got_len, 1);
    CHECK_INT(blob_stage_read(r, 12, back, sizeof(back), &got_len), BERTH_OK);
    CHECK_INT(got_len, 0);
    blob_stage_close(r);
    CHECK_INT(blob_stage_truncate(s, 11), BERTH_OK);

    struct digest want, got;
    digest_buffer(DIGEST_SHA256, "hello world", 11, &want);
    struct digest_ctx *ctx = digest_ctx_new(DIGEST_SHA256);
    CHECK_INT(blob_stage_hash(s, ctx, 11), BERTH_OK);
    CHECK_INT(digest_ctx_final(ctx, &got), BERTH_OK);
    digest_ctx_free(ctx);
    CHECK_STR(got.str, want.str);

    /* cut back and write again: the stage holds what was kept */
    CHECK_INT(blob_stage_truncate(s, 5), BERTH_OK);
    CHECK_INT(blob_stage_write(s, 5, "!", 1), BERTH_OK);
    blob_stage_close(s);
    int64_t mtime = 0;
    CHECK_INT(blob_stage_stat(bs, "s", &size, &mtime), BERTH_OK);
    CHECK_INT(size, 6);
    CHECK(mtime > 0);
    CHECK_INT(blob_stage_open(bs, "s", &s, &size), BERTH_OK);
    CHECK_INT(size, 6);
    digest_buffer(DIGEST_SHA256, "hello!", 6, &want);
    ctx = digest_ctx_new(DIGEST_SHA256);
    CHECK_INT(blob_stage_hash(s, ctx, 6), BERTH_OK);
    CHECK_INT(digest_ctx_final(ctx, &got), BERTH_OK);
    digest_ctx_free(ctx);
    CHECK_STR(got.str, want.str);
    blob_stage_close(s);

    CHECK_INT(blob_stage_publish(bs, "s", &want), BERTH_OK);
    CHECK(holds(bs, &want, "hello!"));
    CHECK_INT(blob_stage_stat(bs, "s", &size, &mtime), BERTH_ENOTFOUND);
    close_store(bs);
}

/* Write len bytes of a byte pattern into stage s from its offset at, in
 * pieces of piece bytes, hashing them into ctx. */
static void write_pattern(struct blob_stage *s, uint64_t at, size_t len, size_t piece,
                          struct digest_ctx *ctx)
{
    char *buf = malloc(piece);
    CHECK(buf != NULL);
    for (size_t done = 0; done < len;) {
        size_t n = len - done < piece ? len - done : piece;
        for (size_t i = 0; i < n; i++) {
            buf[i] = (char)((at + done + i) * 131 % 251);
        }
        CHECK_INT(blob_stage_write(s, at + done, buf, n), BERTH_OK);
        CHECK_INT(digest_ctx_update(ctx, buf, n), BERTH_OK);
        done += n;
    }
    free(buf);
}

/* How far a stage got behind the write offset: on the filesystem, the
 * writeback started; on S3, the bytes sent as multipart parts. */
static uint64_t behind(const struct blob_stage *s)
{
    return on_s3() ? (uint64_t)blob_s3_stage_parts_sent(s) * (8 << 20)
                   : blob_fs_stage_writeback_started(s);
}

/* With fsync on, a filesystem stage starts writeback of whole 8 MiB pieces
 * behind the write offset while writes go on; with fsync off it starts
 * none. An S3 stage sends every whole 8 MiB part as it arrives, gathering
 * writes of any size, whatever fsync says. The bytes and the final sync
 * are unchanged. */
static void test_stage_writeback(void)
{
    const uint64_t mib = 1 << 20;
    for (int fsync_on = 1; fsync_on >= 0; fsync_on--) {
        bool ahead = fsync_on || on_s3();
        snprintf(root, sizeof(root), "%s", unit_tmpdir());
        struct blob_store_options opt = store_opts(fsync_on != 0);
        struct blob_store *bs = NULL;
        CHECK_INT(blob_store_open(&opt, &bs), BERTH_OK);
        CHECK_INT(blob_stage_create(bs, "big"), BERTH_OK);
        struct blob_stage *s = NULL;
        uint64_t size = 0;
        CHECK_INT(blob_stage_open(bs, "big", &s, &size), BERTH_OK);
        struct digest_ctx *ctx = digest_ctx_new(DIGEST_SHA256);

        /* 7 MiB + 1: not a whole piece yet */
        write_pattern(s, 0, 7 * mib + 1, 100000, ctx);
        CHECK_INT(behind(s), 0);
        /* up to 20 MiB + 5 in odd pieces: two whole pieces started */
        write_pattern(s, 7 * mib + 1, 13 * mib + 4, 65537, ctx);
        CHECK_INT(behind(s), ahead ? 16 * mib : 0);
        CHECK_INT(blob_stage_sync(s), BERTH_OK);
        blob_stage_close(s);

        /* a reopened stage goes on from its size (S3: from the parts sent) */
        CHECK_INT(blob_stage_open(bs, "big", &s, &size), BERTH_OK);
        CHECK_INT(size, 20 * mib + 5);
        CHECK_INT(behind(s), on_s3() ? 16 * mib : 20 * mib + 5);
        write_pattern(s, size, 4 * mib, mib, ctx);
        CHECK_INT(behind(s), on_s3() ? 24 * mib : 20 * mib + 5);
        write_pattern(s, 24 * mib + 5, 4 * mib, mib, ctx);
        CHECK_INT(behind(s), on_s3() ? 24 * mib : fsync_on ? 28 * mib + 5 : 20 * mib + 5);
        CHECK_INT(blob_stage_sync(s), BERTH_OK);

        /* what was written is what the stage holds */
        struct digest want, got;
        CHECK_INT(digest_ctx_final(ctx, &want), BERTH_OK);
        digest_ctx_free(ctx);
        ctx = digest_ctx_new(DIGEST_SHA256);
        CHECK_INT(blob_stage_hash(s, ctx, 28 * mib + 5), BERTH_OK);
        CHECK_INT(digest_ctx_final(ctx, &got), BERTH_OK);
        digest_ctx_free(ctx);
        CHECK_STR(got.str, want.str);

        /* cutting back below the started range moves it back */
        CHECK_INT(blob_stage_truncate(s, 3 * mib), BERTH_OK);
        CHECK_INT(behind(s), on_s3() ? 0 : 3 * mib);
        blob_stage_close(s);
        if (on_s3() && fsync_on) {
            /* cut back, written again and published: the parts sent anew */
            CHECK_INT(blob_stage_open(bs, "big", &s, &size), BERTH_OK);
            ctx = digest_ctx_new(DIGEST_SHA256);
            char *head = malloc(3 * mib);
            CHECK(head != NULL);
            for (size_t i = 0; i < 3 * mib; i++) {
                head[i] = (char)(i * 131 % 251);
            }
            CHECK_INT(digest_ctx_update(ctx, head, 3 * mib), BERTH_OK);
            free(head);
            write_pattern(s, 3 * mib, 14 * mib, 3 * mib, ctx);
            CHECK_INT(behind(s), 16 * mib);
            blob_stage_close(s);
            CHECK_INT(digest_ctx_final(ctx, &want), BERTH_OK);
            digest_ctx_free(ctx);
            CHECK_INT(blob_stage_publish(bs, "big", &want), BERTH_OK);
            uint64_t bsize = 0;
            CHECK_INT(blob_stat(bs, &want, &bsize), BERTH_OK);
            CHECK_INT(bsize, 17 * mib);
            ctx = digest_ctx_new(DIGEST_SHA256);
            int fd = -1;
            CHECK_INT(blob_open(bs, &want, &fd, &bsize), BERTH_OK);
            CHECK_INT(digest_ctx_update_fd(ctx, fd, (off_t)bsize), BERTH_OK);
            close(fd);
            CHECK_INT(digest_ctx_final(ctx, &got), BERTH_OK);
            digest_ctx_free(ctx);
            CHECK_STR(got.str, want.str);
        } else {
            CHECK_INT(blob_stage_remove(bs, "big"), BERTH_OK);
        }
        close_store(bs);
    }
}

/* With fsync on, the first publication of sha256 in a process creates all
 * 256 prefix directories and fsyncs <alg>/ and blobs/ once; every later
 * publication fsyncs only its own prefix directory (its new name), also
 * at the first use of a prefix. */
static void test_prefix_dirs_synced_once(void)
{
    if (on_s3()) {
        return;
    }
    struct blob_store *bs = open_store();
    uint64_t before = blob_fs_dir_fsyncs(bs);
    publish(bs, "the first blob");
    CHECK_INT(blob_fs_dir_fsyncs(bs) - before, 3);
    char dir[700];
    snprintf(dir, sizeof(dir), "%s/blobs/sha256", root);
    int subdirs = 0;
    DIR *dh = opendir(dir);
    CHECK(dh != NULL);
    for (struct dirent *e; dh != NULL && (e = readdir(dh)) != NULL;) {
        subdirs += e->d_name[0] != '.';
    }
    if (dh != NULL) {
        closedir(dh);
    }
    CHECK_INT(subdirs, 256);
    /* 40 more blobs, most under prefixes not used before: one each */
    before = blob_fs_dir_fsyncs(bs);
    for (int i = 0; i < 40; i++) {
        char text[32];
        snprintf(text, sizeof(text), "blob number %d", i);
        publish(bs, text);
    }
    CHECK_INT(blob_fs_dir_fsyncs(bs) - before, 40);
    /* the link before the transaction syncs it; the publication inside
     * then finds its own file and syncs nothing */
    char name[BLOB_STAGE_NAME_MAX + 1];
    struct digest d;
    digest_buffer(DIGEST_SHA256, "prepublished", 12, &d);
    CHECK_INT(blob_stage_put(bs, "prepublished", 12, name), BERTH_OK);
    before = blob_fs_dir_fsyncs(bs);
    CHECK_INT(blob_stage_prepublish(bs, name, &d), BERTH_OK);
    CHECK_INT(blob_stage_publish(bs, name, &d), BERTH_OK);
    CHECK_INT(blob_fs_dir_fsyncs(bs) - before, 1);
    CHECK(holds(bs, &d, "prepublished"));
    /* another process (a store opened again) syncs the parents once more */
    blob_store_close(bs);
    struct blob_store_options opt = store_opts(true);
    bs = NULL;
    CHECK_INT(blob_store_open(&opt, &bs), BERTH_OK);
    before = blob_fs_dir_fsyncs(bs);
    publish(bs, "after a restart");
    publish(bs, "after a restart, again");
    CHECK_INT(blob_fs_dir_fsyncs(bs) - before, 4);
    close_store(bs);
}

static void test_publish_and_read(void)
{
    struct blob_store *bs = open_store();
    struct digest d = publish(bs, "layer bytes");
    int fd = -1;
    uint64_t size = 0;
    CHECK_INT(blob_open(bs, &d, &fd, &size), BERTH_OK);
    CHECK_INT(size, 11);
    close(fd);
    char *buf = NULL;
    size_t len = 0;
    CHECK_INT(blob_read_all(bs, &d, 10, &buf, &len), BERTH_ETOOBIG);
    CHECK(holds(bs, &d, "layer bytes"));

    /* publishing the same content again drops the stage and keeps the blob */
    char name[BLOB_STAGE_NAME_MAX + 1];
    CHECK_INT(blob_stage_put(bs, "layer bytes", 11, name), BERTH_OK);
    CHECK_INT(blob_stage_publish(bs, name, &d), BERTH_OK);
    uint64_t ssize;
    int64_t mtime;
    CHECK_INT(blob_stage_stat(bs, name, &ssize, &mtime), BERTH_ENOTFOUND);
    CHECK(holds(bs, &d, "layer bytes"));

    struct digest missing;
    digest_buffer(DIGEST_SHA256, "never stored", 12, &missing);
    CHECK_INT(blob_open(bs, &missing, &fd, &size), BERTH_ENOTFOUND);
    CHECK_INT(blob_read_all(bs, &missing, 100, &buf, &len), BERTH_ENOTFOUND);

    /* the local path names the bytes, for programs that need a file */
    char path[4096];
    CHECK_INT(blob_local_path(bs, &d, path, sizeof(path)), BERTH_OK);
    CHECK_INT(file_read_bounded(path, 100, &buf, &len), BERTH_OK);
    CHECK_STR(buf, "layer bytes");
    free(buf);
    CHECK_INT(blob_local_path(bs, &d, path, 10), BERTH_ETOOBIG);
    close_store(bs);
}

/* A wake for blob_reader_read: a flag and a condition variable. */
struct waker {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool woken;
    int waits;
};

static void wake_up(void *arg)
{
    struct waker *w = arg;
    pthread_mutex_lock(&w->mu);
    w->woken = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Read bytes [off, off + len) of the blob (size bytes) through
 * blob_read_range into out, piece bytes a call; with a wake function when
 * wake is set. False when a call failed or the bytes ran short. */
static bool read_range(struct blob_store *bs, const struct digest *d, uint64_t size, uint64_t off,
                       uint64_t len, char *out, size_t piece, bool wake)
{
    struct blob_read br;
    if (blob_read_range(bs, d, size, off, len, &br) != BERTH_OK) {
        return false;
    }
    if (br.fd >= 0) {
        CHECK(!on_s3()); /* S3 streams: no local copy */
        ssize_t n = pread(br.fd, out, len, (off_t)off);
        close(br.fd);
        return n == (ssize_t)len;
    }
    CHECK(br.reader != NULL);
    struct waker w = {.woken = false};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    uint64_t got = 0;
    bool ok = true;
    for (;;) {
        size_t max = piece < len - got ? piece : (size_t)(len - got);
        if (max == 0) {
            max = 1; /* ask past the end: 0 */
        }
        char *to = got < len ? out + got : (char[1]){0};
        long long n = blob_reader_read(br.reader, to, max, wake ? wake_up : NULL, &w);
        if (n == BLOB_READ_WAIT) {
            CHECK(wake);
            pthread_mutex_lock(&w.mu);
            while (!w.woken) {
                pthread_cond_wait(&w.cv, &w.mu);
            }
            w.woken = false;
            w.waits++;
            pthread_mutex_unlock(&w.mu);
            continue;
        }
        if (n <= 0) {
            ok = n == 0 && got == len;
            break;
        }
        if (got + (uint64_t)n > len) {
            ok = false;
            break;
        }
        got += (uint64_t)n;
    }
    blob_reader_close(br.reader);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return ok;
}

/* Ranges of a blob through blob_read_range (S3: a ranged GET each,
 * streamed), whole and in parts, fast and in small pieces (the S3 reader
 * pauses its transfer while its buffer is full), with and without a wake
 * function; a wrong size or a missing blob is ENOTFOUND, a range past the
 * end EINVAL. */
static void check_ranges(struct blob_store *bs, const struct digest *d, const char *data,
                         uint64_t len)
{
    char *got = malloc(len + 1);
    CHECK(got != NULL);
    const uint64_t part = (uint64_t)8 << 20;
    struct {
        uint64_t off, n;
        size_t piece;
        bool wake;
    } cases[] = {
        {0, len, 1 << 20, true},    {0, len, 1 << 20, false}, {len - 16, 16, 64, true},
        {part - 100, 200, 7, true}, {0, 1, 1, true},          {1, len - 1, 1000, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (cases[i].off + cases[i].n > len) {
            continue;
        }
        memset(got, 0, len);
        CHECK(read_range(bs, d, len, cases[i].off, cases[i].n, got, cases[i].piece, cases[i].wake));
        CHECK(memcmp(got, data + cases[i].off, cases[i].n) == 0);
    }
    /* a reader closed halfway (a client that went away) */
    struct blob_read br;
    CHECK_INT(blob_read_range(bs, d, len, 0, len, &br), BERTH_OK);
    if (br.reader != NULL) {
        char one[100];
        CHECK_INT(blob_reader_read(br.reader, one, sizeof(one), NULL, NULL), 100);
        CHECK(memcmp(one, data, 100) == 0);
        blob_reader_close(br.reader);
    } else {
        close(br.fd);
    }
    CHECK_INT(blob_read_range(bs, d, len + 1, 0, len, &br), BERTH_ENOTFOUND);
    CHECK_INT(blob_read_range(bs, d, len, len, 1, &br), BERTH_EINVAL);
    CHECK_INT(blob_read_range(bs, d, len, 1, len, &br), BERTH_EINVAL);
    struct digest missing;
    digest_buffer(DIGEST_SHA256, "not here", 8, &missing);
    CHECK_INT(blob_read_range(bs, &missing, 10, 0, 10, &br), BERTH_ENOTFOUND);
    free(got);
}

/* A blob larger than one S3 part (8 MiB; published by a multipart
 * upload there) and one of exactly a part, read back whole, stat'ed, and
 * republished (dropped as the same bytes). */
static void test_publish_large(void)
{
    struct blob_store *bs = open_store();
    const size_t sizes[] = {(size_t)20 << 20 | 5, (size_t)8 << 20};
    for (size_t k = 0; k < 2; k++) {
        size_t len = sizes[k];
        char *data = malloc(len);
        CHECK(data != NULL);
        for (size_t i = 0; i < len; i++) {
            data[i] = (char)((i + k) * 131 % 251);
        }
        struct digest d;
        digest_buffer(DIGEST_SHA256, data, len, &d);
        char name[BLOB_STAGE_NAME_MAX + 1];
        CHECK_INT(blob_stage_put(bs, data, len, name), BERTH_OK);
        uint64_t size = 0;
        CHECK_INT(blob_stat(bs, &d, &size), BERTH_ENOTFOUND);
        CHECK_INT(blob_stage_publish(bs, name, &d), BERTH_OK);
        CHECK_INT(blob_stat(bs, &d, &size), BERTH_OK);
        CHECK_INT(size, len);
        char *got = NULL;
        size_t got_len = 0;
        CHECK_INT(blob_read_all(bs, &d, len, &got, &got_len), BERTH_OK);
        CHECK_INT(got_len, len);
        CHECK(memcmp(got, data, len) == 0);
        free(got);
        /* a range read through the descriptor */
        int fd = -1;
        CHECK_INT(blob_open(bs, &d, &fd, &size), BERTH_OK);
        char piece[16];
        CHECK_INT(pread(fd, piece, sizeof(piece), (off_t)len - 16), 16);
        CHECK(memcmp(piece, data + len - 16, 16) == 0);
        close(fd);
        check_ranges(bs, &d, data, len);
        CHECK_INT(blob_stage_put(bs, data, len, name), BERTH_OK);
        CHECK_INT(blob_stage_publish(bs, name, &d), BERTH_OK);
        free(data);
    }
    struct digest missing;
    digest_buffer(DIGEST_SHA256, "nothing", 7, &missing);
    uint64_t size;
    CHECK_INT(blob_stat(bs, &missing, &size), BERTH_ENOTFOUND);
    close_store(bs);
}

/* Bytes of regular files in dir. */
static uint64_t dir_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    uint64_t total = 0;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        struct stat sb;
        if (e->d_name[0] != '.' && fstatat(dirfd(d), e->d_name, &sb, 0) == 0 &&
            S_ISREG(sb.st_mode)) {
            total += (uint64_t)sb.st_size;
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    return total;
}

/* S3 only: small blobs are kept in <root>/s3cache (at publication, or at
 * their first read), and that directory stays within
 * storage.s3.cache_max_bytes (the least recently used go); an evicted blob
 * is fetched again when read. */
static void test_s3_cache_bound(void)
{
    if (!on_s3()) {
        return;
    }
    snprintf(root, sizeof(root), "%s", unit_tmpdir());
    struct blob_store_options opt = store_opts(false);
    opt.s3.cache_max_bytes = 1 << 20;
    struct blob_store *bs = NULL;
    CHECK_INT(blob_store_open(&opt, &bs), BERTH_OK);
    char cache[600];
    snprintf(cache, sizeof(cache), "%s/s3cache", root);
    enum { N = 8, SIZE = 300 * 1024 };
    static char data[N][SIZE];
    struct digest d[N];
    for (int i = 0; i < N; i++) {
        for (size_t k = 0; k < SIZE; k++) {
            data[i][k] = (char)((k * 7 + (size_t)i * 13) % 251);
        }
        digest_buffer(DIGEST_SHA256, data[i], SIZE, &d[i]);
        char name[BLOB_STAGE_NAME_MAX + 1];
        CHECK_INT(blob_stage_put(bs, data[i], SIZE, name), BERTH_OK);
        CHECK_INT(blob_stage_publish(bs, name, &d[i]), BERTH_OK);
        /* kept at publication, the directory within its bound */
        CHECK(dir_bytes(cache) <= (1 << 20));
        CHECK(dir_bytes(cache) >= SIZE);
    }
    /* every one reads back (from the cache, or fetched into it again) */
    for (int i = 0; i < N; i++) {
        struct blob_read br;
        CHECK_INT(blob_read_range(bs, &d[i], SIZE, 0, SIZE, &br), BERTH_OK);
        CHECK(br.fd >= 0);
        static char got[SIZE];
        CHECK_INT(pread(br.fd, got, SIZE, 0), SIZE);
        CHECK(memcmp(got, data[i], SIZE) == 0);
        close(br.fd);
        CHECK(dir_bytes(cache) <= (1 << 20));
    }
    blob_store_close(bs);
    CHECK_INT(file_remove_tree(root), BERTH_OK);
}

static void test_remove_finish_recover(void)
{
    struct blob_store *bs = open_store();
    struct digest a = publish(bs, "blob a");
    struct digest b = publish(bs, "blob b");
    struct digest c = publish(bs, "blob c");
    struct blob_removal ra, rb, rc, rnone;
    CHECK_INT(blob_remove(bs, &a, &ra), BERTH_OK);
    CHECK_INT(blob_remove(bs, &b, &rb), BERTH_OK);
    CHECK_INT(blob_remove(bs, &c, &rc), BERTH_OK);
    CHECK(!holds(bs, &a, "blob a") && !holds(bs, &b, "blob b"));
    /* nothing to move is no error, and nothing to finish */
    struct digest missing;
    digest_buffer(DIGEST_SHA256, "missing", 7, &missing);
    CHECK_INT(blob_remove(bs, &missing, &rnone), BERTH_OK);
    CHECK_INT(blob_removal_finish(bs, &rnone), BERTH_ENOTFOUND);

    /* a committed removal is finished once */
    CHECK_INT(blob_removal_finish(bs, &rc), BERTH_OK);
    CHECK_INT(blob_removal_finish(bs, &rc), BERTH_ENOTFOUND);

    /* b is pushed again and removed again: the aside copy is now the newer
     * one, which the first removal must not touch */
    struct digest b2 = publish(bs, "blob b");
    struct blob_removal rb2;
    CHECK_INT(blob_remove(bs, &b2, &rb2), BERTH_OK);
    CHECK_INT(blob_removal_finish(bs, &rb), BERTH_ENOTFOUND);

    close_store(bs);
}

static bool wanted_a(void *arg, const struct digest *d)
{
    return strcmp(((const struct digest *)arg)->str, d->str) == 0;
}

static void test_recover(void)
{
    struct blob_store *bs = open_store();
    struct digest a = publish(bs, "blob a");
    struct digest b = publish(bs, "blob b");
    struct digest c = publish(bs, "blob c");
    struct blob_removal r;
    CHECK_INT(blob_remove(bs, &a, &r), BERTH_OK);
    CHECK_INT(blob_remove(bs, &b, &r), BERTH_OK);
    CHECK_INT(blob_remove(bs, &c, &r), BERTH_OK);
    /* c was pushed anew after its removal committed: the live copy stays,
     * the aside one goes even if wanted */
    publish(bs, "blob c");
    int64_t restored = -1, deleted = -1;
    CHECK_INT(blob_recover(bs, wanted_a, &a, &restored, &deleted), BERTH_OK);
    CHECK_INT(restored, 1);
    CHECK_INT(deleted, 2);
    CHECK(holds(bs, &a, "blob a"));
    CHECK(!holds(bs, &b, "blob b"));
    CHECK(holds(bs, &c, "blob c"));
    /* nothing is left aside */
    CHECK_INT(blob_recover(bs, wanted_a, &a, &restored, &deleted), BERTH_OK);
    CHECK_INT(restored + deleted, 0);
    close_store(bs);
}

struct seen {
    int count;
    uint64_t bytes;
};

static enum berth_err count_blob(void *arg, const struct digest *d, uint64_t size, int64_t mtime)
{
    struct seen *s = arg;
    (void)d;
    CHECK(mtime > 0);
    s->count++;
    s->bytes += size;
    return BERTH_OK;
}

static enum berth_err count_stage(void *arg, const char *name, int64_t mtime)
{
    struct seen *s = arg;
    (void)name;
    CHECK(mtime > 0);
    s->count++;
    return BERTH_OK;
}

static enum berth_err stop_walk(void *arg, const struct digest *d, uint64_t size, int64_t mtime)
{
    (void)arg;
    (void)d;
    (void)size;
    (void)mtime;
    return BERTH_ECONFLICT;
}

static void test_walk_and_delete(void)
{
    struct blob_store *bs = open_store();
    struct digest a = publish(bs, "12345");
    publish(bs, "1234567");
    /* a file that is not a blob is never reported (the filesystem's) */
    if (!on_s3()) {
        char stray[1024];
        snprintf(stray, sizeof(stray), "%s/blobs/sha256/notadigest", root);
        CHECK_INT(file_write_atomic(stray, "x", 1, 0600, false), BERTH_OK);
    }
    struct seen s = {0};
    CHECK_INT(blob_walk(bs, count_blob, &s), BERTH_OK);
    CHECK_INT(s.count, 2);
    CHECK_INT(s.bytes, 12);
    CHECK_INT(blob_walk(bs, stop_walk, NULL), BERTH_ECONFLICT);

    CHECK_INT(blob_delete(bs, &a), BERTH_OK);
    CHECK_INT(blob_delete(bs, &a), BERTH_ENOTFOUND);
    s = (struct seen){0};
    CHECK_INT(blob_walk(bs, count_blob, &s), BERTH_OK);
    CHECK_INT(s.count, 1);

    CHECK_INT(blob_stage_create(bs, "one"), BERTH_OK);
    CHECK_INT(blob_stage_create(bs, "two"), BERTH_OK);
    s = (struct seen){0};
    CHECK_INT(blob_stage_list(bs, count_stage, &s), BERTH_OK);
    CHECK_INT(s.count, 2);
    close_store(bs);
}

int main(void)
{
    RUN(test_stage_names);
    RUN(test_stage_write_hash_truncate);
    RUN(test_stage_writeback);
    RUN(test_prefix_dirs_synced_once);
    RUN(test_publish_and_read);
    RUN(test_publish_large);
    RUN(test_s3_cache_bound);
    RUN(test_remove_finish_recover);
    RUN(test_recover);
    RUN(test_walk_and_delete);
    return unit_report(on_s3() ? "test_fs on s3" : "test_fs");
}
