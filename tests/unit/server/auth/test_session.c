/* Unit tests for server/auth/session.c: the cookie, the CSRF check, expiry,
 * sign-out, sessions kept in the store's metadata (seen through another
 * table of sessions, and after the store is reopened: a restart), only a
 * hash of the token stored, and the cap per key. */
#include "unit.h"
#include "unit_store.h"

#include "server/auth/session.c"

static char root[UNIT_ROOT_MAX];

#define NOW 1795686637

static void test_cookie(void)
{
    char tok[AUTH_SESSION_TOKEN_LEN + 1];
    char hex[AUTH_SESSION_TOKEN_LEN + 1];
    memset(hex, 'a', AUTH_SESSION_TOKEN_LEN);
    hex[AUTH_SESSION_TOKEN_LEN] = '\0';
    char h[256];
    snprintf(h, sizeof(h), "berth_session=%s", hex);
    CHECK(auth_session_cookie(h, tok));
    CHECK_STR(tok, hex);
    snprintf(h, sizeof(h), "theme=dark; other_berth_session=x;  berth_session=%s ; z=1", hex);
    CHECK(auth_session_cookie(h, tok));
    CHECK_STR(tok, hex);
    snprintf(h, sizeof(h), "xberth_session=%s", hex);
    CHECK(!auth_session_cookie(h, tok));
    snprintf(h, sizeof(h), "berth_session=%sA", hex); /* too long */
    CHECK(!auth_session_cookie(h, tok));
    hex[3] = 'G'; /* not lower-case hex */
    snprintf(h, sizeof(h), "berth_session=%s", hex);
    CHECK(!auth_session_cookie(h, tok));
    CHECK(!auth_session_cookie("berth_session=", tok));
    CHECK(!auth_session_cookie("", tok));
    CHECK(!auth_session_cookie(NULL, tok));
    /* named: any berth_session cookie, well-formed or not; no lookup */
    CHECK(auth_session_named("a=b; berth_session=zz"));
    CHECK(auth_session_named(h));
    CHECK(!auth_session_named("a=b"));
    CHECK(!auth_session_named(""));
    CHECK(!auth_session_named(NULL));
}

static void test_lifecycle(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    struct auth_sessions *s = auth_sessions_new(st);
    struct auth_sessions *other = auth_sessions_new(st); /* another replica's */
    CHECK(s != NULL && other != NULL);
    char tok[AUTH_SESSION_TOKEN_LEN + 1], tok2[AUTH_SESSION_TOKEN_LEN + 1];
    struct auth_session made, got;
    CHECK_INT(auth_session_create(s, "AKIAEXAMPLE000000001", NOW, 60, tok, &made), BERTH_OK);
    CHECK_INT(auth_session_create(s, "AKIAEXAMPLE000000002", NOW, 60, tok2, &got), BERTH_OK);
    CHECK(strcmp(tok, tok2) != 0);
    CHECK(strcmp(made.csrf, got.csrf) != 0);
    CHECK(strcmp(tok, made.csrf) != 0);
    CHECK_INT(made.expires, NOW + 60);
    char cookie[128];
    snprintf(cookie, sizeof(cookie), "a=b; berth_session=%s", tok);

    CHECK_INT(auth_session_check(s, "a=b", true, made.csrf, NOW, &got), AUTH_SESSION_NONE);
    CHECK_INT(auth_session_check(s, NULL, false, NULL, NOW, &got), AUTH_SESSION_NONE);
    CHECK_INT(auth_session_check(s, cookie, false, NULL, NOW, &got), AUTH_SESSION_OK);
    CHECK_STR(got.access_key_id, "AKIAEXAMPLE000000001");
    CHECK_STR(got.csrf, made.csrf);
    CHECK_INT(got.expires, NOW + 60);
    /* the other table reads the same row */
    memset(&got, 0, sizeof(got));
    CHECK_INT(auth_session_check(other, cookie, true, made.csrf, NOW + 59, &got), AUTH_SESSION_OK);
    CHECK_STR(got.access_key_id, "AKIAEXAMPLE000000001");
    CHECK_INT(auth_session_check(s, cookie, true, NULL, NOW, &got), AUTH_SESSION_CSRF);
    CHECK_INT(auth_session_check(s, cookie, true, "", NOW, &got), AUTH_SESSION_CSRF);
    char wrong[AUTH_SESSION_TOKEN_LEN + 1];
    memcpy(wrong, made.csrf, sizeof(wrong));
    wrong[0] = wrong[0] == '0' ? '1' : '0';
    CHECK_INT(auth_session_check(s, cookie, true, wrong, NOW, &got), AUTH_SESSION_CSRF);
    /* another session's CSRF token is no good either */
    CHECK_INT(auth_session_check(s, cookie, true, tok2, NOW, &got), AUTH_SESSION_CSRF);
    CHECK_INT(auth_session_check(s, "berth_session=zz", false, NULL, NOW, &got),
              AUTH_SESSION_INVALID);

    /* the database holds a hash of the token, never the token */
    struct meta *m = store_meta(st);
    struct meta_session row;
    char hash[META_SESSION_HASH_LEN + 1];
    CHECK_INT(meta_session_get(m, tok, NOW, &row), BERTH_ENOTFOUND);
    CHECK_INT(token_hash(tok, hash), BERTH_OK);
    CHECK(strcmp(hash, tok) != 0);
    CHECK_INT(meta_session_get(m, hash, NOW, &row), BERTH_OK);
    CHECK_STR(row.csrf, made.csrf);

    /* expiry: gone at NOW + ttl */
    CHECK_INT(auth_session_check(s, cookie, false, NULL, NOW + 60, &got), AUTH_SESSION_INVALID);

    /* a restart (the store closed and opened again) keeps both sessions */
    auth_sessions_free(s);
    auth_sessions_free(other);
    store_close(st);
    st = unit_store_open(root);
    s = auth_sessions_new(st);
    other = auth_sessions_new(st);
    CHECK_INT(auth_session_check(s, cookie, true, made.csrf, NOW + 1, &got), AUTH_SESSION_OK);
    CHECK_STR(got.access_key_id, "AKIAEXAMPLE000000001");

    /* sign-out through one table ends only that session, for both */
    snprintf(cookie, sizeof(cookie), "berth_session=%s", tok2);
    CHECK_INT(auth_session_check(other, cookie, false, NULL, NOW, &got), AUTH_SESSION_OK);
    CHECK_INT(auth_session_end(s, cookie), BERTH_OK);
    CHECK_INT(auth_session_check(other, cookie, false, NULL, NOW, &got), AUTH_SESSION_INVALID);
    CHECK_INT(auth_session_check(s, cookie, false, NULL, NOW, &got), AUTH_SESSION_INVALID);
    CHECK_INT(auth_session_end(s, cookie), BERTH_OK); /* twice: nothing to end */
    CHECK_INT(auth_session_end(s, "a=b"), BERTH_OK);
    snprintf(cookie, sizeof(cookie), "berth_session=%s", tok);
    CHECK_INT(auth_session_check(other, cookie, false, NULL, NOW, &got), AUTH_SESSION_OK);
    CHECK_INT(auth_session_create(s, "", NOW, 0, tok, &made), BERTH_EINVAL);
    auth_sessions_free(s);
    auth_sessions_free(other);
    unit_store_remove(st, root);
}

/* A key keeps at most AUTH_SESSIONS_PER_KEY sessions: the one that expires
 * first makes room; other keys' and anonymous sessions are not touched. */
static void test_cap_per_key(void)
{
    struct store *st = unit_store_new(root, sizeof(root));
    struct auth_sessions *s = auth_sessions_new(st);
    char tok[AUTH_SESSION_TOKEN_LEN + 1], first[AUTH_SESSION_TOKEN_LEN + 1];
    char other[AUTH_SESSION_TOKEN_LEN + 1], anon[AUTH_SESSION_TOKEN_LEN + 1];
    struct auth_session made;
    CHECK_INT(auth_session_create(s, "AKIAEXAMPLE000000002", NOW, 5, other, &made), BERTH_OK);
    CHECK_INT(auth_session_create(s, "", NOW, 5, anon, &made), BERTH_OK);
    CHECK_STR(made.access_key_id, "");
    CHECK_INT(auth_session_create(s, "AKIAEXAMPLE000000001", NOW, 10, first, &made), BERTH_OK);
    for (int i = 1; i < AUTH_SESSIONS_PER_KEY; i++) {
        CHECK_INT(auth_session_create(s, "AKIAEXAMPLE000000001", NOW, 100 + i, tok, &made),
                  BERTH_OK);
    }
    char cookie[128];
    snprintf(cookie, sizeof(cookie), "berth_session=%s", first);
    CHECK_INT(auth_session_check(s, cookie, false, NULL, NOW, &made), AUTH_SESSION_OK);
    CHECK_INT(auth_session_create(s, "AKIAEXAMPLE000000001", NOW, 1000, tok, &made), BERTH_OK);
    CHECK_INT(auth_session_check(s, cookie, false, NULL, NOW, &made), AUTH_SESSION_INVALID);
    int64_t n = 0;
    CHECK_INT(meta_session_count(store_meta(st), &n), BERTH_OK);
    CHECK_INT(n, AUTH_SESSIONS_PER_KEY + 2);
    snprintf(cookie, sizeof(cookie), "berth_session=%s", other);
    CHECK_INT(auth_session_check(s, cookie, false, NULL, NOW, &made), AUTH_SESSION_OK);
    snprintf(cookie, sizeof(cookie), "berth_session=%s", anon);
    CHECK_INT(auth_session_check(s, cookie, false, NULL, NOW, &made), AUTH_SESSION_OK);
    CHECK_STR(made.access_key_id, "");
    /* a session started after those expired sweeps them */
    CHECK_INT(auth_session_create(s, "AKIAEXAMPLE000000003", NOW + 5, 10, tok, &made), BERTH_OK);
    CHECK_INT(meta_session_count(store_meta(st), &n), BERTH_OK);
    CHECK_INT(n, AUTH_SESSIONS_PER_KEY + 1);
    auth_sessions_free(s);
    unit_store_remove(st, root);
}

int main(void)
{
    RUN(test_cookie);
    RUN(test_lifecycle);
    RUN(test_cap_per_key);
    return unit_report("test_session");
}
