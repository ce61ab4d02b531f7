/* Unit tests for storage/upstream/replicate.c: replication.peers as the configuration
 * gives it (normalized URLs, secret names, every malformed row refused with its index),
 * and the capped backoff between tries of a copy. */
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#include "storage/upstream/replicate.h"

static enum berth_err parse(const char *text, struct upstream_peer **out, size_t *count, char *err,
                            size_t cap)
{
    json_t *doc = json_loads(text, 0, NULL);
    CHECK(doc != NULL);
    enum berth_err rc = upstream_peers_parse(doc, out, count, err, cap);
    json_decref(doc);
    return rc;
}

static void test_peers(void)
{
    struct upstream_peer *p = NULL;
    size_t n = 9;
    char err[256] = "";
    CHECK_INT(upstream_peers_parse(NULL, &p, &n, err, sizeof(err)), BERTH_OK);
    CHECK_INT(n, 0);
    CHECK(p == NULL);
    CHECK_INT(parse("[{\"region\": \"eu-west-1\", \"registry_id\": \"210987654321\", "
                    "\"url\": \"http://127.0.0.1:5001/\", \"secret\": \"peer-b\"}, "
                    "{\"region\": \"us-west-2\", \"registry_id\": \"333333333333\", "
                    "\"url\": \"registry.example:443\"}]",
                    &p, &n, err, sizeof(err)),
              BERTH_OK);
    CHECK_INT(n, 2);
    CHECK_STR(p[0].url, "http://127.0.0.1:5001");
    CHECK_STR(p[0].secret, "ecr-pullthroughcache/peer-b");
    CHECK_STR(p[0].region, "eu-west-1");
    CHECK_STR(p[1].url, "https://registry.example:443");
    CHECK_STR(p[1].secret, "");
    free(p);

    static const struct {
        const char *text;
        const char *says;
    } bad[] = {
        {"{}", "must be an array"},
        {"[1]", "peers[0] must be"},
        {"[{\"region\": \"eu-west-1\", \"registry_id\": \"210987654321\"}]", "peers[0] must be"},
        {"[{\"region\": \"EU\", \"registry_id\": \"210987654321\", \"url\": \"h:1\"}]",
         "region must be"},
        {"[{\"region\": \"eu-west-1\", \"registry_id\": \"2109\", \"url\": \"h:1\"}]", "12 digits"},
        {"[{\"region\": \"eu-west-1\", \"registry_id\": \"210987654321\", \"url\": "
         "\"ftp://h/x\"}]",
         "url must be"},
        {"[{\"region\": \"eu-west-1\", \"registry_id\": \"210987654321\", \"url\": \"h:1\", "
         "\"secret\": \"bad name!\"}]",
         "secret is not"},
        {"[{\"region\": \"eu-west-1\", \"registry_id\": \"210987654321\", \"url\": \"h:1\"}, "
         "{\"region\": \"eu-west-1\", \"registry_id\": \"210987654321\", \"url\": \"h:2\"}]",
         "peers[1]: eu-west-1/210987654321 is listed twice"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        p = NULL;
        CHECK_INT(parse(bad[i].text, &p, &n, err, sizeof(err)), BERTH_EINVAL);
        CHECK(p == NULL);
        if (strstr(err, bad[i].says) == NULL) {
            CHECK_STR(err, bad[i].says);
        }
    }
}

static void test_backoff(void)
{
    struct upstream_repl_options opt = {.retry_initial_ms = 2000, .retry_max_ms = 60000};
    CHECK_INT(upstream_repl_backoff_ms(&opt, 1), 2000);
    CHECK_INT(upstream_repl_backoff_ms(&opt, 2), 4000);
    CHECK_INT(upstream_repl_backoff_ms(&opt, 5), 32000);
    CHECK_INT(upstream_repl_backoff_ms(&opt, 6), 60000);
    /* an hour of failures (hundreds of tries) stays at the cap, no overflow */
    CHECK_INT(upstream_repl_backoff_ms(&opt, 1000000), 60000);
}

int main(void)
{
    RUN(test_peers);
    RUN(test_backoff);
    return unit_report("test_replicate");
}
