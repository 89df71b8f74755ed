"""The answer key and an nbgrader course folder, written from the solved exercise notebooks.

The solved notebooks (``notebooks/exercises/EX_*.ipynb``) stay the single source. From them:

* :func:`write_answer_key` copies the solved notebooks (with their outputs: every check answers PASS) and
  NOTATION.md into a folder of their own, with a README that says it is the key. The student folder
  (:func:`flowlab.exercises.student.write_student_notebooks`) never holds a solution.
* :func:`write_nbgrader_course` writes an nbgrader course folder: ``source/<assignment>/EX_*.ipynb`` with
  nbgrader's cell metadata (schema 3). Each answer cell becomes a *solution* cell whose reference
  solution sits between nbgrader's own ``### BEGIN SOLUTION`` / ``### END SOLUTION`` delimiters (so
  ``nbgrader generate_assignment`` strips it), and each check cell that follows an answer becomes an
  *autograded test* cell worth one point: it prints the check's text and asserts that the check passed.
  Every other cell is locked. ``nbgrader_config.py`` names the course.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat

from ..errors import FlowlabError
from ..io import write_atomic
from .student import _BEGIN, _END, _STUB, NOTATION, SOLUTION_TAG, find_exercise_notebooks

__all__ = ["write_answer_key", "nbgrader_notebook", "write_nbgrader_course", "NBGRADER_SCHEMA"]

NBGRADER_SCHEMA = 3
_CHECK_CALL = re.compile(r"^\s*(check_\w+)\((.*)\)\s*$", re.S)

_KEY_README = """# Answer key: flowlab exercises 1-14

These are the SOLVED exercise notebooks, with their outputs: every check cell answers PASS. Keep this
folder away from students; hand out the folder written by `flowlab exercises --out DIR` instead.

Each answer cell (tagged `solution`) holds the reference solution between `# BEGIN SOLUTION` and
`# END SOLUTION`; the `# STUB:` lines are what the students see in its place.
"""


def _prepare_out(out: str | Path, names: list[str], force: bool, what: str) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FlowlabError(f"{str(out)!r} is a file; give a folder for the {what}")
    if not out.exists() and str(out.parent) and not out.parent.is_dir():
        raise FlowlabError(f"cannot create {str(out)!r}: its parent folder {str(out.parent)!r} does not exist")
    existing = [str(out / n) for n in names if (out / n).exists() or (out / n).is_symlink()]
    if existing and not force:
        raise FlowlabError(f"{len(existing)} file(s) already exist ({', '.join(existing[:3])}"
                           f"{', ...' if len(existing) > 3 else ''}); choose another folder or pass --force")
    out.mkdir(exist_ok=True)
    return out


def _notation(solved: list[Path]) -> Path:
    here = solved[0].parent
    for cand in (here / NOTATION, here.parent / NOTATION):
        if cand.is_file():
            return cand
    raise FlowlabError(f"{NOTATION} is neither beside the exercise notebooks ({here}) nor one folder up; the "
                       "notebooks link to it")


def write_answer_key(out: str | Path, source: str | Path | None = None, *, force: bool = False) -> list[Path]:
    """Copy the solved notebooks, NOTATION.md and a README marking the folder as the answer key into ``out``."""
    solved = find_exercise_notebooks(source)
    out = _prepare_out(out, [p.name for p in solved] + [NOTATION, "README.md"], force, "answer key")
    written = []
    for path in solved:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "markdown" and "](../NOTATION.md)" in cell.source:
                cell.source = cell.source.replace("](../NOTATION.md)", f"]({NOTATION})")
        write_atomic(out / path.name, nbformat.writes(nb) + "\n")
        written.append(out / path.name)
    write_atomic(out / NOTATION, _notation(solved).read_text(encoding="utf-8"))
    write_atomic(out / "README.md", _KEY_README)
    return written


def _solution_source(source: str, where: str) -> str:
    """A flowlab answer cell in nbgrader's form: the solution between ``### BEGIN/END SOLUTION``, no STUB lines."""
    lines, inside, blocks = [], False, 0
    for line in source.splitlines():
        if _BEGIN.match(line):
            inside, blocks = True, blocks + 1
            lines.append(line.replace("# BEGIN SOLUTION", "### BEGIN SOLUTION"))
        elif _END.match(line):
            inside = False
            lines.append(line.replace("# END SOLUTION", "### END SOLUTION"))
        elif not inside and _STUB.match(line):
            continue  # nbgrader writes its own stub (raise NotImplementedError()) in place of the solution
        else:
            lines.append(line)
    if blocks == 0 or inside:
        raise FlowlabError(f"{where}: an answer cell needs one '# BEGIN SOLUTION' ... '# END SOLUTION' block")
    return "\n".join(lines)


def _meta(grade_id: str, *, solution: bool = False, grade: bool = False, locked: bool = True,
          points: int = 0) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": NBGRADER_SCHEMA,
            "solution": solution, "task": False}
    if grade:
        meta["points"] = points
    return meta


def nbgrader_notebook(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """The nbgrader *source* version of a solved notebook (a new object; ``nb`` is not changed)."""
    out = copy.deepcopy(nb)
    stem = Path(name).stem.lower()
    after_answer = False
    n_tests = 0
    for i, cell in enumerate(out.cells):
        where = f"{name}, cell {i}"
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
        if cell.cell_type == "markdown" and "](../NOTATION.md)" in cell.source:
            cell.source = cell.source.replace("](../NOTATION.md)", f"]({NOTATION})")
        if SOLUTION_TAG in tags:
            cell.source = _solution_source(cell.source, where)
            cell.metadata["nbgrader"] = _meta(f"{stem}_answer_{i}", solution=True, locked=False)
            after_answer = True
            continue
        match = _CHECK_CALL.match(cell.source) if cell.cell_type == "code" else None
        if after_answer and match:
            cell.source = (f"_result = {match.group(1)}({match.group(2)})\nprint(_result)\n"
                           "assert _result.passed, _result.message")
            cell.metadata["nbgrader"] = _meta(f"{stem}_test_{i}", grade=True, points=1)
            n_tests += 1
        else:
            cell.metadata["nbgrader"] = _meta(f"{stem}_cell_{i}")
        after_answer = False
    if n_tests == 0:
        raise FlowlabError(f"{name}: no check cell follows an answer cell; nothing to autograde")
    return out


def write_nbgrader_course(out: str | Path, source: str | Path | None = None, *, force: bool = False,
                          course_id: str = "flowlab") -> list[Path]:
    """Write ``out/source/<assignment>/EX_*.ipynb`` (one assignment per notebook), NOTATION.md beside each,
    and ``out/nbgrader_config.py``. Returns the notebook paths."""
    solved = find_exercise_notebooks(source)
    assignments = {p: p.stem.lower() for p in solved}
    names = ["nbgrader_config.py"] + [f"source/{a}/{p.name}" for p, a in assignments.items()]
    out = _prepare_out(out, names, force, "nbgrader course")
    notation = _notation(solved).read_text(encoding="utf-8")
    written = []
    for path, assignment in assignments.items():
        folder = out / "source" / assignment
        folder.mkdir(parents=True, exist_ok=True)
        nb = nbgrader_notebook(nbformat.read(path, as_version=4), path.name)
        write_atomic(folder / path.name, nbformat.writes(nb) + "\n")
        write_atomic(folder / NOTATION, notation)
        written.append(folder / path.name)
    write_atomic(out / "nbgrader_config.py",
                 "# nbgrader course folder written by `flowlab exercises --nbgrader`\n"
                 "c = get_config()  # noqa: F821  (nbgrader provides it)\n"
                 f"c.CourseDirectory.course_id = {course_id!r}\n"
                 "c.CourseDirectory.root = '.'\n"
                 "c.ClearSolutions.code_stub = {'python': '# YOUR CODE HERE\\nraise NotImplementedError()'}\n")
    return written
