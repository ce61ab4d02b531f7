"""crane (go-containerregistry 0.14, built by the build from Debian's source into
<build>/tools/crane) against berth: `auth login` with the ECR token and with an access key,
push of a docker save tarball and of OCI layouts (an image and a multi-arch index), copy,
append, tag, `validate --remote`, catalog, ls, digest, manifest, blob and delete.

Every digest crane prints is checked against what berth serves, and what berth serves
against what the test wrote: an OCI layout's manifests come back byte for byte, a tarball's
config is the same config, an appended layer decompresses to the tar that was appended.
"""
# berth-suite: daemons

import gzip
import json
import os
import re
import shutil
import tempfile

import clients as c  # first: it cleans the environment botocore reads  # noqa: F401
import auth_helpers as e
import berth_harness as h
import daemons as d

# crane prints "REF@DIGEST" on stdout (append) or logs "REF: digest: DIGEST size: N" (push)
DIGEST_RE = re.compile(r"(?:@|digest: )(sha256:[0-9a-f]{64})")


def crane_bin():
    build = os.environ.get("BERTH_BUILD_DIR") or os.path.join(
        os.path.dirname(__file__), "..", "..", "..", "build")
    path = os.path.join(build, "tools", "crane")
    if not os.access(path, os.X_OK):
        raise AssertionError("%s is missing: the build makes it from Debian's "
                             "golang-github-google-go-containerregistry-dev with golang-go, "
                             "which scripts/setup-deps.sh installs (re-run cmake after it)"
                             % path)
    return path


class CraneTest(e.KeyedServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.work = tempfile.mkdtemp(prefix="berth-crane-")
        cls.addClassCleanup(shutil.rmtree, cls.work, True)
        cls.config_dir = os.path.join(cls.work, "docker-config")
        os.makedirs(os.path.join(cls.work, "home"))

    def setUp(self):
        super().setUp()
        shutil.rmtree(self.config_dir, ignore_errors=True)
        os.makedirs(self.config_dir)

    def crane(self, *args, check=True, input=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update({"DOCKER_CONFIG": self.config_dir, "HOME": os.path.join(self.work, "home")})
        return d.run_client([crane_bin()] + [str(a) for a in args] + ["--insecure"], env,
                            check=check, input=input)

    def login(self, user, password):
        out = self.crane("auth", "login", self.host, "--username", user, "--password-stdin",
                         input=password).err
        self.assertIn("logged in via", out)

    def ref(self, repo, tag_or_digest):
        sep = "@" if tag_or_digest.startswith("sha256:") else ":"
        return "%s/%s%s%s" % (self.host, repo, sep, tag_or_digest)

    def berth_manifest(self, repo, ref):
        return self.assertStatus(self.admin_reg.get_manifest(repo, ref, accept=h.DOCKER_ACCEPT),
                                 200)

    def assertInBerth(self, repo, ref, image):
        resp = self.berth_manifest(repo, ref)
        self.assertEqual(resp.body, image.manifest)
        for child in image.children:
            self.assertInBerth(repo, child.digest, child)
        for digest, data in image.blobs.items():
            self.assertEqual(self.assertStatus(self.admin_reg.get_blob(repo, digest), 200).body,
                             data)

    def push_layout(self, image, ref):
        layout = tempfile.mkdtemp(prefix="layout-", dir=self.work)
        h.write_oci_layout(layout, {"v": image})
        return self.pushed_digest(self.crane("push", layout, ref))

    def pushed_digest(self, result):
        """The digest crane names last (an index's children are logged before it)."""
        found = DIGEST_RE.findall(result.out) or DIGEST_RE.findall(result.err)
        self.assertTrue(found, result)
        return found[-1]

    def test_push_tarball_with_the_ecr_token(self):
        self.login("AWS", e.login_password(self.ecr))
        with open(os.path.join(self.config_dir, "config.json")) as f:
            self.assertIn(self.host, json.load(f)["auths"])
        saved = d.SavedImage("team/tarball:v1", layer_count=2)
        path = os.path.join(self.work, "saved.tar")
        with open(path, "wb") as f:
            f.write(saved.archive())
        digest = self.pushed_digest(self.crane("push", path, self.ref("team/tarball", "v1")))
        resp = self.berth_manifest("team/tarball", "v1")
        self.assertEqual(resp.header("Docker-Content-Digest"), digest)
        manifest = json.loads(resp.body)
        self.assertEqual(manifest["config"]["digest"], saved.image_id)
        self.assertEqual(self.crane("config", self.ref("team/tarball", "v1")).raw, saved.config)
        self.assertEqual(self.crane("blob", self.ref("team/tarball", saved.image_id)).raw,
                         saved.config)
        for desc, layer in zip(manifest["layers"], saved.layers):
            blob = self.assertStatus(self.admin_reg.get_blob("team/tarball", desc["digest"]),
                                     200).body
            self.assertEqual(gzip.decompress(blob), layer)
        self.assertEqual(self.crane("digest", self.ref("team/tarball", "v1")).out.strip(), digest)
        self.assertEqual(self.crane("manifest", self.ref("team/tarball", "v1")).raw, resp.body)
        self.assertIn("PASS", self.crane("validate", "--remote",
                                         self.ref("team/tarball", "v1")).out)

    def test_layouts_copy_tag_append_validate(self):
        self.login(*self.admin)
        image = h.build_image(layer_count=2, layer_size=32 * 1024)
        digest = self.push_layout(image, self.ref("team/app", "v1"))
        self.assertEqual(digest, image.digest)
        self.assertInBerth("team/app", "v1", image)

        index = h.Index([h.build_image(layer_count=1, arch=a) for a in ("amd64", "arm64")],
                        platforms=[{"os": "linux", "architecture": "amd64"},
                                   {"os": "linux", "architecture": "arm64"}])
        self.assertEqual(self.push_layout(index, self.ref("team/multi", "v1")), index.digest)
        self.assertInBerth("team/multi", "v1", index)

        # copy keeps every digest, an index with its children
        self.crane("copy", self.ref("team/app", "v1"), self.ref("team/copy", "v1"))
        self.assertInBerth("team/copy", "v1", image)
        self.crane("copy", self.ref("team/multi", "v1"), self.ref("team/copy", "multi"))
        self.assertInBerth("team/copy", "multi", index)

        self.crane("tag", self.ref("team/app", "v1"), "latest")
        self.assertEqual(self.berth_manifest("team/app", "latest").header(
            "Docker-Content-Digest"), image.digest)
        self.assertEqual(sorted(self.crane("ls", "%s/team/app" % self.host).out.split()),
                         ["latest", "v1"])

        # append a layer: the base's layers, then the new one, pushed compressed
        layer = h.make_layer({"appended.txt": os.urandom(2048)}, compress=False)[0]
        layer_path = os.path.join(self.work, "append.tar")
        with open(layer_path, "wb") as f:
            f.write(layer)
        appended = self.pushed_digest(self.crane(
            "append", "-b", self.ref("team/app", "v1"), "-f", layer_path, "-t",
            self.ref("team/app", "v2")))
        resp = self.berth_manifest("team/app", "v2")
        self.assertEqual(resp.header("Docker-Content-Digest"), appended)
        manifest = json.loads(resp.body)
        self.assertEqual([x["digest"] for x in manifest["layers"][:2]], image.layer_digests)
        blob = self.assertStatus(self.admin_reg.get_blob(
            "team/app", manifest["layers"][2]["digest"]), 200).body
        self.assertEqual(gzip.decompress(blob), layer)
        config = json.loads(self.crane("config", self.ref("team/app", "v2")).out)
        self.assertEqual(config["rootfs"]["diff_ids"][-1], h.digest_of(layer))

        for ref in (self.ref("team/app", "v1"), self.ref("team/app", "v2"),
                    self.ref("team/multi", "v1"), self.ref("team/copy", "multi")):
            self.assertIn("PASS", self.crane("validate", "--remote", ref).out)

        catalog = self.crane("catalog", self.host).out.split()
        for repo in ("team/app", "team/copy", "team/multi"):
            self.assertIn(repo, catalog)

        self.crane("delete", self.ref("team/copy", image.digest))
        self.assertStatus(self.admin_reg.get_manifest("team/copy", image.digest), 404)

    def test_refusals(self):
        image = h.build_image(layer_count=1)
        self.login(self.admin[0], self.admin[1] + "x")  # crane stores it without trying it
        result = self.crane("ls", "%s/team/app" % self.host, check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("UNAUTHORIZED", result.err)
        self.login(*self.puller)
        layout = tempfile.mkdtemp(prefix="layout-", dir=self.work)
        h.write_oci_layout(layout, {"v": image})
        result = self.crane("push", layout, self.ref("team/refused", "v1"), check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("DENIED", result.err)
        self.assertStatus(self.admin_reg.get_manifest("team/refused", "v1"), 404)


if __name__ == "__main__":
    h.main()
