"""berth import of a Hauler store archive (`hauler store save` -> haul.tar.zst).

Hauler (hauler.dev, pkg/store/store.go writeImage/writeIndex, pkg/content/oci.go
SaveIndex) keeps an OCI image layout whose index.json entries carry three annotations:
`org.opencontainers.image.ref.name` = the reference without its registry
("library/app:v1"), `io.containerd.image.name` = the full name ("docker.io/library/app:v1")
and `kind` (dev.cosignproject.cosign/image, .../imageIndex, .../sigs, .../atts, .../sboms,
.../referrers/<hex>). Signatures, attestations, SBOMs and OCI referrers are saved under
the ref.name of the image they belong to (writeImage(ctx, ref, img, kind, "")), and
SaveIndex sorts images before them. `hauler store save` packs the layout's files as a
zstd tar. No Hauler binary here (not in Debian): the archive is written the way Hauler
writes it.

An import must put the tags on the images, not on their signatures or referrers, which
are kept by digest (a referrer found through its subject, a cosign .sig by its
sha256-<hex>.sig tag, as cosign names it)."""

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import unittest

import berth_harness as h
import bundle_helpers as bh

KIND = "kind"
COSIGN = "dev.cosignproject.cosign/"


def hauler_entry(img, ref, kind):
    return img.descriptor(annotations={
        KIND: COSIGN + kind,
        "org.opencontainers.image.ref.name": ref,
        "io.containerd.image.name": "docker.io/" + ref,
    })


class HaulerTest(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="berth-hauler-")
        self.addCleanup(shutil.rmtree, self.work, True)
        self.dest = h.Server()
        self.addCleanup(self.dest.cleanup)

    def write_haul(self, images, sig):
        store = os.path.join(self.work, "store")
        h.write_oci_layout(store, {"v1": images["v1"], "multi": images["multi"],
                                   "sbom": images["sbom"], "sig": sig})
        v1, sbom = images["v1"], images["sbom"]
        manifests = [
            hauler_entry(v1, "library/app:v1", "image"),
            hauler_entry(images["multi"], "library/app:multi", "imageIndex"),
            hauler_entry(sig, "library/app:v1", "sigs"),
            hauler_entry(sbom, "library/app:v1", "referrers/" + sbom.digest.split(":")[1]),
        ]
        with open(os.path.join(store, "index.json"), "w") as f:
            json.dump({"schemaVersion": 2, "manifests": manifests}, f)
        tar_path = os.path.join(self.work, "haul.tar")
        with tarfile.open(tar_path, "w") as tar:
            for name in sorted(os.listdir(store)):
                tar.add(os.path.join(store, name), arcname=name)
        subprocess.run(["zstd", "-q", "--rm", tar_path, "-o", tar_path + ".zst"], check=True)
        return tar_path + ".zst"

    def test_haul_tar_zst_tags_the_images_not_their_signatures(self):
        images = bh.sample_images()
        v1 = images["v1"]
        # a cosign signature: an image manifest with no subject, found by its tag
        sig = h.build_image(layer_count=1, layer_size=300)
        path = self.write_haul(images, sig)
        rc, out = h.run_berth(["import", path], server=self.dest, timeout=120)
        self.assertEqual(rc, 0, out)
        self.dest.start()
        reg = self.dest.registry()
        repo = "library/app"
        for name in ("v1", "multi"):
            resp = h.expect_status(reg.get_manifest(repo, name,
                                                    accept=images[name].media_type), 200)
            self.assertEqual(resp.header("Docker-Content-Digest"), images[name].digest)
        sig_tag = v1.digest.replace(":", "-") + ".sig"
        resp = h.expect_status(reg.get_manifest(repo, sig_tag, accept=sig.media_type), 200)
        self.assertEqual(resp.header("Docker-Content-Digest"), sig.digest)
        refs = h.expect_status(reg.referrers(repo, v1.digest), 200).json()
        self.assertEqual([m["digest"] for m in refs["manifests"]], [images["sbom"].digest])
        tags = h.expect_status(reg.tags(repo), 200).json()["tags"]
        self.assertEqual(sorted(tags), sorted(["v1", "multi", sig_tag]))
        for digest, data in v1.blobs.items():
            self.assertEqual(h.expect_status(reg.get_blob(repo, digest), 200).body, data)
        # idempotent
        self.dest.stop()
        rc, out = h.run_berth(["import", path], server=self.dest, timeout=120)
        self.assertEqual(rc, 0, out)
        self.assertIn("nothing new", out)


if __name__ == "__main__":
    unittest.main()
