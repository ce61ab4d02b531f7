# berth-python: modern
"""ECR registry policy (PutRegistryPolicy, GetRegistryPolicy, DeleteRegistryPolicy) against the
real berth with access keys, with the machine image's boto3 and AWS CLI v1: ECR's members and
errors, and the policy evaluated with identity and repository policies (explicit Deny wins)
over both APIs."""

import json
import unittest

import auth_helpers as a
import berth_harness as h
import clients as c
import ecr_helpers as e
import ptc_helpers as p

ACCOUNT = e.REGISTRY_ID
INVALID = ("Invalid parameter at 'PolicyText' failed to satisfy constraint: "
           "'Invalid registry policy provided'")
NOT_FOUND = "Registry policy does not exist in the registry with id '%s'" % ACCOUNT


def user_arn(name):
    return "arn:aws:iam::%s:user/%s" % (ACCOUNT, name)


def repo_arn(pattern):
    return "arn:aws:ecr:%s:%s:repository/%s" % (e.REGION, ACCOUNT, pattern)


def policy(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


class RegistryPolicyTest(e.ModernEcrTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = a.keys_create(cls.server, "admin")
        cls.reader = a.keys_create(cls.server, "reader", "pull:team/*")
        cls.outsider = a.keys_create(cls.server, "outsider", "pull:nothing/*")
        cls.cli_key = cls.admin
        cls.ecr = c.ecr_client(cls.server, *cls.admin)
        cls.outsider_ecr = c.ecr_client(cls.server, *cls.outsider)
        cls.reader_ecr = c.ecr_client(cls.server, *cls.reader)

    def setUp(self):
        self.addCleanup(self.drop_policy)

    def drop_policy(self):
        try:
            self.ecr.delete_registry_policy()
        except self.ecr.exceptions.RegistryPolicyNotFoundException:
            pass

    def assertDenied(self, ecr, method, **params):
        try:
            getattr(ecr, method)(**params)
        except Exception as exc:  # botocore ClientError
            self.assertEqual(a.error_code(exc), "AccessDeniedException", exc)
            return
        self.fail("%s(%r) was allowed" % (method, params))

    def test_operations(self):
        err = self.assertBotoError("RegistryPolicyNotFoundException", "get_registry_policy")
        self.assertEqual(err["Message"], NOT_FOUND)
        self.assertCliError("RegistryPolicyNotFoundException", "delete-registry-policy",
                            message=NOT_FOUND)
        text = policy({"Sid": "replicate", "Effect": "Allow",
                       "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                       "Action": ["ecr:CreateRepository", "ecr:ReplicateImage"],
                       "Resource": repo_arn("*")})
        out = self.aws("put-registry-policy", "--policy-text", text)
        self.assertEqual(out, {"registryId": ACCOUNT, "policyText": text})
        out = self.ecr.get_registry_policy()
        self.assertEqual((out["registryId"], out["policyText"]), (ACCOUNT, text))
        self.assertEqual(self.aws("get-registry-policy"), {"registryId": ACCOUNT,
                                                           "policyText": text})
        # replaced as a whole
        text2 = policy({"Effect": "Allow", "Principal": "*",
                        "Action": "ecr:BatchImportUpstreamImage", "Resource": repo_arn("ecr-public/*")})
        self.ecr.put_registry_policy(policyText=text2)
        self.assertEqual(self.ecr.get_registry_policy()["policyText"], text2)
        out = self.aws("delete-registry-policy")
        self.assertEqual(out, {"registryId": ACCOUNT, "policyText": text2})
        self.assertBotoError("RegistryPolicyNotFoundException", "get_registry_policy")
        self.assertBotoError("RegistryPolicyNotFoundException", "delete_registry_policy")

    def test_policy_survives_a_restart(self):
        text = policy({"Effect": "Allow", "Principal": {"AWS": user_arn("outsider")},
                       "Action": "ecr:CreateRepository", "Resource": repo_arn("kept/*")})
        self.ecr.put_registry_policy(policyText=text)
        self.restart_server(self.admin)
        cls = type(self)
        cls.outsider_ecr = c.ecr_client(self.server, *self.outsider)
        cls.reader_ecr = c.ecr_client(self.server, *self.reader)
        self.assertEqual(self.ecr.get_registry_policy()["policyText"], text)
        self.outsider_ecr.create_repository(repositoryName="kept/one")

    def test_validation(self):
        bad = [
            "not json",
            "",
            # no Principal
            policy({"Effect": "Allow", "Action": "ecr:ReplicateImage", "Resource": "*"}),
            # no Resource
            policy({"Effect": "Allow", "Principal": "*", "Action": "ecr:ReplicateImage"}),
            # an action a registry policy cannot grant
            policy({"Effect": "Allow", "Principal": "*", "Action": "ecr:GetAuthorizationToken",
                    "Resource": "*"}),
            policy({"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                    "Resource": "*"}),
            policy({"Effect": "Allow", "Principal": "*", "Action": "ecr:NoSuchAction",
                    "Resource": "*"}),
            policy({"Effect": "Maybe", "Principal": "*", "Action": "ecr:ReplicateImage",
                    "Resource": "*"}),
        ]
        for text in bad:
            with self.subTest(text=text):
                err = self.assertBotoError("InvalidParameterException", "put_registry_policy",
                                           policyText=text)
                self.assertTrue(err["Message"].startswith(INVALID), err["Message"])
        status, doc, resp = a.signed_call(self.server, "PutRegistryPolicy",
                                          {"policyText": "x" * 10241}, *self.admin)
        self.assertAwsError(resp, 400, "InvalidParameterException",
                            "Invalid parameter at 'policyText' failed to satisfy constraint: "
                            "'Member must have length less than or equal to 10240'")
        status, doc, resp = a.signed_call(self.server, "PutRegistryPolicy", {}, *self.admin)
        self.assertAwsError(resp, 400, "InvalidParameterException")
        self.assertBotoError("RegistryPolicyNotFoundException", "get_registry_policy")

    def test_only_permitted_callers_manage_it(self):
        text = policy({"Effect": "Allow", "Principal": "*", "Action": "ecr:ReplicateImage",
                       "Resource": "*"})
        self.assertDenied(self.reader_ecr, "put_registry_policy", policyText=text)
        self.assertDenied(self.reader_ecr, "get_registry_policy")
        self.assertDenied(self.reader_ecr, "delete_registry_policy")
        # the policy cannot grant its own management
        self.ecr.put_registry_policy(policyText=policy(
            {"Effect": "Allow", "Principal": "*", "Action": "ecr:*", "Resource": "*"}))
        self.assertDenied(self.reader_ecr, "put_registry_policy", policyText=text)

    def test_grants_create_repository(self):
        self.assertDenied(self.outsider_ecr, "create_repository", repositoryName="mirror/a")
        self.ecr.put_registry_policy(policyText=policy(
            {"Sid": "create", "Effect": "Allow", "Principal": {"AWS": user_arn("outsider")},
             "Action": "ecr:CreateRepository", "Resource": repo_arn("mirror/*")}))
        out = self.outsider_ecr.create_repository(repositoryName="mirror/a")
        self.assertEqual(out["repository"]["repositoryName"], "mirror/a")
        # only on the repositories it names, only to the principal it names
        self.assertDenied(self.outsider_ecr, "create_repository", repositoryName="elsewhere/a")
        self.assertDenied(self.reader_ecr, "create_repository", repositoryName="mirror/b")
        # and nothing else on them
        self.assertDenied(self.outsider_ecr, "delete_repository", repositoryName="mirror/a")
        # gone with the policy
        self.ecr.delete_registry_policy()
        self.assertDenied(self.outsider_ecr, "create_repository", repositoryName="mirror/c")

    def test_grants_repository_actions_registry_wide(self):
        admin_reg = a.AuthRegistry(self.server.base_url, a.basic(*self.admin))
        outsider_reg = a.AuthRegistry(self.server.base_url, a.basic(*self.outsider))
        img = h.build_image(layer_count=1)
        self.ecr.create_repository(repositoryName="shared/app")
        self.ecr.create_repository(repositoryName="private/app")
        for repo in ("shared/app", "private/app"):
            for data in img.blobs.values():
                admin_reg.ensure_blob(repo, data)
            self.assertStatus(admin_reg.put_manifest(repo, "v1", img.manifest, img.media_type),
                              201)
        self.assertStatus(outsider_reg.get_manifest("shared/app", "v1"), 403)
        self.assertDenied(self.outsider_ecr, "list_images", repositoryName="shared/app")
        # REGISTRY_POLICY_SCOPE V2: repository actions registry-wide
        self.assertEqual(self.ecr.get_account_setting(name="REGISTRY_POLICY_SCOPE")["value"],
                         "V2")
        self.ecr.put_registry_policy(policyText=policy(
            {"Effect": "Allow", "Principal": {"AWS": user_arn("outsider")},
             "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:ListImages"],
             "Resource": repo_arn("shared/*")}))
        resp = outsider_reg.get_manifest("shared/app", "v1")
        self.assertStatus(resp, 200)
        self.assertEqual(resp.body, img.manifest)
        layer = img.layer_digests[0]
        self.assertEqual(outsider_reg.get_blob("shared/app", layer).body, img.blobs[layer])
        ids = self.outsider_ecr.list_images(repositoryName="shared/app")["imageIds"]
        self.assertEqual([i.get("imageTag") for i in ids], ["v1"])
        self.assertStatus(outsider_reg.get_manifest("private/app", "v1"), 403)
        self.assertDenied(self.outsider_ecr, "batch_delete_image", repositoryName="shared/app",
                          imageIds=[{"imageTag": "v1"}])

    def test_explicit_deny_wins(self):
        repo = "team/guarded"
        self.ecr.create_repository(repositoryName=repo)
        img = h.build_image(layer_count=1)
        admin_reg = a.AuthRegistry(self.server.base_url, a.basic(*self.admin))
        for data in img.blobs.values():
            admin_reg.ensure_blob(repo, data)
        self.assertStatus(admin_reg.put_manifest(repo, "v1", img.manifest, img.media_type), 201)
        # a registry Deny beats the admin key's identity Allow and a repository policy's Allow
        self.ecr.set_repository_policy(repositoryName=repo, policyText=policy(
            {"Effect": "Allow", "Principal": {"AWS": user_arn("admin")},
             "Action": "ecr:BatchDeleteImage"}))
        self.ecr.put_registry_policy(policyText=policy(
            {"Effect": "Deny", "Principal": {"AWS": user_arn("admin")},
             "Action": ["ecr:BatchDeleteImage", "ecr:PutImage"], "Resource": repo_arn("team/*")}))
        self.assertDenied(self.ecr, "batch_delete_image", repositoryName=repo,
                          imageIds=[{"imageTag": "v1"}])
        self.assertStatus(admin_reg.put_manifest(repo, "v2", img.manifest, img.media_type), 403)
        # what it does not deny still works
        self.assertEqual(len(self.ecr.list_images(repositoryName=repo)["imageIds"]), 1)
        # a repository policy's Deny beats a registry Allow
        self.ecr.put_registry_policy(policyText=policy(
            {"Effect": "Allow", "Principal": {"AWS": user_arn("outsider")},
             "Action": "ecr:ListImages", "Resource": repo_arn("team/*")}))
        self.outsider_ecr.list_images(repositoryName=repo)
        self.ecr.set_repository_policy(repositoryName=repo, policyText=policy(
            {"Effect": "Deny", "Principal": {"AWS": user_arn("outsider")},
             "Action": "ecr:ListImages"}))
        self.assertDenied(self.outsider_ecr, "list_images", repositoryName=repo)
        self.ecr.delete_registry_policy()
        out = self.ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
        self.assertEqual(out["failures"], [])



class RegistryPolicyReplicationTest(e.ModernEcrTestCase):
    """ecr:ReplicateImage granted by the registry policy alone: a peer's replicated push
    (X-Berth-Replication-Source) to a missing repository creates it (auto-create off, as
    ECR), only where the policy says and only while it says so; without the grant the push
    is an ordinary one, which cannot create a repository."""
    server_config = {"storage": {"auto_create_repositories": False}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = a.keys_create(cls.server, "admin")
        cls.peer = a.keys_create(cls.server, "peer", "push:rep/*", "push:other/*")
        cls.ecr = c.ecr_client(cls.server, *cls.admin)

    def replicated_upload(self, repo):
        headers = dict(a.basic(*self.peer))
        headers["X-Berth-Replication-Source"] = "us-west-2/%s" % ACCOUNT
        return self.reg.request("POST", "/v2/%s/blobs/uploads/" % repo, headers=headers)

    def repositories(self):
        return {r["repositoryName"] for r in self.ecr.describe_repositories()["repositories"]}

    def test_grants_replicate_image(self):
        self.assertError(self.replicated_upload("rep/a"), 404, "NAME_UNKNOWN")
        self.ecr.put_registry_policy(policyText=policy(
            {"Sid": "replicate", "Effect": "Allow", "Principal": {"AWS": user_arn("peer")},
             "Action": "ecr:ReplicateImage", "Resource": repo_arn("rep/*")}))
        self.assertStatus(self.replicated_upload("rep/a"), 202)
        self.assertIn("rep/a", self.repositories())
        # only on the repositories it names
        self.assertError(self.replicated_upload("other/a"), 404, "NAME_UNKNOWN")
        # and a Deny beside it wins
        self.ecr.put_registry_policy(policyText=policy(
            {"Effect": "Allow", "Principal": {"AWS": user_arn("peer")},
             "Action": "ecr:ReplicateImage", "Resource": repo_arn("*")},
            {"Effect": "Deny", "Principal": {"AWS": user_arn("peer")},
             "Action": "ecr:ReplicateImage", "Resource": repo_arn("other/*")}))
        self.assertError(self.replicated_upload("other/b"), 404, "NAME_UNKNOWN")
        self.assertStatus(self.replicated_upload("rep/b"), 202)
        self.ecr.delete_registry_policy()
        self.assertError(self.replicated_upload("rep/c"), 404, "NAME_UNKNOWN")
        self.assertEqual(self.repositories(), {"rep/a", "rep/b"})


class RegistryPolicyImportTest(e.ModernEcrTestCase):
    """ecr:BatchImportUpstreamImage, the pull-through cache's permission: a pull that makes
    the cache go to the upstream (a manifest or blob it lacks) needs it, as in ECR, and is
    403 DENIED with AWS's text without it, the upstream never asked; the registry policy
    grants it (and denies it); berth's pull and push permission sets include it, so a pull
    key fills the cache; what is cached is served without it."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.up = h.Server()
        cls.addClassCleanup(cls.up.cleanup)
        cls.up.start()
        cls.admin = a.keys_create(cls.server, "admin")
        cls.reader = a.keys_create(cls.server, "reader", "ecr:BatchGetImage=hub/*",
                                   "ecr:GetDownloadUrlForLayer=hub/*")
        cls.puller = a.keys_create(cls.server, "puller", "pull:hub/*")
        cls.ecr = c.ecr_client(cls.server, *cls.admin)
        cls.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="hub",
                                               upstreamRegistryUrl=cls.up.base_url)

    def registry(self, key):
        return a.AuthRegistry(self.server.base_url, a.basic(*key))

    def upstream_image(self, name):
        img = h.build_image(layer_count=1)
        self.assertStatus(self.up.registry().push_image(name, img, tag="v1"), 201)
        return img

    def assertImportDenied(self, resp, who, repo):
        self.assertError(resp, 403, "DENIED")
        self.assertIn("User: %s is not authorized to perform: ecr:BatchImportUpstreamImage on "
                      "resource: %s" % (user_arn(who), repo_arn(repo)),
                      resp.json()["errors"][0]["message"])

    def test_import_needs_the_permission(self):
        a_img, b_img, c_img = (self.upstream_image("lib/" + n) for n in "abc")
        reader, puller = self.registry(self.reader), self.registry(self.puller)
        # reader may pull but not import: refused, the upstream not asked, no repository
        self.assertImportDenied(reader.get_manifest("hub/lib/a", "v1"), "reader", "hub/lib/a")
        self.assertEqual(p.upstream_gets(self.up, "/lib/a/"), [])
        self.assertNotIn("hub/lib/a", [r["repositoryName"] for r in
                                       self.ecr.describe_repositories()["repositories"]])
        # the registry policy grants it
        self.ecr.put_registry_policy(policyText=policy(
            {"Effect": "Allow", "Principal": {"AWS": user_arn("reader")},
             "Action": "ecr:BatchImportUpstreamImage", "Resource": repo_arn("hub/*")}))
        resp = reader.get_manifest("hub/lib/a", "v1")
        self.assertStatus(resp, 200)
        self.assertEqual(resp.body, a_img.manifest)
        layer = a_img.layer_digests[0]
        self.assertEqual(reader.get_blob("hub/lib/a", layer).body, a_img.blobs[layer])
        # without it again, what is cached is still served; what is not, is refused
        self.ecr.delete_registry_policy()
        self.assertEqual(reader.get_manifest("hub/lib/a", "v1").body, a_img.manifest)
        self.assertStatus(puller.get_manifest("hub/lib/b", "v1"), 200)  # the pull set has it
        layer = b_img.layer_digests[0]
        self.assertImportDenied(reader.get_blob("hub/lib/b", layer), "reader", "hub/lib/b")
        self.assertEqual(p.upstream_gets(self.up, "/lib/b/blobs/"), [])
        self.assertEqual(puller.get_blob("hub/lib/b", layer).body, b_img.blobs[layer])
        # a Deny in the registry policy stops even a pull key's import
        self.ecr.put_registry_policy(policyText=policy(
            {"Effect": "Deny", "Principal": {"AWS": user_arn("puller")},
             "Action": "ecr:BatchImportUpstreamImage", "Resource": repo_arn("hub/lib/c")}))
        self.assertImportDenied(puller.get_manifest("hub/lib/c", "v1"), "puller", "hub/lib/c")
        self.assertEqual(p.upstream_gets(self.up, "/lib/c/"), [])
        self.assertStatus(puller.get_manifest("hub/lib/b", "v1"), 200)
        self.ecr.delete_registry_policy()
        self.assertEqual(puller.get_manifest("hub/lib/c", "v1").body, c_img.manifest)

if __name__ == "__main__":
    unittest.main()
