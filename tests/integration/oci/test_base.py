"""GET /v2/, the error body shape, repository name validation, unknown routes."""

import berth_harness as h


class BaseApiTest(h.ServerTestCase):
    def test_ping(self):
        resp = self.reg.ping()
        self.assertStatus(resp, 200)
        self.assertHeader(resp, h.API_VERSION_HEADER, "registry/2.0")

    def test_ping_head(self):
        resp = self.reg.head("/v2/")
        self.assertStatus(resp, 200)
        self.assertHeader(resp, h.API_VERSION_HEADER, "registry/2.0")

    @h.berth_only("every berth response carries the API version header")
    def test_api_version_header_on_errors(self):
        for resp in (self.reg.get("/v2/itest/nope/tags/list"),
                     self.reg.get("/v2/Upper/tags/list"),
                     self.reg.get("/v2/itest/nope/blobs/sha256:" + "0" * 64),
                     self.reg.get("/v2/itest/x/not-a-route")):
            self.assertHeader(resp, h.API_VERSION_HEADER, "registry/2.0")

    def test_unknown_repository_tags(self):
        resp = self.reg.tags("itest/never-pushed")
        self.assertError(resp, 404, "NAME_UNKNOWN")

    def test_unknown_repository_manifest(self):
        resp = self.reg.get_manifest("itest/never-pushed", "latest")
        self.assertError(resp, 404, "NAME_UNKNOWN", "MANIFEST_UNKNOWN")

    def test_unknown_repository_blob(self):
        resp = self.reg.get_blob("itest/never-pushed", h.digest_of(b"nothing"))
        self.assertError(resp, 404, "NAME_UNKNOWN", "BLOB_UNKNOWN")

    def test_unknown_repository_head_blob(self):
        resp = self.reg.head_blob("itest/never-pushed", h.digest_of(b"nothing"))
        self.assertStatus(resp, 404)
        self.assertEqual(resp.body, b"")

    def test_unknown_route_under_v2(self):
        for path in ("/v2/itest/x/not-a-route", "/v2/itest/x/blobs", "/v2/itest/x/tags",
                     "/v2/_nothing_here"):
            resp = self.reg.get(path)
            with self.subTest(path=path):
                self.assertStatus(resp, 404)

    def test_unknown_path_outside_v2(self):
        self.assertStatus(self.reg.get("/v1/_ping"), 404)
        self.assertStatus(self.reg.get("/v3/"), 404)

    @h.berth_only("the error body shape on 404s that are not registry resources")
    def test_unknown_route_error_body(self):
        resp = self.reg.get("/v2/itest/x/not-a-route")
        self.assertStatus(resp, 404)
        resp.error_codes()

    def test_error_body_shape_on_4xx(self):
        """Every JSON 4xx answer is {"errors":[{"code":..,"message":..}]}."""
        repo = self.repo()
        self.reg.ensure_blob(repo, b"shape")
        cases = [
            self.reg.tags("itest/never-pushed"),
            self.reg.get_blob(repo, h.digest_of(b"missing")),
            self.reg.get_manifest(repo, "missing-tag"),
            self.reg.put_manifest(repo, "t", b"{not json", h.MT_OCI_MANIFEST),
            self.reg.request("GET", "/v2/%s/blobs/uploads/%s" % (repo, "0" * 32)),
        ]
        for resp in cases:
            with self.subTest(request=str(resp)):
                self.assertTrue(400 <= resp.status < 500, resp.describe())
                codes = resp.error_codes()
                doc = resp.json()
                self.assertIn("message", doc["errors"][0])
                self.assertTrue(all(c == c.upper() for c in codes), codes)


class NameValidationTest(h.ServerTestCase):
    """Invalid repository names are 400 NAME_INVALID wherever a name appears."""

    def names_invalid(self, names, routes=("tags",)):
        for name in names:
            for route in routes:
                if route == "tags":
                    resp = self.reg.get("/v2/%s/tags/list" % name)
                elif route == "upload":
                    resp = self.reg.request("POST", "/v2/%s/blobs/uploads/" % name)
                elif route == "manifest":
                    resp = self.reg.put_manifest(name, "latest", b"{}", h.MT_OCI_MANIFEST)
                else:
                    resp = self.reg.get("/v2/%s/blobs/%s" % (name, h.digest_of(b"x")))
                with self.subTest(name=name, route=route):
                    self.assertError(resp, 400, "NAME_INVALID")

    @h.distribution_fails("invalid names do not match its router: 404 page not found")
    def test_uppercase(self):
        self.names_invalid(["Upper", "itest/Mixed", "ITEST/x"],
                           routes=("tags", "upload", "manifest", "blob"))

    @h.distribution_fails("answers 301 to the path with the dots resolved")
    def test_dot_dot(self):
        self.names_invalid(["itest/../x", "../etc", "itest/..", ".."])

    @h.distribution_fails("answers 301 to the path with '//' collapsed")
    def test_empty_segments(self):
        self.names_invalid(["itest//x", "itest/x/"], routes=("tags", "upload"))

    @h.distribution_fails("invalid names do not match its router: 404 page not found")
    def test_bad_separators(self):
        self.names_invalid(["-itest", "itest-", "itest/.x", "a..b", "a___b", "a:b", "a%20b",
                            "a@b"])

    @h.distribution_fails("answers 500 for a name > 255 characters")
    def test_too_long(self):
        # ECR's RepositoryName is 2..256 characters; berth takes the same names on /v2
        long_name = "/".join(["a" * 50] * 5) + "/abcdef"  # 50*5 + 4 + 7 = 261 characters
        self.assertGreater(len(long_name), 256)
        self.names_invalid([long_name, "b" * 257], routes=("tags", "upload", "manifest"))

    @h.distribution_fails("accepts a one-character name")
    def test_too_short(self):
        self.names_invalid(["a", "7"], routes=("tags", "upload", "manifest"))

    @h.distribution_fails("answers 500 for a name > 255 characters")
    def test_longest_valid_name(self):
        name = "/".join(["c" * 50] * 4 + ["d" * 52])  # 4*50 + 4 + 52 = 256 characters
        self.assertEqual(len(name), 256)
        resp = self.reg.push_blob(name, b"long name")
        self.assertStatus(resp, 201)
        self.assertBlob(name, b"long name")

    @h.distribution_fails("decodes %2F into '/' and accepts the name")
    def test_percent_encoded_slash(self):
        self.names_invalid(["itest%2Fx", "itest%2fx"], routes=("tags", "upload"))

    @h.distribution_fails("answers 301 to the path with the dots resolved")
    def test_percent_encoded_dots(self):
        self.names_invalid(["itest/%2e%2e/x", "%2E%2E", "itest/%2e%2e", "itest%2F..%2Fx"],
                           routes=("tags", "upload"))

    @h.distribution_fails("answers 301 to the path with the dots resolved")
    def test_percent_encoded_dots_never_escape(self):
        """Whatever the status, nothing outside the repository is served."""
        repo = self.repo()
        self.reg.ensure_blob(repo, b"secret")
        for path in ("/v2/%s/%%2e%%2e/blobs/%s" % (repo, h.digest_of(b"secret")),
                     "/v2/itest/%%2e%%2e/%s/blobs/%s" % (repo, h.digest_of(b"secret"))):
            resp = self.reg.get(path)
            with self.subTest(path=path):
                self.assertIn(resp.status, (400, 404), resp.describe())

    def test_valid_names_accepted(self):
        for name in ("ab", "a0", "itest/a.b", "itest/a_b", "itest/a__b", "itest/a-b",
                     "itest/a---b", "itest/x/y/z", "0/1"):
            resp = self.reg.push_blob(name, b"ok")
            with self.subTest(name=name):
                self.assertStatus(resp, 201)


if __name__ == "__main__":
    h.main()
