# berth-replicas: skip: it reads berth.db with sqlite3 and runs `berth lifecycle` outside
# run_berth(server=...), so it is not clean on PostgreSQL (make test-postgres leaves it out
# too); the lifecycle pass among replicas is cluster/test_leases.py's
"""Lifecycle policies through the real aws CLI: Put/Get/Delete with ECR's validation messages
and exceptions, previews (the CLI waiter, filters, imageIds, pagination), enforcement that runs
by itself (soon after PutLifecyclePolicy and on the interval), a new policy held back by
lifecycle.new_policy_delay_seconds, `berth lifecycle run`, and the
expired images' blobs leaving the disk after garbage collection with a zero grace window."""

import concurrent.futures
import datetime
import json
import os
import time
import unittest

import clients as c  # first: it cleans the environment botocore reads
import berth_harness as h
import lifegc_helpers as lg


def pad(text):
    """Policies shorter than 100 characters are refused by the CLI itself (botocore checks
    the minimum length client-side); trailing blanks keep the JSON and the meaning."""
    return text + " " * max(0, 100 - len(text))


KEEP_TWO_V = lg.policy({
    "rulePriority": 1, "description": "keep the two newest v* images",
    "selection": {"tagStatus": "tagged", "tagPrefixList": ["v"],
                  "countType": "imageCountMoreThan", "countNumber": 2}})

KEEP_TWO_V_AND_ONE_UNTAGGED = lg.policy(
    {"rulePriority": 1, "description": "keep the two newest v* images",
     "selection": {"tagStatus": "tagged", "tagPatternList": ["v*"],
                   "countType": "imageCountMoreThan", "countNumber": 2}},
    {"rulePriority": 5, "description": "one untagged image is enough",
     "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan",
                   "countNumber": 1}})


def with_selection(selection, extra_rule=None):
    rules = [{"rulePriority": 1, "selection": selection}]
    if extra_rule:
        rules.append(extra_rule)
    return pad(lg.policy(*rules))


V = "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: " \
    "'Lifecycle policy validation failure: "

# Each invalid shape the issue lists, with the message ECR gives for it.
INVALID = [
    ("not JSON", pad("this is not a policy"), V + "Could not map policyString into LifecyclePolicy.'"),
    ("no rules", pad("{}"), V + "object has missing required properties ([\"rules\"])'"),
    ("rule keys missing", pad('{"rules": [{"rulePriority": 1}]}'),
     V + "object has missing required properties ([\"action\",\"selection\"])'"),
    ("unknown property", pad(json.dumps({"rules": [{
        "rulePriority": 1, "foo": 1, "action": {"type": "expire"},
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan",
                      "countNumber": 1}}]})),
     V + "object instance has properties which are not allowed by the schema: ([\"foo\"])'"),
    ("bad tagStatus", with_selection({"tagStatus": "everything", "countType": "imageCountMoreThan",
                                      "countNumber": 1}),
     V + "instance value (everything) not found in enum :(possible values: "
         "[\"any\",\"tagged\",\"untagged\"])'"),
    ("bad action", pad(json.dumps({"rules": [{
        "rulePriority": 1, "action": {"type": "delete"},
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan",
                      "countNumber": 1}}]})),
     V + "instance value (delete) not found in enum :(possible values: "
         "[\"expire\",\"transition\"])'"),
    ("countUnit with imageCountMoreThan",
     with_selection({"tagStatus": "any", "countType": "imageCountMoreThan", "countUnit": "days",
                     "countNumber": 1}),
     V + "instance failed to match exactly one schema (matched 0 out of 2)"),
    ("no countUnit with sinceImagePushed",
     with_selection({"tagStatus": "any", "countType": "sinceImagePushed", "countNumber": 1}),
     V + "instance failed to match exactly one schema (matched 0 out of 2)"),
    ("bad countUnit",
     with_selection({"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "hours",
                     "countNumber": 1}),
     V + "instance value (hours) not found in enum :(possible values: [\"days\"])'"),
    ("countNumber 0",
     with_selection({"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 0}),
     V + "numeric instance is lower than the required minimum (minimum: 1, found: 0)'"),
    ("tagged without lists",
     with_selection({"tagStatus": "tagged", "countType": "imageCountMoreThan", "countNumber": 1}),
     V + "Must specify tagPrefixList or tagPatternList when tagStatus=TAGGED.'"),
    ("both lists",
     with_selection({"tagStatus": "tagged", "tagPrefixList": ["a"], "tagPatternList": ["b*"],
                     "countType": "imageCountMoreThan", "countNumber": 1}),
     V + "Cannot specify both tagPrefixList and tagPatternList in one rule.'"),
    ("more than four stars",
     with_selection({"tagStatus": "tagged", "tagPatternList": ["test*1*2*3*4*5*6"],
                     "countType": "imageCountMoreThan", "countNumber": 1}),
     V + "tagPatternList value (test*1*2*3*4*5*6) contains more than 4 wildcards (*).'"),
    ("duplicate rulePriority",
     with_selection({"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1},
                    {"rulePriority": 1, "action": {"type": "expire"},
                     "selection": {"tagStatus": "tagged", "tagPrefixList": ["v"],
                                   "countType": "imageCountMoreThan", "countNumber": 1}}),
     V + "Duplicate rulePriority (1): each rule must have a unique rulePriority.'"),
    ("two untagged rules",
     with_selection({"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1},
                    {"rulePriority": 2, "action": {"type": "expire"},
                     "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed",
                                   "countUnit": "days", "countNumber": 3}}),
     V + "Only one rule can select Untagged images per storage class.'"),
    ("any not last",
     with_selection({"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
                    {"rulePriority": 2, "action": {"type": "expire"},
                     "selection": {"tagStatus": "tagged", "tagPrefixList": ["v"],
                                   "countType": "imageCountMoreThan", "countNumber": 1}}),
     V + "Rule for tagStatus=ANY must have the lowest priority per storage class.'"),
    ("51 rules", lg.policy(*[
        {"rulePriority": i + 1, "selection": {"tagStatus": "tagged", "tagPrefixList": ["p%d" % i],
                                              "countType": "imageCountMoreThan", "countNumber": 1}}
        for i in range(51)]),
     V + "array is too long: must have at most 50 elements but instance has 51 elements'"),
    ("longer than 30720", json.dumps({"rules": [{
        "rulePriority": 1, "description": "x" * 30800, "action": {"type": "expire"},
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}}]}),
     "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: "
     "'Member must have length less than or equal to 30720'"),
]

# Valid policies, written the way people write them (spacing, key order, comments in
# descriptions); Get must give each back byte for byte.
VALID = [
    json.dumps(json.loads(KEEP_TWO_V), indent=4),
    KEEP_TWO_V_AND_ONE_UNTAGGED,
    pad('{"rules":[{"rulePriority":10,"selection":{"tagStatus":"any","countType":'
        '"sinceImagePushed","countUnit":"days","countNumber":90},"action":{"type":"expire"}}]}'),
    lg.policy(*[{"rulePriority": 3 * i + 1, "description": "rule %d \u00e9" % i,
                 "selection": {"tagStatus": "tagged", "tagPatternList": ["*rel*%d*" % i],
                               "countType": "imageCountMoreThan", "countNumber": i + 1}}
                for i in range(50)]),
]


class LifecyclePolicyApiTest(h.ServerTestCase):
    """The five operations and their errors; enforcement is left to its hourly default."""

    def test_invalid_policies_give_ecr_messages(self):
        repo = self.repo()
        lg.aws_ok(self, self.server, "create-repository", "--repository-name", repo)
        # the CLI takes half a second to start: run the cases three at a time
        with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
            results = list(pool.map(lambda case: lg.aws(
                self.server, "put-lifecycle-policy", "--repository-name", repo,
                "--lifecycle-policy-text", case[1]), INVALID))
        for (name, _, message), res in zip(INVALID, results):
            with self.subTest(name):
                self.assertNotEqual(res.rc, 0, res)
                line = res.err.strip().splitlines()[-1]
                self.assertIn("An error occurred (InvalidParameterException)", line)
                self.assertTrue(line.endswith(": " + message), "%s: got %r" % (name, line))
        # the preview validates the same way
        line = lg.aws_error(self, self.server, "InvalidParameterException",
                            "start-lifecycle-policy-preview", "--repository-name", repo,
                            "--lifecycle-policy-text", INVALID[10][1])
        self.assertTrue(line.endswith(INVALID[10][2]), line)
        # nothing was stored
        lg.aws_error(self, self.server, "LifecyclePolicyNotFoundException",
                     "get-lifecycle-policy", "--repository-name", repo)

    def test_valid_policies_round_trip(self):
        repo = self.repo()
        lg.aws_ok(self, self.server, "create-repository", "--repository-name", repo)
        for text in VALID:
            out = lg.aws_ok(self, self.server, "put-lifecycle-policy", "--repository-name", repo,
                            "--lifecycle-policy-text", text)
            self.assertEqual(out["lifecyclePolicyText"], text)
            self.assertEqual(out["repositoryName"], repo)
            self.assertEqual(out["registryId"], "000000000000")
            got = lg.aws_ok(self, self.server, "get-lifecycle-policy", "--repository-name", repo)
            self.assertEqual(got["lifecyclePolicyText"], text)
        # boto3 too, with the file:// form people use
        path = os.path.join(self.server.tmp, "policy.json")
        with open(path, "w") as f:
            f.write(VALID[0])
        out = lg.aws_ok(self, self.server, "put-lifecycle-policy", "--repository-name", repo,
                        "--lifecycle-policy-text", "file://" + path)
        self.assertEqual(out["lifecyclePolicyText"], VALID[0])
        client = c.ecr_client(self.server, *c.DUMMY_KEY)
        self.assertEqual(client.get_lifecycle_policy(repositoryName=repo)["lifecyclePolicyText"],
                         VALID[0])

    def test_get_delete_and_not_found(self):
        repo = self.repo()
        lg.aws_ok(self, self.server, "create-repository", "--repository-name", repo)
        line = lg.aws_error(self, self.server, "LifecyclePolicyNotFoundException",
                            "get-lifecycle-policy", "--repository-name", repo)
        self.assertIn("Lifecycle policy does not exist for the repository with name '%s' in the "
                      "registry with id '000000000000'" % repo, line)
        lg.aws_error(self, self.server, "LifecyclePolicyNotFoundException",
                     "delete-lifecycle-policy", "--repository-name", repo)
        lg.aws_ok(self, self.server, "put-lifecycle-policy", "--repository-name", repo,
                  "--lifecycle-policy-text", KEEP_TWO_V)
        out = lg.aws_ok(self, self.server, "delete-lifecycle-policy", "--repository-name", repo)
        self.assertEqual(out["lifecyclePolicyText"], KEEP_TWO_V)
        lg.aws_error(self, self.server, "LifecyclePolicyNotFoundException",
                     "get-lifecycle-policy", "--repository-name", repo)
        # an unknown repository is reported as such by every operation
        for op in ("get-lifecycle-policy", "delete-lifecycle-policy",
                   "get-lifecycle-policy-preview", "start-lifecycle-policy-preview"):
            lg.aws_error(self, self.server, "RepositoryNotFoundException", op,
                         "--repository-name", "itest/does-not-exist")
        lg.aws_error(self, self.server, "RepositoryNotFoundException", "put-lifecycle-policy",
                     "--repository-name", "itest/does-not-exist", "--lifecycle-policy-text",
                     KEEP_TWO_V)

    def test_preview_errors(self):
        repo = self.repo()
        lg.aws_ok(self, self.server, "create-repository", "--repository-name", repo)
        line = lg.aws_error(self, self.server, "LifecyclePolicyPreviewNotFoundException",
                            "get-lifecycle-policy-preview", "--repository-name", repo)
        self.assertIn(repo, line)
        # no text given and no stored policy
        lg.aws_error(self, self.server, "LifecyclePolicyNotFoundException",
                     "start-lifecycle-policy-preview", "--repository-name", repo)
        # a preview that is still running (made so by hand: the preview thread is not woken
        # by a change in the database) refuses a second start, and shows no results yet
        lg.aws_ok(self, self.server, "start-lifecycle-policy-preview", "--repository-name", repo,
                  "--lifecycle-policy-text", KEEP_TWO_V)
        lg.aws(self.server, "wait", "lifecycle-policy-preview-complete", "--repository-name", repo)
        with lg.db_rw(self.server.root) as conn:
            conn.execute("UPDATE lifecycle_previews SET status = 'IN_PROGRESS' WHERE repo_id = "
                         "(SELECT id FROM repositories WHERE name = ?)", (repo,))
        line = lg.aws_error(self, self.server, "LifecyclePolicyPreviewInProgressException",
                            "start-lifecycle-policy-preview", "--repository-name", repo,
                            "--lifecycle-policy-text", KEEP_TWO_V)
        self.assertIn("has not completed", line)
        prev = lg.aws_ok(self, self.server, "get-lifecycle-policy-preview", "--repository-name",
                         repo)
        self.assertEqual(prev["status"], "IN_PROGRESS")
        self.assertNotIn("previewResults", prev)
        client = c.ecr_client(self.server, *c.DUMMY_KEY)
        with self.assertRaises(client.exceptions.InvalidParameterException):
            client.get_lifecycle_policy_preview(repositoryName=repo, maxResults=101)
        with self.assertRaises(client.exceptions.InvalidParameterException):
            client.get_lifecycle_policy_preview(repositoryName=repo, nextToken="garbage!")


class LifecycleEnforcementTest(h.ServerTestCase):
    """Preview, then enforcement by itself, then garbage collection of the expired images'
    blobs: lifecycle every 2 s, GC every second with a zero grace window."""

    server_config = {"lifecycle": {"interval_seconds": 2, "new_policy_delay_seconds": 0},
                     "gc": {"interval_seconds": 1, "grace_seconds": 0}}

    def push_set(self, repo, shared):
        """Five tagged images v1..v5 (oldest first) and three untagged ones; all share a
        layer. Returns {name: Image}."""
        images = {}
        for i in range(1, 6):
            img = lg.distinct_image(shared)
            lg.push_image_retry(self.reg, repo, img, tag="v%d" % i)
            images["v%d" % i] = img
            time.sleep(0.01)
        for i in range(1, 4):
            img = lg.distinct_image(shared)
            lg.push_image_retry(self.reg, repo, img)
            images["untagged%d" % i] = img
            time.sleep(0.01)
        return images

    def test_preview_enforce_collect(self):
        repo = self.repo()
        shared = h.random_bytes(2048)
        images = self.push_set(repo, shared)
        digests = {name: img.digest for name, img in images.items()}
        expected = {"v1": 1, "v2": 1, "v3": 1, "untagged1": 5, "untagged2": 5}

        # preview a policy before applying it (the documented workflow)
        out = lg.aws_ok(self, self.server, "start-lifecycle-policy-preview", "--repository-name",
                        repo, "--lifecycle-policy-text", KEEP_TWO_V_AND_ONE_UNTAGGED)
        self.assertEqual(out["status"], "IN_PROGRESS")
        self.assertEqual(out["lifecyclePolicyText"], KEEP_TWO_V_AND_ONE_UNTAGGED)
        res = lg.aws(self.server, "wait", "lifecycle-policy-preview-complete",
                     "--repository-name", repo)
        self.assertEqual(res.rc, 0, res)
        prev = lg.aws_ok(self, self.server, "get-lifecycle-policy-preview", "--repository-name",
                         repo)
        self.assertEqual(prev["status"], "COMPLETE")
        self.assertEqual(prev["summary"], {"expiringImageTotalCount": 5})
        self.assertEqual(prev["lifecyclePolicyText"], KEEP_TWO_V_AND_ONE_UNTAGGED)
        by_digest = {r["imageDigest"]: r for r in prev["previewResults"]}
        self.assertEqual(set(by_digest), {digests[n] for n in expected})
        for name, rule in expected.items():
            r = by_digest[digests[name]]
            self.assertEqual(r["action"], {"type": "EXPIRE"})
            self.assertEqual(r["appliedRulePriority"], rule)
            self.assertRegex(r["imagePushedAt"], r"^20\d\d-\d\d-\d\dT")  # the CLI's rendering
            if name.startswith("v"):
                self.assertEqual(r["imageTags"], [name])
            else:
                self.assertNotIn("imageTags", r)
        # oldest first
        pushed = [r["imagePushedAt"] for r in prev["previewResults"]]
        self.assertEqual(pushed, sorted(pushed))
        # filters, imageIds, pages
        untagged = lg.aws_ok(self, self.server, "get-lifecycle-policy-preview",
                             "--repository-name", repo, "--filter", "tagStatus=UNTAGGED")
        self.assertEqual({r["imageDigest"] for r in untagged["previewResults"]},
                         {digests["untagged1"], digests["untagged2"]})
        picked = lg.aws_ok(self, self.server, "get-lifecycle-policy-preview",
                           "--repository-name", repo, "--image-ids",
                           "imageTag=v2", "imageDigest=%s" % digests["untagged1"],
                           "imageTag=v5")
        self.assertEqual({r["imageDigest"] for r in picked["previewResults"]},
                         {digests["v2"], digests["untagged1"]})
        paged = lg.aws_ok(self, self.server, "get-lifecycle-policy-preview",
                          "--repository-name", repo, "--page-size", "2")
        self.assertEqual(paged["previewResults"], prev["previewResults"])
        client = c.ecr_client(self.server, *c.DUMMY_KEY)
        first = client.get_lifecycle_policy_preview(repositoryName=repo, maxResults=2)
        self.assertEqual(len(first["previewResults"]), 2)
        self.assertGreater(first["previewResults"][0]["imagePushedAt"].timestamp(),
                           time.time() - 300)
        second = client.get_lifecycle_policy_preview(repositoryName=repo, maxResults=2,
                                                     nextToken=first["nextToken"])
        third = client.get_lifecycle_policy_preview(repositoryName=repo, maxResults=2,
                                                    nextToken=second["nextToken"])
        self.assertNotIn("nextToken", third)
        self.assertEqual([r["imageDigest"] for r in first["previewResults"] +
                          second["previewResults"] + third["previewResults"]],
                         [r["imageDigest"] for r in prev["previewResults"]])
        # the preview deleted nothing
        self.assertEqual(lg.image_digests(self.server, self.reg, repo, digests.values()),
                         set(digests.values()))

        # a second preview while one runs is refused; exercised with many starts in a row
        # is racy, so only check that a finished one can be replaced
        out = lg.aws_ok(self, self.server, "start-lifecycle-policy-preview", "--repository-name",
                        repo, "--lifecycle-policy-text", KEEP_TWO_V)
        lg.aws(self.server, "wait", "lifecycle-policy-preview-complete", "--repository-name", repo)
        prev2 = lg.aws_ok(self, self.server, "get-lifecycle-policy-preview", "--repository-name",
                          repo)
        self.assertEqual(prev2["summary"]["expiringImageTotalCount"], 3)

        # apply it: it runs by itself, soon
        before = lg.blob_files(self.server.root)
        lg.aws_ok(self, self.server, "put-lifecycle-policy", "--repository-name", repo,
                  "--lifecycle-policy-text", KEEP_TWO_V_AND_ONE_UNTAGGED)
        kept = {n: d for n, d in digests.items() if n not in expected}
        h.wait_until(lambda: lg.image_digests(self.server, self.reg, repo, digests.values())
                     == set(kept.values()), 20, interval=0.2, what="the expired images to go")
        got = lg.aws_ok(self, self.server, "get-lifecycle-policy", "--repository-name", repo)
        evaluated = datetime.datetime.fromisoformat(got["lastEvaluatedAt"]).timestamp()
        self.assertGreater(evaluated, time.time() - 120)
        tags = self.reg.tags(repo).json()["tags"]
        self.assertEqual(sorted(tags), ["v4", "v5"])

        # their blobs leave the disk; the kept images' blobs stay and pull whole
        gone = set()
        for name in expected:
            img = images[name]
            gone |= {d for d in img.blobs if d != h.digest_of(shared)} | {img.digest}
        self.assertTrue(gone <= set(before))
        h.wait_until(lambda: not (gone & set(lg.blob_files(self.server.root))), 20,
                     interval=0.2, what="GC to remove the expired images' blobs")
        for name in kept:
            self.assertManifest(repo, images[name].digest, images[name])
            for digest, data in images[name].blobs.items():
                self.assertEqual(self.reg.get_blob(repo, digest).body, data)
        log = self.server.log_text()
        for name in expected:
            self.assertIn("event=lifecycle_expired repo=%s digest=%s" % (repo, digests[name]), log)
        self.assertIn("event=gc_pass", log)

    def test_index_keeps_children(self):
        repo = self.repo()
        children = [h.build_image(layer_count=1, layer_size=256, arch=a) for a in ("amd64", "arm64")]
        index = h.Index(children, platforms=[{"os": "linux", "architecture": "amd64"},
                                             {"os": "linux", "architecture": "arm64"}])
        lg.push_image_retry(self.reg, repo, index, tag="multi")
        loose = [lg.distinct_image() for _ in range(2)]
        for img in loose:
            lg.push_image_retry(self.reg, repo, img)
            time.sleep(0.01)
        lg.aws_ok(self, self.server, "put-lifecycle-policy", "--repository-name", repo,
                  "--lifecycle-policy-text", pad(lg.policy(
                      {"rulePriority": 1, "selection": {"tagStatus": "untagged",
                                                        "countType": "imageCountMoreThan",
                                                        "countNumber": 1}})))
        everything = [index.digest, loose[0].digest, loose[1].digest] + [child.digest
                                                                         for child in children]
        want = {index.digest, loose[1].digest} | {child.digest for child in children}
        h.wait_until(lambda: lg.image_digests(self.server, self.reg, repo, everything) == want,
                     20, interval=0.2, what="only the oldest loose untagged image to go")
        time.sleep(2.5)  # another scheduled run changes nothing
        self.assertEqual(lg.image_digests(self.server, self.reg, repo, everything), want)
        self.assertManifest(repo, "multi", index)

    def test_referrers_go_with_their_subject(self):
        """ECR's lifecycle removes an image's referrers (signatures, SBOMs) with it
        (reference/ecr-api.md, 2024-06): untagged ones, transitively. A referrer with a tag
        of its own stays, and so do the kept image's."""
        repo = self.repo()
        old, new = push_r_images(self, self.reg, repo, count=2)
        sig = h.build_artifact("application/vnd.example.signature.v1", subject=old.descriptor())
        sbom = h.build_artifact("application/vnd.example.sbom.v1+json", subject=old.descriptor())
        sbom_sig = h.build_artifact("application/vnd.example.signature.v1",
                                    subject=sbom.descriptor())
        tagged = h.build_artifact("application/vnd.example.signature.v1",
                                  subject=old.descriptor())
        new_sig = h.build_artifact("application/vnd.example.signature.v1",
                                   subject=new.descriptor())
        for art in (sig, sbom, sbom_sig, new_sig):
            lg.push_image_retry(self.reg, repo, art)
        lg.push_image_retry(self.reg, repo, tagged, tag="old-signature")
        everything = [i.digest for i in (old, new, sig, sbom, sbom_sig, tagged, new_sig)]
        lg.aws_ok(self, self.server, "put-lifecycle-policy", "--repository-name", repo,
                  "--lifecycle-policy-text", KEEP_ONE_R)
        want = {new.digest, new_sig.digest, tagged.digest}
        h.wait_until(lambda: lg.image_digests(self.server, self.reg, repo, everything) == want,
                     20, interval=0.2, what="r0 and its untagged referrers to go")
        resp = self.reg.referrers(repo, old.digest)
        self.assertEqual(resp.status, 200, resp.describe())
        self.assertEqual([m["digest"] for m in json.loads(resp.body)["manifests"]],
                         [tagged.digest])
        log = self.server.log_text()
        self.assertIn("event=lifecycle_run repo=%s dry_run=0 images=7 selected=4 expired=4"
                      % repo, log)


KEEP_ONE_R = pad(lg.policy({"rulePriority": 1, "selection": {
    "tagStatus": "tagged", "tagPrefixList": ["r"], "countType": "imageCountMoreThan",
    "countNumber": 1}}))


def push_r_images(test, reg, repo, count=3):
    imgs = []
    for i in range(count):
        img = lg.distinct_image()
        lg.push_image_retry(reg, repo, img, tag="r%d" % i)
        imgs.append(img)
        time.sleep(0.01)
    return imgs


class LifecycleNewPolicyDelayTest(h.ServerTestCase):
    """The default lifecycle.new_policy_delay_seconds (one hour) with a run every second:
    a new policy is previewed, not enforced, by the background job; `berth lifecycle run`
    enforces it at once."""

    server_config = {"lifecycle": {"interval_seconds": 1}}

    def policy_set_at(self, repo):
        conn = lg.db(self.server.root)
        try:
            return conn.execute("SELECT lifecycle_set_at FROM repositories WHERE name = ?",
                                (repo,)).fetchone()[0]
        finally:
            conn.close()

    def deferrals(self, repo):
        return self.server.log_text().count("event=lifecycle_deferred repo=%s " % repo)

    def test_put_then_preview_then_cli(self):
        repo = self.repo()
        imgs = push_r_images(self, self.reg, repo)
        digests = [i.digest for i in imgs]
        lg.aws_ok(self, self.server, "put-lifecycle-policy", "--repository-name", repo,
                  "--lifecycle-policy-text", KEEP_ONE_R)
        # the preview right after the put (of the stored policy) shows what would expire
        lg.aws_ok(self, self.server, "start-lifecycle-policy-preview", "--repository-name",
                  repo)
        res = lg.aws(self.server, "wait", "lifecycle-policy-preview-complete",
                     "--repository-name", repo)
        self.assertEqual(res.rc, 0, res)
        prev = lg.aws_ok(self, self.server, "get-lifecycle-policy-preview", "--repository-name",
                         repo)
        self.assertEqual(prev["summary"], {"expiringImageTotalCount": 2})
        self.assertEqual({r["imageDigest"] for r in prev["previewResults"]}, set(digests[:2]))
        # the run the put asked for and the periodic runs after it all hold back
        h.wait_until(lambda: self.deferrals(repo) >= 3, 60, interval=0.2,
                     what="three lifecycle runs to defer the new policy")
        self.assertEqual(lg.image_digests(self.server, self.reg, repo, digests), set(digests))
        self.assertIn("due_in_ms=", self.server.log_text())
        got = lg.aws_ok(self, self.server, "get-lifecycle-policy", "--repository-name", repo)
        self.assertNotIn("lastEvaluatedAt", got)
        # the same text again does not restart the wait; a changed one does
        set_at = self.policy_set_at(repo)
        self.assertGreater(set_at, 0)
        lg.aws_ok(self, self.server, "put-lifecycle-policy", "--repository-name", repo,
                  "--lifecycle-policy-text", KEEP_ONE_R)
        self.assertEqual(self.policy_set_at(repo), set_at)
        lg.aws_ok(self, self.server, "put-lifecycle-policy", "--repository-name", repo,
                  "--lifecycle-policy-text", KEEP_ONE_R + " ")
        self.assertGreater(self.policy_set_at(repo), set_at)
        # the command line does not wait
        rc, out = h.run_berth(["lifecycle", "run", "--root", self.server.root, repo])
        self.assertEqual(rc, 0, out)
        self.assertIn("%s: 3 images, 2 selected, 2 expired" % repo, out)
        self.assertEqual(lg.image_digests(self.server, self.reg, repo, digests), {digests[2]})


class LifecycleShortDelayTest(h.ServerTestCase):
    """A delay of one second and no periodic run for an hour: the put schedules the policy
    for when it is due, and the job enforces it then by itself."""

    server_config = {"lifecycle": {"interval_seconds": 3600, "new_policy_delay_seconds": 1}}

    def test_enforced_by_itself_when_due(self):
        repo = self.repo()
        imgs = push_r_images(self, self.reg, repo)
        digests = [i.digest for i in imgs]
        lg.aws_ok(self, self.server, "put-lifecycle-policy", "--repository-name", repo,
                  "--lifecycle-policy-text", KEEP_ONE_R)
        # well before the first periodic run (one minute after start)
        h.wait_until(lambda: lg.image_digests(self.server, self.reg, repo, digests)
                     == {digests[2]}, 40, interval=0.2, what="the policy to be enforced")
        log = self.server.log_text()
        deferred = log.find("event=lifecycle_deferred repo=%s " % repo)
        expired = log.find("event=lifecycle_expired repo=%s " % repo)
        self.assertTrue(0 <= deferred < expired, "deferred first, then enforced")
        self.assertNotIn("event=lifecycle_pass", log)  # no periodic run did it


class LifecycleCommandLineTest(unittest.TestCase):
    """`berth lifecycle run [--dry-run] [REPOSITORY]` on a store a running server uses."""

    def test_cli(self):
        server = h.Server(config={"lifecycle": {"enabled": False}})
        self.addCleanup(server.cleanup)
        server.start()
        reg = server.registry()
        repo = "itest/cli-lifecycle"
        imgs = []
        for i in range(4):
            img = lg.distinct_image()
            h.expect_status(reg.push_image(repo, img, tag="r%d" % i), 201)
            imgs.append(img)
            time.sleep(0.01)
        rc, out = h.run_berth(["lifecycle", "run", "--root", server.root, repo])
        self.assertEqual(rc, 1, out)
        self.assertIn("has no lifecycle policy", out)
        lg.aws_ok(self, server, "put-lifecycle-policy", "--repository-name", repo,
                  "--lifecycle-policy-text", pad(lg.policy(
                      {"rulePriority": 1, "selection": {"tagStatus": "tagged",
                                                        "tagPrefixList": ["r"],
                                                        "countType": "imageCountMoreThan",
                                                        "countNumber": 1}})))
        rc, out = h.run_berth(["lifecycle", "run", "--dry-run", "--root", server.root, repo])
        self.assertEqual(rc, 0, out)
        for img in imgs[:3]:
            self.assertIn("would-expire    %s@%s rule=1" % (repo, img.digest), out)
        self.assertIn("%s: 4 images, 3 selected, 0 expired" % repo, out)
        self.assertEqual(lg.image_digests(server, reg, repo, [i.digest for i in imgs]),
                         {i.digest for i in imgs})
        # every repository with a policy, for real, while the server runs
        rc, out = h.run_berth(["lifecycle", "run", "--root", server.root])
        self.assertEqual(rc, 0, out)
        self.assertIn("expired         %s@%s rule=1" % (repo, imgs[0].digest), out)
        self.assertIn("lifecycle: 1 repositories, 4 images, 3 selected, 3 expired", out)
        self.assertEqual(lg.image_digests(server, reg, repo, [i.digest for i in imgs]),
                         {imgs[3].digest})
        rc, out = h.run_berth(["lifecycle", "run", "--root", server.root, "itest/nope"])
        self.assertEqual(rc, 1, out)
        self.assertIn("no such repository", out)
        rc, out = h.run_berth(["lifecycle", "--root", server.root])
        self.assertEqual(rc, 2, out)
        server.stop()


if __name__ == "__main__":
    h.main()
