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
from .core import (Candidate, Case, Mistake, NotDone, StudentError, Wrong, call, call_unchanged, canonical_expr,
                   check_cases, compare_tensor, exercise, need)

__all__ = ["EXERCISE_PATH", "check_jumps", "check_which_is_data", "check_pred_data", "check_flip", "check_shift",
           "check_fixed_schedule", "check_sw2_after", "check_velocity_to_noise", "check_velocity_to_score",
           "check_guided_velocity", "check_mystery", "check_port_sampler", "check_hunyuan_time",
           "check_time_embedding"]

#: The custom affine path of exercises 8 and 9: ``x = t D + (1 - t^2) E``, t runs 0 (noise) -> 1 (data).
EXERCISE_PATH = Convention.affine("exercise_path", T, 1 - T**2, t_noise=0, t_data=1, symbol="t",
                                  systems="exercises 8 and 9 (a curved path: the Euler jump is not exact)")

_SEED = 1234

#: The shapes (batch, dim) and dtypes every (x, v, t) check runs on: several batches, float64 and float32.
_SHAPES = ((16, 3, torch.float64), (5, 2, torch.float64), (7, 4, torch.float32))


def _gen(offset: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(_SEED + offset)


def _times(n: int, g: torch.Generator, dtype: torch.dtype = torch.float64) -> Tensor:
    """``n`` random times in [0.05, 0.4] or [0.6, 0.95]: away from 0, 1/2 and 1, where wrong formulas coincide."""
    u = torch.rand(n, generator=g, dtype=torch.float64)
    side = torch.rand(n, generator=g, dtype=torch.float64) < 0.5
    return torch.where(side, 0.05 + 0.35 * u, 0.6 + 0.35 * u).to(dtype)


def _xvt(batch: int = 16, dim: int = 3, *, offset: int = 0,
         dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor, Tensor]:
    g = _gen(offset)
    x = torch.randn(batch, dim, generator=g, dtype=torch.float64)
    v = torch.randn(batch, dim, generator=g, dtype=torch.float64)
    return x.to(dtype), v.to(dtype), _times(batch, g, dtype)


def _label(x: Tensor, name: str = "x") -> str:
    return f"{name} of shape {tuple(x.shape)}, {str(x.dtype).replace('torch.', '')}"


def _xvt_cases(truth, offset: int, extra: int = 0) -> list[Case]:
    """Cases (x, v, t[, more tensors like x]) for each of :data:`_SHAPES`; the truth is computed in float64 from
    copies and cast to the case's dtype."""
    cases = []
    for k, (b, d, dtype) in enumerate(_SHAPES):
        x, v, t = _xvt(b, d, offset=offset + 100 * k, dtype=dtype)
        more = tuple(torch.randn(b, d, generator=_gen(offset + 100 * k + 50), dtype=torch.float64).to(dtype)
                     for _ in range(extra))
        args = (x, v, t, *more)
        want = truth(*(a.detach().double() for a in args)).to(dtype)
        cases.append(Case(args, want, _label(x)))
    return cases


#: The shape hint of the (x, v, t) exercises: the per-sample time against the batch.
_XT_SHAPES = ("Times come one per sample, t of shape (B,), while x and v are (B, dim): use t[:, None] (shape (B, 1)) "
              "so that it multiplies each row.")


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

def _solvers(*names: str) -> list:
    """flowlab functions (``module:attr`` or ``module:Class.method``) that solve an exercise; calling them
    from the answer is refused."""
    import importlib

    out = []
    for name in names:
        mod, attr = name.split(":")
        obj = importlib.import_module(f"flowlab.{mod}")
        for part in attr.split("."):
            obj = getattr(obj, part)
        out.append(obj)
    return out


@exercise(3, "pred_data_reversed")
def check_pred_data(fn: object) -> str:
    """``fn(x, v, t) -> (B, dim)``: the data prediction of the reversed convention; ``t: (B,)``."""
    data = _fn(S.endpoint_fact(REVERSED, 1).formula, S.X, S.V, S.T)
    cases = _xvt_cases(lambda x, v, t: data(x, v, _col(t)), offset=0)
    check_cases(fn, cases, [
        Mistake(lambda x, v, t: x - _col(t) * v,
                "your function returns x - t v: that is the NOISE in this convention (Hunyuan's pred_x0, the "
                "#124 mistake). The data lives at t = 1: jump there from t along v."),
        Mistake(lambda x, v, t: x - (1 - _col(t)) * v,
                "your function returns x - (1 - t) v: the conventional x - sigma v with sigma = 1 - t, but without "
                "flipping the velocity (v_conv = -v_rev). Jump to t = 1 in the reversed time instead."),
        Mistake(lambda x, v, t: x + _col(t) * v, "your function returns x + t v: the step length is off. Jumping "
                                                 "from t to 1 moves by (1 - t) along v."),
        Mistake(lambda x, v, t: x + v, "your function returns x + v: that is the jump from t = 0 only; the step "
                                       "from t to 1 has length (1 - t)."),
    ], what="pred_data_reversed", names=("x", "v", "t"), shape_note=_XT_SHAPES,
        forbidden=_solvers("conventions:Convention.pred_data", "conventions:Convention.pred_x1", "functional:jump",
                           "functional:reversed_pred_x1"))
    return ("your function equals the jump to t = 1, x + (1 - t) v, on random (x, v, t) for batches of 16, 5 and 7 "
            "in float64 and float32, and leaves its inputs unchanged.")


def _asymmetric_gmm():
    """A three-component mixture with no symmetry (x -> -x maps it to a different mixture), so that a
    flip of x cannot pass for a flip of the velocity."""
    from ..gmm import GaussianMixture

    return GaussianMixture(torch.tensor([[1.8, 0.6], [-1.2, 1.4], [0.3, -2.1]]), torch.tensor([0.3, 0.5, 0.25]),
                           torch.tensor([0.5, 0.3, 0.2]))


@exercise(4, "flip")
def check_flip(fn: object) -> str:
    """``fn(model) -> model'``: turn a conventional velocity model into a reversed one."""
    gmm = _asymmetric_gmm()
    conventional = gmm.velocity_model(CONVENTIONAL)
    forbidden = _solvers("sampling:flip", "sampling:Flipped.__call__")
    flipped = call(fn, conventional, what="flip", forbidden=forbidden)
    cases = []
    for k, (b, dtype) in enumerate(((64, torch.float64), (9, torch.float64), (12, torch.float32))):
        x = (1.5 * torch.randn(b, 2, generator=_gen(4 + 10 * k), dtype=torch.float64)).to(dtype)
        t = _times(b, _gen(5 + 10 * k), dtype)
        # the truth comes from the reversed path itself, not from the conventional model
        cases.append(Case((x, t), gmm.velocity(x.double(), t.double(), REVERSED).to(dtype), _label(x)))
    m = conventional
    check_cases(flipped, cases, [
        Mistake(lambda x, t: m(x, 1 - t), "you flipped the time but not the velocity: the direction of motion reverses "
                                          "with the direction of time."),
        Mistake(lambda x, t: -m(x, t), "you negated the velocity but kept the time: the reversed time t is the "
                                       "conventional sigma = 1 - t."),
        Mistake(lambda x, t: m(x, t), "your flip returns the model unchanged."),
        Mistake(lambda x, t: m(-x, 1 - t), "you mirrored the position x instead of negating the velocity: the "
                                           "conventions mirror TIME, t = 1 - sigma; x stays where it is."),
        Mistake(lambda x, t: -m(-x, 1 - t), "you mirrored the position x as well: only time is mirrored "
                                            "(t = 1 - sigma); x stays where it is."),
    ], what="flip(model)", names=("x", "t"), forbidden=forbidden,
        shape_note="The flipped model takes x of shape (B, 2) and t of shape (B,) and returns the shape of x.")
    return ("flip(model) equals the exact reversed velocity of an asymmetric three-Gaussian mixture, computed on the "
            "reversed path itself (85 random points, float64 and float32), and leaves x and t unchanged.")


# ---- 5, 6, 7: schedules ------------------------------------------------------------------------------------

def _shift_truth(t: Tensor, s: float) -> Tensor:
    from ..schedules import shift_noise_level

    return 1 - shift_noise_level(1 - t, s)


@exercise(5, "shift_reversed")
def check_shift(fn: object) -> str:
    """``fn(t, shift) -> t'``: the SD3 shift for the reversed time so that ``shift > 1`` moves steps toward noise."""
    from ..schedules import uniform

    grid = uniform(8, REVERSED, dtype=torch.float64)
    shapes = ((grid, 3.0), (_times(11, _gen(51)), 0.5), (_times(6, _gen(52)).reshape(2, 3), 2.7),
              (_times(9, _gen(53), torch.float32), 4.0), (grid.clone(), 1.0))
    cases = [Case((t, s), _shift_truth(t.double(), s).to(t.dtype), f"{_label(t, 't')} and shift {s:g}")
             for t, s in shapes]

    def sd3(t: Tensor, s: float) -> Tensor:
        return s * t / (1 + (s - 1) * t)

    check_cases(fn, cases, [
        Mistake(sd3, "you applied the SD3 formula s t / (1 + (s - 1) t) to the reversed t unchanged. With shift > 1 it "
                     "moves the steps toward t = 1, the DATA: the formula is written for a noise level (1 = noise). "
                     "Apply it to u = 1 - t and convert back."),
        Mistake(lambda t, s: sd3(1 - t, s), "you shifted the noise level u = 1 - t but returned u': convert back to "
                                            "the reversed time, t' = 1 - u'."),
        Mistake(lambda t, s: 1 - sd3(t, s), "you returned 1 - SD3(t): shift the noise level u = 1 - t, not t."),
    ], what="shift_reversed", names=("t", "shift"),
        shape_note="Return a tensor of the shape of t: the shift acts on each time separately.",
        forbidden=_solvers("schedules:shifted", "schedules:shift_noise_level"))
    t_mid = float(_shift_truth(torch.tensor([0.5], dtype=torch.float64), 3.0))
    return (f"right for shifts 3, 0.5, 2.7, 4 and 1 on grids and random times (float64 and float32): with shift 3 "
            f"the middle time t = 0.5 moves to {t_mid:.2f}, toward the noise at t = 0 (the SD3 formula applied to t "
            f"unchanged would give {3 * 0.5 / (1 + 2 * 0.5):.2f}, toward the data); shift 1 changes nothing.")


_SCHEDULE_NOTE = "`fixed_schedule(n_calls)` must return n_calls + 1 times, as a 1-D tensor."


@exercise(6, "fixed_schedule")
def check_fixed_schedule(fn: object) -> str:
    """``fn(n_calls) -> (n_calls + 1,)`` float32 reversed times: N model calls, N effective steps."""
    from ..schedules import hunyuan_compat, n_effective_steps

    forbidden = _solvers("schedules:hunyuan_corrected", "schedules:uniform", "schedules:shifted",
                         "schedules:to_reversed")
    counts = (4, 1, 2, 7, 13)
    for n in counts:  # first what the count of times says, in the exercise's own terms
        got = call(fn, n, what=f"fixed_schedule({n})", forbidden=forbidden)
        if isinstance(got, (list, tuple)):
            raise Wrong("`fixed_schedule` returned a Python list; return a 1-D torch tensor (torch.linspace).")
        if isinstance(got, Tensor) and got.ndim == 1 and len(got) != n + 1:
            k = len(got)
            raise Wrong(f"`fixed_schedule({n})` returned {k} times: that is {k - 1} steps, so {k - 1} model calls "
                        f"for n_calls = {n}. N calls need N + 1 times (each step goes from one time to the next).")

    def lin(n: int, a: float = 0.0, b: float = 1.0, k: int | None = None) -> Tensor:
        return torch.linspace(a, b, n + 1 if k is None else k, dtype=torch.float64).float()

    cases = [Case((n,), lin(n), f"n_calls = {n}") for n in counts]
    check_cases(fn, cases, [
        Mistake(lambda n: lin(n, 1.0, 0.0), "your schedule runs 1 -> 0: that is sigma, the conventional direction. "
                                            "Hunyuan3D-2's t runs 0 (noise) -> 1 (data)."),
        Mistake(lambda n: hunyuan_compat(n), "this is Hunyuan3D-2's own schedule: linspace(0, 1, N) plus an appended "
                                             "1.0. Its last step goes 1.0 -> 1.0 (dt = 0): N calls but N - 1 "
                                             "effective steps."),
        Mistake(lambda n: torch.cat([lin(n, k=n), torch.zeros(1)]),
                "you appended 0.0: the last step jumps from t = 1 back to 0 (dt = -1), which is the port that "
                "produced empty meshes. A schedule must end at the data, t = 1."),
    ], what="fixed_schedule", names=("n_calls",), tol=1e-6, shape_note=_SCHEDULE_NOTE, forbidden=forbidden,
        generic_hint="Expected N + 1 equally spaced times from 0 to 1 (float32, torch's default).")
    for n in counts:  # pragma: no cover - equal to the truth implies this
        if n_effective_steps(fn(n)) != n:
            raise Wrong(f"`fixed_schedule({n})` makes {n_effective_steps(fn(n))} effective steps, expected {n}.")
    return ("N + 1 equally spaced times from t = 0 to t = 1: N model calls and N effective steps for N = 1, 2, 4, 7 "
            "and 13 (no wasted call).")


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
        return sliced_wasserstein(sample(model, x0.clone(), schedule.clone(), REVERSED), reference)

    rows = []
    for n in (2, 4, 8):
        pair = []
        for sched in (hunyuan_compat(n, dtype=torch.float64), hunyuan_corrected(n, dtype=torch.float64)):
            try:
                got = call_unchanged(fn, (sched, model, x0, reference), ("schedule", "model", "x0", "reference"),
                                     what="sw2_after")
            except StudentError as exc:
                if "wrong way" in exc.args[0]:
                    raise StudentError(exc.args[0] + " Hint: sample in the reversed convention (REVERSED): the "
                                                     "schedules run t = 0 -> 1.") from None
                raise
            got = _as_float(got, "sw2_after")
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


