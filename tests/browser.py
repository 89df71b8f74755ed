"""A small headless-Chromium driver over the DevTools protocol, for the browser tests.

It starts the system Chromium (never downloads one), opens one tab per page, records every failed
request, every request that leaves the machine, JavaScript exceptions and console errors, and
evaluates a check script in the page. Pages are checked for: MathJax errors, untypeset TeX
(``$...$`` or ``\\(...\\)`` left as text), images that did not load, and links whose local target
(file or ``#anchor``) does not exist. ``python tests/browser.py DIR`` checks a built site by hand.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOW_TO_GET = ("headless Chromium not found: install it with `apt-get install chromium` (Debian/Ubuntu; "
              "`.ci/run` does this) or point FLOWLAB_CHROMIUM at a Chrome/Chromium executable")


def find_chromium() -> str | None:
    """The browser to use: $FLOWLAB_CHROMIUM, else chromium / chromium-browser / google-chrome on PATH."""
    env = os.environ.get("FLOWLAB_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


# Runs in the page once it is ready; returns what the test judges.
CHECK_JS = r"""
(() => {
  const skip = new Set(["PRE", "CODE", "SCRIPT", "STYLE", "TEXTAREA", "MJX-CONTAINER", "MJX-ASSISTIVE-MML",
                        "SVG", "NOSCRIPT", "KBD", "SAMP"]);
  const scope = document.querySelectorAll(SCOPE);
  const r = {merrors: [], untypeset: [], brokenImages: [], links: [], anchorsMissing: [], math: 0, images: 0};
  const seen = new Set();  // one entry per formula in error
  for (const e of document.querySelectorAll('mjx-merror, [data-mml-node="merror"], [data-mjx-error]')) {
    const owner = e.closest("mjx-container") || e;
    if (seen.has(owner)) continue;
    seen.add(owner);
    const msg = owner.querySelector("[data-mjx-error]") || e;
    r.merrors.push((msg.getAttribute("data-mjx-error") || msg.getAttribute("title") || msg.textContent || "merror").slice(0, 200));
  }
  for (const _ of ((document.body && document.body.innerText) || "").matchAll(/Math Processing Error/g)) {
    r.merrors.push("[Math Processing Error]");
  }
  r.math = document.querySelectorAll("mjx-container").length;
  const tex = /\$[^$]|\\\(|\\\[|\\begin\{|\\frac\{|\\text\{|\\mathbb\{/;
  for (const root of scope) {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
      acceptNode(n) {
        for (let p = n.parentElement; p; p = p.parentElement) {
          if (skip.has(p.tagName.toUpperCase())) return NodeFilter.FILTER_REJECT;
        }
        return NodeFilter.FILTER_ACCEPT;
      }
    });
    while (walker.nextNode()) {
      const t = walker.currentNode.nodeValue;
      if (tex.test(t)) r.untypeset.push(t.trim().slice(0, 160));
    }
  }
  for (const img of document.images) {
    r.images += 1;
    if (!img.complete || img.naturalWidth === 0) r.brokenImages.push((img.getAttribute("src") || "").slice(0, 120));
  }
  for (const a of document.querySelectorAll("a[href]")) {
    const raw = a.getAttribute("href");
    if (raw.startsWith("#")) {
      // HTML's rule: an element whose id is the fragment as written, else the percent-decoded fragment
      const ids = [raw.slice(1)];
      try { ids.push(decodeURIComponent(raw.slice(1))); } catch (e) {}
      if (ids[0] && !ids.some(id => document.getElementById(id) || document.getElementsByName(id).length)) {
        r.anchorsMissing.push(raw);
      }
    } else {
      r.links.push(a.href);
    }
  }
  return r;
})()
"""


@dataclass
class PageReport:
    url: str
    failed_requests: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    js_errors: list[str] = field(default_factory=list)
    dom: dict[str, Any] = field(default_factory=dict)
    dead_links: list[str] = field(default_factory=list)
    not_ready: str = ""

    def problems(self) -> list[str]:
        out = [f"not ready: {self.not_ready}"] if self.not_ready else []
        out += [f"failed request: {u}" for u in self.failed_requests]
        out += [f"request leaves the machine: {u}" for u in self.external_requests]
        out += [f"javascript error: {m}" for m in self.js_errors]
        out += [f"math error: {m}" for m in self.dom.get("merrors", [])]
        out += [f"untypeset TeX: {t!r}" for t in self.dom.get("untypeset", [])]
        out += [f"image did not load: {s}" for s in self.dom.get("brokenImages", [])]
        out += [f"dead link: {u}" for u in self.dead_links]
        out += [f"dead anchor: {u}" for u in self.dom.get("anchorsMissing", [])]
        return out


class Tab:
    """One page target, driven through its own DevTools websocket."""

    def __init__(self, ws_url: str):
        import websocket
        self.ws = websocket.create_connection(ws_url, timeout=120, suppress_origin=True, enable_multithread=False)
        self._id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, timeout: float = 120) -> dict:
        self._id += 1
        my = self._id
        self.ws.send(json.dumps({"id": my, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)
        raise TimeoutError(method)

    def evaluate(self, expression: str, timeout: float = 120) -> Any:
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                        timeout)
        if "exceptionDetails" in res:
            raise RuntimeError(f"evaluate failed: {res['exceptionDetails'].get('text')}")
        return res.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.evaluate(expression):
                return True
            time.sleep(0.25)
        return False

    def screenshot(self, path: Path, width: int = 1280, height: int = 1600, full: bool = False) -> None:
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": False})
        if full:
            h = int(self.evaluate("Math.min(document.documentElement.scrollHeight, 16000)") or height)
            self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": h, "deviceScaleFactor": 1,
                                                             "mobile": False})
        time.sleep(0.3)
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass


class Chromium:
    """A headless Chromium with a throwaway profile; ``with Chromium() as browser: ...``."""

    def __init__(self, executable: str | None = None):
        self.executable = executable or find_chromium()
        if not self.executable:
            raise RuntimeError(HOW_TO_GET)
        self.profile = tempfile.mkdtemp(prefix="flowlab-chromium-")
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def __enter__(self) -> "Chromium":
        args = [self.executable, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--mute-audio", "--hide-scrollbars",
                "--remote-debugging-port=0", "--remote-allow-origins=*", f"--user-data-dir={self.profile}",
                "--window-size=1280,1600", "about:blank"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if port_file.exists() and port_file.read_text().strip():
                self.port = int(port_file.read_text().split()[0])
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.__exit__(None, None, None)
        raise RuntimeError(f"{self.executable} did not start its DevTools endpoint")

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.profile, ignore_errors=True)

    def new_tab(self) -> Tab:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(req, timeout=30) as resp:
            info = json.load(resp)
        tab = Tab(info["webSocketDebuggerUrl"])
        tab.target_id = info["id"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            tab.send(f"{domain}.enable")
        return tab

    def close_tab(self, tab: Tab) -> None:
        tab.close()
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/close/{tab.target_id}", timeout=10).read()
        except Exception:
            pass

    def check(self, url: str, *, ready: str, ready_timeout: float = 90, scope: str = "body",
              local_hosts: tuple[str, ...] = (), screenshot: Path | None = None, full: bool = False) -> PageReport:
        """Load ``url``, wait for ``ready`` (a JS expression) and judge the page."""
        tab = self.new_tab()
        report = PageReport(url)
        try:
            tab.send("Page.navigate", {"url": url})
            if not tab.wait_for(ready, ready_timeout):
                report.not_ready = f"{ready} was not true within {ready_timeout:.0f} s"
            time.sleep(0.3)
            report.dom = tab.evaluate(CHECK_JS.replace("SCOPE", json.dumps(scope))) or {}
            if screenshot is not None:
                tab.screenshot(screenshot, full=full)
            tab.send("Runtime.evaluate", {"expression": "1"})  # flush pending events
            _judge_events(tab.events, report, local_hosts)
        finally:
            self.close_tab(tab)
        report.dead_links = dead_links(report.dom.get("links", []))
        return report


def _judge_events(events: list[dict], report: PageReport, local_hosts: tuple[str, ...]) -> None:
    urls: dict[str, str] = {}
    for ev in events:
        m, p = ev.get("method"), ev.get("params", {})
        if m == "Network.requestWillBeSent":
            url = p["request"]["url"]
            urls[p["requestId"]] = url
            scheme = urllib.parse.urlsplit(url).scheme
            host = urllib.parse.urlsplit(url).hostname or ""
            if scheme in ("http", "https", "ws", "wss") and host not in local_hosts:
                report.external_requests.append(url)
        elif m == "Network.loadingFailed":
            if p.get("canceled"):
                continue
            report.failed_requests.append(f"{urls.get(p['requestId'], '?')} ({p.get('errorText')})")
        elif m == "Network.responseReceived":
            status = p["response"].get("status", 0)
            if status >= 400:
                report.failed_requests.append(f"{p['response']['url']} (HTTP {status})")
        elif m == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            report.js_errors.append((d.get("exception", {}).get("description") or d.get("text", ""))[:300])
        elif m == "Runtime.consoleAPICalled" and p.get("type") == "error":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            report.js_errors.append(f"console.error: {text[:300]}")
        elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
            e = p["entry"]
            if e.get("source") == "network":  # already counted from the Network domain
                continue
            report.js_errors.append(f"{e.get('source')}: {e.get('text', '')[:300]}")


_anchor_cache: dict[Path, set[str]] = {}


def _anchors(path: Path) -> set[str]:
    if path not in _anchor_cache:
        text = path.read_text(encoding="utf-8", errors="replace")
        _anchor_cache[path] = set(a or b for a, b in re.findall(r"""\b(?:id|name)=(?:"([^"]+)"|'([^']+)')""", text))
    return _anchor_cache[path]


def dead_links(links: list[str]) -> list[str]:
    """Local (file://) links whose file, or whose #anchor in that file, does not exist."""
    dead = []
    for url in links:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "file":
            continue
        path = Path(urllib.parse.unquote(parts.path))
        if not path.exists():
            dead.append(url)
        elif (parts.fragment and path.suffix == ".html"
              and not {parts.fragment, urllib.parse.unquote(parts.fragment)} & _anchors(path)):
            dead.append(url)
    return dead


PAGE_READY = ("document.readyState === 'complete' && (!document.querySelector('#MathJax-script, "
              "script[src*=\"mathjax/tex-svg\"]') || document.documentElement.getAttribute('data-mathjax') === 'done')")


def site_pages(build: Path) -> list[Path]:
    """Every HTML page a tour build holds, both editions (Sphinx's _static/, _sources/ and the hidden
    .site-src/, .doctrees/ folders excluded)."""
    return sorted(p for p in build.rglob("*.html")
                  if not any(part.startswith(("_", ".")) or part == "static" for part in p.relative_to(build).parts[:-1]))


def check_site(build: Path, browser: Chromium, shots: Path | None = None) -> dict[str, PageReport]:
    reports = {}
    for page in site_pages(build):
        rel = page.relative_to(build).as_posix()
        shot = shots / (rel.replace("/", "__")[:-5] + ".png") if shots else None
        reports[rel] = browser.check(page.resolve().as_uri(), ready=PAGE_READY, screenshot=shot)
    return reports


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":  # python tests/browser.py BUILD_DIR [SCREENSHOT_DIR]
    import sys
    build = Path(sys.argv[1])
    shots = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    with Chromium() as b:
        reps = check_site(build, b, shots)
    total_math = total_err = total_dead = 0
    for rel, rep in reps.items():
        probs = rep.problems()
        n_err = len(rep.dom.get("merrors", [])) + len(rep.dom.get("untypeset", []))
        n_dead = len(rep.dead_links) + len(rep.dom.get("anchorsMissing", []))
        total_math += rep.dom.get("math", 0)
        total_err += n_err
        total_dead += n_dead
        print(f"{rel}: {rep.dom.get('math', 0)} formulas, {n_err} math errors, {n_dead} dead links, "
              f"{len(probs)} problems")
        for pr in probs[:40]:
            print("   ", pr)
    print(f"TOTAL: {len(reps)} pages, {total_math} formulas, {total_err} math errors, {total_dead} dead links")
