"""Every exercise check against (a) the reference solution taken from the solved notebook: PASS,
(b) the stub the student gets (the solved notebook run through the student-notebook writer): "not
done yet", (c) typical wrong answers (tests/exercise_answers.py): the intended hint. Plus the
student-notebook writer and the ``flowlab exercises`` command."""
from __future__ import annotations

import functools
from pathlib import Path

import nbformat
import pytest

from exercise_answers import WRONG
from flowlab.cli import main
from flowlab.errors import FlowlabError
from flowlab.exercises import EXERCISES, STATUSES
from flowlab.exercises.student import SOLUTION_TAG, STUDENT_TAG, strip_solution, student_notebook

NB_DIR = Path(__file__).resolve().parent.parent / "notebooks" / "exercises"
IDS = [f"ex{ex.number:02d}" for ex in EXERCISES]


@functools.lru_cache(maxsize=None)
def _notebook(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NB_DIR / name, as_version=4)


def _answer_cell(nb: nbformat.NotebookNode, ex) -> int:
    """Index of the cell the student fills in for ``ex``: the tagged cell right before its check call."""
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    for a, b in zip(code, code[1:]):
        if SOLUTION_TAG in nb.cells[a].metadata.get("tags", []) or STUDENT_TAG in nb.cells[a].metadata.get("tags", []):
            if nb.cells[b].source.lstrip().startswith(ex.check.__name__ + "("):
                return a
    raise AssertionError(f"no answer cell followed by {ex.check.__name__}(...) in {ex.notebook}")


def _run(ex, answer_source: str) -> object:
    """Execute the notebook's setup cell and ``answer_source`` in a fresh namespace; call the check."""
    nb = _notebook(ex.notebook)
    setup = next(c for c in nb.cells if c.cell_type == "code")
    ns: dict = {}
    exec(compile(setup.source, f"{ex.notebook}:setup", "exec"), ns)
    exec(compile(answer_source, f"{ex.notebook}:answer", "exec"), ns)
    return ex.check(*(ns[name] for name in ex.answers))


def test_registry_covers_at_least_twelve_exercises_each_with_a_notebook_cell():
    numbers = [ex.number for ex in EXERCISES]
    assert numbers == list(range(1, len(EXERCISES) + 1)) and len(EXERCISES) >= 12
    for ex in EXERCISES:
        nb = _notebook(ex.notebook)
        calls = [c for c in nb.cells if c.cell_type == "code" and c.source.lstrip().startswith(ex.check.__name__ + "(")]
        assert len(calls) == 1, ex.number
        _answer_cell(nb, ex)
    assert set(WRONG) == set(numbers)


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_reference_solution_passes(ex, one_thread):
    nb = _notebook(ex.notebook)
    result = _run(ex, nb.cells[_answer_cell(nb, ex)].source)
    assert result.status == "pass", result.message
    assert result.message.startswith(f"Exercise {ex.number} (") and ": PASS. " in result.message


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_unfilled_stub_says_not_done_yet(ex, one_thread):
    student = student_notebook(_notebook(ex.notebook), ex.notebook)
    stub = student.cells[_answer_cell(student, ex)].source
    assert "BEGIN SOLUTION" not in stub and "# STUB" not in stub
    result = _run(ex, stub)
    assert result.status == "not_done", result.message
    assert ": not done yet. " in result.message and "Traceback" not in result.message


@pytest.mark.parametrize("ex,source,status,hint",
                         [(ex, src, st, h) for ex in EXERCISES for src, st, h in WRONG[ex.number]],
                         ids=[f"ex{ex.number:02d}-{k}" for ex in EXERCISES for k in range(len(WRONG[ex.number]))])
def test_typical_mistake_gets_its_hint(ex, source, status, hint, one_thread):
    result = _run(ex, source)
    assert status in STATUSES
    assert result.status == status, result.message
    assert hint in result.message or hint[:1].upper() + hint[1:] in result.message, result.message
    assert "Traceback" not in result.message


def test_unrecognised_wrong_answer_says_where_it_differs(one_thread):
    ex = EXERCISES[2]  # pred_data_reversed
    result = _run(ex, "def pred_data_reversed(x, v, t):\n    return 2 * x")
    assert result.status == "wrong"
    assert "differs from the right answer by up to" in result.message and "none of the usual mistakes" in result.message


def test_wrong_return_types_are_explained(one_thread):
    ex = EXERCISES[2]
    assert "should return a torch tensor" in _run(ex, "def pred_data_reversed(x, v, t):\n    return 1.0").message
    assert "returned shape (16,)" in _run(ex, "def pred_data_reversed(x, v, t):\n    return t").message
    assert "should be a function" in _run(ex, "pred_data_reversed = 3").message
    returns_none = _run(ex, "def pred_data_reversed(x, v, t):\n    y = x + (1 - t[:, None]) * v")
    assert returns_none.status == "not_done" and "returns None" in returns_none.message
    ex6 = EXERCISES[5]
    assert "Python list" in _run(ex6, "def fixed_schedule(n):\n    return [0.0, 1.0]").message


def test_any_exception_in_student_code_is_one_line(one_thread):
    ex = EXERCISES[3]  # flip
    result = _run(ex, "def flip(model):\n    return 1 / 0")
    assert result.status == "error"
    assert "raised ZeroDivisionError: division by zero." in result.message and "\n" not in result.message


def test_symbolic_answers_accept_own_symbols_and_strings(one_thread):
    ex = EXERCISES[0]
    own = _run(ex, "import sympy\nx, v, s = sympy.symbols('x v s')\npred_x0 = x - s*v\npred_x1 = 'x + (1 - s)*v'")
    assert own.status == "pass", own.message
    bad = _run(ex, "pred_x0 = 'x - s*w'\npred_x1 = 'x'")
    assert bad.status == "wrong" and "uses symbols ['w']" in bad.message


# ---- the student-notebook writer and the command -------------------------------------------------

def test_strip_solution_keeps_code_around_and_uncomments_the_stub():
    src = "def f(x):\n    '''doc'''\n    # BEGIN SOLUTION\n    return x\n    # END SOLUTION\n    # STUB: raise NotImplementedError\n"
    assert strip_solution(src) == "def f(x):\n    '''doc'''\n    raise NotImplementedError"


@pytest.mark.parametrize("src,message", [
    ("# BEGIN SOLUTION\nx = 1\n# STUB: x = ...", "never closed"),
    ("x = 1\n# END SOLUTION\n# STUB: x = ...", "without a '# BEGIN SOLUTION'"),
    ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n# STUB: x = ...", "nested"),
    ("# BEGIN SOLUTION\nx = 1\n# END SOLUTION", "no '# STUB:' lines"),
    ("x = 1\n# STUB: x = ...", "no '# BEGIN SOLUTION'"),
])
def test_strip_solution_rejects_malformed_cells(src, message):
    with pytest.raises(FlowlabError, match=message):
        strip_solution(src, "nb, cell 3")


def test_untagged_solution_markers_are_refused():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n# STUB: x = ...")]
    with pytest.raises(FlowlabError, match="not tagged 'solution'"):
        student_notebook(nb, "x.ipynb")
    nb.cells[0].metadata["tags"] = [SOLUTION_TAG]
    assert student_notebook(nb, "x.ipynb").cells[0].source == "x = ..."
    nb.cells = [nbformat.v4.new_code_cell("print(1)")]
    with pytest.raises(FlowlabError, match="no cell is tagged"):
        student_notebook(nb, "x.ipynb")


def test_command_writes_student_notebooks_without_solutions(tmp_path, capsys):
    out = tmp_path / "handout"
    assert main(["exercises", "--out", str(out)]) == 0
    written = sorted(p.name for p in out.iterdir() if p.suffix == ".ipynb")
    assert written == sorted(p.name for p in NB_DIR.glob("EX_*.ipynb")) and len(written) == 4
    assert sorted(p.name for p in out.iterdir() if p.suffix != ".ipynb") == ["NOTATION.md"]
    for name in written:
        text = (out / name).read_text()
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
        assert "BEGIN SOLUTION" not in text and "# STUB" not in text
        assert all(c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code")
        solved = _notebook(name)
        n_tagged = sum(SOLUTION_TAG in c.metadata.get("tags", []) for c in solved.cells)
        assert sum(STUDENT_TAG in c.metadata.get("tags", []) for c in nb.cells) == n_tagged
        assert len(nb.cells) == len(solved.cells) + 1  # the student-version banner
    assert "4 student notebooks, 14 exercises" in capsys.readouterr().out


def test_command_refuses_to_overwrite_then_forces(tmp_path, capsys):
    out = tmp_path / "handout"
    assert main(["exercises", "--out", str(out)]) == 0
    worked = out / "EX_01_predictions.ipynb"
    worked.write_text("a student's work")
    capsys.readouterr()
    assert main(["exercises", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "already exist" in err and "--force" in err
    assert worked.read_text() == "a student's work"
    assert main(["exercises", "--out", str(out), "--force"]) == 0
    assert "BEGIN SOLUTION" not in worked.read_text() and "check_jumps(" in worked.read_text()


@pytest.mark.parametrize("make,message", [
    (lambda p: ["--out", str(p / "file.txt")], "is a file"),
    (lambda p: ["--out", str(p / "missing" / "deeper")], "parent folder"),
    (lambda p: [], "--out DIR"),
    (lambda p: ["--out", str(p / "o"), "--source", str(p)], "no solved exercise notebooks"),
])
def test_command_errors_are_clear(tmp_path, capsys, make, message):
    (tmp_path / "file.txt").write_text("x")
    assert main(["exercises", *make(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("flowlab exercises: error: ") and message in err
    assert not (tmp_path / "o").exists()


def test_command_lists_the_exercises(capsys):
    assert main(["exercises", "--list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(EXERCISES) and lines[0].split()[0] == "1"
