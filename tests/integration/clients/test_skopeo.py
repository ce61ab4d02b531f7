"""skopeo (a real client) copies images the test builds into the registry and back."""

import json
import os
import shutil
import tempfile

import clients as c
import berth_harness as h


class SkopeoCase(h.ServerTestCase):
    """A layout of an image and a two-platform index, and skopeo to copy them."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.work = tempfile.mkdtemp(prefix="berth-skopeo-")
        cls.addClassCleanup(shutil.rmtree, cls.work, True)
        cls.sk = c.Skopeo(cls.work)
        cls.host = "127.0.0.1:%d" % cls.server.port
        cls.image = h.build_image(layer_count=3, layer_size=64 * 1024)
        cls.layout = os.path.join(cls.work, "src")
        cls.index = h.Index([h.build_image(layer_count=2, arch=a) for a in ("amd64", "arm64")],
                            platforms=[{"os": "linux", "architecture": "amd64"},
                                       {"os": "linux", "architecture": "arm64"}])
        h.write_oci_layout(cls.layout, {"v1": cls.image, "multi": cls.index})

    def skopeo(self, *args, check=True):
        return self.sk.run(*args, check=check)

    def push(self, src_ref, dest, *extra):
        return self.skopeo("copy", "--dest-tls-verify=false", "--dest-no-creds", *extra,
                           "oci:%s:%s" % (self.layout, src_ref), "docker://%s/%s" % (self.host,
                                                                                    dest))

    def pull(self, src, out_dir, out_ref, *extra):
        return self.skopeo("copy", "--src-tls-verify=false", "--src-no-creds", *extra,
                           "docker://%s/%s" % (self.host, src), "oci:%s:%s" % (out_dir, out_ref))

    def out_dir(self, name):
        path = os.path.join(self.work, name)
        shutil.rmtree(path, ignore_errors=True)
        return path

    def layout_manifest_digest(self, directory, ref):
        with open(os.path.join(directory, "index.json")) as f:
            index = json.load(f)
        for desc in index["manifests"]:
            if desc.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref:
                return desc["digest"]
        self.fail("no %s in %s/index.json: %s" % (ref, directory, index))

    def assertSameImage(self, directory, ref, image):
        """The layout holds image byte for byte: manifest digest and every blob."""
        self.assertEqual(self.layout_manifest_digest(directory, ref), image.digest)
        self.assertEqual(h.read_oci_layout_blob(directory, image.digest), image.manifest)
        for child in image.children:
            self.assertEqual(h.read_oci_layout_blob(directory, child.digest), child.manifest)
            for digest, data in child.blobs.items():
                self.assertEqual(h.read_oci_layout_blob(directory, digest), data)
        for digest, data in image.blobs.items():
            self.assertEqual(h.read_oci_layout_blob(directory, digest), data)


class SkopeoTest(SkopeoCase):
    def test_copy_image_by_tag_and_back(self):
        repo = "itest/skopeo/image"
        self.push("v1", repo + ":v1")
        self.assertManifest(repo, "v1", self.image)
        for digest, data in self.image.blobs.items():
            self.assertBlob(repo, data)
        out = self.out_dir("back-by-tag")
        self.pull(repo + ":v1", out, "v1")
        self.assertSameImage(out, "v1", self.image)

    def test_copy_back_by_digest(self):
        repo = "itest/skopeo/bydigest"
        self.push("v1", repo + ":v1")
        out = self.out_dir("back-by-digest")
        self.pull("%s@%s" % (repo, self.image.digest), out, "pulled")
        self.assertSameImage(out, "pulled", self.image)

    def test_push_by_digest(self):
        repo = "itest/skopeo/pushdigest"
        self.push("v1", "%s@%s" % (repo, self.image.digest))
        self.assertManifest(repo, self.image.digest, self.image)

    def test_multi_arch_index(self):
        repo = "itest/skopeo/multi"
        self.push("multi", repo + ":multi", "--all")
        self.assertManifest(repo, "multi", self.index)
        for child in self.index.children:
            self.assertManifest(repo, child.digest, child)
        out = self.out_dir("back-multi")
        self.pull(repo + ":multi", out, "multi", "--all")
        self.assertSameImage(out, "multi", self.index)
        out = self.out_dir("back-multi-digest")
        self.pull("%s@%s" % (repo, self.index.digest), out, "multi", "--all")
        self.assertSameImage(out, "multi", self.index)

    def test_inspect_raw(self):
        repo = "itest/skopeo/inspect"
        self.push("v1", repo + ":v1")
        proc = self.skopeo("inspect", "--raw", "--tls-verify=false", "--no-creds",
                           "docker://%s/%s:v1" % (self.host, repo))
        self.assertEqual(proc.stdout, self.image.manifest)
        proc = self.skopeo("inspect", "--tls-verify=false", "--no-creds",
                           "docker://%s/%s:v1" % (self.host, repo))
        doc = json.loads(proc.stdout)
        self.assertEqual(doc["Digest"], self.image.digest)
        self.assertEqual(doc["Layers"], self.image.layer_digests)
        self.assertEqual(doc["Architecture"], "amd64")
        self.assertIn("v1", doc.get("RepoTags") or [])

    def test_list_tags(self):
        repo = "itest/skopeo/tags"
        for tag in ("v1", "latest", "0.1.2", "0.1.20"):
            self.push("v1", "%s:%s" % (repo, tag))
        proc = self.skopeo("list-tags", "--tls-verify=false", "--no-creds",
                           "docker://%s/%s" % (self.host, repo))
        doc = json.loads(proc.stdout)
        self.assertEqual(doc["Repository"], "%s/%s" % (self.host, repo))
        self.assertEqual(sorted(doc["Tags"]), ["0.1.2", "0.1.20", "latest", "v1"])

    def test_delete(self):
        repo = "itest/skopeo/delete"
        self.push("v1", repo + ":v1")
        self.skopeo("delete", "--tls-verify=false", "--no-creds",
                    "docker://%s/%s:v1" % (self.host, repo))
        self.assertStatus(self.reg.get_manifest(repo, self.image.digest, method="HEAD"), 404)
        self.assertStatus(self.reg.get_manifest(repo, "v1", method="HEAD"), 404)
        proc = self.skopeo("inspect", "--raw", "--tls-verify=false", "--no-creds",
                           "docker://%s/%s:v1" % (self.host, repo), check=False)
        self.assertNotEqual(proc.returncode, 0)

    def test_docker_schema2_format(self):
        repo = "itest/skopeo/v2s2"
        self.push("v1", repo + ":docker", "--format", "v2s2")
        resp = self.reg.get_manifest(repo, "docker", accept=h.DOCKER_ACCEPT)
        self.assertStatus(resp, 200)
        self.assertHeader(resp, "Content-Type", h.MT_DOCKER_MANIFEST)
        manifest = json.loads(resp.body)
        self.assertEqual(manifest["mediaType"], h.MT_DOCKER_MANIFEST)
        self.assertEqual(manifest["config"]["mediaType"], h.MT_DOCKER_CONFIG)
        self.assertEqual([layer["digest"] for layer in manifest["layers"]],
                         self.image.layer_digests)
        self.assertHeader(resp, "Docker-Content-Digest", h.digest_of(resp.body))
        for digest in self.image.layer_digests:
            self.assertBlob(repo, self.image.blobs[digest])
        proc = self.skopeo("inspect", "--raw", "--tls-verify=false", "--no-creds",
                           "docker://%s/%s:docker" % (self.host, repo))
        self.assertEqual(proc.stdout, resp.body)
        out = self.out_dir("back-v2s2")
        self.pull(repo + ":docker", out, "docker")
        for digest in self.image.layer_digests:
            self.assertEqual(h.read_oci_layout_blob(out, digest), self.image.blobs[digest])


@h.berth_only("storage.sparse_manifests is berth's option")
class SkopeoSparseTest(SkopeoCase):
    """Mirroring one platform: the image of this machine's platform, then the original
    index alone (skopeo --multi-arch index-only), which berth keeps with
    storage.sparse_manifests; skopeo then pulls the index for this platform."""

    server_config = {"storage": {"sparse_manifests": True}}

    def test_index_only_with_one_platform(self):
        repo = "itest/skopeo/sparse"
        amd64 = self.index.children[0]
        h.expect_status(self.reg.push_image(repo, amd64), 201)
        self.push("multi", repo + ":multi", "--multi-arch", "index-only")
        self.assertManifest(repo, "multi", self.index)
        self.assertStatus(self.reg.get_manifest(repo, self.index.children[1].digest), 404)
        out = self.out_dir("back-sparse")
        self.pull(repo + ":multi", out, "amd64", "--override-arch", "amd64", "--override-os",
                  "linux")
        self.assertEqual(self.layout_manifest_digest(out, "amd64"), amd64.digest)
        for digest, data in amd64.blobs.items():
            self.assertEqual(h.read_oci_layout_blob(out, digest), data)


if __name__ == "__main__":
    h.main()
