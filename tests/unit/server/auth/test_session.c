/* Unit tests for server/auth/session.c: the cookie, the CSRF check, expiry, sign-out. */
#include "unit.h"

#include "server/auth/session.c"

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
}

static void test_lifecycle(void)
{
    struct auth_sessions *s = auth_sessions_new();
    CHECK(s != NULL);
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
    CHECK_INT(auth_session_check(s, cookie, true, made.csrf, NOW + 59, &got), AUTH_SESSION_OK);
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

    /* expiry: gone at NOW + ttl, and stays gone */
    CHECK_INT(auth_session_check(s, cookie, false, NULL, NOW + 60, &got), AUTH_SESSION_INVALID);
    CHECK_INT(auth_session_check(s, cookie, false, NULL, NOW, &got), AUTH_SESSION_INVALID);

    /* sign-out ends only that session */
    snprintf(cookie, sizeof(cookie), "berth_session=%s", tok2);
    CHECK_INT(auth_session_check(s, cookie, false, NULL, NOW, &got), AUTH_SESSION_OK);
    auth_session_end(s, cookie);
    CHECK_INT(auth_session_check(s, cookie, false, NULL, NOW, &got), AUTH_SESSION_INVALID);
    auth_sessions_free(s);
}

static void test_full_table(void)
{
    struct auth_sessions *s = auth_sessions_new();
    char tok[AUTH_SESSION_TOKEN_LEN + 1], first[AUTH_SESSION_TOKEN_LEN + 1];
    struct auth_session made;
    CHECK_INT(auth_session_create(s, "AKIAEXAMPLE000000001", NOW, 10, first, &made), BERTH_OK);
    for (int i = 1; i < AUTH_SESSIONS_MAX; i++) {
        CHECK_INT(auth_session_create(s, "AKIAEXAMPLE000000001", NOW, 100 + i, tok, &made),
                  BERTH_OK);
    }
    char cookie[128];
    snprintf(cookie, sizeof(cookie), "berth_session=%s", first);
    CHECK_INT(auth_session_check(s, cookie, false, NULL, NOW, &made), AUTH_SESSION_OK);
    /* full: the session that expires first makes room */
    CHECK_INT(auth_session_create(s, "AKIAEXAMPLE000000002", NOW, 1000, tok, &made), BERTH_OK);
    CHECK_INT(auth_session_check(s, cookie, false, NULL, NOW, &made), AUTH_SESSION_INVALID);
    snprintf(cookie, sizeof(cookie), "berth_session=%s", tok);
    CHECK_INT(auth_session_check(s, cookie, false, NULL, NOW, &made), AUTH_SESSION_OK);
    CHECK_STR(made.access_key_id, "AKIAEXAMPLE000000002");
    auth_sessions_free(s);
}

/* Anonymous sessions ("" as the key) never push out a key's session, and
 * are the first to go when a key's session needs room. */
static void test_anonymous_sessions(void)
{
    struct auth_sessions *s = auth_sessions_new();
    char tok[AUTH_SESSION_TOKEN_LEN + 1], anon[AUTH_SESSION_TOKEN_LEN + 1];
    char key0[AUTH_SESSION_TOKEN_LEN + 1];
    struct auth_session made;
    char cookie[128];
    CHECK_INT(auth_session_create(s, "", NOW, 5000, anon, &made), BERTH_OK);
    CHECK_STR(made.access_key_id, "");
    CHECK_INT(auth_session_create(s, "AKIAEXAMPLE000000001", NOW, 10, key0, &made), BERTH_OK);
    for (int i = 2; i < AUTH_SESSIONS_MAX; i++) {
        CHECK_INT(auth_session_create(s, "AKIAEXAMPLE000000001", NOW, 100 + i, tok, &made),
                  BERTH_OK);
    }
    /* full: a new anonymous session replaces the anonymous one, not a key's */
    char anon2[AUTH_SESSION_TOKEN_LEN + 1];
    CHECK_INT(auth_session_create(s, "", NOW, 50, anon2, &made), BERTH_OK);
    snprintf(cookie, sizeof(cookie), "berth_session=%s", anon);
    CHECK_INT(auth_session_check(s, cookie, false, NULL, NOW, &made), AUTH_SESSION_INVALID);
    snprintf(cookie, sizeof(cookie), "berth_session=%s", key0);
    CHECK_INT(auth_session_check(s, cookie, false, NULL, NOW, &made), AUTH_SESSION_OK);
    /* a key's session takes the anonymous one's slot first, though key0 expires sooner */
    CHECK_INT(auth_session_create(s, "AKIAEXAMPLE000000002", NOW, 1000, tok, &made), BERTH_OK);
    snprintf(cookie, sizeof(cookie), "berth_session=%s", anon2);
    CHECK_INT(auth_session_check(s, cookie, false, NULL, NOW, &made), AUTH_SESSION_INVALID);
    snprintf(cookie, sizeof(cookie), "berth_session=%s", key0);
    CHECK_INT(auth_session_check(s, cookie, false, NULL, NOW, &made), AUTH_SESSION_OK);
    /* no anonymous session left to replace: an anonymous one is refused */
    CHECK_INT(auth_session_create(s, "", NOW, 50, tok, &made), BERTH_EBUSY);
    CHECK_INT(auth_session_check(s, cookie, false, NULL, NOW, &made), AUTH_SESSION_OK);
    /* once one expires, there is room again */
    CHECK_INT(auth_session_create(s, "", NOW + 20, 50, tok, &made), BERTH_OK);
    auth_sessions_free(s);
}

int main(void)
{
    RUN(test_cookie);
    RUN(test_lifecycle);
    RUN(test_full_table);
    RUN(test_anonymous_sessions);
    return unit_report("test_session");
}
