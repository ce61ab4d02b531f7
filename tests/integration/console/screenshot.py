"""The README's screenshots of the console, taken in a real headless Chromium (as the browser
tests drive it): `make screenshot`, or

    BERTH_BIN=build/berth PYTHONPATH=tests/integration/lib \\
        python3 tests/integration/console/screenshot.py [--out docs/images]

starts berth on a free port with a temporary root, pushes a few images (a Debian image
scanned on push with an SBOM and a signature referring to it, two more repositories),
signs in with a new administrator's key and saves

    console.png           the repository team/scanned: images, scan counts, referrers
    console-registry.png  the registry page's activity over time

The images are built by the test helpers, so digests and times differ from run to run;
the pages, sizes and layout do not."""

import argparse
import base64
import os
import shutil
import sys
import tempfile
import time

import clients as c  # first: it cleans the environment botocore reads
import berth_harness as h
import auth_helpers as e
import scan_helpers as sh
from browser_helpers import Browser

WIDTH, HEIGHT = 1280, 800


def populate(server, work):
    """What the pages show: pushed while no key exists (loopback), then an admin key."""
    reg = server.registry()
    osv = sh.write_osv(os.path.join(work, "osv"), sh.OSV_RECORDS)
    status, out = h.run_berth(["vulndb", "import", osv], server=server)
    if status != 0:
        raise SystemExit("berth vulndb import failed: %s" % out)
    anon = c.ecr_client(server)
    anon.create_repository(repositoryName="team/scanned",
                           imageScanningConfiguration={"scanOnPush": True})
    debian = sh.debian_image()
    h.expect_status(reg.push_image("team/scanned", debian, tag="bookworm"), 201)
    sbom = h.build_artifact("application/spdx+json", subject=debian.descriptor(),
                            annotations={"org.example.kind": "sbom"})
    sig = h.build_artifact("application/vnd.dev.cosign.artifact.sig.v1+json",
                           subject=debian.descriptor())
    for art in (sbom, sig):
        h.expect_status(reg.push_image("team/scanned", art), 201)
    sh.wait_scan(anon, "team/scanned", {"imageTag": "bookworm"})
    for repo, size in (("team/webapp", 400000), ("tools/builder", 120000)):
        for tag in ("v1", "v2"):
            img = h.build_image(layer_count=2, layer_size=size, compress=False)
            h.expect_status(reg.push_image(repo, img, tag=tag), 201)
    return e.keys_create(server, "console-admin")


def shoot(b, path):
    with open(path, "wb") as f:
        f.write(base64.b64decode(b.s("GET", "/screenshot")))
    print("wrote %s" % path)


def shoot_element(b, css, path):
    el = b.wait_for(css)
    eid = el if isinstance(el, str) else list(el.values())[0]
    with open(path, "wb") as f:
        f.write(base64.b64decode(b.s("GET", "/element/%s/screenshot" % eid)))
    print("wrote %s" % path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(h.REPO_ROOT, "docs", "images"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="berth-screenshot-")
    server = h.Server(config={"metrics": {"activity_sample_seconds": 1}})
    browser = None
    try:
        server.start()
        admin = populate(server, work)
        browser = b = Browser(work)
        b.s("POST", "/window/rect", {"width": WIDTH, "height": HEIGHT})
        b.go(server.base_url + "/ui/#/repo/team%2Fscanned")
        b.type(b.wait_for("#akid"), admin[0])
        b.type(b.wait_for("#secret"), admin[1])
        b.click(b.wait_for("#signin"))
        b.wait_for("td.scan", "high")
        b.wait_for("tr.referrer .kind", "SBOM")
        b.script("document.activeElement && document.activeElement.blur()")
        shoot(b, os.path.join(args.out, "console.png"))
        # the registry page, once the pushes are in the activity history
        deadline = time.monotonic() + 30
        while True:
            b.go(server.base_url + "/ui/#/registry")
            b.click(b.wait_for("#registry-refresh"))
            label = b.script("const c = document.querySelector('#history-requests-minutes');"
                             "return c && c.getAttribute('aria-label')")
            if label and ": 0 in all" not in label:
                break
            if time.monotonic() > deadline:
                raise SystemExit("the activity history stayed empty")
            time.sleep(0.5)
        b.script("document.activeElement && document.activeElement.blur();"
                 "document.getElementById('history').scrollIntoView()")
        shoot_element(b, "#history", os.path.join(args.out, "console-registry.png"))
    finally:
        if browser is not None:
            browser.close()
        server.stop()
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
