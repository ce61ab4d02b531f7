/*
 * berth vulndb import PATH: load OSV records into <root>/vulndb.db (see
 * vulndb.h) and print what was read; then queue the rescans an import
 * calls for: CONTINUOUS_SCAN repositories, and scans that failed for want
 * of a database (a running server's workers pick them up within a
 * second).
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_int.h"

#include "storage/registry/scan_queue.h"
#include "scan/vulndb/vulndb.h"

static int usage(void)
{
    fprintf(stderr, "usage: berth vulndb import PATH [--config FILE] [--root DIR]\n"
                    "  PATH: a directory of OSV .json files, one .json file, or a .tar.gz,\n"
                    "        .tgz, .tar.zst or .zip of them (as OSV publishes them)\n");
    return 2;
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
    struct vulndb_import_stats stats;
    char err[512] = "";
    enum berth_err rc = vulndb_import(cli->cfg.root, path, &stats, err, sizeof(err));
    if (rc != BERTH_OK) {
        fprintf(stderr, "berth vulndb import: %s\n", err[0] ? err : berth_strerror(rc));
        return 1;
    }
    printf("imported %s into %s/%s\n", path, cli->cfg.root, VULNDB_FILE);
    printf("  files read        %zu\n", stats.files);
    printf("  records stored    %zu\n", stats.records);
    printf("  records withdrawn %zu\n", stats.withdrawn);
    printf("  not OS packages   %zu\n", stats.not_os);
    printf("  invalid files     %zu\n", stats.invalid);
    if (stats.invalid > 0) {
        printf("  first invalid     %s\n", stats.first_invalid);
    }

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
    int64_t rescans = 0, retries = 0;
    rc = scan_queue_after_import(st, &rescans, &retries);
    store_close(st);
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
