"""A walk-through of the OCI distribution-spec conformance suite, case by case.

Two classes, one per generation of the suite (reference oci-distribution.md section 2):

- ConformanceV111: the Ginkgo suite of v1.1.1 (01_pull, 02_push, 03_discovery,
  04_management). Each step is a subTest named after its g.Specify string, in order.
- ConformanceMain: the main-branch suite (conformance/run.go TestAll): ping, empty,
  "sha256 blobs", "sha512 blobs", the data sets, the manifest errors, in that order,
  each step named as in run.go.

Steps that distribution is known to fail are skipped on that target only.
"""

import base64
import json

import berth_harness as h

# The spec's error codes (code-1 .. code-14): a 4xx body must use one of them.
SPEC_ERROR_CODES = {
    "BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID",
    "NAME_UNKNOWN", "SIZE_INVALID", "UNAUTHORIZED", "DENIED", "UNSUPPORTED", "TOOMANYREQUESTS",
}
CHUNK_MIN = 1024  # conformance/api.go chunkMin
# v1.1.1 setup.go nonexistentManifest: a reference that is not even a valid tag names no
# manifest, so GET and HEAD answer 404 (distribution: MANIFEST_UNKNOWN)
NONEXISTENT_MANIFEST = ".INVALID_MANIFEST_NAME"
EXAMPLE_CONF1 = "application/vnd.example.conformance.config1+json"
EXAMPLE_CONF2 = "application/vnd.example.conformance.config2+json"
TYPE_A = "application/vnd.example.conformance.type-a"
TYPE_B = "application/vnd.example.conformance.type-b"
TYPE_INDEX = "application/vnd.example.conformance.index"
ANNOTATION = "org.opencontainers.conformance.test"
PLATFORMS = [{"os": "linux", "architecture": "amd64"}, {"os": "linux", "architecture": "arm64"}]


class ConformanceCase(h.ServerTestCase):
    """Steps are subTests; a step distribution is known to fail is skipped there."""

    def known_failure(self, reason):
        if h.IS_DISTRIBUTION and not h.STRICT:
            self.skipTest("distribution fails this: " + reason)

    def ok2xx(self, resp, *also):
        if not (200 <= resp.status < 300 or resp.status in also):
            self.fail("expected 2xx%s, got:\n%s"
                      % ("".join(" or %d" % s for s in also), resp.describe()))
        return resp

    def follow(self, resp):
        return self.reg.resolve(self.assertHasHeader(resp, "Location"))


# =============================================================================================
# v1.1.1


class ConformanceV111(ConformanceCase):
    def test_1_pull(self):
        # 01_pull_test.go
        repo = "conformance/pull"
        nonexistent = h.digest_of(b"dummy nonexistent")
        layer = h.make_layer({"hello.txt": b"hello pull"})[0]
        manifests = []
        with self.subTest("Setup: push blob, layer, 2 manifests, tag"):
            self.reg.ensure_blob(repo, layer)
            for i in range(2):
                config = h.canonical_json({"architecture": "amd64", "os": "linux", "n": i})
                self.reg.ensure_blob(repo, config)
                obj = {"schemaVersion": 2, "mediaType": h.MT_OCI_MANIFEST,
                       "config": h.blob_descriptor(h.MT_OCI_CONFIG, config),
                       "layers": [h.blob_descriptor(h.MT_OCI_LAYER_GZIP, layer)]}
                img = h.Image(obj, {h.digest_of(config): config, h.digest_of(layer): layer})
                self.assertStatus(self.reg.put_manifest(repo, img.digest, img.manifest,
                                                        img.media_type), 201)
                manifests.append(img)
            self.assertStatus(self.reg.put_manifest(repo, "tagtest0", manifests[0].manifest,
                                                    h.MT_OCI_MANIFEST), 201)
        blob = h.digest_of(layer)
        with self.subTest("HEAD request to nonexistent blob should result in 404 response"):
            self.assertStatus(self.reg.head_blob(repo, nonexistent), 404)
        with self.subTest("HEAD request to existing blob should yield 200"):
            resp = self.assertStatus(self.reg.head_blob(repo, blob), 200)
            self.assertHeader(resp, "Docker-Content-Digest", blob)
        with self.subTest("GET nonexistent blob should result in 404 response"):
            self.assertStatus(self.reg.get_blob(repo, nonexistent), 404)
        with self.subTest("GET request to existing blob URL should yield 200"):
            self.assertEqual(self.assertStatus(self.reg.get_blob(repo, blob), 200).body, layer)
        accept = h.MT_OCI_MANIFEST
        with self.subTest("HEAD request to nonexistent manifest should return 404"):
            self.assertStatus(self.reg.get_manifest(repo, NONEXISTENT_MANIFEST, accept, "HEAD"),
                              404)
        for i in range(2):
            with self.subTest("HEAD request to manifest[%d] path (digest) should yield 200 "
                              "response" % i):
                self.assertStatus(self.reg.get_manifest(repo, manifests[i].digest, accept,
                                                        "HEAD"), 200)
        with self.subTest("HEAD request to manifest path (tag) should yield 200 response"):
            self.assertStatus(self.reg.get_manifest(repo, "tagtest0", accept, "HEAD"), 200)
        with self.subTest("GET nonexistent manifest should return 404"):
            self.assertError(self.reg.get_manifest(repo, NONEXISTENT_MANIFEST, accept), 404,
                             "MANIFEST_UNKNOWN")
        for i in range(2):
            with self.subTest("GET request to manifest[%d] path (digest) should yield 200 "
                              "response" % i):
                self.assertManifest(repo, manifests[i].digest, manifests[i])
        with self.subTest("GET request to manifest path (tag) should yield 200 response"):
            self.assertManifest(repo, "tagtest0", manifests[0])
        with self.subTest("Error codes: 400 response body should contain OCI-conforming JSON "
                          "message"):
            self.known_failure("answers 500 to sha256:totallywrong")
            resp = self.reg.request("GET", self.reg.manifest_path(repo, "sha256:totallywrong"),
                                    headers={"Content-Type": h.MT_OCI_MANIFEST},
                                    body=b'{"invalid": true}')
            self.assertIn(resp.status, (400, 404), resp.describe())
            if resp.status == 400:
                self.assertIn(resp.error_codes()[0], SPEC_ERROR_CODES)
        with self.subTest("Teardown: delete manifests and blobs created in setup"):
            for img in manifests:
                self.ok2xx(self.reg.delete(self.reg.manifest_path(repo, img.digest)), 405)
            for digest in {blob} | {img.config_digest for img in manifests}:
                self.ok2xx(self.reg.delete_blob(repo, digest), 404, 405)

    def test_2_push(self):
        # 02_push_test.go
        repo, crossmount = "conformance/push", "conformance/crossmount"
        dummy = h.digest_of(b"conformance dummy")
        blob_a = h.random_bytes(1000)
        blob_b = h.random_bytes(2 * CHUNK_MIN - 2)
        chunk1, chunk2 = blob_b[:CHUNK_MIN], blob_b[CHUNK_MIN:]
        config = h.canonical_json({"architecture": "amd64", "os": "linux", "push": 1})
        layer = h.make_layer({"push.txt": b"layer for push"})[0]
        ref_blob = h.random_bytes(32)
        last = {}

        with self.subTest("Setup: Upload empty JSON blob needed for further tests"):
            self.ok2xx(self.reg.push_blob(repo, h.EMPTY_JSON))
        with self.subTest("Setup: Upload blob needed for further tests"):
            self.ok2xx(self.reg.push_blob(repo, ref_blob))

        # Blob Upload Streamed
        with self.subTest("PATCH request with blob in body should yield 202 response"):
            loc = self.follow(self.reg.start_upload(repo))
            resp = self.reg.request("PATCH", loc, headers={"Content-Type": h.MT_OCTET},
                                    body=blob_a)
            last["stream"] = self.assertStatus(resp, 202)
        with self.subTest("PUT request to session URL with digest should yield 201 response"):
            resp = self.reg.finish_upload(last["stream"].header("Location"), h.digest_of(blob_a))
            self.assertStatus(resp, 201)
            self.assertHasHeader(resp, "Location")

        # Blob Upload Monolithic
        with self.subTest("GET nonexistent blob should result in 404 response"):
            self.assertStatus(self.reg.get_blob(repo, dummy), 404)
        with self.subTest("POST request with digest and blob should yield a 201 or 202"):
            resp = self.reg.push_blob(repo, config, mode="post_only")
            last["post"] = resp
            self.assertHasHeader(resp, "Location")
            self.assertStatus(resp, 201, 202)
            if h.IS_BERTH:
                self.assertStatus(resp, 201)  # berth supports single-POST uploads
        with self.subTest("GET request to blob URL from prior request should yield 200 or 404 "
                          "based on response code"):
            resp = self.reg.get_blob(repo, h.digest_of(config))
            self.assertStatus(resp, 404 if last["post"].status == 202 else 200)
        with self.subTest("POST request should yield a session ID"):
            last["session"] = self.assertStatus(self.reg.start_upload(repo), 202)
        with self.subTest("PUT upload of a blob should yield a 201 Response"):
            resp = self.reg.finish_upload(last["session"].header("Location"),
                                          h.digest_of(config), config)
            self.assertStatus(resp, 201)
            self.assertHasHeader(resp, "Location")
        with self.subTest("GET request to existing blob should yield 200 response"):
            self.assertStatus(self.reg.get_blob(repo, h.digest_of(config)), 200)
        with self.subTest("PUT upload of a layer blob should yield a 201 Response"):
            self.assertStatus(self.reg.push_blob(repo, layer), 201)
        with self.subTest("GET request to existing layer should yield 200 response"):
            self.assertStatus(self.reg.get_blob(repo, h.digest_of(layer)), 200)

        # Blob Upload Chunked
        with self.subTest("Out-of-order blob upload should return 416"):
            self.known_failure("accepts out-of-order chunks")
            loc = self.follow(self.reg.start_upload(repo))
            self.assertStatus(self.reg.patch_chunk(loc, chunk2, len(chunk1)), 416)
        with self.subTest("PATCH request with first chunk should return 202"):
            last["prev"] = self.assertStatus(self.reg.start_upload(repo), 202)
            resp = self.reg.patch_chunk(last["prev"].header("Location"), chunk1, 0)
            self.assertStatus(resp, 202)
            self.assertHeader(resp, "Range", "0-%d" % (len(chunk1) - 1))
            last["chunk"] = resp
        with self.subTest("Retry previous blob chunk should return 416"):
            self.known_failure("accepts a re-sent chunk")
            resp = self.reg.patch_chunk(last["prev"].header("Location"), chunk1, 0)
            self.assertStatus(resp, 416)
        with self.subTest("Get on stale blob upload should return 204 with a range and "
                          "location"):
            self.known_failure("its stale upload URL (old _state) is rejected")
            resp = self.reg.get(self.reg.resolve(last["prev"].header("Location")))
            self.assertStatus(resp, 204)
            self.assertHasHeader(resp, "Location")
            self.assertHeader(resp, "Range", "0-%d" % (len(chunk1) - 1))
            last["chunk"] = resp
        with self.subTest("PATCH request with second chunk should return 202"):
            resp = self.reg.patch_chunk(last["chunk"].header("Location"), chunk2, len(chunk1))
            self.assertStatus(resp, 202)
            self.assertHeader(resp, "Range", "0-%d" % (len(blob_b) - 1))
            last["chunk"] = resp
        with self.subTest("PUT request with digest should return 201"):
            resp = self.reg.finish_upload(last["chunk"].header("Location"), h.digest_of(blob_b))
            self.assertStatus(resp, 201)
            self.assertHasHeader(resp, "Location")

        # Cross-Repository Blob Mount
        with self.subTest("Cross-mounting of a blob without the from argument should yield "
                          "session id"):
            resp = self.reg.start_upload(crossmount, mount=dummy)
            self.assertStatus(resp, 202)
            self.assertHasHeader(resp, "Location")
        with self.subTest("POST request to mount another repository's blob should return 201 "
                          "or 202"):
            resp = self.reg.start_upload(crossmount, mount=h.digest_of(blob_a), **{"from": repo})
            self.assertStatus(resp, 201, 202)
            last["mount"] = resp
        with self.subTest("GET request to test digest within cross-mount namespace should "
                          "return 200"):
            self.assertStatus(last["mount"], 201)
            self.assertEqual(self.follow(last["mount"]),
                             "/v2/%s/blobs/%s" % (crossmount, h.digest_of(blob_a)))
            self.assertStatus(self.reg.get(self.follow(last["mount"])), 200)
        with self.subTest("Cross-mounting of nonexistent blob should yield session id"):
            resp = self.reg.start_upload(crossmount, mount=dummy, **{"from": repo})
            self.assertStatus(resp, 202)
            self.assertTrue(self.follow(resp).startswith("/v2/%s/blobs/uploads/" % crossmount))
        if h.IS_DISTRIBUTION:
            with self.subTest("Cross-mounting without from, and automatic content discovery "
                              "disabled should return a 202"):
                resp = self.reg.start_upload(crossmount, mount=h.digest_of(blob_a))
                self.assertStatus(resp, 202)
        else:
            with self.subTest("Cross-mounting without from, and automatic content discovery "
                              "enabled should return a 201"):
                resp = self.reg.start_upload(crossmount, mount=h.digest_of(blob_a))
                self.assertStatus(resp, 201)

        # Manifest Upload
        manifest = h.Image({"schemaVersion": 2, "mediaType": h.MT_OCI_MANIFEST,
                            "config": h.blob_descriptor(h.MT_OCI_CONFIG, config),
                            "layers": [h.blob_descriptor(h.MT_OCI_LAYER_GZIP, layer)]})
        with self.subTest("GET nonexistent manifest should return 404"):
            self.assertError(self.reg.get_manifest(repo, NONEXISTENT_MANIFEST,
                                                   h.MT_OCI_MANIFEST), 404, "MANIFEST_UNKNOWN")
        with self.subTest("PUT should accept a manifest upload"):
            for i in range(4):
                resp = self.reg.put_manifest(repo, "test%d" % i, manifest.manifest,
                                             h.MT_OCI_MANIFEST)
                self.assertStatus(resp, 201)
                self.assertHasHeader(resp, "Location")
        no_layers = h.Image({"schemaVersion": 2, "mediaType": h.MT_OCI_MANIFEST,
                             "config": h.blob_descriptor(h.MT_OCI_CONFIG, config),
                             "layers": []})
        with self.subTest("Registry should accept a manifest upload with no layers"):
            resp = self.reg.put_manifest(repo, "emptylayer", no_layers.manifest,
                                         h.MT_OCI_MANIFEST)
            self.assertStatus(resp, 201)
            self.assertHasHeader(resp, "Location")
        with self.subTest("GET request to manifest URL (digest) should yield 200 response"):
            self.assertStatus(self.reg.get_manifest(repo, manifest.digest, h.MT_OCI_MANIFEST),
                              200)
        config_type = h.Image({"schemaVersion": 2, "mediaType": h.MT_OCI_MANIFEST,
                               "config": h.blob_descriptor(TYPE_A, ref_blob),
                               "layers": [h.blob_descriptor(h.MT_OCI_EMPTY, h.EMPTY_JSON)]})
        with self.subTest("Registry should accept a manifest upload with custom "
                          "config/mediaType (as artifact type) [OCI-Image v1.1]"):
            self.ok2xx(self.reg.put_manifest(repo, config_type.digest, config_type.manifest,
                                             h.MT_OCI_MANIFEST))
        artifact_type = h.Image({"schemaVersion": 2, "mediaType": h.MT_OCI_MANIFEST,
                                 "artifactType": TYPE_A,
                                 "config": h.blob_descriptor(h.MT_OCI_EMPTY, h.EMPTY_JSON),
                                 "layers": [h.blob_descriptor(TYPE_A, ref_blob)]})
        with self.subTest("Registry should accept a manifest upload with custom artifactType "
                          "[OCI-Image v1.1]"):
            self.ok2xx(self.reg.put_manifest(repo, artifact_type.digest, artifact_type.manifest,
                                             h.MT_OCI_MANIFEST))
        index = h.Index([manifest], extra={"artifactType": TYPE_INDEX,
                                           "annotations": {ANNOTATION: "test index"}})
        with self.subTest("Registry should accept a manifest upload with image index"):
            self.ok2xx(self.reg.put_manifest(repo, index.digest, index.manifest, h.MT_OCI_INDEX))
        nested = h.Index([index], extra={"artifactType": TYPE_INDEX,
                                         "annotations": {ANNOTATION: "test index"}})
        with self.subTest("Registry should accept a manifest upload with nested image index "
                          "[OCI-Image v1.1]"):
            self.ok2xx(self.reg.put_manifest(repo, nested.digest, nested.manifest,
                                             h.MT_OCI_INDEX))
        dangling = h.Image({"schemaVersion": 2, "mediaType": h.MT_OCI_MANIFEST,
                            "artifactType": TYPE_B,
                            "config": h.blob_descriptor(h.MT_OCI_EMPTY, h.EMPTY_JSON),
                            "layers": [h.blob_descriptor(TYPE_B, ref_blob)],
                            "subject": {"mediaType": h.MT_OCI_MANIFEST, "size": 1234,
                                        "digest": h.digest_of(b"no such subject")}})
        with self.subTest("Dangling subject [OCI-Image v1.1]"):
            resp = self.ok2xx(self.reg.put_manifest(repo, dangling.digest, dangling.manifest,
                                                    h.MT_OCI_MANIFEST))
            self.known_failure("no OCI-Subject header")
            self.assertEqual(resp.header("OCI-Subject"), h.digest_of(b"no such subject"))

        with self.subTest("Teardown: delete manifests, config and layer blobs"):
            for img in (nested, index, dangling, artifact_type, config_type, no_layers, manifest):
                self.ok2xx(self.reg.delete(self.reg.manifest_path(repo, img.digest)), 405)
            for data in (config, layer, h.EMPTY_JSON):
                self.ok2xx(self.reg.delete_blob(repo, h.digest_of(data)), 404, 405)

    def test_3_content_discovery(self):
        # 03_discovery_test.go
        repo = "conformance/discovery"
        config = h.canonical_json({"architecture": "amd64", "os": "linux", "discovery": 1})
        layer = h.make_layer({"d.txt": b"discovery"})[0]
        image = h.Image({"schemaVersion": 2, "mediaType": h.MT_OCI_MANIFEST,
                         "config": h.blob_descriptor(h.MT_OCI_CONFIG, config),
                         "layers": [h.blob_descriptor(h.MT_OCI_LAYER_GZIP, layer)]})
        subject_config = h.canonical_json({"architecture": "arm64", "os": "linux"})
        subject = h.Image({"schemaVersion": 2, "mediaType": h.MT_OCI_MANIFEST,
                           "config": h.blob_descriptor(h.MT_OCI_CONFIG, subject_config),
                           "layers": [h.blob_descriptor(h.MT_OCI_LAYER_GZIP, layer)]})
        missing_subject = {"mediaType": h.MT_OCI_MANIFEST, "size": 999,
                           "digest": h.digest_of(b"manifest[3] never pushed")}
        ref_a, ref_b = h.random_bytes(40), h.random_bytes(41)
        annotations = {}

        def referrer(kind, atype, blob, subj, name):
            if kind == "config":
                obj = {"schemaVersion": 2, "mediaType": h.MT_OCI_MANIFEST,
                       "config": h.blob_descriptor(atype, blob),
                       "layers": [h.blob_descriptor(h.MT_OCI_EMPTY, h.EMPTY_JSON)]}
            else:
                obj = {"schemaVersion": 2, "mediaType": h.MT_OCI_MANIFEST, "artifactType": atype,
                       "config": h.blob_descriptor(h.MT_OCI_EMPTY, h.EMPTY_JSON),
                       "layers": [h.blob_descriptor(atype, blob)]}
            obj["subject"] = subj
            obj["annotations"] = {ANNOTATION: name}
            img = h.Image(obj)
            annotations[img.digest] = name
            return img

        with self.subTest("Setup: Populate registry with test blob"):
            self.ok2xx(self.reg.push_blob(repo, config))
        with self.subTest("Setup: Populate registry with test layer"):
            self.ok2xx(self.reg.push_blob(repo, layer))
        with self.subTest("Setup: Populate registry with test tags"):
            for i in range(4):
                self.ok2xx(self.reg.put_manifest(repo, "test%d" % i, image.manifest,
                                                 h.MT_OCI_MANIFEST))
        subj_desc = subject.descriptor()
        refs = {
            "a-config": referrer("config", TYPE_A, ref_a, subj_desc, "a-config"),
            "a-layer": referrer("layer", TYPE_A, ref_a, subj_desc, "a-layer"),
            "b-config": referrer("config", TYPE_B, ref_b, subj_desc, "b-config"),
            "b-layer": referrer("layer", TYPE_B, ref_b, subj_desc, "b-layer"),
            "c-layer": referrer("layer", TYPE_B, ref_b, missing_subject, "c-layer"),
        }
        ref_index = h.Index([image], extra={"artifactType": TYPE_INDEX, "subject": subj_desc,
                                            "annotations": {ANNOTATION: "test index"}})
        annotations[ref_index.digest] = "test index"
        with self.subTest("Setup: References setup"):
            for data in (h.EMPTY_JSON, ref_a):
                self.ok2xx(self.reg.push_blob(repo, data))
            pushes = [(refs["a-config"], subject), (refs["a-layer"], subject),
                      (ref_index, subject), ("subject", None), (ref_b, None),
                      (refs["b-config"], subject), (refs["b-layer"], subject),
                      (refs["c-layer"], None)]
            for item, subj in pushes:
                if item == "subject":
                    self.ok2xx(self.reg.push_blob(repo, subject_config))
                    self.ok2xx(self.reg.put_manifest(repo, "tagtest0", subject.manifest,
                                                     h.MT_OCI_MANIFEST))
                    continue
                if isinstance(item, bytes):
                    self.ok2xx(self.reg.push_blob(repo, item))
                    continue
                resp = self.ok2xx(self.reg.put_manifest(repo, item.digest, item.manifest,
                                                        item.media_type))
                if not h.IS_DISTRIBUTION:
                    want = subject.digest if subj is not None else missing_subject["digest"]
                    self.assertHeader(resp, "OCI-Subject", want)

        # Test content discovery endpoints (listing tags)
        tags = []
        with self.subTest("GET request to list tags should yield 200 response"):
            resp = self.assertStatus(self.reg.tags(repo), 200)
            tags = resp.json()["tags"]
            self.assertEqual(sorted(tags), ["tagtest0", "test0", "test1", "test2", "test3"])
        half = len(tags) // 2
        with self.subTest("GET number of tags should be limitable by `n` query parameter"):
            self.known_failure("2.8 ignores n")
            resp = self.assertStatus(self.reg.tags(repo, n=half), 200)
            self.assertEqual(len(resp.json()["tags"]), half)
        with self.subTest("GET start of tag is set by `last` query parameter"):
            self.known_failure("2.8 ignores n and last")
            first = self.assertStatus(self.reg.tags(repo, n=half), 200).json()["tags"]
            resp = self.assertStatus(self.reg.tags(repo, n=half, last=first[half - 1]), 200)
            self.assertLessEqual(len(resp.json()["tags"]), half)
            self.assertNotIn(first[half - 1], resp.json()["tags"])

        # Test content discovery endpoints (listing references)
        def referrers(digest, **params):
            resp = self.assertStatus(self.reg.referrers(repo, digest, **params), 200)
            self.assertHeader(resp, "Content-Type", h.MT_OCI_INDEX)
            return resp, resp.json()["manifests"]

        with self.subTest("GET request to nonexistent blob should result in empty 200 "
                          "response"):
            self.known_failure("no referrers API")
            self.assertEqual(referrers(h.digest_of(b"dummy"))[1], [])
        with self.subTest("GET request to existing blob should yield 200"):
            self.known_failure("no referrers API")
            found = referrers(subject.digest)[1]
            self.assertEqual(len(found), 5)
            for desc in found:
                self.assertEqual(desc["annotations"], {ANNOTATION: annotations[desc["digest"]]})
        with self.subTest("GET request to existing blob with filter should yield 200"):
            self.known_failure("no referrers API")
            resp, found = referrers(subject.digest, artifactType=TYPE_A)
            self.assertHeader(resp, "OCI-Filters-Applied", "artifactType")
            self.assertEqual({d["digest"] for d in found},
                             {refs["a-config"].digest, refs["a-layer"].digest})
        with self.subTest("GET request to missing manifest should yield 200"):
            self.known_failure("no referrers API")
            found = referrers(missing_subject["digest"])[1]
            self.assertEqual([d["digest"] for d in found], [refs["c-layer"].digest])

        with self.subTest("Teardown: Delete created manifest & associated tags"):
            for img in list(refs.values()) + [ref_index, subject, image]:
                self.ok2xx(self.reg.delete(self.reg.manifest_path(repo, img.digest)), 404, 405)

    def test_4_content_management(self):
        # 04_management_test.go
        repo = "conformance/management"
        img = h.build_image(layer_count=1)
        with self.subTest("Setup: Populate registry with test config blob, layer, manifest, "
                          "tags"):
            self.push_image_ok(repo, img, tag="tagtest0")
            for tag in ("tagtest1", "tagtest2"):
                self.ok2xx(self.reg.put_manifest(repo, tag, img.manifest, img.media_type))
        with self.subTest("DELETE request to manifest tag should return 202, unless tag deletion "
                          "is disallowed (400/405)"):
            resp = self.reg.delete(self.reg.manifest_path(repo, "tagtest0"))
            if h.IS_DISTRIBUTION:
                self.assertStatus(resp, 400, 405)
            else:
                self.assertStatus(resp, 202)
        with self.subTest("DELETE request to manifest (digest) should yield 202 response unless "
                          "already deleted"):
            self.assertStatus(self.reg.delete(self.reg.manifest_path(repo, img.digest)), 202)
        with self.subTest("GET request to deleted manifest URL should yield 404 response, unless "
                          "delete is disallowed"):
            self.assertStatus(self.reg.get_manifest(repo, img.digest, h.MT_OCI_MANIFEST), 404)
        with self.subTest("GET request to tags list should reflect manifest deletion"):
            resp = self.reg.tags(repo)
            self.assertIn(resp.status, (200, 404), resp.describe())
            if resp.status == 200:
                self.assertEqual(resp.json().get("tags") or [], [])
        with self.subTest("DELETE request to blob URL should yield 202 response"):
            self.assertStatus(self.reg.delete_blob(repo, img.layer_digests[0]), 202)
        with self.subTest("GET request to deleted blob URL should yield 404 response"):
            self.assertStatus(self.reg.get_blob(repo, img.layer_digests[0]), 404)


# =============================================================================================
# main branch


class DataSet:
    """One conformance data set: manifests in push order, blobs, tags, referrers."""

    def __init__(self, name):
        self.name = name
        self.blobs = {}  # digest -> bytes
        self.order = []  # Images, children before parents
        self.tags = {}  # tag -> digest
        self.referrers = {}  # subject digest -> [descriptor]
        self.tag_param = False
        self.bad_digest = set()  # manifest digests whose bytes were corrupted

    def add(self, image, tag=None):
        for child in image.children:
            if child not in self.order:
                self.add(child)
        self.blobs.update(image.blobs)
        self.order.append(image)
        if tag:
            self.tags[tag] = image.digest
        subject = (image.obj or {}).get("subject")
        if subject:
            atype = image.obj.get("artifactType") or (image.obj.get("config") or {}).get(
                "mediaType")
            desc = image.descriptor()
            if atype:
                desc["artifactType"] = atype
            if image.obj.get("annotations"):
                desc["annotations"] = image.obj["annotations"]
            self.referrers.setdefault(subject["digest"], []).append(desc)
        return image

    def image(self, digest):
        return next(img for img in self.order if img.digest == digest)


_uniq = [0]


def uniq_annotation():
    _uniq[0] += 1
    return {"org.opencontainers.conformance.uniq": "%d-%s" % (_uniq[0], h.random_bytes(4).hex())}


def conformance_artifact(atype, layer_mt, subject=None, annotations=None, algo="sha256",
                         layer_bytes=None):
    layer = layer_bytes if layer_bytes is not None else h.random_bytes(200)
    obj = {"schemaVersion": 2, "mediaType": h.MT_OCI_MANIFEST, "artifactType": atype,
           "config": h.blob_descriptor(h.MT_OCI_EMPTY, h.EMPTY_JSON, algo),
           "layers": [h.blob_descriptor(layer_mt, layer, algo)]}
    if subject:
        obj["subject"] = subject
    if annotations:
        obj["annotations"] = annotations
    blobs = {h.digest_of(h.EMPTY_JSON, algo): h.EMPTY_JSON, h.digest_of(layer, algo): layer}
    return h.Image(obj, blobs, algo=algo)


def platform_index(algo="sha256", extra=None, child=None):
    children = [(child or (lambda p: h.build_image(layer_count=1, arch=p["architecture"],
                                                   algo=algo)))(p) for p in PLATFORMS]
    return h.Index(children, platforms=PLATFORMS, algo=algo, extra=extra)


def sparse_data_set():
    """run.go's "sparse" data set (OCI_DATA_SPARSE=true, off by default): an image whose
    first layer is never pushed, and an index of an amd64 image that is pushed and an arm64
    descriptor of 1024 random bytes that never is."""
    ds = DataSet("sparse")
    img = h.build_image()
    ds.add(img, "sparse-image")
    del ds.blobs[img.layer_digests[0]]
    child = h.build_image(arch="amd64")
    index = h.Index([child], platforms=[PLATFORMS[0]])
    index.obj["manifests"].append({"mediaType": h.MT_OCI_MANIFEST,
                                   "digest": h.digest_of(h.random_bytes(1024)), "size": 1024,
                                   "platform": PLATFORMS[1]})
    index.manifest = h.canonical_json(index.obj)
    index.digest = h.digest_of(index.manifest)
    ds.add(index, "sparse-index")
    return ds


def build_data_sets(sparse=False):
    """The data sets of run.go GenerateData, in its order (sparse only when asked: it is
    off by default in the suite, and needs storage.sparse_manifests)."""
    sets = []

    ds = DataSet("image")
    ds.add(h.build_image(), "image")
    sets.append(ds)

    ds = DataSet("image-uncompressed")
    ds.add(h.build_image(compress=False), "image-uncompressed")
    sets.append(ds)

    ds = DataSet("large-manifest")
    ds.add(h.build_image(layer_count=1, annotations={
        "large-annotation-%d" % i: "A" * 10000 for i in range(390)}), "large-manifest")
    sets.append(ds)

    ds = DataSet("index")
    ds.add(platform_index(), "index")
    sets.append(ds)

    ds = DataSet("nested-index")
    ds.add(h.Index([platform_index(), platform_index()]), "index-of-index")
    sets.append(ds)

    ds = DataSet("empty-index")
    ds.add(h.Index([]), "index")
    sets.append(ds)

    ds = DataSet("artifact")
    ds.add(conformance_artifact(EXAMPLE_CONF1, EXAMPLE_CONF1), "artifact")
    sets.append(ds)

    ds = DataSet("artifact-index")
    ds.add(platform_index(extra={"artifactType": EXAMPLE_CONF1},
                          child=lambda p: conformance_artifact(EXAMPLE_CONF1, EXAMPLE_CONF1)),
           "artifact-index")
    sets.append(ds)

    ds = DataSet("artifact-without-layers")
    ds.add(conformance_artifact(EXAMPLE_CONF1, h.MT_OCI_EMPTY, layer_bytes=h.EMPTY_JSON),
           "artifact-without-layers")
    sets.append(ds)

    ds = DataSet("artifacts-with-subject")
    subject = ds.add(h.build_image(layer_count=1), "image")
    ds.add(h.build_image(layer_count=1, extra={"subject": subject.descriptor()}))
    note = {"org.opencontainers.conformance": "hello conformance test"}
    ds.add(conformance_artifact(EXAMPLE_CONF1, EXAMPLE_CONF1, subject.descriptor(),
                                dict(note, **uniq_annotation())), "tagged-artifact1")
    ds.add(conformance_artifact(EXAMPLE_CONF2, h.MT_OCTET, subject.descriptor(),
                                dict(note, **uniq_annotation())), "tagged-artifact2")
    sets.append(ds)

    ds = DataSet("index-with-subject")
    subject = ds.add(platform_index(), "index")
    ds.add(platform_index(
        extra={"artifactType": EXAMPLE_CONF1, "subject": subject.descriptor(),
               "annotations": dict(note, **uniq_annotation())},
        child=lambda p: conformance_artifact(EXAMPLE_CONF1, EXAMPLE_CONF1)), "tagged-artifact")
    sets.append(ds)

    ds = DataSet("missing-subject")
    missing = {"mediaType": h.MT_OCI_MANIFEST, "size": 123,
               "digest": h.digest_of(b"missing content")}
    ds.add(conformance_artifact(EXAMPLE_CONF1, EXAMPLE_CONF1, missing,
                                dict(note, **uniq_annotation())), "tagged-artifact")
    sets.append(ds)

    ds = DataSet("data-field")
    img = h.build_image(layer_count=1)
    obj = json.loads(img.manifest)
    for desc in [obj["config"]] + obj["layers"]:
        desc["data"] = base64.b64encode(img.blobs[desc["digest"]]).decode()
    ds.add(h.Image(obj, img.blobs), "data-field")
    sets.append(ds)

    ds = DataSet("non-distributable-layers")
    img = h.build_image(layer_count=1)
    obj = json.loads(img.manifest)
    foreign = []
    for mt, size in ((h.MT_OCI_LAYER_ND_GZIP, 123456), (h.MT_OCI_LAYER_ND_TAR, 12345)):
        digest = h.digest_of(h.random_bytes(256))
        foreign.append({"mediaType": mt, "digest": digest, "size": size,
                        "urls": ["https://store.example.com/blobs/sha256/" + h.digest_hex(digest)]})
    obj["layers"] = foreign + obj["layers"]
    ds.add(h.Image(obj, img.blobs), "non-distributable-image")
    sets.append(ds)

    ds = DataSet("custom-fields")
    img = h.build_image(layer_count=1, extra={"org.example.custom": {"x": 1}})
    ds.add(h.Index([img, h.build_image(layer_count=1, arch="arm64")], platforms=PLATFORMS,
                   extra={"org.example.custom": "index field"}), "custom-fields")
    sets.append(ds)

    ds = DataSet("no-layers")
    ds.add(h.build_image(layer_count=0), "no-layers")
    sets.append(ds)

    if sparse:
        sets.append(sparse_data_set())

    ds = DataSet("sha512")  # non-canonical digests: pushed by digest only
    ds.add(platform_index(algo="sha512"))
    sets.append(ds)

    for algo in ("sha256", "sha512"):
        ds = DataSet("tag-param-" + algo)
        ds.tag_param = True
        top = ds.add(platform_index(algo=algo), "tag-param-" + algo)
        for i, img in enumerate(ds.order):
            ds.tags["tag-param-%s-%d" % (algo, i)] = img.digest
        assert top is ds.order[-1]
        sets.append(ds)

    ds = DataSet("bad-digest-image")
    img = h.build_image(layer_count=1)
    bad = h.Image(img.obj, img.blobs, manifest_bytes=img.manifest + b"  ")
    bad.digest = img.digest  # pushed under the digest of the uncorrupted bytes
    ds.add(bad)
    ds.bad_digest.add(bad.digest)
    sets.append(ds)
    return sets


DISTRIBUTION_FAILS = {
    "non-distributable-layers": "answers 500 to layers with urls",
    "sha512": "no sha512 support",
    "tag-param-sha256": "no ?tag= parameters",
    "tag-param-sha512": "no sha512 support",
}


class ConformanceMain(ConformanceCase):
    repo1 = "conformance/main"
    repo2 = "conformance/main2"
    sparse = False  # OCI_DATA_SPARSE

    def test_01_ping(self):
        with self.subTest("ping"):
            self.assertStatus(self.reg.ping(), 200)

    def test_02_empty(self):
        repo = "conformance/empty"
        with self.subTest("empty/tag list"):
            resp = self.reg.tags(repo)
            self.assertIn(resp.status, (200, 404), resp.describe())
        with self.subTest("empty/referrers"):
            self.known_failure("no referrers API")
            resp = self.reg.referrers(repo, h.digest_of(h.random_bytes(16)))
            self.assertStatus(resp, 200)
            self.assertHeader(resp, "Content-Type", h.MT_OCI_INDEX)
            doc = resp.json()
            self.assertEqual((doc["schemaVersion"], doc["mediaType"], doc["manifests"]),
                             (2, h.MT_OCI_INDEX, []))

    def test_03_sha256_blobs(self):
        self.blob_apis("sha256")

    @h.distribution_fails("no sha512 support")
    def test_04_sha512_blobs(self):
        self.blob_apis("sha512")

    # -- blob APIs (run.go TestBlobAPIs) ----------------------------------------------------------

    def verify_location(self, resp, data):
        got = self.reg.get(self.follow(resp))
        self.assertStatus(got, 200)
        self.assertEqual(got.body, data)

    def verify_created(self, resp, data, algo):
        self.assertStatus(resp, 201)
        self.assertHeader(resp, "Docker-Content-Digest", h.digest_of(data, algo))
        self.verify_location(resp, data)

    def push_chunked(self, repo, data, algo, put_last=False, out_of_order=False,
                     claimed=None):
        """conformance/api.go BlobPatchChunked, step for step. Returns the final answer."""
        digest = claimed or h.digest_of(data, algo)
        resp = self.assertStatus(self.reg.start_upload(repo), 202)
        loc = resp.header("Location")
        min_len = resp.header("OCI-Chunk-Min-Length")
        size = max(len(data) // 3 + 1, int(min_len) if min_len else 0, CHUNK_MIN)
        size = min(size, len(data))
        last_byte = -1
        while last_byte < len(data) - 1:
            if out_of_order:
                bad_start = last_byte + 1 + size
                if bad_start >= len(data):
                    bad_start = 0
                bad_last = min(bad_start + size - 1, len(data) - 1)
                chunk = data[bad_start:bad_last + 1]
                if put_last and bad_last == len(data) - 1:
                    bad = self.reg.finish_upload(loc, digest, chunk, start=bad_start)
                else:
                    bad = self.reg.patch_chunk(loc, chunk, bad_start)
                self.assertStatus(bad, 416)
                loc = bad.header("Location") or loc
                status = self.assertStatus(self.reg.get(self.reg.resolve(loc)), 204)
                loc = status.header("Location") or loc
                rng = status.header("Range") or ""
                self.assertTrue(rng.startswith("0-"), status.describe())
                if last_byte >= 0:
                    self.assertEqual(int(rng[2:]), last_byte, status.describe())
            start = last_byte + 1
            last_byte = min(start + size - 1, len(data) - 1)
            chunk = data[start:last_byte + 1]
            if put_last and last_byte == len(data) - 1:
                return self.reg.finish_upload(loc, digest, chunk, start=start)
            resp = self.assertStatus(self.reg.patch_chunk(loc, chunk, start), 202)
            loc = resp.header("Location")
        return self.reg.finish_upload(loc, digest)

    def push_any(self, repo, data, algo):
        resp = self.reg.push_blob(repo, data, mode="post_put", algo=algo)
        self.verify_created(resp, data, algo)

    def head_and_get(self, repo, data, algo):
        self.assertBlob(repo, data, algo)

    def delete_blob(self, repo, data, algo):
        resp = self.reg.delete_blob(repo, h.digest_of(data, algo))
        self.assertStatus(resp, 202, 404)
        self.assertStatus(self.reg.head_blob(repo, h.digest_of(data, algo)), 404)

    def blob_apis(self, algo):
        repo, repo2 = self.repo1, self.repo2
        blobs = {name: h.random_bytes(512) for name in (
            "post only", "post+put", "chunked single", "stream", "mount", "mount anonymous",
            "mount missing", "post cancel")}
        multi = CHUNK_MIN * 3 - 5
        with self.subTest("%s blobs/get-missing" % algo):
            self.assertStatus(self.reg.get_blob(repo, h.digest_of(blobs["post cancel"], algo)),
                              404)
        names = ["post only", "post+put", "chunked single", "stream", "mount",
                 "mount anonymous", "mount missing", "post cancel", "chunked multi",
                 "chunked multi and put chunk", "chunked out-of-order",
                 "chunked out-of-order and put chunk"]
        for name in names:
            data = blobs.get(name) or h.random_bytes(multi)
            with self.subTest("%s blobs/%s" % (algo, name)):
                if name == "post only":
                    self.known_failure("ignores ?digest= on POST: 202")
                    self.verify_created(self.reg.push_blob(repo, data, "post_only", algo), data,
                                        algo)
                elif name == "post+put":
                    self.verify_created(self.reg.push_blob(repo, data, "post_put", algo), data,
                                        algo)
                elif name in ("chunked single", "chunked multi"):
                    self.verify_created(self.push_chunked(repo, data, algo), data, algo)
                elif name == "chunked multi and put chunk":
                    self.verify_created(self.push_chunked(repo, data, algo, put_last=True),
                                        data, algo)
                elif name == "chunked out-of-order":
                    self.known_failure("accepts out-of-order chunks")
                    self.verify_created(self.push_chunked(repo, data, algo, out_of_order=True),
                                        data, algo)
                elif name == "chunked out-of-order and put chunk":
                    self.known_failure("accepts out-of-order chunks")
                    resp = self.push_chunked(repo, data, algo, put_last=True, out_of_order=True)
                    self.verify_created(resp, data, algo)
                elif name == "stream":
                    self.verify_created(self.reg.push_blob(repo, data, "stream", algo), data,
                                        algo)
                elif name == "mount":
                    self.push_any(repo2, data, algo)
                    resp = self.reg.start_upload(repo, mount=h.digest_of(data, algo),
                                                 **{"from": repo2})
                    self.verify_created(resp, data, algo)
                elif name == "mount anonymous":
                    self.push_any(repo2, data, algo)
                    self.known_failure("no anonymous mount: 202")
                    resp = self.reg.start_upload(repo, mount=h.digest_of(data, algo))
                    self.verify_created(resp, data, algo)
                elif name == "mount missing":
                    resp = self.reg.start_upload(repo, mount=h.digest_of(data, algo),
                                                 **{"from": repo2})
                    self.assertStatus(resp, 202)
                    self.assertHasHeader(resp, "Location")
                    self.reg.delete(self.follow(resp))
                elif name == "post cancel":
                    resp = self.assertStatus(self.reg.start_upload(repo), 202)
                    self.assertStatus(self.reg.delete(self.follow(resp)), 204)
                if name not in ("post cancel", "mount missing"):
                    self.head_and_get(repo, data, algo)
                self.delete_blob(repo, data, algo)
                if name in ("mount", "mount anonymous"):
                    self.delete_blob(repo2, data, algo)

        with self.subTest("%s blobs/range requests" % algo):
            data = h.random_bytes(2048)
            self.push_any(repo, data, algo)
            digest = h.digest_of(data, algo)
            for value, status, first, last in (("bytes=500-1499", 206, 500, 1499),
                                               ("bytes=500-", 206, 500, 2047),
                                               ("bytes=-500", 206, 1548, 2047),
                                               ("bytes=2000-5000", 206, 2000, 2047),
                                               ("bytes=500-0", 416, 0, 0),
                                               ("bytes=5000-10000", 416, 0, 0)):
                with self.subTest("%s blobs/range requests/range %s" % (algo, value[6:])):
                    if status == 416:
                        self.known_failure("its 416 keeps the Content-Length of the whole blob")
                    resp = self.reg.get_blob(repo, digest, headers={"Range": value})
                    self.assertStatus(resp, status)
                    if status == 206:
                        self.assertEqual(resp.body, data[first:last + 1])
                        self.assertHeader(resp, "Content-Length", str(last - first + 1))
                        self.assertIn(resp.header("Content-Range"),
                                      ("bytes %d-%d/2048" % (first, last),
                                       "bytes %d-%d/*" % (first, last)))
            self.delete_blob(repo, data, algo)

        for name, data in (("empty", b""), ("emptyJSON", h.EMPTY_JSON)):
            with self.subTest("%s blobs/%s" % (algo, name)):
                self.push_any(repo, data, algo)
                self.head_and_get(repo, data, algo)
                self.delete_blob(repo, data, algo)

        for name in ("bad digest post only", "bad digest post+put", "bad digest chunked",
                     "bad digest chunked and put chunk", "bad digest stream"):
            good = h.random_bytes(multi)
            claimed = h.digest_of(good, algo)
            data = good + b"oh no"
            with self.subTest("%s blobs/%s" % (algo, name)):
                if name == "bad digest post only":
                    self.known_failure("ignores ?digest= on POST: 202")
                    resp = self.reg.push_blob(repo, data, "post_only", algo, digest=claimed)
                elif name == "bad digest post+put":
                    resp = self.reg.push_blob(repo, data, "post_put", algo, digest=claimed)
                elif name == "bad digest chunked":
                    resp = self.push_chunked(repo, data, algo, claimed=claimed)
                elif name == "bad digest chunked and put chunk":
                    resp = self.push_chunked(repo, data, algo, put_last=True, claimed=claimed)
                else:
                    resp = self.reg.push_blob(repo, data, "stream", algo, digest=claimed)
                self.assertStatus(resp, 400)
                self.assertStatus(self.reg.head_blob(repo, claimed), 404)

    # -- data sets (run.go: push, tag-list, head, pull, referrers, delete) -------------------------

    def test_05_data_sets(self):
        repo = self.repo1
        for ds in build_data_sets(sparse=self.sparse):
            if ds.name in DISTRIBUTION_FAILS and h.IS_DISTRIBUTION and not h.STRICT:
                with self.subTest(ds.name):
                    self.known_failure(DISTRIBUTION_FAILS[ds.name])
                continue
            self.run_data_set(repo, ds)

    def run_data_set(self, repo, ds):
        label = ds.name
        missing_subject_header = []
        with self.subTest(label + "/push"):
            for digest, data in ds.blobs.items():
                self.push_any(repo, data, digest.split(":")[0])
            for img in ds.order:
                tags = [t for t, d in ds.tags.items() if d == img.digest] if ds.tag_param else []
                resp = self.reg.put_manifest(repo, img.digest, img.manifest, img.media_type,
                                             tags=tags)
                if img.digest in ds.bad_digest:
                    self.assertStatus(resp, 400)
                    continue
                self.assertStatus(resp, 201)
                self.assertHeader(resp, "Docker-Content-Digest", img.digest)
                got = self.reg.request("GET", self.follow(resp), headers={
                    "Accept": ", ".join([h.MT_OCI_INDEX, h.MT_OCI_MANIFEST])})
                self.assertEqual(got.body, img.manifest)
                subject = (img.obj or {}).get("subject")
                if subject and resp.header("OCI-Subject") != subject["digest"]:
                    missing_subject_header.append(resp.describe())
                oci_tags = {t.strip() for v in resp.header_all("OCI-Tag") for t in v.split(",")}
                self.assertTrue(set(tags) <= oci_tags, resp.describe())
            if not ds.tag_param:
                for tag, digest in ds.tags.items():
                    img = ds.image(digest)
                    resp = self.reg.put_manifest(repo, tag, img.manifest, img.media_type)
                    self.assertStatus(resp, 201)
                    self.assertHeader(resp, "Docker-Content-Digest", digest)
        if any((img.obj or {}).get("subject") for img in ds.order):
            with self.subTest(label + "/push/OCI-Subject"):
                self.known_failure("no OCI-Subject header")
                self.assertEqual(missing_subject_header, [])
        if ds.tags:
            with self.subTest(label + "/tag-list"):
                resp = self.assertStatus(self.reg.tags(repo), 200)
                listed = resp.json().get("tags") or []
                for tag in ds.tags:
                    self.assertIn(tag, listed)
                if len(listed) >= 2:
                    self.known_failure("2.8 ignores last")
                    ordered = sorted(listed, key=lambda t: t.encode())
                    end = len(ordered) // 2
                    part = self.assertStatus(self.reg.tags(repo, last=ordered[end - 1]),
                                             200).json()["tags"] or []
                    self.assertEqual(sorted(part, key=lambda t: t.encode()), ordered[end:])
        pullable = [img for img in ds.order if img.digest not in ds.bad_digest]
        with self.subTest(label + "/head"):
            for tag, digest in ds.tags.items():
                self.assertManifest(repo, tag, ds.image(digest), method="HEAD")
            for img in pullable:
                self.assertManifest(repo, img.digest, img, method="HEAD")
            for digest, data in ds.blobs.items():
                resp = self.assertStatus(self.reg.head_blob(repo, digest), 200)
                self.assertHeader(resp, "Content-Length", str(len(data)))
        with self.subTest(label + "/pull"):
            for tag, digest in ds.tags.items():
                self.assertManifest(repo, tag, ds.image(digest))
            for img in pullable:
                self.assertManifest(repo, img.digest, img)
            for digest, data in ds.blobs.items():
                self.assertEqual(self.assertStatus(self.reg.get_blob(repo, digest), 200).body,
                                 data)
        if ds.referrers:
            with self.subTest(label + "/referrers"):
                self.known_failure("no referrers API")
                for subject, goals in ds.referrers.items():
                    self.check_referrers(repo, subject, goals)
        with self.subTest(label + "/delete"):
            for tag in ds.tags:
                with self.subTest(label + "/delete/tag-delete " + tag):
                    self.known_failure("no tag delete: 400")
                    self.assertStatus(self.reg.delete(self.reg.manifest_path(repo, tag)), 202)
                    self.assertStatus(self.reg.get_manifest(repo, tag, method="HEAD"), 404)
            for img in reversed(ds.order):
                resp = self.reg.delete(self.reg.manifest_path(repo, img.digest))
                self.assertStatus(resp, 202, 404)
                self.assertStatus(self.reg.get_manifest(repo, img.digest, method="HEAD"), 404)
            for digest in ds.blobs:
                self.assertStatus(self.reg.delete_blob(repo, digest), 202, 404)
                self.assertStatus(self.reg.head_blob(repo, digest), 404)

    def check_referrers(self, repo, subject, goals):
        def matches(entry, goal):
            return (entry.get("digest") == goal["digest"]
                    and entry.get("mediaType") == goal["mediaType"]
                    and entry.get("size") == goal["size"]
                    and entry.get("artifactType") == goal.get("artifactType")
                    and all((entry.get("annotations") or {}).get(k) == v
                            for k, v in (goal.get("annotations") or {}).items()))

        resp = self.assertStatus(self.reg.referrers(repo, subject), 200)
        self.assertHeader(resp, "Content-Type", h.MT_OCI_INDEX)
        doc = resp.json()
        self.assertEqual((doc.get("schemaVersion"), doc.get("mediaType")), (2, h.MT_OCI_INDEX))
        for goal in goals:
            self.assertTrue(any(matches(e, goal) for e in doc["manifests"]),
                            "missing referrer %s in %s" % (goal, doc["manifests"]))
        for atype in {g.get("artifactType") for g in goals}:
            resp = self.assertStatus(self.reg.referrers(repo, subject, artifactType=atype), 200)
            filters = {f.strip() for v in resp.header_all("OCI-Filters-Applied")
                       for f in v.split(",")}
            self.assertIn("artifactType", filters, resp.describe())
            entries = resp.json()["manifests"]
            for goal in goals:
                if goal.get("artifactType") == atype:
                    self.assertTrue(any(matches(e, goal) for e in entries))
            self.assertTrue(all(e.get("artifactType") == atype for e in entries), entries)

    # -- manifest errors (run.go TestManifestErrors) ---------------------------------------------

    def test_06_manifest_errors(self):
        repo = self.repo1
        with self.subTest("missing-manifest/by-digest"):
            missing = h.digest_of(h.random_bytes(1024))
            self.assertStatus(self.reg.get_manifest(repo, missing, h.MT_OCI_MANIFEST), 404)
        with self.subTest("missing-manifest/by-tag"):
            tag = "missing-" + h.random_bytes(10).hex()
            self.assertStatus(self.reg.get_manifest(repo, tag, h.MT_OCI_MANIFEST), 404)
        img = h.build_image(layer_count=1)
        for data in img.blobs.values():
            self.push_any(repo, data, "sha256")
        with self.subTest("invalid-digest-format/manifest-put"):
            self.known_failure("answers 500 to sha256:baddigeststring")
            resp = self.reg.put_manifest(repo, "sha256:baddigeststring", img.manifest,
                                         img.media_type)
            self.assertStatus(resp, 400)
        with self.subTest("invalid-digest-format/manifest-get"):
            self.known_failure("answers 500 to sha256:baddigeststring")
            resp = self.reg.get_manifest(repo, "sha256:baddigeststring", h.MT_OCI_MANIFEST)
            self.assertIn(resp.status, (400, 404), resp.describe())
        with self.subTest("invalid-digest-format/delete"):
            self.assertStatus(self.reg.delete(self.reg.manifest_path(repo, img.digest)), 202, 404)
            for digest in img.blobs:
                self.assertStatus(self.reg.delete_blob(repo, digest), 202, 404)


@h.berth_only("storage.sparse_manifests is berth's option")
class ConformanceMainSparse(ConformanceMain):
    """The main-branch suite with OCI_DATA_SPARSE=true, against storage.sparse_manifests."""
    server_config = {"storage": {"sparse_manifests": True}}
    sparse = True


if __name__ == "__main__":
    h.main()
