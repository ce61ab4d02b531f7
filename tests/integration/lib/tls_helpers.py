"""Test certificates made with openssl: a root CA, an intermediate that issues the server
certificate (served as a chain), an expired server certificate, client certificates for
mutual TLS, and a second, unrelated CA. Used by tls/test_tls.py and the real clients' TLS
tests (clients/test_tls_clients.py)."""

import os
import shutil
import subprocess
import tempfile

OPENSSL = "/usr/bin/openssl"

EXTENSIONS = """\
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
[server]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, IP:::1, DNS:localhost, DNS:registry.berth.test
[client]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
[client_san]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = DNS:reader.nodes.example
"""

CA_CONFIG = """\
[ca]
default_ca = berth_test
[berth_test]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}/issued
serial = {dir}/serial
default_md = sha256
policy = any
copy_extensions = none
[any]
commonName = supplied
"""


def openssl(*args, cwd):
    proc = subprocess.run([OPENSSL] + list(args), cwd=cwd, capture_output=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise AssertionError("openssl %s failed: %s" % (" ".join(args), proc.stderr.decode()))
    return proc


class Pki:
    """Keys and certificates in a temporary directory, all P-256."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="berth-pki-")
        with open(self.path("ext.cnf"), "w") as f:
            f.write(EXTENSIONS)
        self.ca("root", "root")
        self.ca("other-root", "other-root")  # trusted by nobody here
        self.issue("intermediate", "root", "ca")
        self.issue("server", "intermediate", "server", cn="localhost")
        self.issue("server2", "intermediate", "server", cn="localhost", key="server")
        self.issue("client", "root", "client", cn="node-1")
        self.issue("stranger", "other-root", "client", cn="stranger")
        self.chain("chain.pem", "server.pem", "intermediate.pem")
        self.chain("chain2.pem", "server2.pem", "intermediate.pem")
        self.expired()

    def path(self, name):
        return os.path.join(self.dir, name)

    def key(self, name):
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", name + ".key", cwd=self.dir)

    def ca(self, name, cn):
        self.key(name)
        openssl("req", "-x509", "-new", "-key", name + ".key", "-out", name + ".pem",
                "-subj", "/CN=berth test " + cn, "-days", "2",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=self.dir)

    def issue(self, name, issuer, extensions, cn=None, key=None):
        if key is None:
            self.key(name)
        openssl("req", "-new", "-key", (key or name) + ".key", "-out", name + ".csr",
                "-subj", "/CN=" + (cn or "berth test " + name), cwd=self.dir)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", issuer + ".pem", "-CAkey",
                issuer + ".key", "-CAcreateserial", "-out", name + ".pem", "-days", "2",
                "-extfile", "ext.cnf", "-extensions", extensions, cwd=self.dir)

    def chain(self, name, *parts):
        with open(self.path(name), "w") as out:
            for p in parts:
                with open(self.path(p)) as f:
                    out.write(f.read())

    def expired(self):
        """expired.pem: the server key, issued by the root, valid in 2020 only."""
        ca_dir = self.path("ca")
        os.makedirs(os.path.join(ca_dir, "issued"))
        open(os.path.join(ca_dir, "index.txt"), "w").close()
        with open(os.path.join(ca_dir, "serial"), "w") as f:
            f.write("1000\n")
        with open(self.path("ca.cnf"), "w") as f:
            f.write(CA_CONFIG.format(dir=ca_dir))
        openssl("ca", "-batch", "-config", "ca.cnf", "-cert", "root.pem", "-keyfile", "root.key",
                "-in", "server.csr", "-out", "expired.pem", "-notext",
                "-startdate", "20200101000000Z", "-enddate", "20200201000000Z",
                "-extfile", "ext.cnf", "-extensions", "server", cwd=self.dir)

    def cert_dir(self, name, ca="root", client=None):
        """A containers/image certificate directory: <ca>.crt, and client.cert/.key."""
        d = self.path("certs-" + name)
        os.makedirs(d)
        shutil.copy(self.path(ca + ".pem"), os.path.join(d, "ca.crt"))
        if client:
            shutil.copy(self.path(client + ".pem"), os.path.join(d, "client.cert"))
            shutil.copy(self.path(client + ".key"), os.path.join(d, "client.key"))
        return d

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)
