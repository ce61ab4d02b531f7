/*
 * berth lifecycle run [--dry-run] [REPOSITORY]: apply the lifecycle
 * policies now, of one repository or of every repository that has one, as
 * the scheduler does; with --dry-run only say what would be expired. Safe
 * while `berth serve` runs on the same root.
 */
#include <stdio.h>
#include <string.h>

#include "cli_int.h"

#include "storage/lifecycle/lifecycle.h"
#include "storage/lifecycle/lifecycle_run.h"
#include "common/log.h"
#include "storage/registry/registry.h"
#include "storage/store/store.h"
#include "common/timeutil.h"

static const char *const USAGE = "usage: berth lifecycle run [--dry-run] [REPOSITORY]";

/* One line per selected image, then the repository's summary. */
static void print_result(void *arg, const struct lifecycle_run_result *r)
{
    (void)arg;
    for (size_t k = 0; k < r->item_count; k++) {
        const struct lifecycle_run_item *it = &r->items[k];
        char when[32];
        time_format_rfc3339(it->pushed_at_ms, when, sizeof(when));
        const char *fate = it->transition && it->fate == LIFECYCLE_WOULD_EXPIRE
                               ? "would-archive"
                               : lifecycle_fate_name(it->fate);
        printf("%-15s %s@%s rule=%d pushed=%s tags=", fate, r->repo, it->digest, it->rule_priority,
               when);
        if (it->tag_count == 0) {
            printf("-");
        }
        for (size_t t = 0; t < it->tag_count; t++) {
            printf("%s%s", t ? "," : "", it->tags[t]);
        }
        printf("\n");
    }
    printf("%s: %zu images, %zu selected, %zu expired", r->repo, r->image_count, r->item_count,
           r->expired);
    if (r->archived > 0) {
        printf(", %zu archived", r->archived);
    }
    printf("\n");
}

static int run_one(struct store *st, const char *name, const struct lifecycle_run_options *opt)
{
    struct meta_repo repo;
    struct registry_status s;
    if (registry_repo(st, name, false, &repo, &s) != BERTH_OK) {
        fprintf(stderr, "berth lifecycle: %s: %s\n", name,
                s.reason == REG_REPO_UNKNOWN ? "no such repository" : s.message);
        return 1;
    }
    struct lifecycle_run_result *r = NULL;
    char msg[LIFECYCLE_MSG_CAP];
    enum berth_err rc = lifecycle_run_repo(st, repo.id, opt, &r, msg, sizeof(msg));
    if (rc != BERTH_OK) {
        fprintf(stderr, "berth lifecycle: %s: %s\n", name, msg[0] ? msg : berth_strerror(rc));
        return 1;
    }
    print_result(NULL, r);
    lifecycle_run_result_free(r);
    return 0;
}

int cmd_lifecycle(struct cli *cli)
{
    bool dry_run = false;
    const char *repo = NULL;
    if (cli->argc < 1 || strcmp(cli->argv[0], "run") != 0) {
        fprintf(stderr, "berth lifecycle: %s\n", USAGE);
        return 2;
    }
    for (int i = 1; i < cli->argc; i++) {
        if (strcmp(cli->argv[i], "--dry-run") == 0) {
            dry_run = true;
        } else if (cli->argv[i][0] != '-' && repo == NULL) {
            repo = cli->argv[i];
        } else {
            fprintf(stderr, "berth lifecycle: unexpected argument '%s' (%s)\n", cli->argv[i],
                    USAGE);
            return 2;
        }
    }
    if (!cli_load_config(cli)) {
        return 2;
    }
    struct store *st = cli_open_store(cli);
    if (st == NULL) {
        return cli_open_store_status();
    }
    struct lifecycle_run_options opt = {.dry_run = dry_run};
    int status = 0;
    if (repo != NULL) {
        status = run_one(st, repo, &opt);
    } else {
        struct lifecycle_run_totals t;
        enum berth_err rc = lifecycle_run_all(st, &opt, print_result, NULL, &t);
        if (rc != BERTH_OK) {
            fprintf(stderr, "berth lifecycle: the run failed (%s); see the log above\n",
                    berth_strerror(rc));
            status = 1;
        } else {
            printf("lifecycle%s: %lld repositories, %lld images, %lld selected, %lld expired\n",
                   dry_run ? " (dry run)" : "", (long long)t.repositories, (long long)t.images,
                   (long long)t.selected, (long long)t.expired);
            if (t.failed_repositories > 0) {
                fprintf(stderr, "berth lifecycle: %lld repositories failed; see the log above\n",
                        (long long)t.failed_repositories);
                status = 1;
            }
        }
    }
    store_close(st);
    return status;
}
