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
import time
import unittest

import auth_helpers as e
import berth_harness as h
import pg_traffic
from pg_case import PostgresTestCase

WORKERS = 3
# No single request may take longer than this (a hang would).
BOUND = 30.0
# Waiting for events (answers seen, readiness) gives up after this.
WAIT = 180.0
REPO = "fault/app"


class Traffic(pg_traffic.Traffic):
    """Authenticated manifest GETs, tags lists, token requests and signed ECR calls."""
    kinds = ("manifest", "tags", "token", "ecr")

    def __init__(self, test):
        super().__init__(test.server, WORKERS, BOUND, WAIT)
        self.test = test

    def registry(self):
        return e.AuthRegistry(self.server.base_url, e.basic(*self.test.admin))

    def request(self, reg, kind):
        if kind == "manifest":
            return reg.get_manifest(REPO, "v1", self.test.image.media_type)
        if kind == "tags":
            return reg.tags(REPO)
        if kind == "token":
            query = urllib.parse.urlencode({"service": "127.0.0.1:%d" % self.server.port,
                                            "scope": "repository:%s:pull" % REPO})
            return reg.request("GET", "/v2/token?" + query, timeout=BOUND)
        body = json.dumps({"repositoryNames": [REPO]}).encode()
        headers = e.sigv4_headers(self.server.base_url + "/", body, *self.test.admin,
                                  "DescribeRepositories")
        return reg.request("POST", "/", headers=headers, body=body, timeout=BOUND)


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
