"""The external scan hook (scan.hook): the sample hook deploy/scan-hook-example.sh scanning
images pushed with skopeo (exact findings through boto3 and the aws CLI), the OCI layout and
environment berth gives it, and hooks that fail, print bad JSON, print too much or hang
(killed with their process group at scan.hook_timeout_seconds), also across a SIGTERM."""

import hashlib
import json
import os
import shutil
import tempfile
import time

import clients as c  # first: it cleans the environment botocore reads
import berth_harness as h
import scan_helpers as s
# scan.hook_timeout_seconds. Hooks that must finish get a minute: the sample hook takes
# 0.1-0.4 s at load 16-19 here, and a 2 s timeout for every hook (as this file had) made a
# busy machine's slow hook a FAILED scan (issue 10, item 15). Only the test of the timeout
# itself uses a short one: its hook hangs for 300 s, so nothing races the timeout.
TIMEOUT = 60
HANG_TIMEOUT = 5

ADVISORIES = """\
# package version severity id description
libssl3 3.0.11-1~deb12u1 HIGH CVE-2023-5363 openssl: incorrect "cipher" key length
zlib1g 1:1.2.13.dfsg-1+b1 LOW CVE-2023-45853 zlib: MiniZip integer overflow
busybox 1.36.1-r15 MEDIUM CVE-2023-42363 busybox: awk use after free
libc6 2.36-9+deb12u1 MEDIUM CVE-2023-4911 glibc: Looney Tunables
libcurl4 7.88.1-10+deb12u4 CRITICAL CVE-2023-38545 curl: SOCKS5 heap overflow
libc6 2.36-9+deb12u9 CRITICAL CVE-0000-0001 not installed in any test image
"""

# Dispatches on the repository name: the failure modes, a layout probe, else the sample.
DISPATCH = """\
#!/bin/sh
case "$BERTH_SCAN_REPOSITORY" in
*/fail*)
    echo "starting the scanner" >&2
    echo "scanner crashed: cannot open its database" >&2
    exit 3 ;;
*/badjson*)
    echo '{"findings": [{"name": "CVE-1", "severity": "SEVERE"}]}' ;;
*/notjson*)
    echo 'Scanning... done' ;;
*/big*)
    head -c 200000 /dev/zero | tr '\\0' 'x' ;;
*/hang*)
    sleep 300 &
    # written whole, then renamed: the test reads main.pid as soon as it appears
    echo $! > "$PROBE_DIR/child.pid.tmp" && mv "$PROBE_DIR/child.pid.tmp" "$PROBE_DIR/child.pid"
    echo $$ > "$PROBE_DIR/main.pid.tmp" && mv "$PROBE_DIR/main.pid.tmp" "$PROBE_DIR/main.pid"
    wait ;;
*/probe*)
    {
        echo "layout=$BERTH_SCAN_LAYOUT"
        echo "cwd=$(pwd)"
        echo "ref=$BERTH_SCAN_REF"
        echo "repository=$BERTH_SCAN_REPOSITORY"
        echo "digest=$BERTH_SCAN_DIGEST"
        echo "media_type=$BERTH_SCAN_MEDIA_TYPE"
        echo "tag=$BERTH_SCAN_TAG"
        echo "args=$*"
    } > "$PROBE_DIR/env.txt"
    cp "$BERTH_SCAN_LAYOUT/index.json" "$BERTH_SCAN_LAYOUT/oci-layout" "$PROBE_DIR/"
    (cd "$BERTH_SCAN_LAYOUT/blobs/sha256" && for f in *; do
        echo "$f $(stat -c %h "$f") $(sha256sum < "$f" | cut -d' ' -f1)"; done) \\
        > "$PROBE_DIR/blobs.txt"
    exec "$SAMPLE_HOOK" ;;
*)
    exec "$SAMPLE_HOOK" ;;
esac
"""


def pid_alive(pid):
    """True while pid names a process that is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


class HookTestCase(h.ServerTestCase):
    """A server whose scan hook is DISPATCH, timing out at hook_timeout seconds."""

    hook_timeout = TIMEOUT

    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="berth-hook-")
        cls.probe = os.path.join(cls.work, "probe")
        os.makedirs(cls.probe)
        cls.advisories = os.path.join(cls.work, "advisories.txt")
        with open(cls.advisories, "w") as f:
            f.write(ADVISORIES)
        os.utime(cls.advisories, (1700000000, 1700000000))
        dispatch = os.path.join(cls.work, "dispatch.sh")
        with open(dispatch, "w") as f:
            f.write(DISPATCH)
        cls.server_config = {"scan": {
            "workers": 2,
            # not a shell: the words are split by berth, quotes included
            "hook": "/bin/sh '%s' --from-berth \"two words\"" % dispatch,
            "hook_timeout_seconds": cls.hook_timeout,
            "hook_max_output_bytes": 65536,
        }}
        cls.server_env = {"SCAN_HOOK_ADVISORIES": cls.advisories, "PROBE_DIR": cls.probe,
                          "SAMPLE_HOOK": s.SAMPLE_HOOK}
        super().setUpClass()
        cls.addClassCleanup(shutil.rmtree, cls.work, True)
        cls.skopeo = c.Skopeo(cls.work)
        cls.ecr = c.ecr_client(cls.server)

    def push_scanned(self, name, images):
        repo = "hook/%s-%d" % (name, len(images))
        self.ecr.create_repository(repositoryName=repo,
                                   imageScanningConfiguration={"scanOnPush": True})
        self.skopeo.push(self.server, images, repo)
        return repo

    def assertHookFailed(self, repo, description):
        resp = s.wait_scan(self.ecr, repo, {"imageTag": "v"}, timeout=self.hook_timeout + 60)
        self.assertEqual(resp["imageScanStatus"]["status"], "FAILED")
        self.assertEqual(resp["imageScanStatus"]["description"], description)
        self.assertNotIn("imageScanFindings", resp)


@h.berth_only("the scan hook")
class HookScanTest(HookTestCase):
    @staticmethod
    def finding(name, description, severity, package, version):
        return {"name": name, "description": description, "severity": severity,
                "attributes": [{"key": "package_name", "value": package},
                               {"key": "package_version", "value": version}]}

    def test_sample_hook_findings(self):
        repo = self.push_scanned("sample", {"v": s.debian_image("gzip", "hook-debian"),
                                            "alpine": s.alpine_image(),
                                            "upgraded": s.debian_upgraded_image(),
                                            "whiteout": s.debian_whiteout_image()})
        openssl = self.finding("CVE-2023-5363", 'openssl: incorrect "cipher" key length',
                               "HIGH", "libssl3", "3.0.11-1~deb12u1")
        glibc = self.finding("CVE-2023-4911", "glibc: Looney Tunables", "MEDIUM", "libc6",
                             "2.36-9+deb12u1")
        zlib = self.finding("CVE-2023-45853", "zlib: MiniZip integer overflow", "LOW", "zlib1g",
                            "1:1.2.13.dfsg-1+b1")
        curl = self.finding("CVE-2023-38545", "curl: SOCKS5 heap overflow", "CRITICAL",
                            "libcurl4", "7.88.1-10+deb12u4")
        want = [openssl, glibc, zlib]  # the hook's order: the dpkg database's
        # through the aws CLI, with its waiter
        s.wait_scan(self.ecr, repo, {"imageTag": "v"})
        res = c.aws(self.server, "wait", "image-scan-complete", "--repository-name", repo,
                    "--image-id", "imageTag=v")
        self.assertEqual(res.rc, 0, res)
        res = c.aws(self.server, "describe-image-scan-findings", "--repository-name", repo,
                    "--image-id", "imageTag=v")
        self.assertEqual(res.rc, 0, res)
        out = res.json()
        self.assertEqual(out["imageScanStatus"], {"status": "COMPLETE",
                                                  "description": s.COMPLETE})
        self.assertEqual(out["imageScanFindings"]["findings"], want)
        self.assertEqual(out["imageScanFindings"]["findingSeverityCounts"],
                         {"HIGH": 1, "MEDIUM": 1, "LOW": 1})
        # vulnerabilitySourceUpdatedAt is what the hook said: its advisory file's time
        resp = self.ecr.describe_image_scan_findings(repositoryName=repo, imageId={"imageTag": "v"})
        self.assertEqual(resp["imageScanFindings"]["vulnerabilitySourceUpdatedAt"].timestamp(),
                         1700000000)
        # apk database; a later layer (zstd, then uncompressed) with another dpkg database;
        # a whiteout of the database: no packages, no findings, still COMPLETE
        alpine = s.wait_scan(self.ecr, repo, {"imageTag": "alpine"})
        self.assertEqual(s.findings_of(alpine), [self.finding(
            "CVE-2023-42363", "busybox: awk use after free", "MEDIUM", "busybox", "1.36.1-r15")])
        self.assertEqual(s.findings_of(s.wait_scan(self.ecr, repo, {"imageTag": "upgraded"})),
                         [openssl, zlib, curl])
        whiteout = s.wait_scan(self.ecr, repo, {"imageTag": "whiteout"})
        self.assertEqual(whiteout["imageScanStatus"]["status"], "COMPLETE")
        self.assertEqual(s.findings_of(whiteout), [])
        self.assertEqual(whiteout["imageScanFindings"]["findingSeverityCounts"], {})

    def test_layout_and_environment(self):
        img = s.debian_upgraded_image()
        repo = self.push_scanned("probe", {"v": img})
        resp = s.wait_scan(self.ecr, repo, {"imageTag": "v"})
        self.assertEqual(resp["imageScanStatus"]["status"], "COMPLETE")
        with open(os.path.join(self.probe, "env.txt")) as f:
            env = dict(line.rstrip("\n").split("=", 1) for line in f)
        self.assertEqual(env["repository"], repo)
        self.assertEqual(env["digest"], img.digest)
        self.assertEqual(env["media_type"], h.MT_OCI_MANIFEST)
        self.assertEqual(env["tag"], "v")
        self.assertEqual(env["ref"], "v")
        self.assertEqual(env["cwd"], env["layout"])
        self.assertEqual(env["args"], "--from-berth two words")
        self.assertTrue(env["layout"].startswith(os.path.join(self.server.root, "scan-tmp")))
        self.assertFalse(os.path.exists(env["layout"]), "the layout is removed afterwards")
        with open(os.path.join(self.probe, "oci-layout")) as f:
            self.assertEqual(json.load(f), {"imageLayoutVersion": "1.0.0"})
        with open(os.path.join(self.probe, "index.json")) as f:
            index = json.load(f)
        self.assertEqual(index["manifests"], [{
            "mediaType": h.MT_OCI_MANIFEST, "digest": img.digest, "size": len(img.manifest),
            "annotations": {"org.opencontainers.image.ref.name": "v"}}])
        # every blob, byte for byte, as hard links to the registry's files
        with open(os.path.join(self.probe, "blobs.txt")) as f:
            blobs = {name: (int(links), sha) for name, links, sha in
                     (line.split() for line in f)}
        want = dict(img.blobs)
        want[img.digest] = img.manifest
        self.assertEqual(sorted(blobs), sorted(h.digest_hex(d) for d in want))
        for digest, data in want.items():
            links, sha = blobs[h.digest_hex(digest)]
            self.assertEqual(sha, hashlib.sha256(data).hexdigest())
            self.assertGreaterEqual(links, 2, "a hard link to the blob file")

    def test_failing_hooks(self):
        for name, description in (
                ("fail", "HookError: the scan hook exited with status 3: scanner crashed: "
                         "cannot open its database"),
                ("badjson", "HookError: the scan hook's output is not valid: finding 1 (CVE-1): "
                            "\"severity\" must be one of INFORMATIONAL, LOW, MEDIUM, HIGH, "
                            "CRITICAL, UNDEFINED"),
                ("notjson", "HookError: the scan hook's output is not valid: not JSON (line 1: "
                            "'[' or '{' expected near 'Scanning')"),
                ("big", "HookError: the scan hook printed more than 65536 bytes "
                        "(scan.hook_max_output_bytes)")):
            repo = self.push_scanned(name, {"v": s.debian_image("gzip", name)})
            self.assertHookFailed(repo, description)
        res = c.aws(self.server, "wait", "image-scan-complete", "--repository-name", repo,
                    "--image-id", "imageTag=v")
        self.assertNotEqual(res.rc, 0, res)
        self.assertIn("Waiter ImageScanComplete failed", res.err)



@h.berth_only("the scan hook")
class HookTimeoutTest(HookTestCase):
    hook_timeout = HANG_TIMEOUT

    def test_hanging_hook_is_killed(self):
        main_pid = os.path.join(self.probe, "main.pid")
        for name in ("main.pid", "child.pid"):
            if os.path.exists(os.path.join(self.probe, name)):
                os.unlink(os.path.join(self.probe, name))
        repo = self.push_scanned("hang", {"v": s.debian_image("gzip", "hang")})
        h.wait_until(lambda: os.path.exists(main_pid), 60, interval=0.02,
                     what="the hook to start")
        start = time.monotonic()
        self.assertHookFailed(repo, "HookError: the scan hook did not finish within %d seconds "
                                    "(scan.hook_timeout_seconds) and was killed" % HANG_TIMEOUT)
        # killed at the timeout: long before the hook's own 300 s
        self.assertLess(time.monotonic() - start, 120)
        for name in ("main.pid", "child.pid"):
            with open(os.path.join(self.probe, name)) as f:
                pid = int(f.read())
            h.wait_until(lambda: not pid_alive(pid), 60,
                         what="%s %d to be killed at the timeout" % (name, pid))
        # the workers carry on (with a hook that ends at once: under this short timeout
        # the sample hook would race it on a busy machine)
        repo = self.push_scanned("fail-after-hang", {"v": s.debian_image("gzip", "after-hang")})
        self.assertHookFailed(repo, "HookError: the scan hook exited with status 3: scanner "
                                    "crashed: cannot open its database")



@h.berth_only("the scan hook")
class HookStopTest(HookTestCase):
    def test_sigterm_during_a_hook_and_restart(self):
        """Stopping the server kills a running hook and keeps its job; the next start runs
        it again."""
        main_pid = os.path.join(self.probe, "main.pid")
        if os.path.exists(main_pid):
            os.unlink(main_pid)
        repo = self.push_scanned("hang-restart", {"v": s.debian_image("gzip", "hang-restart")})
        h.wait_until(lambda: os.path.exists(main_pid), 60, interval=0.02,
                     what="the hook to start")
        with open(main_pid) as f:
            pid = int(f.read())
        self.assertTrue(pid_alive(pid))
        start = time.monotonic()
        self.server.stop()  # asserts exit status 0
        # a stop that waited for the hook would take its timeout (60 s); the job kept (below)
        # says the same by event
        self.assertLess(time.monotonic() - start, TIMEOUT / 2, "stop waited for the hook")
        self.assertFalse(pid_alive(pid), "the hook outlived the server")
        os.unlink(main_pid)
        self.server.start()
        self.ecr = c.ecr_client(self.server)
        type(self).ecr = self.ecr
        # the job was kept and runs again after the restart (the class's server stops it
        # at the end; the timeout's own message is HookTimeoutTest's)
        h.wait_until(lambda: os.path.exists(main_pid), 60, interval=0.02,
                     what="the hook to run again")
        self.assertIn("waiting_jobs=1 released_jobs=0", self.server.log_text().split("=== start 1")[1])
        resp = self.ecr.describe_image_scan_findings(repositoryName=repo,
                                                     imageId={"imageTag": "v"})
        self.assertEqual(resp["imageScanStatus"]["status"], "IN_PROGRESS")


if __name__ == "__main__":
    h.main()
