"""Manifests (end-3, end-7a/b, end-9): every kind, exact bytes, headers and errors."""

import base64
import json

import berth_harness as h

MIB = 1024 * 1024
PLATFORMS = [{"os": "linux", "architecture": "amd64"}, {"os": "linux", "architecture": "arm64"}]


def with_manifest(image, **changes):
    """A copy of image whose manifest object has changes applied (None deletes a key)."""
    obj = json.loads(image.manifest)
    for key, value in changes.items():
        if value is None:
            obj.pop(key, None)
        else:
            obj[key] = value
    return h.Image(obj, image.blobs, image.media_type, algo=image.algo)


class ManifestKindsTest(h.ServerTestCase):
    """PUT/GET/HEAD/DELETE by tag and by digest for every kind of manifest."""

    def roundtrip(self, image, tag="v1"):
        repo = self.repo()
        resp = self.reg.push_image(repo, image, tag=tag)
        self.assertStatus(resp, 201)
        self.assertHeader(resp, "Docker-Content-Digest", image.digest)
        location = self.assertHasHeader(resp, "Location")
        followed = self.reg.request("GET", self.reg.resolve(location),
                                    headers={"Accept": image.media_type})
        self.assertStatus(followed, 200)
        self.assertEqual(followed.body, image.manifest)
        for ref in (tag, image.digest):
            self.assertManifest(repo, ref, image)
            self.assertManifest(repo, ref, image, method="HEAD")
        resp = self.reg.tags(repo)
        self.assertStatus(resp, 200)
        self.assertIn(tag, resp.json()["tags"])
        # Pushing the same bytes again, by digest, is fine.
        resp = self.reg.put_manifest(repo, image.digest, image.manifest, image.media_type)
        self.assertStatus(resp, 201)
        self.assertHeader(resp, "Docker-Content-Digest", image.digest)
        # Delete by digest removes it and its tag.
        self.assertStatus(self.reg.delete(self.reg.manifest_path(repo, image.digest)), 202)
        self.assertError(self.reg.get_manifest(repo, image.digest), 404, "MANIFEST_UNKNOWN")
        self.assertError(self.reg.get_manifest(repo, tag), 404, "MANIFEST_UNKNOWN")
        self.assertStatus(self.reg.get_manifest(repo, image.digest, method="HEAD"), 404)
        return repo

    def test_oci_image(self):
        self.roundtrip(h.build_image())

    def test_oci_image_uncompressed(self):
        self.roundtrip(h.build_image(compress=False))

    def test_docker_schema2(self):
        self.roundtrip(h.build_image(docker=True))

    def test_docker_manifest_list(self):
        children = [h.build_image(docker=True, arch=p["architecture"]) for p in PLATFORMS]
        self.roundtrip(h.Index(children, media_type=h.MT_DOCKER_LIST, platforms=PLATFORMS))

    def test_oci_index(self):
        children = [h.build_image(arch=p["architecture"]) for p in PLATFORMS]
        self.roundtrip(h.Index(children, platforms=PLATFORMS))

    def test_nested_index(self):
        inner = [h.Index([h.build_image(arch=p["architecture"], layer_count=1)
                          for p in PLATFORMS], platforms=PLATFORMS) for _ in range(2)]
        self.roundtrip(h.Index(inner))

    def test_empty_index(self):
        self.roundtrip(h.Index([]))

    def test_artifact(self):
        self.roundtrip(h.build_artifact())

    def test_artifact_index(self):
        children = [h.build_artifact() for _ in PLATFORMS]
        self.roundtrip(h.Index(children, platforms=PLATFORMS,
                               extra={"artifactType": "application/vnd.example.bundle"}))

    def test_artifact_without_layers(self):
        self.roundtrip(h.build_artifact(layer_count=0))

    def test_artifact_with_empty_json_layer(self):
        # The conformance "artifact-without-layers" data set: one {} layer.
        art = h.build_artifact(layer_count=0)
        layer = h.blob_descriptor(h.MT_OCI_EMPTY, h.EMPTY_JSON)
        self.roundtrip(with_manifest(art, layers=[layer]))

    def test_image_without_layers(self):
        self.roundtrip(h.build_image(layer_count=0))

    def test_custom_fields(self):
        img = h.build_image(layer_count=1)
        obj = json.loads(img.manifest)
        obj["config"]["org.example.descriptor-field"] = {"nested": [1, 2, 3]}
        obj["org.example.top-level"] = "value"
        img = h.Image(obj, img.blobs)
        self.roundtrip(h.Index([img], platforms=PLATFORMS[:1],
                               extra={"org.example.index-field": True}))

    def test_data_field(self):
        img = h.build_image(layer_count=1)
        obj = json.loads(img.manifest)
        config = img.blobs[obj["config"]["digest"]]
        obj["config"]["data"] = base64.b64encode(config).decode()
        self.roundtrip(h.Image(obj, img.blobs))

    @h.distribution_fails("answers 500 to layers with urls (not in its allow list)")
    def test_non_distributable_layers_never_pushed(self):
        img = h.build_image(layer_count=1)
        obj = json.loads(img.manifest)
        foreign = []
        for mt, size in ((h.MT_OCI_LAYER_ND_GZIP, 123456), (h.MT_OCI_LAYER_ND_TAR, 12345)):
            digest = h.digest_of(h.random_bytes(64))
            foreign.append({"mediaType": mt, "digest": digest, "size": size,
                            "urls": ["https://store.example.com/blobs/" + digest]})
        obj["layers"] = foreign + obj["layers"]
        self.roundtrip(h.Image(obj, img.blobs))

    @h.distribution_fails("answers 500 to layers with urls (not in its allow list)")
    def test_docker_foreign_layer_never_pushed(self):
        img = h.build_image(layer_count=1, docker=True)
        obj = json.loads(img.manifest)
        digest = h.digest_of(h.random_bytes(64))
        obj["layers"].insert(0, {"mediaType": h.MT_DOCKER_FOREIGN, "digest": digest,
                                 "size": 99999,
                                 "urls": ["https://example.com/windows/" + digest]})
        self.roundtrip(h.Image(obj, img.blobs, h.MT_DOCKER_MANIFEST))

    def test_unknown_media_types(self):
        config = b'{"kind":"helm-ish"}'
        layer = h.random_bytes(300)
        obj = {
            "schemaVersion": 2,
            "mediaType": h.MT_OCI_MANIFEST,
            "config": h.blob_descriptor("application/vnd.example.config.v1+json", config),
            "layers": [h.blob_descriptor("application/vnd.example.layer.v1.tar+zstd", layer)],
        }
        blobs = {h.digest_of(config): config, h.digest_of(layer): layer}
        self.roundtrip(h.Image(obj, blobs))

    def test_manifest_without_media_type_field(self):
        img = with_manifest(h.build_image(layer_count=1), mediaType=None)
        self.assertNotIn(b'"mediaType":"application/vnd.oci.image.manifest', img.manifest)
        self.roundtrip(img)

    def test_large_manifest_accepted(self):
        annotations = {"large-annotation-%d" % i: "A" * 10000 for i in range(390)}
        img = h.build_image(layer_count=1, annotations=annotations)
        self.assertGreater(len(img.manifest), 3900000)
        self.assertLess(len(img.manifest), 4 * MIB)
        self.roundtrip(img)

    @h.distribution_fails("no sha512 support")
    def test_sha512_index(self):
        children = [h.build_image(arch=p["architecture"], algo="sha512") for p in PLATFORMS]
        index = h.Index(children, platforms=PLATFORMS, algo="sha512")
        repo = self.repo()
        resp = self.reg.push_image(repo, index)  # by digest: sha512 needs no tag
        self.assertStatus(resp, 201)
        self.assertHeader(resp, "Docker-Content-Digest", index.digest)
        for child in children:
            self.assertManifest(repo, child.digest, child)
        self.assertManifest(repo, index.digest, index)
        self.assertStatus(self.reg.delete(self.reg.manifest_path(repo, index.digest)), 202)
        self.assertStatus(self.reg.get_manifest(repo, index.digest, method="HEAD"), 404)


class ManifestBehaviourTest(h.ServerTestCase):
    def push_blobs(self, repo, image):
        for data in image.blobs.values():
            self.reg.ensure_blob(repo, data, algo=image.algo)

    def test_exact_bytes_with_odd_formatting(self):
        repo = self.repo()
        img = h.build_image(layer_count=1)
        self.push_blobs(repo, img)
        obj = json.loads(img.manifest)
        # Reversed key order, odd whitespace, an escaped character, trailing newlines.
        text = '{\n\t"layers" :  %s ,\r\n  "config":%s,"annotations":{"note":"caf\\u00e9"},' \
               '\n"schemaVersion"  :2,   "mediaType":"%s"   }\n\n' % (
                   json.dumps(obj["layers"], indent=3), json.dumps(obj["config"]),
                   h.MT_OCI_MANIFEST)
        odd = h.Image(obj, img.blobs, manifest_bytes=text.encode())
        resp = self.reg.put_manifest(repo, "odd", odd.manifest, odd.media_type)
        self.assertStatus(resp, 201)
        self.assertHeader(resp, "Docker-Content-Digest", odd.digest)
        self.assertManifest(repo, "odd", odd)
        self.assertManifest(repo, odd.digest, odd)

    def test_content_type_has_no_parameters(self):
        repo = self.repo()
        img = h.build_image(layer_count=1)
        self.push_image_ok(repo, img, tag="plain")
        resp = self.reg.get_manifest(repo, "plain", accept=h.MT_OCI_MANIFEST)
        self.assertStatus(resp, 200)
        self.assertHeader(resp, "Content-Type", h.MT_OCI_MANIFEST)

    def test_content_type_parameters_ignored_on_put(self):
        repo = self.repo()
        img = h.build_image(layer_count=1)
        self.push_blobs(repo, img)
        resp = self.reg.put_manifest(repo, "param", img.manifest,
                                     h.MT_OCI_MANIFEST + "; charset=utf-8")
        self.assertStatus(resp, 201)
        self.assertHeader(self.reg.get_manifest(repo, "param", accept=h.MT_OCI_MANIFEST),
                          "Content-Type", h.MT_OCI_MANIFEST)

    def test_put_by_digest(self):
        repo = self.repo()
        img = h.build_image()
        resp = self.push_image_ok(repo, img)
        location = self.assertHasHeader(resp, "Location")
        followed = self.reg.request("GET", self.reg.resolve(location),
                                    headers={"Accept": img.media_type})
        self.assertEqual(followed.body, img.manifest)
        self.assertManifest(repo, img.digest, img)
        if h.IS_BERTH:  # distribution: 404 for a repository without tags
            tags = self.reg.tags(repo)
            self.assertStatus(tags, 200)
            self.assertEqual(tags.json(), {"name": repo, "tags": []})

    def test_put_by_digest_mismatch(self):
        repo = self.repo()
        img = h.build_image(layer_count=1)
        self.push_blobs(repo, img)
        other = h.digest_of(img.manifest + b"  ")
        resp = self.reg.put_manifest(repo, other, img.manifest, img.media_type)
        self.assertError(resp, 400, "DIGEST_INVALID")
        self.assertStatus(self.reg.get_manifest(repo, other, method="HEAD"), 404)
        self.assertStatus(self.reg.get_manifest(repo, img.digest, method="HEAD"), 404)

    def test_bad_digest_image(self):
        # The conformance "bad-digest-image": bytes plus two spaces, pushed by the old digest.
        repo = self.repo()
        img = h.build_image(layer_count=1)
        self.push_blobs(repo, img)
        resp = self.reg.put_manifest(repo, img.digest, img.manifest + b"  ", img.media_type)
        self.assertError(resp, 400, "DIGEST_INVALID")

    @h.distribution_fails("answers 500 to a malformed digest on PUT")
    def test_invalid_digest_format(self):
        repo = self.repo()
        img = h.build_image(layer_count=1)
        self.push_blobs(repo, img)
        resp = self.reg.put_manifest(repo, "sha256:baddigeststring", img.manifest,
                                     img.media_type)
        self.assertError(resp, 400, "DIGEST_INVALID", "MANIFEST_INVALID", "TAG_INVALID")
        resp = self.reg.get_manifest(repo, "sha256:baddigeststring")
        self.assertIn(resp.status, (400, 404), resp.describe())

    @h.distribution_fails("no ?tag= parameters on PUT by digest")
    def test_tag_parameters(self):
        repo = self.repo()
        img = h.build_image(layer_count=1)
        self.push_blobs(repo, img)
        resp = self.reg.put_manifest(repo, img.digest, img.manifest, img.media_type,
                                     tags=("tag-a", "tag-b"))
        self.assertStatus(resp, 201)
        self.assertHeader(resp, "Docker-Content-Digest", img.digest)
        oci_tags = []
        for value in resp.header_all("OCI-Tag"):
            oci_tags += [t.strip() for t in value.split(",")]
        self.assertEqual(sorted(oci_tags), ["tag-a", "tag-b"], resp.describe())
        for tag in ("tag-a", "tag-b"):
            self.assertManifest(repo, tag, img)
        self.assertEqual(self.reg.tags(repo).json().get("tags"), ["tag-a", "tag-b"])

    @h.distribution_fails("no ?tag= parameters on PUT by digest")
    def test_ten_tag_parameters(self):
        repo = self.repo()
        img = h.build_image(layer_count=1)
        self.push_blobs(repo, img)
        tags = ["t%02d" % i for i in range(10)]
        resp = self.reg.put_manifest(repo, img.digest, img.manifest, img.media_type, tags=tags)
        self.assertStatus(resp, 201)
        self.assertEqual(self.reg.tags(repo).json().get("tags"), tags)

    @h.distribution_fails("no ?tag= parameters on PUT by digest")
    def test_invalid_tag_parameter(self):
        repo = self.repo()
        img = h.build_image(layer_count=1)
        self.push_blobs(repo, img)
        resp = self.reg.put_manifest(repo, img.digest, img.manifest, img.media_type,
                                     tags=("good", "-bad"))
        self.assertStatus(resp, 400)
        resp.error_codes()
        # refused as a whole: neither the valid tag nor the manifest itself was stored
        self.assertError(self.reg.get_manifest(repo, "good"), 404, "MANIFEST_UNKNOWN")
        self.assertError(self.reg.get_manifest(repo, img.digest), 404, "MANIFEST_UNKNOWN")

    @h.distribution_fails("answers 404 to a reference that is not a valid tag")
    def test_invalid_tag(self):
        repo = self.repo()
        img = h.build_image(layer_count=1)
        self.push_blobs(repo, img)
        for tag in ("-dash", ".dot", "a" * 129, "t%21"):
            resp = self.reg.put_manifest(repo, tag, img.manifest, img.media_type)
            with self.subTest(tag=tag):
                self.assertStatus(resp, 400)
                resp.error_codes()

    def test_invalid_tag_on_get_and_head_is_unknown(self):
        # a reference that cannot be a tag names no manifest: 404 MANIFEST_UNKNOWN, as
        # distribution answers and the v1.1.1 conformance suite expects; PUT refuses it
        repo = self.repo()
        img = h.build_image(layer_count=1)
        self.push_blobs(repo, img)
        self.assertStatus(self.reg.put_manifest(repo, "ok", img.manifest, img.media_type), 201)
        for tag in (".INVALID_MANIFEST_NAME", "-dash", "a" * 129):
            with self.subTest(tag=tag):
                self.assertError(self.reg.get_manifest(repo, tag), 404, "MANIFEST_UNKNOWN")
                self.assertStatus(self.reg.get_manifest(repo, tag, method="HEAD"), 404)
                self.assertError(self.reg.put_manifest(repo, tag, img.manifest, img.media_type),
                                 400, "TAG_INVALID")
        self.assertEqual(self.reg.tags(repo).json().get("tags"), ["ok"])

    def test_longest_tag(self):
        repo = self.repo()
        img = h.build_image(layer_count=1)
        tag = "T" + "a_.-9" * 25 + "xy"
        self.assertEqual(len(tag), 128)
        self.push_image_ok(repo, img, tag=tag)
        self.assertManifest(repo, tag, img)

    @h.distribution_fails("answers 400 MANIFEST_INVALID above 4 MiB")
    def test_too_large_is_413(self):
        repo = self.repo()
        img = h.build_image(layer_count=1)
        self.push_blobs(repo, img)
        obj = json.loads(img.manifest)
        obj["annotations"] = {"pad": ""}
        base = len(h.canonical_json(obj))
        obj["annotations"]["pad"] = "B" * (4 * MIB + 1 - base)
        body = h.canonical_json(obj)
        self.assertEqual(len(body), 4 * MIB + 1)
        resp = self.reg.put_manifest(repo, "big", body, h.MT_OCI_MANIFEST)
        self.assertStatus(resp, 413)
        self.assertStatus(self.reg.get_manifest(repo, "big", method="HEAD"), 404)

    @h.berth_only("the limit is storage.manifest_max_bytes, 4 MiB inclusive")
    def test_exactly_4mib_accepted(self):
        repo = self.repo()
        img = h.build_image(layer_count=1)
        self.push_blobs(repo, img)
        obj = json.loads(img.manifest)
        obj["annotations"] = {"pad": ""}
        base = len(h.canonical_json(obj))
        obj["annotations"]["pad"] = "C" * (4 * MIB - base)
        exact = h.Image(obj, img.blobs)
        self.assertEqual(len(exact.manifest), 4 * MIB)
        resp = self.reg.put_manifest(repo, "edge", exact.manifest, h.MT_OCI_MANIFEST)
        self.assertStatus(resp, 201)
        self.assertManifest(repo, "edge", exact)

    def test_missing_layer(self):
        repo = self.repo()
        img = h.build_image(layer_count=2)
        missing = img.layer_digests[1]
        for digest, data in img.blobs.items():
            if digest != missing:
                self.reg.ensure_blob(repo, data)
        resp = self.reg.put_manifest(repo, "v1", img.manifest, img.media_type)
        self.assertError(resp, 400, "MANIFEST_BLOB_UNKNOWN")
        self.assertStatus(self.reg.get_manifest(repo, "v1", method="HEAD"), 404)

    def test_missing_config(self):
        repo = self.repo()
        img = h.build_image(layer_count=1)
        for digest in img.layer_digests:
            self.reg.ensure_blob(repo, img.blobs[digest])
        resp = self.reg.put_manifest(repo, "v1", img.manifest, img.media_type)
        self.assertError(resp, 400, "MANIFEST_BLOB_UNKNOWN")

    def test_blob_only_in_another_repository(self):
        repo, other = self.repo(), self.repo("-other")
        img = h.build_image(layer_count=1)
        self.push_blobs(other, img)
        resp = self.reg.put_manifest(repo, "v1", img.manifest, img.media_type)
        self.assertError(resp, 400, "MANIFEST_BLOB_UNKNOWN", "NAME_UNKNOWN")

    def test_index_with_missing_child(self):
        repo = self.repo()
        present, absent = h.build_image(layer_count=1), h.build_image(layer_count=1)
        self.push_image_ok(repo, present)
        self.push_blobs(repo, absent)
        index = h.Index([present, absent], platforms=PLATFORMS)
        resp = self.reg.put_manifest(repo, "multi", index.manifest, index.media_type)
        self.assertError(resp, 400, "MANIFEST_BLOB_UNKNOWN")
        self.assertStatus(self.reg.get_manifest(repo, "multi", method="HEAD"), 404)

    @h.distribution_fails("no OCI-Subject header")
    def test_missing_subject_accepted(self):
        repo = self.repo()
        subject = {"mediaType": h.MT_OCI_MANIFEST, "size": 123,
                   "digest": h.digest_of(b"missing content")}
        art = h.build_artifact(subject=subject, annotations={"k": "v"})
        resp = self.push_image_ok(repo, art, tag="tagged-artifact")
        self.assertHeader(resp, "OCI-Subject", subject["digest"])
        self.assertManifest(repo, art.digest, art)

    @h.distribution_fails("no OCI-Subject header")
    def test_subject_header_on_put(self):
        repo = self.repo()
        img = h.build_image(layer_count=1)
        self.push_image_ok(repo, img, tag="base")
        art = h.build_artifact(subject=img.descriptor())
        resp = self.push_image_ok(repo, art)
        self.assertHeader(resp, "OCI-Subject", img.digest)

    def test_no_subject_header_without_subject(self):
        repo = self.repo()
        resp = self.push_image_ok(repo, h.build_image(layer_count=1), tag="plain")
        self.assertIsNone(resp.header("OCI-Subject"))

    def test_malformed_json(self):
        repo = self.repo()
        self.reg.ensure_blob(repo, b"exists")
        for body in (b"{not json", b"", b"[]", b'"a string"', b'{"schemaVersion":2,',
                     b"\xff\xfe{}", b"{}" + b"x"):
            resp = self.reg.put_manifest(repo, "bad", body, h.MT_OCI_MANIFEST)
            with self.subTest(body=body[:20]):
                self.assertError(resp, 400, "MANIFEST_INVALID")

    def test_error_quoting_long_non_ascii_input(self):
        # The error message quotes the media type, cut at a limit: cutting
        # in the middle of a UTF-8 sequence once made the JSON body
        # impossible to build (a 500).
        repo = self.repo()
        for n in (199, 200, 201, 300):
            body = ('{"schemaVersion":2,"mediaType":"a%s","config":{}}' % ("\u00e9" * n))
            resp = self.reg.put_manifest(repo, "bad", body.encode(), "application/json")
            with self.subTest(n=n):
                self.assertError(resp, 400, "MANIFEST_INVALID")

    @h.distribution_fails("answers 500 to a malformed digest in a descriptor")
    def test_invalid_manifest_fields(self):
        repo = self.repo()
        img = h.build_image(layer_count=1)
        self.push_blobs(repo, img)
        obj = json.loads(img.manifest)
        no_digest = dict(obj, config={k: v for k, v in obj["config"].items() if k != "digest"})
        bad_digest = dict(obj, config=dict(obj["config"], digest="sha256:xyz"))
        layers_not_list = dict(obj, layers={"a": 1})
        bad_size = dict(obj, config=dict(obj["config"], size="big"))
        for name, bad in (("no-digest", no_digest), ("bad-digest", bad_digest),
                          ("layers-not-list", layers_not_list), ("bad-size", bad_size)):
            resp = self.reg.put_manifest(repo, "bad", h.canonical_json(bad), h.MT_OCI_MANIFEST)
            with self.subTest(case=name):
                self.assertError(resp, 400, "MANIFEST_INVALID", "DIGEST_INVALID")

    def test_manifest_invalid_message_says_it_once(self):
        # docker and other distribution clients print "<code description>: <message>":
        # a message that starts with "manifest invalid: " again reads twice
        repo = self.repo()
        cases = {
            b'{"schemaVersion": 1}':
                "schemaVersion must be 2 (schema 1 manifests are not supported)",
            b'[1]': "manifest must be a JSON object",
        }
        for body, message in cases.items():
            with self.subTest(body=body):
                resp = self.reg.put_manifest(repo, "v1", body, h.MT_OCI_MANIFEST)
                self.assertError(resp, 400, "MANIFEST_INVALID")
                self.assertEqual(resp.json()["errors"][0]["message"], message)

    def test_missing_manifest(self):
        repo = self.repo()
        self.push_image_ok(repo, h.build_image(layer_count=1), tag="exists")
        self.assertError(self.reg.get_manifest(repo, "missing-tag"), 404, "MANIFEST_UNKNOWN")
        missing = h.digest_of(h.random_bytes(1024))
        self.assertError(self.reg.get_manifest(repo, missing), 404, "MANIFEST_UNKNOWN")
        self.assertStatus(self.reg.get_manifest(repo, missing, method="HEAD"), 404)

    def test_tag_moves(self):
        repo = self.repo()
        first, second = h.build_image(layer_count=1), h.build_image(layer_count=1)
        self.push_image_ok(repo, first, tag="latest")
        self.push_image_ok(repo, second, tag="latest")
        self.assertManifest(repo, "latest", second)
        self.assertManifest(repo, first.digest, first)

    def test_head_by_tag_gives_digest(self):
        # containerd resolves a tag with HEAD and trusts Docker-Content-Digest.
        repo = self.repo()
        img = h.build_image(layer_count=1, docker=True)
        self.push_image_ok(repo, img, tag="resolve")
        resp = self.reg.get_manifest(repo, "resolve", method="HEAD", accept=h.DOCKER_ACCEPT)
        self.assertStatus(resp, 200)
        self.assertHeader(resp, "Docker-Content-Digest", img.digest)
        self.assertHeader(resp, "Content-Type", h.MT_DOCKER_MANIFEST)
        self.assertHeader(resp, "Content-Length", str(len(img.manifest)))


class AcceptLenienceTest(h.ServerTestCase):
    """GET answers 200 with the stored type whatever the Accept header says."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.accept_repo = "itest/accept"
        cls.images = {
            "oci": h.build_image(layer_count=1),
            "docker": h.build_image(layer_count=1, docker=True),
        }
        cls.images["index"] = h.Index([cls.images["oci"]], platforms=PLATFORMS[:1])
        for tag, img in cls.images.items():
            h.expect_status(cls.reg.push_image(cls.accept_repo, img, tag=tag), 201)

    def check(self, accept, kinds):
        for kind in kinds:
            img = self.images[kind]
            for method in ("GET", "HEAD"):
                resp = self.reg.get_manifest(self.accept_repo, kind, accept=accept,
                                             method=method)
                with self.subTest(kind=kind, method=method):
                    self.assertStatus(resp, 200)
                    self.assertHeader(resp, "Content-Type", img.media_type)
                    self.assertHeader(resp, "Docker-Content-Digest", img.digest)
                    if method == "GET":
                        self.assertEqual(resp.body, img.manifest)

    @h.distribution_fails("without a matching Accept: 404 for OCI, Docker converted to schema 1")
    def test_no_accept(self):
        self.check(None, ("oci", "docker", "index"))

    def test_docker_accept_list(self):
        self.check(h.DOCKER_ACCEPT, ("oci", "docker", "index"))

    @h.distribution_fails("without a matching Accept: 404 for OCI, Docker converted to schema 1")
    def test_unrelated_accept(self):
        self.check("text/html", ("oci", "docker", "index"))

    @h.distribution_fails("without a matching Accept: 404 for OCI, Docker converted to schema 1")
    def test_wildcard_accept(self):
        self.check("*/*", ("oci", "docker", "index"))


if __name__ == "__main__":
    h.main()
