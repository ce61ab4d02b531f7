/* Unit tests for storage/gc/gc.c and storage/meta/gc.c on a real store in a
 * temporary directory: what is garbage and what is not, orphan and temp
 * files, dry runs, batching, and the crash points of a deletion batch
 * (each simulated by running the pieces a batch is made of and stopping
 * where a kill would). */
#include "unit.h"
#include "unit_fds.h"
#include "unit_registry.h"

#include <dirent.h>
#include <errno.h>
#include <time.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/gc/gc.h"
#include "storage/meta/meta_gc.h"
#include "common/timeutil.h"

#define HOUR_MS (3600 * 1000)

static char root[UNIT_ROOT_MAX]; /* the running test's store */

static int64_t repo_id(struct store *st, const char *name)
{
    struct meta_repo r;
    struct registry_status s;
    CHECK_INT(registry_repo(st, name, true, &r, &s), BERTH_OK);
    return r.id;
}

/* A blob published (file and row, linked to repo unless NULL) as if it had
 * been last touched at `touched`: the same steps as an upload, in one
 * write transaction, with a chosen time. */
static struct digest old_blob(struct store *st, const char *repo, const char *data, int64_t touched)
{
    struct meta *m = store_meta(st);
    int64_t rid = repo ? repo_id(st, repo) : 0;
    struct digest d;
    digest_buffer(DIGEST_SHA256, data, strlen(data), &d);
    char tmp[BLOB_STAGE_NAME_MAX + 1];
    CHECK_INT(blob_stage_put(store_blobs(st), data, strlen(data), tmp), BERTH_OK);
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(blob_stage_publish(store_blobs(st), tmp, &d), BERTH_OK);
    int64_t id = 0;
    CHECK_INT(meta_blob_upsert(m, d.str, (int64_t)strlen(data), touched, &id), BERTH_OK);
    if (repo != NULL) {
        CHECK_INT(meta_blob_link(m, rid, id), BERTH_OK);
    }
    CHECK_INT(meta_commit(m), BERTH_OK);
    return d;
}

static bool has_row(struct store *st, const struct digest *d)
{
    struct meta_blob b;
    return meta_blob_get(store_meta(st), d->str, &b) == BERTH_OK;
}

static bool has_file(struct store *st, const struct digest *d)
{
    char path[4096];
    struct stat sb;
    CHECK_INT(blob_local_path(store_blobs(st), d, path, sizeof(path)), BERTH_OK);
    return stat(path, &sb) == 0;
}

static int count_dir(const char *sub)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", root, sub);
    DIR *dir = opendir(path);
    if (dir == NULL) {
        return -1;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        n += e->d_name[0] != '.';
    }
    closedir(dir);
    return n;
}

static enum berth_err put_manifest(struct store *st, const char *repo, const char *body,
                                   const char *tag, struct digest *out, struct registry_status *s)
{
    const char *tags[] = {tag};
    struct registry_put in = {.repo = repo,
                              .body = body,
                              .len = strlen(body),
                              .tags = tags,
                              .tag_count = tag ? 1 : 0,
                              .create_repo = true};
    struct registry_put_result res;
    enum berth_err rc = registry_manifest_put(st, &in, &res, s);
    if (rc == BERTH_OK && out != NULL) {
        *out = res.digest;
    }
    return rc;
}

static struct gc_stats run_gc(struct store *st, int64_t grace_ms, bool dry_run)
{
    struct gc_options opt = {
        .grace_ms = grace_ms, .upload_expiry_ms = 86400000, .dry_run = dry_run};
    struct gc_stats stats;
    memset(&stats, 0, sizeof(stats));
    CHECK_INT(gc_run(st, &opt, &stats), BERTH_OK);
    return stats;
}

/* Referenced blobs stay however old; unreferenced ones go once older than
 * the grace window, row, link and file together. */
static void test_rules(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    int64_t long_ago = time_now_ms() - 10 * HOUR_MS;
    struct digest cfg = old_blob(st, "app", "{}", long_ago);
    struct digest layer = old_blob(st, "app", "layer", long_ago);
    struct digest linked_only = old_blob(st, "app", "linked but unused", long_ago);
    struct digest unlinked = old_blob(st, NULL, "nobody links me", long_ago);
    struct digest young = unit_push_blob(st, "app", "young and unused");
    char man[2048];
    unit_image_manifest(man, sizeof(man), &cfg, 2, &layer, 5);
    struct registry_status s;
    struct digest md;
    CHECK_INT(put_manifest(st, "app", man, "v1", &md, &s), BERTH_OK);

    /* a dry run finds the two old unreferenced blobs and changes nothing */
    struct gc_stats g = run_gc(st, HOUR_MS, true);
    CHECK_INT(g.blobs_deleted, 2);
    CHECK_INT(g.bytes_deleted,
              (long long)(strlen("linked but unused") + strlen("nobody links me")));
    CHECK(has_row(st, &linked_only) && has_file(st, &linked_only));
    CHECK(has_row(st, &unlinked) && has_file(st, &unlinked));

    g = run_gc(st, HOUR_MS, false);
    CHECK_INT(g.blobs_deleted, 2);
    CHECK_INT(g.blobs_scanned, 6); /* config, layer, two old, young, manifest */
    CHECK(g.batches >= 1);
    CHECK(!has_row(st, &linked_only) && !has_file(st, &linked_only));
    CHECK(!has_row(st, &unlinked) && !has_file(st, &unlinked));
    struct meta_blob b;
    CHECK_INT(registry_blob_stat(st, "app", &linked_only, &b, &s), BERTH_ENOTFOUND);
    /* referenced (config, layer, the manifest's own bytes) and young stay */
    CHECK(has_row(st, &cfg) && has_file(st, &cfg));
    CHECK(has_row(st, &layer) && has_file(st, &layer));
    CHECK(has_row(st, &md) && has_file(st, &md));
    CHECK(has_row(st, &young) && has_file(st, &young));
    CHECK_INT(count_dir("trash"), 0);

    /* the image still pulls whole */
    struct meta_manifest mf;
    CHECK_INT(registry_manifest_get(st, "app", "v1", &mf, &s), BERTH_OK);
    int fd;
    uint64_t size;
    CHECK_INT(blob_open(store_blobs(st), &layer, &fd, &size), BERTH_OK);
    close(fd);

    /* with a zero grace window the young blob goes too */
    time_sleep_ms(2);
    g = run_gc(st, 0, false);
    CHECK_INT(g.blobs_deleted, 1);
    CHECK(!has_row(st, &young) && !has_file(st, &young));

    /* deleting the image releases its blobs, after the grace window that
     * the delete restarts */
    CHECK_INT(registry_manifest_delete(st, "app", md.str, true, &s), BERTH_OK);
    g = run_gc(st, HOUR_MS, false);
    CHECK_INT(g.blobs_deleted, 0);
    time_sleep_ms(2);
    g = run_gc(st, 0, false);
    CHECK_INT(g.blobs_deleted, 3); /* config, layer, manifest bytes */
    CHECK(!has_file(st, &cfg) && !has_file(st, &layer) && !has_file(st, &md));

    /* a push that names a collected layer is refused: no image ever points
     * at a missing blob */
    CHECK_INT(put_manifest(st, "app", man, "v1", NULL, &s), BERTH_ENOTFOUND);
    CHECK_INT(s.reason, REG_LAYERS_MISSING);
    unit_store_remove(st, root);
}

/* An index keeps its children's manifests (referenced by digest), and a
 * child's blobs stay while the child exists. */
static void test_index_children(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    int64_t long_ago = time_now_ms() - 10 * HOUR_MS;
    struct digest cfg = old_blob(st, "multi", "{}", long_ago);
    struct digest layer = old_blob(st, "multi", "layer", long_ago);
    char man[2048], idx[2048];
    unit_image_manifest(man, sizeof(man), &cfg, 2, &layer, 5);
    struct registry_status s;
    struct digest child, index;
    CHECK_INT(put_manifest(st, "multi", man, NULL, &child, &s), BERTH_OK);
    snprintf(idx, sizeof(idx),
             "{\"schemaVersion\":2,\"mediaType\":\"" MANIFEST_OCI_INDEX "\",\"manifests\":["
             "{\"mediaType\":\"" MANIFEST_OCI "\",\"digest\":\"%s\",\"size\":%zu}]}",
             child.str, strlen(man));
    CHECK_INT(put_manifest(st, "multi", idx, "latest", &index, &s), BERTH_OK);
    /* OCI delete of the child (not refused) leaves the index pointing at a
     * digest: its bytes stay as long as the index names it */
    CHECK_INT(registry_manifest_delete(st, "multi", child.str, false, &s), BERTH_OK);
    time_sleep_ms(2);
    struct gc_stats g = run_gc(st, 0, false);
    CHECK(has_file(st, &child));
    CHECK(has_file(st, &index));
    CHECK_INT(g.blobs_deleted, 2); /* the child's config and layer */
    unit_store_remove(st, root);
}

/* Blob files without a row (a crash between publish and commit) go when
 * older than the grace window; non-digest names are left alone. */
static void test_orphans(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    struct meta *m = store_meta(st);
    const char *data = "orphan bytes";
    struct digest d;
    digest_buffer(DIGEST_SHA256, data, strlen(data), &d);
    char tmp[BLOB_STAGE_NAME_MAX + 1];
    CHECK_INT(blob_stage_put(store_blobs(st), data, strlen(data), tmp), BERTH_OK);
    /* publish, then "crash" before the row commits */
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(blob_stage_publish(store_blobs(st), tmp, &d), BERTH_OK);
    meta_rollback(m);
    CHECK(has_file(st, &d) && !has_row(st, &d));
    char stray[4096];
    snprintf(stray, sizeof(stray), "%s/blobs/sha256/notadigest", root);
    int fd = open(stray, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
    CHECK(fd >= 0);
    close(fd);

    /* young: kept */
    struct gc_stats g = run_gc(st, HOUR_MS, false);
    CHECK_INT(g.orphans_deleted, 0);
    CHECK(has_file(st, &d));
    /* made old: a dry run counts it, a real run removes it */
    char path[4096];
    CHECK_INT(blob_local_path(store_blobs(st), &d, path, sizeof(path)), BERTH_OK);
    struct timespec times[2] = {{time(NULL) - 7200, 0}, {time(NULL) - 7200, 0}};
    CHECK_INT(utimensat(AT_FDCWD, path, times, 0), 0);
    g = run_gc(st, HOUR_MS, true);
    CHECK_INT(g.orphans_deleted, 1);
    CHECK_INT(g.orphan_bytes, (long long)strlen(data));
    CHECK(has_file(st, &d));
    g = run_gc(st, HOUR_MS, false);
    CHECK_INT(g.orphans_deleted, 1);
    CHECK(!has_file(st, &d));
    CHECK_INT(access(stray, F_OK), 0);

    /* a file whose row exists is never an orphan, however old */
    struct digest kept = unit_push_blob(st, "r", "has a row");
    CHECK_INT(blob_local_path(store_blobs(st), &kept, path, sizeof(path)), BERTH_OK);
    CHECK_INT(utimensat(AT_FDCWD, path, times, 0), 0);
    g = run_gc(st, HOUR_MS, false);
    CHECK_INT(g.orphans_deleted, 0);
    CHECK(has_file(st, &kept));
    unit_store_remove(st, root);
}

/* Expired sessions and stale temp files go; live ones (written to lately,
 * or held by a request) stay. A dry run counts exactly what a real pass
 * removes. */
static void test_uploads_and_temp_files(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    int64_t rid = repo_id(st, "up");
    char fresh[RAND_UUID_LEN + 1], stale[RAND_UUID_LEN + 1], held[RAND_UUID_LEN + 1];
    CHECK_INT(upload_create(st, rid, DIGEST_SHA256, fresh), BERTH_OK);
    CHECK_INT(upload_create(st, rid, DIGEST_SHA256, stale), BERTH_OK);
    CHECK_INT(upload_create(st, rid, DIGEST_SHA256, held), BERTH_OK);
    char name_old[BLOB_STAGE_NAME_MAX + 1], name_new[BLOB_STAGE_NAME_MAX + 1];
    char tmp_old[4096], tmp_new[4096], path[4096];
    CHECK_INT(blob_stage_put(store_blobs(st), "", 0, name_old), BERTH_OK);
    CHECK_INT(blob_stage_put(store_blobs(st), "", 0, name_new), BERTH_OK);
    unit_stage_path(root, name_old, tmp_old, sizeof(tmp_old));
    unit_stage_path(root, name_new, tmp_new, sizeof(tmp_new));
    struct timespec times[2] = {{time(NULL) - 7200, 0}, {time(NULL) - 7200, 0}};
    CHECK_INT(utimensat(AT_FDCWD, tmp_old, times, 0), 0);
    unit_stage_path(root, stale, path, sizeof(path));
    CHECK_INT(utimensat(AT_FDCWD, path, times, 0), 0);
    unit_stage_path(root, held, path, sizeof(path));
    CHECK_INT(utimensat(AT_FDCWD, path, times, 0), 0);
    /* sessions are judged by creation time: wait past a 1 s expiry */
    time_sleep_ms(1100);
    CHECK_INT(utimensat(AT_FDCWD, tmp_new, NULL, 0), 0);
    struct upload *u = NULL;
    CHECK_INT(upload_acquire(st, fresh, rid, &u), BERTH_OK);
    CHECK_INT(upload_write(u, "x", 1), BERTH_OK); /* being written: not abandoned */
    upload_release(u);
    struct upload *holding = NULL; /* a request in the middle of a chunk */
    CHECK_INT(upload_acquire(st, held, rid, &holding), BERTH_OK);

    struct gc_options opt = {.grace_ms = HOUR_MS, .upload_expiry_ms = 1000, .dry_run = true};
    struct gc_stats g;
    CHECK_INT(gc_run(st, &opt, &g), BERTH_OK);
    CHECK_INT(g.uploads_removed, 2); /* what the real pass below removes */
    CHECK_INT(access(tmp_old, F_OK), 0);
    uint64_t off;
    CHECK_INT(upload_peek(st, stale, rid, &off), BERTH_OK);
    opt.dry_run = false;
    CHECK_INT(gc_run(st, &opt, &g), BERTH_OK);
    CHECK_INT(g.uploads_removed, 2); /* the stale session and the old temp file */
    CHECK(access(tmp_old, F_OK) != 0);
    CHECK_INT(access(tmp_new, F_OK), 0);
    CHECK_INT(upload_peek(st, fresh, rid, &off), BERTH_OK);
    CHECK_INT(upload_peek(st, stale, rid, &off), BERTH_ENOTFOUND);
    CHECK_INT(upload_peek(st, held, rid, &off), BERTH_OK);
    upload_release(holding);
    /* upload_expiry_ms 0 leaves uploads alone */
    opt.upload_expiry_ms = 0;
    CHECK_INT(gc_run(st, &opt, &g), BERTH_OK);
    CHECK_INT(g.uploads_removed, 0);
    opt.grace_ms = -1;
    CHECK_INT(gc_run(st, &opt, &g), BERTH_EINVAL);
    unit_store_remove(st, root);
}

/* An upload in progress whose content is a blob being collected: the
 * collection and the completion are ordered by the write lock, and either
 * way the finished upload's blob is whole. */
static void test_upload_racing_collection(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    int64_t rid = repo_id(st, "race");
    int64_t long_ago = time_now_ms() - 10 * HOUR_MS;
    const char *data = "same bytes";
    struct digest d = old_blob(st, "race", data, long_ago);
    char uuid[RAND_UUID_LEN + 1];
    CHECK_INT(upload_create(st, rid, DIGEST_SHA256, uuid), BERTH_OK);
    struct upload *u = NULL;
    CHECK_INT(upload_acquire(st, uuid, rid, &u), BERTH_OK);
    CHECK_INT(upload_write(u, data, strlen(data)), BERTH_OK);
    upload_release(u);
    /* collected while the session is open */
    struct gc_stats g = run_gc(st, HOUR_MS, false);
    CHECK_INT(g.blobs_deleted, 1);
    CHECK(!has_file(st, &d));
    /* the completion publishes it again, with a fresh grace window */
    CHECK_INT(upload_acquire(st, uuid, rid, &u), BERTH_OK);
    struct meta_blob b;
    CHECK_INT(upload_complete(u, &d, &b), BERTH_OK);
    CHECK(has_row(st, &d) && has_file(st, &d));
    g = run_gc(st, HOUR_MS, false);
    CHECK_INT(g.blobs_deleted, 0);
    CHECK(has_file(st, &d));
    unit_store_remove(st, root);
}

/* A deletion batch is: BEGIN IMMEDIATE; re-check + delete the row; move
 * the file to trash; COMMIT; (next transaction) unlink the trash file.
 * Kill it between any two steps and the store must come back whole. */
static void test_crash_points(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    struct meta *m = store_meta(st);
    int64_t long_ago = time_now_ms() - 10 * HOUR_MS;
    struct digest a = old_blob(st, "c", "blob a", long_ago);
    struct digest b = old_blob(st, "c", "blob b", long_ago);
    struct meta_blob row;
    CHECK_INT(meta_blob_get(m, a.str, &row), BERTH_OK);
    int64_t cutoff = time_now_ms() - HOUR_MS;
    struct blob_removal moved;

    /* 1: killed after the rename into trash, before COMMIT: the database
     * rolls back (row present), the file sits in trash */
    bool deleted = false;
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_gc_blob_delete_if_garbage(m, row.id, cutoff, &deleted), BERTH_OK);
    CHECK(deleted);
    CHECK_INT(blob_remove(store_blobs(st), &a, &moved), BERTH_OK);
    meta_rollback(m);
    CHECK(has_row(st, &a) && !has_file(st, &a));
    CHECK_INT(count_dir("trash"), 1);
    /* start-up recovery puts it back */
    store_close(st);
    st = unit_store_open(root);
    m = store_meta(st);
    int64_t restored = 0, removed = 0;
    CHECK_INT(store_recover_trash(st, &restored, &removed), BERTH_OK);
    CHECK_INT(restored, 1);
    CHECK(has_row(st, &a) && has_file(st, &a));
    int fd;
    uint64_t size;
    CHECK_INT(blob_open(store_blobs(st), &a, &fd, &size), BERTH_OK);
    CHECK_INT(size, 6);
    close(fd);

    /* 2: the same crash, repaired by the next pass instead (it recovers
     * trash under the write lock first), which then collects the blob */
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_gc_blob_delete_if_garbage(m, row.id, cutoff, &deleted), BERTH_OK);
    CHECK_INT(blob_remove(store_blobs(st), &a, &moved), BERTH_OK);
    meta_rollback(m);
    struct gc_stats g = run_gc(st, HOUR_MS, false);
    CHECK_INT(g.trash_restored, 1);
    CHECK_INT(g.blobs_deleted, 2);
    CHECK(!has_row(st, &a) && !has_file(st, &a));
    CHECK(!has_row(st, &b) && !has_file(st, &b));
    CHECK_INT(count_dir("trash"), 0);

    /* 3: killed after COMMIT, before the trash file is unlinked: the row is
     * gone, the file waits in trash; recovery (or the next pass) deletes it */
    struct digest c = old_blob(st, "c", "blob c", long_ago);
    CHECK_INT(meta_blob_get(m, c.str, &row), BERTH_OK);
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_gc_blob_delete_if_garbage(m, row.id, cutoff, &deleted), BERTH_OK);
    CHECK_INT(blob_remove(store_blobs(st), &c, &moved), BERTH_OK);
    CHECK_INT(meta_commit(m), BERTH_OK);
    CHECK_INT(count_dir("trash"), 1);
    g = run_gc(st, HOUR_MS, false);
    CHECK_INT(g.trash_deleted, 1);
    CHECK_INT(count_dir("trash"), 0);

    /* 4: the blob was pushed again between that commit and the unlink: the
     * new file stays, only the old copy in trash goes */
    struct digest e = old_blob(st, "c", "blob e", long_ago);
    CHECK_INT(meta_blob_get(m, e.str, &row), BERTH_OK);
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_gc_blob_delete_if_garbage(m, row.id, cutoff, &deleted), BERTH_OK);
    CHECK_INT(blob_remove(store_blobs(st), &e, &moved), BERTH_OK);
    CHECK_INT(meta_commit(m), BERTH_OK);
    struct digest e2 = unit_push_blob(st, "c", "blob e");
    CHECK_INT(strcmp(e2.str, e.str), 0);
    g = run_gc(st, HOUR_MS, false);
    CHECK(has_row(st, &e) && has_file(st, &e));
    CHECK_INT(count_dir("trash"), 0);

    /* 5: the re-check inside the transaction: a blob that became
     * referenced or was touched after the scan is not deleted */
    struct digest f = old_blob(st, "c", "blob f", long_ago);
    CHECK_INT(meta_blob_get(m, f.str, &row), BERTH_OK);
    CHECK_INT(meta_blob_touch(m, row.id, time_now_ms()), BERTH_OK);
    CHECK_INT(meta_begin(m), BERTH_OK);
    CHECK_INT(meta_gc_blob_delete_if_garbage(m, row.id, cutoff, &deleted), BERTH_OK);
    CHECK(!deleted);
    CHECK_INT(meta_commit(m), BERTH_OK);
    unit_store_remove(st, root);
}

struct scan_ctx {
    int n;
};

static int scan_count(void *arg, const struct meta_gc_blob *b)
{
    (void)b;
    ((struct scan_ctx *)arg)->n++;
    return 0;
}

/* Many garbage blobs: the scan pages, the deletion is split into several
 * short write transactions, cancel stops a pass early. */
static void test_batches_and_cancel(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    struct meta *m = store_meta(st);
    int64_t long_ago = time_now_ms() - 10 * HOUR_MS;
    char data[64];
    CHECK_INT(meta_begin(m), BERTH_OK);
    for (int i = 0; i < 1500; i++) {
        snprintf(data, sizeof(data), "garbage %d", i);
        struct digest d;
        digest_buffer(DIGEST_SHA256, data, strlen(data), &d);
        int64_t id;
        CHECK_INT(meta_blob_upsert(m, d.str, (int64_t)strlen(data), long_ago, &id), BERTH_OK);
    }
    CHECK_INT(meta_commit(m), BERTH_OK);

    struct scan_ctx c = {0};
    int64_t last = 0, scanned = 0;
    CHECK_INT(meta_gc_blob_scan(m, 0, 1000, time_now_ms(), scan_count, &c, &last, &scanned),
              BERTH_OK);
    CHECK_INT(scanned, 1000);
    CHECK_INT(c.n, 1000);
    CHECK_INT(meta_gc_blob_scan(m, last, 1000, time_now_ms(), scan_count, &c, &last, &scanned),
              BERTH_OK);
    CHECK_INT(scanned, 500);
    CHECK_INT(meta_gc_blob_scan(m, 0, 0, 0, scan_count, &c, NULL, NULL), BERTH_EINVAL);
    CHECK_INT(meta_gc_blob_scan(m, 0, META_GC_SCAN_MAX + 1, 0, scan_count, &c, NULL, NULL),
              BERTH_EINVAL);

    atomic_bool cancel = true;
    struct gc_options opt = {.grace_ms = HOUR_MS, .cancel = &cancel};
    struct gc_stats g;
    CHECK_INT(gc_run(st, &opt, &g), BERTH_OK);
    CHECK(g.cancelled);
    CHECK_INT(g.blobs_deleted, 0);
    atomic_store(&cancel, false);
    CHECK_INT(gc_run(st, &opt, &g), BERTH_OK);
    CHECK(!g.cancelled);
    CHECK_INT(g.blobs_deleted, 1500);
    CHECK(g.batches >= 1500 / 256 + 1);
    CHECK(g.max_lock_us > 0);
    int64_t count = -1, bytes = -1;
    CHECK_INT(meta_gc_blob_totals(m, &count, &bytes), BERTH_OK);
    CHECK_INT(count, 0);
    CHECK_INT(bytes, 0);
    unit_store_remove(st, root);
}

struct starved_gc {
    struct store *st;
    enum berth_err rc;
};

static void *starved_gc(void *arg)
{
    struct starved_gc *g = arg;
    struct gc_options opt = {.grace_ms = HOUR_MS};
    struct gc_stats stats;
    g->rc = gc_run(g->st, &opt, &stats);
    return NULL;
}

/* A pass on a thread that cannot open its metadata connection (no
 * descriptor left) fails as unavailable (retry later), not as a database
 * error, and the next pass runs. */
static void test_no_connection_is_unavailable(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    struct starved_gc g = {.st = st, .rc = BERTH_OK};
    CHECK(unit_fds_run_starved(starved_gc, &g));
    CHECK_INT(g.rc, BERTH_EUNAVAILABLE);
    pthread_t t;
    CHECK_INT(pthread_create(&t, NULL, starved_gc, &g), 0);
    pthread_join(t, NULL);
    CHECK_INT(g.rc, BERTH_OK);
    unit_store_remove(st, root);
}

int main(void)
{
    RUN(test_rules);
    RUN(test_index_children);
    RUN(test_orphans);
    RUN(test_uploads_and_temp_files);
    RUN(test_upload_racing_collection);
    RUN(test_crash_points);
    RUN(test_batches_and_cancel);
    RUN(test_no_connection_is_unavailable);
    return unit_report("test_gc");
}
