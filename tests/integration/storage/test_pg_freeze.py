# berth-suite: postgres
"""PostgreSQL that stops answering under a berth serving traffic (meta.backend postgres):
its processes held with SIGSTOP, which is what a hung server, a host gone or a black-holed
network look like (the link stays up, nothing answers).

- Mid-traffic (meta.postgres.query_timeout_ms 2000): a request made while the server is
  frozen gets the clean 503 (on /v2 UNAVAILABLE with Retry-After, on the ECR API a
  ServerException) once its statement has waited the bound, and never waits many times
  that (before, it waited forever); after SIGCONT every worker is served again, with no
  berth restart.
- Stopping: with the bound far away (60 s), requests stuck in a statement on the frozen
  server end by the stop deadline (http.drain_seconds, then two seconds): berth cuts its
  database connections and exits 0 (before, the HTTP server's stop waited on them
  forever).
The server is a real PostgreSQL started by pg_fixture.py.
"""

import json
import signal
import subprocess
import threading
import time
import unittest

import berth_harness as h
import pg_traffic
from pg_case import PostgresTestCase

WORKERS = 3
TIMEOUT_MS = 2000
# A request on the frozen server waits the statement bound once or twice (the statement,
# then a connection attempt bounded by it) and a little more: far below this. Without a
# bound it waits forever.
REQUEST_BOUND = 20.0
# Waiting for events (answers seen) gives up after this.
WAIT = 180.0
STOP_BOUND = 30.0
REPO = "freeze/app"


class Traffic(pg_traffic.Traffic):
    """Anonymous manifest GETs, tags lists and ECR calls."""
    kinds = ("manifest", "tags", "ecr")

    def __init__(self, test):
        super().__init__(test.server, WORKERS, REQUEST_BOUND, WAIT)
        self.test = test

    def registry(self):
        return h.Registry(self.server.base_url)

    def request(self, reg, kind):
        if kind == "manifest":
            return reg.get_manifest(REPO, "v1", self.test.image.media_type)
        if kind == "tags":
            return reg.tags(REPO)
        return reg.ecr("DescribeRepositories", {"repositoryNames": [REPO]})


class FrozenCase(PostgresTestCase):
    """A berth on a PostgreSQL of its own (PostgresTestCase: its logs are printed when a
    test fails) with one image pushed; freeze() holds PostgreSQL's processes with SIGSTOP
    until thaw() (also a cleanup)."""
    server_log_lines = 150

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.image = h.build_image(layer_count=1, layer_size=4096)
        h.expect_status(cls.reg.push_image(REPO, cls.image, tag="v1"), 201)

    def setUp(self):
        self.frozen = []
        self.addCleanup(self.thaw)
        self.assertEqual(self.reg.ecr("DescribeRepositories",
                                      {"repositoryNames": [REPO]}).status, 200)

    def freeze(self):
        self.frozen = pg_traffic.freeze(self.pg)

    def thaw(self):
        pg_traffic.thaw(self.frozen)
        self.frozen = []


@unittest.skipUnless(h.IS_BERTH, "berth's own backend")
class FrozenMidTrafficTest(FrozenCase):
    server_config = {"meta": {"postgres": {"query_timeout_ms": TIMEOUT_MS}}}

    def test_frozen_mid_traffic(self):
        traffic = Traffic(self)
        traffic.start()
        try:
            t = time.monotonic()
            traffic.wait_for("answers before the freeze",
                             lambda: traffic.each_worker(lambda r: r[1] > t and r[4] == 200))
            self.freeze()
            frozen = time.monotonic()
            # Each worker gets a clean 503 for a request made while the server is frozen.
            traffic.wait_for("503s while PostgreSQL is frozen",
                             lambda: traffic.each_worker(lambda r: r[1] > frozen and r[5]))
            log = self.server.log_text()
            self.assertIn("event=db_query_timeout backend=postgres", log)
            self.thaw()
            back = time.monotonic()
            traffic.wait_for("answers after SIGCONT",
                             lambda: traffic.each_worker(lambda r: r[1] > back and r[4] == 200))
        finally:
            traffic.finish()
        self.assertEqual(traffic.bad[:10], [])
        slow = max(r[2] - r[1] for r in traffic.records if r[1] > frozen and r[2] < back)
        print("answers: %d, clean 503s: %d, slowest while frozen: %.1f s"
              % (len(traffic.records), sum(1 for r in traffic.records if r[5]), slow))
        self.assertTrue(self.server.proc.poll() is None, "berth exited")


@unittest.skipUnless(h.IS_BERTH, "berth's own backend")
class StopFrozenTest(FrozenCase):
    server_config = {"meta": {"postgres": {"query_timeout_ms": 60000}},
                     "http": {"drain_seconds": 1}}

    def test_stop_with_requests_in_a_frozen_statement(self):
        self.freeze()
        answers = []

        def request():
            reg = h.Registry(self.server.base_url)
            try:
                answers.append(reg.tags(REPO).status)
            except Exception as exc:  # the connection closed at the stop: fine
                answers.append(repr(exc))

        threads = [threading.Thread(target=request, daemon=True) for _ in range(WORKERS)]
        for t in threads:
            t.start()
        # The requests wait on the frozen server: no answer comes (a wait with no
        # margin to respect: if one has not reached its statement yet, the stop
        # below proves less, never fails wrongly).
        for t in threads:
            t.join(2.0)
        self.assertEqual(answers, [], "answered while PostgreSQL is frozen")
        proc = self.server.proc
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(STOP_BOUND)
        except subprocess.TimeoutExpired:
            self.fail("berth did not exit within %.0f s of SIGTERM with requests in a "
                      "statement on a frozen PostgreSQL" % STOP_BOUND)
        took = time.monotonic() - t0
        self.server.proc = None
        for t in threads:
            t.join(STOP_BOUND)
        self.assertEqual(rc, 0, "exit status")
        log = self.server.log_text()
        self.assertIn("event=server_stopped", log)
        self.assertIn("event=db_connections_cut backend=postgres", log)
        self.assertEqual(len(answers), WORKERS, answers)
        print("stopped in %.1f s; answers %s" % (took, json.dumps(answers)))


if __name__ == "__main__":
    h.main()
