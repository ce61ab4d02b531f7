/* The scan worker pool (server/jobs/scan_workers.c): started on a thread
 * whose metadata connection cannot open (no descriptor left), it fails as
 * unavailable (retry later: BERTH_EUNAVAILABLE), not as a database error;
 * with descriptors back it starts (no worker threads) and stops. */
#include "unit.h"
#include "unit_fds.h"
#include "unit_store.h"

#include "common/config.h"
#include "server/jobs/scan_workers.h"

static char root[UNIT_ROOT_MAX];

struct start {
    struct berth_config *cfg;
    struct store *st;
    struct scan_workers *w;
    enum berth_err rc;
};

static void *start_pool(void *arg)
{
    struct start *s = arg;
    s->rc = scan_workers_start(s->cfg, s->st, NULL, &s->w);
    return NULL;
}

static void test_no_connection_is_unavailable(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    struct berth_config cfg;
    CHECK_INT(config_init(&cfg), BERTH_OK);
    free(cfg.root);
    cfg.root = strdup(root);
    CHECK(cfg.root != NULL);
    cfg.scan_workers = 0;
    struct start s = {.cfg = &cfg, .st = st, .rc = BERTH_OK};
    CHECK(unit_fds_run_starved(start_pool, &s));
    CHECK_INT(s.rc, BERTH_EUNAVAILABLE);
    CHECK(s.w == NULL);
    pthread_t t;
    CHECK_INT(pthread_create(&t, NULL, start_pool, &s), 0);
    pthread_join(t, NULL);
    CHECK_INT(s.rc, BERTH_OK);
    scan_workers_stop(s.w);
    config_fini(&cfg);
    unit_store_remove(st, root);
}

int main(void)
{
    RUN(test_no_connection_is_unavailable);
    return unit_report("test_scan_workers");
}
