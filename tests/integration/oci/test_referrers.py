"""The referrers API (end-12a/b) and the OCI-Subject header."""

import urllib.parse

import berth_harness as h

EMPTY_INDEX = {"schemaVersion": 2, "mediaType": h.MT_OCI_INDEX, "manifests": []}
SBOM = "application/vnd.example.sbom.v1+json"
SIG = "application/vnd.example.signature.v1"


@h.distribution_fails("no referrers API")
class ReferrersTest(h.ServerTestCase):
    def referrers(self, repo, digest, **params):
        resp = self.reg.referrers(repo, digest, **params)
        self.assertStatus(resp, 200)
        self.assertHeader(resp, "Content-Type", h.MT_OCI_INDEX)
        doc = resp.json()
        self.assertEqual(doc.get("schemaVersion"), 2)
        self.assertEqual(doc.get("mediaType"), h.MT_OCI_INDEX)
        self.assertIsInstance(doc.get("manifests"), list)
        return resp, doc

    def by_digest(self, doc):
        return {d["digest"]: d for d in doc["manifests"]}

    def test_unknown_subject_is_empty_index(self):
        repo = self.repo()
        self.push_image_ok(repo, h.build_image(layer_count=1), tag="v1")
        resp, doc = self.referrers(repo, h.digest_of(b"no such manifest"))
        self.assertEqual(doc, EMPTY_INDEX)

    def test_unknown_repository_is_empty_index(self):
        # The conformance suite asks an empty repository before anything is pushed.
        resp, doc = self.referrers("itest/never-pushed", h.digest_of(b"x"))
        self.assertEqual(doc, EMPTY_INDEX)

    def test_listed_with_artifact_type_and_annotations(self):
        repo = self.repo()
        subject = h.build_image(layer_count=1)
        self.push_image_ok(repo, subject, tag="v1")
        sbom = h.build_artifact(SBOM, subject=subject.descriptor(),
                                annotations={"org.example.kind": "sbom", "n": "1"})
        sig = h.build_artifact(SIG, subject=subject.descriptor(),
                               annotations={"org.example.kind": "signature"})
        for art in (sbom, sig):
            resp = self.push_image_ok(repo, art)
            self.assertHeader(resp, "OCI-Subject", subject.digest)
        resp, doc = self.referrers(repo, subject.digest)
        entries = self.by_digest(doc)
        self.assertEqual(set(entries), {sbom.digest, sig.digest})
        for art, atype in ((sbom, SBOM), (sig, SIG)):
            entry = entries[art.digest]
            self.assertEqual(entry["mediaType"], h.MT_OCI_MANIFEST)
            self.assertEqual(entry["size"], len(art.manifest))
            self.assertEqual(entry["artifactType"], atype)
            self.assertEqual(entry["annotations"], art.obj["annotations"])

    def test_artifact_type_falls_back_to_config_media_type(self):
        repo = self.repo()
        subject = h.build_image(layer_count=1)
        self.push_image_ok(repo, subject, tag="v1")
        config = b'{"signature":"yes"}'
        obj = {
            "schemaVersion": 2,
            "mediaType": h.MT_OCI_MANIFEST,
            "config": h.blob_descriptor("application/vnd.example.config.v1+json", config),
            "layers": [],
            "subject": subject.descriptor(),
        }
        art = h.Image(obj, {h.digest_of(config): config})
        self.push_image_ok(repo, art)
        resp, doc = self.referrers(repo, subject.digest)
        entry = self.by_digest(doc)[art.digest]
        self.assertEqual(entry["artifactType"], "application/vnd.example.config.v1+json")
        self.assertFalse(entry.get("annotations"), entry)

    def test_artifact_type_filter(self):
        repo = self.repo()
        subject = h.build_image(layer_count=1)
        self.push_image_ok(repo, subject, tag="v1")
        sboms = [h.build_artifact(SBOM, subject=subject.descriptor()) for _ in range(2)]
        sig = h.build_artifact(SIG, subject=subject.descriptor())
        for art in sboms + [sig]:
            self.push_image_ok(repo, art)
        resp, doc = self.referrers(repo, subject.digest, artifactType=SBOM)
        filters = [f.strip() for v in resp.header_all("OCI-Filters-Applied")
                   for f in v.split(",")]
        self.assertIn("artifactType", filters, resp.describe())
        self.assertEqual(set(self.by_digest(doc)), {a.digest for a in sboms})
        resp, doc = self.referrers(repo, subject.digest, artifactType="application/none")
        self.assertEqual(doc["manifests"], [])
        resp, doc = self.referrers(repo, subject.digest)
        self.assertEqual(len(doc["manifests"]), 3)
        self.assertFalse(resp.header_all("OCI-Filters-Applied"))

    def test_filtered_pages_keep_the_filter(self):
        # More referrers than one page (1000) of a type with a '+': the Link's
        # artifactType must read back as the same type, or the next page is filtered
        # by "application/spdx json" and comes back empty.
        repo = self.repo()
        spdx = "application/spdx+json"
        subject = h.build_image(layer_count=1)
        self.push_image_ok(repo, subject, tag="v1")
        first = h.build_artifact(spdx, subject=subject.descriptor(), layer_count=0)
        self.push_image_ok(repo, first)
        pushed = {first.digest}
        reg = self.server.registry(keep_alive=True)
        try:
            for i in range(1004):
                art = h.build_artifact(spdx, subject=subject.descriptor(), layer_count=0,
                                       annotations={"n": str(i)})
                h.expect_status(reg.put_manifest(repo, art.digest, art.manifest,
                                                 art.media_type), 201)
                pushed.add(art.digest)
            for params in ({"artifactType": spdx}, {}):
                with self.subTest(params=params):
                    target = self.reg.with_query("/v2/%s/referrers/%s" % (repo, subject.digest),
                                                 **params)
                    seen, pages = [], 0
                    while target is not None and pages < 5:
                        resp = self.assertStatus(reg.get(target), 200)
                        pages += 1
                        seen += [d["digest"] for d in resp.json()["manifests"]]
                        self.assertEqual(bool(resp.header_all("OCI-Filters-Applied")),
                                         bool(params), resp.describe())
                        link = resp.header("Link")
                        target = link[link.index("<") + 1:link.index(">")] if link else None
                        if target is not None:
                            query = dict(urllib.parse.parse_qsl(
                                urllib.parse.urlsplit(target).query))
                            self.assertEqual(query.get("artifactType"), params.get("artifactType"),
                                             link)
                    self.assertEqual(pages, 2)
                    self.assertEqual(len(seen), len(pushed))
                    self.assertEqual(set(seen), pushed)
        finally:
            reg.close()

    def test_index_with_subject(self):
        repo = self.repo()
        subject = h.Index([h.build_image(layer_count=1)], platforms=[{"os": "linux",
                                                                      "architecture": "amd64"}])
        self.push_image_ok(repo, subject, tag="index")
        children = [h.build_artifact(SBOM) for _ in range(2)]
        typed = h.Index(children, extra={"artifactType": SBOM, "subject": subject.descriptor(),
                                         "annotations": {"org.example": "index"}})
        untyped = h.Index([h.build_artifact(SIG)], extra={"subject": subject.descriptor()})
        for idx in (typed, untyped):
            resp = self.push_image_ok(repo, idx)
            self.assertHeader(resp, "OCI-Subject", subject.digest)
        resp, doc = self.referrers(repo, subject.digest)
        entries = self.by_digest(doc)
        self.assertEqual(set(entries), {typed.digest, untyped.digest})
        self.assertEqual(entries[typed.digest]["mediaType"], h.MT_OCI_INDEX)
        self.assertEqual(entries[typed.digest]["artifactType"], SBOM)
        self.assertEqual(entries[typed.digest]["annotations"], {"org.example": "index"})
        self.assertNotIn("artifactType", entries[untyped.digest])

    def test_subject_pushed_after_referrer(self):
        repo = self.repo()
        subject = h.build_image(layer_count=1)
        art = h.build_artifact(SBOM, subject=subject.descriptor())
        resp = self.push_image_ok(repo, art, tag="early")
        self.assertHeader(resp, "OCI-Subject", subject.digest)
        resp, doc = self.referrers(repo, subject.digest)
        self.assertEqual(set(self.by_digest(doc)), {art.digest})
        self.push_image_ok(repo, subject, tag="late")
        resp, doc = self.referrers(repo, subject.digest)
        self.assertEqual(set(self.by_digest(doc)), {art.digest})

    def test_referrers_are_per_repository(self):
        repo, other = self.repo(), self.repo("-other")
        subject = h.build_image(layer_count=1)
        self.push_image_ok(repo, subject, tag="v1")
        self.push_image_ok(other, subject, tag="v1")
        art = h.build_artifact(SBOM, subject=subject.descriptor())
        self.push_image_ok(repo, art)
        self.assertEqual(len(self.referrers(repo, subject.digest)[1]["manifests"]), 1)
        self.assertEqual(self.referrers(other, subject.digest)[1], EMPTY_INDEX)

    def test_deleted_referrer_disappears(self):
        repo = self.repo()
        subject = h.build_image(layer_count=1)
        self.push_image_ok(repo, subject, tag="v1")
        keep, drop = (h.build_artifact(SBOM, subject=subject.descriptor()) for _ in range(2))
        self.push_image_ok(repo, keep)
        self.push_image_ok(repo, drop)
        self.assertStatus(self.reg.delete(self.reg.manifest_path(repo, drop.digest)), 202)
        resp, doc = self.referrers(repo, subject.digest)
        self.assertEqual(set(self.by_digest(doc)), {keep.digest})

    def test_sha512_subject(self):
        repo = self.repo()
        subject = h.build_image(layer_count=1, algo="sha512")
        self.push_image_ok(repo, subject)
        art = h.build_artifact(SBOM, subject=subject.descriptor(), algo="sha512")
        resp = self.push_image_ok(repo, art)
        self.assertHeader(resp, "OCI-Subject", subject.digest)
        resp, doc = self.referrers(repo, subject.digest)
        self.assertEqual(set(self.by_digest(doc)), {art.digest})

    def test_invalid_digest(self):
        repo = self.repo()
        self.push_image_ok(repo, h.build_image(layer_count=1), tag="v1")
        for bad in ("sha256:abc", "latest", "sha256:" + "G" * 64):
            resp = self.reg.get("/v2/%s/referrers/%s" % (repo, bad))
            with self.subTest(digest=bad):
                self.assertError(resp, 400, "DIGEST_INVALID")


if __name__ == "__main__":
    h.main()
