"""The checks of exercises 8 to 14 (a curved path, guidance, reading and porting a scheduler, the shape
model); the shared input helpers and exercises 1 to 7 are in :mod:`flowlab.exercises.checks`."""
from __future__ import annotations

import math

import sympy as sp
import torch
from torch import Tensor

from .. import symbolic as S
from ..conventions import REVERSED
from ..errors import FlowlabError
from .checks import (_XT_SHAPES, EXERCISE_PATH, _asymmetric_gmm, _col, _fn, _gen, _label, _solvers, _times,
                     _xvt_cases)
from .core import (Case, Mistake, NotDone, StudentError, Wrong, _close, _expect_like, _tol, _worst, call,
                   call_unchanged, check_cases, exercise, need)

__all__ = ["check_velocity_to_noise", "check_velocity_to_score", "check_guided_velocity", "check_mystery",
           "check_port_sampler", "check_hunyuan_time", "check_time_embedding"]

_PATH_SOLVERS = ("symbolic:conversion", "symbolic:to_torch", "functional:velocity_to_noise",
                 "functional:noise_to_score", "conventions:Convention.pred_noise", "conventions:Convention.score",
                 "conventions:Convention.pred_data")


# ---- 8, 9: a custom affine path -------------------------------------------------------------------------

@exercise(8, "velocity_to_noise")
def check_velocity_to_noise(fn: object) -> str:
    """``fn(x, v, t) -> E``: the noise (epsilon) prediction on the path ``x = t D + (1 - t^2) E``."""
    noise = _fn(S.conversion("velocity", "noise", EXERCISE_PATH), S.X, S.V, S.T)
    data = _fn(S.conversion("velocity", "data", EXERCISE_PATH), S.X, S.V, S.T)
    cases = _xvt_cases(lambda x, v, t: noise(x, v, _col(t)), offset=8)
    check_cases(fn, cases, [
        Mistake(lambda x, v, t: x - _col(t) * v,
                "you returned x - t v, the Euler jump to t = 0. It is the noise only on the straight path; here "
                "beta = 1 - t^2 is curved. Solve x = t D + (1 - t^2) E, v = D - 2t E for E."),
        Mistake(lambda x, v, t: (x - _col(t) * v) / (1 - _col(t) ** 2),
                "close: x - t v is right, but divide by the determinant of the 2x2 system, not by beta. Eliminate "
                "D = v + 2t E from x = t D + (1 - t^2) E."),
        Mistake(lambda x, v, t: -noise(x, v, _col(t)),
                "the sign is flipped: check the determinant alpha*beta' - alpha'*beta = -(1 + t^2)."),
        Mistake(lambda x, v, t: data(x, v, _col(t)),
                "that is the DATA prediction D; the exercise asks for the noise E."),
    ], what="velocity_to_noise", names=("x", "v", "t"), shape_note=_XT_SHAPES, forbidden=_solvers(*_PATH_SOLVERS))
    expr = S.conversion("velocity", "noise", EXERCISE_PATH)
    return (f"your function equals E = {sp.sstr(S.in_own_symbol(EXERCISE_PATH, expr))}, which SymPy derives by "
            "solving the 2x2 system, on random (x, v, t) (batches 16, 5, 7; float64 and float32).")


@exercise(9, "velocity_to_score")
def check_velocity_to_score(fn: object) -> str:
    """``fn(x, v, t) -> score``: grad log p_t(x) on the path ``x = t D + (1 - t^2) E``."""
    score = _fn(S.conversion("velocity", "score", EXERCISE_PATH), S.X, S.V, S.T)
    noise = _fn(S.conversion("velocity", "noise", EXERCISE_PATH), S.X, S.V, S.T)

    def eps(x: Tensor, v: Tensor, t: Tensor) -> Tensor:
        return noise(x, v, _col(t))

    def beta(t: Tensor) -> Tensor:
        return 1 - _col(t) ** 2

    cases = _xvt_cases(lambda x, v, t: score(x, v, _col(t)), offset=9)
    check_cases(fn, cases, [
        Mistake(lambda x, v, t: -eps(x, v, t), "you returned -E: the score of N(alpha D, beta^2 I) is "
                                               "-(x - alpha D) / beta^2, and x - alpha D = beta E."),
        Mistake(lambda x, v, t: eps(x, v, t) / beta(t), "the sign: the score points toward higher density, "
                                                        "-(x - alpha D) / beta^2."),
        Mistake(lambda x, v, t: -eps(x, v, t) / beta(t) ** 2, "you divided by beta twice: -(x - alpha D) / beta^2 "
                                                              "with x - alpha D = beta E leaves one beta."),
        Mistake(lambda x, v, t: -(x - _col(t) * v) / (1 - _col(t)),
                "that is the score of the straight reversed path, -(x - t v) / (1 - t). On this path both the noise "
                "(exercise 8) and beta = 1 - t^2 differ."),
        Mistake(lambda x, v, t: -eps(x, v, t) / (1 - _col(t)), "you divided by 1 - t, the beta of the straight path; "
                                                               "here beta = 1 - t^2."),
    ], what="velocity_to_score", names=("x", "v", "t"), shape_note=_XT_SHAPES, forbidden=_solvers(*_PATH_SOLVERS))
    expr = S.conversion("velocity", "score", EXERCISE_PATH)
    return (f"your function equals the score {sp.sstr(S.in_own_symbol(EXERCISE_PATH, expr))} that SymPy derives, on "
            "random (x, v, t) (batches 16, 5, 7; float64 and float32).")


# ---- 10: guidance with the data prediction ------------------------------------------------------------

@exercise(10, "guided_velocity")
def check_guided_velocity(fn: object) -> str:
    """``fn(x, v, t, delta) -> v'``: reversed convention; the velocity whose data prediction is
    ``x + (1 - t) v + delta`` (guidance moves the predicted data by ``delta``)."""
    from ..gmm import eight_gaussians_gmm
    from ..guidance import HalfPlane, guidance_demo
    from ..sampling import sample
    from ..schedules import uniform

    cases = _xvt_cases(lambda x, v, t, d: REVERSED.velocity_from_data(x, REVERSED.pred_data(x, v, t) + d, t),
                       offset=10, extra=1)
    check_cases(fn, cases, [
        Mistake(lambda x, v, t, d: v - d / _col(t), "you moved x - t v by delta, the jump to t = 0: that is the NOISE "
                                                    "prediction (Hunyuan's pred_x0, the #124 mistake). Guidance must "
                                                    "move the data prediction x + (1 - t) v."),
        Mistake(lambda x, v, t, d: v + d, "you added delta to v directly; the data prediction x + (1 - t) v' then "
                                          "moves by (1 - t) delta, not by delta."),
        Mistake(lambda x, v, t, d: v + d * (1 - _col(t)), "multiply or divide? Solve x + (1 - t) v' = "
                                                          "x + (1 - t) v + delta for v'."),
        Mistake(lambda x, v, t, d: v - d / (1 - _col(t)), "the sign: the data prediction must move by +delta."),
        Mistake(lambda x, v, t, d: v + d / _col(t), "you divided by t; the data prediction moves by (1 - t) v'."),
    ], what="guided_velocity", names=("x", "v", "t", "delta"), shape_note=_XT_SHAPES,
        forbidden=_solvers("conventions:Convention.velocity_from_data", "functional:data_to_velocity"))

    # what it does: guide the exact eight-Gaussians flow toward the half-plane x >= 1 with the student's formula
    region = HalfPlane((1.0, 0.0), 1.0)
    base = eight_gaussians_gmm().velocity_model(REVERSED)

    def guided(xx: Tensor, tt: Tensor) -> Tensor:
        vv = base(xx, tt)
        pred = REVERSED.pred_data(xx, vv, tt).detach().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(region.penalty(pred).sum(), pred)
        return fn(xx, vv, tt, -0.5 * grad)

    x0 = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))
    try:
        out = sample(guided, x0, uniform(50, REVERSED), REVERSED)
    except (FlowlabError, RuntimeError) as exc:  # pragma: no cover - the formula passed above
        raise StudentError(f"guided sampling with your function failed: {exc}") from None
    mine = float(region.inside(out, margin=0.05).float().mean())
    wrong = guidance_demo("reversed", "noise").fraction_inside
    none = guidance_demo("reversed", None).fraction_inside
    return (f"your v' moves the data prediction x + (1 - t) v by exactly delta on random inputs (batches 16, 5, 7; "
            f"float64 and float32). Guiding the eight Gaussians toward x >= 1 with your formula puts "
            f"{100 * mine:.0f}% of the samples there; guiding x - t v instead (#124) puts {100 * wrong:.0f}%, "
            f"no guidance {100 * none:.0f}%.")


# ---- 11, 12: reading and porting a scheduler ------------------------------------------------------------

_FIELDS = ("direction", "data_at", "wasted_calls", "shift")


def _number(value: object) -> float | None:
    """A plain number, or a one-element tensor (``sched.sigmas[-1]``) read as one; else None."""
    if isinstance(value, Tensor) and value.numel() == 1 and not value.dtype == torch.bool:
        return float(value.item())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _check_answers(ans: object, card) -> None:
    ans = need(ans, "answers")
    if not isinstance(ans, dict):
        raise Wrong(f"`answers` should be a dict with keys {list(_FIELDS)}, got {type(ans).__name__}.")
    missing = [k for k in _FIELDS if k not in ans]
    if missing:
        raise Wrong(f"`answers` lacks {missing}; fill in all of {list(_FIELDS)}.")
    if any(ans[k] is Ellipsis or ans[k] is None for k in _FIELDS):
        raise NotDone(f"`answers` still has ... in {[k for k in _FIELDS if ans[k] is Ellipsis or ans[k] is None]}.")
    if ans["direction"] not in ("increasing", "decreasing"):
        raise Wrong(f"direction {ans['direction']!r}: write 'increasing' or 'decreasing'.")
    if ans["direction"] != card.direction:
        raise Wrong(f"direction {ans['direction']!r} is not what the card says: read 'direction of time' (the sign of "
                    "the steps dt).")
    data_at = _number(ans["data_at"])
    if data_at is None:
        raise Wrong(f"data_at {ans['data_at']!r} should be a number (the time where sampling ends).")
    if abs(data_at - card.times[-1]) > 1e-6:
        raise Wrong(f"data_at {data_at:g}: sampling starts at the noise and ends at the data; the data is at the "
                    "LAST time in the card.")
    wasted = _number(ans["wasted_calls"])
    if wasted is None or wasted != int(wasted):
        raise Wrong(f"wasted_calls {ans['wasted_calls']!r} should be a whole number of calls.")
    if int(wasted) != len(card.noop_steps):
        raise Wrong(f"wasted_calls {int(wasted)}: count the no-op steps (dt = 0) in the card's 'effective steps' line.")
    shift = _number(ans["shift"])
    if shift is None or abs(shift - card.shift) > 0.05:
        raise Wrong(f"shift {ans['shift']!r}: read the card's shift line (1 = none, > 1 = steps crowd toward the "
                    "noise).")


@exercise(11, "mystery answers, mystery_pred_data")
def check_mystery(answers: object, pred_fn: object) -> str:
    """``answers``: dict with ``direction`` ("increasing"/"decreasing"), ``data_at`` (time where sampling ends),
    ``wasted_calls`` (no-op steps in 10 calls), ``shift`` (the SD3 shift); ``pred_fn(x, v, timestep)``: the data
    prediction, with ``timestep`` exactly as the scheduler passes it to the model."""
    from ..inspector import inspect
    from .mystery import MysteryScheduler

    card = inspect(MysteryScheduler(), 10)
    _check_answers(answers, card)
    # the data prediction the inspector derived, in the model's timestep units
    t_own = sp.Symbol("t", real=True)
    formula = sp.sympify(card.data_prediction.replace("tau", "t"), locals={"x": S.X, "v": S.V, "t": t_own})
    data = _fn(formula.subs(t_own, S.T), S.X, S.V, S.T)
    scale = card.model_time_scale or 1.0
    cases = []
    for c in _xvt_cases(lambda x, v, t: data(x, v, _col(t)), offset=12):
        x, v, t = c.args
        cases.append(Case((x, v, t * scale), c.truth, c.label))

    def ts(timestep: Tensor) -> Tensor:
        return _col(timestep)

    check_cases(pred_fn, cases, [
        Mistake(lambda x, v, s: x + (1 - ts(s)) * v, f"you used the timestep as the time. The card says the model is "
                                                     f"called with timestep = {scale:g} * time: divide by {scale:g} "
                                                     "first."),
        Mistake(lambda x, v, s: x - ts(s) / scale * v, "that is x - t v, the jump to the NOISE end (t = 0) of this "
                                                       "scheduler. The card's data prediction is the jump to the data "
                                                       "end."),
        Mistake(lambda x, v, s: x - ts(s) * v, f"two mistakes: x - t v is the noise end, and the timestep must be "
                                               f"divided by {scale:g}."),
        Mistake(lambda x, v, s: x + (1 - ts(s) / scale) * -v, "the sign of v: this scheduler's model outputs D - E "
                                                              "(read the card's target line), so the data is "
                                                              "reached by moving along +v."),
    ], what="mystery_pred_data", names=("x", "v", "timestep"), tol=1e-6,
        shape_note="The timestep comes one per sample, shape (B,), while x and v are (B, dim): use timestep[:, None].",
        forbidden=_solvers("conventions:Convention.pred_data", "conventions:Convention.pred_x1", "functional:jump",
                           "functional:reversed_pred_x1"))
    return (f"the mystery scheduler is {card.convention}: time {card.direction} to the data at {card.times[-1]:g}, "
            f"shift {card.shift:.1f} toward the noise, {len(card.noop_steps)} wasted call in 10, data prediction "
            f"{card.data_prediction} with t = timestep / {scale:g} (your function agrees on random inputs).")


class _CheckedModel:
    """The model handed to the student's sampler: counts calls and insists on ``t`` of shape (B,)."""

    def __init__(self, model) -> None:
        self.model, self.calls = model, 0

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        self.calls += 1
        if not isinstance(t, Tensor) or t.shape != (x.shape[0],):
            shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise FlowlabError(f"model(x, t) takes t of shape (B,) = ({x.shape[0]},), one time per sample; got "
                               f"{shape}. Use t.expand(x.shape[0]) or torch.full((B,), t).")
        return self.model(x, t)


def _euler(model, x: Tensor, times: Tensor, *, sign: float = 1.0, mirror: bool = False) -> Tensor:
    y = x.clone()
    for a, b in zip(times[:-1], times[1:]):
        tt = torch.full((y.shape[0],), float(a), dtype=y.dtype)
        y = y + sign * (b - a).to(y.dtype) * model(y, 1 - tt if mirror else tt)
    return y


@exercise(12, "sample_hunyuan")
def check_port_sampler(fn: object) -> str:
    """``fn(model, x, n_steps) -> samples``: Euler in Hunyuan3D-2's convention (``t`` 0 -> 1, ``model`` a
    reversed-convention velocity model), ``n_steps`` model calls and ``n_steps`` effective steps."""
    from ..metrics import sliced_wasserstein
    from ..schedules import hunyuan_compat

    gmm = _asymmetric_gmm()
    model = gmm.velocity_model(REVERSED)
    forbidden = _solvers("sampling:sample", "schedules:hunyuan_corrected", "schedules:uniform", "functional:euler_step")
    runs = []
    for n, b, dtype in ((8, 400, torch.float64), (5, 30, torch.float64), (3, 50, torch.float32)):
        x = torch.randn(b, 2, generator=_gen(12 + n), dtype=torch.float64).to(dtype)
        counter = _CheckedModel(model)
        got = call_unchanged(fn, (counter, x, n), ("model", "x", "n_steps"), what="sample_hunyuan", forbidden=forbidden)
        if counter.calls != n:
            raise Wrong(f"`sample_hunyuan` made {counter.calls} model calls for n_steps = {n}; Euler makes one call "
                        f"per step, n_steps in all: n_steps + 1 times from 0 to 1.")
        up = torch.linspace(0, 1, n + 1, dtype=torch.float64)
        truth = _euler(model, x.double(), up).to(dtype)
        mistakes = [
            (_euler(model, x.double(), 1 - up), "you kept diffusers' sigma running 1 -> 0. This model is reversed: "
                                                "it expects t running 0 (noise) -> 1 (data)."),
            (_euler(model, x.double(), up, sign=-1.0), "t runs the right way, but you step with -dt (x - (t' - t) v): "
                                                       "that was the conventional sign fix. With t increasing, "
                                                       "x + (t' - t) v already moves toward the data."),
            (_euler(model, x.double(), up, mirror=True), "you call the model at 1 - t: that is the conversion for a "
                                                         "conventional model. This model already speaks the reversed "
                                                         "time."),
            (_euler(model, x.double(), hunyuan_compat(n, dtype=torch.float64)),
             f"you reproduced Hunyuan3D-2's schedule with its wasted last step (1.0 -> 1.0): {n} calls, {n - 1} "
             "effective steps."),
        ]
        runs.append((n, got, truth, [(m.to(dtype), h) for m, h in mistakes], _label(x)))
    note = "Return the samples, the shape of x."
    for n, got, truth, _, label in runs:
        _expect_like(got, truth, what="sample_hunyuan", inputs=label, shape_note=note, check_dtype=False)
    wrong = [run for run in runs if not _close(run[1], run[2], _tol(run[2].dtype, None))]
    if wrong:  # a known mistake only when the samples equal its loop for every n_steps
        for k, (_, hint) in enumerate(runs[0][3]):
            if all(_close(got, ms[k][0], _tol(truth.dtype, None)) for _, got, truth, ms, _ in runs):
                raise Wrong(hint)
    for n, got, truth, _, label in runs:
        _expect_like(got, truth, what="sample_hunyuan", inputs=label, shape_note=note)
    if wrong:
        n, got, truth, _, label = wrong[0]
        raise Wrong(f"`sample_hunyuan` with n_steps = {n} differs from Euler along t = linspace(0, 1, n_steps + 1) by "
                    f"up to {_worst(got, truth):.2g} ({label}), and it is none of the usual mistakes.")
    ref = gmm.sample(2000, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    return (f"your loop retraces Euler along t = 0 -> 1 with n_steps calls and n_steps effective steps for "
            f"n_steps = 8, 5 and 3 (float64 and float32) and leaves x unchanged (SW2 to the data at 8 steps "
            f"{sliced_wasserstein(runs[0][1].double(), ref):.2f}).")


# ---- 13, 14: the shape model -------------------------------------------------------------------------------

@exercise(13, "hunyuan_time")
def check_hunyuan_time(fn: object) -> str:
    """``fn(t) -> t_seen``: the time Hunyuan3D-2's DiT receives in an fp16 pipeline, ``t: (B,)`` float32;
    returned in float16."""
    from ..schedules import hunyuan_compat

    grid = hunyuan_compat(50)[:-1]
    inputs = [grid, torch.rand(32, generator=_gen(13)), torch.rand(5, generator=_gen(14))]

    def truth(t: Tensor) -> Tensor:  # typed from Hunyuan3D-2's pipeline: timestep = t * 1000 in fp16, / 1000 in fp16
        return (t * 1000).to(torch.float16) / 1000

    cases = [Case((t,), truth(t.clone()), _label(t, "t")) for t in inputs]
    check_cases(fn, cases, [
        Mistake(lambda t: t, "no rounding: in an fp16 pipeline the DiT never sees t exactly. Compute (t * 1000) in "
                             "fp16, then divide by 1000 in fp16."),
        Mistake(lambda t: t.half(), "you rounded t itself to fp16. The reference rounds 1000 t (the timestep) to fp16 "
                                    "and then divides by 1000 in fp16, so the grid of representable times differs."),
        Mistake(lambda t: (t * 1000).round() / 1000,
                "rounding 1000 t to an integer is not what fp16 does: fp16 keeps 11 significant bits (1000 t in "
                "[512, 1024) is rounded to multiples of 0.5)."),
        Mistake(lambda t: (t * 1000).half().float() / 1000,
                "almost: you divided by 1000 in float32. The reference divides in fp16 (a second rounding)."),
    ], what="hunyuan_time", names=("t",), tol=0.0, forbidden=_solvers("shape:reference_time"),
        shape_note="Return one time per input time: the shape of t.")
    seen = truth(grid).float()
    k = int((seen - grid).abs().argmax())
    n = sum(len(t) for t in inputs)
    return (f"identical, bit for bit, to the fp16 pipeline's (t * 1000).half() / 1000 for all {n} times tested. "
            f"On the 50-call schedule the largest change is t = {float(grid[k]):.5f} -> {float(seen[k]):.5f}.")


def _embedding(t: Tensor, dim: int, period: float = 1000.0, factor: float = 1000.0, sin_first: bool = False) -> Tensor:
    """Typed from Hunyuan3D-2's DiT: T = factor t, f_i = exp(-ln(period) i / half), [cos(T f), sin(T f)]."""
    half = dim // 2
    freqs = torch.exp(-math.log(period) * torch.arange(half, dtype=torch.float64) / half)
    args = (factor * t.double())[:, None] * freqs[None]
    parts = [torch.sin(args), torch.cos(args)] if sin_first else [torch.cos(args), torch.sin(args)]
    return torch.cat(parts, dim=-1).float()


@exercise(14, "hunyuan_embedding")
def check_time_embedding(fn: object) -> str:
    """``fn(t, dim) -> (B, dim)`` float32: Hunyuan3D-2's sinusoidal time embedding of ``t: (B,)`` float32
    (``dim`` even)."""
    inputs = [(torch.cat([torch.tensor([0.0, 0.5, 1.0]), torch.rand(13, generator=_gen(14))]), 16),
              (torch.rand(5, generator=_gen(15)), 8), (torch.rand(9, generator=_gen(16)), 32)]
    cases = [Case((t, dim), _embedding(t, dim), f"{_label(t, 't')} and dim {dim}") for t, dim in inputs]
    check_cases(fn, cases, [
        Mistake(lambda t, d: _embedding(t, d, period=10000.0), "max_period 10000 is the usual DiT / Flux value; "
                "Hunyuan3D-2 passes 1000 where the period belongs."),
        Mistake(lambda t, d: _embedding(t, d, sin_first=True), "the halves are swapped: Hunyuan3D-2 puts the cosines "
                                                               "first, [cos, sin]."),
        Mistake(lambda t, d: _embedding(t, d, factor=1.0), "the time is scaled by 1000 before the embedding "
                                                           "(T = 1000 t); you embedded t in [0, 1]."),
        Mistake(lambda t, d: _embedding(t, d, period=10000.0, factor=1.0),
                "two differences: T = 1000 t (not t) and max_period 1000 (not 10000)."),
    ], what="hunyuan_embedding", names=("t", "dim"), tol=1e-3, forbidden=_solvers("shape:timestep_embedding"),
        shape_note="The embedding has one row per time and dim columns: (B, dim).")
    return ("your embedding equals [cos(T f), sin(T f)] with T = 1000 t and f_i = exp(-ln(1000) i / half) for dims "
            "16, 8 and 32 (float32).")
