#!/usr/bin/python3
"""S3 push by chunk pattern (issue 12): the requests berth makes to the object store and the
time, for chunked uploads the way docker (one PATCH a layer), and crane or containerd
(PATCHes of a few MiB) send them, with the upload tail cache on and off.

    bench/s3-push-chunks.py BUILD_DIR

One OpenStack Swift with s3api and one PostgreSQL (tests/integration/lib fixtures), one berth
replica on them (meta.backend postgres, storage.backend s3) whose S3 requests go through
a counting relay (lib/s3_error_proxy.py) to Swift; a second replica for the round-robin
pattern. For each pattern and each cache setting (BERTH_TEST_S3_TAIL_CACHE_BYTES=0 turns
the cache off) BENCH_BLOBS blobs of BENCH_BLOB_MIB MiB are pushed one after another
(POST, PATCHes, PUT), in alternating order; printed: seconds, MB/s, and S3 requests per
blob by kind (tail PUT, GET, DELETE, part PUT, other). The relay adds its own cost to each
request (the same for both settings).

Environment: BENCH_BLOBS (default 4), BENCH_BLOB_MIB (default 32), BENCH_ROUNDS
(default 2: on/off pairs)."""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration", "lib"))

import berth_harness as h  # noqa: E402
from pg_fixture import PostgresServer  # noqa: E402
from s3_error_proxy import S3ErrorProxy  # noqa: E402
from swift_fixture import SwiftServer  # noqa: E402

MIB = 1024 * 1024
BLOBS = int(os.environ.get("BENCH_BLOBS", "4"))
BLOB = int(os.environ.get("BENCH_BLOB_MIB", "32")) * MIB
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))

# name -> (chunk bytes (None: the whole blob in one PATCH), replicas taking turns)
PATTERNS = [
    ("docker: 1 PATCH", None, 1),
    ("5 MiB PATCHes", 5 * MIB, 1),
    ("1 MiB PATCHes", 1 * MIB, 1),
    ("1 MiB PATCHes, 2 replicas in turn", 1 * MIB, 2),
]


def kinds(reqs):
    out = {"tail PUT": 0, "tail GET": 0, "tail DELETE": 0, "part PUT": 0, "other": 0}
    for method, target in reqs:
        if "/tail-" in target and method in ("PUT", "GET", "DELETE"):
            out["tail %s" % method] += 1
        elif method == "PUT" and "partNumber=" in target:
            out["part PUT"] += 1
        else:
            out["other"] += 1
    return out


def push(regs, repo, data, chunk):
    r = regs[0].start_upload(repo)
    assert r.status == 202, r.body
    loc = r.header("Location")
    at, i = 0, 0
    while at < len(data):
        n = len(data) - at if chunk is None else min(chunk, len(data) - at)
        r = regs[i % len(regs)].patch_chunk(loc, data[at:at + n], start=at)
        assert r.status == 202, r.body
        at += n
        i += 1
    r = regs[i % len(regs)].finish_upload(loc, h.digest_of(data))
    assert r.status == 201, r.body


def main(argv):
    build = argv[1] if len(argv) > 1 else "build"
    os.environ["BERTH_BIN"] = os.path.join(build, "berth")
    s3 = SwiftServer().start()
    pg = PostgresServer().start()
    relay = S3ErrorProxy("127.0.0.1", s3.ports["proxy"]).start()
    results = {}
    try:
        for rnd in range(ROUNDS):
            for cache in (("on", "off") if rnd % 2 == 0 else ("off", "on")):
                name = "chunks%d%s" % (rnd, cache)
                pg.psql("CREATE DATABASE %s" % name)
                env = {
                    "BERTH_META_BACKEND": "postgres",
                    "BERTH_META_POSTGRES_DSN": pg.dsn.replace("dbname=postgres",
                                                              "dbname=%s" % name),
                    "BERTH_STORAGE_BACKEND": "s3", "BERTH_STORAGE_S3_ENDPOINT": relay.endpoint,
                    "BERTH_STORAGE_S3_REGION": s3.region, "BERTH_STORAGE_S3_BUCKET": s3.bucket,
                    "BERTH_STORAGE_S3_PREFIX": name + "/", "BERTH_STORAGE_S3_PATH_STYLE": "true",
                    "AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key,
                    "BERTH_LOG_LEVEL": "warn", "BERTH_LOG_ACCESS": "false",
                }
                if cache == "off":
                    env["BERTH_TEST_S3_TAIL_CACHE_BYTES"] = "0"
                servers = []
                try:
                    for _ in range(2):
                        s = h.Server(env=env, config={"gc": {"enabled": False}})
                        s.start()
                        servers.append(s)
                    regs = [s.registry() for s in servers]
                    for pname, chunk, nreg in PATTERNS:
                        blobs = [h.random_bytes(BLOB) for _ in range(BLOBS)]
                        relay.clear()
                        t0 = time.monotonic()
                        for i, data in enumerate(blobs):
                            push(regs[:nreg], "bench/chunks", data, chunk)
                        dt = time.monotonic() - t0
                        k = kinds(relay.requests)
                        results.setdefault((pname, cache), []).append((dt, k))
                        print("round %d cache %-3s %-36s %6.2f s %6.1f MB/s  %s" % (
                            rnd, cache, pname, dt, BLOBS * BLOB / dt / 1e6,
                            ", ".join("%s %.1f" % (kk, v / BLOBS) for kk, v in k.items())),
                            flush=True)
                finally:
                    for s in servers:
                        s.cleanup()
    finally:
        relay.stop()
        pg.stop()
        s3.stop()
    print("\n| pattern (%d x %d MiB, c=1) | cache | MB/s (each round) | S3 requests per blob: "
          "tail PUT / tail GET / part PUT / other |" % (BLOBS, BLOB // MIB))
    print("|---|---|---|---|")
    for pname, _, _ in PATTERNS:
        for cache in ("off", "on"):
            runs = results.get((pname, cache), [])
            if not runs:
                continue
            k = runs[0][1]
            print("| %s | %s | %s | %s |" % (
                pname, cache, " / ".join("%.1f" % (BLOBS * BLOB / dt / 1e6) for dt, _ in runs),
                " / ".join("%.1f" % (k[x] / BLOBS)
                           for x in ("tail PUT", "tail GET", "tail DELETE", "part PUT", "other"))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
