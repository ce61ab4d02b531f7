"""Blob uploads (end-4a/b/c, end-5, end-6, end-11, end-13, end-14) in every mode."""

import select
import socket
import re
import time
import uuid

import berth_harness as h

MODES = ("post_put", "post_only", "chunked", "chunked_put_last", "stream")
UUID_RE = re.compile(r"^[0-9a-fA-F-]{16,}$")


class UploadModesTest(h.ServerTestCase):
    """Every upload mode, sha256 and sha512: 201, Docker-Content-Digest, Location."""

    def push_and_check(self, mode, algo="sha256", algo_param=None, size=5000):
        repo = self.repo("-" + mode.replace("_", "-"))
        data = h.random_bytes(size)
        digest = h.digest_of(data, algo)
        resp = self.reg.push_blob(repo, data, mode=mode, algo=algo, algo_param=algo_param)
        self.assertStatus(resp, 201)
        self.assertHeader(resp, "Docker-Content-Digest", digest)
        location = self.assertHasHeader(resp, "Location")
        if h.IS_BERTH:
            self.assertEqual(self.reg.resolve(location), "/v2/%s/blobs/%s" % (repo, digest))
        followed = self.reg.get(self.reg.resolve(location))
        self.assertStatus(followed, 200)
        self.assertEqual(followed.body, data)
        self.assertBlob(repo, data, algo)

    def test_sha256_post_put(self):
        self.push_and_check("post_put")

    @h.distribution_fails("ignores ?digest= on POST and answers 202")
    def test_sha256_post_only(self):
        self.push_and_check("post_only")

    def test_sha256_chunked(self):
        self.push_and_check("chunked")

    def test_sha256_chunked_put_last(self):
        self.push_and_check("chunked_put_last")

    def test_sha256_stream(self):
        self.push_and_check("stream")

    def test_sha256_stream_large(self):
        self.push_and_check("stream", size=3 * 1024 * 1024 + 5)

    @h.distribution_fails("no sha512 support")
    def test_sha512_every_mode_with_digest_algorithm(self):
        for mode in MODES:
            with self.subTest(mode=mode):
                self.push_and_check(mode, algo="sha512", algo_param="sha512")

    @h.distribution_fails("no sha512 support")
    def test_sha512_every_mode_without_digest_algorithm(self):
        # The main-branch conformance suite never sends ?digest-algorithm=.
        for mode in MODES:
            with self.subTest(mode=mode):
                self.push_and_check(mode, algo="sha512")

    @h.distribution_fails("ignores ?digest-algorithm=")
    def test_unsupported_digest_algorithm(self):
        resp = self.reg.start_upload(self.repo(), **{"digest-algorithm": "md5"})
        self.assertError(resp, 400, "DIGEST_INVALID", "UNSUPPORTED")

    def test_push_existing_blob_again(self):
        repo = self.repo()
        data = h.random_bytes(100)
        self.reg.ensure_blob(repo, data)
        resp = self.reg.push_blob(repo, data, mode="chunked")
        self.assertStatus(resp, 201)
        self.assertHeader(resp, "Docker-Content-Digest", h.digest_of(data))
        self.assertBlob(repo, data)


class UploadSessionTest(h.ServerTestCase):
    """POST/PATCH/GET/PUT/DELETE on one session: status codes and headers."""

    def start(self, repo, **params):
        resp = self.reg.start_upload(repo, **params)
        self.assertStatus(resp, 202)
        location = self.assertHasHeader(resp, "Location")
        upload_id = self.assertHasHeader(resp, "Docker-Upload-UUID")
        self.assertRangeHeader(resp, 0)
        self.assertIn(upload_id, location)
        if h.IS_BERTH:
            self.assertRegex(upload_id, UUID_RE)
            self.assertEqual(self.reg.resolve(location),
                             "/v2/%s/blobs/uploads/%s" % (repo, upload_id))
        return location

    def status(self, location, last):
        resp = self.reg.get(self.reg.resolve(location))
        self.assertStatus(resp, 204)
        self.assertRangeHeader(resp, last)
        self.assertHasHeader(resp, "Location")
        self.assertEqual(resp.body, b"")
        return resp

    def test_post_headers(self):
        self.start(self.repo())

    def test_empty_session_status(self):
        location = self.start(self.repo())
        self.status(location, 0)

    def test_patch_headers_and_status(self):
        repo = self.repo()
        data = h.random_bytes(3000)
        location = self.start(repo)
        resp = self.reg.patch_chunk(location, data[:1000], 0)
        self.assertStatus(resp, 202)
        self.assertRangeHeader(resp, 999)
        self.assertFalse(resp.header("Range").startswith("bytes"))
        location = self.assertHasHeader(resp, "Location")
        self.status(location, 999)
        resp = self.reg.patch_chunk(location, data[1000:], 1000)
        self.assertStatus(resp, 202)
        self.assertRangeHeader(resp, 2999)
        location = resp.header("Location")
        self.status(location, 2999)
        resp = self.reg.finish_upload(location, h.digest_of(data))
        self.assertStatus(resp, 201)
        self.assertBlob(repo, data)

    def test_stream_patch_range(self):
        repo = self.repo()
        data = h.random_bytes(200000)
        location = self.start(repo)
        resp = self.reg.patch_stream(location, data)
        self.assertStatus(resp, 202)
        self.assertRangeHeader(resp, len(data) - 1)
        self.status(resp.header("Location"), len(data) - 1)

    def test_chunks_around_256_kib(self):
        # PATCHes of sizes around 256 KiB, with and without Content-Range,
        # streamed pieces of odd sizes, a refused PATCH cut back, and a last
        # chunk on the PUT; every offset and every byte checked.
        g = 256 * 1024
        sizes = [g - 1, 1, g, g + 1, 16384, 2 * g + 7, 5, 600000]
        data = h.random_bytes(sum(sizes) + 3 * g + 11)
        repo = self.repo()
        location = self.start(repo)
        at = 0
        for i, n in enumerate(sizes):
            resp = self.reg.patch_chunk(location, data[at:at + n], at, content_range=i % 2 == 0)
            self.assertStatus(resp, 202)
            at += n
            self.assertRangeHeader(resp, at - 1)
            location = resp.header("Location")
        # a Content-Range longer than the body: refused, nothing of it kept
        resp = self.reg.request("PATCH", self.reg.resolve(location), body=data[at:at + g + 100],
                                headers={"Content-Type": h.MT_OCTET,
                                         "Content-Length": str(g + 100),
                                         "Content-Range": "%d-%d" % (at, at + g + 200)})
        self.assertError(resp, 400, "SIZE_INVALID")
        self.status(location, at - 1)
        resp = self.reg.patch_stream(location, data[at:at + 2 * g + 3], piece=g // 3 + 1)
        self.assertStatus(resp, 202)
        at += 2 * g + 3
        self.assertRangeHeader(resp, at - 1)
        location = resp.header("Location")
        self.status(location, at - 1)
        resp = self.reg.finish_upload(location, h.digest_of(data), data[at:], start=at)
        self.assertStatus(resp, 201)
        self.assertBlob(repo, data)

    @h.distribution_fails("accepts out-of-order chunks")
    def test_out_of_order_chunk_is_416(self):
        repo = self.repo()
        data = h.random_bytes(3 * 1024)
        location = self.start(repo)
        # A first chunk that does not start at 0.
        resp = self.reg.patch_chunk(location, data[1024:2048], 1024)
        self.assertStatus(resp, 416)
        self.status(location, 0)
        resp = self.reg.patch_chunk(location, data[:1024], 0)
        self.assertStatus(resp, 202)
        location = resp.header("Location")
        # Skipping ahead.
        resp = self.reg.patch_chunk(location, data[2048:], 2048)
        self.assertStatus(resp, 416)
        self.status(location, 1023)
        # Re-sending the chunk that was already accepted.
        resp = self.reg.patch_chunk(location, data[:1024], 0)
        self.assertStatus(resp, 416)
        self.status(location, 1023)
        # The session is still good.
        resp = self.reg.patch_chunk(location, data[1024:2048], 1024)
        self.assertStatus(resp, 202)
        resp = self.reg.finish_upload(resp.header("Location"), h.digest_of(data), data[2048:],
                                      start=2048)
        self.assertStatus(resp, 201)
        self.assertBlob(repo, data)

    @h.distribution_fails("accepts out-of-order chunks")
    def test_out_of_order_final_chunk_is_416(self):
        repo = self.repo()
        data = h.random_bytes(3 * 1024)
        location = self.start(repo)
        resp = self.reg.patch_chunk(location, data[:1024], 0)
        self.assertStatus(resp, 202)
        location = resp.header("Location")
        resp = self.reg.finish_upload(location, h.digest_of(data), data[2048:], start=2048)
        self.assertStatus(resp, 416)
        self.status(location, 1023)
        self.assertStatus(self.reg.head_blob(repo, h.digest_of(data)), 404)
        resp = self.reg.patch_chunk(location, data[1024:2048], 1024)
        self.assertStatus(resp, 202)
        resp = self.reg.finish_upload(resp.header("Location"), h.digest_of(data), data[2048:],
                                      start=2048)
        self.assertStatus(resp, 201)
        self.assertBlob(repo, data)

    def test_put_last_chunk_without_content_range(self):
        repo = self.repo()
        data = h.random_bytes(2000)
        location = self.start(repo)
        resp = self.reg.patch_chunk(location, data[:1500], 0)
        self.assertStatus(resp, 202)
        resp = self.reg.finish_upload(resp.header("Location"), h.digest_of(data), data[1500:])
        self.assertStatus(resp, 201)
        self.assertBlob(repo, data)

    @h.distribution_fails("accepts a Content-Range that disagrees with the body length")
    def test_size_mismatch(self):
        repo = self.repo()
        data = h.random_bytes(100)
        location = self.start(repo)
        resp = self.reg.request("PATCH", self.reg.resolve(location), body=data[:50],
                                headers={"Content-Type": h.MT_OCTET, "Content-Length": "50",
                                         "Content-Range": "0-99"})
        self.assertError(resp, 400, "SIZE_INVALID")
        self.status(location, 0)
        # The same mismatch on the final PUT publishes nothing.
        target = self.reg.with_query(self.reg.resolve(location), digest=h.digest_of(data))
        resp = self.reg.request("PUT", target, body=data[:50],
                                headers={"Content-Type": h.MT_OCTET, "Content-Length": "50",
                                         "Content-Range": "0-99"})
        self.assertError(resp, 400, "SIZE_INVALID")
        self.assertStatus(self.reg.head_blob(repo, h.digest_of(data)), 404)
        self.assertStatus(self.reg.head_blob(repo, h.digest_of(data[:50])), 404)

    @h.distribution_fails("accepts 'bytes 0-9' and moves the session on")
    def test_malformed_content_range(self):
        repo = self.repo()
        location = self.start(repo)
        for bad in ("bytes 0-9", "0-", "-9", "a-b", "9-0", "0-9/10"):
            resp = self.reg.request("PATCH", self.reg.resolve(location), body=b"0123456789",
                                    headers={"Content-Type": h.MT_OCTET,
                                             "Content-Range": bad})
            with self.subTest(content_range=bad):
                self.assertIn(resp.status, (400, 416), resp.describe())
        self.status(location, 0)

    def test_content_range_length_overflow(self):
        # 0-(2^64-1) is 2^64 bytes: a length that wraps to 0 must not pass for an empty
        # body (a hostile-input pass found PATCH answered 202 and PUT publishing).
        repo = self.repo()
        location = self.start(repo)
        huge = "0-18446744073709551615"
        resp = self.reg.request("PATCH", self.reg.resolve(location), body=b"",
                                headers={"Content-Type": h.MT_OCTET, "Content-Length": "0",
                                         "Content-Range": huge})
        self.assertError(resp, 400, "BLOB_UPLOAD_INVALID")
        self.status(location, 0)
        target = self.reg.with_query(self.reg.resolve(location), digest=h.digest_of(b""))
        resp = self.reg.request("PUT", target, body=b"",
                                headers={"Content-Type": h.MT_OCTET, "Content-Length": "0",
                                         "Content-Range": huge})
        self.assertError(resp, 400, "BLOB_UPLOAD_INVALID")
        self.assertStatus(self.reg.head_blob(repo, h.digest_of(b"")), 404)
        self.status(location, 0)

    def test_wrong_digest_publishes_nothing(self):
        data = h.random_bytes(4000)
        claimed = h.digest_of(b"something else entirely")
        for mode in MODES:
            repo = self.repo("-" + mode.replace("_", "-"))
            resp = self.reg.push_blob(repo, data, mode=mode, digest=claimed)
            with self.subTest(mode=mode):
                if h.IS_DISTRIBUTION and mode == "post_only":
                    continue  # ignores ?digest= on POST: 202
                self.assertError(resp, 400, "DIGEST_INVALID")
                self.assertStatus(self.reg.head_blob(repo, claimed), 404)
                self.assertStatus(self.reg.head_blob(repo, h.digest_of(data)), 404)

    @h.distribution_fails("no sha512 support")
    def test_wrong_sha512_digest_publishes_nothing(self):
        data = h.random_bytes(4000)
        claimed = h.digest_of(b"not these bytes", "sha512")
        for mode in MODES:
            repo = self.repo("-" + mode.replace("_", "-"))
            resp = self.reg.push_blob(repo, data, mode=mode, digest=claimed, algo_param="sha512")
            with self.subTest(mode=mode):
                self.assertError(resp, 400, "DIGEST_INVALID")
                self.assertStatus(self.reg.head_blob(repo, claimed), 404)
                self.assertStatus(self.reg.head_blob(repo, h.digest_of(data, "sha512")), 404)

    def test_malformed_digest_on_put(self):
        repo = self.repo()
        for bad in ("sha256:short", "sha256:" + "Z" * 64, "nonsense"):
            location = self.start(repo)
            resp = self.reg.finish_upload(location, bad, b"data")
            with self.subTest(digest=bad):
                self.assertError(resp, 400, "DIGEST_INVALID")

    def test_put_without_digest(self):
        repo = self.repo()
        location = self.start(repo)
        resp = self.reg.request("PUT", self.reg.resolve(location), body=b"data",
                                headers={"Content-Type": h.MT_OCTET})
        self.assertError(resp, 400, "DIGEST_INVALID")

    def test_cancel(self):
        repo = self.repo()
        location = self.start(repo)
        resp = self.reg.patch_chunk(location, b"partial", 0)
        self.assertStatus(resp, 202)
        location = resp.header("Location")
        resp = self.reg.delete(self.reg.resolve(location))
        self.assertStatus(resp, 204)
        self.assertError(self.reg.get(self.reg.resolve(location)), 404, "BLOB_UPLOAD_UNKNOWN")
        self.assertError(self.reg.patch_chunk(location, b"more", 7), 404, "BLOB_UPLOAD_UNKNOWN")
        self.assertError(self.reg.finish_upload(location, h.digest_of(b"partial")), 404,
                         "BLOB_UPLOAD_UNKNOWN")
        self.assertError(self.reg.delete(self.reg.resolve(location)), 404, "BLOB_UPLOAD_UNKNOWN")
        self.assertStatus(self.reg.head_blob(repo, h.digest_of(b"partial")), 404)

    def test_finished_session_is_gone(self):
        repo = self.repo()
        location = self.start(repo)
        resp = self.reg.finish_upload(location, h.digest_of(b"done"), b"done")
        self.assertStatus(resp, 201)
        self.assertError(self.reg.get(self.reg.resolve(location)), 404, "BLOB_UPLOAD_UNKNOWN")
        self.assertError(self.reg.patch_chunk(location, b"x", 4), 404, "BLOB_UPLOAD_UNKNOWN")

    @h.berth_only("distribution's upload URLs carry HMAC-signed state")
    def test_unknown_session_id(self):
        repo = self.repo()
        self.reg.ensure_blob(repo, b"repo exists")
        path = "/v2/%s/blobs/uploads/%s" % (repo, uuid.uuid4())
        self.assertError(self.reg.get(path), 404, "BLOB_UPLOAD_UNKNOWN")
        self.assertError(self.reg.patch_chunk(path, b"x", 0), 404, "BLOB_UPLOAD_UNKNOWN")
        self.assertError(self.reg.finish_upload(path, h.digest_of(b"x"), b"x"), 404,
                         "BLOB_UPLOAD_UNKNOWN")
        self.assertError(self.reg.delete(path), 404, "BLOB_UPLOAD_UNKNOWN")

    @h.berth_only("distribution's upload URLs carry HMAC-signed state")
    def test_malformed_session_id(self):
        repo = self.repo()
        self.reg.ensure_blob(repo, b"repo exists")
        for bad in ("not-a-uuid", "..", "%2e%2e", "x" * 300):
            path = "/v2/%s/blobs/uploads/%s" % (repo, bad)
            with self.subTest(session=bad):
                self.assertIn(self.reg.get(path).status, (400, 404))

    def test_session_is_bound_to_its_repository(self):
        repo_a, repo_b = self.repo("-a"), self.repo("-b")
        self.reg.ensure_blob(repo_b, b"b exists")
        location = self.reg.resolve(self.start(repo_a))
        other = location.replace("/v2/%s/" % repo_a, "/v2/%s/" % repo_b, 1)
        self.assertNotEqual(other, location)
        resp = self.reg.get(other)
        self.assertIn(resp.status, (400, 404), resp.describe())
        resp = self.reg.finish_upload(other, h.digest_of(b"x"), b"x")
        self.assertIn(resp.status, (400, 404), resp.describe())
        self.assertStatus(self.reg.head_blob(repo_b, h.digest_of(b"x")), 404)
        self.status(location, 0)


    @h.berth_only("upload sessions held per request")
    def test_refused_chunk_does_not_hold_the_session(self):
        # An out-of-order PATCH is refused before its body is read; while its
        # connection lingers (the client waits for "100 Continue" and has not sent the
        # body, so it is answered at once), a correct chunk on another connection must
        # be accepted at once.
        repo = self.repo()
        loc = self.assertStatus(self.reg.start_upload(repo), 202).header("Location")
        target = self.reg.resolve(loc)
        head = ("PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                "Expect: 100-continue\r\n"
                "Content-Range: 500-1499\r\nContent-Length: 1000\r\n\r\n" % target).encode()
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as sock:
            sock.sendall(head)
            self.assertIn(b" 416 ", sock.recv(4096).split(b"\r\n", 1)[0])
            resp = self.reg.patch_chunk(loc, b"a" * 100, 0)
            self.assertStatus(resp, 202)
            self.assertRangeHeader(resp, 99)


    @h.berth_only("upload sessions held per request")
    def test_session_in_use_is_409(self):
        # While one request streams a chunk into a session, a PATCH, a PUT and a DELETE of
        # that session on other connections all get 409 BLOB_UPLOAD_INVALID and change
        # nothing; the status GET still answers; the streaming chunk then completes.
        if self.server.replicas > 1:
            self.skipTest("replicas hold no lock of one another's: two writers of one "
                          "session race, one commits, the other is answered 416 "
                          "(cluster/test_uploads.py test_concurrent_patches_from_two_replicas)")
        repo = self.repo()
        loc = self.assertStatus(self.reg.start_upload(repo), 202).header("Location")
        target = self.reg.resolve(loc)
        head = ("PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                "Content-Range: 0-999\r\nContent-Length: 1000\r\n\r\n" % target).encode()
        def stream():
            sock = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
            sock.sendall(head + b"a" * 100)
            return sock
        sock = stream()
        try:
            # an out-of-order chunk is refused (416) without writing while the session is
            # free, so it can probe for the moment the streaming request holds it. A probe
            # holds the session for the moment it takes to refuse it: a streaming request
            # that arrives then is itself answered 409 (as it should be) and is sent again
            # on a new connection
            deadline = time.monotonic() + 10
            restarts = 0
            while True:
                probe = self.reg.patch_chunk(loc, b"b" * 10, 500)
                if probe.status != 416:
                    break
                answered = select.select([sock], [], [], 0)[0]
                self.assertTrue(answered or time.monotonic() < deadline,
                                "the streaming PATCH has not held the session in 10 s")
                if answered:
                    early = sock.recv(4096)
                    self.assertIn(b" 409 ", early.split(b"\r\n", 1)[0],
                                  "the streaming PATCH was answered before its body: %r" % early)
                    restarts += 1
                    self.assertLess(restarts, 20)
                    sock.close()
                    sock = stream()
                    continue
                time.sleep(0.02)
            self.assertError(probe, 409, "BLOB_UPLOAD_INVALID")
            self.assertError(self.reg.patch_chunk(loc, b"c" * 10, 0), 409, "BLOB_UPLOAD_INVALID")
            self.assertError(self.reg.finish_upload(loc, h.digest_of(b"x"), b"x"), 409,
                             "BLOB_UPLOAD_INVALID")
            self.assertError(self.reg.delete(target), 409, "BLOB_UPLOAD_INVALID")
            self.assertStatus(self.reg.get(target), 204)
            sock.sendall(b"a" * 900)
            self.assertIn(b" 202 ", sock.recv(4096).split(b"\r\n", 1)[0])
        finally:
            sock.close()
        resp = self.assertStatus(self.reg.get(target), 204)
        self.assertRangeHeader(resp, 999)
        resp = self.reg.finish_upload(loc, h.digest_of(b"a" * 1000))
        self.assertStatus(resp, 201)
        self.assertBlob(repo, b"a" * 1000)

class MountTest(h.ServerTestCase):
    def test_mount_from(self):
        source, target = self.repo("-src"), self.repo("-dst")
        data = h.random_bytes(800)
        digest = self.reg.ensure_blob(source, data)
        resp = self.reg.start_upload(target, mount=digest, **{"from": source})
        self.assertStatus(resp, 201)
        self.assertHeader(resp, "Docker-Content-Digest", digest)
        location = self.assertHasHeader(resp, "Location")
        if h.IS_BERTH:
            self.assertEqual(self.reg.resolve(location), "/v2/%s/blobs/%s" % (target, digest))
        self.assertEqual(self.reg.get(self.reg.resolve(location)).body, data)
        self.assertBlob(target, data)
        self.assertBlob(source, data)

    @h.distribution_fails("no sha512 support")
    def test_mount_sha512(self):
        source, target = self.repo("-src"), self.repo("-dst")
        data = h.random_bytes(800)
        digest = self.reg.ensure_blob(source, data, algo="sha512")
        resp = self.reg.start_upload(target, mount=digest, **{"from": source})
        self.assertStatus(resp, 201)
        self.assertHeader(resp, "Docker-Content-Digest", digest)
        self.assertBlob(target, data, algo="sha512")

    @h.distribution_fails("no anonymous mount: answers 202")
    def test_anonymous_mount(self):
        source, target = self.repo("-src"), self.repo("-dst")
        data = h.random_bytes(900)
        digest = self.reg.ensure_blob(source, data)
        resp = self.reg.start_upload(target, mount=digest)
        self.assertStatus(resp, 201)
        self.assertHeader(resp, "Docker-Content-Digest", digest)
        self.assertHasHeader(resp, "Location")
        self.assertBlob(target, data)

    def test_mount_missing_blob_gives_a_session(self):
        source, target = self.repo("-src"), self.repo("-dst")
        self.reg.ensure_blob(source, b"not the one")
        data = h.random_bytes(1000)
        digest = h.digest_of(data)
        for params in ({"mount": digest, "from": source}, {"mount": digest}):
            resp = self.reg.start_upload(target, **params)
            with self.subTest(params=sorted(params)):
                self.assertStatus(resp, 202)
                location = self.assertHasHeader(resp, "Location")
                self.assertHasHeader(resp, "Docker-Upload-UUID")
                self.assertRangeHeader(resp, 0)
                self.assertStatus(self.reg.head_blob(target, digest), 404)
                resp = self.reg.finish_upload(location, digest, data)
                self.assertStatus(resp, 201)
                self.assertBlob(target, data)
                self.assertStatus(self.reg.delete_blob(target, digest), 202)

    def test_mount_from_repository_without_the_blob(self):
        source, target, holder = self.repo("-src"), self.repo("-dst"), self.repo("-holder")
        self.reg.ensure_blob(source, b"source exists")
        digest = self.reg.ensure_blob(holder, h.random_bytes(64))
        resp = self.reg.start_upload(target, mount=digest, **{"from": source})
        # Either a normal session, or (anonymous mount) the blob found elsewhere.
        self.assertStatus(resp, 201, 202)
        self.assertHasHeader(resp, "Location")


if __name__ == "__main__":
    h.main()
