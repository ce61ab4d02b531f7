"""A real headless Chromium (Debian's chromium and chromium-driver) driven over the WebDriver
HTTP protocol with the standard library, for the console's browser tests. Screenshots go
under the test's output directory (BERTH_TEST_OUTPUT, default <build>/test-output/console)."""

import base64
import http.client
import json
import os
import subprocess
import tempfile
import time

import clients as c
import berth_harness as h

CHROMIUM = "/usr/bin/chromium"
# axe-core, from npm (scripts/setup-deps.sh runs npm ci there)
AXE = os.path.join(h.REPO_ROOT, "tests", "integration", "console", "node_modules", "axe-core",
                   "axe.min.js")
CHROMEDRIVER = "/usr/bin/chromedriver"
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
WAIT = 30.0  # seconds a page has to show what is awaited
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--window-size=1280,1000"]


def output_dir():
    out = os.environ.get("BERTH_TEST_OUTPUT")
    if not out:
        build = os.environ.get("BERTH_BUILD_DIR") or tempfile.gettempdir()
        out = os.path.join(build, "test-output")
    out = os.path.join(out, "console")
    os.makedirs(out, exist_ok=True)
    return out


class WebDriverError(AssertionError):
    pass


class Browser:
    """chromedriver on a free loopback port and one Chromium session with a fresh profile."""

    def __init__(self, work):
        c.require(CHROMIUM)
        c.require(CHROMEDRIVER)
        self.port = h.free_port()
        self.log = open(os.path.join(work, "chromedriver.log"), "wb")
        self.proc = subprocess.Popen([CHROMEDRIVER, "--port=%d" % self.port],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.session = None
        deadline = time.monotonic() + WAIT
        while True:
            try:
                if self.call("GET", "/status")["ready"]:
                    break
            except (OSError, http.client.HTTPException):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("chromedriver did not start (see %s)" % self.log.name)
            time.sleep(0.1)
        profile = os.path.join(work, "chromium-profile")
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM,
                                   "args": CHROME_FLAGS + ["--user-data-dir=" + profile]},
        }}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data,
                         headers={"Content-Type": "application/json"} if data else {})
            resp = conn.getresponse()
            doc = json.loads(resp.read() or b"{}")
        finally:
            conn.close()
        if resp.status != 200:
            raise WebDriverError("%s %s -> %d %s" % (method, path, resp.status,
                                                     json.dumps(doc.get("value"))[:500]))
        return doc.get("value")

    def s(self, method, path, body=None):
        return self.call(method, "/session/%s%s" % (self.session, path), body)

    def close(self):
        try:
            if self.session:
                self.s("DELETE", "")
        except (OSError, AssertionError, http.client.HTTPException):
            pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    # -- pages and elements -------------------------------------------------------------------

    def go(self, url):
        self.s("POST", "/url", {"url": url})

    def url(self):
        return self.s("GET", "/url")

    def find_all(self, css):
        return [x[ELEMENT] for x in self.s("POST", "/elements", {"using": "css selector",
                                                                  "value": css})]

    def wait_for(self, css, text=None):
        """The first element matching css (whose text contains text), once it shows."""
        deadline = time.monotonic() + WAIT
        while True:
            for el in self.find_all(css):
                try:
                    if text is None or text in self.text(el):
                        return el
                except WebDriverError:
                    pass  # replaced while we looked
            if time.monotonic() > deadline:
                raise AssertionError("no %s%s on %s; the page says:\n%s" % (
                    css, " with %r" % text if text else "", self.url(), self.page_text()))
            time.sleep(0.1)

    def wait_gone(self, css, text=None):
        deadline = time.monotonic() + WAIT
        while True:
            try:
                if not any(text is None or text in self.text(x) for x in self.find_all(css)):
                    return
            except WebDriverError:
                pass  # replaced while we looked: look again
            if time.monotonic() > deadline:
                raise AssertionError("%s still shows on %s" % (css, self.url()))
            time.sleep(0.1)

    def text(self, el):
        return self.s("GET", "/element/%s/text" % el)

    def page_text(self):
        return self.script("return document.body.innerText")

    def click(self, el):
        self.s("POST", "/element/%s/click" % el, {})

    def type(self, el, text):
        self.s("POST", "/element/%s/clear" % el, {})
        self.s("POST", "/element/%s/value" % el, {"text": text})

    def script(self, source, *args):
        return self.s("POST", "/execute/sync", {"script": source, "args": list(args)})

    def keys(self, text):
        """Type into the focused element (WebDriver actions)."""
        actions = []
        for ch in text:
            actions += [{"type": "keyDown", "value": ch}, {"type": "keyUp", "value": ch}]
        self.s("POST", "/actions", {"actions": [{"type": "key", "id": "kb", "actions": actions}]})

    def screenshot(self, name):
        png = base64.b64decode(self.s("GET", "/screenshot"))
        path = os.path.join(output_dir(), name)
        with open(path, "wb") as f:
            f.write(png)
        return path

    def accessibility(self):
        """axe-core's serious and critical violations on the page as it is now, each as
        "rule (impact): help: the first few offending elements". axe is injected
        through WebDriver, not by the page (whose CSP allows only its own scripts)."""
        if not os.path.exists(AXE):
            raise AssertionError("%s is missing: run scripts/setup-deps.sh" % AXE)
        if not self.script("return typeof window.axe === 'object'"):
            with open(AXE, encoding="utf-8") as f:
                self.script(f.read() + "\nreturn true;")
        found = self.s("POST", "/execute/async", {"args": [], "script": """
            const done = arguments[arguments.length - 1];
            axe.run(document, {resultTypes: ["violations"]}).then((r) => done(
                r.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
                 .map((v) => v.id + " (" + v.impact + "): " + v.help + ": " +
                      v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", "))),
              (e) => done(["axe failed: " + e]));"""})
        return found
