"""Out of file descriptors (issue 10, found by the pull storm): when berth cannot open a file
because the process has no descriptor left (EMFILE), a request is answered as a server
failure (503 UNAVAILABLE with Retry-After), never as "unknown" (404) or as an authentication
failure (401), and the log names the cause (err=ENOFD), not a missing file. Once descriptors
are free again everything is served.

How: the server's soft RLIMIT_NOFILE is lowered while it runs (prlimit on its pid; the hard
limit is left alone, so it can be put back), a few keep-alive connections are opened first,
then many idle connections take every descriptor left (the server logs accept_failed for the
rest). Requests on the keep-alive connections then need a descriptor to open a blob or a
manifest file and get none.
"""

import http.client
import json
import os
import resource
import socket
import time
import unittest

import clients as c  # noqa: F401  (first: it cleans the environment botocore reads)
import berth_harness as h
import auth_helpers as e

REPO = "team/app"
KEEP = 4       # keep-alive connections opened before the descriptors run out
SPARE = 16     # descriptors left to the server under the lowered limit
HOLD = 64      # idle connections that take them (more than SPARE)


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class FdExhaustionTest(h.ServerTestCase):
    def setUp(self):
        super().setUp()
        self.image = h.build_image(layer_count=1, layer_size=65536)
        self.reg.push_image(REPO, self.image, tag="v1")
        akid, secret = e.keys_create(self.server, "admin")
        self.creds = e.basic(akid, secret)
        self.paths = ["/v2/" + REPO + "/manifests/v1",
                      "/v2/" + REPO + "/blobs/" + self.image.layer_digests[0],
                      "/v2/" + REPO + "/blobs/" + self.image.config_digest]

    def get(self, conn, path, headers):
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Retry-After"), resp.read()

    def test_no_descriptor_is_a_server_error(self):
        pid = self.server.proc.pid
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        conns = []
        for _ in range(KEEP):
            conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
            self.addCleanup(conn.close)
            self.assertEqual(self.get(conn, "/v2/", self.creds)[0], 200)
            conns.append(conn)
        limit = open_fds(pid) + SPARE
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, hard))
        restored = False
        held = []
        try:
            for _ in range(HOLD):
                held.append(socket.create_connection(("127.0.0.1", self.server.port)))
            # wait (on the server's own count) until it has used every descriptor
            deadline = time.monotonic() + 30
            while open_fds(pid) < limit and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertEqual(open_fds(pid), limit)

            answers = []
            for conn in conns:
                # authenticated: still 200 (nothing to open), never a 401
                status, _, body = self.get(conn, "/v2/", self.creds)
                self.assertIn(status, (200, 500, 503), body)
                for path in self.paths:
                    status, retry, body = self.get(conn, path, self.creds)
                    answers.append((path, status))
                    self.assertNotIn(status, (401, 403, 404), (path, body))
                    if status != 200:
                        self.assertEqual(status, 503, (path, body))
                        self.assertEqual(retry, "1")
                        self.assertEqual(json.loads(body)["errors"][0]["code"], "UNAVAILABLE")
            self.assertIn(503, [s for _, s in answers], answers)
        finally:
            for s in held:
                s.close()
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
            restored = True
        self.assertTrue(restored)

        log = self.server.log_text()
        self.assertIn("err=ENOFD", log)
        self.assertNotIn("blob_file_missing", log)
        self.assertNotIn("manifest_file_missing", log)

        # descriptors free again: everything is served, on old and new connections
        for conn in conns[:1]:
            for path in self.paths:
                self.assertEqual(self.get(conn, path, self.creds)[0], 200, path)
        fresh = e.AuthRegistry(self.server.base_url, self.creds)
        for path in self.paths:
            h.expect_status(fresh.get(path), 200)
        self.assertEqual(fresh.get_blob(REPO, self.image.layer_digests[0]).body,
                         self.image.blobs[self.image.layer_digests[0]])


if __name__ == "__main__":
    unittest.main()
