"""Sampling schedules: 1-D tensors of times, from the noise endpoint to the data endpoint.

A schedule for convention ``c`` is a 1-D floating tensor ``ts`` with ``ts[0] = c.t_noise`` and
``ts[-1] = c.t_data``, monotone in the convention's direction of time:

* conventional: ``sigma`` runs 1 -> 0 (decreasing), e.g. ``[1.0, 0.75, 0.5, 0.25, 0.0]``;
* reversed (Hunyuan3D-2): ``t`` runs 0 -> 1 (increasing), e.g. ``[0.0, 0.25, 0.5, 0.75, 1.0]``.

``len(ts) - 1`` steps, one model call per step for Euler. Every builder validates what it returns
(:func:`validate`), so a schedule that goes the wrong way or misses an endpoint never reaches the
sampler. Builders compute in float64 and round once to ``dtype`` (float32 by default), like
``torch.from_numpy(np.linspace(...)).to(torch.float32)`` does in the reference pipelines.

The noise level ``u`` used by :func:`shifted` is the fraction of the way from the data to the noise
endpoint: ``u = (t - t_data) / (t_noise - t_data)`` (conventional: ``u = sigma``; reversed:
``u = 1 - t``). Convention-independent statements are made in ``u``.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .conventions import REVERSED, Convention, get_convention
from .errors import FlowlabError
from .inputs import check_tensor

__all__ = [
    "uniform",
    "shifted",
    "hunyuan_compat",
    "hunyuan_corrected",
    "hunyuan_turbo",
    "to_conventional",
    "to_reversed",
    "validate",
    "noise_level",
    "n_effective_steps",
]


#: The most steps a schedule builder makes (1e7 steps: an 80 MB float64 grid; float32 times 1e-7 apart
#: are already round-off).
MAX_SCHEDULE_STEPS = 10_000_000


def _check_count(n: int, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise FlowlabError(f"{what} must be a positive integer, got {n!r}")
    if n <= 0:
        raise FlowlabError(f"{what} must be >= 1, got {n}; a schedule needs at least one step")
    if n > MAX_SCHEDULE_STEPS:
        raise FlowlabError(f"{what} = {n} is more than the {MAX_SCHEDULE_STEPS:,} steps a flowlab schedule can have "
                           f"(its float64 grid alone would take {8 * (n + 1) / 2**30:.3g} GiB, and float32 times closer "
                           "than 1e-7 are round-off); use fewer steps")
    return n


def _finish(u: Tensor, conv: Convention, dtype: torch.dtype, device: torch.device | str | None,
            *, allow_noop: bool = False) -> Tensor:
    """Turn float64 noise levels ``u`` (1 = noise, 0 = data) into validated times of ``conv``."""
    t_noise, t_data = conv.noise_time, conv.data_time
    ts = t_data + u * (t_noise - t_data)
    ts[0], ts[-1] = t_noise, t_data  # endpoints exact, whatever the round-off above
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise FlowlabError(f"dtype must be a floating torch dtype (torch.float32, torch.float64, ...), got {dtype!r}")
    out = ts.to(dtype=dtype, device=device)
    if not allow_noop:
        same = (out[1:] == out[:-1]).nonzero().flatten()
        if same.numel():
            i = int(same[0])
            raise FlowlabError(
                f"{ts.numel() - 1} steps are too many for {dtype}: times closer than its resolution round to the "
                f"same value (step {i}: {float(out[i]):.6g} -> {float(out[i + 1]):.6g}, {same.numel()} such steps), "
                f"which would waste model calls. Use fewer steps or a wider dtype (torch.float32 / torch.float64)")
    validate(out, conv, allow_noop=allow_noop)
    return out


def uniform(n_steps: int, convention: Convention | str, *, dtype: torch.dtype = torch.float32,
            device: torch.device | str | None = None) -> Tensor:
    """``n_steps + 1`` equally spaced times from ``t_noise`` to ``t_data``: shape ``(n_steps + 1,)``.

    conventional: ``sigma = 1, 1 - 1/n, ..., 0``; reversed: ``t = 0, 1/n, ..., 1``.
    """
    n = _check_count(n_steps, "n_steps")
    conv = get_convention(convention)
    u = torch.linspace(1.0, 0.0, n + 1, dtype=torch.float64)
    return _finish(u, conv, dtype, device)


def shift_noise_level(u: Tensor | float, shift: float) -> Tensor | float:
    """SD3 time shift on the noise level: ``u' = s u / (1 + (s - 1) u)``, ``u in [0, 1]`` (1 = noise).

    The one place flowlab writes this formula (the schedules, the atlas, the inspector's fit and the shape
    pipeline call it). Its inverse is the shift by ``1 / s``. Fixes 0 and 1; ``s > 1`` raises every interior noise level (steps move toward NOISE),
    ``s < 1`` lowers them, ``s = 1`` is the identity.
    """
    return shift * u / (1 + (shift - 1) * u)


def shifted(n_steps: int, convention: Convention | str, shift: float, *, dtype: torch.dtype = torch.float32,
            device: torch.device | str | None = None) -> Tensor:
    """Uniform steps with the SD3 shift applied to the noise level, so ``shift > 1`` means "toward noise".

    The shift acts on ``u`` (see the module docstring): conventional ``sigma' = s sigma / (1 + (s - 1) sigma)``
    (the SD3 / Flux formula), reversed ``t' = 1 - s (1 - t) / (1 + (s - 1)(1 - t))``. Applying the SD3
    formula unchanged to the reversed ``t`` would push the steps toward the DATA instead (trap 4 in
    conventions.md). ``shift`` must be a positive finite number; 1 gives :func:`uniform`.
    Shape ``(n_steps + 1,)``.
    """
    n = _check_count(n_steps, "n_steps")
    conv = get_convention(convention)
    if isinstance(shift, bool) or not isinstance(shift, (int, float)) or not math.isfinite(shift) or shift <= 0:
        raise FlowlabError(f"shift must be a positive finite number (1 = no shift, > 1 = toward noise), got {shift!r}")
    u = torch.linspace(1.0, 0.0, n + 1, dtype=torch.float64)
    return _finish(shift_noise_level(u, float(shift)), conv, dtype, device)


def hunyuan_compat(n_calls: int, *, dtype: torch.dtype = torch.float32,
                   device: torch.device | str | None = None) -> Tensor:
    """Hunyuan3D-2's schedule as its pipeline builds it (reversed convention, ``t`` runs 0 -> 1).

    ``sigmas = linspace(0, 1, N)`` (float64, rounded to float32) with ``1.0`` appended by the
    scheduler: ``N + 1`` points, ``N`` model calls, but the last step goes ``1.0 -> 1.0`` (dt = 0,
    a wasted call), so only ``N - 1`` effective steps of size ``1 / (N - 1)`` (for ``N >= 2``;
    ``N = 1`` gives ``[0, 1]``, one step). See :func:`hunyuan_corrected` for the fix.
    Shape ``(n_calls + 1,)``.
    """
    n = _check_count(n_calls, "n_calls")
    t = torch.from_numpy(np.linspace(0.0, 1.0, n))  # float64, exactly as the reference builds it
    ts = torch.cat([t.to(dtype), torch.ones(1, dtype=dtype)]).to(device)
    validate(ts, REVERSED, allow_noop=True)
    return ts


def hunyuan_corrected(n_calls: int, *, dtype: torch.dtype = torch.float32,
                      device: torch.device | str | None = None) -> Tensor:
    """The fix for :func:`hunyuan_compat`: ``linspace(0, 1, N + 1)``, ``N`` calls, ``N`` effective steps.

    Reversed convention (``t`` runs 0 -> 1). Shape ``(n_calls + 1,)``.
    """
    return uniform(n_calls, REVERSED, dtype=dtype, device=device)


def hunyuan_turbo(n_calls: int, pcm_timesteps: int = 100, *, dtype: torch.dtype = torch.float32,
                  device: torch.device | str | None = None) -> Tensor:
    """Hunyuan3D-2 turbo ("consistency flow match") schedule, reversed convention.

    The scheduler keeps a grid ``g = linspace(0, 1, 1000)`` and ``pcm_timesteps`` anchor indices
    ``[0, r - 1, 2 r - 1, ..., (pcm - 1) r - 1]`` with ``r = 1000 // pcm_timesteps``; inference takes the
    anchors at positions ``floor(linspace(0, pcm, N, endpoint=False))`` and appends 1.0. So ``N`` calls,
    ``N`` effective steps (no wasted step). ``N = 5, pcm = 100`` gives
    ``[0, 0.1992, 0.3994, 0.5996, 0.7998, 1.0]``. Needs ``1 <= n_calls <= pcm_timesteps <= 1000``.
    The reference keeps this grid in float64: pass ``dtype=torch.float64`` to match it bit for bit.
    Shape ``(n_calls + 1,)``.
    """
    n = _check_count(n_calls, "n_calls")
    pcm = _check_count(pcm_timesteps, "pcm_timesteps")
    train = 1000
    if pcm > train:
        raise FlowlabError(f"pcm_timesteps must be <= {train}, got {pcm}")
    if n > pcm:
        raise FlowlabError(f"hunyuan_turbo: n_calls = {n} exceeds pcm_timesteps = {pcm}; "
                           f"use at most {pcm} calls or a larger pcm_timesteps")
    ratio = train // pcm
    grid = torch.from_numpy(np.linspace(0.0, 1.0, train))
    anchors = torch.cat([torch.zeros(1, dtype=torch.long), torch.arange(1, pcm, dtype=torch.long) * ratio - 1])
    # positions floor(k * pcm / n), k = 0..n-1, in exact integer arithmetic
    positions = torch.tensor([(k * pcm) // n for k in range(n)], dtype=torch.long)
    ts = torch.cat([grid[anchors[positions]].to(dtype), torch.ones(1, dtype=dtype)]).to(device)
    validate(ts, REVERSED)
    return ts


def to_conventional(schedule: Tensor) -> Tensor:
    """A reversed-convention schedule (``t``: 0 -> 1) as conventional ``sigma = 1 - t`` (1 -> 0).

    Raises :class:`FlowlabError` if ``schedule`` is not a valid reversed schedule (no-op steps allowed).
    """
    validate(schedule, REVERSED, allow_noop=True)
    return 1 - schedule


def to_reversed(schedule: Tensor) -> Tensor:
    """A conventional schedule (``sigma``: 1 -> 0) as reversed ``t = 1 - sigma`` (0 -> 1)."""
    from .conventions import CONVENTIONAL

    validate(schedule, CONVENTIONAL, allow_noop=True)
    return 1 - schedule


def noise_level(schedule: Tensor, convention: Convention | str) -> Tensor:
    """``u = (t - t_data) / (t_noise - t_data)`` in [0, 1], 1 = noise: convention-free step positions."""
    conv = get_convention(convention)
    t_noise, t_data = conv.noise_time, conv.data_time
    return (schedule - t_data) / (t_noise - t_data)


def n_effective_steps(schedule: Tensor) -> int:
    """Number of steps with ``t_next != t`` (a no-op step costs a model call but moves nothing).

    Reads the values (one host sync); use it outside sampling loops.
    """
    values = schedule.detach().to("cpu", torch.float64)
    return int((values[1:] != values[:-1]).sum())


def validate(schedule: Tensor, convention: Convention | str, *, allow_noop: bool = False) -> Tensor:
    """Check that ``schedule`` is a usable schedule for ``convention``; return it unchanged.

    Requirements: a 1-D floating tensor with at least 2 finite points; ``schedule[0] == t_noise`` and
    ``schedule[-1] == t_data`` exactly; strictly monotone in the convention's direction of time
    (conventional decreasing, reversed increasing). Repeated points (no-op steps such as
    Hunyuan3D-2's final ``1.0 -> 1.0``) are accepted only with ``allow_noop=True``.
    Reads the values once (a host sync on GPU). Raises :class:`FlowlabError` saying what is wrong.
    """
    conv = get_convention(convention)
    if not isinstance(schedule, Tensor):
        raise FlowlabError(f"a schedule must be a 1-D torch tensor, got {type(schedule).__name__}; "
                           "build one with flowlab.schedules.uniform")
    if schedule.ndim != 1:
        raise FlowlabError(f"a schedule must be 1-D, got shape {tuple(schedule.shape)}")
    check_tensor(schedule, "schedule", where="validate", floating=False)
    if not schedule.is_floating_point():
        raise FlowlabError(f"a schedule must have a floating dtype, got {schedule.dtype}")
    if schedule.numel() < 2:
        raise FlowlabError(f"a schedule needs at least 2 points (one step), got {schedule.numel()}")
    vals = schedule.detach().to("cpu", torch.float64).tolist()
    if not all(math.isfinite(v) for v in vals):
        raise FlowlabError(f"schedule contains NaN or inf: {_short(vals)}")
    t_noise, t_data = conv.noise_time, conv.data_time
    name, sym = conv.name, conv.symbol
    if vals[0] == t_data and vals[-1] == t_noise:
        raise FlowlabError(
            f"schedule goes the wrong way for the {name} convention: it runs {sym} = {vals[0]:g} -> {vals[-1]:g}, "
            f"i.e. from data to noise; {name} sampling runs {sym} = {t_noise:g} (noise) -> {t_data:g} (data). "
            "Use the other convention, or convert with schedules.to_conventional / to_reversed")
    if vals[0] != t_noise:
        raise FlowlabError(f"schedule must start at the noise endpoint {sym} = {t_noise:g} for the {name} "
                           f"convention, got {vals[0]!r} ({_short(vals)})")
    if vals[-1] != t_data:
        raise FlowlabError(f"schedule must end exactly at the data endpoint {sym} = {t_data:g} for the {name} "
                           f"convention, got {vals[-1]!r} ({_short(vals)}); a sampler that stops short leaves "
                           "noise in the sample, one that overshoots produces garbage")
    sign = conv.direction
    for i in range(len(vals) - 1):
        d = (vals[i + 1] - vals[i]) * sign
        if d < 0:
            raise FlowlabError(
                f"schedule is not monotone: step {i} goes {sym} = {vals[i]!r} -> {vals[i + 1]!r}, against the "
                f"{name} direction ({t_noise:g} -> {t_data:g}); every step must move toward the data")
        if d == 0 and not allow_noop:
            raise FlowlabError(
                f"schedule has a no-op step {i}: {sym} = {vals[i]!r} -> {vals[i + 1]!r} (dt = 0 wastes a model "
                "call); remove the repeated point, or pass allow_noop=True for Hunyuan3D-2-compatible schedules")
    return schedule


def _short(vals: list[float]) -> str:
    if len(vals) <= 8:
        return "[" + ", ".join(f"{v:.6g}" for v in vals) + "]"
    head = ", ".join(f"{v:.6g}" for v in vals[:3])
    tail = ", ".join(f"{v:.6g}" for v in vals[-3:])
    return f"[{head}, ..., {tail}] ({len(vals)} points)"
