"""Image scanning with the built-in scanner, end to end: OSV records imported with
`berth vulndb import`, images built here pushed with skopeo into repositories with
scan-on-push, and the findings, counts and statuses read back with /usr/bin/aws and boto3
(including `aws ecr wait image-scan-complete`); StartImageScan's quota and refusals,
pagination, the registry scanning configuration, and `berth scan`."""

import json
import os
import re
import shutil
import tempfile

import clients as c  # first: it cleans the environment botocore reads
import berth_harness as h
import scan_helpers as s


@h.berth_only("the built-in scanner")
class BuiltinScanTest(h.ServerTestCase):
    # a small max_image_bytes, so a test can build an image over it
    server_config = {"scan": {"workers": 2, "max_image_bytes": 96 << 20}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.work = tempfile.mkdtemp(prefix="berth-scan-")
        cls.addClassCleanup(shutil.rmtree, cls.work, True)
        cls.skopeo = c.Skopeo(cls.work)
        cls.ecr = c.ecr_client(cls.server)
        osv = s.write_osv(os.path.join(cls.work, "osv"), s.OSV_RECORDS)
        status, out = h.run_berth(["vulndb", "import", osv, "--root", cls.server.root])
        assert status == 0, out
        cls.import_output = out

    # -- helpers ---------------------------------------------------------------------------------

    def aws(self, *args):
        """`aws ecr ARGS`, unsigned: a clients.AwsResult."""
        return c.aws(self.server, *args)

    def create_repo(self, name, scan_on_push=True, cli=False):
        if cli:
            res = self.aws("create-repository", "--repository-name", name,
                           "--image-scanning-configuration",
                           "scanOnPush=%s" % ("true" if scan_on_push else "false"))
            self.assertEqual(res.rc, 0, res)
            out = res.json()
        else:
            out = self.ecr.create_repository(
                repositoryName=name, imageScanningConfiguration={"scanOnPush": scan_on_push})
        self.assertEqual(out["repository"]["imageScanningConfiguration"]["scanOnPush"],
                         scan_on_push)
        return name

    def wait_cli(self, repo, tag):
        """`aws ecr wait image-scan-complete`: (exit status, stderr). The waiter polls every
        5 s; waiting here first until the scan ended keeps it to its first, immediate poll."""
        s.wait_scan(self.ecr, repo, {"imageTag": tag})
        res = self.aws("wait", "image-scan-complete", "--repository-name", repo,
                       "--image-id", "imageTag=" + tag)
        return res.rc, res.err

    def findings_cli(self, repo, tag, *extra):
        res = self.aws("describe-image-scan-findings", "--repository-name", repo,
                       "--image-id", "imageTag=" + tag, *extra)
        self.assertEqual(res.rc, 0, res)
        return res.json()

    def assertComplete(self, out, findings, counts):
        self.assertEqual(out["imageScanStatus"], {"status": "COMPLETE", "description": s.COMPLETE})
        got = out["imageScanFindings"]
        self.assertEqual(got["findings"], findings)
        self.assertEqual(got["findingSeverityCounts"], counts)
        # the aws CLI prints timestamps as ISO 8601 text
        completed = got["imageScanCompletedAt"]
        updated = got["vulnerabilitySourceUpdatedAt"]
        self.assertRegex(completed, r"^20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d")
        self.assertRegex(updated, r"^20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d")
        self.assertLessEqual(updated, completed)

    def assertFailed(self, repo, tag, description_prefix, exact=False, cli=True):
        if cli:
            status, err = self.wait_cli(repo, tag)
            self.assertNotEqual(status, 0, "the waiter must fail on FAILED")
            self.assertIn("Waiter ImageScanComplete failed", err)
            out = self.findings_cli(repo, tag)
        else:
            out = s.wait_scan(self.ecr, repo, {"imageTag": tag})
        self.assertEqual(out["imageScanStatus"]["status"], "FAILED")
        description = out["imageScanStatus"]["description"]
        if exact:
            self.assertEqual(description, description_prefix)
        else:
            self.assertTrue(description.startswith(description_prefix), description)
        # no findings for a failed scan (the CLI's paginator prints the key as null)
        self.assertIsNone(out.get("imageScanFindings"))
        self.assertEqual(out["repositoryName"], repo)
        resp = self.ecr.describe_image_scan_findings(repositoryName=repo,
                                                     imageId={"imageTag": tag})
        self.assertNotIn("imageScanFindings", resp)
        return description

    # -- the import ------------------------------------------------------------------------------

    def test_vulndb_import_output(self):
        self.assertIn("records stored    %d" % len(s.OSV_RECORDS), self.import_output)
        self.assertIn("invalid files     0", self.import_output)
        status, out = h.run_berth(["vulndb", "import", os.path.join(self.work, "missing"),
                                   "--root", self.server.root])
        self.assertEqual(status, 1, out)
        status, out = h.run_berth(["vulndb", "frobnicate"])
        self.assertEqual(status, 2, out)

    # -- findings --------------------------------------------------------------------------------

    def test_debian_layers_gzip_zstd_uncompressed(self):
        repo = self.create_repo(self.repo(), cli=True)
        images = {"gz": s.debian_image("gzip", "gz"), "zst": s.debian_image("zstd", "zst"),
                  "tar": s.debian_image("none", "tar"), "upgraded": s.debian_upgraded_image()}
        self.skopeo.push(self.server, images, repo)
        status, err = self.wait_cli(repo, "gz")
        self.assertEqual(status, 0, err)
        out = self.findings_cli(repo, "gz")
        self.assertEqual(out["imageId"], {"imageDigest": images["gz"].digest, "imageTag": "gz"})
        self.assertEqual(out["repositoryName"], repo)
        self.assertEqual(out["registryId"], "000000000000")
        self.assertComplete(out, s.DEBIAN_FINDINGS, {"HIGH": 1, "MEDIUM": 1, "UNDEFINED": 1})
        for tag in ("zst", "tar"):
            resp = s.wait_scan(self.ecr, repo, {"imageTag": tag})
            self.assertEqual(resp["imageScanStatus"]["status"], "COMPLETE", tag)
            self.assertEqual(resp["imageId"], {"imageDigest": images[tag].digest, "imageTag": tag})
            self.assertEqual(s.findings_of(resp), s.DEBIAN_FINDINGS, tag)
            self.assertEqual(resp["imageScanFindings"]["findingSeverityCounts"],
                             {"HIGH": 1, "MEDIUM": 1, "UNDEFINED": 1})
        # a later layer upgraded glibc past its fix and installed curl
        status, err = self.wait_cli(repo, "upgraded")
        self.assertEqual(status, 0, err)
        self.assertComplete(self.findings_cli(repo, "upgraded"), s.UPGRADED_FINDINGS,
                            {"CRITICAL": 1, "HIGH": 1, "UNDEFINED": 1})
        # boto3 by digest sees the same
        resp = s.wait_scan(self.ecr, repo, {"imageDigest": images["upgraded"].digest})
        self.assertEqual(resp["imageId"], {"imageDigest": images["upgraded"].digest})
        self.assertEqual(s.findings_of(resp), s.UPGRADED_FINDINGS)
        # DescribeImages summarises every image's scan
        details = self.ecr.describe_images(repositoryName=repo)["imageDetails"]
        self.assertEqual(len(details), 4)
        for detail in details:
            tag = detail["imageTags"][0]
            self.assertEqual(detail["imageScanStatus"],
                             {"status": "COMPLETE", "description": s.COMPLETE}, tag)
            summary = detail["imageScanFindingsSummary"]
            self.assertEqual(summary["findingSeverityCounts"],
                             {"CRITICAL": 1, "HIGH": 1, "UNDEFINED": 1} if tag == "upgraded"
                             else {"HIGH": 1, "MEDIUM": 1, "UNDEFINED": 1}, tag)
            self.assertEqual(sorted(summary), ["findingSeverityCounts", "imageScanCompletedAt",
                                               "vulnerabilitySourceUpdatedAt"])
            if tag == "upgraded":
                self.assertEqual(summary["imageScanCompletedAt"],
                                 resp["imageScanFindings"]["imageScanCompletedAt"])
                self.assertEqual(summary["vulnerabilitySourceUpdatedAt"],
                                 resp["imageScanFindings"]["vulnerabilitySourceUpdatedAt"])
        res = self.aws("describe-images", "--repository-name", repo,
                       "--image-ids", "imageTag=upgraded")
        self.assertEqual(res.rc, 0, res)
        self.assertEqual(res.json()["imageDetails"][0]["imageScanFindingsSummary"]
                         ["findingSeverityCounts"], {"CRITICAL": 1, "HIGH": 1, "UNDEFINED": 1})

    def test_alpine_apk_database(self):
        repo = self.create_repo(self.repo())
        self.skopeo.push(self.server, {"3.19": s.alpine_image()}, repo)
        resp = s.wait_scan(self.ecr, repo, {"imageTag": "3.19"})
        self.assertEqual(resp["imageScanStatus"], {"status": "COMPLETE", "description": s.COMPLETE})
        self.assertEqual(s.findings_of(resp), s.ALPINE_FINDINGS)
        self.assertEqual(resp["imageScanFindings"]["findingSeverityCounts"], {"HIGH": 1, "LOW": 1})

    def test_unsupported_images_fail(self):
        repo = self.create_repo(self.repo())
        self.skopeo.push(self.server, {"scratch": s.scratch_image(),
                                       "whiteout": s.debian_whiteout_image()}, repo)
        # FROM scratch, and an image whose package database a later layer deleted
        self.assertFailed(repo, "scratch", s.UNSUPPORTED, exact=True)
        self.assertFailed(repo, "whiteout", s.UNSUPPORTED, exact=True, cli=False)
        detail = self.ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "scratch"}])
        detail = detail["imageDetails"][0]
        self.assertEqual(detail["imageScanStatus"], {"status": "FAILED",
                                                     "description": s.UNSUPPORTED})
        self.assertNotIn("imageScanFindingsSummary", detail)

    def test_broken_layers_fail_with_a_reason(self):
        repo = self.create_repo(self.repo())
        for tag, img in (("truncated", s.truncated_image()), ("not-tar", s.not_tar_image())):
            # skopeo would refuse to copy a corrupt gzip layer; push over HTTP
            self.push_image_ok(repo, img, tag=tag)
            self.assertFailed(repo, tag, "LayerError: layer 1 of 1: ", cli=tag == "not-tar")
        # a tar bomb, and a package database over the 64 MiB the scanner keeps
        self.push_image_ok(repo, s.bomb_image(128 << 20), tag="bomb")
        self.assertFailed(repo, "bomb", "ImageTooLargeError: layer 1 of 1: image expands to "
                                        "more than 100663296 bytes (scan.max_image_bytes)",
                          cli=False)
        self.push_image_ok(repo, s.oversized_dpkg_image(65 << 20), tag="oversized")
        description = self.assertFailed(repo, "oversized", "ImageTooLargeError: ", cli=False)
        self.assertIn("/var/lib/dpkg/status", description)
        # the workers are still there
        self.skopeo.push(self.server, {"ok": s.debian_image("gzip", "after-broken")}, repo)
        self.assertEqual(s.findings_of(s.wait_scan(self.ecr, repo, {"imageTag": "ok"})),
                         s.DEBIAN_FINDINGS)

    # -- StartImageScan and the API --------------------------------------------------------------

    def test_manual_scan_quota_and_errors(self):
        repo = self.repo()
        # auto-created by the push: no scan-on-push
        self.skopeo.push(self.server, {"v1": s.debian_image("gzip", "manual")}, repo)
        ecr = self.ecr
        with self.assertRaises(ecr.exceptions.ScanNotFoundException) as cm:
            ecr.describe_image_scan_findings(repositoryName=repo, imageId={"imageTag": "v1"})
        self.assertIn("Image scan does not exist for the image", str(cm.exception))
        # never scanned: DescribeImages has no scan members
        detail = ecr.describe_images(repositoryName=repo)["imageDetails"][0]
        self.assertNotIn("imageScanStatus", detail)
        self.assertNotIn("imageScanFindingsSummary", detail)
        resp = ecr.start_image_scan(repositoryName=repo, imageId={"imageTag": "v1"})
        self.assertEqual(resp["imageScanStatus"], {"status": "IN_PROGRESS"})
        self.assertEqual(resp["repositoryName"], repo)
        self.assertEqual(resp["imageId"]["imageTag"], "v1")
        self.assertTrue(resp["imageId"]["imageDigest"].startswith("sha256:"))
        done = s.wait_scan(ecr, repo, {"imageTag": "v1"})
        self.assertEqual(s.findings_of(done), s.DEBIAN_FINDINGS)
        # one scan per image per scan.quota_seconds (a day by default)
        with self.assertRaises(ecr.exceptions.LimitExceededException) as cm:
            ecr.start_image_scan(repositoryName=repo, imageId={"imageTag": "v1"})
        self.assertIn("The scan quota per image has been exceeded", str(cm.exception))
        with self.assertRaises(ecr.exceptions.ImageNotFoundException):
            ecr.start_image_scan(repositoryName=repo, imageId={"imageTag": "nope"})
        with self.assertRaises(ecr.exceptions.ImageNotFoundException):
            ecr.describe_image_scan_findings(repositoryName=repo,
                                             imageId={"imageDigest": "sha256:" + "0" * 64})
        with self.assertRaises(ecr.exceptions.ImageNotFoundException):
            # tag and digest that disagree
            ecr.start_image_scan(repositoryName=repo, imageId={
                "imageTag": "v1", "imageDigest": "sha256:" + "1" * 64})
        with self.assertRaises(ecr.exceptions.RepositoryNotFoundException):
            ecr.start_image_scan(repositoryName="itest/no-such-repo", imageId={"imageTag": "v1"})
        with self.assertRaises(ecr.exceptions.InvalidParameterException):
            ecr.describe_image_scan_findings(repositoryName=repo,
                                             imageId={"imageDigest": "not a digest"})
        with self.assertRaises(ecr.exceptions.InvalidParameterException):
            ecr.start_image_scan(repositoryName=repo, imageId={})

    def test_index_is_not_scanned(self):
        repo = self.create_repo(self.repo())
        children = [s.debian_image("gzip", "amd64"), s.alpine_image()]
        index = h.Index(children, platforms=[{"os": "linux", "architecture": "amd64"},
                                             {"os": "linux", "architecture": "arm64"}])
        self.skopeo.push(self.server, {"multi": index}, repo)
        ecr = self.ecr
        with self.assertRaises(ecr.exceptions.UnsupportedImageTypeException):
            ecr.start_image_scan(repositoryName=repo, imageId={"imageTag": "multi"})
        with self.assertRaises(ecr.exceptions.ScanNotFoundException):
            ecr.describe_image_scan_findings(repositoryName=repo, imageId={"imageTag": "multi"})
        # its images were stored in a scan-on-push repository: they are scanned
        self.assertEqual(s.findings_of(s.wait_scan(ecr, repo, {"imageDigest": children[0].digest})),
                         s.DEBIAN_FINDINGS)
        self.assertEqual(s.findings_of(s.wait_scan(ecr, repo, {"imageDigest": children[1].digest})),
                         s.ALPINE_FINDINGS)

    def test_findings_pagination(self):
        repo = self.create_repo(self.repo())
        self.skopeo.push(self.server, {"v": s.debian_upgraded_image()}, repo)
        first = s.wait_scan(self.ecr, repo, {"imageTag": "v"})
        page = self.ecr.describe_image_scan_findings(repositoryName=repo, imageId={"imageTag": "v"},
                                                     maxResults=1)
        self.assertEqual(s.findings_of(page), s.UPGRADED_FINDINGS[:1])
        # counts are over every finding, not the page
        self.assertEqual(page["imageScanFindings"]["findingSeverityCounts"],
                         {"CRITICAL": 1, "HIGH": 1, "UNDEFINED": 1})
        self.assertIn("nextToken", page)
        seen = []
        tokens = set()
        for resp in self.ecr.get_paginator("describe_image_scan_findings").paginate(
                repositoryName=repo, imageId={"imageTag": "v"},
                PaginationConfig={"PageSize": 1}):
            seen += s.findings_of(resp)
            if "nextToken" in resp:
                self.assertNotIn(resp["nextToken"], tokens)
                tokens.add(resp["nextToken"])
        self.assertEqual(seen, s.UPGRADED_FINDINGS)
        self.assertNotIn("nextToken", first)
        # the aws CLI follows the tokens itself
        out = self.findings_cli(repo, "v", "--page-size", "1")
        self.assertEqual(out["imageScanFindings"]["findings"], s.UPGRADED_FINDINGS)
        with self.assertRaises(self.ecr.exceptions.InvalidParameterException):
            self.ecr.describe_image_scan_findings(repositoryName=repo, imageId={"imageTag": "v"},
                                                  nextToken="garbage")

    # -- the registry scanning configuration -----------------------------------------------------

    def test_registry_scanning_configuration(self):
        ecr = self.ecr
        self.addCleanup(ecr.put_registry_scanning_configuration, scanType="BASIC", rules=[])
        got = ecr.get_registry_scanning_configuration()
        self.assertEqual(got["scanningConfiguration"], {"scanType": "BASIC", "rules": []})
        self.assertEqual(got["registryId"], "000000000000")
        rules = [{"scanFrequency": "SCAN_ON_PUSH",
                  "repositoryFilters": [{"filter": "itest/filtered-*", "filterType": "WILDCARD"}]}]
        resp = ecr.put_registry_scanning_configuration(scanType="BASIC", rules=rules)
        self.assertEqual(resp["registryScanningConfiguration"],
                         {"scanType": "BASIC", "rules": rules})
        self.assertEqual(ecr.get_registry_scanning_configuration()["scanningConfiguration"],
                         {"scanType": "BASIC", "rules": rules})

        flagged = self.create_repo(self.repo())
        filtered = "itest/filtered-%d" % os.getpid()
        plain = self.create_repo(self.repo(), scan_on_push=False)
        self.create_repo(filtered, scan_on_push=False)
        resp = ecr.batch_get_repository_scanning_configuration(
            repositoryNames=[flagged, filtered, plain, "itest/missing"])
        by_name = {c["repositoryName"]: c for c in resp["scanningConfigurations"]}
        self.assertEqual(by_name[flagged]["scanFrequency"], "SCAN_ON_PUSH")
        self.assertTrue(by_name[flagged]["scanOnPush"])
        self.assertEqual(by_name[flagged]["appliedScanFilters"], [])
        self.assertEqual(by_name[filtered]["scanFrequency"], "SCAN_ON_PUSH")
        self.assertEqual(by_name[filtered]["appliedScanFilters"],
                         [{"filter": "itest/filtered-*", "filterType": "WILDCARD"}])
        self.assertEqual(by_name[plain]["scanFrequency"], "MANUAL")
        self.assertFalse(by_name[plain]["scanOnPush"])
        self.assertEqual(by_name[plain]["repositoryArn"],
                         "arn:aws:ecr:us-east-1:000000000000:repository/" + plain)
        self.assertEqual(resp["failures"], [{"repositoryName": "itest/missing",
                                             "failureCode": "REPOSITORY_NOT_FOUND",
                                             "failureReason": "REPOSITORY_NOT_FOUND"}])

        # a push into the filtered repository is scanned; into the plain one it is not
        self.skopeo.push(self.server, {"v": s.debian_image("gzip", "filtered")}, filtered)
        self.skopeo.push(self.server, {"v": s.debian_image("gzip", "plain")}, plain)
        self.assertEqual(s.findings_of(s.wait_scan(ecr, filtered, {"imageTag": "v"})),
                         s.DEBIAN_FINDINGS)
        with self.assertRaises(ecr.exceptions.ScanNotFoundException):
            ecr.describe_image_scan_findings(repositoryName=plain, imageId={"imageTag": "v"})

        # validation
        bad = [
            dict(scanType="BASIC", rules=[{"scanFrequency": "CONTINUOUS_SCAN",
                                           "repositoryFilters": []}]),
            dict(scanType="BASIC", rules=[{"scanFrequency": "SCAN_ON_PUSH", "repositoryFilters": [
                {"filter": "Upper/*", "filterType": "WILDCARD"}]}]),
            dict(scanType="BASIC", rules=[{"scanFrequency": "SCAN_ON_PUSH", "repositoryFilters": [
                {"filter": "a//b", "filterType": "WILDCARD"}]}]),
            dict(scanType="BASIC", rules=[{"scanFrequency": "SCAN_ON_PUSH",
                                           "repositoryFilters": []}] * 2),
            dict(scanType="FANCY"),
        ]
        for kwargs in bad:
            with self.assertRaises(ecr.exceptions.InvalidParameterException, msg=str(kwargs)):
                ecr.put_registry_scanning_configuration(**kwargs)
        # the configuration is unchanged by the refused calls
        self.assertEqual(ecr.get_registry_scanning_configuration()["scanningConfiguration"],
                         {"scanType": "BASIC", "rules": rules})
        with self.assertRaises(ecr.exceptions.InvalidParameterException):
            ecr.batch_get_repository_scanning_configuration(repositoryNames=["Bad Name"])

    # -- berth scan ------------------------------------------------------------------------------

    def test_berth_scan_command(self):
        repo = self.repo()
        upgraded = s.debian_upgraded_image()
        self.skopeo.push(self.server, {"v": upgraded, "scratch": s.scratch_image()}, repo)
        status, out = h.run_berth(["scan", repo + ":v", "--root", self.server.root])
        self.assertEqual(status, 0, out)
        lines = out.splitlines()
        self.assertIn("status      COMPLETE", lines)
        rows = [line.split() for line in lines if line.split()[:1] in (
            ["CRITICAL"], ["HIGH"], ["UNDEFINED"])]
        self.assertEqual(rows, [["CRITICAL", "CVE-2023-38545", "curl", "7.88.1-10+deb12u4", "9.8"],
                                ["HIGH", "CVE-2023-5363", "openssl", "3.0.11-1~deb12u1", "7.5"],
                                ["UNDEFINED", "CVE-2023-45853", "zlib", "1:1.2.13.dfsg-1"]])
        self.assertIn("3 findings: 1 CRITICAL, 1 HIGH, 1 UNDEFINED", out)

        status, out = h.run_berth(["scan", "%s@%s" % (repo, upgraded.digest), "--json",
                                   "--root", self.server.root])
        self.assertEqual(status, 0, out)
        doc = json.loads(out[out.index("{"):out.rindex("}") + 1])
        self.assertEqual(doc["imageId"], {"imageDigest": upgraded.digest})
        self.assertEqual(doc["imageScanStatus"]["status"], "COMPLETE")
        self.assertEqual(doc["imageScanFindings"]["findings"], s.UPGRADED_FINDINGS)
        self.assertEqual(doc["imageScanFindings"]["findingSeverityCounts"],
                         {"CRITICAL": 1, "HIGH": 1, "UNDEFINED": 1})

        # the result is the image's scan as the API reports it (no quota charged)
        resp = self.ecr.describe_image_scan_findings(repositoryName=repo, imageId={"imageTag": "v"})
        self.assertEqual(s.findings_of(resp), s.UPGRADED_FINDINGS)
        self.ecr.start_image_scan(repositoryName=repo, imageId={"imageTag": "v"})

        status, out = h.run_berth(["scan", repo + ":scratch", "--root", self.server.root])
        self.assertEqual(status, 1, out)
        self.assertIn("status      FAILED", out)
        self.assertIn(s.UNSUPPORTED, out)
        for args, want in (([repo + ":missing"], 1), (["itest/none:v"], 1), (["noref"], 2),
                           ([], 2), ([repo + ":v", "--bogus"], 2)):
            status, out = h.run_berth(["scan"] + args + ["--root", self.server.root])
            self.assertEqual(status, want, "%s: %s" % (args, out))


@h.berth_only("the scanning operations' authorization")
class ScanAuthorizationTest(h.ServerTestCase):
    """With access keys, the scanning operations are authorized like every other:
    ecr:<Operation> on the repository (each one, for the batch) or on the registry."""

    def key(self, *args):
        status, out = h.run_berth(["keys", "create"] + list(args) + ["--root", self.server.root])
        self.assertEqual(status, 0, out)
        found = dict(re.findall(r"(AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY)=(\S+)", out))
        return c.ecr_client(self.server, found["AWS_ACCESS_KEY_ID"],
                            found["AWS_SECRET_ACCESS_KEY"])

    def test_operations_are_authorized(self):
        admin = self.key("admin")
        reader = self.key("reader", "pull:other/*")
        admin.create_repository(repositoryName="team/app",
                                imageScanningConfiguration={"scanOnPush": True})
        self.assertEqual(admin.batch_get_repository_scanning_configuration(
            repositoryNames=["team/app"])["scanningConfigurations"][0]["scanFrequency"],
            "SCAN_ON_PUSH")
        with self.assertRaises(admin.exceptions.ImageNotFoundException):
            admin.start_image_scan(repositoryName="team/app", imageId={"imageTag": "v"})
        calls = [
            lambda: reader.batch_get_repository_scanning_configuration(
                repositoryNames=["other/x", "team/app"]),
            lambda: reader.put_registry_scanning_configuration(scanType="BASIC", rules=[]),
            lambda: reader.start_image_scan(repositoryName="team/app", imageId={"imageTag": "v"}),
            lambda: reader.describe_image_scan_findings(repositoryName="team/app",
                                                        imageId={"imageTag": "v"}),
        ]
        for call in calls:
            with self.assertRaises(reader.exceptions.ClientError) as cm:
                call()
            self.assertEqual(cm.exception.response["Error"]["Code"], "AccessDeniedException")


if __name__ == "__main__":
    h.main()
