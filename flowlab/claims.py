"""Verified claims: the checks notebooks make, printed deterministically and collected by the tour.

A notebook states a claim and the measured error; :func:`claim` prints one stable line (PASS and
the tolerance, never the raw float, so nbval can compare it on any machine) and raises
``AssertionError`` when the claim fails. When the environment variable ``FLOWLAB_CLAIMS_FILE`` is
set (``flowlab tour`` sets it), each claim is also appended to that file as one JSON line with the
exact error, so the tour can print its verification table.
"""
from __future__ import annotations

import json
import math
import os

__all__ = ["claim", "claim_exact", "CLAIMS_FILE_ENV", "NOTEBOOK_ENV"]

CLAIMS_FILE_ENV = "FLOWLAB_CLAIMS_FILE"
NOTEBOOK_ENV = "FLOWLAB_NOTEBOOK"


def _record(statement: str, error: float | None, tol: float | None, passed: bool) -> None:
    path = os.environ.get(CLAIMS_FILE_ENV)
    if not path:
        return
    row = {"notebook": os.environ.get(NOTEBOOK_ENV, ""), "claim": statement,
           "error": error, "tol": tol, "passed": passed}
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")


def claim(statement: str, error: float, tol: float) -> float:
    """Check ``error <= tol`` and report it. Returns ``error`` (a float).

    ``error`` is a measured non-negative number (a max abs difference, a metric gap ...);
    NaN or inf always fails.
    """
    error = float(error)
    tol = float(tol)
    passed = math.isfinite(error) and error <= tol
    _record(statement, error, tol, passed)
    if not passed:
        raise AssertionError(f"claim failed: {statement}: measured {error:.3e}, tolerance {tol:.0e}")
    print(f"PASS  {statement}  (error <= {tol:.0e})")
    return error


def claim_exact(statement: str, holds: bool) -> None:
    """A claim that holds exactly or not at all (a symbolic identity, an equal count)."""
    holds = bool(holds)
    _record(statement, 0.0 if holds else None, 0.0, holds)
    if not holds:
        raise AssertionError(f"claim failed: {statement}")
    print(f"PASS  {statement}  (exact)")
