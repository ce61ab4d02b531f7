"""A slow upstream (not a stopped one, which test_cache.py covers): the upstream berth sits
behind a TCP relay that is then held (connections accepted, nothing forwarded). Once the
tag's TTL has passed, the revalidation gives up after pull_through.timeout_seconds and the
cached tag is served, with its log line. Released, the upstream is asked again."""

import time

import clients as c  # noqa: F401  first: it cleans the environment botocore reads

import berth_harness as h
import tcp_relay
import test_cache as tc

TIMEOUT = 1  # pull_through.timeout_seconds


class SlowUpstreamTest(tc.CacheTestCase):
    server_config = {"storage": {"auto_create_repositories": False},
                     "pull_through": {"tag_ttl_seconds": 1, "timeout_seconds": TIMEOUT}}

    def test_stale_tag_served_when_the_upstream_does_not_answer(self):
        up = tc.start_upstream(self)
        img = h.build_image(layer_count=1)
        up.registry().push_image("lib/app", img, tag="v1")
        relay = tcp_relay.TcpRelay("127.0.0.1", up.port).start()
        self.addCleanup(relay.stop)
        self.addCleanup(relay.release)
        self.rule("slow", relay.endpoint)
        self.pull("slow/lib/app", "v1")
        time.sleep(1.2)  # the TTL (1 s) passes
        relay.hold()
        started = time.monotonic()
        resp = self.pull("slow/lib/app", "v1")
        waited = time.monotonic() - started
        self.assertEqual(resp.header("Docker-Content-Digest"), img.digest)
        self.assertGreaterEqual(waited, TIMEOUT * 0.9)  # it did ask the upstream
        self.assertIn("event=pull_through_stale repo=slow/lib/app tag=v1",
                      self.server.log_text())
        # released: a new tag upstream is seen again
        relay.release()
        new = h.build_image(layer_count=1)
        up.registry().push_image("lib/app", new, tag="v1")
        h.wait_until(lambda: self.reg.get_manifest("slow/lib/app", "v1").header(
            "Docker-Content-Digest") == new.digest, 30, interval=0.3, what="the new v1")


if __name__ == "__main__":
    h.main()
