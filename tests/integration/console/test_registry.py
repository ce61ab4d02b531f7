"""The console's registry page: GET /ui/api/registry (storage by repository, garbage
collection and its last passes, the vulnerability database and scan queue, background
jobs, the server's version and configuration without secrets) and POST /ui/api/gc (an
administrator's key, with the CSRF token), with their refusals; then the page itself in
headless Chromium: an administrator runs a garbage collection pass from it, a read-only
key sees no button and a forced request is refused; axe-core finds no serious or critical
violation."""

import datetime
import json
import os
import re
import shutil
import socket
import tempfile
import time

import clients as c  # first: it cleans the environment botocore reads
import berth_harness as h
import auth_helpers as e
import scan_helpers as sh
from browser_helpers import Browser
from test_console import ConsoleClient

CONFIG_SECRET = "config-key-secret-0123456789abcdef"
PG_LIKE_SECRET = "postgresql://berth:pg-password-42@db.example/berth"
# garbage collection only when asked for (the hour never passes), nothing kept by age;
# a config key whose secret must never show
CONFIG = {"gc": {"interval_seconds": 3600, "grace_seconds": 0},
          # the activity history written every second, not every minute
          "metrics": {"activity_sample_seconds": 1},
          "auth": {"keys": [{"name": "cfgkey", "access_key_id": "AKIDCONFIG0000000001",
                             "secret_access_key": CONFIG_SECRET,
                             "permissions": ["pull:cfg/*"]}]}}


def registry(cl, expect=200, csrf=True):
    r = cl.reg.request("GET", "/ui/api/registry", headers=cl.headers(csrf))
    if r.status != expect:
        raise AssertionError("GET /ui/api/registry: %s" % r.describe())
    return r


def start_gc(cl, expect=202, csrf=True):
    r = cl.reg.request("POST", "/ui/api/gc", headers=cl.headers(csrf))
    if r.status != expect:
        raise AssertionError("POST /ui/api/gc: %s" % r.describe())
    return r.json()


def wait_requested_gc(cl, before):
    """The registry document once a requested pass started after `before` has finished."""
    deadline = time.monotonic() + 120
    while True:
        doc = registry(cl).json()
        runs = doc["gc"]["runs"]
        if runs and runs[0]["trigger"] == "requested" and runs[0]["startedAt"] != before:
            return doc
        if time.monotonic() > deadline:
            raise AssertionError("no requested gc pass finished: %s" % json.dumps(doc["gc"]))
        time.sleep(0.2)


def push_sized(server, admin):
    """big/one (3 layers of 64 KiB), small/two, small/three (smaller), pushed as admin."""
    reg = e.AuthRegistry(server.base_url, e.basic(*admin))
    images = {"big/one": h.build_image(layer_count=3, layer_size=65536, compress=False),
              "small/two": h.build_image(layer_count=2, layer_size=1024, compress=False),
              "small/three": h.build_image(layer_count=1, layer_size=1024, compress=False)}
    for repo, img in images.items():
        h.expect_status(reg.push_image(repo, img, tag="v1"), 201)
    return reg, images


def size_of(img):
    return sum(len(b) for b in img.blobs.values()) + len(img.manifest)


class RegistryApiTest(h.ServerTestCase):
    server_config = CONFIG

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = e.keys_create(cls.server, "registry-admin")
        cls.reader = e.keys_create(cls.server, "registry-reader", "pull")
        cls.scoped = e.keys_create(cls.server, "registry-scoped", "pull:small/*")
        cls.adm = ConsoleClient(cls.reg)
        cls.adm.sign_in(*cls.admin)
        cls.authreg, cls.images = push_sized(cls.server, cls.admin)

    def test_refusals(self):
        anon = ConsoleClient(self.reg)
        self.assertEqual(registry(anon, 401).json()["error"], "SignInRequired")
        self.assertEqual(start_gc(anon, 401)["error"], "SignInRequired")
        reader = ConsoleClient(self.reg)
        reader.sign_in(*self.reader)
        # the session's CSRF token, as on every console endpoint
        self.assertEqual(registry(reader, 403, csrf=False).json()["error"], "InvalidCsrfToken")
        self.assertEqual(start_gc(self.adm, 403, csrf=False)["error"], "InvalidCsrfToken")
        # a read-only key sees the page without the button, and is refused a pass
        doc = registry(reader).json()
        self.assertFalse(doc["mayStartGc"])
        self.assertTrue(registry(self.adm).json()["mayStartGc"])
        out = start_gc(reader, 403)
        self.assertEqual(out["error"], "AccessDeniedException")
        self.assertIn("administrator", out["message"])
        # a key with push and delete is no administrator either
        pusher = e.keys_create(self.server, "registry-pusher", "push", "delete")
        cl = ConsoleClient(self.reg)
        cl.sign_in(*pusher)
        self.assertFalse(registry(cl).json()["mayStartGc"])
        self.assertEqual(start_gc(cl, 403)["error"], "AccessDeniedException")
        # the methods
        r = self.reg.request("POST", "/ui/api/registry", headers=self.adm.headers())
        self.assertEqual(r.status, 405)
        r = self.reg.request("GET", "/ui/api/gc", headers=self.adm.headers())
        self.assertEqual(r.status, 405)
        # an ended session
        r = self.reg.request("DELETE", "/ui/api/session", headers=reader.headers())
        self.assertEqual(r.status, 200)
        self.assertEqual(registry(reader, 401).json()["error"], "SessionEnded")

    def test_storage_by_repository(self):
        doc = registry(self.adm).json()
        st = doc["storage"]
        blobs = set()
        for img in self.images.values():
            blobs.update(img.blobs)
            blobs.add(img.digest)
        self.assertEqual(st["blobs"], len(blobs))
        self.assertEqual(st["blobBytes"], sum(size_of(i) for i in self.images.values()))
        # (gone/soon, emptied by test_gc_run_on_request, may be listed last)
        names = [r["repositoryName"] for r in st["largest"] if r["repositoryName"] != "gone/soon"]
        self.assertEqual(names, ["big/one", "small/two", "small/three"])
        sizes = {r["repositoryName"]: r["sizeInBytes"] for r in st["largest"]}
        self.assertEqual([sizes[n] for n in names], [size_of(self.images[n]) for n in names])
        self.assertIn(st["repositoryCount"], (3, 4))
        self.assertEqual(st["others"], {"count": 0, "bytes": 0})
        self.assertEqual(doc["scope"], "registry")

    def test_scoped_key_sees_only_its_repositories(self):
        # a key allowed everything on small/* only: its repositories' figures, nothing of
        # the registry's (no totals, archive, GC, jobs, activity, configuration), and no
        # other repository's name or size anywhere in /ui/api
        for spec in ("pull:small/*", "admin:small/*"):
            key = e.keys_create(self.server, "registry-team-" + spec.split(":")[0], spec)
            cl = ConsoleClient(self.reg)
            cl.sign_in(*key)
            r = registry(cl)
            doc = r.json()
            self.assertEqual(doc["scope"], "repositories")
            self.assertEqual(set(doc), {"scope", "version", "storage", "mayStartGc"})
            st = doc["storage"]
            self.assertEqual(set(st), {"repositoryCount", "repositoryBytes", "largest", "others"})
            self.assertEqual([x["repositoryName"] for x in st["largest"]],
                             ["small/two", "small/three"])
            self.assertEqual(st["repositoryBytes"], size_of(self.images["small/two"]) +
                             size_of(self.images["small/three"]))
            self.assertFalse(doc["mayStartGc"])
            listed = cl.get("/ui/api/repositories?limit=100", {"X-CSRF-Token": cl.csrf})
            self.assertEqual(listed.status, 200, listed.describe())
            self.assertEqual(listed.json()["total"], 2)
            for body in (r.body.decode(), listed.body.decode()):
                self.assertNotIn("big/one", body)
                self.assertNotIn("gone/soon", body)
                self.assertNotIn('"%d"' % size_of(self.images["big/one"]), body)
                self.assertNotIn(str(size_of(self.images["big/one"])), body)
            self.assertEqual(start_gc(cl, 403)["error"], "AccessDeniedException")
        # ecr:DescribeRegistry is what shows the registry-wide figures
        key = e.keys_create(self.server, "registry-describer", "pull:small/*",
                            "ecr:DescribeRegistry")
        cl = ConsoleClient(self.reg)
        cl.sign_in(*key)
        doc = registry(cl).json()
        self.assertEqual(doc["scope"], "registry")
        self.assertIn("config", doc)
        self.assertGreaterEqual(doc["storage"]["blobs"], 3)
        self.assertEqual([x["repositoryName"] for x in doc["storage"]["largest"]],
                         ["small/two", "small/three"])
        self.assertFalse(doc["mayStartGc"])

    def test_server_summary_without_secrets(self):
        r = registry(self.adm)
        doc = r.json()
        self.assertEqual(r.header("Cache-Control"), "no-store")
        status, out = h.run_berth(["--version"])
        self.assertIn(doc["version"], out)
        cfg = doc["config"]
        self.assertEqual(cfg["authScheme"], "basic")
        self.assertEqual(cfg["storageBackend"], "filesystem")
        self.assertIn(cfg["metadataBackend"], ("sqlite", "postgres"))
        self.assertEqual((cfg["gcIntervalSeconds"], cfg["gcGraceSeconds"]), (3600, 0))
        self.assertFalse(cfg["tls"])
        # no replica_name: this host's name and the listen port
        self.assertEqual(cfg["replicaName"], "%s:%d" % (socket.gethostname()[:40],
                                                        self.server.port))
        self.assertNotIn(CONFIG_SECRET, r.body.decode())
        self.assertNotIn(self.admin[1], r.body.decode())
        self.assertNotIn("AKIDCONFIG", r.body.decode())
        for word in ("secret", "password", "dsn", "Dsn"):
            self.assertNotIn(word, json.dumps(cfg))
        jobs = {j["name"]: j for j in doc["jobs"]}
        self.assertEqual(set(jobs), {"gc", "lifecycle", "lifecycle-preview"})
        self.assertTrue(jobs["gc"]["enabled"])
        self.assertEqual(jobs["gc"]["intervalSeconds"], 3600)
        # the first periodic pass comes after a minute at most, then every hour
        self.assertGreater(jobs["gc"]["nextRunAt"], time.time() - 5)
        self.assertLess(jobs["gc"]["nextRunAt"], time.time() + 3605)
        self.assertLessEqual(doc["startedAt"], time.time() + 1)

    def test_vulnerability_database_and_queue(self):
        doc = registry(self.adm).json()
        db = doc["scan"]["database"]
        if not db["present"]:
            self.assertIn("vulndb import", db["hint"])
            work = tempfile.mkdtemp(prefix="berth-registry-osv-")
            self.addCleanup(shutil.rmtree, work, True)
            before = time.time()
            osv = sh.write_osv(os.path.join(work, "osv"), sh.OSV_RECORDS)
            status, out = h.run_berth(["vulndb", "import", osv], server=self.server)
            self.assertEqual(status, 0, out)
            db = registry(self.adm).json()["scan"]["database"]
            self.assertGreaterEqual(db["updatedAt"], before - 1)
        self.assertTrue(db["present"])
        self.assertGreater(db["records"], 0)
        self.assertGreater(db["fileBytes"], 0)
        self.assertTrue(db["ecosystems"])
        self.assertIn("Debian:12", [x["name"] for x in db["ecosystems"]])
        self.assertEqual(doc["scan"]["waiting"] + doc["scan"]["running"], 0)

    def test_gc_run_on_request(self):
        # an image deleted: its unique layers become garbage
        doomed = h.build_image(layer_count=2, layer_size=8192, compress=False)
        h.expect_status(self.authreg.push_image("gone/soon", doomed, tag="x"), 201)
        status, out = self.adm.ecr("BatchDeleteImage", {"repositoryName": "gone/soon",
                                                         "imageIds": [{"imageTag": "x"}]})
        self.assertEqual(status, 200, out)
        self.assertFalse(out.get("failures"), out)
        doc = registry(self.adm).json()
        before = doc["gc"]["runs"][0]["startedAt"] if doc["gc"]["runs"] else None
        blobs_before = doc["storage"]["blobs"]
        self.assertEqual(start_gc(self.adm), {"requested": True})
        doc = wait_requested_gc(self.adm, before)
        run = doc["gc"]["runs"][0]
        self.assertEqual(run["result"], "ok")
        self.assertLessEqual(run["startedAt"], run["finishedAt"])
        # the passes since (the first periodic one, after a minute, may have come first)
        runs = []
        for r in doc["gc"]["runs"]:
            if r["startedAt"] == before:
                break
            runs.append(r)
        deleted = sum(r["blobsDeleted"] for r in runs)
        self.assertGreaterEqual(deleted, len(doomed.blobs) + 1)
        self.assertGreaterEqual(sum(r["bytesFreed"] for r in runs), size_of(doomed))
        self.assertEqual(doc["storage"]["blobs"], blobs_before - deleted)
        self.assertFalse(doc["gc"]["requested"])
        # the counters since the start (the same as /metrics) saw the passes too
        act = doc["activity"]
        self.assertGreaterEqual(act["gc"]["passesOk"], len(runs))
        self.assertGreaterEqual(act["gc"]["bytesFreed"], size_of(doomed))

    def test_activity_counters(self):
        # a request is counted when it is done, which may be just after its answer
        # arrived: wait for the counters to catch up
        want = sum(size_of(i) for i in self.images.values())

        def counted():
            act = registry(self.adm).json()["activity"]
            apis = {r["api"]: r for r in act["requests"]}
            # and this page's own calls (the one that asks is counted after its answer)
            ok = apis.get("oci", {}).get("2xx", 0) >= 3 * 3 and \
                apis["oci"]["bytesIn"] >= want and apis.get("console", {}).get("2xx", 0) > 0
            return (act, apis) if ok else None
        act, apis = h.wait_until(counted, 30, interval=0.1, what="the pushes counted")
        self.assertLessEqual(act["since"], time.time() + 1)
        before = apis["console"]["4xx"]
        registry(ConsoleClient(self.reg), 401)

        def refused_counted():
            apis = {r["api"]: r for r in registry(self.adm).json()["activity"]["requests"]}
            return apis["console"]["4xx"] >= before + 1 and apis
        apis = h.wait_until(refused_counted, 30, interval=0.1, what="the 401 counted")
        self.assertEqual(apis["console"]["4xx"], before + 1)
        for key in ("authFailures", "openConnections"):
            self.assertIn(key, act)
        self.assertEqual(set(act["scans"]), {"complete", "failed"})


class RegistryArchiveTest(h.ServerTestCase):
    # a restored image stays ACTIVATING for the hour
    server_config = {"storage": {"archive": {"restore_seconds": 3600}}}

    @classmethod
    def setUpClass(cls):
        # holds the tier job before each move until arch/back is restored: without it a
        # busy machine's job could move arch/back's blobs between its two storage-class calls
        cls.hold_dir = tempfile.mkdtemp(prefix="berth-hold-")
        cls.hold = os.path.join(cls.hold_dir, "hold")
        cls.server_env = {"BERTH_TEST_HOLD_ARCHIVE": cls.hold}
        super().setUpClass()
        cls.addClassCleanup(shutil.rmtree, cls.hold_dir, True)

    def test_archive_figures(self):
        admin = e.keys_create(self.server, "registry-admin")
        cl = ConsoleClient(self.reg)
        cl.sign_in(*admin)
        ar = registry(cl).json()["archive"]
        self.assertEqual(ar, {"tier": True, "archivedImages": 0, "activatingImages": 0,
                              "blobs": 0, "bytes": 0, "storedBytes": 0})
        reg = e.AuthRegistry(self.server.base_url, e.basic(*admin))
        kept = h.build_image(layer_count=2, layer_size=32768, compress=False)
        back = h.build_image(layer_count=1, layer_size=4096, compress=False)
        h.expect_status(reg.push_image("arch/kept", kept, tag="v1"), 201)
        h.expect_status(reg.push_image("arch/back", back, tag="v1"), 201)
        open(self.hold, "w").close()
        for repo in ("arch/kept", "arch/back"):
            status, out = cl.ecr("UpdateImageStorageClass", {
                "repositoryName": repo, "imageId": {"imageTag": "v1"},
                "targetStorageClass": "ARCHIVE"})
            self.assertEqual(status, 200, out)
        status, out = cl.ecr("UpdateImageStorageClass", {
            "repositoryName": "arch/back", "imageId": {"imageTag": "v1"},
            "targetStorageClass": "STANDARD"})
        self.assertEqual((status, out.get("imageStatus")), (200, "ACTIVATING"), out)
        os.unlink(self.hold)
        # the archive tier's job moves the blobs only arch/kept uses (its layers and config)
        h.wait_until(lambda: registry(cl).json()["archive"]["blobs"] >= len(kept.blobs), 60,
                     interval=0.2, what="arch/kept's blobs in the archive tier")
        ar = registry(cl).json()["archive"]
        self.assertEqual((ar["archivedImages"], ar["activatingImages"]), (1, 1))
        self.assertEqual(ar["blobs"], len(kept.blobs))
        self.assertEqual(ar["bytes"], sum(len(b) for b in kept.blobs.values()))
        self.assertGreater(ar["storedBytes"], 0)
        # uncompressed layers: zstd copies are smaller
        self.assertLess(ar["storedBytes"], ar["bytes"])


class RegistryGcHistoryTest(h.ServerTestCase):
    server_config = CONFIG

    def test_history_survives_a_restart_and_lists_berth_gc(self):
        admin = e.keys_create(self.server, "registry-admin")
        cl = ConsoleClient(self.reg)
        cl.sign_in(*admin)
        reg = e.AuthRegistry(self.server.base_url, e.basic(*admin))
        doomed = h.build_image(layer_count=2, layer_size=8192, compress=False)
        h.expect_status(reg.push_image("gone/soon", doomed, tag="x"), 201)
        status, out = cl.ecr("BatchDeleteImage", {"repositoryName": "gone/soon",
                                                   "imageIds": [{"imageTag": "x"}]})
        self.assertEqual(status, 200, out)
        before = registry(cl).json()["gc"]["runs"]
        self.assertEqual(start_gc(cl), {"requested": True})
        doc = wait_requested_gc(cl, before[0]["startedAt"] if before else None)
        requested = doc["gc"]["runs"][0]
        self.assertEqual((requested["trigger"], requested["result"], requested["error"]),
                         ("requested", "ok", ""))
        # named by the replica that ran it: this host and the server's port
        self.assertEqual(requested["node"], "%s:%d" % (socket.gethostname()[:40], self.server.port))
        # a pass from the command line is recorded too, named by its host
        status, out = h.run_berth(["gc"], server=self.server)
        self.assertEqual(status, 0, out)
        runs = registry(cl).json()["gc"]["runs"]
        self.assertEqual(runs[0]["trigger"], "command")
        self.assertEqual(runs[0]["result"], "ok")
        self.assertEqual(runs[0]["node"], socket.gethostname())
        self.assertIn(requested, runs[1:])
        freed = sum(r["bytesFreed"] for r in runs)
        self.assertGreaterEqual(freed, size_of(doomed))
        # a restart forgets nothing
        self.server.stop()
        self.server.start(reuse_port=True)
        type(self).reg = self.server.registry()
        cl = ConsoleClient(self.reg)
        cl.sign_in(*admin)
        doc = registry(cl).json()
        for r in runs:
            self.assertIn(r, doc["gc"]["runs"])
        self.assertGreater(doc["startedAt"], runs[0]["finishedAt"])


def history_sums(doc, view):
    """The columns of the activity history's view summed, by name."""
    hist = doc["history"]
    cols = hist["columns"]
    return {c: sum(b[i] for b in hist[view]["buckets"]) for i, c in enumerate(cols) if i}


def since_start_2xx(doc):
    return sum(r["2xx"] for r in doc["activity"]["requests"])


def history_apis(doc, view):
    """The activity history's view by API: {api: {"2xx": n, ..., "bytesOut": n}}."""
    return {r["api"]: r for r in doc["history"][view]["apis"]}


def apis_summed(doc, view):
    """The view's APIs summed column by column, named as history_sums names them."""
    out = {}
    for r in doc["history"][view]["apis"]:
        for k, v in r.items():
            if k != "api":
                out[k] = out.get(k, 0) + v
    return out


def api_buckets_summed(doc, view):
    """Each API's buckets (apiBuckets) summed, in history_apis' shape; and a check of
    their order and place: by API name, each oldest first, at a bucket start within the
    view, only buckets with requests."""
    v = doc["history"][view]
    cols = doc["history"]["columns"][1:8]
    names = [s["api"] for s in v["apiBuckets"]]
    assert names == sorted(names) and len(set(names)) == len(names), names
    out = {}
    for s in v["apiBuckets"]:
        ats = [b[0] for b in s["buckets"]]
        assert ats == sorted(ats) and len(set(ats)) == len(ats), (s["api"], ats)
        for b in s["buckets"]:
            assert len(b) == 8, b
            assert v["from"] <= b[0] < v["to"] and b[0] % v["step"] == 0, (v, b)
            assert sum(b[1:6]) > 0, b
        out[s["api"]] = dict({"api": s["api"]}, **{c: sum(b[1 + i] for b in s["buckets"])
                                                   for i, c in enumerate(cols)})
    return out


class RegistryReplicaNameTest(h.ServerTestCase):
    """replica_name names this server in the GC history (a requested pass and `berth gc`
    with the same configuration) and in the server summary, instead of host:port."""
    NAME = "edge/berth:5000"
    server_config = dict(CONFIG, replica_name=NAME)

    def test_gc_history_names_the_configured_replica(self):
        admin = e.keys_create(self.server, "registry-admin")
        cl = ConsoleClient(self.reg)
        cl.sign_in(*admin)
        doc = registry(cl).json()
        self.assertEqual(doc["config"]["replicaName"], self.NAME)
        before = doc["gc"]["runs"]
        self.assertEqual(start_gc(cl), {"requested": True})
        doc = wait_requested_gc(cl, before[0]["startedAt"] if before else None)
        self.assertEqual(doc["gc"]["runs"][0]["node"], self.NAME)
        status, out = h.run_berth(["gc"], server=self.server)
        self.assertEqual(status, 0, out)
        runs = registry(cl).json()["gc"]["runs"]
        self.assertEqual((runs[0]["trigger"], runs[0]["node"]), ("command", self.NAME))
        # a name that is not printable ASCII is refused at start
        status, out = h.run_berth(["gc"], server=self.server,
                                  env={"BERTH_REPLICA_NAME": "bad\tname"})
        self.assertEqual(status, 2, out)
        self.assertIn("replica_name", out)


class RegistryActivityHistoryTest(h.ServerTestCase):
    server_config = {"metrics": {"activity_sample_seconds": 1}}

    def test_history_survives_a_restart(self):
        admin = e.keys_create(self.server, "registry-admin")
        cl = ConsoleClient(self.reg)
        cl.sign_in(*admin)
        doc = registry(cl).json()
        self.assertEqual(doc["history"]["sampleSeconds"], 1)
        self.assertEqual(doc["history"]["minutes"]["step"], 60)
        self.assertEqual(doc["history"]["hours"]["step"], 3600)
        self.assertAlmostEqual(doc["history"]["minutes"]["to"] - doc["history"]["minutes"]["from"],
                               86400, delta=1)
        reg = e.AuthRegistry(self.server.base_url, e.basic(*admin))
        img = h.build_image(layer_count=2, layer_size=65536, compress=False)
        h.expect_status(reg.push_image("hist/app", img, tag="v1"), 201)
        registry(ConsoleClient(self.reg), 401)

        def written():
            doc = registry(cl).json()
            m = history_sums(doc, "minutes")
            return doc if m["2xx"] >= 6 and m["bytesIn"] >= size_of(img) and m["4xx"] >= 1 \
                else None
        doc = h.wait_until(written, 30, interval=0.2, what="the pushes in the history")
        # each API over time: the OCI API's pushes in its minutes, summed as its row
        series = {s["api"]: s["buckets"] for s in doc["history"]["minutes"]["apiBuckets"]}
        self.assertGreaterEqual(sum(b[1] for b in series["oci"]), 6)
        self.assertGreaterEqual(sum(b[6] for b in series["oci"]), size_of(img))
        self.assertGreaterEqual(sum(b[3] for b in series["console"]), 1)
        # by API: the pushes are the OCI API's, the refused call the console's
        apis = history_apis(doc, "minutes")
        self.assertGreaterEqual(apis["oci"]["2xx"], 6)
        self.assertGreaterEqual(apis["oci"]["bytesIn"], size_of(img))
        self.assertGreaterEqual(apis["console"]["4xx"], 1)
        self.assertEqual(apis["oci"]["5xx"], 0)
        # the hours hold the same requests, and the APIs add up to the totals (a sample
        # may land between the reads)

        def agree(d):
            tot = {k: v for k, v in history_sums(d, "minutes").items() if k != "authFailures"}
            return history_sums(d, "minutes") == history_sums(d, "hours") and \
                apis_summed(d, "minutes") == tot and \
                history_apis(d, "minutes") == history_apis(d, "hours") and \
                all(api_buckets_summed(d, v) == history_apis(d, v) for v in ("minutes", "hours"))
        h.wait_until(lambda: agree(registry(cl).json()), 30, interval=0.2,
                     what="hours, minutes and APIs agree")
        # a stop writes what is left: the history holds every request of the process,
        # by API too
        doc = registry(cl).json()
        before = since_start_2xx(doc)
        before_apis = {r["api"]: r for r in doc["activity"]["requests"]}
        self.server.stop()
        self.server.start(reuse_port=True)
        type(self).reg = self.server.registry()
        cl = ConsoleClient(self.reg)
        cl.sign_in(*admin)
        doc = registry(cl).json()
        self.assertLess(since_start_2xx(doc), before)  # the counters started again
        self.assertGreaterEqual(history_sums(doc, "minutes")["2xx"], before)
        self.assertGreaterEqual(history_sums(doc, "hours")["bytesIn"], size_of(img))
        for view in ("minutes", "hours"):
            apis = history_apis(doc, view)
            for api, was in before_apis.items():
                for k in ("2xx", "4xx", "bytesIn", "bytesOut"):
                    self.assertGreaterEqual(apis[api][k], was[k], (view, api, k))


class RegistryGcDisabledTest(h.ServerTestCase):
    server_config = {"gc": {"enabled": False}}

    def test_no_gc_thread(self):
        admin = e.keys_create(self.server, "registry-admin")
        cl = ConsoleClient(self.reg)
        cl.sign_in(*admin)
        doc = registry(cl).json()
        self.assertFalse(doc["mayStartGc"])
        self.assertFalse(doc["gc"]["enabled"])
        self.assertEqual(doc["gc"]["runs"], [])
        self.assertEqual(start_gc(cl, 409)["error"], "GarbageCollectionDisabled")


class RegistryBrowserTest(h.ServerTestCase):
    server_config = CONFIG

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.work = tempfile.mkdtemp(prefix="berth-registry-browser-")
        cls.addClassCleanup(shutil.rmtree, cls.work, True)
        cls.admin = e.keys_create(cls.server, "registry-admin")
        cls.reader = e.keys_create(cls.server, "registry-reader", "pull")
        cls.authreg, cls.images = push_sized(cls.server, cls.admin)
        osv = sh.write_osv(os.path.join(cls.work, "osv"), sh.OSV_RECORDS)
        status, out = h.run_berth(["vulndb", "import", osv], server=cls.server)
        assert status == 0, out
        cls.browser = Browser(cls.work)
        cls.addClassCleanup(cls.browser.close)

    def setUp(self):
        super().setUp()
        self.browser.s("DELETE", "/cookie")
        self.browser.go("about:blank")

    def sign_in(self, akid, secret):
        b = self.browser
        b.go(self.server.base_url + "/ui/#/registry")
        b.type(b.wait_for("#akid"), akid)
        b.type(b.wait_for("#secret"), secret)
        b.click(b.wait_for("#signin"))

    def test_admin_runs_gc_from_the_page(self):
        b = self.browser
        self.sign_in(*self.admin)
        b.wait_for("h1", "Registry")
        b.wait_for("#storage-rows a", "big/one")
        rows = [b.text(x) for x in b.find_all("#storage-rows tr")]
        self.assertTrue(rows[0].startswith("big/one"), rows)
        self.assertTrue(rows[1].startswith("small/two"), rows)
        self.assertGreater(int(b.text(b.wait_for("#vulndb-records"))), 0)
        b.wait_for("#vulndb-ecosystems", "Debian:12")
        # the blob count and the database's last import, as the API has them
        doc = b.s("POST", "/execute/async", {"args": [], "script": """
            const done = arguments[arguments.length - 1];
            fetch("/ui/api/session").then((r) => r.json()).then((s) =>
              fetch("/ui/api/registry", {headers: {"X-CSRF-Token": s.csrfToken}}))
              .then((r) => r.json()).then(done);"""})
        self.assertGreater(doc["storage"]["blobs"], 0)
        self.assertTrue(b.text(b.wait_for("#blob-total")).startswith(
            "%d blobs, " % doc["storage"]["blobs"]))
        imported = datetime.datetime.fromtimestamp(doc["scan"]["database"]["updatedAt"],
                                                   datetime.timezone.utc)
        b.wait_for("#vulndb-updated", imported.strftime("%Y-%m-%d %H:%M:%S UTC"))
        b.wait_for("#server-version", "berth " + doc["version"])
        # the configuration summary as the API has it (never a secret: see below)
        shown = dict(b.script("const dl = document.querySelector('#server dl');"
                              "return [...dl.querySelectorAll('dt')].map((dt) => "
                              "[dt.textContent, dt.nextElementSibling.textContent]);"))
        cfg = doc["config"]
        self.assertEqual({k: shown.get(k) for k in ("Listen", "Replica name", "Public URL",
                                                    "TLS", "Data root", "Storage", "Metadata",
                                                    "Auth", "Scan")},
                         {"Listen": cfg["listen"], "Replica name": cfg["replicaName"],
                          "Public URL": cfg["publicUrl"], "TLS": "no", "Data root": cfg["root"],
                          "Storage": "filesystem", "Metadata": cfg["metadataBackend"],
                          "Auth": "basic" + (", required" if cfg["authRequired"] else ""),
                          "Scan": "%d workers, built-in scanner"
                          % cfg["scanWorkers"]}, shown)
        b.wait_for("#job-rows td", "lifecycle")
        b.wait_for("#gc-runs-empty")
        b.wait_for("#archive-images", "0")
        # the activity history: the pushes of setUpClass, written within a second
        def charted():
            b.click(b.wait_for("#registry-refresh"))
            # the click redraws the page: read the chart once it is there again
            b.wait_for("#history-requests-minutes")
            label = b.script("const c = document.querySelector('#history-requests-minutes');"
                             "return c && c.getAttribute('aria-label')")
            return label if label and not label.startswith("Requests per minute, the last "
                                                           "24 hours: 0 in all") else None
        label = h.wait_until(charted, 30, interval=0.5, what="the history charted")
        self.assertRegex(label, r"^Requests per minute, the last 24 hours: \d+ in all \(\d+ 2xx")
        self.assertTrue(b.find_all("#history-requests-minutes rect.tc-ok"))
        b.click(b.wait_for("#history-hours"))
        b.wait_for("#history-body h3", "per hour")
        self.assertEqual(b.script("return document.querySelector('#history-hours')"
                                  ".getAttribute('aria-pressed')"), "true")
        self.assertTrue(b.find_all("#history-bytes-hours rect.tc-in"))
        # by API over the chosen range: a bar per API, read out with its numbers
        b.wait_for("#history-body h3", "By API, per hour")
        b.wait_for("#history-api-rows th", "oci")
        label = b.script("return [...document.querySelectorAll('#history-api-rows tr')]"
                         ".find((r) => r.querySelector('th').textContent === 'oci')"
                         ".querySelector('.barstack[role=img]').getAttribute('aria-label')")
        self.assertRegex(label, r"^oci: \d+ 2xx")
        # each API over time: a chart per API, read out with its figures
        b.wait_for("#history-body h3", "Requests by API per hour")
        b.wait_for("#history-api-charts-oci figcaption", "oci")
        label = b.script("return document.querySelector('#history-api-charts-oci-chart')"
                         ".getAttribute('aria-label')")
        self.assertRegex(label, r"^oci requests per hour, the last 30 days: \d+ in all "
                                r"\(\d+ 2xx.*\), at most \d+ in the hour from ")
        self.assertTrue(b.find_all("#history-api-charts-oci-chart rect.tc-ok"))
        self.assertEqual(b.script("return document.querySelector('#history-api-charts-oci-chart')"
                                  ".getAttribute('role')"), "img")
        # by keyboard: from the range buttons' first, Tab to the second... and back
        b.script("document.querySelector('#history-hours').focus()")
        # Shift+Tab: the previous button, "Last 24 hours"
        b.s("POST", "/actions", {"actions": [{"type": "key", "id": "kb", "actions": [
            {"type": "keyDown", "value": "\ue008"}, {"type": "keyDown", "value": "\ue004"},
            {"type": "keyUp", "value": "\ue004"}, {"type": "keyUp", "value": "\ue008"}]}]})
        self.assertEqual(b.script("return document.activeElement.id"), "history-minutes")
        b.keys("\ue007")  # Enter
        b.wait_for("#history-body h3", "By API, per minute")
        b.wait_for("#history-api-rows th", "oci")
        b.wait_for("#history-body h3", "Requests by API per minute")
        label = b.script("return document.querySelector('#history-api-charts-oci-chart')"
                         ".getAttribute('aria-label')")
        self.assertRegex(label, r"^oci requests per minute, the last 24 hours: \d+ in all "
                                r"\(\d+ 2xx")
        self.assertEqual(b.script("return document.querySelector('#history-minutes')"
                                  ".getAttribute('aria-pressed')"), "true")
        # the charts share one scale, so that their heights compare: each API's tallest
        # column is its busiest minute against the busiest minute of any API (oci's
        # pushes here; the console's few calls draw lower), as the text above them says
        tallest_columns = """
            return [...document.querySelectorAll('#history-api-charts svg')].map((svg) => {
              const cols = {};
              for (const r of svg.querySelectorAll('rect:not(.tc-bg)'))
                cols[r.getAttribute('x')] = (cols[r.getAttribute('x')] || 0) +
                  Number(r.getAttribute('height'));
              return [svg.id, svg.getAttribute('aria-label'), Math.max(...Object.values(cols))];
            });"""
        def two_apis():
            charts = b.script(tallest_columns)
            if len(charts) >= 2:
                return charts
            # the page's own calls reach the history within a second of being made, maybe
            # after the page read it: read it again (Refresh fetches it; the range buttons
            # only redraw what the page has, so they never showed the later calls)
            b.click(b.wait_for("#registry-refresh"))
            b.wait_for("#history-body h3", "Requests by API per minute")
            return None
        charts = h.wait_until(two_apis, 30, interval=0.5, what="a second API charted")
        peaks = {cid: int(re.search(r"at most (\d+) in the minute", label).group(1))
                 for cid, label, _ in charts}
        top = max(peaks.values())
        self.assertLess(min(peaks.values()), top, "an API quieter than the busiest: %r" % peaks)
        for cid, label, tallest in charts:
            self.assertAlmostEqual(tallest, max(2, 100 * peaks[cid] / top), delta=0.01,
                                   msg="%s: %s" % (cid, label))
            self.assertIn("a full column is %d requests in a minute" % top, label)
        b.wait_for("#history-api-charts-scale", "a full column is %d requests" % top)
        # asked for (a toggle button, by keyboard), each on its own scale, and said so
        toggle = "#history-api-charts-scale-toggle"
        self.assertEqual(b.script("return document.querySelector(arguments[0])"
                                  ".getAttribute('aria-pressed')", toggle), "false")
        b.script("document.querySelector(arguments[0]).focus()", toggle)
        b.keys("\ue007")  # Enter
        b.wait_for("#history-api-charts-scale", "Each chart on its own scale")
        self.assertEqual(b.script("return document.activeElement.id"), toggle[1:])
        self.assertEqual(b.script("return document.activeElement.getAttribute('aria-pressed')"),
                         "true")
        for cid, label, tallest in b.script(tallest_columns):
            self.assertAlmostEqual(tallest, 100, delta=0.01, msg=label)
            self.assertRegex(label, r"On its own scale: a full column is %d requests? in a "
                                    r"minute\.$" % peaks[cid])
        b.keys("\ue007")
        b.wait_for("#history-api-charts-scale", "One scale for every API")
        b.script("document.querySelector('#history-api-charts')"
                 ".scrollIntoView({block: 'center'})")
        b.screenshot("registry-api-charts.png")
        # the counters since the start have no table of their own while the history is kept
        self.assertFalse(b.find_all("#activity-rows"))
        self.assertNotIn(CONFIG_SECRET, b.page_text())
        self.assertEqual(b.accessibility(), [])
        b.screenshot("registry.png")
        # a narrow window (a phone, or 200% zoom): nothing wider than the page
        b.s("POST", "/window/rect", {"width": 420, "height": 900})
        try:
            b.wait_for("#storage-rows a", "big/one")
            overflow = b.script("return document.documentElement.scrollWidth - "
                                "document.documentElement.clientWidth")
            self.assertLessEqual(overflow, 0)
            b.screenshot("registry-narrow.png")
        finally:
            b.s("POST", "/window/rect", {"width": 1280, "height": 1000})
        # a deleted image's layers, collected from the page
        doomed = h.build_image(layer_count=2, layer_size=8192, compress=False)
        h.expect_status(self.authreg.push_image("gone/soon", doomed, tag="x"), 201)
        status, out, _ = e.signed_call(self.server, "BatchDeleteImage", {
            "repositoryName": "gone/soon", "imageIds": [{"imageTag": "x"}]}, *self.admin)
        self.assertEqual(status, 200, out)
        b.click(b.wait_for("#nav-registry"))
        b.click(b.wait_for("#gc-start"))
        b.wait_for("#registry-flash", "Garbage collection finished")
        b.wait_for("#gc-runs td", "requested")
        b.wait_for("#gc-last", "freed")
        self.assertEqual(b.accessibility(), [])
        b.screenshot("registry-gc.png")

    def test_reader_sees_no_button_and_a_forced_request_is_refused(self):
        b = self.browser
        self.sign_in(*self.reader)
        b.wait_for("h1", "Registry")
        b.wait_for("#storage-rows a", "big/one")
        self.assertEqual(b.find_all("#gc-start"), [])
        # a key without ecr:DescribeRegistry sees its repositories' figures only
        b.wait_for("#registry-scope", "ecr:DescribeRegistry")
        self.assertEqual(b.find_all("#server-version"), [])
        self.assertEqual(b.find_all("#blob-total"), [])
        self.assertEqual(b.accessibility(), [])
        out = b.s("POST", "/execute/async", {"args": [], "script": """
            const done = arguments[arguments.length - 1];
            fetch("/ui/api/session").then((r) => r.json()).then((s) =>
              fetch("/ui/api/gc", {method: "POST", headers: {"X-CSRF-Token": s.csrfToken}}))
              .then(async (r) => done([r.status, await r.json()]), (e) => done(["failed", String(e)]));
            """})
        self.assertEqual(out[0], 403, out)
        self.assertEqual(out[1]["error"], "AccessDeniedException")


if __name__ == "__main__":
    import unittest
    unittest.main()
