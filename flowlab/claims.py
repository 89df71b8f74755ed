"""Verified claims: the checks notebooks make, printed deterministically and collected by the tour.

A notebook states a claim and the measured error; :func:`claim` prints one stable line (PASS and
the tolerance, never the raw float, so nbval can compare it on any machine) and raises
``AssertionError`` when the claim fails. When the environment variable ``FLOWLAB_CLAIMS_FILE`` is
set (``flowlab tour`` sets it), each claim is also appended to that file as one JSON line with the
exact error, so the tour can print its verification table.

Each claim also records its ``kind``, which says what the measured number is, so the tour's pages
can label it: ``"exact"`` (holds exactly: a symbolic identity, an equal count; tolerance 0),
``"abs error"`` / ``"rel error"`` (an absolute / relative difference), ``"error"`` (a measured gap
of another sort), ``"ratio"`` (a quotient compared with a bound) or ``"fraction"`` (a share of
items, 0 to 1). When ``kind`` is not given it is inferred: tolerance 0 -> exact; a statement that
mentions "ratio" or ends with a parenthesis that holds a quotient ("... (SW2 / seed noise)") -> ratio;
"fraction" -> fraction; "relative" -> rel error; "abs" (max abs) -> abs error; otherwise error.
"""
from __future__ import annotations

import json
import math
import re
import os

__all__ = ["claim", "claim_exact", "infer_kind", "CLAIM_KINDS", "CLAIMS_FILE_ENV", "NOTEBOOK_ENV"]

CLAIMS_FILE_ENV = "FLOWLAB_CLAIMS_FILE"
NOTEBOOK_ENV = "FLOWLAB_NOTEBOOK"
CLAIM_KINDS = ("exact", "abs error", "rel error", "error", "ratio", "fraction")


def _trailing_parenthesis(text: str) -> str:
    """The balanced ``(...)`` group a statement ends with, or ""."""
    text = text.rstrip()
    if not text.endswith(")"):
        return ""
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(text[i], 0)
        if depth == 0:
            return text[i:]
    return ""


def infer_kind(statement: str, tol: float | None) -> str:
    """The kind of a claim made without an explicit ``kind`` (see the module docstring)."""
    if tol is not None and tol == 0:
        return "exact"
    text = statement.lower()
    if "ratio" in text or " / " in _trailing_parenthesis(text):
        return "ratio"
    if "fraction" in text:
        return "fraction"
    if "relative" in text:
        return "rel error"
    if re.search(r"\babs\b|absolute", text):
        return "abs error"
    return "error"


def _check_kind(kind: str | None, statement: str, tol: float | None) -> str:
    if kind is None:
        return infer_kind(statement, tol)
    if kind not in CLAIM_KINDS:
        raise ValueError(f"claim kind {kind!r} is not one of {', '.join(CLAIM_KINDS)}; "
                         "leave kind out to let flowlab infer it")
    return kind


def _record(statement: str, error: float | None, tol: float | None, passed: bool, kind: str) -> None:
    path = os.environ.get(CLAIMS_FILE_ENV)
    if not path:
        return
    row = {"notebook": os.environ.get(NOTEBOOK_ENV, ""), "claim": statement,
           "error": error, "tol": tol, "passed": passed, "kind": kind}
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")


def claim(statement: str, error: float, tol: float, *, kind: str | None = None) -> None:
    """Check ``error <= tol`` and report it with one stable line. Returns nothing.

    Returning nothing is deliberate: a cell that ends with ``claim(...)`` must not echo the measured
    float as its result, since that number differs in its last digits between CPUs and thread counts
    and nbval compares cell results exactly. The exact value goes to the tour's claims file only.

    ``error`` is a measured non-negative number (a max abs difference, a metric gap, a ratio ...);
    NaN or inf always fails. ``kind`` says what it is (one of :data:`CLAIM_KINDS`; inferred when
    left out); it labels the number in the tour's pages and does not change the printed line.
    """
    error = float(error)
    tol = float(tol)
    kind = _check_kind(kind, statement, tol)
    passed = math.isfinite(error) and error <= tol
    _record(statement, error, tol, passed, kind)
    if not passed:
        raise AssertionError(f"claim failed: {statement}: measured {error:.3e}, tolerance {tol:.0e}")
    print(f"PASS  {statement}  (error <= {tol:.0e})")


def claim_exact(statement: str, holds: bool) -> None:
    """A claim that holds exactly or not at all (a symbolic identity, an equal count)."""
    holds = bool(holds)
    _record(statement, 0.0 if holds else None, 0.0, holds, "exact")
    if not holds:
        raise AssertionError(f"claim failed: {statement}")
    print(f"PASS  {statement}  (exact)")
