"""Referrers on the console's repository and image pages in a repository with many images:
an image pushed first (so the oldest, past the first 200 of the newest-first list) with
1,001 SBOMs referring to it (more than the referrers API's page of 1,000: the console
follows its Link). In headless Chromium every SBOM is nested under its subject on the
repository page, and the subject's image page lists all 1,001. An index's platforms show
beside it, its platform manifests nested under it."""

import concurrent.futures
import shutil
import tempfile
import time

import clients as c  # first: it cleans the environment botocore reads
import berth_harness as h
from browser_helpers import Browser

REPO = "many/refs"
REFERRERS = 1001  # the referrers API answers 1,000 a page


class ManyReferrersTest(h.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.work = tempfile.mkdtemp(prefix="berth-referrers-")
        cls.addClassCleanup(shutil.rmtree, cls.work, True)
        cls.subject = h.build_image(layer_count=1)
        h.expect_status(cls.reg.push_image(REPO, cls.subject, tag="base"), 201)
        time.sleep(0.01)  # the subject is the oldest image
        arts = [h.build_artifact("application/spdx+json", subject=cls.subject.descriptor(),
                                 annotations={"n": str(i)}) for i in range(REFERRERS)]

        def push(art):
            reg = cls.server.registry()
            h.expect_status(reg.push_image(REPO, art), 201)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(push, arts))
        # a two-platform index, and a signature on its arm64 manifest
        cls.amd64 = h.build_image(layer_count=1, arch="amd64")
        cls.arm64 = h.build_image(layer_count=1, arch="arm64")
        cls.index = h.Index([cls.amd64, cls.arm64], platforms=[
            {"os": "linux", "architecture": "amd64"},
            {"os": "linux", "architecture": "arm64", "variant": "v8"}])
        h.expect_status(cls.reg.push_image("multi/app", cls.index, tag="1.0"), 201)
        sig = h.build_artifact("application/vnd.dev.cosign.artifact.sig.v1+json",
                               subject=cls.arm64.descriptor())
        h.expect_status(cls.reg.push_image("multi/app", sig), 201)
        cls.browser = Browser(cls.work)
        cls.addClassCleanup(cls.browser.close)

    def test_all_referrers_nested_under_their_subject(self):
        # the API pages them
        r = self.reg.request("GET", "/v2/%s/referrers/%s" % (REPO, self.subject.digest))
        self.assertEqual(r.status, 200, r.describe())
        self.assertIn("rel=\"next\"", r.header("Link") or "")
        b = self.browser
        b.go(self.server.base_url + "/ui/#/repo/" + REPO.replace("/", "%2F"))
        b.wait_for("p.muted", "1 image and %d referrers" % REFERRERS)
        rows = b.script("return [...document.querySelectorAll('#main tbody tr')].map("
                        "(tr) => tr.classList.contains('referrer'))")
        self.assertEqual(len(rows), REFERRERS + 1)
        self.assertEqual(rows, [False] + [True] * REFERRERS)  # the subject, then its SBOMs
        self.assertIn("base", b.text(b.find_all("#main tbody tr td.tags")[0]))
        b.screenshot("repository-many-referrers.png")
        # the subject's page lists every one of them
        b.go(self.server.base_url + "/ui/#/image/%s/%s" % (REPO.replace("/", "%2F"),
                                                           self.subject.digest))
        b.wait_for("#referrers tbody tr")
        self.assertEqual(b.script("return document.querySelectorAll('#referrers tbody tr')"
                                  ".length"), REFERRERS)


    def test_index_platforms_and_manifests(self):
        b = self.browser
        b.go(self.server.base_url + "/ui/#/repo/multi%2Fapp")
        b.wait_for("p.muted", "1 image, 2 platform manifests and 1 referrers")
        rows = b.script("return [...document.querySelectorAll('#main tbody tr')].map("
                        "(tr) => [tr.className, tr.querySelector('td.tags').innerText, "
                        "tr.querySelector('td.media').innerText])")
        self.assertEqual(len(rows), 4, rows)
        self.assertEqual(rows[0][0], "")
        self.assertIn("1.0", rows[0][1])
        self.assertIn("oci.image.index.v1+json", rows[0][2])
        self.assertIn("linux/amd64, linux/arm64/v8", rows[0][2])
        self.assertEqual([r[0] for r in rows[1:]], ["referrer child", "referrer child",
                                                    "referrer"])
        self.assertIn("linux/amd64", rows[1][1])
        self.assertIn("linux/arm64/v8", rows[2][1])
        self.assertIn("signature", rows[3][1])  # under the arm64 manifest it signs
        self.assertEqual(b.accessibility(), [])
        b.screenshot("repository-index.png")


if __name__ == "__main__":
    import unittest
    unittest.main()
