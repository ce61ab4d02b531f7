"""Real container engines for the client tests (tests/integration/clients/), each started by
the test itself on private sockets and data directories and stopped after it.

Nothing root-wide is used or changed: no /var/lib/docker, /run/docker.sock, /etc/docker,
/var/lib/containerd or /etc/containers. Each daemon runs in a mount namespace of its own
(`unshare --mount`) with a fresh tmpfs on /run, so the few paths the engines hard-code there
(dockerd's /run/docker/plugins) vanish with it. Readiness is an event, never a sleep: the
daemons speak systemd's sd_notify protocol, so the fixture binds a NOTIFY_SOCKET and waits
for READY=1 (or for the process to die, which fails the test with its log's tail).

The programs come from Debian (scripts/setup-deps.sh installs docker.io, containerd, podman,
buildah); a missing one fails the test, it is never a reason to skip it.
"""

import ctypes
import io
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time

import clients as c  # first: it cleans the environment botocore reads
import berth_harness as h

DOCKERD_BIN = "/usr/sbin/dockerd"
CONTAINERD_BIN = "/usr/bin/containerd"
CTR_BIN = "/usr/bin/ctr"
START_TIMEOUT = 120
STOP_TIMEOUT = 60
CLIENT_TIMEOUT = 180


def require(path):
    if not os.access(path, os.X_OK):
        raise AssertionError("%s is missing; scripts/setup-deps.sh installs it" % path)
    return path


def docker_cli():
    """The docker CLI: the first `docker` on PATH (the machine image's, 28.x), else Debian's."""
    path = shutil.which("docker") or "/usr/bin/docker"
    return require(path)


def private_run(cmd, tmpfs=("/run",), binds=()):
    """cmd in a mount namespace of its own with an empty tmpfs on each of tmpfs (by default
    /run, and so /var/run), created if missing, and binds (source, target) mounted."""
    return c.private_mounts(cmd, tmpfs, binds)


def _die_with_parent():
    """preexec_fn: the daemon gets SIGTERM when the test process dies, however it dies (a
    ctest timeout, a kill -9), so no engine outlives its test. unshare and sh exec in
    place, so the setting reaches the daemon itself."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


class Daemon:
    """A daemon process with its log in <work>/NAME.log; started with NOTIFY_SOCKET set and
    ready once it sends READY=1."""

    name = "daemon"
    binds = ()

    def __init__(self, work):
        self.work = work
        os.makedirs(work, exist_ok=True)
        self.log_path = os.path.join(work, self.name + ".log")
        self.proc = None

    def command(self):
        raise NotImplementedError

    def start(self):
        notify_path = os.path.join(self.work, "notify.sock")
        if os.path.exists(notify_path):
            os.unlink(notify_path)
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            notify.bind(notify_path)
            env = dict(os.environ)
            env["NOTIFY_SOCKET"] = notify_path
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(private_run(self.command(), binds=self.binds),
                                             stdin=subprocess.DEVNULL,
                                             stdout=log, stderr=log, env=env, cwd=self.work,
                                             start_new_session=True,
                                             preexec_fn=_die_with_parent)
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.stop()
                    raise AssertionError("%s sent no READY=1 within %d s\n%s" % (
                        self.name, START_TIMEOUT, self.log_tail()))
                readable, _, _ = select.select([notify], [], [], min(left, 1.0))
                if readable and b"READY=1" in notify.recv(4096):
                    return self
                if self.proc.poll() is not None:
                    rc = self.proc.returncode
                    self.proc = None
                    raise AssertionError("%s exited %d before it was ready\n%s" % (
                        self.name, rc, self.log_tail()))
        finally:
            notify.close()
            if os.path.exists(notify_path):
                os.unlink(notify_path)

    def stop(self):
        """SIGTERM, then SIGKILL to the whole process group if it does not stop in time."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # children (containerd, shims) too
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.proc = None

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, "rb") as f:
                return "--- %s log tail ---\n%s" % (self.name, b"\n".join(
                    f.read().splitlines()[-lines:]).decode("utf-8", "replace"))
        except OSError:
            return "(no %s log)" % self.name


class Result:
    """One client run: rc, out and err as text, raw the bytes of stdout."""

    def __init__(self, cmd, rc, raw, err):
        self.cmd, self.rc, self.raw, self.err = cmd, rc, raw, err
        self.out = raw.decode("utf-8", "replace")

    def __repr__(self):
        return "%s -> %d\nstdout: %s\nstderr: %s" % (" ".join(self.cmd), self.rc,
                                                    self.out[-3000:], self.err[-3000:])


def run_client(cmd, env, check=True, input=None, timeout=CLIENT_TIMEOUT, daemon=None):
    proc = subprocess.run(cmd, env=env, capture_output=True, timeout=timeout,
                          input=input.encode() if isinstance(input, str) else input,
                          stdin=None if input is not None else subprocess.DEVNULL)
    result = Result(cmd, proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))
    if check and result.rc != 0:
        raise AssertionError("%r\n%s" % (result, daemon.log_tail() if daemon else ""))
    return result


# ---------------------------------------------------------------------------------------------
# dockerd


class Dockerd(Daemon):
    """dockerd (Debian's docker.io, 20.10) with its own containerd, the vfs storage driver, no
    bridge and no iptables, everything under work/. 127.0.0.0/8 registries are insecure to
    dockerd by default, so it talks plain HTTP to berth."""

    name = "dockerd"

    def __init__(self, work, hosts=None):
        """hosts: {name: address} that dockerd alone resolves (a private /etc/hosts); with
        it, dockerd also gets a private /etc/docker, whose certs.d the test fills
        (certs_dir)."""
        super().__init__(work)
        if hosts:
            hosts_file = os.path.join(work, "hosts")
            with open(hosts_file, "w") as f:
                f.write("".join("%s %s\n" % (addr, name) for name, addr in hosts.items()))
            self.etc_docker = os.path.join(work, "etc-docker")
            os.makedirs(os.path.join(self.etc_docker, "certs.d"))
            self.binds = ((hosts_file, "/etc/hosts"), (self.etc_docker, "/etc/docker"))
        self.data_root = os.path.join(work, "data")
        self.exec_root = os.path.join(work, "exec")
        self.socket = os.path.join(work, "docker.sock")
        self.client_config = os.path.join(work, "client")
        self.client_home = os.path.join(work, "home")
        for d in (self.data_root, self.exec_root, self.client_config, self.client_home):
            os.makedirs(d, exist_ok=True)
        self.config_file = os.path.join(work, "daemon.json")
        with open(self.config_file, "w") as f:
            # the daemon's identity key would otherwise go to /etc/docker/key.json
            json.dump({"deprecated-key-path": os.path.join(work, "key.json")}, f)
        self.reset_client_config()

    def certs_dir(self, host):
        """dockerd's certs.d directory for host ("name:port"), created empty."""
        path = os.path.join(self.etc_docker, "certs.d", host)
        os.makedirs(path, exist_ok=True)
        return path

    def reset_client_config(self):
        """An empty client configuration: no credentials, no credential helper."""
        with open(os.path.join(self.client_config, "config.json"), "w") as f:
            json.dump({"auths": {}}, f)

    def command(self):
        return [require(DOCKERD_BIN), "--config-file", self.config_file,
                "--iptables=false", "--ip6tables=false", "--ip-masq=false", "--bridge=none",
                "--storage-driver=vfs", "--data-root", self.data_root,
                "--exec-root", self.exec_root, "-H", "unix://" + self.socket,
                "--pidfile", os.path.join(self.work, "docker.pid"), "--log-level", "warn"]

    def env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update({"DOCKER_HOST": "unix://" + self.socket, "DOCKER_CONFIG": self.client_config,
                    "HOME": self.client_home, "DOCKER_CLI_HINTS": "false"})
        return env

    def docker(self, *args, check=True, input=None, timeout=CLIENT_TIMEOUT):
        """Run the docker CLI against this daemon; returns a Result."""
        return run_client([docker_cli()] + [str(a) for a in args], self.env(), check=check,
                          input=input, timeout=timeout, daemon=self)

    def credentials(self):
        with open(os.path.join(self.client_config, "config.json")) as f:
            return json.load(f).get("auths", {})

    def load(self, image):
        """`docker load` of a SavedImage's archive (written to work/load.tar); returns the
        Result ("Loaded image: <tag>" in its out)."""
        path = os.path.join(self.work, "load.tar")
        with open(path, "wb") as f:
            f.write(image.archive())
        return self.docker("load", "-i", path)

    def image_ids(self, ref):
        """The image ID (the config's digest) and the layers' diff IDs dockerd holds for ref,
        as a SavedImage's (image_id, diff_ids)."""
        doc = json.loads(self.docker("image", "inspect", ref).out)[0]
        return doc["Id"], doc["RootFS"]["Layers"]


# ---------------------------------------------------------------------------------------------
# containerd


class Containerd(Daemon):
    """containerd (Debian's, 1.6) with its root, state, sockets and plugins under work/, the
    CRI plugin off, and the native snapshotter (no mounts)."""

    name = "containerd"

    def __init__(self, work):
        super().__init__(work)
        self.socket = os.path.join(work, "containerd.sock")
        self.config_file = os.path.join(work, "config.toml")
        root = os.path.join(work, "root")
        state = os.path.join(work, "state")
        with open(self.config_file, "w") as f:
            f.write("\n".join([
                "version = 2",
                'root = "%s"' % root,
                'state = "%s"' % state,
                'disabled_plugins = ["io.containerd.grpc.v1.cri", '
                '"io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", '
                '"io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]',
                "[grpc]",
                '  address = "%s"' % self.socket,
                "[ttrpc]",
                '  address = "%s"' % os.path.join(work, "containerd.sock.ttrpc"),
                "[debug]",
                '  address = ""',
                "[metrics]",
                '  address = ""',
                '[plugins."io.containerd.internal.v1.opt"]',
                '  path = "%s"' % os.path.join(work, "opt"),
                "",
            ]))

    def command(self):
        return [require(CONTAINERD_BIN), "--config", self.config_file, "--log-level", "warn"]

    # ctr's own gRPC stream from containerd's content store cut short: a known containerd
    # flake under load (nerdctl's CI sees it too), not an answer of the registry's
    CTR_CONTENT_EOF = "rpc error: code = Internal desc = unexpected EOF"

    def ctr(self, *args, check=True, timeout=CLIENT_TIMEOUT):
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTAINERD_")}
        env["CONTAINERD_SNAPSHOTTER"] = "native"  # unpacking copies files: no mounts
        cmd = [require(CTR_BIN), "--address", self.socket, "--namespace", "berth-test"] + \
            [str(a) for a in args]
        result = run_client(cmd, env, check=False, timeout=timeout)
        if check and result.rc != 0 and self.CTR_CONTENT_EOF in result.err:
            # once more (push and pull are idempotent); a second failure fails the test
            sys.stderr.write("ctr: %s; once more\n" % self.CTR_CONTENT_EOF)
            result = run_client(cmd, env, check=False, timeout=timeout)
        if check and result.rc != 0:
            raise AssertionError("%r\n%s" % (result, self.log_tail()))
        return result

    def import_image(self, host, repo, tag, image, *extra):
        """Write image as an OCI layout tar (tag its name) and `ctr images import` it as
        host/repo:tag (extra: more import options); returns that reference."""
        layout = os.path.join(self.work, "layout-" + tag)
        h.write_oci_layout(layout, {tag: image})
        path = layout + ".tar"
        with tarfile.open(path, "w") as tar:
            for name in sorted(os.listdir(layout)):
                tar.add(os.path.join(layout, name), arcname=name)
        self.ctr("images", "import", "--no-unpack", "--base-name", "%s/%s" % (host, repo),
                 *extra, path)
        return "%s/%s:%s" % (host, repo, tag)


# ---------------------------------------------------------------------------------------------
# podman and buildah


class Podman:
    """podman and buildah (Debian's, 4.3 and 1.28) on storage of their own: vfs under work/,
    cgroupfs, file locks and events, a private containers.conf, storage.conf,
    registries.conf and auth file, given through CONTAINERS_CONF, CONTAINERS_STORAGE_CONF,
    CONTAINERS_REGISTRIES_CONF and REGISTRY_AUTH_FILE. Each command runs in its own mount
    namespace with tmpfs on /run, /dev/shm and /var/lib/containers (where root's podman
    would keep a lock segment and its blob-info cache whatever the configuration says)."""

    PODMAN_BIN = "/usr/bin/podman"
    BUILDAH_BIN = "/usr/bin/buildah"
    TMPFS = ("/run", "/dev/shm", "/var/lib/containers")

    def __init__(self, work):
        self.work = work
        self.home = os.path.join(work, "home")
        self.storage = os.path.join(work, "storage")
        for d in (self.home, os.path.join(work, "xdg"), os.path.join(work, "tmp")):
            os.makedirs(d, exist_ok=True)
        self.storage_conf = os.path.join(work, "storage.conf")
        with open(self.storage_conf, "w") as f:
            f.write('[storage]\ndriver = "vfs"\ngraphroot = "%s"\nrunroot = "%s"\n' % (
                self.storage, os.path.join(work, "runroot")))
        self.containers_conf = os.path.join(work, "containers.conf")
        with open(self.containers_conf, "w") as f:
            f.write("\n".join([
                "[engine]",
                'cgroup_manager = "cgroupfs"',
                'events_logger = "file"',
                'events_logfile_path = "%s"' % os.path.join(work, "events.log"),
                'tmp_dir = "%s"' % os.path.join(work, "tmp"),
                'static_dir = "%s"' % os.path.join(self.storage, "libpod"),
                'volume_path = "%s"' % os.path.join(self.storage, "volumes"),
                'lock_type = "file"',
                "",
            ]))
        self.registries_conf = os.path.join(work, "registries.conf")
        self.auth_file = os.path.join(work, "auth.json")
        self.insecure()

    def insecure(self, *hosts):
        """registries.conf: no search registries; hosts reached over plain HTTP."""
        with open(self.registries_conf, "w") as f:
            f.write("unqualified-search-registries = []\n")
            for host in hosts:
                f.write('[[registry]]\nlocation = "%s"\ninsecure = true\n' % host)

    def env(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CONTAINERS_", "REGISTRY_AUTH", "BUILDAH_"))}
        env.update({
            "HOME": self.home, "XDG_RUNTIME_DIR": os.path.join(self.work, "xdg"),
            "XDG_CONFIG_HOME": os.path.join(self.home, ".config"),
            "CONTAINERS_CONF": self.containers_conf,
            "CONTAINERS_STORAGE_CONF": self.storage_conf,
            "CONTAINERS_REGISTRIES_CONF": self.registries_conf,
            "REGISTRY_AUTH_FILE": self.auth_file,
            "BUILDAH_ISOLATION": "chroot",
            "TMPDIR": os.path.join(self.work, "tmp"),
        })
        return env

    def command(self, program, *args):
        return private_run([require(program)] + [str(a) for a in args], self.TMPFS)

    def podman(self, *args, check=True, input=None, timeout=CLIENT_TIMEOUT):
        return run_client(self.command(self.PODMAN_BIN, *args), self.env(), check=check,
                          input=input, timeout=timeout)

    def buildah(self, *args, check=True, input=None, timeout=CLIENT_TIMEOUT):
        return run_client(self.command(self.BUILDAH_BIN, *args), self.env(), check=check,
                          input=input, timeout=timeout)


# ---------------------------------------------------------------------------------------------
# Images as the engines load them


def tar_bytes(entries):
    """An uncompressed tar of [(name, bytes)], in that order, deterministic."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1700000000
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


class SavedImage:
    """An image as `docker save` writes it (the classic layout that `docker load` reads):
    uncompressed layers and a config whose digest is the image ID dockerd will report."""

    def __init__(self, tag, layer_count=2, layer_size=64 * 1024, arch="amd64", sizes=None):
        self.tag = tag
        sizes = sizes or [layer_size] * layer_count
        self.layers = [h.make_layer({"layer%d/data.bin" % i: h.random_bytes(size),
                                     "layer%d/id.txt" % i: os.urandom(8).hex().encode()},
                                    compress=False)[0] for i, size in enumerate(sizes)]
        self.diff_ids = [h.digest_of(layer) for layer in self.layers]
        self.config = h.canonical_json({
            "architecture": arch, "os": "linux",
            "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
            "created": "2024-01-01T00:00:00Z",
            "history": [{"created": "2024-01-01T00:00:00Z", "comment": "berth itest"}
                        for _ in self.layers],
            "rootfs": {"type": "layers", "diff_ids": self.diff_ids},
        })
        self.image_id = h.digest_of(self.config)

    def archive(self):
        config_name = h.digest_hex(self.image_id) + ".json"
        entries = []
        names = []
        for layer in self.layers:
            layer_dir = h.digest_hex(h.digest_of(layer))
            names.append(layer_dir + "/layer.tar")
            entries += [(layer_dir + "/VERSION", b"1.0"), (layer_dir + "/json", b"{}"),
                        (layer_dir + "/layer.tar", layer)]
        entries.append((config_name, self.config))
        entries.append(("manifest.json", json.dumps(
            [{"Config": config_name, "RepoTags": [self.tag], "Layers": names}]).encode()))
        return tar_bytes(entries)


def start_all(*daemons):
    """A test module's setUpModule: each daemon started in turn; when one fails, every one
    is stopped and the error goes on."""
    try:
        for daemon in daemons:
            daemon.start()
    except BaseException:
        for daemon in daemons:
            daemon.stop()
        raise


def remove_all(*engines):
    """A test module's tearDownModule: each daemon stopped, and each engine's scratch
    directory (a daemon's or a Podman's) removed; None (never made) is passed over."""
    for engine in engines:
        if engine is None:
            continue
        if isinstance(engine, Daemon):
            engine.stop()
        subprocess.run(["rm", "-rf", engine.work])


def scratch_dir(prefix):
    """A temporary directory with a short path (sockets must fit in 108 bytes)."""
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")
