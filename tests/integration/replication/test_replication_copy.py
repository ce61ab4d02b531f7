# berth-python: modern
"""ECR replication between two berths on loopback: a push to A (raw /v2, and ECR PutImage)
is copied to B, the destination replication.peers maps {region, registryId} to, with B's
access key kept as a berth secret on A. Identical digests on B for an image, a multi-arch
index and a referrer; B stopped while A is pushed to, then started again, catches up; A
restarted (and killed) with copies queued resumes them; DescribeImageReplicationStatus
through boto3 and the AWS CLI v1."""

import base64
import json
import os
import re
import socket
import time

import auth_helpers as a
import berth_harness as h
import ecr_helpers as e
import ptc_helpers as p

B_REGION = "eu-west-1"
B_ID = "210987654321"
HANG_REGION = "sa-east-1"
HANG_ID = "555555555555"
UNMAPPED_REGION = "ap-south-1"
UNMAPPED_ID = "444444444444"
SECRETS_KEY = "5e" * 32
WAIT = 60  # seconds a copy may take on a loaded machine


class Peer:
    """A /v2 client of the destination with its access key (Basic)."""

    def __init__(self, server, akid, secret):
        self.server = server
        self.auth = "Basic " + base64.b64encode(("%s:%s" % (akid, secret)).encode()).decode()

    def get(self, path, method="GET", accept=None):
        headers = {"Authorization": self.auth}
        if accept:
            headers["Accept"] = accept
        return self.server.registry().request(method, path, headers=headers)

    def manifest(self, repo, ref):
        return self.get("/v2/%s/manifests/%s" % (repo, ref),
                        accept=", ".join([h.MT_OCI_MANIFEST, h.MT_OCI_INDEX,
                                          h.MT_DOCKER_MANIFEST, h.MT_DOCKER_LIST]))

    def has_manifest(self, repo, ref, digest=None):
        try:
            resp = self.manifest(repo, ref)
        except OSError:
            return False
        return resp.status == 200 and (digest is None or
                                       resp.header("Docker-Content-Digest") == digest)


class ReplicationCopyTest(e.ModernEcrTestCase):
    @classmethod
    def setUpClass(cls):
        # B first: A's configuration names its URL
        cls.b = h.Server(config={"registry": {"region": B_REGION, "id": B_ID}})
        cls.addClassCleanup(cls.b.cleanup)
        cls.b.start()
        cls.b_key = a.keys_create(cls.b, "replicator")
        cls.peer = Peer(cls.b, *cls.b_key)
        # a peer that accepts connections and never answers (never accept()ed)
        cls.hang = socket.socket()
        cls.hang.bind(("127.0.0.1", 0))
        cls.hang.listen(64)
        cls.addClassCleanup(cls.hang.close)
        cls.server_config = {
            "pull_through": {"secrets_key": SECRETS_KEY},
            "replication": {
                "peers": [{"region": B_REGION, "registry_id": B_ID, "url": cls.b.base_url,
                           "secret": "peer-b"},
                          {"region": HANG_REGION, "registry_id": HANG_ID,
                           "url": "http://127.0.0.1:%d" % cls.hang.getsockname()[1]}],
                "retry_initial_ms": 200,
                "retry_max_ms": 1000,
            },
        }
        super().setUpClass()
        rc, out, err = p.berth_secrets(cls.server, "put", "peer-b", "--username",
                                       cls.b_key[0], password=cls.b_key[1])
        if rc != 0:
            raise AssertionError("berth secrets put: %s" % err)

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        if cls.b.proc is not None:
            cls.b.stop()

    def setUp(self):
        if self.b.proc is None:
            self.b.start(reuse_port=True)
        self.configure([{"destinations": [{"region": B_REGION, "registryId": B_ID}],
                         "repositoryFilters": [{"filter": "rep", "filterType": "PREFIX_MATCH"}]}])

    def configure(self, rules):
        self.ecr.put_replication_configuration(replicationConfiguration={"rules": rules})

    def status(self, repo, **image_id):
        return self.ecr.describe_image_replication_status(
            repositoryName=repo, imageId=image_id)["replicationStatuses"]

    def wait_status(self, repo, digest, want, what):
        last = []

        def done():
            last[:] = self.status(repo, imageDigest=digest)
            return bool(last) and all(s["status"] == want for s in last)
        h.wait_until(done, WAIT, interval=0.1, what=what)
        return last

    def assertReplicated(self, repo, ref, image):
        h.wait_until(lambda: self.peer.has_manifest(repo, ref, image.digest), WAIT,
                     interval=0.1, what="%s:%s on B" % (repo, ref))
        resp = self.peer.manifest(repo, image.digest)
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.body, image.manifest)
        for child in image.children:
            self.assertEqual(self.peer.manifest(repo, child.digest).body, child.manifest)
            for digest, data in child.blobs.items():
                self.assertEqual(self.peer.get("/v2/%s/blobs/%s" % (repo, digest)).body, data)
        for digest, data in image.blobs.items():
            self.assertEqual(self.peer.get("/v2/%s/blobs/%s" % (repo, digest)).body, data)

    # ---------------------------------------------------------------------------------------

    def test_image_index_and_referrer(self):
        img = h.build_image(layer_count=2)
        self.push_image_ok("rep/app", img, tag="v1")
        self.assertReplicated("rep/app", "v1", img)
        self.assertEqual(self.wait_status("rep/app", img.digest, "COMPLETE", "COMPLETE"),
                         [{"region": B_REGION, "registryId": B_ID, "status": "COMPLETE"}])
        # by tag too, with the image id answered as asked
        out = self.ecr.describe_image_replication_status(repositoryName="rep/app",
                                                         imageId={"imageTag": "v1"})
        self.assertEqual(out["repositoryName"], "rep/app")
        self.assertEqual(out["imageId"], {"imageDigest": img.digest, "imageTag": "v1"})

        # a multi-arch index: children (untagged) before the index
        amd, arm = h.build_image(arch="amd64"), h.build_image(arch="arm64")
        index = h.Index([amd, arm], platforms=[{"os": "linux", "architecture": "amd64"},
                                               {"os": "linux", "architecture": "arm64"}])
        self.push_image_ok("rep/multi", index, tag="latest")
        self.assertReplicated("rep/multi", "latest", index)

        # a referrer of the image goes to B with its subject
        sbom = h.build_artifact(subject=img.descriptor())
        self.push_image_ok("rep/app", sbom)
        h.wait_until(lambda: self.peer.has_manifest("rep/app", sbom.digest), WAIT, interval=0.1,
                     what="the referrer on B")
        refs = self.peer.get("/v2/rep/app/referrers/%s" % img.digest).json()
        self.assertEqual([m["digest"] for m in refs["manifests"]], [sbom.digest])

        # the layer B had already was not sent again (HEAD), and the password never shows
        # (the copy's line is written after its last PUT, which B may answer first)
        copied = "event=replication_copied repo=rep/app digest=%s" % sbom.digest
        h.wait_until(lambda: copied in self.server.log_text(), WAIT, interval=0.1,
                     what="the referrer's copy in A's log")
        log = self.server.log_text()
        self.assertNotIn(self.b_key[1], log)
        self.assertNotIn(self.b_key[1], self.b.log_text())

    def test_skopeo_push_and_pull(self):
        # a real client pushes a multi-arch image with a 6 MiB layer to A, and pulls it
        # from B with B's key, digests preserved
        sk = e.c.Skopeo(self.work)
        big = h.build_image(layer_count=1, layer_size=6 << 20)
        small = h.build_image(arch="arm64")
        index = h.Index([big, small], platforms=[{"os": "linux", "architecture": "amd64"},
                                                 {"os": "linux", "architecture": "arm64"}])
        sk.push(self.server, {"v1": index}, "rep/skopeo")
        self.assertReplicated("rep/skopeo", "v1", index)
        out = os.path.join(self.work, "pulled")
        sk.run("copy", "--all", "--preserve-digests", "--src-tls-verify=false",
               "--src-creds", "%s:%s" % self.b_key,
               "docker://127.0.0.1:%d/rep/skopeo:v1" % self.b.port, "oci:%s:v1" % out)
        with open(os.path.join(out, "index.json")) as f:
            self.assertEqual(json.load(f)["manifests"][0]["digest"], index.digest)
        self.assertEqual(h.read_oci_layout_blob(out, big.layer_digests[0]),
                         big.blobs[big.layer_digests[0]])

    def test_a_moved_tag_is_replicated(self):
        img, other = h.build_image(layer_count=1), h.build_image(layer_count=1)
        self.push_image_ok("rep/retag", img, tag="v1")
        self.push_image_ok("rep/retag", other, tag="latest")
        self.assertReplicated("rep/retag", "latest", other)
        self.assertReplicated("rep/retag", "v1", img)
        # a new tag on an image B has, and a tag moved to it: no blob sent again
        h.expect_status(self.reg.put_manifest("rep/retag", "v2", img.manifest, img.media_type),
                        201)
        h.expect_status(self.reg.put_manifest("rep/retag", "latest", img.manifest,
                                              img.media_type), 201)
        h.wait_until(lambda: self.peer.has_manifest("rep/retag", "latest", img.digest), WAIT,
                     interval=0.1, what="latest moved on B")
        # one copy may put both tags (the second push came before it read the image's
        # tags), one PUT after the other: latest there does not mean v2 is yet
        h.wait_until(lambda: self.peer.has_manifest("rep/retag", "v2", img.digest), WAIT,
                     interval=0.1, what="v2 on B")
        self.wait_status("rep/retag", img.digest, "COMPLETE", "COMPLETE after re-tagging")
        # the line is written after the copy's last PUT, which the waits above can see first
        copied = re.compile(r"event=replication_copied repo=rep/retag digest=%s \S+ "
                            r"manifests=3 blobs_sent=0 " % img.digest)
        h.wait_until(lambda: copied.search(self.server.log_text()), WAIT, interval=0.1,
                     what="the re-tag copy in A's log")

    def test_put_image_and_cli(self):
        # ECR PutImage on A (blobs through /v2) is replicated too; the CLI reads the status
        img = h.build_image(layer_count=1)
        self.ecr.create_repository(repositoryName="rep/ecr")
        for data in img.blobs.values():
            h.expect_status(self.reg.push_blob("rep/ecr", data), 201)
        self.ecr.put_image(repositoryName="rep/ecr", imageManifest=img.manifest.decode(),
                           imageManifestMediaType=img.media_type, imageTag="v2")
        self.assertReplicated("rep/ecr", "v2", img)
        self.wait_status("rep/ecr", img.digest, "COMPLETE", "COMPLETE")
        out = self.aws("describe-image-replication-status", "--repository-name", "rep/ecr",
                       "--image-id", "imageTag=v2")
        self.assertEqual(out["replicationStatuses"],
                         [{"region": B_REGION, "registryId": B_ID, "status": "COMPLETE"}])
        self.assertEqual(out["imageId"]["imageDigest"], img.digest)

    def test_filters_and_unmapped_destination(self):
        self.configure([
            {"destinations": [{"region": B_REGION, "registryId": B_ID}],
             "repositoryFilters": [{"filter": "rep/only", "filterType": "PREFIX_MATCH"}]},
            {"destinations": [{"region": UNMAPPED_REGION, "registryId": UNMAPPED_ID},
                              {"region": B_REGION, "registryId": B_ID}]},
        ])
        img = h.build_image(layer_count=1)
        self.push_image_ok("other/app", img, tag="v1")
        # the second rule has no filter: both destinations, B once; the unmapped one fails
        statuses = None

        def settled():
            nonlocal statuses
            statuses = self.status("other/app", imageTag="v1")
            return len(statuses) == 2 and all(s["status"] != "IN_PROGRESS" for s in statuses)
        h.wait_until(settled, WAIT, interval=0.1, what="both destinations settled")
        self.assertEqual(statuses, [
            {"region": UNMAPPED_REGION, "registryId": UNMAPPED_ID, "status": "FAILED",
             "failureCode": "PEER_NOT_CONFIGURED"},
            {"region": B_REGION, "registryId": B_ID, "status": "COMPLETE"},
        ])
        self.assertTrue(self.peer.has_manifest("other/app", "v1", img.digest))
        # the raw answer has ECR's members only: botocore's ImageReplicationStatus (no
        # failureReason: ECR's model has none; failureCode a string, ECR lists no values)
        raw = self.ok("DescribeImageReplicationStatus",
                      {"repositoryName": "other/app", "imageId": {"imageTag": "v1"}})
        model = self.ecr.meta.service_model
        shape = model.shape_for("ImageReplicationStatus")
        self.assertEqual(shape.members["failureCode"].type_name, "string")
        self.assertEqual(shape.members["failureCode"].enum, [])
        for st in raw["replicationStatuses"]:
            self.assertLessEqual(set(st), set(shape.members), st)
            self.assertIn(st["status"], shape.members["status"].enum)
        self.assertEqual(sorted(model.operation_model("DescribeImageReplicationStatus")
                                .output_shape.members),
                         sorted(raw))
        # no rule covers a repository: nothing is queued, nothing copied
        self.configure([{"destinations": [{"region": B_REGION, "registryId": B_ID}],
                         "repositoryFilters": [{"filter": "rep", "filterType": "PREFIX_MATCH"}]}])
        other = h.build_image(layer_count=1)
        self.push_image_ok("norep/app", other, tag="v1")
        self.assertEqual(self.status("norep/app", imageTag="v1"), [])
        time.sleep(0.5)
        self.assertFalse(self.peer.has_manifest("norep/app", "v1"))

    def test_errors(self):
        img = h.build_image(layer_count=1)
        self.push_image_ok("rep/errors", img, tag="v1")
        self.assertEqual(self.boto_error("describe_image_replication_status",
                                         repositoryName="rep/missing",
                                         imageId={"imageTag": "v1"})["Code"],
                         "RepositoryNotFoundException")
        self.assertEqual(self.boto_error("describe_image_replication_status",
                                         repositoryName="rep/errors",
                                         imageId={"imageTag": "v9"})["Code"],
                         "ImageNotFoundException")
        self.assertEqual(self.boto_error("describe_image_replication_status",
                                         repositoryName="rep/errors",
                                         imageId={"imageDigest": "sha256:" + "0" * 64})["Code"],
                         "ImageNotFoundException")
        res = self.aws("describe-image-replication-status", "--repository-name", "rep/errors",
                       "--image-id", "imageTag=nope", check=False)
        self.assertNotEqual(res.rc, 0)
        self.assertIn("ImageNotFoundException", res.err)

    def test_destination_down_then_back(self):
        self.b.stop()
        img = h.build_image(layer_count=2)
        self.push_image_ok("rep/late", img, tag="v1")
        # A keeps trying (IN_PROGRESS, no failure code) while B is down
        h.wait_until(lambda: "event=replication_retry repo=rep/late" in self.server.log_text(),
                     WAIT, interval=0.1, what="a retry")
        h.wait_until(lambda: self.server.log_text().count(
            "event=replication_retry repo=rep/late") >= 3, WAIT, interval=0.1,
            what="three retries")
        self.assertEqual(self.status("rep/late", imageTag="v1"),
                         [{"region": B_REGION, "registryId": B_ID, "status": "IN_PROGRESS"}])
        # the backlog and the retries show in /metrics
        self.assertGreaterEqual(self.metric('berth_replication_queue_copies{status="in_progress"}'),
                                1)
        self.assertGreaterEqual(self.metric('berth_replication_copies_total{result="retry"}'), 3)
        complete = self.metric('berth_replication_copies_total{result="complete"}')
        self.b.start(reuse_port=True)
        started = time.monotonic()
        self.assertReplicated("rep/late", "v1", img)
        self.wait_status("rep/late", img.digest, "COMPLETE", "COMPLETE after B came back")
        # within the capped backoff (1 s here), not the doubled waits of every retry
        self.assertLess(time.monotonic() - started, 20)
        self.assertGreater(self.metric('berth_replication_copies_total{result="complete"}'),
                           complete)

    def metric(self, name):
        resp = self.reg.get("/metrics")
        self.assertEqual(resp.status, 200)
        for line in resp.body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        self.fail("no %s in /metrics" % name)

    def test_a_peer_that_hangs_holds_up_only_its_own_copies(self):
        # each peer has its own worker: copies to B go on while the other peer's first
        # request waits out its 60 s timeout (and A's stop does not wait for it)
        self.configure([
            {"destinations": [{"region": HANG_REGION, "registryId": HANG_ID}],
             "repositoryFilters": [{"filter": "hang", "filterType": "PREFIX_MATCH"}]},
            {"destinations": [{"region": B_REGION, "registryId": B_ID}],
             "repositoryFilters": [{"filter": "rep", "filterType": "PREFIX_MATCH"}]}])
        stuck, fast = h.build_image(layer_count=1), h.build_image(layer_count=1)
        self.push_image_ok("hang/app", stuck, tag="v1")
        self.push_image_ok("rep/fast", fast, tag="v1")
        started = time.monotonic()
        self.assertReplicated("rep/fast", "v1", fast)
        self.assertLess(time.monotonic() - started, 30)
        self.assertEqual(self.status("hang/app", imageTag="v1"),
                         [{"region": HANG_REGION, "registryId": HANG_ID,
                           "status": "IN_PROGRESS"}])

    def test_restart_of_a_resumes_the_queue(self):
        self.b.stop()
        first, second = h.build_image(layer_count=1), h.build_image(layer_count=1)
        self.push_image_ok("rep/resume", first, tag="one")
        self.push_image_ok("rep/resume", second, tag="two")
        self.assertEqual(self.status("rep/resume", imageTag="one")[0]["status"], "IN_PROGRESS")
        # a clean stop, then a crash: the queue is in the database
        self.server.stop()
        self.server.start(reuse_port=True)
        self.server.kill9()
        self.server.start(reuse_port=True)
        self.b.start(reuse_port=True)
        self.assertReplicated("rep/resume", "one", first)
        self.assertReplicated("rep/resume", "two", second)
        self.wait_status("rep/resume", second.digest, "COMPLETE", "COMPLETE after restarts")


class TemplateDestinationTest(e.ModernEcrTestCase):
    """A berth destination that creates no repository on a push (auto-create off, as ECR)
    and speaks Docker's token protocol (auth.scheme bearer: A fetches tokens from its
    realm): a replicated push from a key allowed ecr:ReplicateImage creates the repository
    with the destination's REPLICATION creation template (ECR's defaults when none covers
    it); a key without it is an ordinary push, refused, and the copy FAILED."""

    @classmethod
    def setUpClass(cls):
        cls.b = h.Server(config={"registry": {"region": B_REGION, "id": B_ID},
                                 "storage": {"auto_create_repositories": False},
                                 "auth": {"scheme": "bearer"}})
        cls.addClassCleanup(cls.b.cleanup)
        cls.b.start()
        admin = a.keys_create(cls.b, "admin")
        replicator = a.keys_create(cls.b, "replicator", "push", "ecr:ReplicateImage")
        plain = a.keys_create(cls.b, "plain", "push")
        cls.b_ecr = e.c.ecr_client(cls.b, *admin, region=B_REGION)
        cls.peer = Peer(cls.b, *admin)
        cls.server_config = {
            "pull_through": {"secrets_key": SECRETS_KEY},
            "replication": {"peers": [
                {"region": B_REGION, "registry_id": B_ID, "url": cls.b.base_url,
                 "secret": "replicator"},
                {"region": "eu-central-1", "registry_id": B_ID, "url": cls.b.base_url,
                 "secret": "plain"}],
                "retry_initial_ms": 200, "retry_max_ms": 1000}}
        super().setUpClass()
        for name, key in (("replicator", replicator), ("plain", plain)):
            rc, out, err = p.berth_secrets(cls.server, "put", name, "--username", key[0],
                                           password=key[1])
            if rc != 0:
                raise AssertionError("berth secrets put: %s" % err)

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.b.stop()

    def test_replication_template(self):
        self.b_ecr.create_repository_creation_template(
            prefix="tmpl", appliedFor=["REPLICATION"], imageTagMutability="IMMUTABLE",
            resourceTags=[{"Key": "from", "Value": "replication"}])
        self.ecr.put_replication_configuration(replicationConfiguration={"rules": [
            {"destinations": [{"region": B_REGION, "registryId": B_ID}],
             "repositoryFilters": [{"filter": "tmpl", "filterType": "PREFIX_MATCH"}]},
            {"destinations": [{"region": "eu-central-1", "registryId": B_ID}],
             "repositoryFilters": [{"filter": "plain", "filterType": "PREFIX_MATCH"}]}]})
        # an ordinary push to B cannot create a repository
        resp = self.b.registry().request("POST", "/v2/tmpl/direct/blobs/uploads/",
                                         headers={"Authorization": self.peer.auth})
        self.assertEqual(resp.status, 404, resp.describe())

        img, other, refused = (h.build_image(layer_count=1) for _ in range(3))
        self.push_image_ok("tmpl/app", img, tag="v1")
        self.push_image_ok("tmplx/app", other, tag="v1")
        self.push_image_ok("plain/app", refused, tag="v1")
        for repo, image in (("tmpl/app", img), ("tmplx/app", other)):
            h.wait_until(lambda: self.peer.has_manifest(repo, "v1", image.digest), WAIT,
                         interval=0.1, what="%s on B" % repo)
        repos = {r["repositoryName"]: r for r in self.b_ecr.describe_repositories()[
            "repositories"]}
        # the template covers tmpl/app; tmplx/app got ECR's defaults
        self.assertEqual(repos["tmpl/app"]["imageTagMutability"], "IMMUTABLE")
        self.assertEqual(self.b_ecr.list_tags_for_resource(
            resourceArn=repos["tmpl/app"]["repositoryArn"])["tags"],
            [{"Key": "from", "Value": "replication"}])
        self.assertEqual(repos["tmplx/app"]["imageTagMutability"], "MUTABLE")
        # the key without ecr:ReplicateImage pushed as anyone would: refused, FAILED
        h.wait_until(lambda: self.ecr.describe_image_replication_status(
            repositoryName="plain/app", imageId={"imageTag": "v1"})["replicationStatuses"]
            [0]["status"] == "FAILED", WAIT, interval=0.1, what="plain/app FAILED")
        st = self.ecr.describe_image_replication_status(
            repositoryName="plain/app", imageId={"imageTag": "v1"})["replicationStatuses"]
        self.assertEqual(st, [{"region": "eu-central-1", "registryId": B_ID,
                               "status": "FAILED", "failureCode": "REPOSITORY_NOT_FOUND"}])
        self.assertNotIn("plain/app", repos)
        # A authenticated with tokens from B's realm
        self.assertRegex(self.b.log_text(), r"event=access method=GET path=/v2/token\S* "
                                            r"status=200")


class DistributionPeerTest(e.ModernEcrTestCase):
    """Debian's distribution registry (docker-registry 2.8) as the peer, anonymous: the
    same copies, through a registry that is not berth (mounts need a from repository)."""

    @classmethod
    def setUpClass(cls):
        cls.d = h.Server(target="distribution")
        cls.addClassCleanup(cls.d.cleanup)
        cls.d.start()
        cls.server_config = {"replication": {
            "peers": [{"region": "us-west-2", "registry_id": "333333333333",
                       "url": cls.d.base_url}],
            "retry_initial_ms": 200, "retry_max_ms": 1000}}
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.d.stop()

    def test_copies_to_distribution(self):
        self.ecr.put_replication_configuration(replicationConfiguration={"rules": [
            {"destinations": [{"region": "us-west-2", "registryId": "333333333333"}]}]})
        peer = self.d.registry()
        img = h.build_image(layer_count=2)
        self.push_image_ok("dist/app", img, tag="v1")
        amd, arm = h.build_image(arch="amd64"), h.build_image(arch="arm64")
        index = h.Index([amd, arm], platforms=[{"os": "linux", "architecture": "amd64"},
                                               {"os": "linux", "architecture": "arm64"}])
        self.push_image_ok("dist/multi", index, tag="latest")
        sig = h.build_artifact(artifact_type="application/vnd.example.signature.v1",
                               subject=img.descriptor())
        self.push_image_ok("dist/app", sig)
        # the same layers in another repository: offered as a mount from dist/app, once
        # dist/app's copy is done (copies run in parallel: the mount would race it)
        h.wait_until(lambda: self.status_of("dist/app", img.digest) == "COMPLETE", WAIT,
                     interval=0.1, what="dist/app@%s COMPLETE" % img.digest)
        again = h.Image(img.obj, img.blobs, img.media_type)
        self.push_image_ok("dist/again", again, tag="v1")
        for repo, ref, image in (("dist/app", "v1", img), ("dist/multi", "latest", index),
                                 ("dist/app", sig.digest, sig), ("dist/again", "v1", again)):
            h.wait_until(lambda: self.status_of(repo, image.digest) == "COMPLETE", WAIT,
                         interval=0.1, what="%s@%s COMPLETE" % (repo, image.digest))
            resp = peer.get_manifest(repo, ref, accept=", ".join([h.MT_OCI_MANIFEST,
                                                                   h.MT_OCI_INDEX]))
            self.assertEqual(resp.status, 200, resp.describe())
            self.assertEqual(resp.header("Docker-Content-Digest"), image.digest)
            self.assertEqual(resp.body, image.manifest)
            for child in [image] + image.children:
                for digest, data in child.blobs.items():
                    self.assertEqual(peer.get_blob(repo, digest).body, data)
        # logged just after the status is recorded COMPLETE
        h.wait_until(lambda: "event=replication_copied repo=dist/again " in
                     self.server.log_text(), WAIT, interval=0.1, what="dist/again's copy logged")
        self.assertRegex(self.server.log_text(),
                         r"event=replication_copied repo=dist/again digest=\S+ "
                         r"destination=us-west-2/333333333333 manifests=1 blobs_sent=0 "
                         r"blobs_mounted=3")
        # distribution's access log names the client: replication's own User-Agent
        lines = [line for line in self.d.log_text().splitlines()
                 if "uri=/v2/dist/" in line and "method=GET" not in line]  # not the test's
        self.assertTrue(lines)
        for line in lines:
            self.assertRegex(line, r"useragent=berth-replication/\d+\.\d+\.\d+ ")

    def status_of(self, repo, digest):
        out = self.ecr.describe_image_replication_status(repositoryName=repo,
                                                         imageId={"imageDigest": digest})
        return out["replicationStatuses"][0]["status"] if out["replicationStatuses"] else None


class GiveUpTest(e.ModernEcrTestCase):
    """A destination down longer than replication.failed_after_seconds: the copy shows
    FAILED (failureCode PEER_UNAVAILABLE) while it is still tried at the capped pace; the
    destination's return completes it with no new push; a new push while it is down
    queues it again (IN_PROGRESS)."""

    @classmethod
    def setUpClass(cls):
        cls.d = h.Server(target="distribution")
        cls.addClassCleanup(cls.d.cleanup)
        cls.d.start()
        cls.server_config = {"replication": {
            "peers": [{"region": "us-west-2", "registry_id": "333333333333",
                       "url": cls.d.base_url}],
            "retry_initial_ms": 100, "retry_max_ms": 300, "failed_after_seconds": 1}}
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        if cls.d.proc is not None:
            cls.d.stop()

    def statuses(self, repo, **image_id):
        return self.ecr.describe_image_replication_status(
            repositoryName=repo, imageId=image_id)["replicationStatuses"]

    def test_failed_after_the_limit_then_cleared(self):
        self.ecr.put_replication_configuration(replicationConfiguration={"rules": [
            {"destinations": [{"region": "us-west-2", "registryId": "333333333333"}]}]})
        self.d.stop()
        img = h.build_image(layer_count=1)
        self.push_image_ok("down/app", img, tag="v1")
        failed = [{"region": "us-west-2", "registryId": "333333333333", "status": "FAILED",
                   "failureCode": "PEER_UNAVAILABLE"}]
        h.wait_until(lambda: self.statuses("down/app", imageTag="v1") == failed, WAIT,
                     interval=0.1, what="FAILED PEER_UNAVAILABLE")
        # (the line is written just after the status)
        h.wait_until(lambda: "event=replication_failed repo=down/app" in self.server.log_text(),
                     WAIT, interval=0.1, what="the failure in A's log")
        log = self.server.log_text()
        self.assertIn("event=replication_retry repo=down/app", log)  # before the limit
        self.assertRegex(log, r"event=replication_failed repo=down/app digest=\S+ "
                              r"destination=us-west-2/333333333333 code=PEER_UNAVAILABLE "
                              r"retried=yes msg=\"the destination has been unreachable for")
        # still tried while FAILED, at most retry_max_ms apart
        count = log.count("event=replication_failed repo=down/app")
        h.wait_until(lambda: self.server.log_text().count(
            "event=replication_failed repo=down/app") >= count + 2, WAIT, interval=0.1,
            what="two more tries while FAILED")
        self.assertEqual(self.statuses("down/app", imageTag="v1"), failed)
        # a new push queues it again: IN_PROGRESS until the limit passes again
        again = h.Image(img.obj, img.blobs, img.media_type)
        pushed = time.monotonic()
        self.push_image_ok("down/app", again, tag="v2")
        status = self.statuses("down/app", imageTag="v2")[0]["status"]
        if time.monotonic() - pushed < 0.9:  # not judged when the machine took the second
            self.assertEqual(status, "IN_PROGRESS")
        h.wait_until(lambda: self.statuses("down/app", imageTag="v1") == failed, WAIT,
                     interval=0.1, what="FAILED again")
        # the destination back: completed with no push, the status cleared
        self.d.start(reuse_port=True)
        h.wait_until(lambda: self.statuses("down/app", imageTag="v1")[0]["status"] == "COMPLETE",
                     WAIT, interval=0.1, what="COMPLETE after the destination came back")
        self.assertEqual(self.statuses("down/app", imageTag="v1"),
                         [{"region": "us-west-2", "registryId": "333333333333",
                           "status": "COMPLETE"}])
        resp = self.d.registry().get_manifest("down/app", "v2", accept=h.MT_OCI_MANIFEST)
        self.assertEqual(resp.header("Docker-Content-Digest"), img.digest)


if __name__ == "__main__":
    h.main()
