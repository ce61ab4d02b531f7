#!/usr/bin/env bash
# The bundle benchmark of `make bench` (workload bundle-1g): how fast a
# 1 GiB bundle gets into a registry and back out of one.
#
#   bench/bundle-bench.sh BUILD_DIR RESULTS_DIR
#
# The bundle is an OCI image layout packed as a plain tar: one image of
# BENCH_BUNDLE_LAYERS gzip layers of random bytes (stored gzip blocks, so
# that nothing can compress them and skopeo keeps them as they are) making
# BENCH_BUNDLE_MIB MiB in all. Each round, on fresh data directories:
#
#   import  berth:        berth import --root DIR bundle.tar (no server)
#           skopeo→distr: skopeo copy --all --preserve-digests
#                         oci-archive:bundle.tar:TAG docker://distribution/...
#           skopeo→berth: the same skopeo command into a running berth
#   export  berth:        berth export --root DIR REPO:TAG -o out.tar
#           distr→skopeo: skopeo copy --all --preserve-digests
#                         docker://distribution/REPO:TAG oci-archive:out.tar:TAG
#
# Reported: the median MB/s (MB = 10^6 bytes of the bundle file, wall
# clock) of each and its CPU seconds per GB (user + system of the command
# and its children, plus the server's utime + stime from /proc/PID/stat
# around it), in bundle.md and bundle-runs.tsv. Every imported image
# is checked (its manifest digest read back) so that a fast failure cannot
# pass for a fast run.
#
# Environment: BENCH_BUNDLE_ROUNDS (default 3), BENCH_BUNDLE_MIB (default
# 1024), BENCH_BUNDLE_LAYERS (default 8), BENCH_TMPDIR (default /var/tmp).
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: bench/bundle-bench.sh BUILD_DIR RESULTS_DIR" >&2
    exit 2
fi
build=$(cd "$1" && pwd)
results=$2
berth="$build/berth"
bench="$build/bench/berth-bench"
registry=/usr/bin/docker-registry
rounds=${BENCH_BUNDLE_ROUNDS:-3}
mib=${BENCH_BUNDLE_MIB:-1024}
layers=${BENCH_BUNDLE_LAYERS:-8}
python=/usr/bin/python3
[ -x "$python" ] || python=python3
for tool in /usr/bin/curl /usr/bin/skopeo "$registry" "$berth" "$bench"; do
    [ -x "$tool" ] || { echo "bundle-bench: $tool missing" >&2; exit 1; }
done

mkdir -p "$results"
work=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/berth-bundle-bench.XXXXXX")
server_pid=""
stop_server() {
    [ -n "$server_pid" ] || return 0
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
    stop_server
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the bundle ----
"$python" - "$work/layout" "$mib" "$layers" <<'PY'
import gzip, hashlib, json, os, sys, zlib

out, mib, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(os.path.join(out, "blobs", "sha256"))


def put(data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(out, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return "sha256:" + d


descs, diff_ids = [], []
each = mib * 1048576 // count
for i in range(count):
    raw = os.urandom(each)
    diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    blob = gzip.compress(raw, compresslevel=0, mtime=0)
    descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                  "digest": put(blob), "size": len(blob)})
config = json.dumps({"architecture": "amd64", "os": "linux",
                     "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": put(config), "size": len(config)},
                       "layers": descs}).encode()
digest = put(manifest)
with open(os.path.join(out, "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
               "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                              "digest": digest, "size": len(manifest),
                              "annotations": {"org.opencontainers.image.ref.name":
                                              "bench/big:1"}}]}, f)
with open(os.path.join(out, "..", "digest"), "w") as f:
    f.write(digest)
PY
digest=$(cat "$work/digest")
tar -C "$work/layout" -cf "$work/bundle.tar" oci-layout index.json blobs
rm -rf "$work/layout"
bundle_bytes=$(stat -c %s "$work/bundle.tar")

# start_server NAME DIR: sets server_pid and url
start_server() {
    local name=$1 dir=$2 port
    port=$("$bench" --free-port)
    mkdir -p "$dir/root"
    case "$name" in
    berth)
        BERTH_LOG_LEVEL=warn BERTH_LOG_ACCESS=false \
            "$berth" serve --listen "127.0.0.1:$port" --root "$dir/root" >"$dir/server.log" 2>&1 &
        ;;
    distribution)
        cat >"$dir/registry.yml" <<YML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/root
http:
  addr: 127.0.0.1:$port
YML
        "$registry" serve "$dir/registry.yml" >"$dir/server.log" 2>&1 &
        ;;
    esac
    server_pid=$!
    url="127.0.0.1:$port"
    for _ in $(seq 1 300); do
        if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$url/v2/")" = 200 ]; then
            return 0
        fi
        kill -0 "$server_pid" 2>/dev/null || { tail -n 20 "$dir/server.log" >&2; return 1; }
        sleep 0.1
    done
    echo "bundle-bench: $name did not answer within 30 s" >&2
    return 1
}

# the manifest digest a registry serves for bench/big:1 must be the bundle's
check_digest() {
    local got
    got=$(curl -sS -o /dev/null -D - -H "Accept: application/vnd.oci.image.manifest.v1+json" \
        "http://$1/v2/bench/big/manifests/1" | awk 'tolower($1) == "docker-content-digest:" { print $2 }' | tr -d '\r')
    [ "$got" = "$digest" ] || { echo "bundle-bench: $1 serves $got, not $digest" >&2; exit 1; }
}

hz=$(getconf CLK_TCK)
server_ticks() { # utime + stime of the running server, 0 without one
    if [ -n "$server_pid" ]; then awk '{ print $14 + $15 }' "/proc/$server_pid/stat"; else echo 0; fi
}
# timed OP WHO COMMAND...: run the command (after a sync), record its wall
# seconds and the CPU seconds of it and of the running server
timed() {
    local op=$1 who=$2 t0 t1 s0 s1 cpu
    shift 2
    sync
    s0=$(server_ticks)
    t0=$(date +%s.%N)
    TIMEFORMAT='%U %S'
    { time "$@" >"$work/cmd.log" 2>&1; } 2>"$work/cpu" || {
        cat "$work/cmd.log" >&2
        echo "bundle-bench: $who failed" >&2
        exit 1
    }
    t1=$(date +%s.%N)
    s1=$(server_ticks)
    cpu=$(awk -v s0="$s0" -v s1="$s1" -v hz="$hz" '{ printf "%.3f", $1 + $2 + (s1 - s0) / hz }' "$work/cpu")
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$op" "$who" "$bundle_bytes" "$secs" "$cpu" \
        >>"$results/bundle-runs.tsv"
    echo "bundle-bench: round $r $op $who: $(awk -v b="$bundle_bytes" -v s="$secs" -v c="$cpu" \
        'BEGIN { printf "%.1f MB/s, %.2f CPU s per GB", b / s / 1e6, c / (b / 1e9) }')" >&2
}
skopeo_copy() {
    TMPDIR=$work skopeo copy --all --preserve-digests --src-tls-verify=false \
        --dest-tls-verify=false --src-no-creds --dest-no-creds "$@"
}

printf 'round\top\twho\tbytes\tseconds\tcpu_seconds\n' >"$results/bundle-runs.tsv"
for r in $(seq 1 "$rounds"); do
    # import: berth import (no server), then berth's export from that store
    dir="$work/berth-$r"
    mkdir -p "$dir/root"
    timed import "berth import" env BERTH_LOG_LEVEL=warn "$berth" import --root "$dir/root" \
        "$work/bundle.tar"
    timed export "berth export" env BERTH_LOG_LEVEL=warn "$berth" export --root "$dir/root" \
        bench/big:1 -o "$work/out.tar"
    rm -f "$work/out.tar"
    start_server berth "$dir"
    check_digest "$url"
    stop_server
    rm -rf "$dir"

    # skopeo from the bundle into distribution, and back out
    dir="$work/distribution-$r"
    start_server distribution "$dir"
    timed import "skopeo → distribution" skopeo_copy "oci-archive:$work/bundle.tar:bench/big:1" \
        "docker://$url/bench/big:1"
    check_digest "$url"
    timed export "distribution → skopeo" skopeo_copy "docker://$url/bench/big:1" \
        "oci-archive:$work/out.tar:bench/big:1"
    rm -f "$work/out.tar"
    stop_server
    rm -rf "$dir"

    # the same skopeo command into a running berth (the push path)
    dir="$work/berth-push-$r"
    start_server berth "$dir"
    timed import "skopeo → berth" skopeo_copy "oci-archive:$work/bundle.tar:bench/big:1" \
        "docker://$url/bench/big:1"
    check_digest "$url"
    stop_server
    rm -rf "$dir"
done

"$python" - "$results/bundle-runs.tsv" "$results/bundle.md" "$mib" "$layers" "$rounds" <<'PY'
import csv, statistics, sys

runs, out, mib, layers, rounds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
rates, cpus = {}, {}
for row in csv.DictReader(open(runs), delimiter="\t"):
    gb = int(row["bytes"]) / 1e9
    rates.setdefault((row["op"], row["who"]), []).append(gb * 1e3 / float(row["seconds"]))
    cpus.setdefault((row["op"], row["who"]), []).append(float(row["cpu_seconds"]) / gb)
lines = ["A %s MiB bundle (%s gzip layers of random bytes, plain tar), median of %s rounds: "
         "MB/s of the bundle file, and CPU seconds per GB (the command's and the server's):"
         % (mib, layers, rounds), "",
         "| | how | MB/s (median) | runs | CPU s per GB (median) |", "|---|---|---|---|---|"]
for (op, who), r in sorted(rates.items()):
    lines.append("| %s | %s | %.1f | %s | %.2f |" % (op, who, statistics.median(r),
                                                    ", ".join("%.1f" % x for x in r),
                                                    statistics.median(cpus[(op, who)])))
ratio = {}
for op, mine, peer in (("import", "berth import", "skopeo → distribution"),
                       ("export", "berth export", "distribution → skopeo")):
    if (op, mine) in rates and (op, peer) in rates:
        ratio[op] = statistics.median(rates[(op, mine)]) / statistics.median(rates[(op, peer)])
lines.append("")
lines.append("berth / distribution with skopeo: " +
             ", ".join("%s %.2fx" % (op, x) for op, x in sorted(ratio.items())))
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
