"""berth export: images of the store (a tag, a multi-arch index, a referrer) written as an
OCI image layout in a tar or tar.zst, read back by Python and by skopeo; errors leave no
file behind."""

import os
import stat
import subprocess
import threading
import unittest

import berth_harness as h
import bundle_helpers as bh
import clients


class ExportTest(unittest.TestCase):
    def setUp(self):
        self.server = h.Server()
        self.addCleanup(self.server.cleanup)
        self.server.start()
        self.reg = self.server.registry()
        self.repo = "itest/app"
        self.images = bh.sample_images()
        bh.push_sample(self.reg, self.repo, self.images)

    def export(self, *args):
        return h.run_berth(["export"] + list(args), server=self.server, timeout=120)

    def check_bundle(self, path):
        files = bh.read_bundle(path)
        self.assertEqual(files["oci-layout"], b'{"imageLayoutVersion":"1.0.0"}')
        bh.check_blobs(self, files)
        present = {"sha256:" + n.split("/")[-1] for n in files if n.startswith("blobs/")}
        for name in ("v1", "multi", "sbom"):
            self.assertLessEqual(bh.all_digests(self.images[name]), present, name)
        entries = bh.index_entries(files)
        by_digest = {e["digest"]: e for e in entries}
        v1, multi, sbom = self.images["v1"], self.images["multi"], self.images["sbom"]
        self.assertEqual(by_digest[v1.digest]["annotations"][bh.REF_NAME], "itest/app:v1")
        self.assertEqual(by_digest[multi.digest]["annotations"][bh.REF_NAME], "itest/app:multi")
        self.assertEqual(by_digest[multi.digest]["mediaType"], h.MT_OCI_INDEX)
        # the referrer is listed, with its repository and no tag
        self.assertNotIn(bh.REF_NAME, by_digest[sbom.digest]["annotations"])
        self.assertEqual(by_digest[sbom.digest]["annotations"][bh.REPOSITORY], self.repo)
        # the children of the index are in the bundle, not in index.json
        for child in multi.children:
            self.assertNotIn(child.digest, by_digest)
        self.assertEqual(len(entries), 3)
        return files

    def test_tar_and_zstd(self):
        for name in ("bundle.tar", "bundle.tar.zst"):
            path = os.path.join(self.server.tmp, name)
            rc, out = self.export("itest/app:v1", "itest/app:multi", "-o", path)
            self.assertEqual(rc, 0, out)
            self.assertIn("export: 3 images", out)
            with open(path, "rb") as f:
                magic = f.read(4)
            self.assertEqual(magic == b"\x28\xb5\x2f\xfd", name.endswith(".zst"), name)
            self.check_bundle(path)
            self.assertEqual([n for n in os.listdir(self.server.tmp) if ".tmp-" in n], [])

    def test_by_digest_without_a_server(self):
        self.server.stop()
        path = os.path.join(self.server.tmp, "d.tar")
        v1 = self.images["v1"]
        rc, out = self.export("itest/app@" + v1.digest, "-o", path)
        self.assertEqual(rc, 0, out)
        files = bh.read_bundle(path)
        bh.check_blobs(self, files)
        entries = bh.index_entries(files)
        self.assertEqual(entries[0]["digest"], v1.digest)
        self.assertEqual(entries[0]["annotations"], {bh.REPOSITORY: self.repo})
        self.assertEqual(entries[1]["digest"], self.images["sbom"].digest)

    def test_skopeo_reads_the_bundle(self):
        path = os.path.join(self.server.tmp, "bundle.tar")
        rc, out = self.export("itest/app:multi", "itest/app:v1", "-o", path)
        self.assertEqual(rc, 0, out)
        skopeo = clients.Skopeo(self.server.tmp)
        for tag in ("multi", "v1"):
            skopeo.run("copy", "--all", "--preserve-digests", "--dest-tls-verify=false",
                       "--dest-no-creds", "oci-archive:%s:itest/app:%s" % (path, tag),
                       "docker://127.0.0.1:%d/copied:%s" % (self.server.port, tag))
            resp = h.expect_status(self.reg.get_manifest("copied", tag), 200)
            self.assertEqual(resp.header("Docker-Content-Digest"), self.images[tag].digest)

    def test_errors_leave_no_file(self):
        path = os.path.join(self.server.tmp, "bad.tar")
        rc, out = self.export("itest/app:nope", "-o", path)
        self.assertEqual(rc, 1, out)
        self.assertIn("itest/app:nope", out)
        rc, out = self.export("itest/app:v1", "-o", os.path.join(self.server.tmp, "no", "x.tar"))
        self.assertEqual(rc, 1, out)
        self.assertEqual(self.export("itest/app:v1")[0], 2)
        self.assertEqual(self.export("-o", path)[0], 2)
        self.assertEqual([n for n in os.listdir(self.server.tmp) if n.startswith("bad")], [])

    def test_a_killed_runs_temporary_file_is_removed(self):
        """An export killed while writing leaves <out>.tmp-<pid>-<random> beside the file it
        replaces; the next export to it removes those whose process is gone (before, only
        berth mirror did, and beside -o rather than a link's file), and leaves a live one's."""
        with subprocess.Popen(["true"]) as dead:
            dead.wait()  # a pid whose process is gone
        real = os.path.join(self.server.tmp, "real.tar")
        with open(real, "wb") as f:
            f.write(b"the bundle before")
        link = os.path.join(self.server.tmp, "link.tar")
        os.symlink(real, link)
        stale = [real + ".tmp-%d-a1B2c3" % dead.pid, real + ".tmp-%d" % dead.pid]
        live = real + ".tmp-%d-z9Y8x7" % os.getpid()
        for name in stale + [live]:
            with open(name, "wb") as f:
                f.write(b"half a bundle")
        rc, out = self.export("itest/app:v1", "itest/app:multi", "-o", link)
        self.assertEqual(rc, 0, out)
        self.check_bundle(real)
        self.assertEqual(out.count("event=bundle_stale_removed"), 2, out)
        self.assertEqual(sorted(n for n in os.listdir(self.server.tmp) if ".tmp-" in n),
                         [os.path.basename(live)])

    def test_links_fifos_and_devices_are_written_through(self):
        # a symbolic link: the file it names gets the bundle and the link stays (before:
        # the link was renamed over, its file never written)
        target = os.path.join(self.server.tmp, "real.tar")
        with open(target, "wb") as f:
            f.write(b"old")
        link = os.path.join(self.server.tmp, "link.tar")
        os.symlink(target, link)
        rc, out = self.export("itest/app:v1", "itest/app:multi", "-o", link)
        self.assertEqual(rc, 0, out)
        self.assertTrue(os.path.islink(link))
        self.assertEqual(os.readlink(link), target)
        self.check_bundle(target)
        os.unlink(target)
        rc, out = self.export("itest/app:v1", "-o", link)  # a link to nothing
        self.assertEqual(rc, 1, out)
        self.assertIn("a symbolic link to no file", out)
        self.assertFalse(os.path.exists(target))
        # a FIFO (as a device or /dev/stdout's pipe): read from, and still a FIFO after
        fifo = os.path.join(self.server.tmp, "pipe")
        os.mkfifo(fifo)
        got = []
        reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()),
                                  daemon=True)
        reader.start()
        rc, out = self.export("itest/app:v1", "itest/app:multi", "-o", fifo)
        reader.join(60)
        self.assertEqual(rc, 0, out)
        self.assertTrue(stat.S_ISFIFO(os.lstat(fifo).st_mode))
        copy = os.path.join(self.server.tmp, "from-fifo.tar")
        with open(copy, "wb") as f:
            f.write(got[0])
        self.check_bundle(copy)
        # a directory is refused
        rc, out = self.export("itest/app:v1", "-o", self.server.tmp)
        self.assertEqual(rc, 1, out)
        self.assertIn("is a directory", out)
        self.assertEqual([n for n in os.listdir(self.server.tmp) if ".tmp-" in n], [])


if __name__ == "__main__":
    unittest.main()
