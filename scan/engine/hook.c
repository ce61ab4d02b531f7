/*
 * The external scan hook: command splitting, the OCI layout directory,
 * running the command with a timeout and bounded output, and validating
 * what it prints. See scan_hook.h.
 */
#include "scan/engine/scan_hook.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "storage/spec/digest.h"
#include "common/fileio.h"
#include "common/log.h"
#include "scan/engine/scan_builtin.h"
#include "scan/findings/scan_findings.h"
#include "storage/spec/scan_severity.h"
#include "common/str.h"
#include "common/timeutil.h"

extern char **environ;

/* How often the runner looks at the clock and the cancel flag. */
#define POLL_MS 100
/* How long stragglers may hold the output pipes after the hook exits. */
#define STRAGGLER_MS 2000
/* stderr bytes kept (the tail) for the failure description. */
#define STDERR_KEEP 4096

/* ---- command splitting ---- */

enum berth_err scan_hook_split(const char *command, char ***argv_out, size_t *argc_out,
                               char *reason, size_t cap)
{
    size_t len = strnlen(command, SCAN_HOOK_COMMAND_MAX + 1);
    if (len > SCAN_HOOK_COMMAND_MAX) {
        snprintf(reason, cap, "the command is longer than %d bytes", SCAN_HOOK_COMMAND_MAX);
        return BERTH_ETOOBIG;
    }
    /* Words are written one after the other into one buffer; a word is
     * never longer than the command. */
    char *words = malloc(len + 1);
    char **argv = calloc(SCAN_HOOK_MAX_ARGS + 1, sizeof(*argv));
    char *copies[SCAN_HOOK_MAX_ARGS];
    size_t argc = 0;
    enum berth_err rc = BERTH_OK;
    if (words == NULL || argv == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    const char *p = command;
    while (rc == BERTH_OK) {
        while (*p == ' ' || *p == '\t' || *p == '\n') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        if (argc == SCAN_HOOK_MAX_ARGS) {
            snprintf(reason, cap, "the command has more than %d words", SCAN_HOOK_MAX_ARGS);
            rc = BERTH_ETOOBIG;
            break;
        }
        size_t n = 0;
        while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\n' && rc == BERTH_OK) {
            if (*p == '\'') {
                const char *end = strchr(p + 1, '\'');
                if (end == NULL) {
                    snprintf(reason, cap, "unterminated ' quote");
                    rc = BERTH_EINVAL;
                    break;
                }
                memcpy(words + n, p + 1, (size_t)(end - p - 1));
                n += (size_t)(end - p - 1);
                p = end + 1;
            } else if (*p == '"') {
                p++;
                while (*p != '"' && *p != '\0') {
                    if (*p == '\\' && (p[1] == '"' || p[1] == '\\')) {
                        p++;
                    }
                    words[n++] = *p++;
                }
                if (*p != '"') {
                    snprintf(reason, cap, "unterminated \" quote");
                    rc = BERTH_EINVAL;
                    break;
                }
                p++;
            } else if (*p == '\\') {
                if (p[1] == '\0') {
                    snprintf(reason, cap, "the command ends with a backslash");
                    rc = BERTH_EINVAL;
                    break;
                }
                words[n++] = p[1];
                p += 2;
            } else {
                words[n++] = *p++;
            }
        }
        if (rc != BERTH_OK) {
            break;
        }
        copies[argc] = str_ndup(words, n);
        if (copies[argc] == NULL) {
            rc = BERTH_ENOMEM;
            break;
        }
        argv[argc] = copies[argc];
        argc++;
    }
    if (rc == BERTH_OK && argc == 0) {
        snprintf(reason, cap, "the command is empty");
        rc = BERTH_EINVAL;
    }
out:
    free(words);
    if (rc != BERTH_OK) {
        for (size_t i = 0; i < argc; i++) {
            free(copies[i]);
        }
        free(argv);
        return rc;
    }
    *argv_out = argv;
    *argc_out = argc;
    return BERTH_OK;
}

void scan_hook_argv_free(char **argv)
{
    if (argv == NULL) {
        return;
    }
    for (char **a = argv; *a != NULL; a++) {
        free(*a);
    }
    free(argv);
}

/* ---- output validation ---- */

static enum berth_err bad(char *reason, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum berth_err bad(char *reason, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, cap, fmt, ap);
    va_end(ap);
    return BERTH_EINVAL;
}

/* Length in characters (UTF-8 code points), as ECR's limits count. */
static size_t utf8_length(const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        n += ((unsigned char)*s & 0xc0) != 0x80;
    }
    return n;
}

/* An optional string member: NULL when absent; false (reason set) when it
 * is there but not a string. */
static bool opt_string(json_t *obj, const char *key, const char **out, size_t i, char *reason,
                       size_t cap)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        return true;
    }
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
        bad(reason, cap, "finding %zu: \"%s\" is not a string", i + 1, key);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static enum berth_err check_attributes(json_t *attrs, size_t i, json_t *out, char *reason,
                                       size_t cap)
{
    if (!json_is_array(attrs)) {
        return bad(reason, cap, "finding %zu: \"attributes\" is not a list", i + 1);
    }
    if (json_array_size(attrs) > SCAN_HOOK_MAX_ATTRIBUTES) {
        return bad(reason, cap, "finding %zu: more than %d attributes", i + 1,
                   SCAN_HOOK_MAX_ATTRIBUTES);
    }
    size_t j;
    json_t *a;
    json_array_foreach(attrs, j, a)
    {
        const char *key, *value;
        if (!json_is_object(a)) {
            return bad(reason, cap, "finding %zu: attribute %zu is not an object", i + 1, j + 1);
        }
        if (!opt_string(a, "key", &key, i, reason, cap) ||
            !opt_string(a, "value", &value, i, reason, cap)) {
            return BERTH_EINVAL;
        }
        if (key == NULL || *key == '\0' || utf8_length(key) > SCAN_HOOK_ATTRIBUTE_KEY_MAX) {
            return bad(reason, cap,
                       "finding %zu: attribute %zu needs a \"key\" of 1 to %d "
                       "characters",
                       i + 1, j + 1, SCAN_HOOK_ATTRIBUTE_KEY_MAX);
        }
        if (value != NULL &&
            (*value == '\0' || utf8_length(value) > SCAN_HOOK_ATTRIBUTE_VALUE_MAX)) {
            return bad(reason, cap,
                       "finding %zu: the value of attribute \"%.64s\" must have 1 to %d "
                       "characters",
                       i + 1, key, SCAN_HOOK_ATTRIBUTE_VALUE_MAX);
        }
        json_t *copy = value ? json_pack("{s:s, s:s}", "key", key, "value", value)
                             : json_pack("{s:s}", "key", key);
        if (copy == NULL || json_array_append_new(out, copy) != 0) {
            return BERTH_ENOMEM;
        }
    }
    return BERTH_OK;
}

/* Validate finding i and append its normalized copy to list. */
static enum berth_err check_finding(json_t *f, size_t i, json_t *list, char *reason, size_t cap)
{
    if (!json_is_object(f)) {
        return bad(reason, cap, "finding %zu is not an object", i + 1);
    }
    const char *name, *description, *uri, *severity;
    if (!opt_string(f, "name", &name, i, reason, cap) ||
        !opt_string(f, "description", &description, i, reason, cap) ||
        !opt_string(f, "uri", &uri, i, reason, cap) ||
        !opt_string(f, "severity", &severity, i, reason, cap)) {
        return BERTH_EINVAL;
    }
    if (name == NULL || *name == '\0' || strlen(name) > SCAN_HOOK_NAME_MAX) {
        return bad(reason, cap, "finding %zu needs a \"name\" of 1 to %d bytes", i + 1,
                   SCAN_HOOK_NAME_MAX);
    }
    enum scan_severity sev;
    if (severity == NULL || scan_severity_parse(severity, &sev) != BERTH_OK) {
        return bad(reason, cap,
                   "finding %zu (%.64s): \"severity\" must be one of INFORMATIONAL, LOW, "
                   "MEDIUM, HIGH, CRITICAL, UNDEFINED",
                   i + 1, name);
    }
    json_t *out = json_pack("{s:s, s:s}", "name", name, "severity", scan_severity_name(sev));
    if (out == NULL) {
        return BERTH_ENOMEM;
    }
    enum berth_err rc = BERTH_OK;
    if (description != NULL &&
        json_object_set_new(
            out, "description",
            json_stringn(description, str_utf8_cut(description, SCAN_DESCRIPTION_MAX))) != 0) {
        rc = BERTH_ENOMEM;
    }
    if (rc == BERTH_OK && uri != NULL && *uri != '\0' && strlen(uri) <= SCAN_URI_MAX &&
        json_object_set_new(out, "uri", json_string(uri)) != 0) {
        rc = BERTH_ENOMEM;
    }
    json_t *attrs = json_object_get(f, "attributes");
    if (rc == BERTH_OK && attrs != NULL && !json_is_null(attrs)) {
        json_t *copy = json_array();
        rc = copy ? check_attributes(attrs, i, copy, reason, cap) : BERTH_ENOMEM;
        if (rc == BERTH_OK && json_object_set_new(out, "attributes", copy) != 0) {
            rc = BERTH_ENOMEM;
        } else if (rc != BERTH_OK) {
            json_decref(copy);
        }
    }
    if (rc == BERTH_OK && json_array_append_new(list, out) != 0) {
        return BERTH_ENOMEM;
    }
    if (rc != BERTH_OK) {
        json_decref(out);
    }
    return rc;
}

enum berth_err scan_hook_parse_output(const char *text, size_t len, json_t **findings,
                                      int64_t *source_updated_at_ms, char *reason, size_t cap)
{
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *list = NULL;
    int64_t updated = -1;
    enum berth_err rc = BERTH_OK;
    if (doc == NULL) {
        return bad(reason, cap, "not JSON (line %d: %s)", jerr.line, jerr.text);
    }
    json_t *src = doc;
    if (json_is_object(doc)) {
        src = json_object_get(doc, "findings");
        if (!json_is_array(src)) {
            rc = bad(reason, cap, "the object has no \"findings\" list");
            goto out;
        }
        json_t *t = json_object_get(doc, "vulnerabilitySourceUpdatedAt");
        if (t != NULL && !json_is_null(t)) {
            if (!json_is_number(t) || json_number_value(t) < 0 || json_number_value(t) > 1e11) {
                rc = bad(reason, cap,
                         "\"vulnerabilitySourceUpdatedAt\" is not a time in epoch seconds");
                goto out;
            }
            updated = (int64_t)(json_number_value(t) * 1000.0);
        }
    }
    /* else an array: json_loadb only decodes objects and arrays */
    if (json_array_size(src) > SCAN_HOOK_MAX_FINDINGS) {
        snprintf(reason, cap, "more than %d findings", SCAN_HOOK_MAX_FINDINGS);
        rc = BERTH_ETOOBIG;
        goto out;
    }
    list = json_array();
    if (list == NULL) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    size_t i;
    json_t *f;
    json_array_foreach(src, i, f)
    {
        rc = check_finding(f, i, list, reason, cap);
        if (rc != BERTH_OK) {
            goto out;
        }
    }
out:
    json_decref(doc);
    if (rc != BERTH_OK) {
        json_decref(list);
        return rc;
    }
    *findings = list;
    *source_updated_at_ms = updated;
    return BERTH_OK;
}

/* ---- the layout directory ---- */

/* Copy a file (when it cannot be hard-linked). */
static enum berth_err copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        return BERTH_EIO;
    }
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    enum berth_err rc = out < 0 ? BERTH_EIO : BERTH_OK;
    char block[65536];
    while (rc == BERTH_OK) {
        ssize_t n = read(in, block, sizeof(block));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            rc = n == 0 ? BERTH_OK : BERTH_EIO;
            break;
        }
        rc = file_write_all(out, block, (size_t)n);
    }
    if (file_close(out) != BERTH_OK && rc == BERTH_OK) {
        rc = BERTH_EIO;
    }
    file_close(in);
    return rc;
}

static enum berth_err write_text(const char *dir, const char *name, const char *text)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
        return BERTH_ETOOBIG;
    }
    return file_write_atomic(path, text, strlen(text), 0444, false);
}

/* Make the layout in dir; reason says what failed. */
static enum berth_err make_layout(const char *dir, const struct scan_hook_image *img,
                                  const char *ref, char *reason, size_t cap)
{
    enum berth_err rc = write_text(dir, "oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
    for (size_t i = 0; rc == BERTH_OK && i < img->blob_count; i++) {
        struct digest d;
        char sub[4096], path[4200];
        if (digest_parse(img->blobs[i].digest, &d) != BERTH_OK) {
            snprintf(reason, cap, "bad digest %.140s", img->blobs[i].digest);
            return BERTH_EINVAL;
        }
        snprintf(sub, sizeof(sub), "%s/blobs/%s", dir, digest_alg_name(d.alg));
        if (snprintf(path, sizeof(path), "%s/%s", sub, digest_hex(&d)) >= (int)sizeof(path)) {
            rc = BERTH_ETOOBIG;
            break;
        }
        rc = file_mkdir_p(sub, 0755);
        if (rc != BERTH_OK) {
            break;
        }
        if (link(img->blobs[i].path, path) == 0 || errno == EEXIST) {
            continue;
        }
        rc = copy_file(img->blobs[i].path, path);
        if (rc != BERTH_OK) {
            snprintf(reason, cap, "cannot place blob %.140s: %s", d.str, strerror(errno));
            return rc;
        }
    }
    if (rc != BERTH_OK) {
        snprintf(reason, cap, "cannot write the layout: %s", strerror(errno));
        return rc;
    }
    json_t *index =
        json_pack("{s:i, s:s, s:[{s:s, s:s, s:I, s:{s:s}}]}", "schemaVersion", 2, "mediaType",
                  "application/vnd.oci.image.index.v1+json", "manifests", "mediaType",
                  img->media_type, "digest", img->digest, "size", (json_int_t)img->manifest_size,
                  "annotations", "org.opencontainers.image.ref.name", ref);
    char *text = index ? json_dumps(index, JSON_COMPACT) : NULL;
    json_decref(index);
    if (text == NULL) {
        return BERTH_ENOMEM;
    }
    rc = write_text(dir, "index.json", text);
    free(text);
    if (rc != BERTH_OK) {
        snprintf(reason, cap, "cannot write index.json: %s", strerror(errno));
    }
    return rc;
}

/* ---- running the command ---- */

/* fork() and the creation of the pipes it inherits are serialised, so a
 * hook started by another thread never holds this one's pipe ends open
 * (pipes are created close-on-exec under the lock). */
static pthread_mutex_t spawn_lock = PTHREAD_MUTEX_INITIALIZER;

static int cloexec_pipe(int fds[2])
{
    if (pipe(fds) != 0) {
        return -1;
    }
    if (fcntl(fds[0], F_SETFD, FD_CLOEXEC) != 0 || fcntl(fds[1], F_SETFD, FD_CLOEXEC) != 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    return 0;
}

/* A relative path made absolute against berth's working directory (the
 * child runs in the layout directory, where it would name something
 * else). */
static bool make_absolute(char *path, size_t cap)
{
    if (path[0] == '/') {
        return true;
    }
    char cwd[4096], joined[8192];
    if (getcwd(cwd, sizeof(cwd)) == NULL) {
        return false;
    }
    int w = snprintf(joined, sizeof(joined), "%s/%s", cwd, path);
    return w > 0 && (size_t)w < sizeof(joined) && str_copy(path, cap, joined) == BERTH_OK;
}

/* Resolve argv0 through PATH in the parent (execvp may allocate, which a
 * child of a threaded process must not), into an absolute path. */
static bool resolve_program(const char *argv0, char *out, size_t cap)
{
    if (strchr(argv0, '/') != NULL) {
        return str_copy(out, cap, argv0) == BERTH_OK && make_absolute(out, cap);
    }
    const char *path = getenv("PATH");
    if (path == NULL || *path == '\0') {
        path = "/usr/local/bin:/usr/bin:/bin";
    }
    while (*path != '\0') {
        size_t n = strcspn(path, ":");
        int w = n == 0 ? snprintf(out, cap, "./%s", argv0)
                       : snprintf(out, cap, "%.*s/%s", (int)n, path, argv0);
        if (w > 0 && (size_t)w < cap && access(out, X_OK) == 0) {
            return make_absolute(out, cap);
        }
        path += n;
        if (*path == ':') {
            path++;
        }
    }
    return false;
}

/* berth's environment with the BERTH_SCAN_* variables set. */
static char **build_env(const char *const vars[][2], size_t count)
{
    size_t n = 0;
    while (environ != NULL && environ[n] != NULL) {
        n++;
    }
    char **env = calloc(n + count + 1, sizeof(*env));
    if (env == NULL) {
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (!str_has_prefix(environ[i], "BERTH_SCAN_")) {
            env[o] = strdup(environ[i]);
            if (env[o++] == NULL) {
                goto fail;
            }
        }
    }
    for (size_t i = 0; i < count; i++) {
        size_t len = strlen(vars[i][0]) + strlen(vars[i][1]) + 2;
        env[o] = malloc(len);
        if (env[o] == NULL) {
            goto fail;
        }
        snprintf(env[o++], len, "%s=%s", vars[i][0], vars[i][1]);
    }
    return env;
fail:
    scan_hook_argv_free(env);
    return NULL;
}

/* The last non-empty line of the kept stderr, into out. */
static void last_line(const struct buf *err, char *out, size_t cap)
{
    size_t end = err->len;
    while (end > 0 && (err->data[end - 1] == '\n' || err->data[end - 1] == '\r' ||
                       err->data[end - 1] == ' ')) {
        end--;
    }
    size_t start = end;
    while (start > 0 && err->data[start - 1] != '\n') {
        start--;
    }
    size_t n = end - start;
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(out, err->data ? err->data + start : "", n);
    out[n] = '\0';
}

static void fail_result(struct scan_hook_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void fail_result(struct scan_hook_result *r, const char *fmt, ...)
{
    r->complete = false;
    int n = snprintf(r->description, sizeof(r->description), "HookError: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->description + n, sizeof(r->description) - (size_t)n, fmt, ap);
    va_end(ap);
}

/* What happened to the child. */
struct run_state {
    pid_t pid;
    int out_fd, err_fd;
    struct buf out;
    struct buf err;
    bool exited, timed_out, too_big, cancelled;
    int wstatus;
};

/* Read what is available on fd into b; false at end of file or error. */
static bool drain_fd(int fd, struct buf *b, bool keep_tail, bool *too_big)
{
    char block[16384];
    for (;;) {
        ssize_t n = read(fd, block, sizeof(block));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return true;
        }
        if (n <= 0) {
            return false;
        }
        if (keep_tail && b->len > 0 && b->len + (size_t)n > 2 * STDERR_KEEP) {
            /* keep only the tail: the last lines say what went wrong */
            size_t keep = b->len > STDERR_KEEP ? STDERR_KEEP : b->len;
            memmove(b->data, b->data + b->len - keep, keep);
            b->len = keep;
        }
        enum berth_err rc = buf_append(b, block, (size_t)n);
        if (rc != BERTH_OK) {
            if (too_big != NULL) {
                *too_big = true;
            }
            return false;
        }
    }
}

/* Whether the child has exited, without reaping it (so its pid, which is
 * also its process group's id, cannot be reused while we signal the
 * group). */
static bool child_exited(pid_t pid)
{
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    return waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid;
}

static void supervise(struct run_state *s, const struct scan_hook_options *opt)
{
    int64_t start = time_mono_ns() / 1000000;
    int64_t deadline = start + opt->timeout_ms, exited_at = 0;
    bool out_open = true, err_open = true;
    fcntl(s->out_fd, F_SETFL, O_NONBLOCK);
    fcntl(s->err_fd, F_SETFL, O_NONBLOCK);
    while (out_open || err_open || !s->exited) {
        int64_t now = time_mono_ns() / 1000000;
        if (opt->cancel != NULL && atomic_load(opt->cancel)) {
            s->cancelled = true;
            break;
        }
        if (now >= deadline) {
            s->timed_out = !s->exited;
            break;
        }
        if (s->exited && now - exited_at > STRAGGLER_MS) {
            break; /* something the hook started holds its output open */
        }
        struct pollfd fds[2];
        nfds_t n = 0;
        if (out_open) {
            fds[n++] = (struct pollfd){.fd = s->out_fd, .events = POLLIN};
        }
        if (err_open) {
            fds[n++] = (struct pollfd){.fd = s->err_fd, .events = POLLIN};
        }
        int64_t wait = deadline - now < POLL_MS ? deadline - now : POLL_MS;
        if (n == 0) {
            wait = 10; /* output closed: only the exit is awaited */
        }
        if (poll(n ? fds : NULL, n, (int)wait) < 0 && errno != EINTR) {
            break;
        }
        if (out_open) {
            out_open = drain_fd(s->out_fd, &s->out, false, &s->too_big);
            if (s->too_big) {
                break;
            }
        }
        if (err_open) {
            err_open = drain_fd(s->err_fd, &s->err, true, NULL);
        }
        if (!s->exited && child_exited(s->pid)) {
            s->exited = true;
            exited_at = time_mono_ns() / 1000000;
            /* end whatever the hook left running in its group */
            kill(-s->pid, SIGKILL);
        }
    }
    /* The group goes in every case: killed mid-run, or stragglers. */
    kill(-s->pid, SIGKILL);
    while (waitpid(s->pid, &s->wstatus, 0) < 0 && errno == EINTR) {
    }
}

/* Fork and exec; on failure *exec_errno says why (0 when fork failed). */
static pid_t spawn(const char *program, char **argv, char **env, const char *dir, int out_fd[2],
                   int err_fd[2], int *exec_errno)
{
    int status[2] = {-1, -1};
    int devnull = -1;
    pid_t pid = -1;
    *exec_errno = 0;
    pthread_mutex_lock(&spawn_lock);
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0 || cloexec_pipe(out_fd) != 0) {
        goto out;
    }
    if (cloexec_pipe(err_fd) != 0) {
        close(out_fd[0]);
        close(out_fd[1]);
        goto out;
    }
    if (cloexec_pipe(status) != 0) {
        goto close_pipes;
    }
    pid = fork();
    if (pid == 0) {
        /* The child: only async-signal-safe calls until exec. */
        setpgid(0, 0);
        if (dup2(devnull, 0) < 0 || dup2(out_fd[1], 1) < 0 || dup2(err_fd[1], 2) < 0 ||
            chdir(dir) != 0) {
            int e = errno;
            (void)!write(status[1], &e, sizeof(e));
            _exit(127);
        }
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        struct sigaction dfl;
        memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        sigaction(SIGPIPE, &dfl, NULL);
        execve(program, argv, env);
        int e = errno;
        (void)!write(status[1], &e, sizeof(e));
        _exit(127);
    }
    if (pid > 0) {
        setpgid(pid, pid); /* also in the parent: no window without a group */
    }
    close(status[1]);
    status[1] = -1;
close_pipes:
    close(out_fd[1]);
    close(err_fd[1]);
    if (pid < 0) {
        close(out_fd[0]);
        close(err_fd[0]);
    }
out:
    pthread_mutex_unlock(&spawn_lock);
    if (devnull >= 0) {
        close(devnull);
    }
    if (pid > 0) {
        /* the status pipe closes on exec (success) or carries errno */
        int e = 0;
        ssize_t n;
        while ((n = read(status[0], &e, sizeof(e))) < 0 && errno == EINTR) {
        }
        if (n == (ssize_t)sizeof(e)) {
            *exec_errno = e;
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
            }
            close(out_fd[0]);
            close(err_fd[0]);
            pid = -1;
        }
    }
    if (status[0] >= 0) {
        close(status[0]);
    }
    return pid;
}

/* Run the command in dir; fill r from how it ended. */
static enum berth_err run_command(const struct scan_hook_options *opt, char **argv, char **env,
                                  const char *dir, struct scan_hook_result *r)
{
    char program[4096];
    if (!resolve_program(argv[0], program, sizeof(program))) {
        char name[200];
        str_copy(name, sizeof(name), argv[0]);
        fail_result(r, "cannot run %s: not found in PATH", name);
        return BERTH_OK;
    }
    int out_fd[2], err_fd[2], exec_errno = 0;
    pid_t pid = spawn(program, argv, env, dir, out_fd, err_fd, &exec_errno);
    if (pid < 0) {
        char name[200];
        str_copy(name, sizeof(name), program);
        fail_result(r, "cannot run %s: %s", name,
                    exec_errno ? strerror(exec_errno) : "fork failed");
        return BERTH_OK;
    }
    struct run_state s;
    memset(&s, 0, sizeof(s));
    s.pid = pid;
    s.out_fd = out_fd[0];
    s.err_fd = err_fd[0];
    buf_init(&s.out, opt->max_output);
    /* trimmed to STDERR_KEEP before growing past twice that, plus one read */
    buf_init(&s.err, 2 * STDERR_KEEP + 16384);
    supervise(&s, opt);
    close(s.out_fd);
    close(s.err_fd);
    enum berth_err rc = BERTH_OK;
    char line[300];
    last_line(&s.err, line, sizeof(line));
    if (s.cancelled) {
        rc = BERTH_EBUSY;
    } else if (s.too_big) {
        fail_result(r, "the scan hook printed more than %zu bytes (scan.hook_max_output_bytes)",
                    opt->max_output);
    } else if (s.timed_out) {
        fail_result(r,
                    "the scan hook did not finish within %g seconds "
                    "(scan.hook_timeout_seconds) and was killed",
                    (double)opt->timeout_ms / 1000.0);
    } else if (WIFSIGNALED(s.wstatus)) {
        fail_result(r, "the scan hook was killed by signal %d%s%s", WTERMSIG(s.wstatus),
                    line[0] ? ": " : "", line);
    } else if (!WIFEXITED(s.wstatus) || WEXITSTATUS(s.wstatus) != 0) {
        fail_result(r, "the scan hook exited with status %d%s%s",
                    WIFEXITED(s.wstatus) ? WEXITSTATUS(s.wstatus) : -1, line[0] ? ": " : "", line);
    } else {
        char why[400];
        rc = scan_hook_parse_output(s.out.data ? s.out.data : "", s.out.len, &r->findings,
                                    &r->source_updated_at_ms, why, sizeof(why));
        if (rc == BERTH_EINVAL || rc == BERTH_ETOOBIG) {
            fail_result(r, "the scan hook's output is not valid: %s", why);
            rc = BERTH_OK;
        } else if (rc == BERTH_OK) {
            r->complete = true;
            str_copy(r->description, sizeof(r->description), SCAN_DESCRIPTION_COMPLETE);
        }
    }
    if (!r->complete && rc == BERTH_OK && s.err.len > 0) {
        char lv[600];
        log_warn("event=scan_hook_stderr last_line=%s", log_value(line, lv, sizeof(lv)));
    }
    buf_fini(&s.out);
    buf_fini(&s.err);
    return rc;
}

enum berth_err scan_hook_run(const struct scan_hook_options *opt, const struct scan_hook_image *img,
                             struct scan_hook_result *out)
{
    memset(out, 0, sizeof(*out));
    out->source_updated_at_ms = -1;
    char reason[300] = "";
    char **argv = NULL, **env = NULL;
    size_t argc = 0;
    char dir[4096] = "";
    enum berth_err rc = scan_hook_split(opt->command, &argv, &argc, reason, sizeof(reason));
    if (rc == BERTH_ENOMEM) {
        return rc;
    }
    if (rc != BERTH_OK) {
        fail_result(out, "scan.hook: %s", reason);
        return BERTH_OK;
    }
    rc = file_mkdir_p(opt->work_dir, 0700);
    if (rc == BERTH_OK &&
        snprintf(dir, sizeof(dir), "%s/scan-XXXXXX", opt->work_dir) >= (int)sizeof(dir)) {
        rc = BERTH_ETOOBIG;
    }
    if (rc == BERTH_OK && mkdtemp(dir) == NULL) {
        rc = BERTH_EIO;
    }
    if (rc != BERTH_OK) {
        fail_result(out, "cannot create a directory under %.200s: %s", opt->work_dir,
                    strerror(errno));
        dir[0] = '\0';
        goto done;
    }
    /* The hook runs inside the layout and is told its path: absolute, so
     * a relative data root still names it from there. */
    char resolved[PATH_MAX];
    if (realpath(dir, resolved) == NULL || str_copy(dir, sizeof(dir), resolved) != BERTH_OK) {
        fail_result(out, "cannot resolve %.200s: %s", dir, strerror(errno));
        rc = BERTH_OK;
        goto done;
    }
    const char *ref = img->tag != NULL && img->tag[0] != '\0' ? img->tag : "image";
    rc = make_layout(dir, img, ref, reason, sizeof(reason));
    if (rc == BERTH_ENOMEM) {
        goto done;
    }
    if (rc != BERTH_OK) {
        fail_result(out, "%s", reason);
        rc = BERTH_OK;
        goto done;
    }
    const char *const vars[][2] = {
        {"BERTH_SCAN_LAYOUT", dir},
        {"BERTH_SCAN_REF", ref},
        {"BERTH_SCAN_REPOSITORY", img->repo},
        {"BERTH_SCAN_DIGEST", img->digest},
        {"BERTH_SCAN_MEDIA_TYPE", img->media_type},
        {"BERTH_SCAN_TAG", img->tag ? img->tag : ""},
    };
    env = build_env(vars, sizeof(vars) / sizeof(vars[0]));
    if (env == NULL) {
        rc = BERTH_ENOMEM;
        goto done;
    }
    int64_t started = time_mono_ns();
    rc = run_command(opt, argv, env, dir, out);
    if (rc == BERTH_OK) {
        char dv[600];
        log_info("event=scan_hook_done repo=%s digest=%s status=%s findings=%zu ms=%lld "
                 "description=%s",
                 img->repo, img->digest, out->complete ? "COMPLETE" : "FAILED",
                 json_array_size(out->findings), (long long)((time_mono_ns() - started) / 1000000),
                 log_value(out->description, dv, sizeof(dv)));
    }
done:
    if (dir[0] != '\0' && file_remove_tree(dir) != BERTH_OK) {
        log_warn("event=scan_hook_cleanup_failed dir=%s", dir);
    }
    scan_hook_argv_free(env);
    scan_hook_argv_free(argv);
    if (rc != BERTH_OK) {
        scan_hook_result_fini(out);
    }
    return rc;
}

void scan_hook_result_fini(struct scan_hook_result *r)
{
    json_decref(r->findings);
    r->findings = NULL;
}
