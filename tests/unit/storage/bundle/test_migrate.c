/* Unit tests for storage/bundle/migrate.c: a blob copied into the
 * destination is linked in under its name (its directory synced) before
 * the destination's write lock is taken, as an upload's is. */
#include "unit.h"
#include "unit_registry.h"
#include "unit_lock.h"

#include <dirent.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "storage/bundle/migrate.h"

static char src_root[UNIT_ROOT_MAX];
static char dst_root[UNIT_ROOT_MAX];

struct migration {
    struct store *src, *dst;
    struct migrate_stats stats;
    char why[512];
    enum berth_err rc;
};

static void *run_migration(void *arg)
{
    struct migration *mg = arg;
    mg->rc = migrate_run(mg->src, mg->dst, false, NULL, NULL, &mg->stats, mg->why, sizeof(mg->why));
    return NULL;
}

static void test_blob_linked_before_the_lock(void)
{
    snprintf(src_root, sizeof(src_root), "%s", unit_tmpdir());
    snprintf(dst_root, sizeof(dst_root), "%s", unit_tmpdir());
    struct store *src = unit_store_open(src_root);
    struct store *dst = unit_store_open_fsync(dst_root, true);
    if (src == NULL || dst == NULL) {
        return;
    }
    struct digest d = unit_push_blob(src, "mig/one", "migrated layer");
    char path[UNIT_ROOT_MAX + 200];
    snprintf(path, sizeof(path), "%s/blobs/sha256/%.2s/%s", dst_root, digest_hex(&d),
             digest_hex(&d));

    struct unit_lock_holder hd;
    unit_lock_hold(&hd, dst);
    pthread_t migrator;
    struct migration mg = {.src = src, .dst = dst};
    CHECK_INT(pthread_create(&migrator, NULL, run_migration, &mg), 0);
    /* the file appears while the lock is still held (bounded wait: a
     * publication inside the lock would never show it here) */
    CHECK(unit_file_appears(path));
    unit_lock_release(&hd);
    pthread_join(migrator, NULL);
    CHECK_INT(mg.rc, BERTH_OK);
    if (mg.rc != BERTH_OK) {
        fprintf(stderr, "migrate: %s\n", mg.why);
    }
    CHECK_INT(mg.stats.copied, 1);
    CHECK_INT(mg.stats.verified, 1);
    /* the destination serves it, and no stage is left behind */
    struct registry_status s;
    struct meta_blob b = {0};
    CHECK_INT(registry_blob_stat(dst, "mig/one", &d, &b, &s), BERTH_OK);
    CHECK_INT(b.size, (long long)strlen("migrated layer"));
    char uploads[UNIT_ROOT_MAX + 20];
    snprintf(uploads, sizeof(uploads), "%s/uploads", dst_root);
    int left = 0;
    DIR *dir = opendir(uploads);
    if (dir != NULL) {
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            left += strncmp(e->d_name, "migrate-", 8) == 0;
        }
        closedir(dir);
    }
    CHECK_INT(left, 0);
    unit_store_remove(src, src_root);
    unit_store_remove(dst, dst_root);
}

int main(void)
{
    RUN(test_blob_linked_before_the_lock);
    return unit_report("test_migrate");
}
