/*
 * ECR lifecycle policies: parse and validate a policy text as ECR's
 * PutLifecyclePolicy does (same InvalidParameterException messages), and
 * evaluate a parsed policy against a snapshot of one repository's images.
 * Pure: no I/O, no locks, no global state. Thread-safe; a parsed policy is
 * immutable and may be shared between threads.
 *
 * Grammar (reference/ecr-api.md section 3): {"rules": [1..50 rules]}, a rule
 * is {rulePriority >= 1 (unique), description?, selection{tagStatus
 * tagged|untagged|any, tagPrefixList | tagPatternList (tagged only, not both,
 * <= 4 '*' per pattern), storageClass standard|archive (default standard),
 * countType imageCountMoreThan | sinceImagePushed | sinceImagePulled |
 * sinceImageTransitioned, countUnit "days" (required with the since* types,
 * forbidden with imageCountMoreThan), countNumber >= 1}, action{type
 * "expire", or "transition" with targetStorageClass "archive"}}. Per
 * storage class: at most one untagged rule, and an "any" rule must have the
 * highest rulePriority. The archive class is selected only with
 * sinceImageTransitioned (and that type only there), at least
 * LIFECYCLE_ARCHIVE_MIN_DAYS days (ECR's minimum archive storage
 * duration); a transition rule selects standard-class images.
 */
#ifndef BERTH_LIFECYCLE_H
#define BERTH_LIFECYCLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* lifecyclePolicyText length bounds, in Unicode characters. */
#define LIFECYCLE_TEXT_MIN 100
#define LIFECYCLE_TEXT_MAX 30720
/* Rules per policy. */
#define LIFECYCLE_RULES_MAX 50
/* Characters in a rule description (berth's bound; AWS publishes none). */
#define LIFECYCLE_DESCRIPTION_MAX 1024
/* '*' wildcards per tagPatternList entry. */
#define LIFECYCLE_PATTERN_STARS_MAX 4
/* Images per evaluation (ECR's per-repository quota is 10,000 or 100,000). */
#define LIFECYCLE_IMAGES_MAX 1000000
/* Days an image stays in the archive class before a rule may expire it. */
#define LIFECYCLE_ARCHIVE_MIN_DAYS 90
/* A msg buffer of this size holds every validation message whole, except a
 * list of many long unknown property names, which is cut. */
#define LIFECYCLE_MSG_CAP 1024

/* The prefix of every validation message; the detail follows it. */
#define LIFECYCLE_MSG_PREFIX                                                                       \
    "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: "

/* A parsed, validated policy; rules are held in rulePriority order. */
struct lifecycle_policy;

/*
 * Parse and validate the policy text (len bytes of UTF-8, need not be
 * NUL-terminated). On success *out is a new policy (free it with
 * lifecycle_policy_free); pass out == NULL to validate only.
 *
 * Returns BERTH_OK; BERTH_EINVAL for any invalid text, with the ECR message
 * in msg (the API layer answers InvalidParameterException with it as is):
 *   LIFECYCLE_MSG_PREFIX "'Lifecycle policy validation failure: <detail>'"
 * or, for the length bounds,
 *   LIFECYCLE_MSG_PREFIX "'Member must have length greater than or equal to 100'"
 *   LIFECYCLE_MSG_PREFIX "'Member must have length less than or equal to 30720'".
 * BERTH_ENOMEM when out of memory (msg says so). msg (msg_cap bytes, may be
 * NULL when msg_cap is 0) is always NUL-terminated and valid UTF-8; a
 * message longer than msg_cap - 1 bytes is cut at a character boundary.
 * User strings quoted in messages are clipped to 128 bytes.
 *
 * The first problem found is reported, in this order: length, JSON syntax,
 * the top level, then each rule in text order (its own keys, then action,
 * description, rulePriority, selection), then the rules together
 * (duplicate rulePriority, more than one untagged rule, "any" not last).
 * Does not block.
 */
enum berth_err lifecycle_policy_parse(const char *text, size_t len, struct lifecycle_policy **out,
                                      char *msg, size_t msg_cap);

/* Free a policy from lifecycle_policy_parse; NULL is fine. */
void lifecycle_policy_free(struct lifecycle_policy *p);

/* Number of rules in a parsed policy (1..LIFECYCLE_RULES_MAX). */
size_t lifecycle_policy_rule_count(const struct lifecycle_policy *p);

/* One image (manifest) of the repository, as the caller knows it. All
 * pointers are borrowed for the duration of the call. */
struct lifecycle_image {
    const char *digest;      /* tie-break key only; NULL sorts as "" */
    int64_t pushed_at_ms;    /* push time, Unix epoch milliseconds */
    const char *const *tags; /* tag_count non-NULL strings; NULL when 0 */
    size_t tag_count;        /* 0 = untagged */
    const size_t *parents;   /* indices (into the images array) of the */
    size_t parent_count;     /* indexes / manifest lists referencing it */
    int64_t pulled_at_ms;    /* last recorded pull, 0 = never (then the push time counts) */
    int64_t archived_at_ms;  /* when it entered the archive class (archived images) */
    bool is_archived;        /* in the archive storage class (else standard) */
    bool has_subject;        /* an OCI 1.1 referrer (signature, SBOM, ...) of */
    size_t subject;          /* images[subject], in the same repository */
};

/* One image the policy expires, and the rule that selected it. */
struct lifecycle_expiration {
    size_t image;      /* index into the images array */
    int rule_priority; /* rulePriority of the rule that expired it */
    bool transition;   /* the rule moves it to the archive class rather than deleting it */
};

/*
 * Decide which images the policy expires at time now_ms (Unix epoch ms).
 * ECR's algorithm (reference/ecr-api.md 3.2): rules run in rulePriority
 * order over the same snapshot. A rule selects images by tag status and
 * lists (tagPrefixList: every prefix is a prefix of some tag; tagPatternList:
 * every pattern matches some whole tag, '*' = any run); imageCountMoreThan N
 * makes every selected image after the N youngest a candidate,
 * sinceImagePushed N makes every selected image pushed more than N * 24 h
 * before now_ms a candidate, sinceImagePulled the same by the last pull (the
 * push for an image never pulled), sinceImageTransitioned by the time it was
 * archived. A rule selects only images of its storage class. A candidate is expired by the rule
 * unless an earlier rule selected it (an image expired or kept by an earlier rule still counts
 * toward later rules' imageCountMoreThan, but is never expired by them). Youngest means latest
 * pushed_at_ms; equal push times are ordered by digest (strcmp): the smaller digest counts as older
 * and is expired first; equal digests fall back to the lower array index as older.
 *
 * Then the repository rule: an image referenced (via parents) by an image
 * that is not expired is not expired either, transitively, so an index
 * that stays keeps its children and nested indexes keep theirs. Such an
 * image stays claimed by its rule; no other image is expired in its place.
 * Parent cycles are tolerated.
 *
 * Last, referrers go with their subject, as ECR's lifecycle removes them
 * (reference/ecr-api.md, 2024-06): an untagged image that no index lists
 * and whose subject is expired is expired too, by the subject's rule,
 * transitively (a signature of an SBOM of the image). A referrer with a
 * tag of its own, or listed by an index, is an image in its own right and
 * only rules expire it.
 *
 * On success *out is a malloc'd array of *out_count expirations in
 * ascending image order (NULL when none); the caller frees it with free().
 * Deleting them is the caller's business: delete indexes before the
 * images they reference if the store refuses to orphan references.
 *
 * p, out and out_count must not be NULL. Returns BERTH_OK; BERTH_EINVAL
 * when a parent or subject index is >= count, a tag is NULL, or an array pointer is
 * NULL with a non-zero count; BERTH_ETOOBIG when count >
 * LIFECYCLE_IMAGES_MAX (or the parent references number over SIZE_MAX / 2);
 * BERTH_ENOMEM. *out and *out_count are written only on success. O(n log n + rules * n * match
 * cost) time, O(n + parent references) memory. Does not block.
 */
enum berth_err lifecycle_evaluate(const struct lifecycle_policy *p,
                                  const struct lifecycle_image *images, size_t count,
                                  int64_t now_ms, struct lifecycle_expiration **out,
                                  size_t *out_count);

#endif
