/* Unit tests for common/: buffers, strings, base64, random, config, log. */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/base64.h"
#include "common/buf.h"
#include "common/config.h"
#include "common/err.h"
#include "common/fault.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/rand.h"
#include "common/str.h"

static void test_buf(void)
{
    struct buf b;
    buf_init(&b, 8);
    CHECK_STR(buf_cstr(&b), "");
    CHECK_INT(buf_puts(&b, "abcd"), BERTH_OK);
    CHECK_INT(buf_printf(&b, "%d", 1234), BERTH_OK);
    CHECK_STR(buf_cstr(&b), "abcd1234");
    CHECK_INT(buf_puts(&b, "x"), BERTH_ETOOBIG);
    CHECK_INT(b.len, 8);
    buf_reset(&b);
    CHECK_STR(buf_cstr(&b), "");
    char *s = buf_steal(&b);
    CHECK_STR(s, "");
    free(s);
    buf_fini(&b);
}

static void test_parse_u64(void)
{
    uint64_t v = 7;
    CHECK_INT(str_parse_u64("0", 10, &v), BERTH_OK);
    CHECK_INT(v, 0);
    CHECK_INT(str_parse_u64("18446744073709551615", UINT64_MAX, &v), BERTH_OK);
    CHECK(v == UINT64_MAX);
    CHECK_INT(str_parse_u64("18446744073709551616", UINT64_MAX, &v), BERTH_ERANGE);
    CHECK_INT(str_parse_u64("11", 10, &v), BERTH_ERANGE);
    CHECK_INT(str_parse_u64("", 10, &v), BERTH_EINVAL);
    CHECK_INT(str_parse_u64("-1", 10, &v), BERTH_EINVAL);
    CHECK_INT(str_parse_u64("+1", 10, &v), BERTH_EINVAL);
    CHECK_INT(str_parse_u64(" 1", 10, &v), BERTH_EINVAL);
    CHECK_INT(str_parse_u64("1x", 10, &v), BERTH_EINVAL);
}

static void test_glob(void)
{
    CHECK(str_glob_match("*", ""));
    CHECK(str_glob_match("*", "abc"));
    CHECK(str_glob_match("prod*", "prod-1"));
    CHECK(!str_glob_match("prod*", "xprod"));
    CHECK(str_glob_match("*test*1*2*3", "footest-1-2-3"));
    CHECK(str_glob_match("a*b*c", "abc"));
    CHECK(!str_glob_match("a*b*c", "acb"));
    CHECK(str_glob_match("exact", "exact"));
    CHECK(!str_glob_match("exact", "exactly"));
}

/* '?' and case folding are off unless asked for (IAM-style patterns in
 * policies use both). */
static void test_glob_flags(void)
{
    const unsigned iam = STR_GLOB_QUESTION | STR_GLOB_ICASE;
    CHECK(!str_glob_match("app-?", "app-1"));
    CHECK(str_glob_match("app-?", "app-?"));
    CHECK(str_glob_match_flags("app-?", "app-1", STR_GLOB_QUESTION));
    CHECK(!str_glob_match_flags("app-?", "app-10", STR_GLOB_QUESTION));
    CHECK(!str_glob_match_flags("app-?", "app-", STR_GLOB_QUESTION));
    CHECK(str_glob_match_flags("team/*", "team/a/b", iam));
    CHECK(!str_glob_match_flags("team/*", "teams/a", iam));
    CHECK(!str_glob_match_flags("team/*", "team", iam));
    CHECK(str_glob_match_flags("a*b*c", "axxbyybzc", iam));
    CHECK(!str_glob_match_flags("a*b*c", "axxbyyb", iam));
    CHECK(str_glob_match_flags("ecr:Put*", "ecr:PutImage", iam));
    CHECK(str_glob_match_flags("ECR:put*", "ecr:PutImage", iam));
    CHECK(!str_glob_match_flags("ECR:put*", "ecr:PutImage", STR_GLOB_QUESTION));
    CHECK(!str_glob_match("Team/*", "team/a"));
    CHECK(str_glob_match_flags("Team/*", "team/a", STR_GLOB_ICASE));
    CHECK(!str_glob_match_flags("", "a", iam));
    CHECK(str_glob_match_flags("", "", iam));
    CHECK(str_glob_match_flags("*?", "x", iam));
    CHECK(!str_glob_match_flags("*?", "", iam));
}

static void test_utf8_scrub(void)
{
    char ok[] = "plain \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    CHECK_INT(str_utf8_scrub(ok), 0);
    CHECK_STR(ok, "plain \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    char cut[] = "ab\xc3"; /* a two-byte sequence cut short */
    CHECK_INT(str_utf8_scrub(cut), 1);
    CHECK_STR(cut, "ab?");
    char cut3[] = "\xe2\x82x";
    CHECK_INT(str_utf8_scrub(cut3), 2);
    CHECK_STR(cut3, "??x");
    char bad[] = "\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\xff|\x80";
    str_utf8_scrub(bad); /* overlong, surrogate, above U+10FFFF, never valid, stray */
    CHECK_STR(bad, "??|???|????|?|?");
    char empty[] = "";
    CHECK_INT(str_utf8_scrub(empty), 0);
}

static void test_copy_and_ct(void)
{
    char small[4];
    CHECK_INT(str_copy(small, sizeof(small), "abc"), BERTH_OK);
    CHECK_INT(str_copy(small, sizeof(small), "abcd"), BERTH_ETOOBIG);
    CHECK_STR(small, "abc");
    CHECK(str_ct_equal("abc", 3, "abc", 3));
    CHECK(!str_ct_equal("abc", 3, "abd", 3));
    CHECK(!str_ct_equal("abc", 3, "ab", 2));
}

static void test_pct_encode(void)
{
    char out[64];
    CHECK_INT(str_pct_encode(out, sizeof(out), "application/spdx+json"), BERTH_OK);
    CHECK_STR(out, "application%2Fspdx%2Bjson");
    CHECK_INT(str_pct_encode(out, sizeof(out), "Az09-._~"), BERTH_OK);
    CHECK_STR(out, "Az09-._~");
    CHECK_INT(str_pct_encode(out, sizeof(out), "a b&c=d#e>f%\xc3\xa9"), BERTH_OK);
    CHECK_STR(out, "a%20b%26c%3Dd%23e%3Ef%25%C3%A9");
    CHECK_INT(str_pct_encode(out, sizeof(out), ""), BERTH_OK);
    CHECK_STR(out, "");
    /* exactly full, then one byte short: never half an escape */
    char four[4];
    CHECK_INT(str_pct_encode(four, sizeof(four), "+"), BERTH_OK);
    CHECK_STR(four, "%2B");
    CHECK_INT(str_pct_encode(four, sizeof(four), "a+"), BERTH_ETOOBIG);
    CHECK_STR(four, "");
    CHECK_INT(str_pct_encode(four, sizeof(four), "abcd"), BERTH_ETOOBIG);
    CHECK_STR(four, "");
}

static void test_say(void)
{
    char why[8] = "old";
    str_say(why, sizeof(why), "layer %d of %s", 1, "2");
    CHECK_STR(why, "layer 1");
    str_say(why, 0, "%s", "untouched");
    CHECK_STR(why, "layer 1");
    str_say(NULL, 64, "%s", "nowhere");
}

static void test_hex_value(void)
{
    CHECK_INT(str_hex_value('0'), 0);
    CHECK_INT(str_hex_value('9'), 9);
    CHECK_INT(str_hex_value('a'), 10);
    CHECK_INT(str_hex_value('F'), 15);
    CHECK_INT(str_hex_value('g'), -1);
    CHECK_INT(str_hex_value('/'), -1);
    CHECK_INT(str_hex_value('\0'), -1);
}

static void test_base64(void)
{
    const char *cases[][2] = {{"", ""},
                              {"f", "Zg=="},
                              {"fo", "Zm8="},
                              {"foo", "Zm9v"},
                              {"foob", "Zm9vYg=="},
                              {"fooba", "Zm9vYmE="},
                              {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char enc[32];
        base64_encode((const uint8_t *)cases[i][0], strlen(cases[i][0]), enc);
        CHECK_STR(enc, cases[i][1]);
        uint8_t dec[32];
        size_t n = 0;
        CHECK_INT(base64_decode(enc, strlen(enc), dec, &n), BERTH_OK);
        dec[n] = 0;
        CHECK_STR((char *)dec, cases[i][0]);
    }
    uint8_t out[16];
    size_t n;
    CHECK_INT(base64_decode("Zm9", 3, out, &n), BERTH_EINVAL);
    CHECK_INT(base64_decode("Zm=v", 4, out, &n), BERTH_EINVAL);
    CHECK_INT(base64_decode("Z!9v", 4, out, &n), BERTH_EINVAL);
    CHECK_INT(base64_decode("=Zm9", 4, out, &n), BERTH_EINVAL);
}

static void test_base64url(void)
{
    const uint8_t raw[] = {0xfb, 0xff, 0xbf, 0x00, 0x3e};
    char enc[16];
    CHECK_INT(base64url_encode(raw, 3, enc), 4);
    CHECK_STR(enc, "-_-_");
    CHECK_INT(base64url_encode(raw, 5, enc), 7);
    CHECK_STR(enc, "-_-_AD4");
    uint8_t dec[16];
    size_t n = 0;
    CHECK_INT(base64url_decode("-_-_AD4", 7, dec, &n), BERTH_OK);
    CHECK_INT(n, 5);
    CHECK(memcmp(dec, raw, 5) == 0);
    /* non-canonical trailing bits, padding, the standard alphabet, a lone
     * final character: all refused */
    CHECK_INT(base64url_decode("-_-_AD5", 7, dec, &n), BERTH_EINVAL);
    CHECK_INT(base64url_decode("-_-_AD4=", 8, dec, &n), BERTH_EINVAL);
    CHECK_INT(base64url_decode("+/+/", 4, dec, &n), BERTH_EINVAL);
    CHECK_INT(base64url_decode("-_-_A", 5, dec, &n), BERTH_EINVAL);
    CHECK_INT(base64url_decode("", 0, dec, &n), BERTH_OK);
    CHECK_INT(n, 0);
}

static void test_uuid(void)
{
    char a[RAND_UUID_LEN + 1], b[RAND_UUID_LEN + 1];
    CHECK_INT(rand_uuid(a), BERTH_OK);
    CHECK_INT(rand_uuid(b), BERTH_OK);
    CHECK(rand_is_uuid(a));
    CHECK(strcmp(a, b) != 0);
    CHECK(a[14] == '4');
    CHECK(!rand_is_uuid("not-a-uuid"));
    CHECK(!rand_is_uuid("0123456789abcdef0123456789abcdef0123"));
}

static void test_log_value(void)
{
    char out[32];
    CHECK_STR(log_value("/v2/foo/manifests/latest", out, sizeof(out)), "/v2/foo/manifests/latest");
    CHECK_STR(log_value("a b", out, sizeof(out)), "\"a b\"");
    CHECK_STR(log_value("q\"\n", out, sizeof(out)), "\"q\\\"\\x0a\"");
    CHECK_STR(log_value("", out, sizeof(out)), "\"\"");
    char tiny[8];
    log_value("abcdefghijklmnop", tiny, sizeof(tiny));
    CHECK(strlen(tiny) < sizeof(tiny));
}

static void test_log_json(void)
{
    char out[512];
    log_line_to_json("ts=2026-01-01T00:00:00.000Z level=info event=access path=\"/a b\" "
                     "status=200 duration_ms=0.579 id=007 n=-3 req=abc",
                     out, sizeof(out));
    CHECK_STR(out, "{\"ts\":\"2026-01-01T00:00:00.000Z\",\"level\":\"info\",\"event\":\"access\","
                   "\"path\":\"/a b\",\"status\":200,\"duration_ms\":0.579,\"id\":\"007\","
                   "\"n\":-3,\"req\":\"abc\"}");
    /* log_value's escapes come back as the bytes they stand for */
    char v[64];
    char line[128];
    snprintf(line, sizeof(line), "msg=%s", log_value("q\"\n\\x", v, sizeof(v)));
    log_line_to_json(line, out, sizeof(out));
    CHECK_STR(out, "{\"msg\":\"q\\\"\\u000a\\\\x\"}");
    /* a word that is not key=value is kept under msg */
    log_line_to_json("event=x stray 1.2.3", out, sizeof(out));
    CHECK_STR(out, "{\"event\":\"x\",\"msg\":\"stray\",\"msg\":\"1.2.3\"}");
    log_line_to_json("", out, sizeof(out));
    CHECK_STR(out, "{}");
    /* cut short, the object still closes without a partial member */
    log_line_to_json("alpha=1 beta=\"long value here\"", out, 16);
    CHECK_STR(out, "{\"alpha\":1}");
}

static void test_config(void)
{
    struct berth_config cfg;
    char err[256] = "";
    CHECK_INT(config_init(&cfg), BERTH_OK);
    CHECK_STR(cfg.listen, "127.0.0.1:5000");
    CHECK_INT(cfg.gc_grace_seconds, 3600);
    CHECK(cfg.storage_fsync);
    CHECK_INT(config_set(&cfg, "http.threads", "8", err, sizeof(err)), BERTH_OK);
    CHECK_INT(cfg.http_threads, 8);
    CHECK_INT(config_set(&cfg, "http.threads", "-1", err, sizeof(err)), BERTH_EINVAL);
    CHECK_INT(config_set(&cfg, "nope", "1", err, sizeof(err)), BERTH_ENOTFOUND);

    const char *dir = unit_tmpdir();
    char path[600];
    snprintf(path, sizeof(path), "%s/berth.json", dir);
    const char *doc = "{\"listen\":\"0.0.0.0:6000\",\"gc\":{\"grace_seconds\":0},"
                      "\"auth\":{\"keys\":[]},\"storage\":{\"fsync\":false}}";
    CHECK_INT(file_write_atomic(path, doc, strlen(doc), 0600, false), BERTH_OK);
    CHECK_INT(config_load_file(&cfg, path, err, sizeof(err)), BERTH_OK);
    CHECK_STR(cfg.listen, "0.0.0.0:6000");
    CHECK_INT(cfg.gc_grace_seconds, 0);
    CHECK(!cfg.storage_fsync);
    CHECK(json_is_array(cfg.auth_keys));

    setenv("BERTH_LISTEN", "127.0.0.1:7000", 1);
    CHECK_INT(config_load_env(&cfg, err, sizeof(err)), BERTH_OK);
    CHECK_STR(cfg.listen, "127.0.0.1:7000");
    unsetenv("BERTH_LISTEN");
    setenv("BERTH_GC_GRACE_SECONDS", "x", 1);
    CHECK_INT(config_load_env(&cfg, err, sizeof(err)), BERTH_EINVAL);
    CHECK(strstr(err, "BERTH_GC_GRACE_SECONDS") != NULL);
    unsetenv("BERTH_GC_GRACE_SECONDS");
    CHECK_INT(config_validate(&cfg, err, sizeof(err)), BERTH_OK);

    const char *bad = "{\"gc\":{\"grace\":1}}";
    CHECK_INT(file_write_atomic(path, bad, strlen(bad), 0600, false), BERTH_OK);
    CHECK_INT(config_load_file(&cfg, path, err, sizeof(err)), BERTH_EINVAL);
    CHECK(strstr(err, "gc.grace") != NULL);
    const char *badtype = "{\"http\":{\"threads\":\"8\"}}";
    CHECK_INT(file_write_atomic(path, badtype, strlen(badtype), 0600, false), BERTH_OK);
    CHECK_INT(config_load_file(&cfg, path, err, sizeof(err)), BERTH_EINVAL);

    char host[64];
    uint16_t port;
    CHECK_INT(config_listen_parts("[::1]:5000", host, sizeof(host), &port), BERTH_OK);
    CHECK_STR(host, "::1");
    CHECK_INT(port, 5000);
    CHECK_INT(config_listen_parts("localhost", host, sizeof(host), &port), BERTH_EINVAL);
    CHECK_INT(config_listen_parts("1.2.3.4:70000", host, sizeof(host), &port), BERTH_EINVAL);
    config_fini(&cfg);
    file_remove_tree(dir);
}

/* A resource running out is never "not found" (issue 10: EMFILE was served
 * as 404 / logged as a missing file). */
static void test_err_from_errno(void)
{
    CHECK_INT(berth_err_from_errno(ENOENT), BERTH_ENOTFOUND);
    CHECK_INT(berth_err_from_errno(EMFILE), BERTH_ENOFD);
    CHECK_INT(berth_err_from_errno(ENFILE), BERTH_ENOFD);
    CHECK_INT(berth_err_from_errno(ENOMEM), BERTH_ENOMEM);
    CHECK_INT(berth_err_from_errno(EACCES), BERTH_EIO);
    CHECK_STR(berth_strerror(BERTH_ENOFD), "ENOFD");
    /* and what open(2) really sets when the descriptors run out */
    struct rlimit old;
    CHECK_INT(getrlimit(RLIMIT_NOFILE, &old), 0);
    int fds[64];
    size_t n = 0;
    struct rlimit low = {.rlim_cur = 16, .rlim_max = old.rlim_max};
    CHECK_INT(setrlimit(RLIMIT_NOFILE, &low), 0);
    for (int fd; n < 64 && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) {
        fds[n++] = fd;
    }
    CHECK(n < 64);
    CHECK_INT(errno, EMFILE);
    CHECK_INT(berth_err_from_errno(errno), BERTH_ENOFD);
    while (n > 0) {
        close(fds[--n]);
    }
    CHECK_INT(setrlimit(RLIMIT_NOFILE, &old), 0);
}

/* BERTH_TEST_FAULTS names whole items of a comma-separated list */
static void test_fault_injected(void)
{
    unsetenv("BERTH_TEST_FAULTS");
    CHECK(!fault_injected("auth_lookup"));
    setenv("BERTH_TEST_FAULTS", "hmac,auth_lookup", 1);
    CHECK(fault_injected("auth_lookup"));
    CHECK(fault_injected("hmac"));
    CHECK(!fault_injected("auth"));
    CHECK(!fault_injected("lookup"));
    CHECK(!fault_injected("auth_policy"));
    setenv("BERTH_TEST_FAULTS", "auth_lookups", 1);
    CHECK(!fault_injected("auth_lookup"));
    setenv("BERTH_TEST_FAULTS", "", 1);
    CHECK(!fault_injected("auth_lookup"));
    unsetenv("BERTH_TEST_FAULTS");
}

int main(void)
{
    RUN(test_buf);
    RUN(test_parse_u64);
    RUN(test_glob);
    RUN(test_glob_flags);
    RUN(test_utf8_scrub);
    RUN(test_copy_and_ct);
    RUN(test_pct_encode);
    RUN(test_say);
    RUN(test_hex_value);
    RUN(test_base64);
    RUN(test_base64url);
    RUN(test_uuid);
    RUN(test_log_value);
    RUN(test_log_json);
    RUN(test_config);
    RUN(test_err_from_errno);
    RUN(test_fault_injected);
    return unit_report("test_common");
}
