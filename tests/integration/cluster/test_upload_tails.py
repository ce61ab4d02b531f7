"""The tail cache of S3 upload sessions (storage/blob/s3_tails.c): a replica that committed
a session's tail (the bytes after its last whole 8 MiB part, saved as
uploads/<uuid>/tail-<random>) keeps it in memory, and its next request of the same session
takes it from there instead of GETting it back, but only while the session's row still names
that tail. Two replicas on one PostgreSQL, their S3 requests through a counting relay
(lib/s3_error_proxy.py) in front of Swift: chunks on one replica GET no tail; chunks
alternating between the replicas GET every tail the other one wrote (a cache trusted across
another replica's commit would fold stale bytes in: the digest or the size would not match),
and every blob pulls back byte for byte from both."""
# berth-suite: cluster

import unittest

import berth_harness as h
from cluster import RelayedClusterTestCase

MIB = 1024 * 1024


def upload_uuid(location):
    return location.rstrip("/").split("/")[-1].split("?")[0]


@unittest.skipUnless(h.IS_BERTH, "berth's replicas")
class TailCacheTest(RelayedClusterTestCase):
    def tail_requests(self, uuid, method):
        return self.relay.requests_matching(method, "uploads/%s/tail-" % uuid)

    def tail_reads(self, replica):
        """(from memory, from the bucket) in the replica's /metrics."""
        r = self.regs[replica].get("/metrics")
        self.assertEqual(r.status, 200, r.body[:200])
        out = {}
        for line in r.body.decode().splitlines():
            if line.startswith("berth_s3_upload_tail_reads_total{source="):
                out[line.split('"')[1]] = int(line.split()[-1])
        return out.get("memory"), out.get("bucket")

    def start(self, repo, replica=0):
        """An upload session of repo started on replica: its Location and uuid."""
        r = self.regs[replica].start_upload(repo)
        self.assertEqual(r.status, 202, r.body)
        loc = r.header("Location")
        return loc, upload_uuid(loc)

    def finish(self, replica, loc, data):
        r = self.regs[replica].finish_upload(loc, h.digest_of(data))
        self.assertEqual(r.status, 201, r.body)

    def assert_pulled(self, repo, data, replicas=(0, 1)):
        """data pulls back byte for byte from each of replicas."""
        for i in replicas:
            got = self.regs[i].get_blob(repo, h.digest_of(data))
            self.assertEqual(got.status, 200, got.body[:200])
            self.assertTrue(got.body == data, "replica %d: the bytes differ" % i)

    def assert_published(self, repo, data, uuid):
        """data pulls back byte for byte from every replica; no object of session uuid is
        left in the bucket."""
        self.assert_pulled(repo, data)
        self.assertEqual(self.cluster.keys("uploads/" + uuid), [])

    def push(self, repo, chunks, last):
        """POST on replica chunks[0][0], PATCH each (replica, size), PUT on replica `last`;
        pulled back from both replicas. The upload's uuid."""
        data = h.random_bytes(sum(n for _, n in chunks))
        _, uuid = self.start(repo, chunks[0][0])
        path = "/v2/%s/blobs/uploads/%s" % (repo, uuid)
        at = 0
        for i, (replica, n) in enumerate(chunks):
            r = self.regs[replica].patch_chunk(path, data[at:at + n], start=at)
            self.assertEqual(r.status, 202, "chunk %d on replica %d: %s" % (i, replica, r.body))
            at += n
            self.assertEqual(r.header("Range"), "0-%d" % (at - 1))
        self.finish(last, path, data)
        self.assert_published(repo, data, uuid)
        return uuid

    def multi_deletes(self):
        return len(self.relay.requests_matching("POST", "?delete"))

    def test_same_replica_reads_no_tail(self):
        # tails of 1, 4, 9-8=1 MiB (a part sent), 3 MiB, then 3 MiB + 1 byte, all on one
        # replica: every tail PUT, none read back
        for replica in (0, 1):
            mem, bucket = self.tail_reads(replica)
            deletes = self.multi_deletes()
            uuid = self.push("tails/same%d" % replica,
                             [(replica, n) for n in (MIB, 3 * MIB, 5 * MIB, 2 * MIB, 1)],
                             last=replica)
            self.assertEqual(len(self.tail_requests(uuid, "PUT")), 5)
            self.assertEqual(self.tail_requests(uuid, "GET"), [])
            # replaced tails are not deleted one by one: the commit that sent the part
            # deletes the two before it in one DeleteObjects, the session's removal the
            # rest (two dead tails, the last one, the staging object) in another
            self.assertEqual(self.tail_requests(uuid, "DELETE"), [])
            self.assertEqual(self.multi_deletes(), deletes + 2)
            # the 4 PATCHes after the first and the PUT took the tail from memory
            self.assertEqual(self.tail_reads(replica), (mem + 5, bucket))

    def test_alternating_replicas_read_the_row_s_tail(self):
        # A, B, A, B, ...: each request finds the other replica's tail in the row (its own
        # cached one is stale) and must GET it. Where a whole part went between, the row's
        # tail has the length of the stale one (A: 1 MiB, B: 8 MiB -> a part and a 1 MiB
        # tail; B: 4 MiB, A: 8 MiB -> 4 MiB): the hash state in the row is right either
        # way, so stale bytes would be published under the right digest; the pull-back
        # compares the bytes
        sizes = [MIB, 8 * MIB, MIB, 2 * MIB, 8 * MIB, 8 * MIB, 1, 1, 700 * 1024]
        chunks = [(i % 2, n) for i, n in enumerate(sizes)]
        uuid = self.push("tails/alternate", chunks, last=1)
        # every PATCH after the first and the PUT (on A after B's last) read a tail: the
        # ones whose row named a tail, that is all of them here (no chunk ends on 8 MiB)
        self.assertEqual(len(self.tail_requests(uuid, "GET")), len(sizes))
        # then back to one replica: from the second request on, no GET
        uuid = self.push("tails/switch", [(0, MIB), (1, MIB), (1, MIB), (1, 3 * MIB)], last=1)
        self.assertEqual(len(self.tail_requests(uuid, "GET")), 1)

    def test_refused_writer_keeps_nothing_stale(self):
        """A PATCH that loses to another replica's commit (a stale Content-Range: 416)
        leaves the winner's tail in the row; the loser's next request GETs it."""
        data = h.random_bytes(11 * MIB)
        loc, _ = self.start("tails/refused")
        r = self.regs[0].patch_chunk(loc, data[:MIB], start=0)
        self.assertEqual(r.status, 202, r.body)
        # B: a whole part and a tail of 1 MiB again, other bytes than A's cached one
        r = self.regs[1].patch_chunk(loc, data[MIB:9 * MIB], start=MIB)
        self.assertEqual(r.status, 202, r.body)
        r = self.regs[0].patch_chunk(loc, data[MIB:2 * MIB], start=MIB)
        self.assertEqual(r.status, 416, r.body)
        r = self.regs[0].patch_chunk(loc, data[9 * MIB:], start=9 * MIB)
        self.assertEqual(r.status, 202, r.body)
        self.finish(0, loc, data)
        self.assert_pulled("tails/refused", data, replicas=(1,))

    def test_dead_tails_capped_and_old_rows(self):
        """Many small chunks and no part: a state lists at most 16 dead tails, the commit
        that would list a 17th deletes them all at once. A row without dead lines (as berth
        wrote them before) continues: its replaced tails go with the session's removal."""
        data = h.random_bytes(24 * 64 * 1024)
        loc, uuid = self.start("tails/small")
        deletes = self.multi_deletes()
        piece = 64 * 1024
        for i in range(20):
            r = self.regs[0].patch_chunk(loc, data[i * piece:(i + 1) * piece], start=i * piece)
            self.assertEqual(r.status, 202, r.body)
        # saves 2..17 listed 1..16 dead tails; the 18th deleted 17 in one request
        self.assertEqual(self.multi_deletes(), deletes + 1)
        self.assertEqual(self.tail_requests(uuid, "DELETE"), [])
        state = self.cluster.psql("SELECT stage_state FROM uploads WHERE uuid = '%s'" % uuid)
        self.assertEqual(state.count("dead uploads/%s/tail-" % uuid), 2, state)
        # an old row: no dead lines
        self.cluster.psql("UPDATE uploads SET stage_state = regexp_replace(stage_state, "
                          "'dead [^\\n]*\\n', '', 'g') WHERE uuid = '%s'" % uuid)
        state = self.cluster.psql("SELECT stage_state FROM uploads WHERE uuid = '%s'" % uuid)
        self.assertNotIn("dead", state)
        for i in range(20, 24):
            r = self.regs[1].patch_chunk(loc, data[i * piece:(i + 1) * piece], start=i * piece)
            self.assertEqual(r.status, 202, r.body)
        self.finish(1, loc, data)
        self.assert_pulled("tails/small", data, replicas=(0,))
        self.assertEqual(self.cluster.keys("uploads/" + uuid), [])
        self.assertEqual(self.tail_requests(uuid, "DELETE"), [])

    def add_faulty_replica(self, faults):
        self.cluster.env["BERTH_TEST_FAULTS"] = faults
        try:
            server = self.cluster.add_replica()
        finally:
            del self.cluster.env["BERTH_TEST_FAULTS"]
        return server

    def continue_and_check(self, loc, data, at, uuid, repo):
        """The session continues on replica 0 from `at` (its GET says so), is published and
        pulls back byte for byte; no object of it stays in the bucket."""
        r = self.regs[0].get(self.regs[0].resolve(loc))
        self.assertEqual(r.status, 204, r.body)
        self.assertEqual(r.header("Range"), "0-%d" % (at - 1))
        r = self.regs[0].patch_chunk(loc, data[at:], start=at)
        self.assertEqual(r.status, 202, r.body)
        self.finish(0, loc, data)
        self.assert_published(repo, data, uuid)

    def test_lost_commit_answer_keeps_the_row_s_tail(self):
        """PostgreSQL commits a PATCH's save but its answer is lost (the fault
        upload_commit_lost reports an error after the real UPDATE's commit). The row, read
        again, says the save was made: the PATCH answers 202 and the tail it names stays.
        Before, the new tail was deleted while the committed row named it, and every later
        request of the session failed."""
        server = self.add_faulty_replica("upload_commit_lost")
        faulty = server.registry()
        repo = "tails/lost"
        # a part and a tail of 1 MiB on replica 0, then 2 MiB more on the faulty one
        data = h.random_bytes(15 * MIB)
        loc, uuid = self.start(repo)
        r = self.regs[0].patch_chunk(loc, data[:9 * MIB], start=0)
        self.assertEqual(r.status, 202, r.body)
        r = faulty.patch_chunk(loc, data[9 * MIB:11 * MIB], start=9 * MIB)
        self.assertEqual(r.status, 202, r.body)
        self.assertEqual(r.header("Range"), "0-%d" % (11 * MIB - 1))
        h.wait_until(lambda: "outcome=committed" in server.log_text(), 10,
                     what="the re-read's verdict in the log")
        self.continue_and_check(loc, data, 11 * MIB, uuid, repo)

    def test_lost_commit_answer_and_row_keeps_both_tails(self):
        """The same, and the row cannot be read again either (upload_reread_lost): the
        PATCH fails (503) and deletes neither tail, since the row may name either; the
        session's committed state (here: the save was made) continues on another replica,
        and the publication's removal takes both tails."""
        server = self.add_faulty_replica("upload_commit_lost,upload_reread_lost")
        faulty = server.registry()
        repo = "tails/unknown"
        data = h.random_bytes(6 * MIB)
        loc, uuid = self.start(repo)
        r = self.regs[0].patch_chunk(loc, data[:MIB], start=0)
        self.assertEqual(r.status, 202, r.body)
        r = faulty.patch_chunk(loc, data[MIB:3 * MIB], start=MIB)
        self.assertEqual(r.status, 503, r.body)
        # the 503 is sent after the tails were settled
        tails = self.cluster.keys("uploads/%s/tail-" % uuid)
        self.assertEqual(len(tails), 2, tails)
        self.continue_and_check(loc, data, 3 * MIB, uuid, repo)
        log = server.log_text()
        self.assertIn("outcome=unknown", log)
        self.assertIn("event=s3_tails_kept", log)


if __name__ == "__main__":
    unittest.main()
