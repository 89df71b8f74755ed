"""Second sweep (issue 22), coefficient expressions: bounded numbers, powers and nesting, a time limit on
the construction checks, SymPy functions outside the allow-list, and complex coefficients."""
from __future__ import annotations

import time

import pytest
import sympy as sp

import flowlab.conventions as C
from flowlab.conventions import Convention, T, parse_expression
from flowlab.errors import FlowlabError


def _affine(alpha, beta="1 - t"):
    return Convention.affine("c", alpha, beta, t_noise=0, t_data=1)


@pytest.mark.parametrize("text, message", [
    ("(((((9**64)**64)**64)**64)**64)", "digits (at most 300)"),
    ("((9**64)**64)*t", "digits (at most 300)"),
    ("9**64*9**64*9**64*9**64*9**64*t", "more than 300 digits"),
    ("1" + "0" * 400 + "*t", "more than 300 digits"),
    ("(t**64)**64", "exponent 4096"),
    ("exp(exp(exp(exp(t))))", "nested 4 deep"),
    ("t*(1 - t)*exp(exp(exp(exp(t)))) + t", "nested 4 deep"),
])
def test_unbounded_expressions_are_refused_at_once(text: str, message: str) -> None:
    start = time.perf_counter()
    with pytest.raises(FlowlabError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _affine(text)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("text", ["t + sqrt(-1)*t*(1-t)", "t + log(-1)*t*(1-t)", "(-1)**0.5 * t", "t + t*(1 - t)*log(-2)"])
def test_complex_coefficients_are_refused(text: str) -> None:
    with pytest.raises(FlowlabError, match="complex"):
        _affine(text)


def test_a_coefficient_complex_between_the_endpoints_is_refused() -> None:
    with pytest.raises(FlowlabError, match=r"alpha\(1/64\) = .* is not a finite real number"):
        _affine("t + t*(1 - t)*sqrt(t - 2)")


@pytest.mark.parametrize("alpha, name", [
    (sp.Integral(T, (T, 0, 1)) * 2 * T, "Integral"), (sp.Max(T, 0), "Max"), (sp.Abs(T), "Abs"),
    (sp.Min(T, 1), "Min"), (sp.floor(2 * T) / 2 + T / 2, "floor"),
    (sp.Piecewise((T, T > 0), (0, True)), "Piecewise"),
])
def test_sympy_functions_outside_the_allow_list(alpha, name: str) -> None:
    with pytest.raises(FlowlabError, match=f"{name}\\(...\\) is not allowed in a coefficient"):
        _affine(alpha)


def test_a_power_tower_given_as_sympy_is_refused_without_printing_it() -> None:
    huge = sp.Integer(9) ** (9 ** 5)  # 56,000 digits: str() of it fails under Python's int->str digit limit
    with pytest.raises(FlowlabError, match="a number with about 56348 digits"):
        _affine(huge * T)  # alpha(1) = huge: formatting "alpha(t_data) = ..." used to fail on the digit limit
    with pytest.raises(FlowlabError, match="a number with about 401 digits"):
        _affine(T + sp.Integer(10) ** 400 * T * (1 - T))


def test_the_construction_checks_have_a_time_limit(monkeypatch) -> None:
    monkeypatch.setattr(C, "CHECK_SECONDS", 0.01)
    start = time.perf_counter()
    with pytest.raises(FlowlabError, match="could not check the path within 0.01 s; use simpler coefficients"):
        _affine("sin(pi*t/2)**2*exp(t - 1)*cos(t*(1 - t))**2", "cos(pi*t/2)*exp(-t)")
    assert time.perf_counter() - start < 5


def test_plain_coefficients_still_work() -> None:
    conv = _affine("sin(pi*t/2)", "cos(pi*t/2)")
    assert conv.alpha == sp.sin(sp.pi * T / 2)
    assert parse_expression("exp(exp(exp(t)))") == sp.exp(sp.exp(sp.exp(T)))
    assert parse_expression("2**64*t") == 2 ** 64 * T
