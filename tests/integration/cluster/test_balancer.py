"""Three replicas behind haproxy behave as one registry (docs/scale-out.md): PostgreSQL and
Swift (s3api) shared, haproxy in front balancing every request on its own (cluster.py).

Through the balancer: monolithic and chunked pushes, pulled back byte for byte through the
balancer and from each replica; crane and skopeo push and pull; the ECR API with boto3
(create repository, PutImage, ListImages, DescribeImages). A key created with one
replica's configuration works on every replica at once, and its deletion too. Tag lists,
the catalog and the ECR listings are the same on every replica.

Which replica answered is read from the X-Berth-Replica header haproxy adds, so the tests
also show that one client's requests were spread over the replicas, the requests of one
chunked upload included (upload sessions are shared: POST on one replica, PATCHes on the
others, PUT on yet another)."""
# berth-suite: cluster
# berth-python: modern

import os
import shutil
import tempfile
import unittest

import clients as c  # first: it cleans the environment botocore reads
import auth_helpers as a
import berth_harness as h
import daemons as d
from cluster import SERVED_BY, Cluster, ClusterTestCase

MIB = 1024 * 1024


def crane_bin():
    build = os.environ.get("BERTH_BUILD_DIR") or os.path.join(
        os.path.dirname(__file__), "..", "..", "..", "build")
    path = os.path.join(build, "tools", "crane")
    if not os.access(path, os.X_OK):
        raise AssertionError("%s is missing: the build makes it (scripts/setup-deps.sh)" % path)
    return path


class Recorder(h.Registry):
    """A keep-alive harness Registry that records which replica answered each request."""

    def __init__(self, base_url, headers=None):
        super().__init__(base_url, keep_alive=True)
        self.extra = dict(headers or {})
        self.served = []

    def request(self, method, path, headers=None, body=None, chunked=False,
                timeout=h.REQUEST_TIMEOUT):
        merged = dict(self.extra)
        merged.update(headers or {})
        resp = super().request(method, path, headers=merged, body=body, chunked=chunked,
                               timeout=timeout)
        self.served.append((method, resp.path, resp.header(SERVED_BY)))
        return resp


@unittest.skipUnless(h.IS_BERTH, "berth's replicas")
class BalancerTest(ClusterTestCase):
    @classmethod
    def setUpClass(cls):
        c.require_modern()
        cls.cluster = Cluster(replicas=3, balancer=True)
        cls.addClassCleanup(cls.cluster.stop)
        cls.cluster.start()
        cls.lb = cls.cluster.balancer
        cls.replicas = cls.cluster.replicas
        cls.work = tempfile.mkdtemp(prefix="berth-balancer-")
        cls.addClassCleanup(shutil.rmtree, cls.work, True)
        cls.host = "127.0.0.1:%d" % cls.lb.port

    # -- helpers --------------------------------------------------------------------------

    def everywhere(self):
        """(name, Registry) for the balancer and each replica directly."""
        return [("balancer", self.lb.registry())] + [
            ("r%d" % i, r.registry()) for i, r in enumerate(self.replicas)]

    def assertImageEverywhere(self, repo, ref, image):
        for name, reg in self.everywhere():
            resp = h.expect_status(reg.get_manifest(repo, ref, accept=image.media_type), 200)
            self.assertEqual(resp.body, image.manifest, name)
            self.assertEqual(resp.header("Docker-Content-Digest"), image.digest, name)
            for digest, data in image.blobs.items():
                got = h.expect_status(reg.get_blob(repo, digest), 200).body
                self.assertTrue(got == data, "%s: %s differs (%d bytes, want %d)"
                                % (name, digest, len(got), len(data)))

    def replicas_of(self, served, method=None, part=""):
        return {r for m, p, r in served if (method is None or m == method) and part in p}

    # -- tests ----------------------------------------------------------------------------

    def test_1_each_request_balanced(self):
        reg = Recorder(self.lb.base_url)
        for _ in range(9):
            h.expect_status(reg.ping(), 200)
        order = [r for _, _, r in reg.served]
        self.assertEqual(set(order), {"r0", "r1", "r2"}, order)
        # one keep-alive client, and no two consecutive requests on one replica
        for x, y in zip(order, order[1:]):
            self.assertNotEqual(x, y, order)
        # haproxy counted requests on each replica too
        stats = self.lb.show_stat()
        self.assertEqual(sorted(stats), ["r0", "r1", "r2"])
        for name, row in stats.items():
            self.assertGreater(int(row["stot"]), 0, name)

    def test_2_monolithic_push_and_pull(self):
        reg = Recorder(self.lb.base_url)
        one = h.build_image(layer_count=3, layer_size=MIB + 17)
        h.expect_status(reg.push_image("lb/mono", one, tag="v1"), 201)
        two = h.build_image(layer_count=2, layer_size=300 * 1024)
        h.expect_status(reg.push_image("lb/mono", two, tag="v2", mode="post_only"), 201)
        # the pushes' requests went to every replica, and the other replicas serve them
        self.assertEqual(self.replicas_of(reg.served), {"r0", "r1", "r2"}, reg.served)
        self.assertImageEverywhere("lb/mono", "v1", one)
        self.assertImageEverywhere("lb/mono", "v2", two)
        # a ranged pull through the balancer
        digest, data = max(one.blobs.items(), key=lambda kv: len(kv[1]))
        resp = h.expect_status(self.lb.registry().get_blob(
            "lb/mono", digest, headers={"Range": "bytes=1000-200999"}), 206)
        self.assertEqual(resp.body, data[1000:201000])

    def test_3_chunked_push_and_pull(self):
        reg = Recorder(self.lb.base_url)
        big = h.random_bytes(11 * MIB + 5)
        for mode, kwargs in (("chunked", {"chunk_size": 3 * MIB}),
                             ("chunked_put_last", {"chunk_size": 4 * MIB}),
                             ("stream", {})):
            data = big if mode != "stream" else big[:6 * MIB + 1]
            reg.served = []
            resp = reg.push_blob("lb/chunked", data, mode=mode, **kwargs)
            h.expect_status(resp, 201)
            uploads = self.replicas_of(reg.served, part="/blobs/uploads/")
            if self.cluster.sticky_uploads:
                # the balancer kept the upload on the replica that answered its POST
                self.assertEqual(len(uploads), 1, reg.served)
            else:
                # the session went on from replica to replica (shared sessions)
                self.assertGreaterEqual(len(uploads), 2, reg.served)
            digest = h.digest_of(data)
            for name, r in self.everywhere():
                got = h.expect_status(r.get_blob("lb/chunked", digest), 200).body
                self.assertTrue(got == data, "%s: %s pulled back %d bytes, want %d"
                                % (mode, name, len(got), len(data)))
        image = h.build_image(layer_count=2, layer_size=2 * MIB)
        reg.served = []
        h.expect_status(reg.push_image("lb/chunked", image, tag="v1", mode="chunked"), 201)
        self.assertGreaterEqual(len(self.replicas_of(reg.served)), 2, reg.served)
        self.assertImageEverywhere("lb/chunked", "v1", image)

    def crane(self, *args, input=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update({"DOCKER_CONFIG": os.path.join(self.work, "crane-config"),
                    "HOME": self.work})
        return d.run_client([crane_bin()] + [str(x) for x in args] + ["--insecure"], env,
                            input=input)

    def test_4_crane_and_skopeo(self):
        image = h.build_image(layer_count=3, layer_size=700 * 1024)
        layout = os.path.join(self.work, "crane-layout")
        h.write_oci_layout(layout, {"v1": image})
        self.crane("push", layout, "%s/lb/crane:v1" % self.host)
        self.assertImageEverywhere("lb/crane", "v1", image)
        self.crane("copy", "%s/lb/crane:v1" % self.host, "%s/lb/crane-copy:v1" % self.host)
        self.assertImageEverywhere("lb/crane-copy", "v1", image)
        self.assertEqual(self.crane("manifest", "%s/lb/crane:v1" % self.host).raw,
                         image.manifest)
        for digest, data in image.blobs.items():
            self.assertTrue(self.crane("blob", "%s/lb/crane@%s" % (self.host, digest)).raw
                            == data, digest)

        other = h.build_image(layer_count=2, layer_size=900 * 1024)
        skopeo = c.Skopeo(self.work)
        skopeo.push(self.lb, {"v1": other}, "lb/skopeo")
        self.assertImageEverywhere("lb/skopeo", "v1", other)
        out = os.path.join(self.work, "skopeo-out")
        skopeo.run("copy", "--preserve-digests", "--src-tls-verify=false", "--src-no-creds",
                   "docker://%s/lb/skopeo:v1" % self.host, "oci:%s:v1" % out)
        for digest, data in other.blobs.items():
            self.assertTrue(h.read_oci_layout_blob(out, digest) == data, digest)
        self.assertEqual(h.read_oci_layout_blob(out, other.digest), other.manifest)

    def test_5_ecr_api_with_boto3(self):
        ecr = c.ecr_client(self.lb, *c.DUMMY_KEY)
        repo = "lb/ecr"
        created = ecr.create_repository(repositoryName=repo)["repository"]
        image = h.build_image(layer_count=2, layer_size=64 * 1024)
        reg = self.lb.registry()
        for data in image.blobs.values():
            h.expect_status(reg.push_blob(repo, data), 201)
        put = ecr.put_image(repositoryName=repo, imageManifest=image.manifest.decode(),
                            imageManifestMediaType=image.media_type, imageTag="v1")
        self.assertEqual(put["image"]["imageId"]["imageDigest"], image.digest)
        self.assertImageEverywhere(repo, "v1", image)
        listed = ecr.list_images(repositoryName=repo)["imageIds"]
        self.assertEqual(listed, [{"imageDigest": image.digest, "imageTag": "v1"}])
        described = ecr.describe_images(repositoryName=repo)["imageDetails"]
        self.assertEqual([x["imageDigest"] for x in described], [image.digest])
        self.assertEqual(described[0]["imageTags"], ["v1"])
        # every replica answers the same, at once
        for i, r in enumerate(self.replicas):
            direct = c.ecr_client(r, *c.DUMMY_KEY)
            repos = direct.describe_repositories(repositoryNames=[repo])["repositories"]
            self.assertEqual(repos[0]["repositoryArn"], created["repositoryArn"], i)
            self.assertEqual(direct.list_images(repositoryName=repo)["imageIds"], listed, i)
            self.assertEqual(direct.describe_images(repositoryName=repo)["imageDetails"],
                             described, i)

    def test_8_listings_agree(self):
        reg = self.lb.registry()
        image = h.build_image(layer_count=1, layer_size=1000)
        for i in range(6):
            h.expect_status(reg.push_image("lb/list%d" % (i % 2), image, tag="t%d" % i), 201)

        def listing(r, ecr):
            cat = h.expect_status(r.catalog(), 200).json()["repositories"]
            tags = {n: h.expect_status(r.tags(n), 200).json()["tags"]
                    for n in ("lb/list0", "lb/list1", "lb/mono")}
            repos = sorted(x["repositoryName"] for x in ecr.describe_repositories(
                maxResults=1000)["repositories"])
            images = sorted((x.get("imageTag", ""), x["imageDigest"]) for x in
                            ecr.list_images(repositoryName="lb/list0")["imageIds"])
            return cat, tags, repos, images

        want = listing(reg, c.ecr_client(self.lb, *c.DUMMY_KEY))
        self.assertIn("lb/list1", want[0])
        self.assertEqual(want[1]["lb/list0"], ["t0", "t2", "t4"])
        self.assertEqual(want[2], want[0])
        for i, r in enumerate(self.replicas):
            self.assertEqual(listing(r.registry(), c.ecr_client(r, *c.DUMMY_KEY)), want, i)

    def test_9_key_created_on_one_works_on_all(self):
        """Keys are rows in the shared database: one created with replica 1's configuration
        signs requests to every replica at once, and, deleted with replica 2's, is refused
        by every replica at once. (This turns authentication on: it runs last.)"""
        # another key keeps authentication on when the one under test is deleted
        keeper = a.keys_create(self.replicas[0], "keeper")
        akid, secret = a.keys_create(self.replicas[1], "balancer-admin")
        try:
            for name, target in [("balancer", self.lb)] + [
                    ("r%d" % i, r) for i, r in enumerate(self.replicas)]:
                ecr = c.ecr_client(target, akid, secret)
                ecr.describe_repositories(maxResults=5)  # first try, no waiting
                resp = target.registry().request(
                    "GET", "/v2/_catalog", headers=a.basic(akid, secret))
                self.assertEqual(resp.status, 200, "%s: %s" % (name, resp.describe()))
                # authentication is on: no credential, or a wrong secret, is refused
                self.assertEqual(target.registry().catalog().status, 401, name)
                bad = c.ecr_client(target, akid, secret[:-1] + ("A" if secret[-1] != "A"
                                                                 else "B"))
                with self.assertRaises(Exception, msg=name):
                    bad.describe_repositories(maxResults=5)
            # crane logs in through the balancer and pushes: its token, signed by one
            # replica, is accepted by the others
            self.crane("auth", "login", self.host, "--username", akid, "--password-stdin",
                       input=secret)
            image = h.build_image(layer_count=2, layer_size=100 * 1024)
            layout = os.path.join(self.work, "crane-auth-layout")
            h.write_oci_layout(layout, {"v1": image})
            self.crane("push", layout, "%s/lb/authed:v1" % self.host)
            for i, r in enumerate(self.replicas):
                resp = h.expect_status(r.registry().request(
                    "GET", "/v2/lb/authed/manifests/v1",
                    headers=dict(a.basic(akid, secret), Accept=image.media_type)), 200)
                self.assertEqual(resp.body, image.manifest, i)
            a.keys_delete(self.replicas[2], akid)
            for i, r in enumerate(self.replicas):
                resp = r.registry().request("GET", "/v2/_catalog",
                                            headers=a.basic(akid, secret))
                self.assertEqual(resp.status, 401, "r%d still takes the deleted key" % i)
                resp = r.registry().request("GET", "/v2/_catalog",
                                            headers=a.basic(*keeper))
                self.assertEqual(resp.status, 200, "r%d: %s" % (i, resp.describe()))
        finally:
            rc, out = h.run_berth(["keys", "list"], server=self.replicas[0])
            for key in (akid, keeper[0]):
                if key in out:
                    a.keys_delete(self.replicas[0], key)


if __name__ == "__main__":
    unittest.main(verbosity=2)
