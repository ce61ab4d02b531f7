"""Console sessions shared by the replicas (docs/console.md, "Sessions"; docs/scale-out.md):
two `berth serve` replicas on one PostgreSQL and one Swift bucket, haproxy in front
balancing every request on its own (cluster.py). A session started on one replica is
known to the other and to every request through the balancer, its CSRF token included
(a state-changing ECR call on the other replica); a sign-out on one replica ends it on the
other at once; deleting the session's key on one replica ends its sessions on the other
(polled, as it would be for a key); a replica restarted keeps them; PostgreSQL stopped,
a session is answered 503 (not signed out) and works again once it is back. PostgreSQL
holds only the SHA-256 of each token."""
# berth-suite: cluster

import hashlib
import json
import time
import unittest

import berth_harness as h
import auth_helpers as a
from cluster import SERVED_BY, Cluster, ClusterTestCase

TARGET = "AmazonEC2ContainerRegistry_V20150921."
WAIT = 30  # generous: a key's deletion must show within a second; this only bounds a hang


class Console:
    """A browser's console session (its cookie and CSRF token), used through any registry
    client: a replica's or the balancer's."""

    def __init__(self):
        self.cookie = self.csrf = None

    def sign_in(self, reg, akid, secret):
        r = reg.request("POST", "/ui/api/session", headers={"Content-Type": "application/json"},
                        body=json.dumps({"accessKeyId": akid,
                                         "secretAccessKey": secret}).encode())
        assert r.status == 200, r.describe()
        self.cookie = (r.header("Set-Cookie") or "").split(";")[0]
        self.csrf = r.json()["csrfToken"]
        return r

    def session(self, reg):
        r = reg.request("GET", "/ui/api/session", headers={"Cookie": self.cookie})
        assert r.status == 200, r.describe()
        return r.json(), r.header(SERVED_BY)

    def ecr(self, reg, op, body=None, csrf=True):
        hdrs = {"Cookie": self.cookie, "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": TARGET + op}
        if csrf:
            hdrs["X-CSRF-Token"] = self.csrf
        r = reg.request("POST", "/", headers=hdrs, body=json.dumps(body or {}).encode())
        return r.status, r.json() if r.body else {}

    def sign_out(self, reg):
        r = reg.request("DELETE", "/ui/api/session",
                        headers={"Cookie": self.cookie, "X-CSRF-Token": self.csrf})
        assert r.status == 200, r.describe()


def error_type(doc):
    return str(doc.get("__type", "")).split("#")[-1]


@unittest.skipUnless(h.IS_BERTH, "berth's replicas")
class ConsoleSessionsTest(ClusterTestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(replicas=2, balancer=True)
        cls.addClassCleanup(cls.cluster.stop)
        cls.cluster.start()
        cls.a, cls.b = cls.cluster.replicas
        cls.admin = a.keys_create(cls.a, "sessions-admin")

    def test_one_session_on_every_replica(self):
        ra, rb, lb = self.a.registry(), self.b.registry(), self.cluster.balancer.registry()
        cl = Console()
        cl.sign_in(ra, *self.admin)
        # PostgreSQL holds the token's hash, never the token
        token = cl.cookie.split("=", 1)[1]
        stored = self.cluster.psql("SELECT token_hash || ' ' || access_key_id "
                                   "FROM console_sessions")
        self.assertIn("%s %s" % (hashlib.sha256(token.encode()).hexdigest(), self.admin[0]),
                      stored)
        self.assertNotIn(token, stored)

        # on the other replica: signed in, and a state-changing call with the CSRF token
        doc, _ = cl.session(rb)
        self.assertTrue(doc["signedIn"], doc)
        self.assertEqual(doc["accessKeyId"], self.admin[0])
        self.assertEqual(doc["csrfToken"], cl.csrf)
        status, out = cl.ecr(rb, "CreateRepository", {"repositoryName": "sessions/on-b"})
        self.assertEqual(status, 200, out)
        status, out = cl.ecr(rb, "DeleteRepository", {"repositoryName": "sessions/on-b"},
                             csrf=False)
        self.assertEqual(error_type(out), "AccessDeniedException", out)  # CSRF still checked
        # through the balancer: every request signed in, whichever replica answers
        served = set()
        for _ in range(6):
            doc, by = cl.session(lb)
            self.assertTrue(doc["signedIn"], (doc, by))
            served.add(by)
        self.assertEqual(len(served), 2, served)
        status, out = cl.ecr(lb, "DescribeRepositories", {"repositoryNames": ["sessions/on-b"]})
        self.assertEqual(status, 200, out)

        # signed out on B: refused on A at once (no cache), and through the balancer
        cl.sign_out(rb)
        doc, _ = cl.session(ra)
        self.assertFalse(doc["signedIn"], doc)
        status, out = cl.ecr(ra, "DescribeRepositories")
        self.assertEqual(error_type(out), "UnrecognizedClientException", out)
        r = ra.request("GET", "/v2/_catalog", headers={"Cookie": cl.cookie})
        self.assertEqual(r.status, 403, r.describe())
        for _ in range(4):
            doc, by = cl.session(lb)
            self.assertFalse(doc["signedIn"], (doc, by))
        self.assertEqual(self.cluster.psql(
            "SELECT count(*) FROM console_sessions WHERE token_hash = '%s'"
            % hashlib.sha256(token.encode()).hexdigest()).strip(), "0")

    def test_key_deleted_on_one_replica_ends_its_sessions_on_the_other(self):
        key = a.keys_create(self.a, "sessions-doomed")
        ra, rb = self.a.registry(), self.b.registry()
        cl, kept = Console(), Console()
        cl.sign_in(ra, *key)
        kept.sign_in(ra, *self.admin)
        self.assertTrue(cl.session(rb)[0]["signedIn"])
        a.keys_delete(self.b, key[0])
        deleted = time.monotonic()
        while True:
            doc, _ = cl.session(ra)
            if not doc["signedIn"]:
                break
            self.assertLess(time.monotonic() - deleted, WAIT, "still signed in on A")
            time.sleep(0.05)
        status, out = cl.ecr(ra, "DescribeRepositories")
        self.assertEqual(error_type(out), "UnrecognizedClientException", out)
        self.assertEqual(self.cluster.psql("SELECT count(*) FROM console_sessions "
                                           "WHERE access_key_id = '%s'" % key[0]).strip(), "0")
        # another key's session is untouched
        self.assertTrue(kept.session(ra)[0]["signedIn"])
        self.assertTrue(kept.session(rb)[0]["signedIn"])

    def test_restarted_replica_keeps_sessions(self):
        cl = Console()
        cl.sign_in(self.b.registry(), *self.admin)
        self.a.stop()
        self.a.start(reuse_port=True)
        self.cluster.balancer.wait_status("r0", "UP")
        doc, _ = cl.session(self.a.registry())
        self.assertTrue(doc["signedIn"], doc)
        status, out = cl.ecr(self.a.registry(), "DescribeRepositories")
        self.assertEqual(status, 200, out)

    def test_unavailable_database_is_not_a_sign_out(self):
        """PostgreSQL stopped: a session cannot be read, so it is answered 503 (never
        signed out); back, the same session works on both replicas, no berth restart."""
        cl = Console()
        cl.sign_in(self.a.registry(), *self.admin)
        self.cluster.pg.halt()
        try:
            for r in (self.a, self.b):
                resp = r.registry().request("GET", "/ui/api/session",
                                            headers={"Cookie": cl.cookie})
                self.assertEqual(resp.status, 503, resp.describe())
                status, out = cl.ecr(r.registry(), "DescribeRepositories")
                self.assertGreaterEqual(status, 500, out)
                self.assertNotIn("UnrecognizedClient", out.get("__type", ""))
        finally:
            self.cluster.pg.resume()
        for r in (self.a, self.b):
            h.wait_until(lambda: r.registry().request(
                "GET", "/ui/api/session", headers={"Cookie": cl.cookie}).status == 200, WAIT,
                what="the replica to read sessions again")
            self.assertTrue(cl.session(r.registry())[0]["signedIn"])
            status, out = cl.ecr(r.registry(), "DescribeRepositories")
            self.assertEqual(status, 200, out)


if __name__ == "__main__":
    unittest.main()
