# berth-python: modern
"""The archive tier with the S3 backend (storage.backend s3) on a real OpenStack Swift with
s3api (swift_fixture.py; its s3api knows only the STANDARD storage class, so the tier is a key
prefix, or another bucket): the archive tier's tests of tests/integration/ecr/
test_archive_tier.py run again with the blobs as objects, <prefix>blobs/... for the blob store
and <prefix>archive/blobs/... (storage.archive.s3_prefix) or another bucket
(storage.archive.s3_bucket) for the archive tier: bytes move (zstd where it shrinks them),
archived blobs are refused, restore is ACTIVATING until every blob is back and digest-checked,
uploads and manifests restore, garbage collection removes archived garbage from the archive
keys, and kill -9 at each point of a move leaves a store that restarts consistent. A
configuration whose archive keys would be the blob store's is refused."""

import os
import sys
import shutil
import tempfile
import unittest

import berth_harness as h
import clients as c
import ecr_helpers as e
from s3_error_proxy import S3ErrorProxy
from swift_fixture import SwiftServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ecr"))
import test_archive_tier as t  # noqa: E402  (its classes are run through the subclasses below)

SWIFT = None
ARCHIVE_BUCKET = "berth-test-archive"


def setUpModule():
    global SWIFT
    SWIFT = SwiftServer().start()
    SWIFT.client().create_bucket(Bucket=ARCHIVE_BUCKET)


def tearDownModule():
    if SWIFT is not None:
        SWIFT.stop()


def s3_env(prefix, archive_bucket=None):
    env = SWIFT.berth_env(prefix)
    if archive_bucket:
        env["BERTH_STORAGE_ARCHIVE_S3_BUCKET"] = archive_bucket
        env["BERTH_STORAGE_ARCHIVE_S3_PREFIX"] = prefix
    return env


class S3TierMixin(t.TierMixin):
    """Where a blob's bytes are, read from the bucket(s)."""

    prefix = None
    archive_bucket = None  # None: the blob store's bucket, under <prefix>archive/

    @classmethod
    def setUpClass(cls):
        cls.server_env = s3_env(cls.prefix, cls.archive_bucket)
        cls.s3 = SWIFT.client()
        super().setUpClass()

    def key(self, digest, archive):
        hexpart = h.digest_hex(digest)
        rel = "blobs/sha256/%s/%s" % (hexpart[:2], hexpart)
        if not archive:
            return SWIFT.bucket, self.prefix + rel
        if self.archive_bucket:
            return self.archive_bucket, self.prefix + rel
        return SWIFT.bucket, self.prefix + "archive/" + rel

    def exists(self, digest, archive):
        bucket, key = self.key(digest, archive)
        try:
            self.s3.head_object(Bucket=bucket, Key=key)
            return True
        except self.s3.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def where(self, digest):
        return (self.exists(digest, False), self.exists(digest, True))

    def arc_bytes(self, digest):
        bucket, key = self.key(digest, True)
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def archive_stages(self):
        """Local stages and staging objects of the archive store."""
        stages = os.path.join(self.server.root, "archive", "uploads")
        out = os.listdir(stages) if os.path.isdir(stages) else []
        bucket = self.archive_bucket or SWIFT.bucket
        under = self.prefix + ("" if self.archive_bucket else "archive/") + "uploads/"
        page = self.s3.list_objects_v2(Bucket=bucket, Prefix=under)
        return out + [o["Key"] for o in page.get("Contents", [])]

    def test_no_local_blobs(self):
        """Nothing of either tier is kept under the data root."""
        for sub in ("blobs", os.path.join("archive", "blobs")):
            top = os.path.join(self.server.root, sub)
            found = [f for _, _, files in os.walk(top) for f in files]
            self.assertEqual(found, [], sub)


class S3ArchiveTierTest(S3TierMixin, t.ArchiveTierTest):
    prefix = "itest-s3-archive/"


@h.berth_only("BERTH_TEST_CRASH_AT is berth's")
class S3ArchiveCrashTest(S3TierMixin, t.ArchiveCrashTest):
    prefix = "itest-s3-archive-crash/"
    archive_bucket = ARCHIVE_BUCKET


def object_writes(relay, under):
    """The requests that write an object under the key prefix under (a PUT or a copy, the
    start of a multipart upload), with their headers: the parts of a multipart upload and
    its completion carry no storage class."""
    return [(m, tg, hd) for m, tg, hd in relay.headers_matching(part=under)
            if (m == "PUT" and "uploadId=" not in tg) or (m == "POST" and tg.endswith("?uploads"))]


@h.berth_only("berth's S3 archive tier")
class S3ArchiveStorageClassTest(S3TierMixin, e.ModernEcrTestCase):
    """storage.archive.s3_storage_class: the archive tier's blob objects are written with
    x-amz-storage-class (seen by a relay in front of Swift), the blob store's never. Swift's
    s3api takes only STANDARD: another class reaches it and is refused (InvalidStorageClass),
    the move fails and the bytes stay in the blob store."""
    prefix = "itest-s3-archive-class/"
    server_config = {"gc": {"enabled": False}}

    @classmethod
    def setUpClass(cls):
        cls.relay = S3ErrorProxy("127.0.0.1", SWIFT.ports["proxy"]).start()
        cls.addClassCleanup(cls.relay.stop)
        cls.server_env = s3_env(cls.prefix)
        cls.server_env["BERTH_STORAGE_S3_ENDPOINT"] = cls.relay.endpoint
        cls.server_env["BERTH_STORAGE_ARCHIVE_S3_STORAGE_CLASS"] = "STANDARD"
        cls.s3 = SWIFT.client()
        super(S3TierMixin, cls).setUpClass()  # not S3TierMixin's: its environment is set

    def restart_with_class(self, storage_class):
        self.server.stop()
        self.server.env["BERTH_STORAGE_ARCHIVE_S3_STORAGE_CLASS"] = storage_class
        self.server.start(reuse_port=True)
        cls = type(self)
        cls.reg = self.server.registry()
        cls.ecr = c.ecr_client(self.server, *c.DUMMY_KEY)

    def test_archive_writes_carry_the_class(self):
        repo = self.create_repo()
        image = t.tier_image(text_kib=64)
        self.push(repo, image, tag="v1")
        pushed = object_writes(self.relay, self.prefix + "blobs/")
        self.assertTrue(pushed)
        self.assertEqual([tg for _, tg, hd in pushed if "x-amz-storage-class" in hd], [])
        self.relay.clear()
        self.archive(repo, image.digest)
        self.wait_archived(*image.layer_digests)
        archived = object_writes(self.relay, self.prefix + "archive/blobs/")
        self.assertGreaterEqual(len(archived), len(image.layer_digests))
        for m, tg, hd in archived:
            self.assertEqual(hd.get("x-amz-storage-class"), "STANDARD", (m, tg))
        # back in the blob store: written without it
        self.relay.clear()
        self.restore(repo, image.digest)
        self.wait_active(repo, image.digest)
        restored = object_writes(self.relay, self.prefix + "blobs/")
        self.assertTrue(restored)
        self.assertEqual([tg for _, tg, hd in restored if "x-amz-storage-class" in hd], [])
        self.assertServed(repo, image)

        # a class Swift does not have: the store refuses the tier's writes
        self.addCleanup(self.restart_with_class, "STANDARD")
        self.restart_with_class("STANDARD_IA")
        other = t.tier_image(text_kib=64)
        self.push(repo, other, tag="v2")
        self.relay.clear()
        self.archive(repo, other.digest)
        h.wait_until(lambda: "InvalidStorageClass" in self.server.log_text(), 60,
                     what="the store refusing STANDARD_IA")
        refused = object_writes(self.relay, self.prefix + "archive/blobs/")
        self.assertTrue(refused)
        for m, tg, hd in refused:
            self.assertEqual(hd.get("x-amz-storage-class"), "STANDARD_IA", (m, tg))
        for digest in other.layer_digests:
            self.assertEqual(self.where(digest), (True, False))


@h.berth_only("berth's configuration")
class S3ArchiveConfigTest(unittest.TestCase):
    def test_archive_keys_must_differ(self):
        root = tempfile.mkdtemp(prefix="berth-s3-archive-")
        self.addCleanup(shutil.rmtree, root, True)
        env = s3_env("itest-s3-archive-same/")
        env["BERTH_STORAGE_ARCHIVE_S3_PREFIX"] = "itest-s3-archive-same/"
        rc, out = h.run_berth(["gc", "--root", root], env=env, timeout=60)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("storage.archive.s3_prefix must differ", out)
        # another bucket with the same prefix is fine
        env["BERTH_STORAGE_ARCHIVE_S3_BUCKET"] = ARCHIVE_BUCKET
        rc, out = h.run_berth(["gc", "--root", root], env=env, timeout=60)
        self.assertEqual(rc, 0, out)

    def test_storage_class_a_get_reads(self):
        """GLACIER and DEEP_ARCHIVE objects need a RestoreObject before a GET: refused."""
        root = tempfile.mkdtemp(prefix="berth-s3-archive-")
        self.addCleanup(shutil.rmtree, root, True)
        env = s3_env("itest-s3-archive-glacier/", ARCHIVE_BUCKET)
        for refused in ("GLACIER", "DEEP_ARCHIVE", "standard_ia"):
            env["BERTH_STORAGE_ARCHIVE_S3_STORAGE_CLASS"] = refused
            rc, out = h.run_berth(["gc", "--root", root], env=env, timeout=60)
            self.assertNotEqual(rc, 0, out)
            self.assertIn("storage.archive.s3_storage_class must be STANDARD, STANDARD_IA", out)


if __name__ == "__main__":
    h.main()
