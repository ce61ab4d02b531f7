# berth-python: modern
"""Enhanced scanning's findings shape: with the registry scanning configuration's scanType
ENHANCED, DescribeImageScanFindings answers enhancedFindings (Inspector's
EnhancedImageScanFinding: packageVulnerabilityDetails with the vulnerable package (its
packageManager, epoch, version, release, arch and fixedInVersion), fixAvailable YES/NO,
score, severity, title, resources with the image's architecture and platform) from the built-in
scanner's findings, read with the machine image's boto3 and AWS CLI v1 (botocore 1.43 knows
the shape); BASIC answers the basic findings of the same scan."""

import os
import shutil
import tempfile

import berth_harness as h
import ecr_helpers as e
import scan_helpers as s


def package(finding):
    """(name, version, fixed version or None) from a basic finding's attributes."""
    attrs = {a["key"]: a["value"] for a in finding["attributes"]}
    return attrs["package_name"], attrs["package_version"], attrs.get("fixed_in_version")


def split(version):
    """A dpkg version as Inspector reports it: (epoch, upstream version, release)."""
    epoch, _, rest = version.rpartition(":")
    upstream, _, release = rest.rpartition("-")
    return int(epoch or 0), upstream, release


def expected(finding):
    """The members of the enhanced finding that berth derives from a basic one (the
    test's Debian packages are all amd64)."""
    name, version, fixed = package(finding)
    epoch, upstream, release = split(version)
    pkg = {"name": name, "version": upstream, "epoch": epoch, "release": release,
           "arch": "AMD64", "packageManager": "OS"}
    if fixed:
        pkg["fixedInVersion"] = fixed
    return {
        "title": "%s - %s" % (finding["name"], name),
        "severity": "UNTRIAGED" if finding["severity"] == "UNDEFINED" else finding["severity"],
        "fixAvailable": "YES" if fixed else "NO",
        "vulnerabilityId": finding["name"],
        "vulnerablePackages": [pkg],
    }


def summary(enhanced):
    return {
        "title": enhanced["title"],
        "severity": enhanced["severity"],
        "fixAvailable": enhanced["fixAvailable"],
        "vulnerabilityId": enhanced["packageVulnerabilityDetails"]["vulnerabilityId"],
        "vulnerablePackages": enhanced["packageVulnerabilityDetails"]["vulnerablePackages"],
    }


@h.berth_only("the built-in scanner")
class EnhancedFindingsTest(e.ModernEcrTestCase):
    server_config = {"scan": {"workers": 1}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.work = tempfile.mkdtemp(prefix="berth-enhanced-")
        cls.addClassCleanup(shutil.rmtree, cls.work, True)
        osv = s.write_osv(os.path.join(cls.work, "osv"), s.OSV_RECORDS)
        rc, out = h.run_berth(["vulndb", "import", osv], server=cls.server, timeout=120)
        assert rc == 0, out

    def scan_type(self, scan_type):
        self.ecr.put_registry_scanning_configuration(scanType=scan_type, rules=[{
            "scanFrequency": "SCAN_ON_PUSH",
            "repositoryFilters": [{"filter": "*", "filterType": "WILDCARD"}]}])

    def test_enhanced_findings(self):
        self.addCleanup(self.scan_type, "BASIC")
        self.scan_type("ENHANCED")
        repo = self.create_repo()
        image = s.debian_image("gzip", "enhanced")
        self.push(repo, image, tag="v1")
        out = s.wait_scan(self.ecr, repo, {"imageTag": "v1"})
        self.assertEqual(out["imageScanStatus"]["status"], "COMPLETE", out)
        got = out["imageScanFindings"]
        self.assertNotIn("findings", got)
        self.assertEqual(got["findingSeverityCounts"], {"HIGH": 1, "MEDIUM": 1, "UNDEFINED": 1})
        enhanced = got["enhancedFindings"]
        self.assertEqual([summary(f) for f in enhanced],
                         [expected(f) for f in s.DEBIAN_FINDINGS])
        openssl, glibc, zlib = enhanced
        # fixed versions known for openssl and glibc (YES), none for zlib (NO)
        self.assertEqual([f["fixAvailable"] for f in enhanced], ["YES", "YES", "NO"])
        self.assertEqual(openssl["packageVulnerabilityDetails"]["vulnerablePackages"][0]
                         ["fixedInVersion"], "3.0.11-1~deb12u2")
        self.assertNotIn("fixedInVersion",
                         zlib["packageVulnerabilityDetails"]["vulnerablePackages"][0])
        self.assertEqual(openssl["score"], 7.5)
        self.assertEqual(openssl["packageVulnerabilityDetails"]["cvss"],
                         [{"baseScore": 7.5, "scoringVector": s.V3_HIGH, "version": "3.1"}])
        self.assertEqual(openssl["scoreDetails"]["cvss"]["scoringVector"], s.V3_HIGH)
        self.assertNotIn("score", glibc)
        self.assertEqual(openssl["remediation"]["recommendation"]["text"],
                         "Upgrade openssl to version 3.0.11-1~deb12u2 or later.")
        self.assertEqual(openssl["packageVulnerabilityDetails"]["sourceUrl"],
                         "https://www.debian.org/security/2023/dsa-5532")
        for f in enhanced:
            self.assertEqual((f["status"], f["type"], f["awsAccountId"]),
                             ("ACTIVE", "PACKAGE_VULNERABILITY", e.REGISTRY_ID))
            self.assertRegex(f["findingArn"],
                             r"^arn:aws:inspector2:us-east-1:%s:finding/[0-9a-f]{32}$"
                             % e.REGISTRY_ID)
            self.assertEqual(f["lastObservedAt"], got["imageScanCompletedAt"])
            self.assertNotIn("exploitAvailable", f)  # berth has no exploit data
            resource, = f["resources"]
            self.assertEqual(resource["type"], "AWS_ECR_CONTAINER_IMAGE")
            self.assertEqual(resource["id"], "%s/%s" % (self.arn(repo), image.digest))
            self.assertEqual(resource["details"]["awsEcrContainerImage"]["imageHash"],
                             image.digest)
            self.assertEqual(resource["details"]["awsEcrContainerImage"]["imageTags"], ["v1"])
            # the image config's architecture, the scanned OS as Inspector names it
            self.assertEqual(resource["details"]["awsEcrContainerImage"]["architecture"],
                             "amd64")
            self.assertEqual(resource["details"]["awsEcrContainerImage"]["platform"],
                             "DEBIAN_12")
        self.assertEqual(len({f["findingArn"] for f in enhanced}), 3)
        # zlib's Debian version has an epoch: 1:1.2.13.dfsg-1
        self.assertEqual({k: zlib["packageVulnerabilityDetails"]["vulnerablePackages"][0][k]
                          for k in ("epoch", "version", "release")},
                         {"epoch": 1, "version": "1.2.13.dfsg", "release": "1"})

        # pages of enhancedFindings: boto3 by hand, the CLI's paginator by itself
        page = self.ecr.describe_image_scan_findings(repositoryName=repo,
                                                     imageId={"imageTag": "v1"}, maxResults=2)
        self.assertEqual(page["imageScanFindings"]["enhancedFindings"], enhanced[:2])
        rest = self.ecr.describe_image_scan_findings(repositoryName=repo,
                                                     imageId={"imageTag": "v1"},
                                                     nextToken=page["nextToken"])
        self.assertEqual(rest["imageScanFindings"]["enhancedFindings"], enhanced[2:])
        self.assertNotIn("nextToken", rest)
        cli = self.aws("describe-image-scan-findings", "--repository-name", repo,
                       "--image-id", "imageTag=v1", "--page-size", "1")
        cli_findings = cli["imageScanFindings"]["enhancedFindings"]
        self.assertEqual([summary(f) for f in cli_findings],
                         [expected(f) for f in s.DEBIAN_FINDINGS])
        self.assertEqual([f["fixAvailable"] for f in cli_findings], ["YES", "YES", "NO"])
        self.assertEqual(cli_findings[0]["score"], 7.5)
        text = self.aws_text("describe-image-scan-findings", "--repository-name", repo,
                             "--image-id", "imageTag=v1", "--query",
                             "imageScanFindings.enhancedFindings[?fixAvailable=='YES']"
                             ".packageVulnerabilityDetails.vulnerablePackages[0].fixedInVersion")
        self.assertEqual(text.split(), ["3.0.11-1~deb12u2", "2.36-9+deb12u3"])
        got = self.aws("describe-image-scan-findings", "--repository-name", repo,
                       "--image-id", "imageTag=v1", "--query",
                       "imageScanFindings.enhancedFindings[].[packageVulnerabilityDetails"
                       ".vulnerablePackages[0].[packageManager, arch, epoch, release], "
                       "resources[0].details.awsEcrContainerImage.[architecture, platform]]")
        self.assertEqual(got, [[["OS", "AMD64", 0, "1~deb12u1"], ["amd64", "DEBIAN_12"]],
                               [["OS", "AMD64", 0, "9+deb12u1"], ["amd64", "DEBIAN_12"]],
                               [["OS", "AMD64", 1, "1"], ["amd64", "DEBIAN_12"]]])

        # BASIC: the same scan in the basic shape
        self.scan_type("BASIC")
        out = self.ecr.describe_image_scan_findings(repositoryName=repo,
                                                    imageId={"imageTag": "v1"})
        self.assertNotIn("enhancedFindings", out["imageScanFindings"])
        self.assertEqual(s.findings_of(out), s.DEBIAN_FINDINGS)


if __name__ == "__main__":
    h.main()
