"""Every page `flowlab tour` writes, and every notebook in JupyterLab, checked in headless Chromium.

A page fails on: a MathJax error or TeX left untypeset, a failed request for a local resource, a
request that leaves the machine, a JavaScript error, a dead internal link or #anchor, an image that
did not load. JupyterLab (a server this test starts on 127.0.0.1, no token) fails a notebook on the
same math / image checks, on cells that did not all render, and on JavaScript errors that mention
rendering. The browser is the system Chromium (tests/browser.py drives it over the DevTools
protocol; nothing downloads one); without it these tests skip and say how to get it.

Chromium is looked for first, so that a machine without it skips before running the tour.
The tour runs once per module (about 3 minutes of CPU for the six tutorials). Set
FLOWLAB_TOUR_BUILD=DIR to check an existing build instead. FLOWLAB_SHOTS=DIR keeps a screenshot
of every page.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import browser as br

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chromium():
    exe = br.find_chromium()
    if exe is None:
        pytest.skip(br.HOW_TO_GET)
    with br.Chromium(exe) as browser:
        yield browser


@pytest.fixture(scope="module")
def tour_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("FLOWLAB_TOUR_BUILD")
    if given:
        build = Path(given)
        if not (build / "index.html").exists():
            pytest.fail(f"FLOWLAB_TOUR_BUILD={given} holds no tour build (no index.html); run flowlab tour --out {given}")
        return build
    build = tmp_path_factory.mktemp("tour") / "build"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "flowlab.cli", "tour", "--out", str(build), "--device", "cpu",
                          "--quiet"], cwd=REPO, env=env, capture_output=True, text=True, timeout=3000)
    print(f"flowlab tour took {time.perf_counter() - start:.0f} s (exit {res.returncode})")
    if not (build / "index.html").exists():
        pytest.fail(f"flowlab tour wrote no index.html (exit {res.returncode}):\n{res.stderr[-3000:]}")
    return build


def _shots() -> Path | None:
    shots = os.environ.get("FLOWLAB_SHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        return Path(shots)
    return None


def test_every_tour_page_renders(chromium: br.Chromium, tour_build: Path) -> None:
    pages = br.site_pages(tour_build)
    notebooks = sorted(p.stem for p in tour_build.glob("[0-9][0-9]_*.ipynb"))
    assert notebooks, "the tour executed no notebook"
    assert {"index"} | set(notebooks) <= {p.stem for p in pages}
    md_sources = [p.stem for p in (REPO / "notebooks").glob("*.md")] if not os.environ.get("FLOWLAB_TOUR_BUILD") else []
    assert set(md_sources) <= {p.stem for p in pages}, "a notebooks/*.md page is missing"
    reports = br.check_site(tour_build, chromium, _shots())
    problems = {rel: rep.problems() for rel, rep in reports.items() if rep.problems()}
    assert not problems, json.dumps(problems, indent=1)[:6000]
    for nb in notebooks:  # MathJax really ran on every notebook page
        assert reports[f"{nb}.html"].dom["math"] > 0, f"{nb}.html: no typeset formula"


def test_the_check_catches_a_broken_page(chromium: br.Chromium, tmp_path: Path) -> None:
    """The negative control: each kind of fault on a page is reported."""
    from flowlab.teach.site import STATIC
    shutil.copytree(STATIC, tmp_path / "static")
    (tmp_path / "ok.html").write_text("<p id='here'>fine</p>")
    head = ('<script src="static/mathjax-config.js"></script>'
            '<script id="MathJax-script" defer src="static/mathjax/tex-svg-full.js"></script>')
    (tmp_path / "bad.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'>{head}<script src='static/missing.js'></script></head><body>"
        "<p>good: $x' = x + (t' - t)\\,v$, $\\text{pred\\_x1}$, $\\hat{D}$, $\\sqrt{\\bar\\alpha}$, $\\mathbb{E}$</p>"
        "<p>broken: $x^^2$ and $\\undefinedmacro x$</p>"
        "<p class='tex2jax_ignore'>left as text: $y = 2$</p>"
        "<img src='nothere.png' alt='x'>"
        "<a href='ok.html#here'>good link</a> <a href='gone.html'>dead link</a> <a href='ok.html#nowhere'>bad anchor</a>"
        "<a href='#missing-anchor'>bad local anchor</a>"
        "</body></html>")
    rep = chromium.check((tmp_path / "bad.html").as_uri(), ready=br.PAGE_READY)
    text = "\n".join(rep.problems())
    assert rep.dom["math"] == 7  # five good formulas typeset, two broken ones are MathJax errors
    assert len(rep.dom["merrors"]) == 2, text
    assert "Missing open brace for superscript" in text and "Undefined control sequence \\undefinedmacro" in text, text
    assert rep.dom["untypeset"] == ["left as text: $y = 2$"], text
    assert any("missing.js" in f for f in rep.failed_requests), text
    assert rep.dom["brokenImages"] == ["nothere.png"], text
    assert [u.rsplit("/", 1)[1] for u in rep.dead_links] == ["gone.html", "ok.html#nowhere"], text
    assert rep.dom["anchorsMissing"] == ["#missing-anchor"], text


# -- JupyterLab ------------------------------------------------------------------------------------

LAB_SETTINGS = {"@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
                "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                                     "checkForUpdates": False}}


@pytest.fixture(scope="module")
def lab(tour_build: Path, tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("jupyterlab", reason="JupyterLab is not installed: pip install -e '.[notebooks]'")
    home = tmp_path_factory.mktemp("lab")
    for rel, value in LAB_SETTINGS.items():
        p = home / "settings" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(value))
    port = br.free_port()
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "JUPYTER_CONFIG_DIR": str(home / "config"),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    log = open(home / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                             f"--ServerApp.port={port}", "--ServerApp.port_retries=0", "--IdentityProvider.token=",
                             "--ServerApp.password=", f"--ServerApp.root_dir={tour_build}",
                             "--ServerApp.open_browser=False", "--ServerApp.allow_root=True",
                             "--LabApp.extension_manager=readonly"],
                            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=home)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status", timeout=5).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(f"JupyterLab did not start:\n{(home / 'server.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


LAB_READY = """(() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
  if (!panel) return false;
  const cells = panel.querySelectorAll('.jp-Cell').length;
  if (cells < EXPECTED) return false;
  const md = panel.querySelectorAll('.jp-MarkdownCell .jp-RenderedMarkdown').length;
  if (md < MARKDOWN) return false;
  const n = document.querySelectorAll('mjx-container').length;
  const now = Date.now();
  if (window.__flMath !== n) { window.__flMath = n; window.__flSince = now; return false; }
  return now - window.__flSince > 2500;  // the typeset count has been stable for 2.5 s
})()"""


def test_every_notebook_renders_in_jupyterlab(chromium: br.Chromium, tour_build: Path, lab: str) -> None:
    import nbformat
    shots = _shots()
    failures = {}
    notebooks = sorted(tour_build.glob("[0-9][0-9]_*.ipynb"))
    assert notebooks
    for nb_path in notebooks:
        nb = nbformat.read(nb_path, as_version=4)
        n_md = sum(c.cell_type == "markdown" for c in nb.cells)
        ready = LAB_READY.replace("EXPECTED", str(len(nb.cells))).replace("MARKDOWN", str(n_md))
        shot = shots / f"lab__{nb_path.stem}.png" if shots else None
        rep = chromium.check(f"{lab}/lab/tree/{nb_path.name}?reset", ready=ready, ready_timeout=180,
                             scope=".jp-RenderedMarkdown, .jp-RenderedLatex, .jp-RenderedHTMLCommon",
                             local_hosts=("127.0.0.1",), screenshot=shot)
        # links are the site's business (JupyterLab keeps heading anchors in data-jupyter-id and
        # handles those clicks itself); here: math, images, requests to the server, errors
        problems = [p for p in rep.problems()
                    if not p.startswith(("request leaves the machine", "dead link", "dead anchor"))]
        # JupyterLab logs unrelated console errors (e.g. an offline extension listing); keep those
        # about rendering, math and outputs
        problems = [p for p in problems if not p.startswith("javascript error") or
                    any(w in p.lower() for w in ("render", "mathjax", "output", "markdown", "latex"))]
        if rep.dom.get("math", 0) == 0:
            problems.append("no formula was typeset")
        if problems:
            failures[nb_path.name] = problems
    assert not failures, json.dumps(failures, indent=1)[:6000]
