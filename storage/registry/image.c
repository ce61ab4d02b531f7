/*
 * Finding an image by tag and/or digest, the one lookup behind every API
 * call that names an image with both (ECR's ImageIdentifier); see
 * registry.h. Runs on the calling thread's metadata connection, so inside
 * the caller's transaction when one is open. Thread-safe; blocks on the
 * database.
 */
#include "storage/registry/registry.h"
#include "storage/registry/registry_int.h"

#include <stdio.h>
#include <string.h>

#include "storage/store/store.h"
#include "common/str.h"

enum berth_err registry_image_find(struct store *st, const struct meta_repo *repo, const char *tag,
                                   const struct digest *digest, struct meta_manifest *out,
                                   struct registry_status *s)
{
    s->reason = REG_OK;
    s->message[0] = '\0';
    s->digest[0] = '\0';
    s->err = BERTH_OK;
    if (tag == NULL && digest == NULL) {
        return registry_fail(s, REG_INTERNAL, BERTH_EINVAL,
                             "an image is named by a tag or a digest");
    }
    struct meta *m = store_meta(st);
    if (m == NULL) {
        return registry_fail(s, REG_UNAVAILABLE, BERTH_EUNAVAILABLE,
                             "storage unavailable; retry later");
    }
    /* By the tag when there is one: it names one image, which the digest
     * (if given too) must then be. */
    struct meta_manifest mf;
    enum berth_err rc = tag != NULL ? meta_manifest_get_by_tag(m, repo->id, tag, &mf)
                                    : meta_manifest_get(m, repo->id, digest->str, &mf);
    if (rc == BERTH_ENOTFOUND) {
        return registry_fail(s, REG_MANIFEST_UNKNOWN, rc, "Requested image not found");
    }
    if (rc != BERTH_OK) {
        return registry_fail(s, REG_INTERNAL, rc, "internal error (%s)", berth_strerror(rc));
    }
    if (tag != NULL && digest != NULL && strcmp(mf.digest, digest->str) != 0) {
        str_copy(s->digest, sizeof(s->digest), mf.digest);
        return registry_fail(
            s, REG_TAG_DIGEST_MISMATCH, BERTH_ECONFLICT,
            "The image tag '%.300s' does not point at the image digest '%s' (it points "
            "at %s)",
            tag, digest->str, mf.digest);
    }
    *out = mf;
    return BERTH_OK;
}
