"""The `flowlab` command line: discovery, usage errors, and the tour on throwaway notebooks."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flowlab.cli import build_parser, main
from nbtools import write_notebook

CLAIM_OK = "from flowlab.claims import claim\nclaim('two plus two is four', abs(2 + 2 - 4), 1e-12)"
CLAIM_BAD = "from flowlab.claims import claim\nclaim('two plus two is five', abs(2 + 2 - 5), 1e-12)"


def test_tour_is_a_subcommand() -> None:
    _, table = build_parser()
    assert "tour" in table


def test_unknown_flag_is_a_usage_error(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["tour", "--no-such-flag"])
    assert exc.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_console_script_entry_runs() -> None:
    res = subprocess.run([sys.executable, "-m", "flowlab.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "tour" in res.stdout


def test_tour_passes_and_writes_offline_html(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    write_notebook(nbs / "01_ok.ipynb", [(CLAIM_OK, None)])
    out = tmp_path / "build"
    code = main(["tour", "--notebooks", str(nbs), "--out", str(out), "--device", "cpu", "--quiet"])
    table = capsys.readouterr().out
    assert code == 0, table
    assert "two plus two is four" in table and "1 passed, 0 failed" in table
    rows = [json.loads(line) for line in (out / "claims.jsonl").read_text().splitlines()]
    assert rows == [{"notebook": "01_ok.ipynb", "claim": "two plus two is four", "error": 0.0, "tol": 1e-12,
                     "passed": True, "kind": "error"}]
    page = (out / "01_ok.html").read_text()
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', page)
    assert scripts and [s for s in scripts if re.match(r"(https?:)?//", s)] == []  # no script from the internet
    # formulas render from the local MathJax 3 copy (Sphinx loads it on pages with math: tests/test_tour.py)
    assert (out / "_static" / "mathjax" / "tex-svg-full.js").exists() and (out / "index.html").exists()
    assert (out / "01_ok.ipynb").exists()


def test_tour_fails_on_a_failed_claim(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    write_notebook(nbs / "01_ok.ipynb", [(CLAIM_OK, None)])
    write_notebook(nbs / "02_bad.ipynb", [(CLAIM_BAD, None), ("print('never reached')", None)])
    code = main(["tour", "--notebooks", str(nbs), "--out", str(tmp_path / "b"), "--device", "cpu", "--quiet",
                 "--no-html"])
    table = capsys.readouterr().out
    assert code == 1
    assert "two plus two is five" in table and "FAIL" in table and "1 passed, 2 failed" in table


def test_tour_without_notebooks_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["tour", "--notebooks", str(tmp_path), "--out", str(tmp_path / "b"), "--quiet"])
    assert code == 1
    assert "pass --notebooks DIR" in capsys.readouterr().err


def test_cuda_device_without_cuda_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["tour", "--device", "cuda", "--out", str(tmp_path)]) == 1
    assert "no CUDA GPU" in capsys.readouterr().err
