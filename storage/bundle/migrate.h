/*
 * berth migrate: copy a whole registry from one store to another (any blob
 * backend, any metadata driver): blobs through the blob interface with
 * every digest checked, then every metadata row in one transaction on the
 * destination, then a verification pass that re-reads every blob the
 * destination's metadata names. Re-running continues: blobs already in the
 * destination are kept (and verified at the end) and the metadata of an
 * earlier run of the same source is replaced. The source is only read
 * (apart from its registry id setting, made once).
 */
#ifndef BERTH_MIGRATE_H
#define BERTH_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/store/store.h"

enum migrate_phase { MIGRATE_BLOBS, MIGRATE_METADATA, MIGRATE_VERIFY };

struct migrate_progress {
    enum migrate_phase phase;
    int64_t done;    /* blobs handled (or rows copied) so far */
    int64_t total;   /* blobs of the phase (0 for metadata) */
    int64_t copied;  /* blobs copied */
    int64_t present; /* blobs the destination had already */
    uint64_t bytes;  /* bytes copied or verified */
    bool finished;   /* the phase's last report */
};
/* Called at each phase's start and end and after every blob. */
typedef void (*migrate_progress_fn)(void *arg, const struct migrate_progress *p);

struct migrate_stats {
    int64_t blobs;   /* blob rows of the source */
    int64_t copied;  /* blobs copied in this run */
    int64_t present; /* blobs the destination already held */
    uint64_t bytes;  /* bytes copied */
    int64_t tables;
    int64_t rows;
    int64_t verified; /* destination blobs re-read and hashed */
};

/* Copy src's registry into dst. why (why_cap bytes) says what went wrong:
 * BERTH_EEXIST when dst holds another registry's data, or is a copy of src
 * that berth serve has served since (unless force), BERTH_EINVAL when a
 * digest or a count does not match, BERTH_EUNSUPPORTED for what is not
 * carried (archived blobs), BERTH_EIO/BERTH_EDB otherwise. */
enum berth_err migrate_run(struct store *src, struct store *dst, bool force,
                           migrate_progress_fn progress, void *arg, struct migrate_stats *stats,
                           char *why, size_t why_cap);

#endif
