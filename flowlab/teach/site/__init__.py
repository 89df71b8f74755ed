"""The tour's HTML site: one page per notebook and per Markdown page, a landing page, navigation.

Pages are JupyterLab's HTML export (nbconvert's ``lab`` template) extended by the ``flowlab``
template in ``templates/``: a sidebar with every page, previous / up / next links, and a local
MathJax 3 (``static/mathjax/tex-svg-full.js``, MathJax 3.2.2 from the npm package ``mathjax``,
Apache-2.0, see ``static/mathjax/LICENSE``) that typesets every formula offline. Its SVG output
carries the TeX fonts inside the script, so nothing else is fetched and ``file://`` pages work.

Links between sources are rewritten to the pages: ``NOTATION.md`` -> ``NOTATION.html``,
``01_x.ipynb`` -> ``01_x.html``; other local files a page points at (images) are copied beside it.
"""
from __future__ import annotations

import html as _html
import math
import posixpath
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import FlowlabError
from ...io import write_atomic

__all__ = ["Page", "Site", "notebook_summary", "STATIC", "TEMPLATES"]

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"
MATHJAX_JS = "static/mathjax/tex-svg-full.js"

# reading-time estimate: prose at 200 words a minute, code at 20 lines a minute, 15 s per figure
WORDS_PER_MIN, CODE_LINES_PER_MIN, FIGURE_MIN = 200, 20, 0.25
READING_TIME_RULE = (f"estimated: prose at {WORDS_PER_MIN} words/min, code at {CODE_LINES_PER_MIN} lines/min, "
                     f"{int(FIGURE_MIN * 60)} s per figure")


@dataclass
class Page:
    """One page of the site. ``href`` is relative to the build folder (``exercises/x.html``)."""

    href: str
    title: str
    section: str  # "start", "notebooks", "exercises", "guides"
    number: str = ""
    status: str = ""  # "", "failed", "not run", "unreadable"

    @property
    def root(self) -> str:
        """The relative path from this page back to the build folder ("" or "../")."""
        return "../" * self.href.count("/")


@dataclass
class NotebookSummary:
    title: str
    purpose: str
    minutes: int
    extras: dict = field(default_factory=dict)


def _strip_md(text: str) -> str:
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text)  # images
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)  # links -> their text
    text = re.sub(r"(\*\*|__)(.+?)\1", r"\2", text)
    text = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"\1", text)
    return " ".join(text.split())


def notebook_summary(nb) -> NotebookSummary:
    """Title (first heading), purpose (first paragraph after it) and an estimated reading time."""
    title, purpose = "", ""
    words = code_lines = figures = 0
    for cell in nb.cells:
        src = cell.source if isinstance(cell.source, str) else "".join(cell.source)
        if cell.cell_type == "markdown":
            words += len(re.sub(r"\$[^$]*\$", " x ", src).split())
            if not title or not purpose:
                for block in re.split(r"\n\s*\n", src):
                    block = block.strip()
                    if not block:
                        continue
                    if not title and block.startswith("#"):
                        title = _strip_md(block.splitlines()[0].lstrip("#").strip())
                        rest = "\n".join(block.splitlines()[1:]).strip()
                        if rest and not purpose and not rest.startswith(("|", "```", "<")):
                            purpose = _strip_md(rest)
                    elif title and not purpose and not block.startswith(("#", "|", "```", "<", "- ", "* ", ">")):
                        purpose = _strip_md(block)
        elif cell.cell_type == "code":
            code_lines += len([ln for ln in src.splitlines() if ln.strip()])
            for out in cell.get("outputs", []):
                if "image/png" in out.get("data", {}) or "image/svg+xml" in out.get("data", {}):
                    figures += 1
    purpose = re.sub(r"^(Purpose|Goal|Aim)\s*:\s*", "", purpose, flags=re.I)
    purpose = re.sub(r"\s*(Symbols|Notation)\s*:[^.]*\.", "", purpose)  # the link to the notation page
    purpose = re.sub(r"\s*\((Notebook|See) [^)]*\)\s*$", "", purpose).strip()
    if len(purpose) > 240:  # the landing page shows one line: keep the leading sentences
        kept = ""
        for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z(])", purpose):
            kept = f"{kept} {sentence}".strip()
            if len(kept) >= 120:
                break
        purpose = kept
    if purpose:
        purpose = purpose[0].upper() + purpose[1:]
    title = re.sub(r"^\d+\s*[·.:-]\s*", "", title)
    minutes = max(1, math.ceil(words / WORDS_PER_MIN + code_lines / CODE_LINES_PER_MIN + figures * FIGURE_MIN))
    return NotebookSummary(title, purpose, minutes, {"words": words, "code_lines": code_lines, "figures": figures})


def _md_title(text: str, fallback: str) -> str:
    for line in text.splitlines():
        if line.startswith("# "):
            return _strip_md(line[2:].strip())
    return fallback.replace("_", " ").title()


class Site:
    """Writes the pages of one build folder. ``source`` is the notebooks folder the pages come from."""

    def __init__(self, out: Path, source: Path, pages: list[Page], sources: dict[str, str]):
        self.out = out
        self.source = source
        self.pages = pages
        self.sources = sources  # source path relative to ``source`` (posix) -> page href
        self._exporter = None

    # -- discovery ---------------------------------------------------------------------------
    @staticmethod
    def other_sources(source: Path) -> tuple[list[Path], list[Path]]:
        """Markdown pages (``*.md`` in the folder and its subfolders one level down) and the
        notebooks in subfolders (``exercises/*.ipynb``), which are shown with their stored outputs."""
        mds, nbs = [], []
        for pattern in ("*.md", "*/*.md"):
            mds += [p for p in sorted(source.glob(pattern)) if ".ipynb_checkpoints" not in p.parts]
        nbs = [p for p in sorted(source.glob("*/*.ipynb")) if ".ipynb_checkpoints" not in p.parts]
        return mds, nbs

    @classmethod
    def plan(cls, out: Path, source: Path, tour_notebooks: list[Path], titles: dict[str, str]) -> "Site":
        """Lay out the pages: landing page, Markdown pages, the tour's notebooks, other notebooks."""
        mds, others = cls.other_sources(source)
        pages = [Page("index.html", "Overview", "start")]
        sources: dict[str, str] = {}

        def rel(p: Path) -> str:
            try:
                return p.resolve().relative_to(source.resolve()).as_posix()
            except ValueError:
                return p.name

        md_first = sorted(mds, key=lambda p: (p.parent != source, p.stem != "NOTATION", p.as_posix()))
        for p in md_first:
            r = rel(p)
            href = r[:-3] + ".html"
            sources[r] = href
            text = p.read_text(encoding="utf-8", errors="replace")
            section = "start" if p.stem == "NOTATION" else "guides"
            pages.append(Page(href, _md_title(text, p.stem), section))
        for p in tour_notebooks:
            r = rel(p)
            href = r[:-6] + ".html"
            sources[r] = href
            num = p.name[:2]
            pages.append(Page(href, titles.get(p.name) or p.stem[3:].replace("_", " "), "notebooks", number=num))
        for p in others:
            r = rel(p)
            href = r[:-6] + ".html"
            sources[r] = href
            pages.append(Page(href, titles.get(r) or p.stem.replace("_", " "), "exercises"))
        order = {"start": 0, "notebooks": 1, "exercises": 2, "guides": 3}
        pages.sort(key=lambda pg: (order[pg.section], 0 if pg.href == "index.html" else 1))
        return cls(out, source, pages, sources)

    def page(self, href: str) -> Page:
        for pg in self.pages:
            if pg.href == href:
                return pg
        raise KeyError(href)

    # -- assets ------------------------------------------------------------------------------
    def copy_assets(self) -> None:
        """Copy CSS, the MathJax configuration and MathJax itself into ``out/static``."""
        target = self.out / "static"
        if not (STATIC / MATHJAX_JS.split("static/", 1)[1]).exists():
            raise FlowlabError(f"the local MathJax copy is missing from {STATIC}; reinstall flowlab "
                               "(pip install -e .) or pass --no-html")
        tmp = self.out / ".static.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(STATIC, tmp)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)

    # -- navigation --------------------------------------------------------------------------
    def _label(self, pg: Page) -> str:
        num = f'<span class="fl-num">{_html.escape(pg.number)}</span>' if pg.number else ""
        mark = ""
        if pg.status in ("failed", "unreadable"):
            mark = ' <span class="fl-bad" title="this notebook failed in the tour">&#10007;</span>'
        elif pg.status == "not run":
            mark = ' <span class="fl-bad" title="not run: the tour was interrupted">(not run)</span>'
        return f"{num}{_html.escape(pg.title)}{mark}"

    def sidebar(self, current: Page) -> str:
        root = current.root
        parts = [f'<nav class="fl-sidebar" aria-label="tour contents"><a class="fl-brand" href="{root}index.html">flowlab</a>'
                 '<div class="fl-tag">diffusion / flow-matching time conventions, verified</div>']
        names = {"start": "Start here", "notebooks": "Notebooks (reading order)", "exercises": "Exercises (solved)",
                 "guides": "Guides"}
        for section, name in names.items():
            items = [pg for pg in self.pages if pg.section == section]
            if not items:
                continue
            parts.append(f"<h2>{name}</h2><ol>")
            for pg in items:
                cls = ' class="fl-current" aria-current="page"' if pg.href == current.href else ""
                parts.append(f'<li><a href="{root}{pg.href}"{cls}>{self._label(pg)}</a></li>')
            parts.append("</ol>")
        parts.append("</nav>")
        return "".join(parts)

    def pager(self, current: Page, where: str) -> str:
        root = current.root
        i = next(k for k, pg in enumerate(self.pages) if pg.href == current.href)
        prev = self.pages[i - 1] if i > 0 else None
        nxt = self.pages[i + 1] if i + 1 < len(self.pages) else None
        left = f'<a class="fl-prev" rel="prev" href="{root}{prev.href}">&larr; {_html.escape(prev.title)}</a>' if prev else "<span></span>"
        right = f'<a class="fl-next" rel="next" href="{root}{nxt.href}">{_html.escape(nxt.title)} &rarr;</a>' if nxt else "<span></span>"
        up = f'<a class="fl-up" href="{root}index.html">contents</a>' if current.href != "index.html" else '<span class="fl-up"></span>'
        return f'<nav class="fl-pager fl-{where}" aria-label="previous and next page">{left}{up}{right}</nav>'

    def head(self, current: Page) -> str:
        root = current.root
        return (f'<link rel="stylesheet" href="{root}static/flowlab.css">\n'
                f'<script src="{root}static/mathjax-config.js"></script>\n'
                f'<script id="MathJax-script" defer src="{root}{MATHJAX_JS}"></script>')

    # -- pages -------------------------------------------------------------------------------
    def _nbconvert(self):
        if self._exporter is None:
            from nbconvert import HTMLExporter
            self._exporter = HTMLExporter(template_name="flowlab", extra_template_basedirs=[str(TEMPLATES)])
        return self._exporter

    def _resources(self, current: Page, banner: str = "") -> dict:
        return {"flowlab": {"head": self.head(current), "sidebar": self.sidebar(current),
                            "top": self.pager(current, "top") + banner, "bottom": self.pager(current, "bottom")}}

    def write_notebook_page(self, href: str, nb, banner: str = "") -> Path:
        """Export the notebook ``nb`` (executed or with stored outputs) as page ``href``."""
        current = self.page(href)
        body, _ = self._nbconvert().from_notebook_node(nb, resources=self._resources(current, banner))
        return self._write(current, body)

    def write_markdown_page(self, href: str, text: str) -> Path:
        """Render Markdown ``text`` (GitHub flavoured, $...$ math) as page ``href``."""
        import nbformat
        nb = nbformat.v4.new_notebook()
        nb.metadata["title"] = self.page(href).title
        nb.cells.append(nbformat.v4.new_markdown_cell(text))
        return self.write_notebook_page(href, nb)

    def write_placeholder(self, href: str, message: str) -> Path:
        """A page for a notebook the tour could not show (unreadable, or not run)."""
        current = self.page(href)
        body = (f'<div class="fl-doc"><h1>{_html.escape(current.title)}</h1>'
                f'<div class="fl-banner">{_html.escape(message)}</div></div>')
        return self._write(current, self.shell(current, body))

    def shell(self, current: Page, body: str) -> str:
        """A whole page around ``body`` in the site's frame (used by the landing page)."""
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
                f'<meta name="viewport" content="width=device-width, initial-scale=1.0">'
                f'<title>{_html.escape(current.title)} &middot; flowlab tour</title>\n{self.head(current)}</head>\n'
                f'<body class="fl-page">{self.sidebar(current)}<main class="fl-main fl-doc">'
                f'{self.pager(current, "top")}{body}{self.pager(current, "bottom")}</main></body></html>\n')

    def write_shell(self, href: str, body: str) -> Path:
        current = self.page(href)
        return self._write(current, self.shell(current, body))

    # -- links -------------------------------------------------------------------------------
    def _source_dir(self, current: Page) -> str:
        for src, href in self.sources.items():
            if href == current.href:
                return posixpath.dirname(src)
        return posixpath.dirname(current.href)

    def rewrite_links(self, current: Page, body: str) -> str:
        """Point links at sources (.md, .ipynb) to their pages; copy other local targets beside."""
        here = self._source_dir(current)

        def fix(m: re.Match) -> str:
            attr, quote, url = m.group(1), m.group(2), m.group(3)
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^#|^/|^$", url):
                return m.group(0)
            path, sep, frag = url.partition("#")
            path_plain = _html.unescape(path).split("?", 1)[0]
            target = posixpath.normpath(posixpath.join(here, path_plain))
            if target in self.sources:
                new = re.sub(r"\.(md|ipynb)$", ".html", path)
                return f"{attr}={quote}{new}{sep}{frag}{quote}"
            src = (self.source / target)
            if not target.startswith("..") and src.is_file():
                dest = self.out / target
                dest.parent.mkdir(parents=True, exist_ok=True)
                if not dest.exists():
                    shutil.copyfile(src, dest)
            return m.group(0)

        return re.sub(r'\b(href|src)=(["\'])([^"\']*)\2', fix, body)

    def _write(self, current: Page, body: str) -> Path:
        path = self.out / current.href
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_atomic(path, self.rewrite_links(current, body))


# -- the landing page ------------------------------------------------------------------------
INTRO = (
    "flowlab is a reference for diffusion and flow-matching <em>timestep conventions</em>. "
    "diffusers, SD3 and Flux run time as $\\sigma$ from 1 (noise) to 0 (data); Hunyuan3D-2's shape model, "
    "SiT and the flow-matching literature run $t$ from 0 (noise) to 1 (data). The same Euler line "
    "$x' = x + (s' - s)\\,v$ then means different things, and ports get signs and endpoints wrong. "
    "Each notebook below derives one piece (SymPy), runs it (torch), and checks it: every check is a "
    "claim that this tour re-ran and lists in the verification table.")


def format_measured(kind: str, error: float | None, tol: float | None, passed: bool) -> tuple[str, str]:
    """(measured, limit) as the verification table shows them for a claim of ``kind``."""
    if kind == "exact":
        return ("exact" if passed else "does not hold"), "&mdash;"
    if error is None:
        return "not measured", "-" if tol is None else f"{tol:g}"
    if kind == "ratio":
        return f"ratio {error:.3g}", f"&le; {tol:g}"
    if kind == "fraction":
        return f"fraction {error:.3g}", f"&le; {tol:g}"
    return f"{kind} {error:.2e}", f"&le; {tol:.0e}"


def landing_body(site: Site, runs: list, claims: list, summaries: dict, *, interrupted: bool,
                 total: int) -> str:
    """The landing page: what flowlab is, the reading order, the verification table per notebook."""
    def e(text: str) -> str:
        return _html.escape(text, quote=False)

    by_nb: dict[str, list] = {}
    for c in claims:
        by_nb.setdefault(c.notebook, []).append(c)
    run_of = {r.notebook: r for r in runs}
    out = ['<h1>flowlab tour</h1>', f'<p class="fl-lead">{INTRO}</p>']
    n_pass = sum(c.passed for c in claims)
    failed_nbs = [r for r in runs if r.error]
    status = (f'<span class="fl-pass">all {n_pass} claims passed</span>' if claims and n_pass == len(claims)
              and not failed_nbs else
              f'<span class="fl-fail">{len(claims) - n_pass} of {len(claims)} claims failed, '
              f'{len(failed_nbs)} notebook(s) broke</span>')
    ran = sum(1 for r in runs if r.status != "not run")
    out.append(f"<p>This build ran {ran} of {total} notebooks: {status}.</p>")
    if interrupted:
        done = ", ".join(e(r.notebook) for r in runs if r.status in ("ran", "failed")) or "none"
        todo = ", ".join(e(r.notebook) for r in runs if r.status == "not run") or "none"
        out.append(f'<div class="fl-banner"><strong>Interrupted.</strong> The tour was stopped before it '
                   f'finished. Notebooks that ran: {done}. Not run: {todo}. Run <code>flowlab tour</code> '
                   'again for a complete build.</div>')
    notation = [pg for pg in site.pages if pg.section == "start" and pg.href != "index.html"]
    out.append("<h2>Reading order</h2>")
    if notation:
        links = ", ".join(f'<a href="{pg.href}">{e(pg.title)}</a>' for pg in notation)
        out.append(f"<p>Start with the {links} page: which symbol means what, in which convention. "
                   "Then read the notebooks in order; each goes equation &rarr; one flowlab call &rarr; a "
                   "checked claim &rarr; the pitfall it guards against.</p>")
    out.append('<table class="fl-reading"><thead><tr><th>#</th><th>notebook</th><th>what it shows</th>'
               '<th>reading time</th><th>claims passed</th></tr></thead><tbody>')
    for pg in (p for p in site.pages if p.section == "notebooks"):
        name = pg.href.rsplit("/", 1)[-1][:-5] + ".ipynb"
        s = summaries.get(name)
        r = run_of.get(name)
        cl = by_nb.get(name, [])
        ok = sum(c.passed for c in cl)
        if r is None or r.status == "not run":
            verdict = '<span class="fl-muted">not run</span>'
        elif r.error:
            verdict = f'<span class="fl-fail">{ok} of {len(cl)}; notebook failed</span>'
        else:
            verdict = f'<span class="{"fl-pass" if ok == len(cl) else "fl-fail"}">{ok} of {len(cl)}</span>'
        purpose = re.sub(r"`([^`]+)`", r"<code>\1</code>", e(s.purpose)) if s else '<span class="fl-muted">(could not be read)</span>'
        minutes = f"{s.minutes} min" if s else "-"
        out.append(f'<tr><td>{e(pg.number)}</td><td><a href="{pg.href}">{e(pg.title)}</a></td><td>{purpose}</td>'
                   f'<td class="fl-time">{minutes}</td><td class="fl-claims">{verdict}</td></tr>')
    out.append("</tbody></table>")
    out.append(f'<p class="fl-muted">Reading times are {READING_TIME_RULE}.</p>')
    extra = [pg for pg in site.pages if pg.section in ("exercises", "guides")]
    if extra:
        out.append("<h2>Exercises and guides</h2><ul>")
        out += [f'<li><a href="{pg.href}">{e(pg.title)}</a></li>' for pg in extra]
        out.append("</ul>")
    out.append("<h2>Verification</h2><p>Every claim the notebooks made in this run, grouped per notebook "
               "(click to open). <em>exact</em>: holds exactly (a symbolic identity, an equal count); "
               "<em>ratio</em> and <em>fraction</em>: the measured quotient or share against its bound; "
               "<em>abs error</em>, <em>rel error</em>, <em>error</em>: a measured difference against its "
               "tolerance.</p>")
    for r in runs:
        cl = by_nb.get(r.notebook, [])
        ok = sum(c.passed for c in cl)
        bad = bool(r.error) or ok < len(cl)
        head = f"{e(r.notebook)} &mdash; "
        if r.status == "not run":
            head += '<span class="fl-muted">not run (interrupted)</span>'
        else:
            head += f'<span class="{"fl-fail" if bad else "fl-pass"}">{ok} of {len(cl)} claims passed</span>'
            head += f' <span class="fl-muted">({r.seconds:.0f} s)</span>'
        rows = []
        for c in cl:
            kind = getattr(c, "kind", None) or "error"
            measured, limit = format_measured(kind, c.error, c.tol, c.passed)
            res = '<span class="fl-pass">PASS</span>' if c.passed else '<span class="fl-fail">FAIL</span>'
            rows.append(f'<tr><td>{e(c.claim)}</td><td><span class="fl-kind">{e(kind)}</span></td>'
                        f'<td class="fl-num">{measured}</td><td class="fl-num">{limit}</td><td>{res}</td></tr>')
        if r.error:
            rows.append(f'<tr><td colspan="4">the notebook runs to the end: <strong>{e(r.error)}</strong></td>'
                        '<td><span class="fl-fail">FAIL</span></td></tr>')
        table = ('<table><thead><tr><th>claim</th><th>kind</th><th>measured</th><th>limit</th><th>result</th>'
                 f'</tr></thead><tbody>{"".join(rows)}</tbody></table>') if rows else \
            '<p class="fl-muted" style="margin:8px 12px">no claims recorded</p>'
        out.append(f'<details class="fl-group"{" open" if bad and r.status != "not run" else ""}>'
                   f'<summary>{head}</summary>{table}</details>')
    return "\n".join(out)
