# berth-replicas: skip: it reads where each blob's bytes are from the data root's files
# (blobs/, archive/), which only the filesystem backend has; the archive tier on S3 is
# storage/test_s3_archive.py's, its lease among replicas cluster/test_archive_lease.py's
# berth-python: modern
"""The archive tier: archiving an image moves the bytes of the blobs only archived images use
(in every repository) from <root>/blobs to storage.archive.path, zstd-recompressed where that
shrinks them; restoring brings them back byte-exact (ACTIVATING until they are); every way a
blob is wanted again restores it or refuses cleanly (an upload of the same bytes, a mount, a
manifest that uses it, a pull); garbage collection removes archived garbage; /metrics says
what sits in the archive. And kill -9 at every point of a move (BERTH_TEST_CRASH_AT) leaves
a store that restarts consistent and restores byte-exact."""

import hashlib
import os
import re
import shutil
import tempfile
import time
import uuid

import berth_harness as h
import clients as c
import botocore.exceptions
import ecr_helpers as e
import scan_helpers as s

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def tier_image(text_kib=256):
    """An image with a layer zstd shrinks (an uncompressed tar of text), a layer it does not
    (gzip of random bytes) and a config, all unique to this image."""
    token = uuid.uuid4().hex.encode()
    text = (b"berth archive tier " + token + b"\n") * (text_kib * 1024 // 52)
    text_layer, _ = h.make_layer({"etc/words.txt": text}, compress=False)
    random_layer, _ = h.make_layer({"bin/blob": h.random_bytes(64 * 1024)}, compress=True)
    config = h.canonical_json({"architecture": "amd64", "os": "linux",
                               "config": {"Env": ["TOKEN=" + token.decode()]},
                               "rootfs": {"type": "layers", "diff_ids": []}})
    manifest = {"schemaVersion": 2, "mediaType": h.MT_OCI_MANIFEST,
                "config": h.blob_descriptor(h.MT_OCI_CONFIG, config),
                "layers": [h.blob_descriptor(h.MT_OCI_LAYER_TAR, text_layer),
                           h.blob_descriptor(h.MT_OCI_LAYER_GZIP, random_layer)]}
    blobs = {h.digest_of(b): b for b in (config, text_layer, random_layer)}
    return h.Image(manifest, blobs, h.MT_OCI_MANIFEST)


def run_gc(server):
    """berth gc over the server's store (its environment: the metadata backend too)."""
    rc, out = h.run_berth(["gc", "--root", server.root], env={"BERTH_GC_GRACE_SECONDS": "0"},
                          timeout=120, server=server)
    if rc != 0:
        raise AssertionError("berth gc failed (%d):\n%s" % (rc, out[-3000:]))
    return out


class TierMixin:
    """Where a blob's bytes are, read from the data root."""

    def std_path(self, digest):
        hexpart = h.digest_hex(digest)
        return os.path.join(self.server.root, "blobs", "sha256", hexpart[:2], hexpart)

    def arc_path(self, digest):
        hexpart = h.digest_hex(digest)
        return os.path.join(self.server.root, "archive", "blobs", "sha256", hexpart[:2], hexpart)

    def where(self, digest):
        """(in the blob store, in the archive tier)"""
        return (os.path.exists(self.std_path(digest)), os.path.exists(self.arc_path(digest)))

    def arc_bytes(self, digest):
        with open(self.arc_path(digest), "rb") as f:
            return f.read()

    def archive_stages(self):
        """Archive copies being written (stages of the archive store), left by a crash."""
        stages = os.path.join(self.server.root, "archive", "uploads")
        return os.listdir(stages) if os.path.isdir(stages) else []

    def wait_archived(self, *digests):
        h.wait_until(lambda: all(self.where(d) == (False, True) for d in digests), 60,
                     what="blobs moved to the archive tier")

    def wait_standard(self, *digests):
        h.wait_until(lambda: all(self.where(d) == (True, False) for d in digests), 60,
                     what="blobs back in the blob store")

    def status(self, repo, digest):
        details = self.ecr.describe_images(repositoryName=repo,
                                           imageIds=[{"imageDigest": digest}])["imageDetails"]
        return details[0]["imageStatus"]

    def wait_active(self, repo, digest):
        h.wait_until(lambda: self.status(repo, digest) == "ACTIVE", 60, interval=0.1,
                     what="image ACTIVE")

    def archive(self, repo, digest):
        return self.ecr.update_image_storage_class(
            repositoryName=repo, imageId={"imageDigest": digest}, targetStorageClass="ARCHIVE")

    def restore(self, repo, digest):
        return self.ecr.update_image_storage_class(
            repositoryName=repo, imageId={"imageDigest": digest}, targetStorageClass="STANDARD")

    def import_osv(self):
        work = tempfile.mkdtemp(prefix="berth-osv-")
        self.addCleanup(shutil.rmtree, work, True)
        osv = s.write_osv(os.path.join(work, "osv"), s.OSV_RECORDS)
        rc, out = h.run_berth(["vulndb", "import", osv], server=self.server, timeout=120)
        self.assertEqual(rc, 0, out)

    def scan_repo(self, scan_on_push):
        """A repository for a Debian image, deleted after the test: every Debian image of
        scan_helpers has the same layer, which an active image elsewhere would keep out of
        the archive tier."""
        repo = self.create_repo()
        self.addCleanup(self.ecr.delete_repository, repositoryName=repo, force=True)
        if scan_on_push:
            self.ecr.put_image_scanning_configuration(
                repositoryName=repo, imageScanningConfiguration={"scanOnPush": True})
        return repo

    def scan_findings(self, repo, digest):
        return self.ecr.describe_image_scan_findings(repositoryName=repo,
                                                     imageId={"imageDigest": digest})

    def scans_recorded(self, repo, digest):
        """How many scans of the image ended, from the log."""
        return self.server.log_text().count("event=scan_recorded repo=%s digest=%s "
                                            % (repo, digest))

    def assertServed(self, repo, image):
        for digest, data in image.blobs.items():
            resp = self.reg.get_blob(repo, digest)
            self.assertStatus(resp, 200)
            self.assertEqual(hashlib.sha256(resp.body).hexdigest(), h.digest_hex(digest))
            self.assertEqual(resp.body, data)

    def assertRefused(self, repo, digest):
        resp = self.reg.get_blob(repo, digest)
        self.assertStatus(resp, 404)
        self.assertIn(b"BLOB_UNKNOWN", resp.body)
        self.assertStatus(self.reg.head_blob(repo, digest), 404)

    def metrics(self):
        resp = self.reg.get("/metrics")
        self.assertStatus(resp, 200)
        out = {}
        for line in resp.body.decode().splitlines():
            m = re.match(r"^(berth_archive_\w+) (\d+)$", line)
            if m:
                out[m.group(1)] = int(m.group(2))
        return out


class ArchiveTierTest(TierMixin, e.ModernEcrTestCase):
    server_config = {"gc": {"enabled": False}}

    def test_archive_and_restore_move_bytes(self):
        repo, other = self.create_repo(), self.create_repo()
        image = tier_image()
        self.push(repo, image, tag="v1")
        text_layer, random_layer = image.layer_digests
        # another repository's active image shares the config-less random layer: it stays
        shared = h.Image({"schemaVersion": 2, "mediaType": h.MT_OCI_MANIFEST,
                          "config": h.blob_descriptor(h.MT_OCI_CONFIG, b"{}"),
                          "layers": [image.obj["layers"][1]]},
                         {h.digest_of(b"{}"): b"{}", random_layer: image.blobs[random_layer]})
        self.push(other, shared, tag="keep")
        before = self.metrics()

        self.assertEqual(self.archive(repo, image.digest)["imageStatus"], "ARCHIVED")
        self.wait_archived(text_layer, image.config_digest)
        # (the files move inside the transaction; the line is logged after its commit)
        for digest in (text_layer, image.config_digest):
            h.wait_until(lambda: "event=blob_archived digest=%s" % digest in
                         self.server.log_text(), 30, what="the move of %s committed" % digest)
        self.assertEqual(self.where(random_layer), (True, False))
        # zstd where it shrinks the blob, as it is where it does not
        copy = self.arc_bytes(text_layer)
        self.assertTrue(copy.startswith(ZSTD_MAGIC), "text layer not zstd-compressed")
        self.assertLess(len(copy) * 10, len(image.blobs[text_layer]))
        # the metrics say what sits in the archive and what it takes there
        after = self.metrics()
        self.assertEqual(after["berth_archive_blobs"] - before.get("berth_archive_blobs", 0), 2)
        added = len(image.blobs[text_layer]) + len(image.blobs[image.config_digest])
        self.assertEqual(after["berth_archive_blob_bytes"] -
                         before.get("berth_archive_blob_bytes", 0), added)
        self.assertLess(after["berth_archive_stored_bytes"] -
                        before.get("berth_archive_stored_bytes", 0), added // 5)

        # not pulled from the archive; the shared layer is pulled in the other repository
        self.assertRefused(repo, text_layer)
        self.assertServed(other, shared)
        # a mount of an archived blob is a normal upload session (the client uploads)
        resp = self.reg.request("POST", self.reg.with_query(
            "/v2/%s/blobs/uploads/" % self.create_repo(), mount=text_layer, **{"from": repo}))
        self.assertStatus(resp, 202)
        # layer availability says ARCHIVED
        layers = self.ecr.batch_check_layer_availability(
            repositoryName=repo, layerDigests=[text_layer])["layers"]
        self.assertEqual(layers[0]["layerAvailability"], "ARCHIVED")

        # restore: ACTIVATING while the bytes come back, then ACTIVE and byte-exact
        self.assertEqual(self.restore(repo, image.digest)["imageStatus"], "ACTIVATING")
        self.wait_active(repo, image.digest)
        self.assertEqual(self.where(text_layer)[0], True)
        self.assertEqual(self.where(image.config_digest)[0], True)
        self.assertServed(repo, image)
        self.assertEqual(self.reg.get_manifest(repo, "v1").body, image.manifest)
        # the archive copies go in a transaction after the restore's
        self.wait_standard(text_layer, image.config_digest)
        self.assertIn("event=blob_restored digest=%s" % text_layer, self.server.log_text())
        # and back to the archive tier again
        self.archive(repo, image.digest)
        self.wait_archived(text_layer, image.config_digest)
        self.restore(repo, image.digest)
        self.wait_active(repo, image.digest)
        self.wait_standard(text_layer, image.config_digest)
        self.assertServed(repo, image)

    def test_upload_of_the_same_bytes_restores(self):
        repo = self.create_repo()
        image = tier_image()
        self.push(repo, image, tag="v1")
        self.archive(repo, image.digest)
        text_layer = image.layer_digests[0]
        self.wait_archived(text_layer)
        # docker's push: HEAD says unknown, so the layer is uploaded again; it is in the blob
        # store at once, pulled from a repository that links it
        elsewhere = self.create_repo()
        self.assertStatus(self.reg.head_blob(repo, text_layer), 404)
        self.assertStatus(self.reg.push_blob(elsewhere, image.blobs[text_layer]), 201)
        self.assertTrue(self.where(text_layer)[0])
        resp = self.reg.get_blob(elsewhere, text_layer)
        self.assertStatus(resp, 200)
        self.assertEqual(resp.body, image.blobs[text_layer])
        # the archive copy left behind goes with the next garbage collection
        run_gc(self.server)
        self.assertEqual(self.where(text_layer), (True, False))
        # a push of the archived image (blobs and manifest) restores it at once
        self.push(repo, image, tag="v1")
        self.assertEqual(self.status(repo, image.digest), "ACTIVE")
        self.assertServed(repo, image)

    def test_manifest_using_archived_blobs(self):
        repo = self.create_repo()
        image = tier_image()
        self.push(repo, image, tag="v1")
        self.archive(repo, image.digest)
        self.wait_archived(*image.layer_digests, image.config_digest)
        # a new manifest over the same (linked) blobs, pushed without its blobs: accepted,
        # ACTIVATING until they are back, then pulled byte-exact
        again = h.Image(dict(image.obj, annotations={"again": "1"}), image.blobs)
        resp = self.reg.put_manifest(repo, "v2", again.manifest, again.media_type)
        self.assertStatus(resp, 201)
        self.wait_active(repo, again.digest)
        self.wait_standard(*image.layer_digests, image.config_digest)
        self.assertServed(repo, again)
        self.assertEqual(self.reg.get_manifest(repo, "v2").body, again.manifest)
        # the first image is still archived
        self.assertEqual(self.status(repo, image.digest), "ARCHIVED")

    def test_export_says_restore_first(self):
        repo = self.create_repo()
        image = tier_image(text_kib=64)
        self.push(repo, image, tag="v1")
        self.archive(repo, image.digest)
        self.wait_archived(image.layer_digests[0])
        path = os.path.join(self.server.tmp, "archived.tar")
        rc, out = h.run_berth(["export", "%s:v1" % repo, "-o", path], server=self.server,
                              timeout=120)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("is archived", out)
        self.assertIn("export it once it is ACTIVE (restore it first: UpdateImageStorageClass "
                      "STANDARD)", out)
        self.assertNotIn("not in the store", out)
        self.assertFalse(os.path.exists(path))
        # restored, it exports
        self.restore(repo, image.digest)
        self.wait_active(repo, image.digest)
        rc, out = h.run_berth(["export", "%s:v1" % repo, "-o", path], server=self.server,
                              timeout=120)
        self.assertEqual(rc, 0, out)
        self.assertTrue(os.path.getsize(path) > 0)

    def test_gc_removes_archived_garbage(self):
        repo = self.create_repo()
        image = tier_image()
        self.push(repo, image, tag="v1")
        self.archive(repo, image.digest)
        self.wait_archived(*image.layer_digests, image.config_digest)
        self.ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
        run_gc(self.server)
        for digest in image.blobs:
            self.assertEqual(self.where(digest), (False, False))


class ArchiveOffTest(TierMixin, e.ModernEcrTestCase):
    """storage.archive.path "off": archiving is a status only, the bytes stay."""
    server_config = {"storage": {"archive": {"path": "off"}}, "gc": {"enabled": False}}

    def test_status_only(self):
        repo = self.create_repo()
        image = tier_image()
        self.push(repo, image, tag="v1")
        self.archive(repo, image.digest)
        self.assertFalse(os.path.exists(os.path.join(self.server.root, "archive")))
        self.assertEqual(self.restore(repo, image.digest)["imageStatus"], "ACTIVE")
        self.assertEqual(self.where(image.layer_digests[0]), (True, False))
        self.assertServed(repo, image)


@h.berth_only("BERTH_TEST_HOLD_RESTORE is berth's")
class ArchiveHeldRestoreTest(TierMixin, e.ModernEcrTestCase):
    """Restores held back (BERTH_TEST_HOLD_RESTORE: the mover waits while a file exists), to
    see what is ACTIVATING meanwhile: an index while its children are, and an image pushed
    over archived blobs, whose scan-on-push waits until its blobs are back."""
    server_config = {"gc": {"enabled": False}, "scan": {"workers": 1}}

    @classmethod
    def setUpClass(cls):
        cls.hold_dir = tempfile.mkdtemp(prefix="berth-hold-")
        cls.hold = os.path.join(cls.hold_dir, "hold")
        cls.sign_hold = os.path.join(cls.hold_dir, "sign-hold")
        cls.server_env = {"BERTH_TEST_HOLD_RESTORE": cls.hold,
                          "BERTH_TEST_HOLD_SIGNING": cls.sign_hold}
        super().setUpClass()
        cls.addClassCleanup(shutil.rmtree, cls.hold_dir, True)

    def tearDown(self):
        for hold in (self.hold, self.sign_hold):
            if os.path.exists(hold):
                os.unlink(hold)

    def statuses(self, repo, *digests):
        details = self.ecr.describe_images(repositoryName=repo,
                                           imageIds=[{"imageDigest": d} for d in digests])
        details = details["imageDetails"]
        return {d["imageDigest"]: d["imageStatus"] for d in details}

    def test_index_activating_while_a_child_is(self):
        repo = self.create_repo()
        children = [tier_image(text_kib=32), tier_image(text_kib=32)]
        index = h.Index(children)
        self.push(repo, index, tag="multi")
        self.archive(repo, index.digest)
        self.wait_archived(*[c.layer_digests[0] for c in children])
        open(self.hold, "w").close()
        self.assertEqual(self.restore(repo, index.digest)["imageStatus"], "ACTIVATING")
        everything = [index.digest] + [c.digest for c in children]
        self.assertEqual(self.statuses(repo, *everything),
                         {d: "ACTIVATING" for d in everything})
        self.assertStatus(self.reg.get_manifest(repo, "multi"), 404)
        os.unlink(self.hold)
        for digest in everything:
            self.wait_active(repo, digest)
        self.assertEqual(self.reg.get_manifest(repo, "multi").body, index.manifest)
        for child in children:
            self.assertServed(repo, child)

    def test_scan_on_push_waits_for_the_blobs(self):
        work = tempfile.mkdtemp(prefix="berth-osv-")
        self.addCleanup(shutil.rmtree, work, True)
        osv = s.write_osv(os.path.join(work, "osv"), s.OSV_RECORDS)
        rc, out = h.run_berth(["vulndb", "import", osv], server=self.server, timeout=120)
        self.assertEqual(rc, 0, out)
        repo = self.create_repo()
        self.ecr.put_image_scanning_configuration(
            repositoryName=repo, imageScanningConfiguration={"scanOnPush": True})
        image = s.debian_image("gzip", "held-" + uuid.uuid4().hex)
        self.push(repo, image, tag="v1")
        s.wait_scan(self.ecr, repo, {"imageTag": "v1"})
        self.archive(repo, image.digest)
        self.wait_archived(*image.layer_digests, image.config_digest)
        # a new manifest over the archived blobs: ACTIVATING, its scan queued but not run
        open(self.hold, "w").close()
        again = h.Image(dict(image.obj, annotations={"again": "1"}), image.blobs)
        self.assertStatus(self.reg.put_manifest(repo, "v2", again.manifest, again.media_type),
                          201)
        self.assertEqual(self.status(repo, again.digest), "ACTIVATING")
        # (the API says IMAGE_ARCHIVED while it is ACTIVATING; the log says what the
        # workers did, and they look for jobs every second)
        recorded = "event=scan_recorded repo=%s digest=%s" % (repo, again.digest)
        time.sleep(3)
        self.assertNotIn(recorded, self.server.log_text())
        os.unlink(self.hold)
        self.wait_active(repo, again.digest)
        out = s.wait_scan(self.ecr, repo, {"imageTag": "v2"})
        self.assertEqual(out["imageScanStatus"]["status"], "COMPLETE", out)
        self.assertEqual(s.findings_of(out), s.DEBIAN_FINDINGS)
        # the line follows the scan's commit, which the API may show first
        h.wait_until(lambda: recorded + " status=COMPLETE" in self.server.log_text(), 30,
                     what="the scan's log line")


    def test_restore_over_the_scan_quota(self):
        """A restored image with scan-on-push is scanned again (ECR: "restored images are
        subject to scanning"; the scan from before the archive is not available): scanned
        less than scan.quota_seconds (a day here) before, the rescan is LIMIT_EXCEEDED.
        While the restore runs, the scan status is IMAGE_ARCHIVED (ECR: the image remains
        in the archival state until its restore completes)."""
        self.import_osv()
        repo = self.scan_repo(True)
        image = s.debian_image("gzip", "quota-" + uuid.uuid4().hex)
        self.push(repo, image, tag="v1")
        out = s.wait_scan(self.ecr, repo, {"imageTag": "v1"})
        self.assertEqual(s.findings_of(out), s.DEBIAN_FINDINGS)
        self.archive(repo, image.digest)
        self.wait_archived(*image.layer_digests)
        # archived: IMAGE_ARCHIVED carries no findings (the old ones are still stored
        # until the restore, but never shown), in neither API
        out = self.scan_findings(repo, image.digest)
        self.assertEqual(out["imageScanStatus"]["status"], "IMAGE_ARCHIVED")
        self.assertNotIn("imageScanFindings", out)
        detail = self.ecr.describe_images(repositoryName=repo,
                                          imageIds=[{"imageDigest": image.digest}])
        self.assertEqual(detail["imageDetails"][0]["imageScanStatus"]["status"],
                         "IMAGE_ARCHIVED")
        self.assertNotIn("imageScanFindingsSummary", detail["imageDetails"][0])
        open(self.hold, "w").close()
        self.assertEqual(self.restore(repo, image.digest)["imageStatus"], "ACTIVATING")
        out = self.scan_findings(repo, image.digest)
        self.assertEqual(out["imageScanStatus"]["status"], "IMAGE_ARCHIVED")
        self.assertNotIn("imageScanFindings", out)  # the old findings are gone already
        self.assertBotoError("ImageArchivedException", "start_image_scan", repositoryName=repo,
                             imageId={"imageDigest": image.digest})
        os.unlink(self.hold)
        self.wait_active(repo, image.digest)
        out = self.scan_findings(repo, image.digest)
        self.assertEqual(out["imageScanStatus"]["status"], "LIMIT_EXCEEDED", out)
        self.assertIn("scan quota per image has been exceeded",
                      out["imageScanStatus"]["description"])
        self.assertNotIn("imageScanFindings", out)
        detail = self.ecr.describe_images(repositoryName=repo,
                                          imageIds=[{"imageDigest": image.digest}])
        detail = detail["imageDetails"][0]
        self.assertEqual(detail["imageScanStatus"]["status"], "LIMIT_EXCEEDED")
        self.assertNotIn("imageScanFindingsSummary", detail)
        self.assertBotoError("LimitExceededException", "start_image_scan", repositoryName=repo,
                             imageId={"imageDigest": image.digest})
        self.assertEqual(self.scans_recorded(repo, image.digest), 1)


    def test_import_restores_within_the_quota(self):
        """A bundle import that restores an archived image (its tag moves back to it) is
        a push like the others: the rescan counts against scan.quota_seconds (a day), so
        an image scanned minutes ago is LIMIT_EXCEEDED, not scanned again."""
        self.import_osv()
        repo = self.scan_repo(True)
        image = s.debian_image("gzip", "import-" + uuid.uuid4().hex)
        self.push(repo, image, tag="v1")
        out = s.wait_scan(self.ecr, repo, {"imageDigest": image.digest})
        self.assertEqual(s.findings_of(out), s.DEBIAN_FINDINGS)
        path = os.path.join(self.server.tmp, "import-%s.tar" % uuid.uuid4().hex)
        rc, out = h.run_berth(["export", "%s:v1" % repo, "-o", path], server=self.server,
                              timeout=120)
        self.assertEqual(rc, 0, out)
        # v1 moves to another image, and the first is archived
        other = s.debian_image("gzip", "other-" + uuid.uuid4().hex)
        self.push(repo, other, tag="v1")
        s.wait_scan(self.ecr, repo, {"imageDigest": other.digest})
        self.archive(repo, image.digest)
        self.assertEqual(self.status(repo, image.digest), "ARCHIVED")
        rc, out = h.run_berth(["import", path], server=self.server, timeout=120)
        self.assertEqual(rc, 0, out)
        # the import (another process) cannot wake the server's mover, which finds the
        # restore on its pass once a minute: a restore request (a no-op for an image
        # already restored, ACTIVATING or ACTIVE, whether or not its blobs had moved yet)
        # wakes it, so the wait need not span a minute
        self.assertIn(self.restore(repo, image.digest)["imageStatus"], ("ACTIVATING", "ACTIVE"))
        self.wait_active(repo, image.digest)
        out = self.scan_findings(repo, image.digest)
        self.assertEqual(out["imageScanStatus"]["status"], "LIMIT_EXCEEDED", out)
        self.assertNotIn("imageScanFindings", out)
        self.assertEqual(self.scans_recorded(repo, image.digest), 1)


    def test_pull_through_restores_within_the_quota(self):
        """The pull-through cache storing a manifest it holds archived (another upstream tag
        names it) restores it, as a push does: the rescan counts against scan.quota_seconds
        (a day), so the image scanned on its first pull minutes ago is LIMIT_EXCEEDED."""
        self.import_osv()
        up = h.Server()
        self.addCleanup(up.cleanup)
        up.start()
        image = s.debian_image("gzip", "ptc-" + uuid.uuid4().hex)
        ur = up.registry()
        ur.push_image("lib/app", image, tag="v1")
        self.assertStatus(ur.put_manifest("lib/app", "v2", image.manifest, image.media_type),
                          201)
        prefix = "ptc-" + uuid.uuid4().hex[:8]
        self.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=prefix,
                                                upstreamRegistryUrl=up.base_url)
        self.addCleanup(self.ecr.delete_pull_through_cache_rule, ecrRepositoryPrefix=prefix)
        repo = prefix + "/lib/app"
        self.addCleanup(self.ecr.delete_repository, repositoryName=repo, force=True)
        resp = self.reg.get_manifest(repo, "v1")
        self.assertStatus(resp, 200)
        self.assertEqual(resp.body, image.manifest)
        self.assertServed(repo, image)
        # scanned once its blobs are cached (a scan counts against the quota), and
        # scan-on-push for the restore
        self.ecr.start_image_scan(repositoryName=repo, imageId={"imageDigest": image.digest})
        out = s.wait_scan(self.ecr, repo, {"imageDigest": image.digest})
        self.assertEqual(s.findings_of(out), s.DEBIAN_FINDINGS, out)
        self.ecr.put_registry_scanning_configuration(scanType="BASIC", rules=[
            {"scanFrequency": "SCAN_ON_PUSH",
             "repositoryFilters": [{"filter": prefix + "/*", "filterType": "WILDCARD"}]}])
        self.addCleanup(self.ecr.put_registry_scanning_configuration, scanType="BASIC",
                        rules=[])
        self.archive(repo, image.digest)
        self.wait_archived(image.config_digest)
        self.assertStatus(self.reg.get_manifest(repo, "v1"), 404)
        # v2 is not cached: fetched from the upstream, it is the archived image, restored
        # (ACTIVATING until its blobs are back from the archive tier)
        self.reg.get_manifest(repo, "v2")
        self.assertIn("event=pull_through_manifest repo=%s " % repo, self.server.log_text())
        self.wait_active(repo, image.digest)
        out = self.scan_findings(repo, image.digest)
        self.assertEqual(out["imageScanStatus"]["status"], "LIMIT_EXCEEDED", out)
        self.assertNotIn("imageScanFindings", out)
        self.assertEqual(self.scans_recorded(repo, image.digest), 1)
        self.assertEqual(self.reg.get_manifest(repo, "v2").body, image.manifest)
        self.assertServed(repo, image)

    def test_signing_never_restores(self):
        """Managed signing pushes only its signature manifests (an empty config: never
        scanned), never the image it signs: an image archived while its signature waits is
        signed and stays ARCHIVED, its scan IMAGE_ARCHIVED, not scanned again; its restore
        is then the one that decides the rescan (within the quota: LIMIT_EXCEEDED)."""
        self.import_osv()
        repo = self.scan_repo(True)
        arn = "arn:aws:signer:%s:%s:/signing-profiles/tier" % (e.REGION, e.REGISTRY_ID)
        self.ecr.put_signing_configuration(signingConfiguration={"rules": [
            {"signingProfileArn": arn,
             "repositoryFilters": [{"filter": repo, "filterType": "WILDCARD_MATCH"}]}]})
        self.addCleanup(self.ecr.delete_signing_configuration)
        open(self.sign_hold, "w").close()
        image = s.debian_image("gzip", "signed-" + uuid.uuid4().hex)
        self.push(repo, image, tag="v1")
        out = s.wait_scan(self.ecr, repo, {"imageDigest": image.digest})
        self.assertEqual(s.findings_of(out), s.DEBIAN_FINDINGS)
        h.wait_until(lambda: "event=test_hold point=signing" in self.server.log_text(), 30,
                     what="the signing job to reach its hold")
        self.archive(repo, image.digest)
        self.wait_archived(image.config_digest)
        os.unlink(self.sign_hold)

        def signed():
            got = self.ecr.describe_image_signing_status(
                repositoryName=repo, imageId={"imageDigest": image.digest})["signingStatuses"]
            return got if got and got[0]["status"] != "IN_PROGRESS" else None
        self.assertEqual(h.wait_until(signed, 60, what="the signature")[0]["status"], "COMPLETE")
        self.assertEqual(self.status(repo, image.digest), "ARCHIVED")
        self.assertEqual(self.where(image.config_digest), (False, True))
        out = self.scan_findings(repo, image.digest)
        self.assertEqual(out["imageScanStatus"]["status"], "IMAGE_ARCHIVED", out)
        self.assertEqual(self.scans_recorded(repo, image.digest), 1)
        self.restore(repo, image.digest)
        self.wait_active(repo, image.digest)
        out = self.scan_findings(repo, image.digest)
        self.assertEqual(out["imageScanStatus"]["status"], "LIMIT_EXCEEDED", out)
        self.assertEqual(self.scans_recorded(repo, image.digest), 1)


@h.berth_only("berth's scan workers and log")
class RestoreRescanTest(TierMixin, e.ModernEcrTestCase):
    """Without a scan quota: a restore rescans an image with scan-on-push (through the
    archive tier, after its blobs are back), also when a push restores it; without
    scan-on-push the scan from before the archive is gone."""
    server_config = {"gc": {"enabled": False}, "scan": {"workers": 1, "quota_seconds": 0}}

    def test_restore_rescans(self):
        self.import_osv()
        repo = self.scan_repo(True)
        image = s.debian_image("gzip", "rescan-" + uuid.uuid4().hex)
        self.push(repo, image, tag="v1")
        first = s.wait_scan(self.ecr, repo, {"imageTag": "v1"})
        self.assertEqual(s.findings_of(first), s.DEBIAN_FINDINGS)
        self.archive(repo, image.digest)
        self.wait_archived(*image.layer_digests)
        self.restore(repo, image.digest)
        self.wait_active(repo, image.digest)
        h.wait_until(lambda: self.scans_recorded(repo, image.digest) == 2, 60,
                     what="the restored image scanned again")
        out = s.wait_scan(self.ecr, repo, {"imageTag": "v1"})
        self.assertEqual(out["imageScanStatus"]["status"], "COMPLETE", out)
        self.assertEqual(s.findings_of(out), s.DEBIAN_FINDINGS)
        self.assertGreater(out["imageScanFindings"]["imageScanCompletedAt"],
                           first["imageScanFindings"]["imageScanCompletedAt"])
        # pushing the archived image again restores it at once, and rescans it too
        self.archive(repo, image.digest)
        self.wait_archived(*image.layer_digests)
        self.push(repo, image, tag="v1")
        self.assertEqual(self.status(repo, image.digest), "ACTIVE")
        h.wait_until(lambda: self.scans_recorded(repo, image.digest) == 3, 60,
                     what="the image restored by a push scanned again")
        out = s.wait_scan(self.ecr, repo, {"imageTag": "v1"})
        self.assertEqual(s.findings_of(out), s.DEBIAN_FINDINGS)

    def test_restore_without_scan_on_push(self):
        self.import_osv()
        repo = self.scan_repo(False)
        image = s.debian_image("gzip", "manual-" + uuid.uuid4().hex)
        self.push(repo, image, tag="v1")
        self.ecr.start_image_scan(repositoryName=repo, imageId={"imageTag": "v1"})
        out = s.wait_scan(self.ecr, repo, {"imageTag": "v1"})
        self.assertEqual(s.findings_of(out), s.DEBIAN_FINDINGS)
        self.archive(repo, image.digest)
        self.restore(repo, image.digest)
        self.wait_active(repo, image.digest)
        # as a newly pushed image without scan-on-push: no scan
        self.assertBotoError("ScanNotFoundException", "describe_image_scan_findings",
                             repositoryName=repo, imageId={"imageTag": "v1"})
        detail = self.ecr.describe_images(repositoryName=repo,
                                          imageIds=[{"imageTag": "v1"}])["imageDetails"][0]
        self.assertNotIn("imageScanStatus", detail)
        self.ecr.start_image_scan(repositoryName=repo, imageId={"imageTag": "v1"})
        out = s.wait_scan(self.ecr, repo, {"imageTag": "v1"})
        self.assertEqual(s.findings_of(out), s.DEBIAN_FINDINGS)


@h.berth_only("berth vulndb import and berth's scan log")
class ImportSkipsArchivedTest(TierMixin, e.ModernEcrTestCase):
    """`berth vulndb import` queues rescans of CONTINUOUS_SCAN repositories' images and of
    scans that failed for want of a database, but not of archived images: they cannot be
    scanned (ECR: archived images must be restored before they can be scanned), their status
    stays IMAGE_ARCHIVED and their blobs stay in the archive tier."""
    server_config = {"gc": {"enabled": False}, "scan": {"workers": 1}}

    def test_import_leaves_archived_images_alone(self):
        cont = self.scan_repo(False)
        self.ecr.put_registry_scanning_configuration(scanType="ENHANCED", rules=[
            {"scanFrequency": "CONTINUOUS_SCAN",
             "repositoryFilters": [{"filter": cont, "filterType": "WILDCARD"}]}])
        self.addCleanup(self.ecr.put_registry_scanning_configuration, scanType="BASIC",
                        rules=[])
        push = self.scan_repo(True)
        # no database yet: every scan on push fails, and an import retries them; the
        # layers differ by compression, so each image's blobs are its own
        kept = s.debian_image("gzip", "kept-" + uuid.uuid4().hex)
        cold = s.debian_image("zstd", "cold-" + uuid.uuid4().hex)
        failed = s.debian_image("none", "failed-" + uuid.uuid4().hex)
        for repo, image in ((cont, kept), (cont, cold), (push, failed)):
            self.push(repo, image)
            out = s.wait_scan(self.ecr, repo, {"imageDigest": image.digest})
            self.assertEqual(out["imageScanStatus"]["status"], "FAILED", out)
        for repo, image in ((cont, cold), (push, failed)):
            self.archive(repo, image.digest)
            self.wait_archived(*image.layer_digests, image.config_digest)
        work = tempfile.mkdtemp(prefix="berth-osv-")
        self.addCleanup(shutil.rmtree, work, True)
        osv = s.write_osv(os.path.join(work, "osv"), s.OSV_RECORDS)
        rc, out = h.run_berth(["vulndb", "import", osv], server=self.server, timeout=120)
        self.assertEqual(rc, 0, out)
        # the active image only (its failed scan is covered by the continuous rescan)
        self.assertIn("rescans queued    1 (CONTINUOUS_SCAN)", out)
        self.assertNotIn("retries queued", out)
        done = s.wait_scan(self.ecr, cont, {"imageDigest": kept.digest})
        self.assertEqual(done["imageScanStatus"]["status"], "COMPLETE", done)
        self.assertEqual(s.names_of(done), s.names(s.DEBIAN_FINDINGS))
        for repo, image in ((cont, cold), (push, failed)):
            self.assertEqual(self.scans_recorded(repo, image.digest), 1)
            out = self.scan_findings(repo, image.digest)
            self.assertEqual(out["imageScanStatus"]["status"], "IMAGE_ARCHIVED", out)
            self.assertNotIn("imageScanFindings", out)
            self.assertEqual(self.status(repo, image.digest), "ARCHIVED")
            for digest in image.layer_digests + [image.config_digest]:
                self.assertEqual(self.where(digest), (False, True), digest)
        # no job waits for them: after a restore each is scanned as a restored image is
        # (the quota counts from the push a moment ago: LIMIT_EXCEEDED), once
        self.restore(cont, cold.digest)
        self.wait_active(cont, cold.digest)
        out = self.scan_findings(cont, cold.digest)
        self.assertEqual(out["imageScanStatus"]["status"], "LIMIT_EXCEEDED", out)
        self.assertEqual(self.scans_recorded(cont, cold.digest), 1)


@h.berth_only("BERTH_TEST_CRASH_AT is berth's")
class ArchiveCrashTest(TierMixin, e.ModernEcrTestCase):
    """kill -9 at each point of a move; the restarted server settles the store."""
    server_config = {"gc": {"enabled": False}}

    def restart(self, crash_at=None):
        """Restart the server (after a crash, or to arm a crash point)."""
        if self.server.proc is not None and self.server.proc.poll() is None:
            self.server.stop()
        self.server._reap()
        self.server.env.pop("BERTH_TEST_CRASH_AT", None)
        if crash_at:
            self.server.env["BERTH_TEST_CRASH_AT"] = crash_at
        self.server.start(reuse_port=True)
        type(self).reg = self.server.registry()
        type(self).ecr = c.ecr_client(self.server, *c.DUMMY_KEY)

    def ask_then_crash(self, call, repo, digest):
        """archive or restore with a crash point armed in the mover it wakes: the mover
        starts once the change is committed, and may reach the point (the process killed)
        before the request's answer is sent, so a connection closed unanswered is one
        outcome; what the change committed is checked after the restart."""
        try:
            call(repo, digest)
        except botocore.exceptions.ConnectionClosedError:
            pass

    def wait_crash(self, point):
        h.wait_until(lambda: self.server.proc.poll() is not None, 60,
                     what="the crash at %s" % point)
        self.assertIn("event=test_crash point=%s" % point, self.server.log_text())

    def assertConsistent(self, image):
        """Each blob in exactly one tier; no stage left in the archive store."""
        for digest in image.blobs:
            std, arc = self.where(digest)
            self.assertTrue(std != arc, "%s: blob store %s, archive %s" % (digest, std, arc))
        self.assertEqual(self.archive_stages(), [])

    def test_crash_while_archiving(self):
        for point in ("archive-staged", "archive-published", "archive-flipped",
                      "archive-committed"):
            with self.subTest(point=point):
                self.restart(crash_at=point)
                repo = self.create_repo()
                image = tier_image(text_kib=64)
                self.push(repo, image, tag="v1")
                self.ask_then_crash(self.archive, repo, image.digest)
                self.wait_crash(point)
                self.restart()
                # the restarted mover finishes the job (or it was done)
                self.wait_archived(*image.layer_digests, image.config_digest)
                self.assertConsistent(image)
                self.assertRefused(repo, image.layer_digests[0])
                self.restore(repo, image.digest)
                self.wait_active(repo, image.digest)
                self.assertConsistent(image)
                self.assertServed(repo, image)

    def test_crash_while_restoring(self):
        # restore-prepublished: linked in under the blob's name before the write
        # transaction (its directory fsynced), no row changed yet
        for point in ("restore-staged", "restore-prepublished", "restore-published",
                      "restore-committed"):
            with self.subTest(point=point):
                self.restart()
                repo = self.create_repo()
                image = tier_image(text_kib=64)
                self.push(repo, image, tag="v1")
                self.archive(repo, image.digest)
                self.wait_archived(*image.layer_digests, image.config_digest)
                self.restart(crash_at=point)
                self.ask_then_crash(self.restore, repo, image.digest)
                self.wait_crash(point)
                self.restart()
                self.wait_active(repo, image.digest)
                self.wait_standard(*image.layer_digests, image.config_digest)
                self.assertConsistent(image)
                self.assertServed(repo, image)


if __name__ == "__main__":
    h.main()
