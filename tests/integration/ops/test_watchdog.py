"""systemd's watchdog (WatchdogSec in deploy/systemd/berth.service.in): with WATCHDOG_USEC set,
berth sends WATCHDOG=1 to $NOTIFY_SOCKET every half interval, but only after its own GET
/healthz, sent to its listening port as a client would, was answered. The socket here is a
private datagram socket standing in for systemd's.

- plain HTTP and TLS (the probe does the handshake; under mutual TLS, which it has no
  certificate for, it stops at the server's ServerHello, which shows a pool thread took the
  handshake, so the server logs no refusal and counts no failure);
- the pings stop while the server cannot answer the probe: its loopback address holds all
  the connections http.per_client_connection_limit allows, so the probe's connection is
  closed unanswered; they resume once those close;
- a server at http.connection_limit is busy, not stuck: libmicrohttpd closing the probe's
  connection at once still counts, and the pings go on;
- WATCHDOG_PID naming another process means the pings are not for berth: none is sent.
"""

import os
import shutil
import socket
import tempfile
import threading
import time
import unittest

import berth_harness as h
import tls_helpers as t

INTERVAL_USEC = 2000000   # probes (and pings) every second, each probe given 0.5 s


class NotifySocket:
    """A datagram socket that collects what berth sends, with arrival times."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="berth-notify-")
        self.path = os.path.join(self.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages = []
        self.lock = threading.Lock()
        self.done = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.messages.append((time.monotonic(), data.decode()))

    def pings(self, since=0.0):
        with self.lock:
            return [at for at, m in self.messages if "WATCHDOG=1" in m.split("\n") and at >= since]

    def close(self):
        self.done = True
        self.thread.join(5)
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@h.berth_only("berth's systemd watchdog")
class WatchdogTest(unittest.TestCase):
    def start(self, config=None, env=None):
        self.notify = NotifySocket()
        self.addCleanup(self.notify.close)
        full_env = {"NOTIFY_SOCKET": self.notify.path, "WATCHDOG_USEC": str(INTERVAL_USEC)}
        full_env.update(env or {})
        self.server = h.Server(config=config, env=full_env)
        self.addCleanup(self.server.cleanup)
        self.server.start()
        return self.server

    def wait_pings(self, n, since=0.0, what="pings"):
        h.wait_until(lambda: len(self.notify.pings(since)) >= n, 60, what=what)

    def test_pings_while_the_server_answers(self):
        server = self.start()
        self.wait_pings(3)
        self.assertIn("event=watchdog_started interval_ms=2000 ping_every_ms=1000",
                      server.log_text())
        server.stop()
        with self.notify.lock:
            states = [m for _, m in self.notify.messages]
        self.assertTrue(states[0].startswith("READY=1"), states[:3])
        stopping = states.index("STOPPING=1")
        self.assertNotIn("WATCHDOG=1", states[stopping:])

    def test_no_pings_while_the_probe_goes_unanswered(self):
        server = self.start(config={"http": {"per_client_connection_limit": 2,
                                             "head_timeout_seconds": 300}})
        self.wait_pings(2)
        # two connections from 127.0.0.1 that never finish their request: the probe's own
        # connection from 127.0.0.1 is the third, and libmicrohttpd closes it unanswered
        hogs = []
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
            hogs.append(s)
        self.addCleanup(lambda: [s.close() for s in hogs])
        failures = server.log_text().count("event=watchdog_probe_failed")
        h.wait_until(lambda: server.log_text().count("event=watchdog_probe_failed")
                     >= failures + 3, 60, what="three failed probes")
        quiet_from = time.monotonic()
        h.wait_until(lambda: server.log_text().count("event=watchdog_probe_failed")
                     >= failures + 6, 60, what="three more failed probes")
        self.assertEqual(self.notify.pings(quiet_from), [])
        for s in hogs:
            s.close()
        back = time.monotonic()
        self.wait_pings(2, since=back, what="pings after the connections closed")
        self.assertIn("event=watchdog_probe_ok", server.log_text())

    def test_a_server_at_its_connection_limit_is_busy_not_stuck(self):
        server = self.start(config={"http": {"connection_limit": 3,
                                             "head_timeout_seconds": 300}})
        def hog(i):
            s = socket.socket()
            s.bind(("127.0.3.%d" % (i + 1), 0))
            s.settimeout(30)
            s.connect(("127.0.0.1", server.port))
            s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
            return s

        hogs = [hog(i) for i in range(3)]
        self.addCleanup(lambda: [s.close() for s in hogs])

        def refill():
            # a hog that arrived while a watchdog probe held a slot was closed at the
            # limit: open it again, so that the three hogs hold every slot
            for i, s in enumerate(hogs):
                # non-blocking for the look: with a timeout set, Python waits for
                # the socket to be readable first (MSG_DONTWAIT or not), and a live
                # hog would then time out and be taken for a closed one
                s.setblocking(False)
                try:
                    closed = s.recv(1, socket.MSG_PEEK) == b""
                except BlockingIOError:
                    closed = False
                except OSError:
                    closed = True
                finally:
                    s.settimeout(30)
                if closed:
                    s.close()
                    hogs[i] = hog(i)

        # every hog is inside libmicrohttpd once a fourth connection is closed unanswered
        h.wait_until(lambda: refill() or self.refused(server), 60,
                     what="the connection limit reached")
        since = time.monotonic()
        self.wait_pings(3, since=since, what="pings at the connection limit")

    def refused(self, server):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(16) == b""
        except OSError:
            return True
        finally:
            s.close()

    def test_watchdog_pid_of_another_process(self):
        server = self.start(env={"WATCHDOG_PID": "1"})
        h.wait_until(lambda: self.notify.messages, 30, what="READY=1")
        server.stop()
        # the watchdog is started (and logged) right after READY=1, or never
        self.assertNotIn("event=watchdog_started", server.log_text())
        self.assertEqual(self.notify.pings(), [])

    def test_tls_and_mutual_tls(self):
        pki = t.Pki()
        self.addCleanup(pki.cleanup)
        server = self.start(config={"tls": {"cert_file": pki.path("chain.pem"),
                                            "key_file": pki.path("server.key"),
                                            "client_ca_file": pki.path("root.pem")}})
        self.wait_pings(3)
        log = server.log_text()
        # the probe stops at the ServerHello: no refusal, no failure counted, no warning
        # from libmicrohttpd (a probe that times out on a busy machine is no failure here)
        self.assertNotIn("event=tls_refused", log)
        self.assertNotIn("event=httpd", log)


if __name__ == "__main__":
    unittest.main()
