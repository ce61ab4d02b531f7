"""A real S3-compatible object store for tests: OpenStack Swift from Debian
(swift-proxy, -account, -container, -object, and memcached) as a single node
with the s3api middleware and tempauth, configured in a temporary directory
(swift_dir with its own swift.conf and rings built by swift-ring-builder, one
device directory), on free loopback ports, stopped and removed after.

s3api checks SigV4 as S3 does; the credentials are tempauth's: access key
"berth:tester" (account:user), secret "testing", region us-east-1, path-style
addressing (http://127.0.0.1:PORT/BUCKET/KEY). The fixture creates one bucket.

As a library:
    with SwiftServer() as s3:
        s3.endpoint, s3.access_key, s3.secret_key, s3.region, s3.bucket
        s3.env()    # the BERTH_TEST_S3_* variables below
As a command, running another with BERTH_TEST_S3_ENDPOINT, _ACCESS_KEY,
_SECRET_KEY, _REGION and _BUCKET set (how ctest runs the blob store's unit
tests on S3, and the integration suites' S3 pass):
    python3 swift_fixture.py PROGRAM [ARGS...]
"""

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

# Swift is Debian's python3-swift: it runs under Debian's Python whatever
# python3 comes first on PATH.
SWIFT_PYTHON = "/usr/bin/python3"
ACCESS_KEY = "berth:tester"
SECRET_KEY = "testing"
REGION = "us-east-1"
BUCKET = "berth-test"
SERVERS = ("account", "container", "object")


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tool(name):
    path = shutil.which(name) or os.path.join("/usr/bin", name)
    if not os.path.exists(path):
        raise RuntimeError("%s not found (scripts/setup-deps.sh installs swift-proxy, "
                           "swift-account, swift-container, swift-object and memcached)" % name)
    return path


def berth_env(endpoint, region, bucket, prefix, access_key, secret_key):
    """The environment of a berth whose blobs are in an S3 bucket (path-style) under a
    key prefix, with the credentials from the environment as AWS's tools take them."""
    return {
        "BERTH_STORAGE_BACKEND": "s3",
        "BERTH_STORAGE_S3_ENDPOINT": endpoint,
        "BERTH_STORAGE_S3_REGION": region,
        "BERTH_STORAGE_S3_BUCKET": bucket,
        "BERTH_STORAGE_S3_PREFIX": prefix,
        "BERTH_STORAGE_S3_PATH_STYLE": "true",
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
    }


class SwiftServer:
    def __init__(self, bucket=BUCKET):
        self.dir = None
        self.procs = {}
        self.ports = {}
        self.bucket = bucket
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.region = REGION

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.ports["proxy"]

    def env(self):
        return {
            "BERTH_TEST_S3_ENDPOINT": self.endpoint,
            "BERTH_TEST_S3_ACCESS_KEY": self.access_key,
            "BERTH_TEST_S3_SECRET_KEY": self.secret_key,
            "BERTH_TEST_S3_REGION": self.region,
            "BERTH_TEST_S3_BUCKET": self.bucket,
        }

    def _write(self, name, text):
        with open(os.path.join(self.dir, name), "w") as f:
            f.write(text)

    def _configure(self):
        user = pwd.getpwuid(os.geteuid()).pw_name
        devices = os.path.join(self.dir, "devices")
        os.makedirs(os.path.join(devices, "d1"))
        self._write("swift.conf", """[swift-hash]
swift_hash_path_suffix = berth-test
swift_hash_path_prefix = berth-test
[storage-policy:0]
name = Policy-0
default = yes
[swift-constraints]
max_file_size = 5368709122
""")
        common = """[DEFAULT]
bind_ip = 127.0.0.1
bind_port = %%d
workers = 0
user = %s
swift_dir = %s
devices = %s
mount_check = false
log_name = %%s
log_level = WARNING
""" % (user, self.dir, devices)
        for s in SERVERS:
            self._write("%s-server.conf" % s, (common % (self.ports[s], s)) + """
[pipeline:main]
pipeline = %s-server
[app:%s-server]
use = egg:swift#%s
""" % (s, s, s) + ("[%s-replicator]\n[%s-updater]\n[%s-auditor]\n" % (s, s, s)))
        self._write("proxy-server.conf", (common % (self.ports["proxy"], "proxy")) + """
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:%d
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:s3api]
use = egg:swift#s3api
location = %s
s3_acl = false
check_bucket_owner = false
[filter:tempauth]
use = egg:swift#tempauth
reseller_prefix = AUTH_
user_%s = %s .admin
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
min_segment_size = 1
[filter:dlo]
use = egg:swift#dlo
""" % (self.ports["memcached"], self.region, ACCESS_KEY.replace(":", "_"), SECRET_KEY))

    def _build_rings(self):
        builder = _tool("swift-ring-builder")
        for s in SERVERS:
            path = os.path.join(self.dir, "%s.builder" % s)
            for args in (["create", "6", "1", "1"],
                         ["add", "r1z1-127.0.0.1:%d/d1" % self.ports[s], "100"],
                         ["rebalance"]):
                out = subprocess.run([SWIFT_PYTHON, builder, path] + args, cwd=self.dir,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                # rebalance exits 1 with a warning on a one-device ring
                if out.returncode not in (0, 1):
                    raise RuntimeError("swift-ring-builder %s %s: %s" % (
                        s, " ".join(args), out.stdout.decode(errors="replace")))
            if not os.path.exists(os.path.join(self.dir, "%s.ring.gz" % s)):
                raise RuntimeError("swift-ring-builder wrote no %s ring" % s)

    def _spawn(self, name, argv):
        log = open(os.path.join(self.dir, "%s.log" % name), "wb")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, cwd=self.dir)
        log.close()

    def _wait_ready(self, name, url, deadline):
        """Until url answers 200 (the server is serving), or the process exits."""
        while True:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise RuntimeError("%s exited with %s" % (name, proc.returncode))
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("%s did not answer %s" % (name, url))
            time.sleep(0.05)

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="berth-swift-")
        try:
            for s in SERVERS + ("proxy", "memcached"):
                self.ports[s] = _free_port()
            self._configure()
            self._build_rings()
            mc = ["memcached", "-l", "127.0.0.1", "-p", str(self.ports["memcached"]), "-U", "0",
                  "-m", "16"]
            if os.geteuid() == 0:
                mc += ["-u", "nobody"]
            self._spawn("memcached", [_tool("memcached")] + mc[1:])
            for s in SERVERS:
                self._spawn(s, [SWIFT_PYTHON, _tool("swift-%s-server" % s),
                                os.path.join(self.dir, "%s-server.conf" % s)])
            self._spawn("proxy", [SWIFT_PYTHON, _tool("swift-proxy-server"),
                                  os.path.join(self.dir, "proxy-server.conf")])
            deadline = time.monotonic() + 120
            for s in SERVERS:
                # The storage servers answer a REPLICATE-less GET /healthcheck
                # only with the middleware; their recon-free root answers 400.
                self._wait_listening(s, deadline)
            self._wait_ready("proxy", self.endpoint + "/healthcheck", deadline)
            self._create_bucket()
        except Exception:
            self.dump_logs()
            self.stop()
            raise
        return self

    def _wait_listening(self, name, deadline):
        while True:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise RuntimeError("%s exited with %s" % (name, proc.returncode))
            try:
                with socket.create_connection(("127.0.0.1", self.ports[name]), timeout=5):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("%s does not listen" % name)
            time.sleep(0.05)

    def berth_env(self, prefix, endpoint=None):
        """The environment of a berth whose blobs are in this bucket under prefix, reached
        at endpoint (a relay in front of the fixture) or the fixture's own."""
        return berth_env(endpoint or self.endpoint, self.region, self.bucket, prefix,
                         self.access_key, self.secret_key)

    def client(self):
        """A boto3 S3 client on the fixture (path-style): the tests' own look at the bucket,
        so Swift's transient 500s (s3api's InternalError "Please try again", seen on a
        ListObjectsV2 on the busy CI machine) are retried, as any S3 client would."""
        import boto3
        from botocore.config import Config
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key,
                            config=Config(s3={"addressing_style": "path"},
                                          retries={"mode": "standard",
                                                   "total_max_attempts": 5}))

    def _create_bucket(self):
        self.client().create_bucket(Bucket=self.bucket)

    def dump_logs(self):
        if self.dir is None:
            return
        for name in self.procs:
            try:
                with open(os.path.join(self.dir, "%s.log" % name), errors="replace") as f:
                    text = f.read()[-3000:]
                if text.strip():
                    sys.stderr.write("---- swift_fixture %s log ----\n%s\n" % (name, text))
            except OSError:
                pass

    def stop(self):
        for name, proc in list(self.procs.items()):
            if proc.poll() is None:
                proc.terminate()
        for name, proc in list(self.procs.items()):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = {}
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def main(argv):
    if len(argv) < 2:
        sys.stderr.write("usage: swift_fixture.py PROGRAM [ARGS...]\n")
        return 2
    with SwiftServer() as s3:
        env = dict(os.environ, **s3.env())
        rc = subprocess.call(argv[1:], env=env)
        if rc != 0:
            s3.dump_logs()
        return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
