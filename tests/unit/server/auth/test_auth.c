/* Unit tests for server/auth/auth.c: name and key rules, key generation,
 * permission specs, config keys, the policy cache, the token key kept in
 * the database, lookups and decisions. Includes the .c for the cache. */
#include "unit.h"

#include "server/auth/auth.c"

#include "common/fileio.h"

static char root[600];

static struct store *open_store(void)
{
    struct store_options opt = {.root = root,
                                .fsync = false,
                                .auto_create = true,
                                .upload_expiry_ms = 86400000,
                                .manifest_max = 4 << 20};
    struct store *st = NULL;
    CHECK_INT(store_open(&opt, &st), BERTH_OK);
    return st;
}

static void test_rules(void)
{
    CHECK(auth_name_valid("ci-bot+deploy=x,y.z@corp_1"));
    CHECK(!auth_name_valid(""));
    CHECK(!auth_name_valid("has space"));
    CHECK(!auth_name_valid("slash/name"));
    char name[AUTH_NAME_MAX + 2];
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    CHECK(!auth_name_valid(name));
    name[AUTH_NAME_MAX] = '\0';
    CHECK(auth_name_valid(name));

    CHECK(auth_akid_valid("AKIAABCDEFGHIJKLMNOP"));
    CHECK(auth_akid_valid("akid0123456789ab"));
    CHECK(!auth_akid_valid("AKIA0123456789A")); /* 15 */
    CHECK(!auth_akid_valid("AKIA-123456789ABCD"));
    char akid[AUTH_AKID_MAX + 2];
    memset(akid, 'A', sizeof(akid) - 1);
    akid[sizeof(akid) - 1] = '\0';
    CHECK(!auth_akid_valid(akid));
    akid[AUTH_AKID_MAX] = '\0';
    CHECK(auth_akid_valid(akid));

    CHECK(auth_secret_valid("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"));
    CHECK(!auth_secret_valid("short-secret"));
    CHECK(!auth_secret_valid("with a space in the middle"));
    CHECK(!auth_secret_valid("tab\tinside-the-secret-value"));
    CHECK(!auth_secret_valid("caf\xc3\xa9-is-not-ascii-at-all"));

    char arn[AUTH_ARN_MAX];
    auth_principal_arn("123456789012", "ci", arn, sizeof(arn));
    CHECK_STR(arn, "arn:aws:iam::123456789012:user/ci");
}

static void test_key_generate(void)
{
    char a1[AUTH_GENERATED_AKID_LEN + 1], s1[AUTH_GENERATED_SECRET_LEN + 1];
    char a2[AUTH_GENERATED_AKID_LEN + 1], s2[AUTH_GENERATED_SECRET_LEN + 1];
    CHECK_INT(auth_key_generate(a1, s1), BERTH_OK);
    CHECK_INT(auth_key_generate(a2, s2), BERTH_OK);
    CHECK_INT(strlen(a1), 20);
    CHECK_INT(strlen(s1), 40);
    CHECK(strncmp(a1, "AKIA", 4) == 0);
    for (size_t i = 4; i < 20; i++) {
        CHECK((a1[i] >= 'A' && a1[i] <= 'Z') || (a1[i] >= '0' && a1[i] <= '9'));
    }
    for (size_t i = 0; i < 40; i++) {
        char ch = s1[i];
        CHECK((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '+' || ch == '/');
    }
    CHECK(strcmp(a1, a2) != 0);
    CHECK(strcmp(s1, s2) != 0);
    CHECK(auth_akid_valid(a1));
    CHECK(auth_secret_valid(s1));
}

static void test_specs(void)
{
    char *policy = NULL, *perms = NULL, err[256] = "";
    CHECK_INT(auth_specs_policy(NULL, 0, &policy, &perms, err, sizeof(err)), BERTH_OK);
    CHECK_STR(perms, "");
    CHECK(strstr(policy, "ecr:*") != NULL);
    free(policy);
    free(perms);
    const char *specs[] = {"pull:team/*", "push:team/app"};
    CHECK_INT(auth_specs_policy(specs, 2, &policy, &perms, err, sizeof(err)), BERTH_OK);
    CHECK_STR(perms, "pull:team/* push:team/app");
    struct authz_policy *p = NULL;
    CHECK_INT(authz_policy_parse(policy, strlen(policy), AUTHZ_IDENTITY_POLICY, &p, NULL, 0),
              BERTH_OK);
    authz_policy_free(p);
    free(policy);
    free(perms);
    const char *bad[] = {"fly:team"};
    policy = perms = NULL;
    CHECK_INT(auth_specs_policy(bad, 1, &policy, &perms, err, sizeof(err)), BERTH_EINVAL);
    CHECK(policy == NULL && perms == NULL);
    CHECK(err[0] != '\0');
}

/* Parse auth.keys/auth.regions from JSON text; returns the rc and err. */
static enum berth_err load_keys(const char *json, struct auth_config_key **keys, size_t *n,
                                char *err, size_t cap)
{
    struct berth_config cfg;
    CHECK_INT(config_init(&cfg), BERTH_OK);
    json_t *doc = json_loads(json, 0, NULL);
    CHECK(doc != NULL);
    cfg.auth_keys = json_object_get(doc, "keys");
    cfg.auth_regions = json_object_get(doc, "regions");
    enum berth_err rc = auth_config_keys(&cfg, keys, n, err, cap);
    json_decref(doc);
    config_fini(&cfg);
    return rc;
}

static void test_config_keys(void)
{
    struct auth_config_key *k = NULL;
    size_t n = 0;
    char err[512];
    CHECK_INT(
        load_keys("{\"keys\":[{\"name\":\"b\",\"access_key_id\":\"AKIDBBBBBBBBBBBBBBBB\","
                  "\"secret_access_key\":\"bbbbbbbbbbbbbbbbbbbb\",\"permissions\":[\"pull\"]},"
                  "{\"name\":\"a\",\"access_key_id\":\"AKIDAAAAAAAAAAAAAAAA\","
                  "\"secret_access_key\":\"aaaaaaaaaaaaaaaaaaaa\"},"
                  "{\"name\":\"c\",\"access_key_id\":\"AKIDCCCCCCCCCCCCCCCC\","
                  "\"secret_access_key\":\"cccccccccccccccccccc\",\"permissions\":"
                  "{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"ecr:List*\","
                  "\"Resource\":\"*\"}}}],\"regions\":[\"eu-west-1\"]}",
                  &k, &n, err, sizeof(err)),
        BERTH_OK);
    CHECK_INT(n, 3);
    if (n == 3) {
        CHECK_STR(k[0].access_key_id, "AKIDAAAAAAAAAAAAAAAA"); /* sorted */
        CHECK_STR(k[0].permissions, "");
        CHECK_STR(k[1].permissions, "pull");
        CHECK_STR(k[2].permissions, "(identity policy)");
        CHECK(strstr(k[2].policy, "ecr:List*") != NULL);
        CHECK_STR(k[1].secret, "bbbbbbbbbbbbbbbbbbbb");
    }
    auth_config_keys_free(k, n);

    static const struct {
        const char *json;
        const char *expect;
    } bad[] = {
        {"{\"keys\":{}}", "auth.keys must be a list"},
        {"{\"keys\":[1]}", "auth.keys[0] must be an object"},
        {"{\"keys\":[{\"name\":\"a b\",\"access_key_id\":\"AKIDAAAAAAAAAAAAAAAA\","
         "\"secret_access_key\":\"topsecretvalue000000\"}]}",
         "auth.keys[0].name"},
        {"{\"keys\":[{\"name\":\"a\",\"access_key_id\":\"short\","
         "\"secret_access_key\":\"topsecretvalue000000\"}]}",
         "auth.keys[0].access_key_id"},
        {"{\"keys\":[{\"name\":\"a\",\"access_key_id\":\"AKIDAAAAAAAAAAAAAAAA\","
         "\"secret_access_key\":\"top secret value 000\"}]}",
         "auth.keys[0].secret_access_key"},
        {"{\"keys\":[{\"name\":\"a\",\"access_key_id\":\"AKIDAAAAAAAAAAAAAAAA\","
         "\"secret_access_key\":\"topsecretvalue000000\",\"secret\":\"x\"}]}",
         "unknown member 'secret'"},
        {"{\"keys\":[{\"name\":\"a\",\"access_key_id\":\"AKIDAAAAAAAAAAAAAAAA\","
         "\"secret_access_key\":\"topsecretvalue000000\",\"permissions\":[]}]}",
         "permissions must list"},
        {"{\"keys\":[{\"name\":\"a\",\"access_key_id\":\"AKIDAAAAAAAAAAAAAAAA\","
         "\"secret_access_key\":\"topsecretvalue000000\",\"permissions\":[\"fly\"]}]}",
         "auth.keys[0].permissions"},
        {"{\"keys\":[{\"name\":\"a\",\"access_key_id\":\"AKIDAAAAAAAAAAAAAAAA\","
         "\"secret_access_key\":\"topsecretvalue000000\",\"permissions\":{\"Statement\":"
         "{\"Effect\":\"Allow\",\"Action\":\"ecr:*\",\"Resource\":\"*\",\"Condition\":{}}}}]}",
         "invalid identity policy"},
        {"{\"keys\":[{\"name\":\"a\",\"access_key_id\":\"AKIDAAAAAAAAAAAAAAAA\","
         "\"secret_access_key\":\"topsecretvalue000000\"},{\"name\":\"b\",\"access_key_id\":"
         "\"AKIDAAAAAAAAAAAAAAAA\",\"secret_access_key\":\"topsecretvalue000001\"}]}",
         "appears twice"},
        {"{\"regions\":[\"EU\"]}", "auth.regions[0]"},
        {"{\"regions\":\"eu-west-1\"}", "auth.regions must be a list"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        k = NULL;
        n = 0;
        CHECK_INT(load_keys(bad[i].json, &k, &n, err, sizeof(err)), BERTH_EINVAL);
        CHECK(k == NULL && n == 0);
        if (strstr(err, bad[i].expect) == NULL) {
            fprintf(stderr, "case %zu: '%s' lacks '%s'\n", i, err, bad[i].expect);
            CHECK(0);
        }
        CHECK(strstr(err, "topsecretvalue") == NULL); /* never quoted */
    }
}

static void test_cache(void)
{
    struct policy_cache c;
    memset(&c, 0, sizeof(c));
    pthread_mutex_init(&c.lock, NULL);
    const char *text = "{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"ecr:*\","
                       "\"Resource\":\"*\"}}";
    struct auth_policy *a = NULL, *b = NULL, *r = NULL, *bad = NULL;
    CHECK_INT(cache_get(&c, AUTHZ_IDENTITY_POLICY, text, strlen(text), &a), BERTH_OK);
    CHECK_INT(cache_get(&c, AUTHZ_IDENTITY_POLICY, text, strlen(text), &b), BERTH_OK);
    CHECK(a == b);
    CHECK_INT(a->refs, 3);
    CHECK(a->parsed != NULL);
    /* the same text as another kind is another entry (and grants nothing:
     * a repository policy needs a Principal) */
    CHECK_INT(cache_get(&c, AUTHZ_REPOSITORY_POLICY, text, strlen(text), &r), BERTH_OK);
    CHECK(r != a);
    CHECK(r->parsed == NULL);
    CHECK_INT(cache_get(&c, AUTHZ_IDENTITY_POLICY, "not json", 8, &bad), BERTH_OK);
    CHECK(bad->parsed == NULL);
    CHECK_INT(c.count, 3);
    cache_put(&c, b);
    cache_put(&c, r);
    cache_put(&c, bad);
    CHECK_INT(a->refs, 2);
    /* fill past the limit: unreferenced entries are evicted, held ones stay */
    for (int i = 0; i < AUTH_POLICY_CACHE_MAX + 10; i++) {
        char t[200];
        snprintf(t, sizeof(t),
                 "{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"ecr:ListImages\","
                 "\"Resource\":\"r%d\"}}",
                 i);
        struct auth_policy *p = NULL;
        CHECK_INT(cache_get(&c, AUTHZ_IDENTITY_POLICY, t, strlen(t), &p), BERTH_OK);
        cache_put(&c, p);
    }
    CHECK(c.count <= AUTH_POLICY_CACHE_MAX);
    CHECK(cache_find(&c, a->hash, AUTHZ_IDENTITY_POLICY, text, strlen(text)) == a);
    CHECK_INT(a->refs, 2);
    cache_put(&c, a);
    for (size_t i = 0; i < CACHE_BUCKETS; i++) {
        struct auth_policy *p = c.buckets[i];
        while (p != NULL) {
            struct auth_policy *next = p->next;
            policy_destroy(p);
            p = next;
        }
    }
    pthread_mutex_destroy(&c.lock);
}

static void test_state(void)
{
    struct berth_config cfg;
    CHECK_INT(config_init(&cfg), BERTH_OK);
    json_t *doc = json_loads("{\"keys\":[{\"name\":\"cfg\",\"access_key_id\":"
                             "\"AKIDCONFIG0000000001\",\"secret_access_key\":"
                             "\"config-secret-0000000\",\"permissions\":[\"pull:team/*\"]}]}",
                             0, NULL);
    cfg.auth_keys = json_object_get(doc, "keys");
    struct store *st = open_store();
    struct meta *m = store_meta(st);
    struct auth *a = NULL;
    CHECK_INT(auth_new(&cfg, st, false, &a), BERTH_OK);
    if (a == NULL) {
        store_close(st);
        json_decref(doc);
        config_fini(&cfg);
        return;
    }

    /* a token issued now verifies with a second instance: the key persists */
    char token[AUTHTOKEN_MAX_LEN + 1];
    CHECK_INT(auth_token_issue(a, AUTHTOKEN_LOGIN, "AKIDCONFIG0000000001", NULL, NULL, 1000, 60,
                               token, sizeof(token)),
              BERTH_OK);
    struct auth *again = NULL;
    CHECK_INT(auth_new(&cfg, st, false, &again), BERTH_OK);
    struct authtoken tok;
    CHECK_INT(auth_token_verify(again, token, AUTHTOKEN_LOGIN, NULL, NULL, 1030, &tok), BERTH_OK);
    CHECK_STR(tok.principal, "AKIDCONFIG0000000001");
    CHECK_INT(auth_token_verify(again, token, AUTHTOKEN_LOGIN, NULL, NULL, 1060, &tok),
              BERTH_EDENIED);
    auth_free(again);

    /* a config key */
    struct auth_lookup lk;
    CHECK_INT(auth_lookup(a, m, "AKIDCONFIG0000000001", "team/app", &lk), BERTH_OK);
    CHECK(lk.enforced && lk.key_found);
    CHECK_STR(lk.secret, "config-secret-0000000");
    CHECK_STR(lk.id.principal_arn, "arn:aws:iam::000000000000:user/cfg");
    CHECK(lk.id.anonymous); /* until the caller verifies the credential */
    struct auth_identity id;
    memset(&id, 0, sizeof(id));
    auth_lookup_take_identity(&lk, &id);
    CHECK(!id.anonymous && id.enforced);
    CHECK(auth_decide(a, &id, lk.repo_policy, NULL, "ecr:BatchGetImage", "team/app", NULL, 0));
    char denied[AUTHZ_DENIED_MESSAGE_MAX];
    CHECK(!auth_decide(a, &id, lk.repo_policy, NULL, "ecr:PutImage", "team/app", denied,
                       sizeof(denied)));
    CHECK_STR(denied, "User: arn:aws:iam::000000000000:user/cfg is not authorized to perform: "
                      "ecr:PutImage on resource: "
                      "arn:aws:ecr:us-east-1:000000000000:repository/team/app");
    CHECK(auth_decide(a, &id, NULL, NULL, "ecr:GetAuthorizationToken", NULL, NULL, 0));
    auth_lookup_fini(a, &lk);
    CHECK(lk.secret[0] == '\0');

    /* a database key and a repository policy that denies it */
    CHECK_INT(meta_key_create(m, "db",
                              "{\"Statement\":{\"Effect\":\"Allow\",\"Action\":\"ecr:*\","
                              "\"Resource\":\"*\"}}",
                              "", true, "AKIADATABASE00000001", "db-secret-00000000000", 1),
              BERTH_OK);
    struct meta_repo repo;
    CHECK_INT(meta_repo_create(m, "team/locked", 1, &repo), BERTH_OK);
    CHECK_INT(meta_repo_set_text(m, repo.id, META_REPO_POLICY,
                                 "{\"Statement\":[{\"Effect\":\"Deny\",\"Principal\":{\"AWS\":"
                                 "\"arn:aws:iam::000000000000:user/db\"},\"Action\":"
                                 "\"ecr:PutImage\"},{\"Effect\":\"Allow\",\"Principal\":\"*\","
                                 "\"Action\":\"ecr:BatchGetImage\"}]}"),
              BERTH_OK);
    CHECK_INT(auth_lookup(a, m, "AKIADATABASE00000001", "team/locked", &lk), BERTH_OK);
    CHECK(lk.key_found && lk.repo_policy != NULL);
    CHECK_STR(lk.secret, "db-secret-00000000000");
    struct auth_identity dbid;
    memset(&dbid, 0, sizeof(dbid));
    auth_lookup_take_identity(&lk, &dbid);
    CHECK(auth_decide(a, &dbid, lk.repo_policy, NULL, "ecr:BatchGetImage", "team/locked", NULL, 0));
    CHECK(!auth_decide(a, &dbid, lk.repo_policy, NULL, "ecr:PutImage", "team/locked", NULL, 0));
    /* anonymous callers get what Principal "*" grants, nothing more */
    struct auth_identity anon = {.enforced = true, .anonymous = true};
    CHECK(auth_decide(a, &anon, lk.repo_policy, NULL, "ecr:BatchGetImage", "team/locked", NULL, 0));
    CHECK(!auth_decide(a, &anon, lk.repo_policy, NULL, "ecr:ListImages", "team/locked", NULL, 0));
    bool allowed = false;
    CHECK_INT(auth_allowed(a, m, &anon, "ecr:BatchGetImage", "team/locked", &allowed, NULL, 0),
              BERTH_OK);
    CHECK(allowed);
    CHECK_INT(auth_allowed(a, m, &anon, "ecr:BatchGetImage", "team/open", &allowed, NULL, 0),
              BERTH_OK);
    CHECK(!allowed);
    struct auth_identity off = {.enforced = false, .anonymous = true};
    CHECK_INT(auth_allowed(a, m, &off, "ecr:DeleteRepository", "team/locked", &allowed, NULL, 0),
              BERTH_OK);
    CHECK(allowed);
    auth_lookup_fini(a, &lk);
    auth_identity_clear(a, &dbid);
    auth_identity_clear(a, &id);
    CHECK(id.policy == NULL && id.anonymous && id.enforced);

    /* unknown keys; odd ids never reach the database */
    CHECK_INT(auth_lookup(a, m, "AKIANOSUCHKEY0000000", NULL, &lk), BERTH_OK);
    CHECK(lk.enforced && !lk.key_found);
    auth_lookup_fini(a, &lk);
    CHECK_INT(auth_lookup(a, m, "", NULL, &lk), BERTH_OK);
    CHECK(!lk.key_found);
    auth_lookup_fini(a, &lk);
    auth_free(a);

    /* without config keys: enforced only while database keys exist, or
     * when required */
    json_decref(doc);
    cfg.auth_keys = NULL;
    CHECK_INT(auth_new(&cfg, st, false, &a), BERTH_OK);
    CHECK_INT(auth_lookup(a, m, NULL, NULL, &lk), BERTH_OK);
    CHECK(lk.enforced); /* the database key above */
    auth_lookup_fini(a, &lk);
    CHECK_INT(meta_key_delete(m, "AKIADATABASE00000001"), BERTH_OK);
    CHECK_INT(auth_lookup(a, m, NULL, NULL, &lk), BERTH_OK);
    CHECK(!lk.enforced && !lk.id.enforced);
    auth_lookup_fini(a, &lk);
    auth_free(a);
    CHECK_INT(auth_new(&cfg, st, true, &a), BERTH_OK);
    CHECK_INT(auth_lookup(a, m, NULL, NULL, &lk), BERTH_OK);
    CHECK(lk.enforced);
    auth_lookup_fini(a, &lk);
    auth_free(a);
    store_close(st);
    config_fini(&cfg);
}

int main(void)
{
    char parent[512];
    snprintf(parent, sizeof(parent), "%s", unit_tmpdir());
    snprintf(root, sizeof(root), "%s/data", parent);
    RUN(test_rules);
    RUN(test_key_generate);
    RUN(test_specs);
    RUN(test_config_keys);
    RUN(test_cache);
    RUN(test_state);
    file_remove_tree(parent);
    return unit_report("test_auth");
}
