#!/usr/bin/env bash
# The TLS benchmark of `make bench` (workload tls-100m): push and pull of a
# 100 MiB blob over HTTPS against berth's native TLS (GnuTLS under
# libmicrohttpd) and distribution's (Go crypto/tls), with the same
# certificate and key (a P-256 chain the script makes with openssl) and the
# same client (curl, OpenSSL; one connection per request, c=1).
#
#   bench/tls-bench.sh BUILD_DIR RESULTS_DIR
#
# Each round makes a fresh random blob (so no server can find it already
# stored) and starts every server on a fresh data directory. It pushes the
# blob to each as a monolithic PUT (POST, then PUT ?digest= with the body),
# alternating which server goes first, then pulls it BENCH_TLS_PULLS times
# from each, in pairs back to back (the order within a pair alternates too).
# A timed pull goes to /dev/null with its status and length checked (a pull
# written to a file timed the client's page cache and disk as well: on a busy
# machine that was most of the spread); an untimed pull into a file per
# server and round is then compared byte for byte. Reported per server: the
# median MB/s of push and pull (MB = 10^6 bytes, from curl's time_total), the
# server's CPU seconds per GB moved (utime + stime from /proc/PID/stat around
# each request), the time the server's threads spent runnable but waiting
# for a CPU during a pull (schedstat, summed over threads) over the pull's
# time, and with two servers the median of the pull pairs' ratios and how
# many pairs berth won.
#
# Environment: BENCH_TLS_ROUNDS (default 5), BENCH_TLS_PULLS (default 3),
# BENCH_TLS_MIB (default 100), BENCH_SERVERS (default "berth distribution"),
# BENCH_TMPDIR (default /var/tmp), BERTH_BENCH_ARGS (extra `berth serve`
# arguments).
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: bench/tls-bench.sh BUILD_DIR RESULTS_DIR" >&2
    exit 2
fi
build=$(cd "$1" && pwd)
results=$2
berth="$build/berth"
bench="$build/bench/berth-bench"
registry=${BENCH_REGISTRY:-/usr/bin/docker-registry}
rounds=${BENCH_TLS_ROUNDS:-5}
pulls=${BENCH_TLS_PULLS:-3}
mib=${BENCH_TLS_MIB:-100}
servers=${BENCH_SERVERS:-"berth distribution"}
python=/usr/bin/python3
[ -x "$python" ] || python=python3
for tool in /usr/bin/curl /usr/bin/openssl "$bench"; do
    [ -x "$tool" ] || { echo "tls-bench: $tool missing" >&2; exit 1; }
done

mkdir -p "$results"
work=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/berth-tls-bench.XXXXXX")
declare -A server_pids=() urls=()
cleanup() {
    set +e
    stop_servers
    rm -rf "$work"
}
stop_servers() {
    local s pid
    for s in "${!server_pids[@]}"; do
        pid=${server_pids[$s]}
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        unset "server_pids[$s]"
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- certificates: a root CA and a server certificate for 127.0.0.1 ----
pki="$work/pki"
mkdir -p "$pki"
(
    cd "$pki"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
    openssl req -x509 -new -key ca.key -out ca.pem -subj "/CN=berth bench CA" -days 2 \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out server.key 2>/dev/null
    openssl req -new -key server.key -out server.csr -subj "/CN=127.0.0.1" 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n' \
        >ext.cnf
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
        -days 2 -extfile ext.cnf 2>/dev/null
)

# start_server NAME DIR: sets server_pids[NAME] and urls[NAME]
start_server() {
    local name=$1 dir=$2 port
    port=$("$bench" --free-port)
    mkdir -p "$dir/root"
    case "$name" in
    berth)
        # shellcheck disable=SC2086
        BERTH_LOG_LEVEL=warn BERTH_LOG_ACCESS=false BERTH_TLS_CERT_FILE="$pki/server.pem" \
            BERTH_TLS_KEY_FILE="$pki/server.key" \
            "$berth" serve --listen "127.0.0.1:$port" --root "$dir/root" ${BERTH_BENCH_ARGS:-} \
            >"$dir/server.log" 2>&1 &
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
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  tls:
    certificate: $pki/server.pem
    key: $pki/server.key
YML
        "$registry" serve "$dir/registry.yml" >"$dir/server.log" 2>&1 &
        ;;
    esac
    local pid=$! url="https://127.0.0.1:$port"
    server_pids[$name]=$pid
    urls[$name]=$url
    for _ in $(seq 1 300); do
        if [ "$(curl -s --cacert "$pki/ca.pem" -o /dev/null -w '%{http_code}' "$url/v2/")" = 200 ]; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$dir/server.log" >&2; return 1; }
        sleep 0.1
    done
    echo "tls-bench: $name did not answer over TLS within 30 s" >&2
    return 1
}

cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# sched_ms PID: milliseconds its threads have run and have waited runnable
# for a CPU (the run queue), summed over threads (/proc/PID/task/*/schedstat)
sched_ms() {
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ r += $1; w += $2 } END { printf "%d %d\n", r / 1e6, w / 1e6 }'
}

curl_tls() {
    curl -sS --fail --cacert "$pki/ca.pem" "$@"
}

reverse() {
    echo "$@" | awk '{ for (i = NF; i > 0; i--) printf "%s ", $i }'
}

printf 'round\tserver\top\tbytes\tseconds\tcpu_ticks\trun_ms\twait_ms\tpair\n' >"$results/tls-runs.tsv"
hz=$(getconf CLK_TCK)
for r in $(seq 1 "$rounds"); do
    blob="$work/blob"
    openssl rand -out "$blob" $((mib * 1048576))
    digest="sha256:$(sha256sum "$blob" | cut -d' ' -f1)"
    bytes=$(stat -c %s "$blob")
    order=$servers
    if [ $((r % 2)) -eq 0 ]; then
        order=$(reverse "$servers")
    fi
    repo="bench/tls$r"
    for s in $order; do
        start_server "$s" "$work/$s-$r"
    done
    for s in $order; do
        # push: POST for a session, then the whole body in one PUT
        pid=${server_pids[$s]}
        url=${urls[$s]}
        curl_tls -X POST -D "$work/headers" -o /dev/null "$url/v2/$repo/blobs/uploads/"
        loc=$(awk 'tolower($1) == "location:" { print $2 }' "$work/headers" | tr -d '\r')
        case "$loc" in
        http*) ;;
        *) loc="$url$loc" ;;
        esac
        case "$loc" in
        *\?*) put="$loc&digest=$digest" ;;
        *) put="$loc?digest=$digest" ;;
        esac
        before=$(cpu_ticks "$pid")
        secs=$(curl_tls -X PUT -H "Content-Type: application/octet-stream" -T "$blob" \
            -o /dev/null -w '%{time_total}' "$put")
        after=$(cpu_ticks "$pid")
        printf '%s\t%s\tpush\t%s\t%s\t%s\t\t\t\n' "$r" "$s" "$bytes" "$secs" "$((after - before))" \
            >>"$results/tls-runs.tsv"
    done
    for p in $(seq 1 "$pulls"); do
        pair_order=$order
        if [ $((p % 2)) -eq 0 ]; then
            pair_order=$(reverse "$order")
        fi
        for s in $pair_order; do
            pid=${server_pids[$s]}
            before=$(cpu_ticks "$pid")
            read -r run0 wait0 < <(sched_ms "$pid")
            read -r secs got < <(curl_tls -o /dev/null -w '%{time_total} %{size_download}\n' \
                "${urls[$s]}/v2/$repo/blobs/$digest")
            read -r run1 wait1 < <(sched_ms "$pid")
            after=$(cpu_ticks "$pid")
            [ "$got" = "$bytes" ] || { echo "tls-bench: $s sent $got bytes of $bytes" >&2; exit 1; }
            printf '%s\t%s\tpull\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$s" "$bytes" "$secs" \
                "$((after - before))" "$((run1 - run0))" "$((wait1 - wait0))" "$r.$p" \
                >>"$results/tls-runs.tsv"
        done
    done
    for s in $order; do
        curl_tls -o "$work/pulled" "${urls[$s]}/v2/$repo/blobs/$digest"
        cmp -s "$blob" "$work/pulled" || { echo "tls-bench: $s returned other bytes" >&2; exit 1; }
        rm -f "$work/pulled"
    done
    stop_servers
    for s in $order; do
        rm -rf "$work/$s-$r"
    done
    echo "tls-bench: round $r/$rounds done ($order)" >&2
done

HZ=$hz "$python" - "$results" <<'PY'
import json, os, statistics, sys
res = sys.argv[1]
hz = int(os.environ["HZ"])
rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(res, "tls-runs.tsv"))][1:]
out = {}
pairs = {}
for r, s, op, b, secs, ticks, run, wait, pair in rows:
    d = out.setdefault(s, {}).setdefault(op, {"mbs": [], "bytes": 0, "ticks": 0, "waitshare": []})
    d["mbs"].append(int(b) / float(secs) / 1e6)
    d["bytes"] += int(b)
    d["ticks"] += int(ticks)
    if op == "pull":
        d["waitshare"].append(int(wait) / (float(secs) * 1000))
        pairs.setdefault(pair, {})[s] = float(secs)
summary = {}
lines = ["| server | op | median MB/s | runs | server CPU s per GB | server threads' run-queue wait / pull time |",
         "|---|---|---|---|---|---|"]
for s, ops in out.items():
    for op, d in ops.items():
        cpu_gb = d["ticks"] / hz / (d["bytes"] / 1e9)
        e = {"median_mb_per_sec": round(statistics.median(d["mbs"]), 1), "runs": len(d["mbs"]),
             "cpu_seconds_per_gb": round(cpu_gb, 2)}
        wait = ""
        if d["waitshare"]:
            e["median_runqueue_share"] = round(statistics.median(d["waitshare"]), 2)
            wait = "%d%% (median)" % round(100 * e["median_runqueue_share"])
        summary.setdefault(s, {})[op] = e
        lines.append("| %s | %s | %.1f | %d | %.2f | %s |" % (s, op, e["median_mb_per_sec"],
                                                          len(d["mbs"]), cpu_gb, wait))
if "berth" in summary and "distribution" in summary:
    for op in ("push", "pull"):
        b, dd = summary["berth"].get(op), summary["distribution"].get(op)
        if b and dd:
            lines.append("")
            lines.append("%s: berth/distribution throughput %.2fx, CPU per GB %.2fx" % (
                op, b["median_mb_per_sec"] / dd["median_mb_per_sec"],
                b["cpu_seconds_per_gb"] / dd["cpu_seconds_per_gb"] if dd["cpu_seconds_per_gb"] else 0))
    ratios = [p["distribution"] / p["berth"] for p in pairs.values()
              if "berth" in p and "distribution" in p]
    if ratios:
        summary["pull_pairs"] = {"pairs": len(ratios),
                                 "median_ratio": round(statistics.median(ratios), 2),
                                 "min_ratio": round(min(ratios), 2),
                                 "max_ratio": round(max(ratios), 2),
                                 "berth_faster": sum(1 for x in ratios if x > 1)}
        lines.append("pull pairs (back to back): berth/distribution median %.2fx (%.2f-%.2f), "
                     "berth faster in %d of %d" % (summary["pull_pairs"]["median_ratio"],
                                                   min(ratios), max(ratios),
                                                   summary["pull_pairs"]["berth_faster"],
                                                   len(ratios)))
json.dump(summary, open(os.path.join(res, "tls.json"), "w"), indent=2)
open(os.path.join(res, "tls.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
