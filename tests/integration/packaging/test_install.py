"""`make install` (cmake --install with PREFIX and DESTDIR): what lands where, that the
installed binary serves with the installed configuration, that a reinstall keeps an edited
service configuration, and that the manual page berth(8) is clean roff that documents every
command and configuration key `berth --help` lists."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import berth_harness as h
import packaging_helpers as pk

EXPECTED = [  # relative to DESTDIR, for PREFIX=/usr
    "usr/bin/berth",
    "usr/share/man/man8/berth.8",
    "usr/share/berth/berth.json",
    "usr/share/doc/berth/README.md",
    "usr/lib/systemd/system/berth.service",
    "usr/lib/sysusers.d/berth.conf",
    "etc/berth/berth.json",
]


def help_text():
    proc = subprocess.run([h.find_berth_bin(), "--help"], capture_output=True, text=True,
                          timeout=20)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def help_commands(text):
    """The synopses of the commands section of `berth --help`."""
    section = text.split("\ncommands:\n", 1)[1].split("\n\n", 1)[0]
    return [ln[2:].split("   ")[0].strip() for ln in section.splitlines()
            if ln.startswith("  ") and not ln.startswith("   ")]


def help_keys(text):
    """(key, environment variable or None) of every key `berth --help` lists."""
    section = text.split("command-line flags. Keys:\n", 1)[1]
    keys = []
    for ln in section.splitlines():
        fields = ln.split()
        if fields:
            keys.append((fields[0], None if fields[1] == "(file" else fields[1]))
    return keys


class InstallTest(unittest.TestCase):
    def test_make_install_is_what_the_test_runs(self):
        """`make install` runs the very command packaging_helpers.install runs (after
        `build`), so what is tested here is what `make install PREFIX= DESTDIR=` does."""
        with open(os.path.join(h.REPO_ROOT, "Makefile")) as f:
            text = f.read()
        recipe = re.search(r"(?m)^install: build\n((?:\t.*\n)+)", text)
        self.assertIsNotNone(recipe, "no install target after build in the Makefile")
        self.assertEqual(recipe.group(1),
                         "\tDESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX)\n")
        self.assertRegex(text, r"(?m)^PREFIX\s+\?= /usr/local$")

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="berth-install-")
        cls.dest = os.path.join(cls.tmp, "dest")
        cls.output = pk.install("/usr", destdir=cls.dest)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def path(self, rel):
        return os.path.join(self.dest, rel)

    def test_files_land_under_destdir(self):
        for rel in EXPECTED:
            with self.subTest(rel=rel):
                self.assertTrue(os.path.isfile(self.path(rel)), self.output)
        self.assertTrue(os.access(self.path("usr/bin/berth"), os.X_OK))
        # nothing outside DESTDIR's /usr and /etc
        self.assertEqual(sorted(os.listdir(self.dest)), ["etc", "usr"])
        with open(self.path("usr/share/berth/berth.json")) as a, \
                open(os.path.join(h.REPO_ROOT, "conf", "berth.json")) as b:
            self.assertEqual(a.read(), b.read())

    def test_unit_names_the_installed_paths_without_destdir(self):
        with open(self.path("usr/lib/systemd/system/berth.service")) as f:
            unit = f.read()
        self.assertIn("\nExecStart=/usr/bin/berth serve --config /etc/berth/berth.json\n", unit)
        self.assertNotIn(self.dest, unit)
        self.assertNotRegex(unit, r"@[A-Z_]+@", "an unsubstituted @VAR@")
        self.assertIn("\nExecReload=/bin/kill -HUP $MAINPID\n", unit)
        with open(self.path("usr/lib/sysusers.d/berth.conf")) as f:
            self.assertRegex(f.read(), r"(?m)^u berth - .* /var/lib/berth$")

    def test_other_prefix(self):
        dest = os.path.join(self.tmp, "local")
        pk.install("/usr/local", destdir=dest)
        self.assertTrue(os.path.isfile(os.path.join(dest, "usr/local/bin/berth")))
        self.assertTrue(os.path.isfile(os.path.join(dest, "usr/local/etc/berth/berth.json")))
        with open(os.path.join(dest, "usr/local/lib/systemd/system/berth.service")) as f:
            self.assertIn("ExecStart=/usr/local/bin/berth serve --config "
                          "/usr/local/etc/berth/berth.json\n", f.read())

    def test_reinstall_keeps_the_service_configuration(self):
        dest = os.path.join(self.tmp, "again")
        pk.install("/usr", destdir=dest)
        conf = os.path.join(dest, "etc/berth/berth.json")
        with open(conf, "w") as f:
            f.write('{"listen": "127.0.0.1:5111", "root": "/srv/berth"}\n')
        out = pk.install("/usr", destdir=dest)
        self.assertIn("Keeping: " + conf, out)
        with open(conf) as f:
            self.assertIn("/srv/berth", f.read())

    def test_installed_binary_serves_with_the_installed_configuration(self):
        berth = self.path("usr/bin/berth")
        proc = subprocess.run([berth, "version"], capture_output=True, text=True, timeout=20)
        self.assertEqual(proc.returncode, 0)
        built = subprocess.run([h.find_berth_bin(), "version"], capture_output=True, text=True,
                               timeout=20)
        self.assertEqual(proc.stdout, built.stdout)
        # the service's configuration, pointed at a private data directory and a free port
        with open(self.path("etc/berth/berth.json")) as f:
            conf = json.load(f)
        self.assertEqual(conf["root"], "/var/lib/berth")
        work = tempfile.mkdtemp(prefix="berth-installed-", dir=self.tmp)
        port = h.free_port()
        conf.update(root=os.path.join(work, "data"), listen="127.0.0.1:%d" % port)
        conf_path = os.path.join(work, "berth.json")
        with open(conf_path, "w") as f:
            json.dump(conf, f)
        keys = subprocess.run([berth, "keys", "create", "admin", "--config", conf_path],
                              capture_output=True, text=True, timeout=20)
        self.assertEqual(keys.returncode, 0, keys.stderr)
        self.assertRegex(keys.stdout, r"AWS_ACCESS_KEY_ID=AKIA")
        p = pk.Process([berth, "serve", "--config", conf_path], workdir=work)
        try:
            base = "http://127.0.0.1:%d" % port
            p.wait_ready(base)
            status, _ = pk.http_get(base + "/v2/")
            self.assertEqual(status, 401, "a key exists: /v2/ asks for credentials")
            self.assertEqual(p.stop(), 0, p.log_text())
        finally:
            p.cleanup()


class ManPageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.page = os.path.join(pk.BUILD_DIR, "berth.8")
        proc = subprocess.run([h.find_berth_bin(), "man"], capture_output=True, timeout=20)
        assert proc.returncode == 0
        cls.roff = proc.stdout.decode()
        env = dict(os.environ, MANWIDTH="100", MAN_KEEP_FORMATTING="")
        rendered = subprocess.run(["man", "-l", "-Tutf8", "--warnings=w", cls.page], env=env,
                                  capture_output=True, timeout=60)
        cls.man_status = rendered.returncode
        cls.man_errors = rendered.stderr.decode()
        # plain text: no overstrike bold or underline
        cls.text = re.sub(r".\x08", "", rendered.stdout.decode())

    def test_built_page_is_what_berth_man_prints(self):
        with open(self.page) as f:
            self.assertEqual(f.read(), self.roff)

    def test_groff_and_man_find_nothing_to_warn_about(self):
        proc = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", self.page],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stderr, "")
        self.assertEqual(self.man_status, 0, self.man_errors)
        self.assertEqual(self.man_errors, "")
        self.assertIn("BERTH(8)", self.text)

    def test_every_command_and_key_of_help_is_documented(self):
        text = help_text()
        flat = " ".join(self.text.split())
        commands = help_commands(text)
        self.assertIn("keys create NAME [PERMISSION ...]", commands)
        self.assertGreaterEqual(len(commands), 12)
        for synopsis in commands:
            with self.subTest(command=synopsis):
                self.assertIn("berth " + synopsis, flat)
        keys = help_keys(text)
        self.assertGreaterEqual(len(keys), 40)
        for key, env in keys:
            with self.subTest(key=key):
                self.assertRegex(self.text, r"(?m)^\s+%s(\s|$)" % re.escape(key))
                if env:
                    self.assertIn("(%s)" % env, flat)
        for section in ("NAME", "SYNOPSIS", "COMMANDS", "OPTIONS", "CONFIGURATION", "SIGNALS",
                        "EXIT STATUS", "FILES"):
            self.assertRegex(self.text, r"(?m)^%s$" % section)


if __name__ == "__main__":
    unittest.main(verbosity=2)
