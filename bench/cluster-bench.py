#!/usr/bin/python3
"""`make bench-cluster`: berth on S3 + PostgreSQL against the CNCF distribution registry
on the same S3 (Debian's 2.8.2, and a 3.x build when given), and one berth replica
against three behind haproxy.

    bench/cluster-bench.py BUILD_DIR

One OpenStack Swift with s3api (the S3 endpoint) and one PostgreSQL are started for the
whole run (tests/integration/lib: swift_fixture.py, pg_fixture.py, cluster.py's haproxy),
on free loopback ports in temporary directories. Every run gets fresh servers: berth with
a new database and key prefix, distribution (its s3 driver) with a new root directory in
the same bucket. berth-bench drives them.

1. berth (one replica) vs distribution: the push and pull workloads of `make bench`
   (1 MiB and 10 MiB layers, c=1 and c=16).
2. `_catalog` and tags list with BENCH_CATALOG_REPOS (default 10,000) repositories,
   seeded on both sides by bench/cluster_listings.py (berth through its API with
   cross-repository mounts; distribution by one push through its API whose objects are
   then copied under every other repository's path in the bucket), then timed by one
   client: catalog pages (n=100, n=1000, a middle page), the full walk, tags lists.
3. pull-10m at c=16: one berth replica, against three replicas behind haproxy
   (round-robin per request); each replica's peak RSS (VmHWM) after pull-10m at c=1,
   after pull-10m at c=16 and after pull-100m at c=16 (memory must not grow with the
   client count or the blob size).

Prints a table of ratios (berth / distribution: throughput, p99 latency; listing
latencies; three replicas / one) with the load average, and writes results.md and the
raw JSON into BUILD_DIR/bench-results/cluster-<time>/.

Environment: BENCH_N_SCALE (multiply every n, e.g. 0.1 for a quick run),
BENCH_CATALOG_REPOS, BENCH_LISTING_REPS (5: how many times each listing request is
timed), BENCH_REGISTRY (default /usr/bin/docker-registry), BENCH_REGISTRY3 (a
distribution 3.x binary, optional: every comparison runs against it too),
BENCH_PARTS (comma list of 1,2,3: which parts to run; default all)."""

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration", "lib"))
sys.path.insert(0, HERE)

import berth_harness as h  # noqa: E402
import cluster_listings as listings  # noqa: E402
from cluster import Haproxy  # noqa: E402
from pg_fixture import PostgresServer  # noqa: E402
from swift_fixture import SwiftServer  # noqa: E402

SCALE = float(os.environ.get("BENCH_N_SCALE", "1"))
CATALOG_REPOS = int(os.environ.get("BENCH_CATALOG_REPOS", "10000"))
REGISTRY = os.environ.get("BENCH_REGISTRY", "/usr/bin/docker-registry")
REGISTRY3 = os.environ.get("BENCH_REGISTRY3", "")
LISTING_REPS = int(os.environ.get("BENCH_LISTING_REPS", "5"))
TAGS = 1000
PARTS = set(os.environ.get("BENCH_PARTS", "1,2,3").split(","))

# n per (workload, c): smaller than make bench's, since every byte goes through Swift
N = {
    ("push-monolithic-1m", 1): 150, ("push-monolithic-1m", 16): 300,
    ("push-monolithic-10m", 1): 40, ("push-monolithic-10m", 16): 80,
    ("pull-1m", 1): 400, ("pull-1m", 16): 800,
    ("pull-10m", 1): 100, ("pull-10m", 16): 300,
    ("pull-100m", 16): 48,
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

    def distribution(self, registry, name=None):
        """A distribution server; name: its root directory in the bucket (a new one by
        default)."""
        name = name or self.fresh_name("dist")
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
    forcepathstyle: true
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
        proc = subprocess.Popen([registry, "serve", cfg], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=denv)
        log.close()
        return DistServer(proc, port, tmp, name)

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
    def __init__(self, proc, port, tmp, root):
        self.root = root
        self.proc = proc
        self.port = port
        self.tmp = tmp
        self.base_url = "http://127.0.0.1:%d" % port

    def wait_ready(self, seconds=60):
        deadline = time.monotonic() + seconds
        while True:
            if self.proc.poll() is not None:
                raise SystemExit("distribution exited (%s); its log: %s" % (
                    self.proc.returncode, os.path.join(self.tmp, "registry.log")))
            try:
                if listings.Client(self.base_url, timeout=5).request("GET", "/v2/")[0] == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("distribution did not answer in %d s" % seconds)
            time.sleep(0.1)

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


def registry_version(path):
    try:
        out = subprocess.run([path, "--version"], capture_output=True, timeout=30).stdout
    except OSError:
        raise SystemExit("no distribution binary at %s" % path)
    m = re.search(rb"v?(\d+\.\d+\.\d+)", out)
    return "distribution " + (m.group(1).decode() if m else "?")


def load():
    return "%.1f" % os.getloadavg()[0]


def part_vs_distribution(env, dists, rows, raw):
    turn = 0
    for workload in ("push-monolithic-1m", "pull-1m", "push-monolithic-10m", "pull-10m"):
        for c in (1, 16):
            got = {}
            # which server goes first alternates
            turn += 1
            order = ["berth"] + [d[0] for d in dists]
            for who in order[::1 if turn % 2 else -1]:
                if who == "berth":
                    server = env.berth_replicas(1)[0]
                else:
                    server = env.distribution(dict(dists)[who])
                try:
                    doc = env.run_bench(server.base_url, workload, c, n_for(workload, c))
                finally:
                    server.cleanup()
                raw["%s-%s-c%d" % (who, workload, c)] = doc
                got[who] = summary(doc["workloads"][0])
                print("%-18s %-20s c=%-2d %8.1f MB/s  p99 %8.1f ms  load %s" % (
                    who, workload, c, got[who]["mb_per_sec"], got[who]["p99_ms"], load()),
                    file=sys.stderr, flush=True)
            for name, _ in dists:
                rows.append(("vs " + name, workload, c, got["berth"], got[name], name))


def show_listing(who, lat, notes):
    for name, xs in lat.items():
        print("%-18s %-40s median %9.1f ms  max %9.1f ms  load %s" % (
            who, name, 1000 * statistics.median(xs), 1000 * max(xs), load()),
            file=sys.stderr, flush=True)
    for name, note in notes.items():
        print("%-18s %s: %s" % (who, name, note), file=sys.stderr, flush=True)


def part_listings(env, dists, raw):
    """berth, then each distribution on one seeded root (cluster_listings.py)."""
    out = {"repos": CATALOG_REPOS, "tags": TAGS, "reps": LISTING_REPS, "latency": {},
           "notes": {},
           "seed_seconds": {}, "load": {}}
    server = env.berth_replicas(1)[0]
    try:
        out["load"]["berth seed"] = load()
        sec = listings.seed_berth(server.base_url, CATALOG_REPOS, TAGS)
        listings.check_seeded(server.base_url, CATALOG_REPOS, TAGS)
        out["seed_seconds"]["berth"] = sec
        print("berth seeded %d repositories and %d tags in %.0f s" % (
            CATALOG_REPOS, TAGS, sec), file=sys.stderr, flush=True)
        out["load"]["berth"] = load()
        out["latency"]["berth"], out["notes"]["berth"] = listings.probe(
            server.base_url, CATALOG_REPOS, TAGS, LISTING_REPS)
        show_listing("berth", out["latency"]["berth"], out["notes"]["berth"])
    finally:
        server.cleanup()
    root = None
    for name, path in dists:
        server = env.distribution(path, root).wait_ready()
        try:
            if root is None:
                out["load"]["distribution seed"] = load()
                sec, objects = listings.seed_distribution(
                    server.base_url, env.s3, env.s3.client(), server.root, CATALOG_REPOS,
                    TAGS)
                out["seed_seconds"]["distribution"] = sec
                out["seed_objects"] = objects
                print("%s seeded %d repositories and %d tags (%d objects) in %.0f s" % (
                    name, CATALOG_REPOS, TAGS, objects, sec), file=sys.stderr, flush=True)
                root = server.root
            listings.check_seeded(server.base_url, CATALOG_REPOS, TAGS)
            out["load"][name] = load()
            out["latency"][name], out["notes"][name] = listings.probe(
                server.base_url, CATALOG_REPOS, TAGS, LISTING_REPS)
            show_listing(name, out["latency"][name], out["notes"][name])
        finally:
            server.cleanup()
    raw["listings"] = out
    return out


def part_replicas(env, raw):
    """One replica, then three behind haproxy: pull-10m c=1, pull-10m c=16, pull-100m
    c=16 on the same servers, each replica's VmHWM after each."""
    phases = (("pull-10m", 1), ("pull-10m", 16), ("pull-100m", 16))
    out = {}
    for count in (1, 3):
        replicas = env.berth_replicas(count)
        lb = None
        res = out[count] = {"phases": []}
        try:
            url = replicas[0].base_url
            if count > 1:
                lb = Haproxy(["127.0.0.1:%d" % r.port for r in replicas],
                             sticky_uploads=True, check_ms=1000).start()
                url = lb.base_url
            for workload, c in phases:
                doc = env.run_bench(url, workload, c, n_for(workload, c))
                rss = [peak_rss_mib(r.proc.pid) for r in replicas]
                sm = summary(doc["workloads"][0])
                res["phases"].append({"workload": workload, "c": c, "summary": sm,
                                      "rss_mib": rss, "load": load()})
                raw["berth-x%d-%s-c%d" % (count, workload, c)] = doc
                print("berth x%d  %-10s c=%-2d %8.1f MB/s  p99 %8.1f ms  peak RSS %s MiB  "
                      "load %s" % (count, workload, c, sm["mb_per_sec"], sm["p99_ms"],
                                   ", ".join("%.1f" % x for x in rss), load()),
                      file=sys.stderr, flush=True)
        finally:
            if lb is not None:
                lb.stop()
            for r in replicas:
                r.cleanup()
    raw["replicas"] = {str(k): v for k, v in out.items()}
    return out


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: bench/cluster-bench.py BUILD_DIR\n")
        return 2
    build = os.path.abspath(argv[1])
    dists = [(registry_version(REGISTRY), REGISTRY)]
    if REGISTRY3:
        dists.append((registry_version(REGISTRY3), REGISTRY3))
    if len(set(d[0] for d in dists)) != len(dists):
        dists = [("%s (%s)" % (n, os.path.basename(p)), p) for n, p in dists]
    results = os.path.join(build, "bench-results",
                           "cluster-" + time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(results)
    env = Env(build)
    rows = []  # (section, workload, c, berth summary, other summary, other name)
    raw = {"load_start": load(), "distributions": dists}
    lst = reps = None
    try:
        if "1" in PARTS:
            part_vs_distribution(env, dists, rows, raw)
        if "2" in PARTS:
            lst = part_listings(env, dists, raw)
        if "3" in PARTS:
            reps = part_replicas(env, raw)
    finally:
        env.stop()
        raw["load_end"] = load()
        with open(os.path.join(results, "raw.json"), "w") as f:
            json.dump(raw, f, indent=1)
    lines = ["Load average (1 min) at the start %s, at the end %s (2 cores, shared)." % (
        raw["load_start"], raw["load_end"]), ""]
    failed = []
    if rows:
        lines += ["| comparison | workload | c | berth MB/s | ops/s | p99 ms | other | MB/s "
                  "| ops/s | p99 ms | throughput ratio | p99 ratio |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for section, workload, c, b, o, other in rows:
            lines.append("| %s | %s | %d | %.1f | %.1f | %.1f | %s | %.1f | %.1f | %.1f "
                         "| %.2fx | %.2fx |" % (
                             section, workload, c, b["mb_per_sec"], b["ops_per_sec"],
                             b["p99_ms"], other, o["mb_per_sec"], o["ops_per_sec"],
                             o["p99_ms"], ratio(b["ops_per_sec"], o["ops_per_sec"]),
                             ratio(b["p99_ms"], o["p99_ms"])))
        failed = [r for r in rows if not (r[3]["ok"] and r[4]["ok"])]
        lines.append("")
    if lst is not None:
        names = [n for n, _ in dists]
        lines.append("Listings with %d repositories (and one of %d tags), one client, "
                     "median of up to %d (ms; how many in parentheses); speed-up = "
                     "distribution / berth. Seeded: berth "
                     "%.0f s, distribution %.0f s (%d objects). Load: %s." % (
                         lst["repos"], lst["tags"], lst["reps"],
                         lst["seed_seconds"]["berth"],
                         lst["seed_seconds"].get("distribution", 0),
                         lst.get("seed_objects", 0),
                         ", ".join("%s %s" % kv for kv in lst["load"].items())))
        lines.append("")
        lines.append("| request | berth ms | " + " | ".join(
            "%s ms | speed-up" % n for n in names) + " |")
        lines.append("|---|---|" + "---|---|" * len(names))
        for req, xs in lst["latency"]["berth"].items():
            b = statistics.median(xs)
            cells = []
            for n in names:
                d = statistics.median(lst["latency"][n][req])
                more = "> " if req in lst["notes"][n] else ""
                cells.append("%s%.1f (%d) | %s%.1fx" % (more, 1000 * d,
                                                       len(lst["latency"][n][req]), more,
                                                       ratio(d, b)))
            lines.append("| %s | %.1f (%d) | %s |" % (req, 1000 * b, len(xs),
                                                      " | ".join(cells)))
        for n in ["berth"] + names:
            for req, note in lst["notes"][n].items():
                lines.append("")
                lines.append("%s, %s: %s." % (n, req, note))
        lines.append("")
    if reps is not None:
        lines.append("One replica against three behind haproxy (the same servers run the "
                     "three phases in order; peak RSS is VmHWM after each phase):")
        lines.append("")
        lines.append("| replicas | workload | c | MB/s | ops/s | p99 ms | peak RSS MiB "
                     "| load |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for count in (1, 3):
            for ph in reps[count]["phases"]:
                sm = ph["summary"]
                lines.append("| %d | %s | %d | %.1f | %.1f | %.1f | %s | %s |" % (
                    count, ph["workload"], ph["c"], sm["mb_per_sec"], sm["ops_per_sec"],
                    sm["p99_ms"], ", ".join("%.1f" % x for x in ph["rss_mib"]), ph["load"]))
                if not sm["ok"] or sm["errors"]:
                    failed.append((None, "x%d %s" % (count, ph["workload"]), ph["c"]))
        one = reps[1]["phases"][1]["summary"]
        three = reps[3]["phases"][1]["summary"]
        lines.append("")
        lines.append("pull-10m c=16, three replicas / one: %.2fx throughput, %.2fx p99." % (
            ratio(three["ops_per_sec"], one["ops_per_sec"]),
            ratio(three["p99_ms"], one["p99_ms"])))
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
