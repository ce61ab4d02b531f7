"""containerd's ctr and podman against berth's native TLS (tls.cert_file, tls.key_file and,
for mutual TLS, tls.client_ca_file), with the certificates of lib/tls_helpers.py: the
server's chain is trusted through ctr's hosts.toml (`--hosts-dir`) and podman's
`--cert-dir`, each of which also gives the client certificate; an unrelated CA is refused
with the x509 error the user sees, as is an expired certificate, and a client without a
certificate reads "tls: certificate required".

podman and docker also push and pull with no login when tls.client_principals maps their
client certificate to an access key.

dockerd treats every 127.0.0.0/8 registry as insecure whatever it is told (it skips
verification and reads no certs.d for it), so its test serves berth on [::1] under the name
registry.berth.test, which only that dockerd resolves (a private /etc/hosts bound in its
mount namespace, with a private /etc/docker whose certs.d the test fills).
"""
# berth-suite: daemons

import json
import os
import re
import shutil
import subprocess
import unittest

import clients as c  # first: it cleans the environment botocore reads  # noqa: F401
import auth_helpers as e
import berth_harness as h
import daemons as d
import tls_helpers as t

containerd = None
engine = None


def setUpModule():
    global containerd, engine
    engine = d.Podman(d.scratch_dir("berth-tls-podman-"))
    containerd = d.Containerd(d.scratch_dir("berth-tls-ctrd-"))
    d.start_all(containerd)


def tearDownModule():
    d.remove_all(containerd, engine)


def node_config(pki, node, key):
    """berth's configuration for mutual TLS with pki's certificates, the client
    certificate of CN node mapped to the access key key (id, secret), a node's identity
    that may push under nodes/."""
    return {
        "tls": {"cert_file": pki.path("chain.pem"),
                "key_file": pki.path("server.key"),
                "client_ca_file": pki.path("root.pem"),
                "client_principals": [{"common_name": node, "access_key_id": key[0]}]},
        "auth": {"keys": [{"name": "node", "access_key_id": key[0],
                           "secret_access_key": key[1],
                           "permissions": ["push:nodes/*"]}]}}


class MutualTlsClientsTest(h.ServerTestCase):
    """berth on HTTPS requiring client certificates issued by the test root."""

    NODE = ("AKIDTLSPODMANNODE001", "tls-podman-node-secret-0123456789abcdefg")

    @classmethod
    def setUpClass(cls):
        cls.pki = t.Pki()
        cls.addClassCleanup(cls.pki.cleanup)
        # podman-node (not "client") is a node's identity: a key that may push under nodes/
        cls.pki.issue("podman-node", "root", "client", cn="podman-node")
        cls.server_config = node_config(cls.pki, "podman-node", cls.NODE)
        super().setUpClass()
        cls.host = "127.0.0.1:%d" % cls.server.port
        cls.admin = e.keys_create(cls.server, "admin")

    def https_get(self, path):
        """GET over HTTPS with the test client certificate: (status, body)."""
        proc = subprocess.run(["/usr/bin/curl", "-sS", "--max-time", "30", "--cacert",
                               self.pki.path("root.pem"), "--cert", self.pki.path("client.pem"),
                               "--key", self.pki.path("client.key"), "-u", "%s:%s" % self.admin,
                               "-H", "Accept: " + h.DOCKER_ACCEPT + ", " + h.MT_OCI_MANIFEST,
                               "-o", "-", "-w", "\n%{http_code}",
                               "https://%s%s" % (self.host, path)],
                              capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        body, status = proc.stdout.rsplit(b"\n", 1)
        return int(status), body

    def assertInBerth(self, repo, ref, image):
        status, body = self.https_get("/v2/%s/manifests/%s" % (repo, ref))
        self.assertEqual(status, 200, body)
        self.assertEqual(body, image.manifest)
        for digest, data in image.blobs.items():
            self.assertEqual(self.https_get("/v2/%s/blobs/%s" % (repo, digest)), (200, data))

    # -- containerd ----------------------------------------------------------------------------

    def hosts_dir(self, name, ca, client):
        """A containerd hosts directory: <host:port>/hosts.toml naming the CA and the client
        certificate."""
        root = os.path.join(containerd.work, "hosts-" + name)
        os.makedirs(os.path.join(root, self.host))
        lines = ['server = "https://%s"' % self.host,
                 '[host."https://%s"]' % self.host,
                 '  capabilities = ["pull", "resolve", "push"]',
                 '  ca = "%s"' % self.pki.path(ca + ".pem")]
        if client:
            lines.append('  client = [["%s", "%s"]]' % (self.pki.path(client + ".pem"),
                                                        self.pki.path(client + ".key")))
        with open(os.path.join(root, self.host, "hosts.toml"), "w") as f:
            f.write("\n".join(lines) + "\n")
        return root

    def test_ctr_with_hosts_toml(self):
        image = h.build_image(layer_count=2, layer_size=64 * 1024)
        ref = containerd.import_image(self.host, "team/ctr", "v1", image)
        user = "%s:%s" % self.admin
        good = self.hosts_dir("good", "root", "client")
        containerd.ctr("images", "push", "--hosts-dir", good, "--user", user, ref)
        self.assertInBerth("team/ctr", "v1", image)
        containerd.ctr("images", "rm", "--sync", ref)
        containerd.ctr("images", "pull", "--hosts-dir", good, "--user", user, ref)
        self.assertEqual(containerd.ctr("content", "get", image.digest).raw, image.manifest)
        for digest, data in image.blobs.items():
            self.assertEqual(containerd.ctr("content", "get", digest).raw, data)
        containerd.ctr("images", "rm", "--sync", ref)

        # a CA that did not issue berth's certificate
        result = containerd.ctr("images", "pull", "--hosts-dir",
                                self.hosts_dir("other", "other-root", "client"), "--user", user,
                                ref, check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("x509: certificate signed by unknown authority", result.err)
        # no client certificate: berth ends the handshake
        result = containerd.ctr("images", "pull", "--hosts-dir",
                                self.hosts_dir("anon", "root", None), "--user", user, ref,
                                check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("remote error: tls: certificate required", result.err)

    # -- podman ----------------------------------------------------------------------------------

    def cert_dir(self, name, ca, client):
        d_ = os.path.join(engine.work, "certs-" + name)
        shutil.rmtree(d_, ignore_errors=True)
        shutil.copytree(self.pki.cert_dir("podman-" + name, ca=ca, client=client), d_)
        return d_

    def test_podman_with_a_mapped_client_certificate_and_no_login(self):
        with open(engine.auth_file, "w") as f:
            json.dump({"auths": {}}, f)  # no stored login
        node = self.cert_dir("node", "root", "podman-node")
        ctx = os.path.join(engine.work, "ctx-node")
        os.makedirs(ctx, exist_ok=True)
        with open(os.path.join(ctx, "payload.bin"), "wb") as f:
            f.write(h.random_bytes(4096))
        with open(os.path.join(ctx, "Containerfile"), "w") as f:
            f.write("FROM scratch\nCOPY payload.bin /payload.bin\n")
        ref = "%s/nodes/podman:v1" % self.host
        engine.podman("build", "-t", ref, ctx)
        image_id = json.loads(engine.podman("inspect", "--type", "image", ref).out)[0]["Id"]
        engine.podman("push", "--cert-dir", node, ref)
        engine.podman("rmi", ref)
        engine.podman("pull", "--cert-dir", node, ref)
        self.assertEqual(json.loads(engine.podman("inspect", "--type", "image",
                                                  ref).out)[0]["Id"], image_id)
        # the node key's permissions hold: nothing outside nodes/
        other = "%s/team/node:v1" % self.host
        engine.podman("tag", ref, other)
        result = engine.podman("push", "--cert-dir", node, other, check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("403 (Forbidden)", result.err)
        engine.podman("rmi", ref, other)

    def test_podman_with_cert_dir(self):
        good = self.cert_dir("good", "root", "client")
        engine.podman("login", "--cert-dir", good, "--username", self.admin[0],
                      "--password-stdin", self.host, input=self.admin[1])
        ctx = os.path.join(engine.work, "ctx")
        os.makedirs(ctx, exist_ok=True)
        content = h.random_bytes(8192)
        with open(os.path.join(ctx, "payload.bin"), "wb") as f:
            f.write(content)
        with open(os.path.join(ctx, "Containerfile"), "w") as f:
            f.write("FROM scratch\nCOPY payload.bin /payload.bin\n")
        ref = "%s/team/podman:v1" % self.host
        engine.podman("build", "-t", ref, ctx)
        image_id = "sha256:" + json.loads(engine.podman("inspect", "--type", "image",
                                                        ref).out)[0]["Id"]
        digest_file = os.path.join(engine.work, "podman.digest")
        engine.podman("push", "--cert-dir", good, "--digestfile", digest_file, ref)
        with open(digest_file) as f:
            digest = f.read().strip()
        status, body = self.https_get("/v2/team/podman/manifests/v1")
        self.assertEqual(status, 200)
        self.assertEqual(h.digest_of(body), digest)
        self.assertEqual(json.loads(body)["config"]["digest"], image_id)
        engine.podman("rmi", ref)
        engine.podman("pull", "--cert-dir", good, ref)
        self.assertEqual("sha256:" + json.loads(engine.podman("inspect", "--type", "image",
                                                              ref).out)[0]["Id"], image_id)
        engine.podman("rmi", ref)

        result = engine.podman("pull", "--cert-dir", self.cert_dir("other", "other-root",
                                                                   "client"), ref, check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("x509: certificate signed by unknown authority", result.err)
        result = engine.podman("pull", "--cert-dir", self.cert_dir("anon", "root", None), ref,
                               check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("remote error: tls: certificate required", result.err)


class ExpiredCertificateClientsTest(h.ServerTestCase):
    """berth serving an expired certificate (issued by the test root): ctr and podman, both
    trusting the root, refuse it with Go's x509 message (curl, skopeo and the AWS CLI:
    tls/test_tls.py; docker: DockerTlsTest)."""

    EXPIRED = "x509: certificate has expired or is not yet valid"

    @classmethod
    def setUpClass(cls):
        cls.pki = t.Pki()
        cls.addClassCleanup(cls.pki.cleanup)
        cls.server_config = {"tls": {"cert_file": cls.pki.path("expired.pem"),
                                     "key_file": cls.pki.path("server.key")}}
        super().setUpClass()
        cls.host = "127.0.0.1:%d" % cls.server.port

    def test_ctr_refuses_an_expired_certificate(self):
        root = os.path.join(containerd.work, "hosts-expired")
        os.makedirs(os.path.join(root, self.host), exist_ok=True)
        with open(os.path.join(root, self.host, "hosts.toml"), "w") as f:
            f.write('server = "https://%s"\n[host."https://%s"]\n'
                    '  capabilities = ["pull", "resolve", "push"]\n  ca = "%s"\n'
                    % (self.host, self.host, self.pki.path("root.pem")))
        result = containerd.ctr("images", "pull", "--hosts-dir", root,
                                "%s/team/expired:v1" % self.host, check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn(self.EXPIRED, result.err)

    def test_podman_refuses_an_expired_certificate(self):
        with open(engine.auth_file, "w") as f:
            json.dump({"auths": {}}, f)  # no stored login (podman login writes here)
        certs = os.path.join(engine.work, "certs-expired")
        shutil.rmtree(certs, ignore_errors=True)
        shutil.copytree(self.pki.cert_dir("podman-expired"), certs)
        result = engine.podman("pull", "--cert-dir", certs, "%s/team/expired:v1" % self.host,
                               check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn(self.EXPIRED, result.err)
        result = engine.podman("login", "--cert-dir", certs, "--username", "x",
                               "--password-stdin", self.host, input="y", check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn(self.EXPIRED, result.err)


class DockerTlsTest(unittest.TestCase):
    """berth on https://[::1]:PORT with mutual TLS; dockerd reaches it as
    registry.berth.test:PORT and trusts it through certs.d."""

    NAME = "registry.berth.test"
    NODE = ("AKIDTLSDOCKERNODE001", "tls-docker-node-secret-0123456789abcdefg")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pki = t.Pki()
        cls.addClassCleanup(cls.pki.cleanup)
        # a second client certificate (CN docker-node) is a node's identity: a key that may
        # push under nodes/ (tls.client_principals); "client" (CN node-1) stays unmapped
        cls.pki.issue("docker-node", "root", "client", cn="docker-node")
        cls.server = h.Server(listen_host="[::1]",
                              config=node_config(cls.pki, "docker-node", cls.NODE))
        cls.addClassCleanup(cls.server.cleanup)
        cls.server.start()
        cls.admin = e.keys_create(cls.server, "admin")
        cls.host = "%s:%d" % (cls.NAME, cls.server.port)
        cls.dockerd = d.Dockerd(d.scratch_dir("berth-tls-dockerd-"), hosts={cls.NAME: "::1"})
        cls.addClassCleanup(subprocess.run, ["rm", "-rf", cls.dockerd.work])
        cls.addClassCleanup(cls.dockerd.stop)
        cls.dockerd.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        super().tearDownClass()

    def login(self, check=True):
        return self.dockerd.docker("login", "--username", self.admin[0], "--password-stdin",
                                   self.host, input=self.admin[1], check=check)

    def test_docker_with_a_mapped_client_certificate_and_no_login(self):
        self.dockerd.reset_client_config()
        certs = self.dockerd.certs_dir(self.host)
        for name in ("ca.crt", "client.cert", "client.key"):
            self.addCleanup(lambda p=os.path.join(certs, name): os.path.exists(p) and os.unlink(p))
        shutil.copy(self.pki.path("root.pem"), os.path.join(certs, "ca.crt"))
        shutil.copy(self.pki.path("docker-node.pem"), os.path.join(certs, "client.cert"))
        shutil.copy(self.pki.path("docker-node.key"), os.path.join(certs, "client.key"))
        image = d.SavedImage("itest/tls/node:v1")
        path = os.path.join(self.dockerd.work, "load-node.tar")
        with open(path, "wb") as f:
            f.write(image.archive())
        self.dockerd.docker("load", "-i", path)
        ref = "%s/nodes/app:v1" % self.host
        self.dockerd.docker("tag", image.tag, ref)
        self.dockerd.docker("push", ref)
        self.dockerd.docker("rmi", ref, image.tag)
        self.dockerd.docker("pull", ref)
        doc = json.loads(self.dockerd.docker("image", "inspect", ref).out)[0]
        self.assertEqual(doc["Id"], image.image_id)
        self.assertEqual(self.dockerd.credentials(), {})  # never logged in
        # the node key's permissions hold: nothing outside nodes/
        other = "%s/team/node:v1" % self.host
        self.dockerd.docker("tag", ref, other)
        result = self.dockerd.docker("push", other, check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("denied", result.err)
        self.dockerd.docker("rmi", ref, other)

    def test_docker_refuses_an_expired_certificate(self):
        expired = h.Server(listen_host="[::1]", config={
            "tls": {"cert_file": self.pki.path("expired.pem"),
                    "key_file": self.pki.path("server.key")}})
        self.addCleanup(expired.cleanup)
        expired.start()
        self.addCleanup(expired.stop)
        host = "%s:%d" % (self.NAME, expired.port)
        certs = self.dockerd.certs_dir(host)
        shutil.copy(self.pki.path("root.pem"), os.path.join(certs, "ca.crt"))
        result = self.dockerd.docker("login", "--username", "x", "--password-stdin", host,
                                     input="y", check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("x509: certificate has expired or is not yet valid", result.err)
        result = self.dockerd.docker("pull", "%s/team/expired:v1" % host, check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("x509: certificate has expired or is not yet valid", result.err)

    def test_docker_with_certs_d(self):
        certs = self.dockerd.certs_dir(self.host)
        # no CA for the name: dockerd verifies berth's certificate and refuses it
        result = self.login(check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("x509: certificate signed by unknown authority", result.err)
        # the CA, but no client certificate: berth ends the handshake
        shutil.copy(self.pki.path("root.pem"), os.path.join(certs, "ca.crt"))
        result = self.login(check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("certificate required", result.err)
        shutil.copy(self.pki.path("client.pem"), os.path.join(certs, "client.cert"))
        shutil.copy(self.pki.path("client.key"), os.path.join(certs, "client.key"))
        self.assertIn("Login Succeeded", self.login().out)

        image = d.SavedImage("itest/tls/app:v1")
        path = os.path.join(self.dockerd.work, "load.tar")
        with open(path, "wb") as f:
            f.write(image.archive())
        self.dockerd.docker("load", "-i", path)
        ref = "%s/team/tls:v1" % self.host
        self.dockerd.docker("tag", image.tag, ref)
        out = self.dockerd.docker("push", ref).out
        digest = re.search(r"digest: (sha256:[0-9a-f]{64})", out).group(1)
        self.dockerd.docker("rmi", ref, image.tag)
        by_digest = "%s/team/tls@%s" % (self.host, digest)
        self.dockerd.docker("pull", by_digest)
        doc = json.loads(self.dockerd.docker("image", "inspect", by_digest).out)[0]
        self.assertEqual(doc["Id"], image.image_id)
        self.assertEqual(doc["RootFS"]["Layers"], image.diff_ids)
        # berth over its own HTTPS names the same manifest
        proc = subprocess.run(["/usr/bin/curl", "-sS", "--max-time", "30", "--cacert",
                               self.pki.path("root.pem"), "--cert", self.pki.path("client.pem"),
                               "--key", self.pki.path("client.key"), "-u", "%s:%s" % self.admin,
                               "-H", "Accept: " + h.DOCKER_ACCEPT, "-o", "/dev/null", "-D", "-",
                               "--resolve", "%s:[::1]" % self.host,
                               "https://%s/v2/team/tls/manifests/v1" % self.host],
                              capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn(("docker-content-digest: " + digest).encode(), proc.stdout.lower())


if __name__ == "__main__":
    h.main()
