"""Coefficient expressions of a convention: the safe parser for strings (``'1 - t'``), the bounds on what a
coefficient may contain (size, nesting, exponents, digits), the time limit on SymPy's construction checks, and the
coercion of numbers / strings / SymPy expressions into coefficients and endpoint times.

Split out of :mod:`flowlab.conventions` (which re-exports :data:`T` and :func:`parse_expression`); nothing here
imports torch.
"""
from __future__ import annotations

import ast
import math
import signal
import threading
from contextlib import contextmanager
from typing import Callable

import sympy as sp

from .errors import FlowlabError

__all__ = ["T", "parse_expression", "check_coefficient", "CHECK_SECONDS", "SAFE_FUNCTIONS", "SAFE_CONSTANTS"]

#: The time symbol every convention's coefficients are written in.
T = sp.Symbol("t", real=True)


#: Functions a coefficient string may call (one argument each), and the constants it may name.
SAFE_FUNCTIONS: dict[str, Callable[[sp.Expr], sp.Expr]] = {
    "sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "asin": sp.asin, "acos": sp.acos, "atan": sp.atan,
    "sinh": sp.sinh, "cosh": sp.cosh, "tanh": sp.tanh, "exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt,
}
SAFE_CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi}
_MAX_TEXT = 500      # characters in one coefficient string
_MAX_EXPONENT = 64   # |n| for a numeric exponent in t**n (larger ones only make SymPy slow)
_MAX_DIGITS = 300    # decimal digits of any number in a coefficient (1e300: beyond float64 anyway)
_MAX_NESTING = 3     # nested function calls, e.g. exp(exp(exp(t))); deeper ones make SymPy's checks hang
_MAX_DEGREE = 256    # |n| of any power t**n after SymPy combined powers of powers
_MAX_NODES = 2000    # size of a coefficient's expression tree
#: Seconds the construction checks of one convention (SymPy simplification) may take (main thread only).
CHECK_SECONDS = 20.0
#: The SymPy functions a coefficient may contain (what SAFE_FUNCTIONS build; sqrt is a power).
_SAFE_CLASSES = (sp.sin, sp.cos, sp.tan, sp.asin, sp.acos, sp.atan, sp.sinh, sp.cosh, sp.tanh, sp.exp, sp.log)
#: Every node of a coefficient's expression tree is one of these (the imaginary unit is refused below by name).
_ALLOWED_NODES = (sp.Symbol, sp.Number, sp.NumberSymbol, sp.Add, sp.Mul, sp.Pow, *_SAFE_CLASSES,
                  type(sp.I), type(sp.zoo), type(sp.nan), type(sp.oo), type(-sp.oo))
_BINOPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: a ** b}


def parse_expression(text: str, *, what: str = "expression", allow_t: bool = True) -> sp.Expr:
    """Read ``text`` (e.g. ``"cos(pi*t/2)"``) as a SymPy expression in :data:`T` WITHOUT running it as code.

    The string is parsed by Python's ``ast`` and only an allow-list is turned into SymPy: numbers,
    the symbol ``t`` (unless ``allow_t=False``), ``pi``, ``+ - * / **``, unary minus, and one-argument
    calls of :data:`SAFE_FUNCTIONS`. Everything else (names, attributes, subscripts, lambdas, keyword
    arguments, strings, comparisons) is refused with a :class:`FlowlabError` naming what was found.
    SymPy's ``sympify`` / ``parse_expr`` are never called on user text: both evaluate it with ``eval``.
    """
    if not isinstance(text, str):
        raise FlowlabError(f"{what}: expected a string, got {type(text).__name__}")
    if len(text) > _MAX_TEXT:
        raise FlowlabError(f"{what}: {len(text)} characters is too long for a coefficient (at most {_MAX_TEXT})")
    allowed = ("numbers, t, pi, + - * / **, and " + ", ".join(f"{f}()" for f in SAFE_FUNCTIONS)) if allow_t \
        else ("numbers, pi, + - * / **, and " + ", ".join(f"{f}()" for f in SAFE_FUNCTIONS))
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise FlowlabError(f"{what}: cannot parse {text!r} ({type(exc).__name__}: {exc}); write a formula "
                           f"using only {allowed}") from None

    def refuse(node: ast.AST, why: str) -> FlowlabError:
        src = ast.get_source_segment(text.strip(), node) or type(node).__name__
        return FlowlabError(f"{what}: {why} in {text!r} (at {src!r}); only {allowed} are allowed")

    def build(node: ast.AST, depth: int = 0) -> sp.Expr:
        if depth > 50:
            raise refuse(node, "the formula is nested too deeply")
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise refuse(node, f"the constant {v!r} is not a real number")
            if isinstance(v, float) and not math.isfinite(v):
                raise refuse(node, "a non-finite number")
            if isinstance(v, int) and v.bit_length() * 0.30103 > _MAX_DIGITS:
                raise refuse(node, f"a number of more than {_MAX_DIGITS} digits")
            return sp.Integer(v) if isinstance(v, int) else sp.nsimplify(v, rational=True)
        if isinstance(node, ast.Name):
            if node.id == "t" and allow_t:
                return T
            if node.id in SAFE_CONSTANTS:
                return SAFE_CONSTANTS[node.id]
            raise refuse(node, f"the name {node.id!r} is not known"
                         + ("" if allow_t else " (no t here: this must be a number)"))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            inner = build(node.operand, depth + 1)
            return -inner if isinstance(node.op, ast.USub) else inner
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            left, right = build(node.left, depth + 1), build(node.right, depth + 1)
            if isinstance(node.op, ast.Pow) and right.is_Number and abs(right) > _MAX_EXPONENT:
                raise refuse(node, f"the exponent {_short(right)} is larger than {_MAX_EXPONENT} in absolute value")
            if isinstance(node.op, ast.Pow) and _pow_digits(left, right) > _MAX_DIGITS:
                raise refuse(node, f"a number of about {_pow_digits(left, right):.3g} digits (at most {_MAX_DIGITS})")
            if isinstance(node.op, ast.Mult) and _pow_digits(left, sp.Integer(1)) + _pow_digits(right, sp.Integer(1)) > _MAX_DIGITS:
                raise refuse(node, f"a number of more than {_MAX_DIGITS} digits")
            if isinstance(node.op, ast.Div) and right == 0:
                raise refuse(node, "a division by zero")
            return _BINOPS[type(node.op)](left, right)
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name not in SAFE_FUNCTIONS:
                raise refuse(node, "a call of something that is not an allowed function")
            if node.keywords or len(node.args) != 1 or isinstance(node.args[0], ast.Starred):
                raise refuse(node, f"{name}() takes exactly one positional argument")
            return SAFE_FUNCTIONS[name](build(node.args[0], depth + 1))
        kind = {ast.Attribute: "an attribute access", ast.Lambda: "a lambda", ast.Subscript: "a subscript",
                ast.Compare: "a comparison", ast.BoolOp: "a boolean operator", ast.IfExp: "a conditional"}
        raise refuse(node, kind.get(type(node), f"a {type(node).__name__} expression"))

    return check_coefficient(build(tree.body), what)


def _digits(value: sp.Rational) -> int:
    """Decimal digits of the larger of numerator and denominator (from bit lengths: no int -> str)."""
    return int(max(abs(int(value.p)).bit_length(), abs(int(value.q)).bit_length()) * 0.30103) + 1


def _pow_digits(base: sp.Expr, exponent: sp.Expr) -> float:
    """Estimated decimal digits of ``base ** exponent`` for two numbers, without computing it."""
    if not (base.is_Rational and exponent.is_Number) or base == 0:
        return 0.0
    size = max(abs(int(base.p)).bit_length(), abs(int(base.q)).bit_length()) * 0.30103
    return size * abs(float(exponent))


def check_coefficient(expr: sp.Expr, what: str) -> sp.Expr:
    """Refuse a coefficient flowlab cannot check in bounded time or that is not real: functions outside the
    allow-list (Integral, Max, Abs, Piecewise, ...), numbers of more than 300 digits, powers t**n with
    |n| > 256, more than 3 nested function calls, trees over 2000 nodes, and complex constants (sqrt(-1),
    log(-1), (-1)**0.5). The message never prints the offending number itself (it may be too long to print)."""
    nodes = 0
    for node in sp.preorder_traversal(expr):
        nodes += 1
        if nodes > _MAX_NODES:
            raise FlowlabError(f"{what}: the expression has more than {_MAX_NODES} parts; write a shorter formula")
        if node.is_Rational and _digits(node) > _MAX_DIGITS:
            raise FlowlabError(f"{what}: a number with about {_digits(node)} digits (at most {_MAX_DIGITS}); "
                               "coefficients are evaluated in floating point, where such numbers overflow")
        if node.is_Float and not math.isfinite(float(node)):
            raise FlowlabError(f"{what}: a non-finite number; coefficients must be finite")
        if node.is_Pow and node.exp.is_Number and abs(node.exp) > _MAX_DEGREE:
            raise FlowlabError(f"{what}: a power with exponent {float(node.exp):.4g} (at most {_MAX_DEGREE} in "
                               "absolute value); such coefficients only make SymPy slow")
        if not isinstance(node, _ALLOWED_NODES):
            raise FlowlabError(f"{what}: {type(node).__name__}(...) is not allowed in a coefficient (flowlab cannot "
                               "check it); use +, -, *, /, ** and " + ", ".join(SAFE_FUNCTIONS))
    if _nesting(expr) > _MAX_NESTING:
        raise FlowlabError(f"{what}: functions nested {_nesting(expr)} deep (at most {_MAX_NESTING}, e.g. "
                           "exp(exp(exp(t)))); SymPy cannot check deeper nests in reasonable time")
    if expr.has(sp.I) or expr.has(sp.zoo) or expr.has(sp.nan) or expr.has(sp.oo):
        kind = "complex (it contains the imaginary unit I)" if expr.has(sp.I) else "infinite or undefined"
        raise FlowlabError(f"{what}: the coefficient {_short(expr)} is {kind}; a path's coefficients must be real "
                           "and finite (a square root or log of a negative number is complex)")
    return expr


def _nesting(expr: sp.Expr) -> int:
    inner = max((_nesting(a) for a in expr.args), default=0)
    return inner + 1 if isinstance(expr, sp.Function) else inner


def _short(expr: sp.Expr, limit: int = 120) -> str:
    text = str(expr)
    return text if len(text) <= limit else text[:limit] + "..."


@contextmanager
def _time_limit(seconds: float, what: str):
    """Raise a FlowlabError if the block runs longer than ``seconds`` (SIGALRM; only in the main thread and
    when no other timer is set, else no limit)."""
    usable = (threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
              and signal.getitimer(signal.ITIMER_REAL)[0] == 0)
    if not usable:
        yield
        return

    def _expired(signum, frame):  # noqa: ARG001
        raise FlowlabError(f"{what}: SymPy could not check the path within {seconds:g} s; use simpler coefficients")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _coefficient(value: object, what: str) -> sp.Expr:
    """A coefficient given as a SymPy expression, a real number or a (safely parsed) string."""
    if isinstance(value, str):
        return parse_expression(value, what=what)
    if isinstance(value, bool) or not isinstance(value, (int, float, sp.Expr)):
        raise FlowlabError(f"{what}: expected a SymPy expression in flowlab.conventions.T, a number or a string "
                           f"such as '1 - t', got {type(value).__name__} {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise FlowlabError(f"{what}: {value!r} is not a finite number")
    expr = sp.Integer(value) if isinstance(value, int) else sp.nsimplify(value) if isinstance(value, float) else value
    undefined = expr.atoms(sp.core.function.AppliedUndef)
    if undefined:
        raise FlowlabError(f"{what}: undefined functions {sorted(map(str, undefined))}; write the coefficient with "
                           "SymPy functions (sp.cos, sp.exp, ...) of flowlab.conventions.T")
    return check_coefficient(expr, what)


def _exact(value: object, what: str = "endpoint") -> sp.Expr:
    """An endpoint time: a finite real number, a constant SymPy expression or a string like ``'1'``."""
    if isinstance(value, str):
        expr = parse_expression(value, what=what, allow_t=False)
    elif isinstance(value, bool) or not isinstance(value, (int, float, sp.Expr)):
        raise FlowlabError(f"{what}: expected a number, got {type(value).__name__} {value!r}")
    elif isinstance(value, float) and not math.isfinite(value):
        raise FlowlabError(f"{what}: {value!r} is not a finite number")
    else:
        expr = value if isinstance(value, sp.Expr) else sp.nsimplify(value)
    if expr.free_symbols or not expr.is_real or not expr.is_finite:
        raise FlowlabError(f"{what}: {value!r} must be a finite real number (a time), got {expr}")
    return expr
