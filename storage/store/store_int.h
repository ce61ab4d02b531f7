/*
 * Private to storage/store/: the store structure shared by store.c and
 * upload.c.
 */
#ifndef BERTH_STORE_INT_H
#define BERTH_STORE_INT_H

#include <pthread.h>
#include <stdbool.h>

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
};

/* Free every in-memory upload state (store_close). */
void upload_states_free(struct store *st);

#endif
