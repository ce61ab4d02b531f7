/*
 * Unit tests for storage/meta/session.c: console sessions kept by the hash
 * of their token, seen by every connection (two stand for two replicas),
 * ended by a delete or by their expiry, swept and capped per key as
 * sessions start, and deleted with their access key. Runs on SQLite and
 * (label postgres) on PostgreSQL.
 */
#include "unit.h"
#include "unit_meta.h"

#include "storage/meta/meta_session.h"

static char root[512];

/* A hash made of one repeated hex digit, and a session row. */
static const char *hash_of(char c, char out[META_SESSION_HASH_LEN + 1])
{
    memset(out, c, META_SESSION_HASH_LEN);
    out[META_SESSION_HASH_LEN] = '\0';
    return out;
}

static struct meta_session row(const char *akid, const char *csrf, int64_t now, int64_t ttl)
{
    struct meta_session s;
    memset(&s, 0, sizeof(s));
    snprintf(s.access_key_id, sizeof(s.access_key_id), "%s", akid);
    snprintf(s.csrf, sizeof(s.csrf), "%s", csrf);
    s.created_at = now;
    s.expires_at = now + ttl;
    return s;
}

static int64_t count(struct meta *m)
{
    int64_t n = -1;
    CHECK_INT(meta_session_count(m, &n), BERTH_OK);
    return n;
}

static void test_shared_and_ended(void)
{
    struct meta *a = unit_meta_open(root);
    struct meta *b = unit_meta_open(root); /* another replica's connection */
    char h1[META_SESSION_HASH_LEN + 1], h2[META_SESSION_HASH_LEN + 1];
    hash_of('1', h1);
    hash_of('2', h2);
    struct meta_session s = row("AKIAEXAMPLE000000001", "csrf-one", 1000, 60), got;
    CHECK_INT(meta_session_create(a, h1, &s, 1000, 8), BERTH_OK);
    /* the other connection sees it */
    memset(&got, 0, sizeof(got));
    CHECK_INT(meta_session_get(b, h1, 1001, &got), BERTH_OK);
    CHECK_STR(got.access_key_id, "AKIAEXAMPLE000000001");
    CHECK_STR(got.csrf, "csrf-one");
    CHECK_INT(got.created_at, 1000);
    CHECK_INT(got.expires_at, 1060);
    /* expired at its expiry, on either connection */
    CHECK_INT(meta_session_get(b, h1, 1059, &got), BERTH_OK);
    CHECK_INT(meta_session_get(b, h1, 1060, &got), BERTH_ENOTFOUND);
    CHECK_INT(meta_session_get(a, h1, 1060, &got), BERTH_ENOTFOUND);
    /* an unknown or malformed hash is simply not found */
    CHECK_INT(meta_session_get(a, h2, 1000, &got), BERTH_ENOTFOUND);
    CHECK_INT(meta_session_get(a, "nothex", 1000, &got), BERTH_ENOTFOUND);
    /* the same hash twice is refused, the first row unchanged */
    struct meta_session dup = row("AKIAEXAMPLE000000002", "csrf-two", 1000, 60);
    CHECK_INT(meta_session_create(b, h1, &dup, 1000, 8), BERTH_EEXIST);
    CHECK_INT(meta_session_get(a, h1, 1000, &got), BERTH_OK);
    CHECK_STR(got.access_key_id, "AKIAEXAMPLE000000001");
    /* an anonymous session ("" as its key) */
    struct meta_session anon = row("", "csrf-anon", 1000, 60);
    CHECK_INT(meta_session_create(b, h2, &anon, 1000, 8), BERTH_OK);
    CHECK_INT(meta_session_get(a, h2, 1000, &got), BERTH_OK);
    CHECK_STR(got.access_key_id, "");
    /* ended on one connection: gone for the other */
    CHECK_INT(meta_session_delete(b, h1), BERTH_OK);
    CHECK_INT(meta_session_get(a, h1, 1000, &got), BERTH_ENOTFOUND);
    CHECK_INT(meta_session_delete(b, h1), BERTH_OK);
    CHECK_INT(meta_session_get(a, h2, 1000, &got), BERTH_OK);
    CHECK_INT(count(a), 1);
    /* bad input */
    struct meta_session bad = row("AKIAEXAMPLE000000001", "", 1000, 60);
    CHECK_INT(meta_session_create(a, hash_of('3', h1), &bad, 1000, 8), BERTH_EINVAL);
    bad = row("AKIAEXAMPLE000000001", "x", 1000, 0);
    CHECK_INT(meta_session_create(a, h1, &bad, 1000, 8), BERTH_EINVAL);
    bad = row("AKIAEXAMPLE000000001", "x", 1000, 10);
    CHECK_INT(meta_session_create(a, h1, &bad, 1000, 0), BERTH_EINVAL);
    CHECK_INT(meta_session_create(a, "ABC", &bad, 1000, 1), BERTH_EINVAL);
    CHECK_INT(count(a), 1);
    CHECK_INT(meta_session_delete(a, h2), BERTH_OK);
    meta_close(a);
    meta_close(b);
}

/* Starting a session deletes expired rows of every key and keeps at most
 * cap live sessions of its own key, those that expire last. */
static void test_sweep_and_cap(void)
{
    struct meta *m = unit_meta_open(root);
    char h[META_SESSION_HASH_LEN + 1];
    const char digits[] = "0123456789abcdef";
    /* key 1: sessions expiring at 1010, 1020, 1030 (cap 3) */
    for (int i = 0; i < 3; i++) {
        struct meta_session s = row("AKIAEXAMPLE000000001", "c", 1000, 10 * (i + 1));
        CHECK_INT(meta_session_create(m, hash_of(digits[i], h), &s, 1000, 3), BERTH_OK);
    }
    /* key 2 and anonymous: one each, expiring at 1005 */
    struct meta_session s2 = row("AKIAEXAMPLE000000002", "c", 1000, 5);
    CHECK_INT(meta_session_create(m, hash_of('a', h), &s2, 1000, 3), BERTH_OK);
    struct meta_session sa = row("", "c", 1000, 5);
    CHECK_INT(meta_session_create(m, hash_of('b', h), &sa, 1000, 3), BERTH_OK);
    CHECK_INT(count(m), 5);
    /* a fourth of key 1 (expiring at 1100): the one expiring first goes */
    struct meta_session s = row("AKIAEXAMPLE000000001", "c", 1000, 100);
    CHECK_INT(meta_session_create(m, hash_of('3', h), &s, 1000, 3), BERTH_OK);
    struct meta_session got;
    CHECK_INT(meta_session_get(m, hash_of('0', h), 1000, &got), BERTH_ENOTFOUND);
    CHECK_INT(meta_session_get(m, hash_of('1', h), 1000, &got), BERTH_OK);
    CHECK_INT(meta_session_get(m, hash_of('3', h), 1000, &got), BERTH_OK);
    CHECK_INT(meta_session_get(m, hash_of('a', h), 1000, &got), BERTH_OK);
    CHECK_INT(count(m), 5);
    /* at 1006 a new session of key 3 sweeps key 2's and the anonymous one */
    struct meta_session s3 = row("AKIAEXAMPLE000000003", "c", 1006, 100);
    CHECK_INT(meta_session_create(m, hash_of('c', h), &s3, 1006, 3), BERTH_OK);
    CHECK_INT(count(m), 4);
    CHECK_INT(meta_session_get(m, hash_of('a', h), 1000, &got), BERTH_ENOTFOUND);
    CHECK_INT(meta_session_get(m, hash_of('b', h), 1000, &got), BERTH_ENOTFOUND);
    /* deleting a key's sessions leaves the others */
    int64_t n = -1;
    CHECK_INT(meta_session_delete_key(m, "AKIAEXAMPLE000000001", &n), BERTH_OK);
    CHECK_INT(n, 3);
    CHECK_INT(count(m), 1);
    CHECK_INT(meta_session_delete_key(m, "AKIAEXAMPLE000000003", NULL), BERTH_OK);
    CHECK_INT(count(m), 0);
    meta_close(m);
}

/* Deleting an access key ends its sessions, for every connection. */
static void test_key_delete_ends_sessions(void)
{
    struct meta *a = unit_meta_open(root);
    struct meta *b = unit_meta_open(root);
    CHECK_INT(meta_key_create(a, "alice", "{}", "admin", false, "AKIASESSIONKEY000001",
                              "secret-secret-secret-1", 1000),
              BERTH_OK);
    CHECK_INT(meta_key_create(a, "bob", "{}", "admin", false, "AKIASESSIONKEY000002",
                              "secret-secret-secret-2", 1000),
              BERTH_OK);
    char h1[META_SESSION_HASH_LEN + 1], h2[META_SESSION_HASH_LEN + 1];
    struct meta_session s1 = row("AKIASESSIONKEY000001", "c1", 1000, 600);
    struct meta_session s2 = row("AKIASESSIONKEY000002", "c2", 1000, 600);
    CHECK_INT(meta_session_create(a, hash_of('d', h1), &s1, 1000, 8), BERTH_OK);
    CHECK_INT(meta_session_create(a, hash_of('e', h2), &s2, 1000, 8), BERTH_OK);
    struct meta_session got;
    CHECK_INT(meta_session_get(b, h1, 1001, &got), BERTH_OK);
    CHECK_INT(meta_key_delete(a, "AKIASESSIONKEY000001"), BERTH_OK);
    CHECK_INT(meta_session_get(b, h1, 1001, &got), BERTH_ENOTFOUND);
    CHECK_INT(meta_session_get(b, h2, 1001, &got), BERTH_OK);
    /* an unknown key deletes nothing */
    CHECK_INT(meta_key_delete(b, "AKIASESSIONKEY000009"), BERTH_ENOTFOUND);
    CHECK_INT(meta_session_get(a, h2, 1001, &got), BERTH_OK);
    CHECK_INT(meta_key_delete(b, "AKIASESSIONKEY000002"), BERTH_OK);
    CHECK_INT(count(a), 0);
    meta_close(a);
    meta_close(b);
}

int main(void)
{
    snprintf(root, sizeof(root), "%s", unit_tmpdir());
    RUN(test_shared_and_ended);
    RUN(test_sweep_and_cap);
    RUN(test_key_delete_ends_sessions);
    file_remove_tree(root);
    return unit_report("test_meta_session");
}
