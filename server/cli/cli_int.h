/*
 * Private to the berth command line: options every subcommand shares and
 * the subcommand entry points (server/cli/main.c dispatches; each command lives
 * in server/cli/<name>.c). Single-threaded until a command starts threads.
 */
#ifndef BERTH_CLI_INT_H
#define BERTH_CLI_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/config.h"
#include "storage/spec/seal.h"
#include "storage/store/store.h"

struct cli {
    const char *config_path; /* --config, or $BERTH_CONFIG */
    const char *listen;      /* --listen */
    const char *root;        /* --root */
    int argc;                /* remaining arguments after the subcommand */
    char **argv;
    struct berth_config cfg; /* loaded by cli_load_config */
    /* cli_open_store refuses a new SQLite database over published blobs
     * (berth gc) */
    bool existing_meta_only;
};

/* Load defaults, the config file, BERTH_* variables and the flags into
 * cli->cfg, validate, and set the log level. Prints the reason and returns
 * false on error. */
bool cli_load_config(struct cli *cli);

/* Read the configuration as cli_load_config does (defaults, the file, the
 * environment, the flags; validated) into cfg, which the caller finishes
 * with config_fini whatever the result; nothing else changes (the log
 * level stays). False with the reason in err on error. For SIGHUP. */
bool cli_read_config(const struct cli *cli, struct berth_config *cfg, char *err, size_t cap);

/* Open the store at the configured root with the configured options.
 * Prints the reason and returns NULL on error. */
struct store *cli_open_store(const struct cli *cli);

/* The exit status for cli_open_store's last failure: 2 when the data
 * directory was refused (it belongs to other backends), else 1. */
int cli_open_store_status(void);

/* cli_open_store, then its metadata database, for a command named `who`
 * ("berth keys") that works on the database alone. Returns the database,
 * or NULL with the reason printed and the exit status in *status; *st is
 * the store to close either way (store_close takes NULL). */
struct meta *cli_open_meta(const struct cli *cli, const char *who, struct store **st, int *status);

/* The usage text (commands, shared options, every configuration key) and the manual
 * page berth(8) as roff, both from the same tables (help.c). */
void cli_usage(FILE *f);
void cli_man(FILE *f);

int cmd_serve(struct cli *cli);
int cmd_keys(struct cli *cli);
int cmd_scan(struct cli *cli);   /* cli_scan.c */
int cmd_vulndb(struct cli *cli); /* cli_vulndb.c */
int cmd_gc(struct cli *cli);
int cmd_lifecycle(struct cli *cli);
int cmd_export(struct cli *cli);
int cmd_import(struct cli *cli);
int cmd_mirror(struct cli *cli);
int cmd_secrets(struct cli *cli);
int cmd_migrate(struct cli *cli);

/* The key that seals upstream secrets: pull_through.secrets_key, else the
 * key file (pull_through.secrets_key_file or <root>/secrets.key), created
 * when missing with create. *found false when there is none (only without
 * create). Prints the reason and returns false when it cannot be used. */
bool cli_upstream_key(const struct cli *cli, bool create, uint8_t key[SEAL_KEY_LEN], bool *found);

#endif
