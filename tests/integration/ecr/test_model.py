# berth-python: modern
"""berth against botocore's ECR service model (the machine image's botocore 1.43): docs/ecr.md
lists exactly the model's 58 operations, each with its status; every operation is answered
(never UnknownOperationException, never a 5xx) and its errors are ones the model lists for
it; and the raw JSON answers of the 2024-2026 operations (registry policy, creation
templates, account settings, archive storage class, pull-time exclusions, managed signing)
hold only the model's members, with the model's types and enum values. botocore parses an
unknown member or enum value without complaint, so only the raw answer shows one."""

import json
import os
import re
import uuid

import berth_harness as h
import ecr_helpers as e

DOCS = os.path.join(h.REPO_ROOT, "docs", "ecr.md")
# Errors any awsJson service may answer that a model does not list per operation.
COMMON_ERRORS = {"ValidationException", "AccessDeniedException", "UnrecognizedClientException"}
POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Sid": "replicate", "Effect": "Allow",
     "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
     "Action": ["ecr:CreateRepository", "ecr:ReplicateImage"],
     "Resource": "arn:aws:ecr:%s:%s:repository/*" % (e.REGION, e.REGISTRY_ID)}]})
LIFECYCLE = json.dumps({"rules": [{
    "rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan",
                                     "countNumber": 1},
    "action": {"type": "transition", "targetStorageClass": "archive"}}]})


def documented_operations():
    """{operation: status} from the table of docs/ecr.md."""
    out = {}
    with open(DOCS) as f:
        for line in f:
            m = re.match(r"^\| `([A-Za-z]+)` \| ([a-z ]+) \|", line)
            if m:
                out[m.group(1)] = m.group(2).strip()
    return out


class ModelTest(e.ModernEcrTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.model = cls.ecr.meta.service_model

    def conform(self, shape, value, path):
        """Assert that a raw JSON value fits a botocore shape: known members only, the
        model's types, enum values from the model."""
        kind = shape.type_name
        if kind == "structure":
            self.assertIsInstance(value, dict, path)
            for key, member in value.items():
                self.assertIn(key, shape.members, "%s: %s is not a member of %s"
                              % (path, key, shape.name))
                self.conform(shape.members[key], member, "%s.%s" % (path, key))
        elif kind == "list":
            self.assertIsInstance(value, list, path)
            for i, item in enumerate(value):
                self.conform(shape.member, item, "%s[%d]" % (path, i))
        elif kind == "map":
            self.assertIsInstance(value, dict, path)
            for key, item in value.items():
                self.conform(shape.key, key, "%s key" % path)
                self.conform(shape.value, item, "%s[%s]" % (path, key))
        elif kind == "string":
            self.assertIsInstance(value, str, path)
            if shape.enum:
                self.assertIn(value, shape.enum, "%s: not a value of %s" % (path, shape.name))
        elif kind in ("integer", "long"):
            self.assertTrue(isinstance(value, int) and not isinstance(value, bool), path)
        elif kind == "boolean":
            self.assertIsInstance(value, bool, path)
        elif kind == "timestamp":
            self.assertTrue(isinstance(value, (int, float)) and not isinstance(value, bool),
                            "%s: %r is not epoch seconds" % (path, value))
        elif kind in ("double", "float"):
            self.assertIsInstance(value, (int, float), path)
        elif kind == "blob":
            self.assertIsInstance(value, str, path)
        else:
            self.fail("%s: shape type %s" % (path, kind))

    def answer(self, op, body):
        """A raw call that must succeed; its answer checked against the operation's output
        shape."""
        out = self.ok(op, body)
        self.conform(self.model.operation_model(op).output_shape, out, op)
        return out

    def error(self, op, body, code):
        """A raw call that must fail with code, an error the model lists for op."""
        resp = self.call(op, body)
        doc = self.assertAwsError(resp, 400, code)
        self.assertIn(code, [s.name for s in self.model.operation_model(op).error_shapes], op)
        return doc

    def test_docs_list_the_model(self):
        documented = documented_operations()
        self.assertEqual(len(self.model.operation_names), 58)
        self.assertEqual(sorted(documented), sorted(self.model.operation_names))
        self.assertEqual({op for op, status in documented.items() if status != "implemented"},
                         set())

    def test_every_operation_is_answered(self):
        """An empty body to each operation: answered (200, or a 4xx the model lists for it
        or any awsJson service gives), never UnknownOperationException nor a 5xx."""
        for op in self.model.operation_names:
            with self.subTest(op=op):
                resp = self.call(op, {})
                self.assertLess(resp.status, 500, resp.describe())
                if resp.status == 200:
                    self.conform(self.model.operation_model(op).output_shape, resp.json(), op)
                    continue
                code = resp.json().get("__type")
                self.assertNotEqual(code, "UnknownOperationException")
                listed = {s.name for s in self.model.operation_model(op).error_shapes}
                self.assertIn(code, listed | COMMON_ERRORS, resp.describe())

    def test_new_operations_answer_the_model(self):
        # account settings
        for name in ("BASIC_SCAN_TYPE_VERSION", "REGISTRY_POLICY_SCOPE", "BLOB_MOUNTING"):
            self.answer("GetAccountSetting", {"name": name})
        self.answer("PutAccountSetting", {"name": "BLOB_MOUNTING", "value": "DISABLED"})
        self.answer("PutAccountSetting", {"name": "BLOB_MOUNTING", "value": "ENABLED"})
        self.error("GetAccountSetting", {"name": "NO_SUCH_SETTING"}, "InvalidParameterException")
        # registry policy
        self.error("GetRegistryPolicy", {}, "RegistryPolicyNotFoundException")
        self.answer("PutRegistryPolicy", {"policyText": POLICY})
        self.answer("GetRegistryPolicy", {})
        self.answer("DeleteRegistryPolicy", {})
        self.error("DeleteRegistryPolicy", {}, "RegistryPolicyNotFoundException")
        self.error("PutRegistryPolicy", {"policyText": "{}"}, "InvalidParameterException")
        # creation templates
        prefix = "model-" + uuid.uuid4().hex[:8]
        self.answer("CreateRepositoryCreationTemplate", {
            "prefix": prefix, "description": "d", "appliedFor": ["CREATE_ON_PUSH"],
            "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
            "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD",
                                                    "filter": "latest"}],
            "resourceTags": [{"Key": "k", "Value": "v"}],
            "encryptionConfiguration": {"encryptionType": "AES256"},
            "lifecyclePolicy": LIFECYCLE, "repositoryPolicy": POLICY.replace(
                "repository/*", "repository/x"),
            "customRoleArn": "arn:aws:iam::%s:role/templates" % e.REGISTRY_ID})
        self.error("CreateRepositoryCreationTemplate",
                   {"prefix": prefix, "appliedFor": ["CREATE_ON_PUSH"]},
                   "TemplateAlreadyExistsException")
        self.answer("DescribeRepositoryCreationTemplates", {})
        self.answer("DescribeRepositoryCreationTemplates", {"prefixes": [prefix]})
        self.answer("UpdateRepositoryCreationTemplate",
                    {"prefix": prefix, "appliedFor": ["REPLICATION", "PULL_THROUGH_CACHE"]})
        self.answer("DeleteRepositoryCreationTemplate", {"prefix": prefix})
        self.error("DeleteRepositoryCreationTemplate", {"prefix": prefix},
                   "TemplateNotFoundException")
        # pull-time update exclusions
        arn = "arn:aws:iam::%s:user/scanner-%s" % (e.REGISTRY_ID, uuid.uuid4().hex[:6])
        self.answer("RegisterPullTimeUpdateExclusion", {"principalArn": arn})
        self.error("RegisterPullTimeUpdateExclusion", {"principalArn": arn},
                   "ExclusionAlreadyExistsException")
        self.answer("ListPullTimeUpdateExclusions", {})
        self.answer("ListPullTimeUpdateExclusions", {"maxResults": 1})
        self.answer("DeregisterPullTimeUpdateExclusion", {"principalArn": arn})
        self.error("DeregisterPullTimeUpdateExclusion", {"principalArn": arn},
                   "ExclusionNotFoundException")
        # managed signing, archive and restore of a signed image
        repo = self.create_repo()
        self.error("GetSigningConfiguration", {}, "SigningConfigurationNotFoundException")
        profile = "arn:aws:signer:%s:%s:/signing-profiles/model" % (e.REGION, e.REGISTRY_ID)
        self.answer("PutSigningConfiguration", {"signingConfiguration": {"rules": [
            {"signingProfileArn": profile,
             "repositoryFilters": [{"filter": repo, "filterType": "WILDCARD_MATCH"}]}]}})
        self.answer("GetSigningConfiguration", {})
        image = h.build_image(layer_count=2)
        self.push_image_ok(repo, image, tag="v1")
        image_id = {"imageDigest": image.digest}

        def signed():
            out = self.answer("DescribeImageSigningStatus",
                              {"repositoryName": repo, "imageId": image_id})
            return out if all(s["status"] != "IN_PROGRESS"
                              for s in out["signingStatuses"]) else None
        self.assertEqual([s["status"] for s in
                          h.wait_until(signed, 60, what="the signature")["signingStatuses"]],
                         ["COMPLETE"])
        self.answer("DeleteSigningConfiguration", {})
        self.error("DeleteSigningConfiguration", {}, "SigningConfigurationNotFoundException")
        self.error("DescribeImageSigningStatus",
                   {"repositoryName": repo, "imageId": {"imageTag": "nope"}},
                   "ImageNotFoundException")
        self.answer("UpdateImageStorageClass", {"repositoryName": repo, "imageId": image_id,
                                                "targetStorageClass": "ARCHIVE"})
        for status in ("ARCHIVED", "ANY"):
            out = self.answer("DescribeImages", {"repositoryName": repo,
                                                 "filter": {"imageStatus": status}})
            self.assertIn(image.digest, [d["imageDigest"] for d in out["imageDetails"]])
            self.answer("ListImages", {"repositoryName": repo, "filter": {"imageStatus": status}})
        self.answer("BatchCheckLayerAvailability", {"repositoryName": repo,
                                                    "layerDigests": image.layer_digests})
        self.answer("BatchGetImage", {"repositoryName": repo, "imageIds": [image_id]})
        self.error("StartImageScan", {"repositoryName": repo, "imageId": image_id},
                   "ImageArchivedException")
        self.error("UpdateImageStorageClass",
                   {"repositoryName": repo, "imageId": {"imageTag": "nope"},
                    "targetStorageClass": "STANDARD"}, "ImageNotFoundException")
        self.error("UpdateImageStorageClass",
                   {"repositoryName": repo + "-missing", "imageId": image_id,
                    "targetStorageClass": "STANDARD"}, "RepositoryNotFoundException")
        self.answer("UpdateImageStorageClass", {"repositoryName": repo, "imageId": image_id,
                                                "targetStorageClass": "STANDARD"})
        self.answer("DescribeImages", {"repositoryName": repo, "imageIds": [image_id]})
        # a lifecycle policy that archives, previewed
        self.answer("PutLifecyclePolicy", {"repositoryName": repo,
                                           "lifecyclePolicyText": LIFECYCLE})
        self.push_image_ok(repo, h.build_image(layer_count=1), tag="v2")
        self.answer("StartLifecyclePolicyPreview", {"repositoryName": repo})

        def previewed():
            out = self.answer("GetLifecyclePolicyPreview", {"repositoryName": repo})
            return out if out["status"] != "IN_PROGRESS" else None
        out = h.wait_until(previewed, 60, what="the lifecycle preview")
        self.assertEqual(out["status"], "COMPLETE", out)
        # the oldest beyond one: the image and its signature (an image too)
        self.assertEqual({r["action"]["type"] for r in out["previewResults"]}, {"TRANSITION"})
        self.assertIn(image.digest, [r["imageDigest"] for r in out["previewResults"]])


if __name__ == "__main__":
    h.main()
