/* Unit tests for the store: metadata, uploads (incl. restart), registry
 * rules (references, immutability, deletes, referrers), trash recovery.
 * Includes storage/meta/meta.c to reach NMIGRATIONS and the driver. */
#include "unit.h"
#include "unit_store.h"

#include "storage/meta/meta.c"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/timeutil.h"

static char root[UNIT_ROOT_MAX]; /* the running test's store */

static void test_meta_basics(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    struct meta *m = store_meta(st);
    CHECK(m != NULL);
    CHECK_INT(meta_schema_version(m), 5); /* core, media types, auth, scanning, previews */
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
    unit_store_remove(st, root);
}

/* A database a newer berth migrated past this one's schema is refused,
 * by the connection and by the store. */
static void test_schema_newer(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    store_close(st);
    char db[700];
    snprintf(db, sizeof(db), "%s/berth.db", root);
    struct meta *m = NULL;
    CHECK_INT(meta_open(db, false, &m), BERTH_OK);
    CHECK_INT(m->drv->set_schema_version(m->conn, NMIGRATIONS + 1), BERTH_OK);
    meta_close(m);
    m = NULL;
    CHECK_INT(meta_open(db, false, &m), BERTH_EDB);
    CHECK(m == NULL);
    struct store_options opt = {.root = root, .manifest_max = 4 << 20};
    st = NULL;
    CHECK_INT(store_open(&opt, &st), BERTH_EDB);
    CHECK(st == NULL);
    unit_store_remove(NULL, root);
}

static void test_uploads(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    struct meta_repo r;
    struct registry_status s;
    CHECK_INT(registry_repo(st, "up", true, &r, &s), BERTH_OK);
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
    CHECK_INT(registry_blob_stat(st, "up", &want, &b, &s), BERTH_OK);

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

static enum berth_err put(struct store *st, const char *repo, const char *body,
                          const char *const *tags, size_t ntags, bool fail_if_same,
                          struct registry_put_result *out, struct registry_status *s)
{
    struct registry_put in = {.repo = repo,
                              .body = body,
                              .len = strlen(body),
                              .content_type = NULL,
                              .tags = tags,
                              .tag_count = ntags,
                              .create_repo = true,
                              .fail_if_same = fail_if_same};
    return registry_manifest_put(st, &in, out, s);
}

static void test_registry_rules(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    struct registry_status s;
    struct registry_put_result res;
    struct digest cfg = unit_push_blob(st, "img", "{}");
    struct digest layer;
    digest_buffer(DIGEST_SHA256, "layer", 5, &layer);
    char man[1024];
    unit_image_manifest(man, sizeof(man), &cfg, 2, &layer, 5);
    const char *latest[] = {"latest"};

    /* layer not pushed yet */
    CHECK_INT(put(st, "img", man, latest, 1, false, &res, &s), BERTH_ENOTFOUND);
    CHECK_INT(s.reason, REG_LAYERS_MISSING);
    CHECK_STR(s.digest, layer.str);
    /* pushed to another repository only: still missing here */
    unit_push_blob(st, "elsewhere", "layer");
    CHECK_INT(put(st, "img", man, latest, 1, false, &res, &s), BERTH_ENOTFOUND);
    struct meta_blob mb;
    CHECK_INT(registry_blob_stat(st, "img", &layer, &mb, &s), BERTH_ENOTFOUND);
    CHECK_INT(s.reason, REG_BLOB_UNKNOWN);
    /* mount it from there, then the push works */
    CHECK_INT(registry_blob_mount(st, "img", &layer, "elsewhere", &mb, &s), BERTH_OK);
    CHECK_INT(put(st, "img", man, latest, 1, false, &res, &s), BERTH_OK);
    CHECK(res.created);
    struct digest md = res.digest;

    /* same again: fine for OCI, REG_IMAGE_EXISTS for ECR's PutImage */
    CHECK_INT(put(st, "img", man, latest, 1, false, &res, &s), BERTH_OK);
    CHECK(!res.created);
    CHECK_INT(put(st, "img", man, latest, 1, true, &res, &s), BERTH_EEXIST);
    CHECK_INT(s.reason, REG_IMAGE_EXISTS);

    /* a wrong expected digest */
    struct registry_put in = {.repo = "img", .body = man, .len = strlen(man), .expected = &cfg};
    CHECK_INT(registry_manifest_put(st, &in, &res, &s), BERTH_EDIGEST);
    CHECK_INT(s.reason, REG_DIGEST_INVALID);

    struct meta_manifest mf;
    CHECK_INT(registry_manifest_get(st, "img", "latest", &mf, &s), BERTH_OK);
    CHECK_STR(mf.digest, md.str);
    CHECK_INT(mf.image_size, 5);
    CHECK_INT(registry_manifest_get(st, "img", md.str, &mf, &s), BERTH_OK);
    CHECK_INT(registry_manifest_get(st, "img", "nope", &mf, &s), BERTH_ENOTFOUND);
    CHECK_INT(s.reason, REG_MANIFEST_UNKNOWN);
    CHECK_INT(registry_manifest_get(st, "nope", "latest", &mf, &s), BERTH_ENOTFOUND);
    CHECK_INT(s.reason, REG_REPO_UNKNOWN);
    CHECK_INT(registry_manifest_get(st, "img", "sha256:zz", &mf, &s), BERTH_EINVAL);
    CHECK_INT(s.reason, REG_DIGEST_INVALID);

    /* immutability: the tag cannot move to a different image */
    struct meta *m = store_meta(st);
    struct meta_repo r;
    CHECK_INT(meta_repo_get(m, "img", &r), BERTH_OK);
    CHECK_INT(meta_repo_set_mutability(m, r.id, META_IMMUTABLE), BERTH_OK);
    struct digest layer2 = unit_push_blob(st, "img", "layr2");
    char man2[1024];
    unit_image_manifest(man2, sizeof(man2), &cfg, 2, &layer2, 5);
    CHECK_INT(put(st, "img", man2, latest, 1, false, &res, &s), BERTH_EDENIED);
    CHECK_INT(s.reason, REG_TAG_IMMUTABLE);
    CHECK(strstr(s.message, "latest") != NULL);
    const char *v2[] = {"v2"};
    CHECK_INT(put(st, "img", man2, v2, 1, false, &res, &s), BERTH_OK);
    CHECK(!registry_tag_is_immutable(META_IMMUTABLE_WITH_EXCLUSION,
                                     "[{\"filterType\":\"WILDCARD\",\"filter\":\"dev-*\"}]",
                                     "dev-1"));
    CHECK(registry_tag_is_immutable(META_IMMUTABLE_WITH_EXCLUSION,
                                    "[{\"filterType\":\"WILDCARD\",\"filter\":\"dev-*\"}]",
                                    "prod"));
    CHECK(registry_tag_is_immutable(META_MUTABLE_WITH_EXCLUSION,
                                    "[{\"filterType\":\"WILDCARD\",\"filter\":\"release-*\"}]",
                                    "release-1"));
    CHECK(!registry_tag_is_immutable(META_MUTABLE_WITH_EXCLUSION,
                                     "[{\"filterType\":\"WILDCARD\",\"filter\":\"release-*\"}]",
                                     "latest"));
    CHECK(!registry_tag_is_immutable(META_MUTABLE, NULL, "x"));
    /* exclusions, several tags per push: "dev-*" tags move, others do not,
     * and a refused push moves none of its tags */
    CHECK_INT(meta_repo_set_mutability(m, r.id, META_IMMUTABLE_WITH_EXCLUSION), BERTH_OK);
    CHECK_INT(meta_repo_set_text(m, r.id, META_REPO_MUTABILITY_FILTERS,
                                 "[{\"filterType\":\"WILDCARD\",\"filter\":\"dev-*\"}]"),
              BERTH_OK);
    const char *dev[] = {"dev-1", "dev-2"};
    CHECK_INT(put(st, "img", man, dev, 2, false, &res, &s), BERTH_OK);
    CHECK_INT(put(st, "img", man2, dev, 2, false, &res, &s), BERTH_OK);
    struct digest md2 = res.digest;
    CHECK_INT(registry_manifest_get(st, "img", "dev-2", &mf, &s), BERTH_OK);
    CHECK_STR(mf.digest, md2.str);
    const char *dev_and_v2[] = {"dev-1", "v2"}; /* v2 is on man2 */
    CHECK_INT(put(st, "img", man, dev_and_v2, 2, false, &res, &s), BERTH_EDENIED);
    CHECK_INT(s.reason, REG_TAG_IMMUTABLE);
    CHECK(strstr(s.message, "'v2'") != NULL);
    CHECK_INT(registry_manifest_get(st, "img", "dev-1", &mf, &s), BERTH_OK);
    CHECK_STR(mf.digest, md2.str);
    /* a tag already on the image is no move, immutable or not */
    const char *v2_again[] = {"v2", "dev-1"};
    CHECK_INT(put(st, "img", man2, v2_again, 2, true, &res, &s), BERTH_EEXIST);
    CHECK_INT(s.reason, REG_IMAGE_EXISTS);
    CHECK_INT(meta_repo_set_mutability(m, r.id, META_MUTABLE), BERTH_OK);

    /* an index needs its children in the repository */
    char idx[1024];
    snprintf(idx, sizeof(idx),
             "{\"schemaVersion\":2,\"mediaType\":\"" MANIFEST_OCI_INDEX "\",\"manifests\":["
             "{\"mediaType\":\"" MANIFEST_OCI "\",\"digest\":\"%s\",\"size\":%zu}]}",
             md.str, strlen(man));
    const char *multi[] = {"multi"};
    CHECK_INT(put(st, "elsewhere", idx, multi, 1, false, &res, &s), BERTH_ENOTFOUND);
    CHECK_INT(s.reason, REG_CHILDREN_MISSING);
    CHECK_INT(put(st, "img", idx, multi, 1, false, &res, &s), BERTH_OK);
    CHECK(res.is_index);
    /* the child cannot be deleted out from under the index when asked */
    CHECK_INT(registry_manifest_delete(st, "img", md.str, true, &s), BERTH_ECONFLICT);
    CHECK_INT(s.reason, REG_REFERENCED_BY_INDEX);

    /* tag delete removes only the tag */
    CHECK_INT(registry_manifest_delete(st, "img", "latest", false, &s), BERTH_OK);
    CHECK_INT(registry_manifest_get(st, "img", "latest", &mf, &s), BERTH_ENOTFOUND);
    CHECK_INT(registry_manifest_get(st, "img", md.str, &mf, &s), BERTH_OK);
    CHECK_INT(registry_manifest_delete(st, "img", "latest", false, &s), BERTH_ENOTFOUND);
    /* digest delete removes the manifest and its tags */
    const char *tags3[] = {"a", "b"};
    CHECK_INT(put(st, "img", man, tags3, 2, false, &res, &s), BERTH_OK);
    CHECK_INT(registry_manifest_delete(st, "img", md.str, false, &s), BERTH_OK);
    CHECK_INT(registry_manifest_get(st, "img", "a", &mf, &s), BERTH_ENOTFOUND);
    CHECK_INT(registry_manifest_get(st, "img", md.str, &mf, &s), BERTH_ENOTFOUND);

    /* blob delete unlinks from this repository only */
    CHECK_INT(registry_blob_delete(st, "img", &layer, &s), BERTH_OK);
    CHECK_INT(registry_blob_stat(st, "img", &layer, &mb, &s), BERTH_ENOTFOUND);
    CHECK_INT(registry_blob_stat(st, "elsewhere", &layer, &mb, &s), BERTH_OK);
    CHECK_INT(registry_blob_delete(st, "img", &layer, &s), BERTH_ENOTFOUND);
    /* anonymous mount finds it in any repository that has it */
    CHECK_INT(registry_blob_mount(st, "img", &layer, NULL, &mb, &s), BERTH_OK);
    /* but not once it is deleted everywhere (the row waits for GC) */
    CHECK_INT(registry_blob_delete(st, "img", &layer, &s), BERTH_OK);
    CHECK_INT(registry_blob_delete(st, "elsewhere", &layer, &s), BERTH_OK);
    CHECK_INT(registry_blob_mount(st, "img", &layer, NULL, &mb, &s), BERTH_ENOTFOUND);
    struct digest missing;
    digest_buffer(DIGEST_SHA256, "missing", 7, &missing);
    CHECK_INT(registry_blob_mount(st, "img", &missing, NULL, &mb, &s), BERTH_ENOTFOUND);
    CHECK_INT(s.reason, REG_BLOB_UNKNOWN);
    unit_store_remove(st, root);
}

/* A pull of a manifest pulled within the minute writes nothing, so it does
 * not wait for the write lock that another connection holds (SQLite's busy
 * timeout is 10 s). */
static void test_note_pull_skips_lock(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    struct registry_status s;
    struct registry_put_result res;
    struct digest cfg = unit_push_blob(st, "pulls", "{}");
    struct digest layer = unit_push_blob(st, "pulls", "layer");
    char man[1024];
    unit_image_manifest(man, sizeof(man), &cfg, 2, &layer, 5);
    const char *tags[] = {"v1"};
    CHECK_INT(put(st, "pulls", man, tags, 1, false, &res, &s), BERTH_OK);
    struct meta_manifest mf;
    CHECK_INT(registry_manifest_get(st, "pulls", "v1", &mf, &s), BERTH_OK);
    CHECK_INT(mf.last_pulled_at, 0);
    registry_manifest_note_pull(st, &mf);
    CHECK_INT(registry_manifest_get(st, "pulls", "v1", &mf, &s), BERTH_OK);
    CHECK(mf.last_pulled_at > 0);

    char db[700];
    snprintf(db, sizeof(db), "%s/berth.db", root);
    struct meta *writer = NULL;
    CHECK_INT(meta_open(db, false, &writer), BERTH_OK);
    CHECK_INT(meta_begin(writer), BERTH_OK);
    int64_t t0 = time_mono_ns();
    registry_manifest_note_pull(st, &mf);
    int64_t took_ms = (time_mono_ns() - t0) / 1000000;
    CHECK(took_ms < 2000);
    meta_rollback(writer);
    meta_close(writer);
    unit_store_remove(st, root);
}

static int count_cb(void *arg, const struct meta_manifest *mf, const char *annotations)
{
    (void)mf;
    (void)annotations;
    (*(int *)arg)++;
    return 0;
}

static void test_referrers(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    struct registry_status s;
    struct registry_put_result res;
    struct digest empty = unit_push_blob(st, "ref", "{}");
    struct digest subject;
    digest_buffer(DIGEST_SHA256, "not pushed", 10, &subject);
    char art[1024];
    snprintf(art, sizeof(art),
             "{\"schemaVersion\":2,\"mediaType\":\"" MANIFEST_OCI "\","
             "\"artifactType\":\"application/x.sig\","
             "\"config\":{\"mediaType\":\"application/vnd.oci.empty.v1+json\","
             "\"digest\":\"%s\",\"size\":2},\"layers\":[],"
             "\"subject\":{\"mediaType\":\"" MANIFEST_OCI "\",\"digest\":\"%s\",\"size\":1}}",
             empty.str, subject.str);
    /* a subject that does not exist yet is accepted */
    CHECK_INT(put(st, "ref", art, NULL, 0, false, &res, &s), BERTH_OK);
    CHECK(res.has_subject);
    CHECK_STR(res.subject, subject.str);
    int n = 0;
    CHECK_INT(registry_referrers(st, "ref", &subject, NULL, count_cb, &n, &s), BERTH_OK);
    CHECK_INT(n, 1);
    n = 0;
    CHECK_INT(registry_referrers(st, "ref", &subject, "application/x.sig", count_cb, &n, &s),
              BERTH_OK);
    CHECK_INT(n, 1);
    n = 0;
    CHECK_INT(registry_referrers(st, "ref", &subject, "other", count_cb, &n, &s), BERTH_OK);
    CHECK_INT(n, 0);
    CHECK_INT(registry_referrers(st, "unknown-repo", &subject, NULL, count_cb, &n, &s), BERTH_OK);
    CHECK_INT(n, 0);
    unit_store_remove(st, root);
}

static void test_trash_recovery(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    struct digest kept = unit_push_blob(st, "trash", "kept");
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

int main(void)
{
    RUN(test_meta_basics);
    RUN(test_schema_newer);
    RUN(test_uploads);
    RUN(test_registry_rules);
    RUN(test_note_pull_skips_lock);
    RUN(test_referrers);
    RUN(test_trash_recovery);
    return unit_report("test_store");
}
