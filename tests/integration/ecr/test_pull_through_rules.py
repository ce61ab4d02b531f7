# berth-python: modern
"""ECR pull-through cache rules (Create/Describe/Update/Delete/ValidatePullThroughCacheRule)
against the real berth with the machine image's boto3 and AWS CLI v1: ECR's members,
validation and errors, and credentialArn naming a secret of `berth secrets`, which keeps
it sealed (AES-256-GCM) under a key file created 0600 and never logs it. The caching
itself is tests/integration/pullthrough/."""

import json
import unittest
import os
import sqlite3
import stat

import berth_harness as h
import ecr_helpers as e
import ptc_helpers as p

PREFIX_RE = ("must satisfy regular expression '^([a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*"
             "(\\/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*\\/?|ROOT)$'")
PASSWORD = "s3cret-upstream-password-7f3a"


class PullThroughRuleTest(e.ModernEcrTestCase):
    def setUp(self):
        self.addCleanup(self.drop_rules)

    def drop_rules(self):
        for r in self.ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"]:
            self.ecr.delete_pull_through_cache_rule(ecrRepositoryPrefix=r["ecrRepositoryPrefix"])

    def put_secret(self, name, user="puller"):
        rc, out, err = p.berth_secrets(self.server, "put", name, "--username", user,
                                       password=PASSWORD)
        self.assertEqual(rc, 0, err)
        return out.strip()

    def test_create_describe_update_delete(self):
        arn = self.put_secret("dmz")
        self.assertEqual(arn, p.secret_arn("dmz"))
        out = self.ecr.create_pull_through_cache_rule(
            ecrRepositoryPrefix="dmz", upstreamRegistryUrl="registry.dmz.example:5000",
            credentialArn=arn, upstreamRepositoryPrefix="mirror")
        out.pop("ResponseMetadata")
        created = out.pop("createdAt")
        self.assertEqual(out, {"ecrRepositoryPrefix": "dmz",
                               "upstreamRegistryUrl": "registry.dmz.example:5000",
                               "registryId": e.REGISTRY_ID, "credentialArn": arn,
                               "upstreamRepositoryPrefix": "mirror"})
        # through the CLI v1 (an http:// URL would be fetched by the CLI as a parameter
        # file: --cli-input-json passes it as it is)
        cli = self.aws("create-pull-through-cache-rule", "--cli-input-json", json.dumps(
            {"ecrRepositoryPrefix": "hub/", "upstreamRegistryUrl": "http://127.0.0.1:1",
             "upstreamRegistry": "docker-hub"}))
        self.assertEqual((cli["ecrRepositoryPrefix"], cli["upstreamRegistryUrl"],
                          cli["upstreamRegistry"]), ("hub/", "http://127.0.0.1:1", "docker-hub"))
        self.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="ROOT",
                                                upstreamRegistryUrl="https://upstream.example")
        rules = self.ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"]
        self.assertEqual([r["ecrRepositoryPrefix"] for r in rules], ["ROOT", "dmz", "hub/"])
        dmz = rules[1]
        self.assertEqual(dmz["createdAt"], created)
        self.assertEqual(dmz["updatedAt"], created)
        self.assertEqual(dmz["credentialArn"], arn)
        # by prefix, and in pages (the CLI follows nextToken)
        out = self.ecr.describe_pull_through_cache_rules(ecrRepositoryPrefixes=["hub/"])
        self.assertEqual([r["ecrRepositoryPrefix"] for r in out["pullThroughCacheRules"]],
                         ["hub/"])
        page = self.ecr.describe_pull_through_cache_rules(maxResults=2)
        self.assertEqual(len(page["pullThroughCacheRules"]), 2)
        page2 = self.ecr.describe_pull_through_cache_rules(maxResults=2,
                                                           nextToken=page["nextToken"])
        self.assertEqual([r["ecrRepositoryPrefix"] for r in page2["pullThroughCacheRules"]],
                         ["hub/"])
        self.assertNotIn("nextToken", page2)
        cli = self.aws("describe-pull-through-cache-rules", "--page-size", "1")
        self.assertEqual([r["ecrRepositoryPrefix"] for r in cli["pullThroughCacheRules"]],
                         ["ROOT", "dmz", "hub/"])
        # update: a new credential (which must exist)
        arn2 = self.put_secret("dmz-2")
        out = self.ecr.update_pull_through_cache_rule(ecrRepositoryPrefix="dmz",
                                                      credentialArn=arn2)
        self.assertEqual((out["ecrRepositoryPrefix"], out["credentialArn"],
                          out["upstreamRepositoryPrefix"], out["registryId"]),
                         ("dmz", arn2, "mirror", e.REGISTRY_ID))
        self.assertGreaterEqual(out["updatedAt"], created)
        # delete answers with the rule
        out = self.aws("delete-pull-through-cache-rule", "--ecr-repository-prefix", "dmz")
        self.assertEqual((out["ecrRepositoryPrefix"], out["upstreamRegistryUrl"],
                          out["credentialArn"]), ("dmz", "registry.dmz.example:5000", arn2))
        self.assertEqual([r["ecrRepositoryPrefix"] for r in self.ecr.
                          describe_pull_through_cache_rules()["pullThroughCacheRules"]],
                         ["ROOT", "hub/"])

    def test_errors(self):
        self.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="team",
                                                upstreamRegistryUrl="upstream.example")
        err = self.assertBotoError("PullThroughCacheRuleAlreadyExistsException",
                                   "create_pull_through_cache_rule", ecrRepositoryPrefix="team",
                                   upstreamRegistryUrl="other.example")
        self.assertIn("'team'", err["Message"])
        for method in ("update_pull_through_cache_rule", "delete_pull_through_cache_rule",
                       "validate_pull_through_cache_rule"):
            err = self.assertBotoError("PullThroughCacheRuleNotFoundException", method,
                                       ecrRepositoryPrefix="missing")
            self.assertEqual(err["Message"], "The pull through cache rule with prefix 'missing' "
                             "does not exist in the registry with id '%s'" % e.REGISTRY_ID)
        self.assertBotoError("PullThroughCacheRuleNotFoundException",
                             "describe_pull_through_cache_rules",
                             ecrRepositoryPrefixes=["team", "missing"])
        for prefix in ("Upper", "a//b", "-ab", "x" * 31):
            with self.subTest(prefix=prefix):
                err = self.assertBotoError("InvalidParameterException",
                                           "create_pull_through_cache_rule",
                                           ecrRepositoryPrefix=prefix,
                                           upstreamRegistryUrl="upstream.example")
                if len(prefix) <= 30:
                    self.assertEqual(err["Message"], "Invalid parameter at "
                                     "'ecrRepositoryPrefix' failed to satisfy constraint: '%s'"
                                     % PREFIX_RE)
        for url in ("ftp://upstream.example", "https://upstream.example/path", "",
                    "http://", "host name"):
            with self.subTest(url=url):
                self.assertBotoError("InvalidParameterException",
                                     "create_pull_through_cache_rule", ecrRepositoryPrefix="u1",
                                     upstreamRegistryUrl=url)
        for arn in ("arn:aws:secretsmanager:us-east-1:000000000000:secret:other/name-padding",
                    "arn:aws:iam::000000000000:role/ecr-pullthroughcache/x-some-padding-text"):
            with self.subTest(arn=arn):
                self.assertBotoError("InvalidParameterException",
                                     "create_pull_through_cache_rule", ecrRepositoryPrefix="u2",
                                     upstreamRegistryUrl="upstream.example", credentialArn=arn)
        # a well-formed ARN of a secret berth does not hold
        err = self.assertBotoError("UnableToAccessSecretException",
                                   "create_pull_through_cache_rule", ecrRepositoryPrefix="u3",
                                   upstreamRegistryUrl="upstream.example",
                                   credentialArn=p.secret_arn("never-stored"))
        self.assertIn(p.secret_arn("never-stored"), err["Message"])
        self.assertBotoError("UnableToAccessSecretException", "update_pull_through_cache_rule",
                             ecrRepositoryPrefix="team", credentialArn=p.secret_arn("nope"))
        # the client's own checks are not the only ones: raw calls
        resp = self.call("CreatePullThroughCacheRule", {"ecrRepositoryPrefix": "u4"})
        self.assertAwsError(resp, 400, "InvalidParameterException")
        resp = self.call("CreatePullThroughCacheRule", {
            "ecrRepositoryPrefix": "u4", "upstreamRegistryUrl": "upstream.example",
            "upstreamRegistry": "somewhere"})
        self.assertAwsError(resp, 400, "InvalidParameterException")
        resp = self.call("DescribePullThroughCacheRules", {"ecrRepositoryPrefixes": []})
        self.assertAwsError(resp, 400, "InvalidParameterException")
        self.assertCliError("PullThroughCacheRuleNotFoundException",
                            "delete-pull-through-cache-rule", "--ecr-repository-prefix", "gone")
        # nothing but the first rule was stored
        self.assertEqual([r["ecrRepositoryPrefix"] for r in self.ecr.
                          describe_pull_through_cache_rules()["pullThroughCacheRules"]], ["team"])

    def test_validate(self):
        up = h.Server()
        self.addCleanup(up.cleanup)
        up.start()
        self.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="live",
                                                upstreamRegistryUrl=up.base_url)
        out = self.aws("validate-pull-through-cache-rule", "--ecr-repository-prefix", "live")
        self.assertEqual((out["ecrRepositoryPrefix"], out["upstreamRegistryUrl"],
                          out["isValid"]), ("live", up.base_url, True))
        self.assertNotIn("failure", out)
        up.stop()
        out = self.ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix="live")
        self.assertFalse(out["isValid"])
        self.assertTrue(out["failure"])
        # a rule whose secret was deleted after it was made
        arn = self.put_secret("short-lived")
        self.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="gone",
                                                upstreamRegistryUrl="upstream.example",
                                                credentialArn=arn)
        rc, _, err = p.berth_secrets(self.server, "delete", arn)
        self.assertEqual(rc, 0, err)
        out = self.ecr.validate_pull_through_cache_rule(ecrRepositoryPrefix="gone")
        self.assertFalse(out["isValid"])
        self.assertIn("does not exist", out["failure"])

    def test_secrets_are_sealed_and_never_shown(self):
        if self.server.replicas > 1:
            self.skipTest("reads the sealed row from berth.db with sqlite3 (the replicas' "
                          "metadata is in PostgreSQL)")
        arn = self.put_secret("sealed", user="robot")
        key_file = os.path.join(self.server.root, "secrets.key")
        self.assertEqual(stat.S_IMODE(os.stat(key_file).st_mode), 0o600)
        rc, out, err = p.berth_secrets(self.server, "list")
        self.assertEqual(rc, 0, err)
        self.assertIn(arn, out)
        self.assertNotIn(PASSWORD, out + err)
        # at rest: neither the password nor the user name in the database
        db = sqlite3.connect(os.path.join(self.server.root, "berth.db"))
        try:
            (sealed,) = db.execute("SELECT sealed FROM upstream_secrets WHERE name = ?",
                                   ("ecr-pullthroughcache/sealed",)).fetchone()
        finally:
            db.close()
        self.assertNotIn(PASSWORD, sealed)
        self.assertNotIn("robot", sealed)
        # the same value sealed twice differs (a fresh nonce)
        self.put_secret("sealed", user="robot")
        db = sqlite3.connect(os.path.join(self.server.root, "berth.db"))
        try:
            (again,) = db.execute("SELECT sealed FROM upstream_secrets WHERE name = ?",
                                  ("ecr-pullthroughcache/sealed",)).fetchone()
        finally:
            db.close()
        self.assertNotEqual(sealed, again)
        self.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix="sealed",
                                                upstreamRegistryUrl="upstream.example",
                                                credentialArn=arn)
        self.assertNotIn(PASSWORD, self.server.log_text())
        # names: bare (prefixed), ARN, and refused ones
        rc, out, _ = p.berth_secrets(self.server, "put", "ecr-pullthroughcache/x",
                                     "--username", "u", password="p")
        self.assertEqual((rc, out.strip()), (0, p.secret_arn("x")))
        for bad in ("ecr-pullthroughcache/", "has space", "arn:aws:iam::1:role/x"):
            rc, _, err = p.berth_secrets(self.server, "put", bad, "--username", "u",
                                         password="p")
            self.assertEqual(rc, 2, bad)
        rc, _, err = p.berth_secrets(self.server, "put", "nopass", "--username", "u",
                                     password="")
        self.assertEqual(rc, 2)
        rc, _, err = p.berth_secrets(self.server, "delete", "never")
        self.assertEqual(rc, 1)
        self.assertIn("no secret", err)


class SecretKeyConfigTest(h.ServerTestCase):
    """pull_through.secrets_key from the config: no key file, and a malformed key or a key
    file others can read stops the server from starting."""

    server_config = {"pull_through": {"secrets_key": "ab" * 32}}

    def test_config_key(self):
        rc, out, err = p.berth_secrets(self.server, "put", "k", "--username", "u",
                                       password="pw")
        self.assertEqual(rc, 0, err)
        self.assertFalse(os.path.exists(os.path.join(self.server.root, "secrets.key")))
        bad = h.Server(config={"pull_through": {"secrets_key": "xyz"}})
        self.addCleanup(bad.cleanup)
        with self.assertRaises(AssertionError):
            bad.start()
        self.assertIn("64 hex digits", bad.log_text())
        loose = h.Server()
        self.addCleanup(loose.cleanup)
        with open(os.path.join(loose.root, "secrets.key"), "w") as f:
            f.write("cd" * 32 + "\n")
        os.chmod(os.path.join(loose.root, "secrets.key"), 0o644)
        with self.assertRaises(AssertionError):
            loose.start()
        self.assertIn("readable by others", loose.log_text())


if __name__ == "__main__":
    unittest.main()
