/*
 * The tail cache of shared stages (s3_upload.c): the tails this process
 * saved and saw committed, kept in memory so that the next request of the
 * same session on this replica need not GET them back from the store.
 *
 * An entry is a stage's name, the full key of its tail object and the
 * bytes. A tail object's key is new at every save (a random name), written
 * once by one writer and never again, and the session's row names the tail
 * of its last commit: a later commit by any request on any replica names
 * another key (or none). So a request whose row names the entry's key at
 * the entry's length reads exactly the object's bytes from memory; a row
 * naming anything else finds nothing here (and drops the stale entry).
 * Only kept saves are entered (s3_shared_saved), never a refused one.
 *
 * Bounded: at most S3_TAILS_SLOTS entries and max_bytes bytes in all, one
 * entry per stage; the least recently used entry goes first.
 */
#include "s3_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S3_TAILS_SLOTS 16

struct tail_entry {
    char name[BLOB_STAGE_NAME_MAX + 1]; /* "" free */
    char key[S3_KEY_MAX];
    char *data;
    size_t len;
    uint64_t used; /* the clock at the last put or hit */
};

struct s3_tails {
    pthread_mutex_t mu;
    size_t max_bytes;
    size_t bytes;
    uint64_t clock;
    struct s3_tails_stats stats;
    struct tail_entry e[S3_TAILS_SLOTS];
};

struct s3_tails *s3_tails_new(size_t max_bytes)
{
    struct s3_tails *t = calloc(1, sizeof(*t));
    if (t != NULL) {
        pthread_mutex_init(&t->mu, NULL);
        t->max_bytes = max_bytes;
    }
    return t;
}

static void entry_clear(struct s3_tails *t, struct tail_entry *e)
{
    if (e->name[0] != '\0') {
        t->bytes -= e->len;
    }
    free(e->data);
    memset(e, 0, sizeof(*e));
}

void s3_tails_free(struct s3_tails *t)
{
    if (t == NULL) {
        return;
    }
    for (int i = 0; i < S3_TAILS_SLOTS; i++) {
        entry_clear(t, &t->e[i]);
    }
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static struct tail_entry *find(struct s3_tails *t, const char *name)
{
    for (int i = 0; i < S3_TAILS_SLOTS; i++) {
        if (t->e[i].name[0] != '\0' && strcmp(t->e[i].name, name) == 0) {
            return &t->e[i];
        }
    }
    return NULL;
}

/* The least recently used entry, or NULL when all are free. */
static struct tail_entry *oldest(struct s3_tails *t)
{
    struct tail_entry *v = NULL;
    for (int i = 0; i < S3_TAILS_SLOTS; i++) {
        struct tail_entry *e = &t->e[i];
        if (e->name[0] != '\0' && (v == NULL || e->used < v->used)) {
            v = e;
        }
    }
    return v;
}

static struct tail_entry *free_slot(struct s3_tails *t)
{
    for (int i = 0; i < S3_TAILS_SLOTS; i++) {
        if (t->e[i].name[0] == '\0') {
            return &t->e[i];
        }
    }
    return NULL;
}

static void evict(struct s3_tails *t, struct tail_entry *e)
{
    entry_clear(t, e);
    t->stats.evicted++;
}

void s3_tails_put(struct s3_tails *t, const char *name, const char *key, const void *p, size_t len)
{
    if (t == NULL || len == 0 || strlen(name) > BLOB_STAGE_NAME_MAX || strlen(key) >= S3_KEY_MAX) {
        return;
    }
    /* copied before the lock: other sessions' hits need not wait for it */
    char *copy = len <= t->max_bytes ? malloc(len) : NULL;
    if (copy != NULL) {
        memcpy(copy, p, len);
    }
    pthread_mutex_lock(&t->mu);
    struct tail_entry *e = find(t, name);
    if (e != NULL) {
        entry_clear(t, e); /* the session's older tail is no longer its */
    }
    if (copy != NULL) {
        struct tail_entry *v;
        while (t->bytes + len > t->max_bytes && (v = oldest(t)) != NULL) {
            evict(t, v);
        }
        if ((e = free_slot(t)) == NULL) {
            e = oldest(t);
            evict(t, e);
        }
        snprintf(e->name, sizeof(e->name), "%s", name);
        snprintf(e->key, sizeof(e->key), "%s", key);
        e->data = copy;
        e->len = len;
        e->used = ++t->clock;
        t->bytes += len;
    }
    pthread_mutex_unlock(&t->mu);
}

bool s3_tails_get(struct s3_tails *t, const char *name, const char *key, void *p, size_t len)
{
    if (t == NULL) {
        return false;
    }
    bool hit = false;
    pthread_mutex_lock(&t->mu);
    struct tail_entry *e = find(t, name);
    if (e != NULL && e->len == len && strcmp(e->key, key) == 0) {
        memcpy(p, e->data, len);
        e->used = ++t->clock;
        hit = true;
    } else if (e != NULL) {
        entry_clear(t, e); /* the row names another tail: this one is stale for good */
    }
    if (hit) {
        t->stats.hits++;
    } else {
        t->stats.misses++;
    }
    pthread_mutex_unlock(&t->mu);
    return hit;
}

void s3_tails_drop(struct s3_tails *t, const char *name)
{
    if (t == NULL) {
        return;
    }
    pthread_mutex_lock(&t->mu);
    struct tail_entry *e = find(t, name);
    if (e != NULL) {
        entry_clear(t, e);
    }
    pthread_mutex_unlock(&t->mu);
}

struct s3_tails_stats s3_tails_stats(struct s3_tails *t)
{
    struct s3_tails_stats out = {0};
    if (t != NULL) {
        pthread_mutex_lock(&t->mu);
        out = t->stats;
        out.bytes = t->bytes;
        for (int i = 0; i < S3_TAILS_SLOTS; i++) {
            out.entries += t->e[i].name[0] != '\0';
        }
        pthread_mutex_unlock(&t->mu);
    }
    return out;
}
