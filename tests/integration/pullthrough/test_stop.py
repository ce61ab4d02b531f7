"""SIGTERM while a pull-through blob is streamed to a client and its bytes have stopped
coming from the upstream: the client's connection sleeps (suspended) until more arrive, and
libmicrohttpd 0.9.75 aborts the process if it is stopped with a connection suspended. At the
end of the drain (http.drain_seconds) berth wakes such bodies, ends them (the client sees a
cut body, never a complete one with wrong bytes) and exits 0.
"""

import http.client
import unittest

import berth_harness as h
import test_cache as tc


class StopDuringStreamTest(tc.CacheTestCase):
    server_config = {"storage": {"auto_create_repositories": False},
                     "http": {"drain_seconds": 1}}

    def setUp(self):
        pass  # the server stops in the test: no rules to drop after it

    def test_sigterm_while_a_blob_waits_for_the_upstream(self):
        img = h.build_image(layer_count=1, layer_size=4 << 20, compress=False)
        layer = img.layer_digests[0]
        data = img.blobs[layer]
        fake = tc.FakeUpstream(img)
        self.addCleanup(fake.close)
        self.addCleanup(fake.release.set)
        fake.hold_blob = layer  # half of it, then nothing until released
        self.rule("fake", "http://127.0.0.1:%d" % fake.port)
        self.assertStatus(self.reg.get_manifest("fake/app", "v1"), 200)
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
        self.addCleanup(conn.close)
        conn.request("GET", "/v2/fake/app/blobs/" + layer)
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.read(1 << 20), data[:1 << 20])
        self.assertEqual(self.server.stop(timeout=60), 0)   # exits 0: no abort
        log = self.server.log_text()
        self.assertIn("event=streams_cut count=1", log)
        self.assertNotIn("suspended connections", log)
        with self.assertRaises(http.client.IncompleteRead):
            resp.read()


if __name__ == "__main__":
    unittest.main()
