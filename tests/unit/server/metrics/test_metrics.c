/* Unit tests for server/metrics/metrics.c: what is recorded is what is
 * rendered, in the exposition format, with bounded label sets. */
#include "server/metrics/metrics.h"

#include "unit.h"

static char *render(const struct metrics_gauges *g)
{
    struct buf b;
    buf_init(&b, 0);
    CHECK_INT(metrics_render(&b, g), BERTH_OK);
    return buf_steal(&b);
}

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++) {
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0')) {
            return true;
        }
    }
    return false;
}

static void test_requests(void)
{
    metrics_reset();
    metrics_init();
    metrics_http_request("oci", "/v2/{name}/blobs/{digest}", "GET", 200, 0.003, 0, 1000);
    metrics_http_request("oci", "/v2/{name}/blobs/{digest}", "GET", 200, 0.2, 0, 24);
    metrics_http_request("oci", "/v2/{name}/blobs/{digest}", "BREW", 404, 0.001, 5, 0);
    metrics_http_request(NULL, NULL, NULL, 999, -1, 0, 0);
    char *t = render(NULL);
    CHECK(has_line(t, "berth_http_requests_total{api=\"oci\",route=\"/v2/{name}/blobs/{digest}\","
                      "method=\"GET\",status=\"200\"} 2"));
    CHECK(has_line(t, "berth_http_requests_total{api=\"oci\",route=\"/v2/{name}/blobs/{digest}\","
                      "method=\"OTHER\",status=\"404\"} 1"));
    CHECK(has_line(t, "berth_http_requests_total{api=\"none\",route=\"none\",method=\"OTHER\","
                      "status=\"0\"} 1"));
    /* buckets are cumulative: 0.003 and 0.001 under 0.005, 0.2 from 0.25 up */
    CHECK(has_line(t, "berth_http_request_duration_seconds_bucket{api=\"oci\","
                      "route=\"/v2/{name}/blobs/{digest}\",le=\"0.005\"} 2"));
    CHECK(has_line(t, "berth_http_request_duration_seconds_bucket{api=\"oci\","
                      "route=\"/v2/{name}/blobs/{digest}\",le=\"0.1\"} 2"));
    CHECK(has_line(t, "berth_http_request_duration_seconds_bucket{api=\"oci\","
                      "route=\"/v2/{name}/blobs/{digest}\",le=\"0.25\"} 3"));
    CHECK(has_line(t, "berth_http_request_duration_seconds_bucket{api=\"oci\","
                      "route=\"/v2/{name}/blobs/{digest}\",le=\"+Inf\"} 3"));
    CHECK(has_line(t, "berth_http_request_duration_seconds_count{api=\"oci\","
                      "route=\"/v2/{name}/blobs/{digest}\"} 3"));
    CHECK(has_line(t, "berth_http_sent_bytes_total{api=\"oci\","
                      "route=\"/v2/{name}/blobs/{digest}\"} 1024"));
    CHECK(has_line(t, "berth_http_received_bytes_total{api=\"oci\","
                      "route=\"/v2/{name}/blobs/{digest}\"} 5"));
    CHECK(has_line(t, "# TYPE berth_http_request_duration_seconds histogram"));
    CHECK(strstr(t, "process_start_time_seconds ") != NULL);
    CHECK(strstr(t, "process_resident_memory_bytes ") != NULL);
    CHECK(strstr(t, "process_open_fds ") != NULL);
    /* no gauges given: the store's are left out */
    CHECK(strstr(t, "berth_storage_blobs") == NULL);
    free(t);
}

static void test_bounded_series(void)
{
    metrics_reset();
    static char names[METRICS_SERIES_MAX + 10][32];
    for (size_t i = 0; i < METRICS_SERIES_MAX + 10; i++) {
        snprintf(names[i], sizeof(names[i]), "r%zu", i);
        metrics_http_request("ecr", names[i], "POST", 200, 0.01, 1, 1);
    }
    char *t = render(NULL);
    char line[128];
    snprintf(
        line, sizeof(line),
        "berth_http_requests_total{api=\"ecr\",route=\"r%d\",method=\"POST\",status=\"200\"} 1",
        METRICS_SERIES_MAX - 1);
    CHECK(has_line(t, line));
    snprintf(line, sizeof(line), "route=\"r%d\"", METRICS_SERIES_MAX);
    CHECK(strstr(t, line) == NULL);
    CHECK(has_line(t, "berth_http_requests_total{api=\"ecr\",route=\"other\",method=\"POST\","
                      "status=\"200\"} 10"));
    free(t);
}

static void test_jobs_and_gauges(void)
{
    metrics_reset();
    metrics_auth_failure("bad_secret");
    metrics_auth_failure("bad_secret");
    metrics_auth_failure("with \"quote\"");
    metrics_gc_pass(0.5, 4096, 3, false);
    metrics_gc_pass(2, 0, 0, true);
    metrics_lifecycle_run(2, 10, 4);
    metrics_scan_result(true, 1.5);
    metrics_scan_result(false, 0.001);
    metrics_connection_delta(1);
    metrics_connection_delta(1);
    metrics_connection_delta(-1);
    struct metrics_gauges g = {.blobs = 7,
                               .blob_bytes = 12345,
                               .upload_sessions = 2,
                               .scan_waiting = 1,
                               .scan_running = -1,
                               .tail_hits = 3,
                               .tail_misses = 5};
    char *t = render(&g);
    CHECK(has_line(t, "berth_s3_upload_tail_reads_total{source=\"memory\"} 3"));
    CHECK(has_line(t, "berth_s3_upload_tail_reads_total{source=\"bucket\"} 5"));
    CHECK(has_line(t, "berth_auth_failures_total{reason=\"bad_secret\"} 2"));
    CHECK(has_line(t, "berth_auth_failures_total{reason=\"with \\\"quote\\\"\"} 1"));
    CHECK(has_line(t, "berth_gc_passes_total{result=\"ok\"} 1"));
    CHECK(has_line(t, "berth_gc_passes_total{result=\"error\"} 1"));
    CHECK(has_line(t, "berth_gc_freed_bytes_total 4096"));
    CHECK(has_line(t, "berth_gc_deleted_blobs_total 3"));
    CHECK(has_line(t, "berth_gc_duration_seconds_count 2"));
    CHECK(has_line(t, "berth_gc_duration_seconds_sum 2.5"));
    CHECK(has_line(t, "berth_lifecycle_runs_total 1"));
    CHECK(has_line(t, "berth_lifecycle_evaluated_repositories_total 2"));
    CHECK(has_line(t, "berth_lifecycle_evaluated_images_total 10"));
    CHECK(has_line(t, "berth_lifecycle_expired_images_total 4"));
    CHECK(has_line(t, "berth_scans_total{result=\"complete\"} 1"));
    CHECK(has_line(t, "berth_scans_total{result=\"failed\"} 1"));
    CHECK(has_line(t, "berth_http_open_connections 1"));
    CHECK(has_line(t, "berth_storage_blobs 7"));
    CHECK(has_line(t, "berth_storage_blob_bytes 12345"));
    CHECK(has_line(t, "berth_upload_sessions 2"));
    CHECK(has_line(t, "berth_scan_queue_jobs{state=\"waiting\"} 1"));
    CHECK(strstr(t, "state=\"running\"") == NULL);
    free(t);
    /* not S3: no tail cache line */
    g.tail_hits = g.tail_misses = -1;
    t = render(&g);
    CHECK(strstr(t, "berth_s3_upload_tail_reads_total") == NULL);
    free(t);
}

static void test_reasons_bounded(void)
{
    metrics_reset();
    static char reasons[40][16];
    for (int i = 0; i < 40; i++) {
        snprintf(reasons[i], sizeof(reasons[i]), "why%d", i);
        metrics_auth_failure(reasons[i]);
    }
    char *t = render(NULL);
    CHECK(has_line(t, "berth_auth_failures_total{reason=\"why0\"} 1"));
    CHECK(strstr(t, "reason=\"why39\"") == NULL);
    CHECK(strstr(t, "berth_auth_failures_total{reason=\"other\"} ") != NULL);
    free(t);
}

/* The summary folds the same counters by API and status class. */
static void test_summary(void)
{
    metrics_reset();
    metrics_init();
    metrics_http_request("oci", "/v2/{name}/blobs/{digest}", "GET", 200, 0.003, 0, 1000);
    metrics_http_request("oci", "/v2/{name}/blobs/{digest}", "GET", 206, 0.003, 0, 10);
    metrics_http_request("oci", "/v2/{name}/manifests/{reference}", "PUT", 404, 0.003, 50, 5);
    metrics_http_request("ecr", "DescribeImages", "POST", 400, 0.01, 20, 30);
    metrics_http_request("ecr", "DescribeImages", "POST", 700, 0.01, 0, 0);
    for (int i = 0; i < METRICS_SUMMARY_APIS + 2; i++) {
        static const char *const apis[] = {"a0", "a1", "a2", "a3", "a4",
                                           "a5", "a6", "a7", "a8", "a9"};
        metrics_http_request(apis[i], "r", "GET", 503, 0, 0, 0);
    }
    metrics_auth_failure("bad_secret");
    metrics_auth_failure("denied");
    metrics_gc_pass(0.5, 4096, 3, false);
    metrics_gc_pass(0.5, 0, 0, true);
    metrics_lifecycle_run(2, 10, 4);
    metrics_scan_result(true, 1);
    metrics_scan_result(false, 1);
    struct metrics_summary s;
    metrics_summary_get(&s);
    CHECK(s.started_at_ms > 0);
    CHECK_INT(s.api_count, METRICS_SUMMARY_APIS);
    CHECK_STR(s.apis[0].api, "oci");
    CHECK_INT(s.apis[0].by_class[2], 2);
    CHECK_INT(s.apis[0].by_class[4], 1);
    CHECK_INT(s.apis[0].bytes_in, 50);
    CHECK_INT(s.apis[0].bytes_out, 1015);
    CHECK_STR(s.apis[1].api, "ecr");
    CHECK_INT(s.apis[1].by_class[4], 1);
    CHECK_INT(s.apis[1].by_class[0], 1); /* a status outside 100..599 */
    /* a0..a4 keep rows of their own; the last row, once more APIs come, is
     * "other": a5..a9 */
    CHECK_STR(s.apis[2].api, "a0");
    CHECK_INT(s.apis[2].by_class[5], 1);
    CHECK_STR(s.apis[METRICS_SUMMARY_APIS - 1].api, "other");
    CHECK_INT(s.apis[METRICS_SUMMARY_APIS - 1].by_class[5], 5);
    CHECK_INT(s.auth_failures, 2);
    CHECK_INT(s.gc_passes_ok, 1);
    CHECK_INT(s.gc_passes_failed, 1);
    CHECK_INT(s.gc_bytes_freed, 4096);
    CHECK_INT(s.gc_blobs_deleted, 3);
    CHECK_INT(s.lifecycle_runs, 1);
    CHECK_INT(s.lifecycle_expired, 4);
    CHECK_INT(s.scans_complete, 1);
    CHECK_INT(s.scans_failed, 1);
}

/* Pushes and pulls by repository: none unless asked for, then the first n
 * repositories by name and the rest under "_other". */
static void test_repositories(void)
{
    metrics_repository_series(0);
    metrics_reset();
    metrics_repository_push("app");
    metrics_repository_pull("app");
    char *t = render(NULL);
    CHECK(strstr(t, "berth_repository_") == NULL);
    free(t);

    metrics_repository_series(2);
    metrics_repository_push("team/app");
    metrics_repository_pull("team/app");
    metrics_repository_pull("team/app");
    metrics_repository_pull("lib");
    metrics_repository_push("third");
    metrics_repository_push("fourth");
    metrics_repository_pull("fourth");
    t = render(NULL);
    CHECK(has_line(t, "# TYPE berth_repository_pushes_total counter"));
    CHECK(has_line(t, "# TYPE berth_repository_pulls_total counter"));
    CHECK(has_line(t, "berth_repository_pushes_total{repository=\"team/app\"} 1"));
    CHECK(has_line(t, "berth_repository_pulls_total{repository=\"team/app\"} 2"));
    CHECK(has_line(t, "berth_repository_pushes_total{repository=\"lib\"} 0"));
    CHECK(has_line(t, "berth_repository_pulls_total{repository=\"lib\"} 1"));
    CHECK(has_line(t, "berth_repository_pushes_total{repository=\"_other\"} 2"));
    CHECK(has_line(t, "berth_repository_pulls_total{repository=\"_other\"} 1"));
    CHECK(strstr(t, "third") == NULL);
    CHECK(strstr(t, "fourth") == NULL);
    free(t);

    /* a reset keeps the rows, at 0 */
    metrics_reset();
    t = render(NULL);
    CHECK(has_line(t, "berth_repository_pulls_total{repository=\"team/app\"} 0"));
    CHECK(has_line(t, "berth_repository_pushes_total{repository=\"_other\"} 0"));
    free(t);

    /* the limit is capped */
    metrics_repository_series(METRICS_REPOSITORIES_MAX + 5);
    static char names[METRICS_REPOSITORIES_MAX + 5][16];
    for (int i = 0; i < METRICS_REPOSITORIES_MAX + 5; i++) {
        snprintf(names[i], sizeof(names[i]), "r%d", i);
        metrics_repository_pull(names[i]);
    }
    t = render(NULL);
    CHECK(has_line(t, "berth_repository_pulls_total{repository=\"r999\"} 1"));
    CHECK(strstr(t, "repository=\"r1000\"") == NULL);
    CHECK(has_line(t, "berth_repository_pulls_total{repository=\"_other\"} 5"));
    free(t);
    metrics_repository_series(0);
}

int main(void)
{
    RUN(test_requests);
    RUN(test_bounded_series);
    RUN(test_jobs_and_gauges);
    RUN(test_reasons_bounded);
    RUN(test_summary);
    RUN(test_repositories);
    return unit_report("test_metrics");
}
