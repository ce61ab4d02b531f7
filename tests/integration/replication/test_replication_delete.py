# berth-python: modern
"""Deletions are not replicated (as ECR: "deleting an image in the source does not delete
it in the destination"): with A replicating rep* to B (test_replication_copy's set-up),
an image deleted on A by BatchDeleteImage, another by a /v2 DELETE, and a repository
deleted with DeleteRepository(force) all stay on B. The queue is then shown to have moved
past the deletions: an image pushed after them reaches B, and B still has the rest."""

import unittest

import berth_harness as h
import test_replication_copy as rc


class DeletionNotReplicatedTest(rc.ReplicationCopyTest):
    def test_deletions_stay_on_the_source(self):
        by_ecr, by_v2, whole = (h.build_image(layer_count=1) for _ in range(3))
        self.push_image_ok("rep/keep", by_ecr, tag="v1")
        self.push_image_ok("rep/keep", by_v2, tag="v2")
        self.push_image_ok("rep/gone", whole, tag="v1")
        for repo, tag, img in (("rep/keep", "v1", by_ecr), ("rep/keep", "v2", by_v2),
                               ("rep/gone", "v1", whole)):
            self.assertReplicated(repo, tag, img)
            self.wait_status(repo, img.digest, "COMPLETE", "%s COMPLETE" % repo)
        out = self.ecr.batch_delete_image(repositoryName="rep/keep",
                                          imageIds=[{"imageDigest": by_ecr.digest}])
        self.assertEqual(out["failures"], [])
        h.expect_status(self.reg.request("DELETE", self.reg.manifest_path("rep/keep",
                                                                          by_v2.digest)), 202)
        self.ecr.delete_repository(repositoryName="rep/gone", force=True)
        for repo, img in (("rep/keep", by_ecr), ("rep/keep", by_v2), ("rep/gone", whole)):
            self.assertEqual(self.reg.get_manifest(repo, img.digest).status, 404)
        # something pushed after the deletions is copied: the queue went past them
        later = h.build_image(layer_count=1)
        self.push_image_ok("rep/keep", later, tag="v3")
        self.assertReplicated("rep/keep", "v3", later)
        self.wait_status("rep/keep", later.digest, "COMPLETE", "the later image COMPLETE")
        for repo, tag, img in (("rep/keep", "v1", by_ecr), ("rep/keep", "v2", by_v2),
                               ("rep/gone", "v1", whole)):
            self.assertTrue(self.peer.has_manifest(repo, tag, img.digest), (repo, tag))
            for digest, data in img.blobs.items():
                self.assertEqual(self.peer.get("/v2/%s/blobs/%s" % (repo, digest)).body, data)


def load_tests(loader, tests, pattern):
    """Only this module's test (the set-up's class brings test_replication_copy's own)."""
    return unittest.TestSuite([DeletionNotReplicatedTest("test_deletions_stay_on_the_source")])


if __name__ == "__main__":
    h.main()
