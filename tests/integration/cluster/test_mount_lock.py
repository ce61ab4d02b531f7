"""A cross-repository mount checks that the blob's bytes are in the store (a HEAD on S3)
before it takes the metadata write lock, which on PostgreSQL every replica's writes share:
a mount waiting for the store must not stall the pushes of the whole cluster. Two replicas
on one PostgreSQL, their S3 requests through a relay (lib/s3_error_proxy.py) in front of
Swift that holds the mount's HEAD: a manifest PUT on the other replica completes meanwhile,
and the mount completes once the HEAD is let through. A mount of a blob whose bytes are gone
from the store (its row still there) is refused as before: the client uploads."""
# berth-suite: cluster

import threading
import unittest

import berth_harness as h
from cluster import RelayedClusterTestCase


@unittest.skipUnless(h.IS_BERTH, "berth's replicas")
class MountLockTest(RelayedClusterTestCase):
    def tearDown(self):
        self.relay.release()

    def mount(self, reg, repo, digest, source):
        return reg.request("POST", "/v2/%s/blobs/uploads/?mount=%s&from=%s" % (
            repo, digest, source))

    def test_mount_waiting_for_the_store_does_not_hold_the_write_lock(self):
        img = h.build_image(layer_count=1)
        h.expect_status(self.regs[0].push_image("lock/src", img, tag="v1"), 201)
        other = h.build_image(layer_count=1)
        h.expect_status(self.regs[1].push_image("lock/other", other, tag="v1"), 201)
        layer = img.layer_digests[0]
        self.relay.hold("HEAD", h.digest_hex(layer))
        got = {}

        def mount():
            got["resp"] = self.mount(self.regs[0], "lock/dst", layer, "lock/src")

        t = threading.Thread(target=mount)
        t.start()
        try:
            self.assertTrue(self.relay.wait_held("HEAD", h.digest_hex(layer), 60),
                            "the mount did not ask the store for the blob")
            # a write on the other replica while the mount waits for the store: with the
            # HEAD inside the write lock, this waited for the relay (the request's timeout)
            r = self.regs[1].request("PUT", self.regs[1].manifest_path("lock/other", "moved"),
                                     headers={"Content-Type": other.media_type},
                                     body=other.manifest, timeout=60)
            self.assertEqual(r.status, 201, r.describe())
            self.assertTrue(t.is_alive(), "the mount ended before its HEAD was let through")
            self.assertNotIn("resp", got)
        finally:
            self.relay.release()
            t.join(120)
        self.assertFalse(t.is_alive())
        self.assertEqual(got["resp"].status, 201, got["resp"].describe())
        for reg in self.regs:
            r = reg.get_blob("lock/dst", layer)
            self.assertEqual(r.status, 200, r.describe())
            self.assertTrue(r.body == img.blobs[layer])
            r = reg.get_manifest("lock/other", "moved", accept=other.media_type)
            self.assertEqual(r.status, 200, r.describe())

    def test_mount_of_a_blob_without_bytes_is_refused(self):
        img = h.build_image(layer_count=1)
        h.expect_status(self.regs[0].push_image("gone/src", img, tag="v1"), 201)
        layer = img.layer_digests[0]
        keys = [k for k in self.cluster.keys("blobs/") if h.digest_hex(layer) in k]
        self.assertEqual(len(keys), 1, keys)
        self.cluster.s3.client().delete_object(Bucket=self.cluster.s3.bucket, Key=keys[0])
        for reg in self.regs:
            r = self.mount(reg, "gone/dst", layer, "gone/src")
            # not mounted: an upload session instead
            self.assertEqual(r.status, 202, r.describe())
            self.assertEqual(reg.head_blob("gone/dst", layer).status, 404)


if __name__ == "__main__":
    unittest.main()
