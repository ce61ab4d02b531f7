"""docker (a real dockerd) and containerd's ctr pull through berth's pull-through cache.

An upstream berth on loopback holds the images (docker pushes one there itself; the other
is pushed through the registry API); the berth under test has access keys and a
pull-through cache rule made with boto3. Each engine pulls `<prefix>/<upstream repo>:tag`
from the berth under test, logged in with an access key: dockerd verifies the layers
against the config's diff IDs and reports the image ID (the config's digest); containerd's
content store must hold every manifest and blob byte for byte. The upstream's access log
shows each blob fetched once, and a second pull (the engine's store emptied) is served by
the cache alone.
"""
# berth-suite: daemons

import json

import clients as c  # first: it cleans the environment botocore reads
import auth_helpers as e
import berth_harness as h
import daemons as d
import ptc_helpers as p

dockerd = None
containerd = None


def setUpModule():
    global dockerd, containerd
    dockerd = d.Dockerd(d.scratch_dir("berth-ptc-dockerd-"))
    containerd = d.Containerd(d.scratch_dir("berth-ptc-ctrd-"))
    d.start_all(dockerd, containerd)


def tearDownModule():
    d.remove_all(dockerd, containerd)


class EnginesThroughCacheTest(h.ServerTestCase):
    server_config = {"storage": {"auto_create_repositories": False}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = e.keys_create(cls.server, "admin")
        cls.ecr = c.ecr_client(cls.server, *cls.admin)
        cls.host = "127.0.0.1:%d" % cls.server.port
        cls.up = h.Server()
        cls.up.start()
        cls.up_host = "127.0.0.1:%d" % cls.up.port

    @classmethod
    def tearDownClass(cls):
        cls.up.cleanup()
        super().tearDownClass()

    def rule(self, prefix):
        self.ecr.create_pull_through_cache_rule(ecrRepositoryPrefix=prefix,
                                                upstreamRegistryUrl=self.up.base_url)

    def assertFetchedOnce(self, repo, digests):
        for digest in digests:
            self.assertEqual(len(p.upstream_gets(self.up, "^/v2/%s/blobs/%s$" % (repo, digest))),
                             1, digest)

    def test_docker_pulls_through_the_cache(self):
        dockerd.reset_client_config()
        image = d.SavedImage("itest/ptc/app:v1")
        dockerd.load(image)
        upstream_ref = "%s/lib/app:v1" % self.up_host
        dockerd.docker("tag", image.tag, upstream_ref)
        dockerd.docker("push", upstream_ref)
        dockerd.docker("rmi", "--force", image.tag, upstream_ref)
        self.rule("dock")
        dockerd.docker("login", "--username", self.admin[0], "--password-stdin", self.host,
                       input=self.admin[1])
        ref = "%s/dock/lib/app:v1" % self.host
        for _ in range(2):
            dockerd.docker("pull", ref)
            self.assertEqual(dockerd.image_ids(ref), (image.image_id, image.diff_ids))
            dockerd.docker("rmi", "--force", ref)
        manifest = json.loads(h.expect_status(self.up.registry().get_manifest(
            "lib/app", "v1", accept=h.DOCKER_ACCEPT), 200).body)
        self.assertFetchedOnce("lib/app", [manifest["config"]["digest"]] +
                               [layer["digest"] for layer in manifest["layers"]])

    def test_ctr_pulls_through_the_cache(self):
        image = h.build_image(layer_count=2, layer_size=1 << 20, docker=True)
        h.expect_status(self.up.registry().push_image("lib/tool", image, tag="v1"), 201)
        self.rule("ctrd")
        ref = "%s/ctrd/lib/tool:v1" % self.host
        user = "%s:%s" % self.admin
        for _ in range(2):
            containerd.ctr("images", "pull", "--plain-http", "--user", user, ref)
            self.assertEqual(containerd.ctr("content", "get", image.digest).raw, image.manifest)
            for digest, data in image.blobs.items():
                self.assertEqual(containerd.ctr("content", "get", digest).raw, data, digest)
            containerd.ctr("images", "rm", "--sync", ref)
            self.assertNotEqual(containerd.ctr("content", "get", image.digest, check=False).rc, 0)
        self.assertFetchedOnce("lib/tool", image.blobs)


if __name__ == "__main__":
    h.main()
