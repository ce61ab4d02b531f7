"""berth mirror: images pulled straight from registries (a berth with access keys over Basic,
a berth with bearer tokens, Debian's distribution 2.8.2) into a bundle with no server, from
a list file with docker config.json credentials; imported into a fresh berth with identical
digests; a multi-arch index filtered by --platform; referrers carried (the referrers API,
and the referrers tag schema where the registry has none); a tampered blob refused with
nothing left behind; a delta with --since; HTTPS with a private CA (--ca-file); a request that fails
with 503 or 429 before any byte is tried again."""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import auth_helpers as a
import berth_harness as h
import bundle_helpers as bh
import lifegc_helpers as lg
import ptc_helpers as p
import tls_helpers as t


def b64(text):
    return base64.b64encode(text.encode()).decode()


class FlakyProxy(bh.ForwardingProxy):
    """Forwards GETs to a registry on 127.0.0.1:port, but answers the first GET of every
    manifest and blob path with 503 (blobs) or 429 (manifests), as a registry under load
    or rate limiting does."""

    def __init__(self, port):
        self.failed = []
        seen = set()

        def fail_first(handler):
            path = handler.path
            if ("/blobs/" not in path and "/manifests/" not in path) or path in seen:
                return False
            seen.add(path)
            self.failed.append(path)
            handler.send_response(503 if "/blobs/" in path else 429)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return True
        super().__init__(port, fail_first)


class MirrorTest(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="berth-mirror-")
        self.addCleanup(shutil.rmtree, self.work, True)
        self.docker_config = os.path.join(self.work, "docker")
        os.makedirs(self.docker_config)
        self.write_auths({})

    def write_auths(self, auths):
        with open(os.path.join(self.docker_config, "config.json"), "w") as f:
            json.dump({"auths": auths}, f)

    def start(self, **kw):
        server = h.Server(**kw)
        self.addCleanup(server.cleanup)
        server.start()
        return server

    def mirror(self, *args, expect=0):
        rc, out = h.run_berth(["mirror", "--plain-http"] + [str(x) for x in args],
                              env={"DOCKER_CONFIG": self.docker_config}, timeout=120)
        self.assertEqual(rc, expect, out)
        return out

    def import_into(self, path, config=None, expect=0):
        dest = h.Server(config=config)
        self.addCleanup(dest.cleanup)
        rc, out = h.run_berth(["import", path], server=dest, timeout=120)
        self.assertEqual(rc, expect, out)
        return dest, out

    def assert_image(self, reg, repo, ref, image):
        resp = h.expect_status(reg.get_manifest(repo, ref, accept=image.media_type), 200)
        self.assertEqual(resp.header("Docker-Content-Digest"), image.digest)
        self.assertEqual(resp.body, image.manifest)
        for digest, data in image.blobs.items():
            self.assertEqual(h.expect_status(reg.get_blob(repo, digest), 200).body, data)

    def no_leftovers(self):
        self.assertEqual([n for n in os.listdir(self.work) if ".tmp-" in n], [])

    def test_from_berth_with_access_keys(self):
        src = self.start()
        images = bh.sample_images()
        bh.push_sample(src.registry(), "itest/app", images)
        akid, secret = a.keys_create(src, "puller")
        host = "127.0.0.1:%d" % src.port
        listing = os.path.join(self.work, "images.txt")
        with open(listing, "w") as f:
            f.write("# what site B runs\n%s/itest/app:v1\n\n  %s/itest/app:multi  \n"
                    % (host, host))
        out_path = os.path.join(self.work, "bundle.tar.zst")
        # no credentials: refused, nothing left
        out = self.mirror("--images", listing, "-o", out_path, expect=1)
        self.assertIn("401", out)
        self.assertFalse(os.path.exists(out_path))
        self.no_leftovers()
        self.write_auths({host: {"auth": b64("%s:%s" % (akid, secret))}})
        out = self.mirror("--images", listing, "-o", out_path)
        self.assertIn("mirror: [1/2] %s/itest/app:v1" % host, out)
        self.assertIn("mirror: [2/2] %s/itest/app:multi" % host, out)
        self.assertIn("mirror: 3 images", out)
        self.assertNotIn(secret, out)
        # the same bundle berth export writes from the store: the same blobs and entries
        exported = os.path.join(self.work, "export.tar")
        rc, text = h.run_berth(["export", "itest/app:v1", "itest/app:multi", "-o", exported],
                               server=src, timeout=120)
        self.assertEqual(rc, 0, text)
        mine, theirs = bh.read_bundle(out_path), bh.read_bundle(exported)
        bh.check_blobs(self, mine)
        self.assertEqual(set(mine), set(theirs))
        self.assertEqual(bh.index_entries(mine), bh.index_entries(theirs))
        src.stop()
        dest, out = self.import_into(out_path)
        self.assertIn("3 images in 1 repositories", out)
        dest.start()
        reg = dest.registry()
        self.assert_image(reg, "itest/app", "v1", images["v1"])
        self.assert_image(reg, "itest/app", "multi", images["multi"])
        for child in images["multi"].children:
            self.assert_image(reg, "itest/app", child.digest, child)
        refs = h.expect_status(reg.referrers("itest/app", images["v1"].digest), 200).json()
        self.assertEqual([m["digest"] for m in refs["manifests"]], [images["sbom"].digest])

    def test_bearer_token_registry_and_platform(self):
        src = self.start(config={"auth": {"scheme": "bearer"}})
        images = bh.sample_images()
        bh.push_sample(src.registry(), "team/app", images)
        multi = images["multi"]
        sig = h.build_artifact("application/vnd.example.signature.v1",
                               subject=multi.children[1].descriptor())
        h.expect_status(src.registry().push_image("team/app", sig), 201)
        akid, secret = a.keys_create(src, "puller", "pull")
        host = "127.0.0.1:%d" % src.port
        self.write_auths({"http://%s/v2/" % host: {"username": akid, "password": secret}})
        out_path = os.path.join(self.work, "arm.tar")
        out = self.mirror("%s/team/app:multi" % host, "-o", out_path,
                          "--platform", "linux/arm64")
        self.assertIn("storage.sparse_manifests", out)
        self.assertTrue(p.upstream_gets(src, "^/v2/token"))
        files = bh.read_bundle(out_path)
        present = {"sha256:" + n.split("/")[-1] for n in files if n.startswith("blobs/")}
        amd, arm = multi.children
        self.assertIn(multi.digest, present)  # the index, byte for byte
        self.assertLessEqual(bh.all_digests(arm) | {sig.digest}, present)
        self.assertEqual(set(amd.blobs) & present, set())
        self.assertNotIn(amd.digest, present)
        # a berth that refuses sparse indexes refuses it, naming the missing child
        _, out = self.import_into(out_path, expect=1)
        self.assertIn("%s: missing from the bundle" % ("blobs/sha256/" + h.digest_hex(amd.digest)),
                      out)
        dest, out = self.import_into(out_path, config={"storage": {"sparse_manifests": True}})
        dest.start()
        reg = dest.registry()
        self.assert_image(reg, "team/app", "multi", multi)
        self.assert_image(reg, "team/app", arm.digest, arm)
        h.expect_status(reg.get_manifest("team/app", amd.digest), 404)
        refs = h.expect_status(reg.referrers("team/app", arm.digest), 200).json()
        self.assertEqual([m["digest"] for m in refs["manifests"]], [sig.digest])
        # a platform no child has
        self.mirror("%s/team/app:multi" % host, "-o", out_path + "2", "--platform",
                    "linux/s390x", expect=1)
        self.assertFalse(os.path.exists(out_path + "2"))

    def test_credential_helpers(self):
        """credsStore and credHelpers: `docker-credential-NAME get` run as docker runs it (the
        registry on its standard input, JSON with Username and Secret on its output); a
        registry's credHelpers entry wins over credsStore."""
        src = self.start()
        images = bh.sample_images()
        bh.push_sample(src.registry(), "itest/app", images)
        akid, secret = a.keys_create(src, "puller")
        host = "127.0.0.1:%d" % src.port
        bin_dir = os.path.join(self.work, "bin")
        os.makedirs(bin_dir)
        asked = os.path.join(self.work, "asked")
        script = """#!/bin/sh
# a docker credential helper holding one registry's credentials
[ "$1" = get ] || exit 2
server=$(cat)
printf '%%s %%s\\n' "$(basename "$0")" "$server" >> %s
if [ "$server" = "%s" ]; then
    printf '{"ServerURL": "%%s", "Username": "%s", "Secret": "%s"}\\n' "$server"
else
    echo "credentials not found in native keychain"
    exit 1
fi
""" % (asked, host, akid, secret)
        for name in ("itest", "other"):
            path = os.path.join(bin_dir, "docker-credential-" + name)
            with open(path, "w") as f:
                f.write(script if name == "itest" else
                        "#!/bin/sh\ncat > /dev/null\necho 'helper other is broken' >&2\n"
                        "printf '%%s %%s\\n' other x >> %s\nexit 3\n" % asked)
            os.chmod(path, 0o755)
        env = {"DOCKER_CONFIG": self.docker_config,
               "PATH": bin_dir + ":" + os.environ["PATH"]}
        out_path = os.path.join(self.work, "helped.tar")

        def mirror(expect):
            rc, out = h.run_berth(["mirror", "--plain-http", "%s/itest/app:v1" % host,
                                   "-o", out_path], env=env, timeout=120)
            self.assertEqual(rc, expect, out)
            self.assertNotIn(secret, out)
            return out

        # credsStore: docker's "auths" entry is an empty placeholder then
        with open(os.path.join(self.docker_config, "config.json"), "w") as f:
            json.dump({"auths": {host: {}}, "credsStore": "itest"}, f)
        mirror(0)
        with open(asked) as f:
            self.assertEqual(f.read(), "docker-credential-itest %s\n" % host)
        self.assertIn("blobs/sha256/" + h.digest_hex(images["v1"].digest),
                      bh.read_bundle(out_path))
        os.remove(out_path)
        os.remove(asked)
        # credHelpers for this registry wins over a broken credsStore
        with open(os.path.join(self.docker_config, "config.json"), "w") as f:
            json.dump({"credsStore": "other", "credHelpers": {host: "itest"}}, f)
        mirror(0)
        with open(asked) as f:
            self.assertEqual(f.read(), "docker-credential-itest %s\n" % host)
        os.remove(asked)
        os.remove(out_path)
        # the broken one alone: no credentials, refused (401) and said so
        with open(os.path.join(self.docker_config, "config.json"), "w") as f:
            json.dump({"credsStore": "other"}, f)
        out = mirror(1)
        self.assertIn("docker-credential-other get %s failed (exit status 3)" % host, out)
        self.assertIn("401", out)
        self.assertFalse(os.path.exists(out_path))

    def test_from_distribution_with_the_referrers_tag_schema(self):
        src = self.start(target="distribution")
        reg = src.registry()
        img = h.build_image(layer_count=2, docker=True)
        h.expect_status(reg.push_image("library/tool", img, tag="1.0"), 201)
        images = bh.sample_images()
        h.expect_status(reg.push_image("library/tool", images["multi"], tag="multi"), 201)
        # distribution 2.8 has no referrers API: clients keep the sha256-<hex> tag
        sbom = h.build_artifact(subject=img.descriptor())
        h.expect_status(reg.push_image("library/tool", sbom), 201)
        listed = h.Index([sbom])
        listed.manifest = h.canonical_json({
            "schemaVersion": 2, "mediaType": h.MT_OCI_INDEX,
            "manifests": [sbom.descriptor(artifactType="application/vnd.example.sbom.v1+json")]})
        h.expect_status(reg.put_manifest("library/tool", "sha256-" + h.digest_hex(img.digest),
                                         listed.manifest, h.MT_OCI_INDEX), 201)
        host = "127.0.0.1:%d" % src.port
        out_path = os.path.join(self.work, "dist.tar.zst")
        self.mirror("%s/library/tool:1.0" % host, "%s/library/tool@%s"
                    % (host, images["multi"].digest), "-o", out_path)
        entries = {e["digest"]: e for e in bh.index_entries(bh.read_bundle(out_path))}
        self.assertEqual(entries[img.digest]["annotations"][bh.REF_NAME], "library/tool:1.0")
        self.assertEqual(entries[images["multi"].digest]["annotations"],
                         {bh.REPOSITORY: "library/tool"})
        self.assertIn(sbom.digest, entries)
        # distribution's access log names the client: mirror's own User-Agent
        gets = [line for line in src.log_text().splitlines()
                if "method=GET" in line and "uri=/v2/library/tool/" in line]
        self.assertTrue(gets)
        for line in gets:
            self.assertRegex(line, r"useragent=berth-mirror/\d+\.\d+\.\d+ ")
        src.stop()
        dest, _ = self.import_into(out_path)
        dest.start()
        reg = dest.registry()
        self.assert_image(reg, "library/tool", "1.0", img)
        self.assert_image(reg, "library/tool", images["multi"].digest, images["multi"])
        refs = h.expect_status(reg.referrers("library/tool", img.digest), 200).json()
        self.assertEqual([m["digest"] for m in refs["manifests"]], [sbom.digest])

    def test_tampered_blob_refused_and_delta(self):
        src = self.start()
        images = bh.sample_images()
        bh.push_sample(src.registry(), "itest/app", images)
        host = "127.0.0.1:%d" % src.port
        first = os.path.join(self.work, "first.tar")
        self.mirror("%s/itest/app:v1" % host, "-o", first)
        # a delta: v1 again and the index; only the index's part is new
        delta = os.path.join(self.work, "delta.tar")
        out = self.mirror("%s/itest/app:v1" % host, "%s/itest/app:multi" % host, "-o", delta,
                          "--since", first)
        self.assertIn("left out", out)
        held = {n for n in bh.read_bundle(first) if n.startswith("blobs/")}
        files = bh.read_bundle(delta)
        self.assertEqual({n for n in files if n.startswith("blobs/")} & held, set())
        self.assertIn(images["v1"].digest, {e["digest"] for e in bh.index_entries(files)})
        dest = h.Server()
        self.addCleanup(dest.cleanup)
        for path in (first, delta):
            rc, out = h.run_berth(["import", path], server=dest, timeout=120)
            self.assertEqual(rc, 0, out)
        dest.start()
        self.assert_image(dest.registry(), "itest/app", "multi", images["multi"])
        # a layer changed in the source's store (same length): refused, no file left
        layer = images["multi"].children[0].layer_digests[0]
        path = lg.blob_files(src.root)[layer]
        with open(path, "r+b") as f:
            data = bytearray(f.read())
            data[len(data) // 2] ^= 0xFF
            f.seek(0)
            f.write(bytes(data))
        out_path = os.path.join(self.work, "bad.tar.zst")
        out = self.mirror("%s/itest/app:multi" % host, "-o", out_path, expect=1)
        self.assertIn("blob %s" % layer, out)
        self.assertIn("does not match its digest", out)
        self.assertFalse(os.path.exists(out_path))
        self.no_leftovers()

    def test_https_with_a_private_ca(self):
        src = h.Server()
        self.addCleanup(src.cleanup)
        src.start()
        img = h.build_image(layer_count=1)
        h.expect_status(src.registry().push_image("team/app", img, tag="1"), 201)
        src.stop()
        pki = t.Pki()
        self.addCleanup(pki.cleanup)
        src.config = {"tls": {"cert_file": pki.path("chain.pem"),
                              "key_file": pki.path("server.key")}}
        src.start()
        ref = "localhost:%d/team/app:1" % src.port
        out_path = os.path.join(self.work, "tls.tar")
        rc, out = h.run_berth(["mirror", ref, "-o", out_path],
                              env={"DOCKER_CONFIG": self.docker_config}, timeout=120)
        self.assertEqual(rc, 1, out)  # the system does not trust the test CA
        self.assertRegex(out, r"(?i)certificate")
        self.assertFalse(os.path.exists(out_path))
        rc, out = h.run_berth(["mirror", ref, "-o", out_path, "--ca-file", pki.path("root.pem")],
                              env={"DOCKER_CONFIG": self.docker_config}, timeout=120)
        self.assertEqual(rc, 0, out)
        files = bh.read_bundle(out_path)
        bh.check_blobs(self, files)
        self.assertIn("blobs/sha256/" + h.digest_hex(img.digest), files)

    def test_a_ca_file_per_registry(self):
        """Two HTTPS upstreams, each with a certificate of its own private CA: a plain
        --ca-file trusts one CA for both (the other registry fails); --ca-file REGISTRY=PEM
        gives each registry its own, alone or beside a plain one for the others."""
        ups = []
        for name in ("a", "b"):
            src = h.Server()
            self.addCleanup(src.cleanup)
            src.start()
            img = h.build_image(layer_count=1)
            h.expect_status(src.registry().push_image("team/" + name, img, tag="1"), 201)
            src.stop()
            pki = t.Pki()
            self.addCleanup(pki.cleanup)
            src.config = {"tls": {"cert_file": pki.path("chain.pem"),
                                  "key_file": pki.path("server.key")}}
            src.start()
            ups.append(("localhost:%d" % src.port, pki.path("root.pem"), img))
        (host_a, ca_a, img_a), (host_b, ca_b, img_b) = ups
        refs = ["%s/team/a:1" % host_a, "%s/team/b:1" % host_b]
        env = {"DOCKER_CONFIG": self.docker_config}

        def run(*cas, expect):
            out_path = os.path.join(self.work, "cas.tar")
            rc, out = h.run_berth(["mirror"] + refs + ["-o", out_path] +
                                  [a for ca in cas for a in
                                   ((ca,) if ca.startswith("--") else ("--ca-file", ca))],
                                  env=env, timeout=120)
            self.assertEqual(rc, expect, out)
            if expect == 0:
                files = bh.read_bundle(out_path)
                bh.check_blobs(self, files)
                for img in (img_a, img_b):
                    self.assertIn("blobs/sha256/" + h.digest_hex(img.digest), files)
                os.unlink(out_path)
            else:
                self.assertFalse(os.path.exists(out_path))
                shutil.rmtree(out_path + ".parts", ignore_errors=True)
            return out

        # one CA for every registry: b's certificate is not trusted
        out = run(ca_a, expect=1)
        self.assertIn(host_b, out)
        self.assertRegex(out, r"(?i)certificate")
        # each its own
        run("%s=%s" % (host_a, ca_a), "%s=%s" % (host_b, ca_b), expect=0)
        # a plain one for the others, b's own (either order)
        run("%s=%s" % (host_b, ca_b), ca_a, expect=0)
        run(ca_a, "--ca-file=%s=%s" % (host_b, ca_b), expect=0)
        # b's own CA given to a: a is not trusted
        out = run("%s=%s" % (host_a, ca_b), ca_b, expect=1)
        self.assertIn(host_a, out)
        # a registry no reference names: a warning, and it is used for none
        out = run("localhost:1=%s" % ca_a, ca_a, expect=1)
        self.assertIn("--ca-file localhost:1=%s: no image named is of localhost:1" % ca_a, out)
        # a missing file is refused before anything is fetched
        out = run("%s=%s" % (host_a, os.path.join(self.work, "none.pem")), expect=1)
        self.assertIn("none.pem", out)

    def test_progress_line_on_a_terminal(self):
        src = self.start()
        img = h.build_image(layer_count=2, layer_size=300000)
        h.expect_status(src.registry().push_image("team/app", img, tag="1"), 201)
        out_path = os.path.join(self.work, "tty.tar")
        cmd = "%s mirror --plain-http 127.0.0.1:%d/team/app:1 -o %s" % (
            h.find_berth_bin(), src.port, out_path)
        # script(1) (util-linux, essential in Debian) gives berth a terminal
        proc = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True,
                              timeout=120, stdin=subprocess.DEVNULL,
                              env=dict(os.environ, DOCKER_CONFIG=self.docker_config))
        text = proc.stdout.decode("utf-8", "replace")
        self.assertEqual(proc.returncode, 0, text)
        # one line rewritten in place ("\r", erase), ending with the totals
        self.assertIn("\r\x1b[Kmirror: [1/1] 127.0.0.1:%d/team/app:1:" % src.port, text)
        # the blobs' fetch shows what is to come (the 3 blobs and their MiB)
        self.assertRegex(text, r"\r\x1b\[Kmirror: \[1/1\] fetching 3 blobs, 3 at a time: "
                               r"[0-3]/3 blobs, [0-9.]+/[0-9.]+ MiB")
        self.assertRegex(text, r"\r\x1b\[Kmirror: \[1/1\] done: 4 blobs, [0-9.]+ MiB\r?\n")
        self.assertIn("mirror: 1 images", text)
        self.assertNotIn("so far)", text)  # not the plain per-image lines

    def test_transient_failures_are_tried_again(self):
        src = self.start()
        img = h.build_image(layer_count=1)
        h.expect_status(src.registry().push_image("team/app", img, tag="1"), 201)
        proxy = FlakyProxy(src.port)
        self.addCleanup(proxy.stop)
        out_path = os.path.join(self.work, "flaky.tar")
        out = self.mirror("127.0.0.1:%d/team/app:1" % proxy.port, "-o", out_path)
        # the manifest (429), the config and the layer (503) each failed once, then came
        self.assertEqual(len(proxy.failed), 3, proxy.failed)
        self.assertEqual(out.count("event=mirror_retry"), 3, out)
        self.assertIn("attempt=2 wait_ms=1000", out)
        files = bh.read_bundle(out_path)
        bh.check_blobs(self, files)
        present = {"sha256:" + n.split("/")[-1] for n in files if n.startswith("blobs/")}
        self.assertEqual(present, bh.all_digests(img))

    def test_bad_references(self):
        for ref, msg in (("Upper/Case:1", "not a repository name"),
                         ("example.com/app@sha256:abc", "not a digest"),
                         ("example.com/app:bad tag!", "not a tag")):
            out = self.mirror(ref, "-o", os.path.join(self.work, "x.tar"), expect=1)
            self.assertIn(msg, out)
        out = self.mirror("-o", os.path.join(self.work, "x.tar"), expect=2)
        self.assertIn("no image named", out)
        out = self.mirror("example.com/app:1", "-o", os.path.join(self.work, "x.tar"),
                          "--platform", "amd64", expect=1)
        self.assertIn("OS/ARCH", out)


if __name__ == "__main__":
    h.main()
