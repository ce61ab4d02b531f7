/*
 * berth export REPO[:TAG|@DIGEST]... -o FILE: write images of the store at
 * the configured root (no server needed, safe while one runs) as an OCI
 * image layout packed as tar, or tar.zst when FILE ends in .zst; with
 * --since PREVIOUS, only what the previous bundle lacks (a delta). Prints a
 * progress line on a terminal and a summary.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_int.h"

#include "common/str.h"
#include "storage/bundle/bundle.h"
#include "storage/store/store.h"

static void show_progress(void *arg, const struct bundle_progress *p)
{
    (void)arg;
    if (!isatty(STDERR_FILENO)) {
        return;
    }
    fprintf(stderr, "\rexport: %lld blobs, %.1f MiB%s", (long long)p->blobs,
            (double)p->bytes / (1024.0 * 1024.0), p->done ? "\n" : "");
    fflush(stderr);
}

/* Split "repo:tag", "repo@digest" or "repo" (tag latest) in place. */
static bool split_ref(char *arg, struct bundle_ref *out)
{
    char *at = strchr(arg, '@');
    if (at != NULL) {
        *at = '\0';
        out->repo = arg;
        out->reference = at + 1;
    } else {
        char *slash = strrchr(arg, '/');
        char *colon = strrchr(slash ? slash : arg, ':');
        if (colon != NULL) {
            *colon = '\0';
            out->reference = colon + 1;
        } else {
            out->reference = "latest";
        }
        out->repo = arg;
    }
    return out->repo[0] != '\0' && out->reference[0] != '\0';
}

int cmd_export(struct cli *cli)
{
    const char *usage =
        "usage: berth export REPO[:TAG|@DIGEST]... -o FILE[.zst] [--since PREVIOUS_BUNDLE]";
    const char *out = NULL;
    const char *since = NULL;
    struct bundle_ref *refs = calloc((size_t)cli->argc + 1, sizeof(*refs));
    if (refs == NULL) {
        return 1;
    }
    size_t count = 0;
    int status = 2;
    for (int i = 0; i < cli->argc; i++) {
        const char *a = cli->argv[i];
        if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
            if (i + 1 >= cli->argc) {
                fprintf(stderr, "berth export: %s needs a file name\n%s\n", a, usage);
                goto out;
            }
            out = cli->argv[++i];
        } else if (str_has_prefix(a, "--output=")) {
            out = a + strlen("--output=");
        } else if (strcmp(a, "--since") == 0) {
            if (i + 1 >= cli->argc) {
                fprintf(stderr, "berth export: --since needs the previous bundle\n%s\n", usage);
                goto out;
            }
            since = cli->argv[++i];
        } else if (str_has_prefix(a, "--since=")) {
            since = a + strlen("--since=");
        } else if (a[0] == '-') {
            fprintf(stderr, "berth export: unknown option '%s'\n%s\n", a, usage);
            goto out;
        } else if (!split_ref(cli->argv[i], &refs[count++])) {
            fprintf(stderr, "berth export: '%s' is not REPO[:TAG|@DIGEST]\n", a);
            goto out;
        }
    }
    if (out == NULL || *out == '\0' || count == 0) {
        fprintf(stderr, "berth export: %s\n%s\n",
                count == 0 ? "no image named" : "no output file (-o FILE)", usage);
        goto out;
    }
    if (!cli_load_config(cli)) {
        goto out;
    }
    struct store *st = cli_open_store(cli);
    if (st == NULL) {
        status = cli_open_store_status();
        goto out;
    }
    struct bundle_export_stats stats;
    char why[1024];
    enum berth_err rc = bundle_export(st, refs, count, out, str_has_suffix(out, ".zst"), since,
                                      show_progress, NULL, &stats, why, sizeof(why));
    store_close(st);
    if (rc != BERTH_OK) {
        fprintf(stderr, "berth export: %s\n", why);
        status = 1;
        goto out;
    }
    printf("export: %lld images (%lld manifests, %lld blobs, %lld bytes) written to %s\n",
           (long long)stats.images, (long long)stats.manifests, (long long)stats.blobs,
           (long long)stats.bytes, out);
    if (since != NULL) {
        printf("export: a delta of %s: %lld blobs (%lld bytes) it holds left out\n", since,
               (long long)stats.blobs_skipped, (long long)stats.bytes_skipped);
    }
    status = 0;
out:
    free(refs);
    return status;
}
