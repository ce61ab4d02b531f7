"""Blob GET/HEAD/DELETE (end-2, end-10) and Range requests (reference 1.3)."""

import berth_harness as h


class BlobReadTest(h.ServerTestCase):
    def test_get_and_head(self):
        repo = self.repo()
        data = h.random_bytes(3000)
        self.reg.ensure_blob(repo, data)
        self.assertBlob(repo, data)

    def test_large_blob_round_trip(self):
        repo = self.repo()
        data = h.random_bytes(8 * 1024 * 1024 + 17)
        resp = self.reg.push_blob(repo, data, mode="chunked", chunk_size=3 * 1024 * 1024)
        self.assertStatus(resp, 201)
        self.assertBlob(repo, data)

    def test_missing_blob_in_existing_repository(self):
        repo = self.repo()
        self.reg.ensure_blob(repo, b"present")
        missing = h.digest_of(b"absent")
        self.assertError(self.reg.get_blob(repo, missing), 404, "BLOB_UNKNOWN")
        resp = self.reg.head_blob(repo, missing)
        self.assertStatus(resp, 404)
        self.assertEqual(resp.body, b"")

    def test_blob_of_another_repository_is_not_served(self):
        repo_a, repo_b = self.repo("-a"), self.repo("-b")
        data = h.random_bytes(100)
        self.reg.ensure_blob(repo_a, data)
        self.reg.ensure_blob(repo_b, b"something else")
        digest = h.digest_of(data)
        self.assertError(self.reg.get_blob(repo_b, digest), 404, "BLOB_UNKNOWN")
        self.assertStatus(self.reg.head_blob(repo_b, digest), 404)
        # ... nor in a repository that does not exist at all.
        self.assertError(self.reg.get_blob(self.repo("-none"), digest), 404, "BLOB_UNKNOWN",
                         "NAME_UNKNOWN")

    def test_empty_blob(self):
        repo = self.repo()
        resp = self.reg.push_blob(repo, b"")
        self.assertStatus(resp, 201)
        self.assertHeader(resp, "Docker-Content-Digest", h.digest_of(b""))
        self.assertBlob(repo, b"")

    def test_empty_json_blob(self):
        repo = self.repo()
        self.assertEqual(h.digest_of(h.EMPTY_JSON), h.EMPTY_JSON_DIGEST)
        self.reg.ensure_blob(repo, h.EMPTY_JSON)
        self.assertBlob(repo, h.EMPTY_JSON)

    @h.distribution_fails("no sha512 support")
    def test_sha512_blob(self):
        repo = self.repo()
        data = h.random_bytes(1000)
        resp = self.reg.push_blob(repo, data, algo="sha512", algo_param="sha512")
        self.assertStatus(resp, 201)
        self.assertHeader(resp, "Docker-Content-Digest", h.digest_of(data, "sha512"))
        self.assertBlob(repo, data, algo="sha512")
        # The sha256 name of the same bytes was never pushed.
        self.assertStatus(self.reg.head_blob(repo, h.digest_of(data)), 404)

    @h.distribution_fails("answers 404 to digests its router does not match")
    def test_malformed_digest(self):
        repo = self.repo()
        self.reg.ensure_blob(repo, b"x")
        for bad in ("sha256:abc", "sha256:" + "A" * 64, "sha256:" + "g" * 64, "sha256",
                    "sha256:", ":" + "a" * 64, "sha256:" + "a" * 65, "SHA256:" + "a" * 64,
                    "sha512:" + "a" * 64):
            with self.subTest(digest=bad):
                self.assertError(self.reg.get_blob(repo, bad), 400, "DIGEST_INVALID")
                self.assertStatus(self.reg.head_blob(repo, bad), 400)

    def test_unsupported_algorithm(self):
        repo = self.repo()
        self.reg.ensure_blob(repo, b"x")
        self.assertError(self.reg.get_blob(repo, "md5:" + "a" * 32), 400, "DIGEST_INVALID",
                         "UNSUPPORTED")


class BlobRangeTest(h.ServerTestCase):
    """The six cases of the main-branch conformance suite on a 2048-byte blob."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.range_repo = "itest/range"
        cls.data = h.random_bytes(2048)
        cls.digest = cls.reg.ensure_blob(cls.range_repo, cls.data)

    def get_range(self, value):
        return self.reg.get_blob(self.range_repo, self.digest, headers={"Range": value})

    def check_partial(self, value, first, last):
        resp = self.get_range(value)
        self.assertStatus(resp, 206)
        self.assertEqual(resp.body, self.data[first:last + 1])
        self.assertHeader(resp, "Content-Length", str(last - first + 1))
        self.assertHeader(resp, "Content-Range", "bytes %d-%d/2048" % (first, last))

    def check_unsatisfiable(self, value):
        resp = self.get_range(value)
        self.assertStatus(resp, 416)
        self.assertHeader(resp, "Content-Range", "bytes */2048")

    def test_range_500_1499(self):
        self.check_partial("bytes=500-1499", 500, 1499)

    def test_range_500_open(self):
        self.check_partial("bytes=500-", 500, 2047)

    def test_range_suffix_500(self):
        self.check_partial("bytes=-500", 1548, 2047)

    def test_range_2000_5000_is_clamped(self):
        self.check_partial("bytes=2000-5000", 2000, 2047)

    @h.distribution_fails("its 416 keeps the Content-Length of the whole blob")
    def test_range_500_0_is_416(self):
        self.check_unsatisfiable("bytes=500-0")

    @h.distribution_fails("its 416 keeps the Content-Length of the whole blob")
    def test_range_5000_10000_is_416(self):
        self.check_unsatisfiable("bytes=5000-10000")

    def test_range_single_bytes(self):
        self.check_partial("bytes=0-0", 0, 0)
        self.check_partial("bytes=2047-2047", 2047, 2047)
        self.check_partial("bytes=2047-", 2047, 2047)

    @h.distribution_fails("its 416 keeps the Content-Length of the whole blob")
    def test_range_starting_at_size_is_416(self):
        self.check_unsatisfiable("bytes=2048-")

    def test_no_range_is_whole_blob(self):
        resp = self.reg.get_blob(self.range_repo, self.digest)
        self.assertStatus(resp, 200)
        self.assertEqual(resp.body, self.data)
        self.assertIsNone(resp.header("Content-Range"))

    def test_range_response_carries_digest(self):
        resp = self.get_range("bytes=0-9")
        self.assertStatus(resp, 206)
        self.assertHeader(resp, "Docker-Content-Digest", self.digest)

    def test_if_range(self):
        # RFC 9110 13.1.5: the Range holds only while If-Range names this representation
        # by its strong ETag; otherwise all of it comes back, 200.
        etag = self.assertStatus(self.reg.head_blob(self.range_repo, self.digest), 200)
        etag = self.assertHasHeader(etag, "ETag")
        resp = self.reg.get_blob(self.range_repo, self.digest,
                                 headers={"Range": "bytes=0-1", "If-Range": etag})
        self.assertStatus(resp, 206)
        self.assertEqual(resp.body, self.data[:2])
        for other in ('"nope"', "W/" + etag, "Sun, 06 Nov 1994 08:49:37 GMT"):
            for value in ("bytes=0-1", "bytes=5000-"):
                with self.subTest(if_range=other, range=value):
                    resp = self.reg.get_blob(self.range_repo, self.digest,
                                             headers={"Range": value, "If-Range": other})
                    self.assertStatus(resp, 200)
                    self.assertEqual(resp.body, self.data)
                    self.assertIsNone(resp.header("Content-Range"))
                    self.assertHeader(resp, "ETag", etag)


class BlobDeleteTest(h.ServerTestCase):
    def test_delete_then_404(self):
        repo = self.repo()
        data = h.random_bytes(500)
        digest = self.reg.ensure_blob(repo, data)
        resp = self.reg.delete_blob(repo, digest)
        self.assertStatus(resp, 202)
        self.assertError(self.reg.get_blob(repo, digest), 404, "BLOB_UNKNOWN")
        self.assertStatus(self.reg.head_blob(repo, digest), 404)
        self.assertError(self.reg.delete_blob(repo, digest), 404, "BLOB_UNKNOWN")

    def test_delete_missing_blob(self):
        repo = self.repo()
        self.reg.ensure_blob(repo, b"keep")
        self.assertError(self.reg.delete_blob(repo, h.digest_of(b"never")), 404, "BLOB_UNKNOWN")

    def test_delete_unlinks_only_this_repository(self):
        repo_a, repo_b = self.repo("-a"), self.repo("-b")
        data = h.random_bytes(700)
        digest = self.reg.ensure_blob(repo_a, data)
        self.reg.ensure_blob(repo_b, data)
        self.assertStatus(self.reg.delete_blob(repo_a, digest), 202)
        self.assertStatus(self.reg.head_blob(repo_a, digest), 404)
        self.assertBlob(repo_b, data)

    def test_push_again_after_delete(self):
        repo = self.repo()
        data = h.random_bytes(300)
        digest = self.reg.ensure_blob(repo, data)
        self.assertStatus(self.reg.delete_blob(repo, digest), 202)
        self.reg.ensure_blob(repo, data)
        self.assertBlob(repo, data)

    def test_delete_malformed_digest(self):
        repo = self.repo()
        self.reg.ensure_blob(repo, b"x")
        self.assertError(self.reg.delete_blob(repo, "sha256:nothex"), 400, "DIGEST_INVALID")


if __name__ == "__main__":
    h.main()
