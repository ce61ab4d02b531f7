/*
 * Unit tests for storage/registry/replication.c and the queue of
 * storage/meta/replication.c: which destinations cover a repository (no
 * filters: all; PREFIX_MATCH filters; each destination once), a push
 * queueing them, a copy's outcome recorded only while the row is at the
 * seq it read (a newer push wins), the statuses listed, and copies
 * claimed by several workers at once (never one twice, a repository's one
 * at a time, an expired claim free again). Run on PostgreSQL too (label
 * postgres), where two connections stand for two replicas.
 */
#include "unit.h"
#include "unit_meta.h"

#include <string.h>

#include "storage/meta/meta_scan.h"
#include "storage/registry/replication.h"

static char root[512];

struct dests {
    char text[512];
};

static int add_dest(void *arg, const char *region, const char *registry_id)
{
    struct dests *d = arg;
    size_t used = strlen(d->text);
    snprintf(d->text + used, sizeof(d->text) - used, "%s%s/%s", used ? " " : "", region,
             registry_id);
    return 0;
}

static const char *dests_of(const char *config, const char *repo)
{
    static struct dests d;
    d.text[0] = '\0';
    registry_repl_destinations(config, repo, add_dest, &d);
    return d.text;
}

static const char CONFIG[] =
    "{\"rules\":["
    "{\"destinations\":[{\"region\":\"eu-west-1\",\"registryId\":\"111111111111\"}],"
    "\"repositoryFilters\":[{\"filter\":\"team/\",\"filterType\":\"PREFIX_MATCH\"},"
    "{\"filter\":\"prod\",\"filterType\":\"PREFIX_MATCH\"}]},"
    "{\"destinations\":[{\"region\":\"us-west-2\",\"registryId\":\"222222222222\"},"
    "{\"region\":\"eu-west-1\",\"registryId\":\"111111111111\"}],"
    "\"repositoryFilters\":[{\"filter\":\"team/app\",\"filterType\":\"PREFIX_MATCH\"}]},"
    "{\"destinations\":[]}]}";

static void test_destinations(void)
{
    CHECK_STR(dests_of(CONFIG, "team/app"), "eu-west-1/111111111111 us-west-2/222222222222");
    CHECK_STR(dests_of(CONFIG, "team/tool"), "eu-west-1/111111111111");
    CHECK_STR(dests_of(CONFIG, "production/x"), "eu-west-1/111111111111");
    CHECK_STR(dests_of(CONFIG, "teamx/app"), "");
    CHECK_STR(dests_of(CONFIG, "other"), "");
    /* no filters: every repository */
    CHECK_STR(dests_of("{\"rules\":[{\"destinations\":[{\"region\":\"ap-south-1\","
                       "\"registryId\":\"333333333333\"}]}]}",
                       "anything"),
              "ap-south-1/333333333333");
    CHECK_STR(dests_of(NULL, "team/app"), "");
    CHECK_STR(dests_of("not json", "team/app"), "");
    CHECK_STR(dests_of("{\"rules\":[]}", "team/app"), "");
}

struct statuses {
    char text[512];
};

static int add_status(void *arg, const struct meta_repl_status *s)
{
    struct statuses *l = arg;
    size_t used = strlen(l->text);
    snprintf(l->text + used, sizeof(l->text) - used, "%s%s/%s=%s:%s:%lld", used ? " " : "",
             s->region, s->registry_id, s->status, s->failure_code ? s->failure_code : "-",
             (long long)s->attempts);
    return 0;
}

static const char *statuses_of(struct meta *m, int64_t manifest_id)
{
    static struct statuses l;
    l.text[0] = '\0';
    CHECK_INT(meta_repl_status_list(m, manifest_id, add_status, &l), BERTH_OK);
    return l.text;
}

static const struct meta_repl_filter ALL = {.except = ""};

static void test_queue(void)
{
    struct meta *m = unit_meta_new(root, sizeof(root));
    struct meta_repo repo = unit_meta_repo(m, "team/app", false);
    struct meta_repo other = unit_meta_repo(m, "other", false);
    int64_t a = unit_meta_add_manifest(m, repo.id, unit_meta_digest(1), false, "");
    int64_t b = unit_meta_add_manifest(m, other.id, unit_meta_digest(2), false, "");
    bool queued = true;
    /* no configuration: nothing queued */
    CHECK_INT(registry_repl_on_push(m, "team/app", a, 5000, &queued), BERTH_OK);
    CHECK(!queued);
    CHECK_INT(meta_setting_set(m, META_REPLICATION_CONFIG_SETTING, CONFIG, 1000), BERTH_OK);
    CHECK_INT(registry_repl_on_push(m, "team/app", a, 5000, &queued), BERTH_OK);
    CHECK(queued);
    CHECK_INT(registry_repl_on_push(m, "other", b, 5000, &queued), BERTH_OK);
    CHECK(!queued);
    CHECK_STR(statuses_of(m, a),
              "eu-west-1/111111111111=IN_PROGRESS:-:0 us-west-2/222222222222=IN_PROGRESS:-:0");
    CHECK_STR(statuses_of(m, b), "");

    /* due first: eu-west-1 (same next_at, region order is not promised: take either) */
    struct meta_repl_item it;
    bool found = false;
    int64_t next_at = -1;
    CHECK_INT(meta_repl_next(m, 4999, &ALL, &it, &found, &next_at), BERTH_OK);
    CHECK(!found);
    CHECK_INT(next_at, 5000);
    CHECK_INT(meta_repl_next(m, 5000, &ALL, &it, &found, &next_at), BERTH_OK);
    CHECK(found);
    CHECK_STR(it.repo, "team/app");
    CHECK_STR(it.digest, unit_meta_digest(1));
    CHECK_INT(it.manifest_id, a);
    CHECK_INT(it.attempts, 0);
    /* a retry, then done */
    bool applied = false;
    CHECK_INT(
        meta_repl_finish(m, &it, "IN_PROGRESS", "PEER_UNAVAILABLE", "down", 9000, 5001, &applied),
        BERTH_OK);
    CHECK(applied);
    struct meta_repl_item second;
    CHECK_INT(meta_repl_next(m, 5001, &ALL, &second, &found, &next_at), BERTH_OK);
    CHECK(found);
    CHECK(strcmp(second.region, it.region) != 0);
    CHECK_INT(meta_repl_finish(m, &second, "COMPLETE", NULL, NULL, 5002, 5002, &applied), BERTH_OK);
    CHECK_INT(meta_repl_next(m, 5002, &ALL, &second, &found, &next_at), BERTH_OK);
    CHECK(!found);
    CHECK_INT(next_at, 9000);
    CHECK_INT(meta_repl_next(m, 9000, &ALL, &it, &found, &next_at), BERTH_OK);
    CHECK(found);
    CHECK_INT(it.attempts, 1);

    /* a push queues it again while the copy runs: the copy's outcome is not recorded */
    CHECK_INT(registry_repl_on_push(m, "team/app", a, 9500, &queued), BERTH_OK);
    CHECK_INT(meta_repl_finish(m, &it, "FAILED", "ACCESS_DENIED", "no", 9600, 9600, &applied),
              BERTH_OK);
    CHECK(!applied);
    CHECK_STR(statuses_of(m, a),
              "eu-west-1/111111111111=IN_PROGRESS:-:0 us-west-2/222222222222=IN_PROGRESS:-:0");
    CHECK_INT(meta_repl_next(m, 9600, &ALL, &it, &found, &next_at), BERTH_OK);
    CHECK(found);
    CHECK_INT(meta_repl_finish(m, &it, "FAILED", "ACCESS_DENIED", "no", 9700, 9700, &applied),
              BERTH_OK);
    CHECK(applied);
    CHECK(strstr(statuses_of(m, a), "=FAILED:ACCESS_DENIED:1") != NULL);

    /* one peer's worker sees its rows only; the others' worker all but the peers' */
    struct meta_repl_filter eu = {.region = "eu-west-1", .registry_id = "111111111111"};
    struct meta_repl_filter us = {.region = "us-west-2", .registry_id = "222222222222"};
    struct meta_repl_filter others = {.except = ",eu-west-1/111111111111,"};
    struct meta_repl_filter none = {.except = ",eu-west-1/111111111111,us-west-2/222222222222,"};
    CHECK_INT(meta_repl_next(m, 9700, &eu, &it, &found, &next_at), BERTH_OK);
    CHECK(!found);
    CHECK_INT(next_at, 0); /* eu-west-1 FAILED: nothing left queued */
    CHECK_INT(meta_repl_next(m, 9700, &us, &it, &found, &next_at), BERTH_OK);
    CHECK(found);
    CHECK_STR(it.region, "us-west-2");
    CHECK_INT(meta_repl_next(m, 9700, &others, &it, &found, &next_at), BERTH_OK);
    CHECK(found);
    CHECK_STR(it.region, "us-west-2");
    CHECK_INT(meta_repl_next(m, 9700, &none, &it, &found, &next_at), BERTH_OK);
    CHECK(!found);
    CHECK_INT(next_at, 0);
    /* a destination down defers its other due rows, not the others' */
    int64_t c = unit_meta_add_manifest(m, repo.id, unit_meta_digest(3), false, "");
    CHECK_INT(registry_repl_on_push(m, "team/app", c, 9800, &queued), BERTH_OK);
    CHECK_INT(meta_repl_defer(m, "us-west-2", "222222222222", 20000, 9800), BERTH_OK);
    CHECK_INT(meta_repl_next(m, 19999, &us, &it, &found, &next_at), BERTH_OK);
    CHECK(!found);
    CHECK_INT(next_at, 20000);
    CHECK_INT(meta_repl_next(m, 9800, &eu, &it, &found, &next_at), BERTH_OK);
    CHECK(found);
    CHECK_INT(it.manifest_id, c);

    /* deleting the image drops its queue rows (deletions are not replicated) */
    CHECK_INT(meta_manifest_delete(m, a), BERTH_OK);
    CHECK_INT(meta_manifest_delete(m, c), BERTH_OK);
    CHECK_STR(statuses_of(m, a), "");
    CHECK_INT(meta_repl_next(m, 99999, &ALL, &it, &found, &next_at), BERTH_OK);
    CHECK(!found);
    CHECK_INT(next_at, 0);
    unit_meta_remove(m, root);
}

/* A copy FAILED because its destination stayed unreachable
 * (META_REPL_RETRIED_CODE) is still taken when due, deferred with the
 * destination's other copies, and cleared by a success; FAILED for another
 * reason it is not taken. */
static const char EU[] = "eu-west-1";
static const char EU_ID[] = "111111111111";

/* A claim by holder at now until until: the digest's last hex digit of
 * what was claimed ('-' when nothing; *next_at then). */
static char claim(struct meta *m, int64_t now, const char *holder, int64_t until,
                  struct meta_repl_item *it, int64_t *next_at)
{
    static const struct meta_repl_filter eu = {.region = EU, .registry_id = EU_ID};
    bool found = true;
    *next_at = -1;
    CHECK_INT(meta_repl_claim(m, now, &eu, holder, until, it, &found, next_at), BERTH_OK);
    return found ? it->digest[strlen(it->digest) - 1] : '-';
}

static void test_claims(void)
{
    struct meta *a = unit_meta_new(root, sizeof(root));
    struct meta *b = unit_meta_open(root); /* another replica's connection */
    struct meta_repo x = unit_meta_repo(a, "x", false);
    struct meta_repo y = unit_meta_repo(a, "y", false);
    struct meta_repo z = unit_meta_repo(a, "z", false);
    /* digests ending in 1, 2 (both x), 3 (y), 4 (z) */
    int64_t ids[4] = {
        unit_meta_add_manifest(a, x.id, unit_meta_digest(1), false, ""),
        unit_meta_add_manifest(a, x.id, unit_meta_digest(2), false, ""),
        unit_meta_add_manifest(a, y.id, unit_meta_digest(3), false, ""),
        unit_meta_add_manifest(a, z.id, unit_meta_digest(4), false, ""),
    };
    for (int i = 0; i < 4; i++) {
        CHECK_INT(meta_repl_enqueue(a, ids[i], EU, EU_ID, 1000), BERTH_OK);
    }
    struct meta_repl_item x1, y1, z1, it;
    int64_t next_at = 0;
    CHECK_INT(meta_repl_claim(a, 2000, &ALL, "", 3000, &it, &(bool){false}, &next_at),
              BERTH_EINVAL);
    /* not due yet */
    CHECK(claim(a, 999, "w1", 3000, &it, &next_at) == '-');
    CHECK_INT(next_at, 1000);
    /* each worker its own copy; x's second waits for its first */
    CHECK(claim(a, 2000, "w1", 3000, &x1, &next_at) == '1');
    CHECK(claim(b, 2000, "w2", 3000, &y1, &next_at) == '3');
    CHECK(claim(a, 2000, "w3", 3000, &z1, &next_at) == '4');
    CHECK(claim(b, 2000, "w4", 3000, &it, &next_at) == '-');
    CHECK_INT(next_at, 3000); /* the claims' expiry */
    /* w2 renews its claim; w1 and w3 stopped (killed): theirs expire */
    int64_t n = 0;
    CHECK_INT(meta_repl_renew(b, "w2", 5000, &n), BERTH_OK);
    CHECK_INT(n, 1);
    CHECK(claim(b, 3000, "w4", 4000, &it, &next_at) == '1');
    CHECK_INT(it.manifest_id, x1.manifest_id);
    /* done: given back, x's second is free */
    bool applied = false;
    CHECK_INT(meta_repl_finish(b, &it, "COMPLETE", NULL, NULL, 3100, 3100, &applied), BERTH_OK);
    CHECK(applied);
    CHECK_INT(meta_repl_unclaim(b, &it, "w4"), BERTH_OK);
    CHECK(claim(a, 3100, "w5", 4100, &it, &next_at) == '2');
    CHECK(claim(a, 3100, "w6", 4100, &it, &next_at) == '4'); /* z's expired claim */
    CHECK(claim(a, 3100, "w7", 4100, &it, &next_at) == '-');
    CHECK_INT(next_at, 4100);
    /* another holder cannot give w2's claim back */
    CHECK_INT(meta_repl_unclaim(a, &y1, "w1"), BERTH_OK);
    CHECK(claim(a, 3200, "w7", 4200, &it, &next_at) == '-');
    CHECK_INT(meta_repl_unclaim(a, &y1, "w2"), BERTH_OK);
    CHECK(claim(a, 3200, "w7", 4200, &it, &next_at) == '3');
    /* one node starting: every claim given back */
    CHECK_INT(meta_repl_unclaim_all(b), BERTH_OK);
    CHECK(claim(b, 3300, "w8", 4300, &it, &next_at) == '2');
    /* the thread of the destinations no peer is for claims the same way */
    bool found = false;
    CHECK_INT(meta_repl_claim(a, 3300, &ALL, "w9", 4300, &it, &found, &next_at), BERTH_OK);
    CHECK(found);
    CHECK_INT(it.manifest_id, ids[2]);
    CHECK_INT(meta_repl_claim(a, 3300, &ALL, "w9", 4300, &it, &found, &next_at), BERTH_OK);
    CHECK(found);
    CHECK_INT(it.manifest_id, ids[3]);
    CHECK_INT(meta_repl_claim(b, 3300, &ALL, "w9", 4300, &it, &found, &next_at), BERTH_OK);
    CHECK(!found);
    CHECK_INT(next_at, 4300);
    meta_close(b);
    unit_meta_remove(a, root);
}

static void test_failed_unreachable_still_tried(void)
{
    struct meta *m = unit_meta_new(root, sizeof(root));
    struct meta_repo repo = unit_meta_repo(m, "team/app", false);
    int64_t a = unit_meta_add_manifest(m, repo.id, unit_meta_digest(1), false, "");
    int64_t b = unit_meta_add_manifest(m, repo.id, unit_meta_digest(2), false, "");
    CHECK_INT(meta_setting_set(m, META_REPLICATION_CONFIG_SETTING, CONFIG, 1000), BERTH_OK);
    bool queued = false;
    CHECK_INT(registry_repl_on_push(m, "team/app", a, 1000, &queued), BERTH_OK);
    CHECK_INT(registry_repl_on_push(m, "team/app", b, 1500, &queued), BERTH_OK);
    struct meta_repl_filter eu = {.region = "eu-west-1", .registry_id = "111111111111"};
    struct meta_repl_item it;
    bool found = false;
    bool applied = false;
    int64_t next_at = -1;
    CHECK_INT(meta_repl_next(m, 1000, &eu, &it, &found, &next_at), BERTH_OK);
    CHECK(found);
    CHECK_INT(it.manifest_id, a);
    CHECK_INT(it.queued_at, 1000);
    CHECK_INT(meta_repl_finish(m, &it, "FAILED", META_REPL_RETRIED_CODE, "down too long", 2000,
                               1100, &applied),
              BERTH_OK);
    CHECK(strstr(statuses_of(m, a), "eu-west-1/111111111111=FAILED:PEER_UNAVAILABLE:1") != NULL);
    /* b is due first; a when its time comes */
    CHECK_INT(meta_repl_next(m, 1999, &eu, &it, &found, &next_at), BERTH_OK);
    CHECK(found);
    CHECK_INT(it.manifest_id, b);
    CHECK_INT(meta_repl_finish(m, &it, "FAILED", "ACCESS_DENIED", "no", 1600, 1600, &applied),
              BERTH_OK);
    CHECK_INT(meta_repl_next(m, 1999, &eu, &it, &found, &next_at), BERTH_OK);
    CHECK(!found);
    CHECK_INT(next_at, 2000); /* a only: b FAILED for good */
    /* the destination down: a waits with the others */
    CHECK_INT(meta_repl_defer(m, "eu-west-1", "111111111111", 3000, 1900), BERTH_OK);
    CHECK_INT(meta_repl_next(m, 2999, &eu, &it, &found, &next_at), BERTH_OK);
    CHECK(!found);
    CHECK_INT(next_at, 3000);
    CHECK_INT(meta_repl_next(m, 3000, &eu, &it, &found, &next_at), BERTH_OK);
    CHECK(found);
    CHECK_INT(it.manifest_id, a);
    /* back: a success clears it */
    CHECK_INT(meta_repl_finish(m, &it, "COMPLETE", NULL, NULL, 3001, 3001, &applied), BERTH_OK);
    CHECK(applied);
    CHECK(strstr(statuses_of(m, a), "eu-west-1/111111111111=COMPLETE:-:2") != NULL);
    CHECK_INT(meta_repl_next(m, 99999, &eu, &it, &found, &next_at), BERTH_OK);
    CHECK(!found);
    CHECK_INT(next_at, 0);
    unit_meta_remove(m, root);
}

int main(void)
{
    RUN(test_destinations);
    RUN(test_queue);
    RUN(test_failed_unreachable_still_tried);
    RUN(test_claims);
    return unit_report("test_replication");
}
