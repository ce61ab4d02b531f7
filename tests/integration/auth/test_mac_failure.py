"""A token or signature whose MAC the server cannot compute (OpenSSL failing: out of
memory, a provider error) is the server's failure, not the caller's: the answer is a 5xx
the client retries, never a 401/403 that tells it good credentials are bad.

The failure is injected with BERTH_TEST_FAULTS=hmac (every HMAC in the server fails as
OpenSSL's would). Before the fix the MAC was left uncomputed and compared anyway: a valid
login token got 401, a valid SigV4 signature 403 InvalidSignatureException.
"""

import base64
import hashlib
import hmac
import os
import sqlite3
import struct
import time
import unittest

import clients as c  # first: it cleans the environment botocore reads
import berth_harness as h
import auth_helpers as e


@h.berth_only("berth's fault injection")
class MacFailureTest(unittest.TestCase):
    def setUp(self):
        self.server = h.Server(env={"BERTH_TEST_FAULTS": "hmac"})
        self.addCleanup(self.server.cleanup)
        self.server.start()
        self.admin = e.keys_create(self.server, "admin")

    def signing_key(self):
        db = sqlite3.connect(os.path.join(self.server.root, "berth.db"))
        try:
            (key,) = db.execute("SELECT value FROM server_secrets WHERE name = ?",
                                ("authtoken-key",)).fetchone()
        finally:
            db.close()
        return bytes(key)

    def login_token(self, principal):
        """A valid login token (purpose 1), signed with the server's own key as berth would
        have issued it before the failure."""
        now = int(time.time())
        p = principal.encode()
        rec = struct.pack(">BBQQ", 1, 1, now - 5, now + 600) + bytes([len(p)]) + p
        rec += struct.pack(">H", 0) + bytes([0])
        mac = hmac.new(self.signing_key(), b"berth-authtoken-v1\0" + rec, hashlib.sha256)
        return base64.urlsafe_b64encode(rec + mac.digest()).decode().rstrip("=")

    def test_valid_login_token_gets_a_server_error(self):
        self.assertIn("event=test_fault_injected fault=hmac", self.server.log_text())
        token = self.login_token(self.admin[0])
        resp = self.server.registry().get("/v2/", headers=e.basic("AWS", token))
        self.assertEqual(resp.status, 503, resp.describe())
        self.assertEqual(resp.error_codes(), ["UNAVAILABLE"])
        self.assertEqual(resp.header("Retry-After"), "1")
        self.assertNotIn("WWW-Authenticate", resp.headers)
        h.wait_until(lambda: "event=token_check_failed err=ENOMEM" in self.server.log_text(), 30,
                     what="the token_check_failed log line")
        self.assertNotIn("reason=bad_token", self.server.log_text())
        # a secret (no MAC involved) still works
        self.assertEqual(self.server.registry().get(
            "/v2/", headers=e.basic(*self.admin)).status, 200)

    def test_valid_signature_gets_server_exception(self):
        status, doc, _ = e.signed_call(self.server, "DescribeRepositories", {}, *self.admin)
        self.assertEqual(status, 500, doc)
        self.assertEqual(doc["__type"], "ServerException")


if __name__ == "__main__":
    unittest.main()
