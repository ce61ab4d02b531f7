"""berth serve with its blobs in S3 (storage.backend s3) on a real OpenStack Swift with the
s3api middleware (swift_fixture.py): monolithic, chunked and streamed uploads (one larger
than an S3 part, so published as a multipart upload), pulls with Range, HEAD, a
cross-repository mount, skopeo push and pull back byte for byte, delete and garbage
collection removing the objects from the bucket, a restart; nothing is kept under the data
root's blobs/ and no multipart upload is left behind. PATCH chunks are gathered into
multipart parts as they arrive; a cancelled upload aborts its multipart upload."""

import os
import shutil
import tempfile
import time
import unittest

import berth_harness as h
import clients as c
from swift_fixture import SwiftServer

PREFIX = "itest-s3/"
EXPIRY_SECONDS = 15  # storage.upload_expiry_seconds in test_expired_sessions_abort_...(below)


@unittest.skipUnless(h.IS_BERTH, "berth's own backend")
class S3ServeTest(h.LogsOnFailure, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.s3 = SwiftServer().start()
        cls.addClassCleanup(cls.s3.stop)
        cls.client = cls.s3.client()
        cls.server = h.Server(env=cls.s3.berth_env(PREFIX), config={"gc": {"enabled": False}})
        cls.addClassCleanup(cls.server.cleanup)
        cls.server.start()
        cls.reg = cls.server.registry()
        cls.work = tempfile.mkdtemp(prefix="berth-s3-skopeo-")
        cls.addClassCleanup(shutil.rmtree, cls.work, True)

    def keys(self, under="blobs/"):
        out = []
        kw = {"Bucket": self.s3.bucket, "Prefix": PREFIX + under}
        while True:
            page = self.client.list_objects_v2(**kw)
            out += [o["Key"][len(PREFIX):] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return out
            kw["ContinuationToken"] = page["NextContinuationToken"]

    def blob_key(self, digest):
        alg, hexa = digest.split(":")
        return "blobs/%s/%s/%s" % (alg, hexa[:2], hexa)

    def assert_no_local_blobs(self):
        blobs = os.path.join(self.server.root, "blobs")
        found = [f for _, _, files in os.walk(blobs) for f in files]
        self.assertEqual(found, [])

    def test_uploads_pulls_mount_delete_gc(self):
        repo = "itest/s3/app"
        big = h.random_bytes(9 * 1024 * 1024 + 7)  # more than one 8 MiB part
        small = h.random_bytes(70000)
        streamed = h.random_bytes(300000)
        for data, mode in ((big, "post_put"), (small, "chunked"), (streamed, "stream")):
            h.expect_status(self.reg.push_blob(repo, data, mode=mode), 201)
        for data in (big, small, streamed):
            d = h.digest_of(data)
            self.assertIn(self.blob_key(d), self.keys())
            obj = self.client.get_object(Bucket=self.s3.bucket, Key=PREFIX + self.blob_key(d))
            self.assertEqual(obj["Body"].read(), data)
            r = self.reg.get_blob(repo, d)
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.body, data)
            r = self.reg.head_blob(repo, d)
            self.assertEqual((r.status, r.header("Content-Length")), (200, str(len(data))))
        # Range
        d = h.digest_of(big)
        r = self.reg.get_blob(repo, d, headers={"Range": "bytes=8388600-8388620"})
        self.assertEqual(r.status, 206, r.body)
        self.assertEqual(r.body, big[8388600:8388621])
        self.assertEqual(r.header("Content-Range"), "bytes 8388600-8388620/%d" % len(big))
        # manifests over other layers, pulled back
        image = h.build_image(layer_count=2, layer_size=200000)
        keep = h.build_image(layer_count=1, layer_size=100000)
        h.expect_status(self.reg.push_image(repo, image, tag="v1"), 201)
        h.expect_status(self.reg.push_image(repo, keep, tag="keep"), 201)
        self.assertEqual(self.reg.get_manifest(repo, "v1").body, image.manifest)
        # a mount into another repository (checked with one HEAD on the bucket)
        other = "itest/s3/other"
        r = self.reg.request("POST", "/v2/%s/blobs/uploads/?mount=%s&from=%s"
                             % (other, d, repo))
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(self.reg.get_blob(other, d).body, big)
        self.assert_no_local_blobs()
        # no multipart upload is left open in the bucket
        ups = self.client.list_multipart_uploads(Bucket=self.s3.bucket, Prefix=PREFIX)
        self.assertEqual(ups.get("Uploads", []), [])

        # delete one image and collect with no grace: the objects of what nothing references
        # (that image, the loose blobs) leave the bucket, the kept image's stay
        h.expect_status(self.reg.delete(self.reg.manifest_path(repo, image.digest)), 202)
        rc, out = h.run_berth(["gc"], env={"BERTH_GC_GRACE_SECONDS": "0"}, server=self.server,
                              timeout=120)
        self.assertEqual(rc, 0, out)
        left = set(self.keys())
        gone = list(image.blobs) + [image.digest] + [h.digest_of(x) for x in (big, small, streamed)]
        for digest in gone:
            self.assertNotIn(self.blob_key(digest), left, out)
        for digest in list(keep.blobs) + [keep.digest]:
            self.assertIn(self.blob_key(digest), left, out)
        self.assertEqual(self.keys("trash/"), [])
        self.assertEqual(self.reg.get_blob(repo, d).status, 404)

        # a restart: the kept image is still there, and a collected blob can come back
        self.server.stop()
        self.server.start(reuse_port=True)
        self.assertEqual(self.reg.get_manifest(repo, "keep").body, keep.manifest)
        for digest, data in keep.blobs.items():
            self.assertEqual(self.reg.get_blob(repo, digest).body, data)
        h.expect_status(self.reg.push_blob(repo, small, mode="chunked"), 201)
        self.assertEqual(self.reg.get_blob(repo, h.digest_of(small)).body, small)

    def open_multipart_uploads(self):
        ups = self.client.list_multipart_uploads(Bucket=self.s3.bucket, Prefix=PREFIX)
        return [u["Key"][len(PREFIX):] for u in ups.get("Uploads", [])]

    def test_multipart_parts_as_they_arrive(self):
        """PATCH chunks of 3 MiB gathered into 8 MiB parts of a multipart upload to a staging
        key while they arrive; a cancelled upload aborts it; a completed one is copied to its
        content key and leaves no staging object."""
        repo = "itest/s3/parts"
        data = h.random_bytes(17 * 1024 * 1024 + 3)
        r = self.reg.start_upload(repo)
        self.assertEqual(r.status, 202, r.body)
        loc = r.header("Location")
        step = 3 * 1024 * 1024
        for start in range(0, 9 * 1024 * 1024, step):  # 9 MiB: one whole part
            r = self.reg.patch_chunk(loc, data[start:start + step], start=start)
            self.assertEqual(r.status, 202, r.body)
            loc = r.header("Location")
        uuid = loc.rstrip("/").split("/")[-1].split("?")[0]
        self.assertEqual(self.open_multipart_uploads(), ["uploads/" + uuid])
        r = self.reg.delete(self.reg.resolve(loc))
        self.assertEqual(r.status, 204, r.body)
        self.assertEqual(self.open_multipart_uploads(), [])

        r = self.reg.start_upload(repo)
        loc = r.header("Location")
        for start in range(0, len(data), step):
            r = self.reg.patch_chunk(loc, data[start:start + step], start=start)
            self.assertEqual(r.status, 202, r.body)
            loc = r.header("Location")
        self.assertEqual(len(self.open_multipart_uploads()), 1)
        d = h.digest_of(data)
        r = self.reg.finish_upload(loc, d)
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(self.open_multipart_uploads(), [])
        self.assertEqual(self.keys("uploads/"), [])
        self.assertIn(self.blob_key(d), self.keys())
        self.assertEqual(self.reg.get_blob(repo, d).body, data)
        # a wrong digest publishes nothing and leaves nothing open
        r = self.reg.start_upload(repo)
        loc = r.header("Location")
        other = h.random_bytes(9 * 1024 * 1024)
        r = self.reg.patch_chunk(loc, other, start=0)
        self.assertEqual(r.status, 202, r.body)
        r = self.reg.finish_upload(r.header("Location"), h.digest_of(b"not it"))
        self.assertEqual(r.status, 400, r.body)
        self.assertNotIn(self.blob_key(h.digest_of(other)), self.keys())
        self.assertEqual(self.open_multipart_uploads(), [])

    def test_sha512_without_naming_it_at_the_post(self):
        """A session started without an algorithm hashes sha256 as its bytes arrive; a PUT
        naming a sha512 digest (as the OCI conformance suite's pushes do) is checked by
        hashing the bytes again from the bucket: a small blob (no part sent) and one of two
        parts sent in chunks publish under their sha512 digests and pull back byte for byte;
        a wrong sha512 digest is refused with nothing published or left open."""
        repo = "itest/s3/sha512"
        small = h.random_bytes(70001)
        big = h.random_bytes(17 * 1024 * 1024 + 11)
        for data in (small, big):
            r = self.reg.start_upload(repo)
            self.assertEqual(r.status, 202, r.body)
            loc = r.header("Location")
            step = 3 * 1024 * 1024
            for start in range(0, len(data), step):
                r = self.reg.patch_chunk(loc, data[start:start + step], start=start)
                self.assertEqual(r.status, 202, r.body)
                loc = r.header("Location")
            d = h.digest_of(data, "sha512")
            r = self.reg.finish_upload(loc, d)
            self.assertEqual(r.status, 201, r.body)
            self.assertEqual(r.header("Docker-Content-Digest"), d)
            self.assertIn(self.blob_key(d), self.keys())
            got = self.reg.get_blob(repo, d)
            self.assertEqual((got.status, got.body), (200, data))
        self.assertEqual(self.open_multipart_uploads(), [])
        self.assertEqual(self.keys("uploads/"), [])
        # a wrong one: refused, nothing under its digest or the bytes' own
        other = h.random_bytes(9 * 1024 * 1024 + 1)
        r = self.reg.start_upload(repo)
        r = self.reg.patch_chunk(r.header("Location"), other, start=0)
        self.assertEqual(r.status, 202, r.body)
        wrong = h.digest_of(b"not these bytes", "sha512")
        r = self.reg.finish_upload(r.header("Location"), wrong)
        self.assertEqual(r.status, 400, r.body)
        self.assertIn(b"DIGEST_INVALID", r.body)
        left = self.keys()
        self.assertNotIn(self.blob_key(wrong), left)
        self.assertNotIn(self.blob_key(h.digest_of(other, "sha512")), left)
        self.assertEqual(self.open_multipart_uploads(), [])
        self.assertEqual(self.keys("uploads/"), [])

    def test_expired_sessions_abort_their_multipart_uploads(self):
        """An abandoned upload session (storage.upload_expiry_seconds) is removed by garbage
        collection with everything it had in the bucket: the multipart upload of its whole
        parts is aborted and its tail object deleted; the session is gone (404). A session
        younger than the expiry is left whole and finishes afterwards."""
        repo = "itest/s3/expiry"
        part = 8 * 1024 * 1024
        old = h.random_bytes(part + 5000)  # one whole part sent, a tail after it
        r = self.reg.start_upload(repo)
        self.assertEqual(r.status, 202, r.body)
        r = self.reg.patch_chunk(r.header("Location"), old, start=0)
        self.assertEqual(r.status, 202, r.body)
        old_loc = r.header("Location")
        old_uuid = old_loc.rstrip("/").split("/")[-1].split("?")[0]
        self.assertEqual(self.open_multipart_uploads(), ["uploads/" + old_uuid])
        self.assertNotEqual(self.keys("uploads/%s/" % old_uuid), [])
        # older than the expiry (15 s) when GC looks; the young one younger by the expiry:
        # its 8 MiB part and berth gc's start may take seconds on a busy machine (ASan, a
        # loaded Swift), which a 6 s expiry left too little room for
        time.sleep(EXPIRY_SECONDS + 2)
        young = h.random_bytes(part + 3000)
        r = self.reg.start_upload(repo)
        r = self.reg.patch_chunk(r.header("Location"), young, start=0)
        self.assertEqual(r.status, 202, r.body)
        young_loc = r.header("Location")
        young_uuid = young_loc.rstrip("/").split("/")[-1].split("?")[0]
        rc, out = h.run_berth(["gc"], env={"BERTH_STORAGE_UPLOAD_EXPIRY_SECONDS": str(EXPIRY_SECONDS)},
                              server=self.server, timeout=120)
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.open_multipart_uploads(), ["uploads/" + young_uuid], out)
        self.assertEqual(self.keys("uploads/%s/" % old_uuid), [], out)
        self.assertEqual(self.reg.request("GET", self.reg.resolve(old_loc)).status, 404)
        r = self.reg.finish_upload(young_loc, h.digest_of(young))
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(self.reg.get_blob(repo, h.digest_of(young)).body, young)
        self.assertEqual(self.open_multipart_uploads(), [])
        self.assertEqual(self.keys("uploads/"), [])

    def test_skopeo_push_pull(self):
        sk = c.Skopeo(self.work)
        image = h.build_image(layer_count=3, layer_size=256 * 1024)
        layout = os.path.join(self.work, "src")
        h.write_oci_layout(layout, {"v1": image})
        host = "127.0.0.1:%d" % self.server.port
        sk.run("copy", "--dest-tls-verify=false", "--dest-no-creds", "oci:%s:v1" % layout,
               "docker://%s/itest/s3/skopeo:v1" % host)
        out = os.path.join(self.work, "out")
        sk.run("copy", "--src-tls-verify=false", "--src-no-creds",
               "docker://%s/itest/s3/skopeo:v1" % host, "oci:%s:v1" % out)
        self.assertEqual(h.read_oci_layout_blob(out, image.digest), image.manifest)
        for digest, data in image.blobs.items():
            self.assertEqual(h.read_oci_layout_blob(out, digest), data)
            self.assertIn(self.blob_key(digest), self.keys())


if __name__ == "__main__":
    unittest.main()
