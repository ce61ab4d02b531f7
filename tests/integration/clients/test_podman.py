"""podman and buildah against berth: images built FROM scratch (vfs storage, cgroupfs,
private storage.conf, registries.conf and auth file; lib/daemons.py), `login` with the ECR
token and with an access key, push, pull by tag and by digest, and a multi-arch list pushed
with `podman manifest push --all`.

What berth holds is checked against what was built: the digest podman wrote
(--digestfile), the config (the image ID) and the file inside the pushed layer; what comes
back is the same image ID.
"""
# berth-suite: daemons

import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile

import clients as c  # first: it cleans the environment botocore reads
import auth_helpers as e
import berth_harness as h
import daemons as d

engine = None


def setUpModule():
    global engine
    engine = d.Podman(d.scratch_dir("berth-podman-"))


def tearDownModule():
    d.remove_all(engine)


class PodmanTest(e.KeyedServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        engine.insecure(cls.host)

    def setUp(self):
        super().setUp()
        if os.path.exists(engine.auth_file):
            os.unlink(engine.auth_file)

    def context(self, name, content):
        """A build context: Containerfile FROM scratch copying one file of content."""
        ctx = os.path.join(engine.work, "ctx-" + name)
        shutil.rmtree(ctx, ignore_errors=True)
        os.makedirs(ctx)
        with open(os.path.join(ctx, "payload.bin"), "wb") as f:
            f.write(content)
        with open(os.path.join(ctx, "Containerfile"), "w") as f:
            f.write("FROM scratch\nCOPY payload.bin /payload.bin\nCMD [\"/payload.bin\"]\n")
        return ctx

    def image_id(self, ref, tool="podman"):
        run = engine.podman if tool == "podman" else engine.buildah
        doc = json.loads(run("inspect", "--type", "image", ref).out)
        doc = doc[0] if isinstance(doc, list) else doc
        return "sha256:" + (doc.get("Id") or doc["FromImageID"])

    def digest_file(self, name):
        return os.path.join(engine.work, name + ".digest")

    def read_digest(self, name):
        with open(self.digest_file(name)) as f:
            return f.read().strip()

    def assertPushed(self, repo, ref, digest, image_id, content):
        """berth holds the manifest podman named, its config is the image podman built, and
        its one layer carries /payload.bin with content."""
        resp = self.assertStatus(self.admin_reg.get_manifest(repo, ref, accept=h.DOCKER_ACCEPT),
                                 200)
        self.assertEqual(resp.header("Docker-Content-Digest"), digest)
        self.assertEqual(h.digest_of(resp.body), digest)
        manifest = json.loads(resp.body)
        self.assertEqual(manifest["config"]["digest"], image_id)
        self.assertEqual(len(manifest["layers"]), 1)
        layer = self.assertStatus(self.admin_reg.get_blob(repo, manifest["layers"][0]["digest"]),
                                  200).body
        self.assertEqual(h.digest_of(layer), manifest["layers"][0]["digest"])
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as tar:
            self.assertEqual(tar.extractfile("payload.bin").read(), content)
        return manifest

    def test_build_push_pull_with_the_ecr_token(self):
        pipeline = ("set -o pipefail; %s ecr get-login-password --endpoint-url %s | "
                    "\"$@\" login --username AWS --password-stdin %s"
                    % (c.AWS_BIN, self.server.base_url, self.host))
        env = engine.env()
        env.update({k: v for k, v in c.aws_env(*self.admin).items() if k.startswith("AWS_")})
        proc = subprocess.run(["/bin/bash", "-c", pipeline, "login"] +
                              engine.command(d.Podman.PODMAN_BIN), capture_output=True, env=env,
                              timeout=d.CLIENT_TIMEOUT, stdin=subprocess.DEVNULL)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn(b"Login Succeeded", proc.stdout)
        with open(engine.auth_file) as f:
            self.assertIn(self.host, json.load(f)["auths"])

        content = h.random_bytes(100 * 1024)
        ref = "%s/team/built:v1" % self.host
        engine.podman("build", "--format", "docker", "-t", ref, self.context("token", content))
        image_id = self.image_id(ref)
        engine.podman("push", "--digestfile", self.digest_file("token"), ref)
        digest = self.read_digest("token")
        self.assertPushed("team/built", "v1", digest, image_id, content)

        engine.podman("rmi", ref)
        self.assertNotEqual(engine.podman("image", "exists", ref, check=False).rc, 0)
        engine.podman("pull", ref)
        self.assertEqual(self.image_id(ref), image_id)
        engine.podman("rmi", ref)
        by_digest = "%s/team/built@%s" % (self.host, digest)
        engine.podman("pull", by_digest)
        self.assertEqual(self.image_id(by_digest), image_id)
        engine.podman("rmi", by_digest)

        engine.podman("logout", self.host)
        result = engine.podman("pull", ref, check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("unauthorized", result.err.lower())

    def test_buildah_with_an_access_key(self):
        # buildah's login does not read registries.conf's insecure flag (podman's does)
        out = engine.buildah("login", "--tls-verify=false", "--username", self.admin[0],
                             "--password-stdin", self.host, input=self.admin[1]).out
        self.assertIn("Login Succeeded", out)
        content = h.random_bytes(10 * 1024)
        ref = "%s/team/buildah:v1" % self.host
        engine.buildah("build", "-t", ref, self.context("buildah", content))
        image_id = self.image_id(ref)
        engine.buildah("push", "--digestfile", self.digest_file("buildah"), ref)
        digest = self.read_digest("buildah")
        manifest = self.assertPushed("team/buildah", "v1", digest, image_id, content)
        self.assertEqual(manifest["mediaType"], h.MT_OCI_MANIFEST)  # buildah's default
        engine.buildah("rmi", ref)
        engine.buildah("pull", "%s/team/buildah@%s" % (self.host, digest))
        self.assertEqual(self.image_id("%s/team/buildah@%s" % (self.host, digest), "buildah"),
                         image_id)
        engine.buildah("rmi", "%s/team/buildah@%s" % (self.host, digest))

        # a wrong secret is refused at login; a pull-only key cannot push
        result = engine.podman("login", "--username", self.admin[0], "--password-stdin",
                               self.host, input=self.admin[1] + "x", check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("invalid username/password", result.err)
        engine.podman("login", "--username", self.puller[0], "--password-stdin", self.host,
                      input=self.puller[1])
        other = "%s/team/buildah:v2" % self.host
        engine.podman("build", "-t", other, self.context("denied", b"denied"))
        result = engine.podman("push", other, check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("denied", result.err)
        self.assertStatus(self.admin_reg.get_manifest("team/buildah", "v2"), 404)
        engine.podman("rmi", other)

    def test_zstd_layers(self):
        engine.podman("login", "--username", self.admin[0], "--password-stdin", self.host,
                      input=self.admin[1])
        content = h.random_bytes(50 * 1024)
        ref = "%s/team/zstd:v1" % self.host
        engine.podman("build", "-t", ref, self.context("zstd", content))
        image_id = self.image_id(ref)
        engine.podman("push", "--compression-format", "zstd",
                      "--digestfile", self.digest_file("zstd"), ref)
        digest = self.read_digest("zstd")
        resp = self.assertStatus(self.admin_reg.get_manifest("team/zstd", "v1"), 200)
        self.assertEqual(resp.header("Docker-Content-Digest"), digest)
        manifest = json.loads(resp.body)
        self.assertEqual(manifest["config"]["digest"], image_id)
        self.assertEqual([x["mediaType"] for x in manifest["layers"]],
                         ["application/vnd.oci.image.layer.v1.tar+zstd"])
        layer = self.assertStatus(self.admin_reg.get_blob(
            "team/zstd", manifest["layers"][0]["digest"]), 200).body
        self.assertEqual(layer[:4], b"\x28\xb5\x2f\xfd")  # the zstd frame magic
        engine.podman("rmi", ref)
        engine.podman("pull", ref)
        self.assertEqual(self.image_id(ref), image_id)
        engine.podman("rmi", ref)

    def test_manifest_push_all(self):
        engine.podman("login", "--username", self.admin[0], "--password-stdin", self.host,
                      input=self.admin[1])
        ids = {}
        for arch in ("amd64", "arm64"):
            local = "localhost/multi:" + arch
            engine.podman("build", "--platform", "linux/" + arch, "-t", local,
                          self.context("multi-" + arch, h.random_bytes(4096)))
            ids[arch] = self.image_id(local)
        engine.podman("manifest", "create", "localhost/multi:list")
        for arch in ids:
            engine.podman("manifest", "add", "localhost/multi:list",
                          "containers-storage:localhost/multi:" + arch)
        target = "%s/team/multi:v1" % self.host
        engine.podman("manifest", "push", "--all", "--digestfile", self.digest_file("multi"),
                      "localhost/multi:list", "docker://" + target)
        digest = self.read_digest("multi")

        resp = self.assertStatus(self.admin_reg.get_manifest("team/multi", "v1",
                                                             accept=h.DOCKER_ACCEPT), 200)
        self.assertEqual(resp.header("Docker-Content-Digest"), digest)
        index = json.loads(resp.body)
        self.assertEqual(sorted(m["platform"]["architecture"] for m in index["manifests"]),
                         ["amd64", "arm64"])
        for desc in index["manifests"]:  # --all: every child is in berth
            child = self.assertStatus(self.admin_reg.get_manifest(
                "team/multi", desc["digest"], accept=h.DOCKER_ACCEPT), 200)
            self.assertEqual(h.digest_of(child.body), desc["digest"])
            self.assertEqual(json.loads(child.body)["config"]["digest"],
                             ids[desc["platform"]["architecture"]])

        engine.podman("manifest", "rm", "localhost/multi:list")
        engine.podman("rmi", "localhost/multi:amd64", "localhost/multi:arm64")
        engine.podman("pull", "--arch", "arm64", target)
        self.assertEqual(self.image_id(target), ids["arm64"])
        engine.podman("rmi", target)


if __name__ == "__main__":
    h.main()
