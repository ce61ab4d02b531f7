"""What an ECR operation is authorized against: the repository (or registry) named by the
member the operation defines, and nothing else. A key limited to `team/*` tries every
operation on `secret/s`, and the resource-tag operations with a `repositoryName` the
operation does not define (the JSON protocol ignores it; it must never widen what is
authorized), both through the key's own permissions and through a repository policy."""

import json
import os
import re
import unittest
import warnings

import clients as c  # first: it cleans the environment botocore reads
import berth_harness as h
import auth_helpers as e

ACCOUNT = "000000000000"

SECRET = "secret/s"
TEAM = "team/a"

# Every operation berth serves that acts on one repository named by repositoryName, with
# the least body that names it: authorization comes before validation, so a team/* key is
# refused on secret/s whatever else the body lacks.
REPOSITORY_NAME_OPS = [
    "CreateRepository", "DeleteRepository", "ListImages", "DescribeImages", "BatchGetImage",
    "BatchDeleteImage", "PutImage", "ListImageReferrers", "BatchCheckLayerAvailability",
    "InitiateLayerUpload", "UploadLayerPart", "CompleteLayerUpload", "PutImageTagMutability",
    "PutImageScanningConfiguration", "SetRepositoryPolicy", "GetRepositoryPolicy",
    "DeleteRepositoryPolicy", "StartImageScan", "DescribeImageScanFindings",
    "PutLifecyclePolicy", "GetLifecyclePolicy", "DeleteLifecyclePolicy",
    "StartLifecyclePolicyPreview", "GetLifecyclePolicyPreview", "GetDownloadUrlForLayer",
    "UpdateImageStorageClass", "DescribeImageReplicationStatus", "DescribeImageSigningStatus",
]
RESOURCE_ARN_OPS = ["TagResource", "UntagResource", "ListTagsForResource"]
# Registry-level operations: a key limited to team/* has none of them.
REGISTRY_OPS = [
    "DescribeRegistry", "PutRegistryScanningConfiguration", "GetRegistryScanningConfiguration",
    "PutReplicationConfiguration", "GetAccountSetting", "PutAccountSetting",
    "PutRegistryPolicy", "GetRegistryPolicy", "DeleteRegistryPolicy",
    "CreatePullThroughCacheRule", "DescribePullThroughCacheRules",
    "UpdatePullThroughCacheRule", "DeletePullThroughCacheRule", "ValidatePullThroughCacheRule",
    "CreateRepositoryCreationTemplate", "DescribeRepositoryCreationTemplates",
    "UpdateRepositoryCreationTemplate", "DeleteRepositoryCreationTemplate",
    "PutSigningConfiguration", "GetSigningConfiguration", "DeleteSigningConfiguration",
    "RegisterPullTimeUpdateExclusion", "DeregisterPullTimeUpdateExclusion",
    "ListPullTimeUpdateExclusions",
]
# Authorized per repository they name, within the operation (test_operations_on_lists_...).
LIST_OPS = ["DescribeRepositories", "BatchGetRepositoryScanningConfiguration"]


def documented_operations():
    """The operations of docs/ecr.md's table."""
    ops = []
    with open(os.path.join(h.REPO_ROOT, "docs", "ecr.md")) as f:
        for line in f:
            m = re.match(r"^\| `([A-Za-z]+)` \| implemented \|", line)
            if m:
                ops.append(m.group(1))
    return ops


def arn(name):
    return "arn:aws:ecr:%s:%s:repository/%s" % (e.REGION, ACCOUNT, name)


def tag_body(op, resource, **extra):
    body = {"resourceArn": arn(resource)}
    if op == "TagResource":
        body["tags"] = [{"Key": "owner", "Value": "intruder"}]
    elif op == "UntagResource":
        body["tagKeys"] = ["owner"]
    body.update(extra)
    return body


class ScopeTest(h.ServerTestCase):
    """One server with an administrator, a key limited to team/* and a key whose own
    permissions cover neither repository."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = e.keys_create(cls.server, "admin")
        cls.team = e.keys_create(cls.server, "team", "admin:team/*")
        cls.outsider = e.keys_create(cls.server, "outsider", "pull:zone/*")
        warnings.simplefilter("ignore", ResourceWarning)
        cls.ecr = c.ecr_client(cls.server, *cls.admin)
        for name in (TEAM, SECRET, "team/open"):
            cls.ecr.create_repository(repositoryName=name)

    def setUp(self):
        warnings.simplefilter("ignore", ResourceWarning)
        # the tags every test starts from
        for name in (TEAM, SECRET, "team/open"):
            self.ecr.tag_resource(resourceArn=arn(name), tags=[{"Key": "owner", "Value": name}])

    def call(self, key, op, body):
        status, doc, _ = e.signed_call(self.server, op, body, *key)
        return status, doc

    def assertDenied(self, key, op, body):
        status, doc = self.call(key, op, body)
        self.assertEqual((status, doc.get("__type")), (400, "AccessDeniedException"),
                         "%s %s -> %s %s" % (op, json.dumps(body), status, doc))
        return doc

    def secret_tags(self):
        return self.ecr.list_tags_for_resource(resourceArn=arn(SECRET))["tags"]

    # -- the resource-tag operations ------------------------------------------------------------

    def test_resource_tags_refused_on_secret_even_with_a_team_repository_name(self):
        for op in RESOURCE_ARN_OPS:
            for extra in ({}, {"repositoryName": TEAM}):
                with self.subTest(op=op, extra=extra):
                    doc = self.assertDenied(self.team, op, tag_body(op, SECRET, **extra))
                    self.assertIn("ecr:" + op, doc["message"])
                    self.assertIn("repository/" + SECRET, doc["message"])
        # nothing was tagged or untagged, and the tags were not shown
        self.assertEqual(self.secret_tags(), [{"Key": "owner", "Value": SECRET}])

    def test_resource_tags_work_on_team_whatever_repository_name_says(self):
        for extra in ({}, {"repositoryName": SECRET}, {"repositoryName": 7}):
            with self.subTest(extra=extra):
                status, doc = self.call(self.team, "TagResource",
                                        tag_body("TagResource", TEAM, **extra))
                self.assertEqual(status, 200, doc)
                status, doc = self.call(self.team, "ListTagsForResource",
                                        tag_body("ListTagsForResource", TEAM, **extra))
                self.assertEqual((status, doc.get("tags")),
                                 (200, [{"Key": "owner", "Value": "intruder"}]), doc)
                status, doc = self.call(self.team, "UntagResource",
                                        tag_body("UntagResource", TEAM, **extra))
                self.assertEqual(status, 200, doc)
                status, doc = self.call(self.team, "ListTagsForResource",
                                        tag_body("ListTagsForResource", TEAM))
                self.assertEqual((status, doc.get("tags")), (200, []), doc)
        self.assertEqual(self.secret_tags(), [{"Key": "owner", "Value": SECRET}])

    def test_resource_tags_without_a_valid_arn_are_refused_before_authorization(self):
        for op in RESOURCE_ARN_OPS:
            with self.subTest(op=op):
                # a repositoryName the key may use does not stand in for a missing ARN
                status, doc = self.call(self.team, op, {"repositoryName": TEAM})
                self.assertEqual((status, doc.get("__type")), (400, "InvalidParameterException"),
                                 doc)
                self.assertIn("'resourceArn'", doc["message"])
                status, doc = self.call(self.team, op, {"repositoryName": TEAM,
                                                        "resourceArn": "arn:aws:s3:::bucket"})
                self.assertEqual((status, doc.get("__type")), (400, "InvalidParameterException"),
                                 doc)
                self.assertIn("Invalid ARN", doc["message"])

    def test_repository_policy_of_the_named_repository_grants_nothing_elsewhere(self):
        # team/open's policy lets the outsider manage its tags; secret/s has no such policy
        self.ecr.set_repository_policy(repositoryName="team/open", policyText=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow",
                           "Principal": {"AWS": "arn:aws:iam::%s:user/outsider" % ACCOUNT},
                           "Action": ["ecr:" + op for op in RESOURCE_ARN_OPS]}]}))
        try:
            for op in RESOURCE_ARN_OPS:
                with self.subTest(op=op):
                    self.assertDenied(self.outsider, op,
                                      tag_body(op, SECRET, repositoryName="team/open"))
                    status, doc = self.call(self.outsider, op, tag_body(op, "team/open"))
                    self.assertEqual(status, 200, doc)
            self.assertEqual(self.secret_tags(), [{"Key": "owner", "Value": SECRET}])
        finally:
            self.ecr.delete_repository_policy(repositoryName="team/open")

    # -- the audit: every other operation -------------------------------------------------------

    def test_every_repository_operation_refused_on_secret(self):
        for op in REPOSITORY_NAME_OPS:
            with self.subTest(op=op):
                self.assertDenied(self.team, op, {"repositoryName": SECRET})

    def test_repository_operations_ignore_resource_arn(self):
        # the fallback to resourceArn was the same bypass the other way round: an
        # operation defined on repositoryName is judged on that member alone
        for op in REPOSITORY_NAME_OPS:
            with self.subTest(op=op):
                status, doc = self.call(self.team, op,
                                        {"repositoryName": 7, "resourceArn": arn(TEAM)})
                self.assertEqual((status, doc.get("__type")), (400, "SerializationException"),
                                 doc)
                status, doc = self.call(self.team, op, {"resourceArn": arn(TEAM)})
                self.assertEqual((status, doc.get("__type")), (400, "InvalidParameterException"),
                                 doc)
                self.assertIn("'repositoryName'", doc["message"])

    def test_registry_operations_refused_to_a_repository_limited_key(self):
        for op in REGISTRY_OPS:
            for extra in ({}, {"repositoryName": TEAM}, {"resourceArn": arn(TEAM)}):
                with self.subTest(op=op, extra=extra):
                    self.assertDenied(self.team, op, extra)

    def test_every_operation_is_audited(self):
        # every operation berth serves (docs/ecr.md's table, which ecr/test_model holds to
        # ECR's model in botocore 1.43) is in one of the lists above, so an operation added
        # without its scope being tried here fails this test; GetAuthorizationToken, the one
        # left, is any key's (it names no repository)
        audited = (REPOSITORY_NAME_OPS + RESOURCE_ARN_OPS + REGISTRY_OPS + LIST_OPS +
                   ["GetAuthorizationToken"])
        self.assertEqual(len(audited), len(set(audited)))
        self.assertEqual(sorted(audited), sorted(documented_operations()))
        status, doc = self.call(self.team, "GetAuthorizationToken", {})
        self.assertEqual(status, 200, doc)

    def test_operations_on_lists_authorize_every_repository(self):
        self.assertDenied(self.team, "DescribeRepositories", {"repositoryNames": [TEAM, SECRET]})
        self.assertDenied(self.team, "BatchGetRepositoryScanningConfiguration",
                          {"repositoryNames": [TEAM, SECRET]})
        status, doc = self.call(self.team, "DescribeRepositories",
                                {"repositoryName": SECRET, "resourceArn": arn(SECRET)})
        self.assertEqual(status, 200, doc)
        names = [r["repositoryName"] for r in doc["repositories"]]
        self.assertIn(TEAM, names)
        self.assertNotIn(SECRET, names)


if __name__ == "__main__":
    unittest.main()
