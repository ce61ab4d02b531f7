/*
 * berth vulndb import PATH: load OSV records into the vulnerability
 * database (see vulndb.h) and print what was read; then queue the rescans
 * an import calls for: CONTINUOUS_SCAN repositories, and scans that failed
 * for want of a database (a running server's workers pick them up within
 * a second).
 *
 * A single node (meta.backend sqlite) imports into <root>/vulndb.db in
 * place. Replicas sharing PostgreSQL and a blob store (meta.backend
 * postgres) share one database (scan/engine/scan_dbsync.h): the import
 * starts from the current shared generation, downloaded into a directory
 * of its own under the root, adds PATH's records there, and publishes the
 * result as the next generation; every replica then swaps it in. The
 * rescans are queued once, here, for the whole cluster.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_int.h"

#include "common/fileio.h"
#include "storage/registry/scan_queue.h"
#include "scan/engine/scan_dbsync.h"
#include "scan/vulndb/vulndb.h"

static int usage(void)
{
    fprintf(stderr, "usage: berth vulndb import PATH [--config FILE] [--root DIR]\n"
                    "  PATH: a directory of OSV .json files, one .json file, or a .tar.gz,\n"
                    "        .tgz, .tar.zst or .zip of them (as OSV publishes them)\n");
    return 2;
}

static void print_stats(const struct vulndb_import_stats *stats)
{
    printf("  files read        %zu\n", stats->files);
    printf("  records stored    %zu\n", stats->records);
    printf("  records withdrawn %zu\n", stats->withdrawn);
    printf("  not OS packages   %zu\n", stats->not_os);
    printf("  invalid files     %zu\n", stats->invalid);
    if (stats->invalid > 0) {
        printf("  first invalid     %s\n", stats->first_invalid);
    }
}

/* Queue the rescans of an import (both kinds of registry). */
static int queue_rescans(struct store *st)
{
    int64_t rescans = 0, retries = 0;
    enum berth_err rc = scan_queue_after_import(st, &rescans, &retries);
    if (rc != BERTH_OK) {
        fprintf(stderr, "berth vulndb import: queueing rescans failed (%s)\n", berth_strerror(rc));
        return 1;
    }
    if (rescans > 0) {
        printf("  rescans queued    %lld (CONTINUOUS_SCAN)\n", (long long)rescans);
    }
    if (retries > 0) {
        printf("  retries queued    %lld (scans that had no vulnerability database)\n",
               (long long)retries);
    }
    return 0;
}

/* The shared database: build the next generation and publish it. */
static int import_shared(struct cli *cli, const char *path)
{
    struct store *st = cli_open_store(cli);
    if (st == NULL) {
        return cli_open_store_status();
    }
    int status = 1;
    char work[4200];
    char err[512] = "";
    snprintf(work, sizeof(work), "%s/vulndb-import-%ld", cli->cfg.root, (long)getpid());
    (void)file_remove_tree(work); /* a pid reused after a crash */
    struct meta *m;
    struct meta_vulndb cur, next;
    memset(&cur, 0, sizeof(cur)); /* generation 0: none yet */
    enum berth_err rc = store_meta_get(st, &m);
    if (rc == BERTH_OK) {
        rc = meta_vulndb_get(m, &cur);
        if (rc == BERTH_ENOTFOUND) {
            memset(&cur, 0, sizeof(cur));
            rc = BERTH_OK;
        }
    }
    if (rc != BERTH_OK) {
        fprintf(stderr, "berth vulndb import: cannot read the shared database's generation (%s)\n",
                berth_strerror(rc));
        goto out;
    }
    rc = file_mkdir_p(work, 0750);
    if (rc != BERTH_OK) {
        fprintf(stderr, "berth vulndb import: cannot create %s (%s)\n", work, berth_strerror(rc));
        goto out;
    }
    char file[4300];
    snprintf(file, sizeof(file), "%s/%s", work, VULNDB_FILE);
    if (cur.generation > 0) {
        rc = scan_dbsync_fetch(st, &cur, file, err, sizeof(err));
        if (rc != BERTH_OK) {
            fprintf(stderr,
                    "berth vulndb import: cannot download the shared database's generation "
                    "%lld: %s\n",
                    (long long)cur.generation, err[0] ? err : berth_strerror(rc));
            goto out;
        }
    }
    struct vulndb_import_stats stats;
    rc = vulndb_import(work, path, &stats, err, sizeof(err));
    if (rc != BERTH_OK) {
        fprintf(stderr, "berth vulndb import: %s\n", err[0] ? err : berth_strerror(rc));
        goto out;
    }
    int64_t records = 0, imported_at = -1;
    rc = vulndb_seal(work, &records, &imported_at, err, sizeof(err));
    if (rc == BERTH_OK) {
        rc = scan_dbsync_publish(st, file, cur.generation, records, imported_at, &next, err,
                                 sizeof(err));
    }
    if (rc != BERTH_OK) {
        fprintf(stderr, "berth vulndb import: %s%s\n", err[0] ? err : berth_strerror(rc),
                rc == BERTH_ECONFLICT ? "; nothing was changed: run the import again" : "");
        goto out;
    }
    printf("imported %s into the shared vulnerability database: generation %lld, %s\n", path,
           (long long)next.generation, next.digest);
    print_stats(&stats);
    printf("  records in all    %lld\n", (long long)records);
    status = queue_rescans(st);
out:
    (void)file_remove_tree(work);
    store_close(st);
    return status;
}

int cmd_vulndb(struct cli *cli)
{
    if (cli->argc != 2 || strcmp(cli->argv[0], "import") != 0 || cli->argv[1][0] == '-') {
        return usage();
    }
    if (!cli_load_config(cli)) {
        return 2;
    }
    const char *path = cli->argv[1];
    if (strcmp(cli->cfg.meta_backend, "postgres") == 0) {
        return import_shared(cli, path);
    }
    struct vulndb_import_stats stats;
    char err[512] = "";
    enum berth_err rc = vulndb_import(cli->cfg.root, path, &stats, err, sizeof(err));
    if (rc != BERTH_OK) {
        fprintf(stderr, "berth vulndb import: %s\n", err[0] ? err : berth_strerror(rc));
        return 1;
    }
    printf("imported %s into %s/%s\n", path, cli->cfg.root, VULNDB_FILE);
    print_stats(&stats);

    /* Rescans only concern a registry that exists already. */
    char db[4200];
    struct stat sb;
    snprintf(db, sizeof(db), "%s/berth.db", cli->cfg.root);
    if (stat(db, &sb) != 0) {
        return 0;
    }
    struct store *st = cli_open_store(cli);
    if (st == NULL) {
        return cli_open_store_status();
    }
    int status = queue_rescans(st);
    store_close(st);
    return status;
}
