"""The course kit: lecture slides, a printable handout and a lab plan, made from the tutorial itself.

``flowlab course --out DIR`` (:func:`write_course`) writes

* ``slides/lecture.html``: the 90-minute lecture as reveal.js slides, made by nbconvert from the cells of
  the tutorial notebooks tagged ``slide`` (each one slide, in reading order, after a title slide per
  notebook taken from its first cell). A tagged code cell shows its output (the figure, the checked
  claim); add the tag ``slide-code`` to show its code too. reveal.js 4 and MathJax 3 are copied beside the
  slides: they open from ``file://`` with no network.
* ``handout.html`` and, where a Chromium is found, ``handout.pdf`` (its print to PDF): the symbols and the
  two-convention table from NOTATION.md, the three misconceptions from the lecturer's guide, and the list
  of the 14 exercises. Nothing is retyped: each part is cut from its source by its heading.
* ``LAB_PLAN.md``: two lab meetings whose slots add up. The reading time of each exercise set is measured
  on its notebook (prose words at 150 a minute, code lines at 15 a minute, as the guide states), the
  working time is the guide's estimate (:data:`WORKING_MINUTES`); each slot is the sum, and a meeting that
  would overrun its length is an error, not a plan.
* ``README.md``: what is in the kit and how to present it.
"""
from __future__ import annotations

import copy
import html
import math
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import nbformat

from ..errors import FlowlabError
from ..io import write_atomic
from ..resources import notebooks_dir

__all__ = ["SLIDE_TAG", "SLIDE_CODE_TAG", "WORKING_MINUTES", "MEETING_MINUTES", "slide_deck", "write_slides",
           "handout_html", "write_handout", "Slot", "lab_plan", "lab_plan_markdown", "reading_minutes",
           "write_course"]

SLIDE_TAG = "slide"
SLIDE_CODE_TAG = "slide-code"
STATIC = Path(__file__).resolve().parent / "course_static"

#: The guide's working-time estimate for each exercise set (minutes to solve with the checks' hints).
WORKING_MINUTES = {"EX_01_predictions": 30, "EX_02_schedules": 25, "EX_03_paths_and_guidance": 40,
                   "EX_04_porting_and_shape": 50}
#: Length of one lab meeting.
MEETING_MINUTES = 120
WORDS_PER_MINUTE = 150
CODE_LINES_PER_MINUTE = 15


# ---- slides ------------------------------------------------------------------------------------

def _tutorial_notebooks(folder: Path | None = None) -> list[Path]:
    folder = folder or notebooks_dir()
    found = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FlowlabError(f"no tutorial notebooks (NN_*.ipynb) in {folder}")
    return found


def slide_deck(notebooks: list[Path] | None = None) -> nbformat.NotebookNode:
    """One notebook holding the slides: per notebook with tagged cells, its first cell as a title slide,
    then every cell tagged ``slide`` as a slide of its own (code hidden unless tagged ``slide-code``)."""
    deck = nbformat.v4.new_notebook()
    deck.metadata["title"] = "Timestep conventions in diffusion and flow matching"
    title = nbformat.v4.new_markdown_cell(
        "# Timestep conventions in diffusion and flow matching\n\n"
        "conventional (diffusers, SD3, Flux): $\\sigma$: 1 → 0, data at $\\sigma = 0$, "
        "$\\hat x_0 = x - \\sigma v$\n\n"
        "reversed (Hunyuan3D-2, SiT, Lipman FM): $t$: 0 → 1, data at $t = 1$, $\\hat x_1 = x + (1 - t) v$\n\n"
        "*flowlab lecture: every formula derived in SymPy, every claim checked by running code*")
    title.metadata["slideshow"] = {"slide_type": "slide"}
    deck.cells.append(title)
    for path in notebooks or _tutorial_notebooks():
        nb = nbformat.read(path, as_version=4)
        tagged = [c for c in nb.cells if SLIDE_TAG in c.get("metadata", {}).get("tags", [])]
        if not tagged:
            continue
        head = copy.deepcopy(nb.cells[0])
        head.metadata = {"slideshow": {"slide_type": "slide"}}
        deck.cells.append(head)
        for cell in tagged:
            cell = copy.deepcopy(cell)
            tags = cell.metadata.get("tags", [])
            cell.metadata = {"slideshow": {"slide_type": "slide"}}
            if cell.cell_type == "code" and SLIDE_CODE_TAG not in tags:
                cell.metadata["transient"] = {"remove_source": True}
            deck.cells.append(cell)
    if len(deck.cells) == 1:
        raise FlowlabError(f"no cell of the tutorial notebooks is tagged {SLIDE_TAG!r}: nothing to make slides of")
    return deck


def _mathjax_file() -> Path:
    from .site import STATIC as SITE_STATIC

    path = SITE_STATIC / "mathjax" / "tex-svg-full.js"
    if not path.is_file():
        raise FlowlabError(f"the local MathJax copy is missing ({path}); reinstall flowlab")
    return path


def write_slides(out: Path, notebooks: list[Path] | None = None) -> Path:
    """``out/lecture.html`` plus ``out/reveal.js/`` and ``out/mathjax/``; returns the HTML path."""
    from nbconvert.exporters import SlidesExporter

    deck = slide_deck(notebooks)
    exporter = SlidesExporter(template_name="flowlab_reveal", extra_template_basedirs=[str(STATIC / "templates")],
                              reveal_url_prefix="reveal.js", reveal_theme="white")
    body, _ = exporter.from_notebook_node(deck, resources={"flowlab_mathjax": "mathjax/tex-svg-full.js"})
    remote = re.findall(r"""<(?:script|img|link|iframe|source)\b[^>]*?(?:src|href)=["'](?:https?:)?//[^"']+""", body)
    if remote:
        raise FlowlabError(f"internal: the slides would load {remote[0]!r} from the network; they must open offline")
    out.mkdir(parents=True, exist_ok=True)
    # reveal.js as nbconvert's template expects it (reveal.js/dist/...); stored flat in the package, since a
    # folder named dist/ is a build output to git
    for name, src in (("reveal.js/dist", STATIC / "reveal"), ("mathjax", _mathjax_file().parent)):
        if (out / name).exists():
            shutil.rmtree(out / name)
        shutil.copytree(src, out / name)
    target = out / "lecture.html"
    write_atomic(target, body)
    return target


# ---- handout -----------------------------------------------------------------------------------

def _section(markdown: str, heading: str, source: str) -> str:
    """The text under ``## heading`` (up to the next heading of the same or a higher level)."""
    lines = markdown.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(#+)\s+(.*)$", line)
        if m and m.group(2).strip().lower() == heading.lower():
            level = len(m.group(1))
            body = []
            for nxt in lines[i + 1:]:
                n = re.match(r"^(#+)\s", nxt)
                if n and len(n.group(1)) <= level:
                    break
                body.append(nxt)
            return "\n".join(body).strip()
    raise FlowlabError(f"{source} has no section '{heading}': the handout is cut from it by that heading")


def handout_html(folder: Path | None = None) -> str:
    """The handout page (self-contained HTML): notation, the two conventions, misconceptions, exercises."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    from ..exercises import EXERCISES

    folder = folder or notebooks_dir()
    notation = (folder / "NOTATION.md").read_text(encoding="utf-8")
    guide = (folder / "LECTURERS_GUIDE.md").read_text(encoding="utf-8")
    misconceptions = _section(guide, "Three misconceptions, and the cell that dispels each", "LECTURERS_GUIDE.md")
    rows = "".join(f"<tr><td>{ex.number}</td><td>{html.escape(ex.topic)}</td><td>{html.escape(ex.notebook)}</td></tr>"
                   for ex in EXERCISES)
    parts = [
        ("Symbols", markdown2html_mistune(_section(notation, "Symbols", "NOTATION.md"))),
        ("The two conventions", markdown2html_mistune(_section(notation, "The two conventions", "NOTATION.md"))),
        ("The map between the conventions",
         markdown2html_mistune(_section(notation, "The map between the conventions", "NOTATION.md"))),
        ("Three misconceptions", markdown2html_mistune(misconceptions)),
        ("The exercises", f"<table><tr><th>#</th><th>exercise</th><th>notebook</th></tr>{rows}</table>"),
    ]
    body = "\n".join(f"<section><h2>{html.escape(h)}</h2>\n{b}</section>" for h, b in parts)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>flowlab handout: timestep conventions</title>
<script>window.MathJax = {{tex: {{inlineMath: [['$', '$'], ['\\\\(', '\\\\)']]}}, svg: {{fontCache: 'global'}}}};</script>
<script id="MathJax-script" defer src="mathjax/tex-svg-full.js"></script>
<style>
@page {{ size: A4; margin: 14mm; }}
body {{ font-family: "DejaVu Sans", Arial, sans-serif; font-size: 10pt; line-height: 1.35; max-width: 60em;
       margin: 0 auto; color: #111; }}
h1 {{ font-size: 16pt; margin: 0 0 4pt; }} h2 {{ font-size: 12.5pt; border-bottom: 1px solid #999; margin: 12pt 0 4pt; }}
table {{ border-collapse: collapse; width: 100%; margin: 4pt 0; }}
th, td {{ border: 1px solid #bbb; padding: 2pt 5pt; text-align: left; vertical-align: top; font-size: 9pt; }}
th {{ background: #eef; }} code {{ font-size: 9pt; }} section {{ break-inside: auto; }}
</style></head>
<body><h1>Timestep conventions in diffusion and flow matching: the handout</h1>
<p>From flowlab's notation page and lecturer's guide. Data at $\\sigma = 0$ (conventional) is data at $t = 1$
(reversed); $t = 1 - \\sigma$ and $v_{{\\rm rev}}(x, t) = -v_{{\\rm conv}}(x, 1 - t)$.</p>
{body}
</body></html>
"""


def _chromium() -> str | None:
    for name in (os.environ.get("FLOWLAB_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def write_handout(out: Path, folder: Path | None = None) -> tuple[Path, Path | None]:
    """``out/handout.html`` (+ ``out/mathjax/``) and, with a Chromium, ``out/handout.pdf``."""
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "mathjax").exists():
        shutil.copytree(_mathjax_file().parent, out / "mathjax")
    page = out / "handout.html"
    write_atomic(page, handout_html(folder))
    browser = _chromium()
    if browser is None:
        return page, None
    pdf = out / "handout.pdf"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
           "--run-all-compositor-stages-before-draw", "--virtual-time-budget=20000",
           f"--print-to-pdf={pdf}", page.resolve().as_uri()]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        raise FlowlabError(f"{browser} did not print the handout within 180 s; open {page} and print it") from None
    if done.returncode != 0 or not pdf.is_file() or pdf.stat().st_size < 1000:
        raise FlowlabError(f"{browser} could not print the handout to PDF (exit {done.returncode}); open {page} and "
                           f"print it. Its last words: {done.stderr.strip()[-300:]}")
    return page, pdf


# ---- lab plan ----------------------------------------------------------------------------------

def reading_minutes(path: Path) -> int:
    """Reading time of a notebook: prose words / 150 + code lines / 15 (solution blocks excluded), rounded up."""
    nb = nbformat.read(path, as_version=4)
    words = sum(len(re.findall(r"\w+", c.source)) for c in nb.cells if c.cell_type == "markdown")
    code = 0
    for c in nb.cells:
        if c.cell_type != "code":
            continue
        inside = False
        for line in c.source.splitlines():
            if re.match(r"^\s*# BEGIN SOLUTION", line):
                inside = True
            elif re.match(r"^\s*# END SOLUTION", line):
                inside = False
            elif not inside and line.strip():
                code += 1
    return math.ceil(words / WORDS_PER_MINUTE + code / CODE_LINES_PER_MINUTE)


@dataclass(frozen=True)
class Slot:
    meeting: int
    start: int
    minutes: int
    what: str
    reading: int = 0
    working: int = 0


def lab_plan(folder: Path | None = None) -> list[Slot]:
    """Two meetings of :data:`MEETING_MINUTES`; each exercise slot = measured reading + estimated working time."""
    folder = folder or notebooks_dir()
    ex = folder / "exercises"
    sets = {name: (reading_minutes(ex / f"{name}.ipynb"), WORKING_MINUTES[name]) for name in WORKING_MINUTES}
    meetings = [
        [("Warm-up: the notation page and the two-convention table; `flowlab derive --convention both`", 10, 0, 0),
         ("EX 01 (exercises 1-4) in pairs; regroup and discuss exercise 2 (#124)", None, *sets["EX_01_predictions"]),
         ("Break", 10, 0, 0),
         ("EX 02 (exercises 5-7): the shift, the wasted last step, what the fix buys", None, *sets["EX_02_schedules"]),
         ("Ahead of meeting 2: read notebook 01 section 6 (affine paths: velocity, epsilon, score) together", 15, 0, 0),
         ("Wrap-up: misconceptions 1 and 3, each with the cell that dispels it", None, 0, 0)],
        [("EX 03 (exercises 8-10): epsilon and score on a curved path, guidance on the data prediction", None,
          *sets["EX_03_paths_and_guidance"]),
         ("Break", 5, 0, 0),
         ("EX 04 (exercises 11-14): read a scheduler, port a diffusers loop (the capstone), fp16 time, max_period",
          None, *sets["EX_04_porting_and_shape"]),
         ("Wrap-up: misconception 2 (flip the time AND the sign of v)", None, 0, 0)],
    ]
    plan: list[Slot] = []
    for number, items in enumerate(meetings, start=1):
        fixed = sum((m if m is not None else r + w) for _, m, r, w in items[:-1])
        if fixed > MEETING_MINUTES - 5:
            raise FlowlabError(f"lab meeting {number} needs {fixed} min of material plus a 5-minute wrap-up, more than "
                               f"its {MEETING_MINUTES} min: move an exercise set or lengthen the meeting")
        start = 0
        for i, (what, minutes, reading, working) in enumerate(items):
            if minutes is None:
                minutes = reading + working if i < len(items) - 1 else MEETING_MINUTES - start
            plan.append(Slot(number, start, minutes, what, reading, working))
            start += minutes
    return plan


def lab_plan_markdown(plan: list[Slot]) -> str:
    out = ["# Lab plan: two meetings of %d minutes" % MEETING_MINUTES, "",
           "Each exercise slot is the set's reading time, measured on its notebook (prose words / %d + code lines / %d "
           "per minute), plus the guide's estimate of the time to solve it with the checks' hints. The wrap-up takes "
           "what is left of the meeting." % (WORDS_PER_MINUTE, CODE_LINES_PER_MINUTE), ""]
    for number in sorted({s.meeting for s in plan}):
        slots = [s for s in plan if s.meeting == number]
        out += [f"## Meeting {number}", "", "| minutes | what | reading + working |", "|---|---|---|"]
        for s in slots:
            detail = f"{s.reading} + {s.working} min" if s.reading or s.working else ""
            out.append(f"| {s.start}-{s.start + s.minutes} | {s.what} | {detail} |")
        out += ["", f"Total: {sum(s.minutes for s in slots)} min.", ""]
    return "\n".join(out)


# ---- the kit -----------------------------------------------------------------------------------

_README = """# flowlab course kit

Written by `flowlab course`. Everything opens offline.

| file | what |
|---|---|
| `slides/lecture.html` | the 90-minute lecture (reveal.js): open in a browser, arrow keys to move, `f` for full screen, `o` for the overview. Made from the tutorial cells tagged `slide` |
| `handout.pdf` / `handout.html` | two pages to print: symbols, the two conventions and the map, the three misconceptions, the exercise list |
| `LAB_PLAN.md` | two 2-hour lab meetings whose slots add up (reading measured on the notebooks + working estimates) |

Student notebooks: `flowlab exercises --out DIR`; the answer key, kept apart: `flowlab exercises --key DIR`;
an nbgrader course folder with autograded checks: `flowlab exercises --nbgrader DIR`.
The lecturer's guide (LECTURERS_GUIDE.md in `flowlab notebooks --out DIR`) has the lesson plans and figures.
"""

KIT_FILES = ("README.md", "LAB_PLAN.md", "handout.html", "handout.pdf", "slides")


def write_course(out: str | Path, *, force: bool = False) -> list[Path]:
    """Write the kit into ``out``; refuses to overwrite an earlier kit's files unless ``force``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FlowlabError(f"{str(out)!r} is a file; give a folder for the course kit")
    if not out.exists() and str(out.parent) and not out.parent.is_dir():
        raise FlowlabError(f"cannot create {str(out)!r}: its parent folder {str(out.parent)!r} does not exist")
    existing = [n for n in KIT_FILES if (out / n).exists() or (out / n).is_symlink()]
    if existing and not force:
        raise FlowlabError(f"{out} already holds a course kit ({', '.join(existing)}); choose another folder or pass "
                           "--force to overwrite it")
    if any((out / n).is_symlink() for n in KIT_FILES):
        raise FlowlabError(f"{out} holds a symbolic link where the kit writes; remove it first")
    out.mkdir(exist_ok=True)
    written = [write_slides(out / "slides")]
    page, pdf = write_handout(out)
    written += [page] + ([pdf] if pdf else [])
    write_atomic(out / "LAB_PLAN.md", lab_plan_markdown(lab_plan()))
    write_atomic(out / "README.md", _README)
    return written + [out / "LAB_PLAN.md", out / "README.md"]
