# berth-python: modern
"""docs/air-gap.md's walk-through, run as it is written: the ```sh blocks of steps 1
(mirror), 3 (import) and 4 (a delta), the first of each, are read out of the document each time (so the test
fails when the document drifts) and run in one shell, in a temporary directory with a
clean HOME, against a "connected side" berth with access keys that holds the images the
document names. Then the "disconnected side" berth serves every image with the digests
of the source.

Substitutions, each checked to apply: registry.example.com becomes 127.0.0.1:<port> (the
test registry), berth mirror gets --plain-http and skopeo login --tls-verify=false (the
test registry is plain HTTP), /srv/berth becomes a temporary data directory; the
document's $REGISTRY_USER and $REGISTRY_PASSWORD are an access key of the source.

PullThroughDmzTest runs the document's pull-through part ("Or: pull through a registry in
the DMZ") the same way."""

import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import unittest

import clients as c  # first: it cleans the environment botocore reads

import auth_helpers as a
import berth_harness as h
import bundle_helpers as bh

AIR_GAP = os.path.join(h.REPO_ROOT, "docs", "air-gap.md")


def section(text, heading):
    start = text.index("\n### %s\n" % heading)
    end = text.find("\n### ", start + 1)
    return text[start:end if end >= 0 else len(text)]


def sh_blocks(text):
    return re.findall(r"^```sh\n(.*?)^```$", text, flags=re.S | re.M)


def substitute(body, old, new):
    if old not in body:
        raise AssertionError("docs/air-gap.md no longer says %r" % old)
    return body.replace(old, new)


class WalkThroughTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="berth-airgap-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.src = h.Server()
        self.addCleanup(self.src.cleanup)
        self.src.start()
        reg = self.src.registry()
        images = bh.sample_images()
        self.app = images["v1"]
        self.multi = images["multi"]
        self.sbom = images["sbom"]
        self.next = h.build_image(layer_count=2, layer_size=3000)
        h.expect_status(reg.push_image("team/app", self.app, tag="1.4"), 201)
        h.expect_status(reg.push_image("team/app", self.multi, tag="1.4-multi"), 201)
        h.expect_status(reg.push_image("team/app", self.sbom), 201)
        h.expect_status(reg.push_image("team/app", self.next, tag="1.5"), 201)
        self.user, self.password = a.keys_create(self.src, "mirror")
        self.home = os.path.join(self.tmp, "home")
        self.work = os.path.join(self.tmp, "work")
        self.root = os.path.join(self.tmp, "srv-berth")
        for d in (self.home, self.work):
            os.makedirs(d)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("AWS_", "BERTH_", "REGISTRY_AUTH", "DOCKER_"))}
        self.env.update(HOME=self.home, REGISTRY_USER=self.user,
                        REGISTRY_PASSWORD=self.password,
                        XDG_RUNTIME_DIR=os.path.join(self.tmp, "run"),
                        PATH=os.path.dirname(h.find_berth_bin()) + ":" + os.environ["PATH"])
        os.makedirs(self.env["XDG_RUNTIME_DIR"], mode=0o700)

    def script(self):
        with open(AIR_GAP) as f:
            text = f.read()
        blocks = []
        for heading in ("1. On the connected side: mirror", "3. On the disconnected side: import",
                        "4. Next time: only what changed (delta bundles)"):
            found = sh_blocks(section(text, heading))
            self.assertGreaterEqual(len(found), 1, "step %r lost its command block" % heading)
            blocks.append(found[0])
        body = "\n".join(blocks)
        body = substitute(body, "registry.example.com", "127.0.0.1:%d" % self.src.port)
        body = substitute(body, "berth mirror ", "berth mirror --plain-http ")
        body = substitute(body, "skopeo login ", "skopeo login --tls-verify=false ")
        body = substitute(body, "/srv/berth", self.root)
        return "set -eu\nset -o pipefail\nset -x\n" + body

    def test_walk_through_as_written(self):
        proc = subprocess.run(["bash", "-c", self.script()], cwd=self.work, env=self.env,
                              capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL)
        self.assertEqual(proc.returncode, 0, "the walk-through failed:\n%s\n%s"
                         % (proc.stdout[-4000:], proc.stderr[-6000:]))
        out = proc.stdout + proc.stderr
        self.assertIn("left out", out)  # the second bundle is a delta
        # (the shell's own trace of the printf shows it; nothing else may)
        said = "\n".join(ln for ln in out.splitlines() if not ln.startswith("+ "))
        self.assertNotIn(self.password, said)
        # the delta holds none of the first bundle's blobs
        first = bh.read_bundle(os.path.join(self.work, "images-2026-12.tar.zst"))
        delta = bh.read_bundle(os.path.join(self.work, "images-2027-01.tar.zst"))
        blobs = lambda files: {n for n in files if n.startswith("blobs/")}  # noqa: E731
        self.assertEqual(blobs(first) & blobs(delta), set())
        self.assertIn("blobs/sha256/" + h.digest_hex(self.next.digest), delta)
        # the disconnected side serves every image with the source's digests
        self.src.stop()
        dest = h.Server()
        self.addCleanup(dest.cleanup)
        dest.root = self.root
        dest.start()
        reg = dest.registry()
        for tag, image in (("1.4", self.app), ("1.4-multi", self.multi), ("1.5", self.next)):
            resp = h.expect_status(reg.get_manifest("team/app", tag, accept=image.media_type),
                                   200)
            self.assertEqual(resp.header("Docker-Content-Digest"), image.digest)
            self.assertEqual(resp.body, image.manifest)
        for digest, data in self.next.blobs.items():
            self.assertEqual(h.expect_status(reg.get_blob("team/app", digest), 200).body, data)
        refs = h.expect_status(reg.referrers("team/app", self.app.digest), 200).json()
        self.assertEqual([m["digest"] for m in refs["manifests"]], [self.sbom.digest])


class PullThroughDmzTest(unittest.TestCase):
    """The document's "Or: pull through a registry in the DMZ": the first ```sh block of
    each of its steps 1 (berth secrets), 2 (the rule, with the AWS CLI) and 3 (pull) read
    out of the document and run in one shell against a site berth on a temporary data
    directory; the DMZ registry is another berth with access keys holding team/app:1.4.

    Substitutions, each checked to apply: /srv/berth becomes the site's data directory,
    http://127.0.0.1:5000 its URL, berth.site:5000 its address, registry.dmz.example:5000
    the DMZ berth's http:// URL (plain HTTP; the AWS CLI takes it as it is: v2, or v1 with
    cli_follow_urlparam = false, as the document says); $UPSTREAM_USER and
    $UPSTREAM_PASSWORD are an access key of the DMZ berth. The `docker pull` line is left
    out (no docker daemon here: docker through berth is tests/integration/clients')."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="berth-airgap-dmz-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.dmz = h.Server()
        self.addCleanup(self.dmz.cleanup)
        self.dmz.start()
        self.app = h.build_image(layer_count=2, layer_size=5000)
        h.expect_status(self.dmz.registry().push_image("team/app", self.app, tag="1.4"), 201)
        self.user, self.password = a.keys_create(self.dmz, "robot", "pull")
        self.site = h.Server()
        self.addCleanup(self.site.cleanup)
        self.root = os.path.join(self.tmp, "srv-berth")
        os.makedirs(self.root)
        self.site.root = self.root
        self.site.start()
        self.work = os.path.join(self.tmp, "work")
        bin_dir = os.path.join(self.tmp, "bin")
        for d in (self.work, bin_dir):
            os.makedirs(d)
        with open(os.path.join(bin_dir, "aws"), "w") as f:
            f.write("#!/bin/sh\nexec %s \"$@\"\n" % " ".join(shlex.quote(x)
                                                          for x in c.aws_command()))
        os.chmod(os.path.join(bin_dir, "aws"), 0o755)
        aws_config = os.path.join(self.tmp, "aws-config")
        with open(aws_config, "w") as f:
            f.write("[default]\ncli_follow_urlparam = false\n")
        self.env = c.aws_env(key="AKIDSITE", secret="site-secret")  # any key: no keys yet
        self.env = {k: v for k, v in self.env.items()
                    if not k.startswith(("BERTH_", "REGISTRY_AUTH", "DOCKER_"))}
        self.env.update(HOME=os.path.join(self.tmp, "home"), AWS_CONFIG_FILE=aws_config,
                        UPSTREAM_USER=self.user, UPSTREAM_PASSWORD=self.password,
                        XDG_RUNTIME_DIR=os.path.join(self.tmp, "run"),
                        PATH="%s:%s:%s" % (bin_dir, os.path.dirname(h.find_berth_bin()),
                                           os.environ["PATH"]))
        os.makedirs(self.env["HOME"])
        os.makedirs(self.env["XDG_RUNTIME_DIR"], mode=0o700)

    def script(self):
        with open(AIR_GAP) as f:
            text = f.read()
        start = text.index("\n## Or: pull through a registry in the DMZ\n")
        part = text[start:text.index("\n## ", start + 1)]
        blocks = []
        for heading in ("1. Credentials for the upstream (if it needs any)", "2. The rule",
                        "3. Pull"):
            found = sh_blocks(section(part, heading))
            self.assertGreaterEqual(len(found), 1, "step %r lost its command block" % heading)
            blocks.append(found[0])
        body = "\n".join(blocks)
        body = substitute(body, "/srv/berth", self.root)
        body = substitute(body, "http://127.0.0.1:5000", self.site.base_url)
        body = substitute(body, "registry.dmz.example:5000", self.dmz.base_url)
        body = substitute(body, "docker pull berth.site:5000/dmz/team/app:1.4\n", "")
        body = substitute(body, "berth.site:5000", "127.0.0.1:%d" % self.site.port)
        return "set -eu\nset -o pipefail\nset -x\n" + body

    def test_pull_through_as_written(self):
        proc = subprocess.run(c.private_mounts(["bash", "-c", self.script()],
                                               ("/var/lib/containers",)),
                              cwd=self.work, env=self.env, capture_output=True, text=True,
                              timeout=300, stdin=subprocess.DEVNULL)
        self.assertEqual(proc.returncode, 0, "the walk-through failed:\n%s\n%s"
                         % (proc.stdout[-4000:], proc.stderr[-6000:]))
        out = proc.stdout + proc.stderr
        self.assertIn("arn:aws:secretsmanager:us-east-1:000000000000:secret:"
                      "ecr-pullthroughcache/dmz", out)
        self.assertRegex(out, r'"isValid": true')
        said = "\n".join(ln for ln in out.splitlines() if not ln.startswith("+ "))
        self.assertNotIn(self.password, said)
        self.assertNotIn(self.password, self.site.log_text())
        # skopeo wrote the image as the DMZ has it
        with open(os.path.join(self.work, "app", "index.json")) as f:
            index = json.load(f)
        self.assertEqual([m["digest"] for m in index["manifests"]], [self.app.digest])
        # fetched from the DMZ once, with the secret's key; now served by the site
        log = self.dmz.log_text()
        self.assertRegex(log, r"event=access method=GET path=/v2/team/app/manifests/1\.4 "
                              r"status=200")
        resp = h.expect_status(self.site.registry().get_manifest(
            "dmz/team/app", "1.4", accept=self.app.media_type), 200)
        self.assertEqual(resp.header("Docker-Content-Digest"), self.app.digest)
        self.assertEqual(resp.body, self.app.manifest)


if __name__ == "__main__":
    unittest.main(verbosity=2)
