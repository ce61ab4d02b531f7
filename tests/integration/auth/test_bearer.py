"""Docker's token protocol (`auth.scheme: bearer`), over raw HTTP: the Bearer challenges and
the scopes they ask for, the token endpoint (GET with Basic credentials or none, the OAuth2
form POST with grant_type password and refresh_token, offline_token), tokens that hold only
what the identity and the policies allow, scope enforced on every /v2 request (a pull token
cannot push, a token for one repository cannot read another, a mount needs pull on its
source), bad, forged, expired and orphaned tokens, and the ECR API and Basic credentials
unchanged beside it. Real clients (skopeo, podman) are in clients/test_bearer_clients.py."""

import base64
import datetime
import hashlib
import hmac
import json
import os
import sqlite3
import struct
import time
import unittest
import urllib.parse
import warnings

import clients as c  # first: it cleans the environment botocore reads
import berth_harness as h
import auth_helpers as e

PUBLIC_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Sid": "public", "Effect": "Allow", "Principal": "*",
    "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
               "ecr:BatchCheckLayerAvailability"]}]})
BEARER_TTL = 120


def parse_challenge(value):
    """'Bearer realm="x",service="y",scope="z"' -> ("Bearer", {"realm": "x", ...})."""
    scheme, _, rest = value.partition(" ")
    params = {}
    while rest:
        key, _, rest = rest.partition("=")
        assert rest.startswith('"'), value
        end = rest.index('"', 1)
        params[key.strip()] = rest[1:end]
        rest = rest[end + 1:].lstrip(",").strip()
    return scheme, params


def bearer(token):
    return {"Authorization": "Bearer " + token}


class BearerTest(h.ServerTestCase):
    server_config = {"auth": {"scheme": "bearer", "bearer_ttl_seconds": BEARER_TTL,
                              "refresh_token_ttl_seconds": 3600}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        warnings.simplefilter("ignore", ResourceWarning)
        cls.admin = e.keys_create(cls.server, "admin")
        cls.reader = e.keys_create(cls.server, "reader", "pull:team/*")
        cls.lister = e.keys_create(cls.server, "lister", "ecr:ListImages=team/*")
        cls.ecr = c.ecr_client(cls.server, *cls.admin)
        cls.service = "127.0.0.1:%d" % cls.server.port
        cls.realm = cls.server.base_url + "/v2/token"
        cls.admin_basic = e.AuthRegistry(cls.server.base_url, e.basic(*cls.admin))
        cls.images = {}
        for name in ("team/a", "team/b", "pub/x"):
            cls.images[name] = h.build_image(layer_count=1, layer_size=700)
            resp = cls.admin_basic.push_image(name, cls.images[name], tag="v1")
            assert resp.status == 201, resp.describe()
        cls.ecr.set_repository_policy(repositoryName="pub/x", policyText=PUBLIC_POLICY)

    def setUp(self):
        warnings.simplefilter("ignore", ResourceWarning)

    # -- helpers -----------------------------------------------------------------------------

    def token_get(self, *scopes, creds=None, params=None, expect=200):
        query = [("service", self.service)] + [("scope", s) for s in scopes]
        query += list((params or {}).items())
        headers = e.basic(*creds) if creds else {}
        resp = self.reg.request("GET", "/v2/token?" + urllib.parse.urlencode(query),
                                headers=headers)
        self.assertStatus(resp, expect)
        return resp

    def token(self, *scopes, creds=None, params=None):
        doc = self.token_get(*scopes, creds=creds, params=params).json()
        return doc["token"], doc

    def token_post(self, fields, expect=200, ctype="application/x-www-form-urlencoded"):
        body = urllib.parse.urlencode(fields).encode()
        resp = self.reg.request("POST", "/v2/token", headers={"Content-Type": ctype}, body=body)
        self.assertStatus(resp, expect)
        return resp

    def as_token(self, token):
        return e.AuthRegistry(self.server.base_url, bearer(token))

    def assertChallenge(self, resp, scope=None, error=None):
        """A 401 with the OCI error body and a Bearer challenge naming this registry."""
        self.assertError(resp, 401, "UNAUTHORIZED")
        scheme, params = parse_challenge(self.assertHasHeader(resp, "WWW-Authenticate"))
        self.assertEqual(scheme, "Bearer")
        self.assertEqual(params.get("realm"), self.realm)
        self.assertEqual(params.get("service"), self.service)
        self.assertEqual(params.get("scope"), scope, resp.describe())
        self.assertEqual(params.get("error"), error, resp.describe())

    def assertIssued(self, doc, scope):
        self.assertEqual(doc["token"], doc["access_token"])
        self.assertEqual(doc["expires_in"], BEARER_TTL)
        issued = datetime.datetime.strptime(doc["issued_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
        age = datetime.datetime.utcnow() - issued
        self.assertLess(abs(age.total_seconds()), 300)
        self.assertEqual(doc["scope"], scope)

    # -- challenges --------------------------------------------------------------------------

    def test_base_challenge_is_bearer(self):
        resp = self.reg.get("/v2/")
        self.assertChallenge(resp)
        self.assertEqual(resp.header("WWW-Authenticate"),
                         'Bearer realm="%s",service="%s"' % (self.realm, self.service))

    def test_realm_follows_the_host_without_public_url(self):
        # listening on 0.0.0.0 the listen address would be useless to a client: without
        # public_url the realm names the host the client used
        resp = self.reg.get("/v2/", headers={"Host": "registry.example:5000"})
        self.assertEqual(resp.header("WWW-Authenticate"),
                         'Bearer realm="http://registry.example:5000/v2/token",'
                         'service="registry.example:5000"')
        got = self.reg.request("GET", "/v2/token?service=registry.example:5000",
                               headers={"Host": "registry.example:5000"})
        self.assertStatus(got, 200)
        # a Host that is not a plain host[:port] is not echoed
        resp = self.reg.get("/v2/", headers={"Host": 'evil",x="y'})
        self.assertEqual(resp.header("WWW-Authenticate"),
                         'Bearer realm="%s",service="%s"' % (self.realm, self.service))

    def test_repository_challenges_carry_the_scope(self):
        img = self.images["team/a"]
        cases = [
            ("GET", self.reg.manifest_path("team/a", "v1"), "repository:team/a:pull"),
            ("HEAD", self.reg.blob_path("team/a", img.layer_digests[0]),
             "repository:team/a:pull"),
            ("GET", "/v2/team/a/tags/list", "repository:team/a:pull"),
            ("PUT", self.reg.manifest_path("team/a", "v2"), "repository:team/a:pull,push"),
            ("POST", "/v2/team/a/blobs/uploads/", "repository:team/a:pull,push"),
            ("DELETE", self.reg.manifest_path("team/a", "v1"), "repository:team/a:delete"),
            ("GET", "/v2/_catalog", "registry:catalog:*"),
        ]
        for method, path, scope in cases:
            with self.subTest(method=method, path=path):
                self.assertChallenge(self.reg.request(method, path), scope=scope)

    # -- the token endpoint ------------------------------------------------------------------

    def test_admin_token_pushes_and_pulls(self):
        token, doc = self.token("repository:team/c:pull,push", creds=self.admin)
        self.assertIssued(doc, "repository:team/c:pull,push")
        self.assertNotIn("refresh_token", doc)
        self.assertEqual(self.token_get(creds=self.admin).header("Cache-Control"), "no-store")
        reg = self.as_token(token)
        img = h.build_image(layer_count=2, layer_size=900)
        self.assertStatus(reg.push_image("team/c", img, tag="v1"), 201)
        got = self.assertStatus(reg.get_manifest("team/c", "v1", accept=img.media_type), 200)
        self.assertEqual(got.body, img.manifest)
        blob = self.assertStatus(reg.get_blob("team/c", img.layer_digests[1]), 200)
        self.assertEqual(blob.body, img.blobs[img.layer_digests[1]])
        self.assertStatus(reg.get("/v2/"), 200)

    def test_requested_actions_not_allowed_are_dropped(self):
        # a pull:team/* key asks for everything on its own repository, a public one, one
        # it has nothing on and the catalog; what it may not do is dropped
        token, doc = self.token("repository:team/a:pull,push,delete", "repository:pub/x:*",
                                "registry:catalog:*", "repository:other/y:pull",
                                "bogus:thing:pull", "repository:team/a:frobnicate",
                                "repository:Not-A-Name:pull", creds=self.reader)
        self.assertIssued(doc, "repository:team/a:pull repository:pub/x:pull "
                               "registry:catalog:*")
        reg = self.as_token(token)
        self.assertStatus(reg.get_manifest("team/a", "v1"), 200)
        self.assertChallenge(reg.request("PUT", reg.manifest_path("team/a", "v9"),
                                         headers={"Content-Type": h.MT_OCI_MANIFEST},
                                         body=self.images["team/a"].manifest),
                             scope="repository:team/a:pull,push", error="insufficient_scope")
        self.assertChallenge(reg.request("DELETE", reg.manifest_path("team/a", "v1")),
                             scope="repository:team/a:delete", error="insufficient_scope")
        # the catalog lists what the key may describe
        listed = self.assertStatus(reg.catalog(), 200).json()["repositories"]
        self.assertIn("team/a", listed)
        self.assertNotIn("pub/x", listed)

    def test_scope_list_in_one_parameter_and_star(self):
        token, doc = self.token("repository:team/a:pull repository:team/b:*",
                                creds=self.admin)
        self.assertIssued(doc, "repository:team/a:pull repository:team/b:pull,push,delete")

    def test_pull_token_cannot_push(self):
        token, _ = self.token("repository:team/a:pull", creds=self.admin)
        reg = self.as_token(token)
        self.assertStatus(reg.get_manifest("team/a", "v1"), 200)
        self.assertChallenge(reg.start_upload("team/a"), scope="repository:team/a:pull,push",
                             error="insufficient_scope")
        self.assertChallenge(reg.request("DELETE", reg.manifest_path("team/a", "v1")),
                             scope="repository:team/a:delete", error="insufficient_scope")
        self.assertStatus(self.admin_basic.get_manifest("team/a", "v1"), 200)

    def test_token_for_one_repository_cannot_touch_another(self):
        token, _ = self.token("repository:team/a:pull,push,delete", creds=self.admin)
        reg = self.as_token(token)
        img = self.images["team/b"]
        self.assertChallenge(reg.get_manifest("team/b", "v1"),
                             scope="repository:team/b:pull", error="insufficient_scope")
        self.assertChallenge(reg.get_blob("team/b", img.layer_digests[0]),
                             scope="repository:team/b:pull", error="insufficient_scope")
        self.assertChallenge(reg.start_upload("team/b"), scope="repository:team/b:pull,push",
                             error="insufficient_scope")
        self.assertChallenge(reg.catalog(), scope="registry:catalog:*",
                             error="insufficient_scope")

    def test_mount_needs_pull_on_the_source(self):
        layer = self.images["team/a"].layer_digests[0]
        path = "/v2/team/m1/blobs/uploads/?" + urllib.parse.urlencode(
            {"mount": layer, "from": "team/a"})
        # push on the target only: no mount, an upload session instead
        token, _ = self.token("repository:team/m1:pull,push", creds=self.admin)
        self.assertStatus(self.as_token(token).request("POST", path), 202)
        token, _ = self.token("repository:team/m1:pull,push", "repository:team/a:pull",
                              creds=self.admin)
        resp = self.assertStatus(self.as_token(token).request("POST", path), 201)
        self.assertEqual(resp.header("Docker-Content-Digest"), layer)

    def test_policy_still_decides_each_request(self):
        # ecr:ListImages alone earns "pull" in a token; the manifest still needs
        # BatchGetImage: 403 DENIED with the challenge
        token, doc = self.token("repository:team/a:pull,push", creds=self.lister)
        self.assertEqual(doc["scope"], "repository:team/a:pull")
        reg = self.as_token(token)
        self.assertStatus(reg.tags("team/a"), 200)
        resp = self.assertError(reg.get_manifest("team/a", "v1"), 403, "DENIED")
        self.assertIn("ecr:BatchGetImage", resp.json()["errors"][0]["message"])
        scheme, params = parse_challenge(self.assertHasHeader(resp, "WWW-Authenticate"))
        self.assertEqual((scheme, params.get("scope")), ("Bearer", "repository:team/a:pull"))

    def test_login_token_and_basic_still_work(self):
        password = e.login_password(self.ecr)
        token, doc = self.token("repository:team/a:pull", creds=("AWS", password))
        self.assertEqual(doc["scope"], "repository:team/a:pull")
        self.assertStatus(self.as_token(token).get_manifest("team/a", "v1"), 200)
        # Basic credentials stay accepted on /v2 (ECR's documented curl use)
        basic = e.AuthRegistry(self.server.base_url, {"Authorization": "Basic " + base64.b64encode(
            ("AWS:" + password).encode()).decode()})
        self.assertStatus(basic.get_manifest("team/a", "v1"), 200)

    def test_bad_credentials_are_401(self):
        for creds in [(self.admin[0], "wrong-secret-0123456789"), ("AKIANOSUCHKEY0000000", "x" * 20),
                      ("AWS", "not-a-token")]:
            with self.subTest(user=creds[0]):
                resp = self.token_get("repository:team/a:pull", creds=creds, expect=401)
                self.assertEqual(resp.json()["errors"][0]["code"], "UNAUTHORIZED")
                self.assertEqual(resp.json()["error"], "invalid_grant")
                scheme, params = parse_challenge(resp.header("WWW-Authenticate"))
                self.assertEqual((scheme, params["realm"]), ("Basic", self.realm))
        # the log names the key each refusal came with, as /v2's refusals do (the form
        # login too), so guessing through the token endpoint can be traced to a key
        self.token_post({"grant_type": "password", "username": self.admin[0],
                         "password": "wrong", "client_id": "x", "service": self.service},
                        expect=401)
        log = self.server.log_text()
        self.assertGreaterEqual(log.count("event=auth_refused reason=bad_secret key=%s "
                                          "endpoint=token" % self.admin[0]), 2, log[-3000:])
        self.assertIn("event=auth_refused reason=unknown_key key=AKIANOSUCHKEY0000000 "
                      "endpoint=token", log)

    def test_service_must_be_ours(self):
        resp = self.reg.request("GET", "/v2/token?service=registry.docker.io")
        self.assertStatus(resp, 400)
        self.assertEqual(resp.json()["error"], "invalid_request")
        # absent is fine
        self.assertStatus(self.reg.request("GET", "/v2/token"), 200)

    # -- anonymous ---------------------------------------------------------------------------

    def test_anonymous_token_pulls_a_public_repository_only(self):
        token, doc = self.token("repository:pub/x:pull,push", "repository:team/a:pull",
                                "registry:catalog:*", params={"offline_token": "true"})
        self.assertIssued(doc, "repository:pub/x:pull")
        self.assertNotIn("refresh_token", doc)  # nothing to refresh for nobody
        reg = self.as_token(token)
        img = self.images["pub/x"]
        self.assertStatus(reg.get("/v2/"), 200)
        got = self.assertStatus(reg.get_manifest("pub/x", "v1", accept=img.media_type), 200)
        self.assertEqual(got.body, img.manifest)
        self.assertStatus(reg.get_blob("pub/x", img.layer_digests[0]), 200)
        self.assertChallenge(reg.get_manifest("team/a", "v1"), scope="repository:team/a:pull",
                             error="insufficient_scope")
        self.assertChallenge(reg.start_upload("pub/x"), scope="repository:pub/x:pull,push",
                             error="insufficient_scope")
        self.assertChallenge(reg.catalog(), scope="registry:catalog:*",
                             error="insufficient_scope")
        # without any token: the public repository answers as with the Basic scheme, a
        # private one challenges
        self.assertStatus(self.reg.get_manifest("pub/x", "v1"), 200)
        self.assertChallenge(self.reg.get_manifest("team/a", "v1"),
                             scope="repository:team/a:pull")

    def test_empty_basic_is_anonymous(self):
        _, doc = self.token("repository:pub/x:pull", creds=("", ""))
        self.assertEqual(doc["scope"], "repository:pub/x:pull")

    # -- refresh tokens and the OAuth2 form --------------------------------------------------

    def test_offline_token_then_refresh(self):
        doc = self.token_get("repository:team/a:pull", creds=self.reader,
                             params={"offline_token": "true", "client_id": "docker",
                                     "account": self.reader[0]}).json()
        refresh = doc["refresh_token"]
        self.assertNotEqual(refresh, doc["token"])
        # a refresh token is not a bearer token
        self.assertChallenge(self.as_token(refresh).get("/v2/"), error="invalid_token")
        resp = self.token_post({"grant_type": "refresh_token", "refresh_token": refresh,
                                "service": self.service, "client_id": "docker",
                                "scope": "repository:team/a:pull,push repository:team/b:pull"})
        got = resp.json()
        self.assertIssued(got, "repository:team/a:pull repository:team/b:pull")
        self.assertEqual(got["refresh_token"], refresh)  # the same one, not a new one
        self.assertStatus(self.as_token(got["access_token"]).get_manifest("team/b", "v1"), 200)

    def test_password_grant(self):
        resp = self.token_post({"grant_type": "password", "username": self.admin[0],
                                "password": self.admin[1], "service": self.service,
                                "client_id": "berth-test", "access_type": "offline",
                                "scope": "repository:team/a:pull,push"})
        doc = resp.json()
        self.assertIssued(doc, "repository:team/a:pull,push")
        self.assertIn("refresh_token", doc)
        self.assertStatus(self.as_token(doc["access_token"]).start_upload("team/a"), 202)
        # without access_type=offline: no refresh token
        doc = self.token_post({"grant_type": "password", "username": self.admin[0],
                               "password": self.admin[1], "client_id": "x"}).json()
        self.assertNotIn("refresh_token", doc)
        self.assertEqual(doc["scope"], "")

    def test_form_errors(self):
        base = {"service": self.service, "client_id": "x"}
        cases = [
            (dict(base, grant_type="password", username=self.admin[0], password="wrong"),
             401, "invalid_grant"),
            (dict(base, grant_type="refresh_token", refresh_token="forged"), 401,
             "invalid_grant"),
            (dict(base, grant_type="authorization_code", code="x"), 400,
             "unsupported_grant_type"),
            (dict(base), 400, "invalid_request"),
            (dict(base, grant_type="password"), 400, "invalid_request"),
            (dict(base, grant_type="refresh_token"), 400, "invalid_request"),
            (dict(base, grant_type="password", username=self.admin[0], password=self.admin[1],
                  service="elsewhere"), 400, "invalid_request"),
        ]
        for fields, status, error in cases:
            with self.subTest(fields=fields):
                resp = self.token_post(fields, expect=status)
                self.assertEqual(resp.json()["error"], error)
        resp = self.token_post({"grant_type": "password"}, expect=400, ctype="application/json")
        self.assertEqual(resp.json()["error"], "invalid_request")
        self.assertStatus(self.reg.request("DELETE", "/v2/token"), 405)

    # -- bad tokens --------------------------------------------------------------------------

    def test_bad_tokens_are_invalid_token(self):
        good, _ = self.token("repository:team/a:pull", creds=self.admin)
        flipped = good[:10] + ("A" if good[10] != "A" else "B") + good[11:]
        login = e.login_password(self.ecr)
        for token in ["garbage", flipped, good + "x", login, "a" * 5000]:
            with self.subTest(token=token[:20]):
                self.assertChallenge(self.as_token(token).get_manifest("team/a", "v1"),
                                     scope="repository:team/a:pull", error="invalid_token")

    def signing_key(self):
        db = sqlite3.connect(os.path.join(self.server.root, "berth.db"))
        try:
            (key,) = db.execute("SELECT value FROM server_secrets WHERE name = ?",
                                ("authtoken-key",)).fetchone()
        finally:
            db.close()
        return bytes(key)

    def forge(self, principal, scope, issued, expires, purpose=3):
        """A token signed with the server's own key (read from its database), in berth's
        token format: what berth would issue with those times."""
        p, s = principal.encode(), scope.encode()
        rec = struct.pack(">BBQQ", 1, purpose, issued, expires) + bytes([len(p)]) + p
        rec += struct.pack(">H", len(s)) + s + bytes([0])
        mac = hmac.new(self.signing_key(), b"berth-authtoken-v1\0" + rec, hashlib.sha256)
        return base64.urlsafe_b64encode(rec + mac.digest()).decode().rstrip("=")

    def test_expired_token_is_invalid_token(self):
        now = int(time.time())
        live = self.forge(self.admin[0], "repository:team/a:pull", now - 10, now + 60)
        self.assertStatus(self.as_token(live).get_manifest("team/a", "v1"), 200)
        dead = self.forge(self.admin[0], "repository:team/a:pull", now - 120, now - 1)
        resp = self.as_token(dead).get_manifest("team/a", "v1")
        self.assertChallenge(resp, scope="repository:team/a:pull", error="invalid_token")
        self.assertIn("expired", resp.json()["errors"][0]["message"])
        old_refresh = self.forge(self.admin[0], "", now - 120, now - 1, purpose=4)
        resp = self.token_post({"grant_type": "refresh_token", "refresh_token": old_refresh,
                                "client_id": "x"}, expect=401)
        self.assertIn("expired", resp.json()["error_description"])

    def test_token_of_a_deleted_key_stops_working(self):
        key = e.keys_create(self.server, "temp", "pull:team/*")
        doc = self.token_get("repository:team/a:pull", creds=key,
                             params={"offline_token": "true"}).json()
        reg = self.as_token(doc["token"])
        self.assertStatus(reg.get_manifest("team/a", "v1"), 200)
        e.keys_delete(self.server, key[0])
        self.assertChallenge(reg.get_manifest("team/a", "v1"), scope="repository:team/a:pull",
                             error="invalid_token")
        resp = self.token_post({"grant_type": "refresh_token", "client_id": "x",
                                "refresh_token": doc["refresh_token"]}, expect=401)
        self.assertEqual(resp.json()["error"], "invalid_grant")

    # -- the ECR API is unchanged ------------------------------------------------------------

    def test_ecr_api_unchanged(self):
        names = [r["repositoryName"] for r in self.ecr.describe_repositories()["repositories"]]
        self.assertIn("team/a", names)
        data = self.ecr.get_authorization_token()["authorizationData"][0]
        self.assertEqual(data["proxyEndpoint"], self.server.base_url)
        got = self.ecr.batch_get_image(repositoryName="team/a", imageIds=[{"imageTag": "v1"}])
        self.assertEqual(len(got["images"]), 1)
        # unsigned ECR calls are still refused the ECR way
        status, doc, _ = e.ecr_call(self.reg, "DescribeRepositories", {})
        self.assertEqual((status, doc["__type"]), (400, "MissingAuthenticationTokenException"))


class PublicUrlTest(h.ServerTestCase):
    """public_url and auth.service name the realm and the service, whatever Host says."""

    server_config = {"public_url": "https://registry.example/", "auth": {
        "scheme": "bearer", "service": "my-registry", "required": True}}

    def test_realm_and_service_from_the_config(self):
        resp = self.reg.get("/v2/", headers={"Host": "elsewhere:1"})
        self.assertEqual(resp.header("WWW-Authenticate"),
                         'Bearer realm="https://registry.example/v2/token",service="my-registry"')
        self.assertStatus(self.reg.request("GET", "/v2/token?service=my-registry"), 200)
        resp = self.reg.request("GET", "/v2/token?service=registry.example")
        self.assertStatus(resp, 400)


class BasicSchemeTest(h.ServerTestCase):
    """The default scheme: ECR's Basic challenge, no token endpoint, Bearer refused."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = e.keys_create(cls.server, "admin")

    def test_no_token_endpoint_and_basic_challenge(self):
        resp = self.assertError(self.reg.get("/v2/"), 401, "UNAUTHORIZED")
        self.assertEqual(resp.header("WWW-Authenticate"),
                         'Basic realm="%s/",service="ecr.amazonaws.com"' % self.server.base_url)
        self.assertError(self.reg.get("/v2/token", headers=e.basic(*self.admin)), 404,
                         "NOT_FOUND")
        resp = self.reg.get("/v2/", headers=bearer("anything"))
        self.assertError(resp, 401, "UNAUTHORIZED")
        self.assertTrue(resp.header("WWW-Authenticate").startswith("Basic "))


class ConfigTest(unittest.TestCase):
    def test_unknown_scheme_is_refused(self):
        rc, out, err = h.run_berth(["serve", "--listen", "127.0.0.1:0"],
                                   env={"BERTH_AUTH_SCHEME": "digest"}, split=True)
        self.assertNotEqual(rc, 0)
        self.assertIn("auth.scheme must be basic or bearer", err)


if __name__ == "__main__":
    unittest.main()
