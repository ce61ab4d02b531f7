#!/bin/sh
# CI smoke test of bench/lifegc.sh: a tiny run (a few images and rows, 1 s
# probes) with LIFEGC_DIR set to a directory holding a file of the caller's.
# Fails unless the run succeeds, reports both parts, leaves LIFEGC_DIR and
# that file in place and removes the temporary stores it made inside.
#
#   lifegc-smoke.sh BUILD_DIR
set -eu

if [ $# -ne 1 ]; then
    echo "usage: lifegc-smoke.sh BUILD_DIR" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
parent=$(mktemp -d "${TMPDIR:-/tmp}/berth-lifegc-smoke.XXXXXX")
trap 'rm -rf "$parent"' EXIT INT TERM
echo "not the benchmark's" >"$parent/keep"

out=$(LIFEGC_DIR="$parent" LIFEGC_IMAGES=20 LIFEGC_ROWS=200 LIFEGC_GARBAGE=20 \
    LIFEGC_ORPHANS=5 LIFEGC_PROBE_SECONDS=1 sh "$here/lifegc.sh" "$1")
rc=0
for part in "## lifecycle over 20 images" "## garbage collection over 200 blob rows"; do
    case "$out" in
    *"$part"*) ;;
    *) echo "lifegc-smoke: no '$part' in the report" >&2; rc=1 ;;
    esac
done
if [ ! -f "$parent/keep" ]; then
    echo "lifegc-smoke: lifegc.sh removed LIFEGC_DIR or what was in it" >&2
    exit 1
fi
left=$(find "$parent" -mindepth 1 ! -name keep)
if [ -n "$left" ]; then
    echo "lifegc-smoke: lifegc.sh left behind: $left" >&2
    rc=1
fi
[ "$rc" -eq 0 ] || printf '%s\n' "$out" >&2
exit "$rc"
