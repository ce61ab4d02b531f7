"""berth mirror --parallel and resuming: blobs fetched by N threads at once (held at their
first byte by a test hook, so the test sees how many are under way; the relay in front of
the upstream counts the connections open at once), the same bundle whatever N; a connection
reset in the middle of a blob (tcp_relay) resumed within the run with a Range request, the
upstream's access log showing one 200 and one 206 for the rest only; berth mirror killed
(SIGKILL) in the middle of a blob, then run again: the blobs complete before the kill are
not fetched again, the cut one only from where it stopped, and the bundle is byte for byte
the one an uninterrupted run writes; an upstream that answers a Range request with the
whole blob (a proxy that drops the header) is followed from the start; the same kill and
re-run against Debian's distribution, which answers the Range with a 206; killed while
writing the tar: the run again fetches no blob and removes the dead run's temporary file."""

import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

import berth_harness as h
import bundle_helpers as bh
from tcp_relay import TcpRelay

BIG = 3 * 1024 * 1024


class NoRangeProxy(bh.ForwardingProxy):
    """Forwards GETs to a registry on 127.0.0.1:port without their Range header (a registry
    or cache that ignores ranges: the whole blob, 200), recording the Range each one had."""

    def __init__(self, port):
        self.ranges = []

        def record(handler):
            self.ranges.append((handler.path, handler.headers.get("Range")))
            return False
        super().__init__(port, record)


def blob_gets(log, since=0):
    """(digest, status, bytes) of every blob GET in a berth access log from offset since."""
    out = []
    for line in log[since:].splitlines():
        m = re.search(r"event=access method=GET path=/v2/\S+/blobs/(sha256:[0-9a-f]{64}) "
                      r"status=(\d+) bytes=(\d+)", line)
        if m:
            out.append((m.group(1), int(m.group(2)), int(m.group(3))))
    return out


def manifest_requests(log, since=0):
    """(method, repo, reference) of every manifest request in a berth access log from
    offset since."""
    out = []
    for line in log[since:].splitlines():
        m = re.search(r"event=access method=(GET|HEAD) path=/v2/(\S+)/manifests/(\S+) ", line)
        if m:
            out.append((m.group(1), m.group(2), m.group(3)))
    return out


class MirrorResumeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.src = h.Server()
        cls.src.start()
        reg = cls.src.registry()
        # a small image first, then one with two large layers (random: as large gzipped)
        cls.small = h.build_image(layer_count=1, layer_size=1000)
        cls.big = h.build_image(layer_count=2, layer_size=BIG)
        h.expect_status(reg.push_image("team/small", cls.small, tag="1"), 201)
        h.expect_status(reg.push_image("team/big", cls.big, tag="1"), 201)
        cls.blobs = {}
        for img in (cls.small, cls.big):
            cls.blobs.update(img.blobs)

    @classmethod
    def tearDownClass(cls):
        cls.src.cleanup()

    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="berth-mirror-resume-")
        self.addCleanup(shutil.rmtree, self.work, True)
        os.makedirs(os.path.join(self.work, "docker"))

    def env(self, **extra):
        return dict(extra, DOCKER_CONFIG=os.path.join(self.work, "docker"))

    def refs(self, host):
        return ["%s/team/small:1" % host, "%s/team/big:1" % host]

    def mirror(self, host, out_path, *args, expect=0, env=None):
        rc, out = h.run_berth(["mirror", "--plain-http"] + self.refs(host) +
                              ["-o", out_path] + list(args), env=self.env(**(env or {})),
                              timeout=180)
        self.assertEqual(rc, expect, out)
        return out

    def reference_bundle(self):
        """The bundle of an uninterrupted run with one blob at a time."""
        path = os.path.join(self.work, "reference.tar")
        self.mirror("127.0.0.1:%d" % self.src.port, path, "--parallel", "1")
        with open(path, "rb") as f:
            return f.read()

    def check_bundle(self, path, reference):
        with open(path, "rb") as f:
            self.assertEqual(f.read(), reference, "the bundle differs from an uninterrupted run's")
        files = bh.read_bundle(path)
        bh.check_blobs(self, files)
        for digest in self.blobs:
            self.assertIn("blobs/sha256/" + h.digest_hex(digest), files)
        self.assertFalse(os.path.exists(path + ".parts"))

    def test_parallel_fetches_concurrently(self):
        reference = self.reference_bundle()
        relay = TcpRelay("127.0.0.1", self.src.port).start()
        self.addCleanup(relay.stop)
        for parallel in (3, 1):
            hold = os.path.join(self.work, "hold")
            open(hold, "w").close()
            out_path = os.path.join(self.work, "p%d.tar" % parallel)
            err_path = os.path.join(self.work, "p%d.err" % parallel)
            with open(err_path, "wb") as err:
                proc = subprocess.Popen(
                    [h.find_berth_bin(), "mirror", "--plain-http"] +
                    self.refs("127.0.0.1:%d" % relay.port) +
                    ["-o", out_path, "--parallel", str(parallel)],
                    stdout=err, stderr=err, stdin=subprocess.DEVNULL,
                    env=dict(os.environ, BERTH_TEST_HOLD_MIRROR_BLOB=hold, **self.env()))
            self.addCleanup(lambda p=proc: p.poll() is None and p.kill())

            def held():
                with open(err_path, "rb") as f:
                    return f.read().decode().count("event=test_hold point=mirror_blob")

            # each thread stops at the first byte of its blob, its connection open
            h.wait_until(lambda: held() >= parallel, 60, what="%d blobs under way" % parallel)
            self.assertGreaterEqual(relay.counters()["open"], parallel)
            time.sleep(0.5)  # no other thread takes a blob meanwhile
            self.assertEqual(held(), parallel)
            if parallel == 3:
                # a second run writing the same file meanwhile is refused, and leaves the
                # first one's part files and lock alone
                out = self.mirror("127.0.0.1:%d" % relay.port, out_path, expect=1)
                self.assertIn("another berth mirror is writing", out)
                self.assertTrue(os.path.exists(os.path.join(out_path + ".parts", "lock")))
            os.unlink(hold)  # the blobs held go on, the others are not held
            rc = proc.wait(timeout=120)
            with open(err_path) as f:
                text = f.read()
            self.assertEqual(rc, 0, text)
            self.assertIn("fetching %d blobs, %d at a time" % (len(self.blobs), parallel), text)
            self.check_bundle(out_path, reference)
        self.assertGreaterEqual(relay.counters()["max_open"], 3)

    def test_manifests_walked_in_parallel(self):
        """The images' manifests are fetched --parallel at a time (a relay that holds every
        connection shows how many are open at once), then walked in order from the parts:
        the bundle is the same whatever --parallel is, and each manifest is asked for once."""
        self.reference_bundle()
        reg = self.src.registry()
        h.expect_status(reg.push_image("team/third", h.build_image(layer_count=1), tag="1"),
                        201)
        relay = TcpRelay("127.0.0.1", self.src.port).start()
        self.addCleanup(relay.stop)
        host = "127.0.0.1:%d" % relay.port
        for parallel in (3, 1):
            relay.hold()
            out_path = os.path.join(self.work, "walk%d.tar" % parallel)
            err_path = os.path.join(self.work, "walk%d.err" % parallel)
            mark = len(self.src.log_text())
            with open(err_path, "wb") as err:
                proc = subprocess.Popen(
                    [h.find_berth_bin(), "mirror", "--plain-http"] + self.refs(host) +
                    ["%s/team/third:1" % host, "-o", out_path, "--parallel", str(parallel)],
                    stdout=err, stderr=err, stdin=subprocess.DEVNULL, env=dict(os.environ,
                                                                             **self.env()))
            self.addCleanup(lambda p=proc: p.poll() is None and p.kill())
            h.wait_until(lambda: relay.counters()["open"] >= parallel, 60,
                         what="%d manifests asked for at once" % parallel)
            time.sleep(0.5)  # no other connection is opened meanwhile
            self.assertEqual(relay.counters()["open"], parallel)
            relay.release()
            rc = proc.wait(timeout=120)
            with open(err_path) as f:
                text = f.read()
            self.assertEqual(rc, 0, text)
            self.assertIn("walking 3 images, %d at a time" % parallel, text)
            self.assertIn("event=mirror_manifests fetched=3 kept=0", text)
            got = h.wait_until(lambda: (lambda r: r if len(r) >= 3 else None)(
                manifest_requests(self.src.log_text(), mark)), 10, what="the manifest GETs")
            self.assertEqual(sorted(got), [("GET", "team/big", "1"), ("GET", "team/small", "1"),
                                           ("GET", "team/third", "1")])
            files = bh.read_bundle(out_path)
            bh.check_blobs(self, files)
            self.assertEqual(len(bh.index_entries(files)), 3)
            if parallel == 3:
                first = files
            else:
                with open(out_path, "rb") as f, open(os.path.join(self.work, "walk3.tar"),
                                                      "rb") as g:
                    self.assertEqual(f.read(), g.read())
        # the two images of the reference bundle come first, in the same order
        self.assertEqual(bh.index_entries(first)[:2],
                         bh.index_entries(bh.read_bundle(os.path.join(self.work,
                                                                      "reference.tar"))))

    def test_connection_reset_mid_blob_resumes_with_a_range(self):
        reference = self.reference_bundle()
        relay = TcpRelay("127.0.0.1", self.src.port).start()
        self.addCleanup(relay.stop)
        mark = len(self.src.log_text())
        # the connections are reset once three quarters of the first large layer came down
        # (to the relay: what the sockets' buffers held then is lost, so the client has
        # less, but not nothing)
        relay.reset_after_down(BIG * 3 // 4)
        out_path = os.path.join(self.work, "cut.tar")
        out = self.mirror("127.0.0.1:%d" % relay.port, out_path, "--parallel", "1")
        self.assertEqual(relay.counters()["resets"], 1)
        self.assertIn("event=mirror_retry", out)
        resumed = re.findall(r"event=mirror_resume digest=(\S+) from=(\d+) size=(\d+)", out)
        self.assertEqual(len(resumed), 1, out)
        digest, start, size = resumed[0][0], int(resumed[0][1]), int(resumed[0][2])
        self.assertTrue(0 < start < size, resumed)
        self.assertEqual(digest, self.big.layer_digests[0])  # reset half-way through it
        self.check_bundle(out_path, reference)
        # the upstream saw that blob asked for twice: whole (cut), then only the rest
        gets = h.wait_until(lambda: [g for g in blob_gets(self.src.log_text(), mark)
                                     if g[0] == digest and g[1] == 206], 10,
                            what="the 206 in the access log")
        self.assertEqual(gets, [(digest, 206, size - start)])
        statuses = [g[1] for g in blob_gets(self.src.log_text(), mark)]
        self.assertEqual(statuses.count(206), 1)
        self.assertEqual(len(statuses), len(self.blobs) + 1)
        # what came down after the reset: the rest of the cut blob and the blobs after it
        # (a restart would bring the cut blob whole again); what the relay had counted but
        # the reset dropped on the way does not matter
        after = relay.counters()["down"] - relay.counters()["down_at_reset"]
        rest = size - start + sum(len(self.blobs[d]) for d in self.big.layer_digests[1:])
        self.assertLess(after, rest + 128 * 1024)
        self.assertGreaterEqual(after, rest)

    def test_kill_mid_blob_then_run_again(self):
        reference = self.reference_bundle()
        host = "127.0.0.1:%d" % self.src.port
        out_path = os.path.join(self.work, "killed.tar")
        mark = len(self.src.log_text())
        out = self.mirror(host, out_path, "--parallel", "1", expect=-9,
                          env={"BERTH_TEST_CRASH_AT": "mirror-blob-half"})
        self.assertIn("event=test_crash point=mirror-blob-half", out)
        self.assertFalse(os.path.exists(out_path))
        parts = os.path.join(out_path + ".parts")
        names = sorted(os.listdir(parts))
        partial = [n for n in names if n.endswith(".partial")]
        self.assertEqual(len(partial), 1, names)
        cut = "sha256:" + partial[0][len("sha256-"):-len(".partial")]
        have = os.path.getsize(os.path.join(parts, partial[0]))
        self.assertGreaterEqual(have * 2, len(self.blobs[cut]))
        complete = {"sha256:" + n[len("sha256-"):] for n in names
                    if n.startswith("sha256-") and not n.endswith((".partial", ".manifest"))}
        # the small image's blobs and the large one's config came whole before the kill
        self.assertEqual(complete, set(self.small.blobs) | {self.big.config_digest})
        first = blob_gets(self.src.log_text(), mark)
        mark = len(self.src.log_text())

        out = self.mirror(host, out_path, "--parallel", "1")
        self.assertIn("event=mirror_resume digest=%s from=%d size=%d"
                      % (cut, have, len(self.blobs[cut])), out)
        self.check_bundle(out_path, reference)
        again = h.wait_until(
            lambda: (lambda g: g if len(g) == len(self.blobs) - len(complete) else None)(
                blob_gets(self.src.log_text(), mark)), 10, what="the second run's GETs")
        fetched = {g[0] for g in again}
        self.assertEqual(fetched & complete, set(), "a complete part was fetched again")
        self.assertEqual(fetched | complete, set(self.blobs))
        self.assertIn((cut, 206, len(self.blobs[cut]) - have), again)
        self.assertTrue({g[0] for g in first} >= complete)

    def test_kill_while_writing_the_bundle(self):
        reference = self.reference_bundle()
        host = "127.0.0.1:%d" % self.src.port
        out_path = os.path.join(self.work, "late.tar")
        self.mirror(host, out_path, expect=-9, env={"BERTH_TEST_CRASH_AT": "mirror-bundle-started"})
        self.assertFalse(os.path.exists(out_path))
        stale = [n for n in os.listdir(self.work) if n.startswith("late.tar.tmp-")]
        self.assertEqual(len(stale), 1)
        names = set(os.listdir(out_path + ".parts"))
        self.assertEqual(names, {"lock"} | {"sha256-" + h.digest_hex(d) for d in self.blobs} |
                         {"sha256-%s.manifest" % h.digest_hex(i.digest)
                          for i in (self.small, self.big)})
        mark = len(self.src.log_text())
        out = self.mirror(host, out_path)
        self.assertIn("event=bundle_stale_removed", out)
        self.check_bundle(out_path, reference)
        self.assertEqual([n for n in os.listdir(self.work) if ".tmp-" in n], [])
        # every blob and manifest was complete in the parts: none asked for again, only
        # where the tags point
        h.wait_until(lambda: "/v2/team/big/manifests/" in self.src.log_text()[mark:], 10,
                     what="the second run's manifest HEADs")
        self.assertEqual(blob_gets(self.src.log_text(), mark), [])
        self.assertEqual(sorted(manifest_requests(self.src.log_text(), mark)),
                         [("HEAD", "team/big", "1"), ("HEAD", "team/small", "1")])

    def test_a_run_again_asks_for_no_manifest_it_holds(self):
        """Killed in the middle of a blob (every manifest fetched by then), run again after a
        tag moved: the registry is asked where each tag points (HEAD) and for the body of the
        moved tag's new manifest only; a kept manifest whose bytes were changed on disk is
        dropped and fetched again."""
        reg = self.src.registry()
        old, new = h.build_image(layer_count=1, layer_size=500), \
            h.build_image(layer_count=1, layer_size=600)
        h.expect_status(reg.push_image("team/moving", old, tag="1"), 201)
        host = "127.0.0.1:%d" % self.src.port
        refs = self.refs(host) + ["%s/team/moving:1" % host, "%s/team/small@%s"
                                  % (host, self.small.digest)]
        out_path = os.path.join(self.work, "moved.tar")
        env = self.env()
        mark = len(self.src.log_text())
        rc, out = h.run_berth(["mirror", "--plain-http"] + refs + ["-o", out_path,
                              "--parallel", "1"], env=dict(env, BERTH_TEST_CRASH_AT=
                                                          "mirror-blob-half"), timeout=180)
        self.assertEqual(rc, -9, out)
        parts = out_path + ".parts"
        kept = sorted(n for n in os.listdir(parts) if n.endswith(".manifest"))
        self.assertEqual(kept, sorted("sha256-%s.manifest" % h.digest_hex(d) for d in
                                      (self.small.digest, self.big.digest, old.digest)))
        first = manifest_requests(self.src.log_text(), mark)
        # the first run found no manifest kept: GETs only, no HEAD
        self.assertEqual(sorted(first), sorted([("GET", "team/small", "1"),
                                                ("GET", "team/big", "1"),
                                                ("GET", "team/moving", "1")]))
        # the tag moves; the small image's kept manifest is damaged
        h.expect_status(reg.push_image("team/moving", new, tag="1"), 201)
        damaged = os.path.join(parts, "sha256-%s.manifest" % h.digest_hex(self.small.digest))
        with open(damaged, "r+b") as f:
            f.seek(-2, os.SEEK_END)
            f.write(b"  ")
        mark = len(self.src.log_text())
        rc, out = h.run_berth(["mirror", "--plain-http"] + refs + ["-o", out_path,
                              "--parallel", "1"], env=env, timeout=180)
        self.assertEqual(rc, 0, out)
        self.assertIn("event=mirror_manifest_dropped", out)
        # small's was fetched again: the one kept is big's
        self.assertIn("event=mirror_manifests fetched=2 kept=1", out)
        want = [("HEAD", "team/small", "1"), ("GET", "team/small", "1"),
                ("HEAD", "team/big", "1"),
                ("HEAD", "team/moving", "1"), ("GET", "team/moving", "1")]
        got = h.wait_until(lambda: (lambda r: r if len(r) >= len(want) else None)(
            manifest_requests(self.src.log_text(), mark)), 10, what="the second run's requests")
        self.assertEqual(sorted(got), sorted(want))
        files = bh.read_bundle(out_path)
        bh.check_blobs(self, files)
        tagged = {e["annotations"].get("org.opencontainers.image.ref.name"): e["digest"]
                  for e in bh.index_entries(files)}
        self.assertEqual(tagged["team/moving:1"], new.digest)
        for digest in set(new.blobs) | set(self.big.blobs):
            self.assertIn("blobs/sha256/" + h.digest_hex(digest), files)
        self.assertNotIn("blobs/sha256/" + h.digest_hex(old.digest), files)
        self.assertFalse(os.path.exists(parts))

    def test_parallel_option_checked(self):
        for bad in ("0", "65", "x"):
            out = self.mirror("127.0.0.1:%d" % self.src.port, os.path.join(self.work, "x.tar"),
                              "--parallel", bad, expect=2)
            self.assertIn("a number from 1 to 64", out)
        for bad in ("-1", "86401", "x"):
            out = self.mirror("127.0.0.1:%d" % self.src.port, os.path.join(self.work, "x.tar"),
                              "--progress-interval", bad, expect=2)
            self.assertIn("a number of seconds from 0 to 86400", out)

    def test_totals_every_interval_when_not_a_terminal(self):
        """Standard error is a pipe (no terminal): besides a line per image, a line of totals
        every --progress-interval seconds while the blobs come (slowly, through a relay that
        throttles them), never two within one interval."""
        relay = TcpRelay("127.0.0.1", self.src.port).start()
        self.addCleanup(relay.stop)
        relay.throttle_down(1536 * 1024)  # the two 3 MiB layers take 4 s at least
        out_path = os.path.join(self.work, "slow.tar")
        out = self.mirror("127.0.0.1:%d" % relay.port, out_path, "--parallel", "1",
                          "--progress-interval", "1")
        lines = re.findall(r"^mirror: (\d+\.\d) s: (\d+)/(\d+) blobs, ([\d.]+)/([\d.]+) MiB$",
                           out, re.M)
        self.assertGreaterEqual(len(lines), 2, out)
        secs = [float(x[0]) for x in lines]
        for before, after in zip(secs, secs[1:]):
            self.assertGreaterEqual(after - before, 0.95, out)  # one line an interval at most
        self.assertEqual({int(x[2]) for x in lines}, {len(self.blobs)})
        done = [float(x[3]) for x in lines]
        self.assertEqual(done, sorted(done))
        total = sum(len(b) for b in self.blobs.values()) / (1024.0 * 1024.0)
        self.assertEqual({x[4] for x in lines}, {"%.1f" % total})
        self.assertIn("fetching %d blobs, 1 at a time" % len(self.blobs), out)
        with open(out_path, "rb") as f:
            self.assertEqual(f.read(), self.reference_bundle())

    def test_whole_answer_to_a_range_starts_again(self):
        reference = self.reference_bundle()
        out_path = os.path.join(self.work, "norange.tar")
        self.mirror("127.0.0.1:%d" % self.src.port, out_path, "--parallel", "1", expect=-9,
                    env={"BERTH_TEST_CRASH_AT": "mirror-blob-half"})
        proxy = NoRangeProxy(self.src.port)
        self.addCleanup(proxy.stop)
        out = self.mirror("127.0.0.1:%d" % proxy.port, out_path, "--parallel", "1")
        self.assertIn("event=mirror_restart", out)
        self.assertEqual(len([r for r in proxy.ranges if r[1]]), 1, proxy.ranges)
        self.check_bundle(out_path, reference)


class DistributionResumeTest(unittest.TestCase):
    """The same resume against Debian's distribution (docker-registry 2.8) as the upstream:
    it honours the Range (a 206 for the rest, in its access log), no restart."""

    def test_kill_mid_blob_then_run_again(self):
        work = tempfile.mkdtemp(prefix="berth-mirror-dist-")
        self.addCleanup(shutil.rmtree, work, True)
        os.makedirs(os.path.join(work, "docker"))
        src = h.Server(target="distribution")
        self.addCleanup(src.cleanup)
        src.start()
        img = h.build_image(layer_count=1, layer_size=BIG, docker=True)
        h.expect_status(src.registry().push_image("team/big", img, tag="1"), 201)
        ref = "127.0.0.1:%d/team/big:1" % src.port
        env = dict(DOCKER_CONFIG=os.path.join(work, "docker"))
        out_path = os.path.join(work, "dist.tar")
        rc, out = h.run_berth(["mirror", "--plain-http", ref, "-o", out_path],
                              env=dict(env, BERTH_TEST_CRASH_AT="mirror-blob-half"), timeout=180)
        self.assertEqual(rc, -9, out)
        layer = img.layer_digests[0]
        partial = os.path.join(out_path + ".parts", "sha256-%s.partial" % h.digest_hex(layer))
        have = os.path.getsize(partial)
        self.assertTrue(0 < have < len(img.blobs[layer]))
        mark = len(src.log_text())
        rc, out = h.run_berth(["mirror", "--plain-http", ref, "-o", out_path], env=env,
                              timeout=180)
        self.assertEqual(rc, 0, out)
        self.assertIn("event=mirror_resume digest=%s from=%d" % (layer, have), out)
        self.assertNotIn("event=mirror_restart", out)
        files = bh.read_bundle(out_path)
        bh.check_blobs(self, files)
        self.assertEqual(files["blobs/sha256/" + h.digest_hex(layer)], img.blobs[layer])
        self.assertFalse(os.path.exists(out_path + ".parts"))

        def layer_gets():
            return [line for line in src.log_text()[mark:].splitlines()
                    if "http.request.method=GET" in line and
                    'uri="/v2/team/big/blobs/%s"' % layer in line and
                    "http.response.status=" in line]
        gets = h.wait_until(layer_gets, 10, what="distribution's access line of the layer")
        self.assertEqual(len(gets), 1, gets)
        self.assertIn("http.response.status=206", gets[0])
        rest = len(img.blobs[layer]) - have
        self.assertRegex(gets[0], r"http\.response\.written=%d(\s|$)" % rest)


if __name__ == "__main__":
    h.main()
