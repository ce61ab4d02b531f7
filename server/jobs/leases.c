/*
 * The lease keeper (see leases.h): one thread renewing this process's
 * leases, a mutex guarding the table of held jobs. The keeper and each
 * caller use their own metadata connection (store_meta).
 */
#include "server/jobs/leases.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/rand.h"
#include "common/timeutil.h"
#include "storage/meta/meta_lease.h"
#include "storage/store/store.h"

struct held {
    bool used;
    char name[META_LEASE_NAME_MAX + 1];
    atomic_bool *lost;
};

struct leases {
    struct store *st;
    int64_t ttl_ms;
    char holder[META_LEASE_HOLDER_MAX + 1];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;                         /* under lock */
    struct held held[LEASES_HELD_MAX]; /* under lock */
    int64_t renewed_at;                /* wall ms of the last renewal that worked */
    pthread_t thread;
};

const char *leases_holder(const struct leases *l)
{
    return l != NULL ? l->holder : NULL;
}

int64_t leases_ttl_ms(const struct leases *l)
{
    return l != NULL ? l->ttl_ms : 0;
}

/* Under l->lock: tell every held job it may have lost its lease. */
static void all_lost(struct leases *l, const char *why)
{
    for (size_t i = 0; i < LEASES_HELD_MAX; i++) {
        if (l->held[i].used && l->held[i].lost != NULL) {
            atomic_store(l->held[i].lost, true);
            log_warn("event=lease_lost name=%s holder=%s reason=%s", l->held[i].name, l->holder,
                     why);
        }
    }
}

/* Renew everything, then check that each held job is still ours. */
static void renew(struct leases *l)
{
    struct meta *m;
    int64_t now = time_now_ms();
    enum berth_err rc = store_meta_get(l->st, &m);
    if (rc == BERTH_OK) {
        rc = meta_lease_renew_all(m, l->holder, now, l->ttl_ms, NULL);
    }
    pthread_mutex_lock(&l->lock);
    if (rc != BERTH_OK) {
        log_error("event=lease_renew_failed holder=%s err=%s", l->holder, berth_strerror(rc));
        if (now - l->renewed_at >= l->ttl_ms) {
            all_lost(l, "not_renewed");
        }
        pthread_mutex_unlock(&l->lock);
        return;
    }
    l->renewed_at = now;
    for (size_t i = 0; i < LEASES_HELD_MAX; i++) {
        struct held *h = &l->held[i];
        struct meta_lease cur;
        if (!h->used || h->lost == NULL) {
            continue;
        }
        if (meta_lease_get(m, h->name, &cur) == BERTH_OK && strcmp(cur.holder, l->holder) != 0) {
            atomic_store(h->lost, true);
            log_warn("event=lease_lost name=%s holder=%s taken_by=%s", h->name, l->holder,
                     cur.holder);
        }
    }
    pthread_mutex_unlock(&l->lock);
}

static void *keeper_main(void *arg)
{
    struct leases *l = arg;
    pthread_mutex_lock(&l->lock);
    while (!l->stop) {
        struct timespec ts;
        int64_t at = time_mono_ns() + l->ttl_ms / 3 * 1000000;
        ts.tv_sec = (time_t)(at / 1000000000);
        ts.tv_nsec = (long)(at % 1000000000);
        pthread_cond_timedwait(&l->cond, &l->lock, &ts);
        if (l->stop) {
            break;
        }
        pthread_mutex_unlock(&l->lock);
        renew(l);
        pthread_mutex_lock(&l->lock);
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

enum berth_err leases_start(struct store *st, int64_t ttl_ms, struct leases **out)
{
    if (ttl_ms < 1000) {
        return BERTH_EINVAL;
    }
    struct leases *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        return BERTH_ENOMEM;
    }
    l->st = st;
    l->ttl_ms = ttl_ms;
    l->renewed_at = time_now_ms();
    char host[33] = "";
    if (gethostname(host, sizeof(host) - 1) != 0) {
        snprintf(host, sizeof(host), "host");
    }
    host[32] = '\0';
    unsigned char r[4];
    if (rand_bytes(r, sizeof(r)) != BERTH_OK) {
        free(l);
        return BERTH_EIO;
    }
    snprintf(l->holder, sizeof(l->holder), "%s/%ld/%02x%02x%02x%02x", host, (long)getpid(), r[0],
             r[1], r[2], r[3]);
    pthread_mutex_init(&l->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&l->thread, NULL, keeper_main, l) != 0) {
        pthread_cond_destroy(&l->cond);
        pthread_mutex_destroy(&l->lock);
        free(l);
        return BERTH_EIO;
    }
    log_info("event=leases_started holder=%s lease_ms=%lld", l->holder, (long long)ttl_ms);
    *out = l;
    return BERTH_OK;
}

void leases_stop(struct leases *l)
{
    if (l == NULL) {
        return;
    }
    pthread_mutex_lock(&l->lock);
    l->stop = true;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
    pthread_join(l->thread, NULL);
    for (size_t i = 0; i < LEASES_HELD_MAX; i++) {
        if (l->held[i].used) {
            leases_release(l, l->held[i].name, false);
        }
    }
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

bool leases_claim(struct leases *l, const char *name, int64_t min_gap_ms, atomic_bool *lost,
                  int64_t *retry_at_ms)
{
    if (l == NULL) {
        return true;
    }
    int64_t now = time_now_ms();
    *retry_at_ms = now + 1000;
    struct meta *m = store_meta(l->st);
    if (m == NULL) {
        return false;
    }
    /* held across the claim, so that the slot stays free and the keeper
     * does not check a lease half registered */
    pthread_mutex_lock(&l->lock);
    struct held *h = NULL;
    for (size_t i = 0; i < LEASES_HELD_MAX && h == NULL; i++) {
        if (!l->held[i].used) {
            h = &l->held[i];
        }
    }
    if (h == NULL) {
        pthread_mutex_unlock(&l->lock);
        log_error("event=lease_error name=%s msg=\"too many leases held\"", name);
        return false;
    }
    bool got = false;
    struct meta_lease cur;
    enum berth_err rc =
        meta_lease_claim(m, name, l->holder, now, l->ttl_ms, min_gap_ms, &got, &cur);
    if (rc == BERTH_OK && got) {
        h->used = true;
        snprintf(h->name, sizeof(h->name), "%s", name);
        h->lost = lost;
    }
    pthread_mutex_unlock(&l->lock);
    if (rc != BERTH_OK) {
        log_error("event=lease_error name=%s op=claim err=%s", name, berth_strerror(rc));
        return false;
    }
    if (!got) {
        if (cur.holder[0] != '\0' && cur.expires_at > now) {
            *retry_at_ms = cur.expires_at;
        } else {
            *retry_at_ms = cur.done_at + min_gap_ms;
        }
        log_debug("event=lease_busy name=%s holder=%s retry_in_ms=%lld", name,
                  cur.holder[0] ? cur.holder : "-", (long long)(*retry_at_ms - now));
        return false;
    }
    log_debug("event=lease_claimed name=%s holder=%s", name, l->holder);
    return true;
}

void leases_release(struct leases *l, const char *name, bool done)
{
    if (l == NULL) {
        return;
    }
    pthread_mutex_lock(&l->lock);
    for (size_t i = 0; i < LEASES_HELD_MAX; i++) {
        if (l->held[i].used && strcmp(l->held[i].name, name) == 0) {
            l->held[i].used = false;
            l->held[i].lost = NULL;
        }
    }
    pthread_mutex_unlock(&l->lock);
    struct meta *m;
    enum berth_err rc = store_meta_get(l->st, &m);
    if (rc == BERTH_OK) {
        rc = meta_lease_release(m, name, l->holder, done, time_now_ms(), NULL);
    }
    if (rc != BERTH_OK) {
        log_error("event=lease_error name=%s op=release err=%s", name, berth_strerror(rc));
    }
}
