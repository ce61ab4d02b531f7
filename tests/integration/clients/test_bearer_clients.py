"""Real clients through Docker's token protocol (`auth.scheme: bearer`): skopeo, podman
(private vfs storage, lib/daemons.py), docker (a private dockerd), ctr (a private
containerd) and crane log in with an access key, push and pull through Bearer tokens from
/v2/token; docker keeps the refresh token
login returned and pulls a policy-public repository without `docker login`; a key that may
only pull cannot push; an anonymous client cannot read a private repository. berth's log
shows each token issued, so the Bearer flow (not Basic) is what the clients used. The raw
protocol and its error cases are in auth/test_bearer.py."""
# berth-suite: daemons

import json
import os
import re
import shutil
import tempfile

import clients as c  # first: it cleans the environment botocore reads
import auth_helpers as e
import berth_harness as h
import daemons as d

PUBLIC_POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Sid": "public", "Effect": "Allow", "Principal": "*",
    "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
               "ecr:BatchCheckLayerAvailability"]}]})
DIGEST_RE = re.compile(r"digest: (sha256:[0-9a-f]{64}) size: (\d+)")

dockerd = None
containerd = None
engine = None


def setUpModule():
    global dockerd, containerd, engine
    engine = d.Podman(d.scratch_dir("berth-bearer-podman-"))
    dockerd = d.Dockerd(d.scratch_dir("berth-bearer-dockerd-"))
    containerd = d.Containerd(d.scratch_dir("berth-bearer-ctrd-"))
    d.start_all(dockerd, containerd)


def tearDownModule():
    d.remove_all(dockerd, containerd, engine)


def crane_bin():
    """<build>/tools/crane, built by the build from Debian's go-containerregistry source
    (as clients/test_crane.py uses it)."""
    build = os.environ.get("BERTH_BUILD_DIR") or os.path.join(
        os.path.dirname(__file__), "..", "..", "..", "build")
    path = os.path.join(build, "tools", "crane")
    if not os.access(path, os.X_OK):
        raise AssertionError("%s is missing: the build makes it (scripts/setup-deps.sh "
                             "installs what it needs; re-run cmake after it)" % path)
    return path


class BearerClientsTest(h.ServerTestCase):
    server_config = {"auth": {"scheme": "bearer"}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = e.keys_create(cls.server, "admin")
        cls.reader = e.keys_create(cls.server, "reader", "pull:team/*")
        cls.admin_reg = e.AuthRegistry(cls.server.base_url, e.basic(*cls.admin))
        cls.ecr = c.ecr_client(cls.server, *cls.admin)
        cls.host = "127.0.0.1:%d" % cls.server.port
        cls.work = tempfile.mkdtemp(prefix="berth-bearer-")
        cls.addClassCleanup(shutil.rmtree, cls.work, True)
        engine.insecure(cls.host)

    def setUp(self):
        super().setUp()
        dockerd.reset_client_config()
        if os.path.exists(engine.auth_file):
            os.unlink(engine.auth_file)

    def tokens_issued(self, akid):
        """How many bearer tokens berth's log says it issued to akid ("-": anonymous)."""
        pattern = re.compile(r"\bevent=token_issued key=%s\s" % re.escape(akid))
        return len(pattern.findall(self.server.log_text()))

    def assertTokensIssued(self, akid, before):
        self.assertGreater(self.tokens_issued(akid), before,
                           "no bearer token issued to %s: the client did not use the Bearer "
                           "flow" % akid)

    # -- skopeo --------------------------------------------------------------------------------

    def test_skopeo_login_push_inspect_pull(self):
        sk = c.Skopeo(os.path.join(self.work, "skopeo"))
        image = h.build_image(layer_count=2, layer_size=32 * 1024)
        layout = os.path.join(self.work, "sk-src")
        h.write_oci_layout(layout, {"v1": image})
        before = self.tokens_issued(self.admin[0])
        out = sk.run("login", "--tls-verify=false", "--username", self.admin[0],
                     "--password", self.admin[1], self.host).stdout.decode()
        self.assertIn("Login Succeeded", out)
        sk.run("copy", "--preserve-digests", "--dest-tls-verify=false", "oci:%s:v1" % layout,
               "docker://%s/team/skopeo:v1" % self.host)
        self.assertTokensIssued(self.admin[0], before)
        got = self.assertStatus(self.admin_reg.get_manifest("team/skopeo", "v1"), 200)
        self.assertEqual(got.header("Docker-Content-Digest"), image.digest)
        inspect = json.loads(sk.run("inspect", "--tls-verify=false",
                                    "docker://%s/team/skopeo:v1" % self.host).stdout)
        self.assertEqual(inspect["Digest"], image.digest)
        out_dir = os.path.join(self.work, "sk-out")
        sk.run("copy", "--src-tls-verify=false", "docker://%s/team/skopeo:v1" % self.host,
               "oci:%s:v1" % out_dir)
        for digest, data in image.blobs.items():
            self.assertEqual(h.read_oci_layout_blob(out_dir, digest), data)

        # a key that may only pull: its pull works, its push is refused
        sk.run("login", "--tls-verify=false", "--username", self.reader[0],
               "--password", self.reader[1], self.host)
        sk.run("inspect", "--tls-verify=false", "docker://%s/team/skopeo:v1" % self.host)
        proc = sk.run("copy", "--dest-tls-verify=false", "oci:%s:v1" % layout,
                      "docker://%s/team/skopeo:v2" % self.host, check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("unauthorized: the bearer token does not grant this access",
                      proc.stderr.decode())
        self.assertStatus(self.admin_reg.get_manifest("team/skopeo", "v2"), 404)

    def test_skopeo_anonymous_public_and_private(self):
        image = h.build_image(layer_count=1, layer_size=8 * 1024)
        for repo in ("pub/sk", "team/sk-private"):
            self.assertStatus(self.admin_reg.push_image(repo, image, tag="v1"), 201)
        self.ecr.set_repository_policy(repositoryName="pub/sk", policyText=PUBLIC_POLICY)
        sk = c.Skopeo(os.path.join(self.work, "skopeo-anon"))
        before = self.tokens_issued("-")
        inspect = json.loads(sk.run("inspect", "--tls-verify=false", "--no-creds",
                                    "docker://%s/pub/sk:v1" % self.host).stdout)
        self.assertEqual(inspect["Digest"], image.digest)
        self.assertTokensIssued("-", before)
        proc = sk.run("inspect", "--tls-verify=false", "--no-creds",
                      "docker://%s/team/sk-private:v1" % self.host, check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("unauthorized: the bearer token does not grant this access",
                      proc.stderr.decode())

    # -- podman --------------------------------------------------------------------------------

    def context(self, name, content):
        ctx = os.path.join(engine.work, "ctx-" + name)
        shutil.rmtree(ctx, ignore_errors=True)
        os.makedirs(ctx)
        with open(os.path.join(ctx, "payload.bin"), "wb") as f:
            f.write(content)
        with open(os.path.join(ctx, "Containerfile"), "w") as f:
            f.write("FROM scratch\nCOPY payload.bin /payload.bin\nCMD [\"/payload.bin\"]\n")
        return ctx

    def podman_image_id(self, ref):
        doc = json.loads(engine.podman("inspect", "--type", "image", ref).out)
        return "sha256:" + doc[0]["Id"]

    def test_podman_login_push_pull(self):
        before = self.tokens_issued(self.admin[0])
        out = engine.podman("login", "--username", self.admin[0], "--password-stdin",
                            self.host, input=self.admin[1]).out
        self.assertIn("Login Succeeded", out)
        content = h.random_bytes(64 * 1024)
        ref = "%s/team/podman:v1" % self.host
        engine.podman("build", "--format", "docker", "-t", ref, self.context("bearer", content))
        image_id = self.podman_image_id(ref)
        digest_file = os.path.join(engine.work, "bearer.digest")
        engine.podman("push", "--digestfile", digest_file, ref)
        self.assertTokensIssued(self.admin[0], before)
        with open(digest_file) as f:
            digest = f.read().strip()
        got = self.assertStatus(self.admin_reg.get_manifest("team/podman", "v1",
                                                            accept=h.DOCKER_ACCEPT), 200)
        self.assertEqual(got.header("Docker-Content-Digest"), digest)
        self.assertEqual(json.loads(got.body)["config"]["digest"], image_id)
        engine.podman("rmi", ref)
        engine.podman("pull", ref)
        self.assertEqual(self.podman_image_id(ref), image_id)
        # logged out: the private repository is refused
        engine.podman("logout", self.host)
        engine.podman("rmi", ref)
        result = engine.podman("pull", ref, check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("unauthorized: the bearer token does not grant this access", result.err)

    # -- docker --------------------------------------------------------------------------------

    def docker(self, *args, **kwargs):
        return dockerd.docker(*args, **kwargs)

    def load(self, image):
        self.assertIn("Loaded image: " + image.tag, dockerd.load(image).out)

    def forget(self, *refs):
        self.docker("rmi", "--force", *refs)

    def assertPulled(self, ref, image):
        self.assertEqual(dockerd.image_ids(ref), (image.image_id, image.diff_ids))

    def test_docker_login_push_pull_and_anonymous_public_pull(self):
        before = self.tokens_issued(self.admin[0])
        out = self.docker("login", "--username", self.admin[0], "--password-stdin", self.host,
                          input=self.admin[1]).out
        self.assertIn("Login Succeeded", out)
        # docker keeps the refresh token (offline_token) instead of the secret
        saved = dockerd.credentials()[self.host]
        self.assertTrue(saved.get("identitytoken"), saved)
        self.assertNotIn(self.admin[1], json.dumps(saved))
        posts = self.server.log_text().count("method=POST path=/v2/token status=200")

        image = d.SavedImage("itest/bearer/docker:v1", layer_count=2)
        ref = "%s/pub/docker:v1" % self.host
        self.load(image)
        self.docker("tag", image.tag, ref)
        digest = DIGEST_RE.search(self.docker("push", ref).out).group(1)
        self.assertTokensIssued(self.admin[0], before)
        # with that refresh token docker asks through the OAuth2 form (grant_type
        # refresh_token)
        self.assertGreater(self.server.log_text().count("method=POST path=/v2/token status=200"),
                           posts)
        got = self.assertStatus(self.admin_reg.get_manifest("pub/docker", "v1",
                                                            accept=h.DOCKER_ACCEPT), 200)
        self.assertEqual(got.header("Docker-Content-Digest"), digest)
        self.forget(ref, image.tag)
        self.docker("pull", ref)
        self.assertPulled(ref, image)
        private = "%s/team/docker-private:v1" % self.host
        self.docker("tag", ref, private)
        self.docker("push", private)

        # no docker login at all: a policy-public repository pulls anonymously
        self.docker("logout", self.host)
        dockerd.reset_client_config()
        self.forget(ref, private)
        self.ecr.set_repository_policy(repositoryName="pub/docker", policyText=PUBLIC_POLICY)
        before = self.tokens_issued("-")
        self.docker("pull", ref)
        self.assertPulled(ref, image)
        self.assertTokensIssued("-", before)
        # a private one is refused with docker's usual message
        result = self.docker("pull", private, check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("pull access denied for %s/team/docker-private" % self.host, result.err)
        self.assertIn("may require 'docker login'", result.err)
        # and an anonymous push is refused
        result = self.docker("push", ref, check=False)
        self.assertNotEqual(result.rc, 0)

    def test_docker_reader_cannot_push(self):
        self.assertIn("Login Succeeded", self.docker("login", "--username", self.reader[0],
                                                     "--password-stdin", self.host,
                                                     input=self.reader[1]).out)
        image = d.SavedImage("itest/bearer/reader:v1", layer_count=1)
        self.load(image)
        ref = "%s/team/reader:v1" % self.host
        self.docker("tag", image.tag, ref)
        result = self.docker("push", ref, check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertStatus(self.admin_reg.get_manifest("team/reader", "v1"), 404)
        # a wrong secret: docker login says the registry refused it
        result = self.docker("login", "--username", self.admin[0], "--password-stdin",
                             self.host, input=self.admin[1] + "x", check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("unauthorized", result.err.lower())

    # -- ctr (containerd) ----------------------------------------------------------------------

    def ctr(self, *args, **kwargs):
        return containerd.ctr(*args, **kwargs)

    def test_ctr_push_pull_and_anonymous(self):
        image = h.build_image(layer_count=2, layer_size=16 * 1024)
        ref = containerd.import_image(self.host, "team/ctr", "v1", image)
        before = self.tokens_issued(self.admin[0])
        self.ctr("images", "push", "--plain-http", "--user", "%s:%s" % self.admin, ref)
        self.assertTokensIssued(self.admin[0], before)
        got = self.assertStatus(self.admin_reg.get_manifest("team/ctr", "v1"), 200)
        self.assertEqual(got.body, image.manifest)
        self.ctr("images", "rm", "--sync", ref)
        self.ctr("images", "pull", "--plain-http", "--user", "%s:%s" % self.reader, ref)
        self.assertEqual(self.ctr("content", "get", image.digest).raw, image.manifest)
        self.ctr("images", "rm", "--sync", ref)
        # no credentials: refused on a private repository, fine on a public one
        result = self.ctr("images", "pull", "--plain-http", ref, check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("pull access denied, repository does not exist or may require "
                      "authorization: server message: insufficient_scope", result.err)
        self.assertStatus(self.admin_reg.push_image("pub/ctr", image, tag="v1"), 201)
        self.ecr.set_repository_policy(repositoryName="pub/ctr", policyText=PUBLIC_POLICY)
        # (containerd asks for a token only after a challenge; a public repository
        # answers it without one)
        self.ctr("images", "pull", "--plain-http", "%s/pub/ctr:v1" % self.host)
        self.assertEqual(self.ctr("content", "get", image.digest).raw, image.manifest)

    # -- crane ---------------------------------------------------------------------------------

    def crane(self, config_dir, *args, check=True, input=None):
        os.makedirs(config_dir, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update({"DOCKER_CONFIG": config_dir, "HOME": config_dir})
        return d.run_client([crane_bin()] + [str(a) for a in args] + ["--insecure"], env,
                            check=check, input=input)

    def test_crane_login_push_list_delete_and_anonymous(self):
        config = os.path.join(self.work, "crane-admin")
        self.crane(config, "auth", "login", self.host, "--username", self.admin[0],
                   "--password-stdin", input=self.admin[1])
        image = h.build_image(layer_count=2, layer_size=16 * 1024)
        layout = os.path.join(self.work, "crane-layout")
        h.write_oci_layout(layout, {"v": image})
        before = self.tokens_issued(self.admin[0])
        ref = "%s/team/crane:v1" % self.host
        self.crane(config, "push", layout, ref)
        self.assertTokensIssued(self.admin[0], before)
        self.assertEqual(self.assertStatus(self.admin_reg.get_manifest("team/crane", "v1"),
                                           200).body, image.manifest)
        self.assertEqual(self.crane(config, "manifest", ref).raw, image.manifest)
        self.assertIn("team/crane", self.crane(config, "catalog", self.host).out.split())
        self.assertEqual(self.crane(config, "ls", "%s/team/crane" % self.host).out.split(),
                         ["v1"])
        self.crane(config, "copy", ref, "%s/team/crane-copy:v1" % self.host)
        self.crane(config, "delete", "%s/team/crane-copy@%s" % (self.host, image.digest))
        self.assertStatus(self.admin_reg.get_manifest("team/crane-copy", image.digest), 404)

        # no login: a public repository reads, a private one is refused
        anon = os.path.join(self.work, "crane-anon")
        self.assertStatus(self.admin_reg.push_image("pub/crane", image, tag="v1"), 201)
        self.ecr.set_repository_policy(repositoryName="pub/crane", policyText=PUBLIC_POLICY)
        self.assertEqual(self.crane(anon, "manifest", "%s/pub/crane:v1" % self.host).raw,
                         image.manifest)
        result = self.crane(anon, "manifest", ref, check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("UNAUTHORIZED", result.err)


if __name__ == "__main__":
    import unittest
    unittest.main()
