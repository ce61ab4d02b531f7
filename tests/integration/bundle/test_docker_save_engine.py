"""berth import of what a real `docker save` writes (Debian's docker.io through a private
dockerd, lib/daemons.py), into a running berth, then pulled back by that dockerd: the image
ID (the config's digest) and the layers' diff IDs are Docker's own, so the archive's
digests survived the import. test_docker_save.py covers the formats byte by byte with
archives the test writes; this one the tool's real output."""
# berth-suite: daemons

import json
import os

import berth_harness as h
import daemons as d

dockerd = None


def setUpModule():
    global dockerd
    dockerd = d.Dockerd(d.scratch_dir("berth-save-dockerd-"))
    d.start_all(dockerd)


def tearDownModule():
    d.remove_all(dockerd)


class DockerSaveEngineTest(h.ServerTestCase):
    def test_import_of_docker_save_into_a_running_server(self):
        dockerd.reset_client_config()
        image = d.SavedImage("itest/saved/app:v1", layer_count=2)
        dockerd.load(image)
        saved = os.path.join(dockerd.work, "saved.tar")
        dockerd.docker("save", "-o", saved, image.tag)
        rc, out = h.run_berth(["import", saved], server=self.server, timeout=120)
        self.assertEqual(rc, 0, out)
        self.assertIn("1 tags set", out)
        reg = self.server.registry()
        doc = json.loads(h.expect_status(reg.get_manifest("itest/saved/app", "v1",
                                                          accept=h.DOCKER_ACCEPT), 200).body)
        self.assertEqual(doc["config"]["digest"], image.image_id)
        ref = "127.0.0.1:%d/itest/saved/app:v1" % self.server.port
        dockerd.docker("rmi", "--force", image.tag)
        dockerd.docker("pull", ref)
        self.assertEqual(dockerd.image_ids(ref), (image.image_id, image.diff_ids))


if __name__ == "__main__":
    h.main()
