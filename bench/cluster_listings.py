"""Part 2 of `make bench-cluster` (bench/cluster-bench.py): `_catalog` and tags list with
many repositories, berth (PostgreSQL + S3) against distribution (its S3 driver).

Set-up, the same registry content on both sides:
- REPOS repositories catalog/r00000 .. catalog/rNNNNN, each holding one tiny image
  (a config and one layer) under the tag `latest`, all the same image;
- tags/many, the same image under TAGS tags t0000 .. t0999.

How each side is seeded, in bounded time:
- berth: through its API, by 16 threads: the image is pushed once to catalog/r00000,
  then every other repository gets the two blobs by cross-repository mount
  (`POST /v2/<name>/blobs/uploads/?mount=<digest>&from=catalog/r00000`, 201 without a
  byte) and the manifest by `PUT /v2/<name>/manifests/latest`; the tags by manifest PUTs.
- distribution: a push through its API per repository costs a dozen S3 requests to the
  Python Swift of this machine (about 1 s a repository at c=16), so only the first
  repository (and the first tag of tags/many) is pushed through its API; the
  objects that push wrote under `repositories/catalog/r00000/` (the layer and config links,
  the manifest revision link, the tag's current and index links: five small objects) are
  then copied, byte for byte, under every other repository's path, with Swift's own API
  (PUT /v1/AUTH_.../<bucket>/<key>), 32 at a time; the tag's two links likewise for the
  other tags. That is exactly what distribution writes for a cross-repository mount and a
  manifest PUT of an image it already holds; the run checks, through distribution's API,
  that the last repository's manifest and the full catalog walk see them.
  Both distribution versions are served on the same seeded root one after the other.

Measured, one client, requests in sequence (latency; the median is compared): the first
catalog page with n=100 and with n=1000, a page in the middle (n=100,
last=catalog/r<REPOS/2>), the full walk with n=1000 following the Link headers (its total
time; it must return every repository), tags list n=1000 of tags/many (1,000
tags), and the tags list of one repository among the many. Each request is timed REPS
times, fewer when they take long: no more are started once a kind has taken BUDGET
seconds (at least one is always made). The full walk is made once; one that has not
ended after WALK_LIMIT seconds is stopped at the next page and reported as "more than"
its time so far, with the pages it got."""

import hashlib
import http.client
import json
import queue
import threading
import time
import urllib.parse

BASE_REPO = "catalog/r00000"
TAGS_REPO = "tags/many"  # sorts after catalog/... whether compared by byte or by path part
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def repo_name(i):
    return "catalog/r%05d" % i


def tag_name(i):
    return "t%04d" % i


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tiny_image():
    layer = bytes(range(256)) * 4  # 1 KiB; content does not matter to either server
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]}},
                        sort_keys=True, separators=(",", ":")).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MT_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha256(layer), "size": len(layer)}],
    }, sort_keys=True, separators=(",", ":")).encode()
    return {"config": config, "layer": layer, "manifest": manifest}


class Client:
    """One keep-alive connection to a registry (one per thread)."""

    def __init__(self, base_url, timeout=900):
        u = urllib.parse.urlsplit(base_url)
        self.host, self.port, self.timeout = u.hostname, u.port, timeout
        self.conn = None

    def request(self, method, target, body=None, headers=None):
        hdrs = dict(headers or {})
        if body is None and method in ("POST", "PUT"):
            hdrs["Content-Length"] = "0"
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port,
                                                       timeout=self.timeout)
            try:
                self.conn.request(method, target, body=body, headers=hdrs)
                resp = self.conn.getresponse()
                data = resp.read()
            except (http.client.HTTPException, OSError):
                # a keep-alive connection the server closed: once more on a new one
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                continue
            if resp.will_close:
                self.conn.close()
                self.conn = None
            return resp.status, resp.headers, data

    def expect(self, want, method, target, body=None, headers=None):
        status, hdrs, data = self.request(method, target, body, headers)
        if status not in want:
            raise RuntimeError("%s %s -> %d (want %s): %s" % (method, target, status, want,
                                                               data[:300]))
        return hdrs, data

    def push_blob(self, repo, data):
        hdrs, _ = self.expect((202,), "POST", "/v2/%s/blobs/uploads/" % repo)
        loc = hdrs["Location"]
        target = urllib.parse.urlsplit(loc)
        path = target.path + ("?" + target.query + "&" if target.query else "?")
        self.expect((201,), "PUT", path + "digest=" + sha256(data), data,
                    {"Content-Type": "application/octet-stream"})

    def put_manifest(self, repo, ref, manifest):
        self.expect((201,), "PUT", "/v2/%s/manifests/%s" % (repo, ref), manifest,
                    {"Content-Type": MT_MANIFEST})

    def push_image(self, repo, tag, img):
        self.push_blob(repo, img["config"])
        self.push_blob(repo, img["layer"])
        self.put_manifest(repo, tag, img["manifest"])

    def mount(self, repo, digest, source):
        self.expect((201,), "POST", "/v2/%s/blobs/uploads/?mount=%s&from=%s" % (
            repo, digest, source))


def parallel(items, threads, work):
    """work(state, item) for every item on `threads` threads; state is per thread (a dict).
    The first failure stops the run and is raised."""
    q = queue.Queue()
    for it in items:
        q.put(it)
    errors = []

    def run():
        state = {}
        while not errors:
            try:
                it = q.get_nowait()
            except queue.Empty:
                return
            try:
                work(state, it)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]


def seed_berth(url, repos, tags):
    """Seed through berth's API (mounts and manifest PUTs); returns seconds taken."""
    img = tiny_image()
    t0 = time.monotonic()
    Client(url).push_image(BASE_REPO, "latest", img)

    def one(state, i):
        c = state.setdefault("c", Client(url))
        if i >= 0:
            name = repo_name(i)
            c.mount(name, sha256(img["config"]), BASE_REPO)
            c.mount(name, sha256(img["layer"]), BASE_REPO)
            c.put_manifest(name, "latest", img["manifest"])
        else:
            c.put_manifest(TAGS_REPO, tag_name(-i - 2), img["manifest"])

    parallel(range(1, repos), 16, one)
    c = Client(url)
    c.mount(TAGS_REPO, sha256(img["config"]), BASE_REPO)
    c.mount(TAGS_REPO, sha256(img["layer"]), BASE_REPO)
    parallel([-(k + 2) for k in range(tags)], 16, one)
    return time.monotonic() - t0


class SwiftWriter:
    """PUTs objects into the fixture's bucket through Swift's own API (tempauth)."""

    def __init__(self, swift):
        self.port = swift.ports["proxy"]
        self.bucket = swift.bucket
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        c.request("GET", "/auth/v1.0", headers={"X-Auth-User": swift.access_key,
                                                "X-Auth-Key": swift.secret_key})
        r = c.getresponse()
        r.read()
        if r.status // 100 != 2:
            raise RuntimeError("Swift auth: %d" % r.status)
        self.token = r.getheader("X-Auth-Token")
        self.account = urllib.parse.urlsplit(r.getheader("X-Storage-Url")).path
        c.close()

    def put(self, state, key, data):
        conn = state.get("swift")
        if conn is None:
            conn = state["swift"] = http.client.HTTPConnection("127.0.0.1", self.port,
                                                                timeout=300)
        conn.request("PUT", "%s/%s/%s" % (self.account, self.bucket, urllib.parse.quote(key)),
                     body=data, headers={"X-Auth-Token": self.token})
        r = conn.getresponse()
        r.read()
        if r.status != 201:
            raise RuntimeError("Swift PUT %s: %d" % (key, r.status))


def seed_distribution(url, swift, s3client, root, repos, tags):
    """Push the first repository (and the tags repository's first tag) through
    distribution's API, then copy what that push wrote under every other repository's
    path in the bucket (module doc). Returns (seconds, objects written)."""
    img = tiny_image()
    t0 = time.monotonic()
    c = Client(url)
    c.push_image(BASE_REPO, "latest", img)
    c.mount(TAGS_REPO, sha256(img["config"]), BASE_REPO)
    c.mount(TAGS_REPO, sha256(img["layer"]), BASE_REPO)
    c.put_manifest(TAGS_REPO, tag_name(0), img["manifest"])
    top = "%s/docker/registry/v2/repositories/" % root.strip("/")

    def objects_under(prefix):
        out = {}
        for page in s3client.get_paginator("list_objects_v2").paginate(
                Bucket=swift.bucket, Prefix=prefix):
            for o in page.get("Contents", []):
                key = o["Key"]
                if "/_uploads/" in key:  # what is left of the upload sessions
                    continue
                out[key[len(prefix):]] = s3client.get_object(Bucket=swift.bucket,
                                                             Key=key)["Body"].read()
        return out

    base = objects_under(top + BASE_REPO + "/")
    if len(base) < 5:
        raise RuntimeError("distribution's push wrote %d objects under %s%s/ (%s)" % (
            len(base), top, BASE_REPO, sorted(base)))
    tag_prefix = top + TAGS_REPO + "/_manifests/tags/" + tag_name(0) + "/"
    tag_objs = objects_under(tag_prefix)
    if len(tag_objs) < 2:
        raise RuntimeError("no tag links under %s: %s" % (tag_prefix, sorted(tag_objs)))
    writes = []
    for i in range(1, repos):
        for rel, data in base.items():
            writes.append(("%s%s/%s" % (top, repo_name(i), rel), data))
    for k in range(1, tags):
        for rel, data in tag_objs.items():
            writes.append(("%s%s/_manifests/tags/%s/%s" % (top, TAGS_REPO, tag_name(k), rel),
                           data))
    writer = SwiftWriter(swift)
    parallel(writes, 32, lambda state, kv: writer.put(state, kv[0], kv[1]))
    return time.monotonic() - t0, len(writes)


def check_seeded(url, repos, tags):
    """The last repository and the last tag answer through the registry's API."""
    c = Client(url)
    c.expect((200,), "GET", "/v2/%s/manifests/latest" % repo_name(repos - 1),
             headers={"Accept": MT_MANIFEST})
    c.expect((200,), "GET", "/v2/%s/manifests/%s" % (TAGS_REPO, tag_name(tags - 1)),
             headers={"Accept": MT_MANIFEST})


def next_target(link):
    # </v2/_catalog?last=x&n=1000>; rel="next"
    if not link or 'rel="next"' not in link:
        return None
    return link[link.index("<") + 1:link.index(">")]


BUDGET = 60.0
WALK_LIMIT = 900.0


def probe(url, repos, tags, reps):
    """Latencies in seconds: {name: [seconds, ...]}, and {name: note} for a walk stopped
    at its limit; raises when an answer is wrong."""
    c = Client(url)
    out = {}
    notes = {}

    def timed(name, target, check, count):
        start = time.monotonic()
        for k in range(count):
            if k > 0 and time.monotonic() - start > BUDGET:
                break
            t0 = time.monotonic()
            status, hdrs, data = c.request("GET", target)
            dt = time.monotonic() - t0
            if status != 200:
                raise RuntimeError("GET %s -> %d: %s" % (target, status, data[:300]))
            check(json.loads(data))
            out.setdefault(name, []).append(dt)

    def catalog_of(n):
        def check(doc):
            if len(doc["repositories"]) != n:
                raise RuntimeError("catalog page of %d, not %d" % (len(doc["repositories"]),
                                                                   n))
        return check

    def tags_of(n):
        def check(doc):
            if len(doc.get("tags") or []) != n:
                raise RuntimeError("tags list of %d, not %d" % (len(doc.get("tags") or []), n))
        return check

    timed("catalog n=100, first page", "/v2/_catalog?n=100", catalog_of(min(100, repos + 1)),
          reps)
    # after the middle name: the rest of catalog/r..., then tags/many
    timed("catalog n=100, middle page", "/v2/_catalog?n=100&last=" +
          repo_name(repos // 2), catalog_of(min(100, repos - repos // 2)), reps)
    timed("catalog n=1000, first page", "/v2/_catalog?n=1000",
          catalog_of(min(1000, repos + 1)),
          max(1, reps // 2))
    # the full walk, n=1000, following Link, once
    want_pages = repos // 1000 + 1
    name = "catalog full walk, n=1000 (%d pages)" % want_pages
    names = []
    target = "/v2/_catalog?n=1000"
    t0 = time.monotonic()
    pages = 0
    while target is not None:
        if time.monotonic() - t0 > WALK_LIMIT:
            notes[name] = "stopped after %.0f s with %d of %d pages" % (
                time.monotonic() - t0, pages, want_pages)
            break
        status, hdrs, data = c.request("GET", target)
        if status != 200:
            raise RuntimeError("GET %s -> %d: %s" % (target, status, data[:300]))
        names += json.loads(data)["repositories"]
        pages += 1
        target = next_target(hdrs.get("Link"))
    dt = time.monotonic() - t0
    want = repos + 1  # and tags/many
    if name not in notes and (len(names) != want or len(set(names)) != want or
                              pages != want_pages):
        raise RuntimeError("full catalog walk: %d names (%d distinct) in %d pages, not "
                           "%d in %d" % (len(names), len(set(names)), pages, want,
                                         want_pages))
    out[name] = [dt]
    timed("tags list n=1000, 1,000 tags", "/v2/%s/tags/list?n=1000" % TAGS_REPO,
          tags_of(tags), reps)
    timed("tags list, 1 tag", "/v2/%s/tags/list" % repo_name(repos // 2), tags_of(1), reps)
    return out, notes
