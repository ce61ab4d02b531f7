"""berth serve with its metadata on PostgreSQL (meta.backend postgres): skopeo
pushes an image and an index and pulls them back byte for byte; the rows are
in PostgreSQL, not in a berth.db; after a restart (clean, then kill -9)
everything is still there. The server is a real PostgreSQL started by
pg_fixture.py in a temporary directory."""

import os
import shutil
import tempfile
import unittest

import berth_harness as h
import clients as c
from pg_case import PostgresTestCase


@unittest.skipUnless(h.IS_BERTH, "berth's own backend")
class PostgresServeTest(PostgresTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.work = tempfile.mkdtemp(prefix="berth-pg-skopeo-")
        cls.addClassCleanup(shutil.rmtree, cls.work, True)
        cls.sk = c.Skopeo(cls.work)
        cls.image = h.build_image(layer_count=3, layer_size=256 * 1024)
        cls.index = h.Index([h.build_image(layer_count=2, arch=a) for a in ("amd64", "arm64")],
                            platforms=[{"os": "linux", "architecture": "amd64"},
                                       {"os": "linux", "architecture": "arm64"}])
        cls.layout = os.path.join(cls.work, "src")
        h.write_oci_layout(cls.layout, {"v1": cls.image, "multi": cls.index})

    @property
    def host(self):
        return "127.0.0.1:%d" % self.server.port

    def push(self, src_ref, dest, *extra):
        self.sk.run("copy", "--dest-tls-verify=false", "--dest-no-creds", *extra,
                    "oci:%s:%s" % (self.layout, src_ref), "docker://%s/%s" % (self.host, dest))

    def pull_same(self, src, ref, image, *extra):
        """skopeo copies src back into a fresh layout holding image byte for byte."""
        out = os.path.join(self.work, "out")
        shutil.rmtree(out, ignore_errors=True)
        self.sk.run("copy", "--src-tls-verify=false", "--src-no-creds", *extra,
                    "docker://%s/%s" % (self.host, src), "oci:%s:%s" % (out, ref))
        self.assertEqual(h.read_oci_layout_blob(out, image.digest), image.manifest)
        for child in image.children:
            self.assertEqual(h.read_oci_layout_blob(out, child.digest), child.manifest)
            for digest, data in child.blobs.items():
                self.assertEqual(h.read_oci_layout_blob(out, digest), data)
        for digest, data in image.blobs.items():
            self.assertEqual(h.read_oci_layout_blob(out, digest), data)

    def test_push_pull_restart(self):
        repo = "itest/postgres/app"
        self.push("v1", repo + ":v1")
        self.push("multi", repo + ":multi", "--all")
        self.pull_same(repo + ":v1", "v1", self.image)
        self.pull_same(repo + ":multi", "multi", self.index, "--all")

        # the metadata is PostgreSQL's, and no SQLite file was made
        self.assertEqual(self.pg.psql("SELECT name FROM repositories ORDER BY name").split(),
                         [repo])
        self.assertEqual(self.pg.psql("SELECT name FROM tags ORDER BY name").split(),
                         ["multi", "v1"])
        self.assertEqual(self.pg.psql("SELECT version FROM berth_schema").strip(),
                         self.pg.psql("SELECT max(version) FROM berth_schema").strip())
        self.assertFalse(os.path.exists(os.path.join(self.server.root, "berth.db")))

        for restart in (lambda: (self.server.stop(), self.server.start(reuse_port=True)),
                        self.server.restart_after_crash):
            restart()
            reg = self.server.registry()
            r = reg.get("/v2/_catalog")
            self.assertEqual(r.status, 200, r.body)
            self.assertIn(repo, r.json()["repositories"])
            r = reg.get("/v2/%s/tags/list" % repo)
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(sorted(r.json()["tags"]), ["multi", "v1"])
            self.pull_same("%s@%s" % (repo, self.image.digest), "v1", self.image)
            self.pull_same(repo + ":multi", "multi", self.index, "--all")
        self.server.stop()


if __name__ == "__main__":
    unittest.main()
