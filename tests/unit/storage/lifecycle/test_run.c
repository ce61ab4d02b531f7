/* Unit tests for storage/lifecycle/run.c over a real store: enforcement
 * deletes what the policy selects (and only that), dry runs change nothing,
 * indexes keep their children, lastEvaluatedAt, every repository at once,
 * previews stored and replaced, the archive rules over the recorded pull and
 * archive times, and images that changed since the snapshot
 * (even in the instant before their delete) are left for the next run.
 * Includes the .c to reach delete_item() and to hook its registry call. */
#include "unit.h"
#include "unit_fds.h"
#include "unit_registry.h"

/* The run's delete, with a hook that runs first: a push that lands between
 * the evaluation and the deletion's transaction. */
static void (*before_delete)(struct store *st);
static enum berth_err hooked_delete(struct store *st, const char *repo, const struct digest *digest,
                                    const struct registry_image_seen *seen, registry_removed_cb cb,
                                    void *arg, bool *changed, struct registry_status *s);
#define registry_image_delete_unchanged hooked_delete
#include "storage/lifecycle/run.c"
#undef registry_image_delete_unchanged

static enum berth_err hooked_delete(struct store *st, const char *repo, const struct digest *digest,
                                    const struct registry_image_seen *seen, registry_removed_cb cb,
                                    void *arg, bool *changed, struct registry_status *s)
{
    void (*hook)(struct store *) = before_delete;
    before_delete = NULL;
    if (hook != NULL) {
        hook(st);
    }
    return registry_image_delete_unchanged(st, repo, digest, seen, cb, arg, changed, s);
}

#define DAY_MS (86400LL * 1000)

static char root[UNIT_ROOT_MAX]; /* the running test's store */

static struct meta_repo repo_of(struct store *st, const char *name)
{
    struct meta_repo r;
    struct registry_status s;
    CHECK_INT(registry_repo(st, name, true, &r, &s), BERTH_OK);
    return r;
}

/* Push a distinct image (its own config) with the given tags; 1 ms apart
 * so push times are ordered as pushes are. */
static struct digest push_image(struct store *st, const char *repo, int n, const char *const *tags,
                                size_t ntags)
{
    char cfg_text[64];
    snprintf(cfg_text, sizeof(cfg_text), "{\"n\":%d}", n);
    struct digest cfg = unit_push_blob(st, repo, cfg_text);
    const char *layer_text = "shared layer";
    struct digest layer = unit_push_blob(st, repo, layer_text);
    char man[1024];
    unit_image_manifest(man, sizeof(man), &cfg, strlen(cfg_text), &layer, strlen(layer_text));
    struct registry_put in = {.repo = repo,
                              .body = man,
                              .len = strlen(man),
                              .tags = tags,
                              .tag_count = ntags,
                              .create_repo = true};
    struct registry_put_result res;
    struct registry_status s;
    CHECK_INT(registry_manifest_put(st, &in, &res, &s), BERTH_OK);
    time_sleep_ms(2);
    return res.digest;
}

static struct digest push_index(struct store *st, const char *repo, const struct digest *children,
                                size_t n, const char *tag)
{
    char idx[4096];
    size_t o = (size_t)snprintf(idx, sizeof(idx),
                                "{\"schemaVersion\":2,\"mediaType\":\"" MANIFEST_OCI_INDEX
                                "\",\"manifests\":[");
    for (size_t i = 0; i < n; i++) {
        o += (size_t)snprintf(idx + o, sizeof(idx) - o,
                              "%s{\"mediaType\":\"" MANIFEST_OCI "\",\"digest\":\"%s\",\"size\":1}",
                              i ? "," : "", children[i].str);
    }
    snprintf(idx + o, sizeof(idx) - o, "]}");
    const char *tags[] = {tag};
    struct registry_put in = {.repo = repo,
                              .body = idx,
                              .len = strlen(idx),
                              .tags = tags,
                              .tag_count = tag ? 1 : 0,
                              .create_repo = true};
    struct registry_put_result res;
    struct registry_status s;
    CHECK_INT(registry_manifest_put(st, &in, &res, &s), BERTH_OK);
    time_sleep_ms(2);
    return res.digest;
}

static bool exists(struct store *st, const char *repo, const struct digest *d)
{
    struct meta_manifest mf;
    struct registry_status s;
    return registry_manifest_get(st, repo, d->str, &mf, &s) == BERTH_OK;
}

static void set_policy(struct store *st, const char *repo, const char *text)
{
    struct meta_repo r = repo_of(st, repo);
    CHECK_INT(meta_repo_set_text(store_meta(st), r.id, META_REPO_LIFECYCLE, text), BERTH_OK);
}

/* Keep the 2 newest "release-" images and expire untagged ones. */
static const char *const POLICY_COUNT =
    "{\"rules\":[{\"rulePriority\":1,\"description\":\"keep two releases\",\"selection\":"
    "{\"tagStatus\":\"tagged\",\"tagPrefixList\":[\"release-\"],\"countType\":"
    "\"imageCountMoreThan\",\"countNumber\":2},\"action\":{\"type\":\"expire\"}},"
    "{\"rulePriority\":2,\"selection\":{\"tagStatus\":\"untagged\",\"countType\":"
    "\"sinceImagePushed\",\"countUnit\":\"days\",\"countNumber\":1},\"action\":{\"type\":"
    "\"expire\"}}]}";

static void test_enforce(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    struct digest rel[4], other, untagged;
    for (int i = 0; i < 4; i++) {
        char tag[32];
        snprintf(tag, sizeof(tag), "release-%d", i);
        const char *tags[] = {tag};
        rel[i] = push_image(st, "app", i, tags, 1);
    }
    const char *dev[] = {"dev"};
    other = push_image(st, "app", 10, dev, 1);
    untagged = push_image(st, "app", 11, NULL, 0);
    struct meta_repo r = repo_of(st, "app");
    struct lifecycle_run_options opt = {.dry_run = true};
    struct lifecycle_run_result *res = NULL;
    char msg[LIFECYCLE_MSG_CAP];

    /* no policy yet */
    CHECK_INT(lifecycle_run_repo(st, r.id, &opt, &res, msg, sizeof(msg)), BERTH_ENOTFOUND);
    CHECK(strstr(msg, "no lifecycle policy") != NULL);
    CHECK_INT(lifecycle_run_repo(st, r.id + 100, &opt, &res, msg, sizeof(msg)), BERTH_ENOTFOUND);
    set_policy(st, "app", POLICY_COUNT);

    /* dry run: the two oldest releases; the untagged image is too young */
    CHECK_INT(lifecycle_run_repo(st, r.id, &opt, &res, msg, sizeof(msg)), BERTH_OK);
    CHECK_INT(res->image_count, 6);
    CHECK_INT(res->item_count, 2);
    CHECK_STR(res->items[0].digest, rel[0].str);
    CHECK_STR(res->items[1].digest, rel[1].str);
    CHECK_INT(res->items[0].rule_priority, 1);
    CHECK_INT(res->items[0].fate, LIFECYCLE_WOULD_EXPIRE);
    CHECK_INT(res->items[0].tag_count, 1);
    CHECK_STR(res->items[0].tags[0], "release-0");
    CHECK_INT(res->expired, 0);
    lifecycle_run_result_free(res);
    CHECK(exists(st, "app", &rel[0]));
    CHECK_INT(meta_repo_get_by_id(store_meta(st), r.id, &r), BERTH_OK);
    CHECK_INT(r.lifecycle_evaluated_at, 0);

    /* two days on, the untagged image is old enough too */
    opt.now_ms = time_now_ms() + 2 * DAY_MS;
    CHECK_INT(lifecycle_run_repo(st, r.id, &opt, &res, msg, sizeof(msg)), BERTH_OK);
    CHECK_INT(res->item_count, 3);
    CHECK_STR(res->items[2].digest, untagged.str);
    CHECK_INT(res->items[2].rule_priority, 2);
    CHECK_INT(res->items[2].tag_count, 0);
    lifecycle_run_result_free(res);

    /* the real run deletes them and records the evaluation time */
    opt.dry_run = false;
    CHECK_INT(lifecycle_run_repo(st, r.id, &opt, &res, msg, sizeof(msg)), BERTH_OK);
    CHECK_INT(res->expired, 3);
    for (size_t k = 0; k < res->item_count; k++) {
        CHECK_INT(res->items[k].fate, LIFECYCLE_EXPIRED);
    }
    lifecycle_run_result_free(res);
    CHECK(!exists(st, "app", &rel[0]));
    CHECK(!exists(st, "app", &rel[1]));
    CHECK(!exists(st, "app", &untagged));
    CHECK(exists(st, "app", &rel[2]));
    CHECK(exists(st, "app", &rel[3]));
    CHECK(exists(st, "app", &other));
    CHECK_INT(meta_repo_get_by_id(store_meta(st), r.id, &r), BERTH_OK);
    CHECK_INT(r.lifecycle_evaluated_at, opt.now_ms);

    /* a second run finds nothing more */
    CHECK_INT(lifecycle_run_repo(st, r.id, &opt, &res, msg, sizeof(msg)), BERTH_OK);
    CHECK_INT(res->item_count, 0);
    CHECK_INT(res->image_count, 3);
    lifecycle_run_result_free(res);

    /* a stored policy that no longer validates is reported, not applied */
    set_policy(st, "app", "{\"rules\": []}");
    CHECK_INT(lifecycle_run_repo(st, r.id, &opt, &res, msg, sizeof(msg)), BERTH_EINVAL);
    CHECK(strstr(msg, LIFECYCLE_MSG_PREFIX) == msg);
    unit_store_remove(st, root);
}

/* An index that stays keeps its (untagged) children; when the index
 * expires too, all go, the index first. */
static void test_index_keeps_children(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    struct digest kids[2];
    kids[0] = push_image(st, "multi", 1, NULL, 0);
    kids[1] = push_image(st, "multi", 2, NULL, 0);
    struct digest idx = push_index(st, "multi", kids, 2, "v1");
    struct digest loose = push_image(st, "multi", 3, NULL, 0);
    set_policy(st, "multi",
               "{\"rules\":[{\"rulePriority\":1,\"selection\":{\"tagStatus\":\"untagged\","
               "\"countType\":\"imageCountMoreThan\",\"countNumber\":1},"
               "\"action\":{\"type\":\"expire\"}}]}");
    struct meta_repo r = repo_of(st, "multi");
    struct lifecycle_run_options opt = {.dry_run = false};
    struct lifecycle_run_result *res = NULL;
    char msg[LIFECYCLE_MSG_CAP];
    CHECK_INT(lifecycle_run_repo(st, r.id, &opt, &res, msg, sizeof(msg)), BERTH_OK);
    /* the children are claimed by the rule but kept by the index; loose is
     * the youngest untagged image and stays */
    CHECK_INT(res->item_count, 0);
    lifecycle_run_result_free(res);
    CHECK(exists(st, "multi", &kids[0]) && exists(st, "multi", &kids[1]));

    /* "any" keeps one image: the index and its children all go */
    set_policy(st, "multi",
               "{\"rules\":[{\"rulePriority\":1,\"selection\":{\"tagStatus\":\"any\","
               "\"countType\":\"imageCountMoreThan\",\"countNumber\":1},"
               "\"action\":{\"type\":\"expire\"}}]}");
    CHECK_INT(lifecycle_run_repo(st, r.id, &opt, &res, msg, sizeof(msg)), BERTH_OK);
    CHECK_INT(res->item_count, 3);
    CHECK_INT(res->expired, 3);
    lifecycle_run_result_free(res);
    CHECK(!exists(st, "multi", &idx));
    CHECK(!exists(st, "multi", &kids[0]) && !exists(st, "multi", &kids[1]));
    CHECK(exists(st, "multi", &loose));
    unit_store_remove(st, root);
}

/* Deletion re-checks each image against the snapshot, in its own
 * transaction: one re-tagged or deleted since is left alone (or counted as
 * gone). */
static void test_changed_since_snapshot(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    const char *t1[] = {"a"};
    struct digest d = push_image(st, "chg", 1, t1, 1);
    struct meta_repo r = repo_of(st, "chg");
    struct meta_manifest mf;
    CHECK_INT(meta_manifest_get(store_meta(st), r.id, d.str, &mf), BERTH_OK);
    const char *snap_tags[] = {"a"};
    struct lifecycle_run_item item = {
        .digest = d.str, .tags = snap_tags, .tag_count = 1, .fate = LIFECYCLE_WOULD_EXPIRE};
    struct lifecycle_run_result res = {
        .repo_id = r.id, .items = &item, .item_count = 1, .now_ms = time_now_ms()};
    snprintf(res.repo, sizeof(res.repo), "chg");
    bool repo_gone = false;
    struct write_pace pace = {0};
    /* a new tag on the image */
    const char *t2[] = {"prod"};
    push_image(st, "chg", 1, t2, 1); /* same content: the same manifest gains "prod" */
    CHECK(delete_item(st, &res, 0, mf.id, &repo_gone, &pace));
    CHECK_INT(item.fate, LIFECYCLE_KEPT_CHANGED);
    CHECK(exists(st, "chg", &d));
    /* a different manifest row under the digest */
    const char *both[] = {"a", "prod"};
    item.tags = both;
    item.tag_count = 2;
    CHECK(delete_item(st, &res, 0, mf.id + 1000, &repo_gone, &pace));
    CHECK_INT(item.fate, LIFECYCLE_KEPT_CHANGED);
    CHECK(exists(st, "chg", &d));
    /* as seen: deleted */
    CHECK(delete_item(st, &res, 0, mf.id, &repo_gone, &pace));
    CHECK_INT(item.fate, LIFECYCLE_EXPIRED);
    CHECK_INT(res.expired, 1);
    CHECK(!exists(st, "chg", &d));
    /* deleted meanwhile */
    CHECK(delete_item(st, &res, 0, mf.id, &repo_gone, &pace));
    CHECK_INT(item.fate, LIFECYCLE_GONE);
    CHECK(!repo_gone);
    unit_store_remove(st, root);
}

/* A push re-tags the expired image after the evaluation, right before its
 * deletion's transaction: the image and its new tag stay. */
static void retag_first_image(struct store *st)
{
    const char *tags[] = {"keep-me"};
    push_image(st, "race", 1, tags, 1);
}

static void test_retagged_before_delete(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    const char *t1[] = {"old-1"}, *t2[] = {"old-2"};
    struct digest first = push_image(st, "race", 1, t1, 1);
    struct digest second = push_image(st, "race", 2, t2, 1);
    set_policy(st, "race",
               "{\"rules\":[{\"rulePriority\":1,\"selection\":{\"tagStatus\":\"tagged\","
               "\"tagPrefixList\":[\"old-\"],\"countType\":\"imageCountMoreThan\","
               "\"countNumber\":1},\"action\":{\"type\":\"expire\"}}]}");
    struct meta_repo r = repo_of(st, "race");
    struct lifecycle_run_options opt = {.dry_run = false};
    struct lifecycle_run_result *res = NULL;
    char msg[LIFECYCLE_MSG_CAP];
    before_delete = retag_first_image;
    CHECK_INT(lifecycle_run_repo(st, r.id, &opt, &res, msg, sizeof(msg)), BERTH_OK);
    CHECK(before_delete == NULL); /* the hook ran */
    if (res != NULL) {
        CHECK_INT(res->item_count, 1);
        CHECK_STR(res->items[0].digest, first.str);
        CHECK_INT(res->items[0].fate, LIFECYCLE_KEPT_CHANGED);
        CHECK_INT(res->expired, 0);
    }
    lifecycle_run_result_free(res);
    struct meta_manifest mf;
    struct registry_status s;
    CHECK_INT(registry_manifest_get(st, "race", "keep-me", &mf, &s), BERTH_OK);
    CHECK_STR(mf.digest, first.str);
    CHECK_INT(registry_manifest_get(st, "race", "old-1", &mf, &s), BERTH_OK);
    CHECK(exists(st, "race", &second));
    unit_store_remove(st, root);
}

struct seen {
    int calls;
    size_t expired;
};

static void on_result(void *arg, const struct lifecycle_run_result *r)
{
    struct seen *s = arg;
    s->calls++;
    s->expired += r->expired;
}

static void test_run_all(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    const char *any1 = "{\"rules\":[{\"rulePriority\":1,\"selection\":{\"tagStatus\":\"any\","
                       "\"countType\":\"imageCountMoreThan\",\"countNumber\":1},\"action\":{"
                       "\"type\":\"expire\"}}]}";
    for (int i = 0; i < 3; i++) {
        push_image(st, "one", i, NULL, 0);
        push_image(st, "two", i + 10, NULL, 0);
        push_image(st, "none", i + 20, NULL, 0);
    }
    set_policy(st, "one", any1);
    set_policy(st, "two", any1);
    struct lifecycle_run_options opt = {.dry_run = true};
    struct seen seen = {0};
    struct lifecycle_run_totals t;
    CHECK_INT(lifecycle_run_all(st, &opt, on_result, &seen, &t), BERTH_OK);
    CHECK_INT(t.repositories, 2);
    CHECK_INT(t.images, 6);
    CHECK_INT(t.selected, 4);
    CHECK_INT(t.expired, 0);
    CHECK_INT(seen.calls, 2);
    opt.dry_run = false;
    CHECK_INT(lifecycle_run_all(st, &opt, on_result, &seen, &t), BERTH_OK);
    CHECK_INT(t.expired, 4);
    CHECK_INT(seen.expired, 4);
    int64_t n = 0;
    CHECK_INT(meta_repo_image_count(store_meta(st), repo_of(st, "none").id, &n), BERTH_OK);
    CHECK_INT(n, 3);
    CHECK_INT(meta_repo_image_count(store_meta(st), repo_of(st, "one").id, &n), BERTH_OK);
    CHECK_INT(n, 1);
    /* a cancelled pass runs nothing */
    atomic_bool cancel = true;
    opt.cancel = &cancel;
    CHECK_INT(lifecycle_run_all(st, &opt, NULL, NULL, &t), BERTH_OK);
    CHECK(t.cancelled);
    CHECK_INT(t.repositories, 0);
    opt.cancel = NULL;
    opt.policy_text = any1;
    CHECK_INT(lifecycle_run_all(st, &opt, NULL, NULL, &t), BERTH_EINVAL);
    unit_store_remove(st, root);
}

/* A real run leaves a policy set less than new_policy_delay_ms ago alone
 * and says when it is due; at that time, or with no delay, dry runs and
 * policies set before berth recorded the time, it runs. */
static void test_new_policy_delay(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    const char *any1 = "{\"rules\":[{\"rulePriority\":1,\"selection\":{\"tagStatus\":\"any\","
                       "\"countType\":\"imageCountMoreThan\",\"countNumber\":1},\"action\":{"
                       "\"type\":\"expire\"}}]}";
    for (int i = 0; i < 3; i++) {
        push_image(st, "young", i, NULL, 0);
    }
    set_policy(st, "young", any1);
    struct meta_repo r = repo_of(st, "young");
    const int64_t set_at = time_now_ms();
    const int64_t hour = 3600 * 1000;
    CHECK_INT(meta_repo_set_lifecycle_set_at(store_meta(st), r.id, set_at), BERTH_OK);
    CHECK_INT(repo_of(st, "young").lifecycle_set_at, set_at);
    struct lifecycle_run_options opt = {
        .dry_run = false, .new_policy_delay_ms = hour, .now_ms = set_at + hour - 1};
    struct lifecycle_run_result *res = NULL;
    char msg[LIFECYCLE_MSG_CAP];
    CHECK_INT(lifecycle_run_repo(st, r.id, &opt, &res, msg, sizeof(msg)), BERTH_OK);
    CHECK_INT(res->deferred_ms, 1);
    CHECK_INT(res->item_count, 0);
    CHECK_INT(res->expired, 0);
    lifecycle_run_result_free(res);
    int64_t n = 0;
    CHECK_INT(meta_repo_image_count(store_meta(st), r.id, &n), BERTH_OK);
    CHECK_INT(n, 3);
    CHECK_INT(repo_of(st, "young").lifecycle_evaluated_at, 0);
    /* every repository: deferred, counted apart, and seen by the callback */
    struct seen seen = {0};
    struct lifecycle_run_totals t;
    CHECK_INT(lifecycle_run_all(st, &opt, on_result, &seen, &t), BERTH_OK);
    CHECK_INT(t.deferred, 1);
    CHECK_INT(t.repositories, 0);
    CHECK_INT(t.expired, 0);
    CHECK_INT(seen.calls, 1);
    /* a dry run (the preview) evaluates it */
    opt.dry_run = true;
    CHECK_INT(lifecycle_run_repo(st, r.id, &opt, &res, msg, sizeof(msg)), BERTH_OK);
    CHECK_INT(res->deferred_ms, 0);
    CHECK_INT(res->item_count, 2);
    lifecycle_run_result_free(res);
    /* due: it runs */
    opt.dry_run = false;
    opt.now_ms = set_at + hour;
    CHECK_INT(lifecycle_run_repo(st, r.id, &opt, &res, msg, sizeof(msg)), BERTH_OK);
    CHECK_INT(res->deferred_ms, 0);
    CHECK_INT(res->expired, 2);
    lifecycle_run_result_free(res);
    CHECK_INT(meta_repo_image_count(store_meta(st), r.id, &n), BERTH_OK);
    CHECK_INT(n, 1);
    /* no delay (berth lifecycle run), or a policy with no recorded time: at once */
    for (int i = 10; i < 12; i++) {
        push_image(st, "young", i, NULL, 0);
    }
    opt.now_ms = set_at + 1;
    opt.new_policy_delay_ms = 0;
    CHECK_INT(lifecycle_run_repo(st, r.id, &opt, &res, msg, sizeof(msg)), BERTH_OK);
    CHECK_INT(res->expired, 2);
    lifecycle_run_result_free(res);
    push_image(st, "young", 20, NULL, 0);
    CHECK_INT(meta_repo_set_lifecycle_set_at(store_meta(st), r.id, 0), BERTH_OK);
    opt.new_policy_delay_ms = hour;
    CHECK_INT(lifecycle_run_repo(st, r.id, &opt, &res, msg, sizeof(msg)), BERTH_OK);
    CHECK_INT(res->expired, 1);
    lifecycle_run_result_free(res);
    unit_store_remove(st, root);
}

/* The archive rules read the store's times: sinceImagePulled the recorded
 * pull (else the push), sinceImageTransitioned the archive time; an
 * archived image is only in the archive class's rules. Enforced, the
 * transition archives the image in the store; a preview stores each
 * result's action and storage class (GetLifecyclePolicyPreview's TRANSITION
 * and storageClass ARCHIVE). */
static const char *const POLICY_ARCHIVE =
    "{\"rules\":[{\"rulePriority\":1,\"selection\":{\"tagStatus\":\"any\",\"countType\":"
    "\"sinceImagePulled\",\"countUnit\":\"days\",\"countNumber\":30},\"action\":{\"type\":"
    "\"transition\",\"targetStorageClass\":\"archive\"}},"
    "{\"rulePriority\":2,\"selection\":{\"tagStatus\":\"any\",\"storageClass\":\"archive\","
    "\"countType\":\"sinceImageTransitioned\",\"countUnit\":\"days\",\"countNumber\":90},"
    "\"action\":{\"type\":\"expire\"}}]}";

struct stored_results {
    int n;
    char rows[256]; /* "<first tag>:<rule>:<T|E>:<A|S> " per result */
};

static int stored_result(void *arg, const struct meta_preview_result *r)
{
    struct stored_results *c = arg;
    char tag[64] = "-";
    if (r->tags_json != NULL) {
        sscanf(r->tags_json, "[\"%63[^\"]", tag);
    }
    size_t o = strlen(c->rows);
    snprintf(c->rows + o, sizeof(c->rows) - o, "%s:%d:%c:%c ", tag, r->rule_priority,
             r->transition ? 'T' : 'E', r->is_archived ? 'A' : 'S');
    c->n++;
    return 0;
}

static void test_pull_and_archive_times(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    const char *t0[] = {"never-pulled"}, *t1[] = {"pulled"}, *t2[] = {"archived"};
    struct digest never = push_image(st, "app", 0, t0, 1);
    struct digest pulled = push_image(st, "app", 1, t1, 1);
    struct digest arch = push_image(st, "app", 2, t2, 1);
    const int64_t now = time_now_ms();
    struct meta_manifest mf;
    struct registry_status s;
    /* a pull recorded 20 days from now; the third image archived now */
    CHECK_INT(registry_manifest_get(st, "app", pulled.str, &mf, &s), BERTH_OK);
    CHECK_INT(meta_manifest_note_pull(store_meta(st), mf.id, now + 20 * DAY_MS, 0), BERTH_OK);
    CHECK_INT(registry_image_set_storage_class(st, "app", NULL, &arch, META_STORAGE_ARCHIVE, 0, 0,
                                               &mf, &s),
              BERTH_OK);
    set_policy(st, "app", POLICY_ARCHIVE);
    struct meta_repo r = repo_of(st, "app");
    struct lifecycle_run_options opt = {.dry_run = true, .now_ms = now + 40 * DAY_MS};
    struct lifecycle_run_result *res = NULL;
    char msg[LIFECYCLE_MSG_CAP];

    /* 40 days on: pushed 40 days ago and never pulled is archived; pulled
     * 20 days ago stays; archived 40 days ago is not yet expired */
    CHECK_INT(lifecycle_run_repo(st, r.id, &opt, &res, msg, sizeof(msg)), BERTH_OK);
    CHECK_INT(res->image_count, 3);
    CHECK_INT(res->item_count, 1);
    if (res->item_count == 1) {
        CHECK_STR(res->items[0].digest, never.str);
        CHECK(res->items[0].transition);
        CHECK(!res->items[0].is_archived);
        CHECK_INT(res->items[0].rule_priority, 1);
    }
    lifecycle_run_result_free(res);

    /* 100 days on, previewed: the pulled one too is to be archived, the
     * archived one expires; the stored results keep action and class */
    opt.now_ms = now + 100 * DAY_MS;
    CHECK_INT(lifecycle_run_repo(st, r.id, &opt, &res, msg, sizeof(msg)), BERTH_OK);
    struct meta *m = store_meta(st);
    CHECK_INT(meta_preview_start(m, r.id, POLICY_ARCHIVE, now), BERTH_OK);
    CHECK_INT(store_results(m, res), BERTH_OK);
    lifecycle_run_result_free(res);
    struct meta_preview pv;
    CHECK_INT(meta_preview_get(m, r.id, &pv, NULL), BERTH_OK);
    CHECK_INT(pv.status, META_PREVIEW_COMPLETE);
    CHECK_INT(pv.expiring_count, 1);
    CHECK_INT(pv.transitioning_count, 2);
    struct stored_results got = {0};
    CHECK_INT(meta_preview_results(m, r.id, -1, stored_result, &got), BERTH_OK);
    CHECK_INT(got.n, 3);
    CHECK_STR(got.rows, "never-pulled:1:T:S pulled:1:T:S archived:2:E:A ");

    /* enforced: the two are archived, the archived one expires */
    opt.dry_run = false;
    CHECK_INT(lifecycle_run_repo(st, r.id, &opt, &res, msg, sizeof(msg)), BERTH_OK);
    CHECK_INT(res->item_count, 3);
    if (res->item_count == 3) {
        CHECK_STR(res->items[0].digest, never.str);
        CHECK_INT(res->items[0].fate, LIFECYCLE_ARCHIVED);
        CHECK_STR(res->items[1].digest, pulled.str);
        CHECK_INT(res->items[1].fate, LIFECYCLE_ARCHIVED);
        CHECK_STR(res->items[2].digest, arch.str);
        CHECK(res->items[2].is_archived && !res->items[2].transition);
        CHECK_INT(res->items[2].rule_priority, 2);
        CHECK_INT(res->items[2].fate, LIFECYCLE_EXPIRED);
    }
    CHECK_INT(res->archived, 2);
    CHECK_INT(res->expired, 1);
    lifecycle_run_result_free(res);
    CHECK(!exists(st, "app", &arch));
    CHECK_INT(registry_manifest_get(st, "app", never.str, &mf, &s), BERTH_OK);
    CHECK_INT(mf.storage_class, META_STORAGE_ARCHIVE);
    CHECK_INT(registry_manifest_get(st, "app", pulled.str, &mf, &s), BERTH_OK);
    CHECK_INT(mf.storage_class, META_STORAGE_ARCHIVE);
    unit_store_remove(st, root);
}

struct collected {
    int n;
    char first_tags[256];
    int64_t last_seq;
};

static int collect_result(void *arg, const struct meta_preview_result *r)
{
    struct collected *c = arg;
    if (c->n == 0) {
        snprintf(c->first_tags, sizeof(c->first_tags), "%s", r->tags_json ? r->tags_json : "-");
    }
    c->n++;
    c->last_seq = r->seq;
    return 0;
}

static void test_preview(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    for (int i = 0; i < 600; i++) {
        char tag[32];
        snprintf(tag, sizeof(tag), "b-%04d", i);
        const char *tags[] = {tag, "z"};
        push_image(st, "pv", i, tags, i == 0 ? 2 : 1);
    }
    struct meta_repo r = repo_of(st, "pv");
    struct meta *m = store_meta(st);
    const char *keep1 =
        "{\"rules\":[{\"rulePriority\":3,\"selection\":{\"tagStatus\":\"tagged\","
        "\"tagPatternList\":[\"b-*\"],\"countType\":\"imageCountMoreThan\",\"countNumber\":1},"
        "\"action\":{\"type\":\"expire\"}}]}";
    CHECK_INT(meta_preview_start(m, r.id, keep1, time_now_ms()), BERTH_OK);
    struct meta_preview pv;
    CHECK_INT(meta_preview_get(m, r.id, &pv, NULL), BERTH_OK);
    CHECK_INT(pv.status, META_PREVIEW_IN_PROGRESS);
    int64_t processed = 0;
    CHECK_INT(lifecycle_preview_process_pending(st, NULL, &processed), BERTH_OK);
    CHECK_INT(processed, 1);
    char *text = NULL;
    CHECK_INT(meta_preview_get(m, r.id, &pv, &text), BERTH_OK);
    CHECK_INT(pv.status, META_PREVIEW_COMPLETE);
    CHECK_INT(pv.expiring_count, 599);
    CHECK_STR(text, keep1);
    free(text);
    struct collected c = {0};
    CHECK_INT(meta_preview_results(m, r.id, -1, collect_result, &c), BERTH_OK);
    CHECK_INT(c.n, 599);
    CHECK_STR(c.first_tags, "[\"b-0000\",\"z\"]"); /* oldest first, tags in byte order */
    CHECK_INT(c.last_seq, 598);
    /* nothing was deleted */
    int64_t n = 0;
    CHECK_INT(meta_repo_image_count(m, r.id, &n), BERTH_OK);
    CHECK_INT(n, 600);
    /* a new preview replaces the results */
    const char *keep400 = "{\"rules\":[{\"rulePriority\":1,\"selection\":{\"tagStatus\":\"any\","
                          "\"countType\":\"imageCountMoreThan\",\"countNumber\":400},"
                          "\"action\":{\"type\":\"expire\"}}]}";
    CHECK_INT(meta_preview_start(m, r.id, keep400, time_now_ms()), BERTH_OK);
    CHECK_INT(lifecycle_preview_process(st, r.id, NULL), BERTH_OK);
    memset(&c, 0, sizeof(c));
    CHECK_INT(meta_preview_results(m, r.id, -1, collect_result, &c), BERTH_OK);
    CHECK_INT(c.n, 200);
    memset(&c, 0, sizeof(c));
    CHECK_INT(meta_preview_results(m, r.id, 149, collect_result, &c), BERTH_OK);
    CHECK_INT(c.n, 50);
    /* a preview whose policy cannot run is FAILED */
    CHECK_INT(meta_preview_start(m, r.id, "{\"rules\": []}", time_now_ms()), BERTH_OK);
    CHECK_INT(lifecycle_preview_process(st, r.id, NULL), BERTH_OK);
    CHECK_INT(meta_preview_get(m, r.id, &pv, NULL), BERTH_OK);
    CHECK_INT(pv.status, META_PREVIEW_FAILED);
    CHECK_INT(meta_preview_get(m, r.id + 1, &pv, NULL), BERTH_ENOTFOUND);
    CHECK_STR(lifecycle_fate_name(LIFECYCLE_KEPT_REFERENCED), "kept-referenced");
    CHECK_STR(meta_preview_status_name(META_PREVIEW_COMPLETE), "COMPLETE");
    unit_store_remove(st, root);
}

struct starved_run {
    struct store *st;
    enum berth_err all, pending;
};

static void *starved_run(void *arg)
{
    struct starved_run *r = arg;
    struct lifecycle_run_options opt = {.dry_run = true};
    struct lifecycle_run_totals t;
    r->all = lifecycle_run_all(r->st, &opt, NULL, NULL, &t);
    atomic_bool cancel = false;
    int64_t n = 0;
    r->pending = lifecycle_preview_process_pending(r->st, &cancel, &n);
    return NULL;
}

/* The lifecycle job on a thread that cannot open its metadata connection
 * (no descriptor left): the run and the pending previews fail as
 * unavailable (retry later), not as a database error. */
static void test_no_connection_is_unavailable(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    struct starved_run r = {.st = st};
    CHECK(unit_fds_run_starved(starved_run, &r));
    CHECK_INT(r.all, BERTH_EUNAVAILABLE);
    CHECK_INT(r.pending, BERTH_EUNAVAILABLE);
    pthread_t t;
    CHECK_INT(pthread_create(&t, NULL, starved_run, &r), 0);
    pthread_join(t, NULL);
    CHECK_INT(r.all, BERTH_OK);
    CHECK_INT(r.pending, BERTH_OK);
    unit_store_remove(st, root);
}

int main(void)
{
    RUN(test_enforce);
    RUN(test_index_keeps_children);
    RUN(test_changed_since_snapshot);
    RUN(test_retagged_before_delete);
    RUN(test_run_all);
    RUN(test_new_policy_delay);
    RUN(test_pull_and_archive_times);
    RUN(test_preview);
    RUN(test_no_connection_is_unavailable);
    return unit_report("test_lifecycle_run");
}
