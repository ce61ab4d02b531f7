/*
 * berth mirror [--images FILE] [REF...] -o FILE[.zst]: on the connected
 * side, with no server and no store, pull images straight from their
 * registries into a bundle that berth import reads (the format of berth
 * export). Credentials come from a docker config.json (--authfile, else
 * $DOCKER_CONFIG/config.json, else ~/.docker/config.json), from its
 * credential helpers (credHelpers, credsStore: `docker-credential-NAME
 * get` run as docker runs it) or its auths entries. A progress line
 * on a terminal; plain lines otherwise, one per image and the totals
 * every --progress-interval seconds (10) while the run goes on.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli_int.h"

#include "common/fileio.h"
#include "common/str.h"
#include "common/timeutil.h"
#include "storage/bundle/bundle.h"
#include "storage/upstream/authfile.h"
#include "storage/upstream/client.h"

#define AUTHFILE_MAX (4 * 1024 * 1024)
#define HELPER_OUT_MAX (64 * 1024)
#define LIST_MAX (64 * 1024 * 1024)

struct creds {
    const char *path; /* the config.json read, or NULL */
    char *text;
    size_t len;
    char *user;
    char *password;
    bool failed;
};

static void wipe(char **s)
{
    if (*s != NULL) {
        memset(*s, 0, strlen(*s));
        free(*s);
        *s = NULL;
    }
}

/* Run `docker-credential-<helper> get` (found on PATH) with server on its
 * standard input, as docker does; its standard output into out (at most
 * cap - 1 bytes, NUL-terminated). *status is its exit status (-1: it
 * could not be run or was killed). */
static enum berth_err run_helper(const char *helper, const char *server, char *out, size_t cap,
                                 size_t *len, int *status)
{
    char program[160];
    snprintf(program, sizeof(program), "docker-credential-%s", helper);
    int in[2];
    int from[2];
    *len = 0;
    *status = -1;
    if (pipe(in) != 0) {
        return BERTH_EIO;
    }
    if (pipe(from) != 0) {
        close(in[0]);
        close(in[1]);
        return BERTH_EIO;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(in[0]);
        close(in[1]);
        close(from[0]);
        close(from[1]);
        return BERTH_EIO;
    }
    if (pid == 0) {
        dup2(in[0], STDIN_FILENO);
        dup2(from[1], STDOUT_FILENO);
        close(in[0]);
        close(in[1]);
        close(from[0]);
        close(from[1]);
        execlp(program, program, "get", (char *)NULL);
        fprintf(stderr, "berth mirror: %s: %s\n", program, strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(from[1]);
    /* the helper reads the server URL (no newline, as docker writes it) */
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    size_t n = strlen(server);
    ssize_t w = write(in[1], server, n);
    (void)w;
    close(in[1]);
    signal(SIGPIPE, old);
    for (;;) {
        if (*len + 1 >= cap) {
            char drain[512];
            if (read(from[0], drain, sizeof(drain)) <= 0) {
                break;
            }
            continue;
        }
        ssize_t got = read(from[0], out + *len, cap - 1 - *len);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            break;
        }
        *len += (size_t)got;
    }
    out[*len] = '\0';
    close(from[0]);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
    }
    *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    return BERTH_OK;
}

/* The credentials of host's credential helper: BERTH_OK (c->user and
 * c->password set), BERTH_ENOTFOUND (no helper, or it has none for host). */
static enum berth_err helper_creds(struct creds *c, const char *host)
{
    char helper[128];
    char server[512];
    char why[256];
    enum berth_err rc = upstream_authfile_helper(c->text, c->len, host, helper, sizeof(helper),
                                                 server, sizeof(server), why, sizeof(why));
    if (rc == BERTH_EINVAL) {
        fprintf(stderr, "berth mirror: %s: %s (going on without a credential helper for %s)\n",
                c->path, why, host);
    }
    if (rc != BERTH_OK) {
        return BERTH_ENOTFOUND;
    }
    char *out = malloc(HELPER_OUT_MAX);
    if (out == NULL) {
        return BERTH_ENOMEM;
    }
    size_t len = 0;
    int status = -1;
    rc = run_helper(helper, server, out, HELPER_OUT_MAX, &len, &status);
    if (rc == BERTH_OK && status == 0) {
        rc = upstream_authfile_helper_output(out, len, &c->user, &c->password, why, sizeof(why));
        if (rc == BERTH_EINVAL) {
            fprintf(stderr, "berth mirror: docker-credential-%s get %s: %s\n", helper, server, why);
        }
    } else if (rc == BERTH_OK) {
        /* docker's helpers say "credentials not found in native keychain" */
        if (strstr(out, "not found") == NULL) {
            fprintf(stderr, "berth mirror: docker-credential-%s get %s failed (exit status %d)\n",
                    helper, server, status);
        }
        rc = BERTH_ENOTFOUND;
    } else {
        fprintf(stderr, "berth mirror: docker-credential-%s cannot be run\n", helper);
    }
    memset(out, 0, HELPER_OUT_MAX);
    free(out);
    return rc == BERTH_OK ? BERTH_OK : BERTH_ENOTFOUND;
}

static bool find_creds(void *arg, const char *host, const char **user, const char **password)
{
    struct creds *c = arg;
    wipe(&c->user);
    wipe(&c->password);
    if (c->text == NULL) {
        return false;
    }
    if (helper_creds(c, host) == BERTH_OK) {
        *user = c->user;
        *password = c->password;
        return true;
    }
    char why[256];
    enum berth_err rc =
        upstream_authfile_find(c->text, c->len, host, &c->user, &c->password, why, sizeof(why));
    if (rc == BERTH_EINVAL) {
        fprintf(stderr, "berth mirror: %s: %s (going on without credentials for %s)\n", c->path,
                why, host);
    }
    if (rc != BERTH_OK) {
        return false;
    }
    *user = c->user;
    *password = c->password;
    return true;
}

static bool load_creds(struct creds *c, const char *given)
{
    static char path[4096];
    const char *dir = getenv("DOCKER_CONFIG");
    const char *home = getenv("HOME");
    if (given != NULL) {
        str_copy(path, sizeof(path), given);
    } else if (dir != NULL && dir[0] != '\0') {
        snprintf(path, sizeof(path), "%s/config.json", dir);
    } else if (home != NULL && home[0] != '\0') {
        snprintf(path, sizeof(path), "%s/.docker/config.json", home);
    } else {
        return true;
    }
    enum berth_err rc = file_read_bounded(path, AUTHFILE_MAX, &c->text, &c->len);
    if (rc == BERTH_ENOTFOUND && given == NULL) {
        return true; /* no docker login on this machine: anonymous */
    }
    if (rc != BERTH_OK) {
        fprintf(stderr, "berth mirror: %s: %s\n", path, berth_strerror(rc));
        return false;
    }
    c->path = path;
    return true;
}

/* Seconds between two lines of totals when standard error is not a
 * terminal, when --progress-interval does not say. */
#define PROGRESS_INTERVAL_DEFAULT 10
#define PROGRESS_INTERVAL_MAX 86400

struct show {
    bool tty;
    char last[1024];
    int64_t start_ns;
    int64_t interval_ns; /* between lines of totals (not a terminal); 0: none */
    int64_t last_ns;     /* when the last line was printed */
};

static void show_progress(void *arg, const struct bundle_progress *p)
{
    struct show *s = arg;
    if (s->tty && p->total > 0 && !p->done) {
        fprintf(stderr, "\r\033[Kmirror: [%lld/%lld] %s: %lld/%lld blobs, %.1f/%.1f MiB",
                (long long)(p->items_done + 1), (long long)p->items_total, p->item ? p->item : "",
                (long long)p->blobs, (long long)p->total, (double)p->bytes / (1024.0 * 1024.0),
                (double)p->bytes_total / (1024.0 * 1024.0));
        fflush(stderr);
    } else if (s->tty) {
        fprintf(stderr, "\r\033[Kmirror: [%lld/%lld] %s: %lld blobs, %.1f MiB%s",
                (long long)(p->items_done + (p->done ? 0 : 1)), (long long)p->items_total,
                p->item ? p->item : "done", (long long)p->blobs,
                (double)p->bytes / (1024.0 * 1024.0), p->done ? "\n" : "");
        fflush(stderr);
    } else if (p->item != NULL && strcmp(p->item, s->last) != 0) {
        str_copy(s->last, sizeof(s->last), p->item);
        fprintf(stderr, "mirror: [%lld/%lld] %s (%lld blobs, %lld bytes so far)\n",
                (long long)p->items_done + 1, (long long)p->items_total, p->item,
                (long long)p->blobs, (long long)p->bytes);
        s->last_ns = time_mono_ns();
    } else if (!p->done && s->interval_ns > 0 && time_mono_ns() - s->last_ns >= s->interval_ns) {
        /* a log, not a terminal: the totals now and then, at most one line an interval */
        s->last_ns = time_mono_ns();
        double secs = (double)(s->last_ns - s->start_ns) / 1e9;
        if (p->total > 0) {
            fprintf(stderr, "mirror: %.1f s: %lld/%lld blobs, %.1f/%.1f MiB\n", secs,
                    (long long)p->blobs, (long long)p->total, (double)p->bytes / (1024.0 * 1024.0),
                    (double)p->bytes_total / (1024.0 * 1024.0));
        } else {
            fprintf(stderr, "mirror: %.1f s: %s: %lld blobs, %.1f MiB\n", secs,
                    p->item ? p->item : "", (long long)p->blobs,
                    (double)p->bytes / (1024.0 * 1024.0));
        }
    }
}

/* The references of a list file: one a line, blank lines and # comments
 * ignored. The strings point into *text. */
static bool read_list(const char *path, char **text, const char ***refs, size_t *count, size_t *cap)
{
    size_t len = 0;
    enum berth_err rc = file_read_bounded(path, LIST_MAX, text, &len);
    if (rc != BERTH_OK) {
        fprintf(stderr, "berth mirror: --images %s: %s\n", path, berth_strerror(rc));
        return false;
    }
    for (char *line = *text; line != NULL && *line != '\0';) {
        char *next = strchr(line, '\n');
        if (next != NULL) {
            *next++ = '\0';
        }
        char *hash = strchr(line, '#');
        if (hash != NULL) {
            *hash = '\0';
        }
        while (*line == ' ' || *line == '\t') {
            line++;
        }
        size_t n = strlen(line);
        while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r')) {
            line[--n] = '\0';
        }
        if (n > 0) {
            if (*count == *cap) {
                size_t ncap = *cap * 2 + 16;
                const char **p = realloc(*refs, ncap * sizeof(**refs));
                if (p == NULL) {
                    return false;
                }
                *refs = p;
                *cap = ncap;
            }
            (*refs)[(*count)++] = line;
        }
        line = next;
    }
    return true;
}

int cmd_mirror(struct cli *cli)
{
    const char *usage =
        "usage: berth mirror [--images FILE] [REF...] -o FILE[.zst] [--platform "
        "OS/ARCH[/VARIANT]]..."
        "\n                    [--authfile FILE] [--ca-file [REGISTRY=]PEM]... [--plain-http] "
        "[--since PREVIOUS_BUNDLE] [--parallel N]"
        "\n                    [--progress-interval SECONDS]";
    const char *out = NULL;
    const char *authfile = NULL;
    const char **refs = NULL;
    size_t count = 0;
    size_t cap = 0;
    const char **platforms = calloc((size_t)cli->argc + 1, sizeof(*platforms));
    struct bundle_registry_ca *cas = calloc((size_t)cli->argc + 1, sizeof(*cas));
    char *lists[16] = {0};
    size_t list_count = 0;
    struct bundle_mirror_options opt = {.platforms = platforms, .registry_cas = cas};
    struct creds creds = {0};
    int status = 2;
    long interval = PROGRESS_INTERVAL_DEFAULT;
    if (platforms == NULL || cas == NULL) {
        free(platforms);
        free(cas);
        return 1;
    }
    for (int i = 0; i < cli->argc; i++) {
        const char *a = cli->argv[i];
        const char *val = NULL;
        const char *opts[] = {"-o",         "--output",   "--images",
                              "--platform", "--authfile", "--ca-file",
                              "--since",    "--parallel", "--progress-interval"};
        for (size_t k = 0; k < sizeof(opts) / sizeof(opts[0]); k++) {
            size_t n = strlen(opts[k]);
            if (strcmp(a, opts[k]) == 0) {
                if (i + 1 >= cli->argc) {
                    fprintf(stderr, "berth mirror: %s needs a value\n%s\n", a, usage);
                    goto out;
                }
                val = cli->argv[++i];
            } else if (strncmp(a, opts[k], n) == 0 && a[n] == '=' && n > 2) {
                val = a + n + 1;
            } else {
                continue;
            }
            a = opts[k];
            break;
        }
        if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            out = val;
        } else if (strcmp(a, "--images") == 0) {
            if (list_count == sizeof(lists) / sizeof(lists[0])) {
                fprintf(stderr, "berth mirror: too many --images files\n");
                goto out;
            }
            if (!read_list(val, &lists[list_count++], &refs, &count, &cap)) {
                status = 1;
                goto out;
            }
        } else if (strcmp(a, "--platform") == 0) {
            /* "linux/amd64,linux/arm64" or repeated; split in place (val is in argv) */
            char *list = cli->argv[i] + (strlen(cli->argv[i]) - strlen(val));
            for (char *save = NULL, *p = strtok_r(list, ",", &save); p != NULL;
                 p = strtok_r(NULL, ",", &save)) {
                platforms[opt.platform_count++] = p;
            }
        } else if (strcmp(a, "--authfile") == 0) {
            authfile = val;
        } else if (strcmp(a, "--ca-file") == 0) {
            /* REGISTRY=FILE (no '/' before the '='): that registry's; else every one's */
            const char *eq = strchr(val, '=');
            const char *file = val;
            if (eq != NULL && eq != val && memchr(val, '/', (size_t)(eq - val)) == NULL) {
                file = eq + 1;
            }
            if (access(file, R_OK) != 0) {
                fprintf(stderr, "berth mirror: --ca-file %s: %s\n", val, strerror(errno));
                status = 1;
                goto out;
            }
            if (file == val) {
                opt.ca_file = val;
            } else {
                /* val is in argv: the registry's name ends where the '=' was */
                char *arg = cli->argv[i] + (strlen(cli->argv[i]) - strlen(val));
                arg[eq - val] = '\0';
                cas[opt.registry_ca_count].registry = arg;
                cas[opt.registry_ca_count++].file = file;
            }
        } else if (strcmp(a, "--since") == 0) {
            opt.since = val;
        } else if (strcmp(a, "--parallel") == 0) {
            char *end = NULL;
            long n = strtol(val, &end, 10);
            if (end == val || *end != '\0' || n < 1 || n > 64) {
                fprintf(stderr, "berth mirror: --parallel %s: a number from 1 to 64\n%s\n", val,
                        usage);
                goto out;
            }
            opt.parallel = (int)n;
        } else if (strcmp(a, "--progress-interval") == 0) {
            char *end = NULL;
            long n = strtol(val, &end, 10);
            if (end == val || *end != '\0' || n < 0 || n > PROGRESS_INTERVAL_MAX) {
                fprintf(stderr,
                        "berth mirror: --progress-interval %s: a number of seconds from 0 to "
                        "%d\n%s\n",
                        val, PROGRESS_INTERVAL_MAX, usage);
                goto out;
            }
            interval = n;
        } else if (strcmp(a, "--plain-http") == 0) {
            opt.plain_http = true;
        } else if (a[0] == '-') {
            fprintf(stderr, "berth mirror: unknown option '%s'\n%s\n", a, usage);
            goto out;
        } else {
            if (count == cap) {
                size_t ncap = cap * 2 + 16;
                const char **p = realloc(refs, ncap * sizeof(*refs));
                if (p == NULL) {
                    goto out;
                }
                refs = p;
                cap = ncap;
            }
            refs[count++] = a;
        }
    }
    if (out == NULL || *out == '\0' || count == 0) {
        fprintf(stderr, "berth mirror: %s\n%s\n",
                count == 0 ? "no image named (REF... or --images FILE)"
                           : "no output file (-o FILE)",
                usage);
        goto out;
    }
    for (size_t k = 0; k < opt.registry_ca_count; k++) {
        bool named = false;
        for (size_t r = 0; r < count && !named; r++) {
            struct bundle_remote_ref ref;
            char why[512];
            named = bundle_remote_ref_parse(refs[r], &ref, why, sizeof(why)) &&
                    strcmp(ref.host, cas[k].registry) == 0;
        }
        if (!named) {
            fprintf(stderr, "berth mirror: --ca-file %s=%s: no image named is of %s\n",
                    cas[k].registry, cas[k].file, cas[k].registry);
        }
    }
    if (!cli_load_config(cli)) {
        goto out;
    }
    status = 1;
    if (!load_creds(&creds, authfile)) {
        goto out;
    }
    if (upstream_client_global_init() != BERTH_OK) {
        fprintf(stderr, "berth mirror: libcurl cannot be initialised\n");
        goto out;
    }
    struct show show = {.tty = isatty(STDERR_FILENO) != 0,
                        .start_ns = time_mono_ns(),
                        .interval_ns = (int64_t)interval * 1000000000LL};
    show.last_ns = show.start_ns;
    opt.timeout_ms = cli->cfg.pull_through_timeout_seconds * 1000;
    opt.manifest_max = (size_t)cli->cfg.storage_manifest_max_bytes;
    opt.creds = find_creds;
    opt.creds_arg = &creds;
    opt.progress = show_progress;
    opt.progress_arg = &show;
    struct bundle_mirror_stats stats;
    char why[1024];
    enum berth_err rc = bundle_mirror(refs, count, out, str_has_suffix(out, ".zst"), &opt, &stats,
                                      why, sizeof(why));
    if (rc != BERTH_OK) {
        fprintf(stderr, "berth mirror: %s\n", why);
        goto out;
    }
    const struct bundle_export_stats *w = &stats.written;
    printf("mirror: %lld images (%lld manifests, %lld blobs, %lld bytes) written to %s\n",
           (long long)w->images, (long long)w->manifests, (long long)w->blobs, (long long)w->bytes,
           out);
    if (opt.since != NULL) {
        printf("mirror: a delta of %s: %lld blobs (%lld bytes) it holds left out\n", opt.since,
               (long long)w->blobs_skipped, (long long)w->bytes_skipped);
    }
    if (stats.sparse_indexes > 0) {
        printf("mirror: %lld indexes hold only the platforms asked for: the berth that imports "
               "this bundle needs storage.sparse_manifests: true\n",
               (long long)stats.sparse_indexes);
    }
    status = 0;
out:
    wipe(&creds.user);
    wipe(&creds.password);
    if (creds.text != NULL) {
        memset(creds.text, 0, creds.len);
        free(creds.text);
    }
    for (size_t i = 0; i < list_count; i++) {
        free(lists[i]);
    }
    free(refs);
    free(platforms);
    free(cas);
    return status;
}
