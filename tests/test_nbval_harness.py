"""The notebook regression harness compares outputs: a changed stored output must fail.

Runs nbval in a subprocess exactly as the test command does (``--nbval --nbval-current-env`` and
the project's sanitize file) on temporary copies, so the real notebooks are never touched.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from nbtools import write_notebook

ROOT = Path(__file__).resolve().parent.parent
SANITIZE = ROOT / "notebooks" / "sanitize.cfg"


def run_nbval(notebook: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
           "--nbval-sanitize-with", str(SANITIZE), "-o", "addopts=", "--rootdir", str(notebook.parent),
           str(notebook)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=notebook.parent, timeout=600)


def test_matching_outputs_pass_and_altered_outputs_fail(tmp_path: Path) -> None:
    good = write_notebook(tmp_path / "good.ipynb", [("print(6 * 7)", "42\n")])
    assert run_nbval(good).returncode == 0
    bad = write_notebook(tmp_path / "bad.ipynb", [("print(6 * 7)", "43\n")])
    res = run_nbval(bad)
    assert res.returncode == 1, res.stdout[-2000:]
    assert "Cell outputs differ" in res.stdout


def test_sanitizer_hides_addresses_but_not_numbers(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "addr.ipynb", [("print(hex(id(object())) + ' 1.25')", "0x7f00deadbeef 1.25\n")])
    assert run_nbval(nb).returncode == 0
    nb = write_notebook(tmp_path / "num.ipynb", [("print(hex(id(object())) + ' 1.25')", "0x7f00deadbeef 1.26\n")])
    assert run_nbval(nb).returncode == 1


def _first_stdout(nb: nbformat.NotebookNode) -> dict | None:
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stdout" and out.get("text", "").strip():
                return out
    return None


@pytest.mark.slow
def test_a_real_tutorial_with_an_altered_output_fails(tmp_path: Path) -> None:
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"), key=lambda p: p.stat().st_size)
    if not notebooks:
        pytest.fail("no tutorial notebooks found under notebooks/")
    copy_dir = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", copy_dir)
    target = copy_dir / notebooks[0].name  # the smallest tutorial, for speed
    nb = nbformat.read(target, as_version=4)
    out = _first_stdout(nb)
    assert out is not None, f"{target.name} has no stored stdout output for nbval to compare"
    out["text"] = out["text"].rstrip("\n") + " (altered)\n"
    nbformat.write(nb, target)
    res = run_nbval(target)
    assert res.returncode == 1, res.stdout[-3000:]
    assert "Cell outputs differ" in res.stdout
