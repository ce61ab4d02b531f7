"""Repository policies are shared by the replicas (issue 12: "policies ... created or
deleted on one replica are effective on all within a second"; docs/scale-out.md): two
`berth serve` replicas on one PostgreSQL and one Swift bucket (cluster.py). A policy is a
row of the shared database read with each request (only its parsed form is cached, by
text), so a policy set through one replica decides the very next request to the other,
and so does its deletion: like the keys (cluster/test_balancer.py test_9), the first
request after the call returned is checked, with no waiting. The policy makes a
repository public (anonymous pull, docs/auth.md): refused 401 before, 200 after the set,
401 again after the delete."""
# berth-suite: cluster

import json
import unittest
import warnings

import clients as c  # first: it cleans the environment botocore reads
import auth_helpers as a
import berth_harness as h
from cluster import Cluster, ClusterTestCase

PUBLIC_PULL = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Sid": "public", "Effect": "Allow", "Principal": "*",
    "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]}]})


@unittest.skipUnless(h.IS_BERTH, "berth's replicas")
class PolicySharingTest(ClusterTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        warnings.simplefilter("ignore", ResourceWarning)  # boto3's sockets, left to the GC
        cls.cluster = Cluster(replicas=2, config={"gc": {"enabled": False}})
        cls.addClassCleanup(cls.cluster.stop)
        cls.cluster.start()

    def anonymous_pull(self, replica, repo, image):
        resp = replica.registry().get_manifest(repo, "v1")
        if resp.status == 200:
            self.assertEqual(resp.body, image.manifest)
        return resp.status

    def test_policy_set_and_deleted_on_one_replica_decides_the_other(self):
        r0, r1 = self.cluster.replicas
        repo = "shared/policy"
        image = h.build_image(layer_count=1, layer_size=4096)
        # pushed before any key exists (authentication off)
        h.expect_status(r0.registry().push_image(repo, image, tag="v1"), 201)
        akid, secret = a.keys_create(r0, "policy-admin")  # authentication on, on both
        for i, r in enumerate((r0, r1)):
            self.assertEqual(self.anonymous_pull(r, repo, image), 401, "r%d" % i)
        for setter, other in ((r0, r1), (r1, r0)):
            ecr = c.ecr_client(setter, akid, secret)
            ecr.set_repository_policy(repositoryName=repo, policyText=PUBLIC_PULL)
            self.assertEqual(self.anonymous_pull(other, repo, image), 200,
                             "a policy set through one replica, the next request to the other")
            self.assertEqual(self.anonymous_pull(setter, repo, image), 200)
            ecr.delete_repository_policy(repositoryName=repo)
            self.assertEqual(self.anonymous_pull(other, repo, image), 401,
                             "a policy deleted through one replica, the next request to the "
                             "other")
            self.assertEqual(self.anonymous_pull(setter, repo, image), 401)


if __name__ == "__main__":
    unittest.main(verbosity=2)
