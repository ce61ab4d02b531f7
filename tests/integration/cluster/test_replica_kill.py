"""A replica dies (`kill -9`) in the middle of a stream of pushes through the balancer
(docs/scale-out.md): three replicas on PostgreSQL + Swift behind haproxy, which checks
GET /readyz on each every 200 ms and stops sending to one that fails twice.

Three clients push images (monolithic and chunked uploads, then the manifest by tag)
without pause; one replica is killed once some pushes are in; the clients go on until
more pushes have gone in after haproxy took the dead replica out. A push whose request
fails is retried from the start. The test asserts:
- every failure a client saw is clean: a connection error, a 5xx (haproxy's 502/503 or
  berth's own error), or 404 BLOB_UPLOAD_UNKNOWN for an upload whose session was on the
  dead replica; never a 2xx with the wrong content, never another 4xx;
- every push was retried to success;
- every push that got its 201 pulls back byte for byte (manifest by tag and digest, every
  blob) from both surviving replicas and through the balancer."""
# berth-suite: cluster

import http.client
import threading
import time
import unittest

import berth_harness as h
from cluster import SERVED_BY, Cluster, ClusterTestCase

CLIENTS = 3
BEFORE_KILL = 6  # pushes in before the kill
AFTER_DOWN = 9  # pushes in after haproxy saw the replica down
MAX_ATTEMPTS = 8


class PushFailed(Exception):
    def __init__(self, what, clean):
        super().__init__(what)
        self.what = what
        self.clean = clean


def check(resp, want, upload=False):
    """resp must have status want; otherwise PushFailed, clean when it is an error the
    protocol or the balancer gives for a dead replica."""
    if resp.status == want:
        return resp
    codes = resp.error_codes() if resp.body[:1] == b"{" else []
    clean = resp.status >= 500 or (upload and resp.status == 404 and
                                   codes == ["BLOB_UPLOAD_UNKNOWN"])
    raise PushFailed("%s %s -> %d %s (replica %s) %r" % (
        resp.method, resp.path.split("?")[0], resp.status, codes, resp.header(SERVED_BY),
        resp.body[:200]), clean)


class Pusher(threading.Thread):
    def __init__(self, n, lb, stop):
        super().__init__(daemon=True)
        self.n = n
        self.lb = lb
        self.stop = stop
        self.pushed = []  # (repo, tag, image, time of the 201)
        self.failures = []  # (description, clean)
        self.unfinished = None
        self.crash = None

    def push_once(self, reg, repo, tag, image, chunked):
        for data in image.blobs.values():
            if chunked and len(data) > 4096:
                resp = check(reg.start_upload(repo), 202, upload=True)
                loc = resp.header("Location")
                size = len(data) // 3 + 1
                for start in range(0, len(data), size):
                    resp = check(reg.patch_chunk(loc, data[start:start + size], start), 202,
                                 upload=True)
                    loc = resp.header("Location")
                check(reg.finish_upload(loc, h.digest_of(data)), 201, upload=True)
            else:
                resp = check(reg.start_upload(repo), 202, upload=True)
                check(reg.finish_upload(resp.header("Location"), h.digest_of(data), data), 201,
                      upload=True)
        resp = check(reg.put_manifest(repo, tag, image.manifest, image.media_type), 201)
        if resp.header("Docker-Content-Digest") != image.digest:
            raise PushFailed("manifest 201 with digest %s, want %s" % (
                resp.header("Docker-Content-Digest"), image.digest), False)

    def run(self):
        try:
            i = 0
            while not self.stop.is_set():
                repo, tag = "kill/c%d" % self.n, "p%d" % i
                image = h.build_image(layer_count=2, layer_size=(300 + 50 * self.n) * 1024)
                for attempt in range(MAX_ATTEMPTS):
                    reg = self.lb.registry(keep_alive=True)
                    try:
                        self.push_once(reg, repo, tag, image, chunked=(i + attempt) % 2 == 1)
                        self.pushed.append((repo, tag, image, time.monotonic()))
                        break
                    except PushFailed as exc:
                        self.failures.append((exc.what, exc.clean))
                    except (OSError, http.client.HTTPException) as exc:
                        self.failures.append(("connection: %r" % exc, True))
                    except AssertionError as exc:
                        # the harness's word for an answer cut short by a closed connection
                        if "body ended" not in str(exc):
                            raise
                        self.failures.append(("connection: %s" % exc, True))
                    finally:
                        reg.close()
                    # a client's backoff before it tries again (the balancer may have
                    # no replica it trusts for a moment on a busy machine)
                    time.sleep(0.25 * (attempt + 1))
                else:
                    self.unfinished = (repo, tag)
                    return
                i += 1
        except BaseException as exc:  # reported by the test
            self.crash = exc


@unittest.skipUnless(h.IS_BERTH, "berth's replicas")
class ReplicaKillTest(ClusterTestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(replicas=3, balancer=True)
        cls.addClassCleanup(cls.cluster.stop)
        cls.cluster.start()

    def total(self, pushers, since=None):
        return sum(1 for p in pushers for x in p.pushed if since is None or x[3] > since)

    def test_kill9_during_pushes(self):
        lb = self.cluster.balancer
        stop = threading.Event()
        pushers = [Pusher(n, lb, stop) for n in range(CLIENTS)]
        for p in pushers:
            p.start()
        try:
            h.wait_until(lambda: self.total(pushers) >= BEFORE_KILL or
                         any(not p.is_alive() for p in pushers), 120,
                         what="%d pushes before the kill" % BEFORE_KILL)
            self.cluster.kill9(1)
            lb.wait_status("r1", "DOWN")
            down = time.monotonic()
            h.wait_until(lambda: self.total(pushers, since=down) >= AFTER_DOWN or
                         all(not p.is_alive() for p in pushers), 180,
                         what="%d pushes after the replica went down" % AFTER_DOWN)
        finally:
            stop.set()
            for p in pushers:
                p.join(120)
        for p in pushers:
            self.assertIsNone(p.crash, "client %d crashed" % p.n)
            self.assertIsNone(p.unfinished, "client %d: %s never went in after %d attempts: "
                              "%s" % (p.n, p.unfinished, MAX_ATTEMPTS, p.failures[-3:]))
        failures = [f for p in pushers for f in p.failures]
        unclean = [what for what, clean in failures if not clean]
        self.assertEqual(unclean, [], "failures that are not clean errors")
        print("\n%d pushes, %d after r1 was down; %d failed attempts, all clean:\n  %s" % (
            self.total(pushers), self.total(pushers, since=down), len(failures),
            "\n  ".join(what for what, _ in failures[:12])))
        survivors = [("balancer", lb.registry())] + [
            ("r%d" % i, self.cluster.replicas[i].registry()) for i in (0, 2)]
        for p in pushers:
            for repo, tag, image, _ in p.pushed:
                for name, reg in survivors:
                    for ref in (tag, image.digest):
                        resp = h.expect_status(reg.get_manifest(repo, ref,
                                                                accept=image.media_type), 200)
                        self.assertEqual(resp.body, image.manifest, (name, repo, ref))
                    for digest, data in image.blobs.items():
                        got = h.expect_status(reg.get_blob(repo, digest), 200).body
                        self.assertTrue(got == data, "%s: %s@%s %s differs" % (
                            name, repo, tag, digest))


if __name__ == "__main__":
    unittest.main(verbosity=2)
