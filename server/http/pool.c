/*
 * Which worker takes a new connection, and the connection caps across
 * workers. See pool_int.h.
 */
#include "pool_int.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Buckets of the per-address table (a power of two). */
#define ADDR_BUCKETS 1024

struct addr_key {
    sa_family_t family;
    unsigned char bytes[16];
};

struct addr_count {
    struct addr_count *next;
    struct addr_key key;
    int64_t count;
};

struct worker_load {
    atomic_uint bodies;
    atomic_uint requests;
    atomic_uint conns;
};

struct pool {
    size_t count;
    size_t lane_first;  /* workers [lane_first, count) are the upload lane */
    int64_t lane_limit; /* connections the lane may hold */
    atomic_size_t lane_total;
    int64_t conn_limit;
    int64_t per_addr_limit;
    struct worker_load *workers;
    struct pool_load *scratch; /* pool_take's copy of the loads */
    atomic_size_t total;
    size_t next_start;  /* the listener's thread only */
    pthread_mutex_t mu; /* the table */
    struct addr_count *table[ADDR_BUCKETS];
};

uint64_t pool_score(const struct pool_load *l)
{
    return (uint64_t)l->conns + POOL_REQUEST_WEIGHT * (uint64_t)l->requests +
           POOL_BODY_WEIGHT * (uint64_t)l->bodies;
}

size_t pool_choose(const struct pool_load *loads, size_t count, size_t start)
{
    size_t best = start % count;
    uint64_t best_score = pool_score(&loads[best]);
    for (size_t k = 1; k < count; k++) {
        size_t i = (start + k) % count;
        uint64_t s = pool_score(&loads[i]);
        if (s < best_score) {
            best = i;
            best_score = s;
        }
    }
    return best;
}

enum berth_err pool_new(size_t count, int64_t conn_limit, int64_t per_addr_limit, struct pool **out)
{
    struct pool *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return BERTH_ENOMEM;
    }
    p->workers = calloc(count, sizeof(*p->workers));
    p->scratch = calloc(count, sizeof(*p->scratch));
    if (p->workers == NULL || p->scratch == NULL || pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p->workers);
        free(p->scratch);
        free(p);
        return BERTH_ENOMEM;
    }
    p->count = count;
    p->lane_first = count;
    p->conn_limit = conn_limit;
    p->per_addr_limit = per_addr_limit;
    *out = p;
    return BERTH_OK;
}

void pool_free(struct pool *p)
{
    if (p == NULL) {
        return;
    }
    for (size_t b = 0; b < ADDR_BUCKETS; b++) {
        while (p->table[b] != NULL) {
            struct addr_count *n = p->table[b];
            p->table[b] = n->next;
            free(n);
        }
    }
    pthread_mutex_destroy(&p->mu);
    free(p->scratch);
    free(p->workers);
    free(p);
}

/* False for an address that is neither IPv4 nor IPv6 (not capped). */
static bool addr_key_of(const struct sockaddr *addr, socklen_t len, struct addr_key *k)
{
    memset(k, 0, sizeof(*k));
    if (addr == NULL) {
        return false;
    }
    if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        k->family = AF_INET;
        memcpy(k->bytes, &((const struct sockaddr_in *)(const void *)addr)->sin_addr, 4);
        return true;
    }
    if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        k->family = AF_INET6;
        memcpy(k->bytes, &((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr, 16);
        return true;
    }
    return false;
}

static size_t bucket_of(const struct addr_key *k)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    h = (h ^ (uint32_t)k->family) * 16777619u;
    for (size_t i = 0; i < sizeof(k->bytes); i++) {
        h = (h ^ k->bytes[i]) * 16777619u;
    }
    return h & (ADDR_BUCKETS - 1);
}

static struct addr_count **find(struct pool *p, const struct addr_key *k)
{
    struct addr_count **at = &p->table[bucket_of(k)];
    while (*at != NULL && memcmp(&(*at)->key, k, sizeof(*k)) != 0) {
        at = &(*at)->next;
    }
    return at;
}

/* Count one more connection from addr: false when it holds the cap. Out
 * of memory lets it through uncounted, as libmicrohttpd did. */
static bool addr_take(struct pool *p, const struct sockaddr *addr, socklen_t len)
{
    struct addr_key k;
    if (p->per_addr_limit <= 0 || !addr_key_of(addr, len, &k)) {
        return true;
    }
    bool ok = true;
    pthread_mutex_lock(&p->mu);
    struct addr_count **at = find(p, &k);
    if (*at == NULL) {
        struct addr_count *n = calloc(1, sizeof(*n));
        if (n != NULL) {
            n->key = k;
            n->count = 1;
            *at = n;
        }
    } else if ((*at)->count >= p->per_addr_limit) {
        ok = false;
    } else {
        (*at)->count++;
    }
    pthread_mutex_unlock(&p->mu);
    return ok;
}

static void addr_release(struct pool *p, const struct sockaddr *addr, socklen_t len)
{
    struct addr_key k;
    if (p->per_addr_limit <= 0 || !addr_key_of(addr, len, &k)) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    struct addr_count **at = find(p, &k);
    if (*at != NULL && --(*at)->count <= 0) {
        struct addr_count *gone = *at;
        *at = gone->next;
        free(gone);
    }
    pthread_mutex_unlock(&p->mu);
}

struct pool_load pool_load_of(const struct pool *p, size_t i)
{
    struct worker_load *w = &p->workers[i];
    return (struct pool_load){.bodies = atomic_load_explicit(&w->bodies, memory_order_relaxed),
                              .requests = atomic_load_explicit(&w->requests, memory_order_relaxed),
                              .conns = atomic_load_explicit(&w->conns, memory_order_relaxed)};
}

void pool_lane(struct pool *p, size_t first, int64_t limit)
{
    if (first > 0 && first < p->count && limit > 0) {
        p->lane_first = first;
        p->lane_limit = limit;
    }
}

enum pool_refusal pool_take(struct pool *p, const struct sockaddr *addr, socklen_t addr_len,
                            size_t *worker)
{
    return pool_take_for(p, addr, addr_len, false, worker);
}

enum pool_refusal pool_take_for(struct pool *p, const struct sockaddr *addr, socklen_t addr_len,
                                bool upload, size_t *worker)
{
    if ((int64_t)atomic_load(&p->total) >= p->conn_limit) {
        return POOL_CONNECTION_LIMIT;
    }
    if (!addr_take(p, addr, addr_len)) {
        return POOL_CLIENT_LIMIT;
    }
    /* the lane while it has room (only the listener's thread adds to it),
     * else the others */
    bool lane =
        upload && p->lane_first < p->count && (int64_t)atomic_load(&p->lane_total) < p->lane_limit;
    size_t first = lane ? p->lane_first : 0;
    size_t n = lane ? p->count - p->lane_first : p->lane_first;
    for (size_t i = 0; i < n; i++) {
        p->scratch[i] = pool_load_of(p, first + i);
    }
    size_t w = first + pool_choose(p->scratch, n, p->next_start++);
    atomic_fetch_add(&p->workers[w].conns, 1);
    atomic_fetch_add(&p->total, 1);
    if (lane) {
        atomic_fetch_add(&p->lane_total, 1);
    }
    *worker = w;
    return POOL_TAKEN;
}

void pool_release(struct pool *p, size_t worker, const struct sockaddr *addr, socklen_t addr_len)
{
    atomic_fetch_sub(&p->workers[worker].conns, 1);
    atomic_fetch_sub(&p->total, 1);
    if (worker >= p->lane_first) {
        atomic_fetch_sub(&p->lane_total, 1);
    }
    addr_release(p, addr, addr_len);
}

static void count(atomic_uint *n, int delta)
{
    if (delta > 0) {
        atomic_fetch_add(n, 1);
    } else {
        atomic_fetch_sub(n, 1);
    }
}

void pool_body(struct pool *p, size_t worker, int delta)
{
    count(&p->workers[worker].bodies, delta);
}

void pool_request(struct pool *p, size_t worker, int delta)
{
    count(&p->workers[worker].requests, delta);
}

size_t pool_connections(const struct pool *p)
{
    return atomic_load(&p->total);
}

size_t pool_lane_connections(const struct pool *p)
{
    return atomic_load(&p->lane_total);
}
