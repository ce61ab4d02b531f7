"""berth export --since: a delta bundle holds only what the previous bundle lacked, while
its index.json still names every image. Imported after the previous bundle it gives every
image with identical digests; imported into a store without the previous bundle it is
refused, naming the missing blob, with nothing published."""

import json
import os
import shutil
import tempfile
import unittest

import berth_harness as h
import bundle_helpers as bh
import lifegc_helpers as lg


class DeltaTest(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="berth-delta-")
        self.addCleanup(shutil.rmtree, self.work, True)
        self.src = h.Server()
        self.addCleanup(self.src.cleanup)
        self.src.start()
        self.reg = self.src.registry()
        self.images = bh.sample_images()
        bh.push_sample(self.reg, "itest/app", self.images)
        self.first = os.path.join(self.work, "first.tar.zst")
        self.export("itest/app:v1", "itest/app:multi", "-o", self.first)
        # then: a new image sharing v1's config and first layer, and a new referrer of v1
        v1 = self.images["v1"]
        extra = h.build_image(layer_count=1, layer_size=5000)
        layer = extra.obj["layers"][0]
        obj = json.loads(v1.manifest)
        obj["layers"] = [obj["layers"][0], layer]
        blobs = {d: b for d, b in v1.blobs.items()
                 if d in (v1.config_digest, v1.layer_digests[0])}
        blobs[layer["digest"]] = extra.blobs[layer["digest"]]
        self.v2 = h.Image(obj, blobs)
        self.sig = h.build_artifact("application/vnd.example.signature.v1",
                                    subject=v1.descriptor())
        h.expect_status(self.reg.push_image("itest/app", self.v2, tag="v2"), 201)
        h.expect_status(self.reg.push_image("itest/app", self.sig), 201)
        self.delta = os.path.join(self.work, "delta.tar")

    def export(self, *args):
        rc, out = h.run_berth(["export"] + list(args), server=self.src, timeout=120)
        self.assertEqual(rc, 0, out)
        return out

    def names(self, files):
        return {"sha256:" + n.split("/")[-1] for n in files if n.startswith("blobs/sha256/")}

    def test_delta_holds_only_what_is_new(self):
        out = self.export("itest/app:v1", "itest/app:multi", "itest/app:v2", "-o", self.delta,
                          "--since", self.first)
        first = self.names(bh.read_bundle(self.first))
        files = bh.read_bundle(self.delta)
        bh.check_blobs(self, files)
        present = self.names(files)
        # nothing the first bundle holds, everything new
        self.assertEqual(present & first, set())
        v1 = self.images["v1"]
        new = {self.v2.digest, self.v2.layer_digests[1], self.sig.digest} | set(self.sig.blobs)
        new -= first  # the artifacts' empty config is in both
        self.assertEqual(present, new)
        self.assertIn("left out", out)
        # index.json names every image, old and new
        entries = {e["digest"]: e for e in bh.index_entries(files)}
        for image in (v1, self.images["multi"], self.v2, self.images["sbom"], self.sig):
            self.assertIn(image.digest, entries)
        self.assertEqual(entries[v1.digest]["annotations"][bh.REF_NAME], "itest/app:v1")
        self.assertEqual(entries[self.v2.digest]["annotations"][bh.REF_NAME], "itest/app:v2")
        # a delta of a delta: only what neither holds (nothing here)
        again = os.path.join(self.work, "again.tar")
        self.export("itest/app:v2", "-o", again, "--since", self.delta)
        self.assertEqual(self.names(bh.read_bundle(again)) & present, set())

    def test_import_after_the_previous_bundle(self):
        self.export("itest/app:v1", "itest/app:multi", "itest/app:v2", "-o", self.delta,
                    "--since", self.first)
        self.src.stop()
        dest = h.Server()
        self.addCleanup(dest.cleanup)
        for path in (self.first, self.delta):
            rc, out = h.run_berth(["import", path], server=dest, timeout=120)
            self.assertEqual(rc, 0, out)
        self.assertIn("1 tags set", out)  # v2; v1 and multi were set by the first
        dest.start()
        reg = dest.registry()
        for tag, image in (("v1", self.images["v1"]), ("multi", self.images["multi"]),
                           ("v2", self.v2)):
            resp = h.expect_status(reg.get_manifest("itest/app", tag, accept=image.media_type),
                                   200)
            self.assertEqual(resp.header("Docker-Content-Digest"), image.digest)
            self.assertEqual(resp.body, image.manifest)
        for digest, data in self.v2.blobs.items():
            self.assertEqual(h.expect_status(reg.get_blob("itest/app", digest), 200).body, data)
        refs = h.expect_status(reg.referrers("itest/app", self.images["v1"].digest), 200).json()
        self.assertEqual(sorted(m["digest"] for m in refs["manifests"]),
                         sorted([self.images["sbom"].digest, self.sig.digest]))

    def test_without_the_previous_bundle_it_is_refused(self):
        self.export("itest/app:v1", "itest/app:v2", "-o", self.delta, "--since", self.first)
        dest = h.Server()
        self.addCleanup(dest.cleanup)
        rc, out = h.run_berth(["import", self.delta], server=dest, timeout=120)
        self.assertEqual(rc, 1, out)
        self.assertIn("refused", out)
        self.assertRegex(out, r"blobs/sha256/[0-9a-f]{64}: missing from the bundle")
        # nothing published: no blob file, no stage, no repository
        self.assertEqual(lg.blob_files(dest.root), {})
        uploads = os.path.join(dest.root, "uploads")
        self.assertEqual(os.listdir(uploads) if os.path.isdir(uploads) else [], [])
        dest.start()
        self.assertEqual(h.expect_status(dest.registry().catalog(), 200).json()["repositories"],
                         [])

    def test_since_needs_a_bundle(self):
        junk = os.path.join(self.work, "junk.tar")
        with open(junk, "wb") as f:
            f.write(b"not a tar at all" * 100)
        for since, msg in ((junk, "junk.tar"), (os.path.join(self.work, "none"), "none")):
            out_path = os.path.join(self.work, "x.tar")
            rc, out = h.run_berth(["export", "itest/app:v1", "-o", out_path, "--since", since],
                                  server=self.src, timeout=60)
            self.assertEqual(rc, 1, out)
            self.assertIn("--since", out)
            self.assertIn(msg, out)
            self.assertFalse(os.path.exists(out_path))
        self.assertEqual([n for n in os.listdir(self.work) if ".tmp-" in n], [])


if __name__ == "__main__":
    h.main()
