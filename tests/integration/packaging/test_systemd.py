"""The systemd unit `make install` writes (deploy/systemd/berth.service.in): systemd's own
checker finds nothing wrong with it (`systemd-analyze verify`, with the installed binary and
man page), `systemd-analyze security` scores its sandbox below 2.0, its settings are the
ones berth needs (the unit type matches whether berth speaks sd_notify), and its ExecStart,
ExecReload and stop signal do what the unit says with the installed files.

No systemd runs as PID 1 here, so the sandbox itself (seccomp filter, namespaces) is checked
by systemd's analysis, not by running berth inside it."""

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import unittest

import berth_harness as h
import packaging_helpers as pk

SOURCE_DIRS = ("common", "storage", "scan", "server")


def parse_unit(text):
    """{section: [(key, value), ...]} of a unit file."""
    sections, current = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, _, value = line.partition("=")
        current.append((key, value))
    return sections


def source_mentions(word):
    for top in SOURCE_DIRS:
        for dirpath, _, files in os.walk(os.path.join(h.REPO_ROOT, top)):
            for name in files:
                if name.endswith((".c", ".h")):
                    with open(os.path.join(dirpath, name), errors="replace") as f:
                        if word in f.read():
                            return True
    return False


class SystemdUnitTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="berth-systemd-")
        # a real prefix (no DESTDIR), so that the paths the unit names exist
        cls.prefix = os.path.join(cls.tmp, "prefix")
        pk.install(cls.prefix)
        cls.unit_path = os.path.join(cls.prefix, "lib", "systemd", "system", "berth.service")
        with open(cls.unit_path) as f:
            cls.text = f.read()
        cls.unit = parse_unit(cls.text)
        cls.service = dict(cls.unit["Service"])
        with open(os.path.join(cls.prefix, "etc", "berth", "berth.json")) as f:
            cls.service_config = json.load(f)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def values(self, key):
        return [v for k, v in self.unit["Service"] if k == key]

    def test_systemd_analyze_verify(self):
        env = dict(os.environ, MANPATH=os.path.join(self.prefix, "share", "man"))
        proc = subprocess.run(["systemd-analyze", "verify", self.unit_path], env=env,
                              capture_output=True, text=True, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertEqual(proc.stderr.strip(), "", "systemd-analyze verify complains")
        # and it does check: a typo and a missing binary are reported
        broken = os.path.join(self.tmp, "broken.service")
        with open(broken, "w") as f:
            f.write(self.text.replace("ProtectSystem=strict", "ProtectSystem=strikt")
                    .replace(os.path.join(self.prefix, "bin", "berth"), "/nonexistent/berth"))
        proc = subprocess.run(["systemd-analyze", "verify", broken], env=env,
                              capture_output=True, text=True, timeout=120)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("/nonexistent/berth", proc.stderr)
        self.assertIn("strikt", proc.stderr)

    def test_security_exposure_below_2(self):
        proc = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager",
                               "--threshold=19", self.unit_path],
                              capture_output=True, text=True, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stdout[-3000:] + proc.stderr)
        match = re.search(r"Overall exposure level for berth\.service: (\d+\.\d)", proc.stdout)
        self.assertIsNotNone(match, proc.stdout[-2000:])
        self.assertLess(float(match.group(1)), 2.0, proc.stdout)

    def test_settings(self):
        s = self.service
        notify = source_mentions("NOTIFY_SOCKET") or source_mentions("sd_notify")
        self.assertEqual(s["Type"], "notify" if notify else "simple",
                         "Type=notify only if berth sends sd_notify")
        self.assertEqual(s["ExecReload"], "/bin/kill -HUP $MAINPID")
        self.assertEqual(s["User"], "berth")
        self.assertEqual(s["StateDirectory"], "berth")
        self.assertEqual(s["ProtectSystem"], "strict")
        self.assertEqual(s["NoNewPrivileges"], "yes")
        self.assertEqual(s["PrivateTmp"], "yes")
        self.assertEqual(s["CapabilityBoundingSet"], "")
        self.assertIn("/var/lib/berth", s["ReadWritePaths"].split())
        self.assertGreaterEqual(int(s["LimitNOFILE"]), 65536)
        # longer than berth's 30 s drain, so systemd does not SIGKILL a draining berth
        self.assertGreater(int(s["TimeoutStopSec"]), 30)
        # berth pings every half interval while it answers its own probe
        self.assertGreaterEqual(int(s["WatchdogSec"]), 30)
        self.assertIn("@system-service", self.values("SystemCallFilter"))
        # the data directory in the service's configuration is the one the unit makes writable
        self.assertEqual(self.service_config["root"], "/var/lib/berth")
        self.assertIn("man:berth(8)", dict(self.unit["Unit"])["Documentation"])

    def test_exec_start_reload_and_stop(self):
        """ExecStart as written (its configuration pointed at a private directory and port)
        with a $NOTIFY_SOCKET as systemd gives a Type=notify service, ExecReload with
        $MAINPID, then the stop signal (KillSignal, SIGTERM by default): berth says READY=1
        once it serves, RELOADING=1 then READY=1 around the reload, STOPPING=1, and exits 0
        within TimeoutStopSec."""
        argv = shlex.split(self.service["ExecStart"])
        self.assertEqual(argv[0], os.path.join(self.prefix, "bin", "berth"))
        config_path = argv[argv.index("--config") + 1]
        work = tempfile.mkdtemp(prefix="run-", dir=self.tmp)
        port = h.free_port()
        with open(config_path) as f:
            conf = json.load(f)
        conf.update(root=os.path.join(work, "state"), listen="127.0.0.1:%d" % port)
        with open(config_path, "w") as f:
            json.dump(conf, f)
        notify_path = os.path.join(work, "notify.sock")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        notify.settimeout(h.START_TIMEOUT)
        base = "http://127.0.0.1:%d" % port
        # WATCHDOG_USEC as systemd derives it from WatchdogSec
        env = dict(os.environ, NOTIFY_SOCKET=notify_path,
                   WATCHDOG_USEC=str(int(self.service["WatchdogSec"]) * 1000000))
        p = pk.Process(argv, env=env, workdir=work)
        pings = []

        def state():
            # the next state but the watchdog's pings, which may come at any time
            while True:
                msg = notify.recv(4096).decode()
                if msg != "WATCHDOG=1":
                    return msg
                pings.append(msg)

        try:
            ready = state()
            self.assertEqual(ready.splitlines()[0], "READY=1")
            self.assertIn("STATUS=serving on 127.0.0.1:%d" % port, ready)
            # ready means serving: the first request after READY=1 is answered
            self.assertEqual(pk.http_get(base + "/readyz")[0], 200)
            # the watchdog probes at once, then every half interval
            if not pings:
                self.assertEqual(notify.recv(4096).decode(), "WATCHDOG=1")
            reload = shlex.split(self.service["ExecReload"].replace("$MAINPID", str(p.pid)))
            self.assertEqual(subprocess.run(reload, timeout=20).returncode, 0)
            reloading = state()
            self.assertRegex(reloading, r"^RELOADING=1\nMONOTONIC_USEC=\d+$")
            self.assertEqual(state().splitlines()[0], "READY=1")
            self.assertIn("event=sighup_ignored", p.log_text())
            self.assertIsNone(p.proc.poll(), "berth stopped on SIGHUP")
            sig = getattr(signal, self.service.get("KillSignal", "SIGTERM"))
            p.proc.send_signal(sig)
            self.assertEqual(state(), "STOPPING=1")
            self.assertEqual(p.wait_exit(int(self.service["TimeoutStopSec"])), 0, p.log_text())
            self.assertIn("event=server_stopped", p.log_text())
        finally:
            notify.close()
            p.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
