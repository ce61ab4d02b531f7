"""Bad input on the ECR JSON API for the image, layer and settings operations: malformed
JSON, wrong types, missing required members, over-long strings, unknown enum values, huge
bodies, unknown targets and GET instead of POST. Each gets an AWS-shaped error (4xx, never
5xx) and leaves the store as it was."""

import json

import berth_harness as h
import ecr_helpers as e

DIGEST = "sha256:" + "a" * 64
UPLOAD = "01234567-89ab-cdef-0123-456789abcdef"
BODY_MAX = 28 << 20  # berth's ECR_BODY_MAX


class BadInputTest(e.EcrTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.repo_name = "itest/bad-input"
        cls.ecr.create_repository(repositoryName=cls.repo_name,
                                  tags=[{"Key": "k", "Value": "v"}])
        cls.img = h.build_image(layer_count=1)
        h.expect_status(cls.server.registry().push_image(cls.repo_name, cls.img, tag="v1"), 201)
        cls.upload_id = cls.ecr.initiate_layer_upload(repositoryName=cls.repo_name)["uploadId"]

    def setUp(self):
        self.before = self.snapshot()

    def tearDown(self):
        # nothing changed: the same repositories, settings, images, tags and upload progress
        self.assertEqual(self.snapshot(), self.before)
        resp = self.reg.get("/v2/%s/blobs/uploads/%s" % (self.repo_name, self.upload_id))
        self.assertStatus(resp, 204)
        self.assertRangeHeader(resp, 0)

    def expect(self, op, body, error_type, raw=None):
        resp = self.call(op, body, raw=raw)
        with self.subTest(op=op, body=str(body)[:200] if raw is None else raw[:60]):
            self.assertAwsError(resp, 400, error_type)

    def test_malformed_json(self):
        for op in ("ListImages", "DescribeImages", "BatchGetImage", "BatchDeleteImage",
                   "PutImage", "ListImageReferrers", "BatchCheckLayerAvailability",
                   "InitiateLayerUpload", "UploadLayerPart", "CompleteLayerUpload",
                   "PutImageTagMutability", "PutImageScanningConfiguration", "TagResource",
                   "UntagResource", "ListTagsForResource", "DescribeRegistry"):
            for raw in (b'{"repositoryName": ', b"[]", b'"text"', b"{} {}", b"\xff\xfe",
                        b'{"repositoryName": "a", "repositoryName": "b"}'):
                self.expect(op, None, "SerializationException", raw=raw)

    def test_wrong_types(self):
        repo = self.repo_name
        cases = [
            ("ListImages", {"repositoryName": 5}),
            ("ListImages", {"repositoryName": repo, "maxResults": "10"}),
            ("ListImages", {"repositoryName": repo, "filter": "TAGGED"}),
            ("ListImages", {"repositoryName": repo, "filter": {"tagStatus": 1}}),
            ("DescribeImages", {"repositoryName": repo, "imageIds": {"imageTag": "v1"}}),
            ("DescribeImages", {"repositoryName": repo, "nextToken": 7}),
            ("BatchGetImage", {"repositoryName": repo, "imageIds": "v1"}),
            ("BatchGetImage", {"repositoryName": repo, "imageIds": [{"imageTag": 1}]}),
            ("BatchGetImage", {"repositoryName": repo, "imageIds": [{"imageTag": "v1"}],
                               "acceptedMediaTypes": [1]}),
            ("BatchDeleteImage", {"repositoryName": repo, "imageIds": [5]}),
            ("BatchDeleteImage", {"repositoryName": repo, "imageIds": [{"imageDigest": []}]}),
            ("PutImage", {"repositoryName": repo, "imageManifest": {}}),
            ("PutImage", {"repositoryName": repo, "imageManifest": "{}", "imageTag": 5}),
            ("ListImageReferrers", {"repositoryName": repo, "subjectId": DIGEST}),
            ("BatchCheckLayerAvailability", {"repositoryName": repo, "layerDigests": {}}),
            ("InitiateLayerUpload", {"repositoryName": ["x"]}),
            ("UploadLayerPart", {"repositoryName": repo, "uploadId": self.upload_id,
                                 "partFirstByte": 0, "partLastByte": 0.5,
                                 "layerPartBlob": "eA=="}),
            ("CompleteLayerUpload", {"repositoryName": repo, "uploadId": self.upload_id,
                                     "layerDigests": DIGEST}),
            ("PutImageTagMutability", {"repositoryName": repo, "imageTagMutability": 1}),
            ("PutImageScanningConfiguration", {"repositoryName": repo,
                                               "imageScanningConfiguration": []}),
            ("TagResource", {"resourceArn": self.arn(repo), "tags": {"Key": "a"}}),
            ("TagResource", {"resourceArn": 5, "tags": []}),
            ("UntagResource", {"resourceArn": self.arn(repo), "tagKeys": "k"}),
            ("ListTagsForResource", {"resourceArn": True}),
        ]
        for op, body in cases:
            self.expect(op, body, "SerializationException")

    def test_missing_required(self):
        repo = self.repo_name
        cases = [
            ("ListImages", {}), ("DescribeImages", {}), ("BatchGetImage", {"imageIds": []}),
            ("BatchGetImage", {"repositoryName": repo}),
            ("BatchDeleteImage", {"repositoryName": repo}),
            ("PutImage", {"repositoryName": repo}),
            ("PutImage", {"imageManifest": "{}"}),
            ("ListImageReferrers", {"repositoryName": repo}),
            ("ListImageReferrers", {"repositoryName": repo, "subjectId": {}}),
            ("BatchCheckLayerAvailability", {"repositoryName": repo}),
            ("InitiateLayerUpload", {}),
            ("UploadLayerPart", {"repositoryName": repo, "uploadId": self.upload_id,
                                 "partFirstByte": 0, "partLastByte": 0}),
            ("UploadLayerPart", {"repositoryName": repo, "partFirstByte": 0, "partLastByte": 0,
                                 "layerPartBlob": "eA=="}),
            ("CompleteLayerUpload", {"repositoryName": repo, "layerDigests": [DIGEST]}),
            ("CompleteLayerUpload", {"repositoryName": repo, "uploadId": self.upload_id}),
            ("PutImageTagMutability", {"repositoryName": repo}),
            ("PutImageScanningConfiguration", {"repositoryName": repo}),
            ("TagResource", {"resourceArn": self.arn(repo)}),
            ("TagResource", {"tags": [{"Key": "a", "Value": "b"}]}),
            ("UntagResource", {"resourceArn": self.arn(repo)}),
            ("ListTagsForResource", {}),
        ]
        for op, body in cases:
            self.expect(op, body, "InvalidParameterException")

    def test_tags_outside_the_oci_grammar(self):
        """ECR's model takes any tag of 1..300 characters; berth keeps to the OCI grammar (a
        tag /v2 clients can pull). Every operation refuses such a tag alike, naming the rule:
        before, PutImage said only 'invalid tag' and the single-imageId operations answered
        ImageNotFoundException where DescribeImages answered InvalidParameterException."""
        repo = self.repo_name
        rule = "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}"
        for tag in ("bad tag", "t" * 129):
            cases = [
                ("PutImage", {"repositoryName": repo, "imageManifest": self.img.manifest.decode(),
                              "imageTag": tag}),
                ("DescribeImages", {"repositoryName": repo, "imageIds": [{"imageTag": tag}]}),
                ("StartImageScan", {"repositoryName": repo, "imageId": {"imageTag": tag}}),
                ("DescribeImageScanFindings", {"repositoryName": repo,
                                               "imageId": {"imageTag": tag}}),
            ]
            for op, body in cases:
                resp = self.call(op, body)
                with self.subTest(op=op, tag=tag[:20]):
                    self.assertAwsError(resp, 400, "InvalidParameterException")
                    self.assertIn(rule, resp.json()["message"])
        resp = self.call("ListImages", {})
        self.assertEqual(resp.json()["message"], "Invalid parameter at 'repositoryName' failed "
                                                 "to satisfy constraint: 'Member must not be "
                                                 "null'")

    def test_limits_and_patterns(self):
        repo = self.repo_name
        long_name = "a" * 257
        cases = [
            ("ListImages", {"repositoryName": long_name}),
            ("ListImages", {"repositoryName": "a"}),
            ("ListImages", {"repositoryName": "Upper/Case"}),
            ("ListImages", {"repositoryName": repo, "maxResults": 0}),
            ("ListImages", {"repositoryName": repo, "nextToken": "x" * 5000}),
            ("ListImages", {"repositoryName": repo, "registryId": "1234567890123"}),
            ("DescribeImages", {"repositoryName": repo, "maxResults": 1001}),
            ("DescribeImages", {"repositoryName": repo, "imageIds": []}),
            ("DescribeImages", {"repositoryName": repo, "imageIds": [{"imageTag": "t" * 301}]}),
            ("BatchGetImage", {"repositoryName": repo, "imageIds": [{"imageTag": ""}]}),
            ("BatchGetImage", {"repositoryName": repo, "imageIds": [{"imageTag": "v1"}],
                               "acceptedMediaTypes": []}),
            ("BatchGetImage", {"repositoryName": repo, "imageIds": [{"imageTag": "v1"}],
                               "acceptedMediaTypes": ["x" * 256]}),
            ("BatchDeleteImage", {"repositoryName": repo,
                                  "imageIds": [{"imageDigest": "d" * 1001}]}),
            ("BatchDeleteImage", {"repositoryName": repo, "imageIds": [{"imageTag": "v1"}] * 101}),
            ("PutImage", {"repositoryName": repo, "imageManifest": ""}),
            ("PutImage", {"repositoryName": repo, "imageManifest": "x" * (4194304 + 1)}),
            ("PutImage", {"repositoryName": repo, "imageManifest": "{}",
                          "imageManifestMediaType": "m" * 256}),
            ("PutImage", {"repositoryName": repo, "imageManifest": "{}",
                          "imageTag": "t" * 301}),
            ("InitiateLayerUpload", {"repositoryName": long_name}),
            ("UploadLayerPart", {"repositoryName": repo, "uploadId": "u" * 65,
                                 "partFirstByte": 0, "partLastByte": 0,
                                 "layerPartBlob": "eA=="}),
            ("CompleteLayerUpload", {"repositoryName": repo, "uploadId": self.upload_id,
                                     "layerDigests": [DIGEST] * 101}),
            ("PutImageScanningConfiguration", {"repositoryName": long_name,
                                               "imageScanningConfiguration": {}}),
            ("ListTagsForResource", {"resourceArn": "a" * 1025}),
            ("TagResource", {"resourceArn": "", "tags": []}),
            # a KMS key AES256 would never use (before: accepted, stored and shown)
            ("CreateRepository", {"repositoryName": "itest/kms-aes",
                                  "encryptionConfiguration": {"encryptionType": "AES256",
                                                              "kmsKey": "k"}}),
        ]
        for op, body in cases:
            self.expect(op, body, "InvalidParameterException")

    def test_part_byte_range_extremes(self):
        """partLastByte up to the model's maximum (2^63 - 1) is a length mismatch, not an
        overflow, and an empty part (partLastByte = partFirstByte - 1) is refused, not
        accepted as a no-op."""
        base = {"repositoryName": self.repo_name, "uploadId": self.upload_id}
        for first, last, blob in ((0, 2**63 - 1, "eA=="), (0, 2**63 - 2, "eA=="),
                                  (0, 2**63 - 1, "")):
            self.expect("UploadLayerPart", dict(base, partFirstByte=first, partLastByte=last,
                                                layerPartBlob=blob),
                        "InvalidLayerPartException")
        upload = self.ok("InitiateLayerUpload", {"repositoryName": self.repo_name})["uploadId"]
        part = dict(base, uploadId=upload)
        self.ok("UploadLayerPart", dict(part, partFirstByte=0, partLastByte=2,
                                        layerPartBlob=e.b64(b"abc")))
        self.expect("UploadLayerPart", dict(part, partFirstByte=3, partLastByte=2,
                                            layerPartBlob=""), "InvalidLayerPartException")
        resp = self.reg.get("/v2/%s/blobs/uploads/%s" % (self.repo_name, upload))
        self.assertStatus(resp, 204)
        self.assertRangeHeader(resp, 2)
        self.assertStatus(self.reg.delete("/v2/%s/blobs/uploads/%s" % (self.repo_name, upload)),
                          204)

    def test_tag_and_digest_that_disagree(self):
        """An image id whose tag points at another image than its digest: BatchGetImage's
        ImageTagDoesNotMatchDigest failure, and on the calls about one image an
        ImageNotFoundException that says the same, not that the image does not exist."""
        repo = self.repo_name
        image_id = {"imageTag": "v1", "imageDigest": DIGEST}
        doc = self.ok("BatchGetImage", {"repositoryName": repo, "imageIds": [image_id]})
        self.assertEqual(doc["images"], [])
        self.assertEqual(doc["failures"][0]["failureCode"], "ImageTagDoesNotMatchDigest")
        for op, body in (("StartImageScan", {"imageId": image_id}),
                         ("DescribeImageScanFindings", {"imageId": image_id}),
                         ("DescribeImages", {"imageIds": [image_id]})):
            resp = self.call(op, dict(body, repositoryName=repo))
            with self.subTest(op=op):
                self.assertAwsError(resp, 400, "ImageNotFoundException")
                self.assertIn("does not point at the image digest given (it points at %s)"
                              % self.img.digest, resp.json()["message"])
        # each still finds the image when the two agree
        image_id["imageDigest"] = self.img.digest
        doc = self.ok("BatchGetImage", {"repositoryName": repo, "imageIds": [image_id]})
        self.assertEqual(doc["failures"], [])
        self.assertAwsError(self.call("DescribeImageScanFindings", {
            "repositoryName": repo, "imageId": image_id}), 400, "ScanNotFoundException")

    def test_non_ascii_input_in_messages(self):
        """Input echoed in an error message and cut by a length bound stays valid UTF-8:
        still a 400, never a 500."""
        manifest = json.dumps({"schemaVersion": 2, "mediaType": "x" + "\u00e9" * 300,
                               "config": {}})
        self.expect("PutImage", {"repositoryName": self.repo_name, "imageManifest": manifest},
                    "InvalidParameterException")
        self.expect("PutImage", {"repositoryName": self.repo_name,
                                 "imageManifest": "{" + "\u00e9" * 600},
                    "InvalidParameterException")
        self.expect("ListTagsForResource",
                    {"resourceArn": "arn:aws:ecr:x" + "\u00e9" * 500 + ":1:repository/abc"},
                    "InvalidParameterException")
        # a tag outside the OCI grammar is a per-image failure, echoed intact
        doc = self.ok("BatchGetImage", {"repositoryName": self.repo_name,
                                        "imageIds": [{"imageTag": "\u00e9" * 300}]})
        self.assertEqual(doc["failures"][0]["imageId"], {"imageTag": "\u00e9" * 300})
        self.assertEqual(doc["failures"][0]["failureCode"], "InvalidImageTag")

    def test_unknown_enum_values(self):
        repo = self.repo_name
        cases = [
            ("ListImages", {"repositoryName": repo, "filter": {"tagStatus": "tagged"}}),
            ("ListImages", {"repositoryName": repo, "filter": {"imageStatus": "GONE"}}),
            ("DescribeImages", {"repositoryName": repo, "filter": {"tagStatus": "ALL"}}),
            ("PutImageTagMutability", {"repositoryName": repo,
                                       "imageTagMutability": "READONLY"}),
            ("ListImageReferrers", {"repositoryName": repo, "subjectId": {"imageDigest": DIGEST},
                                    "filter": {"artifactStatus": "X"}}),
        ]
        for op, body in cases:
            self.expect(op, body, "InvalidParameterException")
        resp = self.call("ListImages", {"repositoryName": repo,
                                        "filter": {"tagStatus": "tagged"}})
        self.assertEqual(resp.json()["message"],
                         "Invalid parameter at 'tagStatus' failed to satisfy constraint: "
                         "'Member must satisfy enum value set: [TAGGED, UNTAGGED, ANY]'")

    def test_huge_bodies(self):
        body = b'{"repositoryName":"' + b"a" * (BODY_MAX + 16) + b'"}'
        resp = self.call("PutImage", None, raw=body)
        self.assertAwsError(resp, 400, "SerializationException")
        # the same without a Content-Length: refused once the limit is passed

        def chunks():
            for i in range(0, len(body), 1 << 20):
                yield body[i:i + (1 << 20)]
        resp = self.reg.request("POST", "/", headers={
            "Content-Type": e.JSON_CT, "X-Amz-Target": e.TARGET_PREFIX + "UploadLayerPart"},
            body=chunks(), chunked=True)
        self.assertAwsError(resp, 400, "InvalidParameterException")

    def test_unknown_targets_and_methods(self):
        body = {"repositoryName": self.repo_name}
        for target in (e.TARGET_PREFIX + "NoSuchOperation", e.TARGET_PREFIX,
                       "AmazonEC2ContainerRegistry_V20150921ListImages",
                       "SomeOtherService_20200101.ListImages", "x" * 3000):
            resp = self.call(None, body, target=target)
            with self.subTest(target=target[:80]):
                self.assertAwsError(resp, 400, "UnknownOperationException")
        for method in ("GET", "PUT", "DELETE"):
            resp = self.call("BatchDeleteImage", None, method=method)
            with self.subTest(method=method):
                self.assertAwsError(resp, 400, "UnknownOperationException")


if __name__ == "__main__":
    h.main()
