"""S3's CopyObject and CompleteMultipartUpload may answer `200 OK` and an `<Error>` document
(AWS documents it: the status went out before the work failed). berth must judge such an
answer by its code, against a real OpenStack Swift with s3api behind a relay that answers
chosen requests that way itself (s3_error_proxy.py; the store never sees them):

- InternalError / SlowDown are retried, as AWS says: a few of them and the push still
  succeeds, byte for byte;
- when they persist, the push fails cleanly: 503 UNAVAILABLE with Retry-After on /v2
  (the store is at fault), never 500, and nothing is published (no blob key in the bucket,
  HEAD 404);
- another code (AccessDenied) is an error of the request: not retried, the push fails,
  nothing published;
- all works again once the store answers properly;
- the bucket check at store open (a HEAD of the bucket) is asked again after a bodiless 400
  or a 503 (Swift's s3api once answered `berth gc`'s check 400 on the busy CI machine), and
  fails at once on 403.

Swift start-up is slow under ASan's build of the rest: gcc pass only.
# berth-suite: no-sanitizer
# berth-suite: daemons
"""

import unittest

import clients as c  # first: it cleans the environment botocore reads
import berth_harness as h
from s3_error_proxy import S3ErrorProxy
from swift_fixture import SwiftServer

PREFIX = "itest-s3-embedded/"
MIB = 1 << 20
REPO = "itest/s3/embedded"

s3 = None


def setUpModule():
    global s3
    s3 = SwiftServer().start()


def tearDownModule():
    if s3 is not None:
        s3.stop()


@unittest.skipUnless(h.IS_BERTH, "berth's S3 backend")
class EmbeddedErrorTest(h.LogsOnFailure, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s3 = s3
        cls.proxy = S3ErrorProxy("127.0.0.1", s3.ports["proxy"]).start()
        cls.addClassCleanup(cls.proxy.stop)
        cls.server = h.Server(config={"gc": {"enabled": False}},
                              env=s3.berth_env(PREFIX, cls.proxy.endpoint))
        cls.addClassCleanup(cls.server.cleanup)
        cls.server.start()
        cls.reg = cls.server.registry()
        cls.client = s3.client()

    def setUp(self):
        self.proxy.clear()
        self.log_mark = len(self.server.log_text())

    def in_bucket(self, digest):
        alg, hexa = digest.split(":")
        key = "%sblobs/%s/%s/%s" % (PREFIX, alg, hexa[:2], hexa)
        page = self.client.list_objects_v2(Bucket=s3.bucket, Prefix=key)
        return [o["Key"] for o in page.get("Contents", [])] == [key]

    def assertPublished(self, data):
        digest = h.digest_of(data)
        self.assertTrue(self.in_bucket(digest), digest)
        resp = self.reg.get_blob(REPO, digest)
        self.assertEqual(resp.status, 200, resp.describe())
        self.assertEqual(h.digest_of(resp.body), digest)

    def assertNotPublished(self, data):
        digest = h.digest_of(data)
        self.assertFalse(self.in_bucket(digest), digest)
        self.assertEqual(self.reg.head_blob(REPO, digest).status, 404)

    def assertUnavailable(self, resp):
        self.assertEqual(resp.status, 503, resp.describe())
        self.assertEqual(resp.error_codes(), ["UNAVAILABLE"], resp.describe())
        self.assertIsNotNone(resp.header("Retry-After"))

    def log_codes(self, code):
        """Embedded errors with code the server logged during this test."""
        return sum(1 for line in self.server.log_text()[self.log_mark:].splitlines()
                   if "event=s3_error" in line and "status=200 code=%s " % code in line)

    def test_retried_complete_succeeds(self):
        # a monolithic push of more than a part: one multipart upload, then complete
        data = h.random_bytes(9 * MIB + 11)
        self.proxy.fail("complete", "InternalError", times=2)
        h.expect_status(self.reg.push_blob(REPO, data), 201)
        seen, answered = self.proxy.counts()
        self.assertEqual(answered["complete"], 2)
        self.assertEqual(seen["complete"], 3)  # the third went to Swift
        self.assertEqual(self.log_codes("InternalError"), 2)
        self.assertPublished(data)

    def test_retried_copy_succeeds(self):
        # chunked: parts go out with the PATCHes, publication completes the staging
        # object, then copies it to the blob's key
        data = h.random_bytes(9 * MIB + 13)
        self.proxy.fail("copy", "SlowDown", times=1)
        h.expect_status(self.reg.push_blob(REPO, data, mode="chunked", chunk_size=3 * MIB), 201)
        self.assertEqual(self.proxy.counts()[1]["copy"], 1)
        self.assertPublished(data)

    def test_persistent_internal_error_is_503_and_nothing_published(self):
        data = h.random_bytes(9 * MIB + 17)
        self.proxy.fail("complete", "InternalError")
        self.assertUnavailable(self.reg.push_blob(REPO, data))
        answered = self.proxy.counts()[1]["complete"]
        self.assertGreater(answered, 1)  # retried before giving up
        self.assertNotPublished(data)

        chunked = h.random_bytes(9 * MIB + 19)
        self.proxy.fail("complete", "SlowDown")
        self.assertUnavailable(self.reg.push_blob(REPO, chunked, mode="chunked",
                                                  chunk_size=3 * MIB))
        self.assertNotPublished(chunked)

        self.proxy.clear(counters=False)
        self.proxy.fail("copy", "InternalError")
        self.assertUnavailable(self.reg.push_blob(REPO, chunked, mode="chunked",
                                                  chunk_size=3 * MIB))
        self.assertNotPublished(chunked)

        # the store answers properly again: the same pushes work
        self.proxy.clear()
        h.expect_status(self.reg.push_blob(REPO, data), 201)
        h.expect_status(self.reg.push_blob(REPO, chunked, mode="chunked", chunk_size=3 * MIB),
                        201)
        self.assertPublished(data)
        self.assertPublished(chunked)

    def test_request_error_is_not_retried(self):
        data = h.random_bytes(9 * MIB + 23)
        self.proxy.fail("copy", "AccessDenied")
        resp = self.reg.push_blob(REPO, data, mode="chunked", chunk_size=3 * MIB)
        self.assertGreaterEqual(resp.status, 500, resp.describe())
        self.assertEqual(self.proxy.counts()[1]["copy"], 1)  # once: not retried
        self.assertEqual(self.log_codes("AccessDenied"), 1)
        self.assertNotPublished(data)
        self.proxy.clear()
        h.expect_status(self.reg.push_blob(REPO, data, mode="chunked", chunk_size=3 * MIB), 201)
        self.assertPublished(data)


@unittest.skipUnless(h.IS_BERTH, "berth's S3 backend")
class BucketCheckTest(h.LogsOnFailure, unittest.TestCase):
    """`berth gc` opens the store as the server does: its bucket check is what is tried."""

    @classmethod
    def setUpClass(cls):
        cls.proxy = S3ErrorProxy("127.0.0.1", s3.ports["proxy"]).start()
        cls.addClassCleanup(cls.proxy.stop)
        cls.server = h.Server(config={"gc": {"enabled": False}},
                              env=s3.berth_env("itest-s3-bucket-check/", cls.proxy.endpoint))
        cls.addClassCleanup(cls.server.cleanup)
        cls.server.start()
        cls.server.stop()  # made the store; its own checks would take the answers

    def setUp(self):
        self.proxy.clear()

    def gc(self):
        """`berth gc`'s exit status and output, and how many bucket checks the relay
        refused."""
        rc, out = h.run_berth(["gc"], server=self.server, timeout=60)
        return rc, out, self.proxy.counts()[1]["head_bucket"]

    def test_passing_refusals_are_asked_again(self):
        for status in (400, 503):
            self.proxy.clear()
            self.proxy.fail("head_bucket", status, times=2)
            rc, out, refused = self.gc()
            self.assertEqual(rc, 0, out)
            self.assertEqual(refused, 2, out)
            self.assertEqual(out.count("event=s3_retry op=head_bucket"), 2, out)
            self.assertIn("status=%d" % status, out)

    def test_a_lasting_400_fails_after_three(self):
        self.proxy.fail("head_bucket", 400)
        rc, out, refused = self.gc()
        self.assertNotEqual(rc, 0, out)
        self.assertEqual(refused, 3, out)
        self.assertIn("cannot open the data directory", out)

    def test_forbidden_is_final(self):
        self.proxy.fail("head_bucket", 403)
        rc, out, refused = self.gc()
        self.assertNotEqual(rc, 0, out)
        self.assertEqual(refused, 1, out)
        self.assertIn("event=s3_error op=head_bucket", out)
        self.assertNotIn("s3_retry", out)


if __name__ == "__main__":
    unittest.main()
