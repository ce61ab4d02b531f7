"""Safety under load: pushers keep pushing images that share layers with images being
expired, a puller keeps pulling, while lifecycle enforcement and garbage collection run every
second with a zero grace window. Afterwards every image that was pushed and not expired pulls
back byte-identical, nothing vanished that the lifecycle did not expire, and every blob file on
disk is referenced (the grace window being zero)."""

import os
import random
import re
import threading
import time
import unittest

import berth_harness as h
import lifegc_helpers as lg

DURATION = float(os.environ.get("BERTH_LOAD_SECONDS", "20"))
PUSHERS = 4
KEEP = 3  # newest tagged images kept by the policy

POLICY = lg.policy(
    {"rulePriority": 1, "description": "keep the newest tagged builds",
     "selection": {"tagStatus": "tagged", "tagPrefixList": ["build-"],
                   "countType": "imageCountMoreThan", "countNumber": KEEP}},
    {"rulePriority": 2, "description": "and one untagged image",
     "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan",
                   "countNumber": 1}})


class LoadTest(unittest.TestCase):
    def test_push_pull_expire_collect(self):
        server = h.Server(config={
            "lifecycle": {"interval_seconds": 1, "new_policy_delay_seconds": 0},
            "gc": {"interval_seconds": 1, "grace_seconds": 0},
            "storage": {"fsync": False},
            "log": {"access": False},
        })
        self.addCleanup(server.cleanup)
        server.start()
        repo = "itest/load"
        reg = server.registry()
        shared = [h.random_bytes(8192) for _ in range(4)]
        lg.push_image_retry(reg, repo, lg.distinct_image(shared[0]), tag="build-seed")
        lg.aws_ok(self, server, "put-lifecycle-policy", "--repository-name", repo,
                  "--lifecycle-policy-text", POLICY)

        lock = threading.Lock()
        pushed = {}  # digest -> Image
        violations = []
        errors = []
        latencies = []
        pulls = [0]
        stop = threading.Event()

        def check_image(client, img):
            """If the image is there, all its blobs must be; a blob may only be missing when
            the manifest is gone too (expired in between)."""
            resp = client.get(client.manifest_path(repo, img.digest))
            if resp.status == 404:
                return
            if resp.status != 200 or resp.body != img.manifest:
                violations.append("manifest %s: %s" % (img.digest, resp.describe()))
                return
            for digest, data in img.blobs.items():
                b = client.get_blob(repo, digest)
                if b.status == 200 and b.body == data:
                    continue
                if client.head(client.manifest_path(repo, img.digest)).status == 200:
                    violations.append("image %s present but blob %s -> %d" %
                                      (img.digest, digest, b.status))

        def pusher(n):
            client = server.registry()
            rnd = random.Random(n)
            i = 0
            try:
                while not stop.is_set():
                    layers = rnd.sample(shared, 2)
                    img = lg.distinct_image(layers[0], layer_size=1024)
                    obj = dict(img.obj)
                    obj["layers"] = obj["layers"] + [
                        h.blob_descriptor(h.MT_OCI_LAYER_GZIP, layers[1])]
                    blobs = dict(img.blobs)
                    blobs[h.digest_of(layers[1])] = layers[1]
                    img = h.Image(obj, blobs, img.media_type)
                    tag = None if i % 4 == 3 else "build-%d-%d" % (n, i)
                    t0 = time.monotonic()
                    lg.push_image_retry(client, repo, img, tag=tag, skip_existing=True)
                    with lock:
                        latencies.append(time.monotonic() - t0)
                        pushed[img.digest] = img
                    check_image(client, img)
                    i += 1
            except Exception as exc:  # reported by the main thread
                errors.append("pusher %d: %r" % (n, exc))

        def puller():
            client = server.registry()
            try:
                while not stop.is_set():
                    with lock:
                        recent = list(pushed.values())[-8:]
                    for img in recent:
                        check_image(client, img)
                        pulls[0] += 1
            except Exception as exc:
                errors.append("puller: %r" % exc)

        threads = [threading.Thread(target=pusher, args=(n,)) for n in range(PUSHERS)]
        threads.append(threading.Thread(target=puller))
        for t in threads:
            t.start()
        time.sleep(DURATION)
        stop.set()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(violations, [])
        log = server.log_text()
        expired_during = len(re.findall(r"event=lifecycle_expired", log))
        scale = DURATION / 20.0  # the thresholds below are for the default 20 s
        self.assertGreater(len(pushed), 20 * scale, "too few pushes to mean anything")
        self.assertGreater(expired_during, 10 * scale, "the lifecycle should have expired images")
        self.assertGreater(len(re.findall(r"event=gc_pass dry_run=0 ok=1", log)), 5 * scale)

        # settle: the policy leaves KEEP tagged images and one untagged one
        everything = list(pushed)
        h.wait_until(lambda: len(lg.image_digests(server, reg, repo, everything)) <= KEEP + 1,
                     30, interval=0.2, what="the lifecycle to catch up")
        present = lg.image_digests(server, reg, repo, everything)
        log = server.log_text()
        expired = set(re.findall(r"event=lifecycle_expired repo=%s digest=(\S+)" % repo, log))
        # nothing vanished that the lifecycle did not expire
        self.assertEqual(set(everything) - present - expired, set())
        # every image still there pulls back byte-identical
        for digest in present:
            img = pushed[digest]
            self.assertEqual(reg.get_manifest(repo, digest).body, img.manifest)
            for d, data in img.blobs.items():
                self.assertEqual(reg.get_blob(repo, d).body, data, "blob %s" % d)

        # with a zero grace window every blob file ends up referenced
        def files_all_referenced():
            files = set(lg.blob_files(server.root))
            return files and files <= lg.referenced_digests(server.root)
        h.wait_until(files_all_referenced, 30, interval=0.2,
                     what="GC to remove every unreferenced blob")
        referenced = lg.referenced_digests(server.root)
        files = set(lg.blob_files(server.root))
        self.assertEqual(referenced - files, set(), "referenced blobs without a file")
        self.assertEqual(lg.trash_files(server.root), [])
        server.stop()
        self.assertEqual(lg.integrity_check(server.root), "ok")
        lat = sorted(latencies)
        print("\nload: %d images pushed (p50 %.0f ms, max %.0f ms; %d manifest PUTs refused "
              "because a layer was collected meanwhile, then pushed again), %d pulls checked, "
              "%d images expired during the run" % (
                  len(pushed), 1000 * lat[len(lat) // 2], 1000 * lat[-1], lg.RETRIES["count"],
                  pulls[0], expired_during))


if __name__ == "__main__":
    h.main()
