"""Mutual TLS identities and the client CA's reload: a verified client certificate that
tls.client_principals maps to an access key acts as that key on /v2 when the request carries
no other credential (curl and skopeo push and pull with a certificate only; a certificate
mapped to a pull-only key cannot push; an unmapped certificate still needs credentials; the
ECR API is not affected), and SIGHUP reads tls.client_ca_file again (a certificate from the
new CA is accepted, one from the old refused, an open connection stays open) and
tls.client_principals from the configuration file (the new mapping applies, the old one no
longer does; a malformed one leaves the mapping in use). Certificates
from lib/tls_helpers.py plus a second root and its client certificate made here."""

import hashlib
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import unittest

import clients as c  # first: it cleans the environment botocore reads

import berth_harness as h
import tls_helpers as t

CURL = "/usr/bin/curl"

ADMIN = ("AKIDTLSADMIN00000001", "tls-admin-secret-0123456789abcdefghijkl")
WRITER = ("AKIDTLSWRITER0000001", "tls-writer-secret-0123456789abcdefghijk")
READER = ("AKIDTLSREADER0000001", "tls-reader-secret-0123456789abcdefghijk")


def make_pki():
    pki = t.Pki()
    pki.issue("reader", "root", "client_san", cn="berth test reader")  # DNS name only
    pki.issue("unmapped", "root", "client", cn="node-unmapped")
    pki.ca("root2", "root2")
    pki.issue("client-new", "root2", "client", cn="node-1")
    shutil.copy(pki.path("root.pem"), pki.path("client-ca.pem"))
    return pki


class MtlsCase(unittest.TestCase):
    principals = []
    keys = []

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pki = make_pki()
        cls.addClassCleanup(cls.pki.cleanup)
        config = {"tls": {"cert_file": cls.pki.path("chain.pem"),
                          "key_file": cls.pki.path("server.key"),
                          "client_ca_file": cls.pki.path("client-ca.pem"),
                          "client_principals": cls.principals}}
        if cls.keys:
            config["auth"] = {"keys": cls.keys}
        cls.server = h.Server(config=config)
        cls.addClassCleanup(cls.server.cleanup)
        cls.server.start()
        cls.url = "https://127.0.0.1:%d" % cls.server.port
        cls.work = tempfile.mkdtemp(prefix="berth-mtls-")
        cls.addClassCleanup(shutil.rmtree, cls.work, True)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        super().tearDownClass()

    def curl(self, path, client=None, user=None, method=None, data=None, headers=()):
        """(exit code, status, body, stderr) of one HTTPS request."""
        cmd = [CURL, "-sS", "--max-time", "30", "-o", "-", "-w", "\n%{http_code}",
               "--cacert", self.pki.path("root.pem")]
        if client:
            cmd += ["--cert", self.pki.path(client + ".pem"),
                    "--key", self.pki.path(client + ".key")]
        if user:
            cmd += ["-u", "%s:%s" % user]
        if method:
            cmd += ["-X", method]
        for hdr in headers:
            cmd += ["-H", hdr]
        if data is not None:
            body = os.path.join(self.work, "body")
            with open(body, "wb") as f:
                f.write(data)
            cmd += ["--data-binary", "@" + body]
        proc = subprocess.run(cmd + [self.url + path], capture_output=True, timeout=60,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            return proc.returncode, None, b"", proc.stderr.decode()
        body, status = proc.stdout.rsplit(b"\n", 1)
        return 0, int(status), body, proc.stderr.decode()

    def status(self, *args, **kwargs):
        rc, status, body, err = self.curl(*args, **kwargs)
        self.assertEqual(rc, 0, err)
        return status


@h.berth_only("berth's mutual TLS")
class ClientPrincipalTest(MtlsCase):
    principals = [{"common_name": "node-1", "access_key_id": WRITER[0]},
                  {"dns_name": "READER.nodes.example", "access_key_id": READER[0]}]
    keys = [{"name": "admin", "access_key_id": ADMIN[0], "secret_access_key": ADMIN[1]},
            {"name": "writer", "access_key_id": WRITER[0], "secret_access_key": WRITER[1],
             "permissions": ["push:team/*"]},
            {"name": "reader", "access_key_id": READER[0], "secret_access_key": READER[1],
             "permissions": ["pull"]}]

    def curl_push(self, repo, client, image, user=None):
        """Push image's blobs (monolithic POST) and manifest with curl: the statuses."""
        out = []
        for digest, data in image.blobs.items():
            out.append(self.status("/v2/%s/blobs/uploads/?digest=%s" % (repo, digest),
                                   client=client, user=user, method="POST", data=data,
                                   headers=["Content-Type: application/octet-stream"]))
        out.append(self.status("/v2/%s/manifests/v1" % repo, client=client, user=user,
                               method="PUT", data=image.manifest,
                               headers=["Content-Type: " + image.media_type]))
        return out

    def test_curl_pushes_and_pulls_with_a_mapped_certificate_only(self):
        self.assertEqual(self.status("/v2/", client="client"), 200)
        image = h.build_image(layer_count=2, layer_size=8192)
        self.assertEqual(self.curl_push("team/curl", "client", image), [201, 201, 201, 201])
        rc, status, body, err = self.curl("/v2/team/curl/manifests/v1", client="client",
                                          headers=["Accept: " + image.media_type])
        self.assertEqual((rc, status, body), (0, 200, image.manifest), err)
        for digest, data in image.blobs.items():
            rc, status, body, err = self.curl("/v2/team/curl/blobs/" + digest, client="client")
            self.assertEqual((rc, status, body), (0, 200, data), err)
        # the writer key's permissions hold: push only under team/
        self.assertEqual(self.curl_push("other/curl", "client", image)[0], 403)
        # presented credentials win over the certificate: a bad secret is refused
        self.assertEqual(self.status("/v2/", client="client", user=(WRITER[0], "wrong" * 8)),
                         401)

    def test_a_certificate_mapped_to_a_pull_only_key_cannot_push(self):
        image = h.build_image(layer_count=1, layer_size=4096)
        self.assertEqual(self.curl_push("team/ro", "unmapped", image, user=ADMIN), [201, 201, 201])
        # the reader certificate names READER.nodes.example in its DNS names (case ignored)
        rc, status, body, err = self.curl("/v2/team/ro/manifests/v1", client="reader",
                                          headers=["Accept: " + image.media_type])
        self.assertEqual((rc, status, body), (0, 200, image.manifest), err)
        statuses = self.curl_push("team/ro", "reader", h.build_image(layer_count=1))
        self.assertEqual(statuses, [403, 403, 403])
        self.assertIn("not authorized to perform: ecr:InitiateLayerUpload",
                      self.server.log_text())

    def test_an_unmapped_certificate_needs_credentials(self):
        rc, status, body, err = self.curl("/v2/", client="unmapped")
        self.assertEqual((rc, status), (0, 401), err)
        self.assertEqual(self.status("/v2/", client="unmapped", user=ADMIN), 200)
        self.assertEqual(self.status("/v2/", client="unmapped", user=READER), 200)

    def test_the_ecr_api_still_needs_a_signature(self):
        # SigV4 signs each request with a secret: a certificate does not stand in for one
        rc, status, body, err = self.curl("/", client="client", method="POST", data=b"{}",
                                          headers=["Content-Type: application/x-amz-json-1.1",
                                                   "X-Amz-Target: AmazonEC2ContainerRegistry_"
                                                   "V20150921.DescribeRepositories"])
        self.assertEqual(rc, 0, err)
        self.assertIn(status, (400, 403), body)
        self.assertIn(b"MissingAuthenticationToken", body)

    def test_skopeo_pushes_and_pulls_with_a_certificate_only(self):
        skopeo = c.Skopeo(self.work)
        layout = tempfile.mkdtemp(prefix="layout-", dir=self.work)
        img = h.build_image(layer_count=2, layer_size=4096)
        h.write_oci_layout(layout, {"v1": img})
        certs = self.pki.cert_dir("skopeo-writer", client="client")
        ref = "docker://127.0.0.1:%d/team/skopeo:v1" % self.server.port
        skopeo.run("copy", "--preserve-digests", "--dest-no-creds", "--dest-cert-dir", certs,
                   "oci:%s:v1" % layout, ref)
        self.assertEqual(skopeo.run("inspect", "--raw", "--no-creds", "--cert-dir", certs,
                                    ref).stdout, img.manifest)
        out = tempfile.mkdtemp(prefix="pulled-", dir=self.work)
        skopeo.run("copy", "--src-no-creds", "--src-cert-dir", certs, ref, "oci:%s:v1" % out)
        with open(os.path.join(out, "index.json")) as f:
            self.assertEqual(json.load(f)["manifests"][0]["digest"], img.digest)
        # the pull-only certificate cannot push
        readers = self.pki.cert_dir("skopeo-reader", client="reader")
        proc = skopeo.run("copy", "--dest-no-creds", "--dest-cert-dir", readers,
                          "oci:%s:v1" % layout,
                          "docker://127.0.0.1:%d/team/skopeo-ro:v1" % self.server.port,
                          check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("denied", proc.stderr.decode())


@h.berth_only("berth's configuration checks")
class PrincipalConfigTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pki = t.Pki()
        cls.addClassCleanup(cls.pki.cleanup)

    def start_fails(self, tls, needle):
        root = tempfile.mkdtemp(prefix="berth-mtls-root-")
        self.addCleanup(shutil.rmtree, root, True)
        tls = dict(tls, cert_file=self.pki.path("chain.pem"),
                   key_file=self.pki.path("server.key"))
        config = os.path.join(root, "berth.json")
        with open(config, "w") as f:
            json.dump({"tls": tls}, f)
        rc, out = h.run_berth(["serve", "--root", os.path.join(root, "data"), "--listen",
                               "127.0.0.1:0", "--config", config], timeout=20)
        self.assertNotEqual(rc, 0, out)
        self.assertIn(needle, out)

    def test_principals_need_a_client_ca_and_well_formed_rows(self):
        row = {"common_name": "node-1", "access_key_id": WRITER[0]}
        self.start_fails({"client_principals": [row]},
                         "tls.client_principals needs tls.client_ca_file")
        for bad in [{"common_name": "node-1"},
                    {"common_name": "node-1", "dns_name": "x", "access_key_id": WRITER[0]},
                    {"common_name": "", "access_key_id": WRITER[0]},
                    {"common_name": "node-1", "access_key_id": "not a key"},
                    {"cn": "node-1", "access_key_id": WRITER[0]}]:
            with self.subTest(row=bad):
                self.start_fails({"client_ca_file": self.pki.path("root.pem"),
                                  "client_principals": [bad]},
                                 "tls.client_principals[0] must be")


@h.berth_only("berth's mutual TLS")
class ClientCaReloadTest(MtlsCase):
    def keep_alive(self, client):
        ctx = ssl.create_default_context(cafile=self.pki.path("root.pem"))
        ctx.load_cert_chain(self.pki.path(client + ".pem"), self.pki.path(client + ".key"))
        conn = http.client.HTTPSConnection("127.0.0.1", self.server.port, context=ctx,
                                           timeout=30)
        self.addCleanup(conn.close)
        return conn

    def get(self, conn):
        conn.request("GET", "/v2/")
        resp = conn.getresponse()
        resp.read()
        return resp.status

    def sighup(self, event):
        before = self.server.log_text().count(event)
        self.server.proc.send_signal(signal.SIGHUP)
        h.wait_until(lambda: self.server.log_text().count(event) > before, 30,
                     what="the reload (%s)" % event)

    def test_sighup_reads_the_client_ca_again(self):
        self.assertEqual(self.status("/v2/", client="client"), 200)
        rc, _, _, err = self.curl("/v2/", client="client-new")
        self.assertNotEqual(rc, 0)
        self.assertIn("alert unknown ca", err)
        old = self.keep_alive("client")
        self.assertEqual(self.get(old), 200)

        shutil.copy(self.pki.path("root2.pem"), self.pki.path("client-ca.pem"))
        self.sighup("event=tls_reloaded")
        self.assertEqual(self.status("/v2/", client="client-new"), 200)
        rc, _, _, err = self.curl("/v2/", client="client")
        self.assertNotEqual(rc, 0)
        self.assertIn("alert unknown ca", err)
        # a connection verified before the reload is not dropped
        self.assertEqual(self.get(old), 200)

        # an unreadable bundle leaves the one in use in place
        with open(self.pki.path("client-ca.pem"), "w") as f:
            f.write("not a certificate\n")
        self.sighup("event=tls_reload_failed")
        self.assertIn("holds no usable CA certificate", self.server.log_text())
        self.assertEqual(self.status("/v2/", client="client-new"), 200)
        rc, _, _, err = self.curl("/v2/", client="client")
        self.assertIn("alert unknown ca", err)



@h.berth_only("berth's mutual TLS")
class PrincipalReloadTest(MtlsCase):
    """SIGHUP takes tls.client_principals from the configuration file as it reads now, with
    the certificate, key and client CA, all or nothing."""

    principals = [{"common_name": "node-1", "access_key_id": WRITER[0]}]
    keys = [{"name": "admin", "access_key_id": ADMIN[0], "secret_access_key": ADMIN[1]},
            {"name": "writer", "access_key_id": WRITER[0], "secret_access_key": WRITER[1],
             "permissions": ["push:team/*"]},
            {"name": "reader", "access_key_id": READER[0], "secret_access_key": READER[1],
             "permissions": ["pull"]}]

    def rewrite(self, principals):
        self.server.config["tls"]["client_principals"] = principals
        self.server.config_file()

    def sighup(self, event):
        before = self.server.log_text().count(event)
        self.server.proc.send_signal(signal.SIGHUP)
        h.wait_until(lambda: self.server.log_text().count(event) > before, 30,
                     what="the reload (%s)" % event)

    def push_status(self, client, repo):
        data = b"reload-" + repo.encode()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        return self.status("/v2/%s/blobs/uploads/?digest=%s" % (repo, digest), client=client,
                           method="POST", data=data,
                           headers=["Content-Type: application/octet-stream"])

    def test_sighup_reloads_the_principals(self):
        self.addCleanup(self.rewrite, list(self.principals))
        # as started: node-1 (the "client" certificate) acts as the writer
        self.assertEqual(self.status("/v2/", client="client"), 200)
        self.assertEqual(self.push_status("client", "team/before"), 201)
        self.assertEqual(self.status("/v2/", client="unmapped"), 401)

        # node-unmapped now maps to the pull-only reader; node-1 to nothing
        self.rewrite([{"common_name": "node-unmapped", "access_key_id": READER[0]}])
        self.sighup("event=tls_reloaded")
        self.assertIn("client_principals=1", self.server.log_text())
        self.assertEqual(self.status("/v2/", client="client"), 401)
        self.assertEqual(self.push_status("client", "team/after"), 401)
        self.assertEqual(self.status("/v2/", client="unmapped"), 200)
        self.assertEqual(self.push_status("unmapped", "team/after"), 403)

        # a malformed table is refused whole: the mapping in use stays
        self.rewrite([{"common_name": "node-1"}])
        self.sighup("event=tls_reload_failed")
        self.assertIn("tls.client_principals[0] must be", self.server.log_text())
        self.assertEqual(self.status("/v2/", client="client"), 401)
        self.assertEqual(self.push_status("unmapped", "team/after"), 403)
        self.assertEqual(self.status("/v2/", client="unmapped"), 200)


if __name__ == "__main__":
    unittest.main()
