"""scripts/check-layers.py against small trees that break one rule each, and
against the real tree, which must be clean."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
SCRIPT = os.path.join(ROOT, "scripts", "check-layers.py")


def run(root):
    p = subprocess.run([sys.executable, SCRIPT, root], capture_output=True, text=True)
    return p.returncode, p.stdout


class LayersTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="berth-layers-")
        # a clean miniature: each file includes only what it may
        self.write("common/log.h", "")
        self.write("storage/spec/digest.h", '#include "common/log.h"\n')
        self.write("storage/meta/meta.h", '#include "storage/spec/digest.h"\n')
        self.write("storage/meta/meta_int.h", '#include "storage/meta/meta.h"\n')
        self.write("storage/meta/repo.c", '#include "meta_int.h"\n')
        self.write("storage/meta/sqlite.c", "#include <sqlite3.h>\nint x(void) { return sqlite3_open(0, 0); }\n")
        self.write("server/http/httpd.c", "#include <microhttpd.h>\n")
        self.write("tests/unit/unit.h", "")
        self.write("tests/unit/storage/meta/test_repo.c",
                   '#include "unit.h"\n#include "storage/meta/repo.c"\n')

    def tearDown(self):
        shutil.rmtree(self.dir)

    def write(self, path, text):
        full = os.path.join(self.dir, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)

    def assertFinds(self, needle):
        rc, out = run(self.dir)
        self.assertEqual(rc, 1, out)
        self.assertIn(needle, out)

    def test_clean_miniature_passes(self):
        self.assertEqual(run(self.dir), (0, ""))

    def test_the_tree_is_clean(self):
        rc, out = run(ROOT)
        self.assertEqual(rc, 0, out)

    def test_architecture_doc_shows_the_table(self):
        spec = importlib.util.spec_from_file_location("check_layers", SCRIPT)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        with open(os.path.join(ROOT, "docs", "architecture.md")) as f:
            doc = f.read()
        shown = {}
        for folders, deps in re.findall(r"^\| (`[^|]+`) \| ([^|]+) \|$", doc, re.M):
            targets = sorted(re.findall(r"`([^`]+)`", deps))
            for folder in re.findall(r"`([^`]+)`", folders):
                shown[folder] = targets
        self.assertEqual(shown, {k: sorted(v) for k, v in mod.DEPENDS.items()})

    def test_upward_include(self):
        self.write("common/str.c", '#include "storage/meta/meta.h"\n')
        self.assertFinds("common/str.c:1: common may not include storage/meta")

    def test_storage_including_server(self):
        self.write("storage/meta/blob.c", '#include "server/http/http.h"\n')
        self.write("server/http/http.h", "")
        self.assertFinds("storage/meta may not include server/http")

    def test_test_include_in_the_wrong_direction(self):
        self.write("storage/registry/registry.h", "")
        self.write("tests/unit/storage/meta/test_repo.c",
                   '#include "unit.h"\n#include "storage/registry/registry.h"\n')
        self.assertFinds("a test of storage/meta may not include storage/registry")

    def test_test_helper_is_followed(self):
        self.write("storage/registry/registry.h", "")
        self.write("tests/unit/unit_registry.h", '#include "storage/registry/registry.h"\n')
        self.write("tests/unit/storage/meta/test_repo.c", '#include "unit_registry.h"\n')
        self.assertFinds("through tests/unit/unit_registry.h")

    def test_cycle_between_folders(self):
        # both edges are allowed one way only, so a cycle also breaks a rule;
        # the cycle itself is named
        self.write("storage/spec/names.c", '#include "storage/meta/meta.h"\n')
        self.assertFinds("cycle between folders: storage/meta -> storage/spec -> storage/meta")

    def test_private_header_from_another_folder(self):
        self.write("storage/store/store.c", '#include "storage/meta/meta_int.h"\n')
        self.assertFinds("storage/meta/meta_int.h is private to storage/meta/")

    def test_library_header_outside_its_module(self):
        self.write("server/oci/blobs.c", "#include <microhttpd.h>\n")
        self.assertFinds("includes <microhttpd.h>: libmicrohttpd belongs to server/http/")
        self.write("server/oci/blobs.c", "")
        self.write("storage/meta/repo.c", '#include "meta_int.h"\n#include <sqlite3.h>\n')
        self.assertFinds("includes <sqlite3.h>: SQLite belongs to")

    def test_library_symbol_outside_its_module(self):
        self.write("storage/meta/repo.c", '#include "meta_int.h"\nvoid f(void) { sqlite3_step(0); }\n')
        self.assertFinds("uses SQLite (sqlite3_s...)")

    def test_folder_in_no_subsystem(self):
        self.write("storage/cache/lru.c", "")
        self.assertFinds("storage/cache/lru.c: in no subsystem")

    def test_unresolved_include(self):
        self.write("storage/meta/blob.c", '#include "storage/meta/nothere.h"\n')
        self.assertFinds('include "storage/meta/nothere.h" is not a file of the tree')


if __name__ == "__main__":
    unittest.main(verbosity=2)
