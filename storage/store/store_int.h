/*
 * Private to storage/: the store structure shared by store.c, upload.c and
 * the background jobs, and the pacing those jobs' writes share
 * (write_pace.c).
 */
#ifndef BERTH_STORE_INT_H
#define BERTH_STORE_INT_H

#include <pthread.h>

#include "storage/store/store.h"

#define STORE_PATH_MAX 4096

struct upload_state;
struct conn_node;

struct store {
    struct store_options opt;
    char root[STORE_PATH_MAX];
    char blobs_dir[STORE_PATH_MAX];
    char uploads_dir[STORE_PATH_MAX];
    char trash_dir[STORE_PATH_MAX];
    char db_path[STORE_PATH_MAX];

    pthread_key_t meta_key;
    pthread_mutex_t conns_lock;
    struct conn_node *conns; /* every open connection, for store_close */

    pthread_mutex_t uploads_lock;
    struct upload_state **uploads; /* hash table of in-memory session states */
    size_t uploads_cap;
    size_t uploads_count;
};

/* Path of the file store_blob_remove moves a blob to: <root>/trash/<alg>-<hex>
 * (store_recover_trash parses the name back). BERTH_ETOOBIG when it does
 * not fit in cap. */
enum berth_err store_trash_path(const struct store *st, const struct digest *d, char *out,
                                size_t cap);

/* Free every in-memory upload state (store_close). */
void upload_states_free(struct store *st);

/* Pacing for a background job that writes in many short transactions
 * while pushes wait for the same write lock (garbage collection, lifecycle
 * enforcement, lifecycle previews). Zero-initialise one per job run. */
struct write_pace {
    int64_t start_ns;     /* of the current write transaction */
    int64_t unchecked_us; /* lock hold since the job's last checkpoint */
};

/* A write transaction starts: call right after BEGIN IMMEDIATE, or right
 * before a call that runs a whole write transaction. */
void write_pace_start(struct write_pace *p);

/* Microseconds since write_pace_start (a batch's time budget). */
int64_t write_pace_elapsed_us(const struct write_pace *p);

/* The transaction ended (committed or rolled back; m outside any
 * transaction): run a passive WAL checkpoint on m when the job's holds
 * since the last one add up to enough (m may be NULL: none), then sleep a
 * few times the hold so that waiting pushes get the lock (write_pace.c has
 * the constants and why). Returns the hold in microseconds. Blocks. */
int64_t write_pace_end(struct write_pace *p, struct meta *m);

#endif
