# berth-python: modern
"""ECR's archive storage class (UpdateImageStorageClass) against the real berth, with the
machine image's boto3 and AWS CLI v1: image status and its filters in DescribeImages and
ListImages, archived images refused to /v2 pulls, BatchGetImage and StartImageScan, layer
availability ARCHIVED, restores (ACTIVATING while blobs come back from the archive tier, and
for storage.archive.restore_seconds),
a push restoring an archived image, indexes archived with their children."""

import json
import time

import berth_harness as h
import ecr_helpers as e


class ArchiveTest(e.ModernEcrTestCase):
    def describe(self, repo, status=None):
        params = {"repositoryName": repo}
        if status is not None:
            params["filter"] = {"imageStatus": status}
        return {d["imageDigest"]: d for d in self.ecr.describe_images(**params)["imageDetails"]}

    def listed(self, repo, status=None):
        params = {"repositoryName": repo}
        if status is not None:
            params["filter"] = {"imageStatus": status}
        return sorted((i["imageDigest"], i.get("imageTag"))
                      for i in self.ecr.list_images(**params)["imageIds"])

    def wait_active(self, repo, *digests):
        """Wait until the images are ACTIVE: a restore is ACTIVATING while the archive tier
        job brings their blobs back (at once when the job had not moved them yet)."""
        def active():
            details = self.ecr.describe_images(
                repositoryName=repo, imageIds=[{"imageDigest": d} for d in digests])
            return all(d["imageStatus"] == "ACTIVE" for d in details["imageDetails"])
        h.wait_until(active, 60, interval=0.1, what="images ACTIVE again")

    def test_archive_and_restore(self):
        repo = self.create_repo()
        image, other = h.build_image(), h.build_image()
        self.push(repo, image, tag="v1")
        self.push(repo, other, tag="v2")
        detail = self.describe(repo)[image.digest]
        self.assertEqual(detail["imageStatus"], "ACTIVE")
        self.assertNotIn("lastArchivedAt", detail)
        self.assertNotIn("lastActivatedAt", detail)

        out = self.aws("update-image-storage-class", "--repository-name", repo,
                       "--image-id", "imageTag=v1", "--target-storage-class", "ARCHIVE")
        self.assertEqual(out, {"registryId": e.REGISTRY_ID, "repositoryName": repo,
                               "imageId": {"imageDigest": image.digest, "imageTag": "v1"},
                               "imageStatus": "ARCHIVED"})
        # not pulled over /v2, by tag or digest, GET or HEAD
        for ref in ("v1", image.digest):
            for method in ("GET", "HEAD"):
                resp = self.reg.get_manifest(repo, ref, method=method)
                self.assertStatus(resp, 404)
                if method == "GET":
                    self.assertIn(b"MANIFEST_UNKNOWN", resp.body)
        self.assertStatus(self.reg.get_manifest(repo, "v2"), 200)

        # listings show ACTIVE images unless asked
        self.assertEqual(set(self.describe(repo)), {other.digest})
        archived = self.describe(repo, "ARCHIVED")
        self.assertEqual(set(archived), {image.digest})
        self.assertEqual(archived[image.digest]["imageStatus"], "ARCHIVED")
        self.assertEqual(archived[image.digest]["imageTags"], ["v1"])
        self.assertIn("lastArchivedAt", archived[image.digest])
        self.assertEqual(set(self.describe(repo, "ANY")), {image.digest, other.digest})
        self.assertEqual(self.describe(repo, "ACTIVATING"), {})
        self.assertEqual(self.listed(repo), [(other.digest, "v2")])
        self.assertEqual(self.listed(repo, "ARCHIVED"), [(image.digest, "v1")])
        self.assertEqual(self.listed(repo, "ANY"), sorted([(image.digest, "v1"), (other.digest, "v2")]))
        cli = self.aws("describe-images", "--repository-name", repo,
                       "--filter", "imageStatus=ARCHIVED")["imageDetails"]
        self.assertEqual([d["imageDigest"] for d in cli], [image.digest])
        # described by id whatever its status
        by_id = self.ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
        self.assertEqual(by_id["imageDetails"][0]["imageStatus"], "ARCHIVED")

        # BatchGetImage fails it; StartImageScan refuses it
        got = self.ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"},
                                                                      {"imageTag": "v2"}])
        self.assertEqual([i["imageId"]["imageTag"] for i in got["images"]], ["v2"])
        self.assertEqual([(f["imageId"]["imageTag"], f["failureCode"]) for f in got["failures"]],
                         [("v1", "ImageInaccessible")])
        self.assertIn("is archived; restore it", got["failures"][0]["failureReason"])
        self.assertBotoError("ImageArchivedException", "start_image_scan", repositoryName=repo,
                             imageId={"imageTag": "v1"})
        # its layers are ARCHIVED, the other image's AVAILABLE
        layers = self.ecr.batch_check_layer_availability(
            repositoryName=repo, layerDigests=image.layer_digests + other.layer_digests)["layers"]
        self.assertEqual({l["layerDigest"]: l["layerAvailability"] for l in layers},
                         dict([(d, "ARCHIVED") for d in image.layer_digests] +
                              [(d, "AVAILABLE") for d in other.layer_digests]))

        # no download URL for a layer only archived images use
        self.assertBotoError("LayerInaccessibleException", "get_download_url_for_layer",
                             repositoryName=repo, layerDigest=image.layer_digests[0])
        self.ecr.get_download_url_for_layer(repositoryName=repo,
                                            layerDigest=other.layer_digests[0])

        # archiving again changes nothing
        again = self.ecr.update_image_storage_class(repositoryName=repo,
                                                    imageId={"imageDigest": image.digest},
                                                    targetStorageClass="ARCHIVE")
        self.assertEqual(again["imageStatus"], "ARCHIVED")
        self.assertEqual(again["imageId"], {"imageDigest": image.digest})

        # restore: ACTIVE once its blobs are back from the archive tier (ACTIVE at once when
        # they had not moved yet: storage.archive.restore_seconds is 0)
        out = self.ecr.update_image_storage_class(repositoryName=repo,
                                                  imageId={"imageTag": "v1"},
                                                  targetStorageClass="STANDARD")
        self.assertIn(out["imageStatus"], ("ACTIVE", "ACTIVATING"))
        self.wait_active(repo, image.digest)
        detail = self.describe(repo)[image.digest]
        self.assertEqual(detail["imageStatus"], "ACTIVE")
        self.assertIn("lastArchivedAt", detail)
        self.assertGreaterEqual(detail["lastActivatedAt"], detail["lastArchivedAt"])
        resp = self.reg.get_manifest(repo, "v1")
        self.assertStatus(resp, 200)
        self.assertEqual(resp.body, image.manifest)
        self.assertEqual(self.describe(repo, "ARCHIVED"), {})

    def assertBlobRefused(self, repo, digest):
        self.assertStatus(self.reg.head_blob(repo, digest), 404)
        resp = self.reg.get_blob(repo, digest)
        self.assertStatus(resp, 404)
        err = json.loads(resp.body)["errors"][0]
        self.assertEqual(err["code"], "BLOB_UNKNOWN")
        self.assertEqual(err["detail"], {"digest": digest})

    def assertBlobServed(self, repo, digest, data):
        resp = self.reg.head_blob(repo, digest)
        self.assertStatus(resp, 200)
        self.assertHeader(resp, "Docker-Content-Digest", digest)
        resp = self.reg.get_blob(repo, digest)
        self.assertStatus(resp, 200)
        self.assertEqual(resp.body, data)

    def test_blobs_of_archived_images(self):
        repo = self.create_repo()
        unique, active = h.build_image(), h.build_image()
        # same layers and config as the active image, another manifest
        sharing = h.Image(dict(active.obj, annotations={"copy": "1"}), active.blobs,
                          active.media_type)
        self.push(repo, unique, tag="unique")
        self.push(repo, active, tag="active")
        self.push(repo, sharing, tag="sharing")
        loose = h.random_bytes(512)  # linked to the repository, in no manifest
        loose_digest = h.digest_of(loose)
        self.assertStatus(self.reg.push_blob(repo, loose), 201)
        for tag in ("unique", "sharing"):
            self.ecr.update_image_storage_class(repositoryName=repo, imageId={"imageTag": tag},
                                                targetStorageClass="ARCHIVE")

        # the unique image's layers and config are not pulled, GET or HEAD, nor a range
        for digest in unique.layer_digests + [unique.config_digest]:
            self.assertBlobRefused(repo, digest)
        resp = self.reg.get_blob(repo, unique.layer_digests[0], headers={"Range": "bytes=0-9"})
        self.assertStatus(resp, 404)
        # the sharing image's are, since an active image uses them; and a loose blob
        for digest, data in active.blobs.items():
            self.assertBlobServed(repo, digest, data)
        self.assertBlobServed(repo, loose_digest, loose)
        # the rule is per repository, as in BatchCheckLayerAvailability
        other = self.create_repo()
        self.push(other, unique, tag="v1")
        self.assertBlobServed(other, unique.layer_digests[0], unique.blobs[unique.layer_digests[0]])
        self.assertBlobRefused(repo, unique.layer_digests[0])

        # a restore makes them pullable again, byte for byte
        self.ecr.update_image_storage_class(repositoryName=repo, imageId={"imageTag": "unique"},
                                            targetStorageClass="STANDARD")
        self.wait_active(repo, unique.digest)
        for digest, data in unique.blobs.items():
            self.assertBlobServed(repo, digest, data)
        # the whole image pulls again
        self.assertEqual(self.reg.get_manifest(repo, "unique").body, unique.manifest)

        # archiving the active image leaves the shared layers to archived images only
        self.ecr.update_image_storage_class(repositoryName=repo, imageId={"imageTag": "active"},
                                            targetStorageClass="ARCHIVE")
        for digest in active.layer_digests:
            self.assertBlobRefused(repo, digest)
        self.assertBlobServed(repo, loose_digest, loose)

    def test_push_restores(self):
        repo = self.create_repo()
        image = h.build_image()
        self.push(repo, image, tag="v1")
        self.ecr.update_image_storage_class(repositoryName=repo, imageId={"imageTag": "v1"},
                                            targetStorageClass="ARCHIVE")
        self.assertStatus(self.reg.get_manifest(repo, "v1"), 404)
        self.push(repo, image, tag="v1")
        detail = self.describe(repo)[image.digest]
        self.assertEqual(detail["imageStatus"], "ACTIVE")
        self.assertIn("lastActivatedAt", detail)
        self.assertStatus(self.reg.get_manifest(repo, "v1"), 200)

    def test_index_goes_with_its_children(self):
        repo = self.create_repo()
        children = [h.build_image(arch="amd64"), h.build_image(arch="arm64")]
        index = h.Index(children)
        self.push(repo, index, tag="multi")
        err = self.assertBotoError("ImageStorageClassUpdateNotSupportedException",
                                   "update_image_storage_class", repositoryName=repo,
                                   imageId={"imageDigest": children[0].digest},
                                   targetStorageClass="ARCHIVE")
        self.assertIn("manifest list", err["Message"])
        self.ecr.update_image_storage_class(repositoryName=repo, imageId={"imageTag": "multi"},
                                            targetStorageClass="ARCHIVE")
        self.assertEqual(set(self.describe(repo, "ARCHIVED")),
                         {index.digest} | {c.digest for c in children})
        for child in children:
            self.assertStatus(self.reg.get_manifest(repo, child.digest), 404)
        self.ecr.update_image_storage_class(repositoryName=repo, imageId={"imageTag": "multi"},
                                            targetStorageClass="STANDARD")
        self.wait_active(repo, index.digest, *[c.digest for c in children])
        self.assertEqual(set(self.describe(repo)), {index.digest} | {c.digest for c in children})
        for child in children:
            self.assertStatus(self.reg.get_manifest(repo, child.digest), 200)

    def test_errors(self):
        repo = self.create_repo()
        image = h.build_image()
        self.push(repo, image, tag="v1")
        self.assertBotoError("RepositoryNotFoundException", "update_image_storage_class",
                             repositoryName=repo + "-missing", imageId={"imageTag": "v1"},
                             targetStorageClass="ARCHIVE")
        self.assertBotoError("ImageNotFoundException", "update_image_storage_class",
                             repositoryName=repo, imageId={"imageTag": "nope"},
                             targetStorageClass="ARCHIVE")
        self.assertCliError("ImageNotFoundException", "update-image-storage-class",
                            "--repository-name", repo, "--image-id",
                            "imageDigest=sha256:" + "0" * 64, "--target-storage-class",
                            "ARCHIVE")
        self.assertBotoError("InvalidParameterException", "update_image_storage_class",
                             repositoryName=repo, imageId={"imageTag": "v1"},
                             targetStorageClass="GLACIER")
        self.assertAwsError(self.call("UpdateImageStorageClass",
                                      {"repositoryName": repo, "imageId": {"imageTag": "v1"}}),
                            400, "InvalidParameterException")
        self.assertBotoError("InvalidParameterException", "describe_images",
                             repositoryName=repo, filter={"imageStatus": "FROZEN"})
        # nothing changed
        self.assertEqual(self.describe(repo)[image.digest]["imageStatus"], "ACTIVE")


class SlowRestoreTest(e.ModernEcrTestCase):
    """A restore that takes an hour: the image is ACTIVATING, not pulled, and cannot be
    archived again meanwhile; a push of it makes it ACTIVE at once."""

    server_config = {"storage": {"archive": {"restore_seconds": 3600}}}

    def test_activating(self):
        repo = self.create_repo()
        image = h.build_image()
        self.push(repo, image, tag="v1")
        self.ecr.update_image_storage_class(repositoryName=repo, imageId={"imageTag": "v1"},
                                            targetStorageClass="ARCHIVE")
        out = self.aws("update-image-storage-class", "--repository-name", repo,
                       "--image-id", "imageTag=v1", "--target-storage-class", "STANDARD")
        self.assertEqual(out["imageStatus"], "ACTIVATING")
        self.assertStatus(self.reg.get_manifest(repo, "v1"), 404)
        got = self.ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
        self.assertEqual([(f["failureCode"], f["failureReason"]) for f in got["failures"]],
                         [("ImageInaccessible", "The image with digest '%s' is being restored "
                           "from the archive" % image.digest)])
        activating = self.ecr.describe_images(repositoryName=repo,
                                              filter={"imageStatus": "ACTIVATING"})
        self.assertEqual([(d["imageDigest"], d["imageStatus"])
                          for d in activating["imageDetails"]], [(image.digest, "ACTIVATING")])
        self.assertEqual(self.ecr.describe_images(repositoryName=repo)["imageDetails"], [])
        self.assertBotoError("ImageStorageClassUpdateNotSupportedException",
                             "update_image_storage_class", repositoryName=repo,
                             imageId={"imageTag": "v1"}, targetStorageClass="ARCHIVE")
        # a restore asked again leaves it as it is
        again = self.ecr.update_image_storage_class(repositoryName=repo,
                                                    imageId={"imageTag": "v1"},
                                                    targetStorageClass="STANDARD")
        self.assertEqual(again["imageStatus"], "ACTIVATING")
        self.push(repo, image, tag="v1")
        self.assertStatus(self.reg.get_manifest(repo, "v1"), 200)
        self.assertEqual(self.ecr.describe_images(repositoryName=repo)["imageDetails"][0]
                         ["imageStatus"], "ACTIVE")


ARCHIVE_ALL_BUT_NEWEST = json.dumps({"rules": [
    {"rulePriority": 1, "description": "keep the newest image active, archive the others",
     "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
     "action": {"type": "transition", "targetStorageClass": "archive"}},
    {"rulePriority": 2, "description": "expire what has been archived for a year",
     "selection": {"tagStatus": "any", "storageClass": "archive",
                   "countType": "sinceImageTransitioned", "countUnit": "days",
                   "countNumber": 365},
     "action": {"type": "expire"}}]})


class LifecycleTransitionTest(e.ModernEcrTestCase):
    """Lifecycle rules with action transition: previewed with TRANSITION results and
    transitioningImageTotalCounts, enforced by `berth lifecycle run` as archives."""

    def test_preview_and_enforce(self):
        repo = self.create_repo()
        images = [h.build_image() for _ in range(3)]
        for n, image in enumerate(images):
            self.push(repo, image, tag="v%d" % n)
            time.sleep(0.01)  # distinct push times: the last pushed is the newest
        self.ecr.put_lifecycle_policy(repositoryName=repo,
                                      lifecyclePolicyText=ARCHIVE_ALL_BUT_NEWEST)
        self.assertEqual(self.ecr.get_lifecycle_policy(repositoryName=repo)
                         ["lifecyclePolicyText"], ARCHIVE_ALL_BUT_NEWEST)
        self.ecr.start_lifecycle_policy_preview(repositoryName=repo)
        self.ecr.get_waiter("lifecycle_policy_preview_complete").wait(
            repositoryName=repo, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        prev = self.ecr.get_lifecycle_policy_preview(repositoryName=repo)
        self.assertEqual(prev["summary"], {
            "expiringImageTotalCount": 0,
            "transitioningImageTotalCounts": [{"targetStorageClass": "ARCHIVE",
                                               "imageTotalCount": 2}]})
        self.assertEqual([(r["imageDigest"], r["action"], r["storageClass"],
                           r["appliedRulePriority"]) for r in prev["previewResults"]],
                         [(i.digest, {"type": "TRANSITION", "targetStorageClass": "ARCHIVE"},
                           "STANDARD", 1) for i in images[:2]])
        cli = self.aws("get-lifecycle-policy-preview", "--repository-name", repo)
        self.assertEqual(cli["summary"]["transitioningImageTotalCounts"],
                         [{"targetStorageClass": "ARCHIVE", "imageTotalCount": 2}])
        # the preview archived nothing
        self.assertEqual(len(self.ecr.describe_images(repositoryName=repo)["imageDetails"]), 3)

        rc, out = h.run_berth(["lifecycle", "run", repo], server=self.server)
        self.assertEqual(rc, 0, out)
        self.assertIn("%s: 3 images, 2 selected, 0 expired, 2 archived" % repo, out)
        archived = self.ecr.describe_images(repositoryName=repo,
                                            filter={"imageStatus": "ARCHIVED"})["imageDetails"]
        self.assertEqual(sorted(d["imageDigest"] for d in archived),
                         sorted(i.digest for i in images[:2]))
        self.assertEqual([d["imageDigest"] for d in
                          self.ecr.describe_images(repositoryName=repo)["imageDetails"]],
                         [images[2].digest])
        self.assertStatus(self.reg.get_manifest(repo, "v0"), 404)
        self.assertStatus(self.reg.get_manifest(repo, "v2"), 200)
        # a second run finds nothing more to do: archived images are in another class
        rc, out = h.run_berth(["lifecycle", "run", repo], server=self.server)
        self.assertEqual(rc, 0, out)
        self.assertIn("%s: 3 images, 0 selected, 0 expired" % repo, out)

    def test_validation(self):
        repo = self.create_repo()
        bad = json.dumps({"rules": [
            {"rulePriority": 1,
             "selection": {"tagStatus": "any", "storageClass": "archive",
                           "countType": "sinceImageTransitioned", "countUnit": "days",
                           "countNumber": 30},
             "action": {"type": "expire"}}]})
        err = self.assertBotoError("InvalidParameterException", "put_lifecycle_policy",
                                   repositoryName=repo, lifecyclePolicyText=bad)
        self.assertIn("at least 90 days", err["Message"])
        bad = json.dumps({"rules": [
            {"rulePriority": 1,
             "selection": {"tagStatus": "any", "countType": "sinceImagePulled",
                           "countUnit": "days", "countNumber": 30},
             "action": {"type": "transition"}}]})
        err = self.assertBotoError("InvalidParameterException", "put_lifecycle_policy",
                                   repositoryName=repo, lifecyclePolicyText=bad)
        self.assertIn("instance failed to match exactly one schema", err["Message"])


if __name__ == "__main__":
    h.main()
