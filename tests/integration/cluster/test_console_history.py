# berth-python: modern
"""The console's registry page over replicas (docs/scale-out.md): two `berth serve`
replicas sharing PostgreSQL and S3 (cluster.py). The activity history sums what both
replicas served (each adds its own counters' growth), in all and by API, and a garbage
collection pass asked for on one replica shows on the other's page, named by the replica
that ran it: its replica_name, here "edge/berth:5000" and "core/berth:5000" (what two
containers behind NAT, same host name and port, might be called), else host:port."""
# berth-suite: cluster

import json
import unittest

import berth_harness as h
import clients as c
import auth_helpers as a
from cluster import Cluster, ClusterTestCase

WAIT = 90
# the replicas' configured names: alike but for the key
NAMES = ("edge/berth:5000", "core/berth:5000")


class ConsoleClient:
    """A console session signed in on one replica (each replica signs in its own here;
    sessions are shared: test_console_sessions.py)."""

    def __init__(self, reg):
        self.reg = reg
        self.cookie = self.csrf = None

    def sign_in(self, akid, secret):
        r = self.reg.request("POST", "/ui/api/session",
                             headers={"Content-Type": "application/json"},
                             body=json.dumps({"accessKeyId": akid,
                                              "secretAccessKey": secret}).encode())
        if r.status != 200:
            raise AssertionError("sign-in: %s" % r.describe())
        self.cookie = (r.header("Set-Cookie") or "").split(";")[0]
        self.csrf = r.json()["csrfToken"]

    def headers(self):
        return {"Cookie": self.cookie, "X-CSRF-Token": self.csrf}


def registry(cl):
    r = cl.reg.request("GET", "/ui/api/registry", headers=cl.headers())
    if r.status != 200:
        raise AssertionError("GET /ui/api/registry: %s" % r.describe())
    return r.json()


def bytes_in(doc):
    hist = doc["history"]
    i = hist["columns"].index("bytesIn")
    return sum(b[i] for b in hist["minutes"]["buckets"])


def oci_in(doc, view):
    """What the OCI API received over the history's view, by the per-API rows."""
    return sum(r["bytesIn"] for r in doc["history"][view]["apis"] if r["api"] == "oci")


@unittest.skipUnless(h.IS_BERTH, "berth's replicas")
class ConsoleHistoryTest(ClusterTestCase):
    @classmethod
    def setUpClass(cls):
        c.require_modern()
        cls.cluster = Cluster(replicas=2, config={
            "metrics": {"activity_sample_seconds": 1},
            "gc": {"interval_seconds": 3600, "grace_seconds": 0},
        }, replica_envs=[{"BERTH_REPLICA_NAME": n} for n in NAMES])
        cls.addClassCleanup(cls.cluster.stop)
        cls.cluster.start()
        cls.replicas = cls.cluster.replicas
        cls.admin = a.keys_create(cls.replicas[0], "history-admin")
        cls.consoles = []
        for r in cls.replicas:
            cl = ConsoleClient(r.registry())
            cl.sign_in(*cls.admin)
            cls.consoles.append(cl)

    def test_activity_summed_over_replicas(self):
        doc = registry(self.consoles[1])
        base = bytes_in(doc)
        base_oci = {v: oci_in(doc, v) for v in ("minutes", "hours")}
        sizes = 0
        for i, r in enumerate(self.replicas):
            img = h.build_image(layer_count=2, layer_size=100000 * (i + 1), compress=False)
            reg = a.AuthRegistry(r.base_url, a.basic(*self.admin))
            h.expect_status(reg.push_image("hist/r%d" % i, img, tag="v1"), 201)
            sizes += sum(len(b) for b in img.blobs.values())
        # every replica's pushes, on either replica's page
        for cl in self.consoles:
            h.wait_until(lambda: bytes_in(registry(cl)) >= base + sizes, WAIT, interval=0.2,
                         what="both replicas' pushes in the history")
            # and in the OCI API's row of the per-API breakdown, over both ranges
            for v in ("minutes", "hours"):
                h.wait_until(lambda: oci_in(registry(cl), v) >= base_oci[v] + sizes, WAIT,
                             interval=0.2, what="both replicas' pushes in the oci row (%s)" % v)

    def test_gc_history_shared(self):
        # a pass asked for on each replica, listed on the other's page, each named by
        # the replica that ran it (its replica_name)
        names = set()
        for asked, other in ((0, 1), (1, 0)):
            before = registry(self.consoles[other])["gc"]["runs"]
            r = self.consoles[asked].reg.request("POST", "/ui/api/gc",
                                                 headers=self.consoles[asked].headers())
            self.assertEqual(r.status, 202, r.describe())

            def recorded():
                runs = registry(self.consoles[other])["gc"]["runs"]
                new = [x for x in runs if x not in before and x["trigger"] == "requested"]
                return new[0] if new else None
            run = h.wait_until(recorded, WAIT, interval=0.2, what="the pass on the other replica")
            self.assertEqual(run["result"], "ok", json.dumps(run))
            self.assertEqual(run["node"], NAMES[asked])
            names.add(run["node"])
            # and each replica's page says which replica it is
            self.assertEqual(registry(self.consoles[asked])["config"]["replicaName"],
                             NAMES[asked])
        self.assertEqual(len(names), 2)


if __name__ == "__main__":
    unittest.main()
