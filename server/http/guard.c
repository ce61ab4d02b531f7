/*
 * The connection guard: the head deadline and the minimum body rate, kept
 * by one watcher thread over the list of open connections. See
 * guard_int.h.
 */
#include "guard_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "common/log.h"
#include "common/timeutil.h"

/* How often the watcher looks: deadlines are kept to within this. */
#define GUARD_TICK_MS 250

enum guard_phase {
    PHASE_HEAD,     /* waiting for a request head */
    PHASE_BODY,     /* receiving a request body */
    PHASE_HANDLING, /* the server's turn: handling, answering */
};

struct guard_slot {
    struct guard_slot *prev, *next;
    int fd;
    bool shut;
    char remote[64];
    /* phase in the low 2 bits, the monotonic ms it began above them: one
     * word, so the watcher never sees a phase with another's start */
    atomic_uint_fast64_t state;
    atomic_uint_fast64_t body_bytes;
};

struct guard {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    pthread_t thread;
    bool stop;
    struct guard_slot *head;
    int64_t head_ms;
    int64_t min_rate;
};

static uint64_t now_ms(void)
{
    return (uint64_t)(time_mono_ns() / 1000000);
}

static void set_phase(struct guard_slot *s, enum guard_phase p)
{
    atomic_store(&s->state, (now_ms() << 2) | (uint64_t)p);
}

void guard_head_done(struct guard_slot *s, bool has_body)
{
    if (s != NULL) {
        atomic_store(&s->body_bytes, 0);
        set_phase(s, has_body ? PHASE_BODY : PHASE_HANDLING);
    }
}

void guard_body_bytes(struct guard_slot *s, size_t n)
{
    if (s != NULL) {
        atomic_fetch_add(&s->body_bytes, n);
    }
}

void guard_handling(struct guard_slot *s)
{
    if (s != NULL) {
        set_phase(s, PHASE_HANDLING);
    }
}

void guard_idle(struct guard_slot *s)
{
    if (s != NULL) {
        set_phase(s, PHASE_HEAD);
    }
}

static void remote_text(struct MHD_Connection *conn, char *out, size_t cap)
{
    snprintf(out, cap, "-");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci == NULL || ci->client_addr == NULL) {
        return;
    }
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)cap);
    } else if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)cap);
    }
}

void guard_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                  enum MHD_ConnectionNotificationCode code)
{
    struct guard *g = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct guard_slot *s = calloc(1, sizeof(*s));
        if (s == NULL || ci == NULL) {
            free(s); /* unguarded: libmicrohttpd's idle timeout still applies */
            *socket_context = NULL;
            return;
        }
        s->fd = ci->connect_fd;
        remote_text(conn, s->remote, sizeof(s->remote));
        set_phase(s, PHASE_HEAD);
        pthread_mutex_lock(&g->mu);
        s->next = g->head;
        if (g->head != NULL) {
            g->head->prev = s;
        }
        g->head = s;
        pthread_mutex_unlock(&g->mu);
        *socket_context = s;
        return;
    }
    struct guard_slot *s = *socket_context;
    if (s == NULL) {
        return;
    }
    pthread_mutex_lock(&g->mu);
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        g->head = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    pthread_mutex_unlock(&g->mu);
    free(s);
    *socket_context = NULL;
}

/* Why s must be closed now, or NULL. */
static const char *overdue(const struct guard *g, struct guard_slot *s, uint64_t now)
{
    uint64_t state = atomic_load(&s->state);
    uint64_t since = state >> 2;
    int64_t elapsed = now > since ? (int64_t)(now - since) : 0;
    switch ((enum guard_phase)(state & 3)) {
    case PHASE_HEAD:
        return elapsed > g->head_ms ? "head_timeout" : NULL;
    case PHASE_BODY:
        if (g->min_rate > 0 && elapsed > g->head_ms &&
            atomic_load(&s->body_bytes) * 1000 < (uint64_t)g->min_rate * (uint64_t)elapsed) {
            return "body_rate";
        }
        return NULL;
    case PHASE_HANDLING:
        break;
    }
    return NULL;
}

static void *watch(void *arg)
{
    struct guard *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->stop) {
        uint64_t now = now_ms();
        for (struct guard_slot *s = g->head; s != NULL; s = s->next) {
            const char *why = s->shut ? NULL : overdue(g, s, now);
            if (why != NULL) {
                /* the socket stays open (libmicrohttpd closes it), so
                 * its descriptor cannot be reused meanwhile */
                shutdown(s->fd, SHUT_RDWR);
                s->shut = true;
                log_info("event=connection_closed reason=%s remote=%s", why, s->remote);
            }
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += GUARD_TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->cond, &g->mu, &ts);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

enum berth_err guard_start(const struct berth_config *cfg, struct guard **out)
{
    struct guard *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        return BERTH_ENOMEM;
    }
    g->head_ms = cfg->http_head_timeout_seconds * 1000;
    g->min_rate = cfg->http_min_body_rate_bytes;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cond, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&g->thread, NULL, watch, g) != 0) {
        pthread_cond_destroy(&g->cond);
        pthread_mutex_destroy(&g->mu);
        free(g);
        return BERTH_EIO;
    }
    *out = g;
    return BERTH_OK;
}

void guard_stop(struct guard *g)
{
    if (g == NULL) {
        return;
    }
    pthread_mutex_lock(&g->mu);
    g->stop = true;
    pthread_cond_signal(&g->cond);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->thread, NULL);
    while (g->head != NULL) { /* none once the daemon has stopped */
        struct guard_slot *s = g->head;
        g->head = s->next;
        free(s);
    }
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->mu);
    free(g);
}
