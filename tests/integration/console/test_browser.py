"""The web console in a real headless Chromium (Debian's chromium and chromium-driver),
driven over the WebDriver HTTP protocol with the standard library: bad credentials show
an error; sign in, browse to an image pushed by skopeo, delete a tag, sign out; a
read-only key sees no delete button. A screenshot of each main page is saved under the
test's output directory (BERTH_TEST_OUTPUT, default <build>/test-output/console)."""

import datetime
import json
import os
import re
import shutil
import tempfile
import time
import unittest

import clients as c  # first: it cleans the environment botocore reads
import berth_harness as h
import auth_helpers as e
import scan_helpers as sh
from browser_helpers import Browser



class BrowserTest(h.ServerTestCase):
    # the lifecycle job enforces a policy as soon as it is put
    server_config = {"lifecycle": {"new_policy_delay_seconds": 0}, "scan": {"workers": 1}}

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
        # a Debian image, scanned on push, with an SBOM, a signature and an in-toto
        # attestation referring to it
        osv = sh.write_osv(os.path.join(cls.work, "osv"), sh.OSV_RECORDS)
        status, out = h.run_berth(["vulndb", "import", osv, "--root", cls.server.root])
        assert status == 0, out
        anon = c.ecr_client(cls.server)
        anon.create_repository(repositoryName="team/scanned",
                               imageScanningConfiguration={"scanOnPush": True})
        cls.debian = sh.debian_image()
        # by skopeo too, as the chain has it: the image whose findings test_6 reads
        skopeo.push(cls.server, {"bookworm": cls.debian}, "team/scanned")
        cls.sbom = h.build_artifact("application/spdx+json", subject=cls.debian.descriptor(),
                                    annotations={"org.example.kind": "sbom"})
        cls.signature = h.build_artifact("application/vnd.dev.cosign.artifact.sig.v1+json",
                                         subject=cls.debian.descriptor())
        cls.attestation = h.build_artifact("application/vnd.in-toto+json",
                                           subject=cls.debian.descriptor())
        for art in (cls.sbom, cls.signature, cls.attestation):
            h.expect_status(cls.reg.push_image("team/scanned", art), 201)
        sh.wait_scan(anon, "team/scanned", {"imageTag": "bookworm"})
        # images for a lifecycle policy: three "old-" tags and one to keep
        cls.old = [h.build_image(layer_count=1) for _ in range(3)]
        for i, img in enumerate(cls.old):
            h.expect_status(cls.reg.push_image("team/lifecycle", img, tag="old-%d" % i), 201)
            time.sleep(0.01)  # distinct push times, oldest first
        h.expect_status(cls.reg.push_image("team/lifecycle", h.build_image(layer_count=1),
                                           tag="prod"), 201)
        # images for a transition rule (arch-) beside an expire rule (tmp-)
        cls.arch = [h.build_image(layer_count=1) for _ in range(2)]
        for prefix in ("arch", "tmp"):
            for i in range(2):
                img = cls.arch[i] if prefix == "arch" else h.build_image(layer_count=1)
                h.expect_status(cls.reg.push_image("team/archive", img,
                                                   tag="%s-%d" % (prefix, i)), 201)
                time.sleep(0.01)  # distinct push times, oldest first
        cls.admin = e.keys_create(cls.server, "browser-admin")
        cls.reader = e.keys_create(cls.server, "browser-reader", "pull")
        cls.browser = Browser(cls.work)
        cls.addClassCleanup(cls.browser.close)

    def setUp(self):
        super().setUp()
        self.browser.s("DELETE", "/cookie")  # each test starts signed out (this site's)
        self.browser.go("about:blank")  # and on a fresh page: no state of the last test's

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
            for tab, ready in (("/settings", "#set-policy"), ("/lifecycle", "#rule-builder legend")):
                b.go(self.repo_url(self.repo_name, tab))
                b.wait_for(ready)
                overflow = b.script("return document.documentElement.scrollWidth - "
                                    "document.documentElement.clientWidth")
                self.assertLessEqual(overflow, 0, tab)
            b.screenshot("lifecycle-narrow.png")
            b.go(self.repo_url(self.repo_name))
        finally:
            b.s("POST", "/window/rect", {"width": 1280, "height": 1000})
        # no create button; settings and lifecycle shown, but nothing to change them with
        b.go(self.server.base_url + "/ui/#/")
        b.wait_for("#repo-list a", self.repo_name)
        self.assertFalse(b.script("const x = document.getElementById('create-repo'); "
                                  "return !!x && !x.hidden"))
        b.go(self.repo_url(self.repo_name, "/settings"))
        b.wait_for("#read-only", "may read these settings")
        self.assertEqual(b.find_all("#save-mutability, #save-scan, #add-tag, #save-policy, "
                                    "#delete-policy, #delete-repo, #set-tags button"), [])
        self.assertTrue(b.script("return document.getElementById('repo-policy').readOnly && "
                                 "document.getElementById('mutability').disabled && "
                                 "document.getElementById('scan-on-push').disabled"))
        b.screenshot("settings-read-only.png")
        b.go(self.repo_url(self.repo_name, "/lifecycle"))
        b.wait_for("#read-only", "may read this policy")
        self.assertEqual(b.find_all("#apply-lifecycle, #add-rule, #delete-lifecycle, "
                                    "#preview-lifecycle, fieldset.rule button"), [])
        self.assertTrue(b.script("return document.getElementById('lifecycle-json').readOnly"))
        # forcing the requests anyway, with the session's own CSRF token: the API refuses
        denied = b.s("POST", "/execute/async", {"args": [self.repo_name], "script": """
            const [repo, done] = arguments;
            (async () => {
              const s = await (await fetch("/ui/api/session")).json();
              const out = [];
              for (const [op, body] of [
                  ["DeleteRepository", {repositoryName: repo, force: true}],
                  ["PutLifecyclePolicy", {repositoryName: repo, lifecyclePolicyText:
                    JSON.stringify({rules: [{rulePriority: 1, selection: {tagStatus: "any",
                      countType: "imageCountMoreThan", countNumber: 1}, action: {type: "expire"}}]})}],
                  ["SetRepositoryPolicy", {repositoryName: repo, policyText: "{}"}],
                  ["CreateRepository", {repositoryName: "team/forced"}]]) {
                const r = await fetch("/", {method: "POST", body: JSON.stringify(body), headers: {
                  "Content-Type": "application/x-amz-json-1.1", "X-CSRF-Token": s.csrfToken,
                  "X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921." + op}});
                out.push([op, r.status, (await r.json()).__type]);
              }
              done(out);
            })();"""})
        for op, status, typ in denied:
            self.assertEqual((status, typ.split("#")[-1]), (400, "AccessDeniedException"), op)
        ecr = c.ecr_client(self.server, *self.admin)
        self.assertEqual(len(ecr.describe_images(repositoryName=self.repo_name)["imageDetails"]),
                         2)
        self.sign_out()


    def choose(self, select_css, value):
        b = self.browser
        b.click(b.wait_for('%s option[value="%s"]' % (select_css, value)))

    def repo_url(self, repo, tab=""):
        return self.server.base_url + "/ui/#/repo/" + repo.replace("/", "%2F") + tab

    def test_4_create_configure_and_delete_a_repository(self):
        b = self.browser
        ecr = c.ecr_client(self.server, *self.admin)
        b.go(self.server.base_url + "/ui/")
        self.sign_in(*self.admin)
        b.click(b.wait_for("#create-repo"))
        b.type(b.wait_for("#new-repo-name"), "team/created")
        # the API's validation error shows in the form
        self.choose("#new-repo-mutability", "IMMUTABLE_WITH_EXCLUSION")
        b.click(b.wait_for("#form-submit"))
        b.wait_for("dialog .error", "ImageTagMutabilityExclusionFilters can't be null")
        self.choose("#new-repo-mutability", "IMMUTABLE")
        b.click(b.wait_for("#new-repo-scan"))
        b.click(b.wait_for("#form-submit"))
        b.wait_for(".empty", "This repository has no images")
        b.wait_gone("dialog")
        repo = ecr.describe_repositories(repositoryNames=["team/created"])["repositories"][0]
        self.assertEqual(repo["imageTagMutability"], "IMMUTABLE")
        self.assertTrue(repo["imageScanningConfiguration"]["scanOnPush"])

        b.click(b.wait_for('.tabs a[href$="/settings"]'))
        b.wait_for("#set-mutability h2", "Tag mutability")
        # immutable, but "latest" may move
        self.choose("#mutability", "IMMUTABLE_WITH_EXCLUSION")
        b.type(b.wait_for("#mutability-filters"), "latest")
        b.click(b.wait_for("#save-mutability"))
        b.wait_for("#mutability-status", "Saved")
        repo = ecr.describe_repositories(repositoryNames=["team/created"])["repositories"][0]
        self.assertEqual(repo["imageTagMutability"], "IMMUTABLE_WITH_EXCLUSION")
        # (this boto3 may predate the exclusion filters: read them back in the page)
        b.go("about:blank")
        b.go(self.repo_url("team/created", "/settings"))
        b.wait_for("#mutability-filters")
        self.assertEqual(b.script("return [document.getElementById('mutability').value, "
                                  "document.getElementById('mutability-filters').value]"),
                         ["IMMUTABLE_WITH_EXCLUSION", "latest"])
        b.click(b.wait_for("#scan-on-push"))
        b.click(b.wait_for("#save-scan"))
        b.wait_for("#scan-status", "Saved")
        repo = ecr.describe_repositories(repositoryNames=["team/created"])["repositories"][0]
        self.assertFalse(repo["imageScanningConfiguration"]["scanOnPush"])
        # resource tags
        b.type(b.wait_for("#tag-key"), "team")
        b.type(b.wait_for("#tag-value"), "web")
        b.click(b.wait_for("#add-tag"))
        b.wait_for("#set-tags td", "web")
        arn = repo["repositoryArn"]
        self.assertEqual(ecr.list_tags_for_resource(resourceArn=arn)["tags"],
                         [{"Key": "team", "Value": "web"}])
        # a policy the API refuses: its message shows beside the editor
        b.type(b.wait_for("#repo-policy"), '{"Version": "2012-10-17", "Statement": [}')
        b.click(b.wait_for("#save-policy"))
        err = b.text(b.wait_for("#policy-status .error"))
        self.assertIn("Invalid parameter", err)
        policy = {"Version": "2012-10-17", "Statement": [{
            "Sid": "pull", "Effect": "Allow", "Principal": "*",
            "Action": ["ecr:BatchGetImage"]}]}
        b.type(b.wait_for("#repo-policy"), json.dumps(policy))
        b.click(b.wait_for("#save-policy"))
        b.wait_for("#policy-status", "Saved")
        b.wait_for("#delete-policy")  # the page shows the stored policy, which may go
        self.assertIn('"Sid": "pull"',
                      b.script("return document.getElementById('repo-policy').value"))
        got = json.loads(ecr.get_repository_policy(repositoryName="team/created")["policyText"])
        self.assertEqual(got["Statement"][0]["Sid"], "pull")
        b.script("window.scrollTo(0, 0)")
        b.screenshot("settings.png")
        # delete the repository: the confirmation names it
        b.click(b.wait_for("#delete-repo"))
        dialog = b.wait_for("dialog.confirm", "Delete repository team/created?")
        self.assertIn("no images", b.text(dialog))
        b.click(b.wait_for("#confirm-delete"))
        b.wait_for("h1", "Repositories")
        names = [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]]
        self.assertNotIn("team/created", names)
        b.wait_gone("#repo-list a", "team/created")
        self.sign_out()

    def test_5_lifecycle_builder_preview_and_apply(self):
        b = self.browser
        ecr = c.ecr_client(self.server, *self.admin)
        b.go(self.repo_url("team/lifecycle", "/lifecycle"))
        self.sign_in(*self.admin)
        b.wait_for("#rule-builder legend", "Rule 1")
        json_text = lambda: b.script("return document.getElementById('lifecycle-json').value")
        # the builder writes the JSON
        self.choose("#rule-0-status", "tagged")
        self.choose("#rule-0-match", "tagPrefixList")
        b.type(b.wait_for("#rule-0-patterns"), "old-")
        b.type(b.wait_for("#rule-0-description"), "keep one old")
        b.type(b.wait_for("#rule-0-count"), "0")
        doc = json.loads(json_text())
        self.assertEqual(doc["rules"][0]["selection"], {
            "tagStatus": "tagged", "tagPrefixList": ["old-"],
            "countType": "imageCountMoreThan", "countNumber": 0})
        self.assertEqual(doc["rules"][0]["description"], "keep one old")
        # the API's validation error for a count of 0
        b.click(b.wait_for("#preview-lifecycle"))
        err = b.text(b.wait_for("#lifecycle-error .error"))
        self.assertIn("minimum: 1, found: 0", err)
        b.type(b.wait_for("#rule-0-count"), "1")
        # the JSON writes the builder
        doc = json.loads(json_text())
        doc["rules"][0]["description"] = "keep the newest old one"
        b.type(b.wait_for("#lifecycle-json"), json.dumps(doc, indent=2))
        b.wait_for("#builder-note", "stay in step")
        self.assertEqual(b.script("return document.getElementById('rule-0-description').value"),
                         "keep the newest old one")
        b.type(b.wait_for("#lifecycle-json"), "{\"rules\": [")
        b.wait_for("#builder-note", "does not parse")
        b.type(b.wait_for("#lifecycle-json"), json.dumps(doc, indent=2))
        b.wait_for("#rule-0-count")
        # the preview: the two older old- images, by rule 1
        b.click(b.wait_for("#preview-lifecycle"))
        b.wait_for("#preview p", "2 images would expire")
        rows = [b.text(x) for x in b.find_all("#preview tr.expiring")]
        self.assertEqual(len(rows), 2, rows)
        self.assertTrue(all("rule 1: keep the newest old one" in r for r in rows), rows)
        self.assertIn("old-0", rows[0])
        self.assertIn("old-1", rows[1])
        b.screenshot("lifecycle-preview.png")
        # apply, and the images go
        b.click(b.wait_for("#apply-lifecycle"))
        b.wait_for("dialog.confirm", "Apply this lifecycle policy?")
        b.click(b.wait_for("#confirm-delete"))
        b.wait_for("#applied", "Applied")
        self.assertEqual(json.loads(ecr.get_lifecycle_policy(
            repositoryName="team/lifecycle")["lifecyclePolicyText"]), doc)

        def left():
            tags = sorted(t for d in ecr.describe_images(repositoryName="team/lifecycle")[
                "imageDetails"] for t in d.get("imageTags", []))
            return tags if tags == ["old-2", "prod"] else None
        h.wait_until(left, 60, what="the lifecycle job to expire old-0 and old-1")
        b.click(b.wait_for('.tabs a[href="#/repo/team%2Flifecycle"]'))
        b.wait_for("td.tags", "old-2")
        b.wait_gone("td.tags", "old-0")
        self.sign_out()

    def test_5b_lifecycle_transition_rule(self):
        b = self.browser
        ecr = c.ecr_client(self.server, *self.admin)
        b.go(self.repo_url("team/archive", "/lifecycle"))
        self.sign_in(*self.admin)
        b.wait_for("#rule-builder legend", "Rule 1")
        json_text = lambda: b.script("return document.getElementById('lifecycle-json').value")
        # rule 1 archives all but the newest arch- image
        self.choose("#rule-0-status", "tagged")
        self.choose("#rule-0-match", "tagPrefixList")
        b.type(b.wait_for("#rule-0-patterns"), "arch-")
        b.type(b.wait_for("#rule-0-description"), "archive old")
        b.type(b.wait_for("#rule-0-count"), "1")
        self.choose("#rule-0-action", "transition")
        b.wait_for('label[for="rule-0-count-type"]', "Archive when there are")
        # rule 2 expires all but the newest tmp- image
        b.click(b.wait_for("#add-rule"))
        self.choose("#rule-1-status", "tagged")
        self.choose("#rule-1-match", "tagPrefixList")
        b.type(b.wait_for("#rule-1-patterns"), "tmp-")
        b.type(b.wait_for("#rule-1-count"), "1")
        doc = json.loads(json_text())
        self.assertEqual(doc["rules"][0], {
            "rulePriority": 1, "description": "archive old",
            "selection": {"tagStatus": "tagged", "tagPrefixList": ["arch-"],
                          "countType": "imageCountMoreThan", "countNumber": 1},
            "action": {"type": "transition", "targetStorageClass": "archive"}})
        self.assertEqual(doc["rules"][1]["action"], {"type": "expire"})
        # the JSON writes the builder: an archive-class rule with sinceImageTransitioned
        archived_rule = {"rulePriority": 3, "selection": {
            "tagStatus": "any", "storageClass": "archive", "countType": "sinceImageTransitioned",
            "countUnit": "days", "countNumber": 30}, "action": {"type": "expire"}}
        b.type(b.wait_for("#lifecycle-json"),
               json.dumps({"rules": doc["rules"] + [archived_rule]}, indent=2))
        b.wait_for("#rule-2-count")
        value = lambda css: b.script("return document.querySelector(arguments[0]).value", css)
        self.assertEqual(value("#rule-2-storage-class"), "archive")
        self.assertEqual(value("#rule-2-count-type"), "sinceImageTransitioned")
        self.assertEqual(value("#rule-0-action"), "transition")
        self.assertEqual(value("#rule-0-storage-class"), "")
        # the API's validation error (at least 90 days in the archive) shows as before
        b.click(b.wait_for("#preview-lifecycle"))
        self.assertIn("at least 90 days", b.text(b.wait_for("#lifecycle-error .error")))
        b.type(b.wait_for("#rule-2-count"), "90")
        self.assertEqual(json.loads(json_text())["rules"][2]["selection"]["countNumber"], 90)
        # a transition rule with storage class archive is refused too
        self.choose("#rule-2-storage-class", "standard")
        self.assertEqual(json.loads(json_text())["rules"][2]["selection"]["storageClass"],
                         "standard")
        b.click(b.wait_for("#preview-lifecycle"))
        b.wait_for("#lifecycle-error .error", "must be used with storageClass=archive")
        b.click(b.wait_for('button[aria-label="Remove rule 3"]'))
        b.wait_gone("#rule-2-count")
        doc = json.loads(json_text())
        self.assertEqual(len(doc["rules"]), 2)
        # the preview: arch-0 transitions, tmp-0 expires
        b.click(b.wait_for("#preview-lifecycle"))
        b.wait_for("#preview p", "1 image would expire, 1 image would move to archive")
        moving = [b.text(x) for x in b.find_all("#preview tr.transitioning")]
        expiring = [b.text(x) for x in b.find_all("#preview tr.expiring")]
        self.assertEqual(len(moving), 1, moving)
        self.assertIn("arch-0", moving[0])
        self.assertIn("transition to archive", moving[0])
        self.assertIn("rule 1: archive old", moving[0])
        self.assertEqual(len(expiring), 1, expiring)
        self.assertIn("tmp-0", expiring[0])
        self.assertIn("rule 2", expiring[0])
        b.screenshot("lifecycle-transition-preview.png")
        # apply: arch-0 becomes archived, tmp-0 goes
        b.click(b.wait_for("#apply-lifecycle"))
        b.wait_for("dialog.confirm", "Apply this lifecycle policy?")
        b.click(b.wait_for("#confirm-delete"))
        b.wait_for("#applied", "Applied")
        self.assertEqual(json.loads(ecr.get_lifecycle_policy(
            repositoryName="team/archive")["lifecyclePolicyText"]), doc)

        def archived():
            # boto3 1.26 (Debian) does not know filter.imageStatus: a signed raw call
            status, body, _ = e.signed_call(self.server, "DescribeImages", {
                "repositoryName": "team/archive", "filter": {"imageStatus": "ARCHIVED"}},
                *self.admin)
            self.assertEqual(status, 200, body)
            out = body["imageDetails"]
            active = ecr.describe_images(repositoryName="team/archive")["imageDetails"]
            tags = sorted(t for d in active for t in d.get("imageTags", []))
            if [d["imageDigest"] for d in out] == [self.arch[0].digest] and \
                    tags == ["arch-1", "tmp-1"]:
                return out[0]
            return None
        detail = h.wait_until(archived, 60, what="the lifecycle job to archive arch-0")
        self.assertEqual(detail["imageStatus"], "ARCHIVED")
        self.assertEqual(detail["imageTags"], ["arch-0"])
        self.sign_out()

    def test_6_findings_and_referrers(self):
        b = self.browser
        b.go(self.repo_url("team/scanned"))
        self.sign_in(*self.admin)
        # the repository: scan counts, the referrers under their subject
        b.wait_for("td.scan", "1 high")
        rows = [b.text(x) for x in b.find_all("tbody tr")]
        self.assertIn("bookworm", rows[0])
        kinds = sorted(b.text(x) for x in b.find_all("tr.referrer .kind"))
        self.assertEqual(kinds, ["↳ SBOM", "↳ attestation", "↳ signature"])
        b.screenshot("repository-referrers.png")
        # the image: findings, filtered by severity
        b.click(b.wait_for('a[href$="%s"]' % self.debian.digest))
        b.wait_for("#findings h2", "Vulnerabilities")
        b.wait_for("#scan-status", "complete")
        findings = [b.text(x) for x in b.find_all("tr.finding")]
        findings_all = findings
        self.assertEqual(len(findings), 3, findings)
        self.assertTrue(any("CVE-2023-5363" in f and "openssl" in f and
                            "3.0.11-1~deb12u1" in f and "3.0.11-1~deb12u2" in f
                            for f in findings), findings)  # installed, fixed in
        link = b.wait_for('tr.finding a[href="https://www.debian.org/security/2023/dsa-5532"]')
        self.assertEqual(b.text(link), "CVE-2023-5363")
        self.choose("#severity-filter", "MEDIUM")
        b.wait_gone("tr.finding", "CVE-2023-5363")
        findings = [b.text(x) for x in b.find_all("tr.finding")]
        self.assertEqual(len(findings), 1, findings)
        self.assertIn("CVE-2023-4911", findings[0])
        self.choose("#severity-filter", "")
        b.wait_for("tr.finding", "CVE-2023-5363")
        # under ENHANCED scanning the API answers enhancedFindings: the same table
        admin = c.ecr_client(self.server, *self.admin)
        admin.put_registry_scanning_configuration(scanType="ENHANCED", rules=[])
        self.addCleanup(admin.put_registry_scanning_configuration, scanType="BASIC", rules=[])
        b.go("about:blank")
        b.go(self.repo_url("team/scanned"))
        b.wait_for("td.scan", "1 high")
        b.click(b.wait_for('a[href$="%s"]' % self.debian.digest))
        b.wait_for("#scan-status", "complete")
        b.wait_for("tr.finding", "CVE-2023-5363")
        enhanced = [b.text(x) for x in b.find_all("tr.finding")]
        self.assertEqual(enhanced, findings_all, "the same rows from enhancedFindings")
        admin.put_registry_scanning_configuration(scanType="BASIC", rules=[])
        # its referrers, and the way back from one to its subject
        b.wait_for("#referrers td", "SBOM")
        b.wait_for("#referrers td", "org.example.kind: sbom")
        b.wait_for("#referrers td", "attestation")
        b.screenshot("image-findings.png")
        b.click(b.wait_for('#referrers a[href$="%s"]' % self.sbom.digest))
        b.click(b.wait_for("#subject"))
        b.wait_for("#findings h2", "Vulnerabilities")
        self.sign_out()

    def read_clipboard(self):
        return self.browser.s("POST", "/execute/async", {"args": [], "script": """
            const done = arguments[arguments.length - 1];
            navigator.clipboard.readText().then(done, (e) => done("unreadable: " + e));"""})

    def test_8_copy_a_digest_and_delete_an_image(self):
        b = self.browser
        reg = e.AuthRegistry(self.server.base_url, e.basic(*self.admin))
        doomed, kept = h.build_image(layer_count=1), h.build_image(layer_count=1)
        h.expect_status(reg.push_image("team/copy-del", doomed, tag="old"), 201)
        h.expect_status(reg.push_image("team/copy-del", doomed, tag="older"), 201)
        h.expect_status(reg.push_image("team/copy-del", kept, tag="new"), 201)
        b.go(self.repo_url("team/copy-del"))
        # (for this origin: the test reads the clipboard back)
        for name in ("clipboard-read", "clipboard-write"):
            b.s("POST", "/permissions", {"descriptor": {"name": name}, "state": "granted"})
        self.sign_in(*self.admin)
        b.wait_for("td.tags", "older")
        # the digest's Copy button puts the whole digest on the clipboard
        b.click(b.wait_for('button[aria-label="Copy digest"]'))
        b.wait_for('button[aria-label="Copy digest"]', "Copied")
        first = self.read_clipboard()
        self.assertRegex(first, r"^sha256:[0-9a-f]{64}$")
        # where the Clipboard API is refused (a plain-HTTP address other than localhost
        # has none): copied by selection all the same, and focus stays on the button
        b.go(self.server.base_url + "/ui/#/image/team%%2Fcopy-del/%s" % kept.digest)
        b.wait_for("h2", "Layers")
        b.s("POST", "/execute/async", {"args": [], "script": """
            const done = arguments[arguments.length - 1];
            navigator.clipboard.writeText("before").then(() => {
              navigator.clipboard.writeText = () => Promise.reject(new Error("refused"));
              done();
            });"""})
        self.assertEqual(self.read_clipboard(), "before")
        copy = b.wait_for('.facts button[aria-label="Copy digest"]')
        b.click(copy)
        b.wait_for('.facts button[aria-label="Copy digest"]', "Copied")
        self.assertEqual(self.read_clipboard(), kept.digest)
        self.assertEqual(b.script("return document.activeElement.getAttribute('aria-label')"),
                         "Copy digest")
        # delete an image: the confirmation names its digest and every tag that goes
        b.go(self.repo_url("team/copy-del"))
        b.click(b.wait_for('button[aria-label="Delete image %s"]' % doomed.digest))
        dialog = b.text(b.wait_for("dialog.confirm"))
        self.assertIn(doomed.digest[:19], dialog)
        self.assertIn("old", dialog)
        self.assertIn("older", dialog)
        b.click(b.wait_for("#confirm-delete"))
        b.wait_gone("td.tags", "older")
        b.wait_for("td.tags", "new")
        ecr = c.ecr_client(self.server, *self.admin)
        left = [d["imageDigest"] for d in
                ecr.describe_images(repositoryName="team/copy-del")["imageDetails"]]
        self.assertEqual(left, [kept.digest])
        self.sign_out()

    def test_8b_a_name_from_the_address_is_checked(self):
        """The console puts the repository name of its address (#/image/<name>/<digest>)
        into /v2 paths. A name outside the repository grammar now shows the repository
        list; before, ..%2F in it made a link's page send any same-origin GET with the
        session (here GET /v2/_catalog)."""
        b = self.browser
        b.go(self.server.base_url + "/ui/")
        self.sign_in(*self.admin)
        b.wait_for("h1", "Repositories")
        mark = len(self.server.log_text())
        b.go(self.server.base_url + "/ui/#/image/..%2F..%2Fv2%2F_catalog%3Fx%3D/sha256:"
             + "0" * 64)
        b.wait_for("#repo-list a", self.repo_name)
        b.go(self.repo_url(self.repo_name))  # a real name still routes
        b.wait_for("h1", self.repo_name)
        self.assertNotIn("path=/v2/_catalog", self.server.log_text()[mark:])
        self.sign_out()

    def test_9_figures_each_page_shows(self):
        """The columns the issue lists, with the values the APIs hold: the repository list
        (images, tags, size, last push, last pull, scan on push, tag mutability), a
        repository's image rows (size, push and last-pull times), an image's layers (media
        type and size of each) and its config as formatted JSON; and the page calls only
        berth's own APIs on its own origin."""
        b = self.browser
        repo = "team/columns"
        img = h.build_image(layer_count=2, layer_size=3000, compress=False)
        reg = e.AuthRegistry(self.server.base_url, e.basic(*self.admin))
        for tag in ("a", "b"):
            h.expect_status(reg.push_image(repo, img, tag=tag), 201)
        ecr = c.ecr_client(self.server, *self.admin)
        ecr.put_image_scanning_configuration(repositoryName=repo,
                                             imageScanningConfiguration={"scanOnPush": True})
        ecr.put_image_tag_mutability(repositoryName=repo, imageTagMutability="IMMUTABLE")
        h.expect_status(reg.get_manifest(repo, "a", accept=img.media_type), 200)  # a pull
        detail = ecr.describe_images(repositoryName=repo)["imageDetails"][0]
        self.assertIn("lastRecordedPullTime", detail)

        def when(t):
            if not isinstance(t, datetime.datetime):
                t = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
            return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")

        def size(n):
            units, i, v = ["B", "KiB", "MiB", "GiB"], 0, float(n)
            while v >= 1024 and i < len(units) - 1:
                v, i = v / 1024, i + 1
            return ("%d" % n if i == 0 else "%.1f" % v) + " " + units[i]

        cells = lambda css: b.script("return [...document.querySelectorAll(arguments[0])]"
                                     ".map((x) => x.textContent.trim())", css)
        b.go(self.server.base_url + "/ui/")
        self.sign_in(*self.admin)
        b.type(b.wait_for("#repo-search"), repo)
        b.wait_for("#page-status", "of 1")
        self.assertEqual(cells("#repo-list thead th"), [
            "Name ▲", "Images", "Tags", "Size", "Last push", "Last pull", "Scan on push",
            "Tag mutability"])
        listed = b.s("POST", "/execute/async", {"args": [repo], "script": """
            const [repo, done] = arguments;
            fetch("/ui/api/session").then((r) => r.json()).then((s) =>
              fetch("/ui/api/repositories?q=" + encodeURIComponent(repo),
                    {headers: {"X-CSRF-Token": s.csrfToken}}))
              .then((r) => r.json()).then((d) => done(d.repositories[0]));"""})
        self.assertEqual(listed["sizeInBytes"],
                         sum(len(x) for x in img.blobs.values()) + len(img.manifest))
        self.assertEqual(cells("#repo-list tbody tr:first-child > *"), [
            repo, "1", "2", size(listed["sizeInBytes"]), when(listed["lastPushedAt"]),
            when(listed["lastPulledAt"]), "on", "immutable"])
        # the repository: the image's size, push and last-pull times
        b.click(b.wait_for("#repo-list a", repo))
        b.wait_for("td.tags", "b")
        row = cells("tbody tr:first-child > td")
        self.assertEqual(row[2:5], [size(detail["imageSizeInBytes"]),
                                    when(detail["imagePushedAt"]),
                                    when(detail["lastRecordedPullTime"])], row)
        # the image: each layer's media type and size; the config as formatted JSON
        b.go(self.server.base_url + "/ui/#/image/team%%2Fcolumns/%s" % img.digest)
        b.wait_for("h2", "Layers")
        manifest = json.loads(img.manifest)
        layers = [r[2:] for r in b.script(
            "return [...document.querySelectorAll('table')].find((t) => "
            "t.querySelector('th').textContent === '#').querySelectorAll('tbody tr')"
            ".values().map((r) => [...r.children].map((x) => x.textContent)).toArray()")]
        self.assertEqual(layers, [[x["mediaType"], size(x["size"])] for x in manifest["layers"]])
        config = json.loads(img.blobs[img.config_digest])
        shown = b.script("return [...document.querySelectorAll('details')].find((d) => "
                         "d.querySelector('summary').textContent === 'Config')"
                         ".querySelector('pre').textContent")
        self.assertEqual(shown, json.dumps(config, indent=2, ensure_ascii=False))
        # every request the page made: its own files, the ECR API (POST /), /v2 reads and
        # the console's own endpoints, all on berth's origin
        origin = self.server.base_url
        calls = b.script("return performance.getEntriesByType('resource').map((x) => x.name)")
        self.assertTrue(calls)
        allowed = re.compile(r"^/(|ui/(|app\.js|console\.css|favicon\.svg)|"
                             r"ui/api/(session|permissions|repositories|registry|gc)(\?.*)?|"
                             r"v2/.+/(manifests|blobs|referrers)/[^/]+(\?.*)?)$")
        for url in calls:
            self.assertTrue(url.startswith(origin + "/"), url)
            self.assertRegex(url[len(origin):], allowed)
        self.sign_out()

    def assertAccessible(self, page):
        violations = self.browser.accessibility()
        self.assertEqual(violations, [], "axe-core on the %s page" % page)

    def test_7_accessibility(self):
        """axe-core on each page: no serious or critical violation."""
        b = self.browser
        b.go(self.server.base_url + "/ui/")
        b.wait_for("#signin")
        self.assertAccessible("sign-in")
        self.sign_in(*self.admin)
        b.wait_for("#page-status")
        self.assertAccessible("repositories")
        b.click(b.wait_for("#create-repo"))
        b.wait_for("#new-repo-name")
        self.assertAccessible("create-repository dialog")
        b.keys("\ue00c")  # Escape
        b.wait_gone("dialog")
        b.go(self.repo_url("team/scanned"))
        b.wait_for("td.scan", "high")
        self.assertAccessible("repository")
        b.go(self.repo_url("team/scanned", "/settings"))
        b.wait_for("#set-policy")
        self.assertAccessible("settings")
        b.go(self.repo_url("team/scanned", "/lifecycle"))
        b.wait_for("#rule-builder legend")
        b.click(b.wait_for("#preview-lifecycle"))
        b.wait_for("#preview", "expire")
        self.assertAccessible("lifecycle")
        b.go(self.server.base_url + "/ui/#/image/team%%2Fscanned/%s" % self.debian.digest)
        b.wait_for("tr.finding")
        b.wait_for("#referrers td")
        self.assertAccessible("image")
        self.sign_out()
        self.assertAccessible("signed-out")

if __name__ == "__main__":
    unittest.main()
