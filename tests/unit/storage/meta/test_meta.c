/* Unit tests for storage/meta/meta.c and the simpler queries: connections,
 * migrations (a newer schema is refused), repositories and blob rows.
 * Includes meta.c to reach NMIGRATIONS and the driver. */
#include "unit.h"
#include "unit_meta.h"

#include "common/str.h"

#include "storage/meta/meta.c"

static char root[512]; /* the running test's database directory */

static void test_meta_basics(void)
{
    struct meta *m = unit_meta_new(root, sizeof(root));
    CHECK(m != NULL);
    /* core, media types, auth, scanning, previews, pull-time exclusions,
     * creation templates, lifecycle policy times, storage classes, the pull-through
     * cache, signing, lifecycle transitions, the archived manifests' index, the
     * replication queue, the archive tier, pending signatures, leases, the
     * garbage collection history, activity over time, shared upload state, the
     * replication queue's index of copies still tried */
    CHECK_INT(meta_schema_version(m), 26);
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

struct summaries {
    char names[8][NAMES_REPO_MAX + 1];
    struct meta_repo_summary rows[8];
    int n;
};

static int take_summary(void *arg, const struct meta_repo_summary *s)
{
    struct summaries *out = arg;
    if (out->n >= 8) {
        return 1;
    }
    snprintf(out->names[out->n], sizeof(out->names[0]), "%s", s->repo.name);
    out->rows[out->n++] = *s;
    return 0;
}

static void add_manifest(struct meta *m, int64_t repo, const char *digest, int64_t pushed,
                         int64_t *id)
{
    int64_t blob;
    CHECK_INT(meta_blob_upsert(m, digest, 100, pushed, &blob), BERTH_OK);
    CHECK_INT(meta_blob_link(m, repo, blob), BERTH_OK);
    struct meta_manifest mf;
    memset(&mf, 0, sizeof(mf));
    mf.repo_id = repo;
    mf.blob_id = blob;
    snprintf(mf.digest, sizeof(mf.digest), "%s", digest);
    snprintf(mf.media_type, sizeof(mf.media_type), "application/vnd.oci.image.manifest.v1+json");
    mf.size = 100;
    mf.pushed_at = pushed;
    CHECK_INT(meta_manifest_insert(m, &mf, NULL, id), BERTH_OK);
}

/* The console's list: figures per repository, a name filter with LIKE's
 * characters taken literally, every order both ways with ties by name. */
static void test_repo_summaries(void)
{
    struct meta *m = unit_meta_new(root, sizeof(root));
    CHECK(m != NULL);
    struct meta_repo a, b, c;
    CHECK_INT(meta_repo_create(m, "team/a", 1000, &a), BERTH_OK);
    CHECK_INT(meta_repo_create(m, "team/b_x", 1000, &b), BERTH_OK);
    CHECK_INT(meta_repo_create(m, "other", 1000, &c), BERTH_OK);
    CHECK_INT(meta_repo_set_text(m, c.id, META_REPO_POLICY, "{}"), BERTH_OK);
    int64_t m1, m2, m3;
    add_manifest(m, a.id, "sha256:01", 5000, &m1);
    add_manifest(m, a.id, "sha256:02", 7000, &m2);
    add_manifest(m, b.id, "sha256:03", 6000, &m3);
    int64_t big;
    CHECK_INT(meta_blob_upsert(m, "sha256:ff", 100000, 1000, &big), BERTH_OK);
    CHECK_INT(meta_blob_link(m, b.id, big), BERTH_OK);
    CHECK_INT(meta_tag_set(m, a.id, "v1", m1, 5000, NULL), BERTH_OK);
    CHECK_INT(meta_manifest_note_pull(m, m3, 9000, 0), BERTH_OK);

    struct summaries s = {0};
    CHECK_INT(meta_repo_summaries(m, NULL, META_REPO_SORT_NAME, false, take_summary, &s), BERTH_OK);
    CHECK_INT(s.n, 3);
    CHECK_STR(s.names[0], "other");
    CHECK_STR(s.names[1], "team/a");
    CHECK(s.rows[0].has_policy && !s.rows[1].has_policy);
    CHECK_INT(s.rows[1].images, 2);
    CHECK_INT(s.rows[1].tags, 1);
    CHECK_INT(s.rows[1].size, 200);
    CHECK_INT(s.rows[1].pushed_at, 7000);
    CHECK_INT(s.rows[1].pulled_at, 0);
    CHECK_INT(s.rows[2].size, 100100);
    CHECK_INT(s.rows[2].pulled_at, 9000);
    CHECK_INT(s.rows[0].images + s.rows[0].tags + s.rows[0].size + s.rows[0].pushed_at, 0);

    memset(&s, 0, sizeof(s));
    CHECK_INT(meta_repo_summaries(m, "", META_REPO_SORT_SIZE, true, take_summary, &s), BERTH_OK);
    CHECK_STR(s.names[0], "team/b_x");
    CHECK_STR(s.names[2], "other");
    memset(&s, 0, sizeof(s));
    CHECK_INT(meta_repo_summaries(m, NULL, META_REPO_SORT_PUSHED, false, take_summary, &s),
              BERTH_OK);
    CHECK_STR(s.names[0], "other");
    CHECK_STR(s.names[1], "team/b_x");
    memset(&s, 0, sizeof(s));
    CHECK_INT(meta_repo_summaries(m, NULL, META_REPO_SORT_IMAGES, true, take_summary, &s),
              BERTH_OK);
    CHECK_STR(s.names[0], "team/a");
    memset(&s, 0, sizeof(s));
    CHECK_INT(meta_repo_summaries(m, NULL, META_REPO_SORT_NAME, true, take_summary, &s), BERTH_OK);
    CHECK_STR(s.names[0], "team/b_x");
    /* ties (no tags, no pulls) fall back to the name */
    memset(&s, 0, sizeof(s));
    CHECK_INT(meta_repo_summaries(m, NULL, META_REPO_SORT_PULLED, false, take_summary, &s),
              BERTH_OK);
    CHECK_STR(s.names[0], "other");
    CHECK_STR(s.names[1], "team/a");
    CHECK_STR(s.names[2], "team/b_x");

    /* the filter: a substring; '_' and '%' are literal */
    memset(&s, 0, sizeof(s));
    CHECK_INT(meta_repo_summaries(m, "team/", META_REPO_SORT_NAME, false, take_summary, &s),
              BERTH_OK);
    CHECK_INT(s.n, 2);
    memset(&s, 0, sizeof(s));
    CHECK_INT(meta_repo_summaries(m, "b_", META_REPO_SORT_NAME, false, take_summary, &s), BERTH_OK);
    CHECK_INT(s.n, 1);
    memset(&s, 0, sizeof(s));
    CHECK_INT(meta_repo_summaries(m, "a_", META_REPO_SORT_NAME, false, take_summary, &s), BERTH_OK);
    CHECK_INT(s.n, 0);
    memset(&s, 0, sizeof(s));
    CHECK_INT(meta_repo_summaries(m, "%", META_REPO_SORT_NAME, false, take_summary, &s), BERTH_OK);
    CHECK_INT(s.n, 0);
    CHECK_INT(meta_repo_summaries(m, NULL, META_REPO_SORT_COUNT, false, take_summary, &s),
              BERTH_EINVAL);
    unit_meta_remove(m, root);
}

/* meta_blob_archived_only: per repository, true only when manifests use
 * the blob and every one of them is archived. */
static void test_blob_archived_only(void)
{
    struct meta *m = unit_meta_new(root, sizeof(root));
    struct meta_repo a, b;
    CHECK_INT(meta_repo_create(m, "a", 1000, &a), BERTH_OK);
    CHECK_INT(meta_repo_create(m, "b", 1000, &b), BERTH_OK);
    int64_t one, two, three;
    add_manifest(m, a.id, "sha256:01", 1000, &one);
    add_manifest(m, a.id, "sha256:02", 1000, &two);
    add_manifest(m, b.id, "sha256:01", 1000, &three);
    CHECK_INT(meta_manifest_ref_add(m, one, "sha256:aa", META_REF_BLOB, NULL), BERTH_OK);
    CHECK_INT(meta_manifest_ref_add(m, one, "sha256:cc", META_REF_BLOB, NULL), BERTH_OK);
    CHECK_INT(meta_manifest_ref_add(m, two, "sha256:cc", META_REF_BLOB, NULL), BERTH_OK);
    CHECK_INT(meta_manifest_ref_add(m, three, "sha256:aa", META_REF_BLOB, NULL), BERTH_OK);
    bool archived = true;
    CHECK_INT(meta_blob_archived_only(m, a.id, "sha256:aa", &archived), BERTH_OK);
    CHECK(!archived);
    CHECK_INT(meta_manifest_set_storage_class(m, a.id, one, META_STORAGE_ARCHIVE, 2000, 0),
              BERTH_OK);
    CHECK_INT(meta_blob_archived_only(m, a.id, "sha256:aa", &archived), BERTH_OK);
    CHECK(archived);
    /* shared with an active image of the repository */
    CHECK_INT(meta_blob_archived_only(m, a.id, "sha256:cc", &archived), BERTH_OK);
    CHECK(!archived);
    /* used by no manifest */
    CHECK_INT(meta_blob_archived_only(m, a.id, "sha256:dd", &archived), BERTH_OK);
    CHECK(!archived);
    /* another repository's images are its own business */
    CHECK_INT(meta_blob_archived_only(m, b.id, "sha256:aa", &archived), BERTH_OK);
    CHECK(!archived);
    CHECK_INT(meta_manifest_set_storage_class(m, a.id, two, META_STORAGE_ARCHIVE, 2000, 0),
              BERTH_OK);
    CHECK_INT(meta_blob_archived_only(m, a.id, "sha256:cc", &archived), BERTH_OK);
    CHECK(archived);
    CHECK_INT(meta_manifest_set_storage_class(m, a.id, one, META_STORAGE_STANDARD, 3000, 0),
              BERTH_OK);
    CHECK_INT(meta_blob_archived_only(m, a.id, "sha256:aa", &archived), BERTH_OK);
    CHECK(!archived);
    unit_meta_remove(m, root);
}

/* Shared upload state: part numbers never repeat and the first
 * multipart upload recorded stays; a commit or delete from a generation
 * another commit moved on from is refused. */
static void test_upload_state(void)
{
    struct meta *m = unit_meta_new(root, sizeof(root));
    struct meta_repo r;
    CHECK_INT(meta_repo_create(m, "a", 1000, &r), BERTH_OK);
    struct meta_upload u = {.repo_id = r.id, .alg = DIGEST_SHA256, .created_at = 1000};
    str_copy(u.uuid, sizeof(u.uuid), "0123456789abcdef0123456789abcdef");
    CHECK_INT(meta_upload_insert(m, &u), BERTH_OK);
    struct meta_upload row;
    struct meta_upload_state st;
    CHECK_INT(meta_upload_state_get(m, u.uuid, &row, &st), BERTH_OK);
    CHECK_INT(st.gen, 0);
    CHECK_STR(st.mpu, "");
    CHECK(st.hash_state == NULL && st.stage_state == NULL);
    CHECK_INT(row.size, 0);
    meta_upload_state_fini(&st);
    int64_t n = 0;
    char mpu[META_MPU_MAX];
    CHECK_INT(meta_upload_next_part(m, u.uuid, "first", &n, mpu), BERTH_OK);
    CHECK_INT(n, 1);
    CHECK_STR(mpu, "first");
    CHECK_INT(meta_upload_next_part(m, u.uuid, "second", &n, mpu), BERTH_OK);
    CHECK_INT(n, 2);
    CHECK_STR(mpu, "first");
    CHECK_INT(meta_upload_state_save(m, u.uuid, 0, 77, "h1", "s1", 2000), BERTH_OK);
    /* a second writer that loaded generation 0 too */
    CHECK_INT(meta_upload_state_save(m, u.uuid, 0, 99, "h2", "s2", 2001), BERTH_ERANGE);
    CHECK_INT(meta_upload_state_get(m, u.uuid, &row, &st), BERTH_OK);
    CHECK_INT(st.gen, 1);
    CHECK_INT(row.size, 77);
    CHECK_INT(row.updated_at, 2000);
    CHECK_STR(st.hash_state, "h1");
    CHECK_STR(st.stage_state, "s1");
    meta_upload_state_fini(&st);
    CHECK_INT(meta_upload_get(m, u.uuid, &row), BERTH_OK);
    CHECK_INT(row.size, 77);
    CHECK_INT(meta_upload_delete_at(m, u.uuid, 0), BERTH_ERANGE);
    CHECK_INT(meta_upload_delete_at(m, u.uuid, 1), BERTH_OK);
    CHECK_INT(meta_upload_delete_at(m, u.uuid, 1), BERTH_ENOTFOUND);
    CHECK_INT(meta_upload_state_save(m, u.uuid, 1, 1, NULL, NULL, 1), BERTH_ENOTFOUND);
    CHECK_INT(meta_upload_next_part(m, u.uuid, "x", &n, mpu), BERTH_ENOTFOUND);
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

static void policy_of(void *arg, const struct meta_auth_row *row)
{
    str_copy(arg, 2048, row->policy != NULL ? row->policy : "");
}

/* Migration 26: identity policies stored from the pull and push sets gain
 * ecr:BatchImportUpstreamImage; another policy is left as it was. */
static void test_migration_import_action(void)
{
    static const char pull_policy[] =
        "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":["
        "\"ecr:BatchCheckLayerAvailability\",\"ecr:BatchGetImage\",\"ecr:GetDownloadUrlForLayer\","
        "\"ecr:DescribeImages\",\"ecr:ListImages\"],\"Resource\":\"hub/*\"}]}";
    static const char other_policy[] =
        "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":["
        "\"ecr:GetDownloadUrlForLayer\"],\"Resource\":\"*\"}]}";
    struct meta *m = unit_meta_new(root, sizeof(root));
    CHECK_INT(meta_key_create(m, "puller", pull_policy, "pull:hub/*", true, "AKIDPULLER0000000001",
                              "secret-one", 1),
              BERTH_OK);
    CHECK_INT(meta_key_create(m, "reader", other_policy, "ecr:GetDownloadUrlForLayer", true,
                              "AKIDREADER0000000001", "secret-two", 1),
              BERTH_OK);
    CHECK_INT(m->drv->set_schema_version(m->conn, 25), BERTH_OK);
    meta_close(m);
    char db[700];
    snprintf(db, sizeof(db), "%s/berth.db", root);
    m = NULL;
    CHECK_INT(unit_meta_open_db(db, &m), BERTH_OK);
    if (m == NULL) {
        return;
    }
    CHECK_INT(meta_schema_version(m), NMIGRATIONS);
    char got[2048];
    CHECK_INT(meta_auth_lookup(m, "AKIDPULLER0000000001", NULL, policy_of, got), BERTH_OK);
    CHECK(strstr(got, "\"ecr:GetDownloadUrlForLayer\",\"ecr:BatchImportUpstreamImage\","
                      "\"ecr:DescribeImages\"") != NULL);
    CHECK_INT(meta_auth_lookup(m, "AKIDREADER0000000001", NULL, policy_of, got), BERTH_OK);
    CHECK(strcmp(got, other_policy) == 0);
    unit_meta_remove(m, root);
}

int main(void)
{
    RUN(test_meta_basics);
    RUN(test_repo_summaries);
    RUN(test_blob_archived_only);
    RUN(test_upload_state);
    RUN(test_schema_newer);
    RUN(test_migration_import_action);
    return unit_report("test_meta");
}
