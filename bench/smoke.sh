#!/bin/sh
# CI smoke test of berth-bench: start a registry on a free loopback port
# with a temporary root, run every workload with a tiny n (the 100 MiB ones
# with n=1) and the loopback mode, and fail unless all of it succeeds.
#
#   smoke.sh BERTH_BENCH BERTH
#
# BENCH_SMOKE_SERVER=distribution runs it against /usr/bin/docker-registry
# instead of berth (the way to check the tool without berth). A server that
# exits before serving fails the test, whatever its exit status.
set -eu

if [ $# -ne 2 ]; then
    echo "usage: smoke.sh BERTH_BENCH BERTH" >&2
    exit 2
fi
bench=$1
berth=$2
server=${BENCH_SMOKE_SERVER:-berth}

work=$(mktemp -d "${TMPDIR:-/tmp}/berth-bench-smoke.XXXXXX")
pid=""
bench_pid=""
cleanup() {
    if [ -n "$bench_pid" ]; then
        kill "$bench_pid" 2>/dev/null || true
        wait "$bench_pid" 2>/dev/null || true
    fi
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

port=$("$bench" --free-port)
url="http://127.0.0.1:$port"
mkdir "$work/root"

case "$server" in
berth)
    BERTH_LOG_LEVEL=warn "$berth" serve --listen "127.0.0.1:$port" --root "$work/root" \
        >"$work/server.log" 2>&1 &
    pid=$!
    ;;
distribution)
    cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/root
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
    /usr/bin/docker-registry serve "$work/registry.yml" >"$work/server.log" 2>&1 &
    pid=$!
    ;;
*)
    echo "smoke: BENCH_SMOKE_SERVER must be berth or distribution" >&2
    exit 2
    ;;
esac

# Ready when GET /v2/ answers 200; a server that exits first has failed.
tries=0
while ! "$bench" --wait-only "$url" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
        status=0
        wait "$pid" || status=$?
        pid=""
        cat "$work/server.log" >&2
        echo "smoke: $server exited with status $status before serving" >&2
        exit 1
    fi
    tries=$((tries + 1))
    if [ "$tries" -gt 300 ]; then
        echo "smoke: $server did not answer GET /v2/ within 30 s" >&2
        exit 1
    fi
    sleep 0.1
done

small="push-monolithic-1m,push-monolithic-10m,push-streamed-1m,push-streamed-10m,pull-1m,pull-10m"
small="$small,mix-10m,head-manifest,tags-list,catalog"
large="push-monolithic-100m,push-streamed-100m,pull-100m"

# berth-bench runs in the background so that a signal (ctest's time-out)
# is handled at once and the server is stopped.
run_bench() {
    "$bench" "$@" &
    bench_pid=$!
    st=0
    wait "$bench_pid" || st=$?
    bench_pid=""
    return "$st"
}

rc=0
run_bench -c 2 -n 4 -w "$small" --catalog-repos 10 --json-file "$work/small.json" "$url" || rc=1
run_bench -c 1 -n 1 -w "$large" --json-file "$work/large.json" "$url" || rc=1
run_bench --patch-content-length -c 1 -n 2 -w push-streamed-1m "$url" || rc=1
run_bench --loopback --loopback-bytes 67108864 >/dev/null || rc=1

# The JSON report names every workload that ran, each ok.
for f in "$work/small.json" "$work/large.json"; do
    if [ ! -s "$f" ] || ! grep -q '"ok": true' "$f" || grep -q '"ok": false' "$f"; then
        echo "smoke: $f is missing or reports a failure" >&2
        rc=1
    fi
done

if ! kill -0 "$pid" 2>/dev/null; then
    echo "smoke: $server died during the run" >&2
    rc=1
fi
if [ "$rc" -ne 0 ]; then
    echo "smoke: server log:" >&2
    tail -n 50 "$work/server.log" >&2
fi
exit "$rc"
