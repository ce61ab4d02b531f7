/* Unit tests for server/http/pool.c: which worker a new connection goes to,
 * and the connection caps across workers. */
#include "unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "server/http/pool_int.h"

static struct sockaddr_in v4(const char *ip)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(40000);
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static struct sockaddr_in6 v6(const char *ip)
{
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof(a));
    a.sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip, &a.sin6_addr);
    return a;
}

#define SA(x) ((const struct sockaddr *)(const void *)&(x)), (socklen_t)sizeof(x)

static void test_score(void)
{
    struct pool_load idle = {.bodies = 0, .requests = 0, .conns = 5};
    struct pool_load busy = {.bodies = 1, .requests = 2, .conns = 2};
    CHECK_INT(pool_score(&idle), 5);
    CHECK_INT(pool_score(&busy), 2 + 2 * POOL_REQUEST_WEIGHT + POOL_BODY_WEIGHT);
}

static void test_choose_order(void)
{
    /* a worker sending a body weighs more than one with a few more idle
     * connections */
    struct pool_load a[] = {{.bodies = 1, .requests = 1, .conns = 1},
                            {.bodies = 0, .requests = 0, .conns = 6}};
    CHECK_INT(pool_choose(a, 2, 0), 1);
    /* a worker stuck in a request weighs more than one with an idle
     * connection more */
    struct pool_load b[] = {{.bodies = 0, .requests = 1, .conns = 1},
                            {.bodies = 0, .requests = 0, .conns = 2}};
    CHECK_INT(pool_choose(b, 2, 0), 1);
    /* many more connections outweigh a body: a burst of new connections
     * does not all go to the one worker that sends no body */
    struct pool_load c[] = {{.bodies = 1, .requests = 1, .conns = 10},
                            {.bodies = 0, .requests = 0, .conns = 30},
                            {.bodies = 2, .requests = 2, .conns = 4}};
    CHECK_INT(pool_choose(c, 3, 0), 0);
    CHECK_INT(pool_choose(c, 3, 2), 0);
}

static void test_choose_ties_take_turns(void)
{
    struct pool_load eq[4] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
    for (size_t start = 0; start < 8; start++) {
        CHECK_INT(pool_choose(eq, 4, start), start % 4);
    }
    /* among the equal best, the first at or after start */
    struct pool_load some[4] = {{0, 0, 0}, {1, 0, 0}, {0, 0, 0}, {1, 0, 0}};
    CHECK_INT(pool_choose(some, 4, 1), 2);
    CHECK_INT(pool_choose(some, 4, 3), 0);
}

static void test_take_spreads_and_avoids_busy(void)
{
    struct pool *p = NULL;
    CHECK_INT(pool_new(3, 100, 0, &p), BERTH_OK);
    struct sockaddr_in a = v4("10.0.0.1");
    size_t seen[3] = {0, 0, 0};
    for (int i = 0; i < 6; i++) {
        size_t w = 99;
        CHECK_INT(pool_take(p, SA(a), &w), POOL_TAKEN);
        CHECK(w < 3);
        seen[w < 3 ? w : 0]++;
    }
    CHECK_INT(seen[0], 2);
    CHECK_INT(seen[1], 2);
    CHECK_INT(seen[2], 2);
    CHECK_INT(pool_connections(p), 6);
    /* worker 0 sends a body (a request too) and worker 1 is stuck in a
     * request: the next two go to worker 2, though it holds more
     * connections then */
    pool_request(p, 0, 1);
    pool_body(p, 0, 1);
    pool_request(p, 1, 1);
    for (int i = 0; i < 2; i++) {
        size_t w = 99;
        CHECK_INT(pool_take(p, SA(a), &w), POOL_TAKEN);
        CHECK_INT(w, 2);
    }
    CHECK_INT(pool_load_of(p, 2).conns, 4);
    CHECK_INT(pool_load_of(p, 0).bodies, 1);
    CHECK_INT(pool_load_of(p, 1).requests, 1);
    /* the body ends: worker 0 (2 connections, nothing running) is the
     * least busy */
    pool_body(p, 0, -1);
    pool_request(p, 0, -1);
    size_t w = 99;
    CHECK_INT(pool_take(p, SA(a), &w), POOL_TAKEN);
    CHECK_INT(w, 0);
    pool_free(p);
}

static void test_caps(void)
{
    struct pool *p = NULL;
    CHECK_INT(pool_new(2, 4, 2, &p), BERTH_OK);
    struct sockaddr_in a = v4("10.0.0.1"), b = v4("10.0.0.2"), c = v4("10.0.0.3");
    struct sockaddr_in6 a6 = v6("::ffff:10.0.0.9");
    size_t wa1, wa2, w;
    CHECK_INT(pool_take(p, SA(a), &wa1), POOL_TAKEN);
    CHECK_INT(pool_take(p, SA(a), &wa2), POOL_TAKEN);
    /* the per-address cap holds across workers (wa1 != wa2) */
    CHECK(wa1 != wa2);
    CHECK_INT(pool_take(p, SA(a), &w), POOL_CLIENT_LIMIT);
    CHECK_INT(pool_take(p, SA(b), &w), POOL_TAKEN);
    CHECK_INT(pool_take(p, SA(a6), &w), POOL_TAKEN);
    CHECK_INT(pool_connections(p), 4);
    /* four in all */
    CHECK_INT(pool_take(p, SA(c), &w), POOL_CONNECTION_LIMIT);
    /* a refusal counted nothing; a release makes room for both caps */
    pool_release(p, wa1, SA(a));
    CHECK_INT(pool_connections(p), 3);
    CHECK_INT(pool_take(p, SA(a), &w), POOL_TAKEN);
    CHECK_INT(pool_take(p, SA(c), &w), POOL_CONNECTION_LIMIT);
    pool_free(p);

    /* 0: no cap per address */
    CHECK_INT(pool_new(2, 100, 0, &p), BERTH_OK);
    for (int i = 0; i < 50; i++) {
        CHECK_INT(pool_take(p, SA(a), &w), POOL_TAKEN);
    }
    CHECK_INT(pool_connections(p), 50);
    pool_free(p);
}

static void test_release_forgets_the_address(void)
{
    struct pool *p = NULL;
    CHECK_INT(pool_new(1, 10, 1, &p), BERTH_OK);
    struct sockaddr_in a = v4("192.0.2.7");
    size_t w;
    for (int round = 0; round < 3; round++) {
        CHECK_INT(pool_take(p, SA(a), &w), POOL_TAKEN);
        CHECK_INT(pool_take(p, SA(a), &w), POOL_CLIENT_LIMIT);
        pool_release(p, w, SA(a));
        CHECK_INT(pool_connections(p), 0);
    }
    /* an address of no known family is not capped */
    struct sockaddr unknown;
    memset(&unknown, 0, sizeof(unknown));
    unknown.sa_family = AF_UNIX;
    CHECK_INT(pool_take(p, &unknown, sizeof(unknown), &w), POOL_TAKEN);
    CHECK_INT(pool_take(p, &unknown, sizeof(unknown), &w), POOL_TAKEN);
    pool_free(p);
}

/* The upload lane: workers [2, 4) take upload connections while fewer
 * than the lane's limit are there, then the others take them; other
 * connections never go to the lane. */
static void test_lane(void)
{
    struct pool *p = NULL;
    CHECK_INT(pool_new(4, 100, 0, &p), BERTH_OK);
    pool_lane(p, 2, 3);
    struct sockaddr_in a = v4("192.0.2.9");
    size_t w, lane[3];
    for (int i = 0; i < 3; i++) {
        CHECK_INT(pool_take_for(p, SA(a), true, &lane[i]), POOL_TAKEN);
        CHECK(lane[i] >= 2);
    }
    CHECK_INT(pool_lane_connections(p), 3);
    CHECK_INT(pool_take_for(p, SA(a), true, &w), POOL_TAKEN); /* the lane is full */
    CHECK(w < 2);
    for (int i = 0; i < 8; i++) {
        CHECK_INT(pool_take(p, SA(a), &w), POOL_TAKEN);
        CHECK(w < 2);
    }
    pool_release(p, lane[0], SA(a));
    CHECK_INT(pool_lane_connections(p), 2);
    CHECK_INT(pool_take_for(p, SA(a), true, &w), POOL_TAKEN); /* room again */
    CHECK(w >= 2);
    CHECK_INT(pool_connections(p), 12);
    pool_free(p);

    /* no lane: an upload takes any worker */
    CHECK_INT(pool_new(2, 100, 0, &p), BERTH_OK);
    pool_lane(p, 2, 3); /* first == count: ignored */
    bool seen[2] = {false, false};
    for (int i = 0; i < 4; i++) {
        CHECK_INT(pool_take_for(p, SA(a), true, &w), POOL_TAKEN);
        seen[w] = true;
    }
    CHECK(seen[0] && seen[1]);
    CHECK_INT(pool_lane_connections(p), 0);
    pool_free(p);
}

int main(void)
{
    RUN(test_score);
    RUN(test_choose_order);
    RUN(test_choose_ties_take_turns);
    RUN(test_take_spreads_and_avoids_busy);
    RUN(test_caps);
    RUN(test_release_forgets_the_address);
    RUN(test_lane);
    return unit_report("test_pool");
}
