"""Helpers of the packaging tests (tests/integration/packaging/): installing the build tree
as `make install` does, and running a berth that is not the harness's (an installed binary,
a command line out of a systemd unit, the image's root file system) until it serves."""

import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import berth_harness as h

BUILD_DIR = os.path.abspath(os.environ.get("BERTH_BUILD_DIR") or os.path.join(h.REPO_ROOT, "build"))


def install(prefix, destdir=None, extra=()):
    """`make install`'s step: cmake --install BUILD --prefix PREFIX with DESTDIR. Returns its
    output; fails the caller (AssertionError) when it fails."""
    env = dict(os.environ)
    env.pop("DESTDIR", None)
    if destdir is not None:
        env["DESTDIR"] = destdir
    proc = subprocess.run(["cmake", "--install", BUILD_DIR, "--prefix", prefix] + list(extra),
                          env=env, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError("cmake --install failed: %s%s" % (proc.stdout, proc.stderr))
    return proc.stdout


def http_get(url, timeout=5, headers=None):
    """(status, body) of a GET; (None, reason) when nothing answers."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        return None, str(exc)


class Process:
    """A berth started from a command line of the test's choosing, logging to a file."""

    def __init__(self, cmd, env=None, cwd=None, workdir=None):
        self.workdir = workdir or tempfile.mkdtemp(prefix="berth-pkg-")
        self.log_path = os.path.join(self.workdir, "process.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    @property
    def pid(self):
        return self.proc.pid

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_ready(self, base_url, timeout=h.START_TIMEOUT):
        """Wait until GET /readyz answers 200; an AssertionError with the log otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("berth exited with %s before serving:\n%s"
                                     % (self.proc.returncode, self.log_text()[-3000:]))
            status, _ = http_get(base_url + "/readyz", timeout=2)
            if status == 200:
                return
            time.sleep(0.05)
        raise AssertionError("berth not ready at %s after %.0f s:\n%s"
                             % (base_url, timeout, self.log_text()[-3000:]))

    def wait_exit(self, timeout=h.STOP_TIMEOUT):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("berth still running %d s after it was told to stop:\n%s"
                                 % (timeout, self.log_text()[-3000:]))

    def stop(self, timeout=h.STOP_TIMEOUT):
        """SIGTERM, then the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)
