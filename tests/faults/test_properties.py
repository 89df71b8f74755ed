"""Property-based tests (hypothesis, item 14): for random inputs the schedule validators, Convention.affine
and the conversions either hold their round trips or raise FlowlabError, never another exception."""
from __future__ import annotations

import math

import pytest
import sympy as sp
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from flowlab import CONVENTIONAL, REVERSED, FlowlabError  # noqa: E402
from flowlab.conventions import T, Convention  # noqa: E402
from flowlab.schedules import shifted, to_conventional, to_reversed, uniform, validate  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
dtypes = st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.float64])
conventions = st.sampled_from([CONVENTIONAL, REVERSED])


# ---- schedule validators -------------------------------------------------------------------------------

@FAST
@given(values=st.lists(floats, min_size=0, max_size=12), dtype=dtypes, conv=conventions, noop=st.booleans())
def test_validate_accepts_only_what_it_promises(values, dtype, conv, noop) -> None:
    s = torch.tensor(values, dtype=dtype) if values else torch.zeros(0, dtype=dtype)
    try:
        out = validate(s, conv, allow_noop=noop)
    except FlowlabError:
        return
    v = out.double().tolist()
    assert len(v) >= 2 and all(math.isfinite(a) for a in v)
    assert v[0] == float(conv.t_noise) and v[-1] == float(conv.t_data)
    steps = [(b - a) * conv.direction for a, b in zip(v, v[1:])]
    assert all(d >= 0 for d in steps) and (noop or all(d > 0 for d in steps))


@FAST
@given(n=st.integers(min_value=-3, max_value=6000), dtype=dtypes, conv=conventions,
       shift=st.one_of(st.just(1.0), floats))
def test_builders_return_valid_schedules_or_refuse(n, dtype, conv, shift) -> None:
    try:
        s = shifted(n, conv, shift, dtype=dtype) if shift != 1.0 else uniform(n, conv, dtype=dtype)
    except FlowlabError:
        return
    assert s.shape == (n + 1,) and s.dtype == dtype
    validate(s, conv)


@FAST
@given(n=st.integers(min_value=1, max_value=3000), dtype=st.sampled_from([torch.float32, torch.float64]),
       shift=st.floats(min_value=0.05, max_value=20))
def test_convention_round_trip_of_schedules(n, dtype, shift) -> None:
    s = shifted(n, CONVENTIONAL, shift, dtype=dtype)
    r = to_reversed(s)
    validate(r, REVERSED, allow_noop=True)
    back = to_conventional(r)
    assert float((back - s).abs().max()) <= 2 * torch.finfo(dtype).eps


@FAST
@given(values=st.lists(floats, min_size=0, max_size=8), dtype=dtypes)
def test_conversions_refuse_anything_but_a_schedule(values, dtype) -> None:
    s = torch.tensor(values, dtype=dtype) if values else torch.zeros(0, dtype=dtype)
    for f, conv in ((to_conventional, CONVENTIONAL), (to_reversed, REVERSED)):
        try:
            out = f(s)
        except FlowlabError:
            continue
        validate(out, conv, allow_noop=True)


# ---- Convention.affine on random affine paths ------------------------------------------------------------

small = st.fractions(min_value=-2, max_value=2, max_denominator=4)


@st.composite
def affine_paths(draw):
    """Random polynomial paths with the right endpoint values: alpha = u^p (1 + a (1 - u)),
    beta = (1 - u)^q (1 + b u), u = (t - t_noise) / (t_data - t_noise) (0 at noise, 1 at data)."""
    tn, td = draw(small), draw(small)
    assume(tn != td)
    tn, td = sp.Rational(tn), sp.Rational(td)
    u = (T - tn) / (td - tn)
    p, q = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    a, b = sp.Rational(draw(small)), sp.Rational(draw(small))
    return sp.expand(u**p * (1 + a * (1 - u))), sp.expand((1 - u) ** q * (1 + b * u)), tn, td


@SLOW
@given(path=affine_paths(), frac=st.floats(min_value=0.05, max_value=0.95), seed=st.integers(0, 2**16))
@example(path=(1 - T, T, sp.Integer(1), sp.Integer(0)), frac=0.3, seed=0)  # conventional
@example(path=(T**2, 1 - T**2, sp.Integer(0), sp.Integer(1)), frac=0.7, seed=1)  # a curved path
def test_random_affine_paths_round_trip_or_refuse(path, frac, seed) -> None:
    alpha, beta, tn, td = path
    try:
        conv = Convention.affine("random", alpha, beta, t_noise=tn, t_data=td)
    except FlowlabError:
        return
    t = float(tn + (td - tn) * sp.nsimplify(frac))
    tt = torch.tensor([t], dtype=torch.float64)
    a, b, da, db = (c.item() for c in conv.coefficients(tt))
    det = a * db - da * b
    assume(abs(det) > 1e-3 and max(abs(a), abs(b), abs(da), abs(db)) < 1e3)  # well-conditioned points only
    g = torch.Generator().manual_seed(seed)
    d, e = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    x, v = conv.interpolate(d, e, t), conv.velocity_target(d, e, t)
    tol = 1e-8 * (1 + max(abs(a), abs(b), abs(da), abs(db))) / abs(det)
    assert torch.allclose(conv.pred_data(x, v, t), d, atol=tol, rtol=0)
    assert torch.allclose(conv.pred_noise(x, v, t), e, atol=tol, rtol=0)
    assert torch.allclose(conv.velocity_from_data(x, d, t), v, atol=tol * 10, rtol=0)
    assert torch.allclose(conv.velocity_from_noise(x, e, t), v, atol=tol * 10, rtol=0)


TOKENS = ["t", "1", "2", "0.5", "pi", "+", "-", "*", "/", "**", "(", ")", "sin(", "cos(", "exp(", "log(",
          "sqrt(", " ", "__import__", ".", "[", "]", "'", "lambda", ":", ",", "x", "=", "e", "1e309"]


@SLOW
@given(alpha=st.lists(st.sampled_from(TOKENS), max_size=12).map("".join),
       beta=st.lists(st.sampled_from(TOKENS), max_size=12).map("".join),
       tn=st.one_of(small, st.sampled_from(["0", "1", "pi/4", "t", "(", "nan"])), td=st.sampled_from([0, 1, "1", 2]))
@example(alpha="t.x", beta="1 - t", tn=0, td=1)     # SymPy's sympify: AttributeError
@example(alpha="(t, t)", beta="1 - t", tn=0, td=1)  # sympify: a tuple, AttributeError later
@example(alpha="t", beta="1 - t", tn=0, td=1)       # a valid one
def test_random_coefficient_strings_give_a_convention_or_a_flowlab_error(alpha, beta, tn, td) -> None:
    try:
        conv = Convention.affine("random", alpha, beta, t_noise=tn, t_data=td)
    except FlowlabError:
        return
    assert conv.alpha.free_symbols <= {T} and conv.beta.free_symbols <= {T}


# ---- the convention map (flip) ---------------------------------------------------------------------------

@FAST
@given(t=st.floats(min_value=0.0, max_value=1.0), seed=st.integers(0, 2**16))
def test_flip_maps_the_exact_conventional_velocity_to_the_reversed_one(t, seed) -> None:
    from flowlab.gmm import eight_gaussians_gmm
    from flowlab.sampling import flip

    gmm = eight_gaussians_gmm()
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2
    tt = torch.full((16,), t, dtype=torch.float64)
    flipped = flip(gmm.velocity_model(CONVENTIONAL))
    assert torch.allclose(flipped(x, tt), gmm.velocity(x, tt, REVERSED), atol=1e-9, rtol=1e-9)
    assert flip(flipped).convention is CONVENTIONAL
