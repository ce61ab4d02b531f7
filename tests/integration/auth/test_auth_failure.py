"""An authentication or authorization check that cannot run (the key or policy lookup fails:
a database or file the lookup needs cannot be opened under EMFILE, the database is gone) is
the server's failure: the answer is a 5xx the client retries, never a 401/403 that tells it
good credentials are bad, and never a list that silently leaves out what the caller may see.

The failures are injected with BERTH_TEST_FAULTS: "auth_lookup" makes every key lookup fail
as EMFILE would (ENOFD), "auth_policy" every policy read of a per-repository decision.
Before the fix: /metrics (metrics.require_auth) answered 401 for a valid key, /v2/_catalog
and DescribeRepositories answered 200 with the repositories left out, and a replica's push
(X-Berth-Replication-Source) went on as an ordinary push; the console's session, sign-in,
permissions and listings answered 500 (now 503 with Retry-After, as /v2); a cross-repository
mount whose source policy could not be read fell back to an ordinary upload (202: the client
then pushes a blob it need not push, and the failure is hidden; now 503).
"""

import json
import re
import unittest

import clients as c  # first: it cleans the environment botocore reads
import berth_harness as h
import auth_helpers as e

REPO = "team/app"


def faulty_server(fault, config=None):
    return h.Server(env={"BERTH_TEST_FAULTS": fault}, config=config)


@h.berth_only("berth's fault injection")
class KeyLookupFailureTest(unittest.TestCase):
    def setUp(self):
        self.server = faulty_server("auth_lookup", {"metrics": {"require_auth": True}})
        self.addCleanup(self.server.cleanup)
        self.server.start()
        self.admin = e.keys_create(self.server, "admin")
        self.reg = self.server.registry()

    def test_metrics_with_a_valid_key_get_503_not_401(self):
        self.assertIn("event=test_faults_injected faults=auth_lookup", self.server.log_text())
        resp = self.reg.get("/metrics", headers=e.basic(*self.admin))
        self.assertEqual(resp.status, 503, resp.describe())
        self.assertEqual(resp.header("Retry-After"), "1")
        self.assertNotIn("WWW-Authenticate", resp.headers)
        h.wait_until(lambda: "event=auth_lookup_failed err=ENOFD path=/metrics"
                     in self.server.log_text(), 30, what="the auth_lookup_failed log line")
        self.assertNotIn("reason=unknown_key", self.server.log_text())

    def test_every_api_answers_a_server_error(self):
        resp = self.reg.get("/v2/", headers=e.basic(*self.admin))
        self.assertEqual(resp.status, 503, resp.describe())
        self.assertEqual(resp.error_codes(), ["UNAVAILABLE"])
        self.assertNotIn("WWW-Authenticate", resp.headers)
        status, doc, _ = e.signed_call(self.server, "DescribeRepositories", {}, *self.admin)
        self.assertEqual(status, 500, doc)
        self.assertEqual(doc["__type"], "ServerException")
        self.assertNotIn("auth_refused", self.server.log_text())

    def assert_console_unavailable(self, resp):
        self.assertEqual(resp.status, 503, resp.describe())
        self.assertEqual(resp.header("Retry-After"), "1", resp.describe())
        self.assertEqual(resp.json()["error"], "ServerError", resp.describe())

    def test_console_answers_503_not_500_or_401(self):
        # signing in with a valid key: not a 401 (bad credentials), not a 500
        resp = self.reg.request("POST", "/ui/api/session",
                                headers={"Content-Type": "application/json"},
                                body=json.dumps({"accessKeyId": self.admin[0],
                                                 "secretAccessKey": self.admin[1]}).encode())
        self.assert_console_unavailable(resp)
        self.assertIsNone(resp.header("Set-Cookie"))
        for path in ("/ui/api/session", "/ui/api/permissions?repository=" + REPO,
                     "/ui/api/repositories", "/ui/api/registry"):
            self.assert_console_unavailable(self.reg.get(path))
        h.wait_until(lambda: "event=console_auth_failed err=ENOFD" in self.server.log_text(),
                     30, what="the console_auth_failed log line")
        self.assertNotIn("auth_refused", self.server.log_text())


@h.berth_only("berth's fault injection")
class PolicyReadFailureTest(unittest.TestCase):
    def setUp(self):
        self.server = faulty_server("auth_policy")
        self.addCleanup(self.server.cleanup)
        self.server.start()
        self.image = h.build_image(layer_count=1)
        self.server.registry().push_image(REPO, self.image, tag="v1")
        self.admin = e.keys_create(self.server, "admin")
        self.reg = e.AuthRegistry(self.server.base_url, e.basic(*self.admin))

    def test_catalog_is_a_server_error_not_a_shorter_list(self):
        # what needs no per-repository policy read still works
        self.assertEqual(self.reg.get("/v2/" + REPO + "/manifests/v1").status, 200)
        resp = self.reg.get("/v2/_catalog")
        self.assertEqual(resp.status, 503, resp.describe())
        self.assertEqual(resp.error_codes(), ["UNAVAILABLE"])
        self.assertEqual(resp.header("Retry-After"), "1")
        h.wait_until(lambda: "event=auth_policy_failed err=ENOFD" in self.server.log_text(), 30,
                     what="the auth_policy_failed log line")

    def test_describe_repositories_is_a_server_exception(self):
        status, doc, _ = e.signed_call(self.server, "DescribeRepositories", {}, *self.admin)
        self.assertEqual(status, 500, doc)
        self.assertEqual(doc["__type"], "ServerException")
        self.assertNotIn("repositories", doc)

    def test_mount_whose_source_policy_cannot_be_read_is_503(self):
        layer = self.image.layer_digests[0]
        for query in ("?mount=%s&from=%s" % (layer, REPO), "?mount=%s" % layer):
            resp = self.reg.request("POST", "/v2/other/app/blobs/uploads/" + query)
            self.assertEqual(resp.status, 503, (query, resp.describe()))
            self.assertEqual(resp.error_codes(), ["UNAVAILABLE"])
            self.assertEqual(resp.header("Retry-After"), "1")
            self.assertIsNone(resp.header("Location"))
        h.wait_until(lambda: "event=mount_source_check_failed err=ENOFD"
                     in self.server.log_text(), 30, what="the mount_source_check_failed line")

    def test_replica_push_is_not_taken_for_an_ordinary_one(self):
        body = json.dumps({"schemaVersion": 2}).encode()
        resp = self.reg.request("PUT", "/v2/" + REPO + "/manifests/v2",
                                headers={"Content-Type": h.MT_OCI_MANIFEST,
                                         "X-Berth-Replication-Source": "eu-west-1/000000000000"},
                                body=body)
        self.assertEqual(resp.status, 503, resp.describe())
        self.assertEqual(resp.error_codes(), ["UNAVAILABLE"])


@h.berth_only("berth's fault injection")
class ConsolePolicyReadFailureTest(unittest.TestCase):
    """The console's listings read a repository's own policy (when it has one) to decide
    whether the caller may see it: a read that fails is a 503, not a 500 or a shorter list."""

    def setUp(self):
        self.server = h.Server()
        self.addCleanup(self.server.cleanup)
        self.server.start()
        self.server.registry().push_image(REPO, h.build_image(layer_count=1), tag="v1")
        self.admin = e.keys_create(self.server, "admin")
        policy = {"Version": "2012-10-17",
                  "Statement": [{"Sid": "pull", "Effect": "Allow", "Principal": "*",
                                 "Action": ["ecr:BatchGetImage"]}]}
        status, doc, _ = e.signed_call(self.server, "SetRepositoryPolicy",
                                       {"repositoryName": REPO,
                                        "policyText": json.dumps(policy)}, *self.admin)
        self.assertEqual(status, 200, doc)
        self.server.stop()
        self.server.env["BERTH_TEST_FAULTS"] = "auth_policy"
        self.server.start()
        self.reg = self.server.registry()

    def test_listings_answer_503(self):
        resp = self.reg.request("POST", "/ui/api/session",
                                headers={"Content-Type": "application/json"},
                                body=json.dumps({"accessKeyId": self.admin[0],
                                                 "secretAccessKey": self.admin[1]}).encode())
        self.assertEqual(resp.status, 200, resp.describe())
        cookie = re.match(r"berth_session=[0-9a-f]*", resp.header("Set-Cookie")).group(0)
        headers = {"Cookie": cookie, "X-CSRF-Token": resp.json()["csrfToken"]}
        for path in ("/ui/api/repositories", "/ui/api/registry"):
            resp = self.reg.get(path, headers=headers)
            self.assertEqual(resp.status, 503, (path, resp.describe()))
            self.assertEqual(resp.header("Retry-After"), "1")
            self.assertEqual(resp.json()["error"], "ServerError")
        self.assertIn("event=console_list_failed err=ENOFD", self.server.log_text())
        self.assertIn("event=console_registry_failed err=ENOFD", self.server.log_text())


if __name__ == "__main__":
    unittest.main()
