"""No SymPy on the sampling path: ``sample()`` with a callback that reads every prediction calls no
function of the sympy package (a convention's SymPy facts are computed once, when it is built)."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import sympy
import torch

from flowlab import CONVENTIONAL, REVERSED, VP_COSINE, Convention
from flowlab import schedules as S
from flowlab.conventions import T
from flowlab.sampling import StepInfo, sample

SYMPY_DIR = os.path.dirname(sympy.__file__) + os.sep
QUADRATIC = Convention.affine("quadratic", T**2, 1 - T**2, t_noise=0, t_data=1)


@contextmanager
def sympy_calls() -> Iterator[list[str]]:
    """Record every Python function called from a file of the sympy package (``sys.setprofile``)."""
    calls: list[str] = []

    def profile(frame, event, arg) -> None:
        if event == "call" and frame.f_code.co_filename.startswith(SYMPY_DIR):
            calls.append(f"{frame.f_code.co_filename[len(SYMPY_DIR):]}:{frame.f_code.co_name}")

    old = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield calls
    finally:
        sys.setprofile(old)


def _model(conv: Convention) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A velocity model that depends on x and t (so every prediction differs from x)."""
    def v(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x) * (1 + t[:, None]) - 0.3
    return v


def _reader(conv: Convention, seen: list[float]) -> Callable[[StepInfo], None]:
    """A callback that reads every prediction a plot or a guidance term might ask the convention for."""
    endpoints_0_1 = {float(conv.t_noise), float(conv.t_data)} == {0.0, 1.0}  # decided here, outside sample()

    def read(info: StepInfo) -> None:
        x, v, t = info.x, info.v, info.t
        preds = (info.pred_data, info.pred_noise, conv.pred_data(x, v, t), conv.pred_noise(x, v, t),
                 conv.score(x, v, t), conv.velocity_from_data(x, info.pred_data, t))
        if endpoints_0_1:
            preds += (conv.pred_x0(x, v, t), conv.pred_x1(x, v, t))
        seen.append(sum(float(p.abs().sum()) for p in preds))
    return read


@pytest.mark.parametrize("method, churn", [("euler", 0.0), ("heun", 0.0), ("midpoint", 0.5)])
@pytest.mark.parametrize("conv", [CONVENTIONAL, REVERSED, VP_COSINE, QUADRATIC], ids=lambda c: c.name)
def test_sample_with_a_prediction_reading_callback_calls_no_sympy(conv: Convention, method: str, churn: float) -> None:
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    ts = S.uniform(8, conv)
    g = torch.Generator().manual_seed(1)
    seen: list[float] = []
    model, callback = _model(conv), _reader(conv, seen)
    with sympy_calls() as calls:
        out = sample(model, x, ts, conv, method=method, churn=churn, generator=g, callback=callback)
    assert len(seen) == 8 and torch.isfinite(out).all()
    assert calls == [], f"sample() called SymPy {len(calls)} times, first: {calls[:5]}"


def test_the_detector_sees_sympy_called_from_a_callback() -> None:
    """The check can fail: a callback that asks SymPy for the endpoint (the old ``float(conv.t_data)``) is caught."""
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    with sympy_calls() as calls:
        sample(_model(VP_COSINE), x, S.uniform(3, VP_COSINE), VP_COSINE,
               callback=lambda info: float(VP_COSINE.t_data + VP_COSINE.t_noise))
    assert calls, "the profiler did not see SymPy called inside sample()"


def test_derived_facts_are_stored_fields_not_properties() -> None:
    """The facts are data on the object (computed at build time), with the values SymPy derives."""
    for name in ("is_straight", "direction", "noise_time", "data_time", "dalpha", "dbeta",
                 "data_endpoint_name", "noise_endpoint_name"):
        assert not isinstance(getattr(Convention, name, None), property), name
        assert name in vars(VP_COSINE), name
    assert (REVERSED.is_straight, CONVENTIONAL.is_straight, VP_COSINE.is_straight, QUADRATIC.is_straight) == \
        (True, True, False, False)
    assert (REVERSED.direction, VP_COSINE.direction, QUADRATIC.direction) == (1, -1, 1)
    assert (VP_COSINE.noise_time, VP_COSINE.data_time) == (1.0, 0.0)
    assert sympy.expand(QUADRATIC.dalpha - 2 * T) == 0 and sympy.expand(QUADRATIC.dbeta + 2 * T) == 0
