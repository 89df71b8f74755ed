"""Tiny helpers for tests that build throwaway notebooks."""
from __future__ import annotations

from pathlib import Path

import nbformat


def write_notebook(path: Path, cells: list[tuple[str, str | None]]) -> Path:
    """Write a notebook of code cells ``(source, stored stdout or None)``, as if executed."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for i, (src, out) in enumerate(cells, start=1):
        cell = nbformat.v4.new_code_cell(src, execution_count=i)
        if out is not None:
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=out)]
        nb.cells.append(cell)
    nbformat.write(nb, path)
    return path
