"""A bounded pull storm (issue 10, "Load: Pull storm"): many clients pull one image at once.

bench/berth-storm pushes an image with a 10 MiB layer, then runs two waves of 200 clients,
each on its own connection from its own loopback address (127.1.x.y, as many nodes would
be), pulling as docker does (HEAD manifest, GET manifest, GET config, GET layer), every byte
checked; meanwhile a HEAD from another address (127.2.0.1) every 20 ms. `make bench` runs
the full storm (1,000 clients, twice) beside distribution (docs/benchmarks.md).

What must hold, at berth's default settings:
- every pull succeeds, also when the server starts with a soft descriptor limit too low for
  its connection limit (the common 1024, scaled down here to 256 for 200 clients): berth
  raises it (before: EMFILE, failed pulls);
- the server's memory grows by well under 64 KiB per concurrent client and stays under
  64 MiB (before: libmicrohttpd's 128 KiB per-connection pool, cleared between requests,
  was all resident: about 130 KiB per client, 151 MiB at 1,000);
- the other client's HEADs are all answered throughout. Their latency is asserted with a
  wide margin (2 s) because other work shares this machine; the numbers against the 50 ms
  target are in docs/benchmarks.md;
- the layers went out at most http.concurrent_bodies (64) at a time: 200 clients at once
  made some wait (berth_http_bodies_queued_total > 0), every one of them was served, and
  at the end nothing sends or waits;
- with an access key (auth enforced) and `berth-storm --basic`, a smaller storm (40 x 2)
  gets nothing but 200s: a valid credential is never refused under load.

Runs only in the gcc pass ("berth-suite: no-sanitizer"): under ASan the memory bounds mean
nothing and the storm would take minutes.
"""
# berth-suite: no-sanitizer

import json
import os
import resource
import subprocess
import unittest

import berth_harness as h

CLIENTS = 200
WAVES = 2
SOFT_FDS = 256       # below what 200 pulling clients need (a socket and a blob each)
FDS_NEEDED = 4352    # berth's need at the default http.connection_limit (httpd.c)
MIB = 1024 * 1024


def storm_bin():
    build = os.environ.get("BERTH_BUILD_DIR") or os.path.join(
        os.path.dirname(__file__), "..", "..", "..", "build")
    return os.path.join(build, "bench", "berth-storm")


def metrics(server):
    out = {}
    for line in server.registry().get("/metrics").body.decode().splitlines():
        if line.startswith("berth_http_bod"):
            name, value = line.split()
            out[name] = int(float(value))
    return out


class PullStormTest(unittest.TestCase):
    def setUp(self):
        if not os.access(storm_bin(), os.X_OK):
            self.fail("%s not built" % storm_bin())
        # The server inherits a low soft limit (the hard one stays), unless the hard limit
        # itself is too low for berth to raise the soft one far enough.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.lowered = hard == resource.RLIM_INFINITY or hard >= FDS_NEEDED
        if self.lowered:
            resource.setrlimit(resource.RLIMIT_NOFILE, (SOFT_FDS, hard))
        try:
            self.server = h.Server()
            self.addCleanup(self.server.cleanup)
            self.server.start()
        finally:
            if self.lowered:
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    def test_storm(self):
        pid = self.server.proc.pid
        before_kib = h.proc_number(pid)
        report = os.path.join(self.server.tmp, "storm.json")
        proc = subprocess.run(
            [storm_bin(), "-c", str(CLIENTS), "--waves", str(WAVES), "--probe-ms", "20",
             "--timeout", "400", "--pid", str(pid), "--json-file", report,
             self.server.base_url],
            capture_output=True, text=True, timeout=900)
        out = proc.stdout + proc.stderr
        self.assertTrue(os.path.exists(report), out)
        with open(report) as f:
            r = json.load(f)
        pulls, probe = r["pulls"], r["probe"]

        # every pull succeeded, every byte as pushed
        self.assertEqual(pulls["ok"], CLIENTS * WAVES, out)
        self.assertEqual(pulls["failed"], 0, out)
        self.assertEqual(proc.returncode, 0, out)
        if self.lowered:
            self.assertIn("event=fd_limit_raised", self.server.log_text())

        # memory: peak against the quiet server
        peak_kib = r["server_peak_rss_kib"]
        per_client_kib = (peak_kib - before_kib) / CLIENTS
        self.assertLess(peak_kib * 1024, 64 * MIB, out)
        self.assertLess(per_client_kib, 64, "%.0f KiB per client\n%s" % (per_client_kib, out))

        # the other client: answered throughout (it ran while the waves did)
        self.assertEqual(probe["failed"], 0, out)
        self.assertGreaterEqual(probe["ok"], 10, out)
        self.assertLess(probe["max_ms"], 2000, out)
        # each HEAD over the 50 ms is listed with its wave and when in it
        slow = r["probe_slow"]
        self.assertEqual(len(slow), probe["over_50ms"], out)
        for e in slow:
            self.assertIn(e["wave"], range(1, WAVES + 1), out)
            self.assertGreater(e["ms"], 50, out)

        # the layers took turns, and every turn came
        m = metrics(self.server)
        self.assertGreater(m["berth_http_bodies_queued_total"], 0, out)
        self.assertEqual(m["berth_http_bodies_waiting"], 0, out)
        h.wait_until(lambda: metrics(self.server)["berth_http_bodies_sending"] == 0, 30,
                     what="no body sending")

        # and the server is still well
        self.assertEqual(self.server.registry().ping().status, 200)
        self.server.stop()


class KeptConnectionProbeTest(unittest.TestCase):
    """berth-storm --probe-keepalive: the other client keeps one connection, opened before the
    storm, for all its HEADs, as Go's and containerd's clients keep theirs. berth answers
    them all on it (never closing it under the storm: reconnects 0), and the report says
    which probe ran (docs/benchmarks.md compares the two during a full storm). A kept
    connection that berth closes while it is idle (http.timeout_seconds) is seen closed
    before the next HEAD and opened again, counted, as Go's transport does: not a failed
    HEAD."""

    def storm(self, server, *args):
        if not os.access(storm_bin(), os.X_OK):
            self.fail("%s not built" % storm_bin())
        report = os.path.join(server.tmp, "kept.json")
        proc = subprocess.run(
            [storm_bin(), "-c", "40", "--layer-mib", "2", "--probe-keepalive", "--timeout",
             "300", "--json-file", report] + list(args) + [server.base_url],
            capture_output=True, text=True, timeout=600)
        out = proc.stdout + proc.stderr
        self.assertEqual(proc.returncode, 0, out)
        with open(report) as f:
            return json.load(f), out

    def test_heads_on_one_connection(self):
        server = h.Server()
        self.addCleanup(server.cleanup)
        server.start()
        r, out = self.storm(server, "--waves", "3", "--probe-ms", "5")
        self.assertEqual(r["pulls"]["ok"], 120, out)
        probe = r["probe"]
        self.assertTrue(probe["keepalive"], out)
        self.assertEqual(probe["failed"], 0, out)
        self.assertGreaterEqual(probe["ok"], 1, out)
        self.assertEqual(probe["reconnects"], 0, out)
        # the baseline HEAD before the storm and every one during it, all 200
        self.assertEqual(r["probe_statuses"], {"200": probe["ok"] + 1}, out)
        self.assertIn("on one kept connection, reopened 0 times", out)

    def test_reopens_a_connection_closed_while_idle(self):
        # berth closes a connection idle for 1 s; the probe's HEADs are 2 s apart, and the
        # waves 2.5 s apart, so the storm outlasts at least one HEAD after such a close
        server = h.Server(config={"http": {"timeout_seconds": 1}})
        self.addCleanup(server.cleanup)
        server.start()
        r, out = self.storm(server, "--waves", "2", "--wave-gap-ms", "2500", "--probe-ms",
                            "2000")
        self.assertEqual(r["pulls"]["ok"], 80, out)
        self.assertEqual(r["wave_gap_ms"], 2500, out)
        probe = r["probe"]
        self.assertEqual(probe["failed"], 0, out)
        self.assertGreaterEqual(probe["ok"], 2, out)
        self.assertGreaterEqual(probe["reconnects"], 1, out)
        self.assertLessEqual(probe["reconnects"], probe["ok"], out)
        self.assertEqual(r["probe_statuses"], {"200": probe["ok"] + 1}, out)


class AuthenticatedStormTest(unittest.TestCase):
    """berth-storm --basic: with an access key, auth is enforced, and every request of the
    storm (the setup push, the pulls, the probe) carries the key as HTTP Basic credentials,
    as docker does after `docker login` with an access key. Every answer must be a 200: a
    valid credential is never refused (a 401 or 403 counted by status would show it); the
    same storm without the credential cannot even push its image."""

    def setUp(self):
        if not os.access(storm_bin(), os.X_OK):
            self.fail("%s not built" % storm_bin())
        import auth_helpers
        self.server = h.Server()
        self.addCleanup(self.server.cleanup)
        self.server.start()
        self.akid, self.secret = auth_helpers.keys_create(self.server, "storm")
        self.assertEqual(self.server.registry().ping().status, 401)

    def storm(self, *extra):
        report = os.path.join(self.server.tmp, "auth-storm.json")
        if os.path.exists(report):
            os.unlink(report)
        proc = subprocess.run(
            [storm_bin(), "-c", "40", "--waves", "2", "--layer-mib", "1", "--probe-ms", "20",
             "--timeout", "300", "--wait", "0", "--json-file", report] + list(extra) +
            [self.server.base_url], capture_output=True, text=True, timeout=600)
        r = None
        if os.path.exists(report):
            with open(report) as f:
                r = json.load(f)
        return proc, r

    def test_every_request_authenticated(self):
        proc, r = self.storm("--basic", "%s:%s" % (self.akid, self.secret))
        out = proc.stdout + proc.stderr
        self.assertIsNotNone(r, out)
        self.assertTrue(r["authenticated"], out)
        self.assertEqual(r["pulls"]["ok"], 80, out)
        self.assertEqual(proc.returncode, 0, out)
        # four requests per pull, all 200; the probe's too
        self.assertEqual(r["statuses"], {"200": 320}, out)
        self.assertEqual(set(r["probe_statuses"]), {"200"}, out)

        proc, r = self.storm()
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        self.assertIn("setup push failed", proc.stderr)


if __name__ == "__main__":
    unittest.main()
