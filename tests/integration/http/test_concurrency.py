"""Parallel pushes from threads: different images, the same blob (dedupe), one repository."""

import threading

import berth_harness as h

THREADS = 16
MODES = ("post_put", "chunked", "stream", "chunked_put_last")


def run_parallel(count, work):
    """Run work(i) in count threads released together; return {i: exception or None}."""
    barrier = threading.Barrier(count)
    errors = {}

    def body(i):
        try:
            barrier.wait(30)
            work(i)
            errors[i] = None
        except BaseException as exc:  # reported by the caller
            errors[i] = exc

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return errors


class ConcurrencyTest(h.ServerTestCase):
    def assertAllOk(self, errors):
        failed = {i: e for i, e in errors.items() if e is not None}
        self.assertEqual(len(errors), THREADS, "some threads did not finish")
        self.assertFalse(failed, "\n".join("thread %d: %r" % kv for kv in failed.items()))

    def test_different_images_in_parallel(self):
        shared = h.make_layer({"shared/base.bin": h.random_bytes(256 * 1024)})[0]
        images = []
        for i in range(THREADS):
            img = h.build_image(layer_count=2, layer_size=64 * 1024)
            obj = dict(img.obj)
            obj["layers"] = [h.blob_descriptor(h.MT_OCI_LAYER_GZIP, shared)] + obj["layers"]
            blobs = dict(img.blobs)
            blobs[h.digest_of(shared)] = shared
            images.append(h.Image(obj, blobs))
        repos = ["itest/conc/image-%02d" % i for i in range(THREADS)]

        def push(i):
            reg = self.server.registry(keep_alive=True)
            try:
                resp = reg.push_image(repos[i], images[i], tag="v1", mode=MODES[i % len(MODES)])
                h.expect_status(resp, 201)
            finally:
                reg.close()

        self.assertAllOk(run_parallel(THREADS, push))
        for repo, img in zip(repos, images):
            self.assertManifest(repo, "v1", img)
            for data in img.blobs.values():
                self.assertBlob(repo, data)

    def test_same_blob_same_repository(self):
        repo = self.repo()
        data = h.random_bytes(2 * 1024 * 1024 + 7)

        def push(i):
            reg = self.server.registry()
            resp = reg.push_blob(repo, data, mode=MODES[i % len(MODES)],
                                 chunk_size=512 * 1024)
            h.expect_status(resp, 201)
            if resp.header("Docker-Content-Digest") != h.digest_of(data):
                raise AssertionError(resp.describe())

        self.assertAllOk(run_parallel(THREADS, push))
        self.assertBlob(repo, data)

    def test_same_blob_many_repositories(self):
        data = h.random_bytes(1024 * 1024)
        repos = ["itest/conc/dedupe-%02d" % i for i in range(THREADS)]

        def push(i):
            h.expect_status(self.server.registry().push_blob(repos[i], data,
                                                             mode=MODES[i % len(MODES)]), 201)

        self.assertAllOk(run_parallel(THREADS, push))
        for repo in repos:
            self.assertBlob(repo, data)
        # Unlinking it from one repository leaves the others intact.
        self.assertStatus(self.reg.delete_blob(repos[0], h.digest_of(data)), 202)
        for repo in repos[1:]:
            self.assertBlob(repo, data)

    def test_tags_in_one_repository(self):
        repo = self.repo()
        img = h.build_image(layer_count=1)
        self.push_image_ok(repo, img, tag="base")
        tags = ["t%02d" % i for i in range(THREADS)]

        def tag(i):
            reg = self.server.registry()
            other = h.build_image(layer_count=1)
            h.expect_status(reg.push_image(repo, other, tag=tags[i]), 201)
            h.expect_status(reg.put_manifest(repo, tags[i] + "-same", img.manifest,
                                             img.media_type), 201)

        self.assertAllOk(run_parallel(THREADS, tag))
        listed = self.reg.tags(repo).json()["tags"]
        want = ["base"] + tags + [t + "-same" for t in tags]
        self.assertEqual(sorted(listed), sorted(want))
        for t in tags:
            self.assertManifest(repo, t + "-same", img)

    def test_moving_one_tag(self):
        repo = self.repo()
        images = [h.build_image(layer_count=1) for _ in range(THREADS)]
        for img in images:
            for data in img.blobs.values():
                self.reg.ensure_blob(repo, data)

        def move(i):
            h.expect_status(self.server.registry().put_manifest(
                repo, "latest", images[i].manifest, images[i].media_type), 201)

        self.assertAllOk(run_parallel(THREADS, move))
        resp = self.reg.get_manifest(repo, "latest", accept=h.MT_OCI_MANIFEST)
        self.assertStatus(resp, 200)
        self.assertIn(resp.body, [img.manifest for img in images])
        self.assertEqual(self.reg.tags(repo).json()["tags"], ["latest"])
        for img in images:
            self.assertManifest(repo, img.digest, img)


if __name__ == "__main__":
    h.main()
