"""Progress bars have totals and go to the terminal (stderr) only, never into stored notebook outputs."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)

#: What a progress bar leaves in an output: tqdm's bar and rate, a carriage return, a widget bar.
_BAR = re.compile(r"\d+%\|[^|\n]*\||\d+(?:\.\d+)?(?:it|pt|step|nb|cell)s?/s\b|\r|\[\d\d:\d\d<\d\d:\d\d")
_WIDGET = "application/vnd.jupyter.widget-view+json"


def progress_in_outputs(nb: dict) -> list[str]:
    """``cell N: ...`` for every stored output that holds a progress bar."""
    found = []
    for i, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            texts = [out.get("text", "")] + [v for k, v in out.get("data", {}).items() if k.startswith("text/")]
            texts = ["".join(t) if isinstance(t, list) else str(t) for t in texts]
            if any(_BAR.search(t) for t in texts) or _WIDGET in out.get("data", {}):
                found.append(f"cell {i + 1}: {next((t for t in texts if t), '(widget)')[:80]!r}")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_progress_bar_in_stored_outputs(path: Path) -> None:
    assert progress_in_outputs(json.loads(path.read_text())) == []


@pytest.mark.parametrize("text", [
    "decoding:  25%|##5       | 547k/2.15M [00:44<02:08, 12.5kpt/s]",
    "sampling: 100%|##########| 50/50 [00:03<00:00, 14.2step/s]\n",
    "0it [00:00, ?it/s]\rworking",
])
def test_the_scan_finds_a_bar(text: str) -> None:
    nb = {"cells": [{"cell_type": "code", "outputs": [{"output_type": "stream", "name": "stderr", "text": text}]}]}
    assert len(progress_in_outputs(nb)) == 1


def test_the_scan_finds_a_widget_bar_and_passes_plain_text() -> None:
    widget = {"output_type": "display_data", "data": {_WIDGET: {"model_id": "x"}, "text/plain": "HBox()"}}
    plain = {"output_type": "stream", "name": "stdout", "text": "SW2 0.12 (floor 0.05), 100% of the claims hold\n"}
    nb = {"cells": [{"cell_type": "code", "outputs": [widget]}, {"cell_type": "code", "outputs": [plain]}]}
    assert progress_in_outputs(nb) == ["cell 1: 'HBox()'"]


@pytest.mark.slow
def test_shape_bars_have_totals_and_end_full(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "flowlab.cli", "shape", "--model", "mini", "--primitive", "box",
                           "--steps", "3", "--octree", "24", "--device", "cpu", "--out", str(tmp_path / "m.obj")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    frames = proc.stderr.replace("\r", "\n").splitlines()
    sampling = [f for f in frames if f.startswith("sampling")]
    decoding = [f for f in frames if f.startswith("decoding")]
    assert sampling and "3/3" in sampling[-1] and "100%" in sampling[-1], sampling[-3:]
    assert decoding and "100%" in decoding[-1], decoding[-3:]
    # a total was known from the start: the first frame shows 0 of N, never a bare count
    assert re.search(r"\| 0/\S+ \[", decoding[0]) or "0%" in decoding[0], decoding[0]
    assert "?" not in decoding[0].split("[")[0], decoding[0]
    assert (tmp_path / "m.obj").stat().st_size > 0 and "wrote" in proc.stdout and "%|" not in proc.stdout


@pytest.mark.slow
def test_tour_shows_the_cells_of_the_running_notebook(tmp_path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"x{i} = {i}") for i in range(3)] + [nbformat.v4.new_markdown_cell("m")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (tmp_path / "nbs").mkdir()
    nbformat.write(nb, tmp_path / "nbs" / "01_three_cells.ipynb")
    proc = subprocess.run([sys.executable, "-m", "flowlab.cli", "tour", "--notebooks", "nbs", "--out", "build",
                           "--no-html", "--device", "cpu"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    frames = proc.stderr.replace("\r", "\n")
    assert re.search(r"01_three_cells.*\d/3 ", frames), frames[-2000:]   # the cells bar: a total of 3 code cells
    assert re.search(r"notebooks.*\d/1 ", frames), frames[-2000:]        # the notebooks bar: a total of 1
    stored = json.loads((tmp_path / "build" / "01_three_cells.ipynb").read_text())
    assert progress_in_outputs(stored) == []
