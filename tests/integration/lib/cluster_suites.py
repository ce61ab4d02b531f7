"""The registry and ECR integration suites a second time on the replicas' configuration
(issue 12, docs/scale-out.md): one PostgreSQL (pg_fixture.py) and one OpenStack Swift with
s3api (swift_fixture.py) started here, and every berth a test starts is
BERTH_TEST_CLUSTER_REPLICAS replicas (3 unless set) sharing a schema of that PostgreSQL
and a key prefix of that bucket, behind haproxy balancing each request on its own
(berth_harness.Server; cluster.Haproxy). The test files given run one after the other
(each its own Python: BERTH_MODERN_PYTHON for a file that says "# berth-python: modern",
as tests/CMakeLists.txt runs it; a file that says "# berth-replicas: skip: REASON" in its
first lines is left out, the reason printed); the exit status is 0 only if every one passed.

    cluster_suites.py tests/integration/oci/test_blobs.py tests/integration/oci/test_tags.py
"""

import os
import subprocess
import sys
import time

from pg_fixture import PostgresServer
from swift_fixture import SwiftServer


def main(argv):
    if len(argv) < 2:
        sys.stderr.write("usage: cluster_suites.py TEST_FILE...\n")
        return 2
    failed = []
    with PostgresServer() as pg, SwiftServer() as s3:
        env = dict(os.environ, BERTH_TEST_PG_DSN=pg.dsn, **s3.env())
        env.setdefault("BERTH_TEST_CLUSTER_REPLICAS", "3")
        for path in argv[1:]:
            began = time.monotonic()
            sys.stdout.write("=== %s (%s replicas)\n" % (path, env["BERTH_TEST_CLUSTER_REPLICAS"]))
            sys.stdout.flush()
            run_env, python = env, sys.executable
            with open(path, errors="replace") as f:
                head = [next(f, "") for _ in range(12)]
            skip = [line for line in head if line.startswith("# berth-replicas: skip")]
            if skip:  # said in the file, with its reason, and printed here
                sys.stdout.write("=== %s: skipped (%s)\n" % (path, skip[0][2:].strip()))
                continue
            if "# berth-python: modern\n" in head:  # as tests/CMakeLists.txt runs it
                run_env = dict(env, BERTH_MODERN_CLIENTS="1")
                python = os.environ.get("BERTH_MODERN_PYTHON") or "python3"
            rc = subprocess.call([python, "-B", path], env=run_env)
            sys.stdout.write("=== %s: %s in %.0f s\n" % (
                path, "passed" if rc == 0 else "FAILED (%d)" % rc, time.monotonic() - began))
            sys.stdout.flush()
            if rc != 0:
                failed.append(path)
        if failed:
            pg.dump_log()
            s3.dump_logs()
    if failed:
        sys.stdout.write("failed: %s\n" % " ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
