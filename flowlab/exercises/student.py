"""Student notebooks from the solved ones: solutions out, stubs in, outputs dropped.

The solved notebooks (``notebooks/exercises/EX_*.ipynb``) are the single source. A cell whose
metadata tags include ``solution`` holds the reference solution between a ``# BEGIN SOLUTION`` line
and a ``# END SOLUTION`` line, and the stub as ``# STUB: ...`` comment lines (anywhere in the cell)::

    def pred_data_reversed(x, v, t):
        # BEGIN SOLUTION
        return x + (1 - t[:, None]) * v
        # END SOLUTION
        # STUB: raise NotImplementedError("your turn")

The student version keeps everything else, drops the lines from BEGIN to END and uncomments the
STUB lines (keeping their indentation). Every code cell loses its outputs and execution count.
"""
from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import nbformat

from ..errors import FlowlabError
from ..io import check_member, write_atomic

__all__ = ["SOLUTION_TAG", "STUDENT_TAG", "strip_solution", "student_notebook", "find_exercise_notebooks",
           "write_student_notebooks"]

SOLUTION_TAG = "solution"
#: What a solution cell is tagged with in the student version (the cell the student fills in).
STUDENT_TAG = "your-turn"
_BEGIN = re.compile(r"^\s*# BEGIN SOLUTION\s*$")
_END = re.compile(r"^\s*# END SOLUTION\s*$")
_STUB = re.compile(r"^(\s*)# STUB: ?(.*)$")

#: The notation table the notebooks link to: beside the exercises folder in the checkout, beside the student
#: notebooks in a handout (the link is rewritten and the file copied).
NOTATION = "NOTATION.md"
_NOTATION_LINK = "](../NOTATION.md)"

_BANNER = ("**Student version** (written by `flowlab exercises`). Work top to bottom: run the setup cell, "
           "then for each exercise replace the stub in the cell marked *your turn* and run the check "
           "cell under it. A check answers PASS, *not done yet*, or what is wrong with a hint.")


def strip_solution(source: str, where: str = "cell") -> str:
    """``source`` with the solution block removed and the ``# STUB:`` lines uncommented.

    Raises :class:`FlowlabError` when the markers are missing, nested or unbalanced, or no stub is given.
    """
    out: list[str] = []
    inside = False
    blocks = stubs = 0
    for line in source.splitlines():
        if _BEGIN.match(line):
            if inside:
                raise FlowlabError(f"{where}: nested '# BEGIN SOLUTION'; close the first block with '# END SOLUTION'")
            inside, blocks = True, blocks + 1
            continue
        if _END.match(line):
            if not inside:
                raise FlowlabError(f"{where}: '# END SOLUTION' without a '# BEGIN SOLUTION' before it")
            inside = False
            continue
        if inside:
            continue
        m = _STUB.match(line)
        if m:
            stubs += 1
            out.append(m.group(1) + m.group(2))
        else:
            out.append(line)
    if inside:
        raise FlowlabError(f"{where}: '# BEGIN SOLUTION' is never closed; add '# END SOLUTION'")
    if blocks == 0:
        raise FlowlabError(f"{where}: tagged '{SOLUTION_TAG}' but has no '# BEGIN SOLUTION' ... '# END SOLUTION' block")
    if stubs == 0:
        raise FlowlabError(f"{where}: has a solution but no '# STUB:' lines; give the student a stub to fill in")
    return "\n".join(out)


def student_notebook(nb: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """The student version of a solved notebook (a new object; ``nb`` is not changed)."""
    out = copy.deepcopy(nb)
    n_solutions = 0
    for i, cell in enumerate(out.cells):
        where = f"{name}, cell {i}"
        tags = cell.get("metadata", {}).get("tags", [])
        text = cell.source if isinstance(cell.source, str) else "".join(cell.source)
        if SOLUTION_TAG in tags:
            if cell.cell_type != "code":
                raise FlowlabError(f"{where}: only code cells can be tagged '{SOLUTION_TAG}'")
            cell.source = strip_solution(text, where)
            cell.metadata["tags"] = [STUDENT_TAG if tag == SOLUTION_TAG else tag for tag in tags]
            n_solutions += 1
        elif any(_BEGIN.match(line) or _END.match(line) for line in text.splitlines()):
            raise FlowlabError(f"{where}: has solution markers but is not tagged '{SOLUTION_TAG}'; tag it, or the "
                               "solution would be handed out")
        if cell.cell_type == "markdown" and _NOTATION_LINK in text:
            cell.source = text.replace(_NOTATION_LINK, f"]({NOTATION})")
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
    if n_solutions == 0:
        raise FlowlabError(f"{name}: no cell is tagged '{SOLUTION_TAG}'; is this a solved exercise notebook?")
    banner = nbformat.v4.new_markdown_cell(_BANNER)
    banner["id"] = "student-version"
    out.cells.insert(1, banner)
    return out


def find_exercise_notebooks(folder: str | Path | None = None) -> list[Path]:
    """The solved exercise notebooks ``EX_*.ipynb``: in ``folder``, else ``./notebooks/exercises``, else the
    ``exercises`` folder of the tutorial that ships with flowlab (:func:`flowlab.resources.notebooks_dir`)."""
    from ..resources import tutorial_candidates

    candidates = [Path(folder)] if folder else [Path.cwd() / "notebooks" / "exercises",
                                                *(t / "exercises" for t in tutorial_candidates())]
    for cand in candidates:
        if cand.is_dir():
            found = sorted(cand.glob("EX_*.ipynb"))
            if found:
                return found
    tried = ", ".join(str(c) for c in candidates)
    raise FlowlabError(f"no solved exercise notebooks (EX_*.ipynb) found in {tried}; pass --source DIR, "
                       "or reinstall flowlab (pip install --force-reinstall flowlab) to get its tutorial back")


def write_student_notebooks(out: str | Path, source: str | Path | None = None, *, force: bool = False) -> list[Path]:
    """Write the student version of every solved notebook into the folder ``out`` (created if its parent
    exists). Refuses, before writing anything, to overwrite existing files unless ``force``. Each file is
    written atomically. Returns the written paths."""
    out = Path(out)
    if len(out.name.encode("utf-8", "surrogateescape")) > 255:
        raise FlowlabError("--out: the folder name is longer than the file system allows; use a shorter name")
    if out.exists() and not out.is_dir():
        raise FlowlabError(f"--out {str(out)!r} is a file; give a folder for the student notebooks")
    if not out.exists() and not out.parent.is_dir() and str(out.parent):
        raise FlowlabError(f"cannot create {str(out)!r}: its parent folder {str(out.parent)!r} does not exist")
    if out.is_dir() and not os.access(out, os.W_OK | os.X_OK):
        raise FlowlabError(f"--out {str(out)!r} is not writable; choose another folder")
    solved = find_exercise_notebooks(source)
    built = []
    for path in solved:
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as exc:  # a broken JSON file: say which
            raise FlowlabError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
        built.append((out / path.name, student_notebook(nb, path.name)))
    existing = [str(p) for p, _ in built if p.exists() or p.is_symlink()]
    if existing and not force:
        raise FlowlabError(f"{len(existing)} file(s) already exist ({', '.join(existing)}); a student may have "
                           "worked in them. Choose another --out folder or pass --force to overwrite")
    notation = _notation_for(solved, [nb for _, nb in built])
    if out.is_dir():
        for target, _ in built:
            check_member(out, target.name, label=f"--out {str(out)!r}", force=force)
    try:
        out.mkdir(exist_ok=True)
    except OSError as exc:
        raise FlowlabError(f"cannot create --out {str(out)!r}: {exc.strerror}; choose a writable folder") from None
    for target, nb in built:
        write_atomic(target, nbformat.writes(nb) + "\n")
    if notation is not None:
        write_atomic(out / NOTATION, notation.read_text(encoding="utf-8"))
    return [p for p, _ in built]


def _notation_for(solved: list[Path], student: list[nbformat.NotebookNode]) -> Path | None:
    """The notation table the student notebooks link to (beside the solved notebooks or one folder up), None
    when no notebook links to it; a FlowlabError when they link to it and it is missing."""
    here = solved[0].parent
    for cand in (here / NOTATION, here.parent / NOTATION):
        if cand.is_file():
            return cand
    link = f"]({NOTATION})"
    if any(link in cell.source for nb in student for cell in nb.cells if cell.cell_type == "markdown"):
        raise FlowlabError(f"the notebooks link to {NOTATION}, which is neither in {here} nor in {here.parent}; put "
                           "it beside the notebooks so that the handout's links work")
    return None
