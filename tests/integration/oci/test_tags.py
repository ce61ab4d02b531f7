"""Tag listing (end-8a/b) and /v2/_catalog: byte order, n, last, Link pagination."""

import re
import urllib.parse

import berth_harness as h

LINK_RE = re.compile(r'^<([^>]+)>\s*;\s*rel="?next"?$')

TAGS = ["0.1.2", "0.1.20", "0.1.3", "0.1.10", "v1", "v10", "v2", "V1", "Latest", "latest",
        "_under", "A", "Z", "a", "z", "9", "1.0", "1.0-rc1", "1.0.0", "1.0_b", "main.x"]


class Pager:
    """Walks a paginated listing by following Link rel="next" verbatim."""

    def __init__(self, test, key):
        self.test = test
        self.key = key

    def link_target(self, resp):
        values = resp.header_all("Link")
        if not values:
            return None
        self.test.assertEqual(len(values), 1, resp.describe())
        match = LINK_RE.match(values[0].strip())
        self.test.assertIsNotNone(match, "malformed Link: %r" % values[0])
        return match.group(1)

    def walk(self, first_target, max_pages=1000):
        """Return (all items in order, pages) following Link headers from first_target."""
        items, pages, target, previous = [], 0, first_target, first_target
        while target is not None:
            pages += 1
            self.test.assertLessEqual(pages, max_pages, "pagination does not end")
            previous = self.test.reg.resolve(target, base=previous)
            resp = self.test.reg.get(previous)
            self.test.assertStatus(resp, 200)
            items += resp.json()[self.key] or []
            target = self.link_target(resp)
        return items, pages


def query_of(target):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(target).query))


class TagListTest(h.ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tag_repo = "itest/tags"
        cls.image = h.build_image(layer_count=1)
        h.expect_status(cls.reg.push_image(cls.tag_repo, cls.image, tag=TAGS[0]), 201)
        for tag in TAGS[1:]:
            h.expect_status(cls.reg.put_manifest(cls.tag_repo, tag, cls.image.manifest,
                                                 cls.image.media_type), 201)
        cls.sorted_tags = sorted(TAGS, key=lambda t: t.encode())

    def tags(self, **params):
        resp = self.reg.tags(self.tag_repo, **params)
        self.assertStatus(resp, 200)
        self.assertEqual(resp.json()["name"], self.tag_repo)
        return resp

    @h.distribution_fails("2.8 ignores n and last and lists tags unsorted")
    def test_all_tags_in_byte_order(self):
        resp = self.tags()
        self.assertEqual(resp.json()["tags"], self.sorted_tags)
        self.assertFalse(resp.header_all("Link"), resp.describe())
        self.assertTrue(resp.header("Content-Type").startswith("application/json"))

    def test_prefix_tags_are_all_listed(self):
        tags = self.tags().json()["tags"]
        for tag in ("0.1.2", "0.1.20", "1.0", "1.0-rc1", "1.0.0", "1.0_b"):
            self.assertIn(tag, tags)

    @h.distribution_fails("2.8 ignores n and last and lists tags unsorted")
    def test_n_limits_and_links(self):
        resp = self.tags(n=3)
        self.assertEqual(resp.json()["tags"], self.sorted_tags[:3])
        target = Pager(self, "tags").link_target(resp)
        self.assertIsNotNone(target, "a Link is required when more tags exist")
        query = query_of(target)
        self.assertEqual(query.get("n"), "3")
        self.assertEqual(query.get("last"), self.sorted_tags[2])

    @h.distribution_fails("2.8 ignores n and last and lists tags unsorted")
    def test_walk_every_page_size(self):
        for n in (1, 2, 5, len(TAGS) - 1, len(TAGS), len(TAGS) + 1):
            with self.subTest(n=n):
                first = "/v2/%s/tags/list?n=%d" % (self.tag_repo, n)
                items, pages = Pager(self, "tags").walk(first)
                self.assertEqual(items, self.sorted_tags)
                self.assertEqual(pages, max(1, -(-len(TAGS) // n)))

    @h.distribution_fails("2.8 ignores n and last and lists tags unsorted")
    def test_last(self):
        for i, last in enumerate(self.sorted_tags):
            resp = self.tags(last=last)
            with self.subTest(last=last):
                self.assertEqual(resp.json()["tags"] or [], self.sorted_tags[i + 1:])

    @h.distribution_fails("2.8 ignores n and last and lists tags unsorted")
    def test_last_that_is_not_a_tag(self):
        resp = self.tags(last="0.1.2a")  # between 0.1.2 and 0.1.20
        want = [t for t in self.sorted_tags if t.encode() > b"0.1.2a"]
        self.assertEqual(resp.json()["tags"], want)

    @h.distribution_fails("2.8 ignores n and last and lists tags unsorted")
    def test_n_and_last(self):
        resp = self.tags(n=2, last=self.sorted_tags[3])
        self.assertEqual(resp.json()["tags"], self.sorted_tags[4:6])
        self.assertIsNotNone(Pager(self, "tags").link_target(resp))

    @h.distribution_fails("2.8 ignores n and last and lists tags unsorted")
    def test_last_page_has_no_link(self):
        resp = self.tags(n=2, last=self.sorted_tags[-3])
        self.assertEqual(resp.json()["tags"], self.sorted_tags[-2:])
        self.assertFalse(resp.header_all("Link"), resp.describe())

    @h.distribution_fails("2.8 ignores n and last and lists tags unsorted")
    def test_n_zero(self):
        resp = self.tags(n=0)
        self.assertEqual(resp.json()["tags"] or [], [])
        self.assertFalse(resp.header_all("Link"), resp.describe())

    @h.distribution_fails("2.8 ignores n and last and lists tags unsorted")
    def test_bad_n(self):
        for bad in ("-1", "abc", "1.5", ""):
            resp = self.reg.get("/v2/%s/tags/list?n=%s" % (self.tag_repo, bad))
            with self.subTest(n=bad):
                if bad == "":
                    self.assertIn(resp.status, (200, 400), resp.describe())
                else:
                    self.assertError(resp, 400, "PAGINATION_NUMBER_INVALID")

    def test_tags_of_unknown_repository(self):
        self.assertError(self.reg.tags("itest/no-such-repo"), 404, "NAME_UNKNOWN")

    @h.berth_only("tags list with no n returns every tag")
    def test_no_n_returns_everything(self):
        repo = self.repo()
        img = h.build_image(layer_count=0)
        self.push_image_ok(repo, img, tag="t000")
        names = ["t%03d" % i for i in range(150)]
        for tag in names[1:]:
            self.assertStatus(self.reg.put_manifest(repo, tag, img.manifest, img.media_type), 201)
        resp = self.reg.tags(repo)
        self.assertStatus(resp, 200)
        self.assertEqual(resp.json()["tags"], names)
        self.assertFalse(resp.header_all("Link"))


class CatalogTest(h.ServerTestCase):
    """This server holds exactly the repositories made in setUpClass."""

    REPO_COUNT = 105

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        img = h.build_image(layer_count=0)
        cls.repos = ["cat/r%03d" % i for i in range(cls.REPO_COUNT - 3)]
        cls.repos += ["cat-a", "cat.b", "cat_c"]
        for repo in cls.repos:
            for data in img.blobs.values():
                h.expect_status(cls.reg.push_blob(repo, data), 201)
            h.expect_status(cls.reg.put_manifest(repo, "v1", img.manifest, img.media_type), 201)
        cls.repos.sort(key=lambda r: r.encode())

    def catalog(self, **params):
        resp = self.reg.catalog(**params)
        self.assertStatus(resp, 200)
        return resp

    @h.distribution_fails("lists repositories in directory-walk order, not byte order")
    def test_byte_order(self):
        resp = self.catalog(n=1000)
        self.assertEqual(resp.json()["repositories"], self.repos)

    @h.distribution_fails("lists repositories in directory-walk order, not byte order")
    def test_default_page_is_100(self):
        resp = self.catalog()
        self.assertEqual(resp.json()["repositories"], self.repos[:100])
        target = Pager(self, "repositories").link_target(resp)
        self.assertIsNotNone(target)
        self.assertEqual(query_of(target).get("last"), self.repos[99])

    def test_walk_everything(self):
        for n in (7, 50, 100, 1000):
            with self.subTest(n=n):
                items, pages = Pager(self, "repositories").walk("/v2/_catalog?n=%d" % n)
                self.assertEqual(sorted(items), self.repos)  # each exactly once
                self.assertEqual(pages, -(-len(self.repos) // n))

    def test_link_format(self):
        resp = self.catalog(n=10)
        target = Pager(self, "repositories").link_target(resp)
        self.assertTrue(target.startswith("/v2/_catalog?"), target)
        self.assertEqual(query_of(target),
                         {"n": "10", "last": resp.json()["repositories"][-1]})

    def test_last(self):
        resp = self.catalog(n=5, last=self.repos[10])
        self.assertEqual(resp.json()["repositories"], self.repos[11:16])
        resp = self.catalog(last=self.repos[-1])
        self.assertEqual(resp.json()["repositories"] or [], [])
        self.assertFalse(resp.header_all("Link"))

    def test_n_zero(self):
        resp = self.catalog(n=0)
        self.assertEqual(resp.json()["repositories"] or [], [])
        self.assertFalse(resp.header_all("Link"), resp.describe())

    def test_n_cap(self):
        resp = self.catalog(n=1000)
        self.assertEqual(sorted(resp.json()["repositories"]), self.repos)
        self.assertError(self.reg.catalog(n=1001), 400, "PAGINATION_NUMBER_INVALID")

    @h.distribution_fails("treats a negative or non-numeric n as the default")
    def test_bad_n(self):
        for bad in ("-1", "abc", "99999999999999999999999"):
            with self.subTest(n=bad):
                self.assertError(self.reg.get("/v2/_catalog?n=" + bad), 400,
                                 "PAGINATION_NUMBER_INVALID")


if __name__ == "__main__":
    h.main()
