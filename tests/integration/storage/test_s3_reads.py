"""Blob reads on the S3 backend (storage.backend s3) against a real OpenStack Swift with s3api
(swift_fixture.py), through a TCP relay (tcp_relay.py) that counts what goes between berth and
the object store: a blob GET streams from the store (no copy on local disk: berth writes next
to nothing while it serves 64 MiB), a slow client slows the GET from the store instead of
filling berth's memory, a Range is a ranged GET, HEAD never reaches the store, and concurrent
pulls keep berth's memory flat.

When the store becomes unreachable (the relay cut) and comes back: /readyz follows it,
manifests and small blobs kept locally still answer, layers and pushes get 503 UNAVAILABLE
(ECR: ServerException, 503), nothing is half-published, all works again without a restart.

With storage.s3.redirect, blob GETs are answered 307 to a presigned URL of the object, and
docker (dockerd), containerd's ctr, skopeo and crane follow it to Swift.

Only in the gcc pass of `make test` (memory bounds mean nothing under ASan; the reader itself
runs under ASan in the s3 label's blob contract test, tests/unit/storage/blob/test_fs.c):
# berth-suite: no-sanitizer
# berth-suite: daemons
"""

import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request

import clients as c  # first: it cleans the environment botocore reads
import berth_harness as h
import daemons as d
from swift_fixture import SwiftServer
from tcp_relay import TcpRelay

PREFIX = "itest-s3-reads/"
MIB = 1 << 20
REPO = "itest/s3/reads"


s3 = None


def setUpModule():
    global s3
    s3 = SwiftServer().start()


def tearDownModule():
    if s3 is not None:
        s3.stop()


def crane_bin():
    """crane, built into <build>/tools/crane (see clients/test_crane.py)."""
    path = os.path.join(os.environ.get("BERTH_BUILD_DIR", "build"), "tools", "crane")
    if not os.access(path, os.X_OK):
        raise AssertionError("%s is missing: the build makes it (scripts/setup-deps.sh)" % path)
    return path


def rss_kib(pid):
    return h.proc_number(pid)


def wchar(pid):
    """Bytes the process passed to write(2) and the like (files, pipes; not send(2))."""
    return h.proc_number(pid, "wchar", "io")


@unittest.skipUnless(h.IS_BERTH, "berth's own backend")
class S3ReadsTest(h.LogsOnFailure, unittest.TestCase):
    """berth on S3 through a relay that counts what goes to and from the store."""

    @classmethod
    def setUpClass(cls):
        cls.s3 = s3
        cls.relay = TcpRelay("127.0.0.1", s3.ports["proxy"]).start()
        cls.addClassCleanup(cls.relay.stop)
        cls.server = h.Server(env=s3.berth_env(PREFIX, cls.relay.endpoint),
                              config={"gc": {"enabled": False}})
        cls.addClassCleanup(cls.server.cleanup)
        cls.server.start()
        cls.reg = cls.server.registry()
        cls.big = h.random_bytes(64 * MIB + 3)
        cls.digest = cls.reg.ensure_blob(REPO, cls.big)
        cls.path = cls.reg.blob_path(REPO, cls.digest)

    @property
    def pid(self):
        return self.server.proc.pid

    def open_get(self, headers=None, rcvbuf=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=120)
        if rcvbuf:
            # a fixed receive buffer turns off the kernel's autotuning, which on loopback
            # lets one stalled socket absorb up to tcp_rmem's maximum (32 MiB here)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(120)
            sock.connect(("127.0.0.1", self.server.port))
            conn.sock = sock
        conn.request("GET", self.path, headers=dict(headers or {}, Connection="close"))
        return conn, conn.getresponse()

    def pull(self, headers=None, piece=MIB):
        return self.pull_from(self.server.port, self.path, headers, piece)

    @staticmethod
    def pull_from(port, path, headers=None, piece=MIB):
        """(status, headers, sha256 hex, length) of a GET read piece by piece."""
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn.request("GET", path, headers=dict(headers or {}, Connection="close"))
        resp = conn.getresponse()
        sha = hashlib.sha256()
        n = 0
        while True:
            data = resp.read(piece)
            if not data:
                break
            sha.update(data)
            n += len(data)
        conn.close()
        return resp.status, resp.headers, sha.hexdigest(), n

    def wait_quiet(self, key="down", settle=0.5, limit=30):
        """The relay's counter once it stopped moving for settle seconds."""
        last = self.relay.counters()[key]
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            time.sleep(settle)
            now = self.relay.counters()[key]
            if now == last:
                return now
            last = now
        return last

    def test_full_pull_streams_without_local_copy(self):
        before = wchar(self.pid)
        status, headers, sha, n = self.pull()
        self.assertEqual(status, 200)
        self.assertEqual(n, len(self.big))
        self.assertEqual(int(headers["Content-Length"]), len(self.big))
        self.assertEqual("sha256:" + sha, self.digest)
        # a download to a local file first would have written the 64 MiB
        self.assertLess(wchar(self.pid) - before, 4 * MIB)

    def test_slow_client_slows_the_store_get(self):
        start = self.relay.counters()["down"]
        conn, resp = self.open_get(rcvbuf=256 * 1024)
        self.assertEqual(resp.status, 200)
        first = resp.read(MIB)
        self.assertEqual(first, self.big[:MIB])
        # the client stops reading: the GET from the store stops soon after (its buffer,
        # the sockets' buffers), long before the blob's end
        fetched = self.wait_quiet() - start
        self.assertLess(fetched, 40 * MIB, "berth kept reading the store for a stalled client")
        rest = resp.read()
        conn.close()
        self.assertEqual(hashlib.sha256(first + rest).hexdigest(), h.digest_hex(self.digest))

    def test_range_is_a_ranged_get(self):
        size = len(self.big)
        part = 8 * MIB
        for first, last in ((size - 16, size - 1), (part - 100, part + 99), (0, 0),
                            (5 * MIB, 7 * MIB)):
            self.wait_quiet(settle=0.2)
            before = self.relay.counters()["down"]
            resp = self.reg.get(self.path, headers={"Range": "bytes=%d-%d" % (first, last)})
            self.assertEqual(resp.status, 206, resp.describe())
            self.assertEqual(resp.header("Content-Range"), "bytes %d-%d/%d" % (first, last, size))
            self.assertEqual(resp.body, self.big[first:last + 1])
            got = self.wait_quiet(settle=0.2) - before
            self.assertLess(got, (last - first + 1) + 256 * 1024,
                            "bytes %d-%d: %d bytes came from the store" % (first, last, got))
        # a suffix range
        resp = self.reg.get(self.path, headers={"Range": "bytes=-10"})
        self.assertEqual(resp.status, 206)
        self.assertEqual(resp.body, self.big[-10:])

    def test_head_never_reaches_the_store(self):
        self.wait_quiet(key="up", settle=0.2)
        before = self.relay.counters()
        for _ in range(3):
            resp = self.reg.head_blob(REPO, self.digest)
            self.assertEqual(resp.status, 200)
            self.assertEqual(int(resp.header("Content-Length")), len(self.big))
        after = self.relay.counters()
        self.assertEqual(after["up"], before["up"])
        self.assertEqual(after["connections"], before["connections"])

    def test_connections_are_kept_alive(self):
        self.wait_quiet(key="up", settle=0.2)
        before = self.relay.counters()["connections"]
        for i in range(8):  # each: a HEAD and a PUT of the blob
            self.reg.ensure_blob(REPO, h.random_bytes(1000 + i))
        for i in range(4):  # streamed, ranged GETs
            first = (i + 1) * 10 * MIB
            resp = self.reg.get(self.path, headers={"Range": "bytes=%d-%d" % (first, first + 99)})
            self.assertEqual(resp.body, self.big[first:first + 100])
        made = self.relay.counters()["connections"] - before
        # 20 requests to the store; one connection each without reuse
        self.assertLessEqual(made, 3, "%d connections for 20 requests" % made)

    def test_concurrent_pulls_keep_memory_flat(self):
        self.pull()  # warm: the first pull's allocations are not growth
        base = rss_kib(self.pid)
        peak = [base]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], rss_kib(self.pid))
                time.sleep(0.02)

        results = []

        def one(i):
            # readers of different speeds: some pause the store's transfer
            results.append(self.pull(piece=(64 * 1024) if i % 2 else 4 * MIB))

        sampler = threading.Thread(target=sample)
        sampler.start()
        pullers = [threading.Thread(target=one, args=(i,)) for i in range(6)]
        for t in pullers:
            t.start()
        for t in pullers:
            t.join()
        done.set()
        sampler.join()
        self.assertEqual(len(results), 6)
        for status, _, sha, n in results:
            self.assertEqual((status, n, "sha256:" + sha), (200, len(self.big), self.digest))
        # six pulls of 64 MiB each: berth holds a small buffer per pull, never the blob
        self.assertLess(peak[0] - base, 32 * 1024,
                        "RSS grew from %d KiB to %d KiB" % (base, peak[0]))


@unittest.skipUnless(h.IS_BERTH, "berth's own backend")
class S3RedirectTest(h.LogsOnFailure, unittest.TestCase):
    """storage.s3.redirect: blob GETs go to the store itself."""

    @classmethod
    def setUpClass(cls):
        cls.s3 = s3
        env = s3.berth_env("itest-s3-redirect/")
        env["BERTH_STORAGE_S3_REDIRECT"] = "true"
        cls.server = h.Server(env=env, config={"gc": {"enabled": False}})
        cls.addClassCleanup(cls.server.cleanup)
        cls.server.start()
        cls.reg = cls.server.registry()
        cls.host = "127.0.0.1:%d" % cls.server.port
        cls.work = tempfile.mkdtemp(prefix="berth-s3-redirect-")
        cls.addClassCleanup(shutil.rmtree, cls.work, True)

    def redirects_seen(self):
        """Blob GETs berth answered 307 (its access log)."""
        return len(re.findall(r"event=access method=GET path=/v2/\S*/blobs/sha256:[0-9a-f]{64} "
                              r"status=307", self.server.log_text()))

    def test_get_is_a_redirect_to_a_presigned_url(self):
        data = h.random_bytes(3 * MIB + 11)
        digest = self.reg.ensure_blob("itest/redirect/raw", data)
        resp = self.reg.get_blob("itest/redirect/raw", digest)
        self.assertEqual(resp.status, 307, resp.describe())
        self.assertEqual(resp.header("Docker-Content-Digest"), digest)
        location = resp.header("Location")
        url = urllib.parse.urlsplit(location)
        self.assertEqual("%s://%s" % (url.scheme, url.netloc), s3.endpoint)
        query = urllib.parse.parse_qs(url.query)
        self.assertEqual(query["X-Amz-Expires"], ["300"])
        self.assertEqual(query["X-Amz-SignedHeaders"], ["host"])
        with urllib.request.urlopen(location, timeout=60) as got:
            self.assertEqual(got.read(), data)
        # the client's Range goes to the store with it
        req = urllib.request.Request(location, headers={"Range": "bytes=100-199"})
        with urllib.request.urlopen(req, timeout=60) as got:
            self.assertEqual(got.status, 206)
            self.assertEqual(got.read(), data[100:200])
        # a URL whose signature was tampered with is refused by the store
        bad = location.replace("X-Amz-Signature=", "X-Amz-Signature=0")
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(bad, timeout=60)
        self.assertEqual(cm.exception.code, 403)
        # HEAD answers from the metadata, a blob not in the repository is no redirect
        head = self.reg.head_blob("itest/redirect/raw", digest)
        self.assertEqual(head.status, 200)
        self.assertEqual(int(head.header("Content-Length")), len(data))
        self.assertIsNone(head.header("Location"))
        self.assertEqual(self.reg.get_blob("itest/redirect/other", digest).status, 404)
        # manifests are served by berth
        image = h.build_image(layer_count=1)
        self.reg.push_image("itest/redirect/raw", image, tag="v1")
        resp = self.reg.get_manifest("itest/redirect/raw", "v1")
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.body, image.manifest)

    def test_ecr_download_url_is_presigned(self):
        image = h.build_image(layer_count=1)
        h.expect_status(self.reg.push_image("itest/redirect/ecr", image, tag="v1"), 201)
        layer = image.layer_digests[0]
        out = c.ecr_client(self.server).get_download_url_for_layer(
            repositoryName="itest/redirect/ecr", layerDigest=layer)
        self.assertEqual(out["layerDigest"], layer)
        url = urllib.parse.urlsplit(out["downloadUrl"])
        self.assertEqual("%s://%s" % (url.scheme, url.netloc), s3.endpoint)
        self.assertEqual(urllib.parse.parse_qs(url.query)["X-Amz-Expires"], ["900"])
        with urllib.request.urlopen(out["downloadUrl"], timeout=60) as got:
            self.assertEqual(got.read(), image.blobs[layer])

    def test_skopeo_and_crane_follow_it(self):
        image = h.build_image(layer_count=2, layer_size=512 * 1024)
        h.expect_status(self.reg.push_image("itest/redirect/tools", image, tag="v1"), 201)
        before = self.redirects_seen()
        sk = c.Skopeo(self.work)
        out = os.path.join(self.work, "skopeo-out")
        sk.run("copy", "--src-tls-verify=false", "--src-no-creds",
               "docker://%s/itest/redirect/tools:v1" % self.host, "oci:%s:v1" % out)
        self.assertEqual(h.read_oci_layout_blob(out, image.digest), image.manifest)
        for digest, data in image.blobs.items():
            self.assertEqual(h.read_oci_layout_blob(out, digest), data)
        after_skopeo = self.redirects_seen()
        self.assertGreaterEqual(after_skopeo - before, len(image.blobs))

        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update({"DOCKER_CONFIG": os.path.join(self.work, "crane-config"),
                    "HOME": self.work})
        for digest, data in image.blobs.items():
            got = d.run_client([crane_bin(), "blob", "--insecure",
                                "%s/itest/redirect/tools@%s" % (self.host, digest)], env)
            self.assertEqual(got.raw, data)
        self.assertGreaterEqual(self.redirects_seen() - after_skopeo, len(image.blobs))

    def test_docker_and_ctr_follow_it(self):
        work = d.scratch_dir("berth-s3-daemons-")
        self.addCleanup(subprocess.run, ["rm", "-rf", work])
        dockerd = d.Dockerd(os.path.join(work, "docker"))
        containerd = d.Containerd(os.path.join(work, "ctrd"))
        for daemon in (dockerd, containerd):
            self.addCleanup(daemon.stop)
            daemon.start()

        # docker pushes through berth, forgets the image and pulls it back through Swift
        saved = d.SavedImage("itest/s3/redirect:v1", sizes=[2 * MIB, 4096])
        path = os.path.join(dockerd.work, "load.tar")
        with open(path, "wb") as f:
            f.write(saved.archive())
        dockerd.docker("load", "-i", path)
        ref = "%s/itest/redirect/docker:v1" % self.host
        dockerd.docker("tag", saved.tag, ref)
        dockerd.docker("push", ref)
        dockerd.docker("rmi", "--force", ref, saved.tag)
        before = self.redirects_seen()
        dockerd.docker("pull", ref)
        doc = json.loads(dockerd.docker("image", "inspect", ref).out)[0]
        self.assertEqual(doc["Id"], saved.image_id)
        self.assertEqual(doc["RootFS"]["Layers"], saved.diff_ids)
        self.assertGreaterEqual(self.redirects_seen() - before, 3)  # config and two layers

        # ctr pulls (and unpacks) an image pushed through berth's API
        image = h.build_image(layer_count=2, layer_size=256 * 1024)
        h.expect_status(self.reg.push_image("itest/redirect/ctr", image, tag="v1"), 201)
        before = self.redirects_seen()
        ref = "%s/itest/redirect/ctr:v1" % self.host
        containerd.ctr("images", "pull", "--plain-http", ref)
        self.assertEqual(containerd.ctr("content", "get", image.digest).raw, image.manifest)
        for digest, data in image.blobs.items():
            self.assertEqual(containerd.ctr("content", "get", digest).raw, data, digest)
        self.assertGreaterEqual(self.redirects_seen() - before, len(image.blobs))


@unittest.skipUnless(h.IS_BERTH, "berth's own backend")
class S3OutageTest(h.LogsOnFailure, unittest.TestCase):
    """The object store becomes unreachable (the relay in front of Swift is cut), then comes
    back: /readyz follows it, manifests and small blobs kept locally still answer, other
    reads and every push fail with 503 and the protocol's error, nothing is half-published,
    and all works again once the store is back, without a restart."""

    PREFIX = "itest-s3-outage/"

    @classmethod
    def setUpClass(cls):
        cls.s3 = s3
        cls.relay = TcpRelay("127.0.0.1", s3.ports["proxy"]).start()
        cls.addClassCleanup(cls.relay.stop)
        cls.server = h.Server(env=s3.berth_env(cls.PREFIX, cls.relay.endpoint),
                              config={"gc": {"enabled": False}})
        cls.addClassCleanup(cls.server.cleanup)
        cls.server.start()
        cls.reg = cls.server.registry()
        cls.ecr = c.ecr_client(cls.server)
        cls.client = s3.client()

    def ready(self):
        resp = self.reg.get("/readyz")
        return resp.status, resp.body.decode()

    def wait_ready(self, want):
        deadline = time.monotonic() + 60
        while True:
            status, text = self.ready()
            if (status == 200) == want:
                return text
            if time.monotonic() > deadline:
                self.fail("/readyz stayed %d: %s" % (status, text))
            time.sleep(0.2)

    def assertUnavailable(self, resp):
        self.assertEqual(resp.status, 503, resp.describe())
        self.assertEqual(resp.error_codes(), ["UNAVAILABLE"], resp.describe())
        self.assertIsNotNone(resp.header("Retry-After"))

    def keys(self, under):
        page = self.client.list_objects_v2(Bucket=s3.bucket, Prefix=self.PREFIX + under)
        return [o["Key"][len(self.PREFIX):] for o in page.get("Contents", [])]

    def blob_key(self, digest):
        alg, hexa = digest.split(":")
        return "blobs/%s/%s/%s" % (alg, hexa[:2], hexa)

    def test_store_down_then_back(self):
        repo = "itest/outage/app"
        image = h.build_image(layer_count=1, layer_size=4096)
        big = h.random_bytes(24 * MIB + 1)
        big_digest = self.reg.ensure_blob(repo, big)
        h.expect_status(self.reg.push_image(repo, image, tag="v1"), 201)
        text = self.wait_ready(True)
        self.assertIn("blob storage: ok", text.splitlines())

        # a pull under way when the store goes: its body is cut short, berth goes on
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=120)
        # a fixed receive buffer: autotuning on loopback would let this socket take the
        # whole blob before the cut
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        sock.settimeout(120)
        sock.connect(("127.0.0.1", self.server.port))
        conn.sock = sock
        conn.request("GET", self.reg.blob_path(repo, big_digest), headers={"Connection": "close"})
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        got = resp.read(MIB)
        self.relay.cut()
        try:
            while True:
                piece = resp.read(MIB)
                if not piece:
                    break
                got += piece
        except (http.client.IncompleteRead, OSError):
            pass
        conn.close()
        self.assertLess(len(got), len(big))

        text = self.wait_ready(False)
        self.assertIn("blob storage: unreachable", text.splitlines())
        self.assertIn("database: ok", text.splitlines())

        # kept locally: the manifest and the config (published through this berth)
        resp = self.reg.get_manifest(repo, "v1")
        self.assertEqual((resp.status, resp.body), (200, image.manifest), resp.describe())
        resp = self.reg.get_blob(repo, image.config_digest)
        self.assertEqual(resp.status, 200, resp.describe())
        self.assertEqual(resp.body, image.blobs[image.config_digest])
        # HEAD answers from the metadata
        self.assertEqual(self.reg.head_blob(repo, big_digest).status, 200)
        # a layer that is only in the store
        self.assertUnavailable(self.reg.get_blob(repo, big_digest))

        # pushes fail cleanly: a small blob (one PUT), a larger one sent in chunks
        # (multipart; its first chunk is refused, since a session's bytes are committed
        # to the shared store), a manifest
        small = h.random_bytes(100000)
        self.assertUnavailable(self.reg.push_blob(repo, small))
        larger = h.random_bytes(9 * MIB + 5)
        resp = self.reg.start_upload(repo)
        self.assertEqual(resp.status, 202, resp.describe())
        self.assertUnavailable(self.reg.patch_chunk(resp.header("Location"), larger[:3 * MIB]))
        # a streamed PATCH: refused when its first whole part cannot be sent
        resp = self.reg.start_upload(repo)
        self.assertUnavailable(self.reg.patch_stream(resp.header("Location"), larger))
        for data in (small, larger):
            self.assertEqual(self.reg.head_blob(repo, h.digest_of(data)).status, 404)
        other = h.Image(dict(json.loads(image.manifest), annotations={"x": "outage"}),
                        blobs=image.blobs)
        self.assertUnavailable(self.reg.put_manifest(repo, "v2", other.manifest,
                                                     other.media_type))
        self.assertEqual(self.reg.get_manifest(repo, other.digest).status, 404)
        self.assertEqual(self.reg.get_manifest(repo, "v2").status, 404)
        # the ECR API: a ServerException answered 503
        import botocore.exceptions
        with self.assertRaises(botocore.exceptions.ClientError) as cm:
            self.ecr.put_image(repositoryName=repo, imageManifest=other.manifest.decode(),
                               imageTag="v3")
        err = cm.exception.response
        self.assertEqual(err["Error"]["Code"], "ServerException")
        self.assertEqual(err["ResponseMetadata"]["HTTPStatusCode"], 503)

        # the store is back: ready again, nothing of the failed pushes in the bucket
        self.relay.restore()
        self.wait_ready(True)
        blobs = self.keys("blobs/")
        for data in (small, larger, other.manifest):
            self.assertNotIn(self.blob_key(h.digest_of(data)), blobs)
        self.assertEqual(self.keys("trash/"), [])
        # and everything works again
        status, _, sha, n = S3ReadsTest.pull_from(self.server.port, self.reg.blob_path(
            repo, big_digest))
        self.assertEqual((status, n, "sha256:" + sha), (200, len(big), big_digest))
        for data in (small, larger):
            self.reg.ensure_blob(repo, data)
        h.expect_status(self.reg.put_manifest(repo, "v2", other.manifest, other.media_type), 201)
        self.assertEqual(self.reg.get_manifest(repo, "v2").body, other.manifest)


if __name__ == "__main__":
    unittest.main()
