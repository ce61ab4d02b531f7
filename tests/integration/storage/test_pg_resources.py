# berth-suite: postgres
"""PostgreSQL running out of resources under a berth serving traffic (meta.backend
postgres): mapped as on SQLite (docs/storage.md, "PostgreSQL metadata").

- The server out of memory (SQLSTATE 53200) in a statement: /v2 answers 503
  UNAVAILABLE with Retry-After (it was a 500), the ECR API a ServerException; the
  failure is real PostgreSQL's: a trigger on the table the request writes raises
  the SQLSTATE (the server's own out-of-memory error carries the same one), and
  once it is dropped the same requests succeed.
- The server out of connection slots (53300, a role's CONNECTION LIMIT 0 after
  berth's backends were terminated, so every reconnect is refused): /v2 503
  UNAVAILABLE with Retry-After, /readyz 503, ECR ServerException; served again once
  the limit is lifted, with no berth restart.
The server is a real PostgreSQL started by pg_fixture.py.
"""

import os
import subprocess
import time
import unittest

import berth_harness as h
from pg_case import PostgresTestCase

WAIT = 120.0

RAISE_OOM = """
CREATE OR REPLACE FUNCTION berth_test_oom() RETURNS trigger LANGUAGE plpgsql AS
$$BEGIN RAISE EXCEPTION 'out of memory (test)' USING ERRCODE = 'out_of_memory'; END$$;
"""


def psql(pg, dsn, sql):
    out = subprocess.run([os.path.join(pg.bindir, "psql"), "-X", "-A", "-t", "-v",
                          "ON_ERROR_STOP=1", "-d", dsn, "-c", sql], check=True,
                         stdout=subprocess.PIPE)
    return out.stdout.decode()


@unittest.skipUnless(h.IS_BERTH, "berth's own backend")
class PostgresResourcesTest(PostgresTestCase):
    server_log_lines = 120

    @classmethod
    def database(cls, pg):
        # A role of its own, not a superuser (a CONNECTION LIMIT binds only those),
        # owning a database of its own (berth creates its tables there).
        pg.psql("CREATE ROLE berth_app LOGIN")
        pg.psql("CREATE DATABASE berth_app OWNER berth_app")
        cls.admin_dsn = "host=%s port=%d user=berth dbname=berth_app" % (pg.socket_dir, pg.port)
        return "host=%s port=%d user=berth_app dbname=berth_app" % (pg.socket_dir, pg.port)

    def assert_unavailable(self, resp):
        self.assertEqual(resp.status, 503, resp.describe())
        self.assertEqual(resp.error_codes(), ["UNAVAILABLE"])
        self.assertTrue(resp.header("Retry-After"), resp.describe())

    def test_server_out_of_memory_is_503(self):
        image = h.build_image(layer_count=1, layer_size=4096)
        for data in image.blobs.values():
            h.expect_status(self.reg.push_blob("oom/a", data), 201)
        self.assertEqual(self.reg.ecr("CreateRepository", {"repositoryName": "oom/ecr"}).status,
                         200)
        psql(self.pg, self.admin_dsn, RAISE_OOM +
             "CREATE TRIGGER berth_test_oom BEFORE INSERT ON uploads "
             "FOR EACH ROW EXECUTE FUNCTION berth_test_oom(); "
             "CREATE TRIGGER berth_test_oom BEFORE INSERT ON manifests "
             "FOR EACH ROW EXECUTE FUNCTION berth_test_oom();")
        try:
            self.assert_unavailable(self.reg.start_upload("oom/a"))
            self.assert_unavailable(self.reg.put_manifest("oom/a", "v1", image.manifest,
                                                          image.media_type))
            resp = self.reg.ecr("InitiateLayerUpload", {"repositoryName": "oom/ecr"})
            self.assertEqual(resp.json().get("__type"), "ServerException", resp.describe())
            self.assertIn(resp.status, (500, 503), resp.describe())
            # reads need no insert: served meanwhile
            digest = next(iter(image.blobs))
            self.assertEqual(self.reg.head_blob("oom/a", digest).status, 200)
        finally:
            psql(self.pg, self.admin_dsn, "DROP TRIGGER berth_test_oom ON uploads; "
                 "DROP TRIGGER berth_test_oom ON manifests")
        self.assertIn("code=53200", self.server.log_text())
        self.assertEqual(self.reg.start_upload("oom/a").status, 202)
        h.expect_status(self.reg.put_manifest("oom/a", "v1", image.manifest, image.media_type),
                        201)
        self.assertEqual(self.reg.ecr("InitiateLayerUpload", {"repositoryName": "oom/ecr"}).status,
                         200)

    def test_out_of_connection_slots_is_503(self):
        image = h.build_image(layer_count=1, layer_size=4096)
        h.expect_status(self.reg.push_image("slots/a", image, tag="v1"), 201)
        self.assertEqual(self.reg.ecr("CreateRepository", {"repositoryName": "slots/ecr"}).status,
                         200)
        self.pg.psql("ALTER ROLE berth_app CONNECTION LIMIT 0")
        try:
            # every backend of berth's gone: each of its connections must be made again,
            # and the server refuses them (53300)
            self.pg.psql("SELECT pg_terminate_backend(pid, 30000) FROM pg_stat_activity "
                         "WHERE usename = 'berth_app'")
            # answered before the next request: a connection the server dropped is
            # only found lost by the statement that uses it (503 too)
            for _ in range(3):
                self.assert_unavailable(self.reg.get_manifest("slots/a", "v1",
                                                              image.media_type))
                self.assert_unavailable(self.reg.start_upload("slots/a"))
            resp = self.reg.ecr("DescribeRepositories", {"repositoryNames": ["slots/ecr"]})
            self.assertEqual(resp.status, 503, resp.describe())
            self.assertEqual(resp.json()["__type"], "ServerException")
            self.assertEqual(self.reg.request("GET", "/readyz").status, 503)
            self.assertIn("too many connections", self.server.log_text())
        finally:
            self.pg.psql("ALTER ROLE berth_app CONNECTION LIMIT -1")
        deadline = time.monotonic() + WAIT
        while self.reg.get_manifest("slots/a", "v1", image.media_type).status != 200:
            self.assertLess(time.monotonic(), deadline, "not served again")
            time.sleep(0.1)
        resp = self.reg.get_manifest("slots/a", "v1", image.media_type)
        self.assertEqual(resp.body, image.manifest)
        self.assertEqual(self.reg.start_upload("slots/a").status, 202)
        self.assertTrue(self.server.proc.poll() is None, "berth exited")


if __name__ == "__main__":
    unittest.main()
