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

__all__ = ["PACKAGE_DIR", "notebooks_dir", "data_dir"]

PACKAGE_DIR = Path(__file__).resolve().parent


def notebooks_dir() -> Path:
    """The folder holding the tutorial notebooks: the wheel's copy, else the checkout's ``notebooks/``."""
    for candidate in (PACKAGE_DIR / "tutorial", PACKAGE_DIR.parent / "notebooks"):
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
