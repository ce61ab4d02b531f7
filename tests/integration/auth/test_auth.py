"""Authentication and authorization: `berth keys`, SigV4 on the ECR API (real boto3 and
/usr/bin/aws), the docker login flow on /v2 (skopeo), Basic credentials, token expiry,
identity permissions, repository policies, anonymous pulls of public repositories,
GetDownloadUrlForLayer URLs, and secrets kept out of the log."""

import base64
import datetime
import json
import os
import subprocess
import time
import unittest
import urllib.error
import urllib.request
import warnings

import clients as c  # first: it cleans the environment botocore reads
import berth_harness as h
import auth_helpers as e

from botocore.exceptions import ClientError

ACCOUNT = "000000000000"
PULL_ACTIONS = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]


def user_arn(name):
    return "arn:aws:iam::%s:user/%s" % (ACCOUNT, name)


def repo_arn(name):
    return "arn:aws:ecr:%s:%s:repository/%s" % (e.REGION, ACCOUNT, name)


def policy(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


class QuietMixin:
    """boto3 clients are left to the garbage collector: hide their socket warnings."""

    def setUp(self):
        super().setUp()
        warnings.simplefilter("ignore", ResourceWarning)


class AuthTest(QuietMixin, h.ServerTestCase):
    """One server; keys made with `berth keys create` while it runs."""

    server_config = {"auth": {"regions": ["us-east-1", "eu-west-1"]}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Before any key exists the loopback server is anonymous.
        assert cls.reg.ping().status == 200
        cls.admin = e.keys_create(cls.server, "admin")
        cls.reader = e.keys_create(cls.server, "reader", "pull:team/*")
        cls.pusher = e.keys_create(cls.server, "pusher", "push:team/*", "push:shared/*")
        cls.ecr = c.ecr_client(cls.server, *cls.admin)
        cls.admin_reg = e.AuthRegistry(cls.server.base_url, e.basic(*cls.admin))
        cls.pusher_reg = e.AuthRegistry(cls.server.base_url, e.basic(*cls.pusher))
        cls.reader_reg = e.AuthRegistry(cls.server.base_url, e.basic(*cls.reader))
        cls.secrets = [cls.admin[1], cls.reader[1], cls.pusher[1]]

    def push(self, reg, repo, tag="v1"):
        img = h.build_image(layer_count=1, layer_size=512)
        self.assertStatus(reg.push_image(repo, img, tag=tag), 201)
        return img

    def assertClientError(self, code, fn, *args, **kwargs):
        with self.assertRaises(ClientError) as cm:
            fn(*args, **kwargs)
        self.assertEqual(e.error_code(cm.exception), code, cm.exception.response)
        return cm.exception.response["Error"].get("Message", "")

    # -- keys ------------------------------------------------------------------------------------

    def test_generated_keys_look_like_aws(self):
        akid, secret = self.admin
        self.assertRegex(akid, r"^AKIA[A-Z0-9]{16}$")
        self.assertEqual(len(secret), 40)
        self.assertRegex(secret, r"^[A-Za-z0-9+/]{40}$")

    def test_keys_create_output_evals_in_a_shell(self):
        env = c.aws_env()  # no credentials: the script exports what berth printed
        script = ('set -e; eval "$(%s keys create evaluated --root %s 2>/dev/null)"; '
                  'export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY; '
                  '%s ecr create-repository --repository-name team/evaluated --endpoint-url %s'
                  % (h.find_berth_bin(), self.server.root, c.AWS_BIN, self.server.base_url))
        proc = subprocess.run(["/bin/sh", "-c", script], capture_output=True, env=env,
                              timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(json.loads(proc.stdout)["repository"]["repositoryName"],
                         "team/evaluated")

    def test_keys_list_never_prints_secrets(self):
        rc, out, err = h.run_berth(["keys", "list"], server=self.server, split=True)
        self.assertEqual(rc, 0, err)
        for akid, secret in (self.admin, self.reader, self.pusher):
            self.assertIn(akid, out)
            self.assertNotIn(secret, out + err)
        self.assertIn("pull:team/*", out)

    def test_keys_create_rejects_bad_input(self):
        for args in (["bad name"], ["ok", "fly:team/*"], ["ok", "ecr:NoSuchAction"]):
            rc, out, err = h.run_berth(["keys", "create", *args], server=self.server, split=True)
            self.assertEqual(rc, 2, (args, out, err))
            self.assertEqual(out, "")
        # a second key for a principal shares its permissions; new ones are refused
        rc, out, err = h.run_berth(["keys", "create", "reader", "admin"], server=self.server,
                                   split=True)
        self.assertEqual(rc, 1, err)
        self.assertIn("exists", err)

    def test_second_key_of_a_principal_shares_its_permissions(self):
        akid, secret = e.keys_create(self.server, "reader")
        ecr = c.ecr_client(self.server, akid, secret)
        self.assertClientError("AccessDeniedException", ecr.create_repository,
                               repositoryName="team/second-key")
        self.assertIn("repositories", ecr.describe_repositories())

    def test_keys_created_and_deleted_while_running(self):
        akid, secret = e.keys_create(self.server, "temp", "admin")
        ecr = c.ecr_client(self.server, akid, secret)
        ecr.create_repository(repositoryName="team/temp-key")
        password = e.login_password(ecr)
        token_reg = e.AuthRegistry(self.server.base_url, e.basic("AWS", password))
        key_reg = e.AuthRegistry(self.server.base_url, e.basic(akid, secret))
        self.assertStatus(token_reg.ping(), 200)
        self.assertStatus(key_reg.ping(), 200)
        e.keys_delete(self.server, akid)
        self.assertClientError("UnrecognizedClientException", ecr.describe_repositories)
        self.assertError(token_reg.ping(), 401, "UNAUTHORIZED")
        self.assertError(key_reg.ping(), 401, "UNAUTHORIZED")
        rc, out, err = h.run_berth(["keys", "delete", akid], server=self.server, split=True)
        self.assertEqual(rc, 1)
        self.assertIn("no access key", err)

    # -- SigV4 on the ECR API --------------------------------------------------------------------

    def test_wrong_secret_is_invalid_signature(self):
        ecr = c.ecr_client(self.server, self.admin[0], "x" * 40)
        msg = self.assertClientError("InvalidSignatureException", ecr.describe_repositories)
        self.assertIn("signature we calculated does not match", msg)

    def test_unknown_key_is_unrecognized_client(self):
        ecr = c.ecr_client(self.server, "AKIAAAAAAAAAAAAAAAAA", "y" * 40)
        msg = self.assertClientError("UnrecognizedClientException", ecr.describe_repositories)
        self.assertEqual(msg, "The security token included in the request is invalid.")

    def test_session_token_is_refused(self):
        ecr = c.ecr_client(self.server, *self.admin, session_token="FwoGZXIvYXdzEXAMPLE")
        self.assertClientError("UnrecognizedClientException", ecr.describe_repositories)

    def test_missing_authorization(self):
        status, doc, resp = e.ecr_call(self.reg, "DescribeRepositories", {})
        self.assertEqual(status, 400)
        self.assertEqual(doc["__type"], "MissingAuthenticationTokenException")
        self.assertEqual(resp.header("x-amzn-ErrorType"), "MissingAuthenticationTokenException")

    def test_clock_skew_is_signature_expired(self):
        when = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=10)
        status, doc, _ = e.signed_call(self.server, "DescribeRepositories", {}, *self.admin,
                                       when=when)
        self.assertEqual(status, 400)
        self.assertEqual(doc["__type"], "InvalidSignatureException")
        self.assertIn("Signature expired", doc["message"])
        # the same signer with the current time is accepted (the skew was the only fault)
        status, doc, _ = e.signed_call(self.server, "DescribeRepositories", {}, *self.admin)
        self.assertEqual(status, 200, doc)

    def test_target_and_content_type_must_be_signed(self):
        # signing only host;x-amz-date would let a captured request's target be swapped
        for unsigned, named in ((("x-amz-target",), "X-Amz-Target"),
                                (("content-type",), "Content-Type"),
                                (("content-type", "x-amz-target"), "Content-Type"),
                                (("host",), "Host' or ':authority")):
            with self.subTest(unsigned=unsigned):
                status, doc, resp = e.signed_call(self.server, "CreateRepository",
                                                  {"repositoryName": "team/unsigned-target"},
                                                  *self.admin, unsigned=unsigned)
                self.assertEqual((status, doc["__type"]), (400, "InvalidSignatureException"))
                self.assertEqual(doc["message"], "'%s' must be a 'SignedHeader' in the AWS "
                                 "Authorization." % named)
                self.assertEqual(resp.header("x-amzn-ErrorType"), "InvalidSignatureException")
        self.assertClientError("RepositoryNotFoundException", self.ecr.describe_repositories,
                               repositoryNames=["team/unsigned-target"])
        # signed as botocore signs, the same call is accepted
        status, doc, _ = e.signed_call(self.server, "DescribeRepositories", {}, *self.admin)
        self.assertEqual(status, 200, doc)

    def test_regions_outside_the_configured_set_are_refused(self):
        self.assertIn("repositories",
                      c.ecr_client(self.server, *self.admin, region="eu-west-1")
                      .describe_repositories())
        ecr = c.ecr_client(self.server, *self.admin, region="ap-south-1")
        self.assertClientError("InvalidSignatureException", ecr.describe_repositories)

    def test_aws_cli_with_a_path_prefix_endpoint(self):
        # botocore signs the path it sends; berth verifies against the raw path
        res = c.aws(self.server, "describe-repositories", key=self.admin[0],
                    secret=self.admin[1], endpoint=self.server.base_url + "/some/prefix")
        self.assertEqual(res.rc, 0, res)
        self.assertIn("repositories", res.json())

    # -- identity permissions --------------------------------------------------------------------

    def test_identity_permissions_on_the_json_api(self):
        self.ecr.create_repository(repositoryName="team/idp")
        reader = c.ecr_client(self.server, *self.reader)
        msg = self.assertClientError("AccessDeniedException", reader.create_repository,
                                     repositoryName="other/idp")
        self.assertEqual(msg, "User: %s is not authorized to perform: ecr:CreateRepository on "
                              "resource: %s" % (user_arn("reader"), repo_arn("other/idp")))
        msg = self.assertClientError("AccessDeniedException", reader.delete_repository,
                                     repositoryName="team/idp")
        self.assertIn("ecr:DeleteRepository", msg)
        # allowed: reading team/*
        names = [r["repositoryName"] for r in
                 reader.describe_repositories(repositoryNames=["team/idp"])["repositories"]]
        self.assertEqual(names, ["team/idp"])

    def test_identity_permissions_on_v2(self):
        repo = "team/v2-" + str(os.getpid())
        img = self.push(self.pusher_reg, repo)
        # reader may pull but not push or delete
        self.assertStatus(self.reader_reg.get_manifest(repo, "v1"), 200)
        self.assertStatus(self.reader_reg.get_blob(repo, img.layer_digests[0]), 200)
        resp = self.reader_reg.start_upload(repo)
        self.assertError(resp, 403, "DENIED")
        self.assertIn("ecr:InitiateLayerUpload", resp.json()["errors"][0]["message"])
        self.assertError(self.reader_reg.delete(self.reader_reg.manifest_path(repo, img.digest)),
                         403, "DENIED")
        # outside its pattern the pusher may do nothing
        self.assertError(self.pusher_reg.start_upload("other/v2"), 403, "DENIED")
        self.assertError(self.pusher_reg.get_manifest("other/v2", "v1"), 403, "DENIED")
        # no credentials at all: the challenge
        resp = self.reg.get_manifest(repo, "v1")
        self.assertError(resp, 401, "UNAUTHORIZED")
        self.assertEqual(resp.header("WWW-Authenticate"),
                         'Basic realm="%s/",service="ecr.amazonaws.com"' % self.server.base_url)

    def test_ping_requires_credentials(self):
        resp = self.reg.ping()
        self.assertError(resp, 401, "UNAUTHORIZED")
        self.assertIn("Basic realm=", resp.header("WWW-Authenticate"))
        self.assertStatus(self.reader_reg.ping(), 200)
        self.assertError(e.AuthRegistry(self.server.base_url,
                                        e.basic(self.reader[0], "wrong-secret-value")).ping(),
                         401, "UNAUTHORIZED")
        self.assertError(e.AuthRegistry(self.server.base_url,
                                        {"Authorization": "Bearer abc"}).ping(),
                         401, "UNAUTHORIZED")

    def test_describe_repositories_and_catalog_are_filtered(self):
        for name in ("team/fa", "team/fb", "zone/fc"):
            self.ecr.create_repository(repositoryName=name)
        reader = c.ecr_client(self.server, *self.reader)
        names = [r["repositoryName"] for page in
                 reader.get_paginator("describe_repositories").paginate(
                     PaginationConfig={"PageSize": 1})
                 for r in page["repositories"]]
        self.assertIn("team/fa", names)
        self.assertIn("team/fb", names)
        self.assertTrue(all(n.startswith("team/") for n in names), names)
        self.assertClientError("AccessDeniedException", reader.describe_repositories,
                               repositoryNames=["zone/fc"])
        catalog = self.reader_reg.catalog(n=1000).json()["repositories"]
        self.assertIn("team/fa", catalog)
        self.assertNotIn("zone/fc", catalog)
        self.assertIn("zone/fc", self.admin_reg.catalog(n=1000).json()["repositories"])
        # pages of one still walk through every visible name
        seen, last = [], None
        for _ in range(100):
            params = {"n": 1}
            if last:
                params["last"] = last
            resp = self.reader_reg.catalog(**params)
            page = resp.json()["repositories"]
            seen += page
            if not resp.header("Link"):
                break
            last = page[-1]
        self.assertEqual(sorted(set(seen)), sorted(set(catalog)))

    def test_hidden_repository_between_visible_ones_in_pages_of_one(self):
        # A repository the caller may not see sorts between two it may: with pages of one,
        # the page after the first visible one is refilled past the hidden one, so every
        # page holds a repository until the visible ones run out, on both APIs.
        for name in ("list-a/one", "list-b/hidden", "list-c/two"):
            self.ecr.create_repository(repositoryName=name)
        key = e.keys_create(self.server, "lister", "pull:list-a/*", "pull:list-c/*")
        self.secrets.append(key[1])
        pages = [[r["repositoryName"] for r in page["repositories"]] for page in
                 c.ecr_client(self.server, *key).get_paginator("describe_repositories").paginate(
                     PaginationConfig={"PageSize": 1})]
        self.assertEqual(pages[:2], [["list-a/one"], ["list-c/two"]])
        self.assertEqual(sum(pages, []), ["list-a/one", "list-c/two"])
        reg = e.AuthRegistry(self.server.base_url, e.basic(*key))
        pages, last = [], None
        for _ in range(100):
            resp = self.assertStatus(reg.catalog(**({"n": 1, "last": last} if last else {"n": 1})),
                                     200)
            pages.append(resp.json()["repositories"])
            if not resp.header("Link"):
                break
            last = pages[-1][-1]
        self.assertEqual(pages[:2], [["list-a/one"], ["list-c/two"]])
        self.assertEqual(sum(pages, []), ["list-a/one", "list-c/two"])

    def test_mount_needs_pull_on_the_source(self):
        img = self.push(self.admin_reg, "secret/mount-src")
        layer = img.layer_digests[0]
        # the pusher may not pull from secret/*: no mount, a normal session instead
        resp = self.pusher_reg.start_upload("team/mount-dst", mount=layer,
                                            **{"from": "secret/mount-src"})
        self.assertStatus(resp, 202)
        resp = self.pusher_reg.start_upload("team/mount-dst", mount=layer)
        self.assertStatus(resp, 202)
        self.assertError(self.pusher_reg.head_blob("team/mount-dst", layer), 404)
        # from a repository it may pull from, the mount works
        img2 = self.push(self.pusher_reg, "shared/mount-src")
        resp = self.pusher_reg.start_upload("team/mount-dst", mount=img2.layer_digests[0])
        self.assertStatus(resp, 201)

    # -- repository policies ---------------------------------------------------------------------

    def test_repository_policy_operations(self):
        repo = "team/pol-ops"
        self.ecr.create_repository(repositoryName=repo)
        self.assertClientError("RepositoryPolicyNotFoundException", self.ecr.get_repository_policy,
                               repositoryName=repo)
        text = policy({"Sid": "pull", "Effect": "Allow", "Principal": {"AWS": user_arn("x")},
                       "Action": PULL_ACTIONS})
        out = self.ecr.set_repository_policy(repositoryName=repo, policyText=text)
        self.assertEqual((out["registryId"], out["repositoryName"], out["policyText"]),
                         (ACCOUNT, repo, text))
        self.assertEqual(self.ecr.get_repository_policy(repositoryName=repo)["policyText"], text)
        self.assertEqual(self.ecr.delete_repository_policy(repositoryName=repo)["policyText"],
                         text)
        self.assertClientError("RepositoryPolicyNotFoundException",
                               self.ecr.delete_repository_policy, repositoryName=repo)
        for bad in ("{}", "not json", policy({"Effect": "Allow", "Action": "ecr:*"}),
                    policy({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject"}),
                    policy({"Effect": "Allow", "Principal": "*", "Action": "ecr:*",
                            "Condition": {"Bool": {"aws:SecureTransport": "true"}}})):
            msg = self.assertClientError("InvalidParameterException",
                                         self.ecr.set_repository_policy, repositoryName=repo,
                                         policyText=bad)
            self.assertIn("Invalid parameter at 'PolicyText' failed to satisfy constraint: "
                          "'Invalid repository policy provided'", msg)
        self.assertClientError("RepositoryNotFoundException", self.ecr.set_repository_policy,
                               repositoryName="team/pol-none", policyText=text)
        # the pusher lacks ecr:SetRepositoryPolicy
        pusher = c.ecr_client(self.server, *self.pusher)
        self.assertClientError("AccessDeniedException", pusher.set_repository_policy,
                               repositoryName=repo, policyText=text)

    def test_repository_policy_allows_and_denies(self):
        other = "zone/pol-allow"
        self.push(self.admin_reg, other)
        # the reader's identity does not cover zone/*
        self.assertError(self.reader_reg.get_manifest(other, "v1"), 403, "DENIED")
        self.ecr.set_repository_policy(repositoryName=other, policyText=policy(
            {"Effect": "Allow", "Principal": {"AWS": user_arn("reader")}, "Action": PULL_ACTIONS}))
        self.assertStatus(self.reader_reg.get_manifest(other, "v1"), 200)
        self.assertError(self.pusher_reg.get_manifest(other, "v1"), 403, "DENIED")
        # an explicit Deny in the repository policy beats the identity's Allow
        mine = "team/pol-deny"
        self.push(self.admin_reg, mine)
        self.assertStatus(self.reader_reg.get_manifest(mine, "v1"), 200)
        self.ecr.set_repository_policy(repositoryName=mine, policyText=policy(
            {"Effect": "Deny", "Principal": {"AWS": user_arn("reader")},
             "Action": "ecr:BatchGetImage"}))
        resp = self.reader_reg.get_manifest(mine, "v1")
        self.assertError(resp, 403, "DENIED")
        self.assertIn("ecr:BatchGetImage", resp.json()["errors"][0]["message"])
        # the same on the JSON API
        reader = c.ecr_client(self.server, *self.reader)
        self.assertEqual(len(reader.describe_repositories(repositoryNames=[mine])
                             ["repositories"]), 1)
        self.ecr.set_repository_policy(repositoryName=mine, policyText=policy(
            {"Effect": "Deny", "Principal": {"AWS": user_arn("reader")},
             "Action": ["ecr:BatchGetImage", "ecr:DescribeRepositories"]}))
        self.assertClientError("AccessDeniedException", reader.describe_repositories,
                               repositoryNames=[mine])
        self.assertNotIn(mine, [r["repositoryName"] for r in
                                reader.describe_repositories(maxResults=1000)["repositories"]])
        self.ecr.delete_repository_policy(repositoryName=mine)
        self.assertStatus(self.reader_reg.get_manifest(mine, "v1"), 200)

    def test_anonymous_pull_of_a_public_repository(self):
        public = "team/public"
        img = self.push(self.admin_reg, public)
        self.assertError(self.reg.get_manifest(public, "v1"), 401, "UNAUTHORIZED")
        self.ecr.set_repository_policy(repositoryName=public, policyText=policy(
            {"Sid": "public", "Effect": "Allow", "Principal": "*", "Action": PULL_ACTIONS}))
        resp = self.assertStatus(self.reg.get_manifest(public, "v1"), 200)
        self.assertEqual(resp.body, img.manifest)
        for digest, data in img.blobs.items():
            self.assertEqual(self.assertStatus(self.reg.get_blob(public, digest), 200).body, data)
        # pulls only: pushing, deleting and other repositories still need credentials
        self.assertError(self.reg.start_upload(public), 401, "UNAUTHORIZED")
        self.assertError(self.reg.delete(self.reg.manifest_path(public, img.digest)), 401)
        self.assertError(self.reg.tags(public), 401, "UNAUTHORIZED")
        self.assertError(self.reg.get_manifest("team/not-public", "v1"), 401, "UNAUTHORIZED")
        # skopeo, with no credentials at all
        out_dir = os.path.join(self.server.tmp, "public-pull")
        c.Skopeo(os.path.join(self.server.tmp, "public-skopeo")).run(
            "copy", "--src-tls-verify=false",
            "docker://127.0.0.1:%d/%s:v1" % (self.server.port, public), "oci:%s:v1" % out_dir)
        self.assertEqual(h.read_oci_layout_blob(out_dir, img.layer_digests[0]),
                         img.blobs[img.layer_digests[0]])

    # -- tokens ----------------------------------------------------------------------------------

    def test_get_authorization_token(self):
        before = time.time()
        data = self.ecr.get_authorization_token()["authorizationData"]
        self.assertEqual(len(data), 1)
        token = data[0]["authorizationToken"]
        self.assertEqual(base64.b64encode(base64.b64decode(token)).decode(), token)  # padded
        user, password = base64.b64decode(token).decode().split(":")
        self.assertEqual(user, "AWS")
        self.assertRegex(password, r"^\S+$")
        expires = data[0]["expiresAt"].timestamp()
        self.assertAlmostEqual(expires - before, 43200, delta=5)
        self.assertEqual(data[0]["proxyEndpoint"], self.server.base_url)
        # the raw authorizationToken is a Basic credential as is
        reg = e.AuthRegistry(self.server.base_url, {"Authorization": "Basic " + token})
        self.assertStatus(reg.ping(), 200)
        # a forged or truncated token is refused
        for bad in (password[:-2], password + "A", "AAAA"):
            self.assertError(e.AuthRegistry(self.server.base_url, e.basic("AWS", bad)).ping(),
                             401, "UNAUTHORIZED")

    def test_login_password_into_skopeo_then_push_and_pull(self):
        skopeo = c.Skopeo(os.path.join(self.server.tmp, "login-skopeo"))
        env = skopeo.env(c.aws_env(*self.admin))
        host = "127.0.0.1:%d" % self.server.port
        pipeline = ("set -o pipefail; %s ecr get-login-password --endpoint-url %s | "
                    "%s login --username AWS --password-stdin %s --tls-verify=false"
                    % (c.AWS_BIN, self.server.base_url, c.SKOPEO_BIN, host))
        proc = subprocess.run(["/bin/bash", "-c", pipeline], capture_output=True, env=env,
                              timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with open(skopeo.auth_file) as f:
            self.assertIn(host, json.load(f)["auths"])
        img = h.build_image(layer_count=2, layer_size=2048)
        layout = os.path.join(self.server.tmp, "login-src")
        h.write_oci_layout(layout, {"v1": img})
        skopeo.run("copy", "--dest-tls-verify=false", "oci:%s:v1" % layout,
                   "docker://%s/team/login:v1" % host)
        out_dir = os.path.join(self.server.tmp, "login-dst")
        skopeo.run("copy", "--src-tls-verify=false", "docker://%s/team/login:v1" % host,
                   "oci:%s:v1" % out_dir)
        for digest in img.layer_digests:
            self.assertEqual(h.read_oci_layout_blob(out_dir, digest), img.blobs[digest])
        # the image is visible to the JSON API as well
        repos = self.ecr.describe_repositories(repositoryNames=["team/login"])["repositories"]
        self.assertEqual(len(repos), 1)

    def test_basic_key_and_secret_push_and_pull(self):
        repo = "team/basic-key"
        img = self.push(self.pusher_reg, repo)
        resp = self.assertStatus(self.pusher_reg.get_manifest(repo, "v1"), 200)
        self.assertEqual(resp.body, img.manifest)

    def test_download_url_fetched_with_plain_http(self):
        repo = "team/download"
        img = self.push(self.admin_reg, repo)
        layer = img.layer_digests[0]
        reader = c.ecr_client(self.server, *self.reader)
        out = reader.get_download_url_for_layer(repositoryName=repo, layerDigest=layer)
        self.assertEqual(out["layerDigest"], layer)
        url = out["downloadUrl"]
        self.assertTrue(url.startswith(self.server.base_url + "/v2/team/download/blobs/"), url)
        with urllib.request.urlopen(url, timeout=30) as resp:
            self.assertEqual(resp.read(), img.blobs[layer])
        # the token is bound to this blob and cannot be altered
        for bad in (url + "x", url.replace(layer, img.config_digest)):
            with self.assertRaises(urllib.error.HTTPError) as cm:
                urllib.request.urlopen(bad, timeout=30)
            self.assertEqual(cm.exception.code, 401)
        self.assertClientError("LayersNotFoundException", reader.get_download_url_for_layer,
                               repositoryName=repo, layerDigest=h.digest_of(b"absent"))
        # a blob pushed but in no image is inaccessible
        orphan = self.admin_reg.ensure_blob(repo, b"orphan layer " + os.urandom(8))
        self.assertClientError("LayerInaccessibleException", reader.get_download_url_for_layer,
                               repositoryName=repo, layerDigest=orphan)
        self.assertClientError("InvalidParameterException", reader.get_download_url_for_layer,
                               repositoryName=repo, layerDigest="sha256:nothex")
        self.assertClientError("AccessDeniedException",
                               c.ecr_client(self.server, *self.reader).get_download_url_for_layer,
                               repositoryName="zone/download", layerDigest=layer)

    # -- last: the log ---------------------------------------------------------------------------

    def test_zz_secrets_and_tokens_absent_from_the_log(self):
        password = e.login_password(self.ecr)
        self.assertStatus(e.AuthRegistry(self.server.base_url,
                                         e.basic("AWS", password)).ping(), 200)
        log = self.server.log_text()
        self.assertIn("event=access", log)
        for secret in self.secrets + [password]:
            self.assertNotIn(secret, log)
        self.assertNotIn("token=", log)
        self.assertNotIn("Basic ", log)
        self.assertNotIn("AWS4-HMAC-SHA256 Credential", log)


class ExpiryTest(QuietMixin, h.ServerTestCase):
    """A login token works until its expiresAt and is refused from then on. The token lives
    TTL seconds; a busy machine may stall longer than that between the token and the first
    ping, so that ping must answer 200 only when its answer arrived before expiresAt (the
    server then checked it before expiry; else a fresh token is tried), and the second ping
    is sent once expiresAt has passed: both halves are checked against the token's own
    clock (the server's, the same machine's), with no margin to guess."""

    TTL = 2
    server_config = {"auth": {"token_ttl_seconds": TTL}}

    def test_expired_token_is_denied(self):
        akid, secret = e.keys_create(self.server, "admin")
        ecr = c.ecr_client(self.server, akid, secret)
        for attempt in range(10):
            data = ecr.get_authorization_token()["authorizationData"][0]
            expires_at = data["expiresAt"].timestamp()
            self.assertLessEqual(expires_at - time.time(), self.TTL)
            password = base64.b64decode(data["authorizationToken"]).decode().split(":")[1]
            reg = e.AuthRegistry(self.server.base_url, e.basic("AWS", password))
            resp = reg.ping()
            if time.time() < expires_at:
                break
            # answered after the expiry (a stall somewhere): either answer would be right
        else:
            self.fail("no ping could be sent within the token's %d s in 10 tries" % self.TTL)
        self.assertStatus(resp, 200)
        # the server counts whole seconds: from expiresAt on, the token is expired
        h.wait_until(lambda: time.time() >= expires_at + 0.05, self.TTL + 30,
                     what="the token's expiry")
        resp = reg.ping()
        self.assertError(resp, 403, "DENIED")
        self.assertEqual(resp.json()["errors"][0]["message"],
                         "Your authorization token has expired. Reauthenticate and try again.")


class KeysLifecycleTest(QuietMixin, unittest.TestCase):
    """Auth switches on with the first key and keys work without a restart."""

    def test_first_key_turns_auth_on(self):
        server = h.Server()
        self.addCleanup(server.cleanup)
        server.start()
        reg = server.registry()
        self.assertEqual(reg.ping().status, 200)
        status, doc, _ = e.ecr_call(reg, "GetAuthorizationToken", {})
        self.assertEqual(status, 200, doc)  # anonymous mode: unsigned calls work
        anonymous_token = doc["authorizationData"][0]["authorizationToken"]
        one = e.keys_create(server, "one")
        two = e.keys_create(server, "two", "pull")
        self.assertEqual(reg.ping().status, 401)
        # a token issued while nobody was verified names no key
        self.assertEqual(e.AuthRegistry(server.base_url, {
            "Authorization": "Basic " + anonymous_token}).ping().status, 401)
        status, doc, _ = e.ecr_call(reg, "DescribeRepositories", {})
        self.assertEqual(doc["__type"], "MissingAuthenticationTokenException")
        c.ecr_client(server, *one).create_repository(repositoryName="app")
        e.keys_delete(server, one[0])
        self.assertEqual(e.AuthRegistry(server.base_url, e.basic(*one)).ping().status, 401)
        self.assertEqual(e.AuthRegistry(server.base_url, e.basic(*two)).ping().status, 200)
        server.stop()


class ConfigKeysTest(QuietMixin, h.ServerTestCase):
    """Keys from the config file; a non-loopback address is accepted with them; tokens
    survive a restart."""

    ADMIN = ("AKIDCONFIGADMIN00001", "config-admin-secret-0123456789abcdefghij")
    READER = ("AKIDCONFIGREADER0001", "config-reader-secret-0123456789abcdefghi")
    server_config = {"auth": {"keys": [
        {"name": "cfg-admin", "access_key_id": ADMIN[0], "secret_access_key": ADMIN[1]},
        {"name": "cfg-reader", "access_key_id": READER[0], "secret_access_key": READER[1],
         "permissions": {"Version": "2012-10-17", "Statement": [
             {"Effect": "Allow", "Action": ["ecr:Describe*", "ecr:GetAuthorizationToken"],
              "Resource": "*"}]}},
    ]}}

    def test_config_keys_work_and_are_managed_in_the_file(self):
        admin = c.ecr_client(self.server, *self.ADMIN)
        admin.create_repository(repositoryName="cfg/app")
        reader = c.ecr_client(self.server, *self.READER)
        self.assertEqual([r["repositoryName"] for r in
                          reader.describe_repositories()["repositories"]], ["cfg/app"])
        with self.assertRaises(ClientError) as cm:
            reader.create_repository(repositoryName="cfg/other")
        self.assertEqual(e.error_code(cm.exception), "AccessDeniedException")
        rc, out, err = h.run_berth(["keys", "list"], server=self.server, split=True)
        self.assertEqual(rc, 0, err)
        self.assertIn(self.ADMIN[0], out)
        self.assertIn("config", out)
        self.assertNotIn(self.ADMIN[1], out + err)
        rc, out, err = h.run_berth(["keys", "delete", self.ADMIN[0]], server=self.server,
                                   split=True)
        self.assertEqual(rc, 1)
        self.assertIn("config file", err)

    def test_token_survives_a_restart(self):
        password = e.login_password(c.ecr_client(self.server, *self.ADMIN))
        reg = e.AuthRegistry(self.server.base_url, e.basic("AWS", password))
        self.assertEqual(reg.ping().status, 200)
        self.server.stop()
        self.server.start(reuse_port=True)
        reg = e.AuthRegistry(self.server.base_url, e.basic("AWS", password))
        self.assertEqual(reg.ping().status, 200)

    def test_bad_config_keys_are_refused_at_start(self):
        bad_configs = [
            {"auth": {"keys": [{"name": "x", "access_key_id": "short", "secret_access_key":
                                "s" * 40}]}},
            {"auth": {"keys": [{"name": "x", "access_key_id": "AKIDDUPLICATE0000001",
                                "secret_access_key": "s" * 40, "colour": "red"}]}},
            {"auth": {"keys": [{"name": "x", "access_key_id": "AKIDDUPLICATE0000001",
                                "secret_access_key": "s" * 40, "permissions": ["fly"]}]}},
        ]
        for config in bad_configs:
            server = h.Server(config=config)
            self.addCleanup(server.cleanup)
            path = os.path.join(server.tmp, "config.json")
            with open(path, "w") as f:
                json.dump(config, f)
            rc, out = h.run_berth(["serve", "--listen", "127.0.0.1:%d" % h.free_port(),
                                   "--root", server.root, "--config", path], timeout=10)
            with self.subTest(config=config):
                self.assertEqual(rc, 2, out)
                self.assertIn("auth.keys", out)
                self.assertNotIn("s" * 40, out)

    def test_a_principal_in_the_file_and_the_database_is_refused_at_start(self):
        # `berth keys create` without --config cannot see the file's principals: the
        # database got an admin key for cfg-reader, and the server started with the one ARN
        # under two identity policies (the reader's and admin), whichever key came
        self.server.stop()
        rc, out, err = h.run_berth(["keys", "create", "cfg-reader", "--root",
                                    self.server.root], split=True)
        self.assertEqual(rc, 0, err)
        akid = out.splitlines()[0].split("=", 1)[1]
        rc, out = h.run_berth(["serve", "--listen", "127.0.0.1:%d" % h.free_port(),
                               "--root", self.server.root, "--config",
                               self.server.config_file()], timeout=20)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("principal 'cfg-reader' is in the config file (auth.keys) and has "
                      "access keys in the database", out)
        rc, out = h.run_berth(["keys", "delete", akid], server=self.server)
        self.assertEqual(rc, 0, out)
        self.server.start(reuse_port=True)
        reader = c.ecr_client(self.server, *self.READER)
        with self.assertRaises(ClientError) as cm:
            reader.create_repository(repositoryName="cfg/denied")
        self.assertEqual(e.error_code(cm.exception), "AccessDeniedException")


@h.berth_only("berth's safe default")
class SafeDefaultWithKeysTest(QuietMixin, unittest.TestCase):
    def test_non_loopback_with_config_keys(self):
        server = h.Server(config={"auth": {"keys": [
            {"name": "a", "access_key_id": "AKIDNONLOOPBACK00001",
             "secret_access_key": "n" * 40}]}}, listen_host="0.0.0.0")
        self.addCleanup(server.cleanup)
        server.start()
        self.assertEqual(server.registry().ping().status, 401)
        server.stop()

    def test_non_loopback_with_database_keys_stays_locked(self):
        server = h.Server(listen_host="0.0.0.0")
        self.addCleanup(server.cleanup)
        akid, secret = e.keys_create(server, "ops")
        server.start()
        self.assertEqual(server.registry().ping().status, 401)
        # deleting the last key does not open a non-loopback server to anonymous use
        e.keys_delete(server, akid)
        self.assertEqual(server.registry().ping().status, 401)
        server.stop()

    def test_required_without_keys(self):
        server = h.Server(config={"auth": {"required": True}})
        self.addCleanup(server.cleanup)
        server.start()
        self.assertEqual(server.registry().ping().status, 401)
        status, doc, _ = e.signed_call(server, "DescribeRepositories", {},
                                       "AKIANOSUCHKEY0000000", "z" * 40)
        self.assertEqual(doc["__type"], "UnrecognizedClientException")
        server.stop()


class OpenModeHostTest(QuietMixin, h.ServerTestCase):
    """Until a key exists a loopback berth lets anyone in. A web page whose own name its
    DNS rebinds to 127.0.0.1 is "anyone" too, to a browser: before, such a page created
    repositories and wrote a registry policy granting ecr:* to everyone, which stayed after
    the first key was made (an anonymous push backdoor). The open mode now serves only
    requests addressed to an IP address, a one-label name (localhost), *.localhost or
    public_url's host."""

    EVIL = "rebind.attacker.example"

    def host(self, name):
        return "%s:%d" % (name, self.server.port)

    def test_foreign_hosts_are_refused_until_a_key_exists(self):
        evil = {"Host": self.host(self.EVIL),
                "Origin": "http://" + self.host(self.EVIL)}
        resp = self.reg.request("GET", "/v2/_catalog", headers=evil)
        self.assertEqual(resp.status, 403, resp.describe())
        self.assertEqual(resp.json()["errors"][0]["code"], "DENIED")
        self.assertIn("DNS rebinding", resp.json()["errors"][0]["message"])
        ecr = dict(evil, **{"Content-Type": "application/x-amz-json-1.1",
                            "X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.CreateRepository"})
        resp = self.reg.request("POST", "/", headers=ecr, body=b'{"repositoryName":"rebound"}')
        self.assertEqual(resp.status, 400, resp.describe())
        self.assertEqual(resp.json()["__type"], "AccessDeniedException")
        resp = self.reg.request("GET", "/ui/api/repositories", headers=evil)
        self.assertEqual(resp.status, 403, resp.describe())
        # nothing was created; local names are served as before
        for name in ("127.0.0.1", "localhost", "LOCALHOST", "box", "app.localhost", "[::1]"):
            with self.subTest(host=name):
                resp = self.reg.request("GET", "/v2/_catalog",
                                        headers={"Host": self.host(name)})
                self.assertEqual(resp.status, 200, resp.describe())
                self.assertEqual(resp.json()["repositories"], [])
        self.assertEqual(self.reg.request("GET", "/v2/", headers={"Host": "10.1.2.3"}).status,
                         200)
        self.assertIn("reason=open_mode_host", self.server.log_text())


class OpenModePublicUrlTest(QuietMixin, h.ServerTestCase):
    server_config = {"public_url": "http://registry.example.org:5000"}

    def test_the_public_url_host_is_served(self):
        ok = self.reg.request("GET", "/v2/", headers={"Host": "Registry.Example.Org:5000"})
        self.assertEqual(ok.status, 200, ok.describe())
        bad = self.reg.request("GET", "/v2/", headers={"Host": "registry.example.org.evil.test"})
        self.assertEqual(bad.status, 403, bad.describe())


class SignerTest(unittest.TestCase):
    """The test signer reproduces the reference's verified SigV4 vector."""

    def test_reference_vector(self):
        body = (b'{"repositoryName": "foo/bar", "imageScanningConfiguration": '
                b'{"scanOnPush": true}}')
        when = datetime.datetime(2026, 11, 26, 9, 50, 37, tzinfo=datetime.timezone.utc)
        headers = e.sigv4_headers("http://127.0.0.1:18765/", body, "AKIDEXAMPLE",
                                  "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "CreateRepository",
                                  when=when, region="eu-west-1")
        self.assertTrue(headers["Authorization"].endswith(
            "Signature=a2e3f5ac0596b389be343a7df8aa0d8e735f27c0884e8835062cce23e1a055c0"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
