"""Upload sessions are shared among replicas (docs/scale-out.md): three `berth serve` on one
PostgreSQL and one S3 bucket (cluster.py). A chunked upload PATCHed round-robin to A, B, C
in chunks below, at and above S3's part sizes (a 1-byte chunk among them) and finished with
a PUT on A publishes the digest of all its bytes, pulled back byte for byte from every
replica, and its status asked of another replica tells the committed offset each time. Two
replicas PATCHing the same session at once: one chunk is kept, the other refused with 416,
and the blob is the kept one's. kill -9 of a replica in the middle of a PATCH (after it sent
a part of it to S3): the session stays at its last committed offset and the client resumes
on another replica. ECR's layer upload moves between replicas too. Blobs over a (lowered)
single-copy limit are published by a ranged multipart copy. Nothing is left under
the uploads/ prefix or as an open multipart upload once sessions end."""
# berth-suite: cluster

import base64
import http.client
import json
import unittest

import berth_harness as h
from cluster import PREFIX, Cluster, ClusterTestCase

MIB = 1024 * 1024


def upload_uuid(location):
    return location.rstrip("/").split("/")[-1].split("?")[0]


@unittest.skipUnless(h.IS_BERTH, "berth's replicas")
class SharedUploadTest(ClusterTestCase):
    @classmethod
    def setUpClass(cls):
        # blobs over 20 MiB are copied to their content key in ranges (UploadPartCopy), as
        # those over S3's 5 GiB single-copy limit are
        cls.cluster = Cluster(replicas=3, config={"gc": {"enabled": False}},
                              env={"BERTH_TEST_S3_COPY_MAX": str(20 * MIB)})
        cls.addClassCleanup(cls.cluster.stop)
        cls.cluster.start()
        cls.regs = [r.registry() for r in cls.cluster.replicas]
        cls.s3 = cls.cluster.s3.client()

    def keys(self, under):
        out = []
        kw = {"Bucket": self.cluster.s3.bucket, "Prefix": PREFIX + under}
        while True:
            page = self.s3.list_objects_v2(**kw)
            out += [o["Key"][len(PREFIX):] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return out
            kw["ContinuationToken"] = page["NextContinuationToken"]

    def open_uploads(self, uuid):
        ups = self.s3.list_multipart_uploads(Bucket=self.cluster.s3.bucket,
                                             Prefix=PREFIX + "uploads/" + uuid)
        return ups.get("Uploads", [])

    def assert_session_gone(self, uuid):
        self.assertEqual(self.keys("uploads/" + uuid), [])
        self.assertEqual(self.open_uploads(uuid), [])

    def status(self, reg, repo, uuid):
        r = reg.get("/v2/%s/blobs/uploads/%s" % (repo, uuid))
        self.assertEqual(r.status, 204, r.body)
        return r.header("Range")

    def assert_everywhere(self, repo, data, regs=None):
        d = h.digest_of(data)
        for i, reg in enumerate(regs or self.regs):
            r = reg.get_blob(repo, d)
            self.assertEqual(r.status, 200, "replica %d: %s" % (i, r.body[:200]))
            self.assertTrue(r.body == data, "replica %d: the bytes differ" % i)

    def round_robin(self, repo, sizes, last):
        """POST on A, PATCH chunk i on replica i % 3 (each status checked on the next
        replica), PUT on A with a last chunk of `last` bytes; the data."""
        data = h.random_bytes(sum(sizes) + last)
        r = self.regs[0].start_upload(repo)
        self.assertEqual(r.status, 202, r.body)
        uuid = upload_uuid(r.header("Location"))
        path = "/v2/%s/blobs/uploads/%s" % (repo, uuid)
        at = 0
        for i, n in enumerate(sizes):
            reg = self.regs[i % 3]
            r = reg.patch_chunk(path, data[at:at + n], start=at)
            self.assertEqual(r.status, 202, "chunk %d (%d bytes) on replica %d: %s"
                             % (i, n, i % 3, r.body))
            at += n
            self.assertEqual(r.header("Range"), "0-%d" % (at - 1))
            self.assertEqual(self.status(self.regs[(i + 1) % 3], repo, uuid), "0-%d" % (at - 1))
        r = self.regs[0].finish_upload(path, h.digest_of(data), data=data[at:],
                                       start=at if last else None)
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(r.header("Docker-Content-Digest"), h.digest_of(data))
        self.assert_everywhere(repo, data)
        self.assert_session_gone(uuid)
        return data

    def test_round_robin_chunk_sizes(self):
        # 1 byte, below S3's 5 MiB minimum, berth's 8 MiB part exactly and across it,
        # several parts in one chunk, and tiny chunks after whole parts
        self.round_robin("cluster/rr/mixed",
                         [1, 3 * MIB, 5 * MIB - 1, 8 * MIB, 1, 700 * 1024, 17 * MIB + 5, 1, 2],
                         last=3 * MIB + 7)
        # chunks that never fill a part: the tail alone carries the session
        self.round_robin("cluster/rr/small", [1, 1, 1000, 64 * 1024, 1], last=1)
        # one part's worth exactly, then the PUT without a body
        self.round_robin("cluster/rr/exact", [4 * MIB, 4 * MIB], last=0)

    def test_streamed_and_monolithic_across_replicas(self):
        """A streamed PATCH (no Content-Range) on B of a session begun on A, a second on C,
        PUT without a body on A; a single-POST monolithic upload on each replica."""
        repo = "cluster/stream"
        data = h.random_bytes(11 * MIB + 3)
        r = self.regs[0].start_upload(repo)
        loc = r.header("Location")
        r = self.regs[1].patch_stream(loc, data[:9 * MIB])
        self.assertEqual(r.status, 202, r.body)
        r = self.regs[2].patch_stream(loc, data[9 * MIB:])
        self.assertEqual(r.status, 202, r.body)
        self.assertEqual(r.header("Range"), "0-%d" % (len(data) - 1))
        r = self.regs[0].finish_upload(loc, h.digest_of(data))
        self.assertEqual(r.status, 201, r.body)
        self.assert_everywhere(repo, data)
        for i, reg in enumerate(self.regs):
            one = h.random_bytes(100 + i * 6 * MIB)
            r = reg.push_blob(repo, one, mode="post_only")
            self.assertEqual(r.status, 201, r.body)
            self.assert_everywhere(repo, one)
        # a wrong digest on another replica publishes nothing and ends the session
        r = self.regs[0].start_upload(repo)
        loc = r.header("Location")
        other = h.random_bytes(9 * MIB)
        r = self.regs[1].patch_chunk(loc, other, start=0)
        self.assertEqual(r.status, 202, r.body)
        r = self.regs[2].finish_upload(loc, h.digest_of(b"not it"))
        self.assertEqual(r.status, 400, r.body)
        self.assertEqual(self.regs[0].head_blob(repo, h.digest_of(other)).status, 404)
        self.assert_session_gone(upload_uuid(loc))
        r = self.regs[0].get(self.regs[0].resolve(loc))
        self.assertEqual(r.status, 404, r.body)

    def open_patch(self, reg, path, start, body_len):
        """Send a PATCH's head; the caller sends the body and reads the answer."""
        conn = http.client.HTTPConnection(reg.host, reg.port, timeout=120)
        conn.putrequest("PATCH", path)
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", str(body_len))
        conn.putheader("Content-Range", "%d-%d" % (start, start + body_len - 1))
        conn.putheader("Connection", "close")
        conn.endheaders()
        return conn

    def test_concurrent_patches_from_two_replicas(self):
        """B and C both take the session at the same offset (their heads in, half of each
        body sent, parts of both already in S3), then both finish: exactly one chunk is
        committed (202), the other is refused with 416 and the session's Range; the blob
        published is the committed chunk's, its digest checked over all bytes."""
        repo = "cluster/race"
        head = h.random_bytes(3 * MIB)
        mine = [h.random_bytes(13 * MIB), h.random_bytes(13 * MIB)]
        r = self.regs[0].start_upload(repo)
        uuid = upload_uuid(r.header("Location"))
        path = "/v2/%s/blobs/uploads/%s" % (repo, uuid)
        r = self.regs[0].patch_chunk(path, head, start=0)
        self.assertEqual(r.status, 202, r.body)
        conns = [self.open_patch(self.regs[1 + i], path, len(head), len(mine[i]))
                 for i in range(2)]
        half = 10 * MIB  # with the 3 MiB before: a whole part sent by each
        for i in range(2):
            conns[i].send(mine[i][:half])

        def parts_sent():
            n = 0
            for up in self.open_uploads(uuid):
                try:
                    got = self.s3.list_parts(Bucket=self.cluster.s3.bucket, Key=up["Key"],
                                             UploadId=up["UploadId"])
                except self.s3.exceptions.NoSuchUpload:
                    # listed, then aborted: the replica that started a second one
                    # gave it up to adopt the first's
                    continue
                n += len(got.get("Parts", []))
            return n

        # both hold the session, each has sent a part of its chunk (one multipart
        # upload: the second to start one adopts the first's)
        h.wait_until(lambda: parts_sent() >= 2, 60, interval=0.1,
                     what="a part from each replica")
        self.assertEqual(len(self.open_uploads(uuid)), 1)
        for i in range(2):
            conns[i].send(mine[i][half:])
        answers = []
        for i in range(2):
            resp = conns[i].getresponse()
            answers.append((resp.status, resp.getheader("Range"), resp.read()))
            conns[i].close()
        statuses = sorted(a[0] for a in answers)
        self.assertEqual(statuses, [202, 416], answers)
        won = [i for i in range(2) if answers[i][0] == 202][0]
        # the loser was refused at its commit, having loaded the same state
        self.assertIn("event=upload_save_refused uuid=%s" % uuid,
                      self.cluster.replicas[2 - won].log_text())
        end = len(head) + len(mine[won]) - 1
        for status, rng, _ in answers:
            self.assertEqual(rng, "0-%d" % end)
        self.assertEqual(self.status(self.regs[0], repo, uuid), "0-%d" % end)
        data = head + mine[won]
        r = self.regs[0].finish_upload(path, h.digest_of(data))
        self.assertEqual(r.status, 201, r.body)
        self.assert_everywhere(repo, data)
        self.assert_session_gone(uuid)

    def test_kill9_mid_patch_then_resume(self):
        """A replica killed after it sent a part of a PATCH to S3 commits nothing of it:
        another replica reports the last committed offset, the client resumes there on a
        third and finishes on a fourth."""
        victim = self.cluster.add_replica()
        repo = "cluster/kill"
        data = h.random_bytes(29 * MIB + 11)
        r = self.regs[0].start_upload(repo)
        uuid = upload_uuid(r.header("Location"))
        path = "/v2/%s/blobs/uploads/%s" % (repo, uuid)
        first = 9 * MIB
        r = self.regs[0].patch_chunk(path, data[:first], start=0)
        self.assertEqual(r.status, 202, r.body)
        [up] = self.open_uploads(uuid)

        def parts():
            got = self.s3.list_parts(Bucket=self.cluster.s3.bucket, Key=up["Key"],
                                     UploadId=up["UploadId"])
            return len(got.get("Parts", []))

        self.assertEqual(parts(), 1)
        vreg = victim.registry()
        conn = self.open_patch(vreg, path, first, len(data) - first)
        conn.send(data[first:first + 12 * MIB])
        h.wait_until(lambda: parts() >= 2, 60, interval=0.1,
                     what="the victim's part of its PATCH in S3")
        victim.kill9()
        conn.close()
        self.assertEqual(self.status(self.regs[1], repo, uuid), "0-%d" % (first - 1))
        r = self.regs[2].patch_chunk(path, data[first:], start=first)
        self.assertEqual(r.status, 202, r.body)
        r = self.regs[1].finish_upload(path, h.digest_of(data))
        self.assertEqual(r.status, 201, r.body)
        self.assert_everywhere(repo, data)
        self.assert_session_gone(uuid)

    def ecr(self, reg, op, body):
        r = reg.ecr(op, body)
        return r.status, json.loads(r.body or b"{}")

    def test_ecr_layer_upload_across_replicas(self):
        """InitiateLayerUpload on A, UploadLayerPart on B then C, CompleteLayerUpload on A;
        a part at a stale offset on another replica is refused with where the upload
        stands."""
        repo = "cluster/ecr"
        status, out = self.ecr(self.regs[0], "CreateRepository", {"repositoryName": repo})
        self.assertEqual(status, 200, out)
        status, out = self.ecr(self.regs[0], "InitiateLayerUpload", {"repositoryName": repo})
        self.assertEqual(status, 200, out)
        uid = out["uploadId"]
        data = h.random_bytes(6 * MIB + 5)
        cut = 5 * MIB
        for reg, lo, hi in ((self.regs[1], 0, cut), (self.regs[2], cut, len(data))):
            status, out = self.ecr(reg, "UploadLayerPart", {
                "repositoryName": repo, "uploadId": uid, "partFirstByte": lo,
                "partLastByte": hi - 1,
                "layerPartBlob": base64.b64encode(data[lo:hi]).decode()})
            self.assertEqual(status, 200, out)
            self.assertEqual(out["lastByteReceived"], hi - 1)
        status, out = self.ecr(self.regs[1], "UploadLayerPart", {
            "repositoryName": repo, "uploadId": uid, "partFirstByte": 0, "partLastByte": 0,
            "layerPartBlob": base64.b64encode(b"x").decode()})
        self.assertEqual(status, 400, out)
        status, out = self.ecr(self.regs[0], "CompleteLayerUpload", {
            "repositoryName": repo, "uploadId": uid, "layerDigests": [h.digest_of(data)]})
        self.assertEqual(status, 200, out)
        self.assertEqual(out["layerDigest"], h.digest_of(data))
        self.assert_everywhere(repo, data)

    def test_ecr_layer_part_limit_across_replicas(self):
        """ECR's 1,000 layer parts per upload count on every replica: 500 on A and 500 on
        B, the 1,001st is refused on A (the count is the session row's, not a process's)."""
        repo = "cluster/ecr-parts"
        status, out = self.ecr(self.regs[0], "CreateRepository", {"repositoryName": repo})
        self.assertEqual(status, 200, out)
        status, out = self.ecr(self.regs[0], "InitiateLayerUpload", {"repositoryName": repo})
        self.assertEqual(status, 200, out)
        uid = out["uploadId"]
        data = h.random_bytes(1001)

        def part(reg, i):
            return self.ecr(reg, "UploadLayerPart", {
                "repositoryName": repo, "uploadId": uid, "partFirstByte": i,
                "partLastByte": i, "layerPartBlob": base64.b64encode(data[i:i + 1]).decode()})
        for i in range(1000):
            status, out = part(self.regs[0] if i < 500 else self.regs[1], i)
            self.assertEqual(status, 200, out)
        for reg in (self.regs[0], self.regs[2]):
            status, out = part(reg, 1000)
            self.assertEqual((status, out.get("__type")), (400, "LimitExceededException"), out)
            self.assertIn("1000 layer parts", out["message"])
        status, out = self.ecr(self.regs[1], "CompleteLayerUpload", {
            "repositoryName": repo, "uploadId": uid, "layerDigests": [h.digest_of(data[:1000])]})
        self.assertEqual(status, 200, out)
        self.assert_everywhere(repo, data[:1000])


if __name__ == "__main__":
    unittest.main()
