"""The console's repository list with 10,000 repositories: berth searches, sorts and pages
it (GET /ui/api/repositories), so each answer holds one page and comes back quickly, and
the page in headless Chromium shows, pages, sorts and searches them. The repositories are
written straight into the metadata database while the server is stopped (creating them one
by one through the API would take most of the test's time)."""

import json
import os
import shutil
import sqlite3
import tempfile
import time
import unittest

import berth_harness as h
import auth_helpers as e
from browser_helpers import Browser

COUNT = 10000
# Bounds far above what a page takes here (tens of milliseconds), for a loaded machine and
# the sanitizer build: a list that shipped or sorted everything in the browser, or ran a
# query per repository, would still pass a bound this loose only on a fast machine, so the
# answer's size and shape are checked as well.
ANSWER_SECONDS = 5.0


class ScaleTest(h.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.work = tempfile.mkdtemp(prefix="berth-scale-")
        cls.addClassCleanup(shutil.rmtree, cls.work, True)
        img = h.build_image(layer_count=1)
        h.expect_status(cls.reg.push_image("zz/pushed", img, tag="v1"), 201)
        cls.admin = e.keys_create(cls.server, "scale-admin")
        cls.server.stop()
        db = sqlite3.connect(os.path.join(cls.server.root, "berth.db"))
        with db:
            db.executemany("INSERT INTO repositories (name, created_at) VALUES (?, ?)",
                           (("bulk/repo-%05d" % i, 1700000000000 + i) for i in range(COUNT)))
        db.close()
        cls.server.start()
        cls.reg = cls.server.registry()

    def signed_in(self):
        r = self.reg.request("POST", "/ui/api/session",
                             headers={"Content-Type": "application/json"},
                             body=json.dumps({"accessKeyId": self.admin[0],
                                              "secretAccessKey": self.admin[1]}).encode())
        self.assertEqual(r.status, 200, r.describe())
        cookie = r.header("Set-Cookie").split(";")[0]
        return {"Cookie": cookie, "X-CSRF-Token": r.json()["csrfToken"]}

    def page(self, headers, query):
        t0 = time.monotonic()
        r = self.reg.request("GET", "/ui/api/repositories" + query, headers=headers)
        took = time.monotonic() - t0
        if os.environ.get("BERTH_SCALE_TIMES"):
            print("%s: %.3f s" % (query or "(first page)", took))
        self.assertEqual(r.status, 200, r.describe())
        self.assertLess(took, ANSWER_SECONDS, "%s took %.2f s" % (query, took))
        return r.json(), len(r.body)

    def test_list_pages_sorts_and_searches_10000(self):
        hdrs = self.signed_in()
        out, size = self.page(hdrs, "")
        self.assertEqual(out["total"], COUNT + 1)
        self.assertEqual(len(out["repositories"]), 25)
        self.assertEqual(out["repositories"][0]["repositoryName"], "bulk/repo-00000")
        self.assertLess(size, 16 * 1024)  # one page, not ten thousand rows
        out, _ = self.page(hdrs, "?offset=9975&limit=25")
        self.assertEqual(out["repositories"][-1]["repositoryName"], "bulk/repo-09999")
        out, _ = self.page(hdrs, "?sort=images&order=desc&limit=1")
        self.assertEqual(out["repositories"][0]["repositoryName"], "zz/pushed")
        out, _ = self.page(hdrs, "?sort=pushed&order=asc&limit=2")
        self.assertEqual([x["repositoryName"] for x in out["repositories"]],
                         ["bulk/repo-00000", "bulk/repo-00001"])
        out, _ = self.page(hdrs, "?q=repo-0999&sort=name&order=desc")
        self.assertEqual(out["total"], 10)
        self.assertEqual(out["repositories"][0]["repositoryName"], "bulk/repo-09999")
        out, _ = self.page(hdrs, "?q=no-such")
        self.assertEqual(out["total"], 0)

    def test_browser_with_10000(self):
        browser = Browser(self.work)
        self.addCleanup(browser.close)
        b = browser
        b.go(self.server.base_url + "/ui/")
        b.type(b.wait_for("#akid"), self.admin[0])
        b.type(b.wait_for("#secret"), self.admin[1])
        t0 = time.monotonic()
        b.click(b.wait_for("#signin"))
        b.wait_for("#page-status", "1–25 of %d" % (COUNT + 1))
        self.assertLess(time.monotonic() - t0, 2 * ANSWER_SECONDS)
        self.assertEqual(len(b.find_all("#repo-list tbody tr")), 25)
        b.click(b.wait_for("#page-next"))
        b.wait_for("#page-status", "26–50 of")
        b.wait_for("#repo-list a", "bulk/repo-00025")
        # sorted by images, most first: the pushed repository leads
        b.click(b.wait_for('button[data-sort="images"]'))
        b.wait_for("#page-status", "1–25 of")
        b.wait_for("#repo-list tbody tr:first-child a", "zz/pushed")
        self.assertEqual(b.script(
            "return document.querySelector('th[aria-sort]').getAttribute('aria-sort')"),
            "descending")
        b.screenshot("repositories-10000.png")
        b.type(b.wait_for("#repo-search"), "repo-0424")
        b.wait_for("#page-status", "1–10 of 10")
        b.wait_for("#repo-list a", "bulk/repo-04249")


if __name__ == "__main__":
    unittest.main()
