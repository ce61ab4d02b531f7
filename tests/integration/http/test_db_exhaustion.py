"""The metadata database fails for want of descriptors or memory (issue 10): when SQLite cannot
open a file because the process's descriptor table is full (SQLITE_CANTOPEN or SQLITE_IOERR
with errno EMFILE) or runs out of memory (SQLITE_NOMEM), the request is answered as a
transient server failure: 503 UNAVAILABLE with Retry-After on /v2 and the console, a
ServerException on the ECR API; never 500 UNKNOWN, never a 401/403 for a valid credential.
Once the pressure is gone everything is served again.

The failure is injected (a full descriptor table cannot be aimed at SQLite alone, and a
thread's connection keeps its files open once it has them): with BERTH_TEST_FAULTS=
sqlite_emfile (or sqlite_nomem), every SQLite statement fails as it would then, but only
while the file named by BERTH_TEST_FAULT_FILE exists, so the server starts and the image is
pushed first. Before the fix these answered 500 (the driver mapped every such failure to
BERTH_EDB).
"""

import os
import shutil
import tempfile
import unittest

import clients as c  # noqa: F401  (first: it cleans the environment botocore reads)
import berth_harness as h
import auth_helpers as e

REPO = "team/app"


class DbExhaustionBase:
    FAULT = None
    ERR = None

    def setUp(self):
        self.flags = tempfile.mkdtemp(prefix="berth-dbfault-")
        self.addCleanup(shutil.rmtree, self.flags, True)
        self.flag = os.path.join(self.flags, "exhausted")
        # one request thread: it has its database connection from the set-up, so the
        # injected failure meets statements (a thread without one fails to open it:
        # 503 as well, tested by http/test_fd_exhaustion's real EMFILE)
        self.server = h.Server(config={"http": {"threads": 1}},
                               env={"BERTH_TEST_FAULTS": self.FAULT,
                                    "BERTH_TEST_FAULT_FILE": self.flag,
                                    "BERTH_META_BACKEND": "sqlite"})
        self.addCleanup(self.server.cleanup)
        self.server.start()
        self.image = h.build_image(layer_count=1, layer_size=4096)
        self.server.registry().push_image(REPO, self.image, tag="v1")
        self.admin = e.keys_create(self.server, "admin")
        self.reg = e.AuthRegistry(self.server.base_url, e.basic(*self.admin))
        self.assertEqual(self.reg.get("/v2/" + REPO + "/manifests/v1").status, 200)

    def exhaust(self):
        with open(self.flag, "w"):
            pass
        self.addCleanup(self.relieve)

    def relieve(self):
        if os.path.exists(self.flag):
            os.unlink(self.flag)

    def assert_unavailable(self, resp):
        self.assertEqual(resp.status, 503, resp.describe())
        self.assertEqual(resp.header("Retry-After"), "1", resp.describe())
        self.assertNotIn("WWW-Authenticate", resp.headers)

    def test_v2_answers_503_then_recovers(self):
        self.exhaust()
        layer = self.image.layer_digests[0]
        for method, path in [("GET", "/v2/" + REPO + "/manifests/v1"),
                             ("GET", "/v2/" + REPO + "/blobs/" + layer),
                             ("GET", "/v2/" + REPO + "/tags/list"),
                             ("GET", "/v2/_catalog"),
                             ("POST", "/v2/" + REPO + "/blobs/uploads/"),
                             ("PUT", "/v2/" + REPO + "/manifests/v2")]:
            body = self.image.manifest if method == "PUT" else None
            headers = {"Content-Type": h.MT_OCI_MANIFEST} if method == "PUT" else None
            resp = self.reg.request(method, path, headers=headers, body=body)
            self.assert_unavailable(resp)
            self.assertEqual(resp.error_codes(), ["UNAVAILABLE"], (method, path))
        resp = self.reg.head("/v2/" + REPO + "/blobs/" + layer)
        self.assert_unavailable(resp)
        log = self.server.log_text()
        self.assertIn("err=" + self.ERR, log)
        self.assertNotIn("auth_refused", log)

        self.relieve()
        self.assertEqual(self.reg.get("/v2/" + REPO + "/manifests/v1").status, 200)
        self.assertEqual(self.reg.get_blob(REPO, layer).body, self.image.blobs[layer])
        self.assertEqual(self.reg.get("/v2/" + REPO + "/manifests/v2").status, 404)

    def test_ecr_answers_a_server_exception(self):
        self.exhaust()
        status, doc, _ = e.signed_call(self.server, "DescribeRepositories", {}, *self.admin)
        self.assertEqual(doc["__type"], "ServerException", doc)
        self.assertGreaterEqual(status, 500, doc)
        self.relieve()
        status, doc, _ = e.signed_call(self.server, "DescribeRepositories", {}, *self.admin)
        self.assertEqual(status, 200, doc)

    def test_console_answers_503(self):
        self.exhaust()
        resp = self.reg.get("/ui/api/session")
        self.assert_unavailable(resp)
        resp = self.reg.get("/ui/api/repositories")
        self.assert_unavailable(resp)
        self.assertIn("event=console_auth_failed err=" + self.ERR, self.server.log_text())
        self.relieve()
        self.assertEqual(self.reg.get("/ui/api/session").status, 200)


@h.berth_only("berth's fault injection")
class DbNoDescriptorTest(DbExhaustionBase, unittest.TestCase):
    FAULT = "sqlite_emfile"
    ERR = "ENOFD"


@h.berth_only("berth's fault injection")
class DbNoMemoryTest(DbExhaustionBase, unittest.TestCase):
    FAULT = "sqlite_nomem"
    ERR = "ENOMEM"


if __name__ == "__main__":
    unittest.main()
