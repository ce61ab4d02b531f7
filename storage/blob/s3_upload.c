/*
 * The S3 backend's stages and publication.
 *
 * Stages are files of a filesystem store under the data root (uploads/),
 * exactly as the filesystem backend keeps them: written at offsets, cut
 * back, hashed. As a stage's bytes arrive, every whole S3_PART_BYTES piece
 * is also sent as a part of a multipart upload to the staging key
 * <prefix>uploads/<name> (its upload id and the parts' ETags are kept in
 * <root>/s3mpu/<name>, so a reopened stage goes on); a write or a cut
 * below what was sent drops the parts from there, to be sent again.
 * Publishing a stage (its digest already checked by the caller) sends the
 * parts still missing, completes the multipart upload at the staging key
 * and copies it server-side to the content key, then deletes the staging
 * object; a stage that never reached a part is one PUT to the content key.
 * S3 makes an object appear whole or not at all (a multipart upload exists
 * under its key only once completed), and nothing is written under a
 * content key before the digest matched, so a crash never leaves a
 * half-published blob there. Removing a stage (a cancelled or expired
 * upload) aborts its multipart upload and deletes its staging object.
 * Blobs over S3_COPY_MAX (S3's largest single copy) are uploaded again
 * from the local file as a multipart upload to the content key instead.
 */
#include "s3_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fault.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/rand.h"

/* A stage handle: the local file's handle, and the parts sent. */
struct s3_stage {
    struct blob_stage base;
    struct s3_store *s;
    struct blob_stage *local;
    int fd; /* the local file, for reading parts */
    char name[BLOB_STAGE_NAME_MAX + 1];
    uint64_t size;
    struct s3_mpu mpu;
    char *part; /* S3_PART_BYTES, allocated when the first part is sent */
};

static struct s3_stage *stage_of(struct blob_stage *s)
{
    return (struct s3_stage *)(void *)s;
}

/* n bytes at off of fd into p (fewer only at the end of the file). */
static enum berth_err pread_full(int fd, void *p, size_t n, off_t off, size_t *got)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, (char *)p + done, n - done, off + (off_t)done);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return BERTH_EIO;
        }
        if (r == 0) {
            break;
        }
        done += (size_t)r;
    }
    *got = done;
    return BERTH_OK;
}

static void mpu_free(struct s3_mpu *m)
{
    free(m->etags);
    memset(m, 0, sizeof(*m));
}

static enum berth_err mpu_add(struct s3_mpu *m, int number, const char *etag)
{
    if (number > m->cap) {
        int cap = m->cap > 0 ? m->cap * 2 : 16;
        while (cap < number) {
            cap *= 2;
        }
        char(*e)[S3_ETAG_MAX] = realloc(m->etags, (size_t)cap * S3_ETAG_MAX);
        if (e == NULL) {
            return BERTH_ENOMEM;
        }
        m->etags = e;
        m->cap = cap;
    }
    snprintf(m->etags[number - 1], S3_ETAG_MAX, "%s", etag);
    if (number > m->parts) {
        m->parts = number;
    }
    return BERTH_OK;
}

/* Upload the file fd (size bytes) to key as a multipart upload of
 * S3_PART_BYTES parts; the object appears only when it completes. */
static enum berth_err put_multipart(struct s3_store *s, const char *key, int fd, uint64_t size)
{
    struct s3_mpu m = {0};
    enum berth_err rc = s3_mpu_create(s, key, m.upload_id, sizeof(m.upload_id));
    char *part = rc == BERTH_OK ? malloc(S3_PART_BYTES) : NULL;
    if (rc == BERTH_OK && part == NULL) {
        rc = BERTH_ENOMEM;
    }
    int number = 1;
    for (uint64_t off = 0; rc == BERTH_OK && off < size; off += S3_PART_BYTES, number++) {
        size_t n = size - off < S3_PART_BYTES ? (size_t)(size - off) : S3_PART_BYTES;
        size_t got = 0;
        char etag[S3_ETAG_MAX];
        rc = pread_full(fd, part, n, (off_t)off, &got);
        if (rc == BERTH_OK && got != n) {
            rc = BERTH_EIO;
        }
        if (rc == BERTH_OK) {
            rc = s3_mpu_upload_part(s, key, m.upload_id, number, part, n, etag);
        }
        if (rc == BERTH_OK) {
            rc = mpu_add(&m, number, etag);
        }
    }
    free(part);
    if (rc == BERTH_OK) {
        rc = s3_mpu_complete(s, key, &m);
    }
    if (rc != BERTH_OK && m.upload_id[0] != '\0') {
        s3_mpu_abort(s, key, m.upload_id);
    }
    mpu_free(&m);
    return rc;
}

static enum berth_err staging_key(const struct s3_store *s, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%suploads/%s", s->prefix, name);
    return (n < 0 || (size_t)n >= cap) ? BERTH_ETOOBIG : BERTH_OK;
}

static enum berth_err mpu_path(const struct s3_store *s, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", s->mpu_dir, name);
    return (n < 0 || (size_t)n >= cap) ? BERTH_ETOOBIG : BERTH_OK;
}

/* The state file: the upload id, then one ETag a line, part 1 first. */
static enum berth_err mpu_load(const struct s3_store *s, const char *name, struct s3_mpu *m)
{
    memset(m, 0, sizeof(*m));
    char path[S3_PATH_MAX + 80];
    enum berth_err rc = mpu_path(s, name, path, sizeof(path));
    char *text = NULL;
    size_t len = 0;
    if (rc == BERTH_OK) {
        rc = file_read_bounded(path, S3_MPU_STATE_MAX, &text, &len);
    }
    if (rc != BERTH_OK) {
        return rc;
    }
    char *save = NULL;
    int number = 0;
    for (char *line = strtok_r(text, "\n", &save); line != NULL && rc == BERTH_OK;
         line = strtok_r(NULL, "\n", &save), number++) {
        if (number == 0) {
            snprintf(m->upload_id, sizeof(m->upload_id), "%s", line);
        } else {
            rc = mpu_add(m, number, line);
        }
    }
    free(text);
    if (rc != BERTH_OK) {
        mpu_free(m);
    }
    return rc;
}

static enum berth_err mpu_save(const struct s3_store *s, const char *name, const struct s3_mpu *m)
{
    char path[S3_PATH_MAX + 80];
    enum berth_err rc = mpu_path(s, name, path, sizeof(path));
    struct buf text;
    buf_init(&text, S3_MPU_STATE_MAX);
    if (rc == BERTH_OK) {
        rc = buf_printf(&text, "%s\n", m->upload_id);
    }
    for (int i = 0; i < m->parts && rc == BERTH_OK; i++) {
        rc = buf_printf(&text, "%s\n", m->etags[i]);
    }
    if (rc == BERTH_OK) {
        rc = file_write_atomic(path, text.data, text.len, 0640, false);
    }
    buf_fini(&text);
    return rc;
}

static void mpu_forget(const struct s3_store *s, const char *name)
{
    char path[S3_PATH_MAX + 80];
    if (mpu_path(s, name, path, sizeof(path)) == BERTH_OK) {
        unlink(path);
    }
}

/* Send part number (1-based) of the stage, n bytes, from its local file. */
static enum berth_err send_part(struct s3_stage *st, const char *key, int number, size_t n)
{
    if (st->part == NULL && (st->part = malloc(S3_PART_BYTES)) == NULL) {
        return BERTH_ENOMEM;
    }
    size_t got = 0;
    enum berth_err rc =
        pread_full(st->fd, st->part, n, (off_t)((uint64_t)(number - 1) * S3_PART_BYTES), &got);
    if (rc == BERTH_OK && got != n) {
        rc = BERTH_EIO;
    }
    char etag[S3_ETAG_MAX];
    if (rc == BERTH_OK) {
        rc = s3_mpu_upload_part(st->s, key, st->mpu.upload_id, number, st->part, n, etag);
    }
    if (rc == BERTH_OK) {
        st->mpu.parts = number - 1;
        rc = mpu_add(&st->mpu, number, etag);
    }
    if (rc == BERTH_OK) {
        rc = mpu_save(st->s, st->name, &st->mpu);
    }
    return rc;
}

/* Send every whole part the stage holds that was not sent yet (parts
 * gather the writes, whatever their sizes). A failure is logged and left
 * for publication to retry: the local file has the bytes. */
static void send_whole_parts(struct s3_stage *st)
{
    char key[S3_KEY_MAX];
    if (staging_key(st->s, st->name, key, sizeof(key)) != BERTH_OK) {
        return;
    }
    while (st->size >= (uint64_t)(st->mpu.parts + 1) * S3_PART_BYTES) {
        enum berth_err rc = BERTH_OK;
        if (st->mpu.upload_id[0] == '\0') {
            rc = s3_mpu_create(st->s, key, st->mpu.upload_id, sizeof(st->mpu.upload_id));
            if (rc == BERTH_OK) {
                rc = mpu_save(st->s, st->name, &st->mpu);
            }
        }
        if (rc == BERTH_OK) {
            rc = send_part(st, key, st->mpu.parts + 1, S3_PART_BYTES);
        }
        if (rc != BERTH_OK) {
            log_warn("event=s3_part_deferred stage=%s part=%d err=%s", st->name, st->mpu.parts + 1,
                     berth_strerror(rc));
            return;
        }
    }
}

/* Parts from the one holding byte offset on are no longer the stage's. */
static void drop_parts_from(struct s3_stage *st, uint64_t offset)
{
    int keep = (int)(offset / S3_PART_BYTES);
    if (keep < st->mpu.parts) {
        st->mpu.parts = keep;
        if (st->mpu.upload_id[0] != '\0' && mpu_save(st->s, st->name, &st->mpu) != BERTH_OK) {
            log_warn("event=s3_state_error stage=%s", st->name);
        }
    }
}

int blob_s3_stage_parts_sent(const struct blob_stage *bs)
{
    return ((const struct s3_stage *)(const void *)bs)->mpu.parts;
}

enum berth_err s3_stage_create(struct blob_store *bs, const char *name)
{
    return blob_stage_create(s3_of(bs)->local, name);
}

enum berth_err s3_stage_open(struct blob_store *bs, const char *name, struct blob_stage **out,
                             uint64_t *size)
{
    struct s3_store *s = s3_of(bs);
    struct s3_stage *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return BERTH_ENOMEM;
    }
    st->fd = -1;
    char path[S3_PATH_MAX];
    enum berth_err rc = blob_stage_open(s->local, name, &st->local, &st->size);
    if (rc == BERTH_OK) {
        rc = blob_fs_stage_path(s->local, name, path, sizeof(path));
    }
    if (rc == BERTH_OK && (st->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        rc = BERTH_EIO;
    }
    if (rc == BERTH_OK) {
        rc = mpu_load(s, name, &st->mpu);
        if (rc == BERTH_ENOTFOUND) {
            rc = BERTH_OK;
        }
    }
    if (rc != BERTH_OK) {
        if (st->fd >= 0) {
            file_close(st->fd);
        }
        blob_stage_close(st->local);
        free(st);
        return rc;
    }
    st->base.ops = s->base.ops;
    st->s = s;
    snprintf(st->name, sizeof(st->name), "%s", name);
    /* parts beyond what the file holds (cut while closed) are not its */
    drop_parts_from(st, st->size);
    *size = st->size;
    *out = &st->base;
    return BERTH_OK;
}

enum berth_err s3_stage_write(struct blob_stage *bs, uint64_t offset, const void *p, size_t n)
{
    struct s3_stage *st = stage_of(bs);
    if (offset < (uint64_t)st->mpu.parts * S3_PART_BYTES) {
        drop_parts_from(st, offset); /* rewriting bytes already sent */
    }
    enum berth_err rc = blob_stage_write(st->local, offset, p, n);
    if (rc != BERTH_OK) {
        return rc;
    }
    if (offset + n > st->size) {
        st->size = offset + n;
    }
    send_whole_parts(st);
    return BERTH_OK;
}

enum berth_err s3_stage_read(struct blob_stage *bs, uint64_t offset, void *p, size_t n, size_t *got)
{
    return blob_stage_read(stage_of(bs)->local, offset, p, n, got);
}

enum berth_err s3_stage_truncate(struct blob_stage *bs, uint64_t size)
{
    struct s3_stage *st = stage_of(bs);
    enum berth_err rc = blob_stage_truncate(st->local, size);
    if (rc == BERTH_OK) {
        st->size = size;
        drop_parts_from(st, size);
    }
    return rc;
}

enum berth_err s3_stage_hash(struct blob_stage *bs, struct digest_ctx *ctx, uint64_t len)
{
    return blob_stage_hash(stage_of(bs)->local, ctx, len);
}

enum berth_err s3_stage_sync(struct blob_stage *bs)
{
    return blob_stage_sync(stage_of(bs)->local);
}

void s3_stage_close(struct blob_stage *bs)
{
    struct s3_stage *st = stage_of(bs);
    blob_stage_close(st->local);
    if (st->fd >= 0) {
        file_close(st->fd);
    }
    mpu_free(&st->mpu);
    free(st->part);
    free(st);
}

enum berth_err s3_stage_stat(struct blob_store *bs, const char *name, uint64_t *size,
                             int64_t *mtime)
{
    return blob_stage_stat(s3_of(bs)->local, name, size, mtime);
}

/* Abort the stage's multipart upload and delete its staging object, if
 * it has them. */
static enum berth_err drop_staged(struct s3_store *s, const char *name)
{
    struct s3_mpu m;
    enum berth_err rc = mpu_load(s, name, &m);
    if (rc == BERTH_ENOTFOUND) {
        return BERTH_OK;
    }
    char key[S3_KEY_MAX];
    if (rc == BERTH_OK) {
        rc = staging_key(s, name, key, sizeof(key));
    }
    if (rc == BERTH_OK && m.upload_id[0] != '\0') {
        rc = s3_mpu_abort(s, key, m.upload_id);
    }
    if (rc == BERTH_OK) {
        rc = s3_delete_object(s, key);
    }
    mpu_free(&m);
    if (rc == BERTH_OK) {
        mpu_forget(s, name);
    }
    return rc;
}

enum berth_err s3_stage_remove(struct blob_store *bs, const char *name)
{
    struct s3_store *s = s3_of(bs);
    enum berth_err rc = drop_staged(s, name);
    if (rc != BERTH_OK) {
        /* The local stage stays, so that upload expiry, which finds it
         * without a session, tries again later. */
        log_warn("event=s3_abort_failed stage=%s err=%s", name, berth_strerror(rc));
        return rc;
    }
    return blob_stage_remove(s->local, name);
}

enum berth_err s3_stage_list(struct blob_store *bs, blob_stage_fn fn, void *arg)
{
    return blob_stage_list(s3_of(bs)->local, fn, arg);
}

/* Publish through the staged multipart upload: the parts still missing,
 * complete at the staging key, copy to the content key. */
static enum berth_err publish_staged(struct s3_store *s, const char *name, const char *key)
{
    struct blob_stage *h = NULL;
    uint64_t size = 0;
    enum berth_err rc = s3_stage_open(&s->base, name, &h, &size);
    if (rc != BERTH_OK) {
        return rc;
    }
    struct s3_stage *st = stage_of(h);
    char staging[S3_KEY_MAX];
    rc = staging_key(s, name, staging, sizeof(staging));
    send_whole_parts(st);
    int total = (int)((size + S3_PART_BYTES - 1) / S3_PART_BYTES);
    for (int number = st->mpu.parts + 1; rc == BERTH_OK && number <= total; number++) {
        uint64_t off = (uint64_t)(number - 1) * S3_PART_BYTES;
        size_t n = size - off < S3_PART_BYTES ? (size_t)(size - off) : S3_PART_BYTES;
        rc = send_part(st, staging, number, n);
    }
    if (rc == BERTH_OK) {
        rc = s3_mpu_complete(s, staging, &st->mpu);
    }
    if (rc == BERTH_OK) {
        /* the upload is no more: what is left is the staging object */
        st->mpu.upload_id[0] = '\0';
        st->mpu.parts = 0;
        rc = mpu_save(s, name, &st->mpu);
    }
    if (rc == BERTH_OK) {
        rc = s3_copy_object(s, staging, key, NULL);
    }
    s3_stage_close(h);
    return rc;
}

enum berth_err s3_stage_publish(struct blob_store *bs, const char *name, const struct digest *d)
{
    struct s3_store *s = s3_of(bs);
    char key[S3_KEY_MAX], path[S3_PATH_MAX];
    enum berth_err rc = s3_blob_key(s, d, key, sizeof(key));
    if (rc == BERTH_OK) {
        rc = blob_fs_stage_path(s->local, name, path, sizeof(path));
    }
    if (rc != BERTH_OK) {
        return rc;
    }
    struct s3_resp r;
    rc = s3_head_object(s, key, &r);
    s3_resp_fini(&r);
    if (rc == BERTH_OK) {
        /* Already published (content-addressed: same bytes); a stage
         * left behind is expired later. */
        if (s3_stage_remove(bs, name) != BERTH_OK) {
            log_warn("event=s3_stage_cleanup_failed stage=%s", name);
        }
        return BERTH_OK;
    }
    if (rc != BERTH_ENOTFOUND) {
        return rc;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return berth_err_from_errno(errno);
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        file_close(fd);
        return BERTH_EIO;
    }
    uint64_t size = (uint64_t)sb.st_size;
    struct s3_mpu m;
    bool staged = mpu_load(s, name, &m) == BERTH_OK && m.upload_id[0] != '\0';
    mpu_free(&m);
    if (size > S3_PART_BYTES && size <= S3_COPY_MAX && staged) {
        rc = publish_staged(s, name, key);
    } else if (size <= S3_PART_BYTES) {
        char *p = malloc(size > 0 ? (size_t)size : 1);
        size_t got = 0;
        rc = p == NULL ? BERTH_ENOMEM : pread_full(fd, p, (size_t)size, 0, &got);
        if (rc == BERTH_OK && got != size) {
            rc = BERTH_EIO;
        }
        if (rc == BERTH_OK) {
            rc = s3_put_object(s, key, p, (size_t)size);
        }
        free(p);
    } else {
        rc = put_multipart(s, key, fd, size);
    }
    file_close(fd);
    if (rc == BERTH_OK) {
        /* the staging object and state, then the local file */
        rc = s3_stage_remove(bs, name);
        if (rc != BERTH_OK) {
            log_warn("event=s3_stage_cleanup_failed stage=%s err=%s", name, berth_strerror(rc));
            rc = BERTH_OK; /* the blob is published; the stage is expired later */
        }
    }
    return rc;
}

/* ---- shared stages ----
 *
 * A shared stage keeps nothing locally between calls: its parts (each
 * S3_PART_BYTES of the stage, in order, sent to the staging key's
 * multipart upload under numbers the caller hands out), and its tail, the
 * bytes after the last part, in memory while a handle is open and saved as
 * the object <prefix>uploads/<name>/tail-<random> by blob_shared_save. The
 * state text the caller records:
 *
 *   berth-s3-shared 1
 *   tail <key under the prefix, or -> <bytes>
 *   part <number> <bytes> <etag>      (one line a part, in order)
 *   dead <key under the prefix>       (tails replaced, not yet deleted)
 *
 * A commit does not delete the tail it replaced (a DELETE per PATCH) but
 * lists it as dead in the state it commits; the first commit that sent a
 * part (or finds S3_DEAD_MAX listed) deletes the loaded state's dead tails
 * and its replaced tail with one DeleteObjects, after its commit, and
 * lists none. So a chunked push deletes its old tails once per 8 MiB part
 * window; the session's removal takes whatever is left. Rows without dead
 * lines (written before them) are read the same; a berth older than them
 * refuses a state that has some (a session in flight across that upgrade
 * starts again).
 */

#define SHARED_HEADER "berth-s3-shared 1\n"
#define S3_PARTS_MAX 10000 /* S3's highest part number */
#define S3_DEAD_MAX 16     /* dead tails a state lists at most */

struct s3_shared {
    struct blob_shared base;
    struct s3_store *s;
    char name[BLOB_STAGE_NAME_MAX + 1];
    char staging[S3_KEY_MAX];
    blob_part_fn part_fn;
    void *arg;
    struct s3_mpu mpu; /* upload_id, etags, numbers */
    uint64_t *sizes;   /* each part's bytes */
    uint64_t sent;     /* bytes in parts */
    char *buf;         /* the tail: buf_len bytes, S3_PART_BYTES allocated */
    size_t buf_len;
    char old_tail[S3_KEY_MAX];          /* the tail object opened with (full key; "" none) */
    char new_tail[S3_KEY_MAX];          /* the one the last save wrote */
    bool completed;                     /* the multipart upload is completed at the staging key */
    char dead[S3_DEAD_MAX][S3_KEY_MAX]; /* the state's dead tails (full keys) */
    int dead_n;
    int parts_saved; /* parts in the state opened or last committed */
    bool flush;      /* the last save lists no dead tail: its commit deletes them */
};

static struct s3_shared *shared_of(struct blob_shared *sh)
{
    return (struct s3_shared *)(void *)sh;
}

static enum berth_err shared_add_part(struct s3_shared *sh, int number, uint64_t size,
                                      const char *etag)
{
    struct s3_mpu *m = &sh->mpu;
    if (m->parts == m->cap) {
        int cap = m->cap > 0 ? m->cap * 2 : 16;
        char(*e)[S3_ETAG_MAX] = realloc(m->etags, (size_t)cap * S3_ETAG_MAX);
        if (e != NULL) {
            m->etags = e;
        }
        int *n = e != NULL ? realloc(m->numbers, (size_t)cap * sizeof(int)) : NULL;
        if (n != NULL) {
            m->numbers = n;
        }
        uint64_t *z = n != NULL ? realloc(sh->sizes, (size_t)cap * sizeof(uint64_t)) : NULL;
        if (z == NULL) {
            return BERTH_ENOMEM;
        }
        sh->sizes = z;
        m->cap = cap;
    }
    if (strlen(etag) >= S3_ETAG_MAX || strpbrk(etag, " \n") != NULL ||
        (m->parts > 0 && number <= m->numbers[m->parts - 1])) {
        return BERTH_EINVAL;
    }
    snprintf(m->etags[m->parts], S3_ETAG_MAX, "%s", etag);
    m->numbers[m->parts] = number;
    sh->sizes[m->parts] = size;
    m->parts++;
    sh->sent += size;
    return BERTH_OK;
}

/* Parse a state text into sh (parts, the tail object's key and size). */
static enum berth_err shared_parse(struct s3_shared *sh, const char *state, uint64_t *tail_len)
{
    *tail_len = 0;
    if (state[0] == '\0') {
        return BERTH_OK;
    }
    size_t hl = strlen(SHARED_HEADER);
    if (strncmp(state, SHARED_HEADER, hl) != 0) {
        return BERTH_EINVAL;
    }
    char *text = strdup(state + hl);
    if (text == NULL) {
        return BERTH_ENOMEM;
    }
    enum berth_err rc = BERTH_OK;
    bool tail_seen = false;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line != NULL && rc == BERTH_OK;
         line = strtok_r(NULL, "\n", &save)) {
        char word[200], etag[S3_ETAG_MAX];
        unsigned long long size = 0;
        int number = 0;
        if (!tail_seen && sscanf(line, "tail %199s %llu", word, &size) == 2) {
            tail_seen = true;
            char want[100];
            snprintf(want, sizeof(want), "uploads/%s/tail-", sh->name);
            if (strcmp(word, "-") == 0 ? size != 0
                                       : (strncmp(word, want, strlen(want)) != 0 || size == 0 ||
                                          size >= S3_PART_BYTES)) {
                rc = BERTH_EINVAL;
            } else if (strcmp(word, "-") != 0) {
                snprintf(sh->old_tail, sizeof(sh->old_tail), "%s%s", sh->s->prefix, word);
            }
            *tail_len = size;
        } else if (tail_seen && sh->dead_n == 0 &&
                   sscanf(line, "part %d %llu %127s", &number, &size, etag) == 3 && number >= 1 &&
                   number <= S3_PARTS_MAX && size == S3_PART_BYTES) {
            rc = shared_add_part(sh, number, size, etag);
        } else if (tail_seen && sscanf(line, "dead %199s", word) == 1) {
            char want[100];
            snprintf(want, sizeof(want), "uploads/%s/tail-", sh->name);
            if (sh->dead_n == S3_DEAD_MAX || strncmp(word, want, strlen(want)) != 0) {
                rc = BERTH_EINVAL;
            } else {
                snprintf(sh->dead[sh->dead_n++], S3_KEY_MAX, "%s%s", sh->s->prefix, word);
            }
        } else {
            rc = BERTH_EINVAL;
        }
    }
    free(text);
    return tail_seen || rc != BERTH_OK ? rc : BERTH_EINVAL;
}

/* GET the tail object (exactly len bytes) into the buffer. */
static enum berth_err shared_read_tail(struct s3_shared *sh, uint64_t len)
{
    struct buf body;
    buf_init(&body, S3_PART_BYTES + 1);
    struct s3_req req = {.method = "GET", .key = sh->old_tail, .out_fd = -1, .out = &body};
    struct s3_resp r;
    enum berth_err rc = s3_do(sh->s, &req, &r);
    if (rc == BERTH_OK && r.status != 200) {
        rc = s3_fail(&req, &r);
    }
    s3_resp_fini(&r);
    if (rc == BERTH_OK && body.len != len) {
        log_error("event=s3_tail_size key=%s want=%llu got=%zu", sh->old_tail,
                  (unsigned long long)len, body.len);
        rc = BERTH_EIO;
    }
    if (rc == BERTH_OK) {
        memcpy(sh->buf, body.data, body.len);
        sh->buf_len = body.len;
    }
    buf_fini(&body);
    return rc;
}

void s3_shared_close(struct blob_shared *bsh)
{
    if (bsh == NULL) {
        return;
    }
    struct s3_shared *sh = shared_of(bsh);
    free(sh->mpu.numbers);
    mpu_free(&sh->mpu);
    free(sh->sizes);
    free(sh->buf);
    free(sh);
}

enum berth_err s3_shared_open(struct blob_store *bs, const char *name, const char *upload_id,
                              const char *state, blob_part_fn part_fn, void *arg,
                              struct blob_shared **out)
{
    struct s3_store *s = s3_of(bs);
    struct s3_shared *sh = calloc(1, sizeof(*sh));
    if (sh == NULL) {
        return BERTH_ENOMEM;
    }
    sh->base.ops = s->base.ops;
    sh->s = s;
    sh->part_fn = part_fn;
    sh->arg = arg;
    snprintf(sh->name, sizeof(sh->name), "%s", name);
    snprintf(sh->mpu.upload_id, sizeof(sh->mpu.upload_id), "%s", upload_id);
    enum berth_err rc = staging_key(s, name, sh->staging, sizeof(sh->staging));
    sh->buf = rc == BERTH_OK ? malloc(S3_PART_BYTES) : NULL;
    if (rc == BERTH_OK && sh->buf == NULL) {
        rc = BERTH_ENOMEM;
    }
    uint64_t tail_len = 0;
    if (rc == BERTH_OK) {
        rc = shared_parse(sh, state, &tail_len);
        if (rc == BERTH_EINVAL) {
            log_error("event=s3_shared_state_invalid stage=%s", name);
        }
    }
    if (rc == BERTH_OK && sh->mpu.parts > 0 && upload_id[0] == '\0') {
        rc = BERTH_EINVAL; /* parts of no upload */
    }
    sh->parts_saved = sh->mpu.parts;
    if (rc == BERTH_OK && tail_len > 0) {
        /* the tail this replica committed last, if the row still names it */
        if (s3_tails_get(s->tails, name, sh->old_tail, sh->buf, (size_t)tail_len)) {
            sh->buf_len = (size_t)tail_len;
            log_debug("event=s3_tail_cached stage=%s bytes=%zu", name, sh->buf_len);
        } else {
            rc = shared_read_tail(sh, tail_len);
        }
    }
    if (rc != BERTH_OK) {
        s3_shared_close(&sh->base);
        return rc;
    }
    *out = &sh->base;
    return BERTH_OK;
}

uint64_t s3_shared_size(const struct blob_shared *bsh)
{
    const struct s3_shared *sh = (const struct s3_shared *)(const void *)bsh;
    return sh->sent + sh->buf_len;
}

/* Send the tail as the next part (a whole one, or the last one at
 * publication), under a number the caller hands out, to the upload the
 * caller recorded (starting one when none was). */
static enum berth_err shared_send(struct s3_shared *sh)
{
    struct s3_store *s = sh->s;
    bool started = false;
    enum berth_err rc = BERTH_OK;
    if (sh->mpu.upload_id[0] == '\0') {
        rc = s3_mpu_create(s, sh->staging, sh->mpu.upload_id, sizeof(sh->mpu.upload_id));
        started = rc == BERTH_OK;
        if (started) {
            /* a test's kill -9 before the caller records the upload: an orphan
             * for blob_shared_sweep */
            fault_point("s3_mpu_started");
        }
    }
    int64_t number = 0;
    char recorded[BLOB_UPLOAD_ID_MAX] = "";
    if (rc == BERTH_OK) {
        rc = sh->part_fn(sh->arg, sh->mpu.upload_id, &number, recorded);
    }
    if (started && (rc != BERTH_OK || strcmp(recorded, sh->mpu.upload_id) != 0)) {
        /* another writer's upload was recorded first: this one is not used */
        s3_mpu_abort(s, sh->staging, sh->mpu.upload_id);
    }
    if (rc != BERTH_OK) {
        if (started) {
            sh->mpu.upload_id[0] = '\0';
        }
        return rc;
    }
    snprintf(sh->mpu.upload_id, sizeof(sh->mpu.upload_id), "%s", recorded);
    if (number < 1 || number > S3_PARTS_MAX) {
        log_error("event=s3_parts_exhausted stage=%s number=%lld", sh->name, (long long)number);
        return BERTH_ETOOBIG;
    }
    char etag[S3_ETAG_MAX];
    rc = s3_mpu_upload_part(s, sh->staging, sh->mpu.upload_id, (int)number, sh->buf, sh->buf_len,
                            etag);
    if (rc == BERTH_OK) {
        rc = shared_add_part(sh, (int)number, sh->buf_len, etag);
    }
    if (rc == BERTH_OK) {
        sh->buf_len = 0;
    }
    return rc;
}

enum berth_err s3_shared_write(struct blob_shared *bsh, const void *p, size_t n)
{
    struct s3_shared *sh = shared_of(bsh);
    if (sh->completed) {
        return BERTH_EINVAL;
    }
    const char *at = p;
    while (n > 0) {
        size_t take = S3_PART_BYTES - sh->buf_len < n ? S3_PART_BYTES - sh->buf_len : n;
        memcpy(sh->buf + sh->buf_len, at, take);
        sh->buf_len += take;
        at += take;
        n -= take;
        if (sh->buf_len == S3_PART_BYTES) {
            enum berth_err rc = shared_send(sh);
            if (rc != BERTH_OK) {
                return rc;
            }
        }
    }
    return BERTH_OK;
}

enum berth_err s3_shared_save(struct blob_shared *bsh, char **state)
{
    struct s3_shared *sh = shared_of(bsh);
    enum berth_err rc = BERTH_OK;
    if (sh->new_tail[0] != '\0') {
        return BERTH_EINVAL; /* the last save was not settled */
    }
    char rel[200] = "-";
    if (sh->buf_len > 0) {
        char uuid[RAND_UUID_LEN + 1];
        rc = rand_uuid(uuid);
        if (rc == BERTH_OK) {
            snprintf(rel, sizeof(rel), "uploads/%s/tail-%s", sh->name, uuid);
            snprintf(sh->new_tail, sizeof(sh->new_tail), "%s%s", sh->s->prefix, rel);
            rc = s3_put_object(sh->s, sh->new_tail, sh->buf, sh->buf_len);
        }
        if (rc != BERTH_OK) {
            sh->new_tail[0] = '\0';
            return rc;
        }
    }
    struct buf text;
    buf_init(&text, S3_MPU_STATE_MAX);
    rc = buf_printf(&text, "%stail %s %zu\n", SHARED_HEADER, rel, sh->buf_len);
    for (int i = 0; i < sh->mpu.parts && rc == BERTH_OK; i++) {
        rc = buf_printf(&text, "part %d %llu %s\n", sh->mpu.numbers[i],
                        (unsigned long long)sh->sizes[i], sh->mpu.etags[i]);
    }
    /* the replaced tail joins the dead ones, unless this commit deletes them */
    int dead_after = sh->dead_n + (sh->old_tail[0] != '\0' ? 1 : 0);
    sh->flush = sh->mpu.parts > sh->parts_saved || dead_after > S3_DEAD_MAX;
    size_t plen = strlen(sh->s->prefix);
    for (int i = 0; i < dead_after && !sh->flush && rc == BERTH_OK; i++) {
        const char *key = i < sh->dead_n ? sh->dead[i] : sh->old_tail;
        rc = buf_printf(&text, "dead %s\n", key + plen);
    }
    if (rc == BERTH_OK && (*state = strdup(buf_cstr(&text))) == NULL) {
        rc = BERTH_ENOMEM;
    }
    buf_fini(&text);
    if (rc != BERTH_OK) {
        s3_shared_saved(bsh, BLOB_SAVED_REFUSED);
    }
    return rc;
}

void s3_shared_saved(struct blob_shared *bsh, enum blob_saved how)
{
    struct s3_shared *sh = shared_of(bsh);
    if (how == BLOB_SAVED_UNKNOWN) {
        /* the row may name either tail: deleting one could leave a committed
         * state naming a deleted object; both go with the session */
        log_warn("event=s3_tails_kept stage=%s old=%s new=%s msg=\"save outcome unknown\"",
                 sh->name, sh->old_tail[0] != '\0' ? sh->old_tail : "-",
                 sh->new_tail[0] != '\0' ? sh->new_tail : "-");
        s3_tails_drop(sh->s->tails, sh->name);
        sh->new_tail[0] = '\0';
        return;
    }
    bool kept = how == BLOB_SAVED_KEPT;
    if (!kept) {
        if (sh->new_tail[0] != '\0' && s3_delete_object(sh->s, sh->new_tail) != BERTH_OK) {
            /* left for the session's removal, which deletes every tail */
            log_warn("event=s3_tail_delete_failed key=%s", sh->new_tail);
        }
    } else if (sh->flush) {
        /* committed without them: the dead tails and the replaced one go */
        const char *keys[S3_DEAD_MAX + 1];
        size_t n = 0;
        for (int i = 0; i < sh->dead_n; i++) {
            keys[n++] = sh->dead[i];
        }
        if (sh->old_tail[0] != '\0') {
            keys[n++] = sh->old_tail;
        }
        enum berth_err rc =
            n == 1 ? s3_delete_object(sh->s, keys[0]) : s3_delete_objects(sh->s, keys, n);
        if (rc != BERTH_OK) {
            log_warn("event=s3_tail_delete_failed tails=%zu", n);
        }
        sh->dead_n = 0;
    } else if (sh->old_tail[0] != '\0') {
        /* listed as dead in the state just committed */
        memcpy(sh->dead[sh->dead_n++], sh->old_tail, S3_KEY_MAX);
    }
    if (kept) {
        sh->parts_saved = sh->mpu.parts;
        memcpy(sh->old_tail, sh->new_tail, sizeof(sh->old_tail));
        /* committed: the next request of the session here reads it from memory */
        if (sh->new_tail[0] != '\0') {
            s3_tails_put(sh->s->tails, sh->name, sh->new_tail, sh->buf, sh->buf_len);
        } else {
            s3_tails_drop(sh->s->tails, sh->name);
        }
    }
    sh->new_tail[0] = '\0';
}

/* Copy an object too large for one copy (over S3_COPY_MAX) as a
 * multipart upload of ranges copied server-side. */
static enum berth_err copy_large(struct s3_store *s, const char *from, const char *to,
                                 uint64_t size)
{
    const uint64_t range = (uint64_t)1 << 30;
    struct s3_mpu m = {0};
    enum berth_err rc = s3_mpu_create(s, to, m.upload_id, sizeof(m.upload_id));
    int number = 1;
    for (uint64_t off = 0; rc == BERTH_OK && off < size; off += range, number++) {
        uint64_t last = size - off < range ? size - 1 : off + range - 1;
        char etag[S3_ETAG_MAX];
        rc = s3_mpu_copy_part(s, to, m.upload_id, number, from, off, last, etag);
        if (rc == BERTH_OK) {
            rc = mpu_add(&m, number, etag);
        }
    }
    if (rc == BERTH_OK) {
        rc = s3_mpu_complete(s, to, &m);
    }
    if (rc != BERTH_OK && m.upload_id[0] != '\0') {
        s3_mpu_abort(s, to, m.upload_id);
    }
    mpu_free(&m);
    return rc;
}

static enum berth_err publish_parts(struct s3_shared *sh, const char *key);
static enum berth_err complete_parts(struct s3_shared *sh);

enum berth_err s3_shared_rehash(struct blob_shared *bsh, enum digest_alg alg, struct digest *out)
{
    struct s3_shared *sh = shared_of(bsh);
    struct s3_store *s = sh->s;
    if (sh->mpu.parts == 0) {
        return digest_buffer(alg, sh->buf_len > 0 ? sh->buf : "", sh->buf_len, out);
    }
    enum berth_err rc = complete_parts(sh);
    if (rc != BERTH_OK) {
        return rc;
    }
    char path[S3_PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/rehash-XXXXXX", s->tmp_dir) >= (int)sizeof(path)) {
        return BERTH_ETOOBIG;
    }
    int fd = mkstemp(path);
    if (fd < 0) {
        log_error("event=s3_rehash_failed path=%s errno=%d", path, errno);
        return BERTH_EIO;
    }
    unlink(path);
    struct digest_ctx *ctx = digest_ctx_new(alg);
    rc = ctx == NULL ? BERTH_ENOMEM : s3_get_object(s, sh->staging, fd);
    if (rc == BERTH_OK) {
        rc = digest_ctx_update_fd(ctx, fd, (off_t)(sh->sent + sh->buf_len));
    }
    if (rc == BERTH_OK) {
        rc = digest_ctx_final(ctx, out);
    }
    digest_ctx_free(ctx);
    close(fd);
    return rc;
}

enum berth_err s3_shared_publish(struct blob_shared *bsh, const struct digest *d)
{
    struct s3_shared *sh = shared_of(bsh);
    struct s3_store *s = sh->s;
    char key[S3_KEY_MAX];
    enum berth_err rc = s3_blob_key(s, d, key, sizeof(key));
    if (rc != BERTH_OK) {
        return rc;
    }
    struct s3_resp r;
    rc = s3_head_object(s, key, &r);
    s3_resp_fini(&r);
    if (rc == BERTH_ENOTFOUND && sh->mpu.parts == 0) {
        rc = s3_put_object(s, key, sh->buf_len > 0 ? sh->buf : "", sh->buf_len);
    } else if (rc == BERTH_ENOTFOUND) {
        rc = publish_parts(sh, key);
    }
    if (rc == BERTH_OK && sh->mpu.parts == 0) {
        s3_cache_put(s, d, sh->buf_len > 0 ? sh->buf : "", sh->buf_len);
    }
    return rc;
}

/* Publish a stage that sent parts: the tail as the last part, completion
 * at the staging key, copy to the content key. */
static enum berth_err publish_parts(struct s3_shared *sh, const char *key)
{
    struct s3_store *s = sh->s;
    uint64_t size = sh->sent + sh->buf_len;
    enum berth_err rc = complete_parts(sh);
    if (rc != BERTH_OK) {
        return rc;
    }
    return size <= s3_copy_max(s) ? s3_copy_object(s, sh->staging, key, NULL)
                                  : copy_large(s, sh->staging, key, size);
}

/* The tail sent as the last part and the multipart upload completed at
 * the staging key (once). */
static enum berth_err complete_parts(struct s3_shared *sh)
{
    if (sh->completed) {
        return BERTH_OK;
    }
    enum berth_err rc = sh->buf_len > 0 ? shared_send(sh) : BERTH_OK;
    if (rc == BERTH_OK) {
        rc = s3_mpu_complete(sh->s, sh->staging, &sh->mpu);
    }
    if (rc == BERTH_OK) {
        sh->completed = true;
    }
    return rc;
}

struct remove_ctx {
    enum berth_err rc;
    char **keys; /* listed, to delete */
    size_t n, cap;
};

static enum berth_err remove_one(struct s3_store *s, void *arg, const char *rel, uint64_t size,
                                 int64_t mtime_ms)
{
    (void)size;
    (void)mtime_ms;
    struct remove_ctx *c = arg;
    if (c->n == c->cap) {
        size_t cap = c->cap > 0 ? c->cap * 2 : 16;
        char **k = realloc(c->keys, cap * sizeof(*k));
        if (k == NULL) {
            return BERTH_ENOMEM;
        }
        c->keys = k;
        c->cap = cap;
    }
    size_t len = strlen(s->prefix) + strlen(rel) + 1;
    if (len > S3_KEY_MAX || (c->keys[c->n] = malloc(len)) == NULL) {
        return len > S3_KEY_MAX ? BERTH_ETOOBIG : BERTH_ENOMEM;
    }
    snprintf(c->keys[c->n++], len, "%s%s", s->prefix, rel);
    return BERTH_OK;
}

enum berth_err s3_shared_remove(struct blob_store *bs, const char *name, const char *upload_id)
{
    struct s3_store *s = s3_of(bs);
    s3_tails_drop(s->tails, name);
    char key[S3_KEY_MAX], under[S3_KEY_MAX];
    enum berth_err rc = staging_key(s, name, key, sizeof(key));
    if (rc == BERTH_OK && upload_id[0] != '\0') {
        rc = s3_mpu_abort(s, key, upload_id);
    }
    struct remove_ctx c = {BERTH_OK, NULL, 0, 0};
    if (rc == BERTH_OK) {
        /* the staging object (a completed upload) and every tail, dead or
         * not: one DeleteObjects for up to S3_DELETE_MAX of them */
        snprintf(under, sizeof(under), "uploads/%s", name);
        rc = s3_list_objects(s, under, remove_one, &c);
    }
    for (size_t at = 0; rc == BERTH_OK && at < c.n; at += S3_DELETE_MAX) {
        size_t n = c.n - at < S3_DELETE_MAX ? c.n - at : S3_DELETE_MAX;
        rc = n == 1 ? s3_delete_object(s, c.keys[at])
                    : s3_delete_objects(s, (const char *const *)(c.keys + at), n);
    }
    for (size_t i = 0; i < c.n; i++) {
        free(c.keys[i]);
    }
    free(c.keys);
    return rc;
}

/* ---- the sweep of what no session will remove ---- */

struct sweep_ctx {
    int64_t before;
    blob_live_fn live;
    void *arg;
    bool dry_run;
    int64_t removed;
};

/* Whether the stage of rel ("uploads/<name>[/...]") is wanted: a stage of
 * this process (its multipart upload is recorded under mpu_dir and goes
 * with it) or live by the caller's account. */
static enum berth_err stage_wanted(struct s3_store *s, struct sweep_ctx *c, const char *rel,
                                   bool *wanted)
{
    char name[BLOB_STAGE_NAME_MAX + 2];
    const char *at = rel + strlen("uploads/");
    size_t n = strcspn(at, "/");
    *wanted = false;
    if (n == 0 || n > BLOB_STAGE_NAME_MAX) {
        return BERTH_OK; /* no stage has such a name: not berth's making, or garbage */
    }
    memcpy(name, at, n);
    name[n] = '\0';
    uint64_t size;
    int64_t mtime;
    if (blob_stage_stat(s->local, name, &size, &mtime) == BERTH_OK) {
        *wanted = true;
        return BERTH_OK;
    }
    return c->live(c->arg, name, wanted);
}

static enum berth_err sweep_upload(struct s3_store *s, void *arg, const char *rel,
                                   const char *upload_id, int64_t initiated_ms)
{
    struct sweep_ctx *c = arg;
    /* an unknown initiation time is never old enough */
    if (initiated_ms <= 0 || initiated_ms >= c->before) {
        return BERTH_OK;
    }
    bool wanted = false;
    enum berth_err rc =
        strncmp(rel, "uploads/", 8) == 0 ? stage_wanted(s, c, rel, &wanted) : BERTH_OK;
    if (rc != BERTH_OK || wanted) {
        return rc;
    }
    char key[S3_KEY_MAX];
    int n = snprintf(key, sizeof(key), "%s%s", s->prefix, rel);
    if (n < 0 || (size_t)n >= sizeof(key)) {
        return BERTH_OK;
    }
    if (!c->dry_run) {
        rc = s3_mpu_abort(s, key, upload_id);
        if (rc != BERTH_OK) {
            return rc;
        }
        log_info("event=s3_orphan_upload_aborted key=%s upload_id=%s initiated_ms=%lld", key,
                 upload_id, (long long)initiated_ms);
    }
    c->removed++;
    return BERTH_OK;
}

static enum berth_err sweep_object(struct s3_store *s, void *arg, const char *rel, uint64_t size,
                                   int64_t mtime_ms)
{
    (void)size;
    struct sweep_ctx *c = arg;
    if (mtime_ms <= 0 || mtime_ms >= c->before) {
        return BERTH_OK;
    }
    bool wanted = false;
    enum berth_err rc = stage_wanted(s, c, rel, &wanted);
    if (rc != BERTH_OK || wanted) {
        return rc;
    }
    char key[S3_KEY_MAX];
    int n = snprintf(key, sizeof(key), "%s%s", s->prefix, rel);
    if (n < 0 || (size_t)n >= sizeof(key)) {
        return BERTH_OK;
    }
    if (!c->dry_run) {
        rc = s3_delete_object(s, key);
        if (rc != BERTH_OK) {
            return rc;
        }
        log_info("event=s3_orphan_object_deleted key=%s mtime_ms=%lld", key, (long long)mtime_ms);
    }
    c->removed++;
    return BERTH_OK;
}

enum berth_err s3_shared_sweep(struct blob_store *bs, int64_t before_ms, blob_live_fn live,
                               void *arg, bool dry_run, int64_t *removed)
{
    struct s3_store *s = s3_of(bs);
    struct sweep_ctx c = {.before = before_ms, .live = live, .arg = arg, .dry_run = dry_run};
    /* the uploads a session or a stage left, then those of a publication
     * (a put or ranged copy to a blob key) cut short, then the staging
     * and tail objects of sessions that are no more */
    enum berth_err rc = s3_list_uploads(s, "uploads/", sweep_upload, &c);
    if (rc == BERTH_OK) {
        rc = s3_list_uploads(s, "blobs/", sweep_upload, &c);
    }
    if (rc == BERTH_OK) {
        rc = s3_list_objects(s, "uploads/", sweep_object, &c);
    }
    if (removed != NULL) {
        *removed = c.removed;
    }
    return rc;
}
