/*
 * Lifecycle policies applied to the store (see lifecycle_run.h): a snapshot
 * of one repository's images in one read transaction, the pure evaluator,
 * then one registry_image_delete_unchanged (ECR BatchDeleteImage by digest,
 * if the image is still as the snapshot saw it) per expired image, indexes
 * before the images they list. Also the stored previews. Runs on the
 * calling thread.
 */
#include "storage/lifecycle/lifecycle_run.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "storage/lifecycle/lifecycle.h"
#include "common/log.h"
#include "storage/meta/meta.h"
#include "storage/meta/meta_lifecycle.h"
#include "storage/registry/archive.h"
#include "storage/registry/registry.h"
#include "storage/store/store.h"
#include "common/str.h"
#include "common/timeutil.h"

#include "storage/meta/pace.h"

/* Repositories read per page by lifecycle_run_all. */
#define RUN_REPO_PAGE 100
/* Preview results written (or cleared) per write transaction. */
#define PREVIEW_CHUNK 200

static const char *const fate_names[] = {
    [LIFECYCLE_WOULD_EXPIRE] = "would-expire",
    [LIFECYCLE_EXPIRED] = "expired",
    [LIFECYCLE_ARCHIVED] = "archived",
    [LIFECYCLE_GONE] = "gone",
    [LIFECYCLE_KEPT_REFERENCED] = "kept-referenced",
    [LIFECYCLE_KEPT_CHANGED] = "kept-changed",
    [LIFECYCLE_FAILED] = "failed",
};

const char *lifecycle_fate_name(enum lifecycle_fate f)
{
    if ((size_t)f < sizeof(fate_names) / sizeof(fate_names[0])) {
        return fate_names[f];
    }
    return "unknown";
}

/* ---- the snapshot ---- */

struct snap_image {
    int64_t id;
    size_t digest_off; /* into strs */
    int64_t pushed_at;
    int64_t pulled_at;
    int64_t archived_at;
    bool is_archived;
    size_t tag_first; /* into tag_offs */
    size_t tag_count;
    size_t parent_first; /* into parents */
    size_t parent_count;
    bool is_parent;   /* lists other images of the repository */
    bool has_subject; /* an OCI 1.1 referrer of img[subject] */
    size_t subject;
};

struct edge {
    size_t parent;
    size_t child;
};

struct lifecycle_snapshot {
    struct snap_image *img;
    size_t count;
    size_t cap;
    char *strs; /* every digest and tag, NUL-terminated, back to back */
    size_t strs_len;
    size_t strs_cap;
    size_t *tag_offs; /* offsets of tags into strs, grouped per image */
    size_t tag_count;
    size_t tag_cap;
    struct edge *edges;
    size_t edge_count;
    size_t edge_cap;
    size_t *parents;       /* per image, the indexes that list it */
    const char **tag_ptrs; /* tag_offs resolved, once loading is done */
    size_t cursor;         /* tag loading: current image */
    bool oom;
    bool bad; /* a row referred to an unknown manifest (changed under us) */
};

static void snapshot_free(struct lifecycle_snapshot *s)
{
    if (s == NULL) {
        return;
    }
    free(s->img);
    free(s->strs);
    free(s->tag_offs);
    free(s->edges);
    free(s->parents);
    free(s->tag_ptrs);
    free(s);
}

/* Grow *p (elements of size sz) to hold at least need; false on OOM. */
static bool grow(void **p, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap) {
        return true;
    }
    size_t n = *cap ? *cap : 64;
    while (n < need) {
        if (n > SIZE_MAX / 2 / sz) {
            return false;
        }
        n *= 2;
    }
    void *q = realloc(*p, n * sz);
    if (q == NULL) {
        return false;
    }
    *p = q;
    *cap = n;
    return true;
}

static bool add_str(struct lifecycle_snapshot *s, const char *str, size_t *off)
{
    size_t n = strlen(str) + 1;
    if (!grow((void **)&s->strs, &s->strs_cap, s->strs_len + n, 1)) {
        return false;
    }
    memcpy(s->strs + s->strs_len, str, n);
    *off = s->strs_len;
    s->strs_len += n;
    return true;
}

static int load_image(void *arg, const struct meta_lc_image *in)
{
    struct lifecycle_snapshot *s = arg;
    if (s->count >= LIFECYCLE_IMAGES_MAX) {
        s->count++; /* reported as too big */
        return 1;
    }
    if (!grow((void **)&s->img, &s->cap, s->count + 1, sizeof(*s->img))) {
        s->oom = true;
        return 1;
    }
    struct snap_image *img = &s->img[s->count];
    memset(img, 0, sizeof(*img));
    img->id = in->id;
    img->pushed_at = in->pushed_at;
    img->pulled_at = in->pulled_at;
    img->archived_at = in->archived_at;
    img->is_archived = in->is_archived;
    if (!add_str(s, in->digest, &img->digest_off)) {
        s->oom = true;
        return 1;
    }
    s->count++;
    return 0;
}

/* Tags arrive ordered by manifest id, and images are in id order: walk
 * both together. */
static int load_tag(void *arg, int64_t manifest_id, const char *tag)
{
    struct lifecycle_snapshot *s = arg;
    while (s->cursor < s->count && s->img[s->cursor].id < manifest_id) {
        s->cursor++;
    }
    if (s->cursor == s->count || s->img[s->cursor].id != manifest_id) {
        s->bad = true;
        return 1;
    }
    struct snap_image *img = &s->img[s->cursor];
    size_t off;
    if (!add_str(s, tag, &off) ||
        !grow((void **)&s->tag_offs, &s->tag_cap, s->tag_count + 1, sizeof(*s->tag_offs))) {
        s->oom = true;
        return 1;
    }
    if (img->tag_count == 0) {
        img->tag_first = s->tag_count;
    }
    s->tag_offs[s->tag_count++] = off;
    img->tag_count++;
    return 0;
}

static bool find_image(const struct lifecycle_snapshot *s, int64_t id, size_t *out)
{
    size_t lo = 0, hi = s->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->img[mid].id < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < s->count && s->img[lo].id == id) {
        *out = lo;
        return true;
    }
    return false;
}

static int load_edge(void *arg, int64_t parent_id, int64_t child_id)
{
    struct lifecycle_snapshot *s = arg;
    size_t p, c;
    if (!find_image(s, parent_id, &p) || !find_image(s, child_id, &c)) {
        s->bad = true;
        return 1;
    }
    if (!grow((void **)&s->edges, &s->edge_cap, s->edge_count + 1, sizeof(*s->edges))) {
        s->oom = true;
        return 1;
    }
    s->edges[s->edge_count].parent = p;
    s->edges[s->edge_count].child = c;
    s->edge_count++;
    s->img[p].is_parent = true;
    return 0;
}

static int load_subject(void *arg, int64_t subject_id, int64_t referrer_id)
{
    struct lifecycle_snapshot *s = arg;
    size_t subj, r;
    if (!find_image(s, subject_id, &subj) || !find_image(s, referrer_id, &r)) {
        s->bad = true;
        return 1;
    }
    s->img[r].has_subject = true;
    s->img[r].subject = subj;
    return 0;
}

/* After loading: per-image parent lists and resolved tag pointers. */
static enum berth_err snapshot_finish(struct lifecycle_snapshot *s)
{
    if (s->edge_count > 0) {
        s->parents = malloc(s->edge_count * sizeof(*s->parents));
        if (s->parents == NULL) {
            return BERTH_ENOMEM;
        }
        for (size_t e = 0; e < s->edge_count; e++) {
            s->img[s->edges[e].child].parent_count++;
        }
        size_t at = 0;
        for (size_t i = 0; i < s->count; i++) {
            s->img[i].parent_first = at;
            at += s->img[i].parent_count;
            s->img[i].parent_count = 0;
        }
        for (size_t e = 0; e < s->edge_count; e++) {
            struct snap_image *c = &s->img[s->edges[e].child];
            s->parents[c->parent_first + c->parent_count++] = s->edges[e].parent;
        }
    }
    if (s->tag_count > 0) {
        s->tag_ptrs = malloc(s->tag_count * sizeof(*s->tag_ptrs));
        if (s->tag_ptrs == NULL) {
            return BERTH_ENOMEM;
        }
        for (size_t t = 0; t < s->tag_count; t++) {
            s->tag_ptrs[t] = s->strs + s->tag_offs[t];
        }
    }
    return BERTH_OK;
}

/* Load the repository's images in one read transaction. */
static enum berth_err snapshot_load(struct meta *m, int64_t repo_id,
                                    struct lifecycle_snapshot **out)
{
    struct lifecycle_snapshot *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return BERTH_ENOMEM;
    }
    enum berth_err rc = meta_begin_read(m);
    if (rc == BERTH_OK) {
        rc = meta_lifecycle_images(m, repo_id, load_image, s);
        if (rc == BERTH_OK && !s->oom && s->count <= LIFECYCLE_IMAGES_MAX) {
            rc = meta_lifecycle_tags(m, repo_id, load_tag, s);
        }
        if (rc == BERTH_OK && !s->oom && !s->bad && s->count <= LIFECYCLE_IMAGES_MAX) {
            rc = meta_lifecycle_children(m, repo_id, load_edge, s);
        }
        if (rc == BERTH_OK && !s->oom && !s->bad && s->count <= LIFECYCLE_IMAGES_MAX) {
            rc = meta_lifecycle_referrers(m, repo_id, load_subject, s);
        }
        meta_rollback(m); /* ends the read transaction */
    }
    if (rc == BERTH_OK && s->oom) {
        rc = BERTH_ENOMEM;
    }
    if (rc == BERTH_OK && s->count > LIFECYCLE_IMAGES_MAX) {
        rc = BERTH_ETOOBIG;
    }
    if (rc == BERTH_OK && s->bad) {
        /* Cannot happen inside one read transaction; refuse rather than
         * evaluate an inconsistent picture. */
        rc = BERTH_EDB;
    }
    if (rc == BERTH_OK) {
        rc = snapshot_finish(s);
    }
    if (rc != BERTH_OK) {
        snapshot_free(s);
        return rc;
    }
    *out = s;
    return BERTH_OK;
}

/* ---- evaluation and deletion ---- */

static void set_msg(char *msg, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_msg(char *msg, size_t cap, const char *fmt, ...)
{
    if (msg == NULL || cap == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
}

/* An expiration on its way into the result, with what deletion needs. */
struct sort_entry {
    struct lifecycle_run_item item;
    int64_t id;     /* manifest row */
    bool is_parent; /* an index listing other images */
};

static int cmp_oldest_first(const void *a, const void *b)
{
    const struct lifecycle_run_item *x = &((const struct sort_entry *)a)->item;
    const struct lifecycle_run_item *y = &((const struct sort_entry *)b)->item;
    if (x->pushed_at_ms != y->pushed_at_ms) {
        return x->pushed_at_ms < y->pushed_at_ms ? -1 : 1;
    }
    return strcmp(x->digest, y->digest);
}

/* Tags joined with ',' for the log (tags follow the OCI grammar, so no
 * quoting is needed, but log_value guards anyway). */
static void join_tags(const struct lifecycle_run_item *it, char *out, size_t cap)
{
    char raw[1024];
    size_t o = 0;
    raw[0] = '\0';
    for (size_t t = 0; t < it->tag_count && o < sizeof(raw); t++) {
        int n = snprintf(raw + o, sizeof(raw) - o, "%s%s", t ? "," : "", it->tags[t]);
        if (n < 0) {
            break;
        }
        o += (size_t)n;
    }
    log_value(raw, out, cap);
}

/* The fate of an item the registry refused to archive or delete for a reason
 * the caller did not handle itself: gone when the image or its repository is
 * (*repo_gone set for the latter), failed (and logged) otherwise. */
static enum lifecycle_fate refused_fate(const struct lifecycle_run_result *r,
                                        const struct lifecycle_run_item *it,
                                        const struct registry_status *s, bool *repo_gone)
{
    switch (s->reason) {
    case REG_MANIFEST_UNKNOWN:
        return LIFECYCLE_GONE;
    case REG_REPO_UNKNOWN:
        *repo_gone = true;
        return LIFECYCLE_GONE;
    default: {
        char v[600];
        log_error("event=lifecycle_error repo=%s digest=%s msg=%s", r->repo, it->digest,
                  log_value(s->message, v, sizeof(v)));
        return LIFECYCLE_FAILED;
    }
    }
}

/* Move one item to the archive class (a transition rule), as
 * UpdateImageStorageClass does; an index takes the images it lists along. */
static void archive_item(struct store *st, struct lifecycle_run_result *r, size_t k,
                         bool *repo_gone, struct write_pace *pace)
{
    struct lifecycle_run_item *it = &r->items[k];
    enum lifecycle_fate fate = LIFECYCLE_ARCHIVED;
    struct digest d;
    if (digest_parse(it->digest, &d) != BERTH_OK) {
        fate = LIFECYCLE_FAILED;
    } else {
        struct meta_manifest mf;
        struct registry_status s;
        write_pace_start(pace);
        /* archives only: no restore delay, no scan quota to apply */
        enum berth_err rc = registry_image_set_storage_class(st, r->repo, NULL, &d,
                                                             META_STORAGE_ARCHIVE, 0, 0, &mf, &s);
        write_pace_end(pace, store_meta(st));
        if (rc != BERTH_OK) {
            fate = s.reason == REG_STORAGE_CLASS_UNSUPPORTED
                       ? LIFECYCLE_KEPT_REFERENCED /* an index lists it, or it is restoring */
                       : refused_fate(r, it, &s, repo_gone);
        }
    }
    it->fate = fate;
    if (fate == LIFECYCLE_ARCHIVED) {
        r->archived++;
        log_info("event=lifecycle_archived repo=%s digest=%s rule=%d", r->repo, it->digest,
                 it->rule_priority);
    }
}

/* Delete one item through the registry, provided the image is still as
 * the snapshot saw it (manifest row manifest_id, the same tags): checked in
 * the deletion's own transaction, so a push that re-tags the image after
 * the evaluation keeps it (kept, changed). Returns false when the registry
 * refused because an index lists the image (retry after the indexes). */
static bool delete_item(struct store *st, struct lifecycle_run_result *r, size_t k,
                        int64_t manifest_id, bool *repo_gone, struct write_pace *pace)
{
    struct lifecycle_run_item *it = &r->items[k];
    if (it->transition) {
        archive_item(st, r, k, repo_gone, pace);
        return true;
    }
    enum lifecycle_fate fate = LIFECYCLE_EXPIRED;
    struct digest d;
    if (digest_parse(it->digest, &d) != BERTH_OK) {
        fate = LIFECYCLE_FAILED; /* not a digest berth stores */
    } else {
        /* ECR BatchDeleteImage with {imageDigest} */
        struct registry_image_seen seen = {
            .manifest_id = manifest_id, .tags = it->tags, .tag_count = it->tag_count};
        struct registry_status s;
        bool changed = false;
        write_pace_start(pace);
        enum berth_err rc =
            registry_image_delete_unchanged(st, r->repo, &d, &seen, NULL, NULL, &changed, &s);
        write_pace_end(pace, store_meta(st));
        if (rc == BERTH_OK && changed) {
            fate = LIFECYCLE_KEPT_CHANGED;
        }
        if (rc != BERTH_OK) {
            if (s.reason == REG_REFERENCED_BY_INDEX) {
                return false;
            }
            fate = refused_fate(r, it, &s, repo_gone);
        }
    }
    it->fate = fate;
    if (fate == LIFECYCLE_EXPIRED) {
        r->expired++;
        char tags[1100], when[32];
        join_tags(it, tags, sizeof(tags));
        time_format_rfc3339(it->pushed_at_ms, when, sizeof(when));
        log_info("event=lifecycle_expired repo=%s digest=%s rule=%d pushed_at=%s tags=%s", r->repo,
                 it->digest, it->rule_priority, when, it->tag_count ? tags : "-");
    } else if (fate == LIFECYCLE_KEPT_CHANGED) {
        log_info("event=lifecycle_kept repo=%s digest=%s reason=changed", r->repo, it->digest);
    }
    return true;
}

/* Delete the items (indexes first), retrying those an index still listed
 * while rounds make progress. ids[k] is item k's manifest id. */
static void delete_items(struct store *st, struct lifecycle_run_result *r, const int64_t *ids,
                         const bool *is_parent, const atomic_bool *cancel)
{
    bool *todo = calloc(r->item_count ? r->item_count : 1, sizeof(*todo));
    if (todo == NULL) {
        for (size_t k = 0; k < r->item_count; k++) {
            r->items[k].fate = LIFECYCLE_FAILED;
        }
        return;
    }
    for (size_t k = 0; k < r->item_count; k++) {
        todo[k] = true;
    }
    bool repo_gone = false, stopped = false, progress = true;
    struct write_pace pace = {0};
    while (progress && !repo_gone && !stopped) {
        progress = false;
        for (int parents_first = 1; parents_first >= 0 && !repo_gone && !stopped; parents_first--) {
            for (size_t k = 0; k < r->item_count && !repo_gone; k++) {
                if (!todo[k] || is_parent[k] != (parents_first == 1)) {
                    continue;
                }
                if (cancel != NULL && atomic_load(cancel)) {
                    stopped = true; /* the rest is left for the next run */
                    break;
                }
                if (delete_item(st, r, k, ids[k], &repo_gone, &pace)) {
                    todo[k] = false;
                    progress = true;
                }
            }
        }
    }
    for (size_t k = 0; k < r->item_count; k++) {
        if (!todo[k] || stopped) {
            continue;
        }
        if (repo_gone) {
            r->items[k].fate = LIFECYCLE_GONE;
            continue;
        }
        /* Still listed by an index that stays (one pushed since the
         * snapshot). */
        r->items[k].fate = LIFECYCLE_KEPT_REFERENCED;
        log_info("event=lifecycle_kept repo=%s digest=%s reason=referenced", r->repo,
                 r->items[k].digest);
    }
    free(todo);
}

/* Load the repository and the policy text to use (caller frees *text). */
static enum berth_err load_policy(struct meta *m, int64_t repo_id,
                                  const struct lifecycle_run_options *opt, struct meta_repo *repo,
                                  char **text, char *msg, size_t cap)
{
    enum berth_err rc = meta_repo_get_by_id(m, repo_id, repo);
    if (rc == BERTH_ENOTFOUND) {
        set_msg(msg, cap, "repository %lld does not exist", (long long)repo_id);
    }
    if (rc != BERTH_OK) {
        return rc;
    }
    if (opt->policy_text != NULL) {
        *text = strdup(opt->policy_text);
        return *text ? BERTH_OK : BERTH_ENOMEM;
    }
    rc = meta_repo_get_text(m, repo_id, META_REPO_LIFECYCLE, text);
    if (rc == BERTH_OK && *text == NULL) {
        set_msg(msg, cap, "repository %s has no lifecycle policy", repo->name);
        rc = BERTH_ENOTFOUND;
    }
    return rc;
}

enum berth_err lifecycle_run_repo(struct store *st, int64_t repo_id,
                                  const struct lifecycle_run_options *opt,
                                  struct lifecycle_run_result **out, char *msg, size_t msg_cap)
{
    set_msg(msg, msg_cap, "%s", "");
    struct meta *m;
    enum berth_err got = store_meta_get(st, &m);
    if (got != BERTH_OK) {
        return got;
    }
    int64_t t0 = time_mono_ns();
    struct meta_repo repo;
    char *text = NULL;
    struct lifecycle_policy *policy = NULL;
    struct lifecycle_snapshot *snap = NULL;
    struct lifecycle_image *images = NULL;
    struct lifecycle_expiration *exp = NULL;
    size_t exp_count = 0;
    struct sort_entry *entries = NULL;
    int64_t *ids = NULL;
    bool *is_parent = NULL;
    struct lifecycle_run_result *r = NULL;

    enum berth_err rc = load_policy(m, repo_id, opt, &repo, &text, msg, msg_cap);
    if (rc != BERTH_OK) {
        goto out;
    }
    int64_t now_ms = opt->now_ms ? opt->now_ms : time_now_ms();
    if (!opt->dry_run && opt->policy_text == NULL && opt->new_policy_delay_ms > 0 &&
        repo.lifecycle_set_at > 0 && now_ms - repo.lifecycle_set_at < opt->new_policy_delay_ms) {
        /* a new or changed policy waits, so that "put, then preview" shows
         * what it would expire before it does */
        r = calloc(1, sizeof(*r));
        if (r == NULL) {
            rc = BERTH_ENOMEM;
            goto out;
        }
        r->repo_id = repo_id;
        str_copy(r->repo, sizeof(r->repo), repo.name);
        r->now_ms = now_ms;
        r->deferred_ms = repo.lifecycle_set_at + opt->new_policy_delay_ms - now_ms;
        log_info("event=lifecycle_deferred repo=%s due_in_ms=%lld", r->repo,
                 (long long)r->deferred_ms);
        *out = r;
        r = NULL;
        goto out;
    }
    char why[LIFECYCLE_MSG_CAP];
    rc = lifecycle_policy_parse(text, strlen(text), &policy, why, sizeof(why));
    if (rc != BERTH_OK) {
        set_msg(msg, msg_cap, "%s", why);
        goto out;
    }
    rc = snapshot_load(m, repo_id, &snap);
    if (rc == BERTH_ETOOBIG) {
        set_msg(msg, msg_cap, "repository %s has more than %d images", repo.name,
                LIFECYCLE_IMAGES_MAX);
    }
    if (rc != BERTH_OK) {
        goto out;
    }
    r = calloc(1, sizeof(*r));
    images = calloc(snap->count ? snap->count : 1, sizeof(*images));
    if (r == NULL || images == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    r->repo_id = repo_id;
    str_copy(r->repo, sizeof(r->repo), repo.name);
    r->image_count = snap->count;
    r->now_ms = now_ms;
    for (size_t i = 0; i < snap->count; i++) {
        const struct snap_image *si = &snap->img[i];
        images[i].digest = snap->strs + si->digest_off;
        images[i].pushed_at_ms = si->pushed_at;
        images[i].tag_count = si->tag_count;
        images[i].tags = si->tag_count ? snap->tag_ptrs + si->tag_first : NULL;
        images[i].parent_count = si->parent_count;
        images[i].parents = si->parent_count ? snap->parents + si->parent_first : NULL;
        images[i].pulled_at_ms = si->pulled_at;
        images[i].archived_at_ms = si->archived_at;
        images[i].is_archived = si->is_archived;
        images[i].has_subject = si->has_subject;
        images[i].subject = si->subject;
    }
    int64_t t1 = time_mono_ns();
    r->load_us = (t1 - t0) / 1000;
    rc = lifecycle_evaluate(policy, images, snap->count, r->now_ms, &exp, &exp_count);
    if (rc != BERTH_OK) {
        goto out;
    }
    int64_t t2 = time_mono_ns();
    r->eval_us = (t2 - t1) / 1000;
    entries = calloc(exp_count ? exp_count : 1, sizeof(*entries));
    r->items = calloc(exp_count ? exp_count : 1, sizeof(*r->items));
    ids = calloc(exp_count ? exp_count : 1, sizeof(*ids));
    is_parent = calloc(exp_count ? exp_count : 1, sizeof(*is_parent));
    if (entries == NULL || r->items == NULL || ids == NULL || is_parent == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    r->item_count = exp_count;
    for (size_t k = 0; k < exp_count; k++) {
        const struct lifecycle_image *img = &images[exp[k].image];
        struct lifecycle_run_item *it = &entries[k].item;
        it->digest = img->digest;
        it->pushed_at_ms = img->pushed_at_ms;
        it->tags = img->tags;
        it->tag_count = img->tag_count;
        it->rule_priority = exp[k].rule_priority;
        it->transition = exp[k].transition;
        it->is_archived = img->is_archived;
        it->fate = LIFECYCLE_WOULD_EXPIRE;
        entries[k].id = snap->img[exp[k].image].id;
        entries[k].is_parent = snap->img[exp[k].image].is_parent;
    }
    /* Oldest first, as people read such lists. */
    qsort(entries, exp_count, sizeof(*entries), cmp_oldest_first);
    for (size_t k = 0; k < exp_count; k++) {
        r->items[k] = entries[k].item;
        ids[k] = entries[k].id;
        is_parent[k] = entries[k].is_parent;
    }
    if (!opt->dry_run) {
        delete_items(st, r, ids, is_parent, opt->cancel);
        r->delete_us = (time_mono_ns() - t2) / 1000;
        enum berth_err set = meta_repo_set_lifecycle_evaluated(m, repo_id, r->now_ms);
        if (set != BERTH_OK && set != BERTH_ENOTFOUND) {
            log_warn("event=lifecycle_error repo=%s op=set_evaluated err=%s", r->repo,
                     berth_strerror(set));
        }
    }
    size_t kept = 0, failed = 0;
    for (size_t k = 0; k < r->item_count; k++) {
        kept += r->items[k].fate == LIFECYCLE_KEPT_CHANGED ||
                r->items[k].fate == LIFECYCLE_KEPT_REFERENCED;
        failed += r->items[k].fate == LIFECYCLE_FAILED;
    }
    log_info("event=lifecycle_run repo=%s dry_run=%d images=%zu selected=%zu expired=%zu "
             "archived=%zu kept=%zu failed=%zu load_ms=%lld eval_ms=%lld delete_ms=%lld",
             r->repo, opt->dry_run ? 1 : 0, r->image_count, r->item_count, r->expired, r->archived,
             kept, failed, (long long)(r->load_us / 1000), (long long)(r->eval_us / 1000),
             (long long)(r->delete_us / 1000));
    r->snap = snap;
    snap = NULL;
    *out = r;
    r = NULL;
out:
    free(text);
    lifecycle_policy_free(policy);
    free(images);
    free(exp);
    free(entries);
    free(ids);
    free(is_parent);
    lifecycle_run_result_free(r);
    snapshot_free(snap);
    return rc;
}

void lifecycle_run_result_free(struct lifecycle_run_result *r)
{
    if (r == NULL) {
        return;
    }
    free(r->items);
    snapshot_free(r->snap);
    free(r);
}

/* ---- every repository ---- */

struct repo_page {
    int64_t ids[RUN_REPO_PAGE];
    size_t count;
};

static int page_repo(void *arg, int64_t repo_id, const char *name)
{
    (void)name;
    struct repo_page *p = arg;
    p->ids[p->count++] = repo_id;
    return 0;
}

enum berth_err lifecycle_run_all(struct store *st, const struct lifecycle_run_options *opt,
                                 lifecycle_run_cb cb, void *arg, struct lifecycle_run_totals *out)
{
    if (opt->policy_text != NULL) {
        return BERTH_EINVAL;
    }
    struct meta *m;
    enum berth_err got = store_meta_get(st, &m);
    if (got != BERTH_OK) {
        return got;
    }
    int64_t t0 = time_mono_ns();
    struct lifecycle_run_totals t;
    memset(&t, 0, sizeof(t));
    struct repo_page page;
    int64_t after = 0;
    enum berth_err rc = BERTH_OK;
    for (;;) {
        page.count = 0;
        rc = meta_lifecycle_repos(m, after, RUN_REPO_PAGE, page_repo, &page);
        if (rc != BERTH_OK || page.count == 0) {
            break;
        }
        after = page.ids[page.count - 1];
        for (size_t i = 0; i < page.count; i++) {
            if (opt->cancel != NULL && atomic_load(opt->cancel)) {
                t.cancelled = true;
                break;
            }
            struct lifecycle_run_result *r = NULL;
            char msg[LIFECYCLE_MSG_CAP];
            enum berth_err one = lifecycle_run_repo(st, page.ids[i], opt, &r, msg, sizeof(msg));
            if (one == BERTH_ENOTFOUND) {
                continue; /* deleted, or its policy removed, since the page was read */
            }
            if (one != BERTH_OK) {
                char v[LIFECYCLE_MSG_CAP + 8];
                log_error("event=lifecycle_error repo_id=%lld err=%s msg=%s",
                          (long long)page.ids[i], berth_strerror(one),
                          log_value(msg, v, sizeof(v)));
                t.failed_repositories++;
                continue;
            }
            if (r->deferred_ms > 0) {
                t.deferred++;
                if (cb != NULL) {
                    cb(arg, r);
                }
                lifecycle_run_result_free(r);
                continue;
            }
            t.repositories++;
            t.images += (int64_t)r->image_count;
            t.selected += (int64_t)r->item_count;
            t.expired += (int64_t)r->expired;
            if (cb != NULL) {
                cb(arg, r);
            }
            lifecycle_run_result_free(r);
        }
        if (t.cancelled || page.count < RUN_REPO_PAGE) {
            break;
        }
    }
    t.duration_ms = (time_mono_ns() - t0) / 1000000;
    log_info("event=lifecycle_pass dry_run=%d ok=%d repositories=%lld deferred=%lld failed=%lld "
             "images=%lld selected=%lld expired=%lld cancelled=%d duration_ms=%lld",
             opt->dry_run ? 1 : 0, rc == BERTH_OK ? 1 : 0, (long long)t.repositories,
             (long long)t.deferred, (long long)t.failed_repositories, (long long)t.images,
             (long long)t.selected, (long long)t.expired, t.cancelled ? 1 : 0,
             (long long)t.duration_ms);
    if (rc == BERTH_OK && out != NULL) {
        *out = t;
    }
    return rc;
}

/* ---- previews ---- */

/* Remove every stored result of the repository, a chunk per statement. */
static enum berth_err clear_results(struct meta *m, int64_t repo_id)
{
    struct write_pace pace = {0};
    for (;;) {
        int64_t deleted = 0;
        write_pace_start(&pace);
        enum berth_err rc = meta_preview_clear_results(m, repo_id, PREVIEW_CHUNK, &deleted);
        if (rc != BERTH_OK || deleted == 0) {
            return rc;
        }
        write_pace_end(&pace, m);
    }
}

static char *tags_json(const struct lifecycle_run_item *it)
{
    if (it->tag_count == 0) {
        return NULL;
    }
    json_t *a = json_array();
    for (size_t t = 0; a != NULL && t < it->tag_count; t++) {
        if (json_array_append_new(a, json_string(it->tags[t])) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    char *text = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return text;
}

/* Store the results, PREVIEW_CHUNK per write transaction, and mark the
 * preview COMPLETE in the last one. */
static enum berth_err store_results(struct meta *m, const struct lifecycle_run_result *r)
{
    size_t k = 0;
    enum berth_err rc = BERTH_OK;
    struct write_pace pace = {0};
    do {
        rc = meta_begin(m);
        if (rc != BERTH_OK) {
            return rc;
        }
        write_pace_start(&pace);
        size_t end = k + PREVIEW_CHUNK < r->item_count ? k + PREVIEW_CHUNK : r->item_count;
        for (; rc == BERTH_OK && k < end; k++) {
            const struct lifecycle_run_item *it = &r->items[k];
            struct meta_preview_result row;
            memset(&row, 0, sizeof(row));
            row.seq = (int64_t)k;
            str_copy(row.digest, sizeof(row.digest), it->digest);
            row.pushed_at = it->pushed_at_ms;
            row.rule_priority = it->rule_priority;
            row.transition = it->transition;
            row.is_archived = it->is_archived;
            char *tags = tags_json(it);
            if (it->tag_count > 0 && tags == NULL) {
                rc = BERTH_ENOMEM;
                break;
            }
            row.tags_json = tags;
            rc = meta_preview_add_result(m, r->repo_id, &row);
            free(tags);
        }
        if (rc == BERTH_OK && k == r->item_count) {
            int64_t transitions = 0;
            for (size_t j = 0; j < r->item_count; j++) {
                transitions += r->items[j].transition;
            }
            rc = meta_preview_finish(m, r->repo_id, META_PREVIEW_COMPLETE,
                                     (int64_t)r->item_count - transitions, transitions,
                                     time_now_ms());
        }
        if (rc == BERTH_OK) {
            rc = meta_commit(m);
        }
        if (rc != BERTH_OK) {
            meta_rollback(m);
            return rc;
        }
        write_pace_end(&pace, m);
    } while (k < r->item_count);
    return BERTH_OK;
}

enum berth_err lifecycle_preview_process(struct store *st, int64_t repo_id,
                                         const atomic_bool *cancel)
{
    struct meta *m;
    enum berth_err got = store_meta_get(st, &m);
    if (got != BERTH_OK) {
        return got;
    }
    struct meta_preview pv;
    char *text = NULL;
    enum berth_err rc = meta_preview_get(m, repo_id, &pv, &text);
    if (rc == BERTH_ENOTFOUND) {
        return BERTH_OK;
    }
    if (rc != BERTH_OK) {
        return rc;
    }
    if (pv.status != META_PREVIEW_IN_PROGRESS) {
        free(text);
        return BERTH_OK;
    }
    rc = clear_results(m, repo_id);
    struct lifecycle_run_result *r = NULL;
    char msg[LIFECYCLE_MSG_CAP];
    if (rc == BERTH_OK) {
        struct lifecycle_run_options opt = {.dry_run = true, .policy_text = text, .cancel = cancel};
        rc = lifecycle_run_repo(st, repo_id, &opt, &r, msg, sizeof(msg));
        if (rc != BERTH_OK && rc != BERTH_ENOTFOUND) {
            /* The preview failed: say so to GetLifecyclePolicyPreview. */
            char v[LIFECYCLE_MSG_CAP + 8];
            log_error("event=lifecycle_preview_failed repo_id=%lld err=%s msg=%s",
                      (long long)repo_id, berth_strerror(rc), log_value(msg, v, sizeof(v)));
            rc = meta_preview_finish(m, repo_id, META_PREVIEW_FAILED, 0, 0, time_now_ms());
            free(text);
            return rc == BERTH_ENOTFOUND ? BERTH_OK : rc;
        }
    }
    if (rc == BERTH_OK) {
        rc = store_results(m, r);
    }
    if (rc == BERTH_OK) {
        log_info("event=lifecycle_preview repo=%s images=%zu expiring=%zu", r->repo, r->image_count,
                 r->item_count);
    }
    lifecycle_run_result_free(r);
    free(text);
    return rc == BERTH_ENOTFOUND ? BERTH_OK : rc;
}

struct pending_page {
    int64_t ids[RUN_REPO_PAGE];
    size_t count;
};

static int page_pending(void *arg, int64_t repo_id)
{
    struct pending_page *p = arg;
    p->ids[p->count++] = repo_id;
    return 0;
}

enum berth_err lifecycle_preview_process_pending(struct store *st, const atomic_bool *cancel,
                                                 int64_t *processed)
{
    struct meta *m;
    enum berth_err got = store_meta_get(st, &m);
    if (got != BERTH_OK) {
        return got;
    }
    int64_t n = 0, after = 0;
    enum berth_err rc = BERTH_OK;
    struct pending_page page;
    for (;;) {
        page.count = 0;
        rc = meta_preview_pending(m, after, RUN_REPO_PAGE, page_pending, &page);
        if (rc != BERTH_OK || page.count == 0) {
            break;
        }
        after = page.ids[page.count - 1];
        for (size_t i = 0; i < page.count; i++) {
            if (cancel != NULL && atomic_load(cancel)) {
                break;
            }
            enum berth_err one = lifecycle_preview_process(st, page.ids[i], cancel);
            if (one != BERTH_OK) {
                log_error("event=lifecycle_preview_failed repo_id=%lld err=%s",
                          (long long)page.ids[i], berth_strerror(one));
            }
            n++;
        }
        if (page.count < RUN_REPO_PAGE || (cancel != NULL && atomic_load(cancel))) {
            break;
        }
    }
    if (processed != NULL) {
        *processed = n;
    }
    return rc;
}
