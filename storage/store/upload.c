/*
 * Upload sessions: database rows, their data as blob-store stages named by
 * the session id, and an in-memory table of running hash states keyed by
 * session id (guarded by store->uploads_lock). A state is "held" by at
 * most one request. See upload.h.
 */
#include "store_int.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/blob/blob.h"
#include "common/fault.h"
#include "common/log.h"
#include "storage/meta/meta.h"
#include "common/timeutil.h"
#include "storage/store/upload.h"

struct upload_state {
    char uuid[RAND_UUID_LEN + 1];
    int64_t repo_id;
    enum digest_alg alg;
    struct digest_ctx *ctx; /* hash of the first `offset` bytes; NULL = rebuild from file */
    uint64_t offset;
    unsigned parts; /* upload_add_part calls (ECR's layer parts) */
    bool held;
    struct upload_state *next;
};

struct hasher;

struct upload {
    struct store *st;
    struct upload_state *state;
    struct blob_stage *data;
    uint64_t start;        /* the offset when this request took the session */
    struct hasher *hasher; /* hashing the body on a thread of its own (below) */
    bool inline_only;      /* a hasher was tried in this request */
};

static size_t bucket_of(const struct store *st, const char *uuid)
{
    /* FNV-1a over the id */
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = uuid; *p; p++) {
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    }
    return (size_t)(h % st->uploads_cap);
}

/* Under uploads_lock. */
static struct upload_state *find_state(struct store *st, const char *uuid)
{
    if (st->uploads_cap == 0) {
        return NULL;
    }
    for (struct upload_state *s = st->uploads[bucket_of(st, uuid)]; s; s = s->next) {
        if (strcmp(s->uuid, uuid) == 0) {
            return s;
        }
    }
    return NULL;
}

/* Under uploads_lock. */
static enum berth_err insert_state(struct store *st, struct upload_state *s)
{
    if (st->uploads_count + 1 > st->uploads_cap / 2) {
        size_t cap = st->uploads_cap ? st->uploads_cap * 2 : 64;
        struct upload_state **table = calloc(cap, sizeof(*table));
        if (table == NULL) {
            return BERTH_ENOMEM;
        }
        struct upload_state **old = st->uploads;
        size_t old_cap = st->uploads_cap;
        st->uploads = table;
        st->uploads_cap = cap;
        for (size_t i = 0; i < old_cap; i++) {
            struct upload_state *e = old[i];
            while (e) {
                struct upload_state *next = e->next;
                size_t b = bucket_of(st, e->uuid);
                e->next = table[b];
                table[b] = e;
                e = next;
            }
        }
        free(old);
    }
    size_t b = bucket_of(st, s->uuid);
    s->next = st->uploads[b];
    st->uploads[b] = s;
    st->uploads_count++;
    return BERTH_OK;
}

/* Under uploads_lock. */
static void remove_state(struct store *st, struct upload_state *s)
{
    struct upload_state **pp = &st->uploads[bucket_of(st, s->uuid)];
    while (*pp && *pp != s) {
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = s->next;
        st->uploads_count--;
    }
}

static void free_state(struct upload_state *s)
{
    if (s) {
        digest_ctx_free(s->ctx);
        free(s);
    }
}

void upload_states_free(struct store *st)
{
    for (size_t i = 0; i < st->uploads_cap; i++) {
        struct upload_state *s = st->uploads[i];
        while (s) {
            struct upload_state *next = s->next;
            free_state(s);
            s = next;
        }
    }
    free(st->uploads);
    st->uploads = NULL;
    st->uploads_cap = 0;
    st->uploads_count = 0;
}

enum berth_err upload_create(struct store *st, int64_t repo_id, enum digest_alg alg, char *uuid)
{
    struct meta *m = store_meta(st);
    if (m == NULL) {
        return BERTH_EDB;
    }
    struct meta_upload row = {.repo_id = repo_id, .alg = alg, .created_at = time_now_ms()};
    enum berth_err rc = rand_uuid(row.uuid);
    if (rc != BERTH_OK) {
        return rc;
    }
    /* Data first: a row without data would be a broken session, data
     * without a row is only garbage that expiry removes. */
    rc = blob_stage_create(st->blobs, row.uuid);
    if (rc != BERTH_OK) {
        return rc == BERTH_EEXIST ? BERTH_EIO : rc;
    }
    rc = meta_upload_insert(m, &row);
    if (rc != BERTH_OK) {
        blob_stage_remove(st->blobs, row.uuid);
        return rc;
    }
    struct upload_state *s = calloc(1, sizeof(*s));
    if (s != NULL) {
        memcpy(s->uuid, row.uuid, sizeof(s->uuid));
        s->repo_id = repo_id;
        s->alg = alg;
        s->ctx = digest_ctx_new(alg);
        pthread_mutex_lock(&st->uploads_lock);
        if (s->ctx == NULL || insert_state(st, s) != BERTH_OK) {
            free_state(s); /* rebuilt from the file on first use */
        }
        pthread_mutex_unlock(&st->uploads_lock);
    }
    memcpy(uuid, row.uuid, RAND_UUID_LEN + 1);
    return BERTH_OK;
}

/* Find or load the session's state and mark it held. */
static enum berth_err hold_state(struct store *st, const char *uuid, int64_t repo_id,
                                 struct upload_state **out)
{
    pthread_mutex_lock(&st->uploads_lock);
    struct upload_state *s = find_state(st, uuid);
    if (s != NULL) {
        enum berth_err rc = BERTH_OK;
        if (s->repo_id != repo_id) {
            rc = BERTH_ENOTFOUND;
        } else if (s->held) {
            rc = BERTH_EBUSY;
        } else {
            s->held = true;
            *out = s;
        }
        pthread_mutex_unlock(&st->uploads_lock);
        return rc;
    }
    pthread_mutex_unlock(&st->uploads_lock);

    /* Not in memory (a restart, or memory pressure): load from the row. */
    struct meta *m = store_meta(st);
    if (m == NULL) {
        return BERTH_EDB;
    }
    struct meta_upload row;
    enum berth_err rc = meta_upload_get(m, uuid, &row);
    if (rc != BERTH_OK) {
        return rc;
    }
    if (row.repo_id != repo_id || row.alg == DIGEST_NONE) {
        return BERTH_ENOTFOUND;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return BERTH_ENOMEM;
    }
    memcpy(s->uuid, row.uuid, sizeof(s->uuid));
    s->repo_id = row.repo_id;
    s->alg = row.alg;
    s->held = true;
    pthread_mutex_lock(&st->uploads_lock);
    struct upload_state *raced = find_state(st, uuid);
    if (raced != NULL) {
        rc = raced->held ? BERTH_EBUSY : BERTH_OK;
        if (rc == BERTH_OK) {
            raced->held = true;
            *out = raced;
        }
        pthread_mutex_unlock(&st->uploads_lock);
        free_state(s);
        return rc;
    }
    rc = insert_state(st, s);
    pthread_mutex_unlock(&st->uploads_lock);
    if (rc != BERTH_OK) {
        free_state(s);
        return rc;
    }
    *out = s;
    return BERTH_OK;
}

static void unhold_state(struct store *st, struct upload_state *s)
{
    pthread_mutex_lock(&st->uploads_lock);
    s->held = false;
    pthread_mutex_unlock(&st->uploads_lock);
}

/* Drop a held state from the table and free it. */
static void drop_state(struct store *st, struct upload_state *s)
{
    pthread_mutex_lock(&st->uploads_lock);
    remove_state(st, s);
    pthread_mutex_unlock(&st->uploads_lock);
    free_state(s);
}

/* Remove a session whose data vanished: its row is useless. */
static void forget_session(struct store *st, struct upload_state *s)
{
    struct meta *m = store_meta(st);
    if (m != NULL) {
        meta_upload_delete(m, s->uuid);
    }
    drop_state(st, s);
}

enum berth_err upload_acquire(struct store *st, const char *uuid, int64_t repo_id,
                              struct upload **out)
{
    if (!rand_is_uuid(uuid)) {
        return BERTH_ENOTFOUND;
    }
    struct upload_state *s = NULL;
    enum berth_err rc = hold_state(st, uuid, repo_id, &s);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct upload *u = calloc(1, sizeof(*u));
    if (u == NULL) {
        unhold_state(st, s);
        return BERTH_ENOMEM;
    }
    u->st = st;
    u->state = s;
    uint64_t size = 0;
    rc = blob_stage_open(st->blobs, uuid, &u->data, &size);
    if (rc == BERTH_ENOTFOUND) {
        forget_session(st, s);
        free(u);
        return BERTH_ENOTFOUND;
    }
    if (rc != BERTH_OK) {
        free(u);
        unhold_state(st, s);
        return rc;
    }
    if (s->ctx == NULL || s->offset != size) {
        /* The data is the truth: rebuild the hash from it when needed. */
        digest_ctx_free(s->ctx);
        s->ctx = NULL;
        s->offset = size;
    }
    u->start = s->offset;
    *out = u;
    return BERTH_OK;
}

uint64_t upload_offset(const struct upload *u)
{
    return u->state->offset;
}

unsigned upload_parts(const struct upload *u)
{
    return u->state->parts;
}

void upload_add_part(struct upload *u)
{
    u->state->parts++;
}

/* ---- hashing on a thread of its own ----
 *
 * A request that writes more than UPLOAD_PIPE_MIN bytes hands the running
 * hash to a thread of its own for the rest of its body: the request's
 * thread receives and writes, the hasher reads back what was written (from
 * the page cache, through the stage) and hashes it, so the two overlap on
 * two cores. At most one hasher per CPU runs at once (beyond that a body is
 * hashed inline, as a small one is): with every core busy a thread more
 * would only add switches. The hash must cover exactly the stage's bytes,
 * so the hasher is drained (joined, its hash handed back) before anything
 * reads the hash, cuts the stage or lets the session go. */

/* A body past this many bytes in one request gets a hasher (2 MiB: a
 * 1 MiB layer never does). */
#define UPLOAD_PIPE_MIN ((uint64_t)2 << 20)
/* The hasher reads and hashes this many bytes at a time, and is woken
 * when this much more waits for it. */
#define UPLOAD_PIPE_READ ((size_t)256 << 10)

struct hasher {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct blob_stage *stage;
    struct digest_ctx *ctx; /* the thread's until drained */
    uint64_t hashed;        /* ctx covers [0, hashed); the thread's */
    uint64_t target;        /* under mu: written, to be hashed */
    uint64_t seen;          /* under mu: target when the thread last looked */
    bool idle;              /* under mu: the thread waits for more */
    bool stop;              /* under mu: hash up to target, then end */
    enum berth_err err;     /* the thread's; read after the join */
    uint8_t buf[UPLOAD_PIPE_READ];
};

static atomic_int hashers_running;
static atomic_uint_fast64_t hashers_started;

uint64_t upload_hashers_started(void)
{
    return atomic_load(&hashers_started);
}

static void *hasher_main(void *arg)
{
    struct hasher *h = arg;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (!h->stop && h->target == h->hashed) {
            h->idle = true;
            pthread_cond_wait(&h->cv, &h->mu);
        }
        h->idle = false;
        uint64_t upto = h->target;
        h->seen = upto;
        if (upto == h->hashed) {
            break; /* stopped, and all hashed */
        }
        pthread_mutex_unlock(&h->mu);
        while (h->hashed < upto && h->err == BERTH_OK) {
            uint64_t want = upto - h->hashed;
            size_t n = want < UPLOAD_PIPE_READ ? (size_t)want : UPLOAD_PIPE_READ;
            size_t got = 0;
            h->err = blob_stage_read(h->stage, h->hashed, h->buf, n, &got);
            if (h->err == BERTH_OK && got == 0) {
                h->err = BERTH_EIO; /* shorter than written: cut under us */
            }
            if (h->err == BERTH_OK) {
                h->err = digest_ctx_update(h->ctx, h->buf, got);
                h->hashed += got;
            }
        }
        pthread_mutex_lock(&h->mu);
        if (h->err != BERTH_OK) {
            break;
        }
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* Hand the session's hash to a hasher when this request's body grew large
 * and a CPU is free for it; otherwise nothing changes. */
static void hasher_start(struct upload *u)
{
    struct upload_state *s = u->state;
    if (u->hasher != NULL || u->inline_only || s->ctx == NULL ||
        s->offset - u->start < UPLOAD_PIPE_MIN) {
        return;
    }
    u->inline_only = true; /* one try per request */
    static long cpus;
    if (cpus == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cpus = n > 0 ? n : 1;
    }
    if (cpus < 2 || atomic_fetch_add(&hashers_running, 1) >= cpus) {
        if (cpus >= 2) {
            atomic_fetch_sub(&hashers_running, 1);
        }
        return;
    }
    struct hasher *h = malloc(sizeof(*h));
    if (h == NULL) {
        atomic_fetch_sub(&hashers_running, 1);
        return;
    }
    memset(h, 0, offsetof(struct hasher, buf));
    h->stage = u->data;
    h->ctx = s->ctx;
    h->hashed = s->offset;
    h->target = s->offset;
    h->seen = s->offset;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    if (pthread_create(&h->thread, NULL, hasher_main, h) != 0) {
        pthread_cond_destroy(&h->cv);
        pthread_mutex_destroy(&h->mu);
        free(h);
        atomic_fetch_sub(&hashers_running, 1);
        return;
    }
    s->ctx = NULL; /* the hasher's until drained */
    u->hasher = h;
    atomic_fetch_add(&hashers_started, 1);
}

/* The stage now holds `written` bytes: wake the hasher when it waits and
 * enough arrived for a read. */
static void hasher_feed(struct hasher *h, uint64_t written)
{
    pthread_mutex_lock(&h->mu);
    h->target = written;
    if (h->idle && written - h->seen >= UPLOAD_PIPE_READ) {
        pthread_cond_signal(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
}

/* Let the hasher hash everything written, end it, and give the session its
 * hash back (none, to be rebuilt from the stage, when the hasher failed). */
static void hasher_drain(struct upload *u)
{
    struct hasher *h = u->hasher;
    if (h == NULL) {
        return;
    }
    pthread_mutex_lock(&h->mu);
    h->stop = true;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->thread, NULL);
    struct upload_state *s = u->state;
    if (h->err == BERTH_OK && h->hashed == s->offset) {
        s->ctx = h->ctx;
    } else {
        log_warn("event=upload_hash_rebuilt uuid=%s err=%s", s->uuid, berth_strerror(h->err));
        digest_ctx_free(h->ctx);
        s->ctx = NULL;
    }
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    free(h);
    u->hasher = NULL;
    atomic_fetch_sub(&hashers_running, 1);
}

/* Make sure the running hash covers the file's first `offset` bytes. */
static enum berth_err ensure_ctx(struct upload *u)
{
    struct upload_state *s = u->state;
    if (s->ctx != NULL) {
        return BERTH_OK;
    }
    struct digest_ctx *ctx = digest_ctx_new(s->alg);
    if (ctx == NULL) {
        return BERTH_ENOMEM;
    }
    enum berth_err rc = blob_stage_hash(u->data, ctx, s->offset);
    if (rc != BERTH_OK) {
        digest_ctx_free(ctx);
        return rc;
    }
    s->ctx = ctx;
    return BERTH_OK;
}

enum berth_err upload_write(struct upload *u, const void *p, size_t n)
{
    if (n == 0) {
        return BERTH_OK;
    }
    enum berth_err rc = u->hasher != NULL ? BERTH_OK : ensure_ctx(u);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct upload_state *s = u->state;
    rc = blob_stage_write(u->data, s->offset, p, n);
    if (rc != BERTH_OK) {
        int err = errno;
        hasher_drain(u);
        log_error("event=store_error op=upload_write uuid=%s errno=%d", s->uuid, err);
        /* Cut off whatever part of the write landed: the data must keep
         * matching the hash. */
        if (blob_stage_truncate(u->data, s->offset) != BERTH_OK) {
            digest_ctx_free(s->ctx);
            s->ctx = NULL;
        }
        return rc;
    }
    if (u->hasher != NULL) {
        s->offset += n;
        hasher_feed(u->hasher, s->offset);
        return BERTH_OK;
    }
    rc = digest_ctx_update(s->ctx, p, n);
    if (rc != BERTH_OK) {
        digest_ctx_free(s->ctx);
        s->ctx = NULL;
    }
    s->offset += n;
    hasher_start(u);
    return BERTH_OK;
}

enum berth_err upload_truncate(struct upload *u, uint64_t offset)
{
    struct upload_state *s = u->state;
    if (offset > s->offset) {
        return BERTH_ERANGE;
    }
    if (offset == s->offset) {
        return BERTH_OK;
    }
    hasher_drain(u);
    enum berth_err rc = blob_stage_truncate(u->data, offset);
    if (rc != BERTH_OK) {
        return rc;
    }
    digest_ctx_free(s->ctx);
    s->ctx = NULL;
    s->offset = offset;
    return BERTH_OK;
}

enum berth_err upload_peek(struct store *st, const char *uuid, int64_t repo_id, uint64_t *offset)
{
    if (!rand_is_uuid(uuid)) {
        return BERTH_ENOTFOUND;
    }
    struct meta *m = store_meta(st);
    if (m == NULL) {
        return BERTH_EDB;
    }
    struct meta_upload row;
    enum berth_err rc = meta_upload_get(m, uuid, &row);
    if (rc != BERTH_OK) {
        return rc;
    }
    if (row.repo_id != repo_id) {
        return BERTH_ENOTFOUND;
    }
    int64_t mtime;
    return blob_stage_stat(st->blobs, uuid, offset, &mtime);
}

void upload_release(struct upload *u)
{
    if (u == NULL) {
        return;
    }
    hasher_drain(u);
    blob_stage_close(u->data);
    unhold_state(u->st, u->state);
    free(u);
}

/* Digest of the session's content with alg (the running hash when it is
 * the session's own algorithm, otherwise one pass over the data). */
static enum berth_err content_digest(struct upload *u, enum digest_alg alg, struct digest *out)
{
    struct upload_state *s = u->state;
    hasher_drain(u);
    if (alg == s->alg) {
        enum berth_err rc = ensure_ctx(u);
        if (rc != BERTH_OK) {
            return rc;
        }
        struct digest_ctx *copy = digest_ctx_dup(s->ctx);
        if (copy == NULL) {
            return BERTH_ENOMEM;
        }
        rc = digest_ctx_final(copy, out);
        digest_ctx_free(copy);
        return rc;
    }
    struct digest_ctx *ctx = digest_ctx_new(alg);
    if (ctx == NULL) {
        return BERTH_ENOMEM;
    }
    enum berth_err rc = blob_stage_hash(u->data, ctx, s->offset);
    if (rc == BERTH_OK) {
        rc = digest_ctx_final(ctx, out);
    }
    digest_ctx_free(ctx);
    return rc;
}

/* Delete the session entirely (row, data, state) and free the handle. */
static void destroy_session(struct upload *u)
{
    struct store *st = u->st;
    hasher_drain(u);
    struct meta *m = store_meta(st);
    if (m != NULL) {
        meta_upload_delete(m, u->state->uuid);
    }
    blob_stage_close(u->data);
    blob_stage_remove(st->blobs, u->state->uuid);
    drop_state(st, u->state);
    free(u);
}

enum berth_err upload_complete(struct upload *u, const struct digest *expected,
                               struct meta_blob *out)
{
    struct store *st = u->st;
    struct upload_state *s = u->state;
    struct digest got;
    enum berth_err rc = content_digest(u, expected->alg, &got);
    if (rc != BERTH_OK) {
        upload_release(u);
        return rc;
    }
    if (strcmp(got.str, expected->str) != 0) {
        log_info("event=upload_digest_mismatch uuid=%s expected=%s got=%s", s->uuid, expected->str,
                 got.str);
        destroy_session(u);
        return BERTH_EDIGEST;
    }
    rc = blob_stage_sync(u->data);
    if (rc != BERTH_OK) {
        upload_release(u);
        return rc;
    }
    /* published from its name: the handle is done */
    blob_stage_close(u->data);
    u->data = NULL;
    /* The order that makes a 201 mean "on disk": the bytes (the stage's
     * fsync above), then the blob's name in its directory (here, outside
     * the database's write lock; inside it when this step could not), then
     * the rows (the commit, whose log sync ends meta_commit). */
    rc = blob_stage_prepublish(st->blobs, s->uuid, &got);
    if (rc != BERTH_OK) {
        upload_release(u);
        return rc;
    }
    fault_point("blob-prepublished");
    struct meta *m = store_meta(st);
    if (m == NULL) {
        upload_release(u);
        return BERTH_EDB;
    }
    int64_t now = time_now_ms();
    rc = meta_begin(m);
    if (rc != BERTH_OK) {
        upload_release(u);
        return rc;
    }
    int64_t blob_id = 0;
    rc = blob_stage_publish(st->blobs, s->uuid, &got);
    if (rc == BERTH_OK) {
        rc = meta_blob_upsert(m, got.str, (int64_t)s->offset, now, &blob_id);
    }
    if (rc == BERTH_OK) {
        /* the bytes are in the blob store now, whatever tier they were in */
        rc = meta_blob_set_tier(m, blob_id, META_TIER_STANDARD, 0, 0);
    }
    if (rc == BERTH_OK) {
        rc = meta_blob_link(m, s->repo_id, blob_id);
    }
    if (rc == BERTH_OK) {
        rc = meta_upload_delete(m, s->uuid);
    }
    if (rc == BERTH_OK) {
        rc = meta_commit(m);
    }
    if (rc != BERTH_OK) {
        meta_rollback(m);
        log_error("event=upload_publish_failed uuid=%s digest=%s err=%s", s->uuid, got.str,
                  berth_strerror(rc));
        /* The data file may already be in the blob store (an unreferenced
         * file the garbage collector removes); the session cannot go on. */
        destroy_session(u);
        return rc;
    }
    memset(out, 0, sizeof(*out));
    out->id = blob_id;
    memcpy(out->digest, got.str, sizeof(out->digest));
    out->size = (int64_t)s->offset;
    out->created_at = now;
    out->touched_at = now;
    drop_state(st, s);
    free(u);
    return BERTH_OK;
}

enum berth_err upload_cancel(struct store *st, const char *uuid, int64_t repo_id)
{
    struct upload *u = NULL;
    enum berth_err rc = upload_acquire(st, uuid, repo_id, &u);
    if (rc != BERTH_OK) {
        return rc;
    }
    destroy_session(u);
    return BERTH_OK;
}

struct expire_ctx {
    int64_t removed;
    char (*uuids)[RAND_UUID_LEN + 1];
    size_t count;
    size_t cap;
};

static int collect_old(void *arg, const struct meta_upload *row)
{
    struct expire_ctx *ec = arg;
    if (ec->count == ec->cap) {
        size_t cap = ec->cap ? ec->cap * 2 : 64;
        void *p = realloc(ec->uuids, cap * sizeof(*ec->uuids));
        if (p == NULL) {
            return 1;
        }
        ec->uuids = p;
        ec->cap = cap;
    }
    memcpy(ec->uuids[ec->count++], row->uuid, RAND_UUID_LEN + 1);
    return 0;
}

enum expiry {
    EXPIRY_KEEP,   /* in use: written to since the cutoff, or held by a request */
    EXPIRY_REMOVE, /* abandoned: row, data and state go */
    EXPIRY_FORGET, /* the data is gone: the row goes, nothing to count */
};

/* The fate of a session created before `before`, decided without changing
 * anything, so that a dry run counts what a real pass removes. */
static enum expiry session_expiry(struct store *st, const char *uuid, int64_t before)
{
    uint64_t size;
    int64_t mtime;
    enum berth_err rc = blob_stage_stat(st->blobs, uuid, &size, &mtime);
    if (rc != BERTH_OK) {
        return rc == BERTH_ENOTFOUND ? EXPIRY_FORGET : EXPIRY_KEEP;
    }
    /* An old session still being written is not abandoned. */
    if (mtime >= before) {
        return EXPIRY_KEEP;
    }
    pthread_mutex_lock(&st->uploads_lock);
    struct upload_state *s = find_state(st, uuid);
    bool held = s != NULL && s->held;
    pthread_mutex_unlock(&st->uploads_lock);
    return held ? EXPIRY_KEEP : EXPIRY_REMOVE;
}

struct orphan_ctx {
    struct store *st;
    struct meta *m;
    int64_t before;
    bool dry_run;
    int64_t removed;
};

/* A stage older than the cutoff with no session row goes. */
static enum berth_err expire_orphan(void *arg, const char *name, int64_t mtime)
{
    struct orphan_ctx *oc = arg;
    struct meta_upload row;
    if (mtime >= oc->before ||
        (rand_is_uuid(name) && meta_upload_get(oc->m, name, &row) != BERTH_ENOTFOUND)) {
        return BERTH_OK;
    }
    if (oc->dry_run) {
        oc->removed++;
    } else if (blob_stage_remove(oc->st->blobs, name) == BERTH_OK) {
        oc->removed++;
        log_info("event=upload_file_removed file=%s", name);
    }
    return BERTH_OK;
}

enum berth_err upload_expire(struct store *st, int64_t before, bool dry_run, int64_t *removed)
{
    struct meta *m = store_meta(st);
    if (m == NULL) {
        return BERTH_EDB;
    }
    struct expire_ctx ec = {0};
    enum berth_err rc = meta_upload_list_older(m, before, collect_old, &ec);
    for (size_t i = 0; rc == BERTH_OK && i < ec.count; i++) {
        enum expiry what = session_expiry(st, ec.uuids[i], before);
        struct meta_upload row;
        if (what == EXPIRY_KEEP || meta_upload_get(m, ec.uuids[i], &row) != BERTH_OK) {
            continue;
        }
        if (dry_run) {
            ec.removed += what == EXPIRY_REMOVE;
            continue;
        }
        /* Refused (BERTH_EBUSY) if a request took the session meanwhile;
         * forgets a session whose data is gone (BERTH_ENOTFOUND). */
        if (upload_cancel(st, ec.uuids[i], row.repo_id) == BERTH_OK) {
            ec.removed++;
            log_info("event=upload_expired uuid=%s", ec.uuids[i]);
        }
    }
    free(ec.uuids);
    if (rc != BERTH_OK) {
        return rc;
    }

    /* Stages with no session row: temporary manifests and sessions whose
     * row never committed or was removed while the data stayed (crashes). */
    struct orphan_ctx oc = {.st = st, .m = m, .before = before, .dry_run = dry_run};
    rc = blob_stage_list(st->blobs, expire_orphan, &oc);
    if (rc == BERTH_OK && removed) {
        *removed = ec.removed + oc.removed;
    }
    return rc;
}
