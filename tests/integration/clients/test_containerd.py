"""containerd's ctr against berth: a private containerd (Debian's, 1.6) imports OCI layouts
the test writes, pushes them with `ctr images push --plain-http --user`, forgets them and
pulls them back (by tag, by digest, a multi-arch index with --all-platforms), with an access
key and with the ECR token. containerd keeps digests as they are, so every manifest and blob
that comes back is compared byte for byte with what went in, and the pull unpacks the layers
(native snapshotter), which checks them against the config's diff IDs.
"""
# berth-suite: daemons


import clients as c  # first: it cleans the environment botocore reads  # noqa: F401
import auth_helpers as e
import berth_harness as h
import daemons as d

containerd = None


def setUpModule():
    global containerd
    containerd = d.Containerd(d.scratch_dir("berth-ctrd-"))
    d.start_all(containerd)


def tearDownModule():
    d.remove_all(containerd)


class ContainerdTest(e.KeyedServerTestCase):
    def ctr(self, *args, **kwargs):
        return containerd.ctr(*args, **kwargs)

    def user(self, key):
        return "%s:%s" % key

    def import_image(self, repo, tag, image, *extra):
        """Import image into containerd as HOST/repo:tag; returns that reference."""
        return containerd.import_image(self.host, repo, tag, image, *extra)

    def forget(self, ref):
        """Remove the image and, by a synchronous GC, its content from containerd."""
        self.ctr("images", "rm", "--sync", ref)
        for digest in (ref.split("@")[1],) if "@" in ref else ():
            self.assertNotEqual(self.ctr("content", "get", digest, check=False).rc, 0)

    def assertContent(self, image):
        """containerd's content store holds image byte for byte (children of an index too)."""
        self.assertEqual(self.ctr("content", "get", image.digest).raw, image.manifest)
        for child in image.children:
            self.assertContent(child)
        for digest, data in image.blobs.items():
            self.assertEqual(self.ctr("content", "get", digest).raw, data, digest)

    def assertInBerth(self, repo, ref, image):
        resp = self.assertStatus(self.admin_reg.get_manifest(repo, ref), 200)
        self.assertEqual(resp.body, image.manifest)
        self.assertEqual(resp.header("Docker-Content-Digest"), image.digest)
        for child in image.children:
            self.assertInBerth(repo, child.digest, child)
        for digest, data in image.blobs.items():
            self.assertEqual(self.assertStatus(self.admin_reg.get_blob(repo, digest), 200).body,
                             data)

    def test_push_and_pull_with_an_access_key(self):
        # 10 MiB layers (random, so gzip keeps them as large): each crosses berth's 8 MiB
        # write-back piece
        image = h.build_image(layer_count=2, layer_size=10 << 20)
        ref = self.import_image("team/key", "v1", image)
        out = self.ctr("images", "push", "--plain-http", "--user", self.user(self.admin), ref).out
        self.assertIn(image.digest, out)
        self.assertInBerth("team/key", "v1", image)

        self.forget(ref)
        self.assertNotEqual(self.ctr("content", "get", image.digest, check=False).rc, 0)
        self.ctr("images", "pull", "--plain-http", "--user", self.user(self.admin), ref)
        self.assertContent(image)
        listed = self.ctr("images", "ls", "--quiet").out.split()
        self.assertIn(ref, listed)

        by_digest = "%s/team/key@%s" % (self.host, image.digest)
        self.forget(ref)
        self.ctr("images", "pull", "--plain-http", "--user", self.user(self.puller), by_digest)
        self.assertContent(image)
        self.forget(by_digest)

    def test_push_and_pull_with_the_ecr_token(self):
        password = e.login_password(self.ecr)
        image = h.build_image(layer_count=2, docker=True)
        ref = self.import_image("team/token", "v1", image)
        self.ctr("images", "push", "--plain-http", "--user", "AWS:" + password, ref)
        self.assertInBerth("team/token", "v1", image)
        self.forget(ref)
        self.ctr("images", "pull", "--plain-http", "--user", "AWS:" + password, ref)
        self.assertContent(image)
        self.forget(ref)

    def test_multi_arch_index(self):
        index = h.Index([h.build_image(layer_count=2, arch=a) for a in ("amd64", "arm64")],
                        platforms=[{"os": "linux", "architecture": "amd64"},
                                   {"os": "linux", "architecture": "arm64"}])
        ref = self.import_image("team/multi", "v1", index, "--all-platforms")
        self.ctr("images", "push", "--plain-http", "--user", self.user(self.admin), ref)
        self.assertInBerth("team/multi", "v1", index)
        self.forget(ref)
        self.ctr("images", "pull", "--plain-http", "--all-platforms", "--user",
                 self.user(self.admin), ref)
        self.assertContent(index)
        self.forget(ref)
        # one platform of the index, as a node pulls it
        self.ctr("images", "pull", "--plain-http", "--platform", "linux/arm64", "--user",
                 self.user(self.admin), ref)
        arm = index.children[1]
        self.assertEqual(self.ctr("content", "get", arm.digest).raw, arm.manifest)
        self.assertNotEqual(self.ctr("content", "get", index.children[0].digest,
                                     check=False).rc, 0)
        self.forget(ref)

    def test_refusals_are_reported(self):
        image = h.build_image(layer_count=1)
        ref = self.import_image("team/refused", "v1", image)
        wrong = "%s:%s" % (self.admin[0], self.admin[1] + "x")
        result = self.ctr("images", "push", "--plain-http", "--user", wrong, ref, check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("401 Unauthorized", result.err)
        result = self.ctr("images", "push", "--plain-http", "--user", self.user(self.puller), ref,
                          check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("403 Forbidden", result.err)
        self.assertStatus(self.admin_reg.get_manifest("team/refused", "v1"), 404)
        result = self.ctr("images", "pull", "--plain-http", "%s/team/key:v1" % self.host,
                          check=False)
        self.assertNotEqual(result.rc, 0)
        self.assertIn("401 Unauthorized", result.err)
        self.forget(ref)


if __name__ == "__main__":
    h.main()
