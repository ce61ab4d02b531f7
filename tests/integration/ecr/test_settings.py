"""ECR settings operations (PutImageTagMutability, PutImageScanningConfiguration, TagResource,
UntagResource, ListTagsForResource, DescribeRegistry) against the real berth, with
/usr/bin/aws, boto3 and raw requests."""

import json
import os
import sqlite3

import berth_harness as h
import ecr_helpers as e

INVALID_ARN = "Invalid parameter at 'resourceArn' failed to satisfy constraint: 'Invalid ARN'"


class TagMutabilityTest(e.EcrTestCase):
    def test_immutable_for_both_apis(self):
        repo = self.create_repo()
        img = h.build_image(layer_count=1)
        other = h.build_image(layer_count=1)
        self.push(repo, img, "v1")
        out = self.aws("put-image-tag-mutability", "--repository-name", repo,
                       "--image-tag-mutability", "IMMUTABLE")
        self.assertEqual(out, {"registryId": e.REGISTRY_ID, "repositoryName": repo,
                               "imageTagMutability": "IMMUTABLE"})
        (r,) = self.ecr.describe_repositories(repositoryNames=[repo])["repositories"]
        self.assertEqual(r["imageTagMutability"], "IMMUTABLE")
        # /v2 cannot move the tag ...
        for data in other.blobs.values():
            self.reg.ensure_blob(repo, data)
        resp = self.reg.put_manifest(repo, "v1", other.manifest, other.media_type)
        self.assertError(resp, 400, "TAG_INVALID")
        # ... nor can PutImage
        self.assertBotoError("ImageTagAlreadyExistsException", "put_image", repositoryName=repo,
                             imageManifest=other.manifest.decode(), imageTag="v1")
        self.assertManifest(repo, "v1", img)
        # back to MUTABLE: the tag moves
        self.ecr.put_image_tag_mutability(repositoryName=repo, imageTagMutability="MUTABLE")
        self.assertStatus(self.reg.put_manifest(repo, "v1", other.manifest, other.media_type),
                          201)

    def test_exclusion_filters(self):
        repo = self.create_repo()
        # Debian's botocore predates the exclusion filters: raw requests
        filters = [{"filterType": "WILDCARD", "filter": "dev-*"}]
        doc = self.ok("PutImageTagMutability", {
            "repositoryName": repo, "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
            "imageTagMutabilityExclusionFilters": filters})
        self.assertEqual(doc, {"registryId": e.REGISTRY_ID, "repositoryName": repo,
                               "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
                               "imageTagMutabilityExclusionFilters": filters})
        r = self.ok("DescribeRepositories", {"repositoryNames": [repo]})["repositories"][0]
        self.assertEqual(r["imageTagMutabilityExclusionFilters"], filters)
        a = h.build_image(layer_count=1)
        b = h.build_image(layer_count=1)
        self.push(repo, a, "dev-1")
        self.push(repo, a, "rel-1")
        for data in b.blobs.values():
            self.reg.ensure_blob(repo, data)
        # dev-* is excluded from immutability, rel-1 is not
        self.assertStatus(self.reg.put_manifest(repo, "dev-1", b.manifest, b.media_type), 201)
        self.assertError(self.reg.put_manifest(repo, "rel-1", b.manifest, b.media_type), 400,
                         "TAG_INVALID")
        # plain MUTABLE drops the filters
        doc = self.ok("PutImageTagMutability", {"repositoryName": repo,
                                                "imageTagMutability": "MUTABLE"})
        self.assertNotIn("imageTagMutabilityExclusionFilters", doc)
        r = self.ok("DescribeRepositories", {"repositoryNames": [repo]})["repositories"][0]
        self.assertNotIn("imageTagMutabilityExclusionFilters", r)

    def test_errors(self):
        repo = self.create_repo()
        err = self.assertCliError("InvalidParameterException", "put-image-tag-mutability",
                                  "--repository-name", repo, "--image-tag-mutability", "FROZEN")
        self.assertEqual(err[1], "Invalid parameter at 'imageTagMutability' failed to satisfy "
                                 "constraint: 'Member must satisfy enum value set: [MUTABLE, "
                                 "IMMUTABLE, IMMUTABLE_WITH_EXCLUSION, MUTABLE_WITH_EXCLUSION]'")
        for body in (
                {"imageTagMutability": "MUTABLE_WITH_EXCLUSION"},
                {"imageTagMutability": "MUTABLE", "imageTagMutabilityExclusionFilters": [
                    {"filterType": "WILDCARD", "filter": "x"}]},
                {"imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
                 "imageTagMutabilityExclusionFilters": [
                     {"filterType": "WILDCARD", "filter": "bad/filter"}]},
                {"imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
                 "imageTagMutabilityExclusionFilters": [
                     {"filterType": "PREFIX", "filter": "x"}]},
                {"imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
                 "imageTagMutabilityExclusionFilters": [
                     {"filterType": "WILDCARD", "filter": "f%d" % i} for i in range(6)]},
                {}):
            self.assertAwsError(self.call("PutImageTagMutability", dict(body, repositoryName=repo)),
                                400, "InvalidParameterException")
        self.assertBotoError("RepositoryNotFoundException", "put_image_tag_mutability",
                             repositoryName="itest/none", imageTagMutability="MUTABLE")
        (r,) = self.ecr.describe_repositories(repositoryNames=[repo])["repositories"]
        self.assertEqual(r["imageTagMutability"], "MUTABLE")


class ScanningConfigurationTest(e.EcrTestCase):
    def test_put_and_describe(self):
        repo = self.create_repo()
        out = self.aws("put-image-scanning-configuration", "--repository-name", repo,
                       "--image-scanning-configuration", "scanOnPush=true")
        self.assertEqual(out, {"registryId": e.REGISTRY_ID, "repositoryName": repo,
                               "imageScanningConfiguration": {"scanOnPush": True}})
        (r,) = self.ecr.describe_repositories(repositoryNames=[repo])["repositories"]
        self.assertEqual(r["imageScanningConfiguration"], {"scanOnPush": True})
        out = self.ecr.put_image_scanning_configuration(
            repositoryName=repo, imageScanningConfiguration={"scanOnPush": False})
        self.assertEqual(out["imageScanningConfiguration"], {"scanOnPush": False})
        (r,) = self.ecr.describe_repositories(repositoryNames=[repo])["repositories"]
        self.assertEqual(r["imageScanningConfiguration"], {"scanOnPush": False})

    def test_errors(self):
        repo = self.create_repo()
        self.assertBotoError("RepositoryNotFoundException", "put_image_scanning_configuration",
                             repositoryName="itest/none",
                             imageScanningConfiguration={"scanOnPush": True})
        self.assertAwsError(self.call("PutImageScanningConfiguration", {"repositoryName": repo}),
                            400, "InvalidParameterException")
        self.assertAwsError(self.call("PutImageScanningConfiguration", {
            "repositoryName": repo, "imageScanningConfiguration": {"scanOnPush": "yes"}}),
            400, "SerializationException")
        self.assertAwsError(self.call("PutImageScanningConfiguration", {
            "repositoryName": repo, "imageScanningConfiguration": True}),
            400, "SerializationException")


class ResourceTagsTest(e.EcrTestCase):
    def test_tag_list_untag(self):
        repo = self.create_repo()
        arn = self.ecr.describe_repositories(repositoryNames=[repo])["repositories"][0][
            "repositoryArn"]
        self.assertEqual(arn, self.arn(repo))
        self.assertEqual(self.aws("list-tags-for-resource", "--resource-arn", arn),
                         {"tags": []})
        out = self.aws("tag-resource", "--resource-arn", arn, "--tags", "Key=Stage,Value=Integ",
                       "Key=Team,Value=core")
        self.assertEqual(out, {})
        resp = self.call("TagResource", {"resourceArn": arn, "tags": [{"Key": "x",
                                                                      "Value": ""}]})
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.json(), {})
        # overwrite by key
        self.ecr.tag_resource(resourceArn=arn, tags=[{"Key": "Stage", "Value": "Prod"}])
        tags = self.aws("list-tags-for-resource", "--resource-arn", arn)["tags"]
        self.assertEqual(tags, [{"Key": "Stage", "Value": "Prod"}, {"Key": "Team",
                                                                     "Value": "core"},
                                {"Key": "x", "Value": ""}])
        self.assertEqual(self.aws("untag-resource", "--resource-arn", arn, "--tag-keys",
                                  "Team", "unknown"), {})
        tags = self.ecr.list_tags_for_resource(resourceArn=arn)["tags"]
        self.assertEqual(tags, [{"Key": "Stage", "Value": "Prod"}, {"Key": "x", "Value": ""}])
        # CreateRepository's tags are the same list
        tagged = self.repo()
        self.ecr.create_repository(repositoryName=tagged, tags=[{"Key": "a", "Value": "1"}])
        self.ecr.tag_resource(resourceArn=self.arn(tagged), tags=[{"Key": "b", "Value": "2"}])
        self.assertEqual(self.ecr.list_tags_for_resource(resourceArn=self.arn(tagged))["tags"],
                         [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])

    def test_limits(self):
        repo = self.create_repo()
        arn = self.arn(repo)
        fifty = [{"Key": "k%02d" % i, "Value": "v"} for i in range(50)]
        self.ecr.tag_resource(resourceArn=arn, tags=fifty)
        # overwriting keeps the count at 50; one more key is too many
        self.ecr.tag_resource(resourceArn=arn, tags=[{"Key": "k00", "Value": "new"}])
        self.assertBotoError("TooManyTagsException", "tag_resource", resourceArn=arn,
                             tags=[{"Key": "k50", "Value": "v"}])
        self.assertEqual(len(self.ecr.list_tags_for_resource(resourceArn=arn)["tags"]), 50)
        self.ecr.untag_resource(resourceArn=arn, tagKeys=["k%02d" % i for i in range(50)])
        self.assertEqual(self.ecr.list_tags_for_resource(resourceArn=arn)["tags"], [])
        self.assertBotoError("TooManyTagsException", "tag_resource", resourceArn=arn,
                             tags=[{"Key": "k%02d" % i, "Value": "v"} for i in range(51)])
        self.assertBotoError("InvalidTagParameterException", "tag_resource", resourceArn=arn,
                             tags=[{"Key": "aws:reserved", "Value": "v"}])
        self.assertBotoError("InvalidTagParameterException", "tag_resource", resourceArn=arn,
                             tags=[{"Key": "k" * 129, "Value": "v"}])
        self.assertBotoError("InvalidTagParameterException", "tag_resource", resourceArn=arn,
                             tags=[{"Key": "k", "Value": "v" * 257}])
        self.assertBotoError("InvalidTagParameterException", "untag_resource", resourceArn=arn,
                             tagKeys=["aws:x"])
        self.assertBotoError("InvalidTagParameterException", "untag_resource", resourceArn=arn,
                             tagKeys=["k" * 129])
        self.assertAwsError(self.call("TagResource", {"resourceArn": arn,
                                                      "tags": [{"Key": "k"}]}),
                            400, "InvalidTagParameterException")
        self.assertAwsError(self.call("UntagResource", {"resourceArn": arn,
                                                        "tagKeys": ["k"] * 201}),
                            400, "InvalidParameterException")
        self.assertEqual(self.ecr.list_tags_for_resource(resourceArn=arn)["tags"], [])

    def test_a_key_given_twice_is_one_tag(self):
        # CreateRepository stored both {a: 1} and {a: 2}; TagResource then overwrote one,
        # UntagResource removed one and left the other, and the 50 counted both
        repo = self.repo()
        self.ecr.create_repository(repositoryName=repo, tags=[
            {"Key": "a", "Value": "1"}, {"Key": "b", "Value": "x"}, {"Key": "a", "Value": "2"}])
        arn = self.arn(repo)
        self.assertEqual(self.ecr.list_tags_for_resource(resourceArn=arn)["tags"],
                         [{"Key": "a", "Value": "2"}, {"Key": "b", "Value": "x"}])
        self.ecr.tag_resource(resourceArn=arn, tags=[{"Key": "a", "Value": "3"},
                                                     {"Key": "a", "Value": "4"}])
        self.assertEqual(self.ecr.list_tags_for_resource(resourceArn=arn)["tags"],
                         [{"Key": "a", "Value": "4"}, {"Key": "b", "Value": "x"}])
        self.ecr.untag_resource(resourceArn=arn, tagKeys=["a"])
        self.assertEqual(self.ecr.list_tags_for_resource(resourceArn=arn)["tags"],
                         [{"Key": "b", "Value": "x"}])
        # 50 keys, one of them given twice, are 50 tags
        fifty = [{"Key": "k%02d" % i, "Value": "v"} for i in range(50)]
        other = self.repo()
        self.ecr.create_repository(repositoryName=other, tags=fifty + [{"Key": "k07",
                                                                         "Value": "w"}])
        tags = self.ecr.list_tags_for_resource(resourceArn=self.arn(other))["tags"]
        self.assertEqual(len(tags), 50)
        self.assertEqual(tags[7], {"Key": "k07", "Value": "w"})
        self.ecr.untag_resource(resourceArn=self.arn(other), tagKeys=["k%02d" % i
                                                                      for i in range(50)])
        self.ecr.tag_resource(resourceArn=self.arn(other), tags=fifty + fifty)
        self.assertEqual(len(self.ecr.list_tags_for_resource(
            resourceArn=self.arn(other))["tags"]), 50)
        # members a tag does not define are not stored
        third = self.repo()
        resp = self.call("CreateRepository", {"repositoryName": third, "tags": [
            {"Key": "k", "Value": "v", "Extra": {"big": "x" * 1000}}]})
        self.assertEqual(resp.status, 200, resp.body)
        self.assertEqual(self.ecr.list_tags_for_resource(resourceArn=self.arn(third))["tags"],
                         [{"Key": "k", "Value": "v"}])

    def test_a_key_stored_twice_reads_as_one(self):
        # what the berth before this fix stored: read as one tag, the last value, and
        # untagged whole
        if self.server.replicas > 1:
            self.skipTest("writes berth.db with sqlite3 (the replicas' metadata is in "
                          "PostgreSQL)")
        repo = self.create_repo()
        conn = sqlite3.connect(os.path.join(self.server.root, "berth.db"), timeout=30)
        try:
            with conn:
                conn.execute("UPDATE repositories SET resource_tags = ? WHERE name = ?",
                             (json.dumps([{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"},
                                          {"Key": "b", "Value": "x"}]), repo))
        finally:
            conn.close()
        arn = self.arn(repo)
        self.assertEqual(self.ecr.list_tags_for_resource(resourceArn=arn)["tags"],
                         [{"Key": "a", "Value": "2"}, {"Key": "b", "Value": "x"}])
        self.ecr.untag_resource(resourceArn=arn, tagKeys=["a"])
        self.assertEqual(self.ecr.list_tags_for_resource(resourceArn=arn)["tags"],
                         [{"Key": "b", "Value": "x"}])

    def test_arns(self):
        repo = self.create_repo()
        for bad in ("not-an-arn", "arn:aws:s3:::bucket", "arn:aws:ecr:us-east-1:000000000000:",
                    "arn:aws:ecr:us-east-1:000000000000:repository/",
                    "arn:aws:ecr:us-east-1:000000000000:repository/Bad_Name"):
            for op, params in (("list_tags_for_resource", {}),
                               ("tag_resource", {"tags": [{"Key": "k", "Value": "v"}]}),
                               ("untag_resource", {"tagKeys": ["k"]})):
                err = self.assertBotoError("InvalidParameterException", op, resourceArn=bad,
                                           **params)
                self.assertEqual(err["Message"], INVALID_ARN)
        self.assertCliError("InvalidParameterException", "list-tags-for-resource",
                            "--resource-arn", "nope", message=INVALID_ARN)
        for missing in (self.arn("itest/none"),
                        "arn:aws:ecr:eu-west-1:000000000000:repository/" + repo,
                        "arn:aws:ecr:us-east-1:123456789012:repository/" + repo):
            self.assertBotoError("RepositoryNotFoundException", "list_tags_for_resource",
                                 resourceArn=missing)
            self.assertBotoError("RepositoryNotFoundException", "tag_resource",
                                 resourceArn=missing, tags=[{"Key": "k", "Value": "v"}])
        self.assertEqual(self.ecr.list_tags_for_resource(resourceArn=self.arn(repo))["tags"], [])


class DescribeRegistryTest(e.EcrTestCase):
    def test_describe_registry(self):
        self.assertEqual(self.aws("describe-registry"),
                         {"registryId": e.REGISTRY_ID, "replicationConfiguration": {"rules": []}})
        # an empty body is an empty input, as Smithy says
        resp = self.call("DescribeRegistry", raw=b"")
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.json(), {"registryId": e.REGISTRY_ID,
                                       "replicationConfiguration": {"rules": []}})


if __name__ == "__main__":
    h.main()
