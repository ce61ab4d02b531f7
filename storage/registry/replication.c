/* Which destinations a push is replicated to; see replication.h. */
#include "storage/registry/replication.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/str.h"
#include "common/wake.h"
#include "storage/meta/meta_scan.h"

/* A rule covers repo: no filters, or a PREFIX_MATCH filter repo starts
 * with. */
static bool rule_covers(json_t *rule, const char *repo)
{
    json_t *filters = json_object_get(rule, "repositoryFilters");
    if (!json_is_array(filters) || json_array_size(filters) == 0) {
        return true;
    }
    size_t i;
    json_t *f;
    json_array_foreach(filters, i, f)
    {
        const char *type = json_string_value(json_object_get(f, "filterType"));
        const char *prefix = json_string_value(json_object_get(f, "filter"));
        if (type != NULL && strcmp(type, "PREFIX_MATCH") == 0 && prefix != NULL &&
            str_has_prefix(repo, prefix)) {
            return true;
        }
    }
    return false;
}

size_t registry_repl_destinations(const char *config, const char *repo, registry_repl_dest_fn fn,
                                  void *arg)
{
    json_t *doc = config != NULL ? json_loads(config, 0, NULL) : NULL;
    json_t *seen = json_object();
    size_t count = 0;
    json_t *rules = json_object_get(doc, "rules");
    size_t i;
    json_t *rule;
    bool stop = seen == NULL;
    json_array_foreach(rules, i, rule)
    {
        if (stop || !rule_covers(rule, repo)) {
            continue;
        }
        size_t j;
        json_t *d;
        json_array_foreach(json_object_get(rule, "destinations"), j, d)
        {
            const char *region = json_string_value(json_object_get(d, "region"));
            const char *id = json_string_value(json_object_get(d, "registryId"));
            char key[128];
            int n =
                region != NULL && id != NULL ? snprintf(key, sizeof(key), "%s/%s", region, id) : -1;
            if (stop || n < 0 || (size_t)n >= sizeof(key) || json_object_get(seen, key) != NULL) {
                continue;
            }
            json_object_set_new(seen, key, json_true());
            count++;
            if (fn(arg, region, id) != 0) {
                stop = true;
            }
        }
    }
    json_decref(seen);
    json_decref(doc);
    return count;
}

struct enqueue {
    struct meta *m;
    int64_t manifest_id;
    int64_t now;
    enum berth_err rc;
};

static int enqueue_one(void *arg, const char *region, const char *registry_id)
{
    struct enqueue *e = arg;
    e->rc = meta_repl_enqueue(e->m, e->manifest_id, region, registry_id, e->now);
    return e->rc != BERTH_OK;
}

enum berth_err registry_repl_on_push(struct meta *m, const char *repo, int64_t manifest_id,
                                     int64_t now, bool *queued)
{
    *queued = false;
    char *config = NULL;
    enum berth_err rc = meta_setting_get(m, META_REPLICATION_CONFIG_SETTING, &config);
    if (rc != BERTH_OK || config == NULL) {
        return rc;
    }
    struct enqueue e = {.m = m, .manifest_id = manifest_id, .now = now, .rc = BERTH_OK};
    size_t n = registry_repl_destinations(config, repo, enqueue_one, &e);
    free(config);
    if (e.rc == BERTH_OK && n > 0) {
        *queued = true;
        /* the other replicas' workers (PostgreSQL), at commit */
        e.rc = meta_notify(m, META_CHANNEL_REPLICATION);
    }
    return e.rc;
}

/* ---- wake-up ---- */

static struct wake wake = WAKE_INIT;

void registry_repl_notify(void)
{
    wake_notify(&wake);
}

uint64_t registry_repl_generation(void)
{
    return wake_generation(&wake);
}

void registry_repl_wait(uint64_t *seen, int64_t timeout_ms, const atomic_bool *stop)
{
    wake_wait(&wake, seen, timeout_ms, stop);
}
