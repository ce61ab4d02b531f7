# berth-python: modern
"""The archive tier's mover under a lease (docs/scale-out.md): two `berth serve` replicas
sharing PostgreSQL and S3 (cluster.py; the archive tier under <prefix>archive/ of the same
bucket). A hold point (BERTH_TEST_HOLD_ARCHIVE) stops the replica moving blobs before its
first move; the other, woken by an archive request of its own, is refused the lease and
never reaches the hold; kill -9 of the holder: the other moves the blobs of both images
after the lease expires, each blob once."""
# berth-suite: cluster

import os
import re
import shutil
import tempfile
import unittest

import berth_harness as h
import clients as c
from cluster import PREFIX, Cluster, ClusterTestCase

LEASE_SECONDS = 3
WAIT = 90
HOLD_LINE = "event=test_hold point=archive"


@unittest.skipUnless(h.IS_BERTH, "berth's replicas")
class ArchiveLeaseTest(ClusterTestCase):
    @classmethod
    def setUpClass(cls):
        c.require_modern()
        cls.tmp = tempfile.mkdtemp(prefix="berth-archive-lease-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.hold = os.path.join(cls.tmp, "hold-archive")
        open(cls.hold, "w").close()
        cls.cluster = Cluster(replicas=2, env={"BERTH_TEST_HOLD_ARCHIVE": cls.hold}, config={
            "log": {"level": "debug"},
            "meta": {"lease_seconds": LEASE_SECONDS},
            "gc": {"enabled": False},
        })
        cls.addClassCleanup(cls.cluster.stop)
        cls.cluster.start()
        cls.replicas = cls.cluster.replicas
        cls.ecr = [c.ecr_client(r) for r in cls.replicas]
        cls.s3 = cls.cluster.s3.client()

    def exists(self, key):
        page = self.s3.list_objects_v2(Bucket=self.cluster.s3.bucket, Prefix=key)
        return [o["Key"] for o in page.get("Contents", [])] == [key]

    def where(self, digest):
        """(in the blob store, in the archive tier)"""
        hexpart = h.digest_hex(digest)
        rel = "blobs/sha256/%s/%s" % (hexpart[:2], hexpart)
        return self.exists(PREFIX + rel), self.exists(PREFIX + "archive/" + rel)

    def archived_counts(self, server):
        return [int(m.group(1)) for m in re.finditer(r"event=archive_pass ok=1 archived=(\d+)",
                                                     server.log_text())]

    def push_and_archive(self, i, repo):
        image = h.build_image(layer_count=2)
        h.expect_status(self.replicas[i].registry().push_image(repo, image, tag="v1"), 201)
        self.ecr[i].update_image_storage_class(repositoryName=repo,
                                               imageId={"imageDigest": image.digest},
                                               targetStorageClass="ARCHIVE")
        return image

    def test_archive_moves_once_and_taken_over(self):
        first = self.push_and_archive(0, "arc/one")
        h.wait_until(lambda: any(HOLD_LINE in r.log_text() for r in self.replicas), WAIT,
                     interval=0.1, what="a replica's archive mover to reach its hold")
        holders = [i for i, r in enumerate(self.replicas) if HOLD_LINE in r.log_text()]
        self.assertEqual(len(holders), 1, holders)
        holder = holders[0]
        other = 1 - holder
        second = self.push_and_archive(other, "arc/two")
        # refused the lease (or, were there none, stopped at the hold too)
        h.wait_until(lambda: re.search("event=lease_busy name=archive |" + HOLD_LINE,
                                       self.replicas[other].log_text()), WAIT, interval=0.1,
                     what="the other replica to try the archive mover")
        self.assertNotIn(HOLD_LINE, self.replicas[other].log_text())
        for digest in set(first.blobs) | set(second.blobs):
            self.assertEqual(self.where(digest), (True, False), digest)

        # kill -9 of the holder; the other moves every blob of both images, once
        self.replicas[holder].kill9()
        os.unlink(self.hold)
        digests = set(first.blobs) | set(second.blobs)
        h.wait_until(lambda: all(self.where(d) == (False, True) for d in digests), WAIT,
                     interval=0.2, what="the blobs moved to the archive tier")
        # each moved once, all by the survivor (its passes log what they moved at their end)
        h.wait_until(lambda: sum(self.archived_counts(self.replicas[other])) >= len(digests),
                     WAIT, interval=0.2, what="the survivor's archive pass to end")
        self.assertEqual(sum(self.archived_counts(self.replicas[other])), len(digests))
        self.assertEqual(self.archived_counts(self.replicas[holder]), [])


if __name__ == "__main__":
    unittest.main()
