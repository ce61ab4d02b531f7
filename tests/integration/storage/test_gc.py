"""Garbage collection on the real server: `berth gc [--dry-run]` next to a running server,
the grace window, blob files left without a row, and kill -9 in the middle of a pass over
many blobs (after the restart the store is consistent and the next pass finishes)."""

import hashlib
import os
import random
import re
import sqlite3
import time
import unittest

import berth_harness as h
import lifegc_helpers as lg

GC_LINE = re.compile(r"^gc(?: \(dry run\))?: (\d+) blobs (?:would be )?reclaimed, (\d+) bytes; "
                     r"(\d+) orphan files (?:would be )?removed, (\d+) bytes; (\d+) uploads",
                     re.M)


def run_gc(root, *args, grace=None):
    env = {} if grace is None else {"BERTH_GC_GRACE_SECONDS": str(grace)}
    rc, out = h.run_berth(["gc", "--root", root] + list(args), env=env, timeout=120)
    match = GC_LINE.search(out)
    if rc != 0 or match is None:
        raise AssertionError("berth gc failed (%d):\n%s" % (rc, out[-3000:]))
    return tuple(int(x) for x in match.groups()), out


class GcCommandTest(unittest.TestCase):
    """berth gc on the root of a running server (GC in the server itself disabled)."""

    def setUp(self):
        self.server = h.Server(config={"gc": {"enabled": False}})
        self.addCleanup(self.server.cleanup)
        self.server.start()
        self.reg = self.server.registry()

    def test_gc_next_to_a_running_server(self):
        root = self.server.root
        repo = "itest/gc-cli"
        keep = lg.distinct_image(layer_size=4096)
        drop = lg.distinct_image(layer_size=4096)
        h.expect_status(self.reg.push_image(repo, keep, tag="keep"), 201)
        h.expect_status(self.reg.push_image(repo, drop, tag="drop"), 201)
        abandoned = h.random_bytes(3000)  # uploaded, never used by a manifest
        self.reg.ensure_blob(repo, abandoned)
        h.expect_status(self.reg.delete(self.reg.manifest_path(repo, drop.digest)), 202)
        drop_digests = set(drop.blobs) | {drop.digest}
        drop_bytes = sum(len(b) for b in drop.blobs.values()) + len(drop.manifest)

        # within the default one-hour grace window nothing goes
        (blobs, size, orphans, _, _), _ = run_gc(root)
        self.assertEqual((blobs, size, orphans), (0, 0, 0))
        # with a zero window: the dry run reports, changes nothing
        time.sleep(0.01)
        (blobs, size, _, _, _), out = run_gc(root, "--dry-run", grace=0)
        self.assertEqual(blobs, len(drop_digests) + 1, out)
        self.assertEqual(size, drop_bytes + len(abandoned))
        self.assertTrue(drop_digests <= set(lg.blob_files(root)))
        # the real pass
        (blobs, size, _, _, _), out = run_gc(root, grace=0)
        self.assertEqual(blobs, len(drop_digests) + 1, out)
        self.assertEqual(size, drop_bytes + len(abandoned))
        self.assertIn("write transactions, longest", out)
        files = set(lg.blob_files(root))
        self.assertFalse(drop_digests & files)
        self.assertNotIn(h.digest_of(abandoned), files)
        self.assertEqual(lg.trash_files(root), [])
        # the running server still serves the kept image, and forgot the collected blob
        self.assertEqual(self.reg.get_manifest(repo, "keep").body, keep.manifest)
        for digest, data in keep.blobs.items():
            self.assertEqual(self.reg.get_blob(repo, digest).body, data)
        self.assertEqual(self.reg.head_blob(repo, h.digest_of(abandoned)).status, 404)
        # and can take the same layer again
        self.reg.ensure_blob(repo, abandoned)
        self.assertEqual(self.reg.get_blob(repo, h.digest_of(abandoned)).body, abandoned)
        rc, out = h.run_berth(["gc", "--root", root, "--bogus"])
        self.assertEqual(rc, 2, out)
        self.server.stop()

    def test_orphan_blob_file(self):
        """A blob file without a row (a crash between publish and commit) goes once it is
        older than the grace window; a file with a row stays however old."""
        root = self.server.root
        data = b"left behind by a crash"
        digest = h.digest_of(data)
        hexpart = h.digest_hex(digest)
        path = os.path.join(root, "blobs", "sha256", hexpart[:2], hexpart)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        (_, _, orphans, _, _), _ = run_gc(root)
        self.assertEqual(orphans, 0)
        self.assertTrue(os.path.exists(path))
        old = time.time() - 7200
        os.utime(path, (old, old))
        (_, _, orphans, orphan_bytes, _), _ = run_gc(root)
        self.assertEqual((orphans, orphan_bytes), (1, len(data)))
        self.assertFalse(os.path.exists(path))
        self.server.stop()

    def test_blobs_a_killed_pass_moved_aside_are_served(self):
        """A `berth gc` killed beside the server between moving garbage to trash/ and its
        commit leaves the rows and the files in trash/. Before, the server answered such a
        blob's GET 404 (its HEAD 200, and a manifest naming it was taken) until its own
        pass or a restart; now a read that misses the file puts the trash back first."""
        root = self.server.root
        repo = "itest/gc-trash"
        img = lg.distinct_image(layer_size=4096)
        h.expect_status(self.reg.push_image(repo, img, tag="t"), 201)
        layer = img.obj["layers"][0]["digest"]

        def move_aside(digest):
            files = lg.blob_files(root)
            alg, hexpart = digest.split(":")
            os.rename(files[digest], os.path.join(root, "trash", "%s-%s" % (alg, hexpart)))

        move_aside(layer)
        self.assertEqual(self.reg.head_blob(repo, layer).status, 200)
        resp = self.reg.get_blob(repo, layer)
        self.assertEqual(resp.status, 200, resp.describe())
        self.assertEqual(resp.body, img.blobs[layer])
        self.assertEqual(lg.trash_files(root), [])
        move_aside(img.digest)
        resp = self.reg.get_manifest(repo, "t")
        self.assertEqual(resp.status, 200, resp.describe())
        self.assertEqual(resp.body, img.manifest)
        log = self.server.log_text()
        self.assertEqual(log.count("event=trash_settled restored=1 deleted=0"), 2, log[-3000:])
        self.assertNotIn("blob_file_missing", log)
        self.server.stop()


def make_garbage(root, count, repo_id):
    """count unreferenced blobs, as abandoned uploads leave them: a file under blobs/ and a
    row touched long ago, linked to the repository. Written straight into the store (with
    the server stopped) because pushing tens of thousands of blobs over HTTP would take
    minutes; the rows and files are exactly what an upload creates."""
    conn = sqlite3.connect(os.path.join(root, "berth.db"))
    long_ago = int((time.time() - 86400) * 1000)
    digests = []
    with conn:
        for i in range(count):
            data = b"garbage %d %s" % (i, os.urandom(8).hex().encode())
            hexpart = hashlib.sha256(data).hexdigest()
            d = os.path.join(root, "blobs", "sha256", hexpart[:2])
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, hexpart), "wb") as f:
                f.write(data)
            cur = conn.execute("INSERT INTO blobs (digest, size, created_at, touched_at) "
                               "VALUES (?, ?, ?, ?)", ("sha256:" + hexpart, len(data),
                                                       long_ago, long_ago))
            conn.execute("INSERT INTO repo_blobs (repo_id, blob_id) VALUES (?, ?)",
                         (repo_id, cur.lastrowid))
            digests.append("sha256:" + hexpart)
    conn.close()
    return digests


class GcCrashTest(unittest.TestCase):
    """kill -9 while the server's collector is half way through 20,000 garbage blobs."""

    COUNT = 20000

    def test_kill_9_during_a_pass(self):
        server = h.Server(config={"gc": {"enabled": False}})
        self.addCleanup(server.cleanup)
        server.start()
        reg = server.registry()
        repo = "itest/gc-crash"
        images = [lg.distinct_image(layer_size=2048) for _ in range(3)]
        for i, img in enumerate(images):
            h.expect_status(reg.push_image(repo, img, tag="t%d" % i), 201)
        server.stop()
        with lg.db(server.root) as conn:
            repo_id = conn.execute("SELECT id FROM repositories WHERE name = ?",
                                   (repo,)).fetchone()[0]
        garbage = make_garbage(server.root, self.COUNT, repo_id)

        # collect with debug logging (one line per batch); kill at the tenth batch
        server.config = {"gc": {"interval_seconds": 1, "grace_seconds": 0},
                         "log": {"level": "debug", "access": False}}
        server.start(reuse_port=True)
        h.wait_until(lambda: server.log_text().count("event=gc_batch") >= 10, 60, interval=0.01,
                     what="the collector to be under way")
        server.kill9()
        # (trash/ now normally holds the last committed batch, or an uncommitted one)
        left = set(garbage) & set(lg.blob_rows(server.root))
        self.assertTrue(0 < len(left) < self.COUNT,
                        "the kill should land mid-pass (%d of %d left)" % (len(left), self.COUNT))

        # restart without collection: start-up recovery alone makes the store consistent
        server.config = {"gc": {"enabled": False}}
        server.start(reuse_port=True)
        reg = server.registry()
        self.check_consistent(server, reg, repo, images)
        server.stop()

        # the next pass finishes the job
        server.config = {"gc": {"interval_seconds": 1, "grace_seconds": 0}}
        server.start(reuse_port=True)
        reg = server.registry()
        # (20,000 rows; under ASan on a loaded machine a pass can take minutes: wait on progress)
        h.wait_draining(lambda: len(set(garbage) & set(lg.blob_rows(server.root))), 120,
                        what="the next pass to collect the rest")
        h.wait_until(lambda: not (set(garbage) & set(lg.blob_files(server.root))), 30,
                     interval=0.2, what="the garbage files to go")
        # a batch renames its files into trash/ and unlinks them after its commit
        h.wait_until(lambda: not lg.trash_files(server.root), 30, interval=0.2,
                     what="the last batch's trash files to be unlinked")
        self.check_consistent(server, reg, repo, images)
        server.stop()
        self.assertEqual(lg.integrity_check(server.root), "ok")

    def check_consistent(self, server, reg, repo, images):
        rows = lg.blob_rows(server.root)
        files = lg.blob_files(server.root)
        missing = [d for d in rows if d not in files]
        self.assertEqual(missing, [], "blob rows without a file")
        self.assertEqual(lg.trash_files(server.root), [])
        self.assertEqual(lg.integrity_check(server.root), "ok")
        for d in random.sample(sorted(files), min(200, len(files))):
            with open(files[d], "rb") as f:
                self.assertEqual(h.digest_of(f.read()), d)
        for i, img in enumerate(images):
            self.assertEqual(reg.get_manifest(repo, "t%d" % i).body, img.manifest)
            for digest, data in img.blobs.items():
                self.assertEqual(reg.get_blob(repo, digest).body, data)


if __name__ == "__main__":
    h.main()
