/*
 * Lifecycle policies applied to the store: load a repository's images
 * (digest, push time, tags, the indexes of the repository that list each),
 * evaluate the policy with lifecycle_evaluate, and delete the expired
 * images exactly as ECR BatchDeleteImage by digest does (through
 * registry_image_delete_unchanged, which refuses images an index still
 * lists and, in the same transaction, images whose manifest or tags changed
 * since the snapshot). The same
 * function serves scheduled enforcement, `berth lifecycle run [--dry-run]`
 * and, as a dry run whose results are stored, GetLifecyclePolicyPreview.
 *
 * Thread-safe (each thread uses its own metadata connection); every call
 * blocks on the database. Each deletion is its own short write transaction,
 * followed by a pause of a few times its length (at least 2 ms; the same
 * pacing as garbage collection), so pushes and pulls continue during a run.
 */
#ifndef BERTH_LIFECYCLE_RUN_H
#define BERTH_LIFECYCLE_RUN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "storage/spec/names.h"

struct store;

/* What became of an image the policy selected. */
enum lifecycle_fate {
    LIFECYCLE_WOULD_EXPIRE = 0, /* dry run: the policy expires it */
    LIFECYCLE_EXPIRED,          /* deleted by this run */
    LIFECYCLE_GONE,             /* deleted by someone else meanwhile */
    LIFECYCLE_KEPT_REFERENCED,  /* an index that is not expired lists it */
    LIFECYCLE_KEPT_CHANGED,     /* its manifest row or tags changed since the snapshot: the next
                                   run decides */
    LIFECYCLE_FAILED,           /* the delete failed (logged) */
    LIFECYCLE_ARCHIVED,         /* moved to the archive storage class by this run */
};

/* "would-expire", "expired", "gone", "kept-referenced", "kept-changed", "failed",
 * "archived". */
const char *lifecycle_fate_name(enum lifecycle_fate f);

/* One image the policy selected. Strings are borrowed from the result. */
struct lifecycle_run_item {
    const char *digest;
    int64_t pushed_at_ms;
    const char *const *tags; /* tag_count names in byte order; NULL when untagged */
    size_t tag_count;
    int rule_priority; /* the rule that expired it */
    bool transition;   /* the rule archives it (action transition) rather than deleting it */
    bool is_archived;  /* it was in the archive storage class when evaluated */
    enum lifecycle_fate fate;
};

struct lifecycle_snapshot;

struct lifecycle_run_result {
    int64_t repo_id;
    char repo[NAMES_REPO_MAX + 1];
    size_t image_count;               /* images evaluated */
    struct lifecycle_run_item *items; /* the selected images, oldest push first */
    size_t item_count;
    size_t expired;  /* items deleted by this run */
    size_t archived; /* items moved to the archive class by this run */
    int64_t now_ms;  /* the evaluation time */
    int64_t load_us;
    int64_t eval_us;
    int64_t delete_us;
    /* > 0: the policy was not applied because it was set or changed less
     * than opt->new_policy_delay_ms ago; it becomes due this many ms after
     * now_ms. Nothing was evaluated then (no items, image_count 0). */
    int64_t deferred_ms;
    struct lifecycle_snapshot *snap; /* private: owns the strings */
};

struct lifecycle_run_options {
    bool dry_run;              /* evaluate only: delete nothing, leave lastEvaluatedAt */
    const char *policy_text;   /* NULL: the repository's stored policy */
    int64_t now_ms;            /* 0: the wall clock */
    const atomic_bool *cancel; /* optional: stop deleting when it becomes true */
    /* A real run of the stored policy leaves a policy set or changed less
     * than this long ago (by now_ms) alone, and says when it is due
     * (result->deferred_ms). 0: apply every policy at once (`berth
     * lifecycle run`). Ignored by dry runs and with policy_text. */
    int64_t new_policy_delay_ms;
};

/*
 * Apply (or with dry_run, evaluate) the policy to repository repo_id. On
 * success *out is a new result (lifecycle_run_result_free). A real run
 * updates the repository's lastEvaluatedAt. Logs one line per expired image
 * (event=lifecycle_expired) and one summary (event=lifecycle_run).
 *
 * Returns BERTH_OK; BERTH_ENOTFOUND when the repository does not exist or
 * has no policy (msg says which); BERTH_EINVAL when the policy text is
 * invalid (msg has the validation message); BERTH_ETOOBIG past
 * LIFECYCLE_IMAGES_MAX images; BERTH_ENOMEM; BERTH_EDB. msg (msg_cap
 * bytes, may be NULL when msg_cap is 0) is always NUL-terminated.
 */
enum berth_err lifecycle_run_repo(struct store *st, int64_t repo_id,
                                  const struct lifecycle_run_options *opt,
                                  struct lifecycle_run_result **out, char *msg, size_t msg_cap);

/* Free a result (NULL is fine). */
void lifecycle_run_result_free(struct lifecycle_run_result *r);

struct lifecycle_run_totals {
    int64_t repositories; /* repositories with a policy that were run */
    int64_t deferred;     /* repositories whose policy was too new to apply */
    int64_t failed_repositories;
    int64_t images;   /* images evaluated */
    int64_t selected; /* images the policies selected */
    int64_t expired;  /* images deleted */
    int64_t duration_ms;
    bool cancelled;
};

/* Called with each repository's result (borrowed for the call). */
typedef void (*lifecycle_run_cb)(void *arg, const struct lifecycle_run_result *r);

/*
 * Run every repository that has a policy, in id order (opt->policy_text
 * must be NULL). A repository whose run fails is logged and skipped. cb
 * (optional) sees each result. *out (optional) receives the totals. Logs
 * one summary line (event=lifecycle_pass). A repository deferred by
 * opt->new_policy_delay_ms is counted in deferred (not in repositories)
 * and passed to cb with its deferred_ms.
 * BERTH_EINVAL, BERTH_EDB.
 */
enum berth_err lifecycle_run_all(struct store *st, const struct lifecycle_run_options *opt,
                                 lifecycle_run_cb cb, void *arg, struct lifecycle_run_totals *out);

/*
 * Compute the repository's preview if it is IN_PROGRESS: a dry run of the
 * preview's policy text whose results replace the stored ones, then the
 * status COMPLETE (or FAILED, when the run fails). Results are written in
 * short transactions. BERTH_OK also when there was nothing to do.
 */
enum berth_err lifecycle_preview_process(struct store *st, int64_t repo_id,
                                         const atomic_bool *cancel);

/* lifecycle_preview_process for every IN_PROGRESS preview (those started
 * before a restart included). *processed (optional) counts them. */
enum berth_err lifecycle_preview_process_pending(struct store *st, const atomic_bool *cancel,
                                                 int64_t *processed);

#endif
