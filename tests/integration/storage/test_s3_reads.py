"""Blob reads on the S3 backend (storage.backend s3) against a real OpenStack Swift with s3api
(swift_fixture.py), through a TCP relay (tcp_relay.py) that counts what goes between berth and
the object store: a blob GET streams from the store (no copy on local disk: berth writes next
to nothing while it serves 64 MiB), a slow client slows the GET from the store instead of
filling berth's memory, a Range is a ranged GET, HEAD never reaches the store, and concurrent
pulls keep berth's memory flat.

# berth-suite: no-sanitizer
(memory bounds mean nothing under ASan; the reader itself runs under ASan in the s3 label's
blob contract test, tests/unit/storage/blob/test_fs.c)
"""

import hashlib
import http.client
import threading
import time
import unittest

import berth_harness as h
from swift_fixture import SwiftServer
from tcp_relay import TcpRelay

PREFIX = "itest-s3-reads/"
MIB = 1 << 20
REPO = "itest/s3/reads"


def proc_field(pid, name, field):
    with open("/proc/%d/%s" % (pid, name)) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/%s" % (field, pid, name))


def rss_kib(pid):
    return proc_field(pid, "status", "VmRSS")


def wchar(pid):
    """Bytes the process passed to write(2) and the like (files, pipes; not send(2))."""
    return proc_field(pid, "io", "wchar")


@unittest.skipUnless(h.IS_BERTH, "berth's own backend")
class S3ReadsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s3 = SwiftServer().start()
        cls.addClassCleanup(cls.s3.stop)
        cls.relay = TcpRelay("127.0.0.1", cls.s3.ports["proxy"]).start()
        cls.addClassCleanup(cls.relay.stop)
        env = {
            "BERTH_STORAGE_BACKEND": "s3",
            "BERTH_STORAGE_S3_ENDPOINT": cls.relay.endpoint,
            "BERTH_STORAGE_S3_REGION": cls.s3.region,
            "BERTH_STORAGE_S3_BUCKET": cls.s3.bucket,
            "BERTH_STORAGE_S3_PREFIX": PREFIX,
            "BERTH_STORAGE_S3_PATH_STYLE": "true",
            "AWS_ACCESS_KEY_ID": cls.s3.access_key,
            "AWS_SECRET_ACCESS_KEY": cls.s3.secret_key,
        }
        cls.server = h.Server(env=env, config={"gc": {"enabled": False}})
        cls.addClassCleanup(cls.server.cleanup)
        cls.server.start()
        cls.reg = cls.server.registry()
        cls.big = h.random_bytes(64 * MIB + 3)
        cls.digest = cls.reg.ensure_blob(REPO, cls.big)
        cls.path = cls.reg.blob_path(REPO, cls.digest)

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        out = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            self.s3.dump_logs()
            print("\n--- server log tail ---\n%s" % self.server.log_tail())
        return out

    @property
    def pid(self):
        return self.server.proc.pid

    def open_get(self, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=120)
        conn.request("GET", self.path, headers=dict(headers or {}, Connection="close"))
        return conn, conn.getresponse()

    def pull(self, headers=None, piece=MIB):
        """(status, headers, sha256 hex, length) of a GET read piece by piece."""
        conn, resp = self.open_get(headers)
        sha = hashlib.sha256()
        n = 0
        while True:
            data = resp.read(piece)
            if not data:
                break
            sha.update(data)
            n += len(data)
        conn.close()
        return resp.status, resp.headers, sha.hexdigest(), n

    def wait_quiet(self, key="down", settle=0.5, limit=30):
        """The relay's counter once it stopped moving for settle seconds."""
        last = self.relay.counters()[key]
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            time.sleep(settle)
            now = self.relay.counters()[key]
            if now == last:
                return now
            last = now
        return last

    def test_full_pull_streams_without_local_copy(self):
        before = wchar(self.pid)
        status, headers, sha, n = self.pull()
        self.assertEqual(status, 200)
        self.assertEqual(n, len(self.big))
        self.assertEqual(int(headers["Content-Length"]), len(self.big))
        self.assertEqual("sha256:" + sha, self.digest)
        # a download to a local file first would have written the 64 MiB
        self.assertLess(wchar(self.pid) - before, 4 * MIB)

    def test_slow_client_slows_the_store_get(self):
        start = self.relay.counters()["down"]
        conn, resp = self.open_get()
        self.assertEqual(resp.status, 200)
        first = resp.read(MIB)
        self.assertEqual(first, self.big[:MIB])
        # the client stops reading: the GET from the store stops soon after (its buffer,
        # the sockets' buffers), long before the blob's end
        fetched = self.wait_quiet() - start
        self.assertLess(fetched, 40 * MIB, "berth kept reading the store for a stalled client")
        rest = resp.read()
        conn.close()
        self.assertEqual(hashlib.sha256(first + rest).hexdigest(), h.digest_hex(self.digest))

    def test_range_is_a_ranged_get(self):
        size = len(self.big)
        part = 8 * MIB
        for first, last in ((size - 16, size - 1), (part - 100, part + 99), (0, 0),
                            (5 * MIB, 7 * MIB)):
            self.wait_quiet(settle=0.2)
            before = self.relay.counters()["down"]
            resp = self.reg.get(self.path, headers={"Range": "bytes=%d-%d" % (first, last)})
            self.assertEqual(resp.status, 206, resp.describe())
            self.assertEqual(resp.header("Content-Range"), "bytes %d-%d/%d" % (first, last, size))
            self.assertEqual(resp.body, self.big[first:last + 1])
            got = self.wait_quiet(settle=0.2) - before
            self.assertLess(got, (last - first + 1) + 256 * 1024,
                            "bytes %d-%d: %d bytes came from the store" % (first, last, got))
        # a suffix range
        resp = self.reg.get(self.path, headers={"Range": "bytes=-10"})
        self.assertEqual(resp.status, 206)
        self.assertEqual(resp.body, self.big[-10:])

    def test_head_never_reaches_the_store(self):
        self.wait_quiet(key="up", settle=0.2)
        before = self.relay.counters()
        for _ in range(3):
            resp = self.reg.head_blob(REPO, self.digest)
            self.assertEqual(resp.status, 200)
            self.assertEqual(int(resp.header("Content-Length")), len(self.big))
        after = self.relay.counters()
        self.assertEqual(after["up"], before["up"])
        self.assertEqual(after["connections"], before["connections"])

    def test_concurrent_pulls_keep_memory_flat(self):
        self.pull()  # warm: the first pull's allocations are not growth
        base = rss_kib(self.pid)
        peak = [base]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], rss_kib(self.pid))
                time.sleep(0.02)

        results = []

        def one(i):
            # readers of different speeds: some pause the store's transfer
            results.append(self.pull(piece=(64 * 1024) if i % 2 else 4 * MIB))

        sampler = threading.Thread(target=sample)
        sampler.start()
        pullers = [threading.Thread(target=one, args=(i,)) for i in range(6)]
        for t in pullers:
            t.start()
        for t in pullers:
            t.join()
        done.set()
        sampler.join()
        self.assertEqual(len(results), 6)
        for status, _, sha, n in results:
            self.assertEqual((status, n, "sha256:" + sha), (200, len(self.big), self.digest))
        # six pulls of 64 MiB each: berth holds a small buffer per pull, never the blob
        self.assertLess(peak[0] - base, 32 * 1024,
                        "RSS grew from %d KiB to %d KiB" % (base, peak[0]))


if __name__ == "__main__":
    unittest.main()
