/*
 * Admission of large response bodies: a count of slots, a FIFO of
 * suspended connections waiting for one, and a watcher thread that takes
 * slots back from bodies that hardly move. One mutex orders everything,
 * including the suspend and resume calls, so a connection is never resumed
 * before it is suspended. See admit_int.h.
 */
#include "admit_int.h"

#include <netinet/in.h>
#include <linux/tcp.h> /* glibc's struct tcp_info lacks tcpi_bytes_acked */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <stddef.h>
#include <time.h>

#include <microhttpd.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "server/metrics/metrics.h"

#define ADMIT_TICK_MS 250

/* A list of entries, oldest first. */
struct entry_list {
    struct admit_entry *head, *tail;
};

struct admit {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    pthread_t thread;
    bool stop;
    bool closed;
    unsigned cap;
    uint64_t min_rate;
    unsigned holding_count;
    unsigned waiting_count;
    uint64_t queued_total;
    uint64_t revoked_total;
    struct entry_list holding;
    struct entry_list waiting;
};

static int64_t now_ms(void)
{
    return time_mono_ns() / 1000000;
}

static void list_push(struct entry_list *l, struct admit_entry *e)
{
    e->next = NULL;
    e->prev = l->tail;
    if (l->tail != NULL) {
        l->tail->next = e;
    } else {
        l->head = e;
    }
    l->tail = e;
}

static void list_remove(struct entry_list *l, struct admit_entry *e)
{
    if (e->prev != NULL) {
        e->prev->next = e->next;
    } else {
        l->head = e->next;
    }
    if (e->next != NULL) {
        e->next->prev = e->prev;
    } else {
        l->tail = e->prev;
    }
    e->prev = e->next = NULL;
}

/* Bytes the peer has acknowledged on the connection, false when the
 * kernel does not say (not TCP). */
static bool acked_bytes(int fd, uint64_t *out)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof(ti.tcpi_bytes_acked)) {
        return false;
    }
    *out = ti.tcpi_bytes_acked;
    return true;
}

static void publish(const struct admit *a)
{
    metrics_body_queue(a->holding_count, a->waiting_count, a->queued_total, a->revoked_total);
}

static void hold(struct admit *a, struct admit_entry *e)
{
    e->state = ADMIT_HOLDING;
    e->since_ms = e->mark_ms = now_ms();
    e->mark_acked = 0;
    if (!acked_bytes(e->fd, &e->mark_acked)) {
        e->fd = -1; /* no progress to watch: it keeps its slot */
    }
    list_push(&a->holding, e);
    a->holding_count++;
}

/* Give free slots to the oldest waiting entries. Locked. */
static void admit_next(struct admit *a)
{
    while (a->holding_count < a->cap && a->waiting.head != NULL) {
        struct admit_entry *e = a->waiting.head;
        list_remove(&a->waiting, e);
        a->waiting_count--;
        hold(a, e);
        MHD_resume_connection(e->conn);
    }
    publish(a);
}

/* Take slots back from bodies that acknowledged too little lately. Locked. */
static void revoke_slow(struct admit *a, int64_t now)
{
    struct admit_entry *next;
    for (struct admit_entry *e = a->holding.head; e != NULL; e = next) {
        next = e->next;
        if (e->fd < 0 || now - e->since_ms < ADMIT_GRACE_MS || now - e->mark_ms < ADMIT_WINDOW_MS) {
            continue;
        }
        uint64_t acked;
        if (!acked_bytes(e->fd, &acked)) {
            continue;
        }
        uint64_t moved = acked - e->mark_acked;
        int64_t span = now - e->mark_ms;
        e->mark_acked = acked;
        e->mark_ms = now;
        if (moved * 1000 < a->min_rate * (uint64_t)span) {
            list_remove(&a->holding, e);
            a->holding_count--;
            e->state = ADMIT_IDLE;
            a->revoked_total++;
            log_debug("event=body_slot_revoked acked_bytes_per_s=%llu",
                      (unsigned long long)(moved * 1000 / (uint64_t)span));
        }
    }
    admit_next(a);
}

static void *watch(void *arg)
{
    struct admit *a = arg;
    pthread_mutex_lock(&a->mu);
    while (!a->stop) {
        if (a->waiting.head != NULL && a->min_rate > 0) {
            revoke_slow(a, now_ms());
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += ADMIT_TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&a->cond, &a->mu, &ts);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

enum berth_err admit_start(unsigned cap, uint64_t min_rate, struct admit **out)
{
    struct admit *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return BERTH_ENOMEM;
    }
    a->cap = cap;
    a->min_rate = min_rate;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&a->mu, NULL);
    if (pthread_create(&a->thread, NULL, watch, a) != 0) {
        pthread_cond_destroy(&a->cond);
        pthread_mutex_destroy(&a->mu);
        free(a);
        return BERTH_EIO;
    }
    publish(a);
    *out = a;
    return BERTH_OK;
}

enum admit_result admit_enter(struct admit *a, struct admit_entry *e, struct MHD_Connection *conn,
                              int fd)
{
    enum admit_result r;
    pthread_mutex_lock(&a->mu);
    e->conn = conn;
    e->fd = fd;
    if (a->closed) {
        r = ADMIT_CLOSED;
    } else if (a->holding_count < a->cap && a->waiting.head == NULL) {
        hold(a, e);
        r = ADMIT_GO;
    } else {
        e->state = ADMIT_WAITING;
        e->since_ms = now_ms();
        list_push(&a->waiting, e);
        a->waiting_count++;
        a->queued_total++;
        /* under the lock: admit_next resumes only what is suspended */
        MHD_suspend_connection(conn);
        r = ADMIT_QUEUED;
    }
    publish(a);
    pthread_mutex_unlock(&a->mu);
    return r;
}

enum admit_state admit_state(struct admit *a, const struct admit_entry *e)
{
    pthread_mutex_lock(&a->mu);
    enum admit_state s = e->state;
    pthread_mutex_unlock(&a->mu);
    return s;
}

void admit_leave(struct admit *a, struct admit_entry *e)
{
    pthread_mutex_lock(&a->mu);
    if (e->state == ADMIT_HOLDING) {
        list_remove(&a->holding, e);
        a->holding_count--;
        admit_next(a);
    } else if (e->state == ADMIT_WAITING) {
        /* not reached (a suspended connection does not complete); kept
         * so an entry is never left in the list */
        list_remove(&a->waiting, e);
        a->waiting_count--;
        publish(a);
    }
    e->state = ADMIT_IDLE;
    pthread_mutex_unlock(&a->mu);
}

size_t admit_close(struct admit *a)
{
    size_t n = 0;
    pthread_mutex_lock(&a->mu);
    a->closed = true;
    struct admit_entry *e;
    while ((e = a->waiting.head) != NULL) {
        list_remove(&a->waiting, e);
        a->waiting_count--;
        e->state = ADMIT_REFUSED;
        MHD_resume_connection(e->conn);
        n++;
    }
    publish(a);
    pthread_mutex_unlock(&a->mu);
    return n;
}

void admit_stop(struct admit *a)
{
    if (a == NULL) {
        return;
    }
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    pthread_cond_destroy(&a->cond);
    pthread_mutex_destroy(&a->mu);
    free(a);
}
