# berth-python: modern
"""The single-run jobs under leases (docs/scale-out.md): two `berth serve` replicas sharing
PostgreSQL and S3 (cluster.py) copy a replication peer's queue and make managed signatures
once between them.

Replication: the peer (a third berth, on its own files) is stopped (SIGSTOP) so that the
replica copying to it hangs mid-copy; a push through the other replica queues a second
image; once the peer runs again each image's manifest was PUT to it exactly once (its
access log). Then the replica copying is killed with -9 mid-copy: the other takes the
queue over once the lease expires and completes it.

Signing: a hold point (BERTH_TEST_HOLD_SIGNING) stops the replica signing in the middle of
the job; the other replica, woken by a push of its own, is refused the lease and never
reaches the hold; kill -9 of the holder: the other signs both images after the lease
expires, one signature each."""
# berth-suite: cluster

import os
import re
import shutil
import signal
import tempfile
import unittest

import auth_helpers as a
import berth_harness as h
import clients as c
import ecr_helpers as e
import ptc_helpers as p
from cluster import Cluster, ClusterTestCase

LEASE_SECONDS = 3
PEER_REGION = "eu-west-1"
PEER_ID = "210987654321"
PEER_LEASE = "replication:%s/%s" % (PEER_REGION, PEER_ID)
SECRETS_KEY = "5e" * 32
ARN = "arn:aws:signer:us-east-1:%s:/signing-profiles/%s"
NOTARY_SIGNATURE = "application/vnd.cncf.notary.signature"
WAIT = 90


def manifest_puts(server, repo):
    """The manifest PUTs of repo in a berth's access log."""
    pat = re.compile(r"event=access method=PUT path=/v2/%s/manifests/\S+ status=201"
                     % re.escape(repo))
    return [line for line in server.log_text().splitlines() if pat.search(line)]


@unittest.skipUnless(h.IS_BERTH, "berth's replicas")
class JobLeaseTest(ClusterTestCase):
    @classmethod
    def setUpClass(cls):
        c.require_modern()
        cls.tmp = tempfile.mkdtemp(prefix="berth-job-leases-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.hold = os.path.join(cls.tmp, "hold-signing")
        open(cls.hold, "w").close()
        cls.peer = h.Server(config={"registry": {"region": PEER_REGION, "id": PEER_ID}})
        cls.addClassCleanup(cls.peer.cleanup)
        cls.peer.start()
        cls.addClassCleanup(cls.resume_peer)
        cls.peer_key = a.keys_create(cls.peer, "replicator")
        cls.cluster = Cluster(replicas=2, env={"BERTH_TEST_HOLD_SIGNING": cls.hold}, config={
            "log": {"level": "debug"},
            "meta": {"lease_seconds": LEASE_SECONDS},
            "pull_through": {"secrets_key": SECRETS_KEY},
            "replication": {
                "peers": [{"region": PEER_REGION, "registry_id": PEER_ID,
                           "url": cls.peer.base_url, "secret": "peer"}],
                "retry_initial_ms": 200,
                "retry_max_ms": 1000,
                "timeout_seconds": 300,
            },
        })
        cls.addClassCleanup(cls.cluster.stop)
        cls.cluster.start()
        r0 = cls.cluster.replicas[0]
        rc, _, err = p.berth_secrets(r0, "put", "peer", "--username", cls.peer_key[0],
                                     password=cls.peer_key[1])
        if rc != 0:
            raise AssertionError("berth secrets put: %s" % err)
        cls.ecr = [c.ecr_client(r) for r in cls.cluster.replicas]

    @classmethod
    def resume_peer(cls):
        if cls.peer.proc is not None and cls.peer.proc.poll() is None:
            os.kill(cls.peer.proc.pid, signal.SIGCONT)

    def dump_logs(self):
        super().dump_logs()
        print("\n--- peer log tail ---\n%s" % self.peer.log_tail(40))

    def pause_peer(self):
        os.kill(self.peer.proc.pid, signal.SIGSTOP)

    def lease_holder_pid(self, name):
        out = self.cluster.psql("SELECT holder FROM leases WHERE name = '%s'" % name).strip()
        parts = out.split("/")
        return int(parts[1]) if len(parts) == 3 else None

    def stuck_holder(self, name):
        """The replica holding name's lease and keeping it (a claim that found nothing to do
        gives it back at once), once there is one."""
        seen = []

        def stable():
            pid = self.lease_holder_pid(name)
            seen.append(pid)
            return pid is not None and seen[-3:] == [pid] * 3
        h.wait_until(stable, WAIT, interval=0.3, what="a replica to hold %s" % name)
        return self.replica_of_pid(seen[-1])

    def replica_of_pid(self, pid):
        for i, r in enumerate(self.cluster.replicas):
            if r.proc is not None and r.proc.pid == pid:
                return i
        return None

    def push(self, i, repo, tag):
        image = h.build_image()
        h.expect_status(self.cluster.replicas[i].registry().push_image(repo, image, tag=tag),
                        201)
        return image

    def replicated(self, survivor, repo, image):
        ecr = self.ecr[survivor]

        def complete():
            st = ecr.describe_image_replication_status(
                repositoryName=repo, imageId={"imageDigest": image.digest})
            return [s["status"] for s in st["replicationStatuses"]] == ["COMPLETE"]
        h.wait_until(complete, WAIT, interval=0.2, what="%s replicated" % repo)

    def test_1_replication_once_and_taken_over(self):
        ecr0 = self.ecr[0]
        ecr0.put_replication_configuration(replicationConfiguration={"rules": [{
            "destinations": [{"region": PEER_REGION, "registryId": PEER_ID}],
            "repositoryFilters": [{"filter": "rep", "filterType": "PREFIX_MATCH"}]}]})

        # the peer hangs: whoever copies first is stuck mid-copy holding the queue
        self.pause_peer()
        one = self.push(0, "rep/one", "v1")
        holder = self.stuck_holder(PEER_LEASE)
        other = 1 - holder
        # a push through the other replica wakes its thread: refused, it waits
        two = self.push(other, "rep/two", "v1")
        h.wait_until(lambda: "event=lease_busy name=%s" % PEER_LEASE
                     in self.cluster.replicas[other].log_text(), WAIT, interval=0.1,
                     what="the other replica to be refused the queue")
        os.kill(self.peer.proc.pid, signal.SIGCONT)
        for repo, image in (("rep/one", one), ("rep/two", two)):
            self.replicated(other, repo, image)
        for repo in ("rep/one", "rep/two"):
            # the peer logs a request once it has answered it
            h.wait_until(lambda: manifest_puts(self.peer, repo), WAIT, interval=0.1,
                         what="the peer's log of %s's manifest" % repo)
            self.assertEqual(len(manifest_puts(self.peer, repo)), 1,
                             "%s copied more than once" % repo)

        # kill -9 of the replica copying, mid-copy: the other takes the queue over
        self.pause_peer()
        three = self.push(holder, "rep/three", "v1")
        dead = self.stuck_holder(PEER_LEASE)
        survivor = 1 - dead
        self.cluster.kill9(dead)
        os.kill(self.peer.proc.pid, signal.SIGCONT)
        four = self.push(survivor, "rep/four", "v1")
        for repo, image in (("rep/three", three), ("rep/four", four)):
            self.replicated(survivor, repo, image)
        h.wait_until(lambda: manifest_puts(self.peer, "rep/four"), WAIT, interval=0.1,
                     what="the peer's log of rep/four's manifest")
        self.assertEqual(len(manifest_puts(self.peer, "rep/four")), 1)
        peer_reg = self.peer.registry()
        for repo, image in (("rep/three", three), ("rep/four", four)):
            resp = peer_reg.request("GET", "/v2/%s/manifests/v1" % repo,
                                    headers=dict(a.basic(*self.peer_key),
                                                 Accept=image.media_type))
            self.assertEqual((resp.status, resp.body), (200, image.manifest))
        # the dead replica comes back for the next test
        self.cluster.replicas[dead].start(reuse_port=True)
        self.ecr[dead] = c.ecr_client(self.cluster.replicas[dead])

    def test_2_signing_once_and_taken_over(self):
        ecr0 = self.ecr[0]
        ecr0.put_signing_configuration(signingConfiguration={"rules": [
            {"signingProfileArn": ARN % (e.REGISTRY_ID, "cluster"),
             "repositoryFilters": [{"filter": "sig/*", "filterType": "WILDCARD_MATCH"}]}]})
        first = self.push(0, "sig/one", "v1")
        h.wait_until(lambda: any("event=test_hold point=signing" in r.log_text()
                                 for r in self.cluster.replicas), WAIT, interval=0.1,
                     what="a replica's signing job to reach its hold")
        holder = [i for i, r in enumerate(self.cluster.replicas)
                  if "event=test_hold point=signing" in r.log_text()]
        self.assertEqual(len(holder), 1, holder)
        holder = holder[0]
        other = 1 - holder
        second = self.push(other, "sig/two", "v1")
        # refused the lease (or, were there none, stopped at the hold too)
        h.wait_until(lambda: re.search("event=lease_busy name=signing |event=test_hold "
                                       "point=signing", self.cluster.replicas[other].log_text()),
                     WAIT, interval=0.1, what="the other replica to try the signing job")
        self.assertNotIn("event=test_hold point=signing",
                         self.cluster.replicas[other].log_text())

        # kill -9 of the holder mid-job; the other signs both after the lease expires
        self.cluster.kill9(holder)
        os.unlink(self.hold)
        ecr = self.ecr[other]
        reg = self.cluster.replicas[other].registry()
        for repo, image in (("sig/one", first), ("sig/two", second)):
            def signed():
                st = ecr.describe_image_signing_status(
                    repositoryName=repo, imageId={"imageDigest": image.digest})
                return [s["status"] for s in st["signingStatuses"]] == ["COMPLETE"]
            h.wait_until(signed, WAIT, interval=0.2, what="%s signed" % repo)
            resp = reg.referrers(repo, image.digest, artifactType=NOTARY_SIGNATURE)
            self.assertEqual(resp.status, 200)
            self.assertEqual(len(resp.json()["manifests"]), 1, resp.json())


if __name__ == "__main__":
    unittest.main()
