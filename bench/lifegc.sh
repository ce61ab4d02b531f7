#!/bin/sh
# The lifecycle and garbage-collection scale benchmark (numbers in
# docs/lifecycle-gc.md): a lifecycle policy evaluated over a repository of
# 100,000 images (and enforced), and a GC pass over 1,000,000 blob rows,
# each while a probe keeps pushing and pulling through the same store.
#
#   bench/lifegc.sh [BUILD_DIR]          (default: build; builds bench-lifegc)
#
# Sizes: LIFEGC_IMAGES (100000), LIFEGC_ROWS (1000000), LIFEGC_GARBAGE
# (100000), LIFEGC_ORPHANS (10000). LIFEGC_DIR: where the stores go (default
# $TMPDIR; a new temporary directory is made inside it and removed at the end,
# LIFEGC_DIR itself is left alone; about 1 GB).
# LIFEGC_ENFORCE=0 skips the enforcement run (about 2.5 minutes).
# LIFEGC_PROBE_SECONDS (10): length of each baseline probe.
# BERTH_BENCH_FSYNC=0 turns fsync off everywhere (default: on, except for
# the set-up and the enforcement run, see below).
set -eu

BUILD=${1:-build}
IMAGES=${LIFEGC_IMAGES:-100000}
ROWS=${LIFEGC_ROWS:-1000000}
GARBAGE=${LIFEGC_GARBAGE:-100000}
ORPHANS=${LIFEGC_ORPHANS:-10000}
ENFORCE=${LIFEGC_ENFORCE:-1}
FSYNC=${BERTH_BENCH_FSYNC:-1}
PROBE=${LIFEGC_PROBE_SECONDS:-10}

cmake --build "$BUILD" --target bench-lifegc -j 2 >/dev/null
BIN="$BUILD/bench/bench-lifegc"
# Always a fresh directory of our own, inside LIFEGC_DIR when given: the trap
# removes it, and must never remove a directory the caller named.
PARENT=${LIFEGC_DIR:-${TMPDIR:-/tmp}}
mkdir -p "$PARENT"
DIR=$(mktemp -d "$PARENT/berth-lifegc-bench.XXXXXX")
trap 'rm -rf "$DIR"' EXIT INT TERM
mkdir -p "$DIR/lc" "$DIR/gc"

run() {
    # The log lines (stderr) are not the report; keep them for a look.
    "$@" 2>>"$DIR/log"
}

echo "# berth lifecycle/GC benchmark  $(date -u +%Y-%m-%dT%H:%M:%SZ)  $(nproc) CPUs  fsync=$FSYNC"
echo
echo "## lifecycle over $IMAGES images"
BERTH_BENCH_FSYNC=0 run "$BIN" setup-lifecycle "$DIR/lc" "$IMAGES"
BERTH_BENCH_FSYNC=$FSYNC run "$BIN" probe "$DIR/lc" "$PROBE"
BERTH_BENCH_FSYNC=$FSYNC run "$BIN" lifecycle "$DIR/lc"
if [ "$ENFORCE" = 1 ]; then
    # Deleting ~99,000 images is ~99,000 write transactions; with fsync on
    # that takes a quarter of an hour on a slow disk, so this run measures
    # the pacing and the probe with fsync off.
    BERTH_BENCH_FSYNC=0 run "$BIN" lifecycle "$DIR/lc" --apply
fi
rm -rf "$DIR/lc"

echo
echo "## garbage collection over $ROWS blob rows ($GARBAGE garbage, $ORPHANS orphan files)"
BERTH_BENCH_FSYNC=0 run "$BIN" setup-gc "$DIR/gc" "$ROWS" "$GARBAGE" "$ORPHANS"
BERTH_BENCH_FSYNC=$FSYNC run "$BIN" probe "$DIR/gc" "$PROBE"
BERTH_BENCH_FSYNC=$FSYNC run "$BIN" gc "$DIR/gc" --dry-run
: >"$DIR/log"
BERTH_BENCH_DEBUG=1 BERTH_BENCH_FSYNC=$FSYNC run "$BIN" gc "$DIR/gc"
# How long each deletion batch held the write lock (its debug lines).
sed -n 's/.*event=gc_batch .*lock_us=\([0-9]*\).*/\1/p' "$DIR/log" | sort -n | awk '
    { v[NR] = $1 }
    END { if (NR) printf "  deletion batches: n=%d lock held p50=%.2f ms p90=%.2f ms p99=%.2f ms max=%.2f ms\n",
          NR, v[int(NR*0.5)+1]/1000, v[int(NR*0.9)+1]/1000, v[int(NR*0.99)+1]/1000, v[NR]/1000 }'
