"""Many claims, one compact table: :func:`claim_table` checks each claim and prints a grid.

A notebook that checks a family of identities (every conversion, every dtype) would otherwise print one
PASS line per claim. Here each entry is still a full :func:`flowlab.claims.claim` (recorded for the tour
under its own statement, raising ``AssertionError`` when it fails), but the per-claim lines are replaced
by one table: a row per ``row`` label, a column per ``column`` label, each cell the tolerance met
(``exact`` for exact claims). Only deterministic text is printed: tolerances, never measured floats.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Iterable

from ..claims import claim, claim_exact
from ..errors import FlowlabError

__all__ = ["Check", "claim_table"]


@dataclass(frozen=True)
class Check:
    """One claim placed in a table.

    ``statement``: what the tour records (as for :func:`claim`); ``row`` / ``column``: where the cell goes;
    ``error`` and ``tol``: a measured error and its tolerance, or ``tol=None`` for an exact claim with
    ``error`` a bool (True = holds).
    """

    statement: str
    row: str
    column: str
    error: float | bool
    tol: float | None = None


def claim_table(checks: Iterable[Check], *, corner: str = "") -> None:
    """Check every claim, then print one table of the results (rows and columns in first-seen order)."""
    checks = list(checks)
    if not checks:
        raise FlowlabError("claim_table: no checks given")
    cells: dict[tuple[str, str], str] = {}
    rows: list[str] = []
    cols: list[str] = []
    for c in checks:
        if (c.row, c.column) in cells:
            raise FlowlabError(f"claim_table: two checks for row {c.row!r}, column {c.column!r}")
        with contextlib.redirect_stdout(io.StringIO()):  # the table replaces the per-claim lines
            if c.tol is None:
                claim_exact(c.statement, bool(c.error))
            else:
                claim(c.statement, float(c.error), c.tol)
        cells[(c.row, c.column)] = "exact" if c.tol is None else f"<= {c.tol:.0e}"
        rows += [c.row] if c.row not in rows else []
        cols += [c.column] if c.column not in cols else []
    width0 = max(len(corner), *(len(r) for r in rows))
    widths = [max(len(col), *(len(cells.get((r, col), "-")) for r in rows)) for col in cols]
    print(f"PASS  all {len(checks)} claims of this table")
    print("  ".join([corner.ljust(width0)] + [col.ljust(w) for col, w in zip(cols, widths)]).rstrip())
    print("  ".join(["-" * width0] + ["-" * w for w in widths]))
    for r in rows:
        print("  ".join([r.ljust(width0)] + [cells.get((r, col), "-").ljust(w) for col, w in zip(cols, widths)]).rstrip())
