/*
 * Private to server/: authentication and authorization of the running
 * server. Principals and their access keys come from the config file
 * (auth.keys) and from the metadata database (`berth keys create`), read
 * per request so that keys created or deleted while the server runs take
 * effect at once. Identity and repository policies are parsed once and
 * cached by text. Auth tokens (docker login passwords, download URLs) are
 * signed with a key kept in the database. Thread-safe after auth_new.
 *
 * A request is handled in three steps:
 *   auth_lookup(akid, repo)   one indexed query: is auth enforced, the
 *                             key's secret and policy, the repository's policy
 *   verify the credential     SigV4 (ECR API) or Basic / token (/v2)
 *   auth_decide(action)       identity + repository policy, explicit Deny wins
 */
#ifndef BERTH_SERVER_AUTH_H
#define BERTH_SERVER_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/auth/authtoken.h"
#include "server/auth/bearer.h"
#include "server/auth/authz.h"
#include "common/config.h"
#include "storage/meta/meta.h"
#include "server/auth/session.h"
#include "storage/spec/sigv4.h"

struct store;

#define AUTH_NAME_MAX META_PRINCIPAL_MAX  /* principal name: IAM user name rules */
#define AUTH_AKID_MIN 16                  /* access key id, as IAM's */
#define AUTH_AKID_MAX META_ACCESS_KEY_MAX /* <= SIGV4_AKID_MAX, AUTHTOKEN_PRINCIPAL_MAX */
#define AUTH_SECRET_MIN 16
#define AUTH_SECRET_MAX META_KEY_SECRET_MAX /* <= SIGV4_SECRET_MAX */
#define AUTH_ARN_MAX 160                    /* "arn:aws:iam::<12>:user/<name>" */
#define AUTH_GENERATED_AKID_LEN 20          /* "AKIA" + 16 of [A-Z0-9] */
#define AUTH_GENERATED_SECRET_LEN 40        /* base64 of 30 random bytes */
#define AUTH_CONFIG_KEYS_MAX 1000           /* entries in auth.keys */
#define AUTH_REGIONS_MAX 64                 /* entries in auth.regions */
#define AUTH_REGION_MAX 32                  /* one region name */
#define AUTH_DOWNLOAD_TTL_SECONDS 900       /* GetDownloadUrlForLayer URLs */
#define AUTH_POLICY_CACHE_MAX 1024          /* parsed policies kept */
#define AUTH_TOKEN_KEY_NAME "authtoken-key" /* server_secrets row */

struct auth;
struct auth_policy; /* a parsed policy from the cache, reference counted */

/* A key from the config file. */
struct auth_config_key {
    char name[AUTH_NAME_MAX + 1];
    char access_key_id[AUTH_AKID_MAX + 1];
    char secret[AUTH_SECRET_MAX + 1];
    char *permissions; /* display text: the specs, "(policy)", or "" for admin (owned) */
    char *policy;      /* identity policy JSON (owned) */
};

/* Who is calling, once the credential is verified. */
struct auth_identity {
    bool enforced;  /* authentication and authorization apply to this request */
    bool anonymous; /* no (valid) credential */
    char access_key_id[AUTH_AKID_MAX + 1];
    char principal_arn[AUTH_ARN_MAX + 1];
    struct auth_policy *policy; /* identity policy (one reference), NULL when anonymous */
    bool console;               /* authenticated by a web console session: reads browse */
    bool bearer;                /* authenticated by a bearer token: bearer_scope limits it */
    char bearer_scope[AUTHTOKEN_SCOPE_MAX + 1]; /* the token's grants (server/auth/bearer.h) */
};

/* What auth_lookup found. */
struct auth_lookup {
    bool enforced;  /* an access key exists (config or database) or auth is required */
    bool key_found; /* the access key id is known; id and secret are filled */
    char secret[AUTH_SECRET_MAX + 1];
    size_t secret_len;
    struct auth_identity id;
    struct auth_policy *repo_policy;     /* one reference, NULL when none */
    struct auth_policy *registry_policy; /* one reference, NULL when none */
};

/* ---- names and keys (pure) ---- */

/* IAM user name rules: 1..AUTH_NAME_MAX of [A-Za-z0-9+=,.@_-]. */
bool auth_name_valid(const char *name);

/* AUTH_AKID_MIN..AUTH_AKID_MAX of [A-Za-z0-9]. */
bool auth_akid_valid(const char *akid);

/* AUTH_SECRET_MIN..AUTH_SECRET_MAX printable ASCII characters, no space. */
bool auth_secret_valid(const char *secret);

/* "arn:aws:iam::<registry_id>:user/<name>" into out (cap bytes). */
void auth_principal_arn(const char *registry_id, const char *name, char *out, size_t cap);

/* A new access key id ("AKIA" + 16 of [A-Z0-9]) and secret (40 characters of
 * [A-Za-z0-9+/]) from the kernel's random source. BERTH_OK or BERTH_EIO. */
enum berth_err auth_key_generate(char akid[AUTH_GENERATED_AKID_LEN + 1],
                                 char secret[AUTH_GENERATED_SECRET_LEN + 1]);

/* The identity policy for permission specs (none: admin) as new JSON text
 * in *policy and the display text in *permissions (both caller frees).
 * BERTH_EINVAL/BERTH_ETOOBIG with the reason in err; BERTH_ENOMEM. */
enum berth_err auth_specs_policy(const char *const *specs, size_t count, char **policy,
                                 char **permissions, char *err, size_t cap);

/* Parse and validate the config's auth.keys and auth.regions. On success
 * *keys (free with auth_config_keys_free) holds *count keys sorted by access
 * key id. BERTH_EINVAL with a one-line reason in err, BERTH_ENOMEM. */
enum berth_err auth_config_keys(const struct berth_config *cfg, struct auth_config_key **keys,
                                size_t *count, char *err, size_t cap);
void auth_config_keys_free(struct auth_config_key *keys, size_t count);

/* ---- the server's auth state ---- */

/* Build the auth state: load the config keys, the regions and the token
 * signing key (generated and stored in the database on first start).
 * With required, auth is enforced even while no key exists. cfg and st
 * are borrowed and must outlive it. Logs the reason and returns
 * BERTH_EINVAL, BERTH_EDB, BERTH_EIO or BERTH_ENOMEM on failure. */
enum berth_err auth_new(const struct berth_config *cfg, struct store *st, bool required,
                        struct auth **out);
void auth_free(struct auth *a);

/* Look up access key akid (NULL: none; config keys first, then the
 * database), repository repo (NULL: none) and the registry policy with one
 * query, filling out.
 * Release with auth_lookup_fini. BERTH_OK, BERTH_EDB, BERTH_ENOMEM. */
enum berth_err auth_lookup(struct auth *a, struct meta *m, const char *akid, const char *repo,
                           struct auth_lookup *out);

/* Release a lookup's references and wipe its secret. */
void auth_lookup_fini(struct auth *a, struct auth_lookup *l);

/* Move the identity of a lookup into *id (l keeps an anonymous identity).
 * *id must be empty (zeroed or cleared). */
void auth_lookup_take_identity(struct auth_lookup *l, struct auth_identity *id);

/* Release an identity's policy reference and reset it to anonymous. */
void auth_identity_clear(struct auth *a, struct auth_identity *id);

/* Decide whether id may perform action ("ecr:BatchGetImage") on repository
 * repo (NULL: a registry-level action) whose policy is repo_policy (NULL:
 * none), with the registry policy registry_policy (NULL: none): an
 * explicit Deny in any policy wins. Always true when id is not enforced. On denial, when denied is
 * not NULL, AWS's AccessDenied text goes there (AUTHZ_DENIED_MESSAGE_MAX
 * bytes suffice). */
bool auth_decide(struct auth *a, const struct auth_identity *id,
                 const struct auth_policy *repo_policy, const struct auth_policy *registry_policy,
                 const char *action, const char *repo, char *denied, size_t cap);

/* As auth_decide, reading the repository's and the registry's policies
 * first (one query).
 * BERTH_OK with *allowed set, or BERTH_EDB/BERTH_ENOMEM. */
enum berth_err auth_allowed(struct auth *a, struct meta *m, const struct auth_identity *id,
                            const char *action, const char *repo, bool *allowed, char *denied,
                            size_t cap);

/* Issue a token (authtoken_issue) signed with the server key: purpose,
 * principal (access key id), scope (DOWNLOAD only), valid from now for
 * ttl seconds. out needs AUTHTOKEN_MAX_LEN + 1 bytes. */
enum berth_err auth_token_issue(struct auth *a, enum authtoken_purpose purpose,
                                const char *principal, const char *repo, const char *digest,
                                int64_t now, int64_t ttl, char *out, size_t cap);

/* Sign tok (filled by the caller, any purpose) with the server key
 * (authtoken_issue). BERTH_OK, BERTH_EINVAL, BERTH_ETOOBIG. */
enum berth_err auth_token_sign(struct auth *a, const struct authtoken *tok, char *out, size_t cap);

/* Verify a token (authtoken_verify) with the server key. */
enum berth_err auth_token_verify(struct auth *a, const char *token, enum authtoken_purpose purpose,
                                 const char *repo, const char *digest, int64_t now,
                                 struct authtoken *out);

/* The console sessions (server/auth/session.h). Borrowed. */
struct auth_sessions *auth_sessions(struct auth *a);

/* The accepted SigV4 regions (count 0: any). Borrowed. */
const char *const *auth_regions(const struct auth *a, size_t *count);

/* Overwrite n bytes at p with zeros in a way the compiler keeps. */
void auth_wipe(void *p, size_t n);

#endif
