"""Background work runs once among replicas (docs/scale-out.md): two `berth serve` sharing
PostgreSQL and S3 (cluster.py) claim GC passes and scan jobs through leases in the
database. GC, due every 2 s on both, runs once per interval between them, never two passes
at once; a scan job runs on exactly one replica while that one lives; kill -9 of the
replica running it releases the job when its lease expires, and the other replica runs it
to completion. The periodic lifecycle pass runs once per interval between them too."""
# berth-suite: cluster

import datetime
import os
import re
import shutil
import signal
import tempfile
import time
import unittest

import berth_harness as h
import clients as c
import scan_helpers as s
from cluster import Cluster, ClusterTestCase

LEASE_SECONDS = 3
GC_INTERVAL = 2

# The first run of a scan (the directory "first" did not exist) sleeps, as a long scan
# whose replica dies; any later run answers one finding. Each run leaves a file naming
# its parent (the replica's berth) and itself.
HOOK = """#!/bin/sh
echo "$PPID $$" > "$PROBE_DIR/run-$PPID-$$"
if mkdir "$PROBE_DIR/first" 2>/dev/null; then
    exec sleep 600
fi
echo '{"findings": [{"name": "CVE-2024-0001", "severity": "HIGH"}]}'
"""


def log_time(line):
    ts = re.search(r"ts=(\S+)Z", line).group(1)
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def gc_passes(server, event="gc_pass"):
    """(start, end) in seconds of each GC pass (or other event with a duration_ms) the
    replica logged."""
    out = []
    for line in server.log_text().splitlines():
        if "event=%s " % event in line:
            end = log_time(line)
            dur = int(re.search(r"duration_ms=(\d+)", line).group(1)) / 1000.0
            out.append((end - dur, end))
    return out


@unittest.skipUnless(h.IS_BERTH, "berth's replicas")
class LeaseTest(ClusterTestCase):
    @classmethod
    def setUpClass(cls):
        cls.probe = tempfile.mkdtemp(prefix="berth-leases-")
        cls.addClassCleanup(shutil.rmtree, cls.probe, True)
        hook = os.path.join(cls.probe, "hook.sh")
        with open(hook, "w") as f:
            f.write(HOOK)
        os.chmod(hook, 0o755)
        cls.runs = os.path.join(cls.probe, "runs")
        os.makedirs(cls.runs)
        cls.cluster = Cluster(replicas=2, env={"PROBE_DIR": cls.runs}, config={
            "meta": {"lease_seconds": LEASE_SECONDS},
            "gc": {"interval_seconds": GC_INTERVAL},
            "lifecycle": {"interval_seconds": GC_INTERVAL},
            "scan": {"workers": 1, "hook": hook},
        })
        cls.addClassCleanup(cls.cluster.stop)
        cls.cluster.start()
        cls.addClassCleanup(cls.kill_hooks)

    @classmethod
    def kill_hooks(cls):
        for name in os.listdir(cls.runs):
            if name.startswith("run-"):
                try:
                    os.kill(int(name.split("-")[2]), signal.SIGKILL)
                except (OSError, ValueError):
                    pass

    def hook_runs(self):
        return sorted(n for n in os.listdir(self.runs) if n.startswith("run-"))

    def test_1_gc_once_per_interval(self):
        replicas = self.cluster.replicas
        h.wait_until(lambda: sum(len(gc_passes(r)) for r in replicas) >= 6, 120,
                     interval=0.5, what="six GC passes among the replicas")
        passes = sorted(p for r in replicas for p in gc_passes(r))
        for (s0, e0), (s1, e1) in zip(passes, passes[1:]):
            # one at a time, and the next no sooner than an interval after the last
            # ended (less the log's rounding and the clocks' steps)
            self.assertGreaterEqual(s1, e0, "two GC passes at once: %s" % passes)
            self.assertGreaterEqual(s1 - e0, GC_INTERVAL - 0.5,
                                    "two GC passes within an interval: %s" % passes)
        rows = self.cluster.psql("SELECT name, done_at > 0 FROM leases WHERE name = 'gc'")
        self.assertEqual(rows.strip(), "gc|t")

    def test_1b_lifecycle_once_per_interval(self):
        """The periodic lifecycle pass, due every 2 s on both replicas, runs once per
        interval between them, never two at once (the lease "lifecycle")."""
        replicas = self.cluster.replicas
        passes_of = lambda r: gc_passes(r, "lifecycle_pass")  # noqa: E731
        h.wait_until(lambda: sum(len(passes_of(r)) for r in replicas) >= 6, 120,
                     interval=0.5, what="six lifecycle passes among the replicas")
        passes = sorted(p for r in replicas for p in passes_of(r))
        for (s0, e0), (s1, e1) in zip(passes, passes[1:]):
            self.assertGreaterEqual(s1, e0, "two lifecycle passes at once: %s" % passes)
            self.assertGreaterEqual(s1 - e0, GC_INTERVAL - 0.5,
                                    "two lifecycle passes within an interval: %s" % passes)
        rows = self.cluster.psql(
            "SELECT name, done_at > 0 FROM leases WHERE name = 'lifecycle'")
        self.assertEqual(rows.strip(), "lifecycle|t")

    def test_2_scan_job_taken_over_after_kill(self):
        replicas = self.cluster.replicas
        ecr0 = c.ecr_client(replicas[0])
        repo = "leases/app"
        ecr0.create_repository(repositoryName=repo,
                               imageScanningConfiguration={"scanOnPush": True})
        h.expect_status(replicas[0].registry().push_image(repo, s.debian_image(label="l"),
                                                          tag="v1"), 201)
        first = h.wait_until(self.hook_runs, 60, what="the first scan to start")
        self.assertEqual(len(first), 1, first)
        holder_pid = int(first[0].split("-")[1])
        pids = [r.proc.pid for r in replicas]
        self.assertIn(holder_pid, pids)
        holder = pids.index(holder_pid)
        other = 1 - holder
        # While the holder lives its lease is renewed: three lease lengths later the
        # other replica has not run the job too.
        deadline = time.monotonic() + 3 * LEASE_SECONDS
        while time.monotonic() < deadline:
            self.assertEqual(self.hook_runs(), first)
            time.sleep(0.2)
        leases = self.cluster.psql("SELECT holder FROM leases WHERE name LIKE 'scan-job:%'")
        self.assertEqual(len(leases.split()), 1, leases)
        killed_at = time.time()
        self.cluster.kill9(holder)
        # The other replica takes the job over once the lease expires and finishes it.
        ecr1 = c.ecr_client(replicas[other])
        resp = s.wait_scan(ecr1, repo, {"imageTag": "v1"}, timeout=90)
        self.assertEqual(resp["imageScanStatus"]["status"], "COMPLETE", resp)
        self.assertEqual([f["name"] for f in s.findings_of(resp)], ["CVE-2024-0001"])
        runs = self.hook_runs()
        self.assertEqual(len(runs), 2, runs)
        second = [r for r in runs if r not in first][0]
        self.assertEqual(int(second.split("-")[1]), pids[other])
        self.assertGreaterEqual(os.stat(os.path.join(self.runs, second)).st_mtime,
                                killed_at + LEASE_SECONDS - 1.0)
        self.assertEqual(self.cluster.psql(
            "SELECT count(*) FROM leases WHERE name LIKE 'scan-job:%'").strip(), "0")
        # GC goes on on the replica left
        after = len(gc_passes(replicas[other]))
        h.wait_until(lambda: len(gc_passes(replicas[other])) > after, 60, interval=0.5,
                     what="a GC pass on the replica left")


if __name__ == "__main__":
    unittest.main(verbosity=2)
