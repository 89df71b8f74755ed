"""One short, stateless sampling loop over a schedule tensor, in any convention.

A velocity model is any callable ``model(x, t) -> v`` with ``x: (B, ...)``, ``t: (B,)`` in the
convention's own time (conventional ``sigma``: 1 = noise, 0 = data; reversed ``t``: 0 = noise,
1 = data) and ``v`` shaped like ``x``. :func:`sample` integrates ``dx/dt = v`` along a schedule
from :mod:`flowlab.schedules` (``schedule[0] = t_noise``, ``schedule[-1] = t_data``)::

    x_next = x + (t_next - t) * v        # the same line in both conventions

There is no hidden step counter: the schedule is the state. The loop issues no host-device
synchronisation (no ``.item()``, no Python ``bool`` of a tensor, no data-dependent branch), so it
can run under ``torch.inference_mode``, ``torch.compile`` or CUDA graph capture; the optional
checks (schedule validation before the loop, one NaN/inf check after it) are the only syncs and can
be switched off. Device and dtype follow ``x``; the model receives ``t`` in the schedule's dtype.
"""
from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from . import functional as F
from .conventions import Convention, get_convention
from .errors import FlowlabError, NonFiniteError
from .inputs import check_scale, check_tensor, times_checked
from .schedules import validate

__all__ = ["METHODS", "STEPS", "StepInfo", "sample", "euler_step", "heun_step", "midpoint_step", "flip", "Flipped", "guided", "Guided", "Trajectory", "trajectory",
           "CallCounter"]

#: Integration methods :func:`sample` knows, with the number of model calls per step.
METHODS: dict[str, str] = {
    "euler": "1st order, 1 model call per step",
    "heun": "2nd order (trapezoid predictor-corrector), 2 calls per step; the last step is Euler",
    "midpoint": "2nd order (explicit midpoint), 2 calls per step",
}

Model = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class StepInfo:
    """What the callback sees at step ``i`` (before the update), in the sampler's convention.

    Attributes:
        i: step index, ``0 <= i < len(schedule) - 1``.
        t: ``(B,)`` time at which ``v`` was evaluated (``schedule[i]``, or the re-noised time with churn).
        t_next: 0-dim, ``schedule[i + 1]``: the step goes ``t -> t_next``.
        x: ``(B, ...)`` the state at ``t``.
        v: ``(B, ...)`` the model's velocity at ``(x, t)``.
        pred_data: ``convention.pred_data(x, v, t)`` (conventional ``x - sigma v``, reversed ``x + (1 - t) v``).
        pred_noise: ``convention.pred_noise(x, v, t)`` (conventional ``x + (1 - sigma) v``, reversed ``x - t v``).
    """

    i: int
    t: Tensor
    t_next: Tensor
    x: Tensor
    v: Tensor
    pred_data: Tensor
    pred_noise: Tensor


def _update(x: Tensor, v: Tensor, dt: Tensor) -> Tensor:
    """``x + dt * v``: ``dt * v`` in the promoted dtype of (0-dim ``dt``, ``v``), the sum in at least fp32.

    For fp16 ``x`` and ``v`` this is Hunyuan3D-2's arithmetic (``dt * v`` in fp16, added to ``x`` upcast to
    fp32, rounded back to fp16); for float32 / float64 it is the plain update.
    """
    return (x.to(torch.promote_types(x.dtype, torch.float32)) + dt * v).to(x.dtype)


def _call(model: Model, x: Tensor, t: Tensor, i: int) -> Tensor:
    """``model(x, t)`` with ``t`` 0-dim expanded to ``(B,)``; shape/type errors name the step."""
    v = model(x, t.expand(x.shape[0]))
    if not isinstance(v, Tensor):
        raise FlowlabError(f"model returned {type(v).__name__} at step {i} (t = {float(t):.6g}); "
                           "a velocity model must return a tensor shaped like x")
    if v.shape != x.shape:
        raise FlowlabError(f"model output at step {i} (t = {float(t):.6g}) has shape {tuple(v.shape)}, expected "
                           f"{tuple(x.shape)} (the shape of x): a velocity model returns one velocity per entry of x")
    if v.device != x.device:
        raise FlowlabError(f"model output at step {i} is on {v.device}, x is on {x.device}; keep the model on x's device")
    if v.is_complex() or not v.is_floating_point():
        raise FlowlabError(f"model output at step {i} (t = {float(t):.6g}) has dtype {v.dtype}; a velocity model must "
                           "return a real floating tensor (a complex velocity would be silently cast to its real part)")
    return v


# --- one short function per method: (model, x, v, t, t_next, i, last) -> (x_next, second velocity or None)
# ``v`` is the model's velocity at (x, t), already computed (the callback saw it); ``last`` says this is the
# final step of the schedule.

Step = Callable[[Model, Tensor, Tensor, Tensor, Tensor, int, bool], "tuple[Tensor, Tensor | None]"]


def euler_step(model: Model, x: Tensor, v: Tensor, t: Tensor, t_next: Tensor, i: int,
               last: bool) -> tuple[Tensor, Tensor | None]:
    """``x + (t_next - t) v``: 1st order, no further model call."""
    return _update(x, v, t_next - t), None


def heun_step(model: Model, x: Tensor, v: Tensor, t: Tensor, t_next: Tensor, i: int,
              last: bool) -> tuple[Tensor, Tensor | None]:
    """Trapezoid predictor-corrector: Euler to ``t_next``, ``v2`` there, step with ``(v + v2) / 2``.

    The final step of the schedule is Euler (EDM / k-diffusion), so the model is never asked for the
    velocity at the data endpoint of a schedule without no-op steps."""
    if last:
        return euler_step(model, x, v, t, t_next, i, last)
    dt = t_next - t
    v2 = _call(model, _update(x, v, dt), t_next, i)
    return _update(x, (v + v2) / 2, dt), v2


def midpoint_step(model: Model, x: Tensor, v: Tensor, t: Tensor, t_next: Tensor, i: int,
                  last: bool) -> tuple[Tensor, Tensor | None]:
    """Explicit midpoint: Euler half a step, ``v2`` there, the full step with ``v2``."""
    dt = t_next - t
    half = dt / 2
    v2 = _call(model, _update(x, v, half), t + half, i)
    return _update(x, v2, dt), v2


#: The step function of each method in :data:`METHODS`.
STEPS: dict[str, Step] = {"euler": euler_step, "heun": heun_step, "midpoint": midpoint_step}
assert STEPS.keys() == METHODS.keys()


def _check_arguments(model: object, x: object, schedule: object, conv: Convention, method: str, churn: object,
                     generator: torch.Generator | None, check_schedule: bool) -> None:
    """Every argument error of :func:`sample`, before the loop, as a FlowlabError that says what to pass."""
    if not callable(model):
        raise FlowlabError(f"model must be a callable model(x, t) -> v (e.g. a VelocityMLP or "
                           f"GMM.velocity_model(convention)), got {type(model).__name__} {model!r:.60}")
    if method not in METHODS:
        raise FlowlabError(f"unknown method {method!r}; valid methods: {', '.join(METHODS)}")
    if isinstance(x, Tensor):
        check_tensor(x, "x", where="sample")
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim < 1:
        raise FlowlabError("x must be a floating tensor of shape (B, ...) (a batch of samples at t_noise), got "
                           f"{type(x).__name__ if not isinstance(x, Tensor) else (x.dtype, tuple(x.shape))}")
    if isinstance(churn, bool) or not isinstance(churn, (int, float)) or not churn >= 0 or churn == float("inf"):
        raise FlowlabError(f"churn must be a finite number >= 0 (0 = deterministic), got {churn!r}")
    if churn > 0 and generator is not None and generator.device.type != x.device.type:
        raise FlowlabError(f"generator is on {generator.device} but x is on {x.device}; pass a generator on x's "
                           "device (torch.Generator(device=x.device).manual_seed(seed))")
    if check_schedule:
        validate(schedule, conv, allow_noop=True)
    elif not isinstance(schedule, Tensor) or schedule.ndim != 1 or schedule.numel() < 2:
        raise FlowlabError("schedule must be a 1-D tensor with at least 2 points")


def sample(
    model: Model,
    x: Tensor,
    schedule: Tensor,
    convention: Convention | str,
    *,
    method: str = "euler",
    callback: Callable[[StepInfo], None] | None = None,
    churn: float = 0.0,
    generator: torch.Generator | None = None,
    check_finite: bool = True,
    check_schedule: bool = True,
) -> Tensor:
    """Integrate ``model`` from noise to data along ``schedule``; returns ``x`` at ``schedule[-1]``.

    Args:
        model: ``model(x, t) -> v``; ``x: (B, ...)``, ``t: (B,)`` in ``convention``'s time (schedule dtype,
            x's device), ``v`` shaped like ``x``.
        x: ``(B, ...)`` samples at ``t_noise`` (usually ``randn``). Its dtype and device are kept.
        schedule: ``(S + 1,)`` times from ``t_noise`` to ``t_data`` (see :mod:`flowlab.schedules`); no-op
            steps (``t_next == t``, Hunyuan3D-2's last step) are allowed: they cost a call and move nothing.
        convention: a :class:`Convention` or its name (``"conventional"``, ``"reversed"``, ...).
        method: ``"euler"``, ``"heun"`` or ``"midpoint"`` (see :data:`METHODS`). Heun evaluates the model at
            ``t_next``; the final step of the schedule is an Euler step (as in EDM / k-diffusion), which keeps
            2nd order and, for a schedule without no-op steps, never asks the model for the velocity at the
            data endpoint. (With :func:`flowlab.schedules.hunyuan_compat` the final step is the no-op
            ``1 -> 1``, so the step before it is a full Heun step that evaluates the model at ``t = 1``;
            velocity models are defined there.) Midpoint never evaluates at ``t_data``.
        callback: called once per step with a :class:`StepInfo` (x, t, v and the data / noise predictions by
            the convention's derived formulas).
        churn: stochastic re-noising ``gamma >= 0``. Before step ``i >= 1`` (``t -> t_next``, ``dt = t_next - t``)
            time moves back toward noise to ``t_hat = t - gamma * dt`` (clamped at ``t_noise``) and ``x`` is
            re-noised exactly along the convention's path ``x = alpha D + beta E``:
            ``x_hat = (alpha(t_hat) / alpha(t)) x + sqrt(beta(t_hat)^2 - (alpha(t_hat) beta(t) / alpha(t))^2) z``,
            ``z ~ N(0, I)`` from ``generator``. If ``x`` has the marginal of time ``t`` then ``x_hat`` has the
            marginal of ``t_hat`` exactly; the step then runs ``t_hat -> t_next``. ``0`` is the deterministic ODE.
        generator: a ``torch.Generator`` on ``x``'s device for the churn noise (None: torch's global RNG).
            The result is a deterministic function of ``x``, the model and the generator's state.
        check_finite: after the loop (one sync), raise :class:`~flowlab.errors.NonFiniteError` (a FlowlabError)
            naming the first step index and ``t`` whose velocity (or updated state) contains NaN or inf.
        check_schedule: validate ``schedule`` against ``convention`` before the loop (one sync).

    Returns:
        ``(B, ...)`` samples at ``t_data``, same dtype and device as ``x``.
    """
    conv = get_convention(convention)
    _check_arguments(model, x, schedule, conv, method, churn, generator, check_schedule)
    step = STEPS[method]
    ts = schedule.to(device=x.device)
    n_steps = ts.shape[0] - 1
    work = torch.promote_types(x.dtype, torch.float32)
    lo, hi = sorted((conv.noise_time, conv.data_time))
    if check_finite:
        ok_v = torch.ones(n_steps, dtype=torch.bool, device=x.device)
        ok_x = torch.ones(n_steps, dtype=torch.bool, device=x.device)
        ok_in = torch.isfinite(x).all()

    for i in range(n_steps):
        t, t_next = ts[i], ts[i + 1]
        if churn > 0 and i > 0:
            t_hat = (t - churn * (t_next - t)).clamp(lo, hi)
            x = _renoise(conv, x, t, t_hat, generator, work)
            t = t_hat
        v = _call(model, x, t, i)
        if callback is not None:
            tb = t.expand(x.shape[0])
            with times_checked():  # t comes from the schedule checked above; no host sync in the loop
                info = StepInfo(i=i, t=tb, t_next=t_next, x=x, v=v,
                                pred_data=conv.pred_data(x, v, tb), pred_noise=conv.pred_noise(x, v, tb))
            callback(info)
        x_next, v2 = step(model, x, v, t, t_next, i, i == n_steps - 1)
        if check_finite:
            ok_v[i] = torch.isfinite(v).all() if v2 is None else torch.isfinite(v).all() & torch.isfinite(v2).all()
            ok_x[i] = torch.isfinite(x_next).all()
        x = x_next

    if check_finite and not bool(ok_in & ok_v.all() & ok_x.all()):
        _raise_non_finite(ok_in, ok_v, ok_x, ts, conv, model)
    return x


def _renoise(conv: Convention, x: Tensor, t: Tensor, t_hat: Tensor, generator: torch.Generator | None,
             work: torch.dtype) -> Tensor:
    """Move ``x`` from the marginal at ``t`` to the marginal at the noisier ``t_hat`` (exact for affine paths)."""
    a, b, _, _ = conv.coefficients(t.to(work))
    a_hat, b_hat, _, _ = conv.coefficients(t_hat.to(work))
    safe = a != 0
    ratio = torch.where(safe, a_hat / torch.where(safe, a, torch.ones_like(a)), torch.ones_like(a))
    std = (b_hat * b_hat - (ratio * b) ** 2).clamp_min(0).sqrt()
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=work)
    return (ratio * x.to(work) + std * z).to(x.dtype)


def _inner_models(model: object) -> list[object]:
    """The callables a model wrapper holds (its attributes, a bound method's object, a closure's cells),
    found without knowing any wrapper's attribute names."""
    if isinstance(model, types.MethodType):
        return [model.__self__]
    if isinstance(model, types.FunctionType):
        cells = []
        for cell in model.__closure__ or ():
            try:
                cells.append(cell.cell_contents)
            except ValueError:  # an empty cell
                pass
        return [c for c in cells if callable(c)]
    return [v for v in getattr(model, "__dict__", {}).values() if callable(v) or isinstance(v, torch.nn.Module)]


def _non_finite_weight(model: object, depth: int = 0, seen: set[int] | None = None) -> str | None:
    """The name of the first parameter holding NaN / inf in ``model`` or the models it wraps, else None."""
    seen = set() if seen is None else seen
    if depth > 4 or model is None or id(model) in seen:
        return None
    seen.add(id(model))
    if isinstance(model, torch.nn.Module):
        for name, p in model.named_parameters():
            if not bool(torch.isfinite(p).all()):
                return f"{type(model).__name__}.{name}"
        return None
    for inner in _inner_models(model):
        found = _non_finite_weight(inner, depth + 1, seen)
        if found:
            return found
    return None


def _raise_non_finite(ok_in: Tensor, ok_v: Tensor, ok_x: Tensor, ts: Tensor, conv: Convention,
                      model: object = None) -> None:
    sym = conv.symbol
    if not bool(ok_in):
        raise NonFiniteError("the initial x contains NaN or inf; start from finite noise (e.g. torch.randn)")
    weight = _non_finite_weight(model)
    if weight is not None:
        raise NonFiniteError(f"the model's weight {weight} contains NaN or inf, so its velocity is NaN at every step; "
                           "the weights are damaged or training diverged: load or train them again")
    bad_v = (~ok_v).nonzero().flatten().tolist()
    bad_x = (~ok_x).nonzero().flatten().tolist()
    times = ts.detach().to("cpu", torch.float64).tolist()
    if bad_v and (not bad_x or bad_v[0] <= bad_x[0]):
        i = bad_v[0]
        raise NonFiniteError(
            f"the model returned NaN or inf at step {i} ({sym} = {times[i]:.6g} -> {times[i + 1]:.6g}; "
            f"{len(bad_v)} of {len(times) - 1} steps affected). Check the model at that time (division by "
            "zero at an endpoint? a wrong time convention? inputs or a guidance scale too large for the dtype?)")
    i = bad_x[0]
    raise NonFiniteError(
        f"the state x became NaN or inf at step {i} ({sym} = {times[i]:.6g} -> {times[i + 1]:.6g}) although the "
        "velocity was finite: the update overflowed x's dtype; sample in float32 or scale the data down")


# --- model wrappers ---------------------------------------------------------------------------------

class Flipped:
    """A velocity model moved to the other straight convention: ``v'(x, t') = -v(x, 1 - t')``.

    Conventional (``sigma``: 1 -> 0) and reversed (``t``: 0 -> 1) are mirror images under ``t = 1 - sigma``;
    the velocity changes sign with the direction of time. Build with :func:`flip`.
    """

    def __init__(self, model: Model) -> None:
        self.model = model

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        return F.flip_velocity(self.model(x, 1 - t))

    def __repr__(self) -> str:
        return f"flip({self.model!r})"


def flip(model: Model) -> Model:
    """Turn a CONVENTIONAL velocity model into a REVERSED one or vice versa (``t' = 1 - t``, ``v' = -v``).

    ``flip(flip(m)) is m``. With a flipped model the other convention's sampler retraces the same points
    (up to float round-off).
    """
    if isinstance(model, Flipped):
        return model.model
    if not callable(model):
        raise FlowlabError(f"flip() needs a callable model(x, t) -> v, got {type(model).__name__}")
    return Flipped(model)


class Guided:
    """Classifier-free guidance on the velocity: ``v = v_uncond + scale * (v_cond - v_uncond)``.

    ``scale = 1`` is no guidance (just ``v_cond``), ``scale = 0`` is the unconditional model; this is the
    diffusers / SD3 / Hunyuan3D-2 scale ``g``. facebookresearch/flow_matching's ``w`` is ``g - 1``.
    CFG is linear in ``v``, so it commutes with :func:`flip` and with ``v -> pred_data``.
    """

    def __init__(self, model_cond: Model, model_uncond: Model, scale: float) -> None:
        self.model_cond = model_cond
        self.model_uncond = model_uncond
        self.scale = scale

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        return F.cfg(self.model_cond(x, t), self.model_uncond(x, t), self.scale)

    def __repr__(self) -> str:
        return f"guided(cond={self.model_cond!r}, uncond={self.model_uncond!r}, scale={self.scale!r})"


def guided(model_cond: Model, model_uncond: Model, scale: float) -> Guided:
    """Classifier-free guidance wrapper, ``uncond + scale * (cond - uncond)`` (``scale = 1``: no guidance)."""
    if not callable(model_cond) or not callable(model_uncond):
        raise FlowlabError("guided() needs two callables model(x, t) -> v (conditional, unconditional)")
    check_scale(scale, "guidance scale")
    if isinstance(scale, Tensor) and scale.ndim > 1:
        raise FlowlabError(f"guidance scale must be a number, a 0-dim tensor or a per-sample (B,) tensor, got shape "
                           f"{tuple(scale.shape)}")
    return Guided(model_cond, model_uncond, scale if isinstance(scale, Tensor) else float(scale))


class CallCounter:
    """Wraps a model and counts its calls (``.calls``): N model calls vs effective steps, cost tables."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.calls = 0

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        self.calls += 1
        return self.model(x, t)

    def __repr__(self) -> str:
        return f"CallCounter({self.model!r}, calls={self.calls})"


# --- recording ----------------------------------------------------------------------------------------

@dataclass
class Trajectory:
    """Everything a plot needs, stacked over steps (a callback for :func:`sample`; see :func:`trajectory`).

    After sampling with ``S`` steps: ``ts (S + 1,)`` (the time of each state, the last is ``t_data``),
    ``xs (S + 1, B, ...)``, ``vs``, ``pred_data``, ``pred_noise`` each ``(S, B, ...)``. Stored detached, on
    the samples' device.
    """

    _t: list = field(default_factory=list, repr=False)
    _x: list = field(default_factory=list, repr=False)
    _v: list = field(default_factory=list, repr=False)
    _d: list = field(default_factory=list, repr=False)
    _e: list = field(default_factory=list, repr=False)
    _final: Tensor | None = field(default=None, repr=False)
    _t_final: Tensor | None = field(default=None, repr=False)

    def __call__(self, info: StepInfo) -> None:
        self._t.append(info.t[0].detach().clone())
        self._x.append(info.x.detach().clone())
        self._v.append(info.v.detach().clone())
        self._d.append(info.pred_data.detach().clone())
        self._e.append(info.pred_noise.detach().clone())
        self._t_final = info.t_next.detach().clone()

    def finish(self, x: Tensor) -> None:
        """Record the final samples (at ``t_data``)."""
        self._final = x.detach().clone()

    @property
    def ts(self) -> Tensor:
        return torch.stack(self._t + ([self._t_final] if self._t_final is not None else []))

    @property
    def xs(self) -> Tensor:
        return torch.stack(self._x + ([self._final] if self._final is not None else []))

    @property
    def vs(self) -> Tensor:
        return torch.stack(self._v)

    @property
    def pred_data(self) -> Tensor:
        return torch.stack(self._d)

    @property
    def pred_noise(self) -> Tensor:
        return torch.stack(self._e)


def trajectory(model: Model, x: Tensor, schedule: Tensor, convention: Convention | str, *, method: str = "euler",
               churn: float = 0.0, generator: torch.Generator | None = None) -> Trajectory:
    """:func:`sample` with a :class:`Trajectory` recorder; returns the recorder (final samples: ``.xs[-1]``)."""
    if isinstance(x, Tensor) and x.ndim >= 1 and x.shape[0] == 0:
        raise FlowlabError("trajectory: x holds 0 samples (shape " + str(tuple(x.shape)) + "), so there is no path to "
                           "record; pass at least one sample")
    rec = Trajectory()
    out = sample(model, x, schedule, convention, method=method, callback=rec, churn=churn, generator=generator)
    rec.finish(out)
    return rec
