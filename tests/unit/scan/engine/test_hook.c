/*
 * Unit tests for scan/engine/hook.c: command splitting, validation of the
 * hook's output, and running real hooks (/bin/sh scripts): success, exit
 * status, timeout with the process group killed, too much output,
 * stragglers holding the output open, cancellation, the layout directory
 * and its removal.
 */
#include "unit.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/spec/digest.h"
#include "common/fileio.h"
#include "scan/engine/scan_hook.h"
#include "common/timeutil.h"

static char dir[512];

/* ---- splitting ---- */

static void split_ok(const char *cmd, size_t want_argc, const char *const *want)
{
    char **argv = NULL;
    size_t argc = 0;
    char reason[200] = "";
    CHECK_INT(scan_hook_split(cmd, &argv, &argc, reason, sizeof(reason)), BERTH_OK);
    CHECK_INT(argc, want_argc);
    for (size_t i = 0; argv != NULL && i < argc && i < want_argc; i++) {
        CHECK_STR(argv[i], want[i]);
    }
    CHECK(argv == NULL || argv[argc] == NULL);
    scan_hook_argv_free(argv);
}

static void split_bad(const char *cmd, enum berth_err want)
{
    char **argv = NULL;
    size_t argc = 0;
    char reason[200] = "";
    CHECK_INT(scan_hook_split(cmd, &argv, &argc, reason, sizeof(reason)), want);
    CHECK(argv == NULL);
    CHECK(reason[0] != '\0');
}

static void test_split(void)
{
    split_ok("/usr/bin/trivy", 1, (const char *const[]){"/usr/bin/trivy"});
    split_ok("  a   b\tc  ", 3, (const char *const[]){"a", "b", "c"});
    split_ok("sh -c 'echo $HOME | wc -c'", 3,
             (const char *const[]){"sh", "-c", "echo $HOME | wc -c"});
    split_ok("a \"b \\\"c\\\" \\\\d\" e", 3, (const char *const[]){"a", "b \"c\" \\d", "e"});
    split_ok("a\\ b c", 2, (const char *const[]){"a b", "c"});
    split_ok("pre'quoted part'post \"\"", 2, (const char *const[]){"prequoted partpost", ""});
    split_bad("", BERTH_EINVAL);
    split_bad("   ", BERTH_EINVAL);
    split_bad("a 'b", BERTH_EINVAL);
    split_bad("a \"b", BERTH_EINVAL);
    split_bad("a b\\", BERTH_EINVAL);
    char many[SCAN_HOOK_MAX_ARGS * 2 + 8];
    for (int i = 0; i <= SCAN_HOOK_MAX_ARGS; i++) {
        memcpy(many + 2 * i, "x ", 2);
    }
    many[2 * (SCAN_HOOK_MAX_ARGS + 1)] = '\0';
    split_bad(many, BERTH_ETOOBIG);
    char *huge = malloc(SCAN_HOOK_COMMAND_MAX + 2);
    memset(huge, 'a', SCAN_HOOK_COMMAND_MAX + 1);
    huge[SCAN_HOOK_COMMAND_MAX + 1] = '\0';
    split_bad(huge, BERTH_ETOOBIG);
    free(huge);
}

/* ---- output ---- */

static json_t *parse_ok(const char *text, int64_t *updated)
{
    json_t *f = NULL;
    int64_t u = 0;
    char reason[300] = "";
    CHECK_INT(scan_hook_parse_output(text, strlen(text), &f, &u, reason, sizeof(reason)), BERTH_OK);
    if (reason[0]) {
        fprintf(stderr, "reason: %s\n", reason);
    }
    if (updated) {
        *updated = u;
    }
    return f;
}

static void parse_bad(const char *text, const char *want_reason)
{
    json_t *f = NULL;
    int64_t u = 0;
    char reason[300] = "";
    CHECK_INT(scan_hook_parse_output(text, strlen(text), &f, &u, reason, sizeof(reason)),
              BERTH_EINVAL);
    CHECK(f == NULL);
    if (strstr(reason, want_reason) == NULL) {
        fprintf(stderr, "reason \"%s\" lacks \"%s\"\n", reason, want_reason);
        CHECK(0);
    }
}

static void test_output(void)
{
    int64_t updated = 0;
    json_t *f = parse_ok("{\"findings\":[{\"name\":\"CVE-1\",\"description\":\"d\",\"uri\":"
                         "\"https://x\",\"severity\":\"HIGH\",\"attributes\":[{\"key\":"
                         "\"package_name\",\"value\":\"p\"},{\"key\":\"only\"}],\"extra\":1}],"
                         "\"vulnerabilitySourceUpdatedAt\":1700000000.5,\"other\":true}",
                         &updated);
    CHECK_INT(updated, 1700000000500LL);
    char *text = json_dumps(f, JSON_COMPACT | JSON_SORT_KEYS);
    CHECK_STR(text, "[{\"attributes\":[{\"key\":\"package_name\",\"value\":\"p\"},{\"key\":"
                    "\"only\"}],\"description\":\"d\",\"name\":\"CVE-1\",\"severity\":\"HIGH\","
                    "\"uri\":\"https://x\"}]");
    free(text);
    json_decref(f);

    /* a bare list; no time */
    f = parse_ok("[{\"name\":\"A\",\"severity\":\"UNDEFINED\"},{\"name\":\"B\",\"severity\":"
                 "\"INFORMATIONAL\",\"description\":null}]",
                 &updated);
    CHECK_INT(updated, -1);
    CHECK_INT(json_array_size(f), 2);
    json_decref(f);
    f = parse_ok("{\"findings\":[]}", NULL);
    CHECK_INT(json_array_size(f), 0);
    json_decref(f);

    /* long descriptions are cut at a character boundary, long uris dropped */
    size_t n = 3000;
    char *big = malloc(n + 200);
    int o = snprintf(big, n + 200, "[{\"name\":\"A\",\"severity\":\"LOW\",\"description\":\"");
    for (size_t i = 0; i < 1500; i++) {
        big[o++] = (char)0xc3; /* é */
        big[o++] = (char)0xa9;
    }
    snprintf(big + o, n + 200 - (size_t)o, "\"}]");
    f = parse_ok(big, NULL);
    const char *d = json_string_value(json_object_get(json_array_get(f, 0), "description"));
    CHECK(d != NULL && strlen(d) == 2048);
    json_decref(f);
    free(big);
    char *uri = malloc(3000);
    o = snprintf(uri, 3000, "[{\"name\":\"A\",\"severity\":\"LOW\",\"uri\":\"https://");
    memset(uri + o, 'u', 2100);
    snprintf(uri + o + 2100, 3000 - (size_t)o - 2100, "\"}]");
    f = parse_ok(uri, NULL);
    CHECK(json_object_get(json_array_get(f, 0), "uri") == NULL);
    json_decref(f);
    free(uri);

    parse_bad("", "not JSON");
    parse_bad("Scanning...", "not JSON");
    parse_bad("{\"findings\":[],\"findings\":[]}", "not JSON"); /* duplicate keys */
    parse_bad("{\"results\":[]}", "no \"findings\" list");
    parse_bad("\"text\"", "not JSON"); /* a bare string, number, ... */
    parse_bad("[1]", "finding 1 is not an object");
    parse_bad("[{\"severity\":\"LOW\"}]", "needs a \"name\"");
    parse_bad("[{\"name\":\"\",\"severity\":\"LOW\"}]", "needs a \"name\"");
    parse_bad("[{\"name\":5,\"severity\":\"LOW\"}]", "\"name\" is not a string");
    parse_bad("[{\"name\":\"A\"}]", "\"severity\" must be one of");
    parse_bad("[{\"name\":\"A\",\"severity\":\"high\"}]", "\"severity\" must be one of");
    parse_bad("[{\"name\":\"A\",\"severity\":\"LOW\",\"attributes\":{}}]", "not a list");
    parse_bad("[{\"name\":\"A\",\"severity\":\"LOW\",\"attributes\":[{\"value\":\"v\"}]}]",
              "needs a \"key\"");
    parse_bad("[{\"name\":\"A\",\"severity\":\"LOW\",\"attributes\":[{\"key\":\"k\",\"value\":"
              "\"\"}]}]",
              "must have 1 to 256");
    parse_bad("{\"findings\":[],\"vulnerabilitySourceUpdatedAt\":\"yesterday\"}",
              "vulnerabilitySourceUpdatedAt");
    /* 51 attributes */
    char attrs[4096];
    o = snprintf(attrs, sizeof(attrs), "[{\"name\":\"A\",\"severity\":\"LOW\",\"attributes\":[");
    for (int i = 0; i < 51; i++) {
        o += snprintf(attrs + o, sizeof(attrs) - (size_t)o, "%s{\"key\":\"k%d\"}", i ? "," : "", i);
    }
    snprintf(attrs + o, sizeof(attrs) - (size_t)o, "]}]");
    parse_bad(attrs, "more than 50 attributes");
    /* an attribute value of 257 characters (multi-byte: counted in characters) */
    char val[1200];
    o = snprintf(val, sizeof(val),
                 "[{\"name\":\"A\",\"severity\":\"LOW\",\"attributes\":[{\"key\":"
                 "\"k\",\"value\":\"");
    for (int i = 0; i < 257; i++) {
        val[o++] = (char)0xc3;
        val[o++] = (char)0xa9;
    }
    snprintf(val + o, sizeof(val) - (size_t)o, "\"}]}]");
    parse_bad(val, "must have 1 to 256");
    val[o - 2] = '\0'; /* 256 characters: fine */
    snprintf(val + o - 2, sizeof(val) - (size_t)o + 2, "\"}]}]");
    json_decref(parse_ok(val, NULL));
}

/* ---- running ---- */

static const char *write_script(const char *name, const char *body)
{
    static char paths[16][700];
    static int next;
    char *p = paths[next++ % 16];
    snprintf(p, sizeof(paths[0]), "%s/%s", dir, name);
    CHECK_INT(file_write_atomic(p, body, strlen(body), 0755, false), BERTH_OK);
    return p;
}

static int count_entries(const char *path)
{
    DIR *d = opendir(path);
    int n = 0;
    if (d == NULL) {
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    }
    closedir(d);
    return n;
}

struct fixture {
    char work[600];
    char blob_dir[600];
    struct scan_hook_blob blobs[2];
    char paths[2][700];
    char digests[2][DIGEST_STR_MAX];
    struct scan_hook_image img;
    struct scan_hook_options opt;
};

static void fixture_init(struct fixture *fx, const char *command, int64_t timeout_ms)
{
    memset(fx, 0, sizeof(*fx));
    snprintf(fx->work, sizeof(fx->work), "%s/work", dir);
    snprintf(fx->blob_dir, sizeof(fx->blob_dir), "%s/blobs", dir);
    file_mkdir_p(fx->blob_dir, 0755);
    static const char *const contents[2] = {"{\"schemaVersion\":2}", "layer bytes"};
    for (int i = 0; i < 2; i++) {
        struct digest d;
        digest_buffer(DIGEST_SHA256, contents[i], strlen(contents[i]), &d);
        snprintf(fx->digests[i], sizeof(fx->digests[i]), "%s", d.str);
        snprintf(fx->paths[i], sizeof(fx->paths[i]), "%s/%s", fx->blob_dir, digest_hex(&d));
        file_write_atomic(fx->paths[i], contents[i], strlen(contents[i]), 0644, false);
        fx->blobs[i] = (struct scan_hook_blob){fx->digests[i], fx->paths[i]};
    }
    fx->img = (struct scan_hook_image){
        .repo = "team/app",
        .digest = fx->digests[0],
        .media_type = "application/vnd.oci.image.manifest.v1+json",
        .tag = "v1",
        .manifest_size = (int64_t)strlen(contents[0]),
        .blobs = fx->blobs,
        .blob_count = 2,
    };
    fx->opt = (struct scan_hook_options){
        .command = command,
        .work_dir = fx->work,
        .timeout_ms = timeout_ms,
        .max_output = 4096,
        .cancel = NULL,
    };
}

static void run(struct fixture *fx, struct scan_hook_result *r, enum berth_err want)
{
    CHECK_INT(scan_hook_run(&fx->opt, &fx->img, r), want);
    /* nothing is left behind */
    CHECK_INT(count_entries(fx->work), 0);
}

static void test_run_success(void)
{
    /* checks the layout and the environment, then prints findings */
    char script[2048];
    struct fixture fx;
    fixture_init(&fx, "", 5000);
    snprintf(script, sizeof(script),
             "set -e\n"
             "test \"$(pwd)\" = \"$BERTH_SCAN_LAYOUT\"\n"
             "test -f oci-layout && test -f index.json\n"
             "test \"$BERTH_SCAN_REPOSITORY\" = team/app\n"
             "test \"$BERTH_SCAN_TAG\" = v1 && test \"$BERTH_SCAN_REF\" = v1\n"
             "test \"$BERTH_SCAN_DIGEST\" = %s\n"
             "test \"$(cat blobs/sha256/%s)\" = 'layer bytes'\n"
             "test \"$(stat -c %%h blobs/sha256/%s)\" = 2\n"
             "grep -q '\"org.opencontainers.image.ref.name\":\"v1\"' index.json\n"
             "test \"$1\" = 'arg one'\n"
             "echo progress >&2\n"
             "echo '{\"findings\":[{\"name\":\"CVE-9\",\"severity\":\"CRITICAL\"}],'\n"
             "echo '\"vulnerabilitySourceUpdatedAt\":1600000000}'\n",
             fx.digests[0], fx.digests[1] + 7, fx.digests[1] + 7);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "/bin/sh %s 'arg one'", write_script("ok.sh", script));
    fx.opt.command = cmd;
    struct scan_hook_result r;
    run(&fx, &r, BERTH_OK);
    CHECK(r.complete);
    CHECK_STR(r.description, "The scan was completed successfully.");
    CHECK_INT(json_array_size(r.findings), 1);
    CHECK_STR(json_string_value(json_object_get(json_array_get(r.findings, 0), "name")), "CVE-9");
    CHECK_INT(r.source_updated_at_ms, 1600000000000LL);
    scan_hook_result_fini(&r);
    /* the blobs themselves are untouched */
    struct stat sb;
    CHECK(stat(fx.paths[1], &sb) == 0 && sb.st_nlink == 1);

    /* PATH lookup of a bare name, no tag: the ref is "image" */
    fx.img.tag = NULL;
    fx.opt.command = "sh -c 'test \"$BERTH_SCAN_REF\" = image && test -z \"$BERTH_SCAN_TAG\" "
                     "&& echo []'";
    run(&fx, &r, BERTH_OK);
    CHECK(r.complete);
    CHECK_INT(json_array_size(r.findings), 0);
    scan_hook_result_fini(&r);
}

static void test_run_failures(void)
{
    struct fixture fx;
    struct scan_hook_result r;
    fixture_init(&fx, "/bin/sh -c 'echo one >&2; echo \"the last line\" >&2; exit 7'", 5000);
    run(&fx, &r, BERTH_OK);
    CHECK(!r.complete);
    CHECK_STR(r.description, "HookError: the scan hook exited with status 7: the last line");
    CHECK(r.findings == NULL);

    fx.opt.command = "/bin/sh -c 'kill -TERM $$'";
    run(&fx, &r, BERTH_OK);
    CHECK_STR(r.description, "HookError: the scan hook was killed by signal 15");

    fx.opt.command = "/bin/sh -c 'echo not json'";
    run(&fx, &r, BERTH_OK);
    CHECK(strncmp(r.description, "HookError: the scan hook's output is not valid: not JSON", 56) ==
          0);

    fx.opt.command = "/no/such/scanner --flag";
    run(&fx, &r, BERTH_OK);
    CHECK_STR(r.description, "HookError: cannot run /no/such/scanner: No such file or directory");

    fx.opt.command = "no-such-scanner-in-path";
    run(&fx, &r, BERTH_OK);
    CHECK_STR(r.description, "HookError: cannot run no-such-scanner-in-path: not found in PATH");

    fx.opt.command = "'unterminated";
    run(&fx, &r, BERTH_OK);
    CHECK_STR(r.description, "HookError: scan.hook: unterminated ' quote");

    /* output over the limit: killed at once */
    fx.opt.command = "/bin/sh -c 'head -c 100000 /dev/zero; sleep 30'";
    int64_t start = time_mono_ns();
    run(&fx, &r, BERTH_OK);
    CHECK_STR(r.description,
              "HookError: the scan hook printed more than 4096 bytes (scan.hook_max_output_bytes)");
    CHECK((time_mono_ns() - start) / 1000000 < 3000);

    /* stderr is quoted as it is (scan_run_image makes descriptions printable) */
    fx.opt.command = "/bin/sh -c 'printf \"bad\\033[0m\\001\\n\" >&2; exit 1'";
    run(&fx, &r, BERTH_OK);
    CHECK_STR(r.description, "HookError: the scan hook exited with status 1: bad\033[0m\001");
}

static bool alive(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return paren != NULL && paren[2] != 'Z';
}

static pid_t read_pid(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    if (file_read_bounded(path, 64, &text, &len) != BERTH_OK) {
        return -1;
    }
    pid_t pid = (pid_t)strtol(text, NULL, 10);
    free(text);
    return pid;
}

static void test_run_timeout_kills_the_group(void)
{
    char script[2048], pidfile[600], childfile[600];
    snprintf(pidfile, sizeof(pidfile), "%s/main.pid", dir);
    snprintf(childfile, sizeof(childfile), "%s/child.pid", dir);
    snprintf(script, sizeof(script), "echo $$ > %s\nsleep 60 &\necho $! > %s\necho partial\nwait\n",
             pidfile, childfile);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "/bin/sh %s", write_script("hang.sh", script));
    struct fixture fx;
    fixture_init(&fx, cmd, 400);
    struct scan_hook_result r;
    int64_t start = time_mono_ns();
    run(&fx, &r, BERTH_OK);
    int64_t ms = (time_mono_ns() - start) / 1000000;
    CHECK(ms >= 400 && ms < 3000);
    CHECK(!r.complete);
    CHECK_STR(r.description, "HookError: the scan hook did not finish within 0.4 seconds "
                             "(scan.hook_timeout_seconds) and was killed");
    pid_t main_pid = read_pid(pidfile), child = read_pid(childfile);
    CHECK(main_pid > 0 && child > 0);
    for (int i = 0; i < 100 && (alive(main_pid) || alive(child)); i++) {
        time_sleep_ms(20);
    }
    CHECK(!alive(main_pid));
    CHECK(!alive(child));

    /* a hook that leaves a background process holding its output ends
     * when the hook itself exits; the straggler is killed */
    snprintf(script, sizeof(script), "sleep 60 &\necho $! > %s\necho []\n", childfile);
    snprintf(cmd, sizeof(cmd), "/bin/sh %s", write_script("straggler.sh", script));
    fx.opt.command = cmd;
    fx.opt.timeout_ms = 20000;
    start = time_mono_ns();
    run(&fx, &r, BERTH_OK);
    CHECK(r.complete);
    CHECK((time_mono_ns() - start) / 1000000 < 5000);
    child = read_pid(childfile);
    for (int i = 0; i < 100 && alive(child); i++) {
        time_sleep_ms(20);
    }
    CHECK(!alive(child));
    scan_hook_result_fini(&r);
}

static atomic_bool cancel_flag;

static void *cancel_later(void *arg)
{
    (void)arg;
    time_sleep_ms(300);
    atomic_store(&cancel_flag, true);
    return NULL;
}

static void test_run_cancel(void)
{
    struct fixture fx;
    fixture_init(&fx, "/bin/sh -c 'sleep 30'", 20000);
    atomic_init(&cancel_flag, false);
    fx.opt.cancel = &cancel_flag;
    pthread_t t;
    pthread_create(&t, NULL, cancel_later, NULL);
    struct scan_hook_result r;
    int64_t start = time_mono_ns();
    run(&fx, &r, BERTH_EBUSY);
    CHECK((time_mono_ns() - start) / 1000000 < 3000);
    CHECK(r.findings == NULL);
    pthread_join(t, NULL);
}

static void test_layout_failure(void)
{
    struct fixture fx;
    fixture_init(&fx, "/bin/true", 5000);
    /* a blob that does not exist cannot be linked or copied */
    char missing[700];
    snprintf(missing, sizeof(missing), "%s/nope", dir);
    fx.blobs[1].path = missing;
    struct scan_hook_result r;
    run(&fx, &r, BERTH_OK);
    CHECK(!r.complete);
    CHECK(strncmp(r.description, "HookError: cannot place blob sha256:", 36) == 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    snprintf(dir, sizeof(dir), "%s", unit_tmpdir());
    RUN(test_split);
    RUN(test_output);
    RUN(test_run_success);
    RUN(test_run_failures);
    RUN(test_run_timeout_kills_the_group);
    RUN(test_run_cancel);
    RUN(test_layout_failure);
    file_remove_tree(dir);
    return unit_report("test_scan_hook");
}
