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


LAYOUT_PROBLEMS = r"""
const vw = document.documentElement.clientWidth;
const out = [];
if (document.documentElement.scrollWidth > vw) {
  out.push("the page scrolls sideways: " + document.documentElement.scrollWidth + " px wide in " + vw);
}
const name = (e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + " " +
  JSON.stringify((e.getAttribute("aria-label") || e.textContent || e.value || "").trim().slice(0, 40));
const scroller = (e) => {
  for (let p = e.parentElement; p; p = p.parentElement) {
    const o = getComputedStyle(p).overflowX;
    if (o === "auto" || o === "scroll") return p;
  }
  return null;
};
// under a modal dialog the page is inert: only the dialog's controls count
const modal = document.querySelector("dialog:modal");
const shown = [];
for (const e of (modal || document).querySelectorAll(
    "button, input, select, textarea, a[href], summary, [tabindex]:not([tabindex='-1'])")) {
  if (e.classList.contains("skip")) continue; // on screen once focused
  const cs = getComputedStyle(e);
  let r = e.getBoundingClientRect();
  if (r.width === 0 || r.height === 0 || cs.visibility === "hidden" || e.closest(".visually-hidden")) continue;
  const sc = scroller(e);
  if (sc) { // only what its scrolling box shows
    const b = sc.getBoundingClientRect();
    const left = Math.max(r.left, b.left), right = Math.min(r.right, b.right);
    const top = Math.max(r.top, b.top), bottom = Math.min(r.bottom, b.bottom);
    if (right - left < 1 || bottom - top < 1) continue;
    r = { left, right, top, bottom };
  } else if (r.left < -0.5 || r.right > vw + 0.5) {
    out.push(name(e) + " is cut off: it spans " + Math.round(r.left) + " to " + Math.round(r.right) + " of " + vw + " px");
  }
  if (e.tagName === "BUTTON" && e.scrollWidth > e.clientWidth + 1) {
    out.push(name(e) + ": its label does not fit (" + e.scrollWidth + " px in " + e.clientWidth + ")");
  }
  shown.push([e, r]);
}
for (let i = 0; i < shown.length; i++) {
  for (let j = i + 1; j < shown.length; j++) {
    const [a, ra] = shown[i], [b, rb] = shown[j];
    if (a.contains(b) || b.contains(a)) continue;
    const w = Math.min(ra.right, rb.right) - Math.max(ra.left, rb.left);
    const h = Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top);
    if (w > 1 && h > 1) out.push(name(a) + " and " + name(b) + " overlap (" + Math.round(w) + "x" + Math.round(h) + " px)");
  }
}
return out;
"""


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

    # -- Chromium's own protocol (through chromedriver) ----------------------------------------

    def cdp(self, cmd, params=None):
        return self.s("POST", "/goog/cdp/execute", {"cmd": cmd, "params": params or {}})

    def zoom(self, percent, width=1280, height=800):
        """What the browser's zoom to percent does to a width x height window: a viewport of
        width/height divided by the zoom in CSS pixels, drawn at zoom/100 device pixels per
        CSS pixel (so media queries, window.innerWidth and devicePixelRatio all change as
        with Ctrl +). zoom(100) goes back to the window as it is."""
        if percent == 100:
            self.cdp("Emulation.clearDeviceMetricsOverride")
            return
        f = percent / 100.0
        self.cdp("Emulation.setDeviceMetricsOverride", {
            "width": int(width / f), "height": int(height / f), "deviceScaleFactor": f,
            "mobile": False})

    def ax_node(self, css):
        """The accessibility tree's view of the first element matching css, as Chromium
        gives it to a screen reader: {"role": ..., "name": ..., "live": ...} (live: the
        politeness of the live region it announces in, "" if none)."""
        root = self.cdp("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
        node = self.cdp("DOM.querySelector", {"nodeId": root, "selector": css})["nodeId"]
        if not node:
            raise AssertionError("no %s on %s" % (css, self.url()))
        ax = self.cdp("Accessibility.getPartialAXTree", {"nodeId": node,
                                                         "fetchRelatives": False})["nodes"][0]
        props = {p["name"]: p["value"].get("value") for p in ax.get("properties", [])}
        return {"role": ax.get("role", {}).get("value", ""),
                "name": ax.get("name", {}).get("value", ""),
                "live": props.get("live") or ""}

    def layout_problems(self):
        """What a reader cannot read or reach on the page as it is laid out now: the page
        scrolling sideways; a control (button, field, link, summary, focusable box) cut off
        by the window's edge (one inside a box that scrolls sideways, a wide table's, is
        reached by scrolling that box: only its visible part counts); a button whose label
        does not fit in it; two controls drawn over each other (while a modal dialog is
        open, its controls only: the page under it is inert). Each as a line of text."""
        return self.script(LAYOUT_PROBLEMS)

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
