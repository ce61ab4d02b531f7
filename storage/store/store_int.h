/*
 * Private to storage/store/: the store structure shared by store.c and
 * upload.c.
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

#endif
