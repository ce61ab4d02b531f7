"""Garbage collection is safe across replicas (docs/scale-out.md): `berth gc` runs in a
tight loop with gc.grace_seconds 0 against the shared PostgreSQL and S3 while two replicas
each take pushes, re-tags and deletes in a repository of their own, whose images share a
few layers (so deleting on one side makes layers garbage that the next push re-uses after
a HEAD said they exist: the check-then-commit race GC must not win). At the end every
manifest whose push got its 201 and was not deleted pulls back from either replica byte
for byte with every layer; a push may only fail cleanly (MANIFEST_BLOB_UNKNOWN when GC
took a layer between the HEAD and the manifest). BERTH_TEST_GC_RACE_SECONDS sets the
length in seconds (default 30, as make test runs it; `make test-replicas`, which CI runs,
gives the issue's full two minutes: 120)."""
# berth-suite: cluster

import hashlib
import json
import os
import random
import re
import threading
import time
import unittest

import berth_harness as h
from cluster import Cluster, ClusterTestCase

RACE_SECONDS = float(os.environ.get("BERTH_TEST_GC_RACE_SECONDS", "30"))
# A pass that has not ended after this is taken for a hang. On a busy 2-core machine a
# pass over the bucket the two-minute race leaves took 229 s (GC on S3 deletes a blob per
# write transaction, with its S3 requests inside it); ctest gives this
# test 1,500 s (tests/CMakeLists.txt).
PASS_BOUND = 480
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"


def descriptor(media_type, data):
    return {"mediaType": media_type, "digest": h.digest_of(data), "size": len(data)}


class Pusher:
    """Pushes, re-tags and deletes images in one repository through one replica, and
    remembers what must exist: {manifest digest: (manifest bytes, {tags}, {digest: data})}."""

    def __init__(self, name, server, shared, seed):
        self.name = name
        self.repo = "race/" + name
        self.reg = server.registry(keep_alive=True)
        self.shared = shared
        self.rand = random.Random(seed)
        self.images = {}
        self.counts = {"pushed": 0, "refused": 0, "retagged": 0, "deleted": 0, "skipped": 0}
        self.error = None
        self.n = 0

    def blob(self, data):
        digest = h.digest_of(data)
        resp = self.reg.head_blob(self.repo, digest)
        if resp.status == 200:
            self.counts["skipped"] += 1  # exists: the client does not upload it again
            return
        h.expect_status(resp, 404)
        resp = self.reg.push_blob(self.repo, data)
        h.expect_status(resp, 201)

    def push(self):
        self.n += 1
        layers = [self.rand.choice(self.shared),
                  h.random_bytes(self.rand.randint(2000, 40000))]
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "n": "%s-%d" % (self.name, self.n)}).encode()
        for data in [config] + layers:
            self.blob(data)
        body = json.dumps({
            "schemaVersion": 2, "mediaType": MT_MANIFEST,
            "config": descriptor(MT_CONFIG, config),
            "layers": [descriptor(MT_LAYER, d) for d in layers],
        }).encode()
        tag = "t%d" % self.n
        resp = self.reg.put_manifest(self.repo, tag, body, MT_MANIFEST)
        if resp.status == 201:
            blobs = {h.digest_of(d): d for d in [config] + layers}
            digest = h.digest_of(body)
            self.images.setdefault(digest, (body, set(), blobs))[1].add(tag)
            self.counts["pushed"] += 1
        elif resp.status == 400 and "MANIFEST_BLOB_UNKNOWN" in resp.error_codes():
            self.counts["refused"] += 1
        else:
            raise AssertionError("push %s:%s: %s" % (self.repo, tag, resp.describe()))

    def retag(self):
        digest = self.rand.choice(sorted(self.images))
        body, tags, _ = self.images[digest]
        self.n += 1
        tag = "r%d" % self.n
        resp = self.reg.put_manifest(self.repo, tag, body, MT_MANIFEST)
        h.expect_status(resp, 201)  # its layers are referenced: never garbage
        tags.add(tag)
        self.counts["retagged"] += 1

    def delete(self):
        digest = self.rand.choice(sorted(self.images))
        resp = self.reg.delete(self.reg.manifest_path(self.repo, digest))
        h.expect_status(resp, 202)
        del self.images[digest]
        self.counts["deleted"] += 1

    def run(self, deadline):
        try:
            while time.monotonic() < deadline:
                r = self.rand.random()
                if r < 0.2 and self.images:
                    self.retag()
                elif r < 0.5 and len(self.images) > 2:
                    self.delete()
                else:
                    self.push()
        except BaseException as e:  # reported by the test
            self.error = e


@unittest.skipUnless(h.IS_BERTH, "berth's replicas")
class GcRaceTest(ClusterTestCase):
    @classmethod
    def setUpClass(cls):
        # GC only by the loop below, which collects everything unreferenced at once
        cls.cluster = Cluster(replicas=2, config={"gc": {"enabled": False,
                                                          "grace_seconds": 0}})
        cls.addClassCleanup(cls.cluster.stop)
        cls.cluster.start()

    def gc_loop(self, stop, stats):
        # Anything that ends the loop early fails the test (a pass that fails, or one that
        # has not ended after PASS_BOUND: a hang), not only a non-zero exit status.
        try:
            while not stop.is_set():
                began = time.monotonic()
                rc, out = h.run_berth(["gc"], server=self.cluster.replicas[0],
                                      timeout=PASS_BOUND)
                stats["longest"] = max(stats["longest"], time.monotonic() - began)
                if rc != 0:
                    stats["failed"] = out
                    return
                stats["passes"] += 1
                stats["blobs"] += sum(int(x) for x in
                                      re.findall(r"gc: (\d+) blobs reclaimed", out))
        except BaseException as e:  # reported by the test
            stats["failed"] = "%s: %s" % (type(e).__name__, e)

    def test_no_layer_lost(self):
        replicas = self.cluster.replicas
        shared = [h.random_bytes(30000 + i) for i in range(3)]
        pushers = [Pusher("a", replicas[0], shared, 1), Pusher("b", replicas[1], shared, 2)]
        stop = threading.Event()
        stats = {"passes": 0, "blobs": 0, "failed": None, "longest": 0.0}
        gc = threading.Thread(target=self.gc_loop, args=(stop, stats))
        gc.start()
        deadline = time.monotonic() + RACE_SECONDS
        threads = [threading.Thread(target=p.run, args=(deadline,)) for p in pushers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        gc.join()
        for p in pushers:
            if p.error is not None:
                raise p.error
        self.assertIsNone(stats["failed"])
        # and once more now that nothing moves
        rc, out = h.run_berth(["gc"], server=replicas[0], timeout=PASS_BOUND)
        self.assertEqual(rc, 0, out)
        print("%.0f s: gc passes %d (longest %.0f s), blobs reclaimed %d; %s" % (
            RACE_SECONDS, stats["passes"], stats["longest"], stats["blobs"],
            {p.name: p.counts for p in pushers}))
        self.assertGreater(stats["passes"], 3)
        self.assertGreater(stats["blobs"], 0, "GC never collected anything: no race was run")
        for p in pushers:
            self.assertGreater(p.counts["pushed"], 5, p.counts)
            self.assertGreater(p.counts["deleted"], 0, p.counts)
        # Every image that got its 201 and was not deleted is whole, through either
        # replica: the manifest by digest and by each tag, every blob byte for byte.
        lost = []
        for p in pushers:
            for i, server in enumerate(replicas):
                reg = server.registry(keep_alive=True)
                for digest, (body, tags, blobs) in p.images.items():
                    resp = reg.get_manifest(p.repo, digest, accept=MT_MANIFEST)
                    if resp.status != 200 or resp.body != body:
                        lost.append((i, p.repo, digest, "manifest", resp.status))
                        continue
                    for tag in tags:
                        resp = reg.get_manifest(p.repo, tag, accept=MT_MANIFEST, method="HEAD")
                        if resp.status != 200 or \
                                resp.header("Docker-Content-Digest") != digest:
                            lost.append((i, p.repo, tag, "tag", resp.status))
                    for bd, data in blobs.items():
                        resp = reg.get_blob(p.repo, bd)
                        if resp.status != 200 or \
                                hashlib.sha256(resp.body).hexdigest() != bd.split(":")[1]:
                            lost.append((i, p.repo, bd, "blob", resp.status))
                reg.close()
        self.assertEqual(lost, [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
