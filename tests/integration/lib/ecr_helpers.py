"""Helpers for the ECR JSON API integration tests.

EcrTestCase is a ServerTestCase (its own berth on a free port) that also drives the real
AWS CLI v2 and Debian's boto3 at that server (both built by clients.py), sends raw JSON API
requests, and takes snapshots of the store as the ECR API sees it, so bad-input tests can
assert that nothing changed.

berth runs without authentication here, so any access key works: requests are signed with
clients.DUMMY_KEY.
"""

import base64
import json
import shutil
import tempfile

import clients as c  # first: it cleans the environment botocore reads
import botocore.exceptions

import berth_harness as h

TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."
JSON_CT = "application/x-amz-json-1.1"
REGION = c.REGION
REGISTRY_ID = "000000000000"  # berth's default registry.id


def b64(data):
    return base64.b64encode(data).decode("ascii")


class EcrTestCase(h.ServerTestCase):
    """A berth server plus the aws CLI and a boto3 client pointed at it."""

    # The key the CLI signs with (a test class with access keys sets its own).
    cli_key = c.DUMMY_KEY

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.work = tempfile.mkdtemp(prefix="berth-ecr-")
        cls.addClassCleanup(shutil.rmtree, cls.work, True)
        cls.endpoint = cls.server.base_url
        cls.ecr = c.ecr_client(cls.server, *c.DUMMY_KEY)

    def restart_server(self, key=c.DUMMY_KEY):
        """Stop the class's server and start it again on its port, with new clients in
        cls.reg and cls.ecr (signing with key)."""
        self.server.stop()
        self.server.start(reuse_port=True)
        cls = type(self)
        cls.reg = self.server.registry()
        cls.ecr = c.ecr_client(self.server, *key)

    # -- clients ------------------------------------------------------------------------------

    def aws(self, *args, check=True):
        """Run '/usr/bin/aws ecr <args>' against the server; with check, require exit 0 and
        return the parsed JSON output, else return the clients.AwsResult."""
        res = c.aws(self.server, *args, key=self.cli_key[0], secret=self.cli_key[1])
        if not check:
            return res
        if res.rc != 0:
            self.fail(res.describe())
        return res.json()

    def aws_text(self, *args):
        """Run the CLI with --output text (after the given args) and return stdout."""
        res = c.aws(self.server, *args, key=self.cli_key[0], secret=self.cli_key[1],
                    output="text")
        if res.rc != 0:
            self.fail(res.describe())
        return res.out

    def assertCliError(self, code, *args, message=None):
        """The CLI call fails with the service error code (and message, if given)."""
        res = self.aws(*args, check=False)
        if res.rc == 0:
            self.fail("expected %s, but the call succeeded:\n%s" % (code, res.describe()))
        err = res.error()
        if err is None or err[0] != code:
            self.fail("expected %s:\n%s" % (code, res.describe()))
        if message is not None:
            self.assertEqual(err[1], message)
        return err

    def boto_error(self, method, **params):
        """Call a boto3 method that must fail; return the ClientError's error dict
        (Code, Message and any extra members)."""
        try:
            out = getattr(self.ecr, method)(**params)
        except botocore.exceptions.ClientError as exc:
            self.assertEqual(exc.response["ResponseMetadata"]["HTTPStatusCode"], 400,
                             exc.response)
            return exc.response["Error"]
        self.fail("%s(%r) succeeded: %r" % (method, params, out))

    def assertBotoError(self, code, method, **params):
        err = self.boto_error(method, **params)
        self.assertEqual(err["Code"], code, err)
        return err

    def call(self, op, body=None, raw=None, method="POST", headers=None, target=None):
        """A raw JSON API request (no signature: berth runs without auth here). body is
        serialised to JSON; raw sends bytes as they are."""
        hdrs = {"Content-Type": JSON_CT}
        if target is not None:
            hdrs["X-Amz-Target"] = target
        elif op is not None:
            hdrs["X-Amz-Target"] = TARGET_PREFIX + op
        hdrs.update(headers or {})
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        if data is not None:
            hdrs["Content-Length"] = str(len(data))
        return self.reg.request(method, "/", headers=hdrs, body=data)

    def ok(self, op, body):
        """A raw call that must succeed: returns the parsed JSON object."""
        resp = self.call(op, body)
        if resp.status != 200:
            self.fail("%s failed:\n%s" % (op, resp.describe()))
        self.assertEqual(resp.header("Content-Type"), JSON_CT)
        self.assertTrue(resp.header("x-amzn-RequestId"))
        return resp.json()

    def assertAwsError(self, resp, status, error_type, message=None):
        """An AWS-shaped error: status, body __type and message, x-amzn-ErrorType."""
        if resp.status != status:
            self.fail("expected %d %s:\n%s" % (status, error_type, resp.describe()))
        doc = resp.json()
        self.assertEqual(doc.get("__type"), error_type, doc)
        self.assertIsInstance(doc.get("message"), str)
        self.assertEqual(resp.header("x-amzn-ErrorType"), error_type)
        self.assertEqual(resp.header("Content-Type"), JSON_CT)
        self.assertTrue(resp.header("x-amzn-RequestId"))
        if message is not None:
            self.assertEqual(doc["message"], message)
        return doc

    # -- fixtures -----------------------------------------------------------------------------

    def create_repo(self, suffix=""):
        name = self.repo(suffix)
        self.ecr.create_repository(repositoryName=name)
        return name

    def push(self, repo, image, tag=None):
        """Push an image (or index) over /v2, by tag or by digest."""
        self.push_image_ok(repo, image, tag=tag)
        return image.digest

    def arn(self, repo):
        return "arn:aws:ecr:%s:%s:repository/%s" % (REGION, REGISTRY_ID, repo)

    def snapshot(self):
        """Everything the ECR API shows about the store: repositories with their settings
        and resource tags, and every image with its tags."""
        state = {}
        repos = self.ecr.describe_repositories()["repositories"]
        for r in repos:
            name = r["repositoryName"]
            images = self.ok("DescribeImages", {"repositoryName": name,
                                                "maxResults": 1000})["imageDetails"]
            tags = self.ok("ListTagsForResource", {"resourceArn": r["repositoryArn"]})["tags"]
            state[name] = {
                "repository": r,
                "images": sorted((i["imageDigest"], tuple(i.get("imageTags", [])))
                                 for i in images),
                "tags": tags,
            }
        return state


class ModernEcrTestCase(EcrTestCase):
    """An EcrTestCase whose clients are the machine image's boto3 (>= 1.40) and AWS CLI v1,
    for the operations Debian's clients lack. The test file must say "# berth-python: modern"
    in its first lines so that ctest runs it under that Python (tests/CMakeLists.txt)."""

    @classmethod
    def setUpClass(cls):
        c.require_modern()
        if not c.MODERN:
            raise AssertionError("run under ctest (BERTH_MODERN_CLIENTS=1), or set it")
        super().setUpClass()
