"""One check per exercise. Each runs the student's answer against the truth derived by flowlab
(:mod:`flowlab.symbolic`, :mod:`flowlab.conventions`, :mod:`flowlab.schedules`, ...) on seeded random
inputs and answers in words (see :mod:`flowlab.exercises.core`). Known wrong formulas are evaluated
on the same inputs, so a wrong answer that equals one of them is named with its misconception.

Notation: reversed convention (Hunyuan3D-2): ``t`` runs 0 (noise) -> 1 (data), ``x = t D + (1 - t) E``,
``v = D - E``; conventional: ``sigma`` runs 1 (noise) -> 0 (data), ``v = E - D``. ``x: (B, dim)``,
per-sample times ``t: (B,)``.
"""
from __future__ import annotations

import sympy as sp
import torch
from torch import Tensor

from .. import symbolic as S
from ..conventions import CONVENTIONAL, REVERSED, Convention, T
from ..errors import FlowlabError
from .core import Candidate, NotDone, StudentError, Wrong, call, canonical_expr, compare_tensor, exercise, need

__all__ = ["EXERCISE_PATH", "check_jumps", "check_which_is_data", "check_pred_data", "check_flip", "check_shift",
           "check_fixed_schedule", "check_sw2_after", "check_velocity_to_noise", "check_velocity_to_score",
           "check_guided_velocity", "check_mystery", "check_port_sampler", "check_hunyuan_time",
           "check_time_embedding"]

#: The custom affine path of exercises 8 and 9: ``x = t D + (1 - t^2) E``, t runs 0 (noise) -> 1 (data).
EXERCISE_PATH = Convention.affine("exercise_path", T, 1 - T**2, t_noise=0, t_data=1, symbol="t",
                                  systems="exercises 8 and 9 (a curved path: the Euler jump is not exact)")

_SEED = 1234


def _gen(offset: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(_SEED + offset)


def _xvt(batch: int = 16, dim: int = 3, *, lo: float = 0.05, hi: float = 0.95, offset: int = 0,
         dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor, Tensor]:
    g = _gen(offset)
    x = torch.randn(batch, dim, generator=g, dtype=torch.float64)
    v = torch.randn(batch, dim, generator=g, dtype=torch.float64)
    t = lo + (hi - lo) * torch.rand(batch, generator=g, dtype=torch.float64)
    return x.to(dtype), v.to(dtype), t.to(dtype)


def _fn(expr: sp.Expr, *args: sp.Symbol):
    """A derived SymPy expression as a torch function; per-sample (B,) arguments are given as (B, 1)."""
    return S.to_torch(expr, args)


def _col(t: Tensor) -> Tensor:
    return t[:, None]


def _as_float(value: object, what: str) -> float:
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise Wrong(f"`{what}` returned a tensor of shape {tuple(value.shape)}; it should return one number.")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Wrong(f"`{what}` returned a {type(value).__name__}; it should return one number (a float).")
    return float(value)


# ---- 1, 2: the predictions follow from the update rule ----------------------------------------------

@exercise(1, "pred_x0, pred_x1")
def check_jumps(pred_x0: object, pred_x1: object) -> str:
    """``pred_x0`` / ``pred_x1``: SymPy expressions in ``x, v, s``: the Euler update
    ``x' = x + (s' - s) v`` with the target time ``s'`` set to 0 / 1."""
    got0 = canonical_expr(pred_x0, "pred_x0").subs(S.T, S.S)
    got1 = canonical_expr(pred_x1, "pred_x1").subs(S.T, S.S)
    want0, want1 = S.jump_to(0, S.S), S.jump_to(1, S.S)
    for got, name in ((got0, "pred_x0"), (got1, "pred_x1")):
        if got.has(S.S_NEXT):
            raise Wrong(f"`{name}` still contains s_next: substitute the target time (s_next = 0 for pred_x0, "
                        "s_next = 1 for pred_x1) with .subs(s_next, ...).")
        if not got.has(S.V):
            raise Wrong(f"`{name}` = {sp.sstr(got)} does not depend on v: a prediction follows the velocity from x.")
    ok0, ok1 = S.vanishes(got0 - want0), S.vanishes(got1 - want1)
    if ok0 and ok1:
        return ("pred_x0 = x - s*v and pred_x1 = x + (1 - s)*v: the update rule jumped to s' = 0 and s' = 1. "
                "Which of them is the data is not decided yet: that depends on the path (exercise 2).")
    if S.vanishes(got0 - want1) and S.vanishes(got1 - want0):
        raise Wrong("you swapped them: pred_x0 is the jump to s' = 0 (x + (0 - s) v = x - s v), pred_x1 the jump to "
                    "s' = 1. The names say where the jump lands, not what is there.")
    for got, want, name, end in ((got0, want0, "pred_x0", 0), (got1, want1, "pred_x1", 1)):
        if S.vanishes(got - want):
            continue
        if S.vanishes(got - S.euler_update(s=-S.S).subs(S.S_NEXT, -end)):
            raise Wrong(f"`{name}` has the sign of the step flipped: x' = x + (s' - s) v, so the jump to s' = {end} "
                        f"is x + ({end} - s) v.")
        raise Wrong(f"`{name}` = {sp.sstr(got)} is not the update rule at s' = {end}; take "
                    f"update.subs(s_next, {end}).")
    raise Wrong("unreachable")  # pragma: no cover


@exercise(2, "x_path, v_path, data_is")
def check_which_is_data(x_path: object, v_path: object, data_is: object) -> str:
    """Reversed convention: ``x_path`` (interpolant in D, E, t), ``v_path`` (its velocity target) and
    ``data_is`` (``"pred_x0"`` or ``"pred_x1"``: which jump is the data)."""
    xp = canonical_expr(x_path, "x_path")
    vp = canonical_expr(v_path, "v_path")
    answer = need(data_is, "data_is")
    want_x, want_v = S.interpolant(REVERSED), S.velocity_target(REVERSED)
    if not S.vanishes(xp - want_x):
        if S.vanishes(xp - S.interpolant(CONVENTIONAL)):
            raise Wrong("`x_path` = (1 - t) D + t E is the CONVENTIONAL interpolant (noise at 1). In the reversed "
                        "convention t = 0 is noise and t = 1 is data: x = t D + (1 - t) E.")
        raise Wrong(f"`x_path` = {sp.sstr(xp)} is not the reversed interpolant: at t = 0 it must be the noise E, "
                    "at t = 1 the data D.")
    if not S.vanishes(vp - want_v):
        if S.vanishes(vp + want_v):
            raise Wrong("`v_path` = E - D is the conventional target (the sign of the velocity flips with the direction "
                        "of time). Differentiate your x_path: sp.diff(x_path, t).")
        raise Wrong(f"`v_path` = {sp.sstr(vp)} is not d x_path / dt; compute it with sp.diff(x_path, t).")
    if answer not in ("pred_x0", "pred_x1"):
        raise Wrong(f"`data_is` should be the string 'pred_x0' or 'pred_x1', got {answer!r}.")
    if answer != REVERSED.data_endpoint_name:
        raise Wrong("data_is = 'pred_x0' is the mistake of Hunyuan3D-2 issue #124. Substitute the path: "
                    "pred_x0 = x - t v becomes E (the noise), pred_x1 = x + (1 - t) v becomes D. "
                    "In the reversed convention the data lives at t = 1.")
    on0 = S.on_path(S.jump_to(0, S.T), REVERSED, S.T)
    on1 = S.on_path(S.jump_to(1, S.T), REVERSED, S.T)
    return (f"on the reversed path pred_x0 = x - t*v reduces to {sp.sstr(on0)} (the noise) and pred_x1 = "
            f"x + (1 - t)*v to {sp.sstr(on1)} (the data).")


# ---- 3, 4: torch functions ---------------------------------------------------------------------------------

@exercise(3, "pred_data_reversed")
def check_pred_data(fn: object) -> str:
    """``fn(x, v, t) -> (B, dim)``: the data prediction of the reversed convention; ``t: (B,)``."""
    x, v, t = _xvt()
    truth = _fn(S.endpoint_fact(REVERSED, 1).formula, S.X, S.V, S.T)(x, v, _col(t))
    got = call(fn, x.clone(), v.clone(), t.clone(), what="pred_data_reversed")
    tc = _col(t)
    compare_tensor(got, truth, [
        Candidate(_fn(S.jump_to(0, S.T), S.X, S.V, S.T)(x, v, tc),
                  "your function returns x - t v: that is the NOISE in this convention (Hunyuan's pred_x0, the "
                  "#124 mistake). The data lives at t = 1: jump there, x + (1 - t) v."),
        Candidate(x - (1 - tc) * v,
                  "your function returns x - (1 - t) v: the conventional x - sigma v with sigma = 1 - t, but without "
                  "flipping the velocity (v_conv = -v_rev). Jump to t = 1 in the reversed time: x + (1 - t) v."),
        Candidate(x + tc * v, "your function returns x + t v: the sign of the step is off. Jumping from t to 1 "
                              "moves by (1 - t) along v: x + (1 - t) v."),
        Candidate(x + v, "your function returns x + v: that is the jump from t = 0 only; the step length is (1 - t)."),
    ], what="pred_data_reversed")
    got32 = call(fn, x.float(), v.float(), t.float(), what="pred_data_reversed")
    compare_tensor(got32, truth.float(), [], what="pred_data_reversed (float32 inputs)", tol=1e-5)
    return "matches x + (1 - t) v, the jump to t = 1 where the data lives, on 16 random (x, v, t) in float64 and float32."


@exercise(4, "flip")
def check_flip(fn: object) -> str:
    """``fn(model) -> model'``: turn a conventional velocity model into a reversed one (``t' = 1 - t, v' = -v``)."""
    from ..gmm import eight_gaussians_gmm

    gmm = eight_gaussians_gmm()
    conventional = gmm.velocity_model(CONVENTIONAL)
    x = 1.5 * torch.randn(64, 2, generator=_gen(4), dtype=torch.float64)
    t = torch.rand(64, generator=_gen(5), dtype=torch.float64) * 0.9 + 0.05
    truth = gmm.velocity(x, t, REVERSED)  # computed on the reversed path itself, not from the conventional model
    flipped = call(fn, conventional, what="flip")
    got = call(flipped, x.clone(), t.clone(), what="flip(model)")
    compare_tensor(got, truth, [
        Candidate(conventional(x, 1 - t), "you flipped the time but not the velocity: the direction of motion reverses "
                                          "with the direction of time, so v' = -v(x, 1 - t)."),
        Candidate(-conventional(x, t), "you negated the velocity but kept the time: the reversed time t corresponds to "
                                       "sigma = 1 - t, so evaluate the model at 1 - t: v' = -v(x, 1 - t)."),
        Candidate(conventional(x, t), "your flip returns the model unchanged: v' = -v(x, 1 - t)."),
    ], what="flip(model)", tol=1e-9)
    return ("flip(model)(x, t) = -model(x, 1 - t) equals the exact reversed velocity of the eight-Gaussians "
            "mixture, computed on the reversed path (64 random points).")


# ---- 5, 6, 7: schedules ------------------------------------------------------------------------------------

@exercise(5, "shift_reversed")
def check_shift(fn: object) -> str:
    """``fn(t, shift) -> t'``: the SD3 shift for the reversed time so that ``shift > 1`` moves steps toward noise."""
    from ..schedules import shift_noise_level, shifted, uniform

    t = uniform(8, REVERSED, dtype=torch.float64)
    for s in (3.0, 0.5, 1.0):
        truth = shifted(8, REVERSED, s, dtype=torch.float64)
        got = call(fn, t.clone(), s, what="shift_reversed")
        sd3 = s * t / (1 + (s - 1) * t)
        compare_tensor(got, truth, [
            Candidate(sd3, f"you applied the SD3 formula s t / (1 + (s - 1) t) to the reversed t unchanged. With shift "
                           f"{s:g} it moves the steps toward t = {'1, the DATA' if s > 1 else '0, the noise'}: the "
                           "formula is written for a noise level (1 = noise). Apply it to u = 1 - t and convert back."),
            Candidate(shift_noise_level(1 - t, s), "you shifted the noise level u = 1 - t but returned u': convert "
                                                   "back to the reversed time, t' = 1 - u'."),
            Candidate(1 - sd3, "you returned 1 - SD3(t): the noise level must be shifted, not t. Compute u = 1 - t, "
                               "shift u, return 1 - u'."),
        ], what=f"shift_reversed(t, {s:g})", tol=1e-6)
    t_mid = float(shifted(2, REVERSED, 3.0, dtype=torch.float64)[1])
    return (f"with shift 3 the middle time t = 0.5 moves to {t_mid:.2f}, toward the noise at t = 0 (the SD3 formula "
            f"applied to t unchanged would give {3 * 0.5 / (1 + 2 * 0.5):.2f}, toward the data); shift 1 changes nothing.")


@exercise(6, "fixed_schedule")
def check_fixed_schedule(fn: object) -> str:
    """``fn(n_calls) -> (n_calls + 1,)`` reversed times: N model calls, N effective steps (Hunyuan3D-2 fixed)."""
    from ..schedules import hunyuan_compat, hunyuan_corrected, n_effective_steps

    for n in (4, 1, 2, 7):
        got = call(fn, n, what="fixed_schedule")
        if isinstance(got, (list, tuple)):
            raise Wrong("`fixed_schedule` returned a Python list; return a 1-D torch tensor (torch.linspace).")
        truth = hunyuan_corrected(n, dtype=torch.float64)
        lin = torch.linspace(0, 1, n, dtype=torch.float64)
        cands = [Candidate(torch.linspace(1, 0, n + 1, dtype=torch.float64),
                           "your schedule runs 1 -> 0: that is sigma, the conventional direction. Hunyuan3D-2's t runs "
                           "0 (noise) -> 1 (data).")]
        if n > 1:
            cands += [
                Candidate(hunyuan_compat(n, dtype=torch.float64),
                          f"this is Hunyuan3D-2's own schedule: linspace(0, 1, N) plus an appended 1.0. Its last step "
                          f"goes 1.0 -> 1.0 (dt = 0): {n} calls but {n - 1} effective steps. Space N + 1 points "
                          "instead."),
                Candidate(torch.cat([lin, torch.zeros(1, dtype=torch.float64)]),
                          "you appended 0.0: the last step jumps from t = 1 back to 0 (dt = -1), which is the port "
                          "that produced empty meshes. A schedule must end at the data, t = 1."),
            ]
        if isinstance(got, Tensor) and got.shape == lin.shape and n > 1:
            raise Wrong(f"`fixed_schedule({n})` has {n} points: that is {n - 1} steps, so {n - 1} model calls. "
                        f"N calls need N + 1 points (each step uses the point it starts from and the next).")
        compare_tensor(got, truth, cands, what=f"fixed_schedule({n})", tol=1e-6,
                       generic_hint="Expected N + 1 equally spaced times from 0 to 1.")
        if n_effective_steps(got) != n:  # pragma: no cover - equal to the truth implies this
            raise Wrong(f"`fixed_schedule({n})` makes {n_effective_steps(got)} effective steps, expected {n}.")
    return "N + 1 points from t = 0 to t = 1: N model calls and N effective steps for N = 1, 2, 4 and 7 (no wasted call)."


def _gmm_setup(n: int = 2000):
    from ..gmm import eight_gaussians_gmm

    gmm = eight_gaussians_gmm()
    x0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    reference = gmm.sample(n, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    return gmm, x0, reference


@exercise(7, "sw2_after")
def check_sw2_after(fn: object) -> str:
    """``fn(schedule, model, x0, reference) -> float``: sample ``model`` (reversed) from ``x0`` along
    ``schedule`` and return the sliced Wasserstein-2 distance to ``reference``."""
    from ..metrics import sliced_wasserstein
    from ..sampling import sample
    from ..schedules import hunyuan_compat, hunyuan_corrected

    gmm, x0, reference = _gmm_setup()
    model = gmm.velocity_model(REVERSED)

    def truth(schedule: Tensor) -> float:
        return sliced_wasserstein(sample(model, x0, schedule, REVERSED), reference)

    rows = []
    for n in (2, 4, 8):
        pair = []
        for sched in (hunyuan_compat(n, dtype=torch.float64), hunyuan_corrected(n, dtype=torch.float64)):
            try:
                got = _as_float(call(fn, sched.clone(), model, x0.clone(), reference, what="sw2_after"), "sw2_after")
            except StudentError as exc:
                if "wrong way" in exc.args[0]:
                    raise StudentError(exc.args[0] + " Hint: sample in the reversed convention (REVERSED): the "
                                                     "schedules run t = 0 -> 1.") from None
                raise
            want = truth(sched)
            if abs(got - want) > 1e-6 * (1 + abs(want)):
                if abs(got - sliced_wasserstein(x0, reference)) < 1e-9:
                    raise Wrong("`sw2_after` returns the distance of the starting noise x0 to the data: sample first "
                                "(flowlab.sampling.sample(model, x0, schedule, REVERSED)), then measure.")
                raise Wrong(f"`sw2_after` gives {got:.4f} for the {len(sched) - 1}-call schedule, expected {want:.4f}. "
                            "Sample model from x0 along the given schedule in the reversed convention and return "
                            "sliced_wasserstein(samples, reference).")
            pair.append(got)
        rows.append((n, *pair))
    seed_noise = sliced_wasserstein(reference, gmm.sample(len(reference), generator=torch.Generator().manual_seed(11),
                                                          dtype=torch.float64))
    table = "\n".join(f"  N = {n}: Hunyuan3D-2 schedule {a:.2f}, fixed {b:.2f}" for n, a, b in rows)
    return (f"your measurement agrees with flowlab's. SW2 to the data (lower is better; two data sets differ by "
            f"{seed_noise:.2f}):\n{table}")


# ---- 8, 9: a custom affine path -------------------------------------------------------------------------

def _path_inputs() -> tuple[Tensor, Tensor, Tensor]:
    return _xvt(offset=8)


@exercise(8, "velocity_to_noise")
def check_velocity_to_noise(fn: object) -> str:
    """``fn(x, v, t) -> E``: the noise (epsilon) prediction on the path ``x = t D + (1 - t^2) E``."""
    x, v, t = _path_inputs()
    tc = _col(t)
    expr = S.conversion("velocity", "noise", EXERCISE_PATH)
    truth = _fn(expr, S.X, S.V, S.T)(x, v, tc)
    got = call(fn, x.clone(), v.clone(), t.clone(), what="velocity_to_noise")
    compare_tensor(got, truth, [
        Candidate(x - tc * v, "you returned x - t v, the Euler jump to t = 0. It is the noise only on the straight "
                              "path; here beta = 1 - t^2 is curved. Solve x = t D + (1 - t^2) E, v = D - 2t E for E."),
        Candidate((x - tc * v) / (1 - tc**2), "close: x - t v is right, but divide by the determinant of the 2x2 "
                                              "system, not by beta. Eliminate D = v + 2t E from x = t D + (1 - t^2) E."),
        Candidate(-truth, "the sign is flipped: check the determinant alpha*beta' - alpha'*beta = -(1 + t^2)."),
        Candidate(_fn(S.conversion("velocity", "data", EXERCISE_PATH), S.X, S.V, S.T)(x, v, tc),
                  "that is the DATA prediction D; the exercise asks for the noise E."),
    ], what="velocity_to_noise")
    return f"E = {sp.sstr(S.in_own_symbol(EXERCISE_PATH, expr))}, as SymPy derives by solving the 2x2 system."


@exercise(9, "velocity_to_score")
def check_velocity_to_score(fn: object) -> str:
    """``fn(x, v, t) -> score``: grad log p_t(x) on the path ``x = t D + (1 - t^2) E``."""
    x, v, t = _path_inputs()
    tc = _col(t)
    expr = S.conversion("velocity", "score", EXERCISE_PATH)
    truth = _fn(expr, S.X, S.V, S.T)(x, v, tc)
    eps = _fn(S.conversion("velocity", "noise", EXERCISE_PATH), S.X, S.V, S.T)(x, v, tc)
    beta = 1 - tc**2
    got = call(fn, x.clone(), v.clone(), t.clone(), what="velocity_to_score")
    compare_tensor(got, truth, [
        Candidate(-eps, "you returned -E: the score of N(alpha D, beta^2 I) is -(x - alpha D) / beta^2 = -E / beta. "
                        "Divide by beta = 1 - t^2."),
        Candidate(eps / beta, "the sign: the score points toward higher density, -E / beta."),
        Candidate(-eps / beta**2, "divide by beta once: -(x - alpha D) / beta^2 = -(beta E) / beta^2 = -E / beta."),
        Candidate(-(x - tc * v) / (1 - tc), "that is the score of the straight reversed path, -(x - t v) / (1 - t). "
                                            "On this path E = (x - t v) / (1 + t^2) and beta = 1 - t^2."),
    ], what="velocity_to_score")
    return f"the score is {sp.sstr(S.in_own_symbol(EXERCISE_PATH, expr))} = -E / (1 - t^2), as SymPy derives."


# ---- 10: guidance with the data prediction ------------------------------------------------------------

@exercise(10, "guided_velocity")
def check_guided_velocity(fn: object) -> str:
    """``fn(x, v, t, delta) -> v'``: reversed convention; the velocity whose data prediction is
    ``x + (1 - t) v + delta`` (guidance moves the predicted data by ``delta``)."""
    from ..gmm import eight_gaussians_gmm
    from ..guidance import HalfPlane, guidance_demo
    from ..sampling import sample
    from ..schedules import uniform

    x, v, t = _xvt(offset=10)
    delta = torch.randn(x.shape, generator=_gen(11), dtype=torch.float64)
    tc = _col(t)
    truth = REVERSED.velocity_from_data(x, REVERSED.pred_data(x, v, t) + delta, t)
    got = call(fn, x.clone(), v.clone(), t.clone(), delta.clone(), what="guided_velocity")
    compare_tensor(got, truth, [
        Candidate(v - delta / tc, "you moved x - t v by delta, the jump to t = 0: that is the NOISE prediction "
                                  "(Hunyuan's pred_x0, the #124 mistake). Guidance must move the data prediction "
                                  "x + (1 - t) v: v' = v + delta / (1 - t)."),
        Candidate(v + delta, "you added delta to v directly; the data prediction then moves by (1 - t) delta. "
                             "Divide by (1 - t)."),
        Candidate(v + delta * (1 - tc), "multiply or divide? x + (1 - t) v' = x + (1 - t) v + delta needs "
                                        "v' = v + delta / (1 - t)."),
        Candidate(v - delta / (1 - tc), "the sign: moving the data prediction by +delta needs v' = v + delta / (1 - t)."),
    ], what="guided_velocity")

    # what it does: guide the exact eight-Gaussians flow toward the half-plane x >= 1 with the student's formula
    region = HalfPlane((1.0, 0.0), 1.0)
    gmm = eight_gaussians_gmm()
    base = gmm.velocity_model(REVERSED)

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
    return (f"the corrected velocity is v' = v + delta / (1 - t). Guiding the eight Gaussians toward x >= 1 with your formula puts "
            f"{100 * mine:.0f}% of the samples there; guiding x - t v instead (#124) puts {100 * wrong:.0f}%, "
            f"no guidance {100 * none:.0f}%.")


# ---- 11, 12: reading and porting a scheduler ------------------------------------------------------------

_FIELDS = ("direction", "data_at", "wasted_calls", "shift")


@exercise(11, "mystery answers, mystery_pred_data")
def check_mystery(answers: object, pred_fn: object) -> str:
    """``answers``: dict with ``direction`` ("increasing"/"decreasing"), ``data_at`` (time where sampling ends),
    ``wasted_calls`` (no-op steps in 10 calls), ``shift`` (the SD3 shift); ``pred_fn(x, v, timestep)``: the data
    prediction, with ``timestep`` exactly as the scheduler passes it to the model."""
    from ..inspector import inspect
    from .mystery import MysteryScheduler

    ans = need(answers, "answers")
    if not isinstance(ans, dict):
        raise Wrong(f"`answers` should be a dict with keys {list(_FIELDS)}, got {type(ans).__name__}.")
    missing = [k for k in _FIELDS if k not in ans]
    if missing:
        raise Wrong(f"`answers` lacks {missing}; fill in all of {list(_FIELDS)}.")
    if any(ans[k] is Ellipsis or ans[k] is None for k in _FIELDS):
        raise NotDone(f"`answers` still has ... in {[k for k in _FIELDS if ans[k] is Ellipsis or ans[k] is None]}.")
    card = inspect(MysteryScheduler(), 10)
    if ans["direction"] != card.direction:
        raise Wrong(f"direction {ans['direction']!r} is not what the card says: read 'direction of time' (the sign of "
                    "the steps dt).")
    data_at = card.times[-1]
    if not isinstance(ans["data_at"], (int, float)) or abs(float(ans["data_at"]) - data_at) > 1e-6:
        raise Wrong(f"data_at {ans['data_at']!r}: sampling starts at the noise and ends at the data; the data is at the "
                    "LAST time in the card.")
    if ans["wasted_calls"] != len(card.noop_steps):
        raise Wrong(f"wasted_calls {ans['wasted_calls']!r}: count the no-op steps (dt = 0) in the card's "
                    "'effective steps' line.")
    if not isinstance(ans["shift"], (int, float)) or abs(float(ans["shift"]) - card.shift) > 0.05:
        raise Wrong(f"shift {ans['shift']!r}: read the card's shift line (1 = none, > 1 = steps crowd toward the noise).")
    # the data prediction the inspector derived, in the model's timestep units
    t_own = sp.Symbol("t", real=True)
    formula = sp.sympify(card.data_prediction.replace("tau", "t"), locals={"x": S.X, "v": S.V, "t": t_own})
    scale = card.model_time_scale or 1.0
    x, v, t = _xvt(offset=12)
    timestep = t * scale
    truth = _fn(formula.subs(t_own, S.T), S.X, S.V, S.T)(x, v, _col(t))
    got = call(pred_fn, x.clone(), v.clone(), timestep.clone(), what="mystery_pred_data")
    ts = _col(timestep)
    compare_tensor(got, truth, [
        Candidate(x + (1 - ts) * v, f"you used the timestep as the time. The card says the model is called with "
                                    f"timestep = {scale:g} * time: divide by {scale:g} first."),
        Candidate(x - _col(t) * v, "that is x - t v, the jump to the NOISE end (t = 0) of this scheduler. The card's "
                                   "data prediction is the jump to the data end."),
        Candidate(x - ts * v, f"two mistakes: x - t v is the noise end, and the timestep must be divided by {scale:g}."),
    ], what="mystery_pred_data")
    return (f"the mystery scheduler is {card.convention}: time {card.direction} to the data at {data_at:g}, shift "
            f"{card.shift:.1f} toward the noise, {len(card.noop_steps)} wasted call in 10, data prediction "
            f"{card.data_prediction} with t = timestep / {scale:g}.")


@exercise(12, "sample_hunyuan")
def check_port_sampler(fn: object) -> str:
    """``fn(model, x, n_steps) -> samples``: Euler in Hunyuan3D-2's convention (``t`` 0 -> 1, ``model`` a
    reversed-convention velocity model), ``n_steps`` model calls and ``n_steps`` effective steps."""
    from ..gmm import eight_gaussians_gmm
    from ..metrics import sliced_wasserstein
    from ..sampling import CallCounter, sample
    from ..schedules import hunyuan_compat, uniform

    n = 8
    gmm = eight_gaussians_gmm()
    model = gmm.velocity_model(REVERSED)
    x = torch.randn(500, 2, generator=_gen(12), dtype=torch.float64)
    truth = sample(model, x, uniform(n, REVERSED, dtype=torch.float64), REVERSED)

    def loop(times: Tensor, sign: float = 1.0, mirror: bool = False) -> Tensor:
        y = x.clone()
        for a, b in zip(times[:-1], times[1:]):
            tt = torch.full((y.shape[0],), float(a), dtype=y.dtype)
            y = y + sign * (b - a) * model(y, 1 - tt if mirror else tt)
        return y

    t_up = torch.linspace(0, 1, n + 1, dtype=torch.float64)
    counter = CallCounter(model)
    got = call(fn, counter, x.clone(), n, what="sample_hunyuan")
    compare_tensor(got, truth, [
        Candidate(loop(1 - t_up), "you kept diffusers' sigma running 1 -> 0. This model is reversed: it expects t "
                                  "running 0 (noise) -> 1 (data). Let t go 0 -> 1; the update line stays the same."),
        Candidate(loop(t_up, -1.0), "t runs the right way, but you step with -dt (x - (t' - t) v): that was the "
                                    "conventional sign fix. With t increasing, x + (t' - t) v already moves toward the "
                                    "data."),
        Candidate(loop(t_up, 1.0, mirror=True), "you call the model at 1 - t: that is the conversion for a "
                                                "conventional model. This model already speaks the reversed time."),
        Candidate(sample(model, x, hunyuan_compat(n, dtype=torch.float64), REVERSED),
                  "you reproduced Hunyuan3D-2's schedule with its wasted last step (1.0 -> 1.0): "
                  f"{n} calls, {n - 1} effective steps. Use linspace(0, 1, n_steps + 1)."),
    ], what="sample_hunyuan", tol=1e-8)
    if counter.calls != n:
        raise Wrong(f"right samples, but {counter.calls} model calls for {n} steps; Euler needs one call per step.")
    ref = gmm.sample(2000, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    return (f"your loop retraces flowlab's reversed sampler with {n} calls and {n} effective steps "
            f"(SW2 to the data {sliced_wasserstein(got, ref):.2f}).")


# ---- 13, 14: the shape model -------------------------------------------------------------------------------

@exercise(13, "hunyuan_time")
def check_hunyuan_time(fn: object) -> str:
    """``fn(t) -> t_seen``: the time Hunyuan3D-2's DiT receives in an fp16 pipeline, ``t: (B,)`` float32."""
    from ..schedules import hunyuan_compat
    from ..shape import reference_time

    t = torch.cat([hunyuan_compat(50)[:-1], torch.rand(32, generator=_gen(13))])
    truth = reference_time(t, torch.float16)
    got = call(fn, t.clone(), what="hunyuan_time")
    if isinstance(got, Tensor) and got.shape == truth.shape and not got.is_floating_point():
        raise Wrong("`hunyuan_time` returned integers; the DiT receives a float time (1000 t in fp16, divided by 1000).")
    compare_tensor(got, truth.double(), [
        Candidate(t.half().double(), "you rounded t itself to fp16. The reference rounds 1000 t (the timestep) to fp16 "
                                     "and then divides by 1000 in fp16, so the grid of representable times differs."),
        Candidate(t.double(), "no rounding: in an fp16 pipeline the DiT never sees t exactly. Compute "
                              "(t * 1000) in fp16, then divide by 1000 in fp16."),
        Candidate(((t * 1000).round() / 1000).double(), "rounding 1000 t to an integer is not what fp16 does: fp16 keeps "
                                                        "11 significant bits (1000 t in [512, 1024) is rounded to "
                                                        "multiples of 0.5). Cast with .half()."),
        Candidate(((t * 1000).half().float() / 1000).double(), "almost: you divided by 1000 in float32. The reference "
                                                               "divides in fp16 (a second rounding); keep the division "
                                                               "in half precision."),
    ], what="hunyuan_time", tol=0.0)
    grid = hunyuan_compat(50)[:-1]
    seen = reference_time(grid, torch.float16).float()
    k = int((seen - grid).abs().argmax())
    return (f"identical to flowlab.shape.reference_time for all 81 times. On the 50-call schedule the largest change "
            f"is t = {float(grid[k]):.6f} -> {float(seen[k]):.6f}.")


@exercise(14, "hunyuan_embedding")
def check_time_embedding(fn: object) -> str:
    """``fn(t, dim) -> (B, dim)``: Hunyuan3D-2's sinusoidal time embedding of ``t: (B,)`` float32 (``dim`` even)."""
    from ..shape import timestep_embedding

    t = torch.cat([torch.tensor([0.0, 0.5, 1.0]), torch.rand(13, generator=_gen(14))])
    dim = 16
    truth = timestep_embedding(t, dim)
    got = call(fn, t.clone(), dim, what="hunyuan_embedding")
    compare_tensor(got, truth, [
        Candidate(timestep_embedding(t, dim, max_period=10000.0), "max_period 10000 is the usual DiT / Flux value; "
                  "Hunyuan3D-2 passes 1000 where the period belongs, so its frequencies are exp(-ln(1000) i / half)."),
        Candidate(timestep_embedding(t, dim).roll(dim // 2, dims=1), "the halves are swapped: Hunyuan3D-2 puts the "
                                                                     "cosines first, [cos, sin]."),
        Candidate(timestep_embedding(t, dim, time_factor=1.0), "the time is scaled by 1000 before the embedding "
                                                               "(T = 1000 t); you embedded t in [0, 1]."),
        Candidate(timestep_embedding(t, dim, max_period=10000.0, time_factor=1.0),
                  "two differences: T = 1000 t (not t) and max_period 1000 (not 10000)."),
    ], what="hunyuan_embedding", tol=1e-3)
    return ("matches flowlab.shape.timestep_embedding: T = 1000 t, frequencies exp(-ln(1000) i / half), "
            "[cos(T f), sin(T f)].")
