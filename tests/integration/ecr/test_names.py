# berth-python: modern
"""Repository names as ECR's current model has them (the OCI distribution grammar: '.',
'_', '__' and runs of '-' separate the lower-case alphanumeric parts of a component),
through boto3 1.43, AWS CLI v1 and /v2, and the model's pattern in the messages."""


import berth_harness as h
import ecr_helpers as e

PATTERN = ("[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(\\/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*")


class RepositoryNameTest(e.ModernEcrTestCase):
    def test_oci_grammar(self):
        base = self.repo()
        for suffix in ("/a__b", "/a--b", "/a---b.c_d", "/x/y-z"):
            name = base + suffix
            with self.subTest(name=name):
                out = self.ecr.create_repository(repositoryName=name)
                self.assertEqual(out["repository"]["repositoryName"], name)
                image = h.build_image(layer_count=1)
                self.push(name, image, tag="v1")
                listed = self.aws("list-images", "--repository-name", name)["imageIds"]
                self.assertEqual(listed, [{"imageDigest": image.digest, "imageTag": "v1"}])

    def test_refused_names(self):
        base = self.repo()
        for suffix in ("/a___b", "/a_-b", "/a-", "/-a", "/A", "/a//b", "/a_.b"):
            name = base + suffix
            with self.subTest(name=name):
                err = self.assertBotoError("InvalidParameterException", "describe_images",
                                           repositoryName=name)
                self.assertIn("must satisfy regular expression '%s'" % PATTERN,
                              err["Message"])
                self.assertCliError("InvalidParameterException", "create-repository",
                                    "--repository-name", name)
        err = self.assertBotoError("InvalidParameterException", "describe_repositories",
                                   repositoryNames=[base + "/a___b"])
        self.assertIn(PATTERN, err["Message"])

    def test_length(self):
        """ECR's 2..256 characters, the same over /v2 (NAME_INVALID outside them)."""
        base = self.repo() + "/"
        name = base + "n" * (256 - len(base))
        self.assertEqual(len(name), 256)
        out = self.ecr.create_repository(repositoryName=name)
        self.assertEqual(out["repository"]["repositoryName"], name)
        image = h.build_image(layer_count=1)
        self.push(name, image, tag="v1")
        got = self.ecr.batch_get_image(repositoryName=name, imageIds=[{"imageTag": "v1"}])
        self.assertEqual(got["images"][0]["imageId"]["imageDigest"], image.digest)
        self.assertEqual(self.reg.get_manifest(name, "v1").body, image.manifest)
        err = self.assertBotoError("InvalidParameterException", "create_repository",
                                   repositoryName=name + "n")
        self.assertIn("'repositoryName'", err["Message"])
        self.assertIn("length less than or equal to 256", err["Message"])
        resp = self.reg.request("POST", "/v2/%sn/blobs/uploads/" % name)
        self.assertStatus(resp, 400)
        self.assertIn(b"NAME_INVALID", resp.body)
        # one character: ECR's minimum is 2 (botocore refuses it before sending; /v2 too)
        resp = self.reg.request("POST", "/v2/a/blobs/uploads/")
        self.assertStatus(resp, 400)
        self.assertIn(b"NAME_INVALID", resp.body)


if __name__ == "__main__":
    h.main()
