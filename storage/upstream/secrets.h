/*
 * Upstream credentials for the pull-through cache ("berth secrets"): a
 * username and a password (ECR's secret keys "username" and
 * "accessToken") kept in the metadata sealed with AES-256-GCM
 * (storage/spec/seal.h) under a 32-byte key that is never stored beside
 * them: it comes from the configuration (pull_through.secrets_key, 64 hex
 * digits) or from a key file (pull_through.secrets_key_file, by default
 * <root>/secrets.key, created 0600 with a random key when missing). A
 * secret is named as the part of a Secrets Manager ARN after "secret:",
 * which ECR requires to start with "ecr-pullthroughcache/". Clear values
 * are never logged. Thread-safe; calls block on the database.
 */
#ifndef BERTH_UPSTREAM_SECRETS_H
#define BERTH_UPSTREAM_SECRETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "storage/spec/seal.h"

struct meta;

#define UPSTREAM_SECRET_PREFIX "ecr-pullthroughcache/"

/* The sealing key: key_hex when not empty (64 hex digits), else the key
 * file at key_file, created (0600, 32 random bytes, durably) when it does
 * not exist and create is true. BERTH_EINVAL with a reason in err for a
 * malformed key or key file (or one readable by others), BERTH_ENOTFOUND
 * when the file is missing and create is false, BERTH_EIO. */
enum berth_err upstream_secret_key(const char *key_hex, const char *key_file, bool create,
                                   uint8_t key[SEAL_KEY_LEN], char *err, size_t cap);

/* The secret name a name or ARN stands for, into out: an ARN
 * "arn:<partition>:secretsmanager:<region>:<account>:secret:<name>" gives
 * <name>; a name without the "ecr-pullthroughcache/" prefix gets it. False
 * when the result is not 1..META_SECRET_NAME_MAX of [A-Za-z0-9/_+=.@-]
 * after the prefix. Pure. */
bool upstream_secret_name(const char *name_or_arn, char *out, size_t cap);

/* The ARN of secret name in region and account, into out. Pure. */
void upstream_secret_arn(const char *region, const char *account, const char *name, char *out,
                         size_t cap);

/* Seal and store username and password as secret name (replacing it).
 * BERTH_ETOOBIG, BERTH_ENOMEM, BERTH_EIO, or a database error. */
enum berth_err upstream_secret_put(struct meta *m, const uint8_t key[SEAL_KEY_LEN],
                                   const char *name, const char *username, const char *password,
                                   int64_t now);

/* Read secret name back: new strings in *username and *password (the
 * caller wipes and frees them). BERTH_ENOTFOUND, BERTH_EINVAL when it
 * cannot be opened with key (another key, or changed), BERTH_ENOMEM, or a
 * database error. */
enum berth_err upstream_secret_get(struct meta *m, const uint8_t key[SEAL_KEY_LEN],
                                   const char *name, char **username, char **password);

#endif
