"""The README's screenshots of the console, taken in a real headless Chromium (as the browser
tests drive it): `make screenshot`, or

    BERTH_BIN=build/berth PYTHONPATH=tests/integration/lib \\
        python3 tests/integration/console/screenshot.py [--out docs/images]

starts berth on a free port with a temporary root, pushes a few images (a Debian image
scanned on push with an SBOM and a signature referring to it, two more repositories),
signs in with a new administrator's key and saves

    console.png           the repository team/scanned: images, scan counts, referrers
    console-registry.png  the registry page's activity over time

The registry page's history is seeded: a fresh server has one minute of activity, so
before the shot seed_history() writes 30 days of synthetic buckets (a working day's rise
and fall, pushes and pulls over the OCI API, ECR and console calls, the 401 challenges
clients get first) straight into the server's SQLite database, the tables `activity` and
`activity_apis`, adding to what the server's own sampler writes there. That is this
script's doing only: no server code path writes made-up activity. Pseudo-random with a
fixed seed, so the shapes are the same from run to run.

The images are built by the test helpers, so digests and times differ from run to run;
the pages, sizes and layout do not."""

import argparse
import base64
import os
import random
import re
import shutil
import sqlite3
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


# Per hour of a working day (UTC), the share of the peak: quiet nights, a morning rise.
DAY_SHAPE = [0.05, 0.04, 0.04, 0.04, 0.05, 0.08, 0.15, 0.35, 0.7, 0.9, 1.0, 0.95,
             0.8, 0.9, 1.0, 0.95, 0.85, 0.65, 0.4, 0.25, 0.15, 0.1, 0.08, 0.06]


# The busiest minute's pushes (pulls: six times as many), as in a team's registry.
PER_MINUTE = 12


def synthetic(rng, at_ms, per_minute, weekends=True):
    """One minute's requests by API: {api: [2xx, 3xx, 4xx, 5xx, other, in, out]}."""
    t = time.gmtime(at_ms / 1000)
    weekend = weekends and t.tm_wday >= 5
    # the day's shape, from one hour's share to the next's over the hour
    f = t.tm_min / 60
    shape = DAY_SHAPE[t.tm_hour] * (1 - f) + DAY_SHAPE[(t.tm_hour + 1) % 24] * f
    level = shape * (0.3 if weekend else 1.0) * rng.uniform(0.7, 1.3)
    pulls = int(per_minute * 6 * level)
    pushes = int(per_minute * level * rng.uniform(0.2, 1.2))
    # pulls: manifest + config + layers; the first request of a client is a 401
    oci = [pulls * 4 + pushes * 7, pulls // 9, pulls // 8 + rng.randint(0, 2),
           1 if rng.random() < 0.01 * per_minute else 0, 0,
           pushes * rng.randint(4, 40) * (1 << 20), pulls * rng.randint(2, 30) * (1 << 20)]
    ecr = [int(pulls * 0.3) + rng.randint(0, 3), 0, rng.randint(0, 1), 0, 0,
           pulls * 900, pulls * 5200]
    console = [int(level * per_minute * 0.8) + rng.randint(0, 2), 0, 0, 0, 0,
               int(level * 12000), int(level * 450000)]
    ops = [per_minute * 2, 0, 0, 0, 0, 0, per_minute * 2 * 400]
    return {"oci": oci, "ecr": ecr, "console": console, "ops": ops}


def seed_history(server):
    """Write the synthetic history into the server's database (see the docstring): the
    minutes of the last 24 hours and the hours of the last 30 days, up to the minute
    before this one. Returns the requests seeded in the minutes but the oldest ten (the
    page's day starts a minute later once a minute has passed: a slow run may cross a
    few)."""
    rng = random.Random(15)
    now = int(time.time() * 1000)
    rows = {}  # (step, at) -> {api: counts}
    for step, span_ms in ((60, 24 * 3600 * 1000), (3600, 30 * 86400 * 1000)):
        step_ms = step * 1000
        last = now - now % step_ms - step_ms
        for at in range(last - span_ms + 2 * step_ms, last + 1, step_ms):
            if step == 60:
                # the last day as a working day, whatever day it is
                rows[(step, at)] = synthetic(rng, at, PER_MINUTE, weekends=False)
            else:
                # an hour holds 60 minutes' worth (its own draw)
                apis = [synthetic(rng, at + m * 60000, PER_MINUTE) for m in range(0, 60, 5)]
                rows[(step, at)] = {a: [sum(x[a][i] for x in apis) * 5 for i in range(7)]
                                    for a in apis[0]}
    db = sqlite3.connect(os.path.join(server.root, "berth.db"), timeout=30)
    cols = "requests_2xx, requests_3xx, requests_4xx, requests_5xx, requests_other, " \
           "bytes_in, bytes_out"
    adds = ", ".join("%s = %%(t)s.%s + excluded.%s" % (c, c, c) for c in cols.split(", "))
    seeded = 0
    oldest = min(at for (step, at) in rows if step == 60)
    with db:
        for (step, at), apis in rows.items():
            total = [sum(v[i] for v in apis.values()) for i in range(7)]
            db.execute("INSERT INTO activity (step, at, %s, auth_failures) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (step, at) DO UPDATE "
                       "SET %s" % (cols, adds % {"t": "activity"}),
                       [step, at] + total + [rng.randint(0, 2) if rng.random() < 0.05 else 0])
            for api, v in apis.items():
                db.execute("INSERT INTO activity_apis (step, at, api, %s) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                           "ON CONFLICT (step, at, api) DO UPDATE SET %s"
                           % (cols, adds % {"t": "activity_apis"}), [step, at, api] + v)
            if step == 60 and at >= oldest + 10 * 60000:
                seeded += sum(total[:5])
    db.close()
    print("seeded %d minute and hour buckets, %d requests in the last 24 hours (but ten "
          "minutes)"
          % (len(rows), seeded))
    return seeded


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
        # the registry page, once the pushes are in the activity history with the seeded
        # buckets
        seeded = seed_history(server)
        deadline = time.monotonic() + 60
        while True:
            b.go(server.base_url + "/ui/#/registry")
            b.click(b.wait_for("#registry-refresh"))
            # the click redraws the page: read the chart once it is there again
            b.wait_for("#history-requests-minutes")
            label = b.script("const c = document.querySelector('#history-requests-minutes');"
                             "return c && c.getAttribute('aria-label')")
            total = re.search(r": (\d+) in all", label or "")
            if total and int(total.group(1)) > seeded and b.find_all("#history-api-rows tr") \
                    and b.find_all("#history-api-charts figure"):
                break
            if time.monotonic() > deadline:
                raise SystemExit("the activity history stayed empty (seeded %d; chart: %s); "
                                 "the page says:\n%s" % (seeded, label, b.page_text()))
            time.sleep(0.5)
        # tall enough for the whole section: charts, totals, the table and the charts by API
        b.s("POST", "/window/rect", {"width": WIDTH, "height": 2000})
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
