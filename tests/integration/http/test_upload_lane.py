"""The upload lane (issue 16): a connection whose first request is a blob push goes to a
daemon whose per-connection buffer is http.upload_memory_limit_kib (256 KiB), so its bodies
arrive in pieces of up to about 128 KiB instead of libmicrohttpd's 16 KiB at the default
32 KiB buffer (three syscalls per 16 KiB of a push). Other connections keep 32 KiB: the
buffer is cleared between requests, so every keep-alive connection keeps all of it resident.

What must hold:
- a body on a connection that began with POST .../blobs/uploads/ is read in pieces larger
  than the 32 KiB buffer could give (the access line's body_read_max); the same push on a
  connection that began with GET /v2/ never is;
- the lane's memory is bounded whoever the clients are: 150 connections that each start a
  push and stay open grow the server by the lane's 32 connections x 256 KiB and 32 KiB or
  so for each of the rest, not 150 x 256 KiB.

Runs only in the gcc pass ("berth-suite: no-sanitizer"): under ASan the memory bound means
nothing.
"""
# berth-suite: no-sanitizer

import os
import re
import shutil
import socket
import tempfile
import threading
import unittest

import berth_harness as h

MIB = 1024 * 1024
BODY = 4 * MIB
NORMAL_BUFFER = 32 * 1024  # http.memory_limit_kib: no piece can be larger


def request(sock, method, target, port, body=b""):
    sock.sendall(("%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d\r\n\r\n"
                  % (method, target, port, len(body))).encode() + body)
    status, headers, _ = h.read_raw_response(sock)
    return status, headers


def access_line(server, method, path_part):
    for line in server.log_text().splitlines():
        if "event=access" in line and "method=%s " % method in line and path_part in line:
            return line
    return None


class UploadLaneTest(unittest.TestCase):
    def start(self, env=None):
        server = h.Server(env=env)
        self.addCleanup(server.cleanup)
        server.start()
        return server

    def push_on_one_connection(self, server, repo, first, hold=None):
        """On one keep-alive connection: first (None, or a GET of it), a POST starting an
        upload, a PUT with a BODY-byte body; the PUT's access line. With hold (a file
        held by BERTH_TEST_HOLD_UPLOAD_WRITE), the body's first write waits until the
        client has handed the kernel 256 KiB more of it: bytes waiting on the socket."""
        port = server.port
        s = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2 * MIB)
        if first is not None:
            status, _ = request(s, "GET", first, port)
            self.assertEqual(status, 200)
        status, headers = request(s, "POST", "/v2/%s/blobs/uploads/" % repo, port)
        self.assertEqual(status, 202)
        location = headers["location"]
        if location.startswith("http"):
            location = "/" + location.split("/", 3)[3]
        data = h.random_bytes(BODY)
        target = "%s%sdigest=%s" % (location, "&" if "?" in location else "?",
                                    h.digest_of(data))
        s.sendall(("PUT %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d\r\n\r\n"
                   % (target, port, len(data))).encode())
        sent = [0]
        errors = []

        def send_body():
            try:
                view = memoryview(data)
                while sent[0] < len(data):
                    sent[0] += s.send(view[sent[0]:sent[0] + 65536])
            except OSError as exc:
                errors.append(exc)

        sender = threading.Thread(target=send_body)
        sender.start()
        if hold is not None:
            h.wait_until(lambda: "event=test_hold point=upload_write" in server.log_text(),
                         60, what="the body's first write held")
            h.wait_until(lambda: sent[0] >= 256 * 1024 or errors, 60,
                         what="256 KiB of the body handed to the kernel")
            os.remove(hold)
        sender.join(120)
        self.assertFalse(sender.is_alive())
        self.assertEqual(errors, [])
        status, _, _ = h.read_raw_response(s)
        self.assertEqual(status, 201)
        h.wait_until(lambda: access_line(server, "PUT", repo) is not None, 30,
                     what="the PUT's access line")
        return access_line(server, "PUT", repo)

    def test_a_push_connection_reads_big_pieces(self):
        tmp = tempfile.mkdtemp(prefix="berth-lane-")
        self.addCleanup(shutil.rmtree, tmp, True)
        hold = os.path.join(tmp, "hold")
        server = self.start(env={"BERTH_TEST_HOLD_UPLOAD_WRITE": hold})
        with open(hold, "w"):
            pass
        line = self.push_on_one_connection(server, "itest/lane", None, hold=hold)
        m = re.search(r"bytes_in=(\d+) .*body_reads=(\d+) body_read_max=(\d+)", line)
        self.assertIsNotNone(m, line)
        self.assertEqual(int(m.group(1)), BODY)
        self.assertGreater(int(m.group(3)), NORMAL_BUFFER, line)

        # the same push on a connection that began with something else: 32 KiB pieces
        with open(hold, "w"):
            pass
        line = self.push_on_one_connection(server, "itest/other", "/v2/", hold=hold)
        m = re.search(r"bytes_in=(\d+) .*body_reads=(\d+) body_read_max=(\d+)", line)
        self.assertIsNotNone(m, line)
        self.assertEqual(int(m.group(1)), BODY)
        self.assertLessEqual(int(m.group(3)), NORMAL_BUFFER, line)

    def test_the_lane_memory_is_bounded(self):
        server = self.start()
        port = server.port
        pid = server.proc.pid
        # warm up: the lane's and the others' first connections, the database
        for first in (None, "/v2/"):
            s = socket.create_connection(("127.0.0.1", port), timeout=60)
            if first is not None:
                request(s, "GET", first, port)
            request(s, "POST", "/v2/itest/warm/blobs/uploads/", port)
            s.close()
        before = h.proc_number(pid)
        conns = []
        self.addCleanup(lambda: [c.close() for c in conns])
        for i in range(150):
            s = socket.create_connection(("127.0.0.1", port), timeout=60)
            conns.append(s)
            # a finished request: libmicrohttpd clears the connection's whole buffer for
            # the next one, so all of it is resident from here on
            status, _ = request(s, "POST", "/v2/itest/many%d/blobs/uploads/" % i, port)
            self.assertEqual(status, 202)
        grown = h.proc_number(pid) - before
        # 32 x 256 KiB on the lane (8 MiB) and 118 x (32 KiB + bookkeeping) elsewhere;
        # without the lane's cap 150 x 256 KiB = 37.5 MiB
        self.assertLess(grown, 20 * 1024, "grew %d KiB for 150 connections" % grown)
        self.assertIn("event=access", server.log_text())


if __name__ == "__main__":
    unittest.main()
