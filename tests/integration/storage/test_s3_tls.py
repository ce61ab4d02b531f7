"""berth's blobs in S3 behind HTTPS (storage.s3.tls_ca_file): OpenStack Swift with s3api
(swift_fixture.py) reached through Debian's haproxy terminating TLS with a certificate of
a private CA (tls_helpers.Pki: a server certificate issued by an intermediate, served as a
chain). With storage.s3.tls_ca_file naming the CA, a push and a pull go through and the
object is in the bucket; without it the system trust store does not know the CA: berth
does not start, or starts and answers /readyz 503 (blob storage unreachable), and no push
is published."""

import os
import shutil
import subprocess
import tempfile
import unittest

import berth_harness as h
import tls_helpers as t
from swift_fixture import SwiftServer

HAPROXY_BIN = "/usr/sbin/haproxy"
PREFIX = "itest-s3-tls/"


class TlsFront:
    """haproxy on a free loopback port: TLS with the given PEM (certificate chain and key),
    passed on to one plain-HTTP backend (host:port)."""

    def __init__(self, pem, backend):
        self.pem, self.backend = pem, backend
        self.dir = tempfile.mkdtemp(prefix="berth-tls-front-")
        self.proc = None
        self.port = None

    def start(self):
        for _ in range(3):
            self.port = h.free_port()
            cfg = os.path.join(self.dir, "haproxy.cfg")
            with open(cfg, "w") as f:
                f.write("global\n    maxconn 256\ndefaults\n    mode http\n"
                        "    timeout connect 5s\n    timeout client 120s\n"
                        "    timeout server 120s\n"
                        "frontend s3\n    bind 127.0.0.1:%d ssl crt %s\n"
                        "    default_backend swift\nbackend swift\n    server s %s\n"
                        % (self.port, self.pem, self.backend))
            log = open(os.path.join(self.dir, "haproxy.log"), "ab")
            self.proc = subprocess.Popen([HAPROXY_BIN, "-db", "-f", cfg], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            log.close()
            try:
                h.wait_until(lambda: self.proc.poll() is not None or self._listening(), 30,
                             what="haproxy to listen")
            except AssertionError:
                self.stop()
                raise
            if self.proc.poll() is None:
                return self
        raise AssertionError("haproxy did not start: %s" % self.log())

    def _listening(self):
        import socket
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def log(self):
        try:
            with open(os.path.join(self.dir, "haproxy.log"), errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                self.proc.wait(timeout=20)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


@unittest.skipUnless(h.IS_BERTH, "berth's own backend")
class S3TlsTest(h.LogsOnFailure, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(HAPROXY_BIN, os.X_OK):
            raise AssertionError("%s is missing; scripts/setup-deps.sh installs haproxy"
                                 % HAPROXY_BIN)
        cls.s3 = SwiftServer().start()
        cls.addClassCleanup(cls.s3.stop)
        cls.pki = t.Pki()
        cls.addClassCleanup(cls.pki.cleanup)
        pem = cls.pki.path("front.pem")
        with open(pem, "w") as out:
            for name in ("chain.pem", "server.key"):
                with open(cls.pki.path(name)) as f:
                    out.write(f.read())
        cls.front = TlsFront(pem, "127.0.0.1:%d" % cls.s3.ports["proxy"]).start()
        cls.addClassCleanup(cls.front.stop)
        cls.endpoint = "https://localhost:%d" % cls.front.port

    def server(self, **extra):
        env = self.s3.berth_env(PREFIX, endpoint=self.endpoint)
        env.update(extra)
        srv = h.Server(env=env, config={"gc": {"enabled": False}})
        self.addCleanup(srv.cleanup)
        return srv

    def test_private_ca_trusted_with_tls_ca_file(self):
        srv = self.server(BERTH_STORAGE_S3_TLS_CA_FILE=self.pki.path("root.pem"))
        self.server_for_logs = srv
        srv.start()
        reg = srv.registry()
        data = h.random_bytes(200000)
        h.expect_status(reg.push_blob("tls/app", data), 201)
        got = reg.get_blob("tls/app", h.digest_of(data))
        self.assertEqual((got.status, got.body), (200, data))
        self.assertEqual(reg.request("GET", "/readyz").status, 200)
        keys = [o["Key"] for o in self.s3.client().list_objects_v2(
            Bucket=self.s3.bucket, Prefix=PREFIX + "blobs/").get("Contents", [])]
        self.assertTrue(any(h.digest_hex(h.digest_of(data)) in k for k in keys), keys)

    def test_private_ca_refused_without_it(self):
        srv = self.server()
        try:
            srv.start()
        except AssertionError as exc:  # refused at start: the bucket cannot be reached
            self.assertRegex(str(exc), r"(?i)SSL peer certificate|certificate verify|curl=60")
            return
        reg = srv.registry()
        self.assertEqual(reg.request("GET", "/readyz").status, 503)
        data = h.random_bytes(100000)
        self.assertGreaterEqual(reg.push_blob("tls/app", data).status, 500)
        self.assertEqual(reg.head_blob("tls/app", h.digest_of(data)).status, 404)


if __name__ == "__main__":
    h.main()
