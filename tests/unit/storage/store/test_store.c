/* Unit tests for the store: opening (a database from a newer berth is
 * refused), upload sessions (incl. a restart), trash recovery. */
#include "unit.h"
#include "unit_fds.h"
#include "unit_store.h"

#include <sqlite3.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/timeutil.h"

static char root[UNIT_ROOT_MAX]; /* the running test's store */

/* A database a newer berth migrated is refused by the store (so `berth
 * serve` stops): the version is forged with SQLite itself. */
static void test_schema_newer(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    int current = meta_schema_version(store_meta(st));
    store_close(st);
    /* the forged database is SQLite's whatever the run's backend: the
     * root's backend marker (PostgreSQL in the postgres run) goes */
    char marker[700];
    snprintf(marker, sizeof(marker), "%s/%s", root, STORE_MARKER_NAME);
    CHECK(unlink(marker) == 0);
    char db[700], pragma[64];
    snprintf(db, sizeof(db), "%s/berth.db", root);
    snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", current + 1);
    sqlite3 *raw = NULL;
    CHECK_INT(sqlite3_open(db, &raw), SQLITE_OK);
    CHECK_INT(sqlite3_exec(raw, pragma, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);
    struct store_options opt = {.root = root, .manifest_max = 4 << 20};
    st = NULL;
    CHECK_INT(store_open(&opt, &st), BERTH_EDB);
    CHECK(st == NULL);
    unit_store_remove(NULL, root);
}

/* A repository row for upload sessions (the registry's rules are not
 * needed to hold a session). */
static int64_t repo(struct store *st, const char *name)
{
    struct meta_repo r;
    CHECK_INT(meta_repo_ensure(store_meta(st), name, 1000, &r), BERTH_OK);
    return r.id;
}

static void test_uploads(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    struct meta_repo r = {.id = repo(st, "up")};
    char uuid[RAND_UUID_LEN + 1];
    CHECK_INT(upload_create(st, r.id, DIGEST_SHA256, uuid), BERTH_OK);
    struct upload *u = NULL, *u2 = NULL;
    CHECK_INT(upload_acquire(st, uuid, r.id, &u), BERTH_OK);
    CHECK_INT(upload_acquire(st, uuid, r.id, &u2), BERTH_EBUSY);
    CHECK_INT(upload_acquire(st, uuid, r.id + 1, &u2), BERTH_ENOTFOUND);
    CHECK_INT(upload_write(u, "hello ", 6), BERTH_OK);
    CHECK_INT(upload_offset(u), 6);
    upload_release(u);
    uint64_t off = 0;
    CHECK_INT(upload_peek(st, uuid, r.id, &off), BERTH_OK);
    CHECK_INT(off, 6);

    /* a restart: the running hash is rebuilt from the file */
    store_close(st);
    st = unit_store_open(root);
    CHECK_INT(upload_acquire(st, uuid, r.id, &u), BERTH_OK);
    CHECK_INT(upload_offset(u), 6);
    CHECK_INT(upload_write(u, "world", 5), BERTH_OK);
    /* roll back a bad chunk, then write it again */
    CHECK_INT(upload_write(u, "XXX", 3), BERTH_OK);
    CHECK_INT(upload_truncate(u, 11), BERTH_OK);
    struct digest want;
    digest_buffer(DIGEST_SHA256, "hello world", 11, &want);
    struct meta_blob b;
    CHECK_INT(upload_complete(u, &want, &b), BERTH_OK);
    CHECK_STR(b.digest, want.str);
    CHECK_INT(upload_peek(st, uuid, r.id, &off), BERTH_ENOTFOUND);

    int fd;
    uint64_t size;
    CHECK_INT(blob_open(store_blobs(st), &want, &fd, &size), BERTH_OK);
    CHECK_INT(size, 11);
    close(fd);
    struct meta_blob linked;
    CHECK_INT(meta_blob_get_linked(store_meta(st), r.id, want.str, &linked), BERTH_OK);

    /* wrong digest: nothing published, the session is gone */
    CHECK_INT(upload_create(st, r.id, DIGEST_SHA256, uuid), BERTH_OK);
    CHECK_INT(upload_acquire(st, uuid, r.id, &u), BERTH_OK);
    CHECK_INT(upload_write(u, "other", 5), BERTH_OK);
    CHECK_INT(upload_complete(u, &want, &b), BERTH_EDIGEST);
    CHECK_INT(upload_acquire(st, uuid, r.id, &u), BERTH_ENOTFOUND);
    struct digest other;
    digest_buffer(DIGEST_SHA256, "other", 5, &other);
    CHECK_INT(blob_open(store_blobs(st), &other, &fd, &size), BERTH_ENOTFOUND);

    /* sha512 content finished against a sha256 session (one extra pass) */
    CHECK_INT(upload_create(st, r.id, DIGEST_SHA256, uuid), BERTH_OK);
    CHECK_INT(upload_acquire(st, uuid, r.id, &u), BERTH_OK);
    CHECK_INT(upload_write(u, "abc", 3), BERTH_OK);
    struct digest d512;
    digest_buffer(DIGEST_SHA512, "abc", 3, &d512);
    CHECK_INT(upload_complete(u, &d512, &b), BERTH_OK);
    CHECK_STR(b.digest, d512.str);

    /* cancel and expiry */
    CHECK_INT(upload_create(st, r.id, DIGEST_SHA256, uuid), BERTH_OK);
    CHECK_INT(upload_cancel(st, uuid, r.id), BERTH_OK);
    CHECK_INT(upload_cancel(st, uuid, r.id), BERTH_ENOTFOUND);
    CHECK_INT(upload_create(st, r.id, DIGEST_SHA256, uuid), BERTH_OK);
    int64_t removed = 0;
    CHECK_INT(upload_expire(st, time_now_ms() - 60000, false, &removed), BERTH_OK);
    CHECK_INT(removed, 0);
    CHECK_INT(upload_expire(st, time_now_ms() + 60000, false, &removed), BERTH_OK);
    CHECK_INT(removed, 1);
    CHECK_INT(upload_peek(st, uuid, r.id, &off), BERTH_ENOTFOUND);
    unit_store_remove(st, root);
}

/* Bodies past 16 MiB in one request are hashed on a thread of their own
 * while they are written: the hash must still be exactly the stage's,
 * across a cut back, a new request and a completion. */
static void test_large_upload_hashed_alongside(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    struct meta_repo r = {.id = repo(st, "big")};
    size_t total = 54 * 1024 * 1024 + 333;
    unsigned char *data = malloc(total);
    CHECK(data != NULL);
    if (data == NULL) {
        unit_store_remove(st, root);
        return;
    }
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < total; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data[i] = (unsigned char)x;
    }
    bool threads = sysconf(_SC_NPROCESSORS_ONLN) >= 2;
    uint64_t started = upload_hashers_started();
    char uuid[RAND_UUID_LEN + 1];
    CHECK_INT(upload_create(st, r.id, DIGEST_SHA256, uuid), BERTH_OK);
    struct upload *u = NULL;
    CHECK_INT(upload_acquire(st, uuid, r.id, &u), BERTH_OK);
    /* 20 MiB in the pieces libmicrohttpd hands over, then a cut back to
     * 19 MiB + 1 while the hasher runs, and the rest of this request */
    size_t at = 0, piece = 16384;
    for (; at < ((size_t)20 << 20); at += piece) {
        CHECK_INT(upload_write(u, data + at, piece), BERTH_OK);
    }
    if (threads) {
        CHECK_INT(upload_hashers_started(), started + 1);
    }
    at = ((size_t)19 << 20) + 1;
    CHECK_INT(upload_truncate(u, at), BERTH_OK);
    for (size_t end = (size_t)36 << 20, n; at < end; at += n) {
        n = end - at < piece ? end - at : piece;
        CHECK_INT(upload_write(u, data + at, n), BERTH_OK);
    }
    upload_release(u);
    /* a second request: another hasher for its own 18 MiB + 333 (the
     * first had one only: after a cut back the rest is hashed inline) */
    CHECK_INT(upload_acquire(st, uuid, r.id, &u), BERTH_OK);
    CHECK_INT(upload_offset(u), at);
    for (size_t n; at < total; at += n) {
        n = total - at < piece ? total - at : piece;
        CHECK_INT(upload_write(u, data + at, n), BERTH_OK);
    }
    if (threads) {
        CHECK_INT(upload_hashers_started(), started + 2);
    }
    struct digest want;
    digest_buffer(DIGEST_SHA256, data, total, &want);
    struct meta_blob b;
    CHECK_INT(upload_complete(u, &want, &b), BERTH_OK);
    CHECK_STR(b.digest, want.str);
    CHECK_INT(b.size, (int64_t)total);
    free(data);
    unit_store_remove(st, root);
}

/* The stage's size now (what reached the file). */
static uint64_t stage_size(struct store *st, const char *uuid)
{
    uint64_t size = UINT64_MAX;
    int64_t mtime;
    CHECK_INT(blob_stage_stat(store_blobs(st), uuid, &size, &mtime), BERTH_OK);
    return size;
}

/* Write data[*at, end) in pieces cycling through `sizes`. */
static void write_pieces(struct upload *u, const unsigned char *data, size_t *at, size_t end,
                         const size_t *sizes, size_t nsizes, size_t *turn)
{
    while (*at < end) {
        size_t n = sizes[(*turn)++ % nsizes];
        n = end - *at < n ? end - *at : n;
        CHECK_INT(upload_write(u, data + *at, n), BERTH_OK);
        *at += n;
    }
}

/* Every byte of a body lands once and in order whatever the pieces' sizes
 * (around 256 KiB: the size a gathering of pieces into larger writes was
 * tried with, docs/benchmarks.md), across cut backs, saves, releases (a
 * cut request), a restart (the hash rebuilt from the file) and large
 * pieces. The published blob is read back and compared byte for byte. */
static void test_upload_bytes_in_order(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    struct meta_repo r = {.id = repo(st, "gather")};
    const size_t K = 1024, G = 256 * K;
    size_t total = 5 * G * 4 + 12345;
    unsigned char *data = malloc(total);
    CHECK(data != NULL);
    if (data == NULL) {
        unit_store_remove(st, root);
        return;
    }
    uint64_t x = 0x2545f4914f6cdd1dULL;
    for (size_t i = 0; i < total; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data[i] = (unsigned char)(x >> 24);
    }
    const size_t around[] = {1, 16 * K, G - 1, G, G + 1, 7, 2 * G, 16 * K - 1, 100000, 3 * G + 5};
    const size_t n_around = sizeof(around) / sizeof(around[0]);
    size_t turn = 0, at = 0;
    char uuid[RAND_UUID_LEN + 1];
    CHECK_INT(upload_create(st, r.id, DIGEST_SHA256, uuid), BERTH_OK);
    struct upload *u = NULL;
    CHECK_INT(upload_acquire(st, uuid, r.id, &u), BERTH_OK);

    const size_t small[] = {16 * K};
    write_pieces(u, data, &at, 100 * K, small, 1, &turn);
    CHECK_INT(upload_offset(u), 100 * K);
    CHECK_INT(upload_save(u), BERTH_OK);
    CHECK_INT(stage_size(st, uuid), 100 * K);
    /* more, in every size around 256 KiB */
    write_pieces(u, data, &at, 100 * K + 5 * G + 3, around, n_around, &turn);
    CHECK_INT(upload_offset(u), at);
    CHECK(stage_size(st, uuid) <= at);
    /* a cut back near the end, and one far before it */
    at -= 1000;
    CHECK_INT(upload_truncate(u, at), BERTH_OK);
    CHECK_INT(upload_offset(u), at);
    CHECK_INT(stage_size(st, uuid), at);
    write_pieces(u, data, &at, at + G + 17, around, n_around, &turn);
    at = 100 * K + 3;
    CHECK_INT(upload_truncate(u, at), BERTH_OK);
    CHECK_INT(stage_size(st, uuid), at);
    write_pieces(u, data, &at, 9 * G + 1, around, n_around, &turn);
    /* a request cut short: what arrived stays */
    upload_release(u);
    CHECK_INT(stage_size(st, uuid), at);

    /* a second request continues from the stage */
    CHECK_INT(upload_acquire(st, uuid, r.id, &u), BERTH_OK);
    CHECK_INT(upload_offset(u), at);
    const size_t big[] = {G + 1, 2 * G, 5, G};
    write_pieces(u, data, &at, 14 * G + 99, big, 4, &turn);
    upload_release(u);
    CHECK_INT(stage_size(st, uuid), at);

    /* a restart: the hash is rebuilt from the file, so a byte lost or
     * out of order there would fail the digest below */
    store_close(st);
    st = unit_store_open(root);
    CHECK_INT(upload_acquire(st, uuid, r.id, &u), BERTH_OK);
    CHECK_INT(upload_offset(u), at);
    write_pieces(u, data, &at, total, around, n_around, &turn);
    struct digest want;
    digest_buffer(DIGEST_SHA256, data, total, &want);
    struct meta_blob b;
    CHECK_INT(upload_complete(u, &want, &b), BERTH_OK);
    CHECK_STR(b.digest, want.str);
    CHECK_INT(b.size, (int64_t)total);
    char *back = NULL;
    size_t len = 0;
    CHECK_INT(blob_read_all(store_blobs(st), &want, total + 1, &back, &len), BERTH_OK);
    CHECK_INT(len, total);
    CHECK(back != NULL && memcmp(back, data, total) == 0);
    free(back);

    /* large pieces from the start (ECR's parts) */
    CHECK_INT(upload_create(st, r.id, DIGEST_SHA256, uuid), BERTH_OK);
    CHECK_INT(upload_acquire(st, uuid, r.id, &u), BERTH_OK);
    CHECK_INT(upload_write(u, data, 2 * G + 1), BERTH_OK);
    CHECK_INT(stage_size(st, uuid), 2 * G + 1);
    CHECK_INT(upload_write(u, data + 2 * G + 1, 10), BERTH_OK);
    CHECK_INT(upload_write(u, data + 2 * G + 11, G), BERTH_OK);
    digest_buffer(DIGEST_SHA256, data, 3 * G + 11, &want);
    CHECK_INT(upload_complete(u, &want, &b), BERTH_OK);
    CHECK_INT(blob_read_all(store_blobs(st), &want, total, &back, &len), BERTH_OK);
    CHECK_INT(len, 3 * G + 11);
    CHECK(back != NULL && memcmp(back, data, 3 * G + 11) == 0);
    free(back);
    free(data);
    unit_store_remove(st, root);
}

static void test_trash_recovery(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    /* an uploaded blob */
    int64_t rid = repo(st, "trash");
    char uuid[RAND_UUID_LEN + 1];
    struct upload *u = NULL;
    struct meta_blob b;
    struct digest kept;
    digest_buffer(DIGEST_SHA256, "kept", 4, &kept);
    CHECK_INT(upload_create(st, rid, DIGEST_SHA256, uuid), BERTH_OK);
    CHECK_INT(upload_acquire(st, uuid, rid, &u), BERTH_OK);
    CHECK_INT(upload_write(u, "kept", 4), BERTH_OK);
    CHECK_INT(upload_complete(u, &kept, &b), BERTH_OK);
    struct meta *m = store_meta(st);
    /* a crash between a garbage-collection rename and its commit: the row
     * is still there, so recovery must put the file back */
    CHECK_INT(meta_begin(m), BERTH_OK);
    struct blob_removal moved;
    CHECK_INT(blob_remove(store_blobs(st), &kept, &moved), BERTH_OK);
    meta_rollback(m);
    int fd;
    uint64_t size;
    CHECK_INT(blob_open(store_blobs(st), &kept, &fd, &size), BERTH_ENOTFOUND);
    /* a crash after the commit: no row, the trash file must go */
    struct digest orphan;
    digest_buffer(DIGEST_SHA256, "orphan", 6, &orphan);
    char path[1024];
    snprintf(path, sizeof(path), "%s/trash/sha256-%s", root, digest_hex(&orphan));
    CHECK_INT(file_write_atomic(path, "orphan", 6, 0600, false), BERTH_OK);
    store_close(st);

    st = unit_store_open(root);
    int64_t restored = -1, deleted = -1;
    CHECK_INT(store_recover_trash(st, &restored, &deleted), BERTH_OK);
    CHECK_INT(restored, 1);
    CHECK_INT(deleted, 1);
    CHECK_INT(blob_open(store_blobs(st), &kept, &fd, &size), BERTH_OK);
    CHECK_INT(size, 4);
    close(fd);
    CHECK(access(path, F_OK) != 0);
    unit_store_remove(st, root);
}

static bool exists(const char *dir, const char *name)
{
    char p[700];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* The backend marker: written on first open, naming the run's backends;
 * a reopen with another metadata or blob backend is refused before
 * anything is created; a root without a marker adopts the configuration. */
static void test_backend_marker(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    store_close(st);
    CHECK(exists(root, STORE_MARKER_NAME));
    char target[1200];
    const char *backend = unit_meta_target(root, target, sizeof(target));
    bool sqlite = strcmp(backend, "sqlite") == 0;
    const char *other = sqlite ? "postgres" : "sqlite";
    char why[1024] = "";
    CHECK_INT(store_marker_check(root, backend, NULL, why, sizeof(why)), BERTH_OK);
    CHECK_INT(store_marker_check(root, backend, "filesystem", why, sizeof(why)), BERTH_OK);
    CHECK_INT(store_marker_check(root, other, NULL, why, sizeof(why)), BERTH_ECONFLICT);
    CHECK(strstr(why, "meta.backend postgres") != NULL);
    CHECK(strstr(why, "meta.backend sqlite") != NULL);
    CHECK_INT(store_marker_check(root, backend, "s3", why, sizeof(why)), BERTH_ECONFLICT);
    CHECK(strstr(why, "storage.backend filesystem") != NULL);
    CHECK(strstr(why, "storage.backend s3") != NULL);

    /* store_open with the other metadata backend: refused, and (a
     * PostgreSQL root) no SQLite database appears */
    struct store_options opt = {.root = root,
                                .manifest_max = 4 << 20,
                                .meta_backend = other,
                                .meta_target = sqlite ? "host=/nonexistent" : NULL};
    st = NULL;
    CHECK_INT(store_open(&opt, &st), BERTH_ECONFLICT);
    CHECK(st == NULL);
    CHECK(exists(root, "berth.db") == sqlite);

    /* a malformed marker is refused too */
    char path[700];
    snprintf(path, sizeof(path), "%s/%s", root, STORE_MARKER_NAME);
    CHECK_INT(file_write_atomic(path, "junk\n", 5, 0644, false), BERTH_OK);
    CHECK_INT(store_marker_check(root, backend, NULL, why, sizeof(why)), BERTH_ECONFLICT);

    /* an existing root without a marker keeps opening and adopts one */
    CHECK(unlink(path) == 0);
    st = unit_store_open(root);
    CHECK(st != NULL);
    store_close(st);
    CHECK_INT(store_marker_check(root, backend, NULL, why, sizeof(why)), BERTH_OK);
    CHECK_INT(store_marker_check(root, other, NULL, why, sizeof(why)), BERTH_ECONFLICT);
    unit_store_remove(NULL, root);
}

/* No new SQLite database over a root that holds published blobs: refused
 * for a root without a marker (from before it: its metadata may be in
 * PostgreSQL) whatever existing_meta_only says, and with existing_meta_only
 * (berth gc) for a marked root too; an empty root opens. */
static void test_no_new_db_over_blobs(void)
{
    snprintf(root, sizeof(root), "%s", unit_tmpdir());
    struct store_options opt = {.root = root,
                                .manifest_max = 4 << 20,
                                .meta_backend = "sqlite",
                                .existing_meta_only = true};
    CHECK(!store_root_has_blobs(root));
    char dir[700], blob[800];
    snprintf(dir, sizeof(dir), "%s/blobs/sha256/ab", root);
    CHECK_INT(file_mkdir_p(dir, 0755), BERTH_OK);
    CHECK(!store_root_has_blobs(root));
    snprintf(blob, sizeof(blob), "%s/abcd", dir);
    CHECK_INT(file_write_atomic(blob, "x", 1, 0644, false), BERTH_OK);
    CHECK(store_root_has_blobs(root));
    struct store *st = NULL;
    CHECK_INT(store_open(&opt, &st), BERTH_ECONFLICT);
    CHECK(st == NULL);
    CHECK(!exists(root, "berth.db"));
    CHECK(!exists(root, STORE_MARKER_NAME));
    CHECK(exists(dir, "abcd"));
    /* without existing_meta_only too, as long as the root has no marker */
    opt.existing_meta_only = false;
    CHECK_INT(store_open(&opt, &st), BERTH_ECONFLICT);
    CHECK(!exists(root, "berth.db"));
    CHECK(!exists(root, STORE_MARKER_NAME));
    /* a root marked SQLite: only existing_meta_only refuses */
    CHECK_INT(store_marker_write(root, "sqlite", NULL), BERTH_OK);
    opt.existing_meta_only = true;
    CHECK_INT(store_open(&opt, &st), BERTH_ECONFLICT);
    opt.existing_meta_only = false;
    CHECK_INT(store_open(&opt, &st), BERTH_OK);
    store_close(st);
    /* a database that exists is fine */
    opt.existing_meta_only = true;
    st = NULL;
    CHECK_INT(store_open(&opt, &st), BERTH_OK);
    unit_store_remove(st, root);
    /* an empty root: a new database */
    snprintf(root, sizeof(root), "%s", unit_tmpdir());
    st = NULL;
    CHECK_INT(store_open(&opt, &st), BERTH_OK);
    unit_store_remove(st, root);
}

/* A root from before the marker that holds the S3 backend's local state
 * (a PostgreSQL + S3 root, or SQLite + S3) is refused with the filesystem
 * backend or without its database; empty state directories (a first start
 * cut short) are not state. */
static void test_s3_state_without_marker(void)
{
    snprintf(root, sizeof(root), "%s", unit_tmpdir());
    struct store_options opt = {.root = root, .manifest_max = 4 << 20, .meta_backend = "sqlite"};
    char dir[700], file[800];
    snprintf(dir, sizeof(dir), "%s/s3cache", root);
    CHECK_INT(file_mkdir_p(dir, 0755), BERTH_OK);
    snprintf(dir, sizeof(dir), "%s/s3mpu", root);
    CHECK_INT(file_mkdir_p(dir, 0755), BERTH_OK);
    CHECK(!store_root_has_s3_state(root));
    struct store *st = NULL;
    CHECK_INT(store_open(&opt, &st), BERTH_OK);
    unit_store_remove(st, root);
    /* a root with cached blobs and no database or marker */
    snprintf(root, sizeof(root), "%s", unit_tmpdir());
    snprintf(dir, sizeof(dir), "%s/s3cache", root);
    CHECK_INT(file_mkdir_p(dir, 0755), BERTH_OK);
    snprintf(file, sizeof(file), "%s/sha256-ab", dir);
    CHECK_INT(file_write_atomic(file, "x", 1, 0644, false), BERTH_OK);
    CHECK(store_root_has_s3_state(root));
    /* no database: the metadata is elsewhere */
    st = NULL;
    CHECK_INT(store_open(&opt, &st), BERTH_ECONFLICT);
    CHECK(st == NULL);
    CHECK(!exists(root, "berth.db"));
    CHECK(!exists(root, STORE_MARKER_NAME));
    CHECK(exists(dir, "sha256-ab"));
    /* with a database (SQLite + S3 from before the marker), the filesystem
     * backend is still refused */
    char db[800];
    snprintf(db, sizeof(db), "%s/berth.db", root);
    CHECK_INT(file_write_atomic(db, "", 0, 0644, false), BERTH_OK);
    CHECK_INT(store_open(&opt, &st), BERTH_ECONFLICT);
    CHECK(!exists(root, STORE_MARKER_NAME));
    CHECK(!exists(root, "blobs"));
    unit_store_remove(NULL, root);
}

struct starved {
    struct store *st;
    struct meta *m;
    enum berth_err get, recover;
};

static void *starved_calls(void *arg)
{
    struct starved *s = arg;
    s->get = store_meta_get(s->st, &s->m);
    int64_t restored = 0, deleted = 0;
    s->recover = store_recover_trash(s->st, &restored, &deleted);
    return NULL;
}

/* A thread whose metadata connection cannot open (no descriptor left) gets
 * BERTH_EUNAVAILABLE from store_meta_get and from the store's background
 * passes (the trash recovery), not a database error; with descriptors back
 * it gets its connection. */
static void test_no_connection_is_unavailable(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    struct starved s = {.st = st, .get = BERTH_OK, .recover = BERTH_OK};
    CHECK(unit_fds_run_starved(starved_calls, &s));
    CHECK_INT(s.get, BERTH_EUNAVAILABLE);
    CHECK(s.m == NULL);
    CHECK_INT(s.recover, BERTH_EUNAVAILABLE);
    memset(&s, 0, sizeof(s));
    s.st = st;
    pthread_t t;
    CHECK_INT(pthread_create(&t, NULL, starved_calls, &s), 0);
    pthread_join(t, NULL);
    CHECK_INT(s.get, BERTH_OK);
    CHECK(s.m != NULL);
    CHECK_INT(s.recover, BERTH_OK);
    unit_store_remove(st, root);
}

int main(void)
{
    RUN(test_schema_newer);
    RUN(test_uploads);
    RUN(test_large_upload_hashed_alongside);
    RUN(test_upload_bytes_in_order);
    RUN(test_trash_recovery);
    RUN(test_backend_marker);
    RUN(test_no_new_db_over_blobs);
    RUN(test_s3_state_without_marker);
    RUN(test_no_connection_is_unavailable);
    return unit_report("test_store");
}
