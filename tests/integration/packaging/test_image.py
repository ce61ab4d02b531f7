"""berth's OCI image (`make image`, scripts/build-image.sh), built with umoci and no
container engine: its configuration (non-root user, data volume, port), a root file system
that holds every library the binary loads, and the image run the way a container runtime
runs it: unpacked by umoci, its root file system mounted read-only with a writable data
directory on the volume and a tmpfs /tmp, in a private mount namespace, chroot'ed, as the
image's user, with the image's entrypoint, command, environment and working directory. That
berth refuses to listen beyond loopback without a key, takes a key made with the image's own
`berth keys create`, serves, and takes a push of berth's own image, which pulls back
identical.

podman is not used: in this test machine (a Firecracker VM) crun's setrlimit of the
container's RLIMIT_NOFILE fails with EPERM, so `podman run` cannot start any container."""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

import berth_harness as h
import packaging_helpers as pk

UID = 10001


def run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=kw.pop("timeout", 300),
                          **kw)
    if proc.returncode != 0:
        raise AssertionError("%s failed (%d): %s%s" % (" ".join(cmd), proc.returncode,
                                                       proc.stdout[-2000:], proc.stderr[-3000:]))
    return proc.stdout


def container_command(bundle, data, args=None, env=None):
    """argv and environment that start the image's process as a runtime would: the runtime
    configuration umoci wrote for the image (process.args, env, cwd, user) inside a private
    mount namespace with a read-only root file system."""
    with open(os.path.join(bundle, "config.json")) as f:
        spec = json.load(f)["process"]
    rootfs = os.path.join(bundle, "rootfs")
    user = spec["user"]
    argv = list(args) if args is not None else spec["args"]
    # the image has no shell: the host's sh sets up the mounts, chroot execs the entrypoint
    # (chroot starts it in /, not the image's working directory: berth's paths are absolute)
    script = ('set -e; r="$1"; d="$2"; u="$3"; shift 3; '
              'mount --bind "$r" "$r"; mount --bind "$d" "$r/var/lib/berth"; '
              'mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"; mount -t proc proc "$r/proc"; '
              'mount --rbind /dev "$r/dev"; '
              'mount -o remount,bind,ro "$r"; '
              'exec chroot --userspec="$u" "$r" "$@"')
    full_env = {"PATH": "/usr/bin:/bin"}
    for item in spec.get("env", []):
        k, _, v = item.partition("=")
        full_env[k] = v
    full_env.update(env or {})
    prefix = ["unshare", "--mount", "--propagation", "private"]
    userspec = "%d:%d" % (user["uid"], user["gid"])
    return prefix + ["sh", "-c", script, "sh", rootfs, data, userspec] + argv, full_env


@unittest.skipUnless(os.geteuid() == 0, "needs root (chroot --userspec, mounts)")
class ImageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="berth-image-")
        out = os.path.join(cls.tmp, "out")
        run([os.path.join(h.REPO_ROOT, "scripts", "build-image.sh"), pk.BUILD_DIR, out])
        cls.layout = os.path.join(out, "layout")
        cls.archive = os.path.join(out, "berth-image.tar")
        cls.version = run([h.find_berth_bin(), "version"]).split()[1]
        cls.ref = "berth:" + cls.version
        cls.bundle = os.path.join(cls.tmp, "bundle")
        run(["umoci", "unpack", "--image", "%s:%s" % (cls.layout, cls.ref), cls.bundle])
        cls.rootfs = os.path.join(cls.bundle, "rootfs")
        with open(os.path.join(cls.layout, "index.json")) as f:
            index = json.load(f)
        cls.manifest_desc = index["manifests"][0]
        cls.manifest = cls.blob(cls.manifest_desc["digest"])
        cls.config = cls.blob(cls.manifest["config"]["digest"])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def blob(cls, digest):
        with open(os.path.join(cls.layout, "blobs", *digest.split(":"))) as f:
            return json.load(f)

    def test_layout_and_archive(self):
        with open(os.path.join(self.layout, "index.json")) as f:
            index = json.load(f)
        self.assertEqual(len(index["manifests"]), 1)
        self.assertEqual(self.manifest_desc["annotations"]["org.opencontainers.image.ref.name"],
                         self.ref)
        self.assertEqual(len(self.manifest["layers"]), 1)
        listing = run(["tar", "-tf", self.archive]).split()
        self.assertIn("./index.json", listing)
        self.assertIn("./oci-layout", listing)

    def test_image_configuration(self):
        c = self.config["config"]
        self.assertEqual(c["User"], "%d:%d" % (UID, UID))
        self.assertEqual(c["Entrypoint"], ["/usr/bin/berth"])
        self.assertEqual(c["Cmd"], ["serve"])
        self.assertIn("/var/lib/berth", c["Volumes"])
        self.assertIn("5000/tcp", c["ExposedPorts"])
        self.assertIn("BERTH_CONFIG=/etc/berth/berth.json", c["Env"])
        self.assertEqual(self.config["architecture"], "amd64")
        self.assertEqual(self.config["os"], "linux")
        with open(os.path.join(self.rootfs, "etc", "berth", "berth.json")) as f:
            conf = json.load(f)
        self.assertEqual(conf["root"], "/var/lib/berth")
        self.assertEqual(conf["listen"], "0.0.0.0:5000")

    def test_root_file_system(self):
        data = os.stat(os.path.join(self.rootfs, "var", "lib", "berth"))
        self.assertEqual((data.st_uid, data.st_gid, data.st_mode & 0o777), (UID, UID, 0o700))
        binary = os.stat(os.path.join(self.rootfs, "usr", "bin", "berth"))
        self.assertEqual(binary.st_uid, 0)
        with open(os.path.join(self.rootfs, "etc", "passwd")) as f:
            self.assertIn("berth:x:%d:%d:" % (UID, UID), f.read())
        # no systemd files, manual or docs in the image; no shell either
        for rel in ("usr/lib/systemd", "usr/share/man", "bin/sh", "usr/bin/sh"):
            self.assertFalse(os.path.exists(os.path.join(self.rootfs, rel)), rel)
        # every library the binary needs is inside: ldd run inside the root file system
        # (its own loader, its own libraries) finds them all
        loader = "/lib64/ld-linux-x86-64.so.2"
        out = run(["chroot", self.rootfs, loader, "--list", "/usr/bin/berth"])
        self.assertNotIn("not found", out)
        self.assertIn("libmicrohttpd", out)
        # as the image's user, with /proc (an ASan build reads its options and threads there)
        data = tempfile.mkdtemp(prefix="volume-", dir=self.tmp)
        cmd, env = container_command(self.bundle, data, ["/usr/bin/berth", "version"])
        out = run(cmd, env=env)
        self.assertEqual(out.split()[1], self.version)

    def test_runs_read_only_as_its_user_and_takes_a_push_of_itself(self):
        data = tempfile.mkdtemp(prefix="volume-", dir=self.tmp)
        os.chown(data, UID, UID)
        os.chmod(data, 0o700)
        # the image's own defaults: 0.0.0.0 with no key is refused, and says why
        port = h.free_port()
        cmd, env = container_command(self.bundle, data)
        proc = subprocess.run(cmd, env=dict(env, BERTH_LISTEN="0.0.0.0:%d" % port),
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 2, proc.stdout + proc.stderr)
        self.assertIn("refusing to serve 0.0.0.0:%d without authentication" % port, proc.stderr)
        # a key made by the image's berth in the volume (as `podman run ... keys create`)
        cmd, env = container_command(self.bundle, data,
                                     ["/usr/bin/berth", "keys", "create", "admin"])
        keys = dict(line.split("=", 1) for line in run(cmd, env=env).split())
        akid, secret = keys["AWS_ACCESS_KEY_ID"], keys["AWS_SECRET_ACCESS_KEY"]
        self.assertEqual(os.stat(os.path.join(data, "berth.db")).st_uid, UID)
        # serve (on loopback for the test; the key would allow 0.0.0.0)
        cmd, env = container_command(self.bundle, data)
        p = pk.Process(cmd, env=dict(env, BERTH_LISTEN="127.0.0.1:%d" % port),
                       workdir=tempfile.mkdtemp(prefix="run-", dir=self.tmp))
        try:
            base = "http://127.0.0.1:%d" % port
            p.wait_ready(base)
            self.assertEqual(pk.http_get(base + "/v2/")[0], 401)
            # read-only root: berth cannot write outside its volume
            self.assertIn("Read-only file system", run(
                ["nsenter", "-t", str(p.pid), "-m", "sh", "-c",
                 "touch %s/etc/x 2>&1 || true" % self.rootfs]))
            creds = "%s:%s" % (akid, secret)
            target = "docker://127.0.0.1:%d/berth:%s" % (port, self.version)
            run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", creds,
                 "oci:%s:%s" % (self.layout, self.ref), target])
            inspect = json.loads(run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                                      "--creds", creds, target]))
            self.assertEqual(inspect, self.manifest)
            digest = json.loads(run(["skopeo", "inspect", "--tls-verify=false", "--creds",
                                     creds, target]))["Digest"]
            self.assertEqual(digest, self.manifest_desc["digest"])
            pulled = os.path.join(self.tmp, "pulled")
            run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--src-creds", creds,
                 target, "oci:%s:copy" % pulled])
            for layer in self.manifest["layers"]:
                a = os.path.join(self.layout, "blobs", *layer["digest"].split(":"))
                b = os.path.join(pulled, "blobs", *layer["digest"].split(":"))
                with open(a, "rb") as fa, open(b, "rb") as fb:
                    self.assertEqual(fa.read(), fb.read())
            self.assertEqual(p.stop(), 0, p.log_text())
            self.assertIn("event=server_stopped", p.log_text())
        finally:
            p.cleanup()
        # what berth wrote went to the volume, as the image's user
        self.assertTrue(os.path.isdir(os.path.join(data, "blobs")))
        self.assertEqual(os.stat(os.path.join(data, "blobs")).st_uid, UID)


if __name__ == "__main__":
    unittest.main(verbosity=2)
