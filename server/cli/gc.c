/*
 * berth gc [--dry-run]: one garbage-collection pass over the store at the
 * configured root, safe while `berth serve` runs on the same root (SQLite
 * orders the writers). Prints what was (or would be) reclaimed.
 */
#include <stdio.h>
#include <string.h>

#include "cli_int.h"

#include "storage/gc/gc.h"
#include "common/log.h"
#include "storage/store/store.h"

int cmd_gc(struct cli *cli)
{
    bool dry_run = false;
    for (int i = 0; i < cli->argc; i++) {
        if (strcmp(cli->argv[i], "--dry-run") == 0) {
            dry_run = true;
        } else {
            fprintf(stderr, "berth gc: unexpected argument '%s' (usage: berth gc [--dry-run])\n",
                    cli->argv[i]);
            return 2;
        }
    }
    if (!cli_load_config(cli)) {
        return 2;
    }
    cli->existing_meta_only = true;
    struct store *st = cli_open_store(cli);
    if (st == NULL) {
        return cli_open_store_status();
    }
    const struct berth_config *cfg = &cli->cfg;
    struct gc_options opt = {.grace_ms = cfg->gc_grace_seconds * 1000,
                             .upload_expiry_ms = cfg->storage_upload_expiry_seconds * 1000,
                             .orphan_upload_grace_ms = cfg->storage_s3_orphan_upload_grace * 1000,
                             .dry_run = dry_run,
                             .reason = "command",
                             .node = cfg->replica_name};
    struct gc_stats s;
    enum berth_err rc = gc_run(st, &opt, &s);
    store_close(st);
    if (rc != BERTH_OK) {
        fprintf(stderr, "berth gc: the pass failed (%s); see the log above\n", berth_strerror(rc));
        return 1;
    }
    const char *verb = dry_run ? "would be " : "";
    printf("gc%s: %lld blobs %sreclaimed, %lld bytes; %lld orphan files %sremoved, %lld bytes; "
           "%lld uploads %sremoved\n",
           dry_run ? " (dry run)" : "", (long long)s.blobs_deleted, verb,
           (long long)s.bytes_deleted, (long long)s.orphans_deleted, verb,
           (long long)s.orphan_bytes, (long long)s.uploads_removed, verb);
    printf("gc: %lld blob rows examined, %lld write transactions, longest %.3f ms, %.3f s in all\n",
           (long long)s.blobs_scanned, (long long)s.batches, (double)s.max_lock_us / 1000.0,
           (double)s.duration_ms / 1000.0);
    return 0;
}
