"""A garbage collection pass whose replica dies in the middle is taken over by another
replica once its lease expires, never run by two at once (docs/scale-out.md; issue 12:
"leases with expiry, so a replica that dies mid-job releases it ... never run twice,
never skipped"). Replica 0's S3 requests go through a relay (lib/s3_error_proxy.py) that
holds its pass's listing of the bucket's uploads/ (the pass holds the lease "gc"
meanwhile, which its keeper renews); replica 1, on Swift directly, starts while replica 0
is stuck in that pass. kill -9 of replica 0 ends the renewals: replica 1 runs the next pass,
and that pass starts no sooner than replica 0's lease expired."""
# berth-suite: cluster

import re
import unittest

import berth_harness as h
from cluster import Cluster, ClusterTestCase
from s3_error_proxy import S3ErrorProxy
from test_leases import gc_passes

LEASE_SECONDS = 3
GC_INTERVAL = 1
WAIT = 120


@unittest.skipUnless(h.IS_BERTH, "berth's replicas")
class GcTakeoverTest(ClusterTestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(replicas=0, config={
            "meta": {"lease_seconds": LEASE_SECONDS},
            "gc": {"interval_seconds": GC_INTERVAL},
        })
        cls.addClassCleanup(cls.cluster.stop)
        cls.cluster.start()
        cls.relay = S3ErrorProxy("127.0.0.1", cls.cluster.s3.ports["proxy"]).start()
        cls.addClassCleanup(cls.relay.stop)
        cls.addClassCleanup(cls.relay.release)

    def lease(self):
        out = self.cluster.psql("SELECT holder, expires_at, done_at FROM leases WHERE name = 'gc'")
        holder, expires_at, done_at = out.strip().split("|")
        return holder, int(expires_at) / 1000.0, int(done_at)

    def test_pass_of_a_killed_replica_is_taken_over(self):
        self.cluster.env["BERTH_STORAGE_S3_ENDPOINT"] = self.relay.endpoint
        r0 = self.cluster.add_replica()
        del self.cluster.env["BERTH_STORAGE_S3_ENDPOINT"]
        self.relay.hold("GET", "uploads")
        self.assertTrue(self.relay.wait_held("GET", "uploads", WAIT),
                        "replica 0's GC pass did not list the bucket's uploads/")
        pid0 = r0.proc.pid
        holder0 = self.lease()[0]
        self.assertRegex(holder0, r"/%d/" % pid0, "replica 0 runs a pass without the lease")
        r1 = self.cluster.add_replica()
        self.assertNotEqual(r1.proc.pid, pid0)
        self.cluster.kill9(0)
        # replica 0 renews no more: its lease's expiry is now fixed
        holder, expires_at, _ = self.lease()
        self.assertEqual(holder, holder0)
        h.wait_until(lambda: gc_passes(r1), WAIT, interval=0.2,
                     what="replica 1 to run the pass replica 0 held")
        first_start = min(s for s, _ in gc_passes(r1))
        # log times are to the millisecond, the lease's too
        self.assertGreaterEqual(first_start + 0.002, expires_at,
                                "replica 1 ran GC while replica 0 held the lease")
        h.wait_until(lambda: re.search(r"/%d/" % r1.proc.pid, self.lease()[0]) and
                     self.lease()[2] > 0, WAIT, interval=0.2,
                     what="the lease 'gc' done by replica 1")
        self.assertNotIn("event=gc_error", r1.log_text())


if __name__ == "__main__":
    unittest.main(verbosity=2)
