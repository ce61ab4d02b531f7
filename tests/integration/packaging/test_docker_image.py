"""berth's image (`make image`) and deploy/compose under a real dockerd (Debian's docker.io,
private socket and data root: lib/daemons.py): the image, pushed into a berth and pulled by
dockerd from it, runs `--read-only --user 10001:10001` with its data on a volume, makes its
key with its own `berth keys create`, takes a docker push of an image and of berth's own
image and gives them back; the compose file starts it with `docker-compose up` and stops it
with `down`.

The containers use the host's network (`--network host`: the test's dockerd has no bridge)
and listen on a free loopback port instead of 5000; the compose file is used as written but
for that (its `ports` removed, `network_mode: host` and BERTH_LISTEN added)."""
# berth-suite: daemons

import json
import os
import shutil
import subprocess
import tempfile
import unittest

import boto3
import yaml

import berth_harness as h
import daemons as d
import packaging_helpers as pk

UID = 10001
state = {}


def run(cmd, env=None, timeout=300):
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError("%s failed (%d): %s%s" % (" ".join(cmd), proc.returncode,
                                                       proc.stdout[-2000:], proc.stderr[-3000:]))
    return proc.stdout


def setUpModule():
    tmp = d.scratch_dir("berth-dimg-")
    state["tmp"] = tmp
    out = os.path.join(tmp, "image")
    run([os.path.join(h.REPO_ROOT, "scripts", "build-image.sh"), pk.BUILD_DIR, out])
    version = run([h.find_berth_bin(), "version"]).split()[1]
    state["version"] = version
    state["layout"] = os.path.join(out, "layout")
    # a berth to pull the image from (dockerd 20.10 cannot load an OCI archive)
    hub = h.Server()
    hub.start()
    state["hub"] = hub
    hub_ref = "127.0.0.1:%d/berth:%s" % (hub.port, version)
    run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
         "oci:%s:berth:%s" % (state["layout"], version), "docker://" + hub_ref])
    dockerd = d.Dockerd(os.path.join(tmp, "dockerd"))
    state["dockerd"] = dockerd
    dockerd.start()
    dockerd.docker("pull", hub_ref)
    state["image"] = "localhost/berth:" + version
    dockerd.docker("tag", hub_ref, state["image"])


def tearDownModule():
    if "dockerd" in state:
        state["dockerd"].stop()
    if "hub" in state:
        state["hub"].stop()
        state["hub"].cleanup()
    subprocess.run(["rm", "-rf", state["tmp"]])


def volume_dir():
    path = tempfile.mkdtemp(prefix="volume-", dir=state["tmp"])
    os.chown(path, UID, UID)
    os.chmod(path, 0o700)
    return path


class ImageUnderDockerTest(unittest.TestCase):
    def docker(self, *args, **kw):
        return state["dockerd"].docker(*args, **kw)

    def test_read_only_as_its_user_push_pull_and_itself(self):
        image, data, port = state["image"], volume_dir(), h.free_port()
        common = ["--read-only", "--user", "%d:%d" % (UID, UID), "--network", "host",
                  "-v", data + ":/var/lib/berth"]
        keys = self.docker("run", "--rm", *common, image, "keys", "create", "admin").out
        creds = dict(line.split("=", 1) for line in keys.split())
        name = "berth-itest-%d" % port
        self.docker("run", "-d", "--name", name, "--tmpfs", "/tmp", *common,
                    "-e", "BERTH_LISTEN=127.0.0.1:%d" % port, image)
        try:
            host = "127.0.0.1:%d" % port
            p = pk.http_get("http://%s/readyz" % host)
            h.wait_until(lambda: pk.http_get("http://%s/readyz" % host)[0] == 200, 30,
                         what="the container's berth to be ready")
            self.assertEqual(pk.http_get("http://%s/v2/" % host)[0], 401, p)
            self.docker("login", "--username", creds["AWS_ACCESS_KEY_ID"], "--password-stdin",
                        host, input=creds["AWS_SECRET_ACCESS_KEY"])
            # an image in and back out
            saved = d.SavedImage("itest/app:1")
            archive = os.path.join(state["tmp"], "app.tar")
            with open(archive, "wb") as f:
                f.write(saved.archive())
            self.docker("load", "-i", archive)
            ref = "%s/team/app:1" % host
            self.docker("tag", saved.tag, ref)
            self.docker("push", ref)
            self.docker("rmi", "--force", ref, saved.tag)
            self.docker("pull", ref)
            inspect = json.loads(self.docker("image", "inspect", ref).out)[0]
            self.assertEqual(inspect["Id"], saved.image_id)
            self.assertEqual(inspect["RootFS"]["Layers"], saved.diff_ids)
            # docs/auth.md: a repository policy with "Principal": "*" lets skopeo pull with no
            # credentials, but not docker, which after /v2/'s Basic challenge sends nothing
            # without them
            ecr = boto3.client("ecr", endpoint_url="http://" + host, region_name="us-east-1",
                               aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                               aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"])
            ecr.set_repository_policy(repositoryName="team/app", policyText=json.dumps({
                "Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Principal": "*",
                    "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]}]}))
            self.docker("logout", host)
            self.docker("rmi", ref)
            anonymous = self.docker("pull", ref, check=False)
            self.assertNotEqual(anonymous.rc, 0)
            self.assertIn("no basic auth credentials", anonymous.err)
            public_copy = os.path.join(state["tmp"], "public-copy")
            auth_file = os.path.join(state["tmp"], "no-auth.json")
            with open(auth_file, "w") as f:
                f.write("{}")
            run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--authfile", auth_file,
                 "docker://" + ref, "oci:%s:1" % public_copy])
            self.docker("login", "--username", creds["AWS_ACCESS_KEY_ID"], "--password-stdin",
                        host, input=creds["AWS_SECRET_ACCESS_KEY"])
            # berth's own image into the containerised berth, and back
            own = "%s/berth:%s" % (host, state["version"])
            self.docker("tag", image, own)
            self.docker("push", own)
            self.docker("rmi", own)
            self.docker("pull", own)
            out = self.docker("run", "--rm", "--read-only", "--user", "%d:%d" % (UID, UID),
                              own, "version").out
            self.assertEqual(out.split()[1], state["version"])
            # what the container wrote is in the volume, the image's user's
            self.assertEqual(os.stat(os.path.join(data, "berth.db")).st_uid, UID)
            self.assertTrue(os.path.isdir(os.path.join(data, "blobs")))
            self.docker("stop", "--time", "45", name)
            state_ = json.loads(self.docker("inspect", name).out)[0]["State"]
            self.assertEqual(state_["ExitCode"], 0)
        finally:
            logs = self.docker("logs", name, check=False)
            self.docker("rm", "--force", name, check=False)
        self.assertIn("event=server_stopped", logs.err + logs.out)


class ComposeUnderDockerTest(unittest.TestCase):
    def test_compose_up_serves_and_down_stops(self):
        dockerd = state["dockerd"]
        work = tempfile.mkdtemp(prefix="compose-", dir=state["tmp"])
        # the file as it is, but for the network: the test's dockerd has no bridge to publish
        # ports through, so the service takes the host's network and a free loopback port
        # (compose v1 refuses published ports with network_mode host, and an override file
        # cannot remove them)
        with open(os.path.join(h.REPO_ROOT, "deploy", "compose", "compose.yaml")) as f:
            doc = yaml.safe_load(f)
        service = doc["services"]["berth"]
        self.assertEqual(service.pop("ports"), ["5000:5000"])
        port = h.free_port()
        service["network_mode"] = "host"
        service["environment"]["BERTH_LISTEN"] = "127.0.0.1:%d" % port
        with open(os.path.join(work, "compose.yaml"), "w") as f:
            yaml.safe_dump(doc, f)
        keys_file = os.path.join(work, "keys.json")
        shutil.copy(os.path.join(h.REPO_ROOT, "deploy", "compose", "keys.example.json"),
                    keys_file)
        os.chown(keys_file, UID, UID)  # as deploy/README.md says
        os.chmod(keys_file, 0o400)
        env = dict(dockerd.env(), BERTH_IMAGE=state["image"],
                   COMPOSE_PROJECT_NAME="berthitest%d" % port)
        compose = ["docker-compose", "-f", "compose.yaml"]

        def compose_run(*args):
            proc = subprocess.run(compose + list(args), cwd=work, env=env, capture_output=True,
                                  text=True, timeout=300)
            return proc

        up = compose_run("up", "-d")
        try:
            self.assertEqual(up.returncode, 0, up.stdout + up.stderr)
            base = "http://127.0.0.1:%d" % port
            h.wait_until(lambda: pk.http_get(base + "/readyz")[0] == 200, 30,
                         what="berth under compose to be ready")
            with open(keys_file) as f:
                key = json.load(f)["auth"]["keys"][0]
            ref = "127.0.0.1:%d/compose/check:1" % port
            img = h.build_image(layer_count=1)
            layout = os.path.join(work, "layout")
            h.write_oci_layout(layout, {"1": img})
            creds = "%s:%s" % (key["access_key_id"], key["secret_access_key"])
            run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", creds,
                 "oci:%s:1" % layout, "docker://" + ref])
            digest = json.loads(run(["skopeo", "inspect", "--tls-verify=false", "--creds",
                                     creds, "docker://" + ref]))["Digest"]
            self.assertEqual(digest, img.digest)
        finally:
            down = compose_run("down", "--volumes", "--timeout", "45")
        self.assertEqual(down.returncode, 0, down.stdout + down.stderr)
        self.assertEqual(pk.http_get("http://127.0.0.1:%d/healthz" % port, timeout=2)[0], None)


if __name__ == "__main__":
    unittest.main(verbosity=2)
