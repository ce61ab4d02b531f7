/*
 * berth import [--repo NAME] FILE...: load bundles (OCI image layout
 * directories, or tarballs: plain, gzip, zstd; berth export's and skopeo's
 * oci-archive: output; docker save archives) into the store at the configured root, safe while
 * `berth serve` runs on it. A bundle is verified whole before anything of
 * it is published. Prints a progress line on a terminal and, per bundle,
 * what was new.
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
    fprintf(stderr, "\rimport: %lld entries verified, %.1f MiB%s", (long long)p->blobs,
            (double)p->bytes / (1024.0 * 1024.0), p->done ? "\n" : "");
    fflush(stderr);
}

static void summary(const char *path, const struct bundle_import_stats *s)
{
    printf("import: %s: %lld images in %lld repositories, %lld blobs verified; ", path,
           (long long)s->images, (long long)s->repos, (long long)s->blobs_read);
    if (s->images == 0) {
        /* its blobs, if any, are not published: nothing names them */
        printf("nothing imported: the bundle names no image\n");
        return;
    }
    if (s->manifests_new == 0 && s->blobs_new == 0 && s->blobs_linked == 0 && s->tags_set == 0) {
        printf("nothing new (the store had all of it)\n");
        return;
    }
    printf("new: %lld manifests, %lld blobs (%lld bytes), %lld blobs linked from the store, "
           "%lld tags set\n",
           (long long)s->manifests_new, (long long)s->blobs_new, (long long)s->bytes_new,
           (long long)s->blobs_linked, (long long)s->tags_set);
}

int cmd_import(struct cli *cli)
{
    const char *usage = "usage: berth import [--repo NAME] FILE|DIR...";
    struct bundle_import_options opt = {.progress = show_progress};
    const char **files = calloc((size_t)cli->argc + 1, sizeof(*files));
    if (files == NULL) {
        return 1;
    }
    size_t count = 0;
    int status = 2;
    for (int i = 0; i < cli->argc; i++) {
        const char *a = cli->argv[i];
        if (strcmp(a, "--repo") == 0) {
            if (i + 1 >= cli->argc) {
                fprintf(stderr, "berth import: --repo needs a repository name\n%s\n", usage);
                goto out;
            }
            opt.repo = cli->argv[++i];
        } else if (str_has_prefix(a, "--repo=")) {
            opt.repo = a + strlen("--repo=");
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "berth import: unknown option '%s'\n%s\n", a, usage);
            goto out;
        } else {
            files[count++] = a;
        }
    }
    if (count == 0) {
        fprintf(stderr, "berth import: no bundle named\n%s\n", usage);
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
    status = 0;
    for (size_t i = 0; i < count; i++) {
        struct bundle_import_stats stats;
        char why[1024];
        enum berth_err rc = bundle_import(st, files[i], &opt, &stats, why, sizeof(why));
        if (rc != BERTH_OK) {
            fprintf(stderr, "berth import: %s: refused: %s\n", files[i], why);
            status = 1;
            break;
        }
        summary(files[i], &stats);
    }
    store_close(st);
out:
    free(files);
    return status;
}
