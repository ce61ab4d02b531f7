"""The backend marker (<root>/berth.backend): a data directory whose metadata lives in
PostgreSQL is refused (exit 2, nothing created or deleted) by `berth gc` and `berth serve`
run without the server's configuration, which would otherwise open it with a new, empty
SQLite database and see every blob as orphaned; a root from before the marker is refused by
`berth gc` and `berth serve` too (no new database over published blobs or the S3 backend's
local state), and adopts the marker when opened with its own configuration. The PostgreSQL
server is pg_fixture.py's."""

import os
import unittest

import berth_harness as h
from pg_fixture import PostgresServer, berth_env

MARKER = "berth.backend"


def blob_files(root):
    out = {}
    for d, _, files in os.walk(os.path.join(root, "blobs")):
        for f in files:
            p = os.path.join(d, f)
            out[p] = os.path.getsize(p)
    return out


def read(path):
    with open(path) as f:
        return f.read()


def gc(root, env=None):
    full = {"BERTH_GC_GRACE_SECONDS": "0"}
    full.update(env or {})
    return h.run_berth(["gc", "--root", root], env=full, timeout=120)


@unittest.skipUnless(h.IS_BERTH, "berth's own backend")
class BackendGuardTest(unittest.TestCase):
    def push_and_stop(self, server):
        server.start()
        reg = server.registry()
        reg.push_image("itest/guard/app", h.build_image(layer_count=2), tag="v1")
        server.stop()
        blobs = blob_files(server.root)
        self.assertGreaterEqual(len(blobs), 3)
        return blobs

    def test_postgres_root_without_its_config(self):
        pg = PostgresServer().start()
        self.addCleanup(pg.stop)
        server = h.Server(env=berth_env(pg.dsn), config={"gc": {"enabled": False}})
        self.addCleanup(server.cleanup)
        blobs = self.push_and_stop(server)
        root = server.root
        marker = os.path.join(root, MARKER)
        self.assertIn("meta.backend=postgres\n", read(marker))
        self.assertIn("storage.backend=filesystem\n", read(marker))

        # berth gc without the PostgreSQL configuration: refused, naming both backends
        rc, out = gc(root)
        self.assertEqual(rc, 2, out)
        self.assertIn("meta.backend postgres", out)
        self.assertIn("meta.backend sqlite", out)
        self.assertFalse(os.path.exists(os.path.join(root, "berth.db")))
        self.assertEqual(blob_files(root), blobs)

        # berth serve without it does not start
        rc, out = h.run_berth(["serve", "--root", root, "--listen", "127.0.0.1:0"], timeout=60)
        self.assertEqual(rc, 2, out)
        self.assertIn("meta.backend postgres", out)
        self.assertFalse(os.path.exists(os.path.join(root, "berth.db")))

        # a root from before the marker: berth gc still refuses a new database over its
        # published blobs, and writes no marker
        os.unlink(marker)
        rc, out = gc(root)
        self.assertEqual(rc, 2, out)
        self.assertIn("holds published blobs", out)
        self.assertFalse(os.path.exists(os.path.join(root, "berth.db")))
        self.assertFalse(os.path.exists(marker))
        self.assertEqual(blob_files(root), blobs)
        # and so does berth serve: exit 2, nothing created
        before = sorted(os.listdir(root))
        rc, out = h.run_berth(["serve", "--root", root, "--listen", "127.0.0.1:0"], timeout=60)
        self.assertEqual(rc, 2, out)
        self.assertIn("holds published blobs", out)
        self.assertEqual(sorted(os.listdir(root)), before)
        self.assertEqual(blob_files(root), blobs)

        # with its own configuration it works, keeps every (referenced) blob, and the
        # root adopts the marker
        rc, out = gc(root, berth_env(pg.dsn))
        self.assertEqual(rc, 0, out)
        self.assertIn("gc: 0 blobs reclaimed", out)
        self.assertEqual(blob_files(root), blobs)
        self.assertIn("meta.backend=postgres\n", read(marker))

    def test_s3_root_from_before_the_marker(self):
        """A PostgreSQL + S3 root from before the marker has no berth.db and no blobs under
        it, only the S3 backend's local state (s3cache: manifests and configs kept locally;
        s3mpu: multipart uploads under way). Without its configuration berth serve refuses
        it; a SQLite + S3 one (berth.db there) is refused with the filesystem backend."""
        server = h.Server()
        self.addCleanup(server.cleanup)
        root = server.root
        os.makedirs(os.path.join(root, "s3cache"))
        os.makedirs(os.path.join(root, "s3mpu"))
        with open(os.path.join(root, "s3cache", "sha256-" + "ab" * 32), "wb") as f:
            f.write(b"{}")
        before = sorted(os.listdir(root))
        rc, out = h.run_berth(["serve", "--root", root, "--listen", "127.0.0.1:0"], timeout=60)
        self.assertEqual(rc, 2, out)
        self.assertIn("S3 blob backend's state", out)
        self.assertEqual(sorted(os.listdir(root)), before)
        rc, out = gc(root)
        self.assertEqual(rc, 2, out)
        self.assertEqual(sorted(os.listdir(root)), before)
        # berth.db there: SQLite + S3; the filesystem backend is refused all the same
        open(os.path.join(root, "berth.db"), "wb").close()
        before = sorted(os.listdir(root))
        rc, out = h.run_berth(["serve", "--root", root, "--listen", "127.0.0.1:0"], timeout=60)
        self.assertEqual(rc, 2, out)
        self.assertIn("storage.backend filesystem", out)
        self.assertEqual(sorted(os.listdir(root)), before)

    def test_sqlite_root_without_marker_keeps_working(self):
        server = h.Server(config={"gc": {"enabled": False}})
        self.addCleanup(server.cleanup)
        blobs = self.push_and_stop(server)
        root = server.root
        marker = os.path.join(root, MARKER)
        self.assertIn("meta.backend=sqlite\n", read(marker))
        os.unlink(marker)
        rc, out = gc(root)
        self.assertEqual(rc, 0, out)
        self.assertEqual(blob_files(root), blobs)
        self.assertIn("meta.backend=sqlite\n", read(marker))
        # now a PostgreSQL or S3 configuration over it is refused before connecting
        rc, out = gc(root, berth_env("host=/nonexistent dbname=x"))
        self.assertEqual(rc, 2, out)
        self.assertIn("meta.backend sqlite", out)
        self.assertIn("meta.backend postgres", out)
        rc, out = gc(root, {"BERTH_STORAGE_BACKEND": "s3",
                            "BERTH_STORAGE_S3_ENDPOINT": "http://127.0.0.1:1",
                            "BERTH_STORAGE_S3_REGION": "us-east-1",
                            "BERTH_STORAGE_S3_BUCKET": "b",
                            "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"})
        self.assertEqual(rc, 2, out)
        self.assertIn("storage.backend filesystem", out)
        self.assertIn("storage.backend s3", out)
        self.assertEqual(blob_files(root), blobs)
        # and the server starts again on it
        server.start(reuse_port=True)
        self.assertEqual(server.registry().get("/v2/itest/guard/app/tags/list").status, 200)
        server.stop()


if __name__ == "__main__":
    unittest.main()
