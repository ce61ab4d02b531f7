"""Health, readiness, metrics and JSON logs: what an operator's tooling reads.

GET /healthz and /readyz answer without credentials (even with auth on) and are not
logged at info; /readyz fails when the disk is below storage.min_free_bytes, while
the server drains and after a failed sync of the database's log. GET /metrics is the Prometheus text format: Debian's promtool accepts
it, its numbers follow the traffic, the jobs and the store, and a real Prometheus server
started here on loopback scrapes it (with metrics.require_auth and Basic credentials).
log.format json writes one JSON object per line."""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

import berth_harness as h
from auth_helpers import basic, ecr_call

PROMTOOL = "/usr/bin/promtool"
PROMETHEUS = "/usr/bin/prometheus"
KEY = ("AKIDOPSTESTKEY000001", "ops-test-secret-0123456789abcdefghijklm")
KEYS_CONFIG = {"keys": [{"name": "ops", "access_key_id": KEY[0], "secret_access_key": KEY[1]}]}

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{(name, ((label, value), ...)): float} of every sample line."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        labels = tuple(sorted(LABEL.findall(m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(samples, name, **labels):
    """The sample's value, or 0 when the series is absent."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples, name, **labels):
    """The sum over every series of name whose labels include labels."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


class OpsCase(h.ServerTestCase):
    def get(self, path, headers=None, method="GET"):
        return self.reg.request(method, path, headers=headers or {})

    def scrape(self, headers=None):
        resp = self.assertStatus(self.get("/metrics", headers), 200)
        self.assertEqual(resp.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8")
        return resp.body.decode()

    def promtool_check(self, text):
        res = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(),
                             capture_output=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stdout.decode() + res.stderr.decode())
        self.assertEqual(res.stdout.decode().strip() + res.stderr.decode().strip(), "",
                         "promtool has complaints")

    def access_lines(self, path, method="GET"):
        return [ln for ln in self.server.log_text().splitlines()
                if "event=access" in ln and ("method=%s path=%s " % (method, path)) in ln]


@h.berth_only("berth's operations endpoints")
class ProbeTest(OpsCase):
    server_config = {"auth": KEYS_CONFIG}

    def test_probes_answer_without_credentials(self):
        # auth is on: /v2/ asks for credentials, the probes do not
        self.assertStatus(self.get("/v2/"), 401)
        resp = self.assertStatus(self.get("/healthz"), 200)
        self.assertEqual(resp.body, b"ok\n")
        resp = self.assertStatus(self.get("/readyz"), 200)
        text = resp.body.decode()
        self.assertTrue(text.startswith("ready\n"), text)
        for line in ("store: ok", "database: ok", "draining: no"):
            self.assertIn(line, text.splitlines())
        self.assertRegex(text, r"(?m)^disk: ok \(\d+ bytes free, 104857600 required\)$")
        self.assertStatus(self.get("/healthz", method="HEAD"), 200)
        resp = self.assertStatus(self.get("/healthz", method="DELETE"), 405)
        self.assertHeader(resp, "Allow", "GET, HEAD")
        # metrics need no credentials unless metrics.require_auth says so
        self.assertIn("berth_http_requests_total", self.scrape())

    def test_probes_are_not_logged_at_info(self):
        for _ in range(3):
            self.assertStatus(self.get("/healthz"), 200)
            self.assertStatus(self.get("/readyz"), 200)
        marker = self.assertStatus(self.get("/v2/"), 401).header("X-Request-Id")
        h.wait_until(lambda: marker in self.server.log_text(), 30, what="the /v2/ access line")
        self.assertEqual(self.access_lines("/healthz"), [])
        self.assertEqual(self.access_lines("/readyz"), [])

    def test_ecr_still_gets_its_posts(self):
        status, doc, _ = ecr_call(self.reg, "DescribeRepositories", {})
        self.assertEqual(status, 400, doc)  # unsigned, auth on: ECR's own refusal
        self.assertEqual(doc["__type"], "MissingAuthenticationTokenException")


@h.berth_only("berth's readiness rules")
class LowDiskTest(OpsCase):
    server_config = {"storage": {"min_free_bytes": 2 ** 62}}

    def test_readyz_fails_below_min_free_bytes(self):
        resp = self.assertStatus(self.get("/readyz"), 503)
        text = resp.body.decode()
        self.assertTrue(text.startswith("not ready\n"), text)
        self.assertRegex(text, r"(?m)^disk: low \(\d+ bytes free, %d required\)$" % 2 ** 62)
        self.assertStatus(self.get("/healthz"), 200)
        # a failing probe is worth a line at info
        h.wait_until(lambda: self.access_lines("/readyz"), 30, what="the failed probe's line")


@h.berth_only("berth's readiness rules")
class WalSyncFailedTest(OpsCase):
    """A failed sync of the SQLite write-ahead log (injected: every sync fails once the
    store is open) makes every later commit fail until a restart; /readyz says so."""
    server_env = {"BERTH_TEST_FAULTS": "wal_sync"}

    def test_readyz_fails_after_a_failed_log_sync(self):
        # a blob's publication needs a commit, whose sync fails: 500 (the fault is set
        # just after the server starts listening: a first push may come before it; a
        # POST's rows wait for no sync of their own)
        data = b"walsync"
        for _ in range(50):
            resp = self.reg.request("POST", "/v2/walsync/blobs/uploads/")
            if resp.status != 202:
                break
            resp = self.reg.finish_upload(resp.header("Location"), h.digest_of(data), data)
            if resp.status != 201:
                break
            time.sleep(0.1)
        self.assertEqual(resp.status, 500, resp.body)
        # every later write fails, a session's row too: no session, 500
        resp = self.reg.request("POST", "/v2/walsync/blobs/uploads/")
        self.assertEqual(resp.status, 500, resp.body)
        resp = self.assertStatus(self.get("/readyz"), 503)
        text = resp.body.decode()
        self.assertTrue(text.startswith("not ready\n"), text)
        self.assertIn("database: write-ahead log sync failed (commits refused until restart)",
                      text.splitlines())
        # reads go on; liveness is not readiness
        self.assertStatus(self.get("/healthz"), 200)
        self.assertStatus(self.reg.request("GET", "/v2/_catalog"), 200)
        h.wait_until(lambda: "event=not_ready" in self.server.log_text()
                     and "database=sync_failed" in self.server.log_text(), 30,
                     what="the not_ready line naming the failed sync")


@h.berth_only("berth's drain")
class DrainTest(unittest.TestCase):
    def test_readyz_fails_while_draining(self):
        server = h.Server()
        self.addCleanup(server.cleanup)
        server.start()
        reg = server.registry()
        repo = "ops/drain"
        location = h.expect_status(reg.start_upload(repo), 202).header("Location")
        probe = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        probe.request("GET", "/readyz")
        resp = probe.getresponse()
        self.assertEqual((resp.status, resp.read()[:6]), (200, b"ready\n"))
        # an upload in flight holds the drain open
        upload = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        upload.putrequest("PATCH", reg.resolve(location))
        upload.putheader("Transfer-Encoding", "chunked")
        upload.putheader("Content-Type", "application/octet-stream")
        upload.endheaders()
        # 256 KiB: enough to be in the session's data even if pieces were gathered
        upload.send(b"40000\r\n" + b"x" * 0x40000 + b"\r\n")
        # the server has taken the PATCH once its first bytes are in the session
        h.wait_until(lambda: reg.get(reg.resolve(location)).header("Range") == "0-262143", 20,
                     what="the PATCH's first bytes in the session")
        server.proc.send_signal(signal.SIGTERM)
        h.wait_until(lambda: "event=server_stopping" in server.log_text(), 20,
                     what="the server to start draining")
        probe.request("GET", "/readyz")
        resp = probe.getresponse()
        text = resp.read().decode()
        self.assertEqual(resp.status, 503, text)
        self.assertIn("draining: yes", text.splitlines())
        upload.send(b"0\r\n\r\n")
        self.assertEqual(upload.getresponse().status, 202)
        self.assertEqual(server.proc.wait(30), 0)


@h.berth_only("berth's metrics")
class MetricsTest(OpsCase):
    # passes every second, but with a grace period: with none, a pass between a push's blobs
    # and its manifest collects the blobs (MANIFEST_BLOB_UNKNOWN on a loaded machine)
    server_config = {"gc": {"interval_seconds": 1, "grace_seconds": 600},
                     "lifecycle": {"interval_seconds": 1, "new_policy_delay_seconds": 0}}

    def test_promtool_accepts_the_metrics(self):
        repo = self.repo()
        img = h.build_image(layer_count=2, layer_size=2048)
        self.push_image_ok(repo, img, tag="v1")
        self.assertStatus(self.reg.get_manifest(repo, "v1"), 200)
        self.assertStatus(self.reg.get_blob(repo, img.layer_digests[0]), 200)
        self.assertStatus(self.reg.get_manifest(repo, "nope"), 404)
        self.get("/v2/", {"Authorization": "Basic Zm9vOmJhcg=="})
        text = self.scrape()
        self.promtool_check(text)
        # no repository names unless metrics.repository_series asks for them
        self.assertNotIn("berth_repository_", text)
        self.assertNotIn(repo, text)

    def test_requests_bytes_and_store_follow_the_traffic(self):
        before = parse_metrics(self.scrape())
        repo = self.repo()
        img = h.build_image(layer_count=2, layer_size=3000)
        self.push_image_ok(repo, img, tag="v1")
        layer = img.layer_digests[0]
        for _ in range(2):
            self.assertStatus(self.reg.get_blob(repo, layer), 200)
        self.assertStatus(self.reg.get_manifest(repo, "missing"), 404)
        after = parse_metrics(self.scrape())

        blob_route = dict(api="oci", route="/v2/{name}/blobs/{digest}")
        get_ok = dict(blob_route, method="GET", status="200")
        self.assertEqual(value(after, "berth_http_requests_total", **get_ok) -
                         value(before, "berth_http_requests_total", **get_ok), 2)
        missing = dict(api="oci", route="/v2/{name}/manifests/{reference}", method="GET",
                       status="404")
        self.assertEqual(value(after, "berth_http_requests_total", **missing) -
                         value(before, "berth_http_requests_total", **missing), 1)
        layer_size = len(img.blobs[layer])
        self.assertGreaterEqual(value(after, "berth_http_sent_bytes_total", **blob_route) -
                                value(before, "berth_http_sent_bytes_total", **blob_route),
                                2 * layer_size)
        pushed = sum(len(b) for b in img.blobs.values())
        received = total(after, "berth_http_received_bytes_total", api="oci") - \
            total(before, "berth_http_received_bytes_total", api="oci")
        self.assertGreaterEqual(received, pushed)
        hist = dict(blob_route, le="+Inf")
        self.assertEqual(value(after, "berth_http_request_duration_seconds_bucket", **hist),
                         value(after, "berth_http_request_duration_seconds_count", **blob_route))
        self.assertGreaterEqual(value(after, "berth_http_request_duration_seconds_count",
                                      **blob_route), 2)
        # config, layers and the manifest are blobs
        self.assertEqual(value(after, "berth_storage_blobs") - value(before, "berth_storage_blobs"),
                         len(img.blobs) + 1)
        self.assertEqual(value(after, "berth_storage_blob_bytes") -
                         value(before, "berth_storage_blob_bytes"),
                         pushed + len(img.manifest))
        # process metrics
        self.assertGreater(value(after, "process_resident_memory_bytes"), 1 << 20)
        self.assertGreater(value(after, "process_open_fds"), 3)
        self.assertLess(abs(value(after, "process_start_time_seconds") - time.time()), 3600)

    def test_open_connections_and_upload_sessions(self):
        base = parse_metrics(self.scrape())
        socks = [socket.create_connection(("127.0.0.1", self.server.port)) for _ in range(3)]
        try:
            # the listener hands a connection over once its first bytes arrive
            for s in socks:
                s.sendall(b"GET /v2/ HTTP/1.1\r\n")
            sessions = [h.expect_status(self.reg.start_upload(self.repo()), 202)
                        for _ in range(2)]
            self.assertEqual(len(sessions), 2)

            def counted():
                m = parse_metrics(self.scrape())
                return m if value(m, "berth_http_open_connections") >= \
                    value(base, "berth_http_open_connections") + 3 else None
            now = h.wait_until(counted, 10, what="three more open connections")
            self.assertEqual(value(now, "berth_upload_sessions") -
                             value(base, "berth_upload_sessions"), 2)
        finally:
            for s in socks:
                s.close()

    def test_jobs_are_counted(self):
        def passes():
            m = parse_metrics(self.scrape())
            return m if (value(m, "berth_gc_passes_total", result="ok") >= 1 and
                         value(m, "berth_lifecycle_runs_total") >= 1) else None
        m = h.wait_until(passes, 120, interval=0.5, what="a GC pass and a lifecycle run")
        self.assertGreaterEqual(value(m, "berth_gc_duration_seconds_count"), 1)
        self.assertIn(("berth_gc_freed_bytes_total", ()), m)

    def test_lifecycle_evaluations_and_deletions_are_counted(self):
        before = parse_metrics(self.scrape())
        repo = self.repo()
        for tag in ("v1", "v2", "v3"):
            self.push_image_ok(repo, h.build_image(layer_count=1, layer_size=512), tag=tag)
        policy = json.dumps({"rules": [{
            "rulePriority": 1, "description": "keep the newest image only",
            "action": {"type": "expire"},
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan",
                          "countNumber": 1}}]})
        self.assertStatus(self.reg.ecr("PutLifecyclePolicy", {
            "repositoryName": repo, "lifecyclePolicyText": policy}), 200)

        def expired():
            m = parse_metrics(self.scrape())
            grew = value(m, "berth_lifecycle_expired_images_total") - \
                value(before, "berth_lifecycle_expired_images_total")
            return m if grew >= 2 else None
        m = h.wait_until(expired, 120, interval=0.5, what="the lifecycle run expiring two images")
        self.assertEqual(value(m, "berth_lifecycle_expired_images_total") -
                         value(before, "berth_lifecycle_expired_images_total"), 2)
        self.assertGreaterEqual(value(m, "berth_lifecycle_evaluated_images_total") -
                                value(before, "berth_lifecycle_evaluated_images_total"), 3)
        self.assertGreaterEqual(value(m, "berth_lifecycle_evaluated_repositories_total") -
                                value(before, "berth_lifecycle_evaluated_repositories_total"), 1)
        resp = self.reg.ecr("DescribeImages", {"repositoryName": repo})
        self.assertEqual(len(resp.json()["imageDetails"]), 1)

    def test_scans_are_counted(self):
        repo = self.repo()
        img = h.build_image(layer_count=1, layer_size=512)
        self.push_image_ok(repo, img, tag="v1")
        before = parse_metrics(self.scrape())
        status, doc, _ = ecr_call(self.reg, "StartImageScan",
                                  {"repositoryName": repo, "imageId": {"imageTag": "v1"}})
        self.assertEqual(status, 200, doc)

        def scanned():
            m = parse_metrics(self.scrape())
            return m if total(m, "berth_scans_total") > total(before, "berth_scans_total") \
                else None
        m = h.wait_until(scanned, 60, interval=0.2, what="the scan to be counted")
        self.assertEqual(total(m, "berth_scans_total") - total(before, "berth_scans_total"), 1)
        self.assertEqual(value(m, "berth_scan_duration_seconds_count") -
                         value(before, "berth_scan_duration_seconds_count"), 1)
        self.assertIn(("berth_scan_queue_jobs", (("state", "waiting"),)), m)


@h.berth_only("berth's metrics")
class RepositoryMetricsTest(OpsCase):
    """metrics.repository_series: pushes and pulls by repository for the first N
    repositories, the rest under repository="_other"; off by default (MetricsTest's server
    has none)."""
    server_config = {"metrics": {"repository_series": 2}}

    def test_pushes_and_pulls_by_repository_bounded(self):
        first, second, third = self.repo("-a"), self.repo("-b"), self.repo("-c")
        img = h.build_image(layer_count=1, layer_size=1024)
        self.push_image_ok(first, img, tag="v1")
        # ECR's PutImage of the same manifest under another tag is a push too
        resp = self.reg.ecr("PutImage", {"repositoryName": first, "imageTag": "v2",
                                         "imageManifest": img.manifest.decode()})
        self.assertStatus(resp, 200)
        for _ in range(2):
            self.assertStatus(self.reg.get_manifest(first, "v1"), 200)
        self.assertStatus(self.reg.get_manifest(first, "v1", method="HEAD"), 200)  # no pull
        self.assertStatus(self.reg.get_manifest(first, "missing"), 404)  # no pull
        resp = self.reg.ecr("BatchGetImage", {"repositoryName": first,
                                              "imageIds": [{"imageTag": "v1"}]})
        self.assertStatus(resp, 200)
        self.push_image_ok(second, img, tag="v1")
        self.assertStatus(self.reg.get_manifest(second, img.digest), 200)
        self.push_image_ok(third, img, tag="v1")
        self.assertStatus(self.reg.get_manifest(third, "v1"), 200)
        self.assertStatus(self.reg.get_manifest(third, "v1"), 200)
        text = self.scrape()
        self.promtool_check(text)
        m = parse_metrics(text)
        self.assertEqual(value(m, "berth_repository_pushes_total", repository=first), 2)
        self.assertEqual(value(m, "berth_repository_pulls_total", repository=first), 3)
        self.assertEqual(value(m, "berth_repository_pushes_total", repository=second), 1)
        self.assertEqual(value(m, "berth_repository_pulls_total", repository=second), 1)
        self.assertEqual(value(m, "berth_repository_pushes_total", repository="_other"), 1)
        self.assertEqual(value(m, "berth_repository_pulls_total", repository="_other"), 2)
        self.assertNotIn(third, text)
        # N + 1 series per family, whatever else is pushed
        for name in ("berth_repository_pushes_total", "berth_repository_pulls_total"):
            self.assertEqual(len([k for k in m if k[0] == name]), 3, name)


class PrometheusServer:
    """Debian's prometheus on 127.0.0.1:<free port>, scraping one target every second."""

    def __init__(self, target_port, basic_auth=None):
        self.tmp = tempfile.mkdtemp(prefix="berth-prom-")
        self.port = h.free_port()
        job = ["scrape_configs:", "  - job_name: berth", "    metrics_path: /metrics",
               "    static_configs:", "      - targets: ['127.0.0.1:%d']" % target_port]
        if basic_auth:
            job += ["    basic_auth:", "      username: %s" % json.dumps(basic_auth[0]),
                    "      password: %s" % json.dumps(basic_auth[1])]
        config = ["global:", "  scrape_interval: 1s", "  scrape_timeout: 1s"] + job
        self.config = os.path.join(self.tmp, "prometheus.yml")
        with open(self.config, "w") as f:
            f.write("\n".join(config) + "\n")
        self.log = open(os.path.join(self.tmp, "prometheus.log"), "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, "--config.file=" + self.config,
             "--storage.tsdb.path=" + os.path.join(self.tmp, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, cwd=self.tmp)

    def api(self, path, **params):
        url = "http://127.0.0.1:%d/api/v1/%s" % (self.port, path)
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.load(r)
        except OSError:
            return None

    def log_tail(self):
        with open(os.path.join(self.tmp, "prometheus.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")[-3000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


@h.berth_only("berth's metrics")
class MetricsAuthTest(OpsCase):
    server_config = {"auth": KEYS_CONFIG, "metrics": {"require_auth": True}}

    def test_metrics_ask_for_an_access_key(self):
        resp = self.assertStatus(self.get("/metrics"), 401)
        self.assertEqual(resp.header("WWW-Authenticate"), 'Basic realm="berth metrics"')
        self.assertStatus(self.get("/metrics", basic(KEY[0], "wrong-secret-0123456789")), 401)
        self.assertStatus(self.get("/v2/", basic(KEY[0], "another-wrong-secret-01234")), 401)
        # probes stay open
        self.assertStatus(self.get("/healthz"), 200)
        m = parse_metrics(self.scrape(basic(*KEY)))
        self.assertGreaterEqual(value(m, "berth_auth_failures_total", reason="bad_secret"), 2)
        self.assertGreaterEqual(
            value(m, "berth_auth_failures_total", reason="missing_credentials"), 1)

    def test_a_real_prometheus_scrapes_berth(self):
        if not os.access(PROMETHEUS, os.X_OK):
            self.fail("%s is missing: scripts/setup-deps.sh installs Debian's prometheus"
                      % PROMETHEUS)
        prom = PrometheusServer(self.server.port, basic_auth=KEY)
        self.addCleanup(prom.stop)

        def target_up():
            doc = prom.api("targets")
            if prom.proc.poll() is not None:
                raise AssertionError("prometheus exited:\n" + prom.log_tail())
            targets = (doc or {}).get("data", {}).get("activeTargets", [])
            return targets[0] if targets and targets[0].get("health") == "up" else None
        try:
            target = h.wait_until(target_up, 120, interval=0.25, what="prometheus's target up")
        except AssertionError:
            raise AssertionError("target never up: %s\n%s"
                                 % (prom.api("targets"), prom.log_tail()))
        self.assertEqual(target["lastError"], "")
        self.assertEqual(target["scrapeUrl"], "http://127.0.0.1:%d/metrics" % self.server.port)

        def scraped_twice():
            doc = prom.api("query", query='berth_http_requests_total{route="/metrics",'
                                          'status="200",job="berth"}')
            res = (doc or {}).get("data", {}).get("result", [])
            return res if res and float(res[0]["value"][1]) >= 2 else None
        res = h.wait_until(scraped_twice, 60, interval=0.25, what="two scrapes counted")
        self.assertEqual(res[0]["metric"]["api"], "ops")
        doc = prom.api("query", query="process_resident_memory_bytes")
        self.assertGreater(float(doc["data"]["result"][0]["value"][1]), 0)


@h.berth_only("berth's log format")
class JsonLogTest(OpsCase):
    server_config = {"log": {"format": "json"}}

    def test_every_line_is_a_json_object(self):
        resp = self.assertStatus(self.get("/v2/_catalog"), 200)
        rid = resp.header("X-Request-Id")

        def access():
            for line in self.server.log_text().splitlines():
                if rid in line:
                    return json.loads(line)
            return None
        doc = h.wait_until(access, 30, what="the access line")
        self.assertEqual(doc["event"], "access")
        self.assertEqual(doc["level"], "info")
        self.assertEqual(doc["req"], rid)
        self.assertEqual(doc["status"], 200)
        self.assertEqual(doc["path"], "/v2/_catalog")
        self.assertRegex(doc["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        lines = [ln for ln in self.server.log_text().splitlines()
                 if ln and not ln.startswith("=== start")]
        self.assertGreater(len(lines), 3)
        for line in lines:
            obj = json.loads(line)
            self.assertIn("ts", obj)
            self.assertIn("event", obj)

    def test_bad_format_is_refused(self):
        rc, out = h.run_berth(["serve", "--root", self.server.root, "--listen", "127.0.0.1:0"],
                              env={"BERTH_LOG_FORMAT": "yaml"})
        self.assertEqual(rc, 2, out)
        self.assertIn("log.format must be text or json", out)


if __name__ == "__main__":
    h.main()
