/*
 * bench-lifegc: the scale benchmark of lifecycle evaluation and garbage
 * collection (docs/lifecycle-gc.md). Each phase is its own process so that
 * its peak memory is its own:
 *
 *   bench-lifegc setup-lifecycle DIR N    a repository of N images (tags, indexes)
 *   bench-lifegc lifecycle DIR [--apply]  evaluate (dry run), or enforce, a policy
 *   bench-lifegc setup-gc DIR N G O       N blob rows, G of them garbage, O orphan files
 *   bench-lifegc gc DIR [--dry-run]       one collection pass
 *   bench-lifegc probe DIR SECONDS        the latency probe alone (a baseline)
 *
 * lifecycle and gc run a probe next to the measured work: one thread pushes
 * small images through the real push path (upload session, manifest put)
 * and one pulls them (manifest lookup, blob open and read), every couple
 * of milliseconds, recording each operation's latency; the report gives
 * their maximum and percentiles; a third thread takes the write lock and
 * gives it back at once, which measures the lock wait alone (without the
 * disk's fsync noise that a real push also sees), then creates and
 * removes a file next to the uploads (the file system's own latency). BERTH_BENCH_FSYNC=0 turns
 * fsync off (default on).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/blob/blob.h"
#include "storage/spec/digest.h"
#include "storage/gc/gc.h"
#include "storage/lifecycle/lifecycle.h"
#include "storage/lifecycle/lifecycle_run.h"
#include "common/log.h"
#include "storage/spec/manifest.h"
#include "storage/meta/meta.h"
#include "storage/registry/registry.h"
#include "storage/store/store.h"
#include "common/str.h"
#include "common/timeutil.h"
#include "storage/store/upload.h"

#define LC_REPO "bench/lifecycle"
#define GC_REPO "bench/gc"
#define PROBE_REPO "bench/probe"
#define PROBE_MAX 200000
#define ROWS_PER_TXN 20000

static void die(const char *what, enum berth_err rc)
{
    fprintf(stderr, "bench-lifegc: %s: %s\n", what, berth_strerror(rc));
    exit(1);
}

static void check(enum berth_err rc, const char *what)
{
    if (rc != BERTH_OK) {
        die(what, rc);
    }
}

static struct store *open_store(const char *dir)
{
    const char *f = getenv("BERTH_BENCH_FSYNC");
    struct store_options opt = {.root = dir,
                                .fsync = f == NULL || strcmp(f, "0") != 0,
                                .auto_create = true,
                                .upload_expiry_ms = 86400000,
                                .manifest_max = 4 << 20};
    struct store *st = NULL;
    check(store_open(&opt, &st), "store_open");
    return st;
}

static long peak_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* The digest of "<kind> <a> <b>": distinct, stable names for made-up content. */
static struct digest digest_of(const char *kind, long a, long b)
{
    char text[128];
    snprintf(text, sizeof(text), "%s %ld %ld", kind, a, b);
    struct digest d;
    check(digest_buffer(DIGEST_SHA256, text, strlen(text), &d), "digest");
    return d;
}

static int64_t insert_manifest(struct meta *m, int64_t repo_id, const struct digest *d,
                               bool is_index, int64_t pushed_at)
{
    int64_t blob_id;
    check(meta_blob_upsert(m, d->str, 512, pushed_at, &blob_id), "blob_upsert");
    struct meta_manifest row;
    memset(&row, 0, sizeof(row));
    row.repo_id = repo_id;
    row.blob_id = blob_id;
    str_copy(row.digest, sizeof(row.digest), d->str);
    str_copy(row.media_type, sizeof(row.media_type), is_index ? MANIFEST_OCI_INDEX : MANIFEST_OCI);
    row.is_index = is_index;
    row.size = 512;
    row.pushed_at = pushed_at;
    int64_t id;
    check(meta_manifest_insert(m, &row, NULL, &id), "manifest_insert");
    return id;
}

/* ---- the probe: pushes and pulls next to the measured work ---- */

struct probe {
    struct store *st;
    atomic_bool stop;
    atomic_bool counting; /* record samples (after the warm-up) */
    int64_t push_ns[PROBE_MAX];
    size_t pushes;
    int64_t pull_ns[PROBE_MAX];
    size_t pulls;
    int64_t lock_ns[PROBE_MAX];
    size_t locks;
    int64_t fs_ns[PROBE_MAX];
    size_t fss;
    struct digest last; /* the last image pushed (pull target) */
    int64_t worst_ns;   /* the slowest push, and where its time went */
    int64_t worst_stage[4];
    atomic_bool have_last;
    pthread_mutex_t lock;
    long failures;
};

static void probe_push(struct probe *p, long n)
{
    char cfg[64], man[1024];
    snprintf(cfg, sizeof(cfg), "{\"probe\":%ld,\"pid\":%ld}", n, (long)getpid());
    struct meta_repo repo;
    struct registry_status s;
    int64_t t0 = time_mono_ns();
    enum berth_err rc = registry_repo(p->st, PROBE_REPO, true, &repo, &s);
    char uuid[RAND_UUID_LEN + 1];
    struct upload *u = NULL;
    struct digest d;
    struct meta_blob b;
    check(digest_buffer(DIGEST_SHA256, cfg, strlen(cfg), &d), "digest");
    int64_t stage[4] = {0, 0, 0, 0};
    int64_t ts = time_mono_ns();
    if (rc == BERTH_OK) {
        rc = upload_create(p->st, repo.id, DIGEST_SHA256, uuid);
    }
    stage[0] = time_mono_ns() - ts;
    ts = time_mono_ns();
    if (rc == BERTH_OK) {
        rc = upload_acquire(p->st, uuid, repo.id, &u);
    }
    if (rc == BERTH_OK) {
        rc = upload_write(u, cfg, strlen(cfg));
        if (rc == BERTH_OK) {
            stage[1] = time_mono_ns() - ts;
            ts = time_mono_ns();
            rc = upload_complete(u, &d, &b);
            stage[2] = time_mono_ns() - ts;
            ts = time_mono_ns();
        } else {
            upload_release(u);
        }
    }
    if (rc == BERTH_OK) {
        snprintf(man, sizeof(man),
                 "{\"schemaVersion\":2,\"mediaType\":\"" MANIFEST_OCI "\","
                 "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
                 "\"digest\":\"%s\",\"size\":%zu},\"layers\":[]}",
                 d.str, strlen(cfg));
        struct registry_put in = {
            .repo = PROBE_REPO, .body = man, .len = strlen(man), .create_repo = true};
        struct registry_put_result res;
        rc = registry_manifest_put(p->st, &in, &res, &s);
        stage[3] = time_mono_ns() - ts;
        if (rc == BERTH_OK) {
            pthread_mutex_lock(&p->lock);
            p->last = res.digest;
            pthread_mutex_unlock(&p->lock);
            atomic_store(&p->have_last, true);
        }
    }
    int64_t dt = time_mono_ns() - t0;
    if (rc != BERTH_OK) {
        p->failures++;
    } else if (atomic_load(&p->counting) && p->pushes < PROBE_MAX) {
        p->push_ns[p->pushes++] = dt;
    }
    if (rc == BERTH_OK && atomic_load(&p->counting) && dt > p->worst_ns) {
        p->worst_ns = dt;
        memcpy(p->worst_stage, stage, sizeof(stage));
    }
}

static void *probe_pusher(void *arg)
{
    struct probe *p = arg;
    for (long n = 0; !atomic_load(&p->stop); n++) {
        probe_push(p, n);
        time_sleep_ms(2);
    }
    return NULL;
}

static void *probe_puller(void *arg)
{
    struct probe *p = arg;
    char buf[4096];
    while (!atomic_load(&p->stop)) {
        if (atomic_load(&p->have_last)) {
            pthread_mutex_lock(&p->lock);
            struct digest d = p->last;
            pthread_mutex_unlock(&p->lock);
            int64_t t0 = time_mono_ns();
            struct meta_manifest mf;
            struct registry_status s;
            int fd = -1;
            uint64_t size = 0;
            enum berth_err rc = registry_manifest_get(p->st, PROBE_REPO, d.str, &mf, &s);
            if (rc == BERTH_OK) {
                rc = blob_open(store_blobs(p->st), &d, &fd, &size);
            }
            if (rc == BERTH_OK) {
                ssize_t got = read(fd, buf, sizeof(buf));
                rc = got == (ssize_t)size ? BERTH_OK : BERTH_EIO;
                close(fd);
            }
            int64_t dt = time_mono_ns() - t0;
            if (rc != BERTH_OK) {
                p->failures++;
            } else if (atomic_load(&p->counting) && p->pulls < PROBE_MAX) {
                p->pull_ns[p->pulls++] = dt;
            }
        }
        time_sleep_ms(1);
    }
    return NULL;
}

/* How long a writer waits for the write lock: BEGIN IMMEDIATE, then give
 * it back at once (no commit, so no disk I/O of its own). */
static void *probe_locker(void *arg)
{
    struct probe *p = arg;
    struct meta *m = store_meta(p->st);
    while (m != NULL && !atomic_load(&p->stop)) {
        int64_t t0 = time_mono_ns();
        enum berth_err rc = meta_begin(m);
        int64_t dt = time_mono_ns() - t0;
        meta_rollback(m);
        if (rc != BERTH_OK) {
            p->failures++;
        } else if (atomic_load(&p->counting) && p->locks < PROBE_MAX) {
            p->lock_ns[p->locks++] = dt;
        }
        /* and a file system metadata operation: create, close, unlink */
        t0 = time_mono_ns();
        if (blob_stage_create(store_blobs(p->st), "bench-probe") == BERTH_OK) {
            blob_stage_remove(store_blobs(p->st), "bench-probe");
            if (atomic_load(&p->counting) && p->fss < PROBE_MAX) {
                p->fs_ns[p->fss++] = time_mono_ns() - t0;
            }
        }
        time_sleep_ms(1);
    }
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void report_latency(const char *what, int64_t *v, size_t n)
{
    if (n == 0) {
        printf("  %s: no samples\n", what);
        return;
    }
    qsort(v, n, sizeof(*v), cmp_i64);
    printf("  %-5s n=%zu p50=%.2f ms p99=%.2f ms p99.9=%.2f ms max=%.2f ms\n", what, n,
           (double)v[n / 2] / 1e6, (double)v[n * 99 / 100] / 1e6, (double)v[n * 999 / 1000] / 1e6,
           (double)v[n - 1] / 1e6);
}

static struct probe *probe_start(struct store *st, pthread_t th[3])
{
    struct probe *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        die("probe", BERTH_ENOMEM);
    }
    p->st = st;
    pthread_mutex_init(&p->lock, NULL);
    pthread_create(&th[0], NULL, probe_pusher, p);
    pthread_create(&th[1], NULL, probe_puller, p);
    pthread_create(&th[2], NULL, probe_locker, p);
    /* Warm up (the first commits on a freshly opened store create the WAL
     * and can take 100+ ms whatever else runs), then start counting. */
    time_sleep_ms(1000);
    atomic_store(&p->counting, true);
    return p;
}

static void probe_stop(struct probe *p, pthread_t th[3])
{
    time_sleep_ms(200);
    atomic_store(&p->stop, true);
    pthread_join(th[0], NULL);
    pthread_join(th[1], NULL);
    pthread_join(th[2], NULL);
    printf("probe (concurrent pushes and pulls through the store, %ld failures):\n", p->failures);
    report_latency("push", p->push_ns, p->pushes);
    report_latency("pull", p->pull_ns, p->pulls);
    report_latency("lock", p->lock_ns, p->locks);
    report_latency("file", p->fs_ns, p->fss);
    printf("  slowest push %.2f ms: session %.2f, write %.2f, complete %.2f, manifest %.2f ms\n",
           (double)p->worst_ns / 1e6, (double)p->worst_stage[0] / 1e6,
           (double)p->worst_stage[1] / 1e6, (double)p->worst_stage[2] / 1e6,
           (double)p->worst_stage[3] / 1e6);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* ---- lifecycle ---- */

/* N images pushed an hour apart (newest now): 9 in 10 tagged (v<i>, and
 * every third also prod-<i>), 1 in 10 untagged; every 100th an index
 * listing the two images before it. */
static int setup_lifecycle(const char *dir, long n)
{
    struct store *st = open_store(dir);
    struct meta *m = store_meta(st);
    struct meta_repo repo;
    check(meta_repo_ensure(m, LC_REPO, time_now_ms(), &repo), "repo");
    int64_t now = time_now_ms();
    int64_t *ids = calloc((size_t)n, sizeof(*ids));
    struct digest *ds = calloc((size_t)n, sizeof(*ds));
    if (ids == NULL || ds == NULL) {
        die("setup", BERTH_ENOMEM);
    }
    int64_t t0 = time_mono_ns();
    for (long i = 0; i < n; i++) {
        if (i % ROWS_PER_TXN == 0) {
            if (i > 0) {
                check(meta_commit(m), "commit");
            }
            check(meta_begin(m), "begin");
        }
        bool is_index = i % 100 == 99;
        ds[i] = digest_of("bench image", i, (long)is_index);
        int64_t pushed = now - (n - i) * 3600 * 1000LL;
        ids[i] = insert_manifest(m, repo.id, &ds[i], is_index, pushed);
        if (is_index) {
            check(meta_manifest_ref_add(m, ids[i], ds[i - 1].str, META_REF_MANIFEST, MANIFEST_OCI),
                  "ref");
            check(meta_manifest_ref_add(m, ids[i], ds[i - 2].str, META_REF_MANIFEST, MANIFEST_OCI),
                  "ref");
        }
        if (i % 10 != 0) {
            char tag[64];
            snprintf(tag, sizeof(tag), "v%ld", i);
            check(meta_tag_set(m, repo.id, tag, ids[i], pushed, NULL), "tag");
            if (i % 3 == 0) {
                snprintf(tag, sizeof(tag), "prod-%ld", i);
                check(meta_tag_set(m, repo.id, tag, ids[i], pushed, NULL), "tag");
            }
        }
    }
    check(meta_commit(m), "commit");
    printf("setup: %ld images in %.1f s\n", n, (double)(time_mono_ns() - t0) / 1e9);
    /* a policy of the usual shape: keep 200 prod images, 1000 others, drop
     * untagged images after a week */
    const char *policy =
        "{\"rules\":["
        "{\"rulePriority\":1,\"description\":\"keep 200 prod\",\"selection\":{\"tagStatus\":"
        "\"tagged\",\"tagPrefixList\":[\"prod-\"],\"countType\":\"imageCountMoreThan\","
        "\"countNumber\":200},\"action\":{\"type\":\"expire\"}},"
        "{\"rulePriority\":2,\"description\":\"untagged after a week\",\"selection\":"
        "{\"tagStatus\":\"untagged\",\"countType\":\"sinceImagePushed\",\"countUnit\":\"days\","
        "\"countNumber\":7},\"action\":{\"type\":\"expire\"}},"
        "{\"rulePriority\":3,\"description\":\"keep 1000 of the rest\",\"selection\":{"
        "\"tagStatus\":\"any\",\"countType\":\"imageCountMoreThan\",\"countNumber\":1000},"
        "\"action\":{\"type\":\"expire\"}}]}";
    check(meta_repo_set_text(m, repo.id, META_REPO_LIFECYCLE, policy), "policy");
    free(ids);
    free(ds);
    store_close(st);
    return 0;
}

static int run_lifecycle(const char *dir, bool apply)
{
    struct store *st = open_store(dir);
    struct meta_repo repo;
    struct registry_status s;
    check(registry_repo(st, LC_REPO, false, &repo, &s), "repo");
    long rss0 = peak_rss_kib();
    pthread_t th[3];
    struct probe *p = probe_start(st, th);
    struct lifecycle_run_options opt = {.dry_run = !apply};
    struct lifecycle_run_result *r = NULL;
    char msg[LIFECYCLE_MSG_CAP];
    int64_t t0 = time_mono_ns();
    enum berth_err rc = lifecycle_run_repo(st, repo.id, &opt, &r, msg, sizeof(msg));
    int64_t total = time_mono_ns() - t0;
    if (rc != BERTH_OK) {
        fprintf(stderr, "bench-lifegc: %s\n", msg);
        die("lifecycle_run_repo", rc);
    }
    long rss1 = peak_rss_kib();
    printf("lifecycle %s: %zu images, %zu expired by the policy%s\n", apply ? "enforce" : "dry run",
           r->image_count, r->item_count, apply ? "" : " (would be)");
    printf("  load %.3f s, evaluate %.3f s, delete %.3f s (%zu deleted), total %.3f s\n",
           (double)r->load_us / 1e6, (double)r->eval_us / 1e6, (double)r->delete_us / 1e6,
           r->expired, (double)total / 1e9);
    if (apply && r->expired > 0) {
        printf("  %.0f deletions/s, each one write transaction\n",
               (double)r->expired / ((double)r->delete_us / 1e6));
    }
    printf("  peak RSS %ld KiB (%ld KiB before the run)\n", rss1, rss0);
    lifecycle_run_result_free(r);
    probe_stop(p, th);
    store_close(st);
    return 0;
}

/* ---- garbage collection ---- */

/* n blob rows: (n - g) referenced by manifests (9 layers each, plus the
 * manifest's own blob), g garbage (touched a day ago, with a file), and o
 * orphan files without a row (a day old). */
static int setup_gc(const char *dir, long n, long g, long o)
{
    struct store *st = open_store(dir);
    struct meta *m = store_meta(st);
    struct meta_repo repo;
    check(meta_repo_ensure(m, GC_REPO, time_now_ms(), &repo), "repo");
    int64_t old = time_now_ms() - 86400 * 1000LL;
    long referenced = n - g, manifests = 0;
    int64_t t0 = time_mono_ns();
    int64_t man_id = 0;
    for (long i = 0; i < referenced; i++) {
        if (i % ROWS_PER_TXN == 0) {
            if (i > 0) {
                check(meta_commit(m), "commit");
            }
            check(meta_begin(m), "begin");
        }
        if (i % 10 == 0) {
            struct digest d = digest_of("gc manifest", i, 0);
            man_id = insert_manifest(m, repo.id, &d, false, old);
            manifests++;
        } else {
            struct digest d = digest_of("gc layer", i, 0);
            int64_t id;
            check(meta_blob_upsert(m, d.str, 4096, old, &id), "blob");
            check(meta_blob_link(m, repo.id, id), "link");
            check(meta_manifest_ref_add(m, man_id, d.str, META_REF_BLOB, NULL), "ref");
        }
    }
    if (referenced > 0) {
        check(meta_commit(m), "commit");
    }
    /* garbage and orphans get files, a day old; an orphan's row never
     * commits, as after a crash between the rename and the commit */
    struct timespec times[2] = {{time(NULL) - 86400, 0}, {time(NULL) - 86400, 0}};
    char tmp[BLOB_STAGE_NAME_MAX + 1], path[4096];
    for (long i = 0; i < g + o; i++) {
        bool orphan = i >= g;
        if (i % ROWS_PER_TXN == 0 || i == g) {
            if (i > 0) {
                check(meta_commit(m), "commit");
            }
            check(meta_begin(m), "begin");
        }
        char data[64];
        snprintf(data, sizeof(data), "%s %ld", orphan ? "orphan" : "garbage", i);
        struct digest d;
        check(digest_buffer(DIGEST_SHA256, data, strlen(data), &d), "digest");
        check(blob_stage_put(store_blobs(st), data, strlen(data), tmp), "stage");
        check(blob_stage_publish(store_blobs(st), tmp, &d), "publish");
        check(blob_local_path(store_blobs(st), &d, path, sizeof(path)), "path");
        utimensat(AT_FDCWD, path, times, 0);
        if (!orphan) {
            int64_t id;
            check(meta_blob_upsert(m, d.str, (int64_t)strlen(data), old, &id), "blob");
            check(meta_blob_link(m, repo.id, id), "link");
        }
    }
    if (g + o > 0) {
        if (o > 0) {
            meta_rollback(m); /* the orphans' transaction holds no rows */
        } else {
            check(meta_commit(m), "commit");
        }
    }
    printf("setup: %ld referenced rows (%ld manifests), %ld garbage rows with files, %ld orphan "
           "files, in %.1f s\n",
           referenced, manifests, g, o, (double)(time_mono_ns() - t0) / 1e9);
    store_close(st);
    return 0;
}

static int run_gc(const char *dir, bool dry_run)
{
    struct store *st = open_store(dir);
    long rss0 = peak_rss_kib();
    pthread_t th[3];
    struct probe *p = probe_start(st, th);
    struct gc_options opt = {
        .grace_ms = 3600 * 1000, .upload_expiry_ms = 86400000, .dry_run = dry_run};
    struct gc_stats s;
    int64_t t0 = time_mono_ns();
    check(gc_run(st, &opt, &s), "gc_run");
    int64_t total = time_mono_ns() - t0;
    long rss1 = peak_rss_kib();
    printf("gc%s: %lld rows examined, %lld blobs (%lld bytes) %s, %lld orphan files %s\n",
           dry_run ? " (dry run)" : "", (long long)s.blobs_scanned, (long long)s.blobs_deleted,
           (long long)s.bytes_deleted, dry_run ? "found" : "deleted", (long long)s.orphans_deleted,
           dry_run ? "found" : "deleted");
    printf("  %.3f s; %lld write transactions, the longest held %.2f ms\n", (double)total / 1e9,
           (long long)s.batches, (double)s.max_lock_us / 1000.0);
    printf("  peak RSS %ld KiB (%ld KiB before the pass)\n", rss1, rss0);
    probe_stop(p, th);
    store_close(st);
    return 0;
}

/* The probe alone, for a baseline of push and pull latency. */
static int run_probe(const char *dir, long seconds)
{
    struct store *st = open_store(dir);
    pthread_t th[3];
    struct probe *p = probe_start(st, th);
    time_sleep_ms(seconds * 1000);
    printf("baseline: the probe alone for %ld s\n", seconds);
    probe_stop(p, th);
    store_close(st);
    return 0;
}

static long arg_long(const char *s)
{
    uint64_t v;
    if (str_parse_u64(s, 100000000, &v) != BERTH_OK) {
        fprintf(stderr, "bench-lifegc: bad number '%s'\n", s);
        exit(2);
    }
    return (long)v;
}

int main(int argc, char **argv)
{
    if (getenv("BERTH_BENCH_DEBUG") != NULL) {
        log_set_level(LOG_DEBUG);
    }
    if (argc >= 4 && strcmp(argv[1], "setup-lifecycle") == 0) {
        return setup_lifecycle(argv[2], arg_long(argv[3]));
    }
    if (argc >= 3 && strcmp(argv[1], "lifecycle") == 0) {
        return run_lifecycle(argv[2], argc >= 4 && strcmp(argv[3], "--apply") == 0);
    }
    if (argc >= 6 && strcmp(argv[1], "setup-gc") == 0) {
        return setup_gc(argv[2], arg_long(argv[3]), arg_long(argv[4]), arg_long(argv[5]));
    }
    if (argc >= 3 && strcmp(argv[1], "gc") == 0) {
        return run_gc(argv[2], argc >= 4 && strcmp(argv[3], "--dry-run") == 0);
    }
    if (argc >= 4 && strcmp(argv[1], "probe") == 0) {
        return run_probe(argv[2], arg_long(argv[3]));
    }
    fprintf(stderr, "usage: bench-lifegc setup-lifecycle DIR N | lifecycle DIR [--apply] |\n"
                    "       setup-gc DIR ROWS GARBAGE ORPHANS | gc DIR [--dry-run] |\n"
                    "       probe DIR SECONDS\n");
    return 2;
}
