"""Anonymous browsing of the console once access keys exist: only with "anonymous": true,
and only of the repositories public by policy. Allowed: an anonymous session
(POST /ui/api/session {"anonymous": true}) lists exactly the repositories anonymous
clients may pull (the public one, one public for pulling only; not one everyone may only
describe, not the private one), reads its
images through ECR and /v2, is refused every change and the private repository, and has
no registry page; in Chromium the sign-in page offers "Browse public repositories", the
list and the images show without a create or delete control, axe-core finds nothing
serious. Not allowed (the default): no anonymous session, the list answers 401, an
anonymous session from elsewhere is no session, and the page is the sign-in form alone."""

import json
import shutil
import tempfile

import clients as c  # first: it cleans the environment botocore reads
import berth_harness as h
import auth_helpers as e
from browser_helpers import Browser
from test_console import ConsoleClient, cookie_of, error_type

PUBLIC = "pub/app"
PRIVATE = "priv/app"
READ_ACTIONS = ["ecr:DescribeRepositories", "ecr:DescribeImages", "ecr:ListImages",
                "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                "ecr:BatchCheckLayerAvailability", "ecr:DescribeImageScanFindings"]
PUBLIC_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Sid": "public", "Effect": "Allow", "Principal": "*", "Action": READ_ACTIONS}]})
# public for pulling only (ECR's public repository): listed for anonymous browsing
PULL_ONLY = "pull/only"
PULL_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Sid": "pull", "Effect": "Allow", "Principal": "*",
    "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
               "ecr:BatchCheckLayerAvailability"]}]})
# everyone may describe it but not pull it: not listed
DESCRIBE_ONLY = "desc/only"
DESCRIBE_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Sid": "describe", "Effect": "Allow", "Principal": "*",
    "Action": ["ecr:DescribeRepositories", "ecr:DescribeImages"]}]})


def set_up_registry(cls):
    """Four repositories pushed while no key exists, pub/app public by policy, pull/only
    public for pulling, desc/only for describing; then keys."""
    cls.image = h.build_image(layer_count=1)
    for repo in (PUBLIC, PRIVATE, PULL_ONLY, DESCRIBE_ONLY):
        h.expect_status(cls.reg.push_image(repo, cls.image, tag="v1"), 201)
    anon = c.ecr_client(cls.server)
    for repo, policy in ((PUBLIC, PUBLIC_POLICY), (PULL_ONLY, PULL_POLICY),
                         (DESCRIBE_ONLY, DESCRIBE_POLICY)):
        anon.set_repository_policy(repositoryName=repo, policyText=policy)
    cls.admin = e.keys_create(cls.server, "anon-admin")


def anonymous_session(reg, expect=200):
    r = reg.request("POST", "/ui/api/session", headers={"Content-Type": "application/json"},
                    body=b'{"anonymous": true}')
    if r.status != expect:
        raise AssertionError("anonymous sign-in: %s" % r.describe())
    cl = ConsoleClient(reg)
    if r.status == 200:
        cl.cookie = cookie_of(r)
        cl.csrf = r.json()["csrfToken"]
    return cl, r


def list_names(cl, expect=200):
    r = cl.reg.request("GET", "/ui/api/repositories", headers=cl.headers())
    if r.status != expect:
        raise AssertionError("list: %s" % r.describe())
    doc = r.json()
    return [x["repositoryName"] for x in doc.get("repositories", [])], doc


class AnonymousAllowedTest(h.ServerTestCase):
    server_config = {"anonymous": True}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        set_up_registry(cls)
        cls.work = tempfile.mkdtemp(prefix="berth-anon-browser-")
        cls.addClassCleanup(shutil.rmtree, cls.work, True)
        cls.browser = Browser(cls.work)
        cls.addClassCleanup(cls.browser.close)

    def setUp(self):
        super().setUp()
        self.browser.s("DELETE", "/cookie")
        self.browser.go("about:blank")

    def test_api(self):
        doc = ConsoleClient(self.reg).session()
        self.assertEqual(doc, {"signedIn": False, "authEnforced": True,
                               "anonymousAllowed": True, "anonymous": False})
        cl, r = anonymous_session(self.reg)
        self.assertIn("HttpOnly", r.header("Set-Cookie"))
        doc = cl.session()
        self.assertTrue(doc["anonymous"])
        self.assertFalse(doc["signedIn"])
        self.assertNotIn("accessKeyId", doc)
        self.assertEqual(doc["csrfToken"], cl.csrf)
        # the list: exactly the repositories anonymous callers may pull, and no create
        names, out = list_names(cl)
        self.assertEqual(names, [PUBLIC, PULL_ONLY])
        self.assertFalse(out["mayCreate"])
        # (without any session too: anonymous is allowed)
        self.assertEqual(list_names(ConsoleClient(self.reg))[0], [PUBLIC, PULL_ONLY])
        # what is listed is what an anonymous client pulls, and nothing else
        for repo in (PUBLIC, PULL_ONLY, DESCRIBE_ONLY, PRIVATE):
            r = self.reg.request("GET", "/v2/%s/manifests/v1" % repo,
                                 headers={"Accept": h.MT_OCI_MANIFEST})
            self.assertEqual(r.status == 200, repo in names, (repo, r.describe()))
            r = self.reg.request("GET", "/v2/%s/blobs/%s" % (repo, self.image.config_digest))
            self.assertEqual(r.status == 200, repo in names, (repo, r.describe()))
        # desc/only is described to everyone, but not pulled, so not listed
        status, out = cl.ecr("DescribeRepositories", {"repositoryNames": [DESCRIBE_ONLY]})
        self.assertEqual(status, 200, out)
        status, out = cl.ecr("DescribeImages", {"repositoryName": PULL_ONLY})
        self.assertEqual(error_type(out), "AccessDeniedException", out)
        # ECR with the anonymous session: reads of the public repository only
        status, out = cl.ecr("DescribeImages", {"repositoryName": PUBLIC})
        self.assertEqual(status, 200, out)
        self.assertEqual(out["imageDetails"][0]["imageDigest"], self.image.digest)
        status, out = cl.ecr("DescribeImages", {"repositoryName": PRIVATE})
        self.assertEqual(error_type(out), "AccessDeniedException", out)
        for op, body in (("BatchDeleteImage", {"repositoryName": PUBLIC,
                                               "imageIds": [{"imageTag": "v1"}]}),
                         ("DeleteRepository", {"repositoryName": PUBLIC, "force": True}),
                         ("CreateRepository", {"repositoryName": "pub/new"}),
                         ("SetRepositoryPolicy", {"repositoryName": PUBLIC,
                                                  "policyText": PUBLIC_POLICY})):
            status, out = cl.ecr(op, body)
            self.assertEqual(error_type(out), "AccessDeniedException", (op, out))
        # the CSRF token is still required
        status, out = cl.ecr("DescribeImages", {"repositoryName": PUBLIC}, csrf=False)
        self.assertEqual(error_type(out), "AccessDeniedException", out)
        # /v2 with the cookie: the public manifest, not the private one
        r = cl.get("/v2/%s/manifests/v1" % PUBLIC, {"Accept": h.MT_OCI_MANIFEST})
        self.assertEqual(r.status, 200, r.describe())
        # a 403 without a challenge, as for a signed-in key: a Basic challenge would make
        # the browser prompt for a password, and the page read a 401 as its session ended
        for path in ("/v2/%s/manifests/v1" % PRIVATE,
                     "/v2/%s/blobs/%s" % (PRIVATE, self.image.config_digest)):
            r = cl.get(path, {"Accept": h.MT_OCI_MANIFEST})
            self.assertEqual(r.status, 403, r.describe())
            self.assertIsNone(r.header("WWW-Authenticate"), r.describe())
            self.assertEqual(r.json()["errors"][0]["code"], "DENIED", r.describe())
        # without the cookie: the challenge, as before
        r = self.reg.request("GET", "/v2/%s/manifests/v1" % PRIVATE,
                             headers={"Accept": h.MT_OCI_MANIFEST})
        self.assertEqual(r.status, 401, r.describe())
        self.assertIsNotNone(r.header("WWW-Authenticate"), r.describe())
        # what the page's controls ask: nothing to change
        perms = cl.get("/ui/api/permissions?repository=" + PUBLIC).json()["actions"]
        self.assertFalse(any(perms.values()), perms)
        # no registry page, no garbage collection
        r = self.reg.request("GET", "/ui/api/registry", headers=cl.headers())
        self.assertEqual((r.status, r.json()["error"]), (401, "SignInRequired"))
        r = self.reg.request("POST", "/ui/api/gc", headers=cl.headers())
        self.assertEqual(r.status, 401)
        # signing in with a key still works beside it, and sees both
        admin = ConsoleClient(self.reg)
        admin.sign_in(*self.admin)
        self.assertEqual(sorted(list_names(admin)[0]),
                         sorted([PRIVATE, PUBLIC, PULL_ONLY, DESCRIBE_ONLY]))
        # leaving the anonymous session
        r = self.reg.request("DELETE", "/ui/api/session", headers=cl.headers())
        self.assertEqual(r.status, 200)
        self.assertFalse(cl.session()["anonymous"])
        status, out = cl.ecr("DescribeImages", {"repositoryName": PUBLIC})
        self.assertEqual(error_type(out), "UnrecognizedClientException", out)

    def test_browse_public_repositories(self):
        b = self.browser
        b.go(self.server.base_url + "/ui/")
        b.wait_for("h1", "Sign in")
        self.assertEqual(b.accessibility(), [])
        b.click(b.wait_for("#browse-anonymously"))
        b.wait_for("#repo-list a", PUBLIC)
        b.wait_for("#who-name", "public repositories only")
        b.wait_for("#repo-list a", PULL_ONLY)
        listed = b.text(b.wait_for("#repo-list"))
        self.assertNotIn(PRIVATE, listed)
        self.assertNotIn(DESCRIBE_ONLY, listed)
        self.assertFalse(b.script("const x = document.getElementById('create-repo'); "
                                  "return !!x && !x.hidden"))
        self.assertTrue(b.script("return document.getElementById('nav-registry').hidden"))
        self.assertEqual(b.accessibility(), [])
        b.screenshot("anonymous-repositories.png")
        b.click(b.wait_for("#repo-list a", PUBLIC))
        b.wait_for("td.tags", "v1")
        self.assertEqual(b.find_all("button.chip-x"), [])
        self.assertEqual(b.find_all("button.danger"), [])
        b.wait_for("p", "may not delete")
        # images only: no settings or lifecycle tab
        self.assertEqual([b.text(x) for x in b.find_all("nav.tabs a")], ["Images"])
        self.assertEqual(b.accessibility(), [])
        # the image page reads the manifest and config through /v2
        b.click(b.wait_for("td a.mono"))
        b.wait_for("h2", "Layers")
        # a repository public for pulling only: how to pull it, no image list
        b.go(self.server.base_url + "/ui/#/")
        b.click(b.wait_for("#repo-list a", PULL_ONLY))
        b.wait_for("#pull-only", "Everyone may pull")
        self.assertIn("docker pull %s/%s:TAG" % (self.server.base_url.split("//")[1], PULL_ONLY),
                      b.page_text())
        self.assertEqual(b.accessibility(), [])
        # the registry page is for keys
        b.go(self.server.base_url + "/ui/#/registry")
        b.wait_for("#registry-signin", "sign in")
        # "Sign in" leaves anonymous browsing for the form
        b.click(b.wait_for("#signout", "Sign in"))
        b.wait_for("#akid")
        self.assertEqual([x["name"] for x in b.s("GET", "/cookie")], [])


class AnonymousNotAllowedTest(h.ServerTestCase):
    """The default: keys exist and "anonymous" is false."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        set_up_registry(cls)

    def test_api(self):
        doc = ConsoleClient(self.reg).session()
        self.assertFalse(doc["anonymousAllowed"])
        _, r = anonymous_session(self.reg, expect=403)
        self.assertEqual(r.json()["error"], "AnonymousNotAllowed")
        self.assertIsNone(r.header("Set-Cookie"))
        # no list for anyone without a key, not even of the public repository
        names, out = list_names(ConsoleClient(self.reg), expect=401)
        self.assertEqual(out["error"], "SignInRequired")
        # /v2 itself still serves the public repository without credentials, as before
        r = self.reg.request("GET", "/v2/%s/manifests/v1" % PUBLIC,
                             headers={"Accept": h.MT_OCI_MANIFEST})
        self.assertEqual(r.status, 200, r.describe())

    def test_sign_in_page_only(self):
        work = tempfile.mkdtemp(prefix="berth-anon-off-")
        self.addCleanup(shutil.rmtree, work, True)
        b = Browser(work)
        self.addCleanup(b.close)
        b.go(self.server.base_url + "/ui/#/repo/pub%2Fapp")
        b.wait_for("h1", "Sign in")
        self.assertEqual(b.find_all("#browse-anonymously"), [])
        self.assertEqual(b.find_all("#repo-list"), [])
        self.assertNotIn("v1", b.page_text())


if __name__ == "__main__":
    import unittest
    unittest.main()
