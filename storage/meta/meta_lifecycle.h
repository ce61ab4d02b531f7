/*
 * Metadata queries of lifecycle enforcement and previews
 * (storage/lifecycle/run.c): a repository's images, tags, index
 * children and referrers as four indexed scans, the repositories that have a policy,
 * and the stored previews (StartLifecyclePolicyPreview /
 * GetLifecyclePolicyPreview). Same rules as meta.h: a struct meta is used
 * by one thread at a time; every call may block on the database; strings
 * passed to callbacks are borrowed for the call only.
 */
#ifndef BERTH_META_LIFECYCLE_H
#define BERTH_META_LIFECYCLE_H

#include <stdbool.h>
#include <stdint.h>

#include "storage/spec/digest.h"
#include "common/err.h"
#include "storage/meta/meta.h"

/* ---- a repository's images (run inside meta_begin_read for one snapshot) ---- */

/* One manifest as a lifecycle evaluation sees it; strings borrowed. */
struct meta_lc_image {
    int64_t id;
    const char *digest;
    int64_t pushed_at;
    int64_t pulled_at; /* last recorded pull, 0 = never */
    bool is_archived;  /* in the archive storage class */
    int64_t archived_at;
};

/* Each manifest of the repository, in id order. Return non-zero to stop. */
typedef int (*meta_lc_image_cb)(void *arg, const struct meta_lc_image *img);
enum berth_err meta_lifecycle_images(struct meta *m, int64_t repo_id, meta_lc_image_cb cb,
                                     void *arg);

/* Each tag of the repository, ordered by manifest id then name. */
typedef int (*meta_lc_tag_cb)(void *arg, int64_t manifest_id, const char *tag);
enum berth_err meta_lifecycle_tags(struct meta *m, int64_t repo_id, meta_lc_tag_cb cb, void *arg);

/* Each (index, child) pair where an index of the repository lists a
 * manifest of the same repository, in no particular order. */
typedef int (*meta_lc_edge_cb)(void *arg, int64_t parent_id, int64_t child_id);
enum berth_err meta_lifecycle_children(struct meta *m, int64_t repo_id, meta_lc_edge_cb cb,
                                       void *arg);

/* Each (subject, referrer) pair where a manifest of the repository names
 * another of the same repository as its OCI 1.1 subject, in no
 * particular order (the edge callback's parent is the subject). */
enum berth_err meta_lifecycle_referrers(struct meta *m, int64_t repo_id, meta_lc_edge_cb cb,
                                        void *arg);

/* Repositories that have a lifecycle policy, id > after, in id order, at
 * most limit. */
typedef int (*meta_lc_repo_cb)(void *arg, int64_t repo_id, const char *name);
enum berth_err meta_lifecycle_repos(struct meta *m, int64_t after, int64_t limit,
                                    meta_lc_repo_cb cb, void *arg);

/* ---- previews ---- */

enum meta_preview_status {
    META_PREVIEW_IN_PROGRESS = 0,
    META_PREVIEW_COMPLETE,
    META_PREVIEW_FAILED,
};

/* "IN_PROGRESS", "COMPLETE", "FAILED" (ECR's spelling). */
const char *meta_preview_status_name(enum meta_preview_status s);

struct meta_preview {
    int64_t repo_id;
    enum meta_preview_status status;
    int64_t started_at;
    int64_t finished_at; /* 0 while in progress */
    int64_t expiring_count;
    int64_t transitioning_count; /* results that move an image to the archive class */
};

/* The repository's latest preview. With policy_text non-NULL, *policy_text
 * receives a copy of its policy (caller frees). BERTH_ENOTFOUND. */
enum berth_err meta_preview_get(struct meta *m, int64_t repo_id, struct meta_preview *out,
                                char **policy_text);

/* Make the repository's preview a new one, IN_PROGRESS, with this policy
 * text. Old results stay until meta_preview_clear_results removes them;
 * readers only look at results of a COMPLETE preview. */
enum berth_err meta_preview_start(struct meta *m, int64_t repo_id, const char *policy_text,
                                  int64_t now);

/* Delete up to limit of the repository's preview results; *deleted
 * receives how many went (0 when none were left). */
enum berth_err meta_preview_clear_results(struct meta *m, int64_t repo_id, int64_t limit,
                                          int64_t *deleted);

struct meta_preview_result {
    int64_t seq; /* position, from 0, in the order results are shown */
    char digest[DIGEST_STR_MAX];
    int64_t pushed_at;
    const char *tags_json; /* JSON array of strings; NULL when untagged */
    int rule_priority;
    bool transition;  /* the rule moves it to the archive class (else expires it) */
    bool is_archived; /* its storage class: archive (else standard) */
};

/* Store one result (BERTH_EEXIST when seq is taken). */
enum berth_err meta_preview_add_result(struct meta *m, int64_t repo_id,
                                       const struct meta_preview_result *r);

/* Mark the preview finished with a status and the number of results. */
enum berth_err meta_preview_finish(struct meta *m, int64_t repo_id, enum meta_preview_status status,
                                   int64_t expiring_count, int64_t transitioning_count,
                                   int64_t now);

/* Results with seq > after, in seq order (tags_json borrowed for the
 * call). Return non-zero from cb to stop. */
typedef int (*meta_preview_result_cb)(void *arg, const struct meta_preview_result *r);
enum berth_err meta_preview_results(struct meta *m, int64_t repo_id, int64_t after,
                                    meta_preview_result_cb cb, void *arg);

/* Repositories whose preview is IN_PROGRESS, repo id > after, in id order,
 * at most limit. */
typedef int (*meta_preview_repo_cb)(void *arg, int64_t repo_id);
enum berth_err meta_preview_pending(struct meta *m, int64_t after, int64_t limit,
                                    meta_preview_repo_cb cb, void *arg);

#endif
