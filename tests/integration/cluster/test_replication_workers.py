# berth-python: modern
"""Replication's workers among replicas (docs/scale-out.md): two `berth serve` replicas
sharing PostgreSQL and S3 (cluster.py) copy to Debian's distribution registry as the peer.

A push through the replica that does not hold the peer's queue is copied long before the
lease (120 s) or the poll (300 s) would let it: the push announces itself on PostgreSQL
(NOTIFY in its transaction) and the holder, listening, looks at the queue again before it
lets it go. A hold point (BERTH_TEST_HOLD_REPLICATION_RELEASE) keeps the holder between its
last look at the queue and its release while the push comes in: without the announcement
nothing would copy it for at least 80 s.

Several images to one peer at once (replication.concurrency_per_peer: 3): a second peer
behind a TCP relay (tcp_relay.py) that holds every connection while images are pushed
through both replicas: exactly 3 copies are claimed in the queue and 3 connections open at
the relay, never more; once it lets go every image is on the peer, each manifest PUT
exactly once (the peer's access log), and two images pushed under one tag of one
repository went in order (the peer's tag is the later one)."""
# berth-suite: cluster

import os
import re
import shutil
import tempfile
import time
import unittest

import berth_harness as h
import clients as c
from cluster import Cluster, ClusterTestCase
from tcp_relay import TcpRelay

LEASE_SECONDS = 120
POLL_SECONDS = 300
PEER_REGION = "us-west-2"
PEER_ID = "333333333333"
PEER_LEASE = "replication:%s/%s" % (PEER_REGION, PEER_ID)
# how long a copy may take on a loaded machine: well under the lease and the poll
WAIT = 60
SLOW_REGION = "eu-central-1"
SLOW_ID = "444444444444"
CONCURRENCY = 3


@unittest.skipUnless(h.IS_BERTH, "berth's replicas")
class ReplicationWorkersTest(ClusterTestCase):
    @classmethod
    def setUpClass(cls):
        c.require_modern()
        cls.tmp = tempfile.mkdtemp(prefix="berth-repl-workers-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.hold = os.path.join(cls.tmp, "hold-release")
        # present from the start: the first pass of the replica that claims the peer's
        # queue (empty) stops there
        open(cls.hold, "w").close()
        cls.peer = h.Server(target="distribution")
        cls.addClassCleanup(cls.peer.cleanup)
        cls.peer.start()
        # the slow peer: the same registry behind a relay (other repositories)
        cls.relay = TcpRelay("127.0.0.1", cls.peer.port).start()
        cls.addClassCleanup(cls.relay.stop)
        cls.addClassCleanup(cls.relay.release)
        cls.cluster = Cluster(replicas=2, env={
            "BERTH_TEST_HOLD_REPLICATION_RELEASE": cls.hold,
        }, config={
            "log": {"level": "debug"},
            "meta": {"lease_seconds": LEASE_SECONDS},
            "replication": {
                "peers": [{"region": PEER_REGION, "registry_id": PEER_ID,
                           "url": cls.peer.base_url},
                          {"region": SLOW_REGION, "registry_id": SLOW_ID,
                           "url": cls.relay.endpoint}],
                "retry_initial_ms": 200,
                "retry_max_ms": 1000,
                "poll_seconds": POLL_SECONDS,
                "timeout_seconds": 300,
                "concurrency_per_peer": CONCURRENCY,
            },
        })
        cls.addClassCleanup(cls.cluster.stop)
        cls.cluster.start()
        cls.ecr = [c.ecr_client(r) for r in cls.cluster.replicas]
        cls.ecr[0].put_replication_configuration(replicationConfiguration={"rules": [
            {"destinations": [{"region": PEER_REGION, "registryId": PEER_ID}],
             "repositoryFilters": [{"filter": "wake/", "filterType": "PREFIX_MATCH"}]},
            {"destinations": [{"region": SLOW_REGION, "registryId": SLOW_ID}],
             "repositoryFilters": [{"filter": "many/", "filterType": "PREFIX_MATCH"}]}]})

    def dump_logs(self):
        super().dump_logs()
        print("\n--- peer log tail ---\n%s" % self.peer.log_tail(40))

    def lease_holder_pid(self, name):
        out = self.cluster.psql("SELECT holder FROM leases WHERE name = '%s'" % name).strip()
        parts = out.split("/")
        return int(parts[1]) if len(parts) == 3 else None

    def replica_of_pid(self, pid):
        for i, r in enumerate(self.cluster.replicas):
            if r.proc is not None and r.proc.pid == pid:
                return i
        return None

    def push(self, i, repo, tag, **kw):
        image = h.build_image(**kw)
        h.expect_status(self.cluster.replicas[i].registry().push_image(repo, image, tag=tag),
                        201)
        return image

    def status(self, i, repo, image):
        st = self.ecr[i].describe_image_replication_status(
            repositoryName=repo, imageId={"imageDigest": image.digest})
        return [s["status"] for s in st["replicationStatuses"]]

    def on_peer(self, repo, tag, image):
        resp = self.peer.registry().get_manifest(repo, tag, accept=image.media_type)
        return resp.status == 200 and resp.body == image.manifest

    def test_1_push_through_the_other_replica_is_copied_at_once(self):
        try:
            # each replica's thread for the peer claims the queue, finds it empty and stops
            # at the hold still holding it; the other is refused (a lease of 120 s)
            def held():
                pid = self.lease_holder_pid(PEER_LEASE)
                i = self.replica_of_pid(pid) if pid is not None else None
                return (i,) if i is not None and "event=test_hold point=replication_release" \
                    in self.cluster.replicas[i].log_text() else None
            holder = h.wait_until(held, WAIT, interval=0.2, what="a replica to hold the queue")[0]
            other = 1 - holder
            busy = "event=lease_busy name=%s " % PEER_LEASE
            before = self.cluster.replicas[other].log_text().count(busy)
            image = self.push(other, "wake/one", "v1")
            # the push woke the other replica's thread: refused again, it would wait for the
            # holder's expiry
            h.wait_until(lambda: self.cluster.replicas[other].log_text().count(busy) > before,
                         WAIT, interval=0.1, what="the other replica to be refused the queue")
            self.assertEqual(self.lease_holder_pid(PEER_LEASE),
                             self.cluster.replicas[holder].proc.pid)
            self.assertEqual(self.status(other, "wake/one", image), ["IN_PROGRESS"])
        finally:
            if os.path.exists(self.hold):
                os.unlink(self.hold)
        # the holder heard the push: it copies it as soon as it is let go
        h.wait_until(lambda: self.status(other, "wake/one", image) == ["COMPLETE"], WAIT,
                     interval=0.2, what="wake/one replicated well before the lease's expiry")
        self.assertTrue(self.on_peer("wake/one", "v1", image))
        copied = "event=replication_copied repo=wake/one "
        h.wait_until(lambda: any(copied in r.log_text() for r in self.cluster.replicas), WAIT,
                     interval=0.1, what="the copy's log line")
        self.assertEqual(sum(r.log_text().count(copied) for r in self.cluster.replicas), 1)

    def claimed(self):
        out = self.cluster.psql("SELECT count(*) FROM replication_queue WHERE region = '%s' "
                                "AND claimed_until > 0" % SLOW_REGION).strip()
        return int(out)

    def manifest_puts(self, repo):
        pat = re.compile(r'"PUT /v2/%s/manifests/\S+ HTTP/1.1" 201' % re.escape(repo))
        return len([line for line in self.peer.log_text().splitlines() if pat.search(line)])

    def test_2_several_images_to_one_peer_at_once(self):
        if os.path.exists(self.hold):
            os.unlink(self.hold)  # when run alone
        self.relay.hold()
        try:
            # two images under one tag of one repository, the first the slower to copy: its
            # copy starts (tags read, stuck at the relay) before the second is pushed; were
            # the two copied at once, the first's tag would go last
            first = self.push(0, "many/same", "v1", layer_count=4, layer_size=3 << 20)
            h.wait_until(lambda: self.relay.counters()["open"] >= 1, WAIT, interval=0.1,
                         what="the first copy to reach the peer")
            later = self.push(1, "many/same", "v1")
            images = {"many/same": later}
            for k in range(6):
                repo = "many/r%d" % k
                images[repo] = self.push(k % 2, repo, "v1", layer_count=2)
            # the workers are stuck on their first request: as many copies claimed (and
            # connections open) as concurrency_per_peer allows, the others waiting
            h.wait_until(lambda: self.claimed() == CONCURRENCY and
                         self.relay.counters()["max_open"] == CONCURRENCY, WAIT, interval=0.2,
                         what="%d copies under way at the slow peer" % CONCURRENCY)
            for _ in range(10):  # and never more
                self.assertEqual(self.claimed(), CONCURRENCY)
                self.assertEqual(self.relay.counters()["max_open"], CONCURRENCY)
                time.sleep(0.3)
        finally:
            self.relay.release()
        for repo, image in sorted(images.items()):
            h.wait_until(lambda: self.status(0, repo, image) == ["COMPLETE"], WAIT,
                         interval=0.2, what="%s replicated" % repo)
            self.assertTrue(self.on_peer(repo, "v1", image), repo)
        h.wait_until(lambda: self.status(0, "many/same", first) == ["COMPLETE"], WAIT,
                     interval=0.2, what="many/same's first image replicated")
        # the tag moved in order: the later image's PUT came last
        self.assertTrue(self.on_peer("many/same", "v1", later))
        for repo in sorted(images):
            if repo != "many/same":
                h.wait_until(lambda: self.manifest_puts(repo) >= 1, WAIT, interval=0.1,
                             what="the peer's log of %s's manifest" % repo)
                self.assertEqual(self.manifest_puts(repo), 1, "%s copied more than once" % repo)
        self.assertEqual(self.claimed(), 0)


if __name__ == "__main__":
    unittest.main()
