"""The console's empty and error states, and its pages in a narrow window, in headless
Chromium. An empty registry says how to push a first image. A repository or image that
does not exist says "Not found" with the API's message. While the database is out of
descriptors (BERTH_TEST_FAULTS=sqlite_emfile, active while a flag file exists) each page
says berth cannot answer right now, offers "Try again" (focused), and once the fault is
gone Try again shows the page. With berth stopped, a refresh says berth is not answering
instead of the browser's "Failed to fetch"; once it is back, Try again shows the page,
still signed in (sessions are kept in the database). In a 420 px window
(a phone) the sign-in page, the repository list, the image page and the error page are
no wider than the window. axe-core finds no serious or critical violation on the
error pages. The repository list sorts from the keyboard: Enter on a column's header
sorts by it, and the focus stays on that header for Enter again (reversing) or Tab.
While a long action runs (the lifecycle preview job, a garbage collection pass: held by
the server at fault_hold points while a file exists; applying a policy and a delete:
their answers held back in the page; a scan started from the image page, held by the
server, also followed by the image page opened again meanwhile) the page says so in a
status a screen reader announces, and shows the result once released. Each main page at 200%
zoom of a 1280 x 800 window (640 x 400 CSS pixels at 2 device pixels each): no sideways
scrolling, no control cut off, squeezed or drawn over another, axe-core clean."""

import json
import os
import shutil
import tempfile
import unittest

import clients as c  # first: it cleans the environment botocore reads
import berth_harness as h
import auth_helpers as e
import scan_helpers as sh
from browser_helpers import Browser

REPO = "team/app"


def overflow(b):
    return b.script("return document.documentElement.scrollWidth - "
                    "document.documentElement.clientWidth")


class ConsoleStatesTest(h.ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="berth-states-")
        cls.addClassCleanup(shutil.rmtree, cls.work, True)
        cls.flag = os.path.join(cls.work, "exhausted")
        # SQLite: the fault hook is SQLite's
        # long actions held while these files exist (common/fault.h's fault_hold)
        cls.hold_preview = os.path.join(cls.work, "hold-preview")
        cls.hold_gc = os.path.join(cls.work, "hold-gc")
        cls.hold_scan = os.path.join(cls.work, "hold-scan")
        cls.server_env = {"BERTH_TEST_FAULTS": "sqlite_emfile",
                          "BERTH_TEST_FAULT_FILE": cls.flag, "BERTH_META_BACKEND": "sqlite",
                          "BERTH_TEST_HOLD_LIFECYCLE_PREVIEW": cls.hold_preview,
                          "BERTH_TEST_HOLD_GC": cls.hold_gc,
                          "BERTH_TEST_HOLD_SCAN": cls.hold_scan}
        super().setUpClass()
        cls.admin = e.keys_create(cls.server, "states-admin")
        cls.browser = Browser(cls.work)
        cls.addClassCleanup(cls.browser.close)

    def setUp(self):
        super().setUp()
        self.browser.s("DELETE", "/cookie")
        self.browser.go("about:blank")

    def sign_in(self, fragment=""):
        b = self.browser
        b.go(self.server.base_url + "/ui/" + fragment)
        b.type(b.wait_for("#akid"), self.admin[0])
        b.type(b.wait_for("#secret"), self.admin[1])
        b.click(b.wait_for("#signin"))

    def test_1_empty_registry_and_not_found(self):
        b = self.browser
        self.sign_in()
        b.wait_for("#repo-list", "No repositories yet")
        b.wait_for("#repo-list", "docker push")
        for fragment, message in (("#/repo/no%2Fsuch", "'no/such' does not exist"),
                                  ("#/repo/no%2Fsuch/settings", "'no/such' does not exist"),
                                  ("#/repo/no%2Fsuch/lifecycle", "'no/such' does not exist"),
                                  ("#/image/no%2Fsuch/sha256:" + "0" * 64, "")):
            b.go(self.server.base_url + "/ui/" + fragment)
            b.wait_for("#error-title", "Not found")
            b.wait_for("p.error[role=alert]", message)
            b.wait_for("#error-back")
        self.assertEqual(b.accessibility(), [])

    def test_2_unavailable_then_try_again(self):
        b = self.browser
        img = h.build_image(layer_count=1, layer_size=4096)
        h.expect_status(e.AuthRegistry(self.server.base_url, e.basic(*self.admin))
                        .push_image(REPO, img, tag="v1"), 201)
        self.sign_in()
        b.wait_for("#repo-list a", REPO)
        pages = ["#/", "#/repo/team%2Fapp", "#/repo/team%2Fapp/settings",
                 "#/repo/team%2Fapp/lifecycle", "#/image/team%2Fapp/" + img.digest,
                 "#/registry"]
        open(self.flag, "w").close()
        try:
            for fragment in pages:
                b.go(self.server.base_url + "/ui/" + fragment)
                b.wait_for("#error-title", "berth cannot answer right now")
                b.wait_for("p.error", "try again in a moment")
                self.assertEqual(b.script("return document.activeElement.id"), "retry", fragment)
            self.assertEqual(b.accessibility(), [])
            b.screenshot("error-unavailable.png")
        finally:
            os.unlink(self.flag)
        # served again: Try again shows the page (the registry's, the last one opened)
        b.click(b.wait_for("#retry"))
        b.wait_for("#storage-rows a", REPO)
        self.assertEqual(b.find_all("#error-title"), [])

    def test_3_narrow_window(self):
        b = self.browser
        img = h.build_image(layer_count=2, layer_size=4096)
        h.expect_status(e.AuthRegistry(self.server.base_url, e.basic(*self.admin))
                        .push_image("team/narrow-with-a-rather-long-repository-name", img,
                                    tag="a-rather-long-tag-name-for-a-narrow-window"), 201)
        b.s("POST", "/window/rect", {"width": 420, "height": 900})
        try:
            b.go(self.server.base_url + "/ui/")
            b.wait_for("#akid")
            self.assertLessEqual(overflow(b), 0, "sign-in")
            self.sign_in()
            b.wait_for("#repo-list a", "team/narrow")
            self.assertLessEqual(overflow(b), 0, "repositories")
            b.screenshot("repositories-narrow.png")
            b.go(self.server.base_url + "/ui/#/image/team%2Fnarrow-with-a-rather-long-"
                 "repository-name/" + img.digest)
            b.wait_for("h2", "Layers")
            self.assertLessEqual(overflow(b), 0, "image")
            b.screenshot("image-narrow.png")
            b.go(self.server.base_url + "/ui/#/repo/no%2Fsuch")
            b.wait_for("#error-title", "Not found")
            self.assertLessEqual(overflow(b), 0, "error")
        finally:
            b.s("POST", "/window/rect", {"width": 1280, "height": 1000})

    def test_4_berth_stopped(self):
        b = self.browser
        self.sign_in("#/registry")
        b.wait_for("#registry-refresh")
        self.server.stop()
        try:
            b.click(b.wait_for("#registry-refresh"))
            b.wait_for("#error-title", "berth is not answering")
            b.wait_for("p.error", "may be stopped or restarting")
            self.assertEqual(b.script("return document.activeElement.id"), "retry")
        finally:
            self.server.start(reuse_port=True)
            type(self).reg = self.server.registry()
        # back: Try again shows the page, still signed in (sessions are kept in the
        # database: a restart keeps them)
        b.click(b.wait_for("#retry"))
        b.wait_for("#registry-refresh")
        self.assertEqual(b.find_all("#error-title"), [])
        self.assertEqual(b.find_all("#akid"), [])
        b.wait_for("body", "states-admin")

    def test_5_sort_by_keyboard(self):
        b = self.browser
        reg = e.AuthRegistry(self.server.base_url, e.basic(*self.admin))
        h.expect_status(reg.push_image("sorted/big", h.build_image(
            layer_count=3, layer_size=16384, compress=False), tag="v1"), 201)
        h.expect_status(reg.push_image("sorted/small", h.build_image(
            layer_count=1, layer_size=1024, compress=False), tag="v1"), 201)
        self.sign_in()
        b.type(b.wait_for("#repo-search"), "sorted/")
        b.wait_for("#repo-list a", "sorted/big")
        names = lambda: b.script("return [...document.querySelectorAll("
                                 "'#repo-list tbody th a')].map((a) => a.textContent)")
        # Enter on the Size header: largest first, the header says so, and the focus
        # stays on it (the list is drawn again), so Enter again reverses it
        b.script("document.querySelector('button[data-sort=size]').focus()")
        b.keys("\ue007")  # Enter
        h.wait_until(lambda: names() == ["sorted/big", "sorted/small"], 30,
                     what="largest first")
        b.wait_for("th[aria-sort=descending] button[data-sort=size]")
        self.assertEqual(b.script("return document.activeElement.dataset.sort"), "size")
        b.keys("\ue007")
        b.wait_for("th[aria-sort=ascending] button[data-sort=size]")
        h.wait_until(lambda: names() == ["sorted/small", "sorted/big"], 30,
                     what="smallest first")
        self.assertEqual(b.script("return document.activeElement.dataset.sort"), "size")
        # Tab from it reaches the next header's button
        b.keys("\ue004")  # Tab
        self.assertEqual(b.script("return document.activeElement.dataset.sort"), "pushed")
        self.assertEqual(b.accessibility(), [])

    def held(self, point):
        """Once the server logs that it waits at the hold point."""
        def logged():
            with open(self.server.log_path, encoding="utf-8", errors="replace") as f:
                return "event=test_hold point=%s" % point in f.read()
        h.wait_until(logged, 30, interval=0.1, what="berth held at " + point)

    def hold_answers(self, targets):
        """From now on, in this page, the answers to the ECR operations matching the
        regular expression targets wait until release_answers()."""
        self.browser.script("""
            const targets = new RegExp(arguments[0]);
            const real = window.fetch;
            window.heldAnswers = [];
            window.fetch = (url, opts) => {
              const op = (opts && opts.headers && opts.headers["X-Amz-Target"]) || "";
              if (!targets.test(op)) return real(url, opts);
              const answer = real(url, opts);
              return new Promise((resolve) => window.heldAnswers.push(() => resolve(answer)));
            };""", targets)

    def release_answers(self):
        h.wait_until(lambda: self.browser.script("return window.heldAnswers.length"), 30,
                     what="an answer held")
        self.browser.script("window.heldAnswers.splice(0).forEach((go) => go())")

    def test_6_progress_while_a_long_action_runs(self):
        b = self.browser
        reg = e.AuthRegistry(self.server.base_url, e.basic(*self.admin))
        for tag in ("v1", "v2"):
            h.expect_status(reg.push_image("slow/preview", h.build_image(
                layer_count=1, layer_size=2048), tag=tag), 201)
        policy = {"rules": [{"rulePriority": 1, "description": "keep the newest",
                             "selection": {"tagStatus": "any", "countType": "imageCountMoreThan",
                                           "countNumber": 1},
                             "action": {"type": "expire"}}]}
        self.sign_in("#/repo/slow%2Fpreview/lifecycle")
        b.wait_for("#rule-builder legend", "Rule 1")
        b.type(b.wait_for("#lifecycle-json"), json.dumps(policy))
        b.wait_for("#builder-note", "stay in step")
        # the preview job held: the page says it is computing, in a status that a screen
        # reader announces, for as long as the job runs
        open(self.hold_preview, "w").close()
        try:
            b.click(b.wait_for("#preview-lifecycle"))
            self.held("lifecycle_preview")
            ecr = c.ecr_client(self.server, *self.admin)
            self.assertEqual(ecr.get_lifecycle_policy_preview(
                repositoryName="slow/preview")["status"], "IN_PROGRESS")
            b.wait_for("#preview p[role=status]", "Computing the preview…")
            node = b.ax_node("#preview p[role=status]")
            self.assertEqual((node["role"], node["live"]), ("status", "polite"), node)
            b.screenshot("progress-preview.png")
        finally:
            os.unlink(self.hold_preview)
        b.wait_for("#preview p[role=status]", "1 image would expire")
        self.assertNotIn("Computing", b.text(b.wait_for("#preview")))
        # Apply and a delete are one ECR call each: their answers held back in the page
        # (the request goes out, the page does not see the answer until released), the
        # page says what it is doing meanwhile, announced the same way
        self.hold_answers("PutLifecyclePolicy|BatchDeleteImage")
        b.click(b.wait_for("#apply-lifecycle"))
        b.click(b.wait_for("#confirm-delete"))
        b.wait_for("#preview p[role=status]", "Applying…")
        node = b.ax_node("#preview p[role=status]")
        self.assertEqual((node["role"], node["live"]), ("status", "polite"), node)
        self.release_answers()
        b.wait_for("#applied", "Applied")
        # (another repository: the policy just applied may expire slow/preview's v1)
        h.expect_status(reg.push_image("slow/delete", h.build_image(
            layer_count=1, layer_size=2048), tag="doomed"), 201)
        b.go(self.server.base_url + "/ui/#/repo/slow%2Fdelete")
        b.click(b.wait_for('button[aria-label="Delete tag doomed"]'))
        b.click(b.wait_for("#confirm-delete"))
        b.wait_for("#repo-status p[role=status]", "Deleting…")
        node = b.ax_node("#repo-status p[role=status]")
        self.assertEqual((node["role"], node["live"]), ("status", "polite"), node)
        self.release_answers()
        b.wait_gone('button[aria-label="Delete tag doomed"]')
        self.assertEqual(b.find_all("#repo-status p.loading"), [])
        # a garbage collection pass held while it runs: requested, then running, then done
        b.go(self.server.base_url + "/ui/#/registry")
        start = b.wait_for("#gc-start")
        open(self.hold_gc, "w").close()
        try:
            b.click(start)
            self.held("gc")
            b.wait_for("#gc-status p[role=status]", "Garbage collection is running…")
            node = b.ax_node("#gc-status p[role=status]")
            self.assertEqual((node["role"], node["live"]), ("status", "polite"), node)
            self.assertTrue(b.script("return document.getElementById('gc-start').disabled"))
            self.assertEqual(b.accessibility(), [])
            b.screenshot("progress-gc.png")
        finally:
            os.unlink(self.hold_gc)
        b.wait_for("#registry-flash", "Garbage collection finished")
        self.assertEqual(b.find_all("#gc-status p.loading"), [])

    def test_6b_progress_while_a_scan_runs(self):
        """A scan started from the image page, held by the server (BERTH_TEST_HOLD_SCAN:
        fault_hold in scan/engine/run.c) after a worker claimed it: "Scanning…" in a
        polite status while it runs; the page opened again meanwhile says the same and
        follows the scan; released, the findings show without a reload."""
        b = self.browser
        osv = sh.write_osv(os.path.join(self.work, "osv"), sh.OSV_RECORDS)
        status, out = h.run_berth(["vulndb", "import", osv], server=self.server)
        self.assertEqual(status, 0, out)
        debian = sh.debian_image()
        h.expect_status(e.AuthRegistry(self.server.base_url, e.basic(*self.admin))
                        .push_image("slow/scan", debian, tag="bookworm"), 201)
        url = self.server.base_url + "/ui/#/image/slow%2Fscan/" + debian.digest
        self.sign_in(url[len(self.server.base_url + "/ui/"):])
        b.wait_for("#findings p", "has not been scanned")
        open(self.hold_scan, "w").close()
        try:
            b.click(b.wait_for("#start-scan"))
            self.held("scan")
            b.wait_for("#findings p[role=status]", "Scanning…")
            node = b.ax_node("#findings p[role=status]")
            self.assertEqual((node["role"], node["live"]), ("status", "polite"), node)
            b.screenshot("progress-scan.png")
            # opened while the scan runs: not "Scan in progress" and a button for another
            b.go("about:blank")
            b.go(url)
            b.wait_for("h2", "Layers")
            b.wait_for("#findings p[role=status]", "Scanning…")
            self.assertEqual(b.find_all("#start-scan"), [])
            self.assertEqual(b.accessibility(), [])
        finally:
            os.unlink(self.hold_scan)
        b.wait_for("#scan-status", "complete")
        b.wait_for("tr.finding", "CVE-2023-5363")
        self.assertEqual(b.find_all("#findings p.loading"), [])

    def test_7_zoom_200(self):
        """Each main page as Chromium draws it zoomed to 200% in a 1280 x 800 window (a
        640 x 400 CSS-pixel viewport at 2 device pixels per CSS pixel)."""
        b = self.browser
        repo = "zoom/a-repository-with-a-long-name"
        img = h.build_image(layer_count=2, layer_size=4096)
        h.expect_status(e.AuthRegistry(self.server.base_url, e.basic(*self.admin))
                        .push_image(repo, img, tag="a-long-tag-name-for-the-zoomed-page"), 201)
        enc = repo.replace("/", "%2F")
        b.zoom(200)
        try:
            self.assertEqual(b.script("return [innerWidth, innerHeight, devicePixelRatio]"),
                             [640, 400, 2])

            def check(name):
                self.assertEqual(b.layout_problems(), [], name)
                self.assertEqual(b.accessibility(), [], name)
                b.screenshot("zoom200-%s.png" % name)

            b.go(self.server.base_url + "/ui/")
            b.wait_for("#akid")
            check("signin")
            self.sign_in()
            b.wait_for("#repo-list a", repo)
            check("repositories")
            b.click(b.wait_for("#create-repo"))
            b.wait_for("dialog[open]")
            check("create-dialog")
            b.keys("\ue00c")  # Escape
            b.wait_gone("dialog[open]")
            b.go(self.server.base_url + "/ui/#/repo/" + enc)
            b.wait_for("td.tags", "a-long-tag-name")
            check("repository")
            b.go(self.server.base_url + "/ui/#/repo/" + enc + "/settings")
            b.wait_for("#repo-policy")
            check("settings")
            b.go(self.server.base_url + "/ui/#/repo/" + enc + "/lifecycle")
            b.wait_for("#rule-builder legend", "Rule 1")
            check("lifecycle")
            b.go(self.server.base_url + "/ui/#/image/" + enc + "/" + img.digest)
            b.wait_for("h2", "Layers")
            check("image")
            b.go(self.server.base_url + "/ui/#/registry")
            b.wait_for("#storage-rows a", repo)
            check("registry")
        finally:
            b.zoom(100)

    def test_8_keyboard_only(self):
        """From the sign-in to a lifecycle preview with keys only: Tab, Shift+Tab, typing,
        Enter and Escape (no click, no focus() from the test past the start)."""
        b = self.browser
        reg = e.AuthRegistry(self.server.base_url, e.basic(*self.admin))
        for tag in ("one", "two"):
            h.expect_status(reg.push_image("keys/app", h.build_image(
                layer_count=1, layer_size=1024), tag=tag), 201)
        active = lambda: b.script(
            "const a = document.activeElement; return a ? [a.tagName.toLowerCase(), a.id, "
            "a.getAttribute('aria-label') || a.textContent.trim().slice(0, 60)] : null")
        TAB, SHIFT, ENTER, ESCAPE = "\ue004", "\ue008", "\ue007", "\ue00c"

        def tab_to(what, back=False, most=80):
            for _ in range(most):
                if what(active()):
                    return
                if back:
                    b.s("POST", "/actions", {"actions": [{"type": "key", "id": "kb", "actions": [
                        {"type": "keyDown", "value": SHIFT}, {"type": "keyDown", "value": TAB},
                        {"type": "keyUp", "value": TAB}, {"type": "keyUp", "value": SHIFT}]}]})
                else:
                    b.keys(TAB)
            self.fail("not reached by Tab: the focus is on %r" % (active(),))

        b.go(self.server.base_url + "/ui/")
        b.wait_for("#akid")
        self.assertEqual(active()[1], "akid")  # the sign-in form takes the focus
        b.keys(self.admin[0] + TAB + self.admin[1] + ENTER)
        b.wait_for("#repo-list a", "keys/app")
        self.assertEqual(active()[:1] + active()[2:], ["h1", "Repositories"])
        # search, then the repository by its link
        tab_to(lambda a: a[1] == "repo-search")
        b.keys("keys/")
        b.wait_for("#page-status", "of 1")
        tab_to(lambda a: a[0] == "a" and a[2] == "keys/app")
        b.keys(ENTER)
        b.wait_for("td.tags", "two")
        self.assertEqual(active()[:1] + active()[2:], ["h1", "keys/app"])
        # back up from the heading past the header's links to the skip link, which shows
        # once focused and moves the focus to the page's content, staying on this page
        url = b.url()
        tab_to(lambda a: a[2] == "Skip to content", back=True, most=8)
        self.assertGreaterEqual(b.script("return document.activeElement"
                                         ".getBoundingClientRect().left"), 0)
        b.keys(ENTER)
        self.assertEqual(active()[1], "main")
        self.assertEqual(b.url(), url)
        b.wait_for("td.tags", "two")
        b.wait_for("h1", "keys/app")
        # a tag's delete: the dialog takes the focus (Cancel), Escape closes it and the focus
        # goes back to the button that opened it
        tab_to(lambda a: a[2] == "Delete tag one")
        b.keys(ENTER)
        b.wait_for("dialog[open]", "Delete tag one?")
        self.assertEqual(active()[2], "Cancel")
        b.keys(ESCAPE)
        b.wait_gone("dialog[open]")
        self.assertEqual(active()[2], "Delete tag one")
        # the lifecycle tab; the builder by keyboard writes the JSON; the preview
        tab_to(lambda a: a[0] == "a" and a[2] == "Lifecycle", back=True)
        b.keys(ENTER)
        b.wait_for("#rule-builder legend", "Rule 1")
        tab_to(lambda a: a[1] == "rule-0-count")
        b.keys("\ue003" * 4 + "1")  # Backspace, then 1
        self.assertEqual(json.loads(b.script(
            "return document.getElementById('lifecycle-json').value"))["rules"][0]
            ["selection"]["countNumber"], 1)
        tab_to(lambda a: a[1] == "preview-lifecycle")
        b.keys(ENTER)
        b.wait_for("#preview p[role=status]", "would expire")


class ConsoleSessionExpiryTest(h.ServerTestCase):
    """A session that expires while its page is open: the next action brings back the
    sign-in form with a note saying the session ended, shows nothing of the page, and a
    new sign-in carries on. Only the session's lifetime is involved (no restart), so it
    holds wherever sessions are kept."""
    server_config = {"console": {"session_ttl_seconds": 5}}

    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="berth-expiry-")
        cls.addClassCleanup(shutil.rmtree, cls.work, True)
        super().setUpClass()
        cls.admin = e.keys_create(cls.server, "expiry-admin")
        cls.browser = Browser(cls.work)
        cls.addClassCleanup(cls.browser.close)

    def test_expired_session_asks_to_sign_in_again(self):
        b = self.browser
        b.go(self.server.base_url + "/ui/#/registry")
        b.type(b.wait_for("#akid"), self.admin[0])
        b.type(b.wait_for("#secret"), self.admin[1])
        b.click(b.wait_for("#signin"))
        b.wait_for("#registry-refresh")
        signed_in = lambda: b.s("POST", "/execute/async", {"args": [], "script": """
            const done = arguments[arguments.length - 1];
            fetch("/ui/api/session").then((r) => r.json()).then((s) => done(s.signedIn));"""})
        h.wait_until(lambda: not signed_in(), 30, interval=0.5, what="the session to expire")
        b.click(b.wait_for("#registry-refresh"))
        b.wait_for("#signin-error .notice", "Your session has ended")
        b.wait_for("h1", "Sign in")
        self.assertEqual(b.find_all("#registry-refresh"), [])
        self.assertFalse(b.script("return !document.getElementById('who').hidden"))
        self.assertEqual(b.accessibility(), [])
        b.type(b.wait_for("#akid"), self.admin[0])
        b.type(b.wait_for("#secret"), self.admin[1])
        b.click(b.wait_for("#signin"))
        b.wait_for("#registry-refresh")


if __name__ == "__main__":
    unittest.main()
