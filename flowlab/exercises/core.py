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

import contextlib
import functools
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import sympy as sp
import torch
from torch import Tensor

__all__ = ["Result", "STATUSES", "NotDone", "Wrong", "StudentError", "exercise", "call", "need",
           "compare_tensor", "Candidate", "canonical_expr", "Case", "Mistake", "check_cases", "call_unchanged"]

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


def _error_hint(exc: BaseException, shape_hint: str = "") -> str:
    text = str(exc)
    if isinstance(exc, RuntimeError) and ("must match the size" in text or "broadcast" in text):
        return " Hint: a shape mismatch." + (" " + shape_hint if shape_hint else "")
    if isinstance(exc, RuntimeError) and "dtype" in text.lower():
        return " Hint: mixed dtypes; keep everything in the dtype of the inputs."
    if isinstance(exc, NameError):
        return (" Hint: did you run the setup cell at the top of the notebook? It imports only what the exercises "
                "need; import anything else you use yourself (e.g. import math, import sympy as sp).")
    if isinstance(exc, AttributeError):
        return " Hint: check the spelling of the method or function, and the type of the object you call it on."
    if isinstance(exc, TypeError) and ("argument" in text or "positional" in text):
        return " Hint: keep the signature of the stub exactly as given."
    return ""


def call(fn: object, *args: Any, what: str, shape_hint: str = "", forbidden: Sequence[Callable] = ()) -> Any:
    """Call the student's ``fn(*args)``; an unfilled stub raises :class:`NotDone`, any other exception
    :class:`StudentError` naming it. ``what`` names ``fn`` in the messages, ``shape_hint`` says what to look at
    after a shape mismatch (in the exercise's own variables). A call of one of the ``forbidden`` functions
    (flowlab's own solution of the exercise) inside ``fn`` raises :class:`Wrong`."""
    if _is_unfilled(fn):
        raise NotDone(f"`{what}` is still `...`.")
    if not callable(fn):
        raise Wrong(f"`{what}` should be a function, got {type(fn).__name__}.")
    try:
        with _watch(forbidden) as used:
            out = fn(*args)
    except NotImplementedError:
        raise NotDone(f"`{what}` still raises NotImplementedError.") from None
    except Exception as exc:  # any mistake in student code: a short message, never a traceback
        from ..errors import FlowlabError

        limit = 400 if isinstance(exc, FlowlabError) else 160  # flowlab's own messages say what to do
        raise StudentError(f"`{what}` raised {type(exc).__name__}: {_first_line(exc, limit)}."
                           f"{_error_hint(exc, shape_hint)}") from None
    if used:
        raise Wrong(f"`{what}` calls flowlab's `{used[0]}`, which is what this exercise asks you to write: the check "
                    "compares your answer with that very function, so calling it proves nothing. Write the "
                    "computation yourself with torch operations.")
    if _is_unfilled(out):
        raise NotDone(f"`{what}` returns {out!r}: fill in the body.")
    return out


@contextlib.contextmanager
def _watch(forbidden: Sequence[Callable]) -> Iterator[list[str]]:
    """Record (by qualified name) the calls of the ``forbidden`` Python functions made inside the block."""
    used: list[str] = []
    codes = {}
    for f in forbidden:
        f = getattr(f, "__func__", f)
        code = getattr(f, "__code__", None)
        if code is not None:
            codes[code] = f"{f.__module__}.{f.__qualname__}"
    if not codes:
        yield used
        return

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code in codes and not used:
            used.append(codes[frame.f_code])

    old = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield used
    finally:
        sys.setprofile(old)


def _snapshot(value: object) -> object:
    return value.detach().clone() if isinstance(value, Tensor) else None


def _unchanged(before: object, after: object) -> bool:
    if not isinstance(before, Tensor):
        return True
    return (isinstance(after, Tensor) and after.shape == before.shape and after.dtype == before.dtype
            and bool(torch.equal(after.detach(), before)))


def call_unchanged(fn: object, args: Sequence[Any], names: Sequence[str], *, what: str, shape_hint: str = "",
                   forbidden: Sequence[Callable] = ()) -> Any:
    """:func:`call` with the caller's own tensors ``args`` (named ``names``); :class:`Wrong` when the call
    changed any of them (an in-place operation on an argument)."""
    before = [_snapshot(a) for a in args]
    out = call(fn, *args, what=what, shape_hint=shape_hint, forbidden=forbidden)
    for name, b, a in zip(names, before, args):
        if not _unchanged(b, a):
            raise Wrong(f"`{what}` changed its argument `{name}` in place (an operation ending in _ such as "
                        f"{name}.add_(...), {name} += ..., or {name}[...] = ...): the caller's `{name}` is not yours "
                        f"to overwrite. Compute a new tensor instead ({name} = {name} + ... makes a new one).")
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
            except Exception as exc:  # a check must never show a traceback, whatever the answer is made of
                status, text = "wrong", (f"the check could not use your answer ({type(exc).__name__}: "
                                         f"{_first_line(exc)}). Keep the names and the form the stub asks for.")
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


def _tol(dtype: torch.dtype, tol: float | None) -> float:
    if tol is not None:
        return tol
    return {torch.float64: 1e-9, torch.float32: 2e-5, torch.float16: 0.0}.get(dtype, 0.0)


def compare_tensor(got: object, truth: Tensor, candidates: Sequence[Candidate], *, what: str, tol: float = 1e-6,
                   generic_hint: str = "", shape_note: str = "", check_dtype: bool = True) -> None:
    """Raise :class:`Wrong` unless ``got`` equals ``truth`` (relative-absolute ``tol``), with the same shape,
    dtype and device; a match with a candidate (evaluated on the same inputs) gives its hint."""
    _expect_like(got, truth, what=what, shape_note=shape_note, check_dtype=check_dtype)
    if _close(got, truth, tol):
        return
    for cand in candidates:
        if _close(got, cand.output, tol):
            raise Wrong(cand.hint)
    raise Wrong(f"`{what}` differs from the right answer by up to {_worst(got, truth):.2g} on random inputs, and it "
                f"is none of the usual mistakes.{(' ' + generic_hint) if generic_hint else ''}")


def _worst(got: Tensor, truth: Tensor) -> float:
    diff = (got.detach().to("cpu", torch.float64) - truth.to("cpu", torch.float64)).abs()
    return float(diff.nan_to_num(float("inf")).max())


def _expect_like(got: object, truth: Tensor, *, what: str, shape_note: str = "", inputs: str = "",
                 check_dtype: bool = True) -> None:
    """``got`` is a tensor of ``truth``'s shape, dtype and device, else :class:`Wrong` saying which differs."""
    on = f" for {inputs}" if inputs else ""
    if not isinstance(got, Tensor):
        raise Wrong(f"`{what}` returned a {type(got).__name__}{on}; it should return a torch tensor of shape "
                    f"{tuple(truth.shape)}.")
    if got.shape != truth.shape:
        raise Wrong(f"`{what}` returned shape {tuple(got.shape)}{on}, expected {tuple(truth.shape)}."
                    + (f" {shape_note}" if shape_note else ""))
    if check_dtype and got.dtype != truth.dtype:
        raise Wrong(f"`{what}` returned {str(got.dtype).replace('torch.', '')}{on}, expected "
                    f"{str(truth.dtype).replace('torch.', '')}: keep the dtype the exercise asks for (a silent cast "
                    "changes the precision the caller chose).")
    if got.device != truth.device:
        raise Wrong(f"`{what}` returned a tensor on {got.device}{on}, expected {truth.device}: create new tensors "
                    "on the inputs' device (device=x.device).")


@dataclass(frozen=True)
class Case:
    """One set of inputs of a check: the arguments (passed as they are: the caller's own tensors), the
    right answer on them, and how to name them in a message (e.g. "x of shape (5, 2), float32")."""

    args: tuple
    truth: Tensor
    label: str


@dataclass(frozen=True)
class Mistake:
    """A known wrong answer: its formula (called with the same arguments as the student's function) and
    the misconception behind it. It is named only when the answer equals it on EVERY case."""

    formula: Callable[..., Tensor]
    hint: str


def _clone_args(args: tuple) -> tuple:
    return tuple(a.detach().clone() if isinstance(a, Tensor) else a for a in args)


def _mistake_matches(mistake: Mistake, outs: Sequence[Tensor], cases: Sequence[Case], tol: float | None) -> bool:
    for out, case in zip(outs, cases):
        try:
            ref = mistake.formula(*_clone_args(case.args))
        except Exception:  # a mistake formula that cannot run on this case is not the student's answer
            return False
        if not isinstance(ref, Tensor) or not _close(out, ref, _tol(case.truth.dtype, tol)):
            return False
    return True


def check_cases(fn: object, cases: Sequence[Case], mistakes: Sequence[Mistake], *, what: str,
                names: Sequence[str], shape_note: str = "", tol: float | None = None, generic_hint: str = "",
                forbidden: Sequence[Callable] = ()) -> None:
    """Run the student's ``fn`` on every case (the caller's own tensors), and raise :class:`Wrong` / :class:`NotDone`
    / :class:`StudentError` unless every output has the right type, shape, dtype and device, leaves the
    arguments unchanged and equals the truth. A wrong answer is named as a known mistake only when it equals
    that mistake's formula on every case; else the message says on which inputs it differs."""
    outs = []
    for case in cases:
        out = call_unchanged(fn, case.args, names, what=what, shape_hint=shape_note, forbidden=forbidden)
        _expect_like(out, case.truth, what=what, shape_note=shape_note, inputs=case.label, check_dtype=False)
        outs.append(out)
    bad = [k for k, (out, case) in enumerate(zip(outs, cases))
           if not _close(out, case.truth, _tol(case.truth.dtype, tol))]
    if bad:
        for mistake in mistakes:
            if _mistake_matches(mistake, outs, cases, tol):
                raise Wrong(mistake.hint)
    for out, case in zip(outs, cases):  # right values (or unknown wrong ones): the dtype and device next
        _expect_like(out, case.truth, what=what, shape_note=shape_note, inputs=case.label)
    if not bad:
        return
    first = cases[bad[0]]
    right = [cases[k].label for k in range(len(cases)) if k not in bad]
    where = f" It is right for {'; '.join(right)}, so look at what differs between these inputs." if right else ""
    raise Wrong(f"`{what}` differs from the right answer by up to {_worst(outs[bad[0]], first.truth):.2g} for "
                f"{first.label}, and it is none of the usual mistakes.{where}"
                f"{(' ' + generic_hint) if generic_hint else ''}")


_NAMES: dict[str, sp.Symbol] = {}


def canonical_expr(value: object, what: str) -> sp.Expr:
    """A student's SymPy answer with its symbols replaced, by name, by flowlab.symbolic's symbols
    (``x``, ``v``, ``s``, ``s_next``, ``t``, ``D``, ``E``), so assumptions on symbols do not matter.
    Strings are parsed. Raises :class:`NotDone` for ``...`` and :class:`Wrong` for other non-expressions."""
    from .. import symbolic as S

    if not _NAMES:
        _NAMES.update({"x": S.X, "v": S.V, "s": S.S, "s_next": S.S_NEXT, "t": S.T, "D": S.D, "E": S.E})
    if _is_unfilled(value):
        raise NotDone(f"`{what}` is still `...`. (If your cell stopped with an error, fix the error and run the cell "
                      "again: the check reads what the cell assigned.)")
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
