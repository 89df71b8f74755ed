"""The machinery every exercise check shares: calling student code safely and answering in words.

A check never raises and never prints a traceback. It returns a :class:`Result` whose text is one
of four kinds:

* ``PASS``: the answer agrees with the truth derived by flowlab (on random inputs, seeded);
* ``not done yet``: the stub is unfilled (it raises ``NotImplementedError``, returns ``None`` or
  ``...``, or the answer is still ``...``);
* ``not yet right``: the answer disagrees; when it equals a known wrong formula the text names the
  misconception behind it (e.g. "that is the noise in this convention"), else it says where it differs;
* ``your code raised ...``: the student's code raised; the text names the exception (first line of
  its message) and, for the usual suspects (shapes, dtypes), what to look at.

In a notebook a check is the last expression of its cell, so IPython shows the text.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import sympy as sp
import torch
from torch import Tensor

__all__ = ["Result", "STATUSES", "NotDone", "Wrong", "StudentError", "exercise", "call", "need",
           "compare_tensor", "Candidate", "canonical_expr"]

#: Result kinds: the answer is right / the stub is unfilled / the answer is wrong / the code raised.
STATUSES = ("pass", "not_done", "wrong", "error")

_HEAD = {"pass": "PASS", "not_done": "not done yet", "wrong": "not yet right", "error": "your code raised an error"}


@dataclass(frozen=True)
class Result:
    """What a check found. ``str(result)`` (and the notebook display) is ``message``.

    Attributes:
        exercise: exercise number (1, 2, ...).
        name: what the student wrote (a function or variable name).
        status: one of :data:`STATUSES`.
        message: the full text shown to the student.
    """

    exercise: int
    name: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return self.message

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # IPython display: the plain message
        p.text(self.message)


class NotDone(Exception):
    """The stub is not filled in yet (raised inside checks)."""


class Wrong(Exception):
    """The answer is wrong; the argument is the explanation shown to the student."""


class StudentError(Exception):
    """The student's code raised; the argument is the explanation shown to the student."""


def _is_unfilled(value: object) -> bool:
    return value is None or value is Ellipsis


def _first_line(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error_hint(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, RuntimeError) and ("must match the size" in text or "broadcast" in text):
        return (" Hint: a shape mismatch. Times come per sample, shape (B,), while x is (B, dim); reshape t to "
                "(B, 1) with t[:, None] (or flowlab.functional.bcast(t, x)) before multiplying.")
    if isinstance(exc, RuntimeError) and "dtype" in text.lower():
        return " Hint: mixed dtypes; keep everything in the dtype of the inputs (x.dtype)."
    if isinstance(exc, (NameError, AttributeError)):
        return " Hint: did you run the setup cell at the top of the notebook (it imports torch, sympy and flowlab)?"
    if isinstance(exc, TypeError) and ("argument" in text or "positional" in text):
        return " Hint: keep the signature of the stub exactly as given."
    return ""


def call(fn: object, *args: Any, what: str) -> Any:
    """Call the student's ``fn(*args)``; an unfilled stub raises :class:`NotDone`, any other exception
    :class:`StudentError` naming it. ``what`` names ``fn`` in the messages."""
    if _is_unfilled(fn):
        raise NotDone(f"`{what}` is still `...`.")
    if not callable(fn):
        raise Wrong(f"`{what}` should be a function, got {type(fn).__name__}.")
    try:
        out = fn(*args)
    except NotImplementedError:
        raise NotDone(f"`{what}` still raises NotImplementedError.") from None
    except Exception as exc:  # any mistake in student code: a short message, never a traceback
        from ..errors import FlowlabError

        limit = 400 if isinstance(exc, FlowlabError) else 160  # flowlab's own messages say what to do
        raise StudentError(f"`{what}` raised {type(exc).__name__}: {_first_line(exc, limit)}."
                           f"{_error_hint(exc)}") from None
    if _is_unfilled(out):
        raise NotDone(f"`{what}` returns {out!r}: fill in the body.")
    return out


def need(value: object, what: str) -> object:
    """An answer variable: ``...`` or ``None`` raises :class:`NotDone`."""
    if _is_unfilled(value):
        raise NotDone(f"`{what}` is still `...`.")
    return value


def _sentence(text: str) -> str:
    """Capitalise a text that starts with an ordinary word ("matches ..."), not one that starts with code
    ("pred_x0 = ...", "flip(model) ...")."""
    first = text.split(" ", 1)[0]
    return text[:1].upper() + text[1:] if re.fullmatch(r"[a-z]{2,}[,:.?]?", first) else text


def exercise(number: int, name: str) -> Callable[[Callable[..., str]], Callable[..., Result]]:
    """Decorator turning a check body (returns the PASS text, raises NotDone / Wrong / StudentError)
    into a check that always returns a :class:`Result`."""
    def wrap(body: Callable[..., str]) -> Callable[..., Result]:
        @functools.wraps(body)
        def check(*args: Any, **kwargs: Any) -> Result:
            head = f"Exercise {number} ({name}): "
            try:
                text = body(*args, **kwargs)
                status = "pass"
            except NotDone as exc:
                status, text = "not_done", f"{exc.args[0]} Replace the stub with your answer and run the cell again."
            except Wrong as exc:
                status, text = "wrong", exc.args[0]
            except StudentError as exc:
                status, text = "error", exc.args[0]
            text = _sentence(text)
            return Result(number, name, status, f"{head}{_HEAD[status]}. {text}")

        check.exercise_number = number  # type: ignore[attr-defined]
        check.exercise_name = name  # type: ignore[attr-defined]
        return check
    return wrap


@dataclass(frozen=True)
class Candidate:
    """A known wrong answer: its output on the check's inputs and the misconception behind it."""

    output: Tensor
    hint: str


def _close(a: Tensor, b: Tensor, tol: float) -> bool:
    if a.shape != b.shape:
        return False
    a64, b64 = a.detach().to("cpu", torch.float64), b.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(a64).all()):
        return bool(torch.equal(torch.isfinite(a64), torch.isfinite(b64))) and bool(
            ((a64 - b64).abs()[torch.isfinite(b64)] <= tol * (1 + b64.abs()[torch.isfinite(b64)])).all())
    return bool(((a64 - b64).abs() <= tol * (1 + b64.abs())).all())


def compare_tensor(got: object, truth: Tensor, candidates: Sequence[Candidate], *, what: str, tol: float = 1e-6,
                   generic_hint: str = "") -> None:
    """Raise :class:`Wrong` unless ``got`` equals ``truth`` (relative-absolute ``tol``); a match with a
    candidate gives its hint. Shapes must agree exactly."""
    if not isinstance(got, Tensor):
        raise Wrong(f"`{what}` returned a {type(got).__name__}; it should return a torch tensor of shape "
                    f"{tuple(truth.shape)}.")
    if got.shape != truth.shape:
        raise Wrong(f"`{what}` returned shape {tuple(got.shape)}, expected {tuple(truth.shape)} (the shape of x). "
                    "Check how the per-sample time t, shape (B,), broadcasts against x, shape (B, dim).")
    if _close(got, truth, tol):
        return
    for cand in candidates:
        if _close(got, cand.output, tol):
            raise Wrong(cand.hint)
    diff = (got.detach().to("cpu", torch.float64) - truth.to("cpu", torch.float64)).abs()
    worst = float(diff.nan_to_num(float("inf")).max())
    raise Wrong(f"`{what}` differs from the truth by up to {worst:.2g} on random inputs, and it is none of the "
                f"usual mistakes.{(' ' + generic_hint) if generic_hint else ''}")


_NAMES: dict[str, sp.Symbol] = {}


def canonical_expr(value: object, what: str) -> sp.Expr:
    """A student's SymPy answer with its symbols replaced, by name, by flowlab.symbolic's symbols
    (``x``, ``v``, ``s``, ``s_next``, ``t``, ``D``, ``E``), so assumptions on symbols do not matter.
    Strings are parsed. Raises :class:`NotDone` for ``...`` and :class:`Wrong` for other non-expressions."""
    from .. import symbolic as S

    if not _NAMES:
        _NAMES.update({"x": S.X, "v": S.V, "s": S.S, "s_next": S.S_NEXT, "t": S.T, "D": S.D, "E": S.E})
    need(value, what)
    if isinstance(value, str):
        try:
            value = sp.sympify(value, locals=dict(_NAMES))
        except (sp.SympifyError, SyntaxError, TypeError) as exc:
            raise Wrong(f"`{what}` = {value!r} cannot be read as a formula ({type(exc).__name__}).") from None
    if isinstance(value, (int, float)):
        value = sp.sympify(value)
    if not isinstance(value, sp.Basic):
        raise Wrong(f"`{what}` should be a SymPy expression, got {type(value).__name__}.")
    subs = {sym: _NAMES[sym.name] for sym in value.free_symbols if sym.name in _NAMES}
    out = value.xreplace(subs)
    extra = sorted(str(sym) for sym in out.free_symbols if sym not in _NAMES.values())
    if extra:
        raise Wrong(f"`{what}` uses symbols {extra}; write it in x, v, s, s_next, t, D, E only.")
    return out
