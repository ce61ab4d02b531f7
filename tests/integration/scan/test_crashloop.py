"""The crash-loop rule of the scan queue: a job that was claimed three times without
finishing (the server died while it ran) ends FAILED with a ScanError after the next
restart instead of running a fourth time; one claimed twice still runs; a new scan of the
failed image starts from scratch."""

import os
import shutil
import sqlite3
import tempfile
import unittest

import berth_harness as h
import clients as c
import scan_helpers as s

INTERRUPTED = ("ScanError: the scan was interrupted 3 times (the server stopped while it "
               "ran); start a new scan to try again")
NO_DB = "VulnerabilityDatabaseError: no vulnerability database has been imported"


@unittest.skipUnless(h.IS_BERTH, "berth only")
class CrashLoopTest(unittest.TestCase):

    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="berth-crashloop-")
        self.addCleanup(shutil.rmtree, self.work, True)

    def db(self, server):
        return sqlite3.connect(os.path.join(server.root, "berth.db"), timeout=10)

    def test_third_interruption_fails_the_job(self):
        server = h.Server(config={"scan": {"workers": 0, "quota_seconds": 0}})
        self.addCleanup(server.cleanup)
        server.start()
        ecr = c.ecr_client(server)
        repo = "crash/loop"
        ecr.create_repository(repositoryName=repo, imageScanningConfiguration={"scanOnPush": True})
        reg = server.registry()
        images = {"thrice": s.debian_image(label="thrice"), "twice": s.debian_image(label="twice")}
        for tag, img in images.items():
            h.expect_status(reg.push_image(repo, img, tag=tag), 201)
        # as if the server had died while running each job: three times, and twice
        con = self.db(server)
        with con:
            for tag, attempts in (("thrice", 3), ("twice", 2)):
                con.execute("UPDATE scan_jobs SET claimed_at = 1, attempts = ? WHERE manifest_id "
                            "= (SELECT id FROM manifests WHERE digest = ?)",
                            (attempts, images[tag].digest))
        con.close()

        server.kill9()
        server.config["scan"]["workers"] = 1
        server.start()
        ecr = c.ecr_client(server)
        resp = s.wait_scan(ecr, repo, {"imageTag": "thrice"})
        self.assertEqual(resp["imageScanStatus"], {"status": "FAILED", "description": INTERRUPTED})
        self.assertNotIn("imageScanFindings", resp)
        # the job claimed only twice runs (and fails for want of a database: nothing imported)
        resp = s.wait_scan(ecr, repo, {"imageTag": "twice"})
        self.assertEqual(resp["imageScanStatus"]["status"], "FAILED")
        self.assertTrue(resp["imageScanStatus"]["description"].startswith(NO_DB), resp)
        con = self.db(server)
        try:
            self.assertEqual(con.execute("SELECT count(*) FROM scan_jobs").fetchone()[0], 0)
        finally:
            con.close()
        self.assertIn("released_jobs=2", server.log_text())

        # a new scan of the failed image is a new job: it runs
        ecr.start_image_scan(repositoryName=repo, imageId={"imageTag": "thrice"})
        resp = s.wait_scan(ecr, repo, {"imageTag": "thrice"})
        self.assertTrue(resp["imageScanStatus"]["description"].startswith(NO_DB), resp)
        server.stop()


if __name__ == "__main__":
    h.main()
