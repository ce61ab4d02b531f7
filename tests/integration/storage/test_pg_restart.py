# berth-suite: postgres
"""PostgreSQL restarting under a berth serving traffic (meta.backend postgres).

Workers push small images (blobs, then a manifest by tag) and pull earlier ones
without pause while the test restarts PostgreSQL (pg_ctl restart -m fast), then
stops it, holds it down and starts it again. Every answer must be a 2xx or a clean
503: on /v2 the UNAVAILABLE error with Retry-After, on the ECR API a
ServerException; never a 500, never a request that hangs. /readyz answers 503
(database: not answering) while the server is down and 200 once it is back; the
traffic recovers without a berth restart; every push that got its 201 pulls back
byte for byte. The server is a real PostgreSQL started by pg_fixture.py.
"""

import threading
import time
import unittest

import berth_harness as h
from pg_case import PostgresTestCase

WORKERS = 3
# No single request may take longer than this (a hang would).
BOUND = 30.0
# Waiting for events (pushes done, 503s seen, readiness) gives up after this.
WAIT = 180.0


class Traffic:
    """Worker threads pushing and pulling; every answer is checked as it comes."""

    def __init__(self, server):
        self.server = server
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.stop = threading.Event()
        self.pushed = []          # (repo, tag, image) that got 201
        self.ok_pushes = 0
        self.unavailable = 0      # clean 503s seen
        self.bad = []             # anything else: the failures
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(WORKERS)]

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(BOUND * 4)
            if t.is_alive():
                self.bad.append("a worker did not finish: a request hangs")

    def check(self, resp, *good):
        """True when resp is one of good; a clean 503 counts and returns False;
        anything else is recorded as a failure."""
        if resp.status in good:
            return True
        try:
            codes = resp.error_codes() if resp.status == 503 else []
        except AssertionError:
            codes = []
        if resp.status == 503 and codes == ["UNAVAILABLE"] and resp.header("Retry-After"):
            with self.cond:
                self.unavailable += 1
                self.cond.notify_all()
            return False
        with self.cond:
            self.bad.append("%s %s -> %d %r" % (resp.method, resp.path, resp.status,
                                                resp.body[:300]))
            self.cond.notify_all()
        return False

    def request(self, reg, fn, *args):
        t0 = time.monotonic()
        try:
            resp = fn(*args)
        except Exception as exc:  # a timeout, a reset: never acceptable
            with self.cond:
                self.bad.append("%s%r raised %r" % (fn.__name__, args[:2], exc))
                self.cond.notify_all()
            return None
        took = time.monotonic() - t0
        if took > BOUND:
            with self.cond:
                self.bad.append("%s%r took %.1f s" % (fn.__name__, args[:2], took))
                self.cond.notify_all()
        return resp

    def push(self, reg, repo, tag, image):
        for data in image.blobs.values():
            start = self.request(reg, reg.start_upload, repo)
            if start is None or not self.check(start, 202):
                return False
            resp = self.request(reg, reg.finish_upload, start.header("Location"),
                                h.digest_of(data), data)
            if resp is None or not self.check(resp, 201):
                return False
        resp = self.request(reg, reg.put_manifest, repo, tag, image.manifest, image.media_type)
        return resp is not None and self.check(resp, 201)

    def pull(self, reg, repo, tag, image):
        resp = self.request(reg, reg.get_manifest, repo, tag, image.media_type)
        if resp is None or not self.check(resp, 200):
            return
        if resp.body != image.manifest:
            with self.cond:
                self.bad.append("%s:%s pulled a different manifest" % (repo, tag))
            return
        for digest, data in image.blobs.items():
            resp = self.request(reg, reg.get_blob, repo, digest)
            if resp is None or not self.check(resp, 200):
                return
            if resp.body != data:
                with self.cond:
                    self.bad.append("%s@%s pulled different bytes" % (repo, digest))

    def run(self, worker):
        reg = h.Registry(self.server.base_url)
        n = 0
        while not self.stop.is_set():
            n += 1
            repo, tag = "fault/w%d" % worker, "t%d" % n
            image = h.build_image(layer_count=1, layer_size=8192)
            if self.push(reg, repo, tag, image):
                with self.cond:
                    self.pushed.append((repo, tag, image))
                    self.ok_pushes += 1
                    self.cond.notify_all()
            with self.lock:
                earlier = self.pushed[(n * 7) % len(self.pushed)] if self.pushed else None
            if earlier is not None:
                self.pull(reg, *earlier)

    def wait_for(self, what, pred):
        with self.cond:
            # a wrong answer ends the wait at once
            if not self.cond.wait_for(lambda: self.bad or pred(), WAIT) or self.bad:
                raise AssertionError("timed out waiting for %s (pushes %d, 503s %d, bad %r)"
                                     % (what, self.ok_pushes, self.unavailable, self.bad[:5]))


@unittest.skipUnless(h.IS_BERTH, "berth's own backend")
class PostgresRestartTest(PostgresTestCase):
    server_log_lines = 120

    def ecr(self, op, body):
        return self.reg.ecr(op, body, timeout=BOUND)

    def wait_ready(self, status):
        deadline = time.monotonic() + WAIT
        while True:
            resp = self.reg.request("GET", "/readyz", timeout=BOUND)
            if resp.status == status:
                return resp
            if time.monotonic() > deadline:
                self.fail("/readyz stayed %d: %r" % (resp.status, resp.body))
            time.sleep(0.2)

    def test_restart_mid_traffic(self):
        self.assertEqual(self.ecr("CreateRepository", {"repositoryName": "fault/ecr"}).status,
                         200)
        traffic = Traffic(self.server)
        traffic.start()
        try:
            traffic.wait_for("pushes before the restart", lambda: traffic.ok_pushes >= 2 * WORKERS)

            # 1. pg_ctl restart -m fast under traffic: every connection berth holds is cut.
            self.pg.restart()
            base = traffic.ok_pushes
            traffic.wait_for("pushes after the restart",
                             lambda: traffic.ok_pushes >= base + 2 * WORKERS)

            # 2. Down for a while: clean 503s, /readyz 503, ECR ServerException.
            self.pg.halt()
            seen = traffic.unavailable
            traffic.wait_for("503s while PostgreSQL is down",
                             lambda: traffic.unavailable >= seen + WORKERS)
            ready = self.wait_ready(503)
            self.assertIn(b"database: not answering", ready.body)
            resp = self.reg.get_manifest("fault/w0", "t1")
            self.assertEqual(resp.status, 503, resp.describe())
            self.assertEqual(resp.error_codes(), ["UNAVAILABLE"])
            self.assertTrue(resp.header("Retry-After"))
            resp = self.ecr("DescribeRepositories", {"repositoryNames": ["fault/ecr"]})
            self.assertEqual(resp.status, 503, resp.describe())
            self.assertEqual(resp.json()["__type"], "ServerException")

            # 3. Back: readiness and traffic recover, with no berth restart.
            self.pg.resume()
            self.wait_ready(200)
            base = traffic.ok_pushes
            traffic.wait_for("pushes after PostgreSQL is back",
                             lambda: traffic.ok_pushes >= base + 2 * WORKERS)
        finally:
            traffic.finish()
        self.assertEqual(traffic.bad[:10], [])
        print("pushes with 201: %d, clean 503s: %d" % (traffic.ok_pushes, traffic.unavailable))
        resp = self.ecr("DescribeRepositories", {"repositoryNames": ["fault/ecr"]})
        self.assertEqual(resp.status, 200, resp.describe())

        # Every push that got its 201 pulls back byte for byte.
        for repo, tag, image in traffic.pushed:
            resp = self.reg.get_manifest(repo, tag, image.media_type)
            self.assertEqual(resp.status, 200, resp.describe())
            self.assertEqual(resp.body, image.manifest)
            for digest, data in image.blobs.items():
                resp = self.reg.get_blob(repo, digest)
                self.assertEqual(resp.status, 200, resp.describe())
                self.assertEqual(resp.body, data)
        self.assertTrue(self.server.proc.poll() is None, "berth exited")


if __name__ == "__main__":
    unittest.main()
