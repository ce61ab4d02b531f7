/*
 * Private to storage/store/: the store structure shared by store.c and
 * upload.c.
 */
#ifndef BERTH_STORE_INT_H
#define BERTH_STORE_INT_H

#include <pthread.h>
#include <stdbool.h>

#include "storage/blob/blob.h"
#include "storage/store/store.h"

#define STORE_PATH_MAX 4096

struct blob_store;
struct upload_state;
struct conn_node;

struct store {
    struct store_options opt;
    char root[STORE_PATH_MAX];
    char db_path[STORE_PATH_MAX + 16]; /* <root>/berth.db */
    const char *meta_backend;          /* "sqlite" or "postgres" */
    char *meta_target;                 /* db_path, or the connection string */
    struct blob_store *blobs;
    bool shared_uploads;        /* upload sessions live in the shared metadata (upload.c) */
    struct blob_store *archive; /* the archive tier, or NULL */
    char archive_path[STORE_PATH_MAX];

    pthread_key_t meta_key;
    pthread_mutex_t conns_lock;
    struct conn_node *conns; /* every open connection, for store_close */

    pthread_mutex_t uploads_lock;
    struct upload_state **uploads; /* hash table of in-memory session states */
    size_t uploads_cap;
    size_t uploads_count;

    /* between store_pairing_check and store_pairing_record */
    bool pair_pending;
    bool pair_s3;                       /* the blobs are in S3 */
    char pair_blobs[BLOB_STORE_ID_MAX]; /* the blob store's identity ("" none) */
};

/* Free every in-memory upload state (store_close). */
void upload_states_free(struct store *st);

/* The pairing of the database with its blob store, in two calls.
 * store_pairing_check, before the database is created or migrated: a blob
 * store that keeps an identity (S3: <prefix>berth-store-id; the
 * filesystem, with PostgreSQL only: <root>/blobs/berth-store-id) and the
 * database (META_COPY_STORE_SETTING, read without altering anything) must
 * name the same one. The blob store with one and the database without, or
 * different ones: BERTH_ECONFLICT (logged event=store_refused), a
 * database of another registry, or a new one, over these blobs (garbage
 * collection would take every blob for an orphan); the database is left
 * as it was. The blob store unreachable: not checked (logged), so that a
 * restart during an outage still serves what it can.
 * store_pairing_record, once the database is open and migrated: both
 * without: one is made and recorded in both (a fresh pairing, or one from
 * before identities); the database with and the blob store without:
 * recorded in the blob store (its object lost, or a fresh prefix for this
 * database). BERTH_EDB, BERTH_EUNAVAILABLE. */
enum berth_err store_pairing_check(struct store *st, const struct store_options *opt);
enum berth_err store_pairing_record(struct store *st, const struct store_options *opt);

#endif
