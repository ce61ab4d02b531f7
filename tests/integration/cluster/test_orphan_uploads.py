"""Garbage collection sweeps what upload sessions on S3 leave in the bucket with nothing
left to remove it (storage.s3.orphan_upload_grace_seconds, docs/storage.md): a replica
killed (BERTH_TEST_CRASH_AT) between starting a session's multipart upload and recording
it in the session's row leaves an upload that cancelling the session does not abort; a
multipart upload, a staging object or a tail object under uploads/ whose session has no
row, and a publication's multipart upload at a blob key, once older than the grace, are
aborted or deleted by `berth gc` (counted by its dry run first, left alone with a long
grace). A live session's multipart upload and tail object are untouched and the session
finishes afterwards; uploads and objects outside berth's uploads/ and blobs/ keys, or
under another prefix, are never touched. Real Swift (s3api) and PostgreSQL."""
# berth-suite: cluster

import http.client
import re
import time
import unittest
import uuid as uuidlib

import berth_harness as h
from cluster import PREFIX, Cluster, ClusterTestCase

MIB = 1024 * 1024
GRACE_ENV = "BERTH_STORAGE_S3_ORPHAN_UPLOAD_GRACE_SECONDS"


def upload_uuid(location):
    return location.rstrip("/").split("/")[-1].split("?")[0]


@unittest.skipUnless(h.IS_BERTH, "berth's replicas and berth gc")
class OrphanUploadSweepTest(ClusterTestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(replicas=2, config={"gc": {"enabled": False}})
        cls.addClassCleanup(cls.cluster.stop)
        cls.cluster.start()
        cls.regs = [r.registry() for r in cls.cluster.replicas]
        cls.s3 = cls.cluster.s3.client()
        cls.bucket = cls.cluster.s3.bucket

    def uploads(self, prefix):
        """(key, upload id) of every multipart upload in progress under prefix."""
        out = []
        kw = {"Bucket": self.bucket, "Prefix": prefix}
        while True:
            page = self.s3.list_multipart_uploads(**kw)
            out += [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
            if not page.get("IsTruncated") or not page.get("NextKeyMarker"):
                return sorted(out)
            kw["KeyMarker"] = page["NextKeyMarker"]
            kw["UploadIdMarker"] = page.get("NextUploadIdMarker", "")

    def objects(self, prefix):
        page = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for o in page.get("Contents", []))

    def gc(self, grace, dry_run=False):
        args = ["gc"] + (["--dry-run"] if dry_run else [])
        rc, out = h.run_berth(args, server=self.cluster.replicas[0],
                              env={GRACE_ENV: str(grace)}, timeout=120)
        self.assertEqual(rc, 0, out)
        m = re.search(r"(\d+) uploads (would be )?removed", out)
        self.assertIsNotNone(m, out)
        return int(m.group(1)), out

    def hand_made_upload(self, key):
        up = self.s3.create_multipart_upload(Bucket=self.bucket, Key=key)
        self.s3.upload_part(Bucket=self.bucket, Key=key, UploadId=up["UploadId"],
                            PartNumber=1, Body=b"x" * 1024)
        return (key, up["UploadId"])

    def test_sweep(self):
        repo = "cluster/orphans"
        # A live session: one part in its multipart upload, a tail object saved.
        data = h.random_bytes(11 * MIB + 5)
        r = self.regs[0].start_upload(repo)
        self.assertEqual(r.status, 202, r.body)
        live = upload_uuid(r.header("Location"))
        live_path = "/v2/%s/blobs/uploads/%s" % (repo, live)
        r = self.regs[1].patch_chunk(live_path, data[:9 * MIB], start=0)
        self.assertEqual(r.status, 202, r.body)
        live_uploads = self.uploads(PREFIX + "uploads/" + live)
        live_objects = self.objects(PREFIX + "uploads/" + live)
        self.assertEqual(len(live_uploads), 1)
        self.assertEqual(len(live_objects), 1, live_objects)  # its tail

        # A replica killed right after it started a session's multipart upload, before
        # the row recorded it: cancelling the session leaves the upload behind.
        victim = h.Server(config=self.cluster.config,
                          env=dict(self.cluster.replica_env(),
                                   BERTH_TEST_CRASH_AT="s3_mpu_started"))
        self.cluster.replicas.append(victim)
        victim.start()
        r = self.regs[0].start_upload(repo)
        killed = upload_uuid(r.header("Location"))
        killed_path = "/v2/%s/blobs/uploads/%s" % (repo, killed)
        try:
            r = victim.registry().patch_chunk(killed_path, h.random_bytes(9 * MIB), start=0)
            self.fail("the victim answered %d" % r.status)
        except (OSError, http.client.HTTPException):
            pass
        victim.proc.wait(60)
        self.assertIn("event=test_crash point=s3_mpu_started", victim.log_text())
        victim_upload = self.uploads(PREFIX + "uploads/" + killed)
        self.assertEqual(len(victim_upload), 1, victim_upload)
        r = self.regs[1].delete(killed_path)
        self.assertEqual(r.status, 204, r.body)
        self.assertEqual(self.uploads(PREFIX + "uploads/" + killed), victim_upload,
                         "cancelling the session aborted the unrecorded upload by itself")

        # Leftovers with no row, as a replica killed at other points leaves them.
        ghost, ghost2 = str(uuidlib.uuid4()), str(uuidlib.uuid4())
        orphans = [self.hand_made_upload(PREFIX + "uploads/" + ghost),
                   self.hand_made_upload(PREFIX + "blobs/sha256/ab/ab" + "0" * 62)]
        orphan_objects = [PREFIX + "uploads/%s/tail-%s" % (ghost2, uuidlib.uuid4()),
                          PREFIX + "uploads/" + ghost2]
        for key in orphan_objects:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=b"stale")
        # Not berth's: other keys under the prefix, and another prefix.
        foreign = [self.hand_made_upload(PREFIX + "other/" + ghost),
                   self.hand_made_upload("elsewhere/uploads/" + ghost)]
        foreign_objects = ["elsewhere/uploads/%s/tail-x" % ghost]
        for key in foreign_objects:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=b"not berth's")
        created = time.time()

        expected_uploads = sorted(victim_upload + orphans)
        all_uploads = sorted(expected_uploads + live_uploads + foreign)

        def everything():
            return (self.uploads(""), self.objects(PREFIX + "uploads/"),
                    self.objects("elsewhere/"))

        before = everything()
        self.assertEqual(before[0], all_uploads)
        self.assertEqual(before[1], sorted(live_objects + orphan_objects))

        # Younger than the grace: nothing goes.
        removed, out = self.gc(3600)
        self.assertEqual(removed, 0, out)
        self.assertEqual(everything(), before)

        # Swift's initiation times have second resolution: let them all be past 1 s.
        time.sleep(max(0.0, created + 3 - time.time()))
        count = len(expected_uploads) + len(orphan_objects)
        removed, out = self.gc(1, dry_run=True)
        self.assertEqual(removed, count, out)
        self.assertEqual(everything(), before)

        removed, out = self.gc(1)
        self.assertEqual(removed, count, out)
        for key, upload_id in expected_uploads:
            self.assertIn("event=s3_orphan_upload_aborted key=%s upload_id=%s"
                          % (key, upload_id), out)
        for key in orphan_objects:
            self.assertIn("event=s3_orphan_object_deleted key=%s " % key, out)
        after = everything()
        self.assertEqual(after[0], sorted(live_uploads + foreign))
        self.assertEqual(after[1], live_objects)
        self.assertEqual(after[2], before[2])

        # A second pass finds nothing more.
        removed, out = self.gc(1)
        self.assertEqual(removed, 0, out)

        # The live session goes on, on the other replica, and publishes all its bytes.
        r = self.regs[0].patch_chunk(live_path, data[9 * MIB:], start=9 * MIB)
        self.assertEqual(r.status, 202, r.body)
        r = self.regs[1].finish_upload(live_path, h.digest_of(data))
        self.assertEqual(r.status, 201, r.body)
        for reg in self.regs:
            r = reg.get_blob(repo, h.digest_of(data))
            self.assertEqual(r.status, 200, r.body[:200])
            self.assertTrue(r.body == data, "the bytes differ")
        self.assertEqual(self.uploads(PREFIX + "uploads/"), [])
        self.assertEqual(self.objects(PREFIX + "uploads/"), [])


if __name__ == "__main__":
    unittest.main()
