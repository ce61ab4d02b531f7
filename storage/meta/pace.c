/*
 * Pacing of the background jobs' writes (garbage collection, lifecycle
 * enforcement and previews); see pace.h. Runs on the calling thread.
 */
#include "storage/meta/pace.h"

#include "storage/meta/meta_gc.h"
#include "common/timeutil.h"

/*
 * After each write transaction a job stays off the write lock for
 * PACE_FACTOR times as long as it held it, within [PACE_MIN_US,
 * PACE_MAX_US]. SQLite's busy handler makes a waiting writer (a push) sleep
 * 1, 2, 5, 10... ms between tries; a job that took the lock again at once
 * would win nearly every race and a push could wait for the whole pass.
 * With the pause a waiting push finds the lock free at most of its tries
 * (docs/lifecycle-gc.md has the measurements).
 *
 * SQLite checkpoints the WAL automatically in whichever commit takes it
 * past 1000 pages, often a push's. So the job runs a passive checkpoint
 * itself (outside the lock; it never waits for writers) once its
 * transactions since the last one held the lock for PACE_CHECKPOINT_US in
 * all: the pages a job writes grow with its hold, so a collection batch
 * (about 2 ms) is followed by one each time and an enforcement deletion
 * (a fraction of a millisecond without fsync) every few deletions.
 */
#define PACE_FACTOR 4
#define PACE_MIN_US 2000
#define PACE_MAX_US 100000
#define PACE_CHECKPOINT_US 2000

void write_pace_start(struct write_pace *p)
{
    p->start_ns = time_mono_ns();
}

int64_t write_pace_elapsed_us(const struct write_pace *p)
{
    return (time_mono_ns() - p->start_ns) / 1000;
}

int64_t write_pace_end(struct write_pace *p, struct meta *m)
{
    int64_t held_us = write_pace_elapsed_us(p);
    p->unchecked_us += held_us;
    if (m != NULL && p->unchecked_us >= PACE_CHECKPOINT_US) {
        p->unchecked_us = 0;
        (void)meta_gc_checkpoint(m);
    }
    int64_t pause_us = PACE_FACTOR * held_us;
    pause_us = pause_us < PACE_MIN_US ? PACE_MIN_US : pause_us;
    pause_us = pause_us > PACE_MAX_US ? PACE_MAX_US : pause_us;
    time_sleep_ms((pause_us + 999) / 1000);
    return held_us;
}
