"""berth import of docker save archives: the classic layout (manifest.json, <id>/layer.tar,
<hex>.json) becomes an OCI image whose layers and config keep their digests, tagged with
its RepoTags, the same manifest on every import; tampered layers and configs are refused
with nothing published; Docker 25's archives (an OCI layout with io.containerd.image.name)
import through their index.json."""

import hashlib
import io
import json
import os
import secrets
import shutil
import tarfile
import tempfile
import unittest

import berth_harness as h
import lifegc_helpers as lg

MT_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def docker_save(path, repo_tags, layer_count=2, tamper=None):
    """Write a classic docker save archive of one image; returns (config bytes, [layer tar
    bytes], {layer digest: entry name}). tamper: 'layer' flips a byte of the last layer
    after the config recorded its diff_id, 'config' one of the config."""
    layers = [h.make_layer({"f%d.bin" % i: h.random_bytes(5000),
                            "id.txt": secrets.token_hex(8).encode()}, compress=False)[0]
              for i in range(layer_count)]
    config = h.canonical_json({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer) for layer in layers]},
    })
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    names = {}
    entries = []
    for layer in layers:
        layer_id = secrets.token_hex(32)
        names[sha256(layer)] = layer_id + "/layer.tar"
        entries += [(layer_id + "/VERSION", b"1.0"), (layer_id + "/json", b"{}"),
                    (layer_id + "/layer.tar", layer)]
    if tamper == "layer":
        last = bytearray(layers[-1])
        last[100] ^= 0xFF
        entries[-1] = (entries[-1][0], bytes(last))
    if tamper == "config":
        config = config.replace(b'"amd64"', b'"arm64"')
    entries.append((config_name, config))
    manifest = [{"Config": config_name, "RepoTags": repo_tags,
                 "Layers": [names[sha256(layer)] for layer in layers]}]
    entries.append(("manifest.json", json.dumps(manifest).encode()))
    entries.append(("repositories", b"{}"))
    with tarfile.open(path, "w") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return config, layers, names


class DockerSaveTest(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="berth-docker-save-")
        self.addCleanup(shutil.rmtree, self.work, True)
        self.dest = h.Server()
        self.addCleanup(self.dest.cleanup)

    def berth_import(self, *args):
        return h.run_berth(["import"] + list(args), server=self.dest, timeout=120)

    def test_classic_archive(self):
        path = os.path.join(self.work, "tool.tar")
        config, layers, _ = docker_save(path, ["example.com/team/tool:1.0", "team/tool:latest"])
        rc, out = self.berth_import(path)
        self.assertEqual(rc, 0, out)
        self.assertIn("1 images in 1 repositories", out)
        self.assertIn("2 tags set", out)
        rc, out = self.berth_import(path)
        self.assertEqual(rc, 0, out)
        self.assertIn("nothing new", out)
        self.dest.start()
        reg = self.dest.registry()
        resp = h.expect_status(reg.get_manifest("team/tool", "1.0", accept=h.MT_OCI_MANIFEST), 200)
        latest = h.expect_status(reg.get_manifest("team/tool", "latest",
                                                  accept=h.MT_OCI_MANIFEST), 200)
        self.assertEqual(resp.header("Docker-Content-Digest"),
                         latest.header("Docker-Content-Digest"))
        manifest = resp.json()
        self.assertEqual(manifest["mediaType"], h.MT_OCI_MANIFEST)
        self.assertEqual(manifest["config"]["digest"], sha256(config))
        self.assertEqual([layer["digest"] for layer in manifest["layers"]],
                         [sha256(layer) for layer in layers])
        self.assertEqual({layer["mediaType"] for layer in manifest["layers"]}, {MT_LAYER_TAR})
        for layer in layers:
            self.assertEqual(h.expect_status(reg.get_blob("team/tool", sha256(layer)), 200).body,
                             layer)
        self.assertEqual(h.expect_status(reg.get_blob("team/tool", sha256(config)), 200).body,
                         config)

    def test_untagged_needs_a_repository(self):
        path = os.path.join(self.work, "anon.tar")
        docker_save(path, None)
        rc, out = self.berth_import(path)
        self.assertEqual(rc, 1, out)
        self.assertIn("--repo", out)
        rc, out = self.berth_import("--repo", "anon/image", path)
        self.assertEqual(rc, 0, out)
        self.assertIn("1 manifests", out)

    def test_tampered_archives_are_refused(self):
        bad_layer = os.path.join(self.work, "bad-layer.tar")
        _, layers, names = docker_save(bad_layer, ["team/tool:1.0"], tamper="layer")
        rc, out = self.berth_import(bad_layer)
        self.assertEqual(rc, 1, out)
        self.assertIn(names[sha256(layers[-1])] + ": the content does not match the config's "
                      "diff_id", out)
        bad_config = os.path.join(self.work, "bad-config.tar")
        docker_save(bad_config, ["team/tool:1.0"], tamper="config")
        rc, out = self.berth_import(bad_config)
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, r"[0-9a-f]{64}\.json: the content does not match its digest")
        self.assertEqual(lg.blob_files(self.dest.root), {})
        self.dest.start()
        self.assertEqual(h.expect_status(self.dest.registry().catalog(), 200).json()
                         ["repositories"], [])

    def test_a_layer_name_twice_with_other_bytes_is_refused(self):
        # the first copy won (tar extraction keeps the last): which is meant is a guess
        path = os.path.join(self.work, "dup.tar")
        _, layers, names = docker_save(path, ["team/tool:1.0"])
        with tarfile.open(path, "a") as tar:
            data = h.make_layer({"other.bin": b"x" * 100}, compress=False)[0]
            info = tarfile.TarInfo(names[sha256(layers[0])])
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        rc, out = self.berth_import(path)
        self.assertEqual(rc, 1, out)
        self.assertIn(names[sha256(layers[0])] + ": more than one in the bundle, with other "
                      "bytes", out)
        self.assertEqual(lg.blob_files(self.dest.root), {})

    def test_docker_25_archive_uses_its_oci_layout(self):
        image = h.build_image(layer_count=1)
        layout = os.path.join(self.work, "layout")
        h.write_oci_layout(layout, {"2.0": image})
        index_path = os.path.join(layout, "index.json")
        with open(index_path) as f:
            index = json.load(f)
        index["manifests"][0]["annotations"]["io.containerd.image.name"] = \
            "docker.io/team/svc:2.0"
        with open(index_path, "w") as f:
            json.dump(index, f)
        with open(os.path.join(layout, "manifest.json"), "w") as f:
            json.dump([{"Config": "blobs/sha256/" + image.config_digest.split(":")[1],
                        "RepoTags": ["team/svc:2.0"],
                        "Layers": ["blobs/sha256/" + d.split(":")[1]
                                   for d in image.layer_digests]}], f)
        path = os.path.join(self.work, "svc.tar")
        with tarfile.open(path, "w") as tar:
            for name in sorted(os.listdir(layout)):
                tar.add(os.path.join(layout, name), arcname=name)
        rc, out = self.berth_import(path)
        self.assertEqual(rc, 0, out)
        self.dest.start()
        resp = h.expect_status(self.dest.registry().get_manifest("team/svc", "2.0",
                                                                 accept=h.MT_OCI_MANIFEST), 200)
        self.assertEqual(resp.header("Docker-Content-Digest"), image.digest)


if __name__ == "__main__":
    unittest.main()
