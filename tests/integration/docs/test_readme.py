"""README.md's quick start, run as it is written: its ```sh blocks are read out of the README
each time (so the test fails when the README drifts), in a temporary directory laid out like
a checkout (build/ and scripts/ link to the real ones), with a clean environment (a
temporary HOME, no AWS_* or BERTH_* variables, a private registry auth file).

Two substitutions, each checked against the Makefile so that they stay what `make` does:
- the first block's `make run` starts the Makefile's `run` recipe itself (the build is
  already there), in the background, with 127.0.0.1:<free port> for LISTEN;
- `make image` runs the Makefile's `image` recipe (without its `build` prerequisite, which
  would reconfigure the build directory under test);
and 127.0.0.1:5000 becomes 127.0.0.1:<that port> everywhere. Then the issue 15's "done
when": Chromium opens http://127.0.0.1:<port>/, lands on the console's sign-in and signs in
with a key from `build/berth keys create` run in the checkout, and sees the pushed image and
the registry page."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import berth_harness as h
import packaging_helpers as pk
from browser_helpers import Browser

README = os.path.join(h.REPO_ROOT, "README.md")
MAKEFILE = os.path.join(h.REPO_ROOT, "Makefile")


def section(text, heading):
    start = text.index("\n## %s\n" % heading)
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else len(text)]


def sh_blocks(text):
    return re.findall(r"^```sh\n(.*?)^```$", text, flags=re.S | re.M)


def make_recipe(target):
    """The recipe lines of a Makefile target, '@' dropped, and the Makefile's variables."""
    with open(MAKEFILE) as f:
        lines = f.read().splitlines()
    variables = {}
    for line in lines:
        m = re.match(r"^([A-Z_]+)\s*\?=\s*(.*)$", line)
        if m:
            variables[m.group(1)] = m.group(2).strip()
    start = next(i for i, line in enumerate(lines) if re.match(r"^%s:" % re.escape(target), line))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line[1:].lstrip("@"))
    return recipe, variables


def expand(line, variables):
    return re.sub(r"\$\(([A-Z_]+)\)", lambda m: variables[m.group(1)], line)


class QuickStartTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="berth-readme-")
        self.checkout = os.path.join(self.tmp, "checkout")
        os.makedirs(self.checkout)
        os.symlink(pk.BUILD_DIR, os.path.join(self.checkout, "build"))
        os.symlink(os.path.join(h.REPO_ROOT, "scripts"), os.path.join(self.checkout, "scripts"))
        self.home = os.path.join(self.tmp, "home")
        os.makedirs(self.home)
        self.port = h.free_port()
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("AWS_", "BERTH_", "REGISTRY_AUTH", "DOCKER_"))}
        self.env.update(HOME=self.home, XDG_RUNTIME_DIR=os.path.join(self.tmp, "run"),
                        XDG_CONFIG_HOME=os.path.join(self.home, ".config"),
                        REGISTRY_AUTH_FILE=os.path.join(self.tmp, "auth.json"))
        os.makedirs(self.env["XDG_RUNTIME_DIR"], mode=0o700)
        self.server = None

    def tearDown(self):
        if self.server is not None:
            self.server.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def localize(self, text):
        return text.replace("127.0.0.1:5000", "127.0.0.1:%d" % self.port)

    def test_quick_start_as_written(self):
        with open(README) as f:
            quick = section(f.read(), "Quick start")
        blocks = sh_blocks(quick)
        self.assertGreaterEqual(len(blocks), 3, "the quick start lost its command blocks")

        # block 1: the server's terminal
        first = [ln.split("#", 1)[0].strip() for ln in blocks[0].splitlines()]
        self.assertEqual([ln for ln in first if ln], ["make run"])
        recipe, variables = make_recipe("run")
        variables.update(LISTEN="127.0.0.1:%d" % self.port)
        self.assertEqual(variables["DATA"], "./berth-data",
                         "the README says make run keeps its data in ./berth-data")
        lines = [expand(ln, variables) for ln in recipe]
        lines[-1] = "exec " + lines[-1]  # so that the process the test stops is berth
        self.server = pk.Process(["sh", "-c", " && ".join(lines)],
                                 env=self.env, cwd=self.checkout,
                                 workdir=tempfile.mkdtemp(prefix="server-", dir=self.tmp))
        self.server.wait_ready("http://127.0.0.1:%d" % self.port)

        # the other blocks, one shell session, as written
        image_recipe, variables = make_recipe("image")
        self.assertEqual(len(image_recipe), 1)
        image_cmd = expand(image_recipe[0], variables)
        self.assertEqual(image_cmd, "scripts/build-image.sh build build/image")
        body = "\n".join(blocks[1:])
        self.assertRegex(body, r"(?m)^make image$")
        body = re.sub(r"(?m)^make image$", image_cmd, body)
        self.assertNotRegex(body, r"(?m)^\s*make\b", "a make command the test cannot run")
        body = self.localize(body)
        script = "set -eu\nset -o pipefail\nset -x\n" + body
        proc = subprocess.run(["bash", "-c", script], cwd=self.checkout, env=self.env,
                              capture_output=True, text=True, timeout=600,
                              stdin=subprocess.DEVNULL)
        self.assertEqual(proc.returncode, 0, "the README's commands failed:\n%s\n%s"
                         % (proc.stdout[-4000:], proc.stderr[-6000:]))
        out = proc.stdout
        # skopeo inspect (twice: before the key and after the login) and aws ecr list-images
        inspects = [m for m in re.finditer(r'^\{\n\s+"Name": ', out, flags=re.M)]
        self.assertEqual(len(inspects), 2, out)
        self.assertIn('"imageTag": "1.0"', out)
        self.assertIn("Login Succeeded!", out)
        listed = json.loads(out[out.index('{\n    "imageIds"'):].split("\n}\n", 1)[0] + "\n}")
        self.assertEqual([i["imageTag"] for i in listed["imageIds"]], ["1.0"])
        # the image pushed is berth's own, as `make image` built it
        with open(os.path.join(self.checkout, "build", "image", "layout", "index.json")) as f:
            digest = json.load(f)["manifests"][0]["digest"]
        self.assertEqual(listed["imageIds"][0]["imageDigest"], digest)
        # and what the README says after the login: without credentials skopeo is refused
        bare = dict(self.env, REGISTRY_AUTH_FILE=os.path.join(self.tmp, "none.json"))
        with open(bare["REGISTRY_AUTH_FILE"], "w") as f:
            f.write("{}")
        proc = subprocess.run(["skopeo", "inspect", "--tls-verify=false",
                               "docker://127.0.0.1:%d/team/app:1.0" % self.port],
                              env=bare, capture_output=True, text=True, timeout=120)
        self.assertNotEqual(proc.returncode, 0)
        self.assertRegex(proc.stderr, r"401|unauthorized|authentication required")
        # the "done when": open http://127.0.0.1:5000/ and sign in with a key from
        # `berth keys create` (made from the checkout, as the README makes its key)
        proc = subprocess.run(["build/berth", "keys", "create", "console-user"],
                              cwd=self.checkout, env=self.env, capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        key = dict(ln.split("=", 1) for ln in proc.stdout.splitlines())
        b = Browser(self.tmp)
        try:
            b.go(self.localize("http://127.0.0.1:5000/"))
            b.wait_for("h1", "Sign in")
            self.assertEqual(b.url(), self.localize("http://127.0.0.1:5000/ui/"))
            b.type(b.wait_for("#akid"), key["AWS_ACCESS_KEY_ID"])
            b.type(b.wait_for("#secret"), key["AWS_SECRET_ACCESS_KEY"])
            b.click(b.wait_for("#signin"))
            b.click(b.wait_for("#repo-list a", "team/app"))
            b.wait_for("td.tags", "1.0")
            b.click(b.wait_for("#nav-registry"))
            b.wait_for("#server-version", "berth ")
        finally:
            b.close()
        self.assertEqual(self.server.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
