/*
 * Blob upload sessions (OCI chunked/streamed/monolithic uploads and ECR
 * layer uploads): a row in the metadata database, a data file under
 * <root>/uploads, and an in-memory running hash so that bytes are hashed
 * once as they arrive. A session is held by one request at a time
 * (upload_acquire/upload_release); after a restart the hash is rebuilt by
 * hashing the partial file. On a blob store with shared stages (S3) a
 * session is shared by every replica instead: its row holds the bytes
 * committed, the hash state after them and where the bytes are, and a
 * request commits what it appended with upload_save. Thread-safe; calls
 * block on disk, database and object store.
 */
#ifndef BERTH_UPLOAD_H
#define BERTH_UPLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/spec/digest.h"
#include "common/err.h"
#include "storage/meta/meta.h"
#include "common/rand.h"

struct store;
struct upload;

/* Create a session for the repository, hashing with alg. uuid receives
 * its id (RAND_UUID_LEN + 1 bytes). */
enum berth_err upload_create(struct store *st, int64_t repo_id, enum digest_alg alg, char *uuid);

/* Hold a session for writing. BERTH_ENOTFOUND when it does not exist or
 * belongs to another repository; BERTH_EBUSY while another request holds
 * it. The caller must upload_release() it. */
enum berth_err upload_acquire(struct store *st, const char *uuid, int64_t repo_id,
                              struct upload **out);

/* Bytes received so far. */
uint64_t upload_offset(const struct upload *u);

/* How many parts the session was told it received (upload_add_part: ECR's
 * UploadLayerPart, which limits their number). A session shared among
 * replicas (the S3 backend) counts them in its row, one per committed
 * request (so a /v2 PATCH of the same session counts too): the count
 * holds on every replica and across restarts. A local session counts them
 * in its row too (upload_add_part, the row's gen), so the count holds
 * across restarts; /v2 PATCH requests are not parts there. */
unsigned upload_parts(const struct upload *u);
/* Count one more part (a failure to record it in a local session's row is
 * logged: the count in memory still holds until a restart). Blocks on
 * the metadata write for a local session. */
void upload_add_part(struct upload *u);

/* Append n bytes at the current offset, hashing them. On failure the
 * session is rolled back to the offset it had before this call. */
enum berth_err upload_write(struct upload *u, const void *p, size_t n);

/* Commit what this request appended, where every replica sees it: a
 * no-op for a session whose bytes are local (the filesystem), the commit
 * of the session's shared state on a blob store with shared stages (S3;
 * see upload.c). Call before answering a request that appended (a PATCH,
 * an UploadLayerPart). BERTH_ERANGE when another request (on any replica)
 * committed to the session since this one acquired it: nothing of this
 * request's is kept, and upload_offset tells where the session stands.
 * After any failure only upload_release is left. */
enum berth_err upload_save(struct upload *u);

/* Roll the session back to offset (<= current offset): truncate the file
 * and forget the running hash (it is rebuilt from the file when needed). */
enum berth_err upload_truncate(struct upload *u, uint64_t offset);

/* Finish: compare the content's digest with expected (BERTH_EDIGEST on a
 * mismatch; the session is then deleted and nothing is published), publish
 * the blob durably, record it, link it to the session's repository and
 * delete the session, all in one metadata transaction. On success *out
 * describes the blob. Always consumes u (released or freed): after a
 * failure other than BERTH_EDIGEST the session may still exist. */
enum berth_err upload_complete(struct upload *u, const struct digest *expected,
                               struct meta_blob *out);

/* The number of bytes a session holds, without holding it (for status
 * queries). BERTH_ENOTFOUND when it does not exist in the repository. */
enum berth_err upload_peek(struct store *st, const char *uuid, int64_t repo_id, uint64_t *offset);

/* Release a held session (NULL is fine); the session itself remains. */
void upload_release(struct upload *u);

/* For tests: how many bodies were hashed on a thread of their own (past
 * 16 MiB in one request, with a CPU free for it; upload.c) since start. */
uint64_t upload_hashers_started(void);

/* Cancel a session: its row, file and hash state go. BERTH_ENOTFOUND,
 * BERTH_EBUSY while held. */
enum berth_err upload_cancel(struct store *st, const char *uuid, int64_t repo_id);

/* Remove sessions created before `before` that nobody holds and that were
 * not written to since `before`, and upload files older than `before` with
 * no session row (temp files, crash leftovers). A session row whose file is
 * gone is dropped too (not counted). With dry_run nothing changes and
 * *removed counts what a real pass would remove now, by the same rules.
 * *removed (optional) counts sessions and files removed. BERTH_EDB,
 * BERTH_EIO (uploads/ unreadable). */
enum berth_err upload_expire(struct store *st, int64_t before, bool dry_run, int64_t *removed);

/* Remove what sessions on a shared blob store (S3) left there with nothing
 * left to remove it (blob_shared_sweep): multipart uploads initiated and
 * staging or tail objects written before `before` whose session has no
 * row (a replica killed between starting a multipart upload and recording
 * it, or a row gone while its objects stayed), and the uploads of
 * publications cut short, in the blob store and the archive tier. `before`
 * must be older than any transfer still running on any replica. A no-op
 * on the filesystem. dry_run and *removed as upload_expire. BERTH_EDB,
 * BERTH_EIO, BERTH_EUNAVAILABLE. */
enum berth_err upload_sweep_shared(struct store *st, int64_t before, bool dry_run,
                                   int64_t *removed);

#endif
