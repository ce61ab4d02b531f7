#!/usr/bin/env bash
# `make bench`: berth against the CNCF distribution registry, side by side.
#
#   bench/run-bench.sh BUILD_DIR
#
# Measures the machine's limits (SHA-256, disk write with fdatasync,
# loopback TCP), then runs every berth-bench workload at each concurrency on
# both servers, alternating which goes first. Every run gets a freshly
# started server with an empty data directory, so runs do not see each
# other's data and each server's peak RSS (VmHWM) is that run's alone.
# Prints one table and writes results.{json,md} plus the raw berth-bench
# JSON and server logs into the results directory.
#
# Environment (all optional):
#   BENCH_SERVERS      servers to run, default "berth distribution" (and
#                      berth-before when BENCH_BERTH_BEFORE is set)
#   BENCH_BERTH_BEFORE another berth binary (say, main before a change), run
#                      as the server berth-before beside the others, so that
#                      before, after and the peer share one run
#   BENCH_REGISTRY     the distribution binary, default /usr/bin/docker-registry
#                      (Debian's 2.8.2); any distribution build (3.x) works
#   BENCH_WORKLOADS    comma-separated workloads, default all
#   BENCH_CONCURRENCY  concurrency levels, default "1 16"
#   BENCH_N            one n for every workload (default: the table below)
#   BENCH_N_SCALE      multiply the table's n by this (e.g. 0.1 for a quick run)
#   BENCH_RESULTS      results directory, default BUILD_DIR/bench-results/<time>
#   BENCH_TMPDIR       where the servers' data directories go (a disk, not
#                      tmpfs), default /var/tmp
#   BENCH_DD_MB        MiB written by the disk test, default 1024
#   BENCH_ACCESS_LOG=1 keep both servers' access logs on (default off)
#   BERTH_BENCH_ARGS   extra arguments for `berth serve`
#   BENCH_STORM_CLIENTS  clients per wave of the pull storm, default 1000
#   BENCH_STORM_WAVES    waves of the pull storm, default 2
#
# The pull storm (bench/berth-storm, workload name pull-storm) runs after
# the berth-bench workloads, once per server: every client on its own
# connection from its own loopback address, a HEAD probe from another.
# Then the TLS benchmark (bench/tls-bench.sh, workload name tls-100m): a
# 100 MiB push and pull over HTTPS on both servers with the same
# certificate, and each server's CPU seconds per GB (results in tls.md).
# Then the bundle benchmark (bench/bundle-bench.sh, workload name
# bundle-1g): a 1 GiB bundle imported and exported by berth, against skopeo
# copy oci-archive: into and out of distribution (results in bundle.md).
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: bench/run-bench.sh BUILD_DIR" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd)
bench="$build/bench/berth-bench"
storm="$build/bench/berth-storm"
berth="$build/berth"
registry=${BENCH_REGISTRY:-/usr/bin/docker-registry}
berth_before=${BENCH_BERTH_BEFORE:-}
python=/usr/bin/python3
[ -x "$python" ] || python=python3

default_servers="berth distribution"
[ -n "$berth_before" ] && default_servers="berth berth-before distribution"
servers=${BENCH_SERVERS:-$default_servers}
concurrency=${BENCH_CONCURRENCY:-"1 16"}
results=${BENCH_RESULTS:-"$build/bench-results/$(date +%Y%m%d-%H%M%S)"}
dd_mb=${BENCH_DD_MB:-1024}

for s in $servers; do
    case "$s" in
    berth) [ -x "$berth" ] || { echo "run-bench: $berth not built" >&2; exit 1; } ;;
    berth-before)
        [ -n "$berth_before" ] && [ -x "$berth_before" ] ||
            { echo "run-bench: berth-before needs BENCH_BERTH_BEFORE=/path/to/berth" >&2; exit 1; }
        ;;
    distribution) [ -x "$registry" ] || { echo "run-bench: $registry missing" >&2; exit 1; } ;;
    *) echo "run-bench: unknown server '$s' (berth, berth-before, distribution)" >&2; exit 2 ;;
    esac
done
[ -x "$bench" ] || { echo "run-bench: $bench not built" >&2; exit 1; }

if [ -n "${BENCH_WORKLOADS:-}" ]; then
    workloads=${BENCH_WORKLOADS//,/ }
else
    workloads="$("$bench" --list | awk '{print $1}') pull-storm tls-100m bundle-1g"
fi
# bundle-1g is bundle-bench.sh's
run_bundle=0
case " $workloads " in
*" bundle-1g "*)
    run_bundle=1
    workloads=$(echo "$workloads" | tr ' ' '\n' | grep -vx bundle-1g | tr '\n' ' ' || true)
    ;;
esac
# tls-100m is tls-bench.sh's
run_tls=0
case " $workloads " in
*" tls-100m "*)
    run_tls=1
    workloads=$(echo "$workloads" | tr ' ' '\n' | grep -vx tls-100m | tr '\n' ' ' || true)
    ;;
esac
# pull-storm is berth-storm's, not berth-bench's
run_storm=0
case " $workloads " in
*" pull-storm "*)
    run_storm=1
    workloads=$(echo "$workloads" | tr ' ' '\n' | grep -vx pull-storm | tr '\n' ' ' || true)
    [ -x "$storm" ] || { echo "run-bench: $storm not built" >&2; exit 1; }
    ;;
esac
storm_clients=${BENCH_STORM_CLIENTS:-1000}
storm_waves=${BENCH_STORM_WAVES:-2}

# n per workload at c=1 and c=16 (other levels use the c=16 value), chosen
# so that one run takes about 10 s against distribution 2.8 on a 2-core
# machine and the whole run 10-20 minutes.
default_n() {
    local w=$1 c=$2
    case "$w:$c" in
    push-monolithic-1m:1 | push-streamed-1m:1) echo 600 ;;
    push-monolithic-1m:* | push-streamed-1m:*) echo 900 ;;
    push-monolithic-10m:1 | push-streamed-10m:1) echo 150 ;;
    push-monolithic-10m:* | push-streamed-10m:*) echo 300 ;;
    push-monolithic-100m:1 | push-streamed-100m:1) echo 30 ;;
    push-monolithic-100m:* | push-streamed-100m:*) echo 40 ;;
    pull-1m:1) echo 1200 ;;
    pull-1m:*) echo 2400 ;;
    pull-10m:*) echo 800 ;;
    pull-100m:*) echo 200 ;;
    mix-10m:1) echo 400 ;;
    mix-10m:*) echo 700 ;;
    head-manifest:1) echo 12000 ;;
    head-manifest:*) echo 20000 ;;
    tags-list:1) echo 8000 ;;
    tags-list:*) echo 12000 ;;
    catalog:1) echo 5000 ;;
    catalog:*) echo 8000 ;;
    *) echo 200 ;;
    esac
}

n_for() {
    if [ -n "${BENCH_N:-}" ]; then
        echo "$BENCH_N"
        return
    fi
    local n
    n=$(default_n "$1" "$2")
    if [ -n "${BENCH_N_SCALE:-}" ]; then
        n=$(awk -v n="$n" -v s="$BENCH_N_SCALE" 'BEGIN { v = int(n * s + 0.5); print (v < 1 ? 1 : v) }')
    fi
    echo "$n"
}

mkdir -p "$results/raw" "$results/logs"
work=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/berth-bench.XXXXXX")
server_pid=""
bench_pid=""

stop_server() {
    # an explicit 0: a bare return in an EXIT trap returns the exit status
    if [ -z "$server_pid" ]; then
        return 0
    fi
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

cleanup() {
    set +e
    if [ -n "$bench_pid" ]; then
        kill -TERM "$bench_pid" 2>/dev/null
        wait "$bench_pid" 2>/dev/null
    fi
    stop_server
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server NAME DIR LOG: sets server_pid and server_url; fails when the
# server does not answer GET /v2/ with 200 within 30 s.
start_server() {
    local name=$1 dir=$2 log=$3 port
    port=$("$bench" --free-port)
    mkdir -p "$dir/root"
    case "$name" in
    berth | berth-before)
        local access=false bin=$berth
        [ "${BENCH_ACCESS_LOG:-0}" = 1 ] && access=true
        [ "$name" = berth-before ] && bin=$berth_before
        # shellcheck disable=SC2086
        BERTH_LOG_LEVEL=warn BERTH_LOG_ACCESS=$access \
            "$bin" serve --listen "127.0.0.1:$port" --root "$dir/root" ${BERTH_BENCH_ARGS:-} \
            >"$log" 2>&1 &
        ;;
    distribution)
        local disabled=true
        [ "${BENCH_ACCESS_LOG:-0}" = 1 ] && disabled=false
        cat >"$dir/registry.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: $disabled
storage:
  filesystem:
    rootdirectory: $dir/root
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
        "$registry" serve "$dir/registry.yml" >"$log" 2>&1 &
        ;;
    esac
    server_pid=$!
    server_url="http://127.0.0.1:$port"
    for _ in $(seq 1 300); do
        if "$bench" --wait-only "$server_url" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "run-bench: $name exited before serving; its log:" >&2
            tail -n 20 "$log" >&2
            server_pid=""
            return 1
        fi
        sleep 0.1
    done
    echo "run-bench: $name did not answer GET /v2/ within 30 s" >&2
    return 1
}

peak_rss_kib() {
    awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true
}

# ---- the machine and its limits ----

echo "run-bench: measuring limits" >&2
sha_k=$( (openssl speed -evp sha256 -bytes 1048576 -seconds 3 2>/dev/null || true) |
    awk '$1 == "sha256" { sub(/k$/, "", $2); print $2 }')
sha_mbs=$(awk -v k="${sha_k:-0}" 'BEGIN { printf "%.1f", k / 1000 }')

loop_mbs=0
if "$bench" --loopback -o json --json-file "$results/loopback.json" >/dev/null; then
    loop_mbs=$("$python" -c 'import json, sys
print("%.1f" % json.load(open(sys.argv[1]))["loopback"]["best_mb_per_sec"])' "$results/loopback.json")
fi

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem_gib=$(awk '/^MemTotal:/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
fs=$(df -PT "$work" | awk 'NR == 2 { print $1 " (" $2 ")" }')
berth_rev=$(git -C "$here/.." rev-parse --short HEAD 2>/dev/null || echo unknown)
berth_rev="$berth_rev (of the script's tree; the binary is $berth)"
[ -n "$berth_before" ] && berth_rev="$berth_rev; berth-before is $berth_before"
dist_ver=$("$registry" --version 2>/dev/null | awk '{ print $NF }' || echo unknown)
dist_ver="$dist_ver ($registry)"
echo "run-bench: sha256 $sha_mbs MB/s, loopback $loop_mbs MB/s (the disk is measured last)" >&2

# ---- the workloads ----

printf 'workload\tconcurrency\tserver\texit\tpeak_rss_kib\tjson\n' >"$results/runs.tsv"
total=0
for w in $workloads; do
    for c in $concurrency; do
        for s in $servers; do
            total=$((total + 1))
        done
    done
done

pair=0
run=0
overall=0
for w in $workloads; do
    for c in $concurrency; do
        # alternate which server goes first
        order=$servers
        if [ $((pair % 2)) -eq 1 ]; then
            order=$(echo "$servers" | awk '{ for (i = NF; i > 0; i--) printf "%s ", $i }')
        fi
        pair=$((pair + 1))
        n=$(n_for "$w" "$c")
        for s in $order; do
            run=$((run + 1))
            tag="$w-c$c-$s"
            json="raw/$tag.json"
            dir="$work/$tag"
            status=0
            rss=""
            if start_server "$s" "$dir" "$results/logs/$tag.server.log"; then
                # in the background, so that a signal to this script is
                # handled now rather than after the run
                "$bench" -c "$c" -n "$n" -w "$w" --timeout 600 --json-file "$results/$json" \
                    "$server_url" >"$results/logs/$tag.bench.log" 2>&1 &
                bench_pid=$!
                wait "$bench_pid" || status=$?
                bench_pid=""
                rss=$(peak_rss_kib "$server_pid")
                if ! kill -0 "$server_pid" 2>/dev/null; then
                    echo "run-bench: $s died during $w c=$c" >&2
                    status=1
                fi
            else
                status=1
            fi
            stop_server
            rm -rf "$dir"
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$c" "$s" "$status" "${rss:-}" "$json" \
                >>"$results/runs.tsv"
            line=$(awk -v w="$w" '$1 == w { printf "%s req/s, %s MB/s, p99 %s ms", $6, $7, $10 }' \
                "$results/logs/$tag.bench.log" 2>/dev/null || true)
            if [ "$status" -ne 0 ]; then
                overall=1
                line="FAILED (status $status; see logs/$tag.*.log) $line"
            fi
            printf 'run-bench: [%d/%d] %-22s c=%-3s n=%-6s %-12s %s, peak RSS %s KiB\n' \
                "$run" "$total" "$w" "$c" "$n" "$s" "$line" "${rss:--}" >&2
        done
    done
done

# ---- the pull storm ----

if [ "$run_storm" = 1 ]; then
    printf 'server\texit\tjson\n' >"$results/storm.tsv"
    for s in $servers; do
        tag="pull-storm-$s"
        dir="$work/$tag"
        json="raw/$tag.json"
        status=0
        if start_server "$s" "$dir" "$results/logs/$tag.server.log"; then
            "$storm" -c "$storm_clients" --waves "$storm_waves" --pid "$server_pid" \
                --json-file "$results/$json" "$server_url" >"$results/logs/$tag.storm.log" 2>&1 &
            bench_pid=$!
            wait "$bench_pid" || status=$?
            bench_pid=""
            if ! kill -0 "$server_pid" 2>/dev/null; then
                echo "run-bench: $s died during the pull storm" >&2
                status=1
            fi
        else
            status=1
        fi
        stop_server
        rm -rf "$dir"
        printf '%s\t%s\t%s\n' "$s" "$status" "$json" >>"$results/storm.tsv"
        [ "$status" -eq 0 ] || overall=1
        echo "run-bench: pull storm ($storm_clients clients x $storm_waves) $s:" >&2
        sed 's/^/run-bench:   /' "$results/logs/$tag.storm.log" | grep -v '^run-bench:   berth-storm http' >&2 || true
    done
fi

if [ "$run_tls" = 1 ]; then
    echo "run-bench: TLS, 100 MiB push and pull (bench/tls-bench.sh)" >&2
    tls_servers=$(echo "$servers" | tr ' ' '\n' | grep -vx berth-before | tr '\n' ' ' || true)
    if BENCH_SERVERS=$tls_servers BENCH_REGISTRY=$registry "$here/tls-bench.sh" "$build" "$results" \
        >"$results/logs/tls.log" 2>&1; then
        sed 's/^/run-bench:   /' "$results/tls.md" >&2
    else
        echo "run-bench: the TLS benchmark failed; see logs/tls.log" >&2
        overall=1
    fi
fi

if [ "$run_bundle" = 1 ]; then
    echo "run-bench: bundles, 1 GiB import and export (bench/bundle-bench.sh)" >&2
    if "$here/bundle-bench.sh" "$build" "$results" >"$results/logs/bundle.log" 2>&1; then
        sed 's/^/run-bench:   /' "$results/bundle.md" >&2
    else
        echo "run-bench: the bundle benchmark failed; see logs/bundle.log" >&2
        overall=1
    fi
fi

# The disk is measured after the servers ran: a 1 GiB write leaves a
# virtual disk busy for a while after its fdatasync returned, which slowed
# whichever server ran first when this came at the start.
dd_out=$( (dd if=/dev/zero of="$work/dd.bin" bs=1M count="$dd_mb" conv=fdatasync 2>&1 || true) |
    tail -n 1)
rm -f "$work/dd.bin"
# "1073741824 bytes (1.1 GB, 1.0 GiB) copied, 3.04 s, 353 MB/s"
disk_mbs=$(echo "$dd_out" | awk -F', ' '{ split($1, b, " "); split($(NF-1), t, " ");
    if (t[1] > 0) printf "%.1f", b[1] / t[1] / 1e6; else print 0 }')

L_SHA=$sha_mbs L_DISK=$disk_mbs L_DD_MB=$dd_mb L_LOOP=$loop_mbs L_CPU=$cpu L_MEM=$mem_gib \
    L_FS=$fs L_REV=$berth_rev L_DIST=$dist_ver L_SERVERS=$servers L_CONC=$concurrency \
    "$python" - "$results/limits.json" <<'EOF'
import json, os, platform, sys, time
e = os.environ
json.dump({
    "sha256_mb_per_sec": float(e["L_SHA"] or 0) or None,
    "disk_write_mb_per_sec": float(e["L_DISK"] or 0) or None,
    "disk_write_mb": int(e["L_DD_MB"]),
    "loopback_mb_per_sec": float(e["L_LOOP"] or 0) or None,
    "machine": {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu": e["L_CPU"],
        "cpus": os.cpu_count(),
        "memory_gib": float(e["L_MEM"] or 0),
        "kernel": platform.release(),
        "data filesystem": e["L_FS"],
        "berth commit": e["L_REV"],
        "distribution": e["L_DIST"],
        "servers": e["L_SERVERS"],
        "concurrency": e["L_CONC"],
    },
}, open(sys.argv[1], "w"), indent=2)
EOF
echo "run-bench: disk $disk_mbs MB/s" >&2

"$python" "$here/report.py" "$results" || overall=1
exit "$overall"
