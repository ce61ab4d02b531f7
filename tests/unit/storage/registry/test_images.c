/* Unit tests for the image listings of storage/meta/images.c and the ECR
 * image deletion rule registry_image_delete, on a real store in a
 * temporary directory. */
#include "unit.h"
#include "unit_registry.h"

static char root[UNIT_ROOT_MAX]; /* the running test's store */

/* An image of one config and one layer whose content is `layer`; returns
 * its digest. */
static struct digest put_image(struct store *st, const char *repo, const char *layer,
                               const char *const *tags, size_t ntags)
{
    struct digest cfg = unit_push_blob(st, repo, "{}");
    struct digest l = unit_push_blob(st, repo, layer);
    char body[1024];
    unit_image_manifest(body, sizeof(body), &cfg, 2, &l, strlen(layer));
    struct registry_put in = {
        .repo = repo, .body = body, .len = strlen(body), .tags = tags, .tag_count = ntags};
    struct registry_put_result res;
    struct registry_status s;
    CHECK_INT(registry_manifest_put(st, &in, &res, &s), BERTH_OK);
    return res.digest;
}

/* An index over the given children (all OCI image manifests). */
static struct digest put_index(struct store *st, const char *repo, const struct digest *children,
                               size_t n, const char *tag)
{
    char body[2048];
    size_t o = (size_t)snprintf(body, sizeof(body),
                                "{\"schemaVersion\":2,\"mediaType\":\"" MANIFEST_OCI_INDEX
                                "\",\"manifests\":[");
    for (size_t i = 0; i < n; i++) {
        o += (size_t)snprintf(body + o, sizeof(body) - o,
                              "%s{\"mediaType\":\"" MANIFEST_OCI "\",\"digest\":\"%s\","
                              "\"size\":100}",
                              i ? "," : "", children[i].str);
    }
    snprintf(body + o, sizeof(body) - o, "]}");
    const char *tags[] = {tag};
    struct registry_put in = {
        .repo = repo, .body = body, .len = strlen(body), .tags = tags, .tag_count = tag ? 1 : 0};
    struct registry_put_result res;
    struct registry_status s;
    CHECK_INT(registry_manifest_put(st, &in, &res, &s), BERTH_OK);
    return res.digest;
}

struct rows {
    char text[16][200];
    int count;
};

static int tag_row(void *arg, const char *tag, const char *digest)
{
    struct rows *r = arg;
    if (r->count < 16) {
        snprintf(r->text[r->count++], sizeof(r->text[0]), "%s=%.12s", tag, digest + 7);
    }
    return 0;
}

static int manifest_row(void *arg, const struct meta_manifest *mf)
{
    struct rows *r = arg;
    if (r->count < 16) {
        snprintf(r->text[r->count++], sizeof(r->text[0]), "%s", mf->digest);
    }
    return 0;
}

static void test_tag_listing(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    struct meta *m = store_meta(st);
    const char *ab[] = {"b", "a"};
    const char *c[] = {"c"};
    struct digest d1 = put_image(st, "list", "one", ab, 2);
    struct digest d2 = put_image(st, "list", "two", c, 1);
    struct meta_repo repo;
    CHECK_INT(meta_repo_get(m, "list", &repo), BERTH_OK);

    struct rows r = {.count = 0};
    bool more = true;
    CHECK_INT(meta_tag_list_digests(m, repo.id, NULL, 2, NULL, tag_row, &r, &more), BERTH_OK);
    CHECK_INT(r.count, 2);
    CHECK(more);
    char want[64];
    snprintf(want, sizeof(want), "a=%.12s", d1.str + 7);
    CHECK_STR(r.text[0], want);
    snprintf(want, sizeof(want), "b=%.12s", d1.str + 7);
    CHECK_STR(r.text[1], want);

    r.count = 0;
    CHECK_INT(meta_tag_list_digests(m, repo.id, "b", 2, NULL, tag_row, &r, &more), BERTH_OK);
    CHECK_INT(r.count, 1);
    CHECK(!more);
    snprintf(want, sizeof(want), "c=%.12s", d2.str + 7);
    CHECK_STR(r.text[0], want);

    /* limit 0 only says whether rows follow */
    r.count = 0;
    CHECK_INT(meta_tag_list_digests(m, repo.id, "a", 0, NULL, tag_row, &r, &more), BERTH_OK);
    CHECK_INT(r.count, 0);
    CHECK(more);
    CHECK_INT(meta_tag_list_digests(m, repo.id, "c", 0, NULL, tag_row, &r, &more), BERTH_OK);
    CHECK(!more);
    unit_store_remove(st, root);
}

static void test_manifest_listing(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    struct meta *m = store_meta(st);
    const char *t1[] = {"t1"};
    struct digest tagged = put_image(st, "mlist", "tagged", t1, 1);
    struct digest u1 = put_image(st, "mlist", "untagged-1", NULL, 0);
    struct digest u2 = put_image(st, "mlist", "untagged-2", NULL, 0);
    /* another repository's images never show up */
    put_image(st, "other", "elsewhere", NULL, 0);
    struct meta_repo repo;
    CHECK_INT(meta_repo_get(m, "mlist", &repo), BERTH_OK);

    struct rows r = {.count = 0};
    bool more = true;
    CHECK_INT(
        meta_manifest_list(m, repo.id, META_TAGS_ANY, NULL, NULL, 10, manifest_row, &r, &more),
        BERTH_OK);
    CHECK_INT(r.count, 3);
    CHECK(!more);
    CHECK(strcmp(r.text[0], r.text[1]) < 0 && strcmp(r.text[1], r.text[2]) < 0);

    r.count = 0;
    CHECK_INT(
        meta_manifest_list(m, repo.id, META_TAGS_TAGGED, NULL, NULL, 10, manifest_row, &r, &more),
        BERTH_OK);
    CHECK_INT(r.count, 1);
    CHECK_STR(r.text[0], tagged.str);

    r.count = 0;
    CHECK_INT(
        meta_manifest_list(m, repo.id, META_TAGS_UNTAGGED, NULL, NULL, 1, manifest_row, &r, &more),
        BERTH_OK);
    CHECK_INT(r.count, 1);
    CHECK(more);
    const char *first = strcmp(u1.str, u2.str) < 0 ? u1.str : u2.str;
    const char *second = strcmp(u1.str, u2.str) < 0 ? u2.str : u1.str;
    CHECK_STR(r.text[0], first);
    r.count = 0;
    CHECK_INT(
        meta_manifest_list(m, repo.id, META_TAGS_UNTAGGED, NULL, first, 1, manifest_row, &r, &more),
        BERTH_OK);
    CHECK_INT(r.count, 1);
    CHECK(!more);
    CHECK_STR(r.text[0], second);
    CHECK_INT(meta_manifest_list(m, repo.id, (enum meta_tag_status)7, NULL, NULL, 1, manifest_row,
                                 &r, &more),
              BERTH_EINVAL);

    int64_t count = -1;
    struct meta_manifest mf;
    CHECK_INT(meta_manifest_get(m, repo.id, tagged.str, &mf), BERTH_OK);
    CHECK_INT(meta_manifest_tag_count(m, mf.id, &count), BERTH_OK);
    CHECK_INT(count, 1);
    CHECK_INT(meta_manifest_get(m, repo.id, u1.str, &mf), BERTH_OK);
    CHECK_INT(meta_manifest_tag_count(m, mf.id, &count), BERTH_OK);
    CHECK_INT(count, 0);
    unit_store_remove(st, root);
}

static void test_sizes_and_media_types(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    struct meta *m = store_meta(st);
    struct digest small = put_image(st, "sizes", "12345", NULL, 0);
    struct digest big = put_image(st, "sizes", "1234567890", NULL, 0);
    struct digest children[] = {small, big};
    struct digest index = put_index(st, "sizes", children, 2, "multi");
    struct meta_repo repo;
    CHECK_INT(meta_repo_get(m, "sizes", &repo), BERTH_OK);
    struct meta_manifest mf;
    CHECK_INT(meta_manifest_get(m, repo.id, big.str, &mf), BERTH_OK);
    CHECK_INT(mf.image_size, 10);
    CHECK_INT(meta_manifest_get(m, repo.id, index.str, &mf), BERTH_OK);
    CHECK(mf.is_index);
    int64_t size = 0;
    CHECK_INT(meta_manifest_children_max_size(m, repo.id, mf.id, &size), BERTH_OK);
    CHECK_INT(size, 10);

    char mt[META_MEDIA_TYPE_MAX + 1];
    struct digest layer, cfg, unknown;
    digest_buffer(DIGEST_SHA256, "12345", 5, &layer);
    digest_buffer(DIGEST_SHA256, "{}", 2, &cfg);
    CHECK_INT(meta_blob_media_type(m, repo.id, layer.str, mt, sizeof(mt)), BERTH_OK);
    CHECK_STR(mt, "application/vnd.oci.image.layer.v1.tar");
    CHECK_INT(meta_blob_media_type(m, repo.id, cfg.str, mt, sizeof(mt)), BERTH_OK);
    CHECK_STR(mt, "application/vnd.oci.image.config.v1+json");
    /* pushed but referenced by no manifest: unknown */
    unknown = unit_push_blob(st, "sizes", "loose");
    CHECK_INT(meta_blob_media_type(m, repo.id, unknown.str, mt, sizeof(mt)), BERTH_OK);
    CHECK_STR(mt, "");
    /* known in one repository says nothing about another */
    struct meta_repo other;
    CHECK_INT(meta_repo_ensure(m, "sizes2", 1, &other), BERTH_OK);
    CHECK_INT(meta_blob_media_type(m, other.id, layer.str, mt, sizeof(mt)), BERTH_OK);
    CHECK_STR(mt, "");
    unit_store_remove(st, root);
}

struct removed {
    char text[8][200];
    int count;
};

static int removed_row(void *arg, const char *digest, const char *tag)
{
    struct removed *r = arg;
    if (r->count < 8) {
        snprintf(r->text[r->count++], sizeof(r->text[0]), "%.19s/%s", digest, tag ? tag : "-");
    }
    return 0;
}

static void test_image_delete(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    struct meta *m = store_meta(st);
    struct registry_status s;
    struct removed r = {.count = 0};
    const char *two[] = {"x", "y"};
    struct digest d = put_image(st, "del", "image-one", two, 2);
    struct meta_repo repo;
    CHECK_INT(meta_repo_get(m, "del", &repo), BERTH_OK);
    char want[64];

    /* removing one of two tags keeps the image */
    CHECK_INT(registry_image_delete(st, "del", "x", NULL, removed_row, &r, &s), BERTH_OK);
    CHECK_INT(r.count, 1);
    snprintf(want, sizeof(want), "%.19s/x", d.str);
    CHECK_STR(r.text[0], want);
    struct meta_manifest mf;
    CHECK_INT(meta_manifest_get(m, repo.id, d.str, &mf), BERTH_OK);
    CHECK_INT(registry_image_delete(st, "del", "x", NULL, removed_row, &r, &s), BERTH_ENOTFOUND);
    CHECK_INT(s.reason, REG_MANIFEST_UNKNOWN);

    /* tag and digest that disagree: nothing changes */
    struct digest wrong;
    digest_buffer(DIGEST_SHA256, "wrong", 5, &wrong);
    CHECK_INT(registry_image_delete(st, "del", "y", &wrong, removed_row, &r, &s), BERTH_ECONFLICT);
    CHECK_INT(s.reason, REG_TAG_DIGEST_MISMATCH);
    CHECK_INT(meta_manifest_get_by_tag(m, repo.id, "y", &mf), BERTH_OK);

    /* the last tag takes the image with it */
    r.count = 0;
    CHECK_INT(registry_image_delete(st, "del", "y", &d, removed_row, &r, &s), BERTH_OK);
    CHECK_INT(r.count, 1);
    CHECK_INT(meta_manifest_get(m, repo.id, d.str, &mf), BERTH_ENOTFOUND);

    /* by digest on condition: an image whose tags are not the ones seen
     * stays, untouched and unreported */
    const char *ab[] = {"a", "b"};
    struct digest d2 = put_image(st, "del", "image-two", ab, 2);
    CHECK_INT(meta_manifest_get(m, repo.id, d2.str, &mf), BERTH_OK);
    struct registry_image_seen seen = {.manifest_id = mf.id, .tags = ab, .tag_count = 1};
    bool changed = false;
    r.count = 0;
    CHECK_INT(registry_image_delete_unchanged(st, "del", &d2, &seen, removed_row, &r, &changed, &s),
              BERTH_OK);
    CHECK(changed);
    CHECK_INT(r.count, 0);
    CHECK_INT(meta_manifest_get_by_tag(m, repo.id, "a", &mf), BERTH_OK);
    seen.tag_count = 2;
    seen.manifest_id = mf.id + 1;
    CHECK_INT(registry_image_delete_unchanged(st, "del", &d2, &seen, removed_row, &r, &changed, &s),
              BERTH_OK);
    CHECK(changed);
    CHECK_INT(r.count, 0);

    /* by digest: the image and all its tags, each reported */
    r.count = 0;
    seen.manifest_id = mf.id;
    CHECK_INT(registry_image_delete_unchanged(st, "del", &d2, &seen, removed_row, &r, &changed, &s),
              BERTH_OK);
    CHECK(!changed);
    CHECK_INT(r.count, 2);
    snprintf(want, sizeof(want), "%.19s/a", d2.str);
    CHECK_STR(r.text[0], want);
    snprintf(want, sizeof(want), "%.19s/b", d2.str);
    CHECK_STR(r.text[1], want);
    CHECK_INT(meta_manifest_get_by_tag(m, repo.id, "b", &mf), BERTH_ENOTFOUND);

    /* an untagged image is reported by digest alone */
    struct digest d3 = put_image(st, "del", "image-three", NULL, 0);
    r.count = 0;
    CHECK_INT(registry_image_delete(st, "del", NULL, &d3, removed_row, &r, &s), BERTH_OK);
    CHECK_INT(r.count, 1);
    snprintf(want, sizeof(want), "%.19s/-", d3.str);
    CHECK_STR(r.text[0], want);

    /* a child of an index stays, by digest or by its last tag */
    const char *child_tag[] = {"child"};
    struct digest child = put_image(st, "del", "image-four", child_tag, 1);
    struct digest index = put_index(st, "del", &child, 1, "idx");
    r.count = 0;
    CHECK_INT(registry_image_delete(st, "del", NULL, &child, removed_row, &r, &s), BERTH_ECONFLICT);
    CHECK_INT(s.reason, REG_REFERENCED_BY_INDEX);
    CHECK_STR(s.digest, child.str);
    CHECK_INT(registry_image_delete(st, "del", "child", NULL, removed_row, &r, &s),
              BERTH_ECONFLICT);
    CHECK_INT(r.count, 0);
    CHECK_INT(meta_manifest_get_by_tag(m, repo.id, "child", &mf), BERTH_OK);
    /* once the index is gone the child can go */
    CHECK_INT(registry_image_delete(st, "del", "idx", NULL, removed_row, &r, &s), BERTH_OK);
    CHECK_INT(registry_image_delete(st, "del", "child", NULL, removed_row, &r, &s), BERTH_OK);
    CHECK_INT(meta_manifest_get(m, repo.id, index.str, &mf), BERTH_ENOTFOUND);
    CHECK_INT(meta_manifest_get(m, repo.id, child.str, &mf), BERTH_ENOTFOUND);

    CHECK_INT(registry_image_delete(st, "nope", "x", NULL, removed_row, &r, &s), BERTH_ENOTFOUND);
    CHECK_INT(s.reason, REG_REPO_UNKNOWN);
    unit_store_remove(st, root);
}

int main(void)
{
    RUN(test_tag_listing);
    RUN(test_manifest_listing);
    RUN(test_sizes_and_media_types);
    RUN(test_image_delete);
    return unit_report("test_meta_images");
}
