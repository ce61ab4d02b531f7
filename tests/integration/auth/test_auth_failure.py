"""An authentication or authorization check that cannot run (the key or policy lookup fails:
a database or file the lookup needs cannot be opened under EMFILE, the database is gone) is
the server's failure: the answer is a 5xx the client retries, never a 401/403 that tells it
good credentials are bad, and never a list that silently leaves out what the caller may see.

The failures are injected with BERTH_TEST_FAULTS: "auth_lookup" makes every key lookup fail
as EMFILE would (ENOFD), "auth_policy" every policy read of a per-repository decision.
Before the fix: /metrics (metrics.require_auth) answered 401 for a valid key, /v2/_catalog
and DescribeRepositories answered 200 with the repositories left out, and a replica's push
(X-Berth-Replication-Source) went on as an ordinary push.
"""

import json
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
        resp = self.reg.get("/ui/api/session", headers=e.basic(*self.admin))
        self.assertGreaterEqual(resp.status, 500, resp.describe())
        self.assertNotIn("auth_refused", self.server.log_text())


@h.berth_only("berth's fault injection")
class PolicyReadFailureTest(unittest.TestCase):
    def setUp(self):
        self.server = faulty_server("auth_policy")
        self.addCleanup(self.server.cleanup)
        self.server.start()
        self.server.registry().push_image(REPO, h.build_image(layer_count=1), tag="v1")
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

    def test_replica_push_is_not_taken_for_an_ordinary_one(self):
        body = json.dumps({"schemaVersion": 2}).encode()
        resp = self.reg.request("PUT", "/v2/" + REPO + "/manifests/v2",
                                headers={"Content-Type": h.MT_OCI_MANIFEST,
                                         "X-Berth-Replication-Source": "eu-west-1/000000000000"},
                                body=body)
        self.assertEqual(resp.status, 503, resp.describe())
        self.assertEqual(resp.error_codes(), ["UNAVAILABLE"])


if __name__ == "__main__":
    unittest.main()
