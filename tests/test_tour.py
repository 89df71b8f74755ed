"""`flowlab tour` on throwaway notebooks: faults stay local, Ctrl-C, timeouts, the site it writes.

The browser-level checks of the pages (math typeset, no dead link) are in test_browser.py.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flowlab.claims import CLAIMS_FILE_ENV, NOTEBOOK_ENV, claim, claim_exact, infer_kind
from flowlab.cli import main
from flowlab.errors import FlowlabError
from flowlab.teach.tour import ClaimRow, find_notebooks, run_tour
from nbtools import write_notebook

REPO = Path(__file__).resolve().parent.parent
CLAIM_OK = "from flowlab.claims import claim\nclaim('two plus two is four', abs(2 + 2 - 4), 1e-12)"
CLAIM_RATIO = "from flowlab.claims import claim\nclaim('spread within 2x the reference (ratio)', 0.5, 2.0)"
CLAIM_EXACT = "from flowlab.claims import claim_exact\nclaim_exact('three is odd', 3 % 2 == 1)"


def _md_notebook(path: Path, markdown: list[str], code: list[str]) -> Path:
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell(m) for m in markdown] + [nbformat.v4.new_code_cell(c) for c in code]
    nbformat.write(nb, path)
    return path


# -- issue 13 item 6: a notebook that is not JSON fails its own row; the rest run ----------------

def test_a_notebook_that_is_not_json_fails_its_own_row_and_the_rest_run(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture) -> None:
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    write_notebook(nbs / "01_ok.ipynb", [(CLAIM_OK, None)])
    (nbs / "02_broken.ipynb").write_text('{"cells": [ this is not json')
    write_notebook(nbs / "03_after.ipynb", [(CLAIM_EXACT, None)])
    out = tmp_path / "build"
    code = main(["tour", "--notebooks", str(nbs), "--out", str(out), "--device", "cpu", "--quiet"])
    captured = capsys.readouterr()
    assert code == 1
    table = captured.out
    assert re.search(r"02_broken\.ipynb .*cannot read 02_broken\.ipynb: it is not valid JSON.*FAIL", table), table
    assert "two plus two is four" in table and "three is odd" in table  # 01 and 03 both ran
    assert "2 passed, 1 failed" in table
    assert "Traceback" not in captured.err
    assert (out / "01_ok.ipynb").exists() and (out / "03_after.ipynb").exists()
    assert not (out / "02_broken.ipynb").exists()  # nothing half-written for the unreadable one
    index = (out / "index.html").read_text()
    assert "not valid JSON" in index
    assert "could not be read" in (out / "02_broken.html").read_text()  # the sidebar link is not dead


# -- issue 13 item 7: Ctrl-C, --timeout 0 / -1, a cell timeout ------------------------------------

def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return not re.search(r"^State:\s+Z", state, re.M)  # a zombie has exited


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_says_interrupted_exits_130_shuts_the_kernel_down_and_writes_the_index(tmp_path: Path) -> None:
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    pid_file = tmp_path / "kernel.pid"
    write_notebook(nbs / "01_first.ipynb", [(CLAIM_OK, None)])
    write_notebook(nbs / "02_slow.ipynb", [
        (f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(300)", None),
        ("print('never reached')", None)])
    write_notebook(nbs / "03_never.ipynb", [(CLAIM_OK, None)])
    out = tmp_path / "build"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "flowlab.cli", "tour", "--notebooks", str(nbs), "--out", str(out),
                             "--device", "cpu", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 240
        while not (pid_file.exists() and pid_file.read_text().strip()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the slow notebook never started"
            time.sleep(0.2)
        kernel = int(pid_file.read_text())
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (stdout, stderr)
    assert "interrupted during 02_slow.ipynb" in stderr and "Traceback" not in stderr, stderr
    assert "1 of 3 notebooks had run to the end (01_first.ipynb)" in stderr
    deadline = time.monotonic() + 20
    while _alive(kernel) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(kernel), "the kernel of the interrupted notebook is still running"
    assert re.search(r"02_slow\.ipynb .*interrupted in cell 1 of 2 \(`import os, time`\).*FAIL", stdout), stdout
    assert re.search(r"03_never\.ipynb .*not run.*SKIP", stdout), stdout
    index = (out / "index.html").read_text()
    assert "Interrupted." in index
    assert re.search(r"Notebooks that ran: 01_first\.ipynb, 02_slow\.ipynb\. Not run: 03_never\.ipynb", index), index
    assert (out / "01_first.html").exists() and (out / "02_slow.html").exists()
    assert "interrupted before this notebook ran" in (out / "03_never.html").read_text()


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_timeout_without_a_positive_limit_is_refused(value: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["tour", "--timeout", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--timeout" in err and ("positive number of seconds" in err or "number of seconds" in err), err


def test_run_tour_refuses_a_zero_timeout_from_the_api(tmp_path: Path) -> None:
    with pytest.raises(FlowlabError, match="positive number of seconds"):
        run_tour([], tmp_path, device="cpu", timeout=0, html=False, progress=False)


def test_a_cell_timeout_names_the_cell_and_the_limit(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    write_notebook(nbs / "01_slow.ipynb", [("x = 1", None), ("import time\ntime.sleep(60)", None),
                                           ("print('after')", None)])
    code = main(["tour", "--notebooks", str(nbs), "--out", str(tmp_path / "b"), "--device", "cpu", "--quiet",
                 "--no-html", "--timeout", "3"])
    table = capsys.readouterr().out
    assert code == 1
    assert re.search(r"timed out in cell 2 of 3 \(`import time`\): the cell ran longer than the per-cell limit "
                     r"of 3 s; pass a larger --timeout", table), table
    assert "----------" not in table.split("\n", 2)[2]  # nbclient's preview separators are gone
    assert "== 01_slow.ipynb" in (tmp_path / "b" / "kernels.log").read_text()  # the kernel's own chatter


def test_a_failing_cell_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    write_notebook(nbs / "01_bad.ipynb", [("x = 1", None), ("raise ValueError('bad input 42')", None)])
    code = main(["tour", "--notebooks", str(nbs), "--out", str(tmp_path / "b"), "--device", "cpu", "--quiet",
                 "--no-html"])
    table = capsys.readouterr().out
    assert code == 1
    assert "ValueError in cell 2 of 2 (`raise ValueError('bad input 42')`): bad input 42" in table, table


# -- claim kinds -----------------------------------------------------------------------------------

def test_claim_kind_is_inferred_recorded_and_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture) -> None:
    assert infer_kind("anything", 0.0) == "exact"
    assert infer_kind("SW2 within 3x the seed noise (ratio)", 3.0) == "ratio"
    assert infer_kind("t = 0.10: x - t v is noise (SW2 to N(0, I) / its seed noise)", 2.0) == "ratio"
    assert infer_kind("x / sqrt(abar) matches (max abs)", 1e-6) == "abs error"
    assert infer_kind("DDIM step (eta = 0) == Euler on x / sqrt(abar) [float64]", 1e-6) == "error"
    assert infer_kind("DDIM (eta 0) == Euler on x / (sqrt(abar) + sqrt(1 - abar))", 1e-6) == "error"
    assert infer_kind("inside/outside as dense (fraction of points that differ)", 1e-3) == "fraction"
    assert infer_kind("relative gap of the energies", 1e-3) == "rel error"
    assert infer_kind("max abs difference", 1e-6) == "abs error"
    assert infer_kind("the energies agree", 1e-6) == "error"
    sink = tmp_path / "claims.jsonl"
    monkeypatch.setenv(CLAIMS_FILE_ENV, str(sink))
    monkeypatch.setenv(NOTEBOOK_ENV, "nb.ipynb")
    claim("max difference", 1e-9, 1e-6)
    claim("max difference, said to be absolute", 1e-9, 1e-6, kind="rel error")
    claim_exact("identity", True)
    assert capsys.readouterr().out.splitlines()[1] == "PASS  max difference, said to be absolute  (error <= 1e-06)"
    with pytest.raises(ValueError, match="claim kind 'percent' is not one of exact, abs error"):
        claim("share", 0.1, 1.0, kind="percent")
    kinds = [json.loads(line)["kind"] for line in sink.read_text().splitlines()]
    assert kinds == ["error", "rel error", "exact"]
    # rows written before claims recorded a kind are still read, with the inferred kind
    assert ClaimRow("nb", "x (ratio)", 0.5, 2.0, True).kind == "ratio"


# -- the site --------------------------------------------------------------------------------------

def test_the_site_has_every_page_navigation_rewritten_links_and_a_landing_page(tmp_path: Path,
                                                                               capsys: pytest.CaptureFixture) -> None:
    nbs = tmp_path / "nbs"
    (nbs / "exercises").mkdir(parents=True)
    _md_notebook(nbs / "01_first.ipynb",
                 ["# 01 · First steps\n\n*Purpose:* show $x' = x + (t' - t)\\,v$ and `flip`. Symbols: "
                  "[notation](NOTATION.md).\n\nNext: [the second](02_second.ipynb#Part-2)."],
                 [CLAIM_OK, CLAIM_RATIO])
    _md_notebook(nbs / "02_second.ipynb", ["# 02 · Second\n\nThe second one.", "## Part 2\n\nText."], [CLAIM_EXACT])
    _md_notebook(nbs / "exercises" / "EX_01_jump.ipynb", ["# Exercise: the jump\n\nBack to [01](../01_first.ipynb)."], [])
    (nbs / "NOTATION.md").write_text("# Notation\n\n| symbol | meaning |\n|---|---|\n| $\\hat{D}$ | data |\n\n"
                                     "Read [01](01_first.ipynb) and the [guide](GUIDE.md).\n")
    (nbs / "GUIDE.md").write_text("# A guide for lecturers\n\nSee [the exercise](exercises/EX_01_jump.ipynb), "
                                  "the [picture](pic.svg) and the [notation](NOTATION.md#Notation).\n")
    (nbs / "pic.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>')
    out = tmp_path / "build"
    assert main(["tour", "--notebooks", str(nbs), "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    capsys.readouterr()
    pages = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.html") if "static" not in p.parts)
    assert pages == ["01_first.html", "02_second.html", "GUIDE.html", "NOTATION.html", "exercises/EX_01_jump.html",
                     "index.html"]
    first = (out / "01_first.html").read_text()
    assert 'href="NOTATION.html"' in first and 'href="02_second.html#Part-2"' in first  # .md / .ipynb -> pages
    assert re.search(r'<a class="fl-prev" href="NOTATION.html"', first)  # previous / next page
    assert re.search(r'<a class="fl-next" href="02_second.html"', first)
    for href in pages:  # every page links to every page through the sidebar
        body = (out / href).read_text()
        root = "../" if "/" in href else ""
        assert all(f'href="{root}{p}"' in body for p in pages), href
    guide = (out / "GUIDE.html").read_text()
    assert 'href="exercises/EX_01_jump.html"' in guide and 'href="NOTATION.html#Notation"' in guide
    assert (out / "pic.svg").exists()  # a local file a page links to is copied beside it
    assert 'href="../01_first.html"' in (out / "exercises" / "EX_01_jump.html").read_text()
    index = (out / "index.html").read_text()
    assert "First steps" in index and "Show $x' = x + (t' - t)\\,v$ and <code>flip</code>." in index  # purpose
    assert re.search(r"<td class=\"fl-time\">\d+ min</td><td class=\"fl-claims\"><span class=\"fl-pass\">2 of 2", index)
    assert index.count('<details class="fl-group">') == 2  # one per notebook, collapsed
    assert ">exact</td><td class=\"fl-num\">&mdash;</td>" in index and "ratio 0.5" in index and "error 0.00e+00" in index
    assert re.findall(r'<script[^>]*src="(https?://[^"]+)"', index + first) == []


def test_the_real_notebooks_are_found_in_reading_order() -> None:
    names = [p.name for p in find_notebooks(REPO / "notebooks")]
    assert names == sorted(names) and names[0].startswith("01_")


def test_the_vendored_mathjax_is_the_stated_release() -> None:
    import hashlib
    from flowlab.teach.site import STATIC
    note = (STATIC / "mathjax" / "VENDORED.md").read_text()
    digest = hashlib.sha256((STATIC / "mathjax" / "tex-svg-full.js").read_bytes()).hexdigest()
    assert digest in note, "tex-svg-full.js changed: update VENDORED.md (version, checksum) with it"
    assert 'VERSION="3.2.2"' in (STATIC / "mathjax" / "tex-svg-full.js").read_text() and "3.2.2" in note
    assert "Apache License" in (STATIC / "mathjax" / "LICENSE").read_text()
