/* Unit tests for storage/meta/auth.c: principals and access keys, the
 * request-path lookup, blob queries for mounts and download URLs, server
 * secrets, and the database file's mode. */
#include "unit.h"
#include "unit_meta.h"

#include <sys/stat.h>

static char root[512]; /* the running test's database directory */

struct row_copy {
    int calls;
    bool has_keys;
    char secret[200];
    char principal[100];
    char policy[200];
    bool repo_found;
    char repo_policy[200];
    bool has_repo_policy;
};

static void copy_row(void *arg, const struct meta_auth_row *row)
{
    struct row_copy *c = arg;
    c->calls++;
    c->has_keys = row->has_keys;
    snprintf(c->secret, sizeof(c->secret), "%s", row->secret ? row->secret : "(none)");
    snprintf(c->principal, sizeof(c->principal), "%s", row->principal ? row->principal : "");
    snprintf(c->policy, sizeof(c->policy), "%s", row->policy ? row->policy : "");
    c->repo_found = row->repo_found;
    c->has_repo_policy = row->repo_policy != NULL;
    snprintf(c->repo_policy, sizeof(c->repo_policy), "%s",
             row->repo_policy ? row->repo_policy : "");
    if (row->secret != NULL) {
        CHECK_INT(row->secret_len, strlen(row->secret));
        CHECK_INT(row->policy_len, strlen(row->policy));
    }
}

static struct row_copy lookup(struct meta *m, const char *akid, const char *repo)
{
    struct row_copy c;
    memset(&c, 0, sizeof(c));
    CHECK_INT(meta_auth_lookup(m, akid, repo, copy_row, &c), BERTH_OK);
    CHECK_INT(c.calls, 1);
    return c;
}

struct listing {
    int n;
    char ids[8][64];
    char names[8][64];
    char perms[8][64];
};

static int list_cb(void *arg, const struct meta_key_info *k)
{
    struct listing *l = arg;
    if (l->n < 8) {
        snprintf(l->ids[l->n], sizeof(l->ids[0]), "%s", k->access_key_id);
        snprintf(l->names[l->n], sizeof(l->names[0]), "%s", k->principal);
        snprintf(l->perms[l->n], sizeof(l->perms[0]), "%s", k->permissions);
        CHECK(k->created_at > 0);
    }
    l->n++;
    return 0;
}

static void test_keys(void)
{
    struct meta *m = unit_meta_new(root, sizeof(root));
    struct row_copy c = lookup(m, "AKIANOSUCHKEY0000000", NULL);
    CHECK(!c.has_keys);
    CHECK_STR(c.secret, "(none)");

    CHECK_INT(meta_key_create(m, "alice", "{\"p\":1}", "", true, "AKIAALICE00000000001",
                              "alice-secret-1", 1000),
              BERTH_OK);
    /* a second key shares the principal and its policy */
    CHECK_INT(meta_key_create(m, "alice", "{\"ignored\":1}", "x", false, "AKIAALICE00000000002",
                              "alice-secret-2", 2000),
              BERTH_OK);
    /* new permissions for an existing principal are refused */
    CHECK_INT(meta_key_create(m, "alice", "{}", "pull", true, "AKIAALICE00000000003", "s3", 3000),
              BERTH_ECONFLICT);
    /* a taken key id */
    CHECK_INT(
        meta_key_create(m, "bob", "{\"b\":1}", "pull", true, "AKIAALICE00000000001", "s", 4000),
        BERTH_EEXIST);
    CHECK_INT(meta_key_create(m, "bob", "{\"b\":1}", "pull", true, "AKIABOB0000000000001",
                              "bob-secret", 5000),
              BERTH_OK);
    /* bounds */
    CHECK_INT(meta_key_create(m, "", "{}", "", true, "AKIAX", "s", 1), BERTH_EINVAL);
    char long_id[META_ACCESS_KEY_MAX + 2];
    memset(long_id, 'A', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    CHECK_INT(meta_key_create(m, "carol", "{}", "", true, long_id, "s", 1), BERTH_EINVAL);

    c = lookup(m, "AKIAALICE00000000002", NULL);
    CHECK(c.has_keys);
    CHECK_STR(c.secret, "alice-secret-2");
    CHECK_STR(c.principal, "alice");
    CHECK_STR(c.policy, "{\"p\":1}");
    c = lookup(m, NULL, NULL);
    CHECK(c.has_keys);
    CHECK_STR(c.secret, "(none)");

    struct listing l;
    memset(&l, 0, sizeof(l));
    CHECK_INT(meta_key_list(m, list_cb, &l), BERTH_OK);
    CHECK_INT(l.n, 3);
    CHECK_STR(l.ids[0], "AKIAALICE00000000001");
    CHECK_STR(l.ids[1], "AKIAALICE00000000002");
    CHECK_STR(l.names[2], "bob");
    CHECK_STR(l.perms[2], "pull");

    /* deleting the last key of a principal deletes the principal */
    CHECK_INT(meta_key_delete(m, "AKIABOB0000000000001"), BERTH_OK);
    CHECK_INT(meta_key_delete(m, "AKIABOB0000000000001"), BERTH_ENOTFOUND);
    CHECK_INT(meta_key_create(m, "bob", "{\"new\":1}", "push", true, "AKIABOB0000000000002",
                              "bob-secret-2", 6000),
              BERTH_OK);
    c = lookup(m, "AKIABOB0000000000002", NULL);
    CHECK_STR(c.policy, "{\"new\":1}");
    CHECK_INT(meta_key_delete(m, "AKIAALICE00000000001"), BERTH_OK);
    c = lookup(m, "AKIAALICE00000000002", NULL);
    CHECK_STR(c.principal, "alice"); /* still has a key */
    CHECK_INT(meta_key_delete(m, "AKIAALICE00000000002"), BERTH_OK);
    CHECK_INT(meta_key_delete(m, "AKIABOB0000000000002"), BERTH_OK);
    c = lookup(m, NULL, NULL);
    CHECK(!c.has_keys);
    unit_meta_remove(m, root);
}

static void test_repository_lookup(void)
{
    struct meta *m = unit_meta_new(root, sizeof(root));
    struct meta_repo r;
    CHECK_INT(meta_repo_create(m, "team/pol", 1000, &r), BERTH_OK);
    struct row_copy c = lookup(m, NULL, "team/pol");
    CHECK(c.repo_found);
    CHECK(!c.has_repo_policy);
    CHECK_INT(meta_repo_set_text(m, r.id, META_REPO_POLICY, "{\"Statement\":[]}"), BERTH_OK);
    c = lookup(m, NULL, "team/pol");
    CHECK(c.has_repo_policy);
    CHECK_STR(c.repo_policy, "{\"Statement\":[]}");
    c = lookup(m, NULL, "team/none");
    CHECK(!c.repo_found);
    CHECK(!c.has_repo_policy);
    unit_meta_remove(m, root);
}

static int collect_name(void *arg, const char *name)
{
    struct listing *l = arg;
    if (l->n < 8) {
        snprintf(l->names[l->n], sizeof(l->names[0]), "%s", name);
    }
    l->n++;
    return 0;
}

static void test_blob_queries(void)
{
    struct meta *m = unit_meta_new(root, sizeof(root));
    const char *layer = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const char *loose = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const char *mdig = "sha256:3333333333333333333333333333333333333333333333333333333333333333";
    struct meta_repo a, b, c;
    CHECK_INT(meta_repo_create(m, "blob/a", 1, &a), BERTH_OK);
    CHECK_INT(meta_repo_create(m, "blob/b", 1, &b), BERTH_OK);
    CHECK_INT(meta_repo_create(m, "blob/c", 1, &c), BERTH_OK);
    int64_t layer_id, loose_id, mblob_id, mid;
    CHECK_INT(meta_blob_upsert(m, layer, 10, 1, &layer_id), BERTH_OK);
    CHECK_INT(meta_blob_upsert(m, loose, 10, 1, &loose_id), BERTH_OK);
    CHECK_INT(meta_blob_upsert(m, mdig, 10, 1, &mblob_id), BERTH_OK);
    CHECK_INT(meta_blob_link(m, b.id, layer_id), BERTH_OK);
    CHECK_INT(meta_blob_link(m, a.id, layer_id), BERTH_OK);
    CHECK_INT(meta_blob_link(m, a.id, loose_id), BERTH_OK);

    struct listing l;
    memset(&l, 0, sizeof(l));
    CHECK_INT(meta_blob_repos(m, layer, 10, collect_name, &l), BERTH_OK);
    CHECK_INT(l.n, 2);
    CHECK_STR(l.names[0], "blob/a");
    CHECK_STR(l.names[1], "blob/b");
    memset(&l, 0, sizeof(l));
    CHECK_INT(meta_blob_repos(m, layer, 1, collect_name, &l), BERTH_OK);
    CHECK_INT(l.n, 1);

    struct meta_manifest mf;
    memset(&mf, 0, sizeof(mf));
    mf.repo_id = a.id;
    mf.blob_id = mblob_id;
    snprintf(mf.digest, sizeof(mf.digest), "%s", mdig);
    snprintf(mf.media_type, sizeof(mf.media_type), "application/vnd.oci.image.manifest.v1+json");
    mf.size = 10;
    mf.pushed_at = 1;
    CHECK_INT(meta_manifest_insert(m, &mf, NULL, &mid), BERTH_OK);
    CHECK_INT(meta_manifest_ref_add(m, mid, layer, META_REF_BLOB, NULL), BERTH_OK);
    bool in = false;
    CHECK_INT(meta_blob_in_image(m, a.id, layer, &in), BERTH_OK);
    CHECK(in);
    CHECK_INT(meta_blob_in_image(m, a.id, loose, &in), BERTH_OK);
    CHECK(!in);
    /* the image is in blob/a; blob/b only links the layer */
    CHECK_INT(meta_blob_in_image(m, b.id, layer, &in), BERTH_OK);
    CHECK(!in);
    unit_meta_remove(m, root);
}

static void test_server_secrets(void)
{
    struct meta *m = unit_meta_new(root, sizeof(root));
    uint8_t buf[64];
    size_t len = 0;
    CHECK_INT(meta_server_secret_get(m, "k", buf, sizeof(buf), &len), BERTH_ENOTFOUND);
    CHECK_INT(meta_server_secret_add(m, "k", "first-value", 11, 1), BERTH_OK);
    /* the first writer wins */
    CHECK_INT(meta_server_secret_add(m, "k", "second", 6, 2), BERTH_OK);
    CHECK_INT(meta_server_secret_get(m, "k", buf, sizeof(buf), &len), BERTH_OK);
    CHECK_INT(len, 11);
    CHECK(memcmp(buf, "first-value", 11) == 0);
    CHECK_INT(meta_server_secret_get(m, "k", buf, 4, &len), BERTH_ETOOBIG);
    CHECK_INT(meta_server_secret_add(m, "e", "", 0, 1), BERTH_EINVAL);
    unit_meta_remove(m, root);
}

static void test_file_mode(void)
{
    if (unit_pg_dsn() != NULL) {
        return; /* the SQLite file's mode; PostgreSQL keeps no file here */
    }
    struct meta *m = unit_meta_new(root, sizeof(root));
    meta_close(m);
    char path[700];
    snprintf(path, sizeof(path), "%s/berth.db", root);
    struct stat sb;
    CHECK_INT(stat(path, &sb), 0);
    CHECK_INT(sb.st_mode & 0777, 0600);
    /* an older store's looser mode is tightened on open */
    CHECK_INT(chmod(path, 0644), 0);
    m = unit_meta_open(root);
    CHECK_INT(stat(path, &sb), 0);
    CHECK_INT(sb.st_mode & 0777, 0600);
    unit_meta_remove(m, root);
}

int main(void)
{
    RUN(test_keys);
    RUN(test_repository_lookup);
    RUN(test_blob_queries);
    RUN(test_server_secrets);
    RUN(test_file_mode);
    return unit_report("test_meta_auth");
}
