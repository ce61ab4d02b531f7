"""ECR's documented quotas that berth enforces: at most 1,000 tags per image (the tag that
would be the 1,001st is refused with LimitExceededException (PutImage) or 403 DENIED (/v2),
nothing changes, and the image takes tags again once it has fewer), and at most 1,000 layer
parts per upload (UploadLayerPart's 1,001st part is LimitExceededException, nothing is
written, and the upload completes with what it holds)."""

import berth_harness as h
import ecr_helpers as e


class TagsPerImageTest(e.EcrTestCase):
    server_config = {"storage": {"fsync": False}}

    def test_thousand_tags_per_image(self):
        repo = self.create_repo()
        image = h.build_image(layer_count=1, layer_size=64)
        self.push(repo, image, tag="t0")
        reg = self.server.registry(keep_alive=True)
        try:
            for i in range(1, 1000):
                resp = reg.put_manifest(repo, "t%d" % i, image.manifest, image.media_type)
                self.assertStatus(resp, 201)
            # the 1,001st: refused over both APIs, and nothing moved
            resp = reg.put_manifest(repo, "t1000", image.manifest, image.media_type)
            self.assertStatus(resp, 403)
            self.assertEqual(resp.error_codes(), ["DENIED"])
            err = self.assertBotoError("LimitExceededException", "put_image",
                                       repositoryName=repo,
                                       imageManifest=image.manifest.decode(),
                                       imageManifestMediaType=image.media_type,
                                       imageTag="t1000")
            self.assertIn("at most 1000 tags", err["Message"])
            self.assertStatus(reg.get_manifest(repo, "t1000"), 404)
            tags = self.ecr.describe_images(repositoryName=repo)["imageDetails"][0]["imageTags"]
            self.assertEqual(len(tags), 1000)
            # a tag already on the image is not a new one; another image takes tags
            self.assertStatus(reg.put_manifest(repo, "t5", image.manifest, image.media_type), 201)
            other = h.build_image(layer_count=1, layer_size=64)
            self.push(repo, other, tag="other")
            # moving a tag away makes room
            self.assertStatus(reg.put_manifest(repo, "t7", other.manifest, other.media_type),
                              201)
            self.assertStatus(reg.put_manifest(repo, "t1000", image.manifest,
                                               image.media_type), 201)
        finally:
            reg.close()


class LayerPartsTest(e.EcrTestCase):
    server_config = {"storage": {"fsync": False}}

    def part(self, repo, upload, data, i):
        """Part i of an upload of data: its byte i alone."""
        return self.ecr.upload_layer_part(repositoryName=repo, uploadId=upload,
                                          partFirstByte=i, partLastByte=i,
                                          layerPartBlob=data[i:i + 1])

    def assert_1001st_refused(self, repo, upload, data):
        """The 1,001st part (byte 1000 of data) is LimitExceededException and nothing of it
        is written: the upload completes with the 1,000 bytes before it. Their digest."""
        err = self.assertBotoError("LimitExceededException", "upload_layer_part",
                                   repositoryName=repo, uploadId=upload, partFirstByte=1000,
                                   partLastByte=1000, layerPartBlob=data[1000:])
        self.assertIn("1000 layer parts", err["Message"])
        digest = h.digest_of(data[:1000])
        out = self.ecr.complete_layer_upload(repositoryName=repo, uploadId=upload,
                                             layerDigests=[digest])
        self.assertEqual(out["layerDigest"], digest)
        return digest

    def test_thousand_parts_per_upload(self):
        repo = self.create_repo()
        upload = self.ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
        data = h.random_bytes(1001)
        for i in range(1000):
            self.assertEqual(self.part(repo, upload, data, i)["lastByteReceived"], i)
        digest = self.assert_1001st_refused(repo, upload, data)
        self.assertEqual(self.reg.get_blob(repo, digest).body, data[:1000])

    def test_part_count_survives_a_restart(self):
        """The filesystem session's row counts its parts: 600 before a restart and 400
        after make 1,000, and the next is refused."""
        repo = self.create_repo()
        upload = self.ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
        data = h.random_bytes(1001)
        for i in range(600):
            self.part(repo, upload, data, i)
        self.restart_server()
        for i in range(600, 1000):
            self.assertEqual(self.part(repo, upload, data, i)["lastByteReceived"], i)
        self.assert_1001st_refused(repo, upload, data)


if __name__ == "__main__":
    h.main()
