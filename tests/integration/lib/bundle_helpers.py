"""Helpers for the bundle tests (berth export / berth import / berth mirror): a set of images
with a multi-arch index and a referrer, pushed to a server; a bundle read back as a dict; a
forwarding proxy in front of an upstream registry."""

import hashlib
import http.client
import http.server
import io
import json
import subprocess
import tarfile
import threading

import berth_harness as h

REF_NAME = "org.opencontainers.image.ref.name"
REPOSITORY = "io.berth.repository"


def sample_images(layer_size=3000):
    """{name: image}: an image 'v1' (two layers of random files of layer_size bytes), a
    two-platform index 'multi' and an SBOM whose subject is v1 (pushed by digest)."""
    v1 = h.build_image(layer_count=2, layer_size=layer_size)
    amd = h.build_image(layer_count=1, layer_size=2000, arch="amd64")
    arm = h.build_image(layer_count=1, layer_size=2000, arch="arm64")
    multi = h.Index([amd, arm], platforms=[{"architecture": "amd64", "os": "linux"},
                                           {"architecture": "arm64", "os": "linux"}])
    sbom = h.build_artifact(subject=v1.descriptor())
    return {"v1": v1, "multi": multi, "sbom": sbom}


def push_sample(reg, repo, images):
    h.expect_status(reg.push_image(repo, images["v1"], tag="v1"), 201)
    h.expect_status(reg.push_image(repo, images["multi"], tag="multi"), 201)
    h.expect_status(reg.push_image(repo, images["sbom"]), 201)


def all_digests(image):
    """Every digest an image (or index, recursively) is made of, its own included."""
    out = {image.digest} | set(image.blobs)
    for child in getattr(image, "children", []):
        out |= all_digests(child)
    return out


def read_tar_bytes(path):
    """The bytes of a tar, tar.gz or tar.zst file (zstd through the zstd command)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] == b"\x28\xb5\x2f\xfd":
        data = subprocess.run(["zstd", "-dc"], input=data, capture_output=True,
                              check=True).stdout
    return data


def read_bundle(path):
    """{entry name: bytes} of a packed OCI layout (regular files only)."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(read_tar_bytes(path)), mode="r:*") as tar:
        for member in tar.getmembers():
            if member.isfile():
                out[member.name] = tar.extractfile(member).read()
    return out


def check_blobs(testcase, files):
    """Every blobs/ entry hashes to its name."""
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            testcase.assertEqual(hashlib.sha256(data).hexdigest(), name.split("/")[-1], name)


def index_entries(files):
    return json.loads(files["index.json"])["manifests"]


class ForwardingProxy:
    """Forwards GETs to a registry on 127.0.0.1:port with their Accept and Authorization
    headers only (no Range: a registry or cache that ignores ranges), and sends back the
    answer's status, type, digest and challenge with its whole body. intercept(handler),
    when given, sees each request first and may answer it itself (it then returns True)."""

    def __init__(self, port, intercept=None):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if intercept is not None and intercept(self):
                    return
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                conn.request("GET", self.path, headers={
                    k: v for k, v in self.headers.items()
                    if k.lower() in ("accept", "authorization")})
                resp = conn.getresponse()
                body = resp.read()
                conn.close()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() in ("content-type", "docker-content-digest",
                                     "www-authenticate"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
