# berth-suite: postgres
"""berth serve (meta.backend postgres) stops promptly on SIGTERM when its database is gone:
exit status 0 and a log that shows the stop (server_stopping ... server_stopped), well
within STOP_BOUND (a normal stop takes well under a second here; the bound is many times
that, for a busy machine).

- PostgreSQL stopped (pg_ctl stop -m immediate), a request or two failing first: connection
  attempts are refused at once.
- PostgreSQL that does not answer (its processes held with SIGSTOP: what a host gone or a
  hung server looks like): berth's threads wait on the database (the leases keeper and the
  activity sampler connecting, the scan workers in a query). Before meta_stopping these
  waits had no bound and berth needed SIGKILL; now, two seconds after the HTTP server has
  stopped, berth cuts its database connections (event=stop_slow, db_connections_cut) and
  connection attempts give up, so the jobs, scan workers and leases end and berth exits 0.
"""

import os
import signal
import subprocess
import time
import unittest

import berth_harness as h
import pg_traffic
from pg_fixture import PostgresServer, berth_env

STOP_BOUND = 20.0


@unittest.skipUnless(h.IS_BERTH, "berth's own backend")
class StopWithoutDatabaseTest(h.LogsOnFailure, unittest.TestCase):
    def setUp(self):
        self.frozen = []
        self.pg = PostgresServer().start()
        self.addCleanup(self.pg.stop)
        self.addCleanup(self.thaw)
        self.server = h.Server(env=berth_env(self.pg.dsn))
        self.addCleanup(self.server.cleanup)
        self.server.start()
        self.reg = self.server.registry()
        h.expect_status(self.reg.push_image("stop/app", h.build_image(), tag="v1"), 201)

    def thaw(self):
        pg_traffic.thaw(self.frozen)
        self.frozen = []

    def sigterm_and_time(self):
        proc = self.server.proc
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(STOP_BOUND)
        except subprocess.TimeoutExpired:
            self.fail("berth did not exit within %.0f s of SIGTERM with its database gone"
                      % STOP_BOUND)
        took = time.monotonic() - t0
        self.server.proc = None
        self.assertEqual(rc, 0, "exit status")
        log = self.server.log_text()
        self.assertIn("event=server_stopping signal=SIGTERM", log)
        self.assertIn("event=server_stopped", log)
        return took, log

    def test_stop_with_database_stopped(self):
        self.pg._run([os.path.join(self.pg.bindir, "pg_ctl"), "-D", self.pg.data_dir, "-m",
                      "immediate", "-w", "-t", "120", "stop"])
        self.pg.started = False
        for _ in range(2):
            resp = self.reg.get("/v2/stop/app/tags/list")
            self.assertGreaterEqual(resp.status, 500, resp.describe())
        self.sigterm_and_time()

    def test_stop_with_database_not_answering(self):
        self.frozen = pg_traffic.freeze(self.pg)
        took, log = self.sigterm_and_time()
        self.assertIn("event=stop_slow", log)
        self.assertIn("event=db_connections_cut backend=postgres", log)


if __name__ == "__main__":
    h.main()
