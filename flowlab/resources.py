"""Where flowlab's files live, installed from a wheel or run from a checkout.

Package code finds every file it reads at run time through these functions and never reads ``tests/``:

* :func:`notebooks_dir`: the tutorial (numbered notebooks, ``exercises/``, NOTATION.md, LECTURERS_GUIDE.md).
  A wheel carries a copy made at build time in ``flowlab/tutorial/``; a checkout uses the top-level
  ``notebooks/`` (the one source; a test checks that the build copy is identical).
* :func:`data_dir`: fixtures that package code reads (``schedulers/``: scheduler tables written by
  tools/make_scheduler_fixtures.py; ``hy3dgen/``: hy3dgen parity fixtures written by
  tools/make_reference_fixtures.py), shipped as package data in ``flowlab/data/``.
"""
from __future__ import annotations

from pathlib import Path

from .errors import FlowlabError

__all__ = ["PACKAGE_DIR", "notebooks_dir", "data_dir", "tutorial_candidates", "tutorial_files", "copy_tutorial"]

PACKAGE_DIR = Path(__file__).resolve().parent


def tutorial_candidates() -> tuple[Path, Path]:
    """Where the tutorial may be, in order: the wheel's copy ``flowlab/tutorial``, a checkout's ``notebooks/``."""
    return PACKAGE_DIR / "tutorial", PACKAGE_DIR.parent / "notebooks"


def notebooks_dir() -> Path:
    """The folder holding the tutorial notebooks: the wheel's copy, else the checkout's ``notebooks/``."""
    for candidate in tutorial_candidates():
        if (candidate / "NOTATION.md").is_file():
            return candidate
    raise FlowlabError(f"flowlab's tutorial notebooks are missing (looked in {PACKAGE_DIR / 'tutorial'} and "
                       f"{PACKAGE_DIR.parent / 'notebooks'}): reinstall flowlab (pip install --force-reinstall "
                       "flowlab) or run from a git checkout")


def data_dir(name: str) -> Path:
    """``flowlab/data/<name>``, e.g. ``data_dir("schedulers")``; a clear error if the package data is missing."""
    path = PACKAGE_DIR / "data" / name
    if not path.is_dir():
        raise FlowlabError(f"flowlab's package data folder {path} is missing: reinstall flowlab "
                           "(pip install --force-reinstall flowlab)")
    return path


#: The files of the tutorial: numbered notebooks, solved exercises, the two guides, nbval's sanitize file.
TUTORIAL_PATTERNS = ("*.ipynb", "exercises/*.ipynb", "NOTATION.md", "LECTURERS_GUIDE.md", "sanitize.cfg")


def tutorial_files(source: Path | None = None) -> list[Path]:
    """The tutorial's files, relative to ``source`` (default :func:`notebooks_dir`), sorted."""
    root = notebooks_dir() if source is None else Path(source)
    return sorted({p.relative_to(root) for pattern in TUTORIAL_PATTERNS for p in root.glob(pattern) if p.is_file()})


def _symlink_on_path(path: Path, stop: Path) -> Path | None:
    """The first symbolic link among ``path`` and its parents up to (and including) ``stop``."""
    for p in (path, *path.parents):
        if p.is_symlink():
            return p
        if p == stop:
            break
    return None


def copy_tutorial(out: str | Path, *, force: bool = False) -> list[Path]:
    """Copy the tutorial (:func:`notebooks_dir`) into the folder ``out`` for editing; return the written files.

    Checks everything before writing anything: ``out`` must be a folder (or not exist, with an existing
    parent); a file that is already there is overwritten only with ``force``; a symbolic link as ``out`` or
    as any target (file or subfolder) is refused even with ``force``, since writing would change a file
    elsewhere. Each file is written atomically.
    """
    from .io import write_atomic

    source = notebooks_dir()
    out = Path(out)
    if out.is_symlink():
        raise FlowlabError(f"{str(out)!r} is a symbolic link; give a real folder to copy the tutorial into")
    if out.exists() and not out.is_dir():
        raise FlowlabError(f"{str(out)!r} is a file; give a folder to copy the tutorial into")
    if not out.exists() and str(out.parent) and not out.parent.is_dir():
        raise FlowlabError(f"cannot create {str(out)!r}: its parent folder {str(out.parent)!r} does not exist")
    if out.resolve() == source.resolve():
        raise FlowlabError(f"{str(out)!r} is flowlab's own copy of the tutorial; give another folder")
    files = tutorial_files(source)
    linked = sorted({str(link) for rel in files if (link := _symlink_on_path(out / rel, out)) is not None})
    if linked:
        raise FlowlabError(f"refusing to write through symbolic link(s): {', '.join(linked)}; remove them or "
                           "choose another folder")
    existing = [str(out / rel) for rel in files if (out / rel).exists()]
    if existing and not force:
        raise FlowlabError(f"{len(existing)} file(s) already exist ({', '.join(existing[:3])}"
                           f"{', ...' if len(existing) > 3 else ''}); they may hold your edits. Choose another "
                           "folder or pass force=True (--force) to overwrite them")
    written = []
    for rel in files:
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, (source / rel).read_bytes())
        written.append(target)
    return written
