"""berth import: bundles from berth export (tar, tar.zst), OCI layout directories and
gzip tarballs, and skopeo's oci-archive: output, loaded into a fresh store with identical
digests; a second import publishes nothing; truncated, tampered and incomplete bundles are
refused with the bad entry named and nothing published; an import into a running server is
pulled through /v2 at once."""

import gzip
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import unittest

import berth_harness as h
import bundle_helpers as bh
import clients
import lifegc_helpers as lg

SUMMARY_NEW = "new: "
NOTHING_NEW = "nothing new"


def berth_import(server, *args):
    return h.run_berth(["import"] + [str(a) for a in args], server=server, timeout=120)


class ImportTest(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="berth-bundle-")
        self.addCleanup(shutil.rmtree, self.work, True)
        self.dest = h.Server()
        self.addCleanup(self.dest.cleanup)

    def make_export(self, name="bundle.tar.zst", layer_size=3000):
        """Push the sample images to a source berth and export them; returns (path, images)."""
        src = h.Server()
        self.addCleanup(src.cleanup)
        src.start()
        images = bh.sample_images(layer_size)
        bh.push_sample(src.registry(), "itest/app", images)
        path = os.path.join(self.work, name)
        rc, out = h.run_berth(["export", "itest/app:v1", "itest/app:multi", "-o", path],
                              server=src, timeout=120)
        self.assertEqual(rc, 0, out)
        src.stop()
        return path, images

    def assert_has_sample(self, reg, repo, images, tags=True):
        for name in ("v1", "multi"):
            ref = name if tags else images[name].digest
            resp = h.expect_status(reg.get_manifest(repo, ref, accept=images[name].media_type),
                                   200)
            self.assertEqual(resp.header("Docker-Content-Digest"), images[name].digest)
            self.assertEqual(resp.body, images[name].manifest)
        for digest in bh.all_digests(images["multi"]) | bh.all_digests(images["v1"]):
            h.expect_status(reg.head(reg.manifest_path(repo, digest))
                            if digest in (images["multi"].digest, images["v1"].digest)
                            or digest in {c.digest for c in images["multi"].children}
                            else reg.head_blob(repo, digest), 200)
        for digest, data in images["v1"].blobs.items():
            self.assertEqual(h.expect_status(reg.get_blob(repo, digest), 200).body, data)
        refs = h.expect_status(reg.referrers(repo, images["v1"].digest), 200).json()
        self.assertEqual([m["digest"] for m in refs["manifests"]], [images["sbom"].digest])

    def assert_nothing_published(self):
        self.assertEqual(lg.blob_files(self.dest.root), {})
        uploads = os.path.join(self.dest.root, "uploads")
        self.assertEqual(os.listdir(uploads) if os.path.isdir(uploads) else [], [])
        self.dest.start()
        cat = h.expect_status(self.dest.registry().catalog(), 200).json()
        self.assertEqual(cat["repositories"], [])

    def test_round_trip_into_a_fresh_berth(self):
        path, images = self.make_export()
        rc, out = berth_import(self.dest, path)
        self.assertEqual(rc, 0, out)
        self.assertIn("3 images in 1 repositories", out)
        self.assertIn(SUMMARY_NEW, out)
        self.assertIn("2 tags set", out)
        # idempotent: the second import publishes nothing and says so
        rc, out = berth_import(self.dest, path)
        self.assertEqual(rc, 0, out)
        self.assertIn(NOTHING_NEW, out)
        self.dest.start()
        self.assert_has_sample(self.dest.registry(), "itest/app", images)

    def test_directory_and_gzip_with_repo(self):
        path, images = self.make_export("bundle.tar")
        layout = os.path.join(self.work, "layout")
        with tarfile.open(path) as tar:
            tar.extractall(layout)
        gz = os.path.join(self.work, "bundle.tar.gz")
        with open(path, "rb") as f, open(gz, "wb") as g:
            g.write(gzip.compress(f.read()))
        rc, out = berth_import(self.dest, "--repo", "copy/dir", layout)
        self.assertEqual(rc, 0, out)
        rc, out = berth_import(self.dest, "--repo", "copy/gz", gz)
        self.assertEqual(rc, 0, out)
        # the blobs were in the store already: linked, not written again
        self.assertIn("0 blobs (0 bytes)", out)
        self.dest.start()
        for repo in ("copy/dir", "copy/gz"):
            self.assert_has_sample(self.dest.registry(), repo, images)

    def test_skopeo_oci_archive(self):
        images = bh.sample_images()
        layout = os.path.join(self.work, "layout")
        h.write_oci_layout(layout, {"v1": images["v1"], "multi": images["multi"]})
        skopeo = clients.Skopeo(self.work)
        archives = []
        for tag in ("v1", "multi"):
            out = os.path.join(self.work, "%s.tar" % tag)
            skopeo.run("copy", "--all", "--preserve-digests", "oci:%s:%s" % (layout, tag),
                       "oci-archive:%s:%s" % (out, tag))
            archives.append(out)
        # skopeo's ref.name is a bare tag: the repository must be given
        rc, out = berth_import(self.dest, archives[0])
        self.assertEqual(rc, 1, out)
        self.assertIn("--repo", out)
        rc, out = berth_import(self.dest, "--repo", "from/skopeo", *archives)
        self.assertEqual(rc, 0, out)
        self.dest.start()
        reg = self.dest.registry()
        for tag in ("v1", "multi"):
            resp = h.expect_status(reg.get_manifest("from/skopeo", tag,
                                                    accept=images[tag].media_type), 200)
            self.assertEqual(resp.header("Docker-Content-Digest"), images[tag].digest)
        for child in images["multi"].children:
            h.expect_status(reg.get_manifest("from/skopeo", child.digest,
                                             accept=child.media_type), 200)

    def test_ref_names_with_a_host_in_front(self):
        # a registry host in front goes; "../" is no host's (it was dropped as one, and
        # "../team/app:v1" was imported into team/app)
        images = bh.sample_images()
        for ref, repo in (("registry.example.com:5000/team/app:v1", "team/app"),
                          ("localhost/team/app:v1", "team/app"),
                          ("../team/app:v1", None), ("./team/app:v1", None)):
            with self.subTest(ref=ref):
                layout = os.path.join(self.work, "layout-%d" % len(os.listdir(self.work)))
                h.write_oci_layout(layout, {ref: images["v1"]})
                rc, out = berth_import(self.dest, layout)
                if repo is None:
                    self.assertEqual(rc, 1, out)
                    self.assertIn("is not a repository name", out)
                else:
                    self.assertEqual(rc, 0, out)
        self.dest.start()
        cat = h.expect_status(self.dest.registry().catalog(), 200).json()
        self.assertEqual(cat["repositories"], ["team/app"])

    def test_a_second_index_or_an_unknown_layout_version_is_refused(self):
        # a tar with index.json twice (tar -r): the second silently won before
        path, images = self.make_export("bundle.tar")
        with tarfile.open(path, "a") as tar:
            data = b'{"schemaVersion":2,"manifests":[]}'
            info = tarfile.TarInfo("index.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        rc, out = berth_import(self.dest, path)
        self.assertEqual(rc, 1, out)
        self.assertIn("index.json: more than one in the bundle", out)
        # a layout version this berth does not read (any text naming one passed before)
        layout = os.path.join(self.work, "layout")
        h.write_oci_layout(layout, {"itest/app:v1": images["v1"]})
        with open(os.path.join(layout, "oci-layout"), "w") as f:
            f.write('{"imageLayoutVersion":"9.9.0"}')
        rc, out = berth_import(self.dest, layout)
        self.assertEqual(rc, 1, out)
        self.assertIn("imageLayoutVersion '9.9.0' is not one this berth reads", out)
        with open(os.path.join(layout, "oci-layout"), "w") as f:
            f.write('{"note":"imageLayoutVersion"}')
        rc, out = berth_import(self.dest, layout)
        self.assertEqual(rc, 1, out)
        self.assertIn("oci-layout: no imageLayoutVersion", out)
        self.assert_nothing_published()

    def test_a_bundle_that_names_no_image(self):
        # its blobs are verified but not published; it said "nothing new (the store had all
        # of it)" of blobs the store had never seen
        path, images = self.make_export("bundle.tar")
        layout = os.path.join(self.work, "layout")
        with tarfile.open(path) as tar:
            tar.extractall(layout)
        with open(os.path.join(layout, "index.json"), "w") as f:
            f.write('{"schemaVersion":2,"manifests":[]}')
        rc, out = berth_import(self.dest, layout)
        self.assertEqual(rc, 0, out)
        self.assertIn("0 images in 0 repositories", out)
        self.assertIn("nothing imported: the bundle names no image", out)
        self.assertNotIn(NOTHING_NEW, out)
        self.assert_nothing_published()

    def test_a_manifest_over_the_limit_is_named_as_such(self):
        # it was refused as "not a manifest"
        dest = h.Server(config={"storage": {"manifest_max_bytes": 1024}})
        self.addCleanup(dest.cleanup)
        img = h.build_image(layer_count=12, layer_size=64)
        self.assertGreater(len(img.manifest), 1024)
        layout = os.path.join(self.work, "layout")
        h.write_oci_layout(layout, {"itest/big:v1": img})
        rc, out = berth_import(dest, layout)
        self.assertEqual(rc, 1, out)
        self.assertIn("a manifest of %d bytes, over storage.manifest_max_bytes (1024)"
                      % len(img.manifest), out)

    def test_truncated_bundle_is_refused(self):
        # layers of 2 MiB of random bytes, so that the cut falls inside a blob entry
        for name in ("bundle.tar", "bundle.tar.zst"):
            path, images = self.make_export(name, layer_size=2 << 20)
            with open(path, "rb") as f:
                data = f.read()
            bad = os.path.join(self.work, "cut-" + name)
            with open(bad, "wb") as f:
                f.write(data[: len(data) // 2])
            rc, out = berth_import(self.dest, bad)
            self.assertEqual(rc, 1, out)
            self.assertIn("refused", out)
            self.assertIn("truncated", out)
            layers = ["blobs/sha256/" + d.split(":")[1] for d in images["v1"].layer_digests]
            self.assertTrue(any(layer + ":" in out for layer in layers), out)
        self.assert_nothing_published()

    def test_tampered_blob_is_refused(self):
        path, images = self.make_export("bundle.tar")
        layer = images["v1"].layer_digests[1]
        entry = "blobs/sha256/" + layer.split(":")[1]
        with tarfile.open(path) as tar:
            offset = tar.getmember(entry).offset_data
        with open(path, "r+b") as f:
            f.seek(offset + 10)
            byte = f.read(1)
            f.seek(offset + 10)
            f.write(bytes([byte[0] ^ 0xFF]))
        rc, out = berth_import(self.dest, path)
        self.assertEqual(rc, 1, out)
        self.assertIn(entry + ": the content does not match its digest", out)
        self.assert_nothing_published()

    def test_a_fifo_in_a_layout_directory_is_refused(self):
        # the open of a FIFO blocked: the import hung until killed
        path, images = self.make_export("bundle.tar")
        layout = os.path.join(self.work, "layout")
        with tarfile.open(path) as tar:
            tar.extractall(layout)
        entry = "blobs/sha256/" + images["v1"].config_digest.split(":")[1]
        os.unlink(os.path.join(layout, entry))
        os.mkfifo(os.path.join(layout, entry))
        rc, out = h.run_berth(["import", layout], server=self.dest, timeout=30)
        self.assertEqual(rc, 1, out)
        self.assertIn(entry + ": not a regular file", out)
        self.assert_nothing_published()

    def test_missing_blob_is_refused(self):
        path, images = self.make_export("bundle.tar")
        config = images["v1"].config_digest
        entry = "blobs/sha256/" + config.split(":")[1]
        holed = os.path.join(self.work, "holed.tar")
        with tarfile.open(path) as src, tarfile.open(holed, "w") as dst:
            for member in src.getmembers():
                if member.name != entry:
                    dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        rc, out = berth_import(self.dest, holed)
        self.assertEqual(rc, 1, out)
        self.assertIn(entry + ": missing from the bundle", out)
        rc, out = berth_import(self.dest, os.path.join(self.work, "nonexistent.tar"))
        self.assertEqual(rc, 1, out)
        not_layout = os.path.join(self.work, "plain.tar")
        with tarfile.open(not_layout, "w") as tar:
            info = tarfile.TarInfo("hello.txt")
            info.size = 2
            tar.addfile(info, io.BytesIO(b"hi"))
        rc, out = berth_import(self.dest, not_layout)
        self.assertEqual(rc, 1, out)
        self.assertIn("no index.json", out)
        self.assert_nothing_published()

    def test_deeply_nested_index_is_refused(self):
        image = h.build_image(layer_count=1)
        for _ in range(10):
            image = h.Index([image])
        layout = os.path.join(self.work, "deep")
        h.write_oci_layout(layout, {"deep": image})
        rc, out = berth_import(self.dest, "--repo", "deep/one", layout)
        self.assertEqual(rc, 1, out)
        self.assertIn("indexes nested more than 8 deep", out)
        self.assert_nothing_published()

    def test_import_into_a_running_server(self):
        path, images = self.make_export()
        self.dest.start()
        reg = self.dest.registry()
        h.expect_status(reg.push_image("other/repo", h.build_image(), tag="before"), 201)
        rc, out = berth_import(self.dest, path)
        self.assertEqual(rc, 0, out)
        self.assert_has_sample(reg, "itest/app", images)
        tags = h.expect_status(reg.tags("itest/app"), 200).json()
        self.assertEqual(sorted(tags["tags"]), ["multi", "v1"])
        # the ECR API sees the same images at once
        ecr = clients.ecr_client(self.dest, *clients.DUMMY_KEY)
        details = ecr.describe_images(repositoryName="itest/app")["imageDetails"]
        by_digest = {d["imageDigest"]: sorted(d.get("imageTags", [])) for d in details}
        self.assertEqual(by_digest[images["v1"].digest], ["v1"])
        self.assertEqual(by_digest[images["multi"].digest], ["multi"])
        # the server goes on accepting pushes
        h.expect_status(reg.push_image("other/repo", h.build_image(), tag="after"), 201)
        self.dest.stop()

    def test_an_immutable_tag_refuses_the_import_before_anything_is_published(self):
        # the bundle holds v1, then multi; the store keeps tags immutable and multi points
        # at another image: before, v1 was published and then the import was "refused"
        path, images = self.make_export()
        self.dest.start()
        reg = self.dest.registry()
        ecr = clients.ecr_client(self.dest, *clients.DUMMY_KEY)
        ecr.create_repository(repositoryName="itest/app", imageTagMutability="IMMUTABLE")
        other = h.build_image()
        h.expect_status(reg.push_image("itest/app", other, tag="multi"), 201)
        rc, out = berth_import(self.dest, path)
        self.assertEqual(rc, 1, out)
        self.assertIn("itest/app:multi: The image tag 'multi' already exists", out)
        self.assertIn("Nothing was imported.", out)
        self.assertEqual(h.expect_status(reg.tags("itest/app"), 200).json()["tags"], ["multi"])
        h.expect_status(reg.get_manifest("itest/app", images["v1"].digest,
                                         accept=images["v1"].media_type), 404)
        resp = h.expect_status(reg.get_manifest("itest/app", "multi"), 200)
        self.assertEqual(resp.header("Docker-Content-Digest"), other.digest)
        # with the tag free, the same bundle imports whole
        ecr.batch_delete_image(repositoryName="itest/app", imageIds=[{"imageTag": "multi"}])
        rc, out = berth_import(self.dest, path)
        self.assertEqual(rc, 0, out)
        self.assert_has_sample(reg, "itest/app", images)
        self.dest.stop()

    def test_killed_import_runs_again(self):
        path, images = self.make_export()
        rc, out = h.run_berth(["import", path], server=self.dest, timeout=120,
                              env={"BERTH_TEST_CRASH_AT": "import-step-published"})
        self.assertEqual(rc, -9, out)
        # killed after its first blob was published, before any manifest: no image yet
        self.assertEqual(len(lg.blob_files(self.dest.root)), 1)
        uploads = os.path.join(self.dest.root, "uploads")
        left = set(os.listdir(uploads))  # the killed run's stages (garbage collection's)
        self.assertTrue(left)
        rc, out = berth_import(self.dest, path)
        self.assertEqual(rc, 0, out)
        # the run again publishes the rest: every manifest, every blob but the first
        self.assertIn("new: 5 manifests, 8 blobs", out)
        self.assertIn("2 tags set", out)
        self.assertEqual(set(os.listdir(uploads)), left)  # nothing of its own left
        rc, out = berth_import(self.dest, path)
        self.assertEqual(rc, 0, out)
        self.assertIn(NOTHING_NEW, out)
        self.dest.start()
        self.assert_has_sample(self.dest.registry(), "itest/app", images)
    def test_progress_line_on_a_terminal(self):
        path, _ = self.make_export()
        cmd = [h.find_berth_bin(), "import", path, "--root", self.dest.root]
        if self.dest.config_file() is not None:
            cmd += ["--config", self.dest.config_file()]
        # script(1) (util-linux, essential in Debian) gives berth a terminal
        proc = subprocess.run(["script", "-qec", " ".join(cmd), "/dev/null"],
                              capture_output=True, timeout=120, stdin=subprocess.DEVNULL,
                              env=dict(os.environ, **self.dest.env))
        text = proc.stdout.decode("utf-8", "replace")
        self.assertEqual(proc.returncode, 0, text)
        # one line rewritten in place, ending with the totals, then the summary
        self.assertRegex(text, r"\rimport: 16 entries verified, [0-9.]+ MiB\r?\nimport: ")
        self.assertIn("new: 5 manifests, 9 blobs", text)
        # not on a terminal: the summary only
        rc, out = berth_import(self.dest, path)
        self.assertEqual(rc, 0, out)
        self.assertNotIn("entries verified", out)
        self.assertIn(NOTHING_NEW, out)


if __name__ == "__main__":
    unittest.main()
