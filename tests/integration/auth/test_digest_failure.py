"""A hash the server cannot compute (OpenSSL failing: out of memory, a provider error) is
the server's failure, never the client's: /v2 answers 503 UNAVAILABLE with Retry-After
(not 400 DIGEST_INVALID for a correct digest), the ECR API a ServerException (not 403
InvalidSignatureException for a correct signature), and a request to the object store is
not sent with a signature berth could not compute.

The failure is injected with BERTH_TEST_FAULTS=digest: every SHA-256/512 in the server
(digest_sha256_raw, the streaming hashes, digest_buffer) fails as OpenSSL's would. Before
the fix digest_sha256_raw ignored the failure: SigV4 signed or verified with the hash of
whatever was in the buffer, and a failed streaming hash on /v2 was a 500."""

import http.server
import threading
import unittest

import clients as c  # first: it cleans the environment botocore reads
import berth_harness as h
import auth_helpers as e


@h.berth_only("berth's fault injection")
class DigestFailureTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = h.Server(env={"BERTH_TEST_FAULTS": "digest"})
        cls.addClassCleanup(cls.server.cleanup)
        cls.server.start()
        cls.reg = cls.server.registry()

    def assertUnavailable(self, resp):
        self.assertEqual(resp.status, 503, resp.describe())
        self.assertEqual(resp.error_codes(), ["UNAVAILABLE"])
        self.assertEqual(resp.header("Retry-After"), "1")

    def test_fault_is_announced(self):
        self.assertIn("event=test_fault_injected fault=digest", self.server.log_text())
        self.assertNotIn("fault=hmac", self.server.log_text())

    def test_blob_pushes_answer_503(self):
        repo = "itest/digestfault"
        data = b"a layer whose digest is right"
        for mode in ("post_only", "post_put"):
            with self.subTest(mode=mode):
                self.assertUnavailable(self.reg.push_blob(repo, data, mode=mode))
        # a chunk is refused as it arrives, whether with a range or streamed
        for stream in (False, True):
            with self.subTest(stream=stream):
                resp = self.reg.start_upload(repo)
                self.assertEqual(resp.status, 202, resp.describe())
                loc = resp.header("Location")
                self.assertUnavailable(self.reg.patch_stream(loc, data) if stream
                                       else self.reg.patch_chunk(loc, data))
        self.assertEqual(self.reg.head_blob(repo, h.digest_of(data)).status, 404)
        h.wait_until(lambda: "event=body_store_failed err=ENOMEM" in self.server.log_text(), 30,
                     what="the body_store_failed log line")

    def test_manifest_put_answers_503(self):
        body = b'{"schemaVersion":2,"mediaType":"%s","config":{}}' % h.MT_OCI_MANIFEST.encode()
        resp = self.reg.put_manifest("itest/digestfault", "v1", body, h.MT_OCI_MANIFEST)
        self.assertUnavailable(resp)
        self.assertEqual(self.reg.get_manifest("itest/digestfault", "v1").status, 404)
        h.wait_until(lambda: "event=request_unavailable err=ENOMEM" in self.server.log_text(), 30,
                     what="the request_unavailable log line")

    def test_requests_without_hashes_still_work(self):
        self.assertEqual(self.reg.get("/v2/").status, 200)
        self.assertEqual(self.reg.get("/healthz").status, 200)


@h.berth_only("berth's fault injection")
class DigestFailureEcrTest(unittest.TestCase):
    def setUp(self):
        self.server = h.Server(env={"BERTH_TEST_FAULTS": "digest"})
        self.addCleanup(self.server.cleanup)
        self.server.start()
        self.admin = e.keys_create(self.server, "admin")

    def test_valid_signature_gets_server_exception(self):
        status, doc, _ = e.signed_call(self.server, "DescribeRepositories", {}, *self.admin)
        self.assertEqual(status, 500, doc)
        self.assertEqual(doc["__type"], "ServerException")
        self.assertNotIn("reason=bad_signature", self.server.log_text())
        # Basic auth with the secret involves no hash
        self.assertEqual(self.server.registry().get(
            "/v2/", headers=e.basic(*self.admin)).status, 200)


class _RecordingS3(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                with outer.lock:
                    outer.requests.append((self.command, self.path))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_HEAD = do_GET = do_PUT = do_POST = do_DELETE = _answer

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@h.berth_only("berth's fault injection")
class DigestFailureS3Test(unittest.TestCase):
    """With the blobs in S3, a request berth cannot sign is not sent: the bucket check at
    start fails with the cause in the log, and nothing reaches the store."""

    def test_unsignable_bucket_check_is_not_sent(self):
        s3 = _RecordingS3()
        threading.Thread(target=s3.serve_forever, daemon=True).start()
        self.addCleanup(s3.server_close)
        self.addCleanup(s3.shutdown)
        env = {
            "BERTH_STORAGE_BACKEND": "s3",
            "BERTH_STORAGE_S3_ENDPOINT": "http://127.0.0.1:%d" % s3.server_address[1],
            "BERTH_STORAGE_S3_REGION": "us-east-1",
            "BERTH_STORAGE_S3_BUCKET": "itest",
            "BERTH_STORAGE_S3_PATH_STYLE": "true",
            "AWS_ACCESS_KEY_ID": "AKIAITESTDIGESTFAULT",
            "AWS_SECRET_ACCESS_KEY": "secret",
        }
        # without the fault the store answers the signed HEAD of the bucket
        ok = h.Server(env=env, config={"gc": {"enabled": False}})
        self.addCleanup(ok.cleanup)
        ok.start()
        ok.stop()
        with s3.lock:
            self.assertIn(("HEAD", "/itest"), s3.requests)
            s3.requests.clear()
        env["BERTH_TEST_FAULTS"] = "digest"
        server = h.Server(env=env, config={"gc": {"enabled": False}})
        self.addCleanup(server.cleanup)
        with self.assertRaisesRegex(AssertionError, "did not start"):
            server.start()
        self.assertIn("request not sent: cannot prepare or sign it", server.log_text())
        with s3.lock:
            self.assertEqual(s3.requests, [])


if __name__ == "__main__":
    unittest.main()
