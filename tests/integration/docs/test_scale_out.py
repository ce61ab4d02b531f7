"""docs/scale-out.md's walk-through, run as it is written: every ```sh block of its steps
1 to 6 is read out of the document each time (so the test fails when the document
drifts) and run in one bash, as an ordinary user (nobody, when the tests run as root:
initdb refuses root) with a clean HOME. It starts PostgreSQL, creates a bucket, starts
three replicas and haproxy, pushes an image through the balancer with skopeo, reads it
from each replica and lists it with the AWS CLI through the balancer, then stops it all.

Substitutions, each checked to apply: the ports (PostgreSQL's, the replicas', the
balancer's) become free ones; the S3 endpoint, key and secret become those of a Swift
with s3api the test starts (swift_fixture.py); docker.io's alpine becomes an OCI layout of
a test image (no network)."""
# berth-suite: cluster

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import unittest

import clients as c  # first: it cleans the environment botocore reads
import berth_harness as h
from swift_fixture import SwiftServer

SCALE_OUT = os.path.join(h.REPO_ROOT, "docs", "scale-out.md")
STEPS = ("1. PostgreSQL", "2. A bucket", "3. Three replicas", "4. haproxy in front",
         "5. Use it", "6. Stop")


def section(text, heading):
    start = text.index("\n### %s\n" % heading)
    end = text.find("\n##", start + 1)
    return text[start:end if end >= 0 else len(text)]


def sh_blocks(text):
    return re.findall(r"^```sh\n(.*?)^```$", text, flags=re.S | re.M)


def substitute(body, old, new):
    if old not in body:
        raise AssertionError("docs/scale-out.md no longer says %r" % old)
    return body.replace(old, new)


@unittest.skipUnless(h.IS_BERTH, "berth's walk-through")
class ScaleOutWalkThroughTest(unittest.TestCase):
    def setUp(self):
        self.s3 = SwiftServer()
        self.addCleanup(self.s3.stop)
        self.s3.start()
        self.tmp = tempfile.mkdtemp(prefix="berth-scaleout-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.home = os.path.join(self.tmp, "home")
        self.layout = os.path.join(self.tmp, "layout")
        os.makedirs(self.home)
        self.image = h.build_image(layer_count=2, layer_size=200 * 1024)
        h.write_oci_layout(self.layout, {"3.20": self.image})
        self.user = None
        if os.geteuid() == 0:
            self.user = "nobody"
            pw = pwd.getpwnam(self.user)
            for d, _, files in os.walk(self.tmp):
                os.chown(d, pw.pw_uid, pw.pw_gid)
                for f in files:
                    os.chown(os.path.join(d, f), pw.pw_uid, pw.pw_gid)
        self.work = os.path.join(self.home, "berth-cluster")
        self.addCleanup(self.stop_leftovers)

    def stop_leftovers(self):
        """After a failed run: end what the walk-through started (its pid files) and
        PostgreSQL."""
        for name in ("haproxy.pid", "replica1.pid", "replica2.pid", "replica3.pid"):
            try:
                with open(os.path.join(self.work, name)) as f:
                    pid = int(f.read().split()[0])
                os.kill(pid, 9)
            except (OSError, ValueError, IndexError):
                pass
        pgdata = os.path.join(self.work, "pgdata")
        if os.path.exists(os.path.join(pgdata, "postmaster.pid")):
            bindir = sorted(d for d in os.listdir("/usr/lib/postgresql"))[-1]
            cmd = [os.path.join("/usr/lib/postgresql", bindir, "bin", "pg_ctl"), "-D", pgdata,
                   "-m", "immediate", "-w", "stop"]
            if self.user:
                cmd = ["runuser", "-u", self.user, "--"] + cmd
            subprocess.run(cmd, capture_output=True, timeout=120)

    def script(self):
        with open(SCALE_OUT) as f:
            text = f.read()
        blocks = []
        for heading in STEPS:
            found = sh_blocks(section(text, heading))
            self.assertGreaterEqual(len(found), 1, "step %r lost its command block" % heading)
            blocks.extend(found)
        body = "\n".join(blocks)
        self.ports = [h.free_port() for _ in range(5)]
        body = substitute(body, "PGPORT=5433", "PGPORT=%d" % self.ports[0])
        body = substitute(body, "S3_ENDPOINT=http://127.0.0.1:8080",
                          "S3_ENDPOINT=" + self.s3.endpoint)
        body = substitute(body, "S3_KEY=your-access-key-id", "S3_KEY=" + self.s3.access_key)
        body = substitute(body, "S3_SECRET=your-secret-access-key",
                          "S3_SECRET=" + self.s3.secret_key)
        body = substitute(body, 'REPLICAS="127.0.0.1:5001 127.0.0.1:5002 127.0.0.1:5003"',
                          'REPLICAS="%s"' % " ".join("127.0.0.1:%d" % p for p in self.ports[1:4]))
        body = substitute(body, "BALANCER=127.0.0.1:5000", "BALANCER=127.0.0.1:%d" % self.ports[4])
        body = substitute(body, "docker://docker.io/library/alpine:3.20",
                          "oci:%s:3.20" % self.layout)
        return "set -eu\nset -o pipefail\nset -x\n" + body

    def test_walk_through_as_written(self):
        script = self.script()
        env = {
            "HOME": self.home,
            "PATH": "%s:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
                    % os.path.dirname(h.find_berth_bin()),
            "LANG": "C.UTF-8",
            "TMPDIR": self.tmp,
            "XDG_RUNTIME_DIR": os.path.join(self.tmp, "run"),
            # the AWS CLI reads nothing of the machine's
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_PAGER": "",
        }
        os.makedirs(env["XDG_RUNTIME_DIR"], mode=0o700)
        cmd = ["/bin/bash", "-c", script]
        if self.user:
            os.chown(env["XDG_RUNTIME_DIR"], *pwd.getpwnam(self.user)[2:4])
            cmd = ["runuser", "-u", self.user, "--", "env", "-i"] + [
                "%s=%s" % kv for kv in env.items()] + cmd
        proc = subprocess.run(cmd, cwd=self.tmp, env=None if self.user else env,
                              capture_output=True, text=True, timeout=400,
                              stdin=subprocess.DEVNULL)
        out = proc.stdout + proc.stderr
        if proc.returncode != 0:
            logs = []
            for name in ("replica1.log", "replica2.log", "replica3.log", "postgres.log"):
                try:
                    with open(os.path.join(self.work, name), errors="replace") as f:
                        logs.append("--- %s ---\n%s" % (name, f.read()[-2000:]))
                except OSError:
                    pass
            self.fail("the walk-through failed (%d):\n%s\n%s" % (
                proc.returncode, out[-6000:], "\n".join(logs)))
        # every replica printed the pushed image's digest
        printed = re.findall(r"^(127\.0\.0\.1:\d+) (sha256:[0-9a-f]{64})$", proc.stdout, re.M)
        self.assertEqual(sorted(printed), sorted(
            ("127.0.0.1:%d" % p, self.image.digest) for p in self.ports[1:4]), out[-3000:])
        # the ECR API through the balancer listed its tag, and the repository by the
        # balancer's address (public_url), whichever replica answered
        self.assertIn("3.20", proc.stdout.split())
        self.assertIn("127.0.0.1:%d/library/alpine" % self.ports[4], proc.stdout.split())
        # the blobs are in the bucket under the configured prefix
        keys = [o["Key"] for o in self.s3.client().list_objects_v2(
            Bucket="berth-registry").get("Contents", [])]
        for digest in self.image.blobs:
            self.assertTrue(any(k.startswith("registry/") and h.digest_hex(digest) in k
                                for k in keys), (digest, keys))
        # step 6 stopped everything
        for name in ("haproxy.pid", "replica1.pid", "replica2.pid", "replica3.pid"):
            with open(os.path.join(self.work, name)) as f:
                pid = int(f.read().split()[0])
            h.wait_until(lambda: not os.path.exists("/proc/%d" % pid) or
                         open("/proc/%d/stat" % pid).read().split()[2] == "Z", 30,
                         what="%s's process to end" % name)
        self.assertFalse(os.path.exists(os.path.join(self.work, "pgdata", "postmaster.pid")))


if __name__ == "__main__":
    unittest.main(verbosity=2)
