/*
 * Pacing for background jobs that write in many short transactions while
 * pushes wait for the same write lock (garbage collection, lifecycle
 * enforcement, lifecycle previews). One struct write_pace per job run, used
 * on that job's thread only.
 */
#ifndef BERTH_META_PACE_H
#define BERTH_META_PACE_H

#include <stdint.h>

struct meta;

/* Zero-initialise one per job run. */
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
 * few times the hold so that waiting pushes get the lock (pace.c has
 * the constants and why). Returns the hold in microseconds. Blocks. */
int64_t write_pace_end(struct write_pace *p, struct meta *m);

#endif
