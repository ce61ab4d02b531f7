/*
 * ECR's account settings (GetAccountSetting / PutAccountSetting): the
 * catalogue of names, the values each accepts and its default, stored in
 * the registry_settings table under "account.<NAME>". The rules that
 * depend on a setting read it here (registry_blob_mount reads
 * BLOB_MOUNTING; the authorization reads REGISTRY_POLICY_SCOPE).
 * Thread-safe; the calls that take a store block on the database.
 */
#ifndef BERTH_ACCOUNT_H
#define BERTH_ACCOUNT_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

struct store;
struct meta;

/* Longest setting value (ECR: AccountSettingName is 1..64 characters). */
#define ACCOUNT_VALUE_MAX 64

#define ACCOUNT_BLOB_MOUNTING "BLOB_MOUNTING"
#define ACCOUNT_REGISTRY_POLICY_SCOPE "REGISTRY_POLICY_SCOPE"
#define ACCOUNT_BASIC_SCAN_TYPE_VERSION "BASIC_SCAN_TYPE_VERSION"

/* The setting names, NULL-terminated, in ECR's order. */
extern const char *const account_setting_names[];

/* The values setting name accepts (NULL-terminated), or NULL when name is
 * not a setting. Pure. */
const char *const *account_setting_values(const char *name);

/* The value of setting name (one of account_setting_names) on m into out
 * (cap >= ACCOUNT_VALUE_MAX + 1): the stored one, or the default when none
 * is stored. BERTH_EINVAL for an unknown name, or a database error. */
enum berth_err account_setting_get_on(struct meta *m, const char *name, char *out, size_t cap);

/* As account_setting_get_on, on the calling thread's connection of st. */
enum berth_err account_setting_get(struct store *st, const char *name, char *out, size_t cap);

/* Store value for name. BERTH_EINVAL when name is not a setting or value
 * not one of its values; a database error otherwise. */
enum berth_err account_setting_put(struct store *st, const char *name, const char *value);

#endif
