/*
 * Upload sessions: database rows, their data as blob-store stages named by
 * the session id, and an in-memory table of running hash states keyed by
 * session id (guarded by store->uploads_lock). A state is "held" by at
 * most one request of this process. See upload.h.
 *
 * On a blob store with shared stages (S3) a session is shared instead
 * (the "shared" functions below): its row holds everything (the bytes
 * committed, the hash state after them, the blob store's stage state and
 * multipart upload), a request loads it at upload_acquire and commits at
 * upload_save only if the row is still at the generation it loaded, so
 * that any replica continues a session and two writers never both commit.
 */
#include "store_int.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/blob/blob.h"
#include "common/fault.h"
#include "common/log.h"
#include "common/str.h"
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

/* A shared session as a request loaded it. */
struct upload_shared {
    struct blob_shared *stage;
    struct digest_ctx *ctx; /* the hash of the first `offset` bytes */
    int64_t gen;            /* the row's generation at load (or last save) */
    uint64_t base;          /* bytes committed then */
    uint64_t offset;        /* bytes held now */
    char mpu[META_MPU_MAX]; /* the multipart upload recorded */
    char *hash_state;       /* the row's texts at load (or last save) */
    char *stage_state;
    bool failed; /* a write failed: only release is left */
};

struct upload {
    struct store *st;
    struct upload_state *state;
    struct blob_stage *data;
    uint64_t start;               /* the offset when this request took the session */
    struct hasher *hasher;        /* hashing the body on a thread of its own (below) */
    bool inline_only;             /* a hasher was tried in this request */
    struct upload_shared *shared; /* a shared session (then data is NULL) */
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
    if (st->shared_uploads) {
        /* nothing in the blob store until the first bytes come */
        rc = meta_upload_insert(m, &row);
        if (rc == BERTH_OK) {
            memcpy(uuid, row.uuid, RAND_UUID_LEN + 1);
        }
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
    /* a filesystem session's row counts its ECR layer parts */
    s->parts = st->shared_uploads || row.gen <= 0 ? 0
               : row.gen > (int64_t)UINT_MAX      ? UINT_MAX
                                                  : (unsigned)row.gen;
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

/* ---- shared sessions ---- */

static void shared_free(struct upload_shared *sh)
{
    if (sh == NULL) {
        return;
    }
    blob_shared_close(sh->stage);
    digest_ctx_free(sh->ctx);
    free(sh->hash_state);
    free(sh->stage_state);
    free(sh);
}

/* The blob store's part numbering: from the row, so that no two writers
 * of the session (on any replica) ever send the same part number. */
static enum berth_err shared_part_number(void *arg, const char *upload_id, int64_t *number,
                                         char *recorded)
{
    struct upload *u = arg;
    struct meta *m = store_meta(u->st);
    if (m == NULL) {
        return BERTH_EDB;
    }
    enum berth_err rc = meta_upload_next_part(m, u->state->uuid, upload_id, number, recorded);
    if (rc == BERTH_OK) {
        str_copy(u->shared->mpu, sizeof(u->shared->mpu), recorded);
    }
    return rc;
}

/* Open the hash and the blob store's stage from sh's texts. */
static enum berth_err shared_open_parts(struct upload *u)
{
    struct upload_shared *sh = u->shared;
    enum berth_err rc = BERTH_OK;
    if (sh->hash_state != NULL) {
        rc = digest_ctx_import(sh->hash_state, &sh->ctx);
        if (rc == BERTH_OK && digest_ctx_alg(sh->ctx) != u->state->alg) {
            rc = BERTH_EINVAL;
        }
        if (rc != BERTH_OK) {
            log_error("event=upload_hash_state_refused uuid=%s err=%s", u->state->uuid,
                      berth_strerror(rc));
        }
    } else if ((sh->ctx = digest_ctx_new(u->state->alg)) == NULL) {
        rc = BERTH_ENOMEM;
    }
    if (rc == BERTH_OK) {
        rc = blob_shared_open(u->st->blobs, u->state->uuid, sh->mpu, sh->stage_state,
                              shared_part_number, u, &sh->stage);
    }
    if (rc == BERTH_OK && blob_shared_size(sh->stage) != sh->base) {
        log_error("event=upload_state_size uuid=%s row=%llu stage=%llu", u->state->uuid,
                  (unsigned long long)sh->base, (unsigned long long)blob_shared_size(sh->stage));
        rc = BERTH_EIO;
    }
    if (rc != BERTH_OK) {
        blob_shared_close(sh->stage);
        sh->stage = NULL;
        digest_ctx_free(sh->ctx);
        sh->ctx = NULL;
    }
    sh->offset = sh->base;
    return rc;
}

/* Load a held session's shared state from its row. BERTH_ENOTFOUND when
 * the row is gone; BERTH_ERANGE when another writer kept replacing the
 * state while it was read. */
static enum berth_err shared_load(struct upload *u)
{
    struct meta *m = store_meta(u->st);
    if (m == NULL) {
        return BERTH_EDB;
    }
    enum berth_err rc = BERTH_OK;
    for (int attempt = 0; attempt < 3; attempt++) {
        struct upload_shared *sh = calloc(1, sizeof(*sh));
        if (sh == NULL) {
            return BERTH_ENOMEM;
        }
        struct meta_upload row;
        struct meta_upload_state state;
        rc = meta_upload_state_get(m, u->state->uuid, &row, &state);
        if (rc != BERTH_OK) {
            free(sh);
            return rc;
        }
        if (row.repo_id != u->state->repo_id) {
            meta_upload_state_fini(&state);
            free(sh);
            return BERTH_ENOTFOUND;
        }
        sh->gen = state.gen;
        sh->base = (uint64_t)row.size;
        str_copy(sh->mpu, sizeof(sh->mpu), state.mpu);
        sh->hash_state = state.hash_state;
        sh->stage_state = state.stage_state;
        u->shared = sh;
        rc = shared_open_parts(u);
        if (rc == BERTH_OK) {
            return BERTH_OK;
        }
        u->shared = NULL;
        shared_free(sh);
        if (rc != BERTH_ENOTFOUND) {
            return rc;
        }
        /* the tail object of the state read is gone: a newer commit
         * replaced it meanwhile; read the row again */
        rc = BERTH_ERANGE;
    }
    return rc;
}

static enum berth_err shared_write(struct upload *u, const void *p, size_t n)
{
    struct upload_shared *sh = u->shared;
    if (sh->failed || sh->stage == NULL) {
        return BERTH_EIO;
    }
    enum berth_err rc = blob_shared_write(sh->stage, p, n);
    if (rc == BERTH_OK) {
        rc = digest_ctx_update(sh->ctx, p, n);
    }
    if (rc != BERTH_OK) {
        /* what was committed stands; this request's bytes are dropped */
        log_error("event=store_error op=upload_write uuid=%s err=%s", u->state->uuid,
                  berth_strerror(rc));
        sh->failed = true;
        return rc;
    }
    sh->offset += n;
    return BERTH_OK;
}

/* Only back to what was committed: the state is loaded again. */
static enum berth_err shared_truncate(struct upload *u, uint64_t offset)
{
    struct upload_shared *sh = u->shared;
    if (offset == sh->offset && !sh->failed) {
        return BERTH_OK;
    }
    if (offset != sh->base) {
        return offset > sh->offset ? BERTH_ERANGE : BERTH_EUNSUPPORTED;
    }
    blob_shared_close(sh->stage);
    sh->stage = NULL;
    digest_ctx_free(sh->ctx);
    sh->ctx = NULL;
    sh->failed = false;
    enum berth_err rc = shared_open_parts(u);
    if (rc != BERTH_OK) {
        sh->failed = true;
    }
    return rc;
}

/* A row's text (NULL: empty) is this one. */
static bool same_text(const char *row, const char *mine)
{
    return strcmp(row != NULL ? row : "", mine) == 0;
}

/* A save whose commit failed otherwise than by a refusal (ERANGE) or a
 * gone session: the database may have made it and lost the answer, so the
 * row says what happened. Committed (the row is at the next generation
 * with this save's texts): *rc becomes BERTH_OK. Not committed (the row is
 * where this request loaded it): the saved tail goes. Otherwise (the row
 * unreadable, or moved on since) neither tail is deleted: the row may name
 * either, and the session's removal takes both. */
static enum blob_saved shared_settle(struct upload *u, const char *hash, const char *state,
                                     enum berth_err *rc)
{
    struct upload_shared *sh = u->shared;
    struct meta_upload row;
    struct meta_upload_state now;
    enum berth_err got = fault_injected("upload_reread_lost")
                             ? BERTH_EUNAVAILABLE
                             : meta_upload_state_get(store_meta(u->st), u->state->uuid, &row, &now);
    enum blob_saved how = BLOB_SAVED_UNKNOWN;
    if (got == BERTH_OK) {
        if (now.gen == sh->gen + 1 && row.size == (int64_t)sh->offset &&
            same_text(now.hash_state, hash) && same_text(now.stage_state, state)) {
            how = BLOB_SAVED_KEPT;
            *rc = BERTH_OK;
        } else if (now.gen == sh->gen) {
            how = BLOB_SAVED_REFUSED;
        }
        meta_upload_state_fini(&now);
    }
    log_warn("event=upload_save_uncertain uuid=%s gen=%lld err=%s outcome=%s", u->state->uuid,
             (long long)sh->gen, berth_strerror(*rc),
             how == BLOB_SAVED_KEPT      ? "committed"
             : how == BLOB_SAVED_REFUSED ? "not_committed"
                                         : "unknown");
    return how;
}

/* The row now says how far the session is (after a refused commit). */
static void shared_reread(struct upload *u)
{
    struct meta *m = store_meta(u->st);
    struct meta_upload row;
    if (m != NULL && meta_upload_get(m, u->state->uuid, &row) == BERTH_OK) {
        u->shared->offset = (uint64_t)row.size;
    }
}

enum berth_err upload_save(struct upload *u)
{
    struct upload_shared *sh = u->shared;
    if (sh == NULL) {
        return BERTH_OK; /* a local session's bytes are where they were written */
    }
    if (sh->failed || sh->stage == NULL) {
        return BERTH_EIO;
    }
    if (sh->offset == sh->base) {
        return BERTH_OK;
    }
    struct meta *m = store_meta(u->st);
    if (m == NULL) {
        return BERTH_EDB;
    }
    char hash[DIGEST_STATE_MAX];
    char *state = NULL;
    enum berth_err rc = digest_ctx_export(sh->ctx, hash, sizeof(hash));
    if (rc == BERTH_OK) {
        rc = blob_shared_save(sh->stage, &state);
    }
    if (rc == BERTH_OK) {
        rc = meta_upload_state_save(m, u->state->uuid, sh->gen, (int64_t)sh->offset, hash, state,
                                    time_now_ms());
        enum blob_saved how = rc == BERTH_OK ? BLOB_SAVED_KEPT : BLOB_SAVED_REFUSED;
        if (rc != BERTH_OK && rc != BERTH_ERANGE && rc != BERTH_ENOTFOUND) {
            how = shared_settle(u, hash, state, &rc);
        }
        blob_shared_saved(sh->stage, how);
    }
    if (rc == BERTH_OK) {
        char *hash_copy = strdup(hash);
        free(sh->hash_state);
        free(sh->stage_state);
        sh->hash_state = hash_copy;
        sh->stage_state = state;
        sh->gen++;
        sh->base = sh->offset;
        if (hash_copy == NULL) {
            sh->failed = true; /* committed; this handle cannot go on */
        }
        return BERTH_OK;
    }
    free(state);
    sh->failed = true;
    if (rc == BERTH_ERANGE) {
        log_info("event=upload_save_refused uuid=%s gen=%lld msg=\"another request committed "
                 "first\"",
                 u->state->uuid, (long long)sh->gen);
        shared_reread(u);
    }
    return rc;
}

/* Remove what a shared session keeps in the blob store (its row is gone
 * or going); mpu is the multipart upload the row recorded. */
static void shared_remove_data(struct store *st, const char *uuid, const char *mpu)
{
    enum berth_err rc = blob_shared_remove(st->blobs, uuid, mpu);
    if (rc != BERTH_OK) {
        log_warn("event=upload_data_left uuid=%s err=%s", uuid, berth_strerror(rc));
    }
}

/* Delete a held shared session entirely and free the handle. */
static void shared_destroy(struct upload *u)
{
    struct store *st = u->st;
    struct meta *m = store_meta(st);
    char mpu[META_MPU_MAX];
    str_copy(mpu, sizeof(mpu), u->shared->mpu);
    if (m != NULL) {
        /* the upload another writer may have recorded since the load */
        struct meta_upload row;
        struct meta_upload_state state;
        if (meta_upload_state_get(m, u->state->uuid, &row, &state) == BERTH_OK) {
            if (state.mpu[0] != '\0') {
                str_copy(mpu, sizeof(mpu), state.mpu);
            }
            meta_upload_state_fini(&state);
        }
        meta_upload_delete(m, u->state->uuid);
    }
    shared_free(u->shared);
    u->shared = NULL;
    shared_remove_data(st, u->state->uuid, mpu);
    drop_state(st, u->state);
    free(u);
}

/* The digest of a shared session's bytes; BERTH_EDIGEST (logged) when it
 * is not expected. */
static enum berth_err shared_digest(struct upload *u, const struct digest *expected,
                                    struct digest *got)
{
    struct upload_state *s = u->state;
    enum berth_err rc;
    if (expected->alg != s->alg) {
        /* hashed again from the store: the session's state is of the other
         * algorithm */
        log_info("event=upload_digest_algorithm uuid=%s session=%s expected=%s", s->uuid,
                 digest_alg_name(s->alg), expected->str);
        rc = blob_shared_rehash(u->shared->stage, expected->alg, got);
    } else {
        struct digest_ctx *copy = digest_ctx_dup(u->shared->ctx);
        rc = copy == NULL ? BERTH_ENOMEM : digest_ctx_final(copy, got);
        digest_ctx_free(copy);
    }
    if (rc == BERTH_OK && strcmp(got->str, expected->str) != 0) {
        log_info("event=upload_digest_mismatch uuid=%s expected=%s got=%s", s->uuid, expected->str,
                 got->str);
        rc = BERTH_EDIGEST;
    }
    return rc;
}

/* Record the published blob and end the session, in one transaction that
 * checks the blob is (still) there and that the session is still at the
 * generation this request loaded. */
static enum berth_err shared_record(struct upload *u, const struct digest *got, int64_t now,
                                    int64_t *blob_id)
{
    struct meta *m = store_meta(u->st);
    if (m == NULL) {
        return BERTH_EDB;
    }
    struct upload_shared *sh = u->shared;
    enum berth_err rc = meta_begin(m);
    if (rc != BERTH_OK) {
        return rc;
    }
    rc = blob_shared_publish(sh->stage, got);
    if (rc == BERTH_OK) {
        rc = meta_blob_upsert(m, got->str, (int64_t)sh->offset, now, blob_id);
    }
    if (rc == BERTH_OK) {
        rc = meta_blob_set_tier(m, *blob_id, META_TIER_STANDARD, 0, 0);
    }
    if (rc == BERTH_OK) {
        rc = meta_blob_link(m, u->state->repo_id, *blob_id);
    }
    if (rc == BERTH_OK) {
        /* Refused when another request committed to the session since
         * this one loaded it: what was published is still exactly the
         * bytes hashed (an unreferenced blob for the collector), but the
         * session is the other request's now. */
        rc = meta_upload_delete_at(m, u->state->uuid, sh->gen);
    }
    if (rc == BERTH_OK) {
        rc = meta_commit(m);
    }
    if (rc != BERTH_OK) {
        meta_rollback(m);
    }
    return rc;
}

static enum berth_err shared_complete(struct upload *u, const struct digest *expected,
                                      struct meta_blob *out)
{
    struct store *st = u->st;
    struct upload_state *s = u->state;
    struct upload_shared *sh = u->shared;
    if (sh->failed || sh->stage == NULL) {
        upload_release(u);
        return BERTH_EIO;
    }
    struct digest got = {0};
    enum berth_err rc = shared_digest(u, expected, &got);
    if (rc == BERTH_EDIGEST) {
        shared_destroy(u);
        return rc;
    }
    /* The slow part (the last part, completion, the server-side copy)
     * before the write transaction, so that it does not hold every other
     * writer of the cluster; inside, the blob is only checked again. */
    if (rc == BERTH_OK) {
        rc = blob_shared_publish(sh->stage, &got);
    }
    int64_t now = time_now_ms();
    int64_t blob_id = 0;
    if (rc == BERTH_OK) {
        rc = shared_record(u, &got, now, &blob_id);
    }
    if (rc != BERTH_OK) {
        log_error("event=upload_publish_failed uuid=%s digest=%s err=%s", s->uuid, got.str,
                  berth_strerror(rc));
        /* The session stays at what it committed (the client may try
         * again), unless it is broken. */
        if (rc == BERTH_ERANGE) {
            shared_reread(u);
        }
        upload_release(u);
        return rc;
    }
    char mpu[META_MPU_MAX];
    str_copy(mpu, sizeof(mpu), sh->mpu);
    memset(out, 0, sizeof(*out));
    out->id = blob_id;
    memcpy(out->digest, got.str, sizeof(out->digest));
    out->size = (int64_t)sh->offset;
    out->created_at = now;
    out->touched_at = now;
    shared_free(sh);
    u->shared = NULL;
    shared_remove_data(st, s->uuid, mpu);
    drop_state(st, s);
    free(u);
    return BERTH_OK;
}

/* Cancel a shared session without loading its bytes. */
static enum berth_err shared_cancel(struct store *st, const char *uuid, int64_t repo_id)
{
    if (!rand_is_uuid(uuid)) {
        return BERTH_ENOTFOUND;
    }
    struct upload_state *s = NULL;
    enum berth_err rc = hold_state(st, uuid, repo_id, &s);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct meta *m = store_meta(st);
    struct meta_upload row;
    struct meta_upload_state state;
    rc = m == NULL ? BERTH_EDB : meta_upload_state_get(m, uuid, &row, &state);
    if (rc == BERTH_OK) {
        meta_upload_state_fini(&state);
        rc = meta_upload_delete(m, uuid);
    }
    if (rc == BERTH_OK) {
        shared_remove_data(st, uuid, state.mpu);
    }
    if (rc == BERTH_OK || rc == BERTH_ENOTFOUND) {
        drop_state(st, s);
    } else {
        unhold_state(st, s);
    }
    return rc;
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
    if (st->shared_uploads) {
        rc = shared_load(u);
        if (rc == BERTH_ENOTFOUND) {
            drop_state(st, s);
            free(u);
            return rc;
        }
        if (rc != BERTH_OK) {
            unhold_state(st, s);
            free(u);
            return rc;
        }
        *out = u;
        return BERTH_OK;
    }
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
    return u->shared != NULL ? u->shared->offset : u->state->offset;
}

unsigned upload_parts(const struct upload *u)
{
    /* A shared session's row counts its commits, one per part (a part is
     * never empty), for every replica and across restarts. */
    unsigned parts = u->state->parts;
    if (u->shared != NULL && u->shared->gen > (int64_t)parts) {
        parts = u->shared->gen > (int64_t)UINT_MAX ? UINT_MAX : (unsigned)u->shared->gen;
    }
    return parts;
}

void upload_add_part(struct upload *u)
{
    u->state->parts++;
    if (u->shared != NULL) {
        return; /* its commit counted it (upload_parts) */
    }
    /* the row counts them too, for after a restart (hold_state) */
    struct meta *m = store_meta(u->st);
    int64_t parts = 0;
    enum berth_err rc = m == NULL ? BERTH_EDB : meta_upload_count_part(m, u->state->uuid, &parts);
    if (rc != BERTH_OK) {
        log_warn("event=upload_part_count_failed uuid=%s err=%s", u->state->uuid,
                 berth_strerror(rc));
    } else if (parts > (int64_t)u->state->parts) {
        u->state->parts = parts > (int64_t)UINT_MAX ? UINT_MAX : (unsigned)parts;
    }
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

/* A body past this many bytes in one request gets a hasher (16 MiB:
 * with 2 MiB, 10 MiB pushes were 0.7x-1.0x of inline hashing in six
 * side-by-side runs on a busy 2-core VM, docs/benchmarks.md; the hasher's
 * read-back copy and its hand-over at the end cost more than a 10 MiB
 * body's hashing gains). */
#define UPLOAD_PIPE_MIN ((uint64_t)16 << 20)
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
    if (u->shared != NULL) {
        return shared_write(u, p, n);
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
    if (u->shared != NULL) {
        return shared_truncate(u, offset);
    }
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
    if (st->shared_uploads) {
        *offset = (uint64_t)row.size; /* what was committed, on whichever replica */
        return BERTH_OK;
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
    shared_free(u->shared);
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
    if (u->shared != NULL) {
        return shared_complete(u, expected, out);
    }
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
    if (st->shared_uploads) {
        return shared_cancel(st, uuid, repo_id);
    }
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
static enum expiry session_expiry(struct store *st, const struct meta_upload *row, int64_t before)
{
    const char *uuid = row->uuid;
    uint64_t size;
    int64_t mtime = row->updated_at; /* a shared session: its last commit */
    enum berth_err rc =
        st->shared_uploads ? BERTH_OK : blob_stage_stat(st->blobs, uuid, &size, &mtime);
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
        struct meta_upload row;
        if (meta_upload_get(m, ec.uuids[i], &row) != BERTH_OK) {
            continue;
        }
        enum expiry what = session_expiry(st, &row, before);
        if (what == EXPIRY_KEEP) {
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

/* A stage is live while a session row names it. */
static enum berth_err session_live(void *arg, const char *name, bool *live)
{
    struct meta *m = arg;
    *live = false;
    if (!rand_is_uuid(name)) {
        return BERTH_OK;
    }
    struct meta_upload row;
    enum berth_err rc = meta_upload_get(m, name, &row);
    *live = rc != BERTH_ENOTFOUND;
    return rc == BERTH_ENOTFOUND ? BERTH_OK : rc;
}

enum berth_err upload_sweep_shared(struct store *st, int64_t before, bool dry_run, int64_t *removed)
{
    struct meta *m = store_meta(st);
    if (m == NULL) {
        return BERTH_EDB;
    }
    int64_t in_blobs = 0, in_archive = 0;
    enum berth_err rc = blob_shared_sweep(st->blobs, before, session_live, m, dry_run, &in_blobs);
    if (rc == BERTH_OK && st->archive != NULL) {
        rc = blob_shared_sweep(st->archive, before, session_live, m, dry_run, &in_archive);
    }
    if (removed != NULL) {
        *removed = in_blobs + in_archive;
    }
    return rc;
}
