/* Unit tests for storage/meta/meta.c and the simpler queries: connections,
 * migrations (a newer schema is refused), repositories and blob rows.
 * Includes meta.c to reach NMIGRATIONS and the driver. */
#include "unit.h"
#include "unit_meta.h"

#include "storage/meta/meta.c"

static char root[512]; /* the running test's database directory */

static void test_meta_basics(void)
{
    struct meta *m = unit_meta_new(root, sizeof(root));
    CHECK(m != NULL);
    /* core, media types, auth, scanning, previews, pull-time exclusions,
     * creation templates, lifecycle policy times, storage classes */
    CHECK_INT(meta_schema_version(m), 9);
    struct meta_repo r;
    CHECK_INT(meta_repo_create(m, "team/app", 1000, &r), BERTH_OK);
    CHECK_INT(meta_repo_create(m, "team/app", 1000, &r), BERTH_EEXIST);
    CHECK_INT(meta_repo_get(m, "team/nope", &r), BERTH_ENOTFOUND);
    CHECK_INT(meta_repo_ensure(m, "a", 1000, &r), BERTH_OK);
    CHECK_STR(r.name, "a");
    CHECK_INT(r.mutability, META_MUTABLE);
    CHECK_INT(meta_repo_set_text(m, r.id, META_REPO_POLICY, "{\"x\":1}"), BERTH_OK);
    char *text = NULL;
    CHECK_INT(meta_repo_get_text(m, r.id, META_REPO_POLICY, &text), BERTH_OK);
    CHECK_STR(text, "{\"x\":1}");
    free(text);
    CHECK_INT(meta_repo_get_text(m, r.id, META_REPO_LIFECYCLE, &text), BERTH_OK);
    CHECK(text == NULL);
    int64_t count = 0;
    CHECK_INT(meta_repo_count(m, &count), BERTH_OK);
    CHECK_INT(count, 2);
    int64_t blob_id;
    CHECK_INT(meta_blob_upsert(m, "sha256:00", 5, 1000, &blob_id), BERTH_OK);
    CHECK_INT(meta_blob_upsert(m, "sha256:00", 6, 1000, &blob_id), BERTH_ECONFLICT);
    CHECK_INT(meta_blob_unlink(m, r.id, blob_id), BERTH_ENOTFOUND);
    CHECK_INT(meta_blob_link(m, r.id, blob_id), BERTH_OK);
    CHECK_INT(meta_blob_link(m, r.id, blob_id), BERTH_OK);
    CHECK_INT(meta_blob_unlink(m, r.id, blob_id), BERTH_OK);
    unit_meta_remove(m, root);
}

/* A database a newer berth migrated past this one's schema is refused. */
static void test_schema_newer(void)
{
    struct meta *m = unit_meta_new(root, sizeof(root));
    CHECK_INT(m->drv->set_schema_version(m->conn, NMIGRATIONS + 1), BERTH_OK);
    meta_close(m);
    char db[700];
    snprintf(db, sizeof(db), "%s/berth.db", root);
    m = NULL;
    CHECK_INT(unit_meta_open_db(db, &m), BERTH_EDB);
    CHECK(m == NULL);
    unit_meta_remove(NULL, root);
}

int main(void)
{
    RUN(test_meta_basics);
    RUN(test_schema_newer);
    return unit_report("test_meta");
}
