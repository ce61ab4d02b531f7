"""scripts/setup-deps.sh and the machine image's Python: the tests of the 2024-2026 ECR
operations need boto3 >= 1.40 and AWS CLI v1 from the first python3 on PATH, so the set-up
fails, saying so, when that Python lacks them (Debian's boto3 1.26 here) rather than letting
those tests be skipped; with the machine image's Python first on PATH it passes. The script
runs from a copy whose Debian packages (dpkg-query) and console npm packages read as
installed, so that it reaches that check and installs nothing."""

import os
import shutil
import subprocess
import tempfile
import time
import unittest

import berth_harness as h

SCRIPT = os.path.join(h.REPO_ROOT, "scripts", "setup-deps.sh")
DEBIAN_PYTHON = "/usr/bin/python3"


def write_exec(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)


class SetupModernPythonTest(unittest.TestCase):

    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="berth-setup-")
        self.addCleanup(shutil.rmtree, self.work, True)
        os.makedirs(os.path.join(self.work, "scripts"))
        self.script = os.path.join(self.work, "scripts", "setup-deps.sh")
        shutil.copy(SCRIPT, self.script)
        # the console tests' npm packages, present and newer than their lock
        console = os.path.join(self.work, "tests", "integration", "console")
        os.makedirs(os.path.join(console, "node_modules", "axe-core"))
        with open(os.path.join(console, "package-lock.json"), "w") as f:
            f.write("{}\n")
        past = time.time() - 3600
        os.utime(os.path.join(console, "package-lock.json"), (past, past))
        for name in ("axe-core/axe.min.js", ".package-lock.json"):
            with open(os.path.join(console, "node_modules", name), "w") as f:
                f.write("\n")
        # every Debian package reads as installed
        self.fakebin = os.path.join(self.work, "bin")
        os.makedirs(self.fakebin)
        write_exec(os.path.join(self.fakebin, "dpkg-query"),
                   "#!/bin/sh\nprintf 'install ok installed'\n")
        self.assertTrue(os.path.exists(DEBIAN_PYTHON), "Debian's python3 is missing")

    def run_setup(self, path):
        return subprocess.run(["/bin/sh", self.script], capture_output=True, text=True,
                              timeout=120, env=dict(os.environ, PATH=path))

    def test_fails_clearly_without_modern_boto3(self):
        proc = subprocess.run([DEBIAN_PYTHON, "-c", "import boto3; print(boto3.__version__)"],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        major, minor = (int(p) for p in proc.stdout.strip().split(".")[:2])
        self.assertLess((major, minor), (1, 40), "Debian's boto3 is new enough now")
        os.symlink(DEBIAN_PYTHON, os.path.join(self.fakebin, "python3"))
        proc = self.run_setup(self.fakebin + ":" + os.environ["PATH"])
        self.assertEqual(proc.returncode, 1, proc.stdout + proc.stderr)
        self.assertIn("the first python3 on PATH (%s) lacks boto3 >= 1.40"
                      % os.path.join(self.fakebin, "python3"), proc.stderr)
        self.assertIn("AWS CLI v1", proc.stderr)

    def test_passes_with_the_machine_image_python(self):
        first = shutil.which("python3", path=os.environ["PATH"])
        self.assertNotEqual(os.path.realpath(first), os.path.realpath(DEBIAN_PYTHON),
                            "the machine image's Python is not first on PATH")
        proc = self.run_setup(self.fakebin + ":" + os.environ["PATH"])
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertEqual(proc.stderr, "")


if __name__ == "__main__":
    h.main()
