"""Entry checks shared by the tensor API: what a tensor or a time must be before flowlab computes with it.

One place for the checks every public function needs (issue 22's "silent nonsense"): a tensor that is
complex, boolean, integer or on the ``meta`` device is refused with the reason instead of giving complex,
integer or empty results; a time outside the convention's interval or NaN is refused instead of
extrapolating the path; a time at an endpoint where a formula divides by zero is refused with the reason.

Value checks (range, NaN) read the values, which costs a device sync: they run for Python numbers and CPU
tensors, and are skipped for CUDA tensors, inside ``torch.compile`` and inside the sampler's loop
(:func:`times_checked`) (where the sampler's own
``check_finite`` catches the damage after the loop, in one sync).
"""
from __future__ import annotations

import contextvars
import math
from contextlib import contextmanager

import torch
from torch import Tensor

from .errors import FlowlabError

__all__ = ["check_tensor", "check_times", "check_scale", "check_not_at", "values_checkable", "times_checked",
           "TIME_SLACK"]

#: Times may pass an endpoint by this fraction of the interval (float32 round-off of shifted schedules).
TIME_SLACK = 1e-6


_TRUSTED = contextvars.ContextVar("flowlab_times_checked", default=False)


@contextmanager
def times_checked():
    """Inside this block the value checks are skipped: the sampler's loop, whose times come from a schedule
    validated once before the loop (or whose caller turned that check off), and which must not sync per step."""
    token = _TRUSTED.set(True)
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def _compiling() -> bool:
    try:
        return bool(torch.compiler.is_compiling())
    except AttributeError:  # pragma: no cover - old torch
        return False


def values_checkable(x: Tensor | float) -> bool:
    """Whether reading ``x``'s values is cheap: a number, or a CPU tensor outside ``torch.compile``."""
    if _TRUSTED.get():
        return False
    if not isinstance(x, Tensor):
        return True
    return x.device.type == "cpu" and not _compiling()


def check_tensor(x: object, name: str, *, where: str = "", floating: bool = True) -> Tensor:
    """``x`` if it is a real tensor flowlab can compute with; a FlowlabError naming ``name`` otherwise.

    Refused: not a tensor, the ``meta`` device (no data: every result would be empty), complex and boolean
    dtypes, and (``floating=True``) integer dtypes (a velocity of an int64 tensor is truncated to zeros).
    """
    at = f"{where}: " if where else ""
    if not isinstance(x, Tensor):
        raise FlowlabError(f"{at}{name} must be a torch tensor, got {type(x).__name__}")
    if x.device.type == "meta":
        raise FlowlabError(f"{at}{name} is on the 'meta' device (shapes only, no values), so there is nothing to "
                           "compute; create it on 'cpu' or 'cuda'")
    if x.is_complex():
        raise FlowlabError(f"{at}{name} is complex ({x.dtype}); flowlab's paths and velocities are real: pass "
                           "the real part (x.real) if the imaginary part is round-off")
    if x.dtype == torch.bool:
        raise FlowlabError(f"{at}{name} is boolean; pass a floating tensor (x.float())")
    if floating and not x.is_floating_point():
        raise FlowlabError(f"{at}{name} has dtype {x.dtype}; pass a floating tensor (x.float()): integer arithmetic "
                           "would truncate the result")
    return x


def check_times(t: object, convention, *, name: str = "t", where: str = "") -> None:
    """``t`` (a number or a tensor) lies in the convention's time interval and is not NaN.

    Complex and boolean times are refused always; the range and NaN checks run where
    :func:`values_checkable` says reading values is cheap.
    """
    at = f"{where}: " if where else ""
    if isinstance(t, bool):
        raise FlowlabError(f"{at}{name} = {t!r} is a boolean, not a time; pass a number or a tensor of times")
    if isinstance(t, complex) or (isinstance(t, Tensor) and (t.is_complex() or t.dtype == torch.bool)):
        kind = "complex" if (isinstance(t, complex) or t.is_complex()) else "boolean"
        raise FlowlabError(f"{at}{name} is {kind}; times are real numbers in [{_interval(convention)}]")
    if isinstance(t, Tensor) and t.device.type == "meta":
        raise FlowlabError(f"{at}{name} is on the 'meta' device (no values); create it on 'cpu' or 'cuda'")
    if not values_checkable(t):
        return
    lo, hi = _endpoints(convention)
    slack = TIME_SLACK * (hi - lo)
    if isinstance(t, Tensor):
        if t.numel() == 0:
            return
        tt = t.detach()
        if bool(torch.isnan(tt).any()):
            raise FlowlabError(f"{at}{name} contains NaN; times must be numbers in [{_interval(convention)}]")
        bad_lo, bad_hi = float(tt.min()), float(tt.max())
    else:
        try:
            value = float(t)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise FlowlabError(f"{at}{name} must be a number or a tensor of times, got {type(t).__name__}") from None
        if math.isnan(value):
            raise FlowlabError(f"{at}{name} is NaN; times must be numbers in [{_interval(convention)}]")
        bad_lo = bad_hi = value
    if bad_lo < lo - slack or bad_hi > hi + slack:
        out = bad_lo if bad_lo < lo - slack else bad_hi
        raise FlowlabError(f"{at}{name} = {out:.6g} is outside the {convention.name} convention's time interval "
                           f"[{_interval(convention)}]; the path is not defined there (t_noise = "
                           f"{convention.t_noise}, t_data = {convention.t_data})")


def check_not_at(t: object, convention, endpoint: str, *, quantity: str, reason: str) -> None:
    """Refuse ``t`` equal to ``convention``'s ``endpoint`` (``"t_data"`` / ``"t_noise"``), where ``quantity``
    divides by zero (``reason`` says which coefficient)."""
    if not values_checkable(t):
        return
    at = _endpoint_float(convention, endpoint)
    hit = bool((t.detach() == at).any()) if isinstance(t, Tensor) else float(t) == at  # type: ignore[arg-type]
    if hit:
        raise FlowlabError(f"{convention.name}.{quantity} is undefined at t = {at:g} ({endpoint}): {reason}; "
                           f"evaluate it at other times (t != {endpoint})")


def check_scale(scale: object, name: str = "scale") -> None:
    """A guidance scale: a finite real number, or a real floating tensor whose values are finite."""
    if isinstance(scale, bool):
        raise FlowlabError(f"{name} = {scale!r} is a boolean; pass a number such as 5.0 (1 = no guidance)")
    if isinstance(scale, Tensor):
        check_tensor(scale, name)
        if values_checkable(scale) and not bool(torch.isfinite(scale).all()):
            raise FlowlabError(f"{name} contains NaN or inf; the guidance scale must be finite (1 = no guidance)")
        return
    if not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise FlowlabError(f"{name} must be a finite number (1 = no guidance), got {scale!r}")


def _endpoint_float(convention, endpoint: str) -> float:
    """``convention``'s ``endpoint`` (``"t_data"`` / ``"t_noise"``) as the float stored at construction
    (``data_time`` / ``noise_time``): no SymPy on the sampling path."""
    stored = getattr(convention, {"t_data": "data_time", "t_noise": "noise_time"}.get(endpoint, ""), None)
    return float(stored) if isinstance(stored, (int, float)) else float(getattr(convention, endpoint))


def _endpoints(convention) -> tuple[float, float]:
    """``(lo, hi)``: the convention's time interval as floats (the stored endpoint floats)."""
    return tuple(sorted((_endpoint_float(convention, "t_noise"), _endpoint_float(convention, "t_data"))))


def _interval(convention) -> str:
    lo, hi = sorted((convention.t_noise, convention.t_data), key=float)
    return f"{lo}, {hi}"
