"""berth migrate: a filesystem+SQLite registry (images, an index, a referrer, tags, a
repository policy, a lifecycle policy, an access key) is copied into S3 (a real OpenStack
Swift, swift_fixture.py) + PostgreSQL (pg_fixture.py) while its server keeps serving; a
first run is killed in the middle of the blobs and a second run completes, keeping what the
first copied; berth on the destination serves every image byte for byte with the same ECR
listings, policies and key; once that server has run, a re-run of the migration (which
would discard what it wrote) is refused unless --force; a destination that holds another
registry is refused; and the
registry is migrated back to a fresh filesystem+SQLite store that serves it the same way.
The upstream secrets key, the signing profiles' key files and the vulnerability database
are carried (or the run refused before copying anything when they could not be).

Starts Swift and PostgreSQL, so it runs only in the gcc pass of make test.
"""
# berth-suite: no-sanitizer

import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import unittest

import auth_helpers as e
import berth_harness as h
import clients as c
import ptc_helpers as p
import scan_helpers as sh
from pg_fixture import PostgresServer
from swift_fixture import SwiftServer

LIFECYCLE = json.dumps({"rules": [{
    "rulePriority": 1, "description": "expire old untagged",
    "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed",
                  "countUnit": "days", "countNumber": 30},
    "action": {"type": "expire"}}]})
POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Sid": "pull", "Effect": "Allow", "Principal": "*",
    "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]}]})


@unittest.skipUnless(h.IS_BERTH, "berth's own backend")
class MigrateTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = PostgresServer().start()
        cls.addClassCleanup(cls.pg.stop)
        cls.s3 = SwiftServer().start()
        cls.addClassCleanup(cls.s3.stop)
        cls.work = tempfile.mkdtemp(prefix="berth-migrate-")
        cls.addClassCleanup(shutil.rmtree, cls.work, True)

    def server(self, kind, name, extra=None):
        """A harness server (not started) for a store of kind 'local' (filesystem+SQLite) or
        'remote' (S3 under prefix name/ + PostgreSQL), and its config file for migrate
        (with extra's sections added)."""
        srv = h.Server(config={}, env={"BERTH_META_BACKEND": "sqlite" if kind == "local"
                                       else "postgres",
                                       "BERTH_STORAGE_BACKEND": "filesystem" if kind == "local"
                                       else "s3"})
        self.addCleanup(srv.cleanup)
        cfg = {"root": srv.root, "gc": {"enabled": False}}
        if kind == "remote":
            cfg["storage"] = {"backend": "s3", "s3": {
                "endpoint": self.s3.endpoint, "region": self.s3.region,
                "bucket": self.s3.bucket, "prefix": name + "/", "path_style": True,
                "access_key_id": self.s3.access_key, "secret_access_key": self.s3.secret_key}}
            cfg["meta"] = {"backend": "postgres", "postgres": {"dsn": self.pg.dsn}}
        cfg.update(extra or {})
        srv.config = cfg
        path = srv.config_file()
        return srv, path

    def migrate(self, src_conf, dst_conf, env=None, args=()):
        full = dict(os.environ)
        full.update(env or {})
        proc = subprocess.Popen([h.find_berth_bin(), "migrate", "--from", src_conf, "--to",
                                 dst_conf] + list(args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE,
                                env=full, stdin=subprocess.DEVNULL)
        return proc

    def finish(self, proc):
        out, err = proc.communicate(timeout=300)
        return proc.returncode, out.decode(), err.decode()

    # -- what a registry serves ------------------------------------------------------------------

    def snapshot(self, srv, key):
        """The ECR view of srv (signed with key): repositories, images, policies, tags."""
        ecr = c.ecr_client(srv, *key)
        host = "127.0.0.1:%d" % srv.port
        view = {}
        repos = ecr.describe_repositories()["repositories"]
        for r in repos:
            r["repositoryUri"] = r["repositoryUri"].replace(host, "HOST")
        view["repositories"] = sorted(repos, key=lambda r: r["repositoryName"])
        view["registry policy"] = ecr.get_registry_policy()["policyText"]
        view["scanning"] = ecr.get_registry_scanning_configuration()["scanningConfiguration"]
        status, doc, resp = e.signed_call(srv, "DescribeRepositoryCreationTemplates", {},
                                          *key)
        self.assertEqual(status, 200, resp.describe())
        view["templates"] = doc["repositoryCreationTemplates"]
        for r in view["repositories"]:
            name = r["repositoryName"]
            imgs = ecr.describe_images(repositoryName=name)["imageDetails"]
            view["images " + name] = sorted(imgs, key=lambda i: i["imageDigest"])
            ids = ecr.list_images(repositoryName=name)["imageIds"]
            view["ids " + name] = sorted(ids, key=lambda i: (i["imageDigest"],
                                                              i.get("imageTag", "")))
            for op, field in (("get_repository_policy", "policyText"),
                              ("get_lifecycle_policy", "lifecyclePolicyText")):
                try:
                    view[op + " " + name] = getattr(ecr, op)(repositoryName=name)[field]
                except ecr.exceptions.ClientError as exc:
                    view[op + " " + name] = e.error_code(exc)
        return view

    def pull_all(self, srv, key):
        """Every manifest and blob of every image, byte for byte, over /v2."""
        reg = srv.registry()
        auth = e.basic(*key)
        for repo, images in self.images.items():
            for img in images:
                for m in [img] + list(img.children):
                    resp = reg.request("GET", reg.manifest_path(repo, m.digest),
                                       headers=dict(auth, Accept=m.media_type))
                    self.assertEqual(resp.status, 200, resp.describe())
                    self.assertEqual(resp.body, m.manifest)
                    for digest, data in m.blobs.items():
                        resp = reg.request("GET", reg.blob_path(repo, digest), headers=auth)
                        self.assertEqual(resp.status, 200, resp.describe())
                        self.assertEqual(resp.body, data, digest)
        resp = reg.request("GET", "/v2/itest/migrate/app/tags/list", headers=auth)
        self.assertEqual(resp.json()["tags"], ["multi", "v1", "v2"])
        resp = reg.request("GET", "/v2/itest/migrate/app/referrers/" + self.image.digest,
                           headers=auth)
        self.assertEqual([d["digest"] for d in resp.json()["manifests"]], [self.sbom.digest])

    # -- the test ---------------------------------------------------------------------------------

    def test_migrate_there_and_back(self):
        src, src_conf = self.server("local", "src")
        src.start()
        reg = src.registry()
        repo = "itest/migrate/app"
        self.image = h.build_image(layer_count=4, layer_size=128 * 1024)
        v2 = h.build_image(layer_count=2)
        index = h.Index([h.build_image(layer_count=2, arch=a) for a in ("amd64", "arm64")],
                        platforms=[{"os": "linux", "architecture": "amd64"},
                                   {"os": "linux", "architecture": "arm64"}])
        self.sbom = h.build_artifact(subject=self.image.descriptor())
        other = h.build_image(layer_count=1)
        for img, tag in ((self.image, "v1"), (v2, "v2"), (index, "multi"), (self.sbom, None)):
            h.expect_status(reg.push_image(repo, img, tag=tag), 201)
        h.expect_status(reg.push_image("itest/migrate/other", other, tag="latest"), 201)
        self.images = {repo: [self.image, v2, index, self.sbom],
                       "itest/migrate/other": [other]}
        for op, body in (("SetRepositoryPolicy", {"repositoryName": repo, "policyText": POLICY}),
                         ("PutLifecyclePolicy", {"repositoryName": repo,
                                                 "lifecyclePolicyText": LIFECYCLE})):
            status, doc, resp = e.ecr_call(reg, op, body)
            self.assertEqual(status, 200, resp.describe())
        # registry-wide settings: registry policy, scanning configuration, a template
        ecr = c.ecr_client(src)
        ecr.put_registry_policy(policyText=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Sid": "replicate", "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                "Action": ["ecr:CreateRepository", "ecr:ReplicateImage"],
                "Resource": "arn:aws:ecr:%s:%s:repository/*" % (c.REGION, "000000000000")}]}))
        ecr.put_registry_scanning_configuration(scanType="BASIC", rules=[{
            "scanFrequency": "SCAN_ON_PUSH",
            "repositoryFilters": [{"filter": "itest/*", "filterType": "WILDCARD"}]}])
        status, doc, resp = e.ecr_call(reg, "CreateRepositoryCreationTemplate", {
            "prefix": "team/", "appliedFor": ["CREATE_ON_PUSH"],
            "imageTagMutability": "IMMUTABLE"})
        self.assertEqual(status, 200, resp.describe())
        key = e.keys_create(src, "admin")
        before = self.snapshot(src, key)
        self.assertEqual(len(before["repositories"]), 2)
        self.assertEqual([t["prefix"] for t in before["templates"]], ["team/"])
        self.assertIn("replicate", before["registry policy"])
        self.assertIn("Statement", before["get_repository_policy " + repo])
        blob_count = len({d for imgs in self.images.values() for img in imgs
                          for m in [img] + list(img.children) for d in m.blobs} |
                         {m.digest for imgs in self.images.values() for img in imgs
                          for m in [img] + list(img.children)})

        # a first run killed in the middle of the blobs leaves no metadata behind
        dst, dst_conf = self.server("remote", "dst")
        rc, out, err = self.finish(self.migrate(src_conf, dst_conf,
                                                {"BERTH_TEST_MIGRATE_KILL_AFTER": "3"}))
        self.assertEqual(rc, -9, err)
        self.assertIn("migrate: blobs: 0/%d" % blob_count, err)
        self.assertEqual(self.pg.psql("SELECT count(*) FROM repositories").strip(), "0")

        # the second run, while the source serves reads, keeps the three blobs copied
        proc = self.migrate(src_conf, dst_conf)
        for d, data in self.image.blobs.items():
            resp = reg.request("GET", reg.blob_path(repo, d), headers=e.basic(*key))
            self.assertEqual(resp.body, data)
        rc, out, err = self.finish(proc)
        self.assertEqual(rc, 0, err)
        m = re.search(r"migrate: (\d+) blobs \((\d+) copied, (\d+) already there", out)
        self.assertIsNotNone(m, out)
        self.assertEqual(int(m.group(1)), blob_count, out)
        self.assertEqual(int(m.group(3)), 3, out)
        self.assertEqual(int(m.group(2)), blob_count - 3, out)
        self.assertIn("%d blobs verified" % blob_count, out)
        for phase in ("blobs:", "metadata:", "verify:"):
            self.assertIn("migrate: " + phase, err)

        # nothing local on the destination: blobs in the bucket, rows in PostgreSQL
        keys = [o["Key"] for o in self.s3.client().list_objects_v2(
            Bucket=self.s3.bucket, Prefix="dst/blobs/").get("Contents", [])]
        self.assertEqual(len(keys), blob_count)
        self.assertFalse(os.path.exists(os.path.join(dst.root, "berth.db")))

        # berth on the destination serves the same registry, to the same key
        dst.start()
        self.assertEqual(self.snapshot(dst, key), before)
        self.pull_all(dst, key)
        # new rows continue after the copied ids (PostgreSQL's identity columns moved on)
        ecr = c.ecr_client(dst, *key)
        ecr.create_repository(repositoryName="itest/migrate/new")
        ecr.delete_repository(repositoryName="itest/migrate/new")
        dst.stop()

        # a re-run after the destination was served (cut over) would discard its writes:
        # refused, nothing changed
        self.assertEqual(self.pg.psql("SELECT count(*) FROM registry_settings WHERE name = "
                                      "'berth.served_since_migration'").strip(), "1")
        rows = self.pg.psql("SELECT count(*) FROM manifests").strip()
        rc, out, err = self.finish(self.migrate(src_conf, dst_conf))
        self.assertEqual(rc, 1, err)
        self.assertIn("berth serve has served it since the copy", err)
        self.assertIn("--force", err)
        self.assertEqual(self.pg.psql("SELECT count(*) FROM manifests").strip(), rows)
        # --force copies again: everything is there, nothing to copy; then, not served
        # since, a plain re-run is allowed
        rc, out, err = self.finish(self.migrate(src_conf, dst_conf, args=["--force"]))
        self.assertEqual(rc, 0, err)
        self.assertIn("%d blobs (0 copied, %d already there" % (blob_count, blob_count), out)
        rc, out, err = self.finish(self.migrate(src_conf, dst_conf))
        self.assertEqual(rc, 0, err)
        self.assertIn("%d blobs (0 copied, %d already there" % (blob_count, blob_count), out)

        # another registry's destination is refused, naming the problem
        stranger, stranger_conf = self.server("local", "stranger")
        stranger.start()
        h.expect_status(stranger.registry().push_image("x/y", h.build_image(), tag="t"), 201)
        stranger.stop()
        rc, out, err = self.finish(self.migrate(stranger_conf, dst_conf))
        self.assertNotEqual(rc, 0)
        self.assertIn("already holds another registry's data", err)
        self.assertEqual(self.pg.psql("SELECT count(*) FROM repositories").strip(), "2")

        # and back, to a fresh filesystem+SQLite store
        back, back_conf = self.server("local", "back")
        rc, out, err = self.finish(self.migrate(dst_conf, back_conf))
        self.assertEqual(rc, 0, err)
        self.assertIn("%d blobs (%d copied" % (blob_count, blob_count), out)
        back.start()
        self.assertEqual(self.snapshot(back, key), before)
        self.pull_all(back, key)
        back.stop()
        src.stop()

        # a blob whose bytes do not match its digest is refused and not published
        layer = self.image.layer_digests[0]
        alg, hexd = layer.split(":")
        path = os.path.join(back.root, "blobs", alg, hexd[:2], hexd)
        self.assertTrue(os.path.exists(path), path)
        with open(path, "r+b") as f:
            f.seek(100)
            f.write(b"\0corrupt\0")
        bad, bad_conf = self.server("local", "bad")
        rc, out, err = self.finish(self.migrate(back_conf, bad_conf))
        self.assertEqual(rc, 1, err)
        self.assertIn("blob %s of the source does not match its digest" % layer, err)
        self.assertFalse(os.path.exists(os.path.join(bad.root, "blobs", alg, hexd[:2], hexd)))

    def test_upstream_secrets_key_carried(self):
        """The source's upstream secrets (berth secrets) are sealed with its key file: a
        destination without a key gets a copy of it (0600), one with another key is refused
        before anything is copied."""
        src, src_conf = self.server("local", "sec-src")
        rc, _, err = p.berth_secrets(src, "put", "upstream", "--username", "u", password="pw")
        self.assertEqual(rc, 0, err)
        src_key = os.path.join(src.root, "secrets.key")
        with open(src_key) as f:
            key = f.read().strip()

        # another key in the destination: refused, nothing copied, its key kept
        other, other_conf = self.server("local", "sec-other")
        other_key = os.path.join(other.root, "secrets.key")
        with open(other_key, "w") as f:
            f.write("ab" * 32 + "\n")
        os.chmod(other_key, 0o600)
        rc, out, err = self.finish(self.migrate(src_conf, other_conf))
        self.assertEqual(rc, 1, err)
        self.assertIn("upstream secrets key", err)
        self.assertIn("differs from the source's", err)
        with open(other_key) as f:
            self.assertEqual(f.read().strip(), "ab" * 32)
        rc, out, err = p.berth_secrets(other, "list")
        self.assertEqual((rc, out.strip()), (0, ""), err)

        # none: the source's is copied, and the secret is there under it
        dst, dst_conf = self.server("local", "sec-dst")
        rc, out, err = self.finish(self.migrate(src_conf, dst_conf))
        self.assertEqual(rc, 0, err)
        self.assertIn("upstream secrets key copied", err)
        dst_key = os.path.join(dst.root, "secrets.key")
        with open(dst_key) as f:
            self.assertEqual(f.read().strip(), key)
        self.assertEqual(os.stat(dst_key).st_mode & 0o777, 0o600)
        rc, out, err = p.berth_secrets(dst, "list")
        self.assertEqual(rc, 0, err)
        self.assertIn("upstream", out)

    # -- the pairing of a database with its blob store ------------------------------------------

    def database(self, name):
        """The DSN of a new, empty database of the fixture's PostgreSQL."""
        self.pg.psql("CREATE DATABASE %s" % name)
        return self.pg.dsn.replace("dbname=postgres", "dbname=" + name)

    def config(self, name, root, prefix=None, dsn=None, endpoint=None):
        """A config file (filesystem+SQLite when dsn is None) for root, with S3 blobs
        under prefix when given."""
        cfg = {"root": root, "gc": {"enabled": False, "grace_seconds": 0}}
        if prefix is not None:
            cfg["storage"] = {"backend": "s3", "s3": {
                "endpoint": endpoint or self.s3.endpoint, "region": self.s3.region,
                "bucket": self.s3.bucket, "prefix": prefix, "path_style": True,
                "access_key_id": self.s3.access_key, "secret_access_key": self.s3.secret_key}}
        if dsn is not None:
            cfg["meta"] = {"backend": "postgres", "postgres": {"dsn": dsn}}
        path = os.path.join(self.work, name + ".json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        return path

    def load(self, conf):
        with open(conf) as f:
            return json.load(f)

    def gc(self, conf):
        return h.run_berth(["gc", "--config", conf], timeout=120)

    def store_id(self, prefix):
        try:
            obj = self.s3.client().get_object(Bucket=self.s3.bucket,
                                              Key=prefix + "berth-store-id")
        except Exception:  # NoSuchKey
            return None
        return obj["Body"].read().decode().strip()

    def db_store_id(self, dsn):
        out = subprocess.run([os.path.join(self.pg.bindir, "psql"), "-X", "-A", "-t", "-d", dsn,
                              "-c", "SELECT value FROM registry_settings "
                              "WHERE name = 'berth.blob_store_id'"],
                             check=True, stdout=subprocess.PIPE).stdout.decode().strip()
        return out or None

    def psql(self, dsn, sql):
        return subprocess.run([os.path.join(self.pg.bindir, "psql"), "-X", "-A", "-t", "-q",
                               "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", sql],
                              check=True, stdout=subprocess.PIPE).stdout.decode().strip()

    def db_tables(self, dsn):
        """The tables of the database's public schema, sorted."""
        out = self.psql(dsn, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                             "ORDER BY tablename")
        return out.split() if out else []

    def blob_keys(self, prefix):
        page = self.s3.client().list_objects_v2(Bucket=self.s3.bucket, Prefix=prefix + "blobs/")
        return sorted(o["Key"] for o in page.get("Contents", []))

    def test_blob_store_pairing(self):
        """A database and the S3 prefix of its blobs record one identity at their first
        open (berth-store-id beside the blobs, berth.blob_store_id in the database); a new or
        another database over those blobs (whose garbage collection would take every blob
        for an orphan) is refused with nothing deleted, an alias of the endpoint and another
        replica's root are not; berth migrate keeps each side's own pairing."""
        dsn = self.database("pairing")
        root = os.path.join(self.work, "pair-root")
        conf = self.config("pair", root, "pair/", dsn)
        srv = h.Server(config=self.load(conf))
        self.addCleanup(srv.cleanup)
        srv.start()
        h.expect_status(srv.registry().push_image("pair/app", h.build_image(layer_count=2),
                                                  tag="v1"), 201)
        srv.stop()
        paired = self.store_id("pair/")
        self.assertIsNotNone(paired)
        self.assertRegex(paired, "^[0-9a-f]{32}$")
        self.assertEqual(self.db_store_id(dsn), paired)
        blobs = self.blob_keys("pair/")
        self.assertTrue(blobs)

        # another replica's root, and the endpoint under another name: the same registry
        alias = self.s3.endpoint.replace("127.0.0.1", "localhost")
        self.assertNotEqual(alias, self.s3.endpoint)
        rc, out = self.gc(self.config("pair-replica", os.path.join(self.work, "pair-root-2"),
                                      "pair/", dsn, endpoint=alias))
        self.assertEqual(rc, 0, out)

        # a new database over these blobs (a wrong dsn): refused before its schema is made,
        # nothing deleted
        fresh = self.database("pairing_fresh")
        rc, out = self.gc(self.config("pair-fresh", os.path.join(self.work, "pair-root-3"),
                                      "pair/", fresh))
        self.assertEqual(rc, 2, out)
        self.assertIn("belong to a registry whose database is not this one", out)
        self.assertEqual(self.db_tables(fresh), [])
        # another application's database, and one of a newer berth: refused, not altered
        foreign = self.database("pairing_foreign")
        self.psql(foreign, "CREATE TABLE app_data (x INT); INSERT INTO app_data VALUES (1)")
        newer = self.database("pairing_newer")
        self.psql(newer, "CREATE TABLE berth_schema (version BIGINT NOT NULL);"
                         "INSERT INTO berth_schema VALUES (9999);"
                         "CREATE TABLE registry_settings (name TEXT PRIMARY KEY, "
                         "value TEXT NOT NULL, updated_at BIGINT NOT NULL)")
        for name, db, tables in (("foreign", foreign, ["app_data"]),
                                 ("newer", newer, ["berth_schema", "registry_settings"])):
            rc, out = self.gc(self.config("pair-" + name, os.path.join(self.work, "pair-r-" + name),
                                          "pair/", db))
            self.assertEqual(rc, 2, out)
            self.assertIn("belong to a registry whose database is not this one", out)
            self.assertEqual(self.db_tables(db), tables)
        self.assertEqual(self.psql(newer, "SELECT version FROM berth_schema"), "9999")
        # and a SQLite root's
        rc, out = self.gc(self.config("pair-sqlite", os.path.join(self.work, "pair-root-4"),
                                      "pair/"))
        self.assertEqual(rc, 2, out)
        self.assertIn("belong to a registry whose database is not this one", out)
        # a database paired with other blobs: refused too
        rc, out = self.gc(self.config("pair-other", os.path.join(self.work, "pair-root-5"),
                                      "pair-other/", fresh))
        self.assertEqual(rc, 0, out)
        other_id = self.store_id("pair-other/")
        self.assertEqual(self.db_store_id(fresh), other_id)
        rc, out = self.gc(self.config("pair-crossed", os.path.join(self.work, "pair-root-6"),
                                      "pair/", fresh))
        self.assertEqual(rc, 2, out)
        self.assertIn("belong to another registry's database", out)
        self.assertEqual(self.blob_keys("pair/"), blobs)
        self.assertEqual(self.store_id("pair/"), paired)

        # migrate S3 + PostgreSQL into S3 + PostgreSQL: the destination keeps its own pairing
        dst_dsn = self.database("pairing_dst")
        dst_conf = self.config("pair-dst", os.path.join(self.work, "pair-dst-root"),
                               "pair-dst/", dst_dsn)
        rc, out, err = self.finish(self.migrate(conf, dst_conf))
        self.assertEqual(rc, 0, err)
        dst_id = self.store_id("pair-dst/")
        self.assertIsNotNone(dst_id)
        self.assertNotEqual(dst_id, paired)
        self.assertEqual(self.db_store_id(dst_dsn), dst_id)
        self.assertEqual(self.db_store_id(dsn), paired)
        dst = h.Server(config=self.load(dst_conf))
        self.addCleanup(dst.cleanup)
        dst.start()
        r = dst.registry().get("/v2/pair/app/tags/list")
        self.assertEqual(r.status, 200, r.body)
        dst.stop()
        # and again (a resumed run), now that it was served: --force
        rc, out, err = self.finish(self.migrate(conf, dst_conf, args=["--force"]))
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.db_store_id(dst_dsn), dst_id)

    def test_blob_store_pairing_filesystem(self):
        """PostgreSQL with filesystem blobs is paired the same way, through the file
        <root>/blobs/berth-store-id: a new pair records one identity in both; the same pair
        starts; a new or another database over these blobs is refused (exit 2) before its
        schema is made, nothing deleted; blobs from before the pairing (no file) are adopted
        by their database, or paired anew when neither has an identity. SQLite with
        filesystem blobs (one root holds both) writes no file."""
        srv = h.Server(config={})
        self.addCleanup(srv.cleanup)
        root = srv.root
        dsn = self.database("fspair")
        conf = self.config("fspair", root, None, dsn)
        srv.config = self.load(conf)
        srv.start()
        h.expect_status(srv.registry().push_image("fspair/app", h.build_image(layer_count=2),
                                                  tag="v1"), 201)
        srv.stop()
        id_file = os.path.join(root, "blobs", "berth-store-id")

        def file_id():
            try:
                with open(id_file) as f:
                    return f.read().strip()
            except FileNotFoundError:
                return None

        def blob_files():
            return sorted(os.path.join(d, f) for d, _, fs in os.walk(os.path.join(root, "blobs"))
                          for f in fs if f != "berth-store-id")

        paired = file_id()
        self.assertRegex(paired or "", "^[0-9a-f]{32}$")
        self.assertEqual(self.db_store_id(dsn), paired)
        blobs = blob_files()
        self.assertTrue(blobs)
        # the same pair
        rc, out = self.gc(conf)
        self.assertEqual(rc, 0, out)
        # a new database over these blobs: refused, its schema not made, nothing deleted
        fresh = self.database("fspair_fresh")
        rc, out = self.gc(self.config("fspair-fresh", root, None, fresh))
        self.assertEqual(rc, 2, out)
        self.assertIn("belong to a registry whose database is not this one", out)
        self.assertIn(id_file, out)
        self.assertEqual(self.db_tables(fresh), [])
        # a database paired with other blobs: refused too
        rc, out = self.gc(self.config("fspair-other", os.path.join(self.work, "fspair-other"),
                                      None, fresh))
        self.assertEqual(rc, 0, out)
        other_id = self.db_store_id(fresh)
        self.assertRegex(other_id or "", "^[0-9a-f]{32}$")
        self.assertNotEqual(other_id, paired)
        rc, out = self.gc(self.config("fspair-crossed", root, None, fresh))
        self.assertEqual(rc, 2, out)
        self.assertIn("belong to another registry's database", out)
        self.assertEqual(blob_files(), blobs)
        self.assertEqual(file_id(), paired)
        # blobs from before the pairing (no file): their database's identity is recorded
        os.unlink(id_file)
        rc, out = self.gc(conf)
        self.assertEqual(rc, 0, out)
        self.assertEqual(file_id(), paired)
        # neither with one (both from before): a new pairing
        os.unlink(id_file)
        self.psql(dsn, "DELETE FROM registry_settings WHERE name = 'berth.blob_store_id'")
        rc, out = self.gc(conf)
        self.assertEqual(rc, 0, out)
        renewed = file_id()
        self.assertRegex(renewed or "", "^[0-9a-f]{32}$")
        self.assertNotEqual(renewed, paired)
        self.assertEqual(self.db_store_id(dsn), renewed)
        self.assertEqual(blob_files(), blobs)
        srv.start()
        r = srv.registry().get("/v2/fspair/app/tags/list")
        self.assertEqual(r.status, 200, r.body)
        srv.stop()
        # SQLite and filesystem blobs: no identity file
        sqlite_root = os.path.join(self.work, "fspair-sqlite")
        rc, out = self.gc(self.config("fspair-sqlite", sqlite_root))
        self.assertEqual(rc, 0, out)
        self.assertTrue(os.path.isdir(os.path.join(sqlite_root, "blobs")))
        self.assertFalse(os.path.exists(os.path.join(sqlite_root, "blobs", "berth-store-id")))

    def vulndb_rows(self, root):
        path = os.path.join(root, "vulndb.db")
        if not os.path.exists(path):
            return None
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
        try:
            return (sorted(r[0] for r in db.execute("SELECT osv_id FROM vulns")),
                    sorted(db.execute("SELECT key, value FROM meta")))
        finally:
            db.close()

    def test_signing_profiles_and_vulndb_carried(self):
        """The source's signing profile keys (signing.profiles_dir) and its vulnerability
        database (<root>/vulndb.db) go with it: a destination naming no profiles directory,
        or one whose file of a profile differs, is refused before anything is copied; one
        with a missing directory gets copies (0600, the directory 0700) and the database;
        a re-run keeps the destination's database while it is as new as the source's and
        copies it again after the source imported more."""
        profiles = os.path.join(self.work, "src-profiles")
        os.makedirs(profiles)
        keys = {"alpha.pem": b"-----BEGIN PRIVATE KEY-----\nalpha\n",
                "beta.pem": b"-----BEGIN PRIVATE KEY-----\nbeta\n"}
        for name, data in keys.items():
            with open(os.path.join(profiles, name), "wb") as f:
                f.write(data)
        with open(os.path.join(profiles, "README"), "w") as f:
            f.write("not a profile\n")
        src, src_conf = self.server("local", "prof-src",
                                    {"signing": {"profiles_dir": profiles}})
        osv = sh.write_osv(os.path.join(self.work, "osv-1"), sh.OSV_RECORDS)
        rc, out = h.run_berth(["vulndb", "import", osv], server=src, timeout=120)
        self.assertEqual(rc, 0, out)
        src_rows = self.vulndb_rows(src.root)
        self.assertTrue(src_rows[0], src_rows)

        # no profiles directory named: refused, nothing copied
        bare, bare_conf = self.server("local", "prof-bare")
        rc, out, err = self.finish(self.migrate(src_conf, bare_conf))
        self.assertEqual(rc, 1, err)
        self.assertIn("names no signing.profiles_dir", err)
        self.assertIsNone(self.vulndb_rows(bare.root))
        self.assertNotIn("blobs", out)

        # a profile's file differs: refused, the destination's file kept
        other_dir = os.path.join(self.work, "other-profiles")
        os.makedirs(other_dir)
        with open(os.path.join(other_dir, "beta.pem"), "wb") as f:
            f.write(b"another key")
        other, other_conf = self.server("local", "prof-other",
                                        {"signing": {"profiles_dir": other_dir}})
        rc, out, err = self.finish(self.migrate(src_conf, other_conf))
        self.assertEqual(rc, 1, err)
        self.assertIn("differs from the source's", err)
        self.assertEqual(sorted(os.listdir(other_dir)), ["beta.pem"])
        with open(os.path.join(other_dir, "beta.pem"), "rb") as f:
            self.assertEqual(f.read(), b"another key")
        self.assertIsNone(self.vulndb_rows(other.root))

        # a directory yet to be made: the keys and the database are copied
        dst_dir = os.path.join(self.work, "dst", "profiles")
        dst, dst_conf = self.server("local", "prof-dst",
                                    {"signing": {"profiles_dir": dst_dir}})
        rc, out, err = self.finish(self.migrate(src_conf, dst_conf))
        self.assertEqual(rc, 0, err)
        self.assertIn("2 signing profile keys copied", err)
        self.assertIn("vulnerability database copied", err)
        self.assertEqual(sorted(os.listdir(dst_dir)), sorted(keys))
        self.assertEqual(os.stat(dst_dir).st_mode & 0o777, 0o700)
        for name, data in keys.items():
            path = os.path.join(dst_dir, name)
            with open(path, "rb") as f:
                self.assertEqual(f.read(), data)
            self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        self.assertEqual(self.vulndb_rows(dst.root), src_rows)

        # again: the files are the same, the database as new: kept
        rc, out, err = self.finish(self.migrate(src_conf, dst_conf))
        self.assertEqual(rc, 0, err)
        self.assertNotIn("signing profile keys copied", err)
        self.assertIn("vulnerability database was imported as late as the source's: kept", err)

        # the source imports more: the next run brings it
        late = sh.write_osv(os.path.join(self.work, "osv-2"), sh.OSV_LATE)
        rc, out = h.run_berth(["vulndb", "import", late], server=src, timeout=120)
        self.assertEqual(rc, 0, out)
        newer = self.vulndb_rows(src.root)
        self.assertNotEqual(newer, src_rows)
        rc, out, err = self.finish(self.migrate(src_conf, dst_conf))
        self.assertEqual(rc, 0, err)
        self.assertIn("vulnerability database copied", err)
        self.assertEqual(self.vulndb_rows(dst.root), newer)

        # both naming the same directory: nothing to copy
        same, same_conf = self.server("local", "prof-same",
                                      {"signing": {"profiles_dir": profiles}})
        rc, out, err = self.finish(self.migrate(src_conf, same_conf))
        self.assertEqual(rc, 0, err)
        self.assertNotIn("signing profile keys copied", err)
        self.assertEqual(sorted(os.listdir(profiles)), sorted(list(keys) + ["README"]))

    def test_vulndb_shared_there_and_back(self):
        """Into PostgreSQL, the source's vulnerability database becomes the destination's
        shared one (docs/scale-out.md): published as generation 1 (a blob under the
        prefix), kept on a re-run, generation 2 after the source imported more; and back
        into a single node, the shared generation is written to <root>/vulndb.db."""
        src_root = os.path.join(self.work, "vdb-src")
        src_conf = self.config("vdb-src", src_root)
        rc, out = self.gc(src_conf)
        self.assertEqual(rc, 0, out)
        osv = sh.write_osv(os.path.join(self.work, "vdb-osv-1"), sh.OSV_RECORDS)
        rc, out = h.run_berth(["vulndb", "import", osv, "--config", src_conf], timeout=120)
        self.assertEqual(rc, 0, out)
        dsn = self.database("vdbdst")
        dst_conf = self.config("vdb-dst", os.path.join(self.work, "vdb-dst"), prefix="vdbdst/",
                               dsn=dsn)
        rc, out, err = self.finish(self.migrate(src_conf, dst_conf))
        self.assertEqual(rc, 0, err)
        self.assertRegex(err, r"vulnerability database published as the destination's shared "
                              r"generation 1 \(sha256:[0-9a-f]{64}\)")
        row = self.psql(dsn, "SELECT generation, records, digest FROM vulndb_shared").split("|")
        self.assertEqual(row[:2], ["1", str(len(sh.OSV_RECORDS))])
        self.assertIn("vdbdst/blobs/sha256/%s/%s" % (row[2][7:9], row[2][7:]),
                      self.blob_keys("vdbdst/"))

        # again: as new, kept
        rc, out, err = self.finish(self.migrate(src_conf, dst_conf))
        self.assertEqual(rc, 0, err)
        self.assertIn("shared vulnerability database was imported as late as the source's: "
                      "kept", err)
        self.assertEqual(self.psql(dsn, "SELECT generation FROM vulndb_shared"), "1")
        # its blob keeps its row (the collector would take the bytes of one without)
        self.assertEqual(self.psql(dsn, "SELECT count(*) FROM blobs WHERE digest = '%s'"
                                   % row[2]), "1")

        # the source imports more: the next run publishes generation 2
        late = sh.write_osv(os.path.join(self.work, "vdb-osv-2"), sh.OSV_LATE)
        rc, out = h.run_berth(["vulndb", "import", late, "--config", src_conf], timeout=120)
        self.assertEqual(rc, 0, out)
        rc, out, err = self.finish(self.migrate(src_conf, dst_conf))
        self.assertEqual(rc, 0, err)
        self.assertIn("shared generation 2", err)
        self.assertEqual(self.psql(dsn, "SELECT generation, records FROM vulndb_shared"),
                         "2|%d" % (len(sh.OSV_RECORDS) + len(sh.OSV_LATE)))

        # back into a single node: the shared generation as <root>/vulndb.db
        back_root = os.path.join(self.work, "vdb-back")
        back_conf = self.config("vdb-back", back_root)
        rc, out, err = self.finish(self.migrate(dst_conf, back_conf))
        self.assertEqual(rc, 0, err)
        self.assertIn("vulnerability database copied to %s/vulndb.db" % back_root, err)
        self.assertEqual(self.vulndb_rows(back_root), self.vulndb_rows(src_root))
        for root in (back_root, os.path.join(self.work, "vdb-dst")):
            self.assertEqual([n for n in os.listdir(root) if n.startswith("vulndb-")], [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
