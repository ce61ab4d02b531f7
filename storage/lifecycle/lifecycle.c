/*
 * ECR lifecycle policies: the pure evaluation function, (policy, images,
 * now) -> expirations; see lifecycle.h. No shared state; thread-safe.
 */
#include "storage/lifecycle/lifecycle.h"

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/str.h"
#include "lifecycle_int.h"

#define MS_PER_DAY INT64_C(86400000)

/* Sort key: the images youngest first. */
struct age_key {
    int64_t pushed_at_ms;
    const char *digest;
    size_t index;
};

static int cmp_youngest_first(const void *a, const void *b)
{
    const struct age_key *x = a, *y = b;
    if (x->pushed_at_ms != y->pushed_at_ms) {
        return x->pushed_at_ms > y->pushed_at_ms ? -1 : 1;
    }
    int c = strcmp(x->digest, y->digest);
    if (c != 0) {
        return c > 0 ? -1 : 1;
    }
    return (x->index < y->index) - (x->index > y->index);
}

static bool entry_matches(const struct lc_rule *r, size_t e, const char *tag)
{
    if (r->is_pattern) {
        return str_glob_match(r->list[e], tag);
    }
    return strncmp(tag, r->list[e], r->list_len[e]) == 0;
}

/* Does the rule's tag selection take the image? */
static bool selects(const struct lc_rule *r, const struct lifecycle_image *img)
{
    if (r->archive_class != img->is_archived) {
        return false;
    }
    switch (r->status) {
    case LC_ANY:
        return true;
    case LC_UNTAGGED:
        return img->tag_count == 0;
    case LC_TAGGED:
        break;
    }
    if (img->tag_count == 0) {
        return false;
    }
    /* Every list entry must match at least one of the image's tags. */
    for (size_t e = 0; e < r->list_count; e++) {
        bool found = false;
        for (size_t t = 0; t < img->tag_count && !found; t++) {
            found = entry_matches(r, e, img->tags[t]);
        }
        if (!found) {
            return false;
        }
    }
    return true;
}

/* Input checks; *edges is the total number of parent references. */
static enum berth_err check_images(const struct lifecycle_image *images, size_t count,
                                   size_t *edges)
{
    size_t total = 0;
    for (size_t i = 0; i < count; i++) {
        const struct lifecycle_image *img = &images[i];
        if ((img->tag_count > 0 && img->tags == NULL) ||
            (img->parent_count > 0 && img->parents == NULL)) {
            return BERTH_EINVAL;
        }
        for (size_t t = 0; t < img->tag_count; t++) {
            if (img->tags[t] == NULL) {
                return BERTH_EINVAL;
            }
        }
        for (size_t k = 0; k < img->parent_count; k++) {
            if (img->parents[k] >= count) {
                return BERTH_EINVAL;
            }
        }
        if (img->has_subject && img->subject >= count) {
            return BERTH_EINVAL;
        }
        if (img->parent_count > SIZE_MAX / 2 - total) {
            return BERTH_ETOOBIG;
        }
        total += img->parent_count;
    }
    *edges = total;
    return BERTH_OK;
}

/* One rule over the images in youngest-first order: record in expired_by
 * the candidates no earlier rule claimed, then claim everything it selects. */
static void apply_rule(const struct lc_rule *r, const struct lifecycle_image *images,
                       const struct age_key *order, size_t count, int64_t now_ms,
                       unsigned char *claimed, int *expired_by, unsigned char *transition)
{
    bool has_cutoff = false;
    int64_t cutoff = 0;
    if (r->count_type != LC_COUNT_MORE_THAN) {
        /* "Older than N days": now - pushed > N days, i.e. pushed < cutoff.
         * N <= INT32_MAX days fits in int64 milliseconds. */
        int64_t age_ms = r->count_number * MS_PER_DAY;
        if (now_ms >= INT64_MIN + age_ms) {
            cutoff = now_ms - age_ms;
            has_cutoff = true;
        }
    }
    uint64_t matched = 0;
    for (size_t k = 0; k < count; k++) {
        size_t i = order[k].index;
        if (!selects(r, &images[i])) {
            continue;
        }
        matched++;
        bool candidate;
        const struct lifecycle_image *img = &images[i];
        switch (r->count_type) {
        case LC_COUNT_MORE_THAN:
            candidate = matched > (uint64_t)r->count_number;
            break;
        case LC_SINCE_PULLED:
            candidate = has_cutoff &&
                        (img->pulled_at_ms > 0 ? img->pulled_at_ms : img->pushed_at_ms) < cutoff;
            break;
        case LC_SINCE_TRANSITIONED:
            candidate = has_cutoff && img->archived_at_ms < cutoff;
            break;
        case LC_SINCE_PUSHED:
        default:
            candidate = has_cutoff && img->pushed_at_ms < cutoff;
            break;
        }
        if (candidate && !claimed[i]) {
            expired_by[i] = r->priority;
            transition[i] = r->transition;
        }
        claimed[i] = 1;
    }
}

/* Lists in compressed form: off[0..count) holds how many items each list
 * has; made into where each list ends (off[count] the total), so that
 * filling item x of list p at --off[p] leaves list p at off[p] ..
 * off[p + 1]. */
static void counts_to_ends(size_t *off, size_t count)
{
    size_t running = 0;
    for (size_t p = 0; p < count; p++) {
        running += off[p];
        off[p] = running;
    }
    off[count] = running;
}

/* Un-expire every image reachable from a kept image through parent links
 * (a kept index keeps its children, transitively). kept is scratch space of
 * count bytes, zeroed. */
static enum berth_err keep_referenced(const struct lifecycle_image *images, size_t count,
                                      size_t edges, unsigned char *kept, int *expired_by)
{
    enum berth_err rc = BERTH_OK;
    size_t *off = NULL, *children = NULL, *stack = NULL;

    /* Children lists in compressed form: children of p are
     * children[off[p] .. off[p + 1]). */
    off = calloc(count + 1, sizeof(*off));
    children = malloc(edges * sizeof(*children));
    stack = malloc(count * sizeof(*stack));
    if (off == NULL || children == NULL || stack == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        for (size_t k = 0; k < images[i].parent_count; k++) {
            off[images[i].parents[k]]++;
        }
    }
    counts_to_ends(off, count);
    for (size_t i = 0; i < count; i++) {
        for (size_t k = 0; k < images[i].parent_count; k++) {
            children[--off[images[i].parents[k]]] = i;
        }
    }

    size_t top = 0;
    for (size_t i = 0; i < count; i++) {
        if (expired_by[i] == 0) {
            kept[i] = 1;
            stack[top++] = i;
        }
    }
    while (top > 0) {
        size_t p = stack[--top];
        for (size_t k = off[p]; k < off[p + 1]; k++) {
            size_t c = children[k];
            if (!kept[c]) {
                kept[c] = 1;
                expired_by[c] = 0;
                stack[top++] = c;
            }
        }
    }
out:
    free(stack);
    free(children);
    free(off);
    return rc;
}

/* A referrer that goes with its subject: untagged and listed by no index. */
static bool follows_subject(const struct lifecycle_image *img)
{
    return img->has_subject && img->tag_count == 0 && img->parent_count == 0;
}

/* Expire, by its subject's rule, every referrer (follows_subject) of an
 * image the policy deletes, transitively; mark them in followed. Returns
 * how many, or (size_t)-1 without memory. */
static size_t expire_referrers(const struct lifecycle_image *images, size_t count, int *expired_by,
                               const unsigned char *transition, unsigned char *followed)
{
    size_t n = 0, *off = NULL, *refs = NULL, *stack = NULL;
    size_t total = 0;
    for (size_t i = 0; i < count; i++) {
        total += follows_subject(&images[i]);
    }
    if (total == 0) {
        return 0;
    }
    off = calloc(count + 1, sizeof(*off));
    refs = malloc(total * sizeof(*refs));
    stack = malloc(count * sizeof(*stack));
    if (off == NULL || refs == NULL || stack == NULL) {
        n = (size_t)-1;
        goto out;
    }
    /* referrers of s are refs[off[s] .. off[s + 1]) */
    for (size_t i = 0; i < count; i++) {
        if (follows_subject(&images[i])) {
            off[images[i].subject]++;
        }
    }
    counts_to_ends(off, count);
    for (size_t i = 0; i < count; i++) {
        if (follows_subject(&images[i])) {
            refs[--off[images[i].subject]] = i;
        }
    }
    size_t top = 0;
    for (size_t i = 0; i < count; i++) {
        if (expired_by[i] != 0 && !transition[i]) {
            stack[top++] = i; /* deleted, not moved to the archive */
        }
    }
    while (top > 0) {
        size_t s = stack[--top];
        for (size_t k = off[s]; k < off[s + 1]; k++) {
            size_t r = refs[k];
            if (expired_by[r] == 0) {
                expired_by[r] = expired_by[s];
                followed[r] = 1;
                stack[top++] = r;
                n++;
            }
        }
    }
out:
    free(stack);
    free(refs);
    free(off);
    return n;
}

enum berth_err lifecycle_evaluate(const struct lifecycle_policy *p,
                                  const struct lifecycle_image *images, size_t count,
                                  int64_t now_ms, struct lifecycle_expiration **out,
                                  size_t *out_count)
{
    enum berth_err rc = BERTH_OK;
    struct age_key *order = NULL;
    unsigned char *flags = NULL;
    int *expired_by = NULL, *by_rule = NULL;
    unsigned char *transition = NULL;
    struct lifecycle_expiration *result = NULL;
    size_t edges = 0, n_expired = 0;

    assert(p != NULL && out != NULL && out_count != NULL);
    if (count > LIFECYCLE_IMAGES_MAX) {
        return BERTH_ETOOBIG;
    }
    if (count > 0 && images == NULL) {
        return BERTH_EINVAL;
    }
    rc = check_images(images, count, &edges);
    if (rc != BERTH_OK) {
        return rc;
    }
    if (count == 0) {
        *out = NULL;
        *out_count = 0;
        return BERTH_OK;
    }

    order = malloc(count * sizeof(*order));
    flags = calloc(count, 1);
    expired_by = calloc(count, sizeof(*expired_by));
    by_rule = calloc(count, sizeof(*by_rule));
    transition = calloc(count, 1);
    if (order == NULL || flags == NULL || expired_by == NULL || by_rule == NULL ||
        transition == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        order[i].pushed_at_ms = images[i].pushed_at_ms;
        order[i].digest = images[i].digest ? images[i].digest : "";
        order[i].index = i;
    }
    qsort(order, count, sizeof(*order), cmp_youngest_first);

    for (size_t r = 0; r < p->rule_count; r++) {
        apply_rule(&p->rules[r], images, order, count, now_ms, flags, expired_by, transition);
    }
    if (edges > 0) {
        memcpy(by_rule, expired_by, count * sizeof(*by_rule));
        memset(flags, 0, count);
        rc = keep_referenced(images, count, edges, flags, expired_by);
        if (rc != BERTH_OK) {
            goto out;
        }
    }
    memset(flags, 0, count);
    size_t followed = expire_referrers(images, count, expired_by, transition, flags);
    if (followed == (size_t)-1) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    if (followed > 0 && edges > 0) {
        /* an index among the referrers gone: what it alone kept is the
         * rules' again (no index lists a referrer that follows) */
        for (size_t i = 0; i < count; i++) {
            if (!flags[i]) {
                expired_by[i] = by_rule[i];
            }
        }
        memset(flags, 0, count);
        rc = keep_referenced(images, count, edges, flags, expired_by);
        if (rc != BERTH_OK) {
            goto out;
        }
    }

    for (size_t i = 0; i < count; i++) {
        n_expired += expired_by[i] != 0;
    }
    if (n_expired > 0) {
        result = malloc(n_expired * sizeof(*result));
        if (result == NULL) {
            rc = BERTH_ENOMEM;
            goto out;
        }
        size_t k = 0;
        for (size_t i = 0; i < count; i++) {
            if (expired_by[i] != 0) {
                result[k].image = i;
                result[k].rule_priority = expired_by[i];
                result[k].transition = transition[i] != 0;
                k++;
            }
        }
    }
    *out = result;
    *out_count = n_expired;
    result = NULL;
out:
    free(result);
    free(transition);
    free(by_rule);
    free(expired_by);
    free(flags);
    free(order);
    return rc;
}
