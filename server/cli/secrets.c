/*
 * berth secrets: the upstream credentials of pull-through cache rules
 * (their credentialArn), kept in the metadata sealed with the key of
 * pull_through.secrets_key or the key file (storage/upstream/secrets.h).
 * The password is read from standard input, never from the command line,
 * and never printed. A running server sees a change on its next fetch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_int.h"

#include "common/timeutil.h"
#include "storage/meta/meta.h"
#include "storage/store/store.h"
#include "storage/upstream/secrets.h"

static void secrets_usage(FILE *f)
{
    fprintf(f, "usage: berth secrets put NAME|ARN --username USER   (password on standard input)\n"
               "       berth secrets list\n"
               "       berth secrets delete NAME|ARN\n"
               "\n"
               "NAME is ecr-pullthroughcache/<name> (the prefix is added when missing); ARN is\n"
               "arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME, as a pull-through cache\n"
               "rule's credentialArn names it. See docs/air-gap.md.\n");
}

bool cli_upstream_key(const struct cli *cli, bool create, uint8_t key[SEAL_KEY_LEN], bool *found)
{
    const struct berth_config *cfg = &cli->cfg;
    char path[4096];
    if (cfg->pull_through_secrets_key_file[0] != '\0') {
        snprintf(path, sizeof(path), "%s", cfg->pull_through_secrets_key_file);
    } else {
        snprintf(path, sizeof(path), "%s/secrets.key", cfg->root);
    }
    char err[512];
    enum berth_err rc =
        upstream_secret_key(cfg->pull_through_secrets_key, path, create, key, err, sizeof(err));
    *found = rc == BERTH_OK;
    if (rc == BERTH_ENOTFOUND && !create) {
        return true;
    }
    if (rc != BERTH_OK) {
        fprintf(stderr, "berth: %s\n", err);
        return false;
    }
    return true;
}

/* One line of standard input without its end of line, into a new string. */
static char *read_password(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0) {
        free(line);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) {
        line[--n] = '\0';
    }
    return line;
}

static int secrets_put(struct cli *cli, struct meta *m, const char *name)
{
    const char *user = NULL;
    for (int i = 2; i + 1 < cli->argc; i++) {
        if (strcmp(cli->argv[i], "--username") == 0) {
            user = cli->argv[i + 1];
        }
    }
    if (user == NULL || *user == '\0') {
        secrets_usage(stderr);
        return 2;
    }
    char *pass = read_password();
    if (pass == NULL || *pass == '\0') {
        fprintf(stderr, "berth secrets: give the password on standard input\n");
        free(pass);
        return 2;
    }
    uint8_t key[SEAL_KEY_LEN];
    bool found = false;
    int status = 1;
    if (cli_upstream_key(cli, true, key, &found)) {
        enum berth_err rc = upstream_secret_put(m, key, name, user, pass, time_now_ms());
        if (rc != BERTH_OK) {
            fprintf(stderr, "berth secrets: cannot store %s (%s)\n", name, berth_strerror(rc));
        } else {
            char arn[1024];
            upstream_secret_arn(cli->cfg.registry_region, cli->cfg.registry_id, name, arn,
                                sizeof(arn));
            printf("%s\n", arn);
            status = 0;
        }
    }
    memset(key, 0, sizeof(key));
    memset(pass, 0, strlen(pass));
    free(pass);
    return status;
}

static int print_secret(void *arg, const char *name, int64_t created_at, int64_t updated_at)
{
    const struct cli *cli = arg;
    char arn[1024];
    char when[64];
    upstream_secret_arn(cli->cfg.registry_region, cli->cfg.registry_id, name, arn, sizeof(arn));
    time_format_rfc3339(updated_at > 0 ? updated_at : created_at, when, sizeof(when));
    printf("%s\t%s\n", arn, when);
    return 0;
}

int cmd_secrets(struct cli *cli)
{
    if (cli->argc < 1 || (strcmp(cli->argv[0], "list") != 0 && cli->argc < 2) ||
        (strcmp(cli->argv[0], "put") != 0 && strcmp(cli->argv[0], "list") != 0 &&
         strcmp(cli->argv[0], "delete") != 0)) {
        secrets_usage(stderr);
        return 2;
    }
    if (!cli_load_config(cli)) {
        return 2;
    }
    char name[META_SECRET_NAME_MAX + 64];
    if (strcmp(cli->argv[0], "list") != 0 &&
        !upstream_secret_name(cli->argv[1], name, sizeof(name))) {
        fprintf(stderr,
                "berth secrets: '%s' is not a secret name or ARN (letters, digits and "
                "/_+=.@- after ecr-pullthroughcache/)\n",
                cli->argv[1]);
        return 2;
    }
    int status = 1;
    struct store *st = NULL;
    struct meta *m = cli_open_meta(cli, "berth secrets", &st, &status);
    if (m != NULL) {
        if (strcmp(cli->argv[0], "put") == 0) {
            status = secrets_put(cli, m, name);
        } else if (strcmp(cli->argv[0], "list") == 0) {
            enum berth_err rc = meta_upstream_secret_list(m, print_secret, cli);
            status = rc == BERTH_OK ? 0 : 1;
        } else {
            enum berth_err rc = meta_upstream_secret_delete(m, name);
            if (rc == BERTH_ENOTFOUND) {
                fprintf(stderr, "berth secrets: no secret %s\n", name);
            } else if (rc != BERTH_OK) {
                fprintf(stderr, "berth secrets: cannot delete %s (%s)\n", name, berth_strerror(rc));
            } else {
                status = 0;
            }
        }
    }
    store_close(st);
    return status;
}
