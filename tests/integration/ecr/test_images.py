"""ECR image operations (ListImages, DescribeImages, BatchGetImage, BatchDeleteImage, PutImage,
ListImageReferrers) against the real berth, driven by /usr/bin/aws, boto3 and raw requests,
over the same store the /v2 API and skopeo use."""

import json
import os
import shutil

import clients as c  # first: it cleans the environment botocore reads
import berth_harness as h
import ecr_helpers as e

REFERRER_A = "application/vnd.example.sbom.v1+json"
REFERRER_B = "application/vnd.example.signature.v1+json"


class ListImagesTest(e.EcrTestCase):
    def test_one_entry_per_tag_untagged_by_digest(self):
        repo = self.create_repo()
        a = h.build_image(layer_count=1)
        b = h.build_image(layer_count=1)
        self.push(repo, a, "a1")
        self.reg.put_manifest(repo, "a2", a.manifest, a.media_type)
        self.push(repo, b)  # by digest: untagged
        ids = self.aws("list-images", "--repository-name", repo)["imageIds"]
        self.assertCountEqual(ids, [{"imageDigest": a.digest, "imageTag": "a1"},
                                    {"imageDigest": a.digest, "imageTag": "a2"},
                                    {"imageDigest": b.digest}])
        tagged = self.ecr.list_images(repositoryName=repo, filter={"tagStatus": "TAGGED"})
        self.assertEqual(tagged["imageIds"], [{"imageDigest": a.digest, "imageTag": "a1"},
                                              {"imageDigest": a.digest, "imageTag": "a2"}])
        self.assertNotIn("nextToken", tagged)
        untagged = self.aws("list-images", "--repository-name", repo,
                            "--filter", "tagStatus=UNTAGGED")["imageIds"]
        self.assertEqual(untagged, [{"imageDigest": b.digest}])
        # no image is archived
        archived = self.ok("ListImages", {"repositoryName": repo,
                                          "filter": {"imageStatus": "ARCHIVED"}})
        self.assertEqual(archived, {"imageIds": []})

    def test_empty_repository(self):
        repo = self.create_repo()
        self.assertEqual(self.ok("ListImages", {"repositoryName": repo}), {"imageIds": []})

    def test_cli_pagination_over_tags_and_untagged(self):
        repo = self.create_repo()
        img = h.build_image(layer_count=1)
        self.push(repo, img, "t0")
        for i in range(1, 5):
            self.reg.put_manifest(repo, "t%d" % i, img.manifest, img.media_type)
        loose = [h.build_image(layer_count=1) for _ in range(2)]
        for l in loose:
            self.push(repo, l)
        # the CLI follows nextToken until it is absent and fails if one repeats
        ids = self.aws("list-images", "--repository-name", repo, "--page-size", "2")["imageIds"]
        self.assertEqual(len(ids), 7)
        self.assertEqual([i.get("imageTag") for i in ids[:5]], ["t%d" % i for i in range(5)])
        self.assertEqual(sorted(i["imageDigest"] for i in ids[5:]),
                         sorted(l.digest for l in loose))
        # the same by hand: tokens advance and the last page has none
        seen, tokens, token = [], [], None
        while True:
            kw = {"repositoryName": repo, "maxResults": 2}
            if token:
                kw["nextToken"] = token
            page = self.ecr.list_images(**kw)
            self.assertLessEqual(len(page["imageIds"]), 2)
            seen += page["imageIds"]
            token = page.get("nextToken")
            if not token:
                break
            self.assertNotIn(token, tokens)
            tokens.append(token)
        self.assertEqual(seen, ids)
        self.assertEqual(len(tokens), 3)
        # exactly full tag pages followed by untagged images still reach them
        page = self.ecr.list_images(repositoryName=repo, maxResults=5)
        self.assertEqual(len(page["imageIds"]), 5)
        rest = self.ecr.list_images(repositoryName=repo, maxResults=5,
                                    nextToken=page["nextToken"])
        self.assertEqual(len(rest["imageIds"]), 2)
        self.assertNotIn("nextToken", rest)

    def test_errors(self):
        self.assertCliError("RepositoryNotFoundException", "list-images", "--repository-name",
                            "itest/missing",
                            message="The repository with name 'itest/missing' does not exist "
                                    "in the registry with id '000000000000'")
        repo = self.create_repo()
        err = self.assertBotoError("InvalidParameterException", "list_images",
                                   repositoryName=repo, filter={"tagStatus": "SOME"})
        self.assertIn("Member must satisfy enum value set: [TAGGED, UNTAGGED, ANY]",
                      err["Message"])
        self.assertBotoError("InvalidParameterException", "list_images", repositoryName=repo,
                             nextToken="not-a-token")
        self.assertBotoError("InvalidParameterException", "list_images", repositoryName=repo,
                             maxResults=1001)
        self.assertBotoError("RepositoryNotFoundException", "list_images", repositoryName=repo,
                             registryId="123456789012")
        self.assertBotoError("InvalidParameterException", "list_images", repositoryName=repo,
                             registryId="12345")


class DescribeImagesTest(e.EcrTestCase):
    def test_image_detail(self):
        repo = self.create_repo()
        img = h.build_image(layer_count=3, layer_size=2000)
        self.push(repo, img, "v2")
        self.reg.put_manifest(repo, "v1", img.manifest, img.media_type)
        layer_sizes = sum(l["size"] for l in img.obj["layers"])
        resp = self.call("DescribeImages", {"repositoryName": repo})
        doc = json.loads(resp.body)
        (detail,) = doc["imageDetails"]
        self.assertNotIn("nextToken", doc)
        self.assertEqual(detail["registryId"], e.REGISTRY_ID)
        self.assertEqual(detail["repositoryName"], repo)
        self.assertEqual(detail["imageDigest"], img.digest)
        self.assertEqual(detail["imageTags"], ["v1", "v2"])
        self.assertEqual(detail["imageSizeInBytes"], layer_sizes)
        self.assertIsInstance(detail["imagePushedAt"], (int, float))  # epoch seconds
        self.assertEqual(detail["imageManifestMediaType"], h.MT_OCI_MANIFEST)
        self.assertEqual(detail["artifactMediaType"], h.MT_OCI_CONFIG)
        self.assertEqual(detail["imageStatus"], "ACTIVE")
        self.assertNotIn("lastRecordedPullTime", detail)
        self.assertNotIn("subjectManifestDigest", detail)
        # a pull over /v2 is recorded
        self.assertStatus(self.reg.get_manifest(repo, "v1", accept=h.MT_OCI_MANIFEST), 200)
        detail = self.ecr.describe_images(repositoryName=repo)["imageDetails"][0]
        self.assertIn("lastRecordedPullTime", detail)
        self.assertGreaterEqual(detail["lastRecordedPullTime"], detail["imagePushedAt"])

    def test_untagged_index_and_subject(self):
        repo = self.create_repo()
        small = h.build_image(layer_count=1, layer_size=100)
        big = h.build_image(layer_count=2, layer_size=5000)
        index = h.Index([small, big], media_type=h.MT_DOCKER_LIST)
        self.push(repo, index, "multi")
        art = h.build_artifact(subject=small.descriptor())
        self.push(repo, art)
        details = {d["imageDigest"]: d
                   for d in self.ok("DescribeImages", {"repositoryName": repo})["imageDetails"]}
        self.assertEqual(set(details), {small.digest, big.digest, index.digest, art.digest})
        # untagged: no imageTags member at all (not an empty list)
        self.assertNotIn("imageTags", details[small.digest])
        idx = details[index.digest]
        self.assertEqual(idx["imageTags"], ["multi"])
        self.assertEqual(idx["imageManifestMediaType"], h.MT_DOCKER_LIST)
        self.assertNotIn("artifactMediaType", idx)
        self.assertEqual(idx["imageSizeInBytes"],
                         max(sum(l["size"] for l in img.obj["layers"]) for img in (small, big)))
        self.assertEqual(details[art.digest]["subjectManifestDigest"], small.digest)
        self.assertEqual(details[art.digest]["artifactMediaType"], h.MT_OCI_EMPTY)
        # filters
        tagged = self.ecr.describe_images(repositoryName=repo, filter={"tagStatus": "TAGGED"})
        self.assertEqual([d["imageDigest"] for d in tagged["imageDetails"]], [index.digest])
        untagged = self.ecr.describe_images(repositoryName=repo,
                                            filter={"tagStatus": "UNTAGGED"})
        self.assertEqual(len(untagged["imageDetails"]), 3)

    def test_image_ids(self):
        repo = self.create_repo()
        a = h.build_image(layer_count=1)
        b = h.build_image(layer_count=1)
        self.push(repo, a, "a")
        self.push(repo, b, "b")
        out = self.aws("describe-images", "--repository-name", repo, "--image-ids",
                       "imageTag=a", "imageDigest=%s" % b.digest, "imageTag=b")
        # one detail per image, however many ids name it
        self.assertEqual([d["imageDigest"] for d in out["imageDetails"]], [a.digest, b.digest])
        self.assertCliError("ImageNotFoundException", "describe-images", "--repository-name", repo,
                            "--image-ids", "imageTag=nope",
                            message="The image with imageId {imageDigest:'null', "
                                    "imageTag:'nope'} does not exist within the repository "
                                    "with name '%s' in the registry with id '000000000000'"
                                    % repo)
        self.assertBotoError("ImageNotFoundException", "describe_images", repositoryName=repo,
                             imageIds=[{"imageTag": "a", "imageDigest": b.digest}])
        self.assertBotoError("InvalidParameterException", "describe_images",
                             repositoryName=repo, imageIds=[{"imageTag": "a"}], maxResults=5)
        self.assertBotoError("InvalidParameterException", "describe_images",
                             repositoryName=repo, imageIds=[{"imageDigest": "sha256:zz"}])
        self.assertBotoError("RepositoryNotFoundException", "describe_images",
                             repositoryName="itest/none")

    def test_cli_pagination(self):
        repo = self.create_repo()
        images = [h.build_image(layer_count=1) for _ in range(5)]
        for i, img in enumerate(images):
            self.push(repo, img, "v%d" % i if i % 2 else None)
        out = self.aws("describe-images", "--repository-name", repo, "--page-size", "2")
        digests = [d["imageDigest"] for d in out["imageDetails"]]
        self.assertEqual(digests, sorted(i.digest for i in images))
        first = self.ecr.describe_images(repositoryName=repo, maxResults=2)
        second = self.ecr.describe_images(repositoryName=repo, maxResults=2,
                                          nextToken=first["nextToken"])
        self.assertNotEqual(first["nextToken"], second["nextToken"])
        third = self.ecr.describe_images(repositoryName=repo, maxResults=2,
                                         nextToken=second["nextToken"])
        self.assertEqual(len(third["imageDetails"]), 1)
        self.assertNotIn("nextToken", third)


class BatchGetImageTest(e.EcrTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.repo_name = "itest/batch-get"
        cls.ecr.create_repository(repositoryName=cls.repo_name)
        cls.img = h.build_image(layer_count=1, docker=True)
        cls.other = h.build_image(layer_count=1)
        reg = cls.server.registry()
        h.expect_status(reg.push_image(cls.repo_name, cls.img, tag="v1"), 201)
        h.expect_status(reg.push_image(cls.repo_name, cls.other, tag="v2"), 201)

    def test_found_by_tag_digest_and_both(self):
        out = self.ecr.batch_get_image(repositoryName=self.repo_name, imageIds=[
            {"imageTag": "v1"}, {"imageDigest": self.img.digest},
            {"imageTag": "v1", "imageDigest": self.img.digest}])
        self.assertEqual(out["failures"], [])
        self.assertEqual(len(out["images"]), 3)
        for image in out["images"]:
            self.assertEqual(image["registryId"], e.REGISTRY_ID)
            self.assertEqual(image["repositoryName"], self.repo_name)
            self.assertEqual(image["imageManifest"].encode(), self.img.manifest)
            self.assertEqual(image["imageManifestMediaType"], h.MT_DOCKER_MANIFEST)
        self.assertEqual(out["images"][0]["imageId"],
                         {"imageDigest": self.img.digest, "imageTag": "v1"})
        self.assertEqual(out["images"][1]["imageId"], {"imageDigest": self.img.digest})

    def test_failures(self):
        bad_digest = "sha256:" + "0" * 64
        out = self.aws("batch-get-image", "--repository-name", self.repo_name, "--image-ids",
                       "imageTag=nope", "imageDigest=%s" % bad_digest,
                       "imageTag=v1,imageDigest=%s" % self.other.digest,
                       "imageDigest=bad", "imageTag=-x")
        self.assertEqual(out["images"], [])
        codes = [(f["imageId"], f["failureCode"]) for f in out["failures"]]
        self.assertEqual(codes, [
            ({"imageTag": "nope"}, "ImageNotFound"),
            ({"imageDigest": bad_digest}, "ImageNotFound"),
            ({"imageTag": "v1", "imageDigest": self.other.digest}, "ImageTagDoesNotMatchDigest"),
            ({"imageDigest": "bad"}, "InvalidImageDigest"),
            ({"imageTag": "-x"}, "InvalidImageTag"),
        ])
        self.assertEqual(out["failures"][0]["failureReason"], "Requested image not found")
        # an id with neither member (the CLI's shorthand cannot send it)
        doc = self.ok("BatchGetImage", {"repositoryName": self.repo_name, "imageIds": [{}]})
        self.assertEqual(doc["images"], [])
        self.assertEqual(doc["failures"], [{
            "imageId": {}, "failureCode": "MissingDigestAndTag",
            "failureReason": "Invalid request parameters: both tag and digest cannot be null"}])

    def test_accepted_media_types(self):
        out = self.ecr.batch_get_image(
            repositoryName=self.repo_name, imageIds=[{"imageTag": "v1"}, {"imageTag": "v2"}],
            acceptedMediaTypes=[h.MT_DOCKER_MANIFEST])
        self.assertEqual([i["imageId"]["imageTag"] for i in out["images"]], ["v1"])
        (failure,) = out["failures"]
        self.assertEqual(failure["imageId"], {"imageTag": "v2"})
        self.assertEqual(failure["failureCode"], "ImageNotFound")
        self.assertIn(h.MT_OCI_MANIFEST, failure["failureReason"])
        both = self.ecr.batch_get_image(
            repositoryName=self.repo_name, imageIds=[{"imageTag": "v1"}, {"imageTag": "v2"}],
            acceptedMediaTypes=[h.MT_DOCKER_MANIFEST, h.MT_OCI_MANIFEST])
        self.assertEqual(len(both["images"]), 2)

    def test_errors(self):
        self.assertBotoError("RepositoryNotFoundException", "batch_get_image",
                             repositoryName="itest/none", imageIds=[{"imageTag": "x"}])
        resp = self.call("BatchGetImage", {"repositoryName": self.repo_name,
                                           "imageIds": [{"imageTag": "x"}] * 101})
        self.assertAwsError(resp, 400, "InvalidParameterException")
        resp = self.call("BatchGetImage", {"repositoryName": self.repo_name,
                                           "imageIds": [{"imageTag": "x" * 301}]})
        self.assertAwsError(resp, 400, "InvalidParameterException")
        resp = self.call("BatchGetImage", {"repositoryName": self.repo_name,
                                           "imageIds": ["v1"]})
        self.assertAwsError(resp, 400, "SerializationException")
        resp = self.call("BatchGetImage", {"repositoryName": self.repo_name})
        self.assertAwsError(resp, 400, "InvalidParameterException",
                            "Invalid parameter at 'imageIds' failed to satisfy constraint: "
                            "'Member must not be null'")


class BatchDeleteImageTest(e.EcrTestCase):
    def test_by_tag_then_last_tag(self):
        repo = self.create_repo()
        img = h.build_image(layer_count=1)
        self.push(repo, img, "x")
        self.reg.put_manifest(repo, "y", img.manifest, img.media_type)
        out = self.aws("batch-delete-image", "--repository-name", repo, "--image-ids",
                       "imageTag=x")
        self.assertEqual(out, {"imageIds": [{"imageDigest": img.digest, "imageTag": "x"}],
                               "failures": []})
        self.assertStatus(self.reg.get_manifest(repo, img.digest), 200)
        self.assertStatus(self.reg.get_manifest(repo, "x"), 404)
        out = self.ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "y"}])
        self.assertEqual(out["imageIds"], [{"imageDigest": img.digest, "imageTag": "y"}])
        # the last tag took the image with it, as /v2 sees
        self.assertStatus(self.reg.get_manifest(repo, img.digest), 404)
        self.assertEqual(self.ecr.list_images(repositoryName=repo)["imageIds"], [])

    def test_by_digest_removes_all_tags(self):
        repo = self.create_repo()
        img = h.build_image(layer_count=1)
        loose = h.build_image(layer_count=1)
        self.push(repo, img, "a")
        self.reg.put_manifest(repo, "b", img.manifest, img.media_type)
        self.push(repo, loose)
        out = self.ecr.batch_delete_image(repositoryName=repo, imageIds=[
            {"imageDigest": img.digest}, {"imageDigest": loose.digest}])
        self.assertEqual(out["imageIds"], [{"imageDigest": img.digest, "imageTag": "a"},
                                           {"imageDigest": img.digest, "imageTag": "b"},
                                           {"imageDigest": loose.digest}])
        self.assertEqual(out["failures"], [])
        for ref in ("a", "b", img.digest, loose.digest):
            self.assertStatus(self.reg.get_manifest(repo, ref), 404)

    def test_failures(self):
        repo = self.create_repo()
        img = h.build_image(layer_count=1)
        other = h.build_image(layer_count=1)
        self.push(repo, img, "keep")
        self.push(repo, other, "other")
        out = self.ok("BatchDeleteImage", {"repositoryName": repo, "imageIds": [
            {"imageTag": "nope"}, {}, {"imageDigest": "sha256:xyz"},
            {"imageTag": "keep", "imageDigest": other.digest}]})
        self.assertEqual(out["imageIds"], [])
        self.assertEqual([f["failureCode"] for f in out["failures"]],
                         ["ImageNotFound", "MissingDigestAndTag", "InvalidImageDigest",
                          "ImageTagDoesNotMatchDigest"])
        self.assertEqual(out["failures"][0]["failureReason"], "Requested image not found")
        self.assertEqual(out["failures"][2]["imageId"], {"imageDigest": "sha256:xyz"})
        self.assertStatus(self.reg.get_manifest(repo, "keep"), 200)
        self.assertStatus(self.reg.get_manifest(repo, "other"), 200)
        self.assertBotoError("RepositoryNotFoundException", "batch_delete_image",
                             repositoryName="itest/none", imageIds=[{"imageTag": "x"}])

    def test_child_of_index_is_kept(self):
        repo = self.create_repo()
        child = h.build_image(layer_count=1)
        index = h.Index([child])
        self.push(repo, index, "multi")
        out = self.ecr.batch_delete_image(repositoryName=repo,
                                          imageIds=[{"imageDigest": child.digest}])
        self.assertEqual(out["imageIds"], [])
        (f,) = out["failures"]
        self.assertEqual(f["failureCode"], "ImageReferencedByManifestList")
        self.assertIn(child.digest, f["failureReason"])
        self.assertStatus(self.reg.get_manifest(repo, child.digest), 200)
        # deleting the index first frees the child
        out = self.ecr.batch_delete_image(repositoryName=repo, imageIds=[
            {"imageTag": "multi"}, {"imageDigest": child.digest}])
        self.assertEqual(len(out["imageIds"]), 2, out)
        self.assertEqual(out["failures"], [])

    def test_deletes_seen_by_the_other_api(self):
        repo = self.create_repo()
        a = h.build_image(layer_count=1)
        b = h.build_image(layer_count=1)
        self.push(repo, a, "a")
        self.push(repo, b, "b")
        # /v2 delete -> ECR listing
        self.assertStatus(self.reg.delete(self.reg.manifest_path(repo, a.digest)), 202)
        ids = self.ecr.list_images(repositoryName=repo)["imageIds"]
        self.assertEqual(ids, [{"imageDigest": b.digest, "imageTag": "b"}])
        # ECR delete -> /v2
        self.ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "b"}])
        self.assertEqual(self.reg.tags(repo).json().get("tags") or [], [])
        self.assertStatus(self.reg.get_manifest(repo, b.digest), 404)


class DeleteRepositoryTest(e.EcrTestCase):
    def test_not_empty_without_force(self):
        # ECR refuses to delete a repository that holds images unless force is set; the
        # refusal changes nothing; with force the repository and its images are gone
        repo = self.create_repo()
        img = h.build_image(layer_count=1)
        self.push(repo, img, "v1")
        err = self.assertBotoError("RepositoryNotEmptyException", "delete_repository",
                                   repositoryName=repo)
        self.assertIn("still contains images", err["Message"])
        self.assertCliError("RepositoryNotEmptyException", "delete-repository",
                            "--repository-name", repo)
        ids = self.ecr.list_images(repositoryName=repo)["imageIds"]
        self.assertEqual(ids, [{"imageDigest": img.digest, "imageTag": "v1"}])
        out = self.ecr.delete_repository(repositoryName=repo, force=True)
        self.assertEqual(out["repository"]["repositoryName"], repo)
        self.assertBotoError("RepositoryNotFoundException", "describe_repositories",
                             repositoryNames=[repo])
        self.assertEqual(self.reg.get(self.reg.manifest_path(repo, "v1")).status, 404)

    def test_empty_without_force(self):
        repo = self.create_repo()
        out = self.ecr.delete_repository(repositoryName=repo)
        self.assertEqual(out["repository"]["repositoryName"], repo)
        self.assertBotoError("RepositoryNotFoundException", "delete_repository",
                             repositoryName=repo)


class PutImageTest(e.EcrTestCase):
    def push_blobs(self, repo, image):
        for data in image.blobs.values():
            self.reg.ensure_blob(repo, data)

    def test_put_then_pull_over_v2(self):
        repo = self.create_repo()
        img = h.build_image(layer_count=2)
        self.push_blobs(repo, img)
        path = os.path.join(self.work, "manifest.json")
        with open(path, "wb") as f:
            f.write(img.manifest)
        out = self.aws("put-image", "--repository-name", repo, "--image-tag", "v1",
                       "--image-manifest", "file://" + path)
        image = out["image"]
        self.assertEqual(image["imageId"], {"imageDigest": img.digest, "imageTag": "v1"})
        self.assertEqual(image["imageManifest"].encode(), img.manifest)
        self.assertEqual(image["imageManifestMediaType"], h.MT_OCI_MANIFEST)
        self.assertEqual(image["registryId"], e.REGISTRY_ID)
        self.assertManifest(repo, "v1", img)
        for digest, data in img.blobs.items():
            self.assertBlob(repo, data)
        # the same image and tag again is refused, as ECR does
        self.assertCliError("ImageAlreadyExistsException", "put-image", "--repository-name",
                            repo, "--image-tag", "v1", "--image-manifest", "file://" + path)
        err = self.assertBotoError("ImageAlreadyExistsException", "put_image",
                                   repositoryName=repo, imageManifest=img.manifest.decode())
        self.assertIn(img.digest, err["Message"])
        # a new tag on the same image is fine
        out = self.ecr.put_image(repositoryName=repo, imageManifest=img.manifest.decode(),
                                 imageTag="v2", imageDigest=img.digest)
        self.assertEqual(out["image"]["imageId"]["imageTag"], "v2")
        self.assertManifest(repo, "v2", img)

    def test_moved_tag_leaves_old_image_untagged(self):
        repo = self.create_repo()
        old = h.build_image(layer_count=1)
        new = h.build_image(layer_count=1)
        self.push(repo, old, "latest")
        self.push_blobs(repo, new)
        self.ecr.put_image(repositoryName=repo, imageManifest=new.manifest.decode(),
                           imageTag="latest")
        details = {d["imageDigest"]: d for d in
                   self.ecr.describe_images(repositoryName=repo)["imageDetails"]}
        self.assertEqual(details[new.digest]["imageTags"], ["latest"])
        self.assertNotIn("imageTags", details[old.digest])
        self.assertStatus(self.reg.get_manifest(repo, old.digest), 200)

    def test_media_type_rules(self):
        repo = self.create_repo()
        img = h.build_image(layer_count=1)
        self.push_blobs(repo, img)
        obj = dict(img.obj)
        del obj["mediaType"]
        bare = json.dumps(obj)
        err = self.assertBotoError("InvalidParameterException", "put_image",
                                   repositoryName=repo, imageManifest=bare)
        self.assertIn("mediatype not provided", err["Message"])
        out = self.ecr.put_image(repositoryName=repo, imageManifest=bare, imageTag="bare",
                                 imageManifestMediaType=h.MT_OCI_MANIFEST)
        self.assertEqual(out["image"]["imageManifestMediaType"], h.MT_OCI_MANIFEST)
        self.assertEqual(out["image"]["imageId"]["imageDigest"], h.digest_of(bare.encode()))
        resp = self.reg.get_manifest(repo, "bare", accept=h.MT_OCI_MANIFEST)
        self.assertEqual(resp.body, bare.encode())
        self.assertHeader(resp, "Content-Type", h.MT_OCI_MANIFEST)
        err = self.assertBotoError("InvalidParameterException", "put_image",
                                   repositoryName=repo, imageManifest="{not json")
        self.assertEqual(err["Message"], "Invalid parameter at 'ImageManifest' failed to "
                                         "satisfy constraint: 'Invalid JSON syntax'")
        err = self.assertBotoError("InvalidParameterException", "put_image",
                                   repositoryName=repo, imageManifest='{"schemaVersion": 1}',
                                   imageManifestMediaType=h.MT_OCI_MANIFEST)
        self.assertEqual(err["Message"], "Invalid parameter at 'imageManifest' failed to "
                         "satisfy constraint: 'schemaVersion must be 2 (schema 1 manifests are "
                         "not supported)'")
        self.assertBotoError("InvalidParameterException", "put_image", repositoryName=repo,
                             imageManifest=img.manifest.decode(),
                             imageManifestMediaType="application/vnd.docker.distribution."
                                                    "manifest.v1+json")
        # the manifest's own type and the parameter disagree
        self.assertBotoError("InvalidParameterException", "put_image", repositoryName=repo,
                             imageManifest=img.manifest.decode(),
                             imageManifestMediaType=h.MT_DOCKER_MANIFEST)

    def test_errors(self):
        repo = self.create_repo()
        img = h.build_image(layer_count=1)
        manifest = img.manifest.decode()
        err = self.assertBotoError("LayersNotFoundException", "put_image", repositoryName=repo,
                                   imageManifest=manifest, imageTag="v1")
        self.assertIn(repo, err["Message"])
        child = h.build_image(layer_count=1)
        index = h.Index([child])
        self.assertBotoError("ReferencedImagesNotFoundException", "put_image",
                             repositoryName=repo, imageManifest=index.manifest.decode())
        self.push_blobs(repo, img)
        err = self.assertBotoError("ImageDigestDoesNotMatchException", "put_image",
                                   repositoryName=repo, imageManifest=manifest,
                                   imageDigest="sha256:" + "1" * 64)
        self.assertIn(img.digest, err["Message"])
        self.assertBotoError("InvalidParameterException", "put_image", repositoryName=repo,
                             imageManifest=manifest, imageDigest="not-a-digest")
        self.assertBotoError("InvalidParameterException", "put_image", repositoryName=repo,
                             imageManifest=manifest, imageTag="bad tag")
        self.assertBotoError("InvalidParameterException", "put_image", repositoryName=repo,
                             imageManifest=manifest, imageTag="t" * 301)
        self.assertBotoError("RepositoryNotFoundException", "put_image",
                             repositoryName="itest/none", imageManifest=manifest)
        # nothing above stored anything
        self.assertEqual(self.ecr.list_images(repositoryName=repo)["imageIds"], [])
        # an immutable tag does not move
        self.ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag="fixed")
        self.ecr.put_image_tag_mutability(repositoryName=repo, imageTagMutability="IMMUTABLE")
        other = h.build_image(layer_count=1)
        self.push_blobs(repo, other)
        err = self.assertBotoError("ImageTagAlreadyExistsException", "put_image",
                                   repositoryName=repo, imageManifest=other.manifest.decode(),
                                   imageTag="fixed")
        # ECR's words since tag-mutability exclusions (2025; before: "because the repository
        # is immutable"), the same as TAG_INVALID's message on /v2
        wording = ("The image tag 'fixed' already exists in the '%s' repository and cannot be "
                   "overwritten because the tag is immutable." % repo)
        self.assertEqual(err["Message"], wording)
        resp = self.reg.put_manifest(repo, "fixed", other.manifest, other.media_type)
        self.assertStatus(resp, 400)
        self.assertEqual(resp.json()["errors"][0]["code"], "TAG_INVALID")
        self.assertEqual(resp.json()["errors"][0]["message"], wording)
        self.assertManifest(repo, "fixed", img)

    def test_retag_recipe(self):
        """The documented recipe: batch-get-image --query ... --output text, then put-image
        with a new tag and the manifest as a command-line argument."""
        repo = self.create_repo()
        img = h.build_image(layer_count=2)
        self.push(repo, img, "old")
        text = self.aws_text("batch-get-image", "--repository-name", repo, "--image-ids",
                             "imageTag=old", "--query", "images[].imageManifest")
        manifest = text.rstrip("\n")  # what "$(...)" leaves
        out = self.aws("put-image", "--repository-name", repo, "--image-tag", "new",
                       "--image-manifest", manifest)
        self.assertEqual(out["image"]["imageId"]["imageDigest"], img.digest)
        self.assertManifest(repo, "new", img)
        ids = self.ecr.list_images(repositoryName=repo)["imageIds"]
        self.assertEqual(sorted(i["imageTag"] for i in ids), ["new", "old"])


class SkopeoOneStoreTest(e.EcrTestCase):
    def skopeo(self, *args):
        return c.Skopeo(self.work).run(*args)

    def test_skopeo_push_visible_and_put_image_pullable(self):
        repo = self.create_repo()
        host = "127.0.0.1:%d" % self.server.port
        img = h.build_image(layer_count=2)
        layout = os.path.join(self.work, "src")
        h.write_oci_layout(layout, {"v1": img})
        digest_file = os.path.join(self.work, "digest")
        self.skopeo("copy", "--dest-tls-verify=false", "--dest-no-creds", "--digestfile",
                    digest_file, "oci:%s:v1" % layout, "docker://%s/%s:v1" % (host, repo))
        with open(digest_file) as f:
            pushed = f.read().strip()
        ids = self.aws("list-images", "--repository-name", repo)["imageIds"]
        self.assertEqual(ids, [{"imageDigest": pushed, "imageTag": "v1"}])
        detail = self.ecr.describe_images(repositoryName=repo)["imageDetails"][0]
        self.assertEqual(detail["imageDigest"], pushed)
        # retag through the API, pull the new tag with skopeo
        got = self.ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
        manifest = got["images"][0]["imageManifest"]
        self.ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag="v2")
        out = os.path.join(self.work, "out")
        shutil.rmtree(out, ignore_errors=True)
        self.skopeo("copy", "--src-tls-verify=false", "--src-no-creds",
                    "docker://%s/%s:v2" % (host, repo), "oci:%s:v2" % out)
        with open(os.path.join(out, "index.json")) as f:
            index = json.load(f)
        self.assertEqual(index["manifests"][0]["digest"], pushed)
        self.assertEqual(h.read_oci_layout_blob(out, pushed), manifest.encode())
        for digest, data in img.blobs.items():
            self.assertEqual(h.read_oci_layout_blob(out, digest), data)


class ListImageReferrersTest(e.EcrTestCase):
    """ListImageReferrers is newer than Debian's botocore: raw requests."""

    def test_referrers(self):
        repo = self.create_repo()
        subject = h.build_image(layer_count=1)
        self.push(repo, subject, "app")
        a = h.build_artifact(artifact_type=REFERRER_A, subject=subject.descriptor(),
                             annotations={"org.example.kind": "sbom"})
        b = h.build_artifact(artifact_type=REFERRER_B, subject=subject.descriptor())
        third = h.build_artifact(artifact_type=REFERRER_B, subject=subject.descriptor())
        for art in (a, b, third):
            self.push(repo, art)
        doc = self.ok("ListImageReferrers", {"repositoryName": repo,
                                             "subjectId": {"imageDigest": subject.digest}})
        self.assertNotIn("nextToken", doc)
        got = {r["digest"]: r for r in doc["referrers"]}
        self.assertEqual(set(got), {a.digest, b.digest, third.digest})
        ra = got[a.digest]
        self.assertEqual(ra, {"digest": a.digest, "mediaType": h.MT_OCI_MANIFEST,
                              "artifactType": REFERRER_A, "size": len(a.manifest),
                              "annotations": {"org.example.kind": "sbom"},
                              "artifactStatus": "ACTIVE"})
        self.assertNotIn("annotations", got[b.digest])
        only_b = self.ok("ListImageReferrers", {
            "repositoryName": repo, "subjectId": {"imageDigest": subject.digest},
            "filter": {"artifactTypes": [REFERRER_B]}})
        self.assertEqual(sorted(r["digest"] for r in only_b["referrers"]),
                         sorted([b.digest, third.digest]))
        # pages of one, tokens advancing, none on the last page
        seen, token = [], None
        for _ in range(4):
            body = {"repositoryName": repo, "subjectId": {"imageDigest": subject.digest},
                    "maxResults": 1}
            if token:
                body["nextToken"] = token
            page = self.ok("ListImageReferrers", body)
            seen += [r["digest"] for r in page["referrers"]]
            self.assertNotEqual(page.get("nextToken"), token)
            token = page.get("nextToken")
            if token is None:
                break
        self.assertEqual(seen, sorted([a.digest, b.digest, third.digest]))
        # no referrers
        none = self.ok("ListImageReferrers", {"repositoryName": repo,
                                              "subjectId": {"imageDigest": a.digest}})
        self.assertEqual(none, {"referrers": []})

    def test_errors(self):
        repo = self.create_repo()
        digest = "sha256:" + "a" * 64
        self.assertAwsError(self.call("ListImageReferrers", {
            "repositoryName": "itest/none", "subjectId": {"imageDigest": digest}}),
            400, "RepositoryNotFoundException")
        self.assertAwsError(self.call("ListImageReferrers", {"repositoryName": repo}),
                            400, "InvalidParameterException")
        self.assertAwsError(self.call("ListImageReferrers", {
            "repositoryName": repo, "subjectId": {"imageDigest": "nope"}}),
            400, "InvalidParameterException")
        self.assertAwsError(self.call("ListImageReferrers", {
            "repositoryName": repo, "subjectId": {"imageDigest": digest}, "maxResults": 51}),
            400, "InvalidParameterException")
        self.assertAwsError(self.call("ListImageReferrers", {
            "repositoryName": repo, "subjectId": {"imageDigest": digest},
            "filter": {"artifactTypes": ["a", "b", "c", "d", "e", "f"]}}),
            400, "InvalidParameterException")
        self.assertAwsError(self.call("ListImageReferrers", {
            "repositoryName": repo, "subjectId": {"imageDigest": digest},
            "filter": {"artifactStatus": "GONE"}}),
            400, "InvalidParameterException")


if __name__ == "__main__":
    h.main()
