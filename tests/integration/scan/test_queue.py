"""The persistent scan queue: scans queued while scan.workers is 0 wait in the database
and run after a restart with workers (also after kill -9); a job whose image was deleted
meanwhile ends quietly; StartImageScan with scan.quota_seconds 0; the rescans after
`berth vulndb import` (CONTINUOUS_SCAN, and scans that found no database)."""

import os
import shutil
import sqlite3
import tempfile
import time
import unittest

import clients as c  # first: it cleans the environment botocore reads
import berth_harness as h
import scan_helpers as s


def db_count(server, sql):
    con = sqlite3.connect("file:%s?mode=ro" % os.path.join(server.root, "berth.db"), uri=True)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


@h.berth_only("the scan queue")
class ScanQueueTest(unittest.TestCase):

    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="berth-queue-")
        self.addCleanup(shutil.rmtree, self.work, True)
        self.skopeo = c.Skopeo(self.work)
        self.osv = s.write_osv(os.path.join(self.work, "osv"), s.OSV_RECORDS)

    def start(self, workers, import_db=True, **scan):
        scan["workers"] = workers
        server = h.Server(config={"scan": scan})
        self.addCleanup(server.cleanup)
        server.start()
        if import_db:
            status, out = h.run_berth(["vulndb", "import", self.osv, "--root", server.root])
            self.assertEqual(status, 0, out)
        return server

    def restart(self, server, workers, kill=False):
        server.config["scan"]["workers"] = workers
        if kill:
            server.kill9()
        else:
            server.stop()
        server.start()
        return c.ecr_client(server)

    def test_pending_jobs_run_after_restart(self):
        server = self.start(workers=0)
        ecr = c.ecr_client(server)
        repo = "queue/app"
        ecr.create_repository(repositoryName=repo, imageScanningConfiguration={"scanOnPush": True})
        images = {"a": s.debian_image("gzip", "a"), "b": s.alpine_image(),
                  "gone": s.debian_image("zstd", "gone")}
        self.skopeo.push(server, images, repo)
        # the push did not wait for a scan, and nothing runs the queue
        time.sleep(0.5)
        for tag in images:
            resp = ecr.describe_image_scan_findings(repositoryName=repo, imageId={"imageTag": tag})
            self.assertEqual(resp["imageScanStatus"], {"status": "IN_PROGRESS"})
            self.assertNotIn("imageScanFindings", resp)
        self.assertEqual(db_count(server, "SELECT count(*) FROM scan_jobs"), 3)
        for detail in ecr.describe_images(repositoryName=repo)["imageDetails"]:
            self.assertEqual(detail["imageScanStatus"], {"status": "IN_PROGRESS"})
            self.assertNotIn("imageScanFindingsSummary", detail)
        # one image is deleted while its scan waits: its job goes with it
        reg = server.registry()
        h.expect_status(reg.delete(reg.manifest_path(repo, images["gone"].digest)), 202)
        self.assertEqual(db_count(server, "SELECT count(*) FROM scan_jobs"), 2)

        ecr = self.restart(server, workers=2)
        self.assertEqual(s.findings_of(s.wait_scan(ecr, repo, {"imageTag": "a"})),
                         s.DEBIAN_FINDINGS)
        self.assertEqual(s.findings_of(s.wait_scan(ecr, repo, {"imageTag": "b"})),
                         s.ALPINE_FINDINGS)
        h.wait_until(lambda: db_count(server, "SELECT count(*) FROM scan_jobs") == 0, 10,
                     what="the finished jobs to leave the queue")
        self.assertEqual(db_count(server, "SELECT count(*) FROM scans"), 2)
        self.assertNotIn("level=error", server.log_text())
        server.stop()

    def test_claimed_jobs_survive_kill9(self):
        server = self.start(workers=0)
        ecr = c.ecr_client(server)
        repo = "queue/crash"
        ecr.create_repository(repositoryName=repo, imageScanningConfiguration={"scanOnPush": True})
        self.skopeo.push(server, {"v": s.debian_image("gzip", "crash")}, repo)
        # as if a worker had claimed the job when the process died
        con = sqlite3.connect(os.path.join(server.root, "berth.db"), timeout=10)
        with con:
            con.execute("UPDATE scan_jobs SET claimed_at = 1, attempts = 1")
        con.close()
        ecr = self.restart(server, workers=1, kill=True)
        self.assertEqual(s.findings_of(s.wait_scan(ecr, repo, {"imageTag": "v"})),
                         s.DEBIAN_FINDINGS)
        self.assertIn("released_jobs=1", server.log_text())
        server.stop()

    def test_quota_zero_allows_rescans(self):
        server = self.start(workers=1, quota_seconds=0)
        ecr = c.ecr_client(server)
        repo = "queue/quota"
        ecr.create_repository(repositoryName=repo, imageScanningConfiguration={"scanOnPush": True})
        self.skopeo.push(server, {"v": s.debian_image("gzip", "quota")}, repo)
        first = s.wait_scan(ecr, repo, {"imageTag": "v"})

        def scans_run():
            return server.log_text().count("event=scan_done ")
        self.assertEqual(scans_run(), 1)
        previous = first
        for run in (2, 3):
            resp = ecr.start_image_scan(repositoryName=repo, imageId={"imageTag": "v"})
            self.assertEqual(resp["imageScanStatus"], {"status": "IN_PROGRESS"})
            # the scanner ran once more, and what the API shows is that run's result
            h.wait_until(lambda: scans_run() >= run, 15, what="scan %d to run" % run)
            again = s.wait_scan(ecr, repo, {"imageTag": "v"})
            self.assertEqual(again["imageScanStatus"]["status"], "COMPLETE")
            self.assertEqual(s.findings_of(again), s.DEBIAN_FINDINGS)
            self.assertGreater(again["imageScanFindings"]["imageScanCompletedAt"],
                               previous["imageScanFindings"]["imageScanCompletedAt"])
            previous = again
        self.assertEqual(scans_run(), 3)
        server.stop()

    def test_scans_without_a_database_are_retried_after_import(self):
        server = self.start(workers=1, import_db=False)
        ecr = c.ecr_client(server)
        repo = "queue/early"
        ecr.create_repository(repositoryName=repo, imageScanningConfiguration={"scanOnPush": True})
        self.skopeo.push(server, {"v": s.debian_image("gzip", "early"),
                                  "scratch": s.scratch_image()}, repo)
        resp = s.wait_scan(ecr, repo, {"imageTag": "v"})
        self.assertEqual(resp["imageScanStatus"]["status"], "FAILED")
        self.assertTrue(resp["imageScanStatus"]["description"].startswith(
            "VulnerabilityDatabaseError: no vulnerability database has been imported"),
            resp["imageScanStatus"])
        self.assertEqual(s.wait_scan(ecr, repo, {"imageTag": "scratch"})["imageScanStatus"]
                         ["description"], s.UNSUPPORTED)
        status, out = h.run_berth(["vulndb", "import", self.osv, "--root", server.root])
        self.assertEqual(status, 0, out)
        # only the scan that lacked the database runs again
        self.assertIn("retries queued    1 ", out)
        def retried():
            resp = ecr.describe_image_scan_findings(repositoryName=repo, imageId={"imageTag": "v"})
            return resp if resp["imageScanStatus"]["status"] == "COMPLETE" else None
        resp = h.wait_until(retried, 15, what="the scan to run again after the import")
        self.assertEqual(s.findings_of(resp), s.DEBIAN_FINDINGS)
        self.assertEqual(ecr.describe_image_scan_findings(
            repositoryName=repo, imageId={"imageTag": "scratch"})["imageScanStatus"]
            ["description"], s.UNSUPPORTED)
        server.stop()

    def test_continuous_scan_rescans_after_import(self):
        server = self.start(workers=1)
        ecr = c.ecr_client(server)
        rules = [{"scanFrequency": "CONTINUOUS_SCAN",
                  "repositoryFilters": [{"filter": "cont/*", "filterType": "WILDCARD"}]},
                 {"scanFrequency": "SCAN_ON_PUSH",
                  "repositoryFilters": [{"filter": "*", "filterType": "WILDCARD"}]}]
        ecr.put_registry_scanning_configuration(scanType="ENHANCED", rules=rules)
        conf = ecr.batch_get_repository_scanning_configuration(repositoryNames=["cont/missing"])
        self.assertEqual(conf["failures"][0]["failureCode"], "REPOSITORY_NOT_FOUND")
        # both repositories are scanned on push (auto-created, no flag of their own)
        self.skopeo.push(server, {"v": s.debian_image("gzip", "cont")}, "cont/app")
        self.skopeo.push(server, {"v": s.debian_image("gzip", "push")}, "push/app")
        conf = ecr.batch_get_repository_scanning_configuration(
            repositoryNames=["cont/app", "push/app"])["scanningConfigurations"]
        self.assertEqual([(c["repositoryName"], c["scanFrequency"], c["appliedScanFilters"])
                          for c in conf],
                         [("cont/app", "CONTINUOUS_SCAN", rules[0]["repositoryFilters"]),
                          ("push/app", "SCAN_ON_PUSH", rules[1]["repositoryFilters"])])
        # (under ENHANCED the findings are enhancedFindings: test_enhanced checks the shape)
        for repo in ("cont/app", "push/app"):
            self.assertEqual(s.names_of(s.wait_scan(ecr, repo, {"imageTag": "v"})),
                             s.names(s.DEBIAN_FINDINGS))
        before = ecr.describe_image_scan_findings(repositoryName="cont/app",
                                                  imageId={"imageTag": "v"})
        # a new record: the import queues a rescan of the CONTINUOUS_SCAN repository only
        late = s.write_osv(os.path.join(self.work, "late"), s.OSV_LATE)
        status, out = h.run_berth(["vulndb", "import", late, "--root", server.root])
        self.assertEqual(status, 0, out)
        self.assertIn("rescans queued    1 (CONTINUOUS_SCAN)", out)
        def rescanned():
            resp = ecr.describe_image_scan_findings(repositoryName="cont/app",
                                                    imageId={"imageTag": "v"})
            return resp if resp["imageScanStatus"]["status"] == "COMPLETE" and \
                len(s.names_of(resp)) == 4 else None
        resp = h.wait_until(rescanned, 15, what="the CONTINUOUS_SCAN rescan")
        self.assertEqual(s.names_of(resp),
                         s.names([s.F_OPENSSL, s.F_GLIBC, s.F_OPENSSL_LATE, s.F_ZLIB]))
        self.assertGreater(resp["imageScanFindings"]["vulnerabilitySourceUpdatedAt"],
                           before["imageScanFindings"]["vulnerabilitySourceUpdatedAt"])
        # the quota still counts from the push (the rescan is not a request)
        with self.assertRaises(ecr.exceptions.LimitExceededException):
            ecr.start_image_scan(repositoryName="cont/app", imageId={"imageTag": "v"})
        self.assertEqual(s.names_of(ecr.describe_image_scan_findings(
            repositoryName="push/app", imageId={"imageTag": "v"})), s.names(s.DEBIAN_FINDINGS))
        server.stop()


if __name__ == "__main__":
    h.main()
