"""The tour's site, built with Sphinx, MyST-NB and sphinx-book-theme (install ``flowlab[site]``).

:func:`build_site` lays out a Sphinx source folder inside the build folder (``.site-src/``: the
executed notebooks, the Markdown pages, the solved exercises, ``api.md`` and a generated landing
page ``index.md``), then runs two Sphinx builds from it: English into the build folder and Chinese
(``language = "zh_CN"``, the catalogs in ``locale/``) into ``zh/``. Sphinx reads only what changed
since the last build (its doctrees stay in ``.doctrees/``), so an unchanged second tour is quick.

MathJax 3 comes from the vendored copy in ``static/mathjax`` (3.2.2 from the npm package ``mathjax``,
Apache-2.0, see ``static/mathjax/LICENSE``): no CDN, and ``file://`` pages typeset. Search is Sphinx's
own (``searchindex.js``, loaded by a script tag, so it works offline too).

The build folder is flowlab's: :func:`claim_out_dir` creates it with a marker file and refuses a
non-empty folder without one, and a symbolic link anywhere inside it, so that nothing flowlab did not
write is overwritten or deleted.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from ...errors import FlowlabError
from .landing import LANGS, NotebookSummary, landing_page, notebook_summary

__all__ = ["STATIC", "MARKER", "build_site", "claim_out_dir", "notebook_summary", "NotebookSummary",
           "prepare_sources", "other_sources", "run_sphinx", "INSTALL_HINT"]

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
LOCALE = HERE / "locale"
PAGES = HERE / "pages"
MARKER = ".flowlab-tour"
SRC, DOCTREES = ".site-src", ".doctrees"
INSTALL_HINT = "the tour's site needs Sphinx, MyST-NB and sphinx-book-theme: pip install 'flowlab[site]'"
ASSET_SUFFIXES = {".png", ".svg", ".jpg", ".jpeg", ".gif", ".webp", ".pdf", ".csv", ".txt"}
EDITIONS = {  # language -> (output subfolder, the other edition's label, its subfolder seen from here, its code)
    "en": ("", "中文", "zh/", "zh-CN", "中文版"),
    "zh_CN": ("zh", "English", "../", "en", "English edition"),
}


def claim_out_dir(out: Path) -> None:
    """Create ``out`` (with the marker file), or accept it if it is empty or was written by the tour.

    Refuses a folder that holds files but no marker (someone else's folder) and any symbolic link
    inside the build folder (the builds would write through it), so the tour never overwrites or
    deletes what it did not make.
    """
    if out.is_symlink() and not out.exists():
        raise FlowlabError(f"the build folder {out} is a symbolic link to nothing; pass --out a real folder")
    if out.exists() and not out.is_dir():
        raise FlowlabError(f"the build folder {out} exists and is not a folder; pass --out a new or empty folder")
    if out.is_dir() and not (out / MARKER).is_file() and any(out.iterdir()):
        raise FlowlabError(f"{out} is not empty and was not written by flowlab tour (it has no {MARKER} file): "
                           "the tour never overwrites or deletes files it did not make; pass --out a new or "
                           "empty folder, or move what is in it")
    try:
        out.mkdir(parents=True, exist_ok=True)
        for root, dirs, files in os.walk(out):
            for name in dirs + files:
                p = Path(root) / name
                if p.is_symlink():
                    raise FlowlabError(f"{p} is a symbolic link inside the build folder; flowlab tour writes only "
                                       "files it made and will not follow it: remove the link or pass another --out")
        (out / MARKER).write_text("This folder is written by `flowlab tour`; the tour may replace anything in it.\n")
    except OSError as exc:
        raise FlowlabError(f"cannot write to the build folder {out} ({exc.strerror or exc}); "
                           "pass --out a writable folder") from None


def other_sources(source: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """Markdown pages, exercise notebooks (shown with their stored outputs) and files pages point at."""
    def keep(p: Path) -> bool:
        return ".ipynb_checkpoints" not in p.parts and not p.name.startswith(".") and p.name != "README.md"
    mds = [p for pat in ("*.md", "*/*.md") for p in sorted(source.glob(pat)) if keep(p)]
    nbs = [p for p in sorted(source.glob("*/*.ipynb")) if keep(p)]
    assets = [p for pat in ("*", "*/*") for p in sorted(source.glob(pat))
              if p.is_file() and p.suffix.lower() in ASSET_SUFFIXES and keep(p)]
    return mds, nbs, assets


def safe_name(rel: str) -> str:
    """The path a source gets in the site: each part kept when it is plain ([A-Za-z0-9_.-]), else
    replaced by a plain slug and a hash, so no file name reaches a page's HTML or JavaScript as is
    (Sphinx writes the page name into a JavaScript string and the theme into links)."""
    parts = []
    for part in rel.split("/"):
        stem, dot, suffix = part.rpartition(".") if "." in part else (part, "", "")
        if re.fullmatch(r"[A-Za-z0-9_.-]+", stem):
            parts.append(part)
            continue
        import hashlib
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("_")[:60] or "page"
        parts.append(f"{slug}-{hashlib.sha1(stem.encode()).hexdigest()[:8]}{dot}{suffix}")
    return "/".join(parts)


def _write_if_changed(path: Path, data: bytes, written: set[Path]) -> None:
    written.add(path)
    if path.is_file() and path.read_bytes() == data:
        return  # unchanged: Sphinx will not read it again
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _figure_alt(nb: Any, name: str) -> None:
    """Alt text for every figure: the description the tour's kernel wrote (:mod:`.figure_alt`), else
    one naming the cell; MyST-NB reads it from the cell's ``mystnb.image.alt``."""
    from .figure_alt import PREFIX
    for i, cell in enumerate(nb.cells, 1):
        if cell.cell_type != "code":
            continue
        texts = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if not any(k.startswith("image/") for k in data):
                continue
            plain = data.get("text/plain", "")
            plain = plain if isinstance(plain, str) else "".join(plain)
            texts.append(plain[len(PREFIX):].strip() if plain.startswith(PREFIX) else "")
        if texts:
            described = " ".join(t for t in texts if t)
            first = next((ln.strip("# ").strip() for ln in cell.source.splitlines() if ln.strip()), "")
            alt = described or f"Figure drawn by cell {i} of {name} ({first[:80]})"
            cell.metadata.setdefault("mystnb", {}).setdefault("image", {})["alt"] = alt


def _translated_titles(summaries: dict, lang: str) -> dict[str, str]:
    """A notebook's title in ``lang`` where its catalog translates its first heading."""
    found = {}
    for name, summary in summaries.items():
        po = LOCALE / lang / "LC_MESSAGES" / f"{Path(name).stem}.po"
        if not po.is_file() or not summary.title:
            continue
        from babel.messages.pofile import read_po
        with open(po, "rb") as fh:
            for m in read_po(fh):
                if m.id and m.string and not m.fuzzy and re.sub(r"^\d+\s*[·.:-]\s*", "", m.id) == summary.title:
                    found[name] = re.sub(r"^\d+\s*[·.:-]\s*", "", m.string)
                    break
    return found


def _placeholder(path: Path, message: str) -> bytes:
    title = re.sub(r"[^\w .,:()-]+", "_", path.stem)  # the heading is MyST source: no markup from a name
    return f"# {title}\n\n```{{warning}}\n{message}\n```\n".encode()


def _notebook_page(nb: Any, name: str, note: str = "") -> bytes:
    import copy

    import nbformat
    nb = copy.deepcopy(nb)
    _figure_alt(nb, name)
    if note:  # after the first cell (the title), so the page keeps its heading as title
        nb.cells.insert(1 if nb.cells else 0, nbformat.v4.new_markdown_cell(f"```{{note}}\n{note}\n```"))
    for cell in nb.cells:  # nothing that differs between a run and the cached copy of it
        cell.pop("id", None)
        cell.metadata.pop("execution", None)
    nb.nbformat_minor = min(nb.get("nbformat_minor", 4), 4)
    return nbformat.writes(nb).encode()


def prepare_sources(out: Path, source: Path, notebooks: list[Path], runs: list | None = None,
                    claims: list | None = None, executed: dict | None = None, *, interrupted: bool = False) -> Path:
    """Write the Sphinx source folder ``out/.site-src`` and return it.

    ``notebooks`` are the tour's notebooks in reading order; ``executed`` maps a notebook's file name
    to its executed notebook; one that did not run gets a placeholder page with the reason. Without
    ``runs`` (the translation check) the notebooks are taken as they are stored.
    """
    from ..tour import read_notebook
    src = out / SRC
    written: set[Path] = set()
    executed = executed or {}
    run_of = {r.notebook: r for r in (runs or [])}
    summaries = {}
    pairs = []
    for path in notebooks:
        r = run_of.get(path.name)
        nb = executed.get(path.name)
        if nb is None and runs is None:
            try:
                nb = read_notebook(path)
            except FlowlabError:
                nb = None
        safe = safe_name(path.name)
        stem = safe[: -len(".ipynb")]
        if nb is not None:
            summaries[path.name] = notebook_summary(nb)
            _write_if_changed(src / safe, _notebook_page(nb, path.name), written)
        elif r is not None and r.status == "unreadable":
            _write_if_changed(src / f"{stem}.md", _placeholder(
                path, f"This notebook could not be read, so the tour did not run it: {r.error}"), written)
        else:
            _write_if_changed(src / f"{stem}.md", _placeholder(
                path, "The tour was interrupted before this notebook ran. Run flowlab tour again for a "
                      "complete build."), written)
        pairs.append((path.name, stem))
    mds, exercise_nbs, assets = other_sources(source)
    start, extra = [], []
    for p in mds:
        rel = safe_name(p.relative_to(source).as_posix())
        _write_if_changed(src / rel, p.read_bytes(), written)
        (start if p.stem.upper() == "NOTATION" else extra).append(rel)
    for p in exercise_nbs:
        rel = safe_name(p.relative_to(source).as_posix())
        try:
            body = _notebook_page(read_notebook(p), rel, "A solved exercise notebook, shown with its stored "
                                  "outputs (nbval checks them); the tour does not execute it.")
        except FlowlabError as exc:
            body = _placeholder(p, str(exc))
            rel = rel[: -len(".ipynb")] + ".md"
        _write_if_changed(src / rel, body, written)
        extra.insert(sum(1 for e in extra if e.endswith(".ipynb")), rel)
    for p in assets:
        _write_if_changed(src / safe_name(p.relative_to(source).as_posix()), p.read_bytes(), written)
    _write_if_changed(src / "api.md", (PAGES / "api.md").read_bytes(), written)
    for po in LOCALE.rglob("*.po"):
        _write_if_changed(src / "locale" / po.relative_to(LOCALE), po.read_bytes(), written)
    index = landing_page(pairs, summaries, runs or [], claims or [], interrupted=interrupted,
                         total=len(notebooks), start=start, extra=extra, api=True,
                         titles={"zh_CN": _translated_titles(summaries, "zh_CN")})
    _write_if_changed(src / "index.md", index.encode(), written)
    for p in sorted(src.rglob("*"), reverse=True):  # what an earlier build wrote and this one did not
        if p.is_file() and p not in written and p.suffix != ".mo":
            p.unlink()
        elif p.is_dir() and not any(p.iterdir()):
            p.rmdir()
    return src


def _sphinx_command(src: Path, outdir: Path, doctrees: Path, lang: str, builder: str, force: bool) -> list[str]:
    sub, label, root, code, title = EDITIONS[lang]
    cmd = [sys.executable, "-m", "sphinx", "-b", builder, "-q", "--no-color", "-c", str(HERE), "-d", str(doctrees),
           "-w", str(doctrees / "warnings.log"), "-D", f"language={lang}", "-t", f"lang_{lang}",
           "-A", f"flowlab_other_lang={label}", "-A", f"flowlab_other_root={root}",
           "-A", f"flowlab_other_code={code}", "-A", f"flowlab_other_title={title}"]
    return cmd + (["-E", "-a"] if force else []) + [str(src), str(outdir)]


def run_sphinx(src: Path, jobs: list[tuple[Path, Path, str]], *, builder: str = "html",
               force: bool = False) -> dict[str, list[str]]:
    """Sphinx builds of ``src``, one process per (outdir, doctrees, language), run side by side.

    Returns each build's warnings (also in ``<doctrees>/warnings.log``); a build that fails raises.
    """
    import importlib.util
    for module in ("sphinx", "myst_nb", "sphinx_book_theme"):
        if importlib.util.find_spec(module) is None:
            raise FlowlabError(f"{INSTALL_HINT} ({module} is missing)")
    procs = []
    for outdir, doctrees, lang in jobs:
        doctrees.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        procs.append((lang, doctrees, subprocess.Popen(_sphinx_command(src, outdir, doctrees, lang, builder, force),
                                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                       text=True, env=env)))
    result, failed = {}, []
    for lang, doctrees, proc in procs:
        output, _ = proc.communicate()
        log = doctrees / "warnings.log"
        result[lang] = [ln for ln in (log.read_text(encoding="utf-8") if log.exists() else "").splitlines() if ln.strip()]
        if proc.returncode != 0:
            tail = [ln for ln in output.splitlines() if ln.strip()][-3:]
            failed.append(f"{lang}: " + " / ".join(tail))
    if failed:
        raise FlowlabError("the Sphinx build of the site failed (" + "; ".join(failed) + f"); its sources are in {src}")
    return result


def build_site(out: Path, source: Path, notebooks: list[Path], runs: list, claims: list, executed: dict, *,
               interrupted: bool = False, force: bool = False, languages: tuple[str, ...] = LANGS) -> dict[str, list[str]]:
    """Write the sources and build every edition; returns each edition's Sphinx warnings."""
    src = prepare_sources(out, source, notebooks, runs, claims, executed, interrupted=interrupted)
    jobs = [(out / EDITIONS[lang][0] if EDITIONS[lang][0] else out, out / DOCTREES / lang, lang) for lang in languages]
    return run_sphinx(src, jobs, force=force)
