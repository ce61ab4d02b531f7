# berth-python: modern
"""ECR repository creation templates (Create/Describe/Update/DeleteRepositoryCreationTemplate)
against the real berth with the machine image's boto3 and AWS CLI v1: ECR's members and
errors, the longest prefix winning, and CREATE_ON_PUSH: a /v2 push to a missing repository
that a template covers creates it with the template's settings, and without one it stays
NAME_UNKNOWN with automatic creation off (ECR's behaviour) or is created with ECR's defaults
with it on."""

import json
import os
import sqlite3
import unittest

import berth_harness as h
import ecr_helpers as e

LIFECYCLE = json.dumps({"rules": [{"rulePriority": 1, "selection": {
    "tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 5},
    "action": {"type": "expire"}}]})
REPO_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Sid": "pull", "Effect": "Allow", "Principal": "*",
     "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]}]})
KMS = {"encryptionType": "KMS",
       "kmsKey": "arn:aws:kms:us-east-1:%s:key/0b5c1f2e-team" % e.REGISTRY_ID}
PREFIX_RE = ("must satisfy regular expression '^([a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*"
             "(\\/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*\\/?|ROOT)$'")


class TemplateTestCase(e.ModernEcrTestCase):
    server_config = {"storage": {"auto_create_repositories": False}}

    def setUp(self):
        self.addCleanup(self.drop_templates)

    def drop_templates(self):
        for t in self.ecr.describe_repository_creation_templates()["repositoryCreationTemplates"]:
            self.ecr.delete_repository_creation_template(prefix=t["prefix"])


class TemplateOperationsTest(TemplateTestCase):
    def test_create_describe_update_delete(self):
        out = self.aws("create-repository-creation-template", "--prefix", "prod",
                       "--applied-for", "CREATE_ON_PUSH", "REPLICATION",
                       "--description", "production images",
                       "--image-tag-mutability", "IMMUTABLE_WITH_EXCLUSION",
                       "--image-tag-mutability-exclusion-filters",
                       "filterType=WILDCARD,filter=latest",
                       "--repository-policy", REPO_POLICY, "--lifecycle-policy", LIFECYCLE,
                       "--resource-tags", "Key=team,Value=platform",
                       "--encryption-configuration", "encryptionType=AES256",
                       "--custom-role-arn", "arn:aws:iam::000000000000:role/ecr-templates")
        self.assertEqual(out["registryId"], e.REGISTRY_ID)
        t = out["repositoryCreationTemplate"]
        created = t.pop("createdAt")
        updated = t.pop("updatedAt")
        self.assertEqual(created, updated)
        self.assertEqual(t, {
            "prefix": "prod", "description": "production images",
            "encryptionConfiguration": {"encryptionType": "AES256"},
            "resourceTags": [{"Key": "team", "Value": "platform"}],
            "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
            "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD",
                                                    "filter": "latest"}],
            "repositoryPolicy": REPO_POLICY, "lifecyclePolicy": LIFECYCLE,
            "appliedFor": ["REPLICATION", "CREATE_ON_PUSH"],
            "customRoleArn": "arn:aws:iam::000000000000:role/ecr-templates"})
        # defaults of a minimal template
        out = self.ecr.create_repository_creation_template(prefix="ROOT",
                                                            appliedFor=["PULL_THROUGH_CACHE"])
        t = out["repositoryCreationTemplate"]
        self.assertEqual((t["prefix"], t["imageTagMutability"], t["encryptionConfiguration"],
                          t["appliedFor"]),
                         ("ROOT", "MUTABLE", {"encryptionType": "AES256"},
                          ["PULL_THROUGH_CACHE"]))
        # describe: all, by prefix, in pages
        out = self.ecr.describe_repository_creation_templates()
        self.assertEqual(out["registryId"], e.REGISTRY_ID)
        self.assertEqual([x["prefix"] for x in out["repositoryCreationTemplates"]],
                         ["ROOT", "prod"])
        out = self.ecr.describe_repository_creation_templates(prefixes=["prod", "nothing"])
        self.assertEqual([x["prefix"] for x in out["repositoryCreationTemplates"]], ["prod"])
        page = self.ecr.describe_repository_creation_templates(maxResults=1)
        self.assertEqual(len(page["repositoryCreationTemplates"]), 1)
        page2 = self.ecr.describe_repository_creation_templates(maxResults=1,
                                                                nextToken=page["nextToken"])
        self.assertEqual([x["prefix"] for x in page2["repositoryCreationTemplates"]], ["prod"])
        self.assertNotIn("nextToken", page2)
        cli = self.aws("describe-repository-creation-templates", "--page-size", "1")
        self.assertEqual([x["prefix"] for x in cli["repositoryCreationTemplates"]],
                         ["ROOT", "prod"])
        # update: only the members given change; a new mutability drops the filters
        out = self.ecr.update_repository_creation_template(
            prefix="prod", description="changed", imageTagMutability="IMMUTABLE")
        t = out["repositoryCreationTemplate"]
        self.assertEqual(t["description"], "changed")
        self.assertEqual(t["imageTagMutability"], "IMMUTABLE")
        self.assertNotIn("imageTagMutabilityExclusionFilters", t)
        self.assertEqual(t["lifecyclePolicy"], LIFECYCLE)
        self.assertEqual(t["appliedFor"], ["REPLICATION", "CREATE_ON_PUSH"])
        self.assertGreaterEqual(t["updatedAt"], t["createdAt"])
        # and from the CLI
        out = self.aws("update-repository-creation-template", "--prefix", "prod",
                       "--applied-for", "PULL_THROUGH_CACHE", "--resource-tags",
                       "Key=team,Value=web")
        t = out["repositoryCreationTemplate"]
        self.assertEqual(out["registryId"], e.REGISTRY_ID)
        self.assertEqual((t["appliedFor"], t["resourceTags"], t["description"]),
                         (["PULL_THROUGH_CACHE"], [{"Key": "team", "Value": "web"}], "changed"))
        # a key given twice is one tag, the last value
        out = self.ecr.update_repository_creation_template(prefix="prod", resourceTags=[
            {"Key": "team", "Value": "a"}, {"Key": "env", "Value": "x"},
            {"Key": "team", "Value": "b"}])
        t = out["repositoryCreationTemplate"]
        self.assertEqual(t["resourceTags"], [{"Key": "team", "Value": "b"},
                                             {"Key": "env", "Value": "x"}])
        # delete answers with the template
        out = self.aws("delete-repository-creation-template", "--prefix", "prod")
        self.assertEqual(out["repositoryCreationTemplate"]["description"], "changed")
        self.assertEqual([x["prefix"] for x in self.ecr.describe_repository_creation_templates()
                          ["repositoryCreationTemplates"]], ["ROOT"])

    def test_errors(self):
        self.ecr.create_repository_creation_template(prefix="team/", appliedFor=["REPLICATION"])
        err = self.assertBotoError("TemplateAlreadyExistsException",
                                   "create_repository_creation_template", prefix="team/",
                                   appliedFor=["REPLICATION"])
        self.assertIn("team/", err["Message"])
        for method in ("update_repository_creation_template",
                       "delete_repository_creation_template"):
            err = self.assertBotoError("TemplateNotFoundException", method, prefix="missing")
            self.assertEqual(err["Message"], "The specified repository creation template with "
                             "prefix 'missing' does not exist in the registry with id '%s'"
                             % e.REGISTRY_ID)
        for prefix in ("Upper", "a//b", "-a", "a/", "root"):
            ok = prefix in ("a/", "root")
            with self.subTest(prefix=prefix):
                if ok:
                    self.ecr.create_repository_creation_template(prefix=prefix,
                                                                 appliedFor=["REPLICATION"])
                    continue
                err = self.assertBotoError("InvalidParameterException",
                                           "create_repository_creation_template", prefix=prefix,
                                           appliedFor=["REPLICATION"])
                self.assertEqual(err["Message"], "Invalid parameter at 'prefix' failed to "
                                 "satisfy constraint: '%s'" % PREFIX_RE)
        bad = [
            {"appliedFor": ["SOMETIMES"]},
            {"appliedFor": ["REPLICATION"], "imageTagMutability": "FROZEN"},
            {"appliedFor": ["REPLICATION"], "imageTagMutability": "MUTABLE",
             "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "x"}]},
            {"appliedFor": ["REPLICATION"], "repositoryPolicy": "{\"Statement\": []}"},
            {"appliedFor": ["REPLICATION"], "lifecyclePolicy": "{\"rules\": []}"},
            {"appliedFor": ["REPLICATION"], "description": "x" * 257},
            {"appliedFor": ["REPLICATION"], "resourceTags": [{"Key": "", "Value": "v"}]},
            {"appliedFor": ["REPLICATION"], "encryptionConfiguration": {
                "encryptionType": "KMS", "kmsKey": "not-a-key"}},
        ]
        for params in bad:
            with self.subTest(params=params):
                self.assertBotoError("InvalidParameterException",
                                     "create_repository_creation_template", prefix="bad",
                                     **params)
        err = self.assertBotoError("InvalidParameterException",
                                   "create_repository_creation_template", prefix="bad",
                                   appliedFor=["SOMETIMES"])
        self.assertEqual(err["Message"], "Invalid parameter at 'appliedFor' failed to satisfy "
                         "constraint: 'Member must satisfy enum value set: [REPLICATION, "
                         "PULL_THROUGH_CACHE, CREATE_ON_PUSH]'")
        # appliedFor is required (raw: boto3 checks before sending)
        self.assertAwsError(self.call("CreateRepositoryCreationTemplate", {"prefix": "bad"}), 400,
                            "InvalidParameterException")
        self.assertBotoError("TemplateNotFoundException", "delete_repository_creation_template",
                             prefix="bad")
        # the registry's limit
        existing = len(self.ecr.describe_repository_creation_templates()
                       ["repositoryCreationTemplates"])
        for i in range(50 - existing):
            self.ecr.create_repository_creation_template(prefix="n%d" % i,
                                                         appliedFor=["REPLICATION"])
        self.assertBotoError("LimitExceededException", "create_repository_creation_template",
                             prefix="one-too-many", appliedFor=["REPLICATION"])


class CreateOnPushTest(TemplateTestCase):
    def repo_detail(self, name):
        (r,) = self.ecr.describe_repositories(repositoryNames=[name])["repositories"]
        return r

    def test_push_creates_from_the_longest_prefix(self):
        if self.server.replicas > 1:
            self.skipTest("reads berth.db with sqlite3 (the replicas' metadata is in "
                          "PostgreSQL)")
        img = h.build_image(layer_count=1)
        # no template: NAME_UNKNOWN as before
        resp = self.reg.start_upload("prod/team/app")
        self.assertError(resp, 404, "NAME_UNKNOWN")
        self.ecr.create_repository_creation_template(
            prefix="prod", appliedFor=["CREATE_ON_PUSH"], imageTagMutability="IMMUTABLE",
            repositoryPolicy=REPO_POLICY, lifecyclePolicy=LIFECYCLE,
            resourceTags=[{"Key": "env", "Value": "prod"}])
        self.ecr.create_repository_creation_template(
            prefix="prod/team/", appliedFor=["CREATE_ON_PUSH"],
            imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
            imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "dev-*"}],
            resourceTags=[{"Key": "env", "Value": "team"}], encryptionConfiguration=KMS)
        # a template for other uses does not create on push
        self.ecr.create_repository_creation_template(prefix="mirror",
                                                     appliedFor=["PULL_THROUGH_CACHE"])
        self.assertError(self.reg.start_upload("mirror/app"), 404, "NAME_UNKNOWN")
        # "prod" covers prod/..., not prod itself or production/...
        self.assertError(self.reg.start_upload("production/app"), 404, "NAME_UNKNOWN")

        # the longest prefix wins
        self.push_image_ok("prod/team/app", img, tag="dev-1")
        r = self.repo_detail("prod/team/app")
        self.assertEqual(r["imageTagMutability"], "IMMUTABLE_WITH_EXCLUSION")
        self.assertEqual(r["imageTagMutabilityExclusionFilters"],
                         [{"filterType": "WILDCARD", "filter": "dev-*"}])
        self.assertEqual(r["encryptionConfiguration"], KMS)
        tags = self.ecr.list_tags_for_resource(resourceArn=r["repositoryArn"])["tags"]
        self.assertEqual(tags, [{"Key": "env", "Value": "team"}])
        self.assertStatus(self.reg.get_manifest("prod/team/app", "dev-1"), 200)

        # the shorter one, with every setting it carries
        self.push_image_ok("prod/web", img, tag="v1")
        r = self.repo_detail("prod/web")
        self.assertEqual(r["imageTagMutability"], "IMMUTABLE")
        self.assertEqual(r["encryptionConfiguration"], {"encryptionType": "AES256"})
        self.assertEqual(self.ecr.get_repository_policy(repositoryName="prod/web")
                         ["policyText"], REPO_POLICY)
        self.assertEqual(self.ecr.get_lifecycle_policy(repositoryName="prod/web")
                         ["lifecyclePolicyText"], LIFECYCLE)
        # a new policy, from the template: it waits lifecycle.new_policy_delay_seconds too
        conn = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.server.root, "berth.db"),
                               uri=True, timeout=30)
        try:
            set_at = conn.execute("SELECT lifecycle_set_at FROM repositories WHERE name = ?",
                                  ("prod/web",)).fetchone()[0]
        finally:
            conn.close()
        self.assertGreater(set_at, 0)
        tags = self.ecr.list_tags_for_resource(resourceArn=r["repositoryArn"])["tags"]
        self.assertEqual(tags, [{"Key": "env", "Value": "prod"}])
        # IMMUTABLE from the template is enforced on /v2
        other = h.build_image(layer_count=1)
        for data in other.blobs.values():
            self.reg.ensure_blob("prod/web", data)
        self.assertError(self.reg.put_manifest("prod/web", "v1", other.manifest,
                                               other.media_type), 400, "TAG_INVALID")

        # ROOT covers the rest; deleting it brings NAME_UNKNOWN back
        self.assertError(self.reg.start_upload("misc/app"), 404, "NAME_UNKNOWN")
        self.ecr.create_repository_creation_template(prefix="ROOT",
                                                     appliedFor=["CREATE_ON_PUSH"])
        self.push_image_ok("misc/app", img, tag="v1")
        self.assertEqual(self.repo_detail("misc/app")["imageTagMutability"], "MUTABLE")
        self.ecr.delete_repository_creation_template(prefix="ROOT")
        self.assertError(self.reg.start_upload("misc/other"), 404, "NAME_UNKNOWN")
        # a template does not change repositories created before it
        self.ecr.update_repository_creation_template(prefix="prod",
                                                     imageTagMutability="MUTABLE")
        self.assertEqual(self.repo_detail("prod/web")["imageTagMutability"], "IMMUTABLE")


class CreateOnPushWithAutoCreateTest(TemplateTestCase):
    """storage.auto_create_repositories on (berth's default): a push to a missing repository
    a CREATE_ON_PUSH template covers gets the template's settings too (before, automatic
    creation won and the template was ignored); one no template covers is created with
    ECR's defaults, as before."""

    server_config = {}

    def test_template_applies_before_automatic_creation(self):
        img = h.build_image(layer_count=1)
        self.ecr.create_repository_creation_template(
            prefix="prod", appliedFor=["CREATE_ON_PUSH"], imageTagMutability="IMMUTABLE",
            lifecyclePolicy=LIFECYCLE)
        self.push_image_ok("prod/app", img, tag="v1")
        (r,) = self.ecr.describe_repositories(repositoryNames=["prod/app"])["repositories"]
        self.assertEqual(r["imageTagMutability"], "IMMUTABLE")
        self.assertEqual(self.ecr.get_lifecycle_policy(repositoryName="prod/app")
                         ["lifecyclePolicyText"], LIFECYCLE)
        self.push_image_ok("dev/app", img, tag="v1")
        (r,) = self.ecr.describe_repositories(repositoryNames=["dev/app"])["repositories"]
        self.assertEqual(r["imageTagMutability"], "MUTABLE")
        self.assertRaises(self.ecr.exceptions.LifecyclePolicyNotFoundException,
                          self.ecr.get_lifecycle_policy, repositoryName="dev/app")


if __name__ == "__main__":
    unittest.main()
