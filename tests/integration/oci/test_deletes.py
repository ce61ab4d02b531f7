"""Deletes (end-9, end-10), delete disabled, explicit repository creation, and the
integrity of indexes: a manifest an index lists is not deleted unless configured so."""

import berth_harness as h


class DeleteTest(h.ServerTestCase):
    def push_tagged(self, repo, tags, image=None):
        image = image or h.build_image(layer_count=1)
        self.push_image_ok(repo, image, tag=tags[0])
        for tag in tags[1:]:
            self.assertStatus(self.reg.put_manifest(repo, tag, image.manifest, image.media_type),
                              201)
        return image

    def tag_list(self, repo):
        resp = self.reg.tags(repo)
        if resp.status == 404:
            return []
        self.assertStatus(resp, 200)
        return resp.json().get("tags") or []

    @h.distribution_fails("no tag delete: DELETE by tag is 400")
    def test_tag_delete_removes_only_the_tag(self):
        repo = self.repo()
        img = self.push_tagged(repo, ["keep", "drop"])
        resp = self.reg.delete(self.reg.manifest_path(repo, "drop"))
        self.assertStatus(resp, 202)
        self.assertError(self.reg.get_manifest(repo, "drop"), 404, "MANIFEST_UNKNOWN")
        self.assertStatus(self.reg.get_manifest(repo, "drop", method="HEAD"), 404)
        self.assertManifest(repo, "keep", img)
        self.assertManifest(repo, img.digest, img)
        self.assertEqual(self.tag_list(repo), ["keep"])

    @h.distribution_fails("no tag delete: DELETE by tag is 400")
    def test_last_tag_delete_keeps_the_manifest(self):
        repo = self.repo()
        img = self.push_tagged(repo, ["only"])
        self.assertStatus(self.reg.delete(self.reg.manifest_path(repo, "only")), 202)
        self.assertManifest(repo, img.digest, img)
        self.assertEqual(self.tag_list(repo), [])

    def test_delete_missing_tag(self):
        repo = self.repo()
        self.push_tagged(repo, ["present"])
        resp = self.reg.delete(self.reg.manifest_path(repo, "absent"))
        if h.IS_DISTRIBUTION:
            self.assertIn(resp.status, (400, 404), resp.describe())
        else:
            self.assertError(resp, 404, "MANIFEST_UNKNOWN")

    def test_digest_delete_removes_manifest_and_every_tag(self):
        repo = self.repo()
        img = self.push_tagged(repo, ["a", "b", "c"])
        other = self.push_tagged(repo, ["other"])
        resp = self.reg.delete(self.reg.manifest_path(repo, img.digest))
        self.assertStatus(resp, 202)
        for ref in ("a", "b", "c", img.digest):
            with self.subTest(ref=ref):
                self.assertError(self.reg.get_manifest(repo, ref), 404, "MANIFEST_UNKNOWN")
                self.assertStatus(self.reg.get_manifest(repo, ref, method="HEAD"), 404)
        self.assertEqual(self.tag_list(repo), ["other"])
        self.assertManifest(repo, "other", other)
        self.assertError(self.reg.delete(self.reg.manifest_path(repo, img.digest)), 404,
                         "MANIFEST_UNKNOWN")

    def test_digest_delete_keeps_the_blobs(self):
        repo = self.repo()
        img = self.push_tagged(repo, ["v1"])
        self.assertStatus(self.reg.delete(self.reg.manifest_path(repo, img.digest)), 202)
        for digest, data in img.blobs.items():
            self.assertBlob(repo, data)
        # ... so the same manifest can be pushed again without its blobs.
        resp = self.reg.put_manifest(repo, "again", img.manifest, img.media_type)
        self.assertStatus(resp, 201)
        self.assertManifest(repo, "again", img)

    def test_digest_delete_in_one_repository_only(self):
        repo, other = self.repo(), self.repo("-other")
        img = h.build_image(layer_count=1)
        self.push_tagged(repo, ["v1"], img)
        self.push_tagged(other, ["v1"], img)
        self.assertStatus(self.reg.delete(self.reg.manifest_path(repo, img.digest)), 202)
        self.assertStatus(self.reg.get_manifest(repo, "v1", method="HEAD"), 404)
        self.assertManifest(other, "v1", img)

    def test_delete_index_keeps_children(self):
        repo = self.repo()
        children = [h.build_image(layer_count=1, arch=a) for a in ("amd64", "arm64")]
        index = h.Index(children)
        self.push_image_ok(repo, index, tag="multi")
        self.assertStatus(self.reg.delete(self.reg.manifest_path(repo, index.digest)), 202)
        self.assertStatus(self.reg.get_manifest(repo, "multi", method="HEAD"), 404)
        for child in children:
            self.assertManifest(repo, child.digest, child)

    def test_blob_delete(self):
        repo = self.repo()
        data = h.random_bytes(321)
        digest = self.reg.ensure_blob(repo, data)
        self.assertStatus(self.reg.delete_blob(repo, digest), 202)
        self.assertError(self.reg.get_blob(repo, digest), 404, "BLOB_UNKNOWN")

    def test_delete_in_unknown_repository(self):
        repo = "itest/never-pushed"
        resp = self.reg.delete(self.reg.manifest_path(repo, h.digest_of(b"x")))
        self.assertError(resp, 404, "NAME_UNKNOWN", "MANIFEST_UNKNOWN")
        resp = self.reg.delete_blob(repo, h.digest_of(b"x"))
        self.assertError(resp, 404, "NAME_UNKNOWN", "BLOB_UNKNOWN")

    def test_delete_malformed_digest(self):
        repo = self.repo()
        self.push_tagged(repo, ["v1"])
        resp = self.reg.delete(self.reg.manifest_path(repo, "sha256:nothex"))
        self.assertError(resp, 400, "DIGEST_INVALID")


PLATFORMS = [{"os": "linux", "architecture": "amd64"}, {"os": "linux", "architecture": "arm64"}]


def push_index(test, repo, tag="multi"):
    """Two children and an index over them, the index tagged; returns the Index."""
    index = h.Index([h.build_image(arch=p["architecture"], layer_count=1) for p in PLATFORMS],
                    platforms=PLATFORMS)
    test.assertStatus(test.reg.push_image(repo, index, tag=tag), 201)
    return index


class IndexIntegrityTest(h.ServerTestCase):
    """By default a DELETE by digest of a manifest an index of the repository lists is
    refused, as ECR's BatchDeleteImage refuses it: the index would dangle."""

    @h.berth_only("distribution deletes what an index lists, as the spec permits")
    def test_child_of_a_tagged_index_is_not_deleted(self):
        repo = self.repo()
        index = push_index(self, repo)
        child = index.children[0]
        resp = self.reg.delete(self.reg.manifest_path(repo, child.digest))
        self.assertError(resp, 409, "DENIED")
        error = resp.json()["errors"][0]
        self.assertIn("referenced by a manifest list", error["message"])
        self.assertIn(child.digest, error["message"])
        self.assertEqual(error.get("detail"), {"digest": child.digest})
        # nothing changed: the index and both children are whole
        self.assertManifest(repo, "multi", index)
        for c in index.children:
            self.assertManifest(repo, c.digest, c)
        # the index first, then its children
        self.assertStatus(self.reg.delete(self.reg.manifest_path(repo, index.digest)), 202)
        for c in index.children:
            self.assertStatus(self.reg.delete(self.reg.manifest_path(repo, c.digest)), 202)
            self.assertError(self.reg.get_manifest(repo, c.digest), 404, "MANIFEST_UNKNOWN")

    @h.berth_only("distribution deletes what an index lists, as the spec permits")
    def test_untagged_index_still_protects_its_children(self):
        repo = self.repo()
        index = push_index(self, repo)
        self.assertStatus(self.reg.delete(self.reg.manifest_path(repo, "multi")), 202)
        resp = self.reg.delete(self.reg.manifest_path(repo, index.children[1].digest))
        self.assertError(resp, 409, "DENIED")
        self.assertManifest(repo, index.digest, index)

    def test_tags_of_a_child_and_unlisted_manifests_are_deleted(self):
        repo = self.repo()
        index = push_index(self, repo)
        child = index.children[0]
        self.assertStatus(self.reg.put_manifest(repo, "amd64", child.manifest, child.media_type),
                          201)
        if not h.IS_DISTRIBUTION:
            # a tag is only a name: deleting it leaves the index whole
            self.assertStatus(self.reg.delete(self.reg.manifest_path(repo, "amd64")), 202)
            self.assertManifest(repo, child.digest, child)
        lone = h.build_image(layer_count=1)
        self.push_image_ok(repo, lone, tag="lone")
        self.assertStatus(self.reg.delete(self.reg.manifest_path(repo, lone.digest)), 202)
        self.assertManifest(repo, "multi", index)

    def test_index_in_another_repository_does_not_protect(self):
        repo, other = self.repo(), self.repo("-other")
        push_index(self, repo)
        index = push_index(self, other)
        child = index.children[0]
        # the same child in a third repository on its own
        third = self.repo("-third")
        self.push_image_ok(third, child, tag="v1")
        self.assertStatus(self.reg.delete(self.reg.manifest_path(third, child.digest)), 202)
        self.assertManifest(other, child.digest, child)


class PermissiveIndexDeleteTest(h.ServerTestCase):
    """storage.delete_referenced_manifests: the spec's permissive behaviour."""

    server_config = {"storage": {"delete_referenced_manifests": True}}

    def test_child_of_an_index_is_deleted(self):
        repo = self.repo()
        index = push_index(self, repo)
        child = index.children[0]
        self.assertStatus(self.reg.delete(self.reg.manifest_path(repo, child.digest)), 202)
        self.assertError(self.reg.get_manifest(repo, child.digest), 404, "MANIFEST_UNKNOWN")
        # the index is kept as pushed, now listing a manifest that is gone
        self.assertManifest(repo, "multi", index)


class DeleteDisabledTest(h.ServerTestCase):
    server_config = {"storage": {"delete_enabled": False}}

    def test_every_delete_is_405(self):
        repo = self.repo()
        img = h.build_image(layer_count=1)
        self.push_image_ok(repo, img, tag="v1")
        for path in (self.reg.manifest_path(repo, "v1"),
                     self.reg.manifest_path(repo, img.digest),
                     self.reg.blob_path(repo, img.layer_digests[0]),
                     self.reg.blob_path(repo, img.config_digest)):
            with self.subTest(path=path):
                self.assertError(self.reg.delete(path), 405, "UNSUPPORTED")
        self.assertManifest(repo, "v1", img)
        self.assertManifest(repo, img.digest, img)
        for data in img.blobs.values():
            self.assertBlob(repo, data)

    def test_upload_cancel_still_works(self):
        repo = self.repo()
        resp = self.reg.start_upload(repo)
        self.assertStatus(resp, 202)
        self.assertStatus(self.reg.delete(self.reg.resolve(resp.header("Location"))), 204)


class ExplicitRepositoriesTest(h.ServerTestCase):
    server_config = {"storage": {"auto_create_repositories": False}}

    def test_push_to_new_repository_is_name_unknown(self):
        repo = self.repo()
        data = h.random_bytes(100)
        digest = h.digest_of(data)
        self.assertError(self.reg.start_upload(repo), 404, "NAME_UNKNOWN")
        resp = self.reg.push_blob(repo, data, mode="post_only")
        self.assertError(resp, 404, "NAME_UNKNOWN")
        img = h.build_image(layer_count=1)
        resp = self.reg.put_manifest(repo, "v1", img.manifest, img.media_type)
        self.assertError(resp, 404, "NAME_UNKNOWN")
        resp = self.reg.start_upload(repo, mount=digest, **{"from": "itest/elsewhere"})
        self.assertError(resp, 404, "NAME_UNKNOWN")
        self.assertError(self.reg.tags(repo), 404, "NAME_UNKNOWN")
        self.assertStatus(self.reg.head_blob(repo, digest), 404)
        resp = self.reg.catalog()
        self.assertStatus(resp, 200)
        self.assertNotIn(repo, resp.json()["repositories"] or [])


if __name__ == "__main__":
    h.main()
