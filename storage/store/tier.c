/*
 * The archive tier: moving blobs between the blob store and the archive
 * store, and the repair of what a crash leaves. See tier.h.
 */
#include "storage/store/tier.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "common/fault.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/rand.h"
#include "common/timeutil.h"
#include "common/wake.h"
#include "storage/blob/blob.h"
#include "storage/meta/meta.h"
#include "storage/meta/meta_tier.h"
#include "store_int.h"

/* Bytes read from a copy at a time. */
#define TIER_BLOCK (1u << 20)
/* Rows read per page. */
#define TIER_PAGE 256
/* A blob touched (uploaded again, mounted) after its images were archived
 * stays in the blob store this long: its push is likely to be followed by
 * a manifest that uses it (meta_tier.h). */
#define TIER_QUIET_MS (10 * 60 * 1000LL)

bool store_tier_enabled(struct store *st)
{
    return st->archive != NULL;
}

/* ---- wake-up ---- */

static struct wake wake = WAKE_INIT;

void store_tier_notify(void)
{
    wake_notify(&wake);
}

void store_tier_wait(uint64_t *seen, int64_t timeout_ms, const atomic_bool *stop)
{
    wake_wait(&wake, seen, timeout_ms, stop);
}

/* ---- helpers ---- */

static bool is_cancelled(const atomic_bool *cancel)
{
    return cancel != NULL && atomic_load(cancel);
}

static enum berth_err stage_name(const char *prefix, char *name)
{
    char uuid[RAND_UUID_LEN + 1];
    enum berth_err rc = rand_uuid(uuid);
    if (rc == BERTH_OK) {
        size_t n = strlen(prefix);
        memcpy(name, prefix, n);
        memcpy(name + n, uuid, sizeof(uuid));
    }
    return rc;
}

static enum berth_err pread_some(int fd, void *p, size_t n, uint64_t off, size_t *got)
{
    for (;;) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r >= 0) {
            *got = (size_t)r;
            return BERTH_OK;
        }
        if (errno != EINTR) {
            return BERTH_EIO;
        }
    }
}

/* ---- archive ---- */

/* Write the blob's bytes from fd (size bytes, hashing them) into the stage
 * s, zstd-compressed at level (0: as they are). *stored: bytes written.
 * BERTH_EDIGEST when the bytes do not hash to d. */
static enum berth_err encode(int fd, uint64_t size, const struct digest *d, int level,
                             struct blob_stage *s, uint64_t *stored)
{
    unsigned char *in = malloc(TIER_BLOCK);
    size_t out_cap = ZSTD_CStreamOutSize();
    unsigned char *out = malloc(out_cap);
    struct digest_ctx *h = digest_ctx_new(d->alg);
    ZSTD_CCtx *z = level > 0 ? ZSTD_createCCtx() : NULL;
    enum berth_err rc = (in == NULL || out == NULL || h == NULL || (level > 0 && z == NULL))
                            ? BERTH_ENOMEM
                            : BERTH_OK;
    if (rc == BERTH_OK && z != NULL &&
        (ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, level)) ||
         ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(z, size)))) {
        rc = BERTH_EIO;
    }
    uint64_t off = 0, wrote = 0;
    while (rc == BERTH_OK) {
        size_t got = 0;
        size_t want = size - off < TIER_BLOCK ? (size_t)(size - off) : TIER_BLOCK;
        rc = pread_some(fd, in, want, off, &got);
        if (rc != BERTH_OK) {
            break;
        }
        if (got == 0 && off < size) {
            rc = BERTH_EIO; /* shorter than its size */
            break;
        }
        off += got;
        rc = digest_ctx_update(h, in, got);
        if (rc != BERTH_OK) {
            break;
        }
        bool last = off >= size;
        if (z == NULL) {
            rc = blob_stage_write(s, wrote, in, got);
            wrote += got;
        } else {
            ZSTD_inBuffer ib = {in, got, 0};
            bool finished = false;
            while (rc == BERTH_OK && !finished) {
                ZSTD_outBuffer ob = {out, out_cap, 0};
                size_t left =
                    ZSTD_compressStream2(z, &ob, &ib, last ? ZSTD_e_end : ZSTD_e_continue);
                if (ZSTD_isError(left)) {
                    rc = BERTH_EIO;
                    break;
                }
                if (ob.pos > 0) {
                    rc = blob_stage_write(s, wrote, out, ob.pos);
                    wrote += ob.pos;
                }
                finished = last ? left == 0 : ib.pos == ib.size;
            }
        }
        if (last) {
            break;
        }
    }
    if (rc == BERTH_OK) {
        struct digest got_d;
        rc = digest_ctx_final(h, &got_d);
        if (rc == BERTH_OK && strcmp(got_d.str, d->str) != 0) {
            rc = BERTH_EDIGEST;
        }
    }
    *stored = wrote;
    ZSTD_freeCCtx(z);
    digest_ctx_free(h);
    free(out);
    free(in);
    return rc;
}

/* Stage the archive copy of b: zstd when that makes it smaller, else the
 * bytes as they are. *name is the stage (synced, closed). */
static enum berth_err stage_archive_copy(struct store *st, const struct meta_blob *b,
                                         const struct digest *d, char *name, uint64_t *stored,
                                         int *codec)
{
    int fd = -1;
    uint64_t size = 0;
    enum berth_err rc = blob_open(st->blobs, d, &fd, &size);
    if (rc != BERTH_OK) {
        return rc;
    }
    if ((int64_t)size != b->size) {
        (void)file_close(fd);
        return BERTH_EDIGEST;
    }
    rc = stage_name("arc-", name);
    if (rc == BERTH_OK) {
        rc = blob_stage_create(st->archive, name);
    }
    if (rc != BERTH_OK) {
        (void)file_close(fd);
        name[0] = '\0';
        return rc;
    }
    struct blob_stage *s = NULL;
    uint64_t ignored = 0;
    rc = blob_stage_open(st->archive, name, &s, &ignored);
    int level = st->opt.archive_zstd_level;
    *codec = level > 0 ? TIER_CODEC_ZSTD : TIER_CODEC_RAW;
    if (rc == BERTH_OK) {
        rc = encode(fd, size, d, level, s, stored);
    }
    if (rc == BERTH_OK && level > 0 && *stored >= size) {
        /* zstd does not shrink it (a compressed layer): keep it as it is */
        *codec = TIER_CODEC_RAW;
        rc = blob_stage_truncate(s, 0);
        if (rc == BERTH_OK) {
            rc = encode(fd, size, d, 0, s, stored);
        }
    }
    if (rc == BERTH_OK) {
        rc = blob_stage_sync(s);
    }
    blob_stage_close(s);
    (void)file_close(fd);
    if (rc != BERTH_OK) {
        blob_stage_remove(st->archive, name);
        name[0] = '\0';
    }
    return rc;
}

/* Move one blob to the archive tier. *moved tells whether it did (the
 * rule may no longer allow it). */
static enum berth_err archive_blob(struct store *st, struct meta *m, const struct meta_blob *b,
                                   bool *moved)
{
    *moved = false;
    struct digest d;
    if (digest_parse(b->digest, &d) != BERTH_OK) {
        return BERTH_OK;
    }
    char name[BLOB_STAGE_NAME_MAX + 1] = "";
    uint64_t stored = 0;
    int codec = TIER_CODEC_RAW;
    enum berth_err rc = stage_archive_copy(st, b, &d, name, &stored, &codec);
    if (rc != BERTH_OK) {
        log_error("event=archive_error op=copy digest=%s err=%s", d.str, berth_strerror(rc));
        return rc;
    }
    fault_point("archive-staged");
    struct blob_removal removal;
    memset(&removal, 0, sizeof(removal));
    bool removed = false;
    rc = meta_begin(m);
    if (rc != BERTH_OK) {
        blob_stage_remove(st->archive, name);
        return rc;
    }
    struct meta_blob row;
    bool ok = false;
    rc = meta_blob_get(m, d.str, &row);
    if (rc == BERTH_OK && row.id == b->id && row.tier == META_TIER_STANDARD) {
        rc = meta_tier_archivable(m, row.id, time_now_ms() - TIER_QUIET_MS, &ok);
    } else if (rc == BERTH_ENOTFOUND || rc == BERTH_OK) {
        rc = BERTH_OK; /* gone, or changed since the candidate was read */
    }
    if (rc == BERTH_OK && ok) {
        /* an archive copy left by an earlier attempt may be coded
         * otherwise: this one replaces it (the row is standard, so no one
         * reads it) */
        enum berth_err del = blob_delete(st->archive, &d);
        if (del != BERTH_OK && del != BERTH_ENOTFOUND) {
            rc = del;
        }
    }
    if (rc == BERTH_OK && ok) {
        rc = blob_stage_publish(st->archive, name, &d);
        if (rc == BERTH_OK) {
            name[0] = '\0';
            fault_point("archive-published");
            rc = meta_blob_set_tier(m, row.id, META_TIER_ARCHIVE, (int64_t)stored, codec);
        }
    }
    if (rc == BERTH_OK && ok) {
        rc = blob_remove(st->blobs, &d, &removal);
        removed = rc == BERTH_OK;
        if (rc == BERTH_OK) {
            fault_point("archive-flipped");
        }
    }
    if (rc == BERTH_OK) {
        rc = ok ? meta_commit(m) : BERTH_OK;
    }
    if (!ok || rc != BERTH_OK) {
        meta_rollback(m);
    }
    if (name[0] != '\0') {
        blob_stage_remove(st->archive, name);
    }
    if (rc != BERTH_OK) {
        log_error("event=archive_error op=move digest=%s err=%s", d.str, berth_strerror(rc));
        if (removed) {
            (void)store_settle_trash(st);
        }
        return rc;
    }
    if (!ok) {
        return BERTH_OK;
    }
    fault_point("archive-committed");
    if (removed) {
        (void)blob_removal_finish(st->blobs, &removal);
    }
    *moved = true;
    log_info("event=blob_archived digest=%s size=%lld stored=%llu codec=%s saved=%lld", d.str,
             (long long)b->size, (unsigned long long)stored,
             codec == TIER_CODEC_ZSTD ? "zstd" : "raw", (long long)b->size - (long long)stored);
    return BERTH_OK;
}

/* ---- restore ---- */

/* Decode the archive copy (fd, stored bytes, coded codec) into stage s,
 * checking that the bytes hash to d and number size. */
static enum berth_err decode(int fd, uint64_t stored, int codec, const struct digest *d,
                             uint64_t size, struct blob_stage *s)
{
    unsigned char *in = malloc(TIER_BLOCK);
    size_t out_cap = ZSTD_DStreamOutSize();
    unsigned char *out = malloc(out_cap);
    struct digest_ctx *h = digest_ctx_new(d->alg);
    ZSTD_DCtx *z = codec == TIER_CODEC_ZSTD ? ZSTD_createDCtx() : NULL;
    enum berth_err rc =
        (in == NULL || out == NULL || h == NULL || (codec == TIER_CODEC_ZSTD && z == NULL))
            ? BERTH_ENOMEM
            : BERTH_OK;
    if (rc == BERTH_OK && codec != TIER_CODEC_ZSTD && codec != TIER_CODEC_RAW) {
        rc = BERTH_EINVAL;
    }
    uint64_t off = 0, wrote = 0;
    size_t frame_left = 1;
    while (rc == BERTH_OK && off < stored) {
        size_t got = 0;
        size_t want = stored - off < TIER_BLOCK ? (size_t)(stored - off) : TIER_BLOCK;
        rc = pread_some(fd, in, want, off, &got);
        if (rc == BERTH_OK && got == 0) {
            rc = BERTH_EIO;
        }
        if (rc != BERTH_OK) {
            break;
        }
        off += got;
        if (z == NULL) {
            rc = digest_ctx_update(h, in, got);
            if (rc == BERTH_OK) {
                rc = blob_stage_write(s, wrote, in, got);
            }
            wrote += got;
            continue;
        }
        ZSTD_inBuffer ib = {in, got, 0};
        while (rc == BERTH_OK && ib.pos < ib.size) {
            ZSTD_outBuffer ob = {out, out_cap, 0};
            frame_left = ZSTD_decompressStream(z, &ob, &ib);
            if (ZSTD_isError(frame_left)) {
                rc = BERTH_EDIGEST;
                break;
            }
            if (ob.pos > 0) {
                if (wrote + ob.pos > size) {
                    rc = BERTH_EDIGEST;
                    break;
                }
                rc = digest_ctx_update(h, out, ob.pos);
                if (rc == BERTH_OK) {
                    rc = blob_stage_write(s, wrote, out, ob.pos);
                }
                wrote += ob.pos;
            }
        }
    }
    /* flush what the decoder still holds */
    while (rc == BERTH_OK && z != NULL && frame_left != 0) {
        ZSTD_inBuffer ib = {in, 0, 0};
        ZSTD_outBuffer ob = {out, out_cap, 0};
        frame_left = ZSTD_decompressStream(z, &ob, &ib);
        if (ZSTD_isError(frame_left) || ob.pos == 0) {
            rc = BERTH_EDIGEST; /* a truncated frame */
            break;
        }
        if (wrote + ob.pos > size) {
            rc = BERTH_EDIGEST;
            break;
        }
        rc = digest_ctx_update(h, out, ob.pos);
        if (rc == BERTH_OK) {
            rc = blob_stage_write(s, wrote, out, ob.pos);
        }
        wrote += ob.pos;
    }
    if (rc == BERTH_OK && wrote != size) {
        rc = BERTH_EDIGEST;
    }
    if (rc == BERTH_OK) {
        struct digest got_d;
        rc = digest_ctx_final(h, &got_d);
        if (rc == BERTH_OK && strcmp(got_d.str, d->str) != 0) {
            rc = BERTH_EDIGEST;
        }
    }
    ZSTD_freeDCtx(z);
    digest_ctx_free(h);
    free(out);
    free(in);
    return rc;
}

/* In a write transaction of its own: delete the archive copy of d unless
 * its row names the archive tier. */
static enum berth_err drop_archive_copy(struct store *st, struct meta *m, const struct digest *d)
{
    enum berth_err rc = meta_begin(m);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct meta_blob row;
    rc = meta_blob_get(m, d->str, &row);
    if (rc == BERTH_ENOTFOUND || (rc == BERTH_OK && row.tier != META_TIER_ARCHIVE)) {
        rc = blob_delete(st->archive, d);
        if (rc == BERTH_ENOTFOUND) {
            rc = BERTH_OK;
        }
    }
    if (rc == BERTH_OK) {
        rc = meta_commit(m);
    }
    if (rc != BERTH_OK) {
        meta_rollback(m);
    }
    return rc;
}

/* Bring one blob back from the archive tier. */
static enum berth_err restore_blob(struct store *st, struct meta *m, const struct meta_blob *b)
{
    fault_hold("restore"); /* tests: BERTH_TEST_HOLD_RESTORE holds restores back */
    struct digest d;
    if (digest_parse(b->digest, &d) != BERTH_OK) {
        return BERTH_OK;
    }
    int fd = -1;
    uint64_t stored = 0;
    enum berth_err rc = blob_open(st->archive, &d, &fd, &stored);
    if (rc != BERTH_OK) {
        log_error("event=archive_error op=restore_open digest=%s err=%s", d.str,
                  berth_strerror(rc));
        return rc;
    }
    char name[BLOB_STAGE_NAME_MAX + 1] = "";
    rc = stage_name("tmp-", name);
    if (rc == BERTH_OK) {
        rc = blob_stage_create(st->blobs, name);
        if (rc != BERTH_OK) {
            name[0] = '\0';
        }
    }
    struct blob_stage *s = NULL;
    uint64_t ignored = 0;
    if (rc == BERTH_OK) {
        rc = blob_stage_open(st->blobs, name, &s, &ignored);
    }
    if (rc == BERTH_OK) {
        rc = decode(fd, stored, b->archive_codec, &d, (uint64_t)b->size, s);
    }
    if (rc == BERTH_OK) {
        rc = blob_stage_sync(s);
    }
    blob_stage_close(s);
    (void)file_close(fd);
    if (rc != BERTH_OK) {
        log_error(
            "event=archive_error op=restore_copy digest=%s err=%s%s", d.str, berth_strerror(rc),
            rc == BERTH_EDIGEST ? " msg=\"the archive copy does not decode to the blob\"" : "");
        if (name[0] != '\0') {
            blob_stage_remove(st->blobs, name);
        }
        return rc;
    }
    fault_point("restore-staged");
    /* the name's directory fsync before the write lock, as an upload's
     * (blob.h): a file with a row still on the archive tier is what a
     * crash inside the transaction leaves too (recovery keeps the tier
     * the row names) */
    rc = blob_stage_prepublish(st->blobs, name, &d);
    if (rc != BERTH_OK) {
        log_error("event=archive_error op=restore_link digest=%s err=%s", d.str,
                  berth_strerror(rc));
        blob_stage_remove(st->blobs, name);
        return rc;
    }
    fault_point("restore-prepublished");
    bool flipped = false;
    rc = meta_begin(m);
    if (rc == BERTH_OK) {
        struct meta_blob row;
        rc = meta_blob_get(m, d.str, &row);
        if (rc == BERTH_OK && row.tier == META_TIER_ARCHIVE) {
            rc = blob_stage_publish(st->blobs, name, &d);
            if (rc == BERTH_OK) {
                name[0] = '\0';
                fault_point("restore-published");
                rc = meta_blob_set_tier(m, row.id, META_TIER_STANDARD, 0, 0);
                flipped = rc == BERTH_OK;
            }
        } else if (rc == BERTH_ENOTFOUND || rc == BERTH_OK) {
            rc = BERTH_OK; /* brought back by an upload, or gone */
        }
        if (rc == BERTH_OK) {
            rc = meta_commit(m);
        }
        if (rc != BERTH_OK) {
            meta_rollback(m);
            flipped = false;
        }
    }
    if (name[0] != '\0') {
        blob_stage_remove(st->blobs, name);
    }
    if (rc != BERTH_OK) {
        log_error("event=archive_error op=restore digest=%s err=%s", d.str, berth_strerror(rc));
        return rc;
    }
    fault_point("restore-committed");
    rc = drop_archive_copy(st, m, &d);
    if (rc != BERTH_OK) {
        log_warn("event=archive_error op=drop_copy digest=%s err=%s msg=\"removed by the next "
                 "garbage collection\"",
                 d.str, berth_strerror(rc));
    }
    if (flipped) {
        log_info("event=blob_restored digest=%s size=%lld", d.str, (long long)b->size);
    }
    return BERTH_OK;
}

/* ---- the pass ---- */

struct blob_list {
    struct meta_blob *v;
    size_t n;
    size_t cap;
    bool oom;
};

static int collect_blob(void *arg, const struct meta_blob *b)
{
    struct blob_list *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        void *p = realloc(l->v, cap * sizeof(*l->v));
        if (p == NULL) {
            l->oom = true;
            return 1;
        }
        l->v = p;
        l->cap = cap;
    }
    l->v[l->n++] = *b;
    return 0;
}

struct id_list {
    int64_t v[TIER_PAGE];
    size_t n;
};

static int collect_id(void *arg, int64_t id)
{
    struct id_list *l = arg;
    if (l->n < TIER_PAGE) {
        l->v[l->n++] = id;
    }
    return 0;
}

/* Bring back the blobs of the manifests marked restoring, then clear the
 * mark of each whose blobs are all back. */
static enum berth_err restore_marked(struct store *st, struct meta *m, const atomic_bool *cancel,
                                     struct tier_stats *stats)
{
    int64_t after = 0;
    struct blob_list blobs = {0};
    enum berth_err rc = BERTH_OK;
    /* an index finishes after the manifests it lists: one whose blobs are
     * all back but that waited for a child finished later in the round is
     * taken again in another round */
    bool waited = false, finished = false;
    while (rc == BERTH_OK && !is_cancelled(cancel)) {
        struct id_list ids = {.n = 0};
        rc = meta_tier_restoring(m, after, TIER_PAGE, collect_id, &ids);
        if (rc == BERTH_OK && ids.n == 0 && waited && finished) {
            after = 0;
            waited = finished = false;
            continue;
        }
        if (rc != BERTH_OK || ids.n == 0) {
            break;
        }
        after = ids.v[ids.n - 1];
        for (size_t i = 0; rc == BERTH_OK && i < ids.n && !is_cancelled(cancel); i++) {
            blobs.n = 0;
            rc = meta_tier_manifest_archived(m, ids.v[i], collect_blob, &blobs);
            if (rc == BERTH_OK && blobs.oom) {
                rc = BERTH_ENOMEM;
            }
            bool all_back = true;
            for (size_t k = 0; rc == BERTH_OK && k < blobs.n && !is_cancelled(cancel); k++) {
                if (restore_blob(st, m, &blobs.v[k]) == BERTH_OK) {
                    stats->restored++;
                    stats->restored_bytes += blobs.v[k].size;
                } else {
                    stats->failed++;
                    all_back = false;
                }
            }
            if (rc != BERTH_OK || !all_back || is_cancelled(cancel)) {
                continue;
            }
            bool done = false;
            rc = meta_begin(m);
            if (rc == BERTH_OK) {
                rc = meta_tier_finish_restoring(m, ids.v[i], &done);
                rc = rc == BERTH_OK ? meta_commit(m) : rc;
                if (rc != BERTH_OK) {
                    meta_rollback(m);
                }
            }
            waited = waited || (rc == BERTH_OK && !done);
            finished = finished || (rc == BERTH_OK && done);
            if (rc == BERTH_OK && done) {
                stats->images_restored++;
                log_info("event=image_restored manifest_id=%lld", (long long)ids.v[i]);
            }
        }
    }
    free(blobs.v);
    return rc;
}

/* Move every blob the rule allows to the archive tier. */
static enum berth_err archive_candidates(struct store *st, struct meta *m,
                                         const atomic_bool *cancel, struct tier_stats *stats)
{
    int64_t after = 0;
    struct blob_list cands = {0};
    enum berth_err rc = BERTH_OK;
    while (rc == BERTH_OK && !is_cancelled(cancel)) {
        cands.n = 0;
        rc = meta_tier_candidates(m, after, TIER_PAGE, time_now_ms() - TIER_QUIET_MS, collect_blob,
                                  &cands);
        if (rc == BERTH_OK && cands.oom) {
            rc = BERTH_ENOMEM;
        }
        if (rc != BERTH_OK || cands.n == 0) {
            break;
        }
        after = cands.v[cands.n - 1].id;
        for (size_t i = 0; i < cands.n && !is_cancelled(cancel); i++) {
            bool moved = false;
            fault_hold("archive"); /* a test's pause before a move */
            if (archive_blob(st, m, &cands.v[i], &moved) != BERTH_OK) {
                stats->failed++;
            } else if (moved) {
                int64_t stored = 0;
                struct meta_blob row;
                if (meta_blob_get(m, cands.v[i].digest, &row) == BERTH_OK) {
                    stored = row.archived_size;
                }
                stats->archived++;
                stats->archived_bytes += cands.v[i].size;
                stats->stored_bytes += stored;
            }
        }
    }
    free(cands.v);
    return rc;
}

enum berth_err store_tier_pass(struct store *st, const atomic_bool *cancel, struct tier_stats *out)
{
    if (st->archive == NULL) {
        return BERTH_OK;
    }
    struct meta *m;
    enum berth_err got = store_meta_get(st, &m);
    if (got != BERTH_OK) {
        return got;
    }
    struct tier_stats stats;
    memset(&stats, 0, sizeof(stats));
    int64_t t0 = time_mono_ns();
    enum berth_err rc = restore_marked(st, m, cancel, &stats);
    if (rc == BERTH_OK) {
        rc = archive_candidates(st, m, cancel, &stats);
    }
    if (stats.archived || stats.restored || stats.images_restored || stats.failed ||
        rc != BERTH_OK) {
        log_info("event=archive_pass ok=%d archived=%lld archived_bytes=%lld stored_bytes=%lld "
                 "saved_bytes=%lld restored=%lld restored_bytes=%lld images_restored=%lld "
                 "failed=%lld duration_ms=%lld",
                 rc == BERTH_OK ? 1 : 0, (long long)stats.archived, (long long)stats.archived_bytes,
                 (long long)stats.stored_bytes,
                 (long long)(stats.archived_bytes - stats.stored_bytes), (long long)stats.restored,
                 (long long)stats.restored_bytes, (long long)stats.images_restored,
                 (long long)stats.failed, (long long)((time_mono_ns() - t0) / 1000000));
    }
    if (out != NULL) {
        out->archived += stats.archived;
        out->archived_bytes += stats.archived_bytes;
        out->stored_bytes += stats.stored_bytes;
        out->restored += stats.restored;
        out->restored_bytes += stats.restored_bytes;
        out->images_restored += stats.images_restored;
        out->failed += stats.failed;
    }
    return rc;
}

/* ---- recovery ---- */

struct recover {
    struct store *st;
    struct meta *m;
    int64_t repaired;
};

/* A row of the archive tier: its archive copy must exist; a blob store
 * copy beside it is a leftover (of a move that committed, or a restore
 * that did not). */
static enum berth_err check_archived_row(struct recover *r, const struct meta_blob *b)
{
    struct digest d;
    if (digest_parse(b->digest, &d) != BERTH_OK) {
        return BERTH_OK;
    }
    enum berth_err rc = meta_begin(r->m);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct meta_blob row;
    rc = meta_blob_get(r->m, d.str, &row);
    uint64_t size = 0;
    if (rc == BERTH_OK && row.tier == META_TIER_ARCHIVE) {
        bool archived = blob_stat(r->st->archive, &d, &size) == BERTH_OK;
        bool standard = blob_stat(r->st->blobs, &d, &size) == BERTH_OK;
        if (archived && standard) {
            rc = blob_delete(r->st->blobs, &d);
            if (rc == BERTH_OK) {
                r->repaired++;
                log_warn("event=archive_repaired digest=%s msg=\"removed the blob store's copy "
                         "of an archived blob\"",
                         d.str);
            }
        } else if (!archived && standard) {
            rc = meta_blob_set_tier(r->m, row.id, META_TIER_STANDARD, 0, 0);
            if (rc == BERTH_OK) {
                r->repaired++;
                log_warn("event=archive_repaired digest=%s msg=\"no archive copy: the blob "
                         "store's copy is the blob\"",
                         d.str);
            }
        } else if (!archived) {
            log_error("event=archive_missing digest=%s msg=\"neither tier holds the blob\"", d.str);
        }
    } else if (rc == BERTH_ENOTFOUND) {
        rc = BERTH_OK;
    }
    if (rc == BERTH_OK) {
        rc = meta_commit(r->m);
    }
    if (rc != BERTH_OK) {
        meta_rollback(r->m);
    }
    return rc;
}

static int archived_row(void *arg, const struct meta_blob *b)
{
    struct blob_list *l = arg;
    return collect_blob(l, b);
}

/* A file of the archive store: a leftover when its row is gone, or
 * standard while the blob store holds the bytes. */
static enum berth_err check_archive_file(void *arg, const struct digest *d, uint64_t size,
                                         int64_t mtime_ms)
{
    (void)size;
    (void)mtime_ms;
    struct recover *r = arg;
    enum berth_err rc = meta_begin(r->m);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct meta_blob row;
    rc = meta_blob_get(r->m, d->str, &row);
    bool drop = false;
    if (rc == BERTH_ENOTFOUND) {
        rc = BERTH_OK;
        drop = true;
    } else if (rc == BERTH_OK && row.tier == META_TIER_STANDARD) {
        uint64_t have = 0;
        drop = blob_stat(r->st->blobs, d, &have) == BERTH_OK;
        if (!drop) {
            log_error("event=archive_inconsistent digest=%s msg=\"the row says blob store, only "
                      "the archive holds it; kept\"",
                      d->str);
        }
    }
    if (rc == BERTH_OK && drop) {
        rc = blob_delete(r->st->archive, d);
        if (rc == BERTH_ENOTFOUND) {
            rc = BERTH_OK;
        } else if (rc == BERTH_OK) {
            r->repaired++;
            log_info("event=archive_leftover_removed digest=%s", d->str);
        }
    }
    if (rc == BERTH_OK) {
        rc = meta_commit(r->m);
    }
    if (rc != BERTH_OK) {
        meta_rollback(r->m);
    }
    return rc;
}

struct stage_sweep {
    struct store *st;
    int64_t before;
    int64_t removed;
};

static enum berth_err old_stage(void *arg, const char *name, int64_t mtime_ms)
{
    struct stage_sweep *s = arg;
    if (mtime_ms < s->before && blob_stage_remove(s->st->archive, name) == BERTH_OK) {
        s->removed++;
    }
    return BERTH_OK;
}

enum berth_err store_tier_recover(struct store *st, bool startup, struct tier_stats *out)
{
    if (st->archive == NULL) {
        return BERTH_OK;
    }
    struct meta *m;
    enum berth_err got = store_meta_get(st, &m);
    if (got != BERTH_OK) {
        return got;
    }
    struct recover r = {.st = st, .m = m};
    /* stages: every one at start-up; later only those a day old (a move
     * writes its stage in seconds to minutes) */
    struct stage_sweep sweep = {.st = st,
                                .before = startup ? INT64_MAX : time_now_ms() - 24 * 3600 * 1000LL};
    enum berth_err rc = blob_stage_list(st->archive, old_stage, &sweep);
    r.repaired += sweep.removed;
    int64_t after = 0;
    struct blob_list rows = {0};
    while (rc == BERTH_OK) {
        rows.n = 0;
        rc = meta_tier_archived(m, after, TIER_PAGE, archived_row, &rows);
        if (rc == BERTH_OK && rows.oom) {
            rc = BERTH_ENOMEM;
        }
        if (rc != BERTH_OK || rows.n == 0) {
            break;
        }
        after = rows.v[rows.n - 1].id;
        for (size_t i = 0; rc == BERTH_OK && i < rows.n; i++) {
            rc = check_archived_row(&r, &rows.v[i]);
        }
    }
    free(rows.v);
    if (rc == BERTH_OK) {
        rc = blob_walk(st->archive, check_archive_file, &r);
    }
    if (r.repaired > 0) {
        log_info("event=archive_recovered repaired=%lld", (long long)r.repaired);
    }
    if (out != NULL) {
        out->repaired += r.repaired;
    }
    if (rc != BERTH_OK) {
        log_error("event=archive_error op=recover err=%s", berth_strerror(rc));
    }
    return rc;
}
