"""ECR layer operations (BatchCheckLayerAvailability, InitiateLayerUpload, UploadLayerPart,
CompleteLayerUpload) against the real berth, with /usr/bin/aws, boto3 and raw requests; the
upload sessions are the ones /v2 uses."""

import os

import berth_harness as h
import ecr_helpers as e


class LayerAvailabilityTest(e.EcrTestCase):
    def test_available_missing_invalid(self):
        repo = self.create_repo()
        img = h.build_image(layer_count=1)
        self.push(repo, img, "v1")
        loose = h.random_bytes(321)
        loose_digest = self.reg.ensure_blob(repo, loose)
        missing = "sha256:" + "0" * 64
        layer = img.layer_digests[0]
        out = self.aws("batch-check-layer-availability", "--repository-name", repo,
                       "--layer-digests", layer, img.config_digest, loose_digest, missing,
                       "sha256:XYZ")
        self.assertEqual(out["layers"], [
            {"layerDigest": layer, "layerAvailability": "AVAILABLE",
             "layerSize": img.obj["layers"][0]["size"], "mediaType": h.MT_OCI_LAYER_GZIP},
            {"layerDigest": img.config_digest, "layerAvailability": "AVAILABLE",
             "layerSize": len(img.blobs[img.config_digest]), "mediaType": h.MT_OCI_CONFIG},
            # pushed, but no manifest says what it is
            {"layerDigest": loose_digest, "layerAvailability": "AVAILABLE",
             "layerSize": len(loose)},
        ])
        self.assertEqual([(f["layerDigest"], f["failureCode"]) for f in out["failures"]],
                         [(missing, "MissingLayerDigest"), ("sha256:XYZ", "InvalidLayerDigest")])
        for f in out["failures"]:
            self.assertTrue(f["failureReason"])
        # a blob of another repository is not available here
        other = self.create_repo()
        out = self.ecr.batch_check_layer_availability(repositoryName=other,
                                                      layerDigests=[layer])
        self.assertEqual(out["layers"], [])
        self.assertEqual(out["failures"][0]["failureCode"], "MissingLayerDigest")
        # both lists are always there
        doc = self.ok("BatchCheckLayerAvailability", {"repositoryName": repo,
                                                      "layerDigests": [layer]})
        self.assertEqual(doc["failures"], [])

    def test_errors(self):
        self.assertCliError("RepositoryNotFoundException", "batch-check-layer-availability",
                            "--repository-name", "itest/none", "--layer-digests", "sha256:00")
        repo = self.create_repo()
        self.assertAwsError(self.call("BatchCheckLayerAvailability", {
            "repositoryName": repo, "layerDigests": ["sha256:00"] * 101}),
            400, "InvalidParameterException")
        self.assertAwsError(self.call("BatchCheckLayerAvailability", {
            "repositoryName": repo, "layerDigests": []}), 400, "InvalidParameterException")
        self.assertAwsError(self.call("BatchCheckLayerAvailability", {
            "repositoryName": repo, "layerDigests": ["x" * 1001]}),
            400, "InvalidParameterException")
        self.assertAwsError(self.call("BatchCheckLayerAvailability", {
            "repositoryName": repo, "layerDigests": [5]}), 400, "SerializationException")


class LayerUploadTest(e.EcrTestCase):
    def test_cli_upload_in_two_parts(self):
        repo = self.create_repo()
        data = h.random_bytes(150000)
        first, second = data[:100000], data[100000:]
        init = self.aws("initiate-layer-upload", "--repository-name", repo)
        upload_id = init["uploadId"]
        self.assertRegex(upload_id, r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                                    r"[0-9a-f]{12}$")
        self.assertEqual(init["partSize"], 10485760)
        for start, part in ((0, first), (len(first), second)):
            path = os.path.join(self.work, "part")
            with open(path, "wb") as f:
                f.write(part)
            out = self.aws("upload-layer-part", "--repository-name", repo, "--upload-id",
                           upload_id, "--part-first-byte", start, "--part-last-byte",
                           start + len(part) - 1, "--layer-part-blob", "fileb://" + path)
            self.assertEqual(out, {"registryId": e.REGISTRY_ID, "repositoryName": repo,
                                   "uploadId": upload_id,
                                   "lastByteReceived": start + len(part) - 1})
        digest = h.digest_of(data)
        out = self.aws("complete-layer-upload", "--repository-name", repo, "--upload-id",
                       upload_id, "--layer-digests", digest)
        self.assertEqual(out, {"registryId": e.REGISTRY_ID, "repositoryName": repo,
                               "uploadId": upload_id, "layerDigest": digest})
        self.assertBlob(repo, data)
        out = self.ecr.batch_check_layer_availability(repositoryName=repo, layerDigests=[digest])
        self.assertEqual(out["layers"][0]["layerSize"], len(data))
        # the same layer again
        upload_id = self.ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
        self.ecr.upload_layer_part(repositoryName=repo, uploadId=upload_id, partFirstByte=0,
                                   partLastByte=len(data) - 1, layerPartBlob=data)
        self.assertBotoError("LayerAlreadyExistsException", "complete_layer_upload",
                             repositoryName=repo, uploadId=upload_id, layerDigests=[digest])

    def test_layers_then_put_image_pulls_over_v2(self):
        """A whole image pushed through the JSON API only, pulled over /v2."""
        repo = self.create_repo()
        img = h.build_image(layer_count=2)
        for digest, data in img.blobs.items():
            upload_id = self.ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
            self.ecr.upload_layer_part(repositoryName=repo, uploadId=upload_id, partFirstByte=0,
                                       partLastByte=len(data) - 1, layerPartBlob=data)
            out = self.ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id,
                                                 layerDigests=[digest])
            self.assertEqual(out["layerDigest"], digest)
        self.ecr.put_image(repositoryName=repo, imageManifest=img.manifest.decode(),
                           imageTag="api")
        self.assertManifest(repo, "api", img)
        for data in img.blobs.values():
            self.assertBlob(repo, data)

    def test_session_shared_with_v2(self):
        repo = self.create_repo()
        data = h.random_bytes(5000)
        upload_id = self.ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
        self.ecr.upload_layer_part(repositoryName=repo, uploadId=upload_id, partFirstByte=0,
                                   partLastByte=1999, layerPartBlob=data[:2000])
        # /v2 sees the session and its progress, and can finish it
        loc = "/v2/%s/blobs/uploads/%s" % (repo, upload_id)
        resp = self.reg.get(loc)
        self.assertStatus(resp, 204)
        self.assertRangeHeader(resp, 1999)
        resp = self.reg.finish_upload(loc, h.digest_of(data), data[2000:], start=2000)
        self.assertStatus(resp, 201)
        self.assertBlob(repo, data)
        # and the other way round: a /v2 session continued through the JSON API
        more = h.random_bytes(3000)
        resp = self.reg.start_upload(repo)
        self.assertStatus(resp, 202)
        uuid = resp.header("Docker-Upload-UUID")
        self.assertStatus(self.reg.patch_chunk(resp.header("Location"), more[:1000], 0), 202)
        self.ecr.upload_layer_part(repositoryName=repo, uploadId=uuid, partFirstByte=1000,
                                   partLastByte=2999, layerPartBlob=more[1000:])
        self.ecr.complete_layer_upload(repositoryName=repo, uploadId=uuid,
                                       layerDigests=[h.digest_of(more)])
        self.assertBlob(repo, more)

    def test_invalid_parts(self):
        repo = self.create_repo()
        upload_id = self.ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
        body = {"repositoryName": repo, "uploadId": upload_id, "partFirstByte": 5,
                "partLastByte": 7, "layerPartBlob": e.b64(b"abc")}
        doc = self.assertAwsError(self.call("UploadLayerPart", body), 400,
                                  "InvalidLayerPartException")
        self.assertEqual(doc["registryId"], e.REGISTRY_ID)
        self.assertEqual(doc["repositoryName"], repo)
        self.assertEqual(doc["uploadId"], upload_id)
        self.assertEqual(doc["lastValidByteReceived"], -1)  # nothing received yet
        self.ecr.upload_layer_part(repositoryName=repo, uploadId=upload_id, partFirstByte=0,
                                   partLastByte=2, layerPartBlob=b"abc")
        # a gap, an overlap, and a length that disagrees with the range
        for first, last, blob in ((4, 5, b"de"), (2, 3, b"cd"), (3, 9, b"defg")):
            doc = self.assertAwsError(self.call("UploadLayerPart", dict(
                body, partFirstByte=first, partLastByte=last, layerPartBlob=e.b64(blob))),
                400, "InvalidLayerPartException")
            self.assertEqual(doc["lastValidByteReceived"], 2)
        # boto3 maps it to its modeled exception
        self.assertBotoError("InvalidLayerPartException", "upload_layer_part",
                             repositoryName=repo, uploadId=upload_id, partFirstByte=0,
                             partLastByte=0, layerPartBlob=b"x")
        # nothing of the refused parts was kept
        self.ecr.upload_layer_part(repositoryName=repo, uploadId=upload_id, partFirstByte=3,
                                   partLastByte=5, layerPartBlob=b"def")
        self.ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id,
                                       layerDigests=[h.digest_of(b"abcdef")])
        self.assertBlob(repo, b"abcdef")

    def test_oversized_part_is_not_retried(self):
        """A part over 20 MiB makes a body over berth's 28 MiB limit: botocore, retrying as
        it does by default, reads one 400 InvalidParameterException and sends it once (a 413
        on a closed connection made it resend the body four more times)."""
        import boto3
        from botocore.config import Config
        from botocore.exceptions import ClientError
        repo = self.create_repo()
        upload_id = self.ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
        ecr = boto3.session.Session().client(
            "ecr", endpoint_url=self.endpoint, region_name=e.REGION,
            aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="x" * 40,
            config=Config(retries={"mode": "standard", "max_attempts": 5}))
        part = b"\0" * (21 << 20)

        def attempts():
            return sum("op=UploadLayerPart" in line for line in self.server.log_text().splitlines())
        before = attempts()
        with self.assertRaises(ClientError) as ctx:
            ecr.upload_layer_part(repositoryName=repo, uploadId=upload_id, partFirstByte=0,
                                  partLastByte=len(part) - 1, layerPartBlob=part)
        err = ctx.exception.response
        self.assertEqual(err["Error"]["Code"], "InvalidParameterException", err)
        self.assertEqual(err["ResponseMetadata"]["HTTPStatusCode"], 400, err)
        self.assertEqual(err["ResponseMetadata"]["RetryAttempts"], 0, err)
        self.assertIn("Member must have length less than or equal to 20971520",
                      err["Error"]["Message"])
        # the access line is written once the answer is sent: wait for it
        h.wait_until(lambda: attempts() - before >= 1, 30, what="the UploadLayerPart line")
        self.assertEqual(attempts() - before, 1)
        # the connection and the session are still good
        self.ecr.upload_layer_part(repositoryName=repo, uploadId=upload_id, partFirstByte=0,
                                   partLastByte=2, layerPartBlob=b"abc")

    def test_upload_not_found(self):
        repo = self.create_repo()
        other = self.create_repo()
        unknown = "01234567-89ab-cdef-0123-456789abcdef"
        self.assertBotoError("UploadNotFoundException", "upload_layer_part", repositoryName=repo,
                             uploadId=unknown, partFirstByte=0, partLastByte=0,
                             layerPartBlob=b"x")
        self.assertBotoError("UploadNotFoundException", "complete_layer_upload",
                             repositoryName=repo, uploadId=unknown,
                             layerDigests=[h.digest_of(b"x")])
        # a session belongs to its repository
        upload_id = self.ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
        self.assertBotoError("UploadNotFoundException", "upload_layer_part",
                             repositoryName=other, uploadId=upload_id, partFirstByte=0,
                             partLastByte=0, layerPartBlob=b"x")
        self.assertBotoError("InvalidParameterException", "upload_layer_part",
                             repositoryName=repo, uploadId="not-a-uuid", partFirstByte=0,
                             partLastByte=0, layerPartBlob=b"x")
        self.assertBotoError("RepositoryNotFoundException", "initiate_layer_upload",
                             repositoryName="itest/none")
        self.assertBotoError("RepositoryNotFoundException", "upload_layer_part",
                             repositoryName="itest/none", uploadId=upload_id, partFirstByte=0,
                             partLastByte=0, layerPartBlob=b"x")

    def test_complete_errors(self):
        repo = self.create_repo()
        upload_id = self.ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
        self.assertBotoError("EmptyUploadException", "complete_layer_upload",
                             repositoryName=repo, uploadId=upload_id,
                             layerDigests=[h.digest_of(b"")])
        self.ecr.upload_layer_part(repositoryName=repo, uploadId=upload_id, partFirstByte=0,
                                   partLastByte=3, layerPartBlob=b"data")
        self.assertBotoError("InvalidParameterException", "complete_layer_upload",
                             repositoryName=repo, uploadId=upload_id, layerDigests=["sha256:zz"])
        self.assertBotoError("InvalidParameterException", "complete_layer_upload",
                             repositoryName=repo, uploadId=upload_id,
                             layerDigests=[h.digest_of(b"data"), h.digest_of(b"other")])
        err = self.assertBotoError("InvalidLayerException", "complete_layer_upload",
                                   repositoryName=repo, uploadId=upload_id,
                                   layerDigests=[h.digest_of(b"wrong")])
        self.assertIn(upload_id, err["Message"])
        # the mismatched upload is gone and nothing was stored
        self.assertBotoError("UploadNotFoundException", "complete_layer_upload",
                             repositoryName=repo, uploadId=upload_id,
                             layerDigests=[h.digest_of(b"data")])
        self.assertStatus(self.reg.head_blob(repo, h.digest_of(b"wrong")), 404)
        self.assertStatus(self.reg.head_blob(repo, h.digest_of(b"data")), 404)

    def test_part_limits(self):
        repo = self.create_repo()
        upload_id = self.ecr.initiate_layer_upload(repositoryName=repo)["uploadId"]
        body = {"repositoryName": repo, "uploadId": upload_id, "partFirstByte": 0}
        # one byte over the 20 MiB model maximum
        big = b"\0" * (20971520 + 1)
        self.assertAwsError(self.call("UploadLayerPart", dict(
            body, partLastByte=len(big) - 1, layerPartBlob=e.b64(big))),
            400, "InvalidParameterException")
        self.assertAwsError(self.call("UploadLayerPart", dict(
            body, partLastByte=0, layerPartBlob="***")), 400, "SerializationException")
        self.assertAwsError(self.call("UploadLayerPart", dict(
            body, partLastByte=0, layerPartBlob=7)), 400, "SerializationException")
        self.assertAwsError(self.call("UploadLayerPart", dict(body, partLastByte=0)),
                            400, "InvalidParameterException")
        self.assertAwsError(self.call("UploadLayerPart", dict(
            body, partFirstByte=-1, partLastByte=0, layerPartBlob=e.b64(b"x"))),
            400, "InvalidParameterException")
        self.assertAwsError(self.call("UploadLayerPart", dict(
            body, partFirstByte="0", partLastByte=0, layerPartBlob=e.b64(b"x"))),
            400, "SerializationException")
        # exactly 20 MiB is accepted
        exact = h.random_bytes(20971520)
        out = self.ok("UploadLayerPart", dict(body, partLastByte=len(exact) - 1,
                                              layerPartBlob=e.b64(exact)))
        self.assertEqual(out["lastByteReceived"], len(exact) - 1)
        self.ecr.complete_layer_upload(repositoryName=repo, uploadId=upload_id,
                                       layerDigests=[h.digest_of(exact)])
        resp = self.reg.head_blob(repo, h.digest_of(exact))
        self.assertHeader(resp, "Content-Length", str(len(exact)))


if __name__ == "__main__":
    h.main()
