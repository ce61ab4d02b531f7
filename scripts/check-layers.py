#!/usr/bin/env python3
"""The layering of berth's source tree, checked (docs/architecture.md draws it).

Every folder below is a subsystem; DEPENDS says which subsystems each may
include directly, and a subsystem may include what those may include, and so
on down. The check fails on:

  - an include that runs against that order (common including storage,
    storage including server, a test of storage/meta including a registry
    header, ...), or into a folder the table does not know;
  - a cycle between subsystem folders (the includes actually written);
  - a private header (<module>_int.h) included from outside its folder;
  - a library used outside the files that own it: the header, and the
    library's own names (MHD_..., sqlite3_..., EVP_..., archive_...);
  - an include that does not resolve to a file of the tree.

Tests mirror the tree: tests/unit/<folder>/test_<module>.c is held to the
rules of <folder> (the shared helpers in tests/unit/ count as what they
include); tests/fuzz, tests/integration and bench/ may use any subsystem.

Usage: scripts/check-layers.py [ROOT]   (prints nothing and exits 0 when the
tree is clean; one line per finding and exit 1 otherwise)
"""

import os
import re
import sys

# Each subsystem and the subsystems it may include directly.
DEPENDS = {
    "common": [],
    "storage/spec": ["common"],
    "storage/blob": ["storage/spec"],
    "storage/meta": ["storage/spec"],
    "storage/store": ["storage/blob", "storage/meta"],
    "storage/registry": ["storage/store"],
    "storage/gc": ["storage/registry"],
    "storage/lifecycle": ["storage/registry"],
    "storage/bundle": ["storage/registry", "storage/upstream"],
    "storage/upstream": ["storage/registry"],
    "scan/findings": ["storage/spec"],
    "scan/packages": ["common"],
    "scan/vulndb": ["scan/findings", "scan/packages"],
    "scan/engine": ["scan/vulndb", "storage/registry"],
    "server/auth": ["storage/store"],
    "server/metrics": ["common"],
    "server/http": ["server/auth", "server/metrics"],
    "server/oci": ["server/http", "storage/registry", "storage/upstream"],
    "server/jobs": [
        "scan/engine",
        "server/metrics",
        "storage/gc",
        "storage/lifecycle",
        "storage/upstream",
    ],
    "server/ecr": [
        "server/http",
        "server/jobs",
        "storage/lifecycle",
        "storage/registry",
        "storage/upstream",
    ],
    "server/ops": ["server/http"],
    "server/console": ["server/http", "server/jobs"],
    "server/cli": ["server/console", "server/ecr", "server/oci", "server/ops", "storage/bundle"],
}

# Libraries owned by a few files: (what, header pattern, symbol pattern,
# files or folders allowed).
LIBRARIES = [
    ("libmicrohttpd", r"microhttpd\.h", r"\bMHD_[A-Za-z]", ["server/http/"]),
    (
        "SQLite",
        r"sqlite3\.h",
        r"\bsqlite3_[a-z]",
        ["storage/meta/sqlite.c", "scan/packages/rpmdb.c", "scan/vulndb/sqlite.c"],
    ),
    ("libpq", r"libpq-fe\.h", r"\bPQ[a-z]", ["storage/meta/postgres.c"]),
    ("GnuTLS", r"gnutls/", r"\bgnutls_[a-z]", ["server/http/tls.c"]),
    (
        "OpenSSL",
        r"openssl/",
        r"\b(EVP|HMAC|SHA256|SHA512)_[A-Za-z]",
        ["storage/spec/digest.c", "storage/spec/seal.c", "storage/spec/notation.c"],
    ),
    ("zstd", r"zstd\.h", r"\bZSTD_[a-z]", ["storage/store/tier.c"]),
    ("libcurl", r"curl/curl\.h", r"\bcurl_[a-z]", ["storage/upstream/client.c", "storage/blob/s3_client.c"]),
    (
        "libarchive",
        r"archive(_entry)?\.h",
        r"\barchive_(read|write|entry)_",
        ["scan/packages/layers.c", "scan/vulndb/vulndb.c", "storage/bundle/"],
    ),
]

SOURCE_ROOTS = ["common", "storage", "scan", "server"]
FREE_ROOTS = ["bench", "tests/fuzz"]  # may use any subsystem
UNIT_ROOT = "tests/unit"

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def closure():
    """Subsystem -> every subsystem it may include (itself included)."""
    seen = {}

    def visit(s, path):
        if s in path:
            raise SystemExit("check-layers: DEPENDS has a cycle: " + " -> ".join(path + [s]))
        if s not in seen:
            out = {s}
            for d in DEPENDS[s]:
                out |= visit(d, path + [s])
            seen[s] = out
        return seen[s]

    for s in DEPENDS:
        visit(s, [])
    return seen


def subsystem_of(path):
    """The subsystem a tree path belongs to (its longest DEPENDS prefix), or None."""
    best = None
    for s in DEPENDS:
        if path == s or path.startswith(s + "/"):
            if best is None or len(s) > len(best):
                best = s
    return best


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r'"(\\.|[^"\\\n])*"', '""', text)
    return text


def c_files(root, top):
    base = os.path.join(root, top)
    for d, _, files in os.walk(base):
        for f in sorted(files):
            if f.endswith((".c", ".h")):
                yield os.path.relpath(os.path.join(d, f), root)


def resolve(root, including, name):
    """The tree path an include names: relative to the including file, else
    to the root (and, for tests and tools, to tests/unit, where the test
    helpers are); None when it is not a file of the tree."""
    cands = [os.path.join(os.path.dirname(including), name), name]
    if including.startswith(("tests/", "bench/")):
        cands.append(os.path.join(UNIT_ROOT, name))
    for cand in cands:
        cand = os.path.normpath(cand)
        if os.path.isfile(os.path.join(root, cand)):
            return cand
    return None


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), ".."))
    allowed = closure()
    problems = []
    edges = {}  # subsystem -> {subsystem: first file making the edge}

    def project_includes(path):
        """(line, target) for each quoted include of path that is a tree file;
        unresolved ones are reported."""
        with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
            text = f.read()
        out = []
        for m in INCLUDE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            if m.group(1) == "<":
                continue
            target = resolve(root, path, m.group(2))
            if target is None:
                problems.append('%s:%d: include "%s" is not a file of the tree' %
                                (path, line, m.group(2)))
                continue
            out.append((line, target))
        return out

    def check_edge(path, line, owner, target, why=""):
        dest = subsystem_of(target)
        if target.startswith(UNIT_ROOT + "/"):
            return
        if dest is None:
            problems.append("%s:%d: includes %s, which is in no subsystem%s" %
                            (path, line, target, why))
            return
        if dest not in allowed[owner]:
            problems.append("%s:%d: %s may not include %s (%s)%s" %
                            (path, line, owner, dest, target, why))
        if dest != owner:
            edges.setdefault(owner, {}).setdefault(dest, "%s:%d" % (path, line))

    def check_private(path, line, target):
        if target.endswith("_int.h") and os.path.dirname(target) != os.path.dirname(path):
            problems.append("%s:%d: %s is private to %s/" %
                            (path, line, target, os.path.dirname(target)))

    # the sources
    for top in SOURCE_ROOTS:
        for path in c_files(root, top):
            owner = subsystem_of(path)
            if owner is None:
                problems.append("%s: in no subsystem (add its folder to DEPENDS)" % path)
                continue
            for line, target in project_includes(path):
                check_private(path, line, target)
                check_edge(path, line, owner, target)

    # unit tests: held to their folder's rules, helpers expanded
    helper_includes = {}

    def expand(path, depth=0):
        result = []
        for line, target in project_includes(path):
            if target.startswith(UNIT_ROOT + "/") and target.endswith(".h") and depth < 4:
                if target not in helper_includes:
                    helper_includes[target] = expand(target, depth + 1)
                result += [(line, t, " (through %s)" % target) for _, t, _ in
                           helper_includes[target]]
            else:
                result.append((line, target, ""))
        return result

    for path in c_files(root, UNIT_ROOT):
        if not os.path.basename(path).startswith("test_"):
            continue
        folder = os.path.dirname(os.path.relpath(path, UNIT_ROOT))
        owner = folder if folder in DEPENDS else None
        if owner is None:
            problems.append("%s: tests/unit/%s mirrors no subsystem folder" % (path, folder))
            continue
        for line, target, why in expand(path):
            if target.endswith(".c") and subsystem_of(target) != owner:
                problems.append("%s:%d: includes %s, a source outside %s/%s" %
                                (path, line, target, owner, why))
            if (target.endswith("_int.h") and not target.startswith(UNIT_ROOT) and
                    os.path.dirname(target) != owner):
                problems.append("%s:%d: %s is private to %s/%s" %
                                (path, line, target, os.path.dirname(target), why))
            dest = subsystem_of(target)
            if dest is not None and dest not in allowed[owner]:
                problems.append("%s:%d: a test of %s may not include %s (%s)%s" %
                                (path, line, owner, dest, target, why))

    # tools may use anything, but not another module's private headers
    for top in FREE_ROOTS:
        for path in c_files(root, top):
            for line, target in project_includes(path):
                if target.endswith("_int.h") and not target.startswith(top):
                    problems.append("%s:%d: %s is private to %s/" %
                                    (path, line, target, os.path.dirname(target)))

    # cycles among the includes actually written
    state = {}

    def dfs(s, stack):
        state[s] = 1
        for d in sorted(edges.get(s, {})):
            if state.get(d) == 1:
                cyc = stack[stack.index(d):] + [d] if d in stack else [s, d]
                problems.append("cycle between folders: %s (first edge %s)" %
                                (" -> ".join(cyc), edges[s][d]))
            elif d not in state:
                dfs(d, stack + [d])
        state[s] = 2

    for s in sorted(edges):
        if s not in state:
            dfs(s, [s])

    # libraries
    for name, header, symbol, owners in LIBRARIES:
        hre, sre = re.compile(header), re.compile(symbol)
        for top in SOURCE_ROOTS + ["tests/unit"]:
            for path in c_files(root, top):
                if any(path == o or path.startswith(o.rstrip("/") + "/") for o in owners):
                    continue
                if path.startswith(UNIT_ROOT + "/"):
                    # a test may drive the library to make its inputs (an
                    # rpm database to read), but only by its header
                    continue
                with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
                    text = f.read()
                for m in INCLUDE.finditer(text):
                    if m.group(1) == "<" and hre.search(m.group(2)):
                        line = text.count("\n", 0, m.start()) + 1
                        problems.append("%s:%d: includes <%s>: %s belongs to %s" %
                                        (path, line, m.group(2), name, ", ".join(owners)))
                code = strip_comments(text)
                m = sre.search(code)
                if m:
                    line = code.count("\n", 0, m.start()) + 1
                    problems.append("%s:%d: uses %s (%s...) outside %s" %
                                    (path, line, name, m.group(0), ", ".join(owners)))

    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
