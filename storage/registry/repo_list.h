/*
 * Pages of repositories filtered by what the caller may see: the one refill
 * loop behind /v2/_catalog and ECR DescribeRepositories. Thread-safe (each
 * thread uses its own metadata connection); blocks on the database.
 */
#ifndef BERTH_REPO_LIST_H
#define BERTH_REPO_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "storage/meta/meta.h"
#include "storage/registry/registry.h"

struct store;

/* Whether the caller may see repository name in a listing. */
typedef bool (*repo_list_allow_fn)(void *arg, const char *name);

/* Take one listed repository (borrowed for the call); anything but
 * BERTH_OK stops the listing with that error. */
typedef enum berth_err (*repo_list_take_fn)(void *arg, const struct meta_repo *repo);

/* A page of at most limit repositories with names after `after` (NULL or
 * "": from the start), in byte order, of those allow accepts (allow NULL:
 * all): further names are read until the page is full or they run out, so
 * only the last page is short. take gets each in turn; last (last_cap
 * bytes) the name of the last taken ("" when none); *more whether the page
 * is full and names follow (they may all be hidden: the next page can be
 * empty). limit <= 0 is an empty page. On failure (the database, or take's
 * error) s says REG_INTERNAL with the error. Runs on this thread's
 * metadata connection; blocks. */
enum berth_err repo_list_page(struct store *st, const char *after, int64_t limit,
                              repo_list_allow_fn allow, repo_list_take_fn take, void *arg,
                              char *last, size_t last_cap, bool *more, struct registry_status *s);

#endif
