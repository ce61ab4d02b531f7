"""Scans of images the pull-through cache stores. The cache stores a manifest before its
client pulls the blobs, and scan on push queues its scan at once: the scan fetches the
blobs the store lacks through the cache (from the upstream, digests verified, stored) and
ends COMPLETE with the image's findings; the blobs are cached for the client's pull. When
the upstream cannot give a blob, the scan is FAILED with an UpstreamError description."""

import os
import shutil
import tempfile
import uuid

import clients as c  # first: it cleans the environment botocore reads

import berth_harness as h
import ecr_helpers as e
import ptc_helpers as p
import scan_helpers as s
import test_cache as tc

assert c


class ManifestOnlyUpstream(p.LoopbackServer):
    """An upstream that answers /v2/ and the manifest of one image, and closes the
    connection without an answer on every blob request (as an upstream gone after the
    manifest's fetch); once serve_blobs is set, it serves them."""

    def __init__(self, image):
        self.blob_gets = 0
        self.serve_blobs = False
        fake = self

        class Handler(p.QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                if self.path == "/v2/":
                    return self.send(200, b"{}", "application/json")
                if self.path.endswith("/manifests/v1") or self.path.endswith(
                        "/manifests/" + image.digest):
                    return self.send(200, image.manifest, image.media_type)
                if "/blobs/" in self.path:
                    fake.blob_gets += 1
                    for d, data in image.blobs.items():
                        if fake.serve_blobs and self.path.endswith("/blobs/" + d):
                            return self.send(200, data, "application/octet-stream")
                    self.close_connection = True
                    return None
                return self.send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}',
                                 "application/json")

            do_HEAD = do_GET

        self.serve(Handler)


class ScanCacheTestCase(e.EcrTestCase):
    server_config = {"storage": {"auto_create_repositories": False},
                     "pull_through": {"timeout_seconds": 10}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        work = tempfile.mkdtemp(prefix="berth-osv-")
        cls.addClassCleanup(shutil.rmtree, work, True)
        osv = s.write_osv(os.path.join(work, "osv"), s.OSV_RECORDS)
        rc, out = h.run_berth(["vulndb", "import", osv], server=cls.server, timeout=120)
        assert rc == 0, out

    def cache(self, upstream_url):
        """A rule for upstream_url and scan on push for its repositories; the prefix."""
        prefix = "ptc-" + uuid.uuid4().hex[:8]
        self.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=prefix,
                                                upstreamRegistryUrl=upstream_url)
        self.addCleanup(self.ecr.delete_pull_through_cache_rule, ecrRepositoryPrefix=prefix)
        self.ecr.put_registry_scanning_configuration(scanType="BASIC", rules=[
            {"scanFrequency": "SCAN_ON_PUSH",
             "repositoryFilters": [{"filter": prefix + "/*", "filterType": "WILDCARD"}]}])
        self.addCleanup(self.ecr.put_registry_scanning_configuration, scanType="BASIC",
                        rules=[])
        return prefix


class PullThroughScanTest(ScanCacheTestCase):
    def test_scan_fetches_the_blobs_through_the_cache(self):
        up = h.Server()
        self.addCleanup(up.cleanup)
        up.start()
        image = s.debian_image("gzip", "ptc-scan-" + uuid.uuid4().hex)
        up.registry().push_image("lib/app", image, tag="v1")
        repo = self.cache(up.base_url) + "/lib/app"
        self.addCleanup(self.ecr.delete_repository, repositoryName=repo, force=True)
        # the client's first request: the manifest only, its blobs not pulled yet
        resp = self.reg.get_manifest(repo, "v1")
        self.assertStatus(resp, 200)
        self.assertEqual(resp.body, image.manifest)
        out = s.wait_scan(self.ecr, repo, {"imageDigest": image.digest}, timeout=60)
        self.assertEqual(out["imageScanStatus"]["status"], "COMPLETE", out)
        self.assertEqual(s.findings_of(out), s.DEBIAN_FINDINGS, out)
        log = self.server.log_text()
        for d in image.blobs:
            self.assertIn("event=scan_blob_fetched repo=%s digest=%s" % (repo, d), log)
        # the blobs are cached: the client's pull is served with the upstream gone, and
        # each blob came from the upstream once
        for d in image.blobs:
            self.assertEqual(len(p.upstream_gets(up, "/blobs/" + d)), 1, d)
        up.stop()
        for d, data in image.blobs.items():
            blob = self.reg.get_blob(repo, d)
            self.assertStatus(blob, 200)
            self.assertEqual(blob.body, data)

    def test_upstream_unreachable_fails_with_a_reason(self):
        image = s.debian_image("gzip", "ptc-down-" + uuid.uuid4().hex)
        fake = ManifestOnlyUpstream(image)
        self.addCleanup(fake.close)
        repo = self.cache("http://127.0.0.1:%d" % fake.port) + "/lib/app"
        self.addCleanup(self.ecr.delete_repository, repositoryName=repo, force=True)
        self.assertStatus(self.reg.get_manifest(repo, "v1"), 200)
        out = s.wait_scan(self.ecr, repo, {"imageDigest": image.digest}, timeout=60)
        status = out["imageScanStatus"]
        self.assertEqual(status["status"], "FAILED", out)
        self.assertTrue(status["description"].startswith("UpstreamError: "), status)
        self.assertIn("cannot be fetched from the pull-through cache's upstream",
                      status["description"])
        self.assertEqual(out.get("imageScanFindings", {}).get("findings", []), [])
        self.assertGreaterEqual(fake.blob_gets, 1)
        self.assertIn("event=scan_blob_fetch_failed repo=%s " % repo, self.server.log_text())
        # one attempt, not a loop: the scan stays FAILED and the upstream is not asked again
        gets = fake.blob_gets
        out = self.ecr.describe_image_scan_findings(repositoryName=repo,
                                                    imageId={"imageDigest": image.digest})
        self.assertEqual(out["imageScanStatus"]["status"], "FAILED")
        self.assertEqual(self.server.log_text().count(
            "event=scan_recorded repo=%s digest=%s" % (repo, image.digest)), 1)
        self.assertEqual(fake.blob_gets, gets)
        # the retry: the failed scan did not look at the image, so StartImageScan is not
        # held to scan.quota_seconds (a day; the scan on push counted); with the upstream
        # back, the scan fetches the blobs and completes
        fake.serve_blobs = True
        self.ecr.start_image_scan(repositoryName=repo, imageId={"imageDigest": image.digest})
        out = s.wait_scan(self.ecr, repo, {"imageDigest": image.digest}, timeout=60)
        self.assertEqual(out["imageScanStatus"]["status"], "COMPLETE", out)
        self.assertEqual(s.findings_of(out), s.DEBIAN_FINDINGS, out)
        # a scan that did look at the image counts as before
        with self.assertRaises(self.ecr.exceptions.LimitExceededException):
            self.ecr.start_image_scan(repositoryName=repo,
                                      imageId={"imageDigest": image.digest})


class StopDuringScanFetchTest(ScanCacheTestCase):
    server_config = {"storage": {"auto_create_repositories": False},
                     "pull_through": {"timeout_seconds": 10}, "http": {"drain_seconds": 1}}

    def test_sigterm_while_the_scan_fetches_puts_the_job_back(self):
        """A stop while the scan waits for a blob from the upstream is not the upstream's
        failure: the scan is cancelled (its job back in the queue, nothing recorded) and
        runs after the next start."""
        image = s.debian_image("gzip", "ptc-stop-" + uuid.uuid4().hex)
        layer = image.layer_digests[0]
        fake = tc.FakeUpstream(image)
        self.addCleanup(fake.close)
        self.addCleanup(fake.release.set)
        fake.hold_blob = layer  # half of it, then nothing until released
        repo = self.cache("http://127.0.0.1:%d" % fake.port) + "/lib/app"
        self.assertStatus(self.reg.get_manifest(repo, "v1"), 200)
        # the config, then the layer, which the upstream holds
        h.wait_until(lambda: fake.blob_gets >= 2, 30, what="the scan fetching the layer")
        self.assertEqual(self.server.stop(timeout=60), 0)
        log = self.server.log_text()
        self.assertIn("event=scan_cancelled repo=%s digest=%s" % (repo, image.digest), log)
        self.assertNotIn("event=scan_recorded repo=%s " % repo, log)
        self.assertNotIn("UpstreamError", log)
        fake.release.set()
        self.server.start(reuse_port=True)
        out = s.wait_scan(self.ecr, repo, {"imageDigest": image.digest}, timeout=60)
        self.assertEqual(out["imageScanStatus"]["status"], "COMPLETE", out)
        self.assertEqual(s.findings_of(out), s.DEBIAN_FINDINGS, out)
        self.ecr.delete_repository(repositoryName=repo, force=True)


if __name__ == "__main__":
    h.main()
