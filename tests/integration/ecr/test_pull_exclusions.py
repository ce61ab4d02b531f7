# berth-python: modern
"""ECR pull-time update exclusions (RegisterPullTimeUpdateExclusion,
DeregisterPullTimeUpdateExclusion, ListPullTimeUpdateExclusions) against the real berth with
access keys, with the machine image's boto3 and AWS CLI v1: ECR's members and errors, and
pulls over /v2 and BatchGetImage by an excluded key leaving lastRecordedPullTime alone."""

import unittest

import auth_helpers as a
import berth_harness as h
import clients as c
import ecr_helpers as e

ACCOUNT = e.REGISTRY_ID
PATTERN = ("must satisfy regular expression '^arn:aws(-[a-z]+)*:iam::[0-9]{12}:(role|user)/"
           "[\\w+=,.@-]+(/[\\w+=,.@-]+)*$'")


def user_arn(name):
    return "arn:aws:iam::%s:user/%s" % (ACCOUNT, name)


class PullExclusionTest(e.ModernEcrTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = a.keys_create(cls.server, "admin")
        cls.scanner = a.keys_create(cls.server, "scanner", "pull")
        cls.dev = a.keys_create(cls.server, "dev", "pull")
        cls.cli_key = cls.admin
        cls.ecr = c.ecr_client(cls.server, *cls.admin)
        cls.admin_reg = a.AuthRegistry(cls.server.base_url, a.basic(*cls.admin))
        cls.scanner_reg = a.AuthRegistry(cls.server.base_url, a.basic(*cls.scanner))
        cls.dev_reg = a.AuthRegistry(cls.server.base_url, a.basic(*cls.dev))

    def setUp(self):
        self.addCleanup(self.clear)

    def clear(self):
        for arn in self.ecr.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"]:
            self.ecr.deregister_pull_time_update_exclusion(principalArn=arn)

    def push(self, repo, tag="v1"):
        img = h.build_image(layer_count=1)
        for data in img.blobs.values():
            self.admin_reg.ensure_blob(repo, data)
        self.assertStatus(self.admin_reg.put_manifest(repo, tag, img.manifest, img.media_type),
                          201)
        return img

    def last_pull(self, repo, tag="v1"):
        (d,) = self.ecr.describe_images(repositoryName=repo,
                                        imageIds=[{"imageTag": tag}])["imageDetails"]
        return d.get("lastRecordedPullTime")

    def test_operations(self):
        self.assertEqual(self.aws("list-pull-time-update-exclusions"),
                         {"pullTimeUpdateExclusions": []})
        arns = [user_arn("scanner"), "arn:aws:iam::111122223333:role/cache-warmer",
                "arn:aws-us-gov:iam::111122223333:user/path/to/x.y@z"]
        for arn in arns:
            out = self.aws("register-pull-time-update-exclusion", "--principal-arn", arn)
            self.assertEqual(out["principalArn"], arn)
            self.assertIsInstance(out["createdAt"], float)
        out = self.ecr.list_pull_time_update_exclusions()
        self.assertEqual(out["pullTimeUpdateExclusions"], sorted(arns))
        self.assertNotIn("nextToken", out)
        # pages
        seen, token = [], None
        for _ in range(5):
            params = {"maxResults": 1}
            if token:
                params["nextToken"] = token
            page = self.ecr.list_pull_time_update_exclusions(**params)
            self.assertEqual(len(page["pullTimeUpdateExclusions"]), 1)
            seen += page["pullTimeUpdateExclusions"]
            token = page.get("nextToken")
            if not token:
                break
        self.assertEqual(seen, sorted(arns))
        # the CLI (no paginator for this operation in the model: one page)
        out = self.aws("list-pull-time-update-exclusions", "--max-results", "2")
        self.assertEqual(out["pullTimeUpdateExclusions"], sorted(arns)[:2])
        self.assertTrue(out["nextToken"])
        out = self.ecr.deregister_pull_time_update_exclusion(principalArn=arns[1])
        self.assertEqual(out["principalArn"], arns[1])
        self.assertEqual(self.ecr.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"],
                         sorted([arns[0], arns[2]]))

    def test_errors(self):
        arn = user_arn("twice")
        self.ecr.register_pull_time_update_exclusion(principalArn=arn)
        err = self.assertBotoError("ExclusionAlreadyExistsException",
                                   "register_pull_time_update_exclusion", principalArn=arn)
        self.assertIn(arn, err["Message"])
        err = self.assertCliError("ExclusionNotFoundException",
                                  "deregister-pull-time-update-exclusion", "--principal-arn",
                                  user_arn("never"))
        for bad in ("arn:aws:iam::123:user/x", "arn:aws:iam::%s:group/x" % ACCOUNT,
                    "arn:aws:sts::%s:assumed-role/x/y" % ACCOUNT, "user/x",
                    "arn:aws:iam::%s:user/" % ACCOUNT, "arn:aws:iam::%s:user/a b" % ACCOUNT):
            with self.subTest(arn=bad):
                err = self.assertBotoError("InvalidParameterException",
                                           "register_pull_time_update_exclusion",
                                           principalArn=bad)
                self.assertEqual(err["Message"], "Invalid parameter at 'principalArn' failed "
                                 "to satisfy constraint: '%s'" % PATTERN)
        err = self.assertBotoError("InvalidParameterException",
                                   "register_pull_time_update_exclusion",
                                   principalArn="arn:aws:iam::%s:user/%s" % (ACCOUNT, "x" * 190))
        self.assertIn("length less than or equal to 200", err["Message"])
        self.assertBotoError("InvalidParameterException", "list_pull_time_update_exclusions",
                             nextToken="not-a-token")
        # the registry's limit
        for i in range(99):
            self.ecr.register_pull_time_update_exclusion(principalArn=user_arn("u%d" % i))
        self.assertBotoError("LimitExceededException", "register_pull_time_update_exclusion",
                             principalArn=user_arn("one-too-many"))
        self.assertEqual(len(self.aws("list-pull-time-update-exclusions")
                             ["pullTimeUpdateExclusions"]), 100)

    def test_only_permitted_callers_manage_it(self):
        ecr = c.ecr_client(self.server, *self.dev)
        try:
            ecr.register_pull_time_update_exclusion(principalArn=user_arn("dev"))
        except Exception as exc:
            self.assertEqual(a.error_code(exc), "AccessDeniedException")
        else:
            self.fail("a pull-only key registered an exclusion")
        self.assertEqual(self.ecr.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"],
                         [])

    def test_excluded_pulls_leave_the_pull_time(self):
        self.ecr.register_pull_time_update_exclusion(principalArn=user_arn("scanner"))
        repo = self.repo()
        img = self.push(repo)
        self.assertIsNone(self.last_pull(repo))
        # the excluded key pulls, by tag and by digest, manifest and layers
        for ref in ("v1", img.digest):
            resp = self.scanner_reg.get_manifest(repo, ref)
            self.assertStatus(resp, 200)
            self.assertEqual(resp.body, img.manifest)
        for digest, data in img.blobs.items():
            self.assertEqual(self.scanner_reg.get_blob(repo, digest).body, data)
        self.assertIsNone(self.last_pull(repo))
        # ... and through the ECR API
        ecr = c.ecr_client(self.server, *self.scanner)
        out = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
        self.assertEqual(len(out["images"]), 1)
        self.assertIsNone(self.last_pull(repo))
        # another key's pull is recorded
        self.assertStatus(self.dev_reg.get_manifest(repo, "v1"), 200)
        self.assertIsNotNone(self.last_pull(repo))

        # deregistered: the scanner's pulls count again
        self.ecr.deregister_pull_time_update_exclusion(principalArn=user_arn("scanner"))
        other = self.repo("-2")
        self.push(other)
        self.assertStatus(self.scanner_reg.get_manifest(other, "v1"), 200)
        self.assertIsNotNone(self.last_pull(other))


if __name__ == "__main__":
    unittest.main()
