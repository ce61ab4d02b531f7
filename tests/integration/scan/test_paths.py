"""The scan hook with relative paths: a server started with a relative --root (the default
root is ./berth-data) and a relative scan.hook. The hook runs inside its layout directory,
so the program path and BERTH_SCAN_LAYOUT it is given must both be absolute; the same for
`berth scan` run from the data root's parent."""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

import berth_harness as h
import clients as c
import scan_helpers as s

# Records what berth gave it, checks the layout from where it runs, prints one finding.
PROBE = """\
#!/bin/sh
set -eu
{
    echo "layout=$BERTH_SCAN_LAYOUT"
    echo "cwd=$(pwd -P)"
} > "$PROBE_DIR/env-$BERTH_SCAN_TAG.txt"
hex=${BERTH_SCAN_DIGEST#sha256:}
[ -f "$BERTH_SCAN_LAYOUT/blobs/sha256/$hex" ] || { echo "no manifest blob" >&2; exit 4; }
[ -f index.json ] || { echo "not run in the layout" >&2; exit 5; }
echo '{"findings": [{"name": "CVE-2024-0001", "severity": "LOW"}]}'
"""


def read_probe(path):
    with open(path) as f:
        return dict(line.split("=", 1) for line in f.read().splitlines())


@unittest.skipUnless(h.IS_BERTH, "berth only")
class RelativePathsTest(unittest.TestCase):

    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="berth-paths-")
        self.addCleanup(shutil.rmtree, self.work, True)
        self.probe = os.path.join(self.work, "probe")
        os.makedirs(self.probe)
        # The server runs with its temporary directory as the working directory: the root
        # "root" and the hook "hooks/probe.sh" are relative to it.
        self.server = h.Server(config={"scan": {"workers": 1, "hook": "hooks/probe.sh"}},
                               env={"PROBE_DIR": self.probe}, root_flag=False,
                               args=["--root", "root"])
        self.addCleanup(self.server.cleanup)
        hooks = os.path.join(self.server.tmp, "hooks")
        os.makedirs(hooks)
        with open(os.path.join(hooks, "probe.sh"), "w") as f:
            f.write(PROBE)
        os.chmod(os.path.join(hooks, "probe.sh"), 0o755)

    def check_probe(self, tag):
        env = read_probe(os.path.join(self.probe, "env-%s.txt" % tag))
        layout = env["layout"]
        self.assertTrue(os.path.isabs(layout), env)
        self.assertEqual(layout, env["cwd"])
        # inside the relative root, and removed once the hook ended
        work = os.path.realpath(os.path.join(self.server.root, "scan-tmp"))
        self.assertEqual(os.path.dirname(layout), work)
        self.assertFalse(os.path.exists(layout))

    def test_hook_with_relative_root_and_program(self):
        server = self.server
        server.start()
        ecr = c.ecr_client(server)
        repo = "paths/app"
        ecr.create_repository(repositoryName=repo, imageScanningConfiguration={"scanOnPush": True})
        h.expect_status(server.registry().push_image(repo, s.debian_image(label="rel"), tag="v"),
                        201)
        resp = s.wait_scan(ecr, repo, {"imageTag": "v"})
        self.assertEqual(resp["imageScanStatus"], {"status": "COMPLETE",
                                                   "description": s.COMPLETE}, server.log_tail())
        self.assertEqual([f["name"] for f in s.findings_of(resp)], ["CVE-2024-0001"])
        self.check_probe("v")
        # the blobs were in the relative root: nothing was written outside it
        self.assertTrue(os.path.isfile(os.path.join(server.root, "berth.db")))
        server.stop()

        # `berth scan` from the same working directory, with the same relative settings
        config = os.path.join(server.tmp, "config.json")
        proc = subprocess.run([h.find_berth_bin(), "scan", repo + ":v", "--json", "--config",
                               config, "--root", "root"], cwd=server.tmp, capture_output=True,
                              timeout=60, stdin=subprocess.DEVNULL,
                              env=dict(os.environ, PROBE_DIR=self.probe))
        out = proc.stdout.decode("utf-8", "replace")
        self.assertEqual(proc.returncode, 0, out + proc.stderr.decode("utf-8", "replace"))
        doc = json.loads(out)
        self.assertEqual(doc["imageScanStatus"]["status"], "COMPLETE")
        self.assertEqual(doc["imageScanFindings"]["findingSeverityCounts"], {"LOW": 1})
        self.check_probe("v")


if __name__ == "__main__":
    h.main()
