"""Integration-test harness: starts a registry on a free loopback port and talks to it.

The default target is berth ($BERTH_BIN serve --listen 127.0.0.1:PORT --root DIR).
BERTH_TEST_TARGET=distribution runs the same tests against the CNCF distribution
registry (/usr/bin/docker-registry) so the tests themselves can be debugged; cases
that distribution is known to fail are skipped on that target only
(BERTH_TEST_STRICT=1 runs them anyway, to see how it fails).

Only the Python standard library is used. Every helper follows Location headers
verbatim (relative or absolute, query string included) and never follows redirects.
"""

import gzip
import hashlib
import http.client
import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import unittest
import urllib.parse

TARGET = os.environ.get("BERTH_TEST_TARGET", "berth")
if TARGET not in ("berth", "distribution"):
    raise SystemExit("BERTH_TEST_TARGET must be 'berth' or 'distribution', not %r" % TARGET)
IS_BERTH = TARGET == "berth"
IS_DISTRIBUTION = TARGET == "distribution"
STRICT = os.environ.get("BERTH_TEST_STRICT") == "1"

# The source tree: this file is tests/integration/lib/berth_harness.py.
REPO_ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
LIB_DIR = os.path.dirname(os.path.abspath(__file__))

DISTRIBUTION_BIN = os.environ.get("BERTH_DISTRIBUTION_BIN", "/usr/bin/docker-registry")

START_TIMEOUT = 20.0  # seconds until GET /v2/ must answer
# The suites a second time on the replicas' configuration (ctest label cluster-suites,
# lib/cluster_suites.py): with PostgreSQL (BERTH_TEST_PG_DSN) and S3 (BERTH_TEST_S3_*)
# given, each berth Server is this many replicas sharing its schema and key prefix
# behind haproxy (round-robin per request); its port and base_url are haproxy's.
CLUSTER_REPLICAS = int(os.environ.get("BERTH_TEST_CLUSTER_REPLICAS") or "1")
STOP_TIMEOUT = 20.0  # seconds until SIGTERM must have ended the process
REQUEST_TIMEOUT = 60.0

# Media types.
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MT_OCI_LAYER_ND_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
MT_OCI_LAYER_ND_TAR = "application/vnd.oci.image.layer.nondistributable.v1.tar"
MT_OCI_EMPTY = "application/vnd.oci.empty.v1+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_DOCKER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
MT_OCTET = "application/octet-stream"

# What docker's legacy distribution client sends on a manifest GET (reference 1.3).
DOCKER_ACCEPT = ", ".join([
    "application/json",
    MT_DOCKER_MANIFEST,
    MT_DOCKER_LIST,
    MT_OCI_INDEX,
    MT_OCI_MANIFEST,
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
])

EMPTY_JSON = b"{}"
EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

API_VERSION_HEADER = "Docker-Distribution-API-Version"


# ---------------------------------------------------------------------------------------------
# Target selection helpers


def distribution_fails(reason):
    """Skip a test on the distribution target only: distribution is known to fail it."""
    return unittest.skipIf(IS_DISTRIBUTION and not STRICT, "distribution fails this: " + reason)


def berth_only(reason):
    """Skip a test on the distribution target: it checks berth-specific behaviour."""
    return unittest.skipIf(IS_DISTRIBUTION, "berth only: " + reason)


# ---------------------------------------------------------------------------------------------
# Digests and data


def digest_of(data, algo="sha256"):
    """Return '<algo>:<hex>' of data (bytes)."""
    return algo + ":" + hashlib.new(algo, data).hexdigest()


def digest_hex(digest):
    return digest.split(":", 1)[1]


def random_bytes(n):
    return os.urandom(n)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_berth_bin():
    path = os.environ.get("BERTH_BIN")
    if path:
        return os.path.abspath(path)  # servers run in their own directory
    build = os.environ.get("BERTH_BUILD_DIR")
    if not build:
        build = os.path.join(REPO_ROOT, "build")
    return os.path.join(build, "berth")


# ---------------------------------------------------------------------------------------------
# HTTP


class Response:
    """One HTTP response: status, headers (case-insensitive), body bytes."""

    def __init__(self, method, path, status, reason, headers, body):
        self.method = method
        self.path = path
        self.status = status
        self.reason = reason
        self.headers = headers  # http.client.HTTPMessage
        self.body = body

    def header(self, name):
        return self.headers.get(name)

    def header_all(self, name):
        return self.headers.get_all(name) or []

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def error_codes(self):
        """The codes in an OCI error body, or raise AssertionError if the shape is wrong."""
        try:
            doc = self.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise AssertionError("%s: error body is not JSON (%s): %r"
                                 % (self, exc, self.body[:300]))
        errors = doc.get("errors") if isinstance(doc, dict) else None
        if not isinstance(errors, list) or not errors:
            raise AssertionError("%s: error body lacks a non-empty 'errors' list: %r" % (self, doc))
        codes = []
        for err in doc["errors"]:
            if not isinstance(err, dict) or not isinstance(err.get("code"), str):
                raise AssertionError("%s: error entry without a string 'code': %r" % (self, err))
            if "message" in err and not isinstance(err["message"], str):
                raise AssertionError("%s: error 'message' is not a string: %r" % (self, err))
            codes.append(err["code"])
        return codes

    def __str__(self):
        return "%s %s -> %d" % (self.method, self.path, self.status)

    def describe(self):
        """Status line, headers and the start of the body, for assertion messages."""
        hdrs = "".join("\n  %s: %s" % (k, v) for k, v in self.headers.items())
        body = self.body[:400]
        return "%s%s\n  body: %r" % (self, hdrs, body)


ECR_JSON_CT = "application/x-amz-json-1.1"
ECR_TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."


class Registry:
    """HTTP client for one registry base URL (http://127.0.0.1:PORT)."""

    def __init__(self, base_url, keep_alive=False):
        self.base_url = base_url.rstrip("/")
        parsed = urllib.parse.urlsplit(self.base_url)
        self.host = parsed.hostname
        self.port = parsed.port
        self.keep_alive = keep_alive
        self._conn = None
        self._lock = threading.Lock()

    # -- plumbing ------------------------------------------------------------------------------

    def resolve(self, location, base="/v2/"):
        """Turn a Location value (an absolute URL or an absolute path, used verbatim, query
        included) into a request target on this host. A relative reference without a
        leading '/' is resolved against base."""
        if location is None:
            raise AssertionError("no Location header to follow")
        absolute = urllib.parse.urljoin(self.base_url + base, location)
        parts = urllib.parse.urlsplit(absolute)
        if (parts.hostname, parts.port) != (self.host, self.port):
            raise AssertionError("Location %r points at another host" % location)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        return target

    def _connection(self, timeout):
        if self.keep_alive and self._conn is not None:
            return self._conn
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        if self.keep_alive:
            self._conn = conn
        return conn

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method, path, headers=None, body=None, chunked=False,
                timeout=REQUEST_TIMEOUT):
        """Send one request and read the whole answer. path may be a full URL.

        body is bytes, or an iterable of bytes when chunked=True (sent with
        Transfer-Encoding: chunked). Redirects are never followed.
        """
        if path.startswith("http://") or path.startswith("https://"):
            path = self.resolve(path)
        hdrs = dict(headers or {})
        if chunked:
            hdrs.setdefault("Transfer-Encoding", "chunked")
        elif body is None and method in ("POST", "PUT", "PATCH"):
            hdrs.setdefault("Content-Length", "0")
        if not self.keep_alive:
            hdrs.setdefault("Connection", "close")
        with self._lock:
            conn = self._connection(timeout)
            try:
                try:
                    conn.request(method, path, body=body, headers=hdrs, encode_chunked=chunked)
                except (BrokenPipeError, ConnectionResetError):
                    # The server may answer (413, 400) and close before reading the whole
                    # body; its answer can still be waiting in the socket.
                    pass
                resp = conn.getresponse()
                data = resp.read()
            except http.client.IncompleteRead as exc:
                conn.close()
                self._conn = None
                raise AssertionError("%s %s -> %d: body ended after %d bytes, %d short of its "
                                     "Content-Length" % (method, path, resp.status,
                                                         len(exc.partial), exc.expected))
            except (http.client.HTTPException, OSError):
                conn.close()
                self._conn = None
                raise
            result = Response(method, path, resp.status, resp.reason, resp.headers, data)
            if not self.keep_alive or resp.will_close:
                conn.close()
                self._conn = None
        return result

    @staticmethod
    def with_query(target, *pairs, **params):
        """Append query parameters to a target that may already carry a query string.
        pairs are (key, value) tuples, for repeated keys such as tag=a&tag=b."""
        items = list(pairs) + list(params.items())
        if not items:
            return target
        sep = "&" if "?" in target else "?"
        return target + sep + urllib.parse.urlencode(items)

    # -- simple endpoints ----------------------------------------------------------------------

    def ping(self):
        return self.request("GET", "/v2/")

    def ecr(self, op, body, timeout=REQUEST_TIMEOUT):
        """A call of ECR's JSON API: POST / with body (a dict) as JSON and op in
        X-Amz-Target, unsigned."""
        data = json.dumps(body).encode()
        return self.request("POST", "/", body=data, timeout=timeout,
                            headers={"Content-Type": ECR_JSON_CT,
                                     "X-Amz-Target": ECR_TARGET_PREFIX + op,
                                     "Content-Length": str(len(data))})

    def get(self, path, headers=None):
        return self.request("GET", path, headers=headers)

    def head(self, path, headers=None):
        return self.request("HEAD", path, headers=headers)

    def delete(self, path, headers=None):
        return self.request("DELETE", path, headers=headers)

    def blob_path(self, repo, digest):
        return "/v2/%s/blobs/%s" % (repo, digest)

    def manifest_path(self, repo, ref):
        return "/v2/%s/manifests/%s" % (repo, ref)

    def get_blob(self, repo, digest, headers=None):
        return self.get(self.blob_path(repo, digest), headers=headers)

    def head_blob(self, repo, digest):
        return self.head(self.blob_path(repo, digest))

    def delete_blob(self, repo, digest):
        return self.delete(self.blob_path(repo, digest))

    def tags(self, repo, **params):
        return self.get(self.with_query("/v2/%s/tags/list" % repo, **params))

    def catalog(self, **params):
        return self.get(self.with_query("/v2/_catalog", **params))

    def referrers(self, repo, digest, **params):
        return self.get(self.with_query("/v2/%s/referrers/%s" % (repo, digest), **params))

    # -- uploads ---------------------------------------------------------------------------------

    def start_upload(self, repo, **params):
        """POST /v2/<repo>/blobs/uploads/ with no body."""
        target = self.with_query("/v2/%s/blobs/uploads/" % repo, **params)
        return self.request("POST", target, headers={"Content-Length": "0"})

    def patch_chunk(self, location, data, start=None, content_range=True):
        """PATCH one chunk to an upload Location. With content_range, send
        Content-Range: start-end (start defaults to 0)."""
        hdrs = {"Content-Type": MT_OCTET, "Content-Length": str(len(data))}
        if content_range:
            first = start or 0
            hdrs["Content-Range"] = "%d-%d" % (first, first + len(data) - 1)
        return self.request("PATCH", self.resolve(location), headers=hdrs, body=data)

    def patch_stream(self, location, data, piece=65536):
        """PATCH the data with chunked transfer encoding and no Content-Range."""
        pieces = [data[i:i + piece] for i in range(0, len(data), piece)] or [b""]
        return self.request("PATCH", self.resolve(location), headers={"Content-Type": MT_OCTET},
                            body=iter(pieces), chunked=True)

    def finish_upload(self, location, digest, data=b"", start=None):
        """PUT <location>?digest=... with an optional last chunk (with Content-Range
        when start is given)."""
        target = self.with_query(self.resolve(location), digest=digest)
        hdrs = {"Content-Type": MT_OCTET, "Content-Length": str(len(data))}
        if start is not None and data:
            hdrs["Content-Range"] = "%d-%d" % (start, start + len(data) - 1)
        return self.request("PUT", target, headers=hdrs, body=data)

    def push_blob(self, repo, data, mode="post_put", algo="sha256", digest=None,
                  chunk_size=None, algo_param=None):
        """Push data with one upload mode and return the final Response.

        mode: post_put (POST, then PUT with the body), post_only (single POST with
        ?digest=), chunked (PATCHes with Content-Range, empty final PUT),
        chunked_put_last (PATCHes, the last chunk in the PUT), stream (PATCH with
        chunked transfer encoding, empty PUT). digest defaults to the real digest;
        algo_param adds ?digest-algorithm= to the POST. Intermediate answers must be
        202, else AssertionError.
        """
        digest = digest or digest_of(data, algo)
        params = {}
        if algo_param:
            params["digest-algorithm"] = algo_param
        if mode == "post_only":
            target = self.with_query("/v2/%s/blobs/uploads/" % repo, digest=digest, **params)
            return self.request("POST", target, body=data,
                                headers={"Content-Type": MT_OCTET,
                                         "Content-Length": str(len(data))})
        resp = self.start_upload(repo, **params)
        expect_status(resp, 202)
        loc = resp.header("Location")
        if mode == "post_put":
            return self.finish_upload(loc, digest, data)
        if mode == "stream":
            resp = self.patch_stream(loc, data)
            expect_status(resp, 202)
            return self.finish_upload(resp.header("Location"), digest)
        if mode in ("chunked", "chunked_put_last"):
            size = chunk_size or max(1, len(data) // 3 + 1)
            chunks = [(i, data[i:i + size]) for i in range(0, len(data), size)]
            last = None
            if mode == "chunked_put_last" and chunks:
                last = chunks.pop()
            for start, chunk in chunks:
                resp = self.patch_chunk(loc, chunk, start)
                expect_status(resp, 202)
                loc = resp.header("Location")
            if last is not None:
                return self.finish_upload(loc, digest, last[1], start=last[0])
            return self.finish_upload(loc, digest)
        raise ValueError("unknown upload mode %r" % mode)

    def ensure_blob(self, repo, data, algo="sha256"):
        """Push data (POST+PUT) and require 201; return its digest."""
        resp = self.push_blob(repo, data, algo=algo)
        expect_status(resp, 201)
        return digest_of(data, algo)

    # -- manifests -------------------------------------------------------------------------------

    def put_manifest(self, repo, ref, body, media_type, tags=()):
        """PUT a manifest; tags become ?tag= parameters."""
        target = self.manifest_path(repo, ref)
        if tags:
            target = self.with_query(target, *[("tag", t) for t in tags])
        hdrs = {"Content-Type": media_type, "Content-Length": str(len(body))}
        return self.request("PUT", target, headers=hdrs, body=body)

    def get_manifest(self, repo, ref, accept=None, method="GET"):
        hdrs = {}
        if accept is not None:
            hdrs["Accept"] = accept
        return self.request(method, self.manifest_path(repo, ref), headers=hdrs)

    def push_image(self, repo, image, tag=None, mode="post_put"):
        """Push every blob of image (Image or Index, children first) and its manifest,
        by tag when given, else by digest. Returns the manifest PUT Response."""
        for child in getattr(image, "children", []):
            resp = self.push_image(repo, child, mode=mode)
            expect_status(resp, 201)
        for data in getattr(image, "blobs", {}).values():
            resp = self.push_blob(repo, data, mode=mode, algo=image.algo)
            expect_status(resp, 201)
        return self.put_manifest(repo, tag or image.digest, image.manifest, image.media_type)


def expect_status(resp, *statuses):
    if resp.status not in statuses:
        raise AssertionError("expected %s, got:\n%s" % (
            " or ".join(str(s) for s in statuses), resp.describe()))
    return resp


# ---------------------------------------------------------------------------------------------
# Images


def make_layer(files, compress=True):
    """A tar (gzip-compressed by default) of {name: bytes}, deterministic bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 1700000000
            info.mode = 0o644
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    if not compress:
        return tar_bytes, tar_bytes
    return gzip.compress(tar_bytes, mtime=0), tar_bytes


def canonical_json(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode("utf-8")


class Image:
    """A manifest and the blobs it references. blobs: {digest: bytes}."""

    def __init__(self, manifest_obj=None, blobs=None, media_type=MT_OCI_MANIFEST,
                 manifest_bytes=None, algo="sha256"):
        self.algo = algo
        self.blobs = dict(blobs or {})
        self.media_type = media_type
        self.children = []
        self.obj = manifest_obj
        self.manifest = manifest_bytes if manifest_bytes is not None else canonical_json(
            manifest_obj)
        self.digest = digest_of(self.manifest, algo)

    def descriptor(self, **extra):
        desc = {"mediaType": self.media_type, "digest": self.digest, "size": len(self.manifest)}
        desc.update(extra)
        return desc

    @property
    def config_digest(self):
        return self.obj["config"]["digest"]

    @property
    def layer_digests(self):
        return [layer["digest"] for layer in self.obj.get("layers", [])]


class Index(Image):
    """An index / manifest list over child Images (pushed first by push_image)."""

    def __init__(self, children, media_type=MT_OCI_INDEX, platforms=None, extra=None,
                 algo="sha256", manifest_bytes=None):
        descs = []
        for i, child in enumerate(children):
            desc = child.descriptor()
            if platforms and platforms[i]:
                desc["platform"] = platforms[i]
            descs.append(desc)
        obj = {"schemaVersion": 2, "mediaType": media_type, "manifests": descs}
        obj.update(extra or {})
        super().__init__(obj, {}, media_type, manifest_bytes=manifest_bytes, algo=algo)
        self.children = list(children)


def blob_descriptor(media_type, content, algo="sha256", **extra):
    desc = {"mediaType": media_type, "digest": digest_of(content, algo), "size": len(content)}
    desc.update(extra)
    return desc


def build_image(layer_count=2, layer_size=4096, docker=False, arch="amd64", annotations=None,
                extra=None, algo="sha256", compress=True, config_override=None):
    """A runnable-looking image: a config plus layer_count tar(+gzip) layers of random
    files. docker=True gives Docker schema 2 media types."""
    layers = []
    diff_ids = []
    blobs = {}
    for i in range(layer_count):
        files = {"layer%d/data.bin" % i: random_bytes(layer_size),
                 "layer%d/id.txt" % i: secrets.token_hex(16).encode()}
        blob, tar_bytes = make_layer(files, compress=compress)
        diff_ids.append(digest_of(tar_bytes, "sha256"))
        if docker:
            mt = MT_DOCKER_LAYER
        else:
            mt = MT_OCI_LAYER_GZIP if compress else MT_OCI_LAYER_TAR
        layers.append(blob_descriptor(mt, blob, algo))
        blobs[digest_of(blob, algo)] = blob
    config_obj = {
        "architecture": arch,
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "created": "2024-01-01T00:00:00Z",
        "history": [{"created": "2024-01-01T00:00:00Z", "comment": "itest"}
                    for _ in range(layer_count)],
    }
    config = config_override if config_override is not None else canonical_json(config_obj)
    blobs[digest_of(config, algo)] = config
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_DOCKER_MANIFEST if docker else MT_OCI_MANIFEST,
        "config": blob_descriptor(MT_DOCKER_CONFIG if docker else MT_OCI_CONFIG, config, algo),
        "layers": layers,
    }
    if annotations:
        manifest["annotations"] = annotations
    manifest.update(extra or {})
    return Image(manifest, blobs, manifest["mediaType"], algo=algo)


def build_artifact(artifact_type="application/vnd.example.sbom.v1+json", subject=None,
                   annotations=None, layer_media_type="application/vnd.example.data.v1",
                   layer_count=1, algo="sha256"):
    """An OCI artifact manifest: empty config, artifactType, optional subject."""
    blobs = {digest_of(EMPTY_JSON, algo): EMPTY_JSON}
    layers = []
    for _ in range(layer_count):
        data = random_bytes(256)
        layers.append(blob_descriptor(layer_media_type, data, algo))
        blobs[digest_of(data, algo)] = data
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": blob_descriptor(MT_OCI_EMPTY, EMPTY_JSON, algo, data="e30="),
        "layers": layers,
    }
    if subject is not None:
        manifest["subject"] = subject
    if annotations:
        manifest["annotations"] = annotations
    return Image(manifest, blobs, MT_OCI_MANIFEST, algo=algo)


def write_oci_layout(directory, images_by_tag):
    """Write an OCI image layout holding the given {tag: Image-or-Index}."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    manifests = []

    def put(digest, data):
        alg, hexpart = digest.split(":", 1)
        d = os.path.join(directory, "blobs", alg)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, hexpart), "wb") as f:
            f.write(data)

    def put_image(img):
        for child in img.children:
            put_image(child)
        for digest, data in img.blobs.items():
            put(digest, data)
        put(img.digest, img.manifest)

    for tag, img in images_by_tag.items():
        put_image(img)
        manifests.append(img.descriptor(
            annotations={"org.opencontainers.image.ref.name": tag}))
    index = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": manifests}
    with open(os.path.join(directory, "index.json"), "wb") as f:
        f.write(canonical_json(index))


def read_oci_layout_blob(directory, digest):
    alg, hexpart = digest.split(":", 1)
    with open(os.path.join(directory, "blobs", alg, hexpart), "rb") as f:
        return f.read()


# ---------------------------------------------------------------------------------------------
# Servers


def _yaml_str(value):
    return json.dumps(str(value))  # a JSON string is a valid YAML scalar


def postgres_env(name):
    """With BERTH_TEST_PG_DSN set (pg_fixture.py running the suite on PostgreSQL), the
    environment that puts a server's metadata in a schema of its own, named after name."""
    import pg_fixture
    dsn = pg_fixture.schema_dsn(os.environ["BERTH_TEST_PG_DSN"], os.path.basename(name))
    return pg_fixture.berth_env(dsn)


def s3_env(name):
    """With BERTH_TEST_S3_ENDPOINT set (swift_fixture.py running the suite on S3), the
    environment that puts a server's blobs in the fixture's bucket under a key prefix of its
    own, named after name."""
    import swift_fixture
    env = os.environ
    return swift_fixture.berth_env(env["BERTH_TEST_S3_ENDPOINT"], env["BERTH_TEST_S3_REGION"],
                                   env["BERTH_TEST_S3_BUCKET"], os.path.basename(name) + "/",
                                   env["BERTH_TEST_S3_ACCESS_KEY"],
                                   env["BERTH_TEST_S3_SECRET_KEY"])


class Server:
    """One registry process on 127.0.0.1:<free port> with its own temporary directory.

    config: berth's JSON config as a dict (written to a file and passed with --config);
    env: extra environment variables; args: extra arguments after 'serve'.
    Layout of the temporary directory: root/ (the --root), server.log (stdout+stderr),
    config.json or config.yml.
    """

    def __init__(self, config=None, env=None, args=None, target=TARGET, listen_host="127.0.0.1",
                 listen_flag=True, root_flag=True, port=None):
        self.target = target
        self.config = config
        self.env = dict(env or {})
        self.args = list(args or [])
        self.listen_host = listen_host
        # Without listen_flag the address comes from the config file or the environment,
        # and port must say where the server will be.
        self.listen_flag = listen_flag
        self.root_flag = root_flag
        self.tmp = tempfile.mkdtemp(prefix="berth-itest-")
        self.root = os.path.join(self.tmp, "root")
        os.makedirs(self.root)
        self.log_path = os.path.join(self.tmp, "server.log")
        self._port = port
        self.port_given = port is not None
        pg = target == "berth" and os.environ.get("BERTH_TEST_PG_DSN") and \
            "BERTH_META_BACKEND" not in self.env
        s3 = target == "berth" and os.environ.get("BERTH_TEST_S3_ENDPOINT") and \
            "BERTH_STORAGE_BACKEND" not in self.env
        if pg:
            self.env.update(postgres_env(self.tmp))
        if s3:
            self.env.update(s3_env(self.tmp))
        # Replicas: only for a server on the fixtures' PostgreSQL and S3 both, listening
        # where --listen says on IPv4 loopback (a test giving its own backends, or a
        # listen address in its configuration, tests one process).
        self.replicas = CLUSTER_REPLICAS if (pg and s3 and listen_flag and
                                              listen_host == "127.0.0.1" and
                                              not self.port_given) else 1
        self.peers = []  # the other replicas (Servers of one process each)
        # the balancer's port, chosen before the replicas start: their public_url
        self.front_port = free_port() if self.replicas > 1 else None
        self.balancer = None  # haproxy in front of this process and the peers
        self.proc = None
        self._log = None
        self.starts = 0

    @property
    def port(self):
        """The port clients use: this process's, or with replicas the balancer's."""
        return self.balancer.port if self.balancer is not None else self._port

    @port.setter
    def port(self, value):
        self._port = value

    @property
    def connect_host(self):
        """The address clients reach the server at: 127.0.0.1, or the IPv6 address that a
        bracketed listen_host ("[::1]") names."""
        return self.listen_host.strip("[]") if self.listen_host.startswith("[") else "127.0.0.1"

    @property
    def base_url(self):
        host = self.connect_host
        return "http://%s:%d" % ("[%s]" % host if ":" in host else host, self.port)

    def registry(self, keep_alive=False):
        return Registry(self.base_url, keep_alive=keep_alive)

    # -- command lines -------------------------------------------------------------------------

    def config_file(self):
        """Write self.config to <tmp>/config.json and return its path; None without one."""
        if self.config is None:
            return None
        path = os.path.join(self.tmp, "config.json")
        with open(path, "w") as f:
            json.dump(self.config, f)
        return path

    def _berth_command(self):
        cmd = [find_berth_bin(), "serve"]
        if self.listen_flag:
            cmd += ["--listen", "%s:%d" % (self.listen_host, self._port)]
        if self.root_flag:
            cmd += ["--root", self.root]
        config = self.config_file()
        if config is not None:
            cmd += ["--config", config]
        return cmd + self.args

    def _distribution_command(self):
        delete_enabled = True
        for section, values in (self.config or {}).items():
            for key, value in values.items() if isinstance(values, dict) else [(None, values)]:
                if (section, key) == ("storage", "delete_enabled"):
                    delete_enabled = bool(value)
                else:
                    raise unittest.SkipTest("distribution has no equivalent of berth's %s.%s"
                                            % (section, key))
        path = os.path.join(self.tmp, "config.yml")
        with open(path, "w") as f:
            f.write("\n".join([
                "version: 0.1",
                "log:",
                "  level: info",
                "  accesslog:",
                "    disabled: false",
                "storage:",
                "  filesystem:",
                "    rootdirectory: " + _yaml_str(self.root),
                "  delete:",
                "    enabled: " + ("true" if delete_enabled else "false"),
                "  maintenance:",
                "    uploadpurging:",
                "      enabled: false",
                "http:",
                "  addr: " + _yaml_str("%s:%d" % (self.listen_host, self.port)),
                "  secret: " + _yaml_str("itest-secret-" + os.path.basename(self.tmp)),
                "  draintimeout: 5s",
                "",
            ]))
        return [DISTRIBUTION_BIN, "serve", path]

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, reuse_port=False):
        """Start the process and wait until GET /v2/ answers (any status)."""
        assert self.proc is None, "server already running"
        attempts = 3
        if not self.listen_flag:
            assert self._port, "without --listen the caller must give the port"
            reuse_port = True
        if self.replicas > 1 and self._port is not None:
            reuse_port = True  # the balancer knows the replicas by their ports
        for attempt in range(attempts):
            if self._port is None or attempt > 0 or not (reuse_port or self.port_given):
                self._port = free_port()
            cmd = self._berth_command() if self.target == "berth" else \
                self._distribution_command()
            env = dict(os.environ)
            env.update(self.env)
            env.update(self._public_url_env())
            self._log = open(self.log_path, "ab")
            self._log.write(("\n=== start %d: %s\n" % (self.starts, " ".join(cmd))).encode())
            self._log.flush()
            self.starts += 1
            try:
                self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                             stderr=self._log, env=env, cwd=self.tmp)
            except OSError as exc:
                self._log.close()
                raise AssertionError("cannot run %s: %s" % (cmd[0], exc))
            err = self._wait_ready()
            if err is None:
                if self.replicas > 1:
                    self._start_replicas()
                return self
            rc = self.proc.poll()
            self._reap()
            in_use = "in use" in self.log_tail(20).lower()
            if rc is not None and in_use and attempt + 1 < attempts and self.listen_flag:
                continue  # lost a race for the port: the next attempt picks another one
            raise AssertionError("%s did not start: %s\n--- server log tail ---\n%s"
                                 % (self.target, err, self.log_tail()))
        raise AssertionError("unreachable")

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                return "exited with status %d before answering GET /v2/" % rc
            try:
                conn = http.client.HTTPConnection(self.connect_host, self._port, timeout=2)
                conn.request("GET", "/v2/", headers={"Connection": "close"})
                conn.getresponse().read()
                conn.close()
                return None
            except (OSError, http.client.HTTPException):
                time.sleep(0.05)
        self.proc.kill()
        return "GET /v2/ got no answer within %.0f s" % START_TIMEOUT

    def _public_url_env(self):
        """With replicas, public_url is the balancer's (as docs/scale-out.md configures
        it), unless the test sets its own."""
        if self.replicas <= 1 or "BERTH_PUBLIC_URL" in self.env or \
                "public_url" in (self.config or {}):
            return {}
        return {"BERTH_PUBLIC_URL": "http://127.0.0.1:%d" % self.front_port}

    def _start_replicas(self):
        """Start the other replicas with this one's configuration, environment and
        arguments as they are now, and haproxy in front of all (kept across a stop and a
        start, on the same port, while the replicas keep theirs)."""
        import cluster  # imports this module
        while len(self.peers) < self.replicas - 1:
            peer = Server(env=self.env, root_flag=self.root_flag)
            peer.replicas = 1
            self.peers.append(peer)
        for peer in self.peers:
            peer.config = self.config
            peer.env = dict(self.env, **self._public_url_env())
            # one upstream secrets key for all (docs/scale-out.md): this replica's file
            if "BERTH_PULL_THROUGH_SECRETS_KEY" not in self.env:
                peer.env.setdefault("BERTH_PULL_THROUGH_SECRETS_KEY_FILE",
                                    os.path.join(self.root, "secrets.key"))
            peer.args = list(self.args)
            if peer.proc is None:
                peer.start(reuse_port=peer._port is not None)
        backends = ["127.0.0.1:%d" % s._port for s in [self] + self.peers]
        if self.balancer is not None and self.balancer.backends != backends:
            self.balancer.stop()
            self.balancer = None
        if self.balancer is None:
            self.balancer = cluster.Haproxy(backends).start(port=self.front_port)
            self.front_port = self.balancer.port
        for i in range(len(backends)):
            self.balancer.wait_status("r%d" % i, "UP", timeout=START_TIMEOUT)

    def _stop_peers(self, kill=False):
        for peer in self.peers:
            if kill:
                peer.kill9()
            else:
                peer.stop()

    def _reap(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM; the process must exit with status 0 within timeout."""
        self._stop_peers()
        if self.proc is None:
            return 0
        proc = self.proc
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._reap()
            raise AssertionError("%s did not exit within %.0f s of SIGTERM\n%s"
                                 % (self.target, timeout, self.log_tail()))
        self._reap()
        if rc != 0:
            raise AssertionError("%s exited with status %d after SIGTERM (want 0)\n%s"
                                 % (self.target, rc, self.log_tail()))
        return rc

    def kill9(self):
        """SIGKILL, as a crash; the root is left as the process left it."""
        self._stop_peers(kill=True)
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self._reap()

    def restart_after_crash(self):
        self.kill9()
        return self.start(reuse_port=True)

    def cleanup(self):
        for peer in self.peers:
            peer.cleanup()
        if self.balancer is not None:
            self.balancer.stop()
            self.balancer = None
        self._reap()
        if os.environ.get("BERTH_TEST_KEEP") == "1":
            sys.stderr.write("kept %s (BERTH_TEST_KEEP=1)\n" % self.tmp)
            return
        shutil.rmtree(self.tmp, ignore_errors=True)

    def log_text(self):
        """The process's log; with replicas, each replica's log after the other."""
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            text = ""
        return text + "".join(peer.log_text() for peer in self.peers)

    def log_tail(self, lines=60):
        return "\n".join(self.log_text().splitlines()[-lines:])


def run_berth(args, env=None, timeout=20, server=None, split=False):
    """Run the berth binary once (not as a managed server): `berth ARGS`, followed with a
    server by --root <its root> and, when it has a config, --config <that config>. Returns
    (exit status, stdout + stderr) as text, or with split (exit status, stdout, stderr).
    A process still running after timeout is killed and reported as an AssertionError."""
    full_env = dict(os.environ)
    if server is not None:
        full_env.update(server.env)
    full_env.update(env or {})
    cmd = [find_berth_bin()] + list(args)
    if server is not None:
        cmd += ["--root", server.root]
        config = server.config_file()
        if config is not None:
            cmd += ["--config", config]
    try:
        proc = subprocess.run(cmd, env=full_env, capture_output=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError("%s still running after %d s; output: %r"
                             % (" ".join(cmd), timeout, (exc.stderr or b"")[-2000:]))
    out = proc.stdout.decode("utf-8", "replace")
    err = proc.stderr.decode("utf-8", "replace")
    if split:
        return proc.returncode, out, err
    return proc.returncode, out + err


def proc_number(pid, field="VmRSS", name="status"):
    """N of the "Field: N" line of /proc/<pid>/<name>: VmRSS and VmHWM of status in KiB,
    wchar of io in bytes."""
    with open("/proc/%d/%s" % (pid, name)) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/%s" % (field, pid, name))


def read_raw_response(sock):
    """One HTTP/1.1 response read from a raw socket (no body, or a Content-Length one):
    (status, headers dict with lower-case names, body)."""
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("connection closed before a response: %r" % got)
        got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(min(length - len(body), 65536))
        if not chunk:
            break  # closed early: the caller sees the short body
        body += chunk
    return int(lines[0].split()[1]), headers, body[:length]


def wait_until(predicate, timeout, interval=0.05, what="condition", check=True):
    """Call predicate every interval seconds until it returns something true, and return
    that. After timeout seconds: an AssertionError naming what, or with check=False the
    last (false) value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            if not check:
                return value
            raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def wait_draining(remaining, stall_timeout, interval=0.2, what="work to finish"):
    """Wait until remaining() (a count of work left) reaches 0. Fails only when the count has
    not fallen for stall_timeout seconds: slow progress on a loaded machine is still progress,
    a stalled one is the failure."""
    left = remaining()
    stalled_since = time.monotonic()
    while left:
        time.sleep(interval)
        now_left = remaining()
        if now_left < left:
            stalled_since = time.monotonic()
        elif time.monotonic() - stalled_since > stall_timeout:
            raise AssertionError("no progress for %.0f s waiting for %s (%d left)"
                                 % (stall_timeout, what, now_left))
        left = now_left


# ---------------------------------------------------------------------------------------------
# Test base class


class LogsOnFailure:
    """A unittest.TestCase mixin (listed before TestCase): a test that fails or errs prints,
    under its traceback, what dump_logs() shows. By default: the logs of the PostgreSQL
    (self.pg) and S3 (self.s3) fixtures the class started, then the last server_log_lines
    of berth's log (self.server)."""

    server_log_lines = 60

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        out = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            self.dump_logs()
        return out

    def dump_logs(self):
        pg = getattr(self, "pg", None)
        if pg is not None:
            pg.dump_log()
        s3 = getattr(self, "s3", None)
        if s3 is not None:
            s3.dump_logs()
        server = getattr(self, "server", None)
        if server is not None:
            print("\n--- server log tail ---\n%s" % server.log_tail(self.server_log_lines))


class ServerTestCase(LogsOnFailure, unittest.TestCase):
    """Each subclass gets its own server (started in setUpClass, stopped with SIGTERM
    and exit status 0 asserted in tearDownClass) and a Registry client in cls.reg.
    On a failing test the tail of the server log is printed."""

    server_config = None
    server_env = None
    _repo_counter = 0

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = Server(config=cls.server_config, env=cls.server_env)
        cls.addClassCleanup(cls.server.cleanup)
        cls.server.start()
        cls.reg = cls.server.registry()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        super().tearDownClass()

    def dump_logs(self):
        server = getattr(type(self), "server", None)
        if server is not None:
            sys.stderr.write("\n--- %s: server log tail (%s) ---\n%s\n--- end of log ---\n"
                             % (self.id(), server.log_path, server.log_tail()))

    # -- names -------------------------------------------------------------------------------------

    def repo(self, suffix=""):
        """A fresh repository name for this test: itest/<method>-<n>[suffix]."""
        ServerTestCase._repo_counter += 1
        method = self._testMethodName.lower().replace("test_", "", 1)
        clean = "".join(c if c.isalnum() else "-" for c in method).strip("-")
        while "--" in clean:
            clean = clean.replace("--", "-")
        return "itest/%s-%d%s" % (clean[:60], ServerTestCase._repo_counter, suffix)

    # -- assertions --------------------------------------------------------------------------------

    def assertStatus(self, resp, *statuses):
        if resp.status not in statuses:
            self.fail("expected %s, got:\n%s" % (" or ".join(map(str, statuses)),
                                                 resp.describe()))
        return resp

    def assertError(self, resp, status, *codes):
        """resp has the given status and an OCI error body whose first code is one of codes."""
        self.assertStatus(resp, status)
        if resp.method == "HEAD":
            return resp
        found = resp.error_codes()
        if codes and found[0] not in codes:
            self.fail("expected error code %s, got %s:\n%s" % (" or ".join(codes), found,
                                                               resp.describe()))
        return resp

    def assertHeader(self, resp, name, value):
        got = resp.header(name)
        if got != value:
            self.fail("header %s: expected %r, got %r\n%s" % (name, value, got, resp.describe()))

    def assertHasHeader(self, resp, name):
        got = resp.header(name)
        if not got:
            self.fail("header %s missing\n%s" % (name, resp.describe()))
        return got

    def assertRangeHeader(self, resp, last):
        """Upload Range header: '0-<last>' ('0-0' for an empty session), never 'bytes='."""
        want = "0-%d" % max(last, 0)
        got = resp.header("Range")
        if got != want:
            self.fail("Range: expected %r, got %r\n%s" % (want, got, resp.describe()))

    def assertBlob(self, repo, data, algo="sha256"):
        """GET and HEAD of the blob give its bytes, length and digest."""
        digest = digest_of(data, algo)
        resp = self.reg.get_blob(repo, digest)
        self.assertStatus(resp, 200)
        self.assertEqual(resp.body, data, "blob bytes differ for %s" % digest)
        self.assertHeader(resp, "Docker-Content-Digest", digest)
        self.assertHeader(resp, "Content-Length", str(len(data)))
        resp = self.reg.head_blob(repo, digest)
        self.assertStatus(resp, 200)
        self.assertEqual(resp.body, b"")
        self.assertHeader(resp, "Docker-Content-Digest", digest)
        self.assertHeader(resp, "Content-Length", str(len(data)))

    def assertManifest(self, repo, ref, image, method="GET"):
        """The manifest comes back byte-identical with its stored type and digest."""
        resp = self.reg.get_manifest(repo, ref, method=method,
                                     accept=", ".join([image.media_type, MT_OCI_MANIFEST,
                                                       MT_OCI_INDEX]))
        self.assertStatus(resp, 200)
        if method == "GET":
            self.assertEqual(resp.body, image.manifest, "manifest bytes differ")
        else:
            self.assertEqual(resp.body, b"")
        self.assertHeader(resp, "Content-Type", image.media_type)
        self.assertHeader(resp, "Content-Length", str(len(image.manifest)))
        self.assertHeader(resp, "Docker-Content-Digest", image.digest)
        return resp

    def push_image_ok(self, repo, image, tag=None, mode="post_put"):
        resp = self.reg.push_image(repo, image, tag=tag, mode=mode)
        self.assertStatus(resp, 201)
        self.assertHeader(resp, "Docker-Content-Digest", image.digest)
        return resp


def main():
    """Run the tests of the calling module, verbosely."""
    unittest.main(module="__main__", verbosity=2, buffer=False)
