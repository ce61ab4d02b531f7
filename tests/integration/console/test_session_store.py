"""Console sessions kept in the metadata (docs/console.md, "Sessions"), on one node: a
session survives a restart of berth (its cookie and CSRF token still work, on the console
API, the ECR API and /v2), the database holds only the SHA-256 of the token, never the
token, a sign-out and a key's deletion delete the rows, expiry still ends a session
after a restart, and a session that cannot be read (the database out of descriptors) is
answered 503 on every API, not signed out, and is there again once the database is. Replicas sharing sessions: cluster/test_console_sessions.py."""

import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
import unittest

import berth_harness as h
import auth_helpers as e

TARGET = "AmazonEC2ContainerRegistry_V20150921."


class Console:
    """A browser's console session: its cookie and CSRF token."""

    def __init__(self, server):
        self.server = server
        self.cookie = self.csrf = None

    def reg(self):
        return self.server.registry()

    def sign_in(self, akid, secret):
        r = self.reg().request("POST", "/ui/api/session",
                               headers={"Content-Type": "application/json"},
                               body=json.dumps({"accessKeyId": akid,
                                                "secretAccessKey": secret}).encode())
        assert r.status == 200, r.describe()
        self.cookie = (r.header("Set-Cookie") or "").split(";")[0]
        assert self.cookie.startswith("berth_session="), self.cookie
        self.csrf = r.json()["csrfToken"]
        return r

    def token(self):
        return self.cookie.split("=", 1)[1]

    def signed_in(self):
        r = self.reg().request("GET", "/ui/api/session", headers={"Cookie": self.cookie})
        assert r.status == 200, r.describe()
        return r.json()["signedIn"]

    def ecr(self, op, body=None):
        r = self.reg().request("POST", "/", body=json.dumps(body or {}).encode(), headers={
            "Cookie": self.cookie, "X-CSRF-Token": self.csrf,
            "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET + op})
        return r.status, r.json() if r.body else {}

    def sign_out(self):
        r = self.reg().request("DELETE", "/ui/api/session",
                               headers={"Cookie": self.cookie, "X-CSRF-Token": self.csrf})
        assert r.status == 200, r.describe()


def rows(server):
    """(token_hash, access_key_id, csrf) of every console session row, read from the file."""
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(server.root, "berth.db"), uri=True,
                         timeout=30)
    try:
        return db.execute("SELECT token_hash, access_key_id, csrf FROM console_sessions "
                          "ORDER BY token_hash").fetchall()
    finally:
        db.close()


class SessionRestartTest(h.ServerTestCase):

    def test_session_survives_a_restart(self):
        akid, secret = e.keys_create(self.server, "session-restart")
        cl = Console(self.server)
        cl.sign_in(akid, secret)
        status, out = cl.ecr("CreateRepository", {"repositoryName": "sessions/before"})
        self.assertEqual(status, 200, out)
        # only the token's hash is stored, with the key and the CSRF token
        token = cl.token()
        stored = rows(self.server)
        self.assertIn((hashlib.sha256(token.encode()).hexdigest(), akid, cl.csrf), stored)
        self.assertNotIn(token, json.dumps(stored))

        self.server.stop()
        self.server.start(reuse_port=True)
        # the same cookie and CSRF token, on every API the console uses
        self.assertTrue(cl.signed_in())
        status, out = cl.ecr("CreateRepository", {"repositoryName": "sessions/after"})
        self.assertEqual(status, 200, out)
        r = cl.reg().request("GET", "/v2/_catalog", headers={"Cookie": cl.cookie})
        self.assertEqual(r.status, 200, r.describe())
        self.assertIn("sessions/after", r.json()["repositories"])

        # a sign-out deletes the row; a restart does not bring the session back
        cl.sign_out()
        self.assertFalse(cl.signed_in())
        self.assertNotIn(akid, [r[1] for r in rows(self.server)])
        self.server.stop()
        self.server.start(reuse_port=True)
        self.assertFalse(cl.signed_in())
        status, out = cl.ecr("DescribeRepositories")
        self.assertEqual(status, 400, out)
        self.assertIn("UnrecognizedClientException", out.get("__type", ""))

    def test_key_deletion_deletes_its_sessions(self):
        akid, secret = e.keys_create(self.server, "session-key-gone")
        other = e.keys_create(self.server, "session-key-kept")
        cl, kept = Console(self.server), Console(self.server)
        cl.sign_in(akid, secret)
        cl2 = Console(self.server)
        cl2.sign_in(akid, secret)
        kept.sign_in(*other)
        self.assertEqual([r[1] for r in rows(self.server)].count(akid), 2)
        e.keys_delete(self.server, akid)
        self.assertNotIn(akid, [r[1] for r in rows(self.server)])
        self.assertFalse(cl.signed_in())
        self.assertFalse(cl2.signed_in())
        self.assertTrue(kept.signed_in())


class SessionExpiryRestartTest(h.ServerTestCase):
    server_config = {"console": {"session_ttl_seconds": 2}}

    def test_expiry_holds_across_a_restart(self):
        akid, secret = e.keys_create(self.server, "session-expiry")
        cl = Console(self.server)
        expires = cl.sign_in(akid, secret).json()["expiresAt"]
        self.server.stop()
        self.server.start(reuse_port=True)
        deadline = time.monotonic() + 60
        while cl.signed_in():
            self.assertLess(time.monotonic(), deadline, "the session never expired")
            time.sleep(0.2)
        self.assertGreaterEqual(time.time(), expires - 1)
        status, out = cl.ecr("DescribeRepositories")
        self.assertEqual(status, 400, out)
        self.assertIn("expired", out["message"])
        # the expired row goes when the next session starts
        Console(self.server).sign_in(akid, secret)
        self.assertEqual(len(rows(self.server)), 1)


class SessionDatabaseFaultTest(h.ServerTestCase):
    """BERTH_TEST_FAULTS=sqlite_emfile: every database call fails as under EMFILE while
    the flag file exists."""

    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="berth-session-fault-")
        cls.addClassCleanup(shutil.rmtree, cls.work, True)
        cls.flag = os.path.join(cls.work, "exhausted")
        cls.server_env = {"BERTH_TEST_FAULTS": "sqlite_emfile",
                          "BERTH_TEST_FAULT_FILE": cls.flag, "BERTH_META_BACKEND": "sqlite"}
        super().setUpClass()

    def test_unreadable_session_is_not_a_sign_out(self):
        akid, secret = e.keys_create(self.server, "session-fault")
        cl = Console(self.server)
        cl.sign_in(akid, secret)
        open(self.flag, "w").close()
        try:
            r = cl.reg().request("GET", "/ui/api/session", headers={"Cookie": cl.cookie})
            self.assertEqual(r.status, 503, r.describe())
            self.assertEqual(r.header("Retry-After"), "1")
            status, out = cl.ecr("DescribeRepositories")
            self.assertGreaterEqual(status, 500, out)
            self.assertNotIn("UnrecognizedClient", out.get("__type", ""))
            r = cl.reg().request("GET", "/v2/_catalog", headers={"Cookie": cl.cookie})
            self.assertEqual(r.status, 503, r.describe())
            r = cl.reg().request("DELETE", "/ui/api/session",
                                 headers={"Cookie": cl.cookie, "X-CSRF-Token": cl.csrf})
            self.assertEqual(r.status, 503, r.describe())
        finally:
            os.unlink(self.flag)
        self.assertTrue(cl.signed_in())
        status, out = cl.ecr("DescribeRepositories")
        self.assertEqual(status, 200, out)


if __name__ == "__main__":
    unittest.main()
