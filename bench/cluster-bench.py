#!/usr/bin/python3
"""`make bench-cluster`: berth on S3 + PostgreSQL against the CNCF distribution registry
on the same S3, and one berth replica against three behind haproxy.

    bench/cluster-bench.py BUILD_DIR

One OpenStack Swift with s3api (the S3 endpoint) and one PostgreSQL are started for the
whole run (tests/integration/lib: swift_fixture.py, pg_fixture.py, cluster.py's haproxy),
on free loopback ports in temporary directories. Every run gets fresh servers: berth with
a new database and key prefix, distribution (Debian's docker-registry, its s3 driver)
with a new root directory in the same bucket. berth-bench drives them.

1. berth (one replica) vs distribution: the push and pull workloads of `make bench`
   (1 MiB and 10 MiB layers, c=1 and c=16).
2. `_catalog` and tags list with BENCH_CATALOG_REPOS (default 10,000) repositories in the
   registry (the catalog workload's setup pushes them; tags-list then runs on the same
   server).
3. pull-10m at c=16: one berth replica, against three replicas behind haproxy
   (round-robin per request), with each replica's peak RSS (VmHWM).

Prints a table of ratios (berth / distribution: throughput, p99 latency; three
replicas / one) and writes results.md and the raw JSON into
BUILD_DIR/bench-results/cluster-<time>/.

Environment: BENCH_N_SCALE (multiply every n, e.g. 0.1 for a quick run),
BENCH_CATALOG_REPOS, BENCH_REGISTRY (default /usr/bin/docker-registry),
BENCH_PARTS (comma list of 1,2,3: which parts to run; default all)."""

import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration", "lib"))

import berth_harness as h  # noqa: E402
from cluster import Haproxy  # noqa: E402
from pg_fixture import PostgresServer  # noqa: E402
from swift_fixture import SwiftServer  # noqa: E402

SCALE = float(os.environ.get("BENCH_N_SCALE", "1"))
CATALOG_REPOS = int(os.environ.get("BENCH_CATALOG_REPOS", "10000"))
REGISTRY = os.environ.get("BENCH_REGISTRY", "/usr/bin/docker-registry")
PARTS = set(os.environ.get("BENCH_PARTS", "1,2,3").split(","))

# n per (workload, c): smaller than make bench's, since every byte goes through Swift
N = {
    ("push-monolithic-1m", 1): 150, ("push-monolithic-1m", 16): 300,
    ("push-monolithic-10m", 1): 40, ("push-monolithic-10m", 16): 80,
    ("pull-1m", 1): 400, ("pull-1m", 16): 800,
    ("pull-10m", 1): 100, ("pull-10m", 16): 300,
    ("catalog", 16): 2000, ("tags-list", 16): 2000,
}


def n_for(workload, c):
    return max(1, int(N[(workload, c)] * SCALE + 0.5))


class Env:
    def __init__(self, build):
        self.build = build
        self.bench = os.path.join(build, "bench", "berth-bench")
        self.berth = os.path.join(build, "berth")
        os.environ["BERTH_BIN"] = self.berth
        self.s3 = SwiftServer().start()
        self.pg = PostgresServer().start()
        self.runs = 0
        self.work = tempfile.mkdtemp(prefix="berth-cluster-bench-", dir="/var/tmp")

    def stop(self):
        self.pg.stop()
        self.s3.stop()
        subprocess.run(["rm", "-rf", self.work])

    def fresh_name(self, what):
        self.runs += 1
        return "%s%d" % (what, self.runs)

    def berth_replicas(self, count):
        name = self.fresh_name("berth")
        self.pg.psql("CREATE DATABASE %s" % name)
        dsn = self.pg.dsn.replace("dbname=postgres", "dbname=%s" % name)
        env = {
            "BERTH_META_BACKEND": "postgres", "BERTH_META_POSTGRES_DSN": dsn,
            "BERTH_STORAGE_BACKEND": "s3", "BERTH_STORAGE_S3_ENDPOINT": self.s3.endpoint,
            "BERTH_STORAGE_S3_REGION": self.s3.region, "BERTH_STORAGE_S3_BUCKET": self.s3.bucket,
            "BERTH_STORAGE_S3_PREFIX": name + "/", "BERTH_STORAGE_S3_PATH_STYLE": "true",
            "AWS_ACCESS_KEY_ID": self.s3.access_key, "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
            "BERTH_LOG_LEVEL": "warn", "BERTH_LOG_ACCESS": "false",
        }
        servers = []
        for _ in range(count):
            s = h.Server(env=env, config={"gc": {"enabled": False}})
            s.start()
            servers.append(s)
        return servers

    def distribution(self):
        name = self.fresh_name("dist")
        tmp = tempfile.mkdtemp(prefix="dist-", dir=self.work)
        port = h.free_port()
        cfg = os.path.join(tmp, "registry.yml")
        with open(cfg, "w") as f:
            f.write("""version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  s3:
    accesskey: "%s"
    secretkey: "%s"
    region: %s
    regionendpoint: "%s"
    bucket: %s
    rootdirectory: /%s
    secure: false
    v4auth: true
  delete:
    enabled: true
  redirect:
    disable: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:%d
""" % (self.s3.access_key, self.s3.secret_key, self.s3.region, self.s3.endpoint,
                self.s3.bucket, name, port))
        log = open(os.path.join(tmp, "registry.log"), "wb")
        # the machine's AWS_* settings (AWS_CA_BUNDLE makes the SDK of distribution 2.8
        # panic on a plain-HTTP endpoint) are not the benchmark's
        denv = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        proc = subprocess.Popen([REGISTRY, "serve", cfg], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=denv)
        log.close()
        return DistServer(proc, port, tmp)

    def run_bench(self, url, workloads, c, n, extra=()):
        cmd = [self.bench, "--wait", "60", "-c", str(c), "-n", str(n), "-w", workloads,
               "-o", "json", "--timeout", "600"] + list(extra) + [url]
        out = subprocess.run(cmd, capture_output=True, timeout=7200)
        try:
            doc = json.loads(out.stdout)
        except ValueError:
            for log in [os.path.join(d, "registry.log") for d in
                        [os.path.join(self.work, x) for x in os.listdir(self.work)]]:
                if os.path.exists(log):
                    with open(log, errors="replace") as f:
                        sys.stderr.write("--- %s ---\n%s\n" % (log, f.read()[-2000:]))
            raise SystemExit("berth-bench failed (%d): %s" % (out.returncode,
                                                            out.stderr.decode()[-2000:]))
        return doc


class DistServer:
    def __init__(self, proc, port, tmp):
        self.proc = proc
        self.port = port
        self.tmp = tmp
        self.base_url = "http://127.0.0.1:%d" % port

    def cleanup(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def peak_rss_mib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def summary(w):
    return {"mb_per_sec": w["mb_per_sec"], "ops_per_sec": w["requests_per_sec"],
            "p99_ms": w["latency_ms"]["p99"], "p50_ms": w["latency_ms"]["p50"],
            "ok": w["ok"], "errors": w["errors_total"] + w["ops_failed"]}


def ratio(a, b):
    return a / b if b else float("inf")


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: bench/cluster-bench.py BUILD_DIR\n")
        return 2
    build = os.path.abspath(argv[1])
    results = os.path.join(build, "bench-results",
                           "cluster-" + time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(results)
    env = Env(build)
    rows = []  # (section, workload, c, berth summary, other summary, other name)
    raw = {}
    try:
        if "1" in PARTS:
            turn = 0
            for workload in ("push-monolithic-1m", "pull-1m", "push-monolithic-10m",
                             "pull-10m"):
                for c in (1, 16):
                    got = {}
                    # which server goes first alternates
                    turn += 1
                    for who in ("berth", "distribution")[::1 if turn % 2 else -1]:
                        server = env.berth_replicas(1)[0] if who == "berth" else \
                            env.distribution()
                        try:
                            doc = env.run_bench(server.base_url, workload, c,
                                                n_for(workload, c))
                        finally:
                            server.cleanup()
                        raw["%s-%s-c%d" % (who, workload, c)] = doc
                        got[who] = summary(doc["workloads"][0])
                        print("%-13s %-20s c=%-2d %8.1f MB/s  p99 %8.1f ms" % (
                            who, workload, c, got[who]["mb_per_sec"], got[who]["p99_ms"]),
                            file=sys.stderr, flush=True)
                    rows.append(("vs distribution", workload, c, got["berth"],
                                 got["distribution"], "distribution"))
        if "2" in PARTS:
            got = {}
            for who in ("berth", "distribution"):
                server = env.berth_replicas(1)[0] if who == "berth" else env.distribution()
                try:
                    doc = env.run_bench(server.base_url, "catalog,tags-list", 16,
                                        n_for("catalog", 16),
                                        ["--catalog-repos", str(CATALOG_REPOS)])
                finally:
                    server.cleanup()
                raw["%s-listings" % who] = doc
                got[who] = {w["name"]: summary(w) for w in doc["workloads"]}
                for name, s in got[who].items():
                    print("%-13s %-20s c=16 %8.1f ops/s p99 %8.1f ms" % (
                        who, name, s["ops_per_sec"], s["p99_ms"]), file=sys.stderr, flush=True)
            for name in ("catalog", "tags-list"):
                rows.append(("%d repositories" % CATALOG_REPOS, name, 16, got["berth"][name],
                             got["distribution"][name], "distribution"))
        if "3" in PARTS:
            got = {}
            rss = {}
            for count in (1, 3):
                replicas = env.berth_replicas(count)
                lb = None
                try:
                    url = replicas[0].base_url
                    if count > 1:
                        lb = Haproxy(["127.0.0.1:%d" % r.port for r in replicas],
                                     sticky_uploads=True, check_ms=1000).start()
                        url = lb.base_url
                    doc = env.run_bench(url, "pull-10m", 16, n_for("pull-10m", 16))
                    rss[count] = [peak_rss_mib(r.proc.pid) for r in replicas]
                finally:
                    if lb is not None:
                        lb.stop()
                    for r in replicas:
                        r.cleanup()
                raw["berth-x%d-pull-10m" % count] = doc
                got[count] = summary(doc["workloads"][0])
                print("berth x%d      pull-10m c=16 %8.1f MB/s  p99 %8.1f ms  RSS %s MiB" % (
                    count, got[count]["mb_per_sec"], got[count]["p99_ms"],
                    ", ".join("%.0f" % x for x in rss[count])), file=sys.stderr, flush=True)
            rows.append(("3 replicas + haproxy vs 1", "pull-10m", 16, got[3], got[1],
                         "1 replica"))
            raw["rss_mib"] = rss
    finally:
        env.stop()
    with open(os.path.join(results, "raw.json"), "w") as f:
        json.dump(raw, f, indent=1)
    lines = ["| comparison | workload | c | berth MB/s | ops/s | p99 ms | other | MB/s | ops/s "
             "| p99 ms | throughput ratio | p99 ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for section, workload, c, b, o, other in rows:
        lines.append("| %s | %s | %d | %.1f | %.1f | %.1f | %s | %.1f | %.1f | %.1f | %.2fx "
                     "| %.2fx |" % (section, workload, c, b["mb_per_sec"], b["ops_per_sec"],
                                    b["p99_ms"], other, o["mb_per_sec"], o["ops_per_sec"],
                                    o["p99_ms"], ratio(b["ops_per_sec"], o["ops_per_sec"]),
                                    ratio(b["p99_ms"], o["p99_ms"])))
    if "rss_mib" in raw:
        lines.append("")
        lines.append("Peak RSS (VmHWM) of each replica after pull-10m c=16: one replica %s "
                     "MiB; three behind haproxy %s MiB." % (
                         ", ".join("%.0f" % x for x in raw["rss_mib"][1]),
                         ", ".join("%.0f" % x for x in raw["rss_mib"][3])))
    failed = [r for r in rows if not (r[3]["ok"] and r[4]["ok"])]
    if failed:
        lines.append("")
        lines.append("Runs with failed requests: %s" % ", ".join(
            "%s c=%d" % (r[1], r[2]) for r in failed))
    text = "\n".join(lines) + "\n"
    with open(os.path.join(results, "results.md"), "w") as f:
        f.write(text)
    print(text)
    print("results in %s" % results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
