"""`make screenshot` (tests/integration/console/screenshot.py) still works: it starts berth,
pushes its images, seeds the registry page's history, drives Chromium through the pages
and writes both PNGs, of the size the README expects, showing what it waited for."""

import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

import berth_harness as h

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "screenshot.py")


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise AssertionError("%s is no PNG" % path)
    return struct.unpack(">II", head[16:24])


class ScreenshotTest(unittest.TestCase):
    def test_script_writes_the_screenshots(self):
        out = tempfile.mkdtemp(prefix="berth-screenshot-test-")
        self.addCleanup(shutil.rmtree, out, True)
        proc = subprocess.run([sys.executable, "-B", SCRIPT, "--out", out],
                              capture_output=True, text=True, timeout=300)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        # the registry page's history was seeded (and the script saw it charted)
        self.assertRegex(proc.stdout, r"seeded \d+ minute and hour buckets, [1-9]\d* requests")
        width_c, height_c = png_size(os.path.join(out, "console.png"))
        self.assertEqual(width_c, 1280)
        self.assertGreater(height_c, 400)
        width, height = png_size(os.path.join(out, "console-registry.png"))
        self.assertGreater(width, 600)
        self.assertGreater(height, 300)
        # the README's committed one is what the script takes now: digests, times and key
        # ids differ from run to run, the page's layout does not, so a change to the page
        # that moves it (a row, a column, a line more) shows as another size: run
        # `make screenshot` and commit it
        committed = os.path.join(h.REPO_ROOT, "docs", "images", "console.png")
        self.assertEqual(png_size(committed), (width_c, height_c),
                         "docs/images/console.png is stale: run make screenshot")


if __name__ == "__main__":
    unittest.main()
