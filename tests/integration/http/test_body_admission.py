"""Admission of large response bodies (http.concurrent_bodies, issue 10 "pull storm"): at most
that many bodies of 256 KiB or more are sent at once; later ones wait in arrival order, their
connections asleep, and small requests (HEAD, manifests, small blobs) are answered meanwhile.
A client that reads too slowly loses its slot. On SIGTERM, bodies still waiting are answered
503 and the server exits cleanly (libmicrohttpd 0.9.75 aborts the process if it is stopped
with a connection still suspended).

Every wait here is on an event (a metric, a log line, a socket read); there is no wall-clock
bound tighter than the generous timeouts of a busy machine.
"""

import hashlib
import os
import socket
import threading
import unittest

import berth_harness as h

MIB = 1024 * 1024
BIG = 48 * MIB       # more than loopback's socket buffers: a client that stops reading stalls


def metric(server, name):
    resp = server.registry().get("/metrics")
    for line in resp.body.decode().splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    raise AssertionError("no %s in /metrics" % name)


class RawGet:
    """A GET on its own connection whose body is read only when asked."""

    def __init__(self, server, path):
        self.sock = socket.create_connection((server.connect_host, server.port), timeout=120)
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n"
                           % (path, server.connect_host, server.port)).encode())
        self.buf = b""

    def head(self):
        """Read up to the end of the response head: (status, headers dict)."""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError("connection closed before the head: %r" % self.buf[:200])
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return int(lines[0].split()[1]), headers

    def body(self, length):
        """Read length body bytes (fewer if the server closes)."""
        h_ = hashlib.sha256(self.buf[:length])
        got = len(self.buf[:length])
        self.buf = self.buf[length:]
        while got < length:
            chunk = self.sock.recv(min(1 << 20, length - got))
            if not chunk:
                break
            h_.update(chunk)
            got += len(chunk)
        return got, "sha256:" + h_.hexdigest()

    def close(self):
        self.sock.close()


class AdmissionBase(unittest.TestCase):
    # slots are never taken back unless a test says so: a stalled client keeps its slot
    CONFIG = {"http": {"concurrent_bodies": 1, "body_slot_min_rate_bytes": 0}}

    def setUp(self):
        self.server = h.Server(config=self.CONFIG)
        self.addCleanup(self.server.cleanup)
        self.server.start()
        self.reg = self.server.registry()
        self.repo = "admit/big"
        self.big = os.urandom(BIG)
        self.big_digest = self.reg.ensure_blob(self.repo, self.big)
        self.small = os.urandom(200 * 1024)
        self.small_digest = self.reg.ensure_blob(self.repo, self.small)
        self.path = self.reg.blob_path(self.repo, self.big_digest)
        self.conns = []

    def tearDown(self):
        for c in self.conns:
            c.close()

    def get(self, path=None):
        c = RawGet(self.server, path or self.path)
        self.conns.append(c)
        return c

    def wait_metric(self, name, predicate, what):
        return h.wait_until(lambda: predicate(metric(self.server, name)), 60,
                            what="%s (%s)" % (what, name))


@h.berth_only("berth's body admission")
class AdmissionTest(AdmissionBase):
    def test_waiting_bodies_go_in_order_and_small_requests_pass(self):
        holder = self.get()
        status, headers = holder.head()
        self.assertEqual(status, 200)
        waiters = []
        for i in range(3):
            waiters.append(self.get())
            self.wait_metric("berth_http_bodies_waiting", lambda v, n=i + 1: v == n,
                             "%d bodies waiting" % (i + 1))
        self.assertEqual(metric(self.server, "berth_http_bodies_sending"), 1)

        # small requests do not wait behind the queue
        self.assertEqual(self.reg.head_blob(self.repo, self.big_digest).status, 200)
        self.assertEqual(self.reg.get_blob(self.repo, self.small_digest).body, self.small)
        self.assertEqual(self.reg.ping().status, 200)
        self.assertEqual(metric(self.server, "berth_http_bodies_waiting"), 3)

        # the holder reads everything: then the waiters, one at a time, in order
        got, digest = holder.body(BIG)
        self.assertEqual((got, digest), (BIG, self.big_digest))
        order = []
        lock = threading.Lock()
        results = {}

        def pull(i, c):
            st, hd = c.head()
            with lock:
                order.append(i)
            results[i] = (st, c.body(int(hd["content-length"])))

        threads = [threading.Thread(target=pull, args=(i, c)) for i, c in enumerate(waiters)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        self.assertEqual(order, [0, 1, 2])
        for i in range(3):
            self.assertEqual(results[i], (200, (BIG, self.big_digest)))
        self.wait_metric("berth_http_bodies_sending", lambda v: v == 0, "no body sending")
        self.assertEqual(metric(self.server, "berth_http_bodies_waiting"), 0)
        self.assertEqual(metric(self.server, "berth_http_bodies_queued_total"), 3)

    def test_client_that_leaves_frees_its_slot(self):
        holder = self.get()
        self.assertEqual(holder.head()[0], 200)
        waiter = self.get()
        self.wait_metric("berth_http_bodies_waiting", lambda v: v == 1, "a body waiting")
        holder.close()
        status, headers = waiter.head()
        self.assertEqual(status, 200)
        self.assertEqual(waiter.body(int(headers["content-length"])), (BIG, self.big_digest))


@h.berth_only("berth's body admission")
class SlowReaderTest(AdmissionBase):
    CONFIG = {"http": {"concurrent_bodies": 1}}   # the default floor, 1 MiB/s

    def test_slow_reader_loses_its_slot(self):
        staller = self.get()
        self.assertEqual(staller.head()[0], 200)   # and then reads no more
        waiter = self.get()
        status, headers = waiter.head()             # admitted although the staller stays
        self.assertEqual(status, 200)
        self.assertGreaterEqual(metric(self.server, "berth_http_body_slots_revoked_total"), 1)
        self.assertEqual(waiter.body(int(headers["content-length"])), (BIG, self.big_digest))
        # the staller, though slow, still gets its whole body once it reads
        self.assertEqual(staller.body(BIG), (BIG, self.big_digest))


@h.berth_only("berth's body admission")
class AdmissionStopTest(AdmissionBase):
    CONFIG = {"http": {"concurrent_bodies": 1, "body_slot_min_rate_bytes": 0,
                       "drain_seconds": 1}}

    def test_sigterm_with_bodies_waiting(self):
        staller = self.get()
        self.assertEqual(staller.head()[0], 200)
        waiters = []
        for i in range(6):
            waiters.append(self.get())
        self.wait_metric("berth_http_bodies_waiting", lambda v: v == 6, "bodies waiting")
        self.assertEqual(self.server.stop(timeout=60), 0)   # exits 0: no abort
        log = self.server.log_text()
        self.assertIn("event=bodies_refused", log)
        self.assertNotIn("suspended connections", log)
        refused = 0
        for c in waiters:
            try:
                status, headers = c.head()
            except (AssertionError, OSError):
                continue    # admitted during the drain, then cut by the stop
            if status == 503:
                refused += 1
                body = c.buf + c.sock.recv(65536)
                self.assertIn(b"UNAVAILABLE", body)
                self.assertEqual(headers.get("connection"), "close")
            else:
                self.assertEqual(status, 200)
        self.assertEqual(refused, 6)


if __name__ == "__main__":
    unittest.main()
