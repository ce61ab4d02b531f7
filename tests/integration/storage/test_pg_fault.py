# berth-suite: postgres
"""PostgreSQL lost under authenticated traffic (meta.backend postgres): every answer while
the database is gone is the protocol's clean 503, and berth serves again once it is back,
with no berth restart.

Workers send authenticated requests without pause: on /v2 a manifest GET and a tags list
with an access key as Basic credentials (so each request's first query is the key's
lookup), a bearer token from the token endpoint (GET /v2/token, Basic credentials), on the
ECR API a SigV4-signed DescribeRepositories. Meanwhile PostgreSQL stops
at once (pg_ctl stop -m immediate: its backends end without a goodbye), stays down, and
starts again; then it restarts at once (pg_ctl restart -m immediate). Every status is
recorded. Every answer must be a 200 or a clean 503 (on /v2 the UNAVAILABLE error with
Retry-After, on the ECR API a ServerException `__type`); a request made entirely while the
server is down must be the 503; once the server is back every worker is served again.
Before the fix, the first requests after the stop got 500 (auth_lookup err=EDB): the
connection's first failing query was read as a database error, not a lost server; and the
token endpoint answered every database failure with 500.
The server is a real PostgreSQL started by pg_fixture.py.
"""

import json
import os
import urllib.parse
import threading
import time
import unittest

import auth_helpers as e
import berth_harness as h
from pg_case import PostgresTestCase

WORKERS = 3
# No single request may take longer than this (a hang would).
BOUND = 30.0
# Waiting for events (answers seen, readiness) gives up after this.
WAIT = 180.0
REPO = "fault/app"


class Traffic:
    """Workers sending authenticated requests; every answer is recorded and checked."""

    def __init__(self, test):
        self.test = test
        self.server = test.server
        self.cond = threading.Condition()
        self.stop = threading.Event()
        self.records = []  # (worker, start, end, what, status, clean)
        self.bad = []      # anything but a 200 or a clean 503
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

    def clean_503(self, what, resp):
        if resp.status != 503:
            return False
        if what == "ecr":
            try:
                return resp.json().get("__type") == "ServerException"
            except ValueError:
                return False
        try:
            codes = resp.error_codes()
        except AssertionError:
            return False
        return codes == ["UNAVAILABLE"] and bool(resp.header("Retry-After"))

    def one(self, worker, reg, what):
        t0 = time.monotonic()
        try:
            if what == "manifest":
                resp = reg.get_manifest(REPO, "v1", self.test.image.media_type)
            elif what == "tags":
                resp = reg.tags(REPO)
            elif what == "token":
                query = urllib.parse.urlencode({"service": "127.0.0.1:%d" % self.server.port,
                                                "scope": "repository:%s:pull" % REPO})
                resp = reg.request("GET", "/v2/token?" + query, timeout=BOUND)
            else:
                body = json.dumps({"repositoryNames": [REPO]}).encode()
                headers = e.sigv4_headers(self.server.base_url + "/", body, *self.test.admin,
                                          "DescribeRepositories")
                resp = reg.request("POST", "/", headers=headers, body=body, timeout=BOUND)
        except Exception as exc:  # a timeout, a reset: never acceptable
            with self.cond:
                self.bad.append("worker %d %s raised %r" % (worker, what, exc))
                self.cond.notify_all()
            return
        t1 = time.monotonic()
        clean = self.clean_503(what, resp)
        with self.cond:
            self.records.append((worker, t0, t1, what, resp.status, clean))
            if resp.status != 200 and not clean:
                self.bad.append("worker %d %s -> %d %r" % (worker, what, resp.status,
                                                          resp.body[:300]))
            if t1 - t0 > BOUND:
                self.bad.append("worker %d %s took %.1f s" % (worker, what, t1 - t0))
            self.cond.notify_all()

    def run(self, worker):
        reg = e.AuthRegistry(self.server.base_url, e.basic(*self.test.admin))
        kinds = ("manifest", "tags", "token", "ecr")
        n = worker
        while not self.stop.is_set():
            self.one(worker, reg, kinds[n % len(kinds)])
            n += 1

    def count(self, pred):
        return sum(1 for r in self.records if pred(r))

    def wait_for(self, what, pred):
        with self.cond:
            # a wrong answer ends the wait at once
            if not self.cond.wait_for(lambda: self.bad or pred(), WAIT) or self.bad:
                raise AssertionError("timed out waiting for %s (%d answers, bad %r)"
                                     % (what, len(self.records), self.bad[:5]))

    def served_after(self, t, status=200):
        """Whether every worker got a status (default 200) for a request begun after t."""
        return all(self.count(lambda r, w=w: r[0] == w and r[1] > t and r[4] == status) > 0
                   for w in range(WORKERS))


@unittest.skipUnless(h.IS_BERTH, "berth's own backend")
class PostgresLostUnderAuthTest(PostgresTestCase):
    server_log_lines = 150
    # the token endpoint answers only with the bearer scheme; /v2 still takes Basic
    server_config = {"auth": {"scheme": "bearer"}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = e.keys_create(cls.server, "admin")
        cls.image = h.build_image(layer_count=1, layer_size=4096)
        reg = e.AuthRegistry(cls.server.base_url, e.basic(*cls.admin))
        h.expect_status(reg.push_image(REPO, cls.image, tag="v1"), 201)

    def pg_ctl(self, *args):
        self.pg._run([os.path.join(self.pg.bindir, "pg_ctl"), "-D", self.pg.data_dir] +
                     list(args))

    def check(self, traffic):
        traffic.finish()
        self.assertEqual(traffic.bad[:10], [])
        self.assertTrue(self.server.proc.poll() is None, "berth exited")

    def test_stop_immediate_then_start(self):
        traffic = Traffic(self)
        traffic.start()
        try:
            t = time.monotonic()
            traffic.wait_for("answers before the stop", lambda: traffic.served_after(t))

            self.pg_ctl("-m", "immediate", "-w", "-t", "120", "stop")
            down = time.monotonic()
            # Every request made while the server is down is a clean 503, the first
            # ones included: wait for several per worker.
            traffic.wait_for("503s while PostgreSQL is down", lambda: all(
                traffic.count(lambda r, w=w: r[0] == w and r[1] > down) >= 4
                for w in range(WORKERS)))
            up = time.monotonic()
            with traffic.cond:
                during = [r for r in traffic.records if r[1] > down and r[2] < up]
            self.assertTrue(during)
            self.assertEqual([r for r in during if not r[5]], [])

            self.pg.resume()
            back = time.monotonic()
            traffic.wait_for("answers after PostgreSQL is back",
                             lambda: traffic.served_after(back))
        finally:
            self.check(traffic)
        print("answers: %d, clean 503s while down: %d" % (len(traffic.records), len(during)))

    def test_restart_immediate(self):
        traffic = Traffic(self)
        traffic.start()
        try:
            t = time.monotonic()
            traffic.wait_for("answers before the restart", lambda: traffic.served_after(t))
            self.pg_ctl("-l", os.path.join(self.pg.dir, "server.log"), "-m", "immediate",
                        "-w", "-t", "300", "-o", self.pg._opts, "restart")
            back = time.monotonic()
            traffic.wait_for("answers after the restart", lambda: traffic.served_after(back))
        finally:
            self.check(traffic)
        print("answers: %d, clean 503s: %d" % (len(traffic.records),
                                               traffic.count(lambda r: r[5])))


if __name__ == "__main__":
    h.main()
