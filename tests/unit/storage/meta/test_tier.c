/* Unit tests for storage/meta/tier.c: the global rule of which blobs may move to the archive
 * tier (archived users only, in every repository; no manifest content; no repository linking
 * it without a manifest that uses it; not touched since archived unless quiet long enough),
 * the restoring marks and their end. Run on PostgreSQL too (label postgres). */
#include "unit.h"
#include "unit_meta.h"

#include <stdio.h>
#include <string.h>

#include "storage/meta/meta_tier.h"

static char root[512];

static int64_t add_blob(struct meta *m, int64_t repo, const char *digest, int64_t now)
{
    int64_t id = 0;
    CHECK_INT(meta_blob_upsert(m, digest, 100, now, &id), BERTH_OK);
    CHECK_INT(meta_blob_link(m, repo, id), BERTH_OK);
    return id;
}

static int64_t add_manifest(struct meta *m, int64_t repo, const char *digest, int64_t now,
                            const char *layer)
{
    int64_t blob = add_blob(m, repo, digest, now), id = 0;
    struct meta_manifest mf;
    memset(&mf, 0, sizeof(mf));
    mf.repo_id = repo;
    mf.blob_id = blob;
    snprintf(mf.digest, sizeof(mf.digest), "%s", digest);
    snprintf(mf.media_type, sizeof(mf.media_type), "application/vnd.oci.image.manifest.v1+json");
    mf.size = 100;
    mf.pushed_at = now;
    CHECK_INT(meta_manifest_insert(m, &mf, NULL, &id), BERTH_OK);
    CHECK_INT(meta_manifest_ref_add(m, id, layer, META_REF_BLOB, NULL), BERTH_OK);
    return id;
}

struct found {
    char digests[8][DIGEST_STR_MAX];
    int n;
};

static int collect(void *arg, const struct meta_blob *b)
{
    struct found *f = arg;
    if (f->n < 8) {
        snprintf(f->digests[f->n++], sizeof(f->digests[0]), "%s", b->digest);
    }
    return 0;
}

/* The candidates, as one string "d1,d2,". */
static const char *candidates(struct meta *m, int64_t quiet_before, char *out, size_t cap)
{
    struct found f = {.n = 0};
    CHECK_INT(meta_tier_candidates(m, 0, 100, quiet_before, collect, &f), BERTH_OK);
    out[0] = '\0';
    for (int i = 0; i < f.n; i++) {
        strncat(out, f.digests[i], cap - strlen(out) - 1);
        strncat(out, ",", cap - strlen(out) - 1);
    }
    return out;
}

static void archive(struct meta *m, int64_t repo, int64_t id, int64_t now)
{
    CHECK_INT(meta_manifest_set_storage_class(m, repo, id, META_STORAGE_ARCHIVE, now, 0), BERTH_OK);
}

static void test_rule(void)
{
    struct meta *m = unit_meta_new(root, sizeof(root));
    struct meta_repo a, b;
    CHECK_INT(meta_repo_create(m, "a", 1000, &a), BERTH_OK);
    CHECK_INT(meta_repo_create(m, "b", 1000, &b), BERTH_OK);
    int64_t la = add_blob(m, a.id, "sha256:1a", 1000);
    int64_t lb = add_blob(m, a.id, "sha256:1b", 1000);
    add_blob(m, a.id, "sha256:1c", 1000);
    int64_t one = add_manifest(m, a.id, "sha256:01", 1000, "sha256:1a");
    int64_t two = add_manifest(m, a.id, "sha256:02", 1000, "sha256:1b");
    /* b uses 1b too, through its own manifest */
    add_blob(m, b.id, "sha256:1b", 1000);
    int64_t three = add_manifest(m, b.id, "sha256:03", 1000, "sha256:1b");
    /* 1c: archived manifest's layer, but also linked alone in b */
    int64_t four = add_manifest(m, a.id, "sha256:04", 1000, "sha256:1c");
    add_blob(m, b.id, "sha256:1c", 1000);
    char got[1024];
    CHECK_STR(candidates(m, 0, got, sizeof(got)), "");

    archive(m, a.id, one, 2000);
    archive(m, a.id, two, 2000);
    archive(m, a.id, four, 2000);
    /* 1a: only archived users; 1b: b's active image uses it; 1c: linked alone in b;
     * the manifests' own blobs never move */
    CHECK_STR(candidates(m, 0, got, sizeof(got)), "sha256:1a,");
    bool ok = false;
    CHECK_INT(meta_tier_archivable(m, la, 0, &ok), BERTH_OK);
    CHECK(ok);
    CHECK_INT(meta_tier_archivable(m, lb, 0, &ok), BERTH_OK);
    CHECK(!ok);
    /* archived everywhere: 1b goes too */
    archive(m, b.id, three, 2000);
    CHECK_STR(candidates(m, 0, got, sizeof(got)), "sha256:1a,sha256:1b,");

    /* touched after its images were archived (pushed again): left alone until quiet */
    CHECK_INT(meta_blob_touch(m, la, 3000), BERTH_OK);
    CHECK_STR(candidates(m, 0, got, sizeof(got)), "sha256:1b,");
    CHECK_STR(candidates(m, 3001, got, sizeof(got)), "sha256:1a,sha256:1b,");

    /* in the archive tier: no candidate any more; the row keeps size and coding */
    CHECK_INT(meta_blob_set_tier(m, la, META_TIER_ARCHIVE, 42, 1), BERTH_OK);
    CHECK_STR(candidates(m, 3001, got, sizeof(got)), "sha256:1b,");
    struct meta_blob row;
    CHECK_INT(meta_blob_get(m, "sha256:1a", &row), BERTH_OK);
    CHECK_INT(row.tier, META_TIER_ARCHIVE);
    CHECK_INT(row.archived_size, 42);
    CHECK_INT(row.archive_codec, 1);
    struct found f = {.n = 0};
    CHECK_INT(meta_tier_archived(m, 0, 10, collect, &f), BERTH_OK);
    CHECK_INT(f.n, 1);
    CHECK_STR(f.digests[0], "sha256:1a");
    struct meta_totals t;
    CHECK_INT(meta_totals_get(m, &t), BERTH_OK);
    CHECK_INT(t.archived_blobs, 1);
    CHECK_INT(t.archived_bytes, 100);
    CHECK_INT(t.archived_stored, 42);

    /* restoring one: marked, its archived blob listed, finished once it is back */
    CHECK_INT(meta_manifest_set_storage_class(m, a.id, one, META_STORAGE_STANDARD, 4000, 4000),
              BERTH_OK);
    int64_t marked = 0;
    CHECK_INT(meta_tier_mark_restoring(m, a.id, one, &marked), BERTH_OK);
    CHECK_INT(marked, 1);
    struct meta_manifest mf;
    CHECK_INT(meta_manifest_get(m, a.id, "sha256:01", &mf), BERTH_OK);
    CHECK(mf.restoring);
    f.n = 0;
    CHECK_INT(meta_tier_manifest_archived(m, one, collect, &f), BERTH_OK);
    CHECK_INT(f.n, 1);
    bool done = true;
    CHECK_INT(meta_tier_finish_restoring(m, one, &done), BERTH_OK);
    CHECK(!done);
    CHECK_INT(meta_blob_set_tier(m, la, META_TIER_STANDARD, 0, 0), BERTH_OK);
    CHECK_INT(meta_tier_finish_restoring(m, one, &done), BERTH_OK);
    CHECK(done);
    CHECK_INT(meta_manifest_get(m, a.id, "sha256:01", &mf), BERTH_OK);
    CHECK(!mf.restoring);
    CHECK_INT(meta_blob_get(m, "sha256:1a", &row), BERTH_OK);
    CHECK_INT(row.tier, META_TIER_STANDARD);
    CHECK_INT(row.archived_size, 0);
    /* a manifest without archived blobs is not marked */
    CHECK_INT(meta_manifest_set_storage_class(m, a.id, two, META_STORAGE_STANDARD, 4000, 4000),
              BERTH_OK);
    CHECK_INT(meta_tier_mark_restoring(m, a.id, two, &marked), BERTH_OK);
    CHECK_INT(marked, 0);
    unit_meta_remove(m, root);
}

int main(void)
{
    RUN(test_rule);
    return unit_report("test_tier");
}
