"""The replication job's listener on PostgreSQL (server/jobs/replication.c): a notification
on the channel berth_replication, as a push through another replica sends in its
transaction, wakes the threads of a berth whose poll is 300 s (each wake-up is a claim of
the peer's queue, logged at debug level); after a PostgreSQL restart the listener listens
again (event=replication_listening) and a notification still wakes them. The server is a
real PostgreSQL started by pg_fixture.py in a temporary directory."""
# berth-suite: postgres

import unittest

import berth_harness as h
from pg_case import PostgresTestCase

LEASE = "replication:us-west-2/333333333333"
CLAIMED = "event=lease_claimed name=%s " % LEASE
WAIT = 60


@unittest.skipUnless(h.IS_BERTH, "berth's own backend")
class ReplicationListenTest(PostgresTestCase):
    server_config = {
        "log": {"level": "debug"},
        "replication": {
            "poll_seconds": 300,
            # never reached: nothing is queued
            "peers": [{"region": "us-west-2", "registry_id": "333333333333",
                       "url": "http://127.0.0.1:9"}],
        },
    }

    def claims(self):
        return self.server.log_text().count(CLAIMED)

    def idle(self):
        """The thread's pass is over (it gave the queue's lease back): it waits."""
        return self.pg.psql("SELECT holder FROM leases WHERE name = '%s'" % LEASE).strip() == ""

    def woken_by_notify(self):
        # a wake-up during a pass makes the pass look again (no new claim): wait for its end
        h.wait_until(self.idle, WAIT, interval=0.1, what="the pass to end")
        n = self.claims()
        self.pg.psql("NOTIFY berth_replication")
        h.wait_until(lambda: self.claims() > n, WAIT, interval=0.1,
                     what="a notification to wake the replication thread")

    def test_notification_wakes_and_survives_a_restart(self):
        # the first look at the queue, at start
        h.wait_until(lambda: self.claims() >= 1, WAIT, interval=0.1, what="the first pass")
        self.woken_by_notify()
        before = self.claims()
        listening = self.server.log_text().count("event=replication_listening")
        self.pg.restart()
        h.wait_until(lambda: self.server.log_text().count("event=replication_listening") >
                     listening, WAIT, interval=0.1, what="the listener to listen again")
        # listening again, it wakes the threads once for what it may have missed
        h.wait_until(lambda: self.claims() > before, WAIT, interval=0.1,
                     what="the wake-up after listening again")
        self.woken_by_notify()


if __name__ == "__main__":
    unittest.main()
