"""Build hook: the wheel carries the tutorial as ``flowlab/tutorial``, copied from ``notebooks/`` at build time.

``notebooks/`` at the top level stays the one source (tests/test_packaging.py checks that a built wheel's
copy is identical); the copy goes into the build folder only, never into the source tree. Everything
else about the package is in pyproject.toml.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SOURCE = ROOT / "notebooks"
#: What the tutorial is made of; anything else in notebooks/ (checkpoints, caches, scratch files) stays out.
PATTERNS = ("*.ipynb", "exercises/*.ipynb", "NOTATION.md", "LECTURERS_GUIDE.md", "sanitize.cfg")  # = flowlab.resources.TUTORIAL_PATTERNS (a test checks)


def tutorial_files(source: Path = SOURCE) -> list[Path]:
    """The files of ``notebooks/`` that ship, relative to it, sorted."""
    return sorted({p.relative_to(source) for pattern in PATTERNS for p in source.glob(pattern) if p.is_file()})


class BuildPyWithTutorial(build_py):
    """``build_py`` that also copies notebooks/ into ``<build_lib>/flowlab/tutorial``."""

    def run(self) -> None:
        super().run()
        files = tutorial_files()
        if not (SOURCE / "NOTATION.md").is_file() or not any(f.suffix == ".ipynb" for f in files):
            raise SystemExit(f"setup.py: the tutorial is missing from {SOURCE} (NOTATION.md and the notebooks); "
                             "build from a git checkout or an sdist of flowlab")
        target = Path(self.build_lib) / "flowlab" / "tutorial"
        if target.exists():
            shutil.rmtree(target)
        for rel in files:
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(SOURCE / rel, target / rel)


setup(cmdclass={"build_py": BuildPyWithTutorial})
