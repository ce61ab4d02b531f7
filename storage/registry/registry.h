/*
 * Registry rules, shared by the OCI /v2 API and the ECR API so that they
 * cannot drift apart: repository lookup and creation, blob linking and
 * mounting, manifest push with reference checks, tag immutability and tag
 * moves in one transaction, manifest and tag deletion, listings. No HTTP
 * here. Thread-safe (each thread uses its own metadata connection); every
 * call may block on disk and database.
 *
 * Every call takes a struct registry_status that, on failure, says which
 * registry-level condition failed (so each API can map it to its own error
 * code) with a short human-readable message.
 */
#ifndef BERTH_REGISTRY_H
#define BERTH_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/spec/digest.h"
#include "common/err.h"
#include "storage/meta/meta.h"

struct store;

enum registry_reason {
    REG_OK = 0,
    REG_REPO_UNKNOWN,        /* repository does not exist (and may not be created) */
    REG_BLOB_UNKNOWN,        /* blob not found in this repository */
    REG_MANIFEST_UNKNOWN,    /* manifest or tag not found */
    REG_UPLOAD_UNKNOWN,      /* upload session not found */
    REG_UPLOAD_BUSY,         /* another request is writing this session */
    REG_DIGEST_INVALID,      /* content does not match the digest given */
    REG_MANIFEST_INVALID,    /* malformed manifest */
    REG_MANIFEST_TOO_BIG,    /* over the manifest size limit */
    REG_LAYERS_MISSING,      /* manifest references blobs not in the repository */
    REG_CHILDREN_MISSING,    /* index references manifests not in the repository */
    REG_TAG_INVALID,         /* tag does not follow the grammar */
    REG_TAG_IMMUTABLE,       /* tag exists on another image and may not move */
    REG_IMAGE_EXISTS,        /* (ECR PutImage) the same image and tags exist already */
    REG_REFERENCED_BY_INDEX, /* (ECR delete) an index in the repository lists the image */
    REG_INTERNAL,            /* I/O or database failure */
    REG_TAG_DIGEST_MISMATCH, /* (ECR) the tag given points at another digest than the one given */
    REG_STORAGE_CLASS_UNSUPPORTED, /* (ECR) this storage class change is not possible */
    REG_IMAGE_ARCHIVED,            /* the image is archived (or still being restored) */
    REG_LAYER_ARCHIVED,            /* only archived images of the repository use the blob */
    REG_UNAVAILABLE,               /* the object store cannot be reached or fails for now: retry */
    REG_TAG_LIMIT,                 /* (ECR's quota) the image would have more than
                                      REGISTRY_TAGS_PER_IMAGE_MAX tags */
};

/* ECR's quota of tags per image (documented: 1,000). */
#define REGISTRY_TAGS_PER_IMAGE_MAX 1000

struct registry_status {
    enum registry_reason reason;
    enum berth_err err; /* the failure behind REG_INTERNAL (BERTH_ENOMEM: retry later) */
    char message[512];
    char digest[DIGEST_STR_MAX]; /* the digest concerned, when there is one */
};

/* The registry reason a failed upload-session call (storage/store/upload.h)
 * stands for, into *s: BERTH_ENOTFOUND is REG_UPLOAD_UNKNOWN, BERTH_EBUSY
 * and BERTH_ERANGE (a shared session another request committed to first)
 * REG_UPLOAD_BUSY, BERTH_EDIGEST REG_DIGEST_INVALID, BERTH_EUNAVAILABLE
 * REG_UNAVAILABLE, anything else REG_INTERNAL. The sessions are shared by both APIs; each maps *s
 * with its one reason table. Pure. */
void registry_upload_status(enum berth_err rc, struct registry_status *s);

/* Find the repository; with create, make it when missing if the store
 * allows auto-creation. REG_REPO_UNKNOWN otherwise. */
enum berth_err registry_repo(struct store *st, const char *name, bool create, struct meta_repo *out,
                             struct registry_status *s);

/* The repository a pull-through cache rule covers: found, or created
 * whatever storage.auto_create says, with the settings of the creation
 * template that applies to the name for PULL_THROUGH_CACHE (none: ECR's
 * defaults), in one write transaction. Reasons: REG_INTERNAL. */
enum berth_err registry_repo_for_cache(struct store *st, const char *name, struct meta_repo *out,
                                       struct registry_status *s);

/* The repository a replicated push (from another registry's replication)
 * goes to: found, or created whatever storage.auto_create says, with the
 * settings of the creation template that applies to the name for
 * REPLICATION (none: ECR's defaults), in one write transaction. Reasons:
 * REG_INTERNAL. */
enum berth_err registry_repo_for_replication(struct store *st, const char *name,
                                             struct meta_repo *out, struct registry_status *s);

/* A blob linked to the repository (REG_REPO_UNKNOWN, REG_BLOB_UNKNOWN). */
enum berth_err registry_blob_stat(struct store *st, const char *repo, const struct digest *d,
                                  struct meta_blob *out, struct registry_status *s);

/* registry_blob_stat for a pull (/v2 GET/HEAD of a blob): also
 * REG_LAYER_ARCHIVED (BERTH_ENOTFOUND) when manifests of the repository use
 * the blob and all of them are archived. In a repository without archived
 * images this costs one probe of an empty partial index. The pull-through
 * cache and import keep calling registry_blob_stat. */
enum berth_err registry_blob_pull_stat(struct store *st, const char *repo, const struct digest *d,
                                       struct meta_blob *out, struct registry_status *s);

/* Unlink a blob from the repository (REG_BLOB_UNKNOWN when not linked). */
enum berth_err registry_blob_delete(struct store *st, const char *repo, const struct digest *d,
                                    struct registry_status *s);

/* Cross-repository mount: link a blob that is linked to from_repo (or,
 * with from_repo NULL, to any repository) into repo.
 * BERTH_ENOTFOUND with REG_BLOB_UNKNOWN when it cannot be mounted. */
enum berth_err registry_blob_mount(struct store *st, const char *repo, const struct digest *d,
                                   const char *from_repo, struct meta_blob *out,
                                   struct registry_status *s);

/* Publish a blob staged by the caller (blob_stage_create/write/sync, then
 * closed; its bytes hash to d and hold size bytes: the caller checked) and
 * link it to repo, creating the repository when the store allows it, in one
 * write transaction: the upload path for a caller that is not an upload
 * session (berth import). The stage is gone afterwards, whatever the
 * outcome but an error before publishing. Reasons: REG_REPO_UNKNOWN,
 * REG_INTERNAL. */
enum berth_err registry_blob_publish(struct store *st, const char *repo, const char *stage,
                                     const struct digest *d, int64_t size, struct meta_blob *out,
                                     struct registry_status *s);

/* What a manifest push asks for. */
struct registry_put {
    const char *repo;
    const char *body;
    size_t len;
    const char *content_type;      /* request Content-Type or ECR imageManifestMediaType */
    const struct digest *expected; /* digest the client named, or NULL */
    const char *const *tags;       /* tags to point at the manifest */
    size_t tag_count;
    bool create_repo;  /* auto-create when the store allows it */
    bool fail_if_same; /* ECR PutImage: REG_IMAGE_EXISTS when nothing would change */
    /* (the pull-through cache) references need not be present yet, as
     * with storage.sparse_manifests: they are fetched when pulled */
    bool allow_missing;
    /* a push that restores an archived image rescans it (scan-on-push)
     * unless it was scanned this recently: scan.quota_seconds in ms (0: the
     * store's, store_options' scan_quota_ms); see scan_queue_on_restore */
    int64_t scan_quota_ms;
};

struct registry_put_result {
    struct digest digest;
    bool has_subject;
    char subject[DIGEST_STR_MAX];
    bool created; /* the manifest row is new in this repository */
    char media_type[META_MEDIA_TYPE_MAX + 1];
    int64_t repo_id;
    bool is_index;
};

/* Store a manifest: verify the digest (sha256, or the algorithm of
 * expected), validate it, require its config and layers to be linked to
 * the repository (non-distributable layers excepted) and an index's
 * children to be manifests of the repository, then in one write
 * transaction store the bytes, the manifest row, its references and every
 * tag (subject to tag immutability); a new container image in a
 * repository where scan-on-push applies gets its scan job in that same
 * transaction (scan_queue_on_push). Reasons: REG_REPO_UNKNOWN,
 * REG_DIGEST_INVALID, REG_MANIFEST_INVALID, REG_MANIFEST_TOO_BIG,
 * REG_LAYERS_MISSING, REG_CHILDREN_MISSING, REG_TAG_INVALID,
 * REG_TAG_IMMUTABLE, REG_IMAGE_EXISTS, REG_INTERNAL. */
enum berth_err registry_manifest_put(struct store *st, const struct registry_put *in,
                                     struct registry_put_result *out, struct registry_status *s);

/* Resolve a tag or digest reference to a manifest of the repository
 * (REG_REPO_UNKNOWN, REG_DIGEST_INVALID for a malformed digest,
 * REG_MANIFEST_UNKNOWN, also for a reference that is not a valid tag). */
enum berth_err registry_manifest_get(struct store *st, const char *repo, const char *reference,
                                     struct meta_manifest *out, struct registry_status *s);

/* Note that a manifest was pulled by principal_arn (NULL or "": anonymous
 * or auth off): cheap, it writes at most once a minute per manifest, and
 * not at all for a principal on the pull-time update exclusion list
 * (RegisterPullTimeUpdateExclusion). Failures are ignored. */
void registry_manifest_note_pull(struct store *st, const struct meta_manifest *mf,
                                 const char *principal_arn);

/* Delete by tag (removes only the tag) or by digest (removes the manifest
 * and every tag on it). With refuse_if_referenced, a manifest that an
 * index in the repository lists is refused with REG_REFERENCED_BY_INDEX.
 * Reasons: REG_REPO_UNKNOWN, REG_MANIFEST_UNKNOWN. */
enum berth_err registry_manifest_delete(struct store *st, const char *repo, const char *reference,
                                        bool refuse_if_referenced, struct registry_status *s);

/* Called once per tag an image deletion removed (tag NULL for an image
 * that had none); strings are borrowed for the call. Return 0. */
typedef int (*registry_removed_cb)(void *arg, const char *digest, const char *tag);

/* ECR BatchDeleteImage for one image id, in one write transaction. With a
 * tag (and optionally a digest that must be the one the tag points at):
 * remove the tag, and the image too when that was its last tag. With only
 * a digest: remove the image and every tag on it. An image an index of the
 * repository lists is never removed (REG_REFERENCED_BY_INDEX, nothing
 * changes); a removed image's blobs restart their garbage-collection grace.
 * cb (may be NULL) reports what was removed (after the commit). Reasons:
 * REG_REPO_UNKNOWN, REG_MANIFEST_UNKNOWN, REG_TAG_DIGEST_MISMATCH,
 * REG_REFERENCED_BY_INDEX, REG_INTERNAL. */
enum berth_err registry_image_delete(struct store *st, const char *repo, const char *tag,
                                     const struct digest *digest, registry_removed_cb cb, void *arg,
                                     struct registry_status *s);

/* How a caller (lifecycle enforcement) saw an image it decided to delete. */
struct registry_image_seen {
    int64_t manifest_id;     /* its manifest row */
    const char *const *tags; /* all its tags, in byte order (as meta_manifest_tags lists them) */
    size_t tag_count;
};

/* registry_image_delete with only a digest, on the condition that the image
 * is still as seen: the same manifest row with exactly the same tags. The
 * condition is checked inside the deletion's write transaction, so an image
 * that a push re-tagged (or that was deleted and pushed again) after the
 * caller looked is left alone: BERTH_OK with *changed true, nothing
 * changed, cb not called. Otherwise *changed is false and the result is
 * registry_image_delete's (same reasons and return codes). */
enum berth_err registry_image_delete_unchanged(struct store *st, const char *repo,
                                               const struct digest *digest,
                                               const struct registry_image_seen *seen,
                                               registry_removed_cb cb, void *arg, bool *changed,
                                               struct registry_status *s);

/* Tag listing: tags > last, at most n (n < 0: no limit). */
enum berth_err registry_tags(struct store *st, const char *repo, const char *last, int64_t n,
                             meta_name_cb cb, void *arg, bool *has_more, struct registry_status *s);

/* Referrers of subject in the repository (a missing repository has
 * none: BERTH_OK with no callbacks). */
enum berth_err registry_referrers(struct store *st, const char *repo, const struct digest *subject,
                                  const char *artifact_type, meta_referrer_cb cb, void *arg,
                                  struct registry_status *s);

/* Whether the repository's mutability settings forbid moving this tag.
 * filters_json is the repository's exclusion filter list (may be NULL). */
bool registry_tag_is_immutable(enum meta_mutability mu, const char *filters_json, const char *tag);

/* Whether pointing tag at the manifest digest would be refused because
 * the tag is immutable and points elsewhere (REG_TAG_IMMUTABLE,
 * BERTH_EDENIED): BERTH_OK when it would not be, also when the repository
 * or the tag does not exist yet. Read outside any transaction, for a check
 * before a batch of changes (berth import); the change checks again. */
enum berth_err registry_tag_check(struct store *st, const char *repo, const char *tag,
                                  const char *digest, struct registry_status *s);

/* The image an image identifier names in repo (looked up by the caller):
 * by tag, by digest, or by both, which must then name the same image. On
 * this thread's metadata connection, so inside the caller's transaction
 * when one is open. *out is written only on success. Reasons:
 * REG_MANIFEST_UNKNOWN (BERTH_ENOTFOUND), REG_TAG_DIGEST_MISMATCH
 * (BERTH_ECONFLICT; s->digest is the image the tag names), REG_INTERNAL
 * (the database error, or BERTH_EINVAL when neither tag nor digest is
 * given). In storage/registry/image.c. */
enum berth_err registry_image_find(struct store *st, const struct meta_repo *repo, const char *tag,
                                   const struct digest *digest, struct meta_manifest *out,
                                   struct registry_status *s);

#endif
