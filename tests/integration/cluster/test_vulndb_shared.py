# berth-python: modern
"""One vulnerability database for the replicas (docs/scale-out.md, "Vulnerability
scanning"): two `berth serve` replicas sharing PostgreSQL and S3 (cluster.py).
`berth vulndb import` on one replica publishes the database as a blob and a generation
row; the other scans with it without an import of its own, and both give the same
findings. A new generation is announced (PostgreSQL NOTIFY): every replica installs it at
once, with its poll an hour away. A continuous-scan import rescans each image once for the cluster. A download
whose bytes do not match the generation's digest (the object overwritten in the bucket)
is refused and the replica keeps scanning with the generation it has. A replica started
after the imports, on an empty root, downloads the current generation at start and scans
with it. The console's registry page shows the shared generation on every replica."""
# berth-suite: cluster

import json
import os
import re
import shutil
import tempfile
import unittest

import clients as c  # first: it cleans the environment botocore reads
import auth_helpers as a
import berth_harness as h
import scan_helpers as s
from cluster import PREFIX, Cluster, ClusterTestCase

WAIT = 120

# a record of generation 3 only: bash below a fix that does not exist yet
OSV_GEN3 = {
    "DEBIAN-CVE-2099-0001.json": {
        "id": "DEBIAN-CVE-2099-0001", "upstream": ["CVE-2099-0001"],
        "summary": "bash from the future", "database_specific": {"severity": "high"},
        "affected": [{"package": {"ecosystem": "Debian:12", "name": "bash"},
                      "ranges": [{"type": "ECOSYSTEM", "events": [
                          {"introduced": "0"}, {"fixed": "9.9-1"}]}]}],
    },
}


def finding_names(resp):
    """The findings' names, basic or enhanced (CONTINUOUS_SCAN is ENHANCED)."""
    return sorted(name for name, _ in s.names_of(resp))


@unittest.skipUnless(h.IS_BERTH, "berth's replicas")
class SharedVulndbTest(ClusterTestCase):
    @classmethod
    def setUpClass(cls):
        c.require_modern()
        cls.work = tempfile.mkdtemp(prefix="berth-vulndb-shared-")
        cls.addClassCleanup(shutil.rmtree, cls.work, True)
        # no poll during the tests: a replica installs a new generation at start and
        # before a scan, which is what the tests see
        cls.cluster = Cluster(replicas=2, config={
            "scan": {"workers": 1, "vulndb_poll_seconds": 3600},
            "gc": {"interval_seconds": 3600},
        })
        cls.addClassCleanup(cls.cluster.stop)
        cls.cluster.start()
        cls.replicas = cls.cluster.replicas
        cls.admin = a.keys_create(cls.replicas[0], "vulndb-admin")
        cls.ecr = [c.ecr_client(r, *cls.admin) for r in cls.replicas]

    # -- helpers --------------------------------------------------------------------------------

    def import_on(self, i, records, name):
        osv = s.write_osv(os.path.join(self.work, name), records)
        status, out = h.run_berth(["vulndb", "import", osv], server=self.replicas[i],
                                  timeout=120)
        self.assertEqual(status, 0, out)
        m = re.search(r"shared vulnerability database: generation (\d+), (sha256:[0-9a-f]{64})",
                      out)
        self.assertIsNotNone(m, out)
        return int(m.group(1)), m.group(2)

    def push(self, i, repo, image, tag="v1"):
        reg = a.AuthRegistry(self.replicas[i].base_url, a.basic(*self.admin))
        h.expect_status(reg.push_image(repo, image, tag=tag), 201)

    def create_repo(self, repo, scan_on_push=True):
        self.ecr[0].create_repository(
            repositoryName=repo, imageScanningConfiguration={"scanOnPush": scan_on_push})

    def findings(self, i, repo, tag="v1"):
        return s.wait_scan(self.ecr[i], repo, {"imageTag": tag}, timeout=WAIT)

    def installed(self, i):
        path = os.path.join(self.replicas[i].root, "vulndb-shared.digest")
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return f.read().strip()

    def recorded(self):
        """Every replica's event=scan_recorded lines."""
        return [line for r in self.replicas for line in r.log_text().splitlines()
                if "event=scan_recorded" in line]

    def console(self, i):
        r = self.replicas[i].registry()
        resp = r.request("POST", "/ui/api/session", headers={"Content-Type": "application/json"},
                         body=json.dumps({"accessKeyId": self.admin[0],
                                          "secretAccessKey": self.admin[1]}).encode())
        self.assertEqual(resp.status, 200, resp.describe())
        cookie = (resp.header("Set-Cookie") or "").split(";")[0]
        doc = r.request("GET", "/ui/api/registry",
                        headers={"Cookie": cookie, "X-CSRF-Token": resp.json()["csrfToken"]})
        self.assertEqual(doc.status, 200, doc.describe())
        return doc.json()["scan"]["database"]

    # -- tests ----------------------------------------------------------------------------------

    def test_1_import_on_one_scan_on_the_other(self):
        gen, digest = self.import_on(0, s.OSV_RECORDS, "gen1")
        self.assertEqual(gen, 1)
        self.cluster.gen1 = digest
        # nothing was imported into replica 1's root
        self.assertFalse(os.path.exists(os.path.join(self.replicas[1].root, "vulndb.db")))
        self.create_repo("shared/app")
        # the scan runs on either replica (the cluster's queue); each replica that scans
        # installs generation 1 first: both do by the end of this test
        self.push(1, "shared/app", s.debian_image())
        want = sorted(f["name"] for f in s.DEBIAN_FINDINGS)
        got = [self.findings(i, "shared/app") for i in (0, 1)]
        for resp in got:
            self.assertEqual(resp["imageScanStatus"]["status"], "COMPLETE", resp)
            self.assertEqual(finding_names(resp), want)
        self.assertEqual(s.findings_of(got[0]), s.findings_of(got[1]))
        self.assertEqual(got[0]["imageScanFindings"]["vulnerabilitySourceUpdatedAt"],
                         got[1]["imageScanFindings"]["vulnerabilitySourceUpdatedAt"])
        # a second image scanned by replica 1 alone: stop replica 0's scanning by
        # pushing while it is stopped
        self.replicas[0].stop()
        try:
            self.push(1, "shared/app", s.debian_upgraded_image(), tag="v2")
            resp = self.findings(1, "shared/app", "v2")
            self.assertEqual(finding_names(resp),
                             sorted(f["name"] for f in s.UPGRADED_FINDINGS))
            self.assertEqual(self.installed(1), digest)
        finally:
            self.replicas[0].start(reuse_port=True)
        self.assertEqual(s.findings_of(self.findings(0, "shared/app", "v2")),
                         s.findings_of(resp))
        # the console: the shared generation's records and import time on both
        dbs = [self.console(i) for i in (0, 1)]
        for db in dbs:
            self.assertTrue(db["present"], db)
            self.assertEqual(db["records"], len(s.OSV_RECORDS))
            self.assertEqual(db["shared"]["generation"], 1)
            self.assertEqual(db["shared"]["digest"], digest)
        self.assertEqual(dbs[0]["updatedAt"], dbs[1]["updatedAt"])
        self.assertTrue(dbs[1]["shared"]["installedHere"], dbs[1])

    def test_1b_announced_to_the_other(self):
        """A new generation is announced (PostgreSQL NOTIFY): the other replica installs
        it at once, with no scan to start and its poll an hour away."""
        osv = s.write_osv(os.path.join(self.work, "gen-announced"), {
            "DEBIAN-CVE-2098-0001.json": {
                "id": "DEBIAN-CVE-2098-0001", "summary": "nothing installed has it",
                "affected": [{"package": {"ecosystem": "Debian:12", "name": "nothing-here"},
                              "ranges": [{"type": "ECOSYSTEM", "events": [
                                  {"introduced": "0"}]}]}]}})
        rc, out = h.run_berth(["vulndb", "import", osv], server=self.replicas[0], timeout=120)
        self.assertEqual(rc, 0, out)
        m = re.search(r"generation (\d+), (sha256:[0-9a-f]{64})", out)
        line = "event=vulndb_installed generation=%s" % m.group(1)
        # the digest file is written before the log line: wait for both (CI saw the
        # file, then a log without the line yet)
        for i in (0, 1):
            h.wait_until(lambda: self.installed(i) == m.group(2) and
                         line in self.replicas[i].log_text(), WAIT, interval=0.2,
                         what="replica %d to install generation %s" % (i, m.group(1)))

    def test_2_continuous_rescans_once(self):
        self.ecr[0].put_registry_scanning_configuration(scanType="ENHANCED", rules=[{
            "scanFrequency": "CONTINUOUS_SCAN",
            "repositoryFilters": [{"filter": "shared/*", "filterType": "WILDCARD"}]}])
        try:
            before = len(self.recorded())
            gen, digest = self.import_on(1, s.OSV_LATE, "gen2")
            self.assertEqual(gen, 3)
            self.cluster.gen2 = digest
            # both images of shared/app rescanned with generation 2 (the late record)
            for tag in ("v1", "v2"):
                h.wait_until(lambda: "CVE-2024-2511" in finding_names(
                    self.findings(0, "shared/app", tag)), WAIT, interval=0.3,
                    what="the rescan of %s with generation 2" % tag)
            h.wait_until(lambda: self.cluster.psql(
                "SELECT count(*) FROM scan_jobs").strip() == "0", WAIT, interval=0.3,
                what="the scan queue to empty")
            # once each for the cluster, not once per replica
            self.assertEqual(len(self.recorded()) - before, 2, self.recorded()[before:])
        finally:
            self.ecr[0].put_registry_scanning_configuration(scanType="BASIC", rules=[])

    def test_3_damaged_download_refused(self):
        # replica 1 holds test 2's generation (announced to it), and is down while the
        # next one is published and damaged
        h.wait_until(lambda: self.installed(1) == self.cluster.gen2, WAIT, interval=0.2,
                     what="replica 1 to install test 2's generation")
        self.replicas[1].stop()
        gen, digest = self.import_on(0, OSV_GEN3, "gen3")
        self.assertEqual(gen, 4)
        # the object in the bucket overwritten with other bytes of the same size
        key = "%sblobs/sha256/%s/%s" % (PREFIX, digest[7:9], digest[7:])
        s3 = self.cluster.s3.client()
        good = s3.get_object(Bucket=self.cluster.s3.bucket, Key=key)["Body"].read()
        bad = bytes(b ^ 0x5A for b in good[:4096]) + good[4096:]
        s3.put_object(Bucket=self.cluster.s3.bucket, Key=key, Body=bad)
        # replica 1 starts: its download is refused, it keeps what it has
        self.replicas[1].start(reuse_port=True)
        refused = (r"event=vulndb_install_failed generation=4 digest=%s err=\S+ reason=.*refused"
                   % re.escape(digest))
        h.wait_until(lambda: re.search(refused, self.replicas[1].log_text()), WAIT,
                     interval=0.2, what="replica 1 to refuse the damaged download")
        self.assertEqual(self.installed(1), self.cluster.gen2)
        self.create_repo("shared/damaged")
        # replica 1 scans alone: replica 0's root holds the good copy the import cached
        # (small blobs are read from <root>/s3cache), replica 1 reads the bucket
        self.replicas[0].stop()
        try:
            self.push(1, "shared/damaged", s.debian_image())
            resp = self.findings(1, "shared/damaged")
        finally:
            self.replicas[0].start(reuse_port=True)
        self.assertEqual(resp["imageScanStatus"]["status"], "COMPLETE", resp)
        names = finding_names(resp)
        # scanned with test 2's generation (the late record), not the damaged one
        self.assertIn("CVE-2024-2511", names)
        self.assertNotIn("CVE-2099-0001", names)

        # replica 1 keeps it, and nothing of the refused download
        self.assertEqual(self.installed(1), self.cluster.gen2)
        for i in (0, 1):
            leftovers = [n for n in os.listdir(self.replicas[i].root) if ".tmp-" in n]
            self.assertEqual(leftovers, [])
        # repaired: the bytes back, for the replica started next
        s3.put_object(Bucket=self.cluster.s3.bucket, Key=key, Body=good)
        self.cluster.gen3 = digest

    def test_4_new_replica_scans_with_it(self):
        digest = self.cluster.gen3
        new = self.cluster.add_replica()
        self.replicas = self.cluster.replicas
        h.wait_until(lambda: "event=vulndb_installed generation=4 digest=%s" % digest
                     in new.log_text(), WAIT, interval=0.2,
                     what="the new replica to install generation 4 at start")
        self.assertFalse(os.path.exists(os.path.join(new.root, "vulndb.db")))
        # the new replica scans alone
        self.replicas[0].stop()
        self.replicas[1].stop()
        try:
            self.create_repo_on(new, "shared/late")
            reg = a.AuthRegistry(new.base_url, a.basic(*self.admin))
            h.expect_status(reg.push_image("shared/late", s.debian_image(), tag="v1"), 201)
            resp = s.wait_scan(c.ecr_client(new, *self.admin), "shared/late",
                               {"imageTag": "v1"}, timeout=WAIT)
            self.assertIn("CVE-2099-0001", finding_names(resp))
            self.assertIn("event=scan_recorded repo=shared/late", new.log_text())
        finally:
            self.replicas[0].start(reuse_port=True)
            self.replicas[1].start(reuse_port=True)

    def create_repo_on(self, server, repo):
        c.ecr_client(server, *self.admin).create_repository(
            repositoryName=repo, imageScanningConfiguration={"scanOnPush": True})


if __name__ == "__main__":
    unittest.main()
