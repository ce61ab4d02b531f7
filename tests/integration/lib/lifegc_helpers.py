"""Helpers for the lifecycle and garbage-collection integration tests: the real aws CLI
(through clients.py) pointed at a test server, image listings, and looks at the data root
(blob files, trash, the database) that a user or operator would check. Standard library
only (plus Debian's boto3 where a test asks for it, through clients.ecr_client)."""

import json
import os
import sqlite3

import clients as c  # first: it cleans the environment botocore reads

import berth_harness as h


def aws(server, *args, timeout=120):
    """Run `aws ecr <args>` against server, signed with clients.DUMMY_KEY; return a
    clients.AwsResult (never raises on a non-zero exit)."""
    return c.aws(server, *args, key=c.DUMMY_KEY[0], secret=c.DUMMY_KEY[1], timeout=timeout)


def aws_ok(test, server, *args, timeout=120):
    res = aws(server, *args, timeout=timeout)
    test.assertEqual(res.rc, 0, "aws ecr %s failed:\n%r" % (" ".join(args[:2]), res))
    return res.json()


def aws_error(test, server, code, *args):
    """The call fails with the given ECR error code; returns the CLI's message line."""
    res = aws(server, *args)
    test.assertNotEqual(res.rc, 0, "aws ecr %s should have failed:\n%r" % (args[0], res))
    marker = "An error occurred (%s)" % code
    test.assertIn(marker, res.err, "wrong error:\n%r" % res)
    return res.err.strip().splitlines()[-1]


def _list_images(server, repo):
    """Digests ListImages reports, or None when the server does not implement it."""
    res = aws(server, "list-images", "--repository-name", repo)
    if res.rc == 0:
        return {i["imageDigest"] for i in res.json().get("imageIds", [])}
    if "UnknownOperationException" in res.err:
        return None
    raise AssertionError("list-images failed: %r" % res)


def image_digests(server, reg, repo, candidates):
    """The digests among candidates that the repository still has, by manifest HEADs over
    /v2. When the server implements ECR ListImages, it must agree: images only go away
    while this runs (candidates were all pushed before), so what ListImages reports after
    the HEADs must be a subset of what they found, and what it reported before a superset."""
    candidates = set(candidates)
    before = _list_images(server, repo)
    present = set()
    for digest in candidates:
        resp = reg.head(reg.manifest_path(repo, digest))
        if resp.status == 200:
            present.add(digest)
        elif resp.status != 404:
            raise AssertionError("manifest HEAD: %s" % resp.describe())
    after = _list_images(server, repo)
    if before is not None and after is not None and \
            not (after & candidates <= present <= before & candidates):
        raise AssertionError("ListImages (%d then %d of the candidates) disagrees with /v2 (%d)"
                             % (len(before & candidates), len(after & candidates), len(present)))
    return present


# ---- the data root ----------------------------------------------------------------------


def blob_files(root):
    """{digest: path} of every file under <root>/blobs."""
    out = {}
    base = os.path.join(root, "blobs")
    for alg in ("sha256", "sha512"):
        top = os.path.join(base, alg)
        if not os.path.isdir(top):
            continue
        for prefix in os.listdir(top):
            sub = os.path.join(top, prefix)
            for name in os.listdir(sub):
                out["%s:%s" % (alg, name)] = os.path.join(sub, name)
    return out


def trash_files(root):
    path = os.path.join(root, "trash")
    return os.listdir(path) if os.path.isdir(path) else []


def db(root):
    """A read-only connection to the server's database (WAL allows it while it runs)."""
    conn = sqlite3.connect("file:%s?mode=ro" % os.path.join(root, "berth.db"), uri=True,
                           timeout=30)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def db_rw(root):
    """A writable connection, for tests that put the store in a state by hand."""
    conn = sqlite3.connect(os.path.join(root, "berth.db"), timeout=30)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def referenced_digests(root):
    """Digests some manifest references (config, layers, children) or is made of."""
    with db(root) as conn:
        refs = {r[0] for r in conn.execute("SELECT digest FROM manifest_refs")}
        own = {r[0] for r in conn.execute(
            "SELECT b.digest FROM manifests m JOIN blobs b ON b.id = m.blob_id")}
    return refs | own


def blob_rows(root):
    """{digest: touched_at ms} of every blob row."""
    with db(root) as conn:
        return {r[0]: r[1] for r in conn.execute("SELECT digest, touched_at FROM blobs")}


def integrity_check(root):
    with db(root) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def policy(*rules):
    """A lifecycle policy text from rule dicts (action expire added)."""
    out = []
    for rule in rules:
        r = dict(rule)
        r.setdefault("action", {"type": "expire"})
        out.append(r)
    return json.dumps({"rules": out})


def distinct_image(shared=None, layer_size=512):
    """An image with its own config and layer, plus the shared layer bytes when given."""
    img = h.build_image(layer_count=1, layer_size=layer_size)
    if shared is not None:
        obj = dict(img.obj)
        obj["layers"] = list(obj["layers"]) + [h.blob_descriptor(h.MT_OCI_LAYER_GZIP, shared)]
        blobs = dict(img.blobs)
        blobs[h.digest_of(shared)] = shared
        img = h.Image(obj, blobs, img.media_type)
    return img


RETRIES = {"count": 0}  # manifest PUTs refused because a layer was collected meanwhile


def push_image_retry(reg, repo, image, tag=None, attempts=8, skip_existing=False):
    """Push an image (blobs, children, manifest) and return the manifest PUT response.
    With a zero grace window the collector may remove a blob between its upload (or, with
    skip_existing, the HEAD that found it, as docker does) and the manifest PUT that
    references it; the registry then refuses the manifest (400 MANIFEST_BLOB_UNKNOWN,
    nothing stored) and the client pushes again, uploading everything. Any other failure is
    raised at once."""
    for attempt in range(attempts):
        for child in getattr(image, "children", []):
            push_image_retry(reg, repo, child, attempts=attempts)
        for digest, data in image.blobs.items():
            if skip_existing and attempt == 0 and reg.head_blob(repo, digest).status == 200:
                continue
            h.expect_status(reg.push_blob(repo, data), 201)
        resp = reg.put_manifest(repo, tag or image.digest, image.manifest, image.media_type)
        if resp.status == 201:
            return resp
        if resp.status == 400 and resp.error_codes()[0] in ("MANIFEST_BLOB_UNKNOWN",
                                                             "MANIFEST_UNKNOWN"):
            RETRIES["count"] += 1
            continue
        raise AssertionError("manifest PUT: %s" % resp.describe())
    raise AssertionError("push of %s still refused after %d attempts" % (image.digest, attempts))
