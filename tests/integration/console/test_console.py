"""The web console's HTTP side with the real berth binary: the embedded files and their
headers (CSP, framing, types, caching), the browser redirect, sign-in with an access key
for a session cookie, the session on the ECR API (CSRF token required) and on /v2 (reads
only), a read-only key refused a delete, sign-out, session expiry, and anonymous access."""

import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import time
import unittest

import clients as c  # first: it cleans the environment botocore reads
import berth_harness as h
import auth_helpers as e

TARGET = "AmazonEC2ContainerRegistry_V20150921."


def cookie_of(resp):
    """The berth_session=... pair of a Set-Cookie, or None."""
    value = resp.header("Set-Cookie") or ""
    m = re.match(r"berth_session=([0-9a-f]*)", value)
    return m and "berth_session=" + m.group(1)


class ConsoleClient:
    """Calls as the console's page makes them: the cookie and, on ECR, the CSRF token."""

    def __init__(self, reg):
        self.reg = reg
        self.cookie = None
        self.csrf = None

    def sign_in(self, akid, secret, expect=200):
        r = self.reg.request("POST", "/ui/api/session",
                             headers={"Content-Type": "application/json"},
                             body=json.dumps({"accessKeyId": akid,
                                              "secretAccessKey": secret}).encode())
        if r.status != expect:
            raise AssertionError("sign-in: %s" % r.describe())
        if r.status == 200:
            self.cookie = cookie_of(r)
            self.csrf = r.json()["csrfToken"]
        return r

    def headers(self, csrf=True, extra=None):
        hdrs = {}
        if self.cookie:
            hdrs["Cookie"] = "theme=dark; " + self.cookie
        if csrf and self.csrf:
            hdrs["X-CSRF-Token"] = self.csrf
        hdrs.update(extra or {})
        return hdrs

    def ecr(self, op, body=None, csrf=True, token=None):
        hdrs = self.headers(csrf, {"Content-Type": "application/x-amz-json-1.1",
                                   "X-Amz-Target": TARGET + op})
        if token is not None:
            hdrs["X-CSRF-Token"] = token
        r = self.reg.request("POST", "/", headers=hdrs, body=json.dumps(body or {}).encode())
        return r.status, r.json() if r.body else {}

    def get(self, path, headers=None):
        return self.reg.request("GET", path, headers=self.headers(False, headers))

    def session(self):
        r = self.get("/ui/api/session")
        assert r.status == 200, r.describe()
        return r.json()


def error_type(doc):
    return str(doc.get("__type", "")).split("#")[-1]


class ConsoleTest(h.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.repo_name = "console/app"
        cls.image = h.build_image(layer_count=1)
        h.expect_status(cls.reg.push_image(cls.repo_name, cls.image, tag="v1"), 201)
        # Anonymous, before any key exists: the console needs no sign-in.
        cls.anonymous_session = ConsoleClient(cls.reg).session()
        cls.anonymous_signin = ConsoleClient(cls.reg).sign_in("AKIAAAAAAAAAAAAAAAAA", "x" * 40,
                                                               expect=409)
        cls.admin = e.keys_create(cls.server, "console-admin")
        cls.reader = e.keys_create(cls.server, "console-reader", "pull")

    def test_no_key_no_signin(self):
        self.assertEqual(self.anonymous_session, {"signedIn": False, "authEnforced": False,
                                                  "anonymousAllowed": False, "anonymous": False})
        self.assertEqual(self.anonymous_signin.json()["error"], "NotRequired")

    def test_browser_root_redirects_to_the_console(self):
        r = self.reg.request("GET", "/", headers={"Accept": "text/html,application/xhtml+xml"})
        self.assertEqual(r.status, 303, r.describe())
        self.assertEqual(r.header("Location"), "/ui/")
        r = self.reg.request("GET", "/ui")
        self.assertEqual(r.status, 301)
        self.assertEqual(r.header("Location"), "/ui/")
        # a registry client's GET / is not the console's
        r = self.reg.request("GET", "/")
        self.assertNotEqual(r.status, 303)
        self.assertIsNone(r.header("Content-Security-Policy"))

    def assert_secure_headers(self, r):
        csp = r.header("Content-Security-Policy") or ""
        directives = dict((d.strip().split(" ", 1) + [""])[:2] for d in csp.split(";"))
        self.assertEqual(directives.get("default-src"), "'none'", csp)
        self.assertEqual(directives.get("script-src"), "'self'", csp)
        self.assertEqual(directives.get("style-src"), "'self'", csp)
        self.assertEqual(directives.get("connect-src"), "'self'", csp)
        self.assertEqual(directives.get("frame-ancestors"), "'none'", csp)
        self.assertNotIn("unsafe", csp)
        self.assertNotIn("http", csp)  # no other origin
        self.assertEqual(r.header("X-Frame-Options"), "DENY")
        self.assertEqual(r.header("X-Content-Type-Options"), "nosniff")

    def test_files_with_csp_types_and_caching(self):
        r = self.reg.request("GET", "/ui/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Type"), "text/html; charset=utf-8")
        self.assert_secure_headers(r)
        self.assertEqual(r.header("Cache-Control"), "no-cache")
        html = r.body.decode()
        # every script is a file of the console; no inline script or handler, no style attribute
        self.assertEqual(re.findall(r"<script\b(?![^>]*\bsrc=\"/ui/)", html), [])
        self.assertIsNone(re.search(r"\son[a-z]+=|\sstyle=", html))
        etag = r.header("ETag")
        self.assertTrue(etag and etag.startswith('"'), etag)
        again = self.reg.request("GET", "/ui/", headers={"If-None-Match": etag})
        self.assertEqual(again.status, 304)
        self.assertEqual(again.body, b"")
        for path, ctype in [("/ui/app.js", "text/javascript; charset=utf-8"),
                            ("/ui/console.css", "text/css; charset=utf-8"),
                            ("/ui/favicon.svg", "image/svg+xml")]:
            r = self.reg.request("GET", path)
            self.assertEqual((r.status, r.header("Content-Type")), (200, ctype), path)
            self.assert_secure_headers(r)
        r = self.reg.request("GET", "/ui/nothing.js")
        self.assertEqual(r.status, 404)
        self.assert_secure_headers(r)
        self.assertEqual(self.reg.request("POST", "/ui/app.js").status, 405)
        # the API's answers are never cached
        r = self.reg.request("GET", "/ui/api/session")
        self.assertEqual(r.header("Cache-Control"), "no-store")
        self.assert_secure_headers(r)

    def test_assets_are_the_sources_reproducibly(self):
        """The console the binary serves is server/console/ui byte for byte (ETag: the
        first half of each file's SHA-256), and its generated C table depends on nothing
        but the files' names and bytes: embed.cmake run again on a copy of them, in
        another folder with other modification times, writes the same bytes as the
        build did."""
        ui = os.path.join(h.REPO_ROOT, "server", "console", "ui")
        names = sorted(n for n in os.listdir(ui) if not n.startswith("."))
        self.assertIn("app.js", names)
        for name in names:
            with open(os.path.join(ui, name), "rb") as f:
                source = f.read()
            r = self.reg.request("GET", "/ui/" + ("" if name == "index.html" else name))
            self.assertEqual(r.status, 200, name)
            self.assertEqual(r.body, source, name)
            self.assertEqual(r.header("ETag"),
                             '"%s"' % hashlib.sha256(source).hexdigest()[:32], name)
        build = os.environ.get("BERTH_BUILD_DIR") or os.path.dirname(h.find_berth_bin())
        with open(os.path.join(build, "generated", "console_assets.c"), "rb") as f:
            built = f.read()
        work = tempfile.mkdtemp(prefix="berth-embed-")
        self.addCleanup(shutil.rmtree, work, True)
        copy = os.path.join(work, "elsewhere", "ui")
        shutil.copytree(ui, copy)
        for name in os.listdir(copy):
            os.utime(os.path.join(copy, name), (1000000000, 1000000000))
        out = os.path.join(work, "again.c")
        subprocess.run(["cmake", "-DSRC=" + copy, "-DOUT=" + out, "-P",
                        os.path.join(h.REPO_ROOT, "server", "console", "embed.cmake")],
                       check=True, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), built)

    def test_bad_sign_in(self):
        cl = ConsoleClient(self.reg)
        for akid, secret in [(self.admin[0], self.admin[1] + "x"),
                             (self.admin[0], ""),
                             ("AKIA0000000000000000", self.admin[1]),
                             ("not a key id", self.admin[1])]:
            r = cl.sign_in(akid, secret, expect=401)
            self.assertEqual(r.json()["error"], "InvalidCredentials")
            self.assertIsNone(r.header("Set-Cookie"))
        # not JSON (a cross-site form could send that), or from another site
        r = self.reg.request("POST", "/ui/api/session",
                             headers={"Content-Type": "application/x-www-form-urlencoded"},
                             body=b"accessKeyId=a&secretAccessKey=b")
        self.assertEqual(r.status, 415)
        r = self.reg.request("POST", "/ui/api/session",
                             headers={"Content-Type": "application/json",
                                      "Sec-Fetch-Site": "cross-site"},
                             body=json.dumps({"accessKeyId": self.admin[0],
                                              "secretAccessKey": self.admin[1]}).encode())
        self.assertEqual(r.status, 403)
        self.assertIsNone(r.header("Set-Cookie"))

    def test_sign_in_and_use_the_apis(self):
        cl = ConsoleClient(self.reg)
        r = cl.sign_in(*self.admin)
        cookie = r.header("Set-Cookie")
        attrs = [a.strip() for a in cookie.split(";")]
        self.assertIn("HttpOnly", attrs)
        self.assertIn("SameSite=Strict", attrs)
        self.assertIn("Path=/", attrs)
        self.assertNotIn("Secure", attrs)  # plain http here
        doc = r.json()
        self.assertTrue(doc["signedIn"])
        self.assertEqual(doc["accessKeyId"], self.admin[0])
        self.assertNotIn(self.admin[1], r.body.decode())
        self.assertNotIn(doc["csrfToken"], cookie)
        self.assertEqual(cl.session()["csrfToken"], doc["csrfToken"])

        status, out = cl.ecr("DescribeRepositories")
        self.assertEqual(status, 200, out)
        self.assertIn(self.repo_name, [x["repositoryName"] for x in out["repositories"]])
        status, out = cl.ecr("DescribeImages", {"repositoryName": self.repo_name})
        self.assertEqual(status, 200, out)
        self.assertEqual(out["imageDetails"][0]["imageTags"], ["v1"])

        # CSRF: missing or wrong token refused, the session stays valid
        status, out = cl.ecr("DescribeRepositories", csrf=False)
        self.assertEqual((status, error_type(out)), (400, "AccessDeniedException"), out)
        self.assertIn("CSRF", out["message"])
        status, out = cl.ecr("DescribeRepositories", token="0" * 64)
        self.assertEqual((status, error_type(out)), (400, "AccessDeniedException"), out)
        self.assertEqual(cl.ecr("DescribeRepositories")[0], 200)

        # /v2 reads with the session; the cookie never authorizes a change there
        path = "/v2/%s/manifests/v1" % self.repo_name
        accept = {"Accept": h.MT_OCI_MANIFEST}
        r = cl.get(path, accept)
        self.assertEqual(r.status, 200)
        # what the session read is not kept by the browser after it signs out (before: no
        # Cache-Control, and an ETag, on /v2 answers to the cookie); never sniffed
        for got in (r, cl.get("/v2/%s/tags/list" % self.repo_name)):
            self.assertEqual(got.header("Cache-Control"), "no-store", got.describe())
            self.assertEqual(got.header("X-Content-Type-Options"), "nosniff")
        # looking at an image in the console is not a pull
        status, out = cl.ecr("DescribeImages", {"repositoryName": self.repo_name})
        self.assertNotIn("lastRecordedPullTime", out["imageDetails"][0])
        basic = "Basic " + base64.b64encode(("%s:%s" % self.admin).encode()).decode()
        r = self.reg.request("GET", path, headers=dict(accept, Authorization=basic))
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.header("Cache-Control"))  # a client's pull: cacheable as before
        self.assertEqual(r.header("X-Content-Type-Options"), "nosniff")
        status, out = cl.ecr("DescribeImages", {"repositoryName": self.repo_name})
        self.assertIn("lastRecordedPullTime", out["imageDetails"][0])
        self.assertEqual(self.reg.request("GET", path, headers=accept).status, 401)
        r = self.reg.request("DELETE", path, headers=cl.headers())
        self.assertEqual(r.status, 401, r.describe())
        self.assertEqual(self.reg.get_manifest(self.repo_name, "v1").status, 401)  # no creds

    def test_every_change_needs_the_csrf_token(self):
        """Each state-changing ECR call the console makes, sent with the session's cookie
        but no X-CSRF-Token (what a cross-site form or fetch could send), is refused and
        changes nothing; with the token the same session may."""
        repo = "console/csrf"
        admin = ConsoleClient(self.reg)
        admin.sign_in(*self.admin)
        status, out = admin.ecr("CreateRepository", {"repositoryName": repo})
        self.assertEqual(status, 200, out)
        h.expect_status(e.AuthRegistry(self.server.base_url, e.basic(*self.admin))
                        .push_image(repo, h.build_image(layer_count=1), tag="t"), 201)
        arn = out["repository"]["repositoryArn"]
        policy = json.dumps({"rules": [{"rulePriority": 1, "selection": {
            "tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
            "action": {"type": "expire"}}]})
        repo_policy = json.dumps({"Version": "2012-10-17", "Statement": [{
            "Sid": "x", "Effect": "Allow", "Principal": "*", "Action": "ecr:BatchGetImage"}]})
        changes = [
            ("CreateRepository", {"repositoryName": "console/csrf-new"}),
            ("DeleteRepository", {"repositoryName": repo, "force": True}),
            ("BatchDeleteImage", {"repositoryName": repo, "imageIds": [{"imageTag": "t"}]}),
            ("PutImageTagMutability", {"repositoryName": repo,
                                       "imageTagMutability": "IMMUTABLE"}),
            ("PutImageScanningConfiguration", {"repositoryName": repo,
                                               "imageScanningConfiguration": {"scanOnPush": True}}),
            ("TagResource", {"resourceArn": arn, "tags": [{"Key": "k", "Value": "v"}]}),
            ("UntagResource", {"resourceArn": arn, "tagKeys": ["k"]}),
            ("SetRepositoryPolicy", {"repositoryName": repo, "policyText": repo_policy}),
            ("DeleteRepositoryPolicy", {"repositoryName": repo}),
            ("PutLifecyclePolicy", {"repositoryName": repo, "lifecyclePolicyText": policy}),
            ("DeleteLifecyclePolicy", {"repositoryName": repo}),
            ("StartLifecyclePolicyPreview", {"repositoryName": repo,
                                             "lifecyclePolicyText": policy}),
            ("StartImageScan", {"repositoryName": repo, "imageId": {"imageTag": "t"}}),
        ]
        for op, body in changes:
            for token in (None, "0" * 64):
                status, out = admin.ecr(op, body, csrf=False, token=token)
                self.assertEqual((status, error_type(out)), (400, "AccessDeniedException"),
                                 "%s %s" % (op, out))
                self.assertIn("CSRF", out["message"], op)
        # nothing changed
        status, out = admin.ecr("DescribeRepositories", {"repositoryNames": [repo]})
        self.assertEqual(status, 200, out)
        self.assertEqual((out["repositories"][0]["imageTagMutability"],
                          out["repositories"][0]["imageScanningConfiguration"]["scanOnPush"]),
                         ("MUTABLE", False))
        status, out = admin.ecr("DescribeImages", {"repositoryName": repo})
        self.assertEqual(out["imageDetails"][0]["imageTags"], ["t"])
        self.assertNotIn("imageScanStatus", out["imageDetails"][0])
        self.assertEqual(admin.ecr("ListTagsForResource", {"resourceArn": arn})[1]["tags"], [])
        for op in ("GetRepositoryPolicy", "GetLifecyclePolicy", "GetLifecyclePolicyPreview"):
            status, out = admin.ecr(op, {"repositoryName": repo})
            self.assertEqual(status, 400, "%s: %s" % (op, out))
            self.assertRegex(error_type(out), "NotFoundException$", op)
        status, out = admin.ecr("DescribeRepositories", {"repositoryNames": ["console/csrf-new"]})
        self.assertEqual(error_type(out), "RepositoryNotFoundException", out)
        # the token makes the same call go through
        status, out = admin.ecr("PutImageTagMutability", changes[3][1])
        self.assertEqual(status, 200, out)

    def test_read_only_key_refused_a_delete(self):
        repo = "console/ro"
        img = h.build_image(layer_count=1)
        admin = ConsoleClient(self.reg)
        admin.sign_in(*self.admin)
        # pushed as the admin, with Basic credentials
        auth = "Basic " + base64.b64encode(("%s:%s" % self.admin).encode()).decode()
        for digest, blob in img.blobs.items():
            r = self.reg.request("POST", "/v2/%s/blobs/uploads/?digest=%s" % (repo, digest),
                                 headers={"Authorization": auth,
                                          "Content-Type": "application/octet-stream"},
                                 body=blob)
            self.assertEqual(r.status, 201, r.describe())
        r = self.reg.request("PUT", "/v2/%s/manifests/t1" % repo,
                             headers={"Authorization": auth, "Content-Type": img.media_type},
                             body=img.manifest)
        self.assertEqual(r.status, 201, r.describe())

        ro = ConsoleClient(self.reg)
        ro.sign_in(*self.reader)
        perms = ro.get("/ui/api/permissions?repository=" + repo).json()["actions"]
        self.assertFalse(perms["ecr:BatchDeleteImage"])
        perms = admin.get("/ui/api/permissions?repository=" + repo).json()["actions"]
        self.assertTrue(perms["ecr:BatchDeleteImage"])
        status, out = ro.ecr("DescribeImages", {"repositoryName": repo})
        self.assertEqual(status, 200, out)
        status, out = ro.ecr("BatchDeleteImage", {"repositoryName": repo,
                                                  "imageIds": [{"imageTag": "t1"}]})
        self.assertEqual((status, error_type(out)), (400, "AccessDeniedException"), out)
        status, out = admin.ecr("DescribeImages", {"repositoryName": repo})
        self.assertEqual(out["imageDetails"][0]["imageTags"], ["t1"])
        # the admin's session may
        status, out = admin.ecr("BatchDeleteImage", {"repositoryName": repo,
                                                     "imageIds": [{"imageTag": "t1"}]})
        self.assertEqual(status, 200, out)
        self.assertEqual(out["failures"], [])

    def list_repos(self, cl, query="", csrf=True, expect=200):
        r = self.reg.request("GET", "/ui/api/repositories" + query, headers=cl.headers(csrf))
        self.assertEqual(r.status, expect, r.describe())
        self.assertEqual(r.header("Cache-Control"), "no-store")
        return r.json()

    def test_repository_list_served_by_the_server(self):
        admin = ConsoleClient(self.reg)
        admin.sign_in(*self.admin)
        for name in ("list/alpha", "list/beta", "list/gamma_1", "other/delta"):
            status, out = admin.ecr("CreateRepository", {"repositoryName": name})
            self.assertEqual(status, 200, out)
        img = h.build_image(layer_count=2)
        auth = "Basic " + base64.b64encode(("%s:%s" % self.admin).encode()).decode()
        for digest, blob in img.blobs.items():
            r = self.reg.request("POST", "/v2/list/gamma_1/blobs/uploads/?digest=%s" % digest,
                                 headers={"Authorization": auth,
                                          "Content-Type": "application/octet-stream"},
                                 body=blob)
            self.assertEqual(r.status, 201, r.describe())
        for tag in ("a", "b"):
            r = self.reg.request("PUT", "/v2/list/gamma_1/manifests/" + tag,
                                 headers={"Authorization": auth, "Content-Type": img.media_type},
                                 body=img.manifest)
            self.assertEqual(r.status, 201, r.describe())

        # a search, in name order, with the figures
        out = self.list_repos(admin, "?q=LIST/")
        self.assertEqual([x["repositoryName"] for x in out["repositories"]],
                         ["list/alpha", "list/beta", "list/gamma_1"])
        self.assertEqual((out["total"], out["offset"], out["limit"], out["sort"], out["order"]),
                         (3, 0, 25, "name", "asc"))
        self.assertTrue(out["mayCreate"])
        gamma = out["repositories"][2]
        self.assertEqual((gamma["imageCount"], gamma["tagCount"]), (1, 2))
        self.assertEqual(gamma["sizeInBytes"], sum(len(b) for b in img.blobs.values()) +
                         len(img.manifest))
        self.assertIn("lastPushedAt", gamma)
        self.assertNotIn("lastPulledAt", gamma)
        self.assertEqual(gamma["imageTagMutability"], "MUTABLE")
        self.assertNotIn("lastPushedAt", out["repositories"][0])
        # LIKE's characters are literal
        self.assertEqual(self.list_repos(admin, "?q=a_1")["total"], 1)
        self.assertEqual(self.list_repos(admin, "?q=%25")["total"], 0)
        # sorted by size, largest first; pages of 2
        out = self.list_repos(admin, "?q=list/&sort=size&order=desc&limit=2")
        self.assertEqual([x["repositoryName"] for x in out["repositories"]],
                         ["list/gamma_1", "list/alpha"])
        out = self.list_repos(admin, "?q=list/&sort=size&order=desc&limit=2&offset=2")
        self.assertEqual([x["repositoryName"] for x in out["repositories"]], ["list/beta"])
        self.assertEqual(out["total"], 3)
        out = self.list_repos(admin, "?q=list/&sort=name&order=desc")
        self.assertEqual(out["repositories"][0]["repositoryName"], "list/gamma_1")
        for bad in ("?sort=colour", "?order=up", "?limit=0", "?limit=101", "?offset=-1",
                    "?offset=x", "?q=" + "a" * 257):
            self.assertEqual(self.list_repos(admin, bad, expect=400)["error"], "BadRequest")
        r = self.reg.request("POST", "/ui/api/repositories", headers=admin.headers())
        self.assertEqual(r.status, 405)

        # the session's CSRF token is required, as on the ECR API
        self.assertEqual(self.list_repos(admin, "", csrf=False, expect=403)["error"],
                         "InvalidCsrfToken")
        # a key sees the repositories it may describe: here, list/* only
        scoped = e.keys_create(self.server, "console-scoped", "pull:list/*")
        cl = ConsoleClient(self.reg)
        cl.sign_in(*scoped)
        out = self.list_repos(cl)
        self.assertEqual([x["repositoryName"] for x in out["repositories"]],
                         ["list/alpha", "list/beta", "list/gamma_1"])
        self.assertFalse(out["mayCreate"])
        # ... as DescribeRepositories does, a repository policy's Deny included
        deny = json.dumps({"Version": "2012-10-17", "Statement": [{
            "Sid": "nobeta", "Effect": "Deny", "Principal": "*",
            "Action": "ecr:DescribeRepositories"}]})
        status, out = admin.ecr("SetRepositoryPolicy", {"repositoryName": "list/beta",
                                                        "policyText": deny})
        self.assertEqual(status, 200, out)
        out = self.list_repos(cl, "?limit=1&offset=1")
        self.assertEqual(out["total"], 2)
        self.assertEqual([x["repositoryName"] for x in out["repositories"]], ["list/gamma_1"])
        status, out = cl.ecr("DescribeRepositories")
        self.assertEqual(sorted(x["repositoryName"] for x in out["repositories"]),
                         ["list/alpha", "list/gamma_1"])
        # the registry-level permissions say whether a key may create repositories
        self.assertFalse(cl.get("/ui/api/permissions").json()["actions"]["ecr:CreateRepository"])
        self.assertTrue(
            admin.get("/ui/api/permissions").json()["actions"]["ecr:CreateRepository"])
        # an ended session, and no session once keys exist
        r = self.reg.request("DELETE", "/ui/api/session", headers=cl.headers())
        self.assertEqual(r.status, 200)
        self.assertEqual(self.list_repos(cl, expect=401)["error"], "SessionEnded")
        # (without "anonymous": true, no anonymous browsing once keys exist)
        self.assertEqual(self.list_repos(ConsoleClient(self.reg), expect=401)["error"],
                         "SignInRequired")

    def test_sign_out(self):
        cl = ConsoleClient(self.reg)
        cl.sign_in(*self.admin)
        r = self.reg.request("DELETE", "/ui/api/session", headers=cl.headers(csrf=False))
        self.assertEqual(r.status, 403)  # sign-out needs the CSRF token too
        self.assertTrue(cl.session()["signedIn"])
        r = self.reg.request("DELETE", "/ui/api/session", headers=cl.headers())
        self.assertEqual(r.status, 200, r.describe())
        self.assertIn("Max-Age=0", r.header("Set-Cookie"))
        self.assertFalse(cl.session()["signedIn"])
        status, out = cl.ecr("DescribeRepositories")
        self.assertEqual(error_type(out), "UnrecognizedClientException", out)
        r = cl.get("/v2/%s/manifests/v1" % self.repo_name, {"Accept": h.MT_OCI_MANIFEST})
        self.assertEqual(r.status, 403)
        self.assertIsNone(r.header("WWW-Authenticate"))  # no browser password prompt

    def test_anonymous_refused_once_keys_exist(self):
        anon = ConsoleClient(self.reg)
        self.assertEqual(anon.session(), {"signedIn": False, "authEnforced": True,
                                          "anonymousAllowed": False, "anonymous": False})
        status, out = anon.ecr("DescribeRepositories")
        self.assertNotEqual(status, 200, out)
        # the permissions too, as every other console endpoint (it answered the anonymous
        # caller's decisions before)
        r = anon.get("/ui/api/permissions?repository=" + self.repo_name)
        self.assertEqual((r.status, r.json()["error"]), (401, "SignInRequired"), r.describe())
        # a forged cookie is no session
        anon.cookie = "berth_session=" + "ab" * 32
        anon.csrf = "cd" * 32
        status, out = anon.ecr("DescribeRepositories")
        self.assertEqual(error_type(out), "UnrecognizedClientException", out)
        r = anon.get("/ui/api/permissions?repository=" + self.repo_name)
        self.assertEqual((r.status, r.json()["error"]), (401, "SessionEnded"), r.describe())


class ConsoleTlsTest(unittest.TestCase):
    """Served over native TLS: the session cookie is Secure."""

    def test_secure_cookie(self):
        work = tempfile.mkdtemp(prefix="berth-console-tls-")
        self.addCleanup(shutil.rmtree, work, True)
        c.require("/usr/bin/openssl")
        subprocess.run(["/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", "key.pem", "-out",
                        "cert.pem", "-days", "2", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=IP:127.0.0.1"], cwd=work, check=True,
                       capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        server = h.Server(config={"tls": {"cert_file": os.path.join(work, "cert.pem"),
                                          "key_file": os.path.join(work, "key.pem")}})
        self.addCleanup(server.cleanup)
        server.start()  # its readiness probe is plain HTTP: the 400 counts as an answer
        self.addCleanup(server.stop)
        akid, secret = e.keys_create(server, "console-tls")
        ctx = ssl.create_default_context(cafile=os.path.join(work, "cert.pem"))
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=60)
        self.addCleanup(conn.close)
        conn.request("POST", "/ui/api/session",
                     body=json.dumps({"accessKeyId": akid, "secretAccessKey": secret}),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        self.assertEqual(r.status, 200)
        attrs = [a.strip() for a in r.getheader("Set-Cookie").split(";")]
        self.assertIn("Secure", attrs)
        self.assertIn("HttpOnly", attrs)


class ConsoleExpiryTest(h.ServerTestCase):
    server_config = {"console": {"session_ttl_seconds": 1}}

    def test_session_expires(self):
        akid, secret = e.keys_create(self.server, "console-expiry")
        cl = ConsoleClient(self.reg)
        r = cl.sign_in(akid, secret)
        self.assertIn("Max-Age=1", r.header("Set-Cookie"))
        expires = r.json()["expiresAt"]
        self.assertLessEqual(expires, time.time() + 2)
        deadline = time.monotonic() + 30
        while cl.session()["signedIn"]:
            self.assertLess(time.monotonic(), deadline, "the session never expired")
            time.sleep(0.2)
        self.assertGreaterEqual(time.time(), expires - 1)
        status, out = cl.ecr("DescribeRepositories")
        self.assertEqual((status, error_type(out)), (400, "UnrecognizedClientException"), out)
        self.assertIn("expired", out["message"])


if __name__ == "__main__":
    unittest.main()
