"""The docker CLI through a real dockerd (Debian's docker.io, 20.10) against berth: login with
the ECR token and with an access key, push, pull by tag and by digest, multi-arch `docker
manifest create/push/inspect --insecure`, and what a user reads for an immutable tag and an
expired token.

dockerd runs on a private socket and data root (lib/daemons.py). Images come from `docker
load` of archives the test writes, so what comes back is checked against what went in: the
image ID (the config's digest) and the layers' diff IDs, which dockerd verifies on pull.
"""
# berth-suite: daemons

import base64
import json
import re
import subprocess

import clients as c  # first: it cleans the environment botocore reads
import auth_helpers as e
import berth_harness as h
import daemons as d

DIGEST_RE = re.compile(r"digest: (sha256:[0-9a-f]{64}) size: (\d+)")
EXPIRED = "Your authorization token has expired. Reauthenticate and try again."

dockerd = None


def setUpModule():
    global dockerd
    dockerd = d.Dockerd(d.scratch_dir("berth-dockerd-"))
    d.start_all(dockerd)


def tearDownModule():
    d.remove_all(dockerd)


class DockerMixin:
    def setUp(self):
        super().setUp()
        dockerd.reset_client_config()

    @property
    def host(self):
        return "127.0.0.1:%d" % self.server.port

    def docker(self, *args, **kwargs):
        return dockerd.docker(*args, **kwargs)

    def load(self, image):
        self.assertIn("Loaded image: " + image.tag, dockerd.load(image).out)

    def push(self, image, ref):
        """docker load + tag + push; returns the manifest digest docker printed."""
        self.load(image)
        self.docker("tag", image.tag, ref)
        out = self.docker("push", ref).out
        m = DIGEST_RE.search(out)
        self.assertIsNotNone(m, out)
        return m.group(1)

    def forget(self, *refs):
        """Remove the images from dockerd, so that the next pull must fetch them."""
        self.docker("rmi", "--force", *refs)
        for ref in refs:
            self.assertNotEqual(self.docker("image", "inspect", ref, check=False).rc, 0, ref)

    def assertPulled(self, ref, image):
        """ref is in dockerd with image's config (image ID) and layers (diff IDs)."""
        self.assertEqual(dockerd.image_ids(ref), (image.image_id, image.diff_ids))

    def login(self, user, password):
        return self.docker("login", "--username", user, "--password-stdin", self.host,
                           input=password)


class DockerTest(DockerMixin, e.KeyedServerTestCase):
    """One berth with access keys; the admin's key and ECR token."""

    def berth_manifest(self, repo, ref):
        resp = self.assertStatus(self.admin_reg.get_manifest(repo, ref, accept=h.DOCKER_ACCEPT),
                                 200)
        return resp

    def test_login_with_ecr_token_push_pull_by_tag_and_digest(self):
        # aws ecr get-login-password | docker login, as the ECR docs say
        pipeline = ("set -o pipefail; %s ecr get-login-password --endpoint-url %s | "
                    "%s login --username AWS --password-stdin %s"
                    % (c.AWS_BIN, self.server.base_url, d.docker_cli(), self.host))
        env = dict(dockerd.env())
        env.update({k: v for k, v in c.aws_env(*self.admin).items() if k.startswith("AWS_")})
        proc = subprocess.run(["/bin/bash", "-c", pipeline], capture_output=True, env=env,
                              timeout=d.CLIENT_TIMEOUT, stdin=subprocess.DEVNULL)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn(b"Login Succeeded", proc.stdout)
        user, password = base64.b64decode(dockerd.credentials()[self.host]["auth"]).decode() \
            .split(":", 1)
        self.assertEqual(user, "AWS")

        # a 24 MiB layer (random, so its gzip is as large) streams in one PATCH past berth's
        # 8 MiB write-back pieces
        image = d.SavedImage("itest/docker/token:v1", sizes=[24 << 20, 4096, 64 * 1024])
        ref = "%s/team/token:v1" % self.host
        digest = self.push(image, ref)
        # what berth holds is what docker pushed: the digest, the config, three layers
        resp = self.berth_manifest("team/token", "v1")
        self.assertEqual(resp.header("Docker-Content-Digest"), digest)
        self.assertEqual(h.digest_of(resp.body), digest)
        manifest = json.loads(resp.body)
        self.assertEqual(manifest["mediaType"], h.MT_DOCKER_MANIFEST)
        self.assertEqual(manifest["config"]["digest"], image.image_id)
        self.assertEqual(len(manifest["layers"]), 3)
        config = self.assertStatus(self.admin_reg.get_blob("team/token", image.image_id), 200)
        self.assertEqual(config.body, image.config)
        # the ECR API lists the same image
        listed = self.ecr.describe_images(repositoryName="team/token")["imageDetails"]
        self.assertEqual([(i["imageDigest"], i["imageTags"]) for i in listed], [(digest, ["v1"])])
        self.assertEqual(listed[0]["imageSizeInBytes"],
                         sum(layer["size"] for layer in manifest["layers"]))
        # pushing the same image again uploads nothing and names the same digest
        out = self.docker("push", ref).out
        self.assertIn("Layer already exists", out)
        self.assertEqual(DIGEST_RE.search(out).group(1), digest)

        self.forget(ref, image.tag)
        out = self.docker("pull", ref).out
        self.assertIn("Digest: " + digest, out)
        self.assertPulled(ref, image)
        by_digest = "%s/team/token@%s" % (self.host, digest)
        self.forget(ref)
        self.docker("pull", by_digest)
        self.assertPulled(by_digest, image)
        doc = json.loads(self.docker("image", "inspect", by_digest).out)[0]
        self.assertIn(by_digest, doc["RepoDigests"])

        self.docker("logout", self.host)
        self.forget(by_digest)
        result = self.docker("pull", ref, check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("no basic auth credentials", result.err)

    def test_login_with_access_key(self):
        out = self.login(*self.admin).out
        self.assertIn("Login Succeeded", out)
        image = d.SavedImage("itest/docker/key:v1")
        ref = "%s/team/key:v1" % self.host
        digest = self.push(image, ref)
        self.assertEqual(self.berth_manifest("team/key", digest).header("Docker-Content-Digest"),
                         digest)
        self.forget(ref, image.tag)
        self.docker("pull", "%s/team/key@%s" % (self.host, digest))
        self.assertPulled("%s/team/key@%s" % (self.host, digest), image)

        # a wrong secret: docker login says the registry refused it
        result = self.docker("login", "--username", self.admin[0], "--password-stdin",
                             self.host, input=self.admin[1] + "x", check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("401 Unauthorized", result.err)
        # a key that may only pull: its pull works, its push is denied
        self.assertIn("Login Succeeded", self.login(*self.puller).out)
        self.forget("%s/team/key@%s" % (self.host, digest))
        self.docker("pull", ref)
        self.assertPulled(ref, image)
        other = d.SavedImage("itest/docker/key:v2")
        self.load(other)
        self.docker("tag", other.tag, "%s/team/key:v2" % self.host)
        result = self.docker("push", "%s/team/key:v2" % self.host, check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("denied", result.err)
        self.assertStatus(self.admin_reg.get_manifest("team/key", "v2"), 404)

    def test_manifest_create_push_inspect(self):
        self.login(*self.admin)
        repo = "team/multi"
        images = {arch: d.SavedImage("itest/docker/multi:" + arch, arch=arch)
                  for arch in ("amd64", "arm64")}
        digests = {arch: self.push(img, "%s/%s:%s" % (self.host, repo, arch))
                   for arch, img in images.items()}
        target = "%s/%s:v1" % (self.host, repo)
        self.docker("manifest", "create", "--insecure", target,
                    *["%s/%s@%s" % (self.host, repo, digests[a]) for a in ("amd64", "arm64")])
        out = self.docker("manifest", "push", "--insecure", target).out
        m = re.search(r"sha256:[0-9a-f]{64}", out)
        self.assertIsNotNone(m, out)
        index_digest = m.group(0)

        resp = self.berth_manifest(repo, "v1")
        self.assertEqual(resp.header("Docker-Content-Digest"), index_digest)
        self.assertEqual(h.digest_of(resp.body), index_digest)
        index = json.loads(resp.body)
        self.assertEqual(index["mediaType"], h.MT_DOCKER_LIST)
        self.assertEqual(sorted((m["platform"]["architecture"], m["digest"])
                                for m in index["manifests"]), sorted(digests.items()))
        # inspect reads it back, every time (Go's HTTPS probe must get an answer first)
        for _ in range(10):
            shown = json.loads(self.docker("manifest", "inspect", "--insecure", target).out)
            self.assertEqual(shown, index)
        shown = json.loads(self.docker("manifest", "inspect", "--insecure",
                                       "%s/%s@%s" % (self.host, repo, digests["arm64"])).out)
        self.assertEqual(shown["config"]["digest"], images["arm64"].image_id)
        # dockerd picks the arm64 child from the list
        for img in images.values():
            self.forget(img.tag)
        self.docker("pull", "--platform", "linux/arm64", target)
        self.assertPulled(target, images["arm64"])

    def test_immutable_tag_message(self):
        self.login(*self.admin)
        self.ecr.create_repository(repositoryName="team/fixed", imageTagMutability="IMMUTABLE")
        first = d.SavedImage("itest/docker/fixed:one")
        ref = "%s/team/fixed:v1" % self.host
        digest = self.push(first, ref)
        self.assertEqual(DIGEST_RE.search(self.docker("push", ref).out).group(1), digest)
        second = d.SavedImage("itest/docker/fixed:two")
        self.load(second)
        self.docker("tag", second.tag, ref)
        result = self.docker("push", ref, check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("tag invalid: The image tag 'v1' already exists in the 'team/fixed' "
                      "repository and cannot be overwritten because the tag is immutable.",
                      result.err)
        self.assertEqual(self.berth_manifest("team/fixed", "v1").header("Docker-Content-Digest"),
                         digest)


class DockerExpiredTokenTest(DockerMixin, h.ServerTestCase):
    """A berth whose tokens live a few seconds."""

    TTL = 4
    server_config = {"auth": {"token_ttl_seconds": TTL}}

    def test_expired_token_message(self):
        admin = e.keys_create(self.server, "admin")
        admin_reg = e.AuthRegistry(self.server.base_url, e.basic(*admin))
        ecr = c.ecr_client(self.server, *admin)
        image = h.build_image(layer_count=1, docker=True)
        self.assertStatus(admin_reg.push_image("team/app", image, tag="v1"), 201)
        for _ in range(3):  # a machine too busy to log in within the token's life retries
            password = e.login_password(ecr)
            result = self.docker("login", "--username", "AWS", "--password-stdin", self.host,
                                 input=password, check=False)
            if result.rc == 0:
                break
        else:
            self.fail(result)
        token_reg = e.AuthRegistry(self.server.base_url, e.basic("AWS", password))
        h.wait_until(lambda: token_reg.ping().status == 403, self.TTL + 60,
                     interval=0.2, what="the token to expire")
        result = self.docker("pull", "%s/team/app:v1" % self.host, check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("denied: " + EXPIRED, result.err)
        pushed = d.SavedImage("itest/docker/expired:v1")
        self.load(pushed)
        self.docker("tag", pushed.tag, "%s/team/app:v2" % self.host)
        result = self.docker("push", "%s/team/app:v2" % self.host, check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn(EXPIRED, result.err)
        # a fresh token works again
        self.login("AWS", e.login_password(ecr))
        self.docker("pull", "%s/team/app:v1" % self.host)


if __name__ == "__main__":
    h.main()
