"""Promises README.md makes that no other test checked: every response carries its request
id in X-Request-Id, the same id as the req= of its access-log line; storage.tags_max_entries
clamps a bigger (or absent) n and says so with a Link; `berth --help` lists every key of
the documented configuration (conf/berth.json) with its environment variable."""

import json
import os
import re
import unittest
import urllib.parse

import berth_harness as h

EXAMPLE_CONFIG = os.path.join(h.REPO_ROOT, "conf", "berth.json")
ECR_TARGET = "AmazonEC2ContainerRegistry_V20150921."
LINK_RE = re.compile(r'^<([^>]+)>\s*;\s*rel="?next"?$')


@h.berth_only("berth's request ids and access log")
class RequestIdTest(h.ServerTestCase):
    server_config = {"storage": {"manifest_max_bytes": 1024}}

    def access_line(self, request_id):
        """The access-log line whose req= is request_id (waiting for it to be written)."""
        pattern = re.compile(r"\bevent=access\b.*\breq=%s(\s|$)" % re.escape(request_id))

        def line():
            return next((ln for ln in self.server.log_text().splitlines()
                         if pattern.search(ln)), None)
        return h.wait_until(line, 30, what="the access line of request %s" % request_id)

    def test_every_response_carries_its_request_id(self):
        repo = self.repo()
        img = h.build_image(layer_count=1, layer_size=1024)
        self.push_image_ok(repo, img, tag="v1")
        layer = img.layer_digests[0]
        upload = self.assertStatus(self.reg.start_upload(repo), 202).header("Location")
        big = json.dumps({"schemaVersion": 2, "padding": "x" * 2048}).encode()
        ecr = {"Content-Type": "application/x-amz-json-1.1"}
        requests = [
            ("GET", "/v2/", {}, None, 200),
            ("HEAD", "/v2/", {}, None, 200),
            ("GET", "/v2/_catalog", {}, None, 200),
            ("GET", "/v2/%s/tags/list" % repo, {}, None, 200),
            ("GET", self.reg.manifest_path(repo, "v1"), {"Accept": img.media_type}, None, 200),
            ("HEAD", self.reg.manifest_path(repo, img.digest), {}, None, 200),
            ("GET", self.reg.blob_path(repo, layer), {}, None, 200),
            ("GET", self.reg.blob_path(repo, layer), {"Range": "bytes=0-9"}, None, 206),
            ("GET", self.reg.blob_path(repo, layer), {"Range": "bytes=999999-"}, None, 416),
            ("GET", self.reg.resolve(upload), {}, None, 204),
            ("PATCH", self.reg.resolve(upload), {"Content-Range": "5-9"}, b"abcde", 416),
            ("PUT", self.reg.manifest_path(repo, "big"), {"Content-Type": h.MT_OCI_MANIFEST},
             big, 413),
            ("GET", self.reg.manifest_path(repo, "missing"), {}, None, 404),
            ("GET", "/v2/no/such/route/at/all", {}, None, 404),
            ("DELETE", "/v2/", {}, None, 405),
            ("POST", "/", dict(ecr, **{"X-Amz-Target": ECR_TARGET + "DescribeRepositories"}),
             b"{}", 200),
            ("POST", "/", dict(ecr, **{"X-Amz-Target": ECR_TARGET + "NoSuchOperation"}),
             b"{}", 400),
            ("POST", "/", dict(ecr, **{"X-Amz-Target": ECR_TARGET + "ListImages"}),
             b"{not json", 400),
        ]
        seen = set()
        for method, target, headers, body, status in requests:
            with self.subTest(method=method, target=target):
                resp = self.reg.request(method, target, headers=headers, body=body)
                self.assertStatus(resp, status)
                request_id = self.assertHasHeader(resp, "X-Request-Id")
                self.assertRegex(request_id, r"^[0-9A-Za-z-]{8,64}$")
                self.assertNotIn(request_id, seen, "request ids repeat")
                seen.add(request_id)
                line = self.access_line(request_id)
                self.assertRegex(line, r'\bmethod="?%s\b' % method)
                self.assertRegex(line, r'\bstatus="?%d\b' % status)
                path = urllib.parse.urlsplit(target).path
                self.assertIn("path=%s" % path, line.replace('"', ""))
                if target == "/":
                    # an ECR call: its operation, the x-amzn-RequestId a client reports, and
                    # the __type of a failure
                    op = headers["X-Amz-Target"][len(ECR_TARGET):]
                    amzn = self.assertHasHeader(resp, "x-amzn-RequestId")
                    fields = " op=%s amzn_id=%s" % (op if status == 200 or op == "ListImages"
                                                    else "unknown", amzn)
                    if status != 200:
                        fields += " error=" + resp.header("x-amzn-ErrorType")
                    self.assertIn(fields + " req=" + request_id, line)
                else:
                    self.assertNotIn("amzn_id=", line)


class TagsMaxEntriesTest(h.ServerTestCase):
    """storage.tags_max_entries: an n above it, or none, gets a page of that many tags and
    a Link to the next one."""

    server_config = {"storage": {"tags_max_entries": 3}}

    def link(self, resp):
        values = resp.header_all("Link")
        self.assertEqual(len(values), 1, resp.describe())
        match = LINK_RE.match(values[0].strip())
        self.assertIsNotNone(match, "malformed Link: %r" % values[0])
        return match.group(1)

    @h.berth_only("berth's storage.tags_max_entries")
    def test_clamped_with_a_link(self):
        repo = self.repo()
        img = h.build_image(layer_count=1)
        tags = ["t%d" % i for i in range(7)]
        self.push_image_ok(repo, img, tag=tags[0])
        for tag in tags[1:]:
            self.assertStatus(self.reg.put_manifest(repo, tag, img.manifest, img.media_type),
                              201)
        for params in ({}, {"n": 100}, {"n": 3}):
            with self.subTest(params=params):
                resp = self.assertStatus(self.reg.tags(repo, **params), 200)
                self.assertEqual(resp.json()["tags"], tags[:3])
                target = self.link(resp)
                query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(target).query))
                self.assertEqual(query, {"last": "t2", "n": "3"})
        # following the Links walks every tag, three at a time
        listed, target, pages = [], "/v2/%s/tags/list?n=100" % repo, 0
        while target is not None:
            pages += 1
            resp = self.assertStatus(self.reg.get(self.reg.resolve(target)), 200)
            listed += resp.json()["tags"]
            target = self.link(resp) if resp.header_all("Link") else None
        self.assertEqual(listed, tags)
        self.assertEqual(pages, 3)
        # a smaller n is honoured as it is
        resp = self.assertStatus(self.reg.tags(repo, n=2), 200)
        self.assertEqual(resp.json()["tags"], tags[:2])


def documented_keys():
    """Every leaf of conf/berth.json as a dotted path, with whether it is file-only (its
    value is a list: auth.keys, auth.regions)."""
    with open(EXAMPLE_CONFIG) as f:
        doc = json.load(f)
    keys = []

    def walk(obj, prefix):
        for name, value in obj.items():
            path = prefix + name
            if isinstance(value, dict):
                walk(value, path + ".")
            else:
                keys.append((path, isinstance(value, list)))
    walk(doc, "")
    return keys


@h.berth_only("berth's command line")
class HelpListsEveryKeyTest(unittest.TestCase):
    def test_help_lists_every_documented_key(self):
        rc, out = h.run_berth(["--help"])
        self.assertEqual(rc, 0, out)
        keys = documented_keys()
        self.assertGreater(len(keys), 30)
        for path, file_only in keys:
            with self.subTest(key=path):
                env = "BERTH_" + path.upper().replace(".", "_")
                line = next((ln for ln in out.splitlines() if ln.split()[:1] == [path]), None)
                self.assertIsNotNone(line, "berth --help does not list %s" % path)
                if file_only:
                    self.assertIn("(file only)", line)
                else:
                    self.assertIn(env, line.split())


if __name__ == "__main__":
    h.main()
