"""Garbage collection on a full data disk: the data root is a small tmpfs mounted in a
private user and mount namespace (`unshare -rm`, no root needed where unprivileged user
namespaces are allowed; skipped where they are not). berth is filled to the last byte, its
images are deleted, and `berth gc` must still free their layers (with its space reserve) and
say in the log that the disk is full; a running server deletes images on the full disk and
its own GC pass frees their layers; and /readyz, served from that disk, says when it is
full."""

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

import berth_harness as h

TMPFS_MIB = 64
LAYER = 4 << 20


def can_mount_tmpfs():
    if shutil.which("unshare") is None:
        return False
    d = tempfile.mkdtemp(prefix="berth-mnt-")
    try:
        rc = subprocess.run(["unshare", "-rm", "sh", "-c",
                             'mount -t tmpfs -o size=1m tmpfs "$0"', d],
                            capture_output=True, timeout=20).returncode
        return rc == 0
    finally:
        os.rmdir(d)


def avail(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def truncate_wal(db):
    """Checkpoint the running server's database and truncate its WAL to nothing, so that
    the next write needs new room (a WAL with room left, as after a checkpoint by a GC
    pass, takes a write on a full disk without it); tried again while the server's own
    readers keep the checkpoint from completing."""
    import sqlite3
    conn = sqlite3.connect(db, timeout=30)
    try:
        h.wait_until(lambda: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0,
                     60, what="the database's WAL checkpointed and truncated")
    finally:
        conn.close()


def fill(path):
    """Write a file until the file system is full; return its size."""
    written = 0
    with open(path, "wb", buffering=0) as f:
        for size in (1 << 20, 64 << 10, 4 << 10, 512):
            block = b"\0" * size
            while True:
                try:
                    f.write(block)
                    written += size
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return written


@contextlib.contextmanager
def server_on_tmpfs(config, holds=()):
    """In the namespace: a started berth whose data root is a TMPFS_MIB tmpfs. Each name in
    holds is a background job that waits (fault_hold) while its file exists; yields the
    server and {name: that file}. Stopped, unmounted and cleaned up after."""
    server = h.Server(config=config)
    paths = {}
    for name in holds:
        paths[name] = os.path.join(server.tmp, "hold-" + name)
        server.env["BERTH_TEST_HOLD_" + name.upper()] = paths[name]
        open(paths[name], "w").close()
    try:
        os.makedirs(server.root, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % TMPFS_MIB, "tmpfs",
                        server.root], check=True)
        server.start()
        yield server, paths
        server.stop()
    finally:
        server._reap()
        subprocess.run(["umount", server.root], capture_output=True)
        server.cleanup()


def push_images(reg, names):
    """One image with one LAYER-sized layer per (repository, tag); returns the images."""
    pushed = []
    for repo, tag in names:
        img = h.build_image(layer_count=1, layer_size=LAYER)
        h.expect_status(reg.push_image(repo, img, tag=tag), 201)
        pushed.append(img)
    return pushed


def fill_disk(server):
    """Fill the data disk to its last byte; return what is still available (under 1 MiB)."""
    filled = fill(os.path.join(server.root, "filler"))
    before = avail(server.root)
    print("filled %d bytes, %d available" % (filled, before))
    assert before < (1 << 20), before
    return before


FIVE = [("full/x%d" % i, "v1") for i in range(5)]


def inner():
    """In the namespace: `berth gc` on a full disk frees the layers of deleted images."""
    with server_on_tmpfs({"gc": {"enabled": False, "grace_seconds": 0}}) as (server, _):
        reg = server.registry()
        pushed = push_images(reg, FIVE)
        for (repo, _tag), img in zip(FIVE, pushed):
            digest = h.digest_of(img.manifest)
            h.expect_status(reg.delete(reg.manifest_path(repo, digest)), 202)
        server.stop()
        before = fill_disk(server)
        rc, out = h.run_berth(["gc"], server=server, timeout=120)
        print(out)
        assert rc == 0, "berth gc failed on a full disk (%d)" % rc
        assert "event=disk_full" in out, "the log does not say the disk is full"
        freed = avail(server.root) - before
        print("freed %d bytes" % freed)
        # the five layers are gone; the reserve is taken again out of what they freed
        assert freed >= 5 * LAYER - (8 << 20), freed
        # once there is room again, a push works
        os.unlink(os.path.join(server.root, "filler"))
        server.start()
        reg = server.registry()
        h.expect_status(reg.push_image("full/after", h.build_image(layer_count=1), tag="v1"),
                        201)
    return 0


def inner_online(via):
    """In the namespace: on a full disk a running server still deletes images, through /v2
    or (via "ecr") BatchDeleteImage or (via "ecr-repository") DeleteRepository with force
    (the database needs room for the delete: the space reserve is given up for it; before,
    the DELETE was 500 internal error (EDB) and the ECR calls a ServerException, so nothing
    became garbage), its own GC pass (every second) frees their layers, says the disk was
    full, and takes the reserve again."""
    # With no grace, a pass between a layer's upload and its manifest collects the layer
    # (the manifest PUT is then 400 MANIFEST_BLOB_UNKNOWN: seen beside stress-ng): the
    # server's passes wait (jobs.c fault_hold "gc") until the five images are pushed.
    config = {"gc": {"enabled": True, "interval_seconds": 1, "grace_seconds": 0}}
    with server_on_tmpfs(config, holds=["gc"]) as (server, holds):
        reg = server.registry()
        reserve = os.path.join(server.root, "reserve")
        pushed = push_images(reg, FIVE)
        os.unlink(holds["gc"])
        # the deletes below must need new room for the database
        truncate_wal(os.path.join(server.root, "berth.db"))
        before = fill_disk(server)
        assert os.path.getsize(reserve) == 8 << 20
        ecr = None
        if via != "v2":
            import clients as c
            ecr = c.ecr_client(server)
        for (repo, _tag), img in zip(FIVE, pushed):
            digest = h.digest_of(img.manifest)
            if via == "ecr-repository":
                out = ecr.delete_repository(repositoryName=repo, force=True)
                assert out["repository"]["repositoryName"] == repo, (repo, out)
            elif via == "ecr":
                out = ecr.batch_delete_image(repositoryName=repo,
                                             imageIds=[{"imageDigest": digest}])
                assert out["failures"] == [] and len(out["imageIds"]) == 1, (repo, out)
            else:
                resp = reg.delete(reg.manifest_path(repo, digest))
                assert resp.status == 202, (repo, resp.status, resp.body[:300])
        assert "event=disk_full" in server.log_text(), "the log does not say the disk is full"
        # the five layers are freed by the server's own pass (the reserve, released for the
        # deletes, is taken again out of what they freed)
        h.wait_until(lambda: avail(server.root) - before >= 5 * LAYER - (8 << 20), 120,
                     what="the server's GC to free the deleted layers")
        h.wait_until(lambda: os.path.exists(reserve) and os.path.getsize(reserve) == 8 << 20,
                     120, what="GC to take the space reserve again")
        print("freed %d bytes" % (avail(server.root) - before))
    return 0


def inner_lifecycle():
    """In the namespace: on a full disk the running server's lifecycle job still expires
    images (its deletes give up the space reserve as a DELETE's do; before, each failed on
    the full database, run after run, and nothing expired) and its GC pass frees their
    layers. (`berth lifecycle run` gives the reserve up when it opens the store.)"""
    config = {"gc": {"enabled": True, "interval_seconds": 1, "grace_seconds": 0},
              "lifecycle": {"interval_seconds": 1, "new_policy_delay_seconds": 0}}
    with server_on_tmpfs(config, holds=["gc", "lifecycle"]) as (server, holds):
        repo = "full/lc"
        push_images(server.registry(), [(repo, "v%d" % i) for i in range(5)])
        import clients as c
        ecr = c.ecr_client(server)
        ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=json.dumps({
            "rules": [{"rulePriority": 1, "selection": {
                "tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
                "action": {"type": "expire"}}]}))
        # the job's run waits while the disk is filled under it: its deletes must need
        # new room for the database
        h.wait_until(lambda: "event=test_hold point=lifecycle" in server.log_text(), 60,
                     what="the lifecycle job to reach its hold")
        truncate_wal(os.path.join(server.root, "berth.db"))
        before = fill_disk(server)
        os.unlink(holds["lifecycle"])
        h.wait_until(lambda: len(ecr.describe_images(repositoryName=repo)["imageDetails"])
                     == 1, 120, what="the lifecycle job to expire four of the five images")
        assert "event=disk_full" in server.log_text(), "the log does not say the disk is full"
        os.unlink(holds["gc"])
        h.wait_until(lambda: avail(server.root) - before >= 4 * LAYER - (8 << 20), 120,
                     what="the server's GC to free the expired layers")
        print("freed %d bytes" % (avail(server.root) - before))
    return 0


def monolithic_post(port, repo, length):
    """POST a monolithic upload of length bytes, sending all of it before reading (as
    docker does); return the answer's status and body."""
    block = b"x" * (1 << 20)
    digest = "sha256:" + hashlib.sha256(block * (length >> 20)).hexdigest()
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    try:
        s.sendall(b"POST /v2/%s/blobs/uploads/?digest=%s HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n"
                  % (repo.encode(), digest.encode(), length))
        for _ in range(length >> 20):
            s.sendall(block)
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError("closed before an answer: %r" % got)
            got += chunk
        head, _, body = got.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))
        while len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        return int(head.split()[1]), body[:length].decode()
    finally:
        s.close()


def readyz(reg):
    resp = reg.get("/readyz")
    return resp.status, resp.body.decode()


def inner_readyz():
    """In the namespace: /readyz says the disk is full while the server runs on it, even
    with storage.min_free_bytes at 0, and the log says so too."""
    config = {"gc": {"enabled": False}, "storage": {"min_free_bytes": 0}}
    with server_on_tmpfs(config) as (server, _):
        reg = server.registry()
        status, text = readyz(reg)
        print(text)
        assert status == 200, text
        assert "disk reserve: held" in text.splitlines(), text
        fill(os.path.join(server.root, "filler"))
        status, text = readyz(reg)
        print(text)
        assert status == 503, text
        assert text.startswith("not ready\n"), text
        assert re.search(r"(?m)^disk: full \(\d+ bytes free, 0 required\)$", text), text
        h.wait_until(lambda: "event=not_ready" in server.log_text(), 30, what="the log line")
        line = [ln for ln in server.log_text().splitlines() if "event=not_ready" in ln][0]
        print(line)
        assert "disk=full" in line, line
        # a monolithic push on the full disk: a client that sends its whole body before
        # reading gets the error, not EPIPE
        status, body = monolithic_post(server.port, "full/push", 24 << 20)
        print(status, body)
        assert status >= 400 and json.loads(body)["errors"], (status, body)
        os.unlink(os.path.join(server.root, "filler"))
        status, text = readyz(reg)
        assert status == 200, text
    return 0


def inner_import():
    """In the namespace: `berth import` on a full disk names the cause (it said only
    'staging failed (EIO)')."""
    with server_on_tmpfs({}) as (server, _):
        # larger than the space reserve the import's store open gives up on a full disk
        img = h.build_image(layer_count=1, layer_size=12 << 20)
        layout = os.path.join(server.tmp, "layout")  # beside the tmpfs, not on it
        h.write_oci_layout(layout, {"full/imported:v1": img})
        fill_disk(server)
        rc, out = h.run_berth(["import", layout], server=server, timeout=120)
        assert rc == 1, out
        assert "staging failed: the data disk is full" in out, out
        os.unlink(os.path.join(server.root, "filler"))
        rc, out = h.run_berth(["import", layout], server=server, timeout=120)
        assert rc == 0, out
        h.expect_status(server.registry().get_manifest("full/imported", "v1"), 200)
    return 0


def run_inner(test, which):
    if not can_mount_tmpfs():
        test.skipTest("cannot mount a tmpfs in a user namespace here (unshare -rm)")
    proc = subprocess.run(["unshare", "-rm", sys.executable, "-B", __file__, which],
                          capture_output=True, timeout=300, stdin=subprocess.DEVNULL)
    out = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    test.assertEqual(proc.returncode, 0, out[-6000:])


@h.berth_only("berth's garbage collection on a full disk")
class DiskFullTest(unittest.TestCase):
    def test_gc_frees_space_on_a_full_disk(self):
        run_inner(self, "--inner")

    def test_readyz_says_the_disk_is_full(self):
        run_inner(self, "--inner-readyz")

    def test_running_server_deletes_and_collects_on_a_full_disk(self):
        run_inner(self, "--inner-online")

    def test_batch_delete_image_on_a_full_disk(self):
        run_inner(self, "--inner-online-ecr")

    def test_delete_repository_on_a_full_disk(self):
        run_inner(self, "--inner-online-ecr-repository")

    def test_lifecycle_expires_on_a_full_disk(self):
        run_inner(self, "--inner-lifecycle")

    def test_import_names_a_full_disk(self):
        run_inner(self, "--inner-import")


if __name__ == "__main__":
    if sys.argv[1:] == ["--inner"]:
        sys.exit(inner())
    if sys.argv[1:] == ["--inner-online"]:
        sys.exit(inner_online("v2"))
    if sys.argv[1:] == ["--inner-online-ecr"]:
        sys.exit(inner_online("ecr"))
    if sys.argv[1:] == ["--inner-online-ecr-repository"]:
        sys.exit(inner_online("ecr-repository"))
    if sys.argv[1:] == ["--inner-lifecycle"]:
        sys.exit(inner_lifecycle())
    if sys.argv[1:] == ["--inner-readyz"]:
        sys.exit(inner_readyz())
    if sys.argv[1:] == ["--inner-import"]:
        sys.exit(inner_import())
    unittest.main()
