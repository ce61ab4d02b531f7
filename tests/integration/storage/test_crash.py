"""kill -9 and restart on the same root: upload sessions survive, nothing half-written is
published, the database is intact."""

import hashlib
import os
import re
import socket
import sqlite3
import threading
import time

import berth_harness as h

BLOB_PATH_RE = re.compile(r"^(sha256|sha512)/([0-9a-f]{2})/([0-9a-f]+)$")


class CrashTest(h.ServerTestCase):
    def crash_and_restart(self):
        self.server.restart_after_crash()
        # The port is reused when it can be; every test of the class follows the new one.
        type(self).reg = self.server.registry()

    def check_blob_store(self):
        """berth: every file under <root>/blobs is a published blob at blobs/<alg>/<2 hex>/<hex>
        whose bytes hash to its name; nothing temporary is left there."""
        if not h.IS_BERTH:
            return
        blobs = os.path.join(self.server.root, "blobs")
        self.assertTrue(os.path.isdir(blobs), "no %s" % blobs)
        count = 0
        for dirpath, _, files in os.walk(blobs):
            for name in files:
                rel = os.path.relpath(os.path.join(dirpath, name), blobs)
                match = BLOB_PATH_RE.match(rel)
                self.assertIsNotNone(match, "unexpected file under blobs/: %s" % rel)
                alg, prefix, hexpart = match.groups()
                self.assertEqual(prefix, hexpart[:2], rel)
                digest = hashlib.new(alg)
                with open(os.path.join(dirpath, name), "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        digest.update(block)
                self.assertEqual(digest.hexdigest(), hexpart, "corrupt blob %s" % rel)
                count += 1
        self.assertGreater(count, 0)

    def check_database(self):
        """berth: with the server stopped, <root>/berth.db passes PRAGMA integrity_check."""
        if not h.IS_BERTH:
            return
        self.server.stop()
        try:
            path = os.path.join(self.server.root, "berth.db")
            self.assertTrue(os.path.exists(path))
            conn = sqlite3.connect(path)
            try:
                rows = conn.execute("PRAGMA integrity_check").fetchall()
                self.assertEqual(rows, [("ok",)])
                tables = {r[0] for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type='table'")}
                self.assertTrue(tables, "no tables in berth.db")
            finally:
                conn.close()
        finally:
            self.server.start(reuse_port=True)
            type(self).reg = self.server.registry()

    def test_chunked_upload_survives_kill_9(self):
        repo = self.repo()
        data = h.random_bytes(3 * 1024 * 1024 + 123)
        third = len(data) // 3
        loc = self.assertStatus(self.reg.start_upload(repo), 202).header("Location")
        resp = self.assertStatus(self.reg.patch_chunk(loc, data[:third], 0), 202)
        loc = resp.header("Location")
        resp = self.assertStatus(self.reg.patch_chunk(loc, data[third:2 * third], third), 202)
        loc = resp.header("Location")
        self.assertRangeHeader(resp, 2 * third - 1)

        self.crash_and_restart()

        resp = self.assertStatus(self.reg.get(self.reg.resolve(loc)), 204)
        self.assertRangeHeader(resp, 2 * third - 1)
        loc = resp.header("Location") or loc
        resp = self.assertStatus(self.reg.patch_chunk(loc, data[2 * third:], 2 * third), 202)
        resp = self.reg.finish_upload(resp.header("Location"), h.digest_of(data))
        self.assertStatus(resp, 201)
        self.assertHeader(resp, "Docker-Content-Digest", h.digest_of(data))
        self.assertBlob(repo, data)
        self.check_blob_store()
        self.check_database()
        self.assertBlob(repo, data)

    def test_large_upload_across_writeback_pieces_survives_kill_9(self):
        # Past 8 MiB a stage starts writeback while the body arrives
        # (storage/blob/fs.c); a crash mid-session, a resumed session
        # and the acknowledged blob must all come out whole.
        repo = self.repo()
        data = h.random_bytes(20 * 1024 * 1024 + 7)
        first = 9 * 1024 * 1024 + 5
        loc = self.assertStatus(self.reg.start_upload(repo), 202).header("Location")
        resp = self.assertStatus(self.reg.patch_chunk(loc, data[:first], 0), 202)
        self.assertRangeHeader(resp, first - 1)

        self.crash_and_restart()

        resp = self.assertStatus(self.reg.get(self.reg.resolve(loc)), 204)
        self.assertRangeHeader(resp, first - 1)
        loc = resp.header("Location") or loc
        resp = self.assertStatus(self.reg.patch_chunk(loc, data[first:], first), 202)
        resp = self.reg.finish_upload(resp.header("Location"), h.digest_of(data))
        self.assertStatus(resp, 201)

        self.crash_and_restart()

        self.assertBlob(repo, data)
        self.check_blob_store()
        self.check_database()

    def test_pushed_image_survives_kill_9(self):
        repo = self.repo()
        img = h.build_image(layer_count=2)
        self.push_image_ok(repo, img, tag="durable")
        self.crash_and_restart()
        self.assertManifest(repo, "durable", img)
        for data in img.blobs.values():
            self.assertBlob(repo, data)
        self.check_database()

    def test_concurrent_pushes_acknowledged_survive_kill_9(self):
        # Concurrent pushes queue for the metadata's write lock and share
        # the syncs of its log (group commit, storage/meta/sqlite.c): kill
        # -9 in the middle of 16 of them, and every blob and manifest that
        # was answered 201 must be there after the restart, whole.
        base = self.repo()
        lock = threading.Lock()
        acked_blobs = []  # (repo, bytes)
        acked_manifests = []  # (repo, tag, image)
        enough = threading.Event()
        stop = threading.Event()

        def pusher(k):
            reg = self.server.registry()
            repo = "%s-%d" % (base, k)
            i = 0
            while not stop.is_set():
                img = h.build_image(layer_count=1, layer_size=16384 + 4096 * k)
                tag = "t%d" % i
                i += 1
                try:
                    for data in img.blobs.values():
                        if reg.push_blob(repo, data).status != 201:
                            return
                        with lock:
                            acked_blobs.append((repo, data))
                    resp = reg.put_manifest(repo, tag, img.manifest, img.media_type)
                except Exception:  # the server is gone: what was answered is what counts
                    return
                if resp.status != 201:
                    return
                with lock:
                    acked_manifests.append((repo, tag, img))
                    if len(acked_manifests) >= 48:
                        enough.set()

        threads = [threading.Thread(target=pusher, args=(k,), daemon=True) for k in range(16)]
        for t in threads:
            t.start()
        self.assertTrue(enough.wait(timeout=300), "fewer than 48 pushes in 300 s")
        self.server.kill9()  # while the others are in flight
        stop.set()
        for t in threads:
            t.join(timeout=120)
            self.assertFalse(t.is_alive(), "a pusher hung after the crash")
        self.server.start(reuse_port=True)
        type(self).reg = self.server.registry()

        with lock:
            blobs, manifests = list(acked_blobs), list(acked_manifests)
        self.assertGreaterEqual(len(manifests), 48)
        for repo, tag, img in manifests:
            self.assertManifest(repo, tag, img)
            self.assertManifest(repo, img.digest, img)
        for repo, data in blobs:
            self.assertBlob(repo, data)
        self.check_blob_store()
        self.check_database()

    def test_interrupted_monolithic_put_publishes_nothing(self):
        repo = self.repo()
        data = h.random_bytes(8 * 1024 * 1024)
        digest = h.digest_of(data)
        loc = self.assertStatus(self.reg.start_upload(repo), 202).header("Location")
        target = self.reg.with_query(self.reg.resolve(loc), digest=digest)
        head = ("PUT %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
                "Content-Length: %d\r\n\r\n" % (target, len(data))).encode()
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
        try:
            sock.sendall(head + data[:len(data) // 2])
            time.sleep(0.3)  # let the server write what it received
            self.crash_and_restart()
        finally:
            sock.close()
        self.assertStatus(self.reg.head_blob(repo, digest), 404)
        # The client can start over and finish.
        resp = self.reg.push_blob(repo, data)
        self.assertStatus(resp, 201)
        self.assertBlob(repo, data)
        self.check_blob_store()

    def test_session_after_two_crashes(self):
        repo = self.repo()
        data = h.random_bytes(300000)
        loc = self.assertStatus(self.reg.start_upload(repo), 202).header("Location")
        self.crash_and_restart()
        resp = self.assertStatus(self.reg.get(self.reg.resolve(loc)), 204)
        self.assertRangeHeader(resp, 0)
        resp = self.assertStatus(self.reg.patch_chunk(loc, data[:100000], 0), 202)
        loc = resp.header("Location")
        self.crash_and_restart()
        resp = self.reg.finish_upload(loc, h.digest_of(data), data[100000:], start=100000)
        self.assertStatus(resp, 201)
        self.assertBlob(repo, data)


if __name__ == "__main__":
    h.main()
