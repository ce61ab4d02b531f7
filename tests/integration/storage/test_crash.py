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

    def blob_file(self, digest):
        alg, hexpart = digest.split(":")
        return os.path.join(self.server.root, "blobs", alg, hexpart[:2], hexpart)

    def upload_file(self, location):
        """berth: the stage file of the upload session a Location names."""
        uuid = self.reg.resolve(location).split("?")[0].rstrip("/").rsplit("/", 1)[1]
        return os.path.join(self.server.root, "uploads", uuid)

    @h.berth_only("reads berth's stage file to time the kill")
    def test_kill_during_large_streamed_push(self):
        # A body this large is hashed on a thread of its own while it arrives
        # (storage/store/upload.c) and its stage is written back in 8 MiB pieces.
        # kill -9 in the middle: nothing of it is published, the session resumes
        # from what reached the stage (its hash rebuilt from the file), and the
        # finished blob is whole.
        repo = self.repo()
        size = 48 * 1024 * 1024 + 11
        data = h.random_bytes(size)
        digest = h.digest_of(data)
        loc = self.assertStatus(self.reg.start_upload(repo), 202).header("Location")
        stage = self.upload_file(loc)
        target = self.reg.resolve(loc)
        head = ("PATCH %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream"
                "\r\nTransfer-Encoding: chunked\r\n\r\n" % target).encode()
        sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=60)
        sent = 32 * 1024 * 1024 + 3
        try:
            sock.sendall(head)
            piece = 1 << 20
            for i in range(0, sent, piece):
                chunk = data[i:min(i + piece, sent)]
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            # well past the hasher's start and several writeback pieces
            h.wait_until(lambda: os.path.exists(stage) and os.path.getsize(stage) >= 24 << 20,
                         120, what="24 MiB in the stage")
            self.crash_and_restart()
        finally:
            sock.close()
        self.assertStatus(self.reg.head_blob(repo, digest), 404)
        self.assertFalse(os.path.exists(self.blob_file(digest)), "published after a cut body")
        resp = self.assertStatus(self.reg.get(self.reg.resolve(loc)), 204)
        have = int(resp.header("Range").split("-")[1]) + 1
        self.assertGreaterEqual(have, 24 << 20)
        self.assertLessEqual(have, sent)
        loc = resp.header("Location") or loc
        resp = self.assertStatus(self.reg.patch_chunk(loc, data[have:], have), 202)
        resp = self.reg.finish_upload(resp.header("Location"), digest)
        self.assertStatus(resp, 201)
        self.assertHeader(resp, "Docker-Content-Digest", digest)
        self.crash_and_restart()
        self.assertBlob(repo, data)
        self.check_blob_store()
        self.check_database()

    @h.berth_only("BERTH_TEST_CRASH_AT is berth's")
    def test_crash_between_blob_file_and_row(self):
        # The blob's file is linked into the blob store and its directory
        # fsynced before the metadata transaction (storage/blob/fs.c); kill -9
        # right there: the blob is not there for clients (no row), the file is
        # whole, and the same session's PUT finishes the push.
        repo = self.repo()
        data = h.random_bytes(3 * 1024 * 1024 + 5)
        digest = h.digest_of(data)
        loc = self.assertStatus(self.reg.start_upload(repo), 202).header("Location")
        loc = self.assertStatus(self.reg.patch_stream(loc, data), 202).header("Location")
        stage = self.upload_file(loc)
        self.server.stop()
        self.server.env["BERTH_TEST_CRASH_AT"] = "blob-prepublished"
        try:
            self.server.start(reuse_port=True)
            type(self).reg = self.server.registry()
            try:
                resp = self.reg.finish_upload(loc, digest)
                self.assertNotEqual(resp.status, 201)
            except Exception:  # the connection died with the server
                pass
            h.wait_until(lambda: self.server.proc.poll() is not None, 60, what="the crash")
            self.assertIn("event=test_crash point=blob-prepublished", self.server.log_text())
        finally:
            self.server.env.pop("BERTH_TEST_CRASH_AT", None)
        self.crash_and_restart()
        self.assertStatus(self.reg.head_blob(repo, digest), 404)
        self.assertTrue(os.path.exists(self.blob_file(digest)), "no file linked before the row")
        self.check_blob_store()  # whole, under its own name
        resp = self.reg.finish_upload(loc, digest)
        self.assertStatus(resp, 201)
        self.assertBlob(repo, data)
        self.assertFalse(os.path.exists(stage), "the session's stage is left")
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
