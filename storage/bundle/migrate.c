/*
 * berth migrate (see migrate.h): store to store through the blob
 * interface and storage/meta's table copy.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/rand.h"
#include "storage/blob/blob.h"
#include "storage/bundle/migrate.h"
#include "storage/meta/meta_copy.h"
#include "storage/spec/digest.h"

#define MIGRATE_CHUNK (1024 * 1024)

struct blob_row {
    struct digest d;
    uint64_t size;
};

struct row_list {
    struct blob_row *v;
    size_t n, cap;
};

static enum berth_err add_row(void *arg, const char *digest, int64_t size)
{
    struct row_list *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        struct blob_row *v = realloc(l->v, cap * sizeof(*v));
        if (v == NULL) {
            return BERTH_ENOMEM;
        }
        l->v = v;
        l->cap = cap;
    }
    if (digest_parse(digest, &l->v[l->n].d) != BERTH_OK) {
        log_error("event=migrate_bad_digest digest=%s", digest);
        return BERTH_EINVAL;
    }
    l->v[l->n].size = (uint64_t)size;
    l->n++;
    return BERTH_OK;
}

/* The blob rows of m, in a read snapshot. */
static enum berth_err blob_rows(struct meta *m, struct row_list *out)
{
    enum berth_err rc = meta_begin_read(m);
    if (rc != BERTH_OK) {
        return rc;
    }
    rc = meta_copy_blob_rows(m, add_row, out);
    meta_rollback(m);
    return rc;
}

/* Hash the blob d of bs through an fd; *ok when it hashes to d and has
 * size bytes. */
static enum berth_err hash_blob(struct blob_store *bs, const struct blob_row *r, bool *ok)
{
    int fd = -1;
    uint64_t size = 0;
    *ok = false;
    enum berth_err rc = blob_open(bs, &r->d, &fd, &size);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct digest_ctx *ctx = digest_ctx_new(r->d.alg);
    if (ctx == NULL) {
        close(fd);
        return BERTH_ENOMEM;
    }
    rc = digest_ctx_update_fd(ctx, fd, (off_t)size);
    struct digest got;
    if (rc == BERTH_OK) {
        rc = digest_ctx_final(ctx, &got);
    }
    digest_ctx_free(ctx);
    close(fd);
    if (rc == BERTH_OK) {
        *ok = size == r->size && strcmp(got.str, r->d.str) == 0;
    }
    return rc;
}

/* Copy one blob from src to dst, its digest checked before it is
 * published. */
static enum berth_err copy_blob(struct store *src, struct store *dst, const struct blob_row *r,
                                char *why, size_t why_cap)
{
    struct blob_store *sb = store_blobs(src);
    struct blob_store *db = store_blobs(dst);
    int fd = -1;
    uint64_t size = 0;
    enum berth_err rc = blob_open(sb, &r->d, &fd, &size);
    if (rc != BERTH_OK) {
        snprintf(why, why_cap, "cannot read blob %s of the source (%s)", r->d.str,
                 berth_strerror(rc));
        return rc;
    }
    char name[BLOB_STAGE_NAME_MAX + 1];
    char uuid[40];
    rc = rand_uuid(uuid);
    snprintf(name, sizeof(name), "migrate-%s", uuid);
    if (rc == BERTH_OK) {
        rc = blob_stage_create(db, name);
    }
    struct blob_stage *stage = NULL;
    uint64_t have = 0;
    if (rc == BERTH_OK) {
        rc = blob_stage_open(db, name, &stage, &have);
    }
    struct digest_ctx *ctx = rc == BERTH_OK ? digest_ctx_new(r->d.alg) : NULL;
    char *buf = rc == BERTH_OK ? malloc(MIGRATE_CHUNK) : NULL;
    if (rc == BERTH_OK && (ctx == NULL || buf == NULL)) {
        rc = BERTH_ENOMEM;
    }
    uint64_t off = 0;
    while (rc == BERTH_OK && off < size) {
        size_t want = size - off < MIGRATE_CHUNK ? (size_t)(size - off) : MIGRATE_CHUNK;
        ssize_t n = pread(fd, buf, want, (off_t)off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            rc = BERTH_EIO;
            break;
        }
        rc = digest_ctx_update(ctx, buf, (size_t)n);
        if (rc == BERTH_OK) {
            rc = blob_stage_write(stage, off, buf, (size_t)n);
        }
        off += (uint64_t)n;
    }
    free(buf);
    close(fd);
    struct digest got;
    if (rc == BERTH_OK) {
        rc = digest_ctx_final(ctx, &got);
    }
    digest_ctx_free(ctx);
    if (rc == BERTH_OK && (size != r->size || strcmp(got.str, r->d.str) != 0)) {
        snprintf(why, why_cap,
                 "blob %s of the source does not match its digest or size (got %s, %" PRIu64
                 " bytes); nothing was published for it",
                 r->d.str, got.str, size);
        rc = BERTH_EINVAL;
    }
    if (rc == BERTH_OK) {
        rc = blob_stage_sync(stage);
    }
    blob_stage_close(stage);
    /* the name's directory fsync before the write lock, as an upload's
     * (blob.h); inside, the file is only checked */
    if (rc == BERTH_OK) {
        rc = blob_stage_prepublish(db, name, &r->d);
    }
    if (rc != BERTH_OK) {
        (void)blob_stage_remove(db, name);
    }
    if (rc == BERTH_OK) {
        struct meta *m = store_meta(dst);
        rc = meta_begin(m);
        if (rc == BERTH_OK) {
            rc = blob_stage_publish(db, name, &r->d);
            if (rc == BERTH_OK) {
                rc = meta_commit(m);
            }
            meta_rollback(m);
        }
    }
    if (rc != BERTH_OK && why[0] == '\0') {
        snprintf(why, why_cap, "copying blob %s failed (%s)", r->d.str, berth_strerror(rc));
    }
    return rc;
}

static void report(migrate_progress_fn fn, void *arg, const struct migrate_progress *p,
                   int64_t *last)
{
    (void)last;
    if (fn != NULL) {
        fn(arg, p);
    }
}

enum berth_err migrate_run(struct store *src, struct store *dst, bool force,
                           migrate_progress_fn progress, void *arg, struct migrate_stats *stats,
                           char *why, size_t why_cap)
{
    memset(stats, 0, sizeof(*stats));
    why[0] = '\0';
    struct meta *sm = store_meta(src);
    struct meta *dm = store_meta(dst);
    char src_id[33];
    enum berth_err rc = meta_copy_registry_id(sm, src_id);
    if (rc != BERTH_OK) {
        snprintf(why, why_cap, "cannot read or make the source's registry id (%s)",
                 berth_strerror(rc));
        return rc;
    }
    rc = meta_copy_check(dm, src_id, force, why, why_cap);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct row_list rows = {0};
    rc = blob_rows(sm, &rows);
    if (rc != BERTH_OK) {
        snprintf(why, why_cap, "cannot list the source's blobs (%s)", berth_strerror(rc));
        free(rows.v);
        return rc;
    }
    /* 1: blobs */
    struct migrate_progress p = {.phase = MIGRATE_BLOBS, .total = (int64_t)rows.n};
    int64_t last = 0;
    report(progress, arg, &p, &last);
    for (size_t i = 0; rc == BERTH_OK && i < rows.n; i++) {
        uint64_t have = 0;
        enum berth_err st = blob_stat(store_blobs(dst), &rows.v[i].d, &have);
        if (st == BERTH_OK && have == rows.v[i].size) {
            p.present++;
        } else {
            rc = copy_blob(src, dst, &rows.v[i], why, why_cap);
            if (rc == BERTH_OK) {
                p.copied++;
                p.bytes += rows.v[i].size;
            }
        }
        p.done++;
        report(progress, arg, &p, &last);
    }
    stats->blobs = (int64_t)rows.n;
    stats->copied = p.copied;
    stats->present = p.present;
    stats->bytes = p.bytes;
    free(rows.v);
    if (rc != BERTH_OK) {
        return rc;
    }
    p.finished = true;
    report(progress, arg, &p, &last);
    /* 2: metadata */
    struct migrate_progress mp = {.phase = MIGRATE_METADATA};
    report(progress, arg, &mp, &last);
    struct meta_copy_stats ms;
    rc = meta_copy_all(sm, dm, src_id, &ms, why, why_cap);
    if (rc != BERTH_OK) {
        return rc;
    }
    stats->tables = ms.tables;
    stats->rows = ms.rows;
    mp.done = ms.rows;
    mp.finished = true;
    report(progress, arg, &mp, &last);
    /* 3: verify every blob the destination's metadata names (copying one
     * pushed to the source after phase 1), and the row counts */
    struct row_list drows = {0};
    rc = blob_rows(dm, &drows);
    if (rc != BERTH_OK) {
        snprintf(why, why_cap, "cannot list the destination's blobs (%s)", berth_strerror(rc));
        free(drows.v);
        return rc;
    }
    struct migrate_progress vp = {.phase = MIGRATE_VERIFY, .total = (int64_t)drows.n};
    report(progress, arg, &vp, &last);
    for (size_t i = 0; rc == BERTH_OK && i < drows.n; i++) {
        uint64_t have = 0;
        if (blob_stat(store_blobs(dst), &drows.v[i].d, &have) == BERTH_ENOTFOUND) {
            rc = copy_blob(src, dst, &drows.v[i], why, why_cap);
            if (rc != BERTH_OK) {
                break;
            }
            stats->copied++;
            stats->bytes += drows.v[i].size;
        }
        bool ok = false;
        rc = hash_blob(store_blobs(dst), &drows.v[i], &ok);
        if (rc == BERTH_OK && !ok) {
            rc = BERTH_EINVAL;
        }
        if (rc != BERTH_OK) {
            snprintf(why, why_cap, "blob %s in the destination %s", drows.v[i].d.str,
                     rc == BERTH_EINVAL ? "does not match its digest or size" : "cannot be read");
            break;
        }
        vp.done++;
        vp.bytes += drows.v[i].size;
        report(progress, arg, &vp, &last);
    }
    stats->verified = vp.done;
    free(drows.v);
    if (rc != BERTH_OK) {
        return rc;
    }
    rc = meta_begin_read(sm);
    if (rc == BERTH_OK) {
        rc = meta_begin_read(dm);
        if (rc == BERTH_OK) {
            rc = meta_copy_compare(sm, dm, why, why_cap);
        }
        meta_rollback(dm);
        meta_rollback(sm);
    }
    if (rc != BERTH_OK && why[0] == '\0') {
        snprintf(why, why_cap, "cannot compare the row counts (%s)", berth_strerror(rc));
    }
    vp.finished = true;
    if (rc == BERTH_OK) {
        report(progress, arg, &vp, &last);
    }
    return rc;
}
