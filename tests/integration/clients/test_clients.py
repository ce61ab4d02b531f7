"""The clients the other tests drive (clients.py), against a stand-in HTTP server that
counts requests: boto3 and the aws CLI make exactly one attempt when the server answers 500
(so an intermittent 5xx fails a test instead of being retried away), sign only when given a
key, and ignore the developer's AWS_* environment and ~/.aws files."""

import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

import clients as c
import berth_harness as h

class StandIn:
    """An HTTP server on a free loopback port answering every POST with status and a JSON
    body; it records (X-Amz-Target, Authorization) of each request."""

    def __init__(self):
        self.status = 200
        self.body = {"repositories": []}
        self.requests = []
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stand_in.requests.append((self.headers.get("X-Amz-Target"),
                                          self.headers.get("Authorization")))
                data = json.dumps(stand_in.body).encode()
                self.send_response(stand_in.status)
                if stand_in.status >= 400:
                    self.send_header("x-amzn-ErrorType", stand_in.body["__type"])
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.base_url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def fail_with_500(self):
        self.status = 500
        self.body = {"__type": "ServerException", "message": "intermittent"}

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class ClientsTest(unittest.TestCase):
    def setUp(self):
        self.server = StandIn()
        self.addCleanup(self.server.close)

    def test_boto3_makes_one_attempt_on_500(self):
        self.server.fail_with_500()
        ecr = c.ecr_client(self.server)
        with self.assertRaises(ecr.exceptions.ServerException):
            ecr.describe_repositories()
        self.assertEqual(len(self.server.requests), 1, self.server.requests)

    def test_cli_makes_one_attempt_on_500(self):
        self.server.fail_with_500()
        res = c.aws(self.server, "describe-repositories")
        self.assertNotEqual(res.rc, 0, res)
        self.assertEqual(res.error(), ("ServerException", "intermittent"), res)
        self.assertEqual(len(self.server.requests), 1, self.server.requests)

    def test_unsigned_without_a_key_signed_with_one(self):
        c.ecr_client(self.server).describe_repositories()
        c.ecr_client(self.server, *c.DUMMY_KEY).describe_repositories()
        self.assertEqual(c.aws(self.server, "describe-repositories").rc, 0)
        self.assertEqual(c.aws(self.server, "describe-repositories", key=c.DUMMY_KEY[0],
                               secret=c.DUMMY_KEY[1]).rc, 0)
        target = "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories"
        self.assertEqual([t for t, _ in self.server.requests], [target] * 4)
        auth = [a for _, a in self.server.requests]
        self.assertIsNone(auth[0])
        self.assertIsNone(auth[2])
        for signed in (auth[1], auth[3]):
            self.assertTrue(signed.startswith("AWS4-HMAC-SHA256 Credential=%s/"
                                              % c.DUMMY_KEY[0]), signed)

    def test_developer_environment_is_ignored(self):
        """A developer's AWS_PROFILE naming no profile, a default endpoint, retry settings
        and a ~/.aws/config saying the same break neither client."""
        home = tempfile.mkdtemp(prefix="berth-dev-home-")
        self.addCleanup(shutil.rmtree, home, True)
        os.makedirs(os.path.join(home, ".aws"))
        with open(os.path.join(home, ".aws", "config"), "w") as f:
            f.write("[default]\nregion = nowhere-1\nmax_attempts = 5\n"
                    "endpoint_url = http://127.0.0.1:1\n")
        env = dict(os.environ, HOME=home, AWS_PROFILE="nope", AWS_DEFAULT_REGION="nowhere-1",
                   AWS_MAX_ATTEMPTS="5", AWS_RETRY_MODE="legacy",
                   AWS_ENDPOINT_URL="http://127.0.0.1:1", AWS_ACCESS_KEY_ID="AKIDDEVELOPER",
                   AWS_SECRET_ACCESS_KEY="developer-secret", PYTHONPATH=h.LIB_DIR)
        # a fresh interpreter: the environment is cleaned when clients is imported
        script = ("import sys, clients as c\n"
                  "class S: base_url = sys.argv[1]\n"
                  "c.ecr_client(S()).describe_repositories()\n"
                  "res = c.aws(S(), 'describe-repositories')\n"
                  "assert res.rc == 0, res\n")
        proc = subprocess.run([sys.executable, "-B", "-c", script, self.server.base_url],
                              env=env, capture_output=True, timeout=120, cwd=home)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode(errors="replace"))
        self.assertEqual(len(self.server.requests), 2)
        for _, auth in self.server.requests:
            self.assertIsNone(auth)  # the developer's key was not used


if __name__ == "__main__":
    h.main()
