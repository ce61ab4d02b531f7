/*
 * Unit tests for berth-bench's pieces: the blob stream, statistics,
 * Location resolution, image documents, loopback, and the engine's error
 * accounting against a canned-response HTTP server on a thread.
 */
#include "unit.h"

#include <errno.h>
#include <pthread.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <jansson.h>

#include "bench.h"

static void test_data_stream(void)
{
    unsigned char whole[1000], piece[1000];
    bench_data_fill(42, 0, whole, sizeof(whole));

    /* any cut of the stream gives the same bytes */
    static const size_t cuts[] = {0, 1, 7, 8, 9, 15, 333, 999};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        size_t c = cuts[i];
        memset(piece, 0, sizeof(piece));
        bench_data_fill(42, 0, piece, c);
        bench_data_fill(42, c, piece + c, sizeof(piece) - c);
        CHECK(memcmp(whole, piece, sizeof(whole)) == 0);
    }
    bench_data_fill(42, 13, piece, 5);
    CHECK(memcmp(whole + 13, piece, 5) == 0);

    /* another seed gives other bytes; the stream is not constant */
    bench_data_fill(43, 0, piece, sizeof(piece));
    CHECK(memcmp(whole, piece, sizeof(whole)) != 0);
    size_t same = 0;
    for (size_t i = 1; i < sizeof(whole); i++) {
        same += whole[i] == whole[i - 1];
    }
    CHECK(same < 20);

    /* the digest helper hashes exactly the stream */
    struct digest a, b;
    CHECK_INT(bench_data_digest(42, sizeof(whole), &a), BERTH_OK);
    CHECK_INT(digest_buffer(DIGEST_SHA256, whole, sizeof(whole), &b), BERTH_OK);
    CHECK_STR(a.str, b.str);

    /* across the 1 MiB chunk boundary of bench_data_digest */
    size_t big = BENCH_MIB + 123;
    unsigned char *buf = malloc(big);
    CHECK(buf != NULL);
    if (buf != NULL) {
        bench_data_fill(7, 0, buf, big);
        CHECK_INT(bench_data_digest(7, big, &a), BERTH_OK);
        CHECK_INT(digest_buffer(DIGEST_SHA256, buf, big, &b), BERTH_OK);
        CHECK_STR(a.str, b.str);
        free(buf);
    }
    CHECK(bench_mix64(1) != bench_mix64(2));
}

static void test_stats(void)
{
    struct bench_stats s;
    CHECK_INT(bench_stats_init(&s, 100), BERTH_OK);
    CHECK_INT(bench_stats_percentile(&s, 50), 0);
    /* 100..1 so that sorting matters */
    for (int i = 100; i >= 1; i--) {
        bench_stats_op(&s, true, i);
    }
    bench_stats_op(&s, false, 5000);
    bench_stats_finish(&s);
    CHECK_INT(s.ops_ok, 100);
    CHECK_INT(s.ops_failed, 1);
    CHECK_INT(bench_stats_percentile(&s, 50), 50);
    CHECK_INT(bench_stats_percentile(&s, 90), 90);
    CHECK_INT(bench_stats_percentile(&s, 99), 99);
    CHECK_INT(bench_stats_percentile(&s, 100), 100);
    CHECK_INT(bench_stats_percentile(&s, 0.5), 1);

    CHECK_INT(bench_stats_errors(&s), 0);
    bench_stats_fail(&s, BENCH_FAIL_STATUS, 500);
    bench_stats_fail(&s, BENCH_FAIL_STATUS, 500);
    bench_stats_fail(&s, BENCH_FAIL_STATUS, 9999); /* out of range: slot 0 */
    bench_stats_fail(&s, BENCH_FAIL_TRANSPORT, 0);
    bench_stats_fail(&s, BENCH_FAIL_CHECK, 200);
    CHECK_INT(s.fail_status[500], 2);
    CHECK_INT(s.fail_status[0], 1);
    CHECK_INT(bench_stats_errors(&s), 5);
    bench_stats_fini(&s);

    /* one sample: every percentile is that sample */
    CHECK_INT(bench_stats_init(&s, 1), BERTH_OK);
    bench_stats_op(&s, true, 7);
    bench_stats_op(&s, true, 8); /* beyond cap: counted, not stored */
    bench_stats_finish(&s);
    CHECK_INT(s.ops_ok, 2);
    CHECK_INT(bench_stats_percentile(&s, 1), 7);
    CHECK_INT(bench_stats_percentile(&s, 99), 7);
    bench_stats_fini(&s);
}

static void test_location(void)
{
    char out[256];
    const char *req = "http://127.0.0.1:5000/v2/a/b/blobs/uploads/";
    const char *origin = "http://127.0.0.1:5000";

    CHECK_INT(bench_resolve_location(req, origin, "/v2/a/b/blobs/uploads/u1?_state=x%3D&y=1", out,
                                     sizeof(out)),
              BERTH_OK);
    CHECK_STR(out, "http://127.0.0.1:5000/v2/a/b/blobs/uploads/u1?_state=x%3D&y=1");

    /* absolute: verbatim, even to another host */
    CHECK_INT(
        bench_resolve_location(req, origin, "http://other:1/up/load?sig=A%2Fb", out, sizeof(out)),
        BERTH_OK);
    CHECK_STR(out, "http://other:1/up/load?sig=A%2Fb");

    /* relative to the request's path */
    CHECK_INT(bench_resolve_location(req, origin, "u2?q=1", out, sizeof(out)), BERTH_OK);
    CHECK_STR(out, "http://127.0.0.1:5000/v2/a/b/blobs/uploads/u2?q=1");

    /* scheme-relative */
    CHECK_INT(bench_resolve_location(req, origin, "//h2:9/x", out, sizeof(out)), BERTH_OK);
    CHECK_STR(out, "http://h2:9/x");

    CHECK_INT(bench_resolve_location(req, origin, "", out, sizeof(out)), BERTH_EINVAL);
    char small[24];
    CHECK_INT(
        bench_resolve_location(req, origin, "/v2/a/b/blobs/uploads/long-id", small, sizeof(small)),
        BERTH_ETOOBIG);
}

static void test_image(void)
{
    struct bench_phase ph = {.repo_base = "p/run/w", .layer_size = 4096, .seed_base = 9};
    struct bench_image a, b;

    CHECK_INT(bench_phase_image(&ph, 3, &a), BERTH_OK);
    CHECK_STR(a.repo, "p/run/w-3");
    CHECK_STR(a.tag, "v1");
    CHECK_INT(a.layer_size, 4096);

    /* deterministic per index; distinct across indexes */
    CHECK_INT(bench_phase_image(&ph, 3, &b), BERTH_OK);
    CHECK_STR(a.manifest_digest.str, b.manifest_digest.str);
    CHECK_INT(bench_phase_image(&ph, 4, &b), BERTH_OK);
    CHECK(strcmp(a.layer.str, b.layer.str) != 0);
    CHECK(strcmp(a.config_digest.str, b.config_digest.str) != 0);

    /* the layer digest is the digest of the stream */
    struct digest d;
    CHECK_INT(bench_data_digest(a.layer_seed, a.layer_size, &d), BERTH_OK);
    CHECK_STR(a.layer.str, d.str);

    /* the manifest is JSON that names the config and layer as pushed */
    json_error_t err;
    json_t *m = json_loadb(a.manifest, a.manifest_len, 0, &err);
    CHECK(m != NULL);
    if (m != NULL) {
        json_t *cfg = json_object_get(m, "config");
        json_t *layer = json_array_get(json_object_get(m, "layers"), 0);
        CHECK_STR(json_string_value(json_object_get(cfg, "digest")), a.config_digest.str);
        CHECK_INT(json_integer_value(json_object_get(cfg, "size")), a.config_len);
        CHECK_STR(json_string_value(json_object_get(layer, "digest")), a.layer.str);
        CHECK_INT(json_integer_value(json_object_get(layer, "size")), 4096);
        json_decref(m);
    }
    CHECK_INT(digest_buffer(DIGEST_SHA256, a.manifest, a.manifest_len, &d), BERTH_OK);
    CHECK_STR(a.manifest_digest.str, d.str);
    json_t *c = json_loadb(a.config, a.config_len, 0, &err);
    CHECK(c != NULL);
    json_decref(c);

    /* precomputed digests are used as given */
    struct digest pre[1];
    CHECK_INT(
        digest_parse("sha256:0000000000000000000000000000000000000000000000000000000000000000",
                     &pre[0]),
        BERTH_OK);
    ph.digests = pre;
    ph.tag = "t0000";
    CHECK_INT(bench_phase_image(&ph, 0, &b), BERTH_OK);
    CHECK_STR(b.layer.str, pre[0].str);
    CHECK_STR(b.tag, "t0000");
}

static void test_workload_table(void)
{
    CHECK(bench_workload_count >= 13);
    for (size_t i = 0; i < bench_workload_count; i++) {
        CHECK(bench_workload_find(bench_workloads[i].name) == &bench_workloads[i]);
    }
    CHECK(bench_workload_find("pull-100m") != NULL);
    CHECK_INT(bench_workload_find("pull-100m")->layer_size, 100 * BENCH_MIB);
    CHECK(bench_workload_find("push-streamed-10m")->kind == BENCH_KIND_PUSH_STREAMED);
    CHECK(bench_workload_find("nope") == NULL);

    /* the mix: exactly one push per block of four, not always in one place */
    size_t pushes = 0, first = 0;
    for (size_t block = 0; block < 100; block++) {
        size_t in_block = 0;
        for (size_t i = block * 4; i < block * 4 + 4; i++) {
            in_block += bench_mix_is_push(i);
        }
        CHECK_INT(in_block, 1);
        pushes += in_block;
        first += bench_mix_is_push(block * 4);
    }
    CHECK_INT(pushes, 100);
    CHECK(first > 5 && first < 50);
}

static void test_loopback(void)
{
    struct bench_loopback_result r;
    CHECK_INT(bench_loopback_run(8 * BENCH_MIB + 5, &r), BERTH_OK);
    CHECK_INT(r.bytes, 8 * BENCH_MIB + 5);
    CHECK(r.seconds > 0);

    unsigned port = 0;
    CHECK_INT(bench_free_port(&port), BERTH_OK);
    CHECK(port > 0 && port < 65536);
}

/* A server that answers every request on one connection with `reply`
 * and closes; serves until `count` connections were handled. */
struct canned {
    int lfd;
    int count;
    const char *reply;
};

static void *canned_main(void *arg)
{
    struct canned *c = arg;
    for (int i = 0; i < c->count; i++) {
        int fd = accept(c->lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR) {
                i--;
                continue;
            }
            break;
        }
        char req[4096];
        size_t got = 0;
        while (got < sizeof(req) - 1) {
            ssize_t r = read(fd, req + got, sizeof(req) - 1 - got);
            if (r <= 0) {
                break;
            }
            got += (size_t)r;
            req[got] = '\0';
            if (strstr(req, "\r\n\r\n") != NULL) {
                break;
            }
        }
        size_t len = strlen(c->reply);
        if (send(fd, c->reply, len, MSG_NOSIGNAL) < 0) {
            perror("send");
        }
        close(fd);
    }
    return NULL;
}

static int canned_listen(unsigned *port)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        perror("canned server");
        abort();
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

static void run_head_phase(const char *url, size_t count, struct bench_stats *st)
{
    static struct bench_options o;
    struct bench_phase imgph = {.repo_base = "t/img", .layer_size = 16, .seed_base = 1};
    struct bench_image img;

    memset(&o, 0, sizeof(o));
    snprintf(o.url, sizeof(o.url), "%s", url);
    snprintf(o.origin, sizeof(o.origin), "%s", url);
    o.concurrency = 2;
    o.requests = count;
    o.timeout_s = 10;
    CHECK_INT(bench_phase_image(&imgph, 0, &img), BERTH_OK);

    struct bench_phase ph = {
        .label = "unit",
        .kind = BENCH_KIND_HEAD,
        .count = count,
        .concurrency = 2,
        .image = &img,
        .stats = st,
    };
    struct bench_engine *e = bench_engine_new(&o);
    CHECK(e != NULL);
    if (e != NULL) {
        CHECK_INT(bench_engine_run(e, &ph), BERTH_OK);
        bench_engine_free(e);
    }
}

static void test_engine_errors(void)
{
    char url[64];
    struct bench_stats st;
    unsigned port;

    /* nothing listens: every op fails in transport */
    CHECK_INT(bench_free_port(&port), BERTH_OK);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", port);
    CHECK_INT(bench_stats_init(&st, 3), BERTH_OK);
    run_head_phase(url, 3, &st);
    CHECK_INT(st.ops_ok, 0);
    CHECK_INT(st.ops_failed, 3);
    CHECK_INT(st.fail_transport, 3);
    CHECK_INT(st.http_requests, 3);
    bench_stats_fini(&st);

    /* a 500 is counted under its status, with the op failed */
    struct canned c = {.count = 4,
                       .reply = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n"
                                "Connection: close\r\n\r\noops\n"};
    pthread_t th;
    c.lfd = canned_listen(&port);
    CHECK_INT(pthread_create(&th, NULL, canned_main, &c), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", port);
    CHECK_INT(bench_stats_init(&st, 4), BERTH_OK);
    run_head_phase(url, 4, &st);
    pthread_join(th, NULL);
    close(c.lfd);
    CHECK_INT(st.ops_failed, 4);
    CHECK_INT(st.fail_status[500], 4);
    CHECK_INT(st.status[500], 4);
    CHECK_INT(bench_stats_errors(&st), 4);
    bench_stats_fini(&st);

    /* 200 without the digest header: a check failure, not a status one */
    struct canned ok = {.count = 2,
                        .reply = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                                 "Connection: close\r\n\r\n"};
    ok.lfd = canned_listen(&port);
    CHECK_INT(pthread_create(&th, NULL, canned_main, &ok), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", port);
    CHECK_INT(bench_stats_init(&st, 2), BERTH_OK);
    run_head_phase(url, 2, &st);
    pthread_join(th, NULL);
    close(ok.lfd);
    CHECK_INT(st.ops_failed, 2);
    CHECK_INT(st.fail_check, 2);
    CHECK_INT(st.status[200], 2);
    bench_stats_fini(&st);
}

int main(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return 1;
    }
    RUN(test_data_stream);
    RUN(test_stats);
    RUN(test_location);
    RUN(test_image);
    RUN(test_workload_table);
    RUN(test_loopback);
    RUN(test_engine_errors);
    curl_global_cleanup();
    return unit_report("test_bench");
}
