/*
 * Authentication and authorization state of the running server: config
 * keys, the per-request lookup of database keys and repository policies,
 * the cache of parsed policies, decisions, and the token signing key.
 * Thread-safe after auth_new (the policy cache takes a mutex for a few
 * pointer operations; parsing happens outside it). See server/auth/auth.h.
 */
#include "server/auth/auth.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/base64.h"
#include "common/fault.h"
#include "common/log.h"
#include "common/rand.h"
#include "storage/store/store.h"
#include "common/str.h"
#include "common/timeutil.h"

#define CACHE_BUCKETS 512

/* A parsed policy, shared by every request whose policy has this text. */
struct auth_policy {
    struct auth_policy *next; /* hash chain */
    uint64_t hash;
    enum authz_policy_kind kind;
    unsigned refs;               /* callers' references, + 1 for the table */
    struct authz_policy *parsed; /* NULL: the text is invalid and grants nothing */
    size_t len;
    char text[];
};

struct policy_cache {
    pthread_mutex_t lock;
    struct auth_policy *buckets[CACHE_BUCKETS];
    size_t count;
};

struct auth {
    const struct berth_config *cfg;
    struct store *store;
    bool required;
    struct auth_config_key *keys; /* sorted by access key id */
    struct auth_policy **key_policies;
    size_t key_count;
    const char *regions[AUTH_REGIONS_MAX]; /* borrowed from cfg */
    size_t region_count;
    uint8_t token_key[AUTHTOKEN_KEY_MAX];
    size_t token_key_len;
    struct policy_cache cache;
    struct auth_sessions *sessions; /* console sessions (owned) */
};

void auth_wipe(void *p, size_t n)
{
    memset(p, 0, n);
    /* The barrier makes the compiler assume the zeroed bytes are read, so
     * the memset of a buffer about to die is not optimised away. */
    __asm__ __volatile__("" : : "r"(p) : "memory");
}

/* ---- names and keys ---- */

bool auth_name_valid(const char *name)
{
    size_t n = 0;
    for (const char *p = name; *p; p++, n++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr("+=,.@_-", c) != NULL;
        if (!ok || n >= AUTH_NAME_MAX) {
            return false;
        }
    }
    return n > 0;
}

bool auth_akid_valid(const char *akid)
{
    size_t n = 0;
    for (const char *p = akid; *p; p++, n++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) ||
            n >= AUTH_AKID_MAX) {
            return false;
        }
    }
    return n >= AUTH_AKID_MIN;
}

bool auth_secret_valid(const char *secret)
{
    size_t n = 0;
    for (const char *p = secret; *p; p++, n++) {
        if (*p <= ' ' || *p > '~' || n >= AUTH_SECRET_MAX) {
            return false;
        }
    }
    return n >= AUTH_SECRET_MIN;
}

void auth_principal_arn(const char *registry_id, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "arn:aws:iam::%s:user/%s", registry_id, name);
}

enum berth_err auth_key_generate(char akid[AUTH_GENERATED_AKID_LEN + 1],
                                 char secret[AUTH_GENERATED_SECRET_LEN + 1])
{
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    enum { ALNUM = sizeof(alnum) - 1, LIMIT = 256 / ALNUM * ALNUM };
    uint8_t raw[64];
    size_t o = 4;
    memcpy(akid, "AKIA", 4);
    /* Rejection sampling keeps every character equally likely. */
    while (o < AUTH_GENERATED_AKID_LEN) {
        if (rand_bytes(raw, sizeof(raw)) != BERTH_OK) {
            return BERTH_EIO;
        }
        for (size_t i = 0; i < sizeof(raw) && o < AUTH_GENERATED_AKID_LEN; i++) {
            if (raw[i] < LIMIT) {
                akid[o++] = alnum[raw[i] % ALNUM];
            }
        }
    }
    akid[o] = '\0';
    uint8_t bytes[AUTH_GENERATED_SECRET_LEN / 4 * 3];
    char enc[AUTH_GENERATED_SECRET_LEN + 1];
    if (rand_bytes(bytes, sizeof(bytes)) != BERTH_OK) {
        return BERTH_EIO;
    }
    base64_encode(bytes, sizeof(bytes), enc);
    memcpy(secret, enc, AUTH_GENERATED_SECRET_LEN + 1);
    auth_wipe(bytes, sizeof(bytes));
    auth_wipe(enc, sizeof(enc));
    auth_wipe(raw, sizeof(raw));
    return BERTH_OK;
}

enum berth_err auth_specs_policy(const char *const *specs, size_t count, char **policy,
                                 char **permissions, char *err, size_t cap)
{
    char *json = NULL;
    enum berth_err rc = authz_spec_to_policy(specs, count, &json, err, cap);
    if (rc != BERTH_OK) {
        return rc;
    }
    size_t len = 1;
    for (size_t i = 0; i < count; i++) {
        len += strlen(specs[i]) + 1;
    }
    char *text = malloc(len);
    if (text == NULL) {
        free(json);
        return BERTH_ENOMEM;
    }
    size_t o = 0;
    for (size_t i = 0; i < count; i++) {
        size_t n = strlen(specs[i]);
        if (o > 0) {
            text[o++] = ' ';
        }
        memcpy(text + o, specs[i], n);
        o += n;
    }
    text[o] = '\0';
    *policy = json;
    *permissions = text;
    return BERTH_OK;
}

/* ---- config keys ---- */

void auth_config_keys_free(struct auth_config_key *keys, size_t count)
{
    if (keys == NULL) {
        return;
    }
    for (size_t i = 0; i < count; i++) {
        free(keys[i].permissions);
        free(keys[i].policy);
    }
    auth_wipe(keys, count * sizeof(*keys));
    free(keys);
}

static const char *string_member(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v)
               ? json_string_value(v)
               : NULL;
}

/* The permissions member of a config key: absent (admin), a list of
 * permission specs, or an identity policy object. */
static enum berth_err key_permissions(json_t *perms, struct auth_config_key *k, size_t index,
                                      char *err, size_t cap)
{
    char detail[AUTHZ_DETAIL_MAX];
    if (perms == NULL) {
        return auth_specs_policy(NULL, 0, &k->policy, &k->permissions, err, cap);
    }
    if (json_is_array(perms)) {
        size_t n = json_array_size(perms);
        const char *specs[AUTHZ_SPECS_MAX];
        if (n == 0 || n > AUTHZ_SPECS_MAX) {
            snprintf(err, cap,
                     "config: auth.keys[%zu].permissions must list 1 to %d permission specs "
                     "(omit it for an administrator key)",
                     index, AUTHZ_SPECS_MAX);
            return BERTH_EINVAL;
        }
        for (size_t i = 0; i < n; i++) {
            json_t *v = json_array_get(perms, i);
            if (!json_is_string(v)) {
                snprintf(err, cap, "config: auth.keys[%zu].permissions[%zu] must be a string",
                         index, i);
                return BERTH_EINVAL;
            }
            specs[i] = json_string_value(v);
        }
        enum berth_err rc =
            auth_specs_policy(specs, n, &k->policy, &k->permissions, detail, sizeof(detail));
        if (rc == BERTH_EINVAL || rc == BERTH_ETOOBIG) {
            snprintf(err, cap, "config: auth.keys[%zu].permissions: %s", index, detail);
            return BERTH_EINVAL;
        }
        return rc;
    }
    if (!json_is_object(perms)) {
        snprintf(err, cap,
                 "config: auth.keys[%zu].permissions must be a list of permission specs or an "
                 "identity policy object",
                 index);
        return BERTH_EINVAL;
    }
    char *text = json_dumps(perms, JSON_COMPACT);
    if (text == NULL) {
        return BERTH_ENOMEM;
    }
    struct authz_policy *p = NULL;
    enum berth_err rc =
        authz_policy_parse(text, strlen(text), AUTHZ_IDENTITY_POLICY, &p, detail, sizeof(detail));
    authz_policy_free(p);
    if (rc == BERTH_EINVAL || rc == BERTH_ETOOBIG) {
        snprintf(err, cap, "config: auth.keys[%zu].permissions: invalid identity policy: %s", index,
                 detail);
        free(text);
        return BERTH_EINVAL;
    }
    if (rc != BERTH_OK) {
        free(text);
        return rc;
    }
    k->permissions = strdup("(identity policy)");
    if (k->permissions == NULL) {
        free(text);
        return BERTH_ENOMEM;
    }
    k->policy = text;
    return BERTH_OK;
}

static enum berth_err parse_key(json_t *obj, size_t index, struct auth_config_key *k, char *err,
                                size_t cap)
{
    if (!json_is_object(obj)) {
        snprintf(err, cap, "config: auth.keys[%zu] must be an object", index);
        return BERTH_EINVAL;
    }
    const char *member;
    json_t *v;
    json_object_foreach(obj, member, v)
    {
        if (strcmp(member, "name") != 0 && strcmp(member, "access_key_id") != 0 &&
            strcmp(member, "secret_access_key") != 0 && strcmp(member, "permissions") != 0) {
            char shown[80];
            snprintf(err, cap,
                     "config: auth.keys[%zu]: unknown member '%s' (expected name, "
                     "access_key_id, secret_access_key, permissions)",
                     index, log_value(member, shown, sizeof(shown)));
            return BERTH_EINVAL;
        }
    }
    const char *name = string_member(obj, "name");
    const char *akid = string_member(obj, "access_key_id");
    const char *secret = string_member(obj, "secret_access_key");
    if (name == NULL || !auth_name_valid(name)) {
        snprintf(err, cap,
                 "config: auth.keys[%zu].name must be 1 to %d characters of A-Z a-z 0-9 "
                 "+=,.@_-",
                 index, AUTH_NAME_MAX);
        return BERTH_EINVAL;
    }
    if (akid == NULL || !auth_akid_valid(akid)) {
        snprintf(err, cap,
                 "config: auth.keys[%zu].access_key_id must be %d to %d letters and digits", index,
                 AUTH_AKID_MIN, AUTH_AKID_MAX);
        return BERTH_EINVAL;
    }
    /* The message never quotes the secret. */
    if (secret == NULL || !auth_secret_valid(secret)) {
        snprintf(err, cap,
                 "config: auth.keys[%zu].secret_access_key must be %d to %d printable "
                 "characters without spaces",
                 index, AUTH_SECRET_MIN, AUTH_SECRET_MAX);
        return BERTH_EINVAL;
    }
    str_copy(k->name, sizeof(k->name), name);
    str_copy(k->access_key_id, sizeof(k->access_key_id), akid);
    str_copy(k->secret, sizeof(k->secret), secret);
    return key_permissions(json_object_get(obj, "permissions"), k, index, err, cap);
}

static int key_cmp(const void *a, const void *b)
{
    const struct auth_config_key *x = a, *y = b;
    return strcmp(x->access_key_id, y->access_key_id);
}

static bool region_valid(const char *r)
{
    size_t n = 0;
    for (const char *p = r; *p; p++, n++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-') ||
            n >= AUTH_REGION_MAX) {
            return false;
        }
    }
    return n > 0;
}

enum berth_err auth_config_keys(const struct berth_config *cfg, struct auth_config_key **keys,
                                size_t *count, char *err, size_t cap)
{
    if (cfg->auth_regions != NULL) {
        if (!json_is_array(cfg->auth_regions) ||
            json_array_size(cfg->auth_regions) > AUTH_REGIONS_MAX) {
            snprintf(err, cap, "config: auth.regions must be a list of at most %d regions",
                     AUTH_REGIONS_MAX);
            return BERTH_EINVAL;
        }
        size_t i;
        json_t *r;
        json_array_foreach(cfg->auth_regions, i, r)
        {
            if (!json_is_string(r) || !region_valid(json_string_value(r))) {
                snprintf(err, cap,
                         "config: auth.regions[%zu] must be a region name (a-z, 0-9, '-', at "
                         "most %d characters)",
                         i, AUTH_REGION_MAX);
                return BERTH_EINVAL;
            }
        }
    }
    *keys = NULL;
    *count = 0;
    json_t *list = cfg->auth_keys;
    if (list == NULL || json_is_null(list)) {
        return BERTH_OK;
    }
    if (!json_is_array(list) || json_array_size(list) > AUTH_CONFIG_KEYS_MAX) {
        snprintf(err, cap, "config: auth.keys must be a list of at most %d key objects",
                 AUTH_CONFIG_KEYS_MAX);
        return BERTH_EINVAL;
    }
    size_t n = json_array_size(list);
    if (n == 0) {
        return BERTH_OK;
    }
    struct auth_config_key *k = calloc(n, sizeof(*k));
    if (k == NULL) {
        return BERTH_ENOMEM;
    }
    enum berth_err rc = BERTH_OK;
    for (size_t i = 0; i < n && rc == BERTH_OK; i++) {
        rc = parse_key(json_array_get(list, i), i, &k[i], err, cap);
    }
    if (rc == BERTH_OK) {
        qsort(k, n, sizeof(*k), key_cmp);
        for (size_t i = 1; i < n; i++) {
            if (strcmp(k[i - 1].access_key_id, k[i].access_key_id) == 0) {
                snprintf(err, cap, "config: auth.keys: access key id %s appears twice",
                         k[i].access_key_id);
                rc = BERTH_EINVAL;
                break;
            }
        }
    }
    if (rc != BERTH_OK) {
        if (rc == BERTH_ENOMEM) {
            snprintf(err, cap, "config: out of memory");
        }
        auth_config_keys_free(k, n);
        return rc;
    }
    *keys = k;
    *count = n;
    return BERTH_OK;
}

/* ---- the policy cache ---- */

static uint64_t text_hash(enum authz_policy_kind kind, const char *text, size_t len)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)kind;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)text[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void policy_destroy(struct auth_policy *p)
{
    authz_policy_free(p->parsed);
    free(p);
}

/* Drop every table entry nobody holds (under the lock). */
static void cache_evict(struct policy_cache *c)
{
    for (size_t b = 0; b < CACHE_BUCKETS; b++) {
        struct auth_policy **pp = &c->buckets[b];
        while (*pp != NULL) {
            struct auth_policy *p = *pp;
            if (p->refs == 1) {
                *pp = p->next;
                c->count--;
                policy_destroy(p);
            } else {
                pp = &p->next;
            }
        }
    }
}

static struct auth_policy *cache_find(struct policy_cache *c, uint64_t h,
                                      enum authz_policy_kind kind, const char *text, size_t len)
{
    for (struct auth_policy *p = c->buckets[h % CACHE_BUCKETS]; p != NULL; p = p->next) {
        if (p->hash == h && p->kind == kind && p->len == len && memcmp(p->text, text, len) == 0) {
            return p;
        }
    }
    return NULL;
}

/* A reference to the parsed form of text (len bytes). BERTH_ENOMEM only:
 * an invalid text gives an entry that grants nothing (logged once). */
static enum berth_err cache_get(struct policy_cache *c, enum authz_policy_kind kind,
                                const char *text, size_t len, struct auth_policy **out)
{
    uint64_t h = text_hash(kind, text, len);
    pthread_mutex_lock(&c->lock);
    struct auth_policy *p = cache_find(c, h, kind, text, len);
    if (p != NULL) {
        p->refs++;
        pthread_mutex_unlock(&c->lock);
        *out = p;
        return BERTH_OK;
    }
    pthread_mutex_unlock(&c->lock);

    struct auth_policy *fresh = malloc(sizeof(*fresh) + len + 1);
    if (fresh == NULL) {
        return BERTH_ENOMEM;
    }
    memset(fresh, 0, sizeof(*fresh));
    fresh->hash = h;
    fresh->kind = kind;
    fresh->len = len;
    memcpy(fresh->text, text, len);
    fresh->text[len] = '\0';
    char detail[AUTHZ_DETAIL_MAX] = "";
    enum berth_err rc = authz_policy_parse(text, len, kind, &fresh->parsed, detail, sizeof(detail));
    if (rc == BERTH_ENOMEM) {
        free(fresh);
        return BERTH_ENOMEM;
    }
    if (rc != BERTH_OK) {
        char shown[AUTHZ_DETAIL_MAX + 16];
        log_error("event=stored_policy_invalid kind=%s detail=%s",
                  kind == AUTHZ_IDENTITY_POLICY ? "identity" : "repository",
                  log_value(detail, shown, sizeof(shown)));
        fresh->parsed = NULL;
    }

    pthread_mutex_lock(&c->lock);
    p = cache_find(c, h, kind, text, len);
    if (p != NULL) {
        /* Another thread parsed the same text meanwhile: use its entry. */
        p->refs++;
        pthread_mutex_unlock(&c->lock);
        policy_destroy(fresh);
        *out = p;
        return BERTH_OK;
    }
    if (c->count >= AUTH_POLICY_CACHE_MAX) {
        cache_evict(c);
    }
    fresh->refs = 2; /* the table's and the caller's */
    fresh->next = c->buckets[h % CACHE_BUCKETS];
    c->buckets[h % CACHE_BUCKETS] = fresh;
    c->count++;
    pthread_mutex_unlock(&c->lock);
    *out = fresh;
    return BERTH_OK;
}

static void cache_put(struct policy_cache *c, struct auth_policy *p)
{
    if (p == NULL) {
        return;
    }
    pthread_mutex_lock(&c->lock);
    bool last = --p->refs == 0;
    pthread_mutex_unlock(&c->lock);
    /* The table holds a reference until eviction, which only takes
     * entries nobody else holds, so this is a safety net. */
    if (last) {
        policy_destroy(p);
    }
}

static struct auth_policy *cache_ref(struct policy_cache *c, struct auth_policy *p)
{
    pthread_mutex_lock(&c->lock);
    p->refs++;
    pthread_mutex_unlock(&c->lock);
    return p;
}

/* ---- the auth state ---- */

struct principal_clash {
    const struct auth *a;
    char name[AUTH_NAME_MAX + 1]; /* a config principal that has database keys, or "" */
};

static int find_clash(void *arg, const struct meta_key_info *key)
{
    struct principal_clash *c = arg;
    for (size_t i = 0; i < c->a->key_count; i++) {
        if (strcmp(c->a->keys[i].name, key->principal) == 0) {
            str_copy(c->name, sizeof(c->name), key->principal);
            return 1;
        }
    }
    return 0;
}

/* A principal of the config file (auth.keys) must not also have keys in
 * the database: one ARN would then carry two identity policies, and which
 * one a request got would depend on the key it came with. `berth keys
 * create` refuses such a name when it is given the config; one created
 * without it is refused here, at start. */
static enum berth_err check_principals(const struct auth *a)
{
    if (a->key_count == 0) {
        return BERTH_OK;
    }
    struct meta *m = store_meta(a->store);
    if (m == NULL) {
        return BERTH_EUNAVAILABLE;
    }
    struct principal_clash c = {.a = a};
    enum berth_err rc = meta_key_list(m, find_clash, &c);
    if (rc == BERTH_OK && c.name[0] != '\0') {
        log_error("event=auth_error msg=\"principal '%s' is in the config file (auth.keys) and "
                  "has access keys in the database: remove it from one of them (berth keys "
                  "list; berth keys delete ACCESS_KEY_ID)\"",
                  c.name);
        rc = BERTH_ECONFLICT;
    }
    return rc;
}

static enum berth_err load_token_key(struct auth *a)
{
    struct meta *m = store_meta(a->store);
    if (m == NULL) {
        return BERTH_EUNAVAILABLE;
    }
    size_t len = 0;
    enum berth_err rc =
        meta_server_secret_get(m, AUTH_TOKEN_KEY_NAME, a->token_key, sizeof(a->token_key), &len);
    if (rc == BERTH_ENOTFOUND) {
        uint8_t key[AUTHTOKEN_KEY_LEN];
        rc = authtoken_key_generate(key);
        if (rc == BERTH_OK) {
            rc = meta_server_secret_add(m, AUTH_TOKEN_KEY_NAME, key, sizeof(key), time_now_ms());
        }
        auth_wipe(key, sizeof(key));
        if (rc == BERTH_OK) {
            /* Read back: with two servers starting at once, the first
             * insert wins and both use its key. */
            rc = meta_server_secret_get(m, AUTH_TOKEN_KEY_NAME, a->token_key, sizeof(a->token_key),
                                        &len);
        }
        if (rc == BERTH_OK) {
            log_info("event=token_key_created");
        }
    }
    if (rc == BERTH_OK && (len < AUTHTOKEN_KEY_MIN || len > AUTHTOKEN_KEY_MAX)) {
        log_error("event=auth_error msg=\"stored token signing key has a bad length\" len=%zu",
                  len);
        rc = BERTH_EINVAL;
    }
    if (rc == BERTH_OK) {
        a->token_key_len = len;
    }
    return rc;
}

enum berth_err auth_new(const struct berth_config *cfg, struct store *st, bool required,
                        struct auth **out)
{
    struct auth *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return BERTH_ENOMEM;
    }
    pthread_mutex_init(&a->cache.lock, NULL);
    a->cfg = cfg;
    a->store = st;
    a->required = required;
    a->sessions = auth_sessions_new(st);
    if (a->sessions == NULL) {
        auth_free(a);
        return BERTH_ENOMEM;
    }
    char err[512];
    enum berth_err rc = auth_config_keys(cfg, &a->keys, &a->key_count, err, sizeof(err));
    if (rc != BERTH_OK) {
        char shown[600];
        log_error("event=auth_error msg=%s", log_value(err, shown, sizeof(shown)));
        goto out;
    }
    if (a->key_count > 0) {
        a->key_policies = calloc(a->key_count, sizeof(*a->key_policies));
        if (a->key_policies == NULL) {
            rc = BERTH_ENOMEM;
            goto out;
        }
    }
    for (size_t i = 0; i < a->key_count; i++) {
        rc = cache_get(&a->cache, AUTHZ_IDENTITY_POLICY, a->keys[i].policy,
                       strlen(a->keys[i].policy), &a->key_policies[i]);
        if (rc != BERTH_OK) {
            goto out;
        }
    }
    if (cfg->auth_regions != NULL) {
        size_t i;
        json_t *r;
        json_array_foreach(cfg->auth_regions, i, r)
        {
            a->regions[a->region_count++] = json_string_value(r);
        }
    }
    rc = check_principals(a);
    if (rc != BERTH_OK) {
        goto out;
    }
    rc = load_token_key(a);
    if (rc != BERTH_OK) {
        log_error("event=auth_error msg=\"cannot load the token signing key\" err=%s",
                  berth_strerror(rc));
        goto out;
    }
    *out = a;
    return BERTH_OK;
out:
    auth_free(a);
    return rc;
}

struct auth_sessions *auth_sessions(struct auth *a)
{
    return a->sessions;
}

void auth_free(struct auth *a)
{
    if (a == NULL) {
        return;
    }
    auth_sessions_free(a->sessions);
    for (size_t i = 0; a->key_policies != NULL && i < a->key_count; i++) {
        cache_put(&a->cache, a->key_policies[i]);
    }
    free(a->key_policies);
    for (size_t b = 0; b < CACHE_BUCKETS; b++) {
        struct auth_policy *p = a->cache.buckets[b];
        while (p != NULL) {
            struct auth_policy *next = p->next;
            policy_destroy(p);
            p = next;
        }
    }
    pthread_mutex_destroy(&a->cache.lock);
    auth_config_keys_free(a->keys, a->key_count);
    auth_wipe(a->token_key, sizeof(a->token_key));
    free(a);
}

const char *const *auth_regions(const struct auth *a, size_t *count)
{
    *count = a->region_count;
    return a->regions;
}

static const struct auth_config_key *config_key(const struct auth *a, const char *akid,
                                                size_t *index)
{
    size_t lo = 0, hi = a->key_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(akid, a->keys[mid].access_key_id);
        if (c == 0) {
            *index = mid;
            return &a->keys[mid];
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return NULL;
}

struct lookup_ctx {
    struct auth *a;
    struct auth_lookup *out;
    const char *akid;
    enum berth_err rc;
};

static void lookup_row(void *arg, const struct meta_auth_row *row)
{
    struct lookup_ctx *c = arg;
    struct auth_lookup *out = c->out;
    out->enforced = out->enforced || row->has_keys;
    if (row->secret != NULL && row->secret_len <= AUTH_SECRET_MAX &&
        strlen(row->principal) <= AUTH_NAME_MAX) {
        enum berth_err rc = cache_get(&c->a->cache, AUTHZ_IDENTITY_POLICY, row->policy,
                                      row->policy_len, &out->id.policy);
        if (rc != BERTH_OK) {
            c->rc = rc;
            return;
        }
        out->key_found = true;
        memcpy(out->secret, row->secret, row->secret_len);
        out->secret[row->secret_len] = '\0';
        out->secret_len = row->secret_len;
        str_copy(out->id.access_key_id, sizeof(out->id.access_key_id), c->akid);
        auth_principal_arn(c->a->cfg->registry_id, row->principal, out->id.principal_arn,
                           sizeof(out->id.principal_arn));
    }
    if (row->repo_policy != NULL && row->repo_policy_len > 0) {
        enum berth_err rc = cache_get(&c->a->cache, AUTHZ_REPOSITORY_POLICY, row->repo_policy,
                                      row->repo_policy_len, &out->repo_policy);
        if (rc != BERTH_OK) {
            c->rc = rc;
        }
    }
    if (row->registry_policy != NULL && row->registry_policy_len > 0) {
        enum berth_err rc = cache_get(&c->a->cache, AUTHZ_REGISTRY_POLICY, row->registry_policy,
                                      row->registry_policy_len, &out->registry_policy);
        if (rc != BERTH_OK) {
            c->rc = rc;
        }
    }
}

enum berth_err auth_lookup(struct auth *a, struct meta *m, const char *akid, const char *repo,
                           struct auth_lookup *out)
{
    memset(out, 0, sizeof(*out));
    out->id.anonymous = true;
    out->enforced = a->required || a->key_count > 0;
    size_t index = 0;
    const struct auth_config_key *ck = NULL;
    if (akid != NULL && (strlen(akid) > AUTH_AKID_MAX || *akid == '\0')) {
        akid = NULL; /* cannot name a key */
    }
    if (akid != NULL) {
        ck = config_key(a, akid, &index);
    }
    struct lookup_ctx c = {.a = a, .out = out, .akid = akid, .rc = BERTH_OK};
    /* the fault stands in for a lookup that cannot run (EMFILE) */
    enum berth_err rc = fault_injected("auth_lookup")
                            ? BERTH_ENOFD
                            : meta_auth_lookup(m, ck != NULL ? NULL : akid, repo, lookup_row, &c);
    if (rc == BERTH_OK) {
        rc = c.rc;
    }
    if (rc == BERTH_OK && ck != NULL) {
        out->key_found = true;
        out->secret_len = strlen(ck->secret);
        memcpy(out->secret, ck->secret, out->secret_len + 1);
        str_copy(out->id.access_key_id, sizeof(out->id.access_key_id), ck->access_key_id);
        auth_principal_arn(a->cfg->registry_id, ck->name, out->id.principal_arn,
                           sizeof(out->id.principal_arn));
        out->id.policy = cache_ref(&a->cache, a->key_policies[index]);
    }
    out->id.enforced = out->enforced;
    if (rc != BERTH_OK) {
        auth_lookup_fini(a, out);
    }
    return rc;
}

void auth_lookup_fini(struct auth *a, struct auth_lookup *l)
{
    auth_identity_clear(a, &l->id);
    cache_put(&a->cache, l->repo_policy);
    l->repo_policy = NULL;
    cache_put(&a->cache, l->registry_policy);
    l->registry_policy = NULL;
    auth_wipe(l->secret, sizeof(l->secret));
    l->secret_len = 0;
    l->key_found = false;
}

void auth_lookup_take_identity(struct auth_lookup *l, struct auth_identity *id)
{
    *id = l->id;
    id->anonymous = false;
    bool enforced = l->id.enforced;
    memset(&l->id, 0, sizeof(l->id));
    l->id.enforced = enforced;
    l->id.anonymous = true;
}

void auth_identity_clear(struct auth *a, struct auth_identity *id)
{
    if (id->policy != NULL) {
        cache_put(&a->cache, id->policy);
    }
    bool enforced = id->enforced;
    memset(id, 0, sizeof(*id));
    id->enforced = enforced;
    id->anonymous = true;
}

bool auth_decide(struct auth *a, const struct auth_identity *id,
                 const struct auth_policy *repo_policy, const struct auth_policy *registry_policy,
                 const char *action, const char *repo, char *denied, size_t cap)
{
    if (!id->enforced) {
        return true;
    }
    char arn[NAMES_REPO_MAX + 128];
    if (repo != NULL) {
        snprintf(arn, sizeof(arn), "arn:aws:ecr:%s:%s:repository/%s", a->cfg->registry_region,
                 a->cfg->registry_id, repo);
    }
    struct authz_request r = {
        .principal_arn = id->anonymous ? NULL : id->principal_arn,
        .identity = (id->anonymous || id->policy == NULL) ? NULL : id->policy->parsed,
        .repository_policy = repo_policy != NULL ? repo_policy->parsed : NULL,
        .registry_policy = registry_policy != NULL ? registry_policy->parsed : NULL,
        .action = action,
        .repository = repo,
        .repository_arn = repo != NULL ? arn : NULL,
    };
    if (authz_decide(&r, NULL) == AUTHZ_ALLOW) {
        return true;
    }
    if (denied != NULL && cap > 0) {
        authz_denied_message(r.principal_arn, action, repo != NULL ? arn : NULL, denied, cap);
    }
    return false;
}

struct policy_ctx {
    struct auth *a;
    struct auth_policy *policy;
    struct auth_policy *registry;
    enum berth_err rc;
};

static void policy_row(void *arg, const struct meta_auth_row *row)
{
    struct policy_ctx *c = arg;
    if (row->repo_policy != NULL && row->repo_policy_len > 0) {
        c->rc = cache_get(&c->a->cache, AUTHZ_REPOSITORY_POLICY, row->repo_policy,
                          row->repo_policy_len, &c->policy);
    }
    if (c->rc == BERTH_OK && row->registry_policy != NULL && row->registry_policy_len > 0) {
        c->rc = cache_get(&c->a->cache, AUTHZ_REGISTRY_POLICY, row->registry_policy,
                          row->registry_policy_len, &c->registry);
    }
}

enum berth_err auth_allowed(struct auth *a, struct meta *m, const struct auth_identity *id,
                            const char *action, const char *repo, bool *allowed, char *denied,
                            size_t cap)
{
    if (!id->enforced) {
        *allowed = true;
        return BERTH_OK;
    }
    struct policy_ctx c = {.a = a, .policy = NULL, .registry = NULL, .rc = BERTH_OK};
    enum berth_err rc = fault_injected("auth_policy")
                            ? BERTH_ENOFD
                            : meta_auth_lookup(m, NULL, repo, policy_row, &c);
    if (rc == BERTH_OK) {
        rc = c.rc;
    }
    if (rc == BERTH_OK) {
        *allowed = auth_decide(a, id, c.policy, c.registry, action, repo, denied, cap);
    }
    cache_put(&a->cache, c.policy);
    cache_put(&a->cache, c.registry);
    return rc;
}

enum berth_err auth_token_issue(struct auth *a, enum authtoken_purpose purpose,
                                const char *principal, const char *repo, const char *digest,
                                int64_t now, int64_t ttl, char *out, size_t cap)
{
    struct authtoken tok;
    memset(&tok, 0, sizeof(tok));
    tok.purpose = purpose;
    tok.issued = now;
    tok.expires = now + ttl;
    if (str_copy(tok.principal, sizeof(tok.principal), principal) != BERTH_OK ||
        (repo != NULL && str_copy(tok.repository, sizeof(tok.repository), repo) != BERTH_OK) ||
        (digest != NULL && str_copy(tok.digest, sizeof(tok.digest), digest) != BERTH_OK)) {
        return BERTH_EINVAL;
    }
    return authtoken_issue(a->token_key, a->token_key_len, &tok, out, cap);
}

enum berth_err auth_token_sign(struct auth *a, const struct authtoken *tok, char *out, size_t cap)
{
    return authtoken_issue(a->token_key, a->token_key_len, tok, out, cap);
}

enum berth_err auth_token_verify(struct auth *a, const char *token, enum authtoken_purpose purpose,
                                 const char *repo, const char *digest, int64_t now,
                                 struct authtoken *out)
{
    return authtoken_verify(a->token_key, a->token_key_len, token, purpose, repo, digest, now, out);
}
