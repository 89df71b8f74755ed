"""The student experience, automated: write the student notebooks with ``flowlab exercises``, then
execute them with nbclient (a real kernel) (1) filling nothing: every check says "not done yet" and no
cell errors; (2) filling every exercise wrongly once (its first typical mistake from
tests/exercise_answers.py) and then rightly (the reference solution): the hint, then PASS."""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from exercise_answers import WRONG
from flowlab.cli import main
from flowlab.exercises import EXERCISES
from flowlab.exercises.student import STUDENT_TAG

NB_DIR = Path(__file__).resolve().parent.parent / "notebooks" / "exercises"
NOTEBOOKS = sorted(p.name for p in NB_DIR.glob("EX_*.ipynb"))
BY_CHECK = {ex.check.__name__: ex for ex in EXERCISES}


@pytest.fixture(scope="module")
def handout(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("handout")
    assert main(["exercises", "--out", str(out), "--force"]) == 0
    return out


def _execute(nb: nbformat.NotebookNode, folder: Path) -> nbformat.NotebookNode:
    env_threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": str(folder)}}).execute()
    finally:
        if env_threads is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = env_threads
    return nb


def _check_of(cell: nbformat.NotebookNode):
    name = cell.source.strip().split("(", 1)[0]
    return BY_CHECK.get(name) if cell.cell_type == "code" else None


def _text(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("data", {}).get("text/plain", "") + o.get("text", "") for o in cell.outputs)


def _errors(nb: nbformat.NotebookNode) -> list[str]:
    return [f"{o.ename}: {o.evalue}" for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.output_type == "error"]


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_unfilled_student_notebook_runs_and_says_not_done_yet(handout, name):
    nb = _execute(nbformat.read(handout / name, as_version=4), handout)
    assert _errors(nb) == []
    checks = [(ex, _text(c)) for c in nb.cells if (ex := _check_of(c))]
    assert checks, name
    for ex, text in checks:
        assert text.startswith(f"Exercise {ex.number} (") and ": not done yet. " in text, text
    assert "Traceback" not in "".join(_text(c) for c in nb.cells if c.cell_type == "code")


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_filled_wrongly_then_rightly_shows_the_hint_then_pass(handout, name):
    student = nbformat.read(handout / name, as_version=4)
    solved = nbformat.read(NB_DIR / name, as_version=4)
    solved_answers = {_check_of(solved.cells[i + 1]).number: c.source for i, c in enumerate(solved.cells[:-1])
                      if "solution" in c.metadata.get("tags", []) and _check_of(solved.cells[i + 1])}
    cells, expected = [], []
    for i, cell in enumerate(student.cells):
        cells.append(cell)
        ex = _check_of(cell)
        if ex is None:
            continue
        answer = student.cells[i - 1]
        assert STUDENT_TAG in answer.metadata.get("tags", [])
        wrong_source, status, hint = WRONG[ex.number][0]
        answer.source = wrong_source  # the student's first try, then the check cell as it stands
        right = nbformat.v4.new_code_cell(solved_answers[ex.number])  # the second try, and the check again
        cells += [right, nbformat.v4.new_code_cell(cell.source)]
        expected.append((ex, hint))
    student.cells = cells
    nb = _execute(student, handout)
    assert _errors(nb) == []
    outputs = [(ex, _text(c)) for c in nb.cells if (ex := _check_of(c))]
    assert [ex for ex, _ in outputs] == [ex for ex, _ in expected for _ in (0, 1)]
    for k, (ex, hint) in enumerate(expected):
        first, second = outputs[2 * k][1], outputs[2 * k + 1][1]
        assert hint in first or hint[:1].upper() + hint[1:] in first, first
        assert ": PASS. " in second, second
