"""``check_sampler``: a black-box check of a user's sampling loop against the exact flow of a Gaussian mixture.

The contract: the user's loop is a function ``fn(model, x, steps) -> samples``. flowlab calls it ONCE with

* ``model``: the exact velocity of an asymmetric Gaussian mixture (:func:`flowlab.testing._exact.probe_mixture`)
  in the declared ``convention``, taking time on the declared ``time_scale`` and called with the declared
  ``signature``: ``model(x, t)`` ("positional"), ``model(x, timestep=t).sample`` ("diffusers"; also
  ``return_dict=False`` -> a tuple) or ``model(x, t, cond)`` ("hunyuan"; ``cond`` is ignored). It returns the
  velocity (conventional ``E - D``, reversed ``D - E``) in ``x``'s dtype and device;
* ``x``: ``(batch, dim)`` standard Gaussian noise in ``dtype`` on ``device`` (the loop must not overwrite it);
* ``steps``: how many steps the loop should take (an adaptive solver may ignore it).

The loop builds its own schedule (or scheduler) and returns the samples at the data endpoint, shape and dtype
of ``x``. The model records every call; the output is compared with the exact ODE solution from the same noise
(RK4 in float64). The tolerance is 2x the error of a CORRECT Euler loop from the same noise with ``steps``
uniform steps, or on the loop's own grid of times (its distinct call times, noise -> data) if that is larger
(first order: the error halves when the steps double), so a coarse but correct Euler, Heun, midpoint or adaptive
loop, on any schedule, passes and a wrong one fails. Each known mistake is diagnosed by evaluating its own behaviour
on the records (see :mod:`flowlab.testing._records`), never by matching outputs alone.
"""
from __future__ import annotations

import math
import traceback
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
from torch import Tensor

from ..conventions import get_convention
from ..errors import FlowlabError
from . import _records as R
from ._exact import SIGNATURES, ProbeModel, euler_error, probe_mixture, reference_error, reference_states, rel_rms
from .report import Finding, Report

__all__ = ["check_sampler", "SAFETY"]

#: The tolerance is SAFETY x the error of a correct Euler loop with the same number of uniform steps (or on the
#: loop's own grid of times, whichever is larger).
SAFETY = 2.0
_ROUNDOFF = {torch.float64: 1e-9, torch.float32: 2e-5, torch.float16: 2e-2, torch.bfloat16: 8e-2}
_EXPLAINS = {"time_scale", "wrong_direction", "t_vs_sigma", "sign_flip", "noise_as_data", "not_at_data"}


@contextmanager
def _one_thread() -> Iterator[None]:
    """Tiny tensors: one thread is 30x faster than oversubscribed OpenMP on shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _check_args(convention: Any, time_scale: float, signature: str, dim: int, steps: int, batch: int,
                shift: float | None, dtype: torch.dtype) -> None:
    conv = get_convention(convention)
    if not conv.is_straight:
        raise FlowlabError(f"check_sampler handles the straight conventions ('conventional', 'reversed'); "
                           f"{conv.name!r} is not straight")
    if isinstance(time_scale, bool) or not isinstance(time_scale, (int, float)) or not math.isfinite(time_scale) \
            or time_scale <= 0:
        raise FlowlabError(f"time_scale must be a positive number (1 for t in [0, 1], 1000 for diffusers-style "
                           f"timesteps), got {time_scale!r}")
    if signature not in SIGNATURES:
        raise FlowlabError(f"signature must be one of {', '.join(SIGNATURES)}, got {signature!r}")
    for name, value, lo in (("dim", dim, 2), ("steps", steps, 1), ("batch", batch, 8)):
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise FlowlabError(f"{name} must be an integer >= {lo}, got {value!r}")
    if dim not in (2, 3):
        raise FlowlabError(f"dim must be 2 or 3 (the probe mixtures are 2-D and 3-D), got {dim}")
    if shift is not None and (isinstance(shift, bool) or not isinstance(shift, (int, float))
                              or not math.isfinite(shift) or shift <= 0):
        raise FlowlabError(f"shift must be None (do not check the schedule's shape) or a positive number "
                           f"(the SD3 shift the loop is meant to use, 1 = none), got {shift!r}")
    if dtype not in _ROUNDOFF:
        raise FlowlabError(f"dtype must be one of {', '.join(str(d) for d in _ROUNDOFF)}, got {dtype!r}")


def _bad_output(out: Any, x: Tensor) -> Finding | None:
    if not isinstance(out, Tensor):
        return Finding("bad_output", f"the loop returned a {type(out).__name__}, not a tensor")
    problems = []
    if tuple(out.shape) != tuple(x.shape):
        problems.append(f"shape {tuple(out.shape)} (expected {tuple(x.shape)})")
    if out.dtype != x.dtype:
        problems.append(f"dtype {out.dtype} (expected {x.dtype})")
    if out.device != x.device:
        problems.append(f"device {out.device} (expected {x.device})")
    if out.is_floating_point() and not bool(torch.isfinite(out).all()):
        problems.append(f"{int((~torch.isfinite(out)).sum())} non-finite values")
    if problems:
        return Finding("bad_output", "the loop's output has " + ", ".join(problems), {})
    return None


def check_sampler(fn: Callable[..., Any], convention: Any = "conventional", *, time_scale: float = 1.0,
                  signature: str = "positional", dim: int = 2, steps: int = 50, batch: int = 64,
                  shift: float | None = None, dtype: torch.dtype = torch.float32,
                  device: str | torch.device = "cpu", seed: int = 0, name: str | None = None) -> Report:
    """Run ``fn(model, x, steps)`` once on the exact model (see the module docstring) and report what is wrong.

    Args:
        fn: the user's sampling loop.
        convention: the convention the loop's model is trained in ("conventional": sigma 1 -> 0, data at 0;
            "reversed": t 0 -> 1, data at 1, Hunyuan3D-2).
        time_scale: what the model's time is multiplied by (1000 for diffusers' 0-1000 timesteps).
        signature: "positional", "diffusers" or "hunyuan" (see the module docstring).
        dim: 2 or 3 (the mixture's dimension). steps: passed to the loop. batch: rows of ``x``.
        shift: the SD3 shift the loop is MEANT to use (checks the schedule's shape: double_shift, wrong_shift);
            None skips that check.
        dtype, device: of ``x``. seed: of the noise. name: how the report names the loop.

    Returns:
        a :class:`~flowlab.testing.report.Report`; ``report.ok`` when nothing is wrong.
    """
    _check_args(convention, time_scale, signature, dim, steps, batch, shift, dtype)
    if not callable(fn):
        raise FlowlabError(f"fn must be the sampling loop, a callable fn(model, x, steps); got {type(fn).__name__}")
    conv = get_convention(convention)
    subject = name or getattr(fn, "__qualname__", None) or repr(fn)
    with _one_thread():
        gmm = probe_mixture(dim)
        model = ProbeModel(gmm, conv, float(time_scale), signature)
        x = torch.randn(batch, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        x = x.to(dtype=dtype, device=device)
        given = x.clone()
        try:
            out = fn(model, x, steps)
        except FlowlabError as exc:
            raise FlowlabError(f"{subject} used the exact model wrongly: {exc}") from None
        except Exception as exc:  # the user's code failed: say where, as a usage problem of the check
            where = traceback.extract_tb(exc.__traceback__)[-1]
            raise FlowlabError(f"{subject} raised {type(exc).__name__}: {exc} (at {where.filename}:{where.lineno}); "
                               f"the loop is called as fn(model, x, steps) with {model!r}") from None
        findings: list[Finding] = []
        if not torch.equal(x, given):
            findings.append(Finding("mutates_input", "the loop overwrote the noise tensor it was given "
                                    "(an in-place update such as x += dt * v on the caller's tensor)",
                                    {"max_change": float((x.double() - given.double()).abs().max())}))
        bad = _bad_output(out, given)
        if bad is not None:
            return Report(subject, tuple(findings + [bad]), {"calls": len(model.calls)})
        return _diagnose(subject, model, given, out, steps, shift, dtype, findings)


def _diagnose(subject: str, model: ProbeModel, x0: Tensor, out: Tensor, steps: int, shift: float | None,
              dtype: torch.dtype, findings: list[Finding]) -> Report:
    conv, gmm = model.convention, model.gmm
    x64, final = x0.detach().cpu().double(), out.detach().cpu().double()
    ref = reference_states(gmm, conv, x64, [float(conv.t_data)])[0]
    e_euler = euler_error(gmm, conv, x64, ref, steps)
    tol = max(SAFETY * e_euler, _ROUNDOFF[dtype])
    err = rel_rms(final, ref)
    facts: dict[str, Any] = {"calls": len(model.calls), "error": err, "tolerance": tol,
                             "correct_euler_error": e_euler, "reference_error": reference_error(gmm, conv, x64)}
    if not model.calls:
        findings.append(Finding("unknown_mismatch" if err > tol else "bad_output",
                                "the loop never called the model", {"error": err, "tolerance": tol}))
        return Report(subject, tuple(findings), facts)
    eps = {torch.float64: 2.2e-16, torch.float32: 1.2e-7, torch.float16: 9.8e-4, torch.bfloat16: 7.8e-3}[dtype]
    evs = R.evaluations(model.calls, x64.shape[0])
    prs = R.pairs(evs, final, eps)
    wasted = [p for p in prs if not p.moved]
    facts["effective_steps"] = len(model.calls) - sum(1 for p in wasted)
    scale_factor = _time_scale(model, evs, findings)
    times = [e.t * scale_factor for e in evs]
    sign = _direction(conv, times, prs, scale_factor, findings)
    sign, follows = (sign, True) if sign != 0 else (1, False)
    if wasted:
        findings.append(Finding("wasted_last_step",
                                f"{len(wasted)} model call(s) moved nothing (dt = 0): {facts['effective_steps']} "
                                f"effective steps of {len(model.calls)} calls",
                                {"calls": len(model.calls), "effective_steps": facts["effective_steps"],
                                 "wasted_at_" + conv.symbol: [p.t * scale_factor for p in wasted]}))
    _fp16(model, evs, prs, scale_factor, findings, check_pattern=not {f.code for f in findings} & _EXPLAINS)
    codes = {f.code for f in findings}
    if sign > 0 and not codes & _EXPLAINS:
        # the loop's own times are a valid grid too (a shifted schedule, Heun's nodes): judge it against the error
        # a correct Euler loop makes on that grid as well
        e_grid = _grid_euler_error(conv, gmm, x64, ref, times)
        facts["correct_euler_error_on_this_grid"] = e_grid
        tol = max(tol, SAFETY * e_grid)
        if shift is not None:
            _shift(conv, times, float(shift), findings)
        if follows:
            _stops_short(conv, prs, scale_factor, err, tol, findings)
    facts["tolerance"] = tol
    codes = {f.code for f in findings}
    if err > tol and not codes & _EXPLAINS:
        _output_mistakes(model, evs, x64, final, err, tol, scale_factor, findings)
    codes = {f.code for f in findings}
    if err > tol and not codes & _EXPLAINS:
        findings.append(Finding("unknown_mismatch", f"the result is {err / tol:.3g}x the tolerance away from the "
                                "exact ODE solution and matches none of the known mistakes",
                                {"error": err, "tolerance": tol, "correct_euler_error": e_euler}))
    return Report(subject, tuple(findings), facts)


def _time_scale(model: ProbeModel, evs: list[R.Evaluation], findings: list[Finding]) -> float:
    """Detect times on the wrong scale; return the factor that brings them back to the convention's [0, 1]."""
    ts = [e.t for e in evs]
    lo, hi = min(ts), max(ts)
    span = hi - lo
    factor = 1.0
    if max(abs(lo), abs(hi)) > 1.001:
        factor = 10.0 ** -round(math.log10(max(abs(lo), abs(hi))))
    elif len(evs) >= 2 and 0 < span < 0.05:
        factor = 10.0 ** round(-math.log10(span))
    if factor != 1.0:
        findings.append(Finding("time_scale", f"the model was given times {1 / factor:g}x the declared scale "
                                f"(declared time_scale = {model.time_scale:g}; the loop's timesteps span "
                                f"{lo * model.time_scale:.4g} .. {hi * model.time_scale:.4g})",
                                {"factor": 1 / factor, "declared_time_scale": model.time_scale}))
    return factor


def _direction(conv: Any, times: list[float], prs: list[R.Pair], scale: float, findings: list[Finding]) -> int:
    """+1 when the calls run noise -> data with steps that follow the times; -1 after a direction finding."""
    tn, td = float(conv.t_noise), float(conv.t_data)
    us = [(t - td) / (tn - td) for t in times]
    ratios = [p.dt / ((p.t_next - p.t) * scale) for p in prs
              if p.consistent and p.t_next is not None and abs(p.t_next - p.t) > 1e-9]
    rhos = [r for r in ratios if abs(abs(r) - 1) < 0.2]  # steps of +-1 time step: Euler-like predictor stages
    follow = 0 if len(rhos) < max(2, len(ratios) / 2) else (1 if sorted(rhos)[len(rhos) // 2] > 0 else -1)
    to_noise = len(us) >= 2 and us[-1] > us[0] + 0.25
    sym = conv.symbol
    ev = {f"first_{sym}": times[0], f"last_{sym}": times[-1]}
    if to_noise and follow >= 0:  # (no Euler-like pairs: the times alone say data -> noise)
        findings.append(Finding("wrong_direction", f"the loop runs from data towards noise: it calls the model from "
                                f"{sym} = {times[0]:.4g} to {sym} = {times[-1]:.4g}, but sampling in the {conv.name} "
                                f"convention runs {sym} {conv.t_noise} -> {conv.t_data}", ev))
        return -1
    if to_noise:
        findings.append(Finding("t_vs_sigma", f"the model is given the mirrored time: its times run {sym} = "
                                f"{times[0]:.4g} -> {times[-1]:.4g} (data -> noise) while the states step the "
                                f"opposite way; t is passed where 1 - t is meant", ev))
        return -1
    if follow < 0:
        findings.append(Finding("sign_flip", "the velocity enters the update with the wrong sign: the states move by "
                                "-(t' - t) v where x' = x + (t' - t) v is meant",
                                {"median_dt_over_time_step": sorted(rhos)[len(rhos) // 2], "pairs": len(rhos)}))
        return -1
    return follow


def _fp16(model: ProbeModel, evs: list[R.Evaluation], prs: list[R.Pair], scale: float,
          findings: list[Finding], check_pattern: bool) -> None:
    halves = sorted({str(e.time_dtype).replace("torch.", "") for e in evs
                     if e.time_dtype in (torch.float16, torch.bfloat16)})
    if halves:
        findings.append(Finding("fp16_time", f"the model was given the time as a {'/'.join(halves)} tensor: times are "
                                "rounded to half precision (Hunyuan3D-2 casts t * 1000 to fp16)",
                                {"time_dtype": "/".join(halves)}))
        return
    if not check_pattern:
        return
    fmt = R.half_rounded([e.t for e in evs], model.time_scale)
    # the rounding moves a time by at most half a unit in the last place: 2^-9 relative (bfloat16), 2^-12 (float16)
    ulp = 2.0 ** -8 if fmt == "bfloat16" else 2.0 ** -11
    pr = [p for p in prs if p.consistent and p.t_next is not None]
    gaps = [abs(p.dt - (p.t_next - p.t) * scale) for p in pr]
    bound = ulp * max(abs(e.t * scale) for e in evs)
    visible = any(g > 1e-3 * abs(p.dt) + 1e-7 for g, p in zip(gaps, pr))  # beyond the round-off of dt itself
    if fmt and gaps and visible and max(gaps) <= bound:
        findings.append(Finding("fp16_time", f"every time the model saw is a {fmt} value while the steps use "
                                "unrounded times: the time was rounded to half precision before the call",
                                {"format": fmt, "max_gap": max(gaps)}))


def _grid_euler_error(conv: Any, gmm: Any, x64: Tensor, ref: Tensor, times: list[float]) -> float:
    """Error of a correct Euler loop over the distinct times the loop called the model at (noise -> data)."""
    tn, td = float(conv.t_noise), float(conv.t_data)
    grid = sorted({t for t in times if 0 < (t - td) / (tn - td) <= 1}, key=lambda t: -(t - td) / (tn - td))
    x = x64
    for t, s in zip(grid, grid[1:] + [td]):
        x = x + (s - t) * gmm._velocity_unchecked(x, t, conv)
    return rel_rms(x, ref)


def _shift(conv: Any, times: list[float], shift: float, findings: list[Finding]) -> None:
    tn, td = float(conv.t_noise), float(conv.t_data)
    est = R.shift_estimate([(t - td) / (tn - td) for t in times])
    if est is None:
        return
    L, l = math.log(est), math.log(shift)
    if abs(L - l) <= max(0.3 * abs(l), 0.15):
        return
    ev = {"measured_shift": est, "expected_shift": shift}
    if shift != 1 and abs(L - 2 * l) <= 0.3 * abs(l):
        findings.append(Finding("double_shift", f"the schedule is shifted twice: its noise levels fit a shift of "
                                f"{est:.3g} ~ {shift:g}^2 where {shift:g} is meant (diffusers #13243: pre-shifted "
                                "sigmas given to a scheduler that shifts again)", ev))
    else:
        findings.append(Finding("wrong_shift", f"the schedule's noise levels fit a shift of {est:.3g}, not the "
                                f"{shift:g} expected" + (" (shifted the other way)" if L * l < 0 else ""), ev))


def _stops_short(conv: Any, prs: list[R.Pair], scale: float, err: float, tol: float,
                 findings: list[Finding]) -> None:
    last = prs[-1] if prs else None
    if last is None or last.t_next is not None or not last.consistent:
        return
    tn, td = float(conv.t_noise), float(conv.t_data)
    end = last.t * scale + last.dt
    u_end = (end - td) / (tn - td)
    if abs(u_end - 1) < 1e-3 and (last.t * scale - td) / (tn - td) < 1 - 1e-3:
        findings.append(Finding("noise_as_data", f"the last update jumps from {conv.symbol} = {last.t * scale:.4g} to "
                                f"the NOISE endpoint {conv.symbol} = {conv.t_noise}: the output is "
                                f"{_noise_formula(conv)} where the data {_data_formula(conv)} is meant "
                                "(Hunyuan3D-2 #124)", {f"last_{conv.symbol}": last.t * scale}))
    elif u_end > 1e-3:
        findings.append(Finding("not_at_data", f"the loop stops short of the data endpoint: its last step ends at "
                                f"{conv.symbol} = {end:.4g}, not {conv.t_data}",
                                {f"end_{conv.symbol}": end, "error": err, "tolerance": tol}))


def _output_mistakes(model: ProbeModel, evs: list[R.Evaluation], x64: Tensor, final: Tensor, err: float,
                     tol: float, scale: float, findings: list[Finding]) -> None:
    """Wrong output, records look right: evaluate the noise-as-data forms and an early stop on the records."""
    conv, gmm = model.convention, model.gmm
    close = max(1e-3, tol / 10)
    for k in range(len(evs) - 1, -1, -1):
        e = evs[k]
        if rel_rms(final, conv._pred_noise(e.x, e.v, e.t * scale)) <= close:
            findings.append(Finding("noise_as_data", f"the output is the NOISE prediction of call {k + 1}: "
                                    f"{_noise_formula(conv)} where {_data_formula(conv)} (the data) is meant "
                                    "(Hunyuan3D-2 #124)", {"call": k + 1, f"{conv.symbol}": e.t * scale}))
            return
    hits, tried = R.noise_as_data_steps([R.Evaluation(e.x, e.t * scale, e.v, e.n_calls, e.time_dtype) for e in evs],
                                        conv, final, float(conv.t_data), close)
    if tried and hits >= max(1, int(0.8 * tried)):
        findings.append(Finding("noise_as_data", f"{hits} of {tried} steps re-mix the NOISE prediction "
                                f"{_noise_formula(conv)} as if it were the data (Hunyuan3D-2 #124); the data "
                                f"prediction is {_data_formula(conv)}", {"steps_matching": hits, "steps": tried}))
        return
    tn, td = float(conv.t_noise), float(conv.t_data)
    cands = sorted({e.t * scale for e in evs if 1e-3 < (e.t * scale - td) / (tn - td) < 0.5},
                   key=lambda t: -(t - td) / (tn - td))
    if cands:
        states = reference_states(gmm, conv, x64, cands)
        best = min(range(len(cands)), key=lambda i: rel_rms(final, states[i]))
        gap = rel_rms(final, states[best])
        if gap <= tol and gap < err / 2:
            findings.append(Finding("not_at_data", f"the output is the exact flow at {conv.symbol} = "
                                    f"{cands[best]:.4g}, not at the data endpoint {conv.t_data}: the loop stops short",
                                    {f"matches_{conv.symbol}": cands[best], "gap_there": gap, "error": err}))


def _noise_formula(conv: Any) -> str:
    return "x + (1 - sigma) v" if conv.name == "conventional" else "x - t v"


def _data_formula(conv: Any) -> str:
    return "x - sigma v" if conv.name == "conventional" else "x + (1 - t) v"
