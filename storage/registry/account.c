/* ECR's account settings; see account.h. */
#include "storage/registry/account.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/str.h"
#include "common/timeutil.h"
#include "storage/meta/meta_scan.h"
#include "storage/store/store.h"

struct setting {
    const char *name;
    const char *const *values; /* the first is the default */
};

/* BASIC_SCAN_TYPE_VERSION keeps only AWS_NATIVE (CLAIR was retired in
 * 2026), REGISTRY_POLICY_SCOPE only V2 (V1 was retired in 2026). berth
 * has always mounted blobs across repositories, so BLOB_MOUNTING defaults
 * to ENABLED (a deliberate difference from ECR, where it is opt-in). */
static const char *const scan_type_values[] = {"AWS_NATIVE", NULL};
static const char *const policy_scope_values[] = {"V2", NULL};
static const char *const mounting_values[] = {"ENABLED", "DISABLED", NULL};

static const struct setting settings[] = {
    {ACCOUNT_BASIC_SCAN_TYPE_VERSION, scan_type_values},
    {ACCOUNT_REGISTRY_POLICY_SCOPE, policy_scope_values},
    {ACCOUNT_BLOB_MOUNTING, mounting_values},
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

const char *const account_setting_names[] = {
    ACCOUNT_BASIC_SCAN_TYPE_VERSION,
    ACCOUNT_REGISTRY_POLICY_SCOPE,
    ACCOUNT_BLOB_MOUNTING,
    NULL,
};

static const struct setting *find(const char *name)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        if (strcmp(settings[i].name, name) == 0) {
            return &settings[i];
        }
    }
    return NULL;
}

const char *const *account_setting_values(const char *name)
{
    const struct setting *s = find(name);
    return s != NULL ? s->values : NULL;
}

static bool is_value(const struct setting *s, const char *value)
{
    for (const char *const *v = s->values; *v != NULL; v++) {
        if (strcmp(*v, value) == 0) {
            return true;
        }
    }
    return false;
}

static void key_of(const char *name, char *key, size_t cap)
{
    snprintf(key, cap, "account.%s", name);
}

enum berth_err account_setting_get_on(struct meta *m, const char *name, char *out, size_t cap)
{
    const struct setting *s = find(name);
    if (s == NULL) {
        return BERTH_EINVAL;
    }
    char key[96];
    key_of(name, key, sizeof(key));
    char *stored = NULL;
    enum berth_err rc = meta_setting_get(m, key, &stored);
    if (rc != BERTH_OK) {
        return rc;
    }
    /* A value no longer accepted (a retired one) reads as the default. */
    const char *value = stored != NULL && is_value(s, stored) ? stored : s->values[0];
    str_copy(out, cap, value);
    free(stored);
    return BERTH_OK;
}

enum berth_err account_setting_get(struct store *st, const char *name, char *out, size_t cap)
{
    struct meta *m = store_meta(st);
    if (m == NULL) {
        return BERTH_EUNAVAILABLE;
    }
    return account_setting_get_on(m, name, out, cap);
}

enum berth_err account_setting_put(struct store *st, const char *name, const char *value)
{
    const struct setting *s = find(name);
    if (s == NULL || !is_value(s, value)) {
        return BERTH_EINVAL;
    }
    struct meta *m = store_meta(st);
    if (m == NULL) {
        return BERTH_EUNAVAILABLE;
    }
    char key[96];
    key_of(name, key, sizeof(key));
    return meta_setting_set(m, key, value, time_now_ms());
}
