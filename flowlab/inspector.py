"""Probe an unknown scheduler numerically and say which timestep convention it implements.

Every first-order sampler step is affine in its two inputs: ``x' = a x + b out + c`` (``x`` the
sample, ``out`` the model output; ``a, b, c`` depend on the step only). The inspector feeds each
step a batch of probe rows (``x = 0, out = 0``; ``x = 1, out = 0``; ``x = 0, out = 1``; and random
rows to verify), recovers ``(a, b, c)`` per step, and refuses to guess when the random rows are
not reproduced (a step that depends on earlier calls, on randomness, or nonlinearly on its inputs).

From the coefficients:

* ``a = 1, c = 0`` for every step: an Euler step ``x' = x + dt out`` in some time variable ``tau``
  with ``dt = b``. The sign of ``sum(dt)`` is the direction of time; ``dt = 0`` is a no-op step (a
  model call that moves nothing, Hunyuan3D-2's last step); the grid of noise levels
  ``u = (tau - tau_end) / (tau_start - tau_end)`` (1 = noise) is tested for an SD3 shift
  ``u = s w / (1 + (s - 1) w)`` of a uniform grid ``w`` (dynamic shifting: ``s = exp(mu)``).
* Sampling starts at noise and ends at data, so ``tau_start`` is the noise endpoint and ``tau_end``
  the data endpoint. With the straight path between them, SymPy derives (via
  :mod:`flowlab.symbolic`) what the model must output (``dx/dtau``: ``E - D`` when time runs
  1 -> 0, ``D - E`` when it runs 0 -> 1) and the data / noise predictions (the Euler jump to each
  endpoint), and proves them by substituting the path.
* ``a != 1``: the step rescales the sample (DDIM / VP type); it is reported, not forced into a
  straight-path card.

Two inputs are accepted: a diffusers-style scheduler object (``set_timesteps``, ``timesteps``,
``step(model_output, timestep, sample)``, optionally ``sigmas``) and a bare step function
``step(model_output, timestep, sample) -> next sample`` called once per timestep, in order.
"""
from __future__ import annotations

import copy
import math
from typing import Callable, Sequence

import numpy as np
import sympy as sp
import torch
from torch import Tensor

from . import symbolic as S
from .conventions import CONVENTIONS, Convention, T
from .errors import FlowlabError
from .inspector_card import Inspection, StepCoefficients, _fmt_list
from .probe_exact import next_sample, quiet_repeats

__all__ = ["StepCoefficients", "Inspection", "inspect", "inspect_scheduler", "inspect_step", "schedule_step",
           "resolve_scheduler", "ALIASES"]

_ROWS = 6          # 0: (0, 0)  1: (1, 0)  2: (0, 1)  3..5: random (x, out)
_WIDTH = 4         # entries per probe row
_AFFINE_TOL = 1e-4  # relative residual allowed on the random rows (float32 schedulers)
_UNIT_TOL = 1e-5   # |a - 1| and |c| below this: an Euler step


# ---- probing --------------------------------------------------------------------------------------

def _probe_rows(gen: torch.Generator, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    x = torch.zeros(_ROWS, _WIDTH, dtype=dtype)
    v = torch.zeros(_ROWS, _WIDTH, dtype=dtype)
    x[1] = 1.0
    v[2] = 1.0
    x[3:] = torch.randn(_ROWS - 3, _WIDTH, generator=gen, dtype=dtype)
    v[3:] = torch.randn(_ROWS - 3, _WIDTH, generator=gen, dtype=dtype)
    return x, v


def _fit(x: Tensor, v: Tensor, y: Tensor, i: int, timestep: float) -> StepCoefficients:
    y = y.to(torch.float64)
    c_row, a_row, b_row = y[0], y[1] - y[0], y[2] - y[0]
    a, b, c = float(a_row.mean()), float(b_row.mean()), float(c_row.mean())
    pred = a * x[3:].double() + b * v[3:].double() + c
    scale = 1.0 + float(y[3:].abs().max())
    residual = float((pred - y[3:]).abs().max()) / scale
    # the coefficients must also be the same for every entry of a row (an elementwise step)
    spread = max(float((a_row - a).abs().max()), float((b_row - b).abs().max()), float((c_row - c).abs().max()))
    residual = max(residual, spread / (1.0 + abs(a) + abs(b) + abs(c)))
    if not math.isfinite(residual):
        residual = math.inf
    return StepCoefficients(i=i, timestep=timestep, a=a, b=b, c=c, residual=residual)


def _probe(step: Callable[[Tensor, Tensor, Tensor], object], timesteps: Sequence[Tensor | float],
           snapshot: Callable[[], Callable[[Tensor, Tensor, Tensor], object]] | None,
           dtype: torch.dtype, seed: int) -> tuple[list[StepCoefficients], list[str]]:
    gen = torch.Generator().manual_seed(seed)
    coeffs, findings = [], []
    for i, t in enumerate(timesteps):
        x, v = _probe_rows(gen, dtype)
        twin = snapshot() if snapshot is not None else None
        try:
            y = next_sample(step(v.clone(), t, x.clone()), f"step {i}")
        except FlowlabError:
            raise
        except Exception as exc:  # the foreign step failed on plain tensors
            raise FlowlabError(f"calling step {i} (timestep {float(t):.6g}) with model_output and sample of shape "
                               f"{tuple(x.shape)} failed: {type(exc).__name__}: {exc}{_repeat_hint(timesteps)}") from None
        if y.shape != x.shape:
            raise FlowlabError(f"step {i} returned shape {tuple(y.shape)} for a sample of shape {tuple(x.shape)}; "
                               "expected the next sample, shaped like the sample")
        if twin is not None:
            y2 = next_sample(twin(v.clone(), t, x.clone()), f"step {i}")
            if not torch.equal(y, y2):
                findings.append(f"step {i} is not deterministic: the same inputs gave different outputs "
                                "(stochastic sampling / churn); no convention derived")
                coeffs.append(StepCoefficients(i, float(t), math.nan, math.nan, math.nan, math.inf))
                return coeffs, findings
        coeffs.append(_fit(x, v, y, i, float(t)))
    return coeffs, findings


# ---- analysis ---------------------------------------------------------------------------------------

def _unshift(u: Tensor, s: float) -> Tensor:
    from .schedules import shift_noise_level  # the one SD3 shift formula; its inverse is the shift by 1 / s
    return shift_noise_level(u, 1.0 / s)


def _uniformity(w: Tensor) -> float:
    if w.numel() < 3:
        return 0.0
    d = w[1:] - w[:-1]
    return float((d - d.mean()).abs().max() / d.abs().mean())


def _fit_shift(u: Tensor) -> tuple[float, float]:
    """Best SD3 shift ``s`` making ``unshift(u, s)`` equally spaced; returns ``(s, residual)``."""
    grid = torch.linspace(-5.0, 5.0, 201, dtype=torch.float64)
    errs = torch.tensor([_uniformity(_unshift(u, math.exp(float(g)))) for g in grid])
    k = int(errs.argmin())
    lo, hi = float(grid[max(k - 1, 0)]), float(grid[min(k + 1, len(grid) - 1)])
    phi = (math.sqrt(5) - 1) / 2
    for _ in range(80):  # golden section on log s
        m1, m2 = hi - phi * (hi - lo), lo + phi * (hi - lo)
        if _uniformity(_unshift(u, math.exp(m1))) < _uniformity(_unshift(u, math.exp(m2))):
            hi = m2
        else:
            lo = m1
    s = math.exp((lo + hi) / 2)
    return s, _uniformity(_unshift(u, s))


def _derive(t_noise: float, t_data: float) -> tuple[Convention, str, str, str, str | None]:
    """SymPy: straight path from noise at ``t_noise`` to data at ``t_data``; model output and predictions."""
    tn, td = sp.nsimplify(round(t_noise, 6), rational=True), sp.nsimplify(round(t_data, 6), rational=True)
    alpha = (T - tn) / (td - tn)
    conv = Convention.affine("inspected", sp.expand(alpha), sp.expand(1 - alpha), t_noise=tn, t_data=td,
                             symbol="tau")
    v_target = S.velocity_target(conv)
    data_formula = S.jump_to(td, T)
    noise_formula = S.jump_to(tn, T)
    if not S.vanishes(S.on_path(data_formula, conv, T) - S.D):
        raise FlowlabError("internal: the jump to the data endpoint did not reduce to D")  # pragma: no cover
    if not S.vanishes(S.on_path(noise_formula, conv, T) - S.E):
        raise FlowlabError("internal: the jump to the noise endpoint did not reduce to E")  # pragma: no cover
    match = None
    for name, known in CONVENTIONS.items():
        if (S.vanishes(known.alpha - conv.alpha) and S.vanishes(known.beta - conv.beta)
                and known.t_noise == conv.t_noise and known.t_data == conv.t_data):
            match = name
    own = sp.Symbol(CONVENTIONS[match].symbol if match else "tau", real=True)
    show = lambda e: S.format_prediction(e.subs(T, own))  # noqa: E731
    return conv, S._format_combination(v_target), show(data_formula), show(noise_formula), match


def _derive_ve() -> tuple[str, str, str]:
    """SymPy: the variance-exploding path ``x = D + sigma E``; ``dx/dsigma = E`` and the jump to 0 is ``D``."""
    sigma = sp.Symbol("sigma", positive=True)
    path = S.D + T * S.E
    v_target = sp.diff(path, T)
    data_formula = S.jump_to(0, T)
    on_path = data_formula.subs({S.X: path, S.V: v_target})
    if not S.vanishes(on_path - S.D):
        raise FlowlabError("internal: the VE jump to sigma = 0 did not reduce to D")  # pragma: no cover
    return (f"{S._format_combination(v_target)} (the noise epsilon)", S.format_prediction(data_formula.subs(T, sigma)),
            "v (the output itself)")


def _shift_and_notes(times: Tensor, t_start: float, t_end: float, num_train_timesteps: int | None,
                     notes: list[str]) -> float | None:
    """SD3 shift of the noise-level grid (``None`` if none fits); notes on a final step and diffusers #13243."""
    shift = None
    u = (times - t_end) / (t_start - t_end)
    keep = torch.cat([torch.ones(1, dtype=torch.bool), (u[1:] - u[:-1]).abs() > 1e-9])
    u = u[keep]  # distinct noise levels, 1 -> 0
    # a 1-parameter fit needs 4 distinct levels to say anything (3 are always "uniform" for some s)
    s_all, r_all = _fit_shift(u) if u.numel() >= 4 else (None, math.inf)
    if r_all <= 1e-4:
        shift = s_all
    elif u.numel() >= 5:
        s_in, r_in = _fit_shift(u[:-1])
        if r_in <= 1e-4:
            shift = s_in
            w_min = float(_unshift(u[-2:-1], s_in))
            last = float(u[-2])
            notes.append(f"the grid is uniform (after the shift) from noise down to noise level {last:.5f}, "
                         "then a final step to the data")
            if num_train_timesteps and abs(s_in - 1) > 1e-3:
                once = s_in * (1 / num_train_timesteps) / (1 + (s_in - 1) / num_train_timesteps)
                if abs(w_min - once) <= 1e-5 * max(1.0, once) + 1e-7:
                    notes.append(f"terminal noise level is shifted twice (diffusers #13243): last nonzero level "
                                 f"{last:.5f} = shift(shift(1/{num_train_timesteps})) instead of "
                                 f"shift(1/{num_train_timesteps}) = {once:.5f}")
    if shift is not None and abs(shift - 1) > 1e-3:
        notes.append(f"shift {shift:.4f} (= exp({math.log(shift):.4f}); dynamic shifting with mu gives exp(mu)): "
                     + ("steps crowd toward noise" if shift > 1 else "steps crowd toward data"))
    return shift


def _refusal(source: str, coeffs: list[StepCoefficients], findings: list[str], order: int) -> Inspection | None:
    """The card when the steps are not affine, or affine but not Euler (nothing more is derived); else ``None``."""
    n = len(coeffs)
    bad = [c for c in coeffs if not c.residual <= _AFFINE_TOL]
    if findings or bad:
        if bad and not findings:
            c = bad[0]
            why = (f"step {c.i} (timestep {c.timestep:.6g}) is not affine in (sample, model_output): the recovered "
                   f"coefficients miss the random probes by {c.residual:.3g} (relative)")
            if order > 1 or c.i > 0:
                why += ("; its result depends on earlier calls (a multistep / Heun-type scheduler"
                        + (f", order = {order}" if order > 1 else "") + ") or on its inputs nonlinearly")
            findings = [why, "refusing to derive a convention from a non-affine step"]
        return Inspection(source=source, n_calls=n, steps=tuple(coeffs), affine=False, euler=False,
                          findings=tuple(findings))

    euler = all(abs(c.a - 1) <= _UNIT_TOL and abs(c.c) <= _UNIT_TOL for c in coeffs)
    if not euler:
        notes: list[str] = []
        a_lo, a_hi = min(c.a for c in coeffs), max(c.a for c in coeffs)
        notes.append(f"the sample coefficient a runs {a_lo:.4g} .. {a_hi:.4g} (not 1): the step rescales the sample, "
                     "as DDIM / VP schedulers do; it is an Euler step of y = x / K with K_(i+1) = a_i K_i "
                     "(see the DDIM card), not of x itself")
        return Inspection(source=source, n_calls=n, steps=tuple(coeffs), affine=True, euler=False,
                          findings=tuple(notes))

    return None


def _analyse(source: str, coeffs: list[StepCoefficients], findings: list[str], anchor: Sequence[float] | None,
             num_train_timesteps: int | None, order: int) -> Inspection:
    n = len(coeffs)
    early = _refusal(source, coeffs, findings, order)
    if early is not None:
        return early
    notes: list[str] = []
    dts = torch.tensor([c.b for c in coeffs], dtype=torch.float64)
    noop = tuple(int(i) for i in (dts.abs() <= 1e-9).nonzero().flatten().tolist())
    moving = dts[dts.abs() > 1e-9]
    total = float(dts.sum())
    if moving.numel() == 0:
        notes.append("no step moves the sample (every dt = 0)")
        return Inspection(source=source, n_calls=n, steps=tuple(coeffs), affine=True, euler=True,
                          noop_steps=noop, effective_steps=0, findings=tuple(notes))
    # the direction most moving steps take (a single step backwards must not flip the verdict)
    n_up, n_down = int((moving > 0).sum()), int((moving < 0).sum())
    sign = 1.0 if n_up > n_down else -1.0 if n_down > n_up else math.copysign(1.0, float(moving[0]))
    direction = "decreasing" if sign < 0 else "increasing"
    against = [c.i for c in coeffs if c.b * sign < 0 and abs(c.b) > 1e-9]
    if against:
        notes.append(f"steps {against} go against the direction of time (dt has the wrong sign), e.g. a schedule "
                     "padded with the wrong endpoint")
        notes.append("the time grid is not monotone, so it runs neither from noise to data nor back: no direction, "
                     "shift, convention or prediction is derived")
        cum = torch.cat([torch.zeros(1, dtype=torch.float64), dts.cumsum(0)])
        anchored = anchor is not None and len(anchor) >= n + 1 and float(
            (torch.tensor(list(anchor[: n + 1]), dtype=torch.float64) - anchor[0] - cum).abs().max()) <= 1e-5
        return Inspection(source=source, n_calls=n, steps=tuple(coeffs), affine=True, euler=True,
                          times=tuple(float(t) for t in anchor[: n + 1]) if anchored else None,
                          noop_steps=noop, effective_steps=n - len(noop), findings=tuple(notes))

    cum = torch.cat([torch.zeros(1, dtype=torch.float64), dts.cumsum(0)])
    times = None
    if anchor is not None and len(anchor) >= n + 1:
        cand = torch.tensor(list(anchor[: n + 1]), dtype=torch.float64)
        if float((cand - cand[0] - cum).abs().max()) <= 1e-5:
            times = cand
        else:
            notes.append("the scheduler's sigmas do not match the recovered steps; times anchored by the span")
    if times is None and abs(abs(total) - 1) <= 1e-4:
        times = cum + (1.0 if total < 0 else 0.0)
    if times is not None and abs(float(times[0]) - float(times[-1])) > 1e-9:
        t_start, t_end = float(times[0]), float(times[-1])
    else:
        t_start = t_end = None

    scale = None
    if times is not None:
        ratios = [c.timestep / float(times[c.i]) for c in coeffs if abs(float(times[c.i])) > 1e-6]
        if ratios and max(ratios) - min(ratios) <= 1e-4 * max(1.0, abs(ratios[0])):
            scale = sum(ratios) / len(ratios)

    shift = _shift_and_notes(times, t_start, t_end, num_train_timesteps, notes) if t_start is not None else None
    for i in noop:
        t_here = float(times[i]) if times is not None else float("nan")
        notes.append(f"step {i} is a no-op: the model is called at time {t_here:.5g} but dt = 0, a wasted call "
                     f"({n} calls, {n - len(noop)} effective steps)"
                     + (" (the Hunyuan3D-2 wasted last step)" if i == n - 1 and direction == "increasing" else ""))

    conv_name = model_output = data_pred = noise_pred = None
    if t_start is not None and abs(t_end) <= 1e-9 and t_start > 1 + 1e-6:
        model_output, data_pred, noise_pred = _derive_ve()
        conv_name = "variance exploding, x = D + sigma E (k-diffusion / EDM / EulerDiscreteScheduler)"
        notes.append(f"time runs {t_start:.5g} -> 0 (> 1 at the start): a variance-exploding path, so the model output "
                     "is the noise epsilon = dx/dsigma; inputs are usually rescaled by 1 / sqrt(sigma^2 + 1) "
                     "(scale_model_input), which this probe does not see")
    elif t_start is not None and abs(t_start - t_end) > 1e-6:
        if {round(t_start, 6), round(t_end, 6)} != {0.0, 1.0}:
            notes.append(f"time runs {t_start:.5g} -> {t_end:.5g}: predictions assume the straight path between "
                         "these endpoints")
        _, model_output, data_pred, noise_pred, conv_name = _derive(t_start, t_end)
        if conv_name is None:
            conv_name = f"straight path, noise at {t_start:.5g}, data at {t_end:.5g}"
    return Inspection(source=source, n_calls=n, steps=tuple(coeffs), affine=True, euler=True,
                      times=tuple(float(t) for t in times) if times is not None else None, direction=direction,
                      noop_steps=noop, effective_steps=n - len(noop), shift=shift, model_time_scale=scale,
                      convention=conv_name, model_output=model_output, data_prediction=data_pred,
                      noise_prediction=noise_pred, findings=tuple(notes))


# ---- entry points -----------------------------------------------------------------------------------

def _is_scheduler(obj: object) -> bool:
    return all(callable(getattr(obj, m, None)) for m in ("set_timesteps", "step"))


def _expected(obj: object) -> FlowlabError:
    what = f"the class {obj.__name__}; instantiate it first" if isinstance(obj, type) else type(obj).__name__
    return FlowlabError(
        "expected a diffusers-style scheduler (an object with set_timesteps(), timesteps and "
        "step(model_output, timestep, sample)) or a step function step(model_output, timestep, sample) -> next "
        f"sample with its timesteps; got {what}")


def _set_timesteps(sched: object, kwargs: dict) -> list:
    """``sched.set_timesteps(**kwargs)``, then the timesteps it made, refused when degenerate."""
    call = f"{type(sched).__name__}.set_timesteps({', '.join(f'{k}={_short(v)}' for k, v in kwargs.items())})"
    try:
        with quiet_repeats():
            sched.set_timesteps(**kwargs)
    except Exception as exc:  # the foreign scheduler's own failure, e.g. OverflowError in exp(mu)
        hint = "; a smaller |mu| or shift" if isinstance(exc, (OverflowError, ZeroDivisionError)) else ""
        raise FlowlabError(f"{call} failed: {type(exc).__name__}: {exc}{hint}") from None
    timesteps = getattr(sched, "timesteps", None)
    if timesteps is None:
        raise _expected(sched)
    ts = [float(t) for t in timesteps]
    sig = getattr(sched, "sigmas", None)
    levels = [float(v) for v in sig] if isinstance(sig, Tensor) and sig.ndim == 1 else []
    if not ts or not all(math.isfinite(t) for t in ts + levels):
        raise FlowlabError(f"{call} made a degenerate schedule (timesteps {_fmt_list(ts)}"
                           + (f", noise levels {_fmt_list(levels)}" if levels else "")
                           + "): it has no steps or holds NaN / inf; the shift, mu or sigmas are out of range")
    return list(timesteps)


def _short(v: object) -> str:
    if isinstance(v, np.ndarray):
        return _fmt_list(v.tolist())
    return f"{v:g}" if isinstance(v, float) else repr(v)


def _repeat_hint(timesteps: Sequence[object]) -> str:
    ts = [float(t) for t in timesteps]
    rep = sorted({t for t in ts if ts.count(t) > 1})
    if not rep:
        return ""
    return (f"; the schedule calls the model at the same timestep more than once ({', '.join(f'{t:g}' for t in rep[:3])}"
            f" in {_fmt_list(ts)}): a scheduler that looks a step up by its timestep cannot tell those steps apart, "
            "so give distinct sigmas (or a smaller shift / |mu|, whose noise levels then stay distinct)")


def inspect_scheduler(scheduler: object, num_inference_steps: int | None = 10, *,
                      sigmas: Sequence[float] | None = None, mu: float | None = None,
                      source: str | None = None, dtype: torch.dtype = torch.float32, seed: int = 0) -> Inspection:
    """Probe a diffusers-style scheduler: ``set_timesteps``, then one ``step`` per timestep.

    ``num_inference_steps`` or custom ``sigmas`` (as a pipeline passes them) set the schedule; ``mu`` is
    passed for dynamic shifting. The scheduler is deep-copied before each step so every step can be
    called twice (a determinism check). Rows: ``(6, 4)`` probes in ``dtype``.
    """
    if isinstance(scheduler, type) or not _is_scheduler(scheduler):
        raise _expected(scheduler)
    sched = copy.deepcopy(scheduler)
    kwargs: dict = {}
    if sigmas is not None:
        kwargs["sigmas"] = np.asarray([float(v) for v in sigmas], dtype=np.float64)  # as pipelines pass them
    elif num_inference_steps is not None:
        if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise FlowlabError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}")
        kwargs["num_inference_steps"] = num_inference_steps
    if mu is not None:
        if not math.isfinite(float(mu)):
            raise FlowlabError(f"mu = {mu!r} is not a finite number (dynamic shifting uses shift = exp(mu))")
        kwargs["mu"] = float(mu)
    timesteps = _set_timesteps(sched, kwargs)
    holder = {"s": sched}

    def step(v: Tensor, t: Tensor | float, x: Tensor) -> object:
        return holder["s"].step(v, t, x)

    def snapshot() -> Callable[[Tensor, Tensor, Tensor], object]:
        twin = copy.deepcopy(holder["s"])
        return lambda v, t, x: twin.step(v, t, x)

    with quiet_repeats():
        coeffs, findings = _probe(step, timesteps, snapshot, dtype, seed)
    declared = _declared_order(sched)
    if not findings and any(not c.residual <= _AFFINE_TOL for c in coeffs):
        from .probe_exact import drive

        return drive(scheduler, kwargs, source or type(scheduler).__name__, declared)
    sig = getattr(sched, "sigmas", None)
    anchor = [float(s) for s in sig] if isinstance(sig, Tensor) and sig.ndim == 1 else None
    config = getattr(sched, "config", None)
    n_train = getattr(config, "num_train_timesteps", None) if config is not None else None
    return _analyse(source or type(scheduler).__name__, coeffs, findings, anchor, n_train, declared or 1)


def _declared_order(sched: object) -> int | None:
    cfg = getattr(sched, "config", None)
    for v in (getattr(cfg, "solver_order", None) if cfg is not None else None, getattr(sched, "order", None)):
        if isinstance(v, int) and not isinstance(v, bool) and v >= 1:
            return v
    return None


def inspect_step(step: Callable[[Tensor, Tensor, Tensor], object], timesteps: Sequence[float] | Tensor, *,
                 times: Sequence[float] | None = None, source: str | None = None,
                 dtype: torch.dtype = torch.float32, seed: int = 0) -> Inspection:
    """Probe a bare step function ``step(model_output, timestep, sample) -> next sample``.

    It is called once per entry of ``timesteps``, in order (it may keep state, like a diffusers
    scheduler). ``times`` (``len(timesteps) + 1`` values) anchors the recovered time grid; without it
    the grid is anchored when the steps span exactly 1 (then time runs 1 -> 0 or 0 -> 1).
    """
    if isinstance(step, type) or not callable(step):
        raise _expected(step)
    ts = [float(t) for t in (timesteps.tolist() if isinstance(timesteps, Tensor) else timesteps)]
    if not ts:
        raise FlowlabError("timesteps is empty; pass the timesteps the step function is called with, in order")
    coeffs, findings = _probe(lambda v, t, x: step(v, torch.tensor(t, dtype=torch.float64), x), ts, None, dtype, seed)
    return _analyse(source or getattr(step, "__name__", type(step).__name__), coeffs, findings,
                    list(times) if times is not None else None, None, 1)


def inspect(obj: object, num_inference_steps: int | None = 10, *, timesteps: Sequence[float] | None = None,
            sigmas: Sequence[float] | None = None, mu: float | None = None, source: str | None = None) -> Inspection:
    """Inspect a scheduler object (diffusers-style) or a bare step function (needs ``timesteps``)."""
    if _is_scheduler(obj) and not isinstance(obj, type):
        return inspect_scheduler(obj, num_inference_steps, sigmas=sigmas, mu=mu, source=source)
    if callable(obj) and not isinstance(obj, type):
        if timesteps is None:
            raise FlowlabError("a bare step function needs timesteps= (the values it is called with, in order)")
        return inspect_step(obj, timesteps, times=sigmas, source=source)
    raise _expected(obj)


def schedule_step(schedule: Tensor) -> tuple[Callable[[Tensor, Tensor, Tensor], Tensor], list[float]]:
    """A stateless step function running flowlab's Euler update over ``schedule`` (``(S + 1,)`` times),
    and the timesteps to call it with (``schedule[:-1]``, one per step; each must be distinct).

    ``flowlab.schedules.hunyuan_compat(N)`` gives Hunyuan3D-2's semantics (``t`` 0 -> 1 and a last
    step ``1.0 -> 1.0``); the inspector then names the wasted last step.
    """
    from .functional import euler_step

    if not isinstance(schedule, Tensor) or schedule.ndim != 1 or schedule.numel() < 2:
        raise FlowlabError("schedule must be a 1-D tensor of at least 2 times (see flowlab.schedules)")
    starts = schedule[:-1].tolist()
    if len(set(starts)) != len(starts):
        raise FlowlabError("schedule_step needs distinct step start times to look steps up by timestep")

    def step(model_output: Tensor, timestep: Tensor, sample: Tensor) -> Tensor:
        gaps = [abs(s - float(timestep)) for s in starts]
        i = gaps.index(min(gaps))
        if gaps[i] > 1e-6 * max(1.0, abs(float(timestep))):
            raise FlowlabError(f"timestep {float(timestep)!r} is not a step of this schedule")
        return euler_step(sample, model_output, schedule[i].to(sample.dtype), schedule[i + 1].to(sample.dtype))

    return step, starts


# ---- names for the CLI (kept importable from here) ------------------------------------------------

from .scheduler_import import ALIASES, resolve_scheduler  # noqa: E402
