/* Unit tests for storage/registry/registry.c: manifest pushes with their
 * reference checks, tag immutability, deletes, mounts, pulls that write
 * nothing, referrers; on a real store in a temporary directory. */
#include "unit.h"
#include "unit_meta.h"
#include "unit_registry.h"
#include "unit_fds.h"
#include "unit_lock.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "common/timeutil.h"

static char root[UNIT_ROOT_MAX]; /* the running test's store */

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
    /* a principal on the pull-time update exclusion list leaves it as it is */
    const char *scanner = "arn:aws:iam::000000000000:user/scanner";
    CHECK_INT(meta_pull_exclusion_add(store_meta(st), scanner, 1, 100), BERTH_OK);
    CHECK_INT(meta_pull_exclusion_add(store_meta(st), scanner, 2, 100), BERTH_EEXIST);
    registry_manifest_note_pull(st, &mf, scanner);
    CHECK_INT(registry_manifest_get(st, "pulls", "v1", &mf, &s), BERTH_OK);
    CHECK_INT(mf.last_pulled_at, 0);
    registry_manifest_note_pull(st, &mf, "arn:aws:iam::000000000000:user/dev");
    CHECK_INT(registry_manifest_get(st, "pulls", "v1", &mf, &s), BERTH_OK);
    CHECK(mf.last_pulled_at > 0);
    CHECK_INT(meta_pull_exclusion_remove(store_meta(st), scanner), BERTH_OK);
    CHECK_INT(meta_pull_exclusion_remove(store_meta(st), scanner), BERTH_ENOTFOUND);

    char db[700];
    snprintf(db, sizeof(db), "%s/berth.db", root);
    struct meta *writer = NULL;
    CHECK_INT(unit_meta_open_db(db, &writer), BERTH_OK);
    CHECK_INT(meta_begin(writer), BERTH_OK);
    int64_t t0 = time_mono_ns();
    registry_manifest_note_pull(st, &mf, NULL);
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

/* registry_blob_publish: a staged blob is published and linked (the
 * repository created), the stage gone; blob_stat sees it at once. */
static void test_blob_publish(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    struct registry_status s;
    const char data[] = "bundle layer";
    struct digest d;
    digest_buffer(DIGEST_SHA256, data, strlen(data), &d);
    struct meta_blob b = {0};
    CHECK_INT(registry_blob_stat(st, "imp/one", &d, &b, &s), BERTH_ENOTFOUND);
    char stage[BLOB_STAGE_NAME_MAX + 1];
    CHECK_INT(blob_stage_put(store_blobs(st), data, strlen(data), stage), BERTH_OK);
    CHECK_INT(registry_blob_publish(st, "imp/one", stage, &d, (int64_t)strlen(data), &b, &s),
              BERTH_OK);
    CHECK_STR(b.digest, d.str);
    CHECK_INT(b.size, (long long)strlen(data));
    uint64_t size;
    int64_t mtime;
    CHECK_INT(blob_stage_stat(store_blobs(st), stage, &size, &mtime), BERTH_ENOTFOUND);
    struct meta_blob got = {0};
    CHECK_INT(registry_blob_stat(st, "imp/one", &d, &got, &s), BERTH_OK);
    CHECK_INT(got.id, b.id);
    /* a second repository gets it by mount, the same row */
    CHECK_INT(registry_blob_mount(st, "imp/two", &d, NULL, &got, &s), BERTH_OK);
    CHECK_INT(got.id, b.id);
    unit_store_remove(st, root);
}

/* registry_blob_publish (pull-through cache, import, signing) links the
 * stage in under the blob's name and syncs its directory before it takes
 * the write lock: while another writer holds the lock, the file is there
 * already; the row comes once the lock is free. */
struct publisher {
    struct store *st;
    const char *stage;
    struct digest d;
    enum berth_err rc;
};

static void *publish_blob(void *arg)
{
    struct publisher *pb = arg;
    struct meta_blob b;
    struct registry_status s;
    pb->rc = registry_blob_publish(pb->st, "imp/locked", pb->stage, &pb->d, 11, &b, &s);
    return NULL;
}

static void test_blob_publish_links_before_the_lock(void)
{
    snprintf(root, sizeof(root), "%s", unit_tmpdir());
    struct store *st = unit_store_open_fsync(root, true);
    if (st == NULL) {
        return;
    }
    char stage[BLOB_STAGE_NAME_MAX + 1];
    struct publisher pb = {.st = st, .stage = stage};
    digest_buffer(DIGEST_SHA256, "locked blob", 11, &pb.d);
    CHECK_INT(blob_stage_put(store_blobs(st), "locked blob", 11, stage), BERTH_OK);
    char path[UNIT_ROOT_MAX + 200];
    snprintf(path, sizeof(path), "%s/blobs/sha256/%.2s/%s", root, digest_hex(&pb.d),
             digest_hex(&pb.d));

    struct unit_lock_holder hd;
    unit_lock_hold(&hd, st);
    pthread_t publisher;
    CHECK_INT(pthread_create(&publisher, NULL, publish_blob, &pb), 0);
    /* the file appears while the lock is still held (bounded wait: a
     * publication inside the lock would never show it here) */
    CHECK(unit_file_appears(path));
    struct registry_status s;
    struct meta_blob b;
    CHECK_INT(registry_blob_stat(st, "imp/locked", &pb.d, &b, &s), BERTH_ENOTFOUND);
    unit_lock_release(&hd);
    pthread_join(publisher, NULL);
    CHECK_INT(pb.rc, BERTH_OK);
    CHECK_INT(registry_blob_stat(st, "imp/locked", &pb.d, &b, &s), BERTH_OK);
    uint64_t size;
    int64_t mtime;
    CHECK_INT(blob_stage_stat(store_blobs(st), stage, &size, &mtime), BERTH_ENOTFOUND);
}

struct lookup {
    struct store *st;
    enum berth_err rc;
    struct registry_status s;
    struct meta_repo repo;
};

static void *lookup_repo(void *arg)
{
    struct lookup *l = arg;
    l->rc = registry_repo(l->st, "img", false, &l->repo, &l->s);
    return NULL;
}

/* A thread that cannot open its database connection (no descriptor left:
 * EMFILE) gets REG_UNAVAILABLE (503, retry), not REG_INTERNAL (500); once
 * descriptors are free it gets its connection and the answer. */
static void test_no_connection_is_unavailable(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    unit_push_blob(st, "img", "{}");
    struct lookup l = {.st = st};
    pthread_t t;
    if (!unit_fds_take(0)) {
        unit_fds_give_back();
        CHECK(!"cannot take the descriptors");
        unit_store_remove(st, root);
        return;
    }
    int started = pthread_create(&t, NULL, lookup_repo, &l);
    if (started == 0) {
        pthread_join(t, NULL);
    }
    unit_fds_give_back();
    CHECK_INT(started, 0);
    CHECK_INT(l.rc, BERTH_EUNAVAILABLE);
    CHECK_INT(l.s.reason, REG_UNAVAILABLE);
    CHECK_INT(l.s.err, BERTH_EUNAVAILABLE);
    memset(&l, 0, sizeof(l));
    l.st = st;
    CHECK_INT(pthread_create(&t, NULL, lookup_repo, &l), 0);
    pthread_join(t, NULL);
    CHECK_INT(l.rc, BERTH_OK);
    CHECK_STR(l.repo.name, "img");
    unit_store_remove(st, root);
}

int main(void)
{
    RUN(test_registry_rules);
    RUN(test_note_pull_skips_lock);
    RUN(test_referrers);
    RUN(test_blob_publish);
    RUN(test_blob_publish_links_before_the_lock);
    RUN(test_no_connection_is_unavailable);
    return unit_report("test_registry");
}
