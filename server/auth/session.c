/*
 * Console sessions: a fixed table searched under one lock (a console has a
 * handful of users; AUTH_SESSIONS_MAX bounds the memory an unauthenticated
 * client cannot grow anyway, since a session needs a valid key).
 */
#include "server/auth/session.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/rand.h"
#include "common/str.h"

struct slot {
    bool used;
    char token[AUTH_SESSION_TOKEN_LEN + 1];
    struct auth_session s;
};

struct auth_sessions {
    pthread_mutex_t lock;
    struct slot slots[AUTH_SESSIONS_MAX];
};

static void wipe(void *p, size_t n)
{
    memset(p, 0, n);
    __asm__ __volatile__("" : : "r"(p) : "memory");
}

struct auth_sessions *auth_sessions_new(void)
{
    struct auth_sessions *s = calloc(1, sizeof(*s));
    if (s != NULL) {
        pthread_mutex_init(&s->lock, NULL);
    }
    return s;
}

void auth_sessions_free(struct auth_sessions *s)
{
    if (s == NULL) {
        return;
    }
    pthread_mutex_destroy(&s->lock);
    wipe(s->slots, sizeof(s->slots));
    free(s);
}

static enum berth_err random_hex(char out[AUTH_SESSION_TOKEN_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[AUTH_SESSION_TOKEN_LEN / 2];
    if (rand_bytes(raw, sizeof(raw)) != BERTH_OK) {
        return BERTH_EIO;
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[AUTH_SESSION_TOKEN_LEN] = '\0';
    wipe(raw, sizeof(raw));
    return BERTH_OK;
}

enum berth_err auth_session_create(struct auth_sessions *s, const char *akid, int64_t now,
                                   int64_t ttl, char token[AUTH_SESSION_TOKEN_LEN + 1],
                                   struct auth_session *out)
{
    struct slot fresh;
    memset(&fresh, 0, sizeof(fresh));
    if (str_copy(fresh.s.access_key_id, sizeof(fresh.s.access_key_id), akid) != BERTH_OK) {
        return BERTH_EINVAL;
    }
    if (random_hex(fresh.token) != BERTH_OK || random_hex(fresh.s.csrf) != BERTH_OK) {
        wipe(&fresh, sizeof(fresh));
        return BERTH_EIO;
    }
    fresh.used = true;
    fresh.s.expires = now + ttl;
    bool anonymous = fresh.s.access_key_id[0] == '\0';
    pthread_mutex_lock(&s->lock);
    /* a free or expired slot; else the anonymous session that expires
     * first; else, for a key's session only, the one that expires first:
     * anonymous sessions never push out a key's */
    size_t pick = AUTH_SESSIONS_MAX, anon = AUTH_SESSIONS_MAX, any = 0;
    for (size_t i = 0; i < AUTH_SESSIONS_MAX; i++) {
        struct slot *sl = &s->slots[i];
        if (!sl->used || sl->s.expires <= now) {
            pick = i;
            break;
        }
        if (sl->s.access_key_id[0] == '\0' &&
            (anon == AUTH_SESSIONS_MAX || sl->s.expires < s->slots[anon].s.expires)) {
            anon = i;
        }
        if (sl->s.expires < s->slots[any].s.expires) {
            any = i;
        }
    }
    if (pick == AUTH_SESSIONS_MAX) {
        pick = anon != AUTH_SESSIONS_MAX ? anon : anonymous ? AUTH_SESSIONS_MAX : any;
    }
    if (pick == AUTH_SESSIONS_MAX) {
        pthread_mutex_unlock(&s->lock);
        wipe(&fresh, sizeof(fresh));
        return BERTH_EBUSY;
    }
    s->slots[pick] = fresh;
    pthread_mutex_unlock(&s->lock);
    memcpy(token, fresh.token, sizeof(fresh.token));
    *out = fresh.s;
    wipe(&fresh, sizeof(fresh));
    return BERTH_OK;
}

bool auth_session_cookie(const char *cookie_header, char out[AUTH_SESSION_TOKEN_LEN + 1])
{
    static const char name[] = AUTH_SESSION_COOKIE "=";
    const char *p = cookie_header;
    while (p != NULL && *p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ';') {
            p++;
        }
        const char *end = strchr(p, ';');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
            len--;
        }
        if (len == sizeof(name) - 1 + AUTH_SESSION_TOKEN_LEN &&
            strncmp(p, name, sizeof(name) - 1) == 0) {
            const char *v = p + sizeof(name) - 1;
            bool ok = true;
            for (size_t i = 0; i < AUTH_SESSION_TOKEN_LEN; i++) {
                ok = ok && ((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f'));
            }
            if (ok) {
                memcpy(out, v, AUTH_SESSION_TOKEN_LEN);
                out[AUTH_SESSION_TOKEN_LEN] = '\0';
                return true;
            }
        }
        p = end;
    }
    return false;
}

/* The slot holding token, under the lock; NULL when none. */
static struct slot *find(struct auth_sessions *s, const char *token)
{
    for (size_t i = 0; i < AUTH_SESSIONS_MAX; i++) {
        struct slot *sl = &s->slots[i];
        if (sl->used &&
            str_ct_equal(sl->token, AUTH_SESSION_TOKEN_LEN, token, AUTH_SESSION_TOKEN_LEN)) {
            return sl;
        }
    }
    return NULL;
}

enum auth_session_state auth_session_check(struct auth_sessions *s, const char *cookie_header,
                                           bool csrf_required, const char *csrf, int64_t now,
                                           struct auth_session *out)
{
    char token[AUTH_SESSION_TOKEN_LEN + 1];
    if (cookie_header == NULL || strstr(cookie_header, AUTH_SESSION_COOKIE "=") == NULL) {
        return AUTH_SESSION_NONE;
    }
    if (!auth_session_cookie(cookie_header, token)) {
        return AUTH_SESSION_INVALID;
    }
    enum auth_session_state st = AUTH_SESSION_INVALID;
    pthread_mutex_lock(&s->lock);
    struct slot *sl = find(s, token);
    if (sl != NULL && sl->s.expires <= now) {
        wipe(sl, sizeof(*sl));
        sl = NULL;
    }
    if (sl != NULL) {
        *out = sl->s;
        st = AUTH_SESSION_OK;
        if (csrf_required && (csrf == NULL || !str_ct_equal(csrf, strlen(csrf), sl->s.csrf,
                                                            AUTH_SESSION_TOKEN_LEN))) {
            st = AUTH_SESSION_CSRF;
        }
    }
    pthread_mutex_unlock(&s->lock);
    wipe(token, sizeof(token));
    return st;
}

void auth_session_end(struct auth_sessions *s, const char *cookie_header)
{
    char token[AUTH_SESSION_TOKEN_LEN + 1];
    if (!auth_session_cookie(cookie_header, token)) {
        return;
    }
    pthread_mutex_lock(&s->lock);
    struct slot *sl = find(s, token);
    if (sl != NULL) {
        wipe(sl, sizeof(*sl));
    }
    pthread_mutex_unlock(&s->lock);
    wipe(token, sizeof(token));
}
