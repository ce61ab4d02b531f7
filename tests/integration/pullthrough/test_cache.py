"""The pull-through cache through /v2: a rule made with the ECR API (CreatePullThroughCacheRule,
raw JSON calls) over an upstream started by the test (another berth, Debian's distribution
registry, or a small fake for failures). First pulls fetch from the upstream with every
digest verified and create the repository (through a PULL_THROUGH_CACHE creation
template when one applies); later pulls are served from the store, also with the upstream
stopped; digests never go upstream again; tags are checked again after the TTL; two clients
pulling the same uncached image cause one upstream fetch per blob; a bad or cut blob
publishes nothing. skopeo pulls through berth as a client would."""

import http.client
import http.server
import json
import os
import subprocess
import tempfile
import threading
import time

import clients as c  # first: it cleans the environment botocore reads

import auth_helpers as a
import berth_harness as h
import ecr_helpers as e
import ptc_helpers as p


def start_upstream(test, **kw):
    up = h.Server(**kw)
    test.addCleanup(up.cleanup)
    up.start()
    return up


class CacheTestCase(e.EcrTestCase):
    server_config = {"storage": {"auto_create_repositories": False}}

    def setUp(self):
        self.addCleanup(self.drop_rules)

    def drop_rules(self):
        rules = self.ok("DescribePullThroughCacheRules", {})["pullThroughCacheRules"]
        for r in rules:
            self.ok("DeletePullThroughCacheRule", {"ecrRepositoryPrefix": r["ecrRepositoryPrefix"]})

    def rule(self, prefix, upstream_url, **extra):
        body = {"ecrRepositoryPrefix": prefix, "upstreamRegistryUrl": upstream_url}
        body.update(extra)
        return self.ok("CreatePullThroughCacheRule", body)

    def pull(self, repo, ref, status=200):
        """GET a manifest through berth, then every blob it names (children of an index
        too); returns the manifest Response."""
        resp = self.reg.get_manifest(repo, ref, accept=h.DOCKER_ACCEPT)
        self.assertStatus(resp, status)
        if status != 200:
            return resp
        doc = json.loads(resp.body)
        for child in doc.get("manifests", []):
            self.pull(repo, child["digest"])
        for desc in ([doc["config"]] if "config" in doc else []) + doc.get("layers", []):
            blob = self.reg.get_blob(repo, desc["digest"])
            self.assertStatus(blob, 200)
            self.assertEqual(h.digest_of(blob.body), desc["digest"])
        return resp


class PullThroughBerthTest(CacheTestCase):
    def test_first_pull_fetches_then_serves_locally(self):
        up = start_upstream(self)
        ur = up.registry()
        img = h.build_image(layer_count=2)
        ur.push_image("library/app", img, tag="v1")
        arm = h.build_image(layer_count=1, arch="arm64")
        amd = h.build_image(layer_count=1)
        index = h.Index([amd, arm], platforms=[{"os": "linux", "architecture": "amd64"},
                                               {"os": "linux", "architecture": "arm64"}])
        ur.push_image("library/multi", index, tag="1.0")
        self.rule("hub", up.base_url)
        # a repository under no rule stays unknown
        self.assertStatus(self.reg.get_manifest("other/app", "v1"), 404)
        resp = self.pull("hub/library/app", "v1")
        self.assertEqual(resp.header("Docker-Content-Digest"), img.digest)
        self.assertEqual(resp.body, img.manifest)
        resp = self.pull("hub/library/multi", "1.0")
        self.assertEqual(resp.header("Docker-Content-Digest"), index.digest)
        # the repositories exist now, with the images and the tags
        names = [r["repositoryName"] for r in
                 self.ok("DescribeRepositories", {})["repositories"]]
        self.assertIn("hub/library/app", names)
        images = self.ok("DescribeImages", {"repositoryName": "hub/library/multi"})
        self.assertEqual(len(images["imageDetails"]), 3)
        # skopeo pulls through berth as well
        sk = c.Skopeo(self.work)
        out = tempfile.mkdtemp(dir=self.work)
        sk.run("copy", "--all", "--src-tls-verify=false", "--preserve-digests",
               "docker://127.0.0.1:%d/hub/library/multi:1.0" % self.server.port,
               "oci:%s:x" % out)
        with open(os.path.join(out, "index.json")) as f:
            self.assertEqual(json.load(f)["manifests"][0]["digest"], index.digest)
        # every blob came from the upstream once
        for d in list(img.blobs) + list(amd.blobs) + list(arm.blobs):
            self.assertEqual(len(p.upstream_gets(up, "/blobs/" + d)), 1, d)
        # with the upstream gone: tags (inside the TTL) and digests still pull
        up.stop()
        self.assertEqual(self.pull("hub/library/app", "v1").body, img.manifest)
        self.pull("hub/library/multi", arm.digest)
        self.pull("hub/library/app", img.digest)
        # what was never fetched cannot be had
        resp = self.reg.get_manifest("hub/library/app", "v2")
        self.assertStatus(resp, 503)
        self.assertIn("UNAVAILABLE", resp.error_codes())

    def test_upstream_prefix_template_and_missing(self):
        up = start_upstream(self)
        img = h.build_image(layer_count=1)
        up.registry().push_image("mirror/team/tool", img, tag="stable")
        self.ok("CreateRepositoryCreationTemplate", {
            "prefix": "dmz", "appliedFor": ["PULL_THROUGH_CACHE"],
            "resourceTags": [{"Key": "origin", "Value": "dmz"}]})
        self.addCleanup(self.ok, "DeleteRepositoryCreationTemplate", {"prefix": "dmz"})
        self.rule("dmz", up.base_url, upstreamRepositoryPrefix="mirror")
        resp = self.pull("dmz/team/tool", "stable")
        self.assertEqual(resp.header("Docker-Content-Digest"), img.digest)
        tags = self.ok("ListTagsForResource", {"resourceArn": self.arn("dmz/team/tool")})
        self.assertEqual(tags["tags"], [{"Key": "origin", "Value": "dmz"}])
        # not upstream: 404 as for any unknown manifest
        resp = self.reg.get_manifest("dmz/team/tool", "nope")
        self.assertStatus(resp, 404)
        self.assertIn("MANIFEST_UNKNOWN", resp.error_codes())

    def test_digest_pull_never_goes_upstream_and_tag_waits_for_ttl(self):
        up = start_upstream(self)
        ur = up.registry()
        old = h.build_image(layer_count=1)
        ur.push_image("lib/app", old, tag="v1")
        self.rule("hub", up.base_url)
        self.pull("hub/lib/app", "v1")
        self.pull("hub/lib/app", old.digest)
        before = len(p.upstream_gets(up, "/manifests/"))
        new = h.build_image(layer_count=1)
        ur.push_image("lib/app", new, tag="v1")
        # the TTL (an hour by default) has not run out: the cached tag is served
        self.assertEqual(self.pull("hub/lib/app", "v1").header("Docker-Content-Digest"),
                         old.digest)
        self.pull("hub/lib/app", old.digest)
        self.assertEqual(len(p.upstream_gets(up, "/manifests/")), before)

    def test_references_that_name_nothing_do_not_go_upstream(self):
        """A digest reference berth could not store is not sent upstream (it goes into the
        upstream's URL): before, `sha256:..%2f..%2fother%2fapp%2fmanifests%2fv1%3f` reached
        the upstream as a path of the client's making, with berth's credentials."""
        up = start_upstream(self)
        self.rule("hub", up.base_url)
        for ref in ("sha256:..%2f..%2fother%2fapp%2fmanifests%2fv1%3f", "sha256:1234",
                    "x:y%3fa=b%23"):
            with self.subTest(ref=ref):
                resp = self.reg.get("/v2/hub/lib/app/manifests/" + ref)
                self.assertIn(resp.status, (400, 404), resp.describe())
        self.assertNotIn("/manifests/", up.log_text())

    def test_concurrent_first_pulls_fetch_each_blob_once(self):
        up = start_upstream(self)
        img = h.build_image(layer_count=3, layer_size=3 << 20)
        up.registry().push_image("lib/big", img, tag="v1")
        self.rule("hub", up.base_url)
        barrier = threading.Barrier(3)
        results = []

        def client():
            reg = self.server.registry()
            barrier.wait()
            got = [reg.get_manifest("hub/lib/big", "v1").status]
            for d in [img.config_digest] + img.layer_digests:
                b = reg.get_blob("hub/lib/big", d)
                got.append((b.status, h.digest_of(b.body) == d))
            results.append(got)

        threads = [threading.Thread(target=client) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(len(results), 3)
        for got in results:
            self.assertEqual(got, [200] + [(200, True)] * 4)
        for d in img.blobs:
            self.assertEqual(len(p.upstream_gets(up, "/blobs/" + d)), 1, d)
        self.assertEqual(len(p.upstream_gets(up, "/manifests/v1")), 1)


class TagTtlTest(CacheTestCase):
    server_config = {"storage": {"auto_create_repositories": False},
                     "pull_through": {"tag_ttl_seconds": 1}}

    def test_tag_refreshed_after_ttl_and_stale_when_upstream_down(self):
        up = start_upstream(self)
        ur = up.registry()
        old = h.build_image(layer_count=1)
        ur.push_image("lib/app", old, tag="v1")
        self.rule("hub", up.base_url)
        self.pull("hub/lib/app", "v1")
        time.sleep(1.2)
        # unchanged upstream: a HEAD, nothing fetched again
        self.assertEqual(self.pull("hub/lib/app", "v1").header("Docker-Content-Digest"),
                         old.digest)
        # the upstream writes its access line after sending the answer: wait for it
        h.wait_until(lambda: "method=HEAD path=/v2/lib/app/manifests/v1 status=200"
                     in up.log_text(), 30, what="the upstream's HEAD line")
        self.assertEqual(len(p.upstream_gets(up, "/manifests/v1")), 1)
        new = h.build_image(layer_count=1)
        ur.push_image("lib/app", new, tag="v1")
        h.wait_until(lambda: self.reg.get_manifest("hub/lib/app", "v1").header(
            "Docker-Content-Digest") == new.digest, 20, interval=0.3, what="the new v1")
        self.pull("hub/lib/app", "v1")
        self.pull("hub/lib/app", old.digest)  # the old image stays cached
        up.stop()
        time.sleep(1.2)
        resp = self.pull("hub/lib/app", "v1")
        self.assertEqual(resp.header("Docker-Content-Digest"), new.digest)
        self.assertIn("event=pull_through_stale repo=hub/lib/app tag=v1", self.server.log_text())


class UpstreamAuthTest(CacheTestCase):
    def test_basic_auth_upstream_with_a_secret(self):
        up = start_upstream(self)
        img = h.build_image(layer_count=1)
        up.registry().push_image("private/app", img, tag="v1")
        akid, secret = a.keys_create(up, "puller")
        self.assertStatus(up.registry().get_manifest("private/app", "v1"), 401)
        rc, out, err = p.berth_secrets(self.server, "put", "dmz", "--username", akid,
                                       password=secret)
        self.assertEqual(rc, 0, err)
        arn = out.strip()
        self.rule("anon", up.base_url)
        self.rule("auth", up.base_url, credentialArn=arn)
        resp = self.reg.get_manifest("anon/private/app", "v1")
        self.assertStatus(resp, 503)
        self.pull("auth/private/app", "v1")
        valid = self.ok("ValidatePullThroughCacheRule", {"ecrRepositoryPrefix": "auth"})
        self.assertTrue(valid["isValid"])
        self.assertNotIn(secret, self.server.log_text())


    def test_bearer_token_upstream(self):
        up = start_upstream(self, config={"auth": {"scheme": "bearer"}})
        img = h.build_image(layer_count=2)
        up.registry().push_image("private/app", img, tag="v1")
        akid, secret = a.keys_create(up, "puller", "pull")
        resp = up.registry().get_manifest("private/app", "v1")
        self.assertStatus(resp, 401)
        self.assertTrue(resp.header("WWW-Authenticate").startswith("Bearer "))
        rc, out, err = p.berth_secrets(self.server, "put", "tok", "--username", akid,
                                       password=secret)
        self.assertEqual(rc, 0, err)
        self.rule("anon", up.base_url)
        self.rule("tok", up.base_url, credentialArn=out.strip())
        self.assertStatus(self.reg.get_manifest("anon/private/app", "v1"), 503)
        resp = self.pull("tok/private/app", "v1")
        self.assertEqual(resp.header("Docker-Content-Digest"), img.digest)
        # the token came from the upstream's realm, asked for with the credentials
        self.assertTrue(p.upstream_gets(up, "^/v2/token"))
        self.assertTrue(self.ok("ValidatePullThroughCacheRule",
                                {"ecrRepositoryPrefix": "tok"})["isValid"])
        self.assertNotIn(secret, self.server.log_text())


class DistributionUpstreamTest(CacheTestCase):
    def test_pull_through_distribution(self):
        up = start_upstream(self, target="distribution")
        img = h.build_image(layer_count=2, docker=True)
        up.registry().push_image("library/tool", img, tag="latest")
        self.rule("dist", up.base_url)
        # curl first: the manifest, and a layer's first pull streamed to it
        base = "http://127.0.0.1:%d/v2/dist/library/tool" % self.server.port
        out = subprocess.run(["curl", "-sSf", "-H", "Accept: " + h.MT_DOCKER_MANIFEST,
                              base + "/manifests/latest"], capture_output=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, img.manifest)
        layer = img.layer_digests[0]
        out = subprocess.run(["curl", "-sSf", base + "/blobs/" + layer], capture_output=True,
                             timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(h.digest_of(out.stdout), layer)
        resp = self.pull("dist/library/tool", "latest")
        self.assertEqual(resp.header("Docker-Content-Digest"), img.digest)
        self.assertEqual(resp.header("Content-Type"), h.MT_DOCKER_MANIFEST)
        sk = c.Skopeo(self.work)
        out = tempfile.mkdtemp(dir=self.work)
        sk.run("copy", "--src-tls-verify=false",
               "docker://127.0.0.1:%d/dist/library/tool:latest" % self.server.port,
               "dir:%s" % out)
        self.assertTrue(os.path.exists(os.path.join(out, "manifest.json")))
        # distribution's access log names the client: the cache's own User-Agent
        gets = [line for line in up.log_text().splitlines()
                if "method=GET" in line and "uri=/v2/library/tool/" in line]
        self.assertTrue(gets)
        for line in gets:
            self.assertRegex(line, r"useragent=berth-pull-through/\d+\.\d+\.\d+ ")


class FakeUpstream(p.LoopbackServer):
    """A minimal upstream serving one image from memory; bad_blob makes it send other
    bytes for one blob, cut_blob only half of it (then closing the connection)."""

    def __init__(self, image):
        self.image = image
        self.bad_blob = None
        self.cut_blob = None
        self.hold_blob = None  # send half of it, then wait for self.release
        self.release = threading.Event()
        self.blob_gets = 0
        fake = self

        class Handler(p.QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                path = self.path
                if path == "/v2/":
                    return self.send(200, b"{}")
                if path.endswith("/manifests/v1") or path.endswith(
                        "/manifests/" + fake.image.digest):
                    return self.send(200, fake.image.manifest, fake.image.media_type)
                for d, data in fake.image.blobs.items():
                    if path.endswith("/blobs/" + d):
                        fake.blob_gets += 1
                        if d == fake.hold_blob:
                            self.send_half(data)
                            fake.release.wait(60)
                            self.wfile.write(data[len(data) // 2:])
                            return None
                        if d == fake.bad_blob:
                            data = bytes(len(data))
                        if d == fake.cut_blob:
                            self.send_half(data)
                            self.close_connection = True
                            return None
                        return self.send(200, data, "application/octet-stream")
                return self.send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')

            def send_half(self, data):
                """200 announcing all of data, and its first half sent."""
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[:len(data) // 2])
                self.wfile.flush()

        self.serve(Handler)


class StreamingTest(CacheTestCase):
    # one pool thread: a reader waiting for bytes must not hold up the other connections
    server_config = {"storage": {"auto_create_repositories": False}, "http": {"threads": 1}}

    def test_blob_streams_while_it_lands(self):
        img = h.build_image(layer_count=1, layer_size=4 << 20, compress=False)
        layer = img.layer_digests[0]
        data = img.blobs[layer]
        fake = FakeUpstream(img)
        self.addCleanup(fake.close)
        self.addCleanup(fake.release.set)
        fake.hold_blob = layer
        self.rule("fake", "http://127.0.0.1:%d" % fake.port)
        self.assertStatus(self.reg.get_manifest("fake/app", "v1"), 200)
        # two clients: both get the first half while the upstream still holds the rest
        conns = []
        for _ in range(2):
            conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
            self.addCleanup(conn.close)
            conn.request("GET", "/v2/fake/app/blobs/" + layer)
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.getheader("Content-Length"), str(len(data)))
            self.assertEqual(resp.getheader("Docker-Content-Digest"), layer)
            conns.append(resp)
        firsts = [resp.read(1 << 20) for resp in conns]
        for first in firsts:
            self.assertEqual(first, data[:1 << 20])
        # meanwhile the server answers other requests
        self.assertStatus(self.reg.get_manifest("fake/app", "v1"), 200)
        self.assertFalse(fake.release.is_set())
        fake.release.set()
        for resp, first in zip(conns, firsts):
            self.assertEqual(first + resp.read(), data)
        self.assertEqual(fake.blob_gets, 1)
        # published: later pulls come from the store (with Range), upstream or not
        h.wait_until(lambda: self.reg.get_blob("fake/app", layer).status == 200, 20,
                     what="the blob published")
        fake.close()
        resp = self.reg.get_blob("fake/app", layer, headers={"Range": "bytes=0-9"})
        self.assertStatus(resp, 206)
        self.assertEqual(resp.body, data[:10])
        self.assertEqual(fake.blob_gets, 1)

    def test_a_fetch_from_another_upstream_is_not_joined(self):
        """Two rules whose upstreams both serve a blob: a pull under the second while a
        fetch from the first is held gets the second upstream's copy at once. Before, the
        fetches were keyed by digest alone, so the second pull joined the first (a slow or
        hostile upstream held every rule's pull of a shared layer, and its bytes went to
        their clients)."""
        img = h.build_image(layer_count=1, layer_size=1 << 20, compress=False)
        layer = img.layer_digests[0]
        data = img.blobs[layer]
        slow = FakeUpstream(img)
        self.addCleanup(slow.close)
        self.addCleanup(slow.release.set)
        slow.hold_blob = layer
        good = FakeUpstream(img)
        self.addCleanup(good.close)
        self.rule("slow", "http://127.0.0.1:%d" % slow.port)
        self.rule("good", "http://127.0.0.1:%d" % good.port)
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
        self.addCleanup(conn.close)
        conn.request("GET", "/v2/slow/app/blobs/" + layer)
        held = conn.getresponse()
        self.assertEqual(held.status, 200)
        quarter = len(data) // 4  # of the half sent (berth keeps a little back)
        self.assertEqual(held.read(quarter), data[:quarter])
        resp = self.reg.get_blob("good/app", layer)
        self.assertStatus(resp, 200)
        self.assertEqual(resp.body, data)
        self.assertEqual(good.blob_gets, 1)
        self.assertFalse(slow.release.is_set())
        slow.release.set()
        self.assertEqual(held.read(), data[quarter:])


class CrashDuringFetchTest(CacheTestCase):
    def test_kill_during_a_fetch_publishes_nothing(self):
        img = h.build_image(layer_count=1, layer_size=2 << 20, compress=False)
        layer = img.layer_digests[0]
        fake = FakeUpstream(img)
        self.addCleanup(fake.close)
        self.addCleanup(fake.release.set)
        fake.hold_blob = layer
        self.rule("fake", "http://127.0.0.1:%d" % fake.port)
        self.assertStatus(self.reg.get_manifest("fake/app", "v1"), 200)
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
        conn.request("GET", "/v2/fake/app/blobs/" + layer)
        resp = conn.getresponse()
        self.assertEqual(resp.read(1 << 16), img.blobs[layer][:1 << 16])
        self.server.restart_after_crash()  # kill -9 while the blob lands
        conn.close()
        self.assertFalse(os.path.exists(os.path.join(
            self.server.root, "blobs", "sha256", layer[7:9], layer[7:])))
        self.assertEqual(self.ok("DescribeImages", {"repositoryName": "fake/app"})
                         ["imageDetails"][0]["imageDigest"], img.digest)
        # the next pull fetches it again, whole
        fake.hold_blob = None
        fake.release.set()
        blob = self.reg.get_blob("fake/app", layer)
        self.assertStatus(blob, 200)
        self.assertEqual(h.digest_of(blob.body), layer)


class DownstreamAuthTest(CacheTestCase):
    """berth itself with access keys: a key allowed to pull the cache's namespace fills it;
    one that may not is refused before anything is fetched."""

    def test_pull_with_keys(self):
        up = start_upstream(self)
        img = h.build_image(layer_count=1)
        up.registry().push_image("lib/app", img, tag="v1")
        self.rule("hub", up.base_url)
        puller = a.keys_create(self.server, "puller", "pull:hub/*")
        other = a.keys_create(self.server, "other", "pull:team/*")
        # (cleanups run last first: the keys go before the rules, which are dropped with
        # unsigned calls)
        self.addCleanup(a.keys_delete, self.server, puller[0])
        self.addCleanup(a.keys_delete, self.server, other[0])

        def get(key, path):
            return self.reg.request("GET", path, headers={
                "Authorization": "Basic " + e.b64(("%s:%s" % key).encode())})
        resp = get(other, "/v2/hub/lib/app/manifests/v1")
        self.assertIn(resp.status, (401, 403))
        self.assertEqual(p.upstream_gets(up, "/manifests/"), [])
        resp = get(puller, "/v2/hub/lib/app/manifests/v1")
        self.assertStatus(resp, 200)
        self.assertEqual(resp.header("Docker-Content-Digest"), img.digest)
        resp = get(puller, "/v2/hub/lib/app/blobs/" + img.layer_digests[0])
        self.assertStatus(resp, 200)
        self.assertEqual(h.digest_of(resp.body), img.layer_digests[0])

    def test_blobs_of_other_repositories_only_with_the_upstreams_word(self):
        """A blob the store holds for another repository is linked under the rule's prefix
        only when the upstream has it too. Before, any name under the prefix linked any
        blob the store held: a key limited to pull:hub/* read private/app's layer by its
        digest (403 under private/app, 200 under hub/...)."""
        up = start_upstream(self)
        img = h.build_image(layer_count=1)
        up.registry().push_image("lib/app", img, tag="v1")
        self.rule("hub", up.base_url)
        secret = h.random_bytes(8192)
        self.ok("CreateRepository", {"repositoryName": "private/app"})
        self.reg.ensure_blob("private/app", secret)
        self.ok("CreateRepository", {"repositoryName": "mine/app"})
        h.expect_status(self.reg.push_image("mine/app", img, tag="v1"), 201)
        puller = a.keys_create(self.server, "puller", "pull:hub/*")
        self.addCleanup(a.keys_delete, self.server, puller[0])

        def get(path):
            return self.reg.request("GET", path, headers={
                "Authorization": "Basic " + e.b64(("%s:%s" % puller).encode())})
        self.assertIn(get("/v2/private/app/blobs/" + h.digest_of(secret)).status, (401, 403))
        resp = get("/v2/hub/lib/app/blobs/" + h.digest_of(secret))
        self.assertStatus(resp, 404)
        self.assertNotEqual(resp.body, secret)
        # a blob the upstream has is linked from the store (a HEAD upstream, no download)
        layer = img.layer_digests[0]
        resp = get("/v2/hub/lib/app/blobs/" + layer)
        self.assertStatus(resp, 200)
        self.assertEqual(h.digest_of(resp.body), layer)
        self.assertEqual(p.upstream_gets(up, "/blobs/" + layer), [])
        self.assertIn("event=pull_through_linked repo=hub/lib/app digest=" + layer,
                      self.server.log_text())


class FetchLeftoversMixin:
    """Looking at what a failed fetch left, and at what a client got."""

    def leftovers(self):
        uploads = os.path.join(self.server.root, "uploads")
        return sorted(os.listdir(uploads)) if os.path.isdir(uploads) else []

    def get_blob_body(self, repo, digest):
        """A raw GET of a blob through berth: (status, the bytes that came, whether the
        body came whole)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
        try:
            conn.request("GET", "/v2/%s/blobs/%s" % (repo, digest))
            resp = conn.getresponse()
            try:
                return resp.status, resp.read(), True
            except http.client.IncompleteRead as exc:
                return resp.status, exc.partial, False
        except (ConnectionError, http.client.HTTPException):
            return None, b"", False
        finally:
            conn.close()


class FailedFetchTest(FetchLeftoversMixin, CacheTestCase):
    def test_bad_and_cut_blobs_publish_nothing(self):
        img = h.build_image(layer_count=1, layer_size=1 << 20)
        fake = FakeUpstream(img)
        self.addCleanup(fake.close)
        self.rule("fake", "http://127.0.0.1:%d" % fake.port)
        layer = img.layer_digests[0]
        for mode in ("bad_blob", "cut_blob"):
            with self.subTest(mode=mode):
                fake.bad_blob = fake.cut_blob = None
                setattr(fake, mode, layer)
                # the manifest is fine and stored; the blob's transfer is cut short, so
                # that no client ever holds the whole of a blob that does not match
                self.assertStatus(self.reg.get_manifest("fake/app", "v1"), 200)
                status, body, whole = self.get_blob_body("fake/app", layer)
                self.assertFalse(whole and status == 200 and h.digest_of(body) == layer)
                self.assertLess(len(body), len(img.blobs[layer]))
                h.wait_until(lambda: self.leftovers() == [], 20, what="the stage removed")
                self.assertFalse(os.path.exists(os.path.join(
                    self.server.root, "blobs", "sha256", layer[7:9], layer[7:])))
        # the upstream mended: the same pull works
        fake.bad_blob = fake.cut_blob = None
        resp = self.pull("fake/app", "v1")
        self.assertEqual(resp.header("Docker-Content-Digest"), img.digest)


class DiskSpaceFetchTest(FetchLeftoversMixin, CacheTestCase):
    """A fetch does not take the data disk below storage.min_free_bytes: an upstream's
    blob (an endless chunked body, a huge Content-Length) ended only when the disk was
    full. Here the bound is beyond any disk, so the fetch stops at its first check (8 MiB)."""

    server_config = {"storage": {"auto_create_repositories": False,
                                 "min_free_bytes": 1 << 60}}

    def test_fetch_stops_at_the_free_space_bound(self):
        img = h.build_image(layer_count=1, layer_size=9 << 20, compress=False)
        fake = FakeUpstream(img)
        self.addCleanup(fake.close)
        self.rule("fake", "http://127.0.0.1:%d" % fake.port)
        layer = img.layer_digests[0]
        self.assertStatus(self.reg.get_manifest("fake/app", "v1"), 200)
        status, body, whole = self.get_blob_body("fake/app", layer)
        self.assertFalse(whole and status == 200)
        self.assertLess(len(body), 9 << 20)
        h.wait_until(lambda: self.leftovers() == [], 20, what="the stage removed")
        h.wait_until(lambda: "under storage.min_free_bytes free" in self.server.log_text(), 20,
                     what="the reason in the log")


class RedirectInwardTest(CacheTestCase):
    """An upstream may redirect (a CDN for blobs) but not further inward than it is: one on
    the internet does not send berth to 127.0.0.1, a private network or the cloud's
    metadata address. Before, a hostile upstream's 307 made berth copy an internal
    registry's image and serve it (server-side request forgery). The test upstream is on
    127.0.0.1; BERTH_TEST_UPSTREAM_PUBLIC makes berth take it for an internet host."""

    server_env = {"BERTH_TEST_UPSTREAM_PUBLIC": "1"}

    def test_a_redirect_to_loopback_is_refused(self):
        internal = start_upstream(self)
        img = h.build_image(layer_count=1)
        internal.registry().push_image("internal/secret", img, tag="v1")
        layer = img.layer_digests[0]
        target = "%s/v2/internal/secret/blobs/%s" % (internal.base_url, layer)

        class Redirecting(p.QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                if self.path == "/v2/":
                    return self.send(200, b"{}")
                self.send_response(307)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None

        evil = p.LoopbackServer()
        evil.serve(Redirecting)
        self.addCleanup(evil.close)
        self.rule("evil", "http://127.0.0.1:%d" % evil.port)
        resp = self.reg.get_blob("evil/app", layer)
        self.assertNotEqual(resp.status, 200, resp.describe())
        self.assertEqual(p.upstream_gets(internal, "/blobs/"), [])
        self.assertIn("event=upstream_refused reason=inward_address", self.server.log_text())


class SlowUpstreamBoundTest(CacheTestCase):
    """A request waiting for an upstream holds its worker thread; at most half of the
    regular workers wait at once (here 2 workers: one), the others are answered 429 at
    once and the server keeps serving everyone. Before, 16 pulls from an upstream that
    never finished its answer held every worker for 30 s and more: nothing else was
    answered."""

    server_config = {"storage": {"auto_create_repositories": False}, "http": {"threads": 2}}

    def test_waiting_requests_are_bounded(self):
        img = h.build_image(layer_count=1)
        asked = threading.Event()
        release = threading.Event()
        self.addCleanup(release.set)

        class Holding(p.QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                if self.path == "/v2/":
                    return self.send(200, b"{}")
                if "/manifests/" in self.path:
                    asked.set()
                    release.wait(60)
                    return self.send(200, img.manifest, img.media_type)
                return self.send(404, b"{}")

        fake = p.LoopbackServer()
        fake.serve(Holding)
        self.addCleanup(fake.close)
        self.rule("hold", "http://127.0.0.1:%d" % fake.port)
        got = {}

        def first():
            got["first"] = h.Registry(self.server.base_url).get_manifest("hold/a", "v1")

        t = threading.Thread(target=first)
        t.start()
        self.addCleanup(t.join, 60)
        self.assertTrue(asked.wait(30))
        second = self.reg.get_manifest("hold/b", "v1")
        self.assertStatus(second, 429)
        self.assertEqual(second.json()["errors"][0]["code"], "TOOMANYREQUESTS")
        # new connections go to the worker that is not waiting (it counts as one sending a
        # large body), each answered at once
        for _ in range(20):
            conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
            try:
                conn.request("GET", "/v2/")
                self.assertEqual(conn.getresponse().status, 200)
            finally:
                conn.close()
        self.assertIn("event=pull_through_busy", self.server.log_text())
        release.set()
        t.join(60)
        self.assertStatus(got["first"], 200)


class TrickleBoundTest(CacheTestCase):
    """A fetch goes on after its clients leave (to cache the blob), so clients do not bound
    the fetches: an upstream that trickles gets at most 128 under way (a thread, a
    connection and a stage each), the next pull is answered 429, and a fetch slower than
    1 KiB/s for pull_through.timeout_seconds ends. Before, 4,000 one-byte-a-second fetches
    took 4,018 threads and every descriptor, and lasted as long as the upstream trickled."""

    server_config = {"storage": {"auto_create_repositories": False},
                     "pull_through": {"timeout_seconds": 30}}

    def test_fetches_are_bounded_and_trickles_end(self):
        stop = threading.Event()
        self.addCleanup(stop.set)

        class Trickling(p.QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_HEAD(self):
                return self.send(404, b"")

            def do_GET(self):
                if self.path == "/v2/":
                    return self.send(200, b"{}")
                self.send_response(200)
                self.send_header("Content-Length", str(1 << 20))
                self.end_headers()
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    while not stop.wait(1):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                except OSError:
                    pass
                self.close_connection = True
                return None

        fake = p.LoopbackServer()
        fake.serve(Trickling)
        self.addCleanup(fake.close)
        self.rule("drip", "http://127.0.0.1:%d" % fake.port)

        def start(i):
            conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
            try:
                conn.request("GET", "/v2/drip/app/blobs/sha256:%064x" % (i + 1))
                return conn.getresponse().status
            finally:
                conn.close()  # the client leaves; the fetch goes on

        statuses = [start(i) for i in range(128)]
        self.assertEqual(set(statuses), {200}, statuses)
        self.assertEqual(start(128), 429)
        self.assertIn("event=pull_through_busy fetches=128", self.server.log_text())
        # under 1 KiB/s for 30 s: the fetches end, and new ones start again
        h.wait_until(lambda: self.server.log_text().count("event=pull_through_failed") >= 128,
                     60, what="the trickling fetches to end")
        self.assertEqual(start(1000), 200)


if __name__ == "__main__":
    h.main()
