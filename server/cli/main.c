/*
 * berth: the command line. Parses the options shared by every subcommand
 * (--config, --root, --listen) and dispatches. Exit status: 0 success,
 * 1 failure, 2 usage or configuration error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_int.h"

#include "common/log.h"
#include "storage/meta/meta.h"

/* Take "--name VALUE" or "--name=VALUE" at argv[*i]; true when matched. */
static bool take_flag(int argc, char **argv, int *i, const char *name, const char **out,
                      bool *error)
{
    size_t n = strlen(name);
    const char *arg = argv[*i];
    if (strncmp(arg, name, n) != 0) {
        return false;
    }
    if (arg[n] == '=') {
        *out = arg + n + 1;
        return true;
    }
    if (arg[n] != '\0') {
        return false;
    }
    if (*i + 1 >= argc) {
        fprintf(stderr, "berth: %s needs a value\n", name);
        *error = true;
        return true;
    }
    *out = argv[++*i];
    return true;
}

bool cli_read_config(const struct cli *cli, struct berth_config *cfg, char *err, size_t cap)
{
    if (config_init(cfg) != BERTH_OK) {
        snprintf(err, cap, "out of memory");
        return false;
    }
    const char *path = cli->config_path ? cli->config_path : getenv("BERTH_CONFIG");
    if (path != NULL && *path != '\0' && config_load_file(cfg, path, err, cap) != BERTH_OK) {
        return false;
    }
    if (config_load_env(cfg, err, cap) != BERTH_OK) {
        return false;
    }
    if ((cli->listen && config_set(cfg, "listen", cli->listen, err, cap)) ||
        (cli->root && config_set(cfg, "root", cli->root, err, cap))) {
        return false;
    }
    return config_validate(cfg, err, cap) == BERTH_OK;
}

bool cli_load_config(struct cli *cli)
{
    char err[512];
    if (!cli_read_config(cli, &cli->cfg, err, sizeof(err))) {
        fprintf(stderr, "berth: %s\n", err);
        return false;
    }
    enum log_level level;
    if (log_parse_level(cli->cfg.log_level, &level) != 0) {
        fprintf(stderr, "berth: config: log.level must be error, warn, info or debug\n");
        return false;
    }
    log_set_level(level);
    log_set_json(strcmp(cli->cfg.log_format, "json") == 0);
    return true;
}

/* cli_open_store's last failure: 2 when the root was refused, else 1. */
static int open_status = 1;

int cli_open_store_status(void)
{
    return open_status;
}

struct store *cli_open_store(const struct cli *cli)
{
    const struct berth_config *cfg = &cli->cfg;
    meta_postgres_query_timeout(cfg->meta_postgres_query_timeout_ms);
    struct store_options opt = {
        .root = cfg->root,
        .fsync = cfg->storage_fsync,
        .auto_create = cfg->storage_auto_create,
        .upload_expiry_ms = cfg->storage_upload_expiry_seconds * 1000,
        .manifest_max = (size_t)cfg->storage_manifest_max_bytes,
        .min_free_bytes = (uint64_t)cfg->storage_min_free_bytes,
        .sparse_manifests = cfg->storage_sparse_manifests,
        .meta_backend = cfg->meta_backend,
        .meta_target = cfg->meta_postgres_dsn,
        .signing_profiles_dir = cfg->signing_profiles_dir,
        .blob_backend = cfg->storage_backend,
        .s3 =
            {
                .endpoint = cfg->storage_s3_endpoint,
                .region = cfg->storage_s3_region,
                .bucket = cfg->storage_s3_bucket,
                .prefix = cfg->storage_s3_prefix,
                .access_key_id = cfg->storage_s3_access_key_id,
                .secret_access_key = cfg->storage_s3_secret_access_key,
                .path_style = cfg->storage_s3_path_style,
                .tls_ca_file = cfg->storage_s3_tls_ca_file,
                .cache_max_bytes = (uint64_t)cfg->storage_s3_cache_max_bytes,
            },
    };
    /* Credentials left empty come from the environment, as AWS's tools
     * read them. */
    if (opt.s3.access_key_id[0] == '\0' && getenv("AWS_ACCESS_KEY_ID") != NULL) {
        opt.s3.access_key_id = getenv("AWS_ACCESS_KEY_ID");
    }
    if (opt.s3.secret_access_key[0] == '\0' && getenv("AWS_SECRET_ACCESS_KEY") != NULL) {
        opt.s3.secret_access_key = getenv("AWS_SECRET_ACCESS_KEY");
    }
    /* the archive tier: <root>/archive unless set (or "off") */
    char archive[4096];
    if (strcmp(cfg->storage_archive_path, "off") == 0) {
        archive[0] = '\0';
    } else if (cfg->storage_archive_path[0] != '\0') {
        snprintf(archive, sizeof(archive), "%s", cfg->storage_archive_path);
    } else {
        snprintf(archive, sizeof(archive), "%s/archive", cfg->root);
    }
    opt.archive_path = archive;
    opt.archive_s3_bucket = cfg->storage_archive_s3_bucket;
    opt.archive_s3_prefix = cfg->storage_archive_s3_prefix;
    opt.archive_s3_storage_class = cfg->storage_archive_s3_storage_class;
    opt.archive_zstd_level = (int)cfg->storage_archive_zstd_level;
    opt.existing_meta_only = cli->existing_meta_only;
    opt.scan_quota_ms = cfg->scan_quota_seconds * 1000;
    struct store *st = NULL;
    enum berth_err rc = store_open(&opt, &st);
    if (rc == BERTH_ECONFLICT) {
        fprintf(stderr,
                "berth: refusing to open the data directory %s with this configuration "
                "(meta.backend %s, storage.backend %s; see the log above); nothing was changed\n",
                cfg->root, cfg->meta_backend,
                cfg->storage_backend[0] != '\0' ? cfg->storage_backend : "filesystem");
        open_status = 2;
        return NULL;
    }
    if (rc != BERTH_OK) {
        fprintf(stderr, "berth: cannot open the data directory %s (see the log above)\n",
                cfg->root);
        open_status = 1;
        return NULL;
    }
    return st;
}

struct meta *cli_open_meta(const struct cli *cli, const char *who, struct store **st, int *status)
{
    *st = cli_open_store(cli);
    if (*st == NULL) {
        *status = open_status;
        return NULL;
    }
    struct meta *m = store_meta(*st);
    if (m == NULL) {
        fprintf(stderr, "%s: cannot open the database (see the log above)\n", who);
        *status = 1;
    }
    return m;
}

int main(int argc, char **argv)
{
    struct cli cli;
    memset(&cli, 0, sizeof(cli));
    const char *command = NULL;
    char **rest = calloc((size_t)argc + 1, sizeof(*rest));
    if (rest == NULL) {
        return 1;
    }
    bool error = false;
    for (int i = 1; i < argc && !error; i++) {
        if (take_flag(argc, argv, &i, "--config", &cli.config_path, &error) ||
            take_flag(argc, argv, &i, "--listen", &cli.listen, &error) ||
            take_flag(argc, argv, &i, "--root", &cli.root, &error)) {
            continue;
        }
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cli_usage(stdout);
            free(rest);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            command = "version";
        } else if (command == NULL && argv[i][0] != '-') {
            command = argv[i];
        } else {
            rest[cli.argc++] = argv[i];
        }
    }
    cli.argv = rest;
    int status = 2;
    if (error) {
        status = 2;
    } else if (command == NULL || strcmp(command, "help") == 0) {
        cli_usage(command == NULL ? stderr : stdout);
        status = command == NULL ? 2 : 0;
    } else if (strcmp(command, "man") == 0) {
        cli_man(stdout);
        status = fflush(stdout) == 0 ? 0 : 1;
    } else if (strcmp(command, "version") == 0) {
        printf("berth %s\n", BERTH_VERSION);
        status = 0;
    } else if (strcmp(command, "serve") == 0) {
        status = cmd_serve(&cli);
    } else if (strcmp(command, "gc") == 0) {
        status = cmd_gc(&cli);
    } else if (strcmp(command, "lifecycle") == 0) {
        status = cmd_lifecycle(&cli);
    } else if (strcmp(command, "keys") == 0) {
        status = cmd_keys(&cli);
    } else if (strcmp(command, "scan") == 0) {
        status = cmd_scan(&cli);
    } else if (strcmp(command, "vulndb") == 0) {
        status = cmd_vulndb(&cli);
    } else if (strcmp(command, "secrets") == 0) {
        status = cmd_secrets(&cli);
    } else if (strcmp(command, "migrate") == 0) {
        status = cmd_migrate(&cli);
    } else if (strcmp(command, "export") == 0) {
        status = cmd_export(&cli);
    } else if (strcmp(command, "import") == 0) {
        status = cmd_import(&cli);
    } else if (strcmp(command, "mirror") == 0) {
        status = cmd_mirror(&cli);
    } else {
        fprintf(stderr, "berth: unknown command '%s' (try berth --help)\n", command);
    }
    config_fini(&cli.cfg);
    free(rest);
    return status;
}
