# berth-suite: postgres
"""A manifest push is one transaction on PostgreSQL (issue 12: "every multi-row write ...
in one transaction"): the manifest's row, its references and the tag moved to it are
written together or not at all. A trigger on the tags table refuses the tag's write, the
last of the three (a tag names its manifest's row, so that row was written before it):
the push fails, and afterwards neither the new manifest nor its references are in the
database, and the tag still names the image it named. Once the trigger is gone the same
push succeeds. The server is a real PostgreSQL started by pg_fixture.py.

The same for the other multi-row writes. A lifecycle deletion is one transaction per image
(the expiry re-checks each image under the write lock, storage/lifecycle/run.c): the
references' blobs are touched, then the manifest row goes with its tags and references;
a trigger refusing one tag's delete leaves that image whole, blob touches included, while
the images before and after it go. A GC batch deletes several blob rows in one
transaction (storage/gc/gc.c delete_batch): a trigger refuses the second delete of a
transaction, naming the blob deleted before it in the same transaction; that blob's row
and bytes remain, and the next pass without the trigger removes every unreferenced blob
and nothing else."""

import json
import re
import unittest

import berth_harness as h
import lifegc_helpers as lg
from pg_case import PostgresTestCase

REFUSE_TAGS = """
CREATE OR REPLACE FUNCTION berth_test_refuse() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'berth test: tag write refused'; END $$;
CREATE TRIGGER berth_test_refuse BEFORE INSERT OR UPDATE ON tags
FOR EACH ROW EXECUTE FUNCTION berth_test_refuse();
"""


# Refuses the delete of tag v2 (a cascade of its manifest row's delete).
REFUSE_TAG_V2 = """
CREATE OR REPLACE FUNCTION berth_test_refuse_tag() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN
  IF OLD.name = 'v2' THEN RAISE EXCEPTION 'berth test: tag delete refused'; END IF;
  RETURN OLD;
END $$;
CREATE TRIGGER berth_test_refuse_tag BEFORE DELETE ON tags
FOR EACH ROW EXECUTE FUNCTION berth_test_refuse_tag();
"""

# Refuses a blob row's delete when the same transaction already deleted one (a setting
# local to the transaction remembers it), naming that one.
REFUSE_SECOND_BLOB = """
CREATE OR REPLACE FUNCTION berth_test_refuse_blob() RETURNS trigger LANGUAGE plpgsql AS
$$ DECLARE before text := coalesce(current_setting('berth_test.deleted', true), '');
BEGIN
  IF before <> '' THEN
    RAISE EXCEPTION 'berth test: blob delete refused after <%>', before;
  END IF;
  PERFORM set_config('berth_test.deleted', OLD.digest, true);
  RETURN OLD;
END $$;
CREATE TRIGGER berth_test_refuse_blob BEFORE DELETE ON blobs
FOR EACH ROW EXECUTE FUNCTION berth_test_refuse_blob();
"""

EXPIRE_ALL_BUT_NEWEST = json.dumps({"rules": [{
    "rulePriority": 1, "description": "keep the newest",
    "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
    "action": {"type": "expire"}}]})


@unittest.skipUnless(h.IS_BERTH, "berth's own backend")
class PostgresTransactionTest(PostgresTestCase):
    # GC and lifecycle run only when a test runs them (berth gc / berth lifecycle run)
    server_config = {"gc": {"enabled": False}, "lifecycle": {"enabled": False}}

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

    def touched(self, image):
        digests = ",".join("'%s'" % d for d in image.blobs)
        return self.pg.psql("SELECT digest, touched_at FROM blobs WHERE digest IN (%s) "
                            "ORDER BY digest" % digests)

    def manifest_rows(self, image):
        return self.count("SELECT count(*) FROM manifests WHERE digest = '%s'" % image.digest)

    def test_lifecycle_deletion_of_an_image_is_one_transaction(self):
        repo = "tx/life"
        images = {}
        for tag in ("v1", "v2", "v3", "v4"):  # oldest first; v4 is kept
            images[tag] = h.build_image(layer_count=1, layer_size=4096)
            h.expect_status(self.reg.push_image(repo, images[tag], tag=tag), 201)
        lg.aws_ok(self, self.server, "put-lifecycle-policy", "--repository-name", repo,
                  "--lifecycle-policy-text", EXPIRE_ALL_BUT_NEWEST)
        before = self.touched(images["v2"])
        self.pg.psql(REFUSE_TAG_V2)
        try:
            rc, out = h.run_berth(["lifecycle", "run", repo], server=self.server, timeout=120)
        finally:
            self.pg.psql("DROP TRIGGER berth_test_refuse_tag ON tags")
        self.assertIn("tag delete refused", out, out)
        # v2 is whole: its manifest row, its tag, its references, and the touch of its
        # blobs (the deletion's first statement) rolled back with the rest
        self.assertEqual(self.manifest_rows(images["v2"]), 1, out)
        self.assertGreater(self.refs_of(images["v2"]), 0, out)
        self.assertEqual(self.touched(images["v2"]), before, out)
        resp = self.reg.get_manifest(repo, "v2")
        self.assertEqual((resp.status, resp.body), (200, images["v2"].manifest))
        # each image is its own transaction: the others expired all the same
        for tag in ("v1", "v3"):
            self.assertEqual(self.manifest_rows(images[tag]), 0, "%s\n%s" % (tag, out))
            self.assertEqual(self.reg.get_manifest(repo, images[tag].digest).status, 404)
        self.assertEqual(self.reg.get_manifest(repo, "v4").body, images["v4"].manifest)
        # once the tags table takes deletes again the next run expires v2
        rc, out = h.run_berth(["lifecycle", "run", repo], server=self.server, timeout=120)
        self.assertEqual(rc, 0, out)
        self.assertEqual(self.manifest_rows(images["v2"]), 0, out)
        self.assertEqual(self.refs_of(images["v2"]), 0, out)
        self.assertEqual(self.reg.get_manifest(repo, "v2").status, 404)
        self.assertEqual(self.reg.get_manifest(repo, "v4").body, images["v4"].manifest)

    def run_gc(self, **env):
        env["BERTH_GC_GRACE_SECONDS"] = "0"
        return h.run_berth(["gc"], server=self.server, env=env, timeout=120)

    def test_gc_batch_is_one_transaction(self):
        repo = "tx/gc"
        kept = h.build_image(layer_count=2, layer_size=4096)
        h.expect_status(self.reg.push_image(repo, kept, tag="kept"), 201)
        rc, out = self.run_gc()  # leaves only what this test pushes next as garbage
        self.assertEqual(rc, 0, out)
        garbage = {}
        for i in range(40):  # blobs no manifest names: garbage at once with no grace
            data = b"berth gc transaction %d " % i * 64
            resp = self.reg.push_blob(repo, data)
            h.expect_status(resp, 201)
            garbage[h.digest_of(data)] = data
        self.pg.psql(REFUSE_SECOND_BLOB)
        try:
            # a batch holds the lock at most 2 ms: on a busy machine one may take a single
            # blob; a minute's budget puts all 40 in one batch, whatever the load
            rc, out = self.run_gc(BERTH_TEST_GC_BATCH_BUDGET_US="60000000")
        finally:
            self.pg.psql("DROP TRIGGER berth_test_refuse_blob ON blobs")
        self.assertNotEqual(rc, 0, out)
        match = re.search(r"blob delete refused after <(sha256:[0-9a-f]{64})>", out)
        self.assertIsNotNone(match, "no batch deleted two blobs:\n%s" % out)
        first = match.group(1)
        self.assertIn(first, garbage)
        # the delete that went through before the refused one rolled back with it: its
        # row is there and its bytes were not removed
        self.assertEqual(self.count("SELECT count(*) FROM blobs WHERE digest = '%s'"
                                    % first), 1, out)
        resp = self.reg.get_blob(repo, first)
        self.assertEqual((resp.status, resp.body), (200, garbage[first]), out)
        # without the trigger the pass completes: all garbage goes, the image stays
        rc, out = self.run_gc()
        self.assertEqual(rc, 0, out)
        digests = ",".join("'%s'" % d for d in garbage)
        self.assertEqual(self.count("SELECT count(*) FROM blobs WHERE digest IN (%s)"
                                    % digests), 0, out)
        self.assertEqual(self.reg.get_blob(repo, first).status, 404)
        self.assertEqual(self.reg.get_manifest(repo, "kept").body, kept.manifest)
        for digest, data in kept.blobs.items():
            resp = self.reg.get_blob(repo, digest)
            self.assertEqual((resp.status, resp.body), (200, data), digest)


if __name__ == "__main__":
    h.main()
