/*
 * berth keys: create, list and delete access keys kept in the metadata
 * database. A running server sees the change on its next request. Keys
 * defined in the config file (auth.keys) are listed but managed there.
 * Secrets are printed once, by `create`, and never by `list`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/auth/auth.h"
#include "cli_int.h"

#include "storage/store/store.h"
#include "common/timeutil.h"

/* Attempts at a fresh access key id before giving up (a collision among
 * 36^16 ids means something is wrong with the random source). */
#define KEY_ATTEMPTS 3

static void keys_usage(FILE *f)
{
    fprintf(f, "usage: berth keys create NAME [PERMISSION ...]\n"
               "       berth keys list\n"
               "       berth keys delete ACCESS_KEY_ID\n"
               "\n"
               "PERMISSION is pull[:REPO], push[:REPO], delete[:REPO], admin[:REPO] or\n"
               "ecr:ACTION[=REPO]; REPO is a repository name or ARN pattern with * and ?.\n"
               "No PERMISSION makes an administrator key. A second key for an existing NAME\n"
               "shares its permissions. See docs/auth.md.\n");
}

static bool config_has_key(const struct auth_config_key *keys, size_t n, const char *akid)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(keys[i].access_key_id, akid) == 0) {
            return true;
        }
    }
    return false;
}

static int keys_create(struct cli *cli, struct meta *m, const struct auth_config_key *ck,
                       size_t ckn)
{
    if (cli->argc < 2) {
        keys_usage(stderr);
        return 2;
    }
    const char *name = cli->argv[1];
    if (!auth_name_valid(name)) {
        fprintf(stderr, "berth keys: NAME must be 1 to %d characters of A-Z a-z 0-9 +=,.@_-\n",
                AUTH_NAME_MAX);
        return 2;
    }
    for (size_t i = 0; i < ckn; i++) {
        if (strcmp(ck[i].name, name) == 0) {
            fprintf(stderr,
                    "berth keys: '%s' is a principal of the config file (auth.keys); choose "
                    "another name\n",
                    name);
            return 2;
        }
    }
    const char *const *specs = (const char *const *)cli->argv + 2;
    size_t count = (size_t)cli->argc - 2;
    char *policy = NULL, *permissions = NULL;
    char err[512];
    enum berth_err rc = auth_specs_policy(specs, count, &policy, &permissions, err, sizeof(err));
    if (rc != BERTH_OK) {
        fprintf(stderr, "berth keys: %s\n", rc == BERTH_ENOMEM ? "out of memory" : err);
        return rc == BERTH_ENOMEM ? 1 : 2;
    }
    char akid[AUTH_GENERATED_AKID_LEN + 1], secret[AUTH_GENERATED_SECRET_LEN + 1];
    for (int attempt = 0; attempt < KEY_ATTEMPTS; attempt++) {
        rc = auth_key_generate(akid, secret);
        if (rc != BERTH_OK) {
            break;
        }
        if (config_has_key(ck, ckn, akid)) {
            rc = BERTH_EEXIST;
            continue;
        }
        rc = meta_key_create(m, name, policy, permissions, count > 0, akid, secret, time_now_ms());
        if (rc != BERTH_EEXIST) {
            break;
        }
    }
    free(policy);
    free(permissions);
    int status = 0;
    if (rc == BERTH_ECONFLICT) {
        fprintf(stderr,
                "berth keys: principal '%s' exists; a new key for it shares its permissions, so "
                "give no PERMISSION (or delete its keys first)\n",
                name);
        status = 1;
    } else if (rc != BERTH_OK) {
        fprintf(stderr, "berth keys: cannot create the key: %s\n", berth_strerror(rc));
        status = 1;
    } else if (printf("AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n", akid, secret) < 0 ||
               fflush(stdout) != 0) {
        fprintf(stderr, "berth keys: cannot write the key to standard output\n");
        status = 1;
    }
    auth_wipe(secret, sizeof(secret));
    return status;
}

struct list_ctx {
    int rows;
};

static void print_row(const char *akid, const char *name, const char *source, int64_t created,
                      const char *permissions)
{
    char when[40] = "-";
    if (created > 0) {
        time_format_rfc3339(created, when, sizeof(when));
    }
    printf("%-22s %-24s %-7s %-25s %s\n", akid, name, source, when,
           permissions[0] != '\0' ? permissions : "admin");
}

static int list_row(void *arg, const struct meta_key_info *k)
{
    struct list_ctx *c = arg;
    print_row(k->access_key_id, k->principal, "db", k->created_at, k->permissions);
    c->rows++;
    return 0;
}

static int keys_list(struct cli *cli, struct meta *m, const struct auth_config_key *ck, size_t ckn)
{
    if (cli->argc != 1) {
        keys_usage(stderr);
        return 2;
    }
    printf("%-22s %-24s %-7s %-25s %s\n", "ACCESS_KEY_ID", "PRINCIPAL", "SOURCE", "CREATED",
           "PERMISSIONS");
    for (size_t i = 0; i < ckn; i++) {
        print_row(ck[i].access_key_id, ck[i].name, "config", 0, ck[i].permissions);
    }
    struct list_ctx c = {0};
    enum berth_err rc = meta_key_list(m, list_row, &c);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "berth keys: cannot write to standard output\n");
        return 1;
    }
    if (rc != BERTH_OK) {
        fprintf(stderr, "berth keys: cannot list the keys: %s\n", berth_strerror(rc));
        return 1;
    }
    return 0;
}

static int keys_delete(struct cli *cli, struct meta *m, const struct auth_config_key *ck,
                       size_t ckn)
{
    if (cli->argc != 2) {
        keys_usage(stderr);
        return 2;
    }
    const char *akid = cli->argv[1];
    if (config_has_key(ck, ckn, akid)) {
        fprintf(stderr,
                "berth keys: %s is defined in the config file (auth.keys); remove it there and "
                "restart\n",
                akid);
        return 1;
    }
    enum berth_err rc = strlen(akid) <= AUTH_AKID_MAX ? meta_key_delete(m, akid) : BERTH_ENOTFOUND;
    if (rc == BERTH_ENOTFOUND) {
        fprintf(stderr, "berth keys: no access key %s\n",
                auth_akid_valid(akid) ? akid : "(that id)");
        return 1;
    }
    if (rc != BERTH_OK) {
        fprintf(stderr, "berth keys: cannot delete the key: %s\n", berth_strerror(rc));
        return 1;
    }
    printf("deleted %s\n", akid);
    return fflush(stdout) == 0 ? 0 : 1;
}

int cmd_keys(struct cli *cli)
{
    if (cli->argc < 1 ||
        (strcmp(cli->argv[0], "create") != 0 && strcmp(cli->argv[0], "list") != 0 &&
         strcmp(cli->argv[0], "delete") != 0)) {
        keys_usage(stderr);
        return 2;
    }
    if (!cli_load_config(cli)) {
        return 2;
    }
    char err[512];
    struct auth_config_key *ck = NULL;
    size_t ckn = 0;
    if (auth_config_keys(&cli->cfg, &ck, &ckn, err, sizeof(err)) != BERTH_OK) {
        fprintf(stderr, "berth: %s\n", err);
        return 2;
    }
    int status = 1;
    struct store *st = NULL;
    struct meta *m = cli_open_meta(cli, "berth keys", &st, &status);
    if (m != NULL) {
        if (strcmp(cli->argv[0], "create") == 0) {
            status = keys_create(cli, m, ck, ckn);
        } else if (strcmp(cli->argv[0], "list") == 0) {
            status = keys_list(cli, m, ck, ckn);
        } else {
            status = keys_delete(cli, m, ck, ckn);
        }
    }
    store_close(st);
    auth_config_keys_free(ck, ckn);
    return status;
}
