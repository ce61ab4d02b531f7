# berth-suite: postgres
"""A manifest push is one transaction on PostgreSQL (issue 12: "every multi-row write ...
in one transaction"): the manifest's row, its references and the tag moved to it are
written together or not at all. A trigger on the tags table refuses the tag's write, the
last of the three (a tag names its manifest's row, so that row was written before it):
the push fails, and afterwards neither the new manifest nor its references are in the
database, and the tag still names the image it named. Once the trigger is gone the same
push succeeds. The server is a real PostgreSQL started by pg_fixture.py."""

import unittest

import berth_harness as h
from pg_case import PostgresTestCase

REFUSE_TAGS = """
CREATE OR REPLACE FUNCTION berth_test_refuse() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'berth test: tag write refused'; END $$;
CREATE TRIGGER berth_test_refuse BEFORE INSERT OR UPDATE ON tags
FOR EACH ROW EXECUTE FUNCTION berth_test_refuse();
"""


@unittest.skipUnless(h.IS_BERTH, "berth's own backend")
class PostgresTransactionTest(PostgresTestCase):
    def count(self, sql):
        return int(self.pg.psql(sql).strip())

    def refs_of(self, image):
        digests = ",".join("'%s'" % d for d in image.blobs)
        return self.count("SELECT count(*) FROM manifest_refs WHERE digest IN (%s)" % digests)

    def test_manifest_references_and_tag_move_together(self):
        repo = "tx/app"
        first = h.build_image(layer_count=1, layer_size=4096)
        h.expect_status(self.reg.push_image(repo, first, tag="v1"), 201)
        self.assertGreater(self.refs_of(first), 0)  # references are rows: the check counts
        second = h.build_image(layer_count=2, layer_size=4096)
        for data in second.blobs.values():
            h.expect_status(self.reg.push_blob(repo, data), 201)
        self.pg.psql(REFUSE_TAGS)
        try:
            resp = self.reg.put_manifest(repo, "v1", second.manifest, second.media_type)
            self.assertGreaterEqual(resp.status, 500, resp.describe())
        finally:
            self.pg.psql("DROP TRIGGER berth_test_refuse ON tags")
        self.assertIn("tag write refused", self.server.log_text())
        self.assertEqual(self.count("SELECT count(*) FROM manifests WHERE digest = '%s'"
                                    % second.digest), 0)
        self.assertEqual(self.refs_of(second), 0)
        self.assertEqual(self.reg.get_manifest(repo, second.digest).status, 404)
        resp = self.reg.get_manifest(repo, "v1")
        self.assertEqual((resp.status, resp.body), (200, first.manifest))
        # the same push once the tags table takes writes again
        h.expect_status(self.reg.put_manifest(repo, "v1", second.manifest, second.media_type),
                        201)
        self.assertGreater(self.refs_of(second), 0)
        self.assertEqual(self.reg.get_manifest(repo, "v1").body, second.manifest)


if __name__ == "__main__":
    h.main()
