/* Unit tests for storage/bundle/writer.c: the digest set a bundle writer
 * keeps of what it handled and of what a previous bundle holds; what
 * finishing a bundle makes durable, in which order. */
#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/bundle/bundle_int.h"

static void make(int i, char *out, size_t cap)
{
    snprintf(out, cap, "sha256:%064x", (unsigned)i * 2654435761u);
}

static void test_digest_set(void)
{
    struct digest_set s = {0};
    char d[DIGEST_STR_MAX];
    make(1, d, sizeof(d));
    CHECK(!digest_set_has(&s, d));   /* empty */
    for (int i = 0; i < 5000; i++) { /* grows well past its first size */
        make(i, d, sizeof(d));
        CHECK_INT(digest_set_add(&s, d), BERTH_OK);
        CHECK_INT(digest_set_add(&s, d), BERTH_OK); /* a second add changes nothing */
    }
    CHECK_INT((long long)s.count, 5000);
    for (int i = 0; i < 5000; i++) {
        make(i, d, sizeof(d));
        CHECK(digest_set_has(&s, d));
        make(i + 5000, d, sizeof(d));
        CHECK(!digest_set_has(&s, d));
    }
    CHECK_INT(digest_set_add(&s, ""), BERTH_EINVAL);
    digest_set_fini(&s);
    CHECK_INT((long long)s.count, 0);
    make(1, d, sizeof(d));
    CHECK(!digest_set_has(&s, d));
}

/* What each fsync of a finishing bundle saw. */
struct synced {
    bool is_dir;
    ino_t ino;
    bool tmp_there;  /* the temporary name existed at that moment */
    bool path_there; /* the final name existed */
};
static struct synced seen[8];
static int seen_count;
static int fail_at = -1; /* the call that fails with EIO, or -1 */
static char watch_tmp[4096 + 32];
static char watch_path[4096];

static int recording_fsync(int fd)
{
    struct stat sb;
    if (seen_count < 8 && fstat(fd, &sb) == 0) {
        seen[seen_count] = (struct synced){.is_dir = S_ISDIR(sb.st_mode),
                                           .ino = sb.st_ino,
                                           .tmp_there = access(watch_tmp, F_OK) == 0,
                                           .path_there = access(watch_path, F_OK) == 0};
    }
    if (seen_count++ == fail_at) {
        errno = EIO;
        return -1;
    }
    return fsync(fd);
}

/* A bundle of one blob written to dir/name; the outcome of finish. */
static enum berth_err write_one(const char *dir, const char *name, char *why, size_t cap)
{
    snprintf(watch_path, sizeof(watch_path), "%s/%s", dir, name);
    seen_count = 0;
    struct bundle_writer w;
    enum berth_err rc = bundle_writer_open(&w, watch_path, false, NULL, NULL, NULL, why, cap);
    CHECK_INT(rc, BERTH_OK);
    if (rc != BERTH_OK) {
        return rc;
    }
    /* the temporary file's name: <path>.tmp-<pid>-<random>, made by now */
    char prefix[sizeof(watch_tmp)];
    snprintf(prefix, sizeof(prefix), "%s.tmp-%ld-", watch_path, (long)getpid());
    CHECK(strncmp(w.tmp, prefix, strlen(prefix)) == 0 && strlen(w.tmp) == strlen(prefix) + 6);
    CHECK(access(w.tmp, F_OK) == 0);
    snprintf(watch_tmp, sizeof(watch_tmp), "%s", w.tmp);
    static const char body[] = "{\"schemaVersion\":2}";
    struct digest d;
    CHECK_INT(digest_buffer(DIGEST_SHA256, body, sizeof(body) - 1, &d), BERTH_OK);
    CHECK_INT(bundle_writer_put(&w, &d, body, sizeof(body) - 1), BERTH_OK);
    return bundle_writer_finish(&w);
}

static void test_finish_is_durable_in_order(void)
{
    const char *dir = unit_tmpdir();
    struct stat dir_sb;
    CHECK_INT(stat(dir, &dir_sb), 0);
    bundle_writer_fsync = recording_fsync;
    char why[256];
    CHECK_INT(write_one(dir, "b.tar", why, sizeof(why)), BERTH_OK);
    struct stat file_sb;
    CHECK_INT(stat(watch_path, &file_sb), 0);
    /* the file's bytes under its temporary name first, then the directory
     * once the final name is in it */
    CHECK_INT(seen_count, 2);
    CHECK(!seen[0].is_dir);
    CHECK(seen[0].ino == file_sb.st_ino);
    CHECK(seen[0].tmp_there && !seen[0].path_there);
    CHECK(seen[1].is_dir);
    CHECK(seen[1].ino == dir_sb.st_ino);
    CHECK(!seen[1].tmp_there && seen[1].path_there);
    /* either fsync failing: not written, nothing under either name */
    for (int i = 0; i < 2; i++) {
        fail_at = i;
        enum berth_err rc = write_one(dir, i == 0 ? "c.tar" : "d.tar", why, sizeof(why));
        CHECK_INT(rc, BERTH_EIO);
        CHECK(strstr(why, "fsync") != NULL);
        CHECK(access(watch_path, F_OK) != 0);
        CHECK(access(watch_tmp, F_OK) != 0);
    }
    fail_at = -1;
    bundle_writer_fsync = fsync;
}

int main(void)
{
    RUN(test_digest_set);
    RUN(test_finish_is_durable_in_order);
    return unit_report("test_writer");
}
