"""storage.sparse_manifests: an index whose children, or a manifest whose config or layers,
are not in the repository. Off (the default, as ECR) such a push is refused with
MANIFEST_BLOB_UNKNOWN; on, it is stored and served byte for byte, tagged and listed, garbage
collection keeps what exists and passes over what does not, a missing child pushed later
completes the index, and bundles carry a sparse index across an air gap."""

import os
import unittest
import tempfile

import berth_harness as h
import lifegc_helpers as lg

ARM64 = {"os": "linux", "architecture": "arm64"}
AMD64 = {"os": "linux", "architecture": "amd64"}


def sparse_index(present, missing):
    """An index of two platforms: present (an Image, pushed) and missing (an Image that is
    never pushed, or only later)."""
    return h.Index([present, missing], platforms=[AMD64, ARM64])


def run_gc(server):
    # server=: its root, config and environment (under make test-postgres the metadata is
    # in PostgreSQL; gc over the root alone would open an empty SQLite database)
    rc, out = h.run_berth(["gc"], server=server, env={"BERTH_GC_GRACE_SECONDS": "0"},
                          timeout=120)
    if rc != 0:
        raise AssertionError("berth gc failed (%d):\n%s" % (rc, out[-3000:]))
    return out


@h.berth_only("storage.sparse_manifests is berth's option")
class SparseOffTest(h.ServerTestCase):
    def test_refused_by_default(self):
        repo = self.repo()
        present = h.build_image(layer_count=1)
        missing = h.build_image(layer_count=1, arch="arm64")
        h.expect_status(self.reg.push_image(repo, present), 201)
        index = sparse_index(present, missing)
        resp = self.reg.put_manifest(repo, "multi", index.manifest, index.media_type)
        self.assertError(resp, 400, "MANIFEST_BLOB_UNKNOWN")
        self.assertIn(missing.digest, resp.body.decode())
        # a manifest without its first layer
        img = h.build_image(layer_count=2)
        for digest, data in img.blobs.items():
            if digest != img.layer_digests[0]:
                self.reg.ensure_blob(repo, data)
        resp = self.reg.put_manifest(repo, "partial", img.manifest, img.media_type)
        self.assertError(resp, 400, "MANIFEST_BLOB_UNKNOWN")
        self.assertStatus(self.reg.get_manifest(repo, "partial"), 404)


@h.berth_only("storage.sparse_manifests is berth's option")
class SparseOnTest(h.ServerTestCase):
    server_config = {"storage": {"sparse_manifests": True}, "gc": {"enabled": False}}

    def test_sparse_index_is_stored_served_and_survives_gc(self):
        repo = self.repo()
        present = lg.distinct_image(layer_size=4096)
        missing = h.build_image(layer_count=1, arch="arm64")
        h.expect_status(self.reg.push_image(repo, present), 201)
        index = sparse_index(present, missing)
        resp = self.reg.put_manifest(repo, "multi", index.manifest, index.media_type)
        self.assertStatus(resp, 201)
        self.assertHeader(resp, "Docker-Content-Digest", index.digest)
        for ref in ("multi", index.digest):
            self.assertManifest(repo, ref, index)
            self.assertManifest(repo, ref, index, method="HEAD")
        self.assertEqual(self.reg.tags(repo).json()["tags"], ["multi"])
        self.assertStatus(self.reg.get_manifest(repo, missing.digest), 404)

        # garbage collection keeps the index and the child that exists, with its blobs
        out = run_gc(self.server)
        self.assertNotIn("level=error", out)
        self.assertManifest(repo, "multi", index)
        self.assertManifest(repo, present.digest, present)
        for digest, data in present.blobs.items():
            self.assertEqual(self.assertStatus(self.reg.get_blob(repo, digest), 200).body, data)

        # the missing platform pushed later completes the index
        h.expect_status(self.reg.push_image(repo, missing), 201)
        self.assertManifest(repo, missing.digest, missing)
        # and an index child cannot be deleted from under the index now that it exists
        self.assertError(self.reg.delete(self.reg.manifest_path(repo, missing.digest)), 409,
                         "DENIED")

    def test_manifest_without_a_layer_or_its_config(self):
        repo = self.repo()
        img = h.build_image(layer_count=2)
        first = img.layer_digests[0]
        for digest, data in img.blobs.items():
            if digest not in (first, img.config_digest):
                self.reg.ensure_blob(repo, data)
        resp = self.reg.put_manifest(repo, "partial", img.manifest, img.media_type)
        self.assertStatus(resp, 201)
        self.assertManifest(repo, "partial", img)
        self.assertStatus(self.reg.head_blob(repo, first), 404)
        second = img.layer_digests[1]
        run_gc(self.server)
        self.assertEqual(self.assertStatus(self.reg.get_blob(repo, second), 200).body,
                         img.blobs[second])
        # the missing layer pushed later is served
        self.reg.ensure_blob(repo, img.blobs[first])
        self.assertStatus(self.reg.head_blob(repo, first), 200)

    def test_bundle_carries_a_sparse_index(self):
        repo = self.repo()
        present = h.build_image(layer_count=1)
        missing = h.build_image(layer_count=1, arch="arm64")
        h.expect_status(self.reg.push_image(repo, present), 201)
        index = sparse_index(present, missing)
        self.assertStatus(self.reg.put_manifest(repo, "multi", index.manifest,
                                                index.media_type), 201)
        work = tempfile.mkdtemp(prefix="berth-sparse-")
        bundle = os.path.join(work, "sparse.tar")
        # the server's own backends (S3, PostgreSQL under make test-s3 / test-postgres)
        env = dict(self.server.env, BERTH_STORAGE_SPARSE_MANIFESTS="true")
        rc, out = h.run_berth(["export", "--root", self.server.root, repo + ":multi", "-o",
                               bundle], env=env)
        self.assertEqual(rc, 0, out)
        other = h.Server(config={"storage": {"sparse_manifests": True}})
        self.addCleanup(other.cleanup)
        os.makedirs(other.root, exist_ok=True)
        # without the option on the importing side, the incomplete bundle is refused
        rc, out = h.run_berth(["import", "--root", other.root, bundle], env=other.env)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("missing from the bundle", out)
        rc, out = h.run_berth(["import", "--root", other.root, bundle],
                              env=dict(other.env, BERTH_STORAGE_SPARSE_MANIFESTS="true"))
        self.assertEqual(rc, 0, out)
        other.start()
        self.reg = other.registry()
        self.assertManifest(repo, "multi", index)
        self.assertManifest(repo, present.digest, present)


if __name__ == "__main__":
    unittest.main()
