"""The web console in a real headless Chromium (Debian's chromium and chromium-driver),
driven over the WebDriver HTTP protocol with the standard library: bad credentials show
an error; sign in, browse to an image pushed by skopeo, delete a tag, sign out; a
read-only key sees no delete button. A screenshot of each main page is saved under the
test's output directory (BERTH_TEST_OUTPUT, default <build>/test-output/console)."""

import json
import shutil
import tempfile
import unittest

import clients as c  # first: it cleans the environment botocore reads
import berth_harness as h
import auth_helpers as e
from browser_helpers import Browser



class BrowserTest(h.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.work = tempfile.mkdtemp(prefix="berth-browser-")
        cls.addClassCleanup(shutil.rmtree, cls.work, True)
        cls.repo_name = "team/webapp"
        history = [
            {"created": "2026-11-30T10:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:4f2c in / "},
            {"created": "2026-11-30T10:00:05Z", "created_by": "RUN /bin/sh -c apk add --no-cache curl # buildkit"},
            {"created": "2026-11-30T10:00:06Z", "created_by": "CMD [\"/bin/sh\"]", "empty_layer": True},
        ]
        cls.image = h.build_image(layer_count=2)
        # the same layers under a config with Dockerfile-like history
        cfg = json.loads(cls.image.blobs[cls.image.config_digest])
        cfg["history"] = history
        cfg["config"]["Labels"] = {"org.opencontainers.image.title": "webapp"}
        cfg_bytes = h.canonical_json(cfg)
        manifest = json.loads(cls.image.manifest)
        blobs = {d: b for d, b in cls.image.blobs.items() if d != cls.image.config_digest}
        blobs[h.digest_of(cfg_bytes)] = cfg_bytes
        manifest["config"] = h.blob_descriptor(h.MT_OCI_CONFIG, cfg_bytes)
        cls.image = h.Image(manifest, blobs)
        cls.other = h.build_image(layer_count=1)
        skopeo = c.Skopeo(cls.work)
        # pushed while no key exists (the loopback anonymous mode)
        skopeo.push(cls.server, {"v1": cls.image, "stable": cls.image, "v0": cls.other},
                    cls.repo_name)
        skopeo.push(cls.server, {"1.0": cls.other}, "team/empty-soon")
        cls.admin = e.keys_create(cls.server, "browser-admin")
        cls.reader = e.keys_create(cls.server, "browser-reader", "pull")
        cls.browser = Browser(cls.work)
        cls.addClassCleanup(cls.browser.close)

    def setUp(self):
        super().setUp()
        self.browser.s("DELETE", "/cookie")  # each test starts signed out

    def sign_in(self, akid, secret):
        b = self.browser
        b.type(b.wait_for("#akid"), akid)
        b.type(b.wait_for("#secret"), secret)
        b.click(b.wait_for("#signin"))

    def sign_out(self):
        b = self.browser
        b.click(b.wait_for("#signout"))
        b.wait_for("#signin-error .notice", "signed out")

    def test_1_bad_credentials_show_an_error(self):
        b = self.browser
        b.go(self.server.base_url + "/")
        self.assertTrue(b.url().endswith("/ui/"), b.url())
        b.wait_for("h1", "Sign in")
        self.sign_in(self.admin[0], "not-the-secret-0000000000")
        b.wait_for("#signin-error .error", "wrong")
        b.screenshot("signin-error.png")
        # still signed out, and nothing was stored
        self.assertEqual(b.script("return localStorage.length + sessionStorage.length"), 0)
        self.assertEqual([x["name"] for x in b.s("GET", "/cookie")], [])

    def test_2_browse_delete_a_tag_and_sign_out(self):
        b = self.browser
        b.go(self.server.base_url + "/ui/")
        self.sign_in(*self.admin)
        b.wait_for("h1", "Repositories")
        link = b.wait_for("#repo-list a", self.repo_name)
        b.wait_for("#repo-list td.num", "2")  # the image count
        b.screenshot("repositories.png")
        # the session is an HttpOnly cookie; nothing in storage, nothing script can read
        cookies = {x["name"]: x for x in b.s("GET", "/cookie")}
        self.assertTrue(cookies["berth_session"]["httpOnly"])
        self.assertEqual(cookies["berth_session"]["sameSite"], "Strict")
        self.assertEqual(b.script("return document.cookie"), "")
        self.assertEqual(b.script("return localStorage.length + sessionStorage.length"), 0)

        # filtering
        b.type(b.wait_for("#repo-search"), "empty")
        b.wait_for("#repo-list a", "team/empty-soon")
        b.wait_gone("#repo-list a", self.repo_name)
        b.type(b.wait_for("#repo-search"), "no-such-thing")
        b.wait_for("#repo-list .empty", "No repository matches")
        b.type(b.wait_for("#repo-search"), "webapp")
        link = b.wait_for("#repo-list a", self.repo_name)

        b.click(link)
        b.wait_for("h1", self.repo_name)
        b.wait_for("td.tags", "stable")
        pull = b.wait_for(".pull", "docker pull")
        self.assertIn("podman pull", b.text(pull))
        self.assertIn("ctr image pull --plain-http", b.text(pull))
        self.assertTrue(b.find_all('button[aria-label="Delete tag v1"]'))
        b.screenshot("repository.png")

        b.click(b.wait_for('a[href*="%s"]' % self.image.digest))
        b.wait_for("h2", "Layers")
        b.wait_for("table", "apk add --no-cache curl")
        b.wait_for("table", "org.opencontainers.image.title")
        b.wait_for("details pre", '"schemaVersion": 2')
        b.wait_for(".facts", "stable")
        b.screenshot("image.png")

        # delete the tag v1: the confirmation names it, and says the image stays
        b.go(self.server.base_url + "/ui/#/repo/" + self.repo_name.replace("/", "%2F"))
        # by keyboard: Escape cancels, with focus on Cancel first
        b.click(b.wait_for('button[aria-label="Delete tag v0"]'))
        b.wait_for("dialog.confirm", "Delete tag v0?")
        self.assertEqual(b.script("return document.activeElement.textContent"), "Cancel")
        b.keys("\ue00c")  # Escape
        b.wait_gone("dialog.confirm")
        b.wait_for('button[aria-label="Delete tag v0"]')
        b.click(b.wait_for('button[aria-label="Delete tag v1"]'))
        dialog = b.wait_for("dialog.confirm", "Delete tag v1?")
        self.assertIn(self.repo_name + ":v1", b.text(dialog))
        self.assertIn("stays", b.text(dialog))
        b.screenshot("confirm-delete.png")
        b.click(b.wait_for("#confirm-delete"))
        b.wait_for("td.tags", "stable")
        b.wait_gone('button[aria-label="Delete tag v1"]')
        ecr = c.ecr_client(self.server, *self.admin)
        tags = sorted(t for d in ecr.describe_images(repositoryName=self.repo_name)["imageDetails"]
                      for t in d.get("imageTags", []))
        self.assertEqual(tags, ["stable", "v0"])

        self.sign_out()
        b.screenshot("signed-out.png")
        self.assertNotIn("berth_session", [x["name"] for x in b.s("GET", "/cookie")])
        # the pages are gone with the session
        b.go(self.server.base_url + "/ui/#/repo/" + self.repo_name.replace("/", "%2F"))
        b.wait_for("h1", "Sign in")

    def test_3_read_only_key_sees_no_delete(self):
        b = self.browser
        b.go(self.server.base_url + "/ui/")
        self.sign_in(*self.reader)
        b.wait_for("#repo-list a", self.repo_name)
        b.go(self.server.base_url + "/ui/#/repo/" + self.repo_name.replace("/", "%2F"))
        b.wait_for("td.tags", "stable")
        b.wait_for("p", "may not delete")
        self.assertEqual(b.find_all("button.chip-x"), [])
        self.assertEqual(b.find_all("button.danger"), [])
        b.screenshot("repository-read-only.png")
        # a narrow window (a phone, or 200% zoom of a small one): nothing wider than the page
        b.s("POST", "/window/rect", {"width": 420, "height": 900})
        try:
            b.wait_for("td.tags", "stable")
            overflow = b.script("return document.documentElement.scrollWidth - "
                                "document.documentElement.clientWidth")
            self.assertLessEqual(overflow, 0)
            b.screenshot("repository-narrow.png")
        finally:
            b.s("POST", "/window/rect", {"width": 1280, "height": 1000})
        self.sign_out()


if __name__ == "__main__":
    unittest.main()
