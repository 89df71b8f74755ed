"""The course kit (flowlab course) and the exercise exports (answer key, nbgrader)."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest

from flowlab.errors import FlowlabError
from flowlab.exercises.export import nbgrader_notebook, write_answer_key, write_nbgrader_course
from flowlab.teach import course

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def _md(text: str, tags=()):
    cell = nbformat.v4.new_markdown_cell(text)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def _code(source: str, tags=(), output: str | None = None):
    cell = nbformat.v4.new_code_cell(source)
    if tags:
        cell.metadata["tags"] = list(tags)
    if output is not None:
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=output)]
    return cell


def _write(path: Path, cells) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nbformat.write(nb, path)
    return path


def test_slide_deck_takes_tagged_cells_in_order_and_hides_code_unless_asked(tmp_path: Path) -> None:
    a = _write(tmp_path / "01_a.ipynb", [_md("# A: first"), _md("## not a slide"), _md("## one", ["slide"]),
                                         _code("print(1)", ["slide"], "1\n"), _code("print(2)", ["slide", "slide-code"])])
    b = _write(tmp_path / "02_b.ipynb", [_md("# B"), _code("x = 1")])  # nothing tagged: no title slide either
    deck = course.slide_deck([a, b])
    sources = [c.source for c in deck.cells]
    assert sources[1:] == ["# A: first", "## one", "print(1)", "print(2)"]
    assert all(c.metadata["slideshow"]["slide_type"] == "slide" for c in deck.cells)
    assert deck.cells[3].metadata.get("transient") == {"remove_source": True}
    assert "transient" not in deck.cells[4].metadata
    with pytest.raises(FlowlabError, match="tagged 'slide'"):
        course.slide_deck([b])


def test_the_tutorial_has_slides_for_the_lecture() -> None:
    deck = course.slide_deck()
    assert 15 <= len(deck.cells) <= 60  # a 90-minute lecture


def test_slides_open_offline(tmp_path: Path) -> None:
    page = course.write_slides(tmp_path / "slides")
    body = page.read_text()
    assert not re.findall(r"""<(?:script|img|link|iframe)\b[^>]*?(?:src|href)=["'](?:https?:)?//""", body)
    assert (tmp_path / "slides" / "reveal.js" / "dist" / "reveal.js").is_file()
    assert (tmp_path / "slides" / "mathjax" / "tex-svg-full.js").is_file()
    assert 'src="reveal.js/dist/reveal.js"' in body and "mathjax/tex-svg-full.js" in body
    assert body.count("<section") >= 15


def test_handout_is_cut_from_its_sources() -> None:
    page = course.handout_html()
    for heading in ("Symbols", "The two conventions", "Three misconceptions", "The exercises"):
        assert f"<h2>{heading}" in page
    assert page.count("<tr>") >= 14 + 12 + 2           # 14 exercises, a dozen symbols, header rows
    assert "is the data" in page                         # misconception 1, from the lecturer's guide
    with pytest.raises(FlowlabError, match="no section 'Nowhere'"):
        course._section("# A\n## B\ntext", "Nowhere", "X.md")
    assert course._section("# A\n## B\ntext\n### C\nsub\n## D\nno", "B", "X.md") == "text\n### C\nsub"


def test_reading_minutes_counts_prose_and_code_but_not_solutions(tmp_path: Path) -> None:
    words = " ".join(["word"] * 300)               # 2 min
    code = "\n".join(f"x{i} = {i}" for i in range(30))  # 2 min
    solution = "# BEGIN SOLUTION\n" + "\n".join(f"y{i} = {i}" for i in range(300)) + "\n# END SOLUTION"
    path = _write(tmp_path / "EX.ipynb", [_md(words), _code(code), _code(solution)])
    assert course.reading_minutes(path) == 4
    path = _write(tmp_path / "EX2.ipynb", [_md(words + " one"), _code(code)])
    assert course.reading_minutes(path) == 5   # rounded up


def test_lab_plan_adds_up_and_each_exercise_slot_holds_its_reading_and_working_time() -> None:
    plan = course.lab_plan()
    for meeting in {s.meeting for s in plan}:
        slots = [s for s in plan if s.meeting == meeting]
        assert sum(s.minutes for s in slots) == course.MEETING_MINUTES
        assert all(b.start == a.start + a.minutes for a, b in zip(slots, slots[1:]))
        assert slots[-1].minutes >= 5
    ex = [s for s in plan if s.working]
    assert len(ex) == 4 and all(s.minutes == s.reading + s.working for s in ex)
    assert {s.working for s in ex} == set(course.WORKING_MINUTES.values())


def test_lab_plan_refuses_an_overfull_meeting(monkeypatch) -> None:
    monkeypatch.setitem(course.WORKING_MINUTES, "EX_04_porting_and_shape", 200)
    with pytest.raises(FlowlabError, match="meeting 2 needs"):
        course.lab_plan()


def test_the_guide_shows_the_lab_plan_flowlab_course_writes() -> None:
    guide = (NOTEBOOKS / "LECTURERS_GUIDE.md").read_text()
    table_rows = [ln for ln in course.lab_plan_markdown(course.lab_plan()).splitlines() if ln.startswith("| ") and
                  re.match(r"\| \d+-\d+ \|", ln)]
    assert table_rows and all(row in guide for row in table_rows)


def test_course_kit_refuses_to_overwrite_and_writes_everything(tmp_path: Path) -> None:
    out = tmp_path / "kit"
    written = course.write_course(out)
    assert (out / "slides" / "lecture.html").is_file() and (out / "LAB_PLAN.md").is_file()
    assert (out / "README.md").is_file() and (out / "handout.html").is_file()
    if course._chromium():
        pdf = out / "handout.pdf"
        assert pdf in written and pdf.read_bytes()[:5] == b"%PDF-"
    with pytest.raises(FlowlabError, match="already holds a course kit"):
        course.write_course(out)
    course.write_course(out, force=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FlowlabError, match="is a file"):
        course.write_course(tmp_path / "file")
    with pytest.raises(FlowlabError, match="parent folder"):
        course.write_course(tmp_path / "no" / "kit")


# ---- answer key and nbgrader ---------------------------------------------------------------------

def test_answer_key_holds_the_solved_notebooks_apart(tmp_path: Path) -> None:
    paths = write_answer_key(tmp_path / "key")
    assert len(paths) == 4 and (tmp_path / "key" / "NOTATION.md").is_file()
    assert "Answer key" in (tmp_path / "key" / "README.md").read_text()
    nb = nbformat.read(paths[0], as_version=4)
    assert any("# BEGIN SOLUTION" in c.source for c in nb.cells)
    assert not any("](../NOTATION.md)" in c.source for c in nb.cells if c.cell_type == "markdown")
    with pytest.raises(FlowlabError, match="already exist"):
        write_answer_key(tmp_path / "key")


def test_nbgrader_metadata(tmp_path: Path) -> None:
    written = write_nbgrader_course(tmp_path / "course")
    assert len(written) == 4 and (tmp_path / "course" / "nbgrader_config.py").is_file()
    ids, tests, answers = set(), 0, 0
    for path in written:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            meta = cell.metadata["nbgrader"]
            assert meta["schema_version"] == 3 and meta["grade_id"] not in ids
            ids.add(meta["grade_id"])
            if meta["solution"]:
                answers += 1
                assert "### BEGIN SOLUTION" in cell.source and "# STUB:" not in cell.source and not meta["locked"]
            if meta["grade"]:
                tests += 1
                assert meta["points"] == 1 and "assert _result.passed" in cell.source and meta["locked"]
    assert answers >= 14 and tests >= 14


def _clear_solutions(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """What nbgrader's ClearSolutions does: the block between the delimiters becomes its stub."""
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = re.sub(r"(?ms)^(\s*)### BEGIN SOLUTION.*?### END SOLUTION",
                                 r"\1# YOUR CODE HERE\n\1raise NotImplementedError()", cell.source)
    return nb


@pytest.mark.slow
def test_nbgrader_tests_pass_with_the_solutions_and_fail_without(tmp_path: Path) -> None:
    from nbclient import NotebookClient

    src = NOTEBOOKS / "exercises" / "EX_01_predictions.ipynb"
    shutil.copy(NOTEBOOKS / "NOTATION.md", tmp_path / "NOTATION.md")
    nb = nbgrader_notebook(nbformat.read(src, as_version=4), src.name)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    graded = [c for c in nb.cells if c.metadata["nbgrader"]["grade"]]
    assert graded and all("PASS" in "".join(o.get("text", "") for o in c.outputs) for c in graded)
    blank = _clear_solutions(nbgrader_notebook(nbformat.read(src, as_version=4), src.name))
    client = NotebookClient(blank, timeout=300, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    failed = [c for c in blank.cells if c.metadata["nbgrader"]["grade"]
              and any(o.get("output_type") == "error" and o.get("ename") == "AssertionError" for o in c.outputs)]
    assert len(failed) == len(graded)


def test_nbgrader_refuses_a_notebook_without_checks() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [_code("# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n# STUB: x = ...", ["solution"]), _code("print(x)")]
    with pytest.raises(FlowlabError, match="nothing to autograde"):
        nbgrader_notebook(nb, "EX_X.ipynb")
    nb.cells[1].source = "check_x(x)"
    graded = nbgrader_notebook(nb, "EX_X.ipynb")
    assert graded.cells[1].metadata["nbgrader"]["grade"] and "assert _result.passed" in graded.cells[1].source


def test_exercises_command_writes_key_and_nbgrader_apart(tmp_path: Path, capsys) -> None:
    from flowlab.cli import main

    assert main(["exercises", "--out", str(tmp_path / "s"), "--key", str(tmp_path / "k"),
                 "--nbgrader", str(tmp_path / "g")]) == 0
    student = nbformat.read(tmp_path / "s" / "EX_01_predictions.ipynb", as_version=4)
    assert not any("# BEGIN SOLUTION" in c.source for c in student.cells)
    assert any("# BEGIN SOLUTION" in c.source for c in nbformat.read(tmp_path / "k" / "EX_01_predictions.ipynb",
                                                                      as_version=4).cells)
    assert (tmp_path / "g" / "source" / "ex_01_predictions" / "EX_01_predictions.ipynb").is_file()
    assert main(["exercises", "--out", str(tmp_path / "x"), "--key", str(tmp_path / "x")]) == 1
    assert "different folders" in capsys.readouterr().err


def test_the_guide_states_the_measured_reading_times() -> None:
    guide = (NOTEBOOKS / "LECTURERS_GUIDE.md").read_text()
    for number, name in enumerate(course.WORKING_MINUTES, start=1):
        minutes = course.reading_minutes(NOTEBOOKS / "exercises" / f"{name}.ipynb")
        assert re.search(rf"^\| EX 0{number} \([^|]*\| [^|]*\| {minutes} min \(measured\) \|", guide, re.M), name
