"""Native TLS (tls.cert_file, tls.key_file, tls.client_ca_file), checked with the clients
people point at a registry: curl, skopeo (--cert-dir) and the AWS CLI (--ca-bundle), plus
openssl s_client for the protocol versions. The certificates come from lib/tls_helpers.py:
a root CA, an intermediate that issues the server certificate (served as a chain), an
expired server certificate, client certificates for mutual TLS, and a second, unrelated
CA. Docker, containerd and podman over TLS: clients/test_tls_clients.py."""

import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import unittest

import clients as c  # first: it cleans the environment botocore reads

import berth_harness as h
import tls_helpers as t

OPENSSL = t.OPENSSL
CURL = "/usr/bin/curl"
Pki = t.Pki


class TlsCase(unittest.TestCase):
    tls = None  # extra keys of the "tls" section besides the certificate and key
    cert = "chain.pem"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pki = Pki()
        cls.addClassCleanup(cls.pki.cleanup)
        tls = {"cert_file": cls.pki.path(cls.cert), "key_file": cls.pki.path("server.key")}
        tls.update({k: cls.pki.path(v) for k, v in (cls.tls or {}).items()})
        cls.server = h.Server(config={"tls": tls})
        cls.addClassCleanup(cls.server.cleanup)
        cls.server.start()  # its readiness probe is plain HTTP: the 400 counts as an answer
        cls.url = "https://127.0.0.1:%d" % cls.server.port
        cls.work = tempfile.mkdtemp(prefix="berth-tls-")
        cls.addClassCleanup(shutil.rmtree, cls.work, True)
        cls.skopeo = c.Skopeo(cls.work)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        super().tearDownClass()

    def curl(self, path="/v2/", ca="root", client=None, extra=()):
        cmd = [CURL, "-sS", "--max-time", "30", "-o", "-", "-w", "\n%{http_code}",
               "--cacert", self.pki.path(ca + ".pem")]
        if client:
            cmd += ["--cert", self.pki.path(client + ".pem"),
                    "--key", self.pki.path(client + ".key")]
        proc = subprocess.run(cmd + list(extra) + [self.url + path], capture_output=True,
                              timeout=60, stdin=subprocess.DEVNULL)
        return proc.returncode, proc.stdout.decode(), proc.stderr.decode()

    def assertCurlOk(self, *args, **kwargs):
        rc, out, err = self.curl(*args, **kwargs)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.rsplit("\n", 1)[1], "200", out)
        return out

    def sighup(self, event="event=tls_reloaded"):
        """SIGHUP, then wait for one more event line than before it (earlier reloads of the
        same server already wrote some)."""
        before = self.server.log_text().count(event)
        self.server.proc.send_signal(signal.SIGHUP)
        h.wait_until(lambda: self.server.log_text().count(event) > before, 30,
                     what="the reload (%s)" % event)

    def s_client(self, *args):
        proc = subprocess.run([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % self.server.port,
                               "-CAfile", self.pki.path("root.pem")] + list(args),
                              capture_output=True, timeout=60, input=b"")
        return proc.returncode, proc.stdout.decode(errors="replace") + \
            proc.stderr.decode(errors="replace")

    def skopeo_push(self, repo, cert_dir, check=True):
        layout = tempfile.mkdtemp(prefix="layout-", dir=self.work)
        img = h.build_image(layer_count=2, layer_size=4096)
        h.write_oci_layout(layout, {"v1": img})
        proc = self.skopeo.run("copy", "--preserve-digests", "--dest-no-creds",
                               "--dest-cert-dir", cert_dir, "oci:%s:v1" % layout,
                               "docker://127.0.0.1:%d/%s:v1" % (self.server.port, repo),
                               check=check)
        return img, proc

    def skopeo_inspect(self, repo, cert_dir, check=True):
        return self.skopeo.run("inspect", "--raw", "--no-creds", "--cert-dir", cert_dir,
                               "docker://127.0.0.1:%d/%s:v1" % (self.server.port, repo),
                               check=check)


@h.berth_only("berth's native TLS")
class TlsTest(TlsCase):
    def test_curl_both_apis_and_probes_on_the_tls_port(self):
        self.assertEqual(self.assertCurlOk("/v2/").split("\n")[0], "{}")
        self.assertCurlOk("/healthz")
        out = self.assertCurlOk("/", extra=[
            "-X", "POST", "-H", "Content-Type: application/x-amz-json-1.1",
            "-H", "X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.DescribeRepositories",
            "--data", "{}"])
        self.assertIn('"repositories"', out)

    def test_plain_http_to_the_tls_port_gets_a_clear_400(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        conn.request("GET", "/v2/")
        resp = conn.getresponse()
        body = resp.read().decode()
        self.assertEqual(resp.status, 400)
        self.assertIn("HTTPS", body)
        proc = subprocess.run([CURL, "-sS", "--max-time", "10", "-w", "\n%{http_code}",
                               "http://127.0.0.1:%d/v2/" % self.server.port],
                              capture_output=True, timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(proc.stdout.decode().endswith("\n400"), proc.stdout)

    def test_only_tls_1_2_and_1_3_with_aead_ciphers(self):
        for version in ("-tls1_2", "-tls1_3"):
            rc, out = self.s_client(version)
            self.assertEqual(rc, 0, out)
            self.assertIn("Verify return code: 0 (ok)", out)
            self.assertRegex(out, r"Cipher is (TLS_AES_\d+_GCM_SHA\d+|TLS_CHACHA20_POLY1305_SHA256|"
                                  r"ECDHE-(ECDSA|RSA)-(AES\d+-GCM-SHA\d+|CHACHA20-POLY1305))")
        for version in ("-tls1", "-tls1_1"):
            rc, out = self.s_client(version, "-cipher", "DEFAULT@SECLEVEL=0")
            self.assertNotEqual(rc, 0, out)
            self.assertIn("Cipher is (NONE)", out)
        # a TLS 1.2 client offering only CBC ciphers finds nothing in common
        rc, out = self.s_client("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA")
        self.assertNotEqual(rc, 0, out)
        self.assertIn("Cipher is (NONE)", out)

    def test_a_client_trusting_another_ca_refuses_the_server(self):
        rc, _, err = self.curl(ca="other-root")
        self.assertEqual(rc, 60, err)  # CURLE_PEER_FAILED_VERIFICATION
        self.assertIn("unable to get local issuer certificate", err)
        _, proc = self.skopeo_push("tls/wrong-ca", self.pki.cert_dir("wrong", ca="other-root"),
                                   check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("certificate signed by unknown authority", proc.stderr.decode())
        res = c.aws(self.server, "describe-repositories", "--ca-bundle",
                    self.pki.path("other-root.pem"), endpoint=self.url)
        self.assertNotEqual(res.rc, 0)
        self.assertIn("SSL validation failed", res.err)

    def test_skopeo_pushes_and_pulls_with_cert_dir(self):
        certs = self.pki.cert_dir("good")
        img, _ = self.skopeo_push("tls/skopeo", certs)
        proc = self.skopeo_inspect("tls/skopeo", certs)
        self.assertEqual(proc.stdout, img.manifest)
        out = tempfile.mkdtemp(prefix="pulled-", dir=self.work)
        self.skopeo.run("copy", "--src-no-creds", "--src-cert-dir", certs,
                        "docker://127.0.0.1:%d/tls/skopeo:v1" % self.server.port,
                        "oci:%s:v1" % out)
        for digest in img.layer_digests:
            self.assertEqual(h.read_oci_layout_blob(out, digest), img.blobs[digest])

    def test_aws_cli_with_ca_bundle(self):
        bundle = ["--ca-bundle", self.pki.path("root.pem")]
        res = c.aws(self.server, "create-repository", "--repository-name", "tls/aws", *bundle,
                    endpoint=self.url)
        self.assertEqual(res.rc, 0, res.describe())
        res = c.aws(self.server, "describe-repositories", *bundle, endpoint=self.url)
        self.assertEqual(res.rc, 0, res.describe())
        self.assertEqual([r["repositoryName"] for r in res.json()["repositories"]], ["tls/aws"])
        # the endpoint the API reports is https (public_url defaults to https://<listen>)
        res = c.aws(self.server, "get-authorization-token", *bundle, endpoint=self.url)
        self.assertEqual(res.rc, 0, res.describe())
        self.assertEqual(res.json()["authorizationData"][0]["proxyEndpoint"], self.url)

    def test_blob_bodies_over_tls_whole_and_ranged(self):
        # over TLS berth reads file bodies itself in 256 KiB blocks (no sendfile under TLS)
        data = os.urandom(3 * 256 * 1024 + 12345)
        digest = h.digest_of(data)
        body = os.path.join(self.work, "blob.bin")
        with open(body, "wb") as f:
            f.write(data)
        rc, out, err = self.curl("/v2/tls/blob/blobs/uploads/?digest=" + digest,
                                 extra=["-X", "POST", "--data-binary", "@" + body,
                                        "-H", "Content-Type: application/octet-stream"])
        self.assertEqual((rc, out.rsplit("\n", 1)[1]), (0, "201"), err)
        for extra, want in (((), data),
                            (("-H", "Range: bytes=262140-786440"), data[262140:786441]),
                            (("-H", "Range: bytes=5-"), data[5:])):
            proc = subprocess.run([CURL, "-sS", "--max-time", "60", "--cacert",
                                   self.pki.path("root.pem"), "-o", "-"] + list(extra) +
                                  [self.url + "/v2/tls/blob/blobs/" + digest],
                                  capture_output=True, timeout=90, stdin=subprocess.DEVNULL)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertEqual(proc.stdout, want, extra)

    def test_sighup_keeps_connections_and_transfers_open(self):
        """A reload swaps the pair for new handshakes only: a pull in flight goes on to its
        last byte, and its keep-alive connection, made with the old certificate, takes
        another request; the process is the same."""
        data = os.urandom(32 << 20)  # far more than loopback's socket buffers hold
        digest = h.digest_of(data)
        body = os.path.join(self.work, "inflight.bin")
        with open(body, "wb") as f:
            f.write(data)
        rc, out, err = self.curl("/v2/tls/inflight/blobs/uploads/?digest=" + digest,
                                 extra=["-X", "POST", "--data-binary", "@" + body,
                                        "-H", "Content-Type: application/octet-stream"])
        self.assertEqual((rc, out.rsplit("\n", 1)[1]), (0, "201"), err)
        original = self.pki.path("chain-original.pem")
        shutil.copy(self.pki.path("chain.pem"), original)

        def restore():
            shutil.copy(original, self.pki.path("chain.pem"))
            self.sighup()
        self.addCleanup(restore)

        ctx = ssl.create_default_context(cafile=self.pki.path("root.pem"))
        conn = http.client.HTTPSConnection("localhost", self.server.port, context=ctx,
                                           timeout=60)
        self.addCleanup(conn.close)
        conn.connect()
        # a fixed receive buffer (no autotuning, which may grow to tcp_rmem's maximum): what
        # the kernels hold, this one's and berth's send buffer, stays far below 32 MiB
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        path = "/v2/tls/inflight/blobs/" + digest
        conn.request("GET", path)
        pull = conn.getresponse()
        self.assertEqual(pull.status, 200)
        got = pull.read(1 << 20)
        with open(self.pki.path("server.pem")) as f:
            old_cert = ssl.PEM_cert_to_DER_cert(f.read())
        self.assertEqual(conn.sock.getpeercert(binary_form=True), old_cert)
        pid = self.server.proc.pid

        shutil.copy(self.pki.path("chain2.pem"), self.pki.path("chain.pem"))
        self.sighup()
        # the pull was still under way when the reload happened: its access line (written
        # when a response ends) is not there yet
        done = "method=GET path=%s status=200" % path
        self.assertNotIn(done, self.server.log_text())
        got += pull.read()
        self.assertEqual(len(got), len(data))
        self.assertTrue(got == data, "the pull's bytes differ")
        # the same connection, on the old certificate, takes the next request
        conn.request("GET", "/v2/")
        again = conn.getresponse()
        again.read()
        self.assertEqual(again.status, 200)
        self.assertEqual(conn.sock.getpeercert(binary_form=True), old_cert)
        h.wait_until(lambda: done in self.server.log_text(), 20, what="the pull's access line")
        # a new connection gets the new certificate, from the same process
        with open(self.pki.path("server2.pem")) as f:
            new_cert = ssl.PEM_cert_to_DER_cert(f.read())
        fresh = http.client.HTTPSConnection("localhost", self.server.port, context=ctx,
                                            timeout=30)
        self.addCleanup(fresh.close)
        fresh.request("GET", "/v2/")
        fresh.getresponse().read()
        self.assertEqual(fresh.sock.getpeercert(binary_form=True), new_cert)
        self.assertIsNone(self.server.proc.poll())
        self.assertEqual(self.server.proc.pid, pid)

    def test_sighup_reloads_the_certificate(self):
        def served():
            ctx = ssl.create_default_context(cafile=self.pki.path("root.pem"))
            with ctx.wrap_socket(socket.create_connection(
                    ("127.0.0.1", self.server.port), timeout=10),
                    server_hostname="localhost") as s:
                return s.getpeercert(binary_form=True)

        def der(name):
            with open(self.pki.path(name)) as f:
                return ssl.PEM_cert_to_DER_cert(f.read())
        self.assertEqual(served(), der("server.pem"))
        shutil.copy(self.pki.path("chain2.pem"), self.pki.path("chain.pem"))
        self.sighup()
        self.assertEqual(served(), der("server2.pem"))
        self.assertCurlOk("/v2/")
        # a broken file leaves the served pair in place
        with open(self.pki.path("chain.pem"), "w") as f:
            f.write("not a certificate\n")
        self.sighup("event=tls_reload_failed")
        self.assertEqual(served(), der("server2.pem"))
        shutil.copy(self.pki.path("chain2.pem"), self.pki.path("chain.pem"))


@h.berth_only("berth's native TLS")
class ExpiredCertificateTest(TlsCase):
    cert = "expired.pem"

    def test_clients_refuse_an_expired_certificate(self):
        rc, _, err = self.curl()
        self.assertEqual(rc, 60, err)
        self.assertIn("certificate has expired", err)
        _, proc = self.skopeo_push("tls/expired", self.pki.cert_dir("expired"), check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("certificate has expired", proc.stderr.decode())
        res = c.aws(self.server, "describe-repositories", "--ca-bundle",
                    self.pki.path("root.pem"), endpoint=self.url)
        self.assertNotEqual(res.rc, 0)
        self.assertIn("certificate has expired", res.err)


@h.berth_only("berth's mutual TLS")
class MutualTlsTest(TlsCase):
    tls = {"client_ca_file": "root.pem"}

    def test_a_client_certificate_from_the_client_ca_is_accepted(self):
        self.assertCurlOk("/v2/", client="client")
        self.assertCurlOk("/v2/", client="client", extra=["--tls-max", "1.2"])
        certs = self.pki.cert_dir("mtls", client="client")
        img, _ = self.skopeo_push("tls/mtls", certs)
        self.assertEqual(self.skopeo_inspect("tls/mtls", certs).stdout, img.manifest)

    def test_a_missing_client_certificate_is_refused(self):
        rc, _, err = self.curl()
        self.assertNotEqual(rc, 0)
        self.assertIn("alert certificate required", err)  # TLS 1.3's alert
        rc, _, err = self.curl(extra=["--tls-max", "1.2"])
        self.assertNotEqual(rc, 0)
        self.assertIn("alert handshake failure", err)
        _, proc = self.skopeo_push("tls/no-client-cert", self.pki.cert_dir("nocert"),
                                   check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("certificate required", proc.stderr.decode())

    def test_a_client_certificate_from_another_ca_is_refused(self):
        rc, _, err = self.curl(client="stranger")
        self.assertNotEqual(rc, 0)
        self.assertIn("alert unknown ca", err)
        self.assertIn("reason=client_certificate_unknown_ca", self.server.log_text())


@h.berth_only("berth's configuration checks")
class TlsConfigTest(unittest.TestCase):
    def setUp(self):
        self.pki = Pki()
        self.addCleanup(self.pki.cleanup)
        self.root = tempfile.mkdtemp(prefix="berth-tls-root-")
        self.addCleanup(shutil.rmtree, self.root, True)

    def serve(self, listen="127.0.0.1:0", **env):
        rc, out = h.run_berth(["serve", "--root", self.root, "--listen", listen],
                              env=dict({"BERTH_TLS_CERT_FILE": self.pki.path("chain.pem"),
                                        "BERTH_TLS_KEY_FILE": self.pki.path("server.key")},
                                       **env), timeout=20)
        return rc, out

    def test_unusable_files_stop_the_start(self):
        rc, out = self.serve(BERTH_TLS_KEY_FILE="")
        self.assertEqual(rc, 2, out)
        self.assertIn("tls.cert_file and tls.key_file go together", out)
        rc, out = self.serve(BERTH_TLS_KEY_FILE=self.pki.path("client.key"))
        self.assertNotEqual(rc, 0, out)
        self.assertIn("do not make a certificate and key pair", out)
        rc, out = self.serve(BERTH_TLS_CERT_FILE=self.pki.path("missing.pem"))
        self.assertNotEqual(rc, 0, out)
        self.assertIn("cannot read certificate", out)

    def test_tls_does_not_open_a_public_address_without_auth(self):
        rc, out = self.serve(listen="0.0.0.0:%d" % h.free_port())
        self.assertEqual(rc, 2, out)
        self.assertIn("refusing to serve", out)


if __name__ == "__main__":
    h.main()
