/* Unit tests for storage/bundle/parts.c: berth mirror's part store keeps
 * manifests and blobs by digest, reads back only what matches its digest
 * and drops what does not. */
#include "unit.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/fileio.h"
#include "storage/bundle/parts_int.h"

static const char manifest[] = "{\"schemaVersion\":2,\"mediaType\":\"x\"}";
static const char blob[] = "the bytes of a layer";

struct collected {
    char bytes[64];
    size_t len;
};

static enum berth_err collect(void *arg, const void *p, size_t n)
{
    struct collected *c = arg;
    if (c->len + n > sizeof(c->bytes)) {
        return BERTH_ETOOBIG;
    }
    memcpy(c->bytes + c->len, p, n);
    c->len += n;
    return BERTH_OK;
}

/* Overwrite path with text: a part damaged on disk. */
static void damage(const char *path, const char *text)
{
    CHECK_INT(file_write_atomic(path, text, strlen(text), 0644, false), BERTH_OK);
}

/* The part store of a bundle in a fresh directory, opened: its path into out. */
static void open_fresh(struct bundle_parts *p, char *out, size_t cap)
{
    snprintf(out, cap, "%s/b.tar", unit_tmpdir());
    bundle_parts_init(p);
    char why[256] = "";
    CHECK_INT(bundle_parts_open(p, out, why, sizeof(why)), BERTH_OK);
}

static void test_manifests(void)
{
    char out[4096];
    struct bundle_parts p;
    open_fresh(&p, out, sizeof(out));
    char why[256] = "";
    CHECK_INT(p.manifests_found, 0);
    struct digest good, bad;
    CHECK_INT(digest_buffer(DIGEST_SHA256, manifest, sizeof(manifest) - 1, &good), BERTH_OK);
    CHECK_INT(digest_buffer(DIGEST_SHA256, "{}", 2, &bad), BERTH_OK);
    bundle_parts_manifest_put(&p, &good, "application/vnd.oci.image.manifest.v1+json", manifest,
                              sizeof(manifest) - 1);
    bundle_parts_manifest_put(&p, &bad, "application/vnd.oci.image.index.v1+json", "{}", 2);

    /* a second run to the same output is refused: the lock is held */
    struct bundle_parts other;
    bundle_parts_init(&other);
    CHECK_INT(bundle_parts_open(&other, out, why, sizeof(why)), BERTH_EBUSY);
    CHECK(strstr(why, "another berth mirror is writing") != NULL);
    bundle_parts_close(&other);
    bundle_parts_close(&p);

    /* the next run finds both, reads back the good one */
    bundle_parts_init(&p);
    CHECK_INT(bundle_parts_open(&p, out, why, sizeof(why)), BERTH_OK);
    CHECK_INT(p.manifests_found, 2);
    char type[128];
    char *body = NULL;
    size_t len = 0;
    CHECK_INT(bundle_parts_manifest_get(&p, &good, 4096, type, sizeof(type), &body, &len),
              BERTH_OK);
    CHECK_STR(type, "application/vnd.oci.image.manifest.v1+json");
    CHECK_INT(len, sizeof(manifest) - 1);
    CHECK(body != NULL && memcmp(body, manifest, len) == 0);
    free(body);

    /* a damaged one is dropped, and is then not there at all */
    char path[BUNDLE_PARTS_PATH_MAX];
    snprintf(path, sizeof(path), "%s/sha256-%s.manifest", p.dir, digest_hex(&bad));
    CHECK_INT(access(path, F_OK), 0);
    damage(path, "application/vnd.oci.image.index.v1+json\n{ }");
    CHECK_INT(bundle_parts_manifest_get(&p, &bad, 4096, type, sizeof(type), &body, &len),
              BERTH_EDIGEST);
    CHECK(access(path, F_OK) != 0);
    CHECK_INT(bundle_parts_manifest_get(&p, &bad, 4096, type, sizeof(type), &body, &len),
              BERTH_ENOTFOUND);
    /* a media type longer than the caller takes is no manifest either */
    bundle_parts_manifest_put(&p, &good, "application/vnd.oci.image.manifest.v1+json", manifest,
                              sizeof(manifest) - 1);
    CHECK_INT(bundle_parts_manifest_get(&p, &good, 4096, type, 8, &body, &len), BERTH_EDIGEST);

    bundle_parts_remove(&p);
    bundle_parts_close(&p);
    CHECK(access(p.dir, F_OK) != 0);
}

static void test_blobs(void)
{
    char out[4096];
    struct bundle_parts p;
    open_fresh(&p, out, sizeof(out));
    char why[256] = "";
    struct digest d;
    CHECK_INT(digest_buffer(DIGEST_SHA256, blob, sizeof(blob) - 1, &d), BERTH_OK);
    int64_t size = (int64_t)sizeof(blob) - 1;
    CHECK(!bundle_parts_blob_has(&p, &d, size));

    /* half of it, then the run stops: the next one keeps those bytes */
    struct bundle_part bp;
    CHECK_INT(bundle_part_open(&p, &d, size, &bp, why, sizeof(why)), BERTH_OK);
    CHECK_INT(bp.have, 0);
    CHECK_INT(bundle_part_append(&bp, blob, 8), BERTH_OK);
    bundle_part_close(&bp);
    CHECK(!bundle_parts_blob_has(&p, &d, size));
    CHECK_INT(bundle_part_open(&p, &d, size, &bp, why, sizeof(why)), BERTH_OK);
    CHECK_INT(bp.have, 8);
    CHECK_INT(bundle_part_append(&bp, blob + 8, (size_t)size - 8), BERTH_OK);
    struct digest got;
    CHECK_INT(bundle_part_commit(&bp, &got, why, sizeof(why)), BERTH_OK);
    bundle_part_close(&bp);
    CHECK(bundle_parts_blob_has(&p, &d, size));
    CHECK(!bundle_parts_blob_has(&p, &d, size + 1));

    struct collected c = {.len = 0};
    CHECK_INT(bundle_parts_blob_read(&p, &d, collect, &c, &got, why, sizeof(why)), BERTH_OK);
    CHECK_INT(c.len, size);
    CHECK(memcmp(c.bytes, blob, c.len) == 0);

    /* wrong bytes are not committed */
    struct digest other;
    CHECK_INT(digest_buffer(DIGEST_SHA256, "other", 5, &other), BERTH_OK);
    CHECK_INT(bundle_part_open(&p, &other, 5, &bp, why, sizeof(why)), BERTH_OK);
    CHECK_INT(bundle_part_append(&bp, "0ther", 5), BERTH_OK);
    CHECK_INT(bundle_part_commit(&bp, &got, why, sizeof(why)), BERTH_EDIGEST);
    CHECK(strcmp(got.str, other.str) != 0);
    bundle_part_close(&bp);
    char path[BUNDLE_PARTS_PATH_MAX];
    bundle_parts_blob_path(&p, &other, true, path, sizeof(path));
    CHECK(access(path, F_OK) != 0);
    CHECK(!bundle_parts_blob_has(&p, &other, 5));

    /* a complete part changed on disk is dropped when read back */
    bundle_parts_blob_path(&p, &d, false, path, sizeof(path));
    damage(path, "the bytes of a LAYER");
    c.len = 0;
    CHECK_INT(bundle_parts_blob_read(&p, &d, collect, &c, &got, why, sizeof(why)), BERTH_EDIGEST);
    CHECK(access(path, F_OK) != 0);
    why[0] = '\0';
    CHECK_INT(bundle_parts_blob_read(&p, &d, collect, &c, &got, why, sizeof(why)), BERTH_EIO);
    CHECK(strstr(why, path) != NULL);

    /* after a failure, the store stays while it holds something */
    CHECK_INT(bundle_part_open(&p, &other, 5, &bp, why, sizeof(why)), BERTH_OK);
    CHECK_INT(bundle_part_append(&bp, "ot", 2), BERTH_OK);
    bundle_part_close(&bp);
    bundle_parts_remove_if_empty(&p);
    CHECK_INT(access(p.dir, F_OK), 0);
    bundle_parts_blob_path(&p, &other, true, path, sizeof(path));
    CHECK_INT(unlink(path), 0);
    bundle_parts_remove_if_empty(&p);
    CHECK(access(p.dir, F_OK) != 0);
    bundle_parts_close(&p);
}

int main(void)
{
    RUN(test_manifests);
    RUN(test_blobs);
    return unit_report("test_parts");
}
